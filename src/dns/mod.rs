//! DNS read path: Consul-compatible answers from the current catalog snapshot.
//!
//! Stages, one file each, in flow order:
//!
//! ```text
//! listener (socket) -> parse (bytes -> Request | FORMERR/NOTIMP/drop)
//!   -> route (QName -> Route) -> answer ((Route, qtype, snapshot, ctx) -> Answer | Forward)
//!   -> encode (Answer -> bytes: EDNS echo, size limits, truncation) -> send
//! recursor: async forwarding of names outside our domains (only `serve` awaits it)
//! static zones: names in `crate::zone` zones and not under our domains are answered
//!   there (before route), then encoded the same way
//! ```
//!
//! Invariants:
//! - `respond`/`handle` are pure and synchronous: request bytes, one `DnsContext`, one
//!   `CatalogSnapshot` and an RNG in, response bytes out. They take no lock, open no LMDB
//!   transaction, never await Raft and never read the clock.
//! - Nothing on this path may panic on any input (no unwrap, no unchecked indexing).
//! - `serve` loads the snapshot once per query and answers the whole query from it.

mod answer;
#[doc(hidden)]
pub mod bench_support;
mod cache;
mod encode;
#[doc(hidden)]
pub mod fuzz_logic;
mod listener;
mod parse;
mod recursor;
mod route;
mod udp;

#[cfg(test)]
pub(crate) mod cache_tests;
#[cfg(test)]
mod malformed_tests;
#[cfg(test)]
mod spec_tests;
#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub use answer::{Answer, Deps, Resolved, Rr};
pub use cache::{AnswerCache, CacheStats};
pub use listener::serve;
pub use parse::{ParseError, Request};
pub use route::{Route, Routed, route};
pub use udp::{adopt as adopt_udp, bind as bind_udp};

use crate::config::{Config, DnsConfig};
use crate::snapshot::CatalogSnapshot;
use crate::zone::{ZoneAnswer, ZoneSet, additional_target};

/// Everything the DNS path needs from the configuration, swappable as a whole on reload.
#[derive(Debug, Clone)]
pub struct DnsContext {
    /// Primary domain, lower-case and fully qualified (`consul.`).
    pub domain: String,
    /// Alternative domain, lower-case and fully qualified.
    pub alt_domain: Option<String>,
    /// This agent's datacenter, lower-case.
    pub datacenter: String,
    /// This agent's node name (the NS fallback target).
    pub node_name: String,
    /// `dns_config{}`.
    pub dns_config: DnsConfig,
    /// Upstream resolvers for names outside our domains; empty = answer REFUSED.
    pub recursors: Vec<SocketAddr>,
    /// SOA SERIAL. Consul uses the current Unix time; it is set when the context is built
    /// (and may be refreshed by the owner) so that `handle` never reads the clock.
    pub soa_serial: u32,
    /// Bumped by every configuration reload (the serial refresh keeps it); answer caches
    /// key on it.
    pub generation: u64,
    /// Static zones (`zones_dir`) answered beside the domains; loaded by the owner (IO).
    pub zones: Arc<ZoneSet>,
}

impl DnsContext {
    /// Builds the DNS context from the resolved agent configuration.
    pub fn from_config(cfg: &Config) -> Self {
        Self {
            domain: normalise_domain(&cfg.domain),
            alt_domain: cfg.alt_domain.as_deref().map(normalise_domain).filter(|d| d != "."),
            datacenter: cfg.datacenter.to_ascii_lowercase(),
            node_name: cfg.node_name.clone(),
            dns_config: cfg.dns.clone(),
            recursors: cfg.recursors.clone(),
            soa_serial: unix_serial(),
            generation: 0,
            zones: Arc::default(),
        }
    }

    /// The same context serving `zones`.
    #[must_use]
    pub fn with_zones(mut self, zones: Arc<ZoneSet>) -> Self {
        self.zones = zones;
        self
    }

    /// Whether `name` is the domain or the alt domain or below one of them (no allocation).
    pub fn in_domains(&self, name: &hickory_proto::rr::Name) -> bool {
        let under = |d: &str| crate::zone::name_under(name, d);
        under(&self.domain) || self.alt_domain.as_deref().is_some_and(under)
    }

    /// The same context with a new SOA serial (e.g. refreshed periodically by the owner).
    #[must_use]
    pub fn with_serial(mut self, serial: u32) -> Self {
        self.soa_serial = serial;
        self
    }
}

/// Seconds since the Unix epoch, truncated to 32 bits (an RFC 1982 serial wraps anyway).
pub fn unix_serial() -> u32 {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    (secs & u64::from(u32::MAX)) as u32
}

fn normalise_domain(d: &str) -> String {
    let mut d = d.trim().trim_end_matches('.').to_ascii_lowercase();
    d.push('.');
    d
}

/// The transport a request arrived on; it decides the size limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP: 512 bytes, or the client's EDNS size (capped at 65467).
    Udp,
    /// TCP: up to 65523 bytes.
    Tcp,
}

