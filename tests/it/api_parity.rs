//! Consul 1.8.7's smaller HTTP behaviours (issue 20, item 5), each checked live against Consul
//! first: catalog weights of zero, the transaction service verbs and every KV error, the
//! `QueryMeta` of read-only transactions and prepared-query execution, tagged addresses
//! derived from a service's address, snapshot headers, `?cached` and gzip.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Agent, block, http_client};

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// A GET with extra request headers: (status, headers, body bytes).
fn get_with(
    agent: &Agent,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    block(async {
        let mut req =
            http_client().get(format!("http://{}{path}", agent.http)).timeout(Duration::from_secs(30));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.unwrap();
        let (status, headers) = (r.status().as_u16(), r.headers().clone());
        (status, headers, r.bytes().await.unwrap().to_vec())
    })
}

/// A PUT: (status, headers, body).
fn put_full(agent: &Agent, path: &str, body: &str) -> (u16, reqwest::header::HeaderMap, String) {
    block(async {
        let r = http_client()
            .put(format!("http://{}{path}", agent.http))
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let (status, headers) = (r.status().as_u16(), r.headers().clone());
        (status, headers, r.text().await.unwrap())
    })
}

/// A POST that must succeed; its body.
pub(crate) fn post(http: std::net::SocketAddr, path: &str, body: &str) -> String {
    block(async {
        let r =
            http_client().post(format!("http://{http}{path}")).body(body.to_owned()).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "POST {path}");
        r.text().await.unwrap()
    })
}

fn weights_of(agent: &Agent, service: &str, id: &str) -> Value {
    let (_, list) = agent.get(&format!("/v1/catalog/service/{service}")).unwrap();
    let entry = list.as_array().unwrap().iter().find(|s| s["ServiceID"] == id).cloned().unwrap();
    entry["ServiceWeights"].clone()
}

#[test]
fn catalog_weights_out_of_range_are_stored_as_the_default() {
    let agent = Agent::dev(&[]);
    // The Go client's `AgentWeights` is not a pointer: every Catalog().Register() sends zeros.
    for (id, weights) in [
        ("zero", json!({"Passing": 0, "Warning": 0})),
        ("neg", json!({"Passing": 2, "Warning": -1})),
        ("big", json!({"Passing": 65536, "Warning": 1})),
        ("kept", json!({"Passing": 2, "Warning": 0})),
        ("max", json!({"Passing": 65535, "Warning": 65535})),
    ] {
        let body = json!({"Node": "n1", "Address": "10.0.0.1",
                          "Service": {"ID": id, "Service": "w", "Weights": weights}});
        assert_eq!(agent.put_ok("/v1/catalog/register", &body.to_string()), "true");
    }
    assert_eq!(weights_of(&agent, "w", "zero"), json!({"Passing": 1, "Warning": 1}));
    assert_eq!(weights_of(&agent, "w", "neg"), json!({"Passing": 1, "Warning": 1}));
    assert_eq!(weights_of(&agent, "w", "big"), json!({"Passing": 1, "Warning": 1}));
    assert_eq!(weights_of(&agent, "w", "kept"), json!({"Passing": 2, "Warning": 0}));
    assert_eq!(weights_of(&agent, "w", "max"), json!({"Passing": 65535, "Warning": 65535}));
}

fn txn(agent: &Agent, ops: Value) -> (u16, Value) {
    let (status, text) = agent.put("/v1/txn", &ops.to_string());
    (status, json_of(&text))
}

