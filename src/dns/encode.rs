//! Stage 4, encode: `Answer` -> response bytes.
//!
//! Input: the request (ID, RD, question, EDNS), the `Answer`, the transport and the context.
//! Output: wire bytes: QR=1, RD copied, RA iff recursors, AA/RCODE from the answer; the
//! client's OPT echoed with its UDP size (spec §2.12); compression unless disabled.
//!
//! Size limits (spec §2.12): UDP allows 512 bytes, or the client's EDNS size capped at 65467;
//! without EDNS the answer count is capped at `min(8, udp_answer_limit)`. TCP allows 65523
//! bytes after a 4096-answer pre-cap (1024 for SRV). When too big, Authority goes first,
//! then answers are dropped (at least one kept), and Additional is rebuilt from the
//! surviving answers' own records. TC is set only if answers were dropped and
//! `enable_truncate` is on.
//!
//! Invariants: never panics; an encoding failure yields a bare SERVFAIL, or nothing.

use std::collections::HashSet;

use hickory_proto::op::{Edns, Message, MessageType, Metadata, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use super::context::{DnsContext, Transport};
use super::message::Answer;
use super::parse::{ParseError, Request};

/// Classic DNS UDP payload limit.
const UDP_CLASSIC: usize = 512;
/// Largest UDP payload (65535 minus IP and UDP headers).
const UDP_MAX: usize = 65467;
/// Largest TCP response Consul produces.
const TCP_MAX: usize = 65523;
/// Bytes Consul keeps free below the UDP limit when trimming (spec §2.12, step 3).
const UDP_TRIM_MARGIN: usize = 8;
/// Hard cap of `udp_answer_limit`.
const MAX_UDP_ANSWER_LIMIT: u32 = 8;

fn base(meta: &Metadata, ctx: &DnsContext) -> Message {
    let mut msg = Message::new(meta.id, MessageType::Response, meta.op_code);
    msg.metadata = Metadata::response_from_request(meta);
    msg.metadata.recursion_available = !ctx.recursors.is_empty();
    msg
}

/// The reply's OPT for an EDNS request: version 0, no flags, the client's UDP size echoed
/// (Consul, spec §2.12), and its Client Subnet option echoed with SCOPE 0, or with SCOPE =
/// SOURCE PREFIX when the answer may depend on the client's location
/// (`Answer::location_scoped`, prepared queries, §2.13). Other options and flags are ignored,
/// not copied (RFC 6891 §6.1.2, §6.1.4).
fn echo_edns(req: &Request, location_scoped: bool) -> Option<Edns> {
    req.edns.as_ref().map(|e| {
        let mut out = reply_edns(e.max_payload());
        if let Some(EdnsOption::Subnet(subnet)) = e.option(EdnsCode::Subnet) {
            let mut subnet = *subnet;
            subnet.set_scope_prefix(if location_scoped { subnet.source_prefix() } else { 0 });
            out.options_mut().insert(EdnsOption::Subnet(subnet));
        }
        out
    })
}

fn reply_edns(max_payload: u16) -> Edns {
    let mut out = Edns::new();
    out.set_max_payload(max_payload);
    out
}

fn render(msg: &Message, ctx: &DnsContext) -> Option<Vec<u8>> {
    render_with(msg, ctx.dns_config.disable_compression)
}

fn render_with(msg: &Message, uncompressed: bool) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(UDP_CLASSIC);
    let mut enc = BinEncoder::new(&mut buf);
    if uncompressed {
        enc.set_name_encoding(NameEncoding::Uncompressed);
    }
    msg.emit(&mut enc).ok()?;
    Some(buf)
}

