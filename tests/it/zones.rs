//! Static zones (`--zones-dir`) served by a real agent beside the Consul domain: answers over
//! UDP and TCP, SIGHUP reloads (a broken file keeps its previous version), start-up errors,
//! `--dev`'s `./zones`, and `dig` as a client.

use std::path::{Path, PathBuf};
use std::process::Command;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};

use crate::support::{Agent, Transport, cairn_bin, eventually, rendered};

fn repo_zones() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("zones")
}

/// A temporary zones directory with copies of the repository's zone files.
fn example_zones() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["example.zone", "10.in-addr.arpa.zone"] {
        std::fs::copy(repo_zones().join(f), dir.path().join(f)).unwrap();
    }
    dir
}

fn path(dir: &tempfile::TempDir) -> &str {
    dir.path().to_str().unwrap()
}

#[test]
fn example_zone_answers_over_udp_and_tcp_beside_the_consul_domain() {
    let zones = example_zones();
    let agent = Agent::dev(&["--zones-dir", path(&zones)]);
    for transport in [Transport::Udp, Transport::UdpEdns(1232), Transport::Tcp] {
        let msg = agent.query("WWW.Example.com.", RecordType::A, transport);
        assert_eq!(msg.metadata.response_code, ResponseCode::NoError, "{transport:?}");
        assert!(msg.metadata.authoritative, "{transport:?}");
        assert_eq!(rendered(&msg.answers), ["WWW.Example.com. 300 A 10.0.0.10"], "{transport:?}");
    }

    let mx = agent.query("example.com.", RecordType::MX, Transport::Udp);
    assert_eq!(
        rendered(&mx.answers),
        ["example.com. 3600 MX 10 mail.example.com.", "example.com. 3600 MX 20 mx.example.net."]
    );
    assert_eq!(rendered(&mx.additionals), ["mail.example.com. 3600 A 10.0.0.25"]);

    let chain = agent.query("alias.example.com.", RecordType::A, Transport::Tcp);
    assert_eq!(
        rendered(&chain.answers),
        [
            "alias.example.com. 3600 CNAME ftp.example.com.",
            "ftp.example.com. 3600 CNAME www.example.com.",
            "www.example.com. 300 A 10.0.0.10",
        ]
    );
    let wild = agent.query("anything.apps.example.com.", RecordType::A, Transport::Udp);
    assert_eq!(rendered(&wild.answers), ["anything.apps.example.com. 3600 A 10.0.2.1"]);

    let txt = agent.query("text.example.com.", RecordType::TXT, Transport::Udp);
    let Some(RData::TXT(t)) = txt.answers.first().map(|r| &r.data) else { panic!("{txt:?}") };
    assert_eq!(t.txt_data.len(), 3);
    let caa = agent.query("example.com.", RecordType::CAA, Transport::Udp);
    assert_eq!(rendered(&caa.answers)[0], "example.com. 3600 CAA 0 issue \"letsencrypt.org\"");
    let ptr = agent.query("10.0.0.10.in-addr.arpa.", RecordType::PTR, Transport::Udp);
    assert_eq!(rendered(&ptr.answers), ["10.0.0.10.in-addr.arpa. 3600 PTR www.example.com."]);

    let missing = agent.query("nope.example.com.", RecordType::A, Transport::Udp);
    assert_eq!(missing.metadata.response_code, ResponseCode::NXDomain);
    assert!(missing.metadata.authoritative);
    assert_eq!(missing.authorities.first().map(|r| (r.record_type(), r.ttl)), Some((RecordType::SOA, 300)));

    let referral = agent.query("www.sub.example.com.", RecordType::A, Transport::Udp);
    assert_eq!(referral.metadata.response_code, ResponseCode::NoError);
    assert!(!referral.metadata.authoritative);
    assert!(referral.answers.is_empty());
    assert_eq!(
        rendered(&referral.authorities),
        ["sub.example.com. 3600 NS ns1.sub.example.com.", "sub.example.com. 3600 NS ns.example.net."]
    );
    assert_eq!(rendered(&referral.additionals), ["ns1.sub.example.com. 3600 A 10.0.3.53"]);

    let axfr = agent.query("example.com.", RecordType::AXFR, Transport::Tcp);
    assert_eq!(axfr.metadata.response_code, ResponseCode::NotImp);

    // The Consul domain still answers, and other names are still refused.
    let node = agent.query("node1.node.consul.", RecordType::A, Transport::Udp);
    assert_eq!(rendered(&node.answers), ["node1.node.consul. 0 A 127.0.0.1"]);
    let other = agent.query("example.org.", RecordType::A, Transport::Udp);
    assert_eq!(other.metadata.response_code, ResponseCode::Refused);
}

