//! The online list: one row per connection, its order, filters and pages — the same in both
//! backends.

use crate::websocket::client::Connection;
use serde::{Deserialize, Serialize};
use switchboard_sdk::{Tag, UserId};

/// Largest page of the online list.
pub const MAX_PAGE_SIZE: u64 = 200;

/// One connection as the online list shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    /// Connection id.
    pub id: String,
    /// User id.
    pub user_id: Option<i64>,
    /// Username.
    pub username: String,
    /// Client IP.
    pub ip: String,
    /// OS family.
    pub os: String,
    /// Browser family.
    pub browser: String,
    /// Raw User-Agent.
    pub user_agent: String,
    /// Connected at (unix seconds).
    pub first_time: i64,
    /// Last inbound frame (unix seconds).
    pub heartbeat_time: i64,
    /// Tags, sorted.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Node holding the socket.
    pub node: String,
}

impl Row {
    /// The row of a local connection.
    pub fn of(c: &Connection) -> Row {
        let info = c.info();
        Row {
            id: c.id().to_string(),
            user_id: c.user_id().map(|u| u.0),
            username: c.username(),
            ip: info.ip.clone(),
            os: info.os.clone(),
            browser: info.browser.clone(),
            user_agent: info.user_agent.clone(),
            first_time: info.first_time,
            heartbeat_time: c.heartbeat_time(),
            tags: c.tags().into_iter().map(|t| t.to_string()).collect(),
            node: info.node.to_string(),
        }
    }
}

/// Filters and page of an online-list request.
#[derive(Debug, Clone, Default)]
pub struct OnlineQuery {
    /// Page number, from 1.
    pub page: u64,
    /// Rows per page, 1–[`MAX_PAGE_SIZE`].
    pub page_size: u64,
    /// Only this user's connections.
    pub user: Option<UserId>,
    /// Only members of this tag.
    pub tag: Option<Tag>,
    /// Username contains this.
    pub username: Option<String>,
    /// IP contains this.
    pub ip: Option<String>,
}

impl OnlineQuery {
    /// Rows to skip.
    pub fn offset(&self) -> usize {
        (self.page.saturating_sub(1)).saturating_mul(self.page_size) as usize
    }

    /// Whether a row passes the substring filters (user and tag are index lookups).
    pub fn matches_text(&self, username: &str, ip: &str) -> bool {
        self.username
            .as_deref()
            .is_none_or(|n| username.contains(n))
            && self.ip.as_deref().is_none_or(|p| ip.contains(p))
    }
}

/// One page of the online list.
#[derive(Debug, Clone, Default)]
pub struct OnlinePage {
    /// The rows of the page, in list order.
    pub rows: Vec<Row>,
    /// Rows matching the filters, on every node.
    pub total: usize,
}

/// The list order is `firstTime`, then this key: connection ids are `<prefix>.<counter>`, and
/// the counter is zero-padded so that plain byte order (what a Redis sorted set uses for equal
/// scores) is also numeric order.
pub fn sort_key(id: &str) -> String {
    match id.rsplit_once('.') {
        Some((prefix, n))
            if !n.is_empty() && n.len() <= 20 && n.bytes().all(|b| b.is_ascii_digit()) =>
        {
            format!("{prefix}.{n:0>20}")
        }
        _ => id.to_string(),
    }
}

/// The id behind a [`sort_key`].
pub fn id_of_sort_key(key: &str) -> String {
    match key.rsplit_once('.') {
        Some((prefix, n)) if n.len() == 20 && n.bytes().all(|b| b.is_ascii_digit()) => {
            let trimmed = n.trim_start_matches('0');
            format!(
                "{prefix}.{}",
                if trimmed.is_empty() { "0" } else { trimmed }
            )
        }
        _ => key.to_string(),
    }
}

/// Sorts rows into list order.
pub fn sort_rows(rows: &mut [Row]) {
    rows.sort_by_cached_key(|r| (r.first_time, sort_key(&r.id)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_keys_order_counters_numerically_and_round_trip() {
        let a = sort_key("k3f9x2.9");
        let b = sort_key("k3f9x2.10");
        assert!(a < b);
        assert_eq!(id_of_sort_key(&a), "k3f9x2.9");
        assert_eq!(id_of_sort_key(&b), "k3f9x2.10");
        assert_eq!(id_of_sort_key(&sort_key("odd")), "odd");
    }
}
