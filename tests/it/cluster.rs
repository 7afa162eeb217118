//! Three Raft servers as real processes on 127.0.0.1 (free ports): forming a cluster from
//! `--retry-join`, writes on any server, DNS on every server, leader failover without losing an
//! acknowledged write, catching up by snapshot after log compaction, a minority that
//! cannot acknowledge writes, and KV locks, lock-delay and session TTLs across a leader kill.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;

use crate::support::{Agent, Transport, cairn_bin, srv_targets};

/// `n` distinct ports, each free on 127.0.0.1 for both TCP and UDP when chosen, for agents
/// whose addresses must be known before they start (`--retry-join`).
///
/// They come from below the kernel's ephemeral range, so no socket bound to port 0 (every other
/// agent's DNS, HTTP and RPC in the tests running beside this one) can take one between the
/// check and the agent's bind; and a port is handed out once per test process.
pub(crate) fn free_ports(n: usize) -> Vec<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let (low, span) = (10_000, ephemeral_low.saturating_sub(10_000).max(1_000));
    // Processes (e.g. two worktrees' test runs) start at different places in the range.
    let _ =
        NEXT.compare_exchange(0, 1 + std::process::id() * 7_919 % span, Ordering::SeqCst, Ordering::SeqCst);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let port = u16::try_from(low + NEXT.fetch_add(1, Ordering::SeqCst) % span).unwrap();
        let free = std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok();
        if free {
            out.push(port);
        }
    }
    out
}

/// Polls `f` until it holds or `within` passes; panics with `what` (and `ctx()`) otherwise.
pub(crate) fn wait_until(
    within: Duration,
    what: &str,
    mut f: impl FnMut() -> bool,
    ctx: impl Fn() -> String,
) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "{what} not within {within:?}\n{}", ctx());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Spawns 3 servers named `{prefix}0..2` (data under `dir`) expecting 3, with RPC ports
/// `ports[0..3]` and gossip ports `ports[3..6]`, each given `extra` flags; does not wait for a
/// leader.
pub(crate) fn spawn_servers(
    dir: &std::path::Path,
    prefix: &str,
    ports: &[u16],
    extra: &[String],
) -> Vec<Agent> {
    (0..3)
        .map(|i| {
            let node = format!("{prefix}{i}");
            let data = dir.join(&node).display().to_string();
            let (rpc, serf) = (ports[i].to_string(), ports[3 + i].to_string());
            let mut args = vec![
                "--server",
                "--bootstrap-expect",
                "3",
                "--node",
                &node,
                "--data-dir",
                &data,
                "--server-port",
                &rpc,
                "--serf-lan-port",
                &serf,
                "--serf-wan-port",
                "0",
            ];
            args.extend(extra.iter().map(String::as_str));
            Agent::spawn(&args)
        })
        .collect()
}

pub(crate) struct Cluster {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) ports: Vec<u16>,
    /// Fixed gossip ports, so a restarted server keeps its gossip address.
    serf_ports: Vec<u16>,
    /// Fixed WAN gossip ports, likewise (a server back on another WAN address would be a name
    /// conflict in the WAN pool until its old address is declared failed).
    wan_ports: Vec<u16>,
    servers: Vec<Option<Agent>>,
    extra: Vec<String>,
}

impl Cluster {
    /// Starts `n` servers that find each other through `--retry-join` and waits for a leader.
    pub(crate) fn start(n: usize, extra: &[&str]) -> Self {
        let mut ports = free_ports(3 * n);
        let wan_ports = ports.split_off(2 * n);
        let serf_ports = ports.split_off(n);
        let mut c = Self {
            dir: tempfile::tempdir().unwrap(),
            ports,
            serf_ports,
            wan_ports,
            servers: (0..n).map(|_| None).collect(),
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        };
        for i in 0..n {
            c.spawn(i);
        }
        for s in c.servers.iter().flatten() {
            s.wait_ready();
        }
        c
    }

    fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("s{i}"))
    }

    pub(crate) fn spawn(&mut self, i: usize) {
        let n = self.ports.len().to_string();
        let (port, dir) = (self.ports[i].to_string(), self.data_dir(i).display().to_string());
        let node = format!("s{i}");
        let mut args: Vec<String> =
            ["--server", "--bootstrap-expect", &n, "--node", &node, "--data-dir", &dir]
                .iter()
                .map(|s| (*s).to_owned())
                .collect();
        args.extend(["--server-port".to_owned(), port]);
        args.extend(["--serf-lan-port".to_owned(), self.serf_ports[i].to_string()]);
        args.extend(["--serf-wan-port".to_owned(), self.wan_ports[i].to_string()]);
        for p in &self.ports {
            args.extend(["--retry-join".to_owned(), format!("127.0.0.1:{p}")]);
        }
        args.extend(self.extra.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.servers[i] = Some(Agent::spawn(&args));
    }

    /// Server `i`'s gossip port.
    pub(crate) fn serf_port(&self, i: usize) -> u16 {
        self.serf_ports[i]
    }

    /// Replaces the flags every later `spawn` adds (a restart with a new configuration).
    pub(crate) fn set_extra(&mut self, extra: &[&str]) {
        self.extra = extra.iter().map(|s| (*s).to_owned()).collect();
    }

    pub(crate) fn server(&self, i: usize) -> &Agent {
        self.servers[i].as_ref().expect("server is running")
    }

    pub(crate) fn live(&self) -> impl Iterator<Item = (usize, &Agent)> {
        self.servers.iter().enumerate().filter_map(|(i, s)| s.as_ref().map(|s| (i, s)))
    }

    pub(crate) fn kill9(&mut self, i: usize) {
        if let Some(mut s) = self.servers[i].take() {
            s.kill9();
        }
    }

    /// The index of the server every live server names as leader, once they agree.
    pub(crate) fn leader(&self) -> usize {
        let mut leader = None;
        wait_until(
            Duration::from_secs(30),
            "live servers agree on a leader",
            || {
                let seen: BTreeSet<String> = self
                    .live()
                    .map(|(_, s)| s.get("/v1/status/leader").map(|r| r.1.as_str().unwrap_or("").to_owned()))
                    .map(|r| r.unwrap_or_default())
                    .collect();
                leader = match seen.iter().next() {
                    Some(addr) if seen.len() == 1 && !addr.is_empty() => {
                        self.ports.iter().position(|p| addr == &format!("127.0.0.1:{p}"))
                    }
                    _ => None,
                };
                leader.is_some_and(|l| self.servers[l].is_some())
            },
            || self.logs(),
        );
        leader.expect("leader")
    }

    pub(crate) fn logs(&self) -> String {
        self.live().map(|(i, s)| format!("--- s{i}\n{}", tail(&s.log(), 40))).collect::<Vec<_>>().join("\n")
    }
}

pub(crate) fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs `cairn ARGS` against `agent`; returns (success, stdout + stderr).
pub(crate) fn cli(agent: &Agent, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(cairn_bin())
        .args(args)
        .env("CAIRN_HTTP_ADDR", agent.http.to_string())
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// `(name, status)` of the gossip members `agent` sees.
pub(crate) fn members(agent: &Agent) -> BTreeSet<(String, u64)> {
    let Ok((200, v)) = agent.get("/v1/agent/members") else { return BTreeSet::new() };
    v.as_array()
        .into_iter()
        .flatten()
        .map(|m| (m["Name"].as_str().unwrap_or("").to_owned(), m["Status"].as_u64().unwrap_or(0)))
        .collect()
}

pub(crate) fn serf_health(agent: &Agent, node: &str) -> String {
    let Ok((200, v)) = agent.get(&format!("/v1/health/node/{node}?stale")) else { return String::new() };
    v.as_array()
        .into_iter()
        .flatten()
        .find(|c| c["CheckID"] == "serfHealth")
        .map(|c| c["Status"].as_str().unwrap_or("").to_owned())
        .unwrap_or_default()
}

pub(crate) fn answers(agent: &Agent, service: &str) -> usize {
    srv_targets(&agent.query(&format!("{service}.service.consul."), RecordType::SRV, Transport::Udp)).len()
}

/// The servers other than `leader` of a three-server cluster.
fn targets_idx(leader: usize) -> Vec<usize> {
    (0..3).filter(|&i| i != leader).collect()
}

pub(crate) fn has_web(agent: &Agent) -> bool {
    srv_targets(&agent.query("web.service.consul.", RecordType::SRV, Transport::Udp)).len() == 1
}

/// Node names in `agent`'s local state (`?stale`).
pub(crate) fn local_nodes(agent: &Agent) -> BTreeSet<String> {
    let Ok((200, v)) = agent.get("/v1/catalog/nodes?stale") else { return BTreeSet::new() };
    v.as_array().into_iter().flatten().filter_map(|n| n["Node"].as_str().map(str::to_owned)).collect()
}

/// A catalog registration of node `w{i}`; `Ok` only when acknowledged (200).
pub(crate) fn write_node(http: std::net::SocketAddr, i: usize) -> bool {
    let body = format!(r#"{{"Node":"w{i}","Address":"10.1.{}.{}"}}"#, i / 250, i % 250 + 1);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let req = crate::support::http_client().put(format!("http://{http}/v1/catalog/register"));
        let resp = req.timeout(Duration::from_secs(30)).body(body).send().await;
        resp.is_ok_and(|r| r.status().as_u16() == 200)
    })
}

