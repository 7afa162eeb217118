//! RECONCILE: the Raft leader turns gossip membership into catalog proposals, as Consul's
//! leader does with `serfHealth`.
//!
//! Input: `MemberEvent`s and, every `FULL_SYNC`, the whole member list. Output: proposals:
//! failed -> the node's `serfHealth` check critical ("Agent not live or unreachable"), so its
//! services leave DNS answers; alive -> passing again; left -> the node deregistered.
//!
//! With `CleanupDeadServers` (autopilot, `gossip::autopilot`), every full sync also removes
//! from the Raft configuration the servers gossip says are failed (long enough) or left. The
//! setting is autopilot's configuration in the catalog (`/v1/operator/autopilot/configuration`,
//! through Raft); the leader stores the agent's own (`autopilot.cleanup_dead_servers` and
//! Consul's defaults for the rest) once, when none is stored yet.
//!
//! Invariants: only the current leader proposes; a proposal is made only when the catalog
//! differs from what gossip says (so a full sync on a settled cluster proposes nothing).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::autopilot::{self, FailedSince, Health, Peer};
use super::{Lan, Member, MemberStatus, Membership, Role};
use crate::catalog::HealthStatus;
use crate::catalog::operator::AutopilotConfig;
use crate::catalog::{CheckUpdate, Command, Deregistration};
use crate::consensus::Consensus;

/// Full reconciliation interval (repairs anything an event missed, e.g. after a leader change).
const FULL_SYNC: Duration = Duration::from_secs(2);
/// The check Consul keeps per node.
pub(crate) const SERF_CHECK: &str = "serfHealth";
const ALIVE_OUTPUT: &str = "Agent alive and reachable";
const FAILED_OUTPUT: &str = "Agent not live or unreachable";

/// How long one autopilot removal may take (it needs a quorum to commit).
const REMOVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs until `stop` fires; `cleanup_dead_servers` is the agent's setting, stored as
/// autopilot's configuration when the catalog has none yet.
pub(crate) async fn run(
    gossip: Arc<Lan>,
    consensus: Consensus,
    cleanup_dead_servers: bool,
    stop: CancellationToken,
) {
    let mut events = gossip.subscribe();
    let mut tick = tokio::time::interval(FULL_SYNC);
    let mut failed_since = FailedSince::default();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            ev = events.recv() => match ev {
                Ok(ev) => if consensus.is_leader() {
                    reconcile(&consensus, ev.member()).await;
                },
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            _ = tick.tick() => if consensus.is_leader() {
                let members = gossip.members().await;
                for m in &members {
                    reconcile(&consensus, m).await;
                }
                let config = autopilot_config(&consensus, cleanup_dead_servers).await;
                if config.cleanup_dead_servers {
                    let min_quorum = config.min_quorum;
                    cleanup(&consensus, &gossip.local_meta().dc, &members, &mut failed_since, min_quorum).await;
                }
            },
        }
    }
}

/// What the catalog must change for `member`, if anything.
pub(crate) fn plan(snapshot: &crate::catalog::CatalogState, member: &Member) -> Option<Command> {
    snapshot.node(&member.name)?;
    let check = snapshot.check(&member.name, SERF_CHECK);
    match member.status {
        // Only an agent's node (it has `serfHealth`): a node of the same name registered
        // through the catalog API is not this member's to remove.
        MemberStatus::Left => check.map(|_| {
            Command::Deregister(Deregistration {
                node: member.name.clone(),
                service_id: None,
                check_id: None,
            })
        }),
        MemberStatus::Failed => check.filter(|c| c.status != HealthStatus::Critical).map(|_| {
            Command::UpdateCheck(CheckUpdate {
                node: member.name.clone(),
                check_id: SERF_CHECK.into(),
                status: HealthStatus::Critical,
                output: FAILED_OUTPUT.into(),
            })
        }),
        MemberStatus::Alive => check.filter(|c| c.status != HealthStatus::Passing).map(|_| {
            Command::UpdateCheck(CheckUpdate {
                node: member.name.clone(),
                check_id: SERF_CHECK.into(),
                status: HealthStatus::Passing,
                output: ALIVE_OUTPUT.into(),
            })
        }),
    }
}

/// The Raft configuration with each server's gossip health (servers of this datacenter,
/// matched by their gossiped Raft id).
fn peers(
    consensus: &Consensus,
    dc: &str,
    members: &[Member],
    failed_since: &mut FailedSince,
    now: Instant,
) -> Vec<Peer> {
    let status: BTreeMap<u64, MemberStatus> = members
        .iter()
        .filter_map(|m| {
            let meta = m.meta.as_ref()?;
            (meta.role == Role::Server && meta.dc == dc).then_some((meta.raft_id, m.status))
        })
        .collect();
    let servers = consensus.servers();
    let ids: Vec<u64> = servers.iter().map(|s| s.id).collect();
    failed_since.retain(&ids);
    servers
        .iter()
        .map(|s| {
            let st = status.get(&s.id).copied();
            let failed = failed_since.observe(s.id, st == Some(MemberStatus::Failed), now);
            let health = match (st, failed) {
                (Some(MemberStatus::Left), _) => Some(Health::Left),
                (_, Some(d)) => Some(Health::Failed(d)),
                (Some(_), None) => Some(Health::Alive),
                (None, None) => None,
            };
            Peer { id: s.id, voter: s.voter, health }
        })
        .collect()
}

