//! `/v1/agent/*` as Consul 1.8.7 answers it (issue 20, items 3 and 5), on real agents: the
//! agent's own lists, `ContentHash` and hash blocking, unknown deregistrations, a check's first
//! output, `/v1/agent/self` (with `consul info` when `CAIRN_CONSUL_BIN` names Consul's CLI),
//! `/v1/agent/host`, `node_meta` and empty config files. Every expected value was read from a
//! live `consul agent -dev` (1.8.7) doing the same.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Agent, cairn_bin, eventually};

/// The service of Consul's api test `TestAPI_AgentService`, and the hash Consul gives it.
const FOO: &str = r#"{"Name":"foo","Tags":["bar","baz"],"Port":8000,"Checks":[{"TTL":"15s"},{"TTL":"30s"}]}"#;
const FOO_HASH: &str = "6b13684bfe179e67";

#[test]
fn agent_lists_only_what_was_registered_on_it() {
    let agent = Agent::dev(&[]);
    // A dev server's node has `consul` and `serfHealth` in the catalog, not in the agent's lists.
    let (_, node) = agent.get("/v1/catalog/node/node1").unwrap();
    assert!(node["Services"].get("consul").is_some(), "{node}");
    assert_eq!(agent.get("/v1/agent/services").unwrap(), (200, serde_json::json!({})));
    assert_eq!(agent.get("/v1/agent/checks").unwrap(), (200, serde_json::json!({})));
    agent.put_ok("/v1/agent/service/register", FOO);
    let (_, services) = agent.get("/v1/agent/services").unwrap();
    assert_eq!(services.as_object().unwrap().keys().collect::<Vec<_>>(), ["foo"], "{services}");
    let (_, checks) = agent.get("/v1/agent/checks").unwrap();
    let ids: Vec<&String> = checks.as_object().unwrap().keys().collect();
    assert_eq!(ids, ["service:foo:1", "service:foo:2"], "{checks}");
}

#[test]
fn agent_service_has_consuls_content_hash_and_blocks_on_it() {
    let agent = Agent::dev(&[]);
    agent.put_ok("/v1/agent/service/register", FOO);
    let (status, headers, body) = agent.get_full("/v1/agent/service/foo").unwrap();
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ContentHash"], FOO_HASH, "{body}");
    assert_eq!(headers["x-consul-contenthash"], FOO_HASH);
    // Consul leaves out empty tagged addresses (Go's client compares a nil map).
    assert!(v.get("TaggedAddresses").is_none(), "{body}");

    // The same hash parks the request until the wait ends (Consul adds up to wait/16).
    let start = Instant::now();
    let (status, _, _) = agent.get_full(&format!("/v1/agent/service/foo?hash={FOO_HASH}&wait=1s")).unwrap();
    let took = start.elapsed();
    assert_eq!(status, 200);
    assert!(took >= Duration::from_secs(1) && took < Duration::from_secs(3), "returned after {took:?}");
    // Another hash answers at once.
    let start = Instant::now();
    agent.get_full("/v1/agent/service/foo?hash=0123&wait=5s").unwrap();
    assert!(start.elapsed() < Duration::from_secs(1));

    // A change wakes a parked watcher with the new hash, long before its wait ends.
    std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            let start = Instant::now();
            let r = agent.get_full(&format!("/v1/agent/service/foo?hash={FOO_HASH}&wait=20s")).unwrap();
            (start.elapsed(), r)
        });
        std::thread::sleep(Duration::from_millis(500));
        agent.put_ok("/v1/agent/service/register", &FOO.replace("8000", "8001"));
        let (took, (status, headers, body)) = watcher.join().unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(took < Duration::from_secs(5), "woke after {took:?}");
        assert_ne!(headers["x-consul-contenthash"], FOO_HASH);
        assert!(body.contains("\"Port\":8001"), "{body}");
    });
    let (status, _, body) = agent.get_full("/v1/agent/service/nope").unwrap();
    assert_eq!((status, body.as_str()), (404, "unknown service ID: nope"));
}

