//! Zone loading, step 1b: one entry's RDATA fields -> hickory's `RData` for its type.
//!
//! Input: the fields after `[TTL] [class] TYPE` (a `Rdata` cursor), the type, the entry's
//! line and the origin. Output: the record data, or the first error as `(line, message)`
//! naming the type and the field.
//!
//! Formats: RFC 1035 §3.3 (A, NS, CNAME, PTR, MX, SOA, TXT), RFC 3596 (AAAA), RFC 2782
//! (SRV), RFC 8659 (CAA); numbers range-checked for their field, strings and RDATA within
//! their wire limits.
//!
//! Invariants: never panics on any input; every field is consumed or reported (`end`).

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::rdata::{A, AAAA, CAA, CNAME, MX, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, RecordType};

use super::{Failure, Field, MAX_RDATA, MAX_STRING, SUPPORTED, name, ttl, unescape};

/// A cursor over an entry's RDATA fields.
pub(super) struct Rdata<'a> {
    fields: std::slice::Iter<'a, Field>,
    rtype: RecordType,
    /// The entry's line, for a missing field.
    line: u32,
    origin: Option<&'a Name>,
}

impl<'a> Rdata<'a> {
    /// A cursor over `fields`, the RDATA of a `rtype` record on `line`.
    pub(super) fn new(fields: &'a [Field], rtype: RecordType, line: u32, origin: Option<&'a Name>) -> Self {
        Self { fields: fields.iter(), rtype, line, origin }
    }

    fn next(&mut self, what: &str) -> Result<&'a Field, Failure> {
        self.fields.next().ok_or_else(|| (self.line, format!("{} record: missing {what}", self.rtype)))
    }

    fn name(&mut self, what: &str) -> Result<Name, Failure> {
        let f = self.next(what)?;
        name(f, self.origin).map_err(|m| (f.line, format!("{} record: {what}: {m}", self.rtype)))
    }

    fn number<T: TryFrom<u64>>(&mut self, what: &str) -> Result<T, Failure> {
        let f = self.next(what)?;
        let bad =
            || (f.line, format!("{} record: {what}: {:?} is not a number in range", self.rtype, f.shown()));
        if f.quoted || f.text.is_empty() || f.text.len() > 20 || !f.text.iter().all(u8::is_ascii_digit) {
            return Err(bad());
        }
        let n = f.text.iter().try_fold(0u64, |acc, b| acc.checked_mul(10)?.checked_add(u64::from(b - b'0')));
        n.and_then(|n| T::try_from(n).ok()).ok_or_else(bad)
    }

    fn ttl(&mut self, what: &str) -> Result<u32, Failure> {
        let f = self.next(what)?;
        ttl(&f.text).filter(|_| !f.quoted).ok_or_else(|| {
            (
                f.line,
                format!("{} record: {what}: {:?} is not a time in seconds (or 1h30m)", self.rtype, f.shown()),
            )
        })
    }

    /// One field as bytes, escapes decoded, at most `max` long.
    fn bytes(&mut self, what: &str, max: usize) -> Result<Vec<u8>, Failure> {
        let f = self.next(what)?;
        self.decode(f, what, max)
    }

    fn decode(&self, f: &Field, what: &str, max: usize) -> Result<Vec<u8>, Failure> {
        let bytes = unescape(f).map_err(|m| (f.line, format!("{} record: {what}: {m}", self.rtype)))?;
        if bytes.len() > max {
            return Err((
                f.line,
                format!("{} record: {what} is {} bytes, more than {max}", self.rtype, bytes.len()),
            ));
        }
        Ok(bytes)
    }

    fn text(&mut self, what: &str) -> Result<String, Failure> {
        let f = self.next(what)?;
        if f.quoted {
            return Err((f.line, format!("{} record: {what}: unexpected quoted string", self.rtype)));
        }
        String::from_utf8(f.text.clone())
            .map_err(|_| (f.line, format!("{} record: {what}: not text", self.rtype)))
    }

    /// Fails if a field is left after the data.
    pub(super) fn end(mut self) -> Result<(), Failure> {
        match self.fields.next() {
            None => Ok(()),
            Some(f) => {
                Err((f.line, format!("{} record: unexpected {:?} after the data", self.rtype, f.shown())))
            }
        }
    }
}

