//! Moving a datacenter between Consul 1.8.7 and cairn through snapshots: a real Consul agent
//! (`CAIRN_CONSUL_BIN`, as CI sets it; skipped with a printed reason when unset) populated with
//! KV, nodes, services, checks, sessions, a prepared query, a config entry and ACL state,
//! saved with `consul snapshot save`, restored into a real cairn agent and compared key by
//! key, service by service, check by check; then cairn -> Consul -> cairn. Damaged archives
//! (truncated, a changed byte, not an archive) are refused with Consul's messages and leave
//! the catalog as it was; that part needs no Consul (cairn writes the archive).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Agent, block, cairn_bin, eventually, http_client};

const MASTER: &str = "11111111-2222-3333-4444-555555555555";

fn acl_config(dir: &Path) -> String {
    let p = dir.join("acl.json");
    let acl = json!({"acl": {"enabled": true, "default_policy": "allow", "tokens": {"master": MASTER}}});
    std::fs::write(&p, acl.to_string()).unwrap();
    p.to_str().unwrap().to_owned()
}

/// An HTTP request with the master token: (status, body).
fn req(addr: &str, method: reqwest::Method, path: &str, body: Vec<u8>) -> (u16, String) {
    block(async {
        let r = http_client()
            .request(method, format!("http://{addr}{path}"))
            .header("X-Consul-Token", MASTER)
            .body(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    })
}

fn get(addr: &str, path: &str) -> Value {
    let (s, body) = req(addr, reqwest::Method::GET, path, Vec::new());
    assert_eq!(s, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn put(addr: &str, path: &str, body: &Value) -> String {
    let (s, text) = req(addr, reqwest::Method::PUT, path, body.to_string().into_bytes());
    assert_eq!(s, 200, "PUT {path} {body}: {text}");
    text
}

/// A real Consul 1.8.7 dev agent with ACLs (default allow, the master token); killed on drop.
struct Consul {
    child: Child,
    http: String,
    node: String,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Consul {
    fn start(bin: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let acl = acl_config(dir.path());
        let ports: Vec<String> = (0..5).map(|_| free_port().to_string()).collect();
        let node = format!("consul-{}", ports[0]);
        let args = [
            "agent",
            "-dev",
            "-node",
            &node,
            "-config-file",
            &acl,
            "-http-port",
            &ports[0],
            "-dns-port",
            &ports[1],
            "-server-port",
            &ports[2],
            "-serf-lan-port",
            &ports[3],
            "-serf-wan-port",
            &ports[4],
            "-grpc-port",
            "-1",
        ];
        let log = std::fs::File::create(dir.path().join("consul.log")).unwrap();
        let child = Command::new(bin).args(args).stdout(log).stderr(Stdio::null()).spawn().unwrap();
        let consul = Self { child, http: format!("127.0.0.1:{}", ports[0]), node, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (s, body) = block(async {
                match http_client().get(format!("http://{}/v1/catalog/nodes", consul.http)).send().await {
                    Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
                    Err(_) => (0, String::new()),
                }
            });
            if s == 200 && body.contains(&consul.node) {
                return consul;
            }
            assert!(Instant::now() < deadline, "Consul did not start");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn cli(&self, bin: &Path, args: &[&str]) -> Output {
        Command::new(bin)
            .args(args)
            .env("CONSUL_HTTP_ADDR", &self.http)
            .env("CONSUL_HTTP_TOKEN", MASTER)
            .output()
            .unwrap()
    }
}

impl Drop for Consul {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn consul_bin() -> Option<std::path::PathBuf> {
    let bin = std::env::var_os("CAIRN_CONSUL_BIN").map(std::path::PathBuf::from);
    if bin.is_none() {
        eprintln!("CAIRN_CONSUL_BIN unset: Consul snapshot interop not checked");
    }
    bin
}

fn cairn(agent: &Agent, args: &[&str]) -> Output {
    Command::new(cairn_bin())
        .args(args)
        .env("CAIRN_HTTP_ADDR", agent.http.to_string())
        .env("CONSUL_HTTP_TOKEN", MASTER)
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// KV, two external nodes with services and checks, a session holding a lock, a prepared
/// query, a config entry, an ACL policy, role and token: through Consul's HTTP API, which
/// cairn serves too.
fn populate(addr: &str) -> String {
    put(addr, "/v1/kv/app/config?flags=42", &json!({"a": 1}));
    let (s, _) = req(addr, reqwest::Method::PUT, "/v1/kv/app/bin", vec![0, 159, 255, 10]);
    assert_eq!(s, 200);
    let (s, _) = req(addr, reqwest::Method::PUT, "/v1/kv/app/empty", Vec::new());
    assert_eq!(s, 200);
    let web = |node: &str, addr: &str, id: &str, status: &str| {
        json!({
            "Node": node, "Address": addr, "TaggedAddresses": {"wan": "198.51.100.1"}, "NodeMeta": {"rack": "r1"},
            "Service": {"ID": id, "Service": "web", "Tags": ["a", "b"], "Port": 8080, "Address": addr,
                "Meta": {"v": "1"}, "TaggedAddresses": {"lan": {"Address": addr, "Port": 8080}},
                "Weights": {"Passing": 3, "Warning": 2}, "EnableTagOverride": true},
            "Check": {"CheckID": format!("{id}-ck"), "Name": "web check", "Status": status, "ServiceID": id,
                "Notes": "n", "Output": "out",
                "Definition": {"HTTP": format!("http://{addr}:8080/h"), "Interval": "10s", "Timeout": "2s"}}
        })
    };
    put(addr, "/v1/catalog/register", &web("ext1", "10.1.1.1", "web1", "passing"));
    put(addr, "/v1/catalog/register", &web("ext2", "10.1.1.2", "web2", "warning"));
    put(
        addr,
        "/v1/catalog/register",
        &json!({"Node": "ext2", "Address": "10.1.1.2",
        "TaggedAddresses": {"wan": "198.51.100.1"}, "NodeMeta": {"rack": "r1"},
        "Check": {"CheckID": "disk", "Name": "disk", "Status": "critical", "Output": "full"}}),
    );
    put(
        addr,
        "/v1/catalog/register",
        &json!({"Node": "ext3", "Address": "10.1.1.3",
        "Check": {"CheckID": "alive", "Name": "alive", "Status": "passing"}}),
    );
    let session: Value = serde_json::from_str(&put(
        addr,
        "/v1/session/create",
        &json!({"Name": "s1", "Node": "ext3", "NodeChecks": ["alive"], "TTL": "3600s", "LockDelay": "5s",
            "Behavior": "delete"}),
    ))
    .unwrap();
    let id = session["ID"].as_str().unwrap().to_owned();
    let (s, body) =
        req(addr, reqwest::Method::PUT, &format!("/v1/kv/locked?acquire={id}&flags=7"), b"held".to_vec());
    assert_eq!((s, body.trim()), (200, "true"));
    let (s, body) = req(
        addr,
        reqwest::Method::POST,
        "/v1/query",
        json!({"Name": "q1", "Service": {"Service": "web", "OnlyPassing": true, "Tags": ["a"]}, "DNS": {"TTL": "10s"}})
            .to_string()
            .into_bytes(),
    );
    assert_eq!(s, 200, "{body}");
    put(addr, "/v1/config", &json!({"Kind": "service-defaults", "Name": "web", "Protocol": "http"}));
    put(
        addr,
        "/v1/acl/policy",
        &json!({"Name": "p1", "Description": "pd",
        "Rules": "key_prefix \"app/\" { policy = \"read\" }"}),
    );
    put(
        addr,
        "/v1/acl/role",
        &json!({"Name": "r1", "Policies": [{"Name": "p1"}],
        "ServiceIdentities": [{"ServiceName": "web"}]}),
    );
    let token: Value = serde_json::from_str(&put(
        addr,
        "/v1/acl/token",
        &json!({"Description": "t1",
        "Policies": [{"Name": "p1"}], "Roles": [{"Name": "r1"}]}),
    ))
    .unwrap();
    token["SecretID"].as_str().unwrap().to_owned()
}

/// What must survive a move, from an agent's HTTP API: KV (key, flags, value, lock), the
/// external nodes, their service instances and checks, sessions, queries, config entries and
/// ACL policies, roles and tokens (without indexes, hashes and times, which a move renumbers).
fn contents(addr: &str) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let ours = |n: &Value| n.as_str().is_some_and(|n| n.starts_with("ext"));
    let strip = |mut v: Value, keys: &[&str]| {
        for k in ["CreateIndex", "ModifyIndex", "Hash", "CreateTime", "ExpirationTime"].iter().chain(keys) {
            v.as_object_mut().map(|o| o.remove(*k));
        }
        v
    };
    for e in get(addr, "/v1/kv/?recurse").as_array().unwrap() {
        out.insert(format!("kv {}", e["Key"]), strip(e.clone(), &[]));
    }
    for n in get(addr, "/v1/catalog/nodes").as_array().unwrap().iter().filter(|n| ours(&n["Node"])) {
        let mut n = strip(n.clone(), &[]);
        // Consul shows a map a registration left unset as null, cairn as {}: the same data.
        for k in ["Meta", "TaggedAddresses"] {
            if n[k].is_null() {
                n[k] = json!({});
            }
        }
        out.insert(format!("node {}", n["Node"]), n);
    }
    for s in get(addr, "/v1/catalog/service/web").as_array().unwrap() {
        let keep = [
            "Node",
            "Address",
            "TaggedAddresses",
            "NodeMeta",
            "ServiceID",
            "ServiceName",
            "ServiceTags",
            "ServiceAddress",
            "ServicePort",
            "ServiceMeta",
            "ServiceWeights",
            "ServiceTaggedAddresses",
            "ServiceEnableTagOverride",
        ];
        let v: serde_json::Map<String, Value> =
            keep.iter().map(|k| ((*k).to_owned(), s[*k].clone())).collect();
        out.insert(format!("service {}/{}", s["Node"], s["ServiceID"]), Value::Object(v));
    }
    for c in get(addr, "/v1/health/state/any").as_array().unwrap().iter().filter(|c| ours(&c["Node"])) {
        let keep = [
            "Node",
            "CheckID",
            "Name",
            "Status",
            "Notes",
            "Output",
            "ServiceID",
            "ServiceName",
            "ServiceTags",
        ];
        let v: serde_json::Map<String, Value> =
            keep.iter().map(|k| ((*k).to_owned(), c[*k].clone())).collect();
        out.insert(format!("check {}/{}", c["Node"], c["CheckID"]), Value::Object(v));
    }
    for s in get(addr, "/v1/session/list").as_array().unwrap().iter().filter(|s| ours(&s["Node"])) {
        out.insert(format!("session {}", s["ID"]), strip(s.clone(), &[]));
    }
    for q in get(addr, "/v1/query").as_array().unwrap() {
        let v = json!({"ID": q["ID"], "Name": q["Name"], "Service": q["Service"]["Service"],
            "OnlyPassing": q["Service"]["OnlyPassing"], "Tags": q["Service"]["Tags"], "TTL": q["DNS"]["TTL"]});
        out.insert(format!("query {}", q["Name"]), v);
    }
    let entry = get(addr, "/v1/config/service-defaults/web");
    out.insert("config service-defaults/web".into(), json!({"Protocol": entry["Protocol"]}));
    for p in get(addr, "/v1/acl/policies").as_array().unwrap().iter().filter(|p| p["Name"] == "p1") {
        let p = get(addr, &format!("/v1/acl/policy/{}", p["ID"].as_str().unwrap()));
        out.insert(format!("policy {}", p["Name"]), strip(p, &["Datacenters"]));
    }
    for r in get(addr, "/v1/acl/roles").as_array().unwrap() {
        out.insert(format!("role {}", r["Name"]), strip(r.clone(), &[]));
    }
    for t in get(addr, "/v1/acl/tokens").as_array().unwrap().iter().filter(|t| t["Description"] == "t1") {
        let t = get(addr, &format!("/v1/acl/token/{}", t["AccessorID"].as_str().unwrap()));
        out.insert(format!("token {}", t["AccessorID"]), strip(t, &[]));
    }
    out
}

#[test]
fn a_consul_snapshot_restores_into_cairn_with_every_key_service_and_check() {
    let Some(bin) = consul_bin() else { return };
    let consul = Consul::start(&bin);
    let secret = populate(&consul.http);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("consul.snap");
    let saved = ok(&consul.cli(&bin, &["snapshot", "save", file.to_str().unwrap()]));
    let index = saved.trim().rsplit(' ').next().unwrap().to_owned();
    let want = contents(&consul.http);
    assert!(want.len() > 15, "{want:#?}");

    let acl = acl_config(dir.path());
    let agent = Agent::dev(&["--config-file", &acl]);
    let http = agent.http.to_string();
    eventually("ACLs ready", || req(&http, reqwest::Method::GET, "/v1/acl/tokens", Vec::new()).0 == 200);
    let inspected = ok(&cairn(&agent, &["snapshot", "inspect", file.to_str().unwrap()]));
    let consul_inspected = ok(&consul.cli(&bin, &["snapshot", "inspect", file.to_str().unwrap()]));
    assert_eq!(inspected, consul_inspected);
    assert!(inspected.contains(&format!("Index        {index}\n")), "{inspected}");

    let restored = ok(&cairn(&agent, &["snapshot", "restore", file.to_str().unwrap()]));
    assert!(restored.starts_with("Restored snapshot from"), "{restored}");
    let got = contents(&http);
    for (k, v) in &want {
        assert_eq!(got.get(k), Some(v), "{k}");
    }
    assert_eq!(
        got.len(),
        want.len(),
        "{:?}",
        got.keys().filter(|k| !want.contains_key(*k)).collect::<Vec<_>>()
    );
    // The imported token works in cairn: its policy reads app/ keys.
    let (s, body) = block(async {
        let r = http_client()
            .get(format!("http://{http}/v1/acl/token/self"))
            .header("X-Consul-Token", &secret)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    });
    assert_eq!(s, 200, "{body}");
    assert!(body.contains("\"t1\""), "{body}");
    // The catalog serves DNS: web1 only (ext2's node check is critical).
    let msg =
        agent.query("web.service.consul.", hickory_proto::rr::RecordType::A, crate::support::Transport::Udp);
    assert_eq!(crate::support::rendered(&msg.answers), ["web.service.consul. 0 A 10.1.1.1"], "{msg:?}");

    // And back: cairn's Consul-format save restores into Consul with the same contents.
    let back = dir.path().join("back.snap");
    let out = ok(&cairn(&agent, &["snapshot", "save", "-format", "consul", back.to_str().unwrap()]));
    assert!(out.starts_with("Saved and verified snapshot to index "), "{out}");
    let fresh = Consul::start(&bin);
    ok(&fresh.cli(&bin, &["snapshot", "restore", back.to_str().unwrap()]));
    let again = contents(&fresh.http);
    for (k, v) in &want {
        assert_eq!(again.get(k), Some(v), "cairn -> consul: {k}");
    }
}

#[test]
fn cairn_to_consul_to_cairn_keeps_the_catalog() {
    let Some(bin) = consul_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let acl = acl_config(dir.path());
    let first = Agent::dev(&["--config-file", &acl]);
    let http = first.http.to_string();
    eventually("ACLs ready", || req(&http, reqwest::Method::GET, "/v1/acl/tokens", Vec::new()).0 == 200);
    populate(&http);
    let want = contents(&http);
    let file = dir.path().join("cairn.snap");
    ok(&cairn(&first, &["snapshot", "save", "-format", "consul", file.to_str().unwrap()]));

    let consul = Consul::start(&bin);
    ok(&consul.cli(&bin, &["snapshot", "restore", file.to_str().unwrap()]));
    let in_consul = contents(&consul.http);
    for (k, v) in &want {
        assert_eq!(in_consul.get(k), Some(v), "cairn -> consul: {k}");
    }
    let file2 = dir.path().join("consul.snap");
    ok(&consul.cli(&bin, &["snapshot", "save", file2.to_str().unwrap()]));

    let second = Agent::dev(&["--config-file", &acl]);
    let http2 = second.http.to_string();
    eventually("ACLs ready", || req(&http2, reqwest::Method::GET, "/v1/acl/tokens", Vec::new()).0 == 200);
    ok(&cairn(&second, &["snapshot", "restore", file2.to_str().unwrap()]));
    let back = contents(&http2);
    for (k, v) in &want {
        assert_eq!(back.get(k), Some(v), "consul -> cairn: {k}");
    }
}

/// Rewrites a Consul archive with `edit` applied to its (uncompressed) tar.
fn regzip(file: &[u8], edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut tar = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(file), &mut tar).unwrap();
    edit(&mut tar);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

#[test]
fn damaged_consul_archives_are_refused_without_touching_the_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::dev(&[]);
    let http = agent.http.to_string();
    agent.put_ok("/v1/kv/keep", "before");
    let file = dir.path().join("good.snap");
    ok(&cairn(&agent, &["snapshot", "save", "-format", "consul", file.to_str().unwrap()]));
    agent.put_ok("/v1/kv/keep", "after");
    let good = std::fs::read(&file).unwrap();
    let state_bin_byte = |tar: &mut Vec<u8>| {
        let at = tar.windows(4).position(|w| w == b"keep").unwrap();
        tar[at] ^= 0x01;
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated",
            good[..good.len() / 2].to_vec(),
            "failed to read snapshot file: failed reading snapshot: unexpected EOF",
        ),
        (
            "changed",
            regzip(&good, state_bin_byte),
            "failed to read snapshot file: failed checking integrity of snapshot: hash check failed for \"state.bin\"",
        ),
        (
            "garbage",
            b"this is not a snapshot at all".to_vec(),
            "failed to decompress snapshot: gzip: invalid header",
        ),
        ("tiny", b"nope".to_vec(), "failed to decompress snapshot: unexpected EOF"),
    ];
    for (name, bytes, message) in cases {
        let (s, body) = req(&http, reqwest::Method::PUT, "/v1/snapshot", bytes.clone());
        assert_eq!((s, body.as_str()), (400, message), "{name}");
        let path = dir.path().join(format!("{name}.snap"));
        std::fs::write(&path, &bytes).unwrap();
        for verb in ["restore", "inspect"] {
            let out = cairn(&agent, &["snapshot", verb, path.to_str().unwrap()]);
            assert_eq!(out.status.code(), Some(1), "{name} {verb}");
            assert!(String::from_utf8_lossy(&out.stderr).contains(message), "{name} {verb}: {out:?}");
        }
        assert_eq!(agent.get_full("/v1/kv/keep?raw").unwrap().2, "after", "{name}");
    }
    // The intact archive restores the value it was taken with.
    ok(&cairn(&agent, &["snapshot", "restore", file.to_str().unwrap()]));
    assert_eq!(agent.get_full("/v1/kv/keep?raw").unwrap().2, "before");
}
