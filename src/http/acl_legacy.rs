//! The legacy (pre-1.4) ACL API Consul 1.8.7 still serves beside the current one:
//! `PUT /v1/acl/create`, `/update`, `/destroy/:id`, `/clone/:id`, `GET /v1/acl/info/:id`,
//! `/list`, and the rules translation `POST /v1/acl/rules/translate` and
//! `GET /v1/acl/rules/translate/:accessor` [live on 1.8.7 with ACLs in the current mode].
//!
//! A legacy token is a token whose SecretID is the legacy `ID` (any text), with an AccessorID
//! assigned at once (Consul's leader assigns it a moment later), its `Type` kept as
//! `legacy_type` and its `Rules` in the legacy syntax; a `management` one links
//! `global-management` (Consul's upgrade), a `client` one is governed by its rules
//! (`acl_state::compile`). The JSON shape is `{ID, Name, Type, Rules, CreateIndex, ModifyIndex}`.
//!
//! Permissions as Consul's: create, update, destroy, clone and list need `acl:write`; info
//! needs nothing (the ID is the secret); translation needs `acl:read`. Texts and statuses:
//! `ACL ID must be set` (400, update without ID), `Invalid ACL Type` (500), `ACL rule
//! compilation failed: ...` (500), `Cannot use legacy endpoint to modify a non-legacy token`
//! (500), `Permission denied: Cannot modify root ACL` (403), `Missing ACL` (400, empty path
//! ID); info of an unknown or current token is `[]`; clone of one is 403 `Permission denied`;
//! destroy of an unknown ID is `true`. Legacy tokens are made with CreateTime zero, shown as
//! Go's zero time, as Consul's are.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Serialize;
use serde_json::Value;

use super::ApiState;
use super::acl::{AclFail, AclResult, Caller, propose_acl, write_query};
use super::error::ApiError;
use super::query::Query;
use crate::acl::{GLOBAL_MANAGEMENT_POLICY_ID, ROOT_NAMES, parse_legacy_rules, translate_legacy_rules};
use crate::catalog::acl::{
    AclLink, AclState, AclToken, GLOBAL_MANAGEMENT_NAME, LEGACY_CLIENT, LEGACY_MANAGEMENT,
};
use crate::catalog::{AclCommand, CatalogState};
use crate::clock::unix_ms;

/// The legacy routes.
pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/acl/create", put(create))
        .route("/v1/acl/update", put(update))
        .route("/v1/acl/destroy/", put(missing_acl))
        .route("/v1/acl/destroy/{id}", put(destroy))
        .route("/v1/acl/info/", get(missing_acl))
        .route("/v1/acl/info/{id}", get(info))
        .route("/v1/acl/clone/", put(missing_acl))
        .route("/v1/acl/clone/{id}", put(clone))
        .route("/v1/acl/list", get(list))
        .route("/v1/acl/rules/translate", post(translate))
        .route("/v1/acl/rules/translate/", get(missing_token_id))
        .route("/v1/acl/rules/translate/{accessor}", get(translate_token))
}

/// Consul's legacy `structs.ACL`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Entry<'a> {
    #[serde(rename = "ID")]
    id: &'a str,
    name: &'a str,
    #[serde(rename = "Type")]
    kind: &'a str,
    rules: &'a str,
    create_index: u64,
    modify_index: u64,
}

fn entry(t: &AclToken) -> Entry<'_> {
    Entry {
        id: &t.secret_id,
        name: &t.description,
        kind: &t.legacy_type,
        rules: &t.rules,
        create_index: t.create_index,
        modify_index: t.modify_index,
    }
}

/// `{"ID": ...}`, the answer to a create, update or clone.
#[derive(Debug, Serialize)]
struct Created {
    #[serde(rename = "ID")]
    id: String,
}

/// The legacy token `secret` names, if it is one and has not expired.
fn legacy<'a>(acl: &'a AclState, secret: &str, now_ms: u64) -> Option<&'a AclToken> {
    acl.token_by_secret(secret).map(AsRef::as_ref).filter(|t| !t.legacy_type.is_empty() && !t.expired(now_ms))
}

