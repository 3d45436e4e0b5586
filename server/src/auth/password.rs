//! argon2id password hashing, off the async executor, behind a bounded queue.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// argon2id needs 19 MiB of working memory per hash: at most this many run at once, so a login
/// burst costs bounded memory (and does not exhaust the blocking pool).
pub const CONCURRENT_HASHES: usize = 2;
/// Login checks that may wait for a hashing slot. A login arriving when this many already wait
/// is answered "busy" at once: waiting longer would only make every login slow.
pub const MAX_WAITING_LOGINS: usize = 32;
/// Longest a login check waits for a hashing slot before it is answered "busy".
pub const QUEUE_DEADLINE: Duration = Duration::from_secs(2);

static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(CONCURRENT_HASHES);
static WAITING: AtomicUsize = AtomicUsize::new(0);
/// A running average of how long one verification takes, in microseconds, so a login for an
/// unknown user can take as long without hashing anything.
static VERIFY_MICROS: AtomicU64 = AtomicU64::new(0);

/// The hashing queue is full or its deadline passed: retry shortly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many logins in progress; retry in a moment")]
pub struct Busy;

/// Hashes a password into a PHC string (user creation, password changes: authenticated
/// admin work, which waits for a slot rather than being refused).
pub async fn hash(password: String) -> Result<String, String> {
    let _permit = HASHING.acquire().await.map_err(|e| e.to_string())?;
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Leaves the waiting count when dropped, however the wait ends.
struct Waiting;

impl Drop for Waiting {
    fn drop(&mut self) {
        WAITING.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Verifies a password against a PHC string; a malformed hash is a mismatch. Refused with
/// [`Busy`] when [`MAX_WAITING_LOGINS`] already wait or no slot frees within
/// [`QUEUE_DEADLINE`].
pub async fn verify(password: String, phc: String) -> Result<bool, Busy> {
    let permit = {
        if WAITING.fetch_add(1, Ordering::AcqRel) >= MAX_WAITING_LOGINS {
            WAITING.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy);
        }
        let _waiting = Waiting;
        match tokio::time::timeout(QUEUE_DEADLINE, HASHING.acquire()).await {
            Ok(Ok(p)) => p,
            _ => return Err(Busy),
        }
    };
    let result = tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        let ok = PasswordHash::new(&phc)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false);
        record_verify_time(start.elapsed());
        ok
    })
    .await
    .unwrap_or(false);
    drop(permit);
    Ok(result)
}

fn record_verify_time(took: Duration) {
    let sample = took.as_micros().min(u64::MAX as u128) as u64;
    let old = VERIFY_MICROS.load(Ordering::Relaxed);
    let new = if old == 0 {
        sample
    } else {
        (old * 7 + sample) / 8
    };
    VERIFY_MICROS.store(new, Ordering::Relaxed);
}

/// Takes about as long as a verification, without hashing and without a slot: the answer for
/// an unknown username. A flood of made-up usernames thus costs no hashing and cannot queue
/// ahead of real users, while the time still does not tell which usernames exist.
pub async fn imitate_verify() {
    let micros = VERIFY_MICROS.load(Ordering::Relaxed);
    let jitter = {
        use rand::Rng;
        rand::thread_rng().gen_range(0.9..1.1)
    };
    tokio::time::sleep(Duration::from_micros((micros as f64 * jitter) as u64)).await;
}

/// Hashes a random password once to learn how long a hash takes here, which seeds
/// [`imitate_verify`] until real verifications refine it.
pub fn calibrate() {
    if VERIFY_MICROS.load(Ordering::Relaxed) != 0 {
        return;
    }
    let salt = SaltString::generate(&mut OsRng);
    let random: String = {
        use rand::Rng;
        rand::thread_rng()
            .sample_iter(&rand::distributions::Alphanumeric)
            .take(24)
            .map(char::from)
            .collect()
    };
    let start = Instant::now();
    let _ = Argon2::default().hash_password(random.as_bytes(), &salt);
    record_verify_time(start.elapsed());
}
