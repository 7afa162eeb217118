//! Config entries on a live agent, against answers taken from Consul 1.8.7: `PUT /v1/config`
//! with and without `?cas=`, reads, lists, deletes, Consul's normalised shapes and error
//! messages, blocking on the table's index, ACLs, and the gateway endpoints (and
//! `<svc>.ingress` DNS) an ingress and a terminating gateway entry feed.

use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use serde_json::{Value, json};

use crate::support::{Agent, Transport, block, http_client, srv_targets};

fn get(agent: &Agent, path: &str) -> Value {
    let (status, v) = agent.get(path).unwrap();
    assert_eq!(status, 200, "GET {path}: {v}");
    v
}

fn delete(agent: &Agent, path: &str) -> (u16, String) {
    block(async {
        let r = http_client().delete(format!("http://{}{}", agent.http, path)).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    })
}

#[test]
fn config_entries_are_written_read_listed_and_deleted_with_check_and_set() {
    let agent = Agent::dev(&[]);
    assert_eq!(
        agent.put_ok("/v1/config", r#"{"Kind":"service-defaults","Name":"web","protocol":"http"}"#),
        "true"
    );
    let web = get(&agent, "/v1/config/service-defaults/web");
    let index = web["ModifyIndex"].as_u64().unwrap();
    assert_eq!(
        web,
        json!({"Kind":"service-defaults","Name":"web","Protocol":"http","MeshGateway":{},"Expose":{},
               "CreateIndex":index,"ModifyIndex":index})
    );
    // Consul's field order.
    let raw = agent.get_full("/v1/config/service-defaults/web").unwrap().2;
    assert_eq!(
        raw,
        format!(
            r#"{{"Kind":"service-defaults","Name":"web","Protocol":"http","MeshGateway":{{}},"Expose":{{}},"CreateIndex":{index},"ModifyIndex":{index}}}"#
        )
    );
    // Check-and-set: 0 only creates, otherwise the stored ModifyIndex.
    let body = r#"{"Kind":"service-defaults","Name":"web","Protocol":"grpc"}"#;
    assert_eq!(agent.put_ok("/v1/config?cas=0", body), "false");
    assert_eq!(agent.put_ok(&format!("/v1/config?cas={}", index + 100), body), "false");
    assert_eq!(agent.put_ok(&format!("/v1/config?cas={index}"), body), "true");
    let web = get(&agent, "/v1/config/service-defaults/web");
    assert_eq!((web["Protocol"].clone(), web["CreateIndex"].as_u64()), (json!("grpc"), Some(index)));
    assert!(web["ModifyIndex"].as_u64().unwrap() > index);

    // proxy-defaults is always named "global".
    agent.put_ok("/v1/config", r#"{"Kind":"proxy-defaults","Name":"x","Config":{"a":1}}"#);
    let list = get(&agent, "/v1/config/proxy-defaults");
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!((list[0]["Name"].clone(), list[0]["Config"].clone()), (json!("global"), json!({"a":1})));
    agent.put_ok("/v1/config", r#"{"Kind":"service-defaults","Name":"api"}"#);
    let names: Vec<Value> = get(&agent, "/v1/config/service-defaults")
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["Name"].clone())
        .collect();
    assert_eq!(names, [json!("api"), json!("web")]);

    assert_eq!(delete(&agent, "/v1/config/service-defaults/web"), (200, "{}".into()));
    let (status, headers, body) = agent.get_full("/v1/config/service-defaults/web").unwrap();
    assert_eq!((status, body.as_str()), (404, r#"Config entry not found for "service-defaults" / "web""#));
    assert!(headers.contains_key("x-consul-index"));
    assert_eq!(delete(&agent, "/v1/config/service-defaults/nope").0, 200);
}

#[test]
fn bad_config_entries_get_consuls_messages() {
    let agent = Agent::dev(&[]);
    let cases = [
        (
            r#"{"Kind":"bogus","Name":"x"}"#,
            400,
            "Bad request: Request decoding failed: invalid config entry kind: bogus",
        ),
        (
            r#"{"Name":"x"}"#,
            400,
            "Bad request: Request decoding failed: Payload does not contain a kind/Kind key at the top level",
        ),
        (
            r#"{"Kind":5,"Name":"x"}"#,
            400,
            "Bad request: Request decoding failed: Kind value in payload is not a string",
        ),
        (
            r#"{"Kind":"service-defaults","Name":"a","Foo":1}"#,
            400,
            "Bad request: Request decoding failed: 1 error occurred:\n\t* invalid config key \"Foo\"\n\n",
        ),
        (r#"{"Kind":"service-defaults"}"#, 500, "serviceName is required"),
        (r#"{"Kind":"service-splitter","Name":"web"}"#, 500, "no splits configured"),
        (
            r#"{"Kind":"terminating-gateway","Name":"t","Services":[{"Name":""}]}"#,
            500,
            "Service name cannot be blank.",
        ),
        (
            r#"{"Kind":"ingress-gateway","Name":"i","Listeners":[{"Port":80,"Services":[]}]}"#,
            500,
            "No service declared for listener with port 80",
        ),
        (
            r#"{"Kind":"ingress-gateway","Name":"i","Listeners":[{"Port":80,"Services":[{"Name":"web"},{"Name":"db"}]}]}"#,
            500,
            "Multiple services per listener are only supported for protocol = 'http' (listener on port 80)",
        ),
        (
            r#"{"Kind":"ingress-gateway","Name":"i","Listeners":[{"Port":80,"Protocol":"http","Services":[{"Name":"web"}]}]}"#,
            500,
            "service \"web\" has protocol \"tcp\", which does not match defined listener protocol \"http\"",
        ),
    ];
    for (body, status, text) in cases {
        assert_eq!(agent.put("/v1/config", body), (status, text.to_owned()), "{body}");
    }
    assert_eq!(agent.get_full("/v1/config/bogus").unwrap().2, "invalid config entry kind: bogus");
    assert_eq!(delete(&agent, "/v1/config/bogus/x"), (400, "invalid config entry kind: bogus".into()));
    assert_eq!(
        delete(&agent, "/v1/config/service-defaults"),
        (404, "Must provide both a kind and name to delete".into())
    );
    // The listener protocol must match the service's, from its service-defaults.
    agent.put_ok("/v1/config", r#"{"Kind":"service-defaults","Name":"web","Protocol":"http"}"#);
    agent.put_ok(
        "/v1/config",
        r#"{"Kind":"ingress-gateway","Name":"i","Listeners":[{"Port":80,"Protocol":"http","Services":[{"Name":"web","Hosts":["a.example"]}]}]}"#,
    );
}

#[test]
fn a_list_blocks_until_an_entry_changes() {
    let agent = Agent::dev(&[]);
    agent.put_ok("/v1/config", r#"{"Kind":"service-defaults","Name":"a"}"#);
    let (_, headers, _) = agent.get_full("/v1/config/service-defaults").unwrap();
    let index: u64 = headers["x-consul-index"].to_str().unwrap().parse().unwrap();
    let http = agent.http;
    let waiter = std::thread::spawn(move || {
        let started = Instant::now();
        let url = format!("http://{http}/v1/config/service-defaults?index={index}&wait=20s");
        let body = block(async { http_client().get(url).send().await.unwrap().text().await.unwrap() });
        (started.elapsed(), body)
    });
    std::thread::sleep(Duration::from_millis(500));
    agent.put_ok("/v1/config", r#"{"Kind":"service-defaults","Name":"b"}"#);
    let (elapsed, body) = waiter.join().unwrap();
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    assert!(body.contains("\"b\""), "{body}");
}

#[test]
fn gateway_entries_link_services_for_the_gateway_endpoints() {
    let agent = Agent::dev(&[]);
    agent.put_ok(
        "/v1/catalog/register",
        r#"{"Node":"bar","Address":"10.0.0.2","Service":{"Service":"redis","Port":6379}}"#,
    );
    agent.put_ok(
        "/v1/config",
        r#"{"Kind":"terminating-gateway","Name":"term","Services":[
            {"Name":"api","CAFile":"ca","SNI":"s"},{"Name":"*","CertFile":"c"}]}"#,
    );
    let links = get(&agent, "/v1/catalog/gateway-services/term");
    let entry = get(&agent, "/v1/config/terminating-gateway/term");
    let i = entry["ModifyIndex"].clone();
    assert_eq!(
        links,
        json!([
            {"Gateway":{"Name":"term"},"Service":{"Name":"api"},"GatewayKind":"terminating-gateway",
             "CAFile":"ca","SNI":"s","CreateIndex":i,"ModifyIndex":i},
            {"Gateway":{"Name":"term"},"Service":{"Name":"redis"},"GatewayKind":"terminating-gateway",
             "CertFile":"c","FromWildcard":true,"CreateIndex":i,"ModifyIndex":i}
        ])
    );

    agent.put_ok("/v1/agent/service/register", r#"{"Name":"foo","Port":8000}"#);
    agent.put_ok("/v1/agent/service/register", r#"{"Name":"foo-gw","Port":8001,"Kind":"ingress-gateway"}"#);
    agent.put_ok(
        "/v1/config",
        r#"{"Kind":"ingress-gateway","Name":"foo-gw","Listeners":[{"Port":2222,"Services":[{"Name":"foo"}]}]}"#,
    );
    let ig = get(&agent, "/v1/config/ingress-gateway/foo-gw");
    assert_eq!(ig["TLS"], json!({"Enabled":false}));
    assert_eq!(
        ig["Listeners"],
        json!([{"Port":2222,"Protocol":"tcp","Services":[{"Name":"foo","Hosts":null}]}])
    );
    let links = get(&agent, "/v1/catalog/gateway-services/foo-gw");
    assert_eq!(links[0]["Port"], 2222);
    assert_eq!(links[0]["Protocol"], "tcp");
    let ingress = get(&agent, "/v1/health/ingress/foo");
    assert_eq!(ingress.as_array().unwrap().len(), 1, "{ingress}");
    assert_eq!(ingress[0]["Service"]["Service"], "foo-gw");
    assert_eq!(get(&agent, "/v1/health/ingress/redis"), json!([]));
    // DNS: `<svc>.ingress` answers the gateway instances, with the gateway's own port.
    let srv = agent.query("foo.ingress.consul.", RecordType::SRV, Transport::Udp);
    assert_eq!(srv_targets(&srv).iter().map(|(p, _)| *p).collect::<Vec<_>>(), [8001], "{srv:?}");
    let none = agent.query("redis.ingress.consul.", RecordType::A, Transport::Udp);
    assert_eq!(none.response_code, ResponseCode::NXDomain);
    assert_eq!(get(&agent, "/v1/catalog/gateway-services/none"), Value::Null);
}

/// A request with `X-Consul-Token`; (status, body).
fn as_token(agent: &Agent, method: &str, path: &str, token: &str, body: &str) -> (u16, String) {
    block(async {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = http_client()
            .request(method, format!("http://{}{}", agent.http, path))
            .header("X-Consul-Token", token)
            .body(body.to_owned())
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    })
}

fn token_with(agent: &Agent, mgmt: &str, rules: &str) -> String {
    let policy = json!({"Name": "p", "Rules": rules}).to_string();
    assert_eq!(as_token(agent, "PUT", "/v1/acl/policy", mgmt, &policy).0, 200);
    let token = json!({"Policies": [{"Name": "p"}]}).to_string();
    let (status, out) = as_token(agent, "PUT", "/v1/acl/token", mgmt, &token);
    assert_eq!(status, 200, "{out}");
    serde_json::from_str::<Value>(&out).unwrap()["SecretID"].as_str().unwrap().to_owned()
}

#[test]
fn config_entry_acls_follow_consuls_can_read_and_can_write() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("acl.json");
    std::fs::write(&config, r#"{"acl":{"enabled":true,"default_policy":"deny"}}"#).unwrap();
    let agent = Agent::server(&dir.path().join("data"), &["--config-file", config.to_str().unwrap()]);
    let (status, body) = agent.put("/v1/acl/bootstrap", "");
    assert_eq!(status, 200, "{body}");
    let mgmt = serde_json::from_str::<Value>(&body).unwrap()["SecretID"].as_str().unwrap().to_owned();
    let web = token_with(&agent, &mgmt, r#"service "web" { policy = "write" }"#);

    let sd = |name: &str| format!(r#"{{"Kind":"service-defaults","Name":"{name}"}}"#);
    assert_eq!(as_token(&agent, "PUT", "/v1/config", &web, &sd("web")), (200, "true".into()));
    assert_eq!(as_token(&agent, "PUT", "/v1/config", &web, &sd("db")).0, 403);
    let global = r#"{"Kind":"proxy-defaults","Name":"global"}"#;
    assert_eq!(as_token(&agent, "PUT", "/v1/config", &web, global).0, 403);
    assert_eq!(as_token(&agent, "PUT", "/v1/config", &mgmt, global).0, 200);
    assert_eq!(as_token(&agent, "PUT", "/v1/config", &mgmt, &sd("db")).0, 200);
    // Reads: service:read on the name; proxy-defaults to anyone; lists are filtered.
    assert_eq!(as_token(&agent, "GET", "/v1/config/service-defaults/db", &web, "").0, 403);
    assert_eq!(as_token(&agent, "GET", "/v1/config/proxy-defaults/global", &web, "").0, 200);
    let (status, list) = as_token(&agent, "GET", "/v1/config/service-defaults", &web, "");
    assert_eq!(status, 200);
    let names: Vec<Value> = serde_json::from_str::<Value>(&list)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["Name"].clone())
        .collect();
    assert_eq!(names, [json!("web")]);
    assert_eq!(as_token(&agent, "DELETE", "/v1/config/service-defaults/db", &web, "").0, 403);
    assert_eq!(as_token(&agent, "DELETE", "/v1/config/service-defaults/web", &web, "").0, 200);
}

#[test]
fn config_entries_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut agent = Agent::server(dir.path(), &[]);
    agent.put_ok("/v1/config", r#"{"Kind":"service-defaults","Name":"web","Protocol":"http"}"#);
    agent.put_ok("/v1/config", r#"{"Kind":"service-defaults","Name":"gone"}"#);
    assert_eq!(delete(&agent, "/v1/config/service-defaults/gone").0, 200);
    let before = get(&agent, "/v1/config/service-defaults");
    assert_eq!(agent.terminate(), Some(0), "clean exit on SIGTERM: {}", agent.log());

    let agent = Agent::server(dir.path(), &[]);
    assert_eq!(get(&agent, "/v1/config/service-defaults"), before);
    assert_eq!(before.as_array().unwrap().len(), 1, "{before}");
}
