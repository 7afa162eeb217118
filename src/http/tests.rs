//! Tests: wire JSON shapes on snapshots built by `catalog::apply`, blocking waits with paused
//! time, and router-level status codes and headers via `tower::ServiceExt::oneshot`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::query::Query;
use super::*;
use crate::catalog::{CatalogState, Check, CheckDefinition, HealthStatus, Node, Service};
use crate::catalog::{CheckUpdate, CommandResponse, Registration, apply::apply};
use crate::config::{Config, DnsConfig, Ports};
use crate::snapshot::CatalogSnapshot;

/// A single-voter Raft server on a temporary directory (leader once this returns).
pub(crate) async fn test_server() -> (Arc<crate::raft::Server>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let raft_addr = "127.0.0.1:8300".parse().expect("addr");
    let opts = crate::raft::RaftOptions::single(dir.path().to_path_buf(), 1, raft_addr);
    let server = crate::raft::open(opts).await.expect("raft opens");
    (server, dir)
}

/// The consensus handle of a single-voter Raft server (leader once this returns).
pub(crate) async fn test_raft() -> (Consensus, tempfile::TempDir) {
    let (server, dir) = test_server().await;
    (Consensus::new(server), dir)
}

fn config() -> Config {
    Config {
        datacenter: "dc1".into(),
        node_name: "agent1".into(),
        node_id: "11111111-2222-3333-4444-555555555555".into(),
        node_meta: BTreeMap::new(),
        domain: "consul.".into(),
        alt_domain: None,
        data_dir: std::env::temp_dir(),
        dev: true,
        server: true,
        bootstrap_expect: 1,
        bind_addr: "10.0.0.1".parse().expect("ip"),
        retry_join: Vec::new(),
        wan: Default::default(),
        raft_snapshot_threshold: crate::config::DEFAULT_SNAPSHOT_THRESHOLD,
        raft_trailing_logs: crate::config::DEFAULT_TRAILING_LOGS,
        anti_entropy_interval: crate::local::DEFAULT_INTERVAL,
        cleanup_dead_servers: true,
        encrypt: None,
        insecure_rpc: false,
        disable_keyring_file: false,
        encrypt_verify_incoming: true,
        encrypt_verify_outgoing: true,
        client_addr: "127.0.0.1".parse().expect("ip"),
        dns_addr: "127.0.0.1".parse().expect("ip"),
        http_addrs: vec![crate::config::ListenAddr::Ip("127.0.0.1".parse().expect("ip"))],
        unix_sockets: crate::config::UnixSockets::default(),
        https_addr: "127.0.0.1".parse().expect("ip"),
        tls: crate::config::TlsConfig::default(),
        ports: Ports { dns: 8600, http: 8500, https: -1, server: 8300, serf_lan: 8301, serf_wan: 8302 },
        recursors: Vec::new(),
        dns: DnsConfig::default(),
        services: Vec::new(),
        checks: crate::config::CheckConfig::default(),
        check_definitions: Vec::new(),
        zones_dir: None,
        log_level: "info".into(),
        enable_debug: false,
        sources: Vec::new(),
        acl: crate::config::AclConfig::disabled("dc1"),
    }
}

fn node(name: &str, addr: &str) -> Node {
    Node {
        id: String::new(),
        name: name.into(),
        address: addr.into(),
        datacenter: "dc1".into(),
        tagged_addresses: BTreeMap::new(),
        meta: BTreeMap::from([("rack".to_owned(), "r1".to_owned())]),
        create_index: 0,
        modify_index: 0,
    }
}

fn service(node: &str, id: &str, name: &str, tags: &[&str]) -> Service {
    Service::new(node, id, name, 80).with_tags(tags)
}

fn check(node: &str, id: &str, service_id: &str, status: HealthStatus) -> Check {
    Check {
        check_type: "ttl".into(),
        definition: CheckDefinition { ttl_ns: 10_000_000_000, ..CheckDefinition::default() },
        ..Check::new(node, id, service_id, status)
    }
}

