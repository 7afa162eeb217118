//! Stage 0 and 5, sockets: datagrams and TCP frames in, responses out.
//!
//! Input: bound UDP sockets (`SO_REUSEPORT`, one per core, see `udp`) and a TCP listener,
//! the swappable `DnsContext`, the snapshot handle, the ACL view handle (ACLs on) and a
//! shutdown token. Output: replies on
//! the same sockets.
//!
//! Invariants:
//! - UDP: one batched receive loop per socket on its own thread (`udp`), answering through
//!   a per-loop answer cache; the synchronous `respond` takes no lock, no LMDB, no Raft.
//!   Only forwarding to recursors moves to a task (bounded by a semaphore).
//! - TCP (RFC 7766): 2-byte length framing; several queries per connection, pipelined ones
//!   answered in order; every connection is bounded in number, in time (a whole message must
//!   arrive before a deadline, so a partial frame held open is closed) and in queries. The
//!   numbers are the consts below; a request that gets no reply closes the connection.
//! - Socket errors are logged and never end the loop; only shutdown does.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use super::access::Access;
use super::context::{DnsContext, Transport};
use super::message::{Resolved, Response};
use super::pipeline::respond_under;
use super::{encode, recursor};
use crate::acl_state::DnsViewHandle;
use crate::snapshot::SnapshotHandle;

/// Time for the first message on a new TCP connection to arrive completely, length prefix
/// and body. miekg/dns (Consul's DNS server) uses the same 2 s read timeout (`dnsTimeout`);
/// it is what closes a connection that opens and then sends nothing, or a partial frame.
const TCP_FIRST_MESSAGE_TIMEOUT: Duration = Duration::from_secs(2);
/// Time for each later message to arrive completely, counted from the previous reply: the
/// idle timeout of RFC 7766 §6.2.3. miekg/dns's default is 8 s (Knot uses 10 s).
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(8);
/// Time to write one reply to a client that does not read (miekg/dns `WriteTimeout`, 2 s).
const TCP_WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// Concurrent TCP connections; one over the cap is closed as soon as it is accepted, and UDP
/// is unaffected. BIND's `tcp-clients` default is 150; miekg/dns has no cap, which is the
/// unbounded-connections class of CVE-2020-7219 (notes/reliability.md §0).
const MAX_TCP_CONNECTIONS: usize = 150;
/// Queries answered on one TCP connection before it is closed (miekg/dns `maxTCPQueries`,
/// 128; dnsmasq uses 100). With the idle timeout it bounds a connection's lifetime.
const MAX_TCP_QUERIES: usize = 128;

/// The TCP bounds, as one value so tests can shrink the timeouts.
#[derive(Debug, Clone, Copy)]
pub(super) struct TcpLimits {
    /// See [`TCP_FIRST_MESSAGE_TIMEOUT`].
    pub(super) first_message: Duration,
    /// See [`TCP_IDLE_TIMEOUT`].
    pub(super) idle: Duration,
    /// See [`TCP_WRITE_TIMEOUT`].
    pub(super) write: Duration,
    /// See [`MAX_TCP_CONNECTIONS`].
    pub(super) max_connections: usize,
    /// See [`MAX_TCP_QUERIES`].
    pub(super) max_queries: usize,
}

impl Default for TcpLimits {
    fn default() -> Self {
        Self {
            first_message: TCP_FIRST_MESSAGE_TIMEOUT,
            idle: TCP_IDLE_TIMEOUT,
            write: TCP_WRITE_TIMEOUT,
            max_connections: MAX_TCP_CONNECTIONS,
            max_queries: MAX_TCP_QUERIES,
        }
    }
}

/// Answers DNS on `udp` and `tcp` until `shutdown` is cancelled; with ACLs on, under the
/// views of `acl`.
pub(crate) async fn serve(
    udp: Vec<std::net::UdpSocket>,
    tcp: TcpListener,
    ctx: Arc<ArcSwap<DnsContext>>,
    snapshots: Arc<SnapshotHandle>,
    acl: Option<Arc<DnsViewHandle>>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_with(udp, tcp, ctx, snapshots, acl, shutdown, TcpLimits::default()).await
}

