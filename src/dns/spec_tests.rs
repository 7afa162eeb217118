//! Unit tests mirroring the Consul algorithm tests listed under the table in spec §3: trimming
//! to the UDP and TCP limits, keeping Additional in step with the answers (`syncExtra`), RFC 1464
//! TXT encoding, recursor addresses and the locality grammar.
//!
//! Each test is named after its Consul test (the doc comment gives the exact Go name). Consul's
//! fixtures are `dns.Msg` values fed to `trimUDPResponse`/`trimTCPResponse`; here the same
//! records are built as an `Answer` and run through the encode stage, which owns trimming.
//! Consul reports "trimmed" as a return value; here the fixtures' context enables
//! `enable_truncate`, so the TC bit says the same thing. Consul's fixture messages are
//! uncompressed, so the context disables compression to compare sizes like for like.

use std::net::Ipv4Addr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use super::message::{Answer, Rr};
use super::{DnsContext, Route, Transport, encode, parse, route};
use crate::config::{DnsConfig, parse_recursor};

// ----- fixtures and check helpers --------------------------------------------------------------

/// `trimUDPResponse`'s defaults: `udp_answer_limit = 3`; TC reports trimming; uncompressed.
fn ctx() -> DnsContext {
    DnsContext {
        domain: "consul.".into(),
        alt_domain: None,
        datacenter: "dc1".into(),
        node_name: "test".into(),
        dns_config: DnsConfig { enable_truncate: true, disable_compression: true, ..DnsConfig::default() },
        recursors: Vec::new(),
        soa_serial: 1,
        generation: 0,
        zones: std::sync::Arc::default(),
    }
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).expect("fixture name")
}

/// The parsed request for `qname`/`qtype`, with an OPT advertising `edns` bytes if given.
fn request(qname: &str, qtype: RecordType, edns: Option<u16>) -> parse::Request {
    let mut msg = Message::new(0x1234, MessageType::Query, OpCode::Query);
    msg.add_query(Query::query(name(qname), qtype));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        msg.set_edns(e);
    }
    parse::parse(&msg.to_vec().expect("encode request")).expect("a valid request")
}

/// Consul's fixture instance `i`: `SRV redis-cache-redis.service.consul. -> ip-10-0-1-<n>...`
/// with the target's A record as its Additional (`n = base + i`).
fn srv(base: usize, i: usize) -> Rr {
    let n = base + i;
    let target = name(&format!("ip-10-0-1-{n}.node.dc1.consul."));
    let ip = Ipv4Addr::new(10, 0, u8::try_from(n / 256).unwrap_or(u8::MAX), (n % 256) as u8);
    Rr {
        record: Record::from_rdata(
            name("redis-cache-redis.service.consul."),
            0,
            RData::SRV(SRV::new(0, 0, 0, target.clone())),
        ),
        extra: vec![Record::from_rdata(target, 0, RData::A(A(ip)))],
    }
}

fn answer(answers: Vec<Rr>) -> Answer {
    Answer {
        rcode: ResponseCode::NoError,
        authoritative: true,
        answers,
        authorities: Vec::new(),
        additionals: Vec::new(),
        location_scoped: false,
        rfc_truncation: false,
    }
}

/// `n` instances as Consul's fixtures build them, optionally with one SOA per instance in
/// Authority (the `…WithNS` variants).
fn fixture(base: usize, n: usize, with_ns: bool) -> Answer {
    let mut ans = answer((0..n).map(|i| srv(base, i)).collect());
    if with_ns {
        ans.authorities = (0..n)
            .map(|i| {
                let soa = SOA::new(name(&format!("soa-{i}.")), name("."), 0, 0, 0, 0, 0);
                Record::from_rdata(
                    name(&format!("ip-10-0-1-{}.node.dc1.consul.", base + i)),
                    0,
                    RData::SOA(soa),
                )
            })
            .collect();
    }
    ans
}

/// A reply as the client sees it.
struct Sent {
    msg: Message,
    /// Bytes on the wire.
    len: usize,
}

impl Sent {
    fn trimmed(&self) -> bool {
        self.msg.metadata.truncation
    }

