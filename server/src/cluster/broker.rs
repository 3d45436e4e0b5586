//! The Redis broker: publishing through the scripts, recovery from stream history, control
//! messages.

use super::*;

#[async_trait]
impl Broker for RedisBackend {
    async fn publish(
        &self,
        audience: &Audience,
        push: &Push,
        except: Option<&ClientId>,
    ) -> Result<usize, NodeError> {
        self.ensure_ready()?;
        let data = serde_json::to_string(&push.data).map_err(unavailable)?;
        let (to, client_id, user_id, tag) = match audience {
            Audience::All => ("all", None, None, None),
            Audience::Client(id) => ("client", Some(id.to_string()), None, None),
            Audience::User(u) => ("user", None, Some(u.0), None),
            Audience::Tag(t) => ("tag", None, None, Some(t.to_string())),
        };
        let Some(stream) = audience.stream() else {
            let Audience::Client(id) = audience else {
                unreachable!("only a single connection has no stream")
            };
            let msg = serde_json::to_string(&BusMsg::Deliver {
                to: to.into(),
                client_id,
                user_id: None,
                tag: None,
                except: None,
                event: push.event.clone(),
                data,
                stream: None,
                offset: None,
                epoch: None,
            })
            .map_err(unavailable)?;
            let n: i64 = self
                .run(
                    scripts::TO_CLIENT
                        .prepare_invoke()
                        .arg(&self.settings.prefix)
                        .arg(id.as_str())
                        .arg(&self.settings.node)
                        .arg(msg),
                )
                .await?;
            return Ok(match n {
                -1 => self
                    .registry
                    .deliver_client(id, &crate::websocket::registry::encode(push, None)),
                n => n.max(0) as usize,
            });
        };
        let value = user_id
            .map(|u| u.to_string())
            .or_else(|| tag.clone())
            .unwrap_or_default();
        let head = serde_json::to_string(&BusMsg::Deliver {
            to: to.into(),
            client_id: None,
            user_id,
            tag,
            except: except.map(|c| c.to_string()),
            event: push.event.clone(),
            data: data.clone(),
            stream: Some(stream.clone()),
            offset: None,
            epoch: None,
        })
        .map_err(unavailable)?;
        let head = &head[..head.len() - 1];

        let (_, _, n): (u64, String, i64) = self
            .run(
                scripts::PUBLISH
                    .key(self.stream_key(&stream, "offset"))
                    .key(self.stream_key(&stream, "epoch"))
                    .key(self.stream_key(&stream, "history"))
                    .arg(&self.settings.prefix)
                    .arg(crate::websocket::history::new_epoch())
                    .arg(self.settings.history_size)
                    .arg(self.settings.history_ttl.as_millis() as u64)
                    .arg(META_TTL.as_millis() as u64)
                    .arg(&push.event)
                    .arg(&data)
                    .arg(to)
                    .arg(value)
                    .arg(except.map(|c| c.as_str()).unwrap_or(""))
                    .arg(head),
            )
            .await?;
        Ok(n.max(0) as usize)
    }

    async fn recover(&self, client: &Connection, req: RecoverRequest) -> Result<Value, EventError> {
        req.check()?;
        let mut reply = RecoverReply::default();
        let mut c = self.conn();
        for (stream, from) in req.streams {
            if !LocalHub::may_read_stream(client, &stream) {
                reply.forbid(stream);
                continue;
            }
            let now = self.stream_position(&mut c, &stream).await;
            let (current, epoch) = match now {
                Ok((o, e)) => (o.unwrap_or(0), e),
                Err(e) => {
                    client.outbox().release();
                    return Err(EventError::new(
                        code::INTERNAL,
                        format!("the cluster is unavailable: {e}"),
                    ));
                }
            };
            let until = client.stream_mark(&stream).unwrap_or(current).min(current);
            let ok = if epoch.as_deref() != Some(from.epoch.as_str()) || from.offset > current {
                false
            } else if from.offset >= until {
                true
            } else {
                match self
                    .stream_range(&mut c, &stream, &from.epoch, from.offset, until)
                    .await
                {
                    Ok(entries)
                        if entries.len() as u64 == until - from.offset
                            && entries.first().is_some_and(|e| e.0 == from.offset + 1) =>
                    {
                        let min_ms =
                            unix_now() * 1000 - self.settings.history_ttl.as_millis() as i64;
                        let fresh = entries.iter().all(|e| e.1.is_none_or(|t| t >= min_ms));
                        if fresh {
                            for (_, _, frame) in entries {
                                client.send_frame(frame);
                            }
                        }
                        fresh
                    }
                    _ => false,
                }
            };
            reply.set(stream, ok);
        }
        // Replays are queued; held live pushes follow them, in order.
        client.outbox().release();
        Ok(reply.into_value())
    }

    async fn control(&self, msg: Control) -> Result<(), NodeError> {
        let bus = match &msg {
            Control::Revoked { jti, exp, user } => BusMsg::Revoked {
                jti: jti.clone(),
                exp: *exp,
                user_id: user.0,
            },
            Control::UserChanged {
                user,
                close,
                reason,
            } => BusMsg::UserChanged {
                user_id: user.0,
                close: *close,
                reason: reason.clone(),
            },
        };
        let body = serde_json::to_string(&bus).map_err(unavailable)?;
        let mut c = self.conn();
        let sent: redis::RedisResult<()> = c.publish(self.key("all"), body).await;
        if let Err(e) = sent {
            self.set_reachable(false);
            // This node's own sockets still get it.
            apply_control(&self.registry, &self.auth, &msg);
            return Err(unavailable(e));
        }
        Ok(())
    }

    fn is_ready(&self) -> bool {
        self.reachable.load(Ordering::Relaxed) && self.subscribed.load(Ordering::Acquire)
    }

    async fn check(&self) -> bool {
        let mut c = self.conn();
        let ok = tokio::time::timeout(
            Duration::from_secs(2),
            redis::cmd("PING").query_async::<String>(&mut c),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        self.set_reachable(ok);
        ok && self.is_ready()
    }

    fn is_clustered(&self) -> bool {
        true
    }
}
