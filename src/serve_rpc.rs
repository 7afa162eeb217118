//! SERVER RPC: accepts server connections and routes each request to the stage that answers
//! it: the local Raft node (`raft::Server`), the replica stream (`replica::serve`) or the
//! leader's session timers (`session`).
//!
//! Input: connections on the server port (a server agent only). Output: one `Response` per
//! `Request`, in order (a session renewal forwarded by a follower re-arms this leader's session
//! timer).
//! Admission: every connection first passes `rpc::Auth` (TLS chosen by the first byte, plain
//! text refused under `verify_incoming_rpc`; with `encrypt`, a mutual challenge keyed by the
//! gossip keyring; a failure closes the connection with one log line). Then a
//! `Join` or `Remove` is answered only for a peer that is an alive server of this datacenter's
//! gossip pool, and a `Join` only for a server that is one (its gossiped Raft id and RPC
//! address); the peer is known by its IP, so without `encrypt` another process on a server's
//! host passes this check, and the challenge is what shuts it out. Under `verify_incoming_rpc`
//! with `verify_server_hostname`, Raft's RPCs, `Join` and `Remove` need a peer certificate
//! valid for `server.<dc>.<domain>` (a client agent's certificate forwards and subscribes only).
//!
//! Invariants: a malformed or oversized frame closes that connection only; nothing here panics
//! on input; a forwarded write is proposed only if it passes `Command::validate`, the checks
//! of a direct HTTP write (`Remote::Invalid` otherwise, which the forwarder turns into the
//! same HTTP status and text), and, with ACLs on, only if the secret it carries (`ForwardAs`;
//! a plain `Forward` is the anonymous token) permits it on this server's ACL state
//! (`acl_state::permission`, the map the HTTP layer checks with; `Remote::Denied` otherwise:
//! 403 `Permission denied` / `ACL not found` at the forwarding agent). The secret is never
//! logged. This dispatcher sits above `raft`, `replica` and `session` so
//! that `rpc` keeps only the wire types, framing and the connection pool.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::acl::{ANONYMOUS_TOKEN_SECRET, Resolve, ResolveError};
use crate::acl_state::permission::{self, Refusal};
use crate::acl_state::{read_reset_index, spend_reset_file};
use crate::catalog::{AclCommand, Command, CommandResponse};
use crate::consensus::ProposeError;
use crate::gossip::{Lan, Membership as _};
use crate::raft::Server;
use crate::rpc::{Auth, Conn, Frame, Remote, Request, Response, Secret, ServerInfo, read_frame, write_frame};
use crate::session::SessionTimers;

/// Open server-RPC connections accepted at once (each peer's pool keeps a few).
const MAX_CONNECTIONS: usize = 512;

/// What the dispatcher answers with.
pub(crate) struct Dispatch {
    /// The local Raft node.
    pub raft: Arc<Server>,
    /// This server's gossip address, told to servers that discover it.
    pub serf_addr: Option<SocketAddr>,
    /// The session TTL timers renewals forwarded to this server (as leader) re-arm.
    pub sessions: Arc<SessionTimers>,
    /// The LAN gossip pool: who may join or remove servers. `None`: nobody may.
    pub gossip: Option<Arc<Lan>>,
    /// What every connection proves before its first frame.
    pub auth: Auth,
    /// This server's ACL resolver: forwarded writes are checked against the secret they carry.
    pub acl: Arc<dyn Resolve>,
    /// This server's data dir: a forwarded ACL bootstrap takes its reset index from here.
    pub data_dir: std::path::PathBuf,
}

