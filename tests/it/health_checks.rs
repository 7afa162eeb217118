//! Active health checks against real local servers that the test flips between healthy and
//! failing: HTTP, TCP, UDP and gRPC (`grpc.health.v1` over h2), script checks, alias checks,
//! thresholds, redirects, maintenance mode, the local health endpoints and
//! `DeregisterCriticalServiceAfter`. Intervals are 1 s (Consul's minimum) and timeouts 500 ms.
//!
//! Time bounds here are the contract ("the instance leaves DNS within interval + timeout"),
//! checked with a slack for Raft and a loaded machine; they are not speed measurements.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use hickory_proto::rr::{RData, RecordType};
use serde_json::{Value, json};

use crate::support::{Agent, Transport};

/// Slack on top of interval + timeout for the proposal, apply and publish.
const SLACK: Duration = Duration::from_secs(2);
const INTERVAL: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_millis(500);

fn a_records(agent: &Agent, name: &str) -> Vec<String> {
    let msg = agent.query(name, RecordType::A, Transport::Tcp);
    msg.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect()
}

fn in_dns(agent: &Agent, service: &str) -> bool {
    !a_records(agent, &format!("{service}.service.consul.")).is_empty()
}

/// Polls `f` every 20 ms until true; returns how long it took, or panics after `limit`.
fn within(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if f() {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

fn check_of(agent: &Agent, id: &str) -> Value {
    let (s, checks) = agent.get("/v1/agent/checks").unwrap();
    assert_eq!(s, 200);
    checks[id].clone()
}

fn status_of(agent: &Agent, id: &str) -> String {
    check_of(agent, id)["Status"].as_str().unwrap_or_default().to_owned()
}

fn register(agent: &Agent, name: &str, check: Value) {
    let body = json!({"Name": name, "Address": "127.0.0.1", "Port": 80, "Check": check});
    agent.put_ok("/v1/agent/service/register", &body.to_string());
}

// ----- test servers --------------------------------------------------------------------

/// What the HTTP test server answers.
const OK: u8 = 0;
const FAIL: u8 = 1;
const TOO_MANY: u8 = 2;
const REDIRECT: u8 = 3;
const BIG: u8 = 4;

/// A tiny HTTP/1.1 server: 200 (a body that changes every request), 500, 429, or a 302 to
/// `redirect_to`; counts requests.
struct HttpTarget {
    addr: SocketAddr,
    mode: Arc<AtomicU8>,
    hits: Arc<AtomicUsize>,
    ok_hits: Arc<AtomicUsize>,
    redirect_to: Arc<Mutex<String>>,
}

impl HttpTarget {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(AtomicU8::new(OK));
        let hits = Arc::new(AtomicUsize::new(0));
        let ok_hits = Arc::new(AtomicUsize::new(0));
        let redirect_to = Arc::new(Mutex::new(String::new()));
        let (m, h, o, r) = (mode.clone(), hits.clone(), ok_hits.clone(), redirect_to.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let mut buf = [0u8; 4096];
                let mut req = Vec::new();
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let n = h.fetch_add(1, Ordering::SeqCst);
                let head = match m.load(Ordering::SeqCst) {
                    OK => {
                        o.fetch_add(1, Ordering::SeqCst);
                        let body = format!("healthy, request {n}");
                        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
                    }
                    BIG => {
                        let body = format!("{}END", "x".repeat(10_000));
                        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
                    }
                    TOO_MANY => "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 4\r\nConnection: close\r\n\r\nslow".into(),
                    REDIRECT => format!(
                        "HTTP/1.1 302 Found\r\nLocation: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        r.lock().unwrap()
                    ),
                    _ => "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\nConnection: close\r\n\r\nsick".into(),
                };
                let _ = s.write_all(head.as_bytes());
            }
        });
        Self { addr, mode, hits, ok_hits, redirect_to }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }
}

/// A TCP port that accepts connections while up and refuses them while down.
struct TcpTarget {
    addr: SocketAddr,
    listener: Mutex<Option<TcpListener>>,
}

impl TcpTarget {
    fn start() -> Self {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        Self { addr: l.local_addr().unwrap(), listener: Mutex::new(Some(l)) }
    }

    fn set_up(&self, up: bool) {
        let mut l = self.listener.lock().unwrap();
        *l = if up { Some(TcpListener::bind(self.addr).unwrap()) } else { None };
    }
}

