//! Client agents (no `-server`) as real processes beside three servers on 127.0.0.1: joining
//! through `--retry-join`, a registration on a client answering DNS on every agent, DNS on the
//! clients throughout a leader kill while writes go through a client (none acknowledged is
//! lost, the replica resumes its stream without a full catalog), and a killed client's node
//! turning critical.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cluster::{Cluster, answers, local_nodes, members, serf_health, tail, wait_until, write_node};
use crate::support::Agent;

/// Starts client `name` that retry-joins the servers at `ports` (in that order).
fn start_client(c: &Cluster, name: &str, ports: &[u16]) -> Agent {
    let dir = c.dir.path().join(name).display().to_string();
    let mut args: Vec<String> =
        ["--node", name, "--data-dir", &dir].iter().map(|s| (*s).to_owned()).collect();
    for p in ports {
        args.extend(["--retry-join".to_owned(), format!("127.0.0.1:{p}")]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let agent = Agent::spawn(&args);
    agent.wait_ready();
    agent
}

/// The client's replica stream figures from `/v1/agent/self`.
fn replica_stats(agent: &Agent) -> serde_json::Value {
    agent.get("/v1/agent/self").map(|r| r.1["Stats"]["replica"].clone()).unwrap_or_default()
}

fn stat(agent: &Agent, key: &str) -> u64 {
    replica_stats(agent)[key].as_str().and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn all_logs(c: &Cluster, clients: &[&Agent]) -> String {
    let mut out = c.logs();
    for (i, a) in clients.iter().enumerate() {
        out.push_str(&format!("\n--- c{i}\n{}", tail(&a.log(), 40)));
    }
    out
}

#[test]
fn clients_join_through_retry_join_and_a_registration_on_a_client_answers_dns_everywhere() {
    let c = Cluster::start(3, &[]);
    let leader = c.leader();
    let ports = c.ports.clone();
    let c0 = start_client(&c, "c0", &ports);
    let mut c1 = Some(start_client(&c, "c1", &ports));
    let ctx = |c: &Cluster, c0: &Agent| all_logs(c, &[c0]);

    // Five alive members everywhere; the clients registered their own nodes through the servers.
    let five: BTreeSet<(String, u64)> =
        ["s0", "s1", "s2", "c0", "c1"].iter().map(|n| ((*n).to_owned(), 1)).collect();
    wait_until(Duration::from_secs(15), "five alive members", || members(&c0) == five, || ctx(&c, &c0));
    wait_until(
        Duration::from_secs(15),
        "the clients' nodes in the catalog",
        || {
            ["c0", "c1"]
                .iter()
                .all(|n| local_nodes(c.server(leader)).contains(*n) && local_nodes(&c0).contains(*n))
        },
        || ctx(&c, &c0),
    );
    let (_, self_info) = c0.get("/v1/agent/self").unwrap();
    assert_eq!(self_info["Config"]["Server"], false, "{self_info}");
    assert_eq!(self_info["Stats"]["consul"]["server"], "false");
    // A client serves the status and operator endpoints from its stream's heartbeats.
    let (_, peers) = c0.get("/v1/status/peers").unwrap();
    assert_eq!(peers.as_array().map(Vec::len), Some(3), "{peers}");
    let (_, leader_addr) = c0.get("/v1/status/leader").unwrap();
    assert_eq!(leader_addr, format!("127.0.0.1:{}", ports[leader]));
    let (status, conf) = c0.get("/v1/operator/raft/configuration").unwrap();
    assert_eq!((status, conf["Servers"].as_array().map(Vec::len)), (200, Some(3)), "{conf}");
    // A client is not a server: it serves no `consul` service.
    let (_, consul) = c0.get("/v1/catalog/service/consul?stale").unwrap();
    assert_eq!(consul.as_array().map(Vec::len), Some(3), "{consul}");

    // A service registered on a client answers DNS on every agent within 1 s of the ack.
    c0.put_ok("/v1/agent/service/register", r#"{"Name":"web","Port":80}"#);
    let acked = Instant::now();
    // Read-your-writes on the client itself.
    assert_eq!(answers(&c0, "web"), 1);
    let agents = || {
        let mut v: Vec<&Agent> = c.live().map(|(_, s)| s).collect();
        v.push(&c0);
        v.extend(c1.as_ref());
        v
    };
    wait_until(
        Duration::from_secs(1),
        "web on all five agents",
        || agents().iter().all(|a| answers(a, "web") == 1),
        || ctx(&c, &c0),
    );
    eprintln!("client registration -> DNS on all five agents in {:?}", acked.elapsed());

    // Reads on a client carry the replica lag and the contact headers; ?consistent works.
    let (status, h, _) = c0.get_full("/v1/catalog/service/web?stale").unwrap();
    assert_eq!(status, 200);
    assert!(h.contains_key("X-Cairn-Replica-Lag"), "{h:?}");
    assert_eq!(h["X-Consul-KnownLeader"], "true");
    let contact: u64 = h["X-Consul-LastContact"].to_str().unwrap().parse().unwrap();
    assert!(contact < 60_000, "{contact}");
    let (status, v) = c0.get("/v1/catalog/service/web?consistent").unwrap();
    assert_eq!((status, v.as_array().map(Vec::len)), (200, Some(1)), "{v}");
    let (_, metrics) = c0.get("/v1/agent/metrics").unwrap();
    let gauges = metrics["Gauges"].as_array().unwrap();
    assert!(gauges.iter().any(|g| g["Name"] == "cairn.replica.lag_index"), "{metrics}");
    assert_eq!(stat(&c0, "dumps"), 1, "{}", replica_stats(&c0));

    // KV, sessions and TTL checks work through a client (writes forwarded to the leader).
    assert_eq!(c0.put("/v1/kv/greeting", "hello"), (200, "true".to_owned()));
    let (_, kv) = c.server(leader).get("/v1/kv/greeting?stale").unwrap();
    assert_eq!(kv[0]["Value"], "aGVsbG8=", "{kv}");
    let (_, kv) = c0.get("/v1/kv/greeting?consistent").unwrap();
    assert_eq!(kv[0]["Value"], "aGVsbG8=", "{kv}");
    let (status, body) = c0.put("/v1/session/create", r#"{"TTL":"30s"}"#);
    assert_eq!(status, 200, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["ID"].as_str().unwrap().to_owned();
    assert_eq!(c0.put(&format!("/v1/session/renew/{id}"), "").0, 200);
    c0.put_ok("/v1/agent/service/register", r#"{"Name":"ttlsvc","Port":81,"Check":{"TTL":"30s"}}"#);
    c0.put_ok("/v1/agent/check/pass/service:ttlsvc", "");
    let ttl_status = || {
        let (_, v) = c.server(leader).get("/v1/health/checks/ttlsvc?stale").unwrap();
        v[0]["Status"].as_str().unwrap_or("").to_owned()
    };
    wait_until(
        Duration::from_secs(5),
        "the TTL check passing on the leader",
        || ttl_status() == "passing",
        || ctx(&c, &c0),
    );

    // kill -9 a client: its serfHealth turns critical and its service leaves DNS elsewhere.
    c1.as_ref().unwrap().put_ok("/v1/agent/service/register", r#"{"Name":"api","Port":9000}"#);
    wait_until(Duration::from_secs(5), "api on c0", || answers(&c0, "api") == 1, || ctx(&c, &c0));
    if let Some(mut a) = c1.take() {
        a.kill9();
    }
    let killed = Instant::now();
    wait_until(
        Duration::from_secs(30),
        "c1's serfHealth critical and api out of DNS",
        || {
            serf_health(c.server(leader), "c1") == "critical"
                && answers(&c0, "api") == 0
                && c.live().all(|(_, s)| answers(s, "api") == 0)
        },
        || ctx(&c, &c0),
    );
    eprintln!(
        "failure detection: kill -9 of a client -> serfHealth critical, out of DNS in {:?}",
        killed.elapsed()
    );
}

#[test]
fn dns_on_clients_answers_through_a_leader_kill_and_no_acknowledged_write_is_lost() {
    let mut c = Cluster::start(3, &[]);
    let leader = c.leader();
    let ports = c.ports.clone();
    // c0 asks the leader first, so its stream follows the server about to be killed; c1 asks
    // the others first.
    let c0 = start_client(&c, "c0", &[ports[leader]]);
    let others: Vec<u16> = (0..3).filter(|&i| i != leader).map(|i| ports[i]).collect();
    let c1 = start_client(&c, "c1", &others);
    c0.put_ok("/v1/agent/service/register", r#"{"Name":"web","Port":80}"#);
    wait_until(
        Duration::from_secs(5),
        "web on both clients",
        || answers(&c0, "web") == 1 && answers(&c1, "web") == 1,
        || all_logs(&c, &[&c0, &c1]),
    );
    let leader_addr = format!("127.0.0.1:{}", ports[leader]);
    assert_eq!(replica_stats(&c0)["server"], leader_addr.as_str(), "{}", replica_stats(&c0));

    let acked = Arc::new(Mutex::new(Vec::<(usize, Instant)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acked, stop, target) = (acked.clone(), stop.clone(), c0.http);
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                if write_node(target, i) {
                    acked.lock().unwrap().push((i, Instant::now()));
                }
                i += 1;
            }
        })
    };
    let acks = |after: Instant| acked.lock().unwrap().iter().filter(|(_, t)| *t > after).count();
    let t0 = Instant::now();
    wait_until(
        Duration::from_secs(30),
        "writes before the kill",
        || acks(t0) >= 30,
        || all_logs(&c, &[&c0, &c1]),
    );
    c.kill9(leader);
    let killed = Instant::now();
    // DNS on both clients answers from their replicas throughout, every ~50 ms.
    let (mut queries, mut missed) = (0, 0);
    wait_until(
        Duration::from_secs(60),
        "writes through the client after the kill",
        || {
            for a in [&c0, &c1] {
                queries += 1;
                if answers(a, "web") != 1 {
                    missed += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
            acks(killed) >= 30
        },
        || all_logs(&c, &[&c0, &c1]),
    );
    assert_eq!(missed, 0, "{missed} of {queries} DNS queries on the clients missed web during the failover");
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    let first_after = acked.iter().filter(|(_, t)| *t > killed).map(|(_, t)| *t - killed).min().unwrap();
    eprintln!(
        "leader failover seen from a client: kill -9 -> next acknowledged write in {first_after:?} ({queries} DNS queries, none missed)"
    );

    // Every acknowledged write is on the surviving servers and on both clients.
    let want: BTreeSet<String> = acked.iter().map(|(i, _)| format!("w{i}")).collect();
    let mut agents: Vec<(String, &Agent)> = c.live().map(|(i, s)| (format!("s{i}"), s)).collect();
    agents.push(("c0".into(), &c0));
    agents.push(("c1".into(), &c1));
    for (name, a) in agents {
        wait_until(
            Duration::from_secs(10),
            &format!("every acknowledged write on {name}"),
            || want.is_subset(&local_nodes(a)),
            || format!("missing: {:?}", want.difference(&local_nodes(a)).collect::<Vec<_>>()),
        );
    }
    // c0's stream server died: it resumed from its last index on another server, without a
    // second full catalog.
    let stats = replica_stats(&c0);
    assert_ne!(stats["server"], leader_addr.as_str(), "{stats}");
    assert!(stat(&c0, "connects") >= 2, "{stats}");
    assert!(stat(&c0, "resumes") >= 1, "{stats}");
    assert_eq!(stat(&c0, "dumps"), 1, "{stats}");
}
