//! Stage 3, answer from the catalog: (`Routed`, qtype, snapshot, context) -> `Answer`
//! (RCODE + sections). The catalog's answer source (`source::Catalog`) routes, then calls
//! this.
//!
//! Input: the parsed request, its route, the `DnsContext`, one `CatalogSnapshot` and what
//! ACLs let the answer show (`Access`).
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
//! Service and prepared-query lookups (instances -> SRV, A/AAAA, CNAME) are in `service`;
//! this file holds the entry, the shared `Lookup` and the node, addr, PTR, SOA and NS
//! answers.
//!
//! Under ACLs (spec §1.9, `access`): a service or node the token may not read is NXDOMAIN
//! like an unknown one, instances on nodes it may not read are left out, a token that does
//! not resolve is SERVFAIL (service, node and prepared-query lookups), and PTR and NS answers
//! show only what the token may read (they never fail: Consul logs the error and answers
//! without those records).
//!
//! Invariants: pure (the RNG is the only source of variation), reads only the given
//! snapshot, never panics; a name that cannot be built (too long, bad label) is skipped.

use std::cell::RefCell;
use std::net::IpAddr;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use rand::seq::SliceRandom;

use super::access::Access;
use super::context::DnsContext;
use super::message::{Answer, Deps, Resolved, Rr};
use super::parse::Request;
use super::route::{Route, Routed};
use super::source::{LookupControlFlow, Outcome};
use crate::catalog::{CatalogState, HealthStatus, Node};
use crate::snapshot::CatalogSnapshot;

mod service;

pub(crate) use service::digest_service;

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
    /// What ACLs let the answer show.
    access: &'a Access,
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
#[allow(clippy::too_many_arguments)]
pub(super) fn answer(
    req: &Request,
    routed: &Routed,
    ctx: &DnsContext,
    snap: &CatalogSnapshot,
    access: &Access,
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
        access,
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
            access: self.access,
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
            Route::Connect { name, dc } => self.connect(name, dc, rng),
            Route::Ingress { name, dc } => self.ingress(name, dc, rng),
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

    /// SERVFAIL without records: the lookup's token did not resolve (Consul's RPC error).
    fn servfail(&self) -> Answer {
        Answer::new(ResponseCode::ServFail, true)
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

    fn node(&self, name: &str, dc: &str, rng: &mut impl rand::Rng) -> Answer {
        if dc != self.ctx.datacenter {
            return self.nxdomain();
        }
        self.deps.borrow_mut().nodes.push(crate::catalog::key(name));
        let acl = self.access.default_acl();
        if acl.failed() {
            return self.servfail();
        }
        let Some(node) = self.catalog.node(name).filter(|n| acl.node_read(&n.name)) else {
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
        let acl = self.access.default_acl();
        let target = match self.catalog.nodes().find(|n| is_ip(&n.address) && acl.node_read(&n.name)) {
            Some(node) => format!("{}.node.{dc}.{domain}", node.name),
            None => {
                let svc = self
                    .catalog
                    .services()
                    .find(|s| is_ip(&s.address) && acl.service_read(&s.name) && acl.node_read(&s.node))?;
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
        let acl = self.access.default_acl();
        let Some(apex) = dns_name(self.zone).filter(|_| !acl.failed()) else {
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
        // The own-node fallback is for a catalog without servers, not for servers ACLs hide.
        let fallback = servers.is_empty() && acl.node_read(&self.ctx.node_name);
        servers.retain(|n| acl.service_read("consul") && acl.node_read(&n.name));
        servers.dedup_by(|a, b| a.name.eq_ignore_ascii_case(&b.name));
        servers.shuffle(rng);
        servers.truncate(3);
        let mut names: Vec<(String, Option<&Node>)> =
            servers.iter().map(|n| (n.name.clone(), Some(n.as_ref()))).collect();
        if names.is_empty() && fallback && is_dns_label_text(&self.ctx.node_name) {
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
