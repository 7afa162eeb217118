//! py-consul (the maintained Python Consul client, from PyPI) drives a live agent.
//!
//! `tests/py/run` creates its own virtualenv (under `target/`), installs the pinned client and
//! runs the pytest files in `tests/py/`, whose fixtures start real agents with `CAIRN_BIN`:
//! the ACL file (`test_py_consul_acl.py`, an agent in default-deny mode) in its own test,
//! everything else in the other.

use std::process::Command;

/// Runs `tests/py/run -k <selection>` and fails with pytest's output.
fn pytest(selection: &str) {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(format!("{root}/tests/py/run"))
        .args(["-k", selection])
        .env("CAIRN_BIN", crate::support::cairn_bin())
        .output()
        .expect("run tests/py/run (needs python3)");
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "py-consul tests ({selection}) failed:\n{text}");
}

#[test]
fn py_consul_registers_reads_and_watches() {
    pytest("not test_py_consul_acl");
}

/// KV with a token allowed, without it `ACLPermissionDenied`; policy and token made with
/// py-consul's own ACL calls.
#[test]
fn py_consul_with_a_token() {
    pytest("test_py_consul_acl");
}
