//! Failed-login limiter: at most N failures per username+IP per minute.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

const WINDOW: Duration = Duration::from_secs(60);
/// Tracked keys before old ones are pruned; bounds memory under a spray of usernames.
const MAX_KEYS: usize = 100_000;

/// Counts failures in a fixed one-minute window per key.
pub struct LoginLimiter {
    max_failures: u32,
    entries: Mutex<HashMap<String, (Instant, u32)>>,
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

    /// Whether another attempt is allowed now.
    pub fn allowed(&self, username: &str, ip: &str) -> bool {
        let now = Instant::now();
        let map = self.entries.lock();
        match map.get(&Self::key(username, ip)) {
            Some((start, n)) if now.duration_since(*start) < WINDOW => *n < self.max_failures,
            _ => true,
        }
    }

    /// Records a failure.
    pub fn fail(&self, username: &str, ip: &str) {
        let now = Instant::now();
        let mut map = self.entries.lock();
        if map.len() >= MAX_KEYS {
            map.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
            if map.len() >= MAX_KEYS {
                map.clear();
            }
        }
        let e = map.entry(Self::key(username, ip)).or_insert((now, 0));
        if now.duration_since(e.0) >= WINDOW {
            *e = (now, 0);
        }
        e.1 += 1;
    }

    /// Forgets failures after a success.
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
            assert!(l.allowed("admin", "1.1.1.1"));
            l.fail("admin", "1.1.1.1");
        }
        assert!(!l.allowed("admin", "1.1.1.1"));
        assert!(!l.allowed("ADMIN", "1.1.1.1"));
        assert!(l.allowed("admin", "2.2.2.2"));
        assert!(l.allowed("bob", "1.1.1.1"));
    }
}
