//! A cairn catalog -> Consul 1.8.7's FSM snapshot (`state.bin`): what `cairn snapshot save
//! -format consul` and `GET /v1/snapshot?format=consul` put in the archive, for
//! `consul snapshot restore`.
//!
//! Input: a `CatalogDump` and the index it was taken at. Output: `state.bin`'s bytes: the
//! `{LastIndex}` header, then records in the order Consul's `persistOSS` writes them (nodes
//! each followed by their services and checks, coordinates, sessions, ACL tokens, policies
//! and roles, KV, tombstones, prepared queries, autopilot, config entries, table indexes).
//!
//! Each record is a msgpack map keyed by the Go field names Consul decodes (go-codec fills a
//! struct by name and leaves absent fields at their zero value), with Consul's encodings:
//! durations as nanoseconds, times as `MarshalBinary` bytes (`consul_time`), values as raw
//! strings. Rows keep their cairn indexes, which are Consul's too (the Raft index).

use super::consul_time::{go_time_from_ms, go_zero_time};
use crate::catalog::acl::{AclLink, NodeIdentity, ServiceIdentity};
use crate::catalog::kv::SessionBehavior;
use crate::catalog::{CatalogDump, Check, Node, Service};
use crate::codec::msgpack::{Value, write};

fn s(v: &str) -> Value {
    Value::str(v)
}

fn u(n: u64) -> Value {
    Value::Uint(n)
}

fn b(v: bool) -> Value {
    Value::Bool(v)
}

fn map(fields: Vec<(&str, Value)>) -> Value {
    Value::Map(fields.into_iter().map(|(k, v)| (s(k), v)).collect())
}

fn list<T>(items: &[T], f: impl Fn(&T) -> Value) -> Value {
    if items.is_empty() { Value::Nil } else { Value::Array(items.iter().map(f).collect()) }
}

fn strings(items: &[String]) -> Value {
    list(items, |x| s(x))
}

/// A `map[string]string`, empty as an empty map (Consul then shows `{}`, as cairn does).
fn string_map(m: &std::collections::BTreeMap<String, String>) -> Value {
    Value::Map(m.iter().map(|(k, v)| (s(k), s(v))).collect())
}

fn node_fields(n: &Node) -> Vec<(&'static str, Value)> {
    vec![
        ("ID", s(&n.id)),
        ("Node", s(&n.name)),
        ("Address", s(&n.address)),
        ("Datacenter", s(&n.datacenter)),
        ("TaggedAddresses", string_map(&n.tagged_addresses)),
        ("NodeMeta", string_map(&n.meta)),
        ("CreateIndex", u(n.create_index)),
        ("ModifyIndex", u(n.modify_index)),
    ]
}

fn service(x: &Service) -> Value {
    let p = &x.mesh.proxy;
    let json = |m: &std::collections::BTreeMap<String, crate::codec::msgpack::Json>| {
        if m.is_empty() {
            Value::Nil
        } else {
            Value::Map(m.iter().map(|(k, v)| (s(k), Value::from_json(v))).collect())
        }
    };
    let upstreams = list(&p.upstreams, |up| {
        map(vec![
            ("DestinationType", s(&up.destination_type)),
            ("DestinationNamespace", s(&up.destination_namespace)),
            ("DestinationName", s(&up.destination_name)),
            ("Datacenter", s(&up.datacenter)),
            ("LocalBindAddress", s(&up.local_bind_address)),
            ("LocalBindPort", u(u64::from(up.local_bind_port))),
            ("Config", json(&up.config)),
            ("MeshGateway", map(vec![("Mode", s(&up.mesh_gateway_mode))])),
        ])
    });
    let paths = list(&p.expose.paths, |e| {
        map(vec![
            ("ListenerPort", u(u64::from(e.listener_port))),
            ("Path", s(&e.path)),
            ("LocalPathPort", u(u64::from(e.local_path_port))),
            ("Protocol", s(&e.protocol)),
            ("ParsedFromCheck", b(e.parsed_from_check)),
        ])
    });
    let tagged = Value::Map(
        x.tagged_addresses
            .iter()
            .map(|(k, a)| (s(k), map(vec![("Address", s(&a.address)), ("Port", u(u64::from(a.port)))])))
            .collect(),
    );
    map(vec![
        ("Kind", s(&x.mesh.kind)),
        ("ID", s(&x.id)),
        ("Service", s(&x.name)),
        ("Tags", strings(&x.tags)),
        ("Address", s(&x.address)),
        ("TaggedAddresses", tagged),
        ("Meta", string_map(&x.meta)),
        ("Port", u(u64::from(x.port))),
        (
            "Weights",
            map(vec![
                ("Passing", u(u64::from(x.weights.passing))),
                ("Warning", u(u64::from(x.weights.warning))),
            ]),
        ),
        ("EnableTagOverride", b(x.enable_tag_override)),
        (
            "Proxy",
            map(vec![
                ("DestinationServiceName", s(&p.destination_service_name)),
                ("DestinationServiceID", s(&p.destination_service_id)),
                ("LocalServiceAddress", s(&p.local_service_address)),
                ("LocalServicePort", u(u64::from(p.local_service_port))),
                ("Config", json(&p.config)),
                ("Upstreams", upstreams),
                ("MeshGateway", map(vec![("Mode", s(&p.mesh_gateway_mode))])),
                ("Expose", map(vec![("Checks", b(p.expose.checks)), ("Paths", paths)])),
            ]),
        ),
        ("Connect", map(vec![("Native", b(x.mesh.native))])),
        ("LocallyRegisteredAsSidecar", b(x.mesh.sidecar)),
        ("CreateIndex", u(x.create_index)),
        ("ModifyIndex", u(x.modify_index)),
    ])
}

