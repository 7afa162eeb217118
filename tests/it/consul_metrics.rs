//! Consul's metric names (issue 20, item 6): after traffic of every kind a single dev agent
//! sees, `/v1/agent/metrics` (JSON and `?format=prometheus`) carries every name the fixture
//! `data/consul-metrics.txt` (Consul 1.8's telemetry reference, with origin) marks `emitted`,
//! and every `consul.*` name it carries is one the reference documents.

use std::collections::BTreeSet;

use hickory_proto::rr::RecordType;
use serde_json::Value;

use crate::support::{Agent, Transport};

const FIXTURE: &str = include_str!("data/consul-metrics.txt");

/// (name, status) of each fixture line.
fn fixture() -> Vec<(&'static str, &'static str)> {
    FIXTURE
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut cols = l.split('\t');
            let (name, status, why) = (cols.next().unwrap(), cols.next().unwrap(), cols.next().unwrap_or(""));
            assert!(["emitted", "event", "absent"].contains(&status), "bad status in {l:?}");
            assert!(!why.trim().is_empty(), "every line says why: {l:?}");
            (name, status)
        })
        .collect()
}

/// Whether `name` is documented by the fixture line `entry` (a `prefix.*` line covers a family).
fn covers(entry: &str, name: &str) -> bool {
    entry.strip_suffix('*').map_or(entry == name, |prefix| name.starts_with(prefix))
}

fn traffic(agent: &Agent) {
    agent.put_ok("/v1/kv/app/config", "v1");
    agent.put_ok(
        "/v1/catalog/register",
        r#"{"Node":"n1","Address":"10.0.0.1","Service":{"Service":"web","Tags":["v1"]}}"#,
    );
    agent.put_ok("/v1/catalog/deregister", r#"{"Node":"n1","ServiceID":"web"}"#);
    agent.put_ok("/v1/agent/service/register", r#"{"Name":"api","Port":80,"Tags":["blue"]}"#);
    for path in [
        "/v1/catalog/datacenters",
        "/v1/catalog/nodes",
        "/v1/catalog/services",
        "/v1/catalog/service/api",
        "/v1/catalog/service/api?tag=blue",
        "/v1/catalog/service/nothing",
        "/v1/catalog/node/n1",
        "/v1/health/service/api?tag=blue",
        "/v1/health/service/nothing",
        "/v1/kv/app/config?consistent",
    ] {
        agent.get(path).unwrap();
    }
    agent.put_ok("/v1/txn", r#"[{"KV":{"Verb":"get","Key":"app/config"}}]"#);
    agent.put_ok("/v1/txn", r#"[{"KV":{"Verb":"set","Key":"app/other","Value":"eA=="}}]"#);
    let session = agent.put_ok("/v1/session/create", r#"{"TTL":"30s"}"#);
    let id = serde_json::from_str::<Value>(&session).unwrap()["ID"].as_str().unwrap().to_owned();
    agent.put_ok(&format!("/v1/session/renew/{id}"), "");
    crate::api_parity::post(agent.http, "/v1/query", r#"{"Name":"q1","Service":{"Service":"api"}}"#);
    agent.get("/v1/query/q1/execute").unwrap();
    agent.query("api.service.consul.", RecordType::A, Transport::Udp);
    agent.query("1.0.0.127.in-addr.arpa.", RecordType::PTR, Transport::Udp);
}

#[test]
fn consul_metric_names_match_the_telemetry_reference() {
    let fixture = fixture();
    let agent = Agent::dev(&[]);
    traffic(&agent);
    let (s, v) = agent.get("/v1/agent/metrics").unwrap();
    assert_eq!(s, 200);
    let mut emitted = BTreeSet::new();
    for kind in ["Gauges", "Counters", "Samples"] {
        for m in v[kind].as_array().unwrap() {
            let name = m["Name"].as_str().unwrap();
            if name.starts_with("consul.") {
                emitted.insert(name.to_owned());
            }
        }
    }
    for name in &emitted {
        let entry = fixture.iter().find(|(e, _)| covers(e, name));
        assert!(
            entry.is_some_and(|(_, st)| *st != "absent"),
            "{name} is emitted but the reference fixture has it {entry:?}"
        );
    }
    let (_, _, prom) = agent.get_full("/v1/agent/metrics?format=prometheus").unwrap();
    for (entry, status) in &fixture {
        if *status != "emitted" {
            continue;
        }
        let seen: Vec<&String> = emitted.iter().filter(|n| covers(entry, n)).collect();
        assert!(!seen.is_empty(), "{entry} is marked emitted but missing after the traffic: {emitted:#?}");
        for name in seen {
            let prom_name: String =
                name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
            assert!(
                prom.lines().any(|l| !l.starts_with('#') && l.starts_with(&prom_name)),
                "{prom_name} missing from ?format=prometheus"
            );
        }
    }
    // Labels as Consul's (live on 1.8.7).
    let counters = v["Counters"].as_array().unwrap();
    let labelled = |name: &str, key: &str, value: &str| {
        counters.iter().any(|c| c["Name"] == name && c["Labels"][key] == value)
    };
    assert!(labelled("consul.catalog.service.query-tags", "tag", "blue"));
    assert!(labelled("consul.catalog.service.not-found", "service", "nothing"));
    assert!(labelled("consul.client.api.catalog_register", "node", "node1"));
    let samples = v["Samples"].as_array().unwrap();
    let kvs = samples.iter().find(|s| s["Name"] == "consul.fsm.kvs" && s["Labels"]["op"] == "set").unwrap();
    assert!(kvs["Count"].as_u64().unwrap() >= 1);
    assert!(samples.iter().any(|s| s["Name"] == "consul.http.PUT.v1.kv._"));
    assert!(samples.iter().any(|s| s["Name"] == "consul.dns.ptr_query" && s["Labels"]["node"] == "node1"));
}