/// The reply for a request that is not answered normally, or `None` (drop) when there is no
/// header or it is a response. Error replies are not authoritative and carry no records.
///
/// - NOTIMP: the header only (ID and opcode echoed); an unknown opcode's body has no format.
/// - FORMERR: no question; an OPT when the request had one (RFC 6891 §7).
/// - BADVERS: the question and an OPT of version 0 whose extended RCODE completes the 12-bit
///   RCODE 16 (RFC 6891 §6.1.3; hickory writes the high bits from `ResponseCode::BADVERS`).
/// - REFUSED (unserved class): the question, and the OPT echoed as for any answer.
pub(super) fn error_reply(err: &ParseError, ctx: &DnsContext) -> Option<Vec<u8>> {
    let msg = match err {
        ParseError::NoHeader | ParseError::NotAQuery => return None,
        ParseError::NotImplemented(meta) => error_msg(meta, ResponseCode::NotImp, ctx),
        ParseError::Format { metadata, edns, .. } => {
            let mut msg = error_msg(metadata, ResponseCode::FormErr, ctx);
            msg.edns = edns.as_deref().map(|e| reply_edns(e.max_payload()));
            msg
        }
        ParseError::BadVersion(req) => request_error(req, ResponseCode::BADVERS, ctx),
        ParseError::UnservedClass(req) => request_error(req, ResponseCode::Refused, ctx),
    };
    render(&msg, ctx)
}

fn error_msg(meta: &Metadata, rcode: ResponseCode, ctx: &DnsContext) -> Message {
    let mut msg = base(meta, ctx);
    msg.metadata.response_code = rcode;
    msg
}

/// An error reply to a request that parsed: question and OPT echoed.
fn request_error(req: &Request, rcode: ResponseCode, ctx: &DnsContext) -> Message {
    let mut msg = error_msg(&req.metadata, rcode, ctx);
    msg.queries.push(req.query.clone());
    msg.edns = echo_edns(req, false);
    msg
}

/// SERVFAIL with RA=1 and the question and EDNS echoed: every recursor failed.
pub(super) fn servfail(req: &Request, ctx: &DnsContext) -> Option<Vec<u8>> {
    let mut msg = base(&req.metadata, ctx);
    msg.metadata.recursion_available = true;
    msg.metadata.response_code = ResponseCode::ServFail;
    msg.queries.push(req.query.clone());
    msg.edns = echo_edns(req, false);
    render(&msg, ctx)
}

/// A recursor's reply as the client gets it: re-encoded without compression when
/// `disable_compression` is set (spec §2.16), otherwise (or if it does not decode) as is.
pub(super) fn recompress(reply: Vec<u8>, ctx: &DnsContext) -> Vec<u8> {
    if !ctx.dns_config.disable_compression {
        return reply;
    }
    Message::from_vec(&reply).ok().and_then(|msg| render_with(&msg, true)).unwrap_or(reply)
}

/// A data record's identity for de-duplicating Additional.
fn record_key(r: &Record) -> (String, RecordType, String) {
    (r.name.to_lowercase().to_ascii(), r.record_type(), format!("{:?}", r.data))
}

/// The big-endian 16-bit field at `at` of a wire message (a header count, an RR type or
/// RDLENGTH), or `None` past the end.
pub(super) fn u16_at(msg: &[u8], at: usize) -> Option<usize> {
    msg.get(at..at + 2).map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
}

/// The ANCOUNT of an encoded message.
pub(super) fn answer_count(msg: &[u8]) -> usize {
    u16_at(msg, 6).unwrap_or(0)
}

