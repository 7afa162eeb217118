//! Consul's `state.bin`: a catalog written by `consul_write` reads back the same through
//! `consul_read` (every row at the import index), and damage never panics the reader.

use std::collections::BTreeMap;

use super::consul_read::import;
use super::consul_write::export;
use crate::catalog::acl::{AclLink, AclPolicy, AclRole, AclToken, NodeIdentity, ServiceIdentity};
use crate::catalog::config_entry::ConfigEntry;
use crate::catalog::kv::{KvEntry, SessionBehavior};
use crate::catalog::operator::{AutopilotConfig, Coordinate, CoordinateEntry};
use crate::catalog::testing::{health_check, node, service, session};
use crate::catalog::{
    CatalogDump, HealthStatus, PreparedQuery, QueryService, ServiceAddress, Upstream, Weights,
};
use crate::codec::msgpack::{Json, Value};

/// A config-entry document of string fields.
fn doc(fields: &[(&str, &str)]) -> Json {
    Value::Map(fields.iter().map(|(k, v)| (Value::str(k), Value::str(v))).collect()).to_json()
}

fn rich() -> CatalogDump {
    let mut d = CatalogDump::default();
    let mut n = node("ext1", "10.1.1.1");
    n.id = "0b8b4f3e-2a8a-4d3c-9a55-111111111111".into();
    n.tagged_addresses = BTreeMap::from([("wan".into(), "1.2.3.4".into())]);
    n.meta = BTreeMap::from([("rack".into(), "r1".into())]);
    d.nodes.push(n);
    d.nodes.push(node("ext2", "10.1.1.2"));
    let mut s = service("ext1", "web1", "web", 8080, &["a", "b"]);
    s.address = "10.1.1.9".into();
    s.meta = BTreeMap::from([("v".into(), "1".into())]);
    s.tagged_addresses =
        BTreeMap::from([("lan".into(), ServiceAddress { address: "10.1.1.9".into(), port: 81 })]);
    s.weights = Weights { passing: 3, warning: 2 };
    s.enable_tag_override = true;
    d.services.push(s);
    let mut p = service("ext1", "web1-proxy", "web-proxy", 21000, &[]);
    p.mesh.kind = "connect-proxy".into();
    p.mesh.proxy.destination_service_name = "web".into();
    p.mesh.proxy.local_service_port = 8080;
    p.mesh.proxy.config = BTreeMap::from([("protocol".into(), Value::str("http").to_json())]);
    p.mesh.proxy.upstreams.push(Upstream {
        destination_type: "service".into(),
        destination_name: "db".into(),
        local_bind_port: 9191,
        ..Upstream::default()
    });
    d.services.push(p);
    let mut c = health_check("ext1", "web-ck", "web1", HealthStatus::Warning);
    c.service_name = "web".into();
    c.service_tags = vec!["a".into(), "b".into()];
    c.check_type = "http".into();
    c.notes = "n".into();
    c.output = "out".into();
    c.definition.http = "http://10.1.1.9:81/h".into();
    c.definition.interval_ns = 10_000_000_000;
    c.definition.timeout_ns = 2_000_000_000;
    c.definition.header = BTreeMap::from([("X-A".into(), vec!["1".into(), "2".into()])]);
    d.checks.push(c);
    d.checks.push(health_check("ext2", "serfHealth", "", HealthStatus::Critical));
    let mut sess =
        session("de642d04-7e18-26cf-2eac-120265348ef9", "ext2", &["serfHealth"], SessionBehavior::Delete);
    sess.name = "s1".into();
    sess.ttl = "60s".into();
    sess.lock_delay_ns = 5_000_000_000;
    d.kv.sessions.push(sess);
    let kv = |key: &str, value: &[u8], flags, session: &str, lock_index| KvEntry {
        key: key.into(),
        value: value.to_vec(),
        flags,
        lock_index,
        session: session.into(),
        create_index: 0,
        modify_index: 0,
    };
    d.kv.entries.push(kv("app/config", b"{\"a\":1}", 42, "", 0));
    d.kv.entries.push(kv("app/empty", b"", 0, "", 0));
    d.kv.entries.push(kv("locked", &[0, 159, 255], 7, "de642d04-7e18-26cf-2eac-120265348ef9", 1));
    d.kv.tombstones.push(("gone".into(), 0));
    d.queries.push(PreparedQuery {
        id: "d4340f57-2b1b-95cc-2b41-2954722abbbe".into(),
        name: "q1".into(),
        session: String::new(),
        token: String::new(),
        service: QueryService {
            service: "web".into(),
            only_passing: true,
            tags: vec!["a".into()],
            node_meta: BTreeMap::from([("rack".into(), "r1".into())]),
            ..QueryService::default()
        },
        dns_ttl: "10s".into(),
        create_index: 0,
        modify_index: 0,
    });
    let link = |id: &str, name: &str| AclLink { id: id.into(), name: name.into() };
    d.acl.policies.push(AclPolicy {
        id: "dd31c78e-e2f5-ecfd-8c78-1ca31dfd116a".into(),
        name: "p1".into(),
        description: "pd".into(),
        rules: "key_prefix \"app/\" { policy = \"read\" }".into(),
        datacenters: vec!["dc1".into()],
        create_index: 0,
        modify_index: 0,
    });
    d.acl.roles.push(AclRole {
        id: "be852ba8-1595-14cb-7a66-f50ac57009de".into(),
        name: "r1".into(),
        description: String::new(),
        policies: vec![link("dd31c78e-e2f5-ecfd-8c78-1ca31dfd116a", "p1")],
        service_identities: vec![ServiceIdentity { service_name: "web".into(), datacenters: vec![] }],
        node_identities: vec![],
        create_index: 0,
        modify_index: 0,
    });
    d.acl.tokens.push(AclToken {
        accessor_id: "de2c4e76-3d2d-ae72-fa5b-b2260d22386a".into(),
        secret_id: "a21b9d92-f00c-e8ca-b529-1d221f3b592d".into(),
        description: "t1".into(),
        policies: vec![link("dd31c78e-e2f5-ecfd-8c78-1ca31dfd116a", "p1")],
        roles: vec![link("be852ba8-1595-14cb-7a66-f50ac57009de", "r1")],
        service_identities: vec![],
        node_identities: vec![NodeIdentity { node_name: "ext1".into(), datacenter: "dc1".into() }],
        local: false,
        expiration_time_ms: Some(1_900_000_000_000),
        create_time_ms: 1_796_685_400_851,
        create_index: 0,
        modify_index: 0,
        legacy_type: String::new(),
        rules: String::new(),
    });
    d.acl.bootstrap_index = Some(0);
    d.operator.autopilot = Some(AutopilotConfig::defaults(true));
    d.operator.coordinates.push(CoordinateEntry {
        node: "ext1".into(),
        segment: String::new(),
        coord: Coordinate { vec: vec![0.5; 8], error: 1.5, adjustment: 0.0, height: 1e-5 },
    });
    d.config_entries.entries.push(ConfigEntry {
        kind: "service-defaults".into(),
        name: "web".into(),
        body: doc(&[("Protocol", "http")]),
        create_index: 0,
        modify_index: 0,
    });
    d
}

