//! Who is connected, by id, user and tag. One mutex: the simplest thing that works.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedSender;
use tokio_tungstenite::tungstenite::Message;

#[derive(Default)]
pub struct Hub {
    next_id: AtomicU64,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    clients: HashMap<u64, Client>,
    tags: HashMap<String, HashSet<u64>>,
    users: HashMap<String, HashSet<u64>>,
}

struct Client {
    tx: UnboundedSender<Message>,
    user: String,
    tags: Vec<String>,
}

impl Hub {
    pub fn register(&self, tx: UnboundedSender<Message>, user: &str) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut inner = self.inner.lock().unwrap();
        inner.users.entry(user.to_owned()).or_default().insert(id);
        inner.clients.insert(
            id,
            Client {
                tx,
                user: user.to_owned(),
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

    /// `{"event":"join","data":{"id":"<tag>"}}` — the same frame Switchboard's `join` takes.
    pub fn join_from_frame(&self, id: u64, frame: &str) {
        let tag = serde_json::from_str::<Value>(frame)
            .ok()
            .and_then(|v| v["data"]["id"].as_str().map(str::to_owned));
        let Some(tag) = tag else { return };
        let mut inner = self.inner.lock().unwrap();
        if let Some(client) = inner.clients.get_mut(&id) {
            client.tags.push(tag.clone());
            inner.tags.entry(tag).or_default().insert(id);
        }
    }

    pub fn send_to_all(&self, body: &Value) -> usize {
        let msg = push(body);
        let inner = self.inner.lock().unwrap();
        inner
            .clients
            .values()
            .filter(|c| c.tx.send(msg.clone()).is_ok())
            .count()
    }

    pub fn send_to_tag(&self, body: &Value) -> usize {
        let key = body["tag"].as_str().unwrap_or_default();
        self.send_to_members(body, |inner| inner.tags.get(key))
    }

    pub fn send_to_user(&self, body: &Value) -> usize {
        let key = match &body["userId"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        self.send_to_members(body, |inner| inner.users.get(&key))
    }

    fn send_to_members(
        &self,
        body: &Value,
        members: impl Fn(&Inner) -> Option<&HashSet<u64>>,
    ) -> usize {
        let msg = push(body);
        let inner = self.inner.lock().unwrap();
        let Some(ids) = members(&inner) else { return 0 };
        ids.iter()
            .filter_map(|id| inner.clients.get(id))
            .filter(|c| c.tx.send(msg.clone()).is_ok())
            .count()
    }
}

fn remove_member(index: &mut HashMap<String, HashSet<u64>>, key: &str, id: u64) {
    if let Some(set) = index.get_mut(key) {
        set.remove(&id);
        if set.is_empty() {
            index.remove(key);
        }
    }
}

/// Serialised once; every recipient gets a refcounted clone of the same bytes.
fn push(body: &Value) -> Message {
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let frame = json!({"event": body["event"], "data": body["data"], "code": 0, "timestamp": ts});
    Message::text(frame.to_string())
}
