//! The resolved configuration: the types every other module reads (`Config` and its sections).
//!
//! Stage: output of loading (`validate` builds it). Invariants: every value is checked and
//! defaulted; domains are lower-case and fully qualified; nothing here knows about files.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::value::DEFAULT_SERVER_PORT;

/// Resolved agent configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Datacenter name, lower-cased (`datacenter`, default `dc1`).
    pub datacenter: String,
    /// This agent's node name (`node_name`, default: host name).
    pub node_name: String,
    /// This agent's node ID (`node_id`; generated and kept in the data dir when unset).
    pub node_id: String,
    /// This agent's node metadata (`node_meta`), validated as Consul does: the catalog node's
    /// `Meta` and `/v1/agent/self`'s `Meta` (beside Consul's `consul-network-segment`).
    pub node_meta: BTreeMap<String, String>,
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
    /// A server's WAN gossip pool (its port is `ports.serf_wan`).
    pub wan: WanConfig,
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
    /// Serve the server RPC on a non-loopback address with neither `encrypt` nor TLS, open to
    /// whoever reaches it (`insecure_rpc`, `--insecure-rpc`, default false: refuse to start).
    pub insecure_rpc: bool,
    /// Do not persist the gossip keyring to `<data_dir>/serf/local.keyring`
    /// (`disable_keyring_file`, default false).
    pub disable_keyring_file: bool,
    /// With `encrypt`: refuse unencrypted gossip and server-RPC peers that prove no key
    /// (`encrypt_verify_incoming`, default true; false only while encryption is rolled out).
    pub encrypt_verify_incoming: bool,
    /// With `encrypt`: encrypt outgoing gossip and prove the key on dialled server-RPC
    /// connections (`encrypt_verify_outgoing`, default true; false only during a rollout).
    pub encrypt_verify_outgoing: bool,
    /// Where HTTP and DNS listen unless `addresses` says otherwise (`client_addr`).
    pub client_addr: IpAddr,
    /// DNS listen address (`addresses.dns`, default `client_addr`).
    pub dns_addr: IpAddr,
    /// HTTP listen addresses (`addresses.http`, space-separated IPs and `unix://` paths, as in
    /// Consul; default `client_addr`).
    pub http_addrs: Vec<ListenAddr>,
    /// Owner and mode of the Unix sockets HTTP listens on (`unix_sockets {}`).
    pub unix_sockets: UnixSockets,
    /// HTTPS listen address (`addresses.https`, default `client_addr`).
    pub https_addr: IpAddr,
    /// TLS for HTTPS and the server RPC (Consul 1.8's flat keys and the `tls {}` block).
    pub tls: TlsConfig,
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
    /// Serve `/debug/pprof/*` without an ACL token (`enable_debug`; `--dev` turns it on, as
    /// Consul's dev mode does). With ACLs on, a token with `operator:read` may profile
    /// whatever this says, as in Consul.
    pub enable_debug: bool,
    /// The config files that were read, for error messages and reloads.
    pub sources: Vec<PathBuf>,
    /// ACLs (`acl {}`, `primary_datacenter`, the legacy `acl_*` keys).
    pub(crate) acl: AclConfig,
}

/// A server's WAN gossip pool: where it binds, what it advertises, whom it joins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WanConfig {
    /// Other datacenters' servers' WAN gossip addresses (`host[:port]`, port 8302 by default)
    /// to join the WAN pool through (`retry_join_wan`, then `start_join_wan`;
    /// `--retry-join-wan`, `--join-wan`).
    pub retry_join: Vec<String>,
    /// How long a failed WAN join waits before the next try (`retry_interval_wan`, 30s).
    pub retry_interval: Duration,
    /// How many WAN join attempts before giving up (`retry_max_wan`; 0, the default: forever).
    pub retry_max: u64,
    /// The address the WAN pool binds (`serf_wan`, Consul's `-serf-wan-bind`; default `bind_addr`).
    pub bind: Option<IpAddr>,
    /// The address other datacenters' servers dial for WAN gossip (`advertise_addr_wan`,
    /// `--advertise-wan`; default the bound address).
    pub advertise: Option<IpAddr>,
}

