//! The client registry: every live connection indexed by id, user and tag, so each send
//! costs O(recipients). One short `RwLock` guards all three indexes so they never disagree;
//! it is never held across an await, and pushing to a client only appends to its bounded
//! queue.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::websocket::client::Connection;
use crate::websocket::outbox::{Outbound, PushOutcome};
use parking_lot::RwLock;
use switchboard_sdk::protocol::{Envelope, Push, StreamPosition};
use switchboard_sdk::{Audience, ClientId, Identity, Tag, UserId};

use crate::metrics::Metrics;
use crate::websocket::io::Written;

/// Sockets one write task serves: small enough that a big fan-out spreads over every worker
/// thread and never holds one for long, large enough that spawning costs little per socket.
const WRITE_CHUNK: usize = 128;

/// What a delivery collected under the registry's lock, acted on after it.
struct Delivery {
    now: Instant,
    /// Connections whose queue overflowed.
    cut: Vec<Arc<Connection>>,
    /// Quiet connections whose new frame nobody has been woken to write.
    write: Vec<Arc<Connection>>,
}

/// A delivery writing to more quiet sockets than this is a large fan-out, paced by [`Pace`].
const LARGE_FANOUT: usize = 16 * WRITE_CHUNK;

/// When a large fan-out is written by the sender and when by the connection tasks.
///
/// Written by the sender, each delivery costs one syscall per socket, always. Handed to the
/// woken connection tasks, a task that runs late finds the next delivery queued too and
/// writes both at once, so a server that falls behind catches up. Direct writes are cheaper
/// while the server keeps up; a large fan-out is therefore written directly only when the
/// previous direct one's write-out took less than half the time since it began, i.e. while
/// fan-outs leave the server idle at least half of the time between them.
struct Pace {
    epoch: Instant,
    /// When the last directly-written large fan-out began (ns since `epoch`; 0 = never).
    began: AtomicU64,
    /// When its last chunk was written (ns since `epoch`).
    finished: AtomicU64,
}

impl Pace {
    fn new() -> Self {
        Pace {
            epoch: Instant::now(),
            began: AtomicU64::new(0),
            finished: AtomicU64::new(0),
        }
    }

    fn nanos(&self, at: Instant) -> u64 {
        // At least 1: 0 means "never".
        (at.saturating_duration_since(self.epoch).as_nanos() as u64).max(1)
    }

    /// A chunk of the directly-written fan-out finished writing at `at`.
    fn chunk_written(&self, at: Instant) {
        self.finished.fetch_max(self.nanos(at), Ordering::Relaxed);
    }

    /// Whether a large fan-out starting `now` is written directly; if so it is the new
    /// reference. (Two deciding at once may both write directly: harmless.)
    fn direct(&self, now: Instant) -> bool {
        let at = self.nanos(now);
        let began = self.began.load(Ordering::Relaxed);
        let took = self.finished.load(Ordering::Relaxed).saturating_sub(began);
        if began != 0 && at.saturating_sub(began) < 2 * took {
            return false;
        }
        self.began.store(at, Ordering::Relaxed);
        self.finished.store(at, Ordering::Relaxed);
        true
    }
}

/// Writes the frames just queued to quiet sockets, from tasks spawned for chunks of them (the
/// caller may hold a stream's lock, and a fan-out's writes should use every core), or, for a
/// large fan-out coming close behind the last ([`Pace`]), wakes their connection tasks.
/// Without a runtime (unit tests) the connection tasks are woken too.
fn write_soon(write: Vec<Arc<Connection>>, now: Instant, metrics: &Arc<Metrics>, pace: &Arc<Pace>) {
    if write.is_empty() {
        return;
    }
    let large = write.len() > LARGE_FANOUT;
    let rt = match tokio::runtime::Handle::try_current() {
        Ok(rt) if !large || pace.direct(now) => rt,
        _ => {
            for c in write {
                c.outbox().wake();
            }
            return;
        }
    };
    let mut rest = write.into_iter();
    loop {
        let chunk: Vec<Arc<Connection>> = rest.by_ref().take(WRITE_CHUNK).collect();
        if chunk.is_empty() {
            break;
        }
        let metrics = metrics.clone();
        let pace = large.then(|| pace.clone());
        rt.spawn(async move {
            let mut written = Written::default();
            for c in &chunk {
                c.outbox().write_now(now, &mut written);
            }
            metrics.messages_out.add(written.frames);
            metrics.bytes_out.add(written.bytes);
            if let Some(pace) = pace {
                pace.chunk_written(Instant::now());
            }
        });
    }
}

