//! SERVER RPC: the protocol servers speak on the server port (`ports.server`, default 8300).
//!
//! Input: a `Request` from another server (Raft's AppendEntries/Vote/InstallSnapshot, a
//! forwarded write, a ReadIndex, a join, a discovery hello). Output: its `Response`.
//!
//! Wire format: each frame is a 4-byte big-endian length and that many bytes of JSON
//! (`codec::Format::FramePayload`).
//! One connection carries one request at a time; a client keeps connections open and reuses
//! them (`Pool`). openraft is the consensus engine; this module is only its transport and the
//! request forwarding beside it: wire types, framing, the connection pool and server
//! discovery. The listener that answers requests (`serve_rpc`) sits above `raft`, `replica`
//! and `session`, so this module imports only the catalog vocabulary, the codec and config's
//! port defaults.
//!
//! Why not tokio-util's `LengthDelimitedCodec` (0.7, in the tree): with a 4-byte big-endian
//! length and `max_frame_length(MAX_FRAME)` it writes the same bytes, but its decoder reserves
//! the announced length as soon as it reads a header, so a peer on this unauthenticated port
//! could reserve 64 MiB per connection without sending it; `read_frame` grows the buffer only
//! as bytes arrive. The codec's size error also carries no size, which `CallError::TooLarge`
//! reports, and `Framed` would replace the `Conn` that the pool (and `connect`), the listener
//! (`serve_rpc`) and the replica stream hand to each other.
//!
//! The pool is a `Vec` of idle connections per server rather than deadpool or bb8: a connection is
//! checked out for one request and reply, and a broken one is simply not put back.
//!
//! Every connection is a `conn::Conn` and is admitted (`auth::Auth`) before its first frame:
//! with TLS settings, it runs TLS as they say (`verify_outgoing` dials TLS and checks the
//! server; `verify_incoming_rpc` refuses plain text and peers without a CA-signed
//! certificate); with `encrypt`, both ends prove a key of the gossip keyring
//! (`auth::ClusterKeys`), inside TLS when both are on; with neither, anyone who reaches the
//! port may speak, which is why a server refuses a non-loopback RPC address then unless
//! `insecure_rpc` is set (`auth::check_exposure`).
//!
//! Invariants: a frame larger than `MAX_FRAME` is refused (the connection is closed); every
//! call has a deadline; an unreachable server is an error, never a fake success; no frame
//! crosses a connection before it was admitted.

pub(crate) mod auth;
pub(crate) mod conn;
pub(crate) mod discovery;
pub(crate) mod subscribe;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub(crate) use auth::Auth;
pub(crate) use conn::Conn;
pub(crate) use subscribe::{Frame, Heartbeat};

use crate::catalog::{Command, CommandResponse};
use crate::codec;

openraft::declare_raft_types!(
    /// openraft type configuration for the catalog (the types its RPCs carry).
    pub TypeConfig:
        D = Command,
        R = CommandResponse,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// Default server RPC port (Consul's `ports.server`), and the `retry_join` parser: config's.
pub(crate) use crate::config::{DEFAULT_SERVER_PORT as DEFAULT_PORT, join_addr};
/// Largest frame accepted (a snapshot chunk or a large batch of log entries fits well below).
pub(crate) const MAX_FRAME: usize = 64 << 20;
/// How long connecting to a server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Idle connections kept per server.
const POOL_PER_ADDR: usize = 4;

/// A request from one server to another.
#[derive(Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub(crate) enum Request {
    /// openraft AppendEntries (replication and heartbeats).
    AppendEntries(Box<AppendEntriesRequest<TypeConfig>>),
    /// openraft RequestVote.
    Vote(VoteRequest<u64>),
    /// One chunk of a streamed snapshot.
    InstallSnapshot(Box<InstallSnapshotRequest<TypeConfig>>),
    /// Who are you, and are you part of a cluster? (discovery before bootstrap or join)
    Hello,
    /// Add this server to the cluster (as a learner, promoted to voter once caught up).
    Join {
        /// The joining server's Raft node id.
        node_id: u64,
        /// The joining server's RPC address.
        addr: String,
    },
    /// A write proposed on a follower, for the leader to commit.
    Forward(Box<Command>),
    /// The leader's read index for a linearizable (`?consistent`) read on a follower.
    ReadIndex,
    /// Remove this server from the Raft configuration (graceful leave).
    Remove {
        /// The leaving server's Raft node id.
        node_id: u64,
    },
    /// A session renewal received on a follower: the leader re-arms its TTL timer.
    SessionRenew {
        /// The session ID.
        id: String,
        /// The session's TTL in milliseconds.
        ttl_ms: u64,
    },
    /// A client agent's replica stream: the connection then carries only `Response::Subscribe`
    /// frames from the server (a full catalog when `from_index` is 0 or older than the
    /// server's feed, else the entries after it; then each applied batch and a heartbeat
    /// every second) until either side closes it.
    Subscribe {
        /// The last index the client applied (0: none).
        from_index: u64,
    },
    /// A write proposed on a client agent or a follower, with the ACL secret of whoever asked
    /// for it (the HTTP caller, or the agent token for the agent's own writes): the server
    /// resolves it and refuses a write it does not permit (`Remote::Denied`). Sent instead of
    /// `Forward` when ACLs are on; a plain `Forward` to a server with ACLs on counts as the
    /// anonymous token. The secret travels only in this frame: never into the Raft log.
    ForwardAs {
        /// The write.
        command: Box<Command>,
        /// The secret it is checked against.
        token: Secret,
    },
}

