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
//! CPU steering: when there is one socket per CPU the process may run on, a classic BPF
//! program on the `SO_REUSEPORT` group sends each datagram to the socket of the CPU that
//! received it (`cpu % sockets`), and loop k is pinned to that CPU. A query is then
//! answered on the CPU whose softirq queued it: its wake-up needs no inter-processor
//! interrupt (a VM exit under KVM) and its cache lines stay local. Without the match (fewer
//! sockets than CPUs, a CPU set that does not map one to one, or a kernel that refuses the
//! program) the kernel's hash spreads clients over the sockets and the loops float.
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

use super::access::Access;
use super::cache::AnswerCache;
use super::context::{DnsContext, Transport};
use super::listener;
use super::message::Response;
use super::pipeline::handle_under;
use crate::acl_state::DnsViewHandle;
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
pub(crate) fn bind(addr: SocketAddr, count: usize) -> std::io::Result<Vec<UdpSocket>> {
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
pub(crate) fn adopt(sock: UdpSocket) -> std::io::Result<UdpSocket> {
    sock.set_nonblocking(false)?;
    sock.set_read_timeout(Some(POLL))?;
    Ok(sock)
}

/// Starts one loop thread per socket; they stop when `shutdown` is cancelled.
pub(crate) fn spawn(
    sockets: Vec<UdpSocket>,
    ctx: &Arc<ArcSwap<DnsContext>>,
    snapshots: &Arc<SnapshotHandle>,
    acl: Option<&Arc<DnsViewHandle>>,
    shutdown: &CancellationToken,
) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    let runtime = tokio::runtime::Handle::current();
    let pending = Arc::new(Semaphore::new(MAX_PENDING));
    let cpus = steer(&sockets);
    let mut threads = Vec::with_capacity(sockets.len());
    for (i, sock) in sockets.into_iter().enumerate() {
        let cpu = cpus.as_ref().and_then(|c| c.get(i).copied());
        let lp = Loop {
            replies: Arc::new(sock.try_clone()?),
            sock,
            ctx: ctx.clone(),
            snapshots: snapshots.clone(),
            acl: acl.cloned(),
            shutdown: shutdown.clone(),
            runtime: runtime.clone(),
            pending: pending.clone(),
        };
        threads.push(std::thread::Builder::new().name(format!("dns-udp-{i}")).spawn(move || {
            if let Some(cpu) = cpu {
                pin(cpu);
            }
            lp.run();
        })?);
    }
    Ok(threads)
}

/// The CPU for each socket's loop when the CPUs this process may run on map one to one onto
/// the sockets by `cpu % sockets` (entry k: the CPU whose datagrams go to socket k).
fn cpu_plan(allowed: &[usize], sockets: usize) -> Option<Vec<usize>> {
    if sockets < 2 || allowed.len() != sockets {
        return None;
    }
    let mut plan = vec![None; sockets];
    for &cpu in allowed {
        let slot = plan.get_mut(cpu % sockets)?;
        if slot.replace(cpu).is_some() {
            return None;
        }
    }
    plan.into_iter().collect()
}

/// The CPUs this process may run on.
fn allowed_cpus() -> Vec<usize> {
    use nix::sched::{CpuSet, sched_getaffinity};
    let Ok(set) = sched_getaffinity(nix::unistd::Pid::from_raw(0)) else { return Vec::new() };
    (0..CpuSet::count()).filter(|&c| set.is_set(c).unwrap_or(false)).collect()
}

/// Attaches the CPU steering program to the sockets' `SO_REUSEPORT` group and returns the
/// CPU each loop should run on (see the module docs), or `None` to leave the kernel's hash.
fn steer(sockets: &[UdpSocket]) -> Option<Vec<usize>> {
    let plan = cpu_plan(&allowed_cpus(), sockets.len())?;
    let first = sockets.first()?;
    match attach_cpu_program(first, sockets.len()) {
        Ok(()) => Some(plan),
        Err(err) => {
            tracing::debug!(%err, "DNS UDP: CPU steering refused; the kernel's hash spreads queries");
            None
        }
    }
}

