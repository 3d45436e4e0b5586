//! `admin/addons/hgexample/testMessage`: echoes `data` to the sender.

use serde_json::Value;
use switchboard_sdk::{EventContext, EventResult, Reply};

/// Replies with the request's own `data` through send_success (event and seqno echoed).
pub async fn handle(ctx: EventContext, data: Value) -> EventResult {
    ctx.send_success(&data);
    Ok(Reply::Silent)
}
