//! Zone loading, step 1: RFC 1035 master-file text -> records, each with its line.
//!
//! Input: the bytes of one zone file and the origin its name implies (`example.com.zone` ->
//! `example.com.`). Output: the records in file order with the line each starts on, or the
//! first error as `(line, message)`.
//!
//! Format (RFC 1035 §5.1, RFC 2308 §4): `$ORIGIN`, `$TTL`, `@`, relative names, owner
//! inheritance (an entry starting with a blank), `[TTL] [IN] TYPE` in either order, TTLs
//! with BIND's unit suffixes (`1h30m`), parentheses across lines, `;` comments, quoted
//! strings and `\X` / `\DDD` escapes. Types: SOA, NS, A, AAAA, CNAME, MX, TXT, SRV, PTR, CAA.
//! `$INCLUDE` is refused: a zone is one file, so a reload sees all of it.
//!
//! hickory-proto 0.26 has a zone parser (`serialize::txt::Parser`), but its errors carry no
//! position and its `$INCLUDE` reads arbitrary paths, so cairn lexes the file itself and
//! builds hickory's record types directly. RDATA by type is in `parse/rdata.rs`.
//!
//! Invariants: never panics on any input; work and memory are linear in the input.

use hickory_proto::rr::{Name, RData, Record, RecordType};

use self::rdata::{Rdata, rdata};

mod rdata;

/// Largest TTL (RFC 2181 §8: the top bit must be zero).
const MAX_TTL: u64 = 0x7fff_ffff;
/// Longest `<character-string>` (RFC 1035 §3.3: one length octet).
const MAX_STRING: usize = 255;
/// Longest RDATA (RFC 1035 §3.2.1: RDLENGTH is 16 bits).
const MAX_RDATA: usize = 65535;

/// The record types a zone file may hold, in the order error messages list them.
const SUPPORTED: &str = "SOA, NS, A, AAAA, CNAME, MX, TXT, SRV, PTR, CAA";

/// A parse failure: the line it was found on and what is wrong.
pub(super) type Failure = (u32, String);

/// One record of the file and the line its entry starts on.
#[derive(Debug, Clone)]
pub(super) struct Parsed {
    /// The record; the owner is absolute, the class is IN.
    pub(super) record: Record,
    /// 1-based line of the entry, for later errors (outside the zone, CNAME conflicts).
    pub(super) line: u32,
}

/// One word or quoted string of an entry; escapes are kept as written (`\.` stays two
/// bytes) because names and strings decode them differently.
#[derive(Debug)]
struct Field {
    text: Vec<u8>,
    quoted: bool,
    line: u32,
}

impl Field {
    fn shown(&self) -> String {
        String::from_utf8_lossy(&self.text).into_owned()
    }

    fn is_unquoted(&self, s: &str) -> bool {
        !self.quoted && self.text.eq_ignore_ascii_case(s.as_bytes())
    }
}

/// One logical entry: a line, or several joined by parentheses.
#[derive(Debug)]
struct Entry {
    /// The line the entry starts on.
    line: u32,
    /// The line began with a blank: the owner is the previous record's.
    inherits_owner: bool,
    fields: Vec<Field>,
}

/// Splits the text into entries (RFC 1035 §5.1): comments dropped, parentheses joined.
fn entries(src: &[u8]) -> Result<Vec<Entry>, Failure> {
    let mut out = Vec::new();
    let mut current: Option<Entry> = None;
    let mut line: u32 = 1;
    // Line of the open '(', if inside parentheses.
    let mut open: Option<u32> = None;
    let mut line_starts_blank = matches!(src.first(), Some(b' ' | b'\t'));
    let mut i = 0;
    while let Some(&c) = src.get(i) {
        match c {
            b'\n' => {
                line = line.saturating_add(1);
                i += 1;
                line_starts_blank = matches!(src.get(i), Some(b' ' | b'\t'));
                if open.is_none() {
                    out.extend(current.take());
                }
            }
            b' ' | b'\t' | b'\r' => i += 1,
            b';' => {
                while src.get(i).is_some_and(|&b| b != b'\n') {
                    i += 1;
                }
            }
            b'(' => {
                if let Some(at) = open {
                    return Err((line, format!("'(' inside the '(' opened on line {at}")));
                }
                open = Some(line);
                current.get_or_insert_with(|| Entry {
                    line,
                    inherits_owner: line_starts_blank,
                    fields: Vec::new(),
                });
                i += 1;
            }
            b')' => {
                if open.take().is_none() {
                    return Err((line, "')' without a matching '('".into()));
                }
                i += 1;
            }
            _ => {
                let start_line = line;
                let (field, next) = if c == b'"' { quoted(src, i, &mut line)? } else { word(src, i, line)? };
                current
                    .get_or_insert_with(|| Entry {
                        line: start_line,
                        inherits_owner: line_starts_blank,
                        fields: Vec::new(),
                    })
                    .fields
                    .push(field);
                i = next;
            }
        }
    }
    if let Some(at) = open {
        return Err((at, "'(' is never closed".into()));
    }
    out.extend(current);
    Ok(out.into_iter().filter(|e| !e.fields.is_empty()).collect())
}

