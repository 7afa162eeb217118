//! A real network partition: three servers, each in its own network namespace, joined by
//! veth pairs to a bridge in a fourth ("hub") namespace. Cutting the leader's bridge port
//! isolates it from the other two (its packets are dropped, nothing is refused), which is what
//! a switch failure or a split between racks does and what `kill -9` (tests/it/cluster.rs)
//! cannot show: the old leader keeps running and takes client requests.
//!
//! Needs `ip` (iproute2) and root (CAP_NET_ADMIN, CAP_SYS_ADMIN) for `ip netns`; `.ci/run`
//! installs iproute2 and runs as root. Without them the test fails and says so; it never
//! passes without having partitioned anything.
//!
//! Every namespace name carries the test process id, so parallel runs never collide; each
//! namespace has its own port space, so the servers use Consul's fixed ports there. The test
//! talks to a server from a thread that has entered that server's namespace (`setns`), over
//! its 127.0.0.1, a path the partition does not cut.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use nix::sched::{CloneFlags, setns};

use crate::support::{Transport, cairn_bin, query, srv_targets};

const HTTP_PORT: u16 = 8500;
const DNS_PORT: u16 = 8600;
const RPC_PORT: u16 = 8300;
const SERF_PORT: u16 = 8301;
/// Prefix of every namespace this test creates (then the pid, then a role).
const PREFIX: &str = "cairnpt";
/// The servers bind non-loopback addresses, where the server RPC needs `encrypt` (or
/// `insecure_rpc`): a fixed gossip key (base64 of 32 bytes), so they admit each other.
const KEY: &str = "Y2Fpcm4tcGFydGl0aW9uLXRlc3Qta2V5LTMyYnl0ZXM=";

/// iproute2's `ip`; Debian installs it in /usr/sbin (and /sbin), which a non-login PATH may lack.
fn ip_bin() -> &'static str {
    ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("ip")
}

