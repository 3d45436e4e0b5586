//! The one auth middleware guarding every HTTP and WebSocket route.
//!
//! A request passes if its path is on the exemption list (`auth.except_login` plus addon
//! entries); otherwise it needs a valid token or API key. Either way, a valid credential puts
//! the [`Identity`] into the request data, where handlers and the OpenAPI security schemes
//! read it; the route's role is checked by the route.

use std::sync::Arc;

use poem::http::{HeaderValue, StatusCode, header};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use switchboard_sdk::Identity;

use super::service::{AuthError, AuthService};
use crate::error::json_error;

/// The exemption list: exact paths and `*`-suffixed prefixes.
#[derive(Clone, Debug, Default)]
pub struct ExemptList {
    exact: Vec<String>,
    prefixes: Vec<String>,
}

impl ExemptList {
    /// Builds the list from entries.
    pub fn new<I: IntoIterator<Item = String>>(entries: I) -> Self {
        let mut list = ExemptList::default();
        for e in entries {
            match e.strip_suffix('*') {
                Some(prefix) => list.prefixes.push(prefix.to_string()),
                None => list.exact.push(e),
            }
        }
        list
    }

    /// Whether `path` needs no credential.
    pub fn matches(&self, path: &str) -> bool {
        self.exact.iter().any(|e| e == path) || self.prefixes.iter().any(|p| path.starts_with(p))
    }
}

/// A credential found on a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Presented {
    /// A JWT and where it came from.
    Token(String, TokenSource),
    /// An API key.
    ApiKey(String),
}

/// Where a token came from.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum TokenSource {
    /// `Authorization: Bearer`.
    Header,
    /// `?authorization=`.
    Query,
    /// `Sec-WebSocket-Protocol: switchboard.v1, bearer.<jwt>`.
    Subprotocol,
}

/// Finds a credential: `Authorization: Bearer`, `X-API-Key`, `?authorization=`, or a
/// `bearer.<jwt>` WebSocket subprotocol, in that order.
pub fn presented_credential(req: &Request) -> Option<Presented> {
    if let Some(v) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        if let Some(t) = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
        {
            return Some(Presented::Token(t.trim().to_string(), TokenSource::Header));
        }
    }
    if let Some(k) = req.headers().get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(Presented::ApiKey(k.trim().to_string()));
    }
    if let Some(q) = req.uri().query() {
        for pair in q.split('&') {
            if let Some(v) = pair.strip_prefix("authorization=") {
                let v = percent_decode(v);
                let v = v.strip_prefix("Bearer ").unwrap_or(&v).to_string();
                if !v.is_empty() {
                    return Some(Presented::Token(v, TokenSource::Query));
                }
            }
        }
    }
    for value in req.headers().get_all(header::SEC_WEBSOCKET_PROTOCOL) {
        if let Ok(v) = value.to_str() {
            for p in v.split(',') {
                if let Some(t) = p.trim().strip_prefix("bearer.") {
                    return Some(Presented::Token(t.to_string(), TokenSource::Subprotocol));
                }
            }
        }
    }
    None
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() && s.is_char_boundary(i + 3) => {
                match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The middleware.
#[derive(Clone)]
pub struct AuthMiddleware {
    auth: Arc<AuthService>,
    exempt: Arc<ExemptList>,
}

impl AuthMiddleware {
    /// Builds it.
    pub fn new(auth: Arc<AuthService>, exempt: ExemptList) -> Self {
        AuthMiddleware {
            auth,
            exempt: Arc::new(exempt),
        }
    }
}

impl<E: Endpoint> Middleware<E> for AuthMiddleware {
    type Output = AuthEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        AuthEndpoint {
            inner: ep,
            mw: self.clone(),
        }
    }
}

/// The wrapped endpoint.
pub struct AuthEndpoint<E> {
    inner: E,
    mw: AuthMiddleware,
}

