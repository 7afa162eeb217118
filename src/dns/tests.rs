//! Tests for the DNS path: routing table, answers through `handle`, property tests and a
//! real-socket listener test. Snapshots are built by hand with `CatalogState`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;
use crate::catalog::{CatalogState, Check, HealthStatus, Node, Service, Weights};
use crate::config::DnsConfig;
use crate::snapshot::CatalogSnapshot;

// ----- fixtures ------------------------------------------------------------------------

fn ctx() -> DnsContext {
    DnsContext {
        domain: "consul.".into(),
        alt_domain: Some("test-domain.".into()),
        datacenter: "dc1".into(),
        node_name: "server1".into(),
        dns_config: DnsConfig::default(),
        recursors: Vec::new(),
        soa_serial: 4242,
        generation: 0,
        zones: Arc::default(),
    }
}

#[derive(Default)]
struct Cat {
    state: CatalogState,
    index: u64,
}

impl Cat {
    fn next(&mut self) -> u64 {
        self.index += 1;
        self.index
    }

    fn node(mut self, name: &str, address: &str, meta: &[(&str, &str)]) -> Self {
        let i = self.next();
        let mut node = Node::new(name, address, "dc1");
        node.meta = meta.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        self.state.upsert_node(i, node, &mut Vec::new());
        self
    }

    fn svc(mut self, node: &str, id: &str, name: &str, tags: &[&str], address: &str, port: u16) -> Self {
        let i = self.next();
        let svc = Service {
            address: address.into(),
            weights: Weights { passing: 10, warning: 3 },
            ..Service::new(node, id, name, port).with_tags(tags)
        };
        self.state.upsert_service(i, svc, &mut Vec::new());
        self
    }

    fn check(mut self, node: &str, id: &str, service_id: &str, status: HealthStatus) -> Self {
        let i = self.next();
        let check = Check { check_type: "ttl".into(), ..Check::new(node, id, service_id, status) };
        self.state.upsert_check(i, check, &mut Vec::new());
        self
    }

    fn query(mut self, id: &str, name: &str, service: &str, tags: &[&str], ttl: &str) -> Self {
        let i = self.next();
        let q = crate::catalog::PreparedQuery {
            id: id.into(),
            name: name.into(),
            session: String::new(),
            token: String::new(),
            service: crate::catalog::QueryService {
                service: service.into(),
                tags: tags.iter().map(|t| (*t).to_owned()).collect(),
                ..Default::default()
            },
            dns_ttl: ttl.into(),
            create_index: 0,
            modify_index: 0,
        };
        self.state.upsert_query(i, q, &mut Vec::new());
        self
    }

    fn snap(self) -> CatalogSnapshot {
        CatalogSnapshot { index: self.index, catalog: self.state }
    }
}

/// foo 127.0.0.1 (meta key=value) runs db (tag primary); bar 127.0.0.2 runs db (replica,
/// warning); baz 127.0.0.3 runs db with a critical check; qux 127.0.0.4 has a critical node
/// check; web on foo has service address 10.0.0.9; ext on foo has address www.example.com;
/// v6 node 2001:db8::1.
fn catalog() -> CatalogSnapshot {
    Cat::default()
        .node("foo", "127.0.0.1", &[("key", "value")])
        .node("bar", "127.0.0.2", &[])
        .node("baz", "127.0.0.3", &[])
        .node("qux", "127.0.0.4", &[])
        .node("v6", "2001:db8::1", &[])
        .node("Foo.Bar", "127.0.0.9", &[])
        .node("server1", "127.0.0.100", &[])
        .svc("foo", "db1", "db", &["primary"], "", 5432)
        .svc("bar", "db2", "db", &["replica", "v1.primary"], "", 5433)
        .svc("baz", "db3", "db", &["replica"], "", 5434)
        .svc("qux", "db4", "db", &["replica"], "", 5435)
        .svc("foo", "web", "web", &[], "10.0.0.9", 80)
        .svc("foo", "ext", "ext", &[], "www.example.com", 443)
        .svc("v6", "v6svc", "v6svc", &[], "", 8080)
        .svc("server1", "consul", "consul", &[], "", 8300)
        .check("bar", "db2-check", "db2", HealthStatus::Warning)
        .check("baz", "db3-check", "db3", HealthStatus::Critical)
        .check("qux", "serfHealth", "", HealthStatus::Critical)
        .snap()
}

fn query_bytes(name: &str, qtype: RecordType, edns: Option<u16>) -> Vec<u8> {
    let mut msg = Message::new(0xbeef, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        msg.set_edns(e);
    }
    msg.to_vec().expect("encode")
}

fn ask_with(
    ctx: &DnsContext,
    snap: &CatalogSnapshot,
    bytes: &[u8],
    transport: Transport,
) -> (Message, usize) {
    let mut rng = StdRng::seed_from_u64(7);
    let out = handle(bytes, transport, ctx, snap, &mut rng).expect("a reply");
    (Message::from_vec(&out).expect("decodable reply"), out.len())
}

fn ask(ctx: &DnsContext, snap: &CatalogSnapshot, name: &str, qtype: RecordType) -> Message {
    ask_with(ctx, snap, &query_bytes(name, qtype, None), Transport::Udp).0
}

/// `name TYPE rdata` without the TTL, for compact expectations.
fn show(r: &Record) -> String {
    let data = match &r.data {
        RData::A(a) => a.0.to_string(),
        RData::AAAA(a) => a.0.to_string(),
        RData::SRV(s) => format!("{} {} {} {}", s.priority, s.weight, s.port, s.target),
        RData::TXT(t) => {
            t.txt_data.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect::<Vec<_>>().join("")
        }
        RData::CNAME(c) => c.0.to_string(),
        RData::NS(n) => n.0.to_string(),
        RData::SOA(s) => format!("{} {} {}", s.mname, s.rname, s.serial),
        other => format!("{other:?}"),
    };
    format!("{} {} {}", r.name, r.record_type(), data)
}

fn sorted(records: &[Record]) -> Vec<String> {
    let mut v: Vec<String> = records.iter().map(show).collect();
    v.sort();
    v
}

