//! `GET /api/site/config` (exempt): what the panel needs before logging in.

use std::sync::Arc;

use poem::Request;
use poem::http::header;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::{ApiTags, AppState};

/// Public configuration.
#[derive(Object)]
pub struct SiteConfig {
    /// WebSocket URL, `ws(s)://<host><websocket.path>`.
    #[oai(rename = "wsAddr")]
    pub ws_addr: String,
    /// Server ping period, seconds.
    #[oai(rename = "pingInterval")]
    pub ping_interval: f64,
    /// Idle timeout, seconds.
    #[oai(rename = "idleTimeout")]
    pub idle_timeout: f64,
    /// Whether clients may publish to tags.
    #[oai(rename = "clientPublish")]
    pub client_publish: bool,
    /// Server version.
    pub version: String,
}

/// `/api/site`.
pub struct SiteApi(pub Arc<AppState>);

/// `ws(s)://host/path` from `websocket.public_url` or the request.
pub fn ws_addr(state: &AppState, req: &Request) -> String {
    let cfg = &state.cfg.websocket;
    if !cfg.public_url.is_empty() {
        return cfg.public_url.clone();
    }
    let trusted_proxy = crate::net::peer_ip(req)
        .is_some_and(|ip| state.ws.proxies.client_ip(Some(ip), Some("0.0.0.0")) != ip.to_string());
    let forwarded_proto = req
        .headers()
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|_| trusted_proxy);
    let scheme = match forwarded_proto {
        Some("https") => "wss",
        _ if req.uri().scheme_str() == Some("https") => "wss",
        _ => "ws",
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| h.len() <= 255 && h.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| state.cfg.server.address.clone());
    format!("{scheme}://{host}{}", cfg.path)
}

#[OpenApi(prefix_path = "/api/site", tag = "ApiTags::Site")]
impl SiteApi {
    /// Public site configuration
    ///
    /// No login needed. `wsAddr` comes from `websocket.public_url` or the request's Host.
    #[oai(path = "/config", method = "get")]
    async fn config(&self, req: &Request) -> Json<SiteConfig> {
        let cfg = &self.0.cfg.websocket;
        Json(SiteConfig {
            ws_addr: ws_addr(&self.0, req),
            ping_interval: cfg.ping_interval.as_secs_f64(),
            idle_timeout: cfg.idle_timeout.as_secs_f64(),
            client_publish: cfg.client_publish,
            version: env!("CARGO_PKG_VERSION").to_string(),
        })
    }
}
