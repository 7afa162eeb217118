//! Static zones: parser cases (with file:line errors), lookup semantics through
//! `check_answer` rendered dig-style, per-file reloads, the DNS-path hook, and proptests.

use std::path::Path;

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use proptest::prelude::*;

use super::*;

const EXAMPLE: &[u8] = include_bytes!("../../zones/example.zone");
const REVERSE: &[u8] = include_bytes!("../../zones/10.in-addr.arpa.zone");

/// A zone header for small inline zones: `$ORIGIN t.` with SOA and NS.
const HEAD: &str = "$ORIGIN t.\n$TTL 60\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 10.9.9.9\n";

/// `name ttl TYPE rdata`; TXT strings are quoted one by one (hickory's Display joins them).
fn render(records: &[Record]) -> Vec<String> {
    let data = |r: &Record| match &r.data {
        RData::TXT(txt) => txt
            .txt_data
            .iter()
            .map(|s| format!("{:?}", String::from_utf8_lossy(s)))
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    };
    records.iter().map(|r| format!("{} {} {} {}", r.name, r.ttl, r.record_type(), data(r))).collect()
}

/// Parses `text` as file `file` and returns its records dig-style, one per line, or the error.
fn parse_lines(file: &str, text: &str) -> String {
    match Zone::parse(Path::new(file), text.as_bytes()) {
        Ok(zone) => {
            let mut lines: Vec<String> =
                zone.nodes.values().flat_map(|n| &n.rrsets).flat_map(|(_, rs)| render(rs)).collect();
            lines.sort();
            lines.join("\n")
        }
        Err(e) => e.to_string(),
    }
}

/// Parses `text` as `t.zone` and compares the sorted records (or the error) with `expect`.
fn check_parse(text: &str, expect: &str) {
    let got = parse_lines("t.zone", text);
    let want: Vec<&str> = expect.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    assert_eq!(got, want.join("\n"), "\n--- zone ---\n{text}");
}

