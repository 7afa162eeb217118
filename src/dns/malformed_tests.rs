//! Hand-made malformed and unusual requests through the pure `handle` (issue 3, item 6;
//! notes/reliability.md §9 D2). Every packet is written out as bytes, so the test does not
//! depend on an encoder that would refuse to produce it.
//!
//! Each case states the RFC-correct outcome: no reply, or a reply whose ID, QR, opcode, AA,
//! Z and 12-bit RCODE are checked on the raw bytes, plus the presence of the question and of
//! an OPT (version 0, no options copied). After every case a normal query must still be
//! answered, with the same context and snapshot.

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::{DnsContext, Transport, fuzz_logic, handle};
use crate::snapshot::CatalogSnapshot;

// ----- packet building -------------------------------------------------------------------

const ID: u16 = 0x5a17;
const RD: u16 = 0x0100;
const QR: u16 = 0x8000;
const Z: u16 = 0x0040;
const AD: u16 = 0x0020;
const CD: u16 = 0x0010;

const TYPE_A: u16 = 1;
const TYPE_OPT: u16 = 41;
const TYPE_TSIG: u16 = 250;
const CLASS_IN: u16 = 1;

fn opcode(op: u8) -> u16 {
    u16::from(op) << 11
}

fn header(flags: u16, qd: u16, an: u16, ns: u16, ar: u16) -> Vec<u8> {
    [ID, flags, qd, an, ns, ar].iter().flat_map(|v| v.to_be_bytes()).collect()
}

/// Uncompressed wire name from dotted labels (`""` is the root).
fn name(dotted: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in dotted.split('.').filter(|l| !l.is_empty()) {
        out.push(u8::try_from(label.len()).expect("short label"));
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

fn question_of(name: &[u8], qtype: u16, qclass: u16) -> Vec<u8> {
    let mut out = name.to_vec();
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&qclass.to_be_bytes());
    out
}

/// `web1.node.consul. A IN`: a name the fixture answers with NOERROR.
fn question() -> Vec<u8> {
    question_of(&name("web1.node.consul."), TYPE_A, CLASS_IN)
}

/// An OPT RR with a root owner (`owner` overrides it).
fn opt_with(owner: &[u8], payload: u16, version: u8, flags: u16, options: &[(u16, &[u8])]) -> Vec<u8> {
    let mut rdata = Vec::new();
    for (code, data) in options {
        rdata.extend_from_slice(&code.to_be_bytes());
        rdata.extend_from_slice(&u16::try_from(data.len()).expect("short option").to_be_bytes());
        rdata.extend_from_slice(data);
    }
    let mut out = owner.to_vec();
    out.extend_from_slice(&TYPE_OPT.to_be_bytes());
    out.extend_from_slice(&payload.to_be_bytes());
    out.extend_from_slice(&[0, version]);
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&u16::try_from(rdata.len()).expect("short rdata").to_be_bytes());
    out.extend_from_slice(&rdata);
    out
}

fn opt(version: u8, options: &[(u16, &[u8])]) -> Vec<u8> {
    opt_with(&[0], 1232, version, 0, options)
}

/// A plain RR: `owner type IN ttl 0 rdata`.
fn rr(owner: &[u8], rtype: u16, rdata: &[u8]) -> Vec<u8> {
    let mut out = owner.to_vec();
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&u16::try_from(rdata.len()).expect("short rdata").to_be_bytes());
    out.extend_from_slice(rdata);
    out
}

/// A TSIG RR (RFC 8945 §4.2) for `key.example.` with hmac-sha256 and this MAC.
fn tsig(mac: &[u8]) -> Vec<u8> {
    let mut rdata = name("hmac-sha256.");
    rdata.extend_from_slice(&[0, 0, 0x60, 0, 0, 0]); // time signed
    rdata.extend_from_slice(&300u16.to_be_bytes()); // fudge
    rdata.extend_from_slice(&u16::try_from(mac.len()).expect("short MAC").to_be_bytes());
    rdata.extend_from_slice(mac);
    rdata.extend_from_slice(&ID.to_be_bytes()); // original ID
    rdata.extend_from_slice(&[0, 0, 0, 0]); // error, other len
    let mut out = rr(&name("key.example."), TYPE_TSIG, &rdata);
    // CLASS ANY and TTL 0 (RFC 8945 §4.2).
    let class_at = name("key.example.").len() + 2;
    out[class_at..class_at + 2].copy_from_slice(&255u16.to_be_bytes());
    out
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// A standard query: header, `question()`, then `additional` records (ARCOUNT counts them).
fn query_with(flags: u16, additional: &[Vec<u8>]) -> Vec<u8> {
    let ar = u16::try_from(additional.len()).expect("few records");
    let mut out = header(flags, 1, 0, 0, ar);
    out.extend(question());
    for r in additional {
        out.extend_from_slice(r);
    }
    out
}

// ----- expectations ----------------------------------------------------------------------

/// What the agent must do with one request.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// No reply at all.
    Drop,
    /// A reply with this 12-bit RCODE.
    Reply {
        rcode: u16,
        /// The question echoed.
        question: bool,
        /// An OPT in the reply.
        opt: bool,
        /// Some answer records.
        answers: bool,
        /// AA set.
        aa: bool,
    },
}

