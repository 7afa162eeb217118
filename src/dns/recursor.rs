//! Forwarding to upstream recursors for names outside our domains (spec §2.15), and
//! resolving the external host names instances use as addresses (§2.5).
//!
//! Input: the client's request bytes and transport, the recursor list, strategy and timeout.
//! Output: the first upstream reply whose RCODE is NOERROR or NXDOMAIN (or that has TC set),
//! with the client's ID restored; `None` when every recursor failed, timed out or answered
//! with another RCODE (the caller then sends SERVFAIL with RA=1).
//!
//! Invariants: the request goes upstream over the client's transport; one fresh socket per
//! attempt (UDP: connected to the recursor so only its datagrams are read); the upstream
//! sees a random ID, not the client's; never panics.
//!
//! hickory-resolver (the design card's resolver; not a dependency of cairn) is a stub
//! resolver: it builds its own query and returns parsed records, so it cannot forward
//! (§2.15 sends the client's own bytes, RD, EDNS and options included, over the client's
//! transport, and returns the upstream reply verbatim, TC bit and flags included). For host
//! names (§2.5) it could send the A query, but not by Consul's rules, which `forward` and
//! `resolve` share: `random` is a fresh permutation per query (hickory orders servers by
//! query statistics, round robin or configuration order), a truncated reply is taken as it
//! is (hickory retries it over TCP), one `recursor_timeout` per recursor and no retry, and
//! no cache (each query asks again). So cairn keeps these ~100 lines on hickory-proto's
//! message types.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, Record, RecordType};
use rand::RngExt;
use rand::seq::SliceRandom;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::context::Transport;
use crate::config::RecursorStrategy;

/// Host names resolved for one query at most; further ones stay unresolved.
const MAX_RESOLVE_PER_QUERY: usize = 8;

/// Header byte 2: QR flag.
const QR: u8 = 0x80;
/// Header byte 2: TC flag.
const TC: u8 = 0x02;

/// Forwards `request` to the recursors in order; see the module docs.
pub(super) async fn forward(
    request: &[u8],
    transport: Transport,
    recursors: &[SocketAddr],
    strategy: RecursorStrategy,
    timeout: Duration,
) -> Option<Vec<u8>> {
    let client_id = request.get(..2)?.to_vec();
    let mut order: Vec<SocketAddr> = recursors.to_vec();
    let upstream_id: [u8; 2] = {
        let mut rng = rand::rng();
        if strategy == RecursorStrategy::Random {
            order.shuffle(&mut rng);
        }
        rng.random()
    };
    let mut query = request.to_vec();
    if let Some(id) = query.get_mut(..2) {
        id.copy_from_slice(&upstream_id);
    }
    for recursor in order {
        let attempt = async {
            match transport {
                Transport::Udp => exchange(&query, recursor, upstream_id).await,
                Transport::Tcp => exchange_tcp(&query, recursor, upstream_id).await,
            }
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(mut reply)) => {
                let flags = reply.get(2).copied().unwrap_or(0);
                let rcode = reply.get(3).copied().unwrap_or(0) & 0x0f;
                if rcode == 0 || rcode == 3 || flags & TC != 0 {
                    if let Some(id) = reply.get_mut(..2) {
                        id.copy_from_slice(&client_id);
                    }
                    return Some(reply);
                }
                tracing::debug!(%recursor, rcode, "recursor answered with an error, trying the next");
            }
            Ok(Err(err)) => tracing::debug!(%recursor, %err, "recursor exchange failed"),
            Err(_) => tracing::debug!(%recursor, "recursor timed out"),
        }
    }
    None
}

async fn exchange(query: &[u8], recursor: SocketAddr, id: [u8; 2]) -> std::io::Result<Vec<u8>> {
    let local: IpAddr =
        if recursor.is_ipv4() { Ipv4Addr::UNSPECIFIED.into() } else { Ipv6Addr::UNSPECIFIED.into() };
    let sock = UdpSocket::bind(SocketAddr::new(local, 0)).await?;
    sock.connect(recursor).await?;
    sock.send(query).await?;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = sock.recv(&mut buf).await?;
        let Some(reply) = buf.get(..n) else { continue };
        if reply.len() >= 12 && reply.get(..2) == Some(&id[..]) && reply.get(2).is_some_and(|f| f & QR != 0) {
            return Ok(reply.to_vec());
        }
    }
}

async fn exchange_tcp(query: &[u8], recursor: SocketAddr, id: [u8; 2]) -> std::io::Result<Vec<u8>> {
    let len = u16::try_from(query.len()).map_err(|_| std::io::ErrorKind::InvalidInput)?;
    let mut stream = TcpStream::connect(recursor).await?;
    let mut frame = Vec::with_capacity(query.len() + 2);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(query);
    stream.write_all(&frame).await?;
    loop {
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await?;
        let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut reply).await?;
        if reply.len() >= 12 && reply.get(..2) == Some(&id[..]) && reply.get(2).is_some_and(|f| f & QR != 0) {
            return Ok(reply);
        }
    }
}

/// Asks the recursors for the A records of each host name (a plain UDP query with RD set,
/// as Consul does) and returns each answer section; names nobody answered are left out.
pub(super) async fn resolve(
    names: &[Name],
    recursors: &[SocketAddr],
    strategy: RecursorStrategy,
    timeout: Duration,
) -> Vec<(Name, Vec<Record>)> {
    let mut unique: Vec<Name> = Vec::new();
    for name in names {
        if unique.len() < MAX_RESOLVE_PER_QUERY && !unique.contains(name) {
            unique.push(name.clone());
        }
    }
    let mut tasks = tokio::task::JoinSet::new();
    for name in unique {
        let recursors = recursors.to_vec();
        tasks.spawn(async move {
            let request = a_query(&name)?;
            let reply = forward(&request, Transport::Udp, &recursors, strategy, timeout).await?;
            let msg = Message::from_vec(&reply).ok()?;
            Some((name, msg.answers))
        });
    }
    let mut out = Vec::new();
    while let Some(done) = tasks.join_next().await {
        if let Ok(Some(answer)) = done {
            out.push(answer);
        }
    }
    out
}

fn a_query(name: &Name) -> Option<Vec<u8>> {
    let mut msg = Message::new(0, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.queries.push(Query::query(name.clone(), RecordType::A));
    msg.to_vec().ok()
}