/// The error for `text` parsed as `t.zone`.
fn parse_error(text: &str) -> String {
    match Zone::parse(Path::new("t.zone"), text.as_bytes()) {
        Ok(_) => panic!("parsed:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn zones(files: &[(&str, &[u8])]) -> ZoneSet {
    ZoneSet::from_zones(files.iter().map(|(f, t)| Zone::parse(Path::new(f), t).unwrap())).unwrap()
}

fn example() -> ZoneSet {
    zones(&[("zones/example.zone", EXAMPLE), ("zones/10.in-addr.arpa.zone", REVERSE)])
}

/// A zone answer as text: a header line, then `section: record` lines.
fn show(ans: Option<ZoneAnswer>) -> String {
    let Some(a) = ans else { return "not in a zone".into() };
    let rcode = format!("{:?}", a.rcode).to_uppercase();
    let mut out = vec![format!("{rcode}{}", if a.authoritative { " aa" } else { "" })];
    for (section, records) in
        [("answer", &a.answers), ("authority", &a.authorities), ("additional", &a.additionals)]
    {
        out.extend(render(records).into_iter().map(|r| format!("{section}: {r}")));
    }
    out.join("\n")
}

fn check_answer(set: &ZoneSet, qname: &str, qtype: RecordType, expect: &str) {
    let name = Name::from_ascii(qname).unwrap();
    let got = show(set.answer(&name, qtype));
    let want: Vec<&str> = expect.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    assert_eq!(got, want.join("\n"), "\n{qname} {qtype}");
}

// ----- parser ---------------------------------------------------------------------------

#[test]
fn example_zones_parse_with_origin_from_origin_directive_or_file_name() {
    let set = example();
    let origins: Vec<String> = set.zones().map(|z| z.origin().to_ascii()).collect();
    assert_eq!(origins, ["10.in-addr.arpa.", "example.com."]);
    let ex = set.zones().find(|z| z.origin().to_ascii() == "example.com.").unwrap();
    assert_eq!(ex.record_count(), 29);
}

#[test]
fn relative_names_at_sign_owner_inheritance_and_ttl_defaults() {
    check_parse(
        "$ORIGIN Example.\n\
         @ 100 IN SOA ns.example. host\\.master 1 2 3 4 5\n\
         \tNS ns           ; inherits @ and TTL 100 (last explicit, no $TTL yet)\n\
         ns IN 7 A 10.0.0.1 ; class before TTL\n\
         $TTL 1h\n\
         www A 10.0.0.2\n\
         $ORIGIN sub.example.\n\
         deep CNAME @\n",
        "Example. 100 NS ns.Example.
         Example. 100 SOA ns.example. host\\.master.Example. 1 2 3 4 5
         deep.sub.example. 3600 CNAME sub.example.
         ns.Example. 7 A 10.0.0.1
         www.Example. 3600 A 10.0.0.2",
    );
}

#[test]
fn soa_minimum_is_the_default_ttl_without_ttl_directive_or_explicit_ttl() {
    check_parse(
        "@ SOA ns hm 1 2 3 4 55\n NS ns\nns A 10.0.0.1\n",
        "ns.t. 55 A 10.0.0.1
         t. 55 NS ns.t.
         t. 55 SOA ns.t. hm.t. 1 2 3 4 55",
    );
}

#[test]
fn parentheses_comments_quotes_and_escapes() {
    check_parse(
        &format!(
            "{HEAD}txt TXT ( \"a b\" ; comment inside\n  \"c\\\"d\" e\\059f\n  \"\" )\n\
             caa CAA 128 issue \"ca.example; account=1\"\n\
             Mx Mx ( 10\n mail )\nsrv SRV 1 2 3 .\n"
        ),
        "Mx.t. 60 MX 10 mail.t.
         caa.t. 60 CAA 128 issue \"ca.example; account=1\"
         ns.t. 60 A 10.9.9.9
         srv.t. 60 SRV 1 2 3 .
         t. 60 NS ns.t.
         t. 60 SOA ns.t. hm.t. 1 2 3 4 5
         txt.t. 60 TXT \"a b\" \"c\\\"d\" \"e;f\" \"\"",
    );
}

#[test]
fn ttl_units_and_limits() {
    check_parse(
        &format!("{HEAD}a 1w2d3h4m5s A 10.0.0.1\nb 2147483647 A 10.0.0.2\n"),
        "a.t. 788645 A 10.0.0.1
         b.t. 2147483647 A 10.0.0.2
         ns.t. 60 A 10.9.9.9
         t. 60 NS ns.t.
         t. 60 SOA ns.t. hm.t. 1 2 3 4 5",
    );
    assert_eq!(
        parse_error(&format!("{HEAD}a 2147483648 A 10.0.0.1\n")),
        "t.zone:6: \"2147483648\" is not a TTL (seconds up to 2147483647, or 1h30m)"
    );
}

#[test]
fn duplicate_records_collapse_and_an_rrset_keeps_its_first_ttl() {
    check_parse(
        &format!("{HEAD}a 10 A 10.0.0.1\na 20 A 10.0.0.1\na 30 A 10.0.0.2\n"),
        "a.t. 10 A 10.0.0.1
         a.t. 10 A 10.0.0.2
         ns.t. 60 A 10.9.9.9
         t. 60 NS ns.t.
         t. 60 SOA ns.t. hm.t. 1 2 3 4 5",
    );
}

#[test]
fn errors_name_the_file_and_line() {
    let cases: &[(&str, &str)] = &[
        (
            "$ORIGIN t.\n\n@ 60 SOA ns hm 1 2 3 4 5\nx 60 FOO 1\n",
            "t.zone:4: unsupported record type FOO (supported: SOA, NS, A, AAAA, CNAME, MX, TXT, SRV, PTR, CAA)",
        ),
        (
            "@ 60 SOA ns hm 1 2 3 4 5\nx 60 A 10.0.0.256\n",
            "t.zone:2: A record: \"10.0.0.256\" is not an IPv4 address",
        ),
        (
            "@ 60 SOA ns hm 1 2 3 4 5\nx 60 AAAA 10.0.0.1\n",
            "t.zone:2: AAAA record: \"10.0.0.1\" is not an IPv6 address",
        ),
        ("@ 60 SOA ( ns hm\n 1 2 3\n 4 5\n", "t.zone:1: '(' is never closed"),
        ("@ 60 SOA ns hm 1 2 3 4 5 )\n", "t.zone:1: ')' without a matching '('"),
        ("@ 60 SOA ns hm 1 2 3 4 5\n\nx 60 TXT \"open\n\n", "t.zone:3: quoted string is never closed"),
        (
            "@ SOA ns hm 1 2 3 4 5\n$TTL 0\nx A 10.0.0.1\n$INCLUDE other.zone\n",
            "t.zone:4: $INCLUDE is not supported: keep each zone in one file",
        ),
        ("@ 60 SOA ns hm 1 2 3 4 5\n$GENERATE 1-5 x A 10.0.0.$\n", "t.zone:2: unknown directive $GENERATE"),
        ("x A 10.0.0.1\n", "t.zone:1: no TTL: give the record one or set $TTL before it"),
        ("@ 60 CH SOA ns hm 1 2 3 4 5\n", "t.zone:1: class CH: only IN is served"),
        ("@ 60 SOA ns hm 1 2 3 4\n", "t.zone:1: SOA record: missing minimum"),
        ("@ 60 MX 10 mail extra\n", "t.zone:1: MX record: unexpected \"extra\" after the data"),
        ("@ 60 MX 65536 mail\n", "t.zone:1: MX record: preference: \"65536\" is not a number in range"),
        (
            "@ 60 CAA 0 \"is sue\" x\n",
            "t.zone:1: CAA record: the tag must be letters and digits (issue, iodef, ...)",
        ),
        ("@ 60 TXT\n", "t.zone:1: TXT record: missing text (at least one string)"),
        ("a..b 60 A 10.0.0.1\n", "t.zone:1: owner name: a..b: empty label"),
        ("x\\300 60 A 10.0.0.1\n", "t.zone:1: owner name: x\\300: \\300 is not a byte (0 to 255)"),
        ("  60 A 10.0.0.1\n", "t.zone:1: the first record starts with a blank, so it has no owner name"),
        (
            "@ 60 SOA ns hm 1 2 3 4 5\nx 60 CNAME a\nx 60 A 10.0.0.1\n",
            "t.zone:3: x.t. has a CNAME and other records (RFC 1034 §3.6.2; see line 2)",
        ),
        (
            "@ 60 SOA ns hm 1 2 3 4 5\nx 60 CNAME a\nx 60 CNAME b\n",
            "t.zone:3: x.t. has a second CNAME record (the first is on line 2)",
        ),
        (
            "@ 60 SOA ns hm 1 2 3 4 5\n@ 60 SOA ns hm 1 2 3 4 5\n",
            "t.zone:2: second SOA record (the first is on line 1)",
        ),
        (
            "@ 60 SOA ns hm 1 2 3 4 5\n@ 60 NS ns\nother. 60 A 10.0.0.1\n",
            "t.zone:3: other. is outside the zone t.",
        ),
        (
            "@ 60 SOA ns hm 1 2 3 4 5\n@ 60 NS ns\n*.w 60 NS ns\n",
            "t.zone:3: *.w.t.: a wildcard cannot own NS records (RFC 4592 §4.2)",
        ),
        ("@ 60 NS ns\n", "t.zone: no SOA record: a zone file needs one, at its origin"),
        ("@ 60 SOA ns hm 1 2 3 4 5\n", "t.zone: no NS records at the zone origin"),
    ];
    for (text, want) in cases {
        assert_eq!(&parse_error(text), want, "\n--- zone ---\n{text}");
    }
    let long = "x".repeat(256);
    assert_eq!(
        parse_error(&format!("{HEAD}x TXT {long}\n")),
        "t.zone:6: TXT record: string is 256 bytes, more than 255"
    );
}

#[test]
fn a_relative_name_needs_an_origin() {
    // A file name that is not a domain name gives no default origin.
    let err = Zone::parse(Path::new("my zone.zone"), b"@ 60 SOA ns. hm. 1 2 3 4 5\n").unwrap_err();
    assert_eq!(err.to_string(), "my zone.zone:1: owner name: '@' but no $ORIGIN is known");
}

// ----- lookup ---------------------------------------------------------------------------

#[test]
fn exact_match_uses_the_question_spelling() {
    check_answer(
        &example(),
        "WWW.Example.COM.",
        RecordType::A,
        "NOERROR aa\nanswer: WWW.Example.COM. 300 A 10.0.0.10",
    );
    check_answer(
        &example(),
        "www.example.com.",
        RecordType::AAAA,
        "NOERROR aa\nanswer: www.example.com. 3600 AAAA 2001:db8::10",
    );
}

#[test]
fn nodata_and_nxdomain_carry_the_soa_with_the_negative_ttl() {
    let soa =
        "Example.com. 300 SOA ns1.example.com. hostmaster.example.com. 2024060101 7200 3600 1209600 300";
    check_answer(&example(), "www.Example.com.", RecordType::MX, &format!("NOERROR aa\nauthority: {soa}"));
    check_answer(&example(), "nope.Example.com.", RecordType::A, &format!("NXDOMAIN aa\nauthority: {soa}"));
}

#[test]
fn cname_chains_are_followed_inside_the_zone() {
    check_answer(
        &example(),
        "alias.example.com.",
        RecordType::A,
        "NOERROR aa
         answer: alias.example.com. 3600 CNAME ftp.example.com.
         answer: ftp.example.com. 3600 CNAME www.example.com.
         answer: www.example.com. 300 A 10.0.0.10",
    );
    // Asked for the CNAME itself: no chasing.
    check_answer(
        &example(),
        "ftp.example.com.",
        RecordType::CNAME,
        "NOERROR aa\nanswer: ftp.example.com. 3600 CNAME www.example.com.",
    );
    // Out of the zone: the resolver follows it.
    check_answer(
        &example(),
        "docs.example.com.",
        RecordType::A,
        "NOERROR aa\nanswer: docs.example.com. 3600 CNAME docs.example.org.",
    );
}

#[test]
fn cname_to_a_missing_name_is_nxdomain_and_loops_end() {
    let set =
        zones(&[("t.zone", format!("{HEAD}dangling CNAME gone\nl1 CNAME l2\nl2 CNAME L1\n").as_bytes())]);
    check_answer(
        &set,
        "dangling.t.",
        RecordType::A,
        "NXDOMAIN aa
         answer: dangling.t. 60 CNAME gone.t.
         authority: t. 5 SOA ns.t. hm.t. 1 2 3 4 5",
    );
    check_answer(
        &set,
        "l1.t.",
        RecordType::TXT,
        "NOERROR aa
         answer: l1.t. 60 CNAME l2.t.
         answer: l2.t. 60 CNAME L1.t.",
    );
}

#[test]
fn long_cname_chains_stop_at_the_bound() {
    let mut text = HEAD.to_owned();
    for i in 0..20 {
        text.push_str(&format!("c{i} CNAME c{}\n", i + 1));
    }
    let set = zones(&[("t.zone", text.as_bytes())]);
    let ans = set.answer(&Name::from_ascii("c0.t.").unwrap(), RecordType::A).unwrap();
    assert_eq!(ans.answers.len(), 9);
    assert_eq!(ans.rcode, ResponseCode::NoError);
}

#[test]
fn wildcards_synthesise_only_names_that_do_not_exist() {
    let set = example();
    check_answer(
        &set,
        "X.apps.example.com.",
        RecordType::A,
        "NOERROR aa\nanswer: X.apps.example.com. 3600 A 10.0.2.1",
    );
    // Deeper names match too: b.apps does not exist, so the closest encloser is apps.
    check_answer(
        &set,
        "a.b.apps.example.com.",
        RecordType::TXT,
        "NOERROR aa\nanswer: a.b.apps.example.com. 3600 TXT \"synthesised from *.apps\"",
    );
    // The wildcard's own NODATA.
    let soa =
        "example.com. 300 SOA ns1.example.com. hostmaster.example.com. 2024060101 7200 3600 1209600 300";
    check_answer(&set, "x.apps.example.com.", RecordType::MX, &format!("NOERROR aa\nauthority: {soa}"));
    // special.apps exists: its missing TXT is NODATA, not the wildcard's TXT.
    check_answer(
        &set,
        "special.apps.example.com.",
        RecordType::TXT,
        &format!("NOERROR aa\nauthority: {soa}"),
    );
    // ent.apps is an empty non-terminal: it exists, so no synthesis (RFC 4592 §2.2.2) ...
    check_answer(&set, "ent.apps.example.com.", RecordType::A, &format!("NOERROR aa\nauthority: {soa}"));
    // ... and names below it have ent.apps as closest encloser, with no *.ent.apps.
    check_answer(&set, "x.ent.apps.example.com.", RecordType::A, &format!("NXDOMAIN aa\nauthority: {soa}"));
    // The wildcard name itself is an ordinary name.
    check_answer(
        &set,
        "*.apps.example.com.",
        RecordType::A,
        "NOERROR aa\nanswer: *.apps.example.com. 3600 A 10.0.2.1",
    );
}

#[test]
fn delegations_get_a_referral_with_glue() {
    let want = "NOERROR
                authority: SUB.example.com. 3600 NS ns1.sub.example.com.
                authority: SUB.example.com. 3600 NS ns.example.net.
                additional: ns1.sub.example.com. 3600 A 10.0.3.53";
    check_answer(&example(), "www.SUB.example.com.", RecordType::A, want);
    check_answer(&example(), "SUB.example.com.", RecordType::NS, want);
    // Glue is not served as an answer: it is below the cut.
    check_answer(&example(), "ns1.SUB.example.com.", RecordType::A, want);
    // DS belongs to the parent side of the cut.
    let soa =
        "example.com. 300 SOA ns1.example.com. hostmaster.example.com. 2024060101 7200 3600 1209600 300";
    check_answer(&example(), "sub.example.com.", RecordType::DS, &format!("NOERROR aa\nauthority: {soa}"));
}

#[test]
fn the_longest_zone_wins_over_the_parents_delegation() {
    let child = b"$ORIGIN sub.example.com.\n$TTL 60\n@ SOA ns1 hm 1 2 3 4 5\n@ NS ns1\nns1 A 10.0.3.53\nwww A 10.0.3.80\n";
    let set = zones(&[("example.zone", EXAMPLE), ("sub.zone", child)]);
    check_answer(
        &set,
        "www.sub.example.com.",
        RecordType::A,
        "NOERROR aa\nanswer: www.sub.example.com. 60 A 10.0.3.80",
    );
}

#[test]
fn mx_srv_and_ns_targets_in_the_zone_come_with_their_addresses() {
    check_answer(
        &example(),
        "example.com.",
        RecordType::MX,
        "NOERROR aa
         answer: example.com. 3600 MX 10 mail.example.com.
         answer: example.com. 3600 MX 20 mx.example.net.
         additional: mail.example.com. 3600 A 10.0.0.25",
    );
    check_answer(
        &example(),
        "_sip._tcp.example.com.",
        RecordType::SRV,
        "NOERROR aa
         answer: _sip._tcp.example.com. 3600 SRV 10 60 5060 sip.example.com.
         additional: sip.example.com. 3600 A 10.0.0.60",
    );
    check_answer(
        &example(),
        "example.com.",
        RecordType::NS,
        "NOERROR aa
         answer: example.com. 3600 NS ns1.example.com.
         answer: example.com. 3600 NS ns2.example.com.
         additional: ns1.example.com. 3600 A 10.0.0.53
         additional: ns1.example.com. 3600 AAAA 2001:db8::53
         additional: ns2.example.com. 3600 A 10.0.1.53",
    );
}

#[test]
fn txt_caa_ptr_soa_and_any() {
    let set = example();
    check_answer(
        &set,
        "text.example.com.",
        RecordType::TXT,
        "NOERROR aa\nanswer: text.example.com. 3600 TXT \"first string\" \"second \\\"quoted\\\" string\" \"third\"",
    );
    check_answer(
        &set,
        "example.com.",
        RecordType::CAA,
        "NOERROR aa
         answer: example.com. 3600 CAA 0 issue \"letsencrypt.org\"
         answer: example.com. 3600 CAA 0 iodef \"mailto:security@example.com\"",
    );
    check_answer(
        &set,
        "10.0.0.10.in-addr.arpa.",
        RecordType::PTR,
        "NOERROR aa\nanswer: 10.0.0.10.in-addr.arpa. 3600 PTR www.example.com.",
    );
    check_answer(
        &set,
        "example.com.",
        RecordType::SOA,
        "NOERROR aa\nanswer: example.com. 3600 SOA ns1.example.com. hostmaster.example.com. 2024060101 7200 3600 1209600 300",
    );
    check_answer(
        &set,
        "www.example.com.",
        RecordType::ANY,
        "NOERROR aa
         answer: www.example.com. 300 A 10.0.0.10
         answer: www.example.com. 3600 AAAA 2001:db8::10",
    );
}

#[test]
fn names_outside_every_zone_and_zone_transfers() {
    check_answer(&example(), "example.org.", RecordType::A, "not in a zone");
    check_answer(&example(), "com.", RecordType::NS, "not in a zone");
    check_answer(&example(), "example.com.", RecordType::AXFR, "NOTIMP");
    check_answer(&example(), "www.example.com.", RecordType::IXFR, "NOTIMP");
}

#[test]
fn additional_records_travel_with_their_answer_into_the_encoder_form() {
    let name = Name::from_ascii("example.com.").unwrap();
    let ans = crate::dns::from_zone(example().answer(&name, RecordType::MX).unwrap());
    let extras: Vec<Vec<String>> = ans.answers.iter().map(|rr| render(&rr.extra)).collect();
    assert_eq!(extras, vec![vec!["mail.example.com. 3600 A 10.0.0.25".to_owned()], vec![]]);
    assert!(ans.additionals.is_empty());
    let referral = crate::dns::from_zone(
        example().answer(&Name::from_ascii("sub.example.com.").unwrap(), RecordType::A).unwrap(),
    );
    assert!(!referral.authoritative);
    assert_eq!(render(&referral.additionals), ["ns1.sub.example.com. 3600 A 10.0.3.53"]);
}

// ----- loading and reloading ------------------------------------------------------------

#[test]
fn two_files_with_one_origin_are_an_error_naming_both() {
    let err = ZoneSet::from_zones([
        Zone::parse(Path::new("a.zone"), EXAMPLE).unwrap(),
        Zone::parse(Path::new("b.zone"), EXAMPLE).unwrap(),
    ])
    .unwrap_err();
    assert_eq!(err.to_string(), "b.zone: zone example.com. is already loaded from a.zone");
}

fn origins(set: &ZoneSet) -> Vec<String> {
    set.zones().map(|z| z.origin().to_ascii()).collect()
}

#[test]
fn reload_is_per_file_and_a_broken_file_keeps_its_previous_version() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &[u8]| std::fs::write(dir.path().join(name), text).unwrap();
    write("example.zone", EXAMPLE);
    write("t.zone", HEAD.as_bytes());
    write("notes.txt", b"not a zone");
    let first = ZoneSet::load_dir(dir.path()).unwrap();
    assert_eq!(origins(&first), ["example.com.", "t."]);

    // t.zone gains a record; example.zone breaks; a new broken file appears.
    write("t.zone", format!("{HEAD}new A 10.0.0.7\n").as_bytes());
    write("example.zone", b"$ORIGIN example.com.\n@ 60 SOA ns hm 1 2 3 4 5\nwww 60 A not-an-ip\n");
    write("new.zone", b"$ORIGIN new.\n@ 60 SOA ns hm 1 2 3 4 5\n");
    let (second, errors) = first.reload_dir(dir.path());
    let errors: Vec<String> =
        errors.iter().map(|e| e.to_string().replace(&dir.path().display().to_string(), "DIR")).collect();
    assert_eq!(
        errors,
        [
            "DIR/example.zone:3: A record: \"not-an-ip\" is not an IPv4 address",
            "DIR/new.zone: no NS records at the zone origin",
        ]
    );
    assert_eq!(origins(&second), ["example.com.", "t."]);
    check_answer(
        &second,
        "www.example.com.",
        RecordType::A,
        "NOERROR aa\nanswer: www.example.com. 300 A 10.0.0.10",
    );
    check_answer(&second, "new.t.", RecordType::A, "NOERROR aa\nanswer: new.t. 60 A 10.0.0.7");

    // A removed file stops serving; an unreadable directory keeps everything.
    std::fs::remove_file(dir.path().join("example.zone")).unwrap();
    std::fs::remove_file(dir.path().join("new.zone")).unwrap();
    let (third, errors) = second.reload_dir(dir.path());
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(origins(&third), ["t."]);
    let (fourth, errors) = third.reload_dir(&dir.path().join("missing"));
    assert_eq!(errors.len(), 1);
    assert_eq!(origins(&fourth), ["t."]);
}

#[test]
fn a_file_whose_origin_moved_to_another_file_is_dropped_and_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("b.zone"), EXAMPLE).unwrap();
    let first = ZoneSet::load_dir(dir.path()).unwrap();
    // a.zone now serves example.com., and b.zone still claims it.
    std::fs::write(dir.path().join("a.zone"), EXAMPLE).unwrap();
    let (second, errors) = first.reload_dir(dir.path());
    let errors: Vec<String> =
        errors.iter().map(|e| e.to_string().replace(&dir.path().display().to_string(), "DIR")).collect();
    assert_eq!(errors, ["DIR/b.zone: zone example.com. is already loaded from DIR/a.zone"]);
    assert_eq!(
        second.zones().map(|z| z.file().to_path_buf()).collect::<Vec<_>>(),
        [dir.path().join("a.zone")]
    );
}