/// Why a connection or identity change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// `websocket.max_connections` reached.
    #[error("too many connections on this server")]
    Total,
    /// `websocket.max_connections_per_user` reached.
    #[error("too many connections for this user")]
    PerUser,
}

/// Why a tag change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagChangeError {
    /// The connection already holds the maximum number of tags.
    #[error("at most {0} tags per connection")]
    TooMany(usize),
    /// The connection is gone.
    #[error("client not found")]
    NoClient,
}

#[derive(Default)]
struct Indexes {
    clients: HashMap<ClientId, Arc<Connection>>,
    users: HashMap<UserId, Vec<Arc<Connection>>>,
    tags: HashMap<Tag, HashMap<ClientId, Arc<Connection>>>,
    /// Connections counted against the limits (reserved at the handshake).
    total: usize,
    per_user: HashMap<UserId, usize>,
}

/// Connection limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// 0 = unlimited.
    pub max_connections: usize,
    /// 0 = unlimited.
    pub max_per_user: usize,
    /// Tags per connection.
    pub max_tags: usize,
}

/// The registry.
pub struct Registry {
    idx: RwLock<Indexes>,
    node: Arc<str>,
    prefix: String,
    counter: AtomicU64,
    limits: Limits,
    metrics: Arc<Metrics>,
    cut_listener: std::sync::OnceLock<tokio::sync::mpsc::Sender<Arc<Connection>>>,
    pace: Arc<Pace>,
}

/// A slot reserved at the handshake; released on drop unless the connection registered.
pub struct Reservation {
    registry: Arc<Registry>,
    user: Option<UserId>,
    armed: bool,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.armed {
            self.registry.release(self.user);
        }
    }
}

impl Registry {
    /// A registry for node `node`; client ids are `<prefix>.<n>`.
    pub fn new(node: &str, limits: Limits, metrics: Arc<Metrics>) -> Self {
        let prefix = crate::random::name(crate::random::UNAMBIGUOUS, 6);
        Registry {
            idx: RwLock::new(Indexes::default()),
            node: Arc::from(node),
            prefix,
            counter: AtomicU64::new(0),
            limits,
            metrics,
            cut_listener: std::sync::OnceLock::new(),
            pace: Arc::new(Pace::new()),
        }
    }

    /// This node's id.
    pub fn node(&self) -> &Arc<str> {
        &self.node
    }

    /// A fresh connection id.
    pub fn next_id(&self) -> ClientId {
        ClientId::new(
            &self.prefix,
            self.counter.fetch_add(1, Ordering::Relaxed) + 1,
        )
    }

    /// Reserves a slot against the limits.
    pub fn reserve(self: &Arc<Self>, user: Option<UserId>) -> Result<Reservation, LimitError> {
        let mut idx = self.idx.write();
        if self.limits.max_connections > 0 && idx.total >= self.limits.max_connections {
            return Err(LimitError::Total);
        }
        if let Some(u) = user {
            let n = idx.per_user.get(&u).copied().unwrap_or(0);
            if self.limits.max_per_user > 0 && n >= self.limits.max_per_user {
                return Err(LimitError::PerUser);
            }
            idx.per_user.insert(u, n + 1);
        }
        idx.total += 1;
        Ok(Reservation {
            registry: self.clone(),
            user,
            armed: true,
        })
    }

    fn release(&self, user: Option<UserId>) {
        let mut idx = self.idx.write();
        Self::release_locked(&mut idx, user);
    }

    fn release_locked(idx: &mut Indexes, user: Option<UserId>) {
        idx.total = idx.total.saturating_sub(1);
        if let Some(u) = user {
            Self::uncount_user(idx, u);
        }
    }