/// A UDP echo port while up; closed (ICMP port unreachable) while down.
struct UdpTarget {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl UdpTarget {
    fn start() -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        let mut t = Self { addr, stop: Arc::new(AtomicBool::new(false)), thread: None };
        t.serve(sock);
        t
    }

    fn serve(&mut self, sock: UdpSocket) {
        self.stop = Arc::new(AtomicBool::new(false));
        let stop = self.stop.clone();
        sock.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        self.thread = Some(thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !stop.load(Ordering::SeqCst) {
                if let Ok((n, from)) = sock.recv_from(&mut buf) {
                    let _ = sock.send_to(&buf[..n], from);
                }
            }
        }));
    }

    fn set_up(&mut self, up: bool) {
        if up {
            self.serve(UdpSocket::bind(self.addr).unwrap());
        } else {
            self.stop.store(true, Ordering::SeqCst);
            if let Some(t) = self.thread.take() {
                t.join().unwrap();
            }
        }
    }
}

/// A self-signed certificate for `web.internal` (made with the openssl CLI) and a rustls
/// server config offering `alpn`.
fn tls_acceptor(dir: &std::path::Path, alpn: &[&[u8]]) -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if !cert.exists() {
        let out = std::process::Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
            .args(["-days", "1", "-subj", "/CN=web.internal", "-addext", "subjectAltName=DNS:web.internal"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let certs = vec![CertificateDer::from_pem_file(&cert).unwrap()];
    let key = PrivateKeyDer::from_pem_file(&key).unwrap();
    let mut config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// An HTTPS server answering 200 and recording the SNI names it was asked for.
struct HttpsTarget {
    addr: SocketAddr,
    sni: Arc<Mutex<Vec<String>>>,
}

impl HttpsTarget {
    fn start(dir: &std::path::Path) -> Self {
        let acceptor = tls_acceptor(dir, &[b"http/1.1"]);
        let std_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let sni = Arc::new(Mutex::new(Vec::new()));
        let seen = sni.clone();
        thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
                loop {
                    let Ok((sock, _)) = listener.accept().await else { continue };
                    let (acceptor, seen) = (acceptor.clone(), seen.clone());
                    tokio::spawn(async move {
                        let Ok(mut tls) = acceptor.accept(sock).await else { return };
                        seen.lock()
                            .unwrap()
                            .push(tls.get_ref().1.server_name().unwrap_or_default().to_owned());
                        let mut req = Vec::new();
                        let mut buf = [0u8; 1024];
                        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                            match tls.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => req.extend_from_slice(&buf[..n]),
                            }
                        }
                        let _ = tls
                            .write_all(
                                b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsecure",
                            )
                            .await;
                        let _ = tls.shutdown().await;
                    });
                }
            });
        });
        Self { addr, sni }
    }
}

/// A `grpc.health.v1.Health/Check` server over h2c (or h2 over TLS) answering SERVING or
/// NOT_SERVING; it answers HTTP/2 pings too.
struct GrpcTarget {
    addr: SocketAddr,
    serving: Arc<AtomicBool>,
    checks: Arc<AtomicUsize>,
}

impl GrpcTarget {
    fn start() -> Self {
        Self::start_with(None)
    }

    fn start_with(tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let std_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let serving = Arc::new(AtomicBool::new(true));
        let checks = Arc::new(AtomicUsize::new(0));
        let (sv, ck) = (serving.clone(), checks.clone());
        thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
                loop {
                    let Ok((sock, _)) = listener.accept().await else { continue };
                    let (sv, ck, tls) = (sv.clone(), ck.clone(), tls.clone());
                    tokio::spawn(async move {
                        let io: Box<dyn Io> = match tls {
                            None => Box::new(sock),
                            Some(acceptor) => match acceptor.accept(sock).await {
                                Ok(s) => Box::new(s),
                                Err(_) => return,
                            },
                        };
                        let Ok(mut conn) = h2::server::handshake(io).await else { return };
                        while let Some(Ok((req, mut respond))) = conn.accept().await {
                            assert_eq!(req.uri().path(), "/grpc.health.v1.Health/Check");
                            ck.fetch_add(1, Ordering::SeqCst);
                            let status: u8 = if sv.load(Ordering::SeqCst) { 1 } else { 2 };
                            let resp = hyper::Response::builder()
                                .status(200)
                                .header("content-type", "application/grpc")
                                .body(())
                                .unwrap();
                            let Ok(mut send) = respond.send_response(resp, false) else { continue };
                            let frame = bytes::Bytes::from(vec![0, 0, 0, 0, 2, 0x08, status]);
                            let _ = send.send_data(frame, false);
                            let mut trailers = hyper::HeaderMap::new();
                            trailers.insert("grpc-status", hyper::header::HeaderValue::from_static("0"));
                            let _ = send.send_trailers(trailers);
                        }
                    });
                }
            });
        });
        Self { addr, serving, checks }
    }
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

