//! `audit verify`: checks a log directory offline and names the first bad
//! record or checkpoint.
//!
//! Every record line must parse, carry the next sequence number and the
//! hash of the record before it, and hash to the leaf the tree files
//! stored for it; the tree recomputed from the lines must have, at every
//! checkpoint's size, that checkpoint's root; every checkpoint must carry
//! a valid signature of the log's key; records missing from the segments
//! must be ones a `retention_applied` record says were deleted (their
//! leaf hashes stay in the tree files). What the checks find:
//!
//! | change | found as |
//! |---|---|
//! | a record edited | its hash differs from the stored leaf and from its successor's `prev` |
//! | a record deleted | a sequence gap (no retention record covers it) |
//! | a record inserted or duplicated | a sequence number that goes back |
//! | two records swapped | a sequence number ahead, with the missing one right after |
//! | the tail cut | a checkpoint (or the tree files) larger than the records |
//! | a checkpoint forged | its signature does not verify |
//! | a checkpoint forked | its root is not the root of the records at its size |
//!
//! Records after the last checkpoint are protected only by the stored
//! leaf hashes and the chain of `prev` hashes, which someone who can
//! rewrite the directory can recompute: the report gives their number.

use std::{
    collections::BTreeMap,
    fmt,
    fs::File,
    io::{self, BufReader, Read},
    path::{Path, PathBuf},
};

use serde::Deserialize;
use serde_json::value::RawValue;
use thiserror::Error;

use super::{
    checkpoint::{HISTORY_FILE, LATEST_FILE, NoteVerifier, SignedCheckpoint, split_notes},
    hash::{Hash, leaf_hash},
    record::RecordKind,
    store::{
        TREE_DIR, VKEY_FILE,
        segment::{
            Line, LineReader, SEGMENTS_DIR, list_segments, peek_link, peek_seq_time, read_meta,
        },
    },
    tree::CompactRange,
};

/// What kind of damage a problem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProblemKind {
    /// A line is not a record.
    Unparseable,
    /// A record's content changed.
    Edited,
    /// Records are missing.
    Deleted,
    /// A record appears that should not (inserted or duplicated).
    Inserted,
    /// Records are out of order.
    Reordered,
    /// The log ends before what a checkpoint or the tree files hold.
    Truncated,
    /// A checkpoint's signature does not verify, or it is malformed.
    ForgedCheckpoint,
    /// A validly signed checkpoint that does not match the records.
    InconsistentCheckpoint,
}

impl ProblemKind {
    /// One word for the report.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::Unparseable => "unparseable",
            ProblemKind::Edited => "edited",
            ProblemKind::Deleted => "deleted",
            ProblemKind::Inserted => "inserted",
            ProblemKind::Reordered => "reordered",
            ProblemKind::Truncated => "truncated",
            ProblemKind::ForgedCheckpoint => "forged checkpoint",
            ProblemKind::InconsistentCheckpoint => "inconsistent checkpoint",
        }
    }
}

/// The first thing found wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// What kind of damage.
    pub kind: ProblemKind,
    /// The first bad record's sequence number, when a record is named.
    pub seq: Option<u64>,
    /// Where: a segment file and line, or a checkpoint file and line.
    pub location: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.seq {
            Some(seq) => write!(
                f,
                "{}: record {seq} ({}): {}",
                self.kind.as_str(),
                self.location,
                self.message
            ),
            None => write!(
                f,
                "{}: {}: {}",
                self.kind.as_str(),
                self.location,
                self.message
            ),
        }
    }
}

/// Where the checkpoints' key came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// `--key`: an independent check.
    Given,
    /// The log's own `log.vkey`: only as good as the directory.
    Log,
    /// No key: signatures not checked.
    None,
}

