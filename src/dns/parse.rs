//! Stage 1, parse: request bytes -> `Request`, or a `ParseError` saying how to reject it.
//!
//! Input: one DNS message as received (UDP datagram or TCP frame body).
//! Output: the header metadata, the single question and the client's EDNS OPT, if any.
//!
//! What is rejected, and how (the reply itself is built by `encode::error_reply`):
//!
//! - Fewer than 12 bytes: dropped, there is nothing to address a reply to.
//! - QR=1: dropped (RFC 1035 §4.1.1); answering responses lets two servers loop
//!   (CVE-2004-0789).
//! - An opcode other than QUERY, whatever follows: NOTIMP, header only (RFC 1035 §4.1.1;
//!   RFC 8906 §8, "unknown opcodes" test: such a body has no defined format).
//! - A question, RR or name that does not decode: FORMERR (RFC 1035 §4.1.4, RFC 9267 §2–§6).
//!   This covers pointer loops, forward or out-of-range pointers, label types 01/10 (a
//!   "label > 63"), names over 255 octets, and counts larger than the data.
//! - QDCOUNT ≠ 1, ANCOUNT or NSCOUNT ≠ 0, ARCOUNT > 2: FORMERR, as miekg/dns's
//!   `DefaultMsgAcceptFunc` does for Consul (spec §1.1).
//! - OPT outside Additional, two OPTs, an OPT owner other than the root, or an OPT (or
//!   option) that does not decode: FORMERR with an OPT (RFC 6891 §6.1.1, §6.1.2, §7).
//! - EDNS VERSION > 0: BADVERS, extended RCODE 16, with an OPT of version 0 (RFC 6891 §6.1.3).
//! - QCLASS other than IN or ANY (CH, HS, NONE, unassigned): REFUSED with the question. We
//!   hold no zone in those classes; BIND answers REFUSED when no view has the class. ANY
//!   matches every class (RFC 1035 §3.2.5), so it is answered from our IN data.
//!
//! Accepted as is:
//! - unknown EDNS options and flags: ignored, and not copied to the reply (RFC 6891 §6.1.2,
//!   §6.1.4);
//! - the Z header bit: ignored, clear in the reply (RFC 1035 §4.1.1; RFC 8906 §8, "reserved
//!   bit" test);
//! - Additional records other than OPT, a well-formed TSIG included: ignored, as Consul does
//!   (we hold no TSIG keys);
//! - bytes after the last counted record: ignored, as miekg/dns does.
//!
//! Invariants:
//! - Never panics; every length is checked by hickory's decoder.
//! - Allocation is bounded by the message length: the section counts come from the sender and
//!   only bound a loop that stops at the first record that does not decode; nothing is
//!   pre-allocated from them (hickory-proto before 0.26.2 did: notes/reliability.md §4.2).
//! - An error that happened after the 12-byte header was read carries that header, so the
//!   reply (FORMERR, NOTIMP, ...) keeps the client's ID; no header, or QR=1, means "drop".

use hickory_proto::op::{Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, Query};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

/// Additional records a query may carry: an OPT and a TSIG (miekg/dns accepts at most 2).
const MAX_ADDITIONALS: u16 = 2;

/// The only EDNS version defined (RFC 6891 §6.1.3).
const EDNS_VERSION: u8 = 0;

/// A well-formed standard query with exactly one question.
#[derive(Debug, Clone)]
pub struct Request {
    /// The request header (ID, opcode, RD, ...).
    pub metadata: Metadata,
    /// The question, exactly as sent (case preserved).
    pub query: Query,
    /// The client's EDNS OPT pseudo-RR, if it sent one.
    pub edns: Option<Edns>,
}

/// Why a request is not answered normally.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Fewer than 12 bytes: nothing to reply to.
    #[error("message too short for a DNS header")]
    NoHeader,
    /// QR=1: a response was sent to us; never answer it (avoids reflection loops).
    #[error("message is a response, not a query")]
    NotAQuery,
    /// An opcode other than QUERY: NOTIMP. Its body has no defined format, so it is not read.
    #[error("opcode {} not implemented", .0.op_code)]
    NotImplemented(Metadata),
    /// The header was read but the message is malformed: FORMERR.
    #[error("malformed request: {reason}")]
    Format {
        /// The request header, for the reply's ID and opcode.
        metadata: Metadata,
        /// The client's OPT, if it sent one (an unreadable OPT reads as a default one): a
        /// FORMERR to an EDNS request carries an OPT (RFC 6891 §7).
        edns: Option<Box<Edns>>,
        /// What was wrong, for logs.
        reason: String,
    },
    /// EDNS version above ours: BADVERS (RFC 6891 §6.1.3).
    #[error("EDNS version {} not implemented", .0.edns.as_ref().map_or(0, Edns::version))]
    BadVersion(Box<Request>),
    /// A QCLASS we hold no data for (CH, HS, NONE, ...): REFUSED.
    #[error("class {} not served", .0.query.query_class())]
    UnservedClass(Box<Request>),
}

