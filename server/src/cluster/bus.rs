//! This node's subscription: everything Redis routes to its sockets, applied in order.

use super::*;

/// A message on a node's channels. Pushes are built here; the membership messages are built
/// by the scripts.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub(super) enum BusMsg {
    /// Deliver a push. `offset`/`epoch` are appended by the publish script for stream pushes.
    #[serde(rename_all = "camelCase")]
    Deliver {
        /// `all`, `client`, `user` or `tag`.
        to: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_id: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tag: Option<String>,
        /// A connection to skip (`publish` with `excludeSelf`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        except: Option<String>,
        event: String,
        /// Payload as raw JSON text, exactly as given (a string, so it survives the tagged
        /// enum's buffering unchanged).
        data: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stream: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epoch: Option<String>,
    },
    /// One of this node's connections became present at these stream positions.
    Attach {
        id: String,
        pos: Vec<(String, u64, String)>,
    },
    /// One of this node's connections logged in.
    Ident {
        id: String,
        pos: Vec<(String, u64, String)>,
    },
    /// One of this node's connections joined or quit a tag.
    Tag {
        id: String,
        tag: String,
        join: bool,
        pos: (String, u64, String),
        req: String,
    },
    /// Close these connections (4001: a kick).
    Close {
        ids: Vec<String>,
        reason: String,
        code: u16,
    },
    /// A token was revoked.
    #[serde(rename_all = "camelCase")]
    Revoked { jti: String, exp: i64, user_id: i64 },
    /// A user changed.
    #[serde(rename_all = "camelCase")]
    UserChanged {
        user_id: i64,
        #[serde(default)]
        close: Option<u16>,
        reason: String,
    },
}

pub(super) struct PendingAttach {
    pub(super) client: Arc<Connection>,
    pub(super) reservation: Reservation,
    pub(super) greeting: Greeting,
    pub(super) done: oneshot::Sender<()>,
}

pub(super) struct PendingIdent {
    pub(super) client: Arc<Connection>,
    pub(super) identity: Identity,
    pub(super) done: oneshot::Sender<Result<(), LimitError>>,
}

/// Encodes a push whose data is raw JSON text (from the bus or Redis history).
pub(super) fn encode_raw(
    event: &str,
    data: &str,
    pos: Option<(&str, u64, &str)>,
) -> Option<Outbound> {
    let raw: Box<RawValue> = match data.trim() {
        "" => RawValue::NULL.to_owned(),
        d => RawValue::from_string(d.to_string()).ok()?,
    };
    let mut env = Envelope::new(event, &*raw);
    if let Some((stream, offset, epoch)) = pos {
        env.stream = Some(stream);
        env.offset = Some(offset);
        env.epoch = Some(epoch);
    }
    Some(Outbound::encode(&env, false))
}

/// The audience whose stream `stream` is (the inverse of [`Audience::stream`]).
pub(super) fn stream_audience(stream: &str) -> Option<Audience> {
    if stream == "all" {
        return Some(Audience::All);
    }
    if let Some(u) = stream.strip_prefix("user:") {
        return u.parse().ok().map(|u| Audience::User(UserId(u)));
    }
    stream
        .strip_prefix("tag:")
        .and_then(|t| Tag::parse(t).ok())
        .map(Audience::Tag)
}