/// What `verify` found.
#[derive(Clone, Debug)]
pub struct VerifyReport {
    /// Record lines read.
    pub records: u64,
    /// Records removed by retention (checked through their leaf hashes).
    pub deleted: u64,
    /// Tree size recomputed.
    pub size: u64,
    /// Root recomputed.
    pub root: Hash,
    /// Checkpoints whose root matched.
    pub checkpoints: usize,
    /// Largest checkpoint size that matched.
    pub checkpointed: u64,
    /// Where the key came from.
    pub key: KeySource,
    /// The first bad record (or torn/unparseable line), if any.
    pub record_problem: Option<Problem>,
    /// The first bad checkpoint, if any.
    pub checkpoint_problem: Option<Problem>,
    /// What is not wrong but worth knowing.
    pub warnings: Vec<String>,
}

impl VerifyReport {
    /// Whether nothing was found wrong.
    pub fn valid(&self) -> bool {
        self.record_problem.is_none() && self.checkpoint_problem.is_none()
    }

    /// The problems, record first.
    pub fn problems(&self) -> impl Iterator<Item = &Problem> {
        self.record_problem
            .iter()
            .chain(self.checkpoint_problem.iter())
    }
}

/// Why a directory could not be verified at all (exit code 2).
#[derive(Debug, Error)]
pub enum VerifyError {
    /// Not an audit log directory.
    #[error(
        "{dir} is not an audit log directory (no {SEGMENTS_DIR}/ in it); give the directory the sidecar writes its audit log to"
    )]
    NotALog {
        /// The directory.
        dir: PathBuf,
    },
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The key is unusable.
    #[error("the verifier key {source_name}: {reason}")]
    Key {
        /// Where the key came from.
        source_name: String,
        /// Why.
        reason: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> VerifyError + '_ {
    move |source| VerifyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What to check the log against.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// The checkpoints' verifier key; without it the log's `log.vkey`.
    pub key: Option<NoteVerifier>,
    /// Witness files (checkpoints copied outside the log).
    pub witnesses: Vec<PathBuf>,
}

/// A checkpoint to compare the records with.
struct Expected {
    root: Hash,
    location: String,
}

/// Leaf hashes stored in `tree/level-00`, read in order.
struct StoredLeaves {
    reader: Option<BufReader<File>>,
    count: u64,
    next: u64,
}

