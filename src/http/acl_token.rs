//! `/v1/acl/bootstrap` and `/v1/acl/token*` (spec §1.3, §1.8): Consul's token JSON (with
//! `SecretID` shown, `<hidden>` for a caller without `acl:write`, or left out of list stubs),
//! the one-shot bootstrap with its reset file, and token create, read, update, delete, clone,
//! self and list. Writes answer from the snapshot the write was published in.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ApiState;
use super::acl::{
    AclFail, AclResult, Caller, LinkIn, LinkOut, NodeIdentityIn, NodeIdentityOut, ServiceIdentityIn,
    ServiceIdentityOut, Writable, acl_not_found, content_hash, decode, delete_acl, identities_in,
    identities_out, links_in, list_acl, policy_links_out, propose_acl, role_links_out, write_query,
};
use super::error::ApiError;
use super::query::Query;
use crate::acl_state::{management_token, read_reset_index, spend_reset_file, token_of};
use crate::catalog::acl::{AclState, AclToken};
use crate::catalog::{AclCommand, CatalogState, Command};
use crate::clock::unix_ms;

/// Consul's token JSON (`secret: None` is the list stub, without `SecretID`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct TokenOut {
    #[serde(rename = "AccessorID")]
    accessor_id: String,
    #[serde(rename = "SecretID", skip_serializing_if = "Option::is_none")]
    secret_id: Option<String>,
    description: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    policies: Vec<LinkOut>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    roles: Vec<LinkOut>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    service_identities: Vec<ServiceIdentityOut>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    node_identities: Vec<NodeIdentityOut>,
    /// A legacy token's rules (full reads only; a list stub says `Legacy` instead).
    #[serde(skip_serializing_if = "str::is_empty")]
    rules: String,
    local: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    expiration_time: Option<String>,
    create_time: String,
    hash: String,
    create_index: u64,
    modify_index: u64,
    /// List stubs: whether the token has legacy rules [live on 1.8.7].
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    legacy: bool,
}

/// How a token's SecretID is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Secret {
    Shown,
    Hidden,
    Omitted,
}

fn token_out(acl: &AclState, t: &AclToken, secret: Secret) -> TokenOut {
    let (service_identities, node_identities) = identities_out(&t.service_identities, &t.node_identities);
    let policies = policy_links_out(acl, &t.policies);
    let ids: Vec<&str> = policies.iter().map(LinkOut::id).collect();
    TokenOut {
        accessor_id: t.accessor_id.clone(),
        secret_id: match secret {
            Secret::Shown => Some(t.secret_id.clone()),
            Secret::Hidden => Some("<hidden>".into()),
            Secret::Omitted => None,
        },
        description: t.description.clone(),
        hash: token_hash(t, &ids),
        rules: if secret == Secret::Omitted { String::new() } else { t.rules.clone() },
        legacy: secret == Secret::Omitted && !t.rules.is_empty(),
        policies,
        roles: role_links_out(acl, &t.roles),
        service_identities,
        node_identities,
        local: t.local,
        expiration_time: t.expiration_time_ms.map(super::acl_time::rfc3339),
        // A legacy token made through the legacy API has no CreateTime: Go's zero time.
        create_time: if t.create_time_ms == 0 {
            "0001-01-01T00:00:00Z".to_owned()
        } else {
            super::acl_time::rfc3339(t.create_time_ms)
        },
        create_index: t.create_index,
        modify_index: t.modify_index,
    }
}

/// The token's content hash (its rules count only when it has some, so the hashes of
/// current tokens are those of before legacy tokens existed).
fn token_hash(t: &AclToken, policy_ids: &[&str]) -> String {
    let joined = policy_ids.join(",");
    let mut parts = vec![t.description.as_str(), joined.as_str(), if t.local { "local" } else { "" }];
    if !t.rules.is_empty() {
        parts.push(&t.rules);
    }
    content_hash(&parts, t.modify_index)
}

/// The token JSON as a map (bootstrap adds the legacy `ID`).
fn token_json(acl: &AclState, t: &AclToken, secret: Secret) -> Value {
    serde_json::to_value(token_out(acl, t, secret)).unwrap_or(Value::Null)
}

