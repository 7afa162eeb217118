//! HTTPS with real agents (spec §5.2 T4–T8): client certificates under `verify_incoming_https`,
//! Go's 400 for plain HTTP on the HTTPS port, the minimum TLS version, refusals at start,
//! HTTP/2 through ALPN, certificate reloads on SIGHUP under an open connection,
//! `ports.http = -1`, and garbage on the HTTPS port. Certificates come from the `openssl` CLI.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::support::{cairn_bin, eventually};

/// The SANs of a server certificate (Consul's `-server` certificate).
const SERVER_SANS: &str = "DNS:server.dc1.consul,DNS:localhost,IP:127.0.0.1";

/// A CA and certificates signed by it, in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A new CA (`ca.pem`, `ca-key.pem`).
    fn new() -> Self {
        let pki = Self { dir: tempfile::tempdir().unwrap() };
        pki.openssl(&["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca-key.pem"]);
        pki.openssl(&[
            "req",
            "-x509",
            "-new",
            "-key",
            "ca-key.pem",
            "-subj",
            "/CN=Test Agent CA",
            "-days",
            "30",
            "-out",
            "ca.pem",
        ]);
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl").args(args).current_dir(self.dir.path()).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// `<name>.pem` and `<name>-key.pem`, signed by this CA, valid for `days` (negative:
    /// already expired), with serverAuth and clientAuth and the SANs given.
    fn leaf(&self, name: &str, cn: &str, sans: &str, days: i32) -> (PathBuf, PathBuf) {
        let ext = format!(
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName={sans}\n"
        );
        std::fs::write(self.path(&format!("{name}.ext")), ext).unwrap();
        let (key, csr, pem) = (format!("{name}-key.pem"), format!("{name}.csr"), format!("{name}.pem"));
        self.openssl(&["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", &key]);
        self.openssl(&["req", "-new", "-key", &key, "-subj", &format!("/CN={cn}"), "-out", &csr]);
        let serial = format!("{}", rand_serial());
        let days = days.to_string();
        let ext = format!("{name}.ext");
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-set_serial",
            &serial,
            "-days",
            &days,
            "-extfile",
            &ext,
            "-out",
            &pem,
        ]);
        (self.path(&pem), self.path(&key))
    }

    /// A server certificate for `server.dc1.consul`, localhost and 127.0.0.1.
    fn server(&self, name: &str) -> (PathBuf, PathBuf) {
        self.leaf(name, "server.dc1.consul", SERVER_SANS, 30)
    }

    /// A client certificate (`client.dc1.consul`).
    fn client(&self, name: &str, days: i32) -> (PathBuf, PathBuf) {
        self.leaf(name, "client.dc1.consul", "DNS:client.dc1.consul,DNS:localhost", days)
    }
}

fn rand_serial() -> u64 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    u64::from(t.subsec_nanos()) ^ (u64::from(std::process::id()) << 32)
}

