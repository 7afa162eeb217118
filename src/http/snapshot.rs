//! `GET /v1/snapshot`: the catalog at the current index as a checksummed backup file, cairn's
//! format (`backup`) or, with `?format=consul`, Consul 1.8.7's archive; `PUT /v1/snapshot`:
//! checks a file of either format (told apart by content) and replaces the catalog with it
//! through Raft (`Command::Restore`). A Consul archive is verified and read whole first, so a
//! damaged one is refused (400, Consul's message) before anything is proposed; its config
//! entries pass the same validation as `PUT /v1/config`, and what cairn does not model is
//! logged with a count per kind.
//! Both need `acl:write` (a management token), as in Consul: a snapshot holds every secret.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::config_entry_kind::decode_entry;
use super::token::{Acl, require};
use super::{ApiError, ApiState};
use crate::backup::{Backup, Import, Loaded, encode, encode_consul, load};
use crate::catalog::{CatalogDump, CatalogState, Command};

/// Largest backup accepted by `PUT /v1/snapshot`.
pub(super) const MAX_SNAPSHOT_BYTES: usize = 256 * 1024 * 1024;

fn wants_consul(raw: Option<&str>) -> Result<bool, ApiError> {
    let pairs = form_urlencoded::parse(raw.unwrap_or_default().as_bytes());
    match pairs.into_iter().find(|(k, _)| k == "format").as_ref().map(|(_, v)| v.as_ref()) {
        None | Some("" | "cairn") => Ok(false),
        Some("consul") => Ok(true),
        Some(other) => {
            Err(ApiError::BadRequest(format!("unknown snapshot format {other:?}: use cairn or consul")))
        }
    }
}

pub(super) async fn save(
    State(st): State<ApiState>,
    acl: Acl,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    require(acl.acl_write())?;
    let consul = wants_consul(q.as_deref())?;
    // One published snapshot: every row at the same index.
    let snap = st.snapshots.load_full();
    let dump = snap.catalog.dump();
    let file = if consul {
        let term = st.consensus.raft_status().map_or(1, |s| s.term.max(1));
        encode_consul(&dump, snap.index, term, crate::clock::unix_ms())
    } else {
        encode(&Backup { index: snap.index, datacenter: st.config.datacenter.clone(), catalog: dump })
    };
    let file = file.map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut resp = file.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert("X-Consul-Index", HeaderValue::from(snap.index.max(1)));
    // As Consul (live on 1.8.7): the snapshot's index and the leader's contact.
    let known = st.consensus.known_leader();
    h.insert("X-Consul-KnownLeader", HeaderValue::from_static(if known { "true" } else { "false" }));
    h.insert("X-Consul-LastContact", HeaderValue::from(st.consensus.last_contact_ms()));
    Ok(resp)
}

/// A Consul import's catalog: config entries re-validated as `PUT /v1/config` would (those
/// refused are counted with the other records left out), the counts logged.
fn imported(mut import: Import) -> CatalogDump {
    let entries = std::mem::take(&mut import.dump.config_entries.entries);
    let cat = CatalogState::from_dump(import.dump.clone());
    for e in entries {
        match decode_entry(e.body, &cat) {
            Ok(mut ok) => {
                (ok.create_index, ok.modify_index) = (e.create_index, e.modify_index);
                import.dump.config_entries.entries.push(ok);
            }
            Err(_) => *import.skipped.entry(format!("config entry {}/{}", e.kind, e.name)).or_default() += 1,
        }
    }
    let d = &import.dump;
    tracing::info!(
        last_index = import.last_index,
        nodes = d.nodes.len(),
        services = d.services.len(),
        checks = d.checks.len(),
        keys = d.kv.entries.len(),
        sessions = d.kv.sessions.len(),
        "restoring a Consul snapshot"
    );
    for (kind, n) in &import.skipped {
        tracing::warn!(kind = %kind, count = n, "Consul snapshot records cairn does not model were skipped");
    }
    import.dump
}

pub(super) async fn restore(State(st): State<ApiState>, acl: Acl, body: Bytes) -> Result<Response, ApiError> {
    require(acl.acl_write())?;
    let at = st.snapshots.load().index.max(1);
    let dump =
        match load(&body, at, &st.config.datacenter).map_err(|e| ApiError::BadRequest(e.to_string()))? {
            Loaded::Cairn(backup) => backup.catalog,
            Loaded::Consul { import, .. } => imported(import),
        };
    st.propose(acl.authority(), Command::Restore(Box::new(dump))).await?;
    Ok(().into_response())
}