#[derive(Debug, Default)]
struct Expect<'a> {
    rcode: Option<ResponseCode>,
    answers: Option<Vec<&'a str>>,
    additionals: Option<Vec<&'a str>>,
    soa: bool,
    aa: Option<bool>,
}

fn check_answer(
    ctx: &DnsContext,
    snap: &CatalogSnapshot,
    name: &str,
    qtype: RecordType,
    e: Expect<'_>,
) -> Message {
    let msg = ask(ctx, snap, name, qtype);
    let what = format!("{name} {qtype}");
    assert_eq!(msg.metadata.id, 0xbeef, "{what}: id");
    assert_eq!(msg.metadata.message_type, MessageType::Response, "{what}: QR");
    assert!(msg.metadata.recursion_desired, "{what}: RD copied");
    assert_eq!(msg.metadata.response_code, e.rcode.unwrap_or(ResponseCode::NoError), "{what}: rcode");
    assert_eq!(msg.metadata.authoritative, e.aa.unwrap_or(true), "{what}: AA");
    if let Some(want) = e.answers {
        let mut want: Vec<String> = want.into_iter().map(str::to_owned).collect();
        want.sort();
        assert_eq!(sorted(&msg.answers), want, "{what}: answers");
    }
    if let Some(want) = e.additionals {
        let mut want: Vec<String> = want.into_iter().map(str::to_owned).collect();
        want.sort();
        assert_eq!(sorted(&msg.additionals), want, "{what}: additionals");
    }
    let soa: Vec<_> = msg.authorities.iter().filter(|r| r.record_type() == RecordType::SOA).collect();
    assert_eq!(soa.len(), usize::from(e.soa), "{what}: SOA in authority: {:?}", msg.authorities);
    msg
}

fn check_route(name: &str, qtype: RecordType, expected: Route) {
    let got = route(&Name::from_ascii(name).expect("name"), qtype, &ctx());
    assert_eq!(got.route, expected, "{name} {qtype}");
}

fn svc(tag: Option<&str>, name: &str, dc: &str) -> Route {
    let tags = tag.map(str::to_owned).into_iter().collect();
    Route::Service { tags, name: name.into(), dc: dc.into(), port: None }
}

// ----- routing -------------------------------------------------------------------------

#[test]
fn routes() {
    use RecordType::{A, SRV};
    let node = |n: &str, dc: &str| Route::Node { name: n.into(), dc: dc.into() };
    check_route("web.service.dc1.consul.", A, svc(None, "web", "dc1"));
    check_route("web.service.consul.", A, svc(None, "web", "dc1"));
    check_route("web.service.consul", A, svc(None, "web", "dc1"));
    check_route("WEB.Service.DC1.CONSUL.", A, svc(None, "web", "dc1"));
    check_route("primary.web.service.consul.", A, svc(Some("primary"), "web", "dc1"));
    check_route("v1.primary.db.service.consul.", A, svc(Some("v1.primary"), "db", "dc1"));
    check_route("web.service.dc2.consul.", A, svc(None, "web", "dc2"));
    check_route("web.service.dc2.dc.consul.", A, svc(None, "web", "dc2"));
    check_route("web.service.test-domain.", A, svc(None, "web", "dc1"));
    check_route("_db._tcp.service.consul.", SRV, svc(None, "db", "dc1"));
    check_route("_db._primary.service.dc1.consul.", SRV, svc(Some("primary"), "db", "dc1"));
    check_route("_db._udp.consul.", SRV, svc(Some("udp"), "db", "dc1"));
    check_route("_db._tcp.dc1.consul.", SRV, svc(None, "db", "dc1"));
    check_route("_db._tcp.dc1.consul.", A, Route::Invalid);
    check_route("banana._db._primary.service.dc1.consul.", SRV, svc(Some("banana._db"), "_primary", "dc1"));
    check_route("foo.node.consul.", A, node("foo", "dc1"));
    check_route("foo.bar.node.dc1.consul.", A, node("foo.bar", "dc1"));
    check_route("FOO.node.CoNsUl.", A, node("foo", "dc1"));
    check_route("7f000001.addr.dc1.consul.", A, Route::Addr { ip: "127.0.0.1".parse().expect("ip") });
    check_route("7f000001.addr.consul.", A, Route::Addr { ip: "127.0.0.1".parse().expect("ip") });
    check_route(
        "2607002040050808000000000000200e.addr.consul.",
        A,
        Route::Addr { ip: "2607:20:4005:808::200e".parse().expect("ip") },
    );
    check_route("7f00001.addr.consul.", A, Route::Invalid);
    check_route("zz000001.addr.consul.", A, Route::Invalid);
    check_route("consul.", A, Route::Apex);
    check_route("node.consul.", A, Route::EmptyNonTerminal);
    check_route("service.consul.", A, Route::EmptyNonTerminal);
    check_route("service.dc1.consul.", A, Route::EmptyNonTerminal);
    check_route("dc1.consul.", A, Route::EmptyNonTerminal);
    check_route("addr.consul.", A, Route::EmptyNonTerminal);
    check_route("service.dc2.consul.", A, Route::Invalid);
    check_route("nonexisting.consul.", A, Route::Invalid);
    check_route("foo.service.dc1.extra.more.consul.", A, Route::Invalid);
    check_route("foo.service.x.dc.y.peer.consul.", A, Route::Invalid);
    check_route("foo.service.p.peer.consul.", A, Route::Unsupported("peer"));
    let tagged = |tags: &[&str], port: Option<&str>| Route::Service {
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        name: "web".into(),
        dc: "dc1".into(),
        port: port.map(str::to_owned),
    };
    check_route("_web._tcp.service.http.port.consul.", SRV, tagged(&[], Some("http")));
    check_route("web.service.dc1.dc.http.port.consul.", SRV, tagged(&[], Some("http")));
    check_route("web.service.a.tag.b.tag.consul.", A, tagged(&["a", "b"], None));
    check_route("v1.x.web.service.b.tag.consul.", A, tagged(&["v1.x", "b"], None));
    check_route("_web._a.service.b.tag.consul.", SRV, tagged(&["a", "b"], None));
    check_route("foo.node.a.tag.consul.", A, Route::Invalid);
    check_route("2.0.0.127.in-addr.arpa.", A, Route::Ptr { ip: Some("127.0.0.2".parse().expect("ip")) });
    check_route("0.127.in-addr.arpa.", A, Route::Ptr { ip: None });
    check_route("256.0.0.127.in-addr.arpa.", A, Route::Ptr { ip: None });
    check_route(
        "2.4.2.4.2.4.2.4.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.",
        A,
        Route::Ptr { ip: Some("::4242:4242".parse().expect("ip")) },
    );
    let query = |n: &str, dc: &str| Route::Query { name: n.into(), dc: dc.into() };
    check_route("foo.query.consul.", A, query("foo", "dc1"));
    check_route("SomeQuery.query.consul.", A, query("somequery", "dc1"));
    check_route("query.name.with.dots.query.consul.", SRV, query("query.name.with.dots", "dc1"));
    check_route("foo.query.dc2.consul.", A, query("foo", "dc2"));
    check_route("_foo._tcp.query.consul.", SRV, query("foo", "dc1"));
    check_route("_query.name.with.dots._tcp.query.consul.", SRV, query("query.name.with.dots", "dc1"));
    check_route("_foo._udp.query.dc1.consul.", A, query("foo", "dc1"));
    check_route("_foo.bar.query.consul.", A, query("_foo.bar", "dc1"));
    check_route("_._tcp.query.consul.", SRV, Route::Invalid);
    check_route("foo.query.dc1.dc.consul.", A, Route::Invalid);
    check_route("foo.query.dc1.extra.more.consul.", SRV, Route::Invalid);
    check_route("query.consul.", SRV, Route::EmptyNonTerminal);
    check_route("example.com.", A, Route::NotOurs);
    check_route("consul.service.", A, Route::NotOurs);
    check_route("consul.example.", A, Route::NotOurs);
    // The response domain keeps the question's case.
    let r = route(&Name::from_ascii("db.service.CoNsUl.").expect("name"), A, &ctx());
    assert_eq!(r.resp_domain, "CoNsUl.");
}

