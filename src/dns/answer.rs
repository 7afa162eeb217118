//! Stage 3, answer from the catalog: (`Routed`, qtype, snapshot, context) -> `Answer`
//! (RCODE + sections). The catalog's answer source (`source::Catalog`) routes, then calls
//! this.
//!
//! Input: the parsed request, its route, the `DnsContext` and one `CatalogSnapshot`.
//! Output: a `LookupControlFlow`: `Break` with the answer (RCODE, AA, records) or with the
//! host names to resolve first, for names in our domains; `Skip` for names outside them
//! (the forwarder's, or REFUSED); `Continue` with NXDOMAIN for a reverse name no node or
//! service has (the forwarder may take it instead).
//!
//! Behaviour (spec §2.1–2.3, 2.6–2.11): health-filtered, shuffled and de-duplicated service
//! answers; node, addr, SOA and NS answers; NXDOMAIN/NODATA carry the SOA in Authority.
//! Every answer record carries the Additional records that belong to it (`Rr::extra`), so
//! the encoder can drop answers and keep Additional in step.
//!
//! Invariants: pure (the RNG is the only source of variation), reads only the given
//! snapshot, never panics; a name that cannot be built (too long, bad label) is skipped.

use std::cell::RefCell;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use rand::RngExt;
use rand::seq::SliceRandom;

use super::context::DnsContext;
use super::message::{Answer, Deps, Resolved, Rr};
use super::parse::Request;
use super::route::{Route, Routed, encode_addr};
use super::source::{LookupControlFlow, Outcome};
use crate::catalog::{CatalogState, HealthStatus, Instance, Node, Service};
use crate::snapshot::CatalogSnapshot;

/// Internal CNAME resolution depth (Consul's `maxRecursionLevelDefault`).
const MAX_DEPTH: u8 = 3;
/// Records kept from a recursor's answer for a request without EDNS (spec §2.5).
const MAX_CHAIN_WITHOUT_EDNS: usize = 5;

/// Everything one lookup needs, borrowed.
struct Lookup<'a> {
    qname: &'a Name,
    qtype: RecordType,
    /// The domain spelled as asked: generated names end with it.
    resp_domain: &'a str,
    /// The owner of the SOA in negative answers.
    zone: &'a str,
    ctx: &'a DnsContext,
    catalog: &'a CatalogState,
    resolved: &'a Resolved,
    /// External host names the answer needs from the recursors.
    needs: &'a RefCell<Vec<Name>>,
    /// What the answer read from the catalog.
    deps: &'a RefCell<Deps>,
    /// Internal CNAME resolution depth of this lookup (0 for the question itself).
    depth: u8,
    /// Whether the request carried EDNS.
    edns: bool,
}

