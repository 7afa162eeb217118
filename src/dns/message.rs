//! Values the stages hand each other: the answer before encoding (`Answer`, `Rr`), what the
//! recursors resolved (`Resolved`), what an answer read (`Deps`), and what to do with a
//! request (`Response`).
//!
//! Input/output: plain data, no behaviour beyond constructors and lookups.
//!
//! Invariants: no IO, no lock; every stage imports these types from here, never from the
//! pipeline, so the stage files depend on the types and the pipeline on the stages.

use std::collections::HashMap;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, Record};

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
    /// A record with no Additional records of its own.
    pub(crate) fn bare(record: Record) -> Self {
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
    /// Whether the answer may depend on the client's location (prepared queries): the
    /// encoder echoes a Client Subnet option with SCOPE = SOURCE PREFIX instead of 0 (§2.13).
    pub location_scoped: bool,
    /// Truncate as RFC 2181 §9 says (no answer-count cap; TC whenever answers were dropped)
    /// instead of Consul's rules; static zones answer this way.
    pub rfc_truncation: bool,
}

impl Answer {
    /// An answer with empty sections.
    pub(crate) fn new(rcode: ResponseCode, authoritative: bool) -> Self {
        Self {
            rcode,
            authoritative,
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
            location_scoped: false,
            rfc_truncation: false,
        }
    }
}

/// What the recursors answered for host names that instances and nodes use as addresses
/// (spec §2.5). The first pass of a query runs with [`Resolved::pending`] and lists the
/// names it needs; the listener asks the recursors and runs the query again with
/// [`Resolved::complete`], which never asks for more.
#[derive(Debug, Clone, Default)]
pub(crate) struct Resolved {
    complete: bool,
    answers: HashMap<Name, Vec<Record>>,
}

impl Resolved {
    /// Nothing resolved yet; external names are reported as needed.
    pub(crate) fn pending() -> Self {
        Self::default()
    }

    /// The recursors' answer sections by host name (a name they did not answer is absent).
    pub(crate) fn complete(answers: impl IntoIterator<Item = (Name, Vec<Record>)>) -> Self {
        let answers = answers.into_iter().map(|(name, records)| (name.to_lowercase(), records)).collect();
        Self { complete: true, answers }
    }

    /// Whether the recursors were asked already (a second pass never asks for more).
    pub(crate) fn is_complete(&self) -> bool {
        self.complete
    }

    /// The recursors' answer for `name`, compared ignoring ASCII case.
    pub(crate) fn get(&self, name: &Name) -> Option<&Vec<Record>> {
        self.answers.get(&name.to_lowercase())
    }
}

/// What an answer read from the catalog, so that a stored copy can be checked against a
/// newer snapshot instead of being thrown away (the answer cache).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Deps {
    /// It read more than single services and nodes (NS, PTR, prepared queries).
    pub everything: bool,
    /// Service names (catalog keys) whose instances, nodes and checks it read.
    pub services: Vec<String>,
    /// Node names (catalog keys) it read.
    pub nodes: Vec<String>,
    /// Its records are not a plain shuffle of a fixed set: a record limit, the size cap or
    /// the merging of equal addresses depended on the order drawn, so another draw can give
    /// other records (or other odds per position) than a permutation of these.
    pub partial: bool,
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
    /// and nodes): ask the recursors, then call `respond` again with their answers.
    Resolve(Vec<Name>),
    /// Send nothing (unreadable header, or a response sent to us).
    Drop,
}
