//! Command line: `cairn agent` with Consul's option names as long flags, `cairn version`, and the
//! subcommands that talk to a running agent.
//!
//! `main` turns `AgentArgs` into `config::Overrides` and starts the agent. A subcommand that
//! talks to an agent lives in its own file here and reaches the agent only through
//! `api::Api` (the local agent's HTTP API, found through `-http-addr`, `CAIRN_HTTP_ADDR` or
//! `CONSUL_HTTP_ADDR`, over HTTPS with Consul's TLS flags and variables: `api::HttpArgs`).
//! `cairn tls` (Consul's certificate tooling) takes Consul's single-dash flags too: `main`
//! passes argv through `flags::normalise` first.

pub mod acl;
pub mod api;
pub mod assets;
pub mod catalog;
pub mod event;
pub mod flags;
pub mod info;
pub mod keyring;
pub mod kv;
pub mod lock;
pub mod maint;
pub mod members;
pub mod monitor;
pub mod operator;
pub mod rtt;
pub mod services;
pub mod snapshot;
pub mod tls;
pub mod validate;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Overrides;

/// cairn: service discovery with Consul's DNS and HTTP interfaces.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// How subcommands that talk to the agent reach it (global flags).
    #[command(flatten)]
    pub http: api::HttpArgs,
}

/// The top-level verbs whose flags may be spelt Consul's way, with one dash (`cli::flags`):
/// `tls`, and every verb that talks to the agent, as Consul's tutorials type them (`consul
/// members -ca-file=consul-agent-ca.pem -http-addr="https://localhost:8501"`, `consul kv put
/// -token=… k v`, `consul acl token create -policy-name p`). Issue 21 extends this to `agent`.
pub const SINGLE_DASH_VERBS: &[&str] = &[
    "tls",
    "members",
    "join",
    "leave",
    "keyring",
    "kv",
    "lock",
    "catalog",
    "services",
    "snapshot",
    "operator",
    "info",
    "reload",
    "acl",
    "event",
    "monitor",
    "maint",
    "force-leave",
    "rtt",
    "exec",
];

/// Whether the binary was started under the name `consul` (a symlink the packages may ship as
/// an alternative): it then behaves as Consul's CLI, so scripts written for Consul run
/// unchanged. Its help and errors name `consul`, `consul version` prints Consul's lines (the
/// Consul version cairn reports to Consul's clients, with cairn's own in the revision line),
/// and `consul agent` takes single-dash flags as every other verb does.
pub fn invoked_as_consul(argv0: &std::ffi::OsStr) -> bool {
    std::path::Path::new(argv0).file_name().is_some_and(|n| n == "consul")
}

/// The top-level verbs whose flags may be spelt with one dash when invoked as `consul`.
pub fn single_dash_verbs(as_consul: bool) -> Vec<&'static str> {
    let mut verbs = SINGLE_DASH_VERBS.to_vec();
    if as_consul {
        verbs.push("agent");
    }
    verbs
}

