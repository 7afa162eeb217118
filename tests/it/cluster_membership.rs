//! Raft membership of servers that come back: a server removed while it was down (a graceful
//! `leave`) rejoins instead of trusting its old membership, one restarted on a new RPC port
//! gets its address updated, autopilot removes dead servers while they are a minority, and
//! `--retry-join` takes gossip addresses as in Consul.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::cluster::{Cluster, cli, free_ports, local_nodes, spawn_servers, wait_until, write_node};
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

#[test]
fn autopilot_removes_dead_servers_of_five_while_they_are_a_minority_and_writes_go_on() {
    let mut c = Cluster::start(5, &[]);
    let leader = c.leader();
    let five = live_addrs(&c);
    wait_until(
        Duration::from_secs(30),
        "five voters on every server",
        || c.live().all(|(_, s)| peers(s) == five),
        || c.logs(),
    );
    // Two of five die: the other three are a quorum and keep acknowledging writes.
    for k in 1..=2 {
        c.kill9((leader + k) % 5);
    }
    assert!(write_node(c.server(leader).http, 1), "a write with two of five servers dead");
    // Once gossip declares them failed, autopilot removes both (2 < 5 / 2).
    let three = live_addrs(&c);
    wait_until(
        Duration::from_secs(60),
        "autopilot removes the two dead servers",
        || c.live().all(|(_, s)| peers(s) == three),
        || c.logs(),
    );
    // A third death, the leader's this time, leaves two of three: still a quorum, a new
    // leader takes writes, and the dead one goes too (1 < 3 / 2).
    c.kill9(leader);
    let new = c.leader();
    assert!(write_node(c.server(new).http, 2), "a write with two of three servers alive");
    let two = live_addrs(&c);
    wait_until(
        Duration::from_secs(60),
        "autopilot removes the dead leader",
        || c.live().all(|(_, s)| peers(s) == two),
        || c.logs(),
    );
    assert!(write_node(c.server(new).http, 3), "a write with two voters");
    for (i, s) in c.live() {
        wait_until(
            Duration::from_secs(10),
            &format!("every acknowledged write on s{i}"),
            || ["w1", "w2", "w3"].iter().all(|w| local_nodes(s).contains(*w)),
            || c.logs(),
        );
    }
}

#[test]
fn servers_retry_joining_gossip_addresses_form_a_cluster_as_in_consul() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(6);
    let joins: Vec<String> = ports[3..].iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let retry_join: Vec<String> = joins.iter().flat_map(|j| ["--retry-join".to_owned(), j.clone()]).collect();
    let servers = spawn_servers(dir.path(), "r", &ports, &retry_join);
    let rpc: BTreeSet<String> = ports[..3].iter().map(|p| format!("127.0.0.1:{p}")).collect();
    for s in &servers {
        s.wait_ready();
        wait_until(Duration::from_secs(30), "three voters", || peers(s) == rpc, || s.log());
    }
    assert!(write_node(servers[1].http, 1));
}
