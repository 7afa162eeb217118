//! Config loading of the WAN keys: `ports.serf_wan`, `retry_join_wan`, `start_join_wan`,
//! `advertise_addr_wan` and their flags.

use std::time::Duration;

use super::*;

#[test]
fn wan_keys_load_from_files_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.json");
    let text = r#"{"server": true, "data_dir": "/tmp/x", "ports": {"serf_wan": 9302},
        "retry_join_wan": ["10.1.0.1"], "start_join_wan": ["10.1.0.2:9302"], "advertise_addr_wan": "203.0.113.5",
        "retry_interval_wan": "5s", "retry_max_wan": 3, "serf_wan": "10.0.0.9", "translate_wan_addrs": true}"#;
    std::fs::write(&p, text).unwrap();
    let o = Overrides {
        config_files: vec![p.clone()],
        join_wan: vec!["10.1.0.3".into()],
        ..Overrides::default()
    };
    let (c, ignored) = Config::load(&o).unwrap();
    assert_eq!(c.ports.serf_wan, 9302);
    assert_eq!(c.wan.retry_join, ["10.1.0.1", "10.1.0.2:9302", "10.1.0.3"]);
    assert_eq!(c.wan.advertise, Some("203.0.113.5".parse().unwrap()));
    assert_eq!(
        (c.wan.retry_interval, c.wan.retry_max, c.wan.bind),
        (Duration::from_secs(5), 3, Some("10.0.0.9".parse().unwrap()))
    );
    assert!(
        !ignored.iter().any(|k| k.contains("serf_wan") || k.contains("advertise_addr_wan")),
        "{ignored:?}"
    );
    let o = Overrides {
        config_files: vec![p.clone()],
        serf_wan_port: Some(-1),
        advertise_wan: Some("198.51.100.1".into()),
        ..Overrides::default()
    };
    let (c, _) = Config::load(&o).unwrap();
    assert_eq!((c.ports.serf_wan, c.wan.advertise), (-1, Some("198.51.100.1".parse().unwrap())));
    assert_eq!(
        Config::load(&Overrides { dev: true, ..Overrides::default() }).unwrap().0.ports.serf_wan,
        8302
    );
    let bad = Overrides {
        config_files: vec![p.clone()],
        retry_join_wan: vec!["h:notaport".into()],
        ..Overrides::default()
    };
    let err = Config::load(&bad).unwrap_err().to_string();
    assert!(err.contains("-retry-join-wan"), "{err}");
    // Who may gossip on the WAN port is a security setting cairn does not enforce yet.
    std::fs::write(&p, r#"{"serf_wan_allowed_cidrs": ["10.0.0.0/8"]}"#).unwrap();
    let err =
        Config::load(&Overrides { config_files: vec![p], dev: true, ..Overrides::default() }).unwrap_err();
    assert!(err.to_string().contains("\"serf_wan_allowed_cidrs\" is not supported yet"), "{err}");
}
