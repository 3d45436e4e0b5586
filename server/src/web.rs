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

/// What a browser may do with our pages: scripts, styles and images only from this server (no
/// inline script or style), connections only back to it and to the WebSocket address the panel
/// is given, no framing by anyone (clickjacking), and no `Referer` leaving the panel.
///
/// Applied to every response, so the panel, Swagger UI and error pages alike carry it.
pub fn content_security_policy(ws_origin: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         font-src 'self' data:; connect-src 'self' {ws_origin}; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// The Swagger UI page, split into files: poem-openapi renders one HTML page with its script,
/// styles and start-up code inline, which the policy above forbids. The page is taken apart
/// once and served as a plain HTML shell plus three files under `/swagger/`.
struct SwaggerParts {
    css: String,
    bundle: String,
    init: String,
}

const SWAGGER_SHELL: &str = "<!doctype html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n\
<title>Swagger UI</title>\n<link rel=\"stylesheet\" href=\"/swagger/swagger-ui.css\">\n</head>\n\
<body>\n<div id=\"ui\"></div>\n<script src=\"/swagger/swagger-ui-bundle.js\"></script>\n\
<script src=\"/swagger/swagger-init.js\"></script>\n</body>\n</html>\n";

/// The text between `open` and the next `close` at or after `from`, and where it ends.
fn between<'a>(text: &'a str, from: usize, open: &str, close: &str) -> Option<(&'a str, usize)> {
    let start = from + text.get(from..)?.find(open)? + open.len();
    let end = start + text[start..].find(close)?;
    Some((&text[start..end], end + close.len()))
}

impl SwaggerParts {
    /// Walks the page in order: the bundle itself contains strings like `<body>`, so every
    /// search starts where the previous part ended.
    fn parse(html: &str) -> Option<SwaggerParts> {
        let (css, at) = between(html, 0, "<style charset=\"UTF-8\">", "</style>")?;
        let (bundle, at) = between(html, at, "<script charset=\"UTF-8\">", "</script>")?;
        let body = at + html[at..].find("<body>")?;
        let init_start = body + html[body..].find("<script>")? + "<script>".len();
        let init_end = html.rfind("</script>")?;
        Some(SwaggerParts {
            css: css.to_string(),
            bundle: bundle.to_string(),
            init: html.get(init_start..init_end)?.to_string(),
        })
    }
}

/// Wraps the whole route tree: adds the browser policy headers to every response and serves
/// the Swagger UI as separate files.
pub struct BrowserPolicy<E> {
    inner: E,
    state: std::sync::Arc<crate::api::AppState>,
    swagger: std::sync::OnceLock<SwaggerParts>,
}

impl<E: poem::Endpoint<Output = Response>> BrowserPolicy<E> {
    /// Wraps `inner`.
    pub fn new(inner: E, state: std::sync::Arc<crate::api::AppState>) -> Self {
        BrowserPolicy {
            inner,
            state,
            swagger: std::sync::OnceLock::new(),
        }
    }

    /// Asks the Swagger UI endpoint for its page (with the caller's headers, so the auth
    /// middleware decides as for the page itself) and keeps its parts.
    async fn swagger_parts(&self, req: &Request) -> Result<&SwaggerParts, Response> {
        if let Some(p) = self.swagger.get() {
            return Ok(p);
        }
        let mut page = Request::builder()
            .method(poem::http::Method::GET)
            .uri(poem::http::Uri::from_static("/swagger/"))
            .finish();
        *page.headers_mut() = req.headers().clone();
        page.headers_mut().remove(header::ACCEPT_ENCODING);
        if let Some(a) = req.extensions().get::<crate::http::Admission>() {
            page.extensions_mut().insert(a.clone());
        }
        let resp = match self.inner.call(page).await {
            Ok(r) => r,
            Err(e) => return Err(e.into_response()),
        };
        if resp.status() != StatusCode::OK {
            return Err(resp);
        }
        let html = resp.into_body().into_string().await.unwrap_or_default();
        match SwaggerParts::parse(&html) {
            Some(p) => Ok(self.swagger.get_or_init(|| p)),
            None => {
                tracing::error!("the Swagger UI page has an unexpected shape; not served");
                Err(json_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Swagger UI unavailable",
                ))
            }
        }
    }

    async fn swagger(&self, req: &Request) -> Option<Response> {
        if req.method() != poem::http::Method::GET {
            return None;
        }
        let (mime, pick): (&str, fn(&SwaggerParts) -> &str) = match req.uri().path() {
            "/swagger" | "/swagger/" | "/swagger/index.html" => {
                ("text/html; charset=utf-8", |_| SWAGGER_SHELL)
            }
            "/swagger/swagger-ui.css" => ("text/css; charset=utf-8", |p| &p.css),
            "/swagger/swagger-ui-bundle.js" => ("text/javascript; charset=utf-8", |p| &p.bundle),
            "/swagger/swagger-init.js" => ("text/javascript; charset=utf-8", |p| &p.init),
            _ => return None,
        };
        Some(match self.swagger_parts(req).await {
            Ok(parts) => Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, mime)
                .header(header::CACHE_CONTROL, "no-cache")
                .body(pick(parts).to_string()),
            Err(refused) => refused,
        })
    }
}

impl<E: poem::Endpoint<Output = Response>> poem::Endpoint for BrowserPolicy<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let csp = content_security_policy(&crate::api::site::ws_origin(&self.state, &req));
        let mut resp = match self.swagger(&req).await {
            Some(r) => r,
            None => self.inner.call(req).await?,
        };
        let h = resp.headers_mut();
        if let Ok(v) = header::HeaderValue::from_str(&csp) {
            h.insert(header::CONTENT_SECURITY_POLICY, v);
        }
        h.insert(
            header::X_FRAME_OPTIONS,
            header::HeaderValue::from_static("DENY"),
        );
        h.insert(
            header::REFERRER_POLICY,
            header::HeaderValue::from_static("no-referrer"),
        );
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            header::HeaderValue::from_static("nosniff"),
        );
        Ok(resp)
    }
}
