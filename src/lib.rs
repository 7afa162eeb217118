//! cairn: a DNS-centric service discovery appliance with Consul's DNS and HTTP interfaces.
//!
//! ```text
//! QUERY  socket -> dns::parse -> dns::route(name) -> SnapshotHandle::load() -> dns::answer -> dns::encode -> send
//! WRITE  HTTP PUT /v1/... -> consensus::Consensus::propose(Command) -> openraft log (LMDB, group commit)
//!        -> raft::state_machine applies the batch in memory (the pure catalog::apply::apply;
//!           its rows are deferred and reach LMDB with the next log append, store::deferred)
//!        -> SnapshotHandle::publish -> DNS and blocking queries see it
//!        (on a client agent: replica::Client forwards the command to a server and waits
//!        until its replica has applied it)
//! FEEDS  health::ttl (changed status) --> local (agent's own records) --> propose(Command::UpdateCheck)
//!        local::LocalState::sync_full (anti-entropy: local state vs snapshot) --> propose(repairs)
//! ```
//!
//! Modules bottom layer first (a module imports only lower layers; `tests/it/architecture.rs`
//! checks it): `clock`, `catalog` (pure domain types, the write commands and the pure `apply`,
//! KV and sessions included) -> `agent` (Consul service/check definitions) -> `config` ->
//! `snapshot` (read model), `store` (LMDB), `backup` -> `metrics` -> `rpc` (server-RPC wire
//! types, framing, pool) -> `consensus` (the handle writers and readers hold) -> `raft`
//! (servers: openraft, state machine), `gossip` (LAN pool, reconcile, autopilot) -> `replica`
//! (client agents), `session` (the leader's session TTL timers), `local` (the agent's own
//! services and checks, anti-entropy) -> `health` (check runners), `serve_rpc` (the server-RPC
//! listener) -> `zone`, `dns` (read path) -> `http` (API front door) -> `app`, `cli` (startup,
//! command line); `systemd` (socket activation, readiness) imports nothing of cairn.

pub mod agent;
pub mod app;
pub mod backup;
pub mod catalog;
pub mod cli;
pub mod clock;
pub mod codec;
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
