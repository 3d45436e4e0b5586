//! Accounts, tokens, API keys: login, verification, revocation.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use parking_lot::RwLock;
use rand::Rng;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, Set,
};
use sha2::{Digest, Sha256};
use switchboard_sdk::protocol::unix_now;
use switchboard_sdk::{Credential, Identity, Role, UserId};

use super::password;
use super::ratelimit::LoginLimiter;
use super::token::{Claims, JwtKeys, TokenError};
use crate::audit::{AuditEntry, AuditLog, action};
use crate::config::AuthConfig;
use crate::db::entities::{api_key, revoked_token, user};

/// Why an auth operation failed. Each maps to one HTTP status and machine code.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Unknown user or wrong password (the same message for both).
    #[error("invalid username or password")]
    InvalidCredentials,
    /// Too many failed logins.
    #[error("too many failed logins; try again in a minute")]
    RateLimited,
    /// Too many logins waiting for password hashing; retry shortly.
    #[error("too many logins in progress; retry in a moment")]
    Busy,
    /// The actor's role is lower than the target user's.
    #[error("{0}")]
    Forbidden(#[from] super::rank::RankError),
    /// Token past `exp`.
    #[error("token expired")]
    TokenExpired,
    /// Malformed, forged or otherwise unacceptable token.
    #[error("invalid token")]
    TokenInvalid,
    /// Logged out, or cut off by `tokens_valid_after`.
    #[error("token revoked")]
    TokenRevoked,
    /// Unknown API key.
    #[error("invalid API key")]
    InvalidApiKey,
    /// The user is disabled.
    #[error("user disabled")]
    UserDisabled,
    /// Input validation.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Name taken.
    #[error("{0}")]
    Conflict(String),
    /// No such record.
    #[error("{0}")]
    NotFound(String),
    /// Database failure.
    #[error("database error: {0}")]
    Db(#[from] DbErr),
    /// Hashing failure.
    #[error("password hashing failed: {0}")]
    Hash(String),
}

impl From<AuthError> for switchboard_sdk::api::ApiError {
    fn from(e: AuthError) -> Self {
        use switchboard_sdk::api::ApiError;
        match &e {
            AuthError::InvalidCredentials => {
                ApiError::unauthorized("invalid_credentials", e.to_string())
            }
            AuthError::RateLimited => ApiError::too_many_requests(e.to_string()),
            AuthError::Busy => ApiError::TooManyRequests(poem_openapi::payload::Json(
                switchboard_sdk::api::ErrorBody {
                    code: LOGIN_BUSY_CODE.into(),
                    message: e.to_string(),
                },
            )),
            AuthError::Forbidden(r) => ApiError::forbidden(r.to_string()),
            AuthError::TokenExpired => ApiError::unauthorized("token_expired", e.to_string()),
            AuthError::TokenInvalid => ApiError::unauthorized("invalid_token", e.to_string()),
            AuthError::TokenRevoked => ApiError::unauthorized("token_revoked", e.to_string()),
            AuthError::InvalidApiKey => ApiError::unauthorized("invalid_api_key", e.to_string()),
            AuthError::UserDisabled => ApiError::unauthorized("user_disabled", e.to_string()),
            AuthError::Invalid { field, message } => ApiError::invalid_field(field, message),
            AuthError::Conflict(m) => ApiError::conflict(m.clone()),
            AuthError::NotFound(m) => ApiError::not_found(m.clone()),
            AuthError::Db(_) | AuthError::Hash(_) => ApiError::internal(&e),
        }
    }
}

/// The machine code of a login refused because password hashing is saturated (429, with a
/// short `Retry-After`).
pub const LOGIN_BUSY_CODE: &str = "login_busy";

/// A user as the auth layer caches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserState {
    /// Id.
    pub id: i64,
    /// Name.
    pub username: String,
    /// Roles.
    pub roles: Vec<Role>,
    /// Enabled flag.
    pub enabled: bool,
    /// Unix milliseconds before which tokens are refused.
    pub tokens_valid_after: i64,
}

impl From<&user::Model> for UserState {
    fn from(m: &user::Model) -> Self {
        UserState {
            id: m.id,
            username: m.username.clone(),
            roles: parse_roles(&m.roles),
            enabled: m.enabled,
            tokens_valid_after: m.tokens_valid_after,
        }
    }
}

