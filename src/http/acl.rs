//! `/v1/acl/*`: the routes and what every ACL endpoint shares (spec §1.3, §1.7, §1.8); the
//! handlers are in `acl_token` (bootstrap, tokens) and `acl_policy` (policies, roles). The
//! JSON shapes are Consul's and live in the HTTP layer, not in the catalog.
//!
//! Every route answers 401 `ACL support disabled` with ACLs off. The caller's token is taken
//! with Consul's precedence (`?token=` > `X-Consul-Token` > `Authorization: Bearer`) and
//! resolved through `ApiState::acl`; reads need `acl:read`, writes `acl:write` (403
//! `Permission denied`), an unknown token is 403 `ACL not found`, a root name 500. A path with
//! an empty ID or name is 400 `Bad request: Missing token ID` (and the like). A missing
//! token or policy is 403 `ACL not found` (Consul's quirk), a missing role 404. Validation
//! failures are 500 with Consul's text and store nothing (`Command::validate`, then `apply`).
//! Reads are blocking queries on the ACL index. A SecretID reads `<hidden>` for a caller with
//! `acl:read` but not `acl:write`. Writes answer from the snapshot the write was published in.
//! `/v1/acl/replication` is the single-datacenter primary's: nothing replicates.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, put};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::ApiState;
use super::error::ApiError;
use super::query::Query;
use crate::acl::{Authorizer, ResolveError};
use crate::catalog::acl::{AclLink, AclState, NodeIdentity, ServiceIdentity};
use crate::catalog::{AclCommand, CatalogState, Command};
use crate::consensus::{Authority, ProposeError};

/// An ACL endpoint's failure, with Consul's status and text.
#[derive(Debug)]
pub(crate) enum AclFail {
    /// 401 `ACL support disabled`.
    Disabled,
    /// 403 with the text.
    Forbidden(String),
    /// 404 with an empty body (a missing role).
    NotFound,
    /// Everything else.
    Api(ApiError),
}

impl From<ApiError> for AclFail {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

impl From<ResolveError> for AclFail {
    fn from(e: ResolveError) -> Self {
        match e {
            ResolveError::NotFound => Self::Forbidden(e.to_string()),
            ResolveError::RootName | ResolveError::Unavailable(_) => {
                Self::Api(ApiError::Internal(e.to_string()))
            }
        }
    }
}

impl From<ProposeError> for AclFail {
    fn from(e: ProposeError) -> Self {
        Self::Api(e.into())
    }
}

impl IntoResponse for AclFail {
    fn into_response(self) -> Response {
        let text = |status: StatusCode, body: String| {
            (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
        };
        match self {
            Self::Disabled => text(StatusCode::UNAUTHORIZED, "ACL support disabled".into()),
            Self::Forbidden(m) => text(StatusCode::FORBIDDEN, m),
            Self::NotFound => StatusCode::NOT_FOUND.into_response(),
            Self::Api(e) => e.into_response(),
        }
    }
}

/// What an ACL handler returns.
pub(crate) type AclResult = Result<Response, AclFail>;

/// 403 `ACL not found`.
pub(crate) fn acl_not_found() -> AclFail {
    AclFail::Forbidden("ACL not found".into())
}

/// 403 `Permission denied`.
fn denied() -> AclFail {
    AclFail::Forbidden("Permission denied".into())
}

/// The caller of an ACL endpoint: ACLs must be on, and the token must resolve.
pub(crate) struct Caller {
    pub(crate) secret: Option<String>,
    pub(crate) authz: Arc<Authorizer>,
}

impl Caller {
    /// Resolves the caller; 401 with ACLs off.
    pub(crate) fn of(st: &ApiState, q: &Query, headers: &HeaderMap) -> Result<Self, AclFail> {
        if !st.acl.enabled() {
            return Err(AclFail::Disabled);
        }
        let secret = super::token::presented(q.get("token"), headers);
        let authz = st.acl.resolve(secret.as_deref())?;
        Ok(Self { secret, authz })
    }

    /// 403 unless the caller has `acl:read`.
    pub(crate) fn need_read(&self) -> Result<(), AclFail> {
        if self.authz.acl_read() { Ok(()) } else { Err(denied()) }
    }

