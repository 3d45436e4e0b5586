//! `admin/addons/poll/create`: stores a new poll and answers it.

use switchboard_sdk::{EventContext, EventResult, Reply};

use crate::model::CreatePoll;
use crate::state::PollState;
use crate::store;

/// Checks the limits (400 naming the field), stores the poll under the caller's name and
/// answers it with zero votes. The reply's `tag` is where its results will be pushed.
pub async fn handle(state: PollState, ctx: EventContext, req: CreatePoll) -> EventResult {
    let poll = req.validate()?;
    let creator = ctx
        .identity()
        .map(|who| who.username.clone())
        .unwrap_or_default();
    let created = store::create(state.db()?, poll, &creator).await?;
    Reply::json(&created)
}
