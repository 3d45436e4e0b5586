//! The addon's tables, as sea-orm entities. The schema itself is created by
//! [`crate::migration`]; these describe the rows for queries.

pub mod poll;
pub mod vote;
