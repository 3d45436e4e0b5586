//! # switchboard-sdk
//!
//! Everything a Switchboard addon may touch: the wire [`protocol`], the [`Client`] handle,
//! the send functions ([`Hub`]), the [`event`] registry with typed binding and middleware,
//! the [`Addon`] trait, identities and roles, and the HTTP error/security helpers in [`api`].
//!
//! An addon never depends on the server crate; the server depends on every addon.

#![warn(missing_docs)]

pub mod addon;
pub mod api;
pub mod client;
pub mod event;
pub mod hub;
pub mod identity;
pub mod outbox;
pub mod protocol;
pub mod tag;

pub use addon::{Addon, AddonContext};
pub use async_trait::async_trait;
pub use client::{Client, ClientId, ClientInfo, Session};
pub use event::{EventContext, EventError, EventRegistry, EventResult, Reply};
pub use hub::{Audience, Hub};
pub use identity::{Credential, Identity, Role, UserId};
pub use protocol::{Data, Push};
pub use tag::Tag;

/// Sends a success frame `{"event", "data", "code": 0}` to one connection (hotgo's
/// `SendSuccess`). Returns whether it was queued.
pub fn send_success(client: &Client, event: &str, data: &serde_json::Value) -> bool {
    client.send_success(event, data)
}

/// Sends an error frame `{"event", "code": -1, "errorMsg"}` to one connection (hotgo's
/// `SendError`). Returns whether it was queued.
pub fn send_error(client: &Client, event: &str, err: &EventError) -> bool {
    let mut env = protocol::Envelope::new(event, &serde_json::Value::Null);
    env.code = err.code;
    env.error_msg = Some(&err.message);
    client.send_envelope(&env, false)
}
