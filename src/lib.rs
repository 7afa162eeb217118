//! cairn: a DNS-centric service discovery appliance with Consul's DNS and HTTP interfaces.
//!
//! ```text
//! QUERY  socket -> dns::parse -> SnapshotHandle::load() -> dns::source: static zones,
//!        catalog (dns::route(name) -> dns::answer), forwarder -> dns::encode -> send
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
//! KV and sessions included) -> `agent` (Consul service/check definitions) -> `config` -> `codec`
//! (every persisted and wire encoding) -> `snapshot` (read model), `store` (LMDB), `backup` -> `metrics` -> `rpc` (server-RPC wire
//! types, framing, pool) -> `consensus` (the handle writers and readers hold) -> `raft`
//! (servers: openraft, state machine), `gossip` (LAN pool, reconcile, autopilot) -> `replica`
//! (client agents), `session` (the leader's session TTL timers), `local` (the agent's own
//! services and checks, anti-entropy) -> `health` (check runners), `serve_rpc` (the server-RPC
//! listener) -> `zone`, `dns` (read path) -> `http` (API front door) -> `app`, `cli` (startup,
//! command line); `systemd` (socket activation, readiness), `acl` (policy rules, the
//! authorizer) and `filter` (`?filter=` expressions) import nothing of cairn.

#![warn(unreachable_pub)]

mod acl;
mod acl_state;
mod agent;
mod app;
mod backup;
mod catalog;
mod clock;
mod codec;
mod config;
mod consensus;
mod dns;
mod filter;
mod gossip;
mod health;
mod http;
mod local;
mod log_stream;
mod metrics;
mod profile;
mod raft;
mod replica;
mod rpc;
mod serve_rpc;
mod session;
mod snapshot;
mod store;
mod systemd;
mod tls;
mod zone;

/// The command line's library half: every subcommand but `agent` (the binary dispatches).
pub mod cli;

// The crate's surface: what the binary, the benches and the fuzz target use. Everything
// else is `pub(crate)` at most (`unreachable_pub` keeps it so).

/// Running an agent: build it from a configuration, run it, reload it, tell systemd.
/// The Consul version whose HTTP API and gossip tags cairn answers for, reported wherever Consul
/// reports its own (`/v1/agent/self`, the members' `build` tag, `cairn version`), so clients
/// that gate features on the version see one number.
pub const CONSUL_COMPAT_VERSION: &str = "1.21.0";

/// What stands where Consul reports its git revision (`/v1/agent/self`, the `build` tag).
pub(crate) const REVISION: &str = concat!("cairn-", env!("CARGO_PKG_VERSION"));

/// The `build` gossip tag: `version:revision`, as Consul gossips it.
pub(crate) fn build_tag() -> String {
    format!("{CONSUL_COMPAT_VERSION}:{REVISION}")
}

pub use app::{App, Reloader};
pub use config::{Config, DnsConfig, Overrides};
pub use log_stream::layer as log_stream_layer;
/// The process's allocator with heap sampling for `/debug/pprof/heap` (the binary's
/// `#[global_allocator]`), the switch that starts sampling, and the tap of
/// `/debug/pprof/trace`.
pub use profile::heap::{SamplingAlloc, start as profile_heap_start};
pub use profile::trace::layer as profile_trace_layer;
pub use systemd::Notifier;

/// The catalog and its write vocabulary, with the pure transition between states.
pub use catalog::apply::apply;
pub use catalog::{
    CatalogDump, CatalogState, Check, CheckUpdate, Command, CommandResponse, Deregistration, HealthStatus,
    Node, Registration, Service,
};
/// The DNS path's settings and per-loop answer cache.
pub use dns::{AnswerCache, DnsContext, Transport};
/// The read model DNS and HTTP answer from.
pub use snapshot::{CatalogSnapshot, SnapshotHandle};

/// The DNS path's pure core and its stages, and apply-then-publish, for the criterion benches,
/// the proptests and the fuzz target; not an API.
#[doc(hidden)]
pub mod testing {
    pub use crate::acl::fuzz_logic as acl_fuzz_logic;
    pub use crate::backup::fuzz_logic as snapshot_fuzz_logic;
    pub use crate::dns::{bench_support, fuzz_logic, handle};
    pub use crate::filter::fuzz_logic as filter_fuzz_logic;
    pub use crate::raft::state_machine::bench_support::apply_and_publish;
}
