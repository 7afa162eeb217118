//! USER EVENTS: Consul's `consul event` over the LAN pool: fired on one agent, delivered to
//! every agent, kept in each agent's buffer of the 256 most recent (`/v1/event/list`).
//!
//! Input: an event fired here (`Gossip::fire_event`) or received from another agent (a
//! memberlist user message). Output: `UserEvents`, this agent's buffer, its Lamport clock
//! and a watch of the last event's index (blocking `/v1/event/list`).
//!
//! Delivery: the agent that fires an event sends it to every alive member over memberlist's
//! reliable (TCP) user messages, encrypted like all gossip, and keeps it itself; Serf instead
//! re-gossips it epidemically. A member that is down at that moment misses it, as a Serf
//! member that rejoins after the broadcast expired does. Each agent keeps an event only when
//! its filters match it (Consul's `shouldProcessUserEvent`): `NodeFilter` a regular
//! expression on the node name, `ServiceFilter` one on the name of a service registered on
//! this node, `TagFilter` (only with a service filter) one on a tag of that service.
//!
//! Invariants: an event is kept once (by ID) however often it arrives; the buffer holds at
//! most `BUFFER` events, the oldest dropped first; the clock never goes back (an event
//! received with a later time moves it past that time, Serf's `Witness`).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::catalog::CatalogState;

/// How many events an agent keeps (Consul's `userEventSize`).
pub(crate) const BUFFER: usize = 256;
/// Marks a memberlist user message as a user event (keyring messages are JSON objects).
pub(crate) const MESSAGE_TAG: u8 = b'E';

/// One user event (Consul's `UserEvent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct UserEvent {
    /// A random UUID.
    pub id: String,
    /// The event's name.
    pub name: String,
    /// The body it was fired with (`None`: none).
    pub payload: Option<Vec<u8>>,
    /// Regular expression on node names.
    pub node_filter: String,
    /// Regular expression on service names.
    pub service_filter: String,
    /// Regular expression on the tags of the matching services.
    pub tag_filter: String,
    /// Format version (1).
    pub version: u8,
    /// Lamport time at which it was fired.
    pub ltime: u64,
}

/// Why a filter is refused (Consul's texts).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum FilterError {
    /// A filter that is not a regular expression.
    #[error("Invalid {what} filter: {why}")]
    Regex {
        /// `node`, `service` or `tag`.
        what: &'static str,
        /// The parser's message.
        why: String,
    },
    /// A tag filter without a service filter.
    #[error("Cannot provide tag filter without service filter")]
    TagWithoutService,
}

impl UserEvent {
    /// Checks the filters compile and a tag filter comes with a service filter.
    pub(crate) fn validate(&self) -> Result<(), FilterError> {
        for (what, f) in
            [("node", &self.node_filter), ("service", &self.service_filter), ("tag", &self.tag_filter)]
        {
            if !f.is_empty() {
                regex::Regex::new(f).map_err(|e| FilterError::Regex { what, why: regex_message(&e) })?;
            }
        }
        if !self.tag_filter.is_empty() && self.service_filter.is_empty() {
            return Err(FilterError::TagWithoutService);
        }
        Ok(())
    }

    /// Whether node `node` (with its services in `catalog`) is a target.
    pub(crate) fn targets(&self, node: &str, catalog: &CatalogState) -> bool {
        let matches = |f: &str, s: &str| f.is_empty() || regex::Regex::new(f).is_ok_and(|r| r.is_match(s));
        if !matches(&self.node_filter, node) {
            return false;
        }
        if self.service_filter.is_empty() {
            return true;
        }
        catalog.node_services(node).any(|s| {
            matches(&self.service_filter, &s.name)
                && (self.tag_filter.is_empty() || s.tags.iter().any(|t| matches(&self.tag_filter, t)))
        })
    }

    /// Consul's `IDToIndex`: the UUID's first and last 64 bits XORed (`X-Consul-Index`).
    pub(crate) fn index(&self) -> u64 {
        id_to_index(&self.id)
    }
}

/// Consul's `IDToIndex` of a UUID string (0 when it is not one).
pub(crate) fn id_to_index(id: &str) -> u64 {
    let hex: String = id.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return 0;
    }
    let (lo, hi) = hex.split_at(16);
    u64::from_str_radix(lo, 16).unwrap_or(0) ^ u64::from_str_radix(hi, 16).unwrap_or(0)
}

/// Go regexp's wording for the common errors, else the Rust parser's.
fn regex_message(e: &regex::Error) -> String {
    format!(
        "error parsing regexp: {}",
        e.to_string().lines().last().unwrap_or("invalid").trim().trim_start_matches("error: ")
    )
}