    fn uncount_user(idx: &mut Indexes, user: UserId) {
        if let Some(n) = idx.per_user.get_mut(&user) {
            *n -= 1;
            if *n == 0 {
                idx.per_user.remove(&user);
            }
        }
    }

    fn remove_from_user(idx: &mut Indexes, user: UserId, client: &Connection) {
        if let Some(list) = idx.users.get_mut(&user) {
            // Found by identity, not by comparing id strings: a user may hold many sockets
            // (a service account with a raised `max_connections_per_user`), and this runs under
            // the registry's write lock. The order of a user's sockets carries no meaning.
            if let Some(at) = list.iter().position(|c| std::ptr::eq(&**c, client)) {
                list.swap_remove(at);
            }
            if list.is_empty() {
                idx.users.remove(&user);
            }
        }
    }

    /// Adds a connection to the indexes, consuming its reservation.
    pub fn register(&self, client: Arc<Connection>, mut reservation: Reservation) {
        reservation.armed = false;
        let mut idx = self.idx.write();
        if let Some(u) = client.user_id() {
            idx.users.entry(u).or_default().push(client.clone());
        }
        idx.clients.insert(client.id().clone(), client);
        self.metrics.connections.set(idx.clients.len() as i64);
        self.metrics.users.set(idx.users.len() as i64);
    }

    /// Removes a connection from every index.
    pub fn unregister(&self, client: &Connection) {
        let mut idx = self.idx.write();
        if idx.clients.remove(client.id()).is_none() {
            return;
        }
        let user = client.user_id();
        if let Some(u) = user {
            Self::remove_from_user(&mut idx, u, client);
        }
        let tags = std::mem::take(&mut *client.tags_mut());
        for tag in tags {
            Self::remove_member(&mut idx, &tag, client.id());
        }
        Self::release_locked(&mut idx, user);
        self.metrics.connections.set(idx.clients.len() as i64);
        self.metrics.users.set(idx.users.len() as i64);
        self.metrics.tags.set(idx.tags.len() as i64);
    }

    fn remove_member(idx: &mut Indexes, tag: &Tag, id: &ClientId) {
        if let Some(members) = idx.tags.get_mut(tag) {
            members.remove(id);
            // Empty tags leave the index at once (the tutorial's auto-closing rooms).
            if members.is_empty() {
                idx.tags.remove(tag);
            }
        }
    }

    /// Gives an anonymous connection an identity (socket `login`), moving it in the user
    /// index and the per-user count in one step.
    pub fn set_identity(
        &self,
        client: &Arc<Connection>,
        identity: Identity,
    ) -> Result<(), LimitError> {
        let mut idx = self.idx.write();
        let new_user = identity.user_id;
        if let Some(u) = new_user {
            let n = idx.per_user.get(&u).copied().unwrap_or(0);
            if self.limits.max_per_user > 0 && n >= self.limits.max_per_user {
                return Err(LimitError::PerUser);
            }
        }
        let old_user = client.user_id();
        if let Some(u) = old_user {
            Self::remove_from_user(&mut idx, u, client);
            Self::uncount_user(&mut idx, u);
        }
        client.set_identity(Some(identity));
        if let Some(u) = new_user {
            *idx.per_user.entry(u).or_insert(0) += 1;
            if idx.clients.contains_key(client.id()) {
                idx.users.entry(u).or_default().push(client.clone());
            }
        }
        self.metrics.users.set(idx.users.len() as i64);
        Ok(())
    }

    /// Adds a tag to a connection. Returns the connection's sorted tags.
    pub fn join(&self, id: &ClientId, tag: Tag) -> Result<Vec<Tag>, TagChangeError> {
        let mut idx = self.idx.write();
        let client = idx
            .clients
            .get(id)
            .cloned()
            .ok_or(TagChangeError::NoClient)?;
        let mut tags = client.tags_mut();
        if !tags.contains(&tag) {
            if tags.len() >= self.limits.max_tags {
                return Err(TagChangeError::TooMany(self.limits.max_tags));
            }
            tags.insert(tag.clone());
            idx.tags
                .entry(tag)
                .or_default()
                .insert(id.clone(), client.clone());
        }
        let list = tags.iter().cloned().collect();
        drop(tags);
        self.metrics.tags.set(idx.tags.len() as i64);
        Ok(list)
    }