    /// 403 unless the caller has `acl:write`.
    pub(crate) fn need_write(&self) -> Result<(), AclFail> {
        if self.authz.acl_write() { Ok(()) } else { Err(denied()) }
    }
}

/// Proposes an ACL write on `caller`'s authority (validated first: 500 with Consul's text,
/// nothing stored).
pub(crate) async fn propose_acl(st: &ApiState, caller: &Caller, cmd: AclCommand) -> Result<(), AclFail> {
    Ok(st.propose(Authority::Caller(caller.secret.as_deref()), Command::Acl(cmd)).await?)
}

/// The query of a request whose caller must hold `acl:write`, and the caller.
pub(crate) fn write_query(
    st: &ApiState,
    raw: Option<&str>,
    headers: &HeaderMap,
) -> Result<(Query, Caller), AclFail> {
    let q = Query::parse(raw);
    let caller = Caller::of(st, &q, headers)?;
    caller.need_write()?;
    Ok((q, caller))
}

/// A token, policy or role as a write sees it: what `create` and `update` need of it.
pub(crate) trait Writable: Send + Sync + 'static {
    /// A write's body.
    type In: for<'de> Deserialize<'de> + Default;
    /// The body's name in Consul's 400 text.
    const WHAT: &'static str;
    /// Checks the body of a create (`id: None`) or update and builds the ID and the command.
    fn build(st: &ApiState, body: Self::In, id: Option<&str>) -> Result<(String, AclCommand), AclFail>;
    /// The answer to a write: the object `id` from the current snapshot.
    fn reply(st: &ApiState, id: &str, pretty: bool) -> AclResult;
}

/// A create (`id: None`) or an update of the object `id`: the caller needs `acl:write`; the
/// body is turned by `W::build` into the ID and the command, which is proposed; the answer is
/// `W::reply`'s for that ID from the snapshot the write was published in.
async fn set_acl<W: Writable>(
    st: &ApiState,
    raw: Option<&str>,
    headers: &HeaderMap,
    body: &Bytes,
    id: Option<&str>,
) -> AclResult {
    let (q, caller) = write_query(st, raw, headers)?;
    let (id, cmd) = W::build(st, decode_write(body, W::WHAT)?, id)?;
    propose_acl(st, &caller, cmd).await?;
    W::reply(st, &id, q.has("pretty"))
}

/// `PUT /v1/acl/token`, `PUT /v1/acl/policy`, `PUT /v1/acl/role`.
pub(crate) async fn create<W: Writable>(
    State(st): State<ApiState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> AclResult {
    set_acl::<W>(&st, raw.as_deref(), &headers, &body, None).await
}

/// `PUT /v1/acl/token/:accessor`, `PUT /v1/acl/policy/:id`, `PUT /v1/acl/role/:id`.
pub(crate) async fn update<W: Writable>(
    State(st): State<ApiState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> AclResult {
    set_acl::<W>(&st, raw.as_deref(), &headers, &body, Some(&id)).await
}

/// Proposes a delete the caller may make and answers `true`.
pub(crate) async fn delete_acl(st: &ApiState, caller: &Caller, cmd: AclCommand) -> AclResult {
    propose_acl(st, caller, cmd).await?;
    Ok(super::json(&true, false))
}

/// A blocking read of one object for a caller with `acl:read`: `missing()` when `find` has
/// nothing in the current snapshot, else `render` of what `find` has in the snapshot answered.
pub(crate) async fn read_one<O: ?Sized, T: Serialize>(
    st: &ApiState,
    q: &Query,
    headers: &HeaderMap,
    find: impl Fn(&AclState) -> Option<&O> + Send + Sync,
    render: impl Fn(&AclState, &O) -> T + Send + Sync,
    missing: fn() -> AclFail,
) -> AclResult {
    Caller::of(st, q, headers)?.need_read()?;
    if find(st.snapshots.load().catalog.acl()).is_none() {
        return Err(missing());
    }
    let body = |c: &CatalogState| find(c.acl()).map(|o| render(c.acl(), o));
    Ok(st.read(q, |s| s.catalog.acl().index(), body).await?)
}

/// A blocking read of a list for a caller with `acl:read`: `list` builds it from the snapshot
/// answered, with the request's query (its filters).
pub(crate) async fn list_acl<T: Serialize>(
    st: &ApiState,
    raw: Option<&str>,
    headers: &HeaderMap,
    list: impl FnOnce(&AclState, &Query) -> Vec<T> + Send,
) -> AclResult {
    let q = Query::parse(raw);
    Caller::of(st, &q, headers)?.need_read()?;
    Ok(st.read(&q, |s| s.catalog.acl().index(), |c: &CatalogState| list(c.acl(), &q)).await?)
}

/// Decodes a JSON body, its keys in any case; `what` names the object in Consul's 400 text.
pub(crate) fn decode<T: for<'de> Deserialize<'de> + Default>(body: &Bytes, what: &str) -> Result<T, AclFail> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let failed = |e: serde_json::Error| {
        AclFail::Api(ApiError::BadRequest(format!("Bad request: {what} decoding failed: {e}")))
    };
    // Keys match fields in any case, as Go's decoder matches them (`acl_fields`).
    let value = super::acl_fields::canonical_keys::<T>(serde_json::from_slice(body).map_err(failed)?);
    serde_json::from_value(value).map_err(failed)
}

/// `decode` for the body of a token, policy or role write (`what`), which must hold no key
/// Consul's struct lacks: 400 `Bad request: <what> decoding failed: json: unknown field "X"`
/// [live on 1.8.7]. Keys Consul's struct has but a write ignores (`Hash`, the indexes, a
/// token's `CreateTime` and `AuthMethod`) are accepted and ignored, so a body read back from
/// the API can be sent again.
pub(crate) fn decode_write<T: for<'de> Deserialize<'de> + Default>(
    body: &Bytes,
    what: &str,
) -> Result<T, AclFail> {
    const IGNORED: &[&str] = &["Hash", "CreateIndex", "ModifyIndex"];
    const TOKEN_IGNORED: &[&str] = &["Hash", "CreateIndex", "ModifyIndex", "CreateTime", "AuthMethod"];
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        let also = if what == "Token" { TOKEN_IGNORED } else { IGNORED };
        if let Some(key) = super::acl_fields::unknown_key::<T>(&value, also) {
            // Consul OSS's own wording for the one enterprise key.
            let enterprise = if key.eq_ignore_ascii_case("Namespace") {
                " - Namespaces are a Consul Enterprise feature"
            } else {
                ""
            };
            return Err(AclFail::Api(ApiError::BadRequest(format!(
                "Bad request: {what} decoding failed: json: unknown field {key:?}{enterprise}"
            ))));
        }
    }
    decode(body, what)
}

/// `{ID, Name}` as sent: either may be empty.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct LinkIn {
    #[serde(rename = "ID")]
    pub(crate) id: String,
    pub(crate) name: String,
}

