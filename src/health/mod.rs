//! HEALTH FEEDS: agent-local check runners that turn observations into `Command::UpdateCheck`.
//!
//! Input: check definitions of this agent's node (from the published snapshot) and TTL
//! updates from the HTTP agent API → output: proposals of changed status/output to Raft.
//! Invariants: a runner proposes only when status or output actually changes; every value
//! it decides (status, output text) travels in the command, so `raft::apply` stays clock-free.
//! Only TTL checks run for now; other kinds are stored but not probed.

pub mod ttl;

pub use ttl::{TtlChecks, TtlError};

#[cfg(test)]
mod tests;