/// `SO_ATTACH_REUSEPORT_CBPF` with `return cpu % sockets`: the group's member at that index
/// takes the datagram (an index past the group falls back to the hash).
fn attach_cpu_program(sock: &UdpSocket, sockets: usize) -> std::io::Result<()> {
    use nix::libc;
    let modulus = u32::try_from(sockets).map_err(|_| std::io::Error::other("too many sockets"))?;
    let op = |code: u32, k: u32| libc::sock_filter { code: code as u16, jt: 0, jf: 0, k };
    // SKF_AD_OFF + SKF_AD_CPU as the unsigned offset the kernel expects.
    let cpu_offset = (libc::SKF_AD_OFF + libc::SKF_AD_CPU) as u32;
    let mut program = [
        op(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, cpu_offset),
        op(libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K, modulus),
        op(libc::BPF_RET | libc::BPF_A, 0),
    ];
    let prog = libc::sock_fprog { len: program.len() as u16, filter: program.as_mut_ptr() };
    // SAFETY: `prog` points at `program`, which outlives the call; the kernel copies the
    // program and reads exactly `len` instructions; the length passed is `prog`'s size.
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            (&raw const prog).cast(),
            size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// Pins the calling thread to `cpu` (best effort: a loop that cannot be pinned still works).
fn pin(cpu: usize) {
    use nix::sched::{CpuSet, sched_setaffinity};
    let mut set = CpuSet::new();
    if set.set(cpu).is_ok()
        && let Err(err) = sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
    {
        tracing::debug!(%err, cpu, "DNS UDP loop not pinned");
    }
}

struct Loop {
    sock: UdpSocket,
    /// A clone of `sock` for replies sent from recursor tasks.
    replies: Arc<UdpSocket>,
    ctx: Arc<ArcSwap<DnsContext>>,
    snapshots: Arc<SnapshotHandle>,
    /// The ACL view handle (ACLs on).
    acl: Option<Arc<DnsViewHandle>>,
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
        let mut acl_cache = self.acl.as_deref().map(|h| arc_swap::Cache::new(h.swap()));
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
            let access = acl_cache.as_mut().map_or(Access::All, |c| Access::View(c.load().clone()));
            let mut ready = 0;
            // Each query's time runs from the end of the previous one (or the receive).
            let mut started = Instant::now();
            for i in 0..received {
                let (Some(packet), Some(out)) = (inbox[i].get(..lens[i]), outbox.get_mut(i)) else {
                    continue;
                };
                let Some(peer) = from[i] else { continue };
                match cache.respond_under(packet, Transport::Udp, &ctx, &snap, &access, out) {
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
                    Some(response) => self.off_loop(response, packet, peer, &ctx, &access),
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
    fn off_loop(
        &self,
        response: Response,
        packet: &[u8],
        peer: SockaddrStorage,
        ctx: &Arc<DnsContext>,
        access: &Access,
    ) {
        let Some(peer) = to_std(&peer) else { return };
        let Ok(permit) = self.pending.clone().try_acquire_owned() else {
            // Overloaded: answer without the recursors (`handle`: SERVFAIL for a forward,
            // unresolved host names left out) rather than queue without bound.
            let snap = self.snapshots.load();
            if let Some(reply) = handle_under(packet, Transport::Udp, ctx, &snap, access, &mut rand::rng()) {
                let _ = self.sock.send_to(&reply, peer);
            }
            return;
        };
        let (replies, snapshots, acl, ctx, packet) =
            (self.replies.clone(), self.snapshots.clone(), self.acl.clone(), ctx.clone(), packet.to_vec());
        let started = Instant::now();
        self.runtime.spawn(async move {
            let finished =
                listener::finish(response, &packet, Transport::Udp, &ctx, &snapshots, acl.as_deref()).await;
            if let Some(reply) = finished {
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

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::time::Duration;

    use super::{allowed_cpus, attach_cpu_program, bind, cpu_plan, pin};

    fn check(allowed: &[usize], sockets: usize, want: Option<&[usize]>) {
        assert_eq!(cpu_plan(allowed, sockets).as_deref(), want, "allowed {allowed:?}, {sockets} sockets");
    }

    #[test]
    fn each_socket_gets_the_cpu_whose_datagrams_it_takes() {
        check(&[0, 1], 2, Some(&[0, 1]));
        check(&[2, 3], 2, Some(&[2, 3]));
        check(&[1, 2, 3, 4], 4, Some(&[4, 1, 2, 3]));
    }

    #[test]
    fn no_steering_without_a_one_to_one_map() {
        check(&[0], 1, None);
        check(&[0, 1], 3, None);
        check(&[0, 1, 2], 2, None);
        check(&[1, 3], 2, None);
        check(&[], 0, None);
    }

    #[test]
    fn a_datagram_sent_from_a_cpu_reaches_that_cpus_socket() {
        let cpus = allowed_cpus();
        if cpus.len() < 2 {
            eprintln!("skipped: this process may run on {} CPU(s)", cpus.len());
            return;
        }
        let sockets = bind("127.0.0.1:0".parse().expect("addr"), 2).expect("bind");
        attach_cpu_program(&sockets[0], 2).expect("attach the steering program");
        let addr = sockets[0].local_addr().expect("addr");
        for &cpu in cpus.iter().take(4) {
            // On loopback the receive softirq runs on the sending CPU.
            let sent = std::thread::spawn(move || {
                pin(cpu);
                let client = UdpSocket::bind("127.0.0.1:0").expect("client");
                client.send_to(&[cpu as u8], addr).expect("send");
            });
            sent.join().expect("sender");
            let mut buf = [0u8; 8];
            let want = &sockets[cpu % 2];
            want.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
            let (n, _) = want.recv_from(&mut buf).expect("the datagram reaches the socket of its CPU");
            assert_eq!(&buf[..n], &[cpu as u8]);
        }
    }
}
