//! The write-intent file: `<data_dir>/streams.intent`. Its first line names the run and the
//! machine's boot; every other line is `<offset> <stream>`, written before the push with that
//! offset reaches a socket, for the first push to a stream since the writer last took it.
//!
//! After a crash a stream may have lost pushes exactly when the file declares it at an offset
//! the database does not hold: every push after the writer's last snapshot of a stream follows
//! a line declaring the first of them, and a snapshot that was committed covers every line
//! before it. Streams whose declarations the database covers keep their epoch.
//!
//! A line is an ordinary `write` with no fsync, on the delivery path once per stream per flush
//! interval at most. It survives the process being killed (the kernel holds it), not the
//! machine going down; the boot id in the header tells the next start which of the two
//! happened. The file is rewritten with only the declarations not yet stored once the lines
//! appended since the last rewrite outnumber them, so it stays proportional to the streams
//! written within a flush interval, not to the run's length.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use crate::websocket::history::WriteIntent;

/// The file name under the data dir.
pub const FILE_NAME: &str = "streams.intent";
const MAGIC: &str = "switchboard-stream-intent-v2";
/// Lines appended before a rewrite is considered, whatever the number of open declarations.
const REWRITE_AFTER: usize = 4096;

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
    /// For each stream declared, the highest offset declared.
    pub declared: HashMap<String, u64>,
}

impl Previous {
    /// Whether `stream`, stored up to `stored_offset`, may have lost pushes in that run.
    pub fn may_have_lost(&self, stream: &str, stored_offset: u64) -> bool {
        self.declared
            .get(stream)
            .is_some_and(|&declared| declared > stored_offset)
    }
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
    let mut declared: HashMap<String, u64> = HashMap::new();
    for line in lines {
        let line = line.ok()?;
        // Each line went in with one `write`, so a killed process leaves whole lines only.
        if line.is_empty() {
            continue;
        }
        let (offset, stream) = line.split_once(' ')?;
        let offset: u64 = offset.parse().ok()?;
        let at = declared.entry(stream.to_string()).or_default();
        *at = (*at).max(offset);
    }
    Some(Previous {
        run,
        boot,
        declared,
    })
}

/// This run's intent file.
pub struct IntentFile {
    path: PathBuf,
    header: String,
    state: Mutex<State>,
}

struct State {
    /// `None` once a write failed and the file was removed.
    file: Option<File>,
    /// Declarations the database may not hold yet: stream → highest offset declared.
    open: HashMap<String, u64>,
    /// Lines appended since the file was last written whole.
    appended: usize,
}

impl IntentFile {
    /// Starts the file for `run` (replacing the previous one) and syncs its header, so that a
    /// header that is present and names this run was written before any push of it.
    pub fn create(data_dir: &Path, run: &str, boot: &str) -> std::io::Result<IntentFile> {
        std::fs::create_dir_all(data_dir)?;
        let path = data_dir.join(FILE_NAME);
        let header = format!("{MAGIC} run={run} boot={boot}\n");
        let mut file = File::create(&path)?;
        file.write_all(header.as_bytes())?;
        file.sync_all()?;
        Ok(IntentFile {
            path,
            header,
            state: Mutex::new(State {
                file: Some(file),
                open: HashMap::new(),
                appended: 0,
            }),
        })
    }

    /// The database now holds `stream` up to `offset`: declarations up to it are covered.
    /// Called by the writer after each committed flush, for every stream it stored.
    pub fn stored(&self, streams: &[(&str, u64)]) {
        let mut st = self.state.lock();
        for (stream, offset) in streams {
            if st.open.get(*stream).is_some_and(|d| d <= offset) {
                st.open.remove(*stream);
            }
        }
        if st.file.is_some() && st.appended > REWRITE_AFTER.max(2 * st.open.len()) {
            self.rewrite(&mut st);
        }
    }

