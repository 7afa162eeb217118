//! `/debug/pprof/*` on a real agent: real profiles of the cairn process (CPU, heap, threads,
//! trace) decoded here, Go's `go tool pprof` reading them when Go is installed, and Consul
//! 1.8.7's access rules (checked live against its binary): 401 `ACL support disabled` with
//! ACLs off and `enable_debug` off, `operator:read` with ACLs on, 403 with an empty body for
//! an unknown or insufficient token.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pprof::protos::Message as _;
use serde_json::Value;

use crate::support::{Agent, block, http_client};

/// GET with an optional token: (status, headers, body bytes).
fn get(agent: &Agent, path: &str, token: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    block(async {
        let mut r =
            http_client().get(format!("http://{}{}", agent.http, path)).timeout(Duration::from_secs(60));
        if !token.is_empty() {
            r = r.header("X-Consul-Token", token);
        }
        let r = r.send().await.unwrap();
        let (status, headers) = (r.status().as_u16(), r.headers().clone());
        (status, headers, r.bytes().await.unwrap().to_vec())
    })
}

fn header<'a>(h: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// A gzipped pprof protobuf, decoded.
fn decode(gz: &[u8]) -> pprof::protos::Profile {
    assert_eq!(&gz[..2], &[0x1f, 0x8b], "gzip, as Go serves profiles");
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(gz).read_to_end(&mut raw).unwrap();
    pprof::protos::Profile::decode(raw.as_slice()).unwrap()
}

fn sample_types(p: &pprof::protos::Profile) -> Vec<String> {
    p.sample_type.iter().map(|t| p.string_table[t.ty as usize].clone()).collect()
}

/// Every function name some sample's stack passes through.
fn sampled_functions(p: &pprof::protos::Profile) -> Vec<String> {
    let mut out = Vec::new();
    for s in &p.sample {
        for id in &s.location_id {
            let loc = p.location.iter().find(|l| l.id == *id).unwrap();
            for line in &loc.line {
                let f = p.function.iter().find(|f| f.id == line.function_id).unwrap();
                out.push(p.string_table[f.name as usize].clone());
            }
        }
    }
    out
}

/// Keeps the agent busy with HTTP reads from another thread until the flag is set.
fn load(agent: &Agent) -> (Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let url = format!("http://{}/v1/catalog/services", agent.http);
    let stop = Arc::new(AtomicBool::new(false));
    let done = stop.clone();
    let handle = std::thread::spawn(move || {
        block(async {
            let c = http_client();
            while !done.load(Ordering::Relaxed) {
                let _ = c.get(&url).send().await;
            }
        });
    });
    (stop, handle)
}

/// GET under load: the agent serves reads meanwhile.
fn get_loaded(agent: &Agent, path: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let (stop, busy) = load(agent);
    let out = get(agent, path, "");
    stop.store(true, Ordering::Relaxed);
    busy.join().unwrap();
    out
}

/// Go's toolchain, if installed (tests/consul-api/run installs Debian's).
fn go() -> Option<PathBuf> {
    let candidates = ["/usr/lib/go-1.19/bin/go", "/usr/lib/go/bin/go", "/usr/bin/go", "/usr/local/go/bin/go"];
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}

