//! Consul 1.8.7's FSM snapshot (`state.bin`) -> a cairn catalog: the migration path of
//! `PUT /v1/snapshot` and `cairn snapshot restore` for a Consul archive.
//!
//! Input: `state.bin`'s bytes: a go-msgpack header `{LastIndex}` then records, each a
//! message-type byte and one msgpack value (Consul's `agent/consul/fsm/snapshot_oss.go`).
//! Output: an [`Import`]: a `CatalogDump` to restore through Raft (`Command::Restore`), and
//! how many records of each kind were left out (cairn does not model them: Connect CA state,
//! intentions, binding rules, auth methods, federation states, chunking state, unknown types).
//!
//! Decisions:
//! - Every record is decoded whole before anything is returned: a damaged or truncated
//!   `state.bin` is an error and the catalog is untouched (the caller proposes nothing).
//! - Consul's indexes belong to Consul's Raft log; in cairn's they could lie ahead of the log
//!   and break blocking queries, so every imported row gets index `at` (the caller passes the
//!   index the catalog has reached; the restore itself applies after it).
//! - Config entries keep Consul's field names (they are its API's) without their indexes; the
//!   HTTP layer re-validates each before the restore (`http::snapshot`).
//! - A field of an unexpected type reads as Go's zero value, as Consul's decoder would refuse
//!   it; a record that is not a map is skipped and counted.

use std::collections::BTreeMap;

use super::consul_time::ms_from_go_time;
use crate::acl::GLOBAL_MANAGEMENT_POLICY_ID;
use crate::catalog::acl::{
    AclLink, AclPolicy, AclRole, AclToken, GLOBAL_MANAGEMENT_NAME, NodeIdentity, ServiceIdentity,
};
use crate::catalog::config_entry::ConfigEntry;
use crate::catalog::kv::{KvEntry, Session, SessionBehavior};
use crate::catalog::operator::{AutopilotConfig, Coordinate, CoordinateEntry};
use crate::catalog::{
    CatalogDump, Check, CheckDefinition, HealthStatus, Node, PreparedQuery, QueryFailover, QueryService,
    Service, ServiceAddress, Weights,
};
use crate::codec::msgpack::{Json, MsgpackError, Value, read};

/// What a Consul snapshot held, as cairn's catalog.
#[derive(Debug, Clone, Default)]
pub(crate) struct Import {
    /// The catalog to restore.
    pub dump: CatalogDump,
    /// Consul's `LastIndex`.
    pub last_index: u64,
    /// Records left out, by kind.
    pub skipped: BTreeMap<String, usize>,
}

/// Why `state.bin` could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// A record's msgpack is damaged or truncated.
    #[error("failed to restore snapshot state: record {record}: {reason}")]
    Msgpack {
        /// 0 for the header, then 1, 2, ...
        record: usize,
        /// What is wrong.
        reason: String,
    },
    /// The header is not `{LastIndex}`.
    #[error("failed to restore snapshot state: the header has no LastIndex")]
    Header,
}

fn msgpack(record: usize, e: &MsgpackError) -> StateError {
    StateError::Msgpack { record, reason: e.to_string() }
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_text).unwrap_or_default()
}

fn num(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or_default()
}

fn flag(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or_default()
}

fn port(v: &Value, key: &str) -> u16 {
    u16::try_from(num(v, key)).unwrap_or_default()
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key).map(|l| l.items().iter().filter_map(Value::as_text).collect()).unwrap_or_default()
}

fn string_map(v: &Value, key: &str) -> BTreeMap<String, String> {
    let entries = v.get(key).map(Value::entries).unwrap_or_default();
    entries.iter().filter_map(|(k, v)| Some((k.as_text()?, v.as_text()?))).collect()
}

fn json_map(v: &Value, key: &str) -> BTreeMap<String, Json> {
    let entries = v.get(key).map(Value::entries).unwrap_or_default();
    entries.iter().filter_map(|(k, v)| Some((k.as_text()?, v.to_json()))).collect()
}

fn node(r: &Value, dc: &str) -> Node {
    let mut n = Node::new(&text(r, "Node"), &text(r, "Address"), &text(r, "Datacenter"));
    if n.datacenter.is_empty() {
        dc.clone_into(&mut n.datacenter);
    }
    n.id = text(r, "ID");
    n.tagged_addresses = string_map(r, "TaggedAddresses");
    n.meta = string_map(r, "NodeMeta");
    n
}

