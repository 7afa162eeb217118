//! DNS answers over real UDP and TCP sockets for services registered over the HTTP API.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};

use crate::support::{Agent, Transport, eventually, rendered, srv_targets};

const WEB: &str = r#"{"Name":"web","ID":"web-1","Tags":["v1","primary"],"Port":8080,
    "Check":{"CheckID":"web-ttl","TTL":"30s","Status":"passing"}}"#;

#[test]
fn registered_service_answers_srv_with_node_target_and_additional_a() {
    let agent = Agent::dev(&[]);
    agent.put_ok("/v1/agent/service/register", WEB);
    for transport in [Transport::Udp, Transport::UdpEdns(1232), Transport::Tcp] {
        let msg = agent.query("web.service.consul.", RecordType::SRV, transport);
        assert_eq!(msg.metadata.response_code, ResponseCode::NoError, "{transport:?}");
        assert!(msg.metadata.authoritative);
        assert_eq!(srv_targets(&msg), vec![(8080, "node1.node.dc1.consul.".to_owned())], "{transport:?}");
        let extra = rendered(&msg.additionals);
        assert!(extra.iter().any(|r| r == "node1.node.dc1.consul. 0 A 127.0.0.1"), "{extra:?}");
    }
    // Datacenter-qualified, tag-filtered, RFC 2782 and mixed-case forms find the same instance.
    for name in [
        "web.service.dc1.consul.",
        "primary.web.service.consul.",
        "_web._tcp.service.consul.",
        "WEB.Service.CONSUL",
    ] {
        let msg = agent.query(name, RecordType::SRV, Transport::Udp);
        assert_eq!(srv_targets(&msg).len(), 1, "{name}");
    }
    let a = agent.query("web.service.consul.", RecordType::A, Transport::Udp);
    assert_eq!(rendered(&a.answers), vec!["web.service.consul. 0 A 127.0.0.1"]);
}

#[test]
fn unknown_names_get_nxdomain_with_soa_and_foreign_names_are_refused() {
    let agent = Agent::dev(&[]);
    for name in ["nope.service.consul.", "v9.web.service.consul.", "web.service.dc9.consul."] {
        let msg = agent.query(name, RecordType::SRV, Transport::Udp);
        assert_eq!(msg.metadata.response_code, ResponseCode::NXDomain, "{name}");
        assert!(matches!(msg.authorities.first().map(|r| &r.data), Some(RData::SOA(_))), "{name}: {msg:?}");
    }
    let msg = agent.query("example.com.", RecordType::A, Transport::Udp);
    assert_eq!(msg.metadata.response_code, ResponseCode::Refused);
    assert!(!msg.metadata.authoritative);
}

#[test]
fn agent_node_and_consul_service_resolve_as_in_consul_dev() {
    let agent = Agent::dev(&[]);
    let msg = agent.query("node1.node.consul.", RecordType::A, Transport::Udp);
    assert_eq!(rendered(&msg.answers), vec!["node1.node.consul. 0 A 127.0.0.1"]);
    let msg = agent.query("consul.service.consul.", RecordType::SRV, Transport::Udp);
    assert_eq!(srv_targets(&msg).len(), 1, "{msg:?}");
}

#[test]
fn ttl_check_moves_instance_out_of_and_back_into_answers() {
    let agent = Agent::dev(&[]);
    agent.put_ok("/v1/agent/service/register", WEB);
    let count = || srv_targets(&agent.query("web.service.consul.", RecordType::SRV, Transport::Udp)).len();
    assert_eq!(count(), 1);
    agent.put_ok("/v1/agent/check/fail/web-ttl?note=down", "");
    eventually("critical instance to leave DNS", || count() == 0);
    let msg = agent.query("web.service.consul.", RecordType::SRV, Transport::Udp);
    assert_eq!(msg.metadata.response_code, ResponseCode::NXDomain);
    agent.put_ok("/v1/agent/check/warn/web-ttl", "");
    eventually("warning instance to return", || count() == 1);
    agent.put_ok("/v1/agent/check/pass/web-ttl", "");
    assert_eq!(count(), 1);
}

#[test]
fn ttl_expiry_marks_the_instance_critical() {
    let agent = Agent::dev(&[]);
    agent.put_ok(
        "/v1/agent/service/register",
        r#"{"Name":"short","Port":1,"Check":{"CheckID":"short-ttl","TTL":"1s","Status":"passing"}}"#,
    );
    let count = || srv_targets(&agent.query("short.service.consul.", RecordType::SRV, Transport::Udp)).len();
    assert_eq!(count(), 1);
    eventually("TTL expiry", || count() == 0);
    let (_, checks) = agent.get("/v1/agent/checks").unwrap();
    assert_eq!(checks["short-ttl"]["Status"], "critical");
    assert_eq!(checks["short-ttl"]["Output"], "TTL expired");
}

#[test]
fn many_instances_over_udp_are_capped_and_tcp_gets_all() {
    let agent = Agent::dev(&[]);
    for i in 0..6 {
        let body = format!(
            r#"{{"Node":"n{i}","Address":"10.0.0.{i}","Service":{{"ID":"api-{i}","Service":"api","Port":{}}}}}"#,
            9000 + i
        );
        agent.put_ok("/v1/catalog/register", &body);
    }
    // Classic UDP: at most udp_answer_limit (3) answers, as Consul.
    let udp = agent.query("api.service.consul.", RecordType::A, Transport::Udp);
    assert_eq!(udp.answers.len(), 3);
    let tcp = agent.query("api.service.consul.", RecordType::A, Transport::Tcp);
    assert_eq!(tcp.answers.len(), 6);
    let edns = agent.query("api.service.consul.", RecordType::SRV, Transport::UdpEdns(4096));
    assert_eq!(edns.answers.len(), 6);
}
