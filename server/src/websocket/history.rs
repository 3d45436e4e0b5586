//! Delivery streams: every push to `user:<id>`, `tag:<name>` or `all` gets the next
//! offset of its stream and is kept for `history.ttl`, at most `history.size` per stream and
//! `history.max_bytes` in total, so a reconnecting client can `recover` what it missed.
//!
//! Ordering: a stream's offset is assigned and its frame handed to the local sockets while the
//! stream's shard lock is held, and recovery replays under the same lock, so pushes racing
//! with a recovery are neither lost, duplicated nor reordered.
//!
//! Durability: memory is always where recovery reads from. With durable history, every change
//! also marks its stream dirty in its shard; a writer ([`crate::history`]) takes the dirty
//! streams' new entries with [`MemoryHistory::take_changes`] every flush interval and stores
//! them, so a push never waits for the database and nothing queues beyond the history's own
//! bounds. Before a stream's first push since the writer last took it is handed to any socket,
//! the [`WriteIntent`] hears of it with that push's offset, so after a crash the streams that
//! may have lost pushes are known: those declared beyond what the store holds.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::websocket::outbox::Outbound;
use parking_lot::{Mutex, MutexGuard};
use switchboard_sdk::protocol::StreamPosition;

const SHARDS: usize = 64;
/// Stream metadata (epoch, offset) kept even after entries expire, up to this many streams.
const MAX_STREAMS: usize = 1_000_000;

/// The outcome of recovering one stream.
#[derive(Debug, Clone)]
pub enum Recovery {
    /// Everything missed, in order (possibly nothing).
    Frames(Vec<Outbound>),
    /// The epoch differs or the gap left history: the client must reload.
    Lost,
}

struct Entry {
    offset: u64,
    at: Instant,
    frame: Outbound,
}

struct StreamState {
    epoch: Arc<str>,
    offset: u64,
    entries: VecDeque<Entry>,
    bytes: usize,
    last_used: Instant,
    /// Changed since the writer last took it (and listed in the shard's `dirty`).
    dirty: bool,
    /// The write intent heard of this stream since the writer last took it.
    declared: bool,
    /// Highest offset the writer has stored, in this epoch.
    persisted: u64,
}

impl StreamState {
    fn new() -> Self {
        StreamState {
            epoch: Arc::from(new_epoch()),
            offset: 0,
            entries: VecDeque::new(),
            bytes: 0,
            last_used: Instant::now(),
            dirty: false,
            declared: false,
            persisted: 0,
        }
    }

    fn expire(&mut self, ttl: Duration, now: Instant) -> usize {
        let mut freed = 0;
        while let Some(front) = self.entries.front() {
            if now.duration_since(front.at) <= ttl {
                break;
            }
            freed += frame_len(&front.frame);
            self.entries.pop_front();
        }
        self.bytes -= freed;
        freed
    }
}

/// A fresh epoch name.
pub fn new_epoch() -> String {
    crate::random::name(crate::random::ALPHANUMERIC, 10)
}

fn frame_len(f: &Outbound) -> usize {
    match f {
        Outbound::Text(t) => t.len(),
        Outbound::Binary(b) => b.len(),
    }
}

/// One shard: the streams hashing to it.
#[derive(Default)]
pub struct Shard {
    streams: HashMap<Arc<str>, StreamState>,
    /// Streams changed (or forgotten) since the writer last looked; only kept when durable.
    dirty: Vec<Arc<str>>,
}

impl Shard {
    fn mark(&mut self, tracking: bool, name: &Arc<str>) {
        if !tracking {
            return;
        }
        if let Some(st) = self.streams.get_mut(name) {
            if st.dirty {
                return;
            }
            st.dirty = true;
        }
        self.dirty.push(name.clone());
    }
}

/// Told of a stream before its first push since the writer last took it reaches any socket,
/// so that after a crash the streams whose stored history may be behind are known: those
/// declared at an offset the store does not reach. It must not block for long: it runs on the
/// delivery path, under the stream's lock.
pub trait WriteIntent: Send + Sync + 'static {
    /// `stream` is about to get `offset`, its first push since the writer last took it.
    fn declare(&self, stream: &str, offset: u64);
}

