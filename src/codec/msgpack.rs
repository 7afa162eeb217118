//! MessagePack as Consul 1.8.7 writes it (hashicorp/go-msgpack 0.5, `structs.MsgpackHandle`):
//! the values of a Consul FSM snapshot's `state.bin` (`backup::consul`).
//!
//! Input: bytes from an archive (untrusted: a file or a `PUT /v1/snapshot` body). Output: a
//! [`Value`] tree, or a [`MsgpackError`] naming the offset; and back, [`write`] encodes a
//! `Value` the way Consul's encoder would (strings and byte slices as the old spec's raw type,
//! `fixstr`/`str16`/`str32`, never `str8` or `bin`, which go-msgpack 0.5 does not write;
//! integers in their shortest form).
//!
//! Why our own code and not `rmp`/`rmpv`: neither is in the dependency tree, and what this
//! needs is small and particular: a tree reader that bounds its work by the input (a declared
//! length larger than the bytes left is refused before anything is allocated, nesting is
//! capped), reads go-codec's old-spec raw strings as bytes (Consul's `[]byte` values arrive as
//! strings), and a writer that produces exactly the old-spec forms Consul's decoder expects.
//! That is under 300 lines, fuzzed (`tests/fuzz/fuzz_targets/consul_snapshot.rs`) and
//! proptested below; a decoder never panics on any input.
//!
//! Invariants: [`read`] never panics and never allocates more than a small multiple of its
//! input; `read(write(v)) == v` for every value (proptest).

use serde_json::{Map, Number};

/// The JSON value opaque documents are stored as (config entries, a proxy's `Config`).
pub(crate) type Json = serde_json::Value;

/// Deepest nesting accepted (Consul's records nest a handful of levels).
const MAX_DEPTH: usize = 64;

/// One MessagePack value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// `nil`.
    Nil,
    /// `true` / `false`.
    Bool(bool),
    /// A non-negative integer.
    Uint(u64),
    /// A negative integer.
    Int(i64),
    /// A float (32-bit ones widened).
    Float(f64),
    /// A raw string or binary (go-codec's `[]byte` and `string` share it).
    Bytes(Vec<u8>),
    /// An array.
    Array(Vec<Self>),
    /// A map, in encoded order.
    Map(Vec<(Self, Self)>),
    /// An extension value: type and data.
    Ext(i8, Vec<u8>),
}

/// Why bytes are not MessagePack.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum MsgpackError {
    /// The input ends inside a value.
    #[error("unexpected EOF at byte {0}")]
    Eof(usize),
    /// A byte that starts no value (0xc1).
    #[error("invalid msgpack descriptor 0x{0:02x} at byte {1}")]
    Descriptor(u8, usize),
    /// Nested deeper than `MAX_DEPTH`.
    #[error("msgpack value nested too deeply at byte {0}")]
    Depth(usize),
}

impl Value {
    /// A string value.
    pub(crate) fn str(s: &str) -> Self {
        Self::Bytes(s.as_bytes().to_vec())
    }

