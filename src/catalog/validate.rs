//! WRITE VALIDATION: the rules a write must pass before it is proposed, whoever proposes it.
//!
//! Stage: before `Consensus::propose`, on the agent that decoded the write (`http`) and again
//! on the server that receives a forwarded one (`serve_rpc`). Input: a `Command` (or one of its
//! parts, for decoders that check as they go) → output: `Ok(())` or `Invalid`, whose text is
//! Consul's message and whose `Class` says which HTTP status that message travels with.
//! Invariants: the rules read only the command's content (no catalog state, no clock, no
//! configuration), so a client agent, a follower and the leader reach the same verdict on the
//! same bytes; what depends on the catalog (a missing node, a lock held by another session)
//! stays in `apply`, which answers it as a deterministic rejection. HTTP parsing (JSON shapes,
//! unknown fields, query parameters) stays in `http`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::command::{Command, Deregistration, KvOp, Registration, TxnOp};
use super::duration::{format_go_duration, parse_go_duration};
use super::kv::{MAX_KEY_BYTES, Session};
use super::{PreparedQuery, Service};

/// Shortest session TTL (Consul's `session_ttl_min`).
pub(crate) const MIN_SESSION_TTL: Duration = Duration::from_secs(10);
/// Longest session TTL.
pub(crate) const MAX_SESSION_TTL: Duration = Duration::from_secs(86_400);
/// Most operations in one transaction (Consul's `maxTxnOps`).
pub(crate) const MAX_TXN_OPS: usize = 128;
/// Largest KV value, and largest sum of a transaction's values: the HTTP body limit
/// (Consul's `kv_max_value_size`), which a forwarded write does not pass through.
pub(crate) const MAX_VALUE_BYTES: usize = 512 * 1024;
/// Longest session lock-delay (Consul's `MaxLockDelay`; the HTTP layer caps to it).
pub(crate) const MAX_LOCK_DELAY: Duration = Duration::from_secs(60);
/// Most commands in one group commit (`raft::batch` groups at most this many, and a follower
/// forwards a group as one `Command::Batch`).
pub(crate) const MAX_BATCH: usize = 256;

/// Which HTTP status a refusal travels with (Consul's choice for that message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// 400: the request names something it may not (a key with path tricks).
    BadRequest,
    /// 413: the request is larger than a write may be.
    TooLarge,
    /// 500: a rule Consul checks in its RPC endpoint, reported as an RPC error.
    Rpc,
}

