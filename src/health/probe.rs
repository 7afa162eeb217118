//! One probe of one check kind: HTTP, TCP, UDP, gRPC (`grpc.health.v1`), H2PING and script.
//!
//! Input: a stored `CheckDefinition` (built once per runner into a `Probe`) and a timeout →
//! output: a raw status and Consul's output text, before thresholds.
//! Invariants: a probe never panics and never outlives its timeout (UDP treats a silent peer
//! as passing, as Consul does); output is at most the check's output limit; an HTTP check
//! follows redirects only to the same host and port (at most 10), never to another host.
//!
//! Why bare hyper, h2 and rustls rather than crates made for these clients: tonic-health 0.14
//! has the `grpc.health.v1` client, but brings tonic, tonic-prost and prost (a second HTTP/2
//! client stack, generated code, its own TLS and timeout settings) for a request of one
//! optional string and a reply of one varint, which `grpc_request` and `grpc_response_status`
//! encode in 60 lines on the HTTP/2 connection `connect` opens with the check's rustls
//! settings. reqwest (in the tree for the CLI) could send HTTP checks, but only with its rustls
//! feature (hyper-rustls) to take `tls::client_config`, and the check's rules are Consul's: a
//! fresh connection per probe, redirects only to the same scheme, host and port, Consul's error
//! texts (`dial tcp host:port: …`), only the tail of a long body kept. H2PING sends h2's PING
//! frame, which neither reqwest nor hyper's client exposes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UdpSocket, lookup_host};

use super::status::{cap, tail};
use super::tls;
use crate::agent::format_go_duration;
use crate::catalog::{CheckDefinition, HealthStatus};

/// Consul's default timeout of network checks.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Consul's default timeout of script checks.
pub const DEFAULT_SCRIPT_TIMEOUT: Duration = Duration::from_secs(30);

/// A raw probe result.
pub type Outcome = (HealthStatus, String);

/// Largest gRPC health reply body read.
const GRPC_MAX_REPLY: usize = 64 << 10;

/// A check kind ready to probe (clients and parsed targets built once).
pub enum Probe {
    /// `HTTP`.
    Http(Box<HttpProbe>),
    /// `TCP` (with `TCPUseTLS`: the TLS settings and server name).
    Tcp(String, Option<(Arc<rustls::ClientConfig>, String)>),
    /// `UDP`.
    Udp(String),
    /// `GRPC`.
    Grpc(Box<GrpcProbe>),
    /// `H2PING`.
    H2Ping(H2PingProbe),
    /// `Args`.
    Script(Vec<String>),
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            Self::Http(_) => "http",
            Self::Tcp(..) => "tcp",
            Self::Udp(_) => "udp",
            Self::Grpc(_) => "grpc",
            Self::H2Ping(_) => "h2ping",
            Self::Script(_) => "script",
        };
        f.debug_tuple("Probe").field(&kind).finish()
    }
}

/// An HTTP check's request and TLS settings.
pub struct HttpProbe {
    url: String,
    parsed: reqwest::Url,
    method: hyper::Method,
    headers: hyper::HeaderMap,
    body: bytes::Bytes,
    disable_redirects: bool,
    tls: Arc<rustls::ClientConfig>,
    server_name: String,
}

/// A gRPC health check's target and TLS settings.
pub struct GrpcProbe {
    target: String,
    host: String,
    port: u16,
    service: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    server_name: String,
}

/// An HTTP/2 ping check's target and TLS settings.
pub struct H2PingProbe {
    addr: String,
    tls: Option<(Arc<rustls::ClientConfig>, String)>,
}

fn host_of(addr: &str) -> &str {
    let host = match addr.rsplit_once(':') {
        Some((h, _)) => h,
        None => addr,
    };
    host.trim_start_matches('[').trim_end_matches(']')
}

