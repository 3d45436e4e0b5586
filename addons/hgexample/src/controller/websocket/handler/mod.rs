//! WebSocket event handlers.
pub mod test_message;