impl RedisBackend {
    /// Reads this node's channels; reconnects with backoff and catches up from history.
    pub(super) async fn run_bus(self: Arc<Self>, stop: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        let mut first = true;
        let channels = [
            self.key(&format!("node:{}", self.settings.node)),
            self.key("all"),
        ];
        loop {
            if stop.is_cancelled() {
                return;
            }
            if let Ok(mut pubsub) = self.client.get_async_pubsub().await {
                if pubsub.subscribe(&channels).await.is_ok() {
                    backoff = Duration::from_millis(100);
                    if !first {
                        self.catch_up().await;
                        self.reconcile().await;
                    }
                    first = false;
                    self.subscribed.store(true, Ordering::Release);
                    self.set_reachable(true);
                    let mut messages = pubsub.on_message();
                    loop {
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            msg = messages.next() => match msg {
                                Some(m) => {
                                    if let Ok(payload) = m.get_payload::<String>() {
                                        self.on_message(&payload);
                                    }
                                }
                                None => break,
                            }
                        }
                    }
                    tracing::warn!("lost the Redis subscription; resubscribing");
                }
            }
            self.subscribed.store(false, Ordering::Release);
            self.set_reachable(false);
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    fn already_delivered(&self, stream: &str, offset: u64, epoch: &str) -> bool {
        self.seen
            .lock()
            .get(stream)
            .is_some_and(|(o, e)| e == epoch && offset <= *o)
    }

    /// Records the newest position of a stream this node has applied. The subscription is
    /// applied in order, so everything at or below it has been handled here.
    pub(super) fn saw(&self, stream: &str, offset: u64, epoch: &str) {
        let mut seen = self.seen.lock();
        match seen.get_mut(stream) {
            Some((o, e)) if e == epoch => *o = (*o).max(offset),
            Some(entry) => *entry = (offset, epoch.to_string()),
            None => {
                seen.insert(stream.to_string(), (offset, epoch.to_string()));
            }
        }
    }

    fn has_local_recipients(&self, owner: &Audience) -> bool {
        match owner {
            Audience::All => self.registry.counts().0 > 0,
            Audience::Client(id) => self.registry.get(id).is_some(),
            Audience::User(u) => !self.registry.user_clients(*u).is_empty(),
            Audience::Tag(t) => !self.registry.tag_members(t).is_empty(),
        }
    }

    /// After Redis was unreachable: connections that closed meanwhile could not leave presence;
    /// remove the ones this node no longer holds.
    async fn reconcile(&self) {
        let mut c = self.conn();
        let listed: Vec<String> = match c
            .smembers(self.key(&format!("nc:{}", self.settings.node)))
            .await
        {
            Ok(v) => v,
            Err(_) => return,
        };
        let mut removed = 0;
        for id in listed {
            // Connections being attached are present before this node indexes them.
            let held = self.attaching.lock().contains_key(&id)
                || ClientId::parse(&id).is_some_and(|cid| self.registry.get(&cid).is_some());
            if !held {
                let gone: Result<i64, NodeError> = self
                    .run(
                        scripts::DETACH
                            .prepare_invoke()
                            .arg(&self.settings.prefix)
                            .arg(&self.settings.node)
                            .arg(&id),
                    )
                    .await;
                removed += gone.unwrap_or(0);
            }
        }
        if removed > 0 {
            tracing::info!(
                connections = removed,
                "removed presence of connections that closed while Redis was away"
            );
        }
    }

    /// After a lost subscription: replays from history what this node's sockets missed.
    async fn catch_up(&self) {
        let snapshot: Vec<(String, (u64, String))> = self
            .seen
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut c = self.conn();
        let mut replayed = 0usize;
        for (stream, (seen, epoch)) in snapshot {
            let Some(owner) = stream_audience(&stream) else {
                continue;
            };
            if !self.has_local_recipients(&owner) {
                self.seen.lock().remove(&stream);
                continue;
            }
            let Ok((Some(current), Some(current_epoch))) =
                self.stream_position(&mut c, &stream).await
            else {
                continue;
            };
            if current_epoch != epoch || current <= seen {
                continue;
            }
            let Ok(entries) = self
                .stream_range(&mut c, &stream, &epoch, seen, current)
                .await
            else {
                continue;
            };
            for (offset, _, frame) in entries {
                replayed += self
                    .registry
                    .deliver_positioned(&owner, &frame, &stream, offset, None);
                self.saw(&stream, offset, &epoch);
            }
        }
        if replayed > 0 {
            tracing::info!(
                deliveries = replayed,
                "caught up from history after resubscribing"
            );
        }
    }

    /// Applies one message from this node's channels.
    pub(super) fn on_message(&self, payload: &str) {
        let msg: BusMsg = match serde_json::from_str(payload) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring a malformed bus message");
                return;
            }
        };
        match msg {
            BusMsg::Deliver {
                to,
                client_id,
                user_id,
                tag,
                except,
                event,
                data,
                stream,
                offset,
                epoch,
            } => match (stream, offset, epoch) {
                (Some(stream), Some(offset), Some(epoch)) => {
                    let owner = match to.as_str() {
                        "all" => Some(Audience::All),
                        "user" => user_id.map(|u| Audience::User(UserId(u))),
                        "tag" => tag
                            .as_deref()
                            .and_then(|t| Tag::parse(t).ok())
                            .map(Audience::Tag),
                        _ => None,
                    };
                    let (Some(owner), Some(frame)) = (
                        owner,
                        encode_raw(&event, &data, Some((&stream, offset, &epoch))),
                    ) else {
                        return;
                    };
                    if self.already_delivered(&stream, offset, &epoch) {
                        // Replayed by a catch-up that raced with the subscription.
                        return;
                    }
                    let except = except.as_deref().and_then(ClientId::parse);
                    self.registry.deliver_positioned(
                        &owner,
                        &frame,
                        &stream,
                        offset,
                        except.as_ref(),
                    );
                    self.saw(&stream, offset, &epoch);
                }
                _ => {
                    if let (Some(id), Some(frame)) = (
                        client_id.as_deref().and_then(ClientId::parse),
                        encode_raw(&event, &data, None),
                    ) {
                        self.registry.deliver_client(&id, &frame);
                    }
                }
            },
            BusMsg::Attach { id, pos } => {
                let Some(p) = self.attaching.lock().remove(&id) else {
                    return;
                };
                let mut positions = serde_json::Map::new();
                for (stream, offset, epoch) in &pos {
                    p.client.set_stream_mark(stream, *offset);
                    self.saw(stream, *offset, epoch);
                    positions.insert(
                        stream.clone(),
                        serde_json::json!({"offset": offset, "epoch": epoch}),
                    );
                }
                p.client
                    .send_success("connected", &(p.greeting)(Value::Object(positions)));
                self.registry.register(p.client, p.reservation);
                let _ = p.done.send(());
            }
            BusMsg::Ident { id, pos } => {
                let Some(p) = self.identifying.lock().remove(&id) else {
                    return;
                };
                let old = p.client.user_id().map(|u| format!("user:{u}"));
                let res = self.registry.set_identity(&p.client, p.identity);
                if res.is_ok() {
                    if let Some(old) = old {
                        p.client.clear_stream_mark(&old);
                    }
                    for (stream, offset, epoch) in &pos {
                        p.client.set_stream_mark(stream, *offset);
                        self.saw(stream, *offset, epoch);
                    }
                }
                let _ = p.done.send(res);
            }
            BusMsg::Tag {
                id,
                tag,
                join,
                pos,
                req,
            } => {
                if let (Some(cid), Ok(tag)) = (ClientId::parse(&id), Tag::parse(&tag)) {
                    let stream = pos.0;
                    if join {
                        if self.registry.join(&cid, tag).is_ok() {
                            if let Some(c) = self.registry.get(&cid) {
                                c.set_stream_mark(&stream, pos.1);
                            }
                            self.saw(&stream, pos.1, &pos.2);
                        }
                    } else if self.registry.quit(&cid, &tag).is_ok() {
                        if let Some(c) = self.registry.get(&cid) {
                            c.clear_stream_mark(&stream);
                        }
                    }
                }
                if let Some(w) = self.tag_waiters.lock().remove(&req) {
                    let _ = w.send(());
                }
            }
            BusMsg::Close { ids, reason, code } => {
                for id in ids {
                    if let Some(c) = ClientId::parse(&id).and_then(|id| self.registry.get(&id)) {
                        c.disconnect(code, &reason);
                    }
                }
            }
            BusMsg::Revoked { jti, exp, user_id } => apply_control(
                &self.registry,
                &self.auth,
                &Control::Revoked {
                    jti,
                    exp,
                    user: UserId(user_id),
                },
            ),
            BusMsg::UserChanged {
                user_id,
                close,
                reason,
            } => apply_control(
                &self.registry,
                &self.auth,
                &Control::UserChanged {
                    user: UserId(user_id),
                    close,
                    reason,
                },
            ),
        }
    }
}

pub(super) fn stream_entry_offset(id: &str) -> u64 {
    id.split('-')
        .next()
        .and_then(|o| o.parse().ok())
        .unwrap_or(0)
}
