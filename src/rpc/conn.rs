//! SERVER RPC CONNECTION: the one stream type every server-RPC caller holds.
//!
//! Input: a connected `TcpStream` (dialled by `rpc::connect`, accepted by `serve_rpc`).
//! Output: a `Conn` that reads and writes bytes (`AsyncRead` + `AsyncWrite`) and knows its
//! peer's address; `read_frame` and `write_frame` carry the frames over it. A plain `Conn`
//! is upgraded to TLS in place of its TCP stream (`tls_dialled`, `tls_accepted`) before any
//! byte of the RPC crosses it; `rpc::auth` decides when (verify_outgoing, the first byte).
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

use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector, client, server};

/// A server-RPC connection, whatever its transport.
#[derive(Debug)]
pub(crate) struct Conn {
    io: Io,
    peer: SocketAddr,
    /// Whether the peer may speak Raft and change the membership: true unless the accepting
    /// side found that a server certificate is required and the peer's is not one (`rpc::auth`).
    server_peer: bool,
    /// A byte read ahead (`first_byte`), handed out before anything else is read.
    unread: Option<u8>,
}

/// The transports a `Conn` runs over.
#[derive(Debug)]
enum Io {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS this end dialled (boxed: a TLS session is large, a plain stream is not).
    TlsClient(Box<client::TlsStream<TcpStream>>),
    /// TLS this end accepted.
    TlsServer(Box<server::TlsStream<TcpStream>>),
}

/// Every variant of `Io` implements the same traits; one arm per variant.
macro_rules! each_io {
    ($io:expr, $s:ident => $e:expr) => {
        match $io {
            Io::Plain($s) => $e,
            Io::TlsClient($s) => $e,
            Io::TlsServer($s) => $e,
        }
    };
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
        Self { io: Io::Plain(stream), peer, server_peer: true, unread: None }
    }

    /// The address of the other end.
    pub(crate) fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Whether the peer may speak Raft and change the membership (see `rpc::auth::Auth::accept`).
    pub(crate) fn is_server_peer(&self) -> bool {
        self.server_peer
    }

    /// Records whether the peer's certificate is a server's (set by `rpc::auth` on accept).
    pub(crate) fn set_server_peer(&mut self, server: bool) {
        self.server_peer = server;
    }

    /// The certificate an accepted TLS peer presented (verified against the CA).
    pub(crate) fn peer_certificate(&self) -> Option<&CertificateDer<'static>> {
        match &self.io {
            Io::TlsServer(s) => s.get_ref().1.peer_certificates()?.first(),
            Io::Plain(_) | Io::TlsClient(_) => None,
        }
    }

    /// The first byte the peer sent, left unread (`None`: it closed without sending any).
    /// Only on a plain connection, which is where the choice of transport is made.
    pub(crate) async fn peek_first(&self) -> io::Result<Option<u8>> {
        let Io::Plain(tcp) = &self.io else {
            return Err(io::Error::other("the transport was already chosen"));
        };
        let mut first = [0u8; 1];
        Ok((tcp.peek(&mut first).await? == 1).then_some(first[0]))
    }

    /// The next byte the peer sends, on any transport, kept to be read again by the next read
    /// (`None`: it closed without sending one).
    pub(crate) async fn first_byte(&mut self) -> io::Result<Option<u8>> {
        if let Some(b) = self.unread {
            return Ok(Some(b));
        }
        let mut b = [0u8; 1];
        if tokio::io::AsyncReadExt::read(self, &mut b).await? == 0 {
            return Ok(None);
        }
        self.unread = Some(b[0]);
        Ok(Some(b[0]))
    }

    /// Runs the client side of a TLS handshake on this plain connection, sending `name` as SNI.
    pub(crate) async fn tls_dialled(
        self,
        connector: &TlsConnector,
        name: ServerName<'static>,
    ) -> io::Result<Self> {
        let Io::Plain(tcp) = self.io else {
            return Err(io::Error::other("the connection already runs over TLS"));
        };
        let tls = connector.connect(name, tcp).await?;
        Ok(Self { io: Io::TlsClient(Box::new(tls)), ..self })
    }

    /// Runs the server side of a TLS handshake on this plain connection; a failed one gives
    /// the connection back with the error (to be closed after the refusal is logged).
    pub(crate) async fn tls_accepted(self, acceptor: &TlsAcceptor) -> Result<Self, (io::Error, Self)> {
        let Io::Plain(tcp) = self.io else {
            return Err((io::Error::other("the connection already runs over TLS"), self));
        };
        match acceptor.accept(tcp).into_fallible().await {
            Ok(tls) => Ok(Self { io: Io::TlsServer(Box::new(tls)), ..self }),
            Err((e, tcp)) => Err((e, Self { io: Io::Plain(tcp), ..self })),
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() > 0
            && let Some(b) = this.unread.take()
        {
            buf.put_slice(&[b]);
            return Poll::Ready(Ok(()));
        }
        each_io!(&mut this.io, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        each_io!(&mut self.get_mut().io, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each_io!(&mut self.get_mut().io, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each_io!(&mut self.get_mut().io, s => Pin::new(s).poll_shutdown(cx))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        each_io!(&mut self.get_mut().io, s => Pin::new(s).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        each_io!(&self.io, s => s.is_write_vectored())
    }
}
