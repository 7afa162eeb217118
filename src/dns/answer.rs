//! Stage 3, answer: (`Routed`, qtype, snapshot, context) -> `Answer` (RCODE + sections).
//!
//! Input: the parsed request, its route, the `DnsContext` and one `CatalogSnapshot`.
//! Output: `Outcome::Answer` with the RCODE, AA and the records, or `Outcome::Forward` for
//! names outside our domains when recursors are configured.
//!
//! Behaviour (spec §2.1–2.3, 2.6–2.11): health-filtered, shuffled and de-duplicated service
//! answers; node, addr, SOA and NS answers; NXDOMAIN/NODATA carry the SOA in Authority.
//! Every answer record carries the Additional records that belong to it (`Rr::extra`), so
//! the encoder can drop answers and keep Additional in step.
//!
//! Invariants: pure (the RNG is the only source of variation), reads only the given
//! snapshot, never panics; a name that cannot be built (too long, bad label) is skipped.

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use rand::seq::SliceRandom;

use super::DnsContext;
use super::parse::Request;
use super::route::{Route, Routed, encode_addr};
use crate::catalog::{CatalogState, HealthStatus, Instance, Node};
use crate::snapshot::CatalogSnapshot;

/// One answer record with the Additional records that accompany it (SRV target addresses,
/// node-meta TXT, NS glue).
#[derive(Debug, Clone, PartialEq)]
pub struct Rr {
    /// The Answer-section record.
    pub record: Record,
    /// Additional-section records that belong to it; dropped with it on truncation.
    pub extra: Vec<Record>,
}

impl Rr {
    fn bare(record: Record) -> Self {
        Self { record, extra: Vec::new() }
    }
}

/// A response before encoding.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// RCODE.
    pub rcode: ResponseCode,
    /// AA flag: set for every answer from our own domains.
    pub authoritative: bool,
    /// Answer section, each with its own Additional records.
    pub answers: Vec<Rr>,
    /// Authority section (SOA for NXDOMAIN/NODATA, NS for SOA queries).
    pub authorities: Vec<Record>,
    /// Additional records not tied to an answer (the `.addr.` type-mismatch quirk).
    pub additionals: Vec<Record>,
}

impl Answer {
    fn new(rcode: ResponseCode, authoritative: bool) -> Self {
        Self { rcode, authoritative, answers: Vec::new(), authorities: Vec::new(), additionals: Vec::new() }
    }
}

/// The result of the answer stage.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Outcome {
    /// Encode and send this.
    Answer(Answer),
    /// Forward the request to the recursors.
    Forward,
}

/// Everything one lookup needs, borrowed.
struct Lookup<'a> {
    qname: &'a Name,
    qtype: RecordType,
    resp_domain: &'a str,
    ctx: &'a DnsContext,
    catalog: &'a CatalogState,
}

/// Answers one routed question from `snap`.
pub(super) fn answer(
    req: &Request,
    routed: &Routed,
    ctx: &DnsContext,
    snap: &CatalogSnapshot,
    rng: &mut impl rand::Rng,
) -> Outcome {
    let qtype = req.query.query_type();
    if matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
        return Outcome::Answer(Answer::new(ResponseCode::NotImp, routed.route != Route::NotOurs));
    }
    let l = Lookup {
        qname: req.query.name(),
        qtype,
        resp_domain: &routed.resp_domain,
        ctx,
        catalog: &snap.catalog,
    };
    let ans = match &routed.route {
        Route::NotOurs if ctx.recursors.is_empty() => Answer::new(ResponseCode::Refused, false),
        Route::NotOurs => return Outcome::Forward,
        _ if qtype == RecordType::SOA => soa_answer(&l, rng),
        _ if qtype == RecordType::NS => ns_answer(&l, rng),
        Route::Apex | Route::Invalid | Route::Unsupported(_) => l.nxdomain(),
        Route::Service { tag, name, dc } => l.service(tag.as_deref(), name, dc, rng),
        Route::Node { name, dc } => l.node(name, dc),
        Route::Addr { ip } => l.addr(*ip),
    };
    Outcome::Answer(ans)
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
    };
    match (picked, fallback(), want) {
        (Some(ip), _, _) => Addr::Ip(ip),
        (None, Addr::Ip(ip), Want::V4) if !ip.is_ipv4() => Addr::Nothing,
        (None, Addr::Ip(ip), Want::V6) if !ip.is_ipv6() => Addr::Nothing,
        (None, other, _) => other,
    }
}

fn node_addr(node: &Node, want: Want) -> Addr {
    let tagged = |k: &str| node.tagged_addresses.get(k).map(String::as_str);
    pick(&node.address, tagged("lan_ipv4"), tagged("lan_ipv6"), want)
}

