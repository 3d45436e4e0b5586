//! The AsyncAPI 3.0.0 document of the WebSocket protocol, served at `GET /api/asyncapi.json`
//! and printed by `switchboard asyncapi`.
//!
//! Every event the socket answers — the built-ins and whatever the addons registered — is a
//! `send` operation whose request and reply messages wrap the `data` schemas the handlers
//! declared through their own types; every push the server sends unasked is a `receive`
//! operation. The schemas come from the same poem-openapi registry as the HTTP spec, so a type
//! used by both looks the same in both documents.

use poem_openapi::registry::Registry;
use serde_json::{Map, Value, json};
use switchboard_sdk::event::{EventDoc, Schema};

use crate::websocket::{EventRouter, builtins};

/// The AsyncAPI version the document follows.
pub const ASYNCAPI_VERSION: &str = "3.0.0";

/// [`document`], or why it cannot be built: poem-openapi panics when two different types share
/// one schema name (e.g. two addons' `MoveRequest`), which must stop start-up with that message,
/// not crash it.
pub fn try_document(router: &EventRouter, socket_path: &str) -> Result<Value, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        document(router, socket_path)
    }))
    .map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "the event schemas could not be collected".into())
    })
}

/// Builds the document for the socket at `socket_path` with the events of `router`.
pub fn document(router: &EventRouter, socket_path: &str) -> Value {
    let mut registry = Registry::new();
    let mut messages = Map::new();
    let mut channel_messages = Map::new();
    let mut operations = Map::new();

    let mut events = builtins::docs();
    events.extend(router.docs());
    events.sort_by(|a, b| a.name.cmp(&b.name));

    for ev in &events {
        let key = unique_key(&operations, key_of(&ev.name));
        let request_id = format!("{key}.request");
        let reply_id = format!("{key}.reply");
        messages.insert(
            request_id.clone(),
            request_message(ev, ev.request.resolve(&mut registry)),
        );
        let reply_data = ev.reply.map(|s| schema_json(&s, &mut registry));
        messages.insert(reply_id.clone(), reply_message(ev, reply_data));
        for id in [&request_id, &reply_id] {
            channel_messages.insert(
                id.clone(),
                json!({ "$ref": format!("#/components/messages/{id}") }),
            );
        }
        let mut op = json!({
            "action": "send",
            "channel": { "$ref": "#/channels/socket" },
            "title": ev.name,
            "summary": summary(ev),
            "messages": [{ "$ref": format!("#/channels/socket/messages/{request_id}") }],
            "reply": {
                "channel": { "$ref": "#/channels/socket" },
                "messages": [{ "$ref": format!("#/channels/socket/messages/{reply_id}") }],
            },
            "x-switchboard-event": ev.name,
            "x-switchboard-addon": ev.addon,
            "x-switchboard-role": ev.role.map(|r| r.as_str()),
        });
        if !ev.description.is_empty() {
            op["description"] = Value::from(ev.description.clone());
        }
        operations.insert(key, op);
    }

    for push in builtins::pushes() {
        let key = format!("{}.push", key_of(push.name));
        let data = schema_json(&push.data, &mut registry);
        messages.insert(
            key.clone(),
            json!({
                "name": push.name,
                "title": push.name,
                "summary": push.description,
                "contentType": "application/json",
                "payload": push_envelope(push.name, data),
            }),
        );
        channel_messages.insert(
            key.clone(),
            json!({ "$ref": format!("#/components/messages/{key}") }),
        );
        operations.insert(
            format!("receive.{}", key_of(push.name)),
            json!({
                "action": "receive",
                "channel": { "$ref": "#/channels/socket" },
                "title": push.name,
                "summary": push.description,
                "messages": [{ "$ref": format!("#/channels/socket/messages/{key}") }],
                "x-switchboard-event": push.name,
            }),
        );
    }

    let schemas: Map<String, Value> = registry
        .schemas
        .iter()
        .map(|(name, s)| (name.clone(), serde_json::to_value(s).unwrap_or(Value::Null)))
        .collect();

    json!({
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Switchboard WebSocket events",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Every event a client may send on the socket (with its reply) and \
                every message the server pushes. Frames are JSON text; a request is \
                `{event, data, seqno}`, a reply or push is `{event, data, code, errorMsg, seqno, \
                timestamp}`. Operations with `x-switchboard-role` need that role (403 otherwise).",
        },
        "defaultContentType": "application/json",
        "channels": {
            "socket": {
                "address": socket_path,
                "title": "The WebSocket",
                "description": "One connection per client; requests are answered in arrival order.",
                "messages": channel_messages,
            }
        },
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": schemas,
        },
    })
}