/// A stream's state as the writer stores it.
pub struct Snapshot {
    /// Its epoch.
    pub epoch: Arc<str>,
    /// Its last offset.
    pub offset: u64,
    /// The first offset still in history (`offset + 1` when none is): stored entries below it
    /// are gone.
    pub first_kept: u64,
    /// The writer's last stored offset for this epoch: stored entries above it are stale.
    pub persisted: u64,
    /// Entries after `persisted`, oldest first: (offset, age, frame).
    pub entries: Vec<(u64, Duration, Outbound)>,
}

/// What changed in one stream since the writer last looked.
pub struct Change {
    /// The stream.
    pub stream: Arc<str>,
    /// Its state, or `None` when the stream was forgotten.
    pub state: Option<Snapshot>,
}

/// A stream as loaded from storage at start.
pub struct Restored {
    /// Its epoch.
    pub epoch: String,
    /// Its last offset.
    pub offset: u64,
    /// Its entries, oldest first, consecutive and ending at `offset`: (offset, age, frame).
    pub entries: Vec<(u64, Duration, Outbound)>,
}

/// A locked shard; offsets are assigned and frames delivered while it is held.
pub struct ShardGuard<'a> {
    guard: MutexGuard<'a, Shard>,
    history: &'a MemoryHistory,
}

/// The in-memory history of a single node.
pub struct MemoryHistory {
    shards: Vec<Mutex<Shard>>,
    size: usize,
    ttl: Duration,
    max_bytes: usize,
    bytes: Mutex<usize>,
    intent: Option<Arc<dyn WriteIntent>>,
    /// Set by [`MemoryHistory::seal`] before the last flush.
    sealed: AtomicBool,
    /// A stream changed after the seal: the last flush may not hold everything.
    late: AtomicBool,
}

impl MemoryHistory {
    /// `size` entries per stream for `ttl`, `max_bytes` in total, in memory only.
    pub fn new(size: usize, ttl: Duration, max_bytes: usize) -> Self {
        MemoryHistory {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            size,
            ttl,
            max_bytes,
            bytes: Mutex::new(0),
            intent: None,
            sealed: AtomicBool::new(false),
            late: AtomicBool::new(false),
        }
    }

    /// Like [`MemoryHistory::new`], tracking changes for a writer that stores them; `intent`
    /// hears of each stream before its first push of this run is delivered.
    pub fn durable(
        size: usize,
        ttl: Duration,
        max_bytes: usize,
        intent: Arc<dyn WriteIntent>,
    ) -> Self {
        MemoryHistory {
            intent: Some(intent),
            ..Self::new(size, ttl, max_bytes)
        }
    }

    fn tracking(&self) -> bool {
        self.intent.is_some()
    }

    /// The configured entries per stream.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The configured time entries are kept.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Puts a stored stream back at start (before any socket is served). Entries older than
    /// the ttl or beyond the size are left out; the stream is not dirty, since storage holds it.
    pub fn restore(&self, stream: &str, restored: Restored) {
        let now = Instant::now();
        let mut st = StreamState::new();
        st.epoch = Arc::from(restored.epoch);
        st.offset = restored.offset;
        st.persisted = restored.offset;
        let skip = restored.entries.len().saturating_sub(self.size);
        for (offset, age, frame) in restored.entries.into_iter().skip(skip) {
            if age > self.ttl {
                continue;
            }
            let at = now.checked_sub(age).unwrap_or(now);
            st.bytes += frame_len(&frame);
            st.entries.push_back(Entry { offset, at, frame });
        }
        let added = st.bytes;
        self.shards[Self::shard_of(stream)]
            .lock()
            .streams
            .insert(Arc::from(stream), st);
        if self.account(added, 0) {
            self.shed();
        }
    }

    /// Takes every stream changed since the last call, with what the writer has not stored.
    pub fn take_changes(&self) -> Vec<Change> {
        let now = Instant::now();
        let mut out = Vec::new();
        for shard in &self.shards {
            let mut s = shard.lock();
            if s.dirty.is_empty() {
                continue;
            }
            let names = std::mem::take(&mut s.dirty);
            let mut seen = HashSet::with_capacity(names.len());
            for name in names {
                if !seen.insert(name.clone()) {
                    continue;
                }
                let state = s.streams.get_mut(&name).map(|st| {
                    st.dirty = false;
                    // Pushes after this snapshot are not in it: the next one declares again.
                    st.declared = false;
                    let first_kept = st.entries.front().map_or(st.offset + 1, |e| e.offset);
                    Snapshot {
                        epoch: st.epoch.clone(),
                        offset: st.offset,
                        first_kept,
                        persisted: st.persisted,
                        entries: st
                            .entries
                            .iter()
                            .filter(|e| e.offset > st.persisted)
                            .map(|e| (e.offset, now.duration_since(e.at), e.frame.clone()))
                            .collect(),
                    }
                });
                out.push(Change {
                    stream: name,
                    state,
                });
            }
        }
        out
    }