#[test]
fn overlapping_alt_domain_longest_wins() {
    let mut c = ctx();
    c.alt_domain = Some("test.consul.".into());
    let r = route(&Name::from_ascii("n.node.test.consul.").expect("name"), RecordType::A, &c);
    assert_eq!(r.route, Route::Node { name: "n".into(), dc: "dc1".into() });
    assert_eq!(r.resp_domain, "test.consul.");
}

#[test]
fn addr_round_trip() {
    for ip in ["127.0.0.2", "2607:20:4005:808::200e", "::1"] {
        let ip: IpAddr = ip.parse().expect("ip");
        assert_eq!(route::decode_addr(&route::encode_addr(ip)), Some(ip));
    }
}

#[test]
fn rfc1464() {
    assert_eq!(answer::encode_kv("a=a", "true"), "a`=a=true");
    assert_eq!(answer::encode_kv("abc ", "123 "), "abc` =123 ");
    assert_eq!(answer::encode_kv(" abc", " 321"), "` abc= 321");
    assert_eq!(answer::encode_kv("novalue", ""), "novalue=");
    assert_eq!(answer::encode_kv("rfc1035-x", "raw"), "raw");
}

// ----- answers -------------------------------------------------------------------------

#[test]
fn service_srv_filters_critical_and_sets_weights() {
    let msg = check_answer(
        &ctx(),
        &catalog(),
        "db.service.consul.",
        RecordType::SRV,
        Expect {
            answers: Some(vec![
                "db.service.consul. SRV 1 10 5432 foo.node.dc1.consul.",
                "db.service.consul. SRV 1 3 5433 bar.node.dc1.consul.",
            ]),
            additionals: Some(vec![
                "foo.node.dc1.consul. A 127.0.0.1",
                "foo.node.dc1.consul. TXT key=value",
                "bar.node.dc1.consul. A 127.0.0.2",
            ]),
            ..Expect::default()
        },
    );
    assert!(msg.answers.iter().all(|r| r.ttl == 0));
}

#[test]
fn service_tags_and_rfc2782() {
    let (c, s) = (ctx(), catalog());
    let one = |a: &'static str| Expect { answers: Some(vec![a]), ..Expect::default() };
    check_answer(
        &c,
        &s,
        "primary.db.service.consul.",
        RecordType::SRV,
        one("primary.db.service.consul. SRV 1 10 5432 foo.node.dc1.consul."),
    );
    check_answer(
        &c,
        &s,
        "PRIMARY.Db.service.consul.",
        RecordType::A,
        one("PRIMARY.Db.service.consul. A 127.0.0.1"),
    );
    check_answer(
        &c,
        &s,
        "v1.primary.db.service.consul.",
        RecordType::A,
        one("v1.primary.db.service.consul. A 127.0.0.2"),
    );
    check_answer(
        &c,
        &s,
        "_db._primary.dc1.consul.",
        RecordType::SRV,
        one("_db._primary.dc1.consul. SRV 1 10 5432 foo.node.dc1.consul."),
    );
    let nx = || Expect {
        rcode: Some(ResponseCode::NXDomain),
        answers: Some(vec![]),
        soa: true,
        ..Expect::default()
    };
    check_answer(&c, &s, "dummy.primary.db.service.consul.", RecordType::SRV, nx());
    check_answer(&c, &s, "missing.service.consul.", RecordType::A, nx());
    check_answer(&c, &s, "db.service.dc2.consul.", RecordType::A, nx());
    check_answer(&c, &s, "nonexisting.consul.", RecordType::ANY, nx());
    check_answer(&c, &s, "consul.", RecordType::A, nx());
}

