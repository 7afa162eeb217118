//! DNS under ACLs (spec §1.9): answers through `handle_under` and the answer cache with a
//! fixed `DnsView`: denied services and nodes are NXDOMAIN with the SOA, instances on denied
//! nodes are left out, a token that does not resolve is SERVFAIL, prepared queries run under
//! their captured token, PTR and NS show only what the token reads, and a cached answer is
//! never served under another view.

use std::sync::Arc;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;
use crate::acl::{Authorizer, DefaultPolicy, ResolveError, parse_rules};
use crate::acl_state::DnsView;
use crate::catalog::{CatalogState, Command, CommandResponse, PreparedQuery, QueryService, QueryUpsert};
use crate::config::DnsConfig;
use crate::snapshot::CatalogSnapshot;

fn ctx() -> DnsContext {
    DnsContext {
        domain: "consul.".into(),
        alt_domain: None,
        datacenter: "dc1".into(),
        node_name: "server1".into(),
        dns_config: DnsConfig::default(),
        recursors: Vec::new(),
        soa_serial: 4242,
        generation: 0,
        zones: Arc::default(),
    }
}

fn query(id: &str, name: &str, service: &str, token: &str) -> PreparedQuery {
    PreparedQuery {
        id: id.into(),
        name: name.into(),
        session: String::new(),
        token: token.into(),
        service: QueryService { service: service.into(), ..Default::default() },
        dns_ttl: String::new(),
        create_index: 0,
        modify_index: 0,
    }
}

/// web on web1 (10.0.0.1) and web2 (10.0.0.2); db on db1 (10.0.0.3); the consul service on
/// server1 (10.0.0.9); queries `webq` (no token) and `capq` (captured token `cap`).
fn catalog() -> Arc<CatalogSnapshot> {
    use crate::catalog::apply::apply;
    use crate::catalog::testing::{node, register, service};
    let mut state = CatalogState::default();
    let mut index = 0;
    let mut run = |state: &mut CatalogState, cmd: Command| {
        index += 1;
        assert_eq!(apply(state, index, &cmd, &mut Vec::new()), CommandResponse::Applied);
        index
    };
    for (n, a, id, name, port) in [
        ("web1", "10.0.0.1", "w1", "web", 80),
        ("web2", "10.0.0.2", "w2", "web", 80),
        ("db1", "10.0.0.3", "d1", "db", 5432),
        ("server1", "10.0.0.9", "c", "consul", 8300),
    ] {
        run(&mut state, register(node(n, a), Some(service(n, id, name, port, &[])), Vec::new()));
    }
    let q = query("11111111-2222-3333-4444-555555555555", "webq", "web", "");
    run(&mut state, Command::QueryUpsert(QueryUpsert { query: q, update: false }));
    let q = query("11111111-2222-3333-4444-666666666666", "capq", "web", "cap");
    let last = run(&mut state, Command::QueryUpsert(QueryUpsert { query: q, update: false }));
    Arc::new(CatalogSnapshot { index: last, catalog: state })
}

fn authz(rules: &str) -> Arc<Authorizer> {
    let rules = parse_rules(rules).expect("rules");
    Arc::new(Authorizer::new([&rules], DefaultPolicy::Deny))
}

fn view(rules: &str) -> Access {
    Access::View(Arc::new(DnsView::fixed(1, Ok(authz(rules)))))
}

fn failed() -> Access {
    Access::View(Arc::new(DnsView::fixed(1, Err(ResolveError::NotFound))))
}

fn request(name: &str, qtype: RecordType) -> Vec<u8> {
    let mut msg = Message::new(0x4242, MessageType::Query, OpCode::Query);
    msg.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
    msg.to_vec().expect("encode")
}

fn ask(access: &Access, name: &str, qtype: RecordType) -> Message {
    let mut rng = StdRng::seed_from_u64(3);
    let out = handle_under(&request(name, qtype), Transport::Udp, &ctx(), &catalog(), access, &mut rng)
        .expect("a reply");
    Message::from_vec(&out).expect("decodable")
}

