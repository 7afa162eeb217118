//! HTTP/2 ping checks: an HTTP/2 handshake, then one PING frame answered.
//!
//! Stage: `probe`, for `H2PING` checks. Input: the check's `host:port` and TLS settings
//! (built once into an `H2PingProbe`) → output: passing when the PING is acknowledged,
//! critical with the error otherwise.
//! Invariants: h2's PING frame is sent directly (neither reqwest nor hyper's client exposes
//! it); a connection closed before the acknowledgement fails the check.

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::{H2PingProbe, Outcome, Probe, host_of};
use crate::catalog::{CheckDefinition, HealthStatus};
use crate::health::tls;

impl Probe {
    pub(super) fn h2ping(d: &CheckDefinition) -> Result<Self, String> {
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
}

impl H2PingProbe {
    pub(super) async fn run(&self) -> Outcome {
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
