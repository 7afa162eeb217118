//! cairn's DNS beyond Consul, each behind a switch or in a name form Consul rejects:
//! `<tag>.tag` pairs (AND of tags), `weighted_shuffle`, `strict_rfc`, and SIGHUP reloads
//! that never drop a query.

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

use crate::support::{Agent, Transport, rendered, srv_targets};

fn register(agent: &Agent, id: &str, tags: &[&str], address: &str, port: u16, passing_weight: u32) {
    let tags = serde_json::to_string(tags).unwrap();
    agent.put_ok(
        "/v1/agent/service/register",
        &format!(
            r#"{{"Name":"web","ID":"{id}","Tags":{tags},"Address":"{address}","Port":{port},
               "Weights":{{"Passing":{passing_weight},"Warning":1}}}}"#
        ),
    );
}

fn config_agent(json: &str) -> (Agent, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent.json");
    std::fs::write(&file, json).unwrap();
    (Agent::dev(&["--config-file", file.to_str().unwrap()]), dir)
}

fn a_records(agent: &Agent, name: &str) -> Vec<String> {
    let msg = agent.query(name, RecordType::A, Transport::Tcp);
    let mut ips: Vec<String> = msg
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect();
    ips.sort();
    ips
}

#[test]
fn tag_pairs_filter_on_every_tag_and_consul_forms_keep_working() {
    let agent = Agent::dev(&[]);
    register(&agent, "web-1", &["primary", "v2"], "127.0.0.11", 8001, 1);
    register(&agent, "web-2", &["primary"], "127.0.0.12", 8002, 1);
    register(&agent, "web-3", &["v1.legacy", "v2"], "127.0.0.13", 8003, 1);

    assert_eq!(a_records(&agent, "web.service.primary.tag.v2.tag.consul."), ["127.0.0.11"]);
    assert_eq!(a_records(&agent, "primary.web.service.v2.tag.consul."), ["127.0.0.11"]);
    assert_eq!(a_records(&agent, "web.service.v2.tag.dc1.dc.consul."), ["127.0.0.11", "127.0.0.13"]);
    // Consul's forms are unchanged: every label before the service name is ONE tag.
    assert_eq!(a_records(&agent, "v1.legacy.web.service.consul."), ["127.0.0.13"]);
    assert_eq!(a_records(&agent, "primary.web.service.consul."), ["127.0.0.11", "127.0.0.12"]);
    let extra = agent.query("dummy.primary.web.service.consul.", RecordType::A, Transport::Udp);
    assert_eq!(extra.metadata.response_code, ResponseCode::NXDomain);
    // A dotted tag can also be asked for in a pair, as one escaped label (dig: v1\.legacy.tag).
    let escaped = Name::from_labels(
        ["web", "service", "v1.legacy", "tag", "consul"].iter().map(|l| l.as_bytes().to_vec()),
    )
    .unwrap();
    let msg = agent.query(&escaped.to_string(), RecordType::A, Transport::Tcp);
    assert_eq!(rendered(&msg.answers).len(), 1, "{:?}", msg.answers);
    // RFC 2782 with extra pairs: SRV only for instances carrying both tags.
    let srv = agent.query("_web._primary.service.v2.tag.consul.", RecordType::SRV, Transport::Tcp);
    assert_eq!(srv_targets(&srv), vec![(8001, "7f00000b.addr.dc1.consul.".to_owned())]);
    // No instance with all the tags: NXDOMAIN, as for a missing tag.
    let none = agent.query("web.service.primary.tag.v1.legacy.tag.consul.", RecordType::A, Transport::Udp);
    assert_eq!(none.metadata.response_code, ResponseCode::NXDomain);
}

#[test]
fn weighted_shuffle_orders_answers_by_weight() {
    let (agent, _dir) = config_agent(r#"{"dns_config":{"weighted_shuffle":true}}"#);
    register(&agent, "heavy", &[], "127.0.0.21", 9001, 9);
    register(&agent, "light", &[], "127.0.0.22", 9002, 1);
    let mut heavy_first = 0;
    let rounds = 200;
    for _ in 0..rounds {
        let msg = agent.query("web.service.consul.", RecordType::SRV, Transport::UdpEdns(1232));
        let ports: Vec<u16> = msg
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::SRV(s) => Some(s.port),
                _ => None,
            })
            .collect();
        assert_eq!(ports.len(), 2, "{ports:?}");
        if ports[0] == 9001 {
            heavy_first += 1;
        }
    }
    // Expected 180 of 200 (weight 9 of 10); the bounds are > 8 standard deviations away.
    assert!((140..200).contains(&heavy_first), "heavy first in {heavy_first} of {rounds}");
}

fn soa_owner(msg: &Message) -> Option<String> {
    msg.authorities
        .iter()
        .chain(msg.answers.iter())
        .find(|r| r.record_type() == RecordType::SOA)
        .map(|r| r.name.to_string())
}