/// [`serve`] with explicit TCP limits.
pub(super) async fn serve_with(
    udp: Vec<std::net::UdpSocket>,
    tcp: TcpListener,
    ctx: Arc<ArcSwap<DnsContext>>,
    snapshots: Arc<SnapshotHandle>,
    acl: Option<Arc<DnsViewHandle>>,
    shutdown: CancellationToken,
    limits: TcpLimits,
) -> std::io::Result<()> {
    let threads = super::udp::spawn(udp, &ctx, &snapshots, acl.as_ref(), &shutdown)?;
    tcp_loop(tcp, ctx, snapshots, acl, shutdown, limits).await;
    // The loops notice the shutdown within their poll interval.
    let joined = tokio::task::spawn_blocking(move || {
        for t in threads {
            if t.join().is_err() {
                tracing::warn!("a DNS UDP loop panicked");
            }
        }
    });
    if let Err(err) = joined.await {
        tracing::warn!(%err, "DNS UDP loops ended abnormally");
    }
    Ok(())
}

/// Answers one request from the current snapshot and ACL view (synchronous: no await while
/// loaded).
fn respond_now(
    packet: &[u8],
    transport: Transport,
    ctx: &DnsContext,
    snapshots: &SnapshotHandle,
    acl: Option<&DnsViewHandle>,
    resolved: &Resolved,
) -> Response {
    let snap = snapshots.load();
    let access = Access::load(acl);
    respond_under(packet, transport, ctx, &snap, &access, resolved, &mut rand::rng())
}

/// Finishes a response that needs the recursors: forwards the request, or resolves the
/// external host names and answers again from the then-current snapshot.
pub(super) async fn finish(
    response: Response,
    packet: &[u8],
    transport: Transport,
    ctx: &DnsContext,
    snapshots: &SnapshotHandle,
    acl: Option<&DnsViewHandle>,
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
            match respond_now(packet, transport, ctx, snapshots, acl, &Resolved::complete(answers)) {
                Response::Reply(bytes) => Some(bytes),
                _ => None,
            }
        }
    }
}

async fn tcp_loop(
    tcp: TcpListener,
    ctx: Arc<ArcSwap<DnsContext>>,
    snapshots: Arc<SnapshotHandle>,
    acl: Option<Arc<DnsViewHandle>>,
    shutdown: CancellationToken,
    limits: TcpLimits,
) {
    let conns = Arc::new(Semaphore::new(limits.max_connections));
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
        // Over the cap: close at once, so the client falls back or retries instead of waiting.
        let Ok(permit) = conns.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "too many DNS TCP connections; closing");
            continue;
        };
        let (ctx, snapshots, acl, shutdown) = (ctx.clone(), snapshots.clone(), acl.clone(), shutdown.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = tcp_conn(stream, &ctx, &snapshots, acl.as_deref(), limits) => {}
            }
            drop(permit);
        });
    }
}

/// Serves one TCP connection until the client closes it, a limit is hit, or a request gets
/// no reply (QR=1, no header: the peer is not speaking DNS to us).
async fn tcp_conn(
    mut stream: TcpStream,
    ctx: &ArcSwap<DnsContext>,
    snapshots: &SnapshotHandle,
    acl: Option<&DnsViewHandle>,
    limits: TcpLimits,
) {
    let mut wait = limits.first_message;
    for _ in 0..limits.max_queries {
        let Ok(Ok(body)) = timeout(wait, read_frame(&mut stream)).await else {
            return;
        };
        wait = limits.idle;
        let started = std::time::Instant::now();
        let cfg = ctx.load_full();
        let response = respond_now(&body, Transport::Tcp, &cfg, snapshots, acl, &Resolved::pending());
        let Some(reply) = finish(response, &body, Transport::Tcp, &cfg, snapshots, acl).await else {
            return;
        };
        crate::metrics::global().shared_dns().record_shared(&reply, super::udp::nanos(started.elapsed()));
        let Some(frame) = frame(&reply) else { return };
        if !matches!(timeout(limits.write, stream.write_all(&frame)).await, Ok(Ok(()))) {
            return;
        }
    }
}

/// Reads one length-prefixed message (RFC 1035 §4.2.2).
async fn read_frame(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut body).await?;
    Ok(body)
}

/// A reply with its 2-byte length prefix, or `None` if it does not fit in one frame.
pub(super) fn frame(reply: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(reply.len()).ok()?;
    let mut framed = Vec::with_capacity(reply.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(reply);
    Some(framed)
}
