//! SERVER RPC ADMISSION: only holders of a cluster key speak the server RPC.
//!
//! Input: a fresh `Conn` (dialled or accepted) and the cluster keys (`ClusterKeys`: the gossip
//! keyring, primary first; today the static `encrypt` key). Output: the same `Conn`, admitted,
//! or an `AuthError` after which the connection is dropped.
//!
//! With `encrypt` set, every server-RPC connection opens with a mutual challenge before its
//! first frame; each side proves it holds a key of the keyring without sending it, bound to a
//! fresh nonce from each side:
//!
//! ```text
//! client -> server   MAGIC (8 bytes) | client nonce (32)
//! server -> client   server nonce (32) | HMAC(k_s, transcript("server", cn, sn))
//! client -> server   HMAC(k_c, transcript("client", cn, sn))
//! server -> client   ACCEPTED (1 byte), or the connection closes
//! transcript(role, cn, sn) = DOMAIN | role | cn | sn      (HMAC-SHA256 throughout)
//! ```
//!
//! The server proves with its primary key (`k_s`); the client checks that proof against every
//! key it holds and answers with the key that matched (`k_c = k_s`, a key both hold), and the
//! server checks the answer against every key it holds. During a rotation (install new, use
//! new, remove old, node by node) two agents may briefly have different primaries; they still
//! admit each other as long as the client holds the server's primary, which Consul's rotation
//! order (install everywhere before any `use`) guarantees. A recorded handshake cannot be
//! replayed: the server draws a new nonce for every connection, so an old client proof never
//! matches. A proof cannot be reflected either: the role is inside the transcript, so a
//! server's proof is never a valid client proof, and the domain string keeps these MACs apart
//! from any other use of the gossip key. The magic's first 4 bytes, read as a frame length,
//! exceed `MAX_FRAME`, so an agent without `encrypt` talking to one with it fails at once with
//! a clear error on both ends instead of misreading bytes.
//!
//! Every step of the server's side runs under one deadline (`limits.rpc_handshake_timeout`,
//! Consul's default 5 s when unset), so a peer that connects and sends nothing, or sends
//! half a challenge, holds a connection slot for at most that long. The exchange costs two
//! round trips and four HMAC-SHA256 computations (client) or up to one per installed key plus
//! one (server), once per connection; the pool keeps connections, so a cluster pays it once
//! per pooled connection, not per request (`rpc::auth::tests` measures it).
//!
//! Why ring's HMAC and not the `hmac` crate: ring is already in the tree (rustls' crypto
//! provider), its `hmac::verify` compares in constant time, and its `SystemRandom` draws the
//! nonces from the OS; the `hmac` crate would be a new dependency (and a second SHA-256) for
//! the same two calls. Why not TLS-PSK: rustls implements no external PSK, and certificates
//! are what TLS on this port will use (`verify_incoming`); this challenge is the
//! certificate-free floor under it.
//!
//! TLS (`dial`, `accept`): with `verify_outgoing` every dialled connection runs a TLS
//! handshake first (SNI `server.<dc>.<domain>`, this agent's certificate as client
//! certificate), and the challenge, when `encrypt` is set too, runs inside the TLS stream: both
//! must pass. The accepting side reads the first byte without consuming it: a TLS record
//! starts with 0x16 (a handshake), which neither the plain protocol can start with (a frame's
//! first byte is the top byte of a length of at most `MAX_FRAME`, 0x00..=0x04) nor the
//! challenge (`MAGIC` starts with `C`, 0x43), so no marker byte is needed and the two never
//! mix. TLS is accepted whenever this agent has an RPC certificate; anything else is refused
//! under `verify_incoming_rpc` (Consul's `Non-TLS connection attempted with VerifyIncoming
//! set`). The first byte and the TLS handshake run under `limits.rpc_handshake_timeout`. The
//! acceptor and connector are read from `Tls` for each connection, so a SIGHUP reload
//! reaches new connections while open ones keep their session.
//!
//! Exposure: with neither `encrypt` nor TLS with `verify_incoming_rpc`, the server RPC is open
//! to whoever reaches it, so `check_exposure` refuses to serve it on a non-loopback address
//! unless `insecure_rpc` says so.
//!
//! Invariants: no frame is read or written on a connection before it is admitted; a failed
//! handshake is an error for that connection only (one log line on the server), never a panic;
//! with no key available the handshake fails (closed, never open).

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Conn;
use crate::tls::Tls;

