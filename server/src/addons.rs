//! The one place that lists the addons. To add one, depend on its crate in `server/Cargo.toml`
//! and name it in the `addons!` list at the bottom of this file: one line,
//! `field: crate::Type,` (the type implements `switchboard_sdk::Addon` and `Default`).
//! Everything else — events, exemptions, migrations, APIs, background tasks — follows from it.

use sea_orm::DatabaseConnection;
use switchboard_sdk::event::EventRegistry;
use switchboard_sdk::{Addon, AddonContext};

/// Builds [`Addons`] and [`AddonApis`] from a list of `field: Type` pairs, in start-up order.
macro_rules! addons {
    ($($field:ident: $ty:ty),+ $(,)?) => {
        /// The addons' OpenAPI endpoints, combined at compile time. The trailing `()` keeps it
        /// a tuple of at least two (poem-openapi combines 2 to 16), so one addon works too.
        pub type AddonApis = ($(<$ty as Addon>::Api,)+ ());

        /// Every addon of this build.
        #[derive(Default)]
        pub struct Addons {
            $($field: $ty,)+
        }

        impl Addons {
            /// Names, in start-up order.
            pub fn names(&self) -> Vec<&'static str> {
                vec![$(self.$field.name()),+]
            }

            /// Lets every addon register its events, each under its own name.
            pub fn register_events(&self, events: &mut EventRegistry) {
                $(
                    events.set_addon(self.$field.name());
                    self.$field.register_events(events);
                )+
            }

            /// Exemption-list entries contributed by addons.
            pub fn exempt_paths(&self) -> Vec<String> {
                let mut paths = Vec::new();
                $(paths.extend(self.$field.exempt_paths());)+
                paths
            }

            /// Runs every addon's migrations, each in its own migration table.
            pub async fn migrate(&self, db: &DatabaseConnection) -> Result<(), sea_orm::DbErr> {
                $(
                    crate::db::migrate_addon(db, self.$field.name(), self.$field.migrations())
                        .await?;
                )+
                Ok(())
            }

            /// Builds the addons' APIs.
            pub fn apis(&self, ctx: &AddonContext) -> AddonApis {
                ($(self.$field.api(ctx),)+ ())
            }

            /// Starts background tasks.
            pub fn start(&self, ctx: &AddonContext) {
                $(self.$field.start(ctx);)+
            }
        }
    };
}

addons! {
    hgexample: hgexample::HgExample,
    poll: poll::Poll,
}
