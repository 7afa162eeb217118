//! Integration tests: real `cairn` agent processes on free ports, driven by real clients.
//!
//! One binary, one module per area:
//! - `appliance`: the operator CLI, metrics, reload, snapshots, sd_notify; the package
//!   install test behind `CAIRN_INSTALL_TEST=1`.
//! - `architecture`: invariants of ARCHITECTURE.md checked on the source tree.
//! - `support`: start/stop agents (bind port 0, never 8500/8600), DNS and HTTP clients.
//! - `dns`: answers over UDP and TCP for services registered over HTTP.
//! - `dns_spec`: every applicable row of spec §3 (Consul's DNS tests) as table-driven cases.
//! - `hostile`: garbage at the DNS and HTTP sockets.
//! - `http`: Consul's HTTP API shapes, errors and blocking queries.
//! - `kv`: KV durability, hostile key paths, the `cairn kv` CLI and `cairn lock` processes.
//! - `durability`: restart and `kill -9` keep acknowledged registrations.
//! - `health_checks`: HTTP/TCP/UDP/gRPC/script/alias checks against local servers flipped
//!   between healthy and failing, thresholds, maintenance, local health endpoints.
//! - `config`: config files and flags as an operator uses them.
//! - `prepared`: prepared queries over `/v1/query` and `.query.` DNS names.
//! - `py_consul`: the py-consul client library drives the agent (tests/py/).
//! - `resolvers`: dnsmasq forwarding the domain to the agent, glibc behind it, dig checks.
//! - `zones`: static zone files served beside the domain, SIGHUP reloads, dig.

// Test support code outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod appliance;
mod architecture;
mod client;
mod cluster;
mod config;
mod dns;
mod dns_extensions;
mod dns_spec;
mod durability;
mod health_checks;
mod hostile;
mod http;
mod kv;
mod prepared;
mod py_consul;
mod resolvers;
mod support;
mod zones;
