//! Config entries: `PUT /v1/config`, `GET /v1/config/:kind[/:name]`,
//! `DELETE /v1/config/:kind/:name` (Consul 1.8.7's `/v1/config` endpoints).
//!
//! Stage: HTTP. Input: a request -> output: Consul's JSON; writes go through Raft
//! (`Command::ConfigEntrySet`, `Command::ConfigEntryDelete`), reads come from the published
//! snapshot and block on the config-entry table's index.
//! Invariants: decoding, validation and normalisation are `config_entry_kind`'s; a PUT answers
//! `true`, or `false` when `?cas=` does not match the stored `ModifyIndex`; an entry is shown
//! as `Kind`, `Name`, its document, `CreateIndex`, `ModifyIndex`; reads show only entries the
//! token may read (Consul's `CanRead`: `service:read` on the name, `proxy-defaults` to
//! anyone), writes need Consul's `CanWrite` (`acl_state::permission::config_entry_write`,
//! checked again where the command is committed). Messages and statuses are Consul's [live]:
//! an absent entry is a 404 `Config entry not found for "k" / "n"`, an unknown kind a 400 on
//! PUT and DELETE and a 500 on GET.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use serde::Serialize;
use serde_json::{Map, Value};

use super::config_entry_kind::{PROXY_DEFAULTS, decode_entry, field_order, known_kind, unknown_kind};
use super::error::ApiError;
use super::query::Query;
use super::token::{Acl, require};
use super::{ApiState, json, parse_body};
use crate::acl::Authorizer;
use crate::acl_state::permission::config_entry_write;
use crate::catalog::config_entry::ConfigEntry;
use crate::catalog::{Command, CommandResponse};

/// Consul's JSON of one entry: `Kind`, `Name`, the document's fields in the order of Consul's
/// struct for the kind (`config_entry_kind::field_order`, others after them), then the indexes.
pub(crate) struct EntryJson<'a>(&'a ConfigEntry);

impl Serialize for EntryJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let e = self.0;
        let empty = Map::new();
        let body = e.body.as_object().unwrap_or(&empty);
        let order = field_order(&e.kind);
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("Kind", &e.kind)?;
        m.serialize_entry("Name", &e.name)?;
        for k in order.iter().filter(|k| body.contains_key(**k)) {
            m.serialize_entry(k, &body[*k])?;
        }
        for (k, v) in body.iter().filter(|(k, _)| !order.contains(&k.as_str())) {
            m.serialize_entry(k, v)?;
        }
        m.serialize_entry("CreateIndex", &e.create_index)?;
        m.serialize_entry("ModifyIndex", &e.modify_index)?;
        m.end()
    }
}

impl<'a> From<&'a ConfigEntry> for EntryJson<'a> {
    fn from(e: &'a ConfigEntry) -> Self {
        Self(e)
    }
}

/// Consul's `CanRead` of a config entry.
pub(crate) fn can_read(a: &Authorizer, kind: &str, name: &str) -> bool {
    kind == PROXY_DEFAULTS || a.service_read(name)
}

/// The `/v1/config` routes.
pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/config", put(set))
        .route("/v1/config/{kind}", get(list).delete(delete_without_name))
        .route("/v1/config/{kind}/{name}", get(read).delete(delete))
}

/// `PUT /v1/config[?cas=N]`.
async fn set(
    State(st): State<ApiState>,
    acl: Acl,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let q = Query::parse(q.as_deref());
    let cas =
        match q.get("cas") {
            Some(v) => Some(v.parse::<u64>().map_err(|_| {
                ApiError::Internal(format!("strconv.ParseUint: parsing {v:?}: invalid syntax"))
            })?),
            None => None,
        };
    let value = parse_body(&body).map_err(|e| match e {
        ApiError::Decode(m) => ApiError::BadRequest(format!("Bad request: Request decoding failed: {m}")),
        other => other,
    })?;
    let entry = decode_entry(value, &st.snapshots.load().catalog)?;
    require(config_entry_write(&acl, &entry.kind, &entry.name))?;
    let cmd = Command::ConfigEntrySet { entry: Box::new(entry), cas };
    cmd.validate()?;
    match st.consensus.propose_for_as(acl.authority(), cmd).await? {
        CommandResponse::Bool(ok) => Ok(json(&ok, q.has("pretty"))),
        other => Err(ApiError::Internal(format!("unexpected response to a config entry write: {other:?}"))),
    }
}

/// `GET /v1/config/:kind/:name`.
async fn read(
    State(st): State<ApiState>,
    acl: Acl,
    Path((kind, name)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    if !known_kind(&kind) {
        return Err(ApiError::Internal(unknown_kind(&kind)));
    }
    require(can_read(&acl, &kind, &name))?;
    let q = Query::parse(q.as_deref());
    let opts = st.read_options(&q)?;
    if opts.consistency == super::blocking::Consistency::Consistent {
        st.consensus.read_barrier().await?;
    }
    let snap = st.snapshot(&opts, |s| s.catalog.config_entries().index()).await;
    let index = snap.catalog.config_entries().index();
    let Some(entry) = snap.catalog.config_entries().get(&kind, &name) else {
        let mut resp =
            ApiError::NotFound(format!("Config entry not found for {kind:?} / {name:?}")).into_response();
        st.set_read_headers(&mut resp, index, &opts);
        return Ok(resp);
    };
    Ok(st.reply(&EntryJson::from(&**entry), index, &opts, &q))
}

/// `GET /v1/config/:kind`: the entries of that kind the token may read, by name.
async fn list(
    State(st): State<ApiState>,
    acl: Acl,
    Path(kind): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    if !known_kind(&kind) {
        return Err(ApiError::Internal(unknown_kind(&kind)));
    }
    let q = Query::parse(q.as_deref());
    st.read(
        &q,
        |s| s.catalog.config_entries().index(),
        |cat| {
            let entries = cat.config_entries().of_kind(&kind).filter(|e| can_read(&acl, &e.kind, &e.name));
            entries.map(|e| owned_json(e)).collect::<Vec<_>>()
        },
    )
    .await
}

/// One entry's JSON as a value (a list outlives the snapshot it was read from).
fn owned_json(e: &ConfigEntry) -> Value {
    serde_json::to_value(EntryJson::from(e)).unwrap_or(Value::Null)
}

/// `DELETE /v1/config/:kind` (no name): Consul's 404.
async fn delete_without_name(Path(kind): Path<String>) -> ApiError {
    if known_kind(&kind) {
        ApiError::NotFound("Must provide both a kind and name to delete".into())
    } else {
        ApiError::BadRequest(unknown_kind(&kind))
    }
}

/// `DELETE /v1/config/:kind/:name`: `{}` (deleting an absent entry succeeds, as in Consul).
async fn delete(
    State(st): State<ApiState>,
    acl: Acl,
    Path((kind, name)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    if !known_kind(&kind) {
        return Err(ApiError::BadRequest(unknown_kind(&kind)));
    }
    require(config_entry_write(&acl, &kind, &name))?;
    st.propose(acl.authority(), Command::ConfigEntryDelete { kind, name }).await?;
    let q = Query::parse(q.as_deref());
    Ok(json(&Map::new(), q.has("pretty")))
}