fn addresses(msg: &Message) -> Vec<String> {
    let mut v: Vec<String> = msg
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

fn has_soa(msg: &Message) -> bool {
    matches!(msg.authorities.first().map(|r| &r.data), Some(RData::SOA(_)))
}

const READ_ALL: &str = r#"service_prefix "" { policy = "read" } node_prefix "" { policy = "read" }"#;

#[test]
fn acls_off_and_read_all_answer_alike() {
    for access in [Access::ALL, view(READ_ALL)] {
        let msg = ask(&access, "web.service.consul.", RecordType::A);
        assert_eq!(msg.metadata.response_code, ResponseCode::NoError);
        assert_eq!(addresses(&msg), ["10.0.0.1", "10.0.0.2"]);
        assert_eq!(addresses(&ask(&access, "db1.node.consul.", RecordType::A)), ["10.0.0.3"]);
    }
}

#[test]
fn a_denied_service_or_node_is_nxdomain_with_the_soa() {
    let access = view(r#"service "db" { policy = "read" } node_prefix "" { policy = "read" }"#);
    let msg = ask(&access, "web.service.consul.", RecordType::SRV);
    assert_eq!(msg.metadata.response_code, ResponseCode::NXDomain);
    assert!(has_soa(&msg), "{msg:?}");
    assert!(msg.metadata.authoritative);
    assert_eq!(
        ask(&access, "db.service.consul.", RecordType::A).metadata.response_code,
        ResponseCode::NoError
    );
    // Service read without node read: every instance is filtered, so NXDOMAIN too.
    let access = view(r#"service_prefix "" { policy = "read" }"#);
    let msg = ask(&access, "web.service.consul.", RecordType::A);
    assert_eq!(msg.metadata.response_code, ResponseCode::NXDomain);
    let msg = ask(&access, "web1.node.consul.", RecordType::A);
    assert_eq!(msg.metadata.response_code, ResponseCode::NXDomain);
    assert!(has_soa(&msg));
}

#[test]
fn instances_on_denied_nodes_are_left_out() {
    let access = view(r#"service_prefix "" { policy = "read" } node "web2" { policy = "read" }"#);
    assert_eq!(addresses(&ask(&access, "web.service.consul.", RecordType::A)), ["10.0.0.2"]);
    let srv = ask(&access, "web.service.consul.", RecordType::SRV);
    assert_eq!(srv.answers.len(), 1, "{srv:?}");
}

#[test]
fn a_token_that_does_not_resolve_is_servfail_without_soa() {
    let access = failed();
    for (name, qtype) in [
        ("web.service.consul.", RecordType::A),
        ("web1.node.consul.", RecordType::A),
        ("webq.query.consul.", RecordType::A),
    ] {
        let msg = ask(&access, name, qtype);
        assert_eq!(msg.metadata.response_code, ResponseCode::ServFail, "{name}");
        assert!(msg.authorities.is_empty(), "{name}: {msg:?}");
        assert!(msg.answers.is_empty(), "{name}");
    }
    // No lookup behind these: as before.
    let msg = ask(&access, "nope.consul.", RecordType::A);
    assert_eq!(msg.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(
        ask(&access, "0a000001.addr.consul.", RecordType::A).metadata.response_code,
        ResponseCode::NoError
    );
    // An unknown query is NXDOMAIN before any token is used (Consul's "Query not found").
    assert_eq!(
        ask(&access, "nothere.query.consul.", RecordType::A).metadata.response_code,
        ResponseCode::NXDomain
    );
    // SOA and NS answer without name servers (Consul logs the RPC error).
    let soa = ask(&access, "consul.", RecordType::SOA);
    assert_eq!(soa.metadata.response_code, ResponseCode::NoError);
    assert_eq!(soa.answers.len(), 1);
    assert!(soa.authorities.is_empty(), "{soa:?}");
    // PTR finds nothing readable: NXDOMAIN.
    let ptr = ask(&access, "1.0.0.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(ptr.metadata.response_code, ResponseCode::NXDomain);
}

#[test]
fn prepared_queries_run_under_their_captured_token() {
    let cap = authz(r#"service "web" { policy = "read" } node "web1" { policy = "read" }"#);
    let default =
        Access::View(Arc::new(DnsView::fixed(1, Ok(authz(READ_ALL))).with_captured("cap", Ok(cap))));
    assert_eq!(addresses(&ask(&default, "webq.query.consul.", RecordType::A)), ["10.0.0.1", "10.0.0.2"]);
    assert_eq!(addresses(&ask(&default, "capq.query.consul.", RecordType::A)), ["10.0.0.1"]);
    // The default token failing does not matter to a query with its own token.
    let broken = Access::View(Arc::new(
        DnsView::fixed(1, Err(ResolveError::NotFound)).with_captured("cap", Ok(authz(READ_ALL))),
    ));
    assert_eq!(addresses(&ask(&broken, "capq.query.consul.", RecordType::A)), ["10.0.0.1", "10.0.0.2"]);
    assert_eq!(
        ask(&broken, "webq.query.consul.", RecordType::A).metadata.response_code,
        ResponseCode::ServFail
    );
    // A denied default token: the query's instances are filtered away, NXDOMAIN.
    let deny = view(r#"node_prefix "" { policy = "read" }"#);
    assert_eq!(
        ask(&deny, "webq.query.consul.", RecordType::A).metadata.response_code,
        ResponseCode::NXDomain
    );
    // A captured token the view has not resolved yet fails closed.
    assert_eq!(
        ask(&deny, "capq.query.consul.", RecordType::A).metadata.response_code,
        ResponseCode::ServFail
    );
}

#[test]
fn ptr_and_ns_show_only_what_the_token_reads() {
    let nodes_only_web2 = view(r#"service_prefix "" { policy = "read" } node "web2" { policy = "read" }"#);
    let ptr = ask(&nodes_only_web2, "1.0.0.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(ptr.metadata.response_code, ResponseCode::NXDomain);
    let ptr = ask(&nodes_only_web2, "2.0.0.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(ptr.metadata.response_code, ResponseCode::NoError);
    // The server's node is hidden: no NS records (and no own-node fallback).
    let ns = ask(&nodes_only_web2, "consul.", RecordType::NS);
    assert_eq!(ns.metadata.response_code, ResponseCode::NoError);
    assert!(ns.answers.is_empty(), "{ns:?}");
    let ns = ask(&view(READ_ALL), "consul.", RecordType::NS);
    assert_eq!(ns.answers.len(), 1, "{ns:?}");
}

#[test]
fn the_answer_cache_never_serves_an_answer_rendered_under_another_view() {
    let snap = catalog();
    let c = ctx();
    let mut cache = AnswerCache::new();
    let mut out = Vec::new();
    let req = request("web.service.consul.", RecordType::A);
    let rcode = |out: &[u8]| Message::from_vec(out).expect("decodable").metadata.response_code;
    let deny = Access::View(Arc::new(DnsView::fixed(1, Ok(authz(r#"node_prefix "" { policy = "read" }"#)))));
    for _ in 0..3 {
        assert!(cache.respond_under(&req, Transport::Udp, &c, &snap, &deny, &mut out).is_none());
        assert_eq!(rcode(&out), ResponseCode::NXDomain);
    }
    let hits = cache.stats().hits;
    assert!(hits >= 2, "the denied answer is cached under its view");
    let allow = Access::View(Arc::new(DnsView::fixed(2, Ok(authz(READ_ALL)))));
    assert!(cache.respond_under(&req, Transport::Udp, &c, &snap, &allow, &mut out).is_none());
    assert_eq!(rcode(&out), ResponseCode::NoError);
    let broken = Access::View(Arc::new(DnsView::fixed(3, Err(ResolveError::NotFound))));
    assert!(cache.respond_under(&req, Transport::Udp, &c, &snap, &broken, &mut out).is_none());
    assert_eq!(rcode(&out), ResponseCode::ServFail);
    // ACLs off after all of it (generation 0): the full answer again.
    assert!(cache.respond(&req, Transport::Udp, &c, &snap, &mut out).is_none());
    assert_eq!(rcode(&out), ResponseCode::NoError);
}