#[test]
fn service_a_aaaa_any_txt() {
    let (c, s) = (ctx(), catalog());
    let two = || Some(vec!["db.service.consul. A 127.0.0.1", "db.service.consul. A 127.0.0.2"]);
    check_answer(&c, &s, "db.service.consul.", RecordType::A, Expect { answers: two(), ..Expect::default() });
    let two_any = Some(vec!["db.service.consul. A 127.0.0.1", "db.service.consul. A 127.0.0.2"]);
    check_answer(
        &c,
        &s,
        "db.service.consul.",
        RecordType::ANY,
        Expect { answers: two_any, ..Expect::default() },
    );
    let two_txt = Some(vec!["db.service.consul. A 127.0.0.1", "db.service.consul. A 127.0.0.2"]);
    check_answer(
        &c,
        &s,
        "db.service.consul.",
        RecordType::TXT,
        Expect { answers: two_txt, ..Expect::default() },
    );
    // NODATA: instances exist but none has an IPv6 address.
    check_answer(
        &c,
        &s,
        "db.service.consul.",
        RecordType::AAAA,
        Expect { answers: Some(vec![]), soa: true, ..Expect::default() },
    );
    check_answer(
        &c,
        &s,
        "db.service.consul.",
        RecordType::MX,
        Expect { answers: Some(vec![]), soa: true, ..Expect::default() },
    );
    let v6 = Some(vec!["v6svc.service.consul. AAAA 2001:db8::1"]);
    check_answer(
        &c,
        &s,
        "v6svc.service.consul.",
        RecordType::AAAA,
        Expect { answers: v6, ..Expect::default() },
    );
    // Service address overrides the node's, and becomes an .addr. SRV target.
    let web = Some(vec!["web.service.consul. A 10.0.0.9"]);
    check_answer(&c, &s, "web.service.consul.", RecordType::A, Expect { answers: web, ..Expect::default() });
    check_answer(
        &c,
        &s,
        "web.service.test-domain.",
        RecordType::SRV,
        Expect {
            answers: Some(vec!["web.service.test-domain. SRV 1 10 80 0a000009.addr.dc1.test-domain."]),
            additionals: Some(vec![
                "0a000009.addr.dc1.test-domain. A 10.0.0.9",
                "foo.node.dc1.test-domain. TXT key=value",
            ]),
            ..Expect::default()
        },
    );
    // Host-name service address: SRV target as-is, no Additional address; A gives a CNAME.
    check_answer(
        &c,
        &s,
        "ext.service.consul.",
        RecordType::SRV,
        Expect {
            answers: Some(vec!["ext.service.consul. SRV 1 10 443 www.example.com."]),
            additionals: Some(vec!["foo.node.dc1.consul. TXT key=value"]),
            ..Expect::default()
        },
    );
    let cname = Some(vec!["ext.service.consul. CNAME www.example.com."]);
    check_answer(
        &c,
        &s,
        "ext.service.consul.",
        RecordType::A,
        Expect { answers: cname, ..Expect::default() },
    );
}

#[test]
fn only_passing_and_all_critical() {
    let mut c = ctx();
    c.dns_config.only_passing = true;
    let s = catalog();
    let one = Some(vec!["db.service.consul. A 127.0.0.1"]);
    check_answer(&c, &s, "db.service.consul.", RecordType::A, Expect { answers: one, ..Expect::default() });
    let nx =
        Expect { rcode: Some(ResponseCode::NXDomain), answers: Some(vec![]), soa: true, ..Expect::default() };
    check_answer(&c, &s, "replica.db.service.consul.", RecordType::A, nx);
}

#[test]
fn dedup_and_ttls() {
    let s = Cat::default()
        .node("foo", "127.0.0.1", &[])
        .svc("foo", "db", "db", &[], "", 12345)
        .svc("foo", "db2", "db", &[], "", 12345)
        .svc("foo", "db3", "db", &[], "", 12346)
        .snap();
    let mut c = ctx();
    c.dns_config.service_ttl.insert("d*".into(), Duration::from_secs(42));
    c.dns_config.node_ttl = Duration::from_secs(7);
    let a = check_answer(
        &c,
        &s,
        "db.service.consul.",
        RecordType::ANY,
        Expect { answers: Some(vec!["db.service.consul. A 127.0.0.1"]), ..Expect::default() },
    );
    assert_eq!(a.answers.first().map(|r| r.ttl), Some(42));
    let srv = check_answer(
        &c,
        &s,
        "db.service.consul.",
        RecordType::SRV,
        Expect {
            answers: Some(vec![
                "db.service.consul. SRV 1 10 12345 foo.node.dc1.consul.",
                "db.service.consul. SRV 1 10 12346 foo.node.dc1.consul.",
            ]),
            additionals: Some(vec!["foo.node.dc1.consul. A 127.0.0.1"]),
            ..Expect::default()
        },
    );
    assert!(srv.answers.iter().chain(&srv.additionals).all(|r| r.ttl == 42));
    let n = check_answer(
        &c,
        &s,
        "foo.node.consul.",
        RecordType::A,
        Expect { answers: Some(vec!["foo.node.consul. A 127.0.0.1"]), ..Expect::default() },
    );
    assert_eq!(n.answers.first().map(|r| r.ttl), Some(7));
}

#[test]
fn nodes() {
    let (c, s) = (ctx(), catalog());
    check_answer(
        &c,
        &s,
        "FOO.node.dc1.consul.",
        RecordType::A,
        Expect {
            answers: Some(vec!["FOO.node.dc1.consul. A 127.0.0.1"]),
            additionals: Some(vec!["FOO.node.dc1.consul. TXT key=value"]),
            ..Expect::default()
        },
    );
    let any = Some(vec!["foo.node.consul. A 127.0.0.1", "foo.node.consul. TXT key=value"]);
    check_answer(&c, &s, "foo.node.consul.", RecordType::ANY, Expect { answers: any, ..Expect::default() });
    let txt = Some(vec!["foo.node.consul. TXT key=value"]);
    check_answer(&c, &s, "foo.node.consul.", RecordType::TXT, Expect { answers: txt, ..Expect::default() });
    let dotted = Some(vec!["foo.bar.node.consul. A 127.0.0.9"]);
    check_answer(
        &c,
        &s,
        "foo.bar.node.consul.",
        RecordType::A,
        Expect { answers: dotted, ..Expect::default() },
    );
    // Type mismatch: NOERROR, empty, no SOA.
    check_answer(
        &c,
        &s,
        "foo.node.consul.",
        RecordType::AAAA,
        Expect { answers: Some(vec![]), ..Expect::default() },
    );
    check_answer(
        &c,
        &s,
        "foo.node.consul.",
        RecordType::SRV,
        Expect { answers: Some(vec![]), ..Expect::default() },
    );
    // Nodes are not health-filtered.
    check_answer(
        &c,
        &s,
        "qux.node.consul.",
        RecordType::A,
        Expect { answers: Some(vec!["qux.node.consul. A 127.0.0.4"]), ..Expect::default() },
    );
    let nx = Expect { rcode: Some(ResponseCode::NXDomain), soa: true, ..Expect::default() };
    check_answer(&c, &s, "nofoo.node.dc1.consul.", RecordType::ANY, nx);
}

