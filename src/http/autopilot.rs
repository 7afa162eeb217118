//! `/v1/operator/autopilot/configuration` (GET, PUT with `?cas=`) and
//! `/v1/operator/autopilot/health`: autopilot's settings and its view of the servers.
//!
//! Input: the catalog's operator tables (`catalog::operator`), the Raft configuration
//! (`Consensus::servers`), each server's own Raft statistics (asked over the server RPC,
//! `Request::Hello`, as Consul's leader asks `Status.RaftStats`) and the gossip pool's member
//! status. Output: Consul's JSON shapes.
//!
//! The configuration goes through Raft (`Command::AutopilotSet`); until the leader has stored
//! the agent's own settings (`gossip::reconcile`, on gaining leadership), a GET shows them
//! with indexes 0. What cairn honours: `CleanupDeadServers` (the leader's dead-server
//! removal), `MinQuorum` (that removal never takes the voters below it), and
//! `LastContactThreshold` and `MaxTrailingLogs` (server health here). `ServerStabilizationTime`
//! is stored and shown but not used: cairn promotes a learner as soon as it has caught up.
//! `RedundancyZoneTag`, `DisableUpgradeMigration` and `UpgradeVersionTag` are Consul
//! Enterprise features: stored and shown, not used.
//!
//! Health (Consul's `IsHealthy`): a server is healthy when gossip says it is alive, its last
//! leader contact is within `LastContactThreshold`, its term is the leader's, and its log is
//! at most `MaxTrailingLogs` behind the leader's; a server that does not answer is unhealthy.
//! `FailureTolerance` is how many healthy voters exceed the quorum. `StableSince` is when
//! this agent first saw the server in its current health (`Stability`).
//! ACL: `operator:read` to read, `operator:write` to write.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use serde::Serialize;
use serde_json::Value;

use super::error::ApiError;
use super::operator::server_node;
use super::query::Query;
use super::token::{Acl, require};
use super::{ApiState, json};
use crate::catalog::Command;
use crate::catalog::duration::{format_go_duration, parse_go_duration};
use crate::catalog::operator::AutopilotConfig;
use crate::gossip::{MemberStatus, Membership};
use crate::rpc::{RaftServer, RaftStats, Request, Response as RpcResponse};

