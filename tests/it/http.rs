//! Consul's HTTP API: shapes, headers, errors and blocking queries against a live agent.

use std::time::{Duration, Instant};

use crate::support::Agent;

#[test]
fn catalog_and_health_reads_show_a_registered_service() {
    let agent = Agent::dev(&[]);
    agent.put_ok(
        "/v1/agent/service/register",
        r#"{"name":"db","id":"db-1","tags":["primary"],"port":5432,"meta":{"version":"15"},
            "check":{"check_id":"db-ttl","ttl":"30s"}}"#,
    );
    let (s, services) = agent.get("/v1/catalog/services").unwrap();
    assert_eq!(s, 200);
    assert_eq!(services["db"], serde_json::json!(["primary"]));
    assert!(services.get("consul").is_some());

    let (_, headers, body) = agent.get_full("/v1/catalog/service/db").unwrap();
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list[0]["ServiceID"], "db-1");
    assert_eq!(list[0]["ServicePort"], 5432);
    assert_eq!(list[0]["Node"], "node1");
    assert_eq!(list[0]["ServiceMeta"]["version"], "15");
    for h in ["X-Consul-Index", "X-Consul-KnownLeader", "X-Consul-LastContact"] {
        assert!(headers.contains_key(h), "missing {h}");
    }
    assert_ne!(headers["X-Consul-Index"], "0");

    // The TTL check starts critical (Consul's default), so ?passing hides the instance.
    let (_, all) = agent.get("/v1/health/service/db").unwrap();
    assert_eq!(all.as_array().unwrap().len(), 1);
    let (_, passing) = agent.get("/v1/health/service/db?passing").unwrap();
    assert_eq!(passing, serde_json::json!([]));
    agent.put_ok("/v1/agent/check/pass/db-ttl", "");
    let (_, passing) = agent.get("/v1/health/service/db?passing=true").unwrap();
    assert_eq!(passing.as_array().unwrap().len(), 1);
    assert_eq!(passing[0]["Service"]["ID"], "db-1");
}

