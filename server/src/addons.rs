//! The one place that lists the addons. To add one, depend on its crate in `server/Cargo.toml`
//! and name it in the `addons!` list at the bottom of this file: one line,
//! `field: crate::Type,` (the type implements `switchboard_sdk::Addon` and `Default`).
//! Everything else — events, exemptions, migrations, APIs, background tasks — follows from it.

use sea_orm::DatabaseConnection;
use switchboard_sdk::event::EventRegistry;
use switchboard_sdk::{Addon, AddonContext};

/// The type of every addon's OpenAPI endpoints, as nested pairs ending in `()`: poem-openapi
/// combines tuples of APIs, and pairs nest for any number of addons.
macro_rules! api_type {
    () => { () };
    ($head:ty $(, $tail:ty)*) => { (<$head as Addon>::Api, api_type!($($tail),*)) };
}

/// The value of [`api_type!`]: each addon's `api(ctx)`, in the same nesting.
macro_rules! api_value {
    ($self:ident, $ctx:ident;) => { () };
    ($self:ident, $ctx:ident; $head:ident $(, $tail:ident)*) => {
        ($self.$head.api($ctx), api_value!($self, $ctx; $($tail),*))
    };
}

/// Declares [`Addons`] and [`AddonApis`] from one list of `field: Type` entries.
macro_rules! addons {
    ($($field:ident: $addon:ty),+ $(,)?) => {
        /// The addons' OpenAPI endpoints, combined at compile time.
        pub type AddonApis = api_type!($($addon),+);

        /// Every addon of this build.
        #[derive(Default)]
        pub struct Addons {
            $($field: $addon,)+
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
                api_value!(self, ctx; $($field),+)
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
