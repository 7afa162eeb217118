//! `/v1/operator/keyring`: list (GET), install (POST), use (PUT) and remove (DELETE) gossip
//! encryption keys on every member of the pool, with Consul's shapes and error texts.
//!
//! Input: the method, `?relay-factor=0..5`, `?local-only`, a `{"Key":"<base64>"}` body →
//! `gossip::Lan::keyring_operation` → output: 200 (a list of pool entries for GET, an empty
//! body for writes), or 500 with Consul's multi-line error (`N errors occurred:` then
//! `\t* dc1 (LAN) error: 1/3 nodes reported failure` and one `\t* <node>: <error>` line per
//! failing node), or 400 for a bad parameter.
//!
//! Invariants: on a server with a WAN pool an operation runs on the WAN pool first (entry
//! `"WAN":true`, errors `WAN error: …`), then on this datacenter's LAN pool (`"WAN":false`,
//! `dc1 (LAN) error: …`), each whatever the other's outcome, as Consul's `KeyringOperation`
//! does; `local-only` lists the LAN pool only. Other datacenters' LAN pools (Consul forwards
//! to one server of each) are not reached: cairn does not forward across datacenters yet. A
//! failing pool is a 500 whatever the method, with the entries dropped (Consul returns the
//! error, not the entries).

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::error::ApiError;
use super::query::Query;
use super::token::Acl;
use super::{ApiState, json, parse_body};
use crate::gossip::keyquery::{KeyringReport, MAX_RELAY_FACTOR};
use crate::gossip::keyring::{KeyOp, KeyringError};

/// One pool's keys (Consul's `KeyringResponse`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct KeyringPoolJson {
    #[serde(rename = "WAN")]
    wan: bool,
    datacenter: String,
    segment: String,
    keys: BTreeMap<String, usize>,
    primary_keys: BTreeMap<String, usize>,
    num_nodes: usize,
}

/// `GET /v1/operator/keyring`.
pub(super) async fn list(State(st): State<ApiState>, acl: Acl, RawQuery(q): RawQuery) -> Response {
    operate(&st, &acl, KeyOp::List, q.as_deref(), &Bytes::new())
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `POST /v1/operator/keyring`.
pub(super) async fn install(
    State(st): State<ApiState>,
    acl: Acl,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    operate(&st, &acl, KeyOp::Install, q.as_deref(), &body).await.unwrap_or_else(IntoResponse::into_response)
}

/// `PUT /v1/operator/keyring`.
pub(super) async fn use_key(
    State(st): State<ApiState>,
    acl: Acl,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    operate(&st, &acl, KeyOp::Use, q.as_deref(), &body).await.unwrap_or_else(IntoResponse::into_response)
}

/// `DELETE /v1/operator/keyring`.
pub(super) async fn remove(
    State(st): State<ApiState>,
    acl: Acl,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    operate(&st, &acl, KeyOp::Remove, q.as_deref(), &body).await.unwrap_or_else(IntoResponse::into_response)
}

/// Consul's 500 text for a keyring list refused by ACLs.
const KEYRING_READ_DENIED: &str = "Reading keyring denied by ACLs";
/// Consul's 500 text for a keyring change refused by ACLs.
const KEYRING_WRITE_DENIED: &str = "Modifying keyring denied due to ACLs";

async fn operate(
    st: &ApiState,
    acl: &Acl,
    op: KeyOp,
    raw: Option<&str>,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let q = Query::parse(raw);
    let relay = relay_factor(&q)?;
    let local_only = q
        .flag("local-only")
        .map_err(|_| ApiError::BadRequest("Bad request: Error parsing local-only: invalid syntax".into()))?;
    if local_only && op != KeyOp::List {
        return Err(ApiError::BadRequest(
            "Bad request: Invalid use of local-only: local-only can only be set for list requests".into(),
        ));
    }
    let key = if op.takes_key() { request_key(body)? } else { String::new() };
    // Consul's quirk: a keyring refused by ACLs is a 500 with these texts, not a 403.
    if op == KeyOp::List && !acl.keyring_read() {
        return Err(ApiError::Internal(KEYRING_READ_DENIED.into()));
    }
    if op != KeyOp::List && !acl.keyring_write() {
        return Err(ApiError::Internal(KEYRING_WRITE_DENIED.into()));
    }
    let gossip = st.gossip.as_ref().ok_or_else(|| ApiError::Internal(KeyringError::Disabled.to_string()))?;
    let dc = &st.config.datacenter;
    let wan = st.wan.as_ref().filter(|_| !local_only).map(|w| (true, w));
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    for (is_wan, pool) in wan.into_iter().chain([(false, gossip)]) {
        let label = if is_wan { "WAN".to_owned() } else { format!("{dc} (LAN)") };
        match pool.keyring_operation(op, &key, relay).await {
            Ok(report) => match pool_errors(&label, &report) {
                Some(lines) => errors.extend(lines),
                None => entries.push(KeyringPoolJson {
                    wan: is_wan,
                    datacenter: dc.clone(),
                    segment: String::new(),
                    keys: report.keys,
                    primary_keys: report.primary_keys,
                    num_nodes: report.num_nodes,
                }),
            },
            Err(e @ KeyringError::Disabled) => return Err(ApiError::Internal(e.to_string())),
            Err(e) => errors.push(format!("{label} error: {e}")),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Internal(multierror(&errors)));
    }
    if op != KeyOp::List {
        return Ok(().into_response());
    }
    Ok(json(&entries, q.has("pretty")))
}

/// `?relay-factor`: 0 when absent, else an integer in 0..=5 (Consul's texts).
fn relay_factor(q: &Query) -> Result<u8, ApiError> {
    let Some(raw) = q.get("relay-factor") else { return Ok(0) };
    let n: i64 = raw.parse().map_err(|_| {
        ApiError::BadRequest(format!(
            "Bad request: Error parsing relay factor: strconv.Atoi: parsing {raw:?}: invalid syntax"
        ))
    })?;
    u8::try_from(n).ok().filter(|n| *n <= MAX_RELAY_FACTOR).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "Bad request: Invalid relay-factor: Relay factor must be in range: [0, {MAX_RELAY_FACTOR}]"
        ))
    })
}

