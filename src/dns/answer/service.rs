//! Stage 3, answer from the catalog, service lookups: the healthy instances of a service or
//! a prepared query -> SRV, A/AAAA or CNAME records.
//!
//! Input: the `Lookup` (question, context, snapshot's catalog) and the service's or the
//! query's name. Output: an `Answer` (NXDOMAIN for no healthy instance, NODATA for none of
//! the question's type).
//!
//! Behaviour (spec §2.2–2.5): health-filtered (critical never; warning unless
//! `only_passing`), shuffled (or weighted-shuffled), one record per distinct address up to
//! `a_record_limit`, SRV targets with their addresses and node-meta TXT in Additional.
//!
//! Under ACLs (`access`): the service needs `service:read`, each instance `node:read` on its
//! node (a prepared query: both, under the query's captured token if it has one); none left
//! is NXDOMAIN, a token that does not resolve SERVFAIL.
//!
//! Invariants: pure (the RNG is the only source of variation); every order-dependent choice
//! (a limit, a merge of equal addresses) marks the answer `Deps::partial` for the cache.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{CNAME, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use rand::RngExt;
use rand::seq::SliceRandom;

use super::super::access::Acl;
use super::super::message::{Answer, Rr};
use super::super::route::encode_addr;
use super::{Addr, Lookup, Want, dns_name, ip_record, meta_txt, node_addr, pick, secs};
use crate::catalog::{CatalogState, HealthStatus, Instance, Service};

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

impl Lookup<'_> {
    pub(super) fn service(
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
        let acl = self.access.default_acl();
        if acl.failed() {
            return self.servfail();
        }
        if !acl.service_read(name) {
            return self.nxdomain();
        }
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
            .filter(|i| has_tags(i) && acl.node_read(&i.node.name))
            .filter_map(|inst| {
                let port = selected_port(&inst)?;
                let health = self.catalog.instance_health(&inst.service.node, &inst.service.id);
                answered(health, only_passing).then_some(Candidate { inst, health, port })
            })
            .collect();
        let ttl = secs(self.ctx.dns_config.service_ttl_for(name));
        self.instances_answer(cands, dc, ttl, rng)
    }

    /// `<svc>.connect` (spec §1.8): the healthy Connect-capable instances of `name` (its
    /// proxies, at the proxies' addresses and ports, and its native instances), answered like
    /// a service lookup with `name`'s `service_ttl`; none is NXDOMAIN. The answer reads other
    /// services' rows (the proxies'), so it is re-rendered after any write.
    pub(super) fn connect(&self, name: &str, dc: &str, rng: &mut impl rand::Rng) -> Answer {
        self.deps.borrow_mut().everything = true;
        if dc != self.ctx.datacenter {
            return self.nxdomain();
        }
        let acl = self.access.default_acl();
        if acl.failed() {
            return self.servfail();
        }
        if !acl.service_read(name) {
            return self.nxdomain();
        }
        self.mesh_answer(name, self.catalog.connect_instances(name), &acl, dc, rng)
    }

    /// `<svc>.ingress` (spec §1.8): the `ingress-gateway` instances of every ingress gateway
    /// whose config entry links `name` (`catalog::gateway`), answered like a service lookup
    /// with the gateways' own ports and `name`'s `service_ttl`; none is NXDOMAIN, as Consul
    /// answers [live on 1.8.7]. The answer reads config entries and other services' rows, so
    /// it is re-rendered after any write.
    pub(super) fn ingress(&self, name: &str, dc: &str, rng: &mut impl rand::Rng) -> Answer {
        self.deps.borrow_mut().everything = true;
        if dc != self.ctx.datacenter {
            return self.nxdomain();
        }
        let acl = self.access.default_acl();
        if acl.failed() {
            return self.servfail();
        }
        if !acl.service_read(name) {
            return self.nxdomain();
        }
        let gateways = crate::catalog::gateway::ingress_gateways_of(self.catalog, name);
        let instances = gateways
            .iter()
            .flat_map(|g| self.catalog.service_instances(g))
            .filter(|i| i.service.mesh.kind == crate::catalog::mesh::KIND_INGRESS_GATEWAY);
        self.mesh_answer(name, instances, &acl, dc, rng)
    }

    /// `.connect` and `.ingress` answers: the readable, answerable `instances` (at their own
    /// ports) standing for `name`, with `name`'s `service_ttl`.
    fn mesh_answer(
        &self,
        name: &str,
        instances: impl Iterator<Item = Instance>,
        acl: &Acl<'_>,
        dc: &str,
        rng: &mut impl rand::Rng,
    ) -> Answer {
        let only_passing = self.ctx.dns_config.only_passing;
        let cands: Vec<Candidate> = instances
            .filter(|i| acl.service_read(&i.service.name) && acl.node_read(&i.node.name))
            .filter_map(|inst| {
                let health = self.catalog.instance_health(&inst.service.node, &inst.service.id);
                let port = inst.service.port;
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
    pub(super) fn prepared_query(&self, id_or_name: &str, dc: &str, rng: &mut impl rand::Rng) -> Answer {
        self.deps.borrow_mut().everything = true;
        if dc != self.ctx.datacenter {
            return self.nxdomain();
        }
        let Some(q) = self.catalog.resolve_query(id_or_name) else {
            return self.nxdomain();
        };
        // The query's captured token if it has one, else the default token (spec §1.9).
        let acl = self.access.query_acl(&q.token);
        if acl.failed() {
            return self.servfail();
        }
        let cands = self
            .catalog
            .query_instances(q)
            .into_iter()
            .filter(|(inst, _)| acl.service_read(&inst.service.name) && acl.node_read(&inst.node.name))
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
}
