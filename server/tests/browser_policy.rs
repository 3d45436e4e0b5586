//! What browsers are told: a strict content security policy and no framing on the panel and
//! Swagger UI (which therefore has no inline script), a WebSocket address a forged `Host`
//! cannot redirect, and no CORS grant to a foreign origin (nor a credential taken from a
//! cookie).

mod common;

use common::*;
use serde_json::Value;

async fn get_raw(app: &TestApp, path: &str, host: Option<&str>) -> reqwest::Response {
    let mut req = app.http.get(app.url(path));
    if let Some(h) = host {
        req = req.header("Host", h);
    }
    req.send().await.unwrap()
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn assert_strict(r: &reqwest::Response, what: &str) {
    let csp = header(r, "content-security-policy");
    for directive in [
        "default-src 'self'",
        "script-src 'self';",
        "style-src 'self';",
        "frame-ancestors 'none'",
        "object-src 'none'",
        "base-uri 'none'",
    ] {
        assert!(
            csp.contains(directive),
            "{what}: `{directive}` missing in {csp:?}"
        );
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{what}: {csp}"
    );
    assert_eq!(header(r, "x-frame-options"), "DENY", "{what}");
    assert_eq!(header(r, "referrer-policy"), "no-referrer", "{what}");
    assert_eq!(header(r, "x-content-type-options"), "nosniff", "{what}");
}

/// Inline `<script>` blocks (with content) and inline event handlers in an HTML page.
fn inline_scripts(html: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(i) = lower[at..].find("<script") {
        let start = at + i;
        let tag_end = start + lower[start..].find('>').unwrap();
        let close = tag_end + lower[tag_end..].find("</script>").unwrap();
        let tag = &lower[start..=tag_end];
        if !tag.contains("src=") || !lower[tag_end + 1..close].trim().is_empty() {
            found.push(html[start..close.min(start + 80)].to_string());
        }
        at = close;
    }
    for handler in [" onload=", " onclick=", " onerror=", "javascript:"] {
        if lower.contains(handler) {
            found.push(handler.to_string());
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_panel_is_sent_with_a_strict_policy_and_has_no_inline_script() {
    let app = spawn_app().await;
    let r = get_raw(&app, "/", None).await;
    assert_eq!(r.status(), 200);
    assert_strict(&r, "/");
    let html = r.text().await.unwrap();
    assert!(html.contains("<script"), "the panel loads scripts");
    assert_eq!(inline_scripts(&html), Vec::<String>::new());
    // Its files, and API answers, carry the same headers.
    for path in [
        "/js/app.js",
        "/api/site/config",
        "/healthz",
        "/no/such/file",
    ] {
        let r = get_raw(&app, path, None).await;
        assert_strict(&r, path);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_is_served_as_files_under_the_same_policy() {
    let app = spawn_app().await;
    for path in ["/swagger", "/swagger/"] {
        let r = get_raw(&app, path, None).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_strict(&r, path);
        assert!(header(&r, "content-type").starts_with("text/html"));
        let html = r.text().await.unwrap();
        assert_eq!(inline_scripts(&html), Vec::<String>::new(), "{path}");
        assert!(!html.contains("<style"), "{path} has inline styles");
    }
    for (path, mime, needle) in [
        (
            "/swagger/swagger-ui-bundle.js",
            "text/javascript",
            "SwaggerUIBundle",
        ),
        (
            "/swagger/swagger-init.js",
            "text/javascript",
            "SwaggerUIBundle({",
        ),
        ("/swagger/swagger-ui.css", "text/css", ".swagger-ui"),
    ] {
        let r = get_raw(&app, path, None).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_strict(&r, path);
        assert!(header(&r, "content-type").starts_with(mime), "{path}");
        let body = r.text().await.unwrap();
        assert!(body.contains(needle), "{path}");
    }
    // The start-up script carries the same spec as /api/openapi.json.
    let init = get_raw(&app, "/swagger/swagger-init.js", None)
        .await
        .text()
        .await
        .unwrap();
    assert!(init.contains("/api/auth/login"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_follows_the_exemption_list() {
    let app = spawn_with(|c| c.auth.except_login.retain(|e| e != "/swagger*")).await;
    for path in ["/swagger", "/swagger/swagger-init.js"] {
        let r = get_raw(&app, path, None).await;
        assert_eq!(r.status(), 401, "{path}");
        assert_strict(&r, path);
    }
    let r = app
        .http
        .get(app.url("/swagger/swagger-init.js"))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

async fn ws_addr_for(app: &TestApp, host: Option<&str>) -> (String, String) {
    let r = get_raw(app, "/api/site/config", host).await;
    assert_eq!(r.status(), 200);
    let csp = header(&r, "content-security-policy");
    let v: Value = r.json().await.unwrap();
    (v["wsAddr"].as_str().unwrap().to_string(), csp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_host_does_not_reach_ws_addr() {
    let app = spawn_with(|c| {
        c.server.allowed_hosts = vec!["admin.example.com".into(), "panel.local:8443".into()];
    })
    .await;
    let own = app.base.trim_start_matches("http://");
    let listen = format!("ws://{own}/socket");
    // The request's own address (what the test client sends as Host anyway).
    assert_eq!(ws_addr_for(&app, None).await.0, listen);
    // A Host nobody configured falls back to the listen address, in the policy too.
    let (addr, csp) = ws_addr_for(&app, Some("evil.example.net")).await;
    assert_eq!(addr, listen);
    assert!(!csp.contains("evil"), "{csp}");
    assert!(
        csp.contains(&format!("connect-src 'self' ws://{own};")),
        "{csp}"
    );
    assert_eq!(
        ws_addr_for(&app, Some("evil.example.net:1234")).await.0,
        listen
    );
    assert_eq!(ws_addr_for(&app, Some("panel.local:9999")).await.0, listen);
    // Configured hosts are used: any port for a bare name, the exact one otherwise.
    let (addr, csp) = ws_addr_for(&app, Some("Admin.Example.com:8080")).await;
    assert_eq!(addr, "ws://Admin.Example.com:8080/socket");
    assert!(csp.contains("ws://Admin.Example.com:8080"), "{csp}");
    assert_eq!(
        ws_addr_for(&app, Some("panel.local:8443")).await.0,
        "ws://panel.local:8443/socket"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_url_wins_over_any_host() {
    let app = spawn_with(|c| c.websocket.public_url = "wss://rt.example.org/socket".into()).await;
    let (addr, csp) = ws_addr_for(&app, Some("evil.example.net")).await;
    assert_eq!(addr, "wss://rt.example.org/socket");
    assert!(
        csp.contains("connect-src 'self' wss://rt.example.org;"),
        "{csp}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_swagger_start_up_script_is_exactly_the_pages_own() {
    let app = spawn_app().await;
    let init = get_raw(&app, "/swagger/swagger-init.js", None)
        .await
        .text()
        .await
        .unwrap();
    // Nothing of the bundle or the HTML around it: it starts with the spec and ends with the
    // SwaggerUIBundle call.
    assert!(
        init.trim_start().starts_with("let spec = {"),
        "{}",
        &init[..init.len().min(200)]
    );
    assert!(
        init.trim_end().ends_with("})"),
        "{}",
        &init[init.len().saturating_sub(200)..]
    );
    assert!(!init.contains("<body>") && !init.contains("</script>"));
}

#[tokio::test]
async fn the_http_api_never_grants_a_foreign_origin_cors_access() {
    let app = spawn_with(|c| {
        c.websocket.allowed_origins = vec!["https://admin.example".into()];
    })
    .await;
    for origin in ["https://evil.example", "null"] {
        let r = app
            .http
            .get(app.url("/api/auth/me"))
            .bearer_auth(&app.admin_token)
            .header("Origin", origin)
            .send()
            .await
            .unwrap();
        let allow = r
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_string());
        assert!(
            allow.is_none(),
            "a foreign origin got Access-Control-Allow-Origin: {allow:?}"
        );
        let r = app
            .http
            .request(reqwest::Method::OPTIONS, app.url("/api/users"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization, content-type",
            )
            .send()
            .await
            .unwrap();
        assert!(r.headers().get("access-control-allow-origin").is_none());
        assert!(
            r.headers()
                .get("access-control-allow-credentials")
                .is_none()
        );
    }
    // A cross-site form post with the browser's cookie-less credentials gets nowhere: tokens
    // are never taken from cookies.
    let r = app
        .http
        .post(app.url("/api/users"))
        .header("Origin", "https://evil.example")
        .header(
            "Cookie",
            format!(
                "token={}; authorization={}",
                app.admin_token, app.admin_token
            ),
        )
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("username=mallory&password=password-123&roles=admin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