/// Serves RPC connections on `listener` until `stop` fires.
pub(crate) async fn serve(
    listener: TcpListener,
    dispatch: Dispatch,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let dispatch = Arc::new(dispatch);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "rpc accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Past the limit a connection is closed at once, so idle or hostile peers
                // cannot use up this process's file descriptors.
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, limit = MAX_CONNECTIONS, "rpc connection refused: too many open");
                    continue;
                };
                crate::metrics::count("consul.rpc.accept_conn", Vec::new());
                let stream = Conn::accepted(stream, peer);
                let (dispatch, stop) = (dispatch.clone(), stop.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    tokio::select! {
                        () = stop.cancelled() => {}
                        () = dispatch.connection(stream) => {}
                    }
                });
            }
        }
    }
}

impl Dispatch {
    /// Admits the peer (`Auth`: TLS and the key challenge), then answers its requests in order until it closes.
    async fn connection(&self, stream: Conn) {
        let peer = stream.peer();
        // A refusal is logged by `accept` (one line, before the connection closes).
        let Ok(mut stream) = self.auth.accept(stream).await else { return };
        if let Err(e) = self.requests(&mut stream).await {
            tracing::debug!(%peer, error = %e, "rpc connection closed");
        }
    }

    async fn requests(&self, stream: &mut Conn) -> std::io::Result<()> {
        while let Some(req) = read_frame::<Request>(stream).await? {
            crate::metrics::count("consul.rpc.request", Vec::new());
            if let Request::Subscribe { from_index } = req {
                // The connection is the replica stream's from now on.
                return crate::replica::serve::stream(stream, &self.raft, from_index).await;
            }
            if !stream.is_server_peer() && speaks_for_a_server(&req) {
                tracing::warn!(peer = %stream.peer(), "rpc request refused: the peer's certificate is not valid for the server name (Raft and membership changes need a server certificate)");
                let refused =
                    || Remote::Failed("refused: the peer's certificate is no server certificate".into());
                let resp = match req {
                    Request::Join { .. } => Response::Join(Err(refused())),
                    Request::Remove { .. } => Response::Remove(Err(refused())),
                    // A Raft RPC has no refusal to answer with: the connection closes.
                    _ => return Ok(()),
                };
                write_frame(stream, &resp).await?;
                continue;
            }
            let resp = match self.membership_change_refused(&req, stream.peer()).await {
                Some(refused) => refused,
                None => answer(self, req).await,
            };
            write_frame(stream, &resp).await?;
        }
        Ok(())
    }

    /// A `Join` or `Remove` from a peer that is no alive server of this datacenter's gossip
    /// pool (or a `Join` for a server that is none) is answered with a refusal, logged once.
    async fn membership_change_refused(&self, req: &Request, peer: SocketAddr) -> Option<Response> {
        let joiner = match req {
            Request::Join { node_id, addr } => Some((*node_id, addr.as_str())),
            Request::Remove { .. } => None,
            _ => return None,
        };
        let why = match &self.gossip {
            None => Some("this server sees no gossip pool".to_owned()),
            Some(gossip) => membership_refusal(gossip, peer.ip(), joiner).await,
        }?;
        tracing::warn!(%peer, reason = %why, "rpc membership change refused");
        let refused = Remote::Failed(format!("refused: {why}"));
        Some(match req {
            Request::Join { .. } => Response::Join(Err(refused)),
            _ => Response::Remove(Err(refused)),
        })
    }
}

/// Whether only a server may send `req`: Raft's RPCs and membership changes.
fn speaks_for_a_server(req: &Request) -> bool {
    matches!(
        req,
        Request::AppendEntries(_)
            | Request::Vote(_)
            | Request::InstallSnapshot(_)
            | Request::Join { .. }
            | Request::Remove { .. }
    )
}

