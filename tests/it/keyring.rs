//! The gossip keyring against real agents: `/v1/operator/keyring` (spec §5.2 T9, T10) and its
//! errors, `cairn keyring`'s output and exit codes, and a key rotation on a live three-server
//! cluster (install new, use new, remove old) during which no member is marked failed and
//! writes keep replicating, with each server's `serf/local.keyring` checked after every step
//! and after a restart.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::cluster::{Cluster, cli, members, wait_until};
use crate::support::{Agent, cairn_bin};

fn keygen() -> String {
    let out = std::process::Command::new(cairn_bin()).arg("keygen").output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// `method /v1/operator/keyring{query}` with `{"Key": key}` (no body without a key).
fn keyring(agent: &Agent, method: reqwest::Method, query: &str, key: Option<&str>) -> (u16, String) {
    let url = format!("http://{}/v1/operator/keyring{query}", agent.http);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut req = reqwest::Client::new().request(method, url).timeout(Duration::from_secs(30));
        if let Some(key) = key {
            req = req.body(json!({ "Key": key }).to_string());
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    })
}

fn list(agent: &Agent) -> Value {
    let (status, body) = keyring(agent, reqwest::Method::GET, "", None);
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn t9_t10_install_use_remove_and_consuls_errors_on_one_agent() {
    let (k1, k2, k3) = (keygen(), keygen(), keygen());
    let a = Agent::dev(&["--encrypt", &k1]);
    use reqwest::Method as M;

    // T9.
    assert_eq!(keyring(&a, M::POST, "", Some(&k2)), (200, String::new()));
    assert_eq!(keyring(&a, M::PUT, "", Some(&k2)), (200, String::new()));
    assert_eq!(keyring(&a, M::DELETE, "", Some(&k1)), (200, String::new()));
    // A server's WAN pool first (Consul's order), then its datacenter's LAN pool.
    let pool = |wan: bool| {
        json!({
            "WAN": wan, "Datacenter": "dc1", "Segment": "",
            "Keys": { &k2: 1 }, "PrimaryKeys": { &k2: 1 }, "NumNodes": 1
        })
    };
    assert_eq!(list(&a), json!([pool(true), pool(false)]));
    let expected = json!([pool(false)]);

    // T10.
    let (status, body) = keyring(&a, M::DELETE, "", Some(&k2));
    assert_eq!(status, 500);
    assert_eq!(
        body,
        "4 errors occurred:\n\t* WAN error: 1/1 nodes reported failure\n\t* node1.dc1: Removing the primary key is not allowed\n\t* dc1 (LAN) error: 1/1 nodes reported failure\n\t* node1: Removing the primary key is not allowed\n\n"
    );
    let (status, body) = keyring(&a, M::PUT, "", Some(&k3));
    assert_eq!(status, 500);
    assert!(body.contains("\t* node1: Requested key is not in the keyring"), "{body}");
    assert_eq!(
        keyring(&a, M::GET, "?relay-factor=6", None),
        (400, "Bad request: Invalid relay-factor: Relay factor must be in range: [0, 5]".to_owned())
    );

    // The rest of Consul's errors.
    assert_eq!(
        keyring(&a, M::POST, "?local-only=1", Some(&k3)),
        (
            400,
            "Bad request: Invalid use of local-only: local-only can only be set for list requests".to_owned()
        )
    );
    assert_eq!(
        keyring(&a, M::POST, "", Some("#bad")),
        (
            500,
            "2 errors occurred:\n\t* WAN error: illegal base64 data at input byte 0\n\t* dc1 (LAN) error: illegal base64 data at input byte 0\n\n"
                .to_owned()
        )
    );
    let (status, body) = keyring(&a, M::POST, "", Some("YWJj"));
    assert_eq!(status, 500);
    assert!(body.ends_with("\t* node1: key size must be 16, 24 or 32 bytes\n\n"), "{body}");
    let (status, local) = keyring(&a, M::GET, "?local-only=1&relay-factor=5", None);
    assert_eq!(status, 200, "{local}");
    assert_eq!(serde_json::from_str::<Value>(&local).unwrap(), expected, "refused writes changed nothing");
}

#[test]
fn without_encryption_the_keyring_is_refused() {
    let a = Agent::dev(&[]);
    let (status, body) = keyring(&a, reqwest::Method::GET, "", None);
    assert_eq!((status, body.as_str()), (500, "Keyring is empty (encryption not enabled)"));
    assert!(a.log().contains("Keyring is empty (encryption not enabled)"), "{}", a.log());
    let (ok, text) = cli(&a, &["keyring", "--list"]);
    assert!(!ok, "{text}");
}

#[test]
fn the_cli_prints_consuls_output_and_exits_1_on_any_failure() {
    let (k1, k2) = (keygen(), keygen());
    let a = Agent::dev(&["--encrypt", &k1]);
    let (ok, text) = cli(&a, &["keyring", "--install", &k2]);
    assert!(ok, "{text}");
    assert_eq!(text, "==> Installing new gossip encryption key...\n");
    let (ok, text) = cli(&a, &["keyring", "--list"]);
    assert!(ok, "{text}");
    let mut keys = [k1.clone(), k2.clone()];
    keys.sort();
    let expected = format!(
        "==> Gathering installed encryption keys...\n\nWAN:\n  {0} [1/1]\n  {1} [1/1]\n\ndc1 (LAN):\n  {0} [1/1]\n  {1} [1/1]\n",
        keys[0], keys[1]
    );
    assert_eq!(text, expected);
    let (ok, text) = cli(&a, &["keyring", "--list-primary", "--local-only", "--relay-factor", "2"]);
    assert!(ok, "{text}");
    assert_eq!(
        text,
        format!("==> Gathering installed primary encryption keys...\n\ndc1 (LAN):\n  {k1} [1/1]\n")
    );

    let (ok, text) = cli(&a, &["keyring", "--remove", &k1]);
    assert!(!ok, "removing the primary key succeeded: {text}");
    assert!(text.starts_with("==> Removing gossip encryption key...\n"), "{text}");
    assert!(text.contains("Removing the primary key is not allowed"), "{text}");
    for (args, message) in [
        (vec!["keyring"], "Only a single action is allowed"),
        (vec!["keyring", "--list", "--install", &k2], "Only a single action is allowed"),
        (vec!["keyring", "--use", &k2, "--local-only"], "local-only can only be set for list requests"),
        (vec!["keyring", "--list", "--relay-factor", "6"], "Relay factor must be in range: [0, 5]"),
    ] {
        let (ok, text) = cli(&a, &args);
        assert!(!ok && text.contains(message), "{args:?}: {text}");
    }
    let (ok, text) = cli(&a, &["keyring", "--use", &k2]);
    assert!(ok && text == "==> Changing primary gossip encryption key...\n", "{text}");
}

/// `(name, Status)` of the members the agent at `http` lists (none when it does not answer).
fn statuses(http: std::net::SocketAddr) -> Vec<(String, u64)> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let body: Value = rt.block_on(async {
        let url = format!("http://{http}/v1/agent/members");
        let r = reqwest::Client::new().get(url).timeout(Duration::from_secs(5)).send().await;
        match r {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    });
    body.as_array()
        .into_iter()
        .flatten()
        .map(|m| (m["Name"].as_str().unwrap_or("").to_owned(), m["Status"].as_u64().unwrap_or(0)))
        .collect()
}

/// Each server's keyring file.
fn files(c: &Cluster) -> Vec<Vec<String>> {
    (0..3)
        .map(|i| {
            let path = c.dir.path().join(format!("s{i}")).join("serf").join("local.keyring");
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            serde_json::from_str(&text).unwrap()
        })
        .collect()
}

/// A KV write on server `from` that every server then serves (stale reads, so each answers
/// from its own replica).
fn write_replicates(c: &Cluster, from: usize, n: usize) {
    let key = format!("/v1/kv/rotation/{n}");
    assert_eq!(c.server(from).put_ok(&key, &format!("v{n}")).trim(), "true");
    wait_until(
        Duration::from_secs(10),
        "the write on every server",
        || (0..3).all(|i| c.server(i).get(&format!("{key}?stale")).is_ok_and(|(s, _)| s == 200)),
        || c.logs(),
    );
}

#[test]
fn a_key_rotation_on_a_live_cluster_marks_no_member_failed() {
    let (old, new) = (keygen(), keygen());
    let mut c = Cluster::start(3, &["--encrypt", &old]);
    let all_alive: BTreeSet<(String, u64)> = (0..3).map(|i| (format!("s{i}"), 1)).collect();
    let alive = |c: &Cluster| (0..3).all(|i| members(c.server(i)) == all_alive);
    wait_until(Duration::from_secs(15), "three alive members", || alive(&c), || c.logs());
    assert_eq!(files(&c), vec![vec![old.clone()]; 3], "the file is written at the first start");

    // Watch every server's member list through the whole rotation.
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let http: Vec<std::net::SocketAddr> = (0..3).map(|i| c.server(i).http).collect();
    let watcher = {
        let (stop, seen) = (stop.clone(), seen.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                for h in &http {
                    for (name, status) in statuses(*h) {
                        if status != 1 {
                            seen.lock().unwrap().insert((*h, name, status));
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };

    let (ok, text) = cli(c.server(1), &["keyring", "--install", &new]);
    assert!(ok, "{text}");
    assert_eq!(files(&c), vec![vec![old.clone(), new.clone()]; 3]);
    write_replicates(&c, 0, 1);
    let (ok, text) = cli(c.server(2), &["keyring", "--list"]);
    assert!(
        ok && text.contains(&format!("  {new} [3/3]")) && text.contains(&format!("  {old} [3/3]")),
        "{text}"
    );

    let (ok, text) = cli(c.server(2), &["keyring", "--use", &new]);
    assert!(ok, "{text}");
    assert_eq!(files(&c), vec![vec![new.clone(), old.clone()]; 3]);
    write_replicates(&c, 1, 2);

    let (ok, text) = cli(c.server(0), &["keyring", "--remove", &old, "--relay-factor", "2"]);
    assert!(ok, "{text}");
    assert_eq!(files(&c), vec![vec![new.clone()]; 3]);
    let (ok, text) = cli(c.server(1), &["keyring", "--list-primary"]);
    assert!(ok && text.ends_with(&format!("dc1 (LAN):\n  {new} [3/3]\n")), "{text}");
    // Several probe rounds on the new key alone.
    std::thread::sleep(Duration::from_secs(6));
    write_replicates(&c, 2, 3);
    stop.store(true, Ordering::SeqCst);
    watcher.join().unwrap();
    assert_eq!(*seen.lock().unwrap(), BTreeSet::new(), "members not alive during the rotation");
    assert!(alive(&c), "{}", c.logs());

    // A restart keeps the rotated keyring; the file overrides the old `--encrypt`.
    c.kill9(1);
    c.spawn(1);
    c.server(1).wait_ready();
    wait_until(Duration::from_secs(30), "the restarted server alive everywhere", || alive(&c), || c.logs());
    assert!(
        c.server(1).log().contains("LAN keyring exists but -encrypt given, using keyring"),
        "{}",
        c.server(1).log()
    );
    assert_eq!(files(&c), vec![vec![new.clone()]; 3]);
    let pools = list(c.server(1));
    assert_eq!(pools[0]["Keys"], json!({ &new: 3 }), "{pools}");
    assert_eq!(pools[0]["NumNodes"], 3);
    write_replicates(&c, 1, 4);

    // A member that does not answer (stopped, not yet declared failed) fails the operation.
    c.server(2).signal("STOP");
    let (ok, text) = cli(c.server(0), &["keyring", "--list"]);
    c.server(2).signal("CONT");
    assert!(!ok, "a silent member went unnoticed: {text}");
    assert!(text.contains("\t* dc1 (LAN) error: 2/3 nodes reported success"), "{text}");
}

#[test]
fn disable_keyring_file_keeps_the_keyring_in_memory_and_a_broken_file_stops_start_up() {
    let (k1, k2) = (keygen(), keygen());
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("nofile.json");
    std::fs::write(&conf, r#"{"disable_keyring_file": true}"#).unwrap();
    let data = dir.path().join("data");
    let file = data.join("serf").join("local.keyring");
    {
        let conf = conf.to_str().unwrap();
        let a = Agent::server(&data, &["--encrypt", &k1, "--config-file", conf]);
        assert_eq!(keyring(&a, reqwest::Method::POST, "", Some(&k2)).0, 200);
        assert_eq!(list(&a)[0]["Keys"], json!({ &k1: 1, &k2: 1 }));
        assert!(!file.exists(), "disable_keyring_file wrote {}", file.display());
    }
    {
        // Without the switch the file is written, and a restart reads it back.
        let a = Agent::server(&data, &["--encrypt", &k1]);
        assert_eq!(keyring(&a, reqwest::Method::POST, "", Some(&k2)).0, 200);
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(serde_json::from_str::<Vec<String>>(&text).unwrap(), vec![k1.clone(), k2.clone()]);
    }
    {
        let a = Agent::server(&data, &[]);
        assert_eq!(list(&a)[0]["PrimaryKeys"], json!({ &k1: 1 }), "the file alone turns encryption on");
        assert_eq!(list(&a)[0]["Keys"], json!({ &k1: 1, &k2: 1 }));
    }
    std::fs::write(&file, r#"["YWJj"]"#).unwrap();
    let d = data.to_str().unwrap();
    let err = Agent::try_start(&["--server", "--bootstrap-expect", "1", "--node", "node1", "--data-dir", d])
        .err()
        .expect("a broken keyring file stops start-up");
    assert!(err.contains("key size must be 16, 24 or 32 bytes"), "{err}");
}

/// Consul's rolling enable of gossip encryption on a live three-server cluster with no key:
/// every server restarted with `encrypt` and both `encrypt_verify_*` false, then with
/// `encrypt_verify_outgoing = true`, then with `encrypt_verify_incoming = true`. After every
/// restart (so with servers at two steps at once) all three are alive members and a write
/// replicates (server RPC and Raft work across the steps); at the end a keyless agent can no
/// longer join.
#[test]
fn encryption_is_rolled_out_on_a_live_cluster_in_consuls_three_steps() {
    let key = keygen();
    let mut c = Cluster::start(3, &[]);
    let all_alive: BTreeSet<(String, u64)> = (0..3).map(|i| (format!("s{i}"), 1)).collect();
    let alive = |c: &Cluster| (0..3).all(|i| members(c.server(i)) == all_alive);
    wait_until(Duration::from_secs(15), "three alive members", || alive(&c), || c.logs());
    write_replicates(&c, 0, 0);
    let steps = [(false, false), (false, true), (true, true)];
    let mut n = 1;
    for (step, (incoming, outgoing)) in steps.into_iter().enumerate() {
        let file = c.dir.path().join(format!("step{step}.json"));
        let config = json!({
            "encrypt": key, "encrypt_verify_incoming": incoming, "encrypt_verify_outgoing": outgoing
        });
        std::fs::write(&file, config.to_string()).unwrap();
        c.set_extra(&["--config-file", file.to_str().unwrap()]);
        for i in 0..3 {
            c.kill9(i);
            c.spawn(i);
            c.server(i).wait_ready();
            let what = format!("all alive after s{i} moved to step {}", step + 1);
            wait_until(Duration::from_secs(30), &what, || alive(&c), || c.logs());
            // The restart may have moved the leadership: wait for a leader all agree on.
            let leader = c.leader();
            write_replicates(&c, leader, n);
            n += 1;
        }
    }
    for i in 0..3 {
        let pools = list(c.server(i));
        let lan = pools.as_array().unwrap().iter().find(|p| p["WAN"] == false).unwrap();
        assert_eq!(lan["Keys"], json!({ &key: 3 }), "{pools}");
    }

    // Fully encrypted now: an agent without the key does not get in.
    let plain = Agent::start(&["--dev", "--node", "plain"]);
    let (ok, text) = cli(&plain, &["join", &format!("127.0.0.1:{}", c.serf_port(0))]);
    assert!(!ok, "joined without the key: {text}");
    assert!(alive(&c), "{}", c.logs());
}
