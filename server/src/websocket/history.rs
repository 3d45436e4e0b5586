//! Delivery streams: every push to `user:<id>`, `tag:<name>` or `all` gets the next
//! offset of its stream and is kept for `history.ttl`, at most `history.size` per stream and
//! `history.max_bytes` in total, so a reconnecting client can `recover` what it missed.
//!
//! Ordering: a stream's offset is assigned and its frame handed to the local sockets while the
//! stream's shard lock is held, and recovery replays under the same lock, so pushes racing
//! with a recovery are neither lost, duplicated nor reordered.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, MutexGuard};
use switchboard_sdk::outbox::Outbound;
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
}

impl StreamState {
    fn new() -> Self {
        StreamState {
            epoch: Arc::from(new_epoch()),
            offset: 0,
            entries: VecDeque::new(),
            bytes: 0,
            last_used: Instant::now(),
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
}

impl MemoryHistory {
    /// `size` entries per stream for `ttl`, `max_bytes` in total.
    pub fn new(size: usize, ttl: Duration, max_bytes: usize) -> Self {
        MemoryHistory {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            size,
            ttl,
            max_bytes,
            bytes: Mutex::new(0),
        }
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
                drop(s);
                self.account(0, freed);
            }
        }
    }
}

impl ShardGuard<'_> {
    fn state(&mut self, stream: &str) -> &mut StreamState {
        if !self.guard.streams.contains_key(stream) {
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
                }
            }
            self.guard
                .streams
                .insert(Arc::from(stream), StreamState::new());
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