fn service(node: &str, s: &Value) -> Service {
    let mut out = Service::new(node, &text(s, "ID"), &text(s, "Service"), port(s, "Port"));
    out.tags = strings(s, "Tags");
    out.address = text(s, "Address");
    out.meta = string_map(s, "Meta");
    let tagged = s.get("TaggedAddresses").map(Value::entries).unwrap_or_default();
    out.tagged_addresses = tagged
        .iter()
        .filter_map(|(k, a)| {
            Some((k.as_text()?, ServiceAddress { address: text(a, "Address"), port: port(a, "Port") }))
        })
        .collect();
    if let Some(w) = s.get("Weights").filter(|w| matches!(w, Value::Map(_))) {
        let weight = |k| u32::try_from(num(w, k)).unwrap_or(1);
        out.weights = Weights { passing: weight("Passing"), warning: weight("Warning") };
    }
    out.enable_tag_override = flag(s, "EnableTagOverride");
    out.mesh.kind = text(s, "Kind");
    out.mesh.native = s.get("Connect").is_some_and(|c| flag(c, "Native"));
    out.mesh.sidecar = flag(s, "LocallyRegisteredAsSidecar");
    if let Some(p) = s.get("Proxy") {
        let m = &mut out.mesh.proxy;
        m.destination_service_name = text(p, "DestinationServiceName");
        m.destination_service_id = text(p, "DestinationServiceID");
        m.local_service_address = text(p, "LocalServiceAddress");
        m.local_service_port = port(p, "LocalServicePort");
        m.config = json_map(p, "Config");
        m.mesh_gateway_mode = p.get("MeshGateway").map(|g| text(g, "Mode")).unwrap_or_default();
        m.upstreams = p.get("Upstreams").map(Value::items).unwrap_or_default().iter().map(upstream).collect();
        if let Some(e) = p.get("Expose") {
            m.expose.checks = flag(e, "Checks");
            m.expose.paths =
                e.get("Paths").map(Value::items).unwrap_or_default().iter().map(expose_path).collect();
        }
    }
    out
}

fn upstream(u: &Value) -> crate::catalog::Upstream {
    crate::catalog::Upstream {
        destination_type: text(u, "DestinationType"),
        destination_namespace: text(u, "DestinationNamespace"),
        destination_name: text(u, "DestinationName"),
        datacenter: text(u, "Datacenter"),
        local_bind_address: text(u, "LocalBindAddress"),
        local_bind_port: port(u, "LocalBindPort"),
        config: json_map(u, "Config"),
        mesh_gateway_mode: u.get("MeshGateway").map(|g| text(g, "Mode")).unwrap_or_default(),
    }
}

fn expose_path(p: &Value) -> crate::catalog::ExposePath {
    crate::catalog::ExposePath {
        listener_port: port(p, "ListenerPort"),
        path: text(p, "Path"),
        local_path_port: port(p, "LocalPathPort"),
        protocol: text(p, "Protocol"),
        parsed_from_check: flag(p, "ParsedFromCheck"),
    }
}

fn check(c: &Value) -> Option<Check> {
    let status = HealthStatus::parse(&text(c, "Status"))?;
    let d = c.get("Definition").unwrap_or(&Value::Nil);
    let header = d.get("Header").map(Value::entries).unwrap_or_default();
    let definition = CheckDefinition {
        ttl_ns: num(d, "TTL"),
        interval_ns: num(d, "Interval"),
        timeout_ns: num(d, "Timeout"),
        deregister_critical_service_after_ns: num(d, "DeregisterCriticalServiceAfter"),
        http: text(d, "HTTP"),
        tcp: text(d, "TCP"),
        method: text(d, "Method"),
        header: header
            .iter()
            .filter_map(|(k, v)| Some((k.as_text()?, v.items().iter().filter_map(Value::as_text).collect())))
            .collect(),
        body: text(d, "Body"),
        tls_skip_verify: flag(d, "TLSSkipVerify"),
        grpc: text(d, "GRPC"),
        grpc_use_tls: flag(d, "GRPCUseTLS"),
        script_args: strings(d, "ScriptArgs"),
        alias_node: text(d, "AliasNode"),
        alias_service: text(d, "AliasService"),
        output_max_size: u32::try_from(num(d, "OutputMaxSize")).unwrap_or_default(),
        ..CheckDefinition::default()
    };
    Some(Check {
        node: text(c, "Node"),
        check_id: text(c, "CheckID"),
        name: text(c, "Name"),
        status,
        notes: text(c, "Notes"),
        output: text(c, "Output"),
        service_id: text(c, "ServiceID"),
        service_name: text(c, "ServiceName"),
        service_tags: strings(c, "ServiceTags"),
        check_type: text(c, "Type"),
        definition,
        create_index: 0,
        modify_index: 0,
    })
}

