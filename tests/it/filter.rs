//! `?filter=` on a live agent: every endpoint Consul 1.8.7 filters, Consul's 500 texts for an
//! invalid expression and an invalid selector, and blocking queries that keep the unfiltered
//! data's index.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::Agent;

fn with_filter(path: &str, expr: &str) -> String {
    let q: String = form_urlencoded::Serializer::new(String::new()).append_pair("filter", expr).finish();
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}{q}")
}

fn filtered(agent: &Agent, path: &str, expr: &str) -> Value {
    let (s, v) = agent.get(&with_filter(path, expr)).unwrap();
    assert_eq!(s, 200, "{path} {expr}: {v}");
    v
}

fn field<'a>(v: &'a Value, key: &str) -> Vec<&'a str> {
    v.as_array().unwrap().iter().map(|e| e[key].as_str().unwrap()).collect()
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

/// A dev agent with `web-1` (v1, env=prod, port 80) and `db-1` (env=staging, 5432) on its own
/// node, each with a TTL check, and an external node `ext` (rack=r2) with `web-ext`.
fn seeded() -> Agent {
    let agent = Agent::dev(&[]);
    agent.put_ok(
        "/v1/agent/service/register",
        r#"{"Name":"web","ID":"web-1","Tags":["v1"],"Port":80,"Meta":{"env":"prod"},
            "Check":{"CheckID":"web-ttl","TTL":"30s"}}"#,
    );
    agent.put_ok(
        "/v1/agent/service/register",
        r#"{"Name":"db","ID":"db-1","Port":5432,"Meta":{"env":"staging"},
            "Check":{"CheckID":"db-ttl","TTL":"30s","Status":"passing"}}"#,
    );
    agent.put_ok(
        "/v1/catalog/register",
        r#"{"Node":"ext","Address":"10.0.0.9","NodeMeta":{"rack":"r2"},
            "Service":{"Service":"web","ID":"web-ext","Port":8080,"Tags":["v2"]},
            "Check":{"CheckID":"ext-http","Name":"ext","Status":"warning","ServiceID":"web-ext"}}"#,
    );
    agent
}

#[test]
fn every_filtering_endpoint_filters() {
    let agent = seeded();
    let v = filtered(&agent, "/v1/agent/services", "Meta.env == prod and v1 in Tags");
    assert_eq!(keys(&v), ["web-1"]);
    let v = filtered(&agent, "/v1/agent/checks", "ServiceName == db");
    assert_eq!(keys(&v), ["db-ttl"]);
    let v = filtered(&agent, "/v1/catalog/nodes", "Meta.rack == r2");
    assert_eq!(field(&v, "Node"), ["ext"]);
    let v = filtered(&agent, "/v1/catalog/service/web", "ServicePort == 8080 or NodeMeta.rack == r9");
    assert_eq!(field(&v, "ServiceID"), ["web-ext"]);
    let v = filtered(&agent, "/v1/catalog/node/ext", "Port != 8080");
    assert_eq!(v["Node"]["Node"], "ext");
    assert_eq!(v["Services"], serde_json::json!({}));
    let v = filtered(&agent, "/v1/health/node/ext", "Status == warning");
    assert_eq!(field(&v, "CheckID"), ["ext-http"]);
    let v = filtered(&agent, "/v1/health/checks/web", "Node == ext");
    assert_eq!(field(&v, "CheckID"), ["ext-http"]);
    let v = filtered(&agent, "/v1/health/service/web", "Node.Meta.rack == r2 and Checks.Status == warning");
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["Service"]["ID"], "web-ext");
    let v = filtered(&agent, "/v1/health/state/any", r#"CheckID matches "^(web|db)-ttl$""#);
    let mut ids = field(&v, "CheckID");
    ids.sort_unstable();
    assert_eq!(ids, ["db-ttl", "web-ttl"]);
    // Filters combine with the endpoints' other parameters.
    let v = filtered(&agent, "/v1/health/service/web?passing", "Service.Port == 8080");
    assert_eq!(v, serde_json::json!([]));
}

