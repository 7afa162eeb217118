//! Real resolvers in front of the agent, as operators deploy them: dnsmasq forwarding the
//! `consul` domain (`server=/consul/127.0.0.1#8600`, Consul's documented pattern).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::support::{Agent, Transport, query, rendered, srv_targets};

struct Dnsmasq(Child);

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn dnsmasq_forwards_the_consul_domain_to_the_agent() {
    let agent = Agent::dev(&[]);
    agent.put_ok(
        "/v1/agent/service/register",
        r#"{"Name":"web","Port":8080,"Check":{"CheckID":"web-ttl","TTL":"30s","Status":"passing"}}"#,
    );
    let port = free_udp_port();
    // Debian installs it in /usr/sbin, which a non-login PATH may lack.
    let bin =
        if std::path::Path::new("/usr/sbin/dnsmasq").exists() { "/usr/sbin/dnsmasq" } else { "dnsmasq" };
    let child = Command::new(bin)
        .args(["--keep-in-foreground", "--no-resolv", "--no-hosts", "--bind-interfaces", "--user=root"])
        .arg("--listen-address=127.0.0.1")
        .arg(format!("--port={port}"))
        .arg(format!("--server=/consul/127.0.0.1#{}", agent.dns.port()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dnsmasq is installed (apt-get install dnsmasq-base); .ci/run installs it");
    let _dnsmasq = Dnsmasq(child);
    let server = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    std::thread::sleep(Duration::from_millis(300));

    let srv = query(server, "web.service.consul.", RecordType::SRV, Transport::Udp);
    assert_eq!(srv_targets(&srv), vec![(8080, "node1.node.dc1.consul.".to_owned())]);
    let a = query(server, "web.service.consul.", RecordType::A, Transport::Udp);
    assert_eq!(rendered(&a.answers), vec!["web.service.consul. 0 A 127.0.0.1"]);
    // A name that exists without AAAA is NODATA, not NXDOMAIN, so the A answer stays usable.
    let aaaa = query(server, "web.service.consul.", RecordType::AAAA, Transport::Udp);
    assert_eq!(aaaa.metadata.response_code, ResponseCode::NoError);
    let missing = query(server, "nope.service.consul.", RecordType::A, Transport::Udp);
    assert_eq!(missing.metadata.response_code, ResponseCode::NXDomain);
}
