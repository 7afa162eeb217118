//! `/v1/session/*`: Consul's sessions (api-docs session.mdx, spec §4.9).
//!
//! WRITE  create: optional JSON body → defaults (`Node` = this agent, `LockDelay` 15 s capped
//!        at 60 s, `NodeChecks` = `["serfHealth"]`, `Behavior` release) → TTL and behaviour
//!        validation (500 with Consul's text) → `Command::SessionCreate` with a fresh UUID →
//!        `{"ID"}` and the leader's TTL timer armed. destroy → `Command::SessionDestroy` →
//!        `true` (also for an unknown ID). renew → re-arms the leader's timer (a follower forwards
//!        it over the server RPC) → `[session]`, 404 unknown.
//! READ   info/node/list → blocking on the sessions table index.
//! Decision: when `NodeChecks` is not given and the node has no `serfHealth` check (a node
//! registered through the catalog, not by an agent), the session binds to no node check rather
//! than failing; an explicit `NodeChecks` naming a missing check fails as in Consul.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use serde::Serialize;
use serde_json::Value;

use super::error::ApiError;
use super::query::Query;
use super::token::{Acl, require};
use super::{ApiState, json};
use crate::agent::parse_go_duration;
use crate::catalog::CatalogState;
use crate::catalog::Command;
use crate::catalog::kv::{Session, SessionBehavior};
use crate::catalog::validate;
use crate::clock::unix_ms;
use crate::session::ttl_of;

/// Consul's default lock-delay.
const DEFAULT_LOCK_DELAY: Duration = Duration::from_secs(15);

/// `{"ID","Namespace"}` of a bound service check.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ServiceCheckJson {
    #[serde(rename = "ID")]
    id: String,
    namespace: String,
}

/// Consul's session JSON.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct SessionJson {
    #[serde(rename = "ID")]
    id: String,
    name: String,
    node: String,
    // No legacy `Checks`: Consul 1.8.7 lists a session's checks only as `NodeChecks` and
    // `ServiceChecks` [live], and the Go client reads an absent `Checks` as nil.
    node_checks: Vec<String>,
    service_checks: Option<Vec<ServiceCheckJson>>,
    lock_delay: u64,
    behavior: &'static str,
    #[serde(rename = "TTL")]
    ttl: String,
    create_index: u64,
    modify_index: u64,
}

impl SessionJson {
    fn new(s: &Session) -> Self {
        let service_checks = s.service_checks.as_ref().map(|v| {
            v.iter().map(|id| ServiceCheckJson { id: id.clone(), namespace: String::new() }).collect()
        });
        Self {
            id: s.id.clone(),
            name: s.name.clone(),
            node: s.node.clone(),
            node_checks: s.node_checks.clone(),
            service_checks,
            lock_delay: s.lock_delay_ns,
            behavior: s.behavior.as_str(),
            ttl: s.ttl.clone(),
            create_index: s.create_index,
            modify_index: s.modify_index,
        }
    }
}

fn decode_err(msg: impl std::fmt::Display) -> ApiError {
    ApiError::Decode(msg.to_string())
}

fn strings(v: &Value, field: &str) -> Result<Vec<String>, ApiError> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                i.as_str().map(str::to_owned).ok_or_else(|| decode_err(format!("{field}: expected strings")))
            })
            .collect(),
        _ => Err(decode_err(format!("{field}: expected an array"))),
    }
}

/// Consul's lock-delay rule: a duration string, or a number (< 1000: seconds, else ns).
fn lock_delay(v: &Value) -> Result<Duration, ApiError> {
    let d = match v {
        Value::Null => return Ok(DEFAULT_LOCK_DELAY),
        Value::String(s) => parse_go_duration(s).map_err(decode_err)?,
        Value::Number(n) => {
            let n = n.as_u64().ok_or_else(|| decode_err("LockDelay: expected a non-negative integer"))?;
            if n < 1000 { Duration::from_secs(n) } else { Duration::from_nanos(n) }
        }
        _ => return Err(decode_err("LockDelay: expected a duration")),
    };
    Ok(d.min(validate::MAX_LOCK_DELAY))
}

/// The create request's body as a JSON object: an empty body or `null` is `{}`.
fn body_object(body: &Bytes) -> Result<serde_json::Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice::<Value>(body).map_err(decode_err)? {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(serde_json::Map::new()),
        _ => Err(decode_err("expected a JSON object")),
    }
}

/// `ServiceChecks`: the IDs of `[{"ID": ...}]`; `None` when it is not an array (left unset).
fn service_check_ids(v: &Value) -> Result<Option<Vec<String>>, ApiError> {
    let Value::Array(items) = v else { return Ok(None) };
    let mut ids = Vec::new();
    for i in items {
        let id = i
            .as_object()
            .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case("id")))
            .and_then(|(_, v)| v.as_str())
            .ok_or_else(|| decode_err("ServiceChecks: expected {\"ID\": ...} objects"))?;
        ids.push(id.to_owned());
    }
    Ok(Some(ids))
}

