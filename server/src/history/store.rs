//! The tables behind durable history: `stream_positions` (epoch and last offset per stream),
//! `stream_entries` (the kept pushes, as sent) and `stream_history_runs` (one row: the run that
//! last opened the history and whether it stopped cleanly). Plain sea-query statements, so the
//! same code serves SQLite, PostgreSQL and MySQL.

use std::collections::HashMap;
use std::time::Duration;

use crate::websocket::outbox::Outbound;
use bytes::Bytes;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::websocket::history::{Change, Restored};

const POSITIONS: &str = "stream_positions";
const ENTRIES: &str = "stream_entries";
const RUNS: &str = "stream_history_runs";
/// Rows per INSERT: 5 values each stays far below every backend's bind-parameter limit.
const INSERT_CHUNK: usize = 200;

fn t(name: &str) -> Alias {
    Alias::new(name)
}

fn c(name: &str) -> Alias {
    Alias::new(name)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// How the previous run ended, as the runs row says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LastRun {
    /// No run has opened durable history in this database yet.
    None,
    /// Run `run` stopped after its last flush.
    Clean,
    /// Run `run` never recorded a clean stop (crash, kill, power loss, failed last flush).
    Unclean(String),
}

/// Reads the runs row.
pub async fn last_run(db: &DatabaseConnection) -> Result<LastRun, DbErr> {
    let q = Query::select()
        .columns([c("run"), c("clean")])
        .from(t(RUNS))
        .and_where(Expr::col(c("id")).eq(1))
        .to_owned();
    Ok(match db.query_one(&q).await? {
        None => LastRun::None,
        Some(row) => {
            let clean: bool = row.try_get("", "clean")?;
            let run: String = row.try_get("", "run")?;
            if clean {
                LastRun::Clean
            } else {
                LastRun::Unclean(run)
            }
        }
    })
}

/// Records that `run` holds the history (`clean = false`) or stopped cleanly (`true`).
pub async fn set_run<C: ConnectionTrait>(db: &C, run: &str, clean: bool) -> Result<(), DbErr> {
    let q = Query::insert()
        .into_table(t(RUNS))
        .columns([c("id"), c("run"), c("clean"), c("updated_at")])
        .values_panic([1.into(), run.into(), clean.into(), now_ms().into()])
        .on_conflict(
            OnConflict::column(c("id"))
                .update_columns([c("run"), c("clean"), c("updated_at")])
                .to_owned(),
        )
        .to_owned();
    db.execute(&q).await.map(|_| ())
}

/// Every stored stream with its entries (consecutive, ending at its offset; anything else in
/// the table is left out), and the age of each entry.
pub async fn load(db: &DatabaseConnection) -> Result<Vec<(String, Restored)>, DbErr> {
    let q = Query::select()
        .columns([c("stream"), c("epoch"), c("last_offset")])
        .from(t(POSITIONS))
        .to_owned();
    let mut streams: HashMap<String, Restored> = HashMap::new();
    for row in db.query_all(&q).await? {
        let stream: String = row.try_get("", "stream")?;
        let epoch: String = row.try_get("", "epoch")?;
        let offset: i64 = row.try_get("", "last_offset")?;
        streams.insert(
            stream,
            Restored {
                epoch,
                offset: u64::try_from(offset).unwrap_or(0),
                entries: Vec::new(),
            },
        );
    }
    let q = Query::select()
        .columns([
            c("stream"),
            c("entry_offset"),
            c("created_ms"),
            c("is_binary"),
            c("frame"),
        ])
        .from(t(ENTRIES))
        .order_by(c("stream"), sea_orm::sea_query::Order::Asc)
        .order_by(c("entry_offset"), sea_orm::sea_query::Order::Asc)
        .to_owned();
    let now = now_ms();
    for row in db.query_all(&q).await? {
        let stream: String = row.try_get("", "stream")?;
        let Some(st) = streams.get_mut(&stream) else {
            continue;
        };
        let offset: i64 = row.try_get("", "entry_offset")?;
        let created: i64 = row.try_get("", "created_ms")?;
        let binary: bool = row.try_get("", "is_binary")?;
        let bytes: Vec<u8> = row.try_get("", "frame")?;
        let offset = u64::try_from(offset).unwrap_or(0);
        if offset > st.offset {
            continue;
        }
        let frame = if binary {
            Outbound::Binary(Bytes::from(bytes))
        } else {
            match Utf8Bytes::try_from(bytes) {
                Ok(t) => Outbound::Text(t),
                Err(_) => continue,
            }
        };
        // Only a run of consecutive offsets can be replayed; a hole restarts the run.
        if st.entries.last().is_some_and(|(o, _, _)| o + 1 != offset) {
            st.entries.clear();
        }
        let age = Duration::from_millis(u64::try_from(now.saturating_sub(created)).unwrap_or(0));
        st.entries.push((offset, age, frame));
    }
    for st in streams.values_mut() {
        if st.entries.last().is_some_and(|(o, _, _)| *o != st.offset) {
            st.entries.clear();
        }
    }
    Ok(streams.into_iter().collect())
}