/// Opens every authenticated connection; its first 4 bytes, as a frame length, exceed `MAX_FRAME`.
const MAGIC: [u8; 8] = *b"CAIRNRA1";
/// Separates these MACs from every other use of a gossip key.
const DOMAIN: &[u8] = b"cairn server-rpc admission v1\0";
/// The first byte of a TLS record carrying a handshake (a ClientHello).
const TLS_HANDSHAKE: u8 = 0x16;
/// Bytes of each side's nonce.
const NONCE: usize = 32;
/// Bytes of an HMAC-SHA256 tag.
const TAG: usize = 32;
/// The server's last byte of a successful handshake.
const ACCEPTED: u8 = 1;
/// How long a peer may take over its side of the handshake (Consul's
/// `limits.rpc_handshake_timeout` default).
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The keys a server-RPC peer must prove it holds.
pub(crate) trait ClusterKeys: Send + Sync {
    /// Every installed key, the primary (the one to prove with) first. Empty: no key is
    /// available, and every handshake fails.
    fn keys(&self) -> Vec<Vec<u8>>;
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum AuthError {
    /// The peer went away, or the connection broke, mid-handshake.
    #[error("handshake cut short: {0}")]
    Io(#[from] std::io::Error),
    /// The peer did not finish its side in time.
    #[error("no handshake within {0:?}")]
    Timeout(Duration),
    /// The peer's first bytes are not a challenge (an agent without `encrypt`, or garbage).
    #[error("not a cluster-key challenge (is encrypt set on both ends?)")]
    NotAChallenge,
    /// The peer's proof matches none of this agent's keys.
    #[error("the peer proved no key of this agent's keyring")]
    WrongKey,
    /// The server closed the connection after the client's proof (it holds no key the
    /// client proved with).
    #[error("the server refused this agent's key proof")]
    Refused,
    /// This agent has no key to prove or check with.
    #[error("no cluster key is installed")]
    NoKey,
    /// The OS random source failed.
    #[error("no random nonce available")]
    Random,
    /// A peer spoke plain text to a server that requires TLS (Consul's log text).
    #[error("Non-TLS connection attempted with VerifyIncoming set")]
    NotTls,
    /// A peer started TLS with a server that has no RPC certificate (Consul's log text).
    #[error("TLS connection attempted, server not configured for TLS")]
    TlsNotConfigured,
    /// `verify_outgoing` holds but no outgoing TLS configuration was built.
    #[error("verify_outgoing is set but no TLS configuration for the server RPC is loaded")]
    NoConnector,
    /// The TLS handshake failed (certificate refused, garbage, peer gone).
    #[error("TLS handshake failed: {0}")]
    Tls(std::io::Error),
}

/// Who may open a server-RPC connection: nobody needs to prove anything (no keys), or every
/// peer must prove a cluster key. Cloned into the pool (dialling side) and the listener.
/// With `tls`, connections also run TLS as its settings say (see the module doc).
#[derive(Clone, Default)]
pub(crate) struct Auth {
    keys: Option<Arc<dyn ClusterKeys>>,
    tls: Option<Arc<Tls>>,
    /// `encrypt_verify_incoming = false`: also admit a peer that proves nothing.
    admit_unproven: bool,
    /// `encrypt_verify_outgoing = false`: dial without proving a key.
    skip_proof: bool,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("keyed", &self.keys.is_some())
            .field("tls", &self.tls.is_some())
            .field("admit_unproven", &self.admit_unproven)
            .field("skip_proof", &self.skip_proof)
            .finish()
    }
}

impl Auth {
    /// No challenge: the RPC is open to whoever reaches it (no `encrypt`).
    pub(crate) fn open() -> Self {
        Self::default()
    }

