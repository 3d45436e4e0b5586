//! Authentication: passwords, JWTs, API keys, the login limiter and the middleware.

pub mod middleware;
pub mod password;
pub mod rank;
pub mod ratelimit;
pub mod service;
pub mod token;

pub use middleware::{AuthMiddleware, ExemptList};
pub use rank::{RankError, may_act_on, may_grant};
pub use service::{AuthError, AuthService, UserState};
