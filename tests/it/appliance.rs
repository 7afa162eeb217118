//! The appliance's operations against real agents: the operator CLI (`cairn catalog`,
//! `services`, `info`, `reload`, `snapshot`, `validate`) through `CAIRN_HTTP_ADDR`,
//! `/v1/agent/metrics` in both formats, `/v1/agent/reload`, sd_notify readiness on a real
//! notify socket, and, behind `CAIRN_INSTALL_TEST=1` (root), the package install test
//! (`packaging/test-install`: the .deb booted in systemd-nspawn, the .rpm checked).

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::support::{Agent, Transport, cairn_bin, eventually};

/// Runs `cairn ARGS` against `agent`'s HTTP API.
fn cairn(agent: &Agent, args: &[&str]) -> Output {
    Command::new(cairn_bin()).args(args).env("CAIRN_HTTP_ADDR", agent.http.to_string()).output().unwrap()
}

/// Runs `cairn ARGS`, which must succeed; returns its stdout.
fn cairn_ok(agent: &Agent, args: &[&str]) -> String {
    let out = cairn(agent, args);
    assert!(out.status.success(), "cairn {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn answers(agent: &Agent, name: &str) -> usize {
    let msg = agent.query(name, RecordType::A, Transport::Udp);
    if msg.metadata.response_code == ResponseCode::NoError { msg.answers.len() } else { 0 }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn operator_cli_reads_and_writes_the_catalog() {
    let agent = Agent::dev(&[]);
    let dir = tempfile::tempdir().unwrap();
    let def = write(
        dir.path(),
        "web.toml",
        "[[services]]\nname = \"web\"\nid = \"web-1\"\nport = 80\ntags = [\"v1\"]\n",
    );

    assert_eq!(
        cairn_ok(&agent, &["services", "register", def.to_str().unwrap()]),
        "Registered service: web\n"
    );
    eventually("web in DNS", || answers(&agent, "web.service.consul.") == 1);
    assert_eq!(cairn_ok(&agent, &["catalog", "services"]), "consul\nweb\n");
    assert!(cairn_ok(&agent, &["catalog", "services", "--tags"]).contains("web     v1"));
    let nodes = cairn_ok(&agent, &["catalog", "nodes"]);
    assert!(nodes.starts_with("Node ") && nodes.contains("node1") && nodes.contains("dc1"), "{nodes}");
    assert_eq!(cairn_ok(&agent, &["catalog", "datacenters"]), "dc1\n");
    let info = cairn_ok(&agent, &["info"]);
    assert!(info.starts_with("agent:\n") && info.contains("\tNodeName = node1\n"), "{info}");

    assert_eq!(cairn_ok(&agent, &["services", "deregister", "web-1"]), "Deregistered service: web-1\n");
    eventually("web gone from DNS", || answers(&agent, "web.service.consul.") == 0);
    let out = cairn(&agent, &["services", "deregister", "web-1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"), "{}", String::from_utf8_lossy(&out.stderr));

    // A broken definition is refused locally, naming the file.
    let bad = write(dir.path(), "bad.json", r#"{"service": {"name": "x", "port": "eighty"}}"#);
    let out = cairn(&agent, &["services", "register", bad.to_str().unwrap()]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("bad.json"));

    // No agent: a clear error, not a hang.
    let out =
        Command::new(cairn_bin()).args(["info"]).env("CAIRN_HTTP_ADDR", "127.0.0.1:9").output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("cannot reach the agent"));
}

#[test]
fn reload_endpoint_picks_up_a_new_zone_and_service_definition() {
    let zones = tempfile::tempdir().unwrap();
    let conf = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    write(
        conf.path(),
        "cairn.toml",
        &format!("server = true\nbootstrap_expect = 1\nzones_dir = {:?}\n", zones.path().to_str().unwrap()),
    );
    let agent = Agent::server(data.path(), &["--config-dir", conf.path().to_str().unwrap()]);
    assert_eq!(answers(&agent, "www.reload.test."), 0);
    write(
        zones.path(),
        "reload.test.zone",
        "$ORIGIN reload.test.\n@ IN SOA ns hostmaster 1 3600 600 86400 60\n@ IN NS ns\nns IN A 192.0.2.1\nwww IN A 192.0.2.80\n",
    );
    write(conf.path(), "api.toml", "[[services]]\nname = \"api\"\nport = 9000\n");
    assert_eq!(cairn_ok(&agent, &["reload"]), "Configuration reload triggered\n");
    eventually("the new zone", || answers(&agent, "www.reload.test.") == 1);
    eventually("the new service definition", || answers(&agent, "api.service.consul.") == 1);
}

#[test]
fn metrics_count_dns_queries_in_consul_json_and_prometheus() {
    let agent = Agent::dev(&[]);
    for _ in 0..3 {
        assert_eq!(answers(&agent, "consul.service.consul."), 1);
    }
    let nx = agent.query("nothing.service.consul.", RecordType::A, Transport::Udp);
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    agent.query("consul.service.consul.", RecordType::SRV, Transport::Tcp);

    let (status, _, text) = agent.get_full("/v1/agent/metrics?format=prometheus").unwrap();
    assert_eq!(status, 200);
    let value = |series: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };
    assert_eq!(value("cairn_dns_queries_total{type=\"A\",rcode=\"NOERROR\"}"), 3);
    assert_eq!(value("cairn_dns_queries_total{type=\"A\",rcode=\"NXDOMAIN\"}"), 1);
    assert_eq!(value("cairn_dns_queries_total{type=\"SRV\",rcode=\"NOERROR\"}"), 1);
    assert_eq!(value("cairn_dns_query_duration_seconds_count"), 5);
    assert!(value("cairn_dns_answer_cache_hits_total") >= 1, "repeated queries hit the answer cache");
    assert_eq!(value("cairn_catalog_nodes"), 1);
    assert_eq!(value("cairn_catalog_services"), 1);
    assert_eq!(value("cairn_health_checks{status=\"passing\"}"), 1);
    assert!(value("cairn_raft_apply_duration_seconds_count") >= 1);
    assert!(value("cairn_snapshot_publish_duration_seconds_count") >= 1);

    let (status, json) = agent.get("/v1/agent/metrics").unwrap();
    assert_eq!(status, 200);
    for key in ["Timestamp", "Gauges", "Points", "Counters", "Samples"] {
        assert!(json.get(key).is_some(), "{key} missing: {json}");
    }
    let queries: u64 = json["Counters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["Name"] == "cairn.dns.queries")
        .map(|c| c["Count"].as_u64().unwrap())
        .sum();
    assert_eq!(queries, 5);
    let sample =
        json["Samples"].as_array().unwrap().iter().find(|s| s["Name"] == "cairn.dns.query_time").unwrap();
    assert_eq!(sample["Count"], 5);
}

#[test]
fn snapshot_save_and_restore_round_trip_through_raft() {
    let data = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let mut agent = Agent::server(data.path(), &[]);
    // Records of a catalog-only node: the agent's own ones would be put back in step with its
    // local state by anti-entropy after a restore, as Consul's agents do.
    let ext = |svc: &str| {
        format!(
            r#"{{"Node": "ext", "Address": "10.1.1.1", "Service": {{"Service": "{svc}", "ID": "{svc}-1", "Port": 80}}}}"#
        )
    };
    agent.put_ok("/v1/catalog/register", &ext("web"));
    eventually("web in DNS", || answers(&agent, "web.service.consul.") == 1);

    let backup = files.path().join("cairn.snap");
    let saved = cairn_ok(&agent, &["snapshot", "save", backup.to_str().unwrap()]);
    assert!(saved.contains("2 service instances"), "{saved}");

    agent.put_ok("/v1/catalog/deregister", r#"{"Node": "ext", "ServiceID": "web-1"}"#);
    agent.put_ok("/v1/catalog/register", &ext("api"));
    eventually("web gone", || answers(&agent, "web.service.consul.") == 0);

    // A damaged file is refused before anything changes.
    let mut damaged = std::fs::read(&backup).unwrap();
    let last = damaged.len() - 2;
    damaged[last] ^= 0x20;
    let bad = write(files.path(), "damaged.snap", "");
    std::fs::write(&bad, &damaged).unwrap();
    let out = cairn(&agent, &["snapshot", "restore", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("checksum"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, body) = agent.put("/v1/snapshot", &String::from_utf8_lossy(&damaged));
    assert_eq!(status, 400, "{body}");
    assert_eq!(answers(&agent, "api.service.consul."), 1);

    let restored = cairn_ok(&agent, &["snapshot", "restore", backup.to_str().unwrap()]);
    assert!(restored.starts_with("Restored snapshot"), "{restored}");
    eventually("web back", || answers(&agent, "web.service.consul.") == 1);
    assert_eq!(answers(&agent, "api.service.consul."), 0, "the restore replaced the catalog");

    // The restore is in the Raft log and LMDB: it survives a restart.
    assert_eq!(agent.terminate(), Some(0));
    let agent = Agent::server(data.path(), &[]);
    eventually("web after restart", || answers(&agent, "web.service.consul.") == 1);
    assert_eq!(answers(&agent, "api.service.consul."), 0);
}

#[test]
fn validate_checks_files_without_starting_anything() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ok = Command::new(cairn_bin())
        .arg("validate")
        .arg(root.join("config/cairn.toml"))
        .arg(root.join("config/services/web.toml"))
        .arg(root.join("zones/example.zone"))
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("Configuration is valid!"));

    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "broken.zone", "$ORIGIN broken.test.\nwww IN A 999.1.1.1\n");
    let out = Command::new(cairn_bin()).arg("validate").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("broken.zone"));
}

#[test]
fn agent_notifies_readiness_on_notify_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut child = Command::new(cairn_bin())
        .args([
            "agent",
            "--dev",
            "--http-port",
            "0",
            "--dns-port",
            "0",
            "--server-port",
            "0",
            "--serf-lan-port",
            "0",
            "--serf-wan-port",
            "0",
        ])
        .current_dir(dir.path())
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "200000")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 512];
    while !seen.iter().any(|m: &String| m.contains("WATCHDOG=1")) {
        let Ok(n) = sock.recv(&mut buf) else { break };
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let _ = child.wait();
    let ready = seen.iter().position(|m| m.starts_with("READY=1\nSTATUS=serving DNS on 127.0.0.1:"));
    let status = seen.iter().position(|m| m.starts_with("STATUS="));
    let watchdog = seen.iter().position(|m| m == "WATCHDOG=1");
    assert!(status.is_some() && ready.is_some() && watchdog.is_some(), "{seen:?}");
    assert!(status < ready, "STATUS lines come before READY: {seen:?}");
}

