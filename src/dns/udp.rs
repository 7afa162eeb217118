//! Stage 0 and 5 for UDP: batched receive and send, one blocking loop per socket.
//!
//! Input: `SO_REUSEPORT` UDP sockets bound to the same address (one per core; the kernel
//! spreads clients over them), the swappable `DnsContext`, the snapshot handle, a shutdown
//! token and a runtime handle for the few queries that need the recursors.
//! Output: replies on the socket each request arrived on.
//!
//! Each loop owns a thread, an [`AnswerCache`] and arc-swap caches of the context and the
//! snapshot. It receives up to `BATCH` datagrams with one `recvmmsg`, answers them in order
//! (a cache hit copies stored bytes; a miss runs the pure path once), and sends the replies
//! with one `sendmmsg`. Buffers are allocated once per loop, so a query answered from the
//! cache allocates nothing. Forwarding and host-name resolution move to a task on the
//! runtime, which replies on a clone of the socket; at most `MAX_PENDING` such tasks run at
//! once, beyond that a query is answered without the recursors.
//!
//! Invariants: no lock, no LMDB transaction, no await on the answer path; socket errors
//! are logged and never end a loop; only shutdown does (checked at least every `POLL`).

use std::io::{IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::{AnswerCache, DnsContext, Response, Transport, handle, listener};
use crate::snapshot::SnapshotHandle;

/// Datagrams per `recvmmsg`/`sendmmsg`.
const BATCH: usize = 32;
/// Receive buffer per datagram; a longer request is cut (and answered FORMERR).
const DATAGRAM: usize = 4096;
/// How often a blocked loop wakes to look at the shutdown token.
const POLL: Duration = Duration::from_millis(200);
/// Kernel receive buffer asked for per socket (the kernel may grant less).
const SOCKET_BUFFER: usize = 4 << 20;
/// Queries waiting for the recursors at once, per agent.
const MAX_PENDING: usize = 256;

/// Binds `count` `SO_REUSEPORT` UDP sockets to `addr` (port 0: the first picks the port).
pub fn bind(addr: SocketAddr, count: usize) -> std::io::Result<Vec<UdpSocket>> {
    let mut sockets: Vec<UdpSocket> = Vec::with_capacity(count.max(1));
    let mut bound = addr;
    for _ in 0..count.max(1) {
        let sock = Socket::new(Domain::for_address(bound), Type::DGRAM, Some(Protocol::UDP))?;
        sock.set_reuse_port(true)?;
        // Best effort: the kernel caps it at net.core.rmem_max.
        let _ = sock.set_recv_buffer_size(SOCKET_BUFFER);
        let _ = sock.set_send_buffer_size(SOCKET_BUFFER);
        sock.bind(&bound.into())?;
        sock.set_read_timeout(Some(POLL))?;
        let sock: UdpSocket = sock.into();
        bound = sock.local_addr()?;
        sockets.push(sock);
    }
    Ok(sockets)
}

/// Prepares a UDP socket bound by someone else (socket activation) for a loop: blocking,
/// with the loop's poll timeout. It is served by one loop.
pub fn adopt(sock: UdpSocket) -> std::io::Result<UdpSocket> {
    sock.set_nonblocking(false)?;
    sock.set_read_timeout(Some(POLL))?;
    Ok(sock)
}

/// Starts one loop thread per socket; they stop when `shutdown` is cancelled.
pub(crate) fn spawn(
    sockets: Vec<UdpSocket>,
    ctx: &Arc<ArcSwap<DnsContext>>,
    snapshots: &Arc<SnapshotHandle>,
    shutdown: &CancellationToken,
) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    let runtime = tokio::runtime::Handle::current();
    let pending = Arc::new(Semaphore::new(MAX_PENDING));
    let mut threads = Vec::with_capacity(sockets.len());
    for (i, sock) in sockets.into_iter().enumerate() {
        let lp = Loop {
            replies: Arc::new(sock.try_clone()?),
            sock,
            ctx: ctx.clone(),
            snapshots: snapshots.clone(),
            shutdown: shutdown.clone(),
            runtime: runtime.clone(),
            pending: pending.clone(),
        };
        threads.push(std::thread::Builder::new().name(format!("dns-udp-{i}")).spawn(move || lp.run())?);
    }
    Ok(threads)
}

struct Loop {
    sock: UdpSocket,
    /// A clone of `sock` for replies sent from recursor tasks.
    replies: Arc<UdpSocket>,
    ctx: Arc<ArcSwap<DnsContext>>,
    snapshots: Arc<SnapshotHandle>,
    shutdown: CancellationToken,
    runtime: tokio::runtime::Handle,
    pending: Arc<Semaphore>,
}