#[test]
fn addr_lookups() {
    let (c, s) = (ctx(), catalog());
    let a = Some(vec!["7f000001.addr.dc1.consul. A 127.0.0.1"]);
    check_answer(
        &c,
        &s,
        "7f000001.addr.dc1.consul.",
        RecordType::A,
        Expect { answers: a, additionals: Some(vec![]), ..Expect::default() },
    );
    check_answer(
        &c,
        &s,
        "7f000001.addr.dc1.consul.",
        RecordType::SRV,
        Expect {
            answers: Some(vec![]),
            additionals: Some(vec!["7f000001.addr.dc1.consul. A 127.0.0.1"]),
            ..Expect::default()
        },
    );
    let v6 = Some(vec!["2607002040050808000000000000200e.addr.consul. AAAA 2607:20:4005:808::200e"]);
    check_answer(
        &c,
        &s,
        "2607002040050808000000000000200e.addr.consul.",
        RecordType::AAAA,
        Expect { answers: v6, ..Expect::default() },
    );
    let nx = Expect { rcode: Some(ResponseCode::NXDomain), soa: true, ..Expect::default() };
    check_answer(&c, &s, "nothex.addr.consul.", RecordType::A, nx);
}

#[test]
fn soa_and_ns() {
    let mut c = ctx();
    c.dns_config.soa.min_ttl = 60;
    let s = catalog();
    let msg = check_answer(
        &c,
        &s,
        "whatever.node.test-domain.",
        RecordType::SOA,
        Expect {
            answers: Some(vec!["test-domain. SOA ns.test-domain. hostmaster.test-domain. 4242"]),
            additionals: Some(vec!["server1.node.dc1.test-domain. A 127.0.0.100"]),
            ..Expect::default()
        },
    );
    assert_eq!(msg.answers.first().map(|r| r.ttl), Some(60));
    assert_eq!(sorted(&msg.authorities), vec!["test-domain. NS server1.node.dc1.test-domain."]);
    check_answer(
        &c,
        &s,
        "something.node.consul.",
        RecordType::NS,
        Expect {
            answers: Some(vec!["consul. NS server1.node.dc1.consul."]),
            additionals: Some(vec!["server1.node.dc1.consul. A 127.0.0.100"]),
            ..Expect::default()
        },
    );
    // Without a `consul` service, the agent itself is the name server.
    let msg = check_answer(&c, &CatalogSnapshot::default(), "consul.", RecordType::NS, Expect::default());
    assert_eq!(sorted(&msg.answers), vec!["consul. NS server1.node.dc1.consul."]);
    // NXDOMAIN SOA values (spec §3 #69, #86).
    let nx = check_answer(
        &ctx(),
        &s,
        "consul.service.dc2.consul.",
        RecordType::ANY,
        Expect { rcode: Some(ResponseCode::NXDomain), soa: true, ..Expect::default() },
    );
    let soa = nx.authorities.first().expect("soa");
    assert_eq!(soa.ttl, 0);
    let RData::SOA(d) = &soa.data else { panic!("not SOA") };
    assert_eq!((d.minimum, d.expire, d.refresh, d.retry), (0, 86400, 3600, 600));
    assert_eq!(show(soa), "consul. SOA ns.consul. hostmaster.consul. 4242");
}

#[test]
fn refused_notimp_formerr() {
    let (c, s) = (ctx(), catalog());
    let msg = check_answer(
        &c,
        &s,
        "example.com.",
        RecordType::A,
        Expect { rcode: Some(ResponseCode::Refused), aa: Some(false), ..Expect::default() },
    );
    assert!(!msg.metadata.recursion_available);
    check_answer(
        &c,
        &s,
        "consul.",
        RecordType::AXFR,
        Expect { rcode: Some(ResponseCode::NotImp), ..Expect::default() },
    );
    check_answer(
        &c,
        &s,
        "consul.",
        RecordType::IXFR,
        Expect { rcode: Some(ResponseCode::NotImp), ..Expect::default() },
    );

    let mut rng = StdRng::seed_from_u64(1);
    // Opcode other than QUERY.
    let mut m = Message::new(7, MessageType::Query, OpCode::Status);
    m.add_query(Query::query(Name::from_ascii("consul.").expect("n"), RecordType::A));
    let out = handle(&m.to_vec().expect("enc"), Transport::Udp, &c, &s, &mut rng).expect("reply");
    let r = Message::from_vec(&out).expect("dec");
    assert_eq!((r.metadata.id, r.metadata.response_code), (7, ResponseCode::NotImp));
    // Two questions.
    let mut m = Message::new(8, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii("a.consul.").expect("n"), RecordType::A));
    m.add_query(Query::query(Name::from_ascii("b.consul.").expect("n"), RecordType::A));
    let out = handle(&m.to_vec().expect("enc"), Transport::Udp, &c, &s, &mut rng).expect("reply");
    let r = Message::from_vec(&out).expect("dec");
    assert_eq!((r.metadata.id, r.metadata.response_code), (8, ResponseCode::FormErr));
    // Garbage after a valid header.
    let mut junk = query_bytes("db.service.consul.", RecordType::A, None);
    junk.truncate(20);
    let out = handle(&junk, Transport::Udp, &c, &s, &mut rng).expect("reply");
    let r = Message::from_vec(&out).expect("dec");
    assert_eq!((r.metadata.id, r.metadata.response_code), (0xbeef, ResponseCode::FormErr));
    // No header, or a response: dropped.
    assert_eq!(handle(&[1, 2, 3], Transport::Udp, &c, &s, &mut rng), None);
    let mut resp = query_bytes("db.service.consul.", RecordType::A, None);
    if let Some(b) = resp.get_mut(2) {
        *b |= 0x80;
    }
    assert_eq!(handle(&resp, Transport::Udp, &c, &s, &mut rng), None);
}