/// What to do with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Send these bytes back.
    Reply(Vec<u8>),
    /// The name is outside our domains and recursors are configured: forward the request
    /// asynchronously; `failure` is the SERVFAIL (RA=1) to send if every recursor fails.
    Forward {
        /// The client's request bytes.
        request: Vec<u8>,
        /// The client's message ID.
        id: u16,
        /// The reply to send when no recursor answers usefully.
        failure: Vec<u8>,
    },
    /// The answer needs these external host names resolved (CNAME targets of instances
    /// and nodes): ask the recursors, then call [`respond`] again with their answers.
    Resolve(Vec<hickory_proto::rr::Name>),
    /// Send nothing (unreadable header, or a response sent to us).
    Drop,
}

/// The pure core, for tests and fuzzing: request bytes -> response bytes (`None` = drop).
///
/// A request that would be forwarded to a recursor yields the "all recursors failed"
/// SERVFAIL here, and external host names stay unresolved, since both need IO; `serve`
/// uses [`respond`], which reports them.
pub fn handle(
    request: &[u8],
    transport: Transport,
    ctx: &DnsContext,
    snap: &CatalogSnapshot,
    rng: &mut impl rand::Rng,
) -> Option<Vec<u8>> {
    let mut response = respond(request, transport, ctx, snap, &Resolved::pending(), rng);
    if let Response::Resolve(_) = response {
        response = respond(request, transport, ctx, snap, &Resolved::complete([]), rng);
    }
    match response {
        Response::Reply(bytes) => Some(bytes),
        Response::Forward { failure, .. } => Some(failure),
        Response::Resolve(_) | Response::Drop => None,
    }
}

/// Like [`handle`], but reports what needs the recursors instead of answering without them.
pub fn respond(
    request: &[u8],
    transport: Transport,
    ctx: &DnsContext,
    snap: &CatalogSnapshot,
    resolved: &Resolved,
    rng: &mut impl rand::Rng,
) -> Response {
    respond_traced(request, transport, ctx, snap, resolved, &RefCell::default(), rng)
}

/// [`respond`], also recording in `deps` what the answer read from the catalog.
pub(crate) fn respond_traced(
    request: &[u8],
    transport: Transport,
    ctx: &DnsContext,
    snap: &CatalogSnapshot,
    resolved: &Resolved,
    deps: &RefCell<Deps>,
    rng: &mut impl rand::Rng,
) -> Response {
    let req = match parse::parse(request) {
        Ok(req) => req,
        Err(err) => {
            return match encode::error_reply(&err, ctx) {
                Some(bytes) => Response::Reply(bytes),
                None => Response::Drop,
            };
        }
    };
    if let Some(ans) = static_zone_answer(&req, ctx) {
        return encode::encode(&req, ans, transport, ctx).map_or(Response::Drop, Response::Reply);
    }
    let routed = route(req.query.name(), req.query.query_type(), ctx);
    match answer::answer(&req, &routed, ctx, snap, resolved, deps, rng) {
        answer::Outcome::Answer(ans) => {
            let total = ans.answers.len();
            let Some(bytes) = encode::encode(&req, ans, transport, ctx) else { return Response::Drop };
            if encode::answer_count(&bytes) < total {
                deps.borrow_mut().partial = true;
            }
            Response::Reply(bytes)
        }
        answer::Outcome::Forward => match encode::servfail(&req, ctx) {
            Some(failure) => Response::Forward { request: request.to_vec(), id: req.metadata.id, failure },
            None => Response::Drop,
        },
        answer::Outcome::Resolve(names) => Response::Resolve(names),
    }
}

/// The answer from a static zone, when the name is in one and not under the domains (which
/// win where they overlap).
fn static_zone_answer(req: &Request, ctx: &DnsContext) -> Option<Answer> {
    let qname = req.query.name();
    if ctx.zones.is_empty() || ctx.in_domains(qname) {
        return None;
    }
    ctx.zones.answer(qname, req.query.query_type()).map(from_zone)
}

/// The encoder's form of a zone's answer: each Additional record travels with the answer
/// whose target it is, so truncation drops them together; glue of a referral stays in the
/// fixed Additional.
pub(crate) fn from_zone(z: ZoneAnswer) -> Answer {
    let mut answers: Vec<Rr> = z.answers.into_iter().map(|record| Rr { record, extra: Vec::new() }).collect();
    let mut additionals = Vec::new();
    for extra in z.additionals {
        match answers.iter_mut().find(|rr| additional_target(&rr.record) == Some(&extra.name)) {
            Some(rr) => rr.extra.push(extra),
            None => additionals.push(extra),
        }
    }
    Answer {
        rcode: z.rcode,
        authoritative: z.authoritative,
        answers,
        authorities: z.authorities,
        additionals,
        location_scoped: false,
        rfc_truncation: true,
    }
}
