//! `admin/addons/hgexample/testMessage`: echoes `data` to the sender.

use switchboard_sdk::{Data, EventContext, EventResult, Reply};

/// Replies with the request's own `data` through send_success (event and seqno echoed). The
/// data is taken as [`Data`], the JSON text as sent: it goes back byte for byte, never parsed
/// into a tree and re-serialised.
pub async fn handle(ctx: EventContext, data: Data) -> EventResult {
    ctx.send_success(&data);
    Ok(Reply::Silent)
}
