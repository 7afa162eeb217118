//! Connect's catalog endpoints: `/v1/catalog/connect/:s`, `/v1/health/connect/:s`,
//! `/v1/health/ingress/:s` and `/v1/catalog/gateway-services/:g`, and the sidecar an agent
//! registers from `Connect.SidecarService`.
//!
//! Stage: HTTP reads (and the agent's service registration). Input: path and query -> output:
//! Consul's `[ServiceNode]` / `[CheckServiceNode]` JSON of the Connect-capable instances of a
//! service: proxies whose `Proxy.DestinationServiceName` it is, and its Connect-native
//! instances (`CatalogState::connect_instances`).
//! Invariants: the options are those of the plain catalog and health endpoints (`?tag=`,
//! `?node-meta=`, `?passing`, `?filter=`, blocking on `CatalogState::connect_index`, ACL filtering by
//! `enforce`); an empty name is Consul's 400 `Missing service name` / `Missing gateway name`.
//! Gateways: `/v1/catalog/gateway-services/:g` lists the links of gateway `g`'s config entry
//! (`catalog::gateway::gateway_links`; `null` without an entry, as Consul 1.8.7 [live]), needing
//! `service:read` on the gateway and showing only services the token may read;
//! `/v1/health/ingress/:s` the `ingress-gateway` instances of every ingress gateway linking
//! `s`. Both block on `catalog::gateway::links_index`.
//! Sidecars: `agent::ServiceDefinition::sidecar_for` chooses their port and defaults; an
//! error there is Consul's 400 `Invalid SidecarService: …`.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use axum::routing::get;

use super::catalog::{has_meta, has_tags};
use super::enforce;
use super::error::ApiError;
use super::filter::{self, ItemFilter};
use super::gateway::GatewayServiceJson;
use super::query::Query;
use super::token::Acl;
use super::token::require;
use super::wire::{ServiceEntryJson, ServiceNodeJson};
use super::{ApiState, rest};
use crate::agent::ServiceDefinition;
use crate::catalog::CatalogState;
use crate::catalog::gateway::{gateway_links, ingress_gateways_of, links_index};

fn name_of<'a>(path: &'a str, what: &str) -> Result<&'a str, ApiError> {
    let name = rest(path);
    if name.is_empty() { Err(ApiError::BadRequest(format!("Missing {what} name"))) } else { Ok(name) }
}

/// `/v1/catalog/connect/:name` body.
pub(crate) fn connect_nodes(
    cat: &CatalogState,
    name: &str,
    tags: &[&str],
    meta: &[(String, String)],
) -> Vec<ServiceNodeJson> {
    cat.connect_instances(name)
        .filter(|i| has_tags(&i.service, tags) && has_meta(&i.node, meta))
        .map(|i| ServiceNodeJson::new(&i.node, &i.service))
        .collect()
}

/// `/v1/health/connect/:name` body.
pub(crate) fn connect_entries(
    cat: &CatalogState,
    name: &str,
    tags: &[&str],
    meta: &[(String, String)],
    passing_only: bool,
) -> Vec<ServiceEntryJson> {
    super::health::entries(cat, cat.connect_instances(name), tags, meta, passing_only)
}

/// The Connect endpoints (an empty name gets Consul's 400, not a 404).
pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/catalog/connect/", get(missing_service))
        .route("/v1/catalog/connect/{*name}", get(catalog_connect))
        .route("/v1/catalog/gateway-services/", get(missing_gateway))
        .route("/v1/catalog/gateway-services/{*name}", get(gateway_services))
        .route("/v1/health/connect/", get(missing_service))
        .route("/v1/health/connect/{*name}", get(health_connect))
        .route("/v1/health/ingress/", get(missing_service))
        .route("/v1/health/ingress/{*name}", get(health_ingress))
}

/// A Connect or ingress lookup without a service name.
pub(super) async fn missing_service() -> ApiError {
    ApiError::BadRequest("Missing service name".into())
}