/// The command line parsed as `cairn`, or as Consul's CLI when `as_consul`.
pub fn parse(argv: Vec<std::ffi::OsString>) -> Cli {
    use clap::{CommandFactory as _, FromArgMatches as _};
    let as_consul = argv.first().is_some_and(|a| invoked_as_consul(a));
    let mut command = Cli::command();
    if as_consul {
        command = command.name("consul").bin_name("consul");
    }
    let argv = flags::normalise(&command, argv, &single_dash_verbs(as_consul));
    let matches = command.get_matches_from(argv);
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// `version`'s lines: cairn's, or Consul's shape when invoked as `consul`.
pub fn version_text(as_consul: bool) -> String {
    let cairn = env!("CARGO_PKG_VERSION");
    let consul = crate::CONSUL_COMPAT_VERSION;
    if as_consul {
        format!(
            "Consul v{consul}\nRevision cairn-v{cairn}\nProtocol 2 spoken by default, understands 2 to 3 \
             (agent will automatically use protocol >2 when speaking to compatible agents)\n\n"
        )
    } else {
        format!("cairn v{cairn}\nConsul API v{consul} (the version cairn reports to Consul's clients)\n")
    }
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run an agent (server or client).
    Agent(Box<AgentArgs>),
    /// Print the version.
    Version,
    /// Read and write the KV store of a running agent.
    #[command(subcommand)]
    Kv(kv::KvCommand),
    /// Run a command while holding a session lock on `PREFIX/.lock`.
    Lock(lock::LockArgs),
    /// List the members of the LAN gossip pool (Node, Address, Status, Type, Build, Protocol, DC).
    Members {
        /// List the WAN pool of the servers of every datacenter instead.
        #[arg(long)]
        wan: bool,
    },
    /// Join the LAN gossip pool through another agent's gossip address (`ip[:port]`, port 8301).
    Join {
        /// Join the WAN pool through another datacenter's server (`ip[:port]`, port 8302).
        #[arg(long)]
        wan: bool,
        /// The other agent's gossip address.
        addr: String,
    },
    /// Leave the LAN gossip pool gracefully and stop the agent.
    Leave,
    /// Print a new gossip encryption key (base64 of 32 random bytes) for `encrypt`.
    Keygen,
    /// List, install, use or remove gossip encryption keys on every member (one action).
    Keyring(keyring::KeyringArgs),
    /// Fire a user event to the agents of the datacenter (`-name`, `-node`, `-service`, `-tag`).
    Event(event::EventArgs),
    /// Stream the local agent's log.
    Monitor(monitor::MonitorArgs),
    /// List, enable or disable node and service maintenance mode.
    Maint(maint::MaintArgs),
    /// Mark a failed member as left (`-prune`: forget it).
    ForceLeave {
        /// Remove the agent completely from the list of members.
        #[arg(long)]
        prune: bool,
        /// The node's name.
        nodes: Vec<String>,
    },
    /// Estimate the network round trip time between two nodes.
    Rtt(rtt::RttArgs),
    /// Remote execution: disabled (as Consul's default), refused with the reason.
    Exec(event::ExecArgs),
    /// Cluster operations (`operator raft list-peers`).
    #[command(subcommand)]
    Operator(OperatorCommand),
    /// Check config files, service definitions and zone files without starting anything.
    Validate {
        /// Config directories (read as by --config-dir, zone files included), .toml/.json
        /// config or service definition files, and .zone files.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// Read the local agent's catalog.
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Register or deregister services with the local agent.
    #[command(subcommand)]
    Services(ServicesCommand),
    /// Save or restore a checksummed backup of the local agent's catalog.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Make the local agent reload its configuration (as SIGHUP does).
    Reload,
    /// Show the local agent's configuration and state.
    Info,
    /// Bootstrap ACLs and manage tokens, policies and roles (Consul's `consul acl`).
    #[command(subcommand)]
    Acl(acl::AclCommand),
    /// Create a CA and agent certificates, as `consul tls` does (Consul's file names and flags).
    #[command(subcommand)]
    Tls(tls::TlsCommand),
    /// Write the man page and shell completions into DIR (used by the packages).
    #[command(hide = true)]
    Assets {
        /// Output directory.
        dir: PathBuf,
    },
}

/// `cairn operator ...`.
#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Raft operations.
    #[command(subcommand)]
    Raft(RaftCommand),
    /// Autopilot's configuration.
    #[command(subcommand)]
    Autopilot(AutopilotCommand),
}

/// `cairn operator raft ...`.
#[derive(Debug, Subcommand)]
pub enum RaftCommand {
    /// List the servers in the Raft configuration (Node, ID, Address, State, Voter, RaftProtocol).
    ListPeers,
    /// Remove a server from the Raft configuration by its address or its ID.
    RemovePeer {
        /// The address (ip:port) to remove.
        #[arg(long, default_value = "")]
        address: String,
        /// The ID to remove.
        #[arg(long, default_value = "")]
        id: String,
    },
}

/// `cairn operator autopilot ...`.
#[derive(Debug, Subcommand)]
pub enum AutopilotCommand {
    /// Print autopilot's configuration.
    GetConfig,
    /// Change autopilot's configuration (only the settings whose flags are given).
    SetConfig(operator::AutopilotSetArgs),
}

/// `cairn catalog ...`.
#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// List the known datacenters.
    Datacenters,
    /// List the nodes of the catalog.
    Nodes,
    /// List the services of the catalog.
    Services {
        /// Show each service's tags.
        #[arg(long)]
        tags: bool,
    },
}

