//! `GET /v1/agent/self`: this agent's configuration, member entry and statistics, in Consul
//! 1.8.7's shape, so the Go client (`Agent().Self()`, its join test's `SerfAdvertiseAddrLAN`)
//! and `consul info` read it unchanged.
//!
//! Stage: agent read view. Input: the resolved config, the consensus handle, the gossip pool,
//! the published snapshot → output: `{Config, DebugConfig, Coord, Member, Stats, Meta, xDS}`.
//! Invariants: every value is one cairn holds (nothing invented to look like Consul): settings
//! cairn does not have are left out of `DebugConfig` rather than given Consul's defaults;
//! secrets show as `"hidden"` as Consul shows them; `Coord` is null (cairn keeps no network
//! coordinates); the version is `crate::CONSUL_COMPAT_VERSION` everywhere.

use std::sync::atomic::Ordering::Relaxed;

use axum::extract::{RawQuery, State};
use axum::response::Response;
use serde_json::{Value, json as js};

use super::error::ApiError;
use super::query::Query;
use super::token::{Acl, require};
use super::{ApiState, json};
use crate::catalog::duration::format_go_duration as go;
use crate::config::Config;

use crate::{REVISION, build_tag};

pub(super) async fn self_info(
    State(st): State<ApiState>,
    acl: Acl,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    require(acl.agent_read(&st.config.node_name))?;
    let q = Query::parse(q.as_deref());
    let snap = st.snapshots.load_full();
    let mut stats = js!({
        "agent": agent_stats(&st),
        "build": {
            "prerelease": "",
            "revision": REVISION,
            "version": crate::CONSUL_COMPAT_VERSION,
        },
        "consul": consul_stats(&st),
        "runtime": runtime_stats(),
    });
    if let Some(raft) = raft_stats(&st) {
        stats["raft"] = raft;
    }
    if let Some(serf) = serf_lan_stats(&st).await {
        stats["serf_lan"] = serf;
    }
    if let Some(replica) = replica_stats(&st, snap.index) {
        stats["replica"] = replica;
    }
    let mut meta = st.config.node_meta.clone();
    meta.insert("consul-network-segment".into(), String::new());
    let body = js!({
        "Config": self_config(&st.config),
        "DebugConfig": debug_config(&st.config, st.acl.enabled()),
        "Coord": null,
        "Member": self_member(&st.config),
        "Stats": stats,
        "Meta": meta,
        "xDS": null,
    });
    Ok(json(&body, q.has("pretty")))
}

/// `Config` of `/v1/agent/self` (Consul 1.8.7's six keys).
fn self_config(c: &Config) -> Value {
    js!({
        "Datacenter": c.datacenter,
        "NodeName": c.node_name,
        "NodeID": c.node_id,
        "Revision": REVISION,
        "Server": c.server,
        "Version": crate::CONSUL_COMPAT_VERSION,
    })
}

/// Consul's `tcp://ip:port` form of an address.
fn tcp(ip: std::net::IpAddr, port: u16) -> String {
    format!("tcp://{}", std::net::SocketAddr::new(ip, port))
}

fn path(p: Option<&std::path::PathBuf>) -> String {
    p.map(|p| p.display().to_string()).unwrap_or_default()
}

