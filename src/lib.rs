//! cairn: a DNS-centric service discovery appliance with Consul's DNS and HTTP interfaces.
//!
//! ```text
//! QUERY  socket -> dns::parse -> dns::route(name) -> SnapshotHandle::load() -> dns::answer -> dns::encode -> send
//! WRITE  HTTP PUT /v1/... -> Consensus::propose(Command) -> openraft log (LMDB, group commit)
//!        -> raft::state_machine applies the batch (raft::apply, one LMDB txn)
//!        -> SnapshotHandle::publish -> DNS and blocking queries see it
//! FEEDS  health::ttl (changed status) --> local (agent's own records) --> propose(Command::UpdateCheck)
//!        local::LocalState::sync_full (anti-entropy: local state vs snapshot) --> propose(repairs)
//! ```
//!
//! Modules in flow order: `config` and `app` (startup), `dns` (read path), `snapshot` (read
//! model), `http` (API front door), `agent` (Consul service/check definitions), `raft`
//! (consensus, apply), `store` (LMDB), `catalog` (pure domain types, KV and sessions included), `health` (check runners),
//! `local` (the agent's own services and checks, anti-entropy),
//! `session` (the leader's session TTL timers).

pub mod agent;
pub mod app;
pub mod backup;
pub mod catalog;
pub mod cli;
pub mod clock;
pub mod config;
pub mod consensus;
pub mod dns;
pub mod gossip;
pub mod health;
pub mod http;
pub mod local;
pub mod metrics;
pub mod raft;
pub mod replica;
pub mod rpc;
pub mod serve_rpc;
pub mod session;
pub mod snapshot;
pub mod store;
pub mod systemd;
pub mod zone;