// ----- tests ----------------------------------------------------------------------------

#[test]
fn tls_checks_skip_verify_send_the_server_name_and_fail_on_untrusted_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let https = HttpsTarget::start(dir.path());
    let grpc = GrpcTarget::start_with(Some(tls_acceptor(dir.path(), &[b"h2"])));
    let h2c = GrpcTarget::start();
    let agent = Agent::dev(&[]);
    let url = format!("https://{}/health", https.addr);
    register(
        &agent,
        "skip",
        json!({"HTTP": url, "TLSSkipVerify": true, "TLSServerName": "web.internal", "Interval": "1s", "Timeout": "500ms"}),
    );
    register(
        &agent,
        "strict",
        json!({"HTTP": url, "Interval": "1s", "Timeout": "500ms", "Status": "passing"}),
    );
    register(
        &agent,
        "grpcs",
        json!({"GRPC": grpc.addr.to_string(), "GRPCUseTLS": true, "TLSSkipVerify": true, "Interval": "1s", "Timeout": "500ms"}),
    );
    register(
        &agent,
        "ping",
        json!({"H2PING": h2c.addr.to_string(), "H2PingUseTLS": false, "Interval": "1s", "Timeout": "500ms"}),
    );
    register(
        &agent,
        "pings",
        json!({"H2PING": grpc.addr.to_string(), "TLSSkipVerify": true, "Interval": "1s", "Timeout": "500ms"}),
    );
    let tcp = https.addr.to_string();
    register(&agent, "tcps", json!({"TCP": tcp, "TCPUseTLS": true, "TLSSkipVerify": true, "Interval": "1s"}));
    register(
        &agent,
        "tcpstrict",
        json!({"TCP": tcp, "TCPUseTLS": true, "Interval": "1s", "Status": "passing"}),
    );
    within("TLS checks settle", INTERVAL + TIMEOUT + SLACK + INTERVAL, || {
        ["service:skip", "service:grpcs", "service:ping", "service:pings", "service:tcps"]
            .iter()
            .all(|c| status_of(&agent, c) == "passing")
            && status_of(&agent, "service:strict") == "critical"
            && status_of(&agent, "service:tcpstrict") == "critical"
    });
    assert!(check_of(&agent, "service:skip")["Output"].as_str().unwrap().ends_with("200 OK Output: secure"));
    assert!(https.sni.lock().unwrap().iter().any(|n| n == "web.internal"), "SNI is TLSServerName");
    let strict = check_of(&agent, "service:strict")["Output"].as_str().unwrap().to_owned();
    assert!(strict.contains("tls") || strict.contains("certificate"), "{strict}");
    assert_eq!(check_of(&agent, "service:ping")["Output"], "HTTP2 ping was successful");
}

#[test]
fn http_check_drops_the_instance_within_interval_plus_timeout_and_returns_after_success_before_passing() {
    let target = HttpTarget::start();
    let agent = Agent::dev(&[]);
    register(
        &agent,
        "web",
        json!({"HTTP": target.url("/health"), "Interval": "1s", "Timeout": "500ms", "SuccessBeforePassing": 2}),
    );
    // Registered critical; the first success is applied at once (counters start at the threshold).
    within("web in DNS", INTERVAL + TIMEOUT + SLACK + INTERVAL, || in_dns(&agent, "web"));
    let c = check_of(&agent, "service:web");
    assert_eq!(c["Type"], "http");
    let out = c["Output"].as_str().unwrap();
    assert!(out.starts_with(&format!("HTTP GET {}: 200 OK Output: healthy", target.url("/health"))), "{out}");

    target.set(FAIL);
    let took = within("web out of DNS", INTERVAL + TIMEOUT + SLACK, || !in_dns(&agent, "web"));
    eprintln!("dropped from DNS {took:?} after the target failed");
    assert!(
        check_of(&agent, "service:web")["Output"].as_str().unwrap().contains("500 Internal Server Error")
    );

    let before = target.ok_hits.load(Ordering::SeqCst);
    target.set(OK);
    within("web back in DNS", 2 * INTERVAL + 2 * TIMEOUT + SLACK, || in_dns(&agent, "web"));
    let successes = target.ok_hits.load(Ordering::SeqCst) - before;
    assert!(successes >= 2, "back in DNS after {successes} success(es); SuccessBeforePassing is 2");
}