/// Encodes an answer within the transport's limits.
pub(super) fn encode(req: &Request, ans: Answer, transport: Transport, ctx: &DnsContext) -> Option<Vec<u8>> {
    let mut msg = base(&req.metadata, ctx);
    msg.metadata.authoritative = ans.authoritative;
    msg.metadata.response_code = ans.rcode;
    msg.queries.push(req.query.clone());
    msg.edns = echo_edns(req, ans.location_scoped);

    let total = ans.answers.len();
    let (max_size, count_cap) = limits(req, transport, ans.rfc_truncation, ctx);

    // Each answer's Additional records that earlier answers have not already contributed,
    // so any prefix of the answers has a de-duplicated Additional section.
    let mut seen = HashSet::new();
    let mut answers = Vec::with_capacity(total);
    let mut new_extras: Vec<Vec<Record>> = Vec::with_capacity(total);
    for rr in ans.answers {
        new_extras.push(rr.extra.into_iter().filter(|r| seen.insert(record_key(r))).collect());
        answers.push(rr.record);
    }
    let fixed_additionals = ans.additionals;
    let authorities = ans.authorities;

    let build = |msg: &mut Message, keep: usize, with_authority: bool| {
        msg.answers = answers.iter().take(keep).cloned().collect();
        msg.additionals = new_extras.iter().take(keep).flatten().cloned().collect();
        msg.additionals.extend(fixed_additionals.iter().cloned());
        msg.authorities = if with_authority { authorities.clone() } else { Vec::new() };
    };

    // Consul trims UDP replies until they fit in `max_size - 8` (`trimUDPResponse`), which
    // leaves room for an OPT record a forwarder may add; TCP uses its limit as is.
    let fit = match transport {
        Transport::Udp => max_size - UDP_TRIM_MARGIN,
        Transport::Tcp => max_size,
    };
    let mut keep = count_cap.map_or(total, |cap| total.min(cap));
    // Consul measures a classic 512-byte reply uncompressed once the answer count was capped,
    // so the reply stays under 512 bytes even if a downstream server decompresses it; the reply
    // itself is still sent compressed (`trimUDPResponse`).
    let measure_uncompressed =
        ctx.dns_config.disable_compression || (max_size == UDP_CLASSIC && keep < total);
    let size = |msg: &Message| render_with(msg, measure_uncompressed).map(|b| b.len());
    let mut with_authority = true;
    build(&mut msg, keep, with_authority);
    let mut len = size(&msg)?;
    if len > fit && keep > 0 && !authorities.is_empty() {
        with_authority = false;
        build(&mut msg, keep, with_authority);
        len = size(&msg)?;
    }
    if len > fit && keep > 1 {
        // Largest answer count in [1, keep) that fits; one answer is always kept.
        let (mut lo, mut hi, mut best) = (1usize, keep - 1, 1usize);
        while lo <= hi {
            let mid = lo + (hi - lo) / 2;
            build(&mut msg, mid, with_authority);
            if size(&msg).is_some_and(|l| l <= fit) {
                best = mid;
                lo = mid + 1;
            } else {
                hi = mid - 1;
            }
        }
        keep = best;
        build(&mut msg, keep, with_authority);
    }
    let mut bytes = render(&msg, ctx)?;
    if keep < total && (ctx.dns_config.enable_truncate || ans.rfc_truncation) {
        msg.metadata.truncation = true;
        bytes = render(&msg, ctx)?;
    }
    Some(bytes)
}

/// The transport's size limit for this request, and the cap on answers Consul applies
/// (`None`: no cap; RFC truncation has none): a classic 512-byte UDP reply keeps at most
/// `udp_answer_limit` answers, TCP at most 1024 SRV or 4096 other records.
fn limits(
    req: &Request,
    transport: Transport,
    rfc_truncation: bool,
    ctx: &DnsContext,
) -> (usize, Option<usize>) {
    match transport {
        Transport::Udp => {
            let size = req.edns.as_ref().map_or(UDP_CLASSIC, |e| usize::from(e.max_payload()));
            let size = size.clamp(UDP_CLASSIC, UDP_MAX);
            let cap = (size == UDP_CLASSIC && !rfc_truncation).then(|| {
                let limit = ctx.dns_config.udp_answer_limit.min(MAX_UDP_ANSWER_LIMIT);
                usize::try_from(limit).unwrap_or(0)
            });
            (size, cap)
        }
        Transport::Tcp => {
            let cap = if req.query.query_type() == RecordType::SRV { 1024 } else { 4096 };
            (TCP_MAX, (!rfc_truncation).then_some(cap))
        }
    }
}