impl Default for WanConfig {
    fn default() -> Self {
        Self {
            retry_join: Vec::new(),
            retry_interval: Duration::from_secs(30),
            retry_max: 0,
            bind: None,
            advertise: None,
        }
    }
}

/// `acl.down_policy`: what a client agent does when no server can resolve a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum DownPolicy {
    /// `extend-cache` (default): cached entries stay valid; an uncached token is denied.
    #[default]
    ExtendCache,
    /// `async-cache`: as `extend-cache`, refreshed in the background.
    AsyncCache,
    /// `allow`: everything.
    Allow,
    /// `deny`: nothing.
    Deny,
}

/// The agent's configured ACL tokens (secrets: never logged; `Debug` redacts them).
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct AclTokens {
    /// `acl.tokens.master` / `initial_management` / `acl_master_token`: created by the leader.
    pub(crate) master: Option<String>,
    /// `acl.tokens.agent` / `acl_agent_token`: the agent's own writes.
    pub(crate) agent: Option<String>,
    /// `acl.tokens.agent_master` / `agent_recovery` / `acl_agent_master_token`: resolved locally.
    pub(crate) agent_master: Option<String>,
    /// `acl.tokens.default` / `acl_token`: requests without a token, and DNS.
    pub(crate) default: Option<String>,
    /// `acl.tokens.replication`.
    pub(crate) replication: Option<String>,
}

impl std::fmt::Debug for AclTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |t: &Option<String>| if t.is_some() { "<hidden>" } else { "<unset>" };
        f.debug_struct("AclTokens")
            .field("master", &shown(&self.master))
            .field("agent", &shown(&self.agent))
            .field("agent_master", &shown(&self.agent_master))
            .field("default", &shown(&self.default))
            .field("replication", &shown(&self.replication))
            .finish()
    }
}

/// Resolved ACL settings (spec §1.1).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AclConfig {
    /// `acl.enabled` (or `acl_datacenter` given).
    pub(crate) enabled: bool,
    /// `acl.default_policy`, default allow.
    pub(crate) default_policy: crate::acl::DefaultPolicy,
    /// `acl.down_policy`, default extend-cache.
    pub(crate) down_policy: DownPolicy,
    /// `acl.enable_key_list_policy`.
    pub(crate) enable_key_list_policy: bool,
    /// `acl.enable_token_persistence`: `PUT /v1/agent/token/*` writes `acl-tokens.json`.
    pub(crate) enable_token_persistence: bool,
    /// `acl.token_ttl` (default 30s).
    pub(crate) token_ttl: Duration,
    /// `acl.policy_ttl` (default 30s).
    pub(crate) policy_ttl: Duration,
    /// `acl.role_ttl` (default 30s).
    pub(crate) role_ttl: Duration,
    /// `acl.tokens {}`.
    pub(crate) tokens: AclTokens,
    /// `primary_datacenter` (default: `datacenter`; another value is refused at start).
    pub(crate) primary_datacenter: String,
}

impl AclConfig {
    /// ACLs off, as Consul's default, for an agent in `datacenter` (what loading gives).
    #[cfg(test)]
    pub(crate) fn disabled(datacenter: &str) -> Self {
        Self {
            enabled: false,
            default_policy: crate::acl::DefaultPolicy::Allow,
            down_policy: DownPolicy::ExtendCache,
            enable_key_list_policy: false,
            enable_token_persistence: false,
            token_ttl: Duration::from_secs(30),
            policy_ttl: Duration::from_secs(30),
            role_ttl: Duration::from_secs(30),
            tokens: AclTokens::default(),
            primary_datacenter: datacenter.to_owned(),
        }
    }
}

/// Ports the agent binds (`ports{}`); 0 asks the OS for a free port, -1 disables (DNS, HTTP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// DNS port (`ports.dns`, default 8600).
    pub dns: i32,
    /// HTTP API port (`ports.http`, default 8500).
    pub http: i32,
    /// HTTPS API port (`ports.https`, default -1: off).
    pub https: i32,
    /// Raft RPC port (`ports.server`, default 8300).
    pub server: u16,
    /// LAN gossip port (`ports.serf_lan`, default 8301).
    pub serf_lan: u16,
    /// WAN gossip port of a server (`ports.serf_wan`, default 8302; -1: no WAN pool, 0: a free
    /// port). Client agents never bind it.
    pub serf_wan: i32,
}

