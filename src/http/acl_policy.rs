//! `/v1/acl/policy*` and `/v1/acl/role*` (spec §1.8): Consul's policy and role JSON, create,
//! read by ID or name, update, delete, list. Shared pieces (caller, errors, links) are in
//! `acl`. A policy's Rules are parsed before anything is proposed: bad rules are a 500 with
//! the parser's text and nothing stored. A missing policy is 403 `ACL not found`, a missing
//! role 404 with an empty body (Consul's quirks, spec §1.7).

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};

use super::ApiState;
use super::acl::{
    AclFail, AclResult, Caller, LinkIn, LinkOut, NodeIdentityIn, NodeIdentityOut, ServiceIdentityIn,
    ServiceIdentityOut, acl_not_found, content_hash, delete_acl, identities_in, identities_out, links_in,
    policy_links_out, read_one, set_acl, write_query,
};
use super::error::ApiError;
use super::query::Query;
use crate::acl::parse_rules;
use crate::catalog::acl::{AclPolicy, AclRole, AclState};
use crate::catalog::{AclCommand, CatalogState};

/// Consul's policy JSON; the list stub has no `Rules` and an explicit `"Datacenters": null`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct PolicyOut {
    #[serde(rename = "ID")]
    id: String,
    name: String,
    description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    rules: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    datacenters: Option<Option<Vec<String>>>,
    hash: String,
    create_index: u64,
    modify_index: u64,
}

fn policy_out(p: &AclPolicy, stub: bool) -> PolicyOut {
    let dcs = (!p.datacenters.is_empty()).then(|| p.datacenters.clone());
    PolicyOut {
        id: p.id.clone(),
        name: p.name.clone(),
        description: p.description.clone(),
        rules: (!stub).then(|| p.rules.clone()),
        datacenters: if stub { Some(dcs) } else { dcs.map(Some) },
        hash: content_hash(&[&p.name, &p.description, &p.rules, &p.datacenters.join(",")], p.modify_index),
        create_index: p.create_index,
        modify_index: p.modify_index,
    }
}

/// A policy write's body.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct PolicyIn {
    #[serde(rename = "ID")]
    id: String,
    name: String,
    description: String,
    rules: String,
    datacenters: Option<Vec<String>>,
}

/// Checks the body and builds the policy to propose (`id`: the URL's, on update).
fn policy_from(body: PolicyIn, id: Option<&str>) -> Result<AclPolicy, AclFail> {
    let bad = |m: &str| AclFail::Api(ApiError::BadRequest(m.to_owned()));
    let id = match id {
        None if !body.id.is_empty() => {
            return Err(bad("Bad request: Cannot specify the ID when creating a new policy"));
        }
        None => uuid::Uuid::new_v4().to_string(),
        Some(url) if !body.id.is_empty() && body.id != url => {
            return Err(bad("Bad request: Policy ID in URL and payload do not match"));
        }
        Some(url) => url.to_owned(),
    };
    parse_rules(&body.rules).map_err(|e| AclFail::Api(ApiError::Internal(e.to_string())))?;
    Ok(AclPolicy {
        id,
        name: body.name,
        description: body.description,
        rules: body.rules,
        datacenters: body.datacenters.unwrap_or_default(),
        create_index: 0,
        modify_index: 0,
    })
}

fn policy_reply(st: &ApiState, id: &str, pretty: bool) -> AclResult {
    let snap = st.snapshots.load();
    let p = snap.catalog.acl().policy(id).ok_or_else(acl_not_found)?;
    Ok(super::json(&policy_out(p, false), pretty))
}

/// A create (`id: None`) or an update of the policy `id`.
async fn policy_set(
    st: &ApiState,
    raw: Option<&str>,
    headers: &HeaderMap,
    body: &Bytes,
    id: Option<&str>,
) -> AclResult {
    let build = |b| {
        let policy = policy_from(b, id)?;
        Ok((policy.id.clone(), AclCommand::PolicySet { policy: Box::new(policy), update: id.is_some() }))
    };
    set_acl(st, raw, headers, body, "Policy", build, policy_reply).await
}