/// The body's `Key` (matched case-insensitively, as Go decodes); absent → `""`, which every
/// member refuses as a key of the wrong size, as Consul's do.
fn request_key(body: &Bytes) -> Result<String, ApiError> {
    let bad = |e: String| ApiError::BadRequest(format!("Bad request: Request decode failed: {e}"));
    let value = parse_body(body).map_err(|e| match e {
        ApiError::Decode(msg) => bad(msg),
        other => other,
    })?;
    let object = value.as_object().ok_or_else(|| bad("the body is not a JSON object".into()))?;
    match object.iter().find(|(k, _)| k.eq_ignore_ascii_case("key")).map(|(_, v)| v) {
        None | Some(serde_json::Value::Null) => Ok(String::new()),
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(bad("Key must be a string".into())),
    }
}

/// The error lines of the pool `label` (`WAN`, `dc1 (LAN)`), when a member failed or did not
/// reply.
fn pool_errors(label: &str, report: &KeyringReport) -> Option<Vec<String>> {
    let error = report.error.as_ref()?;
    let mut lines = vec![format!("{label} error: {error}")];
    lines.extend(report.messages.iter().map(|(node, msg)| format!("{node}: {msg}")));
    Some(lines)
}

/// Go's `multierror` text: `N errors occurred:` (or `1 error occurred:`), a `\t* ` line per
/// error, and a blank line.
fn multierror(errors: &[String]) -> String {
    let head = match errors.len() {
        1 => "1 error occurred:".to_owned(),
        n => format!("{n} errors occurred:"),
    };
    let lines: String = errors.iter().map(|e| format!("\n\t* {e}")).collect();
    format!("{head}{lines}\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_as_consuls_multierror() {
        let report = KeyringReport {
            num_nodes: 3,
            num_resp: 3,
            num_err: 1,
            error: Some("1/3 nodes reported failure".into()),
            messages: BTreeMap::from([("s2".into(), "Removing the primary key is not allowed".into())]),
            ..KeyringReport::default()
        };
        assert_eq!(
            pool_errors("dc1 (LAN)", &report).map(|lines| multierror(&lines)).as_deref(),
            Some(
                "2 errors occurred:\n\t* dc1 (LAN) error: 1/3 nodes reported failure\n\t* s2: Removing the primary key is not allowed\n\n"
            )
        );
        assert_eq!(multierror(&["x".into()]), "1 error occurred:\n\t* x\n\n");
        assert_eq!(pool_errors("WAN", &KeyringReport::default()), None);
    }

    #[test]
    fn relay_factor_is_checked_like_consul() {
        assert_eq!(relay_factor(&Query::parse(None)).ok(), Some(0));
        assert_eq!(relay_factor(&Query::parse(Some("relay-factor=5"))).ok(), Some(5));
        for bad in ["relay-factor=6", "relay-factor=-1"] {
            assert_eq!(
                relay_factor(&Query::parse(Some(bad))).unwrap_err().to_string(),
                "Bad request: Invalid relay-factor: Relay factor must be in range: [0, 5]"
            );
        }
        assert_eq!(
            relay_factor(&Query::parse(Some("relay-factor=x"))).unwrap_err().to_string(),
            "Bad request: Error parsing relay factor: strconv.Atoi: parsing \"x\": invalid syntax"
        );
    }

    #[test]
    fn the_key_is_read_case_insensitively() {
        assert_eq!(request_key(&Bytes::from_static(br#"{"key":"abc"}"#)).ok().as_deref(), Some("abc"));
        assert_eq!(request_key(&Bytes::from_static(b"{}")).ok().as_deref(), Some(""));
        assert!(
            request_key(&Bytes::from_static(b"xx")).unwrap_err().to_string().starts_with("Bad request: ")
        );
    }
}