/// The package install test (root, debootstrap, systemd-nspawn, rpm): builds the packages
/// (one release build), boots the .deb in a container and checks the .rpm. Minutes, so it
/// runs only with `CAIRN_INSTALL_TEST=1`.
#[test]
fn package_install_test_in_systemd_nspawn() {
    if std::env::var_os("CAIRN_INSTALL_TEST").is_none_or(|v| v != "1") {
        eprintln!("package_install_test_in_systemd_nspawn: set CAIRN_INSTALL_TEST=1 (as root) to run");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(root.join("packaging/test-install")).current_dir(root).output().unwrap();
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{log}");
    assert!(log.contains("deb install test: PASS"), "{log}");
}

/// The unit keeps what the appliance promises (the install test checks it in systemd; this
/// catches an edit without a container).
#[test]
fn unit_file_keeps_the_hardening_list() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let unit = std::fs::read_to_string(root.join("systemd/cairn.service")).unwrap();
    let lines: Vec<&str> = unit.lines().map(str::trim).collect();
    for want in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "User=cairn",
        "StateDirectory=cairn",
        "ConfigurationDirectory=cairn",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
        "MemoryDenyWriteExecute=yes",
    ] {
        assert!(lines.contains(&want), "systemd/cairn.service lacks {want:?}");
    }
}

/// Every file the packages take from the repository exists (generated ones come from
/// `packaging/build`).
#[test]
fn package_assets_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest: toml::Table = std::fs::read_to_string(root.join("Cargo.toml")).unwrap().parse().unwrap();
    let meta = &manifest["package"]["metadata"];
    let mut sources: Vec<String> =
        meta["deb"]["assets"].as_array().unwrap().iter().map(|a| a[0].as_str().unwrap().to_owned()).collect();
    sources.extend(
        meta["generate-rpm"]["assets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["source"].as_str().unwrap().to_owned()),
    );
    for script in ["postinst", "prerm", "postrm"] {
        sources.push(format!("packaging/debian/{script}"));
    }
    for src in sources.iter().filter(|s| !s.starts_with("packaging/generated/")) {
        let path = src.trim_end_matches('*');
        assert!(root.join(path).exists(), "package asset {src} missing");
    }
}
