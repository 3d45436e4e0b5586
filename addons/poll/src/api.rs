//! The addon's OpenAPI endpoint under `/api/addons/poll/`, in its own Swagger UI section.

use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{OpenApi, Tags};
use switchboard_sdk::api::{ApiAuth, ApiError};
use switchboard_sdk::{AddonContext, Role};

use crate::model::PollResults;
use crate::store;

#[derive(Tags)]
enum ApiTags {
    /// Polls: the counts of a poll created over the WebSocket.
    Poll,
}

/// The endpoints.
pub struct PollApi {
    ctx: AddonContext,
}

impl PollApi {
    /// Built by [`crate::Poll`].
    pub fn new(ctx: AddonContext) -> Self {
        PollApi { ctx }
    }
}

#[OpenApi(prefix_path = "/api/addons/poll", tag = "ApiTags::Poll")]
impl PollApi {
    /// The counts of a poll
    ///
    /// Any logged-in user or API key. 404 `not_found` for an unknown poll; an id that is not a
    /// number is 400.
    #[oai(path = "/:id", method = "get")]
    async fn results(&self, auth: ApiAuth, id: Path<i64>) -> Result<Json<PollResults>, ApiError> {
        auth.require(Role::Member)?;
        Ok(Json(store::results(self.ctx.db(), id.0).await?))
    }
}
