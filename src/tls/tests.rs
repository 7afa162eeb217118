//! The TLS module with real certificates (from the `openssl` CLI) and real handshakes over
//! in-memory pipes: cipher and version mapping, the server RPC's acceptor and connector
//! (`verify_incoming_rpc`, `verify_server_hostname`, chain-only checking), reloads.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;
use crate::config::{Overrides, TlsInterface, TlsVersion};

/// A CA with leaf certificates in a temporary directory.
struct Pki(tempfile::TempDir);

impl Pki {
    fn new() -> Self {
        let pki = Self(tempfile::tempdir().unwrap());
        pki.openssl(&["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca-key.pem"]);
        pki.openssl(&[
            "req",
            "-x509",
            "-new",
            "-key",
            "ca-key.pem",
            "-subj",
            "/CN=CA",
            "-days",
            "3",
            "-out",
            "ca.pem",
        ]);
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl").args(args).current_dir(self.0.path()).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// `<name>.pem`, `<name>-key.pem` for the DNS names `sans`, serverAuth and clientAuth.
    fn leaf(&self, name: &str, sans: &str) -> (PathBuf, PathBuf) {
        let ext = format!("extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName={sans}\n");
        std::fs::write(self.path(&format!("{name}.ext")), ext).unwrap();
        let (key, csr, pem, ext) =
            (format!("{name}-key.pem"), format!("{name}.csr"), format!("{name}.pem"), format!("{name}.ext"));
        self.openssl(&["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", &key]);
        self.openssl(&["req", "-new", "-key", &key, "-subj", &format!("/CN={name}"), "-out", &csr]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &pem,
        ]);
        (self.path(&pem), self.path(&key))
    }
}

/// A -dev config from `json`.
fn config(dir: &Path, json: &str) -> Config {
    let file = dir.join("agent.json");
    std::fs::write(&file, json).unwrap();
    let o = Overrides {
        dev: true,
        node_name: Some("n1".into()),
        config_files: vec![file],
        ..Overrides::default()
    };
    Config::load(&o).unwrap().0
}

