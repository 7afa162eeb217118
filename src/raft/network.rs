//! RAFT NETWORK: openraft's `RaftNetworkFactory` / `RaftNetwork`.
//!
//! Input: RPCs openraft wants to send to other voters. Output: their responses.
//!
//! Invariant: this server runs a single-voter cluster for now, so no RPC is ever needed for
//! progress. A real transport on the server RPC port is a later issue; until then EVERY RPC
//! fails with `Unreachable` (never a fake success), so a misconfigured multi-voter membership
//! cannot elect a leader or commit anything on this node's behalf.

use openraft::BasicNode;
use openraft::error::{InstallSnapshotError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

use super::TypeConfig;

/// Why every RPC fails.
#[derive(Debug, thiserror::Error)]
#[error("raft RPC to node {target} ({addr}) not sent: no Raft transport yet (single-voter cluster)")]
pub struct NoTransport {
    target: u64,
    addr: String,
}

/// Creates `Network` clients; every client's RPCs return `Unreachable`.
#[derive(Debug, Clone, Default)]
pub struct NetworkFactory;

/// A client for one target node. There is no transport yet: every RPC returns
/// `RPCError::Unreachable` (openraft backs off and retries later).
#[derive(Debug, Clone)]
pub struct Network {
    target: u64,
    addr: String,
}

impl Network {
    fn unreachable<E: std::error::Error>(&self) -> RPCError<u64, BasicNode, E> {
        let e = NoTransport { target: self.target, addr: self.addr.clone() };
        RPCError::Unreachable(Unreachable::new(&e))
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = Network;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Self::Network {
        Network { target, addr: node.addr.clone() }
    }
}

impl RaftNetwork<TypeConfig> for Network {
    /// Always `Unreachable`: no transport yet.
    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        Err(self.unreachable())
    }

    /// Always `Unreachable`: no transport yet.
    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>>
    {
        Err(self.unreachable())
    }

    /// Always `Unreachable`: no transport yet.
    async fn vote(
        &mut self,
        _rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        Err(self.unreachable())
    }
}
