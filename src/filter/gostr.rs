//! Go's string conversions as go-bexpr's answers depend on them: `strconv.Unquote` (string
//! literals), `strconv.ParseInt(s, 0, 64)` and `strconv.ParseBool` (value coercion) and
//! `strconv.Quote` (the `%q` of error messages).
//!
//! Input: text → output: the converted value, or Go's error text (`strconv.ParseInt: parsing
//! "abc": invalid syntax`). Invariants: pure; never panics; bytes an escape makes that are not
//! UTF-8 (`"\xff"`) become U+FFFD, since values are compared with JSON strings.

/// Go's `strconv.Quote` (printable non-ASCII kept; control and other space characters escaped).
pub(crate) fn quote(s: &str) -> String {
    quote_with(s, "\\\"")
}

/// A double-quoted literal the filter grammar reads back as `s`: as `quote`, with `"` written
/// `\x22` (the grammar ends a string at the first `"`, escaped or not).
pub(crate) fn literal(s: &str) -> String {
    quote_with(s, "\\x22")
}

fn quote_with(s: &str, escaped_quote: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str(escaped_quote),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() || (c.is_whitespace() && c != ' ') => {
                if (c as u32) <= 0xffff {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `strconv.Unquote` for a backquoted or double-quoted literal (the grammar only hands it
/// those); `None` is Go's `invalid syntax`.
pub(crate) fn unquote(lit: &str) -> Option<String> {
    if let Some(raw) = lit.strip_prefix('`').and_then(|r| r.strip_suffix('`')) {
        return (!raw.contains('`')).then(|| raw.replace('\r', ""));
    }
    let body = lit.strip_prefix('"')?.strip_suffix('"')?;
    if body.contains('\n') {
        return None;
    }
    let mut out: Vec<u8> = Vec::with_capacity(body.len());
    let mut rest = body;
    while let Some(c) = rest.chars().next() {
        rest = &rest[c.len_utf8()..];
        match c {
            '"' => return None,
            '\\' => rest = unescape(rest, &mut out)?,
            c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// One escape after its backslash (Go's `UnquoteChar` with `"` as the quote): appends what it
/// stands for and returns the rest.
fn unescape<'a>(rest: &'a str, out: &mut Vec<u8>) -> Option<&'a str> {
    let c = rest.chars().next()?;
    let after = &rest[c.len_utf8()..];
    let simple = match c {
        'a' => Some(7u8),
        'b' => Some(8),
        'f' => Some(12),
        'n' => Some(b'\n'),
        'r' => Some(b'\r'),
        't' => Some(b'\t'),
        'v' => Some(11),
        '\\' => Some(b'\\'),
        '"' => Some(b'"'),
        _ => None,
    };
    if let Some(b) = simple {
        out.push(b);
        return Some(after);
    }
    match c {
        'x' | 'u' | 'U' => {
            let n = match c {
                'x' => 2,
                'u' => 4,
                _ => 8,
            };
            let digits = after.get(..n)?;
            let v = u32::from_str_radix(digits, 16)
                .ok()
                .filter(|_| digits.bytes().all(|b| b.is_ascii_hexdigit()))?;
            if c == 'x' {
                out.push(u8::try_from(v).ok()?);
            } else {
                let ch = char::from_u32(v)?;
                out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
            }
            Some(&after[n..])
        }
        '0'..='7' => {
            let digits = rest.get(..3)?;
            if !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                return None;
            }
            let v = u32::from_str_radix(digits, 8).ok()?;
            out.push(u8::try_from(v).ok()?);
            Some(&rest[3..])
        }
        _ => None,
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)`: sign, `0x`/`0o`/`0b`/leading-`0` bases, `_` separators.
pub(crate) fn parse_int(s: &str) -> Result<i64, String> {
    let err = |what: &str| format!("strconv.ParseInt: parsing {}: {what}", quote(s));
    if s.is_empty() {
        return Err(err("invalid syntax"));
    }
    let (neg, digits) = match s.as_bytes()[0] {
        b'+' => (false, &s[1..]),
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    let magnitude = match parse_uint(digits) {
        Ok(v) => v,
        Err(UintError::Syntax) => return Err(err("invalid syntax")),
        Err(UintError::Range) => u64::MAX,
    };
    let cutoff = 1u64 << 63;
    if (!neg && magnitude >= cutoff) || (neg && magnitude > cutoff) {
        return Err(err("value out of range"));
    }
    // In range: |magnitude| fits, including -2^63.
    Ok(if neg { 0i64.wrapping_sub_unsigned(magnitude) } else { magnitude.cast_signed() })
}

enum UintError {
    Syntax,
    Range,
}

/// Go's `strconv.ParseUint(s, 0, 64)`.
fn parse_uint(s0: &str) -> Result<u64, UintError> {
    if s0.is_empty() {
        return Err(UintError::Syntax);
    }
    let b = s0.as_bytes();
    let (base, body): (u64, &[u8]) = if b[0] == b'0' {
        match b.get(1).map(u8::to_ascii_lowercase) {
            Some(b'b') if b.len() >= 3 => (2, &b[2..]),
            Some(b'o') if b.len() >= 3 => (8, &b[2..]),
            Some(b'x') if b.len() >= 3 => (16, &b[2..]),
            _ => (8, &b[1..]),
        }
    } else {
        (10, b)
    };
    let mut underscores = false;
    let mut n: u64 = 0;
    for &c in body {
        let d = match c {
            b'_' => {
                underscores = true;
                continue;
            }
            b'0'..=b'9' => u64::from(c - b'0'),
            c if c.is_ascii_alphabetic() => u64::from(c.to_ascii_lowercase() - b'a') + 10,
            _ => return Err(UintError::Syntax),
        };
        if d >= base {
            return Err(UintError::Syntax);
        }
        n = n.checked_mul(base).and_then(|m| m.checked_add(d)).ok_or(UintError::Range)?;
    }
    if underscores && !underscore_ok(s0) {
        return Err(UintError::Syntax);
    }
    Ok(n)
}

/// Go's `underscoreOK`: `_` only between digits (a base prefix counts as one).
fn underscore_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if b.len() >= 2 && b[0] == b'0' && matches!(b[1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = b[1].eq_ignore_ascii_case(&b'x');
    }
    while i < b.len() {
        let c = b[i];
        i += 1;
        if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else if saw == b'_' {
            return false;
        } else {
            saw = b'!';
        }
    }
    saw != b'_'
}

/// Go's `strconv.ParseBool`.
pub(crate) fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("strconv.ParseBool: parsing {}: invalid syntax", quote(s))),
    }
}