impl Request {
    /// The frame forwarding `cmd`: `ForwardAs` with a secret (ACLs on), else the plain
    /// `Forward` every server version reads.
    pub(crate) fn forward(cmd: Command, token: Option<Secret>) -> Self {
        match token {
            Some(token) => Self::ForwardAs { command: Box::new(cmd), token },
            None => Self::Forward(Box::new(cmd)),
        }
    }
}

/// An ACL SecretID on the wire. `Debug` hides it, so a logged request never shows it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub(crate) fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, for the resolver only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<hidden>)")
    }
}

/// The answer to a `Request` (same variant).
#[derive(Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub(crate) enum Response {
    /// openraft AppendEntries result.
    AppendEntries(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    /// openraft RequestVote result.
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    /// openraft InstallSnapshot result.
    InstallSnapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
    /// This server.
    Hello(ServerInfo),
    /// Joined (the server is a voter), or why not.
    Join(Result<(), Remote>),
    /// The command's response and the log index it was applied at, or why not.
    Forward(Result<(CommandResponse, u64), Remote>),
    /// The index a linearizable read must wait for, or why not.
    ReadIndex(Result<u64, Remote>),
    /// Removed (or was not a member), or why not.
    Remove(Result<(), Remote>),
    /// The leader re-armed the session's timer, or why not.
    SessionRenew(Result<(), Remote>),
    /// One frame of a replica stream (`Request::Subscribe`).
    Subscribe(Frame),
}

/// What a server says about itself in discovery.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ServerInfo {
    /// Raft node id.
    pub node_id: u64,
    /// RPC (Raft) address.
    pub addr: String,
    /// Whether it holds a Raft membership (bootstrapped or joined).
    pub clustered: bool,
    /// Its LAN gossip address, if it gossips.
    #[serde(default)]
    pub serf_addr: Option<SocketAddr>,
    /// Log index of the membership configuration it has (0 when none).
    #[serde(default)]
    pub membership_index: u64,
    /// The voters of that configuration: Raft node id -> RPC address. A restarted server
    /// checks it is still one of them, at its current address (`raft::cluster::form`).
    #[serde(default)]
    pub voters: std::collections::BTreeMap<u64, String>,
    /// Its Raft statistics, for autopilot's server health (absent from servers before them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raft_stats: Option<RaftStats>,
}

/// One server's own Raft statistics (Consul's `Status.RaftStats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RaftStats {
    /// Milliseconds since it last heard from the leader (0 on the leader).
    pub last_contact_ms: u64,
    /// Its current Raft term.
    pub last_term: u64,
    /// Index of the last entry in its log.
    pub last_index: u64,
}

/// A server in the Raft configuration.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct RaftServer {
    /// Raft node id.
    pub id: u64,
    /// RPC address.
    pub addr: String,
    /// Whether it is the current leader.
    pub leader: bool,
    /// Voter (true) or learner (false).
    pub voter: bool,
}

