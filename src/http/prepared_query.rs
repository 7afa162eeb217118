//! `/v1/query*`: prepared queries: create, list, read, update, delete and execute.
//!
//! Input: path/query/body → output: Consul's `PreparedQuery` JSON (`wire`), `{"ID"}` on
//! create, or the execute result.
//! Invariants: IDs are generated here (UUID v4) before proposing, so `apply` stays
//! deterministic; reads use the queries table index (execute also the service's index);
//! an unknown ID (or name, for execute) is 404 `Query not found`; execute shuffles the
//! selected instances (`Near` is stored but, without coordinates, changes nothing).
//! ACLs (spec §1.6): creating, changing or deleting a named query needs `query:write` on its
//! name (the old and the new one); a nameless query needs nothing (its ID is the capability).
//! Listing filters by `query:read`, and shows nameless queries only to management tokens;
//! reading one the token may not see is 403. A captured `Token` reads `<hidden>` unless the
//! caller has management rights. Execution checks `service:read` and `node:read` per result
//! with the query's captured token if it has one, else the caller's.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use rand::seq::SliceRandom;

use super::error::ApiError;
use super::query::Query;
use super::token::{Acl, Presented, require};
use super::wire::{
    self, HealthCheckJson, NodeJson, PreparedQueryJson, QueryDnsJson, QueryExecuteJson, QueryIdJson,
    ServiceEntryJson, ServiceJson,
};
use super::{ApiState, json, parse_body};
use crate::acl::Authorizer;
use crate::catalog::{CatalogState, PreparedQuery};
use crate::catalog::{Command, QueryUpsert};
use crate::snapshot::CatalogSnapshot;

fn not_found() -> ApiError {
    ApiError::NotFound("Query not found".into())
}

fn queries_index(s: &CatalogSnapshot) -> u64 {
    s.catalog.table_indexes().queries
}

/// `/v1/query/:id/execute` body: the query's instances, shuffled, at most `limit` of them
/// (its `QueryMeta` fields left for the handler to fill).
pub(crate) fn execute_result(
    cat: &CatalogState,
    q: &PreparedQuery,
    datacenter: &str,
    limit: Option<usize>,
    rng: &mut impl rand::Rng,
) -> QueryExecuteJson {
    let mut nodes: Vec<ServiceEntryJson> = cat
        .query_instances(q)
        .into_iter()
        .map(|(i, _)| ServiceEntryJson {
            node: NodeJson::from(&*i.node),
            service: ServiceJson::catalog(&i.service),
            checks: cat
                .instance_checks(&i.node.name, &i.service.id)
                .map(|c| HealthCheckJson::from(&**c))
                .collect(),
        })
        .collect();
    nodes.shuffle(rng);
    if let Some(n) = limit {
        nodes.truncate(n);
    }
    QueryExecuteJson {
        service: q.service.service.clone(),
        nodes,
        dns: QueryDnsJson { ttl: q.dns_ttl.clone() },
        datacenter: datacenter.to_owned(),
        failovers: 0,
        index: 0,
        last_contact: 0,
        known_leader: false,
        consistency_level: "",
    }
}

/// What Consul shows instead of a captured token to a caller without management rights.
const REDACTED_TOKEN: &str = "<hidden>";

/// `query:write` on a named query's name; a nameless query needs none
/// (`acl_state::permission`, which a server checks a forwarded write with).
fn may_write(a: &Authorizer, q: &PreparedQuery) -> bool {
    crate::acl_state::permission::query_write(a, q)
}

/// Whether the token may see `q`: management sees all, others need `query:read` on its name
/// (so never a nameless query).
fn may_read(a: &Authorizer, q: &PreparedQuery) -> bool {
    a.manage() || (!q.name.is_empty() && a.query_read(&q.name))
}

