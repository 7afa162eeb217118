//! `/v1/kv/*`: Consul's key/value API (api-docs kv.mdx, spec §4.8).
//!
//! READ   GET → key check → blocking wait on the key's ModifyIndex or the prefix index →
//!        `[entry]` / `?recurse` entries / `?keys` names / `?raw` bytes; 404 (empty body,
//!        `X-Consul-Index` set) when nothing matches.
//! WRITE  PUT/DELETE → key check, flag parsing → `Command::Kv` with the proposer's clock →
//!        `true`/`false`.
//! Invariants: keys with `.`/`..` segments, leading or trailing spaces, NUL or control bytes are
//! refused with 400 before anything else; `cas`, `acquire` and `release` are mutually
//! exclusive; values over 512 KiB are refused with 413 (the router's body limit); `?raw` is
//! served as `application/octet-stream` with `X-Content-Type-Options: nosniff` and a sandbox
//! CSP, so a stored value can never run as a page.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;

use super::blocking::ReadOptions;
use super::error::ApiError;
use super::query::Query;
use super::token::{Acl, require};
use super::{ApiState, json};
use crate::catalog::kv::KvEntry;
use crate::catalog::validate;
use crate::catalog::{Command, CommandResponse, KvOp, KvWrite};
use crate::clock::unix_ms;

/// Consul's KV entry JSON.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct KvEntryJson {
    /// Lock acquisitions.
    pub(crate) lock_index: u64,
    /// Key.
    pub(crate) key: String,
    /// Flags.
    pub(crate) flags: u64,
    /// Base64 value, `null` when empty.
    pub(crate) value: Option<String>,
    /// Holding session, omitted when unlocked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) session: Option<String>,
    /// Creation index.
    pub(crate) create_index: u64,
    /// Last modification index.
    pub(crate) modify_index: u64,
}

impl KvEntryJson {
    /// The JSON of `e`, with its value or without (`Value: null`).
    pub(crate) fn new(e: &KvEntry, with_value: bool) -> Self {
        Self {
            lock_index: e.lock_index,
            key: e.key.clone(),
            flags: e.flags,
            value: (with_value && !e.value.is_empty()).then(|| STANDARD.encode(&e.value)),
            session: (!e.session.is_empty()).then(|| e.session.clone()),
            create_index: e.create_index,
            modify_index: e.modify_index,
        }
    }
}

/// Checks a key for path tricks (`.`/`..` segments, surrounding spaces, control bytes) and
/// length (`catalog::validate::kv_key`); the message is the 400 body.
pub(crate) fn check_key(key: &str) -> Result<(), ApiError> {
    Ok(validate::kv_key(key)?)
}

fn parse_u64(q: &Query, name: &str, what: &str) -> Result<Option<u64>, ApiError> {
    q.get(name)
        .map(|v| v.parse::<u64>().map_err(|_| ApiError::BadRequest(format!("Invalid {what}"))))
        .transpose()
}

/// `GET /v1/kv/` (no key).
pub(crate) async fn get_root(st: State<ApiState>, acl: Acl, q: RawQuery) -> Result<Response, ApiError> {
    get(st, acl, Path(String::new()), q).await
}

/// `PUT /v1/kv/` (no key).
pub(crate) async fn put_root(_st: State<ApiState>, _q: RawQuery) -> Result<Response, ApiError> {
    Err(ApiError::BadRequest("Missing key name".into()))
}

/// `DELETE /v1/kv/` (no key): only with `?recurse` (deletes everything).
pub(crate) async fn delete_root(st: State<ApiState>, acl: Acl, q: RawQuery) -> Result<Response, ApiError> {
    delete(st, acl, Path(String::new()), q).await
}

/// `GET /v1/kv/:key`.
pub(crate) async fn get(
    State(st): State<ApiState>,
    acl: Acl,
    Path(key): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = Query::parse(raw.as_deref());
    check_key(&key)?;
    let list = q.has("keys");
    let recurse = q.has("recurse");
    if key.is_empty() && !list && !recurse {
        return Err(ApiError::BadRequest("Missing key name".into()));
    }
    let by_prefix = list || recurse;
    // A single key needs key:read even when it is missing; a listing needs key:list on the
    // prefix only under `acl.enable_key_list_policy`, and is filtered per entry either way.
    if !by_prefix || st.enable_key_list_policy {
        require(if by_prefix { acl.key_list(&key) } else { acl.key_read(&key) })?;
    }
    let opts = st.read_options(&q)?;
    if opts.consistency == crate::http::Consistency::Consistent {
        st.consensus.read_barrier().await?;
    }
    let index_of = |s: &crate::snapshot::CatalogSnapshot| {
        if by_prefix { s.catalog.kv().prefix_index(&key) } else { s.catalog.kv().key_index(&key) }
    };
    let snap = st.snapshot(&opts, index_of).await;
    let index = index_of(&snap);
    let kv = snap.catalog.kv();
    if list {
        let sep = q.get("separator").or_else(|| q.get("seperator")).unwrap_or("");
        let mut names: Vec<String> = Vec::new();
        for e in kv.prefix(&key) {
            let rest = &e.key[key.len()..];
            let name = match rest.find(sep).filter(|_| !sep.is_empty()) {
                Some(i) => &e.key[..key.len() + i + sep.len()],
                None => e.key.as_str(),
            };
            if names.last().is_none_or(|l| l != name) && acl.key_read(name) {
                names.push(name.to_owned());
            }
        }
        if names.is_empty() && !key.is_empty() {
            return Ok(not_found(&st, index, &opts));
        }
        return Ok(st.reply(&names, index, &opts, &q));
    }
    if recurse {
        let entries: Vec<KvEntryJson> =
            kv.prefix(&key).filter(|e| acl.key_read(&e.key)).map(|e| KvEntryJson::new(e, true)).collect();
        if entries.is_empty() {
            return Ok(not_found(&st, index, &opts));
        }
        return Ok(st.reply(&entries, index, &opts, &q));
    }
    let Some(e) = kv.entry(&key) else {
        return Ok(not_found(&st, index, &opts));
    };
    if q.has("raw") {
        let mut resp = (StatusCode::OK, e.value.clone()).into_response();
        st.set_read_headers(&mut resp, index, &opts);
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        h.insert("X-Content-Type-Options", HeaderValue::from_static("nosniff"));
        h.insert("Content-Security-Policy", HeaderValue::from_static("sandbox"));
        return Ok(resp);
    }
    Ok(st.reply(&[KvEntryJson::new(e, true)], index, &opts, &q))
}

