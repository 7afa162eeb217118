//! Raft membership of servers that come back: a server removed while it was down (a graceful
//! `leave`) rejoins instead of trusting its old membership, and one restarted on a new RPC
//! port gets its address updated.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::cluster::{Cluster, cli, free_ports, local_nodes, wait_until, write_node};
use crate::support::Agent;

/// The voters' RPC addresses `agent` reports (`/v1/status/peers`).
fn peers(agent: &Agent) -> BTreeSet<String> {
    let Ok((200, v)) = agent.get("/v1/status/peers") else { return BTreeSet::new() };
    v.as_array().into_iter().flatten().filter_map(|p| p.as_str().map(str::to_owned)).collect()
}

/// The RPC addresses of the servers `c` runs now.
fn live_addrs(c: &Cluster) -> BTreeSet<String> {
    c.live().map(|(i, _)| format!("127.0.0.1:{}", c.ports[i])).collect()
}

#[test]
fn a_server_that_left_rejoins_as_a_voter_when_it_restarts() {
    let mut c = Cluster::start(3, &[]);
    let leader = c.leader();
    let victim = (leader + 1) % 3;
    let (ok, text) = cli(c.server(victim), &["leave"]);
    assert!(ok && text.contains("Graceful leave complete"), "{text}");
    c.kill9(victim);
    let rest = live_addrs(&c);
    wait_until(
        Duration::from_secs(30),
        "the leaver out of Raft",
        || peers(c.server(leader)) == rest,
        || c.logs(),
    );

    // Same data dir, so its log still names it a voter: it must ask the others, not campaign.
    c.spawn(victim);
    c.server(victim).wait_ready();
    let all = live_addrs(&c);
    wait_until(
        Duration::from_secs(60),
        "three voters again, on every server",
        || c.live().all(|(_, s)| peers(s) == all),
        || c.logs(),
    );
    assert!(write_node(c.server(victim).http, 1), "a write through the rejoined server");
    wait_until(
        Duration::from_secs(10),
        "the write on the rejoined server",
        || local_nodes(c.server(victim)).contains("w1"),
        || c.logs(),
    );
}

#[test]
fn a_server_restarted_on_a_new_rpc_port_gets_its_address_updated() {
    let mut c = Cluster::start(3, &[]);
    let leader = c.leader();
    let victim = (leader + 1) % 3;
    let old = format!("127.0.0.1:{}", c.ports[victim]);
    c.kill9(victim);
    c.ports[victim] = free_ports(1)[0];
    c.spawn(victim);
    c.server(victim).wait_ready();
    let all = live_addrs(&c);
    assert!(!all.contains(&old));
    wait_until(
        Duration::from_secs(60),
        "the new address in the configuration on every server",
        || c.live().all(|(_, s)| peers(s) == all),
        || c.logs(),
    );
    // The leader replicates to the new address.
    assert!(write_node(c.server(leader).http, 2));
    wait_until(
        Duration::from_secs(10),
        "the write on the moved server",
        || local_nodes(c.server(victim)).contains("w2"),
        || c.logs(),
    );
}
