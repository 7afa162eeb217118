//! The HTTPS listener: Consul's HTTP API (the same router as plain HTTP) over TLS, HTTP/2
//! through ALPN and HTTP/1.1.
//!
//! Stage: socket -> TLS -> HTTP. Input: the bound HTTPS listener, the router, `crate::tls`
//! (its acceptor is loaded per connection, so a SIGHUP reload applies to the next handshake
//! and never drops an open connection). Output: responses until the stop token.
//!
//! Per connection: the first byte is peeked (within `limits.https_handshake_timeout`). A TLS
//! record starts with 0x16; a request that starts with a letter is plain HTTP sent to the
//! HTTPS port and gets Go's answer, `400 Client sent an HTTP request to an HTTPS server.`
//! (what Consul sends); anything else is closed. The handshake must end within the same
//! timeout; a failed or slow one is closed with a debug line.
//!
//! Invariants: no input panics or hangs a task: every wait before the handshake is done is
//! bounded by the timeout; on shutdown the listener stops accepting and open connections are
//! asked to finish their requests (HTTP/1.1 closes after the response, HTTP/2 sends GOAWAY).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::tls::Tls;

/// The first byte of a TLS record carrying a handshake message.
const TLS_HANDSHAKE: u8 = 0x16;

/// Go's net/http answer to plain HTTP on a TLS port, which Consul sends as is.
const PLAIN_HTTP_ANSWER: &[u8] =
    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// How much of a plain-HTTP request is read before answering (so the close is not a reset).
const PLAIN_HTTP_READ: usize = 8 * 1024;

/// Serves `router` over TLS on `listener` until `stop`.
pub(crate) async fn serve_https(
    listener: TcpListener,
    router: Router,
    tls: Arc<Tls>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    loop {
        let (stream, peer) = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: wait, as axum's own loop does.
                    tracing::warn!(error = %e, "HTTPS: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        tokio::spawn(serve_connection(stream, peer, router.clone(), tls.clone(), stop.clone()));
    }
}

/// One connection: peek, handshake, then HTTP/1.1 or HTTP/2 until it ends or `stop`.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    tls: Arc<Tls>,
    stop: CancellationToken,
) {
    let timeout = tls.https_handshake_timeout();
    let mut first = [0u8; 1];
    match tokio::time::timeout(timeout, stream.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] == TLS_HANDSHAKE => {}
        Ok(Ok(1)) if first[0].is_ascii_alphabetic() => return answer_plain_http(stream, peer, timeout).await,
        Ok(Ok(_)) => return tracing::debug!(%peer, "HTTPS: not a TLS handshake; closed"),
        Ok(Err(e)) => {
            return tracing::debug!(%peer, error = %e, "HTTPS: connection failed before the handshake");
        }
        Err(_) => return tracing::debug!(%peer, "HTTPS: no handshake within the timeout; closed"),
    }
    let Some(acceptor) = tls.https_acceptor() else {
        return tracing::warn!(%peer, "HTTPS: no certificate loaded; connection closed");
    };
    let stream = match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "HTTPS: TLS handshake failed"),
        Err(_) => return tracing::debug!(%peer, "HTTPS: TLS handshake timed out"),
    };
    let builder = Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(router));
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "HTTPS: connection ended with an error");
    }
}

/// Reads what the client sent (bounded) and answers Go's 400 for plain HTTP.
async fn answer_plain_http(mut stream: TcpStream, peer: SocketAddr, timeout: Duration) {
    tracing::debug!(%peer, "HTTPS: plain HTTP request on the HTTPS port; answered 400");
    let mut buf = vec![0u8; PLAIN_HTTP_READ];
    let mut read = 0;
    let reading = async {
        while read < buf.len() && !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf[read..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => read += n,
            }
        }
    };
    let _ = tokio::time::timeout(timeout, reading).await;
    let answer = async {
        stream.write_all(PLAIN_HTTP_ANSWER).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(timeout, answer).await;
}
