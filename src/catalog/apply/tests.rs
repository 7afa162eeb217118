//! Unit tests of the pure transition `apply`: Consul's catalog semantics and indexes.
//!
//! Input: commands built with `catalog::testing`. Output: assertions on the catalog state.
//! Invariant checked throughout: a rejection leaves the state unchanged and reports no change.

use crate::catalog::testing::{deregister, health_check, node, register, service, update_check};
use crate::catalog::{CatalogState, Change, HealthStatus, TableIndexes};
use crate::catalog::{Command, CommandResponse};

/// Applies `cmd` at `index`, asserting the response, and returns the reported changes.
fn check_apply(state: &mut CatalogState, index: u64, cmd: &Command, want: &CommandResponse) -> Vec<Change> {
    let mut changes = Vec::new();
    let got = super::apply(state, index, cmd, &mut changes);
    assert_eq!(&got, want, "response to {cmd}");
    changes
}

/// Applies `cmd` expecting a rejection, and checks the state and change list are untouched.
fn check_rejected(state: &mut CatalogState, index: u64, cmd: &Command) {
    let before = state.clone();
    let mut changes = Vec::new();
    let got = super::apply(state, index, cmd, &mut changes);
    assert!(matches!(got, CommandResponse::Rejected(_)), "{cmd} should be rejected, got {got:?}");
    assert_eq!(*state, before, "rejected {cmd} changed the state");
    assert!(changes.is_empty(), "rejected {cmd} reported changes {changes:?}");
}

fn web_registration() -> Command {
    register(
        node("n1", "10.0.0.1"),
        Some(service("n1", "web-1", "web", 80, &["primary"])),
        vec![
            health_check("n1", "serfHealth", "", HealthStatus::Passing),
            health_check("n1", "web-ttl", "web-1", HealthStatus::Passing),
        ],
    )
}

fn check_registered(state: &mut CatalogState) {
    check_apply(state, 5, &web_registration(), &CommandResponse::Applied);
}

#[test]
fn register_node_service_and_checks() {
    let mut state = CatalogState::default();
    let changes = check_apply(&mut state, 5, &web_registration(), &CommandResponse::Applied);
    assert!(changes.contains(&Change::Node("n1".into())));
    assert!(changes.contains(&Change::TableIndexes));

    let n = state.node("N1").expect("node registered");
    assert_eq!((n.create_index, n.modify_index), (5, 5));
    let s = state.service("n1", "WEB-1").expect("service registered");
    assert_eq!((s.create_index, s.modify_index), (5, 5));
    let c = state.check("n1", "web-ttl").expect("service check registered");
    assert_eq!((c.create_index, c.modify_index), (5, 5));
    assert_eq!(c.service_name, "web");
    assert_eq!(c.service_tags, vec!["primary".to_owned()]);
    assert_eq!(state.node_checks("n1").count(), 2);
    assert_eq!(state.service_instances("WEB").count(), 1);
    assert_eq!(state.table_indexes(), TableIndexes { nodes: 5, services: 5, checks: 5, queries: 0 });
    assert_eq!(state.service_index("web"), 5);
    assert_eq!(state.instance_health("n1", "web-1"), HealthStatus::Passing);
}

#[test]
fn identical_reregister_is_a_noop() {
    let mut state = CatalogState::default();
    check_registered(&mut state);
    let before = state.clone();
    let changes = check_apply(&mut state, 6, &web_registration(), &CommandResponse::Applied);
    assert!(changes.is_empty(), "identical re-register reported {changes:?}");
    assert_eq!(state, before);
    assert_eq!(state.table_indexes(), TableIndexes { nodes: 5, services: 5, checks: 5, queries: 0 });
}

