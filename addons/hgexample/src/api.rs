//! The addon's OpenAPI endpoints under `/api/addons/hgexample/`.

use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Tags};
use sea_orm::{ActiveModelTrait, EntityTrait, QueryOrder, QuerySelect, Set};
use serde_json::Value;
use switchboard_sdk::api::{ApiAuth, ApiError, Delivered};
use switchboard_sdk::protocol::{MAX_EVENT_LEN, unix_now};
use switchboard_sdk::{AddonContext, Push, Role, UserId};

use crate::entity;

/// Path of the exempt ping endpoint (contributed to the login-exemption list).
pub const PING_PATH: &str = "/api/addons/hgexample/ping";

#[derive(Tags)]
enum ApiTags {
    /// The example addon.
    Hgexample,
}

/// Request of `POST /api/addons/hgexample/push`.
#[derive(Object)]
#[oai(example)]
pub struct PushRequest {
    /// The receiving user; every device of theirs gets the push.
    #[oai(rename = "userId")]
    pub user_id: i64,
    /// Event name, default `notice`.
    pub event: Option<String>,
    /// Payload, delivered unchanged.
    pub data: Option<Value>,
}

impl poem_openapi::types::Example for PushRequest {
    fn example() -> Self {
        PushRequest {
            user_id: 1,
            event: Some("notice".into()),
            data: Some(serde_json::json!({"text": "hello from hgexample"})),
        }
    }
}

/// One logged push.
#[derive(Object)]
pub struct PushLogEntry {
    /// Row id.
    pub id: i64,
    /// Who sent it.
    pub sender: String,
    /// The receiving user.
    #[oai(rename = "userId")]
    pub user_id: i64,
    /// Event.
    pub event: String,
    /// Connections reached.
    pub delivered: i64,
    /// Unix seconds.
    #[oai(rename = "createdAt")]
    pub created_at: i64,
}

/// Answer of the exempt ping.
#[derive(Object)]
pub struct Pong {
    /// Always `hgexample`.
    pub addon: String,
    /// Unix seconds.
    pub time: i64,
}

/// The endpoints.
pub struct HgExampleApi {
    ctx: AddonContext,
}

impl HgExampleApi {
    /// Built by [`crate::HgExample`].
    pub fn new(ctx: AddonContext) -> Self {
        HgExampleApi { ctx }
    }
}

#[OpenApi(prefix_path = "/api/addons/hgexample", tag = "ApiTags::Hgexample")]
impl HgExampleApi {
    /// Push a message to every device of a user
    ///
    /// Uses the sdk's `send_to_user`; requires the operator role (or an API key). The push
    /// is recorded in the addon's own table.
    #[oai(path = "/push", method = "post")]
    async fn push(
        &self,
        auth: ApiAuth,
        body: Json<PushRequest>,
    ) -> Result<Json<Delivered>, ApiError> {
        let who = auth.require(Role::Operator)?;
        let event = body.0.event.unwrap_or_else(|| "notice".to_string());
        if event.is_empty() || event.len() > MAX_EVENT_LEN {
            return Err(ApiError::invalid_field("event", "must be 1-128 bytes"));
        }
        let data = body.0.data.unwrap_or(Value::Null);
        let delivered = self
            .ctx
            .hub()
            .send_to_user(UserId(body.0.user_id), Push::new(event.clone(), data))
            .await;
        entity::ActiveModel {
            sender: Set(who.username.clone()),
            user_id: Set(body.0.user_id),
            event: Set(event),
            delivered: Set(delivered as i64),
            created_at: Set(unix_now()),
            ..Default::default()
        }
        .insert(self.ctx.db())
        .await
        .map_err(ApiError::internal)?;
        Ok(Json(Delivered {
            delivered: delivered as u64,
        }))
    }

    /// The latest 50 pushes made through this addon
    #[oai(path = "/pushes", method = "get")]
    async fn pushes(&self, auth: ApiAuth) -> Result<Json<Vec<PushLogEntry>>, ApiError> {
        auth.require(Role::Operator)?;
        let rows = entity::Entity::find()
            .order_by_desc(entity::Column::Id)
            .limit(50)
            .all(self.ctx.db())
            .await
            .map_err(ApiError::internal)?;
        Ok(Json(
            rows.into_iter()
                .map(|r| PushLogEntry {
                    id: r.id,
                    sender: r.sender,
                    user_id: r.user_id,
                    event: r.event,
                    delivered: r.delivered,
                    created_at: r.created_at,
                })
                .collect(),
        ))
    }

    /// Liveness of the addon (exempt from login: listed in the addon's exemptions)
    #[oai(path = "/ping", method = "get")]
    async fn ping(&self) -> Json<Pong> {
        Json(Pong {
            addon: crate::NAME.to_string(),
            time: unix_now(),
        })
    }
}
