//! Request frames in: `{"event": "<name>", "data": <any>, "seqno": <string|number>}`, text or
//! binary. Only `event` and `seqno` are parsed here; `data` stays JSON text until a handler
//! binds it.

use std::fmt;

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use switchboard_sdk::protocol::{Data, MAX_EVENT_LEN};

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
        .map_or_else(Data::null, |raw| Data::from(raw.to_owned()));
    Ok(Request { event, data, seqno })
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
        assert_eq!(r.data.to_value().unwrap_err().code, 400);
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
}
