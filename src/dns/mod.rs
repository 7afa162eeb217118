//! DNS read path: Consul-compatible answers from the current catalog snapshot.
//!
//! Stages, one file each, in flow order (`pipeline` strings them together):
//!
//! ```text
//! listener, udp (socket) -> parse (bytes -> Request | FORMERR/NOTIMP/drop)
//!   -> source: static zones (crate::zone) -> catalog (route: QName -> Route;
//!      answer: (Route, qtype, snapshot, ctx) -> Answer) -> forwarder ("forward this")
//!   -> encode (Answer -> bytes: EDNS echo, size limits, truncation) -> send
//! recursor: async forwarding and host-name resolution (only the listener awaits it)
//! cache: whole wire replies per UDP loop, checked against each new snapshot
//! ```
//!
//! Types the stages share live apart from the pipeline: `context` (`DnsContext`,
//! `Transport`) and `message` (`Answer`, `Rr`, `Resolved`, `Deps`, `Response`). Stages
//! import those files, never this one; this file only declares and re-exports.
//!
//! Invariants:
//! - `respond`/`handle` are pure and synchronous: request bytes, one `DnsContext`, one
//!   `CatalogSnapshot` and an RNG in, response bytes out. They take no lock, open no LMDB
//!   transaction, never await Raft and never read the clock.
//! - Nothing on this path may panic on any input (no unwrap, no unchecked indexing).
//! - `serve` loads the snapshot once per query and answers the whole query from it.

mod access;
mod answer;
#[doc(hidden)]
pub mod bench_support;
mod cache;
mod context;
mod encode;
#[doc(hidden)]
pub mod fuzz_logic;
mod listener;
mod message;
mod parse;
mod pipeline;
mod recursor;
mod route;
mod source;
mod udp;

#[cfg(test)]
mod acl_tests;
#[cfg(test)]
pub(crate) mod cache_tests;
#[cfg(test)]
mod malformed_tests;
#[cfg(test)]
mod spec_tests;
#[cfg(test)]
mod tests;

#[cfg(test)]
pub(crate) use access::Access;
pub use cache::AnswerCache;
#[cfg(test)]
pub(crate) use cache::CacheStats;
pub(crate) use context::unix_serial;
pub use context::{DnsContext, Transport};
pub(crate) use listener::serve;
#[cfg(test)]
pub(crate) use message::{Resolved, Response};
pub use pipeline::handle;
#[cfg(test)]
pub(crate) use pipeline::handle_under;
#[cfg(test)]
pub(crate) use pipeline::respond;
#[cfg(test)]
pub(crate) use route::{Route, route};
#[cfg(test)]
pub(crate) use source::from_zone;
pub(crate) use udp::{adopt as adopt_udp, bind as bind_udp};
