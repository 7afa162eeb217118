//! `PUT /v1/txn`: Consul's transactions (api-docs txn.mdx, spec §4.10).
//!
//! Input: a JSON array of `{"KV":{Verb,Key,Value,Flags,Index,Session}}`, `{"Node":{Verb,Node}}`,
//! `{"Service":{Verb,Node,Service}}`, `{"Check":{Verb,Check}}` → `TxnOp`s.
//! Read-only transactions (`get*`/`check*` verbs and catalog `get`) run on a snapshot with the
//! read headers; any write goes through Raft as one `Command::Txn` (all or nothing).
//! Output: 200 `{"Results":[…],"Errors":null}` or 409 `{"Results":null,"Errors":[{OpIndex,What}]}`.
//! ACLs (Consul's `Txn.preCheck`, spec §1.6): every KV operation is vetted before anything
//! runs, `delete-tree` with `key:write` on the whole prefix, `check-index` and `check-session`
//! with `key:read`, every other KV verb but `get` and `get-tree` with `key:write`
//! (`check-not-exists` and even `get-or-empty` too, a Consul quirk [live on 1.8.7]); any refusal answers 409 with one
//! `{"OpIndex":i,"What":"Permission denied"}` per refused operation and nothing applied. Reads
//! (`get`, `get-tree`, catalog `get`s) are not vetted: their results are filtered, so a
//! read-only transaction of unreadable keys is a 200 with fewer results. Service writes need
//! `service:write` on the service name (Consul's `vetServiceTxnOp`).
//! Limits: at most 128 operations (413), the router's 512 KiB body limit (413); an
//! undecodable body is 400. Service operations take Consul's verbs `set`, `cas`, `delete`,
//! `delete-cas` and `get` (live on 1.8.7); before anything runs, Consul's pre-check refuses a
//! service ID without a name, an unspecified service address and an unknown KV or Service verb
//! (409, one error per refused operation). Node and Check operations take `get` only (400).
//! A read-only reply carries Consul's `QueryMeta` in its body (`Index`, `LastContact`,
//! `KnownLeader`, `ConsistencyLevel`) and the `X-Consul-KnownLeader`/`LastContact` headers;
//! a write's reply has no `X-Consul-Index` (as Consul).

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json as jv};

use super::error::ApiError;
use super::kv::{KvEntryJson, check_key};
use super::query::Query;
use super::token::Acl;
use super::wire::{HealthCheckJson, NodeJson, ServiceJson};
use super::{ApiState, json};
use crate::acl::Authorizer;
use crate::catalog::CatalogState;
use crate::catalog::validate;
use crate::catalog::{Command, CommandResponse, KvOp, KvWrite, TxnOp, TxnResult};
use crate::clock::unix_ms;

fn field<'a>(obj: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v).filter(|v| !v.is_null())
}

fn text(obj: &serde_json::Map<String, Value>, name: &str) -> Result<String, ApiError> {
    match field(obj, name) {
        None => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(ApiError::BadRequest(format!("Failed to parse body: {name} must be a string"))),
    }
}

fn number(obj: &serde_json::Map<String, Value>, name: &str) -> Result<u64, ApiError> {
    match field(obj, name) {
        None => Ok(0),
        Some(v) => v
            .as_u64()
            .ok_or_else(|| ApiError::BadRequest(format!("Failed to parse body: {name} must be a number"))),
    }
}

fn object<'a>(v: &'a Value, what: &str) -> Result<&'a serde_json::Map<String, Value>, ApiError> {
    v.as_object()
        .ok_or_else(|| ApiError::BadRequest(format!("Failed to parse body: {what} must be an object")))
}

