//! WAN federation's gossip pool (issue 22, item 2): real cairn servers of two and three
//! datacenters on loopback join one WAN pool (`--retry-join-wan`, `cairn join -wan`), list it
//! as Consul does (`/v1/agent/members?wan=1`, `cairn members -wan`), order
//! `/v1/catalog/datacenters` from each side, rotate the encryption key on both pools, and
//! refuse a LAN join across datacenters with Consul's text. A client agent, and a server
//! started with `--serf-wan-port -1`, have no WAN pool and answer with Consul's errors.

use std::process::Command;

use serde_json::Value;

use crate::support::{Agent, block, cairn_bin, eventually, http_client};

/// A gossip key (base64 of 16 bytes), and a second one to rotate to.
const KEY: &str = "d8wu8CSUrqgtjVsvcBPmhQ==";
const NEW_KEY: &str = "qxycTi/SsePj/TZzCBmNXw==";

/// A single server of datacenter `dc` with its data in `dir`, gossip encrypted with `KEY`.
fn server(dir: &std::path::Path, dc: &str, extra: &[&str]) -> Agent {
    let mut args = vec!["--datacenter", dc, "--encrypt", KEY];
    args.extend_from_slice(extra);
    let agent = Agent::server(dir, &args);
    agent.wait_ready();
    agent
}