/// `Behavior`: `release` (also when empty) or `delete`; anything else is Consul's RPC error.
fn behavior(v: &Value) -> Result<SessionBehavior, ApiError> {
    let b = v.as_str().unwrap_or_default();
    match b {
        "" | "release" => Ok(SessionBehavior::Release),
        "delete" => Ok(SessionBehavior::Delete),
        other => Err(ApiError::Internal(format!("Invalid Behavior setting '{other}'"))),
    }
}

/// `TTL`: a Go duration within Consul's bounds (`validate::session_ttl`; Consul's RPC errors
/// otherwise); `None` when empty (no TTL).
fn session_ttl(v: &Value) -> Result<Option<&str>, ApiError> {
    let t = v.as_str().ok_or_else(|| decode_err("TTL: expected a duration string"))?;
    validate::session_ttl(t)?;
    Ok((!t.is_empty()).then_some(t))
}

/// Builds the session a create request asks for (without ID and indexes).
pub(crate) fn session_from_body(
    body: &Bytes,
    cat: &CatalogState,
    agent_node: &str,
) -> Result<Session, ApiError> {
    let obj = body_object(body)?;
    let mut s = Session {
        id: String::new(),
        name: String::new(),
        node: agent_node.to_owned(),
        lock_delay_ns: 0,
        behavior: SessionBehavior::Release,
        ttl: String::new(),
        node_checks: Vec::new(),
        service_checks: None,
        create_index: 0,
        modify_index: 0,
    };
    let mut delay = DEFAULT_LOCK_DELAY;
    let mut node_checks: Option<Vec<String>> = None;
    for (k, v) in &obj {
        match k.to_ascii_lowercase().as_str() {
            "id" => {}
            "name" => s.name = v.as_str().unwrap_or_default().to_owned(),
            "node" => {
                if let Some(n) = v.as_str().filter(|n| !n.is_empty()) {
                    n.clone_into(&mut s.node);
                }
            }
            "lockdelay" => delay = lock_delay(v)?,
            "nodechecks" | "checks" => {
                if !v.is_null() {
                    node_checks.get_or_insert_with(Vec::new).extend(strings(v, k)?);
                }
            }
            "servicechecks" => {
                if let Some(ids) = service_check_ids(v)? {
                    s.service_checks = Some(ids);
                }
            }
            "behavior" => s.behavior = behavior(v)?,
            "ttl" => {
                if let Some(t) = session_ttl(v)? {
                    t.clone_into(&mut s.ttl);
                }
            }
            "namespace" | "partition" => {}
            other => return Err(decode_err(format!("json: unknown field {other:?}"))),
        }
    }
    s.lock_delay_ns = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
    s.node_checks = match node_checks {
        Some(c) => c,
        // Consul's default; bound only when the node has it (see the module doc).
        None if cat.check(&s.node, "serfHealth").is_some() => vec!["serfHealth".to_owned()],
        None => Vec::new(),
    };
    Ok(s)
}

/// `PUT /v1/session/create`.
pub(crate) async fn create(
    State(st): State<ApiState>,
    acl: Acl,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let q = Query::parse(raw.as_deref());
    let mut s = {
        let snap = st.snapshots.load();
        session_from_body(&body, &snap.catalog, &st.config.node_name)?
    };
    require(acl.session_write(&s.node))?;
    s.id = uuid::Uuid::new_v4().to_string();
    let (id, ttl) = (s.id.clone(), ttl_of(&s.ttl));
    st.propose(acl.authority(), Command::SessionCreate { session: s, now_ms: unix_ms() }).await?;
    if let Some(ttl) = ttl {
        st.sessions.renew(&id, ttl);
    }
    Ok(json(&serde_json::json!({ "ID": id }), q.has("pretty")))
}

/// `PUT /v1/session/destroy/:id`.
pub(crate) async fn destroy(
    State(st): State<ApiState>,
    acl: Acl,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = Query::parse(raw.as_deref());
    // An unknown session is a no-op write; a known one needs session:write on its node.
    if let Some(s) = st.snapshots.load().catalog.kv().session(&id) {
        require(acl.session_write(&s.node))?;
    }
    st.propose(acl.authority(), Command::SessionDestroy { id, now_ms: unix_ms() }).await?;
    Ok(json(&true, q.has("pretty")))
}

/// `PUT /v1/session/renew/:id`.
pub(crate) async fn renew(
    State(st): State<ApiState>,
    acl: Acl,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = Query::parse(raw.as_deref());
    let opts = st.read_options(&q)?;
    let snap = st.snapshots.load_full();
    let Some(s) = snap.catalog.kv().session(&id) else {
        return Err(ApiError::NotFound(format!("Session id '{id}' not found")));
    };
    require(acl.session_write(&s.node))?;
    if let Some(ttl) = ttl_of(&s.ttl) {
        // The timers run on the leader: a follower passes the renewal on.
        let started = std::time::Instant::now();
        if st.consensus.forward_session_renew(&id, ttl).await? {
            st.sessions.renew(&id, ttl);
        }
        crate::metrics::measure("consul.session.renew", Vec::new(), started.elapsed());
    }
    let index = snap.catalog.kv().indexes().sessions;
    Ok(st.reply(&[SessionJson::new(s)], index, &opts, &q))
}

