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
    /// Other agents' LAN gossip addresses (`host:port`; a bare host is tried on 8301 and, as a
    /// server's RPC address, 8300) to join the pool and find the servers through; a server's RPC
    /// address works too (`retry_join`, `--retry-join`, repeatable).
    pub retry_join: Vec<String>,
    /// Log entries since the last Raft snapshot that trigger a new one (`raft_snapshot_threshold`).
    pub raft_snapshot_threshold: u64,
    /// Log entries kept behind a snapshot; a follower further behind gets the snapshot
    /// (`raft_trailing_logs`).
    pub raft_trailing_logs: u64,
    /// How often the agent's local state is fully synced to the catalog (`anti_entropy_interval`,
    /// a Go duration, default 60s; each wait is jittered by ±10 %).
    pub anti_entropy_interval: Duration,
    /// Autopilot: the leader removes failed and left servers from Raft
    /// (`autopilot { cleanup_dead_servers }`, default true).
    pub cleanup_dead_servers: bool,
    /// Gossip encryption key (`encrypt`, base64 of 16, 24 or 32 bytes; `cairn keygen`).
    pub encrypt: Option<Vec<u8>>,
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
    /// Service definitions from config files (Consul format), decoded and validated on load.
    pub services: Vec<crate::agent::ServiceDefinition>,
    /// Health-check settings (`enable_script_checks`, `check_update_interval`, …).
    pub checks: CheckConfig,
    /// Check definitions from config files (`check`, `checks`): node checks, or checks of a
    /// service named by `ServiceID`; decoded and validated on load.
    pub check_definitions: Vec<crate::agent::CheckSpec>,
    /// Directory of RFC 1035 zone files (`*.zone`) served beside the domain (`zones_dir`);
    /// `--dev` uses `./zones` when it exists and nothing is configured.
    pub zones_dir: Option<PathBuf>,
    /// Log filter (`log_level`).
    pub log_level: String,
    /// The config files that were read, for error messages and reloads.
    pub sources: Vec<PathBuf>,
}

/// Default `raft_snapshot_threshold` (Consul's is 16384; cairn's log entries are batches).
pub const DEFAULT_SNAPSHOT_THRESHOLD: u64 = 10_000;
/// Default `raft_trailing_logs`.
pub const DEFAULT_TRAILING_LOGS: u64 = 1_000;

/// Decodes a gossip encryption key: base64 of 16, 24 or 32 bytes (AES-128/192/256).
fn parse_key(s: &str) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    let key = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| format!("failed to decode the encryption key: {e}"))?;
    match key.len() {
        16 | 24 | 32 => Ok(key),
        n => Err(format!("the encryption key must be 16, 24 or 32 bytes, got {n}")),
    }
}

/// Checks a `retry_join` address: `host` or `host:port` (port 8300 when omitted).
fn parse_join(s: &str) -> Result<(), String> {
    crate::rpc::join_addr(s).map(|_| ())
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
    /// cairn: RFC-correct answers where Consul's are known bugs (default false; see the
    /// README's "Differences from Consul").
    pub strict_rfc: bool,
    /// cairn: order service answers by a random choice weighted by `Weights.Passing` /
    /// `Weights.Warning` instead of a uniform shuffle (default false).
    pub weighted_shuffle: bool,
}

/// Health-check settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckConfig {
    /// `enable_script_checks`: script checks may be registered through the HTTP API (and
    /// config files).
    pub enable_script_checks: bool,
    /// `enable_local_script_checks`: script checks may be defined in config files.
    pub enable_local_script_checks: bool,
    /// `check_update_interval`: how long an output-only change may wait before it is written
    /// (default 5m; 0 writes every change).
    pub update_interval: Duration,
    /// `check_output_max_size`: the cap on a check's output in bytes (default 4096).
    pub output_max_size: u32,
    /// `check_deregister_interval_min`: the smallest `DeregisterCriticalServiceAfter` honoured
    /// (default 1m; Consul's runtime value, settable here for tests).
    pub deregister_interval_min: Duration,
    /// `check_reap_interval`: how often critical services are considered for deregistration
    /// (default 30s).
    pub reap_interval: Duration,
}

impl Default for CheckConfig {
    fn default() -> Self {
        Self {
            enable_script_checks: false,
            enable_local_script_checks: false,
            update_interval: Duration::from_secs(300),
            output_max_size: 4096,
            deregister_interval_min: Duration::from_secs(60),
            reap_interval: Duration::from_secs(30),
        }
    }
}

