//! `?filter=` on Consul's list endpoints: the schema of each endpoint's items (Consul 1.8.7's
//! struct fields, as go-bexpr derives them) and the step that drops the items a filter rejects.
//!
//! Input: the query and an endpoint's items as they are about to be encoded → output: the
//! items that match, in their order (maps keep their keys). Invariants: an empty or absent
//! `?filter=` changes nothing; an invalid expression is Consul's 500 `Failed to create boolean
//! expression evaluator: <go-bexpr's text>`, found before any blocking wait (Consul creates the
//! filter before its blocking query), so a blocking read with a filter keeps the unfiltered
//! data's index; `/v1/agent/checks` alone validates selectors only once it has a check to
//! evaluate, and then without the prefix, as Consul 1.8.7 does (it creates that filter without
//! a type). Filtering runs after ACL filtering, as in Consul; both only drop items.

use std::collections::BTreeMap;

use serde::Serialize;

use super::error::ApiError;
use super::query::Query;
use crate::filter::{self, Expr, Field, Kind};

/// The prefix bexpr.CreateFilter puts on every error.
const CREATE_FAILED: &str = "Failed to create boolean expression evaluator: ";

const ADDRESS: &[Field] = &[Field::new("Address", Kind::Str), Field::new("Port", Kind::Int)];
const WEIGHTS: &[Field] = &[Field::new("Passing", Kind::Int), Field::new("Warning", Kind::Int)];
const MESH_GATEWAY: &[Field] = &[Field::new("Mode", Kind::Str)];
const EXPOSE_PATH: &[Field] = &[
    Field::new("ListenerPort", Kind::Int),
    Field::new("Path", Kind::Str),
    Field::new("LocalPathPort", Kind::Int),
    Field::new("Protocol", Kind::Str),
    Field::new("ParsedFromCheck", Kind::Bool),
];
const EXPOSE: &[Field] = &[Field::new("Checks", Kind::Bool), Field::new("Paths", Kind::List(EXPOSE_PATH))];
const UPSTREAM: &[Field] = &[
    Field::new("DestinationType", Kind::Str),
    Field::new("DestinationNamespace", Kind::Str),
    Field::new("DestinationName", Kind::Str),
    Field::new("Datacenter", Kind::Str),
    Field::new("LocalBindAddress", Kind::Str),
    Field::new("LocalBindPort", Kind::Int),
    Field::new("MeshGateway", Kind::Struct(MESH_GATEWAY)),
];
/// `ConnectProxyConfig` (and the API's `AgentServiceConnectProxyConfig`).
const PROXY: &[Field] = &[
    Field::new("DestinationServiceName", Kind::Str),
    Field::new("DestinationServiceID", Kind::Str),
    Field::new("LocalServiceAddress", Kind::Str),
    Field::new("LocalServicePort", Kind::Int),
    Field::new("Upstreams", Kind::List(UPSTREAM)),
    Field::new("MeshGateway", Kind::Struct(MESH_GATEWAY)),
    Field::new("Expose", Kind::Struct(EXPOSE)),
];
const CONNECT: &[Field] = &[Field::new("Native", Kind::Bool)];

/// `structs.Node`: `/v1/catalog/nodes`, `Node` of `/v1/health/service`.
pub(crate) const NODE: &[Field] = &[
    Field::new("ID", Kind::Str),
    Field::new("Node", Kind::Str),
    Field::new("Address", Kind::Str),
    Field::new("Datacenter", Kind::Str),
    Field::new("TaggedAddresses", Kind::Map(&Kind::Str)),
    Field::new("Meta", Kind::Map(&Kind::Str)),
];

/// The fields `structs.NodeService` and `api.AgentService` share, with the last two (`Proxy`,
/// `Connect`) values in the one and nil-able pointers in the other.
macro_rules! service_fields {
    ($proxy:expr, $connect:expr) => {
        &[
            Field::new("Kind", Kind::Str),
            Field::new("ID", Kind::Str),
            Field::new("Service", Kind::Str),
            Field::new("Tags", Kind::StrList),
            Field::new("Address", Kind::Str),
            Field::new("TaggedAddresses", Kind::Map(&Kind::Struct(ADDRESS))),
            Field::new("Meta", Kind::Map(&Kind::Str)),
            Field::new("Port", Kind::Int),
            Field::new("Weights", Kind::Struct(WEIGHTS)),
            Field::new("EnableTagOverride", Kind::Bool),
            Field::new("Proxy", $proxy),
            Field::new("Connect", $connect),
        ]
    };
}

/// `structs.NodeService`: the services of `/v1/catalog/node/:node`, `Service` of
/// `/v1/health/service`.
pub(crate) const NODE_SERVICE: &[Field] = service_fields!(Kind::Struct(PROXY), Kind::Struct(CONNECT));

/// `api.AgentService`: `/v1/agent/services` (`Proxy` is set only on proxies and gateways,
/// `Connect` only on Connect-native services).
pub(crate) const AGENT_SERVICE: &[Field] = service_fields!(Kind::Nullable(PROXY), Kind::Nullable(CONNECT));

