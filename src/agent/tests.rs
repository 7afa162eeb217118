//! Tests for definition decoding, validation defaults and Go durations.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::catalog::{CheckDefinition, HealthStatus, Weights};

fn node() -> Node {
    Node {
        id: "id-1".into(),
        name: "agent1".into(),
        address: "10.0.0.1".into(),
        datacenter: "dc1".into(),
        tagged_addresses: BTreeMap::new(),
        meta: BTreeMap::new(),
        create_index: 0,
        modify_index: 0,
    }
}

fn check_invalid(v: Value, want: &str) {
    let def = decode_service_definition(&v).expect("decodes");
    let err = def.into_registration(&node()).expect_err("must be invalid");
    assert_eq!(err, DefinitionError::Invalid(want.into()), "for {v}");
}

fn check_duration(s: &str, want: Duration) {
    assert_eq!(parse_go_duration(s), Ok(want), "parsing {s}");
}

#[test]
fn go_durations_parse() {
    check_duration("10s", Duration::from_secs(10));
    check_duration("1m30s", Duration::from_secs(90));
    check_duration("100ms", Duration::from_millis(100));
    check_duration("1.5h", Duration::from_secs(5400));
    check_duration("2h45m", Duration::from_secs(2 * 3600 + 45 * 60));
    check_duration("0", Duration::ZERO);
    check_duration("+5s", Duration::from_secs(5));
    check_duration("3us", Duration::from_micros(3));
    check_duration("3µs", Duration::from_micros(3));
    check_duration("7ns", Duration::from_nanos(7));
    check_duration(".5s", Duration::from_millis(500));
    assert_eq!(parse_go_duration("10"), Err("time: missing unit in duration \"10\"".into()));
    assert_eq!(parse_go_duration("abc"), Err("time: invalid duration \"abc\"".into()));
    assert_eq!(parse_go_duration(""), Err("time: invalid duration \"\"".into()));
    assert_eq!(parse_go_duration("5x"), Err("time: unknown unit \"x\" in duration \"5x\"".into()));
    assert!(parse_go_duration("-5s").is_err());
    assert!(parse_go_duration("99999999999h").is_err());
}

#[test]
fn go_durations_format_round_trip() {
    for (d, s) in [
        (Duration::ZERO, "0s"),
        (Duration::from_secs(10), "10s"),
        (Duration::from_secs(90), "1m30s"),
        (Duration::from_secs(3600), "1h0m0s"),
        (Duration::from_millis(100), "100ms"),
        (Duration::from_millis(1500), "1.5s"),
        (Duration::from_nanos(1500), "1.5µs"),
        (Duration::from_nanos(7), "7ns"),
    ] {
        assert_eq!(format_go_duration(d), s);
        assert_eq!(parse_go_duration(s), Ok(d));
    }
}

#[test]
fn decodes_case_insensitive_keys_and_snake_case_aliases() {
    let v = json!({
        "name": "web", "ID": "web1", "tAgS": ["a", "b"], "PORT": 80, "address": "10.0.0.5",
        "meta": {"Version": "1"},
        "tagged_addresses": {"lan": {"address": "10.0.0.5", "port": 80}},
        "enable_tag_override": true,
        "check": {"ttl": "10s", "deregister_critical_service_after": "90m", "script_args": []},
        "Weights": {"passing": 3, "Warning": 1}
    });
    let def = decode_service_definition(&v).expect("decodes");
    assert_eq!(def.name, "web");
    assert_eq!(def.id, "web1");
    assert_eq!(def.tags, ["a", "b"]);
    assert_eq!(def.port, 80);
    assert_eq!(def.meta.get("Version").map(String::as_str), Some("1"), "meta keys are verbatim");
    assert!(def.enable_tag_override);
    assert_eq!(def.weights, Some((3, 1)));
    assert_eq!(def.checks.len(), 1);
    assert_eq!(def.checks[0].ttl, Duration::from_secs(10));
    assert_eq!(def.checks[0].deregister_critical_service_after, Duration::from_secs(90 * 60));
}

