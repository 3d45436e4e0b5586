//! The HTTP API (poem-openapi): one file per resource, combined in one service.

pub mod apikeys;
pub mod asyncapi;
pub mod audit;
pub mod auth;
pub mod body_check;
pub mod site;
pub mod users;
pub mod websocket;

use std::sync::Arc;
use std::time::Instant;

use poem_openapi::Tags;
use sea_orm::DatabaseConnection;

use crate::audit::{AuditEntry, AuditLog};
use crate::auth::AuthService;
use crate::config::Config;
use crate::websocket::WsState;

/// State shared by the API handlers.
pub struct AppState {
    /// Configuration.
    pub cfg: Config,
    /// Database.
    pub db: DatabaseConnection,
    /// Auth.
    pub auth: Arc<AuthService>,
    /// WebSocket state (registry, hub, metrics).
    pub ws: Arc<WsState>,
    /// Start time.
    pub started: Instant,
    /// The audit log.
    pub audit: Arc<AuditLog>,
}

impl AppState {
    /// Records an action of the request `req` in the audit log, with the caller's IP.
    pub fn audit(&self, req: &poem::Request, entry: AuditEntry) {
        self.audit.record(entry.ip(auth::client_ip(self, req)));
    }
}

/// OpenAPI tags grouping the endpoints in Swagger UI.
#[derive(Tags)]
pub enum ApiTags {
    /// Log in and out, who am I.
    Auth,
    /// User accounts (admin).
    Users,
    /// API keys for backend services (admin).
    ApiKeys,
    /// Push messages to connections.
    Send,
    /// Online connections, kick, tags, stats.
    Online,
    /// Public site configuration.
    Site,
    /// The audit log (admin).
    Audit,
}

/// The `page` and `pageSize` of a listing (defaults 1 and 20), checked: `page` at least 1,
/// `pageSize` 1–[`MAX_PAGE_SIZE`](crate::node::rows::MAX_PAGE_SIZE). Every paged route reads
/// them through here, so they answer the same errors.
pub fn paging(
    page: Option<u64>,
    page_size: Option<u64>,
) -> Result<(u64, u64), switchboard_sdk::api::ApiError> {
    use crate::node::rows::MAX_PAGE_SIZE;
    use switchboard_sdk::api::ApiError;
    let page = page.unwrap_or(1);
    let page_size = page_size.unwrap_or(20);
    if page == 0 {
        return Err(ApiError::invalid_field("page", "must be at least 1"));
    }
    if !(1..=MAX_PAGE_SIZE).contains(&page_size) {
        return Err(ApiError::invalid_field(
            "pageSize",
            format!("must be 1-{MAX_PAGE_SIZE}"),
        ));
    }
    Ok((page, page_size))
}