/// Parses the RDATA of one record (RFC 1035 §3.3, RFC 2782, RFC 3596, RFC 8659).
pub(super) fn rdata(rd: &mut Rdata<'_>) -> Result<RData, Failure> {
    let data = match rd.rtype {
        RecordType::A => {
            let text = rd.text("IPv4 address")?;
            let ip: Ipv4Addr =
                text.parse().map_err(|_| (rd.line, format!("A record: {text:?} is not an IPv4 address")))?;
            RData::A(A(ip))
        }
        RecordType::AAAA => {
            let text = rd.text("IPv6 address")?;
            let ip: Ipv6Addr = text
                .parse()
                .map_err(|_| (rd.line, format!("AAAA record: {text:?} is not an IPv6 address")))?;
            RData::AAAA(AAAA(ip))
        }
        RecordType::NS => RData::NS(NS(rd.name("name server")?)),
        RecordType::CNAME => RData::CNAME(CNAME(rd.name("canonical name")?)),
        RecordType::PTR => RData::PTR(PTR(rd.name("target name")?)),
        RecordType::MX => {
            let preference = rd.number("preference")?;
            RData::MX(MX::new(preference, rd.name("mail exchange")?))
        }
        RecordType::SRV => {
            let priority = rd.number("priority")?;
            let weight = rd.number("weight")?;
            let port = rd.number("port")?;
            RData::SRV(SRV::new(priority, weight, port, rd.name("target")?))
        }
        RecordType::SOA => {
            let mname = rd.name("primary name server")?;
            let rname = rd.name("responsible mailbox")?;
            let serial = rd.number("serial")?;
            // `ttl` caps at 2^31 - 1, so these fit the i32 fields hickory uses.
            let as_i32 = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
            let refresh = as_i32(rd.ttl("refresh")?);
            let retry = as_i32(rd.ttl("retry")?);
            let expire = as_i32(rd.ttl("expire")?);
            let minimum = rd.ttl("minimum")?;
            RData::SOA(SOA::new(mname, rname, serial, refresh, retry, expire, minimum))
        }
        RecordType::TXT => {
            let mut strings = Vec::new();
            let mut size = 0usize;
            while let Some(f) = rd.fields.next() {
                let s = rd.decode(f, "string", MAX_STRING)?;
                size += s.len() + 1;
                if size > MAX_RDATA {
                    return Err((f.line, format!("TXT record: more than {MAX_RDATA} bytes")));
                }
                strings.push(s);
            }
            if strings.is_empty() {
                return Err((rd.line, "TXT record: missing text (at least one string)".into()));
            }
            RData::TXT(TXT::from_bytes(strings.iter().map(Vec::as_slice).collect()))
        }
        RecordType::CAA => {
            let flags: u8 = rd.number("flags")?;
            let tag_field = rd.fields.clone().next();
            let tag = rd.bytes("tag", MAX_STRING)?;
            if tag.is_empty() || !tag.iter().all(u8::is_ascii_alphanumeric) {
                let line = tag_field.map_or(rd.line, |f| f.line);
                return Err((
                    line,
                    "CAA record: the tag must be letters and digits (issue, iodef, ...)".into(),
                ));
            }
            let value = rd.bytes("value", MAX_RDATA - 2 - tag.len())?;
            // Raw tag and value, as RFC 8659 §4.1 defines them; the constructor only seeds
            // a value that is overwritten (the struct is non-exhaustive).
            let mut caa = CAA::new_issue(flags & 0x80 != 0, None, Vec::new());
            caa.reserved_flags = flags & 0x7f;
            caa.tag = String::from_utf8_lossy(&tag).into_owned();
            caa.value = value;
            RData::CAA(caa)
        }
        other => return Err((rd.line, format!("unsupported record type {other} (supported: {SUPPORTED})"))),
    };
    Ok(data)
}