#[test]
fn unknown_field_is_named() {
    let err = decode_service_definition(&json!({"Name": "web", "Bogus": 1})).expect_err("unknown");
    assert_eq!(err, DefinitionError::UnknownField("Bogus".into()));
    assert_eq!(err.to_string(), "json: unknown field \"Bogus\"");
    let err = decode_service_definition(&json!({"Name": "web", "Check": {"TTL": "1s", "Nope": true}}))
        .expect_err("unknown in check");
    assert_eq!(err, DefinitionError::UnknownField("Nope".into()));
    assert!(err.is_decode());
}

#[test]
fn wrong_types_are_decode_errors() {
    let err = decode_service_definition(&json!({"Name": 5})).expect_err("type");
    assert!(err.is_decode());
    let err =
        decode_service_definition(&json!({"Name": "x", "Check": {"TTL": "soon"}})).expect_err("duration");
    assert_eq!(err, DefinitionError::Decode("time: invalid duration \"soon\"".into()));
    // Numbers are nanoseconds.
    let def =
        decode_service_definition(&json!({"Name": "x", "Check": {"TTL": 2_000_000_000u64}})).expect("ns");
    assert_eq!(def.checks[0].ttl, Duration::from_secs(2));
}

#[test]
fn defaults_for_ids_names_and_status() {
    let def =
        decode_service_definition(&json!({"Name": "web", "Port": 80, "Check": {"TTL": "10s"}})).expect("ok");
    let (reg, ttls) = def.into_registration(&node()).expect("valid");
    let s = reg.service.as_ref().expect("service");
    assert_eq!(s.id, "web");
    assert_eq!(s.node, "agent1");
    assert_eq!(s.weights, Weights { passing: 1, warning: 1 });
    assert_eq!(reg.checks.len(), 1);
    let c = &reg.checks[0];
    assert_eq!(c.check_id, "service:web");
    assert_eq!(c.name, "Service 'web' check");
    assert_eq!(c.status, HealthStatus::Critical);
    assert_eq!(c.check_type, "ttl");
    assert_eq!(c.service_id, "web");
    assert_eq!(c.definition.ttl_ns, 10_000_000_000);
    assert_eq!(ttls, vec![TtlSpec { check_id: "service:web".into(), ttl: Duration::from_secs(10) }]);

    let def = decode_service_definition(&json!({
        "Name": "web", "ID": "web-1",
        "Check": {"TTL": "10s", "Status": "passing"},
        "Checks": [{"TTL": "5s"}, {"CheckID": "mine", "HTTP": "http://x/", "Interval": "100ms"}]
    }))
    .expect("ok");
    let (reg, ttls) = def.into_registration(&node()).expect("valid");
    let ids: Vec<_> = reg.checks.iter().map(|c| c.check_id.as_str()).collect();
    assert_eq!(ids, ["service:web-1:1", "service:web-1:2", "mine"]);
    assert_eq!(reg.checks[0].status, HealthStatus::Passing);
    assert_eq!(reg.checks[2].check_type, "http");
    assert_eq!(reg.checks[2].definition.interval_ns, 1_000_000_000, "interval raised to 1s");
    assert_eq!(ttls.len(), 2);
}

