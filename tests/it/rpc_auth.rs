//! Only members speak the server RPC: raw forged frames written to real servers' RPC ports.
//!
//! Without `encrypt`, a `Join` or `Remove` from a peer that is no alive server of the gossip
//! pool is refused (the rest stays open on loopback, as `insecure_rpc` documents). With
//! `encrypt`, a connection that does not prove the key gets no frame answered: a forwarded KV
//! write, a join, a remove, an AppendEntries and a subscription are all closed unanswered,
//! while a raw client that proves the key (HMAC-SHA256 over both nonces, `rpc::auth`) is
//! answered; three keyed servers elect a leader and replicate, a keyed client agent forwards a
//! write and follows the replica stream, a server with another key never joins, and garbage,
//! truncated or silent challenges close the connection while the server keeps serving.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use base64::Engine as _;
use ring::hmac;
use serde_json::Value;

use crate::cluster::{Cluster, wait_until};
use crate::support::{Agent, cairn_bin};

/// How long a raw client waits for a response.
const REPLY_WITHIN: Duration = Duration::from_secs(10);

/// A KV write of `key` forwarded as a server would (`Request::Forward`).
pub(crate) fn forward_kv(key: &str) -> String {
    format!(
        r#"{{"Forward":{{"Kv":{{"op":{{"Set":{{"key":"{key}","value":"Zm9yZ2Vk","flags":0,"index":0,"session":""}}}},"now_ms":1}}}}}}"#
    )
}

/// An AppendEntries from a leader that does not exist (term 99, node 4242), with no entries.
pub(crate) const APPEND: &str = r#"{"AppendEntries":{"vote":{"leader_id":{"term":99,"node_id":4242},"committed":true},"prev_log_id":null,"entries":[],"leader_commit":null}}"#;
/// A join of a server that does not exist.
pub(crate) const JOIN_FAKE: &str = r#"{"Join":{"node_id":4242,"addr":"127.0.0.1:1"}}"#;
/// A replica stream from the start.
const SUBSCRIBE: &str = r#"{"Subscribe":{"from_index":0}}"#;

pub(crate) fn remove(node_id: u64) -> String {
    format!(r#"{{"Remove":{{"node_id":{node_id}}}}}"#)
}

/// A connection to `rpc` from source address `from` (any 127/8 address is this host).
fn connect_from(from: [u8; 4], rpc: u16) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::from((from, 0)).into()).unwrap();
    s.connect(&SocketAddr::from(([127, 0, 0, 1], rpc)).into()).unwrap();
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(REPLY_WITHIN)).unwrap();
    s
}

pub(crate) fn connect(rpc: u16) -> TcpStream {
    connect_from([127, 0, 0, 1], rpc)
}

pub(crate) fn send(s: &mut impl Write, json: &str) {
    let mut frame = (json.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(json.as_bytes());
    s.write_all(&frame).unwrap();
}

/// The next frame, or why none came (closed, timed out).
pub(crate) fn recv(s: &mut impl Read) -> Result<Value, String> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).map_err(|e| format!("no frame: {e}"))?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).map_err(|e| format!("cut short: {e}"))?;
    Ok(serde_json::from_slice(&body).unwrap())
}

/// Sends one frame and returns the reply.
pub(crate) fn call(s: &mut (impl Read + Write), json: &str) -> Result<Value, String> {
    send(s, json);
    recv(s)
}

/// Whether the server closes `s` without a byte (within `REPLY_WITHIN`). A server that closes
/// with unread bytes (the rest of a forged frame) resets the connection instead.
pub(crate) fn closed_unanswered(s: &mut impl Read) -> bool {
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(n) => n == 0,
        Err(e) => {
            matches!(e.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted)
        }
    }
}

/// The client side of the challenge with the base64 `key` (`rpc::auth`'s wire format).
pub(crate) fn prove(s: &mut (impl Read + Write), key: &str) -> Result<(), String> {
    const DOMAIN: &[u8] = b"cairn server-rpc admission v1\0";
    let key =
        hmac::Key::new(hmac::HMAC_SHA256, &base64::engine::general_purpose::STANDARD.decode(key).unwrap());
    let cn: [u8; 32] =
        std::array::from_fn(|i| (i as u8).wrapping_mul(31).wrapping_add(std::process::id() as u8));
    let mut hello = b"CAIRNRA1".to_vec();
    hello.extend_from_slice(&cn);
    s.write_all(&hello).map_err(|e| e.to_string())?;
    let mut reply = [0u8; 64];
    s.read_exact(&mut reply).map_err(|e| format!("no server proof: {e}"))?;
    let transcript = |role: &[u8]| [DOMAIN, role, &cn, &reply[..32]].concat();
    hmac::verify(&key, &transcript(b"server"), &reply[32..]).map_err(|_| "server proved another key")?;
    s.write_all(hmac::sign(&key, &transcript(b"client")).as_ref()).map_err(|e| e.to_string())?;
    let mut ok = [0u8; 1];
    s.read_exact(&mut ok).map_err(|e| format!("refused: {e}"))?;
    (ok[0] == 1).then_some(()).ok_or_else(|| "refused".to_owned())
}