    /// The entry of a map keyed by the string `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&Self> {
        match self {
            Self::Map(entries) => entries
                .iter()
                .find(|(k, _)| matches!(k, Self::Bytes(b) if b == key.as_bytes()))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The value as text (lossy for invalid UTF-8), `None` unless a string.
    pub(crate) fn as_text(&self) -> Option<String> {
        match self {
            Self::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }

    /// The value as an unsigned integer (`None` for negatives, floats and non-numbers).
    pub(crate) fn as_u64(&self) -> Option<u64> {
        match self {
            Self::Uint(n) => Some(*n),
            _ => None,
        }
    }

    /// The value as a signed integer.
    pub(crate) fn as_i64(&self) -> Option<i64> {
        match self {
            Self::Uint(n) => i64::try_from(*n).ok(),
            Self::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// The value as a float (integers converted).
    pub(crate) fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Float(f) => Some(*f),
            #[allow(clippy::cast_precision_loss)] // Go decodes integers into float fields the same way
            Self::Uint(n) => Some(*n as f64),
            #[allow(clippy::cast_precision_loss)]
            Self::Int(n) => Some(*n as f64),
            _ => None,
        }
    }

    /// The value as a bool.
    pub(crate) fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The elements of an array (`nil` reads as empty, as Go's nil slice).
    pub(crate) fn items(&self) -> &[Self] {
        match self {
            Self::Array(items) => items,
            _ => &[],
        }
    }

    /// The entries of a map (`nil` reads as empty, as Go's nil map).
    pub(crate) fn entries(&self) -> &[(Self, Self)] {
        match self {
            Self::Map(entries) => entries,
            _ => &[],
        }
    }

    /// The value as JSON (strings as text, extension values as null): what cairn stores of
    /// an opaque document such as a config entry or a proxy's `Config`.
    pub(crate) fn to_json(&self) -> Json {
        match self {
            Self::Nil | Self::Ext(..) => Json::Null,
            Self::Bool(b) => Json::Bool(*b),
            Self::Uint(n) => Json::Number((*n).into()),
            Self::Int(n) => Json::Number((*n).into()),
            Self::Float(f) => Number::from_f64(*f).map_or(Json::Null, Json::Number),
            Self::Bytes(b) => Json::String(String::from_utf8_lossy(b).into_owned()),
            Self::Array(items) => Json::Array(items.iter().map(Self::to_json).collect()),
            Self::Map(entries) => Json::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.as_text().unwrap_or_else(|| format!("{k:?}")), v.to_json()))
                    .collect::<Map<String, Json>>(),
            ),
        }
    }

    /// JSON as a value (the inverse of [`Value::to_json`] for what it produces).
    pub(crate) fn from_json(json: &Json) -> Self {
        match json {
            Json::Null => Self::Nil,
            Json::Bool(b) => Self::Bool(*b),
            Json::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => Self::Uint(u),
                (_, Some(i), _) => Self::Int(i),
                (_, _, f) => Self::Float(f.unwrap_or_default()),
            },
            Json::String(s) => Self::str(s),
            Json::Array(items) => Self::Array(items.iter().map(Self::from_json).collect()),
            Json::Object(m) => Self::Map(m.iter().map(|(k, v)| (Self::str(k), Self::from_json(v))).collect()),
        }
    }
}

/// Reads one value from `buf` at `*pos`, moving `*pos` past it.
pub(crate) fn read(buf: &[u8], pos: &mut usize) -> Result<Value, MsgpackError> {
    read_at(buf, pos, 0)
}

fn take<'a>(buf: &'a [u8], pos: &mut usize, n: usize) -> Result<&'a [u8], MsgpackError> {
    let end = pos.checked_add(n).filter(|e| *e <= buf.len()).ok_or(MsgpackError::Eof(*pos))?;
    let out = &buf[*pos..end];
    *pos = end;
    Ok(out)
}