#[test]
fn invalid_definitions() {
    check_invalid(json!({"Port": 80}), "Missing service name");
    check_invalid(json!({"Name": "w", "Address": "0.0.0.0"}), "Invalid service address");
    check_invalid(json!({"Name": "w", "Address": "::"}), "Invalid service address");
    check_invalid(
        json!({"Name": "w", "Weights": {"Passing": 0, "Warning": 1}}),
        "Invalid Weights: Passing must be greater than 0",
    );
    check_invalid(
        json!({"Name": "w", "Weights": {"Passing": 1, "Warning": -1}}),
        "Invalid Weights: Warning must be greater or equal than 0",
    );
    check_invalid(
        json!({"Name": "w", "Check": {"TTL": "1s", "Status": "bogus"}}),
        "Status for checks must 'passing', 'warning', 'critical'",
    );
    check_invalid(
        json!({"Name": "w", "Check": {"TTL": "1s", "Interval": "1s"}}),
        "Invalid check: Interval and TTL cannot both be specified",
    );
    check_invalid(
        json!({"Name": "w", "Check": {"HTTP": "http://x"}}),
        "Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks",
    );
    check_invalid(json!({"Name": "w", "Check": {}}), "Invalid check: TTL must be > 0 for TTL checks");
    check_invalid(
        json!({"Name": "w", "Meta": {"consul-x": "1"}}),
        "Invalid Service Meta: Key prefix 'consul-' is reserved for internal use: consul-x",
    );
    check_invalid(json!({"Name": "w", "Port": 70000}), "Invalid port: 70000");
}

/// Decodes a service with one check and returns the stored check.
fn check_stored(check: Value) -> Check {
    let def = decode_service_definition(&json!({"Name": "web", "Check": check})).expect("decodes");
    let (reg, _) = def.into_registration(&node()).expect("valid");
    reg.checks.into_iter().next().expect("one check")
}

#[test]
fn probe_fields_are_stored_in_the_definition() {
    let c = check_stored(json!({
        "HTTP": "https://x/h", "Method": "POST", "Header": {"X-A": ["1", "2"]}, "Body": "{}",
        "tls_skip_verify": true, "TLSServerName": "x.internal", "DisableRedirects": true,
        "Interval": "5s", "Timeout": "1s", "SuccessBeforePassing": 2, "FailuresBeforeWarning": 1,
        "FailuresBeforeCritical": 3, "OutputMaxSize": 100,
    }));
    assert_eq!(c.check_type, "http");
    let d = &c.definition;
    assert_eq!(
        (d.method.as_str(), d.body.as_str(), d.tls_server_name.as_str()),
        ("POST", "{}", "x.internal")
    );
    assert_eq!(d.header.get("X-A"), Some(&vec!["1".to_owned(), "2".to_owned()]));
    assert!(d.tls_skip_verify && d.disable_redirects);
    assert_eq!((d.success_before_passing, d.failures_before_warning, d.failures_before_critical), (2, 1, 3));
    assert_eq!(d.output_max_size, 100);
    // H2PING uses TLS unless told otherwise; other kinds never store it.
    let h = check_stored(json!({"H2PING": "x:443", "Interval": "5s"}));
    assert!(h.definition.h2ping_use_tls && h.check_type == "h2ping");
    let h = check_stored(json!({"H2PING": "x:443", "H2PingUseTLS": false, "Interval": "5s"}));
    assert!(!h.definition.h2ping_use_tls);
    let g = check_stored(json!({"GRPC": "x:9090/svc", "GRPCUseTLS": true, "Interval": "5s"}));
    assert!(g.definition.grpc_use_tls && g.check_type == "grpc");
    let t = check_stored(json!({"TCP": "x:443", "TCPUseTLS": true, "Interval": "5s"}));
    assert!(t.definition.tcp_use_tls);
    let u = check_stored(json!({"UDP": "x:53", "Interval": "5s"}));
    assert_eq!((u.check_type.as_str(), u.definition.udp.as_str()), ("udp", "x:53"));
    let s = check_stored(json!({"ScriptArgs": ["/bin/check", "-q"], "Interval": "5s"}));
    assert_eq!(s.check_type, "script");
    assert_eq!(s.definition.script_args, vec!["/bin/check".to_owned(), "-q".to_owned()]);
    // AliasNode alone is an alias check too.
    let a = check_stored(json!({"AliasNode": "n2"}));
    assert_eq!((a.check_type.as_str(), a.definition.alias_node.as_str()), ("alias", "n2"));
    // Intervals under 1s are raised to Consul's minimum.
    let t = check_stored(json!({"TCP": "x:1", "Interval": "200ms"}));
    assert_eq!(t.definition.interval_ns, 1_000_000_000);
}