/// A watcher on an unchanged service costs one request per wait: the agent does not answer
/// a blocked request early because other parts of the catalog change.
#[test]
fn hash_watcher_does_not_spin_while_other_things_change() {
    let agent = Agent::dev(&[]);
    agent.put_ok("/v1/agent/service/register", FOO);
    std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            let start = Instant::now();
            agent.get_full(&format!("/v1/agent/service/foo?hash={FOO_HASH}&wait=2s")).unwrap();
            start.elapsed()
        });
        for i in 0..5 {
            agent.put_ok("/v1/agent/service/register", &format!(r#"{{"Name":"other{i}","Port":1}}"#));
            agent.put_ok(&format!("/v1/kv/k{i}"), "v");
        }
        let took = watcher.join().unwrap();
        assert!(took >= Duration::from_secs(2), "answered after {took:?} though foo did not change");
    });
}

/// The spec's 404 (consul-compat §4.5 and the conformance suite), where Consul 1.8.7
/// answered 200.
#[test]
fn deregistering_unknown_ids_is_404() {
    let agent = Agent::dev(&[]);
    for path in ["/v1/agent/service/deregister/nope", "/v1/agent/check/deregister/nope"] {
        assert_eq!(agent.put(path, "").0, 404, "{path}");
    }
}

#[test]
fn first_failing_output_shows_at_once_in_agent_checks() {
    let agent = Agent::dev(&[]);
    // Nothing listens on port 1; the check starts critical, so its first run changes only
    // the output, which the catalog gets within check_update_interval but the agent shows now.
    let check = r#"{"Name":"dead","TCP":"127.0.0.1:1","Interval":"1s","Timeout":"1s"}"#;
    agent.put_ok("/v1/agent/check/register", check);
    eventually("the first failing output in /v1/agent/checks", || {
        let (_, checks) = agent.get("/v1/agent/checks").unwrap();
        checks["dead"]["Status"] == "critical"
            && checks["dead"]["Output"].as_str().is_some_and(|o| !o.is_empty())
    });
}