fn session(s: &Value) -> Session {
    let node_checks = match s.get("NodeChecks") {
        Some(Value::Array(_)) => strings(s, "NodeChecks"),
        // Before 1.7 a session's checks were all node checks.
        _ => strings(s, "Checks"),
    };
    let service_checks = match s.get("ServiceChecks") {
        Some(Value::Array(items)) => Some(items.iter().map(|c| text(c, "ID")).collect()),
        _ => None,
    };
    Session {
        id: text(s, "ID"),
        name: text(s, "Name"),
        node: text(s, "Node"),
        lock_delay_ns: num(s, "LockDelay"),
        behavior: if text(s, "Behavior") == "delete" {
            SessionBehavior::Delete
        } else {
            SessionBehavior::Release
        },
        ttl: text(s, "TTL"),
        node_checks,
        service_checks,
        create_index: 0,
        modify_index: 0,
    }
}

fn links(v: &Value, key: &str) -> Vec<AclLink> {
    let items = v.get(key).map(Value::items).unwrap_or_default();
    items.iter().map(|l| AclLink { id: text(l, "ID"), name: text(l, "Name") }).collect()
}

fn service_identities(v: &Value) -> Vec<ServiceIdentity> {
    let items = v.get("ServiceIdentities").map(Value::items).unwrap_or_default();
    items
        .iter()
        .map(|s| ServiceIdentity {
            service_name: text(s, "ServiceName"),
            datacenters: strings(s, "Datacenters"),
        })
        .collect()
}

fn node_identities(v: &Value) -> Vec<NodeIdentity> {
    let items = v.get("NodeIdentities").map(Value::items).unwrap_or_default();
    items
        .iter()
        .map(|n| NodeIdentity { node_name: text(n, "NodeName"), datacenter: text(n, "Datacenter") })
        .collect()
}

fn token(t: &Value) -> AclToken {
    let mut policies = links(t, "Policies");
    // A legacy (pre-1.4) management token not yet upgraded: what Consul's upgrade gives it.
    if policies.is_empty() && text(t, "Type") == "management" {
        policies
            .push(AclLink { id: GLOBAL_MANAGEMENT_POLICY_ID.into(), name: GLOBAL_MANAGEMENT_NAME.into() });
    }
    AclToken {
        accessor_id: text(t, "AccessorID"),
        secret_id: text(t, "SecretID"),
        description: text(t, "Description"),
        policies,
        roles: links(t, "Roles"),
        service_identities: service_identities(t),
        node_identities: node_identities(t),
        local: flag(t, "Local"),
        expiration_time_ms: t.get("ExpirationTime").and_then(ms_from_go_time),
        create_time_ms: t.get("CreateTime").and_then(ms_from_go_time).unwrap_or_default(),
        create_index: 0,
        modify_index: 0,
        legacy_type: text(t, "Type"),
        rules: text(t, "Rules"),
    }
}

fn query(q: &Value) -> PreparedQuery {
    let s = q.get("Service").unwrap_or(&Value::Nil);
    let f = s.get("Failover").unwrap_or(&Value::Nil);
    PreparedQuery {
        id: text(q, "ID"),
        name: text(q, "Name"),
        session: text(q, "Session"),
        token: text(q, "Token"),
        service: QueryService {
            service: text(s, "Service"),
            failover: QueryFailover {
                nearest_n: f.get("NearestN").and_then(Value::as_i64).unwrap_or_default(),
                datacenters: strings(f, "Datacenters"),
            },
            only_passing: flag(s, "OnlyPassing"),
            ignore_check_ids: strings(s, "IgnoreCheckIDs"),
            near: text(s, "Near"),
            tags: strings(s, "Tags"),
            node_meta: string_map(s, "NodeMeta"),
            service_meta: string_map(s, "ServiceMeta"),
        },
        dns_ttl: q.get("DNS").map(|d| text(d, "TTL")).unwrap_or_default(),
        create_index: 0,
        modify_index: 0,
    }
}

fn coordinates(v: &Value) -> Vec<CoordinateEntry> {
    v.items()
        .iter()
        .filter_map(|c| {
            let coord = c.get("Coord")?;
            let f = |k| coord.get(k).and_then(Value::as_f64).unwrap_or_default();
            let vec = coord.get("Vec")?.items().iter().filter_map(Value::as_f64).collect();
            let coord =
                Coordinate { vec, error: f("Error"), adjustment: f("Adjustment"), height: f("Height") };
            coord.is_valid().then(|| CoordinateEntry {
                node: text(c, "Node"),
                segment: text(c, "Segment"),
                coord,
            })
        })
        .collect()
}

