//! Who is connected: one list of all connections, plus the tag and user indexes the targeted
//! sends need. Pushes are the request body as it came (no JSON in either direction), shared by
//! every recipient as one refcounted buffer.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::sync::mpsc::Sender;

use crate::Out;

#[derive(Default)]
pub struct Hub {
    next_id: AtomicU64,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    clients: HashMap<u64, Client>,
    tags: HashMap<Box<str>, HashSet<u64>>,
    users: HashMap<Box<str>, HashSet<u64>>,
}

struct Client {
    tx: Sender<Out>,
    user: Box<str>,
    tags: Vec<Box<str>>,
}

impl Hub {
    pub fn register(&self, tx: Sender<Out>, user: &str) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut inner = self.inner.lock().unwrap();
        inner.users.entry(user.into()).or_default().insert(id);
        inner.clients.insert(
            id,
            Client {
                tx,
                user: user.into(),
                tags: Vec::new(),
            },
        );
        id
    }

    pub fn unregister(&self, id: u64) {
        let mut inner = self.inner.lock().unwrap();
        let Some(client) = inner.clients.remove(&id) else {
            return;
        };
        remove_member(&mut inner.users, &client.user, id);
        for tag in &client.tags {
            remove_member(&mut inner.tags, tag, id);
        }
    }

    pub fn join(&self, id: u64, tag: &str) {
        let mut inner = self.inner.lock().unwrap();
        if let Some(client) = inner.clients.get_mut(&id) {
            client.tags.push(tag.into());
            inner.tags.entry(tag.into()).or_default().insert(id);
        }
    }

    /// A recipient whose queue is full misses the push (it is not counted as delivered): a slow
    /// reader must not make the sender wait or grow memory without bound.
    pub fn send_to_all(&self, frame: Bytes) -> usize {
        let inner = self.inner.lock().unwrap();
        inner
            .clients
            .values()
            .filter(|c| c.tx.try_send(Out::Text(frame.clone())).is_ok())
            .count()
    }

    pub fn send_to_tag(&self, tag: &str, frame: Bytes) -> usize {
        self.send_to_members(frame, |inner| inner.tags.get(tag))
    }

    pub fn send_to_user(&self, user: &str, frame: Bytes) -> usize {
        self.send_to_members(frame, |inner| inner.users.get(user))
    }

    fn send_to_members(
        &self,
        frame: Bytes,
        members: impl Fn(&Inner) -> Option<&HashSet<u64>>,
    ) -> usize {
        let inner = self.inner.lock().unwrap();
        let Some(ids) = members(&inner) else { return 0 };
        ids.iter()
            .filter_map(|id| inner.clients.get(id))
            .filter(|c| c.tx.try_send(Out::Text(frame.clone())).is_ok())
            .count()
    }
}

fn remove_member(index: &mut HashMap<Box<str>, HashSet<u64>>, key: &str, id: u64) {
    if let Some(set) = index.get_mut(key) {
        set.remove(&id);
        if set.is_empty() {
            index.remove(key);
        }
    }
}

/// The string or number after `"key":` in a JSON text, found by scanning rather than parsing:
/// this peer has no JSON library, and the bench's bodies are flat enough for a scan.
/// `"tag":"a"` → `a`, `"userId":7` → `7`.
pub fn scan_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let needle = format!("\"{key}\":");
    let rest = text[text.find(&needle)? + needle.len()..].trim_start();
    if let Some(quoted) = rest.strip_prefix('"') {
        return quoted.split('"').next();
    }
    let end = rest
        .find(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_')
        .unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

#[cfg(test)]
mod tests {
    use super::scan_value;

    #[test]
    fn scans_strings_and_numbers() {
        let body = r#"{"tag":"room-1","event":"bench","data":{"t":12}}"#;
        assert_eq!(scan_value(body, "tag"), Some("room-1"));
        assert_eq!(
            scan_value(r#"{"userId": 42, "event":"x"}"#, "userId"),
            Some("42")
        );
        assert_eq!(scan_value(r#"{"userId":"7"}"#, "userId"), Some("7"));
        assert_eq!(
            scan_value(r#"{"event":"join","data":{"id":"t1"}}"#, "id"),
            Some("t1")
        );
        assert_eq!(scan_value(r#"{"event":"x"}"#, "tag"), None);
        assert_eq!(scan_value(r#"{"tag":}"#, "tag"), None);
    }
}