const NOERROR: u16 = 0;
const FORMERR: u16 = 1;
const NXDOMAIN: u16 = 3;
const NOTIMP: u16 = 4;
const REFUSED: u16 = 5;
const BADVERS: u16 = 16;

/// An error reply: not authoritative, no answers.
fn error(rcode: u16, question: bool, opt: bool) -> Want {
    Want::Reply { rcode, question, opt, answers: false, aa: false }
}

/// The normal authoritative answer for `question()`.
fn answered(opt: bool) -> Want {
    Want::Reply { rcode: NOERROR, question: true, opt, answers: true, aa: true }
}

/// NXDOMAIN for a name inside the domain: authoritative, question echoed.
fn nxdomain() -> Want {
    Want::Reply { rcode: NXDOMAIN, question: true, opt: false, answers: false, aa: true }
}

fn fixture() -> (DnsContext, &'static CatalogSnapshot) {
    let (ctx, snap) = fuzz_logic::fixture();
    let mut ctx = ctx.clone();
    // No recursors: names outside the domain get REFUSED, and RA stays clear.
    ctx.recursors.clear();
    (ctx, snap.as_ref())
}

fn run(bytes: &[u8], transport: Transport) -> Option<Vec<u8>> {
    let (ctx, snap) = fixture();
    handle(bytes, transport, &ctx, snap, &mut StdRng::seed_from_u64(11))
}

/// Checks one case on both transports, then that a normal query is still answered.
fn check(what: &str, bytes: &[u8], want: Want) {
    for transport in [Transport::Udp, Transport::Tcp] {
        let what = format!("{what} ({transport:?})");
        let reply = run(bytes, transport);
        match want {
            Want::Drop => assert_eq!(reply, None, "{what}: expected no reply"),
            Want::Reply { rcode, question, opt, answers, aa } => {
                let raw = reply.unwrap_or_else(|| panic!("{what}: expected a reply, got none"));
                check_reply(&what, bytes, &raw, rcode, aa);
                let msg = Message::from_vec(&raw).unwrap_or_else(|e| panic!("{what}: undecodable: {e}"));
                assert_eq!(msg.queries.len(), usize::from(question), "{what}: question echoed");
                assert_eq!(!msg.answers.is_empty(), answers, "{what}: answers {:?}", msg.answers);
                match (&msg.edns, opt) {
                    (Some(e), true) => {
                        assert_eq!(e.version(), 0, "{what}: reply EDNS version");
                        assert!(e.options().as_ref().is_empty(), "{what}: no options copied");
                        assert!(!e.flags().dnssec_ok, "{what}: DO not set (no DNSSEC)");
                    }
                    (None, false) => {}
                    (got, _) => panic!("{what}: OPT expected {opt}, got {got:?}"),
                }
            }
        }
    }
    let canary = query_with(RD, &[]);
    let raw = run(&canary, Transport::Udp).unwrap_or_else(|| panic!("after {what}: canary unanswered"));
    check_reply(&format!("canary after {what}"), &canary, &raw, NOERROR, true);
}

/// Header checks on the raw reply: ID and opcode echoed, QR=1, Z=0, AA, RCODE (the low four
/// bits from the header, the high eight from the OPT's extended RCODE).
fn check_reply(what: &str, request: &[u8], raw: &[u8], rcode: u16, aa: bool) {
    assert!(raw.len() >= 12, "{what}: short reply {raw:?}");
    assert_eq!(raw[..2], request[..2], "{what}: ID echoed");
    assert_eq!(raw[2] & 0x80, 0x80, "{what}: QR=1");
    assert_eq!(raw[2] & 0x78, request[2] & 0x78, "{what}: opcode echoed");
    assert_eq!(raw[2] & 0x04 != 0, aa, "{what}: AA");
    assert_eq!(raw[3] & 0x40, 0, "{what}: Z clear");
    let msg = Message::from_vec(raw).unwrap_or_else(|e| panic!("{what}: undecodable: {e}"));
    let high = msg.edns.as_ref().map_or(0, |e| u16::from(e.rcode_high()));
    assert_eq!(high << 4 | u16::from(raw[3] & 0x0f), rcode, "{what}: RCODE");
}

