//! What the handlers share with the rest of the addon.
//!
//! The server registers events before it builds the addon's context (the database and the
//! send functions), so a handler cannot capture the context when it is registered. The addon
//! keeps this cell instead, fills it when the server calls [`Addon::api`] and [`Addon::start`]
//! (both run before the server accepts its first connection), and every handler reads it.
//!
//! [`Addon::api`]: switchboard_sdk::Addon::api
//! [`Addon::start`]: switchboard_sdk::Addon::start

use std::sync::{Arc, OnceLock};

use sea_orm::DatabaseConnection;
use switchboard_sdk::{AddonContext, EventError, Hub};

/// The addon's context, shared by every handler (cheap to clone).
#[derive(Clone, Default)]
pub struct PollState(Arc<OnceLock<AddonContext>>);

impl PollState {
    /// Stores the context; later calls keep the first one (the server builds one per start).
    pub fn init(&self, ctx: &AddonContext) {
        let _ = self.0.set(ctx.clone());
    }

    fn ctx(&self) -> Result<&AddonContext, EventError> {
        self.0
            .get()
            .ok_or_else(|| EventError::failed("the poll addon has not started"))
    }

    /// The database.
    pub fn db(&self) -> Result<&DatabaseConnection, EventError> {
        self.ctx().map(AddonContext::db)
    }

    /// The send functions.
    pub fn hub(&self) -> Result<&Arc<dyn Hub>, EventError> {
        self.ctx().map(AddonContext::hub)
    }
}
