//! [`DiskQueue`]: the events a webhook has yet to take, oldest first, each
//! in a file of its own under the queue directory (`<seq>.evt`: the event
//! id, a newline, the body), written and synced before it is sent and
//! removed once the webhook took it (or refused it for good). A sidecar
//! restarted while its webhook was down sends what the last run left.

use std::{
    collections::VecDeque,
    fs, io,
    path::{Path, PathBuf},
};

/// One queued event.
#[derive(Clone, Debug)]
pub struct Queued {
    /// The event id (`webhook-id`).
    pub id: String,
    /// The body.
    pub body: Vec<u8>,
    /// Failed attempts so far (in this run).
    pub attempts: u32,
    file: Option<PathBuf>,
}

/// Why an event was not queued.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The queue holds its maximum.
    #[error("the queue holds {0} events, its maximum")]
    Full(usize),
    /// The event's file could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// A bounded FIFO of events, kept on disk when it has a directory.
#[derive(Debug)]
pub struct DiskQueue {
    dir: Option<PathBuf>,
    items: VecDeque<Queued>,
    next_seq: u64,
    max: usize,
}

impl DiskQueue {
    /// Opens the queue under `dir` (created, mode 0700) with what an
    /// earlier run left in it, or in memory only when `dir` is `None`.
    /// At most `max` events wait; an unreadable left-over file is
    /// skipped and returned by name.
    pub fn open(dir: Option<PathBuf>, max: usize) -> io::Result<(DiskQueue, Vec<PathBuf>)> {
        let mut q = DiskQueue {
            dir,
            items: VecDeque::new(),
            next_seq: 0,
            max: max.max(1),
        };
        let mut unreadable = Vec::new();
        if let Some(dir) = &q.dir {
            make_dir(dir)?;
            let mut files: Vec<(u64, PathBuf)> = fs::read_dir(dir)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "evt"))
                .filter_map(|p| Some((p.file_stem()?.to_str()?.parse().ok()?, p)))
                .collect();
            files.sort();
            for (seq, path) in files {
                q.next_seq = q.next_seq.max(seq + 1);
                match read(&path) {
                    Some((id, body)) => q.items.push_back(Queued {
                        id,
                        body,
                        attempts: 0,
                        file: Some(path),
                    }),
                    None => unreadable.push(path),
                }
            }
        }
        Ok((q, unreadable))
    }

    /// Adds an event at the back: on disk first when the queue has a
    /// directory.
    pub fn push(&mut self, id: String, body: Vec<u8>) -> Result<(), PushError> {
        if self.items.len() >= self.max {
            return Err(PushError::Full(self.max));
        }
        let file = match &self.dir {
            Some(dir) => {
                let path = dir.join(format!("{:020}.evt", self.next_seq));
                write(dir, &path, &id, &body).map_err(|source| PushError::Io {
                    path: path.clone(),
                    source,
                })?;
                Some(path)
            }
            None => None,
        };
        self.next_seq += 1;
        self.items.push_back(Queued {
            id,
            body,
            attempts: 0,
            file,
        });
        Ok(())
    }

    /// The oldest event.
    pub fn front_mut(&mut self) -> Option<&mut Queued> {
        self.items.front_mut()
    }

    /// Removes the oldest event (and its file).
    pub fn pop_front(&mut self) {
        if let Some(q) = self.items.pop_front()
            && let Some(f) = q.file
            && let Err(e) = fs::remove_file(&f)
        {
            tracing::warn!(file = %f.display(), error = %e, "cannot remove a delivered webhook event from the queue; it may be sent again");
        }
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Nothing waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

fn make_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

fn read(path: &Path) -> Option<(String, Vec<u8>)> {
    let raw = fs::read(path).ok()?;
    let nl = raw.iter().position(|b| *b == b'\n')?;
    let id = std::str::from_utf8(&raw[..nl]).ok()?.to_string();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    Some((id, raw[nl + 1..].to_vec()))
}

fn write(dir: &Path, path: &Path, id: &str, body: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_stem().and_then(|s| s.to_str()).unwrap_or("evt")
    ));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    io::Write::write_all(&mut f, id.as_bytes())?;
    io::Write::write_all(&mut f, b"\n")?;
    io::Write::write_all(&mut f, body)?;
    f.sync_all()?;
    fs::rename(&tmp, path)
}
