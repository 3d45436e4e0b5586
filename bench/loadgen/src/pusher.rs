//! The Pusher Channels protocol (sockudo speaks it): the pieces of a client adapter that can be
//! checked without a server — the socket URL, the subscribe frame, and the signed HTTP trigger.
//!
//! Not wired into `Target` yet: no Pusher server is built or started by `run.sh`, and an adapter
//! that has never met one would be guessing. What is here follows Pusher's HTTP API reference and
//! is tested against its worked signature example.

use std::fmt::Write;

use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use serde_json::{Value, json};
use sha2::Sha256;

/// One Pusher app: the server is configured with the same three values.
pub struct App {
    pub id: String,
    pub key: String,
    pub secret: String,
}

impl App {
    /// Where a client connects: the key names the app, `protocol=7` is the current wire version.
    pub fn socket_path(&self) -> String {
        format!("/app/{}?protocol=7", self.key)
    }

    /// `POST /apps/<id>/events` with its query signed for `body` at `timestamp` (unix seconds).
    /// Pusher rejects a timestamp more than 600 s off its clock, so sign each request anew.
    pub fn events_path(&self, body: &[u8], timestamp: u64) -> String {
        let path = format!("/apps/{}/events", self.id);
        // Already in key order, which the signature requires.
        let query = format!(
            "auth_key={}&auth_timestamp={timestamp}&auth_version=1.0&body_md5={}",
            self.key,
            hex(&Md5::digest(body))
        );
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.secret.as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(format!("POST\n{path}\n{query}").as_bytes());
        let signature = hex(&mac.finalize().into_bytes());
        format!("{path}?{query}&auth_signature={signature}")
    }
}

/// A trigger's body: Pusher carries `data` as a string holding JSON, so `"t":` still appears in
/// each received frame (escaped as `\"t\":`) and the receivers' scan finds it unchanged.
pub fn trigger_body(channels: &[&str], event: &str, data: &Value) -> String {
    json!({"name": event, "channels": channels, "data": data.to_string()}).to_string()
}

/// Subscribes to a public channel; the server answers `pusher_internal:subscription_succeeded`.
pub fn subscribe_frame(channel: &str) -> String {
    json!({"event": "pusher:subscribe", "data": {"channel": channel}}).to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of Pusher's HTTP API reference ("Generating authentication
    /// signatures"): app 3, the `foo` event on `project-3` with `{"some":"data"}`.
    #[test]
    fn signs_like_the_reference_example() {
        let app = App {
            id: "3".into(),
            key: "278d425bdf160c739803".into(),
            secret: "7ad3773142a6692b25b8".into(),
        };
        let body = trigger_body(&["project-3"], "foo", &json!({"some": "data"}));
        assert_eq!(
            body,
            r#"{"channels":["project-3"],"data":"{\"some\":\"data\"}","name":"foo"}"#
        );
        // The reference orders the keys name, channels, data; the signature covers the body's
        // MD5, so check the reference's exact bytes too.
        let reference = r#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
        assert_eq!(
            app.events_path(reference.as_bytes(), 1353088179),
            "/apps/3/events?auth_key=278d425bdf160c739803&auth_timestamp=1353088179\
             &auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f\
             &auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
        );
    }

    #[test]
    fn another_body_changes_the_signature() {
        let app = App {
            id: "3".into(),
            key: "k".into(),
            secret: "s".into(),
        };
        assert_ne!(app.events_path(b"{}", 1), app.events_path(b"{ }", 1));
        assert_ne!(app.events_path(b"{}", 1), app.events_path(b"{}", 2));
        assert_eq!(app.socket_path(), "/app/k?protocol=7");
        assert_eq!(
            subscribe_frame("bench-tag"),
            r#"{"data":{"channel":"bench-tag"},"event":"pusher:subscribe"}"#
        );
    }
}
