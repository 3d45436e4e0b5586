//! Redis presence: per-connection entries changed by one script each.

use super::*;

impl RedisBackend {
    pub(super) fn mode(target: &Target) -> (&'static str, String) {
        match target {
            Target::Client(id) => ("client", id.to_string()),
            Target::User(u) => ("user", u.to_string()),
        }
    }
}

#[async_trait]
impl Presence for RedisBackend {
    async fn attach(&self, attach: Attach, greeting: Greeting) -> Result<(), NodeError> {
        self.ensure_ready()?;
        let client = attach.client.clone();
        let id = client.id().to_string();
        let (tx, rx) = oneshot::channel();
        self.attaching.lock().insert(
            id.clone(),
            PendingAttach {
                client: attach.client,
                reservation: attach.reservation,
                greeting,
                done: tx,
            },
        );
        let mut inv = scripts::ATTACH.prepare_invoke();
        inv.arg(&self.settings.prefix)
            .arg(&self.settings.node)
            .arg(&id)
            .arg(client.info().first_time)
            .arg(Self::row_json(&client))
            .arg(client.user_id().map(|u| u.to_string()).unwrap_or_default())
            .arg(self.settings.max_per_user)
            .arg(crate::websocket::history::new_epoch())
            .arg(META_TTL.as_millis() as u64)
            .arg(token_of(&client).unwrap_or_default())
            .arg("all");
        if let Some(u) = client.user_id() {
            inv.arg(format!("user:{u}"));
        }
        let res: Result<Vec<String>, NodeError> = self.run(&inv).await;
        match res {
            Ok(v) if v.first().map(String::as_str) == Some("ok") => {}
            Ok(_) => {
                self.attaching.lock().remove(&id);
                return Err(NodeError::Limit(LimitError::PerUser));
            }
            Err(e) => {
                self.attaching.lock().remove(&id);
                return Err(e);
            }
        }
        if tokio::time::timeout(APPLY_TIMEOUT, rx).await.is_err() {
            self.attaching.lock().remove(&id);
            self.detach(&client).await;
            return Err(NodeError::Unavailable(
                "this node's Redis subscription did not deliver in time".into(),
            ));
        }
        Ok(())
    }

    async fn detach(&self, client: &Connection) {
        let res: Result<i64, NodeError> = self
            .run(
                scripts::DETACH
                    .prepare_invoke()
                    .arg(&self.settings.prefix)
                    .arg(&self.settings.node)
                    .arg(client.id().as_str()),
            )
            .await;
        if res.is_err() {
            // Swept with the node's lease if Redis stays away; removed at once when it is
            // back and this node resynchronises by closing what it cannot vouch for.
            tracing::debug!(client = %client.id(), "presence removal deferred: Redis unreachable");
        }
    }

    async fn identify(
        &self,
        client: &Arc<Connection>,
        identity: Identity,
    ) -> Result<(), NodeError> {
        self.ensure_ready()?;
        let Some(user) = identity.user_id else {
            self.registry.set_identity(client, identity)?;
            return Ok(());
        };
        let id = client.id().to_string();
        let jti = match &identity.credential {
            switchboard_sdk::Credential::Token { jti, .. } => jti.clone(),
            switchboard_sdk::Credential::ApiKey { .. } => String::new(),
        };
        let mut row = Row::of(client);
        row.tags.clear();
        row.user_id = Some(user.0);
        row.username = identity.username.clone();
        let (tx, rx) = oneshot::channel();
        self.identifying.lock().insert(
            id.clone(),
            PendingIdent {
                client: client.clone(),
                identity,
                done: tx,
            },
        );
        let res: Result<Vec<String>, NodeError> = self
            .run(
                scripts::IDENTIFY
                    .prepare_invoke()
                    .arg(&self.settings.prefix)
                    .arg(&self.settings.node)
                    .arg(&id)
                    .arg(serde_json::to_string(&row).unwrap_or_default())
                    .arg(user.to_string())
                    .arg(self.settings.max_per_user)
                    .arg(crate::websocket::history::new_epoch())
                    .arg(META_TTL.as_millis() as u64)
                    .arg(jti),
            )
            .await;
        let outcome = match res {
            Ok(v) => match v.first().map(String::as_str) {
                Some("ok") => None,
                Some("per_user") => Some(NodeError::Limit(LimitError::PerUser)),
                _ => Some(NodeError::Unavailable("the connection is gone".into())),
            },
            Err(e) => Some(e),
        };
        if let Some(e) = outcome {
            self.identifying.lock().remove(&id);
            return Err(e);
        }
        match tokio::time::timeout(APPLY_TIMEOUT, rx).await {
            Ok(Ok(res)) => Ok(res?),
            _ => {
                self.identifying.lock().remove(&id);
                Err(NodeError::Unavailable(
                    "this node's Redis subscription did not deliver in time".into(),
                ))
            }
        }
    }