/// The `(Name, Port)` of the agent's members in the pool `query` selects, sorted by name.
fn members(agent: &Agent, query: &str) -> Vec<(String, u64)> {
    let (status, v) = agent.get(&format!("/v1/agent/members{query}")).unwrap();
    assert_eq!(status, 200, "{v}");
    let mut out: Vec<(String, u64)> = v
        .as_array()
        .map(|a| {
            a.iter().map(|m| (m["Name"].as_str().unwrap().to_owned(), m["Port"].as_u64().unwrap())).collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// The port the agent's own member of the pool `query` selects gossips on.
fn own_port(agent: &Agent, query: &str, name: &str) -> u64 {
    members(agent, query).into_iter().find(|(n, _)| n == name).map(|(_, p)| p).unwrap()
}

/// `cairn ARGS` against `agent`: (exit code, stdout, stderr).
fn cli(agent: &Agent, args: &[&str]) -> (Option<i32>, String, String) {
    let out =
        Command::new(cairn_bin()).args(args).env("CAIRN_HTTP_ADDR", agent.http.to_string()).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// `method path` with `body`: (status, body text).
fn send(agent: &Agent, method: reqwest::Method, path: &str, body: &str) -> (u16, String) {
    block(async {
        let url = format!("http://{}{path}", agent.http);
        let r = http_client().request(method, url).body(body.to_owned()).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    })
}

fn datacenters(agent: &Agent) -> Value {
    agent.get("/v1/catalog/datacenters").unwrap().1
}

#[test]
fn servers_of_three_datacenters_federate_over_the_wan_pool() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let s1 = server(dirs[0].path(), "dc1", &[]);
    let wan1 = own_port(&s1, "?wan=1", "node1.dc1");
    let join = format!("127.0.0.1:{wan1}");
    let s2 = server(dirs[1].path(), "dc2", &["--retry-join-wan", &join]);
    eventually("dc2 joined the WAN pool through --retry-join-wan", || members(&s1, "?wan=1").len() == 2);

    // Consul's shape: `<node>.<dc>` names, status alive, the servers' WAN tags.
    let (_, list) = s1.get("/v1/agent/members?wan=1").unwrap();
    let s2_row = list.as_array().unwrap().iter().find(|m| m["Name"] == "node1.dc2").unwrap().clone();
    assert_eq!(s2_row["Status"], 1, "{s2_row}");
    let tags = &s2_row["Tags"];
    assert_eq!((tags["dc"].as_str(), tags["role"].as_str()), (Some("dc2"), Some("consul")), "{s2_row}");
    assert!(tags.get("wan_join_port").is_none(), "a LAN tag: {s2_row}");
    // A server's LAN tags carry its WAN port, for its datacenter's other servers to flood-join.
    let (_, lan) = s2.get("/v1/agent/members").unwrap();
    assert_eq!(lan[0]["Tags"]["wan_join_port"].as_str().unwrap(), s2_row["Port"].to_string(), "{lan}");
    assert!(
        tags["port"].as_str().is_some_and(|p| p.parse::<u16>().is_ok()) && tags["id"].is_string(),
        "{s2_row}"
    );
    // Consul's quirks: any non-empty `wan` means WAN (even `0`); a segment with it is a 400.
    assert_eq!(members(&s2, "?wan=0").len(), 2);
    assert_eq!(members(&s2, "?wan=1&segment=").len(), 2, "the Go client's empty segment");
    assert_eq!(members(&s1, "").into_iter().map(|m| m.0).collect::<Vec<_>>(), ["node1"]);
    let (status, _, body) = s1.get_full("/v1/agent/members?wan=1&segment=a").unwrap();
    assert_eq!((status, body.as_str()), (400, "Cannot provide a segment with wan=true"));

    // Each side lists itself first.
    assert_eq!(datacenters(&s1), serde_json::json!(["dc1", "dc2"]));
    assert_eq!(datacenters(&s2), serde_json::json!(["dc2", "dc1"]));

    // `cairn join -wan` and `cairn members -wan`, Consul's wording.
    let s3 = server(dirs[2].path(), "dc3", &[]);
    let (code, out, err) = cli(&s3, &["join", "-wan", &join]);
    assert_eq!(
        (code, out.as_str()),
        (Some(0), "Successfully joined cluster by contacting 1 nodes.\n"),
        "{err}"
    );
    eventually("all three servers see each other", || {
        [&s1, &s2, &s3].iter().all(|a| members(a, "?wan=1").len() == 3)
    });
    let (code, out, _) = cli(&s1, &["members", "-wan"]);
    assert_eq!(code, Some(0));
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["Node", "Address", "Status", "Type", "Build", "Protocol", "DC"], "{out}");
    let names: Vec<(&str, &str, &str, &str)> = rows[1..].iter().map(|r| (r[0], r[2], r[3], r[6])).collect();
    assert_eq!(
        names,
        [
            ("node1.dc1", "alive", "server", "dc1"),
            ("node1.dc2", "alive", "server", "dc2"),
            ("node1.dc3", "alive", "server", "dc3")
        ],
        "{out}"
    );
    let dcs = datacenters(&s3);
    assert_eq!(dcs[0], "dc3", "{dcs}");
    assert_eq!(dcs.as_array().unwrap().len(), 3, "{dcs}");

    // A graceful leave is `left` in the WAN pool at once, and its datacenter is no longer listed.
    s3.put_ok("/v1/agent/leave", "");
    let status = |a: &Agent, name: &str| {
        let (_, v) = a.get("/v1/agent/members?wan=1").unwrap();
        v.as_array().unwrap().iter().find(|m| m["Name"] == name).map(|m| m["Status"].clone())
    };
    eventually("node1.dc3 left", || status(&s1, "node1.dc3") == Some(serde_json::json!(3)));
    assert_eq!(datacenters(&s1), serde_json::json!(["dc1", "dc2"]));

    // A LAN join across datacenters is refused with Consul's text, and changes nothing.
    let lan2 = own_port(&s2, "", "node1");
    let (status, body) = s1.put(&format!("/v1/agent/join/127.0.0.1:{lan2}"), "");
    assert_eq!(
        (status, body.as_str()),
        (
            500,
            "1 error occurred:\n\t* Failed to join 127.0.0.1: Member 'node1' part of wrong datacenter 'dc2'\n\n"
        )
    );
    assert_eq!(members(&s1, "").len(), 1);
    assert_eq!(members(&s2, "").len(), 1);

    // The keyring covers both pools: the WAN entry (every server) first, then the LAN one.
    let (status, body) =
        send(&s1, reqwest::Method::POST, "/v1/operator/keyring", &format!(r#"{{"Key":"{NEW_KEY}"}}"#));
    assert_eq!(status, 200, "{body}");
    let (status, list) = s1.get("/v1/operator/keyring").unwrap();
    assert_eq!(status, 200, "{list}");
    let pools: Vec<(bool, &str, u64, usize)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let keys = p["Keys"].as_object().unwrap();
            assert!(keys.contains_key(KEY) && keys.contains_key(NEW_KEY), "{p}");
            (
                p["WAN"].as_bool().unwrap(),
                p["Datacenter"].as_str().unwrap(),
                p["NumNodes"].as_u64().unwrap(),
                keys.len(),
            )
        })
        .collect();
    assert_eq!(pools, [(true, "dc1", 2, 2), (false, "dc1", 1, 2)], "{list}");
    let (_, local) = s1.get("/v1/operator/keyring?local-only=1").unwrap();
    assert_eq!(local.as_array().unwrap().len(), 1, "{local}");
    // dc2's WAN ring is persisted to Consul's WAN keyring file, not the LAN one.
    let file = |name: &str| std::fs::read_to_string(dirs[1].path().join("serf").join(name)).unwrap();
    assert!(file("remote.keyring").contains(NEW_KEY), "{}", file("remote.keyring"));
    assert!(!file("local.keyring").contains(NEW_KEY), "{}", file("local.keyring"));
    // Using the new key re-keys the WAN pool, which keeps gossiping.
    s1.put_ok("/v1/operator/keyring", &format!(r#"{{"Key":"{NEW_KEY}"}}"#));
    let (status, body) =
        send(&s1, reqwest::Method::DELETE, "/v1/operator/keyring", &format!(r#"{{"Key":"{KEY}"}}"#));
    assert_eq!(status, 200, "{body}");
    let (_, list) = s1.get("/v1/operator/keyring").unwrap();
    assert_eq!(list[0]["Keys"], serde_json::json!({ NEW_KEY: 2 }), "{list}");
    assert!(file("remote.keyring").starts_with(&format!("[\n  \"{NEW_KEY}\"")), "{}", file("remote.keyring"));
}

#[test]
fn clients_and_servers_without_a_wan_pool_answer_with_consuls_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), "dc1", &["--serf-wan-port", "-1"]);
    let (status, v) = server.get("/v1/agent/members?wan=1").unwrap();
    assert_eq!((status, v), (200, Value::Null));
    let (status, body) = server.put("/v1/agent/join/127.0.0.1:1?wan=1", "");
    assert_eq!((status, body.as_str()), (500, "WAN Federation is disabled"));
    assert_eq!(datacenters(&server), serde_json::json!(["dc1"]));

    let lan = own_port(&server, "", "node1");
    let data = tempfile::tempdir().unwrap();
    let join = format!("127.0.0.1:{lan}");
    let d = data.path().to_str().unwrap();
    let client = Agent::start(&["--node", "c1", "--data-dir", d, "--encrypt", KEY, "--retry-join", &join]);
    let (status, v) = client.get("/v1/agent/members?wan=1").unwrap();
    assert_eq!((status, v), (200, Value::Null));
    let (status, body) = client.put("/v1/agent/join/127.0.0.1:1?wan=1", "");
    assert_eq!((status, body.as_str()), (500, "Must be a server to join WAN cluster"));
    // `cairn members -wan` on a client: nothing to list, exit 2 (Consul's).
    let (code, out, _) = cli(&client, &["members", "-wan"]);
    assert_eq!((code, out.as_str()), (Some(2), ""));
    let (code, _, err) = cli(&client, &["join", "-wan", "127.0.0.1:1"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("Must be a server to join WAN cluster"), "{err}");
}
