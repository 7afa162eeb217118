//! SERVER RPC CONNECTION: the one stream type every server-RPC caller holds.
//!
//! Input: a connected `TcpStream` (dialled by `rpc::connect`, accepted by `serve_rpc`).
//! Output: a `Conn` that reads and writes bytes (`AsyncRead` + `AsyncWrite`) and knows its
//! peer's address; `read_frame` and `write_frame` carry the frames over it.
//!
//! The pool, `connect`, the listener and the replica stream hand a `Conn` to each other, never
//! the transport under it, so a transport added here (TLS, as an `Io` variant) reaches them all
//! without a change to their signatures. `Io` is an enum rather than a boxed trait object: no
//! allocation per connection and no dynamic dispatch per read, and no type parameter leaks into
//! `Pool` or the listener.
//!
//! Invariant: a `Conn` has `TCP_NODELAY` set (one request and one response per exchange: no
//! waiting for Nagle).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A server-RPC connection, whatever its transport.
#[derive(Debug)]
pub(crate) struct Conn {
    io: Io,
    peer: SocketAddr,
}

/// The transports a `Conn` runs over.
#[derive(Debug)]
enum Io {
    /// Plain TCP.
    Plain(TcpStream),
}

impl Conn {
    /// A plain TCP connection this end dialled.
    pub(crate) fn plain(stream: TcpStream) -> io::Result<Self> {
        let peer = stream.peer_addr()?;
        Ok(Self::accepted(stream, peer))
    }

    /// A plain TCP connection accepted from `peer`.
    pub(crate) fn accepted(stream: TcpStream, peer: SocketAddr) -> Self {
        // Best effort: a socket that refuses the option still works, only slower.
        let _ = stream.set_nodelay(true);
        Self { io: Io::Plain(stream), peer }
    }

    /// The address of the other end.
    pub(crate) fn peer(&self) -> SocketAddr {
        self.peer
    }
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
        }
    }
}