#[test]
fn three_servers_form_a_cluster_from_retry_join_and_every_server_answers_dns() {
    let c = Cluster::start(3, &[]);
    let leader = c.leader();
    for (i, s) in c.live() {
        let (_, peers) = s.get("/v1/status/peers").unwrap();
        assert_eq!(peers.as_array().map(Vec::len), Some(3), "s{i}: {peers}");
    }
    // Every server registers its own node through the leader.
    for (_, s) in c.live() {
        wait_until(Duration::from_secs(10), "three server nodes", || local_nodes(s).len() == 3, || c.logs());
    }
    let conf = c.server(0).get("/v1/operator/raft/configuration").unwrap().1;
    let servers = conf["Servers"].as_array().unwrap();
    assert_eq!(servers.len(), 3, "{conf}");
    assert!(servers.iter().all(|s| s["Voter"] == true && s["ProtocolVersion"] == "3"), "{conf}");
    let leaders: Vec<_> = servers.iter().filter(|s| s["Leader"] == true).collect();
    assert_eq!(leaders.len(), 1, "{conf}");
    assert_eq!(leaders[0]["Node"], format!("s{leader}"), "{conf}");
    let names: BTreeSet<_> = servers.iter().map(|s| s["Node"].as_str().unwrap().to_owned()).collect();
    assert_eq!(names, ["s0", "s1", "s2"].map(str::to_owned).into());

    let (ok, text) = cli(c.server(0), &["operator", "raft", "list-peers"]);
    assert!(ok, "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].starts_with("Node") && lines[0].contains("RaftProtocol"), "{text}");
    assert_eq!(lines.iter().filter(|l| l.contains("leader")).count(), 1, "{text}");

    // Every server sees the three in the gossip pool; `cairn members` prints Consul's columns.
    let all_alive: BTreeSet<(String, u64)> = (0..3).map(|i| (format!("s{i}"), 1)).collect();
    for (_, s) in c.live() {
        wait_until(Duration::from_secs(10), "three alive members", || members(s) == all_alive, || c.logs());
    }
    let (ok, text) = cli(c.server(leader), &["members"]);
    assert!(ok, "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header, ["Node", "Address", "Status", "Type", "Build", "Protocol", "DC"], "{text}");
    assert!(
        lines[1..].iter().all(|l| l.contains(" alive ") && l.contains(" server ") && l.ends_with("dc1")),
        "{text}"
    );

    // A service registered on a follower answers DNS on every server within 1 s.
    let follower = (leader + 1) % 3;
    c.server(follower).put_ok("/v1/agent/service/register", r#"{"Name":"web","Port":80}"#);
    // The follower answered after applying the write itself.
    assert!(has_web(c.server(follower)));
    wait_until(
        Duration::from_secs(1),
        "web on every server",
        || c.live().all(|(_, s)| has_web(s)),
        || c.logs(),
    );

    // ?stale reads local state with Consul's headers; ?consistent goes through ReadIndex.
    let (status, h, _) = c.server(follower).get_full("/v1/catalog/service/web?stale").unwrap();
    assert_eq!(status, 200);
    assert_eq!(h["X-Consul-KnownLeader"], "true");
    let contact: u64 = h["X-Consul-LastContact"].to_str().unwrap().parse().unwrap();
    assert!(contact < 60_000, "{contact}");
    let (status, v) = c.server(follower).get("/v1/catalog/service/web?consistent").unwrap();
    assert_eq!((status, v.as_array().map(Vec::len)), (200, Some(1)), "{v}");

    // A server started later (no bootstrap_expect) joins as a learner and becomes a voter.
    let dir = c.dir.path().join("s3").display().to_string();
    let join = format!("127.0.0.1:{}", c.ports[follower]);
    let fourth = Agent::spawn(&["--server", "--node", "s3", "--data-dir", &dir, "--retry-join", &join]);
    fourth.wait_ready();
    wait_until(
        Duration::from_secs(30),
        "four voters",
        || {
            let conf = c.server(leader).get("/v1/operator/raft/configuration").unwrap().1;
            conf["Servers"].as_array().is_some_and(|s| s.len() == 4 && s.iter().all(|s| s["Voter"] == true))
        },
        || fourth.log(),
    );
    assert!(has_web(&fourth));
    // The fourth learns the configuration that made it a voter with the leader's next append.
    wait_until(
        Duration::from_secs(10),
        "four peers seen by the fourth server",
        || fourth.get("/v1/status/peers").unwrap().1.as_array().map(Vec::len) == Some(4),
        || {
            format!(
                "{}
{}",
                fourth.get("/v1/status/peers").unwrap().1,
                fourth.log()
            )
        },
    );
}

#[test]
fn killing_the_leader_loses_no_acknowledged_write_and_it_catches_up_by_snapshot() {
    // Small snapshots and no trailing log, so the restarted server needs the snapshot.
    let mut c = Cluster::start(3, &["--raft-snapshot-threshold", "20", "--raft-trailing-logs", "0"]);
    let leader = c.leader();
    let targets: Vec<_> = (0..3).filter(|&i| i != leader).map(|i| c.server(i).http).collect();

    let acked = Arc::new(Mutex::new(Vec::<(usize, Instant)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acked, stop) = (acked.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                if write_node(targets[i % targets.len()], i) {
                    acked.lock().unwrap().push((i, Instant::now()));
                }
                i += 1;
            }
        })
    };
    let acks = |after: Instant| acked.lock().unwrap().iter().filter(|(_, t)| *t > after).count();
    c.server(targets_idx(leader)[0]).put_ok("/v1/agent/service/register", r#"{"Name":"web","Port":80}"#);
    let t0 = Instant::now();
    wait_until(Duration::from_secs(30), "writes before the kill", || acks(t0) >= 30, || c.logs());
    c.kill9(leader);
    let killed = Instant::now();
    // DNS on the survivors answers from local state throughout the election.
    let (mut queries, mut missed) = (0, 0);
    wait_until(
        Duration::from_secs(60),
        "writes after the kill",
        || {
            for i in targets_idx(leader) {
                queries += 1;
                if answers(c.server(i), "web") != 1 {
                    missed += 1;
                }
            }
            acks(killed) >= 60
        },
        || c.logs(),
    );
    assert_eq!(
        missed, 0,
        "{missed} of {queries} DNS queries on the survivors missed web during the failover"
    );
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();

    let acked = acked.lock().unwrap().clone();
    let first_after = acked.iter().filter(|(_, t)| *t > killed).map(|(_, t)| *t - killed).min().unwrap();
    eprintln!("leader failover: kill -9 -> next acknowledged write in {first_after:?}");
    let want: BTreeSet<String> = acked.iter().map(|(i, _)| format!("w{i}")).collect();
    let new_leader = c.leader();
    assert_ne!(new_leader, leader);
    for (i, s) in c.live() {
        wait_until(
            Duration::from_secs(10),
            &format!("every acknowledged write on s{i}"),
            || want.is_subset(&local_nodes(s)),
            || format!("missing: {:?}", want.difference(&local_nodes(s)).collect::<Vec<_>>()),
        );
    }

    // The old leader restarts on its data dir and catches up: the log it lacks was compacted
    // away, so the new leader streams it a snapshot.
    c.spawn(leader);
    c.server(leader).wait_ready();
    let old = c.server(leader);
    wait_until(
        Duration::from_secs(30),
        "the restarted server has every acknowledged write",
        || want.is_subset(&local_nodes(old)),
        || old.log(),
    );
    assert!(old.log().contains("installed a Raft snapshot"), "{}", old.log());
    assert!(write_node(old.http, 100_000), "a write on the restarted server");
    assert_eq!(c.leader(), new_leader);
}

#[test]
fn a_leader_without_its_quorum_cannot_acknowledge_writes() {
    let mut c = Cluster::start(3, &[]);
    let leader = c.leader();
    assert!(write_node(c.server(leader).http, 1));
    let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    for &f in &followers {
        c.kill9(f);
    }
    // Neither the leader nothing else can commit: the write is refused (after a bounded wait).
    assert!(!write_node(c.server(leader).http, 2), "a minority acknowledged a write");
    let (status, _) = c.server(leader).get("/v1/catalog/nodes?stale").unwrap();
    assert_eq!(status, 200, "stale reads still work");
    assert!(!local_nodes(c.server(leader)).contains("w2"));

    // With one follower back there is a quorum again.
    c.spawn(followers[0]);
    c.server(followers[0]).wait_ready();
    wait_until(
        Duration::from_secs(30),
        "a write with the quorum back",
        || write_node(c.server(leader).http, 3),
        || c.logs(),
    );
}

#[test]
fn a_failed_server_turns_critical_and_leaves_dns_and_a_graceful_leave_deregisters() {
    let mut c = Cluster::start(3, &[]);
    let leader = c.leader();
    let (victim, other) = ((leader + 1) % 3, (leader + 2) % 3);
    let victim_name = format!("s{victim}");
    c.server(victim).put_ok("/v1/agent/service/register", r#"{"Name":"api","Port":9000}"#);
    let all_alive: BTreeSet<(String, u64)> = (0..3).map(|i| (format!("s{i}"), 1)).collect();
    wait_until(
        Duration::from_secs(10),
        "three alive members",
        || members(c.server(leader)) == all_alive,
        || c.logs(),
    );
    wait_until(Duration::from_secs(5), "api in DNS", || answers(c.server(other), "api") == 1, || c.logs());

    // kill -9: gossip declares it failed, the leader turns its serfHealth critical, and its
    // service leaves DNS answers on every server.
    c.kill9(victim);
    let killed = Instant::now();
    wait_until(
        Duration::from_secs(30),
        "serfHealth critical and api out of DNS",
        || {
            serf_health(c.server(other), &victim_name) == "critical"
                && answers(c.server(other), "api") == 0
                && answers(c.server(leader), "api") == 0
        },
        || c.logs(),
    );
    eprintln!(
        "failure detection: kill -9 of a server -> serfHealth critical, out of DNS in {:?}",
        killed.elapsed()
    );
    assert!(members(c.server(leader)).contains(&(victim_name.clone(), 4)), "{:?}", members(c.server(leader)));

    // Back: alive, passing, answered again.
    c.spawn(victim);
    c.server(victim).wait_ready();
    wait_until(
        Duration::from_secs(30),
        "serfHealth passing and api back in DNS",
        || serf_health(c.server(other), &victim_name) == "passing" && answers(c.server(other), "api") == 1,
        || c.logs(),
    );

    // `cairn join` of a known member succeeds.
    let v = c.server(leader).get("/v1/agent/members").unwrap().1;
    let m = v.as_array().unwrap().iter().find(|m| m["Name"] == victim_name.as_str()).unwrap().clone();
    let addr = format!("{}:{}", m["Addr"].as_str().unwrap(), m["Port"]);
    let (ok, text) = cli(c.server(leader), &["join", &addr]);
    assert!(ok && text.contains("Successfully joined"), "{text}");

    // `cairn leave`: the others record it as left and the leader deregisters its node.
    let (ok, text) = cli(c.server(victim), &["leave"]);
    assert!(ok && text.contains("Graceful leave complete"), "{text}");
    wait_until(
        Duration::from_secs(15),
        "left and deregistered",
        || {
            members(c.server(leader)).contains(&(victim_name.clone(), 3))
                && !local_nodes(c.server(other)).contains(&victim_name)
        },
        || c.logs(),
    );
    assert_eq!(answers(c.server(other), "api"), 0);
}

fn keygen() -> String {
    let out = std::process::Command::new(cairn_bin()).arg("keygen").output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn gossip_encryption_keeps_out_an_agent_with_another_key() {
    let key = keygen();
    assert_eq!(key.len(), 44, "{key}");
    let c = Cluster::start(3, &["--encrypt", &key]);
    let all_alive: BTreeSet<(String, u64)> = (0..3).map(|i| (format!("s{i}"), 1)).collect();
    wait_until(
        Duration::from_secs(10),
        "three alive members",
        || members(c.server(0)) == all_alive,
        || c.logs(),
    );
    let seed = format!("127.0.0.1:{}", c.serf_ports[0]);

    let intruder = Agent::start(&["--dev", "--node", "intruder", "--encrypt", &keygen()]);
    let (ok, text) = cli(&intruder, &["join", &seed]);
    assert!(!ok, "joined with another key: {text}");
    let plain = Agent::start(&["--dev", "--node", "plain"]);
    let (ok, text) = cli(&plain, &["join", &seed]);
    assert!(!ok, "joined without a key: {text}");

    let friend = Agent::start(&["--dev", "--node", "friend", "--encrypt", &key]);
    let (ok, text) = cli(&friend, &["join", &seed]);
    assert!(ok, "{text}");
    wait_until(
        Duration::from_secs(10),
        "the agent with the key is a member",
        || members(c.server(0)).contains(&("friend".to_owned(), 1)),
        || c.logs(),
    );
    let names: BTreeSet<String> = members(c.server(0)).into_iter().map(|(n, _)| n).collect();
    assert!(!names.contains("intruder") && !names.contains("plain"), "{names:?}");
}

#[test]
fn a_leaving_leader_removes_itself_from_raft_and_the_others_carry_on() {
    let mut c = Cluster::start(3, &[]);
    let leader = c.leader();
    let old = format!("127.0.0.1:{}", c.ports[leader]);
    let rest: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let (ok, text) = cli(c.server(leader), &["leave"]);
    assert!(ok && text.contains("Graceful leave complete"), "{text}");
    wait_until(
        Duration::from_secs(30),
        "two peers and a new leader on the others",
        || {
            rest.iter().all(|&i| {
                let peers = c.server(i).get("/v1/status/peers").map(|r| r.1).unwrap_or_default();
                let now = c.server(i).get("/v1/status/leader").map(|r| r.1).unwrap_or_default();
                let now = now.as_str().unwrap_or("");
                peers.as_array().map(Vec::len) == Some(2) && !now.is_empty() && now != old
            })
        },
        || c.logs(),
    );
    c.kill9(leader);
    assert!(write_node(c.server(rest[0]).http, 1), "a write after the leader left");
    let name = format!("s{leader}");
    wait_until(
        Duration::from_secs(15),
        "left and deregistered",
        || {
            members(c.server(rest[1])).contains(&(name.clone(), 3))
                && !local_nodes(c.server(rest[1])).contains(&name)
        },
        || c.logs(),
    );
}

#[test]
fn servers_joined_only_by_gossip_bootstrap_the_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(6);
    let servers = spawn_servers(dir.path(), "g", &ports, &[]);
    // No retry_join: nothing happens until `cairn join` puts them in one gossip pool.
    let seed = format!("127.0.0.1:{}", ports[3]);
    for s in &servers[1..] {
        let (ok, text) = cli(s, &["join", &seed]);
        assert!(ok, "{text}");
    }
    for s in &servers {
        s.wait_ready();
        wait_until(
            Duration::from_secs(20),
            "three voters",
            || s.get("/v1/status/peers").is_ok_and(|r| r.1.as_array().map(Vec::len) == Some(3)),
            || s.log(),
        );
    }
    assert!(write_node(servers[2].http, 1));
}

#[test]
fn force_leave_deregisters_a_failed_node() {
    let mut c = Cluster::start(3, &[]);
    let leader = c.leader();
    let (victim, other) = ((leader + 1) % 3, (leader + 2) % 3);
    let name = format!("s{victim}");
    let all_alive: BTreeSet<(String, u64)> = (0..3).map(|i| (format!("s{i}"), 1)).collect();
    wait_until(
        Duration::from_secs(10),
        "three alive members",
        || members(c.server(other)) == all_alive,
        || c.logs(),
    );
    wait_until(
        Duration::from_secs(10),
        "victim registered",
        || local_nodes(c.server(other)).contains(&name),
        || c.logs(),
    );
    c.kill9(victim);
    wait_until(
        Duration::from_secs(30),
        "victim failed",
        || members(c.server(other)).contains(&(name.clone(), 4)),
        || c.logs(),
    );
    c.server(other).put_ok(&format!("/v1/agent/force-leave/{name}"), "");
    wait_until(
        Duration::from_secs(10),
        "victim deregistered",
        || !local_nodes(c.server(leader)).contains(&name),
        || c.logs(),
    );
    // A failed server also leaves the Raft configuration, so it no longer counts toward quorum.
    wait_until(
        Duration::from_secs(10),
        "victim out of the Raft peers",
        || c.server(leader).get("/v1/status/peers").is_ok_and(|r| r.1.as_array().map(Vec::len) == Some(2)),
        || c.logs(),
    );
    let (status, text) = c.server(other).put("/v1/agent/force-leave/nobody", "");
    assert_eq!(status, 404, "{text}");
}

/// The body of a PUT to `path` on `agent` once the cluster acknowledges it (200); retries
/// refusals while a new leader is being elected. Only for writes whose retry is harmless.
fn put_acked(c: &Cluster, agent: &Agent, path: &str, body: &str) -> String {
    let out = std::cell::RefCell::new(String::new());
    wait_until(
        Duration::from_secs(30),
        &format!("PUT {path} acknowledged"),
        || {
            let (status, text) = agent.put(path, body);
            *out.borrow_mut() = text;
            status == 200
        },
        || format!("last reply: {}\n{}", out.borrow(), c.logs()),
    );
    out.into_inner()
}

/// `agent`'s local entry of `key` (`?stale`), or Null.
fn kv_local(agent: &Agent, key: &str) -> serde_json::Value {
    match agent.get(&format!("/v1/kv/{key}?stale")) {
        Ok((200, v)) => v[0].clone(),
        _ => serde_json::Value::Null,
    }
}

/// Whether session `id` is in `agent`'s local state (`?stale`).
fn session_local(agent: &Agent, id: &str) -> bool {
    agent.get(&format!("/v1/session/info/{id}?stale")).is_ok_and(|(s, v)| s == 200 && v[0]["ID"] == id)
}

#[test]
fn a_kv_lock_its_sessions_and_lock_delay_survive_a_leader_kill() {
    let mut c = Cluster::start(3, &[]);
    let old = c.leader();
    let f = targets_idx(old);
    let create = |i: usize, body: &str| -> String {
        let v: serde_json::Value =
            serde_json::from_str(&c.server(i).put_ok("/v1/session/create", body)).unwrap();
        v["ID"].as_str().unwrap().to_owned()
    };
    // One session per follower, and a TTL session holding a second lock.
    let sessions =
        [create(f[0], r#"{"Name":"a","LockDelay":"5s"}"#), create(f[1], r#"{"Name":"b","LockDelay":"5s"}"#)];
    let ttl = create(f[1], r#"{"Name":"ttl","TTL":"10s","LockDelay":"0s"}"#);
    // A TTL session its client keeps renewing, always through a follower.
    let kept = create(f[0], r#"{"Name":"kept","TTL":"10s"}"#);
    assert_eq!(c.server(f[1]).put_ok(&format!("/v1/kv/ha/ttl?acquire={ttl}"), "t"), "true");
    let before = c.server(f[0]).put_ok("/v1/kv/ha/lock", "free");
    assert_eq!(before, "true");
    let m0 = kv_local(c.server(f[0]), "ha/lock")["ModifyIndex"].as_u64().unwrap();

    // Both contend at once, each through its own follower: exactly one acquires.
    let won: Vec<bool> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|k| {
                let (agent, sid) = (c.server(f[k]), &sessions[k]);
                s.spawn(move || {
                    agent.put_ok(&format!("/v1/kv/ha/lock?acquire={sid}"), &format!("held by {k}"))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap() == "true").collect()
    });
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "exactly one contender acquires: {won:?}");
    let (holder, contender) =
        if won[0] { (&sessions[0], &sessions[1]) } else { (&sessions[1], &sessions[0]) };
    let mut held = serde_json::Value::Null;
    wait_until(
        Duration::from_secs(10),
        "every server sees the lock held",
        || {
            held = kv_local(c.server(old), "ha/lock");
            c.live().all(|(_, s)| kv_local(s, "ha/lock") == held) && held["Session"] == holder.as_str()
        },
        || c.logs(),
    );
    let (modify, lock_index) = (held["ModifyIndex"].as_u64().unwrap(), held["LockIndex"].as_u64().unwrap());
    assert!(modify > m0 && lock_index == 1, "{held}");

    // A lock released just before the kill: its lock-delay (replicated state) outlives the leader.
    let delayed = create(f[0], r#"{"Name":"d","LockDelay":"60s"}"#);
    assert_eq!(c.server(f[0]).put_ok(&format!("/v1/kv/ha/delayed?acquire={delayed}"), "d"), "true");
    assert_eq!(c.server(f[0]).put_ok(&format!("/v1/session/destroy/{delayed}"), ""), "true");

    c.kill9(old);
    // A write sent to a follower while the leader is gone is acknowledged once a leader is back.
    assert_eq!(put_acked(&c, c.server(f[0]), "/v1/kv/ha/during", "failover"), "true");
    let new = c.leader();
    assert_ne!(new, old);
    let follower = c.live().map(|(i, _)| i).find(|&i| i != new).unwrap();
    let renew = || assert_eq!(c.server(follower).put(&format!("/v1/session/renew/{kept}"), "").0, 200);
    renew();
    wait_until(
        Duration::from_secs(10),
        "the write during failover on every survivor",
        || c.live().all(|(_, s)| kv_local(s, "ha/during")["Value"] == "ZmFpbG92ZXI="),
        || c.logs(),
    );
    // The TTL session and both lock sessions are still valid under the new leader.
    for (i, s) in c.live() {
        for id in [holder, contender, &ttl, &kept] {
            assert!(session_local(s, id), "s{i} lost session {id}\n{}", c.logs());
        }
        // Same holder, same indexes, on every survivor (local state and a leader read).
        assert_eq!(kv_local(s, "ha/lock"), held, "s{i}");
        let mut read = serde_json::Value::Null;
        wait_until(
            Duration::from_secs(10),
            "a default (leader) read answers",
            || match s.get("/v1/kv/ha/lock") {
                Ok((200, v)) => {
                    read = v;
                    true
                }
                _ => false,
            },
            || c.logs(),
        );
        assert_eq!(read[0], held, "s{i}");
    }

    // The contender still cannot acquire; a stale holder's check-and-set is refused.
    for (_, s) in c.live() {
        assert_eq!(put_acked(&c, s, &format!("/v1/kv/ha/lock?acquire={contender}"), "mine"), "false");
        assert_eq!(put_acked(&c, s, &format!("/v1/kv/ha/lock?cas={m0}"), "stale"), "false");
    }
    for (i, s) in c.live() {
        assert_eq!(kv_local(s, "ha/lock"), held, "s{i}: refused writes changed nothing");
    }
    let (_, d) = c.server(new).get("/v1/kv/ha/delayed").unwrap();
    assert!(d[0].get("Session").is_none(), "released before the kill: {d}");
    let acquire_delayed = format!("/v1/kv/ha/delayed?acquire={contender}");
    assert_eq!(c.server(f[1]).put_ok(&acquire_delayed, "c"), "false", "lock-delay lost on failover");

    // The holder destroys its session (behaviour release): the lock is free, but lock-delay
    // (5 s, set by the new leader's apply) refuses the contender right away ...
    assert_eq!(put_acked(&c, c.server(f[1]), &format!("/v1/session/destroy/{holder}"), ""), "true");
    let acquire = format!("/v1/kv/ha/lock?acquire={contender}");
    assert_eq!(c.server(f[0]).put_ok(&acquire, "mine"), "false", "acquired inside the lock-delay");
    for (i, s) in c.live() {
        let e = kv_local(s, "ha/lock");
        assert!(e.get("Session").is_none() && e["LockIndex"] == 1, "s{i}: released: {e}");
    }
    // ... and lets it acquire once the delay has passed.
    wait_until(
        Duration::from_secs(30),
        "the contender acquires after lock-delay",
        || c.server(f[1]).put_ok(&acquire, "mine") == "true",
        || c.logs(),
    );
    wait_until(
        Duration::from_secs(10),
        "every survivor sees the new holder",
        || c.live().all(|(_, s)| kv_local(s, "ha/lock")["Session"] == contender.as_str()),
        || c.logs(),
    );
    assert_eq!(kv_local(c.server(new), "ha/lock")["LockIndex"], 2);

    // The TTL session, never renewed, is expired by the new leader (TTL × 2 after it armed
    // its timer) and its lock released on every survivor; the one renewed through a follower
    // (which passes renewals on to the leader's timer) lives on.
    let mut renewed = Instant::now();
    wait_until(
        Duration::from_secs(60),
        "the new leader expires the TTL session",
        || {
            if renewed.elapsed() > Duration::from_secs(2) {
                renew();
                renewed = Instant::now();
            }
            c.live().all(|(_, s)| !session_local(s, &ttl) && kv_local(s, "ha/ttl").get("Session").is_none())
        },
        || c.logs(),
    );
    for (i, s) in c.live() {
        assert_eq!(kv_local(s, "ha/ttl")["Value"], "dA==", "s{i}: released, not deleted");
        assert!(session_local(s, contender), "s{i}: only the TTL session expired");
        assert!(session_local(s, &kept), "s{i}: the session renewed through a follower expired");
    }
}