fn text(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

fn internal(m: &str) -> AclFail {
    AclFail::Api(ApiError::Internal(m.to_owned()))
}

async fn missing_acl(State(st): State<ApiState>) -> AclResult {
    if !st.acl.enabled() {
        return Err(AclFail::Disabled);
    }
    Ok(text(StatusCode::BAD_REQUEST, "Missing ACL".into()))
}

async fn missing_token_id(State(st): State<ApiState>) -> AclResult {
    if !st.acl.enabled() {
        return Err(AclFail::Disabled);
    }
    Err(AclFail::Api(ApiError::BadRequest("Bad request: Missing token ID".into())))
}

/// A legacy write's body: `ID`, `Name`, `Type`, `Rules`, keys in any case (Go's decoder).
#[derive(Debug, Default)]
struct EntryIn {
    id: String,
    name: String,
    kind: String,
    rules: String,
}

fn decode_entry(body: &Bytes) -> Result<EntryIn, AclFail> {
    let mut out = EntryIn::default();
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(out);
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| AclFail::Api(ApiError::Decode(e.to_string())))?;
    let Value::Object(map) = value else {
        return Err(AclFail::Api(ApiError::Decode(
            "json: cannot unmarshal into Go value of type structs.ACL".into(),
        )));
    };
    for (key, v) in map {
        let slot = match key.to_ascii_lowercase().as_str() {
            "id" => &mut out.id,
            "name" => &mut out.name,
            "type" => &mut out.kind,
            "rules" => &mut out.rules,
            _ => continue,
        };
        match v {
            Value::String(s) => *slot = s,
            Value::Null => {}
            _ => {
                let m = format!(
                    "json: cannot unmarshal {} into Go struct field ACL.{key} of type string",
                    json_kind(&v)
                );
                return Err(AclFail::Api(ApiError::Decode(m)));
            }
        }
    }
    Ok(out)
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        Value::String(_) | Value::Null => "string",
    }
}

/// The token a legacy set of `e` proposes (`update` when it names an existing token).
fn token_of_entry(st: &ApiState, e: EntryIn) -> Result<(AclToken, bool), AclFail> {
    let kind = if e.kind.is_empty() { LEGACY_CLIENT.to_owned() } else { e.kind };
    if kind != LEGACY_CLIENT && kind != LEGACY_MANAGEMENT {
        return Err(internal("Invalid ACL Type"));
    }
    let snap = st.snapshots.load();
    let existing = (!e.id.is_empty()).then(|| snap.catalog.acl().token_by_secret(&e.id)).flatten();
    if existing.is_some_and(|t| t.uses_current_fields()) {
        return Err(internal("Cannot use legacy endpoint to modify a non-legacy token"));
    }
    if ROOT_NAMES.contains(&e.id.as_str()) {
        return Err(AclFail::Forbidden("Permission denied: Cannot modify root ACL".into()));
    }
    parse_legacy_rules(&e.rules).map_err(|err| internal(&format!("ACL rule compilation failed: {err}")))?;
    let policies = if kind == LEGACY_MANAGEMENT {
        vec![AclLink { id: GLOBAL_MANAGEMENT_POLICY_ID.into(), name: GLOBAL_MANAGEMENT_NAME.into() }]
    } else {
        Vec::new()
    };
    if let Some(old) = existing {
        let mut t = (**old).clone();
        t.description = e.name;
        t.policies = policies;
        t.legacy_type = kind;
        t.rules = e.rules;
        return Ok((t, true));
    }
    let token = AclToken {
        accessor_id: uuid::Uuid::new_v4().to_string(),
        secret_id: if e.id.is_empty() { uuid::Uuid::new_v4().to_string() } else { e.id },
        description: e.name,
        policies,
        roles: Vec::new(),
        service_identities: Vec::new(),
        node_identities: Vec::new(),
        local: false,
        expiration_time_ms: None,
        create_time_ms: 0,
        create_index: 0,
        modify_index: 0,
        legacy_type: kind,
        rules: e.rules,
    };
    Ok((token, false))
}

async fn set(st: &ApiState, raw: Option<&str>, headers: &HeaderMap, body: &Bytes, update: bool) -> AclResult {
    let (q, caller) = write_query(st, raw, headers)?;
    let e = decode_entry(body)?;
    if update && e.id.is_empty() {
        return Ok(text(StatusCode::BAD_REQUEST, "ACL ID must be set".into()));
    }
    let (token, update) = token_of_entry(st, e)?;
    let id = token.secret_id.clone();
    propose_acl(st, &caller, AclCommand::TokenSet { token: Box::new(token), update }).await?;
    Ok(super::json(&Created { id }, q.has("pretty")))
}