// ----- cases -----------------------------------------------------------------------------

#[test]
fn too_short_for_a_header_is_dropped() {
    check("empty", &[], Want::Drop);
    check("1 byte", &[0x12], Want::Drop);
    check("11 bytes", &header(RD, 1, 0, 0, 0)[..11], Want::Drop);
}

#[test]
fn responses_are_dropped() {
    check("QR=1", &query_with(QR | RD, &[]), Want::Drop);
    check("QR=1 header only", &header(QR, 0, 0, 0, 0), Want::Drop);
    check("QR=1 NOTIFY", &query_with(QR | opcode(4), &[]), Want::Drop);
    check("QR=1 garbage body", &cat(&[&header(QR, 1, 0, 0, 0), &[0xc0, 0x0c]]), Want::Drop);
}

#[test]
fn opcodes_other_than_query_get_notimp_with_the_opcode_echoed() {
    // IQUERY (obsolete), STATUS, unassigned 3, NOTIFY, UPDATE, DSO (6), unassigned 7..15.
    for op in 1..=15u8 {
        check(&format!("opcode {op}"), &query_with(opcode(op) | RD, &[]), error(NOTIMP, false, false));
        // RFC 8906 sends the unknown opcode with no question (`dig +header-only`).
        check(
            &format!("opcode {op} header only"),
            &header(opcode(op), 0, 0, 0, 0),
            error(NOTIMP, false, false),
        );
        check(
            &format!("opcode {op} garbage body"),
            &cat(&[&header(opcode(op), 9, 9, 9, 9), &[0xc0, 0x0c, 0xff]]),
            error(NOTIMP, false, false),
        );
    }
}

#[test]
fn header_only_and_bad_question_counts_are_formerr() {
    check("QDCOUNT 0", &header(RD, 0, 0, 0, 0), error(FORMERR, false, false));
    check("QDCOUNT 0 with OPT", &cat(&[&header(RD, 0, 0, 0, 1), &opt(0, &[])]), error(FORMERR, false, true));
    check(
        "QDCOUNT 2",
        &cat(&[&header(RD, 2, 0, 0, 0), &question(), &question()]),
        error(FORMERR, false, false),
    );
    check(
        "QDCOUNT 2 with OPT",
        &cat(&[&header(RD, 2, 0, 0, 1), &question(), &question(), &opt(0, &[])]),
        error(FORMERR, false, true),
    );
    check(
        "QDCOUNT 65535, one question",
        &cat(&[&header(RD, 65535, 0, 0, 0), &question()]),
        error(FORMERR, false, false),
    );
    check("QDCOUNT 1, no question", &header(RD, 1, 0, 0, 0), error(FORMERR, false, false));
}

#[test]
fn records_outside_additional_and_forged_counts_are_formerr() {
    let a = rr(&name("x.consul."), TYPE_A, &[10, 0, 0, 1]);
    check("ANCOUNT 1", &cat(&[&header(RD, 1, 1, 0, 0), &question(), &a]), error(FORMERR, false, false));
    check("NSCOUNT 1", &cat(&[&header(RD, 1, 0, 1, 0), &question(), &a]), error(FORMERR, false, false));
    // Counts far beyond the data: FORMERR, and nothing sized from the count (parse.rs).
    check(
        "ANCOUNT 65535, empty",
        &cat(&[&header(RD, 1, 65535, 0, 0), &question()]),
        error(FORMERR, false, false),
    );
    check(
        "NSCOUNT 65535, empty",
        &cat(&[&header(RD, 1, 0, 65535, 0), &question()]),
        error(FORMERR, false, false),
    );
    check(
        "ARCOUNT 65535, empty",
        &cat(&[&header(RD, 1, 0, 0, 65535), &question()]),
        error(FORMERR, false, false),
    );
    check(
        "ARCOUNT 65535, one OPT",
        &cat(&[&header(RD, 1, 0, 0, 65535), &question(), &opt(0, &[])]),
        error(FORMERR, false, true),
    );
    // Three additional records (miekg/dns accepts at most OPT + TSIG).
    check("ARCOUNT 3", &query_with(RD, &[opt(0, &[]), a.clone(), a.clone()]), error(FORMERR, false, true));
}