impl CheckConfig {
    /// Whether script checks from config files may run (`enable_script_checks` implies it).
    pub fn local_scripts(&self) -> bool {
        self.enable_local_script_checks || self.enable_script_checks
    }
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
            strict_rfc: false,
            weighted_shuffle: false,
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

// ----- loading ---------------------------------------------------------------------------

use std::path::Path;

use serde_json::{Map, Value};

/// Why a configuration could not be loaded; the message names the file and the key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A file could not be read.
    #[error("{file}: {source}")]
    Read {
        /// The file.
        file: String,
        /// The IO error.
        source: std::io::Error,
    },
    /// A file is not valid TOML or JSON.
    #[error("{file}: {msg}")]
    Syntax {
        /// The file.
        file: String,
        /// The parser's message.
        msg: String,
    },
    /// A key is unknown or its value is invalid.
    #[error("{file}: {key}: {msg}")]
    Key {
        /// The file, or `command line` / `defaults`.
        file: String,
        /// The dotted key path.
        key: String,
        /// What is wrong.
        msg: String,
    },
}

/// Values given on the command line; each overrides every file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--dev`.
    pub dev: bool,
    /// `--server`.
    pub server: bool,
    /// `--bootstrap-expect`.
    pub bootstrap_expect: Option<u32>,
    /// `--node`.
    pub node_name: Option<String>,
    /// `--datacenter`.
    pub datacenter: Option<String>,
    /// `--domain`.
    pub domain: Option<String>,
    /// `--alt-domain`.
    pub alt_domain: Option<String>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--bind`.
    pub bind_addr: Option<String>,
    /// `--client`.
    pub client_addr: Option<String>,
    /// `--http-port`.
    pub http_port: Option<i32>,
    /// `--dns-port`.
    pub dns_port: Option<i32>,
    /// `--server-port`.
    pub server_port: Option<u16>,
    /// `--serf-lan-port`.
    pub serf_lan_port: Option<u16>,
    /// `--retry-join` (repeatable; appended after the files' `retry_join`).
    pub retry_join: Vec<String>,
    /// `--raft-snapshot-threshold`.
    pub raft_snapshot_threshold: Option<u64>,
    /// `--raft-trailing-logs`.
    pub raft_trailing_logs: Option<u64>,
    /// `--encrypt`.
    pub encrypt: Option<String>,
    /// `--recursor` (repeatable; appended after the files' recursors).
    pub recursors: Vec<String>,
    /// `--config-file` (repeatable, read in order).
    pub config_files: Vec<PathBuf>,
    /// `--config-dir` (repeatable; `*.toml` and `*.json` read in name order).
    pub config_dirs: Vec<PathBuf>,
    /// `--log-level`.
    pub log_level: Option<String>,
    /// `--zones-dir`.
    pub zones_dir: Option<PathBuf>,
}

/// Consul agent-config keys that cairn accepts (so Consul configs load unchanged) but does
/// not act on yet; each is logged as ignored at start.
const IGNORED_KEYS: &[&str] = &[
    "acl",
    "advertise_addr_wan",
    "auto_encrypt",
    "bind_addr_wan",
    "connect",
    "disable_host_node_id",
    "disable_remote_exec",
    "disable_update_check",
    "enable_debug",
    "enable_syslog",
    "encrypt_verify_incoming",
    "encrypt_verify_outgoing",
    "leave_on_terminate",
    "limits",
    "log_file",
    "log_json",
    "performance",
    "primary_datacenter",
    "raft_protocol",
    "reconnect_timeout",
    "retry_interval",
    "retry_max",
    "rpc",
    "skip_leave_on_interrupt",
    "telemetry",
    "tls",
    "ui",
    "ui_config",
    "use_streaming_backend",
    "verify_incoming",
    "verify_outgoing",
];

/// Ports keys Consul has that cairn does not bind (yet).
const IGNORED_PORTS: &[&str] =
    &["grpc", "grpc_tls", "https", "serf_wan", "sidecar_min_port", "sidecar_max_port"];

/// The file-level view while folding one source into the raw config.
#[derive(Debug, Default)]
struct Raw {
    datacenter: Option<(String, String)>,
    node_name: Option<(String, String)>,
    node_id: Option<String>,
    domain: Option<(String, String)>,
    alt_domain: Option<(String, String)>,
    data_dir: Option<PathBuf>,
    server: Option<bool>,
    bootstrap_expect: Option<u32>,
    bind_addr: Option<IpAddr>,
    retry_join: Vec<String>,
    raft_snapshot_threshold: Option<u64>,
    raft_trailing_logs: Option<u64>,
    anti_entropy_interval: Option<Duration>,
    cleanup_dead_servers: Option<bool>,
    client_addr: Option<IpAddr>,
    dns_addr: Option<IpAddr>,
    http_addr: Option<IpAddr>,
    ports: Ports,
    recursors: Vec<SocketAddr>,
    dns: DnsConfig,
    services: Vec<(String, String, Value)>,
    node_checks: Vec<(String, String, Value)>,
    checks: CheckConfig,
    log_level: Option<(String, String)>,
    zones_dir: Option<PathBuf>,
    encrypt: Option<Vec<u8>>,
    ignored: Vec<String>,
}

impl Default for Ports {
    fn default() -> Self {
        Self { dns: 8600, http: 8500, server: 8300, serf_lan: 8301 }
    }
}

/// Where a value came from, for error messages.
struct Src<'a> {
    file: &'a str,
}

impl Src<'_> {
    fn err(&self, key: &str, msg: impl Into<String>) -> ConfigError {
        ConfigError::Key { file: self.file.to_owned(), key: key.to_owned(), msg: msg.into() }
    }

    fn string(&self, key: &str, v: &Value) -> Result<String, ConfigError> {
        v.as_str().map(str::to_owned).ok_or_else(|| self.err(key, format!("expected a string, got {v}")))
    }

    fn boolean(&self, key: &str, v: &Value) -> Result<bool, ConfigError> {
        match v {
            Value::Bool(b) => Ok(*b),
            Value::String(s) if s == "true" => Ok(true),
            Value::String(s) if s == "false" => Ok(false),
            _ => Err(self.err(key, format!("expected true or false, got {v}"))),
        }
    }

    fn int(&self, key: &str, v: &Value, min: i64, max: i64) -> Result<i64, ConfigError> {
        let n = match v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
        .ok_or_else(|| self.err(key, format!("expected an integer, got {v}")))?;
        if n < min || n > max {
            return Err(self.err(key, format!("{n} is out of range {min}..={max}")));
        }
        Ok(n)
    }

    fn ip(&self, key: &str, v: &Value) -> Result<IpAddr, ConfigError> {
        let s = self.string(key, v)?;
        parse_ip(&s).map_err(|m| self.err(key, m))
    }

    fn duration(&self, key: &str, v: &Value) -> Result<Duration, ConfigError> {
        match v {
            // Consul takes bare numbers as nanoseconds.
            Value::Number(n) => {
                n.as_u64().map(Duration::from_nanos).ok_or_else(|| self.err(key, "expected a duration"))
            }
            Value::String(s) => crate::agent::parse_go_duration(s)
                .map_err(|m| self.err(key, format!("invalid duration {s:?}: {m}"))),
            _ => Err(self.err(key, format!("expected a duration such as \"10s\", got {v}"))),
        }
    }

    fn object<'v>(&self, key: &str, v: &'v Value) -> Result<&'v Map<String, Value>, ConfigError> {
        v.as_object().ok_or_else(|| self.err(key, format!("expected a table/object, got {v}")))
    }
}

fn parse_ip(s: &str) -> Result<IpAddr, String> {
    s.trim().parse().map_err(|_| format!("{s:?} is not an IP address"))
}

/// Parses a recursor address: `ip` (port 53) or `ip:port` / `[ipv6]:port`.
pub fn parse_recursor(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    let addr = if let Ok(sa) = s.parse::<SocketAddr>() {
        sa
    } else if let Ok(ip) = s.parse::<IpAddr>() {
        SocketAddr::new(ip, 53)
    } else {
        return Err(format!("{s:?} is not an IP address or ip:port"));
    };
    if addr.ip().is_unspecified() {
        return Err(format!("{s:?}: an unspecified address cannot be a recursor"));
    }
    Ok(addr)
}

/// Normalises a DNS domain: lower-case, fully qualified, non-empty labels.
fn normalise_domain(s: &str) -> Result<String, String> {
    let d = s.trim().trim_end_matches('.').to_ascii_lowercase();
    if d.is_empty() {
        return Err("the domain must not be empty".into());
    }
    if d.split('.').any(|l| l.is_empty() || l.len() > 63) || d.len() > 253 {
        return Err(format!("{s:?} is not a valid domain name"));
    }
    Ok(format!("{d}."))
}

impl Raw {
    fn fold(&mut self, src: &Src<'_>, top: &Map<String, Value>) -> Result<(), ConfigError> {
        for (k, v) in top {
            match k.as_str() {
                "datacenter" => self.datacenter = Some((src.string(k, v)?, src.file.to_owned())),
                "node_name" => self.node_name = Some((src.string(k, v)?, src.file.to_owned())),
                "node_id" => self.node_id = Some(src.string(k, v)?),
                "domain" => self.domain = Some((src.string(k, v)?, src.file.to_owned())),
                "alt_domain" => self.alt_domain = Some((src.string(k, v)?, src.file.to_owned())),
                "data_dir" => self.data_dir = Some(PathBuf::from(src.string(k, v)?)),
                "zones_dir" => self.zones_dir = Some(PathBuf::from(src.string(k, v)?)),
                "server" => self.server = Some(src.boolean(k, v)?),
                "bootstrap" => {
                    if src.boolean(k, v)? {
                        self.bootstrap_expect = Some(1);
                    }
                }
                "bootstrap_expect" => self.bootstrap_expect = Some(src.int(k, v, 0, 1024)? as u32),
                "bind_addr" | "advertise_addr" => self.bind_addr = Some(src.ip(k, v)?),
                "client_addr" => self.client_addr = Some(src.ip(k, v)?),
                "retry_join" | "start_join" => {
                    let list = v.as_array().ok_or_else(|| src.err(k, "expected a list of addresses"))?;
                    for (i, r) in list.iter().enumerate() {
                        let key = format!("{k}[{i}]");
                        let a = src.string(&key, r)?;
                        parse_join(&a).map_err(|m| src.err(&key, m))?;
                        self.retry_join.push(a);
                    }
                }
                "raft_snapshot_threshold" => {
                    self.raft_snapshot_threshold = Some(src.int(k, v, 1, i64::MAX)? as u64);
                }
                "encrypt" => self.encrypt = Some(parse_key(&src.string(k, v)?).map_err(|m| src.err(k, m))?),
                "raft_trailing_logs" => self.raft_trailing_logs = Some(src.int(k, v, 0, i64::MAX)? as u64),
                "anti_entropy_interval" => {
                    let d = src.duration(k, v)?;
                    if d.is_zero() {
                        return Err(src.err(k, "must be greater than 0"));
                    }
                    self.anti_entropy_interval = Some(d);
                }
                "log_level" => self.log_level = Some((src.string(k, v)?, src.file.to_owned())),
                "recursors" => {
                    let list = v.as_array().ok_or_else(|| src.err(k, "expected a list of addresses"))?;
                    for (i, r) in list.iter().enumerate() {
                        let key = format!("{k}[{i}]");
                        let a = parse_recursor(&src.string(&key, r)?).map_err(|m| src.err(&key, m))?;
                        if !self.recursors.contains(&a) {
                            self.recursors.push(a);
                        }
                    }
                }
                "enable_script_checks" => self.checks.enable_script_checks = src.boolean(k, v)?,
                "enable_local_script_checks" => self.checks.enable_local_script_checks = src.boolean(k, v)?,
                "check_update_interval" => self.checks.update_interval = src.duration(k, v)?,
                "check_output_max_size" => {
                    self.checks.output_max_size = src.int(k, v, 1, i64::from(u32::MAX))? as u32;
                }
                "check_deregister_interval_min" => {
                    self.checks.deregister_interval_min = src.duration(k, v)?
                }
                "check_reap_interval" => {
                    let d = src.duration(k, v)?;
                    if d.is_zero() {
                        return Err(src.err(k, "must be greater than 0"));
                    }
                    self.checks.reap_interval = d;
                }
                "ports" => self.fold_ports(src, src.object(k, v)?)?,
                "addresses" => self.fold_addresses(src, src.object(k, v)?)?,
                "dns_config" => self.fold_dns(src, src.object(k, v)?)?,
                "autopilot" => self.fold_autopilot(src, src.object(k, v)?)?,
                "service" => match v {
                    Value::Array(list) => {
                        for (i, s) in list.iter().enumerate() {
                            self.services.push((src.file.to_owned(), format!("{k}[{i}]"), s.clone()));
                        }
                    }
                    _ => self.services.push((src.file.to_owned(), k.clone(), v.clone())),
                },
                "services" => {
                    let list =
                        v.as_array().ok_or_else(|| src.err(k, "expected a list of service definitions"))?;
                    for (i, s) in list.iter().enumerate() {
                        self.services.push((src.file.to_owned(), format!("{k}[{i}]"), s.clone()));
                    }
                }
                "check" => match v {
                    Value::Array(list) => {
                        for (i, c) in list.iter().enumerate() {
                            self.node_checks.push((src.file.to_owned(), format!("{k}[{i}]"), c.clone()));
                        }
                    }
                    _ => self.node_checks.push((src.file.to_owned(), k.clone(), v.clone())),
                },
                "checks" => {
                    let list =
                        v.as_array().ok_or_else(|| src.err(k, "expected a list of check definitions"))?;
                    for (i, c) in list.iter().enumerate() {
                        self.node_checks.push((src.file.to_owned(), format!("{k}[{i}]"), c.clone()));
                    }
                }
                other if IGNORED_KEYS.contains(&other) => self.ignored.push(format!("{}: {other}", src.file)),
                other => return Err(src.err(other, "unknown configuration key")),
            }
        }
        Ok(())
    }

    fn fold_ports(&mut self, src: &Src<'_>, m: &Map<String, Value>) -> Result<(), ConfigError> {
        for (k, v) in m {
            let key = format!("ports.{k}");
            match k.as_str() {
                "dns" => self.ports.dns = src.int(&key, v, -1, 65535)? as i32,
                "http" => self.ports.http = src.int(&key, v, -1, 65535)? as i32,
                "server" => self.ports.server = src.int(&key, v, 0, 65535)? as u16,
                "serf_lan" => self.ports.serf_lan = src.int(&key, v, 0, 65535)? as u16,
                other if IGNORED_PORTS.contains(&other) => self.ignored.push(format!("{}: {key}", src.file)),
                _ => return Err(src.err(&key, "unknown configuration key")),
            }
        }
        Ok(())
    }

    fn fold_autopilot(&mut self, src: &Src<'_>, m: &Map<String, Value>) -> Result<(), ConfigError> {
        for (k, v) in m {
            let key = format!("autopilot.{k}");
            match k.as_str() {
                "cleanup_dead_servers" => self.cleanup_dead_servers = Some(src.boolean(&key, v)?),
                "last_contact_threshold"
                | "max_trailing_logs"
                | "min_quorum"
                | "server_stabilization_time"
                | "redundancy_zone_tag"
                | "disable_upgrade_migration"
                | "upgrade_version_tag" => self.ignored.push(format!("{}: {key}", src.file)),
                _ => return Err(src.err(&key, "unknown configuration key")),
            }
        }
        Ok(())
    }

    fn fold_addresses(&mut self, src: &Src<'_>, m: &Map<String, Value>) -> Result<(), ConfigError> {
        for (k, v) in m {
            let key = format!("addresses.{k}");
            match k.as_str() {
                "dns" => self.dns_addr = Some(src.ip(&key, v)?),
                "http" => self.http_addr = Some(src.ip(&key, v)?),
                "https" | "grpc" | "grpc_tls" => self.ignored.push(format!("{}: {key}", src.file)),
                _ => return Err(src.err(&key, "unknown configuration key")),
            }
        }
        Ok(())
    }

    fn fold_dns(&mut self, src: &Src<'_>, m: &Map<String, Value>) -> Result<(), ConfigError> {
        let d = &mut self.dns;
        for (k, v) in m {
            let key = format!("dns_config.{k}");
            match k.as_str() {
                "allow_stale" => d.allow_stale = src.boolean(&key, v)?,
                "max_stale" => d.max_stale = src.duration(&key, v)?,
                "node_ttl" => d.node_ttl = src.duration(&key, v)?,
                "service_ttl" => {
                    for (name, ttl) in src.object(&key, v)? {
                        let dur = src.duration(&format!("{key}.{name}"), ttl)?;
                        d.service_ttl.insert(name.to_ascii_lowercase(), dur);
                    }
                }
                "enable_truncate" => d.enable_truncate = src.boolean(&key, v)?,
                "only_passing" => d.only_passing = src.boolean(&key, v)?,
                "strict_rfc" => d.strict_rfc = src.boolean(&key, v)?,
                "weighted_shuffle" => d.weighted_shuffle = src.boolean(&key, v)?,
                "recursor_strategy" => {
                    d.recursor_strategy = match src.string(&key, v)?.as_str() {
                        "sequential" => RecursorStrategy::Sequential,
                        "random" => RecursorStrategy::Random,
                        other => {
                            return Err(
                                src.err(&key, format!("{other:?}: expected \"sequential\" or \"random\""))
                            );
                        }
                    }
                }
                "recursor_timeout" => d.recursor_timeout = src.duration(&key, v)?,
                "disable_compression" => d.disable_compression = src.boolean(&key, v)?,
                "udp_answer_limit" => d.udp_answer_limit = src.int(&key, v, 0, i64::from(u32::MAX))? as u32,
                "a_record_limit" => d.a_record_limit = src.int(&key, v, 0, i64::from(u32::MAX))? as u32,
                "enable_additional_node_meta_txt" => {
                    d.enable_additional_node_meta_txt = src.boolean(&key, v)?
                }
                "soa" => {
                    for (sk, sv) in src.object(&key, v)? {
                        let skey = format!("{key}.{sk}");
                        let n = src.int(&skey, sv, 0, i64::from(u32::MAX))? as u32;
                        match sk.as_str() {
                            "refresh" => d.soa.refresh = n,
                            "retry" => d.soa.retry = n,
                            "expire" => d.soa.expire = n,
                            "min_ttl" => d.soa.min_ttl = n,
                            _ => return Err(src.err(&skey, "unknown configuration key")),
                        }
                    }
                }
                "use_cache" | "cache_max_age" | "prefer_namespace" => {
                    self.ignored.push(format!("{}: {key}", src.file));
                }
                _ => return Err(src.err(&key, "unknown configuration key")),
            }
        }
        Ok(())
    }
}

/// Reads one config file into a JSON tree (TOML is converted), by extension.
fn read_file(path: &Path) -> Result<Map<String, Value>, ConfigError> {
    let file = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { file: file.clone(), source })?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let value: Value = match ext {
        "json" => serde_json::from_str(&text)
            .map_err(|e| ConfigError::Syntax { file: file.clone(), msg: e.to_string() })?,
        "toml" => {
            let t: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Syntax {
                file: file.clone(),
                msg: one_line_toml_error(&text, &e),
            })?;
            serde_json::to_value(t)
                .map_err(|e| ConfigError::Syntax { file: file.clone(), msg: e.to_string() })?
        }
        "hcl" => {
            return Err(ConfigError::Syntax {
                file,
                msg: "HCL is not supported: write the same keys as JSON (.json) or TOML (.toml)".into(),
            });
        }
        _ => {
            return Err(ConfigError::Syntax {
                file,
                msg: "unknown file type: use a .toml or .json extension".into(),
            });
        }
    };
    match value {
        Value::Object(m) => Ok(m),
        _ => Err(ConfigError::Syntax { file, msg: "the top level must be a table/object".into() }),
    }
}

/// A TOML error as `line L, column C: message` on one line (toml's own text spans several).
fn one_line_toml_error(text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {msg}")
        }
        None => msg,
    }
}

/// The config files named by `--config-file` and found in `--config-dir`, in reading order.
fn config_paths(o: &Overrides) -> Result<Vec<PathBuf>, ConfigError> {
    let mut paths = o.config_files.clone();
    for dir in &o.config_dirs {
        let file = dir.display().to_string();
        let entries =
            std::fs::read_dir(dir).map_err(|source| ConfigError::Read { file: file.clone(), source })?;
        let mut found = Vec::new();
        for e in entries {
            let e = e.map_err(|source| ConfigError::Read { file: file.clone(), source })?;
            let p = e.path();
            if p.is_file() && matches!(p.extension().and_then(|x| x.to_str()), Some("toml" | "json")) {
                found.push(p);
            }
        }
        found.sort();
        paths.extend(found);
    }
    Ok(paths)
}

impl Config {
    /// Loads files, then applies flags, then validates. Errors name the file and key.
    pub fn load(o: &Overrides) -> Result<(Self, Vec<String>), ConfigError> {
        let mut raw = Raw::default();
        let paths = config_paths(o)?;
        for p in &paths {
            let top = read_file(p)?;
            let file = p.display().to_string();
            raw.fold(&Src { file: &file }, &top)?;
        }
        let cli = Src { file: "command line" };
        let flag_ip = |key: &str, v: &Option<String>| -> Result<Option<IpAddr>, ConfigError> {
            v.as_deref().map(|s| parse_ip(s).map_err(|m| cli.err(key, m))).transpose()
        };
        if let Some(ip) = flag_ip("-bind", &o.bind_addr)? {
            raw.bind_addr = Some(ip);
        }
        if let Some(ip) = flag_ip("-client", &o.client_addr)? {
            raw.client_addr = Some(ip);
        }
        for r in &o.recursors {
            let a = parse_recursor(r).map_err(|m| cli.err("-recursor", m))?;
            if !raw.recursors.contains(&a) {
                raw.recursors.push(a);
            }
        }
        if let Some(p) = o.dns_port {
            raw.ports.dns = p;
        }
        if let Some(p) = o.http_port {
            raw.ports.http = p;
        }
        if let Some(p) = o.server_port {
            raw.ports.server = p;
        }
        if let Some(p) = o.serf_lan_port {
            raw.ports.serf_lan = p;
        }
        if let Some(key) = &o.encrypt {
            raw.encrypt = Some(parse_key(key).map_err(|m| cli.err("-encrypt", m))?);
        }
        for a in &o.retry_join {
            parse_join(a).map_err(|m| cli.err("-retry-join", m))?;
            raw.retry_join.push(a.clone());
        }
        if let Some(n) = o.raft_snapshot_threshold {
            if n == 0 {
                return Err(cli.err("-raft-snapshot-threshold", "must be at least 1"));
            }
            raw.raft_snapshot_threshold = Some(n);
        }
        if let Some(n) = o.raft_trailing_logs {
            raw.raft_trailing_logs = Some(n);
        }

        let loopback = IpAddr::from([127, 0, 0, 1]);
        // Each value remembers where it came from, so an error names that file and key.
        let pick = |flag: &Option<String>, flag_name: &str, file: Option<(String, String)>, key: &str| match (
            flag, file,
        ) {
            (Some(v), _) => Some((v.clone(), "command line".to_owned(), flag_name.to_owned())),
            (None, Some((v, f))) => Some((v, f, key.to_owned())),
            (None, None) => None,
        };
        let bad = |src: &(String, String, String), msg: String| ConfigError::Key {
            file: src.1.clone(),
            key: src.2.clone(),
            msg,
        };
        let defaulted = |v: &str, key: &str| (v.to_owned(), "defaults".to_owned(), key.to_owned());

        let dc = pick(&o.datacenter, "-datacenter", raw.datacenter, "datacenter")
            .unwrap_or_else(|| defaulted("dc1", "datacenter"));
        let datacenter = dc.0.to_ascii_lowercase();
        if datacenter.is_empty()
            || !datacenter.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(bad(&dc, format!("{:?} must be letters, digits, - or _", dc.0)));
        }
        let node_src = match pick(&o.node_name, "-node", raw.node_name, "node_name") {
            Some(n) => n,
            None => {
                let host =
                    hostname::get().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "cairn".into());
                defaulted(&host, "node_name")
            }
        };
        if node_src.0.is_empty() || node_src.0.len() > 255 {
            return Err(bad(&node_src, "must be 1 to 255 characters".into()));
        }
        let node_name = node_src.0.clone();
        let dom =
            pick(&o.domain, "-domain", raw.domain, "domain").unwrap_or_else(|| defaulted("consul", "domain"));
        let domain = normalise_domain(&dom.0).map_err(|m| bad(&dom, m))?;
        let alt_domain = match pick(&o.alt_domain, "-alt-domain", raw.alt_domain, "alt_domain") {
            Some(a) if !a.0.is_empty() => {
                let alt = normalise_domain(&a.0).map_err(|m| bad(&a, m))?;
                let reserved = ["service.", "connect.", "node.", "query.", "addr."];
                if alt == domain
                    || reserved.iter().any(|r| alt.starts_with(r))
                    || alt.starts_with(&format!("{datacenter}."))
                {
                    return Err(bad(
                        &a,
                        format!(
                            "{:?} must differ from the domain and not start with service., connect., node., query., addr. or <datacenter>.",
                            a.0
                        ),
                    ));
                }
                Some(alt)
            }
            _ => None,
        };
        let dev = o.dev;
        let client_addr = raw.client_addr.unwrap_or(loopback);
        let bind_addr = raw.bind_addr.unwrap_or(loopback);
        let data_dir = match o.data_dir.clone().or(raw.data_dir) {
            Some(d) => d,
            // `--dev` creates a temporary directory at start (see `app`).
            None if dev => PathBuf::new(),
            None => {
                return Err(ConfigError::Key {
                    file: "command line".into(),
                    key: "data_dir".into(),
                    msg: "must be set in a config file or with -data-dir (or run with -dev)".into(),
                });
            }
        };
        // `--dev` serves the repository's example zones when run from a checkout.
        let zones_dir = o
            .zones_dir
            .clone()
            .or(raw.zones_dir)
            .or_else(|| (dev && Path::new("zones").is_dir()).then(|| PathBuf::from("zones")));
        let lvl = pick(&o.log_level, "-log-level", raw.log_level, "log_level")
            .unwrap_or_else(|| defaulted("info", "log_level"));
        let log_level = lvl.0.to_ascii_lowercase();
        if !["trace", "debug", "info", "warn", "err", "error"].contains(&log_level.as_str()) {
            return Err(bad(&lvl, format!("{:?}: expected trace, debug, info, warn or err", lvl.0)));
        }
        // Decoded once and checked as a registration on this agent's node, so an invalid
        // value (weights, meta, check) names its file and key here rather than failing start-up.
        let placeholder = crate::catalog::Node::new(&node_name, &bind_addr.to_string(), &datacenter);
        let mut services = Vec::with_capacity(raw.services.len());
        for (file, key, v) in raw.services {
            let def = crate::agent::decode_service_definition(&v)
                .and_then(|def| def.clone().into_registration(&placeholder).map(|_| def))
                .map_err(|e| ConfigError::Key { file: file.clone(), key: key.clone(), msg: e.to_string() })?;
            if !raw.checks.local_scripts() && def.checks.iter().any(|c| c.kind() == "script") {
                return Err(ConfigError::Key { file, key, msg: crate::agent::SCRIPTS_DISABLED_LOCAL.into() });
            }
            services.push(def);
        }
        let mut check_definitions = Vec::with_capacity(raw.node_checks.len());
        for (file, key, v) in raw.node_checks {
            let bad = |msg: String| ConfigError::Key { file: file.clone(), key: key.clone(), msg };
            let spec = crate::agent::decode_check_definition(&v).map_err(|e| bad(e.to_string()))?;
            if spec.name.is_empty() {
                return Err(bad("Missing check name".into()));
            }
            if !spec.service_id.is_empty()
                && !services.iter().any(|s| s.service_id().eq_ignore_ascii_case(&spec.service_id))
            {
                return Err(bad(format!("ServiceID {:?} does not exist", spec.service_id)));
            }
            spec.clone()
                .into_check(&node_name, None, &spec.name, &spec.name)
                .map_err(|e| bad(e.to_string()))?;
            if spec.kind() == "script" && !raw.checks.local_scripts() {
                return Err(bad(crate::agent::SCRIPTS_DISABLED_LOCAL.into()));
            }
            check_definitions.push(spec);
        }
        // Without `server` (and not -dev) the agent is a client: no Raft, writes forwarded to
        // the servers, a local replica of the catalog fed by a server (`replica`).
        let server = dev || o.server || raw.server.unwrap_or(false);
        let bootstrap_expect = o.bootstrap_expect.or(raw.bootstrap_expect).unwrap_or(u32::from(dev));
        if !server && bootstrap_expect != 0 {
            return Err(ConfigError::Key {
                file: "config".into(),
                key: "bootstrap_expect".into(),
                msg: format!(
                    "{bootstrap_expect}: bootstrap_expect is for servers; a client agent (no -server) joins servers through retry_join"
                ),
            });
        }
        if dev && bootstrap_expect > 1 {
            return Err(ConfigError::Key {
                file: "config".into(),
                key: "bootstrap_expect".into(),
                msg: format!("{bootstrap_expect}: a -dev agent is a single server (bootstrap_expect = 1)"),
            });
        }
        let config = Self {
            datacenter,
            node_name,
            node_id: raw.node_id.unwrap_or_default(),
            domain,
            alt_domain,
            data_dir,
            dev,
            server,
            bootstrap_expect,
            bind_addr,
            retry_join: raw.retry_join,
            raft_snapshot_threshold: raw.raft_snapshot_threshold.unwrap_or(DEFAULT_SNAPSHOT_THRESHOLD),
            raft_trailing_logs: raw.raft_trailing_logs.unwrap_or(DEFAULT_TRAILING_LOGS),
            anti_entropy_interval: raw.anti_entropy_interval.unwrap_or(crate::local::DEFAULT_INTERVAL),
            cleanup_dead_servers: raw.cleanup_dead_servers.unwrap_or(true),
            encrypt: raw.encrypt,
            client_addr,
            dns_addr: raw.dns_addr.unwrap_or(client_addr),
            http_addr: raw.http_addr.unwrap_or(client_addr),
            ports: raw.ports,
            recursors: raw.recursors,
            dns: raw.dns,
            services,
            checks: raw.checks,
            check_definitions,
            zones_dir,
            log_level,
            sources: paths,
        };
        Ok((config, raw.ignored))
    }
}

#[cfg(test)]
mod tests;