    /// Consul's `len(resp.Answer) == len(resp.Extra)` and `srv.Target == a.Header().Name`.
    fn additional_follows_answers(&self) -> Result<(), String> {
        let targets: Vec<String> = self
            .msg
            .answers
            .iter()
            .map(|r| match &r.data {
                RData::SRV(s) => s.target.to_ascii(),
                other => format!("not an SRV: {other}"),
            })
            .collect();
        let owners: Vec<String> =
            self.msg
                .additionals
                .iter()
                .map(|r| {
                    if r.record_type() == RecordType::A {
                        r.name.to_ascii()
                    } else {
                        format!("not an A: {r}")
                    }
                })
                .collect();
        if targets.is_empty() || targets != owners {
            return Err(format!("answers {targets:?} vs additional {owners:?}"));
        }
        Ok(())
    }
}

/// Encodes `ans` for `req` over `transport` and decodes what would be sent.
fn check_encode(req: &parse::Request, ans: Answer, transport: Transport, ctx: &DnsContext) -> Sent {
    let bytes = encode::encode(req, ans, transport, ctx).expect("an encodable reply");
    Sent { msg: Message::from_vec(&bytes).expect("a decodable reply"), len: bytes.len() }
}

fn udp(ans: Answer) -> Sent {
    check_encode(
        &request("redis-cache-redis.service.consul.", RecordType::SRV, None),
        ans,
        Transport::Udp,
        &ctx(),
    )
}

/// `name TYPE rdata`, for exact comparisons of sections.
fn shown(records: &[Record]) -> Vec<String> {
    records.iter().map(|r| format!("{} {} {}", r.name, r.record_type(), r.data)).collect()
}

/// The size of one record encoded without name compression.
fn uncompressed_record_len(r: &Record) -> usize {
    let mut buf = Vec::new();
    let mut enc = BinEncoder::new(&mut buf);
    enc.set_name_encoding(NameEncoding::Uncompressed);
    r.emit(&mut enc).expect("emit");
    buf.len()
}

/// The size of `msg` encoded without name compression (Consul's `Len()` of its fixtures).
fn uncompressed_len(msg: &Message) -> usize {
    let mut buf = Vec::new();
    let mut enc = BinEncoder::new(&mut buf);
    enc.set_name_encoding(NameEncoding::Uncompressed);
    msg.emit(&mut enc).expect("emit");
    buf.len()
}

// ----- trimUDPResponse / trimTCPResponse -------------------------------------------------------

/// Consul: `TestDNS_trimUDPResponse_NoTrim`.
#[test]
fn trim_udp_response_no_trim() {
    let fixture = fixture(185, 1, false);
    let (want_answers, want_extra) = (shown(&[srv(185, 0).record]), shown(&srv(185, 0).extra));
    let sent = udp(fixture);
    assert!(!sent.trimmed());
    assert_eq!(shown(&sent.msg.answers), want_answers);
    assert_eq!(shown(&sent.msg.additionals), want_extra);
}

/// Consul: `TestDNS_trimUDPResponse_TrimLimit` (one instance more than `udp_answer_limit`).
#[test]
fn trim_udp_response_trim_limit() {
    let limit = usize::try_from(DnsConfig::default().udp_answer_limit).expect("small");
    let sent = udp(fixture(185, limit + 1, false));
    assert!(sent.trimmed());
    let kept: Vec<Rr> = (0..limit).map(|i| srv(185, i)).collect();
    let want_answers: Vec<Record> = kept.iter().map(|r| r.record.clone()).collect();
    let want_extra: Vec<Record> = kept.iter().flat_map(|r| r.extra.clone()).collect();
    assert_eq!(shown(&sent.msg.answers), shown(&want_answers));
    assert_eq!(shown(&sent.msg.additionals), shown(&want_extra));
}

/// Consul: `TestDNS_trimUDPResponse_TrimLimitWithNS` (Authority goes first; the reply fits 512).
#[test]
fn trim_udp_response_trim_limit_with_ns() {
    let limit = usize::try_from(DnsConfig::default().udp_answer_limit).expect("small");
    let sent = udp(fixture(185, limit + 1, true));
    assert!(sent.trimmed());
    assert!(sent.len <= 512, "{} bytes", sent.len);
    assert!(sent.msg.authorities.is_empty(), "{:?}", sent.msg.authorities);
}

