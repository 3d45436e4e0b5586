//! The audit log: who sent, kicked, changed tags, logged in (or failed to), and changed users
//! and API keys — one row per action in the `audit_log` table, and one `audit` log line.
//!
//! Recording never waits for the database. [`AuditLog::record`] puts the row on a bounded
//! queue that one writer task drains in batches; when the queue is full (the database is down
//! or far slower than the API) the row is not stored, the log line is still written, and
//! `switchboard_audit_dropped_total` counts it. A send therefore costs the same whether or not
//! the database keeps up. Rows older than `audit.retention` are deleted by a background task.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use switchboard_sdk::protocol::unix_now;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::Metrics;

/// Rows waiting for the writer; beyond this, rows are dropped (and counted), never waited for.
pub const QUEUE_CAPACITY: usize = 4096;
/// Rows written in one statement.
const BATCH: usize = 256;
/// Longest stored text per column; longer values are cut (on a character boundary).
const MAX_TEXT: usize = 255;
/// The prune task runs at least this often (more often for a shorter retention).
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The `audit_log` table.
pub mod entity {
    use sea_orm::entity::prelude::*;

    /// One audited action.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_log")]
    pub struct Model {
        /// Id, increasing with time.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// When, unix seconds.
        pub at: i64,
        /// Who: a username, `apikey:<name>` for a backend service, or the name tried at a
        /// failed login.
        pub actor: String,
        /// What (see [`super::action`]).
        pub action: String,
        /// On whom: `all`, `client:<id>`, `user:<id>`, `tag:<name>`, `apikey:<id>`.
        pub target: String,
        /// `ok`, or the error code the caller got.
        pub result: String,
        /// Connections reached, closed or changed (0 where that means nothing).
        pub count: i64,
        /// The caller's IP.
        pub ip: String,
        /// The event of a send, the tag of a tag change, a kick's reason, a login's failure.
        pub detail: String,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The action names stored in `action`.
pub mod action {
    /// A push through the HTTP API.
    pub const SEND: &str = "send";
    /// A kick.
    pub const KICK: &str = "kick";
    /// Connections added to a tag by the API.
    pub const TAG_JOIN: &str = "tag.join";
    /// Connections removed from a tag by the API.
    pub const TAG_QUIT: &str = "tag.quit";
    /// A login (HTTP or socket), successful or not.
    pub const LOGIN: &str = "login";
    /// A user created.
    pub const USER_CREATE: &str = "user.create";
    /// A user's roles, password or enabled flag changed.
    pub const USER_UPDATE: &str = "user.update";
    /// A user deleted.
    pub const USER_DELETE: &str = "user.delete";
    /// An API key created.
    pub const APIKEY_CREATE: &str = "apikey.create";
    /// An API key revoked.
    pub const APIKEY_REVOKE: &str = "apikey.revoke";
}

/// The `result` of a successful action.
pub const OK: &str = "ok";

/// One action to record; build with [`AuditEntry::new`] and the setters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// Who.
    pub actor: String,
    /// What (one of [`action`]).
    pub action: &'static str,
    /// On whom.
    pub target: String,
    /// `ok` or an error code.
    pub result: String,
    /// Connections reached, closed or changed.
    pub count: i64,
    /// The caller's IP.
    pub ip: String,
    /// Extra detail.
    pub detail: String,
}

impl AuditEntry {
    /// A successful `action` by `actor` on `target`.
    pub fn new(actor: &str, action: &'static str, target: impl Into<String>) -> Self {
        AuditEntry {
            actor: actor.to_string(),
            action,
            target: target.into(),
            result: OK.to_string(),
            count: 0,
            ip: String::new(),
            detail: String::new(),
        }
    }
    /// How many connections it concerned.
    pub fn count(mut self, n: usize) -> Self {
        self.count = i64::try_from(n).unwrap_or(i64::MAX);
        self
    }
    /// The caller's IP.
    pub fn ip(mut self, ip: impl Into<String>) -> Self {
        self.ip = ip.into();
        self
    }
    /// Extra detail.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }
    /// The action failed with this code.
    pub fn failed(mut self, code: impl Into<String>) -> Self {
        self.result = code.into();
        self
    }
    /// `ok`, or the error's code, from an API result.
    pub fn outcome<T>(self, res: &Result<T, switchboard_sdk::api::ApiError>) -> Self {
        match res {
            Ok(_) => self,
            Err(e) => {
                let code = e.body().code.clone();
                self.failed(code)
            }
        }
    }
}

fn cut(mut s: String) -> String {
    if s.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// The recorder: cheap to call from any request.
pub struct AuditLog {
    tx: mpsc::Sender<entity::ActiveModel>,
    metrics: Arc<Metrics>,
}

impl AuditLog {
    /// Starts the writer (and, unless `retention` is zero, the prune task); both stop on
    /// `shutdown`, the writer after storing what is queued.
    pub fn start(
        db: DatabaseConnection,
        retention: Duration,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
        tasks: &TaskTracker,
    ) -> Arc<AuditLog> {
        let (log, rx) = Self::with_capacity(QUEUE_CAPACITY, metrics.clone());
        tasks.spawn(write_loop(db.clone(), rx, metrics, shutdown.clone()));
        if !retention.is_zero() {
            tasks.spawn(prune_loop(db, retention, shutdown));
        }
        Arc::new(log)
    }

    fn with_capacity(
        capacity: usize,
        metrics: Arc<Metrics>,
    ) -> (AuditLog, mpsc::Receiver<entity::ActiveModel>) {
        let (tx, rx) = mpsc::channel(capacity);
        (AuditLog { tx, metrics }, rx)
    }

    /// Logs the action (target `audit`) and queues its row; never waits.
    pub fn record(&self, e: AuditEntry) {
        if self.tx.try_send(logged_row(e)).is_err() {
            self.metrics.audit_dropped.inc();
        }
    }
}

/// Logs the action and stores its row at once, for one-shot processes (the CLI) that have no
/// writer task to queue for.
pub async fn record_now(db: &DatabaseConnection, e: AuditEntry) -> Result<(), DbErr> {
    entity::Entity::insert(logged_row(e)).exec(db).await?;
    Ok(())
}

/// Writes the `audit` log line of an entry and turns it into its row.
fn logged_row(e: AuditEntry) -> entity::ActiveModel {
    let AuditEntry {
        actor,
        action,
        target,
        result,
        count,
        ip,
        detail,
    } = e;
    if result == OK {
        tracing::info!(target: "audit", by = %actor, to = %target, count, ip = %ip, detail = %detail, result = %result, "{action}");
    } else {
        tracing::warn!(target: "audit", by = %actor, to = %target, count, ip = %ip, detail = %detail, result = %result, "{action} failed");
    }
    entity::ActiveModel {
        at: Set(unix_now()),
        actor: Set(cut(actor)),
        action: Set(action.to_string()),
        target: Set(cut(target)),
        result: Set(cut(result)),
        count: Set(count),
        ip: Set(cut(ip)),
        detail: Set(cut(detail)),
        ..Default::default()
    }
}

async fn write_loop(
    db: DatabaseConnection,
    mut rx: mpsc::Receiver<entity::ActiveModel>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    return;
                }
                write(&db, &mut batch, &metrics).await;
            }
            _ = stop.cancelled() => {
                // Keep what was recorded before shutdown.
                rx.close();
                while rx.recv_many(&mut batch, BATCH).await > 0 {
                    write(&db, &mut batch, &metrics).await;
                }
                return;
            }
        }
    }
}