impl Loop {
    fn run(self) {
        let fd = self.sock.as_raw_fd();
        let mut inbox: [[u8; DATAGRAM]; BATCH] = [[0; DATAGRAM]; BATCH];
        let mut outbox: [Vec<u8>; BATCH] = std::array::from_fn(|_| Vec::with_capacity(512));
        let mut from: [Option<SockaddrStorage>; BATCH] = [None; BATCH];
        let mut lens = [0usize; BATCH];
        let mut to: [Option<SockaddrStorage>; BATCH] = [None; BATCH];
        let mut send_idx = [0usize; BATCH];
        let mut recv_headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
        let mut send_headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
        let mut cache = AnswerCache::new();
        let mut ctx_cache = arc_swap::Cache::new(&*self.ctx);
        let mut snap_cache = self.snapshots.cache();
        // This loop's counters: it is their only writer (see `metrics`).
        let counters = crate::metrics::global().register_loop();

        while !self.shutdown.is_cancelled() {
            let received = {
                let mut iovs = inbox.each_mut().map(|b| [IoSliceMut::new(b)]);
                match recvmmsg(fd, &mut recv_headers, iovs.iter_mut(), MsgFlags::MSG_WAITFORONE, None) {
                    Ok(results) => {
                        let mut n = 0;
                        for (msg, (len, addr)) in results.zip(lens.iter_mut().zip(from.iter_mut())) {
                            *len = msg.bytes;
                            *addr = msg.address;
                            n += 1;
                        }
                        n
                    }
                    Err(Errno::EAGAIN | Errno::EINTR) => 0,
                    Err(err) => {
                        tracing::debug!(%err, "DNS UDP receive failed");
                        std::thread::sleep(Duration::from_millis(1));
                        0
                    }
                }
            };
            if received == 0 {
                continue;
            }
            let ctx = ctx_cache.load().clone();
            let snap = snap_cache.load().clone();
            let mut ready = 0;
            // Each query's time runs from the end of the previous one (or the receive).
            let mut started = Instant::now();
            for i in 0..received {
                let (Some(packet), Some(out)) = (inbox[i].get(..lens[i]), outbox.get_mut(i)) else {
                    continue;
                };
                let Some(peer) = from[i] else { continue };
                match cache.respond(packet, Transport::Udp, &ctx, &snap, out) {
                    None => {
                        let done = Instant::now();
                        counters.record(out, nanos(done - started));
                        started = done;
                        if let (Some(slot), Some(addr)) = (send_idx.get_mut(ready), to.get_mut(ready)) {
                            *slot = i;
                            *addr = Some(peer);
                            ready += 1;
                        }
                    }
                    Some(Response::Drop) => {}
                    Some(response) => self.off_loop(response, packet, peer, &ctx),
                }
            }
            let stats = cache.stats();
            counters.set_cache(stats.hits, stats.misses);
            self.send(fd, &outbox, &send_idx[..ready], &to[..ready], &mut send_headers);
        }
    }

    /// Sends `outbox[idx[k]]` to `to[k]` for every k, with as few `sendmmsg` calls as it takes.
    fn send(
        &self,
        fd: i32,
        outbox: &[Vec<u8>; BATCH],
        idx: &[usize],
        to: &[Option<SockaddrStorage>],
        headers: &mut MultiHeaders<SockaddrStorage>,
    ) {
        let mut start = 0;
        while start < idx.len() {
            let (Some(idx), Some(to)) = (idx.get(start..), to.get(start..)) else { return };
            let iovs: [[IoSlice<'_>; 1]; BATCH] = std::array::from_fn(|k| {
                [IoSlice::new(idx.get(k).and_then(|&i| outbox.get(i)).map_or(&[], |v| v))]
            });
            let slices = iovs.iter().take(idx.len());
            match sendmmsg(fd, headers, slices, to, [], MsgFlags::empty()) {
                Ok(results) => {
                    let sent = results.count();
                    if sent == 0 {
                        return;
                    }
                    start += sent;
                }
                Err(Errno::EINTR) => {}
                Err(err) => {
                    // One bad destination must not cost the others their replies.
                    tracing::debug!(%err, "DNS UDP send failed; skipping one reply");
                    start += 1;
                }
            }
        }
    }

    /// Answers a query that needs the recursors in a task, replying on the socket's clone.
    fn off_loop(&self, response: Response, packet: &[u8], peer: SockaddrStorage, ctx: &Arc<DnsContext>) {
        let Some(peer) = to_std(&peer) else { return };
        let Ok(permit) = self.pending.clone().try_acquire_owned() else {
            // Overloaded: answer without the recursors (`handle`: SERVFAIL for a forward,
            // unresolved host names left out) rather than queue without bound.
            if let Some(reply) = handle(packet, Transport::Udp, ctx, &self.snapshots.load(), &mut rand::rng())
            {
                let _ = self.sock.send_to(&reply, peer);
            }
            return;
        };
        let (replies, snapshots, ctx, packet) =
            (self.replies.clone(), self.snapshots.clone(), ctx.clone(), packet.to_vec());
        let started = Instant::now();
        self.runtime.spawn(async move {
            if let Some(reply) = listener::finish(response, &packet, Transport::Udp, &ctx, &snapshots).await {
                crate::metrics::global().shared_dns().record_shared(&reply, nanos(started.elapsed()));
                if let Err(err) = replies.send_to(&reply, peer) {
                    tracing::debug!(%err, %peer, "DNS UDP send failed");
                }
            }
            drop(permit);
        });
    }
}

/// A duration in nanoseconds, saturating.
#[inline]
pub(super) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn to_std(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::from(*v4));
    }
    addr.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6))
}
