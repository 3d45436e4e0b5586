//! The sdk's send functions on top of the local registry.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use switchboard_sdk::protocol::Push;
use switchboard_sdk::{Client, ClientId, Hub, Tag, UserId};

use super::registry::Registry;
use crate::metrics::Metrics;

/// The single-node hub.
pub struct LocalHub {
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
}

impl LocalHub {
    /// Wraps a registry.
    pub fn new(registry: Arc<Registry>, metrics: Arc<Metrics>) -> Self {
        LocalHub { registry, metrics }
    }

    /// The registry.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    fn timed(&self, f: impl FnOnce() -> usize) -> usize {
        let start = Instant::now();
        let n = f();
        self.metrics.send_seconds.observe(start.elapsed());
        n
    }
}

#[async_trait]
impl Hub for LocalHub {
    async fn send_to_all(&self, push: Push) -> usize {
        self.timed(|| self.registry.push_all(&push, None))
    }

    async fn send_to_client(&self, id: &ClientId, push: Push) -> usize {
        self.timed(|| self.registry.push_client(id, &push))
    }

    async fn send_to_user(&self, user: UserId, push: Push) -> usize {
        self.timed(|| self.registry.push_user(user, &push, None))
    }

    async fn send_to_tag(&self, tag: &Tag, push: Push) -> usize {
        self.timed(|| self.registry.push_tag(tag, &push, None, None))
    }

    fn client(&self, id: &ClientId) -> Option<Arc<Client>> {
        self.registry.get(id)
    }

    fn user_clients(&self, user: UserId) -> Vec<Arc<Client>> {
        self.registry.user_clients(user)
    }

    fn node_id(&self) -> &str {
        self.registry.node()
    }
}
