//! The frames of a replica stream (`Request::Subscribe`): what a server sends a client
//! agent's replica on that connection.
//!
//! Input: the server's feed and view of the cluster. Output: `Frame`s, each one
//! `Response::Subscribe` on the wire (same encoding as every other response).
//! Invariant: `Entries` are contiguous and follow the previous frame's last index (or a `Dump`).

use serde::{Deserialize, Serialize};

use super::RaftServer;
use crate::catalog::{CatalogDump, Command};

/// One frame of a replica stream (`rpc::Response::Subscribe`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub(crate) enum Frame {
    /// The whole catalog at `index`; the entries that follow start at `index + 1`.
    Dump {
        /// The Raft index the catalog reflects.
        index: u64,
        /// The catalog.
        catalog: Box<CatalogDump>,
    },
    /// Applied entries, contiguous, in order: index and command (`None`: a blank or
    /// membership entry, which only advances the index).
    Entries(Vec<(u64, Option<Command>)>),
    /// The server's view of the cluster, every second.
    Heartbeat(Heartbeat),
}

/// What a server tells its replicas about the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Heartbeat {
    /// The server's applied index.
    pub applied_index: u64,
    /// Whether it knows a leader.
    pub known_leader: bool,
    /// The leader's RPC address.
    pub leader_addr: Option<String>,
    /// Milliseconds since it last heard from the leader (0 on the leader).
    pub last_contact_ms: u64,
    /// The Raft configuration.
    pub servers: Vec<RaftServer>,
    /// Log index of that configuration.
    pub membership_index: u64,
}
