//! CLIENT AGENTS: a catalog replica fed by a server, and writes forwarded to the servers.
//! `client::Client` is a client agent's `consensus::Participant` (the servers' is `raft::Server`).
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
//! WRITE   Consensus::propose on a client -> rpc Forward (ForwardAs with the caller's or the
//!         agent's ACL secret) to a server (checked there, relayed to the leader)
//!         -> wait until the replica reached the returned index (read-your-writes, bounded)
//! ACL     the agent's AclResolver reads tokens and policies from this replica (no server round
//!         trip); past acl.token_ttl without a server it applies acl.down_policy
//! ```
//!
//! Invariants: the replica only ever applies a contiguous run of entries after a dump (a gap
//! closes the stream and resumes from the last applied index); only `client::Client::run`
//! publishes on a client; servers are found through gossip (alive members with the server
//! role) and the `retry_join` addresses, and a server that fails is replaced by another.

pub(crate) mod client;
pub(crate) mod serve;

#[cfg(test)]
mod tests;

pub(crate) use client::Client;
