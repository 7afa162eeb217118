//! Agent configuration: Consul's agent-config keys, from TOML or Consul JSON files and flags.
//!
//! `Config` (`types`) is the resolved, validated form every other module reads. Loading runs in
//! three stages, one file each:
//!
//! 1. `source`: find the files (`--config-file`, `*.toml`/`*.json` of `--config-dir` in name
//!    order), parse JSON or TOML, refuse the security keys cairn does not implement yet, set
//!    aside the keys accepted but unused (both lists in `keys`), and read the rest into the
//!    serde schema (`schema`, value types in `value`); an error names the file and the key
//!    (`serde_path_to_error` tracks the key).
//! 2. `merge`: the files and then the flags are layers of that one schema; the last layer that
//!    gives a key wins, lists append.
//! 3. `validate`: one function per section turns the layers into `Config`, with the defaults
//!    and the checks that span keys or files; `tls` maps Consul 1.8's flat TLS keys and the
//!    `tls {}` block onto per-interface settings and runs Consul's TLS start-up checks.
//!
//! Adding a key touches two places: its field in `schema` (its value type parses and checks
//! it) and its line in `validate` (default, cross-checks, `Config` field). A flag for it is a
//! line in `merge::flag_layer` beside the `Overrides` field the CLI fills.
//!
//! This module imports only domain types (`agent` definitions, `catalog::Node`).

mod acl;
mod keys;
mod merge;
mod schema;
mod source;
mod tls;
mod types;
mod validate;
mod value;

use std::path::PathBuf;
use std::time::Duration;

pub(crate) use types::ListenAddr;
#[allow(unused_imports)]
pub(crate) use types::{AclConfig, DownPolicy};
pub(crate) use types::{
    CheckConfig, Ports, RecursorStrategy, SoaConfig, TlsConfig, TlsInterface, TlsVersion, UnixSockets,
    WanConfig,
};
pub use types::{Config, DnsConfig};
/// The recursor parser, for the DNS specification tests.
#[cfg(test)]
pub(crate) use value::parse_recursor;
pub(crate) use value::{DEFAULT_SERVER_PORT, join_addr};

/// Default `raft_snapshot_threshold` (Consul's is 16384; cairn's log entries are batches).
pub(crate) const DEFAULT_SNAPSHOT_THRESHOLD: u64 = 10_000;
/// Default `raft_trailing_logs`.
pub(crate) const DEFAULT_TRAILING_LOGS: u64 = 1_000;
/// Default `anti_entropy_interval`: Consul's full-sync interval (before scaling by cluster size).
pub(crate) const DEFAULT_ANTI_ENTROPY_INTERVAL: Duration = Duration::from_secs(60);

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
    /// A security key cairn does not implement yet is set to turn its feature on (`keys`).
    #[error("{file}: key {key:?} is not supported yet (refusing to start rather than run without it)")]
    Unsupported {
        /// The file.
        file: String,
        /// The dotted key path.
        key: String,
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
    /// `--serf-wan-port` (-1 disables the WAN pool).
    pub serf_wan_port: Option<i32>,
    /// `--retry-join-wan` (repeatable).
    pub retry_join_wan: Vec<String>,
    /// `--join-wan` (repeatable; Consul's `start_join_wan`).
    pub join_wan: Vec<String>,
    /// `--advertise-wan`.
    pub advertise_wan: Option<String>,
    /// `--raft-snapshot-threshold`.
    pub raft_snapshot_threshold: Option<u64>,
    /// `--raft-trailing-logs`.
    pub raft_trailing_logs: Option<u64>,
    /// `--encrypt`.
    pub encrypt: Option<String>,
    /// `--insecure-rpc`.
    pub insecure_rpc: bool,
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

impl Config {
    /// Loads files, then applies flags, then validates. Errors name the file and key. The
    /// second value lists the Consul keys accepted but not used (`file: key`), for a warning.
    pub fn load(o: &Overrides) -> Result<(Self, Vec<String>), ConfigError> {
        let paths = source::config_paths(o)?;
        let mut layers = merge::Layers::default();
        let mut ignored = Vec::new();
        for p in &paths {
            let (keys, unused) = source::load_file(p)?;
            layers.push(p.display().to_string(), keys);
            ignored.extend(unused);
        }
        layers.push(merge::COMMAND_LINE.into(), merge::flag_layer(o)?);
        let config = validate::resolve(&layers, o.dev, paths)?;
        ignored.extend(validate::notes(&layers, &config));
        Ok((config, ignored))
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_wan;
