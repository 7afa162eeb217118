//! TLS on the server RPC with real processes (issue 19, items 1 and 7): certificates made by
//! the built `cairn tls ca create` / `cairn tls cert create` in a temporary directory.
//!
//! Three servers and a client agent with `verify_incoming`, `verify_outgoing` and
//! `verify_server_hostname` elect a leader, replicate a write forwarded by the client agent and
//! feed its replica. Refused, each with a log line while the server keeps serving: plain text
//! (a forged `Forward`, `Join`, `Remove` or `AppendEntries` frame) under `verify_incoming`, a
//! TLS peer without a certificate, with one from another CA or an expired one, garbage after
//! the TLS first byte, a silent TLS start, and a server holding a `-client` certificate (its
//! name, `client.dc1.consul`, is not `server.dc1.consul`, so no server replicates to it). With
//! `encrypt` as well, a valid certificate alone is not enough: the key challenge runs inside
//! TLS and both must pass. A client certificate may forward and subscribe but speaks no Raft
//! and changes no membership. A SIGHUP certificate reload reaches new connections while an
//! open one carries on.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::cluster::{Cluster, free_ports, wait_until};
use crate::rpc_auth::{
    APPEND, JOIN_FAKE, call, closed_unanswered, connect, forward_kv, keygen, kv_status, peers, prove, remove,
    send,
};
use crate::support::{Agent, cairn_bin};

/// Consul's log line for plain text under `verify_incoming`.
const NOT_TLS: &str = "Non-TLS connection attempted with VerifyIncoming set";

/// A CA made by `cairn tls ca create` and certificates made by `cairn tls cert create`.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Self {
        let pki = Self { dir: tempfile::tempdir().unwrap() };
        pki.cairn(&["tls", "ca", "create"]);
        pki
    }

    fn cairn(&self, args: &[&str]) {
        let out = Command::new(cairn_bin()).args(args).current_dir(self.dir.path()).output().unwrap();
        assert!(out.status.success(), "cairn {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn ca(&self) -> PathBuf {
        self.path("consul-agent-ca.pem")
    }

    /// `cairn tls cert create -<kind>` (`server`, `client`, `cli`): the new certificate and key.
    fn cert(&self, kind: &str) -> (PathBuf, PathBuf) {
        let n = (0..).find(|n| !self.path(&format!("dc1-{kind}-consul-{n}.pem")).exists()).unwrap();
        self.cairn(&["tls", "cert", "create", &format!("-{kind}")]);
        (
            self.path(&format!("dc1-{kind}-consul-{n}.pem")),
            self.path(&format!("dc1-{kind}-consul-{n}-key.pem")),
        )
    }

    /// A client certificate signed by this CA that expired yesterday (`openssl`: `cairn tls`
    /// refuses a lifetime that ends in the past).
    fn expired_client(&self) -> (PathBuf, PathBuf) {
        let ext = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
                   extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:client.dc1.consul\n";
        std::fs::write(self.path("expired.ext"), ext).unwrap();
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl").args(args).current_dir(self.dir.path()).output().unwrap();
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        openssl(&["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "expired-key.pem"]);
        openssl(&[
            "req",
            "-new",
            "-key",
            "expired-key.pem",
            "-subj",
            "/CN=client.dc1.consul",
            "-out",
            "e.csr",
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            "e.csr",
            "-CA",
            "consul-agent-ca.pem",
            "-CAkey",
            "consul-agent-ca-key.pem",
            "-set_serial",
            "77",
            "-days",
            "-1",
            "-extfile",
            "expired.ext",
            "-out",
            "expired.pem",
        ]);
        (self.path("expired.pem"), self.path("expired-key.pem"))
    }

    /// An agent config file (JSON) with this CA, `cert`/`key` and all three verify flags.
    fn config(&self, name: &str, (cert, key): &(PathBuf, PathBuf)) -> String {
        let file = self.path(&format!("{name}.json"));
        let json = format!(
            r#"{{"ca_file":{:?},"cert_file":{cert:?},"key_file":{key:?},"verify_incoming":true,
                "verify_outgoing":true,"verify_server_hostname":true,
                "limits":{{"rpc_handshake_timeout":"2s"}}}}"#,
            self.ca()
        );
        std::fs::write(&file, json).unwrap();
        file.display().to_string()
    }
}