/// Answers one routed question from `snap`: `Break` for names in our domains, `Skip` for
/// names outside them, `Continue` (NXDOMAIN) for a reverse name nobody has.
pub(super) fn answer(
    req: &Request,
    routed: &Routed,
    ctx: &DnsContext,
    snap: &CatalogSnapshot,
    resolved: &Resolved,
    deps: &RefCell<Deps>,
    rng: &mut impl rand::Rng,
) -> LookupControlFlow {
    let qtype = req.query.query_type();
    if matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
        let ans = Answer::new(ResponseCode::NotImp, routed.route != Route::NotOurs);
        return LookupControlFlow::Break(Outcome::Answer(ans));
    }
    let needs = RefCell::new(Vec::new());
    let strict = ctx.dns_config.strict_rfc;
    let l = Lookup {
        qname: req.query.name(),
        qtype,
        resp_domain: &routed.resp_domain,
        zone: if strict { &routed.zone } else { &routed.resp_domain },
        ctx,
        catalog: &snap.catalog,
        resolved,
        needs: &needs,
        deps,
        depth: 0,
        edns: req.edns.is_some(),
    };
    let ans = match &routed.route {
        // Not ours: the next source (the forwarder) or REFUSED.
        Route::NotOurs => return LookupControlFlow::Skip,
        // Nobody has the address: NXDOMAIN unless the forwarder takes the name.
        Route::Ptr { ip } => match l.ptr(*ip) {
            Some(a) => a,
            None => return LookupControlFlow::Continue(Outcome::Answer(l.nxdomain())),
        },
        _ if matches!(qtype, RecordType::SOA | RecordType::NS) && (!strict || routed.at_apex) => {
            if qtype == RecordType::SOA { soa_answer(&l, rng) } else { ns_answer(&l, rng) }
        }
        // Strict RFC mode: SOA and NS exist only at zone apexes; elsewhere the name's
        // existence decides between NXDOMAIN and NODATA.
        _ if matches!(qtype, RecordType::SOA | RecordType::NS) => {
            let scratch = RefCell::new(Vec::new());
            let probe = Lookup { qtype: RecordType::ANY, needs: &scratch, ..l.sub(l.qname, l.resp_domain) };
            match probe.route_answer(&routed.route, rng).rcode {
                ResponseCode::NXDomain => l.nxdomain(),
                _ => l.nodata(),
            }
        }
        route => l.route_answer(route, rng),
    };
    let needs = needs.into_inner();
    if !needs.is_empty() && !resolved.is_complete() && !ctx.recursors.is_empty() {
        return LookupControlFlow::Break(Outcome::Resolve(needs));
    }
    LookupControlFlow::Break(Outcome::Answer(ans))
}

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

/// Parses a generated name; `None` if it is not a valid DNS name.
fn dns_name(s: &str) -> Option<Name> {
    let mut name = Name::from_ascii(s).ok()?;
    name.set_fqdn(true);
    Some(name)
}

fn ip_record(owner: Name, ttl: u32, ip: IpAddr) -> Record {
    let data = match ip {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    };
    Record::from_rdata(owner, ttl, data)
}

/// Address family wanted by a qtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    V4,
    V6,
    Any,
    /// Only host names (other qtypes: a CNAME is the only record they can get).
    Host,
}

/// The address an instance or node offers for a family (spec §2.4).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Addr {
    Ip(IpAddr),
    Host(String),
    Nothing,
}

/// Picks an address from a default address and optional `lan_ipv4`/`lan_ipv6` tagged ones.
fn pick(default: &str, lan4: Option<&str>, lan6: Option<&str>, want: Want) -> Addr {
    let v4 = |s: Option<&str>| s.and_then(|s| s.parse::<IpAddr>().ok()).filter(IpAddr::is_ipv4);
    let v6 = |s: Option<&str>| s.and_then(|s| s.parse::<IpAddr>().ok()).filter(IpAddr::is_ipv6);
    let fallback = || match default.parse::<IpAddr>() {
        Ok(ip) => Addr::Ip(ip),
        Err(_) if default.is_empty() => Addr::Nothing,
        Err(_) => Addr::Host(default.to_owned()),
    };
    let picked = match want {
        Want::V4 => v4(lan4),
        Want::V6 => v6(lan6),
        Want::Any => v6(lan6).or_else(|| v4(lan4)),
        Want::Host => None,
    };
    match (picked, fallback(), want) {
        (Some(ip), _, _) => Addr::Ip(ip),
        (None, Addr::Ip(_), Want::Host) => Addr::Nothing,
        (None, Addr::Ip(ip), Want::V4) if !ip.is_ipv4() => Addr::Nothing,
        (None, Addr::Ip(ip), Want::V6) if !ip.is_ipv6() => Addr::Nothing,
        (None, other, _) => other,
    }
}

fn node_addr(node: &Node, want: Want) -> Addr {
    let tagged = |k: &str| node.tagged_addresses.get(k).map(String::as_str);
    pick(&node.address, tagged("lan_ipv4"), tagged("lan_ipv6"), want)
}

/// Whether a registered host name spells `qname` (with or without the trailing dot).
fn names_match(host: &str, qname: &Name) -> bool {
    let q = qname.to_ascii();
    host.trim_end_matches('.').eq_ignore_ascii_case(q.trim_end_matches('.'))
}

