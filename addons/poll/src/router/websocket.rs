//! Registers the addon's WebSocket events.

use switchboard_sdk::Role;
use switchboard_sdk::event::EventRegistry;

use crate::controller::websocket::handler;
use crate::model::PollResults;
use crate::state::PollState;

/// Event: creates a poll (operator role).
pub const CREATE: &str = "admin/addons/poll/create";
/// Event: votes in a poll (any logged-in user).
pub const VOTE: &str = "admin/addons/poll/vote";
/// Event: reads a poll's counts (any logged-in user); also the name of the push to a poll's tag.
pub const RESULTS: &str = "admin/addons/poll/results";

/// Called once at start-up by the server. Each handler gets the addon's shared state as its
/// first argument through a closure; the request type is taken from the handler's signature.
pub fn register(events: &mut EventRegistry, state: &PollState) {
    let s = state.clone();
    events
        .on(CREATE, move |ctx, req| {
            handler::create::handle(s.clone(), ctx, req)
        })
        .role(Role::Operator)
        .describe(
            "Creates a poll: a question (1-200 characters) and 2-10 distinct options (1-100 \
             characters each). Answers the poll with zero votes; its `tag` (`poll:<id>`) is \
             where results are pushed after every vote. 400 names the field over a limit.",
        )
        .reply::<PollResults>();

    let s = state.clone();
    events
        .on(VOTE, move |ctx, req| {
            handler::vote::handle(s.clone(), ctx, req)
        })
        .role(Role::Member)
        .describe(
            "Votes for the option at position `option` (from 0) of poll `pollId`, once per \
             user: 404 unknown poll, 400 no such option, 409 already voted, 403 for a \
             connection without a user. Answers the new counts and pushes them as \
             `admin/addons/poll/results` to the members of the poll's tag.",
        )
        .reply::<PollResults>();

    let s = state.clone();
    events
        .on(RESULTS, move |ctx, req| {
            handler::results::handle(s.clone(), ctx, req)
        })
        .role(Role::Member)
        .describe(
            "Answers the counts of poll `pollId` (404 unknown poll). The same data is pushed \
             under this event name to the members of tag `poll:<id>` after every vote.",
        )
        .reply::<PollResults>();
}