/// An error the remote server reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum Remote {
    /// It is not the leader and knows no leader.
    #[error("no cluster leader")]
    NoLeader,
    /// It failed to do what was asked.
    #[error("{0}")]
    Failed(String),
    /// It refused a forwarded write that fails `Command::validate`; nothing was proposed. The
    /// forwarding agent answers its HTTP client as a direct write would be answered.
    #[error("{0}")]
    Invalid(crate::catalog::Invalid),
    /// It refused a forwarded write the caller's token does not permit (or a token it could
    /// not resolve); nothing was proposed. Consul's text (`Permission denied`, `ACL not
    /// found`), which the forwarding agent answers with 403.
    #[error("{0}")]
    Denied(String),
}

/// Why a call failed before a response arrived.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum CallError {
    /// Could not connect (refused, unreachable, connect timeout).
    #[error("connect to {addr}: {msg}")]
    Connect {
        /// Target address.
        addr: String,
        /// Why.
        msg: String,
    },
    /// Connected, but the exchange failed or timed out; the request may have been delivered.
    #[error("rpc to {addr}: {msg}")]
    Io {
        /// Target address.
        addr: String,
        /// Why.
        msg: String,
    },
    /// The response was not the variant the request asks for.
    #[error("rpc to {addr}: unexpected response")]
    Protocol {
        /// Target address.
        addr: String,
    },
    /// The request would exceed `MAX_FRAME`; nothing was sent (send less, e.g. fewer entries).
    #[error("rpc to {addr}: request of {bytes} bytes is larger than a frame may be")]
    TooLarge {
        /// Target address.
        addr: String,
        /// The request's encoded size.
        bytes: usize,
    },
}

/// Writes one frame.
pub(crate) async fn write_frame<T: Serialize>(stream: &mut Conn, msg: &T) -> std::io::Result<()> {
    let body = codec::Format::FramePayload.encode(msg).map_err(std::io::Error::other)?;
    if body.len() > MAX_FRAME {
        // `InvalidInput`: nothing was written, and the caller can tell this from a broken link.
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            FrameTooLarge { bytes: body.len() },
        ));
    }
    let len = u32::try_from(body.len()).map_err(std::io::Error::other)?;
    let mut buf = Vec::with_capacity(4 + body.len());
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(&body);
    stream.write_all(&buf).await
}

/// `write_frame` refused a message larger than `MAX_FRAME`.
#[derive(Debug, thiserror::Error)]
#[error("frame of {bytes} bytes is too large")]
pub(crate) struct FrameTooLarge {
    /// The encoded size.
    pub bytes: usize,
}

/// Reads one frame; `Ok(None)` at a clean end of stream.
pub(crate) async fn read_frame<T: for<'de> Deserialize<'de>>(
    stream: &mut Conn,
) -> std::io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::other(format!("frame of {len} bytes is too large")));
    }
    // Grown as bytes arrive, so a peer that announces a large frame and trickles it (or
    // never sends it) holds no more memory than it has sent.
    let mut body = Vec::with_capacity(len.min(64 << 10));
    let got = (&mut *stream).take(len as u64).read_to_end(&mut body).await?;
    if got != len {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "frame cut short"));
    }
    codec::Format::FramePayload.decode(&body).map(Some).map_err(std::io::Error::other)
}

/// How an exchange failed: the connection broke (possibly a stale pooled one) or timed out.
enum Exchange {
    Closed(CallError),
    Failed(CallError),
}

impl Request {
    /// Whether sending this twice is harmless (Raft RPCs and queries are; a forwarded write or a
    /// membership change is not retried behind the caller's back).
    fn is_idempotent(&self) -> bool {
        !matches!(
            self,
            Self::Forward(_)
                | Self::ForwardAs { .. }
                | Self::Join { .. }
                | Self::Remove { .. }
                | Self::Subscribe { .. }
        )
    }
}

/// Reusable connections to other servers, keyed by address; each admitted once (`Auth`).
#[derive(Debug, Default)]
pub(crate) struct Pool {
    idle: Mutex<HashMap<String, Vec<Conn>>>,
    auth: Auth,
}