async fn write(db: &DatabaseConnection, batch: &mut Vec<entity::ActiveModel>, metrics: &Metrics) {
    let n = batch.len() as u64;
    if let Err(e) = entity::Entity::insert_many(batch.drain(..)).exec(db).await {
        metrics.audit_dropped.add(n);
        tracing::warn!(error = %e, rows = n, "audit rows could not be stored");
    }
}

async fn prune_loop(db: DatabaseConnection, retention: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(retention.clamp(Duration::from_secs(1), PRUNE_EVERY));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let before = unix_now() - i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
        match prune(&db, before).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(rows = n, "pruned old audit rows"),
            Err(e) => tracing::warn!(error = %e, "pruning the audit log failed"),
        }
    }
}

/// Deletes the rows recorded before `before` (unix seconds); returns how many.
pub async fn prune(db: &DatabaseConnection, before: i64) -> Result<u64, DbErr> {
    let res = entity::Entity::delete_many()
        .filter(entity::Column::At.lt(before))
        .exec(db)
        .await?;
    Ok(res.rows_affected)
}

/// Filters and page of [`search`].
#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    /// Page number, from 1.
    pub page: u64,
    /// Rows per page.
    pub page_size: u64,
    /// Exactly this actor.
    pub actor: Option<String>,
    /// Exactly this action.
    pub action: Option<String>,
    /// At or after, unix seconds.
    pub from: Option<i64>,
    /// At or before, unix seconds.
    pub to: Option<i64>,
}

/// One page of matching rows, newest first, and how many match in all.
pub async fn search(
    db: &DatabaseConnection,
    q: &AuditQuery,
) -> Result<(Vec<entity::Model>, u64), DbErr> {
    let mut find = entity::Entity::find();
    if let Some(a) = &q.actor {
        find = find.filter(entity::Column::Actor.eq(a.as_str()));
    }
    if let Some(a) = &q.action {
        find = find.filter(entity::Column::Action.eq(a.as_str()));
    }
    if let Some(f) = q.from {
        find = find.filter(entity::Column::At.gte(f));
    }
    if let Some(t) = q.to {
        find = find.filter(entity::Column::At.lte(t));
    }
    let total = find.clone().count(db).await?;
    let rows = find
        .order_by_desc(entity::Column::Id)
        .offset(q.page.saturating_sub(1).saturating_mul(q.page_size))
        .limit(q.page_size)
        .all(db)
        .await?;
    Ok((rows, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let metrics = Arc::new(Metrics::default());
        let (log, _rx) = AuditLog::with_capacity(2, metrics.clone());
        for _ in 0..5 {
            log.record(AuditEntry::new("admin", action::SEND, "all").count(1));
        }
        assert_eq!(metrics.audit_dropped.get(), 3);
        assert!(
            metrics
                .render()
                .contains("switchboard_audit_dropped_total 3")
        );
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        let s = cut("é".repeat(200));
        assert!(s.len() <= MAX_TEXT && s.chars().all(|c| c == 'é'));
        assert_eq!(cut("short".into()), "short");
    }
}