/// `structs.ServiceNode`: `/v1/catalog/service/:name` and `/v1/catalog/connect/:name`.
pub(crate) const SERVICE_NODE: &[Field] = &[
    Field::new("ID", Kind::Str),
    Field::new("Node", Kind::Str),
    Field::new("Address", Kind::Str),
    Field::new("Datacenter", Kind::Str),
    Field::new("TaggedAddresses", Kind::Map(&Kind::Str)),
    Field::new("NodeMeta", Kind::Map(&Kind::Str)),
    Field::new("ServiceKind", Kind::Str),
    Field::new("ServiceID", Kind::Str),
    Field::new("ServiceName", Kind::Str),
    Field::new("ServiceTags", Kind::StrList),
    Field::new("ServiceAddress", Kind::Str),
    Field::new("ServiceTaggedAddresses", Kind::Map(&Kind::Struct(ADDRESS))),
    Field::new("ServiceWeights", Kind::Struct(WEIGHTS)),
    Field::new("ServiceMeta", Kind::Map(&Kind::Str)),
    Field::new("ServicePort", Kind::Int),
    Field::new("ServiceEnableTagOverride", Kind::Bool),
    Field::new("ServiceProxy", Kind::Struct(PROXY)),
    Field::new("ServiceConnect", Kind::Struct(CONNECT)),
];

/// `structs.HealthCheck`: `/v1/agent/checks`, `/v1/health/node/:node`,
/// `/v1/health/checks/:service`, `/v1/health/state/:state`.
pub(crate) const HEALTH_CHECK: &[Field] = &[
    Field::new("Node", Kind::Str),
    Field::new("CheckID", Kind::Str),
    Field::new("Name", Kind::Str),
    Field::new("Status", Kind::Str),
    Field::new("Notes", Kind::Str),
    Field::new("Output", Kind::Str),
    Field::new("ServiceID", Kind::Str),
    Field::new("ServiceName", Kind::Str),
    Field::new("ServiceTags", Kind::StrList),
    Field::new("Type", Kind::Str),
];

/// `structs.CheckServiceNode`: `/v1/health/service/:name` (and its connect and ingress forms).
pub(crate) const CHECK_SERVICE_NODE: &[Field] = &[
    Field::new("Node", Kind::Struct(NODE)),
    Field::new("Service", Kind::Struct(NODE_SERVICE)),
    Field::new("Checks", Kind::List(HEALTH_CHECK)),
];

/// A request's `?filter=`, ready to drop the items it rejects.
#[derive(Debug)]
pub(crate) enum ItemFilter {
    /// No `?filter=` (or an empty one).
    All,
    /// Validated against the endpoint's items.
    Ready(filter::Filter),
    /// Parsed only; validated against the schema at the first item (`/v1/agent/checks`).
    Deferred(Expr, &'static [Field]),
}

impl ItemFilter {
    /// The `?filter=` of `q` for items of `schema`, validated now (Consul's
    /// `bexpr.CreateFilter(expr, nil, items)`).
    pub(crate) fn from_query(q: &Query, schema: &'static [Field]) -> Result<Self, ApiError> {
        let Some(text) = q.get("filter").filter(|t| !t.is_empty()) else {
            return Ok(Self::All);
        };
        let expr = filter::parse(text).map_err(created)?;
        filter::compile(&expr, schema).map(Self::Ready).map_err(created)
    }

    /// The `?filter=` of `q`, parsed now and validated against `schema` only when there is an
    /// item to evaluate (Consul's `bexpr.CreateFilter(expr, nil, nil)` of `/v1/agent/checks`).
    pub(crate) fn deferred_from_query(q: &Query, schema: &'static [Field]) -> Result<Self, ApiError> {
        let Some(text) = q.get("filter").filter(|t| !t.is_empty()) else {
            return Ok(Self::All);
        };
        let expr = filter::parse(text).map_err(created)?;
        Ok(Self::Deferred(expr, schema))
    }

    /// The items of `items` that match, in order.
    pub(crate) fn retain<T: Serialize>(&self, items: Vec<T>) -> Result<Vec<T>, ApiError> {
        let Some(f) = self.ready(!items.is_empty())? else {
            return Ok(items);
        };
        let mut kept = Vec::with_capacity(items.len());
        for item in items {
            if matches(&f, &item)? {
                kept.push(item);
            }
        }
        Ok(kept)
    }

    /// The entries of `items` whose values match.
    pub(crate) fn retain_map<T: Serialize>(
        &self,
        items: BTreeMap<String, T>,
    ) -> Result<BTreeMap<String, T>, ApiError> {
        let Some(f) = self.ready(!items.is_empty())? else {
            return Ok(items);
        };
        let mut kept = BTreeMap::new();
        for (k, item) in items {
            if matches(&f, &item)? {
                kept.insert(k, item);
            }
        }
        Ok(kept)
    }

    /// The filter to run, validating a deferred one when there are items.
    fn ready(&self, any_items: bool) -> Result<Option<std::borrow::Cow<'_, filter::Filter>>, ApiError> {
        Ok(match self {
            Self::All => None,
            Self::Ready(f) => Some(std::borrow::Cow::Borrowed(f)),
            Self::Deferred(..) if !any_items => None,
            Self::Deferred(expr, schema) => {
                Some(std::borrow::Cow::Owned(filter::compile(expr, schema).map_err(ApiError::Internal)?))
            }
        })
    }
}

fn created(msg: String) -> ApiError {
    ApiError::Internal(format!("{CREATE_FAILED}{msg}"))
}

fn matches<T: Serialize>(f: &filter::Filter, item: &T) -> Result<bool, ApiError> {
    let value = serde_json::to_value(item)
        .map_err(|e| ApiError::Internal(format!("failed to encode an item to filter: {e}")))?;
    f.matches(&value).map_err(|e| ApiError::Internal(e.to_string()))
}

#[cfg(test)]
mod tests;
