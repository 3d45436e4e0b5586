//! `/api/users` (admin).

use std::sync::Arc;

use poem::Request;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use switchboard_sdk::api::{ApiAuth, ApiError};
use switchboard_sdk::protocol::close;
use switchboard_sdk::{Role, UserId};

use super::{ApiTags, AppState};
use crate::audit::{AuditEntry, action};
use crate::auth::UserState;
use crate::auth::service::UserPatch;

/// A user.
#[derive(Object)]
pub struct UserOut {
    /// Id.
    pub id: i64,
    /// Name.
    pub username: String,
    /// Roles.
    pub roles: Vec<String>,
    /// Whether the user may log in.
    pub enabled: bool,
}

impl From<UserState> for UserOut {
    fn from(u: UserState) -> Self {
        UserOut {
            id: u.id,
            username: u.username,
            roles: u.roles.iter().map(|r| r.as_str().to_string()).collect(),
            enabled: u.enabled,
        }
    }
}

/// Create a user.
#[derive(Object)]
#[oai(example)]
pub struct CreateUser {
    /// 1–64 characters of letters, digits, `_ . @ -`.
    pub username: String,
    /// 8–256 bytes.
    pub password: String,
    /// Any of `admin`, `operator`, `member`.
    pub roles: Vec<String>,
}

/// Change a user; absent fields stay.
#[derive(Object)]
#[oai(example)]
pub struct PatchUser {
    /// New roles.
    pub roles: Option<Vec<String>>,
    /// New password (invalidates the user's tokens and closes their sockets).
    pub password: Option<String>,
    /// Enable or disable (disabling closes the user's sockets).
    pub enabled: Option<bool>,
}

#[derive(ApiResponse)]
enum Created {
    /// Created.
    #[oai(status = 201)]
    Ok(Json<UserOut>),
}

#[derive(ApiResponse)]
enum Deleted {
    /// Deleted.
    #[oai(status = 204)]
    Ok,
}

fn role_list(u: &UserState) -> String {
    let names: Vec<&str> = u.roles.iter().map(|r| r.as_str()).collect();
    names.join(",")
}

/// Parses role names, naming the field on error.
pub fn parse_roles(roles: &[String]) -> Result<Vec<Role>, ApiError> {
    roles
        .iter()
        .map(|r| {
            r.parse::<Role>()
                .map_err(|e| ApiError::invalid_field("roles", e))
        })
        .collect()
}

/// `/api/users`.
pub struct UsersApi(pub Arc<AppState>);

#[OpenApi(prefix_path = "/api/users", tag = "ApiTags::Users")]
impl UsersApi {
    /// List users
    #[oai(path = "/", method = "get")]
    async fn list(&self, auth: ApiAuth) -> Result<Json<Vec<UserOut>>, ApiError> {
        auth.require(Role::Admin)?;
        let users = self.0.auth.list_users().await?;
        Ok(Json(users.into_iter().map(UserOut::from).collect()))
    }

    /// Create a user
    #[oai(path = "/", method = "post")]
    async fn create(
        &self,
        req: &Request,
        auth: ApiAuth,
        body: Json<CreateUser>,
    ) -> Result<Created, ApiError> {
        let who = auth.require(Role::Admin)?;
        let roles = parse_roles(&body.roles)?;
        crate::auth::may_grant(who, &roles).map_err(crate::auth::AuthError::from)?;
        let u = self
            .0
            .auth
            .create_user(&body.username, &body.password, &roles)
            .await?;
        let detail = format!("{} roles={}", u.username, role_list(&u));
        let entry = AuditEntry::new(&who.username, action::USER_CREATE, format!("user:{}", u.id));
        self.0.audit(req, entry.detail(detail));
        Ok(Created::Ok(Json(u.into())))
    }

    /// Change roles, password or enabled
    #[oai(path = "/:id", method = "patch")]
    async fn patch(
        &self,
        req: &Request,
        auth: ApiAuth,
        id: Path<i64>,
        body: Json<PatchUser>,
    ) -> Result<Json<UserOut>, ApiError> {
        let who = auth.require(Role::Admin)?;
        let roles = match &body.roles {
            Some(r) => Some(parse_roles(r)?),
            None => None,
        };
        // Only an admin reaches this route today; the rank rule still holds if that changes.
        self.0.auth.authorize_action_on(who, id.0).await?;
        if let Some(r) = &roles {
            crate::auth::may_grant(who, r).map_err(crate::auth::AuthError::from)?;
        }
        let mut changed = Vec::new();
        if roles.is_some() {
            changed.push("roles".to_string());
        }
        if body.password.is_some() {
            changed.push("password".to_string());
        }
        if let Some(e) = body.enabled {
            changed.push(if e { "enabled" } else { "disabled" }.to_string());
        }
        let (u, change) = self
            .0
            .auth
            .update_user(
                id.0,
                UserPatch {
                    roles,
                    password: body.0.password,
                    enabled: body.0.enabled,
                },
            )
            .await?;
        let close_code = change.tokens_revoked.then_some(close::TOKEN_REVOKED);
        self.0
            .ws
            .node
            .user_changed(UserId(u.id), close_code, "credentials changed")
            .await?;
        let detail = format!(
            "{}: {} (roles={})",
            u.username,
            changed.join(", "),
            role_list(&u)
        );
        let entry = AuditEntry::new(&who.username, action::USER_UPDATE, format!("user:{}", u.id));
        self.0.audit(req, entry.detail(detail));
        Ok(Json(u.into()))
    }

    /// Delete a user
    #[oai(path = "/:id", method = "delete")]
    async fn delete(
        &self,
        req: &Request,
        auth: ApiAuth,
        id: Path<i64>,
    ) -> Result<Deleted, ApiError> {
        let who = auth.require(Role::Admin)?;
        if who.user_id == Some(UserId(id.0)) {
            return Err(ApiError::conflict("you cannot delete yourself"));
        }
        self.0.auth.authorize_action_on(who, id.0).await?;
        self.0.auth.delete_user(id.0).await?;
        self.0
            .ws
            .node
            .user_changed(UserId(id.0), Some(close::TOKEN_REVOKED), "user deleted")
            .await?;
        let entry = AuditEntry::new(&who.username, action::USER_DELETE, format!("user:{}", id.0));
        self.0.audit(req, entry);
        Ok(Deleted::Ok)
    }
}

impl poem_openapi::types::Example for CreateUser {
    fn example() -> Self {
        CreateUser {
            username: "alice".into(),
            password: "correct horse battery".into(),
            roles: vec!["operator".into()],
        }
    }
}

impl poem_openapi::types::Example for PatchUser {
    fn example() -> Self {
        PatchUser {
            roles: Some(vec!["member".into()]),
            password: None,
            enabled: Some(true),
        }
    }
}
