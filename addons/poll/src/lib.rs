//! # poll — polls over the WebSocket
//!
//! A second example addon, written from `docs/addons.md`:
//! - `admin/addons/poll/create` (operator) stores a question with 2-10 options;
//! - `admin/addons/poll/vote` (any user) records one vote per user and poll, enforced by a
//!   unique index, and pushes the new counts to tag `poll:<id>`;
//! - `admin/addons/poll/results` (any user) answers the counts;
//! - `GET /api/addons/poll/{id}` answers the same counts over HTTP.
//!
//! Layout: `router/websocket.rs` registers the events, `controller/websocket/handler/` holds
//! them, `model.rs` the request and reply types with their limits, `store.rs` the queries,
//! `entity/` and `migration.rs` the tables, `api.rs` the endpoint, `state.rs` what the handlers
//! share.

pub mod api;
pub mod controller;
pub mod entity;
pub mod migration;
pub mod model;
pub mod router;
pub mod state;
pub mod store;

use switchboard_sdk::event::EventRegistry;
use switchboard_sdk::{Addon, AddonContext};

use crate::state::PollState;

/// The addon's name: events are `admin/addons/poll/…`, paths `/api/addons/poll/…`.
pub const NAME: &str = "poll";

/// The poll addon.
#[derive(Default, Clone)]
pub struct Poll {
    state: PollState,
}

impl Addon for Poll {
    type Api = api::PollApi;

    fn name(&self) -> &'static str {
        NAME
    }

    fn register_events(&self, events: &mut EventRegistry) {
        router::websocket::register(events, &self.state);
    }

    fn api(&self, ctx: &AddonContext) -> Self::Api {
        self.state.init(ctx);
        api::PollApi::new(ctx.clone())
    }

    fn migrations(&self) -> Vec<Box<dyn sea_orm_migration::MigrationTrait>> {
        migration::all()
    }

    fn start(&self, ctx: &AddonContext) {
        self.state.init(ctx);
    }
}
