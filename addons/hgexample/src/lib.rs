//! # hgexample — the example Switchboard addon
//!
//! What an addon author copies from:
//! - `src/router/websocket.rs` registers the WebSocket event `admin/addons/hgexample/testMessage`;
//! - `src/controller/websocket/handler/` holds its handler (echoes `data` with send_success);
//! - `src/api.rs` adds OpenAPI endpoints under `/api/addons/hgexample/`: a push to a user through
//!   the sdk's send functions, the log of those pushes (its own table), and an exempt ping;
//! - `src/clock.rs` pushes the server time every 3 s to the members of tag `hgexample:clock`;
//! - `src/migration.rs` creates the addon's table, tracked in its own migration table.

pub mod api;
pub mod clock;
pub mod controller;
pub mod entity;
pub mod migration;
pub mod router;

use switchboard_sdk::event::EventRegistry;
use switchboard_sdk::{Addon, AddonContext};

/// The addon's name: events are `admin/addons/hgexample/…`, paths `/api/addons/hgexample/…`.
pub const NAME: &str = "hgexample";

/// The example addon.
#[derive(Default, Clone, Copy)]
pub struct HgExample;

impl Addon for HgExample {
    type Api = api::HgExampleApi;

    fn name(&self) -> &'static str {
        NAME
    }

    fn register_events(&self, events: &mut EventRegistry) {
        router::websocket::register(events);
    }

    fn api(&self, ctx: &AddonContext) -> Self::Api {
        api::HgExampleApi::new(ctx.clone())
    }

    fn exempt_paths(&self) -> Vec<String> {
        vec![api::PING_PATH.to_string()]
    }

    fn migrations(&self) -> Vec<Box<dyn sea_orm_migration::MigrationTrait>> {
        migration::all()
    }

    fn start(&self, ctx: &AddonContext) {
        ctx.spawn(clock::run(ctx.hub().clone(), clock::PERIOD));
    }
}
