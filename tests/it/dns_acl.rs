//! DNS under ACLs on a real agent (spec §1.9): with `default_policy = "deny"` DNS answers
//! under the agent's default token (anonymous when unset): a service or node it may not read
//! is NXDOMAIN with the SOA; `PUT /v1/agent/token/default` with a token that reads them makes
//! the next query answer; deleting that token makes DNS SERVFAIL; `default_policy = "allow"`
//! answers as without ACLs.

use std::path::Path;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use serde_json::Value;

use crate::support::{Agent, Transport, block, eventually, http_client};

const WEB: &str = r#"{"Name":"web","ID":"web-1","Port":8080}"#;

fn server(dir: &Path, acl: &str) -> Agent {
    let config = dir.join("acl.json");
    std::fs::write(&config, acl).unwrap();
    Agent::server(&dir.join("data"), &["--config-file", config.to_str().unwrap()])
}

/// A request with `X-Consul-Token`; returns (status, body).
fn send(agent: &Agent, method: reqwest::Method, path: &str, token: &str, body: &str) -> (u16, String) {
    block(async {
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

fn put(agent: &Agent, path: &str, token: &str, body: &str) -> Value {
    let (status, out) = send(agent, reqwest::Method::PUT, path, token, body);
    assert_eq!(status, 200, "PUT {path}: {out}");
    serde_json::from_str(&out).unwrap_or(Value::Null)
}

fn rcode(agent: &Agent, name: &str, transport: Transport) -> ResponseCode {
    agent.query(name, RecordType::A, transport).metadata.response_code
}

fn has_soa(msg: &Message) -> bool {
    matches!(msg.authorities.first().map(|r| &r.data), Some(RData::SOA(_)))
}

#[test]
fn dns_follows_the_default_token_and_fails_when_it_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let agent = server(dir.path(), r#"{"acl":{"enabled":true,"default_policy":"deny"}}"#);
    let (status, body) = agent.put("/v1/acl/bootstrap", "");
    assert_eq!(status, 200, "{body}");
    let boot: Value = serde_json::from_str(&body).unwrap();
    let mgmt = boot["SecretID"].as_str().unwrap().to_owned();
    put(&agent, "/v1/agent/service/register", &mgmt, WEB);

    // Anonymous reads nothing: NXDOMAIN with the SOA, as for an unknown name.
    eventually("anonymous DNS answers NXDOMAIN", || {
        rcode(&agent, "web.service.consul.", Transport::Udp) == ResponseCode::NXDomain
    });
    for (name, transport) in [
        ("web.service.consul.", Transport::Udp),
        ("web.service.consul.", Transport::Tcp),
        ("node1.node.consul.", Transport::Udp),
    ] {
        let msg = agent.query(name, RecordType::A, transport);
        assert_eq!(msg.metadata.response_code, ResponseCode::NXDomain, "{name} {transport:?}");
        assert!(has_soa(&msg), "{name}: {msg:?}");
        assert!(msg.answers.is_empty(), "{name}");
    }

    let rules = r#"service_prefix \"\" { policy = \"read\" }\nnode_prefix \"\" { policy = \"read\" }"#;
    put(&agent, "/v1/acl/policy", &mgmt, &format!(r#"{{"Name":"dns-read","Rules":"{rules}"}}"#));
    let token = put(&agent, "/v1/acl/token", &mgmt, r#"{"Policies":[{"Name":"dns-read"}]}"#);
    let (accessor, secret) = (token["AccessorID"].as_str().unwrap(), token["SecretID"].as_str().unwrap());
    put(&agent, "/v1/agent/token/default", &mgmt, &format!(r#"{{"Token":"{secret}"}}"#));

    // At once: the very next queries answer, over UDP (its answer cache held the NXDOMAIN)
    // and TCP.
    for transport in [Transport::Udp, Transport::Tcp] {
        let msg = agent.query("web.service.consul.", RecordType::A, transport);
        assert_eq!(msg.metadata.response_code, ResponseCode::NoError, "{transport:?}: {msg:?}");
        assert_eq!(msg.answers.len(), 1, "{transport:?}");
        let srv = agent.query("web.service.consul.", RecordType::SRV, transport);
        assert_eq!(srv.answers.len(), 1, "{transport:?}: {srv:?}");
        assert_eq!(rcode(&agent, "node1.node.consul.", transport), ResponseCode::NoError);
    }
    // What the token reads is all it reads: an unknown name is still NXDOMAIN.
    assert_eq!(rcode(&agent, "nope.service.consul.", Transport::Udp), ResponseCode::NXDomain);

    // The default token deleted: the lookups fail (Consul: "ACL not found" -> SERVFAIL).
    let (status, out) =
        send(&agent, reqwest::Method::DELETE, &format!("/v1/acl/token/{accessor}"), &mgmt, "");
    assert_eq!(status, 200, "{out}");
    eventually("DNS answers SERVFAIL", || {
        rcode(&agent, "web.service.consul.", Transport::Udp) == ResponseCode::ServFail
    });
    for (name, transport) in [
        ("web.service.consul.", Transport::Udp),
        ("web.service.consul.", Transport::Tcp),
        ("node1.node.consul.", Transport::Udp),
    ] {
        let msg = agent.query(name, RecordType::A, transport);
        assert_eq!(msg.metadata.response_code, ResponseCode::ServFail, "{name} {transport:?}");
        assert!(msg.authorities.is_empty() && msg.answers.is_empty(), "{name}: {msg:?}");
    }

    // Cleared: anonymous again, NXDOMAIN.
    put(&agent, "/v1/agent/token/default", &mgmt, r#"{"Token":""}"#);
    assert_eq!(rcode(&agent, "web.service.consul.", Transport::Udp), ResponseCode::NXDomain);
}

#[test]
fn default_policy_allow_answers_as_without_acls() {
    let dir = tempfile::tempdir().unwrap();
    let agent = server(dir.path(), r#"{"acl":{"enabled":true,"default_policy":"allow"}}"#);
    agent.put_ok("/v1/agent/service/register", WEB);
    eventually("the service answers", || {
        rcode(&agent, "web.service.consul.", Transport::Udp) == ResponseCode::NoError
    });
    for transport in [Transport::Udp, Transport::Tcp] {
        let msg = agent.query("web.service.consul.", RecordType::SRV, transport);
        assert_eq!(msg.answers.len(), 1, "{transport:?}: {msg:?}");
        assert_eq!(rcode(&agent, "node1.node.consul.", transport), ResponseCode::NoError);
        assert_eq!(rcode(&agent, "nope.service.consul.", transport), ResponseCode::NXDomain);
    }
}