#[test]
fn modified_service_keeps_create_index() {
    let mut state = CatalogState::default();
    check_registered(&mut state);
    let cmd =
        register(node("n1", "10.0.0.1"), Some(service("n1", "web-1", "web", 8080, &["primary"])), vec![]);
    check_apply(&mut state, 9, &cmd, &CommandResponse::Applied);
    let s = state.service("n1", "web-1").expect("service kept");
    assert_eq!((s.create_index, s.modify_index, s.port), (5, 9, 8080));
    let n = state.node("n1").expect("node kept");
    assert_eq!((n.create_index, n.modify_index), (5, 5), "unchanged node keeps its indexes");
    assert_eq!(state.table_indexes(), TableIndexes { nodes: 5, services: 9, checks: 5, queries: 0 });
    assert_eq!(state.service_index("web"), 9);
}

#[test]
fn deregister_service_removes_its_checks() {
    let mut state = CatalogState::default();
    check_registered(&mut state);
    let changes =
        check_apply(&mut state, 7, &deregister("n1", Some("web-1"), None), &CommandResponse::Applied);
    assert!(changes.contains(&Change::Service(("n1".into(), "web-1".into()))));
    assert!(changes.contains(&Change::Check(("n1".into(), "web-ttl".into()))));
    assert!(state.service("n1", "web-1").is_none());
    assert!(state.check("n1", "web-ttl").is_none());
    assert!(state.check("n1", "serfHealth").is_some(), "node check survives");
    assert_eq!(state.service_instances("web").count(), 0);
    assert_eq!(state.table_indexes(), TableIndexes { nodes: 5, services: 7, checks: 7, queries: 0 });
    assert_eq!(state.service_index("web"), 7);
}

#[test]
fn deregister_node_removes_everything_and_is_idempotent() {
    let mut state = CatalogState::default();
    check_registered(&mut state);
    check_apply(&mut state, 7, &deregister("N1", None, None), &CommandResponse::Applied);
    assert_eq!(state.node_count(), 0);
    assert_eq!(state.service_count(), 0);
    assert_eq!(state.checks().count(), 0);
    let changes = check_apply(&mut state, 8, &deregister("n1", None, None), &CommandResponse::Applied);
    assert!(changes.is_empty(), "deregistering a missing node changes nothing");
}

#[test]
fn update_check_sets_status_and_indexes() {
    let mut state = CatalogState::default();
    check_registered(&mut state);
    let cmd = update_check("n1", "web-ttl", HealthStatus::Critical, "timed out");
    check_apply(&mut state, 8, &cmd, &CommandResponse::Applied);
    let c = state.check("n1", "web-ttl").expect("check kept");
    assert_eq!((c.status, c.output.as_str()), (HealthStatus::Critical, "timed out"));
    assert_eq!((c.create_index, c.modify_index), (5, 8));
    assert_eq!(state.instance_health("n1", "web-1"), HealthStatus::Critical);
    assert_eq!(state.table_indexes(), TableIndexes { nodes: 5, services: 5, checks: 8, queries: 0 });
    assert_eq!(state.service_index("web"), 8);

    // The same status and output again is a no-op.
    let changes = check_apply(&mut state, 9, &cmd, &CommandResponse::Applied);
    assert!(changes.is_empty());
}

#[test]
fn rejections_leave_state_unchanged() {
    let mut state = CatalogState::default();
    check_registered(&mut state);
    check_rejected(&mut state, 10, &register(node("", "10.0.0.9"), None, vec![]));
    check_rejected(&mut state, 10, &register(node("n2", ""), None, vec![]));
    check_rejected(
        &mut state,
        10,
        &register(node("n1", "10.0.0.1"), Some(service("other", "x", "x", 1, &[])), vec![]),
    );
    check_rejected(
        &mut state,
        10,
        &register(
            node("n1", "10.0.0.9"),
            None,
            vec![health_check("n1", "c", "no-such-service", HealthStatus::Passing)],
        ),
    );
    check_rejected(
        &mut state,
        10,
        &register(node("n1", "10.0.0.9"), Some(service("n1", "s", "", 1, &[])), vec![]),
    );
    check_rejected(&mut state, 10, &update_check("n1", "no-such-check", HealthStatus::Critical, ""));
    check_rejected(&mut state, 10, &deregister("", None, None));
    let long = "x".repeat(super::MAX_NAME_BYTES + 1);
    check_rejected(&mut state, 10, &register(node(&long, "10.0.0.9"), None, vec![]));
    check_rejected(
        &mut state,
        10,
        &register(node("n1", "10.0.0.1"), Some(service("n1", &long, "web", 80, &[])), vec![]),
    );
    check_rejected(
        &mut state,
        10,
        &register(node("n1", "10.0.0.1"), None, vec![health_check("n1", &long, "", HealthStatus::Passing)]),
    );
}

