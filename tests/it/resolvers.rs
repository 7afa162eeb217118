//! Real resolvers in front of the agent, as operators deploy them: dnsmasq forwarding the
//! `consul` domain (`server=/consul/127.0.0.1#8600`, Consul's documented pattern), glibc's
//! stub resolver (`getent`) behind dnsmasq, and `dig` as an RFC 8906 conformance oracle.
//!
//! These tools are required, not optional: a missing tool or a refused `unshare` fails the
//! test with what to install or grant (`.ci/run` installs the tools and runs as root).

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::support::{Agent, Transport, query, rendered, srv_targets};

const WEB: &str =
    r#"{"Name":"web","Port":8080,"Check":{"CheckID":"web-ttl","TTL":"30s","Status":"passing"}}"#;

/// A dnsmasq child process; killed on drop.
struct Dnsmasq(Child);

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Debian installs dnsmasq in /usr/sbin, which a non-login PATH may lack.
fn dnsmasq_bin() -> &'static str {
    if Path::new("/usr/sbin/dnsmasq").exists() { "/usr/sbin/dnsmasq" } else { "dnsmasq" }
}

/// Starts dnsmasq on `listen`, forwarding the `consul` domain to the agent, and waits until it
/// answers. `None` if it exited (the address is taken).
fn try_dnsmasq(agent: &Agent, listen: SocketAddr, log: &Path) -> Option<Dnsmasq> {
    let child = Command::new(dnsmasq_bin())
        .args(["--keep-in-foreground", "--no-resolv", "--no-hosts", "--bind-interfaces", "--user=root"])
        .arg(format!("--listen-address={}", listen.ip()))
        .arg(format!("--port={}", listen.port()))
        .arg(format!("--server=/consul/127.0.0.1#{}", agent.dns.port()))
        .arg(format!("--log-facility={}", log.display()))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("dnsmasq is installed (apt-get install dnsmasq-base); .ci/run installs it");
    let mut dnsmasq = Dnsmasq(child);
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    probe.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let question =
        [&[0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0][..], b"\x06consul\x00\x00\x06\x00\x01"].concat();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if dnsmasq.0.try_wait().unwrap().is_some() {
            return None;
        }
        probe.send_to(&question, listen).unwrap();
        let mut buf = [0u8; 512];
        if probe.recv(&mut buf).is_ok() {
            return Some(dnsmasq);
        }
    }
    panic!("dnsmasq on {listen} never answered: {}", std::fs::read_to_string(log).unwrap_or_default());
}

