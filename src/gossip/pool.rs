//! POOLS: what tells cairn's two gossip pools apart, as Consul's two Serf pools differ.
//!
//! - The LAN pool holds every agent of one datacenter, named by node name, on `ports.serf_lan`
//!   with HashiCorp's LAN timings. A join that would merge in a member of another datacenter is
//!   refused with Consul's text (`Member 's2' part of wrong datacenter 'dc2'`).
//! - The WAN pool holds the servers of every datacenter, named `<node>.<dc>`, on
//!   `ports.serf_wan` with HashiCorp's WAN timings (probe every 5 s, 3 s timeout), with a keyring
//!   file of its own (`serf/remote.keyring`). A join that would merge in a member that is not
//!   a server is refused (`Member 'c1' is not a server`). Clients have no WAN pool.
//!
//! `by_distance` orders the datacenters seen in the WAN pool as `/v1/catalog/datacenters`
//! does: each datacenter's estimated round trip is the median of the Vivaldi distances from
//! this server to its servers' WAN coordinates (Consul's `GetDatacentersByDistance`), the
//! local datacenter first, a name sort breaking ties; a datacenter none of whose servers has
//! a coordinate yet sorts after the measured ones. A datacenter is listed while any of its
//! servers has not left (a failed one still counts, as in Consul).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use memberlist::delegate::MergeDelegate;
use memberlist::proto::NodeState;
use smol_str::SmolStr;

use super::{Member, MemberStatus, Role};
use crate::catalog::operator::Coordinate;
use crate::codec;

/// Which gossip pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pool {
    /// One datacenter's agents.
    Lan,
    /// Every datacenter's servers.
    Wan,
}

/// A WAN member's name: `<node>.<dc>`.
pub(crate) fn wan_name(node: &str, dc: &str) -> String {
    format!("{node}.{dc}")
}

/// Why a merge (a join) was refused: Consul's text.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct MergeRefused(String);

/// Refuses a join that would merge a member this pool must not hold.
pub(crate) struct PoolGuard {
    /// The pool guarded.
    pub pool: Pool,
    /// This agent's datacenter.
    pub dc: String,
}

impl PoolGuard {
    /// Consul's refusal for a peer (`name`, its meta bytes), if any. A peer whose meta does not
    /// decode (another kind of agent) is let through, as Consul lets a member without tags.
    fn refusal(&self, name: &str, meta: &[u8]) -> Option<String> {
        let meta: super::NodeMeta = codec::decode_node_meta(meta).ok()?;
        match self.pool {
            Pool::Lan if meta.dc != self.dc => {
                Some(format!("Member '{name}' part of wrong datacenter '{}'", meta.dc))
            }
            Pool::Wan if meta.role != Role::Server => Some(format!("Member '{name}' is not a server")),
            Pool::Lan | Pool::Wan => None,
        }
    }
}

impl MergeDelegate for PoolGuard {
    type Id = SmolStr;
    type Address = std::net::SocketAddr;
    type Error = MergeRefused;

    async fn notify_merge(
        &self,
        peers: Arc<[NodeState<SmolStr, std::net::SocketAddr>]>,
    ) -> Result<(), MergeRefused> {
        match peers.iter().find_map(|p| self.refusal(p.id(), p.meta())) {
            Some(why) => {
                tracing::warn!(pool = ?self.pool, error = %why, "gossip join refused");
                Err(MergeRefused(why))
            }
            None => Ok(()),
        }
    }
}