/// Consul: `TestDNS_trimTCPResponse_TrimLimitWithNS` (5000 SRV with Authority; ≤ 65523 bytes).
#[test]
fn trim_tcp_response_trim_limit_with_ns() {
    let req = request("redis-cache-redis.service.consul.", RecordType::SRV, None);
    let sent = check_encode(&req, fixture(185, 5000, true), Transport::Tcp, &ctx());
    assert!(sent.trimmed());
    assert!(sent.len <= 65523, "{} bytes", sent.len);
    assert!(sent.msg.authorities.is_empty());
}

/// Consul: `TestDNS_trimUDPResponse_TrimSize` (100 instances; Additional stays paired).
#[test]
fn trim_udp_response_trim_size() {
    let sent = udp(fixture(185, 100, false));
    assert!(sent.trimmed());
    sent.additional_follows_answers().unwrap();
}

/// Consul: `TestDNS_trimUDPResponse_TrimSizeEDNS` (EDNS 2048 keeps more than plain 512).
#[test]
fn trim_udp_response_trim_size_edns() {
    let plain = udp(fixture(150, 100, false));
    let req = request("redis-cache-redis.service.consul.", RecordType::SRV, Some(2048));
    let edns = check_encode(&req, fixture(150, 100, false), Transport::Udp, &ctx());
    assert!(plain.trimmed() && edns.trimmed());
    plain.additional_follows_answers().unwrap();
    edns.additional_follows_answers().unwrap();
    assert!(plain.msg.answers.len() < edns.msg.answers.len());
    assert!(plain.msg.additionals.len() < edns.msg.additionals.len());
    assert!(edns.len <= 2048, "{} bytes", edns.len);
}

/// Consul: `TestDNS_trimUDPResponse_TrimSizeMaxSize` (EDNS 65535 is capped below 65535).
#[test]
fn trim_udp_response_trim_size_max_size() {
    let fixture = fixture(150, 600, false);
    // Consul's precondition `respEDNS.Len() > MaxUint16`; summed per record, since an encoder
    // stops at 65535 bytes.
    let records = fixture.answers.iter().flat_map(|r| std::iter::once(&r.record).chain(&r.extra));
    let whole_len: usize = 12 + records.map(uncompressed_record_len).sum::<usize>();
    assert!(whole_len > 65535, "the fixture must exceed 65535 bytes untrimmed: {whole_len}");
    let req = request("redis-cache-redis.service.consul.", RecordType::SRV, Some(u16::MAX));
    let sent = check_encode(&req, fixture, Transport::Udp, &ctx());
    assert!(sent.trimmed());
    assert!(sent.len < 65535, "{} bytes", sent.len);
    assert!(sent.len <= 65467, "{} bytes, above the UDP cap of 65535 - 68", sent.len);
    assert!(!sent.msg.answers.is_empty());
    assert_eq!(sent.msg.answers.len(), sent.msg.additionals.len());
}

/// Consul: `TestDNS_BinarySearch` (5000 SRV with CNAME Additional, compressed or not, to 512,
/// 8192 and 65535 bytes).
#[test]
fn binary_search() {
    let answers = |i: usize| {
        let target = name(&format!("host-redis-{}-{}.test.acme.com.node.dc1.consul.", i / 256, i % 256));
        let cname = name(&format!("fx.168.{}.{}.", i / 256, i % 256));
        Rr {
            record: Record::from_rdata(
                name("redis.service.consul."),
                0x3c,
                RData::SRV(SRV::new(0, 0, 0x4c57, target.clone())),
            ),
            extra: vec![Record::from_rdata(target, 0x3c, RData::CNAME(CNAME(cname)))],
        }
    };
    for compress in [true, false] {
        let mut c = ctx();
        c.dns_config.disable_compression = !compress;
        for max in [512u16, 8192, 65535] {
            let edns = (max != 512).then_some(max);
            let req = request("redis.service.consul.", RecordType::SRV, edns);
            let sent = check_encode(&req, answer((0..5000).map(answers).collect()), Transport::Udp, &c);
            assert!(
                sent.len <= usize::from(max).min(65467),
                "compress={compress} max={max}: {} bytes",
                sent.len
            );
            assert!(sent.len >= 16 && !sent.msg.answers.is_empty(), "compress={compress} max={max}");
        }
    }
}

