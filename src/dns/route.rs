//! Stage 2, route: question name -> `Route` (which lookup answers it).
//!
//! Input: the QNAME exactly as sent, the QTYPE (RFC 2782 `_svc._tag` without a `service`
//! label is recognised for SRV only) and the context's domains and datacenter.
//! Output: a `Routed`, i.e. the `Route` plus the response domain spelled as in the question.
//!
//! Grammar (spec §1.2–1.5, 1.7, 1.11): labels are lower-cased, the longest matching domain
//! (primary or alt) is stripped, then labels are scanned right to left for the kind label
//! (`service`, `node`, `addr`, `connect`, `ingress`, `virtual`, `query`); labels left of it
//! are the query parts, labels right of it the locality suffix. `connect` and `ingress`
//! take the last query part as the service name and only a datacenter as suffix (Consul's
//! `parseDatacenter`); `virtual` is not served.
//!
//! Invariants: pure, never panics, allocation bounded by the name (≤ 255 bytes).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::{Name, RecordType};

use super::context::DnsContext;

/// Which lookup answers a question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `[<tag>.]<svc>.service[.<dc>].<domain>` or RFC 2782 `_<svc>._<tag|tcp>...`.
    Service {
        /// Tags an instance must all carry, lower-case: Consul's single tag (every label
        /// before the service name, joined with `.`) plus cairn's `<tag>.tag` suffix pairs.
        tags: Vec<String>,
        /// Service name, lower-case.
        name: String,
        /// Datacenter asked for (ours when the name has none), lower-case.
        dc: String,
        /// Named port (`<name>.port`), lower-case.
        port: Option<String>,
    },
    /// `<node>.node[.<dc>].<domain>`; the node name may contain dots.
    Node {
        /// Node name, lower-case.
        name: String,
        /// Datacenter asked for, lower-case.
        dc: String,
    },
    /// `<query>.query[.<dc>].<domain>` or RFC 2782 `_<query>._<proto>.query[.<dc>].<domain>`:
    /// a prepared query by ID or name (the name may contain dots).
    Query {
        /// Query ID or name, lower-case.
        name: String,
        /// Datacenter asked for, lower-case.
        dc: String,
    },
    /// `<hex>.addr[...].<domain>`: an IP encoded as 8 or 32 hex digits.
    Addr {
        /// The decoded address.
        ip: IpAddr,
    },
    /// A reverse name under `arpa.`; `None` when it does not spell a whole address.
    Ptr {
        /// The address the name reverses to.
        ip: Option<IpAddr>,
    },
    /// The domain apex itself (`consul.`).
    Apex,
    /// A name that only exists as an ancestor of real names (`service.consul.`,
    /// `dc1.consul.`, `node.dc1.consul.`): NXDOMAIN for Consul, NODATA in strict RFC mode.
    EmptyNonTerminal,
    /// `[<x>.]<svc>.connect[.<dc>].<domain>`: the Connect-capable instances of a service
    /// (proxies for it and its native instances); labels before the name are ignored, as in
    /// Consul.
    Connect {
        /// Service name, lower-case.
        name: String,
        /// Datacenter asked for, lower-case.
        dc: String,
    },
    /// `[<x>.]<svc>.ingress[.<dc>].<domain>`: the ingress gateways exposing a service.
    Ingress {
        /// Service name, lower-case.
        name: String,
        /// Datacenter asked for, lower-case.
        dc: String,
    },
    /// A kind this build does not serve (`virtual`, cluster peers):
    /// answered like an unknown name.
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
    /// generate (SRV targets, SOA, NS) end with it. For `Ptr` it is the primary domain;
    /// empty for `NotOurs`.
    pub resp_domain: String,
    /// The zone the name belongs to in strict RFC mode: `service.`, `node.`, `addr.` and
    /// `query.` below the domain are zones of their own there (so a resolver may forward
    /// just `service.consul`), everything else belongs to the domain. Spelled as asked.
    pub zone: String,
    /// Whether the name is the apex of `zone` (where SOA and NS records live).
    pub at_apex: bool,
}

