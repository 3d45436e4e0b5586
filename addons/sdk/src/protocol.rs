//! The wire protocol: request frames in, reply and push frames out.
//!
//! Client → server: `{"event": "<name>", "data": <any>, "seqno": <string|number>}`.
//! Server → client: `{"event", "data" (omitted if null), "code", "errorMsg" (errors only),
//! "seqno" (echoed), "stream"/"offset"/"epoch" (stream pushes), "timestamp"}`.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// Reply codes carried in the `code` field.
pub mod code {
    /// Success.
    pub const OK: i32 = 0;
    /// The handler reported an error (`send_error`).
    pub const HANDLER_ERROR: i32 = -1;
    /// Malformed frame, missing `event`, or `data` of the wrong shape.
    pub const BAD_REQUEST: i32 = 400;
    /// Bad credentials (socket `login`).
    pub const UNAUTHORIZED: i32 = 401;
    /// Not allowed.
    pub const FORBIDDEN: i32 = 403;
    /// Unknown event.
    pub const NOT_FOUND: i32 = 404;
    /// Conflicting state (e.g. `login` on an identified connection).
    pub const CONFLICT: i32 = 409;
    /// Rate limited.
    pub const RATE_LIMITED: i32 = 429;
    /// The handler panicked; the connection lives on.
    pub const INTERNAL: i32 = 500;
}

/// WebSocket close codes the server uses.
pub mod close {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// Server shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// Invalid UTF-8 in a text frame.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// Message over `websocket.max_message_size`.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// Kicked by an operator.
    pub const KICKED: u16 = 4001;
    /// Token revoked or expired while connected.
    pub const TOKEN_REVOKED: u16 = 4003;
    /// Send queue over `websocket.send_queue_bytes` or a write stuck past `write_timeout`.
    pub const SLOW_CLIENT: u16 = 4008;
    /// No inbound frame for `websocket.idle_timeout`.
    pub const IDLE_TIMEOUT: u16 = 4009;
    /// Over a connection limit.
    pub const LIMIT: u16 = 4029;
}

/// Current unix time in seconds.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Current unix time in milliseconds.
pub fn unix_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A parsed client request.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// Event name.
    pub event: String,
    /// Payload (`null` when absent).
    pub data: Value,
    /// Correlation id, echoed in the reply.
    pub seqno: Option<Value>,
}

/// A frame that could not be turned into a [`Request`]; answered with code 400.
#[derive(Clone, Debug, PartialEq)]
pub struct BadFrame {
    /// The event name if one could be read, for the reply's `event`.
    pub event: Option<String>,
    /// The seqno if one could be read, echoed in the reply.
    pub seqno: Option<Value>,
    /// What was wrong.
    pub message: String,
}

/// Event name used in replies to frames whose own event could not be read.
pub const ERROR_EVENT: &str = "error";

/// Longest accepted event name, in bytes.
pub const MAX_EVENT_LEN: usize = 128;

/// Parses a request frame's bytes (text or binary).
///
/// ```
/// use switchboard_sdk::protocol::parse_request;
/// let r = parse_request(br#"{"event":"ping","seqno":7}"#).unwrap();
/// assert_eq!(r.event, "ping");
/// assert!(parse_request(b"nope").is_err());
/// ```
pub fn parse_request(bytes: &[u8]) -> Result<Request, BadFrame> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| BadFrame {
        event: None,
        seqno: None,
        message: format!("malformed frame: {e}"),
    })?;
    let Value::Object(mut obj) = value else {
        return Err(BadFrame {
            event: None,
            seqno: None,
            message: "malformed frame: expected a JSON object".into(),
        });
    };
    let seqno = match obj.remove("seqno") {
        None | Some(Value::Null) => None,
        Some(v @ (Value::String(_) | Value::Number(_))) => Some(v),
        Some(_) => {
            return Err(BadFrame {
                event: obj.get("event").and_then(|e| e.as_str()).map(str::to_owned),
                seqno: None,
                message: "seqno must be a string or a number".into(),
            });
        }
    };
    let event = match obj.remove("event") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_EVENT_LEN => s,
        Some(Value::String(s)) if s.is_empty() => {
            return Err(BadFrame {
                event: None,
                seqno,
                message: "event must not be empty".into(),
            });
        }
        Some(Value::String(_)) => {
            return Err(BadFrame {
                event: None,
                seqno,
                message: format!("event must be at most {MAX_EVENT_LEN} bytes"),
            });
        }
        None | Some(Value::Null) => {
            return Err(BadFrame {
                event: None,
                seqno,
                message: "missing event".into(),
            });
        }
        Some(_) => {
            return Err(BadFrame {
                event: None,
                seqno,
                message: "event must be a string".into(),
            });
        }
    };
    let data = obj.remove("data").unwrap_or(Value::Null);
    Ok(Request { event, data, seqno })
}

/// Position of a push in a delivery stream (SPEC §7).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StreamPosition {
    /// `user:<id>`, `tag:<name>` or `all`.
    pub stream: String,
    /// 1, 2, 3… per stream.
    pub offset: u64,
    /// Changes whenever the stream's history is lost.
    pub epoch: String,
}