/// The sessions `keep` selects that the token may read (`session:read` on their node).
fn list_where(cat: &CatalogState, acl: &Acl, keep: impl Fn(&Session) -> bool) -> Vec<SessionJson> {
    cat.kv()
        .sessions()
        .filter(|s| keep(s) && acl.session_read(&s.node))
        .map(|s| SessionJson::new(s))
        .collect()
}

fn sessions_index(s: &crate::snapshot::CatalogSnapshot) -> u64 {
    s.catalog.kv().indexes().sessions
}

/// `GET /v1/session/info/:id`: `[session]` or `[]`.
pub(crate) async fn info(
    State(st): State<ApiState>,
    acl: Acl,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = Query::parse(raw.as_deref());
    st.read(&q, sessions_index, |cat| list_where(cat, &acl, |s| s.id == id)).await
}

/// `GET /v1/session/node/:node`.
pub(crate) async fn node(
    State(st): State<ApiState>,
    acl: Acl,
    Path(node): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = Query::parse(raw.as_deref());
    st.read(&q, sessions_index, |cat| list_where(cat, &acl, |s| s.node.eq_ignore_ascii_case(&node))).await
}

/// `GET /v1/session/list`.
pub(crate) async fn list(
    State(st): State<ApiState>,
    acl: Acl,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = Query::parse(raw.as_deref());
    st.read(&q, sessions_index, |cat| list_where(cat, &acl, |_| true)).await
}

#[cfg(test)]
mod tests {
    use axum::body::Bytes;

    use super::session_from_body;
    use crate::catalog::apply::apply;
    use crate::catalog::kv::{Session, SessionBehavior};
    use crate::catalog::testing::{health_check, node, register};
    use crate::catalog::{CatalogState, HealthStatus};

    /// A catalog where `agent` has `serfHealth` and `bare` has no check.
    fn catalog() -> CatalogState {
        let mut state = CatalogState::default();
        let mut changes = Vec::new();
        let serf = health_check("agent", "serfHealth", "", HealthStatus::Passing);
        apply(&mut state, 1, &register(node("agent", "10.0.0.1"), None, vec![serf]), &mut changes);
        apply(&mut state, 2, &register(node("bare", "10.0.0.2"), None, vec![]), &mut changes);
        state
    }

    fn check(body: &str) -> Result<Session, String> {
        session_from_body(&Bytes::from(body.to_owned()), &catalog(), "agent").map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_follow_consul() {
        let s = check("").unwrap();
        assert_eq!(
            (s.node.as_str(), s.lock_delay_ns, s.behavior),
            ("agent", 15_000_000_000, SessionBehavior::Release)
        );
        assert_eq!(s.node_checks, vec!["serfHealth".to_owned()]);
        assert_eq!((s.ttl.as_str(), s.service_checks.clone()), ("", None));
        // A node without serfHealth gets no default node check (see the module doc).
        assert!(check(r#"{"Node":"bare"}"#).unwrap().node_checks.is_empty());
        // Explicit checks are kept as given (apply validates them).
        assert_eq!(check(r#"{"Node":"bare","NodeChecks":["x"]}"#).unwrap().node_checks, vec!["x".to_owned()]);
    }

    #[test]
    fn lock_delay_numbers_below_1000_are_seconds_and_the_cap_is_60s() {
        assert_eq!(check(r#"{"LockDelay":5}"#).unwrap().lock_delay_ns, 5_000_000_000);
        assert_eq!(check(r#"{"LockDelay":2000000}"#).unwrap().lock_delay_ns, 2_000_000);
        assert_eq!(check(r#"{"lockdelay":"2s"}"#).unwrap().lock_delay_ns, 2_000_000_000);
        assert_eq!(check(r#"{"LockDelay":"5m"}"#).unwrap().lock_delay_ns, 60_000_000_000);
    }

    #[test]
    fn ttl_behavior_and_fields_are_validated() {
        assert_eq!(check(r#"{"ttl":"10s"}"#).unwrap().ttl, "10s");
        assert_eq!(
            check(r#"{"TTL":"9s"}"#).unwrap_err(),
            "Invalid Session TTL '9s', must be between [10s=24h0m0s]"
        );
        assert!(check(r#"{"TTL":"25h"}"#).is_err());
        assert_eq!(check(r#"{"Behavior":"delete"}"#).unwrap().behavior, SessionBehavior::Delete);
        assert_eq!(check(r#"{"Behavior":"explode"}"#).unwrap_err(), "Invalid Behavior setting 'explode'");
        assert!(check(r#"{"Bogus":1}"#).unwrap_err().contains("unknown field"));
        assert!(check("[1]").is_err());
        let s =
            check(r#"{"ServiceChecks":[{"ID":"web-ttl","Namespace":""}],"Checks":["serfHealth"]}"#).unwrap();
        assert_eq!(s.service_checks, Some(vec!["web-ttl".to_owned()]));
        assert_eq!(s.node_checks, vec!["serfHealth".to_owned()]);
    }
}
