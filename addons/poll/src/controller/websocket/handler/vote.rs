//! `admin/addons/poll/vote`: records the caller's vote and pushes the new counts to the poll's tag.

use switchboard_sdk::{EventContext, EventError, EventResult, Push, Reply, Tag};

use crate::model::CastVote;
use crate::router::websocket::RESULTS;
use crate::state::PollState;
use crate::store;

/// One vote per user and poll: 404 for an unknown poll, 400 for an option the poll does not
/// have, 409 for a second vote. On success every member of tag `poll:<id>` gets the counts
/// pushed as `admin/addons/poll/results`, and the voter gets them as the reply.
pub async fn handle(state: PollState, ctx: EventContext, req: CastVote) -> EventResult {
    // A backend service's API key acts as an operator but is nobody's vote.
    let user = ctx
        .user_id()
        .ok_or_else(|| EventError::forbidden("only a user can vote (this connection has none)"))?;
    let results = store::vote(state.db()?, req.poll_id, user.0, req.option).await?;
    let tag = Tag::parse(&results.tag)
        .map_err(|e| EventError::failed(format!("poll tag `{}`: {e}", results.tag)))?;
    let data = serde_json::to_value(&results)
        .map_err(|e| EventError::failed(format!("results not serialisable: {e}")))?;
    state
        .hub()?
        .send_to_tag(&tag, Push::new(RESULTS, data))
        .await;
    Reply::json(&results)
}
