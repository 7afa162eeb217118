//! `cairn rtt [-wan] NODE [NODE2]`: the round trip time between two nodes estimated from
//! their network coordinates, as Consul's `consul rtt` prints it (`Estimated a <-> b rtt:
//! 0.172 ms (using LAN coordinates)`).
//!
//! Input: `GET /v1/coordinate/nodes` (LAN) or `/v1/coordinate/datacenters` (`-wan`, nodes
//! named `node.dc`); the second node defaults to the local agent. The distance is Serf's
//! (`gossip::vivaldi::distance`); with LAN coordinates a node's segment is matched as
//! Consul's `CoordinateSet.Intersect` does (a node in one segment uses that one, else the
//! default segment).

use std::collections::BTreeMap;

use clap::Args;
use serde::Deserialize;
use serde_json::Value;

use super::ConsulMessage;
use super::api::Api;
use super::event::node_name;
use crate::catalog::operator::Coordinate;

/// `cairn rtt` arguments.
#[derive(Debug, Args)]
pub struct RttArgs {
    /// Use WAN coordinates instead of LAN coordinates.
    #[arg(long)]
    pub wan: bool,
    /// One or two node names (the second defaults to the local agent's node).
    pub nodes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Coord {
    vec: Vec<f64>,
    error: f64,
    adjustment: f64,
    height: f64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    node: String,
    #[serde(default)]
    segment: String,
    coord: Coord,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Datacenter {
    datacenter: String,
    #[serde(rename = "AreaID")]
    area_id: String,
    coordinates: Vec<Entry>,
}

impl From<&Coord> for Coordinate {
    fn from(c: &Coord) -> Self {
        Self { vec: c.vec.clone(), error: c.error, adjustment: c.adjustment, height: c.height }
    }
}

/// Consul's `CoordinateSet.Intersect`: the coordinates of one segment both sets share.
fn intersect<'a>(
    a: &BTreeMap<&str, &'a Coord>,
    b: &BTreeMap<&str, &'a Coord>,
) -> (Option<&'a Coord>, Option<&'a Coord>) {
    let mut segment = "";
    for set in [a, b] {
        if set.len() == 1 {
            segment = set.keys().next().copied().unwrap_or_default();
        }
    }
    (a.get(segment).copied(), b.get(segment).copied())
}

/// Runs `rtt`; returns Consul's line.
pub async fn run(api: &Api, args: &RttArgs) -> Result<String, ConsulMessage> {
    let mut nodes = args.nodes.clone();
    if nodes.is_empty() || nodes.len() > 2 {
        return Err(ConsulMessage("One or two node names must be specified".into()));
    }
    let coords = |e| ConsulMessage(format!("Error getting coordinates: {e}"));
    let lookup = |e: ConsulMessage| {
        ConsulMessage(e.0.replace("Error querying Consul agent", "Unable to look up agent info"))
    };
    let source;
    let (c1, c2): (Option<Coordinate>, Option<Coordinate>);
    if args.wan {
        source = "WAN";
        if nodes.len() < 2 {
            let me: Value = api
                .get("/v1/agent/self")
                .await
                .and_then(|r| r.json())
                .map_err(|e| ConsulMessage(format!("Unable to look up agent info: {e}")))?;
            let c = &me["Config"];
            nodes.push(format!(
                "{}.{}",
                c["NodeName"].as_str().unwrap_or_default(),
                c["Datacenter"].as_str().unwrap_or_default()
            ));
        }
        let split = |n: &str| {
            n.split_once('.').filter(|(_, dc)| !dc.contains('.')).map(|(a, b)| (a.to_owned(), b.to_owned()))
        };
        let (Some((node1, dc1)), Some((node2, dc2))) = (split(&nodes[0]), split(&nodes[1])) else {
            return Err(ConsulMessage(
                "Node names must be specified as <node name>.<datacenter> with -wan".into(),
            ));
        };
        let dcs: Vec<Datacenter> =
            api.get("/v1/coordinate/datacenters").await.and_then(|r| r.json()).map_err(coords)?;
        let (mut a1, mut a2, mut found) = (None, None, (None, None));
        'search: for dc in &dcs {
            for e in &dc.coordinates {
                if dc.datacenter == dc1 && e.node == node1 {
                    a1 = Some(&dc.area_id);
                    found.0 = Some(Coordinate::from(&e.coord));
                }
                if dc.datacenter == dc2 && e.node == node2 {
                    a2 = Some(&dc.area_id);
                    found.1 = Some(Coordinate::from(&e.coord));
                }
                if a1 == a2 && found.0.is_some() && found.1.is_some() {
                    break 'search;
                }
            }
        }
        (c1, c2) = if a1 == a2 { found } else { (None, None) };
    } else {
        source = "LAN";
        if nodes.len() < 2 {
            nodes.push(node_name(api).await.map_err(lookup)?);
        }
        let entries: Vec<Entry> =
            api.get("/v1/coordinate/nodes").await.and_then(|r| r.json()).map_err(coords)?;
        let set = |name: &str| -> BTreeMap<&str, &Coord> {
            entries.iter().filter(|e| e.node == name).map(|e| (e.segment.as_str(), &e.coord)).collect()
        };
        let (s1, s2) = (set(&nodes[0]), set(&nodes[1]));
        let (a, b) = intersect(&s1, &s2);
        (c1, c2) = (a.map(Coordinate::from), b.map(Coordinate::from));
    }
    let c1 =
        c1.ok_or_else(|| ConsulMessage(format!("Could not find a coordinate for node {:?}", nodes[0])))?;
    let c2 =
        c2.ok_or_else(|| ConsulMessage(format!("Could not find a coordinate for node {:?}", nodes[1])))?;
    let ms = crate::gossip::vivaldi::distance(&c1, &c2) * 1000.0;
    Ok(format!("Estimated {} <-> {} rtt: {ms:.3} ms (using {source} coordinates)\n", nodes[0], nodes[1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coord(x: f64) -> Coord {
        let mut vec = vec![0.0; 8];
        vec[0] = x;
        Coord { vec, error: 1.5, adjustment: 0.0, height: 1.0e-5 }
    }

    #[test]
    fn segments_intersect_as_consul_does() {
        let (a, b, c) = (coord(0.001), coord(0.002), coord(0.003));
        let s1: BTreeMap<&str, &Coord> = [("", &a), ("alpha", &b)].into();
        let s2: BTreeMap<&str, &Coord> = [("alpha", &c)].into();
        let (x, y) = intersect(&s1, &s2);
        assert_eq!(x.map(|c| c.vec[0]), Some(0.002));
        assert_eq!(y.map(|c| c.vec[0]), Some(0.003));
        let s3: BTreeMap<&str, &Coord> = [("", &c)].into();
        let (x, _) = intersect(&s1, &s3);
        assert_eq!(x.map(|c| c.vec[0]), Some(0.001));
    }
}
