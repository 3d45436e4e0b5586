//! The Pusher Channels protocol (sockudo speaks it): the socket URL, the frames a client sends
//! and receives, and the signed HTTP trigger. `Target` uses these for `--target sockudo`; the
//! signature is tested against the worked example of Pusher's HTTP API reference.

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
    /// The one app of a benchmark run: `bench/run.sh` writes the same three values into sockudo's
    /// configuration. Nothing secret: the server listens on loopback for the run only.
    pub fn bench() -> Self {
        Self {
            id: "bench".into(),
            key: "bench-key".into(),
            secret: "bench-secret".into(),
        }
    }

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

/// A trigger's body. Pusher carries `data` as a string holding JSON, so in each received frame
/// the payload's keys appear escaped (`\"t\":`); `sent_at` reads them there.
pub fn trigger_body(channels: &[&str], event: &str, data: &Value) -> String {
    json!({"name": event, "channels": channels, "data": data.to_string()}).to_string()
}

/// Subscribes to a public channel; the server answers `pusher_internal:subscription_succeeded`.
pub fn subscribe_frame(channel: &str) -> String {
    json!({"event": "pusher:subscribe", "data": {"channel": channel}}).to_string()
}

/// The answer to the server's `pusher:ping` (sent after `activity_timeout` of silence): without it
/// the server closes the connection, and the idle scenario would measure reconnects.
pub const PONG: &str = r#"{"event":"pusher:pong","data":{}}"#;

/// Whether a frame is the server's keep-alive ping. Checked on short frames only, so the receive
/// path of a broadcast does not scan every payload for it.
pub fn is_ping(text: &str) -> bool {
    text.len() < 96 && text.contains("\"pusher:ping\"")
}

/// What the server sent: an event, the channel it came on (absent for connection-level events),
/// and its data, unwrapped from the string Pusher puts it in.
#[derive(Debug, PartialEq)]
pub struct Push {
    pub event: String,
    pub channel: Option<String>,
    pub data: Value,
}

/// Decodes a frame from the server. `data` is a string holding JSON on the wire; it is parsed
/// when it is JSON and kept as a string otherwise (Pusher lets a trigger send any text).
pub fn decode(text: &str) -> anyhow::Result<Push> {
    let mut frame: Value = serde_json::from_str(text)?;
    let event = frame["event"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("frame without an `event`: {text}"))?
        .to_owned();
    let channel = frame["channel"].as_str().map(str::to_owned);
    let data = match frame["data"].take() {
        Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
        other => other,
    };
    Ok(Push {
        event,
        channel,
        data,
    })
}

/// The load generator's timestamp (`"t"`) in a pushed frame, found without parsing it: 10,000
/// receivers must cost less than the server they measure. Reads both the string-wrapped data of
/// the Pusher wire and data sent as an object.
pub fn sent_at(text: &str) -> Option<u64> {
    crate::target::find_u64(text, "\\\"t\\\":").or_else(|| crate::target::find_u64(text, "\"t\":"))
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

    /// A push as sockudo sends it: the data is a string holding the trigger's JSON.
    #[test]
    fn decodes_a_push_and_finds_its_timestamp() {
        let body = trigger_body(
            &["all"],
            "bench",
            &json!({"t": 1_700_000_000_123u64, "p": "xx"}),
        );
        let data = serde_json::from_str::<Value>(&body).unwrap()["data"].clone();
        let frame = json!({"event": "bench", "channel": "all", "data": data}).to_string();
        assert!(frame.contains(r#""data":"{\"p\":\"xx\",\"t\":1700000000123}""#));
        let push = decode(&frame).unwrap();
        assert_eq!(push.event, "bench");
        assert_eq!(push.channel.as_deref(), Some("all"));
        assert_eq!(push.data, json!({"t": 1_700_000_000_123u64, "p": "xx"}));
        assert_eq!(sent_at(&frame), Some(1_700_000_000_123));
        assert!(!is_ping(&frame));
    }

    #[test]
    fn decodes_connection_events_and_pings() {
        let established = r#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"123.456\",\"activity_timeout\":120}"}"#;
        let push = decode(established).unwrap();
        assert_eq!(push.event, "pusher:connection_established");
        assert_eq!(push.channel, None);
        assert_eq!(push.data["socket_id"], "123.456");
        assert_eq!(sent_at(established), None);
        let ping = r#"{"event":"pusher:ping","data":{}}"#;
        assert!(is_ping(ping));
        assert_eq!(decode(ping).unwrap().data, json!({}));
        // Text that is not JSON stays a string; a frame without an event is an error.
        assert_eq!(
            decode(r#"{"event":"e","channel":"c","data":"plain"}"#)
                .unwrap()
                .data,
            json!("plain")
        );
        assert!(decode(r#"{"data":"{}"}"#).is_err());
        assert!(decode("not json").is_err());
        // Data sent as an object still yields its timestamp.
        assert_eq!(sent_at(r#"{"event":"e","data":{"t":42}}"#), Some(42));
    }
}