impl Pool {
    /// An empty pool whose connections prove what `auth` asks.
    pub(crate) fn new(auth: Auth) -> Self {
        Self { idle: Mutex::default(), auth }
    }

    /// Sends `req` to `addr` and waits (at most `timeout`) for the response.
    pub(crate) async fn call(
        &self,
        addr: &str,
        req: &Request,
        timeout: Duration,
    ) -> Result<Response, CallError> {
        if let Some(stream) = self.take(addr) {
            match self.exchange(stream, addr, req, timeout).await {
                // A pooled connection the peer closed (it restarted): a request that is safe to
                // repeat goes again on a fresh connection; a forwarded write or membership
                // change is reported, as it may have been delivered.
                Err(Exchange::Closed(_)) if req.is_idempotent() => {}
                Err(Exchange::Closed(e) | Exchange::Failed(e)) => return Err(e),
                Ok(resp) => return Ok(resp),
            }
        }
        let stream = self.connect(addr).await?;
        self.exchange(stream, addr, req, timeout)
            .await
            .map_err(|(Exchange::Closed(e) | Exchange::Failed(e))| e)
    }

    async fn exchange(
        &self,
        mut stream: Conn,
        addr: &str,
        req: &Request,
        timeout: Duration,
    ) -> Result<Response, Exchange> {
        let io = |msg: String| CallError::Io { addr: addr.to_owned(), msg };
        let exchange = async {
            write_frame(&mut stream, req).await?;
            read_frame::<Response>(&mut stream).await
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(Some(resp))) => {
                self.put(addr, stream);
                Ok(resp)
            }
            Ok(Ok(None)) => Err(Exchange::Closed(io("connection closed".into()))),
            Ok(Err(e)) => match e.get_ref().and_then(|i| i.downcast_ref::<FrameTooLarge>()) {
                Some(t) => {
                    Err(Exchange::Failed(CallError::TooLarge { addr: addr.to_owned(), bytes: t.bytes }))
                }
                None => Err(Exchange::Closed(io(e.to_string()))),
            },
            Err(_) => Err(Exchange::Failed(io(format!("no response within {timeout:?}")))),
        }
    }

    fn take(&self, addr: &str) -> Option<Conn> {
        self.idle.lock().ok()?.get_mut(addr)?.pop()
    }

    fn put(&self, addr: &str, stream: Conn) {
        if let Ok(mut idle) = self.idle.lock() {
            let list = idle.entry(addr.to_owned()).or_default();
            if list.len() < POOL_PER_ADDR {
                list.push(stream);
            }
        }
    }

    /// Opens a connection to `addr` (within `CONNECT_TIMEOUT`), runs TLS when `verify_outgoing`
    /// holds and proves this agent's key on it (within `CONNECT_TIMEOUT` again: a handshake is two round trips, so a server that
    /// accepts and then stalls holds a caller about as long as one that does not answer); the
    /// connection is not pooled (a replica stream keeps it).
    pub(crate) async fn connect(&self, addr: &str) -> Result<Conn, CallError> {
        let err = |msg: String| CallError::Connect { addr: addr.to_owned(), msg };
        let late = |_| err(format!("timed out after {CONNECT_TIMEOUT:?}"));
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(late)?
            .map_err(|e| err(e.to_string()))?;
        let conn = Conn::plain(stream).map_err(|e| err(e.to_string()))?;
        // Nothing was sent yet: a refused handshake (TLS or key) is a connect error (the
        // caller may try another server, or again).
        tokio::time::timeout(CONNECT_TIMEOUT, self.auth.dial(conn))
            .await
            .map_err(late)?
            .map_err(|e| err(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_join(input: &str, want: Result<&str, ()>) {
        assert_eq!(join_addr(input).map_err(|_| ()), want.map(str::to_owned), "{input}");
    }

    #[test]
    fn join_addresses_default_to_the_server_port() {
        check_join("10.0.0.1", Ok("10.0.0.1:8300"));
        check_join("10.0.0.1:9000", Ok("10.0.0.1:9000"));
        check_join("::1", Ok("[::1]:8300"));
        check_join("[::1]:9000", Ok("[::1]:9000"));
        check_join("server-1", Ok("server-1:8300"));
        check_join("server-1:8301", Ok("server-1:8301"));
        check_join("server-1:x", Err(()));
        check_join("", Err(()));
    }

    /// The raw frames `tests/it/rpc_auth.rs` forges are real requests (so a server that
    /// answers them would act on them).
    #[test]
    fn the_frames_the_integration_tests_forge_decode_as_requests() {
        let frames = [
            r#"{"Forward":{"Kv":{"op":{"Set":{"key":"forged","value":"Zm9yZ2Vk","flags":0,"index":0,"session":""}},"now_ms":1}}}"#,
            r#"{"AppendEntries":{"vote":{"leader_id":{"term":99,"node_id":4242},"committed":true},"prev_log_id":null,"entries":[],"leader_commit":null}}"#,
            r#"{"Join":{"node_id":4242,"addr":"127.0.0.1:1"}}"#,
            r#"{"Remove":{"node_id":1}}"#,
            r#"{"Subscribe":{"from_index":0}}"#,
            r#""Hello""#,
            r#"{"ForwardAs":{"command":{"Kv":{"op":{"Delete":"app/a"},"now_ms":0}},"token":"secret"}}"#,
        ];
        for f in frames {
            let req: Request =
                codec::Format::FramePayload.decode(f.as_bytes()).unwrap_or_else(|e| panic!("{f}: {e}"));
            assert!(!matches!(req, Request::ReadIndex), "{f}");
        }
    }

    #[test]
    fn a_forward_carries_its_secret_only_with_acls_on_and_never_shows_it() {
        let cmd = || Command::QueryDelete("q".into());
        assert!(matches!(Request::forward(cmd(), None), Request::Forward(_)));
        let req = Request::forward(cmd(), Some(Secret::new("s3cr3t")));
        assert!(matches!(&req, Request::ForwardAs { token, .. } if token.expose() == "s3cr3t"));
        assert!(!format!("{req:?}").contains("s3cr3t"));
        let bytes = codec::Format::FramePayload.encode(&req).unwrap();
        assert!(String::from_utf8_lossy(&bytes).contains(r#""token":"s3cr3t""#));
    }

    #[tokio::test]
    async fn a_stale_pooled_connection_is_retried_only_for_idempotent_requests() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        // Each connection answers one request, then the peer closes it (as a restart would).
        tokio::spawn(async move {
            loop {
                let mut s = Conn::plain(listener.accept().await.unwrap().0).unwrap();
                if read_frame::<Request>(&mut s).await.unwrap().is_some() {
                    let info = ServerInfo { node_id: 1, addr: "a:1".into(), ..ServerInfo::default() };
                    write_frame(&mut s, &Response::Hello(info)).await.unwrap();
                }
            }
        });
        let pool = Pool::default();
        let t = Duration::from_secs(5);
        for _ in 0..3 {
            assert!(matches!(pool.call(&addr, &Request::Hello, t).await, Ok(Response::Hello(_))));
        }
        let cmd = Box::new(Command::QueryDelete("q".into()));
        assert!(matches!(pool.call(&addr, &Request::Forward(cmd), t).await, Err(CallError::Io { .. })));
    }

    #[tokio::test]
    async fn frames_round_trip_and_oversized_ones_are_refused() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut s = Conn::plain(listener.accept().await.unwrap().0).unwrap();
            let req: Request = read_frame(&mut s).await.unwrap().unwrap();
            assert!(matches!(req, Request::Hello));
            let info =
                ServerInfo { node_id: 7, addr: "a:1".into(), clustered: true, ..ServerInfo::default() };
            write_frame(&mut s, &Response::Hello(info)).await.unwrap();
            // A length above MAX_FRAME is refused without reading the body.
            let mut s2 = Conn::plain(listener.accept().await.unwrap().0).unwrap();
            assert!(read_frame::<Request>(&mut s2).await.is_err());
        });
        let pool = Pool::default();
        let resp = pool.call(&addr.to_string(), &Request::Hello, Duration::from_secs(5)).await.unwrap();
        assert!(matches!(resp, Response::Hello(ServerInfo { node_id: 7, clustered: true, .. })));
        let mut raw = TcpStream::connect(addr).await.unwrap();
        raw.write_all(&(u32::MAX).to_be_bytes()).await.unwrap();
        server.await.unwrap();
    }
}
