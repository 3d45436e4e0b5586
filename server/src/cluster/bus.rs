//! Messages between nodes on the Redis bus channel.

use serde::{Deserialize, Serialize};

/// Who a delivery is for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "to", rename_all = "camelCase")]
pub enum Target {
    /// Every connection.
    All,
    /// One connection.
    #[serde(rename_all = "camelCase")]
    Client {
        /// Its id.
        client_id: String,
    },
    /// A user's connections.
    #[serde(rename_all = "camelCase")]
    User {
        /// The user.
        user_id: i64,
    },
    /// A tag's members.
    #[serde(rename_all = "camelCase")]
    Tag {
        /// The tag.
        tag: String,
        /// A connection to skip (`publish` with `excludeSelf`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        except: Option<String>,
    },
}

/// A message on the bus. Requests carrying `req` are answered on the origin's reply channel
/// with how many local connections they reached.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum BusMsg {
    /// Deliver a push. `offset`/`epoch` are appended by the Redis script for stream pushes.
    #[serde(rename_all = "camelCase")]
    Deliver {
        /// Request id for the count reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<String>,
        /// Sending node.
        origin: String,
        /// Recipients.
        #[serde(flatten)]
        target: Target,
        /// Event name.
        event: String,
        /// Payload as raw JSON text, exactly as given (a string so it survives the tagged
        /// enum's buffering unchanged).
        data: String,
        /// Stream name, for stream pushes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stream: Option<String>,
        /// Stream offset.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<u64>,
        /// Stream epoch.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epoch: Option<String>,
    },
    /// Kick connections.
    #[serde(rename_all = "camelCase")]
    Kick {
        /// Request id.
        req: String,
        /// Sending node.
        origin: String,
        /// One connection.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
        /// Or a user's connections.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_id: Option<i64>,
        /// Shown to the client.
        reason: String,
    },
    /// Server-side tag membership.
    #[serde(rename_all = "camelCase")]
    Tag {
        /// Request id.
        req: String,
        /// Sending node.
        origin: String,
        /// Join (true) or quit.
        join: bool,
        /// One connection.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
        /// Or a user's connections.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_id: Option<i64>,
        /// The tag.
        tag: String,
    },
    /// A token was revoked (logout): close its sockets.
    #[serde(rename_all = "camelCase")]
    Revoke {
        /// Token id.
        jti: String,
        /// Its expiry.
        exp: i64,
        /// Its user.
        user_id: i64,
    },
    /// A user changed (roles, password, disabled, tokens revoked): forget the cached state and,
    /// with `close`, close their sockets with that code.
    #[serde(rename_all = "camelCase")]
    User {
        /// The user.
        user_id: i64,
        /// Close code for their sockets, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        close: Option<u16>,
        /// Close reason.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

/// A count reply.
#[derive(Debug, Serialize, Deserialize)]
pub struct Reply {
    /// The request id.
    pub req: String,
    /// Answering node.
    pub node: String,
    /// Connections reached on that node.
    pub n: u64,
}

/// A send command on the queue stream (the hydra api → queue → ws pattern).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct QueueCommand {
    /// `all`, `client`, `user` or `tag`.
    pub to: String,
    /// For `client`.
    #[serde(default)]
    pub client_id: Option<String>,
    /// For `user`.
    #[serde(default)]
    pub user_id: Option<i64>,
    /// For `tag`.
    #[serde(default)]
    pub tag: Option<String>,
    /// Event name.
    pub event: String,
    /// Payload.
    #[serde(default)]
    pub data: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliver_round_trips_with_appended_offset() {
        let head = serde_json::to_string(&BusMsg::Deliver {
            req: Some("n:1".into()),
            origin: "n".into(),
            target: Target::User { user_id: 42 },
            event: "notice".into(),
            data: r#"{"b":1,"a":2}"#.into(),
            stream: Some("user:42".into()),
            offset: None,
            epoch: None,
        })
        .unwrap();
        // What the Redis script does: drop the closing brace, append offset and epoch.
        let full = format!(
            "{},\"offset\":7,\"epoch\":\"e1\"}}",
            &head[..head.len() - 1]
        );
        let back: BusMsg = serde_json::from_str(&full).unwrap();
        match back {
            BusMsg::Deliver {
                target,
                offset,
                epoch,
                data,
                ..
            } => {
                assert_eq!(target, Target::User { user_id: 42 });
                assert_eq!(offset, Some(7));
                assert_eq!(epoch.as_deref(), Some("e1"));
                assert_eq!(data, r#"{"b":1,"a":2}"#);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn queue_commands_are_strict() {
        assert!(
            serde_json::from_str::<QueueCommand>(r#"{"to":"user","userId":1,"event":"n"}"#).is_ok()
        );
        assert!(serde_json::from_str::<QueueCommand>(r#"{"to":"user","userId":1}"#).is_err());
        assert!(
            serde_json::from_str::<QueueCommand>(r#"{"to":"user","event":"n","x":1}"#).is_err()
        );
    }
}
