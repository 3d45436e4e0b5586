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

/// Whether `host` (a `Host` header value) names this server: `server.address` itself, or an
/// entry of `server.allowed_hosts` (an entry without a port allows any port). Compared without
/// regard to letter case.
pub fn host_allowed(state: &AppState, host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    let name_of = |h: &str| -> String {
        // `[::1]:8000` → `[::1]`; `example.com:8000` → `example.com`.
        match h.rfind(':') {
            Some(i) if !h[i..].contains(']') => h[..i].to_string(),
            _ => h.to_string(),
        }
    };
    let server = &state.cfg.server;
    if host == server.address.to_ascii_lowercase() {
        return true;
    }
    server.allowed_hosts.iter().any(|entry| {
        let entry = entry.to_ascii_lowercase();
        entry == host || (name_of(&entry) == entry && name_of(&host) == entry)
    })
}

/// `ws(s)://host/path`: `websocket.public_url` when set; else the request's `Host` if it names
/// this server (see [`host_allowed`]); else the address the request arrived on. A forged
/// `Host` thus cannot point the panel, which sends its token there, at another server.
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
        .filter(|h| host_allowed(state, h))
        .map(str::to_owned)
        .unwrap_or_else(|| match req.local_addr().0 {
            poem::Addr::SocketAddr(a) => a.to_string(),
            _ => state.cfg.server.address.clone(),
        });
    format!("{scheme}://{host}{}", cfg.path)
}

/// The origin (`ws(s)://host`) of [`ws_addr`], for the panel's `connect-src`.
pub fn ws_origin(state: &AppState, req: &Request) -> String {
    let addr = ws_addr(state, req);
    match addr.find("://") {
        Some(i) => {
            let rest = &addr[i + 3..];
            let end = rest.find('/').unwrap_or(rest.len());
            addr[..i + 3 + end].to_string()
        }
        None => addr,
    }
}

#[OpenApi(prefix_path = "/api/site", tag = "ApiTags::Site")]
impl SiteApi {
    /// Public site configuration
    ///
    /// No login needed. `wsAddr` comes from `websocket.public_url`, else from the request's
    /// Host when it names this server (`server.address`, `server.allowed_hosts`), else from
    /// the address the request arrived on.
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
