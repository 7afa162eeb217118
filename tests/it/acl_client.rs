//! ACLs on client agents (issue 18 item 7): a real server and real client agents, all with
//! `default_policy = "deny"`.
//!
//! A client without an agent token logs Consul's "blocked by ACLs" line and its node stays out
//! of the catalog until `PUT /v1/agent/token/agent` gives it one; a client with
//! `acl.tokens.agent` (node_prefix and service_prefix write) registers itself. A KV PUT through
//! a client with a write token is stored and with a read-only token is 403; the server enforces
//! it too: forged `ForwardAs` frames on its RPC port with the read-only token, or a plain
//! `Forward` (the anonymous token), are refused and store nothing, while the write token's
//! frame is committed. After the server is killed, the clients' replicas go stale past
//! `acl.token_ttl`: `down_policy = "deny"` refuses the write token's read, `extend-cache` keeps
//! answering it from the last snapshot.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use serde_json::{Value, json};

use crate::cluster::{Cluster, wait_until};
use crate::support::{Agent, Transport, block, http_client};

const MASTER: &str = "6a1f1f0e-0000-4000-8000-00000000a001";
const AGENT: &str = "6a1f1f0e-0000-4000-8000-00000000a002";
const KV_RW: &str = "6a1f1f0e-0000-4000-8000-00000000a003";
const KV_RO: &str = "6a1f1f0e-0000-4000-8000-00000000a004";
const DNS_READ: &str = "6a1f1f0e-0000-4000-8000-00000000a005";

/// Polls `f` until it holds, at most `secs` seconds.
fn wait(secs: u64, what: &str, f: impl FnMut() -> bool) {
    wait_until(Duration::from_secs(secs), what, f, String::new);
}

/// Writes `config` (JSON) to `dir/name` and returns its path.
fn config_file(dir: &Path, name: &str, config: &Value) -> String {
    let p = dir.join(name);
    std::fs::write(&p, config.to_string()).unwrap();
    p.display().to_string()
}

/// A request with `X-Consul-Token`: (status, body).
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

fn put(agent: &Agent, path: &str, token: &str, body: &str) -> (u16, String) {
    send(agent, reqwest::Method::PUT, path, token, body)
}

fn get(agent: &Agent, path: &str, token: &str) -> (u16, String) {
    send(agent, reqwest::Method::GET, path, token, "")
}

/// Creates a policy `name` with `rules` and a token with secret `secret` linked to it.
fn token_with(server: &Agent, name: &str, rules: &str, secret: &str) {
    let policy = json!({ "Name": name, "Rules": rules }).to_string();
    let (status, body) = put(server, "/v1/acl/policy", MASTER, &policy);
    assert_eq!(status, 200, "{body}");
    let token = json!({ "SecretID": secret, "Description": name, "Policies": [{ "Name": name }] });
    let (status, body) = put(server, "/v1/acl/token", MASTER, &token.to_string());
    assert_eq!(status, 200, "{body}");
}

/// Whether the server's catalog holds node `name` (read with the master token).
fn registered(server: &Agent, name: &str) -> bool {
    let (status, body) = get(server, "/v1/catalog/nodes", MASTER);
    assert_eq!(status, 200, "{body}");
    let nodes: Value = serde_json::from_str(&body).unwrap();
    nodes.as_array().unwrap().iter().any(|n| n["Node"] == name)
}

/// Sends one raw frame to the RPC port and returns the response frame.
fn rpc(port: u16, frame: &Value) -> Value {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let body = serde_json::to_vec(frame).unwrap();
    s.write_all(&u32::try_from(body.len()).unwrap().to_be_bytes()).unwrap();
    s.write_all(&body).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut buf = vec![0; usize::try_from(u32::from_be_bytes(len)).unwrap()];
    s.read_exact(&mut buf).unwrap();
    serde_json::from_slice(&buf).unwrap()
}

/// `Command::Kv` setting `key` (value "forged").
fn kv_set(key: &str) -> Value {
    json!({ "Kv": { "op": { "Set": {
        "key": key, "value": "Zm9yZ2Vk", "flags": 0, "index": 0, "session": "" } }, "now_ms": 0 } })
}

fn client_config(dir: &Path, name: &str, down_policy: &str, agent_token: Option<&str>) -> String {
    let mut acl =
        json!({ "enabled": true, "default_policy": "deny", "down_policy": down_policy, "token_ttl": "2s" });
    if let Some(t) = agent_token {
        acl["tokens"] = json!({ "agent": t });
    }
    config_file(dir, name, &json!({ "acl": acl }))
}

