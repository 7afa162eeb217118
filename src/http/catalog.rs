//! `/v1/catalog/*`: catalog reads from the snapshot and catalog writes through Raft.
//!
//! Input: path/query/body → output: Consul's catalog JSON (`wire`), or `true` for writes.
//! Invariants: reads are not health-filtered; `?tag=` (repeatable) and `?node-meta=` combine
//! with AND; service reads use the per-service index, other reads the table indexes; an
//! unknown node is `null` with 200; write validation errors are RPC errors (500), as in Consul.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;

use super::enforce;
use super::error::ApiError;
use super::filter::{self, ItemFilter};
use super::query::Query;
use super::token::Acl;
use super::wire::{self, NodeJson, NodeServiceListJson, NodeServicesJson, ServiceJson, ServiceNodeJson};
use super::{ApiState, json, parse_body, rest};
use crate::catalog::Command;
use crate::catalog::{CatalogState, Node, Service};

/// Whether `s` carries every tag in `tags` (case-insensitive, as Consul's tag filter).
pub(crate) fn has_tags(s: &Service, tags: &[&str]) -> bool {
    tags.iter().all(|t| s.tags.iter().any(|st| st.eq_ignore_ascii_case(t)))
}

/// Whether `n` matches every `?node-meta=k:v` filter.
pub(crate) fn has_meta(n: &Node, filters: &[(String, String)]) -> bool {
    filters.iter().all(|(k, v)| n.meta.get(k) == Some(v))
}

/// `/v1/catalog/service/:name` body.
pub(crate) fn service_nodes(
    cat: &CatalogState,
    name: &str,
    tags: &[&str],
    meta: &[(String, String)],
) -> Vec<ServiceNodeJson> {
    cat.service_instances(name)
        .filter(|i| has_tags(&i.service, tags) && has_meta(&i.node, meta))
        .map(|i| ServiceNodeJson::new(&i.node, &i.service))
        .collect()
}

/// `/v1/catalog/services` body: name → union of tags.
pub(crate) fn service_names(cat: &CatalogState, meta: &[(String, String)]) -> BTreeMap<String, Vec<String>> {
    if meta.is_empty() {
        return cat.service_names().collect();
    }
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for n in cat.nodes().filter(|n| has_meta(n, meta)) {
        for s in cat.node_services(&n.name) {
            let tags = out.entry(s.name.clone()).or_default();
            for t in &s.tags {
                if !tags.contains(t) {
                    tags.push(t.clone());
                }
            }
            tags.sort();
        }
    }
    out
}

/// `/v1/catalog/node/:node` body (`None` → `null`).
pub(crate) fn node_services(cat: &CatalogState, node: &str) -> Option<NodeServicesJson> {
    let n = cat.node(node)?;
    let services = cat.node_services(node).map(|s| (s.id.clone(), ServiceJson::catalog(s))).collect();
    Some(NodeServicesJson { node: NodeJson::from(&**n), services })
}

pub(super) async fn register(
    State(st): State<ApiState>,
    acl: Acl,
    body: Bytes,
) -> Result<Response, ApiError> {
    let v = parse_body(&body)?;
    let reg = wire::decode_catalog_register(&v, &st.config.datacenter)?;
    enforce::vet_register(&acl, &st.snapshots.load().catalog, &reg)?;
    st.propose(acl.authority(), Command::Register(reg)).await?;
    Ok(json(&true, false))
}

pub(super) async fn deregister(
    State(st): State<ApiState>,
    acl: Acl,
    body: Bytes,
) -> Result<Response, ApiError> {
    let v = parse_body(&body)?;
    let d = wire::decode_catalog_deregister(&v, &st.config.datacenter)?;
    enforce::vet_deregister(&acl, &st.snapshots.load().catalog, &d)?;
    st.propose(acl.authority(), Command::Deregister(d)).await?;
    Ok(json(&true, false))
}