fn check(c: &Check) -> Value {
    let d = &c.definition;
    let header = if d.header.is_empty() {
        Value::Nil
    } else {
        Value::Map(d.header.iter().map(|(k, v)| (s(k), strings(v))).collect())
    };
    let definition = map(vec![
        ("HTTP", s(&d.http)),
        ("TLSSkipVerify", b(d.tls_skip_verify)),
        ("Header", header),
        ("Method", s(&d.method)),
        ("Body", s(&d.body)),
        ("TCP", s(&d.tcp)),
        ("Interval", u(d.interval_ns)),
        ("OutputMaxSize", u(u64::from(d.output_max_size))),
        ("Timeout", u(d.timeout_ns)),
        ("DeregisterCriticalServiceAfter", u(d.deregister_critical_service_after_ns)),
        ("ScriptArgs", strings(&d.script_args)),
        ("GRPC", s(&d.grpc)),
        ("GRPCUseTLS", b(d.grpc_use_tls)),
        ("AliasNode", s(&d.alias_node)),
        ("AliasService", s(&d.alias_service)),
        ("TTL", u(d.ttl_ns)),
    ]);
    map(vec![
        ("Node", s(&c.node)),
        ("CheckID", s(&c.check_id)),
        ("Name", s(&c.name)),
        ("Status", s(c.status.as_str())),
        ("Notes", s(&c.notes)),
        ("Output", s(&c.output)),
        ("ServiceID", s(&c.service_id)),
        ("ServiceName", s(&c.service_name)),
        ("ServiceTags", strings(&c.service_tags)),
        ("Type", s(&c.check_type)),
        ("Definition", definition),
        ("CreateIndex", u(c.create_index)),
        ("ModifyIndex", u(c.modify_index)),
    ])
}

fn links(l: &[AclLink]) -> Value {
    list(l, |x| map(vec![("ID", s(&x.id)), ("Name", s(&x.name))]))
}

fn service_identities(l: &[ServiceIdentity]) -> Value {
    list(l, |x| map(vec![("ServiceName", s(&x.service_name)), ("Datacenters", strings(&x.datacenters))]))
}

fn node_identities(l: &[NodeIdentity]) -> Value {
    list(l, |x| map(vec![("NodeName", s(&x.node_name)), ("Datacenter", s(&x.datacenter))]))
}

/// One record: its type byte and value.
fn record(out: &mut Vec<u8>, t: u8, v: &Value) {
    out.push(t);
    write(out, v);
}