/// A `cairn agent --dev` started from a JSON config file, with its stdout lines and stderr.
pub(crate) struct TlsAgent {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl TlsAgent {
    /// Starts an agent with `config` (JSON); returns it once it printed its HTTPS address,
    /// or its stderr if it exited first.
    pub(crate) fn start(config: &str) -> Result<(Self, SocketAddr), String> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agent.json");
        std::fs::write(&file, config).unwrap();
        let stderr = dir.path().join("agent.log");
        let mut child = Command::new(cairn_bin())
            .current_dir(dir.path())
            .args(["agent", "--dev", "--node", "node1", "--dns-port", "0", "--server-port", "0"])
            .args(["--serf-lan-port", "0", "--serf-wan-port", "0", "--config-file", file.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut agent = Self { child, lines, stderr, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(a) = agent.printed("HTTPS: ") {
                return Ok((agent, a.parse().unwrap()));
            }
            if let Ok(Some(_)) = agent.child.try_wait() {
                return Err(agent.log());
            }
            assert!(Instant::now() < deadline, "agent did not start: {}", agent.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The value of the stdout line `    <prefix><value>`, if printed.
    fn printed(&self, prefix: &str) -> Option<String> {
        let lines = self.lines.lock().unwrap();
        lines.iter().find_map(|l| l.trim().strip_prefix(prefix).map(str::to_owned))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn signal(&self, sig: &str) {
        let _ = Command::new("kill").arg(format!("-{sig}")).arg(self.child.id().to_string()).status();
    }
}

impl Drop for TlsAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The agent config: this PKI's CA and `cert`/`key`, HTTPS on a free port and no plain
/// HTTP, then `extra` keys (a later `ports` replaces that table).
fn config(pki: &Pki, cert: &Path, key: &Path, extra: &str) -> String {
    let extra = if extra.is_empty() { String::new() } else { format!(",{extra}") };
    format!(
        r#"{{"ca_file":{:?},"cert_file":{cert:?},"key_file":{key:?},"ports":{{"https":0,"http":-1}}{extra}}}"#,
        pki.path("ca.pem")
    )
}

/// Starts an agent that must come up.
fn start(config: &str) -> (TlsAgent, SocketAddr) {
    // A -dev agent is its own leader before it prints its addresses.
    TlsAgent::start(config).unwrap_or_else(|log| panic!("agent did not start: {log}"))
}

fn certs(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path).unwrap().collect::<Result<_, _>>().unwrap()
}

/// A client that trusts `ca` (`None`: any server certificate) and presents `cert` when given.
fn client_config(ca: Option<&Path>, cert: Option<(&Path, &Path)>, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder =
        ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions().unwrap();
    let builder = match ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in certs(ca) {
                roots.add(c).unwrap();
            }
            builder.with_root_certificates(roots)
        }
        None => builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyServer)),
    };
    let mut config = match cert {
        Some((cert, key)) => {
            builder.with_client_auth_cert(certs(cert), PrivateKeyDer::from_pem_file(key).unwrap()).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// Accepts any server certificate: for waiting on an agent whose CA the caller does not hold.
#[derive(Debug)]
struct AnyServer;

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algs = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(m, c, d, &algs)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algs = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(m, c, d, &algs)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider().signature_verification_algorithms.supported_schemes()
    }
}

type Tls = StreamOwned<ClientConnection, TcpStream>;

/// Opens a TLS connection to `addr` as `localhost` and completes the handshake.
fn connect(addr: SocketAddr, config: &Arc<ClientConfig>) -> Result<Tls, String> {
    let tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let conn = ClientConnection::new(config.clone(), ServerName::try_from("localhost").unwrap()).unwrap();
    let mut tls = StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).map_err(|e| e.to_string())?;
    }
    Ok(tls)
}

/// One HTTP/1.1 request on an open connection (kept alive); returns status and body.
fn request(tls: &mut Tls, path: &str) -> Result<(u16, String), String> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    tls.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tls.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!("connection closed after {} bytes", buf.len()));
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= len {
                let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                return Ok((status, body[..len].to_owned()));
            }
        }
    }
}

/// A GET on a new connection.
fn https_get(addr: SocketAddr, config: &Arc<ClientConfig>, path: &str) -> Result<(u16, String), String> {
    request(&mut connect(addr, config)?, path)
}

/// Sends `bytes` on a plain TCP connection and returns everything the agent sends back.
fn raw(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = tcp.read_to_end(&mut out);
    out
}

