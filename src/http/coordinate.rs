//! `/v1/coordinate/datacenters`, `/v1/coordinate/nodes`, `/v1/coordinate/node/:node` and
//! `PUT /v1/coordinate/update`: the nodes' Vivaldi network coordinates.
//!
//! Input: the catalog's coordinates (`catalog::operator`), which every agent's own feed
//! (`gossip::coordinate`, from gossip probe round trips) and `PUT /v1/coordinate/update`
//! write through Raft (`Command::CoordinateBatch`). Output: Consul's JSON (`Node`, `Segment`,
//! `Coord { Vec[8], Error, Adjustment, Height }`), blocking on the coordinates' index.
//!
//! `/v1/coordinate/datacenters` on a server with a WAN pool lists every datacenter of the pool
//! (nearest first, as `/v1/catalog/datacenters`) with its servers' WAN coordinates as this
//! server last heard them in probe acks (Consul's Serf cache; node names without the `.<dc>`
//! suffix, `AreaID` `wan`); a server that has not been probed yet is missing. Without a WAN
//! pool only this datacenter, with its servers' LAN coordinates standing in.
//! ACL: `node:read` per node to read (rows filtered), `node:write` on the node to update.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::ApiError;
use super::query::Query;
use super::token::{Acl, require};
use super::{ApiState, json, parse_body};
use crate::catalog::operator::{Coordinate, CoordinateEntry};
use crate::catalog::{CatalogState, Command};
use crate::snapshot::CatalogSnapshot;

/// Consul's `Coordinate` row.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct EntryJson {
    node: String,
    segment: String,
    coord: CoordJson,
}

/// Serf's `Coordinate` JSON.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CoordJson {
    vec: Vec<f64>,
    error: f64,
    adjustment: f64,
    height: f64,
}

impl From<&CoordinateEntry> for EntryJson {
    fn from(e: &CoordinateEntry) -> Self {
        let c = &e.coord;
        Self {
            node: e.node.clone(),
            segment: e.segment.clone(),
            coord: CoordJson {
                vec: c.vec.clone(),
                error: c.error,
                adjustment: c.adjustment,
                height: c.height,
            },
        }
    }
}

/// Consul's `DatacenterMap`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct DatacenterJson {
    datacenter: String,
    #[serde(rename = "AreaID")]
    area_id: &'static str,
    coordinates: Vec<EntryJson>,
}

/// The coordinates of nodes still in the catalog, in node order.
fn rows<'a>(cat: &'a CatalogState, acl: &'a Acl) -> impl Iterator<Item = &'a Arc<CoordinateEntry>> + 'a {
    cat.operator().coordinates().filter(move |e| cat.node(&e.node).is_some() && acl.node_read(&e.node))
}

fn coordinates_index(s: &CatalogSnapshot) -> u64 {
    s.catalog.operator().coordinates_index()
}

/// `GET /v1/coordinate/datacenters`.
pub(super) async fn datacenters(State(st): State<ApiState>, RawQuery(q): RawQuery) -> Response {
    let q = Query::parse(q.as_deref());
    if let Some(wan) = &st.wan {
        use crate::gossip::Membership as _;
        let members = wan.members().await;
        let coords = wan.coordinates();
        let order = super::catalog::known_datacenters(&st).await;
        let list: Vec<DatacenterJson> = order
            .into_iter()
            .map(|dc| {
                let coordinates = members
                    .iter()
                    .filter(|m| m.status != crate::gossip::MemberStatus::Left)
                    .filter(|m| {
                        m.meta.as_ref().is_some_and(|x| x.dc == dc && x.role == crate::gossip::Role::Server)
                    })
                    .filter_map(|m| {
                        let node = m.name.strip_suffix(&format!(".{dc}")).unwrap_or(&m.name).to_owned();
                        let c = coords.get(&m.name)?;
                        Some(EntryJson::from(&CoordinateEntry {
                            node,
                            segment: String::new(),
                            coord: c.clone(),
                        }))
                    })
                    .collect();
                DatacenterJson { datacenter: dc, area_id: "wan", coordinates }
            })
            .collect();
        return json(&list, q.has("pretty"));
    }
    let snap = st.snapshots.load_full();
    let cat = &snap.catalog;
    let servers: Vec<EntryJson> = cat
        .operator()
        .coordinates()
        .filter(|e| cat.node_services(&e.node).any(|s| s.name == "consul"))
        .map(|e| EntryJson::from(&**e))
        .collect();
    let dc =
        DatacenterJson { datacenter: st.config.datacenter.clone(), area_id: "wan", coordinates: servers };
    json(&[dc], q.has("pretty"))
}