/// A quoted string starting at `src[at] == b'"'`; it may span lines (`line` is advanced).
/// Returns the field and the index after the closing quote.
fn quoted(src: &[u8], at: usize, line: &mut u32) -> Result<(Field, usize), Failure> {
    let start_line = *line;
    let mut text = Vec::new();
    let mut j = at + 1;
    loop {
        match src.get(j) {
            None => return Err((start_line, "quoted string is never closed".into())),
            Some(b'"') => return Ok((Field { text, quoted: true, line: start_line }, j + 1)),
            Some(b'\\') => {
                let Some(&escaped) = src.get(j + 1) else {
                    return Err((*line, "'\\' at the end of the file".into()));
                };
                text.extend_from_slice(&[b'\\', escaped]);
                j += 2;
            }
            Some(&b) => {
                text.push(b);
                j += 1;
            }
        }
        if src.get(j - 1) == Some(&b'\n') {
            *line = line.saturating_add(1);
        }
    }
}

/// A word starting at `src[at]`, up to a blank, `;`, a parenthesis or a quote; a backslash
/// escapes the next byte. Returns the field and the index after it.
fn word(src: &[u8], at: usize, line: u32) -> Result<(Field, usize), Failure> {
    let mut text = Vec::new();
    let mut j = at;
    while let Some(&b) = src.get(j) {
        match b {
            b' ' | b'\t' | b'\r' | b'\n' | b';' | b'(' | b')' | b'"' => break,
            b'\\' => match src.get(j + 1) {
                None => return Err((line, "'\\' at the end of the file".into())),
                Some(b'\n') => return Err((line, "'\\' at the end of a line (use parentheses)".into())),
                Some(&escaped) => {
                    text.extend_from_slice(&[b'\\', escaped]);
                    j += 2;
                }
            },
            _ => {
                text.push(b);
                j += 1;
            }
        }
    }
    Ok((Field { text, quoted: false, line }, j))
}

/// Decodes one escape at `text[i]` (just after a backslash): `\DDD` or `\X`.
/// Returns the byte and how many bytes the escape used after the backslash.
fn unescape_at(text: &[u8], i: usize) -> Result<(u8, usize), String> {
    let Some(&first) = text.get(i) else {
        return Err("'\\' at the end of a field".into());
    };
    if !first.is_ascii_digit() {
        return Ok((first, 1));
    }
    let digits = text.get(i..i + 3).filter(|d| d.iter().all(u8::is_ascii_digit));
    let Some(d) = digits else {
        return Err("'\\' followed by a digit needs three digits (\\DDD)".into());
    };
    let value = d.iter().fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0'));
    let byte = u8::try_from(value).map_err(|_| format!("\\{value} is not a byte (0 to 255)"))?;
    Ok((byte, 3))
}

/// The bytes a field stands for, escapes decoded.
fn unescape(field: &Field) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(field.text.len());
    let mut i = 0;
    while let Some(&b) = field.text.get(i) {
        if b == b'\\' {
            let (byte, used) = unescape_at(&field.text, i + 1)?;
            out.push(byte);
            i += 1 + used;
        } else {
            out.push(b);
            i += 1;
        }
    }
    Ok(out)
}

