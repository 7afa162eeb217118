//! Stage 0 and 5, sockets: datagrams and TCP frames in, responses out.
//!
//! Input: a bound UDP socket and TCP listener, the swappable `DnsContext`, the snapshot
//! handle and a shutdown token. Output: replies on the same sockets.
//!
//! Invariants:
//! - One receive loop per UDP socket; each datagram is answered inline by the synchronous
//!   `respond` (no lock, no LMDB, no Raft): the snapshot and context are loaded once per
//!   query. Only forwarding to recursors spawns a task (bounded by a semaphore).
//! - TCP: 2-byte length framing, several queries per connection, an idle timeout, and a
//!   bounded number of concurrent connections.
//! - Socket errors are logged and never end the loop; only shutdown does.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::{DnsContext, Resolved, Response, Transport, encode, recursor, respond};
use crate::snapshot::SnapshotHandle;

/// How long a TCP connection may sit idle between queries (and per read or write).
const TCP_IDLE: Duration = Duration::from_secs(8);
/// Concurrent TCP connections.
const MAX_TCP_CONNS: usize = 256;
/// Concurrent UDP forwards to recursors.
const MAX_UDP_FORWARDS: usize = 256;

/// Answers DNS on `udp` and `tcp` until `shutdown` is cancelled.
pub async fn serve(
    udp: UdpSocket,
    tcp: TcpListener,
    ctx: Arc<ArcSwap<DnsContext>>,
    snapshots: Arc<SnapshotHandle>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let tcp_task = tokio::spawn(tcp_loop(tcp, ctx.clone(), snapshots.clone(), shutdown.clone()));
    udp_loop(Arc::new(udp), ctx, snapshots, shutdown).await;
    if let Err(err) = tcp_task.await {
        tracing::warn!(%err, "DNS TCP loop ended abnormally");
    }
    Ok(())
}

/// Answers one request from the current snapshot (synchronous: no await while loaded).
fn respond_now(
    packet: &[u8],
    transport: Transport,
    ctx: &DnsContext,
    snapshots: &SnapshotHandle,
    resolved: &Resolved,
) -> Response {
    let snap = snapshots.load();
    respond(packet, transport, ctx, &snap, resolved, &mut rand::rng())
}

/// Whether answering needs the recursors (an await), so UDP moves it off the receive loop.
fn needs_recursors(response: &Response) -> bool {
    matches!(response, Response::Forward { .. } | Response::Resolve(_))
}

/// Finishes a response that needs the recursors: forwards the request, or resolves the
/// external host names and answers again from the then-current snapshot.
async fn finish(
    response: Response,
    packet: &[u8],
    transport: Transport,
    ctx: &DnsContext,
    snapshots: &SnapshotHandle,
) -> Option<Vec<u8>> {
    let d = &ctx.dns_config;
    match response {
        Response::Reply(bytes) => Some(bytes),
        Response::Drop => None,
        Response::Forward { request, failure, .. } => {
            let reply = recursor::forward(
                &request,
                transport,
                &ctx.recursors,
                d.recursor_strategy,
                d.recursor_timeout,
            )
            .await;
            Some(reply.map_or(failure, |r| encode::recompress(r, ctx)))
        }
        Response::Resolve(names) => {
            let answers =
                recursor::resolve(&names, &ctx.recursors, d.recursor_strategy, d.recursor_timeout).await;
            match respond_now(packet, transport, ctx, snapshots, &Resolved::complete(answers)) {
                Response::Reply(bytes) => Some(bytes),
                _ => None,
            }
        }
    }
}

async fn udp_loop(
    udp: Arc<UdpSocket>,
    ctx: Arc<ArcSwap<DnsContext>>,
    snapshots: Arc<SnapshotHandle>,
    shutdown: CancellationToken,
) {
    let forwards = Arc::new(Semaphore::new(MAX_UDP_FORWARDS));
    let mut buf = vec![0u8; 65535];
    loop {
        let (n, peer) = tokio::select! {
            () = shutdown.cancelled() => return,
            r = udp.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(err) => {
                    tracing::debug!(%err, "DNS UDP receive failed");
                    tokio::task::yield_now().await;
                    continue;
                }
            },
        };
        let Some(packet) = buf.get(..n) else { continue };
        let cfg = ctx.load_full();
        let response = respond_now(packet, Transport::Udp, &cfg, &snapshots, &Resolved::pending());
        if !needs_recursors(&response) {
            if let Response::Reply(bytes) = response
                && let Err(err) = udp.send_to(&bytes, peer).await
            {
                tracing::debug!(%err, %peer, "DNS UDP send failed");
            }
            continue;
        }
        let Ok(permit) = forwards.clone().try_acquire_owned() else {
            // Overloaded: answer without the recursors rather than queue without bound.
            if let Response::Forward { failure, .. } = response {
                let _ = udp.send_to(&failure, peer).await;
            } else if let Response::Reply(bytes) =
                respond_now(packet, Transport::Udp, &cfg, &snapshots, &Resolved::complete([]))
            {
                let _ = udp.send_to(&bytes, peer).await;
            }
            continue;
        };
        let (udp, snapshots, packet) = (udp.clone(), snapshots.clone(), packet.to_vec());
        tokio::spawn(async move {
            if let Some(reply) = finish(response, &packet, Transport::Udp, &cfg, &snapshots).await
                && let Err(err) = udp.send_to(&reply, peer).await
            {
                tracing::debug!(%err, %peer, "DNS UDP send failed");
            }
            drop(permit);
        });
    }
}

async fn tcp_loop(
    tcp: TcpListener,
    ctx: Arc<ArcSwap<DnsContext>>,
    snapshots: Arc<SnapshotHandle>,
    shutdown: CancellationToken,
) {
    let conns = Arc::new(Semaphore::new(MAX_TCP_CONNS));
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => return,
            r = tcp.accept() => match r {
                Ok(x) => x,
                Err(err) => {
                    tracing::debug!(%err, "DNS TCP accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = conns.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "too many DNS TCP connections; closing");
            continue;
        };
        let (ctx, snapshots, shutdown) = (ctx.clone(), snapshots.clone(), shutdown.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = tcp_conn(stream, &ctx, &snapshots) => {}
            }
            drop(permit);
        });
    }
}

async fn tcp_conn(mut stream: TcpStream, ctx: &ArcSwap<DnsContext>, snapshots: &SnapshotHandle) {
    loop {
        let mut len = [0u8; 2];
        if !matches!(tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut len)).await, Ok(Ok(_))) {
            return;
        }
        let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if !matches!(tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut body)).await, Ok(Ok(_))) {
            return;
        }
        let cfg = ctx.load_full();
        let response = respond_now(&body, Transport::Tcp, &cfg, snapshots, &Resolved::pending());
        let Some(reply) = finish(response, &body, Transport::Tcp, &cfg, snapshots).await else {
            return;
        };
        let Ok(n) = u16::try_from(reply.len()) else { return };
        let mut frame = Vec::with_capacity(reply.len() + 2);
        frame.extend_from_slice(&n.to_be_bytes());
        frame.extend_from_slice(&reply);
        if !matches!(tokio::time::timeout(TCP_IDLE, stream.write_all(&frame)).await, Ok(Ok(()))) {
            return;
        }
    }
}