fn be(buf: &[u8], pos: &mut usize, n: usize) -> Result<u64, MsgpackError> {
    Ok(take(buf, pos, n)?.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

/// A declared element count, refused when the bytes left cannot hold that many values
/// (each takes at least `min` bytes), so no allocation exceeds the input.
fn count(buf: &[u8], pos: usize, n: u64, min: usize) -> Result<usize, MsgpackError> {
    let left = buf.len().saturating_sub(pos);
    usize::try_from(n).ok().filter(|n| n.saturating_mul(min) <= left).ok_or(MsgpackError::Eof(pos))
}

// length: one arm per msgpack descriptor, the format's whole table in one place.
#[allow(clippy::cast_possible_wrap)] // two's complement reinterpretation is the encoding
fn read_at(buf: &[u8], pos: &mut usize, depth: usize) -> Result<Value, MsgpackError> {
    if depth > MAX_DEPTH {
        return Err(MsgpackError::Depth(*pos));
    }
    let at = *pos;
    let b = *buf.get(at).ok_or(MsgpackError::Eof(at))?;
    *pos += 1;
    let bytes = |pos: &mut usize, n: u64| -> Result<Value, MsgpackError> {
        let n = count(buf, *pos, n, 1)?;
        Ok(Value::Bytes(take(buf, pos, n)?.to_vec()))
    };
    let ext = |pos: &mut usize, n: u64| -> Result<Value, MsgpackError> {
        let t = take(buf, pos, 1)?[0] as i8;
        let n = count(buf, *pos, n, 1)?;
        Ok(Value::Ext(t, take(buf, pos, n)?.to_vec()))
    };
    Ok(match b {
        0x00..=0x7f => Value::Uint(u64::from(b)),
        0x80..=0x8f => read_map(buf, pos, u64::from(b & 0x0f), depth)?,
        0x90..=0x9f => read_array(buf, pos, u64::from(b & 0x0f), depth)?,
        0xa0..=0xbf => bytes(pos, u64::from(b & 0x1f))?,
        0xc0 => Value::Nil,
        0xc2 => Value::Bool(false),
        0xc3 => Value::Bool(true),
        0xc4 | 0xd9 => {
            let n = be(buf, pos, 1)?;
            bytes(pos, n)?
        }
        0xc5 | 0xda => {
            let n = be(buf, pos, 2)?;
            bytes(pos, n)?
        }
        0xc6 | 0xdb => {
            let n = be(buf, pos, 4)?;
            bytes(pos, n)?
        }
        0xc7 => {
            let n = be(buf, pos, 1)?;
            ext(pos, n)?
        }
        0xc8 => {
            let n = be(buf, pos, 2)?;
            ext(pos, n)?
        }
        0xc9 => {
            let n = be(buf, pos, 4)?;
            ext(pos, n)?
        }
        #[allow(clippy::cast_possible_truncation)] // exactly 32 bits were read
        0xca => Value::Float(f64::from(f32::from_bits(be(buf, pos, 4)? as u32))),
        0xcb => Value::Float(f64::from_bits(be(buf, pos, 8)?)),
        0xcc => Value::Uint(be(buf, pos, 1)?),
        0xcd => Value::Uint(be(buf, pos, 2)?),
        0xce => Value::Uint(be(buf, pos, 4)?),
        0xcf => Value::Uint(be(buf, pos, 8)?),
        0xd0 => int(i64::from(take(buf, pos, 1)?[0] as i8)),
        #[allow(clippy::cast_possible_truncation)]
        0xd1 => int(i64::from(be(buf, pos, 2)? as u16 as i16)),
        #[allow(clippy::cast_possible_truncation)]
        0xd2 => int(i64::from(be(buf, pos, 4)? as u32 as i32)),
        0xd3 => int(be(buf, pos, 8)? as i64),
        0xd4 => ext(pos, 1)?,
        0xd5 => ext(pos, 2)?,
        0xd6 => ext(pos, 4)?,
        0xd7 => ext(pos, 8)?,
        0xd8 => ext(pos, 16)?,
        0xdc => {
            let n = be(buf, pos, 2)?;
            read_array(buf, pos, n, depth)?
        }
        0xdd => {
            let n = be(buf, pos, 4)?;
            read_array(buf, pos, n, depth)?
        }
        0xde => {
            let n = be(buf, pos, 2)?;
            read_map(buf, pos, n, depth)?
        }
        0xdf => {
            let n = be(buf, pos, 4)?;
            read_map(buf, pos, n, depth)?
        }
        0xe0..=0xff => Value::Int(i64::from(b as i8)),
        0xc1 => return Err(MsgpackError::Descriptor(b, at)),
    })
}

/// A signed integer read from the wire: non-negative ones are `Uint`, so equal numbers compare
/// equal whatever their encoding.
fn int(n: i64) -> Value {
    u64::try_from(n).map_or(Value::Int(n), Value::Uint)
}

fn read_array(buf: &[u8], pos: &mut usize, n: u64, depth: usize) -> Result<Value, MsgpackError> {
    let n = count(buf, *pos, n, 1)?;
    let mut items = Vec::with_capacity(n);
    for _ in 0..n {
        items.push(read_at(buf, pos, depth + 1)?);
    }
    Ok(Value::Array(items))
}

fn read_map(buf: &[u8], pos: &mut usize, n: u64, depth: usize) -> Result<Value, MsgpackError> {
    let n = count(buf, *pos, n, 2)?;
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        let k = read_at(buf, pos, depth + 1)?;
        let v = read_at(buf, pos, depth + 1)?;
        entries.push((k, v));
    }
    Ok(Value::Map(entries))
}

/// Appends `v` to `out` as go-msgpack 0.5 encodes it.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // each arm checked the range
pub(crate) fn write(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Nil => out.push(0xc0),
        Value::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Uint(n) => match *n {
            0..=0x7f => out.push(*n as u8),
            0x80..=0xff => out.extend_from_slice(&[0xcc, *n as u8]),
            0x100..=0xffff => head(out, 0xcd, *n, 2),
            0x1_0000..=0xffff_ffff => head(out, 0xce, *n, 4),
            _ => head(out, 0xcf, *n, 8),
        },
        Value::Int(n) => match *n {
            0.. => write(out, &Value::Uint(*n as u64)),
            -32..=-1 => out.push(*n as i8 as u8),
            -128..=-33 => out.extend_from_slice(&[0xd0, *n as i8 as u8]),
            -32_768..=-129 => head(out, 0xd1, u64::from(*n as i16 as u16), 2),
            -2_147_483_648..=-32_769 => head(out, 0xd2, u64::from(*n as i32 as u32), 4),
            _ => head(out, 0xd3, *n as u64, 8),
        },
        Value::Float(f) => head(out, 0xcb, f.to_bits(), 8),
        Value::Bytes(b) => {
            sized(out, 0xa0, 31, 0xda, 0xdb, b.len());
            out.extend_from_slice(b);
        }
        Value::Array(items) => {
            sized(out, 0x90, 15, 0xdc, 0xdd, items.len());
            items.iter().for_each(|i| write(out, i));
        }
        Value::Map(entries) => {
            sized(out, 0x80, 15, 0xde, 0xdf, entries.len());
            for (k, v) in entries {
                write(out, k);
                write(out, v);
            }
        }
        Value::Ext(t, data) => {
            match data.len() {
                1 => out.push(0xd4),
                2 => out.push(0xd5),
                4 => out.push(0xd6),
                8 => out.push(0xd7),
                16 => out.push(0xd8),
                n @ 0..=0xff => out.extend_from_slice(&[0xc7, n as u8]),
                n @ 0x100..=0xffff => head(out, 0xc8, n as u64, 2),
                n => head(out, 0xc9, n as u64, 4),
            }
            out.push(*t as u8);
            out.extend_from_slice(data);
        }
    }
}

fn head(out: &mut Vec<u8>, tag: u8, n: u64, width: usize) {
    out.push(tag);
    out.extend_from_slice(&n.to_be_bytes()[8 - width..]);
}

/// A length header: the fix form up to `fix_max`, else the 16- or 32-bit form.
#[allow(clippy::cast_possible_truncation)] // checked against fix_max
fn sized(out: &mut Vec<u8>, fix: u8, fix_max: usize, tag16: u8, tag32: u8, n: usize) {
    if n <= fix_max {
        out.push(fix | n as u8);
    } else if n <= 0xffff {
        head(out, tag16, n as u64, 2);
    } else {
        head(out, tag32, n as u64, 4);
    }
}

#[cfg(test)]
mod tests;