    /// The writer stored `stream` up to `offset` in `epoch`.
    pub fn stored(&self, stream: &str, epoch: &str, offset: u64) {
        let mut s = self.shards[Self::shard_of(stream)].lock();
        if let Some(st) = s.streams.get_mut(stream) {
            if &*st.epoch == epoch && st.persisted < offset {
                st.persisted = offset;
            }
        }
    }

    /// The writer could not store these streams: they are taken again by the next call.
    pub fn retry(&self, streams: &[Arc<str>]) {
        let tracking = self.tracking();
        for name in streams {
            self.shards[Self::shard_of(name)]
                .lock()
                .mark(tracking, name);
        }
    }

    /// From now on a change means the last flush is incomplete ([`MemoryHistory::late`]).
    /// Every shard is locked once, so every change made before this returns is already listed.
    pub fn seal(&self) {
        for shard in &self.shards {
            let _s = shard.lock();
            self.sealed.store(true, Ordering::SeqCst);
        }
    }

    /// Whether a stream changed after [`MemoryHistory::seal`].
    pub fn late(&self) -> bool {
        self.late.load(Ordering::SeqCst)
    }

    /// The shard index of a stream (lock shards in ascending index order).
    pub fn shard_of(stream: &str) -> usize {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        stream.hash(&mut h);
        (h.finish() as usize) % SHARDS
    }

    /// Locks the shard of `stream`.
    pub fn lock(&self, stream: &str) -> ShardGuard<'_> {
        self.lock_index(Self::shard_of(stream))
    }

    /// Locks shard `i`.
    pub fn lock_index(&self, i: usize) -> ShardGuard<'_> {
        ShardGuard {
            guard: self.shards[i].lock(),
            history: self,
        }
    }

    /// Drops expired entries everywhere (called periodically).
    pub fn sweep(&self) {
        let now = Instant::now();
        let mut freed = 0;
        for shard in &self.shards {
            let mut s = shard.lock();
            for st in s.streams.values_mut() {
                freed += st.expire(self.ttl, now);
            }
        }
        let mut b = self.bytes.lock();
        *b = b.saturating_sub(freed);
    }

    /// Bytes held in entries.
    pub fn bytes(&self) -> usize {
        *self.bytes.lock()
    }

    fn account(&self, added: usize, freed: usize) -> bool {
        let mut b = self.bytes.lock();
        *b = (*b + added).saturating_sub(freed);
        *b > self.max_bytes
    }

    /// Over the byte budget: drop the least recently used streams' entries (their epoch stays,
    /// so a recovery into the dropped range answers `false`).
    fn shed(&self) {
        let target = self.max_bytes / 10 * 9;
        let mut candidates: Vec<(Instant, usize, Arc<str>)> = Vec::new();
        for (i, shard) in self.shards.iter().enumerate() {
            let s = shard.lock();
            for (name, st) in &s.streams {
                if st.bytes > 0 {
                    candidates.push((st.last_used, i, name.clone()));
                }
            }
        }
        candidates.sort_by_key(|c| c.0);
        for (_, i, name) in candidates {
            if self.bytes() <= target {
                break;
            }
            let mut s = self.shards[i].lock();
            if let Some(st) = s.streams.get_mut(&name) {
                let freed = st.bytes;
                st.entries.clear();
                st.bytes = 0;
                s.mark(self.tracking(), &name);
                drop(s);
                self.account(0, freed);
            }
        }
    }
}

