//! SERVER RPC: accepts server connections and routes each request to the stage that answers
//! it: the local Raft node (`raft::Server`), the replica stream (`replica::serve`) or the
//! leader's session timers (`session`).
//!
//! Input: connections on the server port (a server agent only). Output: one `Response` per
//! `Request`, in order (a session renewal forwarded by a follower re-arms this leader's session
//! timer).
//! Invariants: a malformed or oversized frame closes that connection only; nothing here panics
//! on input. This dispatcher sits above `raft`, `replica` and `session` so that `rpc` keeps only
//! the wire types, framing and the connection pool.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::consensus::ProposeError;
use crate::raft::Server;
use crate::rpc::{Conn, Frame, Remote, Request, Response, ServerInfo, read_frame, write_frame};
use crate::session::SessionTimers;

/// Open server-RPC connections accepted at once (each peer's pool keeps a few).
const MAX_CONNECTIONS: usize = 512;

/// Serves RPC connections on `listener` for the Raft node `raft` until `stop` fires.
/// `serf_addr` is this server's gossip address, told to servers that discover it; `sessions`
/// are the session TTL timers renewals forwarded to this server (as leader) re-arm.
pub(crate) async fn serve(
    listener: TcpListener,
    raft: Arc<Server>,
    serf_addr: Option<SocketAddr>,
    sessions: Arc<SessionTimers>,
    stop: CancellationToken,
) -> std::io::Result<()> {
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
                let stream = Conn::accepted(stream, peer);
                let peer = stream.peer();
                let (raft, sessions, stop) = (raft.clone(), sessions.clone(), stop.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    tokio::select! {
                        () = stop.cancelled() => {}
                        r = connection(stream, raft, serf_addr, sessions) => if let Err(e) = r {
                            tracing::debug!(%peer, error = %e, "rpc connection closed");
                        }
                    }
                });
            }
        }
    }
}

async fn connection(
    mut stream: Conn,
    raft: Arc<Server>,
    serf_addr: Option<SocketAddr>,
    sessions: Arc<SessionTimers>,
) -> std::io::Result<()> {
    while let Some(req) = read_frame::<Request>(&mut stream).await? {
        if let Request::Subscribe { from_index } = req {
            // The connection is the replica stream's from now on.
            return crate::replica::serve::stream(&mut stream, &raft, from_index).await;
        }
        let resp = answer(&raft, req, serf_addr, &sessions).await;
        write_frame(&mut stream, &resp).await?;
    }
    Ok(())
}

async fn answer(
    raft: &Server,
    req: Request,
    serf_addr: Option<SocketAddr>,
    sessions: &SessionTimers,
) -> Response {
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
        Request::Forward(cmd) => Response::Forward(raft.apply_forwarded(*cmd).await),
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

fn remote(e: ProposeError) -> Remote {
    match e {
        ProposeError::NoLeader => Remote::NoLeader,
        other => Remote::Failed(other.to_string()),
    }
}
