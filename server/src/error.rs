//! JSON errors everywhere: `{"code": "<machine_code>", "message": "<text>"}`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use bytes::Bytes;
use futures_util::StreamExt;
use parking_lot::Mutex;
use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::{Body, Endpoint, IntoResponse, Request, Response};

use crate::api::body_check::{SERVER_BODIES, describe_param_failure};

/// The code of a 400 for a body that is not JSON, or not the JSON object the operation takes.
pub const INVALID_BODY: &str = "invalid_body";

/// A 429 without its own `Retry-After` gets this many seconds: the login limit counts
/// failures per minute, so after a minute a retry is never refused for the same reason; the
/// connection limits have no natural wait, and a minute is a polite one.
const DEFAULT_RETRY_AFTER_SECS: u64 = 60;

/// Bodies larger than this are not kept for naming fields (the request still proceeds).
const KEEP_BODY_LIMIT: usize = 1 << 20;

/// A JSON error response.
pub fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "code": code, "message": message });
    Response::builder()
        .status(status)
        .content_type("application/json; charset=utf-8")
        .body(body.to_string())
}

/// A complete HTTP/1.1 response carrying the JSON error shape, written straight to a socket
/// where no handler runs: the request head itself was refused (see `http::head`). It closes
/// the connection and carries the same browser-policy headers as every other answer (nothing
/// may frame, sniff or script it).
pub fn raw_json_error(status: StatusCode, code: &str, message: &str) -> Vec<u8> {
    let body = serde_json::json!({ "code": code, "message": message }).to_string();
    format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json; charset=utf-8\r\n\
         content-length: {}\r\nconnection: close\r\n\
         content-security-policy: default-src 'none'; frame-ancestors 'none'\r\n\
         x-frame-options: DENY\r\nreferrer-policy: no-referrer\r\n\
         x-content-type-options: nosniff\r\n\r\n{}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error"),
        body.len(),
        body
    )
    .into_bytes()
}

fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_server_error() => "internal",
        _ => "error",
    }
}

fn is_json(resp: &Response) -> bool {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// Turns poem's plain-text errors (bad JSON bodies, unknown routes, wrong methods) into the
/// JSON shape, leaving JSON responses alone; names the fields of a JSON body that does not fit
/// its operation; gives every 429 a `Retry-After`. Wraps the whole route tree.
pub async fn json_errors<E: Endpoint>(ep: E, mut req: Request) -> poem::Result<Response> {
    let kept = keep_json_body(&mut req);
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = match ep.call(req).await {
        Ok(r) => r.into_response(),
        Err(err) => match extraction_error(&err, &method, &path, kept.as_deref()) {
            Some(resp) => resp,
            None => {
                let status = err.status();
                let message = err.to_string();
                let resp = err.into_response();
                if is_json(&resp) {
                    resp
                } else {
                    json_error(status, code_for(status), &message)
                }
            }
        },
    };
    let status = resp.status();
    let resp = if (status.is_client_error() || status.is_server_error()) && !is_json(&resp) {
        let text = resp.into_body().into_string().await.unwrap_or_default();
        let message = if text.trim().is_empty() {
            status.canonical_reason().unwrap_or("error").to_string()
        } else {
            text
        };
        json_error(status, code_for(status), &message)
    } else {
        resp
    };
    Ok(with_retry_after(resp))
}

/// poem-openapi's refusals of a request it could not read into the operation's parameters,
/// restated by field: `pageSize: expected a non-negative integer`, `event: required`.
fn extraction_error(
    err: &poem::Error,
    method: &Method,
    path: &str,
    kept: Option<&KeptBody>,
) -> Option<Response> {
    use poem_openapi::error::{
        ContentTypeError, ParseParamError, ParsePathError, ParseRequestPayloadError,
    };
    let bad = |code: &str, message: &str| json_error(StatusCode::BAD_REQUEST, code, message);
    if let Some(e) = err.downcast_ref::<ParseParamError>() {
        let message = format!("{}: {}", e.name, describe_param_failure(&e.reason));
        return Some(bad("invalid_field", &message));
    }
    if let Some(e) = err.downcast_ref::<ParsePathError>() {
        // Unnamed path extractors are called `param0`…; the route's own name is clearer.
        let params = SERVER_BODIES.path_params(method, path);
        let name = match params.as_slice() {
            [only] => only,
            _ => e.name,
        };
        let message = format!("{name}: {}", describe_param_failure(&e.reason));
        return Some(bad("invalid_field", &message));
    }
    if let Some(e) = err.downcast_ref::<ParseRequestPayloadError>() {
        let problems = kept
            .and_then(KeptBody::take)
            .zip(SERVER_BODIES.find(method, path))
            .map(|(body, schema)| SERVER_BODIES.problems(schema, &body))
            .unwrap_or_default();
        if problems.is_empty() {
            return Some(bad(INVALID_BODY, &format!("body: {}", e.reason)));
        }
        let code = if problems.iter().all(|p| p.starts_with("body: ")) {
            INVALID_BODY
        } else {
            "invalid_field"
        };
        return Some(bad(code, &problems.join("; ")));
    }
    if let Some(e) = err.downcast_ref::<ContentTypeError>() {
        let got = match e {
            ContentTypeError::NotSupported { content_type } => content_type.as_str(),
            ContentTypeError::ExpectContentType => "none",
        };
        let message = format!("Content-Type: expected application/json, got {got}");
        return Some(json_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            &message,
        ));
    }
    None
}

