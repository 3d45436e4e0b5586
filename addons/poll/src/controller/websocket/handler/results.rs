//! `admin/addons/poll/results`: the counts of one poll, now.

use switchboard_sdk::{EventContext, EventResult, Reply};

use crate::model::ResultsQuery;
use crate::state::PollState;
use crate::store;

/// Answers the poll's counts; 404 for an unknown poll.
pub async fn handle(state: PollState, _ctx: EventContext, req: ResultsQuery) -> EventResult {
    let results = store::results(state.db()?, req.poll_id).await?;
    Reply::json(&results)
}