/// What a probe talks over: TCP, or TLS over TCP.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Connects to `host:port` (every resolved address is tried), then TLS with `server_name`
/// when `tls` is given.
async fn connect(
    host: &str,
    port: u16,
    tls: Option<&Arc<rustls::ClientConfig>>,
    server_name: &str,
) -> Result<Box<dyn Io>, String> {
    let tcp = TcpStream::connect((host, port)).await.map_err(|e| format!("dial tcp {host}:{port}: {e}"))?;
    let Some(config) = tls else {
        return Ok(Box::new(tcp));
    };
    let name = if server_name.is_empty() { host } else { server_name };
    let sn = rustls::pki_types::ServerName::try_from(name.to_owned())
        .map_err(|e| format!("TLS server name {name:?}: {e}"))?;
    let stream = tokio_rustls::TlsConnector::from(config.clone())
        .connect(sn, tcp)
        .await
        .map_err(|e| format!("tls: {e}"))?;
    Ok(Box::new(stream))
}

/// Host and port of a URL (brackets of an IPv6 literal removed).
fn host_port(url: &reqwest::Url) -> Result<(String, u16), String> {
    let host = url.host_str().ok_or_else(|| format!("no host in {url}"))?;
    let port = url.port_or_known_default().ok_or_else(|| format!("no port in {url}"))?;
    Ok((host.trim_start_matches('[').trim_end_matches(']').to_owned(), port))
}

impl Probe {
    /// Builds the probe of a check of kind `kind`; `None` for kinds that are not probed here
    /// (TTL, alias, docker, os_service).
    pub async fn build(kind: &str, d: &CheckDefinition) -> Option<Result<Self, String>> {
        Some(match kind {
            "http" => Self::http(d).await.map(|p| Self::Http(Box::new(p))),
            "tcp" => Self::tcp(d),
            "udp" => Ok(Self::Udp(d.udp.clone())),
            "grpc" => Self::grpc(d).await.map(|p| Self::Grpc(Box::new(p))),
            "h2ping" => Self::h2ping(d),
            "script" => Ok(Self::Script(d.script_args.clone())),
            _ => return None,
        })
    }

