//! Tests: ACL enforcement through the real router (spec §1.4, §1.6, §1.7, §6 traps 1-4).
//!
//! The seam is `acl::Resolve`: `Fixed` maps a few secrets to `Authorizer::new` over real
//! `parse_rules` policies with `default_policy = "deny"`, the way the ACL state's resolver
//! will; everything below it (the router, the extractor, the handlers, the catalog on a live
//! single-node Raft) is the real thing. Catalog: `web` on agent1 and node2, `db` on node2.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::tests::{commands, state_with};
use super::{ApiState, router};
use crate::acl::{
    Authorizer, DefaultPolicy, GLOBAL_MANAGEMENT_RULES, ROOT_NAMES, Resolve, ResolveError, parse_rules,
};

/// The worked example of spec §1.5.
const READER: &str = r#"
service "web" { policy = "read" }
node_prefix "" { policy = "read" }
key_prefix "app/" { policy = "read" }
key "app/secret" { policy = "deny" }
key_prefix "app/rw/" { policy = "write" }
"#;

/// Secrets and their rules; `None` (no token) is the anonymous token with no policy.
const TOKENS: &[(&str, &str)] = &[
    ("mgmt", GLOBAL_MANAGEMENT_RULES),
    ("reader", READER),
    ("services-only", r#"service_prefix "" { policy = "read" }"#),
    ("web-writer", r#"service "web" { policy = "write" }"#),
    ("agent-reader", r#"agent "agent1" { policy = "read" }"#),
    ("agent-writer", r#"agent "agent1" { policy = "write" } node "agent1" { policy = "write" }"#),
    ("operator-reader", r#"operator = "read""#),
    ("keyring-reader", r#"keyring = "read""#),
    ("lister", r#"key_prefix "app/" { policy = "list" }"#),
    ("sessions", r#"session "agent1" { policy = "write" }"#),
    (
        "querier",
        r#"query_prefix "q-" { policy = "write" }
           service_prefix "" { policy = "read" }
           node_prefix "" { policy = "read" }"#,
    ),
];

/// A resolver over fixed secrets (see the module doc).
struct Fixed {
    tokens: BTreeMap<&'static str, Arc<Authorizer>>,
    anonymous: Arc<Authorizer>,
}

impl Fixed {
    fn new() -> Self {
        let compile = |rules: &str| {
            let policy = parse_rules(rules).expect("rules parse");
            Arc::new(Authorizer::new([&policy], DefaultPolicy::Deny))
        };
        let tokens = TOKENS.iter().map(|(secret, rules)| (*secret, compile(rules))).collect();
        Self { tokens, anonymous: Arc::new(Authorizer::new([], DefaultPolicy::Deny)) }
    }
}

impl Resolve for Fixed {
    fn enabled(&self) -> bool {
        true
    }

    fn resolve(&self, secret: Option<&str>) -> Result<Arc<Authorizer>, ResolveError> {
        match secret.filter(|s| !s.is_empty()) {
            None | Some("anonymous") => Ok(self.anonymous.clone()),
            Some(s) if ROOT_NAMES.contains(&s) => Err(ResolveError::RootName),
            Some(s) => self.tokens.get(s).cloned().ok_or(ResolveError::NotFound),
        }
    }
}

/// The API over the test catalog with ACLs on (default deny), and KV keys written by `mgmt`.
async fn acl_state() -> (ApiState, tempfile::TempDir) {
    let (mut st, dir) = state_with(commands()).await;
    st.acl = Arc::new(Fixed::new());
    for key in ["app/a", "app/secret", "app/rw/x", "other/b"] {
        let (status, _, body) = send(&st, Method::PUT, &format!("/v1/kv/{key}"), Some("mgmt"), "v").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "true"), "PUT {key}");
    }
    (st, dir)
}

/// One request with `token` in `X-Consul-Token`.
async fn send(
    st: &ApiState,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: &str,
) -> (StatusCode, HeaderMap, String) {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        b = b.header("X-Consul-Token", t);
    }
    request(st, b.body(Body::from(body.to_owned())).expect("request")).await
}

async fn request(st: &ApiState, req: Request<Body>) -> (StatusCode, HeaderMap, String) {
    let resp = router(st.clone()).oneshot(req).await.expect("infallible");
    let (status, headers) = (resp.status(), resp.headers().clone());
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.expect("body");
    (status, headers, String::from_utf8_lossy(&bytes).into_owned())
}

/// Asserts status and exact body.
async fn expect(
    st: &ApiState,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: &str,
    want: (u16, &str),
) {
    let (status, _, got) = send(st, method.clone(), uri, token, body).await;
    assert_eq!((status.as_u16(), got.as_str()), want, "{method} {uri} as {token:?}");
}

/// A 200 JSON read.
async fn read(st: &ApiState, uri: &str, token: Option<&str>) -> Value {
    let (status, _, body) = send(st, Method::GET, uri, token, "").await;
    assert_eq!(status, StatusCode::OK, "GET {uri} as {token:?}: {body}");
    serde_json::from_str(&body).expect("json")
}

fn keys_of(v: &Value) -> Vec<String> {
    v.as_array().expect("array").iter().map(|e| e["Key"].as_str().expect("key").to_owned()).collect()
}

const DENIED: (u16, &str) = (403, "Permission denied");

#[tokio::test]
async fn token_errors_and_endpoints_that_need_no_acl() {
    let (st, _dir) = acl_state().await;
    for uri in ["/v1/kv/app/a", "/v1/catalog/nodes", "/v1/agent/self", "/v1/session/list"] {
        expect(&st, Method::GET, uri, Some("no-such-secret"), "", (403, "ACL not found")).await;
        for root in ROOT_NAMES {
            expect(&st, Method::GET, uri, Some(root), "", (500, "Cannot resolve root ACL")).await;
        }
    }
    expect(&st, Method::PUT, "/v1/kv/app/rw/z", Some("no-such-secret"), "v", (403, "ACL not found")).await;
    // Status and datacenters never resolve the token.
    for uri in ["/v1/status/leader", "/v1/status/peers", "/v1/catalog/datacenters"] {
        for token in [Some("no-such-secret"), Some("deny"), None] {
            let (status, _, body) = send(&st, Method::GET, uri, token, "").await;
            assert_eq!(status, StatusCode::OK, "GET {uri} as {token:?}: {body}");
        }
    }
}

#[tokio::test]
async fn token_precedence_reaches_the_handlers() {
    let (st, _dir) = acl_state().await;
    let get = |uri: &str, headers: &[(&str, &str)]| {
        let mut b = Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        request(&st, b.body(Body::empty()).expect("request"))
    };
    // ?token= beats the header, which beats Bearer.
    let (status, ..) = get("/v1/kv/app/a?token=reader", &[("X-Consul-Token", "nope")]).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = get("/v1/kv/app/a?token=nope", &[("X-Consul-Token", "reader")]).await;
    assert_eq!((status.as_u16(), body.as_str()), (403, "ACL not found"));
    let (status, ..) =
        get("/v1/kv/app/a", &[("X-Consul-Token", "reader"), ("Authorization", "Bearer nope")]).await;
    assert_eq!(status, StatusCode::OK);
    let (status, ..) = get("/v1/kv/app/a", &[("Authorization", "bearer reader")]).await;
    assert_eq!(status, StatusCode::OK);
    // An empty ?token= and a non-Bearer scheme are no token: anonymous, denied.
    let (status, _, body) = get("/v1/kv/app/a?token=", &[("Authorization", "Basic cmVhZGVy")]).await;
    assert_eq!((status.as_u16(), body.as_str()), DENIED);
}

#[tokio::test]
async fn kv_worked_example() {
    let (st, _dir) = acl_state().await;
    let r = Some("reader");
    assert_eq!(keys_of(&read(&st, "/v1/kv/app/a", r).await), ["app/a"]);
    for key in ["app/secret", "other/b", "other/missing"] {
        expect(&st, Method::GET, &format!("/v1/kv/{key}"), r, "", DENIED).await;
    }
    expect(&st, Method::GET, "/v1/kv/app/missing", r, "", (404, "")).await;
    assert_eq!(keys_of(&read(&st, "/v1/kv/?recurse", r).await), ["app/a", "app/rw/x"]);
    assert_eq!(read(&st, "/v1/kv/?keys", r).await, json!(["app/a", "app/rw/x"]));
    assert_eq!(read(&st, "/v1/kv/app/?keys&separator=/", r).await, json!(["app/a", "app/rw/"]));
    let (status, headers, _) = send(&st, Method::GET, "/v1/kv/other/?recurse", r, "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(headers.contains_key("X-Consul-Index"));
    expect(&st, Method::GET, "/v1/kv/other/?keys", r, "", (404, "")).await;
    expect(&st, Method::PUT, "/v1/kv/app/a", r, "x", DENIED).await;
    expect(&st, Method::PUT, "/v1/kv/app/a?cas=1", r, "x", DENIED).await;
    expect(&st, Method::PUT, "/v1/kv/app/rw/y", r, "x", (200, "true")).await;
    expect(&st, Method::DELETE, "/v1/kv/app/?recurse", r, "", DENIED).await;
    expect(&st, Method::DELETE, "/v1/kv/app/a", r, "", DENIED).await;
    expect(&st, Method::DELETE, "/v1/kv/app/rw/?recurse", r, "", (200, "true")).await;
    // No token: anonymous, which has no rule here.
    expect(&st, Method::GET, "/v1/kv/app/a", None, "", DENIED).await;
    expect(&st, Method::GET, "/v1/kv/?recurse", None, "", (404, "")).await;
}

#[tokio::test]
async fn kv_list_policy_when_enabled() {
    let (mut st, _dir) = acl_state().await;
    // Off (the default): no list rule needed, only per-entry filtering.
    assert_eq!(
        keys_of(&read(&st, "/v1/kv/app/?recurse", Some("lister")).await),
        ["app/a", "app/rw/x", "app/secret"]
    );
    st.enable_key_list_policy = true;
    expect(&st, Method::GET, "/v1/kv/app/?recurse", Some("reader"), "", DENIED).await;
    expect(&st, Method::GET, "/v1/kv/app/?keys", Some("reader"), "", DENIED).await;
    assert_eq!(
        read(&st, "/v1/kv/app/?keys", Some("lister")).await,
        json!(["app/a", "app/rw/x", "app/secret"])
    );
    // A single key still needs only read (list implies read).
    assert_eq!(keys_of(&read(&st, "/v1/kv/app/a", Some("lister")).await), ["app/a"]);
}

#[tokio::test]
async fn catalog_and_health_reads_filter() {
    let (st, _dir) = acl_state().await;
    let r = Some("reader");
    let services = read(&st, "/v1/catalog/services", r).await;
    assert_eq!(
        services.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["web".to_owned()])
    );
    assert_eq!(read(&st, "/v1/catalog/service/db", r).await, json!([]));
    assert_eq!(read(&st, "/v1/catalog/service/web", r).await.as_array().map(Vec::len), Some(2));
    assert_eq!(read(&st, "/v1/health/service/db", r).await, json!([]));
    assert_eq!(read(&st, "/v1/health/service/web", r).await.as_array().map(Vec::len), Some(2));
    // Rows need node:read as well as service:read.
    let s = Some("services-only");
    assert_eq!(read(&st, "/v1/catalog/service/web", s).await, json!([]));
    assert_eq!(read(&st, "/v1/health/service/web", s).await, json!([]));
    assert_eq!(read(&st, "/v1/health/checks/web", s).await, json!([]));
    assert_eq!(read(&st, "/v1/health/state/any", s).await, json!([]));
    assert_eq!(read(&st, "/v1/catalog/nodes", s).await, json!([]));
    assert_eq!(read(&st, "/v1/catalog/node/node2", s).await, Value::Null);
    assert_eq!(read(&st, "/v1/catalog/services", s).await.as_object().map(|o| o.len()), Some(2));
    // node2 carries web and db: the reader sees web only.
    let node2 = read(&st, "/v1/catalog/node/node2", r).await;
    assert_eq!(
        node2["Services"].as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["web2".to_owned()])
    );
    let states = read(&st, "/v1/health/state/any", r).await;
    assert!(
        states.as_array().expect("array").iter().all(|c| c["ServiceName"] == "web" || c["ServiceName"] == "")
    );
    assert_eq!(read(&st, "/v1/health/checks/web", r).await.as_array().map(Vec::len), Some(2));
    assert_eq!(read(&st, "/v1/catalog/nodes", r).await.as_array().map(Vec::len), Some(2));
    // Anonymous sees nothing, and still gets 200.
    assert_eq!(read(&st, "/v1/catalog/services", None).await, json!({}));
}

#[tokio::test]
async fn a_filtered_blocking_read_still_blocks() {
    let (st, _dir) = acl_state().await;
    let (_, headers, _) = send(&st, Method::GET, "/v1/catalog/services", Some("reader"), "").await;
    let index = headers["X-Consul-Index"].to_str().expect("index").to_owned();
    let start = Instant::now();
    let uri = format!("/v1/catalog/services?index={index}&wait=200ms");
    let (status, headers, body) = send(&st, Method::GET, &uri, Some("services-only"), "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(start.elapsed() >= Duration::from_millis(190), "returned after {:?}", start.elapsed());
    assert_eq!(headers["X-Consul-Index"].to_str().expect("index"), index);
    assert_eq!(serde_json::from_str::<Value>(&body).expect("json").as_object().map(|o| o.len()), Some(2));
}

#[tokio::test]
async fn catalog_writes() {
    let (st, _dir) = acl_state().await;
    let reg = r#"{"Node":"node3","Address":"10.0.0.3","Service":{"Service":"web","Port":80}}"#;
    expect(&st, Method::PUT, "/v1/catalog/register", Some("reader"), reg, DENIED).await;
    // A new node needs node:write even with service:write.
    expect(&st, Method::PUT, "/v1/catalog/register", Some("web-writer"), reg, DENIED).await;
    expect(&st, Method::PUT, "/v1/catalog/register", Some("mgmt"), reg, (200, "true")).await;
    // The node unchanged: service:write is enough.
    let again = r#"{"Node":"node3","Address":"10.0.0.3","Service":{"ID":"web3","Service":"web","Port":81}}"#;
    expect(&st, Method::PUT, "/v1/catalog/register", Some("web-writer"), again, (200, "true")).await;
    let dereg_svc = r#"{"Node":"node3","ServiceID":"web3"}"#;
    let dereg_node = r#"{"Node":"node3"}"#;
    expect(&st, Method::PUT, "/v1/catalog/deregister", Some("web-writer"), dereg_node, DENIED).await;
    expect(&st, Method::PUT, "/v1/catalog/deregister", Some("web-writer"), dereg_svc, (200, "true")).await;
    expect(&st, Method::PUT, "/v1/catalog/deregister", Some("mgmt"), dereg_node, (200, "true")).await;
    // Without node:write, an unknown service or check is Consul's 500; with it, a no-op.
    let unknown_svc = r#"{"Node":"node2","ServiceID":"nope"}"#;
    let unknown_check = r#"{"Node":"node2","CheckID":"nope"}"#;
    expect(
        &st,
        Method::PUT,
        "/v1/catalog/deregister",
        Some("web-writer"),
        unknown_svc,
        (500, "Unknown service 'nope'"),
    )
    .await;
    expect(
        &st,
        Method::PUT,
        "/v1/catalog/deregister",
        Some("web-writer"),
        unknown_check,
        (500, "Unknown check 'nope'"),
    )
    .await;
    expect(&st, Method::PUT, "/v1/catalog/deregister", Some("mgmt"), unknown_svc, (200, "true")).await;
}

#[tokio::test]
async fn agent_endpoints() {
    let (st, _dir) = acl_state().await;
    let r = Some("reader");
    expect(&st, Method::GET, "/v1/agent/self", r, "", DENIED).await;
    read(&st, "/v1/agent/self", Some("agent-reader")).await;
    expect(&st, Method::GET, "/v1/agent/metrics", r, "", DENIED).await;
    expect(&st, Method::PUT, "/v1/agent/reload", Some("agent-reader"), "", DENIED).await;
    expect(&st, Method::PUT, "/v1/agent/reload", Some("agent-writer"), "", (200, "")).await;
    for uri in ["/v1/agent/leave", "/v1/agent/join/127.0.0.1", "/v1/agent/force-leave/node2"] {
        expect(&st, Method::PUT, uri, Some("agent-reader"), "", DENIED).await;
    }
    let reg = r#"{"Name":"web","ID":"web9","Port":8080}"#;
    let missing_web = (403, "Permission denied: Missing service:write on web");
    expect(&st, Method::PUT, "/v1/agent/service/register", r, reg, missing_web).await;
    expect(&st, Method::PUT, "/v1/agent/service/register", Some("web-writer"), reg, (200, "")).await;
    assert!(read(&st, "/v1/agent/services", r).await.get("web9").is_some());
    assert_eq!(read(&st, "/v1/agent/services", Some("agent-reader")).await, json!({}));
    expect(&st, Method::GET, "/v1/agent/service/web9", Some("agent-reader"), "", DENIED).await;
    read(&st, "/v1/agent/service/web9", r).await;
    let (status, ..) =
        send(&st, Method::GET, "/v1/agent/health/service/name/web", Some("agent-reader"), "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let check = r#"{"Name":"web-ttl","ServiceID":"web9","TTL":"30s"}"#;
    expect(&st, Method::PUT, "/v1/agent/check/register", r, check, missing_web).await;
    expect(&st, Method::PUT, "/v1/agent/check/register", Some("web-writer"), check, (200, "")).await;
    expect(&st, Method::PUT, "/v1/agent/check/pass/web-ttl", r, "", missing_web).await;
    expect(&st, Method::PUT, "/v1/agent/check/pass/web-ttl", Some("web-writer"), "", (200, "")).await;
    let unknown = (500, r#"Unknown check "nope""#);
    expect(&st, Method::PUT, "/v1/agent/check/pass/nope", Some("web-writer"), "", unknown).await;
    assert!(read(&st, "/v1/agent/checks", r).await.get("web-ttl").is_some());
    assert_eq!(read(&st, "/v1/agent/checks", Some("agent-reader")).await, json!({}));
    let node_check = r#"{"Name":"disk","TTL":"30s"}"#;
    let missing_node = (403, "Permission denied: Missing node:write on agent1");
    expect(&st, Method::PUT, "/v1/agent/check/register", Some("web-writer"), node_check, missing_node).await;
    // Node maintenance answers the plain text [live on 1.8.7].
    expect(&st, Method::PUT, "/v1/agent/maintenance?enable=true", r, "", DENIED).await;
    expect(&st, Method::PUT, "/v1/agent/maintenance?enable=true", Some("agent-writer"), "", (200, "")).await;
    expect(&st, Method::PUT, "/v1/agent/service/maintenance/web9?enable=true", r, "", missing_web).await;
    expect(&st, Method::PUT, "/v1/agent/service/deregister/web9", r, "", missing_web).await;
    expect(&st, Method::PUT, "/v1/agent/service/deregister/web9", Some("web-writer"), "", (200, "")).await;
}

#[tokio::test]
async fn sessions() {
    let (st, _dir) = acl_state().await;
    expect(&st, Method::PUT, "/v1/session/create", Some("reader"), "", DENIED).await;
    let (status, _, body) = send(&st, Method::PUT, "/v1/session/create", Some("sessions"), "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = serde_json::from_str::<Value>(&body).expect("json")["ID"].as_str().expect("id").to_owned();
    assert_eq!(read(&st, "/v1/session/list", Some("reader")).await, json!([]));
    assert_eq!(read(&st, &format!("/v1/session/info/{id}"), Some("reader")).await, json!([]));
    assert_eq!(
        read(&st, "/v1/session/node/agent1", Some("sessions")).await.as_array().map(Vec::len),
        Some(1)
    );
    expect(&st, Method::PUT, &format!("/v1/session/renew/{id}"), Some("reader"), "", DENIED).await;
    expect(&st, Method::PUT, &format!("/v1/session/destroy/{id}"), Some("reader"), "", DENIED).await;
    expect(&st, Method::PUT, &format!("/v1/session/destroy/{id}"), Some("sessions"), "", (200, "true")).await;
}

#[tokio::test]
async fn transactions_check_op_by_op() {
    let (st, _dir) = acl_state().await;
    let r = Some("reader");
    let set = r#"[{"KV":{"Verb":"get","Key":"app/a"}},{"KV":{"Verb":"set","Key":"other/c","Value":"eA=="}}]"#;
    let refused = r#"{"Results":null,"Errors":[{"OpIndex":1,"What":"Permission denied"}]}"#;
    expect(&st, Method::PUT, "/v1/txn", r, set, (409, refused)).await;
    expect(&st, Method::GET, "/v1/kv/other/c", Some("mgmt"), "", (404, "")).await;
    // Read-only: unreadable results are dropped silently.
    let (status, _, body) =
        send(&st, Method::PUT, "/v1/txn", r, r#"[{"KV":{"Verb":"get","Key":"other/b"}}]"#).await;
    assert_eq!(
        (status, serde_json::from_str::<Value>(&body).expect("json")),
        (
            StatusCode::OK,
            // A read-only reply carries Consul's QueryMeta (live on 1.8.7).
            json!({"Results":[],"Errors":null,"Index":0,"LastContact":0,"KnownLeader":true,"ConsistencyLevel":""})
        )
    );
    let tree = r#"[{"KV":{"Verb":"get-tree","Key":"app/"}}]"#;
    let (_, _, body) = send(&st, Method::PUT, "/v1/txn", r, tree).await;
    let got: Vec<Value> = serde_json::from_str::<Value>(&body).expect("json")["Results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|e| e["KV"]["Key"].clone())
        .collect();
    assert_eq!(got, [json!("app/a"), json!("app/rw/x")]);
    // check-not-exists and get-or-empty need write, even in a read-only transaction [live].
    let refused = r#"{"Results":null,"Errors":[{"OpIndex":0,"What":"Permission denied"}]}"#;
    for verb in ["check-not-exists", "get-or-empty"] {
        let probe = format!(r#"[{{"KV":{{"Verb":"{verb}","Key":"app/a"}}}}]"#);
        expect(&st, Method::PUT, "/v1/txn", r, &probe, (409, refused)).await;
    }
    let write = r#"[{"KV":{"Verb":"set","Key":"app/rw/t","Value":"eA=="}}]"#;
    let (status, ..) = send(&st, Method::PUT, "/v1/txn", r, write).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn snapshot_operator_and_keyring() {
    let (st, _dir) = acl_state().await;
    expect(&st, Method::GET, "/v1/snapshot", Some("reader"), "", DENIED).await;
    expect(&st, Method::PUT, "/v1/snapshot", Some("operator-reader"), "x", DENIED).await;
    let (status, ..) = send(&st, Method::GET, "/v1/snapshot", Some("mgmt"), "").await;
    assert_eq!(status, StatusCode::OK);
    expect(&st, Method::GET, "/v1/operator/raft/configuration", Some("reader"), "", DENIED).await;
    read(&st, "/v1/operator/raft/configuration", Some("operator-reader")).await;
    // Consul's quirk: keyring refusals are 500s with their own texts.
    let key = r#"{"Key":"pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s="}"#;
    expect(
        &st,
        Method::GET,
        "/v1/operator/keyring",
        Some("reader"),
        "",
        (500, "Reading keyring denied by ACLs"),
    )
    .await;
    for method in [Method::POST, Method::PUT, Method::DELETE] {
        let want = (500, "Modifying keyring denied due to ACLs");
        expect(&st, method, "/v1/operator/keyring", Some("keyring-reader"), key, want).await;
    }
}

#[tokio::test]
async fn prepared_queries() {
    let (st, _dir) = acl_state().await;
    let named = r#"{"Name":"q-web","Token":"captured","Service":{"Service":"web"}}"#;
    let nameless = r#"{"Service":{"Service":"db"}}"#;
    expect(&st, Method::POST, "/v1/query", Some("reader"), named, DENIED).await;
    let create = |token, body| send(&st, Method::POST, "/v1/query", Some(token), body);
    let id_of = |body: &str| {
        serde_json::from_str::<Value>(body).expect("json")["ID"].as_str().expect("id").to_owned()
    };
    let (status, _, body) = create("querier", named).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let named_id = id_of(&body);
    let (status, _, body) = create("reader", nameless).await;
    assert_eq!(status, StatusCode::OK, "a nameless query needs no rule: {body}");
    let nameless_id = id_of(&body);
    // Listing: query:read by name, nameless ones for management only, tokens hidden.
    let list = read(&st, "/v1/query", Some("querier")).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!((&list[0]["Name"], &list[0]["Token"]), (&json!("q-web"), &json!("<hidden>")));
    assert_eq!(read(&st, "/v1/query", Some("mgmt")).await.as_array().map(Vec::len), Some(2));
    assert_eq!(read(&st, &format!("/v1/query/{named_id}"), Some("mgmt")).await[0]["Token"], "captured");
    assert_eq!(read(&st, "/v1/query", Some("reader")).await, json!([]));
    expect(&st, Method::GET, &format!("/v1/query/{nameless_id}"), Some("querier"), "", DENIED).await;
    expect(&st, Method::GET, &format!("/v1/query/{named_id}"), Some("reader"), "", DENIED).await;
    expect(&st, Method::DELETE, &format!("/v1/query/{named_id}"), Some("reader"), "", DENIED).await;
    // Execution filters by the caller's token when the query captured none.
    let exec = read(&st, &format!("/v1/query/{nameless_id}/execute"), Some("reader")).await;
    assert_eq!(exec["Nodes"], json!([]));
    let exec = read(&st, &format!("/v1/query/{nameless_id}/execute"), Some("querier")).await;
    assert_eq!(exec["Nodes"].as_array().map(Vec::len), Some(1));
    // A captured token that does not resolve: Consul's 403.
    expect(
        &st,
        Method::GET,
        &format!("/v1/query/{named_id}/execute"),
        Some("mgmt"),
        "",
        (403, "ACL not found"),
    )
    .await;
}

#[tokio::test]
async fn script_checks_need_node_write_besides_the_switch() {
    let (mut st, _dir) = acl_state().await;
    let script = r#"{"Name":"web","ID":"web7","Check":{"Args":["true"],"Interval":"1h"}}"#;
    // Switch off: Consul's refusal, whatever the token.
    let off = (500, crate::agent::SCRIPTS_DISABLED_REMOTE);
    expect(&st, Method::PUT, "/v1/agent/service/register", Some("mgmt"), script, off).await;
    let mut config = (*st.config).clone();
    config.checks.enable_script_checks = true;
    st.config = Arc::new(config);
    // Switch on: service:write is not enough, the agent's node:write is needed too.
    let missing_node = (403, "Permission denied: Missing node:write on agent1");
    expect(&st, Method::PUT, "/v1/agent/service/register", Some("web-writer"), script, missing_node).await;
    let node_check = r#"{"Name":"probe","Args":["true"],"Interval":"1h"}"#;
    expect(&st, Method::PUT, "/v1/agent/check/register", Some("web-writer"), node_check, missing_node).await;
    expect(&st, Method::PUT, "/v1/agent/service/register", Some("mgmt"), script, (200, "")).await;
}

#[tokio::test]
async fn empty_ids_and_names_are_consuls_400_and_replication_reads_without_a_token() {
    let (st, _dir) = acl_state().await;
    for (path, what) in [
        ("/v1/acl/token/", "token ID"),
        ("/v1/acl/policy/", "policy ID"),
        ("/v1/acl/role/", "role ID"),
        ("/v1/acl/policy/name/", "policy Name"),
        ("/v1/acl/role/name/", "role Name"),
    ] {
        let want = (400, format!("Bad request: Missing {what}"));
        for token in [None, Some("mgmt")] {
            for method in [Method::GET, Method::DELETE] {
                let (status, _, body) = send(&st, method.clone(), path, token, "").await;
                assert_eq!((status.as_u16(), body), want.clone(), "{method} {path} as {token:?}");
            }
        }
    }
    // PUT with the trailing slash creates, as the route without it does.
    expect(&st, Method::PUT, "/v1/acl/policy/", None, r#"{"Name":"p"}"#, DENIED).await;
    let want = serde_json::json!({"Enabled": false, "Running": false, "SourceDatacenter": "",
        "ReplicationType": "", "ReplicatedIndex": 0, "ReplicatedRoleIndex": 0, "ReplicatedTokenIndex": 0,
        "LastSuccess": "0001-01-01T00:00:00Z", "LastError": "0001-01-01T00:00:00Z"});
    for token in [None, Some("no-such-secret")] {
        assert_eq!(read(&st, "/v1/acl/replication", token).await, want);
    }
}