/// `PUT /v1/acl/bootstrap`: the first management token, once (spec §1.3).
pub(crate) async fn bootstrap(State(st): State<ApiState>, RawQuery(raw): RawQuery) -> AclResult {
    if !st.acl.enabled() {
        return Err(AclFail::Disabled);
    }
    // A client agent's index is replaced by the server its write is forwarded to.
    let reset_index =
        read_reset_index(&st.config.data_dir).map_err(|m| AclFail::Api(ApiError::Internal(m)))?;
    let token =
        management_token(uuid::Uuid::new_v4().to_string(), "Bootstrap Token (Global Management)", unix_ms());
    let accessor = token.accessor_id.clone();
    // Bootstrap needs no token (the server allows it once, whoever asks).
    let anyone = crate::consensus::Authority::Caller(None);
    match st
        .propose(anyone, Command::Acl(AclCommand::Bootstrap { token: Box::new(token), reset_index }))
        .await
    {
        Ok(()) => {}
        Err(ApiError::Internal(m)) if m.starts_with("ACL bootstrap no longer allowed") => {
            return Err(AclFail::Forbidden(format!("Permission denied: {m}")));
        }
        Err(e) => return Err(e.into()),
    }
    if reset_index.is_some() {
        spend_reset_file(&st.config.data_dir);
    }
    let snap = st.snapshots.load();
    let acl = snap.catalog.acl();
    let t = acl
        .token(&accessor)
        .ok_or_else(|| AclFail::Api(ApiError::Internal("bootstrap token not found".into())))?;
    let mut body = token_json(acl, t, Secret::Shown);
    if let Value::Object(m) = &mut body {
        m.insert("ID".into(), Value::String(t.secret_id.clone()));
    }
    Ok(super::json(&body, Query::parse(raw.as_deref()).has("pretty")))
}

/// A token write's body.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct TokenIn {
    #[serde(rename = "AccessorID")]
    accessor_id: String,
    #[serde(rename = "SecretID")]
    secret_id: String,
    description: String,
    policies: Option<Vec<LinkIn>>,
    roles: Option<Vec<LinkIn>>,
    service_identities: Option<Vec<ServiceIdentityIn>>,
    node_identities: Option<Vec<NodeIdentityIn>>,
    local: bool,
    expiration_time: Option<String>,
    #[serde(rename = "ExpirationTTL")]
    expiration_ttl: Option<Value>,
    rules: Option<String>,
}

/// Builds the token a create (`accessor: None`) or update proposes.
fn token_from(body: TokenIn, accessor: Option<&str>, now_ms: u64) -> Result<AclToken, AclFail> {
    let bad = |m: &str| AclFail::Api(ApiError::BadRequest(m.to_owned()));
    let rpc = |m: String| AclFail::Api(ApiError::Internal(m));
    if let Some(url) = accessor
        && !body.accessor_id.is_empty()
        && body.accessor_id != url
    {
        return Err(bad("Bad request: Token Accessor ID in URL and payload do not match"));
    }
    if body.rules.as_deref().is_some_and(|r| !r.is_empty()) {
        return Err(rpc("Rules cannot be specified for this token".into()));
    }
    let ttl_ms = match &body.expiration_ttl {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(
            crate::agent::parse_go_duration(s)
                .map_err(|e| bad(&format!("Bad request: Token decoding failed: {e}")))?,
        ),
        Some(Value::Number(n)) => Some(std::time::Duration::from_nanos(n.as_u64().unwrap_or(0))),
        Some(_) => return Err(bad("Bad request: Token decoding failed: ExpirationTTL: expected a duration")),
    }
    .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let at_ms = match body.expiration_time.as_deref() {
        None | Some("") => None,
        Some(t) => Some(
            super::acl_time::parse_rfc3339(t)
                .ok_or_else(|| bad(&format!("Bad request: invalid ExpirationTime {t:?}")))?,
        ),
    };
    let expiration_time_ms = match (ttl_ms, at_ms) {
        (Some(_), Some(_)) => {
            return Err(rpc("Token Expiration TTL and Expiration Time cannot both be set".into()));
        }
        (Some(ttl), None) => Some(now_ms.saturating_add(ttl)),
        (None, at) => at,
    };
    let (service_identities, node_identities) = identities_in(body.service_identities, body.node_identities);
    let accessor_id = match (accessor, body.accessor_id.is_empty()) {
        (Some(url), _) => url.to_owned(),
        (None, false) => body.accessor_id,
        (None, true) => uuid::Uuid::new_v4().to_string(),
    };
    let secret_id = match (accessor.is_some(), body.secret_id.is_empty()) {
        (false, true) => uuid::Uuid::new_v4().to_string(),
        _ => body.secret_id,
    };
    Ok(AclToken {
        accessor_id,
        secret_id,
        description: body.description,
        policies: links_in(body.policies),
        roles: links_in(body.roles),
        service_identities,
        node_identities,
        local: body.local,
        expiration_time_ms,
        create_time_ms: now_ms,
        create_index: 0,
        modify_index: 0,
        legacy_type: String::new(),
        rules: String::new(),
    })
}