/// `web` on agent1 (passing, tags a+b) and node2 (warning, tag a); `db` on node2.
pub(crate) fn commands() -> Vec<Command> {
    vec![
        Command::Register(Registration {
            node: node("agent1", "10.0.0.1"),
            skip_node_update: false,
            service: Some(service("agent1", "web1", "web", &["a", "b"])),
            checks: vec![check("agent1", "service:web1", "web1", HealthStatus::Passing)],
        }),
        Command::Register(Registration {
            node: node("node2", "10.0.0.2"),
            skip_node_update: false,
            service: Some(service("node2", "web2", "web", &["a"])),
            checks: vec![check("node2", "service:web2", "web2", HealthStatus::Warning)],
        }),
        Command::Register(Registration {
            node: node("node2", "10.0.0.2"),
            skip_node_update: false,
            service: Some(service("node2", "db", "db", &[])),
            checks: vec![],
        }),
    ]
}

/// The `commands()` catalog, applied at indexes 1..=3.
fn catalog() -> CatalogState {
    let mut state = CatalogState::default();
    let mut changes = Vec::new();
    for (i, cmd) in commands().iter().enumerate() {
        let r = apply(&mut state, i as u64 + 1, cmd, &mut changes);
        assert_eq!(r, CommandResponse::Applied);
    }
    state
}

/// An API on a live single-node Raft, with `cmds` proposed through it.
pub(crate) async fn state_with(cmds: Vec<Command>) -> (ApiState, tempfile::TempDir) {
    let (raft, dir) = test_raft().await;
    for cmd in cmds {
        raft.propose(cmd).await.expect("proposed");
    }
    let snapshots = raft.snapshots();
    let local = crate::local::LocalState::new(
        raft.clone(),
        Registration {
            node: {
                let c = config();
                crate::agent::agent_node(&c.node_id, &c.node_name, &c.datacenter, c.bind_addr)
            },
            skip_node_update: false,
            service: None,
            checks: Vec::new(),
        },
        Some(dir.path()),
        crate::local::DEFAULT_INTERVAL,
    );
    local.load(&snapshots.load().catalog).expect("local state loads");
    let ttl = crate::health::TtlChecks::new(local.clone(), snapshots.clone(), "agent1".into());
    let checks = crate::health::CheckRunner::new(
        local.clone(),
        snapshots.clone(),
        "agent1".into(),
        crate::config::CheckConfig::default(),
        Vec::new(),
    );
    (
        ApiState {
            config: Arc::new(config()),
            snapshots,
            consensus: raft,
            replica: None,
            local,
            ttl,
            checks,
            reload: Arc::default(),
            acl: Arc::new(crate::acl::Disabled::new()),
            enable_key_list_policy: false,
            sessions: crate::session::SessionTimers::new(),
            gossip: None,
            wan: None,
            shutdown: Default::default(),
            stability: Arc::default(),
        },
        dir,
    )
}