/// Gives `streams` new epochs (keeping their offsets) and drops their entries, in one
/// transaction with recording `run` as the holder of the history.
pub async fn begin_run(
    db: &DatabaseConnection,
    run: &str,
    new_epochs: &[(String, String)],
) -> Result<(), DbErr> {
    let txn = db.begin().await?;
    for (stream, epoch) in new_epochs {
        let q = Query::update()
            .table(t(POSITIONS))
            .value(c("epoch"), epoch.as_str())
            .and_where(Expr::col(c("stream")).eq(stream.as_str()))
            .to_owned();
        txn.execute(&q).await?;
        let q = Query::delete()
            .from_table(t(ENTRIES))
            .and_where(Expr::col(c("stream")).eq(stream.as_str()))
            .to_owned();
        txn.execute(&q).await?;
    }
    set_run(&txn, run, false).await?;
    txn.commit().await
}

/// Stores a batch of changes in one transaction (group commit).
pub async fn write(db: &DatabaseConnection, changes: &[Change]) -> Result<(), DbErr> {
    let txn = db.begin().await?;
    let now = now_ms();
    let mut rows: Vec<[sea_orm::sea_query::SimpleExpr; 5]> = Vec::new();
    for change in changes {
        let stream = &*change.stream;
        let Some(s) = &change.state else {
            for table in [ENTRIES, POSITIONS] {
                let q = Query::delete()
                    .from_table(t(table))
                    .and_where(Expr::col(c("stream")).eq(stream))
                    .to_owned();
                txn.execute(&q).await?;
            }
            continue;
        };
        let q = Query::insert()
            .into_table(t(POSITIONS))
            .columns([c("stream"), c("epoch"), c("last_offset")])
            .values_panic([stream.into(), (&*s.epoch).into(), (s.offset as i64).into()])
            .on_conflict(
                OnConflict::column(c("stream"))
                    .update_columns([c("epoch"), c("last_offset")])
                    .to_owned(),
            )
            .to_owned();
        txn.execute(&q).await?;
        // Entries that left history, and any newer than what this epoch stored (a stream
        // forgotten and begun again), go.
        let q = Query::delete()
            .from_table(t(ENTRIES))
            .and_where(Expr::col(c("stream")).eq(stream))
            .and_where(
                Expr::col(c("entry_offset"))
                    .lt(s.first_kept as i64)
                    .or(Expr::col(c("entry_offset")).gt(s.persisted as i64)),
            )
            .to_owned();
        txn.execute(&q).await?;
        for (offset, age, frame) in &s.entries {
            let (binary, bytes) = match frame {
                Outbound::Text(t) => (false, t.as_bytes().to_vec()),
                Outbound::Binary(b) => (true, b.to_vec()),
            };
            rows.push([
                stream.into(),
                (*offset as i64).into(),
                (now - age.as_millis() as i64).into(),
                binary.into(),
                bytes.into(),
            ]);
        }
    }
    for chunk in rows.chunks(INSERT_CHUNK) {
        let mut q = Query::insert();
        q.into_table(t(ENTRIES)).columns([
            c("stream"),
            c("entry_offset"),
            c("created_ms"),
            c("is_binary"),
            c("frame"),
        ]);
        for row in chunk {
            q.values_panic(row.iter().cloned());
        }
        txn.execute(&q).await?;
    }
    txn.commit().await
}

/// Deletes entries created before `cutoff_ms`; returns how many went.
pub async fn prune(db: &DatabaseConnection, cutoff_ms: i64) -> Result<u64, DbErr> {
    let q = Query::delete()
        .from_table(t(ENTRIES))
        .and_where(Expr::col(c("created_ms")).lt(cutoff_ms))
        .to_owned();
    Ok(db.execute(&q).await?.rows_affected())
}