fn parse_roles(s: &str) -> Vec<Role> {
    s.split(',').filter_map(|r| r.trim().parse().ok()).collect()
}

fn roles_to_string(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// A successful login.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The JWT.
    pub token: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// The user.
    pub user: UserState,
    /// The identity the token carries.
    pub identity: Identity,
}

/// A new API key (the only time the key itself is seen).
#[derive(Debug, Clone)]
pub struct NewApiKey {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// The key.
    pub key: String,
}

/// Changes to a user.
#[derive(Debug, Default, Clone)]
pub struct UserPatch {
    /// New roles.
    pub roles: Option<Vec<Role>>,
    /// New password.
    pub password: Option<String>,
    /// Enable or disable.
    pub enabled: Option<bool>,
}

/// What changed in a user, so the caller can close sockets.
#[derive(Debug, Clone, Copy, Default)]
pub struct UserChange {
    /// Tokens were invalidated (password change, disable).
    pub tokens_revoked: bool,
}

const API_KEY_PREFIX: &str = "sbk_";

/// The auth service.
pub struct AuthService {
    db: DatabaseConnection,
    cfg: AuthConfig,
    keys: JwtKeys,
    revoked: RwLock<HashMap<String, i64>>,
    users: RwLock<HashMap<i64, Arc<UserState>>>,
    limiter: LoginLimiter,
    shared_limiter: std::sync::OnceLock<SharedLimiter>,
    audit: std::sync::OnceLock<Arc<AuditLog>>,
}

/// The failed-login counter in Redis, so the limit holds across a cluster.
pub struct SharedLimiter {
    conn: redis::aio::ConnectionManager,
    prefix: String,
    max_failures: u32,
}

impl SharedLimiter {
    /// Counters live under `<prefix>:login:`.
    pub fn new(conn: redis::aio::ConnectionManager, prefix: &str, max_failures: u32) -> Self {
        SharedLimiter {
            conn,
            prefix: prefix.to_string(),
            max_failures: max_failures.max(1),
        }
    }

    fn key(&self, username: &str, ip: &str) -> String {
        // Hashed: usernames are client input and must not shape Redis keys.
        let h = sha256_hex(&format!("{}\u{0}{ip}", username.to_lowercase()));
        format!("{}:login:{}", self.prefix, &h[..32])
    }

    /// Counts an attempt as it starts (`INCR`, one atomic step for every node), taking it back
    /// when that went past the limit. `None`: Redis did not answer.
    async fn reserve(&self, username: &str, ip: &str) -> Option<bool> {
        let mut c = self.conn.clone();
        let key = self.key(username, ip);
        let (n,): (u32,) = redis::pipe()
            .cmd("INCR")
            .arg(&key)
            .cmd("EXPIRE")
            .arg(&key)
            .arg(60)
            .arg("NX")
            .ignore()
            .query_async(&mut c)
            .await
            .ok()?;
        if n > self.max_failures {
            self.release(username, ip).await;
            return Some(false);
        }
        Some(true)
    }

    /// Takes back an attempt that was never evaluated.
    async fn release(&self, username: &str, ip: &str) {
        let mut c = self.conn.clone();
        let _: redis::RedisResult<i64> = redis::cmd("DECR")
            .arg(self.key(username, ip))
            .query_async(&mut c)
            .await;
    }

    async fn succeed(&self, username: &str, ip: &str) {
        let mut c = self.conn.clone();
        let _: redis::RedisResult<()> = redis::cmd("DEL")
            .arg(self.key(username, ip))
            .query_async(&mut c)
            .await;
    }
}

/// Where an admitted login attempt is counted.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Counted {
    Local,
    Shared,
}

/// A login attempt admitted by the limiter. Dropped without [`Attempt::end`] (the caller went
/// away mid-check), it is released: an attempt whose verdict nobody saw guessed nothing.
struct Attempt<'a> {
    svc: &'a AuthService,
    username: String,
    ip: String,
    counted: Counted,
    open: bool,
}

/// How an attempt ended.
enum Outcome {
    Failed,
    Succeeded,
    NotEvaluated,
}

