//! # switchboard-sdk
//!
//! The surface a Switchboard addon is written against: the wire types in [`protocol`], the
//! [`Client`] handle, the send functions ([`Hub`]), the [`event`] registry with typed binding
//! and middleware, the [`Addon`] trait, identities and roles, and the HTTP error/security
//! helpers in [`api`].
//!
//! An addon never depends on the server crate; the server depends on every addon. What runs
//! the connections (send queues, the frame parser, event dispatch, the connection indexes)
//! stays in the server: the server implements [`ClientHandle`] and builds the contexts
//! handlers receive.
//!
//! The modules import each other in one direction only (`protocol`, `identity` and `tag` at
//! the bottom, `addon` at the top); a test below keeps it so.

#![warn(missing_docs)]

pub mod addon;
pub mod api;
pub mod client;
pub mod event;
pub mod hub;
pub mod identity;
pub mod protocol;
pub mod tag;

pub use addon::{Addon, AddonContext};
pub use async_trait::async_trait;
pub use client::{Client, ClientHandle, ClientId, ClientInfo, Frame, Session};
pub use event::{EventContext, EventRegistry, EventResult, Reply};
pub use hub::{Audience, Hub};
pub use identity::{Credential, Identity, Role, UserId};
pub use protocol::{Data, EventError, Push};
pub use tag::Tag;

/// Sends a success frame `{"event", "data", "code": 0}` to one connection (hotgo's
/// `SendSuccess`). Returns whether it was queued.
pub fn send_success(client: &Client, event: &str, data: &serde_json::Value) -> bool {
    client.send_success(event, data)
}

/// Sends an error frame `{"event", "code": -1, "errorMsg"}` to one connection (hotgo's
/// `SendError`). Returns whether it was queued.
pub fn send_error(client: &Client, event: &str, err: &EventError) -> bool {
    client.send_envelope(&protocol::Envelope::error(event, err, None), false)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    /// Every module's source, by module name. A new module must be added here (the test below
    /// fails on an import of a module it does not know).
    const MODULES: &[(&str, &str)] = &[
        ("addon", include_str!("addon.rs")),
        ("api", include_str!("api.rs")),
        ("client", include_str!("client.rs")),
        ("event", include_str!("event.rs")),
        ("hub", include_str!("hub.rs")),
        ("identity", include_str!("identity.rs")),
        ("protocol", include_str!("protocol.rs")),
        ("tag", include_str!("tag.rs")),
    ];

    /// The modules a source names through `crate::<module>` (in code and doc links alike).
    fn imports(src: &str) -> Vec<&str> {
        let mut out: Vec<&str> = src
            .match_indices("crate::")
            .map(|(at, m)| {
                let rest = &src[at + m.len()..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                    .unwrap_or(rest.len());
                &rest[..end]
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// A module that is on the current path again closes a cycle; returns it, path included.
    fn find_cycle<'a>(
        graph: &BTreeMap<&'a str, Vec<&'a str>>,
        at: &'a str,
        path: &mut Vec<&'a str>,
        done: &mut Vec<&'a str>,
    ) -> Option<Vec<&'a str>> {
        if let Some(start) = path.iter().position(|m| *m == at) {
            let mut cycle = path[start..].to_vec();
            cycle.push(at);
            return Some(cycle);
        }
        if done.contains(&at) {
            return None;
        }
        path.push(at);
        for next in &graph[at] {
            if let Some(cycle) = find_cycle(graph, next, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.push(at);
        None
    }

    #[test]
    fn modules_import_each_other_without_a_cycle() {
        let graph: BTreeMap<&str, Vec<&str>> = MODULES
            .iter()
            .map(|(name, src)| (*name, imports(src)))
            .collect();
        for (module, deps) in &graph {
            for dep in deps {
                assert!(
                    graph.contains_key(dep),
                    "`{module}` imports `crate::{dep}`, which is not in MODULES (a re-export of \
                     the crate root, or a new module to list)"
                );
            }
        }
        let mut done = Vec::new();
        for module in graph.keys() {
            let cycle = find_cycle(&graph, module, &mut Vec::new(), &mut done);
            assert!(
                cycle.is_none(),
                "import cycle: {}",
                cycle.unwrap().join(" -> ")
            );
        }
    }

    #[test]
    fn the_cycle_check_sees_a_cycle() {
        let graph: BTreeMap<&str, Vec<&str>> = [
            ("a", imports("use crate::b::X;")),
            ("b", imports("/// See [`crate::a::Y`].")),
        ]
        .into_iter()
        .collect();
        let cycle = find_cycle(&graph, "a", &mut Vec::new(), &mut Vec::new());
        assert_eq!(cycle, Some(vec!["a", "b", "a"]));
    }
}