/// Whether the instance's own address applies: it is set and is not the question itself
/// (a service whose address is its own DNS name uses the node's address, spec §1.11).
fn has_service_address(inst: &Instance, qname: &Name) -> bool {
    let a = &inst.service.address;
    !a.is_empty() && !names_match(a, qname)
}

/// The instance's address: the service address when it applies, else the node's (§2.4).
fn instance_addr(inst: &Instance, want: Want, qname: &Name) -> Addr {
    let s = &inst.service;
    if !has_service_address(inst, qname) {
        return node_addr(&inst.node, want);
    }
    let tagged = |k: &str| s.tagged_addresses.get(k).map(|a| a.address.as_str());
    pick(&s.address, tagged("lan_ipv4"), tagged("lan_ipv6"), want)
}

/// Whether an instance with this health is answered (Consul's ExcludeCritical filter, or
/// passing only with `only_passing`).
fn answered(health: HealthStatus, only_passing: bool) -> bool {
    match health {
        HealthStatus::Passing => true,
        HealthStatus::Warning => !only_passing,
        HealthStatus::Critical => false,
    }
}

/// The SRV weight of an instance with this health.
fn weight(service: &Service, health: HealthStatus) -> u32 {
    match health {
        HealthStatus::Passing => service.weights.passing,
        _ => service.weights.warning,
    }
}

/// Feeds `h` everything a lookup of service `name` reads from `catalog`, with health folded
/// in as answers use it (whether an instance is answered, and its SRV weight). Two catalogs
/// that feed the same bytes give the same answers to every question about the name (any
/// tag, port or query type; records from other names an answer reaches through a CNAME are
/// that name's own dependency). The answer cache compares digests so that a write that
/// changed nothing an answer shows (a check going from passing to warning with equal
/// weights, a check's output) leaves the answer cached.
pub(crate) fn digest_service(catalog: &CatalogState, name: &str, only_passing: bool, h: &mut impl Hasher) {
    let mut count = 0usize;
    for inst in catalog.service_instances(name) {
        count += 1;
        let (n, s) = (&*inst.node, &*inst.service);
        (&n.id, &n.name, &n.address, &n.datacenter, &n.tagged_addresses, &n.meta).hash(h);
        (&s.node, &s.id, &s.name, &s.tags, &s.address, s.port, &s.meta, s.enable_tag_override).hash(h);
        h.write_usize(s.ports.len());
        for p in &s.ports {
            (&p.name, p.port, p.default).hash(h);
        }
        h.write_usize(s.tagged_addresses.len());
        for (k, a) in &s.tagged_addresses {
            (k, &a.address, a.port).hash(h);
        }
        let health = catalog.instance_health(&s.node, &s.id);
        let shown = answered(health, only_passing);
        (shown, if shown { weight(s, health) } else { 0 }).hash(h);
    }
    h.write_usize(count);
}

/// A healthy instance chosen for an answer, with the port the question selects.
struct Candidate {
    inst: Instance,
    health: HealthStatus,
    port: u16,
}

impl Candidate {
    fn weight(&self) -> u32 {
        weight(&self.inst.service, self.health)
    }
}

/// Orders candidates by weighted random choice without replacement: each position goes to
/// a remaining instance with probability proportional to its weight (Efraimidis–Spirakis
/// keys `ln(u) / w`); weight-0 instances follow all others, in random order.
fn weighted_shuffle(cands: Vec<Candidate>, rng: &mut impl rand::Rng) -> Vec<Candidate> {
    let mut keyed: Vec<(f64, Candidate)> = cands
        .into_iter()
        .map(|c| {
            let u: f64 = 1.0 - rng.random::<f64>();
            let key = match c.weight() {
                0 => f64::NEG_INFINITY,
                w => u.ln() / f64::from(w),
            };
            (key, c)
        })
        .collect();
    // Ties (weight 0) keep this random order: the sort below is stable.
    keyed.shuffle(rng);
    keyed.sort_by(|a, b| b.0.total_cmp(&a.0));
    keyed.into_iter().map(|(_, c)| c).collect()
}

