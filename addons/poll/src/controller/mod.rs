//! Controllers of the addon.
pub mod websocket;
