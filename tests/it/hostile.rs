//! Hostile input at the sockets: the agent answers what it can, rejects the rest, and keeps
//! serving (notes/reliability.md: bad input never crashes the agent).

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::support::{Agent, Transport};

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