/// Message, operation and component keys may hold only `A-Za-z0-9_.-`; event names also use `/`.
fn key_of(event: &str) -> String {
    event
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `a/b` and `a_b` are different events with the same key: the later one gets a suffix.
fn unique_key(taken: &Map<String, Value>, key: String) -> String {
    if !taken.contains_key(&key) {
        return key;
    }
    (2..)
        .map(|n| format!("{key}-{n}"))
        .find(|k| !taken.contains_key(k))
        .unwrap_or(key)
}

fn summary(ev: &EventDoc) -> String {
    match ev.role {
        Some(role) => format!("`{}` (needs the {role} role)", ev.name),
        None => format!("`{}`", ev.name),
    }
}

fn schema_json(schema: &Schema, registry: &mut Registry) -> Value {
    serde_json::to_value(schema.resolve(registry)).unwrap_or(Value::Null)
}

fn seqno_schema() -> Value {
    json!({
        "description": "Correlates a reply with its request; echoed as sent.",
        "type": ["string", "number"],
    })
}

fn request_message(ev: &EventDoc, data: poem_openapi::registry::MetaSchemaRef) -> Value {
    json!({
        "name": ev.name,
        "title": format!("{} request", ev.name),
        "contentType": "application/json",
        "payload": {
            "type": "object",
            "required": ["event"],
            "properties": {
                "event": { "const": ev.name },
                "data": serde_json::to_value(data).unwrap_or(Value::Null),
                "seqno": seqno_schema(),
            },
        },
    })
}

fn reply_message(ev: &EventDoc, data: Option<Value>) -> Value {
    let mut properties = json!({
        "event": { "const": ev.name },
        "code": {
            "type": "integer",
            "description": "0 ok; -1 the handler failed; 400 bad data; 403 not allowed; \
                404 unknown event; 429 rate limited; 500 the handler panicked.",
        },
        "errorMsg": { "type": "string", "description": "Only when `code` is not 0." },
        "seqno": seqno_schema(),
        "timestamp": { "type": "integer", "description": "Unix seconds." },
    });
    if let Some(data) = data {
        properties["data"] = data;
    }
    json!({
        "name": ev.name,
        "title": format!("{} reply", ev.name),
        "contentType": "application/json",
        "payload": {
            "type": "object",
            "required": ["event", "code", "timestamp"],
            "properties": properties,
        },
    })
}

fn push_envelope(name: &str, data: Value) -> Value {
    json!({
        "type": "object",
        "required": ["event", "code", "timestamp"],
        "properties": {
            "event": { "const": name },
            "data": data,
            "code": { "const": 0 },
            "timestamp": { "type": "integer", "description": "Unix seconds." },
        },
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value};

    use super::{key_of, unique_key};

    #[test]
    fn event_names_become_valid_keys() {
        assert_eq!(key_of("admin/monitor/trends"), "admin_monitor_trends");
        assert_eq!(key_of("ping"), "ping");
    }

    #[test]
    fn names_that_map_to_one_key_stay_apart() {
        let mut taken = Map::new();
        taken.insert(key_of("a/b"), Value::Null);
        assert_eq!(unique_key(&taken, key_of("a_b")), "a_b-2");
        taken.insert("a_b-2".into(), Value::Null);
        assert_eq!(unique_key(&taken, key_of("a_b")), "a_b-3");
        assert_eq!(unique_key(&taken, key_of("c")), "c");
    }
}
