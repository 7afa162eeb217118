//! FUZZING ENTRY: arbitrary bytes through the whole DNS request path against a fixed catalog.
//!
//! Input: bytes; the first selects the transport (bit 0: UDP or TCP) and, for TCP, whether the
//! rest is one message or a client's byte stream of length-prefixed frames (bit 1), which is
//! cut and answered frame by frame as the listener does; bits 2 and 3 the ACLs (off, a
//! default token reading only part of the catalog, or one that does not resolve). A UDP request is also answered three
//! times by a fresh `AnswerCache`, as a UDP loop answers it (a miss, then hits that copy,
//! patch and permute the stored bytes), and every one of those replies is checked too.
//! Output: nothing; it panics only when an invariant of the DNS path breaks. A panic inside
//! the path itself is the other finding.
//! Used by the cargo-fuzz target in `tests/fuzz/` and by the proptests.
//!
//! Invariants checked on every reply (RFC 1035 §4.1.1, RFC 6891 §7, spec §2.12):
//! - no reply to fewer than 12 bytes or to a response (QR=1);
//! - the reply decodes, has QR=1, the request's ID and opcode, and Z clear;
//! - a request that parses as a query gets its question back, and an OPT if it sent one;
//! - size: a UDP reply fits the client's limit (512 bytes, or its EDNS size capped at 65467),
//!   a TCP reply fits a frame.

use std::sync::{Arc, OnceLock};

use hickory_proto::op::Message;
use rand::SeedableRng;

use super::access::Access;
use super::cache::AnswerCache;
use super::context::{DnsContext, Transport};
use super::listener::frame;
use super::parse::parse;
use super::pipeline::handle_under;
use crate::acl::{Authorizer, DefaultPolicy, ResolveError, parse_rules};
use crate::acl_state::DnsView;
use crate::catalog::{CatalogDump, CatalogState, Check, HealthStatus, Node, Service};
use crate::config::DnsConfig;
use crate::snapshot::CatalogSnapshot;
use crate::zone::{Zone, ZoneSet};

/// `zones/example.zone`, served beside the catalog.
const EXAMPLE_ZONE: &[u8] = include_bytes!("../../zones/example.zone");

fn node(name: &str, address: &str, meta: &[(&str, &str)]) -> Node {
    let mut n = Node::new(name, address, "dc1");
    n.meta = meta.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    n
}

fn service(node: &str, id: &str, name: &str, address: &str, port: u16, tags: &[&str]) -> Service {
    Service { address: address.to_owned(), ..Service::new(node, id, name, port).with_tags(tags) }
}

/// A small catalog with every address kind (node IP, service IPv4/IPv6, host names), health
/// states, tags, node meta and a `consul` service; and a context with an alt domain, a
/// recursor and the example static zone so every branch of the path is reachable.
pub fn fixture() -> &'static (DnsContext, Arc<CatalogSnapshot>) {
    static FIXTURE: OnceLock<(DnsContext, Arc<CatalogSnapshot>)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let regs = [
            (
                node("web1", "10.0.0.1", &[("rack", "r1")]),
                service("web1", "web-1", "web", "", 80, &["v1", "primary"]),
            ),
            (node("web2", "10.0.0.2", &[]), service("web2", "web-2", "web", "fe80::2", 81, &["v2"])),
            (node("web3", "10.0.0.3", &[]), service("web3", "web-3", "web", "db.example.com", 82, &[])),
            (
                node("host.name", "node.example.org", &[]),
                service("host.name", "api", "api", "", 9000, &["x.y"]),
            ),
            (node("srv", "127.0.0.1", &[]), service("srv", "consul", "consul", "", 8300, &[])),
        ];
        // Built from a dump, as a replica restoring a snapshot does: no Raft involved.
        let mut dump = CatalogDump::default();
        for (i, (n, s)) in regs.into_iter().enumerate() {
            let status = if i == 1 { HealthStatus::Critical } else { HealthStatus::Passing };
            let mut c = Check::new(&n.name, &format!("c{i}"), &s.id, status);
            c.service_name.clone_from(&s.name);
            dump.checks.push(c);
            dump.nodes.push(n);
            dump.services.push(s);
        }
        let state = CatalogState::from_dump(dump);
        let ctx = DnsContext {
            domain: "consul.".into(),
            alt_domain: Some("alt.test.".into()),
            datacenter: "dc1".into(),
            node_name: "srv".into(),
            dns_config: DnsConfig { enable_truncate: true, ..DnsConfig::default() },
            recursors: vec![std::net::SocketAddr::from(([127, 0, 0, 1], 53))],
            soa_serial: 1,
            generation: 0,
            // The repository's example zone, so inputs reach the static-zone path too (its
            // unit tests prove it parses; an empty set would only narrow the fuzzing).
            zones: Arc::new(
                Zone::parse(std::path::Path::new("example.zone"), EXAMPLE_ZONE)
                    .ok()
                    .and_then(|z| ZoneSet::from_zones([z]).ok())
                    .unwrap_or_default(),
            ),
        };
        (ctx, Arc::new(CatalogSnapshot { index: 5, catalog: state }))
    })
}

/// Classic UDP limit, and the largest UDP payload (as in `encode.rs`).
const UDP_CLASSIC: usize = 512;
const UDP_MAX: usize = 65467;