fn self_info(agent: &Agent) -> Value {
    let (status, body) = agent.get("/v1/agent/self").unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

#[test]
fn agent_self_has_consuls_sections_and_one_version() {
    let agent = Agent::dev(&[]);
    let me = self_info(&agent);
    let config = me["Config"].as_object().unwrap();
    let keys: Vec<&String> = config.keys().collect();
    assert_eq!(keys, ["Datacenter", "NodeID", "NodeName", "Revision", "Server", "Version"], "{me}");
    let debug = &me["DebugConfig"];
    let serf_port = me["Member"]["Port"].as_u64().unwrap();
    // The Go client's join test strips `tcp://` and joins this address.
    assert_eq!(debug["SerfAdvertiseAddrLAN"], format!("tcp://127.0.0.1:{serf_port}"), "{debug}");
    assert_eq!(debug["SerfBindAddrLAN"], debug["SerfAdvertiseAddrLAN"]);
    assert_eq!(debug["HTTPAddrs"], serde_json::json!([format!("tcp://{}", agent.http)]));
    assert_eq!(debug["DNSPort"], agent.dns.port());
    assert_eq!(debug["NodeName"], "node1");
    assert_eq!(debug["NodeID"], config["NodeID"]);
    let stats = &me["Stats"];
    for (section, key) in [
        ("agent", "services"),
        ("build", "version"),
        ("consul", "leader_addr"),
        ("raft", "applied_index"),
        ("raft", "commit_index"),
        ("raft", "last_log_index"),
        ("runtime", "cpu_count"),
        ("serf_lan", "members"),
    ] {
        assert!(stats[section][key].is_string(), "Stats.{section}.{key}: {stats}");
    }
    assert_eq!(stats["raft"]["state"], "Leader");
    assert_eq!(stats["consul"]["leader"], "true");
    assert!(me["Coord"].is_null());
    // One version everywhere: Config, Stats.build, the members' build tag, `cairn version`.
    let version = config["Version"].as_str().unwrap().to_owned();
    assert_eq!(stats["build"]["version"], version.as_str());
    let (_, members) = agent.get("/v1/agent/members").unwrap();
    let tags = &members[0]["Tags"];
    assert_eq!(tags["build"].as_str().unwrap().split(':').next(), Some(version.as_str()), "{members}");
    assert_eq!(tags["id"], config["NodeID"], "the id tag is the node ID: {members}");
    assert_eq!(me["Member"]["Tags"]["build"], tags["build"]);
    let out = Command::new(cairn_bin()).arg("version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("v{version}")));
}

/// Consul 1.8.7's own `consul info` and `consul members` read cairn (run with
/// `CAIRN_CONSUL_BIN=/path/to/consul`).
#[test]
fn consul_info_reads_agent_self() {
    let Some(consul) = std::env::var_os("CAIRN_CONSUL_BIN") else {
        eprintln!("CAIRN_CONSUL_BIN unset: `consul info` not checked");
        return;
    };
    let agent = Agent::dev(&[]);
    let run = |args: &[&str]| {
        let out = Command::new(&consul)
            .args(args)
            .env("CONSUL_HTTP_ADDR", agent.http.to_string())
            .output()
            .unwrap();
        assert!(out.status.success(), "consul {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let info = run(&["info"]);
    for line in ["raft:", "state = Leader", "build:", "runtime:", "serf_lan:", "leader = true"] {
        assert!(info.contains(line), "`consul info` lacks {line:?}:\n{info}");
    }
    let members = run(&["members"]);
    assert!(
        members.contains("node1") && members.contains("alive") && members.contains("server"),
        "{members}"
    );
}

#[test]
fn agent_host_reports_the_host() {
    let agent = Agent::dev(&[]);
    let (status, host) = agent.get("/v1/agent/host").unwrap();
    assert_eq!(status, 200, "{host}");
    assert!(host["Memory"]["total"].as_u64().unwrap() > 0, "{host}");
    assert!(!host["CPU"].as_array().unwrap().is_empty(), "{host}");
    assert_eq!(host["Host"]["os"], "linux");
    assert!(host["Disk"]["total"].as_u64().unwrap() > 0, "{host}");
    assert!(host["CollectionTime"].as_u64().unwrap() > 1_600_000_000_000_000_000);
    assert!(host["Errors"].is_null(), "{host}");
}

#[test]
fn agent_host_needs_operator_read_with_acls_on() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("acl.json");
    std::fs::write(&config, r#"{"acl":{"enabled":true,"default_policy":"deny"}}"#).unwrap();
    let agent = Agent::dev(&["--config-file", config.to_str().unwrap()]);
    let (status, _, body) = agent.get_full("/v1/agent/host").unwrap();
    assert_eq!((status, body.as_str()), (403, "Permission denied"));
}

#[test]
fn node_meta_reaches_the_catalog_and_agent_self() {
    let dir = tempfile::tempdir().unwrap();
    let meta = dir.path().join("meta.json");
    std::fs::write(&meta, r#"{"node_meta":{"rack":"r1","tier":"web"}}"#).unwrap();
    let empty = dir.path().join("empty.json");
    std::fs::write(&empty, "").unwrap();
    let braces = dir.path().join("braces.json");
    std::fs::write(&braces, "{}").unwrap();
    let paths = [&meta, &empty, &braces].map(|p| p.to_str().unwrap().to_owned());
    let agent =
        Agent::dev(&["--config-file", &paths[0], "--config-file", &paths[1], "--config-file", &paths[2]]);
    let me = self_info(&agent);
    assert_eq!(me["Meta"], serde_json::json!({"consul-network-segment": "", "rack": "r1", "tier": "web"}));
    assert_eq!(me["DebugConfig"]["NodeMeta"], serde_json::json!({"rack": "r1", "tier": "web"}));
    let (_, node) = agent.get("/v1/catalog/node/node1").unwrap();
    assert_eq!(node["Node"]["Meta"]["rack"], "r1", "{node}");
    let (_, nodes) = agent.get("/v1/catalog/nodes?node-meta=tier:web").unwrap();
    assert_eq!(nodes.as_array().map(Vec::len), Some(1), "{nodes}");
}

#[test]
fn node_meta_is_validated_as_consul_does() {
    let dir = tempfile::tempdir().unwrap();
    for (meta, why) in [
        (
            r#"{"consul-x":"y"}"#,
            "Couldn't load metadata pair ('consul-x', 'y'): Key prefix 'consul-' is reserved for internal use",
        ),
        (r#"{"a b":"y"}"#, "Couldn't load metadata pair ('a b', 'y'): Key contains invalid characters"),
    ] {
        let file = dir.path().join("bad.json");
        let data = dir.path().display();
        std::fs::write(&file, format!(r#"{{"data_dir":"{data}","node_meta":{meta}}}"#)).unwrap();
        let out = Command::new(cairn_bin()).args(["validate", file.to_str().unwrap()]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{meta}");
        assert!(stderr.contains("node_meta") && stderr.contains(why), "{meta}: {stderr}");
    }
}

/// Consul's `?replace-existing-checks`: the checks a re-registration leaves out are removed;
/// without it they stay (Go client's `ServiceRegisterOpts{ReplaceExistingChecks: true}`).
#[test]
fn replace_existing_checks_drops_the_checks_left_out() {
    let agent = Agent::dev(&[]);
    let with_check = r#"{"Name":"foo","ID":"foo","Port":8000,"Check":{"TTL":"15s"}}"#;
    let without = r#"{"Name":"foo","ID":"foo","Port":9000}"#;
    let checks = || agent.get("/v1/agent/checks").unwrap().1;
    agent.put_ok("/v1/agent/service/register", with_check);
    agent.put_ok("/v1/agent/service/register", without);
    assert!(checks().get("service:foo").is_some(), "kept without the parameter: {}", checks());
    agent.put_ok("/v1/agent/service/register?replace-existing-checks=true", without);
    assert_eq!(checks(), serde_json::json!({}));
    let (_, node) = agent.get("/v1/health/node/node1").unwrap();
    assert!(!node.to_string().contains("service:foo"), "the catalog lost it too: {node}");
    assert_eq!(agent.get("/v1/agent/service/foo").unwrap().1["Port"], 9000);
}

/// `PUT /v1/agent/token/*` needs `agent:write` on the agent's node, as Consul 1.8.7 checks it:
/// the agent master token may set the agent's tokens; the anonymous token may not.
#[test]
fn agent_tokens_need_agent_write() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("acl.json");
    let acl = r#"{"acl":{"enabled":true,"default_policy":"deny","tokens":{"agent_master":"am-secret"}}}"#;
    std::fs::write(&config, acl).unwrap();
    let agent = Agent::dev(&["--config-file", config.to_str().unwrap()]);
    let put = |token: Option<&str>| {
        crate::support::block(async {
            let mut r = crate::support::http_client()
                .put(format!("http://{}/v1/agent/token/replication", agent.http))
                .body(r#"{"Token":"x"}"#);
            if let Some(t) = token {
                r = r.header("X-Consul-Token", t);
            }
            let r = r.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    };
    assert_eq!(put(None), (403, "Permission denied".to_owned()));
    assert_eq!(put(Some("am-secret")), (200, String::new()));
}

/// `/v1/agent/monitor` streams the agent's log lines as they happen, uncompressed even to a
/// client that accepts gzip (Go's default), in Consul's text and JSON forms; an unknown level
/// is Consul's 400.
#[test]
fn monitor_streams_log_lines_as_they_happen() {
    use std::io::{BufRead as _, BufReader, Write as _};
    let agent = Agent::dev(&[]);
    for (query, check) in [("loglevel=debug", "text"), ("loglevel=debug&logjson", "json")] {
        let mut conn = std::net::TcpStream::connect(agent.http).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(conn, "GET /v1/agent/monitor?{query} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n")
            .unwrap();
        let mut reader = BufReader::new(conn);
        let mut head = String::new();
        while reader.read_line(&mut head).unwrap() > 2 && !head.ends_with("\r\n\r\n") {}
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(!head.to_ascii_lowercase().contains("content-encoding"), "{head}");
        agent.put_ok("/v1/agent/service/register", r#"{"Name":"redis"}"#);
        let deadline = Instant::now() + Duration::from_secs(10);
        let found = std::iter::from_fn(|| {
            let mut line = String::new();
            (Instant::now() < deadline && reader.read_line(&mut line).is_ok_and(|n| n > 0)).then_some(line)
        })
        .find_map(|line| {
            let line = line.trim();
            match check {
                "text" => (line.contains("[INFO]") || line.contains("[DEBUG]")).then_some(()),
                _ => serde_json::from_str::<Value>(line).ok().filter(|v| v["@level"].is_string()).map(|_| ()),
            }
        });
        assert!(found.is_some(), "no {check} log line within the stream");
    }
    assert_eq!(agent.get("/v1/agent/monitor?loglevel=bogus").map(|r| r.0).unwrap_or(400), 400);
}
