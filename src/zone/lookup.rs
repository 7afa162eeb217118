//! Static zones, answering: (qname, qtype) -> `ZoneAnswer`, authoritative semantics of
//! RFC 1034 §4.3.2 with the wildcard rules of RFC 4592.
//!
//! Steps: pick the zone with the longest origin above the name; walk down from the apex
//! label by label (a name with NS below the apex is a delegation -> referral, AA=0); then
//! exact match, or synthesis from `*.<closest encloser>` when the name does not exist
//! (RFC 4592 §3.3.1: a name that exists, even as an empty non-terminal, is never matched by
//! a wildcard), or NXDOMAIN. A CNAME is followed inside the zone, at most
//! `MAX_CNAME_CHAIN` links, and the RCODE is the last name's (RFC 6604). NXDOMAIN and NODATA
//! carry the SOA (RFC 2308 §3, TTL = min(SOA TTL, MINIMUM)). Addresses of in-zone MX, SRV
//! and NS targets go in Additional.
//!
//! Owner names are spelled as the client asked: the question's case for the name, the
//! apex and a delegation point; the CNAME's target spelling down a chain.
//!
//! Invariants: pure, no lock, never panics; allocation is bounded by the name's labels,
//! the chain bound and the records returned.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Label, Name, RData, Record, RecordType};

use super::{Node, Zone, ZoneAnswer, ZoneSet, additional_target as target, label_count};

/// Most CNAME links followed in one answer (hickory's resolver uses the same bound); longer
/// chains and loops end with the CNAMEs found so far.
const MAX_CNAME_CHAIN: usize = 8;

impl ZoneSet {
    /// The answer for a name inside one of the zones, or `None` when no zone contains it.
    pub fn answer(&self, qname: &Name, qtype: RecordType) -> Option<ZoneAnswer> {
        let zone = self.zones.iter().find(|z| z.origin.zone_of(qname))?;
        if matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
            // Zone transfers are not served (the files are the source of truth); NOTIMP as
            // for the Consul domain.
            return Some(ZoneAnswer::empty(ResponseCode::NotImp, false));
        }
        Some(zone.answer(qname, qtype))
    }
}

impl ZoneAnswer {
    fn empty(rcode: ResponseCode, authoritative: bool) -> Self {
        Self { rcode, authoritative, answers: Vec::new(), authorities: Vec::new(), additionals: Vec::new() }
    }
}

/// Where the walk down the zone ended.
enum Found<'z> {
    /// The name exists (possibly as an empty non-terminal).
    Exact(&'z Node),
    /// The name does not exist; `*.<closest encloser>` does and answers for it.
    Wildcard(&'z Node),
    /// The name is at or below a delegation point with `cut` labels.
    Referral { cut: usize, node: &'z Node },
    /// Neither the name nor a wildcard for it exists.
    NxDomain,
}

/// `record` with `owner` as its name (the spelling the client used).
fn owned(record: &Record, owner: &Name) -> Record {
    let mut r = record.clone();
    r.name = owner.clone();
    r
}

impl Zone {
    fn find(&self, name: &Name, qtype: RecordType) -> Found<'_> {
        let total = label_count(name);
        if total == self.origin_labels {
            return self.nodes.get(name).map_or(Found::NxDomain, Found::Exact);
        }
        let mut closest = self.origin_labels;
        for k in self.origin_labels + 1..=total {
            let Some(node) = self.nodes.get(&name.trim_to(k)) else { break };
            closest = k;
            // DS lives on the parent side of a cut (RFC 4035 §3.1.4.1), so it is not referred.
            if node.has(RecordType::NS) && !(k == total && qtype == RecordType::DS) {
                return Found::Referral { cut: k, node };
            }
            if k == total {
                return Found::Exact(node);
            }
        }
        let wildcard = name.trim_to(closest).prepend_label(Label::wildcard()).ok();
        match wildcard.as_ref().and_then(|w| self.nodes.get(w)) {
            Some(node) => Found::Wildcard(node),
            None => Found::NxDomain,
        }
    }

    /// The SOA for a negative answer, owned by the apex as spelled in `name`.
    fn negative_soa(&self, name: &Name) -> Record {
        let mut soa = owned(&self.soa, &name.trim_to(self.origin_labels));
        if let RData::SOA(data) = &self.soa.data {
            soa.ttl = soa.ttl.min(data.minimum);
        }
        soa
    }

    /// A and AAAA records of in-zone `target`, owned by it as spelled there.
    fn addresses(&self, target: &Name, out: &mut Vec<Record>) {
        if !self.origin.zone_of(target) {
            return;
        }
        let Some(node) = self.nodes.get(target) else { return };
        for rtype in [RecordType::A, RecordType::AAAA] {
            for r in node.get(rtype).unwrap_or_default() {
                let r = owned(r, target);
                if !out.contains(&r) {
                    out.push(r);
                }
            }
        }
    }

    fn referral(&self, name: &Name, cut: usize, node: &Node) -> ZoneAnswer {
        let mut ans = ZoneAnswer::empty(ResponseCode::NoError, false);
        let cut_name = name.trim_to(cut);
        for ns in node.get(RecordType::NS).unwrap_or_default() {
            ans.authorities.push(owned(ns, &cut_name));
            if let Some(t) = target(ns) {
                self.addresses(t, &mut ans.additionals);
            }
        }
        ans
    }

    pub(super) fn answer(&self, qname: &Name, qtype: RecordType) -> ZoneAnswer {
        let mut ans = ZoneAnswer::empty(ResponseCode::NoError, true);
        let mut name = qname.clone();
        for links in 0..=MAX_CNAME_CHAIN {
            let node = match self.find(&name, qtype) {
                Found::Exact(node) | Found::Wildcard(node) => node,
                // A chain that leads into a delegation stops there; the resolver follows it.
                Found::Referral { .. } if links > 0 => return ans,
                Found::Referral { cut, node } => return self.referral(&name, cut, node),
                Found::NxDomain => {
                    ans.rcode = ResponseCode::NXDomain;
                    ans.authorities.push(self.negative_soa(&name));
                    return ans;
                }
            };
            if !matches!(qtype, RecordType::CNAME | RecordType::ANY)
                && let Some(cname) = node.get(RecordType::CNAME).and_then(<[Record]>::first)
            {
                ans.answers.push(owned(cname, &name));
                let RData::CNAME(next) = &cname.data else { return ans };
                let looped = ans.answers.iter().any(|r| r.name == next.0);
                if looped || !self.origin.zone_of(&next.0) {
                    return ans;
                }
                name = next.0.clone();
                continue;
            }
            let found: Vec<&Record> = match qtype {
                RecordType::ANY => node.rrsets.iter().flat_map(|(_, rs)| rs).collect(),
                _ => node.get(qtype).unwrap_or_default().iter().collect(),
            };
            if found.is_empty() {
                ans.authorities.push(self.negative_soa(&name));
                return ans;
            }
            for r in found {
                ans.answers.push(owned(r, &name));
                if let Some(t) = target(r) {
                    self.addresses(t, &mut ans.additionals);
                }
            }
            ans.additionals.retain(|r| !ans.answers.contains(r));
            return ans;
        }
        ans
    }
}
