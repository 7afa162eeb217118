//! gRPC health checks: `grpc.health.v1.Health/Check` over an HTTP/2 connection, and the two
//! protobuf messages it needs encoded by hand.
//!
//! Stage: `probe`, for `GRPC` checks. Input: the check's `host:port[/service]` target and TLS
//! settings (built once into a `GrpcProbe`) → output: passing when the reply's serving status
//! is SERVING, critical otherwise, with Consul's output text.
//! Invariants: a non-zero `grpc-status` (in the trailers, or the headers of a trailers-only
//! reply) fails the check with its message; a reply body over `GRPC_MAX_REPLY` fails the check
//! rather than growing the agent's memory; a malformed reply is an error, never a panic.

use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::{GrpcProbe, Outcome, Probe, connect, error_chain, host_port};
use crate::catalog::{CheckDefinition, HealthStatus};
use crate::health::tls;

/// Largest gRPC health reply body read.
const GRPC_MAX_REPLY: usize = 64 << 10;

impl Probe {
    pub(super) async fn grpc(d: &CheckDefinition) -> Result<GrpcProbe, String> {
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
}

/// `grpc.health.v1.HealthCheckRequest{service}` in a gRPC frame.
pub(crate) fn grpc_request(service: &str) -> Vec<u8> {
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
pub(crate) fn grpc_response_status(frame: &[u8]) -> Result<u64, String> {
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
    pub(super) async fn run(&self) -> Outcome {
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
