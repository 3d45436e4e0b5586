//! The admin panel: `web/` embedded in the binary (or served live from `web.dir`).

use std::path::{Component, Path, PathBuf};

use poem::http::{StatusCode, header};
use poem::{Request, Response};
use rust_embed::RustEmbed;

use crate::error::json_error;

#[derive(RustEmbed)]
#[folder = "../web"]
#[exclude = "tests/*"]
#[exclude = "node_modules/*"]
#[exclude = "*.md"]
struct Assets;

/// Serves panel files.
#[derive(Clone)]
pub struct WebFiles {
    dir: Option<PathBuf>,
}

fn mime(path: &str) -> &'static str {
    match Path::new(path).extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

impl WebFiles {
    /// Embedded files, or a live folder when `dir` is non-empty.
    pub fn new(dir: &str) -> Self {
        WebFiles {
            dir: (!dir.is_empty()).then(|| PathBuf::from(dir)),
        }
    }

    /// Looks a request path up; `/` is `index.html`.
    pub async fn serve(&self, req: &Request) -> Response {
        let raw = req.uri().path().trim_start_matches('/');
        let rel = if raw.is_empty() { "index.html" } else { raw };
        // Only plain relative components: no `..`, no absolute paths, no backslashes.
        let safe = !rel.contains('\\')
            && Path::new(rel)
                .components()
                .all(|c| matches!(c, Component::Normal(_)));
        if !safe || rel.starts_with("tests/") || rel.starts_with("node_modules/") {
            return not_found();
        }
        let body: Option<Vec<u8>> = match &self.dir {
            Some(dir) => tokio::fs::read(dir.join(rel)).await.ok(),
            None => Assets::get(rel).map(|f| f.data.into_owned()),
        };
        match body {
            Some(bytes) => Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, mime(rel))
                .header(header::CACHE_CONTROL, "no-cache")
                .header("X-Content-Type-Options", "nosniff")
                .body(bytes),
            None => not_found(),
        }
    }
}

fn not_found() -> Response {
    json_error(StatusCode::NOT_FOUND, "not_found", "no such page or file")
}
