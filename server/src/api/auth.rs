//! `/api/auth/*`: login, logout, me.

use std::sync::Arc;

use poem::Request;
use poem::http::header;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use switchboard_sdk::api::{ApiAuth, ApiError};
use switchboard_sdk::protocol::close;
use switchboard_sdk::{Credential, Identity};

use super::{ApiTags, AppState};
use crate::net;

/// Login request.
#[derive(Object)]
#[oai(example)]
pub struct LoginRequest {
    /// Username.
    #[oai(validator(max_length = 64))]
    pub username: String,
    /// Password.
    #[oai(validator(max_length = 1024))]
    pub password: String,
}

/// A user as the API shows it.
#[derive(Object, Debug, Clone)]
pub struct UserView {
    /// Id.
    pub id: i64,
    /// Name.
    pub username: String,
    /// Roles.
    pub roles: Vec<String>,
}

/// Login result.
#[derive(Object)]
pub struct LoginResponse {
    /// The JWT: send as `Authorization: Bearer <token>`.
    pub token: String,
    /// Unix seconds.
    #[oai(rename = "expiresAt")]
    pub expires_at: i64,
    /// The user.
    pub user: UserView,
}

/// Logout result.
#[derive(Object)]
pub struct LogoutResponse {
    /// Sockets of this token that were closed (4003).
    pub closed: u64,
}

/// Who the caller is.
#[derive(Object)]
pub struct MeResponse {
    /// User id (absent for API keys).
    pub id: Option<i64>,
    /// Name.
    pub username: String,
    /// Roles.
    pub roles: Vec<String>,
}

/// `/api/auth`.
pub struct AuthApi(pub Arc<AppState>);

/// The caller's IP as the login limiter sees it.
pub fn client_ip(state: &AppState, req: &Request) -> String {
    let proxies = &state.ws.proxies;
    proxies.client_ip(
        net::peer_ip(req),
        req.headers()
            .get(header::HeaderName::from_static("x-forwarded-for"))
            .and_then(|v| v.to_str().ok()),
    )
}

fn me_of(identity: &Identity) -> MeResponse {
    MeResponse {
        id: identity.user_id.map(|u| u.0),
        username: identity.username.clone(),
        roles: identity
            .roles
            .iter()
            .map(|r| r.as_str().to_string())
            .collect(),
    }
}

#[OpenApi(prefix_path = "/api/auth", tag = "ApiTags::Auth")]
impl AuthApi {
    /// Log in
    ///
    /// Returns a JWT. Unknown users and wrong passwords get the same 401; after 5 failures in
    /// a minute for one username and IP, 429.
    #[oai(path = "/login", method = "post")]
    async fn login(
        &self,
        req: &Request,
        body: Json<LoginRequest>,
    ) -> Result<Json<LoginResponse>, ApiError> {
        let ip = client_ip(&self.0, req);
        let issued = self
            .0
            .auth
            .login(&body.username, &body.password, &ip)
            .await?;
        if !self.0.cfg.auth.multi_login {
            // Older tokens are now invalid; their sockets go too (the new token has none yet).
            self.0
                .ws
                .node
                .user_changed(
                    switchboard_sdk::UserId(issued.user.id),
                    Some(close::TOKEN_REVOKED),
                    "logged in elsewhere",
                )
                .await?;
        }
        Ok(Json(LoginResponse {
            token: issued.token,
            expires_at: issued.expires_at,
            user: UserView {
                id: issued.user.id,
                username: issued.user.username,
                roles: issued
                    .user
                    .roles
                    .iter()
                    .map(|r| r.as_str().to_string())
                    .collect(),
            },
        }))
    }

    /// Log out
    ///
    /// Revokes the presented token and closes the sockets opened with it (close 4003).
    #[oai(path = "/logout", method = "post")]
    async fn logout(&self, auth: ApiAuth) -> Result<Json<LogoutResponse>, ApiError> {
        let identity = auth.identity();
        let Credential::Token { jti, expires_at } = &identity.credential else {
            return Err(ApiError::bad_request(
                "not_a_token",
                "API keys cannot log out; delete the key instead",
            ));
        };
        self.0.auth.revoke(jti, *expires_at).await?;
        let closed = match identity.user_id {
            Some(u) => self.0.ws.node.token_revoked(jti, *expires_at, u).await?,
            None => 0,
        };
        Ok(Json(LogoutResponse {
            closed: closed as u64,
        }))
    }

    /// Who am I
    #[oai(path = "/me", method = "get")]
    async fn me(&self, auth: ApiAuth) -> Json<MeResponse> {
        Json(me_of(auth.identity()))
    }
}

impl poem_openapi::types::Example for LoginRequest {
    fn example() -> Self {
        LoginRequest {
            username: "admin".into(),
            password: "the-admin-password".into(),
        }
    }
}