/// Answers with the token `accessor` from the current snapshot.
fn token_reply(st: &ApiState, accessor: &str, secret: Secret, pretty: bool) -> AclResult {
    let snap = st.snapshots.load();
    let acl = snap.catalog.acl();
    let t = acl.token(accessor).filter(|t| !t.expired(unix_ms())).ok_or_else(acl_not_found)?;
    Ok(super::json(&token_out(acl, t, secret), pretty))
}

/// Tokens as a write sees them: the answer shows the SecretID.
pub(crate) struct Tokens;

impl Writable for Tokens {
    type In = TokenIn;
    const WHAT: &'static str = "Token";

    fn build(st: &ApiState, body: TokenIn, id: Option<&str>) -> Result<(String, AclCommand), AclFail> {
        let mut token = token_from(body, id, unix_ms())?;
        if let Some(id) = id {
            // An update names a token that exists, and may leave its SecretID out (Consul keeps
            // the stored one) [live on 1.8.7: 200; an unknown accessor is 500 `Cannot find token "…"`].
            let snap = st.snapshots.load();
            let old = snap.catalog.acl().token(id);
            let old =
                old.ok_or_else(|| AclFail::Api(ApiError::Internal(format!("Cannot find token {id:?}"))))?;
            if token.secret_id.is_empty() {
                token.secret_id.clone_from(&old.secret_id);
            }
        }
        Ok((token.accessor_id.clone(), AclCommand::TokenSet { token: Box::new(token), update: id.is_some() }))
    }

    fn reply(st: &ApiState, accessor: &str, pretty: bool) -> AclResult {
        token_reply(st, accessor, Secret::Shown, pretty)
    }
}

