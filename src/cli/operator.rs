//! `cairn operator raft list-peers`: the servers in the Raft configuration, as Consul prints
//! them (`GET /v1/operator/raft/configuration`); `operator raft remove-peer`; `operator
//! autopilot get-config | set-config` (`/v1/operator/autopilot/configuration`), with Consul
//! 1.8.7's flags, texts and exit codes.

use serde::Deserialize;
use serde_json::Value;

use super::api::{Api, ApiError};
use super::{ConsulMessage, table};

/// One server as the agent reports it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Server {
    #[serde(rename = "ID")]
    id: String,
    node: String,
    address: String,
    leader: bool,
    protocol_version: String,
    voter: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Configuration {
    servers: Vec<Server>,
}

/// Fetches the Raft configuration and renders Consul's table.
pub async fn raft_list_peers(api: &Api) -> Result<String, ApiError> {
    let conf: Configuration = api.get("/v1/operator/raft/configuration").await?.json()?;
    let mut rows = vec![["Node", "ID", "Address", "State", "Voter", "RaftProtocol"].map(str::to_owned)];
    for s in conf.servers {
        let state = if s.leader { "leader" } else { "follower" };
        rows.push([s.node, s.id, s.address, state.to_owned(), s.voter.to_string(), s.protocol_version]);
    }
    Ok(table(&rows))
}

/// `cairn operator raft remove-peer -address=|-id=`: removes one server from the Raft
/// configuration (`DELETE /v1/operator/raft/peer`), with Consul's texts.
pub async fn raft_remove_peer(api: &Api, address: &str, id: &str) -> Result<String, ConsulMessage> {
    let refuse = |m: &str| Err(ConsulMessage(format!("Error removing peer: {m}")));
    let (key, value) = match (address.is_empty(), id.is_empty()) {
        (true, true) => return refuse("an address or id is required for the peer to remove"),
        (false, false) => return refuse("cannot give both an address and id"),
        (false, true) => ("address", address),
        (true, false) => ("id", id),
    };
    let query = form_urlencoded::Serializer::new(String::new()).append_pair(key, value).finish();
    api.delete(&format!("/v1/operator/raft/peer?{query}"))
        .await
        .map_err(|e| ConsulMessage(format!("Error removing peer: {e}")))?;
    Ok(format!("Removed peer with {key} {value:?}\n"))
}

/// `cairn operator autopilot set-config` flags: each one given replaces that setting.
#[derive(Debug, Default, clap::Args)]
pub struct AutopilotSetArgs {
    /// Whether dead servers are removed automatically when new ones are added (true|false).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub cleanup_dead_servers: Option<String>,
    /// Log entries a server may trail the leader by before it is unhealthy.
    #[arg(long, value_name = "N")]
    pub max_trailing_logs: Option<u64>,
    /// Servers required before autopilot may prune dead servers.
    #[arg(long, value_name = "N")]
    pub min_quorum: Option<u64>,
    /// Time a server may go without contact from the leader before it is unhealthy (`200ms`).
    #[arg(long, value_name = "DURATION")]
    pub last_contact_threshold: Option<String>,
    /// Time a server must be healthy before it is promoted (`10s`).
    #[arg(long, value_name = "DURATION")]
    pub server_stabilization_time: Option<String>,
    /// (Enterprise in Consul; stored) node_meta key separating redundancy zones.
    #[arg(long, value_name = "TAG")]
    pub redundancy_zone_tag: Option<String>,
    /// (Enterprise in Consul; stored) Whether upgrade migrations are avoided (true|false).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub disable_upgrade_migration: Option<String>,
    /// (Enterprise in Consul; stored) node_meta key carrying the version for upgrades.
    #[arg(long, value_name = "TAG")]
    pub upgrade_version_tag: Option<String>,
}

async fn autopilot_config(api: &Api) -> Result<serde_json::Map<String, Value>, ConsulMessage> {
    api.get("/v1/operator/autopilot/configuration")
        .await
        .and_then(|r| r.json())
        .map_err(|e| ConsulMessage(format!("Error querying Autopilot configuration: {e}")))
}