/// `DebugConfig`: Consul's `RuntimeConfig` names for the settings cairn has, with Consul's
/// formats (`tcp://ip:port` addresses, Go durations, `-1` for a disabled port); identity and
/// addresses here, DNS and the rest in the two functions below.
fn debug_config(c: &Config, acls: bool) -> Value {
    let (bind, server, serf) = (c.bind_addr, c.ports.server, c.ports.serf_lan);
    let addrs = |ip, port: i32| u16::try_from(port).map_or_else(|_| js!([]), |p| js!([tcp(ip, p)]));
    let dns_addrs = u16::try_from(c.ports.dns).map_or_else(
        |_| js!([]),
        |p| js!([tcp(c.dns_addr, p), format!("udp://{}", std::net::SocketAddr::new(c.dns_addr, p))]),
    );
    let mut all = js!({
        "Datacenter": c.datacenter,
        "PrimaryDatacenter": c.acl.primary_datacenter,
        "NodeName": c.node_name,
        "NodeID": c.node_id,
        "NodeMeta": c.node_meta,
        "ServerMode": c.server,
        "Bootstrap": c.server && c.bootstrap_expect == 1,
        "BootstrapExpect": c.bootstrap_expect,
        "DevMode": c.dev,
        "EnableDebug": c.enable_debug,
        "DataDir": c.data_dir.display().to_string(),
        "Version": crate::CONSUL_COMPAT_VERSION,
        "VersionPrerelease": "",
        "Revision": REVISION,
        "BindAddr": bind.to_string(),
        "AdvertiseAddrLAN": bind.to_string(),
        "TaggedAddresses": { "lan": bind.to_string(), "lan_ipv4": bind.to_string() },
        "ClientAddrs": [c.client_addr.to_string()],
        "SerfBindAddrLAN": tcp(bind, serf),
        "SerfAdvertiseAddrLAN": tcp(bind, serf),
        "SerfPortLAN": serf,
        "RPCBindAddr": tcp(bind, server),
        "RPCAdvertiseAddr": tcp(bind, server),
        "ServerPort": server,
        "HTTPPort": c.ports.http,
        "HTTPAddrs": http_addrs(c),
        "UnixSocketUser": c.unix_sockets.user.clone().unwrap_or_default(),
        "UnixSocketGroup": c.unix_sockets.group.clone().unwrap_or_default(),
        "UnixSocketMode": c.unix_sockets.mode.map(|m| format!("{m:o}")).unwrap_or_default(),
        "HTTPSPort": c.ports.https,
        "HTTPSAddrs": addrs(c.https_addr, c.ports.https),
        "DNSPort": c.ports.dns,
        "DNSAddrs": dns_addrs,
    });
    for part in [debug_dns(c), debug_security(c, acls)] {
        if let (Some(all), Value::Object(part)) = (all.as_object_mut(), part) {
            all.extend(part);
        }
    }
    all
}

/// `HTTPAddrs`: `tcp://ip:port` and `unix:///path`, as Consul lists them (none when
/// `ports.http` is -1).
fn http_addrs(c: &Config) -> Value {
    let Ok(port) = u16::try_from(c.ports.http) else {
        return js!([]);
    };
    let each = c.http_addrs.iter().map(|a| match a {
        crate::config::ListenAddr::Ip(ip) => format!("tcp://{}", std::net::SocketAddr::new(*ip, port)),
        crate::config::ListenAddr::Unix(path) => format!("unix://{}", path.display()),
    });
    Value::Array(each.map(Value::String).collect())
}

/// The DNS part of `DebugConfig`.
fn debug_dns(c: &Config) -> Value {
    js!({
        "DNSDomain": c.domain,
        "DNSAltDomain": c.alt_domain.clone().unwrap_or_default(),
        "DNSRecursors": c.recursors.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "DNSRecursorTimeout": go(c.dns.recursor_timeout),
        "DNSAllowStale": c.dns.allow_stale,
        "DNSMaxStale": go(c.dns.max_stale),
        "DNSNodeTTL": go(c.dns.node_ttl),
        "DNSServiceTTL": c.dns.service_ttl.iter().map(|(k, v)| (k.clone(), go(*v))).collect::<std::collections::BTreeMap<_, _>>(),
        "DNSOnlyPassing": c.dns.only_passing,
        "DNSEnableTruncate": c.dns.enable_truncate,
        "DNSDisableCompression": c.dns.disable_compression,
        "DNSUDPAnswerLimit": c.dns.udp_answer_limit,
        "DNSARecordLimit": c.dns.a_record_limit,
        "DNSNodeMetaTXT": c.dns.enable_additional_node_meta_txt,
        "DNSSOA": { "Expire": c.dns.soa.expire, "Minttl": c.dns.soa.min_ttl,
                    "Refresh": c.dns.soa.refresh, "Retry": c.dns.soa.retry },
    })
}

