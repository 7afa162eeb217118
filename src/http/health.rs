//! `/v1/health/*`: instances with their checks, and check lists, from the snapshot.
//!
//! Input: path/query → output: `[ServiceEntry]` or `[HealthCheck]` JSON.
//! Invariants: `?passing` drops every instance with any non-passing check (node-level or its
//! own; a warning drops it too, unlike DNS); `?tag=` combines with AND; service endpoints use
//! the per-service index, node and state endpoints the checks table index; an unknown state
//! yields `[]`.

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;

use super::catalog::{has_meta, has_tags};
use super::enforce;
use super::error::ApiError;
use super::filter::{self, ItemFilter};
use super::query::Query;
use super::token::Acl;
use super::wire::{HealthCheckJson, NodeJson, ServiceEntryJson, ServiceJson};
use super::{ApiState, rest};
use crate::catalog::{CatalogState, HealthStatus, Instance};
use crate::snapshot::CatalogSnapshot;

/// `/v1/health/service/:name` body.
pub(crate) fn service_entries(
    cat: &CatalogState,
    name: &str,
    tags: &[&str],
    meta: &[(String, String)],
    passing_only: bool,
) -> Vec<ServiceEntryJson> {
    entries(cat, cat.service_instances(name), tags, meta, passing_only)
}

/// Health entries (`CheckServiceNode`) of `instances` with the given tags and node meta;
/// with `passing_only`, those whose every check passes.
pub(crate) fn entries(
    cat: &CatalogState,
    instances: impl Iterator<Item = Instance>,
    tags: &[&str],
    meta: &[(String, String)],
    passing_only: bool,
) -> Vec<ServiceEntryJson> {
    instances
        .filter(|i| has_tags(&i.service, tags) && has_meta(&i.node, meta))
        .filter_map(|i| {
            let checks: Vec<_> = cat.instance_checks(&i.node.name, &i.service.id).collect();
            if passing_only && checks.iter().any(|c| c.status != HealthStatus::Passing) {
                return None;
            }
            Some(ServiceEntryJson {
                node: NodeJson::from(&*i.node),
                service: ServiceJson::catalog(&i.service),
                checks: checks.into_iter().map(|c| HealthCheckJson::from(&**c)).collect(),
            })
        })
        .collect()
}

/// `/v1/health/checks/:service` body: the checks of every instance of the service.
pub(crate) fn service_checks(
    cat: &CatalogState,
    name: &str,
    meta: &[(String, String)],
) -> Vec<HealthCheckJson> {
    cat.service_instances(name)
        .filter(|i| has_meta(&i.node, meta))
        .flat_map(|i| {
            cat.node_checks(&i.node.name)
                .filter(|c| c.service_id.eq_ignore_ascii_case(&i.service.id))
                .map(|c| HealthCheckJson::from(&**c))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `/v1/health/state/:state` body.
pub(crate) fn state_checks(cat: &CatalogState, state: &str) -> Vec<HealthCheckJson> {
    let wanted = match state {
        "any" => None,
        s => match HealthStatus::parse(s) {
            Some(st) => Some(st),
            None => return Vec::new(),
        },
    };
    cat.checks()
        .filter(|c| wanted.is_none_or(|w| c.status == w))
        .map(|c| HealthCheckJson::from(&**c))
        .collect()
}

fn checks_index(s: &CatalogSnapshot) -> u64 {
    let t = s.catalog.table_indexes();
    t.checks.max(t.nodes)
}

pub(super) async fn service(
    State(st): State<ApiState>,
    acl: Acl,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let name = rest(&name);
    let q = Query::parse(q.as_deref());
    let passing = q.flag("passing")?;
    let tags = q.all("tag");
    let meta = q.node_meta();
    let filter = ItemFilter::from_query(&q, filter::CHECK_SERVICE_NODE)?;
    st.try_read(
        &q,
        |s| s.catalog.service_index(name),
        |cat| {
            filter.retain(enforce::service_entries(&acl, service_entries(cat, name, &tags, &meta, passing)))
        },
    )
    .await
}

pub(super) async fn checks(
    State(st): State<ApiState>,
    acl: Acl,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let name = rest(&name);
    let q = Query::parse(q.as_deref());
    let meta = q.node_meta();
    let filter = ItemFilter::from_query(&q, filter::HEALTH_CHECK)?;
    st.try_read(
        &q,
        |s| s.catalog.service_index(name),
        |cat| filter.retain(enforce::checks(&acl, service_checks(cat, name, &meta))),
    )
    .await
}

pub(super) async fn node(
    State(st): State<ApiState>,
    acl: Acl,
    Path(node): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let q = Query::parse(q.as_deref());
    let filter = ItemFilter::from_query(&q, filter::HEALTH_CHECK)?;
    st.try_read(&q, checks_index, |cat| {
        filter.retain(enforce::checks(
            &acl,
            cat.node_checks(&node).map(|c| HealthCheckJson::from(&**c)).collect(),
        ))
    })
    .await
}

pub(super) async fn state(
    State(st): State<ApiState>,
    acl: Acl,
    Path(state): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let q = Query::parse(q.as_deref());
    let meta = q.node_meta();
    let filter = ItemFilter::from_query(&q, filter::HEALTH_CHECK)?;
    st.try_read(&q, checks_index, |cat| {
        let mut body = state_checks(cat, &state);
        if !meta.is_empty() {
            body.retain(|c| cat.node(&c.node).is_some_and(|n| has_meta(n, &meta)));
        }
        filter.retain(enforce::checks(&acl, body))
    })
    .await
}