impl<E: Endpoint> Endpoint for AuthEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Self::Output> {
        let exempt = self.mw.exempt.matches(req.uri().path());
        let is_login = req.uri().path() == LOGIN_PATH;
        let presented = presented_credential(&req);
        let verdict: Option<Result<Identity, AuthError>> = match &presented {
            None => None,
            Some(Presented::Token(t, _)) => Some(self.mw.auth.verify_token(t).await),
            Some(Presented::ApiKey(k)) => Some(self.mw.auth.verify_api_key(k).await),
        };
        let admission = req.extensions().get::<crate::http::Admission>().cloned();
        if !matches!(verdict, Some(Ok(_))) && admission.as_ref().is_some_and(|a| a.over_capacity())
        {
            // The connection came in past `server.max_unauthenticated`: it is served only once
            // it proves who it is, so anonymous traffic cannot crowd out users with tokens.
            return Ok(crate::http::over_capacity_response());
        }
        match verdict {
            Some(Ok(identity)) => {
                if let Some(a) = &admission {
                    a.authenticated();
                }
                if let Some(Presented::Token(t, src)) = &presented {
                    if *src != TokenSource::Header {
                        // Lets the OpenAPI bearer scheme see a token that came another way.
                        if let Ok(v) = HeaderValue::from_str(&format!("Bearer {t}")) {
                            req.headers_mut().insert(header::AUTHORIZATION, v);
                        }
                    }
                }
                req.extensions_mut().insert(identity);
            }
            Some(Err(AuthError::Db(e))) => {
                tracing::error!(error = %e, "credential check failed");
                return Ok(json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "authentication backend unavailable",
                ));
            }
            Some(Err(e)) if !exempt => {
                let api: switchboard_sdk::api::ApiError = e.into();
                let body = api.body();
                return Ok(json_error(api.status(), &body.code, &body.message));
            }
            // An exempt path ignores a bad credential and proceeds anonymously.
            Some(Err(_)) => {}
            None if !exempt => {
                return Ok(json_error(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "a token (Authorization: Bearer) or an API key (X-API-Key) is required",
                ));
            }
            None => {}
        }
        let resp = match self.inner.call(req).await {
            Ok(r) => r.into_response(),
            // OpenAPI handlers' errors travel as `Err`; a 429 becomes its response here so it
            // can carry `Retry-After`.
            Err(e) if is_login && e.status() == StatusCode::TOO_MANY_REQUESTS => e.into_response(),
            Err(e) => return Err(e),
        };
        if is_login
            && resp.status() == StatusCode::TOO_MANY_REQUESTS
            && !resp.headers().contains_key(header::RETRY_AFTER)
        {
            return Ok(with_retry_after(resp).await);
        }
        Ok(resp)
    }
}

/// The HTTP login route, whose 429s say when to retry.
const LOGIN_PATH: &str = "/api/auth/login";

/// Tells a refused login when to come back: soon when hashing was merely saturated, after the
/// limiter's window when it was too many failures.
async fn with_retry_after(mut resp: Response) -> Response {
    let body = resp.take_body().into_bytes().await.unwrap_or_default();
    let code = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("code").and_then(|c| c.as_str()).map(str::to_owned));
    let after = match code.as_deref() {
        Some(super::service::LOGIN_BUSY_CODE) => Some("1"),
        Some("rate_limited") => Some("60"),
        _ => None,
    };
    if let Some(after) = after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static(after));
    }
    resp.set_body(body);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_wildcard_entries() {
        let l = ExemptList::new(["/a".to_string(), "/swagger*".to_string()]);
        assert!(l.matches("/a"));
        assert!(!l.matches("/a/b"));
        assert!(l.matches("/swagger"));
        assert!(l.matches("/swagger/index.css"));
        assert!(!l.matches("/api"));
    }

    #[test]
    fn credential_transports() {
        let r = Request::builder()
            .uri("/socket?x=1&authorization=abc%2Edef".parse().unwrap())
            .finish();
        assert_eq!(
            presented_credential(&r),
            Some(Presented::Token("abc.def".into(), TokenSource::Query))
        );
        let r = Request::builder()
            .header("Sec-WebSocket-Protocol", "switchboard.v1, bearer.tok")
            .finish();
        assert_eq!(
            presented_credential(&r),
            Some(Presented::Token("tok".into(), TokenSource::Subprotocol))
        );
        let r = Request::builder().header("X-API-Key", "sbk_1").finish();
        assert_eq!(
            presented_credential(&r),
            Some(Presented::ApiKey("sbk_1".into()))
        );
        assert_eq!(presented_credential(&Request::builder().finish()), None);
        assert_eq!(percent_decode("a%zz%2"), "a%zz%2");
    }
}