#[test]
fn batch_applies_each_command_independently_at_one_index() {
    let mut state = CatalogState::default();
    let batch = Command::Batch(vec![
        web_registration(),
        // Rejected (unknown check) without undoing its neighbours.
        update_check("n1", "nope", HealthStatus::Critical, ""),
        update_check("n1", "web-ttl", HealthStatus::Critical, "down"),
        Command::Batch(vec![]),
    ]);
    let mut changes = Vec::new();
    let got = super::apply(&mut state, 9, &batch, &mut changes);
    let CommandResponse::Batch(responses) = got else { panic!("batch response expected, got {got:?}") };
    assert_eq!(responses.len(), 4);
    assert_eq!(responses[0], CommandResponse::Applied);
    assert!(matches!(responses[1], CommandResponse::Rejected(_)));
    assert_eq!(responses[2], CommandResponse::Applied);
    assert_eq!(responses[3], CommandResponse::Rejected("nested command batch".into()));
    let c = state.check("n1", "web-ttl").expect("check registered by the batch");
    assert_eq!((c.status, c.create_index, c.modify_index), (HealthStatus::Critical, 9, 9));
}

// ----- prepared queries ----------------------------------------------------------------

fn prepared(id: &str, name: &str, service: &str) -> crate::catalog::PreparedQuery {
    crate::catalog::PreparedQuery {
        id: id.into(),
        name: name.into(),
        session: String::new(),
        token: String::new(),
        service: crate::catalog::QueryService { service: service.into(), ..Default::default() },
        dns_ttl: String::new(),
        create_index: 0,
        modify_index: 0,
    }
}

fn query_create(q: crate::catalog::PreparedQuery) -> Command {
    Command::QueryUpsert(crate::catalog::QueryUpsert { query: q, update: false })
}

fn query_update(q: crate::catalog::PreparedQuery) -> Command {
    Command::QueryUpsert(crate::catalog::QueryUpsert { query: q, update: true })
}

const QID: &str = "8f246b77-f3e1-ff88-5b48-8ec93abf3e05";
const QID2: &str = "11111111-2222-3333-4444-555555555555";

#[test]
fn query_create_update_delete_keep_indexes_and_name_index() {
    let mut state = CatalogState::default();
    let changes =
        check_apply(&mut state, 3, &query_create(prepared(QID, "Web", "web")), &CommandResponse::Applied);
    assert!(changes.contains(&Change::Query(QID.into())));
    assert_eq!(state.table_indexes().queries, 3);
    let q = state.resolve_query("web").expect("found by name, case-insensitively");
    assert_eq!((q.create_index, q.modify_index), (3, 3));
    assert!(state.resolve_query(&QID.to_uppercase()).is_some(), "found by ID");

    let renamed = prepared(QID, "other", "web");
    check_apply(&mut state, 4, &query_update(renamed), &CommandResponse::Applied);
    let q = state.query(QID).expect("still there");
    assert_eq!((q.create_index, q.modify_index), (3, 4));
    assert!(state.query_by_name("web").is_none(), "old name released");
    assert!(state.query_by_name("OTHER").is_some());

    // Identical update: no change, indexes kept.
    let changes =
        check_apply(&mut state, 5, &query_update(prepared(QID, "other", "web")), &CommandResponse::Applied);
    assert!(changes.is_empty());
    assert_eq!(state.table_indexes().queries, 4);

    check_apply(&mut state, 6, &Command::QueryDelete(QID.into()), &CommandResponse::Applied);
    assert!(state.query(QID).is_none() && state.query_by_name("other").is_none());
    assert_eq!(state.table_indexes().queries, 6);
    // Deleting a missing query succeeds and changes nothing.
    let changes = check_apply(&mut state, 7, &Command::QueryDelete(QID.into()), &CommandResponse::Applied);
    assert!(changes.is_empty());
    // The dump round-trips the queries and their name index.
    check_apply(&mut state, 8, &query_create(prepared(QID2, "x", "db")), &CommandResponse::Applied);
    let reloaded = CatalogState::from_dump(state.dump());
    assert_eq!(reloaded, state);
    assert!(reloaded.query_by_name("X").is_some());
}