fn certs(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path).unwrap().collect::<Result<_, _>>().unwrap()
}

/// A TLS connection to the server RPC on `port`, trusting `ca`, presenting `cert` if given,
/// expecting the name `server.dc1.consul`. The handshake completes at the first read or write.
fn tls(port: u16, ca: &Path, cert: Option<&(PathBuf, PathBuf)>) -> StreamOwned<ClientConnection, TcpStream> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder =
        ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions().unwrap();
    let mut roots = RootCertStore::empty();
    for c in certs(ca) {
        roots.add(c).unwrap();
    }
    let builder = builder.with_root_certificates(roots);
    let config = match cert {
        Some((cert, key)) => {
            builder.with_client_auth_cert(certs(cert), PrivateKeyDer::from_pem_file(key).unwrap()).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    let name = "server.dc1.consul".try_into().unwrap();
    let conn = ClientConnection::new(Arc::new(config), name).unwrap();
    StreamOwned::new(conn, connect(port))
}

/// Whether the server ends the TLS connection without answering a frame: closed, reset or a
/// TLS alert, but not silence until the read timeout (a hung connection).
fn tls_refused(s: &mut StreamOwned<ClientConnection, TcpStream>, frame: &str) -> bool {
    // With TLS 1.3 the client's side completes before the server checks its certificate, so
    // the write may pass and the refusal comes at the read.
    if s.write_all(&frame_bytes(frame)).is_err() {
        return true;
    }
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(n) => n == 0,
        Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
    }
}

