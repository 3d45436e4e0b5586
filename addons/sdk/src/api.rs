//! HTTP helpers shared by the server and addons: the JSON error shape and the security
//! schemes that read the identity the auth middleware already established.

use poem::Request;
use poem::http::StatusCode;
use poem_openapi::auth::{ApiKey, Bearer};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, SecurityScheme};

use crate::identity::{Identity, Role};

/// Every HTTP error body: `{"code": "<machine_code>", "message": "<text>"}`.
#[derive(Object, Debug, Clone, PartialEq, Eq)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `bad_request`, `invalid_credentials`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

/// Errors of every endpoint, documented in the OpenAPI spec.
#[derive(ApiResponse, Debug)]
#[oai(bad_request_handler = "parse_error")]
pub enum ApiError {
    /// The request is malformed or fails validation.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Missing, invalid, expired or revoked credentials.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// Authenticated but lacking the role.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// No such resource.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// Conflicts with existing state.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// The request, or what it asks to send, is larger than a limit allows.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// Too many requests.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>),
    /// Server-side failure.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// A dependency (database, Redis) is unavailable.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

fn parse_error(err: poem::Error) -> ApiError {
    ApiError::bad_request("bad_request", err.to_string())
}

fn body(code: &str, message: impl Into<String>) -> Json<ErrorBody> {
    Json(ErrorBody {
        code: code.to_string(),
        message: message.into(),
    })
}

impl ApiError {
    /// 400 with a machine code.
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        ApiError::BadRequest(body(code, message))
    }
    /// 400 naming the offending field.
    pub fn invalid_field(field: &str, problem: impl std::fmt::Display) -> Self {
        ApiError::BadRequest(body("invalid_field", format!("{field}: {problem}")))
    }
    /// 401.
    pub fn unauthorized(code: &str, message: impl Into<String>) -> Self {
        ApiError::Unauthorized(body(code, message))
    }
    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::Forbidden(body("forbidden", message))
    }
    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::NotFound(body("not_found", message))
    }
    /// 409.
    pub fn conflict(message: impl Into<String>) -> Self {
        ApiError::Conflict(body("conflict", message))
    }
    /// 413 with a machine code; the message names the limit and the size.
    pub fn payload_too_large(code: &str, message: impl Into<String>) -> Self {
        ApiError::PayloadTooLarge(body(code, message))
    }
    /// 429.
    pub fn too_many_requests(message: impl Into<String>) -> Self {
        ApiError::TooManyRequests(body("rate_limited", message))
    }
    /// 500; the detail goes to the log, not to the client.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        ApiError::Internal(body("internal", "internal server error"))
    }
    /// 503.
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError::Unavailable(body("unavailable", message))
    }
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
    /// The body.
    pub fn body(&self) -> &ErrorBody {
        match self {
            ApiError::BadRequest(b)
            | ApiError::Unauthorized(b)
            | ApiError::Forbidden(b)
            | ApiError::NotFound(b)
            | ApiError::Conflict(b)
            | ApiError::PayloadTooLarge(b)
            | ApiError::TooManyRequests(b)
            | ApiError::Internal(b)
            | ApiError::Unavailable(b) => b,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status(), self.body().message)
    }
}

impl std::error::Error for ApiError {}

/// A bearer JWT (`Authorization: Bearer`, `?authorization=` or the WebSocket subprotocol).
///
/// The OpenAPI document lists security schemes by name, alphabetically, and Swagger UI's
/// Authorize dialog shows them in that order: the names are chosen so that the token from
/// `POST /api/auth/login`, which most visitors have, comes first.
#[derive(SecurityScheme)]
#[oai(
    rename = "BearerJwt",
    ty = "bearer",
    bearer_format = "JWT",
    checker = "identity_from_bearer"
)]
pub struct BearerAuth(pub Identity);

async fn identity_from_bearer(req: &Request, _token: Bearer) -> Option<Identity> {
    req.data::<Identity>().cloned()
}

/// A backend service's API key (`X-API-Key`), acting with the operator role.
#[derive(SecurityScheme)]
#[oai(
    rename = "ServiceApiKey",
    ty = "api_key",
    key_name = "X-API-Key",
    key_in = "header",
    checker = "identity_from_api_key"
)]
pub struct ApiKeyAuth(pub Identity);

async fn identity_from_api_key(req: &Request, _key: ApiKey) -> Option<Identity> {
    req.data::<Identity>().cloned()
}

/// Either credential. Endpoints take this and check a role with [`ApiAuth::require`].
#[derive(SecurityScheme)]
pub enum ApiAuth {
    /// A user's JWT.
    Bearer(BearerAuth),
    /// A service's API key.
    ApiKey(ApiKeyAuth),
}

impl ApiAuth {
    /// The authenticated identity.
    pub fn identity(&self) -> &Identity {
        match self {
            ApiAuth::Bearer(b) => &b.0,
            ApiAuth::ApiKey(k) => &k.0,
        }
    }
    /// The identity, if it holds `role`; 403 otherwise.
    pub fn require(&self, role: Role) -> Result<&Identity, ApiError> {
        let id = self.identity();
        if id.has_role(role) {
            Ok(id)
        } else {
            Err(ApiError::forbidden(format!(
                "this route requires the {role} role"
            )))
        }
    }
}

/// How many connections a send reached: `{"delivered": n}`.
#[derive(Object, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// Connections reached (cluster-wide in cluster mode).
    pub delivered: u64,
}