#[test]
fn load_dir_fails_on_the_first_broken_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.zone"), b"@ 60 SOA ns hm 1 2 3 4 5\n@ 60 NS ns\nx 60 A 1.2.3\n")
        .unwrap();
    let err = ZoneSet::load_dir(dir.path()).unwrap_err();
    assert_eq!(err.path(), dir.path().join("a.zone"));
    assert!(err.to_string().ends_with("a.zone:3: A record: \"1.2.3\" is not an IPv4 address"), "{err}");
}

#[test]
fn name_under_compares_labels_ignoring_case() {
    let n = |s: &str| Name::from_ascii(s).unwrap();
    assert!(name_under(&n("web.service.Consul."), "consul."));
    assert!(name_under(&n("consul."), "consul."));
    assert!(name_under(&n("x.alt.test."), "alt.test."));
    assert!(!name_under(&n("notconsul."), "consul."));
    assert!(!name_under(&n("test."), "alt.test."));
    assert!(name_under(&n("anything."), "."));
}

// ----- through the DNS path -------------------------------------------------------------

fn dns_query(ctx: &crate::dns::DnsContext, name: &str, qtype: RecordType) -> Message {
    let mut msg = Message::query();
    msg.metadata.id = 7;
    msg.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    let snap = crate::snapshot::CatalogSnapshot { index: 1, catalog: Default::default() };
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(1);
    let reply =
        crate::dns::handle(&msg.to_vec().unwrap(), crate::dns::Transport::Udp, ctx, &snap, &mut rng).unwrap();
    Message::from_vec(&reply).unwrap()
}