/// Why a write is refused. The text is Consul's message; new variants go at the end (the
/// value travels in server-RPC frames).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum Invalid {
    /// A KV key with `.`/`..` segments, surrounding spaces or control bytes.
    #[error(
        "Invalid key name {0:?}: path segments '.' or '..', surrounding spaces and control characters are not allowed"
    )]
    KeyName(String),
    /// A KV key longer than `MAX_KEY_BYTES`.
    #[error("Key is longer than {MAX_KEY_BYTES} bytes")]
    KeyTooLong,
    /// A KV write without a key.
    #[error("Missing key name")]
    MissingKey,
    /// A transaction with more than `MAX_TXN_OPS` operations.
    #[error("Transaction contains too many operations ({0} > {MAX_TXN_OPS})")]
    TooManyOps(usize),
    /// A registration without a node name (or a deregistration).
    #[error("Must provide node")]
    MissingNode,
    /// A registration that updates the node without an address.
    #[error("Must provide address if SkipNodeUpdate is not set")]
    MissingAddress,
    /// A registered service without a name.
    #[error("Must provide service name")]
    MissingServiceName,
    /// A registered check with neither ID nor name.
    #[error("Must provide check ID or name")]
    MissingCheckId,
    /// Service weights with `Passing` below 1.
    #[error("Invalid Weights")]
    Weights,
    /// A service address of `0.0.0.0` or `::`.
    #[error("Invalid service address")]
    ServiceAddress,
    /// A session TTL that is not a Go duration.
    #[error("Invalid Session TTL '{0}'")]
    SessionTtl(String),
    /// A session TTL outside [`MIN_SESSION_TTL`, `MAX_SESSION_TTL`].
    #[error(
        "Invalid Session TTL '{0}', must be between [{min}={max}]",
        min = format_go_duration(MIN_SESSION_TTL),
        max = format_go_duration(MAX_SESSION_TTL)
    )]
    SessionTtlRange(String),
    /// A prepared query without a service.
    #[error("Must provide a Service name to query")]
    QueryService,
    /// A prepared query whose DNS TTL is not a Go duration.
    #[error("Bad DNS TTL '{ttl}': {why}")]
    DnsTtl {
        /// The TTL as given.
        ttl: String,
        /// The parser's message.
        why: String,
    },
    /// A KV value (or a transaction's values together) over `MAX_VALUE_BYTES`.
    #[error(
        "Request body({0} bytes) too large, max size: {MAX_VALUE_BYTES} bytes. See https://www.consul.io/docs/agent/options.html#kv_max_value_size."
    )]
    ValueTooLarge(usize),
    /// A session lock-delay over `MAX_LOCK_DELAY` (in nanoseconds as given).
    #[error("Invalid LockDelay of {0}ns: at most {max}", max = format_go_duration(MAX_LOCK_DELAY))]
    LockDelay(u64),
    /// A group of more than `MAX_BATCH` commands.
    #[error("Batch of {0} commands is larger than {MAX_BATCH}")]
    BatchTooLarge(usize),
    /// A group inside a group.
    #[error("nested command batch")]
    NestedBatch,
    /// An ACL token, policy or role whose content Consul refuses (HTTP 500).
    #[error("{0}")]
    Acl(String),
    /// A network coordinate without Vivaldi's dimensionality (HTTP 500, Consul's text).
    #[error("incompatible coordinate")]
    CoordinateDimensions,
    /// A network coordinate with a non-finite component (HTTP 500, Consul's text).
    #[error("invalid coordinate")]
    CoordinateValue,
}

impl Invalid {
    /// The HTTP status class Consul sends this message with.
    pub(crate) fn class(&self) -> Class {
        match self {
            Self::KeyName(_) | Self::KeyTooLong | Self::MissingKey => Class::BadRequest,
            Self::TooManyOps(_) | Self::ValueTooLarge(_) | Self::BatchTooLarge(_) => Class::TooLarge,
            Self::MissingNode
            | Self::MissingAddress
            | Self::MissingServiceName
            | Self::MissingCheckId
            | Self::Weights
            | Self::ServiceAddress
            | Self::SessionTtl(_)
            | Self::SessionTtlRange(_)
            | Self::QueryService
            | Self::DnsTtl { .. }
            | Self::LockDelay(_)
            | Self::NestedBatch
            | Self::Acl(_)
            | Self::CoordinateDimensions
            | Self::CoordinateValue => Class::Rpc,
        }
    }
}

impl Command {
    /// Checks everything about this write that its content alone decides (see the module
    /// doc); `Ok` for commands with nothing to check.
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        match self {
            Self::Register(r) => registration(r),
            Self::Deregister(d) => deregistration(d),
            Self::QueryUpsert(q) => prepared_query(&q.query),
            Self::Kv { op, .. } => kv_write(op),
            Self::Txn { ops, .. } => txn_ops(ops),
            Self::SessionCreate { session: s, .. } => session(s),
            Self::Batch(cmds) => batch(cmds),
            Self::Acl(a) => super::acl::command_content_errors(a).map_err(Invalid::Acl),
            Self::UpdateCheck(_)
            | Self::QueryDelete(_)
            | Self::Restore(_)
            | Self::SessionDestroy { .. }
            | Self::KvReap(_) => Ok(()),
            Self::AutopilotSet { .. } | Self::ConfigEntrySet { .. } | Self::ConfigEntryDelete { .. } => {
                Ok(())
            }
            Self::CoordinateBatch(entries) => coordinates(entries),
        }
    }
}

