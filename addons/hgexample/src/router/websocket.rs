//! Registers the addon's WebSocket events (hotgo's `addons/<name>/router/websocket.go`).

use switchboard_sdk::Data;
use switchboard_sdk::event::EventRegistry;

use crate::controller::websocket::handler;

/// Event: echoes `data` back to the sender.
pub const TEST_MESSAGE: &str = "admin/addons/hgexample/testMessage";

/// Called once at start-up by the server.
pub fn register(events: &mut EventRegistry) {
    // The handler takes `Data` and sends it back as is: any JSON in, the same JSON out.
    events
        .on(TEST_MESSAGE, handler::test_message::handle)
        .describe("Echoes the request's `data` back to the sender, byte for byte.")
        .reply::<Data>();
}
