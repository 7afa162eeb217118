//! Hostile input at the sockets: the agent answers what it can, rejects the rest, and keeps
//! serving (notes/reliability.md: bad input never crashes the agent; §9 D2 and D5).
//!
//! The byte-level cases are written out here as raw datagrams and frames, sent to a real
//! agent; `src/dns/malformed_tests.rs` holds the full table against the pure handler.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use crate::support::{Agent, Transport, eventually};

fn still_answers(agent: &Agent) {
    let msg = agent.query("node1.node.consul.", RecordType::A, Transport::Udp);
    assert_eq!(msg.metadata.response_code, ResponseCode::NoError);
    assert_eq!(agent.get("/v1/status/leader").unwrap().0, 200);
}

#[test]
fn garbage_dns_datagrams_and_frames_do_not_stop_the_server() {
    let agent = Agent::dev(&[]);
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for len in [0usize, 1, 2, 11, 12, 13, 17, 64, 511, 512, 513, 1500, 4000] {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        udp.send_to(&bytes, agent.dns).unwrap();
    }
    // A header that claims a question but carries none gets FORMERR with the same ID.
    let header = [0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
    udp.send_to(&header, agent.dns).unwrap();
    let mut buf = [0u8; 600];
    let mut formerr = false;
    while let Ok((n, _)) = udp.recv_from(&mut buf) {
        if n >= 4 && buf[..2] == [0xab, 0xcd] {
            formerr = buf[3] & 0x0f == 1;
        }
    }
    assert!(formerr, "FORMERR for a question-less query");

    // TCP: a length prefix with no body, a huge length, and an idle connection.
    let mut idle = TcpStream::connect(agent.dns).unwrap();
    let mut short = TcpStream::connect(agent.dns).unwrap();
    short.write_all(&[0x00, 0x40, 1, 2, 3]).unwrap();
    drop(short);
    let mut huge = TcpStream::connect(agent.dns).unwrap();
    huge.write_all(&[0xff, 0xff]).unwrap();
    huge.write_all(&[0u8; 1000]).unwrap();
    drop(huge);
    still_answers(&agent);
    let _ = idle.write_all(&[0x00]);
    let mut sink = [0u8; 8];
    idle.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let _ = idle.read(&mut sink);
    still_answers(&agent);
}

#[test]
fn malformed_http_requests_get_consul_errors_and_the_agent_keeps_serving() {
    let agent = Agent::dev(&[]);
    let cases: &[(&str, &str)] = &[
        ("/v1/agent/service/register", "[]"),
        ("/v1/agent/service/register", "null"),
        ("/v1/agent/service/register", r#"{"Name":"x","Port":99999999}"#),
        ("/v1/agent/service/register", r#"{"Name":"x","Check":{"TTL":"forever"}}"#),
        ("/v1/agent/service/register", r#"{"Name":"x","Weights":{"Passing":0}}"#),
        ("/v1/agent/service/register", "\u{0}\u{1}garbage"),
        ("/v1/catalog/register", r#"{"Node":"","Address":"1.2.3.4"}"#),
        ("/v1/agent/check/update/nope", r#"{"Status":"fine"}"#),
    ];
    for (path, body) in cases {
        let (status, text) = agent.put(path, body);
        // 4xx, or 500 where Consul reports a catalog RPC validation error (spec §4.6).
        assert!((400..500).contains(&status) || status == 500, "{path} {body}: {status} {text}");
        assert!(!text.is_empty(), "{path} {body}: an error says why");
    }
    for path in [
        "/v1/health/service/x?index=-1",
        "/v1/health/service/x?wait=10lightyears",
        "/v1/%ff%fe",
        "/v2/nothing",
    ] {
        let (status, _) = agent.get(path).unwrap();
        assert!((400..500).contains(&status), "{path}: {status}");
    }
    still_answers(&agent);
}

// ----- raw packets -----------------------------------------------------------------------

const RD: u16 = 0x0100;
const QR: u16 = 0x8000;
const Z: u16 = 0x0040;

fn header(id: u16, flags: u16, counts: [u16; 4]) -> Vec<u8> {
    [id, flags].iter().chain(counts.iter()).flat_map(|v| v.to_be_bytes()).collect()
}

fn name(dotted: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in dotted.split('.').filter(|l| !l.is_empty()) {
        out.push(u8::try_from(label.len()).unwrap());
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// `node1.node.consul.` A, class `class`.
fn question(class: u16) -> Vec<u8> {
    let mut q = name("node1.node.consul.");
    q.extend_from_slice(&1u16.to_be_bytes());
    q.extend_from_slice(&class.to_be_bytes());
    q
}

/// OPT RR: owner, UDP size 1232, EDNS version, flags, options.
fn opt(owner: &[u8], version: u8, options: &[(u16, &[u8])]) -> Vec<u8> {
    let mut rdata = Vec::new();
    for (code, data) in options {
        rdata.extend_from_slice(&code.to_be_bytes());
        rdata.extend_from_slice(&u16::try_from(data.len()).unwrap().to_be_bytes());
        rdata.extend_from_slice(data);
    }
    let mut out = owner.to_vec();
    out.extend_from_slice(&[0, 41, 0x04, 0xd0, 0, version, 0, 0]);
    out.extend_from_slice(&u16::try_from(rdata.len()).unwrap().to_be_bytes());
    out.extend(rdata);
    out
}

fn packet(id: u16, flags: u16, counts: [u16; 4], body: &[&[u8]]) -> Vec<u8> {
    let mut out = header(id, flags, counts);
    for part in body {
        out.extend_from_slice(part);
    }
    out
}

/// The outcome a case must have.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    Drop,
    /// 12-bit RCODE, and whether the reply carries an OPT.
    Rcode(u16, bool),
}

/// Sends `bytes` then a canary query on the same UDP socket. The agent answers datagrams in
/// order from one loop, so the first reply is either the case's or, for a drop, the canary's.
fn udp_case(agent: &Agent, what: &str, bytes: &[u8], want: Want) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    sock.send_to(bytes, agent.dns).unwrap();
    let canary_id = 0xcafe;
    sock.send_to(&packet(canary_id, RD, [1, 0, 0, 0], &[&question(1)]), agent.dns).unwrap();
    let mut buf = vec![0u8; 65535];
    let n = sock.recv(&mut buf).unwrap_or_else(|e| panic!("{what}: no reply at all: {e}"));
    let first = buf[..n].to_vec();
    match want {
        Want::Drop => {
            assert_eq!(first[..2], canary_id.to_be_bytes(), "{what}: expected no reply");
            return;
        }
        Want::Rcode(rcode, with_opt) => {
            assert_eq!(first[..2], bytes[..2], "{what}: ID echoed");
            assert_eq!(first[2] & 0x80, 0x80, "{what}: QR=1");
            assert_eq!(first[2] & 0x78, bytes[2] & 0x78, "{what}: opcode echoed");
            assert_eq!(first[3] & 0x40, 0, "{what}: Z clear");
            let msg = Message::from_vec(&first).unwrap_or_else(|e| panic!("{what}: undecodable: {e}"));
            let high = msg.edns.as_ref().map_or(0, |e| u16::from(e.rcode_high()));
            assert_eq!(high << 4 | u16::from(first[3] & 0x0f), rcode, "{what}: RCODE");
            assert_eq!(msg.edns.is_some(), with_opt, "{what}: OPT in reply");
            if let Some(e) = &msg.edns {
                assert_eq!(e.version(), 0, "{what}: EDNS version");
                assert!(e.options().as_ref().is_empty(), "{what}: no options copied");
            }
        }
    }
    let n = sock.recv(&mut buf).unwrap_or_else(|e| panic!("{what}: canary unanswered: {e}"));
    assert_eq!(buf[..2], canary_id.to_be_bytes(), "{what}: canary reply");
    assert_eq!(buf[3] & 0x0f, 0, "{what}: canary NOERROR ({n} bytes)");
}

#[test]
fn malformed_datagrams_get_the_rfc_reply_or_none_and_the_agent_keeps_serving() {
    let agent = Agent::dev(&[]);
    let q = question(1);
    let opt0 = opt(&[0], 0, &[]);
    let mut long_label = vec![0x40];
    long_label.extend([b'a'; 64]);
    long_label.extend([0, 0, 1, 0, 1]);
    let mut n256 = name(&format!("bb.{}", "a.".repeat(126)));
    n256.extend([0, 1, 0, 1]);
    let mut largest = packet(0x1111, RD, [1, 0, 0, 0], &[&q]);
    largest.resize(65507, 0); // the largest IPv4 UDP payload; trailing bytes are ignored
    let cases: Vec<(&str, Vec<u8>, Want)> = vec![
        ("empty datagram", vec![], Want::Drop),
        ("1 byte", vec![0x42], Want::Drop),
        ("11 bytes", header(1, RD, [1, 0, 0, 0])[..11].to_vec(), Want::Drop),
        ("header only", header(2, RD, [0, 0, 0, 0]), Want::Rcode(1, false)),
        ("QR=1", packet(3, QR | RD, [1, 0, 0, 0], &[&q]), Want::Drop),
        ("IQUERY", packet(4, 1 << 11, [1, 0, 0, 0], &[&q]), Want::Rcode(4, false)),
        ("STATUS", packet(5, 2 << 11, [1, 0, 0, 0], &[&q]), Want::Rcode(4, false)),
        ("NOTIFY", packet(6, 4 << 11, [1, 0, 0, 0], &[&q]), Want::Rcode(4, false)),
        ("UPDATE", packet(7, 5 << 11, [1, 0, 0, 0], &[&q]), Want::Rcode(4, false)),
        ("opcode 15 header only", header(8, 15 << 11, [0, 0, 0, 0]), Want::Rcode(4, false)),
        ("QDCOUNT 2", packet(9, RD, [2, 0, 0, 0], &[&q, &q]), Want::Rcode(1, false)),
        ("ANCOUNT 65535", packet(10, RD, [1, 65535, 0, 0], &[&q]), Want::Rcode(1, false)),
        ("truncated question", packet(11, RD, [1, 0, 0, 0], &[&q[..q.len() - 2]]), Want::Rcode(1, false)),
        (
            "pointer to itself",
            packet(12, RD, [1, 0, 0, 0], &[&[0xc0, 12, 0, 1, 0, 1]]),
            Want::Rcode(1, false),
        ),
        (
            "two-pointer cycle",
            packet(13, RD, [1, 0, 0, 0], &[&[0xc0, 14, 0xc0, 12, 0, 1, 0, 1]]),
            Want::Rcode(1, false),
        ),
        (
            "forward pointer",
            packet(14, RD, [1, 0, 0, 0], &[&[0xc0, 20, 0, 1, 0, 1, 0]]),
            Want::Rcode(1, false),
        ),
        (
            "pointer past the end",
            packet(15, RD, [1, 0, 0, 0], &[&[0xc0, 0xff, 0, 1, 0, 1]]),
            Want::Rcode(1, false),
        ),
        ("label of 64", packet(16, RD, [1, 0, 0, 0], &[&long_label]), Want::Rcode(1, false)),
        ("name of 256 octets", packet(17, RD, [1, 0, 0, 0], &[&n256]), Want::Rcode(1, false)),
        ("EDNS version 1", packet(18, RD, [1, 0, 0, 1], &[&q, &opt(&[0], 1, &[])]), Want::Rcode(16, true)),
        ("two OPTs", packet(19, RD, [1, 0, 0, 2], &[&q, &opt0, &opt0]), Want::Rcode(1, true)),
        (
            "OPT owner not root",
            packet(20, RD, [1, 0, 0, 1], &[&q, &opt(&name("x."), 0, &[])]),
            Want::Rcode(1, true),
        ),
        ("OPT in answer", packet(21, RD, [1, 1, 0, 0], &[&q, &opt0]), Want::Rcode(1, true)),
        (
            "unknown EDNS option",
            packet(22, RD, [1, 0, 0, 1], &[&q, &opt(&[0], 0, &[(100, b"x")])]),
            Want::Rcode(0, true),
        ),
        ("Z bit", packet(23, RD | Z, [1, 0, 0, 0], &[&q]), Want::Rcode(0, false)),
        ("class CH", packet(24, RD, [1, 0, 0, 0], &[&question(3)]), Want::Rcode(5, false)),
        ("class NONE", packet(25, RD, [1, 0, 0, 0], &[&question(254)]), Want::Rcode(5, false)),
        ("class ANY", packet(26, RD, [1, 0, 0, 0], &[&question(255)]), Want::Rcode(0, false)),
        ("largest datagram", largest, Want::Rcode(0, false)),
    ];
    for (what, bytes, want) in &cases {
        udp_case(&agent, what, bytes, *want);
    }
    still_answers(&agent);
}

// ----- TCP -------------------------------------------------------------------------------

/// `listener.rs` bounds, restated: first message 2 s, idle 8 s, 150 connections, 128 queries.
const FIRST_MESSAGE: Duration = Duration::from_secs(2);
const IDLE: Duration = Duration::from_secs(8);
const MAX_CONNECTIONS: usize = 150;
const MAX_QUERIES: u16 = 128;
/// Margin for "the agent acted on its timer" on a loaded 2-core box.
const SLACK: Duration = Duration::from_secs(4);

fn framed(id: u16) -> Vec<u8> {
    let q = packet(id, RD, [1, 0, 0, 0], &[&question(1)]);
    let mut f = u16::try_from(q.len()).unwrap().to_be_bytes().to_vec();
    f.extend(q);
    f
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(IDLE + SLACK + SLACK)).unwrap();
    s
}

/// One framed reply's ID, or `None` when the agent closed (EOF or reset) instead.
fn read_reply(s: &mut TcpStream) -> Option<u16> {
    let mut len = [0u8; 2];
    match s.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
            panic!("neither a reply nor a close: {e}")
        }
        Err(_) => return None,
    }
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut body).ok()?;
    Some(u16::from_be_bytes([body[0], body[1]]))
}

fn tcp_answers(agent: &Agent, id: u16) {
    let mut s = connect(agent.dns);
    s.write_all(&framed(id)).unwrap();
    assert_eq!(read_reply(&mut s), Some(id), "a fresh TCP client is answered");
}

#[test]
fn tcp_partial_frames_are_closed_by_the_deadline_and_others_are_served() {
    let agent = Agent::dev(&[]);
    // Slowloris: half a frame, then silence.
    let start = Instant::now();
    let mut held = connect(agent.dns);
    held.write_all(&framed(1)[..9]).unwrap();
    still_answers(&agent);
    tcp_answers(&agent, 2);
    assert_eq!(read_reply(&mut held), None, "the partial frame is never answered");
    let took = start.elapsed();
    assert!(took >= FIRST_MESSAGE && took < FIRST_MESSAGE + SLACK, "closed after {took:?}");
    // A length prefix announcing more than is sent, then the client closes.
    let mut short = connect(agent.dns);
    short.write_all(&[0xff, 0xff, 1, 2, 3]).unwrap();
    short.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(read_reply(&mut short), None);
    // Length 0 and a response (QR=1): no reply, connection closed.
    let mut zero = connect(agent.dns);
    zero.write_all(&[0, 0]).unwrap();
    assert_eq!(read_reply(&mut zero), None);
    let mut response = connect(agent.dns);
    let mut r = framed(3);
    r[4] |= 0x80;
    response.write_all(&r).unwrap();
    assert_eq!(read_reply(&mut response), None);
    // The largest frame: a query padded to 65535 bytes.
    let mut big = connect(agent.dns);
    let mut q = packet(4, RD, [1, 0, 0, 0], &[&question(1)]);
    q.resize(65535, 0);
    big.write_all(&[0xff, 0xff]).unwrap();
    big.write_all(&q).unwrap();
    assert_eq!(read_reply(&mut big), Some(4));
    still_answers(&agent);
}

#[test]
fn tcp_pipelined_queries_are_answered_in_order_up_to_the_per_connection_cap() {
    let agent = Agent::dev(&[]);
    let mut s = connect(agent.dns);
    // RFC 7766 §6.2.1.1: several queries in one write.
    let burst: Vec<u8> = (1..=MAX_QUERIES).flat_map(framed).collect();
    s.write_all(&burst).unwrap();
    for id in 1..=MAX_QUERIES {
        assert_eq!(read_reply(&mut s), Some(id), "reply {id} in order");
    }
    let _ = s.write_all(&framed(999));
    assert_eq!(read_reply(&mut s), None, "closed after {MAX_QUERIES} queries");
    tcp_answers(&agent, 1000);
}

#[test]
fn tcp_connections_over_the_cap_are_closed_and_idle_ones_time_out() {
    let agent = Agent::dev(&[]);
    // Fill every slot with a connection that has been answered once (now idle for 8 s).
    let mut held: Vec<TcpStream> = (0..MAX_CONNECTIONS)
        .map(|i| {
            let mut s = connect(agent.dns);
            let id = u16::try_from(i).unwrap();
            s.write_all(&framed(id)).unwrap();
            assert_eq!(read_reply(&mut s), Some(id));
            s
        })
        .collect();
    let filled = Instant::now();
    let mut extra = connect(agent.dns);
    let _ = extra.write_all(&framed(500));
    assert_eq!(read_reply(&mut extra), None, "connection {} is closed", MAX_CONNECTIONS + 1);
    assert!(filled.elapsed() < IDLE, "the check ran while every slot was held");
    still_answers(&agent);
    // A client leaving frees its slot.
    drop(held.pop());
    eventually("a freed TCP slot is reused", || {
        let mut s = connect(agent.dns);
        let _ = s.write_all(&framed(501));
        read_reply(&mut s) == Some(501)
    });
    // The held connections are closed by the idle timeout, counted from their reply.
    let mut first = held.swap_remove(0);
    assert_eq!(read_reply(&mut first), None);
    let took = filled.elapsed();
    assert!(took < IDLE + SLACK, "idle connection closed after {took:?}");
    drop(held);
    tcp_answers(&agent, 502);
}
