//! The write-intent file: `<data_dir>/streams.intent` names, one per line, every stream the
//! current run has pushed to, each written before that stream's first push of the run reaches a
//! socket. Its first line names the run and the machine's boot.
//!
//! A line is an ordinary `write` with no fsync, on the delivery path once per stream per run.
//! It survives the process being killed (the kernel holds it), not the machine going down; the
//! boot id in the header tells the next start which of the two happened.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use crate::websocket::history::WriteIntent;

/// The file name under the data dir.
pub const FILE_NAME: &str = "streams.intent";
const MAGIC: &str = "switchboard-stream-intent-v1";

/// The running machine's boot id (Linux); `None` where the system does not tell.
pub fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// What a previous run's file says.
#[derive(Debug, PartialEq, Eq)]
pub struct Previous {
    /// The run that wrote it.
    pub run: String,
    /// The boot it was written in.
    pub boot: String,
    /// The streams it pushed to.
    pub streams: HashSet<String>,
}

/// Reads the file left by the previous run; `None` when it is missing or unreadable.
pub fn read_previous(data_dir: &Path) -> Option<Previous> {
    let file = File::open(data_dir.join(FILE_NAME)).ok()?;
    let mut lines = BufReader::new(file).lines();
    let header = lines.next()?.ok()?;
    let mut parts = header.split(' ');
    if parts.next()? != MAGIC {
        return None;
    }
    let run = parts.next()?.strip_prefix("run=")?.to_string();
    let boot = parts.next()?.strip_prefix("boot=")?.to_string();
    let mut streams = HashSet::new();
    for line in lines {
        let line = line.ok()?;
        // Each line went in with one `write`, so a killed process leaves whole lines only.
        if !line.is_empty() {
            streams.insert(line);
        }
    }
    Some(Previous { run, boot, streams })
}

/// This run's intent file.
pub struct IntentFile {
    path: PathBuf,
    file: Mutex<Option<File>>,
}

impl IntentFile {
    /// Starts the file for `run` (replacing the previous one) and syncs its header, so that a
    /// header that is present and names this run was written before any push of it.
    pub fn create(data_dir: &Path, run: &str, boot: &str) -> std::io::Result<IntentFile> {
        std::fs::create_dir_all(data_dir)?;
        let path = data_dir.join(FILE_NAME);
        let mut file = File::create(&path)?;
        file.write_all(format!("{MAGIC} run={run} boot={boot}\n").as_bytes())?;
        file.sync_all()?;
        Ok(IntentFile {
            path,
            file: Mutex::new(Some(file)),
        })
    }
}

impl WriteIntent for IntentFile {
    fn declare(&self, stream: &str) {
        let mut guard = self.file.lock();
        let Some(file) = guard.as_mut() else {
            return;
        };
        if let Err(e) = file.write_all(format!("{stream}\n").as_bytes()) {
            // Without the line the next start could not tell this stream may be behind. With
            // no file at all it treats every stream so, which is safe.
            tracing::error!(error = %e, path = %self.path.display(),
                "writing the stream intent file failed; removing it, so every stream gets a new epoch after a crash");
            *guard = None;
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_streams_are_read_back_with_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let f = IntentFile::create(dir.path(), "r1", "b1").unwrap();
        f.declare("user:1");
        f.declare("tag:x");
        let p = read_previous(dir.path()).unwrap();
        assert_eq!((p.run.as_str(), p.boot.as_str()), ("r1", "b1"));
        let mut s: Vec<_> = p.streams.into_iter().collect();
        s.sort();
        assert_eq!(s, ["tag:x", "user:1"]);
        std::fs::write(dir.path().join(FILE_NAME), "garbage\n").unwrap();
        assert_eq!(read_previous(dir.path()), None);
    }
}