fn kv_op(o: &serde_json::Map<String, Value>) -> Result<Parsed, ApiError> {
    let verb = text(o, "Verb")?;
    let key = text(o, "Key")?;
    check_key(&key)?;
    let value = match text(o, "Value")? {
        v if v.is_empty() => Vec::new(),
        v => STANDARD
            .decode(v.as_bytes())
            .map_err(|e| ApiError::BadRequest(format!("Failed to parse body: Value: {e}")))?,
    };
    let index = number(o, "Index")?;
    let session = text(o, "Session")?;
    let w = KvWrite { key: key.clone(), value, flags: number(o, "Flags")?, index, session: session.clone() };
    Ok(Parsed::Op(Box::new(TxnOp::Kv(match verb.as_str() {
        "set" => KvOp::Set(w),
        "cas" => KvOp::Cas(w),
        "lock" => KvOp::Lock(w),
        "unlock" => KvOp::Unlock(w),
        "get" => KvOp::Get(key),
        "get-or-empty" => KvOp::GetOrEmpty(key),
        "get-tree" => KvOp::GetTree(key),
        "check-index" => KvOp::CheckIndex(key, index),
        "check-session" => KvOp::CheckSession(key, session),
        "check-not-exists" => KvOp::CheckNotExists(key),
        "delete" => KvOp::Delete(key),
        "delete-tree" => KvOp::DeleteTree(key),
        "delete-cas" => KvOp::DeleteCas(key, index),
        other => return Ok(Parsed::Refused(format!("unknown KV verb {other:?}"))),
    }))))
}

fn catalog_op(kind: &str, o: &serde_json::Map<String, Value>) -> Result<Parsed, ApiError> {
    let verb = text(o, "Verb")?;
    if kind == "Service" && verb != "get" {
        return service_write(&verb, o);
    }
    if verb != "get" {
        return Err(ApiError::BadRequest(format!(
            "{kind} verb {verb:?} is not supported in transactions (only \"get\")"
        )));
    }
    let inner = |name: &str| -> Result<&serde_json::Map<String, Value>, ApiError> {
        object(field(o, name).unwrap_or(&Value::Null), name)
    };
    Ok(Parsed::Op(Box::new(match kind {
        "Node" => TxnOp::NodeGet(text(inner("Node")?, "Node")?),
        "Service" => TxnOp::ServiceGet(text(o, "Node")?, text(inner("Service")?, "ID")?),
        _ => {
            let c = inner("Check")?;
            TxnOp::CheckGet(text(c, "Node")?, text(c, "CheckID")?)
        }
    })))
}

/// One decoded operation, or the reason Consul's pre-check (`servicePreApply`) refuses it
/// before anything runs (a 409 naming the operation).
enum Parsed {
    Op(Box<TxnOp>),
    Refused(String),
}

/// A Service `set`, `cas`, `delete` or `delete-cas` (live on 1.8.7): the ID defaults to the
/// name; an ID without a name, an unspecified address and an unknown verb are refused.
fn service_write(verb: &str, o: &serde_json::Map<String, Value>) -> Result<Parsed, ApiError> {
    let node = text(o, "Node")?;
    let mut svc = object(field(o, "Service").unwrap_or(&Value::Null), "Service")?.clone();
    let modify_index = number(&svc, "ModifyIndex")?;
    let (name, id) = (text(&svc, "Service")?, text(&svc, "ID")?);
    if !id.is_empty() && name.is_empty() {
        return Ok(Parsed::Refused("Must provide service name with ID".into()));
    }
    let unspecified = text(&svc, "Address")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified());
    if unspecified {
        return Ok(Parsed::Refused("Invalid service address".into()));
    }
    if !matches!(verb, "set" | "cas" | "delete" | "delete-cas") {
        return Ok(Parsed::Refused(format!("unknown Service verb {verb:?}")));
    }
    svc.retain(|k, _| !k.eq_ignore_ascii_case("ModifyIndex"));
    let s = super::wire::decode_txn_service(&Value::Object(svc), &node)?;
    Ok(Parsed::Op(Box::new(match verb {
        "set" => TxnOp::ServiceSet(s),
        "cas" => TxnOp::ServiceCas(s, modify_index),
        "delete" => TxnOp::ServiceDelete(s),
        _ => TxnOp::ServiceDeleteCas(s, modify_index),
    })))
}