/// Consul: `TestDNS_syncExtra`. Additional holds, in answer order, the records of the answers
/// that were sent: the first record per owner name and type, matched case-insensitively,
/// CNAME chains as given (a CNAME loop or a dangling CNAME is harmless), and nothing that
/// belongs to an answer that was not sent.
#[test]
fn sync_extra() {
    let rr = |owner: &str, data: RData| Record::from_rdata(name(owner), 0, data);
    let a = |owner: &str, ip: &str| rr(owner, RData::A(A(ip.parse().expect("ip"))));
    let cname = |owner: &str, target: &str| rr(owner, RData::CNAME(CNAME(name(target))));
    let instance = |port: u16, target: &str, extra: Vec<Record>| Rr {
        record: rr("redis-cache-redis.service.consul.", RData::SRV(SRV::new(0, 0, port, name(target)))),
        extra,
    };
    let answers = || {
        vec![
            // Two instances on one host: the repeated A (here spelled in upper case) is sent once.
            instance(
                1001,
                "ip-10-0-1-185.node.dc1.consul.",
                vec![a("ip-10-0-1-185.node.dc1.consul.", "10.0.1.185")],
            ),
            instance(
                1002,
                "ip-10-0-1-185.node.dc1.consul.",
                vec![a("IP-10-0-1-185.NODE.DC1.CONSUL.", "10.0.1.185")],
            ),
            // Outside the domain: a CNAME and the A it leads to.
            instance(
                1003,
                "demo.consul.io.",
                vec![
                    cname("demo.consul.io.", "fakeserver.consul.io."),
                    a("fakeserver.consul.io.", "127.0.0.1"),
                ],
            ),
            // A recursor that changed the case of the names.
            instance(
                1001,
                "insensitive.consul.io.",
                vec![
                    cname("INSENSITIVE.CONSUL.IO.", "Another.Server.Com."),
                    a("another.server.com.", "127.0.0.1"),
                ],
            ),
            // A CNAME loop and a CNAME to nothing must not break anything.
            instance(1001, "deadly.consul.io.", vec![cname("deadly.consul.io.", "deadly.consul.io.")]),
            instance(1001, "nope.consul.io.", vec![cname("nope.consul.io.", "notthere.consul.io.")]),
        ]
    };
    let req = request("redis-cache-redis.service.consul.", RecordType::SRV, Some(4096));
    let sent = check_encode(&req, answer(answers()), Transport::Udp, &ctx());
    assert!(!sent.trimmed());
    assert_eq!(
        shown(&sent.msg.additionals),
        [
            "ip-10-0-1-185.node.dc1.consul. A 10.0.1.185",
            "demo.consul.io. CNAME fakeserver.consul.io.",
            "fakeserver.consul.io. A 127.0.0.1",
            "INSENSITIVE.CONSUL.IO. CNAME Another.Server.Com.",
            "another.server.com. A 127.0.0.1",
            "deadly.consul.io. CNAME deadly.consul.io.",
            "nope.consul.io. CNAME notthere.consul.io.",
        ]
    );
    // Trimmed to one answer, only that answer's records stay.
    let mut c = ctx();
    c.dns_config.udp_answer_limit = 1;
    let req = request("redis-cache-redis.service.consul.", RecordType::SRV, None);
    let sent = check_encode(&req, answer(answers()), Transport::Udp, &c);
    assert!(sent.trimmed());
    assert_eq!(shown(&sent.msg.additionals), ["ip-10-0-1-185.node.dc1.consul. A 10.0.1.185"]);
}

