//! The wire protocol: request frames in, reply and push frames out.
//!
//! Client → server: `{"event": "<name>", "data": <any>, "seqno": <string|number>}`.
//! Server → client: `{"event", "data" (omitted if null), "code", "errorMsg" (errors only),
//! "seqno" (echoed), "stream"/"offset"/"epoch" (stream pushes), "timestamp"}`.

use std::time::{SystemTime, UNIX_EPOCH};

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
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
    /// What the request asks to send is larger than a recipient's send queue can hold.
    pub const TOO_LARGE: i32 = 413;
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
    /// This node lost its place in the cluster (its presence vanished): reconnect and recover.
    pub const SERVICE_RESTART: u16 = 1012;
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

/// A request's `data`, kept as the JSON text the client sent.
///
/// Parsing it is left to whoever needs it: [`Data::bind`] deserialises it straight into a
/// handler's own type (no intermediate [`Value`]), and a handler that passes data through (an
/// echo, a relay) sends it back untouched, byte for byte, without parsing it at all.
///
/// ```
/// use switchboard_sdk::protocol::Data;
/// let d = Data::from_json(r#"{"x": 1}"#).unwrap();
/// assert_eq!(d.get(), r#"{"x": 1}"#);
/// assert_eq!(d.bind::<serde_json::Value>().unwrap()["x"], 1);
/// assert!(Data::null().is_null());
/// ```
#[derive(Clone)]
pub struct Data(Box<RawValue>);

impl Data {
    /// JSON `null` (a request without `data`).
    pub fn null() -> Self {
        Data(RawValue::NULL.to_owned())
    }

    /// Checks and keeps a JSON text.
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        let raw: &RawValue = serde_json::from_str(json)?;
        Ok(Data(raw.to_owned()))
    }

    /// Serialises any value (e.g. a middleware replacing the data).
    pub fn from_value<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::value::to_raw_value(value).map(Data)
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// The JSON text as a [`RawValue`].
    pub fn as_raw(&self) -> &RawValue {
        &self.0
    }

    /// Whether the data is `null` (or was absent).
    pub fn is_null(&self) -> bool {
        self.0.get() == "null"
    }

    /// Deserialises the data into `T`; a mismatch is a 400 naming the field (see
    /// [`crate::event::bind`]).
    pub fn bind<T: DeserializeOwned>(&self) -> Result<T, crate::event::EventError> {
        crate::event::bind(self)
    }

    /// The data as a [`Value`].
    pub fn to_value(&self) -> Result<Value, crate::event::EventError> {
        self.bind()
    }
}

impl Default for Data {
    fn default() -> Self {
        Data::null()
    }
}

impl fmt::Debug for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

impl fmt::Display for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

impl PartialEq for Data {
    /// Textual equality: `{"a":1}` and `{ "a": 1 }` differ.
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl Eq for Data {}

impl From<Box<RawValue>> for Data {
    fn from(raw: Box<RawValue>) -> Self {
        Data(raw)
    }
}

impl From<&Value> for Data {
    fn from(value: &Value) -> Self {
        // A `Value` always serialises (its map keys are strings).
        Data::from_value(value).unwrap_or_else(|_| Data::null())
    }
}

impl Serialize for Data {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Data {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(deserializer).map(Data)
    }
}

/// What an [`Envelope`] can carry as `data`: a [`Value`], a [`Data`] or a [`RawValue`].
pub trait FrameData: Serialize {
    /// Whether it is JSON `null` (then `data` is left out of the frame).
    fn is_null(&self) -> bool;
}

impl FrameData for Value {
    fn is_null(&self) -> bool {
        Value::is_null(self)
    }
}

/// In the event document `Data` is any JSON value: whatever the client sent.
impl poem_openapi::types::Type for Data {
    const IS_REQUIRED: bool = false;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> std::borrow::Cow<'static, str> {
        "any".into()
    }
    fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
        poem_openapi::registry::MetaSchemaRef::Inline(Box::new(
            poem_openapi::registry::MetaSchema::ANY,
        ))
    }
    fn as_raw_value(&self) -> Option<&Self> {
        Some(self)
    }
    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
        Box::new(std::iter::once(self))
    }
}