/// `q` as the token may see it (the captured token hidden from non-management callers).
fn visible_json(a: &Authorizer, q: &PreparedQuery) -> PreparedQueryJson {
    let mut json = PreparedQueryJson::from(q);
    if !a.manage() && !json.token.is_empty() {
        REDACTED_TOKEN.clone_into(&mut json.token);
    }
    json
}

pub(super) async fn create(State(st): State<ApiState>, acl: Acl, body: Bytes) -> Result<Response, ApiError> {
    let v = parse_body(&body)?;
    let id = uuid::Uuid::new_v4().to_string();
    let query = wire::decode_prepared_query(&v, &id, true)?;
    require(may_write(&acl, &query))?;
    st.propose(acl.authority(), Command::QueryUpsert(QueryUpsert { query, update: false })).await?;
    Ok(json(&QueryIdJson { id }, false))
}

pub(super) async fn list(
    State(st): State<ApiState>,
    acl: Acl,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let q = Query::parse(q.as_deref());
    st.read(&q, queries_index, |cat| {
        cat.queries().filter(|p| may_read(&acl, p)).map(|p| visible_json(&acl, p)).collect::<Vec<_>>()
    })
    .await
}

pub(super) async fn get(
    State(st): State<ApiState>,
    acl: Acl,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let q = Query::parse(q.as_deref());
    let opts = st.read_options(&q)?;
    let snap = st.snapshot(&opts, queries_index).await;
    let query = snap.catalog.query(&id).ok_or_else(not_found)?;
    require(may_read(&acl, query))?;
    Ok(st.reply(&[visible_json(&acl, query)], queries_index(&snap), &opts, &q))
}

pub(super) async fn update(
    State(st): State<ApiState>,
    acl: Acl,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let v = parse_body(&body)?;
    let query = wire::decode_prepared_query(&v, &id, false)?;
    require(may_write(&acl, &query))?;
    if let Some(old) = st.snapshots.load().catalog.query(&id) {
        require(may_write(&acl, old))?;
    }
    st.propose(acl.authority(), Command::QueryUpsert(QueryUpsert { query, update: true })).await?;
    Ok(().into_response())
}

pub(super) async fn delete(
    State(st): State<ApiState>,
    acl: Acl,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if let Some(old) = st.snapshots.load().catalog.query(&id) {
        require(may_write(&acl, old))?;
    }
    st.propose(acl.authority(), Command::QueryDelete(id)).await?;
    Ok(().into_response())
}

pub(super) async fn execute(
    State(st): State<ApiState>,
    Presented(presented): Presented,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    let q = Query::parse(q.as_deref());
    let limit = match q.get("limit") {
        None => None,
        Some(l) => Some(
            l.parse::<usize>().map_err(|_| ApiError::BadRequest(format!("Invalid value for ?limit: {l}")))?,
        ),
    };
    let opts = st.read_options(&q)?;
    let index_of = |s: &CatalogSnapshot| {
        let service = s.catalog.resolve_query(&id).map(|p| s.catalog.service_index(&p.service.service));
        queries_index(s).max(service.unwrap_or(0))
    };
    let snap = st.snapshot(&opts, index_of).await;
    let query = snap.catalog.resolve_query(&id).ok_or_else(not_found)?;
    let token = if query.token.is_empty() { presented.as_deref() } else { Some(query.token.as_str()) };
    let acl = super::token::resolve(&st, token)?;
    let mut body = execute_result(&snap.catalog, query, &st.config.datacenter, None, &mut rand::rng());
    body.nodes = super::enforce::service_entries(&acl, body.nodes);
    if let Some(n) = limit {
        body.nodes.truncate(n);
    }
    // Consul's execute body carries its `QueryMeta` beside the headers.
    body.index = index_of(&snap).max(1);
    body.last_contact = st.consensus.last_contact_ms();
    body.known_leader = st.consensus.known_leader();
    body.consistency_level = opts.consistency.as_str();
    let reply = st.reply(&body, index_of(&snap), &opts, &q);
    crate::metrics::measure("consul.prepared-query.execute", Vec::new(), started.elapsed());
    Ok(reply)
}
