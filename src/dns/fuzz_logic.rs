//! FUZZING ENTRY: arbitrary bytes through the whole DNS request path against a fixed catalog.
//!
//! Input: bytes (the first selects UDP or TCP, the rest is the request). Output: nothing; it
//! panics only when an invariant of the DNS path breaks: a reply that does not decode, or a
//! reply whose ID differs from the request's. A panic inside the path itself is the other
//! finding. Used by the cargo-fuzz target in `tests/fuzz/` and by the proptests.

use std::sync::OnceLock;

use hickory_proto::op::Message;
use rand::SeedableRng;

use super::{DnsContext, Transport, handle};
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
pub fn fixture() -> &'static (DnsContext, CatalogSnapshot) {
    static FIXTURE: OnceLock<(DnsContext, CatalogSnapshot)> = OnceLock::new();
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
            zones: std::sync::Arc::new(
                Zone::parse(std::path::Path::new("example.zone"), EXAMPLE_ZONE)
                    .ok()
                    .and_then(|z| ZoneSet::from_zones([z]).ok())
                    .unwrap_or_default(),
            ),
        };
        (ctx, CatalogSnapshot { index: 5, catalog: state })
    })
}

/// Runs `data` through the DNS path; panics if a reply breaks an invariant.
pub fn request_path(data: &[u8]) {
    let Some((&selector, request)) = data.split_first() else { return };
    let transport = if selector & 1 == 0 { Transport::Udp } else { Transport::Tcp };
    let (ctx, snap) = fixture();
    let mut rng = rand::rngs::StdRng::seed_from_u64(u64::from(selector));
    let Some(reply) = handle(request, transport, ctx, snap, &mut rng) else { return };
    let msg = match Message::from_vec(&reply) {
        Ok(m) => m,
        Err(e) => panic!("reply does not decode: {e}"),
    };
    if let Some(id) = request.get(..2) {
        assert_eq!(
            msg.metadata.id,
            u16::from_be_bytes([id[0], id[1]]),
            "reply ID differs from the request's"
        );
    }
    if matches!(transport, Transport::Udp) {
        let limit = 65467;
        assert!(reply.len() <= limit, "UDP reply of {} bytes", reply.len());
    }
}