fn errors(v: &Value) -> Vec<(u64, String)> {
    v["Errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["OpIndex"].as_u64().unwrap(), e["What"].as_str().unwrap().to_owned()))
        .collect()
}

#[test]
fn transactions_take_consuls_service_verbs() {
    let agent = Agent::dev(&[]);
    agent.put_ok("/v1/catalog/register", r#"{"Node":"tn","Address":"10.0.0.9"}"#);
    let svc =
        |verb: &str, service: Value| json!([{"Service": {"Verb": verb, "Node": "tn", "Service": service}}]);

    let (s, v) = txn(
        &agent,
        svc(
            "set",
            json!({"ID": "s1", "Service": "svc", "Port": 80,
                                                "Weights": {"Passing": 0, "Warning": 0}}),
        ),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["Results"][0]["Service"]["Weights"], json!({"Passing": 1, "Warning": 1}));
    let index = v["Results"][0]["Service"]["ModifyIndex"].as_u64().unwrap();

    let (s, v) = txn(&agent, svc("get", json!({"ID": "s1"})));
    assert_eq!((s, v["Results"][0]["Service"]["Port"].as_u64()), (200, Some(80)));
    // Unset lists and maps are null, as Consul's stored structs.
    assert_eq!(
        (&v["Results"][0]["Service"]["Tags"], &v["Results"][0]["Service"]["Meta"]),
        (&json!(null), &json!(null))
    );
    assert_eq!((v["Index"].as_u64(), v["KnownLeader"].as_bool()), (Some(0), Some(true)));
    assert_eq!(v["ConsistencyLevel"], "");

    let (s, v) = txn(&agent, svc("cas", json!({"ID": "s1", "Service": "svc", "Port": 81, "ModifyIndex": 1})));
    assert_eq!(s, 409);
    assert_eq!(errors(&v), [(0, "failed to set service \"s1\" on node \"tn\", index is stale".to_owned())]);
    let (s, v) =
        txn(&agent, svc("cas", json!({"ID": "s1", "Service": "svc", "Port": 81, "ModifyIndex": index})));
    assert_eq!((s, v["Results"][0]["Service"]["Port"].as_u64()), (200, Some(81)), "{v}");

    let (s, v) =
        txn(&agent, json!([{"Service": {"Verb": "set", "Node": "nonode", "Service": {"Service": "x"}}}]));
    assert_eq!((s, errors(&v)), (409, vec![(0, "Missing node registration".to_owned())]));
    let (s, v) = txn(&agent, svc("delete", json!({"ID": "s1"})));
    assert_eq!((s, errors(&v)), (409, vec![(0, "Must provide service name with ID".to_owned())]));
    let (s, v) = txn(&agent, svc("bogus", json!({"ID": "s1", "Service": "svc"})));
    assert_eq!((s, errors(&v)), (409, vec![(0, "unknown Service verb \"bogus\"".to_owned())]));
    let (s, v) = txn(&agent, svc("set", json!({"ID": "x", "Service": "y", "Address": "0.0.0.0"})));
    assert_eq!((s, errors(&v)), (409, vec![(0, "Invalid service address".to_owned())]));
    let (s, v) = txn(&agent, svc("delete-cas", json!({"ID": "s1", "Service": "svc", "ModifyIndex": 3})));
    assert_eq!(
        errors(&v),
        [(0, "failed to delete service \"s1\" on node \"tn\", index is stale".to_owned())]
    );
    assert_eq!(s, 409);

    let (s, v) = txn(&agent, svc("delete", json!({"ID": "s1", "Service": "svc"})));
    assert_eq!((s, v["Results"].clone()), (200, json!([])));
    let (s, _) = agent.get("/v1/catalog/service/svc").unwrap();
    assert_eq!(s, 200);
    assert_eq!(agent.get("/v1/catalog/service/svc").unwrap().1, json!([]));
    // Deleting what is not there is done; its cas form is stale.
    let (s, _) = txn(&agent, svc("delete", json!({"ID": "zz", "Service": "svc"})));
    assert_eq!(s, 200);
}

#[test]
fn transactions_report_every_failing_operation_in_consuls_words() {
    let agent = Agent::dev(&[]);
    agent.put_ok("/v1/kv/ex", "v");
    let (s, v) = txn(
        &agent,
        json!([
            {"KV": {"Verb": "check-session", "Key": "nokey", "Session": "abc"}},
            {"KV": {"Verb": "set", "Key": "b", "Value": "eA=="}},
            {"KV": {"Verb": "check-index", "Key": "zz", "Index": 3}},
            {"KV": {"Verb": "cas", "Key": "ex", "Index": 0}},
        ]),
    );
    assert_eq!(s, 409);
    assert_eq!(
        errors(&v),
        [
            (0, "failed to check session, key \"nokey\" doesn't exist".to_owned()),
            (2, "failed to check index, key \"zz\" doesn't exist".to_owned()),
            (3, "failed to set key \"ex\", index is stale".to_owned()),
        ]
    );
    // A lock without a session (the Go client's TestAPI_ClientTxn).
    let (s, v) = txn(&agent, json!([{"KV": {"Verb": "lock", "Key": "l", "Value": "eA=="}}]));
    assert_eq!((s, errors(&v)), (409, vec![(0, "missing session".to_owned())]));
    let (s, text) = agent.put("/v1/kv/l?acquire=", "v");
    assert_eq!((s, text.as_str()), (500, "missing session"));
    // A read-only transaction: QueryMeta in the body, KnownLeader/LastContact headers only.
    let (s, headers, text) = put_full(&agent, "/v1/txn", r#"[{"KV":{"Verb":"get","Key":"ex"}}]"#);
    assert_eq!(s, 200);
    let v = json_of(&text);
    assert_eq!(v["Results"][0]["KV"]["Key"], "ex");
    for k in ["Index", "LastContact", "KnownLeader", "ConsistencyLevel"] {
        assert!(v.get(k).is_some(), "{k} missing: {v}");
    }
    assert_eq!(headers["X-Consul-KnownLeader"], "true");
    assert!(headers.contains_key("X-Consul-LastContact"));
    assert!(!headers.contains_key("X-Consul-Index"), "{headers:?}");
}

#[test]
fn prepared_query_execute_carries_query_meta() {
    let agent = Agent::dev(&[]);
    agent.put_ok("/v1/agent/service/register", r#"{"Name":"web","Port":80}"#);
    let text = post(agent.http, "/v1/query", r#"{"Name":"q1","Service":{"Service":"web"}}"#);
    assert!(text.contains("ID"), "{text}");
    let (s, headers, body) = agent.get_full("/v1/query/q1/execute").unwrap();
    assert_eq!(s, 200, "{body}");
    let v = json_of(&body);
    assert_eq!(v["Nodes"].as_array().unwrap().len(), 1);
    assert_eq!((v["KnownLeader"].as_bool(), v["ConsistencyLevel"].as_str()), (Some(true), Some("leader")));
    assert!(v["LastContact"].is_u64());
    let header_index: u64 = headers["X-Consul-Index"].to_str().unwrap().parse().unwrap();
    assert_eq!(v["Index"].as_u64(), Some(header_index));
}

#[test]
fn agent_services_get_tagged_addresses_from_their_address() {
    let agent = Agent::dev(&[]);
    for body in [
        r#"{"Name":"a4","Address":"10.2.3.4","Port":80}"#,
        r#"{"Name":"a6","Address":"2001:db8::1","Port":81}"#,
        r#"{"Name":"ah","Address":"myhost.example","Port":80}"#,
        r#"{"Name":"an","Port":80}"#,
        r#"{"Name":"at","Address":"10.2.3.4","Port":80,"TaggedAddresses":{"wan_ipv4":{"Address":"9.9.9.9","Port":7}}}"#,
    ] {
        agent.put_ok("/v1/agent/service/register", body);
    }
    let tagged = |s: &str| {
        let (_, v) = agent.get(&format!("/v1/agent/service/{s}")).unwrap();
        let (_, c) = agent.get(&format!("/v1/catalog/service/{s}")).unwrap();
        if v["TaggedAddresses"].as_object().is_some_and(|m| !m.is_empty()) {
            assert_eq!(c[0]["ServiceTaggedAddresses"], v["TaggedAddresses"], "{s}: agent and catalog agree");
        }
        v["TaggedAddresses"].clone()
    };
    let addr = |a: &str, p: u16| json!({"Address": a, "Port": p});
    assert_eq!(tagged("a4"), json!({"lan_ipv4": addr("10.2.3.4", 80), "wan_ipv4": addr("10.2.3.4", 80)}));
    assert_eq!(
        tagged("a6"),
        json!({"lan_ipv6": addr("2001:db8::1", 81), "wan_ipv6": addr("2001:db8::1", 81)})
    );
    assert!(tagged("ah").as_object().is_none_or(serde_json::Map::is_empty));
    assert!(tagged("an").as_object().is_none_or(serde_json::Map::is_empty));
    assert_eq!(tagged("at"), json!({"lan_ipv4": addr("10.2.3.4", 80), "wan_ipv4": addr("9.9.9.9", 7)}));
}

#[test]
fn snapshot_carries_known_leader() {
    let agent = Agent::dev(&[]);
    let (s, headers, _) = get_with(&agent, "/v1/snapshot", &[]);
    assert_eq!(s, 200);
    assert_eq!(headers["X-Consul-KnownLeader"], "true");
    assert!(headers.contains_key("X-Consul-LastContact"));
    assert!(headers.contains_key("X-Consul-Index"));
}

#[test]
fn cached_reads_say_miss_then_hit() {
    let agent = Agent::dev(&[]);
    agent.put_ok("/v1/agent/service/register", r#"{"Name":"web","Port":80}"#);
    for path in [
        "/v1/catalog/service/web",
        "/v1/health/service/web",
        "/v1/catalog/services",
        "/v1/catalog/datacenters",
    ] {
        let cached = format!("{path}?cached");
        let (s, h, first) = get_with(&agent, &cached, &[]);
        assert_eq!((s, h["X-Cache"].to_str().unwrap()), (200, "MISS"), "{path}");
        assert!(!h.contains_key("Age"), "{path}");
        let (_, h, second) = get_with(&agent, &cached, &[]);
        assert_eq!(h["X-Cache"], "HIT", "{path}");
        assert_eq!(h["Age"], "0", "{path}");
        assert_eq!(first, second, "{path}: a hit replays the same answer");
        let (_, h, _) = get_with(&agent, path, &[]);
        assert!(!h.contains_key("X-Cache"), "{path}: no ?cached, no cache");
    }
    // A write elsewhere leaves the answer as it was: still a hit (Consul's refreshed entry).
    agent.put_ok("/v1/kv/x", "1");
    let (_, h, _) = get_with(&agent, "/v1/catalog/service/web?cached", &[]);
    assert_eq!((h["X-Cache"].to_str().unwrap(), h["Age"].to_str().unwrap()), ("HIT", "0"));
    // A change of the answer is a miss.
    agent.put_ok("/v1/agent/service/register", r#"{"Name":"web","ID":"web-2","Port":81}"#);
    let (_, h, body) = get_with(&agent, "/v1/catalog/service/web?cached", &[]);
    assert_eq!(h["X-Cache"], "MISS");
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap().as_array().unwrap().len(), 2);
    let (_, h, _) = get_with(&agent, "/v1/kv/x?cached", &[]);
    assert!(!h.contains_key("X-Cache"), "KV reads are not cached, as in Consul");
    let (s, _, body) = get_with(&agent, "/v1/catalog/services?cached&consistent", &[]);
    assert_eq!(
        (s, String::from_utf8_lossy(&body).as_ref()),
        (400, "Cannot specify ?cached with ?consistent, conflicting semantics.")
    );
}

#[test]
fn answers_are_gzipped_when_asked() {
    let agent = Agent::dev(&[]);
    let (_, plain_headers, plain) = get_with(&agent, "/v1/catalog/nodes", &[]);
    assert!(!plain_headers.contains_key("Content-Encoding"));
    let (s, h, gz) = get_with(&agent, "/v1/catalog/nodes", &[("Accept-Encoding", "gzip")]);
    assert_eq!(s, 200);
    assert_eq!(h["Content-Encoding"], "gzip");
    assert!(h["Vary"].to_str().unwrap().to_ascii_lowercase().contains("accept-encoding"));
    assert_eq!(gz.get(..2), Some(&[0x1f, 0x8b][..]), "gzip magic");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body.gz");
    std::fs::write(&file, &gz).unwrap();
    let out = std::process::Command::new("gzip").arg("-dc").arg(&file).output().unwrap();
    assert!(out.status.success());
    let (a, b): (Value, Value) =
        (serde_json::from_slice(&out.stdout).unwrap(), serde_json::from_slice(&plain).unwrap());
    assert_eq!(a[0]["Node"], b[0]["Node"]);
    // Errors are compressed too (Consul's gziphandler has no minimum size); empty bodies not.
    let (s, h, _) = get_with(&agent, "/v1/kv/missing", &[("Accept-Encoding", "gzip")]);
    assert_eq!(s, 404);
    assert!(!h.contains_key("Content-Encoding"));
}
