//! The test process's log lines, captured: a `tracing` subscriber (INFO and
//! above, no colours) installed once per process that writes into a buffer
//! the tests read, so a fault test can assert the line an operator would
//! see.

use std::{
    io::Write,
    sync::{Arc, Mutex, OnceLock},
};

/// The captured log of this process (shared by every test in it).
#[derive(Clone)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// Installs the subscriber on first use (a process has one global
    /// subscriber; when another was installed first nothing is captured)
    /// and returns the capture.
    pub fn install() -> Self {
        static LOG: OnceLock<LogCapture> = OnceLock::new();
        LOG.get_or_init(|| {
            let capture = LogCapture(Arc::new(Mutex::new(Vec::new())));
            let writer = capture.clone();
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .try_init();
            capture
        })
        .clone()
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }

    /// The first line logged so far that contains every one of `parts`.
    pub fn first_line_with(&self, parts: &[&str]) -> Option<String> {
        self.lines_with(parts).into_iter().next()
    }

    /// The lines logged so far that contain every one of `parts`.
    pub fn lines_with(&self, parts: &[&str]) -> Vec<String> {
        self.text()
            .lines()
            .filter(|l| parts.iter().all(|p| l.contains(p)))
            .map(str::to_owned)
            .collect()
    }
}

impl Write for LogCapture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