/// `GET /v1/coordinate/nodes`.
pub(super) async fn nodes(
    State(st): State<ApiState>,
    acl: Acl,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let q = Query::parse(q.as_deref());
    st.read(&q, coordinates_index, |cat| rows(cat, &acl).map(|e| EntryJson::from(&**e)).collect::<Vec<_>>())
        .await
}

/// `GET /v1/coordinate/node/:node`: 404 when the node has none.
pub(super) async fn node(
    State(st): State<ApiState>,
    acl: Acl,
    Path(node): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let q = Query::parse(q.as_deref());
    let opts = st.read_options(&q)?;
    if opts.consistency == super::blocking::Consistency::Consistent {
        st.consensus.read_barrier().await?;
    }
    let snap = st.snapshot(&opts, coordinates_index).await;
    let rows: Vec<EntryJson> = snap
        .catalog
        .operator()
        .node_coordinates(&node)
        .filter(|e| snap.catalog.node(&e.node).is_some() && acl.node_read(&e.node))
        .map(|e| EntryJson::from(&**e))
        .collect();
    if rows.is_empty() {
        return Err(ApiError::NotFound(String::new()));
    }
    Ok(st.reply(&rows, coordinates_index(&snap), &opts, &q))
}

/// `PUT /v1/coordinate/update`: stores one node's coordinate.
pub(super) async fn update(State(st): State<ApiState>, acl: Acl, body: Bytes) -> Result<Response, ApiError> {
    let v = parse_body(&body)?;
    let Some(entry) = decode(&v)? else {
        // Consul answers 200 and its batch drops an update without a node or a coordinate.
        return Ok(().into_response());
    };
    require(acl.node_write(&entry.node))?;
    st.propose(acl.authority(), Command::CoordinateBatch(vec![entry])).await?;
    Ok(().into_response())
}

/// The field `name` of object `v`, matched case-insensitively (Go's decoder).
fn field<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v.as_object()?.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
}

/// The update `v` describes; `None` when it names no node or carries no coordinate.
fn decode(v: &Value) -> Result<Option<CoordinateEntry>, ApiError> {
    let text = |name: &str| -> Result<String, ApiError> {
        match field(v, name) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(ApiError::Decode(format!(
                "json: cannot unmarshal into Go struct field CoordinateEntry.{name} of type string"
            ))),
        }
    };
    let node = text("Node")?;
    let segment = text("Segment")?;
    let coord = match field(v, "Coord") {
        None | Some(Value::Null) => return Ok(None),
        Some(c) => {
            let get = |name: &str| field(c, name).and_then(Value::as_f64).unwrap_or(0.0);
            let vec = match field(c, "Vec") {
                Some(Value::Array(a)) => {
                    a.iter().map(|x| x.as_f64().ok_or(())).collect::<Result<Vec<_>, ()>>()
                }
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(_) => Err(()),
            }
            .map_err(|()| {
                ApiError::Decode(
                    "json: cannot unmarshal into Go struct field Coordinate.Coord.Vec of type float64".into(),
                )
            })?;
            Coordinate { vec, error: get("Error"), adjustment: get("Adjustment"), height: get("Height") }
        }
    };
    Ok((!node.is_empty()).then_some(CoordinateEntry { node, segment, coord }))
}
