//! Config files and flags as an operator uses them: services from the config dir, errors.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;

use crate::support::{Agent, Transport, cairn_bin, srv_targets};

#[test]
fn services_in_the_config_dir_are_registered_at_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("web.json"),
        r#"{"service":{"name":"web","port":80,"tags":["edge"],"check":{"id":"web-ttl","ttl":"60s","status":"passing"}}}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("agent.toml"),
        "datacenter = \"east\"\n[[services]]\nname = \"api\"\nport = 9090\n[dns_config]\nnode_ttl = \"5s\"\n",
    )
    .unwrap();
    let d = dir.path().to_str().unwrap();
    let agent = Agent::dev(&["--config-dir", d]);
    let web = agent.query("edge.web.service.east.consul.", RecordType::SRV, Transport::Udp);
    assert_eq!(srv_targets(&web), vec![(80, "node1.node.east.consul.".to_owned())]);
    let api = agent.query("api.service.consul.", RecordType::SRV, Transport::Udp);
    assert_eq!(srv_targets(&api), vec![(9090, "node1.node.east.consul.".to_owned())]);
    let node = agent.query("node1.node.consul.", RecordType::A, Transport::Udp);
    assert_eq!(node.answers[0].ttl, 5);
}

/// Consul's own test harness writes `ports.https` and a `connect` block into every agent's
/// config without certificates: as Consul, the agent starts, serves HTTP and does not serve
/// HTTPS (one start-up warning each), rather than refusing.
#[test]
fn consul_harness_config_starts_without_https_or_connect() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.json");
    let https = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = https.local_addr().unwrap().port();
    drop(https);
    let text = format!(
        r#"{{"segments":null,"ports":{{"https":{port}}},"connect":{{"enabled":true,"ca_config":{{"cluster_id":"11111111-2222-3333-4444-555555555555"}}}}}}"#
    );
    std::fs::write(&file, text).unwrap();
    let agent = Agent::dev(&["--config-file", file.to_str().unwrap()]);
    assert_eq!(agent.get("/v1/status/leader").unwrap().0, 200);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "HTTPS must not listen");
    let log = agent.log();
    assert!(log.contains("ports.https: no certificate for HTTPS"), "{log}");
    assert!(log.contains("connect"), "{log}");
}

#[test]
fn an_invalid_config_exits_1_with_one_line_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.json");
    std::fs::write(&file, r#"{"dns_config":{"udp_answer_limit":-4}}"#).unwrap();
    let out = Command::new(cairn_bin())
        .args(["agent", "--dev", "--http-port", "0", "--dns-port", "0", "--config-file"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("bad.json") && stderr.contains("dns_config.udp_answer_limit"), "{stderr}");
}

#[test]
fn version_prints_the_version() {
    for args in [&["version"][..], &["--version"][..]] {
        let out = Command::new(cairn_bin()).args(args).output().unwrap();
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
    }
}

#[test]
fn sighup_reloads_dns_config_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent.json");
    std::fs::write(&file, r#"{"dns_config":{"node_ttl":"1s"}}"#).unwrap();
    let agent = Agent::dev(&["--config-file", file.to_str().unwrap()]);
    let ttl = || agent.query("node1.node.consul.", RecordType::A, Transport::Udp).answers[0].ttl;
    assert_eq!(ttl(), 1);
    std::fs::write(&file, r#"{"dns_config":{"node_ttl":"30s"}}"#).unwrap();
    agent.signal("HUP");
    crate::support::eventually("reloaded node_ttl", || ttl() == 30);
}

#[test]
fn security_settings_that_cannot_be_honoured_refuse_the_start_in_one_line() {
    let refused = |key: &str| {
        format!("key {key:?} is not supported yet (refusing to start rather than run without it)")
    };
    let cases = [
        // ACLs are implemented; ACL settings a single datacenter cannot honour stop the start.
        (
            "acl.json",
            r#"{"acl":{"enabled":true,"enable_token_replication":true}}"#,
            "acl.enable_token_replication: token replication is not supported: cairn runs a single datacenter"
                .to_owned(),
        ),
        ("encrypt.toml", "[auto_encrypt]\ntls = true\n", refused("auto_encrypt")),
        // TLS is implemented; settings it cannot honour stop the start with Consul's words.
        (
            "tls.json",
            r#"{"verify_incoming":true}"#,
            "VerifyIncoming set but no CA certificates were provided".to_owned(),
        ),
    ];
    for (name, text, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        let mut child = Command::new(cairn_bin())
            .args(["agent", "--dev", "--http-port", "0", "--dns-port", "0", "--config-file"])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > Duration::from_secs(10) {
                child.kill().unwrap();
                panic!("{name}: the agent started with {text}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(!status.success(), "{name}: {status}");
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(&file.display().to_string()) && stderr.contains(&want), "{name}: {stderr}");
    }
}
