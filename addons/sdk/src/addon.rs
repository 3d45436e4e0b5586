//! The `Addon` trait: how a crate under `addons/` plugs into the server.

use std::future::Future;
use std::sync::Arc;

use sea_orm::DatabaseConnection;
use sea_orm_migration::MigrationTrait;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::event::EventRegistry;
use crate::hub::Hub;

/// What an addon gets at start-up: the send functions, the database, and a way to run
/// background tasks that stop on shutdown.
#[derive(Clone)]
pub struct AddonContext {
    hub: Arc<dyn Hub>,
    db: DatabaseConnection,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl AddonContext {
    /// Built by the server.
    pub fn new(
        hub: Arc<dyn Hub>,
        db: DatabaseConnection,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Self {
        AddonContext {
            hub,
            db,
            shutdown,
            tasks,
        }
    }
    /// The send functions.
    pub fn hub(&self) -> &Arc<dyn Hub> {
        &self.hub
    }
    /// The server's database (the addon's own tables are created by its migrations).
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }
    /// Cancelled when the server shuts down.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }
    /// Runs a background task. It is dropped at its next await once shutdown begins, and the
    /// server waits for it before exiting.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let stop = self.shutdown.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = task => {}
            }
        });
    }
}

/// An addon crate. The server lists its addons in one place (`server/src/addons.rs`).
///
/// Event names should look like `admin/addons/<name>/<action>`; HTTP endpoints live under
/// `/api/addons/<name>/`.
pub trait Addon: Send + Sync + 'static {
    /// The addon's OpenAPI endpoints (a poem-openapi `#[OpenApi]` struct, or `()` for none).
    type Api: poem_openapi::OpenApi + Send + Sync + 'static;

    /// A short unique name, used in event names, paths and the migration table.
    fn name(&self) -> &'static str;

    /// Registers WebSocket events (conventionally from `src/router/websocket.rs`).
    fn register_events(&self, events: &mut EventRegistry);

    /// Builds the OpenAPI endpoints.
    fn api(&self, ctx: &AddonContext) -> Self::Api;

    /// Paths the auth middleware lets through without a token (exact, or a prefix ending in `*`).
    fn exempt_paths(&self) -> Vec<String> {
        Vec::new()
    }

    /// Schema migrations, applied in order and recorded in the addon's own table
    /// `switchboard_migrations_<name>`.
    fn migrations(&self) -> Vec<Box<dyn MigrationTrait>> {
        Vec::new()
    }

    /// Starts background tasks with [`AddonContext::spawn`].
    fn start(&self, ctx: &AddonContext) {
        let _ = ctx;
    }
}