async fn call(
    st: &ApiState,
    method: Method,
    uri: &str,
    body: Body,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let req = Request::builder().method(method).uri(uri).body(body).expect("request");
    let resp = router(st.clone()).oneshot(req).await.expect("infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.expect("body");
    (status, headers, bytes.to_vec())
}

async fn get_json(st: &ApiState, uri: &str) -> (axum::http::HeaderMap, Value) {
    let (status, headers, body) = call(st, Method::GET, uri, Body::empty()).await;
    assert_eq!(status, StatusCode::OK, "GET {uri}: {}", String::from_utf8_lossy(&body));
    (headers, serde_json::from_slice(&body).expect("json"))
}

async fn check_status(st: &ApiState, method: Method, uri: &str, body: &str, want: StatusCode, text: &str) {
    let (status, _, got) = call(st, method.clone(), uri, Body::from(body.to_owned())).await;
    let got = String::from_utf8_lossy(&got);
    assert_eq!(status, want, "{method} {uri}: {got}");
    assert!(got.contains(text), "{method} {uri}: body {got:?} lacks {text:?}");
}

#[test]
fn catalog_service_wire_shape() {
    let cat = catalog();
    let v = serde_json::to_value(catalog::service_nodes(&cat, "WEB", &[], &[])).expect("json");
    let arr = v.as_array().expect("array");
    assert_eq!(arr.len(), 2);
    let e = &arr[0];
    for k in [
        "ID",
        "Node",
        "Address",
        "Datacenter",
        "TaggedAddresses",
        "NodeMeta",
        "ServiceKind",
        "ServiceID",
        "ServiceName",
        "ServiceTags",
        "ServiceAddress",
        "ServiceTaggedAddresses",
        "ServiceWeights",
        "ServiceMeta",
        "ServicePort",
        "ServiceEnableTagOverride",
        "ServiceProxy",
        "ServiceConnect",
        "CreateIndex",
        "ModifyIndex",
    ] {
        assert!(e.get(k).is_some(), "missing {k} in {e}");
    }
    assert_eq!(e["Node"], "agent1");
    assert_eq!(e["ServiceID"], "web1");
    assert_eq!(e["ServiceTags"], json!(["a", "b"]));
    assert_eq!(e["ServiceWeights"], json!({"Passing": 1, "Warning": 1}));
    assert_eq!(e["NodeMeta"], json!({"rack": "r1"}));
    // Tags filter: AND, case-insensitive.
    assert_eq!(catalog::service_nodes(&cat, "web", &["a", "B"], &[]).len(), 1);
    assert_eq!(catalog::service_nodes(&cat, "web", &["a"], &[]).len(), 2);
    assert_eq!(catalog::service_nodes(&cat, "web", &["zzz"], &[]).len(), 0);
    // Empty service: tags never null.
    let db = serde_json::to_value(catalog::service_nodes(&cat, "db", &[], &[])).expect("json");
    assert_eq!(db[0]["ServiceTags"], json!([]));
}

#[test]
fn health_service_wire_shape_and_passing_filter() {
    let cat = catalog();
    let v = serde_json::to_value(health::service_entries(&cat, "web", &[], &[], false)).expect("json");
    assert_eq!(v.as_array().map(Vec::len), Some(2));
    let e = &v[0];
    assert_eq!(e["Node"]["Node"], "agent1");
    assert_eq!(e["Service"]["ID"], "web1");
    assert_eq!(e["Service"]["Service"], "web");
    let c = &e["Checks"][0];
    assert_eq!(c["CheckID"], "service:web1");
    assert_eq!(c["Status"], "passing");
    assert_eq!(c["ServiceName"], "web");
    assert_eq!(c["ServiceTags"], json!(["a", "b"]));
    assert_eq!(c["Type"], "ttl");
    assert_eq!(c["Definition"], json!({"TTL": "10s"}));
    assert_eq!(c["Interval"], "");
    // ?passing drops the warning instance.
    let passing = health::service_entries(&cat, "web", &[], &[], true);
    assert_eq!(passing.len(), 1);
    assert_eq!(passing[0].service.id, "web1");
    assert!(health::service_entries(&cat, "nope", &[], &[], false).is_empty());
    assert_eq!(health::state_checks(&cat, "warning").len(), 1);
    assert_eq!(health::state_checks(&cat, "any").len(), 2);
    assert!(health::state_checks(&cat, "bogus").is_empty());
}

#[test]
fn node_and_agent_views() {
    let cat = catalog();
    let v = serde_json::to_value(catalog::node_services(&cat, "NODE2")).expect("json");
    assert_eq!(v["Node"]["Address"], "10.0.0.2");
    assert_eq!(v["Services"]["db"]["Tags"], json!([]));
    assert!(v["Services"]["web2"]["CreateIndex"].is_u64());
    assert_eq!(serde_json::to_value(catalog::node_services(&cat, "missing")).expect("json"), Value::Null);
    let own: Vec<_> = cat.node_services("agent1").map(|s| (**s).clone()).collect();
    let services = serde_json::to_value(agent::agent_services(&own, "dc1")).expect("json");
    assert_eq!(services["web1"]["Datacenter"], "dc1");
    assert!(services["web1"].get("CreateIndex").is_none());
    assert!(services.get("db").is_none(), "db is on node2, not the agent");
    let names = catalog::service_names(&cat, &[]);
    assert_eq!(names.get("web"), Some(&vec!["a".to_owned(), "b".to_owned()]));
    assert_eq!(names.get("db"), Some(&vec![]));
}

#[test]
fn catalog_register_decoding() {
    let v = json!({
        "node": "n1", "Address": "10.1.1.1", "nodemeta": {"K": "v"},
        "Service": {"service": "api", "Port": 8080, "tags": ["x"]},
        "Check": {"Name": "api alive", "ServiceID": "api", "Status": "passing", "Definition": {"TCP": "10.1.1.1:8080", "Interval": "10s"}}
    });
    let reg = wire::decode_catalog_register(&v, "dc1").expect("decodes");
    assert_eq!(reg.node.name, "n1");
    assert_eq!(reg.node.meta.get("K").map(String::as_str), Some("v"));
    let s = reg.service.as_ref().expect("service");
    assert_eq!((s.id.as_str(), s.port), ("api", 8080));
    assert_eq!(reg.checks[0].check_id, "api alive");
    assert_eq!(reg.checks[0].definition.interval_ns, 10_000_000_000);
    let err = wire::decode_catalog_register(&json!({"Node": "n", "Address": "a", "Foo": 1}), "dc1")
        .expect_err("unknown");
    assert_eq!(err.to_string(), "Request decode failed: json: unknown field \"Foo\"");
    assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    let err = wire::decode_catalog_register(&json!({"Node": "n"}), "dc1").expect_err("no address");
    assert_eq!(err.to_string(), "Must provide address if SkipNodeUpdate is not set");
    assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

fn check_read_error(q: &str, want: &str) {
    let err = blocking::parse_read_options(&Query::parse(Some(q))).expect_err("must fail");
    assert_eq!(err.to_string(), want);
    assert_eq!(err.status(), StatusCode::BAD_REQUEST);
}

#[test]
fn read_option_parsing() {
    let o = blocking::parse_read_options(&Query::parse(Some("index=5&wait=1m30s&stale"))).expect("ok");
    assert_eq!(o.min_index, 5);
    assert_eq!(o.wait, Duration::from_secs(90));
    assert_eq!(o.consistency, Consistency::Stale);
    let o = blocking::parse_read_options(&Query::parse(None)).expect("ok");
    assert_eq!((o.min_index, o.wait), (0, blocking::DEFAULT_WAIT));
    let o = blocking::parse_read_options(&Query::parse(Some("wait=1h"))).expect("ok");
    assert_eq!(o.wait, blocking::MAX_WAIT);
    check_read_error("index=abc", "Invalid index");
    check_read_error("index=-1", "Invalid index");
    check_read_error("wait=10", "Invalid wait time");
    check_read_error("stale&consistent", "Cannot specify ?stale with ?consistent, conflicting semantics.");
    let w = blocking::with_jitter(Duration::from_secs(160));
    assert!(w >= Duration::from_secs(160) && w <= Duration::from_secs(170));
}

#[tokio::test(start_paused = true)]
async fn blocking_wait_returns_on_newer_index_or_timeout() {
    let handle = Arc::new(SnapshotHandle::new(CatalogSnapshot { index: 3, catalog: catalog() }));
    // Index already newer: immediate.
    let s = blocking::wait_for(&handle, 2, Duration::from_secs(60), |s| s.index).await;
    assert_eq!(s.index, 3);
    // Timeout: returns the unchanged snapshot after the wait.
    let start = tokio::time::Instant::now();
    let s = blocking::wait_for(&handle, 3, Duration::from_secs(60), |s| s.index).await;
    assert_eq!(s.index, 3);
    assert_eq!(start.elapsed(), Duration::from_secs(60));
    // A publish that does not move the endpoint's index keeps waiting; one that does wakes it.
    let h2 = handle.clone();
    let waiter = tokio::spawn(async move {
        blocking::wait_for(&h2, 3, Duration::from_secs(300), |s| s.catalog.service_index("db")).await
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut cat = handle.load_full().catalog.clone();
    let mut changes = Vec::new();
    let upd = Command::UpdateCheck(CheckUpdate {
        node: "agent1".into(),
        check_id: "service:web1".into(),
        status: HealthStatus::Critical,
        output: "x".into(),
    });
    assert_eq!(apply(&mut cat, 4, &upd, &mut changes), CommandResponse::Applied);
    handle.publish(CatalogSnapshot { index: 4, catalog: cat.clone() });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!waiter.is_finished(), "web change must not wake a db watcher");
    let reg = Command::Register(Registration {
        node: node("node2", "10.0.0.2"),
        skip_node_update: false,
        service: Some(service("node2", "db", "db", &["primary"])),
        checks: vec![],
    });
    assert_eq!(apply(&mut cat, 5, &reg, &mut changes), CommandResponse::Applied);
    handle.publish(CatalogSnapshot { index: 5, catalog: cat });
    let s = waiter.await.expect("join");
    assert_eq!(s.index, 5);
    assert_eq!(start.elapsed(), Duration::from_secs(62));
}

#[tokio::test]
async fn router_reads_with_headers() {
    let (st, _dir) = state_with(commands()).await;
    let (h, v) = get_json(&st, "/v1/catalog/service/web?stale&tag=a&tag=b").await;
    assert_eq!(v.as_array().map(Vec::len), Some(1));
    let web_index = st.snapshots.load().catalog.service_index("web");
    assert_eq!(h["X-Consul-Index"], web_index.to_string().as_str());
    assert_eq!(h["X-Consul-KnownLeader"], "true");
    assert_eq!(h["X-Consul-LastContact"], "0");
    assert_eq!(h["X-Consul-Effective-Consistency"], "stale");
    let (h, v) = get_json(&st, "/v1/catalog/service/nothing?stale").await;
    assert_eq!(v, json!([]));
    let services_index = st.snapshots.load().catalog.table_indexes().services;
    assert_eq!(
        h["X-Consul-Index"],
        services_index.to_string().as_str(),
        "unknown service: services table index"
    );
    let (_, v) = get_json(&st, "/v1/health/service/web?stale&passing").await;
    assert_eq!(v.as_array().map(Vec::len), Some(1));
    let (_, v) = get_json(&st, "/v1/catalog/node/unknown?stale").await;
    assert_eq!(v, Value::Null);
    let (_, v) = get_json(&st, "/v1/catalog/nodes?stale&node-meta=rack:r1").await;
    assert_eq!(v.as_array().map(Vec::len), Some(2));
    let (_, v) = get_json(&st, "/v1/catalog/services?stale").await;
    assert_eq!(v, json!({"db": [], "web": ["a", "b"]}));
    let (_, v) = get_json(&st, "/v1/health/checks/web?stale").await;
    assert_eq!(v.as_array().map(Vec::len), Some(2));
    let (_, v) = get_json(&st, "/v1/health/node/node2?stale").await;
    assert_eq!(v[0]["CheckID"], "service:web2");
    let (_, v) = get_json(&st, "/v1/health/state/passing?stale").await;
    assert_eq!(v.as_array().map(Vec::len), Some(1));
    let (_, v) = get_json(&st, "/v1/catalog/datacenters").await;
    assert_eq!(v, json!(["dc1"]));
    let (_, v) = get_json(&st, "/v1/status/leader").await;
    assert_eq!(v, json!("127.0.0.1:8300"));
    let (_, v) = get_json(&st, "/v1/status/peers").await;
    assert_eq!(v, json!(["127.0.0.1:8300"]));
    let (h, _) = get_json(&st, "/v1/catalog/nodes").await;
    assert_eq!(h["X-Consul-Effective-Consistency"], "leader");
    let (_, v) = get_json(&st, "/v1/agent/services").await;
    assert_eq!(v["web1"]["Service"], "web");
    let (_, v) = get_json(&st, "/v1/agent/service/web1").await;
    assert_eq!(v["ID"], "web1");
    let (_, v) = get_json(&st, "/v1/agent/checks").await;
    assert_eq!(v["service:web1"]["Status"], "passing");
    let (_, v) = get_json(&st, "/v1/agent/self").await;
    assert_eq!(v["Config"]["NodeName"], "agent1");
    assert_eq!(v["Config"]["Datacenter"], "dc1");
    assert_eq!(v["Member"]["Addr"], "10.0.0.1");
    let (_, _, body) = call(&st, Method::GET, "/v1/catalog/nodes?stale&pretty", Body::empty()).await;
    assert!(String::from_utf8_lossy(&body).contains("\n  "), "pretty output is indented");
}

#[tokio::test]
async fn router_errors() {
    let (st, _dir) = state_with(commands()).await;
    check_status(
        &st,
        Method::GET,
        "/v1/catalog/nodes?stale&index=x",
        "",
        StatusCode::BAD_REQUEST,
        "Invalid index",
    )
    .await;
    check_status(
        &st,
        Method::GET,
        "/v1/catalog/nodes?stale&wait=forever",
        "",
        StatusCode::BAD_REQUEST,
        "Invalid wait time",
    )
    .await;
    check_status(
        &st,
        Method::GET,
        "/v1/health/service/web?stale&passing=maybe",
        "",
        StatusCode::BAD_REQUEST,
        "Invalid value for ?passing",
    )
    .await;
    check_status(
        &st,
        Method::GET,
        "/v1/agent/service/nope",
        "",
        StatusCode::NOT_FOUND,
        "unknown service ID: nope",
    )
    .await;
    check_status(
        &st,
        Method::PUT,
        "/v1/agent/service/deregister/nope",
        "",
        StatusCode::NOT_FOUND,
        "Unknown service ID \"nope\". Ensure that the service ID is passed, not the service name.",
    )
    .await;
    check_status(
        &st,
        Method::PUT,
        "/v1/agent/check/deregister/nope",
        "",
        StatusCode::NOT_FOUND,
        "Unknown check ID \"nope\"",
    )
    .await;
    check_status(
        &st,
        Method::PUT,
        "/v1/agent/check/pass/nope",
        "",
        StatusCode::NOT_FOUND,
        "Unknown check ID",
    )
    .await;
    check_status(&st, Method::POST, "/v1/agent/service/register", "{}", StatusCode::METHOD_NOT_ALLOWED, "")
        .await;
    check_status(&st, Method::PUT, "/v1/catalog/nodes", "", StatusCode::METHOD_NOT_ALLOWED, "").await;
    check_status(
        &st,
        Method::PUT,
        "/v1/agent/service/register",
        "",
        StatusCode::BAD_REQUEST,
        "Request decode failed: EOF",
    )
    .await;
    check_status(
        &st,
        Method::PUT,
        "/v1/agent/service/register",
        "{nope",
        StatusCode::BAD_REQUEST,
        "Request decode failed:",
    )
    .await;
    check_status(
        &st,
        Method::PUT,
        "/v1/agent/service/register",
        r#"{"Name":"x","Foo":1}"#,
        StatusCode::BAD_REQUEST,
        "Request decode failed: json: unknown field \"Foo\"",
    )
    .await;
    check_status(
        &st,
        Method::PUT,
        "/v1/agent/service/register",
        r#"{"Port":1}"#,
        StatusCode::BAD_REQUEST,
        "Missing service name",
    )
    .await;
    check_status(
        &st,
        Method::PUT,
        "/v1/agent/check/register",
        r#"{"TTL":"1s"}"#,
        StatusCode::BAD_REQUEST,
        "Missing check name",
    )
    .await;
    check_status(
        &st,
        Method::PUT,
        "/v1/agent/check/register",
        r#"{"Name":"c","TTL":"1s","ServiceID":"ghost"}"#,
        StatusCode::NOT_FOUND,
        "ServiceID \"ghost\" does not exist",
    )
    .await;
    check_status(
        &st,
        Method::PUT,
        "/v1/agent/check/update/service:web1",
        r#"{"Status":"sunny"}"#,
        StatusCode::BAD_REQUEST,
        "Invalid check status: 'sunny'",
    )
    .await;
    check_status(
        &st,
        Method::PUT,
        "/v1/catalog/register",
        r#"{"Node":"n"}"#,
        StatusCode::INTERNAL_SERVER_ERROR,
        "Must provide address",
    )
    .await;
    let big = format!(r#"{{"Name":"{}"}}"#, "x".repeat(MAX_BODY_BYTES + 1));
    check_status(&st, Method::PUT, "/v1/agent/service/register", &big, StatusCode::PAYLOAD_TOO_LARGE, "")
        .await;
}

#[tokio::test]
async fn router_405_has_allow_header() {
    let (st, _dir) = state_with(commands()).await;
    let (status, headers, _) = call(&st, Method::DELETE, "/v1/catalog/services", Body::empty()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let allow = headers.get("allow").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(allow.contains("GET"), "Allow: {allow}");
}

#[tokio::test]
async fn wildcard_ids_with_slashes() {
    let mut cmds = commands();
    cmds.push(Command::Register(Registration {
        node: node("agent1", "10.0.0.1"),
        skip_node_update: false,
        service: Some(service("agent1", "a/b", "slashy", &[])),
        checks: vec![],
    }));
    let (st, _dir) = state_with(cmds).await;
    let (_, v) = get_json(&st, "/v1/agent/service/a/b").await;
    assert_eq!(v["ID"], "a/b");
}

#[tokio::test]
async fn agent_writes_end_to_end() {
    let (st, _dir) = state_with(Vec::new()).await;
    check_status(
        &st,
        Method::PUT,
        "/v1/agent/service/register",
        r#"{"name":"api","id":"api-1","port":9000,"tags":["v1"],"check":{"ttl":"30s"}}"#,
        StatusCode::OK,
        "",
    )
    .await;
    let (_, v) = get_json(&st, "/v1/agent/checks").await;
    assert_eq!(v["service:api-1"]["Status"], "critical");
    assert_eq!(v["service:api-1"]["ServiceName"], "api");
    let (_, v) = get_json(&st, "/v1/catalog/node/agent1").await;
    assert_eq!(v["Node"]["Address"], "10.0.0.1");
    assert_eq!(v["Node"]["TaggedAddresses"]["lan"], "10.0.0.1");
    assert_eq!(v["Services"]["api-1"]["Port"], 9000);
    check_status(&st, Method::PUT, "/v1/agent/check/pass/service:api-1?note=fine", "", StatusCode::OK, "")
        .await;
    let (_, v) = get_json(&st, "/v1/health/service/api?passing").await;
    assert_eq!(v[0]["Checks"][0]["Output"], "fine");
    check_status(
        &st,
        Method::PUT,
        "/v1/agent/check/update/service:api-1",
        r#"{"status":"warning","output":"slow"}"#,
        StatusCode::OK,
        "",
    )
    .await;
    let (_, v) = get_json(&st, "/v1/health/state/warning").await;
    assert_eq!(v[0]["CheckID"], "service:api-1");
    check_status(
        &st,
        Method::PUT,
        "/v1/agent/check/register",
        r#"{"Name":"disk","TTL":"1m"}"#,
        StatusCode::OK,
        "",
    )
    .await;
    check_status(&st, Method::PUT, "/v1/agent/check/deregister/disk", "", StatusCode::OK, "").await;
    check_status(
        &st,
        Method::PUT,
        "/v1/catalog/register",
        r#"{"Node":"ext","Address":"192.0.2.1","Service":{"Service":"api","Port":80}}"#,
        StatusCode::OK,
        "true",
    )
    .await;
    let (_, v) = get_json(&st, "/v1/catalog/service/api").await;
    assert_eq!(v.as_array().map(Vec::len), Some(2));
    check_status(&st, Method::PUT, "/v1/catalog/deregister", r#"{"Node":"ext"}"#, StatusCode::OK, "true")
        .await;
    check_status(&st, Method::PUT, "/v1/agent/service/deregister/api-1", "", StatusCode::OK, "").await;
    let (_, v) = get_json(&st, "/v1/catalog/service/api").await;
    assert_eq!(v, json!([]));
    let (_, v) = get_json(&st, "/v1/agent/checks").await;
    assert_eq!(v, json!({}));
}
