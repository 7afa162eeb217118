//! HTTP over a Unix socket (`addresses.http = "… unix:///path"`, `unix_sockets {}`), as
//! Consul 1.8.7 serves it: beside TCP, the file replaced at start and removed at stop, its mode
//! set, listed in `DebugConfig.HTTPAddrs`; a bad address refuses the start.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::{Agent, cairn_bin};

/// One HTTP/1.1 request over the socket at `path`: (status, body).
fn request(path: &Path, method: &str, uri: &str, body: &str) -> (u16, String) {
    let mut conn = UnixStream::connect(path).unwrap();
    write!(
        conn,
        "{method} {uri} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    conn.read_to_string(&mut raw).unwrap();
    let (head, rest) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    (status, if chunked { dechunk(rest) } else { rest.to_owned() })
}

/// A chunked body's data.
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.push_str(&tail[..n]);
        rest = &tail[n + 2..];
    }
    out
}

#[test]
fn http_serves_on_a_unix_socket_beside_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("http.sock");
    // A file left at the path (an agent killed without cleanup) is replaced, as in Consul.
    std::fs::write(&sock, "stale").unwrap();
    let config = dir.path().join("unix.json");
    let text = format!(
        r#"{{"addresses":{{"http":"127.0.0.1 unix://{}"}},"unix_sockets":{{"mode":"600"}}}}"#,
        sock.display()
    );
    std::fs::write(&config, text).unwrap();
    let mut agent = Agent::dev(&["--config-file", config.to_str().unwrap()]);

    let meta = std::fs::metadata(&sock).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    let (status, body) = request(&sock, "GET", "/v1/agent/self", "");
    assert_eq!(status, 200, "{body}");
    let me: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(me["Config"]["NodeName"], "node1");
    let addrs = me["DebugConfig"]["HTTPAddrs"].clone();
    assert_eq!(
        addrs,
        serde_json::json!([format!("tcp://{}", agent.http), format!("unix://{}", sock.display())])
    );
    assert_eq!(me["DebugConfig"]["UnixSocketMode"], "600");

    // One agent behind both: a write over the socket is read over TCP.
    assert_eq!(request(&sock, "PUT", "/v1/kv/over/unix", "hello").0, 200);
    let (s, _, kv) = agent.get_full("/v1/kv/over/unix?raw").unwrap();
    assert_eq!((s, kv.as_str()), (200, "hello"));

    // The CLI reaches the agent through the socket too (Consul's CONSUL_HTTP_ADDR=unix://…).
    let out = Command::new(cairn_bin())
        .args(["kv", "get", "over/unix"])
        .env("CONSUL_HTTP_ADDR", format!("unix://{}", sock.display()))
        .env_remove("CAIRN_HTTP_ADDR")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hello", "{out:?}");

    assert_eq!(agent.terminate(), Some(0));
    assert!(!sock.exists(), "the socket file is removed when the agent stops");
}

#[test]
fn a_bad_http_address_refuses_the_start() {
    let dir = tempfile::tempdir().unwrap();
    for (value, says) in [
        ("bogus", r#""bogus" is not an IP address"#),
        ("unix://", "a unix:// address needs a socket path"),
        ("unix:///nonexistent-dir/x/http.sock", "setting up the HTTP socket /nonexistent-dir/x/http.sock"),
    ] {
        let file = dir.path().join("bad.json");
        std::fs::write(&file, serde_json::json!({"addresses": {"http": value}}).to_string()).unwrap();
        let out = Command::new(cairn_bin())
            .args(["agent", "--dev", "--http-port", "0", "--dns-port", "0", "--server-port", "0"])
            .args(["--serf-lan-port", "0", "--config-file", file.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{value}: {err}");
        assert!(err.contains(says), "{value}: {err}");
    }
}