    /// Replaces the file with its header and the open declarations. Written beside it and
    /// renamed over it, so that a kill at any moment leaves one whole file or the other.
    fn rewrite(&self, st: &mut State) {
        let mut text = self.header.clone();
        for (stream, offset) in &st.open {
            text.push_str(&format!("{offset} {stream}\n"));
        }
        let next = self.path.with_extension("intent.new");
        let replaced = (|| {
            let mut f = File::create(&next)?;
            f.write_all(text.as_bytes())?;
            std::fs::rename(&next, &self.path)?;
            Ok::<_, std::io::Error>(f)
        })();
        match replaced {
            Ok(f) => {
                st.file = Some(f);
                st.appended = 0;
            }
            // The old file is still in place and still true (a superset); keep appending to it.
            Err(e) => {
                let _ = std::fs::remove_file(&next);
                tracing::warn!(error = %e, path = %self.path.display(), "rewriting the stream intent file failed; it keeps growing until a rewrite succeeds");
                st.appended = 0;
            }
        }
    }
}

impl WriteIntent for IntentFile {
    fn declare(&self, stream: &str, offset: u64) {
        let mut st = self.state.lock();
        let at = st.open.entry(stream.to_string()).or_default();
        *at = (*at).max(offset);
        let Some(file) = st.file.as_mut() else {
            return;
        };
        if let Err(e) = file.write_all(format!("{offset} {stream}\n").as_bytes()) {
            // Without the line the next start could not tell this stream may be behind. With
            // no file at all it treats every stream so, which is safe.
            tracing::error!(error = %e, path = %self.path.display(),
                "writing the stream intent file failed; removing it, so every stream gets a new epoch after a crash");
            st.file = None;
            let _ = std::fs::remove_file(&self.path);
            return;
        }
        st.appended += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_declaration_of_each_stream_is_read_back_with_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let f = IntentFile::create(dir.path(), "r1", "b1").unwrap();
        f.declare("user:1", 1);
        f.declare("tag:x", 4);
        f.declare("user:1", 7);
        let p = read_previous(dir.path()).unwrap();
        assert_eq!((p.run.as_str(), p.boot.as_str()), ("r1", "b1"));
        assert_eq!(p.declared.len(), 2);
        assert_eq!((p.declared["user:1"], p.declared["tag:x"]), (7, 4));
        assert!(
            p.may_have_lost("user:1", 6),
            "declared beyond what is stored"
        );
        assert!(!p.may_have_lost("user:1", 7), "covered by the store");
        assert!(!p.may_have_lost("user:2", 0), "never written in that run");
        std::fs::write(dir.path().join(FILE_NAME), "garbage\n").unwrap();
        assert_eq!(read_previous(dir.path()), None);
    }

    #[test]
    fn the_file_is_rewritten_with_only_what_is_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let f = IntentFile::create(dir.path(), "r1", "b1").unwrap();
        let streams: Vec<String> = (0..REWRITE_AFTER + 10)
            .map(|i| format!("user:{i}"))
            .collect();
        for s in &streams {
            f.declare(s, 3);
        }
        f.declare("tag:hot", 9);
        let stored: Vec<(&str, u64)> = streams.iter().map(|s| (s.as_str(), 3)).collect();
        // `tag:hot` was stored only up to 8: its declaration at 9 stays open.
        f.stored(&[stored.as_slice(), &[("tag:hot", 8)]].concat());
        let len = std::fs::metadata(dir.path().join(FILE_NAME)).unwrap().len();
        assert!(len < 200, "rewritten to the open declarations: {len} bytes");
        let p = read_previous(dir.path()).unwrap();
        assert_eq!(p.declared, HashMap::from([("tag:hot".to_string(), 9)]));
        // Appending goes on in the new file.
        f.declare("user:5", 4);
        let p = read_previous(dir.path()).unwrap();
        assert_eq!(p.declared.len(), 2);
        assert_eq!(p.declared["user:5"], 4);
    }
}