impl ShardGuard<'_> {
    fn state(&mut self, stream: &str) -> &mut StreamState {
        if !self.guard.streams.contains_key(stream) {
            let tracking = self.history.tracking();
            if self.guard.streams.len() * SHARDS >= MAX_STREAMS {
                // Forget the stalest idle stream of this shard; its clients will reload.
                if let Some(victim) = self
                    .guard
                    .streams
                    .iter()
                    .filter(|(_, s)| s.entries.is_empty())
                    .min_by_key(|(_, s)| s.last_used)
                    .map(|(k, _)| k.clone())
                {
                    self.guard.streams.remove(&victim);
                    if tracking {
                        self.guard.dirty.push(victim);
                    }
                }
            }
            let name: Arc<str> = Arc::from(stream);
            self.guard.streams.insert(name.clone(), StreamState::new());
            // A new epoch is stored too, so a stream that then gets nothing keeps it.
            self.guard.mark(tracking, &name);
        }
        // Present: inserted just above when missing.
        self.guard
            .streams
            .get_mut(stream)
            .expect("stream state exists")
    }

    /// The stream's current position (offset 0 = nothing published yet).
    pub fn position(&mut self, stream: &str) -> (u64, Arc<str>) {
        let st = self.state(stream);
        (st.offset, st.epoch.clone())
    }

    /// Assigns the next offset, encodes the frame with it, keeps it, and returns it.
    pub fn append(
        &mut self,
        stream: &str,
        encode: impl FnOnce(&StreamPosition) -> Outbound,
    ) -> Outbound {
        let size = self.history.size;
        let ttl = self.history.ttl;
        let now = Instant::now();
        let history = self.history;
        if history.tracking() {
            if history.sealed.load(Ordering::SeqCst) {
                history.late.store(true, Ordering::SeqCst);
            }
            let st = self.state(stream);
            if !st.declared {
                st.declared = true;
                let next = st.offset + 1;
                if let Some(intent) = &history.intent {
                    intent.declare(stream, next);
                }
            }
            if !st.dirty {
                st.dirty = true;
                let name = self
                    .guard
                    .streams
                    .get_key_value(stream)
                    .map(|(k, _)| k.clone());
                if let Some(name) = name {
                    self.guard.dirty.push(name);
                }
            }
        }
        let st = self.state(stream);
        st.offset += 1;
        st.last_used = now;
        let pos = StreamPosition {
            stream: stream.to_string(),
            offset: st.offset,
            epoch: st.epoch.to_string(),
        };
        let frame = encode(&pos);
        let mut freed = st.expire(ttl, now);
        let len = frame_len(&frame);
        if size > 0 {
            st.entries.push_back(Entry {
                offset: pos.offset,
                at: now,
                frame: frame.clone(),
            });
            st.bytes += len;
            while st.entries.len() > size {
                if let Some(e) = st.entries.pop_front() {
                    let l = frame_len(&e.frame);
                    st.bytes -= l;
                    freed += l;
                }
            }
        }
        let added = if size > 0 { len } else { 0 };
        if self.history.account(added, freed) {
            // Release this shard before scanning the others.
            let history = self.history;
            MutexGuard::unlocked(&mut self.guard, || history.shed());
        }
        frame
    }

    /// Frames after `since` up to and including `until`, if `epoch` matches and none of them
    /// has left history.
    pub fn range(&mut self, stream: &str, epoch: &str, since: u64, until: u64) -> Recovery {
        let ttl = self.history.ttl;
        let now = Instant::now();
        let st = self.state(stream);
        if &*st.epoch != epoch || since > st.offset {
            return Recovery::Lost;
        }
        let freed = st.expire(ttl, now);
        let until = until.min(st.offset);
        let out = if since >= until {
            Recovery::Frames(Vec::new())
        } else {
            match st.entries.front() {
                Some(first) if first.offset <= since + 1 => Recovery::Frames(
                    st.entries
                        .iter()
                        .filter(|e| e.offset > since && e.offset <= until)
                        .map(|e| e.frame.clone())
                        .collect(),
                ),
                _ => Recovery::Lost,
            }
        };
        if freed > 0 {
            self.history.account(0, freed);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::Utf8Bytes;

    fn frame(p: &StreamPosition) -> Outbound {
        Outbound::Text(Utf8Bytes::from(format!("{}", p.offset)))
    }

    fn texts(r: Recovery) -> Vec<String> {
        match r {
            Recovery::Frames(f) => f
                .into_iter()
                .map(|o| match o {
                    Outbound::Text(t) => t.to_string(),
                    Outbound::Binary(_) => unreachable!(),
                })
                .collect(),
            Recovery::Lost => vec!["lost".into()],
        }
    }

    #[test]
    fn offsets_are_consecutive_and_ranges_replay_in_order() {
        let h = MemoryHistory::new(3, Duration::from_secs(60), 1 << 20);
        let mut g = h.lock("user:1");
        let (o, epoch) = g.position("user:1");
        assert_eq!(o, 0);
        for _ in 0..5 {
            g.append("user:1", frame);
        }
        assert_eq!(texts(g.range("user:1", &epoch, 2, 5)), ["3", "4", "5"]);
        assert_eq!(texts(g.range("user:1", &epoch, 4, 4)), Vec::<String>::new());
        assert_eq!(
            texts(g.range("user:1", &epoch, 1, 5)),
            ["lost"],
            "2 left history"
        );
        assert_eq!(texts(g.range("user:1", "other", 4, 5)), ["lost"]);
        assert_eq!(
            texts(g.range("user:1", &epoch, 9, 9)),
            ["lost"],
            "from the future"
        );
    }

    #[test]
    fn ttl_expires_entries_but_keeps_the_position() {
        let h = MemoryHistory::new(10, Duration::from_millis(10), 1 << 20);
        let mut g = h.lock("all");
        let (_, epoch) = g.position("all");
        g.append("all", frame);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(texts(g.range("all", &epoch, 0, 1)), ["lost"]);
        assert_eq!(texts(g.range("all", &epoch, 1, 1)), Vec::<String>::new());
        drop(g);
        h.sweep();
        assert_eq!(h.bytes(), 0);
    }

    struct Heard(Mutex<Vec<(String, u64)>>);

    impl WriteIntent for Heard {
        fn declare(&self, stream: &str, offset: u64) {
            self.0.lock().push((stream.to_string(), offset));
        }
    }

    #[test]
    fn a_durable_history_hands_the_writer_what_it_has_not_stored() {
        let heard = Arc::new(Heard(Mutex::new(Vec::new())));
        let h = MemoryHistory::durable(3, Duration::from_secs(60), 1 << 20, heard.clone());
        for _ in 0..5 {
            h.lock("user:1").append("user:1", frame);
        }
        assert_eq!(
            *heard.0.lock(),
            [("user:1".to_string(), 1)],
            "declared once, before the first push"
        );
        let changes = h.take_changes();
        assert_eq!(changes.len(), 1);
        let s = changes[0].state.as_ref().unwrap();
        let offsets: Vec<u64> = s.entries.iter().map(|e| e.0).collect();
        assert_eq!((s.offset, s.first_kept, s.persisted), (5, 3, 0));
        assert_eq!(offsets, [3, 4, 5]);
        assert!(h.take_changes().is_empty(), "nothing changed since");
        h.stored("user:1", &s.epoch, 5);
        h.lock("user:1").append("user:1", frame);
        h.lock("user:1").append("user:1", frame);
        assert_eq!(
            heard.0.lock()[1..],
            [("user:1".to_string(), 6)],
            "declared again, once, after the writer took the stream"
        );
        let changes = h.take_changes();
        let s = changes[0].state.as_ref().unwrap();
        assert_eq!((s.first_kept, s.persisted, s.entries.len()), (5, 5, 2));
        h.retry(&[changes[0].stream.clone()]);
        assert_eq!(h.take_changes().len(), 1, "a failed write is taken again");
        assert!(!h.late());
        h.seal();
        h.lock("user:1").append("user:1", frame);
        assert!(h.late(), "a push after the seal is noticed");
    }

    #[test]
    fn restored_streams_keep_epoch_offset_and_only_live_entries() {
        let h = MemoryHistory::new(2, Duration::from_secs(60), 1 << 20);
        let old = Duration::from_secs(120);
        let fresh = Duration::from_secs(1);
        h.restore(
            "tag:a",
            Restored {
                epoch: "e1".into(),
                offset: 4,
                entries: vec![
                    (1, old, frame(&pos(1))),
                    (2, fresh, frame(&pos(2))),
                    (3, fresh, frame(&pos(3))),
                    (4, fresh, frame(&pos(4))),
                ],
            },
        );
        let mut g = h.lock("tag:a");
        assert_eq!(g.position("tag:a"), (4, Arc::from("e1")));
        assert_eq!(texts(g.range("tag:a", "e1", 2, 4)), ["3", "4"]);
        assert_eq!(
            texts(g.range("tag:a", "e1", 1, 4)),
            ["lost"],
            "beyond the size"
        );
    }

    fn pos(offset: u64) -> StreamPosition {
        StreamPosition {
            stream: "tag:a".into(),
            offset,
            epoch: "e1".into(),
        }
    }

    #[test]
    fn the_byte_budget_sheds_old_streams() {
        let h = MemoryHistory::new(100, Duration::from_secs(60), 100);
        for i in 0..50 {
            let name = format!("tag:{i}");
            h.lock(&name).append(&name, frame);
        }
        assert!(h.bytes() <= 100);
    }
}
