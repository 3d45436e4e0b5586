//! Event routing of the addon.
pub mod websocket;
