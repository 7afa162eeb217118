//! Value types of the file schema: each parses and checks one key's value while serde reads it.
//!
//! Stage: file -> schema (`schema` uses these as field types). Input: one JSON value (TOML is
//! converted to JSON first). Output: the typed value, or an error whose text is the message
//! `ConfigError::Key` shows; `serde_path_to_error` adds the key. Invariants: a value type never
//! accepts `null` (only absence leaves a key unset, see `Given`); the messages here are the ones
//! the tests and operators know ("expected a string, got 7", "70000 is out of range -1..=65535").

use std::fmt;
use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::{RecursorStrategy, TlsVersion};

/// A key as one file gives it: absent (`None`) or present and valid (`Some`); `null` is an
/// error of the value type, not absence (unlike `Option`).
#[derive(Debug, Clone)]
pub(super) struct Given<T>(pub(super) Option<T>);

impl<T> Default for Given<T> {
    fn default() -> Self {
        Self(None)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Given<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(|v| Self(Some(v)))
    }
}

impl<T> Given<T> {
    /// The value, if the file gave one.
    pub(super) fn get(&self) -> Option<&T> {
        self.0.as_ref()
    }
}

/// Reads the value as JSON and converts it with `parse`, whose error becomes the message.
fn parse_value<'de, D, T>(d: D, parse: impl FnOnce(&Value) -> Result<T, String>) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    let v = Value::deserialize(d)?;
    parse(&v).map_err(de::Error::custom)
}

/// Declares a value type: a newtype over `$inner` read by `$parse` (a `fn(&Value) -> Result`).
macro_rules! value_type {
    ($(#[$doc:meta])* $name:ident($inner:ty) = $parse:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq)]
        pub(super) struct $name(pub(super) $inner);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                parse_value(d, $parse).map(Self)
            }
        }
    };
}

value_type!(
    /// A string.
    Text(String) = text
);
value_type!(
    /// `true` or `false` (also as the strings `"true"` and `"false"`).
    Flag(bool) = flag
);
value_type!(
    /// An IP address.
    Ip(IpAddr) = |v| parse_ip(&text(v)?)
);
value_type!(
    /// Listen addresses: IPs and `unix://` socket paths, separated by spaces (Consul's
    /// `addresses.http`).
    ListenAddrs(Vec<super::ListenAddr>) = |v| parse_listen_addrs(&text(v)?)
);
value_type!(
    /// A file mode in octal digits (`"600"`, `"0660"`), as Consul's `unix_sockets.mode`.
    FileMode(u32) = |v| {
        let s = text(v)?;
        u32::from_str_radix(&s, 8)
            .ok()
            .filter(|m| *m <= 0o7777 && !s.is_empty())
            .ok_or_else(|| format!("{s:?} is not an octal file mode"))
    }
);
value_type!(
    /// A Go duration (`"10s"`); a bare number is nanoseconds, as in Consul.
    GoDuration(Duration) = duration
);
value_type!(
    /// A Go duration greater than zero.
    Positive(Duration) = |v| {
        let d = duration(v)?;
        if d.is_zero() { Err("must be greater than 0".into()) } else { Ok(d) }
    }
);
value_type!(
    /// A file or directory path.
    FilePath(PathBuf) = |v| text(v).map(PathBuf::from)
);
value_type!(
    /// A `retry_join` address, kept as written (`host` or `host:port`).
    JoinAddr(String) = |v| {
        let s = text(v)?;
        join_addr(&s)?;
        Ok(s)
    }
);
value_type!(
    /// A recursor address: `ip` (port 53) or `ip:port`.
    Recursor(SocketAddr) = |v| parse_recursor(&text(v)?)
);
value_type!(
    /// A gossip encryption key: base64 of 16, 24 or 32 bytes.
    EncryptKey(Vec<u8>) = |v| parse_key(&text(v)?)
);
value_type!(
    /// `"sequential"` or `"random"`.
    Strategy(RecursorStrategy) = |v| match text(v)?.as_str() {
        "sequential" => Ok(RecursorStrategy::Sequential),
        "random" => Ok(RecursorStrategy::Random),
        other => Err(format!("{other:?}: expected \"sequential\" or \"random\"")),
    }
);
value_type!(
    /// A TLS protocol version: Consul 1.8's `tls12` or the modern `TLSv1_2` (`""`: the default).
    TlsVersionName(TlsVersion) = |v| parse_tls_version(&text(v)?)
);
value_type!(
    /// A service definition, decoded by `agent` once the whole configuration is known.
    ServiceDef(Value) = |v| Ok(v.clone())
);
value_type!(
    /// A check definition, decoded by `agent` once the whole configuration is known.
    CheckDef(Value) = |v| Ok(v.clone())
);
value_type!(
    /// One definition or a list of them (`service`, `check`): `Ok(list)` for a list.
    OneOrList(Result<Vec<Value>, Value>) = |v| Ok(match v {
        Value::Array(list) => Ok(list.clone()),
        other => Err(other.clone()),
    })
);

