//! Stage 3, answer sources: who answers a question, tried in a fixed order.
//!
//! ```text
//! StaticZones (zone files, for names outside our domains)
//!   -> Catalog (route, then answer from the snapshot, for names in our domains)
//!   -> Forwarder (names left over, when recursors are configured)
//!   -> REFUSED (nobody took the name)
//! ```
//!
//! Input: one parsed question with the context, the snapshot, what the recursors resolved
//! and the dependency trace (`Question`). Output: an `Outcome`: an `Answer` to encode, or
//! "forward this request", or "resolve these host names, then ask again".
//!
//! Modelled on hickory-server's `ZoneHandler` chain, whose `lookup` returns a
//! `LookupControlFlow`: `Break` ends the chain with this outcome, `Continue` offers an
//! outcome that a later source may replace, `Skip` says the name is not this source's.
//! Unlike hickory's, `AnswerSource::handle` is synchronous and pure: no async, no IO, no
//! lock. The forwarder only says "forward"; the listener does the network exchange.
//!
//! Invariants: the chain is static (three unit types called in order, no allocation, no
//! dynamic dispatch); a source reads only the `Question` and the RNG.

use std::cell::RefCell;
use std::ops::ControlFlow;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::Name;

use super::access::Access;
use super::answer;
use super::context::DnsContext;
use super::message::{Answer, Deps, Resolved, Rr};
use super::parse::Request;
use super::route::route;
use crate::snapshot::CatalogSnapshot;
use crate::zone::{ZoneAnswer, additional_target};

/// One question and everything a source may read to answer it.
pub(super) struct Question<'a> {
    /// The parsed request.
    pub(super) req: &'a Request,
    /// The configuration.
    pub(super) ctx: &'a DnsContext,
    /// The one snapshot the whole query is answered from.
    pub(super) snap: &'a CatalogSnapshot,
    /// What ACLs let the catalog's answer show.
    pub(super) access: &'a Access,
    /// Host names the recursors resolved (second pass), or none yet.
    pub(super) resolved: &'a Resolved,
    /// What the answer read from the catalog (for the answer cache).
    pub(super) deps: &'a RefCell<Deps>,
}

/// What a source decided.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Outcome {
    /// Encode and send this.
    Answer(Answer),
    /// Forward the request to the recursors.
    Forward,
    /// Ask the recursors for these host names (A queries), then answer again.
    Resolve(Vec<Name>),
}

/// A source's verdict on a question (hickory's `LookupControlFlow`).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum LookupControlFlow {
    /// This is the outcome; no later source is asked.
    Break(Outcome),
    /// The outcome unless a later source breaks with another.
    Continue(Outcome),
    /// Not this source's name; ask the next.
    Skip,
}

/// One answer source: pure and synchronous.
pub(super) trait AnswerSource {
    /// This source's verdict on `q`.
    fn handle(&self, q: &Question<'_>, rng: &mut impl rand::Rng) -> LookupControlFlow;
}

/// Static zones (`zones_dir`): names inside a zone and not under our domains (which win
/// where they overlap).
pub(super) struct StaticZones;

impl AnswerSource for StaticZones {
    fn handle(&self, q: &Question<'_>, _rng: &mut impl rand::Rng) -> LookupControlFlow {
        let qname = q.req.query.name();
        if q.ctx.zones.is_empty() || q.ctx.in_domains(qname) {
            return LookupControlFlow::Skip;
        }
        match q.ctx.zones.answer(qname, q.req.query.query_type()) {
            Some(zone) => LookupControlFlow::Break(Outcome::Answer(from_zone(zone))),
            None => LookupControlFlow::Skip,
        }
    }
}

/// The catalog: route the name, then answer from the snapshot (`answer`).
pub(super) struct Catalog;

impl AnswerSource for Catalog {
    fn handle(&self, q: &Question<'_>, rng: &mut impl rand::Rng) -> LookupControlFlow {
        let routed = route(q.req.query.name(), q.req.query.query_type(), q.ctx);
        answer::answer(q.req, &routed, q.ctx, q.snap, q.access, q.resolved, q.deps, rng)
    }
}

/// The recursors: every name that reaches it is forwarded, when any are configured.
pub(super) struct Forwarder;

impl AnswerSource for Forwarder {
    fn handle(&self, q: &Question<'_>, _rng: &mut impl rand::Rng) -> LookupControlFlow {
        if q.ctx.recursors.is_empty() {
            LookupControlFlow::Skip
        } else {
            LookupControlFlow::Break(Outcome::Forward)
        }
    }
}

/// The outcome for `q`: the sources in order, then REFUSED if none took the name.
pub(super) fn lookup(q: &Question<'_>, rng: &mut impl rand::Rng) -> Outcome {
    match chain(q, rng) {
        ControlFlow::Break(outcome) | ControlFlow::Continue(Some(outcome)) => outcome,
        ControlFlow::Continue(None) => Outcome::Answer(Answer::new(ResponseCode::Refused, false)),
    }
}

/// The sources in order; `Continue` carries the outcome offered so far.
fn chain(q: &Question<'_>, rng: &mut impl rand::Rng) -> ControlFlow<Outcome, Option<Outcome>> {
    let offered = then(StaticZones.handle(q, rng), None)?;
    let offered = then(Catalog.handle(q, rng), offered)?;
    then(Forwarder.handle(q, rng), offered)
}

/// Folds one verdict into the chain: `Break` stops it, `Continue` replaces the offer.
fn then(flow: LookupControlFlow, offered: Option<Outcome>) -> ControlFlow<Outcome, Option<Outcome>> {
    match flow {
        LookupControlFlow::Break(outcome) => ControlFlow::Break(outcome),
        LookupControlFlow::Continue(outcome) => ControlFlow::Continue(Some(outcome)),
        LookupControlFlow::Skip => ControlFlow::Continue(offered),
    }
}

/// The encoder's form of a zone's answer: each Additional record travels with the answer
/// whose target it is, so truncation drops them together; glue of a referral stays in the
/// fixed Additional.
pub(crate) fn from_zone(z: ZoneAnswer) -> Answer {
    let mut answers: Vec<Rr> = z.answers.into_iter().map(Rr::bare).collect();
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