/// A domain name field: `@`, `.`, absolute (`a.b.`) or relative to `origin`.
fn name(field: &Field, origin: Option<&Name>) -> Result<Name, String> {
    let shown = field.shown();
    if field.quoted {
        return Err(format!("expected a domain name, found the quoted string \"{shown}\""));
    }
    if field.text == b"@" {
        return origin.cloned().ok_or_else(|| "'@' but no $ORIGIN is known".to_owned());
    }
    if field.text == b"." {
        return Ok(Name::root());
    }
    let mut labels: Vec<Vec<u8>> = Vec::new();
    let mut label = Vec::new();
    let mut absolute = false;
    let mut i = 0;
    while let Some(&b) = field.text.get(i) {
        match b {
            b'\\' => {
                let (byte, used) = unescape_at(&field.text, i + 1).map_err(|m| format!("{shown}: {m}"))?;
                label.push(byte);
                i += 1 + used;
                continue;
            }
            b'.' if label.is_empty() => return Err(format!("{shown}: empty label")),
            b'.' => {
                labels.push(std::mem::take(&mut label));
                if i + 1 == field.text.len() {
                    absolute = true;
                }
            }
            _ => label.push(b),
        }
        i += 1;
    }
    if !label.is_empty() {
        labels.push(label);
    }
    let relative = Name::from_labels(labels.iter().map(Vec::as_slice))
        .map_err(|e| format!("{shown} is not a valid domain name: {e}"))?;
    if absolute {
        return Ok(relative);
    }
    let Some(origin) = origin else {
        return Err(format!("{shown} is relative but no $ORIGIN is known (end it with '.')"));
    };
    relative.append_name(origin).map_err(|e| format!("{shown} is not a valid domain name: {e}"))
}

/// A TTL: seconds, or BIND's `1w2d3h4m5s` form (RFC 2308 §4 allows units in `$TTL`).
fn ttl(text: &[u8]) -> Option<u32> {
    if text.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut number: Option<u64> = None;
    for &b in text {
        if b.is_ascii_digit() {
            let n = number.unwrap_or(0).checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
            number = Some(n.min(MAX_TTL + 1));
            continue;
        }
        let unit = match b.to_ascii_lowercase() {
            b's' => 1,
            b'm' => 60,
            b'h' => 3600,
            b'd' => 86_400,
            b'w' => 604_800,
            _ => return None,
        };
        total = total.checked_add(number.take()?.checked_mul(unit)?)?;
    }
    total = total.checked_add(number.unwrap_or(0))?;
    u32::try_from(total).ok().filter(|t| u64::from(*t) <= MAX_TTL)
}

/// The record type of a mnemonic, if this build serves it.
fn record_type(text: &[u8]) -> Option<RecordType> {
    let upper = text.to_ascii_uppercase();
    Some(match upper.as_slice() {
        b"SOA" => RecordType::SOA,
        b"NS" => RecordType::NS,
        b"A" => RecordType::A,
        b"AAAA" => RecordType::AAAA,
        b"CNAME" => RecordType::CNAME,
        b"MX" => RecordType::MX,
        b"TXT" => RecordType::TXT,
        b"SRV" => RecordType::SRV,
        b"PTR" => RecordType::PTR,
        b"CAA" => RecordType::CAA,
        _ => return None,
    })
}

/// The `[TTL] [class] TYPE` of an entry from field `next` on, TTL and class in either order
/// (RFC 1035 §5.1); `next` is left at the first RDATA field.
fn ttl_class_type(
    fields: &[Field],
    next: &mut usize,
    line: u32,
) -> Result<(Option<u32>, RecordType), Failure> {
    let mut explicit_ttl = None;
    let mut class_seen = false;
    let rtype = loop {
        let Some(f) = fields.get(*next) else {
            return Err((line, "missing record type".into()));
        };
        *next += 1;
        if f.quoted {
            return Err((f.line, format!("expected a TTL, class or type, found \"{}\"", f.shown())));
        }
        if f.text.first().is_some_and(u8::is_ascii_digit) {
            if explicit_ttl.is_some() {
                return Err((f.line, format!("second TTL {:?}", f.shown())));
            }
            let t = ttl(&f.text).ok_or_else(|| {
                (f.line, format!("{:?} is not a TTL (seconds up to 2147483647, or 1h30m)", f.shown()))
            })?;
            explicit_ttl = Some(t);
        } else if is_class(&f.text) && !class_seen {
            if !f.is_unquoted("IN") {
                return Err((f.line, format!("class {}: only IN is served", f.shown())));
            }
            class_seen = true;
        } else if let Some(t) = record_type(&f.text) {
            break t;
        } else {
            return Err((f.line, format!("unsupported record type {} (supported: {SUPPORTED})", f.shown())));
        }
    };
    Ok((explicit_ttl, rtype))
}

fn is_class(text: &[u8]) -> bool {
    let upper = text.to_ascii_uppercase();
    matches!(upper.as_slice(), b"IN" | b"CH" | b"CS" | b"HS" | b"NONE" | b"ANY")
        || upper.starts_with(b"CLASS")
}

