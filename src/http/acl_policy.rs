//! `/v1/acl/policy*` and `/v1/acl/role*` (spec §1.8): Consul's policy and role JSON, create,
//! read by ID or name, update, delete, list. Shared pieces (caller, errors, links) are in
//! `acl`. A policy's Rules are parsed before anything is proposed: bad rules are a 500 with
//! the parser's text and nothing stored. A missing policy is 403 `ACL not found`, a missing
//! role 404 with an empty body (Consul's quirks, spec §1.7).

use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};

use super::ApiState;
use super::acl::{
    AclFail, AclResult, LinkIn, LinkOut, NodeIdentityIn, NodeIdentityOut, ServiceIdentityIn,
    ServiceIdentityOut, Writable, acl_not_found, content_hash, delete_acl, identities_in, identities_out,
    links_in, list_acl, policy_links_out, read_one, write_query,
};
use super::error::ApiError;
use super::query::Query;
use crate::acl::parse_rules;
use crate::catalog::AclCommand;
use crate::catalog::acl::{AclPolicy, AclRole, AclState};

/// Consul's policy JSON; the list stub has no `Rules` and an explicit `"Datacenters": null`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct PolicyOut {
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
pub(crate) struct PolicyIn {
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

/// Consul's role JSON.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct RoleOut {
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
pub(crate) struct RoleIn {
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

/// A policy or a role: what the generic handlers below need of it.
pub(crate) trait Kind: Writable {
    /// The object as stored.
    type Stored: Send + Sync;
    /// Consul's JSON of one object.
    type Out: Serialize;
    fn by_id<'a>(acl: &'a AclState, id: &str) -> Option<&'a Self::Stored>;
    fn by_name<'a>(acl: &'a AclState, name: &str) -> Option<&'a Self::Stored>;
    fn render(acl: &AclState, o: &Self::Stored) -> Self::Out;
    /// The answer when the object is missing.
    fn missing() -> AclFail;
    fn delete(id: String) -> AclCommand;
    /// The list answer (`q` holds its filters).
    fn list(acl: &AclState, q: &Query) -> Vec<Self::Out>;
}

/// Policies: a missing one is 403 `ACL not found`, the list holds stubs.
pub(crate) struct Policies;

impl Writable for Policies {
    type In = PolicyIn;
    const WHAT: &'static str = "Policy";

    fn build(_: &ApiState, body: PolicyIn, id: Option<&str>) -> Result<(String, AclCommand), AclFail> {
        let policy = policy_from(body, id)?;
        Ok((policy.id.clone(), AclCommand::PolicySet { policy: Box::new(policy), update: id.is_some() }))
    }

    fn reply(st: &ApiState, id: &str, pretty: bool) -> AclResult {
        reply::<Self>(st, id, pretty)
    }
}

impl Kind for Policies {
    type Stored = AclPolicy;
    type Out = PolicyOut;

    fn by_id<'a>(acl: &'a AclState, id: &str) -> Option<&'a AclPolicy> {
        acl.policy(id).map(|p| &**p)
    }

    fn by_name<'a>(acl: &'a AclState, name: &str) -> Option<&'a AclPolicy> {
        acl.policy_by_name(name).map(|p| &**p)
    }

    fn render(_: &AclState, p: &AclPolicy) -> PolicyOut {
        policy_out(p, false)
    }

    fn missing() -> AclFail {
        acl_not_found()
    }

    fn delete(id: String) -> AclCommand {
        AclCommand::PolicyDelete(id)
    }

    /// Stubs; `[]` when none.
    fn list(acl: &AclState, _: &Query) -> Vec<PolicyOut> {
        acl.policies().map(|p| policy_out(p, true)).collect()
    }
}

/// Roles: a missing one is 404, the list filters by `?policy=`.
pub(crate) struct Roles;

impl Writable for Roles {
    type In = RoleIn;
    const WHAT: &'static str = "Role";

    fn build(_: &ApiState, body: RoleIn, id: Option<&str>) -> Result<(String, AclCommand), AclFail> {
        let role = role_from(body, id)?;
        Ok((role.id.clone(), AclCommand::RoleSet { role: Box::new(role), update: id.is_some() }))
    }

    fn reply(st: &ApiState, id: &str, pretty: bool) -> AclResult {
        reply::<Self>(st, id, pretty)
    }
}

impl Kind for Roles {
    type Stored = AclRole;
    type Out = RoleOut;

    fn by_id<'a>(acl: &'a AclState, id: &str) -> Option<&'a AclRole> {
        acl.role(id).map(|r| &**r)
    }

    fn by_name<'a>(acl: &'a AclState, name: &str) -> Option<&'a AclRole> {
        acl.role_by_name(name).map(|r| &**r)
    }

    fn render(acl: &AclState, r: &AclRole) -> RoleOut {
        role_out(acl, r)
    }

    fn missing() -> AclFail {
        AclFail::NotFound
    }

    fn delete(id: String) -> AclCommand {
        AclCommand::RoleDelete(id)
    }

    fn list(acl: &AclState, q: &Query) -> Vec<RoleOut> {
        let policy = q.get("policy");
        acl.roles()
            .filter(|r| policy.is_none_or(|p| r.policies.iter().any(|l| l.id == p)))
            .map(|r| role_out(acl, r))
            .collect()
    }
}

/// Answers with the object `id` from the current snapshot (the answer to a write).
fn reply<K: Kind>(st: &ApiState, id: &str, pretty: bool) -> AclResult {
    let snap = st.snapshots.load();
    let acl = snap.catalog.acl();
    let o = K::by_id(acl, id).ok_or_else(K::missing)?;
    Ok(super::json(&K::render(acl, o), pretty))
}

/// `GET /v1/acl/policy/:id`, `GET /v1/acl/role/:id`: a blocking read.
pub(crate) async fn read<K: Kind>(
    State(st): State<ApiState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> AclResult {
    let q = Query::parse(raw.as_deref());
    read_one(&st, &q, &headers, |acl| K::by_id(acl, &id), K::render, K::missing).await
}

/// `GET /v1/acl/policy/name/:name`, `GET /v1/acl/role/name/:name`: a blocking read.
pub(crate) async fn read_name<K: Kind>(
    State(st): State<ApiState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> AclResult {
    let q = Query::parse(raw.as_deref());
    read_one(&st, &q, &headers, |acl| K::by_name(acl, &name), K::render, K::missing).await
}

/// `DELETE /v1/acl/policy/:id`, `DELETE /v1/acl/role/:id` -> `true`.
pub(crate) async fn delete<K: Kind>(
    State(st): State<ApiState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> AclResult {
    let (_, caller) = write_query(&st, raw.as_deref(), &headers)?;
    delete_acl(&st, &caller, K::delete(id)).await
}

/// `GET /v1/acl/policies`, `GET /v1/acl/roles?policy=`.
pub(crate) async fn list<K: Kind>(
    State(st): State<ApiState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> AclResult {
    list_acl(&st, raw.as_deref(), &headers, K::list).await
}