fn autopilot(a: &Value) -> AutopilotConfig {
    AutopilotConfig {
        cleanup_dead_servers: flag(a, "CleanupDeadServers"),
        last_contact_threshold_ns: num(a, "LastContactThreshold"),
        max_trailing_logs: num(a, "MaxTrailingLogs"),
        min_quorum: num(a, "MinQuorum"),
        server_stabilization_time_ns: num(a, "ServerStabilizationTime"),
        redundancy_zone_tag: text(a, "RedundancyZoneTag"),
        disable_upgrade_migration: flag(a, "DisableUpgradeMigration"),
        upgrade_version_tag: text(a, "UpgradeVersionTag"),
        create_index: 0,
        modify_index: 0,
    }
}

/// A `ConfigEntryRequest`: a raw string holding the kind, then the request with its `Entry`.
fn config_entry(v: &Value) -> Option<ConfigEntry> {
    let Value::Bytes(inner) = v else { return None };
    let mut pos = 0;
    let kind = read(inner, &mut pos).ok()?.as_text()?;
    let req = read(inner, &mut pos).ok()?;
    let Value::Map(fields) = req.get("Entry")? else { return None };
    // Go's nil maps and slices are absent fields, as `PUT /v1/config` reads them.
    let fields = fields.iter().filter(|(k, v)| {
        *v != Value::Nil && !matches!(k.as_text().as_deref(), Some("CreateIndex" | "ModifyIndex"))
    });
    let body = Value::Map(fields.cloned().collect());
    Some(ConfigEntry {
        name: text(&body, "Name"),
        body: body.to_json(),
        kind,
        create_index: 0,
        modify_index: 0,
    })
}

/// Record types of Consul 1.8.7's FSM snapshot (`structs.MessageType`).
mod record {
    pub(super) const REGISTER: u8 = 0;
    pub(super) const KV: u8 = 2;
    pub(super) const SESSION: u8 = 3;
    pub(super) const TOMBSTONE: u8 = 5;
    pub(super) const COORDINATES: u8 = 6;
    pub(super) const PREPARED_QUERY: u8 = 7;
    pub(super) const AUTOPILOT: u8 = 9;
    pub(super) const ACL_BOOTSTRAP: u8 = 11;
    pub(super) const INDEX: u8 = 16;
    pub(super) const ACL_TOKEN: u8 = 17;
    pub(super) const ACL_POLICY: u8 = 19;
    pub(super) const CONFIG_ENTRY: u8 = 22;
    pub(super) const ACL_ROLE: u8 = 23;
}

/// What cairn calls a record type it leaves out (the skipped counts' keys).
fn skipped_name(t: u8) -> String {
    match t {
        1 => "deregister".into(),
        4 => "legacy ACL".into(),
        12 => "intention".into(),
        13 => "Connect CA root".into(),
        14 => "Connect CA provider state".into(),
        15 => "Connect CA configuration".into(),
        25 => "ACL binding rule".into(),
        27 => "ACL auth method".into(),
        29 => "chunking state".into(),
        30 => "federation state".into(),
        t => format!("unknown type {t}"),
    }
}

/// A `RegisterRequest`: its node (once), and its service or checks.
fn register(d: &mut CatalogDump, v: &Value, dc: &str, skip: &mut impl FnMut(String)) {
    let n = node(v, dc);
    if !d.nodes.iter().any(|x| x.name.eq_ignore_ascii_case(&n.name)) {
        d.nodes.push(n.clone());
    }
    if let Some(s) = v.get("Service").filter(|s| matches!(s, Value::Map(_))) {
        d.services.push(service(&n.name, s));
    }
    let checks = v.get("Check").into_iter().chain(v.get("Checks").map(Value::items).unwrap_or_default());
    for c in checks.filter(|c| matches!(c, Value::Map(_))) {
        match check(c) {
            Some(mut c) => {
                if c.node.is_empty() {
                    c.node.clone_from(&n.name);
                }
                d.checks.push(c);
            }
            None => skip("check with an unknown status".into()),
        }
    }
}

