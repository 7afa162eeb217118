//! The query pipeline in one place: request bytes -> response bytes, or what needs IO.
//!
//! ```text
//! socket (listener, udp: loads the snapshot once per query)
//!   -> parse (bytes -> Request | FORMERR/NOTIMP/drop)
//!   -> answer sources, in order (source): static zones -> catalog (route, answer) -> forwarder
//!   -> encode (Answer -> bytes: EDNS echo, size limits, truncation)
//!   -> send (listener, udp; Forward and Resolve go to the recursors there)
//! ```
//!
//! Input: request bytes, the transport, one `DnsContext`, one `CatalogSnapshot`, what ACLs
//! let the answer show (`Access`), what the recursors resolved and an RNG. Output: a
//! `Response`.
//!
//! Invariants: pure and synchronous; takes no lock, opens no LMDB transaction, never awaits
//! Raft and never reads the clock; never panics on any input.

use std::cell::RefCell;

use super::access::Access;
use super::context::{DnsContext, Transport};
use super::encode;
use super::message::{Deps, Resolved, Response};
use super::parse;
use super::source::{self, Outcome, Question};
use crate::snapshot::CatalogSnapshot;

/// The pure core, for tests and fuzzing: request bytes -> response bytes (`None` = drop),
/// with ACLs off.
///
/// A request that would be forwarded to a recursor yields the "all recursors failed"
/// SERVFAIL here, and external host names stay unresolved, since both need IO; `serve`
/// uses [`respond_under`], which reports them.
pub fn handle(
    request: &[u8],
    transport: Transport,
    ctx: &DnsContext,
    snap: &CatalogSnapshot,
    rng: &mut impl rand::Rng,
) -> Option<Vec<u8>> {
    handle_under(request, transport, ctx, snap, &Access::ALL, rng)
}

/// [`handle`] with the answers limited by `access`.
pub(crate) fn handle_under(
    request: &[u8],
    transport: Transport,
    ctx: &DnsContext,
    snap: &CatalogSnapshot,
    access: &Access,
    rng: &mut impl rand::Rng,
) -> Option<Vec<u8>> {
    let mut response = respond_under(request, transport, ctx, snap, access, &Resolved::pending(), rng);
    if let Response::Resolve(_) = response {
        response = respond_under(request, transport, ctx, snap, access, &Resolved::complete([]), rng);
    }
    match response {
        Response::Reply(bytes) => Some(bytes),
        Response::Forward { failure, .. } => Some(failure),
        Response::Resolve(_) | Response::Drop => None,
    }
}

/// Like [`handle`], but reports what needs the recursors instead of answering without them.
#[cfg(test)]
pub(crate) fn respond(
    request: &[u8],
    transport: Transport,
    ctx: &DnsContext,
    snap: &CatalogSnapshot,
    resolved: &Resolved,
    rng: &mut impl rand::Rng,
) -> Response {
    respond_under(request, transport, ctx, snap, &Access::ALL, resolved, rng)
}

/// Like [`handle_under`], but reports what needs the recursors instead of answering
/// without them.
pub(crate) fn respond_under(
    request: &[u8],
    transport: Transport,
    ctx: &DnsContext,
    snap: &CatalogSnapshot,
    access: &Access,
    resolved: &Resolved,
    rng: &mut impl rand::Rng,
) -> Response {
    respond_traced(request, transport, ctx, snap, access, resolved, &RefCell::default(), rng)
}

/// [`respond_under`], also recording in `deps` what the answer read from the catalog.
#[allow(clippy::too_many_arguments)]
pub(crate) fn respond_traced(
    request: &[u8],
    transport: Transport,
    ctx: &DnsContext,
    snap: &CatalogSnapshot,
    access: &Access,
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
    let question = Question { req: &req, ctx, snap, access, resolved, deps };
    match source::lookup(&question, rng) {
        Outcome::Answer(ans) => {
            let total = ans.answers.len();
            let Some(bytes) = encode::encode(&req, ans, transport, ctx) else { return Response::Drop };
            // Also for a static-zone answer: harmless, `partial` only matters to the cache for
            // shuffled answers, and zone answers draw nothing from the RNG.
            if encode::answer_count(&bytes) < total {
                deps.borrow_mut().partial = true;
            }
            Response::Reply(bytes)
        }
        Outcome::Forward => match encode::servfail(&req, ctx) {
            Some(failure) => Response::Forward { request: request.to_vec(), id: req.metadata.id, failure },
            None => Response::Drop,
        },
        Outcome::Resolve(names) => Response::Resolve(names),
    }
}