fn frame_bytes(json: &str) -> Vec<u8> {
    let mut frame = (json.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(json.as_bytes());
    frame
}

/// The forged frames of `rpc_auth`: a forwarded write, a join, a remove and an append.
fn forged() -> [String; 4] {
    [forward_kv("forged"), JOIN_FAKE.to_owned(), remove(1), APPEND.to_owned()]
}

#[test]
fn three_tls_servers_and_a_tls_client_agent_replicate_and_refuse_plain_text_and_certless_peers() {
    let pki = Pki::new();
    let server_config = pki.config("server", &pki.cert("server"));
    let client_config = pki.config("client", &pki.cert("client"));
    let c = Cluster::start(3, &["--config-file", &server_config]);
    let leader = c.leader();
    wait_until(Duration::from_secs(30), "three voters", || peers(c.server(leader)) == 3, || c.logs());

    let dir = c.dir.path().join("c0").display().to_string();
    let mut args = vec!["--node".to_owned(), "c0".into(), "--data-dir".into(), dir];
    args.extend(["--config-file".to_owned(), client_config]);
    for p in &c.ports {
        args.extend(["--retry-join".to_owned(), format!("127.0.0.1:{p}")]);
    }
    let client = Agent::spawn(&args.iter().map(String::as_str).collect::<Vec<_>>());
    client.wait_ready();
    // A write on the client agent is forwarded over TLS and replicates to every server.
    client.put_ok("/v1/kv/from-client", "c");
    for i in 0..3 {
        let what = "the client's write on every server";
        wait_until(
            Duration::from_secs(10),
            what,
            || kv_status(c.server(i), "from-client") == 200,
            || c.logs(),
        );
    }
    // A registration on a server reaches the client's replica (its stale read is local).
    let reg = r#"{"Node":"ext1","Address":"10.1.2.3","Service":{"Service":"web","Port":80}}"#;
    c.server(leader).put_ok("/v1/catalog/register", reg);
    let seen = || {
        client
            .get("/v1/catalog/service/web?stale")
            .is_ok_and(|(s, v)| s == 200 && v.as_array().is_some_and(|a| a.len() == 1))
    };
    wait_until(Duration::from_secs(10), "the registration on the client", seen, || client.log());

    // Plain text under verify_incoming: every forged frame is closed unanswered, logged.
    let rpc = c.ports[leader];
    for frame in forged() {
        let mut s = connect(rpc);
        send(&mut s, &frame);
        assert!(closed_unanswered(&mut s), "answered in plain text: {frame}\n{}", c.logs());
    }
    assert!(c.server(leader).log().contains(NOT_TLS), "{}", c.logs());
    // TLS without a client certificate: refused in the handshake.
    for frame in forged() {
        let mut s = tls(rpc, &pki.ca(), None);
        assert!(tls_refused(&mut s, &frame), "answered without a certificate: {frame}\n{}", c.logs());
    }
    assert!(c.server(leader).log().contains("TLS handshake failed"), "{}", c.logs());
    for i in 0..3 {
        assert_eq!(kv_status(c.server(i), "forged"), 404, "{}", c.logs());
    }
    assert_eq!(peers(c.server(leader)), 3, "{}", c.logs());
    // A holder of a valid certificate is answered (the port still serves).
    let mut s = tls(rpc, &pki.ca(), Some(&pki.cert("client")));
    let hello = call(&mut s, r#""Hello""#).unwrap_or_else(|e| panic!("{e}\n{}", c.logs()));
    assert!(hello["Hello"]["clustered"].as_bool().unwrap_or(false), "{hello}");
    // ... but a client certificate speaks no Raft and changes no membership.
    let reply = call(&mut s, JOIN_FAKE).unwrap_or_else(|e| panic!("{e}\n{}", c.logs()));
    assert!(
        reply["Join"]["Err"]["Failed"].as_str().unwrap_or("").contains("no server certificate"),
        "{reply}"
    );
    send(&mut s, APPEND);
    assert!(tls_refused(&mut s, r#""Hello""#), "AppendEntries answered for a client certificate");
    a_client_certificate_never_makes_a_server(&c, &pki, leader);
}

/// A server started with a `-client` certificate (CA-signed, but named `client.dc1.consul`)
/// retry-joins; the servers dialling it check `server.dc1.consul` and refuse it, so it never
/// becomes a voter nor receives the log.
fn a_client_certificate_never_makes_a_server(c: &Cluster, pki: &Pki, leader: usize) {
    let rogue_config = pki.config("rogue", &pki.cert("client"));
    let rogue_dir = c.dir.path().join("rogue").display().to_string();
    let mut args = vec!["--server".to_owned(), "--bootstrap-expect".into(), "3".into(), "--node".into()];
    args.extend(["rogue".to_owned(), "--data-dir".into(), rogue_dir, "--config-file".into(), rogue_config]);
    for p in &c.ports {
        args.extend(["--retry-join".to_owned(), format!("127.0.0.1:{p}")]);
    }
    let rogue = Agent::spawn(&args.iter().map(String::as_str).collect::<Vec<_>>());
    std::thread::sleep(Duration::from_secs(6));
    c.server(leader).put_ok("/v1/kv/after-rogue", "ok");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(peers(c.server(leader)), 3, "{}\n--- rogue\n{}", c.logs(), rogue.log());
    assert_ne!(kv_status(&rogue, "after-rogue"), 200, "the rogue received the log\n{}", rogue.log());
    assert_ne!(kv_status(&rogue, "from-client"), 200, "the rogue received the log\n{}", rogue.log());
    // The servers' dials end in the handshake: the rogue logs their alert.
    assert!(rogue.log().contains("TLS handshake failed"), "{}\n--- rogue\n{}", c.logs(), rogue.log());
    drop(rogue);
    for i in 0..3 {
        let what = "a write after the rogue everywhere";
        wait_until(
            Duration::from_secs(10),
            what,
            || kv_status(c.server(i), "after-rogue") == 200,
            || c.logs(),
        );
    }
}

#[test]
fn bad_certificates_and_garbage_handshakes_are_refused_and_tls_with_encrypt_needs_both() {
    let pki = Pki::new();
    let key = keygen();
    let rpc = free_ports(1)[0];
    let config = pki.config("server", &pki.cert("server"));
    let d = tempfile::tempdir().unwrap();
    let server = Agent::server(
        d.path(),
        &["--config-file", &config, "--encrypt", &key, "--server-port", &rpc.to_string()],
    );
    let other = Pki::new();
    let refused = [("another CA", Some(other.cert("client"))), ("expired", Some(pki.expired_client()))];
    for (what, cert) in &refused {
        let mut s = tls(rpc, &pki.ca(), cert.as_ref());
        assert!(tls_refused(&mut s, &forward_kv("forged")), "{what}: answered\n{}", server.log());
    }
    // Garbage after the TLS first byte, and a TLS start that goes silent.
    let mut s = connect(rpc);
    s.write_all(&[0x16, 0x03, 0x01, 0x00, 0x08, 0xde, 0xad, 0xbe, 0xef, 0xff, 0xff, 0xff, 0xff]).unwrap();
    assert!(closed_unanswered(&mut s), "garbage TLS answered\n{}", server.log());
    let mut silent = connect(rpc);
    silent.write_all(&[0x16]).unwrap();
    let t = Instant::now();
    assert!(closed_unanswered(&mut silent), "a silent TLS start was held\n{}", server.log());
    assert!(t.elapsed() >= Duration::from_millis(1500), "{:?}", t.elapsed());
    // A valid certificate without the key challenge: TLS passes, the frame is not answered.
    let valid = pki.cert("client");
    let mut s = tls(rpc, &pki.ca(), Some(&valid));
    assert!(tls_refused(&mut s, &forward_kv("forged")), "answered without the key\n{}", server.log());
    // Both: answered.
    let mut s = tls(rpc, &pki.ca(), Some(&valid));
    prove(&mut s, &key).unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    let reply = call(&mut s, &forward_kv("both")).unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    assert!(reply["Forward"]["Ok"].is_array(), "{reply}");

    let log = server.log();
    for line in ["TLS handshake failed", "no handshake within", "not a cluster-key challenge"] {
        assert!(log.contains(line), "{line}: {log}");
    }
    assert_eq!(kv_status(&server, "forged"), 404);
    assert_eq!(kv_status(&server, "both"), 200);
    server.put_ok("/v1/kv/alive", "1");
}

/// Copies `pki`'s CA and a new server certificate to the fixed paths `live` names.
fn install(pki: &Pki, live: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = pki.cert("server");
    std::fs::copy(pki.ca(), live.join("ca.pem")).unwrap();
    std::fs::copy(cert, live.join("cert.pem")).unwrap();
    std::fs::copy(key, live.join("key.pem")).unwrap();
    (live.join("cert.pem"), live.join("key.pem"))
}

#[test]
fn a_sighup_certificate_reload_reaches_new_rpc_connections_and_keeps_open_ones() {
    let (old, new) = (Pki::new(), Pki::new());
    let live = tempfile::tempdir().unwrap();
    let files = install(&old, live.path());
    let config = live.path().join("agent.json");
    let json = format!(
        r#"{{"ca_file":{:?},"cert_file":{:?},"key_file":{:?},"verify_incoming":true,"verify_outgoing":true,
            "verify_server_hostname":true}}"#,
        live.path().join("ca.pem"),
        files.0,
        files.1
    );
    std::fs::write(&config, json).unwrap();
    let rpc = free_ports(1)[0];
    let d = tempfile::tempdir().unwrap();
    let config = config.display().to_string();
    let server = Agent::server(d.path(), &["--config-file", &config, "--server-port", &rpc.to_string()]);
    let old_client = old.cert("client");
    let mut open = tls(rpc, &old.ca(), Some(&old_client));
    call(&mut open, r#""Hello""#).unwrap_or_else(|e| panic!("{e}\n{}", server.log()));

    install(&new, live.path());
    server.signal("HUP");
    let new_client = new.cert("client");
    let reloaded = || call(&mut tls(rpc, &new.ca(), Some(&new_client)), r#""Hello""#).is_ok();
    wait_until(Duration::from_secs(10), "the new certificates on a new connection", reloaded, || {
        server.log()
    });
    // The old CA's certificates no longer open a connection; the one open before goes on.
    assert!(tls_refused(&mut tls(rpc, &old.ca(), Some(&old_client)), r#""Hello""#), "{}", server.log());
    let hello = call(&mut open, r#""Hello""#).unwrap_or_else(|e| panic!("open connection dropped: {e}"));
    assert!(hello["Hello"].is_object(), "{hello}");
    server.put_ok("/v1/kv/after-reload", "1");
}