/// The lowest TLS version accepted (`tls_min_version`, default TLS 1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum TlsVersion {
    /// `tls10` / `TLSv1_0`.
    Tls10,
    /// `tls11` / `TLSv1_1`.
    Tls11,
    /// `tls12` / `TLSv1_2`.
    #[default]
    Tls12,
    /// `tls13` / `TLSv1_3`.
    Tls13,
}

/// TLS settings, resolved per interface (`tls.internal_rpc`, `tls.https`, each over
/// `tls.defaults` and the flat 1.8 keys).
#[derive(Debug, Clone, PartialEq)]
pub struct TlsConfig {
    /// The server RPC, in and out.
    pub internal_rpc: TlsInterface,
    /// The HTTPS API.
    pub https: TlsInterface,
    /// `server_name`: the name this agent's certificate is checked for (unset: its node name).
    pub server_name: Option<String>,
    /// `limits.https_handshake_timeout` (default 5s).
    pub https_handshake_timeout: Duration,
    /// `limits.rpc_handshake_timeout` (default 5s).
    pub rpc_handshake_timeout: Duration,
}

impl Default for TlsConfig {
    /// No TLS anywhere, Consul's 5 s handshake timeouts.
    fn default() -> Self {
        Self {
            internal_rpc: TlsInterface::default(),
            https: TlsInterface::default(),
            server_name: None,
            https_handshake_timeout: Duration::from_secs(5),
            rpc_handshake_timeout: Duration::from_secs(5),
        }
    }
}

/// One interface's TLS settings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TlsInterface {
    /// A PEM file of CA certificates (`ca_file`).
    pub ca_file: Option<PathBuf>,
    /// A directory of PEM CA certificates (`ca_path`).
    pub ca_path: Option<PathBuf>,
    /// This agent's certificate chain (`cert_file`).
    pub cert_file: Option<PathBuf>,
    /// This agent's private key (`key_file`).
    pub key_file: Option<PathBuf>,
    /// Require a CA-signed client certificate (`verify_incoming`, `verify_incoming_rpc`,
    /// `verify_incoming_https`).
    pub verify_incoming: bool,
    /// Outgoing connections use TLS and check the server against the CA (`verify_outgoing`;
    /// implied by `verify_server_hostname`).
    pub verify_outgoing: bool,
    /// Outgoing server RPC also checks the name `server.<datacenter>.<domain>`.
    pub verify_server_hostname: bool,
    /// `tls_min_version`.
    pub min_version: TlsVersion,
    /// `tls_cipher_suites`: Go/IANA names for TLS 1.2 (empty: the TLS stack's defaults).
    pub cipher_suites: Vec<String>,
}

impl TlsInterface {
    /// Whether a CA is configured (a file or a directory).
    pub fn has_ca(&self) -> bool {
        self.ca_file.is_some() || self.ca_path.is_some()
    }

    /// Whether this agent has a certificate and key for this interface.
    pub fn has_cert(&self) -> bool {
        self.cert_file.is_some() && self.key_file.is_some()
    }
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

impl Default for Ports {
    fn default() -> Self {
        Self { dns: 8600, http: 8500, https: -1, server: DEFAULT_SERVER_PORT, serf_lan: 8301, serf_wan: 8302 }
    }
}

/// Where a listener binds: an IP (with the listener's port) or a Unix socket path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// An IP address; the port is the listener's (`ports.http`).
    Ip(IpAddr),
    /// A Unix domain socket (`unix:///path`): any file already at the path is replaced.
    Unix(PathBuf),
}

/// `unix_sockets {}`: who owns a Unix socket cairn listens on, and its mode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnixSockets {
    /// Owner, a user name or numeric ID (`user`); unset keeps the agent's user.
    pub user: Option<String>,
    /// Group, a group name or numeric ID (`group`); unset keeps the agent's group.
    pub group: Option<String>,
    /// Permission bits, from Consul's octal string (`mode`, e.g. `"600"`); unset keeps the umask's.
    pub mode: Option<u32>,
}