/// Each coordinate has Vivaldi's dimensionality and finite components.
fn coordinates(entries: &[super::operator::CoordinateEntry]) -> Result<(), Invalid> {
    for e in entries {
        if e.coord.vec.len() != super::operator::COORDINATE_DIMENSIONS {
            return Err(Invalid::CoordinateDimensions);
        }
        if !e.coord.is_valid() {
            return Err(Invalid::CoordinateValue);
        }
        if e.node.is_empty() {
            return Err(Invalid::MissingNode);
        }
    }
    Ok(())
}

/// A KV key or prefix: no `.`/`..` segments, surrounding spaces or control bytes, at most
/// `MAX_KEY_BYTES` bytes. The empty key (the root, for recursive verbs) passes.
pub(crate) fn kv_key(key: &str) -> Result<(), Invalid> {
    let bad = key.split('/').any(|seg| seg == "." || seg == "..")
        || key.trim() != key
        || key.bytes().any(|b| b < 0x20 || b == 0x7f);
    if bad {
        return Err(Invalid::KeyName(key.to_owned()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(Invalid::KeyTooLong);
    }
    Ok(())
}

/// The value bytes a KV verb carries.
fn value_len(op: &KvOp) -> usize {
    match op {
        KvOp::Set(w) | KvOp::Cas(w) | KvOp::Lock(w) | KvOp::Unlock(w) => w.value.len(),
        _ => 0,
    }
}

/// A single KV write (`PUT`/`DELETE /v1/kv/...`): a valid key, present unless the verb works
/// on a whole prefix; a value within `MAX_VALUE_BYTES`.
fn kv_write(op: &KvOp) -> Result<(), Invalid> {
    kv_key(op.key())?;
    if op.key().is_empty() && !matches!(op, KvOp::DeleteTree(_) | KvOp::GetTree(_)) {
        return Err(Invalid::MissingKey);
    }
    if value_len(op) > MAX_VALUE_BYTES {
        return Err(Invalid::ValueTooLarge(value_len(op)));
    }
    Ok(())
}

/// A transaction's operations: at most `MAX_TXN_OPS`, every KV key valid, values within
/// `MAX_VALUE_BYTES` together.
pub(crate) fn txn_ops(ops: &[TxnOp]) -> Result<(), Invalid> {
    if ops.len() > MAX_TXN_OPS {
        return Err(Invalid::TooManyOps(ops.len()));
    }
    let mut values = 0usize;
    for op in ops {
        match op {
            TxnOp::Kv(kv) => {
                kv_key(kv.key())?;
                values = values.saturating_add(value_len(kv));
            }
            TxnOp::ServiceSet(s) | TxnOp::ServiceCas(s, _) => service(s)?,
            _ => {}
        }
    }
    if values > MAX_VALUE_BYTES {
        return Err(Invalid::ValueTooLarge(values));
    }
    Ok(())
}

/// A group commit's commands: at most `MAX_BATCH`, none a group itself, each valid.
fn batch(cmds: &[Command]) -> Result<(), Invalid> {
    if cmds.len() > MAX_BATCH {
        return Err(Invalid::BatchTooLarge(cmds.len()));
    }
    for c in cmds {
        if matches!(c, Command::Batch(_)) {
            return Err(Invalid::NestedBatch);
        }
        c.validate()?;
    }
    Ok(())
}

/// A registered service: weights with `Passing` at least 1, no `0.0.0.0`/`::` address.
pub(crate) fn service(s: &Service) -> Result<(), Invalid> {
    if s.weights.passing < 1 {
        return Err(Invalid::Weights);
    }
    let unspecified = s
        .address
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified());
    if unspecified {
        return Err(Invalid::ServiceAddress);
    }
    Ok(())
}

/// Consul's `RegisterRequest` rules, in Consul's order (service, node, address, service name,
/// checks). A check's ID defaults to its name before this runs, so an empty ID means neither
/// was given.
pub(crate) fn registration(r: &Registration) -> Result<(), Invalid> {
    if let Some(s) = &r.service {
        service(s)?;
    }
    if r.node.name.is_empty() {
        return Err(Invalid::MissingNode);
    }
    if !r.skip_node_update && r.node.address.is_empty() {
        return Err(Invalid::MissingAddress);
    }
    if r.service.as_ref().is_some_and(|s| s.name.is_empty()) {
        return Err(Invalid::MissingServiceName);
    }
    if r.checks.iter().any(|c| c.check_id.is_empty()) {
        return Err(Invalid::MissingCheckId);
    }
    Ok(())
}

/// Consul's `DeregisterRequest` rule: a node is named.
pub(crate) fn deregistration(d: &Deregistration) -> Result<(), Invalid> {
    if d.node.is_empty() {
        return Err(Invalid::MissingNode);
    }
    Ok(())
}

/// A session TTL as given (`"15s"`): a Go duration within [`MIN_SESSION_TTL`,
/// `MAX_SESSION_TTL`]. The empty TTL (no TTL) passes.
pub(crate) fn session_ttl(ttl: &str) -> Result<(), Invalid> {
    if ttl.is_empty() {
        return Ok(());
    }
    let d = parse_go_duration(ttl).map_err(|_| Invalid::SessionTtl(ttl.to_owned()))?;
    if d < MIN_SESSION_TTL || d > MAX_SESSION_TTL {
        return Err(Invalid::SessionTtlRange(ttl.to_owned()));
    }
    Ok(())
}

/// A session to create: its TTL and lock-delay.
fn session(s: &Session) -> Result<(), Invalid> {
    session_ttl(&s.ttl)?;
    if u128::from(s.lock_delay_ns) > MAX_LOCK_DELAY.as_nanos() {
        return Err(Invalid::LockDelay(s.lock_delay_ns));
    }
    Ok(())
}

/// Consul's `parseQuery` rules on content: a service to query, a DNS TTL that parses.
pub(crate) fn prepared_query(q: &PreparedQuery) -> Result<(), Invalid> {
    if q.service.service.is_empty() {
        return Err(Invalid::QueryService);
    }
    if !q.dns_ttl.is_empty() {
        parse_go_duration(&q.dns_ttl).map_err(|why| Invalid::DnsTtl { ttl: q.dns_ttl.clone(), why })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Class, Invalid, MAX_BATCH, MAX_TXN_OPS, MAX_VALUE_BYTES};
    use crate::catalog::kv::{MAX_KEY_BYTES, SessionBehavior};
    use crate::catalog::testing::{deregister, health_check, kv_write, node, register, service, session};
    use crate::catalog::{Command, HealthStatus, KvOp, PreparedQuery, QueryService, QueryUpsert, TxnOp};

    fn check(cmd: &Command, want: Result<(), Invalid>) {
        assert_eq!(cmd.validate(), want, "{cmd}");
    }

    fn kv(op: KvOp) -> Command {
        Command::Kv { op, now_ms: 0 }
    }

    fn set(key: &str) -> KvOp {
        KvOp::Set(kv_write(key, b"v", 0, ""))
    }

    #[test]
    fn kv_keys_with_path_tricks_are_refused_and_ordinary_keys_pass() {
        for key in ["a", "a/b/", "a/..b", "a.b/c..", "dir/.hidden", "ü/ñ", "a b"] {
            check(&kv(set(key)), Ok(()));
        }
        for key in ["..", "a/../b", "a/..", "./a", "a/./b", " a", "a ", "a\nb", "a\0b", "a\u{7f}"] {
            check(&kv(set(key)), Err(Invalid::KeyName(key.to_owned())));
            check(&kv(KvOp::DeleteTree(key.to_owned())), Err(Invalid::KeyName(key.to_owned())));
        }
        check(&kv(set(&"k".repeat(MAX_KEY_BYTES))), Ok(()));
        check(&kv(set(&"k".repeat(MAX_KEY_BYTES + 1))), Err(Invalid::KeyTooLong));
        assert_eq!(Invalid::KeyTooLong.class(), Class::BadRequest);
        assert_eq!(
            Invalid::KeyName("..".into()).to_string(),
            "Invalid key name \"..\": path segments '.' or '..', surrounding spaces and control characters are not allowed"
        );
    }

    #[test]
    fn a_kv_write_needs_a_key_unless_it_deletes_a_tree() {
        check(&kv(set("")), Err(Invalid::MissingKey));
        check(&kv(KvOp::Delete(String::new())), Err(Invalid::MissingKey));
        check(&kv(KvOp::DeleteCas(String::new(), 3)), Err(Invalid::MissingKey));
        check(&kv(KvOp::DeleteTree(String::new())), Ok(()));
        assert_eq!(Invalid::MissingKey.to_string(), "Missing key name");
    }

    #[test]
    fn transactions_are_bounded_and_their_keys_checked() {
        let ops = |n: usize| (0..n).map(|i| TxnOp::Kv(set(&format!("k{i}")))).collect::<Vec<_>>();
        check(&Command::Txn { ops: ops(MAX_TXN_OPS), now_ms: 0 }, Ok(()));
        let too_many = Command::Txn { ops: ops(MAX_TXN_OPS + 1), now_ms: 0 };
        check(&too_many, Err(Invalid::TooManyOps(MAX_TXN_OPS + 1)));
        assert_eq!(
            Invalid::TooManyOps(129).to_string(),
            "Transaction contains too many operations (129 > 128)"
        );
        assert_eq!(Invalid::TooManyOps(129).class(), Class::TooLarge);
        let bad = Command::Txn { ops: vec![TxnOp::NodeGet("n".into()), TxnOp::Kv(set("a/../b"))], now_ms: 0 };
        check(&bad, Err(Invalid::KeyName("a/../b".into())));
        // The root is a valid key in a transaction (a `get-tree` of everything).
        check(&Command::Txn { ops: vec![TxnOp::Kv(KvOp::GetTree(String::new()))], now_ms: 0 }, Ok(()));
    }

    #[test]
    fn registrations_follow_consuls_rules_in_consuls_order() {
        let web = || service("n1", "web", "web", 80, &[]);
        check(&register(node("n1", "10.0.0.1"), Some(web()), vec![]), Ok(()));
        check(&register(node("", "10.0.0.1"), None, vec![]), Err(Invalid::MissingNode));
        check(&register(node("n1", ""), None, vec![]), Err(Invalid::MissingAddress));
        let mut skip = register(node("n1", ""), None, vec![]);
        if let Command::Register(r) = &mut skip {
            r.skip_node_update = true;
        }
        check(&skip, Ok(()));
        let mut unnamed = web();
        unnamed.name.clear();
        check(&register(node("n1", "10.0.0.1"), Some(unnamed), vec![]), Err(Invalid::MissingServiceName));
        let mut heavy = web();
        heavy.weights.passing = 0;
        // Service rules come first, as in Consul's decoder: before the node's.
        check(&register(node("", ""), Some(heavy), vec![]), Err(Invalid::Weights));
        for any in ["0.0.0.0", "::", "[::]"] {
            let mut s = web();
            any.clone_into(&mut s.address);
            check(&register(node("n1", "10.0.0.1"), Some(s), vec![]), Err(Invalid::ServiceAddress));
        }
        let no_id = health_check("n1", "", "", HealthStatus::Passing);
        check(&register(node("n1", "10.0.0.1"), None, vec![no_id]), Err(Invalid::MissingCheckId));
        assert_eq!(Invalid::MissingCheckId.class(), Class::Rpc);
        assert_eq!(Invalid::MissingAddress.to_string(), "Must provide address if SkipNodeUpdate is not set");
    }

    #[test]
    fn deregistrations_name_a_node() {
        check(&deregister("n1", Some("web"), None), Ok(()));
        check(&deregister("", None, None), Err(Invalid::MissingNode));
    }

    #[test]
    fn session_ttls_are_go_durations_within_consuls_bounds() {
        let create = |ttl: &str| {
            let mut s = session("s1", "n1", &[], SessionBehavior::Release);
            ttl.clone_into(&mut s.ttl);
            Command::SessionCreate { session: s, now_ms: 0 }
        };
        for ttl in ["", "10s", "1h", "24h"] {
            check(&create(ttl), Ok(()));
        }
        check(&create("soon"), Err(Invalid::SessionTtl("soon".into())));
        check(&create("9s"), Err(Invalid::SessionTtlRange("9s".into())));
        check(&create("25h"), Err(Invalid::SessionTtlRange("25h".into())));
        assert_eq!(
            Invalid::SessionTtlRange("9s".into()).to_string(),
            "Invalid Session TTL '9s', must be between [10s=24h0m0s]"
        );
    }

    #[test]
    fn prepared_queries_name_a_service_and_a_dns_ttl_that_parses() {
        let upsert = |service: &str, dns_ttl: &str| {
            let query = PreparedQuery {
                id: "q".into(),
                name: String::new(),
                session: String::new(),
                token: String::new(),
                service: QueryService { service: service.into(), ..QueryService::default() },
                dns_ttl: dns_ttl.into(),
                create_index: 0,
                modify_index: 0,
            };
            Command::QueryUpsert(QueryUpsert { query, update: false })
        };
        check(&upsert("web", ""), Ok(()));
        check(&upsert("web", "10s"), Ok(()));
        check(&upsert("", ""), Err(Invalid::QueryService));
        let Err(Invalid::DnsTtl { ttl, why }) = upsert("web", "ten").validate() else {
            panic!("a bad DNS TTL passed");
        };
        assert_eq!((ttl.as_str(), why.as_str()), ("ten", "time: invalid duration \"ten\""));
    }

    #[test]
    fn a_batch_is_as_valid_as_its_worst_command_and_bounded() {
        let ok = register(node("n1", "10.0.0.1"), None, vec![]);
        check(&Command::Batch(vec![ok.clone(), kv(set("a"))]), Ok(()));
        check(&Command::Batch(vec![ok.clone(), kv(set(".."))]), Err(Invalid::KeyName("..".into())));
        check(&Command::Batch(vec![ok.clone(); MAX_BATCH]), Ok(()));
        check(&Command::Batch(vec![ok.clone(); MAX_BATCH + 1]), Err(Invalid::BatchTooLarge(MAX_BATCH + 1)));
        check(&Command::Batch(vec![Command::Batch(vec![ok])]), Err(Invalid::NestedBatch));
    }

    #[test]
    fn values_are_bounded_by_the_http_body_limit() {
        let value = |n: usize| KvOp::Set(kv_write("k", &vec![b'v'; n], 0, ""));
        check(&kv(value(MAX_VALUE_BYTES)), Ok(()));
        check(&kv(value(3 << 20)), Err(Invalid::ValueTooLarge(3 << 20)));
        check(
            &kv(KvOp::Lock(kv_write("k", &vec![0; MAX_VALUE_BYTES + 1], 0, "s"))),
            Err(Invalid::ValueTooLarge(MAX_VALUE_BYTES + 1)),
        );
        let half = MAX_VALUE_BYTES / 2;
        let txn =
            |n: usize| Command::Txn { ops: (0..n).map(|_| TxnOp::Kv(value(half))).collect(), now_ms: 0 };
        check(&txn(2), Ok(()));
        check(&txn(3), Err(Invalid::ValueTooLarge(3 * half)));
        assert_eq!(Invalid::ValueTooLarge(1).class(), Class::TooLarge);
        assert!(
            Invalid::ValueTooLarge(3 << 20)
                .to_string()
                .starts_with("Request body(3145728 bytes) too large, max size: 524288 bytes.")
        );
    }

    #[test]
    fn session_lock_delays_are_at_most_a_minute() {
        let create = |ns: u64| {
            let mut s = session("s1", "n1", &[], SessionBehavior::Release);
            s.lock_delay_ns = ns;
            Command::SessionCreate { session: s, now_ms: 0 }
        };
        check(&create(0), Ok(()));
        check(&create(60_000_000_000), Ok(()));
        check(&create(60_000_000_001), Err(Invalid::LockDelay(60_000_000_001)));
        assert_eq!(
            Invalid::LockDelay(61_000_000_000).to_string(),
            "Invalid LockDelay of 61000000000ns: at most 1m0s"
        );
    }
}
