//! The tree's complete nodes on disk: `tree/level-NN` holds, for level
//! `NN`, the hashes of the complete subtrees of `2^NN` leaves in order,
//! 32 bytes each. Level 0 holds the leaf hashes. A tree of `n` leaves has
//! `n >> NN` hashes at level `NN`; everything else (the right border) is
//! folded from them.
//!
//! Writes are buffered and go to the files on [`TreeFiles::flush`]; a
//! failed write is undone (the file is cut back to its last whole hash) and
//! kept for the next flush. Reads see flushed and pending hashes alike.

use std::{
    fs::{self, File, OpenOptions},
    io,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

use thiserror::Error;

use super::range::{CompactRange, NodeSource};
use crate::audit::hash::{Hash, node_hash};

const HASH: u64 = 32;

/// A tree-file operation that failed.
#[derive(Debug, Error)]
pub enum TreeFilesError {
    /// Reading, writing or syncing a level file failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A node that the files do not (yet) hold was asked for.
    #[error(
        "the tree files in {dir} hold no node {index} at level {level}; the log has fewer records than asked for"
    )]
    Missing {
        /// The tree directory.
        dir: PathBuf,
        /// Level of the node.
        level: u32,
        /// Index of the node in its level.
        index: u64,
    },
}

struct Level {
    path: PathBuf,
    /// Opened when the level is first written (a level added in memory
    /// has none yet).
    file: Option<File>,
    /// Hashes in the file.
    stored: u64,
    /// Hashes not yet written, after `stored`.
    pending: Vec<u8>,
    /// Written since the last sync.
    dirty: bool,
}

/// The complete nodes of the tree, one append-only file per level, and the
/// compact range of its current size.
pub struct TreeFiles {
    dir: PathBuf,
    levels: Vec<Level>,
    range: CompactRange,
    writable: bool,
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> TreeFilesError {
    let path = path.to_path_buf();
    move |source| TreeFilesError::Io { what, path, source }
}

fn level_path(dir: &Path, level: u32) -> PathBuf {
    dir.join(format!("level-{level:02}"))
}

impl TreeFiles {
    /// Opens (creating `dir` if needed) the tree for appending. The level
    /// files are made consistent with each other: a level longer than its
    /// leaves allow is cut, a shorter one is completed from the level
    /// below (after a crash between their writes). The leaf count is what
    /// level 0 holds; the caller cuts or extends it to the records with
    /// [`TreeFiles::truncate`] and [`TreeFiles::push`].
    pub fn open(dir: &Path) -> Result<TreeFiles, TreeFilesError> {
        fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
        let mut t = TreeFiles::load(dir, true)?;
        let leaves = t.levels.first().map_or(0, |l| l.stored);
        t.reconcile(leaves)?;
        Ok(t)
    }

    /// Opens the tree read-only (for proofs and verification). Levels are
    /// taken as they are; a node missing from its level is folded from the
    /// level below.
    pub fn open_read_only(dir: &Path) -> Result<TreeFiles, TreeFilesError> {
        let mut t = TreeFiles::load(dir, false)?;
        let leaves = t.levels.first().map_or(0, |l| l.stored);
        t.range = CompactRange::from_source(&t, leaves)?;
        Ok(t)
    }

    fn load(dir: &Path, writable: bool) -> Result<TreeFiles, TreeFilesError> {
        let mut levels = Vec::new();
        for level in 0..64u32 {
            let path = level_path(dir, level);
            let file = if writable {
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(level == 0)
                    .truncate(false)
                    .open(&path)
            } else {
                File::open(&path)
            };
            let file = match file {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) => return Err(io_err("opening", &path)(e)),
            };
            let len = file.metadata().map_err(io_err("reading", &path))?.len();
            levels.push(Level {
                path,
                file: Some(file),
                stored: len / HASH,
                pending: Vec::new(),
                dirty: false,
            });
        }
        Ok(TreeFiles {
            dir: dir.to_path_buf(),
            levels,
            range: CompactRange::new(),
            writable,
        })
    }