#[test]
fn recursors_set_ra_and_forward_falls_back_to_servfail() {
    let mut c = ctx();
    c.recursors = vec!["127.0.0.1:1".parse().expect("addr")];
    let s = catalog();
    let mut rng = StdRng::seed_from_u64(1);
    let bytes = query_bytes("example.com.", RecordType::A, Some(1232));
    match respond(&bytes, Transport::Udp, &c, &s, &Resolved::pending(), &mut rng) {
        Response::Forward { id, failure, .. } => {
            assert_eq!(id, 0xbeef);
            let r = Message::from_vec(&failure).expect("dec");
            assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
            assert!(r.metadata.recursion_available && !r.metadata.authoritative);
            assert_eq!(r.edns.map(|e| e.max_payload()), Some(1232));
        }
        other => panic!("expected Forward, got {other:?}"),
    }
    let msg = check_answer(&c, &s, "foo.node.consul.", RecordType::A, Expect::default());
    assert!(msg.metadata.recursion_available);
}

#[test]
fn edns_echo() {
    let (c, s) = (ctx(), catalog());
    let (msg, _) =
        ask_with(&c, &s, &query_bytes("foo.node.dc1.consul.", RecordType::ANY, Some(12345)), Transport::Udp);
    assert_eq!(msg.edns.map(|e| e.max_payload()), Some(12345));
    let (msg, _) =
        ask_with(&c, &s, &query_bytes("foo.node.dc1.consul.", RecordType::ANY, None), Transport::Udp);
    assert!(msg.edns.is_none());
}

fn big_catalog(n: u8, name: &str) -> CatalogSnapshot {
    let mut cat = Cat::default();
    for i in 0..n {
        let node = format!("node-with-a-rather-long-name-{i}");
        cat = cat.node(&node, &format!("127.0.1.{i}"), &[]).svc(&node, name, name, &["primary"], "", 8000);
    }
    cat.snap()
}

#[test]
fn udp_answer_limit_and_truncation() {
    let s = big_catalog(96, "web");
    let mut c = ctx();
    let q = query_bytes("web.service.consul.", RecordType::ANY, None);
    let (msg, _) = ask_with(&c, &s, &q, Transport::Udp);
    assert_eq!(msg.answers.len(), 3, "default udp_answer_limit");
    assert!(!msg.metadata.truncation, "TC only with enable_truncate");
    c.dns_config.enable_truncate = true;
    let (msg, _) = ask_with(&c, &s, &q, Transport::Udp);
    assert!(msg.metadata.truncation);
    c.dns_config.udp_answer_limit = 30;
    assert_eq!(ask_with(&c, &s, &q, Transport::Udp).0.answers.len(), 8, "hard cap 8");
    c.dns_config.udp_answer_limit = 0;
    assert_eq!(ask_with(&c, &s, &q, Transport::Udp).0.answers.len(), 0);
    // EDNS lifts the count limit; TCP has none.
    let (msg, len) =
        ask_with(&c, &s, &query_bytes("web.service.consul.", RecordType::ANY, Some(8192)), Transport::Udp);
    assert_eq!(msg.answers.len(), 96);
    assert!(len <= 8192 && !msg.metadata.truncation);
    assert_eq!(ask_with(&c, &s, &q, Transport::Tcp).0.answers.len(), 96);
}

#[test]
fn srv_truncated_to_512_keeps_additional_in_step() {
    let name = "a-service-name-that-is-fifty-eight-characters-long-abcdefg";
    let s = big_catalog(20, name);
    let mut c = ctx();
    c.dns_config.udp_answer_limit = 8;
    c.dns_config.enable_truncate = true;
    let q = query_bytes(&format!("_{name}._primary.service.consul."), RecordType::SRV, None);
    let (msg, len) = ask_with(&c, &s, &q, Transport::Udp);
    assert!(len <= 512, "{len}");
    assert!(msg.metadata.truncation);
    assert!(!msg.answers.is_empty() && msg.answers.len() < 8);
    let mut targets: Vec<String> = msg
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(s) => Some(s.target.to_string()),
            _ => None,
        })
        .collect();
    let mut extra: Vec<String> = msg.additionals.iter().map(|r| r.name.to_string()).collect();
    targets.sort();
    extra.sort();
    assert_eq!(targets, extra);
    // With EDNS 512 < size ≤ 1232 more fit, and the OPT survives trimming.
    let q = query_bytes(&format!("_{name}._primary.service.consul."), RecordType::SRV, Some(1232));
    let (msg2, len) = ask_with(&c, &s, &q, Transport::Udp);
    assert!(len <= 1232 && msg2.answers.len() > msg.answers.len() && msg2.edns.is_some());
    assert!(msg2.metadata.truncation);
}

#[test]
fn shuffles_per_query() {
    let s = big_catalog(30, "web");
    let c = ctx();
    let q = query_bytes("web.service.consul.", RecordType::A, None);
    let mut distinct = std::collections::HashSet::new();
    for seed in 0..10 {
        let mut rng = StdRng::seed_from_u64(seed);
        let out = handle(&q, Transport::Udp, &c, &s, &mut rng).expect("reply");
        let m = Message::from_vec(&out).expect("dec");
        assert_eq!(m.answers.len(), 3);
        distinct.insert(m.answers.iter().map(show).collect::<Vec<_>>());
    }
    assert!(distinct.len() >= 2);
}

// ----- properties ----------------------------------------------------------------------

fn label() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9_][a-zA-Z0-9_-]{0,11}",
        Just("service".to_owned()),
        Just("node".to_owned()),
        Just("addr".to_owned()),
        Just("dc1".to_owned()),
        Just("dc".to_owned()),
        Just("_tcp".to_owned()),
        Just("7f000001".to_owned()),
        Just("db".to_owned()),
        Just("foo".to_owned()),
    ]
}