    /// Every connection proves a key of `keys`.
    pub(crate) fn keyed(keys: Arc<dyn ClusterKeys>) -> Self {
        Self { keys: Some(keys), ..Self::default() }
    }

    /// Consul's rolling enable of encryption (`encrypt_verify_incoming`,
    /// `encrypt_verify_outgoing`, both true once every agent has the key): with `incoming`
    /// false a peer may skip the challenge (one that starts it must still prove a key), with
    /// `outgoing` false this agent dials without proving one.
    pub(crate) fn with_rollout(self, incoming: bool, outgoing: bool) -> Self {
        Self { admit_unproven: !incoming, skip_proof: !outgoing, ..self }
    }

    /// Connections also run TLS as `tls`'s current settings say.
    pub(crate) fn with_tls(self, tls: Arc<Tls>) -> Self {
        Self { tls: Some(tls), ..self }
    }

    /// How long a peer may take over its side of the key challenge: the configured
    /// `limits.rpc_handshake_timeout` (carried by `Tls`, reloaded on SIGHUP), else Consul's
    /// default.
    fn handshake_timeout(&self) -> Duration {
        self.tls.as_ref().map_or(HANDSHAKE_TIMEOUT, |t| t.rpc_handshake_timeout())
    }

    /// Whether every accepted connection must prove a key (not during a rollout).
    pub(crate) fn requires_proof(&self) -> bool {
        self.keys.is_some() && !self.admit_unproven
    }

    /// Whether every accepted connection must be TLS with a verified client certificate.
    pub(crate) fn requires_client_cert(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.verify_incoming_rpc())
    }

    /// The dialling side of a fresh connection: TLS when `verify_outgoing` holds, then the
    /// key challenge (inside TLS). The caller bounds the whole in time.
    pub(crate) async fn dial(&self, conn: Conn) -> Result<Conn, AuthError> {
        let mut conn = match &self.tls {
            Some(tls) => match tls.rpc_connector() {
                Some((connector, name)) => {
                    conn.tls_dialled(&connector, name).await.map_err(AuthError::Tls)?
                }
                // Never fails open: TLS is due, but there is no connector to run it with.
                None if tls.verify_outgoing() => return Err(AuthError::NoConnector),
                None => conn,
            },
            None => conn,
        };
        self.prove(&mut conn).await?;
        Ok(conn)
    }

    /// The accepting side of a fresh connection: the first byte picks TLS or plain text
    /// (refused under `verify_incoming_rpc`), then the key challenge (inside TLS). With
    /// `verify_incoming_rpc` and `verify_server_hostname`, a peer whose certificate is not valid
    /// for `server.<dc>.<domain>` (a `-client` one) is marked as no server (`Conn::is_server_peer`):
    /// it may forward writes and follow the replica stream, but not speak Raft or change the
    /// membership.
    pub(crate) async fn accept(&self, conn: Conn) -> Result<Conn, AuthError> {
        let peer = conn.peer();
        // Each refusal is logged while the connection is still open, so the line is out before
        // the peer sees the close (except a TLS handshake cut by the timer, which drops its
        // socket with it).
        let refused = |e: AuthError| {
            tracing::warn!(%peer, reason = %e, "rpc connection refused");
            e
        };
        let mut conn = match &self.tls {
            Some(tls) => {
                let mut conn = match transport(tls, conn).await {
                    Ok(conn) => conn,
                    // The connection (if the timer left it) closes after the line is logged.
                    Err((e, _conn)) => return Err(refused(e)),
                };
                if let Some(name) = tls.rpc_peer_server_name() {
                    let server =
                        conn.peer_certificate().is_some_and(|c| crate::tls::certificate_is_for(c, &name));
                    conn.set_server_peer(server);
                }
                conn
            }
            None => conn,
        };
        match self.admit(&mut conn).await {
            Ok(()) => Ok(conn),
            Err(e) => Err(refused(e)),
        }
    }

