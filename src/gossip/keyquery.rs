//! KEYRING FAN-OUT: the messages a keyring operation travels in between agents of the LAN
//! pool, the table of operations waiting for replies, and the per-pool report (Consul's serf
//! key query and `KeyResponse`).
//!
//! Input: an operation started on one agent; the replies of every alive member. Output: a
//! `KeyringReport`: how many nodes, which keys they have, which is primary, each failing node's
//! error and the pool's error line (`N/M nodes reported failure`).
//!
//! The flow (the IO is in `gossip::keyanswer`): the agent that received the operation sends
//! a `Query` to every alive member over memberlist's reliable user messages (TCP, and encrypted
//! with the primary key like all gossip), applies it itself, and waits for one `Reply` per
//! member until `query_timeout`. Each member applies the query to its own ring and replies to
//! the origin directly; with a relay factor it also sends the reply through that many other
//! members (`Relay`), so a reply survives one broken path (Consul's `-relay-factor`). Duplicate
//! replies count once. Members that do not answer in time count as not replied.
//!
//! Invariants: a member acts only on a message that decrypted with its ring (memberlist drops
//! others); a relay forwards only to an alive member's gossip address; the report's numbers
//! never exceed the members asked.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::keyring::{KeyOp, NodeKeys};

/// The largest relay factor (Consul's).
pub(crate) const MAX_RELAY_FACTOR: u8 = 5;

/// A member's answer to one query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KeyringReply {
    /// The query answered.
    pub id: u64,
    /// The member's node name.
    pub node: String,
    /// Its keys after the operation, or its error text.
    pub result: Result<NodeKeys, String>,
}

/// A keyring message between agents (`codec::Format::KeyringMessage`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum KeyringMessage {
    /// Apply `op` (with `key`, base64) and reply to `origin` (a gossip address).
    Query {
        /// Chosen by the origin, unique among its open queries.
        id: u64,
        /// The asking agent's gossip address.
        origin: SocketAddr,
        /// The operation.
        op: KeyOp,
        /// The key (base64); empty for a list.
        key: String,
        /// How many other members also carry the reply.
        relay: u8,
    },
    /// A member's answer.
    Reply(KeyringReply),
    /// Forward `reply` to `to`.
    Relay {
        /// The origin's gossip address.
        to: SocketAddr,
        /// The answer to forward.
        reply: KeyringReply,
    },
}

/// How long the origin waits for replies: serf's default query timeout (gossip interval 200 ms
/// x 16 x ceil(log10(n + 1))), at least 3.2 s.
pub(crate) fn query_timeout(members: usize) -> Duration {
    let scale = ((members as f64) + 1.0).log10().ceil().max(1.0);
    Duration::from_millis(3200).mul_f64(scale)
}

/// The queries this agent started that still wait for replies.
#[derive(Debug, Default)]
pub(crate) struct PendingQueries {
    open: Mutex<HashMap<u64, mpsc::UnboundedSender<KeyringReply>>>,
}

impl PendingQueries {
    /// Opens a query: a fresh id and the receiver of its replies (closed by `close`).
    pub(crate) fn open(&self) -> (u64, mpsc::UnboundedReceiver<KeyringReply>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut id: u64 = rand::random();
        while open.contains_key(&id) {
            id = rand::random();
        }
        open.insert(id, tx);
        (id, rx)
    }

    /// Hands a reply to its open query; a reply to no open query (late, or forged) is dropped.
    pub(crate) fn deliver(&self, reply: KeyringReply) {
        let open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(tx) = open.get(&reply.id) {
            let _ = tx.send(reply);
        }
    }

    /// Closes a query.
    pub(crate) fn close(&self, id: u64) {
        self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&id);
    }
}

/// One pool's answer to a keyring operation (Consul's `KeyringResponse` minus the pool's name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeyringReport {
    /// Members asked (alive members, this agent included).
    pub num_nodes: usize,
    /// Members that replied.
    pub num_resp: usize,
    /// Members that replied with an error.
    pub num_err: usize,
    /// Each key and how many members have it.
    pub keys: BTreeMap<String, usize>,
    /// Each primary key and how many members use it.
    pub primary_keys: BTreeMap<String, usize>,
    /// Each failing member's error.
    pub messages: BTreeMap<String, String>,
    /// The pool's error line (serf's), when a member failed or did not reply.
    pub error: Option<String>,
}

impl KeyringReport {
    /// Tallies the replies (one per node) of `num_nodes` members asked.
    pub(crate) fn tally(num_nodes: usize, replies: &BTreeMap<String, Result<NodeKeys, String>>) -> Self {
        let mut report = Self { num_nodes, num_resp: replies.len(), ..Self::default() };
        for (node, result) in replies {
            match result {
                Ok(keys) => {
                    for k in &keys.keys {
                        *report.keys.entry(k.clone()).or_default() += 1;
                    }
                    *report.primary_keys.entry(keys.primary.clone()).or_default() += 1;
                }
                Err(msg) => {
                    report.num_err += 1;
                    report.messages.insert(node.clone(), msg.clone());
                }
            }
        }
        report.error = if report.num_err > 0 {
            Some(format!("{}/{} nodes reported failure", report.num_err, num_nodes))
        } else if report.num_resp != num_nodes {
            Some(format!("{}/{} nodes reported success", report.num_resp, num_nodes))
        } else {
            None
        };
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(all: &[&str], primary: &str) -> Result<NodeKeys, String> {
        Ok(NodeKeys { keys: all.iter().map(|k| (*k).to_owned()).collect(), primary: primary.to_owned() })
    }

    #[test]
    fn tally_counts_keys_per_node_and_names_failures() {
        let mut replies = BTreeMap::new();
        replies.insert("s1".to_owned(), keys(&["A", "B"], "A"));
        replies.insert("s2".to_owned(), keys(&["A"], "A"));
        replies.insert("s3".to_owned(), Err("Requested key is not in the keyring".to_owned()));
        let r = KeyringReport::tally(3, &replies);
        assert_eq!((r.num_nodes, r.num_resp, r.num_err), (3, 3, 1));
        assert_eq!(r.keys, BTreeMap::from([("A".to_owned(), 2), ("B".to_owned(), 1)]));
        assert_eq!(r.primary_keys, BTreeMap::from([("A".to_owned(), 2)]));
        assert_eq!(r.messages["s3"], "Requested key is not in the keyring");
        assert_eq!(r.error.as_deref(), Some("1/3 nodes reported failure"));
    }

    #[test]
    fn a_missing_reply_is_an_error_too() {
        let replies = BTreeMap::from([("s1".to_owned(), keys(&["A"], "A"))]);
        let r = KeyringReport::tally(2, &replies);
        assert_eq!(r.error.as_deref(), Some("1/2 nodes reported success"));
        assert_eq!(KeyringReport::tally(1, &replies).error, None);
    }

    #[test]
    fn replies_reach_only_open_queries() {
        let pending = PendingQueries::default();
        let (id, mut rx) = pending.open();
        let reply = KeyringReply { id, node: "s1".into(), result: Err("x".into()) };
        pending.deliver(reply.clone());
        pending.deliver(KeyringReply { id: id.wrapping_add(1), ..reply.clone() });
        assert_eq!(rx.try_recv().ok(), Some(reply.clone()));
        assert!(rx.try_recv().is_err());
        pending.close(id);
        pending.deliver(reply);
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn timeout_grows_with_the_pool() {
        assert_eq!(query_timeout(1), Duration::from_millis(3200));
        assert_eq!(query_timeout(9), Duration::from_millis(3200));
        assert_eq!(query_timeout(10), Duration::from_millis(6400));
    }
}