/// `PUT /v1/acl/policy`.
pub(crate) async fn policy_create(
    State(st): State<ApiState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> AclResult {
    policy_set(&st, raw.as_deref(), &headers, &body, None).await
}

/// `PUT /v1/acl/policy/:id`.
pub(crate) async fn policy_update(
    State(st): State<ApiState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> AclResult {
    policy_set(&st, raw.as_deref(), &headers, &body, Some(&id)).await
}

/// A blocking read of one policy, found by `find`; 403 `ACL not found` when missing.
async fn policy_read_by(
    st: &ApiState,
    q: &Query,
    headers: &HeaderMap,
    find: impl Fn(&AclState) -> Option<&AclPolicy> + Send + Sync,
) -> AclResult {
    read_one(st, q, headers, find, |_, p| policy_out(p, false), acl_not_found).await
}

/// `GET /v1/acl/policy/:id`.
pub(crate) async fn policy_read(
    State(st): State<ApiState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> AclResult {
    let q = Query::parse(raw.as_deref());
    policy_read_by(&st, &q, &headers, |acl| acl.policy(&id).map(|p| &**p)).await
}

/// `GET /v1/acl/policy/name/:name`.
pub(crate) async fn policy_read_name(
    State(st): State<ApiState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> AclResult {
    let q = Query::parse(raw.as_deref());
    policy_read_by(&st, &q, &headers, |acl| acl.policy_by_name(&name).map(|p| &**p)).await
}

/// `DELETE /v1/acl/policy/:id` -> `true`.
pub(crate) async fn policy_delete(
    State(st): State<ApiState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> AclResult {
    let (_, caller) = write_query(&st, raw.as_deref(), &headers)?;
    delete_acl(&st, &caller, AclCommand::PolicyDelete(id)).await
}

/// `GET /v1/acl/policies`: stubs; `[]` when none.
pub(crate) async fn policy_list(
    State(st): State<ApiState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> AclResult {
    let q = Query::parse(raw.as_deref());
    Caller::of(&st, &q, &headers)?.need_read()?;
    let list = |c: &CatalogState| c.acl().policies().map(|p| policy_out(p, true)).collect::<Vec<_>>();
    Ok(st.read(&q, |s| s.catalog.acl().index(), list).await?)
}

/// Consul's role JSON.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct RoleOut {
    #[serde(rename = "ID")]
    id: String,
    name: String,
    description: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    policies: Vec<LinkOut>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    service_identities: Vec<ServiceIdentityOut>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    node_identities: Vec<NodeIdentityOut>,
    hash: String,
    create_index: u64,
    modify_index: u64,
}

fn role_out(acl: &AclState, r: &AclRole) -> RoleOut {
    let (service_identities, node_identities) = identities_out(&r.service_identities, &r.node_identities);
    let policies = policy_links_out(acl, &r.policies);
    let ids: Vec<&str> = policies.iter().map(LinkOut::id).collect();
    RoleOut {
        id: r.id.clone(),
        name: r.name.clone(),
        description: r.description.clone(),
        hash: content_hash(&[&r.name, &r.description, &ids.join(",")], r.modify_index),
        policies,
        service_identities,
        node_identities,
        create_index: r.create_index,
        modify_index: r.modify_index,
    }
}

/// A role write's body.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct RoleIn {
    #[serde(rename = "ID")]
    id: String,
    name: String,
    description: String,
    policies: Option<Vec<LinkIn>>,
    service_identities: Option<Vec<ServiceIdentityIn>>,
    node_identities: Option<Vec<NodeIdentityIn>>,
}

fn role_from(body: RoleIn, id: Option<&str>) -> Result<AclRole, AclFail> {
    let bad = |m: &str| AclFail::Api(ApiError::BadRequest(m.to_owned()));
    let id = match id {
        None if !body.id.is_empty() => {
            // Consul checks it as an update of the empty ID [live on 1.8.7].
            return Err(bad("Bad request: Role ID in URL and payload do not match"));
        }
        None => uuid::Uuid::new_v4().to_string(),
        Some(url) if !body.id.is_empty() && body.id != url => {
            return Err(bad("Bad request: Role ID in URL and payload do not match"));
        }
        Some(url) => url.to_owned(),
    };
    let (service_identities, node_identities) = identities_in(body.service_identities, body.node_identities);
    Ok(AclRole {
        id,
        name: body.name,
        description: body.description,
        policies: links_in(body.policies),
        service_identities,
        node_identities,
        create_index: 0,
        modify_index: 0,
    })
}

fn role_reply(st: &ApiState, id: &str, pretty: bool) -> AclResult {
    let snap = st.snapshots.load();
    let acl = snap.catalog.acl();
    let r = acl.role(id).ok_or(AclFail::NotFound)?;
    Ok(super::json(&role_out(acl, r), pretty))
}

/// A create (`id: None`) or an update of the role `id`.
async fn role_set(
    st: &ApiState,
    raw: Option<&str>,
    headers: &HeaderMap,
    body: &Bytes,
    id: Option<&str>,
) -> AclResult {
    let build = |b| {
        let role = role_from(b, id)?;
        Ok((role.id.clone(), AclCommand::RoleSet { role: Box::new(role), update: id.is_some() }))
    };
    set_acl(st, raw, headers, body, "Role", build, role_reply).await
}

/// `PUT /v1/acl/role`.
pub(crate) async fn role_create(
    State(st): State<ApiState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> AclResult {
    role_set(&st, raw.as_deref(), &headers, &body, None).await
}

/// `PUT /v1/acl/role/:id`.
pub(crate) async fn role_update(
    State(st): State<ApiState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> AclResult {
    role_set(&st, raw.as_deref(), &headers, &body, Some(&id)).await
}

/// A blocking read of one role, found by `find`; 404 when missing.
async fn role_read_by(
    st: &ApiState,
    q: &Query,
    headers: &HeaderMap,
    find: impl Fn(&AclState) -> Option<&AclRole> + Send + Sync,
) -> AclResult {
    read_one(st, q, headers, find, role_out, || AclFail::NotFound).await
}

/// `GET /v1/acl/role/:id`.
pub(crate) async fn role_read(
    State(st): State<ApiState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> AclResult {
    let q = Query::parse(raw.as_deref());
    role_read_by(&st, &q, &headers, |acl| acl.role(&id).map(|r| &**r)).await
}

/// `GET /v1/acl/role/name/:name`.
pub(crate) async fn role_read_name(
    State(st): State<ApiState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> AclResult {
    let q = Query::parse(raw.as_deref());
    role_read_by(&st, &q, &headers, |acl| acl.role_by_name(&name).map(|r| &**r)).await
}

/// `DELETE /v1/acl/role/:id` -> `true`.
pub(crate) async fn role_delete(
    State(st): State<ApiState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> AclResult {
    let (_, caller) = write_query(&st, raw.as_deref(), &headers)?;
    delete_acl(&st, &caller, AclCommand::RoleDelete(id)).await
}

/// `GET /v1/acl/roles?policy=`.
pub(crate) async fn role_list(
    State(st): State<ApiState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> AclResult {
    let q = Query::parse(raw.as_deref());
    Caller::of(&st, &q, &headers)?.need_read()?;
    let policy = q.get("policy").map(str::to_owned);
    let list = move |c: &CatalogState| {
        let acl = c.acl();
        acl.roles()
            .filter(|r| policy.as_ref().is_none_or(|p| r.policies.iter().any(|l| &l.id == p)))
            .map(|r| role_out(acl, r))
            .collect::<Vec<_>>()
    };
    Ok(st.read(&q, |s| s.catalog.acl().index(), list).await?)
}