/// `state.bin` for `dump`, taken at `index`.
pub(crate) fn export(dump: &CatalogDump, index: u64) -> Vec<u8> {
    let mut out = Vec::new();
    write(&mut out, &map(vec![("LastIndex", u(index))]));
    nodes(&mut out, dump);
    sessions(&mut out, dump);
    acl(&mut out, dump);
    for e in &dump.kv.entries {
        let v = map(vec![
            ("LockIndex", u(e.lock_index)),
            ("Key", s(&e.key)),
            ("Flags", u(e.flags)),
            ("Value", if e.value.is_empty() { Value::Nil } else { Value::Bytes(e.value.clone()) }),
            ("Session", s(&e.session)),
            ("CreateIndex", u(e.create_index)),
            ("ModifyIndex", u(e.modify_index)),
        ]);
        record(&mut out, 2, &v);
    }
    for (key, at) in &dump.kv.tombstones {
        record(&mut out, 5, &map(vec![("Key", s(key)), ("CreateIndex", u(0)), ("ModifyIndex", u(*at))]));
    }
    queries(&mut out, dump);
    if let Some(a) = &dump.operator.autopilot {
        let v = map(vec![
            ("CleanupDeadServers", b(a.cleanup_dead_servers)),
            ("LastContactThreshold", u(a.last_contact_threshold_ns)),
            ("MaxTrailingLogs", u(a.max_trailing_logs)),
            ("MinQuorum", u(a.min_quorum)),
            ("ServerStabilizationTime", u(a.server_stabilization_time_ns)),
            ("RedundancyZoneTag", s(&a.redundancy_zone_tag)),
            ("DisableUpgradeMigration", b(a.disable_upgrade_migration)),
            ("UpgradeVersionTag", s(&a.upgrade_version_tag)),
            ("CreateIndex", u(a.create_index)),
            ("ModifyIndex", u(a.modify_index)),
        ]);
        record(&mut out, 9, &v);
    }
    for e in &dump.config_entries.entries {
        let mut entry = match Value::from_json(&e.body) {
            Value::Map(fields) => fields,
            _ => Vec::new(),
        };
        let ours = |k: &Value| {
            matches!(k.as_text().as_deref(), Some("Kind" | "Name" | "CreateIndex" | "ModifyIndex"))
        };
        entry.retain(|(k, _)| !ours(k));
        entry.splice(0..0, [(s("Kind"), s(&e.kind)), (s("Name"), s(&e.name))]);
        entry.extend([(s("CreateIndex"), u(e.create_index)), (s("ModifyIndex"), u(e.modify_index))]);
        // `ConfigEntryRequest.MarshalBinary`: the kind, then the request, in one raw string.
        let mut inner = Vec::new();
        write(&mut inner, &s(&e.kind));
        write(&mut inner, &map(vec![("Op", s("")), ("Datacenter", s("")), ("Entry", Value::Map(entry))]));
        record(&mut out, 22, &Value::Bytes(inner));
    }
    indexes(&mut out, dump, index);
    out
}

fn sessions(out: &mut Vec<u8>, dump: &CatalogDump) {
    for x in &dump.kv.sessions {
        let behavior = match x.behavior {
            SessionBehavior::Release => "release",
            SessionBehavior::Delete => "delete",
        };
        let service_checks = match &x.service_checks {
            Some(l) => {
                Value::Array(l.iter().map(|id| map(vec![("ID", s(id)), ("Namespace", s(""))])).collect())
            }
            None => Value::Nil,
        };
        let v = map(vec![
            ("ID", s(&x.id)),
            ("Name", s(&x.name)),
            ("Node", s(&x.node)),
            ("NodeChecks", strings(&x.node_checks)),
            ("ServiceChecks", service_checks),
            ("LockDelay", u(x.lock_delay_ns)),
            ("Behavior", s(behavior)),
            ("TTL", s(&x.ttl)),
            ("CreateIndex", u(x.create_index)),
            ("ModifyIndex", u(x.modify_index)),
        ]);
        record(out, 3, &v);
    }
}

fn nodes(out: &mut Vec<u8>, dump: &CatalogDump) {
    for n in &dump.nodes {
        let fields = node_fields(n);
        record(out, 0, &map(fields.clone()));
        let mine = |node: &str| node.eq_ignore_ascii_case(&n.name);
        for x in dump.services.iter().filter(|x| mine(&x.node)) {
            let mut f = fields.clone();
            f.push(("Service", service(x)));
            record(out, 0, &map(f));
        }
        for c in dump.checks.iter().filter(|c| mine(&c.node)) {
            let mut f = fields.clone();
            f.push(("Check", check(c)));
            record(out, 0, &map(f));
        }
    }
    for c in &dump.operator.coordinates {
        let coord = map(vec![
            ("Vec", Value::Array(c.coord.vec.iter().map(|f| Value::Float(*f)).collect())),
            ("Error", Value::Float(c.coord.error)),
            ("Adjustment", Value::Float(c.coord.adjustment)),
            ("Height", Value::Float(c.coord.height)),
        ]);
        let entry = map(vec![("Node", s(&c.node)), ("Segment", s(&c.segment)), ("Coord", coord)]);
        record(out, 6, &Value::Array(vec![entry]));
    }
}

