//! KV store, sessions and locks against live agents: durability across `kill -9`, hostile key
//! paths on a raw socket, `?raw` headers, the `cairn kv` CLI, and `cairn lock` processes taking
//! turns on one lock (including a holder killed with `kill -9`, whose lock passes on only after
//! its session's TTL and lock-delay).

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Agent, cairn_bin};

fn cli(agent: &Agent, args: &[&str]) -> Output {
    Command::new(cairn_bin()).args(args).env("CAIRN_HTTP_ADDR", agent.http.to_string()).output().unwrap()
}

fn cli_ok(agent: &Agent, args: &[&str]) -> String {
    let out = cli(agent, args);
    assert!(out.status.success(), "cairn {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A raw HTTP/1.1 request line (no client-side path normalisation); returns the status line.
fn raw_status(agent: &Agent, method: &str, path: &str) -> String {
    let mut s = TcpStream::connect(agent.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: close\r\n\r\nv")
        .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn kv_writes_and_locks_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut agent = Agent::server(dir.path(), &[]);
    let bodies: Vec<String> = (0..60).map(|i| format!("value-{i}")).collect();
    // Concurrent PUTs (group commit), each to its own key.
    std::thread::scope(|s| {
        for t in 0..4 {
            let (agent, bodies) = (&agent, &bodies);
            s.spawn(move || {
                for i in (t..bodies.len()).step_by(4) {
                    assert_eq!(agent.put_ok(&format!("/v1/kv/d/{i:03}"), &bodies[i]), "true");
                }
            });
        }
    });
    let (_, created) = {
        let (s, body) = agent.put("/v1/session/create", r#"{"LockDelay":"0s"}"#);
        (s, serde_json::from_str::<Value>(&body).unwrap())
    };
    let sid = created["ID"].as_str().unwrap().to_owned();
    assert_eq!(agent.put_ok(&format!("/v1/kv/d/lock?acquire={sid}"), "me"), "true");
    agent.put_ok("/v1/kv/d/000", "");
    agent.kill9();

    let agent = Agent::server(dir.path(), &[]);
    let (status, entries) = agent.get("/v1/kv/d/?recurse").unwrap();
    assert_eq!(status, 200, "{}", agent.log());
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 61);
    assert_eq!(entries[0]["Value"], Value::Null, "the last write of d/000 (empty) was kept");
    assert_eq!(entries[1]["Key"], "d/001");
    assert_eq!(entries[60]["Session"], sid.as_str());
    let (_, info) = agent.get(&format!("/v1/session/info/{sid}")).unwrap();
    assert_eq!(info[0]["ID"], sid.as_str());
}

#[test]
fn path_tricks_are_400_and_raw_values_cannot_be_sniffed() {
    let agent = Agent::dev(&[]);
    for path in
        ["/v1/kv/a/../b", "/v1/kv/a/%2e%2e/b", "/v1/kv/./a", "/v1/kv/%20a", "/v1/kv/a%00b", "/v1/kv/a/.."]
    {
        assert!(raw_status(&agent, "PUT", path).contains(" 400 "), "PUT {path}");
        assert!(raw_status(&agent, "GET", path).contains(" 400 "), "GET {path}");
    }
    assert!(raw_status(&agent, "PUT", "/v1/kv/a/..b/c").contains(" 200 "), "dots inside a segment are fine");

    agent.put_ok("/v1/kv/page", "<html><script>alert(1)</script></html>");
    let (status, headers, body) = agent.get_full("/v1/kv/page?raw").unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, "<html><script>alert(1)</script></html>");
    assert_eq!(headers["content-type"], "application/octet-stream");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["content-security-policy"], "sandbox");
}

#[test]
fn kv_cli_puts_gets_exports_and_imports_in_consul_format() {
    let agent = Agent::dev(&[]);
    cli_ok(&agent, &["kv", "put", "--flags", "5", "cfg/db/url", "postgres://x"]);
    cli_ok(&agent, &["kv", "put", "cfg/name with space", "v"]);
    assert_eq!(cli_ok(&agent, &["kv", "get", "cfg/db/url"]), "postgres://x\n");
    assert_eq!(cli_ok(&agent, &["kv", "get", "--keys", "cfg/"]), "cfg/db/\ncfg/name with space\n");
    let missing = cli(&agent, &["kv", "get", "cfg/none"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("No key exists at: cfg/none"));

    let export = cli_ok(&agent, &["kv", "export", "cfg/"]);
    let parsed: Value = serde_json::from_str(&export).unwrap();
    assert_eq!(parsed[0], serde_json::json!({"key": "cfg/db/url", "flags": 5, "value": "cG9zdGdyZXM6Ly94"}));
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &export).unwrap();
    cli_ok(&agent, &["kv", "delete", "--recurse", "cfg/"]);
    assert_eq!(agent.get("/v1/kv/cfg/?recurse").unwrap().0, 404);
    cli_ok(&agent, &["kv", "import", &format!("@{}", file.path().display())]);
    let (_, entries) = agent.get("/v1/kv/cfg/db/url").unwrap();
    assert_eq!(entries[0]["Flags"], 5);
    assert_eq!(cli_ok(&agent, &["kv", "export", "cfg/"]), export);
}

fn lock_process(agent: &Agent, log: &Path, name: &str, hold: &str, extra: &[&str]) -> Child {
    let script = format!(
        "echo $$ > {log}.{name}.pid; echo start {name} >> {log}; sleep {hold}; echo end {name} >> {log}",
        log = log.display()
    );
    Command::new(cairn_bin())
        .arg("lock")
        .args(extra)
        .args(["election", &script])
        .env("CAIRN_HTTP_ADDR", agent.http.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// `start X` / `end X` pairs never interleave.
fn check_exclusive(log: &str) -> Vec<String> {
    let mut holders = Vec::new();
    let mut current: Option<&str> = None;
    for line in log.lines() {
        match line.split_once(' ') {
            Some(("start", n)) => {
                assert!(current.is_none(), "{n} started while {current:?} held the lock:\n{log}");
                current = Some(n);
                holders.push(n.to_owned());
            }
            Some(("end", n)) => {
                assert_eq!(current, Some(n), "unexpected end:\n{log}");
                current = None;
            }
            _ => panic!("bad log line {line:?}"),
        }
    }
    holders
}

#[test]
fn three_cairn_lock_processes_take_turns() {
    let agent = Agent::dev(&[]);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let procs: Vec<Child> = (0..3)
        .map(|i| lock_process(&agent, &log, &format!("p{i}"), "0.3", &["--lock-delay", "0s"]))
        .collect();
    for p in procs {
        let out = p.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let mut holders = check_exclusive(&std::fs::read_to_string(&log).unwrap());
    holders.sort();
    assert_eq!(holders, ["p0", "p1", "p2"]);
    // Every session was destroyed and the lock released on exit.
    let (_, sessions) = agent.get("/v1/session/list").unwrap();
    assert_eq!(sessions, serde_json::json!([]));
    // Consul's lock protocol: the released key is deleted.
    assert_eq!(agent.get("/v1/kv/election/.lock").unwrap().0, 404);
}

#[test]
fn a_killed_lock_holder_keeps_the_lock_until_its_ttl_lapses_then_lock_delay() {
    let agent = Agent::dev(&[]);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let opts = ["--session-ttl", "10s", "--lock-delay", "2s"];
    let mut holder = lock_process(&agent, &log, "dead", "60", &opts);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("start dead") {
        assert!(Instant::now() < deadline, "first holder never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    // kill -9 `cairn lock` (no chance to release or destroy its session) and its command's
    // shell (whose `sleep` is left to finish silently).
    holder.kill().unwrap();
    holder.wait().unwrap();
    let shell = std::fs::read_to_string(format!("{}.dead.pid", log.display())).unwrap();
    Command::new("kill").args(["-KILL", shell.trim()]).status().unwrap();
    let killed = Instant::now();
    let waiter = lock_process(&agent, &log, "next", "0", &opts);
    let out = waiter.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The dead holder's session lives until TTL (×2 grace at most), then lock-delay applies.
    assert!(killed.elapsed() >= Duration::from_secs(10), "lock passed on before the TTL");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.ends_with("start next\nend next\n"), "{text}");
}
