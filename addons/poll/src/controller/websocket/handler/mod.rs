//! WebSocket event handlers, one file per event.
pub mod create;
pub mod results;
pub mod vote;