fn dns_ctx(set: ZoneSet) -> crate::dns::DnsContext {
    let (cfg, _) = crate::config::Config::load(&crate::config::Overrides {
        dev: true,
        node_name: Some("n1".into()),
        ..Default::default()
    })
    .unwrap();
    crate::dns::DnsContext::from_config(&cfg).with_zones(Arc::new(set))
}

#[test]
fn the_dns_path_answers_static_zones_and_the_consul_domain_wins_on_overlap() {
    let consul_zone =
        b"$ORIGIN consul.\n$TTL 60\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 10.0.0.1\nfoo A 10.0.0.2\n";
    let ctx = dns_ctx(zones(&[("example.zone", EXAMPLE), ("consul.zone", consul_zone)]));
    let www = dns_query(&ctx, "www.example.com.", RecordType::A);
    assert!(www.metadata.authoritative);
    assert_eq!(render(&www.answers), ["www.example.com. 300 A 10.0.0.10"]);
    let referral = dns_query(&ctx, "x.sub.example.com.", RecordType::A);
    assert!(!referral.metadata.authoritative);
    assert_eq!(referral.authorities.len(), 2);
    // foo.consul. is in the static zone too, but the Consul domain answers it.
    let foo = dns_query(&ctx, "foo.consul.", RecordType::A);
    assert_eq!(foo.metadata.response_code, ResponseCode::NXDomain);
    assert!(
        render(&foo.authorities)[0].starts_with("consul. 0 SOA ns.consul. hostmaster.consul."),
        "{foo:?}"
    );
    // Outside everything: REFUSED as before.
    assert_eq!(dns_query(&ctx, "example.org.", RecordType::A).metadata.response_code, ResponseCode::Refused);
}

