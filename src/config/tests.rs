//! Config loading: Consul keys from TOML and JSON, flag precedence, errors naming file and key.

use std::io::Write;
use std::time::Duration;

use super::types::TlsVersion;
use super::*;

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let p = dir.path().join(name);
    let mut f = std::fs::File::create(&p).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    p
}

fn dev() -> Overrides {
    Overrides { dev: true, node_name: Some("n1".into()), ..Overrides::default() }
}

/// Loads `text` as file `name` with `o` and returns the config or the error line.
fn check(name: &str, text: &str, o: Overrides) -> Result<Config, String> {
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, name, text);
    let o = Overrides { config_files: vec![p], ..o };
    Config::load(&o)
        .map(|(c, _)| c)
        .map_err(|e| e.to_string().replace(&dir.path().display().to_string(), "DIR"))
}

#[test]
fn defaults_match_consul_when_nothing_is_given() {
    let (c, ignored) = Config::load(&dev()).unwrap();
    assert!(ignored.is_empty());
    assert_eq!(c.datacenter, "dc1");
    assert_eq!(c.domain, "consul.");
    assert_eq!(
        c.ports,
        Ports { dns: 8600, http: 8500, https: -1, server: 8300, serf_lan: 8301, serf_wan: 8302 }
    );
    assert_eq!(c.tls, TlsConfig::default());
    assert_eq!(c.client_addr.to_string(), "127.0.0.1");
    assert_eq!(c.dns_addr, c.client_addr);
    assert_eq!(c.dns, DnsConfig::default());
    assert_eq!(c.dns.udp_answer_limit, 3);
    assert!(c.server);
    assert_eq!(c.bootstrap_expect, 1);
    assert!(c.cleanup_dead_servers, "autopilot cleans up dead servers by default, as in Consul");
}

