//! The replica equals the server's catalog at the same index: a real single server (LMDB,
//! openraft) serving the server RPC on a free port, and a `Client` following it.

use std::time::Duration;

use super::Client;
use super::client::Replica;
use crate::catalog::{Check, HealthStatus, Node, Service};
use crate::catalog::{Command, Deregistration, KvOp, KvWrite, Registration};

fn register(node: &str, service: &str, port: u16) -> Command {
    Command::Register(Registration {
        node: Node::new(node, "10.0.0.1", "dc1"),
        skip_node_update: false,
        service: Some(Service::new(node, service, service, port)),
        checks: vec![Check::new(node, &format!("check-{service}"), service, HealthStatus::Passing)],
    })
}

fn kv(key: &str, value: &str) -> Command {
    let w = KvWrite { key: key.into(), value: value.as_bytes().to_vec(), ..KvWrite::default() };
    Command::Kv { op: KvOp::Set(w), now_ms: 1_000 }
}

fn catalog_json(snap: &crate::snapshot::CatalogSnapshot) -> String {
    serde_json::to_string(&snap.catalog.dump()).expect("json")
}

async fn wait_index(client: &Client, index: u64) {
    let snaps = client.snapshots();
    let wait = async {
        while snaps.load().index < index {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait).await.expect("replica catches up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replica_equals_the_server_at_each_index_and_forwards_writes() {
    let (server, _dir) = crate::http::tests::test_server().await;
    let raft = crate::consensus::Consensus::new(server.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let stop = tokio_util::sync::CancellationToken::new();
    let sessions = crate::session::SessionTimers::new();
    let dispatch = crate::serve_rpc::Dispatch {
        raft: server,
        serf_addr: None,
        sessions,
        gossip: None,
        auth: crate::rpc::Auth::open(),
        acl: std::sync::Arc::new(crate::acl::Disabled::new()),
        data_dir: std::path::PathBuf::new(),
    };
    tokio::spawn(crate::serve_rpc::serve(listener, dispatch, stop.clone()));
    // Written before the client subscribes: it starts from a full catalog.
    for i in 0..20u16 {
        raft.propose(register(&format!("n{}", i % 4), &format!("web{i}"), 80 + i)).await.expect("register");
    }
    let client = Client::new(vec![addr], crate::rpc::Auth::open());
    tokio::spawn(client.clone().run());
    wait_index(&client, raft.applied_index()).await;
    assert_eq!(catalog_json(&client.snapshots().load()), catalog_json(&raft.snapshots().load()));
    assert_eq!(client.stats().dumps.load(std::sync::atomic::Ordering::Relaxed), 1);

    // Then entries: writes on the server and writes forwarded by the client, interleaved.
    for i in 0..30u16 {
        if i % 3 == 0 {
            client.propose(kv(&format!("k{i}"), "from the client"), None).await.expect("forwarded");
            // Read-your-writes: the replica has it when the write returns.
            assert!(client.snapshots().load().catalog.kv().entry(&format!("k{i}")).is_some());
        } else if i % 3 == 1 {
            raft.propose_for(kv(&format!("k{i}"), "v")).await.expect("kv");
        } else {
            let d = Deregistration {
                node: format!("n{}", i % 4),
                service_id: Some(format!("web{i}")),
                check_id: None,
            };
            raft.propose(Command::Deregister(d)).await.expect("deregister");
        }
        // At each index the client reaches, its catalog is the server's.
        let index = raft.applied_index();
        wait_index(&client, index).await;
        let (c, s) = (client.snapshots().load_full(), raft.snapshots().load_full());
        assert_eq!(c.index, s.index);
        assert_eq!(catalog_json(&c), catalog_json(&s), "at index {index}");
    }
    assert_eq!(client.stats().dumps.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert!(client.status().known_leader);
    client.shutdown();
    stop.cancel();
}

#[test]
fn a_replica_applies_contiguous_entries_and_refuses_a_gap() {
    let mut r = Replica::default();
    assert_eq!(r.apply(vec![(1, Some(register("a", "web", 80))), (2, None)]), Ok(2));
    assert_eq!(r.index, 2);
    // Entries it already has are skipped.
    assert_eq!(r.apply(vec![(2, None), (3, Some(kv("k", "v")))]), Ok(1));
    assert!(r.apply(vec![(5, None)]).is_err());
    assert_eq!(r.index, 3);
    assert_eq!(r.state.service_count(), 1);
}