#[test]
fn sighup_reloads_zones_and_a_broken_file_keeps_serving_its_previous_version() {
    let zones = tempfile::tempdir().unwrap();
    // No $ORIGIN: the zone is `lab.`, from the file name.
    let lab = zones.path().join("lab.zone");
    let head = "$TTL 60\n@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\nns A 10.1.0.53\nold A 10.1.0.1\n";
    std::fs::write(&lab, head).unwrap();
    let agent = Agent::dev(&["--zones-dir", path(&zones)]);
    let a = |name: &str| agent.query(name, RecordType::A, Transport::Udp);
    assert_eq!(rendered(&a("old.lab.").answers), ["old.lab. 60 A 10.1.0.1"]);
    assert_eq!(a("new.lab.").metadata.response_code, ResponseCode::NXDomain);

    std::fs::write(&lab, format!("{head}new A 10.1.0.2\n")).unwrap();
    agent.signal("HUP");
    eventually("the added record after SIGHUP", || {
        rendered(&a("new.lab.").answers) == ["new.lab. 60 A 10.1.0.2"]
    });

    // lab.zone breaks on line 8 while a new good file appears: the good one is served, lab.
    // keeps its previous version (with `new`, without `newer`), and the log names file:line.
    std::fs::write(&lab, format!("{head}new A 10.1.0.2\nnewer A 10.1.0.3\nbroken A 10.1.0.999\n")).unwrap();
    std::fs::write(
        zones.path().join("other.zone"),
        "$ORIGIN other.\n$TTL 60\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 10.2.0.53\n",
    )
    .unwrap();
    agent.signal("HUP");
    eventually("the reload error in the log", || {
        agent.log().contains("lab.zone:8: A record: \"10.1.0.999\"")
    });
    eventually("the new zone", || rendered(&a("ns.other.").answers) == ["ns.other. 60 A 10.2.0.53"]);
    assert_eq!(rendered(&a("new.lab.").answers), ["new.lab. 60 A 10.1.0.2"]);
    assert_eq!(a("newer.lab.").metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(rendered(&a("old.lab.").answers), ["old.lab. 60 A 10.1.0.1"]);
}

#[test]
fn a_broken_zone_file_stops_start_up_with_one_line_naming_file_and_line() {
    let zones = tempfile::tempdir().unwrap();
    std::fs::write(
        zones.path().join("bad.zone"),
        "$ORIGIN bad.\n$TTL 60\n@ SOA ns hm 1 2 3 4 ( 5\n@ NS ns\n",
    )
    .unwrap();
    let out = Command::new(cairn_bin())
        .current_dir(zones.path())
        .args(["agent", "--dev", "--http-port", "0", "--dns-port", "0", "--server-port", "0"])
        .args(["--serf-lan-port", "0", "--serf-wan-port", "0", "--zones-dir"])
        .arg(zones.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("bad.zone:3: '(' is never closed"), "{stderr}");
}

#[test]
fn dev_serves_the_zones_directory_of_its_working_directory() {
    let cwd = tempfile::tempdir().unwrap();
    std::fs::create_dir(cwd.path().join("zones")).unwrap();
    std::fs::copy(repo_zones().join("example.zone"), cwd.path().join("zones/example.zone")).unwrap();
    let agent = Agent::dev_in(cwd.path(), &[]);
    let msg = agent.query("www.example.com.", RecordType::A, Transport::Udp);
    assert_eq!(rendered(&msg.answers), ["www.example.com. 300 A 10.0.0.10"]);
}

/// `dig @agent -p PORT ARGS`, or `None` when dig is not installed.
fn dig(agent: &Agent, args: &[&str]) -> Option<String> {
    let out = Command::new("dig")
        .arg(format!("@{}", agent.dns.ip()))
        .args(["-p", &agent.dns.port().to_string(), "+time=5", "+tries=1"])
        .args(args)
        .output()
        .ok()?;
    assert!(out.status.success(), "dig {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn dig_reads_the_static_zones() {
    let zones = example_zones();
    let agent = Agent::dev(&["--zones-dir", path(&zones)]);
    let Some(short) = dig(&agent, &["+short", "www.example.com", "A"]) else {
        eprintln!("dig is not installed (apt-get install bind9-dnsutils); skipping");
        return;
    };
    assert_eq!(short.trim(), "10.0.0.10");
    assert_eq!(dig(&agent, &["+short", "+tcp", "-x", "10.0.0.25"]).unwrap().trim(), "mail.example.com.");
    let txt = dig(&agent, &["+short", "text.example.com", "TXT"]).unwrap();
    assert_eq!(txt.trim(), r#""first string" "second \"quoted\" string" "third""#);
    let full = dig(&agent, &["nope.example.com", "AAAA"]).unwrap();
    assert!(full.contains("status: NXDOMAIN") && full.contains(" aa"), "{full}");
    assert!(
        full.contains("example.com.\t\t300\tIN\tSOA\tns1.example.com. hostmaster.example.com."),
        "{full}"
    );
}
