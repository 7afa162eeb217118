//! Socket checks: TCP connect (optionally with a TLS handshake) and Consul's UDP check.
//!
//! Stage: `probe`, for `TCP` and `UDP` checks. Input: the check's `host:port` (and, for
//! `TCPUseTLS`, the TLS settings and server name) → output: passing on a connection (or
//! handshake), critical with Go's `dial tcp host:port: …` text otherwise.
//! Invariants: every resolved address is tried before a TCP check fails; a UDP check sends one
//! byte and passes on a reply or a silent read timeout (as Consul does), failing only on an
//! error such as ICMP port unreachable.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpStream, UdpSocket, lookup_host};

use super::{Outcome, Probe, host_of};
use crate::catalog::{CheckDefinition, HealthStatus};
use crate::health::tls;

impl Probe {
    pub(super) fn tcp(d: &CheckDefinition) -> Result<Self, String> {
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
}

pub(super) async fn tcp(addr: &str, tls: Option<&(Arc<rustls::ClientConfig>, String)>) -> Outcome {
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
pub(super) async fn udp(addr: &str, timeout: Duration) -> Outcome {
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