/// `cairn snapshot ...`.
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Save the catalog to FILE (written atomically, checksum verified).
    Save {
        /// `cairn` (cairn's own format) or `consul` (Consul 1.8.7's archive, for
        /// `consul snapshot restore`).
        #[arg(long, default_value = "cairn", value_parser = ["cairn", "consul"])]
        format: String,
        /// Backup file to write.
        file: PathBuf,
    },
    /// Replace the catalog with the one in FILE, a cairn backup or a Consul 1.8.7 snapshot
    /// archive (checksums verified; applied through Raft).
    Restore {
        /// Backup file to read.
        file: PathBuf,
    },
    /// Verify FILE (either format) and show its ID, size, index, term and version.
    Inspect {
        /// Backup file to read.
        file: PathBuf,
    },
}

/// `cairn services ...`.
#[derive(Debug, Subcommand)]
pub enum ServicesCommand {
    /// Register a service from flags (`-name=web -port=80`) or definition files (TOML or JSON).
    Register(services::RegisterArgs),
    /// Deregister a service by `-id`, or those in definition files (or given by ID).
    Deregister {
        /// ID of the service to deregister.
        #[arg(long, default_value = "")]
        id: String,
        /// Service definition files (or, cairn's older form, a service ID).
        files: Vec<PathBuf>,
    },
}

/// `cairn agent` flags; each overrides the same key in config files.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Development mode: one server, data in a temporary directory removed on exit, all on 127.0.0.1.
    #[arg(long)]
    pub dev: bool,
    /// Run as a Raft server (without it, and without --dev, the agent is a client: no Raft,
    /// writes forwarded to the servers, reads from a replica one of them streams).
    #[arg(long)]
    pub server: bool,
    /// Number of servers to wait for before bootstrapping the cluster.
    #[arg(long, value_name = "N")]
    pub bootstrap_expect: Option<u32>,
    /// Node name (default: the host name).
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
    /// Datacenter (default: dc1).
    #[arg(long, value_name = "DC")]
    pub datacenter: Option<String>,
    /// DNS domain (default: consul).
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,
    /// Alternative DNS domain answered beside the domain.
    #[arg(long, value_name = "DOMAIN")]
    pub alt_domain: Option<String>,
    /// Directory for the Raft log and catalog.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Cluster address advertised to other agents (default: 127.0.0.1).
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
    /// Address HTTP and DNS listen on (default: 127.0.0.1).
    #[arg(long, value_name = "ADDR")]
    pub client: Option<String>,
    /// HTTP API port (default: 8500; 0 picks a free port, -1 disables).
    #[arg(long, value_name = "PORT", allow_negative_numbers = true)]
    pub http_port: Option<i32>,
    /// DNS port, UDP and TCP (default: 8600; 0 picks a free port, -1 disables).
    #[arg(long, value_name = "PORT", allow_negative_numbers = true)]
    pub dns_port: Option<i32>,
    /// Raft RPC port (default: 8300).
    #[arg(long, value_name = "PORT")]
    pub server_port: Option<u16>,
    /// LAN gossip port (default: 8301).
    #[arg(long, value_name = "PORT")]
    pub serf_lan_port: Option<u16>,
    /// Another agent's LAN gossip address (`host[:port]`, port 8301 by default; a server's RPC
    /// address also works) to form or join the cluster through, or for a client to find the
    /// servers (repeatable).
    #[arg(long, value_name = "ADDR")]
    pub retry_join: Vec<String>,
    /// WAN gossip port of a server (default: 8302; 0 picks a free port, -1 disables WAN
    /// federation).
    #[arg(long, value_name = "PORT", allow_negative_numbers = true)]
    pub serf_wan_port: Option<i32>,
    /// Another datacenter's server's WAN gossip address (`host[:port]`, port 8302 by default)
    /// to join the WAN pool through, retried until it works (repeatable).
    #[arg(long, value_name = "ADDR")]
    pub retry_join_wan: Vec<String>,
    /// As --retry-join-wan (Consul's `start_join_wan`; repeatable).
    #[arg(long, value_name = "ADDR")]
    pub join_wan: Vec<String>,
    /// The address other datacenters' servers dial for WAN gossip (default: the bind address).
    #[arg(long, value_name = "ADDR")]
    pub advertise_wan: Option<String>,
    /// Raft log entries since the last snapshot that trigger a new snapshot (default 10000).
    #[arg(long, value_name = "N")]
    pub raft_snapshot_threshold: Option<u64>,
    /// Raft log entries kept behind a snapshot (default 1000).
    #[arg(long, value_name = "N")]
    pub raft_trailing_logs: Option<u64>,
    /// Gossip encryption key: base64 of 16, 24 or 32 bytes (`cairn keygen` makes one).
    #[arg(long, value_name = "KEY")]
    pub encrypt: Option<String>,
    /// Serve the server RPC on a non-loopback address without encrypt or TLS (anyone who can
    /// reach it could join as a voter or write to the catalog).
    #[arg(long)]
    pub insecure_rpc: bool,
    /// Upstream DNS server for names outside the domain (repeatable; `ip` or `ip:port`).
    #[arg(long, value_name = "ADDR")]
    pub recursor: Vec<String>,
    /// Config file, `.toml` or Consul `.json` (repeatable, read in order).
    #[arg(long, value_name = "FILE")]
    pub config_file: Vec<PathBuf>,
    /// Directory of `.toml`/`.json` config files read in name order (repeatable).
    #[arg(long, value_name = "DIR")]
    pub config_dir: Vec<PathBuf>,
    /// Log level: trace, debug, info, warn, err.
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Directory of RFC 1035 zone files (`*.zone`) served beside the domain (default with -dev: ./zones).
    #[arg(long, value_name = "DIR")]
    pub zones_dir: Option<PathBuf>,
}