impl FrameData for Data {
    fn is_null(&self) -> bool {
        Data::is_null(self)
    }
}

impl FrameData for RawValue {
    fn is_null(&self) -> bool {
        self.get() == "null"
    }
}

/// A parsed client request.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// Event name.
    pub event: String,
    /// Payload (`null` when absent), unparsed.
    pub data: Data,
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

/// The top-level fields of a frame, each still unparsed; unknown fields are skipped.
#[derive(Deserialize)]
struct RawFrame<'a> {
    #[serde(borrow, default)]
    event: Option<&'a RawValue>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(borrow, default)]
    seqno: Option<&'a RawValue>,
}

fn malformed(message: impl fmt::Display) -> BadFrame {
    BadFrame {
        event: None,
        seqno: None,
        message: format!("malformed frame: {message}"),
    }
}

/// Parses a binary request frame (its bytes must be UTF-8 JSON like any frame).
///
/// Only `event` and `seqno` are parsed; `data` is checked to be well-formed JSON and kept as
/// text ([`Data`]). A field given twice is refused.
///
/// ```
/// use switchboard_sdk::protocol::parse_request;
/// let r = parse_request(br#"{"event":"ping","seqno":7}"#).unwrap();
/// assert_eq!(r.event, "ping");
/// assert!(parse_request(b"nope").is_err());
/// ```
pub fn parse_request(bytes: &[u8]) -> Result<Request, BadFrame> {
    expect_object(bytes)?;
    request_from(serde_json::from_slice(bytes).map_err(malformed)?)
}

/// Parses a text request frame as [`parse_request`] does, without checking UTF-8 again (the
/// WebSocket layer already checked a text frame's payload).
pub fn parse_text_request(text: &str) -> Result<Request, BadFrame> {
    expect_object(text.as_bytes())?;
    request_from(serde_json::from_str(text).map_err(malformed)?)
}

/// A struct also deserialises from a JSON array (fields by position): only objects are frames.
fn expect_object(bytes: &[u8]) -> Result<(), BadFrame> {
    if bytes.trim_ascii_start().first() == Some(&b'{') {
        return Ok(());
    }
    Err(
        match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
            Err(e) => malformed(e),
            Ok(_) => malformed("expected a JSON object"),
        },
    )
}

fn request_from(frame: RawFrame<'_>) -> Result<Request, BadFrame> {
    let seqno = match frame
        .seqno
        .map(|raw| serde_json::from_str::<Value>(raw.get()))
    {
        None => None,
        Some(Ok(v @ (Value::String(_) | Value::Number(_)))) => Some(v),
        // `null` never reaches here (an absent Option); nested values parse or were refused above
        // only when too deep.
        Some(_) => {
            return Err(BadFrame {
                event: frame
                    .event
                    .and_then(|e| serde_json::from_str::<String>(e.get()).ok()),
                seqno: None,
                message: "seqno must be a string or a number".into(),
            });
        }
    };
    let bad = |message: String| BadFrame {
        event: None,
        seqno: seqno.clone(),
        message,
    };
    let event = match frame.event {
        None => return Err(bad("missing event".into())),
        Some(raw) => match serde_json::from_str::<String>(raw.get()) {
            Ok(s) if s.is_empty() => return Err(bad("event must not be empty".into())),
            Ok(s) if s.len() > MAX_EVENT_LEN => {
                return Err(bad(format!("event must be at most {MAX_EVENT_LEN} bytes")));
            }
            Ok(s) => s,
            Err(_) => return Err(bad("event must be a string".into())),
        },
    };
    let data = frame
        .data
        .map_or_else(Data::null, |raw| Data(raw.to_owned()));
    Ok(Request { event, data, seqno })
}

