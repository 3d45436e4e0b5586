//! sea-orm entities of the host's tables.
pub mod api_key;
pub mod revoked_token;
pub mod user;