fn acl(out: &mut Vec<u8>, dump: &CatalogDump) {
    for t in &dump.acl.tokens {
        let v = map(vec![
            ("AccessorID", s(&t.accessor_id)),
            ("SecretID", s(&t.secret_id)),
            ("Description", s(&t.description)),
            ("Policies", links(&t.policies)),
            ("Roles", links(&t.roles)),
            ("ServiceIdentities", service_identities(&t.service_identities)),
            ("NodeIdentities", node_identities(&t.node_identities)),
            ("Type", s(&t.legacy_type)),
            ("Rules", s(&t.rules)),
            ("Local", b(t.local)),
            ("ExpirationTime", t.expiration_time_ms.map_or(Value::Nil, go_time_from_ms)),
            ("ExpirationTTL", u(0)),
            (
                "CreateTime",
                if t.create_time_ms == 0 { go_zero_time() } else { go_time_from_ms(t.create_time_ms) },
            ),
            ("CreateIndex", u(t.create_index)),
            ("ModifyIndex", u(t.modify_index)),
        ]);
        record(out, 17, &v);
    }
    for p in &dump.acl.policies {
        let v = map(vec![
            ("ID", s(&p.id)),
            ("Name", s(&p.name)),
            ("Description", s(&p.description)),
            ("Rules", s(&p.rules)),
            ("Datacenters", strings(&p.datacenters)),
            ("CreateIndex", u(p.create_index)),
            ("ModifyIndex", u(p.modify_index)),
        ]);
        record(out, 19, &v);
    }
    for r in &dump.acl.roles {
        let v = map(vec![
            ("ID", s(&r.id)),
            ("Name", s(&r.name)),
            ("Description", s(&r.description)),
            ("Policies", links(&r.policies)),
            ("ServiceIdentities", service_identities(&r.service_identities)),
            ("NodeIdentities", node_identities(&r.node_identities)),
            ("CreateIndex", u(r.create_index)),
            ("ModifyIndex", u(r.modify_index)),
        ]);
        record(out, 23, &v);
    }
}

fn queries(out: &mut Vec<u8>, dump: &CatalogDump) {
    for q in &dump.queries {
        let x = &q.service;
        let service = map(vec![
            ("Service", s(&x.service)),
            (
                "Failover",
                map(vec![
                    ("NearestN", Value::Int(x.failover.nearest_n)),
                    ("Datacenters", strings(&x.failover.datacenters)),
                ]),
            ),
            ("OnlyPassing", b(x.only_passing)),
            ("IgnoreCheckIDs", strings(&x.ignore_check_ids)),
            ("Near", s(&x.near)),
            ("Tags", strings(&x.tags)),
            ("NodeMeta", string_map(&x.node_meta)),
            ("ServiceMeta", string_map(&x.service_meta)),
            ("Connect", b(false)),
        ]);
        let v = map(vec![
            ("ID", s(&q.id)),
            ("Name", s(&q.name)),
            ("Session", s(&q.session)),
            ("Token", s(&q.token)),
            ("Service", service),
            ("DNS", map(vec![("TTL", s(&q.dns_ttl))])),
            ("CreateIndex", u(q.create_index)),
            ("ModifyIndex", u(q.modify_index)),
        ]);
        record(out, 7, &v);
    }
}

/// Consul's index table: the tables' last change, so its blocking queries start right.
fn indexes(out: &mut Vec<u8>, dump: &CatalogDump, index: u64) {
    let t = &dump.tables;
    let mut rows: Vec<(String, u64)> = vec![
        ("nodes".into(), t.nodes),
        ("services".into(), t.services),
        ("checks".into(), t.checks),
        ("prepared-queries".into(), t.queries),
        ("kvs".into(), dump.kv.indexes.kv),
        ("tombstones".into(), dump.kv.indexes.tombstones),
        ("sessions".into(), dump.kv.indexes.sessions),
        ("acl-tokens".into(), dump.acl.index),
        ("acl-policies".into(), dump.acl.index),
        ("acl-roles".into(), dump.acl.index),
        ("config-entries".into(), dump.config_entries.index),
    ];
    rows.extend(dump.service_indexes.iter().map(|(name, i)| (format!("service.{name}"), *i)));
    if let Some(b) = dump.acl.bootstrap_index {
        rows.push(("acl-token-bootstrap".into(), b));
    }
    for (key, value) in rows.into_iter().filter(|(_, v)| *v > 0) {
        record(out, 16, &map(vec![("Key", s(&key)), ("Value", u(value.min(index)))]));
    }
}