impl AgentArgs {
    /// The flags as config overrides.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            dev: self.dev,
            server: self.server,
            bootstrap_expect: self.bootstrap_expect,
            node_name: self.node.clone(),
            datacenter: self.datacenter.clone(),
            domain: self.domain.clone(),
            alt_domain: self.alt_domain.clone(),
            data_dir: self.data_dir.clone(),
            bind_addr: self.bind.clone(),
            client_addr: self.client.clone(),
            http_port: self.http_port,
            dns_port: self.dns_port,
            server_port: self.server_port,
            serf_lan_port: self.serf_lan_port,
            retry_join: self.retry_join.clone(),
            serf_wan_port: self.serf_wan_port,
            retry_join_wan: self.retry_join_wan.clone(),
            join_wan: self.join_wan.clone(),
            advertise_wan: self.advertise_wan.clone(),
            raft_snapshot_threshold: self.raft_snapshot_threshold,
            raft_trailing_logs: self.raft_trailing_logs,
            encrypt: self.encrypt.clone(),
            insecure_rpc: self.insecure_rpc,
            recursors: self.recursor.clone(),
            config_files: self.config_file.clone(),
            config_dirs: self.config_dir.clone(),
            log_level: self.log_level.clone(),
            zones_dir: self.zones_dir.clone(),
        }
    }
}

/// A failed subcommand's message worded as Consul's CLI words it (`Error! Failed writing data:
/// Unexpected response code: 403 (Permission denied)`): `main` prints it as it is, with no
/// `error: ` prefix, and exits 1.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConsulMessage(pub String);

/// Left-aligned columns separated by two spaces, like Consul's `columnize`.
fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::table;

    #[test]
    fn the_consul_name_is_the_file_name() {
        use super::invoked_as_consul;
        assert!(invoked_as_consul("consul".as_ref()));
        assert!(invoked_as_consul("/usr/bin/consul".as_ref()));
        assert!(!invoked_as_consul("/usr/bin/cairn".as_ref()));
        assert!(!invoked_as_consul("/opt/consul/bin/consul-1.8".as_ref()));
        assert!(
            super::version_text(true).starts_with(&format!("Consul v{}\n", crate::CONSUL_COMPAT_VERSION))
        );
    }

    #[test]
    fn table_aligns_columns() {
        let rows = [["Node", "State"].map(str::to_owned), ["server-1", "leader"].map(str::to_owned)];
        assert_eq!(table(&rows), "Node      State\nserver-1  leader\n");
    }
}