/// Decodes and validates one request.
pub(super) fn parse(bytes: &[u8]) -> Result<Request, ParseError> {
    let mut decoder = BinDecoder::new(bytes);
    let header = Header::read(&mut decoder).map_err(|_| ParseError::NoHeader)?;
    let metadata = header.metadata;
    if metadata.message_type == MessageType::Response {
        return Err(ParseError::NotAQuery);
    }
    if metadata.op_code != OpCode::Query {
        return Err(ParseError::NotImplemented(metadata));
    }
    let body = Body::read(bytes, &mut decoder, header.counts);
    let format =
        |reason: String| ParseError::Format { metadata, edns: body.opt_edns().map(Box::new), reason };
    if let Some(reason) = &body.error {
        return Err(format(reason.clone()));
    }
    let counts = header.counts;
    if counts.queries != 1 {
        return Err(format(format!("{} questions", counts.queries)));
    }
    if counts.answers != 0 || counts.authorities != 0 {
        return Err(format("answer or authority records in a query".to_owned()));
    }
    if counts.additionals > MAX_ADDITIONALS {
        return Err(format(format!("{} additional records", counts.additionals)));
    }
    let Some(query) = body.query else {
        return Err(format("no question".to_owned()));
    };
    let request = Request { metadata, query, edns: body.edns };
    if request.edns.as_ref().is_some_and(|e| e.version() > EDNS_VERSION) {
        return Err(ParseError::BadVersion(Box::new(request)));
    }
    if !matches!(request.query.query_class(), DNSClass::IN | DNSClass::ANY) {
        return Err(ParseError::UnservedClass(Box::new(request)));
    }
    Ok(request)
}

/// Everything after the header, read record by record.
#[derive(Debug, Default)]
struct Body {
    /// The first question.
    query: Option<Query>,
    /// The OPT from Additional, if one decoded.
    edns: Option<Edns>,
    /// An OPT was seen anywhere, even one that did not decode.
    opt_seen: bool,
    /// The first problem; reading stops there.
    error: Option<String>,
}

impl Body {
    fn read(bytes: &[u8], decoder: &mut BinDecoder<'_>, counts: HeaderCounts) -> Self {
        let mut body = Self::default();
        if let Err(reason) = body.read_sections(bytes, decoder, counts) {
            body.error = Some(reason);
        }
        body
    }

    fn read_sections(
        &mut self,
        bytes: &[u8],
        decoder: &mut BinDecoder<'_>,
        counts: HeaderCounts,
    ) -> Result<(), String> {
        for _ in 0..counts.queries {
            let query = Query::read(decoder).map_err(|e| format!("question: {e}"))?;
            self.query.get_or_insert(query);
        }
        let sections = [
            ("answer", counts.answers, false),
            ("authority", counts.authorities, false),
            ("additional", counts.additionals, true),
        ];
        for (section, count, additional) in sections {
            for _ in 0..count {
                let is_opt = peek_type(bytes, decoder.index()) == Some(RecordType::OPT);
                self.opt_seen |= is_opt;
                let record = Record::read(decoder).map_err(|e| format!("{section} record: {e}"))?;
                if record.record_type() != RecordType::OPT {
                    continue;
                }
                if !additional {
                    return Err(format!("OPT in the {section} section"));
                }
                if self.edns.is_some() {
                    return Err("more than one OPT".to_owned());
                }
                // `Edns::from` panics on any other RDATA; these are the two an OPT decodes to.
                if !matches!(record.data, RData::OPT(_) | RData::Update0(_)) {
                    return Err("OPT with unexpected RDATA".to_owned());
                }
                self.edns = Some(Edns::from(&record));
            }
        }
        Ok(())
    }

    /// The OPT to put in an error reply: the client's, or a default one if it sent an OPT we
    /// could not read.
    fn opt_edns(&self) -> Option<Edns> {
        self.edns.clone().or_else(|| self.opt_seen.then(Edns::new))
    }
}

/// The TYPE of the record starting at `at`, if its owner name and type decode.
fn peek_type(bytes: &[u8], at: usize) -> Option<RecordType> {
    let mut d = BinDecoder::new(bytes);
    d.read_slice(at).ok()?;
    Name::read(&mut d).ok()?;
    RecordType::read(&mut d).ok()
}
