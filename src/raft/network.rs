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
use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

use super::TypeConfig;
use crate::rpc::{CallError, Pool, Request, Response};

/// Creates `Network` clients sharing one connection pool.
#[derive(Debug, Clone, Default)]
pub(crate) struct NetworkFactory {
    pool: Arc<Pool>,
}

impl NetworkFactory {
    /// A factory whose clients use `pool`.
    pub(crate) fn new(pool: Arc<Pool>) -> Self {
        Self { pool }
    }
}

/// A client for one target server.
#[derive(Debug, Clone)]
pub(crate) struct Network {
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
        self.pool.call(&self.addr, &req, option.hard_ttl()).await.map_err(Self::call_error)
    }

    fn call_error<E: std::error::Error>(e: CallError) -> RPCError<u64, BasicNode, E> {
        match e {
            CallError::Connect { .. } => RPCError::Unreachable(Unreachable::new(&e)),
            other => RPCError::Network(NetworkError::new(&other)),
        }
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
        let entries = rpc.entries.len();
        let result =
            self.pool.call(&self.addr, &Request::AppendEntries(Box::new(rpc)), option.hard_ttl()).await;
        match result {
            Ok(Response::AppendEntries(r)) => r.map_err(|e| self.remote(e)),
            Ok(_) => Err(self.protocol()),
            // Too many large entries for one frame: openraft retries with fewer (at least one;
            // a single entry is bounded by the HTTP body limits).
            Err(CallError::TooLarge { .. }) if entries > 1 => {
                let hint = u64::try_from(entries / 2).unwrap_or(1).max(1);
                Err(RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint(hint)))
            }
            Err(e) => Err(Self::call_error(e)),
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