    /// Removes a tag from a connection. Returns the connection's sorted tags.
    pub fn quit(&self, id: &ClientId, tag: &Tag) -> Result<Vec<Tag>, TagChangeError> {
        let mut idx = self.idx.write();
        let client = idx
            .clients
            .get(id)
            .cloned()
            .ok_or(TagChangeError::NoClient)?;
        let mut tags = client.tags_mut();
        if tags.remove(tag) {
            Self::remove_member(&mut idx, tag, id);
        }
        let list = tags.iter().cloned().collect();
        drop(tags);
        self.metrics.tags.set(idx.tags.len() as i64);
        Ok(list)
    }

    /// A connection by id.
    pub fn get(&self, id: &ClientId) -> Option<Arc<Connection>> {
        self.idx.read().clients.get(id).cloned()
    }

    /// A user's connections.
    pub fn user_clients(&self, user: UserId) -> Vec<Arc<Connection>> {
        self.idx
            .read()
            .users
            .get(&user)
            .cloned()
            .unwrap_or_default()
    }

    /// A tag's members.
    pub fn tag_members(&self, tag: &Tag) -> Vec<Arc<Connection>> {
        self.idx
            .read()
            .tags
            .get(tag)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every connection.
    pub fn all(&self) -> Vec<Arc<Connection>> {
        self.idx.read().clients.values().cloned().collect()
    }

    /// `(tag, members)` for every tag, sorted by name.
    pub fn tag_counts(&self) -> Vec<(Tag, usize)> {
        let idx = self.idx.read();
        let mut v: Vec<(Tag, usize)> = idx.tags.iter().map(|(t, m)| (t.clone(), m.len())).collect();
        v.sort();
        v
    }

    /// `(connections, users, tags)`.
    pub fn counts(&self) -> (usize, usize, usize) {
        let idx = self.idx.read();
        (idx.clients.len(), idx.users.len(), idx.tags.len())
    }

    /// Whether every index and count is empty, reservations included (unit tests only: the
    /// HTTP stats show the indexes, and the limits show the counts to a real client).
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        let idx = self.idx.read();
        idx.clients.is_empty()
            && idx.users.is_empty()
            && idx.tags.is_empty()
            && idx.total == 0
            && idx.per_user.is_empty()
    }

