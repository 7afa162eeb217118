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
use super::token::require;
use super::wire::{HealthCheckJson, NodeJson, NodeServicesJson, ServiceEntryJson, ServiceNodeJson};
use crate::acl::Authorizer;
use crate::catalog::{CatalogState, Deregistration, Node, Registration};

/// Vets a catalog registration: `node:write` when it changes the node, `service:write` on the
/// service (and on the name it replaces), and on each check's service, or `node:write` for a
/// node check.
pub(crate) fn vet_register(a: &Authorizer, cat: &CatalogState, reg: &Registration) -> Result<(), ApiError> {
    let node = &reg.node.name;
    if !reg.skip_node_update && changes_node(cat.node(node).map(|n| &**n), &reg.node) {
        require(a.node_write(node))?;
    }
    if let Some(s) = &reg.service {
        require(a.service_write(&s.name))?;
        if let Some(old) = cat.service(node, &s.id).filter(|old| old.name != s.name) {
            require(a.service_write(&old.name))?;
        }
    }
    for c in &reg.checks {
        if c.service_id.is_empty() {
            require(a.node_write(node))?;
            continue;
        }
        let name = match &reg.service {
            Some(s) if s.id.eq_ignore_ascii_case(&c.service_id) => Some(s.name.as_str()),
            _ => cat.service(node, &c.service_id).map(|s| s.name.as_str()),
        };
        // A check on an unknown service is refused by validation; it needs no rule here.
        if let Some(name) = name {
            require(a.service_write(name))?;
        }
        if let Some(old) = cat.check(node, &c.check_id).filter(|old| !old.service_name.is_empty()) {
            require(a.service_write(&old.service_name))?;
        }
    }
    Ok(())
}

/// Whether registering `new` changes what the catalog holds for the node (or creates it).
fn changes_node(old: Option<&Node>, new: &Node) -> bool {
    old.is_none_or(|old| {
        old.address != new.address
            || old.tagged_addresses != new.tagged_addresses
            || old.meta != new.meta
            || (!new.id.is_empty() && old.id != new.id)
    })
}

/// Vets a catalog deregistration as Consul's `vetDeregisterWithACL` does: `node:write` on
/// the node allows anything on it; otherwise a service (or a service's check) needs
/// `service:write`, a node check `node:write`, and an unknown service or check is Consul's 500
/// `Unknown service 'x'` / `Unknown check 'x'` [live on 1.8.7].
pub(crate) fn vet_deregister(a: &Authorizer, cat: &CatalogState, d: &Deregistration) -> Result<(), ApiError> {
    if a.node_write(&d.node) {
        return Ok(());
    }
    if let Some(id) = &d.service_id {
        let s =
            cat.service(&d.node, id).ok_or_else(|| ApiError::Internal(format!("Unknown service '{id}'")))?;
        return require(a.service_write(&s.name));
    }
    if let Some(id) = &d.check_id {
        let c = cat.check(&d.node, id).ok_or_else(|| ApiError::Internal(format!("Unknown check '{id}'")))?;
        return require(!c.service_id.is_empty() && a.service_write(&c.service_name));
    }
    Err(ApiError::denied())
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