/// An integer in `MIN..=MAX` (also as a string of digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Int<const MIN: i64, const MAX: i64>(pub(super) i64);

impl<'de, const MIN: i64, const MAX: i64> Deserialize<'de> for Int<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_value(d, |v| int(v, MIN, MAX)).map(Self)
    }
}

/// A port: -1 (disabled) to 65535.
pub(super) type Port = Int<-1, 65535>;
/// A port that cannot be disabled: 0 to 65535.
pub(super) type FixedPort = Int<0, 65535>;
/// A count that fits a `u32`.
pub(super) type Count = Int<0, { u32::MAX as i64 }>;

fn text(v: &Value) -> Result<String, String> {
    v.as_str().map(str::to_owned).ok_or_else(|| format!("expected a string, got {v}"))
}

pub(super) fn flag(v: &Value) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s == "true" => Ok(true),
        Value::String(s) if s == "false" => Ok(false),
        _ => Err(format!("expected true or false, got {v}")),
    }
}

pub(super) fn int(v: &Value, min: i64, max: i64) -> Result<i64, String> {
    let n = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| format!("expected an integer, got {v}"))?;
    if n < min || n > max {
        return Err(format!("{n} is out of range {min}..={max}"));
    }
    Ok(n)
}

fn duration(v: &Value) -> Result<Duration, String> {
    match v {
        // Consul takes bare numbers as nanoseconds.
        Value::Number(n) => n.as_u64().map(Duration::from_nanos).ok_or_else(|| "expected a duration".into()),
        Value::String(s) => {
            crate::agent::parse_go_duration(s).map_err(|m| format!("invalid duration {s:?}: {m}"))
        }
        _ => Err(format!("expected a duration such as \"10s\", got {v}")),
    }
}

/// A list of `T`; anything else fails with `T::NOT_A_LIST`. Elements keep their index in the
/// error's key (`recursors[1]`).
#[derive(Debug, Clone)]
pub(super) struct List<T>(pub(super) Vec<T>);

impl<T> Default for List<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

/// An element type of `List`: the message when the value is not a list.
pub(super) trait Listed {
    /// E.g. "expected a list of addresses".
    const NOT_A_LIST: &'static str;
}

impl Listed for JoinAddr {
    const NOT_A_LIST: &'static str = "expected a list of addresses";
}
impl Listed for Recursor {
    const NOT_A_LIST: &'static str = "expected a list of addresses";
}
impl Listed for ServiceDef {
    const NOT_A_LIST: &'static str = "expected a list of service definitions";
}
impl Listed for CheckDef {
    const NOT_A_LIST: &'static str = "expected a list of check definitions";
}

impl<'de, T: DeserializeOwned + Listed> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ShapeVisitor::<Self>(PhantomData))
    }
}

/// A table (JSON object) read as `T`; anything else fails with "expected a table/object, got V".
#[derive(Debug, Clone, Default)]
pub(super) struct Table<T>(pub(super) T);

impl<'de, T: DeserializeOwned> Deserialize<'de> for Table<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ShapeVisitor::<Self>(PhantomData))
    }
}

/// What `ShapeVisitor` builds: a list or a table, and the message for any other value.
trait Shape: Sized {
    fn from_seq<'de, A: SeqAccess<'de>>(seq: A) -> Result<Self, A::Error>;
    fn from_map<'de, A: MapAccess<'de>>(map: A) -> Result<Self, A::Error>;
    fn wrong(v: &Value) -> String;
}

impl<T: DeserializeOwned + Listed> Shape for List<T> {
    fn from_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        let mut out = Vec::new();
        while let Some(x) = seq.next_element::<T>()? {
            out.push(x);
        }
        Ok(Self(out))
    }
    fn from_map<'de, A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        let v = Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Err(de::Error::custom(Self::wrong(&v)))
    }
    fn wrong(_: &Value) -> String {
        T::NOT_A_LIST.into()
    }
}

impl<T: DeserializeOwned> Shape for Table<T> {
    fn from_seq<'de, A: SeqAccess<'de>>(seq: A) -> Result<Self, A::Error> {
        let v = Value::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        Err(de::Error::custom(Self::wrong(&v)))
    }
    fn from_map<'de, A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Self)
    }
    fn wrong(v: &Value) -> String {
        format!("expected a table/object, got {v}")
    }
}

/// Reads a list or a table through the tracked accessors (so errors inside keep their key) and
/// turns every other value into `S::wrong`.
struct ShapeVisitor<S>(PhantomData<S>);

impl<S> ShapeVisitor<S> {
    fn wrong<E: de::Error>(v: Value) -> Result<S, E>
    where
        S: Shape,
    {
        Err(E::custom(S::wrong(&v)))
    }
}

