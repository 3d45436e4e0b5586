//! The WebSocket module: handshake, per-connection task, built-in events, registry, hub.

pub mod builtins;
pub mod client;
pub mod connection;
pub mod frame;
pub mod handshake;
pub mod history;
pub mod hub;
pub mod io;
pub mod monitor;
pub mod outbox;
pub mod ratelimit;
pub mod registry;
pub mod router;
pub mod useragent;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::AuthService;
use crate::config::WebSocketConfig;
use crate::metrics::Metrics;
use crate::net::TrustedProxies;
use crate::node::Node;

pub use client::Connection;
pub use hub::LocalHub;
pub use registry::Registry;
pub use router::EventRouter;

/// Everything a connection needs, shared by all of them.
pub struct WsState {
    /// `[websocket]` config.
    pub cfg: WebSocketConfig,
    /// The node: every send, kick, tag change and recovery goes through it.
    pub node: Arc<Node>,
    /// Addon events.
    pub router: Arc<EventRouter>,
    /// Auth (socket `login`, revocation checks).
    pub auth: Arc<AuthService>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Cancelled on shutdown: every socket closes with 1001.
    pub shutdown: CancellationToken,
    /// Tracks connection tasks so shutdown can wait for them.
    pub tasks: TaskTracker,
    /// For client IPs.
    pub proxies: TrustedProxies,
    /// Whether the socket path is on the exemption list (anonymous clients may `login`).
    pub socket_exempt: bool,
    /// The monitor events' figures.
    pub monitor: Arc<monitor::Monitor>,
}

impl WsState {
    /// This node's sockets.
    pub fn registry(&self) -> &Arc<Registry> {
        self.node.registry()
    }
}