#[test]
fn opt_problems_are_formerr_with_an_opt() {
    check("two OPTs", &query_with(RD, &[opt(0, &[]), opt(0, &[])]), error(FORMERR, false, true));
    let mut in_answer = header(RD, 1, 1, 0, 0);
    in_answer.extend(question());
    in_answer.extend(opt(0, &[]));
    check("OPT in answer", &in_answer, error(FORMERR, false, true));
    let mut in_authority = header(RD, 1, 0, 1, 0);
    in_authority.extend(question());
    in_authority.extend(opt(0, &[]));
    check("OPT in authority", &in_authority, error(FORMERR, false, true));
    let owned = opt_with(&name("evil.consul."), 1232, 0, 0, &[]);
    check("OPT owner not root", &query_with(RD, &[owned]), error(FORMERR, false, true));
    let mut cut = opt(0, &[(100, b"abcd")]);
    cut.truncate(cut.len() - 2);
    check("OPT RDATA cut short", &query_with(RD, &[cut]), error(FORMERR, false, true));
    // ECS with family 3 (RFC 7871 §6: FORMERR for an unknown FAMILY).
    check("ECS family 3", &query_with(RD, &[opt(0, &[(8, &[0, 3, 0, 0])])]), error(FORMERR, false, true));
    // ECS with a source prefix longer than the address (/40 for IPv4).
    check(
        "ECS /40 over IPv4",
        &query_with(RD, &[opt(0, &[(8, &[0, 1, 40, 0, 1, 2, 3, 4, 5])])]),
        error(FORMERR, false, true),
    );
}

#[test]
fn edns_version_above_zero_is_badvers_with_a_version_0_opt() {
    for version in [1u8, 2, 255] {
        let q = query_with(RD, &[opt(version, &[])]);
        check(&format!("EDNS version {version}"), &q, error(BADVERS, true, true));
    }
    // Unknown options and flags in a version-1 query change nothing (RFC 8906 §8).
    let q = query_with(RD, &[opt_with(&[0], 1232, 1, 0xc000, &[(100, b"xyz")])]);
    check("EDNS version 1, DO, MBZ flag and option 100", &q, error(BADVERS, true, true));
    // The high RCODE bits travel in the OPT: BADVERS is 0 in the header, 1 in the OPT.
    let raw = run(&query_with(RD, &[opt(1, &[])]), Transport::Udp).expect("a reply");
    assert_eq!(raw[3] & 0x0f, 0, "header RCODE bits of BADVERS");
    let msg = Message::from_vec(&raw).expect("decodes");
    assert_eq!(msg.edns.as_ref().map(|e| (e.rcode_high(), e.version())), Some((1, 0)));
    assert_eq!(u16::from(msg.metadata.response_code), 16);
}

#[test]
fn unknown_edns_options_and_flags_are_ignored() {
    let q = query_with(RD, &[opt(0, &[(100, b"hello"), (65001, &[]), (0, &[1])])]);
    check("unknown EDNS options", &q, answered(true));
    let q = query_with(RD, &[opt_with(&[0], 1232, 0, 0x4000 | 0x0001, &[])]);
    check("unknown EDNS flags", &q, answered(true));
    let q = query_with(RD, &[opt_with(&[0], 1232, 0, 0x8000, &[])]);
    check("DO=1 without DNSSEC", &q, answered(true));
    let cookie = [7u8; 8];
    let q = query_with(RD, &[opt(0, &[(10, &cookie)])]);
    check("client COOKIE", &q, answered(true));
    // A payload under 512 is treated as 512 (RFC 6891 §6.2.5).
    let q = query_with(RD, &[opt_with(&[0], 100, 0, 0, &[])]);
    check("EDNS payload 100", &q, answered(true));
    let q = query_with(RD, &[opt_with(&[0], 0, 0, 0, &[])]);
    check("EDNS payload 0", &q, answered(true));
    // An empty OPT RDATA and an RR-count-only OPT (RDLENGTH 0).
    check("OPT without options", &query_with(RD, &[opt(0, &[])]), answered(true));
}

#[test]
fn reserved_header_bits_are_ignored_and_not_copied() {
    check("Z=1", &query_with(RD | Z, &[]), answered(false));
    check("Z=1 with EDNS", &query_with(RD | Z, &[opt(0, &[])]), answered(true));
    check("AD=1", &query_with(RD | AD, &[]), answered(false));
    check("CD=1", &query_with(RD | CD, &[]), answered(false));
    check("RD=0", &query_with(0, &[]), answered(false));
    // AA, TC, RA and an RCODE in a query mean nothing either.
    check(
        "AA TC RA RCODE=5 in a query",
        &query_with(RD | 0x0400 | 0x0200 | 0x0080 | 5, &[]),
        answered(false),
    );
    let raw = run(&query_with(RD | Z | AD, &[]), Transport::Udp).expect("a reply");
    assert_eq!(raw[3] & 0x60, 0, "Z and AD clear in the reply");
}