/// The cluster, checks, ACL and TLS part of `DebugConfig` (secrets as `"hidden"`).
fn debug_security(c: &Config, acls: bool) -> Value {
    let hidden = |set: bool| if set { "hidden" } else { "" };
    let rpc_tls = &c.tls.internal_rpc;
    js!({
        "RetryJoinLAN": c.retry_join,
        "RaftSnapshotThreshold": c.raft_snapshot_threshold,
        "RaftTrailingLogs": c.raft_trailing_logs,
        "AEInterval": go(c.anti_entropy_interval),
        "AutopilotCleanupDeadServers": c.cleanup_dead_servers,
        "EncryptKey": hidden(c.encrypt.is_some()),
        "EncryptVerifyIncoming": c.encrypt_verify_incoming,
        "EncryptVerifyOutgoing": c.encrypt_verify_outgoing,
        "DisableKeyringFile": c.disable_keyring_file,
        "EnableRemoteScriptChecks": c.checks.enable_script_checks,
        "EnableLocalScriptChecks": c.checks.local_scripts(),
        "CheckUpdateInterval": go(c.checks.update_interval),
        "CheckOutputMaxSize": c.checks.output_max_size,
        "CheckDeregisterIntervalMin": go(c.checks.deregister_interval_min),
        "CheckReapInterval": go(c.checks.reap_interval),
        "ACLsEnabled": acls,
        "ACLDefaultPolicy": match c.acl.default_policy {
            crate::acl::DefaultPolicy::Allow => "allow",
            crate::acl::DefaultPolicy::Deny => "deny",
        },
        "ACLDownPolicy": match c.acl.down_policy {
            crate::config::DownPolicy::ExtendCache => "extend-cache",
            crate::config::DownPolicy::AsyncCache => "async-cache",
            crate::config::DownPolicy::Allow => "allow",
            crate::config::DownPolicy::Deny => "deny",
        },
        "ACLEnableKeyListPolicy": c.acl.enable_key_list_policy,
        "ACLEnableTokenPersistence": c.acl.enable_token_persistence,
        "ACLTokenTTL": go(c.acl.token_ttl),
        "ACLPolicyTTL": go(c.acl.policy_ttl),
        "ACLRoleTTL": go(c.acl.role_ttl),
        "ACLMasterToken": "hidden",
        "ACLAgentToken": "hidden",
        "ACLAgentMasterToken": "hidden",
        "ACLToken": "hidden",
        "ACLReplicationToken": "hidden",
        "CAFile": path(rpc_tls.ca_file.as_ref()),
        "CAPath": path(rpc_tls.ca_path.as_ref()),
        "CertFile": path(rpc_tls.cert_file.as_ref()),
        "KeyFile": "hidden",
        "VerifyIncoming": rpc_tls.verify_incoming,
        "VerifyOutgoing": rpc_tls.verify_outgoing,
        "VerifyServerHostname": rpc_tls.verify_server_hostname,
        "ServerName": c.tls.server_name.clone().unwrap_or_default(),
        "Logging": { "LogLevel": c.log_level.to_ascii_uppercase() },
    })
}

/// `Member` of `/v1/agent/self`: this agent as its gossip pool lists it (`members` tags).
fn self_member(c: &Config) -> Value {
    let role = if c.server { "consul" } else { "node" };
    let mut tags = js!({
        "build": build_tag(),
        "dc": c.datacenter,
        "id": c.node_id,
        "role": role,
        "segment": "",
        "vsn": "2",
        "vsn_max": "3",
        "vsn_min": "2",
    });
    if c.server {
        tags["port"] = c.ports.server.to_string().into();
        tags["raft_vsn"] = "3".into();
    }
    js!({
        "Name": c.node_name,
        "Addr": c.bind_addr.to_string(),
        "Port": c.ports.serf_lan,
        "Tags": tags,
        "Status": 1,
        "ProtocolMin": 1,
        "ProtocolMax": 5,
        "ProtocolCur": 2,
        "DelegateMin": 2,
        "DelegateMax": 5,
        "DelegateCur": 4,
    })
}

/// `Stats.agent`: this agent's registered checks and services, and its check runners.
fn agent_stats(st: &ApiState) -> Value {
    let checks = st.local.checks();
    let runner = st.checks.stats();
    js!({
        "check_monitors": checks.iter().filter(|ch| ch.check_type == "script").count().to_string(),
        "check_ttls": checks.iter().filter(|ch| ch.definition.ttl_ns > 0).count().to_string(),
        "checks": checks.len().to_string(),
        "services": st.local.services().len().to_string(),
        "check_runners": runner.running.load(Relaxed).to_string(),
        "check_probes": runner.probes.load(Relaxed).to_string(),
        "check_updates": runner.updates.load(Relaxed).to_string(),
    })
}

