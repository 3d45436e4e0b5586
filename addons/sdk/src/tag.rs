//! Tag (group, room) names.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Prefix of tags that only the server API may assign.
pub const SYSTEM_TAG_PREFIX: &str = "sys:";

/// A validated tag name: 1–64 characters of `A-Za-z0-9_.:/-`.
///
/// ```
/// use switchboard_sdk::Tag;
/// assert!(Tag::parse("room:42").is_ok());
/// assert!(Tag::parse("").is_err());
/// assert!(Tag::parse("with space").is_err());
/// assert!(Tag::parse("sys:admins").unwrap().is_system());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(Arc<str>);

/// Why a tag name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    /// Empty or longer than 64 characters.
    #[error("tag must be 1-64 characters long")]
    Length,
    /// A character outside `A-Za-z0-9_.:/-`.
    #[error("tag may contain only A-Z a-z 0-9 _ . : / -")]
    Charset,
}

impl Tag {
    /// Longest accepted tag, in bytes (all allowed characters are ASCII).
    pub const MAX_LEN: usize = 64;

    /// Validates a tag name.
    pub fn parse(s: &str) -> Result<Tag, TagError> {
        if s.is_empty() || s.len() > Self::MAX_LEN {
            return Err(TagError::Length);
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'/' | b'-'))
        {
            return Err(TagError::Charset);
        }
        Ok(Tag(Arc::from(s)))
    }

    /// Whether only the server may assign this tag (`sys:` prefix, in any letter case, so that
    /// a client cannot make a look-alike such as `SYS:admin` that a reader takes for the real one).
    pub fn is_system(&self) -> bool {
        self.0
            .get(..SYSTEM_TAG_PREFIX.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(SYSTEM_TAG_PREFIX))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag({:?})", &*self.0)
    }
}

impl Serialize for Tag {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Tag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Tag::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        assert!(Tag::parse("A-Za_z0.9:/x").is_ok());
        assert!(Tag::parse(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn refuses_bad_names() {
        assert_eq!(Tag::parse(""), Err(TagError::Length));
        assert_eq!(Tag::parse(&"a".repeat(65)), Err(TagError::Length));
        assert_eq!(Tag::parse("a b"), Err(TagError::Charset));
        assert_eq!(Tag::parse("é"), Err(TagError::Charset));
        assert_eq!(Tag::parse("a\0"), Err(TagError::Charset));
    }

    #[test]
    fn system_prefix() {
        assert!(Tag::parse("sys:x").unwrap().is_system());
        assert!(!Tag::parse("system").unwrap().is_system());
        assert!(Tag::parse("SYS:admin").unwrap().is_system());
        assert!(Tag::parse("Sys:x").unwrap().is_system());
        assert!(!Tag::parse("sy").unwrap().is_system());
        assert!(!Tag::parse("xsys:a").unwrap().is_system());
    }

    #[test]
    fn deserialises_with_validation() {
        assert!(serde_json::from_str::<Tag>("\"ok\"").is_ok());
        assert!(serde_json::from_str::<Tag>("\"no way\"").is_err());
        assert!(serde_json::from_str::<Tag>("5").is_err());
    }
}