/// The answer sources' order with recursors set: a static zone answers its names before the
/// forwarder is asked; only a name nobody holds is forwarded (SERVFAIL from `handle`, which
/// does no IO).
#[test]
fn static_zones_answer_before_the_forwarder() {
    let mut ctx = dns_ctx(zones(&[("example.zone", EXAMPLE)]));
    ctx.recursors = vec!["127.0.0.1:1".parse().unwrap()];
    let www = dns_query(&ctx, "www.example.com.", RecordType::A);
    assert_eq!(www.metadata.response_code, ResponseCode::NoError);
    assert!(www.metadata.authoritative);
    assert_eq!(render(&www.answers), ["www.example.com. 300 A 10.0.0.10"]);
    let missing = dns_query(&ctx, "nothere.example.com.", RecordType::A);
    assert_eq!(missing.metadata.response_code, ResponseCode::NXDomain);
    assert!(missing.metadata.authoritative);
    let foreign = dns_query(&ctx, "example.org.", RecordType::A);
    assert_eq!(foreign.metadata.response_code, ResponseCode::ServFail);
}

// ----- properties -----------------------------------------------------------------------

fn zone_like_text() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "$ORIGIN",
        "$TTL",
        "$INCLUDE",
        "@",
        "example.com.",
        "www",
        "*",
        "*.w",
        "a.b",
        ".",
        "..",
        "IN",
        "CH",
        "SOA",
        "NS",
        "A",
        "AAAA",
        "CNAME",
        "MX",
        "TXT",
        "SRV",
        "PTR",
        "CAA",
        "60",
        "1h",
        "99999999999",
        "10.0.0.1",
        "::1",
        "(",
        ")",
        "\"",
        "\"q s\"",
        ";c",
        "\\",
        "\\0",
        "\\255",
        "\\999",
        "\n",
        "\n ",
        "\t",
        "issue",
        "0",
    ]);
    prop::collection::vec(token, 0..60).prop_map(|t| t.join(" "))
}