/// Why a membership change from `peer` is refused (`None`: allowed). The peer must be an alive
/// server of this datacenter (its gossip or RPC address has the peer's IP); a joining server
/// must be one too, gossiping the Raft id and RPC address it asks to join with.
async fn membership_refusal(gossip: &Lan, peer: IpAddr, joiner: Option<(u64, &str)>) -> Option<String> {
    let dc = gossip.local_meta().dc.clone();
    let members = gossip.members().await;
    let servers: Vec<_> = members.iter().filter(|m| m.alive_server_rpc(&dc).is_some()).collect();
    let same_ip = |raft_addr: &str, gossip_addr: SocketAddr| {
        let rpc_ip = raft_addr.parse::<SocketAddr>().ok().map(|a| a.ip().to_canonical());
        gossip_addr.ip().to_canonical() == peer.to_canonical() || rpc_ip == Some(peer.to_canonical())
    };
    if !servers.iter().any(|m| m.meta.as_ref().is_some_and(|meta| same_ip(&meta.raft_addr, m.addr))) {
        return Some(format!("{peer} is not an alive server of datacenter {dc}'s gossip pool"));
    }
    let (id, addr) = joiner?;
    let known = servers
        .iter()
        .any(|m| m.meta.as_ref().is_some_and(|meta| meta.raft_id == id && meta.raft_addr == addr));
    (!known).then(|| format!("server {id} at {addr} is not an alive server of datacenter {dc}'s gossip pool"))
}

async fn answer(dispatch: &Dispatch, req: Request) -> Response {
    let (raft, acl, data_dir) = (&*dispatch.raft, &*dispatch.acl, dispatch.data_dir.as_path());
    let (serf_addr, sessions) = (dispatch.serf_addr, &*dispatch.sessions);
    match req {
        Request::AppendEntries(rpc) => {
            raft.note_leader_contact(&rpc.vote);
            Response::AppendEntries(raft.raft().append_entries(*rpc).await)
        }
        Request::Vote(rpc) => Response::Vote(raft.raft().vote(rpc).await),
        Request::InstallSnapshot(rpc) => {
            raft.note_leader_contact(&rpc.vote);
            Response::InstallSnapshot(raft.raft().install_snapshot(*rpc).await)
        }
        Request::Hello => Response::Hello(ServerInfo { serf_addr, ..raft.server_info() }),
        Request::Join { node_id, addr } => Response::Join(raft.add_server(node_id, addr).await),
        Request::Remove { node_id } => Response::Remove(raft.remove_server(node_id).await),
        // A forwarded write passes the checks a direct HTTP write passes, whoever sent it.
        Request::Forward(cmd) => forwarded(raft, acl, data_dir, *cmd, None).await,
        Request::ForwardAs { command, token } => forwarded(raft, acl, data_dir, *command, Some(token)).await,
        Request::ReadIndex => Response::ReadIndex(raft.read_index().await.map_err(remote)),
        // On the leader it re-arms the timer here; elsewhere it goes on to the leader.
        Request::SessionRenew { id, ttl_ms } => {
            let ttl = Duration::from_millis(ttl_ms);
            Response::SessionRenew(match raft.forward_session_renew(&id, ttl).await {
                Ok(true) => {
                    sessions.renew(&id, ttl);
                    Ok(())
                }
                Ok(false) => Ok(()),
                Err(e) => Err(remote(e)),
            })
        }
        // Handled by `connection`, which hands the connection over to the stream.
        Request::Subscribe { .. } => Response::Subscribe(Frame::Heartbeat(raft.heartbeat())),
    }
}

