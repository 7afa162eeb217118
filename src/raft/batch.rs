//! GROUP COMMIT: concurrent proposals share one Raft log entry.
//!
//! Input: `(Command, reply)` pairs from `Consensus::propose`. Output: one `client_write` per
//! group — a single command as is, several as `Command::Batch` — and each caller's own
//! `CommandResponse`.
//!
//! Why: openraft 0.9 appends each `client_write` as its own log write, and every durable
//! LMDB commit costs device flushes (about 2k commits/s on this class of disk, notes/perf.md
//! §3; `store`'s invariants say which commits sync). Grouping
//! the proposals that arrive while earlier groups are in flight turns N writes into one log
//! append, one state-machine transaction and one publish.
//!
//! On a follower the group is forwarded to the leader over the server RPC
//! (`cluster::forward`, with the ACL secret its proposals share: a group holds only proposals
//! made with one secret, so the leader checks the whole group against it) and answered once the leader applied it and this server has caught up
//! to it (bounded), so a read after a write on the same server sees the write.
//!
//! Invariants: a caller is answered only after its group is committed and applied; at most
//! `MAX_IN_FLIGHT` groups are proposed at once, so a burst waits in the queue and joins the
//! next group instead of becoming many tiny entries.

use std::sync::Arc;

use openraft::error::{ClientWriteError, RaftError as OpenRaftError};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::{Command, CommandResponse, ProposeError, Raft, cluster};
use crate::rpc::{Pool, Secret};
use crate::snapshot::SnapshotHandle;

/// Most commands in one log entry; bounds the entry size and the apply latency of a group.
/// The leader refuses a forwarded group larger than this (`catalog::validate`).
const MAX_GROUP: usize = crate::catalog::validate::MAX_BATCH;
/// Most KV value bytes in one group (values are up to 512 KiB each): keeps an entry well
/// inside one server-RPC frame (`rpc::MAX_FRAME`), so a follower can always be sent it.
const MAX_GROUP_VALUE_BYTES: usize = 8 << 20;
/// Groups proposed at once: enough to keep the log append and the apply stage both busy.
const MAX_IN_FLIGHT: usize = 2;
/// How long the leader waits for a quorum to commit a group.
const COMMIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Queued proposals before `propose` waits (backpressure).
const QUEUE: usize = 4096;

/// One waiting proposal.
pub(super) struct Pending {
    cmd: Command,
    /// The secret a forward to the leader carries (`None` with ACLs off).
    token: Option<Secret>,
    reply: oneshot::Sender<Result<CommandResponse, ProposeError>>,
}

/// The sending side, held by `Server`.
#[derive(Clone, Debug)]
pub(super) struct Proposer {
    tx: mpsc::Sender<Pending>,
}

impl Proposer {
    /// Starts the grouping task for `raft` (this server is `node_id`; forwarded writes wait
    /// for `snapshots` to catch up; `pool` reaches the leader).
    pub(super) fn spawn(raft: Raft, node_id: u64, snapshots: Arc<SnapshotHandle>, pool: Arc<Pool>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(Ctx { raft, node_id, snapshots, pool }, rx));
        Self { tx }
    }

    /// Queues `cmd` and waits for its own response.
    pub(super) async fn propose(
        &self,
        cmd: Command,
        token: Option<Secret>,
    ) -> Result<CommandResponse, ProposeError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Pending { cmd, token, reply })
            .await
            .map_err(|_| ProposeError::Raft("raft is shut down".into()))?;
        rx.await.map_err(|_| ProposeError::Raft("raft is shut down".into()))?
    }
}

/// What a group needs to be committed here or on the leader.
#[derive(Clone)]
struct Ctx {
    raft: Raft,
    node_id: u64,
    snapshots: Arc<SnapshotHandle>,
    pool: Arc<Pool>,
}

async fn run(ctx: Ctx, mut rx: mpsc::Receiver<Pending>) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    // A proposal made with another secret than its group's starts the next group.
    let mut held: Option<Pending> = None;
    loop {
        let first = match held.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        // Waiting for a slot is what lets a burst accumulate behind the groups in flight.
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let mut bytes = first.cmd.value_bytes();
        let mut group = vec![first];
        while group.len() < MAX_GROUP && bytes < MAX_GROUP_VALUE_BYTES {
            match rx.try_recv() {
                Ok(p) if p.token != group[0].token => {
                    held = Some(p);
                    break;
                }
                Ok(p) => {
                    bytes += p.cmd.value_bytes();
                    group.push(p);
                }
                Err(_) => break,
            }
        }
        let ctx = ctx.clone();
        tokio::spawn(async move {
            write_group(&ctx, group).await;
            drop(slot);
        });
    }
}

/// Commits `cmd` through the leader: locally when this server leads, else forwarded.
async fn commit(ctx: &Ctx, cmd: Command, token: Option<Secret>) -> Result<CommandResponse, ProposeError> {
    let (leader, addr) = cluster::wait_leader(&ctx.raft).await?;
    if leader != ctx.node_id {
        return cluster::forward(&ctx.pool, &ctx.snapshots, &addr, cmd, token).await;
    }
    // One Raft transaction on the leader (Consul's `consul.raft.apply` counter).
    crate::metrics::count("consul.raft.apply", Vec::new());
    // A leader cut off from its quorum would wait forever; the write may still commit later.
    let write = tokio::time::timeout(COMMIT_TIMEOUT, ctx.raft.client_write(cmd));
    let Ok(written) = write.await else {
        return Err(ProposeError::Raft(format!("not committed within {COMMIT_TIMEOUT:?} (no quorum?)")));
    };
    match written {
        Ok(resp) => Ok(resp.data),
        Err(OpenRaftError::APIError(ClientWriteError::ForwardToLeader(_))) => Err(ProposeError::NoLeader),
        Err(e) => Err(ProposeError::Raft(e.to_string())),
    }
}

async fn write_group(ctx: &Ctx, mut group: Vec<Pending>) {
    let token = group.first().and_then(|p| p.token.clone());
    let (cmd, replies): (Command, Vec<_>) = if group.len() == 1 {
        let Some(p) = group.pop() else { return };
        (p.cmd, vec![p.reply])
    } else {
        let (cmds, replies) = group.into_iter().map(|p| (p.cmd, p.reply)).unzip();
        (Command::Batch(cmds), replies)
    };
    let batched = matches!(cmd, Command::Batch(_));
    let result = commit(ctx, cmd, token).await;
    match result {
        Ok(CommandResponse::Batch(responses)) if batched && responses.len() == replies.len() => {
            for (reply, resp) in replies.into_iter().zip(responses) {
                let _ = reply.send(Ok(resp));
            }
        }
        Ok(resp) if !batched => {
            for reply in replies {
                let _ = reply.send(Ok(resp.clone()));
            }
        }
        Ok(other) => {
            let msg = format!("invariant: batch of {} answered with {other:?}", replies.len());
            for reply in replies {
                let _ = reply.send(Err(ProposeError::Raft(msg.clone())));
            }
        }
        Err(e) => {
            let msg = e.to_string();
            for reply in replies {
                let err = match &e {
                    ProposeError::NoLeader => ProposeError::NoLeader,
                    ProposeError::Invalid(i) => ProposeError::Invalid(i.clone()),
                    ProposeError::Denied(m) => ProposeError::Denied(m.clone()),
                    _ => ProposeError::Raft(msg.clone()),
                };
                let _ = reply.send(Err(err));
            }
        }
    }
}