    async fn http(d: &CheckDefinition) -> Result<HttpProbe, String> {
        let parsed =
            reqwest::Url::parse(&d.http).map_err(|e| format!("invalid HTTP URL {:?}: {e}", d.http))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("invalid HTTP URL {:?}: scheme must be http or https", d.http));
        }
        host_port(&parsed)?;
        let method_name = if d.method.is_empty() { "GET" } else { d.method.as_str() };
        let method = hyper::Method::from_bytes(method_name.as_bytes())
            .map_err(|_| format!("invalid HTTP method {method_name:?}"))?;
        let mut headers = hyper::HeaderMap::new();
        headers.insert(
            hyper::header::USER_AGENT,
            hyper::header::HeaderValue::from_static("Consul Health Check"),
        );
        headers.insert(
            hyper::header::ACCEPT,
            hyper::header::HeaderValue::from_static("text/plain, text/*, */*"),
        );
        // Consul disables keep-alives: one connection per probe.
        headers.insert(hyper::header::CONNECTION, hyper::header::HeaderValue::from_static("close"));
        for (name, values) in &d.header {
            let n = hyper::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("invalid header name {name:?}"))?;
            headers.remove(&n);
            for v in values {
                let v = hyper::header::HeaderValue::from_str(v)
                    .map_err(|_| format!("invalid value of header {name:?}"))?;
                headers.append(n.clone(), v);
            }
        }
        let tls = tls::client_config(d.tls_skip_verify, tls::Alpn::Http1)?;
        Ok(HttpProbe {
            url: d.http.clone(),
            parsed,
            method,
            headers,
            body: bytes::Bytes::from(d.body.clone()),
            disable_redirects: d.disable_redirects,
            tls,
            server_name: d.tls_server_name.clone(),
        })
    }

    async fn grpc(d: &CheckDefinition) -> Result<GrpcProbe, String> {
        let (addr, service) = match d.grpc.split_once('/') {
            Some((a, s)) => (a, s.to_owned()),
            None => (d.grpc.as_str(), String::new()),
        };
        let url = reqwest::Url::parse(&format!("http://{addr}/"))
            .map_err(|e| format!("invalid gRPC target {:?}: {e}", d.grpc))?;
        let (host, port) = host_port(&url)?;
        let tls =
            if d.grpc_use_tls { Some(tls::client_config(d.tls_skip_verify, tls::Alpn::H2)?) } else { None };
        Ok(GrpcProbe {
            target: d.grpc.clone(),
            host,
            port,
            service,
            tls,
            server_name: d.tls_server_name.clone(),
        })
    }

    fn tcp(d: &CheckDefinition) -> Result<Self, String> {
        let tls = if d.tcp_use_tls {
            let config = tls::client_config(d.tls_skip_verify, tls::Alpn::Http1)?;
            let name = if d.tls_server_name.is_empty() {
                host_of(&d.tcp).to_owned()
            } else {
                d.tls_server_name.clone()
            };
            Some((config, name))
        } else {
            None
        };
        Ok(Self::Tcp(d.tcp.clone(), tls))
    }

    fn h2ping(d: &CheckDefinition) -> Result<Self, String> {
        let tls = if d.h2ping_use_tls {
            let config = tls::client_config(d.tls_skip_verify, tls::Alpn::H2)?;
            let name = if d.tls_server_name.is_empty() {
                host_of(&d.h2ping).to_owned()
            } else {
                d.tls_server_name.clone()
            };
            Some((config, name))
        } else {
            None
        };
        Ok(Self::H2Ping(H2PingProbe { addr: d.h2ping.clone(), tls }))
    }

    /// The kind's default timeout.
    pub fn default_timeout(&self) -> Duration {
        match self {
            Self::Script(_) => DEFAULT_SCRIPT_TIMEOUT,
            _ => DEFAULT_TIMEOUT,
        }
    }

    /// Runs one probe within `timeout`; output is limited to `max` bytes.
    pub async fn run(&self, timeout: Duration, max: usize) -> Outcome {
        // A silent UDP peer passes when its read times out, so UDP is not raced against the
        // timeout below.
        if let Self::Udp(addr) = self {
            return udp(addr, timeout).await;
        }
        let what = match self {
            Self::Http(p) => format!("HTTP {} {}", p.method, p.url),
            Self::Tcp(a, _) => format!("TCP connect {a}"),
            Self::Udp(a) => format!("UDP {a}"),
            Self::Grpc(p) => format!("gRPC check {}", p.target),
            Self::H2Ping(p) => format!("HTTP2 ping {}", p.addr),
            Self::Script(args) => format!("Script {args:?}"),
        };
        let fut = async {
            match self {
                Self::Http(p) => p.run(max).await,
                Self::Tcp(a, tls) => tcp(a, tls.as_ref()).await,
                Self::Udp(a) => udp(a, timeout).await,
                Self::Grpc(p) => p.run().await,
                Self::H2Ping(p) => p.run().await,
                Self::Script(args) => script(args, max).await,
            }
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok((status, output)) => (status, cap(output, max)),
            Err(_) => (
                HealthStatus::Critical,
                cap(format!("{what}: timed out after {}", format_go_duration(timeout)), max),
            ),
        }
    }
}

/// An error with its sources, as Go prints wrapped errors.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

impl HttpProbe {
    async fn run(&self, max: usize) -> Outcome {
        match self.follow(max).await {
            Ok((code, body)) => {
                let status_text = match code.canonical_reason() {
                    Some(r) => format!("{} {r}", code.as_u16()),
                    None => code.as_u16().to_string(),
                };
                // The newest bytes of the body fill what the prefix leaves of the limit.
                let prefix = format!("HTTP {} {}: {status_text} Output: ", self.method, self.url);
                let output = format!("{prefix}{}", tail(body.as_bytes(), max.saturating_sub(prefix.len())));
                let status = if code.is_success() {
                    HealthStatus::Passing
                } else if code.as_u16() == 429 {
                    HealthStatus::Warning
                } else {
                    HealthStatus::Critical
                };
                (status, output)
            }
            Err(e) => (HealthStatus::Critical, format!("HTTP {} {}: {e}", self.method, self.url)),
        }
    }

    /// Sends the request, following at most 10 redirects that stay on the same scheme, host
    /// and port; any other redirect is the result (and so critical).
    async fn follow(&self, max: usize) -> Result<(hyper::StatusCode, String), String> {
        let mut url = self.parsed.clone();
        let mut method = self.method.clone();
        let mut body = self.body.clone();
        for hop in 0.. {
            let (code, location, out) = self.send(&url, &method, body.clone(), max).await?;
            let next = match location {
                Some(loc) if code.is_redirection() && !self.disable_redirects && hop < 10 => {
                    url.join(&loc).ok()
                }
                _ => None,
            };
            match next {
                Some(n) if n.scheme() == url.scheme() && host_port(&n) == host_port(&url) => {
                    // Go's client turns a redirected POST into a GET, except for 307 and 308.
                    if !matches!(code.as_u16(), 307 | 308) && method != hyper::Method::HEAD {
                        method = hyper::Method::GET;
                        body = bytes::Bytes::new();
                    }
                    url = n;
                }
                _ => return Ok((code, out)),
            }
        }
        Err("too many redirects".into())
    }

