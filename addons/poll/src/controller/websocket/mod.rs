//! WebSocket controllers.
pub mod handler;