#[test]
fn client_agents_write_with_their_callers_and_agent_tokens_and_apply_down_policy() {
    let dir = tempfile::tempdir().unwrap();
    let server_cfg = config_file(
        dir.path(),
        "server.json",
        &json!({ "acl": { "enabled": true, "default_policy": "deny", "tokens": { "master": MASTER } } }),
    );
    let mut c = Cluster::start(1, &["--config-file", &server_cfg]);
    let server = c.server(0);
    wait(20, "the leader created the master token", || get(server, "/v1/acl/token/self", MASTER).0 == 200);
    token_with(
        server,
        "agent",
        r#"node_prefix "" { policy = "write" } service_prefix "" { policy = "write" }"#,
        AGENT,
    );
    token_with(server, "kv-rw", r#"key_prefix "app/" { policy = "write" }"#, KV_RW);
    token_with(server, "kv-ro", r#"key_prefix "app/" { policy = "read" }"#, KV_RO);
    token_with(
        server,
        "dns",
        r#"node_prefix "" { policy = "read" } service_prefix "" { policy = "read" }"#,
        DNS_READ,
    );

    let join = format!("127.0.0.1:{}", c.ports[0]);
    let start = |node: &str, config: &str| {
        let data = dir.path().join(node).display().to_string();
        Agent::spawn(&["--node", node, "--data-dir", &data, "--retry-join", &join, "--config-file", config])
    };
    let cdeny = start("c-deny", &client_config(dir.path(), "c-deny.json", "deny", None));
    let cext = start("c-extend", &client_config(dir.path(), "c-extend.json", "extend-cache", Some(AGENT)));
    cdeny.wait_ready();
    cext.wait_ready();

    // tokens.agent registers the client's node; without one it is blocked by ACLs.
    wait(20, "c-extend registered itself", || registered(server, "c-extend"));
    wait(20, "c-deny logged the block", || cdeny.log().contains("blocked by ACLs"));
    assert!(!registered(server, "c-deny"), "a client without an agent token is not registered");

    // KV through a client: the write token writes, the read-only one gets 403.
    assert_eq!(put(&cext, "/v1/kv/app/a", KV_RW, "v1"), (200, "true".to_owned()));
    let (status, body) = put(&cext, "/v1/kv/app/b", KV_RO, "v1");
    assert_eq!(status, 403, "{body}");
    assert!(body.starts_with("Permission denied"), "{body}");
    assert_eq!(get(server, "/v1/kv/app/b", MASTER).0, 404);

    // The server enforces the forwarded token itself.
    let rpc_port = c.ports[0];
    let denied = rpc(rpc_port, &json!({ "ForwardAs": { "command": kv_set("app/forged"), "token": KV_RO } }));
    assert_eq!(denied, json!({ "Forward": { "Err": { "Denied": "Permission denied" } } }));
    let anonymous = rpc(rpc_port, &json!({ "Forward": kv_set("app/forged") }));
    assert_eq!(anonymous, json!({ "Forward": { "Err": { "Denied": "Permission denied" } } }));
    let unknown = rpc(
        rpc_port,
        &json!({ "ForwardAs": { "command": kv_set("app/forged"), "token": "6a1f1f0e-0000-4000-8000-0000000000ff" } }),
    );
    assert_eq!(unknown, json!({ "Forward": { "Err": { "Denied": "ACL not found" } } }));
    assert_eq!(get(server, "/v1/kv/app/forged", MASTER).0, 404, "nothing stored");
    let allowed =
        rpc(rpc_port, &json!({ "ForwardAs": { "command": kv_set("app/forged2"), "token": KV_RW } }));
    assert_eq!(allowed["Forward"]["Ok"][0], json!({ "Bool": true }), "{allowed}");
    assert_eq!(get(server, "/v1/kv/app/forged2?raw", MASTER), (200, "forged".to_owned()));

    // An agent token set at run time unblocks the registration.
    let body = json!({ "Token": AGENT }).to_string();
    assert_eq!(put(&cdeny, "/v1/agent/token/agent", MASTER, &body).0, 200);
    wait(20, "c-deny registered itself", || registered(server, "c-deny"));

    // Both replicas are fresh: the write token reads app/a locally.
    for client in [&cdeny, &cext] {
        wait(10, "the replica has app/a", || {
            get(client, "/v1/kv/app/a?stale&raw", KV_RW) == (200, "v1".to_owned())
        });
    }
    // DNS on c-deny follows its default token while the replica is fresh.
    let body = json!({ "Token": DNS_READ }).to_string();
    assert_eq!(put(&cdeny, "/v1/agent/token/default", MASTER, &body).0, 200);
    let rcode =
        |a: &Agent| a.query("consul.service.consul.", RecordType::A, Transport::Udp).metadata.response_code;
    wait(10, "c-deny answers consul.service.consul", || rcode(&cdeny) == ResponseCode::NoError);
    // No server: past token_ttl, deny refuses, extend-cache keeps the last snapshot's tokens.
    c.kill9(0);
    wait(20, "c-deny applies down_policy deny", || get(&cdeny, "/v1/kv/app/a?stale&raw", KV_RW).0 == 403);
    // DNS moves to the deny-all answer too, with no publish to wake it.
    wait(5, "c-deny's DNS applies down_policy deny", || rcode(&cdeny) == ResponseCode::NXDomain);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(get(&cext, "/v1/kv/app/a?stale&raw", KV_RW), (200, "v1".to_owned()));
    assert_eq!(get(&cext, "/v1/kv/app/a?stale&raw", KV_RO), (200, "v1".to_owned()));
    assert_eq!(get(&cext, "/v1/kv/other?stale", KV_RW).0, 403);
}