/// `rich()` as the importer gives it back at index `at`.
fn expected(at: u64) -> CatalogDump {
    let mut d = rich();
    let set = |c: &mut u64, m: &mut u64| (*c, *m) = (at, at);
    d.nodes.iter_mut().for_each(|x| set(&mut x.create_index, &mut x.modify_index));
    d.services.iter_mut().for_each(|x| set(&mut x.create_index, &mut x.modify_index));
    d.checks.iter_mut().for_each(|x| set(&mut x.create_index, &mut x.modify_index));
    d.queries.iter_mut().for_each(|x| set(&mut x.create_index, &mut x.modify_index));
    d.kv.entries.iter_mut().for_each(|x| set(&mut x.create_index, &mut x.modify_index));
    d.kv.sessions.iter_mut().for_each(|x| set(&mut x.create_index, &mut x.modify_index));
    d.kv.tombstones.iter_mut().for_each(|t| t.1 = at);
    d.acl.tokens.iter_mut().for_each(|x| set(&mut x.create_index, &mut x.modify_index));
    d.acl.policies.iter_mut().for_each(|x| set(&mut x.create_index, &mut x.modify_index));
    d.acl.roles.iter_mut().for_each(|x| set(&mut x.create_index, &mut x.modify_index));
    d.acl.index = at;
    d.acl.bootstrap_index = Some(at);
    d.operator.autopilot.iter_mut().for_each(|x| set(&mut x.create_index, &mut x.modify_index));
    d.operator.coordinates_index = at;
    d.config_entries.index = at;
    for e in &mut d.config_entries.entries {
        set(&mut e.create_index, &mut e.modify_index);
        e.body = doc(&[("Kind", "service-defaults"), ("Name", "web"), ("Protocol", "http")]);
    }
    d
}

