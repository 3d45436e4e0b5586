//! The one place that lists the addons. To add one: depend on its crate in
//! `server/Cargo.toml`, add a field here, and add its `Api` type to [`AddonApis`].

use sea_orm::DatabaseConnection;
use switchboard_sdk::event::EventRegistry;
use switchboard_sdk::{Addon, AddonContext};

use hgexample::HgExample;

/// The addons' OpenAPI endpoints, combined at compile time (a tuple for several addons).
pub type AddonApis = <HgExample as Addon>::Api;

/// Every addon of this build.
#[derive(Default)]
pub struct Addons {
    hgexample: HgExample,
}

impl Addons {
    /// Names, in start-up order.
    pub fn names(&self) -> Vec<&'static str> {
        vec![self.hgexample.name()]
    }

    /// Lets every addon register its events.
    pub fn register_events(&self, events: &mut EventRegistry) {
        events.set_addon(self.hgexample.name());
        self.hgexample.register_events(events);
    }

    /// Exemption-list entries contributed by addons.
    pub fn exempt_paths(&self) -> Vec<String> {
        self.hgexample.exempt_paths()
    }

    /// Runs every addon's migrations in its own migration table.
    pub async fn migrate(&self, db: &DatabaseConnection) -> Result<(), sea_orm::DbErr> {
        crate::db::migrate_addon(db, self.hgexample.name(), self.hgexample.migrations()).await
    }

    /// Builds the addons' APIs.
    pub fn apis(&self, ctx: &AddonContext) -> AddonApis {
        self.hgexample.api(ctx)
    }

    /// Starts background tasks.
    pub fn start(&self, ctx: &AddonContext) {
        self.hgexample.start(ctx);
    }
}