#[test]
fn query_writes_follow_consuls_rules() {
    let mut state = CatalogState::default();
    check_apply(&mut state, 3, &query_create(prepared(QID, "web", "web")), &CommandResponse::Applied);
    let want = |msg: &str| CommandResponse::Rejected(msg.into());
    let mut changes = Vec::new();
    let mut before = state.clone();
    for (cmd, msg) in [
        (query_create(prepared(QID2, "x", "")), "Must provide a Service name to query".to_owned()),
        (query_create(prepared(QID2, "WEB", "db")), "name 'WEB' aliases an existing query name".to_owned()),
        (query_create(prepared(QID2, QID, "db")), format!("name '{QID}' aliases an existing query ID")),
        (
            query_update(prepared(QID2, "y", "db")),
            format!("Cannot modify non-existent prepared query: '{QID2}'"),
        ),
        (query_create(prepared(QID, "z", "db")), format!("Prepared query '{QID}' already exists")),
    ] {
        assert_eq!(super::apply(&mut state, 9, &cmd, &mut changes), want(&msg), "{cmd}");
        assert_eq!(state, before);
        assert!(changes.is_empty());
        before = state.clone();
    }
    check_rejected(&mut state, 9, &query_create(prepared("", "q", "db")));
}

#[test]
fn query_instances_apply_tags_meta_and_health_filters() {
    let mut state = CatalogState::default();
    let mut n2 = node("n2", "10.0.0.2");
    n2.meta.insert("rack".into(), "a".into());
    let mut s2 = service("n2", "web-2", "web", 80, &["primary", "canary"]);
    s2.meta.insert("env".into(), "prod".into());
    check_registered(&mut state);
    check_apply(
        &mut state,
        6,
        &register(n2, Some(s2), vec![health_check("n2", "flaky", "web-2", HealthStatus::Warning)]),
        &CommandResponse::Applied,
    );
    let ids = |q: &crate::catalog::PreparedQuery| -> Vec<String> {
        state.query_instances(q).into_iter().map(|(i, _)| i.service.id.clone()).collect()
    };
    let mut q = prepared(QID, "", "WEB");
    assert_eq!(ids(&q), ["web-1", "web-2"]);
    q.service.only_passing = true;
    assert_eq!(ids(&q), ["web-1"]);
    q.service.ignore_check_ids = vec!["FLAKY".into()];
    assert_eq!(ids(&q), ["web-1", "web-2"]);
    q.service.tags = vec!["primary".into(), "!CANARY".into()];
    assert_eq!(ids(&q), ["web-1"]);
    q.service.tags = Vec::new();
    q.service.node_meta.insert("rack".into(), "a".into());
    assert_eq!(ids(&q), ["web-2"]);
    q.service.service_meta.insert("env".into(), "dev".into());
    assert!(ids(&q).is_empty());
}

#[test]
fn query_dumps_written_before_prepared_queries_still_load() {
    let old = r#"{"nodes":[],"services":[],"checks":[],"service_indexes":[],
                  "tables":{"nodes":4,"services":5,"checks":6}}"#;
    let dump: crate::catalog::CatalogDump = serde_json::from_str(old).expect("old dump decodes");
    let state = CatalogState::from_dump(dump);
    assert_eq!(state.table_indexes(), TableIndexes { nodes: 4, services: 5, checks: 6, queries: 0 });
    assert_eq!(state.queries().count(), 0);
}