/// Decodes the request body into operations; a 409 when Consul's pre-check refuses any.
pub(crate) fn parse_ops(body: &Bytes, pretty: bool) -> Result<Result<Vec<TxnOp>, Response>, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("Failed to parse body: {e}")))?;
    let Value::Array(items) = v else {
        return Err(ApiError::BadRequest("Failed to parse body: expected a JSON array".into()));
    };
    let mut ops = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let o = object(item, "operation")?;
        let (kind, inner) = o
            .iter()
            .find(|(_, v)| !v.is_null())
            .ok_or_else(|| ApiError::BadRequest("Failed to parse body: empty operation".into()))?;
        let inner = object(inner, kind)?;
        let parsed = match kind.to_ascii_lowercase().as_str() {
            "kv" => kv_op(inner)?,
            "node" => catalog_op("Node", inner)?,
            "service" => catalog_op("Service", inner)?,
            "check" => catalog_op("Check", inner)?,
            other => {
                return Err(ApiError::BadRequest(format!(
                    "Failed to parse body: unknown operation {other:?}"
                )));
            }
        };
        match parsed {
            Parsed::Op(op) => ops.push(*op),
            Parsed::Refused(what) => errors.push(jv!({ "OpIndex": i, "What": what })),
        }
    }
    if errors.is_empty() {
        return Ok(Ok(ops));
    }
    let mut r = json(&TxnReply { results: None, errors: Some(errors) }, pretty);
    *r.status_mut() = StatusCode::CONFLICT;
    Ok(Err(r))
}

fn is_read(op: &TxnOp) -> bool {
    match op {
        TxnOp::Kv(k) => k.is_read(),
        TxnOp::NodeGet(_) | TxnOp::ServiceGet(..) | TxnOp::CheckGet(..) => true,
        TxnOp::ServiceSet(_)
        | TxnOp::ServiceCas(..)
        | TxnOp::ServiceDelete(_)
        | TxnOp::ServiceDeleteCas(..) => false,
    }
}

/// The 409 of a transaction with refused operations, or `None` when all may run.
fn refused(a: &Authorizer, ops: &[TxnOp], pretty: bool) -> Option<Response> {
    let errors: Vec<Value> = crate::acl_state::permission::txn_refusals(a, ops)
        .into_iter()
        .map(|e| jv!({ "OpIndex": e.op_index, "What": e.what }))
        .collect();
    if errors.is_empty() {
        return None;
    }
    let mut r = json(&TxnReply { results: None, errors: Some(errors) }, pretty);
    *r.status_mut() = StatusCode::CONFLICT;
    Some(r)
}

/// Whether the token may see a result: `key:read`, `node:read`, `service:read` (and
/// `node:read`) on what it names.
fn visible(a: &Authorizer, cat: &CatalogState, r: &TxnResult) -> bool {
    match r {
        TxnResult::Kv(e, _) => a.key_read(&e.key),
        TxnResult::Node(n) => a.node_read(n),
        TxnResult::Service(n, id) => {
            a.node_read(n) && cat.service(n, id).is_none_or(|s| a.service_read(&s.name))
        }
        TxnResult::Check(n, id) => {
            cat.check(n, id).is_none_or(|c| super::enforce::check_visible(a, n, &c.service_name))
                && a.node_read(n)
        }
    }
}

fn render(cat: &CatalogState, r: &TxnResult) -> Value {
    match r {
        TxnResult::Kv(e, with_value) => jv!({ "KV": KvEntryJson::new(e, *with_value) }),
        TxnResult::Node(n) => {
            let node = cat.node(n).map(|n| NodeJson::from(&**n));
            jv!({ "Node": empty_as_null(jv!(node), &["TaggedAddresses", "Meta"]) })
        }
        TxnResult::Service(n, id) => {
            let service = cat.service(n, id).map(|s| ServiceJson::catalog(s));
            jv!({ "Service": empty_as_null(jv!(service), &["Tags", "Meta", "TaggedAddresses"]) })
        }
        TxnResult::Check(n, id) => {
            let check = cat.check(n, id).map(|c| HealthCheckJson::from(&**c));
            jv!({ "Check": empty_as_null(jv!(check), &["ServiceTags"]) })
        }
    }
}

/// Consul's transaction results are its stored structs, whose unset lists and maps are `null`
/// (live on 1.8.7); the Go client's `TestAPI_ClientTxn` compares them with nil maps.
fn empty_as_null(mut v: Value, keys: &[&str]) -> Value {
    if let Value::Object(m) = &mut v {
        for k in keys {
            let empty = match m.get(*k) {
                Some(Value::Object(o)) => o.is_empty(),
                Some(Value::Array(a)) => a.is_empty(),
                _ => false,
            };
            if empty {
                m.insert((*k).to_owned(), Value::Null);
            }
        }
    }
    v
}