#[test]
fn output_only_changes_are_not_written_every_probe() {
    let target = HttpTarget::start();
    let agent = Agent::dev(&[]);
    register(&agent, "web", json!({"HTTP": target.url("/"), "Interval": "1s", "Timeout": "500ms"}));
    within("passing", INTERVAL + TIMEOUT + SLACK + INTERVAL, || {
        status_of(&agent, "service:web") == "passing"
    });
    let index = check_of(&agent, "service:web")["ModifyIndex"].clone();
    let hits = target.hits.load(Ordering::SeqCst);
    // Every body differs ("request N"), but check_update_interval (5m) holds the output back.
    within("three more probes", 3 * INTERVAL + SLACK + INTERVAL, || {
        target.hits.load(Ordering::SeqCst) >= hits + 3
    });
    assert_eq!(check_of(&agent, "service:web")["ModifyIndex"], index);
}

#[test]
fn output_is_truncated_to_4_kib_keeping_the_end_of_the_body() {
    let target = HttpTarget::start();
    target.set(BIG);
    let agent = Agent::dev(&[]);
    register(&agent, "big", json!({"HTTP": target.url("/"), "Interval": "1s", "Timeout": "500ms"}));
    within("passing", INTERVAL + TIMEOUT + SLACK + INTERVAL, || {
        status_of(&agent, "service:big") == "passing"
    });
    let out = check_of(&agent, "service:big")["Output"].as_str().unwrap().to_owned();
    assert!(out.len() <= 4096 && out.len() > 4000, "{} bytes", out.len());
    assert!(out.starts_with("HTTP GET ") && out.ends_with("xxxEND"), "{}", &out[..60]);
}

#[test]
fn http_429_is_warning_and_stays_in_dns() {
    let target = HttpTarget::start();
    target.set(TOO_MANY);
    let agent = Agent::dev(&[]);
    register(&agent, "web", json!({"HTTP": target.url("/"), "Interval": "1s", "Timeout": "500ms"}));
    within("warning", INTERVAL + TIMEOUT + SLACK + INTERVAL, || {
        status_of(&agent, "service:web") == "warning"
    });
    assert!(in_dns(&agent, "web"));
}

#[test]
fn tcp_thresholds_warn_first_then_go_critical() {
    let target = TcpTarget::start();
    let agent = Agent::dev(&[]);
    register(
        &agent,
        "db",
        json!({"TCP": target.addr.to_string(), "Interval": "1s", "Timeout": "500ms",
               "FailuresBeforeWarning": 1, "FailuresBeforeCritical": 3}),
    );
    within("passing", INTERVAL + TIMEOUT + SLACK + INTERVAL, || status_of(&agent, "service:db") == "passing");
    assert_eq!(check_of(&agent, "service:db")["Output"], format!("TCP connect {}: Success", target.addr));
    target.set_up(false);
    // One failure: warning (still in DNS); three: critical (out of DNS).
    within("warning", INTERVAL + TIMEOUT + SLACK, || status_of(&agent, "service:db") == "warning");
    assert!(in_dns(&agent, "db"), "a warning instance stays in DNS");
    let warn_at = Instant::now();
    within("critical", 3 * (INTERVAL + TIMEOUT) + SLACK, || status_of(&agent, "service:db") == "critical");
    assert!(warn_at.elapsed() >= INTERVAL, "critical only after more failures");
    assert!(!in_dns(&agent, "db"));
    target.set_up(true);
    within("passing again", INTERVAL + TIMEOUT + SLACK, || status_of(&agent, "service:db") == "passing");
    assert!(in_dns(&agent, "db"));
}