#[test]
fn other_records_in_additional_are_ignored() {
    let a = rr(&name("x.consul."), TYPE_A, &[10, 0, 0, 1]);
    check("A in additional", &query_with(RD, &[a]), answered(false));
    // We do not implement TSIG: a well-formed TSIG RR is ignored, as Consul (miekg/dns without
    // secrets) does; one that does not decode is FORMERR (RFC 8945 §5.2).
    check("well-formed TSIG", &query_with(RD, &[opt(0, &[]), tsig(&[9; 32])]), answered(true));
    let garbage = rr(&name("key.example."), TYPE_TSIG, &[1, 2, 3, 4, 5, 6, 7]);
    check("garbage TSIG", &query_with(RD, &[opt(0, &[]), garbage.clone()]), error(FORMERR, false, true));
    check("garbage TSIG before OPT", &query_with(RD, &[garbage, opt(0, &[])]), error(FORMERR, false, false));
    let bad_a = rr(&name("x.consul."), TYPE_A, &[10, 0, 0]);
    check("A with a 3-byte RDATA", &query_with(RD, &[bad_a]), error(FORMERR, false, false));
}

#[test]
fn question_classes() {
    let q =
        |class: u16| cat(&[&header(RD, 1, 0, 0, 0), &question_of(&name("web1.node.consul."), TYPE_A, class)]);
    // ANY (255) matches every class, and IN is the only one we hold (RFC 1035 §3.2.5).
    check("QCLASS ANY", &q(255), answered(false));
    // CH, HS, NONE, 0 and an unassigned class: no zone of ours is in them -> REFUSED.
    for class in [3u16, 4, 254, 0, 1234, 65535] {
        check(&format!("QCLASS {class}"), &q(class), error(REFUSED, true, false));
    }
    // The usual CHAOS probe, with EDNS: REFUSED with the question and an OPT.
    let chaos = cat(&[&header(RD, 1, 0, 0, 1), &question_of(&name("version.bind."), 16, 3), &opt(0, &[])]);
    check("version.bind CH TXT", &chaos, error(REFUSED, true, true));
    // EDNS version is checked before the class (BADVERS first, RFC 6891 §6.1.3).
    let both = cat(&[&header(RD, 1, 0, 0, 1), &question_of(&name("version.bind."), 16, 3), &opt(1, &[])]);
    check("CH with EDNS version 1", &both, error(BADVERS, true, true));
}

#[test]
fn compression_pointer_loops_and_bad_pointers_are_formerr() {
    let with_qname = |qname: &[u8]| cat(&[&header(RD, 1, 0, 0, 0), qname, &[0, 1, 0, 1]]);
    // The question starts at offset 12.
    check("pointer to itself", &with_qname(&[0xc0, 12]), error(FORMERR, false, false));
    check("label then pointer to itself", &with_qname(&[1, b'a', 0xc0, 12]), error(FORMERR, false, false));
    // Two-pointer cycle: 12 -> 14 -> 12.
    check("two-pointer cycle", &with_qname(&[0xc0, 14, 0xc0, 12]), error(FORMERR, false, false));
    check("forward pointer", &with_qname(&[0xc0, 16, 0, 0, 1, b'a', 0]), error(FORMERR, false, false));
    check("pointer past the end", &with_qname(&[0xc0, 0xff]), error(FORMERR, false, false));
    check("pointer 0x3fff", &with_qname(&[0xff, 0xff]), error(FORMERR, false, false));
    check("pointer cut in half", &cat(&[&header(RD, 1, 0, 0, 0), &[0xc0]]), error(FORMERR, false, false));
    // A cycle in an additional record's owner (the second RR points at itself).
    let own = rr(&name("a.consul."), TYPE_A, &[10, 0, 0, 1]);
    let at = 12 + question().len() + own.len();
    let looped = rr(&[0xc0, u8::try_from(at).expect("small offset")], TYPE_A, &[10, 0, 0, 2]);
    check("pointer loop in additional", &query_with(RD, &[own, looped]), error(FORMERR, false, false));
    // A pointer back into the header is "prior" and legal; whatever it spells must not crash.
    let into_header = with_qname(&[0xc0, 4]);
    assert!(run(&into_header, Transport::Udp).is_some(), "pointer into the header: some reply");
}