#[test]
fn bad_requests_get_consul_status_codes() {
    let agent = Agent::dev(&[]);
    let (s, body) = agent.put("/v1/agent/service/register", "{not json");
    assert_eq!(s, 400, "{body}");
    let (s, body) = agent.put("/v1/agent/service/register", r#"{"Name":"x","Bogus":1}"#);
    assert_eq!(s, 400);
    assert!(body.contains("unknown field"), "{body}");
    let (s, _) = agent.put("/v1/agent/service/register", r#"{"Port":1}"#);
    assert_eq!(s, 400);
    let (s, body) = agent.put("/v1/agent/service/deregister/nope", "");
    assert_eq!(s, 404, "{body}");
    let (s, _) = agent.put("/v1/agent/check/pass/nope", "");
    assert_eq!(s, 404);
    let big = format!(r#"{{"Name":"big","Meta":{{"k":"{}"}}}}"#, "x".repeat(600 * 1024));
    let (s, _) = agent.put("/v1/agent/service/register", &big);
    assert_eq!(s, 413);
    let (s, _) = agent.get("/v1/catalog/services?index=abc").unwrap();
    assert_eq!(s, 400);
    // The agent survives all of it.
    assert_eq!(agent.get("/v1/status/leader").unwrap().0, 200);
}

#[test]
fn blocking_query_returns_when_the_service_changes() {
    let agent = Agent::dev(&[]);
    agent.put_ok("/v1/agent/service/register", r#"{"Name":"cache","Port":6379}"#);
    let (_, headers, _) = agent.get_full("/v1/health/service/cache").unwrap();
    let index: u64 = headers["X-Consul-Index"].to_str().unwrap().parse().unwrap();

    let http = agent.http;
    let waiter = std::thread::spawn(move || {
        let start = Instant::now();
        let url = format!("http://{http}/v1/health/service/cache?index={index}&wait=30s");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (new_index, body) = rt.block_on(async {
            let r = crate::support::http_client().get(url).send().await.unwrap();
            let i: u64 = r.headers()["X-Consul-Index"].to_str().unwrap().parse().unwrap();
            (i, r.text().await.unwrap())
        });
        (start.elapsed(), new_index, body)
    });
    std::thread::sleep(Duration::from_millis(500));
    agent.put_ok("/v1/agent/service/register", r#"{"Name":"cache","Port":6380}"#);
    let (elapsed, new_index, body) = waiter.join().unwrap();
    assert!(new_index > index);
    assert!(body.contains("6380"), "{body}");
    assert!(elapsed < Duration::from_secs(20), "woken by the change, not the timeout: {elapsed:?}");
}

#[test]
fn catalog_register_and_deregister_round_trip() {
    let agent = Agent::dev(&[]);
    let body = agent.put_ok(
        "/v1/catalog/register",
        r#"{"Node":"ext","Address":"192.0.2.7","NodeMeta":{"rack":"r1"},
            "Service":{"Service":"legacy","Port":25,"Tags":["smtp"]}}"#,
    );
    assert_eq!(body.trim(), "true");
    let (_, node) = agent.get("/v1/catalog/node/ext").unwrap();
    assert_eq!(node["Node"]["Address"], "192.0.2.7");
    assert_eq!(node["Services"]["legacy"]["Port"], 25);
    // The Go client's CatalogDeregistration sends the node's Address; Consul ignores it.
    agent.put_ok("/v1/catalog/deregister", r#"{"Node":"ext","Address":"192.0.2.7","ServiceID":"legacy"}"#);
    assert_eq!(agent.get("/v1/catalog/node/ext").unwrap().1["Services"], serde_json::json!({}));
    agent.put_ok("/v1/catalog/deregister", r#"{"Node":"ext"}"#);
    let (s, node) = agent.get("/v1/catalog/node/ext").unwrap();
    assert_eq!((s, node), (200, serde_json::Value::Null));
}

/// `?dc=` naming another datacenter: Consul's 500 `No path to datacenter` on the endpoints Consul
/// forwards by it (a KV write meant for dc2 must not land in dc1), 200 on those that ignore it,
/// and NXDOMAIN for a DNS name in another datacenter (spec §5 W3; Consul 1.8.7 checked live).
#[test]
fn another_datacenter_has_no_path_and_nothing_lands_locally() {
    use hickory_proto::op::ResponseCode;
    use hickory_proto::rr::RecordType;

    let a = Agent::dev(&[]);
    for path in ["/v1/catalog/services?dc=nope", "/v1/health/state/any?dc=dc2", "/v1/status/leader?dc=DC1"] {
        let (status, _, body) = a.get_full(path).unwrap();
        assert_eq!((status, body.as_str()), (500, "No path to datacenter"), "{path}");
    }
    assert_eq!(a.put("/v1/kv/moved?dc=dc2", "v"), (500, "No path to datacenter".to_owned()));
    assert_eq!(a.get("/v1/kv/moved").unwrap().0, 404, "the write meant for dc2 landed in dc1");
    assert_eq!(a.put("/v1/kv/moved?dc=dc1", "v"), (200, "true".to_owned()));
    assert_eq!(a.get("/v1/catalog/services?dc=").unwrap().0, 200);
    for path in ["/v1/agent/self?dc=nope", "/v1/catalog/datacenters?dc=nope"] {
        assert_eq!(a.get(path).unwrap().0, 200, "{path}");
    }
    let msg = a.query("consul.service.nope.consul.", RecordType::A, crate::support::Transport::Udp);
    assert_eq!(msg.metadata.response_code, ResponseCode::NXDomain);
    assert!(!msg.authorities.is_empty(), "NXDOMAIN carries the SOA: {msg:?}");
}

/// `/v1/catalog/node-services/:node` (Consul 1.8.7): the node and its instances as a list,
/// `?filter=` on them, `null`s for an unknown node, 400 without a name.
#[test]
fn node_services_lists_a_nodes_instances() {
    let agent = Agent::dev(&[]);
    agent.put_ok("/v1/agent/service/register", r#"{"ID":"w1","Name":"web","Port":80,"Tags":["a"]}"#);
    agent.put_ok("/v1/agent/service/register", r#"{"ID":"d1","Name":"db","Port":5432}"#);
    let (code, v) = agent.get("/v1/catalog/node-services/node1").unwrap();
    assert_eq!(code, 200);
    assert_eq!(v["Node"]["Node"], "node1");
    let ids: Vec<&str> =
        v["Services"].as_array().unwrap().iter().map(|s| s["ID"].as_str().unwrap()).collect();
    assert!(ids.contains(&"w1") && ids.contains(&"d1"), "{v}");
    let (_, v) = agent.get("/v1/catalog/node-services/node1?filter=Service%20%3D%3D%20web").unwrap();
    let ids: Vec<&str> =
        v["Services"].as_array().unwrap().iter().map(|s| s["ID"].as_str().unwrap()).collect();
    assert_eq!(ids, ["w1"]);
    let (code, v) = agent.get("/v1/catalog/node-services/nope").unwrap();
    assert_eq!((code, v), (200, serde_json::json!({"Node": null, "Services": null})));
    assert_eq!(agent.get("/v1/catalog/node-services/").unwrap().0, 400);
}

/// A session lists its checks as `NodeChecks`/`ServiceChecks` only (Consul 1.8.7 has no
/// `Checks` in its answer; the Go client's tests compare `Checks` with nil).
#[test]
fn session_info_has_no_legacy_checks_field() {
    let agent = Agent::dev(&[]);
    let created: serde_json::Value = serde_json::from_str(&agent.put_ok("/v1/session/create", "{}")).unwrap();
    let id = created["ID"].as_str().unwrap();
    let (_, info) = agent.get(&format!("/v1/session/info/{id}")).unwrap();
    assert_eq!(info[0]["NodeChecks"], serde_json::json!(["serfHealth"]));
    assert!(info[0].get("Checks").is_none(), "{info}");
}

/// A catalog check's unset `Type` is derived from its definition, a given one kept (Consul
/// 1.8.7, live); the Go client's txn test reads `tcp` back.
#[test]
fn catalog_check_type_follows_its_definition() {
    let agent = Agent::dev(&[]);
    agent.put_ok(
        "/v1/catalog/register",
        r#"{"Node":"n9","Address":"192.0.2.9","Checks":[
            {"CheckID":"c1","Name":"c","Definition":{"TCP":"192.0.2.9:80","Interval":"10s"}},
            {"CheckID":"c2","Name":"c","Definition":{"HTTP":"http://192.0.2.9/","Interval":"10s"}},
            {"CheckID":"c3","Name":"c"},
            {"CheckID":"c4","Name":"c","Type":"custom","Definition":{"TCP":"192.0.2.9:81"}}]}"#,
    );
    let (_, checks) = agent.get("/v1/health/node/n9").unwrap();
    let types: Vec<(&str, &str)> = checks
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["CheckID"].as_str().unwrap(), c["Type"].as_str().unwrap()))
        .collect();
    assert_eq!(types, [("c1", "tcp"), ("c2", "http"), ("c3", ""), ("c4", "custom")]);
}