    async fn send(
        &self,
        url: &reqwest::Url,
        method: &hyper::Method,
        body: bytes::Bytes,
        max: usize,
    ) -> Result<(hyper::StatusCode, Option<String>, String), String> {
        let (host, port) = host_port(url)?;
        let tls = (url.scheme() == "https").then_some(&self.tls);
        let io = connect(&host, port, tls, &self.server_name).await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(io)).await.map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let authority = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_owned(),
        };
        let path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let mut req = hyper::Request::builder().method(method.clone()).uri(path);
        if !self.headers.contains_key(hyper::header::HOST) {
            req = req.header(hyper::header::HOST, authority);
        }
        let mut req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
        req.headers_mut().extend(self.headers.clone());
        let mut resp = sender.send_request(req).await.map_err(|e| error_chain(&e))?;
        let code = resp.status();
        let location =
            resp.headers().get(hyper::header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
        // Consul keeps the tail of the body in a buffer of the output size.
        let mut buf: Vec<u8> = Vec::new();
        while let Some(frame) = resp.body_mut().frame().await {
            let Ok(frame) = frame else { break };
            if let Some(data) = frame.data_ref() {
                buf.extend_from_slice(data);
                if buf.len() > 2 * max {
                    buf.drain(..buf.len() - max);
                }
            }
        }
        Ok((code, location, tail(&buf, max)))
    }
}

async fn tcp(addr: &str, tls: Option<&(Arc<rustls::ClientConfig>, String)>) -> Outcome {
    let fail = |e: String| (HealthStatus::Critical, format!("dial tcp {addr}: {e}"));
    let addrs: Vec<SocketAddr> = match lookup_host(addr).await {
        Ok(a) => a.collect(),
        Err(e) => return fail(e.to_string()),
    };
    let mut last = String::from("no addresses");
    for a in addrs {
        match TcpStream::connect(a).await {
            Ok(stream) => {
                let Some((config, name)) = tls else {
                    return (HealthStatus::Passing, format!("TCP connect {addr}: Success"));
                };
                let sn = match rustls::pki_types::ServerName::try_from(name.clone()) {
                    Ok(sn) => sn,
                    Err(e) => return fail(format!("TLS server name {name:?}: {e}")),
                };
                return match tokio_rustls::TlsConnector::from(config.clone()).connect(sn, stream).await {
                    Ok(_) => (HealthStatus::Passing, format!("TCP connect {addr}: Success")),
                    Err(e) => fail(format!("tls: {e}")),
                };
            }
            Err(e) => last = e.to_string(),
        }
    }
    fail(last)
}

/// Consul's UDP check: send one byte, then read; a reply or a read timeout passes, an error
/// (such as ICMP port unreachable) fails.
async fn udp(addr: &str, timeout: Duration) -> Outcome {
    let fail = |e: String| (HealthStatus::Critical, format!("UDP {addr}: {e}"));
    let target = match lookup_host(addr).await {
        Ok(mut a) => match a.next() {
            Some(t) => t,
            None => return fail("no addresses".into()),
        },
        Err(e) => return fail(e.to_string()),
    };
    let local: SocketAddr = if target.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let sock = match UdpSocket::bind(local).await {
        Ok(s) => s,
        Err(e) => return fail(e.to_string()),
    };
    if let Err(e) = sock.connect(target).await {
        return fail(e.to_string());
    }
    if let Err(e) = sock.send(&[0]).await {
        return fail(e.to_string());
    }
    let mut buf = [0u8; 1];
    match tokio::time::timeout(timeout, sock.recv(&mut buf)).await {
        Ok(Err(e)) => fail(e.to_string()),
        Ok(Ok(_)) | Err(_) => (HealthStatus::Passing, format!("UDP connect {addr}: Success")),
    }
}