impl Attempt<'_> {
    async fn end(mut self, outcome: Outcome) {
        self.open = false;
        let (u, ip) = (self.username.as_str(), self.ip.as_str());
        match (self.counted, outcome) {
            (Counted::Local, Outcome::Failed) => self.svc.limiter.fail(u, ip),
            (Counted::Local, Outcome::NotEvaluated) => self.svc.limiter.release(u, ip),
            (_, Outcome::Succeeded) => {
                self.svc.limiter.succeed(u, ip);
                if let Some(shared) = self.svc.shared_limiter.get() {
                    shared.succeed(u, ip).await;
                }
            }
            // Redis counted the attempt when it started.
            (Counted::Shared, Outcome::Failed) => {}
            (Counted::Shared, Outcome::NotEvaluated) => {
                if let Some(shared) = self.svc.shared_limiter.get() {
                    shared.release(u, ip).await;
                }
            }
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.open {
            return;
        }
        match self.counted {
            Counted::Local => self.svc.limiter.release(&self.username, &self.ip),
            Counted::Shared => {
                if let (Some(shared), Ok(rt)) = (
                    self.svc.shared_limiter.get(),
                    tokio::runtime::Handle::try_current(),
                ) {
                    let mut c = shared.conn.clone();
                    let key = shared.key(&self.username, &self.ip);
                    rt.spawn(async move {
                        let _: redis::RedisResult<i64> =
                            redis::cmd("DECR").arg(key).query_async(&mut c).await;
                    });
                }
            }
        }
    }
}

/// A username as it may appear in a log line: bounded, and printed with `{:?}` by callers so
/// control characters cannot forge lines.
/// How stale an API key's `last_used_at` may be, in seconds: it is written at most this often.
pub const API_KEY_LAST_USED_PRECISION: i64 = 60;

fn loggable(username: &str) -> String {
    username.chars().take(64).collect()
}

fn now_ms() -> i64 {
    switchboard_sdk::protocol::unix_millis()
}

fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill(&mut buf[..]);
    hex::encode(buf)
}

/// Hex SHA-256; API keys carry 256 bits of entropy, so a fast hash is safe for them.
pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Loads the JWT secret: config, else `<data_dir>/jwt_secret`, else a new one written there.
pub fn load_or_create_secret(cfg: &AuthConfig, data_dir: &Path) -> std::io::Result<String> {
    if !cfg.jwt_secret.is_empty() {
        return Ok(cfg.jwt_secret.clone());
    }
    let path = data_dir.join("jwt_secret");
    if let Ok(s) = std::fs::read_to_string(&path) {
        let s = s.trim().to_string();
        if !s.is_empty() {
            return Ok(s);
        }
    }
    std::fs::create_dir_all(data_dir)?;
    let secret = random_token(32);
    write_private(&path, &secret)?;
    Ok(secret)
}

fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        f.write_all(content.as_bytes())
    }
    #[cfg(not(unix))]
    {
        std::fs::write(path, content)
    }
}

/// Validates a username: 1–64 characters of letters, digits, `_ . @ -`.
pub fn validate_username(name: &str) -> Result<(), AuthError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '@' | '-'));
    if ok {
        Ok(())
    } else {
        Err(AuthError::Invalid {
            field: "username",
            message: "1-64 characters of letters, digits, _ . @ -".into(),
        })
    }
}

/// Validates a new password: 8–256 bytes.
pub fn validate_password(pw: &str) -> Result<(), AuthError> {
    if pw.len() < 8 || pw.len() > 256 {
        return Err(AuthError::Invalid {
            field: "password",
            message: "must be 8-256 bytes long".into(),
        });
    }
    Ok(())
}

fn validate_roles(roles: &[Role]) -> Result<(), AuthError> {
    if roles.is_empty() {
        return Err(AuthError::Invalid {
            field: "roles",
            message: "at least one of admin, operator, member".into(),
        });
    }
    Ok(())
}

impl AuthService {
    /// Builds the service with its secret and loads the revocation list.
    pub async fn new(
        db: DatabaseConnection,
        cfg: AuthConfig,
        secret: &str,
    ) -> Result<Self, AuthError> {
        let keys = JwtKeys::new(secret.as_bytes(), &cfg.jwt_issuer);
        password::calibrate();
        let limiter = LoginLimiter::new(cfg.login_max_failures);
        let svc = AuthService {
            db,
            keys,
            revoked: RwLock::new(HashMap::new()),
            users: RwLock::new(HashMap::new()),
            limiter,
            shared_limiter: std::sync::OnceLock::new(),
            audit: std::sync::OnceLock::new(),
            cfg,
        };
        svc.prune_revoked().await?;
        let rows = revoked_token::Entity::find().all(&svc.db).await?;
        {
            let mut map = svc.revoked.write();
            for r in rows {
                map.insert(r.jti, r.expires_at);
            }
        }
        Ok(svc)
    }