/// The voters (Raft id -> RPC address) a server names in its `Hello`, through `s`.
fn voters(s: &mut TcpStream) -> BTreeMap<u64, String> {
    let hello = call(s, r#""Hello""#).unwrap();
    hello["Hello"]["voters"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(id, addr)| (id.parse().unwrap(), addr.as_str().unwrap().to_owned()))
        .collect()
}

pub(crate) fn peers(agent: &Agent) -> usize {
    agent.get("/v1/status/peers").map(|r| r.1.as_array().map_or(0, Vec::len)).unwrap_or(0)
}

pub(crate) fn kv_status(agent: &Agent, key: &str) -> u16 {
    agent.get_full(&format!("/v1/kv/{key}?stale")).map(|r| r.0).unwrap_or(0)
}

fn refusal(reply: &Value, variant: &str) -> String {
    reply[variant]["Err"]["Failed"].as_str().unwrap_or_default().to_owned()
}

pub(crate) fn keygen() -> String {
    let out = std::process::Command::new(cairn_bin()).arg("keygen").output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn without_encrypt_a_non_member_can_neither_join_nor_remove_a_server() {
    let c = Cluster::start(3, &[]);
    let leader = c.leader();
    // Joins by the real servers passed the membership check: three voters.
    wait_until(Duration::from_secs(30), "three voters", || peers(c.server(leader)) == 3, || c.logs());
    let rpc = c.ports[leader];
    let mut s = connect(rpc);
    let voters = voters(&mut s);
    assert_eq!(voters.len(), 3, "{voters:?}");

    // A server nobody gossips with cannot be added as a voter.
    let reply = call(&mut s, JOIN_FAKE).unwrap_or_else(|e| panic!("join: {e}\n{}", c.logs()));
    assert!(refusal(&reply, "Join").contains("is not an alive server"), "{reply}");

    // A process on an address that is no member's cannot remove one.
    let follower = *voters.keys().find(|id| voters[*id] != format!("127.0.0.1:{rpc}")).unwrap();
    let mut outsider = connect_from([127, 0, 0, 2], rpc);
    let reply =
        call(&mut outsider, &remove(follower)).unwrap_or_else(|e| panic!("remove: {e}\n{}", c.logs()));
    assert!(refusal(&reply, "Remove").contains("127.0.0.2 is not an alive server"), "{reply}");
    let reply = call(&mut outsider, JOIN_FAKE).unwrap();
    assert!(refusal(&reply, "Join").contains("127.0.0.2 is not an alive server"), "{reply}");

    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(peers(c.server(leader)), 3, "{}", c.logs());
    assert!(c.server(leader).log().contains("rpc membership change refused"), "{}", c.logs());
    // Writes still commit.
    c.server(leader).put_ok("/v1/kv/after", "x");
}

#[test]
fn with_encrypt_nothing_is_answered_without_the_key_and_everything_with_it() {
    let key = keygen();
    let c = Cluster::start(3, &["--encrypt", &key]);
    let leader = c.leader();
    wait_until(Duration::from_secs(30), "three voters", || peers(c.server(leader)) == 3, || c.logs());
    let rpc = c.ports[leader];
    let follower = (0..3).find(|&i| i != leader).unwrap();

    // Forged frames without the handshake: closed unanswered, nothing changes.
    let frames =
        [forward_kv("forged"), JOIN_FAKE.to_owned(), remove(1), APPEND.to_owned(), SUBSCRIBE.to_owned()];
    let mut forged = Vec::new();
    for frame in &frames {
        for port in [rpc, c.ports[follower]] {
            let mut s = connect(port);
            send(&mut s, frame);
            forged.push((frame, s));
        }
    }
    for (frame, mut s) in forged {
        assert!(closed_unanswered(&mut s), "answered without the key: {frame}\n{}", c.logs());
    }
    // A client that proves another key is refused too.
    let mut s = connect(rpc);
    assert!(prove(&mut s, &keygen()).is_err());
    drop(s);
    assert!(c.server(leader).log().contains("rpc connection refused"), "{}", c.logs());

    // With the key, a raw client is answered: a forwarded write commits on every server.
    let mut s = connect(c.ports[follower]);
    prove(&mut s, &key).unwrap_or_else(|e| panic!("{e}\n{}", c.logs()));
    let reply = call(&mut s, &forward_kv("keyed")).unwrap();
    assert!(reply["Forward"]["Ok"].is_array(), "{reply}");
    assert_eq!(voters(&mut s).len(), 3);
    for i in 0..3 {
        wait_until(
            Duration::from_secs(10),
            "the keyed write everywhere",
            || kv_status(c.server(i), "keyed") == 200,
            || c.logs(),
        );
        assert_eq!(kv_status(c.server(i), "forged"), 404, "{}", c.logs());
    }
    assert_eq!(peers(c.server(leader)), 3);

    // An HTTP write on a follower goes to the leader over the keyed RPC and replicates.
    c.server(follower).put_ok("/v1/kv/via-follower", "y");
    for i in 0..3 {
        wait_until(
            Duration::from_secs(10),
            "the follower's write everywhere",
            || kv_status(c.server(i), "via-follower") == 200,
            || c.logs(),
        );
    }
}

#[test]
fn with_encrypt_a_keyed_client_agent_forwards_and_follows_and_a_wrong_key_server_never_joins() {
    let key = keygen();
    let c = Cluster::start(3, &["--encrypt", &key]);
    let leader = c.leader();
    let dir = c.dir.path().join("c0").display().to_string();
    let mut args =
        vec!["--node".to_owned(), "c0".into(), "--data-dir".into(), dir, "--encrypt".into(), key.clone()];
    for p in &c.ports {
        args.extend(["--retry-join".to_owned(), format!("127.0.0.1:{p}")]);
    }
    let client = Agent::spawn(&args.iter().map(String::as_str).collect::<Vec<_>>());
    client.wait_ready();
    // A write on the client is forwarded; one on a server reaches the client's replica.
    client.put_ok("/v1/kv/from-client", "c");
    c.server(leader).put_ok("/v1/kv/from-server", "s");
    for a in [&client, c.server(leader)] {
        for k in ["from-client", "from-server"] {
            wait_until(
                Duration::from_secs(10),
                "both writes on both",
                || kv_status(a, k) == 200,
                || c.logs(),
            );
        }
    }

    // A server with another key retry-joins the cluster and stays out of it.
    let rogue_dir = c.dir.path().join("rogue").display().to_string();
    let mut args =
        vec!["--server".to_owned(), "--bootstrap-expect".into(), "3".into(), "--node".into(), "rogue".into()];
    args.extend(["--data-dir".to_owned(), rogue_dir, "--encrypt".into(), keygen()]);
    for p in &c.ports {
        args.extend(["--retry-join".to_owned(), format!("127.0.0.1:{p}")]);
    }
    let rogue = Agent::spawn(&args.iter().map(String::as_str).collect::<Vec<_>>());
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(peers(c.server(leader)), 3, "{}\n--- rogue\n{}", c.logs(), rogue.log());
    let logs: String = (0..3).map(|i| c.server(i).log()).collect();
    assert!(logs.contains("rpc connection refused"), "{}", c.logs());
    drop(rogue);
    c.server(leader).put_ok("/v1/kv/still", "ok");
}

#[test]
fn garbage_truncated_and_silent_challenges_are_closed_and_the_server_keeps_serving() {
    let key = keygen();
    let d = tempfile::tempdir().unwrap();
    let rpc = crate::cluster::free_ports(1)[0];
    let server = Agent::server(d.path(), &["--encrypt", &key, "--server-port", &rpc.to_string()]);
    let attempts: [&[u8]; 3] =
        [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n.................", b"CAIRNRA1trunc", &[0xff; 4096]];
    for bytes in attempts {
        let mut s = connect(rpc);
        s.write_all(bytes).unwrap();
        let _ = s.shutdown(std::net::Shutdown::Write);
        assert!(closed_unanswered(&mut s), "{bytes:?}");
    }
    // Silent: closed after the handshake timeout (5 s), not held.
    let mut silent = connect(rpc);
    let t = std::time::Instant::now();
    assert!(closed_unanswered(&mut silent));
    assert!(t.elapsed() >= Duration::from_secs(4), "{:?}", t.elapsed());
    let log = server.log();
    assert!(log.contains("not a cluster-key challenge") && log.contains("handshake cut short"), "{log}");
    assert!(log.contains("no handshake within"), "{log}");
    // Still serving, over HTTP and to a keyed client.
    server.put_ok("/v1/kv/alive", "1");
    let mut s = connect(rpc);
    prove(&mut s, &key).unwrap();
    assert_eq!(voters(&mut s).len(), 1);
}

#[test]
fn without_encrypt_a_server_refuses_a_non_loopback_rpc_address_unless_insecure_rpc() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().display().to_string();
    let base =
        ["--server", "--bootstrap-expect", "1", "--node", "n1", "--data-dir", &data, "--bind", "0.0.0.0"];
    let err = Agent::try_start(&base).err().expect("refused");
    assert!(
        err.contains(
            "refusing to serve the server RPC on 0.0.0.0:0 without encrypt or TLS with verify_incoming: \
             anyone who can reach it could join as a voter or write to the catalog; set insecure_rpc = true to accept that"
        ),
        "{err}"
    );
    let mut open = base.to_vec();
    open.push("--insecure-rpc");
    drop(Agent::start(&open));
}
