//! Agent configuration: Consul's agent-config keys, from TOML or Consul JSON files and flags.
//!
//! `Config` is the resolved, validated form every other module reads. Loading (files, flags,
//! defaults, validation with file-and-key error messages) lives in this module too.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Resolved agent configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Datacenter name, lower-cased (`datacenter`, default `dc1`).
    pub datacenter: String,
    /// This agent's node name (`node_name`, default: host name).
    pub node_name: String,
    /// This agent's node ID (`node_id`; generated and kept in the data dir when unset).
    pub node_id: String,
    /// DNS domain, lower-case and fully qualified (`domain`, default `consul.`).
    pub domain: String,
    /// Alternative DNS domain, lower-case and fully qualified (`alt_domain`).
    pub alt_domain: Option<String>,
    /// Where Raft and the catalog live (`data_dir`); `--dev` uses a temporary directory.
    pub data_dir: PathBuf,
    /// Development mode: in-memory-like temporary data dir, everything on 127.0.0.1.
    pub dev: bool,
    /// Whether this agent is a Raft server (`server`).
    pub server: bool,
    /// Servers to wait for before bootstrapping (`bootstrap_expect`).
    pub bootstrap_expect: u32,
    /// Cluster address advertised to other agents (`bind_addr`).
    pub bind_addr: IpAddr,
    /// Where HTTP and DNS listen unless `addresses` says otherwise (`client_addr`).
    pub client_addr: IpAddr,
    /// DNS listen address (`addresses.dns`, default `client_addr`).
    pub dns_addr: IpAddr,
    /// HTTP listen address (`addresses.http`, default `client_addr`).
    pub http_addr: IpAddr,
    /// Ports (`ports{}`).
    pub ports: Ports,
    /// Upstream resolvers for names outside the domain (`recursors`).
    pub recursors: Vec<SocketAddr>,
    /// DNS behaviour (`dns_config{}`).
    pub dns: DnsConfig,
    /// Service definitions from config files, as Consul JSON objects (validated on load).
    pub services: Vec<serde_json::Value>,
    /// Log filter (`log_level`).
    pub log_level: String,
    /// The config files that were read, for error messages and reloads.
    pub sources: Vec<PathBuf>,
}

/// Ports the agent binds (`ports{}`); 0 asks the OS for a free port, -1 disables (DNS, HTTP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// DNS port (`ports.dns`, default 8600).
    pub dns: i32,
    /// HTTP API port (`ports.http`, default 8500).
    pub http: i32,
    /// Raft RPC port (`ports.server`, default 8300).
    pub server: u16,
    /// LAN gossip port (`ports.serf_lan`, default 8301).
    pub serf_lan: u16,
}

/// Recursor selection order (`dns_config.recursor_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecursorStrategy {
    /// Try recursors in configured order.
    Sequential,
    /// Try recursors in random order.
    Random,
}

/// SOA timer values (`dns_config.soa{}`), in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoaConfig {
    /// REFRESH (default 3600).
    pub refresh: u32,
    /// RETRY (default 600).
    pub retry: u32,
    /// EXPIRE (default 86400).
    pub expire: u32,
    /// MINIMUM and the SOA record's TTL (default 0).
    pub min_ttl: u32,
}

/// `dns_config{}` with Consul's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsConfig {
    /// Serve DNS from the local replica (default true).
    pub allow_stale: bool,
    /// Staleness bound before a leader read (default 87600h).
    pub max_stale: Duration,
    /// TTL of node records (default 0).
    pub node_ttl: Duration,
    /// TTL per service name; keys may end in `*` (default empty: 0).
    pub service_ttl: BTreeMap<String, Duration>,
    /// Set TC when answers were dropped (default false).
    pub enable_truncate: bool,
    /// Only passing instances in answers (default false: exclude critical only).
    pub only_passing: bool,
    /// Recursor order (default sequential).
    pub recursor_strategy: RecursorStrategy,
    /// Recursor timeout (default 2s).
    pub recursor_timeout: Duration,
    /// Send uncompressed responses (default false).
    pub disable_compression: bool,
    /// Answer count cap for classic 512-byte UDP (default 3, effective at most 8).
    pub udp_answer_limit: u32,
    /// Cap on A/AAAA answers, 0 = none (default 0).
    pub a_record_limit: u32,
    /// Node meta as TXT in Additional (default true).
    pub enable_additional_node_meta_txt: bool,
    /// SOA values.
    pub soa: SoaConfig,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            allow_stale: true,
            max_stale: Duration::from_secs(87600 * 3600),
            node_ttl: Duration::ZERO,
            service_ttl: BTreeMap::new(),
            enable_truncate: false,
            only_passing: false,
            recursor_strategy: RecursorStrategy::Sequential,
            recursor_timeout: Duration::from_secs(2),
            disable_compression: false,
            udp_answer_limit: 3,
            a_record_limit: 0,
            enable_additional_node_meta_txt: true,
            soa: SoaConfig { refresh: 3600, retry: 600, expire: 86400, min_ttl: 0 },
        }
    }
}

impl DnsConfig {
    /// Consul's `GetTTLForService`: exact name, then the longest `prefix*`, then `*`, then 0.
    pub fn service_ttl_for(&self, service: &str) -> Duration {
        let name = service.to_ascii_lowercase();
        if let Some(d) = self.service_ttl.get(&name) {
            return *d;
        }
        let mut best: Option<(usize, Duration)> = None;
        for (k, d) in &self.service_ttl {
            if let Some(prefix) = k.strip_suffix('*')
                && name.starts_with(prefix)
                && best.is_none_or(|(len, _)| prefix.len() > len)
            {
                best = Some((prefix.len(), *d));
            }
        }
        best.map_or(Duration::ZERO, |(_, d)| d)
    }
}