/// Consul's `TxnResponse`, fields in Consul's order.
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct TxnReply {
    results: Option<Vec<Value>>,
    errors: Option<Vec<Value>>,
}

/// Consul's `TxnReadResponse` meta, appended to a read-only transaction's reply (live on
/// 1.8.7: `Index` 0 and `ConsistencyLevel` "" whatever the mode, the read not being a
/// blocking query; the headers carry `X-Consul-KnownLeader` and `X-Consul-LastContact` only).
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct TxnReadReply {
    results: Option<Vec<Value>>,
    errors: Option<Vec<Value>>,
    index: u64,
    last_contact: u64,
    known_leader: bool,
    consistency_level: &'static str,
}

fn outcome(
    resp: CommandResponse,
    a: &Authorizer,
    cat: &CatalogState,
) -> Result<(StatusCode, TxnReply), ApiError> {
    match resp {
        CommandResponse::Txn(Ok(results)) => {
            let results: Vec<Value> =
                results.iter().filter(|r| visible(a, cat, r)).map(|r| render(cat, r)).collect();
            Ok((StatusCode::OK, TxnReply { results: Some(results), errors: None }))
        }
        CommandResponse::Txn(Err(errors)) => {
            let errors: Vec<Value> =
                errors.iter().map(|e| jv!({ "OpIndex": e.op_index, "What": e.what })).collect();
            Ok((StatusCode::CONFLICT, TxnReply { results: None, errors: Some(errors) }))
        }
        other => Err(ApiError::Internal(format!("unexpected transaction response {other:?}"))),
    }
}

/// The reply of a read-only transaction, on a snapshot.
async fn read(st: &ApiState, acl: &Acl, q: &Query, ops: &[TxnOp]) -> Result<Response, ApiError> {
    let opts = st.read_options(q)?;
    if opts.consistency == crate::http::Consistency::Consistent {
        st.consensus.read_barrier().await?;
    }
    let snap = st.snapshots.load_full();
    let resp = crate::catalog::apply::read_txn(&snap.catalog, ops);
    let (status, reply) = outcome(resp, acl, &snap.catalog)?;
    let (known_leader, last_contact) = (st.consensus.known_leader(), st.consensus.last_contact_ms());
    let reply = TxnReadReply {
        results: reply.results,
        errors: reply.errors,
        index: 0,
        last_contact,
        known_leader,
        consistency_level: "",
    };
    let mut r = json(&reply, q.has("pretty"));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert("X-Consul-KnownLeader", HeaderValue::from_static(if known_leader { "true" } else { "false" }));
    h.insert("X-Consul-LastContact", HeaderValue::from(last_contact));
    Ok(r)
}

/// `PUT /v1/txn`.
pub(crate) async fn txn(
    State(st): State<ApiState>,
    acl: Acl,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let q = Query::parse(raw.as_deref());
    let pretty = q.has("pretty");
    let ops = match parse_ops(&body, pretty)? {
        Ok(ops) => ops,
        Err(refused) => return Ok(refused),
    };
    validate::txn_ops(&ops)?;
    if let Some(r) = refused(&acl, &ops, pretty) {
        return Ok(r);
    }
    if ops.iter().all(is_read) {
        let started = std::time::Instant::now();
        let reply = read(&st, &acl, &q, &ops).await;
        crate::metrics::measure("consul.txn.read", Vec::new(), started.elapsed());
        return reply;
    }
    let cmd = Command::Txn { ops, now_ms: unix_ms() };
    cmd.validate()?;
    let resp = st.consensus.propose_for_as(acl.authority(), cmd).await?;
    let snap = st.snapshots.load_full();
    let (status, reply) = outcome(resp, &acl, &snap.catalog)?;
    // Consul 1.8.7 (live) sets no `X-Consul-Index` on a write transaction.
    let mut r = json(&reply, pretty);
    *r.status_mut() = status;
    Ok(r)
}
