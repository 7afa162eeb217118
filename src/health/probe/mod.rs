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
//!
//! Files: `http` (HTTP checks: request, same-host redirects, body tail), `grpc`
//! (`grpc.health.v1` over HTTP/2 and its protobuf encoding), `h2ping` (HTTP/2 PING), `socket`
//! (TCP connect, TCP+TLS handshake, UDP), `script` (a process group with its output tails).
//! Here: the `Probe` kinds and their settings, `Probe::build` and `Probe::run` (the timeout
//! race), and the connect and error helpers the kinds share.

mod grpc;
mod h2ping;
mod http;
mod script;
mod socket;

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::status::cap;
use crate::agent::format_go_duration;
use crate::catalog::{CheckDefinition, HealthStatus};
use script::script;
use socket::{tcp, udp};

#[cfg(test)]
pub(crate) use grpc::{grpc_request, grpc_response_status};

/// Consul's default timeout of network checks.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Consul's default timeout of script checks.
pub(crate) const DEFAULT_SCRIPT_TIMEOUT: Duration = Duration::from_secs(30);

/// A raw probe result.
pub(crate) type Outcome = (HealthStatus, String);

/// A check kind ready to probe (clients and parsed targets built once).
pub(crate) enum Probe {
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
pub(crate) struct HttpProbe {
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
pub(crate) struct GrpcProbe {
    target: String,
    host: String,
    port: u16,
    service: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    server_name: String,
}

/// An HTTP/2 ping check's target and TLS settings.
pub(crate) struct H2PingProbe {
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
    pub(crate) async fn build(kind: &str, d: &CheckDefinition) -> Option<Result<Self, String>> {
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

    /// The kind's default timeout.
    pub(crate) fn default_timeout(&self) -> Duration {
        match self {
            Self::Script(_) => DEFAULT_SCRIPT_TIMEOUT,
            _ => DEFAULT_TIMEOUT,
        }
    }

    /// Runs one probe within `timeout`; output is limited to `max` bytes.
    pub(crate) async fn run(&self, timeout: Duration, max: usize) -> Outcome {
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
