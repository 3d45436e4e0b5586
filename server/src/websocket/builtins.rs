//! Built-in events: `ping`, `join`, `quit`, `publish`, `login`, `recover`, and the monitor's
//! `admin/monitor/trends` and `admin/monitor/runInfo`.

use std::sync::Arc;

use crate::websocket::client::Connection;
use poem_openapi::Object;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchboard_sdk::event::{EventDoc, EventError, Schema, bind};
use switchboard_sdk::protocol::{Data, Push, code};
use switchboard_sdk::{Role, Tag};

use super::{WsState, monitor};
use crate::node::NodeError;

/// The events answered here (each has an entry in [`docs`]).
pub const HANDLED: &[&str] = &[
    "ping",
    "join",
    "quit",
    "publish",
    "login",
    "recover",
    monitor::TRENDS,
    monitor::RUN_INFO,
];

/// Every event name the server owns, which an addon may not register: the [`HANDLED`] ones,
/// the pushes it sends unasked ([`pushes`]), and the reply event of frames whose own event
/// could not be read.
pub const RESERVED: &[&str] = &[
    "ping",
    "join",
    "quit",
    "publish",
    "login",
    "recover",
    monitor::TRENDS,
    monitor::RUN_INFO,
    "connected",
    "kick",
    "notice",
    super::frame::ERROR_EVENT,
];

/// Whether `event` is handled here.
pub fn is_builtin(event: &str) -> bool {
    HANDLED.contains(&event)
}

/// `join` / `quit`: the tag.
#[derive(Deserialize, Object)]
#[serde(deny_unknown_fields)]
#[oai(rename = "TagRequest", deny_unknown_fields)]
struct TagArg {
    /// Tag name: 1-64 chars of `A-Za-z0-9_.:/-`; `sys:` tags are the server's.
    id: String,
}

/// `publish`: what to send to a tag's members.
#[derive(Deserialize, Object)]
#[serde(rename_all = "camelCase")]
#[oai(rename = "PublishRequest", rename_all = "camelCase")]
struct PublishArg {
    /// A tag the sender has joined.
    tag: String,
    /// Any JSON, delivered as is.
    #[serde(default)]
    #[oai(default)]
    data: Value,
    /// Leave the sender out.
    #[serde(default)]
    #[oai(default)]
    exclude_self: bool,
}

/// `login`: either `{username, password}` or `{token}`.
#[derive(Deserialize, Object)]
#[oai(rename = "LoginRequest")]
struct LoginArg {
    username: Option<String>,
    password: Option<String>,
    /// A token from `POST /api/auth/login`.
    token: Option<String>,
}

/// How many connections a send reached.
#[derive(Serialize, Object)]
#[oai(rename = "Delivered")]
struct Delivered {
    delivered: u64,
}

/// Who a `publish` push came from.
#[derive(Serialize, Object)]
#[serde(rename_all = "camelCase")]
#[oai(rename = "PublishSender", rename_all = "camelCase")]
struct Sender {
    /// Connection id.
    id: String,
    /// `null` for anonymous connections and API keys.
    user_id: Option<i64>,
    /// Empty for anonymous connections.
    username: String,
}

/// The `publish` push a tag's members receive.
#[derive(Serialize, Object)]
#[oai(rename = "PublishPush")]
struct Published {
    tag: String,
    from: Sender,
    /// The publisher's `data`, as sent.
    data: Value,
}

/// The user a `login` identified.
#[derive(Serialize, Object)]
#[oai(rename = "LoginUser")]
struct LoginUser {
    id: i64,
    username: String,
    roles: Vec<String>,
}

/// The `login` reply.
#[derive(Serialize, Object)]
#[oai(rename = "LoginReply")]
struct LoginReply {
    /// A token for this user (the one presented, or a new one).
    token: String,
    user: LoginUser,
}

/// The `kick` push, sent just before the server closes the connection with 4001.
#[derive(Serialize, Object)]
#[oai(rename = "KickPush")]
pub struct KickPush {
    /// Why, as the operator gave it.
    pub reason: String,
}

fn doc<Req: poem_openapi::types::Type>(
    name: &str,
    role: Option<Role>,
    description: &str,
    reply: Option<Schema>,
) -> EventDoc {
    EventDoc {
        name: name.to_string(),
        addon: "host".to_string(),
        role,
        description: description.to_string(),
        request: Schema::of::<Req>(),
        reply,
    }
}