pub(super) async fn datacenters(State(st): State<ApiState>, RawQuery(q): RawQuery) -> Response {
    let q = Query::parse(q.as_deref());
    json(&known_datacenters(&st).await, q.has("pretty"))
}

/// Every datacenter this agent knows, nearest first (`gossip::pool::by_distance` over a
/// server's WAN pool); without a WAN pool only its own.
pub(super) async fn known_datacenters(st: &ApiState) -> Vec<String> {
    use crate::gossip::Membership as _;
    match &st.wan {
        Some(wan) => {
            let members = wan.members().await;
            crate::gossip::pool::by_distance(
                &st.config.datacenter,
                &wan.coordinate(),
                &members,
                &wan.coordinates(),
            )
        }
        None => vec![st.config.datacenter.clone()],
    }
}

pub(super) async fn nodes(
    State(st): State<ApiState>,
    acl: Acl,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let q = Query::parse(q.as_deref());
    let meta = q.node_meta();
    let filter = ItemFilter::from_query(&q, filter::NODE)?;
    st.try_read(
        &q,
        |s| s.catalog.table_indexes().nodes,
        |cat| {
            filter.retain(enforce::nodes(
                &acl,
                cat.nodes().filter(|n| has_meta(n, &meta)).map(|n| NodeJson::from(&**n)).collect(),
            ))
        },
    )
    .await
}

pub(super) async fn services(
    State(st): State<ApiState>,
    acl: Acl,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let q = Query::parse(q.as_deref());
    let meta = q.node_meta();
    st.read(
        &q,
        |s| s.catalog.table_indexes().services,
        |cat| enforce::service_names(&acl, service_names(cat, &meta)),
    )
    .await
}

pub(super) async fn service(
    State(st): State<ApiState>,
    acl: Acl,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let name = rest(&name);
    let q = Query::parse(q.as_deref());
    let tags = q.all("tag");
    let meta = q.node_meta();
    let filter = ItemFilter::from_query(&q, filter::SERVICE_NODE)?;
    st.try_read(
        &q,
        |s| s.catalog.service_index(name),
        |cat| filter.retain(enforce::service_nodes(&acl, service_nodes(cat, name, &tags, &meta))),
    )
    .await
}

pub(super) async fn node(
    State(st): State<ApiState>,
    acl: Acl,
    Path(node): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    node_view(st, acl, &node, q, |n| n).await
}

/// `/v1/catalog/node-services/` without a node name.
pub(super) async fn missing_node() -> ApiError {
    ApiError::BadRequest("Missing node name".into())
}

/// `/v1/catalog/node-services/:node`: `/v1/catalog/node/:node` with the instances as a list.
pub(super) async fn node_service_list(
    State(st): State<ApiState>,
    acl: Acl,
    Path(node): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let node = rest(&node);
    if node.is_empty() {
        return Err(ApiError::BadRequest("Missing node name".into()));
    }
    node_view(st, acl, node, q, NodeServiceListJson::from).await
}

/// A node's instances (ACL- and `?filter=`-filtered) in the shape `shape` gives them.
async fn node_view<T: serde::Serialize>(
    st: ApiState,
    acl: Acl,
    node: &str,
    q: Option<String>,
    shape: impl FnOnce(Option<NodeServicesJson>) -> T,
) -> Result<Response, ApiError> {
    let q = Query::parse(q.as_deref());
    let index_of = |s: &crate::snapshot::CatalogSnapshot| {
        let t = s.catalog.table_indexes();
        t.nodes.max(t.services)
    };
    let filter = ItemFilter::from_query(&q, filter::NODE_SERVICE)?;
    st.try_read(&q, index_of, |cat| {
        let body = enforce::node_services(&acl, node_services(cat, node))
            .map(|mut n| {
                n.services = filter.retain_map(n.services)?;
                Ok::<_, ApiError>(n)
            })
            .transpose()?;
        Ok(shape(body))
    })
    .await
}