#[test]
fn compression_pointers_to_earlier_names_are_followed() {
    // The OPT-less question "web1.node.consul." then an additional A whose owner points at it.
    let back = rr(&[0xc0, 12], TYPE_A, &[10, 0, 0, 1]);
    check("backward pointer in additional", &query_with(RD, &[back]), answered(false));
}

#[test]
fn label_and_name_length_limits() {
    let with_qname = |qname: &[u8]| cat(&[&header(RD, 1, 0, 0, 0), qname, &[0, 1, 0, 1]]);
    // Length octets 0x40..0xbf are the reserved label types 01 and 10: a "64-byte label".
    let mut long_label = vec![0x40];
    long_label.extend([b'a'; 64]);
    long_label.extend(name("consul."));
    check("label of 64", &with_qname(&long_label), error(FORMERR, false, false));
    check("label type 10", &with_qname(&[0x80, b'a', 0]), error(FORMERR, false, false));
    let mut max_label = vec![63];
    max_label.extend([b'a'; 63]);
    max_label.extend(name("consul."));
    check("label of 63", &with_qname(&max_label), nxdomain());

    // 127 one-letter labels + root = 255 octets: the longest legal name (RFC 1035 §3.1).
    let dotted = |labels: usize, tail: &str| format!("{}{tail}", "a.".repeat(labels));
    let n255 = name(&dotted(127, ""));
    assert_eq!(n255.len(), 255);
    check("name of 255 octets", &with_qname(&n255), error(REFUSED, true, false));
    let n256 = name(&format!("bb.{}", dotted(126, "")));
    assert_eq!(n256.len(), 256);
    check("name of 256 octets", &with_qname(&n256), error(FORMERR, false, false));
    check("128 labels", &with_qname(&name(&dotted(128, ""))), error(FORMERR, false, false));
    // The same limit through compression: an owner that reaches 256 octets via a pointer to
    // the question name (250 octets of labels + 6).
    let mut prefix = Vec::new();
    for _ in 0..4 {
        prefix.push(61);
        prefix.extend([b'x'; 61]);
    }
    prefix.extend([1, b'y']);
    let qname = name("a.bc.");
    assert_eq!(prefix.len() + qname.len(), 256);
    prefix.extend([0xc0, 12]);
    let grown =
        cat(&[&header(RD, 1, 0, 0, 1), &qname, &[0, 1, 0, 1], &rr(&prefix, TYPE_A, &[1, 2, 3, 4])[..]]);
    check("name of 256 octets via a pointer", &grown, error(FORMERR, false, false));
}

#[test]
fn truncated_questions_are_formerr() {
    let q = question();
    for cut in [1, 5, q.len() - 4, q.len() - 1] {
        let bytes = cat(&[&header(RD, 1, 0, 0, 0), &q[..cut]]);
        check(&format!("question cut at {cut}"), &bytes, error(FORMERR, false, false));
    }
    // A name without its terminating root label.
    check(
        "name without root",
        &cat(&[&header(RD, 1, 0, 0, 0), &[3, b'w', b'e', b'b']]),
        error(FORMERR, false, false),
    );
}

#[test]
fn trailing_bytes_after_the_last_record_are_ignored() {
    check("trailing garbage", &cat(&[&query_with(RD, &[]), &[0xde, 0xad, 0xbe, 0xef]]), answered(false));
}

#[test]
fn oversized_messages() {
    // A 65535-byte TCP frame: a valid query padded with zeros (ignored trailing bytes).
    let mut big = query_with(RD, &[]);
    big.resize(65535, 0);
    check("65535-byte query", &big, answered(false));
    // 65535 bytes of questions with QDCOUNT 65535: FORMERR, quickly.
    let mut many = header(RD, 65535, 0, 0, 0);
    while many.len() + 5 <= 65535 {
        many.extend(question_of(&[0], TYPE_A, CLASS_IN));
    }
    check("65535 root questions", &many, error(FORMERR, false, false));
    // An OPT whose RDATA is 60 000 bytes of one unknown option.
    let huge_option = vec![0u8; 60_000];
    check("60 000-byte EDNS option", &query_with(RD, &[opt(0, &[(65000, &huge_option)])]), answered(true));
}

#[test]
fn the_reply_record_types_match_the_question() {
    // Sanity of the fixture the cases rely on: `question()` is a NOERROR A answer.
    let raw = run(&query_with(RD, &[]), Transport::Udp).expect("a reply");
    let msg = Message::from_vec(&raw).expect("decodes");
    assert_eq!(msg.metadata.response_code, ResponseCode::NoError);
    assert!(msg.answers.iter().all(|r| matches!(r.data, RData::A(_))), "{:?}", msg.answers);
    assert_eq!(msg.queries.first().map(|q| q.query_type()), Some(RecordType::A));
}