/// A gateway-services lookup without a gateway name.
pub(super) async fn missing_gateway() -> ApiError {
    ApiError::BadRequest("Missing gateway name".into())
}

pub(super) async fn catalog_connect(
    State(st): State<ApiState>,
    acl: Acl,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let name = name_of(&name, "service")?;
    let q = Query::parse(q.as_deref());
    let tags = q.all("tag");
    let meta = q.node_meta();
    let filter = ItemFilter::from_query(&q, filter::SERVICE_NODE)?;
    st.try_read(
        &q,
        |s| s.catalog.connect_index(name),
        |cat| filter.retain(enforce::service_nodes(&acl, connect_nodes(cat, name, &tags, &meta))),
    )
    .await
}

pub(super) async fn health_connect(
    State(st): State<ApiState>,
    acl: Acl,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let name = name_of(&name, "service")?;
    let q = Query::parse(q.as_deref());
    let passing = q.flag("passing")?;
    let tags = q.all("tag");
    let meta = q.node_meta();
    let filter = ItemFilter::from_query(&q, filter::CHECK_SERVICE_NODE)?;
    st.try_read(
        &q,
        |s| s.catalog.connect_index(name),
        |cat| {
            filter.retain(enforce::service_entries(&acl, connect_entries(cat, name, &tags, &meta, passing)))
        },
    )
    .await
}

/// `/v1/health/ingress/:name` body: the ingress-gateway instances exposing `name`.
pub(crate) fn ingress_entries(
    cat: &CatalogState,
    name: &str,
    tags: &[&str],
    meta: &[(String, String)],
    passing_only: bool,
) -> Vec<ServiceEntryJson> {
    ingress_gateways_of(cat, name)
        .iter()
        .flat_map(|g| super::health::service_entries(cat, g, tags, meta, passing_only))
        .filter(|e| e.service.kind == crate::catalog::mesh::KIND_INGRESS_GATEWAY)
        .collect()
}

pub(super) async fn health_ingress(
    State(st): State<ApiState>,
    acl: Acl,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let name = name_of(&name, "service")?;
    let q = Query::parse(q.as_deref());
    let passing = q.flag("passing")?;
    let tags = q.all("tag");
    let meta = q.node_meta();
    let filter = ItemFilter::from_query(&q, filter::CHECK_SERVICE_NODE)?;
    st.try_read(
        &q,
        |s| match links_index(&s.catalog) {
            0 => 0,
            i => i.max(s.catalog.table_indexes().checks).max(s.catalog.table_indexes().nodes),
        },
        |cat| {
            filter.retain(enforce::service_entries(&acl, ingress_entries(cat, name, &tags, &meta, passing)))
        },
    )
    .await
}

pub(super) async fn gateway_services(
    State(st): State<ApiState>,
    acl: Acl,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let name = name_of(&name, "gateway")?;
    require(acl.service_read(name))?;
    let q = Query::parse(q.as_deref());
    st.read(
        &q,
        |s| links_index(&s.catalog),
        |cat| {
            gateway_links(cat, name).map(|links| {
                let visible = links.into_iter().filter(|g| acl.service_read(&g.service));
                visible.map(GatewayServiceJson::from).collect::<Vec<_>>()
            })
        },
    )
    .await
}

/// The ID of the sidecar of instance `id` (Consul's `<id>-sidecar-proxy`).
pub(crate) fn sidecar_id(id: &str) -> String {
    crate::agent::sidecar_id(id)
}

/// The sidecar definition `def`'s `Connect.SidecarService` asks for, with Consul's defaults
/// and its port chosen; `None` without one.
pub(crate) fn sidecar_of(
    st: &ApiState,
    def: &ServiceDefinition,
) -> Result<Option<ServiceDefinition>, ApiError> {
    let cat = &st.snapshots.load().catalog;
    def.sidecar_for(cat, &st.config.node_name, &[]).map_err(|e| ApiError::BadRequest(e.to_string()))
}
