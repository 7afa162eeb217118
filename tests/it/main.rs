//! Integration tests: real `cairn` agent processes on free ports, driven by real clients.
//!
//! One binary, one module per area:
//! - `acl`: ACLs on a real agent: bootstrap, policies, tokens, Consul's codes, persistence.
//! - `acl_cli`: `cairn acl …` and the CLI's token (flags, variables, token file) against an
//!   agent with default deny, in Consul 1.8.7's words.
//! - `acl_legacy`: the legacy ACL API (`/v1/acl/create` … `/v1/acl/list`), legacy tokens
//!   enforced with their rules, and the rules translation (HTTP and `cairn acl translate-rules`).
//! - `acl_client`: a server and client agents with default deny: forwarded writes carry the
//!   caller's or agent's token and the server enforces it; down_policy after the server dies.
//! - `acl_enforce`: ACL enforcement with default deny and real tokens, compared with Consul
//!   1.8.7: refusals, filtering, token precedence, blocking, script checks, bad ACL input.
//! - `appliance`: the operator CLI, metrics, reload, snapshots, sd_notify; the package
//!   install test behind `CAIRN_INSTALL_TEST=1`.
//! - `agent_api`: `/v1/agent/*` as Consul 1.8.7 answers it: the agent's own lists, hash
//!   blocking, `/v1/agent/self` (and `consul info`), `/v1/agent/host`, `node_meta`.
//! - `api_parity`: Consul 1.8.7's smaller HTTP behaviours: catalog weights, transaction
//!   service verbs and errors, query meta, derived tagged addresses, `?cached`, gzip.
//! - `anti_entropy`: the agent repairs catalog drift of its own services and checks, keeps
//!   API registrations across restarts, and writes nothing while in sync.
//! - `architecture`: invariants of ARCHITECTURE.md checked on the source tree.
//! - `cli_verbs`: Consul's CLI verbs (`event`, `maint`, `force-leave`, `rtt`, `operator
//!   autopilot`, `operator raft remove-peer`, `monitor`, `exec`) on the real binary, compared
//!   with Consul 1.8.7's CLI against the same agent behind `CAIRN_CONSUL_BIN`.
//! - `connect`: Connect's catalog side: proxy and gateway kinds, sidecars, the connect and
//!   ingress endpoints and DNS names, compared with Consul 1.8.7.
//! - `unix_socket`: HTTP over a Unix socket beside TCP (`addresses.http`, `unix_sockets`).
//! - `consul_snapshot`: Consul 1.8.7 snapshots restored into cairn and cairn's written for
//!   Consul (`CAIRN_CONSUL_BIN`), compared key by key; damaged archives refused.
//! - `support`: start/stop agents (bind port 0, never 8500/8600), DNS and HTTP clients.
//! - `debug`: `/debug/pprof/*`: real CPU, heap, thread and trace profiles of the agent, read
//!   back (and by `go tool pprof` when Go is installed); Consul 1.8.7's access rules.
//! - `dns`: answers over UDP and TCP for services registered over HTTP.
//! - `dns_acl`: DNS under ACLs: the default token's reads, NXDOMAIN when denied, SERVFAIL
//!   when the token is gone.
//! - `dns_spec`: every applicable row of spec §3 (Consul's DNS tests) as table-driven cases.
//! - `hostile`: garbage at the DNS and HTTP sockets.
//! - `http`: Consul's HTTP API shapes, errors and blocking queries.
//! - `keyring`: the gossip keyring API and CLI; a key rotation on a live three-server cluster.
//! - `kv`: KV durability, hostile key paths, the `cairn kv` CLI and `cairn lock` processes.
//! - `partition`: a real network partition (namespaces, a bridge) cuts the leader off: the
//!   minority acknowledges no write, the majority carries on, healing loses nothing and
//!   rejoins the gossip pool.
//! - `durability`: restart and `kill -9` keep acknowledged registrations.
//! - `filter`: `?filter=` on every endpoint Consul 1.8.7 filters, its error texts, blocking.
//! - `health_checks`: HTTP/TCP/UDP/gRPC/script/alias checks against local servers flipped
//!   between healthy and failing, thresholds, maintenance, local health endpoints.
//! - `operator_api`: autopilot's configuration (through Raft, CAS) and server health, and
//!   removing a Raft peer, on one server and on a three-server cluster.
//! - `lifecycle`: SIGTERM and SIGINT stop an agent within 2 s, also with its output pipe closed.
//! - `cluster_membership`: servers that rejoin after a leave or on a new address; autopilot.
//! - `coordinate`: `/v1/coordinate/*`: agents' Vivaldi coordinates from gossip probes, Consul's
//!   update round trip, unknown nodes, deregistration.
//! - `event`: user events fired on one agent and listed on another over gossip, filters,
//!   blocking lists, Consul's errors.
//! - `config`: config files and flags as an operator uses them.
//! - `consul_metrics`: Consul's metric names after traffic against the telemetry reference
//!   (`data/consul-metrics.txt`).
//! - `prepared`: prepared queries over `/v1/query` and `.query.` DNS names.
//! - `py_consul`: the py-consul client library drives the agent (tests/py/).
//! - `rpc_auth`: only members speak the server RPC: forged frames with and without `encrypt`,
//!   the key challenge, a wrong-key server, garbage challenges, `insecure_rpc`.
//! - `resolvers`: dnsmasq forwarding the domain to the agent, glibc behind it, dig checks.
//! - `tls_https`: HTTPS with client certificates, Go's 400 for plain HTTP, TLS versions,
//!   HTTP/2 through ALPN, certificate reloads on SIGHUP, refusals at start.
//! - `tls_tool`: `cairn tls ca create` / `cert create` files checked with openssl; the CLI over
//!   the agent's HTTPS (verify_incoming) with Consul's TLS variables and flags;
//!   Consul 1.8.7 using cairn's CA and certificates behind `CAIRN_CONSUL_BIN`.
//! - `write_validation`: forged `Forward` frames on a server's RPC port get the HTTP layer's
//!   write checks; a client agent answers an invalid write as the server does.
//! - `zones`: static zone files served beside the domain, SIGHUP reloads, dig.

// Test support code outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod acl;
mod acl_cli;
mod acl_client;
mod acl_enforce;
mod acl_legacy;
mod agent_api;
mod anti_entropy;
mod api_parity;
mod appliance;
mod architecture;
mod cli_verbs;
mod client;
mod cluster;
mod cluster_membership;
mod config;
mod config_entry;
mod connect;
mod consul_metrics;
mod consul_snapshot;
mod coordinate;
mod debug;
mod dns;
mod dns_acl;
mod dns_extensions;
mod dns_spec;
mod durability;
mod event;
mod filter;
mod health_checks;
mod hostile;
mod http;
mod keyring;
mod kv;
mod lifecycle;
mod operator_api;
mod partition;
mod prepared;
mod py_consul;
mod resolvers;
mod rpc_auth;
mod rpc_tls;
mod support;
mod tls_https;
mod tls_tool;
mod unix_socket;
mod wan;
mod write_validation;
mod zones;