/// One server → client frame before serialisation.
#[derive(Debug, Serialize)]
pub struct Envelope<'a> {
    /// Event name.
    pub event: &'a str,
    /// Payload; omitted when null.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub data: &'a Value,
    /// Reply code (0 for pushes).
    pub code: i32,
    /// Human-readable error, only when `code` is not 0.
    #[serde(rename = "errorMsg", skip_serializing_if = "Option::is_none")]
    pub error_msg: Option<&'a str>,
    /// Echo of the request's seqno.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seqno: Option<&'a Value>,
    /// Stream of a stream push.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<&'a str>,
    /// Offset of a stream push.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Epoch of a stream push.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<&'a str>,
    /// Unix seconds.
    pub timestamp: i64,
}

impl<'a> Envelope<'a> {
    /// A plain push or success reply.
    pub fn new(event: &'a str, data: &'a Value) -> Self {
        Envelope {
            event,
            data,
            code: code::OK,
            error_msg: None,
            seqno: None,
            stream: None,
            offset: None,
            epoch: None,
            timestamp: unix_now(),
        }
    }

    /// Attaches a stream position.
    pub fn at(mut self, pos: Option<&'a StreamPosition>) -> Self {
        if let Some(p) = pos {
            self.stream = Some(&p.stream);
            self.offset = Some(p.offset);
            self.epoch = Some(&p.epoch);
        }
        self
    }

    /// Serialises once; the result is shared by every recipient.
    pub fn encode(&self) -> Utf8Bytes {
        // Serialising a struct of strings, numbers and `Value`s cannot fail.
        let s = serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"));
        Utf8Bytes::from(s)
    }
}

/// A push: an event and its payload, addressed by the send functions.
#[derive(Clone, Debug, PartialEq)]
pub struct Push {
    /// Event name.
    pub event: String,
    /// Payload, delivered exactly as given.
    pub data: Value,
}

impl Push {
    /// Builds a push.
    pub fn new(event: impl Into<String>, data: Value) -> Self {
        Push {
            event: event.into(),
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_a_full_request() {
        let r = parse_request(br#"{"event":"a/b","data":{"x":1},"seqno":"s1"}"#).unwrap();
        assert_eq!(r.event, "a/b");
        assert_eq!(r.data, json!({"x":1}));
        assert_eq!(r.seqno, Some(json!("s1")));
    }

    #[test]
    fn data_and_seqno_are_optional() {
        let r = parse_request(br#"{"event":"ping"}"#).unwrap();
        assert_eq!(r.data, Value::Null);
        assert_eq!(r.seqno, None);
    }

    #[test]
    fn refuses_non_objects_and_garbage() {
        for bad in [&b"[]"[..], b"1", b"\"x\"", b"{", b"\xff\xfe", b"null"] {
            let e = parse_request(bad).unwrap_err();
            assert!(e.message.starts_with("malformed frame"), "{:?}", e);
        }
    }

    #[test]
    fn missing_or_bad_event_keeps_seqno() {
        let e = parse_request(br#"{"seqno":3}"#).unwrap_err();
        assert_eq!(e.seqno, Some(json!(3)));
        assert_eq!(e.message, "missing event");
        let e = parse_request(br#"{"event":5,"seqno":"q"}"#).unwrap_err();
        assert_eq!(e.seqno, Some(json!("q")));
        let e = parse_request(br#"{"event":""}"#).unwrap_err();
        assert_eq!(e.message, "event must not be empty");
        let long = format!(r#"{{"event":"{}"}}"#, "e".repeat(129));
        assert!(parse_request(long.as_bytes()).is_err());
    }

    #[test]
    fn seqno_must_be_string_or_number() {
        let e = parse_request(br#"{"event":"x","seqno":{}}"#).unwrap_err();
        assert_eq!(e.event.as_deref(), Some("x"));
        assert!(parse_request(br#"{"event":"x","seqno":1.5}"#).is_ok());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!(
            r#"{{"event":"x","data":{}{}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert!(parse_request(deep.as_bytes()).is_err());
    }

    #[test]
    fn envelope_omits_empty_fields() {
        let data = Value::Null;
        let mut e = Envelope::new("ping", &data);
        e.timestamp = 5;
        assert_eq!(&*e.encode(), r#"{"event":"ping","code":0,"timestamp":5}"#);
        let pos = StreamPosition {
            stream: "user:1".into(),
            offset: 3,
            epoch: "e".into(),
        };
        let data = json!({"k":"v"});
        let seq = json!(9);
        let mut e = Envelope::new("n", &data).at(Some(&pos));
        e.seqno = Some(&seq);
        e.timestamp = 1;
        assert_eq!(
            &*e.encode(),
            r#"{"event":"n","data":{"k":"v"},"code":0,"seqno":9,"stream":"user:1","offset":3,"epoch":"e","timestamp":1}"#
        );
    }
}