impl StoredLeaves {
    fn open(dir: &Path) -> Result<StoredLeaves, VerifyError> {
        let path = dir.join(TREE_DIR).join("level-00");
        match File::open(&path) {
            Ok(f) => {
                let count = f.metadata().map_err(io_err(&path))?.len() / 32;
                Ok(StoredLeaves {
                    reader: Some(BufReader::with_capacity(1 << 16, f)),
                    count,
                    next: 0,
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(StoredLeaves {
                reader: None,
                count: 0,
                next: 0,
            }),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// The stored leaf of `seq` (read in increasing order).
    fn get(&mut self, seq: u64) -> Option<Hash> {
        if seq >= self.count || seq < self.next {
            return None;
        }
        let reader = self.reader.as_mut()?;
        let mut h = [0u8; 32];
        while self.next <= seq {
            reader.read_exact(&mut h).ok()?;
            self.next += 1;
        }
        Some(Hash(h))
    }
}

/// Checks the log in `dir`.
pub fn verify(dir: &Path, opts: &VerifyOptions) -> Result<VerifyReport, VerifyError> {
    if !dir.join(SEGMENTS_DIR).is_dir() {
        return Err(VerifyError::NotALog {
            dir: dir.to_path_buf(),
        });
    }
    let mut report = VerifyReport {
        records: 0,
        deleted: 0,
        size: 0,
        root: Hash::empty(),
        checkpoints: 0,
        checkpointed: 0,
        key: KeySource::None,
        record_problem: None,
        checkpoint_problem: None,
        warnings: Vec::new(),
    };
    let key = match &opts.key {
        Some(k) => {
            report.key = KeySource::Given;
            Some(k.clone())
        }
        None => {
            let path = dir.join(VKEY_FILE);
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    report.key = KeySource::Log;
                    Some(NoteVerifier::parse(&text).map_err(|e| VerifyError::Key {
                        source_name: path.display().to_string(),
                        reason: e.to_string(),
                    })?)
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(io_err(&path)(e)),
            }
        }
    };
    match report.key {
        KeySource::Log => report.warnings.push(format!(
            "checkpoint signatures checked with the log's own key ({VKEY_FILE}); pass --key with the key you trust for an independent check"
        )),
        KeySource::None => report
            .warnings
            .push("no verifier key: checkpoint signatures not checked (pass --key)".into()),
        KeySource::Given => {}
    }

    let expected = load_checkpoints(dir, opts, key.as_ref(), &mut report)?;
    verify_records(dir, &expected, &mut report)?;
    Ok(report)
}

/// Reads the checkpoints of the log and of the witness files, checks their
/// signatures; returns them by size.
fn load_checkpoints(
    dir: &Path,
    opts: &VerifyOptions,
    key: Option<&NoteVerifier>,
    report: &mut VerifyReport,
) -> Result<BTreeMap<u64, Vec<Expected>>, VerifyError> {
    let mut files: Vec<(PathBuf, String)> = vec![
        (dir.join(HISTORY_FILE), HISTORY_FILE.to_string()),
        (dir.join(LATEST_FILE), LATEST_FILE.to_string()),
    ];
    for w in &opts.witnesses {
        files.push((w.clone(), format!("witness {}", w.display())));
    }
    let mut out: BTreeMap<u64, Vec<Expected>> = BTreeMap::new();
    let mut origin: Option<String> = None;
    for (i, (path, label)) in files.iter().enumerate() {
        let content = match std::fs::read_to_string(path) {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::NotFound && i < 2 => continue,
            Err(e) => return Err(io_err(path)(e)),
        };
        for (line, note) in split_notes(&content) {
            let location = format!("{label} line {line}");
            let forged = |message: String| Problem {
                kind: ProblemKind::ForgedCheckpoint,
                seq: None,
                location: location.clone(),
                message,
            };
            let parsed = match key {
                Some(k) => SignedCheckpoint::open(&note, k).map_err(|e| e.to_string()),
                None => SignedCheckpoint::parse_unverified(&note).map_err(|e| e.to_string()),
            };
            let cp = match parsed {
                Ok(cp) => cp.checkpoint,
                Err(e) => {
                    if report.checkpoint_problem.is_none() {
                        report.checkpoint_problem = Some(forged(e));
                    }
                    continue;
                }
            };
            match &origin {
                None => origin = Some(cp.origin.clone()),
                Some(o) if *o != cp.origin => {
                    if report.checkpoint_problem.is_none() {
                        report.checkpoint_problem = Some(forged(format!(
                            "its origin `{}` is not the log's `{o}`",
                            cp.origin
                        )));
                    }
                    continue;
                }
                Some(_) => {}
            }
            out.entry(cp.size).or_default().push(Expected {
                root: cp.root,
                location,
            });
        }
    }
    Ok(out)
}

struct Walk<'a> {
    expected: &'a BTreeMap<u64, Vec<Expected>>,
    range: CompactRange,
    stored: StoredLeaves,
    prev: Option<Hash>,
    retention_claims: Vec<(u64, u64)>,
    deleted_ranges: Vec<(u64, u64, String)>,
}

impl Walk<'_> {
    /// Adds a leaf; compares the root with the checkpoints of the new size.
    fn push(&mut self, leaf: Hash, report: &mut VerifyReport) {
        self.range.push(leaf, |_, _| {});
        self.prev = Some(leaf);
        let size = self.range.size();
        if let Some(cps) = self.expected.get(&size) {
            let root = self.range.root();
            for cp in cps {
                if cp.root == root {
                    report.checkpoints += 1;
                    report.checkpointed = report.checkpointed.max(size);
                } else if report.checkpoint_problem.is_none() {
                    report.checkpoint_problem = Some(Problem {
                        kind: ProblemKind::InconsistentCheckpoint,
                        seq: None,
                        location: cp.location.clone(),
                        message: format!(
                            "it commits to root {} for {size} records, the records give {root}: it was signed over other records (a fork), or a record before {size} changed",
                            cp.root
                        ),
                    });
                }
            }
        }
    }
}

fn verify_records(
    dir: &Path,
    expected: &BTreeMap<u64, Vec<Expected>>,
    report: &mut VerifyReport,
) -> Result<(), VerifyError> {
    let seg_dir = dir.join(SEGMENTS_DIR);
    let segments = list_segments(dir).map_err(io_err(&seg_dir))?;
    let mut w = Walk {
        expected,
        range: CompactRange::new(),
        stored: StoredLeaves::open(dir)?,
        prev: None,
        retention_claims: Vec::new(),
        deleted_ranges: Vec::new(),
    };
    let last_present = segments.iter().rposition(|s| s.present);
    'segments: for (si, seg) in segments.iter().enumerate() {
        let name = format!("{SEGMENTS_DIR}/{}", seg.file_name());
        let next = w.range.size();
        if seg.first_seq > next {
            report.record_problem = Some(Problem {
                kind: ProblemKind::Deleted,
                seq: Some(next),
                location: name.clone(),
                message: format!(
                    "records {next}..={} are missing: the previous segment ends before record {next} and this one starts at {}",
                    seg.first_seq - 1,
                    seg.first_seq
                ),
            });
            break;
        }
        if !seg.present {
            // Deleted by retention: the summary says which records; their
            // leaf hashes come from the tree files.
            let meta = read_meta(&seg.meta).map_err(io_err(&seg.meta))?;
            let Some(meta) = meta.filter(|m| m.deleted_at.is_some()) else {
                continue;
            };
            for seq in meta.first_seq..=meta.last_seq {
                let Some(leaf) = w.stored.get(seq) else {
                    report.record_problem = Some(Problem {
                        kind: ProblemKind::Deleted,
                        seq: Some(seq),
                        location: name.clone(),
                        message: "the records were deleted and the tree files no longer hold their leaf hashes".into(),
                    });
                    break 'segments;
                };
                w.push(leaf, report);
                report.deleted += 1;
            }
            w.deleted_ranges
                .push((meta.first_seq, meta.last_seq, name.clone()));
            continue;
        }
        let mut reader = LineReader::open(&seg.records, 0).map_err(io_err(&seg.records))?;
        let mut line_no = 0u64;
        let mut chunk = Chunk::default();
        loop {
            chunk.read(&mut reader).map_err(io_err(&seg.records))?;
            if chunk.spans.is_empty() {
                break;
            }
            let checked = chunk.check();
            for (i, c) in checked.iter().enumerate() {
                line_no += 1;
                let seq = w.range.size();
                let location = format!("{name} line {line_no}, offset {}", c.offset);
                let problem = |kind, seq, message: String| Problem {
                    kind,
                    seq: Some(seq),
                    location: location.clone(),
                    message,
                };
                if !c.whole {
                    let covered = expected.range(seq + 1..).next().is_some();
                    if Some(si) == last_present && !covered {
                        report.warnings.push(format!(
                            "{location}: a torn last line ({} bytes, a write cut by a crash); opening the log repairs it",
                            c.len
                        ));
                        break;
                    }
                    report.record_problem = Some(problem(
                        ProblemKind::Truncated,
                        seq,
                        "the line is cut short".into(),
                    ));
                    break 'segments;
                }
                let facts = match &c.parsed {
                    Ok(f) => f,
                    Err(e) => {
                        report.record_problem = Some(problem(
                            ProblemKind::Unparseable,
                            seq,
                            format!("not a record: {e}"),
                        ));
                        break 'segments;
                    }
                };
                report.records += 1;
                if facts.seq != seq {
                    let p = if facts.seq < seq {
                        problem(
                            ProblemKind::Inserted,
                            seq,
                            format!(
                                "a record numbered {} appears where record {seq} was expected: a record was inserted or duplicated",
                                facts.seq
                            ),
                        )
                    } else {
                        // Swapped, or missing? Look at the next line.
                        let next = match checked.get(i + 1) {
                            Some(n) => n.parsed.as_ref().ok().map(|f| f.seq),
                            None => match reader.next_line().map_err(io_err(&seg.records))? {
                                Some(Line::Whole(_, l)) | Some(Line::Torn(_, l)) => {
                                    peek_seq_time(l).map(|(s, _)| s)
                                }
                                None => None,
                            },
                        };
                        if next == Some(seq) {
                            problem(
                                ProblemKind::Reordered,
                                seq,
                                format!(
                                    "record {} appears before record {seq}: records were reordered",
                                    facts.seq
                                ),
                            )
                        } else {
                            problem(
                                ProblemKind::Deleted,
                                seq,
                                format!(
                                    "records {seq}..={} are missing: record {} follows record {}",
                                    facts.seq - 1,
                                    facts.seq,
                                    seq.wrapping_sub(1)
                                ),
                            )
                        }
                    };
                    report.record_problem = Some(p);
                    break 'segments;
                }
                let leaf = c.leaf;
                if let Some(stored) = w.stored.get(seq)
                    && stored != leaf
                {
                    report.record_problem = Some(problem(
                        ProblemKind::Edited,
                        seq,
                        format!(
                            "its content changed: it hashes to {leaf}, the tree stored {stored}"
                        ),
                    ));
                    break 'segments;
                }
                let want_prev = w.prev.unwrap_or_default();
                if seq > 0 && facts.prev != want_prev {
                    report.record_problem = Some(Problem {
                        kind: ProblemKind::Edited,
                        seq: Some(seq - 1),
                        location: location.clone(),
                        message: format!(
                            "record {seq} names {} as the hash of record {}, which hashes to {want_prev}: record {} (or this line's prev) was changed",
                            facts.prev,
                            seq - 1,
                            seq - 1
                        ),
                    });
                    break 'segments;
                }
                if let Some(claim) = facts.claim {
                    w.retention_claims.push(claim);
                }
                w.push(leaf, report);
            }
        }
    }
    report.size = w.range.size();
    report.root = w.range.root();
    if report.record_problem.is_some() {
        return Ok(());
    }
    // Deleted segments must be ones the log recorded deleting.
    for (a, b, name) in &w.deleted_ranges {
        if !w.retention_claims.contains(&(*a, *b)) {
            report.record_problem = Some(Problem {
                kind: ProblemKind::Deleted,
                seq: Some(*a),
                location: name.clone(),
                message: format!(
                    "records {a}..={b} were removed but no retention_applied record says so"
                ),
            });
            return Ok(());
        }
    }
    // The tail: nothing may be missing that a checkpoint covers.
    let size = report.size;
    if let Some((&cp_size, cps)) = expected.range(size + 1..).next() {
        report.record_problem = Some(Problem {
            kind: ProblemKind::Truncated,
            seq: Some(size),
            location: cps[0].location.clone(),
            message: format!(
                "the checkpoint commits to {cp_size} records but the log holds {size}: records {size}..={} are missing",
                cp_size - 1
            ),
        });
        return Ok(());
    }
    if w.stored.count > size {
        report.warnings.push(format!(
            "the tree files hold {} leaf hashes but the segments {size} records: the last {} were lost in a crash before their fsync, or cut",
            w.stored.count,
            w.stored.count - size
        ));
    }
    let tail = size - report.checkpointed;
    if tail > 0 {
        report.warnings.push(format!(
            "{tail} records after the last checkpoint (size {}) are protected by the stored hashes only; a checkpoint covers them once the log signs the next one",
            report.checkpointed
        ));
    }
    Ok(())
}

/// Lines read per chunk.
const CHUNK_LINES: usize = 16_384;
/// Chunks smaller than this are checked on the calling thread.
const PARALLEL_MIN: usize = 512;

/// Lines of a segment read into one buffer, checked in parallel.
#[derive(Default)]
struct Chunk {
    buf: Vec<u8>,
    /// Offset in the file, start and end in `buf`, whether whole.
    spans: Vec<(u64, usize, usize, bool)>,
}

/// What a record line says about its place in the log.
struct Facts {
    seq: u64,
    prev: Hash,
    /// A `retention_applied` record's range.
    claim: Option<(u64, u64)>,
}

/// One line, parsed and hashed.
struct Checked {
    offset: u64,
    whole: bool,
    len: usize,
    leaf: Hash,
    parsed: Result<Facts, String>,
}

impl Chunk {
    /// Reads up to [`CHUNK_LINES`] lines (a torn line ends the chunk).
    fn read(&mut self, reader: &mut LineReader) -> io::Result<()> {
        self.buf.clear();
        self.spans.clear();
        while self.spans.len() < CHUNK_LINES {
            let (offset, line, whole) = match reader.next_line()? {
                None => break,
                Some(Line::Whole(o, l)) => (o, l, true),
                Some(Line::Torn(o, l)) => (o, l, false),
            };
            let start = self.buf.len();
            self.buf.extend_from_slice(line);
            self.spans.push((offset, start, self.buf.len(), whole));
            if !whole {
                break;
            }
        }
        Ok(())
    }