/// Consul: `TestDNS_Compression_trimUDPResponse`. Measuring the 512-byte limit uncompressed
/// must not switch compression off for the reply itself.
#[test]
fn compression_trim_udp_response() {
    let mut c = ctx();
    c.dns_config.disable_compression = false;
    let req = request("redis-cache-redis.service.consul.", RecordType::SRV, None);
    let sent = check_encode(&req, fixture(185, 100, false), Transport::Udp, &c);
    assert!(sent.trimmed());
    assert!(sent.len < uncompressed_len(&sent.msg), "the trimmed reply is not compressed");
    let sent = check_encode(&req, fixture(185, 100, false), Transport::Udp, &ctx());
    assert_eq!(sent.len, uncompressed_len(&sent.msg), "disable_compression is not honoured");
}

// ----- encodeKVasRFC1464, recursorAddr, parseLocality ------------------------------------------

/// Consul: `TestDNS_EncodeKVasRFC1464` (the RFC 1464 examples plus Consul's own).
#[test]
fn encode_kv_as_rfc1464() {
    for (key, value, want) in [
        ("color", "blue", "color=blue"),
        ("equation", "a=4", "equation=a=4"),
        ("a=a", "true", "a`=a=true"),
        ("a\\=a", "false", "a\\`=a=false"),
        ("=", "\\=", "`==\\="),
        ("string", "\"Cat\"", "string=\"Cat\""),
        ("string2", "`abc`", "string2=``abc``"),
        ("novalue", "", "novalue="),
        ("a b", "c d", "a b=c d"),
        ("abc ", "123 ", "abc` =123 "),
        (" abc", " 321", "` abc= 321"),
        ("`a", "b", "``a=b"),
    ] {
        assert_eq!(super::answer::encode_kv(key, value), want, "key {key:?} value {value:?}");
    }
}

/// Consul: `TestDNS_RecursorAddr`: a missing port is 53; IPv6 in brackets; junk is an error.
#[test]
fn recursor_addr() {
    assert_eq!(parse_recursor("8.8.8.8").map(|a| a.to_string()), Ok("8.8.8.8:53".to_owned()));
    assert_eq!(
        parse_recursor("2001:4860:4860::8888").map(|a| a.to_string()),
        Ok("[2001:4860:4860::8888]:53".to_owned())
    );
    for bad in ["1.2.3.4::53", "2001:4860:4860::8888:::53"] {
        assert!(parse_recursor(bad).is_err(), "{bad} must be rejected");
    }
}

/// Consul: `TestDNS_ParseLocality`, through the router: the labels after `service` (spec §1.3).
#[test]
fn parse_locality() {
    let ctx = ctx();
    let routed = |q: &str| route(&name(q), RecordType::A, &ctx).route;
    let dc_of = |q: &str| match routed(q) {
        Route::Service { dc, .. } => Ok(dc),
        other => Err(other),
    };
    // `[.<datacenter>.dc]`, one ambiguous label (a datacenter for services), none.
    assert_eq!(dc_of("web.service.test-dc.dc.consul."), Ok("test-dc".to_owned()));
    assert_eq!(dc_of("web.service.test-peer.consul."), Ok("test-peer".to_owned()));
    assert_eq!(dc_of("web.service.consul."), Ok("dc1".to_owned()));
    // `[.<peer>.peer]` parses (what a peer lookup answers is outside this test).
    assert_ne!(routed("web.service.test-peer.peer.consul."), Route::Invalid);
    // `<port>.port` pairs with `dc`.
    assert_eq!(dc_of("web.service.test-dc.dc.http.port.consul."), Ok("test-dc".to_owned()));
    // 3 labels, 5 labels, `dc` with `peer`, repeated keywords and Enterprise-only keywords: invalid.
    for q in [
        "web.service.test-dc.dc.test-blah.consul.",
        "web.service.a.dc.b.port.c.consul.",
        "web.service.a.dc.b.peer.consul.",
        "web.service.a.dc.b.dc.consul.",
        "web.service.a.ns.consul.",
        "web.service.a.ap.consul.",
        "web.service.a.sg.consul.",
    ] {
        assert_eq!(routed(q), Route::Invalid, "{q}");
    }
}