/// `cairn operator autopilot get-config`: Consul's `Key = value` lines.
pub async fn autopilot_get(api: &Api) -> Result<String, ConsulMessage> {
    let c = autopilot_config(api).await?;
    let plain = |k: &str| {
        c.get(k).map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)).unwrap_or_default()
    };
    let quoted = |k: &str| format!("{:?}", c.get(k).and_then(Value::as_str).unwrap_or_default());
    let mut out = String::new();
    for (k, v) in [
        ("CleanupDeadServers", plain("CleanupDeadServers")),
        ("LastContactThreshold", plain("LastContactThreshold")),
        ("MaxTrailingLogs", plain("MaxTrailingLogs")),
        ("MinQuorum", plain("MinQuorum")),
        ("ServerStabilizationTime", plain("ServerStabilizationTime")),
        ("RedundancyZoneTag", quoted("RedundancyZoneTag")),
        ("DisableUpgradeMigration", plain("DisableUpgradeMigration")),
        ("UpgradeVersionTag", quoted("UpgradeVersionTag")),
    ] {
        out.push_str(&format!("{k} = {v}\n"));
    }
    Ok(out)
}

/// Go's `strconv.ParseBool`.
fn go_bool(flag: &str, v: &str) -> Result<bool, ConsulMessage> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(ConsulMessage(format!(
            "Failed to parse args: invalid boolean value {v:?} for -{flag}: parse error"
        ))),
    }
}

/// `cairn operator autopilot set-config`: reads the configuration, replaces what the flags
/// set, writes it back with check-and-set (`?cas=ModifyIndex`), as Consul does.
pub async fn autopilot_set(api: &Api, args: &AutopilotSetArgs) -> Result<String, ConsulMessage> {
    let mut set: Vec<(&str, Value)> = Vec::new();
    if let Some(v) = &args.cleanup_dead_servers {
        set.push(("CleanupDeadServers", go_bool("cleanup-dead-servers", v)?.into()));
    }
    if let Some(v) = &args.disable_upgrade_migration {
        set.push(("DisableUpgradeMigration", go_bool("disable-upgrade-migration", v)?.into()));
    }
    for (flag, key, v) in [
        ("last-contact-threshold", "LastContactThreshold", &args.last_contact_threshold),
        ("server-stabilization-time", "ServerStabilizationTime", &args.server_stabilization_time),
    ] {
        if let Some(v) = v {
            crate::agent::parse_go_duration(v).map_err(|e| {
                ConsulMessage(format!("Failed to parse args: invalid value {v:?} for flag -{flag}: {e}"))
            })?;
            set.push((key, v.clone().into()));
        }
    }
    if let Some(v) = args.max_trailing_logs {
        set.push(("MaxTrailingLogs", v.into()));
    }
    if let Some(v) = args.min_quorum {
        set.push(("MinQuorum", v.into()));
    }
    if let Some(v) = &args.redundancy_zone_tag {
        set.push(("RedundancyZoneTag", v.clone().into()));
    }
    if let Some(v) = &args.upgrade_version_tag {
        set.push(("UpgradeVersionTag", v.clone().into()));
    }
    let mut conf = autopilot_config(api).await?;
    let cas = conf.get("ModifyIndex").and_then(Value::as_u64).unwrap_or(0);
    for (k, v) in set {
        conf.insert(k.to_owned(), v);
    }
    let body = Value::Object(conf).to_string().into_bytes();
    let done: bool = api
        .put(&format!("/v1/operator/autopilot/configuration?cas={cas}"), body)
        .await
        .and_then(|r| r.json())
        .map_err(|e| ConsulMessage(format!("Error setting Autopilot configuration: {e}")))?;
    if done {
        Ok("Configuration updated!\n".into())
    } else {
        Err(ConsulMessage("Configuration could not be atomically updated, please try again".into()))
    }
}
