//! Forwarded writes pass the same validation as HTTP writes (issue 19, item 4): forged
//! `Forward` frames written on a raw socket to a real server's RPC port (a `..` key, a 3 MiB
//! value, a registration with a `0.0.0.0` service address, a transaction over 128 operations)
//! are refused and leave nothing behind, while a well-formed one is accepted (so the frames
//! are right and the refusals are the validation's); and a client agent answers an invalid
//! write with the status and text the server gives for it directly.
//!
//! The server runs without `encrypt`, so the RPC port takes frames without a handshake.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::cluster::{Cluster, local_nodes, wait_until};
use crate::support::Agent;

/// Sends `Request::Forward(cmd)` as one frame (4-byte big-endian length, JSON) on a fresh
/// connection to the RPC port and returns the decoded response frame.
fn forward(rpc_port: u16, cmd: &Value) -> Value {
    let mut s = TcpStream::connect(("127.0.0.1", rpc_port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let body = serde_json::to_vec(&json!({ "Forward": cmd })).unwrap();
    s.write_all(&u32::try_from(body.len()).unwrap().to_be_bytes()).unwrap();
    s.write_all(&body).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut buf = vec![0; usize::try_from(u32::from_be_bytes(len)).unwrap()];
    s.read_exact(&mut buf).unwrap();
    serde_json::from_slice(&buf).unwrap()
}

/// `Command::Kv` setting `key` to `value`, as the frame's JSON.
fn kv_set(key: &str, value: &[u8]) -> Value {
    json!({ "Kv": { "op": { "Set": kv_write(key, value) }, "now_ms": 0 } })
}

fn kv_write(key: &str, value: &[u8]) -> Value {
    json!({ "key": key, "value": STANDARD.encode(value), "flags": 0, "index": 0, "session": "" })
}

/// `Command::Register` of node `evil` with service `web` at `service_addr`.
fn register(service_addr: &str) -> Value {
    let node = json!({
        "id": "", "name": "evil", "address": "10.6.6.6", "datacenter": "dc1",
        "tagged_addresses": {}, "meta": {}, "create_index": 0, "modify_index": 0,
    });
    let service = json!({
        "node": "evil", "id": "web", "name": "web", "tags": [], "address": service_addr, "port": 80,
        "meta": {}, "tagged_addresses": {}, "weights": { "passing": 1, "warning": 1 },
        "enable_tag_override": false, "create_index": 0, "modify_index": 0,
    });
    json!({ "Register": { "node": node, "skip_node_update": false, "service": service, "checks": [] } })
}

/// The refusal in a `Response::Forward`, or a panic naming what came back instead.
fn refusal(resp: &Value) -> &Value {
    match resp["Forward"].get("Err") {
        Some(e) => &e["Invalid"],
        None => panic!("forged write accepted: {resp}"),
    }
}

#[test]
fn forged_forward_frames_are_refused_and_nothing_lands() {
    let c = Cluster::start(1, &[]);
    let (server, rpc) = (c.server(0), c.ports[0]);
    let nodes_before = local_nodes(server);

    let r = forward(rpc, &kv_set("a/../etc", b"x"));
    assert_eq!(refusal(&r), &json!({ "KeyName": "a/../etc" }), "{r}");
    let r = forward(rpc, &kv_set("big", &vec![b'v'; 3 << 20]));
    assert_eq!(refusal(&r), &json!({ "ValueTooLarge": 3 << 20 }), "{r}");
    let r = forward(rpc, &register("0.0.0.0"));
    assert_eq!(refusal(&r), &json!("ServiceAddress"), "{r}");
    let ops: Vec<Value> =
        (0..129).map(|i| json!({ "Kv": { "Set": kv_write(&format!("t/{i}"), b"x") } })).collect();
    let r = forward(rpc, &json!({ "Txn": { "ops": ops, "now_ms": 0 } }));
    assert_eq!(refusal(&r), &json!({ "TooManyOps": 129 }), "{r}");

    // Nothing landed: no key at all, the catalog as it was.
    assert_eq!(server.get("/v1/kv/?recurse").unwrap().0, 404);
    assert_eq!(local_nodes(server), nodes_before);
    assert_eq!(server.get("/v1/catalog/service/web").unwrap().1, json!([]));

    // The same frames, made valid, are accepted: the refusals above are the validation's.
    let r = forward(rpc, &kv_set("a/etc", b"x"));
    assert_eq!(r["Forward"]["Ok"][0], json!({ "Bool": true }), "{r}");
    let r = forward(rpc, &register("10.6.6.7"));
    assert_eq!(r["Forward"]["Ok"][0], json!("Applied"), "{r}");
    wait_until(
        Duration::from_secs(5),
        "the valid writes",
        || server.get("/v1/kv/a/etc").is_ok_and(|r| r.0 == 200) && local_nodes(server).contains("evil"),
        || c.logs(),
    );
}

/// A raw HTTP/1.1 request (no client-side path normalisation): status and body.
fn raw(agent: &Agent, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(agent.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let len = body.len();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n{body}"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

#[test]
fn a_client_agent_answers_an_invalid_write_as_the_server_does() {
    let c = Cluster::start(1, &[]);
    let server = c.server(0);
    let dir = c.dir.path().join("c0").display().to_string();
    let join = format!("127.0.0.1:{}", c.ports[0]);
    let client = Agent::spawn(&["--node", "c0", "--data-dir", &dir, "--retry-join", &join]);
    client.wait_ready();

    let bad_registration =
        r#"{"Node":"evil","Address":"10.6.6.6","Service":{"Service":"web","Address":"0.0.0.0"}}"#;
    let txn: Vec<String> =
        (0..129).map(|i| format!(r#"{{"KV":{{"Verb":"set","Key":"t/{i}","Value":"eA=="}}}}"#)).collect();
    let txn = format!("[{}]", txn.join(","));
    let cases = [
        ("PUT", "/v1/kv/a/../etc", "x".to_owned(), 400),
        ("PUT", "/v1/catalog/register", bad_registration.to_owned(), 500),
        ("PUT", "/v1/session/create", r#"{"TTL":"5s"}"#.to_owned(), 500),
        ("PUT", "/v1/txn", txn, 413),
    ];
    for (method, path, body, status) in &cases {
        let direct = raw(server, method, path, body);
        let via_client = raw(&client, method, path, body);
        assert_eq!(direct.0, *status, "{path} on the server: {direct:?}");
        assert_eq!(via_client, direct, "{path}: the client answers as the server");
    }
    assert_eq!(server.get("/v1/kv/?recurse").unwrap().0, 404);
    assert!(!local_nodes(server).contains("evil"));
}
