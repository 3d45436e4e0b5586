//! Built-in events: `ping`, `join`, `quit`, `publish`, `login`, `recover`, and the monitor's
//! `admin/monitor/trends` and `admin/monitor/runInfo`.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_sdk::event::{EventError, bind};
use switchboard_sdk::protocol::{Data, Push, code};
use switchboard_sdk::{Client, Role, Tag};

use super::{WsState, monitor};
use crate::node::NodeError;

/// Whether `event` is handled here.
pub fn is_builtin(event: &str) -> bool {
    matches!(
        event,
        "ping"
            | "join"
            | "quit"
            | "publish"
            | "login"
            | "recover"
            | monitor::TRENDS
            | monitor::RUN_INFO
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TagArg {
    id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PublishArg {
    tag: String,
    #[serde(default)]
    data: Value,
    #[serde(default)]
    exclude_self: bool,
}

#[derive(Deserialize)]
struct LoginArg {
    username: Option<String>,
    password: Option<String>,
    token: Option<String>,
}

fn parse_tag(raw: &str, field: &str) -> Result<Tag, EventError> {
    Tag::parse(raw).map_err(|e| EventError::bad_request(format!("data.{field}: {e}")))
}

fn tag_list(tags: Vec<Tag>) -> Value {
    Value::Array(
        tags.into_iter()
            .map(|t| Value::String(t.to_string()))
            .collect(),
    )
}

/// How a node refusal looks to a socket client.
pub fn node_error(e: NodeError) -> EventError {
    match e {
        NodeError::TooManyTags(_) => EventError::forbidden(e.to_string()),
        NodeError::Limit(_) => EventError::new(code::RATE_LIMITED, e.to_string()),
        NodeError::Unavailable(_) => EventError::new(code::INTERNAL, e.to_string()),
        NodeError::TooLarge { .. } => EventError::new(code::TOO_LARGE, e.to_string()),
    }
}

/// Runs a built-in event; the result becomes the reply.
pub async fn handle(
    state: &WsState,
    client: &Arc<Client>,
    event: &str,
    data: Data,
    client_ip: &str,
) -> Result<Value, EventError> {
    match event {
        "ping" => Ok(Value::Null),
        "join" => {
            let arg: TagArg = bind(&data)?;
            let tag = parse_tag(&arg.id, "id")?;
            if tag.is_system() {
                return Err(EventError::forbidden(
                    "sys: tags are assigned by the server only",
                ));
            }
            state
                .node
                .change_own_tag(client, true, &tag)
                .await
                .map(tag_list)
                .map_err(node_error)
        }
        "quit" => {
            let arg: TagArg = bind(&data)?;
            let tag = parse_tag(&arg.id, "id")?;
            if tag.is_system() {
                return Err(EventError::forbidden(
                    "sys: tags are assigned by the server only",
                ));
            }
            state
                .node
                .change_own_tag(client, false, &tag)
                .await
                .map(tag_list)
                .map_err(node_error)
        }
        "publish" => {
            if !state.cfg.client_publish {
                return Err(EventError::forbidden("client publishing is disabled"));
            }
            let arg: PublishArg = bind(&data)?;
            let tag = parse_tag(&arg.tag, "tag")?;
            if !client.has_tag(&tag) {
                return Err(EventError::forbidden(
                    "join the tag before publishing to it",
                ));
            }
            let identity = client.identity();
            let payload = json!({
                "tag": tag.as_str(),
                "from": {
                    "id": client.id().as_str(),
                    "userId": identity.as_ref().and_then(|i| i.user_id).map(|u| u.0),
                    "username": identity.as_ref().map(|i| i.username.as_str()).unwrap_or(""),
                },
                "data": arg.data,
            });
            let push = Push::new("publish", payload);
            let except = arg.exclude_self.then(|| client.id());
            let delivered = state
                .node
                .publish_from(&tag, &push, except)
                .await
                .map_err(node_error)?;
            Ok(json!({ "delivered": delivered }))
        }
        "login" => login(state, client, data, client_ip).await,
        "recover" => {
            let req: super::hub::RecoverRequest = bind(&data)?;
            state.node.recover(client, req).await
        }
        monitor::TRENDS | monitor::RUN_INFO => {
            if !client
                .identity()
                .is_some_and(|i| i.has_role(Role::Operator))
            {
                return Err(EventError::forbidden(
                    "the monitor requires the operator role",
                ));
            }
            // Asking subscribes: from now on the figures are pushed every interval.
            let tag = Tag::parse(monitor::TAG).expect("the monitor tag is valid");
            if !state.node.holds_tag(client, &tag) {
                state
                    .node
                    .change_own_tag(client, true, &tag)
                    .await
                    .map_err(node_error)?;
            }
            let figures = if event == monitor::TRENDS {
                state.monitor.trends().await
            } else {
                state.monitor.run_info().await
            };
            figures.map_err(node_error)
        }
        _ => Err(EventError::not_found(format!("unknown event `{event}`"))),
    }
}

async fn login(
    state: &WsState,
    client: &Arc<Client>,
    data: Data,
    client_ip: &str,
) -> Result<Value, EventError> {
    if client.identity().is_some() {
        return Err(EventError::new(
            code::CONFLICT,
            "this connection is already identified",
        ));
    }
    let arg: LoginArg = bind(&data)?;
    let (identity, token, user) = match (arg.token, arg.username, arg.password) {
        (Some(token), _, _) => {
            let identity = state
                .auth
                .verify_token(&token)
                .await
                .map_err(|e| EventError::new(code::UNAUTHORIZED, e.to_string()))?;
            let uid = identity.user_id.map(|u| u.0).unwrap_or_default();
            let user = state
                .auth
                .user_state(uid)
                .await
                .ok()
                .flatten()
                .ok_or_else(|| EventError::new(code::UNAUTHORIZED, "invalid token"))?;
            (identity, token, (*user).clone())
        }
        (None, Some(username), Some(password)) => {
            let issued = state
                .auth
                .login(&username, &password, client_ip)
                .await
                .map_err(|e| match e {
                    crate::auth::AuthError::RateLimited | crate::auth::AuthError::Busy => {
                        EventError::new(code::RATE_LIMITED, e.to_string())
                    }
                    other => EventError::new(code::UNAUTHORIZED, other.to_string()),
                })?;
            (issued.identity, issued.token, issued.user)
        }
        _ => {
            return Err(EventError::bad_request(
                "data: expected {username, password} or {token}",
            ));
        }
    };
    state
        .node
        .identify(client, identity)
        .await
        .map_err(node_error)?;
    Ok(json!({
        "token": token,
        "user": {
            "id": user.id,
            "username": user.username,
            "roles": user.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        }
    }))
}