/// Autopilot's configuration in the catalog; when none is stored yet, the leader stores the
/// agent's own (check-and-set on index 0, so an operator's earlier write wins) and uses it.
async fn autopilot_config(consensus: &Consensus, cleanup_dead_servers: bool) -> AutopilotConfig {
    if let Some(c) = consensus.snapshots().load().catalog.operator().autopilot() {
        return (**c).clone();
    }
    let config = AutopilotConfig::defaults(cleanup_dead_servers);
    let cmd = Command::AutopilotSet { config: Box::new(config.clone()), cas: Some(0) };
    if let Err(e) = consensus.propose_for(cmd).await {
        tracing::warn!(error = %e, "storing the autopilot configuration failed; the next full sync retries");
    }
    config
}

/// Autopilot: removes the dead servers `autopilot::plan` picks, one at a time.
async fn cleanup(
    consensus: &Consensus,
    dc: &str,
    members: &[Member],
    failed_since: &mut FailedSince,
    min_quorum: u64,
) {
    let peers = peers(consensus, dc, members, failed_since, Instant::now());
    for id in autopilot::plan(consensus.node_id(), &peers, autopilot::DEAD_SERVER_DELAY, min_quorum) {
        let name = members
            .iter()
            .find(|m| m.meta.as_ref().is_some_and(|meta| meta.raft_id == id))
            .map_or("", |m| m.name.as_str());
        tracing::info!(id, node = name, "autopilot: removing a dead server from the Raft configuration");
        match tokio::time::timeout(REMOVE_TIMEOUT, consensus.remove_server(id)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(id, error = %e, "autopilot: removal failed; the next full sync retries");
                return;
            }
            Err(_) => {
                tracing::warn!(id, "autopilot: removal not committed in time; the next full sync retries");
                return;
            }
        }
    }
}

async fn reconcile(consensus: &Consensus, member: &Member) {
    let snap = consensus.snapshots().load_full();
    let Some(cmd) = plan(&snap.catalog, member) else { return };
    tracing::info!(node = %member.name, status = member.status.as_str(), "reconciling gossip membership into the catalog");
    if let Err(e) = consensus.propose(cmd).await {
        tracing::warn!(node = %member.name, error = %e, "reconcile proposal failed; the next full sync retries");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Registration;
    use crate::catalog::{CatalogState, Check, Node};
    use crate::gossip::{Member, MemberStatus};

    fn catalog(serf: HealthStatus) -> CatalogState {
        let mut state = CatalogState::default();
        let cmd = Command::Register(Registration {
            node: Node::new("n1", "10.0.0.1", "dc1"),
            skip_node_update: false,
            service: None,
            checks: vec![Check::new("n1", SERF_CHECK, "", serf)],
        });
        let mut changes = Vec::new();
        crate::catalog::apply::apply(&mut state, 1, &cmd, &mut changes);
        state
    }

    fn member(name: &str, status: MemberStatus) -> Member {
        Member {
            name: name.into(),
            addr: "127.0.0.1:8301".parse().expect("addr"),
            status,
            meta: None,
            protocol: 2,
        }
    }

    fn check_plan(serf: HealthStatus, status: MemberStatus, want: Option<(HealthStatus, &str)>) {
        let got = plan(&catalog(serf), &member("n1", status));
        let got = got.map(|c| match c {
            Command::UpdateCheck(u) => (u.status, u.output),
            other => panic!("unexpected {other:?}"),
        });
        assert_eq!(got, want.map(|(s, o)| (s, o.to_owned())), "{serf:?} + {status:?}");
    }

    #[test]
    fn serf_health_follows_gossip_and_settled_nodes_need_nothing() {
        check_plan(
            HealthStatus::Passing,
            MemberStatus::Failed,
            Some((HealthStatus::Critical, FAILED_OUTPUT)),
        );
        check_plan(HealthStatus::Critical, MemberStatus::Alive, Some((HealthStatus::Passing, ALIVE_OUTPUT)));
        check_plan(HealthStatus::Passing, MemberStatus::Alive, None);
        check_plan(HealthStatus::Critical, MemberStatus::Failed, None);
    }

    #[test]
    fn a_left_member_is_deregistered_and_unknown_nodes_are_left_alone() {
        let got = plan(&catalog(HealthStatus::Passing), &member("n1", MemberStatus::Left));
        assert!(matches!(got, Some(Command::Deregister(d)) if d.node == "n1" && d.service_id.is_none()));
        for status in [MemberStatus::Alive, MemberStatus::Failed, MemberStatus::Left] {
            assert_eq!(plan(&catalog(HealthStatus::Passing), &member("other", status)), None);
        }
    }

    #[test]
    fn a_left_member_leaves_alone_a_catalog_node_without_serf_health() {
        let mut state = catalog(HealthStatus::Passing);
        let cmd = Command::Deregister(Deregistration {
            node: "n1".into(),
            service_id: None,
            check_id: Some(SERF_CHECK.into()),
        });
        crate::catalog::apply::apply(&mut state, 2, &cmd, &mut Vec::new());
        assert!(state.node("n1").is_some());
        assert_eq!(plan(&state, &member("n1", MemberStatus::Left)), None);
    }
}
