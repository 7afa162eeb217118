//! Config loading of the WAN keys: `ports.serf_wan`, `retry_join_wan`, `start_join_wan`,
//! `advertise_addr_wan` and their flags.

use super::*;

#[test]
fn wan_keys_load_from_files_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.json");
    let text = r#"{"server": true, "data_dir": "/tmp/x", "ports": {"serf_wan": 9302},
        "retry_join_wan": ["10.1.0.1"], "start_join_wan": ["10.1.0.2:9302"], "advertise_addr_wan": "203.0.113.5"}"#;
    std::fs::write(&p, text).unwrap();
    let o = Overrides {
        config_files: vec![p.clone()],
        join_wan: vec!["10.1.0.3".into()],
        ..Overrides::default()
    };
    let (c, ignored) = Config::load(&o).unwrap();
    assert_eq!(c.ports.serf_wan, 9302);
    assert_eq!(c.retry_join_wan, ["10.1.0.1", "10.1.0.2:9302", "10.1.0.3"]);
    assert_eq!(c.advertise_addr_wan, Some("203.0.113.5".parse().unwrap()));
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
    assert_eq!((c.ports.serf_wan, c.advertise_addr_wan), (-1, Some("198.51.100.1".parse().unwrap())));
    assert_eq!(
        Config::load(&Overrides { dev: true, ..Overrides::default() }).unwrap().0.ports.serf_wan,
        8302
    );
    let bad = Overrides {
        config_files: vec![p],
        retry_join_wan: vec!["h:notaport".into()],
        ..Overrides::default()
    };
    let err = Config::load(&bad).unwrap_err().to_string();
    assert!(err.contains("-retry-join-wan"), "{err}");
}