/// Answers a forwarded write: validated as a direct HTTP write is (`Command::validate`), then,
/// with ACLs on, checked against the secret it came with (none: the anonymous token) on this
/// server's ACL state, then committed (relayed to the leader with the same secret).
async fn forwarded(
    raft: &Server,
    acl: &dyn Resolve,
    data_dir: &Path,
    mut cmd: Command,
    token: Option<Secret>,
) -> Response {
    if let Err(e) = cmd.validate() {
        tracing::warn!(error = ?e.to_string(), write = ?cmd.to_string(), "forwarded write refused");
        return Response::Forward(Err(Remote::Invalid(e)));
    }
    // A bootstrap's reset index is this server's file, never the frame's (`acl_state::reset`).
    let mut spends_reset = false;
    if let Command::Acl(AclCommand::Bootstrap { reset_index, .. }) = &mut cmd {
        *reset_index = match read_reset_index(data_dir) {
            Ok(index) => index,
            Err(text) => return Response::Forward(Err(Remote::Failed(text))),
        };
        spends_reset = reset_index.is_some();
    }
    if acl.enabled() {
        let secret = token.as_ref().map(Secret::expose).filter(|s| !s.is_empty());
        let authz = match acl.resolve(Some(secret.unwrap_or(ANONYMOUS_TOKEN_SECRET))) {
            Ok(a) => a,
            Err(e @ ResolveError::RootName) => return Response::Forward(Err(Remote::Failed(e.to_string()))),
            Err(e) => return Response::Forward(Err(Remote::Denied(e.to_string()))),
        };
        let snap = raft.snapshots().load_full();
        match permission::authorize(&authz, &snap.catalog, &cmd) {
            Ok(()) => {}
            // Consul answers a transaction's refused operations in its body (409).
            Err(Refusal::Txn(errors)) => {
                return Response::Forward(Ok((CommandResponse::Txn(Err(errors)), snap.index)));
            }
            Err(Refusal::Unknown(text)) => return Response::Forward(Err(Remote::Failed(text))),
            Err(e @ Refusal::Denied) => {
                tracing::info!(write = %cmd, "forwarded write blocked by ACLs");
                return Response::Forward(Err(Remote::Denied(e.to_string())));
            }
        }
    }
    let out = raft.apply_forwarded(cmd, token).await;
    if spends_reset && matches!(out, Ok((CommandResponse::Applied, _))) {
        spend_reset_file(data_dir);
    }
    Response::Forward(out)
}

fn remote(e: ProposeError) -> Remote {
    match e {
        ProposeError::NoLeader => Remote::NoLeader,
        other => Remote::Failed(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    //! A forwarded ACL bootstrap takes its reset index from the receiving server's data dir,
    //! never from the frame (the index is printed in the refusal, so it is no secret).

    use super::*;
    use crate::acl_state::management_token;

    fn bootstrap(reset_index: Option<u64>) -> Command {
        let token = management_token(uuid::Uuid::new_v4().to_string(), "Bootstrap Token", 1);
        Command::Acl(AclCommand::Bootstrap { token: Box::new(token), reset_index })
    }

    async fn forward(raft: &Server, dir: &Path, cmd: Command) -> Result<(CommandResponse, u64), Remote> {
        let acl = crate::acl::Disabled::new();
        match forwarded(raft, &acl, dir, cmd, None).await {
            Response::Forward(out) => out,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_forged_reset_index_never_reopens_bootstrap_and_the_servers_file_does_once() {
        let (raft, dir) = crate::http::tests::test_server().await;
        let data = tempfile::tempdir().unwrap();
        assert!(matches!(
            forward(&raft, data.path(), bootstrap(None)).await,
            Ok((CommandResponse::Applied, _))
        ));
        let reset = raft.snapshots().load().catalog.acl().bootstrap_index().unwrap();
        // The frame names the right index, but this server has no reset file: refused.
        let forged = forward(&raft, data.path(), bootstrap(Some(reset))).await;
        let refused = format!("ACL bootstrap no longer allowed (reset index: {reset})");
        assert!(matches!(&forged, Ok((CommandResponse::Rejected(t), _)) if *t == refused), "{forged:?}");
        // The operator's file re-opens it once, whatever the frame says, and is spent.
        std::fs::write(data.path().join("acl-bootstrap-reset"), reset.to_string()).unwrap();
        let reopened = forward(&raft, data.path(), bootstrap(None)).await;
        assert!(matches!(reopened, Ok((CommandResponse::Applied, _))), "{reopened:?}");
        assert!(!data.path().join("acl-bootstrap-reset").exists());
        let again = forward(&raft, data.path(), bootstrap(Some(reset))).await;
        assert!(matches!(again, Ok((CommandResponse::Rejected(_), _))), "{again:?}");
        drop(dir);
    }
}