/// RFC 1464 `key=value` (spec §2.6); `rfc1035-` keys emit only the value.
pub(crate) fn encode_kv(key: &str, value: &str) -> String {
    if key.len() >= 8 && key.get(..8).is_some_and(|p| p.eq_ignore_ascii_case("rfc1035-")) {
        return value.to_owned();
    }
    let mut k = key.replace('`', "``").replace('=', "`=");
    let trimmed_start = k.trim_start_matches(' ');
    let lead = k.len() - trimmed_start.len();
    let mut body = k.split_off(lead);
    let body_trimmed_len = body.trim_end_matches(' ').len();
    let trail = body.split_off(body_trimmed_len);
    let mut out = String::new();
    for _ in 0..lead {
        out.push_str("` ");
    }
    out.push_str(&body);
    for _ in 0..trail.len() {
        out.push_str("` ");
    }
    out.push('=');
    out.push_str(&value.replace('`', "``"));
    out
}

/// Splits a TXT payload into ≤ 255-byte character-strings on char boundaries.
fn txt_strings(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for ch in s.chars() {
        if cur.len() + ch.len_utf8() > 255 {
            out.push(std::mem::take(&mut cur));
        }
        cur.push(ch);
    }
    if !cur.is_empty() || out.is_empty() {
        out.push(cur);
    }
    out
}

fn meta_txt(owner: &Name, ttl: u32, node: &Node) -> Vec<Record> {
    node.meta
        .iter()
        .map(|(k, v)| {
            Record::from_rdata(owner.clone(), ttl, RData::TXT(TXT::new(txt_strings(&encode_kv(k, v)))))
        })
        .collect()
}

