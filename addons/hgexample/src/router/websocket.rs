//! Registers the addon's WebSocket events (hotgo's `addons/<name>/router/websocket.go`).

use switchboard_sdk::event::EventRegistry;

use crate::controller::websocket::handler;

/// Event: echoes `data` back to the sender.
pub const TEST_MESSAGE: &str = "admin/addons/hgexample/testMessage";

/// Called once at start-up by the server.
pub fn register(events: &mut EventRegistry) {
    events.on(TEST_MESSAGE, handler::test_message::handle);
}
