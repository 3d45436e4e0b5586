//! A periodic push: the server time, every 3 s, to tag `hgexample:clock`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use switchboard_sdk::{Hub, Push, Tag};

/// The tag whose members receive the clock.
pub const CLOCK_TAG: &str = "hgexample:clock";
/// The pushed event.
pub const CLOCK_EVENT: &str = "admin/addons/hgexample/clock";
/// How often.
pub const PERIOD: Duration = Duration::from_secs(3);

/// Runs until the server's shutdown drops it.
pub async fn run(hub: Arc<dyn Hub>, period: Duration) {
    let Ok(tag) = Tag::parse(CLOCK_TAG) else {
        return;
    };
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        ticker.tick().await;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let push = Push::new(
            CLOCK_EVENT,
            json!({ "unixMillis": now.as_millis() as u64, "node": hub.node_id() }),
        );
        hub.send_to_tag(&tag, push).await;
    }
}