#[test]
fn invalid_filters_get_consuls_500_and_text() {
    let agent = seeded();
    let syntax = "Failed to create boolean expression evaluator: 1:11 (10): no match found, expected: \
                  \"-\", \"0\", \"\\\"\", \"`\", [ \\t\\r\\n], [1-9] or [a-zA-Z]";
    for path in [
        "/v1/agent/services",
        "/v1/agent/checks",
        "/v1/catalog/nodes",
        "/v1/catalog/service/web",
        "/v1/catalog/node/ext",
        "/v1/health/node/ext",
        "/v1/health/checks/web",
        "/v1/health/service/web",
        "/v1/health/state/any",
    ] {
        let (s, _, body) = agent.get_full(&with_filter(path, "Service ==")).unwrap();
        assert_eq!((s, body.as_str()), (500, syntax), "{path}");
        let (s, _, body) = agent.get_full(&with_filter(path, "Foo == 1")).unwrap();
        let want = if path == "/v1/agent/checks" {
            // Consul 1.8.7 creates this endpoint's filter untyped: the selector fails at the
            // first check, without the prefix.
            r#"Selector "Foo" is not valid"#.to_owned()
        } else {
            r#"Failed to create boolean expression evaluator: Selector "Foo" is not valid"#.to_owned()
        };
        assert_eq!((s, body), (500, want), "{path}");
    }
    let (s, _, body) = agent.get_full(&with_filter("/v1/catalog/nodes", "Meta.rack is empty")).unwrap();
    assert_eq!(
        (s, body.as_str()),
        (
            500,
            r#"Failed to create boolean expression evaluator: Invalid match operator "Is Empty" for selector "Meta.rack""#
        )
    );
    // Endpoints Consul does not filter ignore the parameter.
    let (s, v) = agent.get(&with_filter("/v1/catalog/services", "Foo ==")).unwrap();
    assert_eq!(s, 200);
    assert!(v.get("web").is_some());
}

#[test]
fn a_blocking_query_with_a_filter_wakes_on_the_unfiltered_index() {
    let agent = seeded();
    let path = with_filter("/v1/health/service/web", "Node.Node == ext");
    let (_, headers, _) = agent.get_full("/v1/health/service/web").unwrap();
    let unfiltered: u64 = headers["X-Consul-Index"].to_str().unwrap().parse().unwrap();
    let (_, headers, body) = agent.get_full(&path).unwrap();
    assert_eq!(headers["X-Consul-Index"].to_str().unwrap().parse::<u64>().unwrap(), unfiltered);
    let before: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(before.as_array().unwrap().len(), 1);

    let http = agent.http;
    let waiter = std::thread::spawn(move || {
        let started = Instant::now();
        let url = format!("http://{http}{path}&index={unfiltered}&wait=20s");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (index, body) = rt.block_on(async {
            let r = crate::support::http_client().get(url).send().await.unwrap();
            let i: u64 = r.headers()["X-Consul-Index"].to_str().unwrap().parse().unwrap();
            (i, r.json::<Value>().await.unwrap())
        });
        (started.elapsed(), index, body)
    });
    std::thread::sleep(Duration::from_millis(500));
    // A change to an instance the filter hides still wakes the query, as in Consul.
    agent.put_ok("/v1/agent/check/pass/web-ttl", "");
    let (waited, index, after) = waiter.join().unwrap();
    assert!(waited < Duration::from_secs(15), "woke after {waited:?}");
    assert!(index > unfiltered);
    assert_eq!(after, before);
}

#[test]
fn the_fuzz_entry_point_is_reachable_from_outside_the_crate() {
    // What tests/fuzz/fuzz_targets/filter_expression.rs calls, on a few inputs.
    for input in [&b"Service == web"[..], b"(a == b", b"\xff\xfe", b"not not x in y", b""] {
        cairn::testing::filter_fuzz_logic::expression_text(input);
    }
}