#[test]
fn verify_incoming_https_requires_a_client_certificate_from_the_ca() {
    let pki = Pki::new();
    let (cert, key) = pki.server("server");
    let client = pki.client("client", 30);
    let expired = pki.client("expired", -1);
    let other = Pki::new();
    let stranger = other.client("stranger", 30);
    let (agent, addr) = start(&config(&pki, &cert, &key, r#""verify_incoming_https":true"#));
    let ca = Some(pki.path("ca.pem"));
    // T4: no client certificate: the handshake fails and no HTTP status comes back.
    let anonymous = client_config(ca.as_deref(), None, &[]);
    let err = https_get(addr, &anonymous, "/v1/status/leader").unwrap_err();
    assert!(!err.is_empty());
    // T5: a CA-signed client certificate gets 200.
    let signed = client_config(ca.as_deref(), Some((&client.0, &client.1)), &[]);
    let (status, body) = https_get(addr, &signed, "/v1/status/leader").unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(':'), "{body}");
    // Expired, and signed by another CA: refused.
    for (what, c) in [("expired", &expired), ("another CA's", &stranger)] {
        let cfg = client_config(ca.as_deref(), Some((&c.0, &c.1)), &[]);
        assert!(https_get(addr, &cfg, "/v1/status/leader").is_err(), "{what} client certificate accepted");
    }
    // The refusals are logged, and the agent serves on.
    assert_eq!(https_get(addr, &signed, "/v1/agent/self").unwrap().0, 200);
    drop(agent);
}

#[test]
fn plain_http_to_the_https_port_gets_consuls_400_and_the_http_port_stays_plain() {
    let pki = Pki::new();
    let (cert, key) = pki.server("server");
    let (agent, addr) = start(&config(
        &pki,
        &cert,
        &key,
        r#""verify_incoming_https":true,"ports":{"https":0,"http":0},"limits":{"https_handshake_timeout":"1s"}"#,
    ));
    // T6: Go's answer, as Consul sends it.
    let reply = raw(addr, b"GET /v1/status/leader HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.0 400 Bad Request\r\n"), "{reply}");
    assert!(reply.ends_with("\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"), "{reply}");
    // The HTTP port stays plain text, with no certificate asked.
    let http = agent.printed("HTTP: ").unwrap();
    let reply =
        raw(http.parse().unwrap(), b"GET /v1/status/leader HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(String::from_utf8_lossy(&reply).starts_with("HTTP/1.1 200 OK"), "{reply:?}");
    // Garbage, a handshake record of junk, and silence: closed, and the agent serves on.
    assert!(raw(addr, &[0u8, 1, 2, 3, 0xff, 0xfe]).is_empty());
    let junk = raw(addr, &[0x16, 3, 1, 0, 5, 9, 9, 9, 9, 9]);
    assert!(junk.first() != Some(&0x16), "junk got a handshake answer");
    let mut idle = TcpStream::connect(addr).unwrap();
    let anonymous = client_config(None, None, &[]);
    assert!(https_get(addr, &anonymous, "/v1/status/leader").is_err(), "no client certificate, yet served");
    let client = pki.client("client", 30);
    let signed = client_config(Some(&pki.path("ca.pem")), Some((&client.0, &client.1)), &[]);
    assert_eq!(https_get(addr, &signed, "/v1/status/leader").unwrap().0, 200);
    // A connection that never starts a handshake is closed after limits.https_handshake_timeout.
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = Instant::now();
    assert_eq!(idle.read(&mut [0u8; 16]).unwrap(), 0, "the idle connection got data");
    assert!(started.elapsed() < Duration::from_secs(3), "closed after {:?}", started.elapsed());
}

/// A TLS 1.1 ClientHello (no supported_versions extension), as `curl --tls-max 1.1` starts.
fn tls11_client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x02];
    body.extend_from_slice(&[7u8; 32]);
    body.extend_from_slice(&[0x00, 0x00, 0x04, 0xc0, 0x13, 0x00, 0x2f, 0x01, 0x00]);
    let mut hs = vec![0x01, 0x00, 0x00, u8::try_from(body.len()).unwrap()];
    hs.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01, 0x00, u8::try_from(hs.len()).unwrap()];
    record.extend_from_slice(&hs);
    record
}

