//! Consul's CLI verbs on the real `cairn` binary against a real agent: `event`, `maint`,
//! `force-leave`, `rtt`, `operator autopilot`, `operator raft remove-peer`, `monitor`, `exec`.
//! Where `CAIRN_CONSUL_BIN` names a Consul 1.8.7 binary, the same command line is also run with
//! Consul's CLI against the same cairn agent, and both must print the same (modulo IDs) and exit
//! with the same code.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Agent, cairn_bin, eventually};

/// One CLI run: exit code, stdout, stderr.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: Option<i32>,
    pub(crate) out: String,
    pub(crate) err: String,
}

fn run_with(bin: &std::ffi::OsStr, agent: &Agent, args: &[&str]) -> Run {
    let out: Output = Command::new(bin)
        .args(args)
        .env("CONSUL_HTTP_ADDR", agent.http.to_string())
        .env_remove("CAIRN_HTTP_ADDR")
        .env_remove("CONSUL_HTTP_TOKEN")
        .env_remove("CONSUL_HTTP_TOKEN_FILE")
        .output()
        .unwrap();
    Run {
        code: out.status.code(),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `cairn ARGS` against `agent`.
pub(crate) fn cairn(agent: &Agent, args: &[&str]) -> Run {
    run_with(cairn_bin().as_os_str(), agent, args)
}

/// UUIDs replaced by `<id>`, so two runs compare.
pub(crate) fn without_ids(text: &str) -> String {
    let re = regex::Regex::new("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}").unwrap();
    re.replace_all(text, "<id>").into_owned()
}

/// `cairn ARGS`, and Consul's CLI with the same ARGS when `CAIRN_CONSUL_BIN` is set: same exit
/// code, same stdout modulo IDs, cairn's first stderr line among Consul's (which adds its usage
/// text).
/// Returns cairn's run.
pub(crate) fn both(agent: &Agent, args: &[&str]) -> Run {
    both_after(agent, args, || {})
}

/// `both`, with `setup` run before each CLI (for a command that changes what it acts on).
pub(crate) fn both_after(agent: &Agent, args: &[&str], setup: impl Fn()) -> Run {
    setup();
    let ours = cairn(agent, args);
    if let Some(consul) = std::env::var_os("CAIRN_CONSUL_BIN") {
        setup();
        let theirs = run_with(&consul, agent, args);
        assert_eq!(ours.code, theirs.code, "exit code of {args:?}: cairn {ours:?}, consul {theirs:?}");
        assert_eq!(without_ids(&ours.out), without_ids(&theirs.out), "stdout of {args:?}");
        let first = ours.err.lines().next().unwrap_or_default();
        assert!(
            theirs.err.lines().any(|l| l == first) || first == theirs.err,
            "stderr of {args:?}: {ours:?} {theirs:?}"
        );
    }
    ours
}

/// `both`, which must exit 0; stdout.
pub(crate) fn ok(agent: &Agent, args: &[&str]) -> String {
    let r = both(agent, args);
    assert_eq!(r.code, Some(0), "{args:?}: {r:?}");
    r.out
}

/// `both`, which must exit 1; stderr's first line.
pub(crate) fn fails(agent: &Agent, args: &[&str]) -> String {
    let r = both(agent, args);
    assert_eq!(r.code, Some(1), "{args:?}: {r:?}");
    r.err.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn event_fires_with_consuls_flags_and_errors() {
    let agent = Agent::dev(&[]);
    let out = ok(&agent, &["event", "-name=deploy", "v1.2"]);
    let id = out.strip_prefix("Event ID: ").unwrap().trim().to_owned();
    assert_eq!(without_ids(&out), "Event ID: <id>\n");
    let (_, list) = agent.get("/v1/event/list?name=deploy").unwrap();
    let ev = list.as_array().unwrap().iter().find(|e| e["ID"] == id.as_str()).expect("fired event listed");
    assert_eq!(ev["Payload"], "djEuMg==");
    // Filters travel as query parameters (the agent matches them: it runs a "web" tagged
    // "prod"); the double-dash spelling works too.
    agent.put_ok("/v1/agent/service/register", r#"{"Name": "web", "Tags": ["prod"]}"#);
    ok(&agent, &["event", "--name", "restart", "-node=^node1$", "-service=web", "-tag=prod"]);
    let (_, list) = agent.get("/v1/event/list?name=restart").unwrap();
    let ev = &list.as_array().unwrap()[0];
    assert_eq!((ev["NodeFilter"].as_str(), ev["ServiceFilter"].as_str()), (Some("^node1$"), Some("web")));
    assert_eq!(ev["TagFilter"], "prod");
    assert_eq!(fails(&agent, &["event"]), "Event name must be specified");
    assert_eq!(
        fails(&agent, &["event", "-name=x", "-tag=a"]),
        "Cannot provide tag filter without service filter."
    );
    assert_eq!(fails(&agent, &["event", "-name=x", "a", "b"]), "Too many command line arguments.");
    let bad = cairn(&agent, &["event", "-name=x", "-node=("]);
    assert_eq!(bad.code, Some(1));
    assert!(bad.err.starts_with("Failed to compile node filter regexp: error parsing regexp: "), "{bad:?}");
}

#[test]
fn maint_enables_lists_and_disables() {
    let agent = Agent::dev(&[]);
    agent.put_ok("/v1/agent/service/register", r#"{"Name": "web", "ID": "web1", "Port": 80}"#);
    assert_eq!(ok(&agent, &["maint"]), "");
    assert_eq!(
        ok(&agent, &["maint", "-enable", "-reason", "disk swap"]),
        "Node maintenance is now enabled\n"
    );
    assert_eq!(
        ok(&agent, &["maint", "-enable", "-service=web1", "-reason=deploy"]),
        "Service maintenance is now enabled for \"web1\"\n"
    );
    // Consul prints the entries in its map's random order, cairn node first: compared as sets.
    let listed = cairn(&agent, &["maint"]);
    assert_eq!(
        listed.out,
        "Node:\n  Name:   node1\n  Reason: disk swap\n\nService:\n  ID:     web1\n  Reason: deploy\n\n"
    );
    if let Some(consul) = std::env::var_os("CAIRN_CONSUL_BIN") {
        let blocks = |s: &str| {
            let mut b: Vec<String> = s.split("\n\n").map(str::to_owned).collect();
            b.sort();
            b
        };
        assert_eq!(blocks(&run_with(&consul, &agent, &["maint"]).out), blocks(&listed.out));
    }
    let (_, checks) = agent.get("/v1/agent/checks").unwrap();
    assert_eq!(checks["_node_maintenance"]["Status"], "critical");
    assert_eq!(ok(&agent, &["maint", "-disable"]), "Node maintenance is now disabled\n");
    assert_eq!(
        ok(&agent, &["maint", "-disable", "-service", "web1"]),
        "Service maintenance is now disabled for \"web1\"\n"
    );
    assert_eq!(ok(&agent, &["maint"]), "");
    assert_eq!(
        fails(&agent, &["maint", "-enable", "-disable"]),
        "Only one of -enable or -disable may be provided"
    );
    assert_eq!(fails(&agent, &["maint", "-reason=x"]), "Reason may only be provided with -enable");
    assert_eq!(fails(&agent, &["maint", "-service=web1"]), "Service requires either -enable or -disable");
    assert_eq!(
        fails(&agent, &["maint", "-enable", "-service=nope"]),
        "Error enabling service maintenance: Unexpected response code: 404 (No service registered with ID \"nope\")"
    );
}

#[test]
fn operator_autopilot_and_raft_remove_peer() {
    let agent = Agent::dev(&[]);
    let before = ok(&agent, &["operator", "autopilot", "get-config"]);
    assert_eq!(
        before,
        "CleanupDeadServers = true\nLastContactThreshold = 200ms\nMaxTrailingLogs = 250\nMinQuorum = 0\n\
         ServerStabilizationTime = 10s\nRedundancyZoneTag = \"\"\nDisableUpgradeMigration = false\n\
         UpgradeVersionTag = \"\"\n"
    );
    let set =
        ["operator", "autopilot", "set-config", "-cleanup-dead-servers=false", "-max-trailing-logs=300"];
    assert_eq!(ok(&agent, &set), "Configuration updated!\n");
    assert_eq!(
        ok(
            &agent,
            &["operator", "autopilot", "set-config", "-last-contact-threshold=300ms", "-min-quorum", "1"]
        ),
        "Configuration updated!\n"
    );
    let after = ok(&agent, &["operator", "autopilot", "get-config"]);
    assert!(
        after.starts_with(
            "CleanupDeadServers = false\nLastContactThreshold = 300ms\nMaxTrailingLogs = 300\nMinQuorum = 1\n"
        ),
        "{after}"
    );
    assert_eq!(
        fails(&agent, &["operator", "autopilot", "set-config", "-last-contact-threshold=xx"]),
        "Failed to parse args: invalid value \"xx\" for flag -last-contact-threshold: time: invalid duration \"xx\""
    );
    assert_eq!(
        fails(&agent, &["operator", "raft", "remove-peer"]),
        "Error removing peer: an address or id is required for the peer to remove"
    );
    assert_eq!(
        fails(&agent, &["operator", "raft", "remove-peer", "-address=1.2.3.4:5", "-id=x"]),
        "Error removing peer: cannot give both an address and id"
    );
    assert_eq!(
        fails(&agent, &["operator", "raft", "remove-peer", "-address=1.2.3.4:5"]),
        "Error removing peer: Unexpected response code: 500 (address \"1.2.3.4:5\" was not found in the Raft configuration)"
    );
}

#[test]
fn force_leave_rtt_and_exec() {
    let agent = Agent::dev(&[]);
    assert_eq!(fails(&agent, &["force-leave"]), "A single node name must be specified to force leave.");
    let r = cairn(&agent, &["force-leave", "-prune", "nobody"]);
    assert_eq!(r.code, Some(1));
    assert!(
        r.err.starts_with("Error force leaving: Unexpected response code: 404 (agent: No node found"),
        "{r:?}"
    );
    assert_eq!(fails(&agent, &["rtt"]), "One or two node names must be specified");
    assert_eq!(fails(&agent, &["rtt", "nobody"]), "Could not find a coordinate for node \"nobody\"");
    // The agent's own coordinate reaches the catalog shortly after start.
    eventually("node1's coordinate", || cairn(&agent, &["rtt", "node1"]).code == Some(0));
    let out = ok(&agent, &["rtt", "node1"]);
    let re = regex::Regex::new(r"^Estimated node1 <-> node1 rtt: \d+\.\d{3} ms \(using LAN coordinates\)\n$")
        .unwrap();
    assert!(re.is_match(&out), "{out}");
    let wan = ok(&agent, &["rtt", "-wan", "node1.dc1"]);
    assert!(wan.ends_with("ms (using WAN coordinates)\n"), "{wan}");
    assert_eq!(
        fails(&agent, &["rtt", "-wan", "node1"]),
        "Node names must be specified as <node name>.<datacenter> with -wan"
    );
    let r = cairn(&agent, &["exec", "uptime"]);
    assert_eq!(r.code, Some(1));
    assert!(r.err.starts_with("Remote execution is disabled"), "{r:?}");
}

#[test]
fn monitor_streams_the_log_until_interrupted() {
    let agent = Agent::dev(&[]);
    let bad = fails(&agent, &["monitor", "-log-level=bogus"]);
    assert_eq!(
        bad,
        "Error starting monitor: Unexpected response code: 400 (Bad request: Unknown log level: bogus)"
    );
    for (args, want) in
        [(vec!["monitor"], "[INFO]  "), (vec!["monitor", "-log-json"], "\"@message\":\"Synced service\"")]
    {
        let mut child = Command::new(cairn_bin())
            .args(&args)
            .env("CONSUL_HTTP_ADDR", agent.http.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Give the stream a moment to attach, then log something.
        std::thread::sleep(Duration::from_millis(500));
        let name = format!("mon{}", args.len());
        agent.put_ok("/v1/agent/service/register", &format!(r#"{{"Name": "{name}"}}"#));
        let started = Instant::now();
        let mut seen = false;
        for line in lines {
            let line = line.unwrap();
            if line.contains("Synced service") && line.contains(&name) {
                assert!(line.contains(want), "{line}");
                seen = true;
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "no sync logged");
        }
        assert!(seen);
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap();
        assert_eq!(child.wait().unwrap().code(), Some(0), "{args:?}");
    }
}

#[test]
fn services_register_from_flags_or_files_and_deregister() {
    let agent = Agent::dev(&[]);
    let flags = [
        "services",
        "register",
        "-name=web",
        "-port=80",
        "-tag=a",
        "-tag",
        "b",
        "-meta=k=v",
        "-meta",
        "x=y",
        "-address=10.0.0.9",
        "-tagged-address=lan=10.0.0.1:81",
    ];
    assert_eq!(ok(&agent, &flags), "Registered service: web\n");
    let (_, svc) = agent.get("/v1/agent/service/web").unwrap();
    assert_eq!(svc["Tags"], serde_json::json!(["a", "b"]));
    assert_eq!(svc["Meta"], serde_json::json!({"k": "v", "x": "y"}));
    assert_eq!((svc["Port"].as_u64(), svc["Address"].as_str()), (Some(80), Some("10.0.0.9")));
    assert_eq!(svc["TaggedAddresses"]["lan"], serde_json::json!({"Address": "10.0.0.1", "Port": 81}));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("db.json");
    std::fs::write(&file, r#"{"service": {"name": "db", "id": "db-1", "port": 5432}}"#).unwrap();
    let file = file.to_str().unwrap();
    assert_eq!(ok(&agent, &["services", "register", file]), "Registered service: db\n");
    assert_eq!(agent.get("/v1/agent/service/db-1").unwrap().0, 200);
    assert_eq!(
        fails(&agent, &["services", "register"]),
        "Service registration requires at least one argument or flags."
    );
    assert_eq!(
        fails(&agent, &["services", "register", "-name=x", file]),
        "Service registration requires arguments or -id, not both."
    );
    assert_eq!(
        fails(&agent, &["services", "register", "-name=x", "-tagged-address=lan=1.2.3.4"]),
        "Invalid Tagged Address: address 1.2.3.4: missing port in address"
    );
    let r = cairn(&agent, &["services", "register", "-name=x", "-meta=kv"]);
    assert_eq!(
        (r.code, r.err.trim()),
        (Some(1), "invalid value \"kv\" for flag -meta: Missing \"=\" value in argument: kv")
    );
    let db = || drop(agent.put_ok("/v1/agent/service/register", r#"{"Name": "db", "ID": "db-1"}"#));
    let r = both_after(&agent, &["services", "deregister", file], db);
    assert_eq!((r.code, r.out.as_str()), (Some(0), "Deregistered service: db-1\n"));
    let web = || drop(agent.put_ok("/v1/agent/service/register", r#"{"Name": "web"}"#));
    let r = both_after(&agent, &["services", "deregister", "-id", "web"], web);
    assert_eq!((r.code, r.out.as_str()), (Some(0), "Deregistered service: web\n"));
    assert_eq!(
        fails(&agent, &["services", "deregister"]),
        "Service deregistration requires at least one argument or -id."
    );
    assert_eq!(agent.get("/v1/agent/service/web").unwrap().0, 404);
}

#[test]
fn a_symlink_named_consul_is_consuls_cli() {
    let agent = Agent::dev(&[]);
    let dir = tempfile::tempdir().unwrap();
    let consul = dir.path().join("consul");
    std::os::unix::fs::symlink(cairn_bin(), &consul).unwrap();
    let r = run_with(consul.as_os_str(), &agent, &["version"]);
    assert!(r.out.starts_with("Consul v"), "{r:?}");
    assert!(r.out.contains("\nProtocol 2 spoken by default"), "{r:?}");
    let r = run_with(consul.as_os_str(), &agent, &["kv", "put", "-flags=42", "app/x", "1"]);
    assert_eq!((r.code, r.out.as_str()), (Some(0), "Success! Data written to: app/x\n"), "{r:?}");
    let r = run_with(consul.as_os_str(), &agent, &["members"]);
    assert!(r.out.starts_with("Node "), "{r:?}");
    let r = run_with(consul.as_os_str(), &agent, &["nosuchverb"]);
    assert!(r.err.contains("consul"), "the errors name consul: {r:?}");
    // `consul agent` takes Consul's single-dash flags.
    let r = run_with(consul.as_os_str(), &agent, &["agent", "-help"]);
    assert!(!r.err.contains("unexpected argument '-d'"), "{r:?}");
}

/// `cairn lock` follows Consul's lock protocol: the key holds Consul's lock flags while held,
/// is deleted on release, and a key that is not a lock is refused; Consul's `consul lock` and
/// cairn's take the same key one after the other (behind `CAIRN_CONSUL_BIN`).
#[test]
fn lock_uses_consuls_flags_and_deletes_its_key() {
    let agent = Agent::dev(&[]);
    let lock_flag = 0x2ddc_cbc0_58a5_0c18_u64;
    let url = format!("http://{}/v1/kv/svc/leader/.lock", agent.http);
    let held = cairn(&agent, &["lock", "svc/leader", &format!("curl -s {url}")]);
    assert_eq!(held.code, Some(0), "{held:?}");
    let entry: serde_json::Value = serde_json::from_str(&held.out).unwrap();
    assert_eq!(entry[0]["Flags"].as_u64(), Some(lock_flag), "{entry}");
    assert!(entry[0]["Session"].is_string(), "{entry}");
    assert_eq!(agent.get("/v1/kv/svc/leader/.lock").unwrap().0, 404, "released lock key deleted");
    assert_eq!(agent.get("/v1/session/list").unwrap().1, serde_json::json!([]));
    agent.put_ok("/v1/kv/other/.lock", "not a lock");
    let r = cairn(&agent, &["lock", "other", "true"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(r.err.trim(), "Lock acquisition failed: Existing key does not match lock use");
    if let Some(consul) = std::env::var_os("CAIRN_CONSUL_BIN") {
        let theirs = run_with(&consul, &agent, &["lock", "svc/leader", "true"]);
        assert_eq!(theirs.code, Some(0), "{theirs:?}");
        assert_eq!(agent.get("/v1/kv/svc/leader/.lock").unwrap().0, 404, "Consul deleted the key too");
        let theirs = run_with(&consul, &agent, &["lock", "-timeout=2s", "other", "true"]);
        assert_eq!(theirs.code, Some(1), "{theirs:?}");
        assert!(theirs.err.contains("Existing key does not match lock use"), "{theirs:?}");
        // Consul's CLI holding the key, cairn's waits for it, then takes it.
        // Causal, not timed: Consul's holder marks its release, and cairn's child succeeds only
        // if the mark is there when cairn holds the lock.
        let mark = tempfile::tempdir().unwrap();
        let released = mark.path().join("released");
        let hold = format!("sleep 1 && touch {}", released.display());
        let mut holder = Command::new(&consul)
            .args(["lock", "svc/leader", &hold])
            .env("CONSUL_HTTP_ADDR", agent.http.to_string())
            .spawn()
            .unwrap();
        eventually("consul lock holds the key", || agent.get("/v1/kv/svc/leader/.lock").unwrap().0 == 200);
        let check = format!("test -f {}", released.display());
        let ours = cairn(&agent, &["lock", "svc/leader", &check]);
        assert_eq!(ours.code, Some(0), "cairn ran its child before Consul's holder let go: {ours:?}");
        assert_eq!(holder.wait().unwrap().code(), Some(0));
        assert_eq!(agent.get("/v1/kv/svc/leader/.lock").unwrap().0, 404);
    }
}