fn not_found(st: &ApiState, index: u64, opts: &ReadOptions) -> Response {
    let mut resp = StatusCode::NOT_FOUND.into_response();
    st.set_read_headers(&mut resp, index, opts);
    resp
}

/// `PUT /v1/kv/:key` with `?flags`, `?cas`, `?acquire`, `?release`; the body is the value.
pub(crate) async fn put(
    State(st): State<ApiState>,
    acl: Acl,
    Path(key): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let q = Query::parse(raw.as_deref());
    check_key(&key)?;
    if key.is_empty() {
        return Err(ApiError::BadRequest("Missing key name".into()));
    }
    require(acl.key_write(&key))?;
    let flags = parse_u64(&q, "flags", "flags")?.unwrap_or(0);
    let cas = parse_u64(&q, "cas", "cas index")?;
    let acquire = q.get("acquire");
    let release = q.get("release");
    if usize::from(cas.is_some()) + usize::from(acquire.is_some()) + usize::from(release.is_some()) > 1 {
        return Err(ApiError::BadRequest(
            "Conflicting flags: cas=, acquire= and release= are mutually exclusive".into(),
        ));
    }
    let mut w = KvWrite { key, value: body.to_vec(), flags, ..KvWrite::default() };
    let op = if let Some(index) = cas {
        w.index = index;
        KvOp::Cas(w)
    } else if let Some(s) = acquire {
        w.session = s.to_owned();
        KvOp::Lock(w)
    } else if let Some(s) = release {
        w.session = s.to_owned();
        KvOp::Unlock(w)
    } else {
        KvOp::Set(w)
    };
    write(&st, &acl, op, &q).await
}

/// `DELETE /v1/kv/:key` with `?recurse` or `?cas`.
pub(crate) async fn delete(
    State(st): State<ApiState>,
    acl: Acl,
    Path(key): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = Query::parse(raw.as_deref());
    check_key(&key)?;
    let recurse = q.has("recurse");
    let cas = parse_u64(&q, "cas", "cas index")?;
    if recurse && cas.is_some() {
        return Err(ApiError::BadRequest(
            "Conflicting flags: cas= and recurse= are mutually exclusive".into(),
        ));
    }
    if key.is_empty() && !recurse {
        return Err(ApiError::BadRequest("Missing key name".into()));
    }
    require(if recurse { acl.key_write_prefix(&key) } else { acl.key_write(&key) })?;
    let op = match cas {
        Some(0) => return Ok(json(&false, q.has("pretty"))),
        Some(index) => KvOp::DeleteCas(key, index),
        None if recurse => KvOp::DeleteTree(key),
        None => KvOp::Delete(key),
    };
    write(&st, &acl, op, &q).await
}

async fn write(st: &ApiState, acl: &Acl, op: KvOp, q: &Query) -> Result<Response, ApiError> {
    let cmd = Command::Kv { op, now_ms: unix_ms() };
    cmd.validate()?;
    match st.consensus.propose_for_as(acl.authority(), cmd).await? {
        CommandResponse::Bool(b) => Ok(json(&b, q.has("pretty"))),
        other => Err(ApiError::Internal(format!("unexpected KV write response {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::check_key;

    fn check(key: &str, ok: bool) {
        assert_eq!(check_key(key).is_ok(), ok, "{key:?}");
    }

    #[test]
    fn path_tricks_are_refused_and_ordinary_keys_pass() {
        for key in ["", "a", "a/b/", "a/..b", "a.b/c..", "dir/.hidden", "ü/ñ", "a b"] {
            check(key, true);
        }
        for key in ["..", "a/../b", "a/..", "./a", "a/./b", " a", "a ", "a\nb", "a\0b", "a\u{7f}"] {
            check(key, false);
        }
        check(&"k".repeat(crate::catalog::kv::MAX_KEY_BYTES + 1), false);
    }
}