/// What the parser carries from one entry to the next (RFC 1035 §5.1 defaults).
struct State {
    origin: Option<Name>,
    /// `$TTL`, if set (RFC 2308 §4).
    default_ttl: Option<u32>,
    /// The last explicitly stated TTL (RFC 1035 §5.1), used when there is no `$TTL`.
    last_ttl: Option<u32>,
    last_owner: Option<Name>,
}

/// Parses one zone file. `origin` is the origin before any `$ORIGIN` (from the file name).
pub(super) fn parse(src: &[u8], origin: Option<Name>) -> Result<Vec<Parsed>, Failure> {
    let mut st = State { origin, default_ttl: None, last_ttl: None, last_owner: None };
    let mut out = Vec::new();
    for entry in entries(src)? {
        if let Some(record) = st.entry(&entry)? {
            out.push(Parsed { record, line: entry.line });
        }
    }
    Ok(out)
}

impl State {
    /// Applies one entry: a directive (`None`) or a record.
    fn entry(&mut self, entry: &Entry) -> Result<Option<Record>, Failure> {
        let line = entry.line;
        let fields = entry.fields.as_slice();
        if let Some(f) =
            fields.first().filter(|f| !entry.inherits_owner && !f.quoted && f.text.first() == Some(&b'$'))
        {
            self.directive(f, fields.get(1..).unwrap_or(&[]), line)?;
            return Ok(None);
        }

        let mut next = 0;
        let owner = if entry.inherits_owner {
            self.last_owner.clone().ok_or_else(|| {
                (line, "the first record starts with a blank, so it has no owner name".to_owned())
            })?
        } else {
            let f = fields.first().ok_or_else(|| (line, "empty entry".to_owned()))?;
            next = 1;
            let owner = name(f, self.origin.as_ref()).map_err(|m| (f.line, format!("owner name: {m}")))?;
            self.last_owner = Some(owner.clone());
            owner
        };

        let (explicit_ttl, rtype) = ttl_class_type(fields, &mut next, line)?;

        let rest = fields.get(next..).unwrap_or(&[]);
        let mut rd = Rdata::new(rest, rtype, line, self.origin.as_ref());
        let data = rdata(&mut rd)?;
        rd.end()?;

        let ttl = self.ttl_for(explicit_ttl, &data, line)?;
        Ok(Some(Record::from_rdata(owner, ttl, data)))
    }

    /// The TTL of a record with `explicit` TTL (if any) and `data`: the explicit one, else
    /// `$TTL`, else the last explicit one, else (before either) an SOA's MINIMUM.
    fn ttl_for(&mut self, explicit: Option<u32>, data: &RData, line: u32) -> Result<u32, Failure> {
        match explicit {
            Some(t) => {
                self.last_ttl = Some(t);
                Ok(t)
            }
            None => match (self.default_ttl, self.last_ttl, data) {
                (Some(t), _, _) | (None, Some(t), _) => Ok(t),
                // Before RFC 2308 the SOA MINIMUM was the default TTL; BIND still uses it.
                (None, None, RData::SOA(soa)) => {
                    let t = soa.minimum;
                    self.last_ttl = Some(t);
                    Ok(t)
                }
                (None, None, _) => Err((line, "no TTL: give the record one or set $TTL before it".into())),
            },
        }
    }

    /// `$ORIGIN` and `$TTL`; anything else is an error.
    fn directive(&mut self, f: &Field, args: &[Field], line: u32) -> Result<(), Failure> {
        let directive = f.text.to_ascii_uppercase();
        match directive.as_slice() {
            b"$ORIGIN" | b"$TTL" => {}
            b"$INCLUDE" => {
                return Err((line, "$INCLUDE is not supported: keep each zone in one file".into()));
            }
            _ => return Err((line, format!("unknown directive {}", f.shown()))),
        }
        if let Some(extra) = args.get(1) {
            return Err((extra.line, format!("unexpected {:?} after {}", extra.shown(), f.shown())));
        }
        match (directive.as_slice(), args.first()) {
            (b"$ORIGIN", Some(a)) => {
                let origin = name(a, self.origin.as_ref()).map_err(|m| (line, format!("$ORIGIN: {m}")))?;
                self.origin = Some(origin);
            }
            (b"$TTL", Some(a)) => {
                let t = ttl(&a.text).filter(|_| !a.quoted);
                self.default_ttl =
                    Some(t.ok_or_else(|| (line, format!("$TTL: {:?} is not a TTL", a.shown())))?);
            }
            (_, _) => return Err((line, format!("{} needs a value", f.shown()))),
        }
        Ok(())
    }
}
