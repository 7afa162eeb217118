//! py-consul (the maintained Python Consul client, from PyPI) drives a live agent.
//!
//! `tests/py/run` creates its own virtualenv (under `target/`), installs the pinned client and
//! runs `tests/py/test_py_consul.py`, whose fixtures start real agents with `CAIRN_BIN`.

use std::process::Command;

#[test]
fn py_consul_registers_reads_and_watches() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(format!("{root}/tests/py/run"))
        .env("CAIRN_BIN", crate::support::cairn_bin())
        .output()
        .expect("run tests/py/run (needs python3)");
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "py-consul tests failed:\n{text}");
}