/// The flat keys of an agent with this PKI's CA and `(cert, key)`, then `extra`.
fn agent(pki: &Pki, (cert, key): &(PathBuf, PathBuf), extra: &str) -> Config {
    let json =
        format!(r#"{{"ca_file":{:?},"cert_file":{cert:?},"key_file":{key:?}{extra}}}"#, pki.path("ca.pem"));
    config(pki.0.path(), &json)
}

/// A handshake between `server`'s RPC acceptor and `client`'s RPC connector.
async fn rpc_handshake(server: &Tls, client: &Tls) -> Result<(), String> {
    let acceptor = server.rpc_acceptor().ok_or("no acceptor")?;
    let (connector, name) = client.rpc_connector().ok_or("no connector")?;
    let (a, b) = tokio::io::duplex(64 * 1024);
    let (accepted, connected) = tokio::join!(acceptor.accept(a), connector.connect(name, b));
    let mut connected = connected.map_err(|e| format!("client: {e}"))?;
    let mut accepted = accepted.map_err(|e| format!("server: {e}"))?;
    // TLS 1.3 sends the server's verdict on the client certificate after the client is done.
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (w, r) = tokio::join!(connected.write_all(b"ping"), async {
        let mut buf = [0u8; 4];
        accepted.read_exact(&mut buf).await.map(|_| buf)
    });
    w.map_err(|e| format!("client write: {e}"))?;
    r.map_err(|e| format!("server read: {e}"))?;
    Ok(())
}

#[test]
fn cipher_suites_map_go_names_onto_ring() {
    let with = |names: &[&str]| TlsInterface {
        cipher_suites: names.iter().map(|n| (*n).to_owned()).collect(),
        ..TlsInterface::default()
    };
    let p =
        build::provider(&with(&["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_RSA_WITH_AES_128_CBC_SHA"]))
            .unwrap();
    let tls12: Vec<_> = p.cipher_suites.iter().filter(|s| s.version() == &rustls::version::TLS12).collect();
    assert_eq!(tls12.len(), 1);
    assert_eq!(format!("{:?}", tls12[0].suite()), "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256");
    assert_eq!(p.cipher_suites.len(), 4, "the three TLS 1.3 suites stay");
    let err = build::provider(&with(&["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "nope"])).unwrap_err();
    assert_eq!(err.to_string(), r#"unsupported cipher "nope""#);
    let err = build::provider(&with(&["TLS_RSA_WITH_AES_128_CBC_SHA"])).unwrap_err();
    assert!(err.to_string().contains("none of the suites is offered"), "{err}");
    let tls13_only =
        TlsInterface { min_version: TlsVersion::Tls13, ..with(&["TLS_RSA_WITH_AES_128_CBC_SHA"]) };
    assert!(build::provider(&tls13_only).is_ok());
}

#[tokio::test]
async fn server_rpc_checks_client_certificates_and_the_server_name() {
    let pki = Pki::new();
    let server_cert = pki.leaf("server", "DNS:server.dc1.consul,DNS:localhost");
    let client_cert = pki.leaf("client", "DNS:client.dc1.consul");
    let other = Pki::new();
    let stranger_cert = other.leaf("stranger", "DNS:server.dc1.consul");
    let strict = ",\"verify_incoming_rpc\":true,\"verify_server_hostname\":true";
    let server = Tls::load(&agent(&pki, &server_cert, strict)).unwrap();
    let client = Tls::load(&agent(&pki, &client_cert, strict)).unwrap();
    assert!(server.verify_incoming_rpc() && server.verify_outgoing());
    assert_eq!(client.rpc_connector().unwrap().1, ServerName::try_from("server.dc1.consul").unwrap());
    rpc_handshake(&server, &client).await.unwrap();
    // A client certificate cannot pass for a server under verify_server_hostname.
    let err = rpc_handshake(&client, &server).await.unwrap_err();
    assert!(err.contains("client:"), "{err}");
    // Without it, the chain is checked, not the name (Consul's chain-only check).
    let lax = Tls::load(&agent(&pki, &server_cert, ",\"verify_outgoing\":true")).unwrap();
    rpc_handshake(&client, &lax).await.unwrap();
    // A certificate from another CA, and no certificate at all, are refused.
    // (The stranger trusts this CA, so only its own certificate is wrong.)
    let stranger = Tls::load(&agent(&pki, &stranger_cert, ",\"verify_outgoing\":true")).unwrap();
    let err = rpc_handshake(&server, &stranger).await.unwrap_err();
    assert!(err.contains("server:"), "{err}");
    let json = format!(r#"{{"ca_file":{:?},"verify_outgoing":true}}"#, pki.path("ca.pem"));
    let anonymous = Tls::load(&config(pki.0.path(), &json)).unwrap();
    assert!(anonymous.rpc_acceptor().is_none());
    assert!(rpc_handshake(&server, &anonymous).await.is_err());
    // Without verify_incoming_rpc, a client without a certificate is accepted.
    let open = Tls::load(&agent(&pki, &server_cert, "")).unwrap();
    assert!(!open.verify_incoming_rpc() && !open.verify_outgoing() && open.rpc_connector().is_none());
    rpc_handshake(&open, &anonymous).await.unwrap();
}

#[test]
fn a_reload_with_a_broken_file_keeps_the_running_configuration() {
    let pki = Pki::new();
    let cert = pki.leaf("server", "DNS:localhost");
    let json = ",\"ports\":{\"https\":0}";
    let c = agent(&pki, &cert, json);
    let tls = Tls::load(&c).unwrap();
    let before = tls.https_acceptor().unwrap().config().clone();
    assert_eq!(before.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
    tls.reload(&c).unwrap();
    assert!(!Arc::ptr_eq(&before, tls.https_acceptor().unwrap().config()), "a reload builds a new config");
    std::fs::write(&cert.1, "garbage").unwrap();
    let err = tls.reload(&c).unwrap_err();
    assert!(err.to_string().contains("server-key.pem"), "{err}");
    assert!(tls.https_acceptor().is_some());
}

#[test]
fn a_ca_path_without_certificates_is_refused() {
    let pki = Pki::new();
    let cert = pki.leaf("server", "DNS:localhost");
    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("README"), "no certificates here").unwrap();
    let json =
        format!(r#"{{"ca_path":{:?},"cert_file":{:?},"key_file":{:?}}}"#, empty.path(), cert.0, cert.1);
    let err = Tls::load(&config(pki.0.path(), &json)).err().unwrap();
    assert_eq!(err.to_string(), "Error loading from CAPath: no CAs found");
    std::fs::copy(pki.path("ca.pem"), empty.path().join("ca.pem")).unwrap();
    assert!(Tls::load(&config(pki.0.path(), &json)).is_ok());
}