fn qtype() -> impl Strategy<Value = RecordType> {
    prop::sample::select(vec![
        RecordType::A,
        RecordType::AAAA,
        RecordType::SRV,
        RecordType::ANY,
        RecordType::TXT,
        RecordType::SOA,
        RecordType::NS,
        RecordType::MX,
        RecordType::PTR,
        RecordType::AXFR,
    ])
}

fn flip_case(s: &str, mask: &[bool]) -> String {
    s.chars()
        .zip(mask.iter().cycle())
        .map(|(c, up)| if *up { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
        .collect()
}

proptest! {
    #[test]
    fn never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600), tcp in any::<bool>()) {
        let mut rng = StdRng::seed_from_u64(3);
        let t = if tcp { Transport::Tcp } else { Transport::Udp };
        let _ = handle(&bytes, t, &ctx(), &catalog(), &mut rng);
    }

    #[test]
    fn fuzz_entry_holds_its_invariants(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        fuzz_logic::request_path(&bytes);
    }

    #[test]
    fn fuzz_entry_holds_its_invariants_on_mutated_queries(pos in 0usize..80, val in any::<u8>(), qt in qtype(), tcp in any::<bool>()) {
        for name in ["web.service.consul.", "v1.web.service.alt.test.", "host.name.node.dc1.consul.", "example.com."] {
            let mut bytes = query_bytes(name, qt, Some(1232));
            if let Some(b) = bytes.get_mut(pos) { *b = val; }
            bytes.insert(0, u8::from(tcp));
            fuzz_logic::request_path(&bytes);
        }
    }

    #[test]
    fn never_panics_on_mutated_queries(pos in 0usize..64, val in any::<u8>(), qt in qtype()) {
        let mut bytes = query_bytes("primary.db.service.dc1.consul.", qt, Some(1232));
        if let Some(b) = bytes.get_mut(pos) { *b = val; }
        let mut rng = StdRng::seed_from_u64(3);
        let _ = handle(&bytes, Transport::Udp, &ctx(), &catalog(), &mut rng);
    }

    #[test]
    fn well_formed_queries_always_get_a_reply(
        labels in prop::collection::vec(label(), 0..6),
        domain in prop::sample::select(vec!["consul.", "test-domain.", "example.com.", ""]),
        qt in qtype(),
        edns in prop::option::of(0u16..9000),
        tcp in any::<bool>(),
    ) {
        let name = format!("{}{}", labels.iter().map(|l| format!("{l}.")).collect::<String>(), domain);
        let name = if name.is_empty() { ".".to_owned() } else { name };
        let bytes = query_bytes(&name, qt, edns);
        let mut rng = StdRng::seed_from_u64(5);
        let t = if tcp { Transport::Tcp } else { Transport::Udp };
        let out = handle(&bytes, t, &ctx(), &catalog(), &mut rng);
        let out = out.expect("a reply");
        let msg = Message::from_vec(&out).expect("decodable");
        prop_assert_eq!(msg.metadata.id, 0xbeef);
        prop_assert!(t == Transport::Tcp || out.len() <= usize::from(edns.unwrap_or(512).max(512)) || msg.answers.len() <= 1);
    }

    #[test]
    fn routing_is_case_insensitive(
        labels in prop::collection::vec(label(), 1..6),
        mask in prop::collection::vec(any::<bool>(), 1..16),
        qt in qtype(),
    ) {
        let name = format!("{}consul.", labels.iter().map(|l| format!("{l}.")).collect::<String>());
        let lower = route(&Name::from_ascii(&name).expect("n"), qt, &ctx());
        let mixed = route(&Name::from_ascii(flip_case(&name, &mask)).expect("n"), qt, &ctx());
        prop_assert_eq!(lower.route, mixed.route);
        prop_assert!(lower.resp_domain.eq_ignore_ascii_case(&mixed.resp_domain));
    }
}

// ----- listener ------------------------------------------------------------------------

#[tokio::test]
async fn listener_udp_and_tcp() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let udp = bind_udp("127.0.0.1:0".parse().expect("addr"), 2).expect("bind udp");
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind tcp");
    let (udp_addr, tcp_addr): (SocketAddr, SocketAddr) =
        (udp[0].local_addr().expect("addr"), tcp.local_addr().expect("addr"));
    let ctx = Arc::new(arc_swap::ArcSwap::from_pointee(ctx()));
    let snaps = Arc::new(crate::snapshot::SnapshotHandle::new(catalog()));
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(serve(udp, tcp, ctx, snaps, None, shutdown.clone()));

    let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind client");
    client.send_to(&query_bytes("foo.node.consul.", RecordType::A, None), udp_addr).await.expect("send");
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), client.recv(&mut buf))
        .await
        .expect("timely")
        .expect("recv");
    let msg = Message::from_vec(buf.get(..n).expect("slice")).expect("dec");
    assert_eq!(sorted(&msg.answers), vec!["foo.node.consul. A 127.0.0.1"]);

    let mut stream = tokio::net::TcpStream::connect(tcp_addr).await.expect("connect");
    for (name, want) in [("db.service.consul.", 2usize), ("web.service.consul.", 1)] {
        let q = query_bytes(name, RecordType::A, None);
        let mut frame = u16::try_from(q.len()).expect("len").to_be_bytes().to_vec();
        frame.extend_from_slice(&q);
        stream.write_all(&frame).await.expect("write");
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await.expect("len");
        let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut body).await.expect("body");
        let msg = Message::from_vec(&body).expect("dec");
        assert_eq!(msg.answers.len(), want, "{name}");
    }

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), server).await.expect("stops").expect("join").expect("ok");
}

