//! CLIENT AGENTS: a catalog replica fed by a server, and writes forwarded to the servers.
//!
//! A client agent runs no Raft. It keeps the catalog in memory only (a restart subscribes
//! again from 0) and serves DNS and HTTP from it through the same `SnapshotHandle` a server's
//! state machine publishes to, so the query path is unchanged.
//!
//! ```text
//! SERVER  state_machine::apply -> feed::Feed (ring of the last applied entries)
//!         rpc Request::Subscribe { from_index } -> serve::stream: Dump | Entries | Heartbeat frames
//! CLIENT  client::Client::run: Dump -> CatalogState::from_dump; Entries -> catalog::apply::apply
//!         (the same pure transition, so the replica equals the server's state at each index)
//!         -> SnapshotHandle::publish -> DNS/HTTP read it
//! WRITE   RaftHandle::propose on a client -> rpc Forward to a server (relayed to the leader)
//!         -> wait until the replica reached the returned index (read-your-writes, bounded)
//! ```
//!
//! Invariants: the replica only ever applies a contiguous run of entries after a dump (a gap
//! closes the stream and resumes from the last applied index); only `client::Client::run`
//! publishes on a client; servers are found through gossip (alive members with the server
//! role) and the `retry_join` addresses, and a server that fails is replaced by another.

pub mod client;
pub mod feed;
pub mod serve;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

pub use client::Client;

use crate::catalog::CatalogDump;
use crate::catalog::Command;
use crate::raft::cluster::RaftServer;

/// One frame of a replica stream (`rpc::Response::Subscribe`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Frame {
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
pub struct Heartbeat {
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