#[test]
fn probe_definitions_are_validated() {
    check_invalid(
        json!({"Name": "w", "Check": {"GRPC": "x:1"}}),
        "Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks",
    );
    check_invalid(
        json!({"Name": "w", "Check": {"TCP": "x:1", "Interval": "1s", "FailuresBeforeWarning": -1}}),
        "Invalid check: SuccessBeforePassing, FailuresBeforeWarning and FailuresBeforeCritical must not be negative",
    );
    let bad = decode_service_definition(&json!({"Name": "w", "Check": {"Header": {"A": "notalist"}}}));
    assert!(matches!(bad, Err(DefinitionError::Decode(_))), "{bad:?}");
}

#[test]
fn stored_definitions_without_the_new_fields_still_decode() {
    // A check written to the Raft log before the probe fields existed.
    let old = r#"{"ttl_ns":0,"interval_ns":10,"timeout_ns":0,"deregister_critical_service_after_ns":0,"http":"http://x","tcp":""}"#;
    let d: CheckDefinition = serde_json::from_str(old).expect("decodes");
    assert_eq!(d.http, "http://x");
    assert_eq!(d.method, "");
    // Empty new fields are not written, so old readers see the old shape.
    assert_eq!(serde_json::to_string(&d).unwrap(), old);
}

fn multi(errs: &[&str]) -> String {
    let errs: Vec<String> = errs.iter().map(|e| (*e).to_owned()).collect();
    crate::catalog::mesh::multi_error(&errs).expect("errors")
}

#[test]
fn connect_kinds_are_validated_with_consuls_messages_in_consuls_order() {
    // [live on Consul 1.8.7]
    check_invalid(
        json!({"Name": "p", "Kind": "connect-proxy"}),
        &multi(&[
            "Proxy.DestinationServiceName must be non-empty for Connect proxy services",
            "Port must be set for a Connect proxy",
        ]),
    );
    check_invalid(
        json!({"Name": "g", "Kind": "terminating-gateway", "Connect": {"SidecarService": {}},
               "Proxy": {"DestinationServiceName": "x", "LocalServicePort": 3,
                         "Upstreams": [{"DestinationName": "a", "LocalBindPort": 1}]}}),
        &multi(&[
            "Port must be non-zero for a terminating-gateway",
            "A terminating-gateway cannot have a sidecar service defined",
            "The Proxy.DestinationServiceName configuration is invalid for a terminating-gateway",
            "The Proxy.LocalServicePort configuration is invalid for a terminating-gateway",
            "The Proxy.Upstreams configuration is invalid for a terminating-gateway",
        ]),
    );
    check_invalid(
        json!({"Name": "p", "Kind": "connect-proxy", "Port": 5, "Connect": {"Native": true},
               "Proxy": {"DestinationServiceName": "x",
                         "Upstreams": [{"DestinationType": "zz", "DestinationName": "", "LocalBindPort": 0},
                                       {"DestinationName": "a", "LocalBindPort": 1},
                                       {"DestinationName": "b", "LocalBindPort": 1, "LocalBindAddress": "127.0.0.1"}],
                         "Expose": {"Paths": [{"Path": "", "ListenerPort": 0, "Protocol": "tcp"},
                                              {"Path": "/a", "ListenerPort": 0},
                                              {"Path": "/b", "ListenerPort": 7, "Protocol": "HTTP"}]}}}),
        &multi(&[
            "A Proxy cannot also be Connect Native, only typical services",
            "unknown upstream destination type: \"zz\"",
            "upstreams cannot contain duplicates by local bind address and port; \"127.0.0.1:1\" is specified twice",
            "expose.paths: empty path exposed",
            "expose.paths: invalid listener port: 0",
            "protocol 'tcp' not supported for path: , must be in: [http http2]",
            "expose.paths: duplicate listener ports exposed",
            "expose.paths: invalid listener port: 0",
        ]),
    );
    check_invalid(
        json!({"Name": "s", "Port": 1, "Connect": {"SidecarService": {"ID": "x", "Connect": {"SidecarService": {}}}}}),
        &multi(&[
            "A SidecarService cannot specify an ID as this is managed by the agent",
            "A SidecarService cannot have a nested SidecarService",
        ]),
    );
    // Consul 1.8 accepts an ingress gateway without a port, and any other kind as given.
    for v in [json!({"Name": "i", "Kind": "ingress-gateway"}), json!({"Name": "b", "Kind": "bogus"})] {
        let (reg, _) = decode_service_definition(&v).unwrap().into_registration(&node()).unwrap();
        assert_eq!(reg.service.unwrap().mesh.kind, v["Kind"]);
    }
    let err =
        decode_service_definition(&json!({"Name": "p", "Proxy": {"TransparentProxy": {}}})).unwrap_err();
    assert_eq!(err, DefinitionError::UnknownField("TransparentProxy".into()));
}