/// `PUT /v1/acl/create`.
async fn create(
    State(st): State<ApiState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> AclResult {
    set(&st, raw.as_deref(), &headers, &body, false).await
}

/// `PUT /v1/acl/update`.
async fn update(
    State(st): State<ApiState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> AclResult {
    set(&st, raw.as_deref(), &headers, &body, true).await
}

/// `PUT /v1/acl/destroy/:id` -> `true` (also when no token has that ID).
async fn destroy(
    State(st): State<ApiState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> AclResult {
    let (q, caller) = write_query(&st, raw.as_deref(), &headers)?;
    let accessor = st.snapshots.load().catalog.acl().token_by_secret(&id).map(|t| t.accessor_id.clone());
    if let Some(accessor) = accessor {
        propose_acl(&st, &caller, AclCommand::TokenDelete(accessor)).await?;
    }
    Ok(super::json(&true, q.has("pretty")))
}

/// `GET /v1/acl/info/:id`: `[entry]` or `[]`, a blocking read on the ACL index.
async fn info(State(st): State<ApiState>, Path(id): Path<String>, RawQuery(raw): RawQuery) -> AclResult {
    if !st.acl.enabled() {
        return Err(AclFail::Disabled);
    }
    let q = Query::parse(raw.as_deref());
    let now = unix_ms();
    let body = |c: &CatalogState| {
        legacy(c.acl(), &id, now)
            .map(|t| serde_json::to_value(entry(t)).unwrap_or(Value::Null))
            .into_iter()
            .collect::<Vec<_>>()
    };
    Ok(st.read(&q, |s| s.catalog.acl().index(), body).await?)
}

/// `GET /v1/acl/list`: every legacy token, by AccessorID.
async fn list(State(st): State<ApiState>, RawQuery(raw): RawQuery, headers: HeaderMap) -> AclResult {
    let (q, _) = write_query(&st, raw.as_deref(), &headers)?;
    let now = unix_ms();
    let body = |c: &CatalogState| {
        let acl = c.acl();
        acl.tokens()
            .filter(|t| !t.legacy_type.is_empty() && !t.expired(now))
            .map(|t| serde_json::to_value(entry(t)).unwrap_or(Value::Null))
            .collect::<Vec<_>>()
    };
    Ok(st.read(&q, |s| s.catalog.acl().index(), body).await?)
}

/// `PUT /v1/acl/clone/:id`: a new legacy token with the same name, type and rules.
async fn clone(
    State(st): State<ApiState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> AclResult {
    let q = Query::parse(raw.as_deref());
    let caller = Caller::of(&st, &q, &headers)?;
    let opts = st.read_options(&q)?;
    let snap = st.snapshots.load();
    let index = snap.catalog.acl().index();
    let source = legacy(snap.catalog.acl(), &id, unix_ms())
        .map(|t| (t.description.clone(), t.legacy_type.clone(), t.rules.clone()));
    // A missing source and a missing permission are one answer, Consul's.
    let Some((name, kind, rules)) = source else {
        return Err(AclFail::Forbidden(crate::http::error::PERMISSION_DENIED.into()));
    };
    caller.need_write()?;
    let (token, _) = token_of_entry(&st, EntryIn { id: String::new(), name, kind, rules })?;
    let new_id = token.secret_id.clone();
    propose_acl(&st, &caller, AclCommand::TokenSet { token: Box::new(token), update: false }).await?;
    let mut resp = super::json(&Created { id: new_id }, q.has("pretty"));
    st.set_read_headers(&mut resp, index, &opts);
    Ok(resp)
}

/// `POST /v1/acl/rules/translate`: the body's legacy rules in the current syntax.
async fn translate(
    State(st): State<ApiState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> AclResult {
    let q = Query::parse(raw.as_deref());
    Caller::of(&st, &q, &headers)?.need_read()?;
    let rules = String::from_utf8_lossy(&body);
    match translate_legacy_rules(&rules) {
        Ok(out) => Ok(text(StatusCode::OK, out)),
        Err(e) => Err(AclFail::Api(ApiError::BadRequest(format!("Bad request: {e}")))),
    }
}

/// `GET /v1/acl/rules/translate/:accessor`: a legacy token's rules in the current syntax.
async fn translate_token(
    State(st): State<ApiState>,
    Path(accessor): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> AclResult {
    let q = Query::parse(raw.as_deref());
    Caller::of(&st, &q, &headers)?.need_read()?;
    if accessor.len() != 36 {
        return Err(internal("failed acl token lookup: index error: UUID must be 36 characters"));
    }
    let snap = st.snapshots.load();
    let token = snap.catalog.acl().token(&accessor).filter(|t| !t.expired(unix_ms()));
    let token = token.ok_or_else(super::acl::acl_not_found)?;
    if token.rules.is_empty() {
        return Err(internal("The specified token does not have any rules set"));
    }
    match translate_legacy_rules(&token.rules) {
        Ok(out) => Ok(text(StatusCode::OK, out)),
        Err(e) => Err(internal(&e.to_string())),
    }
}