/// `go tool pprof -top` on a profile file; `None` (with the reason printed) without Go.
fn pprof_top(dir: &Path, name: &str, bytes: &[u8]) -> Option<String> {
    let Some(go) = go() else {
        eprintln!("skipping `go tool pprof -top` on {name}: no Go toolchain installed");
        return None;
    };
    let file = dir.join(name);
    std::fs::write(&file, bytes).unwrap();
    let out = std::process::Command::new(go)
        .args(["tool", "pprof", "-top"])
        .arg(&file)
        .env("HOME", dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "go tool pprof: {}", String::from_utf8_lossy(&out.stderr));
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn cpu_and_heap_profiles_are_real_and_readable_by_go_tool_pprof() {
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::dev(&[]);
    let (status, h, body) = get_loaded(&agent, "/debug/pprof/profile?seconds=2");
    assert_eq!(status, 200);
    assert_eq!(header(&h, "content-type"), "application/octet-stream");
    assert_eq!(header(&h, "content-disposition"), "attachment; filename=\"profile\"");
    let cpu = decode(&body);
    assert_eq!(sample_types(&cpu), ["samples", "cpu"]);
    assert_eq!(cpu.period, 10_000_000, "100 Hz, Go's rate");
    let names = sampled_functions(&cpu);
    assert!(names.iter().any(|n| n.contains("cairn::http")), "CPU samples in cairn's HTTP code: {names:?}");
    assert!(!names.iter().any(|n| n.contains("perf_signal_handler")), "the sampler's frames are cut");
    if let Some(top) = pprof_top(dir.path(), "cpu.pb.gz", &body) {
        assert!(top.contains("Type: cpu") && top.contains("cairn::"), "{top}");
    }

    let (status, h, body) = get(&agent, "/debug/pprof/heap", "");
    assert_eq!((status, header(&h, "content-disposition")), (200, "attachment; filename=\"heap\""));
    let heap = decode(&body);
    assert_eq!(sample_types(&heap), ["alloc_objects", "alloc_space", "inuse_objects", "inuse_space"]);
    assert_eq!(heap.period, 512 * 1024);
    assert!(heap.sample.iter().any(|s| s.value[3] > 0), "some sampled memory is live");
    let names = sampled_functions(&heap);
    assert!(names.iter().any(|n| n.contains("cairn::")), "{names:?}");
    assert!(!names.iter().any(|n| n.contains("SamplingAlloc")), "allocator frames are cut");
    if let Some(top) = pprof_top(dir.path(), "heap.pb.gz", &body) {
        assert!(top.contains("Type: inuse_space"), "{top}");
    }
    let (status, _, text) = get(&agent, "/debug/pprof/heap?debug=1", "");
    let text = String::from_utf8(text).unwrap();
    assert!(status == 200 && text.starts_with("heap profile: ") && text.contains("@ heap/1048576"), "{text}");
}

#[test]
fn goroutine_lists_threads_and_trace_holds_the_window() {
    let agent = Agent::dev(&[]);
    let (status, _, body) = get(&agent, "/debug/pprof/goroutine", "");
    assert_eq!(status, 200);
    let threads = decode(&body);
    assert_eq!(sample_types(&threads), ["goroutine"]);
    assert!(threads.sample.len() >= 2, "the main thread and the runtime's workers");
    let names = sampled_functions(&threads);
    assert!(names.iter().any(|n| n.starts_with("thread tokio")), "{names:?}");
    let (_, _, text) = get(&agent, "/debug/pprof/goroutine?debug=1", "");
    let text = String::from_utf8(text).unwrap();
    assert!(text.starts_with("thread profile: total ") && text.contains("async tasks: "), "{text}");
    let (_, _, text) = get(&agent, "/debug/pprof/goroutine?debug=2", "");
    assert!(String::from_utf8(text).unwrap().contains("cpu: user "));

    let (status, h, body) = get_loaded(&agent, "/debug/pprof/trace?seconds=1");
    assert_eq!((status, header(&h, "content-disposition")), (200, "attachment; filename=\"trace\""));
    let doc: Value = serde_json::from_slice(&body).unwrap();
    let events = doc["traceEvents"].as_array().unwrap();
    assert!(events.iter().any(|e| e["ph"] == "M" && e["name"] == "thread_name"), "tracks are named");
    assert!(events.iter().any(|e| e["ph"] == "i" || e["ph"] == "B"), "spans or events of the window");
}

#[test]
fn index_errors_and_one_profile_at_a_time_as_go() {
    let agent = Agent::dev(&[]);
    let (status, h, _) = get(&agent, "/debug/pprof", "");
    // reqwest follows the redirect to the index.
    assert_eq!((status, header(&h, "content-type")), (200, "text/html; charset=utf-8"));
    let (_, _, index) = get(&agent, "/debug/pprof/", "");
    let index = String::from_utf8(index).unwrap();
    for name in ["allocs", "cmdline", "goroutine", "heap", "profile", "trace"] {
        assert!(index.contains(&format!(">{name}</a>")), "{name} listed: {index}");
    }
    for unknown in ["nosuch", "heap/x", "block", "mutex", "threadcreate"] {
        let (status, h, body) = get(&agent, &format!("/debug/pprof/{unknown}"), "");
        assert_eq!((status, body.as_slice()), (404, &b"Unknown profile\n"[..]), "{unknown}");
        assert_eq!(header(&h, "x-go-pprof"), "1");
    }
    let (_, _, cmdline) = get(&agent, "/debug/pprof/cmdline", "");
    assert!(String::from_utf8(cmdline).unwrap().contains("agent\0--dev"));

    let url = format!("http://{}/debug/pprof/profile?seconds=3", agent.http);
    let first =
        std::thread::spawn(move || block(async { http_client().get(url).send().await.unwrap().status() }));
    std::thread::sleep(Duration::from_millis(1500));
    let (status, h, body) = get(&agent, "/debug/pprof/profile?seconds=1", "");
    assert_eq!(status, 500);
    assert_eq!(
        String::from_utf8(body).unwrap(),
        "Could not enable CPU profiling: cpu profiling already in use\n"
    );
    assert_eq!(header(&h, "content-type"), "text/plain; charset=utf-8");
    assert_eq!(first.join().unwrap(), 200);
}

#[test]
fn access_without_enable_debug_and_under_acls_is_consuls() {
    let dir = tempfile::tempdir().unwrap();
    let plain = Agent::server(&dir.path().join("plain"), &[]);
    let (status, h, body) = get(&plain, "/debug/pprof/heap", "");
    assert_eq!((status, body.as_slice()), (401, &b"ACL support disabled"[..]));
    assert_eq!(header(&h, "content-type"), "text/plain; charset=utf-8");
    // The gate covers the pprof routes only: an unknown API path is still a plain 404.
    assert_eq!(get(&plain, "/v1/no/such/route", "").0, 404);
    drop(plain);

    let on = dir.path().join("debug.json");
    std::fs::write(&on, r#"{"enable_debug": true}"#).unwrap();
    let debug = Agent::server(&dir.path().join("debug"), &["--config-file", on.to_str().unwrap()]);
    assert_eq!(get(&debug, "/debug/pprof/goroutine", "").0, 200);
    drop(debug);

    let acl = dir.path().join("acl.json");
    std::fs::write(&acl, r#"{"acl":{"enabled":true,"default_policy":"deny"}}"#).unwrap();
    let agent = Agent::server(&dir.path().join("acl"), &["--config-file", acl.to_str().unwrap()]);
    let (status, body) = agent.put("/v1/acl/bootstrap", "");
    assert_eq!(status, 200, "{body}");
    let mgmt = serde_json::from_str::<Value>(&body).unwrap()["SecretID"].as_str().unwrap().to_owned();
    let operator = token_with(&agent, &mgmt, "op", r#"operator = "read""#);
    let nodes = token_with(&agent, &mgmt, "nodes", r#"node_prefix "" { policy = "write" }"#);
    for (token, want) in [
        ("", 403),
        ("no-such-token", 403),
        (nodes.as_str(), 403),
        (operator.as_str(), 200),
        (mgmt.as_str(), 200),
    ] {
        let (status, _, body) = get(&agent, "/debug/pprof/heap", token);
        assert_eq!(status, want, "token {token:?}");
        if want == 403 {
            assert!(body.is_empty(), "Consul's 403 here has no body");
        }
    }
}

/// A policy with `rules` and a token linked to it; the token's secret.
fn token_with(agent: &Agent, mgmt: &str, name: &str, rules: &str) -> String {
    let put = |path: &str, body: String| {
        block(async {
            let r = http_client()
                .put(format!("http://{}{}", agent.http, path))
                .header("X-Consul-Token", mgmt)
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200);
            r.text().await.unwrap()
        })
    };
    put("/v1/acl/policy", serde_json::json!({"Name": name, "Rules": rules}).to_string());
    let out = put("/v1/acl/token", serde_json::json!({"Policies": [{"Name": name}]}).to_string());
    serde_json::from_str::<Value>(&out).unwrap()["SecretID"].as_str().unwrap().to_owned()
}