/// `GET /v1/acl/token/:accessor`.
pub(crate) async fn token_read(
    State(st): State<ApiState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> AclResult {
    let q = Query::parse(raw.as_deref());
    let caller = Caller::of(&st, &q, &headers)?;
    caller.need_read()?;
    let secret = if caller.authz.acl_write() { Secret::Shown } else { Secret::Hidden };
    let now = unix_ms();
    let found = st.snapshots.load().catalog.acl().token(&id).is_some_and(|t| !t.expired(now));
    if !found {
        return Err(acl_not_found());
    }
    let resp = st
        .read(
            &q,
            |s| s.catalog.acl().index(),
            |c: &CatalogState| c.acl().token(&id).map(|t| token_json(c.acl(), t, secret)),
        )
        .await?;
    Ok(resp)
}

/// `GET /v1/acl/token/self`: the caller's own token, with its SecretID.
pub(crate) async fn token_self(
    State(st): State<ApiState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> AclResult {
    let q = Query::parse(raw.as_deref());
    let caller = Caller::of(&st, &q, &headers)?;
    let secret = caller.secret.ok_or_else(acl_not_found)?;
    let snap = st.snapshots.load();
    let t = token_of(&snap.catalog, &secret, unix_ms()).ok_or_else(acl_not_found)?;
    Ok(super::json(&token_out(snap.catalog.acl(), t, Secret::Shown), q.has("pretty")))
}

/// `DELETE /v1/acl/token/:accessor` -> `true`.
pub(crate) async fn token_delete(
    State(st): State<ApiState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> AclResult {
    let (_, caller) = write_query(&st, raw.as_deref(), &headers)?;
    let own = caller
        .secret
        .as_deref()
        .and_then(|s| st.snapshots.load().catalog.acl().token_by_secret(s).map(|t| t.accessor_id.clone()));
    if own.as_deref() == Some(id.as_str()) {
        return Err(AclFail::Api(ApiError::Internal(
            "Deletion of the request's authorization token is not permitted".into(),
        )));
    }
    delete_acl(&st, &caller, AclCommand::TokenDelete(id)).await
}

/// `{Description?}` of a clone.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct CloneIn {
    description: Option<String>,
}

/// `PUT /v1/acl/token/:accessor/clone`: a new token (new IDs) with the same links.
pub(crate) async fn token_clone(
    State(st): State<ApiState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> AclResult {
    let (q, caller) = write_query(&st, raw.as_deref(), &headers)?;
    let body: CloneIn = decode(&body, "Token")?;
    let now = unix_ms();
    let source = st.snapshots.load().catalog.acl().token(&id).filter(|t| !t.expired(now)).cloned();
    // An unknown (or expired) source is Consul's 403 `ACL not found` [live on 1.8.7].
    let source = source.ok_or_else(acl_not_found)?;
    let mut t = (*source).clone();
    t.accessor_id = uuid::Uuid::new_v4().to_string();
    t.secret_id = uuid::Uuid::new_v4().to_string();
    t.create_time_ms = now;
    // An empty description keeps the original's, as Consul does (its CLI always sends one).
    if let Some(d) = body.description.filter(|d| !d.is_empty()) {
        t.description = d;
    }
    let accessor = t.accessor_id.clone();
    propose_acl(&st, &caller, AclCommand::TokenSet { token: Box::new(t), update: false }).await?;
    token_reply(&st, &accessor, Secret::Shown, q.has("pretty"))
}

/// `GET /v1/acl/tokens?policy=&role=`: stubs, without SecretIDs.
pub(crate) async fn token_list(
    State(st): State<ApiState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> AclResult {
    let now = unix_ms();
    let list = |acl: &AclState, q: &Query| {
        let (policy, role) = (q.get("policy"), q.get("role"));
        acl.tokens()
            .filter(|t| !t.expired(now))
            .filter(|t| policy.is_none_or(|p| t.policies.iter().any(|l| l.id == p)))
            .filter(|t| role.is_none_or(|r| t.roles.iter().any(|l| l.id == r)))
            .map(|t| token_out(acl, t, Secret::Omitted))
            .collect::<Vec<_>>()
    };
    list_acl(&st, raw.as_deref(), &headers, list).await
}

/// `{"Token": "..."}` of `PUT /v1/agent/token/<name>`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct AgentTokenIn {
    token: String,
}

/// `PUT /v1/agent/token/{default, agent, agent_master, replication}` (and the legacy `acl_*`
/// names): replaces one of the agent's own tokens; needs `agent:write` on this agent's node,
/// as Consul 1.8.7's `AgentToken` checks (so the agent master token may set them too, which
/// Consul's own api test does); 404 for another name.
pub(crate) async fn agent_token(
    State(st): State<ApiState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> AclResult {
    let q = Query::parse(raw.as_deref());
    if !Caller::of(&st, &q, &headers)?.authz.agent_write(&st.config.node_name) {
        return Err(AclFail::Api(ApiError::denied()));
    }
    let Some(which) = crate::acl::AgentToken::from_path(&name) else {
        return Err(AclFail::Api(ApiError::NotFound(format!("Token {name:?} is unknown"))));
    };
    let body: AgentTokenIn = decode(&body, "Token")?;
    let tokens = st.acl.agent_tokens().ok_or(AclFail::Disabled)?;
    tokens.set(which, Some(body.token)).map_err(|e| AclFail::Api(ApiError::Internal(e)))?;
    tracing::info!(token = %name, "agent ACL token updated");
    Ok(axum::response::IntoResponse::into_response(axum::http::StatusCode::OK))
}
