//! Stage 2, route: question name -> `Route` (which lookup answers it).
//!
//! Input: the QNAME exactly as sent, the QTYPE (RFC 2782 `_svc._tag` without a `service`
//! label is recognised for SRV only) and the context's domains and datacenter.
//! Output: a `Routed`, i.e. the `Route` plus the response domain spelled as in the question.
//!
//! Grammar (spec §1.2–1.5, 1.7, 1.11): labels are lower-cased, the longest matching domain
//! (primary or alt) is stripped, then labels are scanned right to left for the kind label
//! (`service`, `node`, `addr`, `connect`, `ingress`, `virtual`, `query`); labels left of it
//! are the query parts, labels right of it the locality suffix.
//!
//! Invariants: pure, never panics, allocation bounded by the name (≤ 255 bytes).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::{Name, RecordType};

use super::DnsContext;

/// Which lookup answers a question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `[<tag>.]<svc>.service[.<dc>].<domain>` or RFC 2782 `_<svc>._<tag|tcp>...`.
    Service {
        /// Tag filter (all labels before the service name, joined with `.`), lower-case.
        tag: Option<String>,
        /// Service name, lower-case.
        name: String,
        /// Datacenter asked for (ours when the name has none), lower-case.
        dc: String,
    },
    /// `<node>.node[.<dc>].<domain>`; the node name may contain dots.
    Node {
        /// Node name, lower-case.
        name: String,
        /// Datacenter asked for, lower-case.
        dc: String,
    },
    /// `<hex>.addr[...].<domain>`: an IP encoded as 8 or 32 hex digits.
    Addr {
        /// The decoded address.
        ip: IpAddr,
    },
    /// The domain apex itself (`consul.`).
    Apex,
    /// A kind this build does not serve yet (`query`, `connect`, `ingress`, `virtual`,
    /// cluster peers, named ports): answered like an unknown name.
    Unsupported(&'static str),
    /// Inside the domain but not a valid name form: NXDOMAIN.
    Invalid,
    /// Outside every domain we serve: REFUSED, or forwarded to the recursors.
    NotOurs,
}

/// A routed question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    /// The lookup.
    pub route: Route,
    /// The matched domain spelled as in the question (case kept), fully qualified; names we
    /// generate (SRV targets, SOA, NS) end with it. Empty for `NotOurs`.
    pub resp_domain: String,
}

const KINDS: [&str; 7] = ["service", "connect", "virtual", "ingress", "node", "query", "addr"];

/// Routes a question name.
pub fn route(qname: &Name, qtype: RecordType, ctx: &DnsContext) -> Routed {
    let original: Vec<String> = qname.iter().map(|l| String::from_utf8_lossy(l).into_owned()).collect();
    let labels: Vec<String> = original.iter().map(|l| l.to_ascii_lowercase()).collect();

    let mut best: Option<usize> = None;
    for domain in std::iter::once(ctx.domain.as_str()).chain(ctx.alt_domain.as_deref()) {
        let d: Vec<&str> = domain.split('.').filter(|l| !l.is_empty()).collect();
        if d.len() <= labels.len()
            && labels[labels.len() - d.len()..].iter().zip(&d).all(|(a, b)| a == b)
            && best.is_none_or(|n| d.len() > n)
        {
            best = Some(d.len());
        }
    }
    let Some(n) = best else {
        return Routed { route: Route::NotOurs, resp_domain: String::new() };
    };
    let split = labels.len() - n;
    let mut resp_domain: String = original[split..].iter().map(|l| format!("{l}.")).collect();
    if resp_domain.is_empty() {
        resp_domain.push('.');
    }
    let route = classify(&labels[..split], qtype, ctx);
    Routed { route, resp_domain }
}