    /// Shares the failed-login limit through Redis (cluster mode). Local counting remains the
    /// fallback while Redis is unreachable.
    pub fn share_login_limit(&self, limiter: SharedLimiter) {
        let _ = self.shared_limiter.set(limiter);
    }

    /// Stores logins in the audit log from now on (the server attaches it; the CLI does not).
    pub fn attach_audit(&self, audit: Arc<AuditLog>) {
        let _ = self.audit.set(audit);
    }

    /// Records a login attempt (HTTP and socket alike), successful or not.
    fn audit_login(&self, username: &str, ip: &str, failure: Option<(&str, &str)>) {
        let mut e = AuditEntry::new(&loggable(username), action::LOGIN, "").ip(ip);
        if let Some((code, reason)) = failure {
            e = e.failed(code).detail(reason);
        }
        match self.audit.get() {
            Some(a) => a.record(e),
            // Without a store the line is still logged.
            None => {
                tracing::warn!(target: "audit", by = %e.actor, ip, result = %e.result, detail = %e.detail, "login failed")
            }
        }
    }

    /// Admits a login attempt, counting it from now (see [`Attempt`]).
    async fn begin_attempt(&self, username: &str, ip: &str) -> Option<Attempt<'_>> {
        let counted = match self.shared_limiter.get() {
            Some(shared) => match shared.reserve(username, ip).await {
                Some(true) => Counted::Shared,
                Some(false) => return None,
                // Redis unreachable: count locally meanwhile.
                None => Counted::Local,
            },
            None => Counted::Local,
        };
        if counted == Counted::Local && !self.limiter.reserve(username, ip) {
            return None;
        }
        Some(Attempt {
            svc: self,
            username: username.to_string(),
            ip: ip.to_string(),
            counted,
            open: true,
        })
    }

    /// The config.
    pub fn config(&self) -> &AuthConfig {
        &self.cfg
    }

    /// Creates `admin` if no user exists. Returns the generated password, if one was made.
    pub async fn ensure_admin(&self) -> Result<Option<String>, AuthError> {
        // Another admin (e.g. made with `switchboard user create` first) means setup is done.
        let admins = user::Entity::find()
            .filter(user::Column::Roles.contains("admin"))
            .count(&self.db)
            .await?;
        if admins > 0 {
            return Ok(None);
        }
        let (pw, generated) = if self.cfg.admin_password.is_empty() {
            (random_token(12), true)
        } else {
            (self.cfg.admin_password.clone(), false)
        };
        self.create_user("admin", &pw, &[Role::Admin])
            .await
            .map_err(|e| match e {
                AuthError::Invalid { message, .. } => AuthError::Invalid {
                    field: "auth.admin_password",
                    message,
                },
                other => other,
            })?;
        Ok(generated.then_some(pw))
    }

    /// Checks credentials (rate limited per username+IP) and issues a token.
    ///
    /// The attempt counts toward the limit from the moment it starts, so guesses sent at once
    /// are limited exactly like guesses sent one after the other. Failures are logged (target
    /// `audit`) with the username, the IP and the reason; never the password.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        ip: &str,
    ) -> Result<IssuedToken, AuthError> {
        let Some(attempt) = self.begin_attempt(username, ip).await else {
            self.audit_login(
                username,
                ip,
                Some(("rate_limited", "too many failed logins")),
            );
            return Err(AuthError::RateLimited);
        };
        let found = if username.len() <= 64 && password.len() <= 1024 {
            match user::Entity::find()
                .filter(user::Column::Username.eq(username))
                .one(&self.db)
                .await
            {
                Ok(found) => found,
                Err(e) => {
                    attempt.end(Outcome::NotEvaluated).await;
                    return Err(e.into());
                }
            }
        } else {
            None
        };
        let verdict = match &found {
            Some(u) => password::verify(password.to_string(), u.password_hash.clone()).await,
            None => {
                // Same time as a real check, without holding a hashing slot (see
                // `imitate_verify`).
                password::imitate_verify().await;
                Ok(false)
            }
        };
        let matches = match verdict {
            Ok(m) => m,
            Err(password::Busy) => {
                attempt.end(Outcome::NotEvaluated).await;
                self.audit_login(username, ip, Some(("busy", "password hashing busy")));
                return Err(AuthError::Busy);
            }
        };
        let user = match found {
            Some(u) if matches && u.enabled => u,
            other => {
                attempt.end(Outcome::Failed).await;
                let reason = match other {
                    None => "unknown user",
                    Some(u) if !u.enabled && matches => "user disabled",
                    Some(_) => "wrong password",
                };
                self.audit_login(username, ip, Some(("invalid_credentials", reason)));
                return Err(AuthError::InvalidCredentials);
            }
        };
        attempt.end(Outcome::Succeeded).await;
        if self.audit.get().is_some() {
            self.audit_login(username, ip, None);
        }
        let mut state = UserState::from(&user);
        if !self.cfg.multi_login {
            state.tokens_valid_after = self.set_tokens_valid_after(user.id, now_ms()).await?;
        }
        self.cache_user(state.clone());
        Ok(self.issue(&state))
    }

    /// Refuses unless `actor` may revoke, disable or change user `target` (see
    /// [`super::rank`]); an unknown target is left to the caller to report.
    pub async fn authorize_action_on(
        &self,
        actor: &Identity,
        target: i64,
    ) -> Result<(), AuthError> {
        if let Some(t) = self.user_state(target).await? {
            super::rank::may_act_on(actor, &t.roles)?;
        }
        Ok(())
    }

    /// Issues a token for a user.
    pub fn issue(&self, user: &UserState) -> IssuedToken {
        let iatms = now_ms().max(user.tokens_valid_after);
        let iat = iatms / 1000;
        let exp = iat + self.cfg.token_ttl.as_secs() as i64;
        let jti = uuid::Uuid::new_v4().simple().to_string();
        let claims = Claims {
            sub: user.id.to_string(),
            username: user.username.clone(),
            roles: user.roles.iter().map(|r| r.as_str().to_string()).collect(),
            iat,
            exp,
            jti: jti.clone(),
            iss: self.cfg.jwt_issuer.clone(),
            iatms,
        };
        let token = self.keys.sign(&claims);
        let identity = Identity {
            user_id: Some(UserId(user.id)),
            username: user.username.clone(),
            roles: user.roles.clone(),
            credential: Credential::Token {
                jti,
                expires_at: exp,
            },
        };
        IssuedToken {
            token,
            expires_at: exp,
            user: user.clone(),
            identity,
        }
    }

    /// Verifies a JWT against signature, expiry, revocation and the user's current state.
    pub async fn verify_token(&self, token: &str) -> Result<Identity, AuthError> {
        if token.len() > 4096 {
            return Err(AuthError::TokenInvalid);
        }
        let claims = self.keys.verify(token).map_err(|e| match e {
            TokenError::Expired => AuthError::TokenExpired,
            TokenError::Invalid => AuthError::TokenInvalid,
        })?;
        if self.revoked.read().contains_key(&claims.jti) {
            return Err(AuthError::TokenRevoked);
        }
        let id: i64 = claims.sub.parse().map_err(|_| AuthError::TokenInvalid)?;
        let user = self.user_state(id).await?.ok_or(AuthError::TokenRevoked)?;
        if !user.enabled {
            return Err(AuthError::UserDisabled);
        }
        let issued_ms = if claims.iatms > 0 {
            claims.iatms
        } else {
            claims.iat * 1000
        };
        if issued_ms < user.tokens_valid_after {
            return Err(AuthError::TokenRevoked);
        }
        Ok(Identity {
            user_id: Some(UserId(user.id)),
            username: user.username.clone(),
            roles: user.roles.clone(),
            credential: Credential::Token {
                jti: claims.jti,
                expires_at: claims.exp,
            },
        })
    }

    /// Looks up an API key by its hash.
    pub async fn verify_api_key(&self, key: &str) -> Result<Identity, AuthError> {
        if !key.starts_with(API_KEY_PREFIX) || key.len() > 128 {
            return Err(AuthError::InvalidApiKey);
        }
        let row = api_key::Entity::find()
            .filter(api_key::Column::KeyHash.eq(sha256_hex(key)))
            .one(&self.db)
            .await?
            .ok_or(AuthError::InvalidApiKey)?;
        let now = unix_now();
        if row
            .last_used_at
            .is_none_or(|t| now - t >= API_KEY_LAST_USED_PRECISION)
        {
            // At most one write per key a minute, off the request's path.
            let db = self.db.clone();
            let id = row.id;
            tokio::spawn(async move {
                let written = api_key::Entity::update_many()
                    .col_expr(api_key::Column::LastUsedAt, Expr::value(now))
                    .filter(api_key::Column::Id.eq(id))
                    .exec(&db)
                    .await;
                if let Err(e) = written {
                    // The next use (a minute on) tries again; the key itself works regardless.
                    tracing::warn!(key = id, error = %e, "recording an API key's last use failed");
                }
            });
        }
        Ok(Identity {
            user_id: None,
            username: format!("apikey:{}", row.name),
            roles: vec![Role::Operator],
            credential: Credential::ApiKey { id: row.id },
        })
    }

    /// Records a revocation made on another node (its database row exists already).
    pub fn remember_revoked(&self, jti: &str, expires_at: i64) {
        self.revoked.write().insert(jti.to_string(), expires_at);
    }

    /// Whether a token id is revoked (socket tasks poll this cheaply).
    pub fn is_revoked(&self, jti: &str) -> bool {
        self.revoked.read().contains_key(jti)
    }

    /// Revokes one token until its expiry.
    pub async fn revoke(&self, jti: &str, expires_at: i64) -> Result<(), AuthError> {
        self.revoked.write().insert(jti.to_string(), expires_at);
        let row = revoked_token::ActiveModel {
            jti: Set(jti.to_string()),
            expires_at: Set(expires_at),
        };
        match revoked_token::Entity::insert(row).exec(&self.db).await {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Invalidates every token a user holds now.
    pub async fn revoke_user_tokens(&self, user_id: i64) -> Result<(), AuthError> {
        self.set_tokens_valid_after(user_id, now_ms() + 1).await?;
        Ok(())
    }

    async fn set_tokens_valid_after(&self, user_id: i64, at_ms: i64) -> Result<i64, AuthError> {
        let Some(u) = user::Entity::find_by_id(user_id).one(&self.db).await? else {
            return Err(AuthError::NotFound(format!("user {user_id} not found")));
        };
        let mut am: user::ActiveModel = u.into();
        am.tokens_valid_after = Set(at_ms);
        am.updated_at = Set(unix_now());
        let m = am.update(&self.db).await?;
        self.cache_user(UserState::from(&m));
        Ok(at_ms)
    }

    /// Drops expired revocations from memory and the database.
    pub async fn prune_revoked(&self) -> Result<u64, AuthError> {
        let now = unix_now();
        self.revoked.write().retain(|_, exp| *exp >= now);
        let res = revoked_token::Entity::delete_many()
            .filter(revoked_token::Column::ExpiresAt.lt(now))
            .exec(&self.db)
            .await?;
        Ok(res.rows_affected)
    }

    fn cache_user(&self, state: UserState) {
        let mut users = self.users.write();
        if users.len() > 100_000 {
            users.clear();
        }
        users.insert(state.id, Arc::new(state));
    }

    /// Forgets a cached user (after changes made elsewhere, e.g. another node).
    pub fn invalidate_user(&self, id: i64) {
        self.users.write().remove(&id);
    }

    /// A user's current state (cached).
    pub async fn user_state(&self, id: i64) -> Result<Option<Arc<UserState>>, AuthError> {
        if let Some(u) = self.users.read().get(&id) {
            return Ok(Some(u.clone()));
        }
        let Some(m) = user::Entity::find_by_id(id).one(&self.db).await? else {
            return Ok(None);
        };
        let state = UserState::from(&m);
        self.cache_user(state.clone());
        Ok(Some(Arc::new(state)))
    }

    /// Creates a user.
    pub async fn create_user(
        &self,
        username: &str,
        password: &str,
        roles: &[Role],
    ) -> Result<UserState, AuthError> {
        validate_username(username)?;
        validate_password(password)?;
        validate_roles(roles)?;
        if user::Entity::find()
            .filter(user::Column::Username.eq(username))
            .one(&self.db)
            .await?
            .is_some()
        {
            return Err(AuthError::Conflict(format!(
                "username `{username}` is taken"
            )));
        }
        let hash = password::hash(password.to_string())
            .await
            .map_err(AuthError::Hash)?;
        let now = unix_now();
        let mut roles = roles.to_vec();
        roles.sort();
        roles.dedup();
        let am = user::ActiveModel {
            username: Set(username.to_string()),
            password_hash: Set(hash),
            roles: Set(roles_to_string(&roles)),
            enabled: Set(true),
            tokens_valid_after: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        };
        let m = am.insert(&self.db).await.map_err(|e| {
            if is_unique_violation(&e) {
                AuthError::Conflict(format!("username `{username}` is taken"))
            } else {
                AuthError::Db(e)
            }
        })?;
        let state = UserState::from(&m);
        self.cache_user(state.clone());
        Ok(state)
    }

    /// Every user, by id.
    pub async fn list_users(&self) -> Result<Vec<UserState>, AuthError> {
        Ok(user::Entity::find()
            .order_by_asc(user::Column::Id)
            .all(&self.db)
            .await?
            .iter()
            .map(UserState::from)
            .collect())
    }

    /// Applies changes; a password change or disable invalidates the user's tokens.
    pub async fn update_user(
        &self,
        id: i64,
        patch: UserPatch,
    ) -> Result<(UserState, UserChange), AuthError> {
        let Some(m) = user::Entity::find_by_id(id).one(&self.db).await? else {
            return Err(AuthError::NotFound(format!("user {id} not found")));
        };
        let mut change = UserChange::default();
        let mut am: user::ActiveModel = m.into();
        if let Some(mut roles) = patch.roles {
            validate_roles(&roles)?;
            roles.sort();
            roles.dedup();
            am.roles = Set(roles_to_string(&roles));
        }
        if let Some(pw) = patch.password {
            validate_password(&pw)?;
            am.password_hash = Set(password::hash(pw).await.map_err(AuthError::Hash)?);
            am.tokens_valid_after = Set(now_ms() + 1);
            change.tokens_revoked = true;
        }
        if let Some(enabled) = patch.enabled {
            am.enabled = Set(enabled);
            if !enabled {
                am.tokens_valid_after = Set(now_ms() + 1);
                change.tokens_revoked = true;
            }
        }
        am.updated_at = Set(unix_now());
        let m = am.update(&self.db).await?;
        let state = UserState::from(&m);
        self.cache_user(state.clone());
        Ok((state, change))
    }

    /// Deletes a user.
    pub async fn delete_user(&self, id: i64) -> Result<(), AuthError> {
        let res = user::Entity::delete_by_id(id).exec(&self.db).await?;
        self.invalidate_user(id);
        if res.rows_affected == 0 {
            return Err(AuthError::NotFound(format!("user {id} not found")));
        }
        Ok(())
    }

    /// Creates an API key; the key is returned only here.
    pub async fn create_api_key(&self, name: &str) -> Result<NewApiKey, AuthError> {
        validate_username(name).map_err(|_| AuthError::Invalid {
            field: "name",
            message: "1-64 characters of letters, digits, _ . @ -".into(),
        })?;
        let key = format!("{API_KEY_PREFIX}{}", random_token(32));
        let am = api_key::ActiveModel {
            name: Set(name.to_string()),
            key_hash: Set(sha256_hex(&key)),
            prefix: Set(key[..12].to_string()),
            created_at: Set(unix_now()),
            ..Default::default()
        };
        let m = am.insert(&self.db).await.map_err(|e| {
            if is_unique_violation(&e) {
                AuthError::Conflict(format!("an API key named `{name}` exists"))
            } else {
                AuthError::Db(e)
            }
        })?;
        Ok(NewApiKey {
            id: m.id,
            name: m.name,
            key,
        })
    }

    /// Every API key (without the key).
    pub async fn list_api_keys(&self) -> Result<Vec<api_key::Model>, AuthError> {
        Ok(api_key::Entity::find()
            .order_by_asc(api_key::Column::Id)
            .all(&self.db)
            .await?)
    }

    /// Deletes an API key.
    pub async fn delete_api_key(&self, id: i64) -> Result<(), AuthError> {
        let res = api_key::Entity::delete_by_id(id).exec(&self.db).await?;
        if res.rows_affected == 0 {
            return Err(AuthError::NotFound(format!("API key {id} not found")));
        }
        Ok(())
    }
}

fn is_unique_violation(e: &DbErr) -> bool {
    matches!(
        e.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}
