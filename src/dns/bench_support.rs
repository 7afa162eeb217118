//! BENCH ENTRY: the stages of `respond` one at a time, for `benches/dns_path.rs`.
//!
//! Each function calls exactly the stage function `respond` calls, with the same arguments,
//! and adds nothing, so a bench can time parse, route, answer and encode apart and beside
//! the whole `handle`. Not an API: hidden from the docs, like `fuzz_logic`.

use super::context::{DnsContext, Transport};
use super::message::{Answer, Resolved};
use super::parse::{ParseError, Request};
use super::route::Routed;
use super::source::{LookupControlFlow, Outcome};
use crate::snapshot::CatalogSnapshot;

/// Stage 1: request bytes -> `Request`.
pub fn parse(bytes: &[u8]) -> Result<Request, ParseError> {
    super::parse::parse(bytes)
}

/// Stage 2: the request's question -> `Routed`.
pub fn route(req: &Request, ctx: &DnsContext) -> Routed {
    super::route::route(req.query.name(), req.query.query_type(), ctx)
}

/// Stage 3: the answer from `snap`, with nothing resolved by the recursors yet (the first
/// pass `respond` makes). `None` when the outcome is to forward or to resolve host names,
/// and for a name outside our domains (the catalog skips it; `respond` then asks the
/// forwarder or answers REFUSED).
pub fn answer(
    req: &Request,
    routed: &Routed,
    ctx: &DnsContext,
    snap: &CatalogSnapshot,
    rng: &mut impl rand::Rng,
) -> Option<Answer> {
    match super::answer::answer(
        req,
        routed,
        ctx,
        snap,
        &super::access::Access::ALL,
        &Resolved::pending(),
        &std::cell::RefCell::default(),
        rng,
    ) {
        LookupControlFlow::Break(Outcome::Answer(ans))
        | LookupControlFlow::Continue(Outcome::Answer(ans)) => Some(ans),
        LookupControlFlow::Break(_) | LookupControlFlow::Continue(_) | LookupControlFlow::Skip => None,
    }
}

/// Stage 4: `Answer` -> reply bytes within the transport's limits.
pub fn encode(req: &Request, ans: Answer, transport: Transport, ctx: &DnsContext) -> Option<Vec<u8>> {
    super::encode::encode(req, ans, transport, ctx)
}