/// Classifies the labels left of the domain.
fn classify(rest: &[String], qtype: RecordType, ctx: &DnsContext) -> Route {
    if rest.is_empty() {
        return Route::Apex;
    }
    let mut found = None;
    for (i, label) in rest.iter().enumerate().rev() {
        if qtype == RecordType::SRV && label.starts_with('_') {
            found = Some(("service", &rest[..=i], &rest[i + 1..]));
            break;
        }
        if let Some(kind) = KINDS.iter().find(|k| **k == label.as_str()) {
            found = Some((*kind, &rest[..i], &rest[i + 1..]));
            break;
        }
    }
    let Some((kind, parts, suffix)) = found else {
        return Route::Invalid;
    };
    if parts.is_empty() {
        return Route::Invalid;
    }
    match kind {
        "addr" => match parts {
            [hex] => decode_addr(hex).map_or(Route::Invalid, |ip| Route::Addr { ip }),
            _ => Route::Invalid,
        },
        "service" => {
            let dc = match locality(suffix, ctx) {
                Ok(dc) => dc,
                Err(route) => return route,
            };
            service(parts, dc)
        }
        "node" => match locality(suffix, ctx) {
            Ok(dc) => Route::Node { name: parts.join("."), dc },
            Err(route) => route,
        },
        other => Route::Unsupported(other),
    }
}

fn service(parts: &[String], dc: String) -> Route {
    if let [svc, proto] = parts
        && let (Some(svc), Some(proto)) = (svc.strip_prefix('_'), proto.strip_prefix('_'))
    {
        if svc.is_empty() {
            return Route::Invalid;
        }
        let tag = (proto != "tcp").then(|| proto.to_owned());
        return Route::Service { tag, name: svc.to_owned(), dc };
    }
    let Some((name, tags)) = parts.split_last() else {
        return Route::Invalid;
    };
    let tag = (!tags.is_empty()).then(|| tags.join("."));
    Route::Service { tag, name: name.clone(), dc }
}

/// CE locality suffix (spec §1.3): none, `<dc>`, or `<v>.dc` / `<v>.peer` / `<v>.port` pairs.
fn locality(suffix: &[String], ctx: &DnsContext) -> Result<String, Route> {
    match suffix {
        [] => return Ok(ctx.datacenter.clone()),
        [dc] => return Ok(dc.clone()),
        _ => {}
    }
    if !suffix.len().is_multiple_of(2) || suffix.len() > 6 {
        return Err(Route::Invalid);
    }
    let (mut dc, mut peer, mut port) = (None, None, None);
    for pair in suffix.chunks(2) {
        let [value, keyword] = pair else {
            return Err(Route::Invalid);
        };
        let slot = match keyword.as_str() {
            "dc" => &mut dc,
            "peer" => &mut peer,
            "port" => &mut port,
            _ => return Err(Route::Invalid),
        };
        if slot.replace(value.clone()).is_some() {
            return Err(Route::Invalid);
        }
    }
    match (dc, peer, port) {
        (Some(_), Some(_), _) => Err(Route::Invalid),
        (_, Some(_), _) => Err(Route::Unsupported("peer")),
        (_, _, Some(_)) => Err(Route::Unsupported("port")),
        (dc, None, None) => Ok(dc.unwrap_or_else(|| ctx.datacenter.clone())),
    }
}

/// Decodes an `.addr.` label: 8 hex digits = IPv4, 32 = IPv6.
pub(crate) fn decode_addr(hex: &str) -> Option<IpAddr> {
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    match hex.len() {
        8 => u32::from_str_radix(hex, 16).ok().map(|v| IpAddr::V4(Ipv4Addr::from(v))),
        32 => u128::from_str_radix(hex, 16).ok().map(|v| IpAddr::V6(Ipv6Addr::from(v))),
        _ => None,
    }
}

/// Encodes an IP as an `.addr.` label (lower-case hex of its bytes).
pub(crate) fn encode_addr(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{:08x}", u32::from(v4)),
        IpAddr::V6(v6) => format!("{:032x}", u128::from(v6)),
    }
}