/// A fake upstream that answers every query with `rcode`, echoing the ID it was sent.
async fn fake_recursor(rcode: u8) -> SocketAddr {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = sock.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = vec![0u8; 1500];
        while let Ok((n, peer)) = sock.recv_from(&mut buf).await {
            let mut reply = buf.get(..n).expect("slice").to_vec();
            if let (Some(f), Some(r)) = (reply.get(2).copied(), reply.get(3).copied()) {
                reply[2] = f | 0x80;
                reply[3] = (r & 0xf0) | rcode;
            }
            let _ = sock.send_to(&reply, peer).await;
        }
    });
    addr
}

#[tokio::test]
async fn recursor_falls_through_servfail_and_silence() {
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let failing = fake_recursor(2).await;
    let good = fake_recursor(3).await;
    let q = query_bytes("example.com.", RecordType::A, None);
    let order = [silent.local_addr().expect("addr"), failing, good];
    let t = Duration::from_millis(200);
    let reply = recursor::forward(&q, Transport::Udp, &order, crate::config::RecursorStrategy::Sequential, t)
        .await
        .expect("reply");
    let msg = Message::from_vec(&reply).expect("dec");
    assert_eq!((msg.metadata.id, msg.metadata.response_code), (0xbeef, ResponseCode::NXDomain));
    let none =
        recursor::forward(&q, Transport::Udp, &order[..2], crate::config::RecursorStrategy::Sequential, t)
            .await;
    assert!(none.is_none());
}

#[test]
fn prepared_queries_answer_like_services_with_their_own_filters_and_ttl() {
    const ID: &str = "8f246b77-f3e1-ff88-5b48-8ec93abf3e05";
    let s = Cat::default()
        .node("foo", "127.0.0.1", &[])
        .node("bar", "127.0.0.2", &[])
        .svc("foo", "db", "db", &["primary"], "", 12345)
        .svc("bar", "db2", "db", &["canary"], "", 12346)
        .svc("foo", "v4", "webv4", &[], "", 80)
        .check("bar", "db2-check", "db2", HealthStatus::Warning)
        .query(ID, "test", "db", &[], "3s")
        .query("00000000-0000-0000-0000-000000000001", "stable", "db", &["!canary"], "")
        .query("00000000-0000-0000-0000-000000000002", "webv4", "webv4", &[], "")
        .query("00000000-0000-0000-0000-000000000003", "gone", "nothing", &[], "")
        .snap();
    let mut c = ctx();
    c.dns_config.service_ttl.insert("db".into(), Duration::from_secs(10));
    let srv = Expect {
        answers: Some(vec![
            "{q} SRV 1 10 12345 foo.node.dc1.consul.",
            "{q} SRV 1 3 12346 bar.node.dc1.consul.",
        ]),
        ..Expect::default()
    };
    for q in
        [format!("{ID}.query.consul."), "TEST.query.dc1.consul.".into(), format!("_{ID}._tcp.query.consul.")]
    {
        let want = srv.answers.as_ref().map(|a| a.iter().map(|r| r.replace("{q}", &q)).collect::<Vec<_>>());
        let e = Expect {
            answers: Some(want.iter().flatten().map(String::as_str).collect()),
            ..Expect::default()
        };
        let m = check_answer(&c, &s, &q, RecordType::SRV, e);
        assert!(m.answers.iter().chain(&m.additionals).all(|r| r.ttl == 3), "{q}: DNS.TTL 3s");
    }
    // `!canary` drops bar; no DNS.TTL: the service's service_ttl.
    let m = check_answer(
        &c,
        &s,
        "stable.query.consul.",
        RecordType::A,
        Expect { answers: Some(vec!["stable.query.consul. A 127.0.0.1"]), ..Expect::default() },
    );
    assert_eq!(m.answers.first().map(|r| r.ttl), Some(10));
    let nx = || Expect {
        rcode: Some(ResponseCode::NXDomain),
        answers: Some(vec![]),
        soa: true,
        ..Expect::default()
    };
    check_answer(&c, &s, "nope.query.consul.", RecordType::SRV, nx());
    check_answer(&c, &s, "gone.query.consul.", RecordType::A, nx());
    check_answer(&c, &s, "test.query.dc2.consul.", RecordType::A, nx());
    let nodata = Expect { answers: Some(vec![]), soa: true, ..Expect::default() };
    check_answer(&c, &s, "webv4.query.consul.", RecordType::AAAA, nodata);
}

/// The answer sources in order: the catalog's NXDOMAIN for an unknown reverse name is only
/// offered (`Continue`), so the forwarder takes the name when recursors are set; its
/// NOTIMP for a zone transfer ends the chain (`Break`) even for a foreign name.
#[test]
fn answer_sources_catalog_offers_and_forwarder_takes_over() {
    let s = catalog();
    let mut rng = StdRng::seed_from_u64(7);
    let reverse = query_bytes("9.9.9.9.in-addr.arpa.", RecordType::PTR, None);
    let axfr = query_bytes("example.com.", RecordType::AXFR, None);
    let rcode = |c: &DnsContext, q: &[u8], rng: &mut StdRng| match respond(
        q,
        Transport::Udp,
        c,
        &s,
        &Resolved::pending(),
        rng,
    ) {
        Response::Reply(bytes) => Some(Message::from_vec(&bytes).expect("dec").metadata.response_code),
        _ => None,
    };
    let mut c = ctx();
    assert_eq!(rcode(&c, &reverse, &mut rng), Some(ResponseCode::NXDomain));
    assert_eq!(rcode(&c, &axfr, &mut rng), Some(ResponseCode::NotImp));
    // Not our name: the NOTIMP is not authoritative.
    match respond(&axfr, Transport::Udp, &c, &s, &Resolved::pending(), &mut rng) {
        Response::Reply(bytes) => assert!(!Message::from_vec(&bytes).expect("dec").metadata.authoritative),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        rcode(&c, &query_bytes("example.com.", RecordType::A, None), &mut rng),
        Some(ResponseCode::Refused)
    );
    c.recursors = vec!["127.0.0.1:1".parse().expect("addr")];
    let forwarded = respond(&reverse, Transport::Udp, &c, &s, &Resolved::pending(), &mut rng);
    assert!(matches!(forwarded, Response::Forward { .. }), "{forwarded:?}");
    assert_eq!(rcode(&c, &axfr, &mut rng), Some(ResponseCode::NotImp));
}