#[test]
fn udp_check_follows_the_target() {
    let mut target = UdpTarget::start();
    let agent = Agent::dev(&[]);
    register(&agent, "dns", json!({"UDP": target.addr.to_string(), "Interval": "1s", "Timeout": "500ms"}));
    within("dns in DNS", INTERVAL + TIMEOUT + SLACK + INTERVAL, || in_dns(&agent, "dns"));
    target.set_up(false);
    within("dns out of DNS", INTERVAL + TIMEOUT + SLACK, || !in_dns(&agent, "dns"));
    target.set_up(true);
    within("dns back", INTERVAL + TIMEOUT + SLACK, || in_dns(&agent, "dns"));
}

#[test]
fn grpc_health_check_follows_the_serving_status() {
    let target = GrpcTarget::start();
    let agent = Agent::dev(&[]);
    register(
        &agent,
        "api",
        json!({"GRPC": format!("{}/my.Service", target.addr), "Interval": "1s", "Timeout": "500ms"}),
    );
    within("api in DNS", INTERVAL + TIMEOUT + SLACK + INTERVAL, || in_dns(&agent, "api"));
    assert_eq!(
        check_of(&agent, "service:api")["Output"],
        format!("gRPC check {}/my.Service: success", target.addr)
    );
    target.serving.store(false, Ordering::SeqCst);
    within("api out of DNS", INTERVAL + TIMEOUT + SLACK, || !in_dns(&agent, "api"));
    assert!(check_of(&agent, "service:api")["Output"].as_str().unwrap().contains("NOT_SERVING"));
    target.serving.store(true, Ordering::SeqCst);
    within("api back", INTERVAL + TIMEOUT + SLACK, || in_dns(&agent, "api"));
    assert!(target.checks.load(Ordering::SeqCst) >= 3);
}

#[test]
fn redirects_to_another_host_are_not_followed() {
    let elsewhere = HttpTarget::start();
    let target = HttpTarget::start();
    target.set(REDIRECT);
    *target.redirect_to.lock().unwrap() = elsewhere.url("/ok");
    let agent = Agent::dev(&[]);
    register(
        &agent,
        "away",
        json!({"HTTP": target.url("/"), "Interval": "1s", "Timeout": "500ms", "Status": "passing"}),
    );
    within("away critical", INTERVAL + TIMEOUT + SLACK + INTERVAL, || {
        status_of(&agent, "service:away") == "critical"
    });
    assert!(check_of(&agent, "service:away")["Output"].as_str().unwrap().contains(": 302 Found"));
    assert_eq!(elsewhere.hits.load(Ordering::SeqCst), 0, "the other host was never asked");

    // A redirect to the same host and port is followed (to a path that then answers 200).
    let local = HttpTarget::start();
    *local.redirect_to.lock().unwrap() = "/final".into();
    local.set(REDIRECT);
    register(
        &agent,
        "here",
        json!({"HTTP": local.url("/"), "Interval": "1s", "Timeout": "500ms", "Status": "passing"}),
    );
    within("here critical on a redirect loop", INTERVAL + TIMEOUT + SLACK + INTERVAL, || {
        check_of(&agent, "service:here")["Output"].as_str().is_some_and(|o| o.contains("302"))
    });
    assert!(local.hits.load(Ordering::SeqCst) > 1, "same-host redirects were followed");
}