/// The ACLs a selector picks: off (bit 2 clear), a default token that reads `web` and the
/// nodes `web1` and `srv` only, or one that does not resolve.
fn access(selector: u8) -> Access {
    static VIEWS: OnceLock<[Arc<DnsView>; 2]> = OnceLock::new();
    let [partial, failed] = VIEWS.get_or_init(|| {
        let rules = r#"service "web" { policy = "read" } node "web1" { policy = "read" } node "srv" { policy = "read" }"#;
        let authz = parse_rules(rules).map(|r| Arc::new(Authorizer::new([&r], DefaultPolicy::Deny)));
        let partial = DnsView::fixed(1, authz.map_err(|_| ResolveError::NotFound));
        [Arc::new(partial), Arc::new(DnsView::fixed(2, Err(ResolveError::NotFound)))]
    });
    match (selector & 4 != 0, selector & 8 != 0) {
        (false, _) => Access::All,
        (true, false) => Access::View(partial.clone()),
        (true, true) => Access::View(failed.clone()),
    }
}

/// Runs `data` through the DNS path; panics if a reply breaks an invariant.
pub fn request_path(data: &[u8]) {
    let Some((&selector, input)) = data.split_first() else { return };
    let (ctx, snap) = fixture();
    let acl = access(selector);
    let mut rng = rand::rngs::StdRng::seed_from_u64(u64::from(selector));
    let handle = |bytes: &[u8], t: Transport, rng: &mut rand::rngs::StdRng| {
        handle_under(bytes, t, ctx, snap, &acl, rng)
    };
    if selector & 1 == 0 {
        let reply = handle(input, Transport::Udp, &mut rng);
        check_reply(input, reply.as_deref(), Transport::Udp);
        cached_udp(input, reply.as_deref(), &acl);
    } else if selector & 2 == 0 {
        let reply = handle(input, Transport::Tcp, &mut rng);
        check_reply(input, reply.as_deref(), Transport::Tcp);
    } else {
        // A TCP byte stream: answer frame after frame until the bytes run out or a request
        // gets no reply (the listener closes the connection there).
        let mut rest = input;
        while let Some((len, after)) = rest.split_first_chunk::<2>() {
            let Some((body, next)) = after.split_at_checked(usize::from(u16::from_be_bytes(*len))) else {
                return;
            };
            let reply = handle(body, Transport::Tcp, &mut rng);
            check_reply(body, reply.as_deref(), Transport::Tcp);
            let Some(reply) = reply else { return };
            assert!(frame(&reply).is_some(), "TCP reply of {} bytes does not fit a frame", reply.len());
            rest = next;
        }
    }
}

/// The UDP loops' path: the answer cache, one miss and two hits.
fn cached_udp(request: &[u8], uncached: Option<&[u8]>, acl: &Access) {
    let (ctx, snap) = fixture();
    let mut cache = AnswerCache::new();
    let mut out = Vec::new();
    for _ in 0..3 {
        if cache.respond_under(request, Transport::Udp, ctx, snap, acl, &mut out).is_some() {
            // Forwarding, host-name resolution or a drop: the loop hands those to `listener`.
            return;
        }
        check_reply(request, Some(&out), Transport::Udp);
        let rcode = |m: &[u8]| m.get(3).map(|b| b & 0x0F);
        assert_eq!(rcode(&out), uncached.and_then(rcode), "cached reply with another RCODE");
    }
}

fn check_reply(request: &[u8], reply: Option<&[u8]>, transport: Transport) {
    let Some(reply) = reply else { return };
    let (Some(req_header), Some(rep_header)) = (request.get(..12), reply.get(..12)) else {
        panic!("a reply ({} bytes) to a request of {} bytes", reply.len(), request.len());
    };
    assert_eq!(req_header[2] & 0x80, 0, "a reply to a response (QR=1)");
    assert_eq!(rep_header[..2], req_header[..2], "reply ID differs from the request's");
    assert_eq!(rep_header[2] & 0x80, 0x80, "reply without QR=1");
    assert_eq!(rep_header[2] & 0x78, req_header[2] & 0x78, "reply opcode differs from the request's");
    assert_eq!(rep_header[3] & 0x40, 0, "reply with the Z bit set");
    let msg = match Message::from_vec(reply) {
        Ok(m) => m,
        Err(e) => panic!("reply does not decode: {e}"),
    };
    let parsed = parse(request).ok();
    if let Some(req) = &parsed {
        assert_eq!(msg.queries.as_slice(), std::slice::from_ref(&req.query), "question not echoed");
        assert!(req.edns.is_none() || msg.edns.is_some(), "EDNS request answered without an OPT");
    }
    match transport {
        Transport::Udp => {
            let asked = parsed.and_then(|r| r.edns).map_or(UDP_CLASSIC, |e| usize::from(e.max_payload()));
            let limit = asked.clamp(UDP_CLASSIC, UDP_MAX);
            assert!(reply.len() <= limit, "UDP reply of {} bytes over the client's {limit}", reply.len());
        }
        Transport::Tcp => {
            assert!(reply.len() <= usize::from(u16::MAX), "TCP reply of {} bytes", reply.len());
        }
    }
}
