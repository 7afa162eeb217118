//! ACL ENFORCEMENT for catalog-shaped data: what a token may write, and which rows of a read
//! it may see (spec §1.6).
//!
//! Input: the request's `Authorizer`, a catalog write (`Registration`, `Deregistration`) with
//! the snapshot it changes, or the JSON rows of a catalog or health read → output: `Ok` or 403
//! `Permission denied`; the rows the token may see.
//!
//! Invariants: writes are vetted before they are proposed, against the catalog they would
//! change (Consul's `vetRegisterWithACL` / `vetDeregisterWithACL`); reads are filtered after
//! any blocking wait, so a blocking query still blocks and keeps its `X-Consul-Index`; a row
//! naming a node and a service needs `node:read` and `service:read`; a check without a
//! service needs only `node:read`. Filtering is silent: no header, no error.

use std::collections::BTreeMap;

use super::error::ApiError;
use super::wire::{HealthCheckJson, NodeJson, NodeServicesJson, ServiceEntryJson, ServiceNodeJson};
use crate::acl::Authorizer;
use crate::acl_state::permission::{self, Refusal};
use crate::catalog::{CatalogState, Deregistration, Registration};

/// Vets a catalog registration (`acl_state::permission::vet_register`, the rules a server
/// checks a forwarded one with).
pub(crate) fn vet_register(a: &Authorizer, cat: &CatalogState, reg: &Registration) -> Result<(), ApiError> {
    permission::vet_register(a, cat, reg).map_err(ApiError::from)
}

/// Vets a catalog deregistration (`acl_state::permission::vet_deregister`).
pub(crate) fn vet_deregister(a: &Authorizer, cat: &CatalogState, d: &Deregistration) -> Result<(), ApiError> {
    permission::vet_deregister(a, cat, d).map_err(ApiError::from)
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Denied | Refusal::Txn(_) => Self::denied(),
            Refusal::Unknown(text) => Self::Internal(text),
        }
    }
}

/// Whether a check row is visible: `node:read`, and `service:read` for a service check.
pub(crate) fn check_visible(a: &Authorizer, node: &str, service_name: &str) -> bool {
    a.node_read(node) && (service_name.is_empty() || a.service_read(service_name))
}

/// `/v1/catalog/nodes`: `node:read` per node.
pub(crate) fn nodes(a: &Authorizer, mut rows: Vec<NodeJson>) -> Vec<NodeJson> {
    rows.retain(|n| a.node_read(&n.node));
    rows
}

/// `/v1/catalog/services`: `service:read` per name.
pub(crate) fn service_names(
    a: &Authorizer,
    mut names: BTreeMap<String, Vec<String>>,
) -> BTreeMap<String, Vec<String>> {
    names.retain(|name, _| a.service_read(name));
    names
}

/// `/v1/catalog/service/:s`: `node:read` and `service:read` per row.
pub(crate) fn service_nodes(a: &Authorizer, mut rows: Vec<ServiceNodeJson>) -> Vec<ServiceNodeJson> {
    rows.retain(|r| a.node_read(&r.node) && a.service_read(&r.service_name));
    rows
}

/// `/v1/health/service/:s`: `node:read` and `service:read` per entry; its checks likewise.
pub(crate) fn service_entries(a: &Authorizer, mut rows: Vec<ServiceEntryJson>) -> Vec<ServiceEntryJson> {
    rows.retain(|e| a.node_read(&e.node.node) && a.service_read(&e.service.service));
    for e in &mut rows {
        e.checks.retain(|c| check_visible(a, &c.node, &c.service_name));
    }
    rows
}

/// `/v1/health/{checks,state,node}`: `node:read`, and `service:read` for service checks.
pub(crate) fn checks(a: &Authorizer, mut rows: Vec<HealthCheckJson>) -> Vec<HealthCheckJson> {
    rows.retain(|c| check_visible(a, &c.node, &c.service_name));
    rows
}

/// `/v1/catalog/node/:n`: `null` without `node:read`, else its services with `service:read`.
pub(crate) fn node_services(a: &Authorizer, body: Option<NodeServicesJson>) -> Option<NodeServicesJson> {
    let mut body = body.filter(|b| a.node_read(&b.node.node))?;
    body.services.retain(|_, s| a.service_read(&s.service));
    Some(body)
}