    /// Queues `frame` to each of `to`; connections whose queue overflowed (now closing with
    /// 4008) are collected in `out.cut`, quiet ones whose frame is to be written at once in
    /// `out.write`.
    fn deliver<'a>(
        &self,
        frame: &Outbound,
        stream: bool,
        to: impl Iterator<Item = &'a Arc<Connection>>,
        out: &mut Delivery,
    ) -> usize {
        let mut n = 0;
        for c in to {
            let (outcome, write_now) = c.outbox().push_delivery(frame.clone(), stream, out.now);
            match outcome {
                PushOutcome::Queued => {
                    n += 1;
                    if write_now {
                        out.write.push(c.clone());
                    }
                }
                PushOutcome::Closed => self.metrics.queue_drops.inc(),
                PushOutcome::Overflow => {
                    self.metrics.queue_drops.inc();
                    out.cut.push(c.clone());
                }
            }
        }
        n
    }

    /// Runs a delivery under the read lock, then takes the connections it cut off out of
    /// every index at once: they receive nothing more, so nothing may count them, even while
    /// their socket task is still stuck writing to them. The frames for quiet sockets are
    /// written off every lock and off the caller's path (see `write_soon`).
    fn delivering(&self, f: impl FnOnce(&Indexes, &mut Delivery) -> usize) -> usize {
        let mut out = Delivery {
            now: Instant::now(),
            cut: Vec::new(),
            write: Vec::new(),
        };
        let n = {
            let idx = self.idx.read();
            f(&idx, &mut out)
        };
        write_soon(out.write, out.now, &self.metrics, &self.pace);
        for c in out.cut {
            self.unregister(&c);
            if let Some(tx) = self.cut_listener.get() {
                // Full: the socket task's own leave removes it from presence a little later.
                let _ = tx.try_send(c);
            }
        }
        n
    }

    /// Where connections cut off by a delivery are reported (presence removes them there).
    pub fn set_cut_listener(&self, tx: tokio::sync::mpsc::Sender<Arc<Connection>>) {
        let _ = self.cut_listener.set(tx);
    }

    /// Queues a ready frame to every local connection.
    pub fn deliver_all(&self, frame: &Outbound) -> usize {
        self.delivering(|idx, out| self.deliver(frame, true, idx.clients.values(), out))
    }

    /// Queues a ready frame to one local connection.
    pub fn deliver_client(&self, id: &ClientId, frame: &Outbound) -> usize {
        self.delivering(|idx, out| self.deliver(frame, false, idx.clients.get(id).into_iter(), out))
    }

    /// Queues a ready frame to a user's local connections.
    pub fn deliver_user(&self, user: UserId, frame: &Outbound) -> usize {
        self.delivering(|idx, out| match idx.users.get(&user) {
            Some(list) => self.deliver(frame, true, list.iter(), out),
            None => 0,
        })
    }

    /// Queues a ready frame to a tag's local members, optionally skipping one connection.
    pub fn deliver_tag(&self, tag: &Tag, frame: &Outbound, except: Option<&ClientId>) -> usize {
        self.delivering(|idx, out| match idx.tags.get(tag) {
            Some(members) => self.deliver(
                frame,
                true,
                members
                    .iter()
                    .filter(|(id, _)| Some(*id) != except)
                    .map(|(_, c)| c),
                out,
            ),
            None => 0,
        })
    }

    /// Queues a frame positioned at `offset` of `stream` (assigned by another node) to the
    /// local connections of `target`, skipping any that started receiving the stream after it.
    pub fn deliver_positioned(
        &self,
        target: &Audience,
        frame: &Outbound,
        stream: &str,
        offset: u64,
        except: Option<&ClientId>,
    ) -> usize {
        let wants = |c: &&Arc<Connection>| {
            Some(c.id()) != except && c.stream_mark(stream).is_none_or(|m| m < offset)
        };
        self.delivering(|idx, out| match target {
            Audience::All => self.deliver(frame, true, idx.clients.values().filter(wants), out),
            Audience::Client(id) => self.deliver(
                frame,
                true,
                idx.clients.get(id).into_iter().filter(wants),
                out,
            ),
            Audience::User(u) => match idx.users.get(u) {
                Some(list) => self.deliver(frame, true, list.iter().filter(wants), out),
                None => 0,
            },
            Audience::Tag(t) => match idx.tags.get(t) {
                Some(m) => self.deliver(frame, true, m.values().filter(wants), out),
                None => 0,
            },
        })
    }

    /// Closes a user's connections with `code` (e.g. 4003 after revocation). Returns how many.
    pub fn close_user(&self, user: UserId, code: u16, reason: &str) -> usize {
        self.user_clients(user)
            .iter()
            .filter(|c| c.close(code, reason, true))
            .count()
    }

    /// Closes connections carrying token `jti`.
    pub fn close_token(&self, user: UserId, jti: &str, code: u16, reason: &str) -> usize {
        self.user_clients(user)
            .iter()
            .filter(|c| {
                c.identity().is_some_and(|i| {
                    matches!(&i.credential, switchboard_sdk::Credential::Token { jti: j, .. } if j == jti)
                })
            })
            .filter(|c| c.close(code, reason, true))
            .count()
    }
}