/// dnsmasq on port 53 of a loopback address of its own (127.53.x.y, chosen from the process
/// ID), since glibc's resolv.conf cannot name a port. The whole 127/8 is local on Linux, so
/// no interface is configured and nothing else on the host is touched.
fn dnsmasq_on_port_53(agent: &Agent, log: &Path) -> (Dnsmasq, Ipv4Addr) {
    let pid = std::process::id();
    for attempt in 0..8u32 {
        let n = pid.wrapping_mul(8).wrapping_add(attempt) % 65_000 + 1;
        let ip = Ipv4Addr::new(127, 53, (n >> 8) as u8, (n & 0xff) as u8);
        if let Some(d) = try_dnsmasq(agent, SocketAddr::from((ip, 53)), log) {
            return (d, ip);
        }
    }
    panic!(
        "dnsmasq could not bind port 53 on 127.53.x.y (needs root or CAP_NET_BIND_SERVICE): {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// Runs `getent ARGS` in a private mount namespace whose /etc/resolv.conf is `resolv_conf`.
/// The host's resolv.conf is never written: the bind mount exists only in the namespace.
fn getent_with_resolv_conf(resolv_conf: &Path, args: &[&str]) -> Output {
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount --bind "$1" /etc/resolv.conf || exit 100; shift; exec getent "$@""#)
        .arg("sh")
        .arg(resolv_conf)
        .args(args)
        .output()
        .expect("unshare (util-linux) is installed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() != Some(100)
            && !stderr.contains("unshare failed")
            && !stderr.contains("Operation not permitted"),
        "unshare --mount and a bind mount need root or CAP_SYS_ADMIN (CI runs as root): {stderr}"
    );
    out
}

#[test]
fn dnsmasq_forwards_the_consul_domain_to_the_agent() {
    let agent = Agent::dev(&[]);
    agent.put_ok("/v1/agent/service/register", WEB);
    // A free port can be taken again before dnsmasq binds it: try another one, and wait until
    // dnsmasq answers rather than for a fixed time.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("dnsmasq.log");
    let (_dnsmasq, server) = (0..8)
        .find_map(|_| {
            let server = SocketAddr::from(([127, 0, 0, 1], free_udp_port()));
            try_dnsmasq(&agent, server, &log).map(|d| (d, server))
        })
        .expect("dnsmasq could bind none of 8 free ports");

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

#[test]
fn glibc_getent_resolves_through_dnsmasq_with_a_private_resolv_conf() {
    let agent = Agent::dev(&[]);
    agent.put_ok("/v1/agent/service/register", WEB);
    let dir = tempfile::tempdir().unwrap();
    let (_dnsmasq, ip) = dnsmasq_on_port_53(&agent, &dir.path().join("dnsmasq.log"));
    let host_resolv_conf = std::fs::read("/etc/resolv.conf").unwrap_or_default();

    // Plain glibc (no EDNS): `getent hosts` asks AAAA first, gets NODATA, then A.
    let plain = dir.path().join("resolv.conf");
    std::fs::write(&plain, format!("nameserver {ip}\noptions attempts:2 timeout:2\n")).unwrap();
    let out = getent_with_resolv_conf(&plain, &["hosts", "web.service.consul"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "getent hosts: {:?} {stdout} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.split_whitespace().collect::<Vec<_>>(), ["127.0.0.1", "web.service.consul"]);

    // getaddrinfo with EDNS0 on, IPv4 only.
    let edns = dir.path().join("resolv-edns.conf");
    std::fs::write(&edns, format!("nameserver {ip}\noptions edns0 attempts:2 timeout:2\n")).unwrap();
    let out = getent_with_resolv_conf(&edns, &["ahostsv4", "web.service.consul"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "getent ahostsv4: {stdout}");
    assert!(stdout.lines().all(|l| l.starts_with("127.0.0.1 ")), "{stdout}");
    let out = getent_with_resolv_conf(&plain, &["hosts", "node1.node.consul"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).split_whitespace().next(), Some("127.0.0.1"));

    // An unknown service: NXDOMAIN, which getent reports as "not found" (exit 2).
    let out = getent_with_resolv_conf(&plain, &["hosts", "nope.service.consul"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stdout));

    assert_eq!(
        std::fs::read("/etc/resolv.conf").unwrap_or_default(),
        host_resolv_conf,
        "host resolv.conf untouched"
    );
}

/// `dig` against the agent with RFC 8906 §8's query matrix: the replies as BIND's own tool
/// reads them.
#[test]
fn dig_sees_rfc_8906_conformant_replies() {
    let agent = Agent::dev(&[]);
    let dig = |args: &[&str]| -> String {
        let out = Command::new("dig")
            .arg(format!("@{}", agent.dns.ip()))
            .args(["-p", &agent.dns.port().to_string(), "+time=5", "+tries=1"])
            .args(args)
            .output()
            .expect("dig is installed (apt-get install bind9-dnsutils); .ci/run installs it");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let name = "node1.node.consul";
    // (dig arguments, lines the output must contain, text it must not contain)
    let cases: &[(&[&str], &[&str], &[&str])] = &[
        (
            &["+noedns", "+noad", "+norec", name, "A"],
            &["status: NOERROR", "flags: qr aa;"],
            &["OPT PSEUDOSECTION"],
        ),
        (
            &["+nocookie", "+edns=0", "+noad", "+norec", name, "A"],
            &["status: NOERROR", "EDNS: version: 0,"],
            &[],
        ),
        (
            &["+nocookie", "+edns=1", "+noednsneg", "+noad", "+norec", name, "SOA"],
            &["status: BADVERS", "flags: qr;", "EDNS: version: 0,", "ANSWER: 0"],
            &["SOA\t"],
        ),
        (
            &["+nocookie", "+edns=0", "+noad", "+norec", "+ednsopt=100", name, "A"],
            &["status: NOERROR"],
            &["OPT=100"],
        ),
        (
            &["+nocookie", "+edns=0", "+noad", "+norec", "+ednsflags=0x40", name, "A"],
            &["status: NOERROR"],
            &["MBZ"],
        ),
        (
            &[
                "+nocookie",
                "+edns=1",
                "+noednsneg",
                "+noad",
                "+norec",
                "+ednsflags=0x40",
                "+ednsopt=100",
                "+dnssec",
                name,
                "A",
            ],
            &["status: BADVERS", "EDNS: version: 0,"],
            &["MBZ", "OPT=100"],
        ),
        (
            &["+noedns", "+noad", "+norec", "+zflag", name, "A"],
            &["status: NOERROR", "flags: qr aa;"],
            &["MBZ"],
        ),
        (
            &["+noedns", "+noad", "+opcode=15", "+norec", "+header-only"],
            &["opcode: RESERVED15, status: NOTIMP", "flags: qr;"],
            &[],
        ),
        (&["+noedns", "+norec", "+tcp", name, "A"], &["status: NOERROR"], &[]),
        (
            &["+edns=0", "+cookie", "+nsid", "+expire", "+subnet=0.0.0.0/0", name, "A"],
            &["status: NOERROR"],
            &[],
        ),
        (&["-c", "CH", "+norec", "version.bind", "TXT"], &["status: REFUSED", "flags: qr;"], &[]),
    ];
    for (args, want, unwanted) in cases {
        let out = dig(args);
        for w in *want {
            assert!(out.contains(w), "dig {args:?}: expected {w:?} in\n{out}");
        }
        for u in *unwanted {
            assert!(!out.contains(u), "dig {args:?}: unexpected {u:?} in\n{out}");
        }
    }
}