/// The links as the command carries them (an empty ID: resolve the name at apply).
pub(crate) fn links_in(links: Option<Vec<LinkIn>>) -> Vec<AclLink> {
    links.unwrap_or_default().into_iter().map(|l| AclLink { id: l.id, name: l.name }).collect()
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct ServiceIdentityIn {
    service_name: String,
    datacenters: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct NodeIdentityIn {
    node_name: String,
    datacenter: String,
}

pub(crate) fn identities_in(
    services: Option<Vec<ServiceIdentityIn>>,
    nodes: Option<Vec<NodeIdentityIn>>,
) -> (Vec<ServiceIdentity>, Vec<NodeIdentity>) {
    let services = services
        .unwrap_or_default()
        .into_iter()
        .map(|s| ServiceIdentity {
            service_name: s.service_name,
            datacenters: s.datacenters.unwrap_or_default(),
        })
        .collect();
    let nodes = nodes
        .unwrap_or_default()
        .into_iter()
        .map(|n| NodeIdentity { node_name: n.node_name, datacenter: n.datacenter })
        .collect();
    (services, nodes)
}

/// `{ID, Name}` out, with the linked object's current name; links to deleted objects vanish.
#[derive(Debug, Serialize)]
pub(crate) struct LinkOut {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "Name")]
    name: String,
}

impl LinkOut {
    /// The linked object's ID.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }
}

pub(crate) fn policy_links_out(acl: &AclState, links: &[AclLink]) -> Vec<LinkOut> {
    let named = |l: &AclLink| acl.policy(&l.id).map(|p| LinkOut { id: l.id.clone(), name: p.name.clone() });
    links.iter().filter_map(named).collect()
}

pub(crate) fn role_links_out(acl: &AclState, links: &[AclLink]) -> Vec<LinkOut> {
    let named = |l: &AclLink| acl.role(&l.id).map(|r| LinkOut { id: l.id.clone(), name: r.name.clone() });
    links.iter().filter_map(named).collect()
}