/// Serialises a push once for all recipients.
pub fn encode(push: &Push, pos: Option<&StreamPosition>) -> Outbound {
    Outbound::encode(&Envelope::new(&push.event, &push.data).at(pos), false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_sdk::{ClientInfo, Credential, Role};

    #[test]
    fn large_fanouts_are_written_directly_while_they_leave_half_the_time_idle() {
        let pace = Pace::new();
        let ms = |n: u64| pace.epoch + std::time::Duration::from_millis(n);
        assert!(pace.direct(ms(1000)), "the first is written directly");
        pace.chunk_written(ms(1040)); // its write-out took 40 ms
        assert!(!pace.direct(ms(1050)), "50 ms on: busy 80% of the time");
        assert!(!pace.direct(ms(1079)));
        assert!(pace.direct(ms(1080)), "80 ms on: busy half of the time");
        pace.chunk_written(ms(1090)); // 10 ms this time
        assert!(pace.direct(ms(1100)), "20 ms on");
        assert!(
            pace.direct(ms(1100)),
            "still nothing written since the last began"
        );
    }

    fn registry() -> Arc<Registry> {
        Arc::new(Registry::new(
            "n1",
            Limits {
                max_connections: 3,
                max_per_user: 2,
                max_tags: 2,
            },
            Arc::new(Metrics::default()),
        ))
    }

    fn ident(u: i64) -> Identity {
        Identity {
            user_id: Some(UserId(u)),
            username: format!("u{u}"),
            roles: vec![Role::Member],
            credential: Credential::Token {
                jti: format!("j{u}"),
                expires_at: i64::MAX,
            },
        }
    }

    fn connect(r: &Arc<Registry>, user: Option<i64>) -> Result<Arc<Connection>, LimitError> {
        let res = r.reserve(user.map(UserId))?;
        let c = Arc::new(Connection::new(
            r.next_id(),
            ClientInfo::default(),
            user.map(ident),
            1 << 20,
        ));
        r.register(c.clone(), res);
        Ok(c)
    }

    #[test]
    fn indexes_follow_connect_join_and_leave() {
        let r = registry();
        let a = connect(&r, Some(1)).unwrap();
        let b = connect(&r, Some(1)).unwrap();
        let t = Tag::parse("room").unwrap();
        r.join(a.id(), t.clone()).unwrap();
        r.join(b.id(), t.clone()).unwrap();
        assert_eq!(r.user_clients(UserId(1)).len(), 2);
        assert_eq!(r.tag_members(&t).len(), 2);
        r.unregister(&a);
        assert_eq!(r.tag_members(&t).len(), 1);
        r.quit(b.id(), &t).unwrap();
        assert!(r.tag_counts().is_empty(), "an empty tag leaves the index");
        r.unregister(&b);
        assert!(r.is_empty());
    }

    #[test]
    fn limits_are_enforced_and_released() {
        let r = registry();
        let a = connect(&r, Some(1)).unwrap();
        let _b = connect(&r, Some(1)).unwrap();
        assert_eq!(connect(&r, Some(1)).unwrap_err(), LimitError::PerUser);
        let _c = connect(&r, None).unwrap();
        assert_eq!(connect(&r, Some(2)).unwrap_err(), LimitError::Total);
        r.unregister(&a);
        assert!(connect(&r, Some(2)).is_ok());
        // A reservation that never registers gives its slot back.
        let r2 = registry();
        drop(r2.reserve(Some(UserId(9))).unwrap());
        assert!(r2.is_empty());
    }

    #[test]
    fn tag_cap_per_connection() {
        let r = registry();
        let a = connect(&r, None).unwrap();
        r.join(a.id(), Tag::parse("a").unwrap()).unwrap();
        r.join(a.id(), Tag::parse("b").unwrap()).unwrap();
        r.join(a.id(), Tag::parse("b").unwrap()).unwrap();
        assert_eq!(
            r.join(a.id(), Tag::parse("c").unwrap()).unwrap_err(),
            TagChangeError::TooMany(2)
        );
    }

    #[test]
    fn login_moves_an_anonymous_client_into_the_user_index() {
        let r = registry();
        let a = connect(&r, None).unwrap();
        r.set_identity(&a, ident(5)).unwrap();
        assert_eq!(r.user_clients(UserId(5)).len(), 1);
        let push = Push::new("x", serde_json::Value::Null);
        assert_eq!(r.deliver_user(UserId(5), &encode(&push, None)), 1);
        r.unregister(&a);
        assert!(r.is_empty());
    }

    #[test]
    fn push_counts_only_reached_clients() {
        let r = registry();
        let a = connect(&r, Some(1)).unwrap();
        let _b = connect(&r, Some(2)).unwrap();
        a.close(4001, "x", false);
        let push = Push::new("x", serde_json::json!(1));
        assert_eq!(r.deliver_all(&encode(&push, None)), 1);
    }
}