    /// The dialling side: proves a key to the server and checks the server's proof.
    pub(crate) async fn prove(&self, conn: &mut Conn) -> Result<(), AuthError> {
        let Some(keys) = &self.keys else { return Ok(()) };
        if self.skip_proof {
            return Ok(());
        }
        bounded(self.handshake_timeout(), client_side(conn, &keys.keys())).await
    }

    /// The accepting side: admits a peer that proves a key (anyone without keys; during a
    /// rollout also one that does not start the challenge).
    pub(crate) async fn admit(&self, conn: &mut Conn) -> Result<(), AuthError> {
        let Some(keys) = &self.keys else { return Ok(()) };
        let limit = self.handshake_timeout();
        if self.admit_unproven {
            // A challenge starts with the magic; anything else is a peer that proves nothing.
            let first = tokio::time::timeout(limit, conn.first_byte())
                .await
                .map_err(|_| AuthError::Timeout(limit))?;
            if first? != Some(MAGIC[0]) {
                return Ok(());
            }
        }
        bounded(limit, server_side(conn, &keys.keys())).await
    }
}

/// The server's choice of transport by the peer's first byte (see the module doc).
/// The whole runs under `limits.rpc_handshake_timeout`; a refused `conn` is returned with the
/// error (dropped by the caller once it has logged), except one cut by the timer mid-TLS.
async fn transport(tls: &Tls, conn: Conn) -> Result<Conn, (AuthError, Option<Conn>)> {
    let acceptor = tls.rpc_acceptor();
    if acceptor.is_none() && !tls.verify_incoming_rpc() {
        // Nothing to choose: plain text only (a TLS peer then fails the protocol).
        return Ok(conn);
    }
    let limit = tls.rpc_handshake_timeout();
    let deadline = tokio::time::Instant::now() + limit;
    let first = match tokio::time::timeout_at(deadline, conn.peek_first()).await {
        Err(_) => return Err((AuthError::Timeout(limit), Some(conn))),
        Ok(Err(e)) => return Err((e.into(), Some(conn))),
        Ok(Ok(first)) => first,
    };
    let why = match (first, acceptor) {
        (Some(TLS_HANDSHAKE), Some(acceptor)) => {
            return match tokio::time::timeout_at(deadline, conn.tls_accepted(&acceptor)).await {
                Err(_) => Err((AuthError::Timeout(limit), None)),
                Ok(Err((e, conn))) => Err((AuthError::Tls(e), Some(conn))),
                Ok(Ok(conn)) => Ok(conn),
            };
        }
        (Some(TLS_HANDSHAKE), None) => AuthError::TlsNotConfigured,
        (None, _) => AuthError::Io(std::io::ErrorKind::UnexpectedEof.into()),
        (Some(_), _) if tls.verify_incoming_rpc() => AuthError::NotTls,
        (Some(_), _) => return Ok(conn),
    };
    Err((why, Some(conn)))
}

async fn bounded(
    limit: Duration,
    step: impl Future<Output = Result<(), AuthError>>,
) -> Result<(), AuthError> {
    tokio::time::timeout(limit, step).await.map_err(|_| AuthError::Timeout(limit))?
}

fn nonce() -> Result<[u8; NONCE], AuthError> {
    let mut n = [0u8; NONCE];
    SystemRandom::new().fill(&mut n).map_err(|_| AuthError::Random)?;
    Ok(n)
}

/// The MAC input: the domain, the prover's role and both nonces (fixed lengths throughout).
fn transcript(role: &[u8; 6], client: &[u8; NONCE], server: &[u8; NONCE]) -> Vec<u8> {
    let mut t = Vec::with_capacity(DOMAIN.len() + role.len() + 2 * NONCE);
    t.extend_from_slice(DOMAIN);
    t.extend_from_slice(role);
    t.extend_from_slice(client);
    t.extend_from_slice(server);
    t
}