#[test]
fn tls_below_the_minimum_version_is_refused() {
    let pki = Pki::new();
    let (cert, key) = pki.server("server");
    let (_agent, addr) = start(&config(&pki, &cert, &key, ""));
    // T7: TLS 1.1 gets an alert (record type 21), never a ServerHello.
    let reply = raw(addr, &tls11_client_hello());
    assert_eq!(reply.first(), Some(&0x15), "{reply:?}");
    // TLS 1.2 is the default minimum: accepted; tls_min_version = "tls13" refuses it.
    let ca = pki.path("ca.pem");
    let tls12 = {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        roots.add(certs(&ca).remove(0)).unwrap();
        let b = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap();
        Arc::new(b.with_root_certificates(roots).with_no_client_auth())
    };
    assert_eq!(https_get(addr, &tls12, "/v1/status/leader").unwrap().0, 200);
    let (_agent, addr) = start(&config(&pki, &cert, &key, r#""tls_min_version":"tls13""#));
    assert!(https_get(addr, &tls12, "/v1/status/leader").is_err());
    let tls13 = client_config(Some(&ca), None, &[]);
    assert_eq!(https_get(addr, &tls13, "/v1/status/leader").unwrap().0, 200);
}

#[test]
fn tls_settings_that_cannot_be_honoured_refuse_the_start() {
    let pki = Pki::new();
    let (cert, key) = pki.server("server");
    let empty = tempfile::tempdir().unwrap();
    let cases = [
        // T8.
        (
            format!(r#"{{"cert_file":{cert:?},"key_file":{key:?},"verify_incoming":true}}"#),
            "VerifyIncoming set but no CA certificates were provided",
        ),
        (
            format!(
                r#"{{"ca_path":{:?},"cert_file":{cert:?},"key_file":{key:?},"ports":{{"https":0,"http":-1}}}}"#,
                empty.path()
            ),
            "Error loading from CAPath: no CAs found",
        ),
        (config(&pki, &cert, &key, r#""tls_cipher_suites":"TLS_NOPE""#), r#"unsupported cipher "TLS_NOPE""#),
        (config(&pki, &cert, &pki.path("missing-key.pem"), ""), "missing-key.pem"),
    ];
    for (text, msg) in cases {
        let Err(log) = TlsAgent::start(&text) else { panic!("{text}: the agent started") };
        assert!(log.contains(msg), "{text}: {log}");
    }
}

#[test]
fn https_negotiates_http2_through_alpn() {
    let pki = Pki::new();
    let (cert, key) = pki.server("server");
    let (_agent, addr) = start(&config(&pki, &cert, &key, ""));
    let ca = pki.path("ca.pem");
    let h2 = client_config(Some(&ca), None, &[b"h2", b"http/1.1"]);
    assert_eq!(connect(addr, &h2).unwrap().conn.alpn_protocol(), Some(&b"h2"[..]));
    let h1 = client_config(Some(&ca), None, &[b"http/1.1"]);
    assert_eq!(connect(addr, &h1).unwrap().conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    // A real HTTP/2 request.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let status = rt.block_on(async {
        use hyper_util::rt::{TokioExecutor, TokioIo};
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(h2)
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await.unwrap();
        tokio::spawn(conn);
        let req = hyper::Request::get(format!("https://localhost:{}/v1/status/leader", addr.port()))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        (resp.version(), resp.status().as_u16())
    });
    assert_eq!(status, (hyper::Version::HTTP_2, 200));
}

#[test]
fn sighup_reloads_certificates_without_dropping_open_connections() {
    let pki = Pki::new();
    let (cert, key) = pki.server("first");
    let (second_cert, second_key) = pki.server("second");
    let live_cert = pki.path("live.pem");
    let live_key = pki.path("live-key.pem");
    std::fs::copy(&cert, &live_cert).unwrap();
    std::fs::copy(&key, &live_key).unwrap();
    let (agent, addr) = start(&config(&pki, &live_cert, &live_key, ""));
    let ca = pki.path("ca.pem");
    let client = client_config(Some(&ca), None, &[]);
    let mut open = connect(addr, &client).unwrap();
    assert_eq!(request(&mut open, "/v1/status/leader").unwrap().0, 200);
    let served = |addr| connect(addr, &client).unwrap().conn.peer_certificates().unwrap()[0].clone();
    assert_eq!(served(addr), certs(&cert)[0]);
    std::fs::copy(&second_cert, &live_cert).unwrap();
    std::fs::copy(&second_key, &live_key).unwrap();
    agent.signal("HUP");
    eventually("new handshakes get the reloaded certificate", || served(addr) == certs(&second_cert)[0]);
    // The connection opened before the reload still serves.
    assert_eq!(request(&mut open, "/v1/status/leader").unwrap().0, 200);
    // A broken file at the next reload keeps the running certificate, with one log line.
    std::fs::write(&live_cert, "not a certificate").unwrap();
    agent.signal("HUP");
    eventually("the failed reload is logged", || agent.log().contains("TLS certificates not reloaded"));
    assert_eq!(served(addr), certs(&second_cert)[0]);
    assert_eq!(request(&mut open, "/v1/status/leader").unwrap().0, 200);
}

#[test]
fn ports_http_minus_one_serves_https_only() {
    let pki = Pki::new();
    let (cert, key) = pki.server("server");
    let (agent, addr) = start(&config(&pki, &cert, &key, r#""ports":{"https":0,"http":-1}"#));
    assert_eq!(
        https_get(addr, &client_config(Some(&pki.path("ca.pem")), None, &[]), "/v1/status/leader").unwrap().0,
        200
    );
    assert_eq!(agent.printed("HTTP: "), None, "plain HTTP is listening");
}
