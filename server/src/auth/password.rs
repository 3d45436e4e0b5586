//! argon2id password hashing, off the async executor.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// argon2id needs 19 MiB of working memory per hash: at most this many run at once, so a login
/// burst costs bounded memory (and queues instead of exhausting the blocking pool).
const CONCURRENT_HASHES: usize = 2;

static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(CONCURRENT_HASHES);

/// Hashes a password into a PHC string.
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

/// Verifies a password against a PHC string; a malformed hash is a mismatch.
pub async fn verify(password: String, phc: String) -> bool {
    let Ok(_permit) = HASHING.acquire().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&phc)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// A valid hash of a random password, verified against when the user does not exist so that
/// unknown users and wrong passwords take the same time.
pub fn decoy_hash() -> String {
    let salt = SaltString::generate(&mut OsRng);
    let random: String = {
        use rand::Rng;
        rand::thread_rng()
            .sample_iter(&rand::distributions::Alphanumeric)
            .take(24)
            .map(char::from)
            .collect()
    };
    Argon2::default()
        .hash_password(random.as_bytes(), &salt)
        .map(|h| h.to_string())
        .unwrap_or_default()
}