#[test]
fn script_checks_are_refused_by_default_and_run_from_config_files_when_enabled() {
    let agent = Agent::dev(&[]);
    let body = json!({"Name": "job", "Check": {"Args": ["/bin/true"], "Interval": "1s"}});
    let (status, text) = agent.put("/v1/agent/service/register", &body.to_string());
    assert_eq!(status, 500, "{text}");
    assert!(text.contains("Scripts are disabled on this agent from remote calls"), "{text}");
    let (status, _) = agent.put(
        "/v1/agent/check/register",
        &json!({"Name": "s", "Args": ["/bin/true"], "Interval": "1s"}).to_string(),
    );
    assert_eq!(status, 500);
    assert!(agent.log().contains("refused a script check"), "a warning is logged");
    assert!(agent.get("/v1/agent/services").unwrap().1.get("job").is_none());

    // enable_local_script_checks: config-file scripts run (exit 0 passing, 1 warning, 2
    // critical); the HTTP API still refuses them.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent.json");
    let conf = json!({
        "enable_local_script_checks": true,
        "services": [
            {"Name": "ok", "Address": "127.0.0.1", "Check": {"Args": ["sh", "-c", "echo fine"], "Interval": "1s"}},
            {"Name": "meh", "Address": "127.0.0.1", "Check": {"Args": ["sh", "-c", "exit 1"], "Interval": "1s"}},
            {"Name": "bad", "Address": "127.0.0.1", "Check": {"Args": ["sh", "-c", "exit 2"], "Interval": "1s"}},
        ],
        // A node-level check and a check on a service, outside the service definitions.
        "checks": [
            {"Name": "disk", "Args": ["sh", "-c", "echo 91% used; exit 1"], "Interval": "1s"},
            {"ID": "ok-extra", "Name": "extra", "ServiceID": "ok", "Args": ["true"], "Interval": "1s"},
        ]
    });
    std::fs::write(&file, conf.to_string()).unwrap();
    let agent = Agent::dev(&["--config-file", file.to_str().unwrap()]);
    within("script results", INTERVAL + SLACK + INTERVAL, || {
        status_of(&agent, "service:ok") == "passing"
            && status_of(&agent, "service:meh") == "warning"
            && status_of(&agent, "service:bad") == "critical"
    });
    assert_eq!(check_of(&agent, "service:ok")["Output"], "fine\n");
    within("config-file checks", INTERVAL + SLACK + INTERVAL, || {
        status_of(&agent, "disk") == "warning" && status_of(&agent, "ok-extra") == "passing"
    });
    assert_eq!(check_of(&agent, "disk")["Output"], "91% used\n");
    assert_eq!(check_of(&agent, "ok-extra")["ServiceName"], "ok");
    assert!(in_dns(&agent, "ok"), "a warning node check keeps instances in DNS");
    let (status, _) = agent.put("/v1/agent/service/register", &body.to_string());
    assert_eq!(status, 500);

    // Without the setting, a config file with a script check does not start.
    std::fs::write(&file, json!({"services": [conf["services"][0].clone()]}).to_string()).unwrap();
    let err = Agent::try_start(&["--dev", "--config-file", file.to_str().unwrap()]).err().unwrap();
    assert!(err.contains("Scripts are disabled on this agent"), "{err}");
}

#[test]
fn maintenance_removes_from_dns_and_local_health_reports_it() {
    let agent = Agent::dev(&[]);
    register(&agent, "web", json!({"TTL": "60s", "Status": "passing"}));
    assert!(in_dns(&agent, "web"));
    assert_eq!(agent.put("/v1/agent/service/maintenance/web", "").0, 400, "enable is required");
    assert_eq!(agent.put("/v1/agent/service/maintenance/web?enable=maybe", "").0, 400);
    assert_eq!(agent.put("/v1/agent/service/maintenance/nope?enable=true", "").0, 404);

    agent.put_ok("/v1/agent/service/maintenance/web?enable=true&reason=deploying", "");
    assert!(!in_dns(&agent, "web"));
    let c = check_of(&agent, "_service_maintenance:web");
    assert_eq!(
        (c["Status"].as_str(), c["Notes"].as_str(), c["Type"].as_str()),
        (Some("critical"), Some("deploying"), Some("maintenance"))
    );
    assert_eq!(c["Name"], "Service Maintenance Mode");
    let (code, _, text) = agent.get_full("/v1/agent/health/service/id/web?format=text").unwrap();
    assert_eq!((code, text.as_str()), (503, "maintenance"));
    agent.put_ok("/v1/agent/service/maintenance/web?enable=false", "");
    assert!(in_dns(&agent, "web"));
    assert_eq!(check_of(&agent, "_service_maintenance:web"), Value::Null);

    agent.put_ok("/v1/agent/maintenance?enable=true", "");
    assert!(!in_dns(&agent, "web"), "node maintenance takes every instance out");
    let c = check_of(&agent, "_node_maintenance");
    assert_eq!(c["Name"], "Node Maintenance Mode");
    assert!(c["Notes"].as_str().unwrap().starts_with("Maintenance mode is enabled for this node"));
    agent.put_ok("/v1/agent/maintenance?enable=false", "");
    assert!(in_dns(&agent, "web"));
}