/// Reads `state.bin` into a catalog whose every row has index `at`; `dc` names the
/// datacenter of nodes that carry none.
pub(crate) fn import(state: &[u8], at: u64, dc: &str) -> Result<Import, StateError> {
    let mut pos = 0;
    let header = read(state, &mut pos).map_err(|e| msgpack(0, &e))?;
    let last_index = header.get("LastIndex").and_then(Value::as_u64).ok_or(StateError::Header)?;
    let mut out = Import { last_index, ..Import::default() };
    let d = &mut out.dump;
    let mut record = 0;
    while let Some(&t) = state.get(pos) {
        pos += 1;
        record += 1;
        let v = read(state, &mut pos).map_err(|e| msgpack(record, &e))?;
        let mut skip = |what: String| *out.skipped.entry(what).or_default() += 1;
        match t {
            record::REGISTER => register(d, &v, dc, &mut skip),
            record::KV => d.kv.entries.push(KvEntry {
                key: text(&v, "Key"),
                value: match v.get("Value") {
                    Some(Value::Bytes(b)) => b.clone(),
                    _ => Vec::new(),
                },
                flags: num(&v, "Flags"),
                lock_index: num(&v, "LockIndex"),
                session: text(&v, "Session"),
                create_index: 0,
                modify_index: 0,
            }),
            record::TOMBSTONE => d.kv.tombstones.push((text(&v, "Key"), at)),
            record::SESSION => d.kv.sessions.push(session(&v)),
            record::COORDINATES => d.operator.coordinates.extend(coordinates(&v)),
            record::PREPARED_QUERY if v.get("Template").is_some_and(|t| !text(t, "Type").is_empty()) => {
                skip("prepared query template".into());
            }
            record::PREPARED_QUERY => d.queries.push(query(&v)),
            record::AUTOPILOT => d.operator.autopilot = Some(autopilot(&v)),
            record::ACL_BOOTSTRAP => d.acl.bootstrap_index = Some(at),
            record::INDEX if text(&v, "Key") == "acl-token-bootstrap" => d.acl.bootstrap_index = Some(at),
            // The other index entries are Consul's table indexes: the restore sets cairn's.
            record::INDEX => {}
            // A legacy token keeps its type and its own rules, enforced as Consul's legacy API does.
            record::ACL_TOKEN => d.acl.tokens.push(token(&v)),
            record::ACL_POLICY => d.acl.policies.push(AclPolicy {
                id: text(&v, "ID"),
                name: text(&v, "Name"),
                description: text(&v, "Description"),
                rules: text(&v, "Rules"),
                datacenters: strings(&v, "Datacenters"),
                create_index: 0,
                modify_index: 0,
            }),
            record::ACL_ROLE => d.acl.roles.push(AclRole {
                id: text(&v, "ID"),
                name: text(&v, "Name"),
                description: text(&v, "Description"),
                policies: links(&v, "Policies"),
                service_identities: service_identities(&v),
                node_identities: node_identities(&v),
                create_index: 0,
                modify_index: 0,
            }),
            record::CONFIG_ENTRY => match config_entry(&v) {
                Some(e) => d.config_entries.entries.push(e),
                None => skip("config entry".into()),
            },
            t => skip(skipped_name(t)),
        }
    }
    rebase(d, at);
    Ok(out)
}

/// Gives every row index `at` (see the module doc).
fn rebase(d: &mut CatalogDump, at: u64) {
    let set = |c: &mut u64, m: &mut u64| (*c, *m) = (at, at);
    d.nodes.iter_mut().for_each(|x| set(&mut x.create_index, &mut x.modify_index));
    d.services.iter_mut().for_each(|x| set(&mut x.create_index, &mut x.modify_index));
    d.checks.iter_mut().for_each(|x| set(&mut x.create_index, &mut x.modify_index));
    d.queries.iter_mut().for_each(|x| set(&mut x.create_index, &mut x.modify_index));
    d.kv.entries.iter_mut().for_each(|x| set(&mut x.create_index, &mut x.modify_index));
    d.kv.sessions.iter_mut().for_each(|x| set(&mut x.create_index, &mut x.modify_index));
    d.acl.tokens.iter_mut().for_each(|x| set(&mut x.create_index, &mut x.modify_index));
    d.acl.policies.iter_mut().for_each(|x| set(&mut x.create_index, &mut x.modify_index));
    d.acl.roles.iter_mut().for_each(|x| set(&mut x.create_index, &mut x.modify_index));
    d.config_entries.entries.iter_mut().for_each(|x| set(&mut x.create_index, &mut x.modify_index));
    if let Some(a) = d.operator.autopilot.as_mut() {
        set(&mut a.create_index, &mut a.modify_index);
    }
    d.acl.index = at;
    d.config_entries.index = at;
    d.operator.coordinates_index = if d.operator.coordinates.is_empty() { 0 } else { at };
}