#[test]
fn autopilot_cleanup_dead_servers_can_be_turned_off() {
    let toml = "[autopilot]\ncleanup_dead_servers = false\nlast_contact_threshold = \"200ms\"\n";
    let c = check("a.toml", toml, dev()).unwrap();
    assert!(!c.cleanup_dead_servers);
    let c = check("a.json", r#"{"autopilot":{"cleanup_dead_servers":true}}"#, dev()).unwrap();
    assert!(c.cleanup_dead_servers);
    let err = check("a.json", r#"{"autopilot":{"cleanup_dead":true}}"#, dev()).unwrap_err().to_string();
    assert!(err.contains("autopilot.cleanup_dead"), "{err}");
}

#[test]
fn consul_json_config_is_accepted_as_is() {
    let c = check(
        "consul.json",
        r#"{"datacenter":"East-1","domain":"Example.","alt_domain":"alt.test","recursors":["9.9.9.9","1.1.1.1:5353"],
            "ports":{"dns":8653,"grpc":-1},"addresses":{"dns":"127.0.0.2"},
            "dns_config":{"node_ttl":"10s","service_ttl":{"db*":"66s","*":"5s"},"only_passing":true,
                          "udp_answer_limit":5,"soa":{"min_ttl":7,"retry":11},"recursor_timeout":"250ms"},
            "enable_script_checks":false}"#,
        dev(),
    )
    .unwrap();
    assert_eq!(c.datacenter, "east-1");
    assert_eq!(c.domain, "example.");
    assert_eq!(c.alt_domain.as_deref(), Some("alt.test."));
    assert_eq!(c.recursors, vec!["9.9.9.9:53".parse().unwrap(), "1.1.1.1:5353".parse().unwrap()]);
    assert_eq!(c.ports.dns, 8653);
    assert_eq!(c.dns_addr.to_string(), "127.0.0.2");
    assert_eq!(c.dns.node_ttl, Duration::from_secs(10));
    assert_eq!(c.dns.service_ttl_for("dblb"), Duration::from_secs(66));
    assert_eq!(c.dns.service_ttl_for("api"), Duration::from_secs(5));
    assert!(c.dns.only_passing);
    assert_eq!(c.dns.soa.min_ttl, 7);
    assert_eq!(c.dns.soa.retry, 11);
    assert_eq!(c.dns.soa.refresh, 3600);
    assert_eq!(c.dns.recursor_timeout, Duration::from_millis(250));
}

#[test]
fn toml_config_uses_the_same_keys() {
    let c = check(
        "cairn.toml",
        "datacenter = \"dc2\"\nnode_name = \"alpha\"\n[ports]\nhttp = 18500\n[dns_config]\nenable_truncate = true\na_record_limit = 2\n",
        Overrides { dev: true, ..Overrides::default() },
    )
    .unwrap();
    assert_eq!(c.datacenter, "dc2");
    assert_eq!(c.node_name, "alpha");
    assert_eq!(c.ports.http, 18500);
    assert!(c.dns.enable_truncate);
    assert_eq!(c.dns.a_record_limit, 2);
}

#[test]
fn flags_override_files() {
    let o = Overrides { datacenter: Some("flagdc".into()), http_port: Some(0), ..dev() };
    let c =
        check("a.json", r#"{"datacenter":"filedc","ports":{"http":1234},"node_name":"file"}"#, o).unwrap();
    assert_eq!(c.datacenter, "flagdc");
    assert_eq!(c.ports.http, 0);
    assert_eq!(c.node_name, "n1");
}

#[test]
fn service_ttl_lookup_follows_consul_order() {
    // TestDNS_ServiceLookup_TTL: d*=42s, db=10s, db*=66s, *=5s.
    let mut d = DnsConfig::default();
    for (k, v) in [("d*", 42), ("db", 10), ("db*", 66), ("*", 5)] {
        d.service_ttl.insert(k.into(), Duration::from_secs(v));
    }
    for (name, want) in [("db", 10), ("dblb", 66), ("dk", 42), ("api", 5), ("DB", 10)] {
        assert_eq!(d.service_ttl_for(name), Duration::from_secs(want), "{name}");
    }
}

#[test]
fn errors_name_the_file_and_the_key() {
    let cases = [
        (
            "a.json",
            r#"{"dns_config":{"node_ttl":"ten"}}"#,
            "DIR/a.json: dns_config.node_ttl: invalid duration",
        ),
        ("a.json", r#"{"bogus":1}"#, "DIR/a.json: bogus: unknown configuration key"),
        ("a.toml", "[ports]\ndns = 70000\n", "DIR/a.toml: ports.dns: 70000 is out of range"),
        ("a.json", r#"{"recursors":["0.0.0.0"]}"#, "DIR/a.json: recursors[0]: \"0.0.0.0\": an unspecified"),
        ("a.json", r#"{"datacenter":"dc one"}"#, "DIR/a.json: datacenter: \"dc one\" must be"),
        ("a.json", r#"{"alt_domain":"service.x"}"#, "DIR/a.json: alt_domain: \"service.x\" must differ"),
        (
            "a.json",
            r#"{"dns_config":{"recursor_strategy":"fast"}}"#,
            "DIR/a.json: dns_config.recursor_strategy",
        ),
        ("a.json", r#"{"dns_config":{"soa":{"minimum":1}}}"#, "DIR/a.json: dns_config.soa.minimum: unknown"),
        ("a.json", r#"{"services":[{"Name":"web","Port":"x"}]}"#, "DIR/a.json: services[0]:"),
        (
            "a.json",
            r#"{"service":{"name":"web","weights":{"passing":0}}}"#,
            "DIR/a.json: service: Invalid Weights",
        ),
        ("a.json", "{nope", "DIR/a.json: "),
        ("a.toml", "x = [", "DIR/a.toml: "),
        ("a.hcl", "x = 1", "DIR/a.hcl: HCL is not supported"),
    ];
    for (name, text, want) in cases {
        let got = check(name, text, dev()).expect_err(text);
        assert!(got.starts_with(want), "{text}: got {got:?}, want prefix {want:?}");
        assert!(!got.contains('\n'), "one line: {got:?}");
    }
}

#[test]
fn config_dir_reads_toml_and_json_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir, "10-base.toml", "datacenter = \"first\"\n");
    write(&dir, "20-over.json", r#"{"datacenter":"second","services":[{"name":"web","port":80}]}"#);
    write(&dir, "README", "ignored");
    let o = Overrides { config_dirs: vec![dir.path().to_path_buf()], ..dev() };
    let (c, _) = Config::load(&o).unwrap();
    assert_eq!(c.datacenter, "second");
    assert_eq!(c.services.len(), 1);
    assert_eq!(c.sources.len(), 2);
}

#[test]
fn data_dir_is_required_outside_dev() {
    let o = Overrides { server: true, bootstrap_expect: Some(1), ..Overrides::default() };
    let err = Config::load(&o).unwrap_err().to_string();
    assert!(err.contains("data_dir"), "{err}");
}

#[test]
fn agents_without_server_are_clients_and_clusters_may_wait_for_a_join() {
    let dir = PathBuf::from("/nonexistent");
    let client = Overrides { data_dir: Some(dir.clone()), ..Overrides::default() };
    let c = Config::load(&client).unwrap().0;
    assert!(!c.server);
    assert_eq!(c.bootstrap_expect, 0);
    let client_expect =
        Overrides { data_dir: Some(dir.clone()), bootstrap_expect: Some(3), ..Overrides::default() };
    let err = Config::load(&client_expect).unwrap_err().to_string();
    assert!(err.contains("bootstrap_expect is for servers"), "{err}");
    let three =
        Overrides { server: true, bootstrap_expect: Some(3), data_dir: Some(dir), ..Overrides::default() };
    // Without retry_join the servers find each other once joined by `cairn join` (gossip).
    assert_eq!(Config::load(&three).unwrap().0.bootstrap_expect, 3);
}

#[test]
fn the_packaged_config_loads() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/cairn.toml");
    let (c, ignored) = Config::load(&Overrides { config_files: vec![path], ..Overrides::default() }).unwrap();
    assert!(ignored.is_empty(), "{ignored:?}");
    assert!(c.server);
    assert!(c.dns.enable_truncate);
    assert_eq!(c.data_dir, PathBuf::from("/var/lib/cairn"));
    // Without `encrypt` a server RPC beyond loopback would not start (`rpc::auth::check_exposure`).
    assert!(c.bind_addr.is_loopback() && c.encrypt.is_none() && !c.insecure_rpc);
}

#[test]
fn insecure_rpc_is_off_unless_a_file_or_the_flag_turns_it_on() {
    assert!(!check("a.toml", "", dev()).unwrap().insecure_rpc);
    assert!(check("a.toml", "insecure_rpc = true\n", dev()).unwrap().insecure_rpc);
    assert!(check("a.json", r#"{"insecure_rpc": true}"#, dev()).unwrap().insecure_rpc);
    assert!(!check("a.json", r#"{"insecure_rpc": false}"#, dev()).unwrap().insecure_rpc);
    assert!(Config::load(&Overrides { insecure_rpc: true, ..dev() }).unwrap().0.insecure_rpc);
}

#[test]
fn zones_dir_comes_from_the_file_or_the_flag_and_dev_defaults_to_dot_zones() {
    let c = check("a.toml", "zones_dir = \"/etc/cairn/zones\"\n", dev()).unwrap();
    assert_eq!(c.zones_dir, Some(PathBuf::from("/etc/cairn/zones")));
    let flag = Overrides { zones_dir: Some("/srv/zones".into()), ..dev() };
    let c = check("a.json", r#"{"zones_dir":"/etc/cairn/zones"}"#, flag).unwrap();
    assert_eq!(c.zones_dir, Some(PathBuf::from("/srv/zones")));
    // Tests run from the repository root, which has zones/.
    let (c, _) = Config::load(&dev()).unwrap();
    assert_eq!(c.zones_dir, Some(PathBuf::from("zones")));
    let dir = tempfile::tempdir().unwrap();
    let server = Overrides {
        server: true,
        bootstrap_expect: Some(1),
        data_dir: Some(dir.path().into()),
        ..Overrides::default()
    };
    assert_eq!(Config::load(&server).unwrap().0.zones_dir, None);
    assert_eq!(
        check("a.json", r#"{"zones_dir":7}"#, dev()).unwrap_err(),
        "DIR/a.json: zones_dir: expected a string, got 7"
    );
}

#[test]
fn check_keys_load_and_script_checks_need_enabling() {
    let c = check("a.toml", "", dev()).unwrap();
    assert_eq!(c.checks, CheckConfig::default());
    assert_eq!(c.checks.update_interval, Duration::from_secs(300));
    let c = check(
        "a.json",
        r#"{"enable_script_checks": true, "check_update_interval": "10s", "check_output_max_size": 100,
            "check_deregister_interval_min": "1s", "check_reap_interval": "2s"}"#,
        dev(),
    )
    .unwrap();
    assert!(c.checks.enable_script_checks && c.checks.local_scripts());
    assert_eq!(c.checks.update_interval, Duration::from_secs(10));
    assert_eq!(c.checks.output_max_size, 100);
    assert_eq!(c.checks.deregister_interval_min, Duration::from_secs(1));
    assert_eq!(c.checks.reap_interval, Duration::from_secs(2));
    assert!(
        check("a.json", r#"{"check_reap_interval": "0s"}"#, dev())
            .unwrap_err()
            .contains("check_reap_interval")
    );
    let script = r#"{"services": [{"name": "s", "check": {"args": ["true"], "interval": "5s"}}]}"#;
    let err = check("a.json", script, dev()).unwrap_err();
    assert!(err.contains("services[0]: Scripts are disabled on this agent"), "{err}");
    let with = script.replacen('{', r#"{"enable_local_script_checks": true, "#, 1);
    assert!(check("a.json", &with, dev()).is_ok());
}

#[test]
fn top_level_checks_are_decoded_and_validated() {
    let c = check(
        "a.json",
        r#"{"services": [{"name": "web"}], "checks": [{"name": "disk", "ttl": "30s"}, {"name": "w", "service_id": "web", "tcp": "x:1", "interval": "5s"}]}"#,
        dev(),
    )
    .unwrap();
    assert_eq!(c.check_definitions.len(), 2);
    assert_eq!(c.check_definitions[1].service_id, "web");
    let c = check("a.json", r#"{"check": {"name": "one", "ttl": "5s"}}"#, dev()).unwrap();
    assert_eq!(c.check_definitions[0].name, "one");
    let err = check("a.json", r#"{"checks": [{"ttl": "5s"}]}"#, dev()).unwrap_err();
    assert!(err.contains("checks[0]: Missing check name"), "{err}");
    let err = check("a.json", r#"{"checks": [{"name": "x", "service_id": "nope", "ttl": "5s"}]}"#, dev())
        .unwrap_err();
    assert!(err.contains("ServiceID \"nope\" does not exist"), "{err}");
    let err = check("a.json", r#"{"check": {"name": "x", "args": ["true"], "interval": "1s"}}"#, dev())
        .unwrap_err();
    assert!(err.contains("check: Scripts are disabled"), "{err}");
}

#[test]
fn cluster_keys_load_from_files_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.json");
    std::fs::write(&p, r#"{"server": true, "bootstrap_expect": 3, "retry_join": ["10.0.0.1", "10.0.0.2:8310"], "raft_snapshot_threshold": 50, "raft_trailing_logs": 5, "data_dir": "/tmp/x"}"#).unwrap();
    let o = Overrides {
        config_files: vec![p.clone()],
        retry_join: vec!["10.0.0.3:9000".into()],
        ..Overrides::default()
    };
    let (c, _) = Config::load(&o).unwrap();
    assert_eq!(c.bootstrap_expect, 3);
    assert_eq!(c.retry_join, ["10.0.0.1", "10.0.0.2:8310", "10.0.0.3:9000"]);
    assert_eq!((c.raft_snapshot_threshold, c.raft_trailing_logs), (50, 5));
    let bad = Overrides {
        config_files: vec![p],
        retry_join: vec!["10.0.0.3:notaport".into()],
        ..Overrides::default()
    };
    let err = Config::load(&bad).unwrap_err().to_string();
    assert!(err.contains("-retry-join"), "{err}");
}

#[test]
fn encrypt_keys_are_base64_of_an_aes_key() {
    let key = "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s=";
    let o = Overrides { encrypt: Some(key.into()), ..dev() };
    assert_eq!(Config::load(&o).unwrap().0.encrypt.map(|k| k.len()), Some(32));
    for bad in ["not base64!", "c2hvcnQ="] {
        let o = Overrides { encrypt: Some(bad.into()), ..dev() };
        let err = Config::load(&o).unwrap_err().to_string();
        assert!(err.contains("-encrypt"), "{err}");
    }
}

/// The line a refused security key gives, for `a.json` in the test's directory.
fn refused(file: &str, key: &str) -> String {
    format!("DIR/{file}: key {key:?} is not supported yet (refusing to start rather than run without it)")
}

#[test]
fn an_hcl_file_in_a_config_dir_is_refused_not_skipped() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir, "agent.json", r#"{"datacenter":"dc1"}"#);
    write(&dir, "acl.hcl", "acl { enabled = true }");
    let o = Overrides { config_dirs: vec![dir.path().to_path_buf()], ..dev() };
    let err = Config::load(&o).unwrap_err().to_string();
    assert!(err.contains("acl.hcl: HCL is not supported"), "{err}");
}

#[test]
fn security_keys_that_would_turn_a_feature_on_refuse_the_start() {
    let cases = [
        (r#"{"auto_encrypt":{"tls":true}}"#, "auto_encrypt"),
        (r#"{"auto_encrypt":{"allow_tls":true}}"#, "auto_encrypt"),
        (r#"{"limits":{"http_max_conns_per_client":200}}"#, "limits.http_max_conns_per_client"),
        (r#"{"limits":{"rpc_max_conns_per_client":100}}"#, "limits.rpc_max_conns_per_client"),
        (r#"{"limits":[{"http_max_conns_per_client":200}]}"#, "limits.http_max_conns_per_client"),
        (
            r#"{"limits":[{"rpc_rate":10},{"rpc_max_conns_per_client":100}]}"#,
            "limits.rpc_max_conns_per_client",
        ),
        (r#"{"limits":{"kv_max_value_size":1024}}"#, "limits.kv_max_value_size"),
        (r#"{"segments":[{"name":"alpha","port":8303}]}"#, "segments"),
        (r#"{"autopilot":{"min_quorum":3}}"#, "autopilot.min_quorum"),
        (r#"{"limits":{"txn_max_req_len":"65536"}}"#, "limits.txn_max_req_len"),
        (r#"{"limits":{"request_limits":{"mode":"enforcing","write_rate":100}}}"#, "limits.request_limits"),
    ];
    for (text, key) in cases {
        assert_eq!(check("a.json", text, dev()).unwrap_err(), refused("a.json", key), "{text}");
    }
}

#[test]
fn security_keys_left_off_load_with_the_unused_warning() {
    let cases = [
        (r#"{"auto_encrypt":{"tls":false}}"#, "auto_encrypt"),
        (
            r#"{"limits":{"http_max_conns_per_client":0,"https_handshake_timeout":"2s"}}"#,
            "limits.http_max_conns_per_client",
        ),
        (r#"{"limits":{"rpc_max_conns_per_client":0}}"#, "limits.rpc_max_conns_per_client"),
        (r#"{"limits":[{"rpc_rate":10}]}"#, "limits.rpc_rate"),
        (r#"{"tls_prefer_server_cipher_suites":true}"#, "tls_prefer_server_cipher_suites"),
        (r#"{"tls":{"grpc":{"use_auto_cert":true}}}"#, "tls.grpc"),
        (r#"{"connect":{"enabled":false}}"#, "connect"),
        (r#"{"connect":{"enabled":true}}"#, "connect"),
        (r#"{"segments":null}"#, "segments"),
        (r#"{"autopilot":{"min_quorum":0}}"#, "autopilot.min_quorum"),
        (r#"{"segments":[]}"#, "segments"),
        (r#"{"connect":{"enabled":true,"ca_config":{"cluster_id":"x"}}}"#, "connect"),
        (r#"{"limits":{"kv_max_value_size":524288}}"#, "limits.kv_max_value_size"),
        (r#"{"limits":{"txn_max_req_len":1048576}}"#, "limits.txn_max_req_len"),
        (r#"{"limits":{"request_limits":{"mode":"permissive","read_rate":10}}}"#, "limits.request_limits"),
        (r#"{"limits":{"request_limits":{"read_rate":10}}}"#, "limits.request_limits"),
    ];
    for (text, key) in cases {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "a.json", text);
        let o = Overrides { config_files: vec![p.clone()], ..dev() };
        let (_, ignored) = Config::load(&o).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(ignored, [format!("{}: {key}", p.display())], "{text}");
    }
}

#[test]
fn a_refused_key_names_the_file_that_sets_it() {
    let dir = tempfile::tempdir().unwrap();
    let base = write(&dir, "a.json", r#"{"auto_encrypt":{"tls":false}}"#);
    let on = write(&dir, "b.toml", "[auto_encrypt]\ntls = true\n");
    let o = Overrides { config_files: vec![base, on], ..dev() };
    let err = Config::load(&o).unwrap_err().to_string().replace(&dir.path().display().to_string(), "DIR");
    assert_eq!(err, refused("b.toml", "auto_encrypt"));
    // A value of another type is refused too; a malformed parent keeps its usual message.
    let err =
        check("a.json", r#"{"limits":{"rpc_max_conns_per_client":"x","rpc_rate":true}}"#, dev()).unwrap_err();
    assert_eq!(err, refused("a.json", "limits.rpc_max_conns_per_client"));
    let err = check("a.json", r#"{"ports":5}"#, dev()).unwrap_err();
    assert!(err.contains("ports: expected a table/object"), "{err}");
}

/// Files for a TLS agent: CA, certificate and key (not read while loading the config).
const TLS_FILES: &str =
    r#""ca_file":"/tls/ca.pem","cert_file":"/tls/agent.pem","key_file":"/tls/agent-key.pem""#;

#[test]
fn consul_18_flat_tls_keys_configure_https_and_the_server_rpc() {
    let text = format!(
        r#"{{{TLS_FILES},"verify_incoming":true,"verify_server_hostname":true,"tls_min_version":"tls13",
            "tls_cipher_suites":"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            "server_name":"s1.example","ports":{{"https":8501}},"addresses":{{"https":"127.0.0.2"}},
            "limits":{{"https_handshake_timeout":"2s","rpc_handshake_timeout":"3s","rpc_rate":100}}}}"#
    );
    let c = check("a.json", &text, dev()).unwrap();
    assert_eq!(c.ports.https, 8501);
    assert_eq!(c.https_addr.to_string(), "127.0.0.2");
    for t in [&c.tls.internal_rpc, &c.tls.https] {
        assert_eq!(t.ca_file.as_deref(), Some(std::path::Path::new("/tls/ca.pem")));
        assert!(t.has_cert() && t.verify_incoming);
        assert_eq!(t.min_version, TlsVersion::Tls13);
        assert_eq!(t.cipher_suites.len(), 2);
    }
    // verify_server_hostname implies verify_outgoing, on the server RPC.
    assert!(c.tls.internal_rpc.verify_server_hostname && c.tls.internal_rpc.verify_outgoing);
    assert_eq!(c.tls.server_name.as_deref(), Some("s1.example"));
    assert_eq!(c.tls.https_handshake_timeout, Duration::from_secs(2));
    assert_eq!(c.tls.rpc_handshake_timeout, Duration::from_secs(3));
    // HTTPS stays off by default; addresses.https defaults to client_addr.
    let c = check("a.json", &format!("{{{TLS_FILES}}}"), dev()).unwrap();
    assert_eq!((c.ports.https, c.https_addr), (-1, c.client_addr));
    assert_eq!(c.tls.https.min_version, TlsVersion::Tls12);
    assert_eq!(c.tls.https_handshake_timeout, Duration::from_secs(5));
}

#[test]
fn the_tls_block_sets_interfaces_and_an_interface_beats_defaults() {
    let toml = r#"
        [tls.defaults]
        ca_file = "/tls/ca.pem"
        cert_file = "/tls/agent.pem"
        key_file = "/tls/agent-key.pem"
        verify_incoming = true
        tls_min_version = "TLSv1_3"
        [tls.https]
        verify_incoming = false
        tls_min_version = "TLSv1_2"
        [tls.internal_rpc]
        verify_server_hostname = true
        [[limits]]
        rpc_handshake_timeout = "1s"
        [[limits]]
        rpc_handshake_timeout = "4s"
    "#;
    let c = check("a.toml", toml, dev()).unwrap();
    assert!(c.tls.internal_rpc.verify_incoming && !c.tls.https.verify_incoming);
    assert_eq!(
        (c.tls.internal_rpc.min_version, c.tls.https.min_version),
        (TlsVersion::Tls13, TlsVersion::Tls12)
    );
    assert!(c.tls.internal_rpc.verify_outgoing && c.tls.internal_rpc.verify_server_hostname);
    assert!(!c.tls.https.verify_server_hostname);
    assert_eq!(c.tls.rpc_handshake_timeout, Duration::from_secs(4));
}

#[test]
fn per_interface_verify_incoming_keys_combine_as_in_consul_18() {
    let c = check("a.json", &format!(r#"{{{TLS_FILES},"verify_incoming_rpc":true}}"#), dev()).unwrap();
    assert!(c.tls.internal_rpc.verify_incoming && !c.tls.https.verify_incoming);
    let c = check("a.json", &format!(r#"{{{TLS_FILES},"verify_incoming_https":true}}"#), dev()).unwrap();
    assert!(!c.tls.internal_rpc.verify_incoming && c.tls.https.verify_incoming);
    // A flat `false` for one interface never turns off what `verify_incoming` turned on.
    let text = format!(r#"{{{TLS_FILES},"verify_incoming":true,"verify_incoming_rpc":false}}"#);
    assert!(check("a.json", &text, dev()).unwrap().tls.internal_rpc.verify_incoming);
}

#[test]
fn the_same_setting_given_both_ways_must_agree() {
    let text = r#"{"ca_file":"/a.pem","tls":{"defaults":{"ca_file":"/b.pem"}}}"#;
    let err = check("a.json", text, dev()).unwrap_err();
    assert_eq!(
        err,
        "DIR/a.json: tls.defaults.ca_file: conflicts with ca_file in DIR/a.json: give the setting one way, or the same value both ways"
    );
    let text = format!(
        r#"{{{TLS_FILES},"verify_incoming_rpc":true,"tls":{{"internal_rpc":{{"verify_incoming":false}}}}}}"#
    );
    let err = check("a.json", &text, dev()).unwrap_err();
    assert!(err.contains("tls.internal_rpc.verify_incoming: conflicts with verify_incoming_rpc"), "{err}");
    let text = r#"{"verify_server_hostname":false,"tls":{"internal_rpc":{"verify_server_hostname":true}}}"#;
    assert!(check("a.json", text, dev()).unwrap_err().contains("conflicts with verify_server_hostname"));
    // The same value both ways is one setting.
    let text = format!(r#"{{{TLS_FILES},"tls":{{"defaults":{{"ca_file":"/tls/ca.pem"}}}}}}"#);
    assert!(check("a.json", &text, dev()).is_ok());
    let text = r#"{"tls":{"https":{"verify_server_hostname":true}}}"#;
    assert!(check("a.json", text, dev()).unwrap_err().contains("applies to the server RPC only"));
    let text = r#"{"tls":{"internal_rpc":{"verify_incomming":true}}}"#;
    let err = check("a.json", text, dev()).unwrap_err();
    assert_eq!(err, "DIR/a.json: tls.internal_rpc.verify_incomming: unknown configuration key");
}

#[test]
fn tls_versions_take_both_spellings_and_others_get_consuls_message() {
    for (name, v) in
        [("tls10", TlsVersion::Tls10), ("TLSv1_1", TlsVersion::Tls11), ("tls12", TlsVersion::Tls12)]
    {
        let c = check("a.json", &format!(r#"{{"tls_min_version":"{name}"}}"#), dev()).unwrap();
        assert_eq!(c.tls.https.min_version, v);
    }
    let err = check("a.json", r#"{"tls":{"defaults":{"tls_min_version":"tls14"}}}"#, dev()).unwrap_err();
    assert!(
        err.starts_with("DIR/a.json: tls.defaults.tls_min_version: TLSMinVersion: value tls14 not supported, please specify one of [tls10, tls11, tls12, tls13"),
        "{err}"
    );
}

#[test]
fn consul_start_up_checks_refuse_tls_settings_that_cannot_be_honoured() {
    let cases = [
        (
            r#"{"verify_incoming":true,"cert_file":"/c.pem","key_file":"/k.pem"}"#,
            "VerifyIncoming set but no CA certificates were provided",
        ),
        (
            r#"{"verify_incoming_https":true,"ca_file":"/ca.pem"}"#,
            "VerifyIncoming requires either a Cert and Key pair in the configuration file, or auto_encrypt/auto_config be enabled",
        ),
        (r#"{"verify_outgoing":true}"#, "VerifyOutgoing set, and no CA certificate provided!"),
        (r#"{"verify_server_hostname":true}"#, "VerifyOutgoing set, and no CA certificate provided!"),
        (
            r#"{"tls":{"defaults":{"verify_incoming":true}}}"#,
            "VerifyIncoming set but no CA certificates were provided",
        ),
        (r#"{"cert_file":"/c.pem","ca_file":"/ca.pem"}"#, "cert_file and key_file must be given together"),
    ];
    for (text, msg) in cases {
        let err = check("a.json", text, dev()).unwrap_err();
        assert!(err.contains(msg), "{text}: {err}");
    }
    // With everything given, verify_incoming and HTTPS start; plain HTTP can be turned off.
    let text = format!(r#"{{{TLS_FILES},"verify_incoming":true,"ports":{{"https":8501,"http":-1}}}}"#);
    let c = check("a.json", &text, dev()).unwrap();
    assert_eq!((c.ports.http, c.ports.https), (-1, 8501));
}

#[test]
fn encrypt_verify_keys_default_to_true_and_read_false_for_a_rollout() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = Config::load(&dev()).unwrap();
    assert!(c.encrypt_verify_incoming && c.encrypt_verify_outgoing);
    let p = write(&dir, "a.json", r#"{"encrypt_verify_incoming":false,"encrypt_verify_outgoing":false}"#);
    let (c, ignored) = Config::load(&Overrides { config_files: vec![p], ..dev() }).unwrap();
    assert!(!c.encrypt_verify_incoming && !c.encrypt_verify_outgoing);
    assert!(ignored.is_empty(), "{ignored:?}");
    let p = write(&dir, "b.json", r#"{"encrypt_verify_incoming":"yes"}"#);
    assert!(Config::load(&Overrides { config_files: vec![p], ..dev() }).is_err());
}

#[test]
fn https_port_without_a_certificate_is_not_served_as_in_consul() {
    for text in [
        r#"{"ports":{"https":8501}}"#,
        r#"{"ports":{"https":0},"tls":{"internal_rpc":{"cert_file":"/c.pem","key_file":"/k.pem"}}}"#,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "a.json", text);
        let o = Overrides { config_files: vec![p], ..dev() };
        let (c, notes) = Config::load(&o).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(c.ports.https, -1, "{text}");
        assert!(
            notes.iter().any(|n| n.starts_with("ports.https: no certificate for HTTPS")),
            "{text}: {notes:?}"
        );
    }
}
