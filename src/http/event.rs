//! `PUT /v1/event/fire/:name` and `GET /v1/event/list`: Consul's user events.
//!
//! Input: the event's name, its payload (the request body) and `?node=`, `?service=`,
//! `?tag=` filters (regular expressions); `?name=` and blocking `?index=`/`?wait=` to list.
//! Output: Consul's `UserEvent` JSON (`ID`, `Name`, `Payload` base64 or null, filters,
//! `Version` 1, `LTime`), delivered to every agent over gossip (`gossip::user_event`).
//!
//! The list is this agent's buffer (the 256 most recent events that targeted it), oldest
//! first; `X-Consul-Index` is Consul's `IDToIndex` of the last event listed, and a blocking
//! list returns when that changes. ACL: `event:write` on the name to fire, `event:read` per
//! event to list (rows filtered).

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderValue;
use axum::response::Response;
use base64::Engine;
use serde::Serialize;

use super::error::ApiError;
use super::query::Query;
use super::token::{Acl, require};
use super::{ApiState, json, rest};
use crate::gossip::user_event::{UserEvent, id_to_index};

/// Consul's `UserEvent` JSON.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct EventJson {
    #[serde(rename = "ID")]
    id: String,
    name: String,
    payload: Option<String>,
    node_filter: String,
    service_filter: String,
    tag_filter: String,
    version: u8,
    #[serde(rename = "LTime")]
    ltime: u64,
}

impl From<&UserEvent> for EventJson {
    fn from(e: &UserEvent) -> Self {
        Self {
            id: e.id.clone(),
            name: e.name.clone(),
            payload: e.payload.as_ref().map(|p| base64::engine::general_purpose::STANDARD.encode(p)),
            node_filter: e.node_filter.clone(),
            service_filter: e.service_filter.clone(),
            tag_filter: e.tag_filter.clone(),
            version: e.version,
            ltime: e.ltime,
        }
    }
}

fn gossip(st: &ApiState) -> Result<&std::sync::Arc<crate::gossip::Lan>, ApiError> {
    st.gossip.as_ref().ok_or_else(|| ApiError::Internal("gossip is not running".into()))
}

/// `PUT /v1/event/fire/:name`.
pub(super) async fn fire(
    State(st): State<ApiState>,
    acl: Acl,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    fire_named(st, acl, rest(&name).to_owned(), q, body).await
}

/// `PUT /v1/event/fire/` (no name).
pub(super) async fn fire_unnamed(
    State(st): State<ApiState>,
    acl: Acl,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    fire_named(st, acl, String::new(), q, body).await
}

async fn fire_named(
    st: ApiState,
    acl: Acl,
    name: String,
    q: Option<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    if name.is_empty() {
        return Err(ApiError::BadRequest("Missing name".into()));
    }
    let q = Query::parse(q.as_deref());
    let filter = |k: &str| q.get(k).unwrap_or_default().to_owned();
    let event = UserEvent {
        id: uuid::Uuid::new_v4().to_string(),
        name,
        payload: (!body.is_empty()).then(|| body.to_vec()),
        node_filter: filter("node"),
        service_filter: filter("service"),
        tag_filter: filter("tag"),
        version: 1,
        ltime: 0,
    };
    require(acl.event_write(&event.name))?;
    event.validate().map_err(|e| ApiError::Internal(e.to_string()))?;
    let reply = EventJson::from(&event);
    let gossip = gossip(&st)?;
    let snap = st.snapshots.load_full();
    let node = st.config.node_name.clone();
    gossip.fire_event(event, |e| e.targets(&node, &snap.catalog)).await;
    Ok(json(&reply, q.has("pretty")))
}

/// `GET /v1/event/list[?name=][&index=&wait=]`.
pub(super) async fn list(
    State(st): State<ApiState>,
    acl: Acl,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let q = Query::parse(q.as_deref());
    let opts = super::blocking::parse_read_options(&q)?;
    let events = gossip(&st)?.user_events().clone();
    let name = q.get("name").filter(|n| !n.is_empty()).map(str::to_owned);
    let visible = |all: Vec<UserEvent>| -> Vec<UserEvent> {
        all.into_iter()
            .filter(|e| name.as_ref().is_none_or(|n| *n == e.name) && acl.event_read(&e.name))
            .collect()
    };
    let mut changes = events.subscribe();
    let deadline = tokio::time::Instant::now() + super::blocking::with_jitter(opts.wait);
    let rows = loop {
        let rows = visible(events.list().0);
        let index = rows.last().map_or(0, |e| id_to_index(&e.id));
        if opts.min_index == 0 || index != opts.min_index {
            break rows;
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => break rows,
        }
    };
    let index = rows.last().map_or(0, |e| id_to_index(&e.id));
    let body: Vec<EventJson> = rows.iter().map(EventJson::from).collect();
    let mut resp = json(&body, q.has("pretty"));
    resp.headers_mut().insert("X-Consul-Index", HeaderValue::from(index.max(1)));
    Ok(resp)
}
