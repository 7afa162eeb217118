//! CONSENSUS: openraft 0.9 (`storage-v2`) wiring for the catalog.
//!
//! WRITE  HTTP -> `RaftHandle::propose(Command)` -> openraft log (LMDB, fsynced, batched)
//!        -> commit -> `state_machine` applies the batch in one LMDB write transaction
//!        -> `SnapshotHandle::publish` -> DNS sees it.
//!
//! Files: `command` (the log payload), `apply` (pure transition), `log_store` (RaftLogStorage
//! on LMDB), `state_machine` (RaftStateMachine on LMDB + publish), `network` (RaftNetwork).

pub mod apply;
pub mod command;

pub use command::{CheckUpdate, Command, CommandResponse, Deregistration, Registration};

/// Why a proposal did not produce a `CommandResponse`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProposeError {
    /// This server is not the leader and the leader is unknown or unreachable.
    #[error("no cluster leader")]
    NoLeader,
    /// Raft or its storage failed; the write may or may not have been committed.
    #[error("raft: {0}")]
    Raft(String),
}

/// Cheap-to-clone handle for proposing commands and reading Raft's view of the cluster.
#[derive(Clone)]
pub struct RaftHandle {
    // filled in by the raft implementation
}

impl RaftHandle {
    /// Proposes `cmd` and waits until it is committed and applied locally.
    pub async fn propose(&self, cmd: Command) -> Result<CommandResponse, ProposeError> {
        let _ = cmd;
        Err(ProposeError::NoLeader)
    }

    /// The leader's Raft RPC address (`ip:port`), if one is known.
    pub fn leader_addr(&self) -> Option<String> {
        None
    }

    /// Raft RPC addresses of the voters.
    pub fn peer_addrs(&self) -> Vec<String> {
        Vec::new()
    }

    /// Milliseconds since this server last heard from the leader (0 on the leader).
    pub fn last_contact_ms(&self) -> u64 {
        0
    }

    /// Whether this server currently knows a leader.
    pub fn known_leader(&self) -> bool {
        false
    }

    /// Raft index of the last entry applied locally.
    pub fn applied_index(&self) -> u64 {
        0
    }
}
