//! The addons' events, frozen at start-up: looked up by name for each request, with the role
//! check in front of each route's middleware chain.

use std::collections::HashMap;

use switchboard_sdk::EventContext;
use switchboard_sdk::event::{EventDoc, EventRegistry, EventResult, RegistryError, Route};
use switchboard_sdk::protocol::{Data, EventError};

/// The event table the socket tasks dispatch through.
pub struct EventRouter {
    routes: HashMap<String, Route>,
}

impl EventRouter {
    /// Freezes what the addons registered; fails with every registration problem found.
    pub fn build(registry: EventRegistry) -> Result<Self, Vec<RegistryError>> {
        let routes = registry
            .build()?
            .into_iter()
            .map(|r| (r.name().to_string(), r))
            .collect();
        Ok(EventRouter { routes })
    }

    /// The route of an event.
    pub fn route(&self, name: &str) -> Option<&Route> {
        self.routes.get(name)
    }

    /// What the event document says about every registered event, sorted by name.
    pub fn docs(&self) -> Vec<EventDoc> {
        let mut v: Vec<EventDoc> = self.routes.values().map(Route::doc).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Runs the role check, then the route's middleware chain and handler.
    pub async fn dispatch(&self, route: &Route, ctx: EventContext, data: Data) -> EventResult {
        if let Some(required) = route.role() {
            let allowed = ctx.identity().is_some_and(|i| i.has_role(required));
            if !allowed {
                return Err(EventError::forbidden(format!(
                    "event requires the {required} role"
                )));
            }
        }
        route.call(ctx, data).await
    }
}
