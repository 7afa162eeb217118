//! The answer cache answers exactly what the full path renders.

use std::collections::HashSet;
use std::sync::Arc;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

use super::cache::{Permute, soa_serial_offsets};
use super::*;
use crate::catalog::{CatalogDump, CatalogState, Node, Service};
use crate::config::DnsConfig;
use crate::snapshot::CatalogSnapshot;

/// The DNS settings the cache tests (here and in `snapshot::dns_cache_tests`) answer with.
pub(crate) fn ctx() -> DnsContext {
    DnsContext {
        domain: "consul.".into(),
        alt_domain: None,
        datacenter: "dc1".into(),
        node_name: "n0".into(),
        dns_config: DnsConfig::default(),
        recursors: Vec::new(),
        soa_serial: 7,
        generation: 0,
        zones: Arc::default(),
    }
}

/// `web` on nodes n0..n{count} at 10.0.0.1.., every row versioned at `index`.
fn snapshot(count: u8, index: u64) -> Arc<CatalogSnapshot> {
    versioned(count, index, index)
}

/// `web` on nodes n0..n{count} at 10.0.0.1.., the node rows at `node_index`.
fn web_dump(count: u8, node_index: u64) -> CatalogDump {
    let mut dump = CatalogDump::default();
    for i in 0..count {
        let node = format!("n{i}");
        let mut n = Node::new(&node, &format!("10.0.0.{}", i + 1), "dc1");
        n.modify_index = node_index;
        dump.nodes.push(n);
        dump.services.push(Service::new(&node, "web", "web", 8000 + u16::from(i)));
    }
    dump
}

/// `web` as in [`snapshot`] (rows at `web_index`) and `api` on node `a0` (rows at `index`).
fn versioned(count: u8, web_index: u64, index: u64) -> Arc<CatalogSnapshot> {
    let mut dump = web_dump(count, web_index);
    let mut a = Node::new("a0", &format!("10.1.0.{index}"), "dc1");
    a.modify_index = index;
    dump.nodes.push(a);
    dump.services.push(Service::new("a0", "api", "api", 9000));
    dump.service_indexes = vec![("web".into(), web_index), ("api".into(), index)];
    Arc::new(CatalogSnapshot { index, catalog: CatalogState::from_dump(dump) })
}

fn request(id: u16, name: &str, qtype: RecordType, edns: bool) -> Vec<u8> {
    let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
    msg.queries.push(Query::query(Name::from_ascii(name).expect("name"), qtype));
    if edns {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        msg.edns = Some(e);
    }
    msg.to_vec().expect("encode")
}

fn a_records(msg: &Message) -> Vec<String> {
    msg.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect()
}

fn check_cached(
    cache: &mut AnswerCache,
    req: &[u8],
    ctx: &DnsContext,
    snap: &Arc<CatalogSnapshot>,
) -> Vec<u8> {
    let mut out = Vec::new();
    let pending = cache.respond(req, Transport::Udp, ctx, snap, &mut out);
    assert!(pending.is_none(), "expected a reply, got {pending:?}");
    out
}

#[test]
fn hits_return_the_full_paths_bytes_with_the_requests_id() {
    let (ctx, snap) = (ctx(), snapshot(1, 1));
    let mut cache = AnswerCache::new();
    for (name, qtype) in [
        ("n0.node.consul.", RecordType::A),
        ("nope.service.consul.", RecordType::SRV),
        ("web.service.consul.", RecordType::SRV),
        ("consul.", RecordType::SOA),
    ] {
        let full = handle(&request(1, name, qtype, true), Transport::Udp, &ctx, &snap, &mut rand::rng())
            .expect("reply");
        let first = check_cached(&mut cache, &request(1, name, qtype, true), &ctx, &snap);
        let second = check_cached(&mut cache, &request(0x4242, name, qtype, true), &ctx, &snap);
        assert_eq!(first, full, "{name} {qtype}: miss renders like the full path");
        assert_eq!(second[..2], [0x42, 0x42], "{name} {qtype}: the request's ID");
        assert_eq!(second[2..], full[2..], "{name} {qtype}: a hit is the stored reply");
    }
    assert_eq!(cache.stats(), CacheStats { hits: 4, misses: 4 });
}