impl<'de, S: Shape> Visitor<'de> for ShapeVisitor<S> {
    type Value = S;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list or a table")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<S, A::Error> {
        S::from_seq(seq)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<S, A::Error> {
        S::from_map(map)
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<S, E> {
        Self::wrong(Value::Bool(b))
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<S, E> {
        Self::wrong(Value::from(n))
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<S, E> {
        Self::wrong(Value::from(n))
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<S, E> {
        Self::wrong(Value::from(n))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<S, E> {
        Self::wrong(Value::from(s))
    }
    fn visit_unit<E: de::Error>(self) -> Result<S, E> {
        Self::wrong(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<S, E> {
        Self::wrong(Value::Null)
    }
}

// ----- parsers shared with the command line -------------------------------------------------

/// The server RPC port a `retry_join` address without a port is tried on (`ports.server`'s
/// default).
pub(crate) const DEFAULT_SERVER_PORT: u16 = 8300;

/// Parses a `retry_join` address: `host` or `host:port` (port `DEFAULT_SERVER_PORT` when
/// omitted); returns it as `host:port`.
pub(crate) fn join_addr(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty address".into());
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, DEFAULT_SERVER_PORT).to_string());
    }
    if s.parse::<SocketAddr>().is_ok() {
        return Ok(s.to_owned());
    }
    match s.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !host.contains(':') => {
            port.parse::<u16>().map_err(|_| format!("{s:?}: bad port {port:?}"))?;
            Ok(s.to_owned())
        }
        Some(_) => Err(format!("{s:?}: expected host or host:port")),
        None => Ok(format!("{s}:{DEFAULT_SERVER_PORT}")),
    }
}

/// Decodes a gossip encryption key: base64 of 16, 24 or 32 bytes (AES-128/192/256).
pub(super) fn parse_key(s: &str) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    let key = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| format!("failed to decode the encryption key: {e}"))?;
    match key.len() {
        16 | 24 | 32 => Ok(key),
        n => Err(format!("the encryption key must be 16, 24 or 32 bytes, got {n}")),
    }
}

pub(super) fn parse_ip(s: &str) -> Result<IpAddr, String> {
    s.trim().parse().map_err(|_| format!("{s:?} is not an IP address"))
}

/// Parses Consul's listen address list: IPs and `unix:///path`, separated by white space.
pub(super) fn parse_listen_addrs(s: &str) -> Result<Vec<super::ListenAddr>, String> {
    let addrs = s
        .split_whitespace()
        .map(|a| match a.strip_prefix("unix://") {
            Some("") => Err(format!("{a:?}: a unix:// address needs a socket path")),
            Some(path) => Ok(super::ListenAddr::Unix(PathBuf::from(path))),
            None => parse_ip(a).map(super::ListenAddr::Ip),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if addrs.is_empty() {
        return Err("expected at least one address".to_owned());
    }
    Ok(addrs)
}

/// Parses a recursor address: `ip` (port 53) or `ip:port` / `[ipv6]:port`.
pub(crate) fn parse_recursor(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    let addr = if let Ok(sa) = s.parse::<SocketAddr>() {
        sa
    } else if let Ok(ip) = s.parse::<IpAddr>() {
        SocketAddr::new(ip, 53)
    } else {
        return Err(format!("{s:?} is not an IP address or ip:port"));
    };
    if addr.ip().is_unspecified() {
        return Err(format!("{s:?}: an unspecified address cannot be a recursor"));
    }
    Ok(addr)
}

/// Parses `tls_min_version`, with Consul's message for anything else.
fn parse_tls_version(s: &str) -> Result<TlsVersion, String> {
    match s {
        "tls10" | "TLSv1_0" => Ok(TlsVersion::Tls10),
        "tls11" | "TLSv1_1" => Ok(TlsVersion::Tls11),
        "" | "tls12" | "TLSv1_2" => Ok(TlsVersion::Tls12),
        "tls13" | "TLSv1_3" => Ok(TlsVersion::Tls13),
        other => Err(format!(
            "TLSMinVersion: value {other} not supported, please specify one of [tls10, tls11, tls12, tls13, TLSv1_0, TLSv1_1, TLSv1_2, TLSv1_3]"
        )),
    }
}

/// Normalises a DNS domain: lower-case, fully qualified, non-empty labels.
pub(super) fn normalise_domain(s: &str) -> Result<String, String> {
    let d = s.trim().trim_end_matches('.').to_ascii_lowercase();
    if d.is_empty() {
        return Err("the domain must not be empty".into());
    }
    if d.split('.').any(|l| l.is_empty() || l.len() > 63) || d.len() > 253 {
        return Err(format!("{s:?} is not a valid domain name"));
    }
    Ok(format!("{d}."))
}