/// `Stats.consul`: role, leader and known servers (`bootstrap` is Consul's `bootstrap = true`,
/// which cairn's `bootstrap_expect = 1` is).
fn consul_stats(st: &ApiState) -> Value {
    let c = &st.config;
    let mut v = js!({
        "server": c.server.to_string(),
        "known_servers": st.consensus.peer_addrs().len().to_string(),
        "known_datacenters": "1",
        "acl": if st.acl.enabled() { "enabled" } else { "disabled" },
    });
    if c.server {
        v["leader"] = st.consensus.is_leader().to_string().into();
        v["leader_addr"] = st.consensus.leader_addr().unwrap_or_default().into();
        v["bootstrap"] = (c.bootstrap_expect == 1).to_string().into();
    }
    v
}

/// `Stats.raft` on a server: the Raft node's state as openraft reports it.
fn raft_stats(st: &ApiState) -> Option<Value> {
    let r = st.consensus.raft_status()?;
    let configuration: Vec<String> = st
        .consensus
        .servers()
        .iter()
        .map(|s| {
            let suffrage = if s.voter { "Voter" } else { "Nonvoter" };
            format!("{{Suffrage:{suffrage} ID:{} Address:{}}}", s.id, s.addr)
        })
        .collect();
    Some(js!({
        "state": r.state,
        "term": r.term.to_string(),
        "applied_index": r.applied_index.to_string(),
        "commit_index": r.commit_index.to_string(),
        "last_log_index": r.last_log_index.to_string(),
        "last_snapshot_index": r.last_snapshot_index.to_string(),
        "last_snapshot_term": r.last_snapshot_term.to_string(),
        "last_contact": st.consensus.last_contact_ms().to_string(),
        "num_peers": st.consensus.peer_addrs().len().saturating_sub(1).to_string(),
        "latest_configuration": format!("[{}]", configuration.join(" ")),
        "latest_configuration_index": st.consensus.membership_index().to_string(),
        "protocol_version": "3",
        "protocol_version_max": "3",
        "protocol_version_min": "0",
    }))
}

/// `Stats.runtime`: Consul reports Go's runtime; cairn reports the same keys for its own
/// process (`version` the Rust toolchain it requires, `goroutines` the tokio runtime's live tasks).
fn runtime_stats() -> Value {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let tasks = tokio::runtime::Handle::try_current().map_or(0, |h| h.metrics().num_alive_tasks());
    js!({
        "arch": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
        "os": std::env::consts::OS,
        "version": concat!("rust>=", env!("CARGO_PKG_RUST_VERSION")),
        "cpu_count": cpus.to_string(),
        "max_procs": cpus.to_string(),
        "goroutines": tasks.to_string(),
    })
}

/// `Stats.serf_lan`: the LAN pool's members by status, and whether it is encrypted.
async fn serf_lan_stats(st: &ApiState) -> Option<Value> {
    use crate::gossip::{MemberStatus, Membership};
    let gossip = st.gossip.as_ref()?;
    let members = gossip.members().await;
    let count = |s: MemberStatus| members.iter().filter(|m| m.status == s).count().to_string();
    Some(js!({
        "members": members.len().to_string(),
        "failed": count(MemberStatus::Failed),
        "left": count(MemberStatus::Left),
        "encrypted": st.config.encrypt.is_some().to_string(),
    }))
}

/// `Stats.replica`, on a client agent only: the server its replica stream follows and how it
/// went (`applied_index` is the published snapshot's index).
fn replica_stats(st: &ApiState, applied_index: u64) -> Option<Value> {
    let client = st.replica.as_ref()?;
    let stream = client.stream_status();
    let stats = client.stats();
    Some(js!({
        "server": stream.server.unwrap_or_default(),
        "applied_index": applied_index.to_string(),
        "lag_index": client.lag_index().to_string(),
        "last_contact": client.last_contact_ms().to_string(),
        "dumps": stats.dumps.load(Relaxed).to_string(),
        "resumes": stats.resumes.load(Relaxed).to_string(),
        "connects": stats.connects.load(Relaxed).to_string(),
    }))
}
