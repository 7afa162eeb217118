//! Consul's shared JSON wire types: catalog model → response JSON, request JSON → catalog
//! commands.
//!
//! Input: `catalog` records (and catalog register/deregister, check update and prepared-query
//! bodies) → output: serde structs with Consul's exact PascalCase field names, or `raft`
//! commands.
//! Consul's JSON shapes live in the HTTP layer: the shapes several endpoints share are here;
//! an endpoint's own shapes live beside its handler (`kv`, `session`, `txn`, `agent`'s
//! `/v1/agent/self`, `agent_health`, `metrics`); the agent's service and check definitions are
//! decoded by `agent` (the config files use them too).
//! Invariants: lists are never `null` (`ServiceTags`, `Tags`, `Checks` are `[]` when empty);
//! maps are `{}` when empty; durations are Go duration strings; request field names match
//! case-insensitively and an unknown field is an error naming it.
//!
//! Files: `catalog` (node, service, check and health shapes), `query` (prepared queries and
//! their decoder), `decode` (catalog register/deregister and check update decoders),
//! `operator` (Raft configuration and gossip members), `mesh` (the Connect blocks).

mod catalog;
mod decode;
mod mesh;
mod operator;
mod query;

pub(crate) use catalog::{
    HealthCheckJson, NodeJson, NodeServiceListJson, NodeServicesJson, ServiceEntryJson, ServiceJson,
    ServiceNodeJson,
};
pub(crate) use decode::{
    decode_catalog_deregister, decode_catalog_register, decode_check_update, decode_txn_service,
};
pub(crate) use operator::{MemberJson, RaftConfigurationJson, RaftServerJson};
pub(crate) use query::{
    PreparedQueryJson, QueryDnsJson, QueryExecuteJson, QueryIdJson, decode_prepared_query,
};

use super::error::ApiError;

fn rpc(msg: impl Into<String>) -> ApiError {
    ApiError::Internal(msg.into())
}