#[test]
fn export_then_import_keeps_every_modelled_field() {
    let mut d = rich();
    d.acl.bootstrap_index = Some(3);
    let state = export(&d, 50);
    let got = import(&state, 7, "dc1").unwrap();
    assert_eq!(got.last_index, 50);
    assert!(got.skipped.is_empty(), "{:?}", got.skipped);
    assert_eq!(got.dump, expected(7));
}

#[test]
fn unknown_records_are_skipped_and_counted() {
    let mut state = export(&rich(), 50);
    // An intention (12) and a type Consul 1.8.7 does not have (99), each an empty map.
    state.extend_from_slice(&[12, 0x80, 99, 0x80, 99, 0x80]);
    let got = import(&state, 7, "dc1").unwrap();
    assert_eq!(got.skipped.get("intention"), Some(&1));
    assert_eq!(got.skipped.get("unknown type 99"), Some(&2));
    assert_eq!(got.dump.nodes.len(), 2);
}

#[test]
fn damage_is_an_error_never_a_panic() {
    let state = export(&rich(), 50);
    for cut in 0..state.len() {
        // A cut inside a record is an error; a cut between records reads fewer records,
        // which is why the archive's SHA256SUMS is checked before `import` is reached.
        let _ = import(&state[..cut], 7, "dc1");
    }
    assert!(import(b"", 7, "dc1").is_err());
    assert!(import(b"\x80", 7, "dc1").is_err(), "a header without LastIndex");
    for i in (0..state.len()).step_by(11) {
        let mut s = state.clone();
        s[i] ^= 0x5a;
        let _ = import(&s, 7, "dc1");
    }
}

proptest::proptest! {
    #[test]
    fn fuzz_logic_holds_on_random_bytes(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
        super::fuzz_logic::snapshot_file(&data);
    }

    #[test]
    fn fuzz_logic_holds_on_damaged_real_records(at in 0usize..4000, byte in proptest::prelude::any::<u8>(), cut in 0usize..4000) {
        let mut state = export(&rich(), 50);
        let i = at % state.len();
        state[i] = byte;
        state.truncate(cut.max(1) % (state.len() + 1));
        let mut data = vec![1u8];
        data.extend_from_slice(&state);
        super::fuzz_logic::snapshot_file(&data);
        let file = super::encode_consul(&rich(), 50, 2, 1_700_000_000_000).unwrap();
        let mut data = vec![0u8];
        data.extend_from_slice(&file[..cut % (file.len() + 1)]);
        super::fuzz_logic::snapshot_file(&data);
    }
}

#[test]
fn legacy_tokens_keep_their_type_and_rules_and_management_links_global_management() {
    let mut state = Vec::new();
    let s = |x: &str| Value::str(x);
    crate::codec::msgpack::write(&mut state, &Value::Map(vec![(s("LastIndex"), Value::Uint(9))]));
    for (accessor, kind, rules) in
        [("a1", "management", ""), ("a2", "client", "key \"\" { policy = \"read\" }")]
    {
        state.push(17);
        let token = Value::Map(vec![
            (s("AccessorID"), s(accessor)),
            (s("SecretID"), s("secret")),
            (s("Type"), s(kind)),
            (s("Rules"), s(rules)),
            (s("Policies"), Value::Nil),
        ]);
        crate::codec::msgpack::write(&mut state, &token);
    }
    let got = import(&state, 3, "dc1").unwrap();
    let tokens = &got.dump.acl.tokens;
    assert_eq!(
        tokens[0].policies,
        vec![AclLink {
            id: crate::acl::GLOBAL_MANAGEMENT_POLICY_ID.into(),
            name: "global-management".into()
        }]
    );
    assert!(tokens[1].policies.is_empty());
    assert_eq!((tokens[0].legacy_type.as_str(), tokens[0].rules.as_str()), ("management", ""));
    assert_eq!(
        (tokens[1].legacy_type.as_str(), tokens[1].rules.as_str()),
        ("client", "key \"\" { policy = \"read\" }")
    );
    assert!(got.skipped.is_empty(), "{:?}", got.skipped);
}
