//! HEALTH FEEDS: agent-local check runners that turn observations into `Command::UpdateCheck`.
//!
//! Input: check definitions of this agent's node (from the published snapshot), TTL updates
//! from the HTTP agent API → output: proposals of changed status/output to Raft (and service
//! deregistrations for `DeregisterCriticalServiceAfter`).
//! Stages: `runner` (one task per probed or alias check: jitter, interval, timeout) → `probe`
//! (HTTP, TCP, UDP, gRPC, H2PING, script) → `status` (thresholds, output limits) → proposal;
//! `ttl` (TTL timers); `reap` (deregister long-critical services); `tls` (rustls settings).
//! Invariants: a runner proposes only when status or output actually changes, and output-only
//! changes wait `check_update_interval`; every value it decides (status, output text) travels
//! in the command, so `catalog::apply` stays clock-free.

pub(crate) mod probe;
pub(crate) mod reap;
pub(crate) mod runner;
pub(crate) mod status;
pub(crate) mod tls;
pub(crate) mod ttl;

pub(crate) use runner::CheckRunner;
pub(crate) use ttl::{TtlChecks, TtlError};

#[cfg(test)]
mod status_tests;
#[cfg(test)]
mod tests;