// ----- TCP bounds (listener.rs), with shrunk timeouts -------------------------------------

mod tcp {
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpStream, UdpSocket};
    use tokio::time::{Instant, timeout};
    use tokio_util::sync::CancellationToken;

    use super::{RD, fixture, query_with};
    use crate::dns::listener::{TcpLimits, frame, serve_with};

    const LIMITS: TcpLimits = TcpLimits {
        first_message: Duration::from_millis(400),
        idle: Duration::from_millis(800),
        write: Duration::from_millis(400),
        max_connections: 3,
        max_queries: 4,
    };
    /// Generous bound for "the server acted on its timer", on a loaded 2-core box.
    const SLACK: Duration = Duration::from_secs(3);

    struct Server {
        udp: SocketAddr,
        tcp: SocketAddr,
        stop: CancellationToken,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.stop.cancel();
        }
    }

    async fn start(limits: TcpLimits) -> Server {
        let udp = crate::dns::bind_udp("127.0.0.1:0".parse().expect("addr"), 1).expect("bind udp");
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind tcp");
        let (u, t) = (udp[0].local_addr().expect("addr"), tcp.local_addr().expect("addr"));
        let (ctx, snap) = fixture();
        let ctx = Arc::new(arc_swap::ArcSwap::from_pointee(ctx));
        let snaps = Arc::new(crate::snapshot::SnapshotHandle::new(snap.clone()));
        let stop = CancellationToken::new();
        tokio::spawn(serve_with(udp, tcp, ctx, snaps, None, stop.clone(), limits));
        Server { udp: u, tcp: t, stop }
    }

    /// A framed query for `question()` with this ID.
    fn framed(id: u16) -> Vec<u8> {
        let mut q = query_with(RD, &[]);
        q[..2].copy_from_slice(&id.to_be_bytes());
        frame(&q).expect("small")
    }

    /// Reads one framed reply and returns its ID; `None` on EOF or reset.
    async fn read_reply(s: &mut TcpStream) -> Option<u16> {
        let mut len = [0u8; 2];
        timeout(SLACK, s.read_exact(&mut len)).await.expect("reply or close in time").ok()?;
        let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut body).await.ok()?;
        Some(u16::from_be_bytes([body[0], body[1]]))
    }

    /// Waits for the server to close `s`; returns how long that took.
    async fn closed_after(s: &mut TcpStream) -> Duration {
        let start = Instant::now();
        let mut sink = [0u8; 64];
        match timeout(SLACK + SLACK, s.read(&mut sink)).await.expect("closed in time") {
            Ok(0) | Err(_) => start.elapsed(),
            Ok(n) => panic!("unexpected {n} bytes from the server"),
        }
    }

    async fn udp_answers(server: &Server) {
        let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        sock.send_to(&query_with(RD, &[]), server.udp).await.expect("send");
        let mut buf = [0u8; 1500];
        let n = timeout(SLACK, sock.recv(&mut buf)).await.expect("UDP reply in time").expect("recv");
        assert!(n > 12 && buf[3] & 0x0f == 0, "UDP NOERROR");
    }

    async fn tcp_answers(server: &Server) {
        let mut s = TcpStream::connect(server.tcp).await.expect("connect");
        s.write_all(&framed(77)).await.expect("write");
        assert_eq!(read_reply(&mut s).await, Some(77), "TCP answered");
    }

    #[tokio::test]
    async fn pipelined_queries_are_answered_in_order() {
        let server = start(LIMITS).await;
        let mut s = TcpStream::connect(server.tcp).await.expect("connect");
        let burst: Vec<u8> = [1u16, 2, 3].iter().flat_map(|id| framed(*id)).collect();
        s.write_all(&burst).await.expect("write");
        for id in [1, 2, 3] {
            assert_eq!(read_reply(&mut s).await, Some(id));
        }
        // Split across writes, one byte at a time, inside the deadline.
        for b in framed(4) {
            s.write_all(&[b]).await.expect("write");
        }
        assert_eq!(read_reply(&mut s).await, Some(4));
    }

    #[tokio::test]
    async fn a_connection_is_closed_after_max_queries() {
        let server = start(LIMITS).await;
        let mut s = TcpStream::connect(server.tcp).await.expect("connect");
        let burst: Vec<u8> = (1..=4u16).flat_map(framed).collect();
        s.write_all(&burst).await.expect("write");
        for id in 1..=4 {
            assert_eq!(read_reply(&mut s).await, Some(id));
        }
        let _ = s.write_all(&framed(5)).await;
        assert_eq!(read_reply(&mut s).await, None, "no fifth reply");
        tcp_answers(&server).await;
    }

    #[tokio::test]
    async fn a_partial_frame_is_closed_by_the_first_message_deadline() {
        let server = start(LIMITS).await;
        let mut held = TcpStream::connect(server.tcp).await.expect("connect");
        held.write_all(&framed(9)[..7]).await.expect("write");
        // Others are served meanwhile.
        udp_answers(&server).await;
        tcp_answers(&server).await;
        let took = closed_after(&mut held).await;
        assert!(took < LIMITS.first_message + SLACK, "closed after {took:?}");
        // Trickling bytes does not extend the deadline: it covers the whole message, and this
        // one takes about 2 s to send.
        let mut slow = TcpStream::connect(server.tcp).await.expect("connect");
        for b in framed(10) {
            if slow.write_all(&[b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(read_reply(&mut slow).await, None, "a frame slower than the deadline is not answered");
        tcp_answers(&server).await;
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed_after_the_idle_timeout() {
        let server = start(LIMITS).await;
        let mut s = TcpStream::connect(server.tcp).await.expect("connect");
        s.write_all(&framed(1)).await.expect("write");
        assert_eq!(read_reply(&mut s).await, Some(1));
        // Still open within the idle timeout (the first-message deadline no longer applies).
        tokio::time::sleep(LIMITS.first_message).await;
        s.write_all(&framed(2)).await.expect("write");
        assert_eq!(read_reply(&mut s).await, Some(2));
        let took = closed_after(&mut s).await;
        assert!(took < LIMITS.idle + SLACK, "closed after {took:?}");
    }

    #[tokio::test]
    async fn connections_over_the_cap_are_closed_at_once() {
        let limits = TcpLimits { idle: Duration::from_secs(30), ..LIMITS };
        let server = start(limits).await;
        let mut held = Vec::new();
        for id in 0..3u16 {
            let mut s = TcpStream::connect(server.tcp).await.expect("connect");
            s.write_all(&framed(id)).await.expect("write");
            assert_eq!(read_reply(&mut s).await, Some(id));
            held.push(s);
        }
        let mut extra = TcpStream::connect(server.tcp).await.expect("the kernel accepts");
        let _ = extra.write_all(&framed(99)).await;
        assert_eq!(read_reply(&mut extra).await, None, "over the cap: closed without a reply");
        udp_answers(&server).await;
        // A slot frees up when a client leaves.
        drop(held.pop());
        let deadline = Instant::now() + SLACK;
        loop {
            let mut s = TcpStream::connect(server.tcp).await.expect("connect");
            let _ = s.write_all(&framed(100)).await;
            if read_reply(&mut s).await == Some(100) {
                break;
            }
            assert!(Instant::now() < deadline, "a freed slot is reused");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn bad_frames_close_only_their_connection() {
        let server = start(LIMITS).await;
        // Length 0 and 1: no DNS header, no reply, connection closed.
        for prefix in [&[0u8, 0][..], &[0, 1, 0xab]] {
            let mut s = TcpStream::connect(server.tcp).await.expect("connect");
            s.write_all(prefix).await.expect("write");
            assert_eq!(read_reply(&mut s).await, None);
        }
        // A response (QR=1) is not answered either.
        let mut s = TcpStream::connect(server.tcp).await.expect("connect");
        let mut resp = framed(5);
        resp[4] |= 0x80;
        s.write_all(&resp).await.expect("write");
        assert_eq!(read_reply(&mut s).await, None);
        // Length larger than the data, then the client closes its side.
        let mut s = TcpStream::connect(server.tcp).await.expect("connect");
        s.write_all(&[0xff, 0xff, 1, 2, 3]).await.expect("write");
        s.shutdown().await.expect("half-close");
        assert_eq!(read_reply(&mut s).await, None);
        // The largest frame: a query padded to 65535 bytes is answered.
        let mut s = TcpStream::connect(server.tcp).await.expect("connect");
        let mut q = query_with(RD, &[]);
        q[..2].copy_from_slice(&4242u16.to_be_bytes());
        q.resize(65535, 0);
        s.write_all(&frame(&q).expect("fits")).await.expect("write");
        assert_eq!(read_reply(&mut s).await, Some(4242));
        tcp_answers(&server).await;
        udp_answers(&server).await;
    }
}
