//! JSON errors everywhere: `{"code": "<machine_code>", "message": "<text>"}`.

use poem::http::{StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response};

/// A JSON error response.
pub fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "code": code, "message": message });
    Response::builder()
        .status(status)
        .content_type("application/json; charset=utf-8")
        .body(body.to_string())
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
/// JSON shape, leaving JSON responses alone. Wraps the whole route tree.
pub async fn json_errors<E: Endpoint>(ep: E, req: Request) -> poem::Result<Response> {
    let resp = match ep.call(req).await {
        Ok(r) => r.into_response(),
        Err(err) => {
            let status = err.status();
            let message = err.to_string();
            let resp = err.into_response();
            if is_json(&resp) {
                return Ok(resp);
            }
            return Ok(json_error(status, code_for(status), &message));
        }
    };
    let status = resp.status();
    if (status.is_client_error() || status.is_server_error()) && !is_json(&resp) {
        let text = resp.into_body().into_string().await.unwrap_or_default();
        let message = if text.trim().is_empty() {
            status.canonical_reason().unwrap_or("error").to_string()
        } else {
            text
        };
        return Ok(json_error(status, code_for(status), &message));
    }
    Ok(resp)
}