/// `grpc.health.v1.HealthCheckRequest{service}` in a gRPC frame.
pub fn grpc_request(service: &str) -> Vec<u8> {
    let mut msg = Vec::new();
    if !service.is_empty() {
        msg.push(0x0a);
        let mut n = service.len();
        while n >= 0x80 {
            msg.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        msg.push(n as u8);
        msg.extend_from_slice(service.as_bytes());
    }
    let mut frame = Vec::with_capacity(5 + msg.len());
    frame.push(0);
    frame.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    frame.extend_from_slice(&msg);
    frame
}

/// The `status` of a framed `grpc.health.v1.HealthCheckResponse` (0 UNKNOWN when absent).
pub fn grpc_response_status(frame: &[u8]) -> Result<u64, String> {
    if frame.len() < 5 {
        return Err("empty response".into());
    }
    if frame[0] != 0 {
        return Err("compressed response".into());
    }
    let len = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]) as usize;
    let msg = frame.get(5..5 + len).ok_or("truncated response")?;
    let mut i = 0;
    let mut status = 0;
    let varint = |i: &mut usize| -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *msg.get(*i).ok_or("truncated varint")?;
            *i += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    };
    while i < msg.len() {
        let tag = varint(&mut i)?;
        match (tag >> 3, tag & 7) {
            (1, 0) => status = varint(&mut i)?,
            (_, 0) => {
                varint(&mut i)?;
            }
            (_, 2) => {
                let l = varint(&mut i)? as usize;
                i = i.checked_add(l).filter(|e| *e <= msg.len()).ok_or("truncated field")?;
            }
            (_, 1) => i += 8,
            (_, 5) => i += 4,
            _ => return Err("bad wire type".into()),
        }
    }
    Ok(status)
}

fn serving_status_name(s: u64) -> &'static str {
    match s {
        0 => "UNKNOWN",
        1 => "SERVING",
        2 => "NOT_SERVING",
        3 => "SERVICE_UNKNOWN",
        _ => "INVALID",
    }
}

impl GrpcProbe {
    async fn run(&self) -> Outcome {
        match self.check().await {
            Ok(()) => (HealthStatus::Passing, format!("gRPC check {}: success", self.target)),
            Err(e) => (HealthStatus::Critical, format!("gRPC check {}: failed: {e}", self.target)),
        }
    }

    async fn check(&self) -> Result<(), String> {
        let io = connect(&self.host, self.port, self.tls.as_ref(), &self.server_name).await?;
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
                .await
                .map_err(|e| error_chain(&e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        let req = hyper::Request::builder()
            .method(hyper::Method::POST)
            .uri(format!("{scheme}://{host}:{}/grpc.health.v1.Health/Check", self.port))
            .header(hyper::header::CONTENT_TYPE, "application/grpc")
            .header(hyper::header::TE, "trailers")
            .header(hyper::header::USER_AGENT, "Consul Health Check")
            .body(Full::new(bytes::Bytes::from(grpc_request(&self.service))))
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| error_chain(&e))?;
        if !resp.status().is_success() {
            return Err(format!("HTTP status {}", resp.status()));
        }
        let headers = resp.headers().clone();
        // A health reply is a few bytes; a target that streams more fails the check instead of
        // growing the agent's memory.
        let collected = http_body_util::Limited::new(resp.into_body(), GRPC_MAX_REPLY)
            .collect()
            .await
            .map_err(|e| format!("reading the reply: {e}"))?;
        // The gRPC status is in the trailers, or in the headers of a trailers-only reply.
        let trailers = collected.trailers().cloned().unwrap_or_default();
        let field = |name: &str| {
            trailers.get(name).or_else(|| headers.get(name)).and_then(|v| v.to_str().ok()).map(str::to_owned)
        };
        if let Some(code) = field("grpc-status")
            && code != "0"
        {
            let msg = field("grpc-message").unwrap_or_default();
            return Err(format!("rpc error: code = {code} desc = {msg}"));
        }
        let status = grpc_response_status(&collected.to_bytes())?;
        if status == 1 {
            Ok(())
        } else {
            Err(format!("gRPC {} serving status: {}", self.target, serving_status_name(status)))
        }
    }
}

impl H2PingProbe {
    async fn run(&self) -> Outcome {
        match self.ping().await {
            Ok(()) => (HealthStatus::Passing, "HTTP2 ping was successful".into()),
            Err(e) => (HealthStatus::Critical, format!("HTTP2 ping {}: failed: {e}", self.addr)),
        }
    }

