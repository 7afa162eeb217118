//! Architecture invariants checked on the source tree (rust-analyzer's "tidy" tests).
//!
//! These are the invariants of ARCHITECTURE.md that the type system does not enforce.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn src(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(sub)
}

/// Non-test code of a file: everything before a `#[cfg(test)]` module and outside `tests.rs`.
fn code(p: &Path) -> String {
    if p.file_name().is_some_and(|n| n == "tests.rs") {
        return String::new();
    }
    let text = std::fs::read_to_string(p).unwrap();
    match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

fn offenders(dir: &str, forbidden: &[&str]) -> Vec<String> {
    let mut bad = Vec::new();
    for p in rust_files(&src(dir)) {
        let text = code(&p);
        for f in forbidden {
            if text.contains(f) {
                bad.push(format!("{} uses {f}", p.display()));
            }
        }
    }
    bad
}

#[test]
fn dns_path_takes_no_lock_opens_no_lmdb_txn_and_never_touches_raft() {
    let bad = offenders(
        "dns",
        &[
            "Mutex",
            "RwLock",
            "crate::raft",
            "crate::store",
            "heed",
            "read_txn",
            "write_txn",
            "crate::http",
            ".lock()",
        ],
    );
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn static_zone_lookup_is_pure_and_takes_no_lock() {
    let text = code(&src("zone/lookup.rs"));
    for f in
        ["Mutex", "RwLock", ".lock()", "std::fs", "tokio", "SystemTime", "Instant", "rand::", "crate::raft"]
    {
        assert!(!text.contains(f), "zone/lookup.rs uses {f}");
    }
}

#[test]
fn apply_is_deterministic() {
    for file in ["catalog/apply.rs", "catalog/apply/kv.rs", "catalog/command.rs", "catalog/kv.rs"] {
        // Code lines only: the module doc may name what apply avoids.
        let text: String = code(&src(file))
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        for f in ["Instant", "SystemTime", "rand::", "rng", "std::fs", "tokio", "env::"] {
            assert!(!text.contains(f), "{file} uses {f}");
        }
    }
}

#[test]
fn only_the_state_machine_mutates_the_catalog() {
    let mutators = [
        "upsert_node(",
        "delete_node(",
        "upsert_service(",
        "delete_service(",
        "upsert_check(",
        "delete_check(",
        "upsert_query(",
        "delete_query(",
        "put_entry(",
        "delete_entry(",
        "upsert_session(",
        "remove_session(",
        "set_lock_delay(",
        "settle_clock(",
        "reap_tombstones(",
        "kv_mut(",
    ];
    let mut bad = Vec::new();
    for p in rust_files(&src("")) {
        let rel = p.strip_prefix(src("")).unwrap().to_string_lossy().into_owned();
        if rel.starts_with("catalog/") {
            continue;
        }
        let text = code(&p);
        for m in mutators {
            if text.contains(&format!(".{m}")) {
                bad.push(format!("{rel} calls {m}"));
            }
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn consul_json_shapes_live_only_in_the_http_layer() {
    let mut bad = Vec::new();
    for dir in ["catalog", "dns", "raft", "snapshot", "store", "health", "config", "local"] {
        bad.extend(offenders(dir, &["PascalCase", "\"ServiceID\"", "\"CheckID\""]));
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn the_agent_local_state_feeds_the_catalog_only_through_proposals() {
    // It reads published snapshots and proposes; no store, no Raft internals, no HTTP shapes.
    let bad =
        offenders("local", &["crate::store", "heed", ".raft()", "client_write", "crate::http", "crate::rpc"]);
    assert!(bad.is_empty(), "{bad:#?}");
    let text: String = rust_files(&src("local")).iter().map(|p| code(p)).collect();
    assert!(text.contains(".propose("), "local/ proposes its changes");
}

#[test]
fn only_the_state_machine_or_a_client_replica_publishes_snapshots() {
    let mut bad = Vec::new();
    for p in rust_files(&src("")) {
        let rel = p.strip_prefix(src("")).unwrap().to_string_lossy().into_owned();
        // A client agent has no state machine: its replica (`replica/client.rs`) publishes.
        if rel.starts_with("raft/state_machine") || rel.starts_with("snapshot/") || rel == "replica/client.rs"
        {
            continue;
        }
        if code(&p).contains(".publish(") {
            bad.push(rel);
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn every_source_file_starts_with_a_module_doc() {
    let mut bad = Vec::new();
    for p in rust_files(&src("")) {
        let text = std::fs::read_to_string(&p).unwrap();
        if !text.starts_with("//!") {
            bad.push(p.display().to_string());
        }
    }
    assert!(bad.is_empty(), "files without a leading //! doc: {bad:#?}");
}