#[test]
fn strict_rfc_mode_answers_what_rfcs_require_where_consul_does_not() {
    let (strict, _dir) = config_agent(r#"{"dns_config":{"strict_rfc":true}}"#);
    let consul = Agent::dev(&[]);
    for agent in [&strict, &consul] {
        register(agent, "web-1", &[], "", 8080, 1);
    }
    let q = |agent: &Agent, name: &str, t: RecordType| agent.query(name, t, Transport::Udp);
    let rcode = |m: &Message| m.metadata.response_code;

    // Zone apex and empty non-terminals exist: NODATA, not NXDOMAIN (Consul #1906).
    for name in ["consul.", "service.consul.", "node.consul.", "dc1.consul."] {
        let m = q(&strict, name, RecordType::A);
        assert_eq!((rcode(&m), m.answers.len()), (ResponseCode::NoError, 0), "{name}");
        assert!(soa_owner(&m).is_some(), "{name}: NODATA carries the SOA");
        assert_eq!(rcode(&q(&consul, name, RecordType::A)), ResponseCode::NXDomain, "{name} in Consul mode");
    }
    // `service.consul.` is a zone of its own, so forwarding just it works (Consul #3439).
    let m = q(&strict, "nope.service.consul.", RecordType::A);
    assert_eq!((rcode(&m), soa_owner(&m).as_deref()), (ResponseCode::NXDomain, Some("service.consul.")));
    let m = q(&strict, "service.consul.", RecordType::SOA);
    assert_eq!(soa_owner(&m).as_deref(), Some("service.consul."));
    assert_eq!(m.answers.len(), 1);
    let m = q(&strict, "service.consul.", RecordType::NS);
    assert!(!m.answers.is_empty() && m.answers.iter().all(|r| r.record_type() == RecordType::NS));
    let m = q(&consul, "nope.service.consul.", RecordType::A);
    assert_eq!(soa_owner(&m).as_deref(), Some("consul."));

    // SOA and NS below an apex: NODATA for names that exist, NXDOMAIN for others (#15739).
    let m = q(&strict, "web.service.consul.", RecordType::NS);
    assert_eq!((rcode(&m), m.answers.len()), (ResponseCode::NoError, 0));
    let m = q(&strict, "nope.node.consul.", RecordType::SOA);
    assert_eq!((rcode(&m), m.answers.len()), (ResponseCode::NXDomain, 0));
    let m = q(&consul, "nope.node.consul.", RecordType::SOA);
    assert_eq!((rcode(&m), m.answers.len()), (ResponseCode::NoError, 1));

    // Type mismatches are NODATA with the SOA, not bare NOERROR or records of another type.
    for (name, t) in [
        ("node1.node.consul.", RecordType::SRV),
        ("7f000001.addr.consul.", RecordType::SRV),
        ("web.service.consul.", RecordType::TXT),
    ] {
        let m = q(&strict, name, t);
        assert_eq!(
            (rcode(&m), m.answers.len(), m.additionals.len()),
            (ResponseCode::NoError, 0, 0),
            "{name} {t}"
        );
        assert!(soa_owner(&m).is_some(), "{name} {t}");
    }
    let m = q(&consul, "web.service.consul.", RecordType::TXT);
    assert_eq!(m.answers.first().map(|r| r.record_type()), Some(RecordType::A), "Consul answers TXT with A");
}

#[test]
fn sighup_reloads_during_a_query_stream_drop_no_query() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent.json");
    let configs = [
        r#"{"dns_config":{"node_ttl":"1s","only_passing":true,"udp_answer_limit":2}}"#,
        r#"{"dns_config":{"node_ttl":"2s","strict_rfc":true,"enable_truncate":true}}"#,
    ];
    std::fs::write(&file, configs[0]).unwrap();
    let agent = Agent::dev(&["--config-file", file.to_str().unwrap()]);
    let server = agent.dns;
    let done = Arc::new(AtomicBool::new(false));
    let querier = {
        let done = done.clone();
        std::thread::spawn(move || {
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let (mut sent, mut lost) = (0u32, 0u32);
            let mut buf = [0u8; 4096];
            while !done.load(Ordering::Relaxed) || sent < 500 {
                let id = u16::try_from(sent % 60_000).unwrap();
                let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
                msg.queries
                    .push(Query::query(Name::from_ascii("node1.node.consul.").unwrap(), RecordType::A));
                sock.send_to(&msg.to_vec().unwrap(), server).unwrap();
                sent += 1;
                loop {
                    match sock.recv_from(&mut buf) {
                        Ok((n, _)) => {
                            let reply = Message::from_vec(&buf[..n]).unwrap();
                            if reply.metadata.id != id {
                                continue;
                            }
                            assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
                            assert_eq!(reply.answers.len(), 1);
                        }
                        Err(_) => lost += 1,
                    }
                    break;
                }
            }
            (sent, lost)
        })
    };
    for i in 0..20 {
        std::fs::write(&file, configs[(i + 1) % 2]).unwrap();
        agent.signal("HUP");
        std::thread::sleep(Duration::from_millis(50));
    }
    done.store(true, Ordering::Relaxed);
    let (sent, lost) = querier.join().unwrap();
    assert_eq!(lost, 0, "{lost} of {sent} queries unanswered across 20 reloads");
}