/// This agent's event buffer and Lamport clock.
#[derive(Debug)]
pub(crate) struct UserEvents {
    buffer: Mutex<VecDeque<UserEvent>>,
    clock: AtomicU64,
    last: watch::Sender<u64>,
}

impl Default for UserEvents {
    fn default() -> Self {
        Self { buffer: Mutex::default(), clock: AtomicU64::new(0), last: watch::channel(0).0 }
    }
}

impl UserEvents {
    /// The Lamport time for an event fired now; the clock moves past it.
    pub(crate) fn next_time(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::SeqCst)
    }

    /// Moves the clock past `ltime` (Serf's `Witness`).
    fn witness(&self, ltime: u64) {
        self.clock.fetch_max(ltime.saturating_add(1), Ordering::SeqCst);
    }

    /// Keeps `event` when it is new and `wanted`; returns whether it was kept.
    pub(crate) fn receive(&self, event: UserEvent, wanted: bool) -> bool {
        self.witness(event.ltime);
        let Ok(mut buf) = self.buffer.lock() else { return false };
        if !wanted || buf.iter().any(|e| e.id == event.id) {
            return false;
        }
        let index = event.index();
        buf.push_back(event);
        while buf.len() > BUFFER {
            buf.pop_front();
        }
        drop(buf);
        self.last.send_replace(index);
        true
    }

    /// The events kept, oldest first, with the index of the last one (0: none).
    pub(crate) fn list(&self) -> (Vec<UserEvent>, u64) {
        let buf = self.buffer.lock().map(|b| b.iter().cloned().collect::<Vec<_>>()).unwrap_or_default();
        let index = buf.last().map_or(0, UserEvent::index);
        (buf, index)
    }

    /// Watches the index of the last event kept.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.last.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Node, Registration, Service};

    fn event(id: &str, ltime: u64) -> UserEvent {
        UserEvent {
            id: id.into(),
            name: "deploy".into(),
            payload: None,
            node_filter: String::new(),
            service_filter: String::new(),
            tag_filter: String::new(),
            version: 1,
            ltime,
        }
    }

    #[test]
    fn the_index_is_consuls_id_to_index() {
        // Consul 1.8.7 answered X-Consul-Index 9334880663050277823 for this ID.
        assert_eq!(id_to_index("4082a1f0-9c9a-0e7a-c10e-8971a95c5dc5"), 9_334_880_663_050_277_823);
        assert_eq!(id_to_index("nope"), 0);
    }

    #[test]
    fn the_buffer_keeps_the_last_256_once_each_and_the_clock_witnesses() {
        let ev = UserEvents::default();
        for i in 0..300u64 {
            assert!(ev.receive(event(&format!("{i:08x}-0000-0000-0000-000000000000"), i), true));
        }
        assert!(!ev.receive(event("0000012b-0000-0000-0000-000000000000", 1), true), "duplicate ID");
        assert!(!ev.receive(event("x", 1), false), "not a target");
        let (list, index) = ev.list();
        assert_eq!(list.len(), BUFFER);
        assert_eq!(list[0].ltime, 44);
        assert_eq!(index, list[BUFFER - 1].index());
        assert_eq!(ev.next_time(), 300);
        assert_eq!(ev.next_time(), 301);
    }

    #[test]
    fn filters_are_regular_expressions_on_node_service_and_tag() {
        let mut cat = CatalogState::default();
        let mut ch = Vec::new();
        let reg = Registration {
            node: Node::new("web-1", "10.0.0.1", "dc1"),
            skip_node_update: false,
            service: Some(Service::new("web-1", "web", "web", 80).with_tags(&["v1"])),
            checks: Vec::new(),
        };
        let _ = crate::catalog::apply::apply(&mut cat, 5, &crate::catalog::Command::Register(reg), &mut ch);
        let f = |n: &str, s: &str, t: &str| UserEvent {
            node_filter: n.into(),
            service_filter: s.into(),
            tag_filter: t.into(),
            ..event("a", 0)
        };
        assert!(f("", "", "").targets("web-1", &cat));
        assert!(f("^web", "", "").targets("web-1", &cat));
        assert!(!f("^db", "", "").targets("web-1", &cat));
        assert!(f("", "we.", "v[0-9]").targets("web-1", &cat));
        assert!(!f("", "web", "v2").targets("web-1", &cat));
        assert!(!f("", "db", "").targets("web-1", &cat));
        assert_eq!(
            f("((", "", "").validate().unwrap_err().to_string().split(':').next(),
            Some("Invalid node filter")
        );
        assert_eq!(f("", "", "v1").validate(), Err(FilterError::TagWithoutService));
    }
}