/// The instance's address: the service address when set, else the node's (spec §2.4).
fn instance_addr(inst: &Instance, want: Want) -> Addr {
    let s = &inst.service;
    if s.address.is_empty() {
        return node_addr(&inst.node, want);
    }
    let tagged = |k: &str| s.tagged_addresses.get(k).map(|a| a.address.as_str());
    pick(&s.address, tagged("lan_ipv4"), tagged("lan_ipv6"), want)
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

impl Lookup<'_> {
    fn soa(&self) -> Option<Record> {
        let d = self.resp_domain;
        let owner = dns_name(d)?;
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

    fn node_name(&self, node: &str, dc: &str) -> Option<Name> {
        dns_name(&format!("{node}.node.{dc}.{}", self.resp_domain))
    }

    fn service(&self, tag: Option<&str>, name: &str, dc: &str, rng: &mut impl rand::Rng) -> Answer {
        if dc != self.ctx.datacenter {
            return self.nxdomain();
        }
        let only_passing = self.ctx.dns_config.only_passing;
        let mut instances: Vec<(Instance, HealthStatus)> = self
            .catalog
            .service_instances(name)
            .filter(|i| tag.is_none_or(|t| i.service.tags.iter().any(|x| x.eq_ignore_ascii_case(t))))
            .filter_map(|i| {
                let health = self.catalog.instance_health(&i.service.node, &i.service.id);
                let keep = match health {
                    HealthStatus::Passing => true,
                    HealthStatus::Warning => !only_passing,
                    HealthStatus::Critical => false,
                };
                keep.then_some((i, health))
            })
            .collect();
        if instances.is_empty() {
            return self.nxdomain();
        }
        instances.shuffle(rng);
        let ttl = secs(self.ctx.dns_config.service_ttl_for(name));
        let answers = match self.qtype {
            RecordType::SRV => self.srv_records(&instances, dc, ttl),
            RecordType::A => self.address_records(&instances, Want::V4, ttl),
            RecordType::AAAA => self.address_records(&instances, Want::V6, ttl),
            RecordType::ANY | RecordType::TXT => self.address_records(&instances, Want::Any, ttl),
            _ => Vec::new(),
        };
        if answers.is_empty() {
            return self.nodata();
        }
        let mut a = Answer::new(ResponseCode::NoError, true);
        a.answers = answers;
        a
    }

    /// A/AAAA (or a single CNAME when every instance has a host name) for a service.
    fn address_records(&self, instances: &[(Instance, HealthStatus)], want: Want, ttl: u32) -> Vec<Rr> {
        let limit = match self.ctx.dns_config.a_record_limit {
            0 => usize::MAX,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        };
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let mut first_host = None;
        for (inst, _) in instances {
            match instance_addr(inst, want) {
                Addr::Ip(ip) => {
                    if out.len() < limit && seen.insert(ip) {
                        out.push(Rr::bare(ip_record(self.qname.clone(), ttl, ip)));
                    }
                }
                Addr::Host(h) => {
                    first_host.get_or_insert(h);
                }
                Addr::Nothing => {}
            }
        }
        if out.is_empty()
            && let Some(target) = first_host.and_then(|h| dns_name(&h))
            && target != *self.qname
        {
            out.push(Rr::bare(Record::from_rdata(self.qname.clone(), ttl, RData::CNAME(CNAME(target)))));
        }
        out
    }

    /// SRV records with their target addresses and node-meta TXT (spec §2.3).
    fn srv_records(&self, instances: &[(Instance, HealthStatus)], dc: &str, ttl: u32) -> Vec<Rr> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (inst, health) in instances {
            let (node, svc) = (&inst.node, &inst.service);
            let addr = if svc.address.is_empty() { &node.address } else { &svc.address };
            if !seen.insert((crate::catalog::key(&node.name), addr.clone(), svc.port)) {
                continue;
            }
            let Some(node_target) = self.node_name(&node.name, dc) else {
                continue;
            };
            let mut extra = Vec::new();
            let target = match instance_addr(inst, Want::Any) {
                Addr::Ip(ip) if svc.address.is_empty() => {
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
                    Some(t) => t,
                    None => continue,
                },
                Addr::Nothing => continue,
            };
            if self.ctx.dns_config.enable_additional_node_meta_txt {
                extra.extend(meta_txt(&node_target, ttl, node));
            }
            let weight = match health {
                HealthStatus::Passing => svc.weights.passing,
                _ => svc.weights.warning,
            };
            let weight = u16::try_from(weight).unwrap_or(u16::MAX);
            let srv = SRV::new(1, weight, svc.port, target);
            out.push(Rr { record: Record::from_rdata(self.qname.clone(), ttl, RData::SRV(srv)), extra });
        }
        out
    }

    fn node(&self, name: &str, dc: &str) -> Answer {
        if dc != self.ctx.datacenter {
            return self.nxdomain();
        }
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
                return a;
            }
            _ => return a,
        };
        let record = match node_addr(node, want) {
            Addr::Ip(ip) => ip_record(self.qname.clone(), ttl, ip),
            Addr::Host(h) => match dns_name(&h) {
                Some(t) if t != *self.qname => {
                    Record::from_rdata(self.qname.clone(), ttl, RData::CNAME(CNAME(t)))
                }
                _ => return a,
            },
            Addr::Nothing => return a,
        };
        let txt = meta_txt(self.qname, ttl, node);
        if want == Want::Any {
            a.answers.push(Rr::bare(record));
            a.answers.extend(txt.into_iter().map(Rr::bare));
        } else {
            let extra = if self.ctx.dns_config.enable_additional_node_meta_txt { txt } else { Vec::new() };
            a.answers.push(Rr { record, extra });
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
            // Consul quirk (spec §1.7): other qtypes get the address in Additional.
            _ => a.additionals.push(record),
        }
        a
    }

    /// Up to three NS records for the apex with their glue (spec §2.7).
    fn ns_records(&self, rng: &mut impl rand::Rng) -> Vec<Rr> {
        let ttl = secs(self.ctx.dns_config.node_ttl);
        let Some(apex) = dns_name(self.resp_domain) else {
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