    /// The tree directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.range.size()
    }

    /// The root of the whole tree.
    pub fn root(&self) -> Hash {
        self.range.root()
    }

    /// The compact range of the whole tree.
    pub fn range(&self) -> &CompactRange {
        &self.range
    }

    /// Leaf hashes stored in level 0 (flushed or pending).
    pub fn leaf_count(&self) -> u64 {
        self.count(0)
    }

    fn count(&self, level: u32) -> u64 {
        self.levels
            .get(level as usize)
            .map_or(0, |l| l.stored + l.pending.len() as u64 / HASH)
    }

    /// Cuts the tree to its first `size` leaves (after a torn or lost
    /// record tail). Pending hashes are dropped with it.
    pub fn truncate(&mut self, size: u64) -> Result<(), TreeFilesError> {
        self.reconcile(size.min(self.leaf_count()))
    }

    /// Makes every level hold exactly `leaves >> level` hashes.
    fn reconcile(&mut self, leaves: u64) -> Result<(), TreeFilesError> {
        let mut level = 0u32;
        loop {
            let want = leaves >> level;
            if want == 0 && level as usize >= self.levels.len() {
                break;
            }
            if level as usize >= self.levels.len() {
                self.add_level(level);
            }
            let have = self.count(level);
            if have > want {
                self.cut(level, want)?;
            } else if have < want {
                // Complete from the level below (level 0 cannot be short:
                // `leaves` never exceeds what it holds).
                for index in have..want {
                    let l = self.node(level - 1, 2 * index)?;
                    let r = self.node(level - 1, 2 * index + 1)?;
                    let h = node_hash(&l, &r);
                    self.levels[level as usize].pending.extend_from_slice(&h.0);
                }
            }
            level += 1;
        }
        // Levels above the tree's height stay as empty files.
        for l in level as usize..self.levels.len() {
            self.cut(l as u32, 0)?;
        }
        self.range = CompactRange::from_source(&*self, leaves)?;
        Ok(())
    }

    /// Adds a level in memory; its file is created (emptied of whatever an
    /// older, taller tree left there) when it is first flushed.
    fn add_level(&mut self, level: u32) {
        self.levels.push(Level {
            path: level_path(&self.dir, level),
            file: None,
            stored: 0,
            pending: Vec::new(),
            dirty: false,
        });
    }

    fn cut(&mut self, level: u32, keep: u64) -> Result<(), TreeFilesError> {
        let l = &mut self.levels[level as usize];
        if keep >= l.stored {
            l.pending.truncate(((keep - l.stored) * HASH) as usize);
            return Ok(());
        }
        l.pending.clear();
        if let Some(file) = &l.file {
            file.set_len(keep * HASH)
                .map_err(io_err("truncating", &l.path))?;
        }
        l.stored = keep;
        l.dirty = true;
        Ok(())
    }

    /// Appends a leaf hash and the nodes it completes (in memory; written
    /// by the next [`TreeFiles::flush`]).
    pub fn push(&mut self, leaf: Hash) {
        let mut completed: [(u32, Hash); 65] = [(0, Hash::default()); 65];
        let mut n = 0;
        self.range.push(leaf, |level, h| {
            completed[n] = (level, *h);
            n += 1;
        });
        for &(level, h) in &completed[..n] {
            if level as usize >= self.levels.len() {
                self.add_level(level);
            }
            self.levels[level as usize].pending.extend_from_slice(&h.0);
        }
    }

    /// Bytes waiting to be written.
    pub fn pending_bytes(&self) -> usize {
        self.levels.iter().map(|l| l.pending.len()).sum()
    }

    /// Writes the pending hashes. A failed write is undone: the file is cut
    /// back to its last stored hash and the hashes stay pending.
    pub fn flush(&mut self) -> Result<(), TreeFilesError> {
        for l in &mut self.levels {
            if l.pending.is_empty() {
                continue;
            }
            if l.file.is_none() {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&l.path)
                    .map_err(io_err("creating", &l.path))?;
                l.file = Some(file);
            }
            let file = l.file.as_ref().expect("opened above");
            if let Err(e) = file.write_all_at(&l.pending, l.stored * HASH) {
                let _ = file.set_len(l.stored * HASH);
                return Err(io_err("writing", &l.path)(e));
            }
            l.stored += l.pending.len() as u64 / HASH;
            l.pending.clear();
            l.dirty = true;
        }
        Ok(())
    }

    /// Flushes and fsyncs every level written since the last sync.
    pub fn sync(&mut self) -> Result<(), TreeFilesError> {
        self.flush()?;
        for l in &mut self.levels {
            if let (true, Some(file)) = (l.dirty, &l.file) {
                file.sync_data().map_err(io_err("syncing", &l.path))?;
            }
            l.dirty = false;
        }
        Ok(())
    }

    fn read_node(&self, level: u32, index: u64) -> Result<Option<Hash>, TreeFilesError> {
        let Some(l) = self.levels.get(level as usize) else {
            return Ok(None);
        };
        let mut h = [0u8; 32];
        if index < l.stored
            && let Some(file) = &l.file
        {
            file.read_exact_at(&mut h, index * HASH)
                .map_err(io_err("reading", &l.path))?;
            return Ok(Some(Hash(h)));
        }
        let off = ((index - l.stored) * HASH) as usize;
        if off + 32 <= l.pending.len() {
            h.copy_from_slice(&l.pending[off..off + 32]);
            return Ok(Some(Hash(h)));
        }
        Ok(None)
    }

    /// Reads `count` leaf hashes from `first` on.
    pub fn leaves(&self, first: u64, count: u64) -> Result<Vec<Hash>, TreeFilesError> {
        (first..first + count).map(|i| self.node(0, i)).collect()
    }

    /// Whether this handle may write.
    pub fn writable(&self) -> bool {
        self.writable
    }
}

impl NodeSource for TreeFiles {
    type Error = TreeFilesError;

    fn node(&self, level: u32, index: u64) -> Result<Hash, TreeFilesError> {
        if let Some(h) = self.read_node(level, index)? {
            return Ok(h);
        }
        if level == 0 {
            return Err(TreeFilesError::Missing {
                dir: self.dir.clone(),
                level,
                index,
            });
        }
        let l = self.node(level - 1, 2 * index)?;
        let r = self.node(level - 1, 2 * index + 1)?;
        Ok(node_hash(&l, &r))
    }
}
