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

    /// Deserialises the data into `T`; a mismatch is a 400 naming the field (see [`bind`]).
    pub fn bind<T: DeserializeOwned>(&self) -> Result<T, EventError> {
        bind(self)
    }

    /// The data as a [`Value`].
    pub fn to_value(&self) -> Result<Value, EventError> {
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

/// Longest accepted event name, in bytes.
pub const MAX_EVENT_LEN: usize = 128;

/// An error reply: `code` and `errorMsg`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventError {
    /// Reply code (see [`code`]).
    pub code: i32,
    /// Human-readable message.
    pub message: String,
}

impl EventError {
    /// Any code.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        EventError {
            code,
            message: message.into(),
        }
    }
    /// The handler failed (code -1, hotgo's `SendError`).
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(code::HANDLER_ERROR, message)
    }
    /// Bad input (400).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(code::BAD_REQUEST, message)
    }
    /// Not allowed (403).
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(code::FORBIDDEN, message)
    }
    /// Not found (404).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(code::NOT_FOUND, message)
    }
}

impl fmt::Display for EventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for EventError {}

/// Binds `data` into a handler's own type, straight from the JSON text; a mismatch is a 400
/// naming the field.
///
/// ```
/// use serde::Deserialize;
/// use switchboard_sdk::event::bind;
/// use switchboard_sdk::protocol::Data;
/// #[derive(Deserialize)]
/// struct Move { x: i32 }
/// let data = Data::from_json(r#"{"x": "left"}"#).unwrap();
/// let err = bind::<Move>(&data).err().unwrap();
/// assert_eq!(err.code, 400);
/// assert!(err.message.starts_with("data.x:"));
/// ```
pub fn bind<T: DeserializeOwned>(data: &Data) -> Result<T, EventError> {
    let mut de = serde_json::Deserializer::from_str(data.get());
    serde_path_to_error::deserialize::<_, T>(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            EventError::bad_request(format!("data: {inner}"))
        } else {
            EventError::bad_request(format!("data.{path}: {inner}"))
        }
    })
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

    /// The frame's JSON text. This is the only place a frame is serialised: the server turns
    /// the `String` into a shared buffer without copying and hands it to every recipient.
    pub fn encode(&self) -> String {
        // Serialising a struct of strings, numbers and JSON values cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}

impl<'a> Envelope<'a, Value> {
    /// An error reply `{"event", "code", "errorMsg"}` (with `seqno` echoed when given). Every
    /// refusal a client sees is built here.
    pub fn error(event: &'a str, err: &'a EventError, seqno: Option<&'a Value>) -> Self {
        Envelope {
            event,
            data: &Value::Null,
            code: err.code,
            error_msg: Some(&err.message),
            seqno,
            stream: None,
            offset: None,
            epoch: None,
            timestamp: unix_now(),
        }
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
    fn raw_data_goes_back_out_untouched() {
        let data = Data::from_json(r#"{"big":123456789012345678901234567890}"#).unwrap();
        let mut e = Envelope::new("e", &data);
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