proptest! {
    #[test]
    fn the_parser_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = Zone::parse(Path::new("p.zone"), &bytes);
    }

    #[test]
    fn the_parser_never_panics_on_zone_like_text(text in zone_like_text()) {
        let _ = Zone::parse(Path::new("p.zone"), text.as_bytes());
    }

    #[test]
    fn lookups_never_panic_and_answer_in_the_question_spelling(
        labels in prop::collection::vec(
            prop::sample::select(vec!["www", "WWW", "apps", "x", "*", "ent", "host", "sub", "ns1", "alias", "_sip", "_tcp", "text"]),
            0..5,
        ),
        apex in prop::sample::select(vec!["example.com.", "Example.COM.", "10.in-addr.arpa.", "example.org."]),
        qtype in prop::sample::select(vec![
            RecordType::A, RecordType::AAAA, RecordType::ANY, RecordType::CNAME, RecordType::MX, RecordType::NS,
            RecordType::SOA, RecordType::SRV, RecordType::TXT, RecordType::PTR, RecordType::CAA, RecordType::DS,
            RecordType::AXFR,
        ]),
    ) {
        let mut text = labels.join(".");
        if !text.is_empty() {
            text.push('.');
        }
        text.push_str(apex);
        let qname = Name::from_ascii(&text).unwrap();
        let set = example();
        let ans = set.answer(&qname, qtype);
        prop_assert_eq!(ans.is_some(), !apex.eq_ignore_ascii_case("example.org."));
        if let Some(ans) = ans {
            if let Some(first) = ans.answers.first() {
                prop_assert!(first.name.eq_case(&qname), "{} vs {}", first.name, qname);
            }
            if ans.rcode == ResponseCode::NXDomain || (ans.answers.is_empty() && ans.authoritative) {
                prop_assert!(ans.rcode == ResponseCode::NotImp || ans.authorities.len() == 1);
            }
            prop_assert!(ans.answers.len() <= 16);
        }
    }
}
