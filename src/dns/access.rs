//! Shared input of the answer stage: what ACLs let a catalog answer show (spec §1.9).
//!
//! Input: nothing (ACLs off) or the `DnsView` a loop loaded for its batch (the default token's
//! authorizer and the captured tokens' of prepared queries, computed by `acl_state` outside
//! the query path). Output: per lookup an `Acl`: show everything, check names against one
//! authorizer, or the token could not be resolved (SERVFAIL).
//!
//! Consul's DNS runs each lookup as an RPC with `acl.tokens.default` (anonymous when unset):
//! the server drops the rows the token may not read (`service:read` on the service and
//! `node:read` on the node of each instance, `node:read` for a node lookup), so a denied name
//! is NXDOMAIN with the SOA like an unknown one, and a token that does not resolve is an RPC
//! error, SERVFAIL. Prepared queries run under the token they captured, if any.
//!
//! Invariants: no lock, no IO, no clock: the view is an immutable value; `Access::All` (ACLs
//! off) answers exactly as before ACLs existed, with one branch per check.

use std::sync::Arc;

use crate::acl::Authorizer;
use crate::acl_state::{DnsView, DnsViewHandle};

/// What the answers of one batch of queries may show.
#[derive(Debug, Clone, Default)]
pub(crate) enum Access {
    /// ACLs off: everything.
    #[default]
    All,
    /// ACLs on: what the view's tokens may read.
    View(Arc<DnsView>),
}

impl Access {
    /// ACLs off.
    pub(crate) const ALL: Self = Self::All;

    /// The current view of `acl` (`None`: ACLs off).
    pub(crate) fn load(acl: Option<&DnsViewHandle>) -> Self {
        acl.map_or(Self::All, |h| Self::View(h.load_full()))
    }

    /// The view's generation (0 with ACLs off): answer caches are emptied when it moves.
    pub(crate) fn generation(&self) -> u64 {
        match self {
            Self::All => 0,
            Self::View(v) => v.generation,
        }
    }

    /// The rules of every lookup but a prepared query with a captured token.
    pub(crate) fn default_acl(&self) -> Acl<'_> {
        match self {
            Self::All => Acl::All,
            Self::View(v) => Acl::of(v.default_grant().as_ref()),
        }
    }

    /// The rules a prepared query that captured `token` (empty: none) runs under.
    pub(crate) fn query_acl(&self, token: &str) -> Acl<'_> {
        match self {
            Self::All => Acl::All,
            Self::View(v) => Acl::of(v.query_grant(token)),
        }
    }
}

/// The rules one lookup runs under.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Acl<'a> {
    /// ACLs off.
    All,
    /// This token's authorizer.
    Token(&'a Authorizer),
    /// The token did not resolve (unknown, expired, or not available): SERVFAIL.
    Failed,
}

impl<'a> Acl<'a> {
    fn of<E>(grant: Result<&'a Arc<Authorizer>, E>) -> Self {
        match grant {
            Ok(a) => Self::Token(a),
            Err(_) => Self::Failed,
        }
    }

    /// Whether the token did not resolve.
    pub(crate) fn failed(self) -> bool {
        matches!(self, Self::Failed)
    }

    /// `service:read` on `name`.
    pub(crate) fn service_read(self, name: &str) -> bool {
        match self {
            Self::All => true,
            Self::Token(a) => a.service_read(name),
            Self::Failed => false,
        }
    }

    /// `node:read` on `name`.
    pub(crate) fn node_read(self, name: &str) -> bool {
        match self {
            Self::All => true,
            Self::Token(a) => a.node_read(name),
            Self::Failed => false,
        }
    }
}
