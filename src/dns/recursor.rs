//! Forwarding to upstream recursors for names outside our domains (spec §2.15).
//!
//! Input: the client's request bytes, the recursor list, strategy and timeout.
//! Output: the first upstream reply whose RCODE is NOERROR or NXDOMAIN (or that has TC set),
//! with the client's ID restored; `None` when every recursor failed, timed out or answered
//! with another RCODE (the caller then sends SERVFAIL with RA=1).
//!
//! Invariants: one fresh UDP socket per attempt, connected to the recursor so only its
//! datagrams are read; the upstream sees a random ID, not the client's; never panics.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use rand::RngExt;
use rand::seq::SliceRandom;
use tokio::net::UdpSocket;

use crate::config::RecursorStrategy;

/// Header byte 2: QR flag.
const QR: u8 = 0x80;
/// Header byte 2: TC flag.
const TC: u8 = 0x02;

/// Forwards `request` to the recursors in order; see the module docs.
pub(super) async fn forward(
    request: &[u8],
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
        match tokio::time::timeout(timeout, exchange(&query, recursor, upstream_id)).await {
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