#[derive(Debug, Serialize)]
pub(crate) struct ServiceIdentityOut {
    #[serde(rename = "ServiceName")]
    service_name: String,
    #[serde(rename = "Datacenters", skip_serializing_if = "Vec::is_empty")]
    datacenters: Vec<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct NodeIdentityOut {
    #[serde(rename = "NodeName")]
    node_name: String,
    #[serde(rename = "Datacenter")]
    datacenter: String,
}

pub(crate) fn identities_out(
    services: &[ServiceIdentity],
    nodes: &[NodeIdentity],
) -> (Vec<ServiceIdentityOut>, Vec<NodeIdentityOut>) {
    let s = services
        .iter()
        .map(|s| ServiceIdentityOut {
            service_name: s.service_name.clone(),
            datacenters: s.datacenters.clone(),
        })
        .collect();
    let n = nodes
        .iter()
        .map(|n| NodeIdentityOut { node_name: n.node_name.clone(), datacenter: n.datacenter.clone() })
        .collect();
    (s, n)
}

/// A content hash (base64 SHA-256) over the fields that matter and the modify index.
pub(crate) fn content_hash(parts: &[&str], modify_index: u64) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    h.update(modify_index.to_be_bytes());
    STANDARD.encode(h.finalize())
}

/// The `/v1/acl/*` routes (the legacy ones too, `acl_legacy`).
pub(crate) fn routes() -> Router<ApiState> {
    use super::acl_policy::{self as p, Policies, Roles};
    use super::acl_token::{self as t, Tokens};
    Router::new()
        .route("/v1/acl/bootstrap", put(t::bootstrap))
        .route("/v1/acl/token", put(create::<Tokens>))
        .route("/v1/acl/token/", missing("token ID").put(create::<Tokens>))
        .route("/v1/acl/token/self", get(t::token_self))
        .route("/v1/acl/token/{id}", get(t::token_read).put(update::<Tokens>).delete(t::token_delete))
        .route("/v1/acl/token/{id}/clone", put(t::token_clone))
        .route("/v1/acl/tokens", get(t::token_list))
        .route("/v1/acl/policy", put(create::<Policies>))
        .route("/v1/acl/policy/", missing("policy ID").put(create::<Policies>))
        .route("/v1/acl/policy/name/", missing("policy Name"))
        .route("/v1/acl/policy/name/{name}", get(p::read_name::<Policies>))
        .route(
            "/v1/acl/policy/{id}",
            get(p::read::<Policies>).put(update::<Policies>).delete(p::delete::<Policies>),
        )
        .route("/v1/acl/policies", get(p::list::<Policies>))
        .route("/v1/acl/role", put(create::<Roles>))
        .route("/v1/acl/role/", missing("role ID").put(create::<Roles>))
        .route("/v1/acl/role/name/", missing("role Name"))
        .route("/v1/acl/role/name/{name}", get(p::read_name::<Roles>))
        .route("/v1/acl/role/{id}", get(p::read::<Roles>).put(update::<Roles>).delete(p::delete::<Roles>))
        .route("/v1/acl/roles", get(p::list::<Roles>))
        .route("/v1/acl/replication", get(replication))
        .route("/v1/agent/token/{name}", put(t::agent_token))
        .merge(super::acl_legacy::routes())
}

/// A route whose path ends where the ID or name should be: GET and DELETE answer Consul's
/// 400 `Bad request: Missing <what>` (before any token check, after the 401 with ACLs off);
/// the caller adds PUT, which creates as the route without the slash does [live on 1.8.7].
fn missing(what: &'static str) -> MethodRouter<ApiState> {
    let handler = move |State(st): State<ApiState>| async move {
        if !st.acl.enabled() {
            return Err::<Response, _>(AclFail::Disabled);
        }
        Err(AclFail::Api(ApiError::BadRequest(format!("Bad request: Missing {what}"))))
    };
    get(handler).delete(handler)
}

/// `GET /v1/acl/replication` in a single-datacenter primary: nothing replicates, so every
/// field is false, empty or zero, with Go's zero time [live on 1.8.7]. It needs no token, so
/// the token presented is not resolved (an unknown one still gets 200).
async fn replication(State(st): State<ApiState>, RawQuery(raw): RawQuery) -> AclResult {
    if !st.acl.enabled() {
        return Err(AclFail::Disabled);
    }
    const ZERO_TIME: &str = "0001-01-01T00:00:00Z";
    let status = ReplicationStatus {
        enabled: false,
        running: false,
        source_datacenter: "",
        replication_type: "",
        replicated_index: 0,
        replicated_role_index: 0,
        replicated_token_index: 0,
        last_success: ZERO_TIME,
        last_error: ZERO_TIME,
    };
    Ok(super::json(&status, Query::parse(raw.as_deref()).has("pretty")))
}

/// Consul's `structs.ACLReplicationStatus`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ReplicationStatus {
    enabled: bool,
    running: bool,
    source_datacenter: &'static str,
    replication_type: &'static str,
    replicated_index: u64,
    replicated_role_index: u64,
    replicated_token_index: u64,
    last_success: &'static str,
    last_error: &'static str,
}