/// How long one server may take to report its Raft statistics.
const STATS_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /v1/operator/autopilot/configuration`.
pub(super) async fn get_configuration(
    State(st): State<ApiState>,
    acl: Acl,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    require(acl.operator_read())?;
    let q = Query::parse(q.as_deref());
    let config = current(&st);
    Ok(json(&ConfigJson::from(&config), q.has("pretty")))
}

/// The stored configuration, or the agent's own settings before the leader stored them.
fn current(st: &ApiState) -> AutopilotConfig {
    let snap = st.snapshots.load();
    snap.catalog
        .operator()
        .autopilot()
        .map_or_else(|| AutopilotConfig::defaults(st.config.cleanup_dead_servers), |c| (**c).clone())
}

/// `PUT /v1/operator/autopilot/configuration[?cas=N]`: answers `true`, or `false` when the
/// check-and-set index does not match.
pub(super) async fn set_configuration(
    State(st): State<ApiState>,
    acl: Acl,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    require(acl.operator_write())?;
    let q = Query::parse(q.as_deref());
    let cas = match q.get("cas") {
        Some(v) => Some(v.parse::<u64>().map_err(|_| {
            ApiError::BadRequest(format!(
                "Bad request: Error parsing cas value: strconv.ParseUint: parsing {v:?}: invalid syntax"
            ))
        })?),
        None => None,
    };
    let config = decode(&body)
        .map_err(|e| ApiError::BadRequest(format!("Bad request: Error parsing autopilot config: {e}")))?;
    let cmd = Command::AutopilotSet { config: Box::new(config), cas };
    cmd.validate()?;
    match st.consensus.propose_for_as(acl.authority(), cmd).await? {
        crate::catalog::CommandResponse::Bool(ok) => Ok(json(&ok, false)),
        other => Err(ApiError::Internal(format!("unexpected response to an autopilot write: {other:?}"))),
    }
}

/// Decodes Consul's `AutopilotConfiguration` (field names in any case; durations as Go
/// strings or nanoseconds). A PUT replaces the whole configuration: absent fields are zero.
fn decode(body: &[u8]) -> Result<AutopilotConfig, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| json_error(&e, body))?;
    let Value::Object(obj) = v else {
        return Err("json: cannot unmarshal into Go value of type api.AutopilotConfiguration".into());
    };
    let mut c = AutopilotConfig {
        last_contact_threshold_ns: 0,
        max_trailing_logs: 0,
        server_stabilization_time_ns: 0,
        ..AutopilotConfig::defaults(false)
    };
    for (k, v) in &obj {
        match k.to_ascii_lowercase().as_str() {
            "cleanupdeadservers" => c.cleanup_dead_servers = boolean(k, v)?,
            "lastcontactthreshold" => c.last_contact_threshold_ns = duration(v)?,
            "maxtrailinglogs" => c.max_trailing_logs = number(k, v)?,
            "minquorum" => c.min_quorum = number(k, v)?,
            "serverstabilizationtime" => c.server_stabilization_time_ns = duration(v)?,
            "redundancyzonetag" => c.redundancy_zone_tag = string(k, v)?,
            "disableupgrademigration" => c.disable_upgrade_migration = boolean(k, v)?,
            "upgradeversiontag" => c.upgrade_version_tag = string(k, v)?,
            // CreateIndex, ModifyIndex and unknown fields are ignored, as Go's decoder does.
            _ => {}
        }
    }
    Ok(c)
}

/// Go's message for undecodable JSON (`invalid character 'x' looking for beginning of value`).
fn json_error(e: &serde_json::Error, body: &[u8]) -> String {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => "EOF".into(),
        Some(&b) if !matches!(b, b'{' | b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n') => {
            format!("invalid character '{}' looking for beginning of value", char::from(b))
        }
        Some(_) => e.to_string(),
    }
}

fn unmarshal(k: &str, v: &Value, go: &str) -> String {
    let what = match v {
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        Value::Null => "null",
    };
    format!("json: cannot unmarshal {what} into Go struct field AutopilotConfiguration.{k} of type {go}")
}

fn boolean(k: &str, v: &Value) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Null => Ok(false),
        _ => Err(unmarshal(k, v, "bool")),
    }
}

fn number(k: &str, v: &Value) -> Result<u64, String> {
    match v {
        Value::Null => Ok(0),
        _ => v.as_u64().ok_or_else(|| unmarshal(k, v, "uint64")),
    }
}

fn string(k: &str, v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        _ => Err(unmarshal(k, v, "string")),
    }
}

/// A `ReadableDuration`: a Go duration string or nanoseconds.
fn duration(v: &Value) -> Result<u64, String> {
    match v {
        Value::String(s) => {
            let d = parse_go_duration(s)?;
            Ok(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        }
        Value::Number(n) => n.as_u64().ok_or_else(|| format!("time: invalid duration {n}")),
        Value::Null => Ok(0),
        other => Err(format!("time: invalid duration {other}")),
    }
}

/// Consul's `AutopilotConfiguration` JSON.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ConfigJson {
    cleanup_dead_servers: bool,
    last_contact_threshold: String,
    max_trailing_logs: u64,
    min_quorum: u64,
    server_stabilization_time: String,
    redundancy_zone_tag: String,
    disable_upgrade_migration: bool,
    upgrade_version_tag: String,
    create_index: u64,
    modify_index: u64,
}

impl From<&AutopilotConfig> for ConfigJson {
    fn from(c: &AutopilotConfig) -> Self {
        Self {
            cleanup_dead_servers: c.cleanup_dead_servers,
            last_contact_threshold: format_go_duration(Duration::from_nanos(c.last_contact_threshold_ns)),
            max_trailing_logs: c.max_trailing_logs,
            min_quorum: c.min_quorum,
            server_stabilization_time: format_go_duration(Duration::from_nanos(
                c.server_stabilization_time_ns,
            )),
            redundancy_zone_tag: c.redundancy_zone_tag.clone(),
            disable_upgrade_migration: c.disable_upgrade_migration,
            upgrade_version_tag: c.upgrade_version_tag.clone(),
            create_index: c.create_index,
            modify_index: c.modify_index,
        }
    }
}

/// When this agent first saw each server (by Raft id) in its current health.
#[derive(Debug, Default)]
pub(crate) struct Stability {
    seen: Mutex<BTreeMap<u64, (bool, SystemTime)>>,
}

impl Stability {
    /// Records `healthy` for server `id` at `now`; returns since when it has been so.
    fn observe(&self, id: u64, healthy: bool, now: SystemTime) -> SystemTime {
        let Ok(mut seen) = self.seen.lock() else { return now };
        let entry = seen.entry(id).or_insert((healthy, now));
        if entry.0 != healthy {
            *entry = (healthy, now);
        }
        entry.1
    }

    /// Forgets servers no longer in the configuration.
    fn retain(&self, ids: &[u64]) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.retain(|id, _| ids.contains(id));
        }
    }
}

/// Consul's `OperatorHealthReply`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct HealthJson {
    healthy: bool,
    failure_tolerance: usize,
    servers: Vec<ServerHealthJson>,
}

/// Consul's `ServerHealth`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ServerHealthJson {
    #[serde(rename = "ID")]
    id: String,
    name: String,
    address: String,
    serf_status: String,
    version: String,
    leader: bool,
    last_contact: String,
    last_term: u64,
    last_index: u64,
    healthy: bool,
    voter: bool,
    stable_since: String,
}

/// `GET /v1/operator/autopilot/health`.
pub(super) async fn health(
    State(st): State<ApiState>,
    acl: Acl,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    require(acl.operator_read())?;
    let q = Query::parse(q.as_deref());
    if !st.consensus.known_leader() {
        return Err(ApiError::NoLeader);
    }
    let config = current(&st);
    let servers = st.consensus.servers();
    let stats = raft_stats(&st, &servers).await;
    let members = match &st.gossip {
        Some(g) => g.members().await,
        None => Vec::new(),
    };
    let leader_stats = servers.iter().zip(&stats).find(|(s, _)| s.leader).and_then(|(_, st)| *st);
    let snap = st.snapshots.load_full();
    let now = SystemTime::now();
    let mut out = Vec::with_capacity(servers.len());
    for (s, stats) in servers.iter().zip(&stats) {
        let member = members.iter().find(|m| m.meta.as_ref().is_some_and(|meta| meta.raft_id == s.id));
        let serf = member.map_or(MemberStatus::Failed, |m| m.status);
        let healthy = is_healthy(&config, serf, *stats, leader_stats);
        let node = server_node(&snap.catalog, &s.addr);
        let stats = stats.unwrap_or_default();
        out.push(ServerHealthJson {
            id: node.map_or_else(|| s.id.to_string(), |n| n.id.clone()),
            name: member.map(|m| m.name.clone()).or_else(|| node.map(|n| n.name.clone())).unwrap_or_default(),
            address: s.addr.clone(),
            serf_status: member.map_or("none", |m| m.status.as_str()).to_owned(),
            version: member.and_then(|m| m.meta.as_ref()).map(|m| m.version.clone()).unwrap_or_default(),
            leader: s.leader,
            last_contact: format_go_duration(Duration::from_millis(stats.last_contact_ms)),
            last_term: stats.last_term,
            last_index: stats.last_index,
            healthy,
            voter: s.voter,
            stable_since: rfc3339(st.stability.observe(s.id, healthy, now)),
        });
    }
    st.stability.retain(&servers.iter().map(|s| s.id).collect::<Vec<_>>());
    let voters = out.iter().filter(|s| s.voter).count();
    let healthy_voters = out.iter().filter(|s| s.voter && s.healthy).count();
    let reply = HealthJson {
        healthy: out.iter().all(|s| s.healthy),
        failure_tolerance: healthy_voters.saturating_sub(voters / 2 + 1),
        servers: out,
    };
    Ok(json(&reply, q.has("pretty")))
}

/// Consul's `IsHealthy`: alive in gossip, recent leader contact, the leader's term, and a log
/// at most `MaxTrailingLogs` behind the leader's.
fn is_healthy(
    c: &AutopilotConfig,
    serf: MemberStatus,
    stats: Option<RaftStats>,
    leader: Option<RaftStats>,
) -> bool {
    let (Some(s), Some(l)) = (stats, leader) else { return false };
    serf == MemberStatus::Alive
        && u128::from(s.last_contact_ms) * 1_000_000 <= u128::from(c.last_contact_threshold_ns)
        && s.last_term == l.last_term
        && s.last_index.saturating_add(c.max_trailing_logs) >= l.last_index
}

/// Each server's own Raft statistics (`None`: it did not answer in time).
async fn raft_stats(st: &ApiState, servers: &[RaftServer]) -> Vec<Option<RaftStats>> {
    let pool = st.consensus.pool();
    let mut calls = tokio::task::JoinSet::new();
    for (i, s) in servers.iter().enumerate() {
        let pool = pool.clone();
        let addr = s.addr.clone();
        calls.spawn(async move {
            let stats = match pool.call(&addr, &Request::Hello, STATS_TIMEOUT).await {
                Ok(RpcResponse::Hello(info)) => info.raft_stats,
                _ => None,
            };
            (i, stats)
        });
    }
    let mut out = vec![None; servers.len()];
    while let Some(done) = calls.join_next().await {
        if let Ok((i, stats)) = done
            && let Some(slot) = out.get_mut(i)
        {
            *slot = stats;
        }
    }
    out
}

/// RFC 3339 in UTC, to the second (Go's `time.Time` JSON without its fraction).
fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    super::acl_time::rfc3339(secs.saturating_mul(1000)).replace(".000Z", "Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(contact: u64, term: u64, index: u64) -> Option<RaftStats> {
        Some(RaftStats { last_contact_ms: contact, last_term: term, last_index: index })
    }

    #[test]
    fn health_follows_consuls_rules() {
        let c = AutopilotConfig::defaults(true);
        let leader = stats(0, 3, 1000);
        assert!(is_healthy(&c, MemberStatus::Alive, stats(10, 3, 990), leader));
        assert!(is_healthy(&c, MemberStatus::Alive, stats(200, 3, 750), leader));
        assert!(!is_healthy(&c, MemberStatus::Alive, stats(201, 3, 990), leader), "contact too old");
        assert!(!is_healthy(&c, MemberStatus::Alive, stats(10, 2, 990), leader), "another term");
        assert!(!is_healthy(&c, MemberStatus::Alive, stats(10, 3, 749), leader), "too far behind");
        assert!(!is_healthy(&c, MemberStatus::Failed, stats(10, 3, 990), leader), "gossip failed");
        assert!(!is_healthy(&c, MemberStatus::Alive, None, leader), "no answer");
    }

    #[test]
    fn a_put_replaces_the_whole_configuration() {
        let c = decode(br#"{"cleanupdeadservers":true,"LastContactThreshold":"1s","MaxTrailingLogs":10,"ServerStabilizationTime":5000000000}"#).unwrap();
        assert!(c.cleanup_dead_servers);
        assert_eq!((c.last_contact_threshold_ns, c.max_trailing_logs), (1_000_000_000, 10));
        assert_eq!(c.server_stabilization_time_ns, 5_000_000_000);
        assert_eq!(c.min_quorum, 0);
        let c = decode(br#"{"CleanupDeadServers":false}"#).unwrap();
        assert_eq!(ConfigJson::from(&c).last_contact_threshold, "0s");
        assert_eq!(
            decode(br#"{"LastContactThreshold":"bad"}"#).unwrap_err(),
            r#"time: invalid duration "bad""#
        );
        assert_eq!(decode(b"xx").unwrap_err(), "invalid character 'x' looking for beginning of value");
    }

    #[test]
    fn stable_since_moves_only_when_health_changes() {
        let s = Stability::default();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let t1 = t0 + Duration::from_secs(5);
        assert_eq!(s.observe(1, true, t0), t0);
        assert_eq!(s.observe(1, true, t1), t0);
        assert_eq!(s.observe(1, false, t1), t1);
        s.retain(&[]);
        assert_eq!(s.observe(1, false, t1 + Duration::from_secs(1)), t1 + Duration::from_secs(1));
    }
}