/// The datacenters of the WAN `members` (those with a server that has not left), nearest
/// first from `me` (this server's WAN coordinate) through the `coords` of the members by
/// name; `local` first (see the module doc).
pub(crate) fn by_distance(
    local: &str,
    me: &Coordinate,
    members: &[Member],
    coords: &BTreeMap<String, Coordinate>,
) -> Vec<String> {
    let mut rtts: HashMap<String, Vec<f64>> = HashMap::new();
    rtts.insert(local.to_owned(), Vec::new());
    for m in members.iter().filter(|m| m.status != MemberStatus::Left) {
        let Some(meta) = m.meta.as_ref().filter(|x| x.role == Role::Server) else { continue };
        let list = rtts.entry(meta.dc.clone()).or_default();
        if let Some(c) = coords.get(&m.name) {
            list.push(super::vivaldi::distance(me, c));
        }
    }
    let mut dcs: Vec<(String, f64)> = rtts
        .into_iter()
        .map(|(dc, mut list)| {
            let rtt = if dc == local {
                -1.0
            } else if list.is_empty() {
                f64::INFINITY
            } else {
                list.sort_by(f64::total_cmp);
                list[list.len() / 2]
            };
            (dc, rtt)
        })
        .collect();
    dcs.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    dcs.into_iter().map(|(dc, _)| dc).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gossip::NodeMeta;

    fn meta(role: Role, dc: &str) -> NodeMeta {
        NodeMeta {
            role,
            dc: dc.into(),
            raft_addr: "127.0.0.1:8300".into(),
            raft_id: 1,
            version: "1.8.7".into(),
            leaving: false,
            node_id: String::new(),
            wan_join_port: 0,
        }
    }

    fn server(name: &str, dc: &str, status: MemberStatus) -> Member {
        Member {
            name: name.into(),
            addr: "127.0.0.1:8302".parse().expect("addr"),
            status,
            meta: Some(meta(Role::Server, dc)),
            protocol: 2,
        }
    }

    fn at(x: f64) -> Coordinate {
        let mut c = super::super::vivaldi::origin();
        c.vec[0] = x;
        c.height = 0.0;
        c
    }

    #[test]
    fn datacenters_sort_by_median_rtt_then_name_with_the_local_one_first() {
        let members = vec![
            server("s1.dc1", "dc1", MemberStatus::Alive),
            server("a.far", "far", MemberStatus::Alive),
            server("b.far", "far", MemberStatus::Failed),
            server("c.far", "far", MemberStatus::Alive),
            server("a.near", "near", MemberStatus::Alive),
            server("a.gone", "gone", MemberStatus::Left),
            server("a.new", "new", MemberStatus::Alive),
            server("a.also", "also", MemberStatus::Alive),
        ];
        let coords: BTreeMap<String, Coordinate> = [
            ("s1.dc1", 0.0),
            ("a.far", 0.010),
            ("b.far", 0.300),
            ("c.far", 0.020),
            ("a.near", 0.005),
            ("a.also", 0.005),
        ]
        .into_iter()
        .map(|(n, x)| (n.to_owned(), at(x)))
        .collect();
        let got = by_distance("dc1", &at(0.0), &members, &coords);
        assert_eq!(got, ["dc1", "also", "near", "far", "new"], "the median of far is 20 ms");
    }

    #[test]
    fn the_guard_refuses_consuls_way() {
        let enc = |m: &NodeMeta| codec::encode_node_meta(m).expect("encode").into_bytes();
        let lan = PoolGuard { pool: Pool::Lan, dc: "dc1".into() };
        assert_eq!(
            lan.refusal("s2", &enc(&meta(Role::Server, "dc2"))).as_deref(),
            Some("Member 's2' part of wrong datacenter 'dc2'")
        );
        assert_eq!(lan.refusal("c1", &enc(&meta(Role::Client, "dc1"))), None);
        let wan = PoolGuard { pool: Pool::Wan, dc: "dc1".into() };
        assert_eq!(wan.refusal("s2.dc2", &enc(&meta(Role::Server, "dc2"))), None);
        assert_eq!(
            wan.refusal("c1", &enc(&meta(Role::Client, "dc1"))).as_deref(),
            Some("Member 'c1' is not a server")
        );
        assert_eq!(wan.refusal("x", b"not json"), None);
    }
}
