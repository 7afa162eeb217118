//! Stage 1, parse: request bytes -> `Request`, or a `ParseError` saying how to reject it.
//!
//! Input: one DNS message as received (UDP datagram or TCP frame body).
//! Output: the header metadata, the single question and the client's EDNS OPT, if any.
//!
//! Invariants:
//! - Never panics; every length is checked by hickory's decoder.
//! - An error that happened after the 12-byte header was read carries that header, so the
//!   reply (FORMERR, NOTIMP) keeps the client's ID; no header, or QR=1, means "drop".

use hickory_proto::op::{Edns, Header, Message, MessageType, Metadata, OpCode, Query};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

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
pub enum ParseError {
    /// Fewer than 12 bytes: nothing to reply to.
    #[error("message too short for a DNS header")]
    NoHeader,
    /// QR=1: a response was sent to us; never answer it (avoids reflection loops).
    #[error("message is a response, not a query")]
    NotAQuery,
    /// An opcode other than QUERY: NOTIMP.
    #[error("opcode {:?} not implemented", .0.op_code)]
    NotImplemented(Metadata),
    /// The header was read but the message is malformed: FORMERR.
    #[error("malformed request: {reason}")]
    Format {
        /// The request header, for the reply's ID.
        metadata: Metadata,
        /// What was wrong, for logs.
        reason: String,
    },
}

/// Decodes and validates one request.
pub(super) fn parse(bytes: &[u8]) -> Result<Request, ParseError> {
    let header = Header::read(&mut BinDecoder::new(bytes)).map_err(|_| ParseError::NoHeader)?;
    let metadata = header.metadata;
    if metadata.message_type == MessageType::Response {
        return Err(ParseError::NotAQuery);
    }
    if metadata.op_code != OpCode::Query {
        return Err(ParseError::NotImplemented(metadata));
    }
    let format = |reason: String| ParseError::Format { metadata, reason };
    let counts = header.counts;
    if counts.queries != 1 {
        return Err(format(format!("{} questions", counts.queries)));
    }
    if counts.answers != 0 || counts.authorities != 0 || counts.additionals > 2 {
        return Err(format("unexpected records in a query".to_owned()));
    }
    let mut msg = Message::from_vec(bytes).map_err(|e| format(e.to_string()))?;
    let query = msg.queries.pop().ok_or_else(|| format("no question".to_owned()))?;
    Ok(Request { metadata, query, edns: msg.edns })
}