fn is_dns_label_text(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

impl<'a> Lookup<'a> {
    /// The same lookup for another name (internal resolution, existence probes).
    fn sub<'b>(&'b self, qname: &'b Name, resp_domain: &'b str) -> Lookup<'b> {
        Lookup {
            qname,
            qtype: self.qtype,
            resp_domain,
            zone: resp_domain,
            ctx: self.ctx,
            catalog: self.catalog,
            resolved: self.resolved,
            needs: self.needs,
            deps: self.deps,
            depth: self.depth,
            edns: self.edns,
        }
    }

    fn strict(&self) -> bool {
        self.ctx.dns_config.strict_rfc
    }

    /// The answer for a name inside our domains (any qtype but SOA/NS at an apex).
    fn route_answer(&self, route: &Route, rng: &mut impl rand::Rng) -> Answer {
        match route {
            Route::Service { tags, name, dc, port } => self.service(tags, name, dc, port.as_deref(), rng),
            Route::Node { name, dc } => self.node(name, dc, rng),
            Route::Query { name, dc } => self.prepared_query(name, dc, rng),
            Route::Addr { ip } => self.addr(*ip),
            Route::Apex | Route::EmptyNonTerminal if self.strict() => self.nodata(),
            Route::Apex
            | Route::EmptyNonTerminal
            | Route::Invalid
            | Route::Unsupported(_)
            | Route::Ptr { .. }
            | Route::NotOurs => self.nxdomain(),
        }
    }

    fn soa(&self) -> Option<Record> {
        let d = self.resp_domain;
        let owner = dns_name(self.zone)?;
        let mname = dns_name(&format!("ns.{d}"))?;
        let rname = dns_name(&format!("hostmaster.{d}"))?;
        let soa = &self.ctx.dns_config.soa;
        let clamp = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
        let data = SOA::new(
            mname,
            rname,
            self.ctx.soa_serial,
            clamp(soa.refresh),
            clamp(soa.retry),
            clamp(soa.expire),
            soa.min_ttl,
        );
        Some(Record::from_rdata(owner, soa.min_ttl, RData::SOA(data)))
    }

    fn with_soa(&self, rcode: ResponseCode) -> Answer {
        let mut a = Answer::new(rcode, true);
        a.authorities.extend(self.soa());
        a
    }

    fn nxdomain(&self) -> Answer {
        self.with_soa(ResponseCode::NXDomain)
    }

    fn nodata(&self) -> Answer {
        self.with_soa(ResponseCode::NoError)
    }

    /// NOERROR with nothing: Consul's answer to a type mismatch on a node or `.addr.` name
    /// (no SOA); strict RFC mode makes it a proper NODATA.
    fn empty(&self) -> Answer {
        if self.strict() { self.nodata() } else { Answer::new(ResponseCode::NoError, true) }
    }

    fn node_name(&self, node: &str, dc: &str) -> Option<Name> {
        dns_name(&format!("{node}.node.{dc}.{}", self.resp_domain))
    }

    /// The records a host name resolves to (spec §2.5). Inside our domains the name is
    /// answered internally as an ANY question, up to `MAX_DEPTH` levels; outside them the
    /// recursors' answer is used when there is one, and the name is reported as needed
    /// otherwise. `service_ttl` set: keep only CNAME/A/AAAA and force that TTL (service
    /// answers); unset: the recursor's answer section as is (node answers).
    fn chain(&self, host: &Name, service_ttl: Option<u32>, rng: &mut impl rand::Rng) -> Vec<Record> {
        let mut records: Vec<Record> = if self.ctx.in_domains(host) {
            if self.depth >= MAX_DEPTH {
                return Vec::new();
            }
            let routed = super::route::route(host, RecordType::ANY, self.ctx);
            let inner = Lookup {
                qtype: RecordType::ANY,
                depth: self.depth + 1,
                ..self.sub(host, &routed.resp_domain)
            };
            let ans = inner.route_answer(&routed.route, rng);
            ans.answers.into_iter().map(|rr| rr.record).collect()
        } else if self.ctx.recursors.is_empty() {
            return Vec::new();
        } else if let Some(answers) = self.resolved.get(host) {
            answers.clone()
        } else {
            if !self.resolved.is_complete() {
                self.needs.borrow_mut().push(host.clone());
            }
            return Vec::new();
        };
        if let Some(ttl) = service_ttl {
            records
                .retain(|r| matches!(r.record_type(), RecordType::CNAME | RecordType::A | RecordType::AAAA));
            for r in &mut records {
                r.ttl = ttl;
            }
            if !self.edns {
                records.truncate(MAX_CHAIN_WITHOUT_EDNS);
            }
        }
        records
    }

    fn service(
        &self,
        tags: &[String],
        name: &str,
        dc: &str,
        port: Option<&str>,
        rng: &mut impl rand::Rng,
    ) -> Answer {
        if dc != self.ctx.datacenter {
            return self.nxdomain();
        }
        self.deps.borrow_mut().services.push(crate::catalog::key(name));
        let only_passing = self.ctx.dns_config.only_passing;
        let has_tags =
            |i: &Instance| tags.iter().all(|t| i.service.tags.iter().any(|x| x.eq_ignore_ascii_case(t)));
        let selected_port = |i: &Instance| match port {
            None => Some(i.service.port),
            Some(p) => i.service.ports.iter().find(|sp| sp.name.eq_ignore_ascii_case(p)).map(|sp| sp.port),
        };
        let cands: Vec<Candidate> = self
            .catalog
            .service_instances(name)
            .filter(|i| has_tags(i))
            .filter_map(|inst| {
                let port = selected_port(&inst)?;
                let health = self.catalog.instance_health(&inst.service.node, &inst.service.id);
                answered(health, only_passing).then_some(Candidate { inst, health, port })
            })
            .collect();
        let ttl = secs(self.ctx.dns_config.service_ttl_for(name));
        self.instances_answer(cands, dc, ttl, rng)
    }

    /// A prepared query's answer (spec §1.6): its instances (filtered by the query's own
    /// rules) answered like a service lookup, with the query's `DNS.TTL`, else the service's
    /// `service_ttl`. An unknown query or no instances is NXDOMAIN. `Near` is not supported
    /// (no coordinates), so the instances are shuffled as for a service.
    fn prepared_query(&self, id_or_name: &str, dc: &str, rng: &mut impl rand::Rng) -> Answer {
        self.deps.borrow_mut().everything = true;
        if dc != self.ctx.datacenter {
            return self.nxdomain();
        }
        let Some(q) = self.catalog.resolve_query(id_or_name) else {
            return self.nxdomain();
        };
        let cands = self
            .catalog
            .query_instances(q)
            .into_iter()
            .map(|(inst, health)| Candidate { port: inst.service.port, inst, health })
            .collect();
        let ttl = crate::agent::parse_go_duration(&q.dns_ttl)
            .unwrap_or_else(|_| self.ctx.dns_config.service_ttl_for(&q.service.service));
        let mut a = self.instances_answer(cands, dc, secs(ttl), rng);
        a.location_scoped = a.rcode == ResponseCode::NoError;
        a
    }

    /// The answer for the healthy, filtered instances of a service-like lookup: NXDOMAIN
    /// when there are none, else shuffled records of the question's type (NODATA if none).
    fn instances_answer(
        &self,
        mut cands: Vec<Candidate>,
        dc: &str,
        ttl: u32,
        rng: &mut impl rand::Rng,
    ) -> Answer {
        if cands.is_empty() {
            return self.nxdomain();
        }
        if self.ctx.dns_config.weighted_shuffle {
            cands = weighted_shuffle(cands, rng);
        } else {
            cands.shuffle(rng);
        }
        let answers = match self.qtype {
            RecordType::SRV => self.srv_records(&cands, dc, ttl, rng),
            RecordType::A => self.address_records(&cands, Want::V4, ttl, rng),
            RecordType::AAAA => self.address_records(&cands, Want::V6, ttl, rng),
            RecordType::ANY => self.address_records(&cands, Want::Any, ttl, rng),
            // Consul answers TXT with the A/AAAA records (spec §2.2 quirk).
            RecordType::TXT if !self.strict() => self.address_records(&cands, Want::Any, ttl, rng),
            RecordType::TXT => Vec::new(),
            _ => self.address_records(&cands, Want::Host, ttl, rng),
        };
        if answers.is_empty() {
            return self.nodata();
        }
        let mut a = Answer::new(ResponseCode::NoError, true);
        a.answers = answers;
        a
    }

    /// A/AAAA records for a service, one per distinct IP (spec §2.5 mixing rule): if any
    /// instance has an IP, instances with host names are left out; if none has, only the
    /// first host name is answered, as a CNAME followed by what it resolves to.
    fn address_records(
        &self,
        cands: &[Candidate],
        want: Want,
        ttl: u32,
        rng: &mut impl rand::Rng,
    ) -> Vec<Rr> {
        let limit = match self.ctx.dns_config.a_record_limit {
            0 => usize::MAX,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        };
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let mut first_host = None;
        for c in cands {
            match instance_addr(&c.inst, want, self.qname) {
                Addr::Ip(ip) => {
                    if out.len() < limit && seen.insert(ip) {
                        out.push(Rr::bare(ip_record(self.qname.clone(), ttl, ip)));
                    } else {
                        self.deps.borrow_mut().partial = true;
                    }
                }
                Addr::Host(h) => {
                    first_host.get_or_insert(h);
                }
                Addr::Nothing => {}
            }
        }
        if !out.is_empty() {
            return out;
        }
        let Some(target) = first_host.and_then(|h| dns_name(&h)) else {
            return out;
        };
        out.push(Rr::bare(Record::from_rdata(self.qname.clone(), ttl, RData::CNAME(CNAME(target.clone())))));
        out.extend(self.chain(&target, Some(ttl), rng).into_iter().map(Rr::bare));
        out
    }

    /// SRV records with their target addresses and node-meta TXT (spec §2.3).
    fn srv_records(&self, cands: &[Candidate], dc: &str, ttl: u32, rng: &mut impl rand::Rng) -> Vec<Rr> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for c in cands {
            let (node, svc) = (&c.inst.node, &c.inst.service);
            let own_address = has_service_address(&c.inst, self.qname);
            let addr = if own_address { &svc.address } else { &node.address };
            if !seen.insert((crate::catalog::key(&node.name), addr.clone(), c.port)) {
                // Which of the equal instances is answered depends on the order.
                self.deps.borrow_mut().partial = true;
                continue;
            }
            let Some(node_target) = self.node_name(&node.name, dc) else {
                continue;
            };
            let mut extra = Vec::new();
            let target = match instance_addr(&c.inst, Want::Any, self.qname) {
                Addr::Ip(ip) if !own_address => {
                    extra.push(ip_record(node_target.clone(), ttl, ip));
                    node_target.clone()
                }
                Addr::Ip(ip) => {
                    let Some(t) = dns_name(&format!("{}.addr.{dc}.{}", encode_addr(ip), self.resp_domain))
                    else {
                        continue;
                    };
                    extra.push(ip_record(t.clone(), ttl, ip));
                    t
                }
                Addr::Host(h) => match dns_name(&h) {
                    Some(t) => {
                        extra.extend(self.chain(&t, Some(ttl), rng));
                        t
                    }
                    None => continue,
                },
                Addr::Nothing => continue,
            };
            if self.ctx.dns_config.enable_additional_node_meta_txt {
                extra.extend(meta_txt(&node_target, ttl, node));
            }
            let weight = u16::try_from(c.weight()).unwrap_or(u16::MAX);
            let srv = SRV::new(1, weight, c.port, target);
            out.push(Rr { record: Record::from_rdata(self.qname.clone(), ttl, RData::SRV(srv)), extra });
        }
        out
    }

    fn node(&self, name: &str, dc: &str, rng: &mut impl rand::Rng) -> Answer {
        if dc != self.ctx.datacenter {
            return self.nxdomain();
        }
        self.deps.borrow_mut().nodes.push(crate::catalog::key(name));
        let Some(node) = self.catalog.node(name) else {
            return self.nxdomain();
        };
        let ttl = secs(self.ctx.dns_config.node_ttl);
        let mut a = Answer::new(ResponseCode::NoError, true);
        let want = match self.qtype {
            RecordType::A => Want::V4,
            RecordType::AAAA => Want::V6,
            RecordType::ANY => Want::Any,
            RecordType::TXT => {
                a.answers = meta_txt(self.qname, ttl, node).into_iter().map(Rr::bare).collect();
                return if a.answers.is_empty() { self.empty() } else { a };
            }
            _ => return self.empty(),
        };
        let txt = meta_txt(self.qname, ttl, node);
        match node_addr(node, want) {
            Addr::Ip(ip) => {
                let record = ip_record(self.qname.clone(), ttl, ip);
                if want == Want::Any {
                    a.answers.push(Rr::bare(record));
                    a.answers.extend(txt.into_iter().map(Rr::bare));
                } else {
                    let meta = self.ctx.dns_config.enable_additional_node_meta_txt;
                    a.answers.push(Rr { record, extra: if meta { txt } else { Vec::new() } });
                }
            }
            Addr::Host(h) => {
                let Some(target) = dns_name(&h) else {
                    return self.empty();
                };
                let cname = Record::from_rdata(self.qname.clone(), ttl, RData::CNAME(CNAME(target.clone())));
                a.answers.push(Rr::bare(cname));
                a.answers.extend(self.chain(&target, None, rng).into_iter().map(Rr::bare));
            }
            Addr::Nothing => return self.empty(),
        }
        a
    }

    fn addr(&self, ip: IpAddr) -> Answer {
        let ttl = secs(self.ctx.dns_config.node_ttl);
        let record = ip_record(self.qname.clone(), ttl, ip);
        let mut a = Answer::new(ResponseCode::NoError, true);
        match (ip, self.qtype) {
            (IpAddr::V4(_), RecordType::A | RecordType::ANY)
            | (IpAddr::V6(_), RecordType::AAAA | RecordType::ANY) => {
                a.answers.push(Rr::bare(record));
            }
            _ if self.strict() => return self.nodata(),
            // Consul quirk (spec §1.7): other qtypes get the address in Additional.
            _ => a.additionals.push(record),
        }
        a
    }

    /// The PTR for a reverse name (spec §1.10): the first node with that address, else the
    /// first service instance whose own address it is. `None`: nobody has it.
    fn ptr(&self, ip: Option<IpAddr>) -> Option<Answer> {
        self.deps.borrow_mut().everything = true;
        let ip = ip?;
        let is_ip = |a: &str| a.parse::<IpAddr>().is_ok_and(|a| a == ip);
        let dc = &self.ctx.datacenter;
        let domain = &self.ctx.domain;
        let target = match self.catalog.nodes().find(|n| is_ip(&n.address)) {
            Some(node) => format!("{}.node.{dc}.{domain}", node.name),
            None => {
                let svc = self.catalog.services().find(|s| is_ip(&s.address))?;
                format!("{}.service.{dc}.{domain}", svc.name)
            }
        };
        let target = dns_name(&target)?;
        let mut a = Answer::new(ResponseCode::NoError, true);
        a.answers.push(Rr::bare(Record::from_rdata(self.qname.clone(), 0, RData::PTR(PTR(target)))));
        if self.qtype == RecordType::SOA {
            a.authorities.extend(self.soa());
        }
        Some(a)
    }

    /// Up to three NS records for the zone apex with their glue (spec §2.7).
    fn ns_records(&self, rng: &mut impl rand::Rng) -> Vec<Rr> {
        self.deps.borrow_mut().everything = true;
        let ttl = secs(self.ctx.dns_config.node_ttl);
        let Some(apex) = dns_name(self.zone) else {
            return Vec::new();
        };
        let mut servers: Vec<_> = self
            .catalog
            .service_instances("consul")
            .filter(|i| {
                self.catalog.instance_health(&i.service.node, &i.service.id) != HealthStatus::Critical
            })
            .map(|i| i.node)
            .filter(|n| is_dns_label_text(&n.name))
            .collect();
        servers.dedup_by(|a, b| a.name.eq_ignore_ascii_case(&b.name));
        servers.shuffle(rng);
        servers.truncate(3);
        let mut names: Vec<(String, Option<&Node>)> =
            servers.iter().map(|n| (n.name.clone(), Some(n.as_ref()))).collect();
        if names.is_empty() && is_dns_label_text(&self.ctx.node_name) {
            names.push((
                self.ctx.node_name.clone(),
                self.catalog.node(&self.ctx.node_name).map(AsRef::as_ref),
            ));
        }
        let mut out = Vec::new();
        for (name, node) in names {
            let text =
                format!("{name}.node.{}.{}", self.ctx.datacenter, self.resp_domain).to_ascii_lowercase();
            let Some(target) = dns_name(&text) else {
                continue;
            };
            let mut extra = Vec::new();
            if let Some(Addr::Ip(ip)) = node.map(|n| node_addr(n, Want::Any)) {
                extra.push(ip_record(target.clone(), ttl, ip));
            }
            out.push(Rr { record: Record::from_rdata(apex.clone(), ttl, RData::NS(NS(target))), extra });
        }
        out
    }
}

fn soa_answer(l: &Lookup<'_>, rng: &mut impl rand::Rng) -> Answer {
    let mut a = Answer::new(ResponseCode::NoError, true);
    a.answers.extend(l.soa().map(Rr::bare));
    for ns in l.ns_records(rng) {
        a.authorities.push(ns.record);
        a.additionals.extend(ns.extra);
    }
    a
}

fn ns_answer(l: &Lookup<'_>, rng: &mut impl rand::Rng) -> Answer {
    let mut a = Answer::new(ResponseCode::NoError, true);
    a.answers = l.ns_records(rng);
    a
}