/// Runs `ip ARGS`; the error is the command line and its stderr.
fn ip(args: &[&str]) -> Result<(), String> {
    let out =
        Command::new(ip_bin()).args(args).output().map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// The namespaces, the bridge and the veth pairs; all removed on drop (deleting a namespace
/// deletes the interfaces in it, and a veth pair goes with either end).
struct Net {
    hub: String,
    nodes: Vec<String>,
}

impl Net {
    /// `n` server namespaces `PREFIX<pid>s<i>` with `eth0` = `addr(i)`/24, each wired to a
    /// bridge in `PREFIX<pid>hub` through a veth whose hub end is `vh<i>`.
    fn create(n: usize) -> Self {
        remove_leftovers();
        let pid = std::process::id();
        let mut net = Self { hub: format!("{PREFIX}{pid}hub"), nodes: Vec::new() };
        if let Err(e) = net.build(n, pid) {
            panic!(
                "cannot build the network namespaces this test needs ({e}). It needs iproute2's `ip` \
                 and root (CAP_NET_ADMIN and CAP_SYS_ADMIN for `ip netns`); .ci/run installs iproute2 \
                 and runs as root"
            );
        }
        net
    }

    fn build(&mut self, n: usize, pid: u32) -> Result<(), String> {
        ip(&["netns", "add", &self.hub])?;
        ip(&["-n", &self.hub, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &self.hub, "link", "set", "br0", "up"])?;
        for i in 0..n {
            let ns = format!("{PREFIX}{pid}s{i}");
            ip(&["netns", "add", &ns])?;
            self.nodes.push(ns.clone());
            let hub_end = format!("vh{i}");
            ip(&[
                "link", "add", &hub_end, "netns", &self.hub, "type", "veth", "peer", "name", "eth0", "netns",
                &ns,
            ])?;
            ip(&["-n", &self.hub, "link", "set", &hub_end, "master", "br0"])?;
            ip(&["-n", &self.hub, "link", "set", &hub_end, "up"])?;
            ip(&["-n", &ns, "addr", "add", &format!("{}/24", addr(i)), "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// Cuts server `i` off: its bridge port goes down, so every packet to or from it is lost.
    fn cut(&self, i: usize) {
        ip(&["-n", &self.hub, "link", "set", &format!("vh{i}"), "down"]).unwrap();
    }

    fn heal(&self, i: usize) {
        ip(&["-n", &self.hub, "link", "set", &format!("vh{i}"), "up"]).unwrap();
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in self.nodes.iter().chain([&self.hub]) {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// Deletes namespaces left by runs of this test that were killed before their cleanup (their
/// pid is gone); a live run's namespaces are left alone.
fn remove_leftovers() {
    let Ok(out) = Command::new(ip_bin()).args(["netns", "list"]).output() else { return };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else { continue };
        let Some(rest) = name.strip_prefix(PREFIX) else { continue };
        let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if !pid.is_empty() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// Server `i`'s cluster address.
fn addr(i: usize) -> String {
    format!("10.77.0.{}", i + 1)
}

/// Runs `f` on a thread that has entered the network namespace `ns`: the sockets it opens
/// live there. A panic in `f` is this caller's panic.
fn in_ns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        let worker = s.spawn(move || {
            let path = format!("/run/netns/{ns}");
            let fd = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            setns(&fd, CloneFlags::CLONE_NEWNET).unwrap_or_else(|e| panic!("setns {ns}: {e}"));
            f()
        });
        worker.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

/// What an HTTP request got: (status, body), or why no answer came.
type Outcome = Result<(u16, String), String>;

/// One HTTP request to the agent of namespace `ns`; `Err` when no answer came within `timeout`
/// (or the connection failed).
fn http(ns: &str, method: &str, path: &str, body: &str, timeout: Duration) -> Outcome {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let url = format!("http://127.0.0.1:{HTTP_PORT}{path}");
    let body = body.to_owned();
    in_ns(ns, move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let client =
                crate::support::http_client_builder().no_proxy().build().map_err(|e| e.to_string())?;
            let r = client.request(method, url).body(body).timeout(timeout).send().await;
            let r = r.map_err(|e| format!("{e:?}"))?;
            let status = r.status().as_u16();
            Ok((status, r.text().await.map_err(|e| format!("{e:?}"))?))
        })
    })
}

/// The SRV ports of `web.service.consul` as the DNS server of namespace `ns` answers (over
/// TCP: over UDP without EDNS only 3 of the 4 instances would be sent).
fn web_ports(ns: &str) -> BTreeSet<u16> {
    in_ns(ns, || {
        let dns = SocketAddr::from(([127, 0, 0, 1], DNS_PORT));
        srv_targets(&query(dns, "web.service.consul.", RecordType::SRV, Transport::Tcp))
            .into_iter()
            .map(|(port, _)| port)
            .collect()
    })
}

/// A server process, started with `ip netns exec`; killed on drop.
struct Server {
    child: Child,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Three servers in their namespaces. Field order is drop order: processes before namespaces.
struct Cluster {
    servers: Vec<Server>,
    net: Net,
    _dir: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Self {
        let net = Net::create(3);
        let dir = tempfile::tempdir().unwrap();
        let joins: Vec<String> =
            (0..3).flat_map(|i| ["--retry-join".into(), format!("{}:{RPC_PORT}", addr(i))]).collect();
        let servers = (0..3)
            .map(|i| {
                let (data, log) = (dir.path().join(format!("s{i}")), dir.path().join(format!("s{i}.log")));
                let out = std::fs::File::create(&log).unwrap();
                let child = Command::new(ip_bin())
                    .args(["netns", "exec", &net.nodes[i]])
                    .arg(cairn_bin())
                    .args(["agent", "--server", "--bootstrap-expect", "3", "--node", &format!("s{i}")])
                    .arg("--data-dir")
                    .arg(&data)
                    .args(["--bind", &addr(i), "--client", "127.0.0.1", "--encrypt", KEY])
                    .args(["--http-port", &HTTP_PORT.to_string(), "--dns-port", &DNS_PORT.to_string()])
                    .args(["--server-port", &RPC_PORT.to_string(), "--serf-lan-port", &SERF_PORT.to_string()])
                    .args(&joins)
                    .stdout(out.try_clone().unwrap())
                    .stderr(out)
                    .stdin(Stdio::null())
                    .spawn()
                    .expect("spawn ip netns exec cairn");
                Server { child, log }
            })
            .collect();
        Self { servers, net, _dir: dir }
    }

    fn ns(&self, i: usize) -> &str {
        &self.net.nodes[i]
    }

    /// The server `i` names as leader (`None`: no leader known, or no answer).
    fn leader_seen_by(&self, i: usize) -> Option<usize> {
        let (status, body) = http(self.ns(i), "GET", "/v1/status/leader", "", Duration::from_secs(5)).ok()?;
        let leader: String = serde_json::from_str(&body).ok()?;
        (status == 200).then(|| (0..3).find(|&j| leader == format!("{}:{RPC_PORT}", addr(j))))?
    }

    /// The leader that every server in `among` names, once they agree on one other than
    /// `not` (within `within`).
    fn agreed_leader(&self, among: &[usize], not: Option<usize>, within: Duration) -> usize {
        let mut agreed = None;
        self.wait_for(within, &format!("servers {among:?} agree on a leader other than {not:?}"), || {
            let seen: BTreeSet<Option<usize>> = among.iter().map(|&i| self.leader_seen_by(i)).collect();
            agreed = seen.iter().next().copied().flatten().filter(|l| seen.len() == 1 && Some(*l) != not);
            agreed.map(|_| ()).ok_or_else(|| format!("they name {seen:?}"))
        });
        agreed.unwrap()
    }

    /// KV keys under `part/` in server `i`'s local state (`?stale`, no leader involved).
    fn local_keys(&self, i: usize) -> BTreeSet<String> {
        match http(self.ns(i), "GET", "/v1/kv/part/?keys&stale", "", Duration::from_secs(5)) {
            Ok((200, body)) => serde_json::from_str(&body).unwrap_or_default(),
            _ => BTreeSet::new(),
        }
    }

    /// Polls `f` every 50 ms until it holds; fails with `what` and the servers' logs after `within`.
    fn wait(&self, within: Duration, what: &str, mut f: impl FnMut() -> bool) {
        self.wait_for(within, what, || if f() { Ok(()) } else { Err(String::new()) });
    }

    /// Like [`Cluster::wait`]; the failure also shows the last `Err` of `f`.
    fn wait_for(&self, within: Duration, what: &str, mut f: impl FnMut() -> Result<(), String>) {
        let deadline = Instant::now() + within;
        loop {
            let Err(last) = f() else { return };
            assert!(Instant::now() < deadline, "{what}: not within {within:?} ({last})\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn logs(&self) -> String {
        let tail = |s: &Server| {
            let log = std::fs::read_to_string(&s.log).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            lines[lines.len().saturating_sub(30)..].join("\n")
        };
        self.servers
            .iter()
            .enumerate()
            .map(|(i, s)| format!("--- s{i}\n{}", tail(s)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Sets its flag when dropped, panics included.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A KV write to server `i` that counts as acknowledged only with Consul's `200 true`.
fn kv_put(c: &Cluster, i: usize, key: &str, timeout: Duration) -> Outcome {
    http(c.ns(i), "PUT", &format!("/v1/kv/{key}"), key, timeout)
}

fn acked(outcome: &Outcome) -> bool {
    matches!(outcome, Ok((200, body)) if body.trim() == "true")
}

/// `Ok` for an acknowledged write, else what came back instead.
fn ack_or_why(outcome: &Outcome) -> Result<(), String> {
    if acked(outcome) { Ok(()) } else { Err(format!("last attempt: {outcome:?}")) }
}

#[test]
fn a_partitioned_leader_cannot_acknowledge_writes_and_the_majority_carries_on() {
    let c = Cluster::start();
    let all = [0, 1, 2];
    let old = c.agreed_leader(&all, None, Duration::from_secs(60));
    let majority: Vec<usize> = all.into_iter().filter(|&i| i != old).collect();

    // Before: every server registers `web` on port 8000+i and takes a write.
    let mut written = BTreeSet::new();
    for i in all {
        let body = format!(r#"{{"Name":"web","Port":{}}}"#, 8000 + i);
        let reg = http(c.ns(i), "PUT", "/v1/agent/service/register", &body, Duration::from_secs(30));
        assert!(matches!(reg, Ok((200, _))), "register web on s{i}: {reg:?}");
        let key = format!("part/before-{i}");
        let put = kv_put(&c, i, &key, Duration::from_secs(30));
        assert!(acked(&put), "PUT {key} on s{i} before the partition: {put:?}");
        written.insert(key);
    }
    let web_all: BTreeSet<u16> = all.iter().map(|i| 8000 + *i as u16).collect();
    c.wait(Duration::from_secs(10), "web with three instances in every server's DNS", || {
        all.iter().all(|&i| web_ports(c.ns(i)) == web_all)
    });

    c.net.cut(old);
    let cut_at = Instant::now();
    let stop = AtomicBool::new(false);
    // (key, outcome, how long it took) of every write tried on the isolated old leader.
    let minority: Vec<(String, Outcome, Duration)> = std::thread::scope(|s| {
        let isolated = s.spawn(|| {
            let mut tried = Vec::new();
            for n in 0.. {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let key = format!("part/minority-{n}");
                let started = Instant::now();
                let outcome = kv_put(&c, old, &key, Duration::from_secs(20));
                tried.push((key, outcome, started.elapsed()));
            }
            tried
        });

        // Stops the writer above even when an assertion below fails (the scope joins it).
        let stopper = StopOnDrop(&stop);
        // The majority elects a new leader ...
        let new = c.agreed_leader(&majority, Some(old), Duration::from_secs(30));
        eprintln!("partition: cut -> the majority agrees on s{new} in {:?}", cut_at.elapsed());
        // ... acknowledges writes through either of its servers ...
        for n in 0..10 {
            let (i, key) = (majority[n % 2], format!("part/during-{n}"));
            c.wait_for(Duration::from_secs(30), &format!("PUT {key} acknowledged by the majority"), || {
                ack_or_why(&kv_put(&c, i, &key, Duration::from_secs(15)))
            });
            written.insert(key);
        }
        // ... registers a service (a catalog write) and answers it in DNS on both servers,
        // while DNS on the majority keeps answering the majority's `web` instances.
        let body = r#"{"Name":"web","ID":"web-during","Port":8100}"#;
        let reg = http(c.ns(majority[0]), "PUT", "/v1/agent/service/register", body, Duration::from_secs(15));
        assert!(matches!(reg, Ok((200, _))), "register during the partition: {reg:?}");
        let majority_web: BTreeSet<u16> = majority.iter().map(|i| 8000 + *i as u16).chain([8100]).collect();
        c.wait(Duration::from_secs(10), "the new instance in the majority's DNS", || {
            majority.iter().all(|&i| majority_web.is_subset(&web_ports(c.ns(i))))
        });
        // Keep the partition for at least 12 s (longer than a proposal's 10 s commit timeout on
        // the old leader), querying the majority's DNS throughout.
        let mut queries = 0;
        while cut_at.elapsed() < Duration::from_secs(12) {
            for &i in &majority {
                let ports = web_ports(c.ns(i));
                assert!(majority_web.is_subset(&ports), "s{i} DNS during the partition: {ports:?}");
                queries += 1;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("partition: {queries} DNS queries on the majority, all answered");
        drop(stopper);
        isolated.join().unwrap()
    });

    // The isolated old leader acknowledged nothing in the whole partition: each attempt ended
    // in an error status (or no answer within 20 s), never in Consul's `200 true`.
    assert!(!minority.is_empty());
    for (key, outcome, took) in &minority {
        eprintln!("partition: PUT {key} on the isolated old leader -> {outcome:?} after {took:?}");
        assert!(!acked(outcome), "the isolated old leader acknowledged {key}: {outcome:?}\n{}", c.logs());
        assert!(!matches!(outcome, Ok((200, _))), "PUT {key} on the minority answered 200: {outcome:?}");
    }
    let partitioned_for = cut_at.elapsed();

    c.net.heal(old);
    let healed_at = Instant::now();
    // The old leader steps down and follows the majority's leader.
    let leader = c.agreed_leader(&all, Some(old), Duration::from_secs(30));
    eprintln!(
        "partition: healed after {partitioned_for:?}; all three agree on s{leader} in {:?}",
        healed_at.elapsed()
    );
    // It catches up: every acknowledged write is in every server's local state ...
    for i in all {
        let mut have = BTreeSet::new();
        c.wait(Duration::from_secs(30), &format!("every acknowledged write on s{i}"), || {
            have = c.local_keys(i);
            written.is_subset(&have)
        });
        // ... and no write tried on the minority: none was acknowledged, and each attempt had
        // finished (with its error) before the partition healed, so none may be committed.
        for (key, outcome, _) in &minority {
            let answered = outcome.is_ok();
            assert!(
                !(answered && have.contains(key)),
                "s{i} has {key}, which the isolated old leader refused with {outcome:?}"
            );
            if have.contains(key) {
                eprintln!("partition: {key} (client timed out on the minority) is present on s{i}");
            }
        }
    }
    // The old leader serves writes again (forwarded to the leader).
    c.wait_for(Duration::from_secs(30), "a write through the old leader after healing", || {
        ack_or_why(&kv_put(&c, old, "part/after", Duration::from_secs(15)))
    });
    // Its DNS answers what the majority registered while it was cut off.
    let majority_web: BTreeSet<u16> = majority.iter().map(|i| 8000 + *i as u16).chain([8100]).collect();
    c.wait(Duration::from_secs(10), "the majority's instances in the old leader's DNS", || {
        majority_web.is_subset(&web_ports(c.ns(old)))
    });
    // The gossip pool, split in two (each side declared the other failed), becomes one again
    // (Serf's reconnect, every 30 s), so the old leader's serfHealth passes and its own `web`
    // instance is back in DNS.
    let statuses = |i: usize| -> Vec<(String, u64)> {
        let Ok((200, body)) = http(c.ns(i), "GET", "/v1/agent/members", "", Duration::from_secs(5)) else {
            return Vec::new();
        };
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        v.as_array()
            .into_iter()
            .flatten()
            .map(|m| (m["Name"].as_str().unwrap_or("").to_owned(), m["Status"].as_u64().unwrap_or(0)))
            .collect()
    };
    c.wait_for(Duration::from_secs(50), "one gossip pool again and the old leader's web in DNS", || {
        let seen: Vec<_> = all.iter().map(|&i| statuses(i)).collect();
        let whole = seen.iter().all(|m| m.len() == 3 && m.iter().all(|(_, st)| *st == 1));
        let own_web = web_ports(c.ns(leader)).contains(&(8000 + old as u16));
        if whole && own_web {
            Ok(())
        } else {
            Err(format!("own web in DNS: {own_web}; members seen by s0..s2: {seen:?}"))
        }
    });
    eprintln!("partition: one gossip pool again {:?} after healing", healed_at.elapsed());
}
