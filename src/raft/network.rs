//! RAFT NETWORK: openraft's `RaftNetworkFactory` / `RaftNetwork` over the server RPC
//! protocol (`crate::rpc`).
//!
//! Input: RPCs openraft wants to send to other servers. Output: their responses.
//!
//! Invariants: every call is bounded by openraft's hard TTL; a server that cannot be reached
//! is `Unreachable` (openraft backs off), a failed exchange is a `Network` error, and an error
//! the remote Raft returned is a `RemoteError` — never a fake success.

use std::sync::Arc;

use openraft::BasicNode;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

use super::TypeConfig;
use crate::rpc::{CallError, Pool, Request, Response};

/// Creates `Network` clients sharing one connection pool.
#[derive(Debug, Clone, Default)]
pub struct NetworkFactory {
    pool: Arc<Pool>,
}

impl NetworkFactory {
    /// A factory whose clients use `pool`.
    pub fn new(pool: Arc<Pool>) -> Self {
        Self { pool }
    }
}

/// A client for one target server.
#[derive(Debug, Clone)]
pub struct Network {
    target: u64,
    addr: String,
    pool: Arc<Pool>,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = Network;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Self::Network {
        Network { target, addr: node.addr.clone(), pool: self.pool.clone() }
    }
}

impl Network {
    async fn call<E: std::error::Error>(
        &self,
        req: Request,
        option: &RPCOption,
    ) -> Result<Response, RPCError<u64, BasicNode, E>> {
        self.pool.call(&self.addr, &req, option.hard_ttl()).await.map_err(|e| match e {
            CallError::Connect { .. } => RPCError::Unreachable(Unreachable::new(&e)),
            other => RPCError::Network(NetworkError::new(&other)),
        })
    }

    fn remote<E: std::error::Error>(&self, e: E) -> RPCError<u64, BasicNode, E> {
        RPCError::RemoteError(RemoteError::new_with_node(self.target, BasicNode::new(&self.addr), e))
    }

    fn protocol<E: std::error::Error>(&self) -> RPCError<u64, BasicNode, E> {
        RPCError::Network(NetworkError::new(&CallError::Protocol { addr: self.addr.clone() }))
    }
}

impl RaftNetwork<TypeConfig> for Network {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        match self.call(Request::AppendEntries(Box::new(rpc)), &option).await? {
            Response::AppendEntries(r) => r.map_err(|e| self.remote(e)),
            _ => Err(self.protocol()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>>
    {
        match self.call(Request::InstallSnapshot(Box::new(rpc)), &option).await? {
            Response::InstallSnapshot(r) => r.map_err(|e| self.remote(e)),
            _ => Err(self.protocol()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        match self.call(Request::Vote(rpc), &option).await? {
            Response::Vote(r) => r.map_err(|e| self.remote(e)),
            _ => Err(self.protocol()),
        }
    }
}