#[test]
fn a_sidecar_gets_consuls_defaults_from_its_parent() {
    let parent = decode_service_definition(&json!({
        "Name": "api", "ID": "api-1", "Tags": ["a"], "Meta": {"k": "v"}, "Port": 9000, "Address": "10.0.0.5",
        "Connect": {"SidecarService": {"Proxy": {"Upstreams": [{"DestinationName": "db", "LocalBindPort": 9191}]}}}
    }))
    .unwrap();
    let cat = crate::catalog::CatalogState::default();
    let sidecar = parent.sidecar_for(&cat, "agent1", &[21000]).unwrap().expect("a sidecar");
    let (reg, _) = sidecar.into_registration(&node()).unwrap();
    let s = reg.service.unwrap();
    assert_eq!((s.id.as_str(), s.name.as_str(), s.port), ("api-1-sidecar-proxy", "api-sidecar-proxy", 21001));
    assert_eq!((s.tags.clone(), s.address.as_str()), (vec!["a".to_owned()], "10.0.0.5"));
    assert_eq!(s.meta.get("k").map(String::as_str), Some("v"));
    assert!(s.mesh.is_proxy() && s.mesh.sidecar && !s.mesh.native);
    let p = &s.mesh.proxy;
    assert_eq!(
        (
            p.destination_service_name.as_str(),
            p.destination_service_id.as_str(),
            p.local_service_address.as_str()
        ),
        ("api", "api-1", "127.0.0.1")
    );
    assert_eq!(p.local_service_port, 9000);
    assert_eq!(p.upstreams[0].destination_type, "service");
    let checks: Vec<(&str, &str, &str)> =
        reg.checks.iter().map(|c| (c.check_id.as_str(), c.name.as_str(), c.check_type.as_str())).collect();
    assert_eq!(
        checks,
        [
            ("service:api-1-sidecar-proxy:1", "Connect Sidecar Listening", "tcp"),
            ("service:api-1-sidecar-proxy:2", "Connect Sidecar Aliasing api-1", "alias"),
        ]
    );
    assert_eq!(reg.checks[0].definition.tcp, "10.0.0.5:21001");
    assert_eq!(reg.checks[0].definition.interval_ns, 10_000_000_000);
    assert_eq!(reg.checks[1].definition.alias_service, "api-1");
    // Its own check replaces the two defaults; its own port is kept.
    let own = decode_service_definition(&json!({
        "Name": "db", "Port": 5432,
        "Connect": {"SidecarService": {"Port": 22000, "Check": {"TTL": "10s"}}}
    }))
    .unwrap();
    let (reg, _) = own.sidecar_for(&cat, "agent1", &[]).unwrap().unwrap().into_registration(&node()).unwrap();
    assert_eq!(reg.service.unwrap().port, 22000);
    let ids: Vec<&str> = reg.checks.iter().map(|c| c.check_id.as_str()).collect();
    assert_eq!(ids, ["service:db-sidecar-proxy"]);
}