#[test]
fn restore_replaces_the_catalog_and_reports_every_old_and_new_row() {
    let mut saved = CatalogState::default();
    check_registered(&mut saved);
    let dump = saved.dump();

    let mut state = CatalogState::default();
    let other = register(node("n2", "10.0.0.2"), Some(service("n2", "api-1", "api", 81, &[])), vec![]);
    check_apply(&mut state, 3, &other, &CommandResponse::Applied);
    let changes = check_apply(&mut state, 9, &Command::Restore(Box::new(dump)), &CommandResponse::Applied);

    assert!(state.node("n2").is_none() && state.service("n2", "api-1").is_none(), "old rows are gone");
    let s = state.service("n1", "web-1").expect("restored service");
    assert_eq!((s.create_index, s.modify_index), (5, 5), "rows keep their saved indexes");
    for c in [
        Change::Node("n2".into()),
        Change::Node("n1".into()),
        Change::Service(("n2".into(), "api-1".into())),
        Change::Service(("n1".into(), "web-1".into())),
        Change::Check(("n1".into(), "web-ttl".into())),
        Change::ServiceIndex("api".into()),
        Change::TableIndexes,
    ] {
        assert!(changes.contains(&c), "{c:?} not reported");
    }
    assert_eq!(state.table_indexes(), TableIndexes { nodes: 9, services: 9, checks: 9, queries: 9 });
    assert_eq!(state.service_index("web"), 9, "blocking queries on the service wake");
}

#[test]
fn connect_lookups_follow_proxies_in_and_out_and_survive_a_dump() {
    let mut state = CatalogState::default();
    let mut proxy = service("n1", "web-proxy-1", "web-proxy", 8001, &[]);
    proxy.mesh.kind = "connect-proxy".into();
    proxy.mesh.proxy.destination_service_name = "Web".into();
    check_apply(&mut state, 5, &web_registration(), &CommandResponse::Applied);
    check_apply(
        &mut state,
        6,
        &register(node("n1", "10.0.0.1"), Some(proxy.clone()), vec![]),
        &CommandResponse::Applied,
    );
    let ids = |s: &CatalogState| s.connect_instances("web").map(|i| i.service.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&state), ["web-proxy-1"]);
    // The destination's index moves with its proxies, so blocking connect queries wake.
    assert_eq!(state.connect_index("web"), 6);
    assert_eq!(CatalogState::from_dump(state.dump()), state);
    // Retargeted to another destination, then removed.
    proxy.mesh.proxy.destination_service_name = "db".into();
    check_apply(
        &mut state,
        7,
        &register(node("n1", "10.0.0.1"), Some(proxy), vec![]),
        &CommandResponse::Applied,
    );
    assert!(ids(&state).is_empty());
    assert_eq!(state.connect_index("web"), 7);
    assert_eq!(state.connect_instances("db").count(), 1);
    check_apply(&mut state, 8, &deregister("n1", Some("web-proxy-1"), None), &CommandResponse::Applied);
    assert_eq!(state.connect_instances("db").count(), 0);
    assert_eq!(state.connect_index("db"), 8);
    assert_eq!(CatalogState::from_dump(state.dump()), state);
}

#[test]
fn skip_node_update_creates_a_missing_node_and_spares_an_existing_one() {
    let mut state = CatalogState::default();
    let svc = |port| Some(service("bar", "web1", "web", port, &[]));
    let skip = |n: crate::catalog::Node, s| {
        Command::Register(crate::catalog::Registration {
            node: n,
            skip_node_update: true,
            service: s,
            checks: vec![],
        })
    };
    let apply = |state: &mut CatalogState, i, cmd: &Command| {
        let got = super::apply(state, i, cmd, &mut Vec::new());
        assert!(!matches!(got, CommandResponse::Rejected(_)), "{cmd}: {got:?}");
    };
    apply(&mut state, 1, &skip(node("bar", ""), svc(80)));
    assert_eq!(state.node("bar").map(|n| n.address.clone()), Some(String::new()));
    apply(&mut state, 2, &register(node("bar", "10.0.0.3"), None, vec![]));
    apply(&mut state, 3, &skip(node("bar", "10.9.9.9"), svc(81)));
    assert_eq!(state.node("bar").map(|n| n.address.clone()), Some("10.0.0.3".to_owned()));
    assert_eq!(state.service("bar", "web1").map(|s| s.port), Some(81));
}