    /// Parses and hashes every line, on every CPU for a large chunk.
    fn check(&self) -> Vec<Checked> {
        let one = |&(offset, start, end, whole): &(u64, usize, usize, bool)| {
            let line = &self.buf[start..end];
            Checked {
                offset,
                whole,
                len: line.len(),
                leaf: leaf_hash(line),
                parsed: if whole {
                    Facts::parse(line).map_err(|e| e.to_string())
                } else {
                    Err("torn".into())
                },
            }
        };
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
        if workers == 1 || self.spans.len() < PARALLEL_MIN {
            return self.spans.iter().map(one).collect();
        }
        let part = self.spans.len().div_ceil(workers);
        std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .spans
                .chunks(part)
                .map(|spans| scope.spawn(move || spans.iter().map(one).collect::<Vec<_>>()))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("a verify worker panicked"))
                .collect()
        })
    }
}

impl Facts {
    /// Reads only what the chain needs from a record line: its number,
    /// the previous record's hash and, for a `retention_applied` record,
    /// the range it deleted. A line in the log's canonical layout is read
    /// from its first bytes; any other is parsed as JSON. The rest of the
    /// line is not built: its bytes are covered by the leaf hash.
    fn parse(line: &[u8]) -> Result<Facts, serde_json::Error> {
        if let Some((seq, prev, kind)) = peek_link(line)
            && kind != RecordKind::RetentionApplied.as_str()
        {
            return Ok(Facts {
                seq,
                prev,
                claim: None,
            });
        }
        #[derive(Deserialize)]
        struct Link<'a> {
            seq: u64,
            prev: Hash,
            kind: RecordKind,
            #[serde(borrow, default)]
            detail: Option<&'a RawValue>,
        }
        #[derive(Deserialize)]
        struct Deleted {
            first_seq: u64,
            last_seq: u64,
        }
        let link: Link<'_> = serde_json::from_slice(line)?;
        let claim = match (link.kind, link.detail) {
            (RecordKind::RetentionApplied, Some(d)) => serde_json::from_str::<Deleted>(d.get())
                .ok()
                .map(|d| (d.first_seq, d.last_seq)),
            _ => None,
        };
        Ok(Facts {
            seq: link.seq,
            prev: link.prev,
            claim,
        })
    }
}

#[cfg(test)]
mod tests;