/// Position of a push in a delivery stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StreamPosition {
    /// `user:<id>`, `tag:<name>` or `all`.
    pub stream: String,
    /// 1, 2, 3… per stream.
    pub offset: u64,
    /// Changes whenever the stream's history is lost.
    pub epoch: String,
}

/// One server → client frame before serialisation. `data` is a [`Value`] by default, or any
/// [`FrameData`] (a request's [`Data`] passed back untouched).
#[derive(Debug, Serialize)]
#[serde(bound(serialize = "D: FrameData"))]
pub struct Envelope<'a, D: ?Sized = Value> {
    /// Event name.
    pub event: &'a str,
    /// Payload; omitted when null.
    #[serde(skip_serializing_if = "data_is_null")]
    pub data: &'a D,
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

fn data_is_null<D: FrameData + ?Sized>(data: &&D) -> bool {
    data.is_null()
}

impl<'a, D: FrameData + ?Sized> Envelope<'a, D> {
    /// A plain push or success reply.
    pub fn new(event: &'a str, data: &'a D) -> Self {
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
        // Serialising a struct of strings, numbers and JSON values cannot fail.
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
        assert_eq!(r.data.to_value().unwrap(), json!({"x":1}));
        assert_eq!(r.seqno, Some(json!("s1")));
    }

    #[test]
    fn data_and_seqno_are_optional() {
        let r = parse_request(br#"{"event":"ping"}"#).unwrap();
        assert!(r.data.is_null());
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
        // `data` is only skimmed (iteratively); binding it is where depth is limited.
        let deep = format!(
            r#"{{"event":"x","data":{}{}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        let r = parse_request(deep.as_bytes()).unwrap();
        assert_eq!(r.data.get().len(), 20_000);
        assert_eq!(r.data.to_value().unwrap_err().code, code::BAD_REQUEST);
        let deep_seqno = format!(
            r#"{{"event":"x","seqno":{}1{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert!(parse_request(deep_seqno.as_bytes()).is_err());
        let unbalanced = format!(r#"{{"event":"x","data":{}}}"#, "[".repeat(10_000));
        assert!(parse_request(unbalanced.as_bytes()).is_err());
    }

    #[test]
    fn data_is_kept_as_sent_and_fields_are_not_repeated() {
        let r = parse_request(br#" {"data": { "a" : [1, 2.50] }, "event":"e", "extra": {"x":[]}}"#)
            .unwrap();
        assert_eq!(r.data.get(), r#"{ "a" : [1, 2.50] }"#);
        let e = parse_request(br#"{"event":"a","event":"b"}"#).unwrap_err();
        assert!(
            e.message.contains("duplicate field `event`"),
            "{}",
            e.message
        );
        let e = parse_request(br#"["ping", null, 1]"#).unwrap_err();
        assert_eq!(e.message, "malformed frame: expected a JSON object");
        let e = parse_request(br#"{"event":"x","data":{"a":}}"#).unwrap_err();
        assert!(e.message.starts_with("malformed frame"), "{}", e.message);
        let r = parse_text_request(r#"{"event":"e\u0041","data":null,"seqno":null}"#).unwrap();
        assert_eq!(r.event, "eA");
        assert!(r.data.is_null() && r.seqno.is_none());
    }

    #[test]
    fn raw_data_goes_back_out_untouched() {
        let r = parse_request(br#"{"event":"e","data":{"big":123456789012345678901234567890}}"#)
            .unwrap();
        let mut e = Envelope::new("e", &r.data);
        e.timestamp = 1;
        assert_eq!(
            &*e.encode(),
            r#"{"event":"e","data":{"big":123456789012345678901234567890},"code":0,"timestamp":1}"#
        );
        let null = Data::null();
        let mut e = Envelope::new("e", &null);
        e.timestamp = 1;
        assert_eq!(&*e.encode(), r#"{"event":"e","code":0,"timestamp":1}"#);
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
