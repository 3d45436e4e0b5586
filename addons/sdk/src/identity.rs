//! Who a connection or an HTTP request acts as.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A user's database id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub i64);

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A role. `admin` may do everything, `operator` may send, list, kick and manage tags,
/// `member` may log in, hold a WebSocket and see its own profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including users and API keys.
    Admin,
    /// Sending, online list, kick, tags, stats.
    Operator,
    /// Log in, hold a WebSocket, own profile.
    Member,
}

impl Role {
    /// Every role, strongest first.
    pub const ALL: [Role; 3] = [Role::Admin, Role::Operator, Role::Member];

    /// The role's name as used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Member => "member",
        }
    }

    /// Whether holding `self` grants what `required` allows.
    pub fn grants(self, required: Role) -> bool {
        matches!(
            (self, required),
            (Role::Admin, _)
                | (Role::Operator, Role::Operator | Role::Member)
                | (Role::Member, Role::Member)
        )
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an unknown role name.
#[derive(Debug, thiserror::Error)]
#[error("unknown role `{0}` (expected admin, operator or member)")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Role::Admin),
            "operator" => Ok(Role::Operator),
            "member" => Ok(Role::Member),
            other => Err(UnknownRole(other.to_string())),
        }
    }
}

/// How an identity proved itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// A JWT; `jti` identifies it for revocation, `expires_at` is unix seconds.
    Token {
        /// The token's unique id.
        jti: String,
        /// Unix seconds after which the token is refused.
        expires_at: i64,
    },
    /// An API key of a backend service.
    ApiKey {
        /// The key's database id.
        id: i64,
    },
}

/// An authenticated principal: a user (by token) or a backend service (by API key).
///
/// ```
/// use switchboard_sdk::{Credential, Identity, Role, UserId};
/// let who = Identity {
///     user_id: Some(UserId(7)),
///     username: "alice".into(),
///     roles: vec![Role::Operator],
///     credential: Credential::Token { jti: "j".into(), expires_at: 0 },
/// };
/// assert!(who.has_role(Role::Member));
/// assert!(!who.has_role(Role::Admin));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The user, or `None` for an API key.
    pub user_id: Option<UserId>,
    /// The user's name, or the API key's name.
    pub username: String,
    /// Granted roles.
    pub roles: Vec<Role>,
    /// How it authenticated.
    pub credential: Credential,
}

impl Identity {
    /// Whether any of the identity's roles grants `required`.
    pub fn has_role(&self, required: Role) -> bool {
        self.roles.iter().any(|r| r.grants(required))
    }
}
