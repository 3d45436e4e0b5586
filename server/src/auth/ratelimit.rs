//! Failed-login limiter: at most N failures per username+IP per minute.
//!
//! An attempt is counted when it starts, not when its password check ends: [`LoginLimiter::
//! reserve`] admits it only if the failures so far plus the attempts still in flight stay under
//! the limit. Otherwise N guesses sent at once would all be checked before the first failure
//! was recorded. The attempt then ends as a failure (counted), a success (the key is forgotten)
//! or is released (abandoned before a verdict: it was never evaluated).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

const WINDOW: Duration = Duration::from_secs(60);
/// Tracked keys before old ones are pruned; bounds memory under a spray of usernames.
const MAX_KEYS: usize = 100_000;

struct Entry {
    /// Start of the current one-minute window.
    start: Instant,
    /// Failures in that window.
    failures: u32,
    /// Attempts admitted and not yet decided.
    in_flight: u32,
}

/// Counts failures in a fixed one-minute window per key.
pub struct LoginLimiter {
    max_failures: u32,
    entries: Mutex<HashMap<String, Entry>>,
}

impl LoginLimiter {
    /// A limiter allowing `max_failures` per minute.
    pub fn new(max_failures: u32) -> Self {
        LoginLimiter {
            max_failures: max_failures.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn key(username: &str, ip: &str) -> String {
        format!("{}\u{0}{ip}", username.to_lowercase())
    }

    /// Admits an attempt if the failures and the attempts in flight leave room for it; the
    /// caller must end it with [`fail`](Self::fail), [`succeed`](Self::succeed) or
    /// [`release`](Self::release).
    pub fn reserve(&self, username: &str, ip: &str) -> bool {
        let now = Instant::now();
        let mut map = self.entries.lock();
        if map.len() >= MAX_KEYS {
            map.retain(|_, e| e.in_flight > 0 || now.duration_since(e.start) < WINDOW);
            if map.len() >= MAX_KEYS {
                // A spray of that many usernames at once: forgetting is the bounded choice.
                map.clear();
            }
        }
        let e = map.entry(Self::key(username, ip)).or_insert(Entry {
            start: now,
            failures: 0,
            in_flight: 0,
        });
        if now.duration_since(e.start) >= WINDOW {
            e.start = now;
            e.failures = 0;
        }
        if e.failures.saturating_add(e.in_flight) >= self.max_failures {
            return false;
        }
        e.in_flight += 1;
        true
    }

    /// An admitted attempt failed: it now counts as a failure.
    pub fn fail(&self, username: &str, ip: &str) {
        let mut map = self.entries.lock();
        if let Some(e) = map.get_mut(&Self::key(username, ip)) {
            e.in_flight = e.in_flight.saturating_sub(1);
            e.failures = e.failures.saturating_add(1);
        }
    }

    /// An admitted attempt ended without a verdict (the password was not checked).
    pub fn release(&self, username: &str, ip: &str) {
        let mut map = self.entries.lock();
        if let Some(e) = map.get_mut(&Self::key(username, ip)) {
            e.in_flight = e.in_flight.saturating_sub(1);
        }
    }

    /// An admitted attempt succeeded: earlier failures are forgotten.
    pub fn succeed(&self, username: &str, ip: &str) {
        self.entries.lock().remove(&Self::key(username, ip));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifth_failure_blocks_that_pair_only() {
        let l = LoginLimiter::new(5);
        for _ in 0..5 {
            assert!(l.reserve("admin", "1.1.1.1"));
            l.fail("admin", "1.1.1.1");
        }
        assert!(!l.reserve("admin", "1.1.1.1"));
        assert!(!l.reserve("ADMIN", "1.1.1.1"));
        assert!(l.reserve("admin", "2.2.2.2"));
        assert!(l.reserve("bob", "1.1.1.1"));
    }

    #[test]
    fn attempts_in_flight_count_against_the_limit() {
        let l = LoginLimiter::new(5);
        let admitted = (0..40).filter(|_| l.reserve("admin", "1.1.1.1")).count();
        assert_eq!(admitted, 5);
        // A released attempt frees its place; a failed one keeps it.
        l.release("admin", "1.1.1.1");
        assert!(l.reserve("admin", "1.1.1.1"));
        l.fail("admin", "1.1.1.1");
        assert!(!l.reserve("admin", "1.1.1.1"));
    }

    #[test]
    fn success_forgets_and_stray_ends_are_harmless() {
        let l = LoginLimiter::new(2);
        assert!(l.reserve("a", "ip"));
        l.fail("a", "ip");
        assert!(l.reserve("a", "ip"));
        l.succeed("a", "ip");
        assert!(l.reserve("a", "ip"));
        assert!(l.reserve("a", "ip"));
        assert!(!l.reserve("a", "ip"));
        l.release("nobody", "ip");
        l.fail("nobody", "ip");
    }
}