fn sign(key: &[u8], msg: &[u8]) -> hmac::Tag {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), msg)
}

/// The installed key `tag` was made with, if any (each compared in constant time).
fn matching<'k>(keys: &'k [Vec<u8>], msg: &[u8], tag: &[u8]) -> Option<&'k [u8]> {
    keys.iter()
        .find(|k| hmac::verify(&hmac::Key::new(hmac::HMAC_SHA256, k), msg, tag).is_ok())
        .map(Vec::as_slice)
}

async fn client_side(conn: &mut Conn, keys: &[Vec<u8>]) -> Result<(), AuthError> {
    if keys.is_empty() {
        return Err(AuthError::NoKey);
    }
    let cn = nonce()?;
    let mut hello = [0u8; MAGIC.len() + NONCE];
    hello[..MAGIC.len()].copy_from_slice(&MAGIC);
    hello[MAGIC.len()..].copy_from_slice(&cn);
    conn.write_all(&hello).await?;
    let mut reply = [0u8; NONCE + TAG];
    conn.read_exact(&mut reply).await?;
    let mut sn = [0u8; NONCE];
    sn.copy_from_slice(&reply[..NONCE]);
    let key = matching(keys, &transcript(b"server", &cn, &sn), &reply[NONCE..]).ok_or(AuthError::WrongKey)?;
    conn.write_all(sign(key, &transcript(b"client", &cn, &sn)).as_ref()).await?;
    let mut verdict = [0u8; 1];
    match conn.read_exact(&mut verdict).await {
        Ok(_) if verdict[0] == ACCEPTED => Ok(()),
        Ok(_) => Err(AuthError::Refused),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(AuthError::Refused),
        Err(e) => Err(e.into()),
    }
}

async fn server_side(conn: &mut Conn, keys: &[Vec<u8>]) -> Result<(), AuthError> {
    let primary = keys.first().ok_or(AuthError::NoKey)?;
    // The magic first, so a peer speaking frames (no `encrypt`) is told apart at once.
    let mut magic = [0u8; MAGIC.len()];
    conn.read_exact(&mut magic).await?;
    if magic != MAGIC {
        return Err(AuthError::NotAChallenge);
    }
    let mut cn = [0u8; NONCE];
    conn.read_exact(&mut cn).await?;
    let sn = nonce()?;
    let mut reply = [0u8; NONCE + TAG];
    reply[..NONCE].copy_from_slice(&sn);
    reply[NONCE..].copy_from_slice(sign(primary, &transcript(b"server", &cn, &sn)).as_ref());
    conn.write_all(&reply).await?;
    let mut proof = [0u8; TAG];
    conn.read_exact(&mut proof).await?;
    matching(keys, &transcript(b"client", &cn, &sn), &proof).ok_or(AuthError::WrongKey)?;
    conn.write_all(&[ACCEPTED]).await?;
    Ok(())
}

/// Refuses to serve the server RPC on `addr` when nothing authenticates its peers (no
/// `encrypt`, no TLS with `verify_incoming_rpc`) and the address is reachable from other
/// hosts, unless `insecure_rpc` accepts that. The error is the one line the agent prints
/// before it stops.
pub(crate) fn check_exposure(addr: SocketAddr, auth: &Auth, insecure_rpc: bool) -> Result<(), String> {
    if auth.requires_proof() || auth.requires_client_cert() || insecure_rpc || addr.ip().is_loopback() {
        return Ok(());
    }
    Err(format!(
        "refusing to serve the server RPC on {addr} without encrypt or TLS with verify_incoming: anyone \
         who can reach it could join as a voter or write to the catalog; set insecure_rpc = true to accept that"
    ))
}

#[cfg(test)]
mod tests;
