//! Short random names (node prefixes, stream epochs).

use rand::Rng;

/// Letters and digits.
pub const ALPHANUMERIC: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
/// Letters and digits that cannot be mistaken for each other when read aloud (no l, o, 0, 1).
pub const UNAMBIGUOUS: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";

/// `len` characters drawn from `alphabet`.
pub fn name(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
        .collect()
}