/// First labels that start a zone of their own in strict RFC mode.
const SUB_ZONES: [&str; 4] = ["service", "node", "addr", "query"];

const KINDS: [&str; 7] = ["service", "connect", "virtual", "ingress", "node", "query", "addr"];

/// Routes a question name.
pub(crate) fn route(qname: &Name, qtype: RecordType, ctx: &DnsContext) -> Routed {
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
        if labels.last().is_some_and(|l| l == "arpa") {
            let resp_domain = ctx.domain.clone();
            return Routed {
                route: reverse(&labels),
                zone: resp_domain.clone(),
                resp_domain,
                at_apex: false,
            };
        }
        return Routed {
            route: Route::NotOurs,
            resp_domain: String::new(),
            zone: String::new(),
            at_apex: false,
        };
    };
    let split = labels.len() - n;
    let mut resp_domain: String = original[split..].iter().map(|l| format!("{l}.")).collect();
    if resp_domain.is_empty() {
        resp_domain.push('.');
    }
    let sub_zone = split
        .checked_sub(1)
        .filter(|&i| labels.get(i).is_some_and(|l| SUB_ZONES.contains(&l.as_str())))
        .and_then(|i| original.get(i));
    let (zone, at_apex) = match sub_zone {
        Some(label) => (format!("{label}.{resp_domain}"), split == 1),
        None => (resp_domain.clone(), split == 0),
    };
    let route = classify(&labels[..split], qtype, ctx);
    Routed { route, resp_domain, zone, at_apex }
}

/// Decodes `d.c.b.a.in-addr.arpa.` (four decimal labels) or the 32-nibble `ip6.arpa.` form.
fn reverse(labels: &[String]) -> Route {
    let ip = match labels {
        [rest @ .., zone, arpa] if zone == "in-addr" && arpa == "arpa" && rest.len() == 4 => {
            let mut octets = [0u8; 4];
            rest.iter()
                .rev()
                .zip(octets.iter_mut())
                .try_for_each(|(label, octet)| {
                    let digits_only =
                        !label.is_empty() && label.len() <= 3 && label.bytes().all(|b| b.is_ascii_digit());
                    *octet = label.parse().ok().filter(|_| digits_only)?;
                    Some(())
                })
                .map(|()| IpAddr::V4(Ipv4Addr::from(octets)))
        }
        [rest @ .., zone, arpa] if zone == "ip6" && arpa == "arpa" && rest.len() == 32 => {
            let mut value: u128 = 0;
            rest.iter()
                .rev()
                .try_for_each(|nibble| {
                    let [b] = nibble.as_bytes() else { return None };
                    let digit = char::from(*b).to_digit(16)?;
                    value = (value << 4) | u128::from(digit);
                    Some(())
                })
                .map(|()| IpAddr::V6(Ipv6Addr::from(value)))
        }
        _ => None,
    };
    Route::Ptr { ip }
}