/// The built-in events, for the event document: each names the type its handler below binds
/// and answers.
pub fn docs() -> Vec<EventDoc> {
    let tags = Some(Schema::of::<Vec<String>>());
    vec![
        doc::<Data>("ping", None, "Heartbeat; the reply carries no data.", None),
        doc::<TagArg>(
            "join",
            None,
            "Joins a tag; the reply is the connection's sorted tag list.",
            tags,
        ),
        doc::<TagArg>(
            "quit",
            None,
            "Leaves a tag; the reply is the connection's sorted tag list.",
            tags,
        ),
        doc::<PublishArg>(
            "publish",
            None,
            "Sends `data` to the members of a tag the sender has joined (they receive a \
             `publish` push); the reply counts the recipients.",
            Some(Schema::of::<Delivered>()),
        ),
        doc::<LoginArg>(
            "login",
            None,
            "Identifies an anonymous connection on an exempt socket path, by password or token.",
            Some(Schema::of::<LoginReply>()),
        ),
        doc::<super::hub::RecoverRequest>(
            "recover",
            None,
            "Replays what the connection missed in its streams since the given positions.",
            Some(Schema::of::<Value>()),
        ),
        doc::<Data>(
            monitor::TRENDS,
            Some(Role::Operator),
            "The monitor's recent points; also subscribes the connection to the pushes.",
            Some(Schema::of::<monitor::Trends>()),
        ),
        doc::<Data>(
            monitor::RUN_INFO,
            Some(Role::Operator),
            "The monitor's figures now; also subscribes the connection to the pushes.",
            Some(Schema::of::<monitor::Point>()),
        ),
    ]
}

/// A message the server pushes without being asked, for the event document.
pub struct PushDoc {
    /// The event name.
    pub name: &'static str,
    /// When it comes.
    pub description: &'static str,
    /// Its `data`.
    pub data: Schema,
}

/// Every push the server itself sends.
pub fn pushes() -> Vec<PushDoc> {
    vec![
        PushDoc {
            name: "connected",
            description: "Sent right after the upgrade: who the connection is and its liveness settings (seconds).",
            data: Schema::of::<super::connection::Greeting>(),
        },
        PushDoc {
            name: "notice",
            description: "A notice from an operator or a backend service; `data` is whatever the sender gave.",
            data: Schema::of::<Value>(),
        },
        PushDoc {
            name: "kick",
            description: "The connection is being closed by an operator (close code 4001 follows).",
            data: Schema::of::<KickPush>(),
        },
        PushDoc {
            name: "publish",
            description: "A member of a tag this connection joined published to it.",
            data: Schema::of::<Published>(),
        },
        PushDoc {
            name: monitor::TRENDS,
            description: "Every monitor interval to members of `sys:monitor`: the newest point.",
            data: Schema::of::<monitor::Trends>(),
        },
        PushDoc {
            name: monitor::RUN_INFO,
            description: "Every monitor interval to members of `sys:monitor`: the figures now.",
            data: Schema::of::<monitor::Point>(),
        },
    ]
}

fn parse_tag(raw: &str, field: &str) -> Result<Tag, EventError> {
    Tag::parse(raw).map_err(|e| EventError::bad_request(format!("data.{field}: {e}")))
}

fn tag_list(tags: Vec<Tag>) -> Value {
    let names: Vec<String> = tags.into_iter().map(|t| t.to_string()).collect();
    Value::from(names)
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
    client: &Arc<Connection>,
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
            let payload = Published {
                tag: tag.as_str().to_string(),
                from: Sender {
                    id: client.id().as_str().to_string(),
                    user_id: identity.as_ref().and_then(|i| i.user_id).map(|u| u.0),
                    username: identity
                        .as_ref()
                        .map(|i| i.username.clone())
                        .unwrap_or_default(),
                },
                data: arg.data,
            };
            let push = Push::new("publish", to_value(&payload)?);
            let except = arg.exclude_self.then(|| client.id());
            let delivered = state
                .node
                .publish_from(&tag, &push, except)
                .await
                .map_err(node_error)?;
            to_value(&Delivered {
                delivered: delivered as u64,
            })
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
    client: &Arc<Connection>,
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
    to_value(&LoginReply {
        token,
        user: LoginUser {
            id: user.id,
            username: user.username,
            roles: user.roles.iter().map(|r| r.as_str().to_string()).collect(),
        },
    })
}

fn to_value<T: Serialize>(v: &T) -> Result<Value, EventError> {
    serde_json::to_value(v).map_err(|e| EventError::new(code::INTERNAL, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserved_names_are_the_handled_ones_the_pushes_and_the_error_reply() {
        let documented: Vec<String> = docs().into_iter().map(|d| d.name).collect();
        assert_eq!(
            documented, HANDLED,
            "every handled event is documented, in order"
        );
        let mut expected: Vec<&str> = HANDLED.to_vec();
        expected.extend(pushes().iter().map(|p| p.name));
        expected.push(super::super::frame::ERROR_EVENT);
        expected.sort_unstable();
        expected.dedup();
        let mut reserved = RESERVED.to_vec();
        reserved.sort_unstable();
        assert_eq!(reserved, expected);
    }
}
