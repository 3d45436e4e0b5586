//! Durable delivery streams on a single node (`history.durable`): stream epochs, offsets and
//! the bounded history survive a restart, in the server's database.
//!
//! Memory stays where delivery and recovery happen ([`MemoryHistory`]); the database is read
//! once, at start. A writer task takes the streams changed since its last turn every
//! `history.flush_interval` and stores them in one transaction (group commit). Nothing queues
//! between a push and the writer: a push marks its stream dirty, and the writer copies what the
//! memory history still holds. A database slower than the pushes therefore costs only entries
//! that left the in-memory history before the writer reached them — entries no recovery could
//! have replayed anyway — never delivery time and never memory beyond the history's bounds.
//!
//! Epochs after a stop:
//! - a clean stop (SIGTERM, ctrl-c) seals the history, flushes it and records the run as clean:
//!   every stream keeps its epoch and offset;
//! - otherwise the last flush interval may be missing. Before a stream's first push since the
//!   writer last took it reached a socket, the intent file ([`intent`]) declared it with that
//!   push's offset; a stream declared beyond the offset the database holds gets a new epoch
//!   (offsets continue), every other stream keeps its own — including streams pushed to earlier
//!   in the run whose pushes were all stored. When the file cannot vouch for the run (missing,
//!   another run's, written before a reboot), every stream gets a new epoch.
//!
//! A client's `recover` therefore either replays everything it missed or answers `false`
//! because the epoch changed; it never skips a push silently and never sees an offset reused
//! in the same epoch.

pub mod intent;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::HistoryConfig;
use crate::websocket::history::{MemoryHistory, new_epoch};
use store::LastRun;

/// Longest pause between two prunes of expired entries in the database.
const PRUNE_EVERY: Duration = Duration::from_secs(10);

/// Why durable history could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The database refused a read or write.
    #[error("durable history: database: {0}")]
    Database(#[from] sea_orm::DbErr),
    /// The intent file could not be written.
    #[error("durable history: {path}: {error}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        error: std::io::Error,
    },
}

/// The durable side of this node's history.
pub struct DurableHistory {
    db: DatabaseConnection,
    history: Arc<MemoryHistory>,
    intent: Arc<intent::IntentFile>,
    run: String,
    flush_interval: Duration,
    /// Serialises flushes: the writer task's and the last one at shutdown.
    flushing: tokio::sync::Mutex<()>,
}

/// What start-up found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Opened {
    /// Streams loaded from the database.
    pub streams: usize,
    /// Of those, streams given a new epoch because the previous run did not stop cleanly.
    pub new_epochs: usize,
}

impl DurableHistory {
    /// Loads the stored history into a new [`MemoryHistory`], giving new epochs where the
    /// previous run may have lost pushes, and starts this run's intent file.
    pub async fn open(
        db: DatabaseConnection,
        cfg: &HistoryConfig,
        data_dir: &std::path::Path,
    ) -> Result<(Arc<DurableHistory>, Opened), OpenError> {
        let run = format!("{}-{}", store::now_ms(), new_epoch());
        let boot = intent::boot_id().unwrap_or_else(|| "unknown".into());
        let last = store::last_run(&db).await?;
        // `Ok(None)`: nothing can have been lost; `Err(())`: the file cannot say which streams
        // were written, so all of them may have been.
        let previous: Result<Option<intent::Previous>, ()> = match &last {
            LastRun::None | LastRun::Clean => Ok(None),
            LastRun::Unclean(prev) => match intent::read_previous(data_dir) {
                Some(p) if &p.run == prev && p.boot == boot && boot != "unknown" => Ok(Some(p)),
                _ => Err(()),
            },
        };
        let stored = store::load(&db).await?;
        let mut new_epochs = Vec::new();
        let mut loaded = Vec::with_capacity(stored.len());
        for (stream, mut restored) in stored {
            let suspect = match &previous {
                Ok(None) => false,
                Ok(Some(p)) => p.may_have_lost(&stream, restored.offset),
                Err(()) => true,
            };
            if suspect {
                restored.epoch = new_epoch();
                restored.entries.clear();
                new_epochs.push((stream.clone(), restored.epoch.clone()));
            }
            loaded.push((stream, restored));
        }
        // The new epochs are stored before anyone sees them: a second crash must not bring
        // the old ones back.
        store::begin_run(&db, &run, &new_epochs).await?;
        let file =
            intent::IntentFile::create(data_dir, &run, &boot).map_err(|error| OpenError::File {
                path: data_dir.join(intent::FILE_NAME).display().to_string(),
                error,
            })?;
        let intent = Arc::new(file);
        let history = Arc::new(MemoryHistory::durable(
            cfg.size,
            cfg.ttl,
            cfg.max_bytes,
            intent.clone(),
        ));
        let opened = Opened {
            streams: loaded.len(),
            new_epochs: new_epochs.len(),
        };
        for (stream, restored) in loaded {
            history.restore(&stream, restored);
        }
        if let LastRun::Unclean(_) = last {
            tracing::warn!(
                streams = opened.streams,
                new_epochs = opened.new_epochs,
                "the previous run did not stop cleanly: streams that may have lost pushes get new epochs"
            );
        }
        Ok((
            Arc::new(DurableHistory {
                db,
                history,
                intent,
                run,
                flush_interval: cfg.flush_interval,
                flushing: tokio::sync::Mutex::new(()),
            }),
            opened,
        ))
    }