fn with_retry_after(mut resp: Response) -> Response {
    if resp.status() == StatusCode::TOO_MANY_REQUESTS
        && !resp.headers().contains_key(header::RETRY_AFTER)
    {
        resp.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(DEFAULT_RETRY_AFTER_SECS),
        );
    }
    resp
}

/// What an API request's JSON body held, as the endpoint read it.
struct KeptBody {
    /// The chunks (shared with the endpoint's copy, not duplicated) and their total length;
    /// `None` once the body outgrew [`KEEP_BODY_LIMIT`].
    chunks: Mutex<Option<(Vec<Bytes>, usize)>>,
    /// The endpoint read the body to its end.
    complete: AtomicBool,
}

impl KeptBody {
    /// The whole body, if it was read to its end and not too large to keep.
    fn take(&self) -> Option<Vec<u8>> {
        let (chunks, _) = self.chunks.lock().take()?;
        self.complete
            .load(Ordering::Relaxed)
            .then(|| chunks.concat())
    }
}

/// For a request that may carry a JSON body to an API operation, keeps the body as the
/// endpoint reads it. Nothing is read ahead: a request refused before its body is read (no
/// credentials, say) costs nothing here.
fn keep_json_body(req: &mut Request) -> Option<Arc<KeptBody>> {
    if !matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH) {
        return None;
    }
    SERVER_BODIES.find(req.method(), req.uri().path())?;
    let kept = Arc::new(KeptBody {
        chunks: Mutex::new(Some((Vec::new(), 0))),
        complete: AtomicBool::new(false),
    });
    let sink = kept.clone();
    let mut chunks = req.take_body().into_bytes_stream();
    let tee = futures_util::stream::poll_fn(move |cx| {
        let next = chunks.poll_next_unpin(cx);
        match &next {
            Poll::Ready(Some(Ok(chunk))) => {
                let mut slot = sink.chunks.lock();
                if let Some((list, len)) = slot.as_mut() {
                    if *len + chunk.len() <= KEEP_BODY_LIMIT {
                        *len += chunk.len();
                        list.push(chunk.clone());
                    } else {
                        *slot = None;
                    }
                }
            }
            Poll::Ready(None) => sink.complete.store(true, Ordering::Relaxed),
            _ => {}
        }
        next
    });
    req.set_body(Body::from_bytes_stream(tee));
    Some(kept)
}