    async fn ping(&self) -> Result<(), String> {
        let tcp = TcpStream::connect(&self.addr).await.map_err(|e| e.to_string())?;
        match &self.tls {
            None => ping_over(tcp).await,
            Some((config, name)) => {
                let server_name = rustls::pki_types::ServerName::try_from(name.clone())
                    .map_err(|e| format!("server name {name:?}: {e}"))?;
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(server_name, tcp)
                    .await
                    .map_err(|e| e.to_string())?;
                ping_over(tls).await
            }
        }
    }
}

async fn ping_over<T: AsyncRead + AsyncWrite + Unpin + Send + 'static>(io: T) -> Result<(), String> {
    let (_send, mut conn) = h2::client::handshake(io).await.map_err(|e| e.to_string())?;
    let mut pp = conn.ping_pong().ok_or("ping already taken")?;
    tokio::select! {
        r = pp.ping(h2::Ping::opaque()) => r.map(|_| ()).map_err(|e| e.to_string()),
        r = conn => match r {
            Ok(()) => Err("connection closed".into()),
            Err(e) => Err(e.to_string()),
        },
    }
}

/// Runs a script check: exit 0 passing, 1 warning, anything else critical. The script runs
/// in a process group of its own; when the probe times out (the future is dropped) the whole
/// group is killed, children included. Only the last `max` bytes of each stream are kept.
async fn script(args: &[String], max: usize) -> Outcome {
    let Some((cmd, rest)) = args.split_first() else {
        return (HealthStatus::Critical, "no command".into());
    };
    let child = tokio::process::Command::new(cmd)
        .args(rest)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return (HealthStatus::Critical, format!("Failed to start {cmd:?}: {e}")),
    };
    let mut group = GroupKill(child.id().and_then(|id| i32::try_from(id).ok()));
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let (mut all, err, waited) = tokio::join!(read_tail(stdout, max), read_tail(stderr, max), child.wait());
    group.0 = None;
    let code = match waited {
        Ok(s) => s.code(),
        Err(e) => return (HealthStatus::Critical, format!("Failed to run {cmd:?}: {e}")),
    };
    all.extend_from_slice(&err);
    let status = match code {
        Some(0) => HealthStatus::Passing,
        Some(1) => HealthStatus::Warning,
        _ => HealthStatus::Critical,
    };
    (status, tail(&all, max))
}

/// Kills a script's process group when dropped before the script finished (probe timeout).
struct GroupKill(Option<i32>);

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            let _ =
                nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// Reads a stream to its end, keeping only its last `max` bytes (a chatty script cannot
/// grow the agent's memory).
async fn read_tail<R: AsyncRead + Unpin>(stream: Option<R>, max: usize) -> Vec<u8> {
    use tokio::io::AsyncReadExt as _;
    let Some(mut stream) = stream else { return Vec::new() };
    let keep = max.max(1);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
                if buf.len() > 2 * keep + chunk.len() {
                    buf.drain(..buf.len() - keep);
                }
            }
        }
    }
    buf
}

#[cfg(test)]
mod script_tests {
    use std::time::Duration;

    use super::script;
    use crate::catalog::HealthStatus;

    fn args(sh: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), sh.into()]
    }

    #[tokio::test]
    async fn a_chatty_script_keeps_only_the_tail() {
        let (status, out) = script(&args("yes 0123456789 | head -c 2000000; echo END; exit 1"), 100).await;
        assert_eq!(status, HealthStatus::Warning);
        assert!(out.len() <= 100 && out.ends_with("END\n"), "{out:?}");
    }

    #[tokio::test]
    async fn a_timed_out_script_is_killed_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let sh = format!("sleep 30 & echo $! > {}; wait", pid_file.display());
        let argv = args(&sh);
        let run = script(&argv, 4096);
        assert!(tokio::time::timeout(Duration::from_millis(500), run).await.is_err());
        let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
        let gone = || nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err() || zombie(pid);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !gone() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(gone(), "the script's child {pid} survived the timeout");
    }

    /// A killed child of a killed shell may linger as a zombie until init reaps it.
    fn zombie(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')))
    }
}