    /// The in-memory history that delivery and recovery use.
    pub fn history(&self) -> &Arc<MemoryHistory> {
        &self.history
    }

    /// Stores what changed since the last flush; on failure the changes are taken again by
    /// the next one.
    pub async fn flush(&self) -> Result<usize, sea_orm::DbErr> {
        let _turn = self.flushing.lock().await;
        let changes = self.history.take_changes();
        if changes.is_empty() {
            return Ok(0);
        }
        match store::write(&self.db, &changes).await {
            Ok(()) => {
                let mut covered = Vec::with_capacity(changes.len());
                for ch in &changes {
                    if let Some(s) = &ch.state {
                        self.history.stored(&ch.stream, &s.epoch, s.offset);
                        covered.push((&*ch.stream, s.offset));
                    }
                }
                self.intent.stored(&covered);
                Ok(changes.len())
            }
            Err(e) => {
                let names: Vec<_> = changes.into_iter().map(|c| c.stream).collect();
                self.history.retry(&names);
                Err(e)
            }
        }
    }

    /// Deletes stored entries older than the ttl.
    pub async fn prune(&self) -> Result<u64, sea_orm::DbErr> {
        let ttl_ms = self.history.ttl().as_millis().min(i64::MAX as u128) as i64;
        store::prune(&self.db, store::now_ms().saturating_sub(ttl_ms)).await
    }

    /// Runs the writer and the pruner until `stop`; the last flush is [`DurableHistory::close`]'s.
    pub fn start(self: &Arc<Self>, stop: CancellationToken, tasks: &TaskTracker) {
        let me = self.clone();
        let stop_writer = stop.clone();
        tasks.spawn(async move {
            let mut failing = false;
            loop {
                tokio::select! {
                    _ = stop_writer.cancelled() => return,
                    _ = tokio::time::sleep(me.flush_interval) => {}
                }
                match me.flush().await {
                    Ok(_) if failing => {
                        failing = false;
                        tracing::info!("durable history: writes succeed again");
                    }
                    Ok(_) => {}
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "durable history: a flush failed; retrying every flush interval");
                    }
                    Err(_) => {}
                }
            }
        });
        let me = self.clone();
        let every = self.history.ttl().min(PRUNE_EVERY).max(self.flush_interval);
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                if let Err(e) = me.prune().await {
                    tracing::warn!(error = %e, "durable history: pruning expired entries failed");
                }
            }
        });
    }

    /// The clean stop: seals the history, flushes everything and records the run as clean.
    /// When a push arrived after the seal or the flush failed, the run stays unclean and the
    /// next start treats its streams as possibly behind. Returns whether it was recorded clean.
    pub async fn close(&self) -> bool {
        self.history.seal();
        if let Err(e) = self.flush().await {
            tracing::warn!(error = %e, "durable history: the last flush failed; streams written in this run get new epochs at the next start");
            return false;
        }
        if self.history.late() {
            tracing::warn!(
                "durable history: pushes arrived after the last flush began; streams written in this run get new epochs at the next start"
            );
            return false;
        }
        match store::set_run(&self.db, &self.run, true).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "durable history: recording the clean stop failed");
                false
            }
        }
    }
}