#[test]
fn local_health_endpoints_map_status_to_200_429_503() {
    let agent = Agent::dev(&[]);
    register(&agent, "web", json!({"TTL": "60s", "Status": "passing"}));
    let both = |path: &str| {
        let (code, _, text) = agent.get_full(&format!("{path}?format=text")).unwrap();
        let (jcode, body) = agent.get(path).unwrap();
        assert_eq!(code, jcode);
        (code, text, body)
    };
    let (code, text, body) = both("/v1/agent/health/service/id/web");
    assert_eq!((code, text.as_str()), (200, "passing"));
    assert_eq!(body["AggregatedStatus"], "passing");
    assert_eq!(body["Service"]["ID"], "web");
    assert!(body["Checks"].as_array().unwrap().iter().any(|c| c["CheckID"] == "service:web"));

    agent.put_ok("/v1/agent/check/warn/service:web", "");
    let (code, text, _) = both("/v1/agent/health/service/name/web");
    assert_eq!((code, text.as_str()), (429, "warning"));
    agent.put_ok("/v1/agent/check/fail/service:web", "");
    let (code, text, body) = both("/v1/agent/health/service/name/web");
    assert_eq!((code, text.as_str()), (503, "critical"));
    assert_eq!(body[0]["AggregatedStatus"], "critical");

    let (code, text, _) = both("/v1/agent/health/service/id/nope");
    assert_eq!((code, text.as_str()), (404, "ServiceId nope not found"));
    let (code, text, body) = both("/v1/agent/health/service/name/nope");
    assert_eq!((code, text.as_str(), body), (404, "ServiceName nope Not Found", json!([])));
}

#[test]
fn alias_check_mirrors_another_service() {
    let agent = Agent::dev(&[]);
    register(&agent, "db", json!({"TTL": "60s", "Status": "passing"}));
    register(&agent, "app", json!({"AliasService": "db"}));
    within("alias passing", SLACK, || status_of(&agent, "service:app") == "passing");
    assert!(in_dns(&agent, "app"));
    agent.put_ok("/v1/agent/check/fail/service:db?note=down", "");
    within("alias critical", SLACK, || status_of(&agent, "service:app") == "critical");
    assert_eq!(
        check_of(&agent, "service:app")["Output"],
        "Aliased check \"Service 'db' check\" failing: down"
    );
    assert!(!in_dns(&agent, "app"));
}

#[test]
fn deregister_critical_service_after_removes_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent.json");
    std::fs::write(
        &file,
        json!({"check_deregister_interval_min": "1s", "check_reap_interval": "200ms"}).to_string(),
    )
    .unwrap();
    let agent = Agent::dev(&["--config-file", file.to_str().unwrap()]);
    let target = TcpTarget::start();
    target.set_up(false);
    register(
        &agent,
        "gone",
        json!({"TCP": target.addr.to_string(), "Interval": "1s", "Timeout": "500ms", "DeregisterCriticalServiceAfter": "1s"}),
    );
    within("service reaped", INTERVAL + TIMEOUT + 2 * SLACK + INTERVAL, || {
        agent.get("/v1/agent/services").unwrap().1.get("gone").is_none()
    });
    assert_eq!(check_of(&agent, "service:gone"), Value::Null);
}

#[test]
fn checks_keep_running_after_a_restart_and_re_registration_keeps_their_status() {
    let target = HttpTarget::start();
    let dir = tempfile::tempdir().unwrap();
    let mut agent = Agent::server(dir.path(), &[]);
    let check = json!({"HTTP": target.url("/"), "Interval": "1s", "Timeout": "500ms"});
    register(&agent, "web", check.clone());
    within("passing", INTERVAL + TIMEOUT + SLACK + INTERVAL, || {
        status_of(&agent, "service:web") == "passing"
    });
    // Re-registering the same service does not reset the check to its initial critical.
    register(&agent, "web", check);
    assert_eq!(status_of(&agent, "service:web"), "passing");
    assert!(in_dns(&agent, "web"));

    agent.kill9();
    target.set(FAIL);
    let agent = Agent::server(dir.path(), &[]);
    within("critical after restart", INTERVAL + TIMEOUT + SLACK + INTERVAL, || {
        status_of(&agent, "service:web") == "critical"
    });
    assert!(!in_dns(&agent, "web"));
}