    async fn change_tag(&self, join: bool, target: &Target, tag: &Tag) -> Result<usize, NodeError> {
        self.ensure_ready()?;
        let (mode, value) = Self::mode(target);
        let req = self.new_req();
        // A change to one of our own connections is applied by our subscription, in order
        // with the pushes; wait for it so the caller sees it done.
        let own = match target {
            Target::Client(id) => self.registry.get(id).is_some(),
            Target::User(_) => false,
        };
        let rx = own.then(|| {
            let (tx, rx) = oneshot::channel();
            self.tag_waiters.lock().insert(req.clone(), tx);
            rx
        });
        let res: Result<Vec<String>, NodeError> = self
            .run(
                scripts::TAG
                    .prepare_invoke()
                    .arg(&self.settings.prefix)
                    .arg(mode)
                    .arg(value)
                    .arg(tag.as_str())
                    .arg(if join { "1" } else { "0" })
                    .arg(self.settings.max_tags)
                    .arg(crate::websocket::history::new_epoch())
                    .arg(META_TTL.as_millis() as u64)
                    .arg(&req),
            )
            .await;
        let changed = match res {
            Ok(v) if v.first().map(String::as_str) == Some("ok") => {
                v.get(1).and_then(|n| n.parse().ok()).unwrap_or(0)
            }
            Ok(_) => {
                self.tag_waiters.lock().remove(&req);
                return Err(NodeError::TooManyTags(self.settings.max_tags));
            }
            Err(e) => {
                self.tag_waiters.lock().remove(&req);
                return Err(e);
            }
        };
        match rx {
            Some(rx) if changed > 0 => {
                if tokio::time::timeout(APPLY_TIMEOUT, rx).await.is_err() {
                    self.tag_waiters.lock().remove(&req);
                }
            }
            _ => {
                self.tag_waiters.lock().remove(&req);
            }
        }
        Ok(changed)
    }

    async fn disconnect(
        &self,
        target: &Target,
        how: &Disconnect,
    ) -> Result<KickOutcome, NodeError> {
        self.ensure_ready()?;
        let (mode, value) = Self::mode(target);
        let v: Vec<String> = self
            .run(
                scripts::DISCONNECT
                    .prepare_invoke()
                    .arg(&self.settings.prefix)
                    .arg(mode)
                    .arg(value)
                    .arg(serde_json::to_string(&how.reason).unwrap_or_else(|_| "\"\"".into()))
                    .arg(how.code)
                    .arg(how.token.as_deref().unwrap_or("")),
            )
            .await?;
        Ok(KickOutcome {
            closed: v.get(1).and_then(|n| n.parse().ok()).unwrap_or(0),
            users: v
                .iter()
                .skip(2)
                .filter_map(|u| u.parse().ok().map(UserId))
                .collect(),
        })
    }

    async fn user_of(&self, id: &ClientId) -> Result<Option<UserId>, NodeError> {
        self.ensure_ready()?;
        let mut c = self.conn();
        let user: Option<i64> = c.hget(self.key("cuser"), id.as_str()).await.map_err(|e| {
            self.set_reachable(false);
            unavailable(e)
        })?;
        Ok(user.map(UserId))
    }

    async fn online(&self, q: &OnlineQuery) -> Result<OnlinePage, NodeError> {
        self.ensure_ready()?;
        let v: Vec<String> = self
            .run(
                scripts::ONLINE
                    .prepare_invoke()
                    .arg(&self.settings.prefix)
                    .arg(q.user.map(|u| u.to_string()).unwrap_or_default())
                    .arg(q.tag.as_ref().map(|t| t.as_str()).unwrap_or(""))
                    .arg(q.username.as_deref().unwrap_or(""))
                    .arg(q.ip.as_deref().unwrap_or(""))
                    .arg(q.offset())
                    .arg(q.page_size),
            )
            .await?;
        let total = v.first().and_then(|n| n.parse().ok()).unwrap_or(0);
        let mut rows = Vec::new();
        for chunk in v[1.min(v.len())..].chunks(3) {
            let [row, tags, hb] = chunk else { continue };
            let Ok(mut row) = serde_json::from_str::<Row>(row) else {
                continue;
            };
            let mut tags: Vec<String> = tags
                .split(',')
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect();
            tags.sort();
            row.tags = tags;
            if let Ok(hb) = hb.parse() {
                row.heartbeat_time = hb;
            }
            // Our own connections: the freshest heartbeat is in memory.
            if let Some(c) = ClientId::parse(&row.id).and_then(|id| self.registry.get(&id)) {
                row.heartbeat_time = c.heartbeat_time();
            }
            rows.push(row);
        }
        Ok(OnlinePage { rows, total })
    }

    async fn counts(&self) -> Result<Counts, NodeError> {
        self.ensure_ready()?;
        let mut c = self.conn();
        let res: redis::RedisResult<(usize, usize, usize)> = redis::pipe()
            .zcard(self.key("online"))
            .hlen(self.key("users"))
            .zcard(self.key("tags"))
            .query_async(&mut c)
            .await;
        let (connections, users, tags) = res.map_err(|e| {
            self.set_reachable(false);
            unavailable(e)
        })?;
        Ok(Counts {
            connections,
            users,
            tags,
        })
    }

    async fn tag_counts(&self) -> Result<Vec<(String, usize)>, NodeError> {
        self.ensure_ready()?;
        let mut c = self.conn();
        let res: redis::RedisResult<Vec<(String, f64)>> =
            c.zrange_withscores(self.key("tags"), 0, -1).await;
        let mut v: Vec<(String, usize)> = res
            .map_err(|e| {
                self.set_reachable(false);
                unavailable(e)
            })?
            .into_iter()
            .map(|(t, n)| (t, n.max(0.0) as usize))
            .filter(|(_, n)| *n > 0)
            .collect();
        v.sort();
        Ok(v)
    }

    async fn share_figures(&self, own: &NodeFigures) -> Result<(), NodeError> {
        self.write_figures(own).await
    }

    async fn node_figures(&self, own: NodeFigures) -> Result<Vec<NodeFigures>, NodeError> {
        self.ensure_ready()?;
        self.read_figures(own).await
    }
}