/// Classifies the labels left of the domain.
fn classify(rest: &[String], qtype: RecordType, ctx: &DnsContext) -> Route {
    if rest.is_empty() {
        return Route::Apex;
    }
    if let [dc] = rest
        && *dc == ctx.datacenter
    {
        return Route::EmptyNonTerminal;
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
    if kind == "addr" {
        return match parts {
            [hex] => decode_addr(hex).map_or(Route::Invalid, |ip| Route::Addr { ip }),
            [] if suffix.is_empty() => Route::EmptyNonTerminal,
            _ => Route::Invalid,
        };
    }
    // A prepared query takes only a bare datacenter label (spec §1.3, `parseDatacenter`).
    if kind == "query" && suffix.len() > 1 {
        return Route::Invalid;
    }
    let loc = match locality(suffix, ctx) {
        Ok(loc) => loc,
        Err(route) => return route,
    };
    if parts.is_empty() {
        let plain = loc.port.is_none() && loc.tags.is_empty() && loc.dc == ctx.datacenter;
        return if plain && matches!(kind, "service" | "node" | "query") {
            Route::EmptyNonTerminal
        } else {
            Route::Invalid
        };
    }
    match kind {
        "service" => service(parts, loc),
        "node" if loc.port.is_none() && loc.tags.is_empty() => {
            Route::Node { name: parts.join("."), dc: loc.dc }
        }
        "node" => Route::Invalid,
        "query" => query(parts, loc.dc),
        // Consul's `parseDatacenter`: no `.port`/`.tag` pairs; the last part names the service.
        "connect" | "ingress" if loc.port.is_some() || !loc.tags.is_empty() => Route::Invalid,
        "connect" => Route::Connect { name: parts[parts.len() - 1].clone(), dc: loc.dc },
        "ingress" => Route::Ingress { name: parts[parts.len() - 1].clone(), dc: loc.dc },
        other => Route::Unsupported(other),
    }
}

fn service(parts: &[String], loc: Locality) -> Route {
    let Locality { dc, port, mut tags } = loc;
    if let [svc, proto] = parts
        && let (Some(svc), Some(proto)) = (svc.strip_prefix('_'), proto.strip_prefix('_'))
    {
        if svc.is_empty() {
            return Route::Invalid;
        }
        if proto != "tcp" {
            tags.insert(0, proto.to_owned());
        }
        return Route::Service { tags, name: svc.to_owned(), dc, port };
    }
    let Some((name, tag_parts)) = parts.split_last() else {
        return Route::Invalid;
    };
    if !tag_parts.is_empty() {
        tags.insert(0, tag_parts.join("."));
    }
    Route::Service { tags, name: name.clone(), dc, port }
}

/// Spec §1.6: every part joined with `.`, or, with at least two parts whose first and last
/// start with `_`, the RFC 2782 form: the last part (the protocol) is dropped and the first
/// `_` stripped.
fn query(parts: &[String], dc: String) -> Route {
    let rfc2782 = match parts {
        [first, middle @ .., last] if last.starts_with('_') => first.strip_prefix('_').map(|first| {
            let mut name = first.to_owned();
            for p in middle {
                name.push('.');
                name.push_str(p);
            }
            name
        }),
        _ => None,
    };
    match rfc2782 {
        Some(name) if name.is_empty() => Route::Invalid,
        Some(name) => Route::Query { name, dc },
        None => Route::Query { name: parts.join("."), dc },
    }
}

/// The most `<value>.<keyword>` pairs a locality suffix may hold.
const MAX_LOCALITY_PAIRS: usize = 16;

/// What the labels right of the kind label ask for.
#[derive(Debug)]
struct Locality {
    dc: String,
    port: Option<String>,
    tags: Vec<String>,
}

/// Locality suffix (spec §1.3): none, `<dc>`, or `<v>.dc` / `<v>.peer` / `<v>.port` pairs
/// (CE allows at most one of each), plus cairn's repeatable `<tag>.tag` pairs, which Consul
/// rejects with NXDOMAIN, so they change only answers that used to fail.
fn locality(suffix: &[String], ctx: &DnsContext) -> Result<Locality, Route> {
    let mut loc = Locality { dc: ctx.datacenter.clone(), port: None, tags: Vec::new() };
    match suffix {
        [] => return Ok(loc),
        [dc] => {
            loc.dc.clone_from(dc);
            return Ok(loc);
        }
        _ => {}
    }
    if !suffix.len().is_multiple_of(2) || suffix.len() > 2 * MAX_LOCALITY_PAIRS {
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
            "tag" => {
                loc.tags.push(value.clone());
                continue;
            }
            _ => return Err(Route::Invalid),
        };
        if slot.replace(value.clone()).is_some() {
            return Err(Route::Invalid);
        }
    }
    match (dc, peer) {
        (Some(_), Some(_)) => Err(Route::Invalid),
        (_, Some(_)) => Err(Route::Unsupported("peer")),
        (dc, None) => {
            if let Some(dc) = dc {
                loc.dc = dc;
            }
            loc.port = port;
            Ok(loc)
        }
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