#[test]
fn shuffled_answers_keep_varying_and_stay_complete() {
    let (ctx, snap) = (ctx(), snapshot(5, 1));
    let mut cache = AnswerCache::new();
    let req = request(9, "web.service.consul.", RecordType::A, true);
    let mut orders = HashSet::new();
    for _ in 0..2000 {
        let out = check_cached(&mut cache, &req, &ctx, &snap);
        let msg = Message::from_vec(&out).expect("decode");
        let ips = a_records(&msg);
        let mut sorted = ips.clone();
        sorted.sort();
        assert_eq!(sorted, ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"]);
        orders.insert(ips);
    }
    // One rendering, its records permuted on every hit: most of the 120 orders appear.
    assert!(orders.len() > 100, "only {} orders in 2000 answers", orders.len());
    assert_eq!(cache.stats(), CacheStats { hits: 1999, misses: 1 }, "rendered once");
}

/// How often each A record came first in `n` cached answers to `req`, and the misses.
fn first_positions(
    cache: &mut AnswerCache,
    req: &[u8],
    ctx: &DnsContext,
    snap: &Arc<CatalogSnapshot>,
    n: usize,
) -> std::collections::BTreeMap<String, usize> {
    let mut firsts = std::collections::BTreeMap::new();
    for _ in 0..n {
        let out = check_cached(cache, req, ctx, snap);
        let msg = Message::from_vec(&out).expect("decode");
        let first = a_records(&msg).into_iter().next().expect("an A record");
        *firsts.entry(first).or_insert(0) += 1;
    }
    firsts
}

#[test]
fn a_permuted_answer_puts_every_record_first_equally_often() {
    let (ctx, snap) = (ctx(), snapshot(5, 1));
    let mut cache = AnswerCache::new();
    let req = request(9, "web.service.consul.", RecordType::A, true);
    let firsts = first_positions(&mut cache, &req, &ctx, &snap, 5000);
    assert_eq!(firsts.len(), 5, "{firsts:?}");
    // 1,000 expected each; the standard deviation is 28.
    assert!(firsts.values().all(|&c| (800..1200).contains(&c)), "{firsts:?}");
    assert_eq!(cache.stats().misses, 1);
}

#[test]
fn answers_cut_by_a_limit_or_without_a_fixed_layout_keep_rendered_variants() {
    // a_record_limit: 3 of 5 records, a different 3 per draw.
    let (mut ctx, snap) = (ctx(), snapshot(5, 1));
    ctx.dns_config.a_record_limit = 3;
    let mut cache = AnswerCache::new();
    let req = request(9, "web.service.consul.", RecordType::A, true);
    // 8,000 queries, about 130 renderings: one of 5 instances never first is 1 in 10^11
    // (at 2,000 queries it was 1 in 500).
    let firsts = first_positions(&mut cache, &req, &ctx, &snap, 8000);
    assert_eq!(firsts.len(), 5, "every instance is served over time: {firsts:?}");
    assert!(cache.stats().misses > 10, "re-rendered, not permuted: {:?}", cache.stats());

    // Without EDNS the UDP answer count is capped at 3 in encoding.
    let ctx = self::ctx();
    let mut cache = AnswerCache::new();
    let classic = request(9, "web.service.consul.", RecordType::A, false);
    let firsts = first_positions(&mut cache, &classic, &ctx, &snap, 8000);
    assert_eq!(firsts.len(), 5, "every instance is served over time: {firsts:?}");
    assert!(cache.stats().misses > 10, "re-rendered, not permuted: {:?}", cache.stats());

    // SRV answers: their additional records point at the targets, and move with them.
    let srv = handle(
        &request(1, "web.service.consul.", RecordType::SRV, true),
        Transport::Udp,
        &ctx,
        &snap,
        &mut rand::rng(),
    )
    .expect("reply");
    assert!(matches!(Permute::of(&srv), Some(Permute::Srv { .. })));
    let a = handle(&req, Transport::Udp, &ctx, &snap, &mut rand::rng()).expect("reply");
    assert!(Permute::of(&a).is_some(), "three A records of 16 bytes");
    let one = handle(
        &request(1, "n0.node.consul.", RecordType::A, true),
        Transport::Udp,
        &ctx,
        &snap,
        &mut rand::rng(),
    )
    .expect("reply");
    assert_eq!(Permute::of(&one), None, "one record: nothing to permute");
}

#[test]
fn equal_addresses_merged_into_one_record_keep_rendered_variants() {
    // Two instances on nodes with one address: the merged record comes first 2 times in 5,
    // which a permutation of the 4 records (1 in 4) would not reproduce.
    let mut dump = CatalogDump::default();
    for i in 0..5u8 {
        let node = format!("n{i}");
        let addr = format!("10.0.0.{}", i.min(3) + 1);
        let mut n = Node::new(&node, &addr, "dc1");
        n.modify_index = 1;
        dump.nodes.push(n);
        dump.services.push(Service::new(&node, "web", "web", 8000));
    }
    dump.service_indexes = vec![("web".into(), 1)];
    let snap = Arc::new(CatalogSnapshot { index: 1, catalog: CatalogState::from_dump(dump) });
    let ctx = ctx();
    let mut cache = AnswerCache::new();
    let req = request(9, "web.service.consul.", RecordType::A, true);
    // About one rendering per 64 queries; each leaves a given address out of first place
    // with probability 4/5, so 2,000 queries (35 renderings) missed one 1 time in 2,500
    // (seen in CI). 8,000 queries (about 130 renderings) miss one 1 time in 10^12.
    let firsts = first_positions(&mut cache, &req, &ctx, &snap, 8000);
    assert_eq!(firsts.len(), 4, "{firsts:?}");
    assert!(cache.stats().misses > 10, "re-rendered, not permuted: {:?}", cache.stats());
}

#[test]
fn a_changed_answer_renders_again_a_reload_empties_the_cache_and_the_serial_stays_current() {
    let mut ctx = ctx();
    let mut cache = AnswerCache::new();
    let req = request(3, "web.service.consul.", RecordType::A, false);
    let one = check_cached(&mut cache, &req, &ctx, &snapshot(1, 1));
    assert_eq!(Message::from_vec(&one).expect("decode").answers.len(), 1);
    let two = check_cached(&mut cache, &req, &ctx, &snapshot(2, 2));
    assert_eq!(Message::from_vec(&two).expect("decode").answers.len(), 2, "new snapshot, new answer");

    let snap = snapshot(1, 3);
    let nx = request(4, "nope.service.consul.", RecordType::A, false);
    check_cached(&mut cache, &nx, &ctx, &snap);
    ctx.soa_serial = 99;
    let out = check_cached(&mut cache, &nx, &ctx, &snap);
    let msg = Message::from_vec(&out).expect("decode");
    assert_eq!(msg.metadata.response_code, ResponseCode::NXDomain);
    let serials: Vec<u32> = msg
        .authorities
        .iter()
        .filter_map(|r| match &r.data {
            RData::SOA(soa) => Some(soa.serial),
            _ => None,
        })
        .collect();
    assert_eq!(serials, [99]);
    assert_eq!(cache.stats().hits, 1, "the serial change was patched, not re-rendered");

    ctx.generation += 1;
    ctx.dns_config.soa.min_ttl = 30;
    let out = check_cached(&mut cache, &nx, &ctx, &snap);
    let msg = Message::from_vec(&out).expect("decode");
    assert_eq!(msg.authorities.first().map(|r| r.ttl), Some(30), "a reload renders again");
}

#[test]
fn a_new_snapshot_looks_again_only_at_the_rows_that_changed() {
    let ctx = ctx();
    let mut cache = AnswerCache::new();
    let web = request(1, "web.service.consul.", RecordType::A, true);
    let api = request(2, "api.service.consul.", RecordType::A, true);
    let node = request(3, "n1.node.consul.", RecordType::A, true);
    let first = versioned(3, 1, 1);
    for req in [&web, &api, &node] {
        check_cached(&mut cache, req, &ctx, &first);
    }
    // api and its node a0 move; web and n1 do not.
    let second = versioned(3, 1, 2);
    for req in [&web, &node] {
        check_cached(&mut cache, req, &ctx, &second);
    }
    assert_eq!(cache.rows_checked(), 0, "web's and n1's rows are unchanged: nothing looked up");
    let out = check_cached(&mut cache, &api, &ctx, &second);
    assert!(a_records(&Message::from_vec(&out).expect("decode")).contains(&"10.1.0.2".to_owned()));
    assert_eq!(cache.rows_checked(), 1, "api's row is checked, and its answer renders again");
    assert_eq!(cache.stats().misses, 4);
    // web moves: its answers are checked (and render again); a snapshot older than the last
    // one seen empties the cache.
    let third = versioned(4, 3, 3);
    let out = check_cached(&mut cache, &web, &ctx, &third);
    assert_eq!(a_records(&Message::from_vec(&out).expect("decode")).len(), 4);
    assert_eq!(cache.stats().misses, 5);
    check_cached(&mut cache, &node, &ctx, &first);
    assert_eq!(cache.stats().misses, 6, "an older snapshot: rendered, not trusted");
}

/// `web` on nodes n0..n2 (node rows at index 1) with its service index at `web_index`, in a
/// snapshot at that index: nothing an answer shows differs between two of them.
fn web_index_moved(web_index: u64) -> Arc<CatalogSnapshot> {
    let mut dump = web_dump(3, 1);
    dump.service_indexes = vec![("web".into(), web_index)];
    Arc::new(CatalogSnapshot { index: web_index, catalog: CatalogState::from_dump(dump) })
}

#[test]
fn a_moved_service_is_digested_once_per_version_however_many_answers_read_it() {
    let ctx = ctx();
    let mut cache = AnswerCache::new();
    // One rendering each (permuted A records, an empty AAAA answer): a hit never renders.
    let requests = [
        request(1, "web.service.consul.", RecordType::A, true),
        request(2, "web.service.consul.", RecordType::A, false),
        request(3, "web.service.consul.", RecordType::AAAA, true),
        request(4, "web.service.consul.", RecordType::AAAA, false),
    ];
    let first = web_index_moved(1);
    for req in &requests {
        check_cached(&mut cache, req, &ctx, &first);
    }
    assert_eq!(cache.digests_walked(), 1, "four renderings of one version: one walk");
    // Each answer is checked at a later snapshot than the one before it, as a loop meets
    // them under a stream of writes to other services.
    for (i, req) in requests.iter().enumerate() {
        let mut later = web_index_moved(2);
        Arc::make_mut(&mut later).index = 2 + i as u64;
        check_cached(&mut cache, req, &ctx, &later);
    }
    assert_eq!(cache.stats().misses, 4, "nothing shown changed: every answer is still current");
    assert_eq!(cache.digests_walked(), 2, "one walk for the service's new version, not one per answer");
}

#[test]
fn an_answer_with_one_order_is_rendered_once() {
    let ctx = ctx();
    let mut cache = AnswerCache::new();
    let snap = snapshot(3, 1);
    let one = snapshot(1, 1);
    // No AAAA records (an empty answer) and a one-instance service: the shuffle drew, but
    // there is only one order to give.
    let nodata = request(1, "web.service.consul.", RecordType::AAAA, true);
    let single = request(2, "web.service.consul.", RecordType::SRV, true);
    for _ in 0..200 {
        check_cached(&mut cache, &nodata, &ctx, &snap);
    }
    let mut other = AnswerCache::new();
    for _ in 0..200 {
        check_cached(&mut other, &single, &ctx, &one);
    }
    assert_eq!(cache.stats().misses, 1, "{:?}", cache.stats());
    assert_eq!(other.stats().misses, 1, "{:?}", other.stats());
}

#[test]
fn forwarding_is_never_cached() {
    let mut ctx = ctx();
    ctx.recursors = vec!["127.0.0.1:1".parse().expect("addr")];
    let snap = snapshot(1, 1);
    let mut cache = AnswerCache::new();
    let req = request(5, "example.com.", RecordType::A, false);
    for _ in 0..3 {
        let mut out = Vec::new();
        let pending = cache.respond(&req, Transport::Udp, &ctx, &snap, &mut out);
        assert!(matches!(pending, Some(Response::Forward { .. })), "{pending:?}");
        assert!(out.is_empty());
    }
}

#[test]
fn soa_serial_offsets_point_at_every_serial() {
    let snap = snapshot(1, 1);
    let mut ctx = ctx();
    ctx.soa_serial = 0x0102_0304;
    let reply =
        handle(&request(1, "consul.", RecordType::SOA, true), Transport::Udp, &ctx, &snap, &mut rand::rng())
            .expect("reply");
    let offsets = soa_serial_offsets(&reply);
    assert_eq!(offsets.len(), 1);
    assert_eq!(reply[offsets[0]..offsets[0] + 4], [1, 2, 3, 4]);
    assert!(soa_serial_offsets(&reply[..20]).is_empty(), "a cut message yields nothing");
}

#[test]
fn a_write_renders_again_only_the_answers_that_read_what_it_changed() {
    let ctx = ctx();
    let mut cache = AnswerCache::new();
    let web = request(1, "web.service.consul.", RecordType::SRV, true);
    let api = request(2, "api.service.consul.", RecordType::A, true);
    let node = request(3, "a0.node.consul.", RecordType::A, true);
    let first = versioned(1, 1, 1);
    for req in [&web, &api, &node] {
        check_cached(&mut cache, req, &ctx, &first);
    }
    assert_eq!(cache.stats(), CacheStats { hits: 0, misses: 3 });
    // A write at index 2 changed `api` and node a0 (its address), not `web`.
    let second = versioned(1, 1, 2);
    check_cached(&mut cache, &web, &ctx, &second);
    assert_eq!(cache.stats(), CacheStats { hits: 1, misses: 3 }, "web is still current");
    for req in [&api, &node] {
        let out = check_cached(&mut cache, req, &ctx, &second);
        let msg = Message::from_vec(&out).expect("decode");
        let ips = a_records(&msg);
        assert_eq!(ips, ["10.1.0.2"], "rendered again from the new snapshot");
    }
    assert_eq!(cache.stats(), CacheStats { hits: 1, misses: 5 });
}

#[test]
fn weighted_orders_are_drawn_per_query_not_stored() {
    let mut ctx = ctx();
    ctx.dns_config.weighted_shuffle = true;
    let snap = snapshot(3, 1);
    let mut cache = AnswerCache::new();
    let shuffled = request(1, "web.service.consul.", RecordType::SRV, true);
    let single = request(2, "n0.node.consul.", RecordType::A, true);
    for _ in 0..10 {
        check_cached(&mut cache, &shuffled, &ctx, &snap);
        check_cached(&mut cache, &single, &ctx, &snap);
    }
    assert_eq!(cache.stats(), CacheStats { hits: 9, misses: 11 }, "only the unshuffled answer is stored");
}

/// `web` on 4 nodes with node meta (so each SRV target has an A and two TXT records), and
/// `db` whose instances have their own addresses (targets under `addr.`, meta TXT owned by
/// the node name) or share a node and port.
fn srv_snapshot() -> Arc<CatalogSnapshot> {
    let mut dump = CatalogDump::default();
    for i in 0..4u8 {
        let node = format!("node{i}");
        let mut n = Node::new(&node, &format!("10.0.0.{}", i + 1), "dc1");
        n.modify_index = 1;
        n.meta.insert("rack".into(), format!("r{i}"));
        n.meta.insert("zone".into(), "z".repeat(usize::from(i) + 1));
        dump.nodes.push(n);
        dump.services.push(Service::new(&node, &format!("web{i}"), "web", 8000 + u16::from(i)));
        let mut own = Service::new(&node, &format!("db{i}"), "db", 5432);
        own.address = format!("10.9.0.{}", i + 1);
        dump.services.push(own);
        dump.services.push(Service::new(&node, &format!("cache{i}"), "cache", 6379));
        dump.services.push(Service::new(&node, &format!("cache{i}-b"), "cache", 6379));
    }
    dump.service_indexes = vec![("web".into(), 1), ("db".into(), 1), ("cache".into(), 1)];
    Arc::new(CatalogSnapshot { index: 1, catalog: CatalogState::from_dump(dump) })
}

#[test]
fn a_permuted_srv_answer_is_what_the_full_path_renders_for_that_order() {
    let (ctx, snap) = (ctx(), srv_snapshot());
    let req = request(9, "web.service.consul.", RecordType::SRV, true);
    let mut full = HashSet::new();
    for _ in 0..3000 {
        full.insert(handle(&req, Transport::Udp, &ctx, &snap, &mut rand::rng()).expect("reply"));
    }
    assert_eq!(full.len(), 24, "the full path gives each of the 4! orders");
    let first = full.iter().next().expect("a rendering");
    let msg = Message::from_vec(first).expect("decode");
    assert_eq!((msg.answers.len(), msg.additionals.len()), (4, 12), "an A and 2 TXT per target");
    assert!(matches!(Permute::of(first), Some(Permute::Srv { .. })));

    let mut cache = AnswerCache::new();
    let mut seen = HashSet::new();
    for _ in 0..3000 {
        let out = check_cached(&mut cache, &req, &ctx, &snap);
        assert!(full.contains(&out), "a hit is a rendering of the full path: {out:02x?}");
        seen.insert(out);
    }
    assert_eq!(seen.len(), 24, "every order is served");
    assert_eq!(cache.stats(), CacheStats { hits: 2999, misses: 1 }, "rendered once");
    // The layout (4 pieces, 3 owners each) counts against the cache's bound beside the key
    // and the rendering.
    let stored = req.len() - 2 + 1 + first.len();
    assert!(cache.bytes_held() >= stored + 4 * 3 * size_of::<usize>(), "{} held", cache.bytes_held());
}

#[test]
fn a_permuted_srv_answer_puts_every_target_first_equally_often() {
    let (ctx, snap) = (ctx(), srv_snapshot());
    let req = request(9, "web.service.consul.", RecordType::SRV, true);
    let mut cache = AnswerCache::new();
    let mut firsts = std::collections::BTreeMap::new();
    for _ in 0..4000 {
        let msg = Message::from_vec(&check_cached(&mut cache, &req, &ctx, &snap)).expect("decode");
        let Some(RData::SRV(srv)) = msg.answers.first().map(|r| &r.data) else { panic!("an SRV answer") };
        *firsts.entry(srv.target.to_string()).or_insert(0) += 1;
    }
    assert_eq!(firsts.len(), 4, "{firsts:?}");
    // 1,000 expected each; the standard deviation is 27.
    assert!(firsts.values().all(|&c| (800..1200).contains(&c)), "{firsts:?}");
    assert_eq!(cache.stats().misses, 1);
}

#[test]
fn srv_answers_whose_records_do_not_move_as_a_whole_keep_rendered_variants() {
    let (ctx, snap) = (ctx(), srv_snapshot());
    let render = |name: &str| {
        handle(&request(9, name, RecordType::SRV, true), Transport::Udp, &ctx, &snap, &mut rand::rng())
            .expect("reply")
    };
    // Targets under `addr.`: the node-meta TXT records are owned by the node names, which
    // point into the middle of other records.
    let db = render("db.service.consul.");
    assert_eq!(Message::from_vec(&db).expect("decode").answers.len(), 4);
    assert_eq!(Permute::of(&db), None);
    // Two instances per node and port: one of each pair is answered, which one depends on
    // the order, so the answer is cut (`partial`) and never permuted.
    let req = request(9, "cache.service.consul.", RecordType::SRV, true);
    let mut cache = AnswerCache::new();
    for _ in 0..300 {
        let msg = Message::from_vec(&check_cached(&mut cache, &req, &ctx, &snap)).expect("decode");
        assert_eq!(msg.answers.len(), 4);
    }
    assert!(cache.stats().misses > 2, "rendered again, not permuted: {:?}", cache.stats());
    // Without EDNS the answer is capped at 3 of 4.
    let classic = request(9, "web.service.consul.", RecordType::SRV, false);
    let mut cache = AnswerCache::new();
    for _ in 0..300 {
        check_cached(&mut cache, &classic, &ctx, &snap);
    }
    assert!(cache.stats().misses > 2, "rendered again, not permuted: {:?}", cache.stats());
}
