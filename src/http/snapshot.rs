//! `GET /v1/snapshot`: the catalog at the current index as a checksummed backup file
//! (`backup`); `PUT /v1/snapshot`: checks such a file and replaces the catalog with it
//! through Raft (`Command::Restore`). The format is cairn's, not Consul's archive.
//! Both need `acl:write` (a management token), as in Consul: a snapshot holds every secret.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::token::{Acl, require};
use super::{ApiError, ApiState};
use crate::backup::{Backup, decode, encode};
use crate::catalog::Command;

/// Largest backup accepted by `PUT /v1/snapshot`.
pub(super) const MAX_SNAPSHOT_BYTES: usize = 256 * 1024 * 1024;

pub(super) async fn save(State(st): State<ApiState>, acl: Acl) -> Result<Response, ApiError> {
    require(acl.acl_write())?;
    // One published snapshot: every row at the same index.
    let snap = st.snapshots.load_full();
    let backup =
        Backup { index: snap.index, datacenter: st.config.datacenter.clone(), catalog: snap.catalog.dump() };
    let file = encode(&backup).map_err(|e| ApiError::Internal(e.to_string()))?;
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

pub(super) async fn restore(State(st): State<ApiState>, acl: Acl, body: Bytes) -> Result<Response, ApiError> {
    require(acl.acl_write())?;
    let backup = decode(&body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    st.propose(acl.authority(), Command::Restore(Box::new(backup.catalog))).await?;
    Ok(().into_response())
}
