//! What the accept loop does when `accept` fails.
//!
//! At the open-files limit (`EMFILE` for the process, `ENFILE` for the system) or out of kernel
//! memory, the waiting connection stays in the listen backlog and the listener stays readable,
//! so retrying at once would spin a core at 100% until a descriptor frees up. Instead the loop
//! sleeps, 10 ms at first and twice as long after each further failure up to 500 ms, so it
//! takes new connections again within half a second once sockets close. Each failure is counted
//! (`switchboard_accept_errors_total{kind}`); the log gets one line when an episode starts and
//! one when accepting first works again, not one per failure. Failures less than two seconds
//! apart are one episode, so a shortage that eases one descriptor at a time is not logged as
//! many.
//!
//! A connection the peer reset before it was accepted is that connection's problem alone: it
//! is counted, and the loop goes straight on.

use std::io;
use std::time::Duration;

use tokio::time::Instant;

use crate::metrics::{AcceptErrorKind, Metrics};

/// First pause after a failed accept.
const FIRST_PAUSE: Duration = Duration::from_millis(10);
/// Longest pause: how late, at worst, accepting resumes once descriptors are free.
const MAX_PAUSE: Duration = Duration::from_millis(500);

/// The kind of an accept error, as its metric label says.
pub fn kind_of(e: &io::Error) -> AcceptErrorKind {
    match e.raw_os_error() {
        Some(libc::EMFILE) => AcceptErrorKind::ProcessFiles,
        Some(libc::ENFILE) => AcceptErrorKind::SystemFiles,
        Some(libc::ENOBUFS | libc::ENOMEM) => AcceptErrorKind::Memory,
        _ if matches!(
            e.kind(),
            io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionRefused
        ) =>
        {
            AcceptErrorKind::Aborted
        }
        _ => AcceptErrorKind::Other,
    }
}

/// Failures closer together than this belong to one episode: while descriptors free up one
/// by one, accepts succeed and fail in turn, and that is still the same shortage.
const EPISODE_GAP: Duration = Duration::from_secs(2);

/// The state of the accept loop between failures.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    episode: Option<Episode>,
}

#[derive(Debug)]
struct Episode {
    since: Instant,
    failures: u64,
    pause: Duration,
    /// When the last accept failed.
    last_failure: Instant,
    /// Whether "accepting again" was logged (at the first accept that worked).
    recovered: bool,
}

impl AcceptBackoff {
    /// Records a failed accept; returns how long to wait before the next one.
    pub fn failed(&mut self, e: &io::Error, metrics: &Metrics) -> Duration {
        let kind = kind_of(e);
        metrics.accept_error(kind);
        if kind == AcceptErrorKind::Aborted {
            return Duration::ZERO;
        }
        let now = Instant::now();
        if let Some(ep) = &mut self.episode
            && now.duration_since(ep.last_failure) < EPISODE_GAP
        {
            ep.failures += 1;
            ep.last_failure = now;
            ep.pause = (ep.pause * 2).min(MAX_PAUSE);
            return ep.pause;
        }
        tracing::warn!(
            error = %e,
            kind = kind.label(),
            "accept failed; new connections wait in the backlog until it works again \
             (retrying every {MAX_PAUSE:?} at most)"
        );
        self.episode = Some(Episode {
            since: now,
            failures: 1,
            pause: FIRST_PAUSE,
            last_failure: now,
            recovered: false,
        });
        FIRST_PAUSE
    }

    /// Records a successful accept: the first one after failures is logged, once per episode.
    pub fn accepted(&mut self) {
        let Some(ep) = &mut self.episode else {
            return;
        };
        if !ep.recovered {
            ep.recovered = true;
            tracing::warn!(
                failures = ep.failures,
                lasted = ?ep.since.elapsed(),
                "accepting connections again"
            );
        }
        if ep.last_failure.elapsed() >= EPISODE_GAP {
            self.episode = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_to_the_cap_and_reset_after_a_success() {
        let m = Metrics::default();
        let mut b = AcceptBackoff::default();
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        let pauses: Vec<_> = (0..10).map(|_| b.failed(&emfile, &m)).collect();
        assert_eq!(pauses[0], FIRST_PAUSE);
        assert_eq!(pauses[1], FIRST_PAUSE * 2);
        assert!(pauses.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(*pauses.last().unwrap(), MAX_PAUSE);
        // Still short of descriptors: the episode goes on, and so does the backoff.
        b.accepted();
        assert_eq!(b.failed(&emfile, &m), MAX_PAUSE);
        // A failure long after the last one starts a new episode.
        if let Some(ep) = &mut b.episode {
            ep.last_failure -= EPISODE_GAP;
        }
        b.accepted();
        assert!(b.episode.is_none());
        assert_eq!(b.failed(&emfile, &m), FIRST_PAUSE);
        let reset = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(b.failed(&reset, &m), Duration::ZERO);
        assert!(
            m.render()
                .contains("switchboard_accept_errors_total{kind=\"emfile\"} 12")
        );
    }
}
