//! Answer cache: whole responses in wire format, one cache per UDP receive loop.
//!
//! Input: a request datagram, the context and the snapshot the loop loaded for it.
//! Output: the response bytes in the caller's buffer, or the `Response` of the full path
//! when it is not a plain reply (forwarding, host-name resolution, drop).
//!
//! A response is a pure function of the request bytes after its 2-byte ID, the transport,
//! the context and the snapshot, plus the RNG (shuffles). So the key is the transport and
//! the request bytes after the ID. The cache empties itself when the context generation
//! changes (a reload). A new snapshot does not empty it: each entry remembers what its
//! answer read (`Deps`: service names and node names, with their catalog indexes) and is
//! checked against the new snapshot on its next use, so a write to one service leaves the
//! other services' answers cached. The check costs nothing for an entry none of whose rows
//! changed: when the loop loads a new snapshot, the cache diffs the service indexes and node
//! rows against the previous snapshot it saw (`Changes`: persistent maps, so the diff skips
//! what they share) and marks the rows that moved; an entry looks only at its marked rows.
//! When a service's index moved, the entry compares a
//! digest of what its lookups read (`answer::digest_service`: instances, nodes, and health
//! as answers use it) before giving up, so a write that changed nothing the answer shows
//! (a check flipping between passing and warning, new check output) keeps it too. The
//! digest is computed once per version of the service (kept by slot in `Changes`), not once
//! per entry: a service's dozen keys are checked at different snapshots, as queries come. An
//! answer that read more (NS, PTR, prepared queries) is rendered again after any write.
//! A hit copies the stored bytes and writes the request's
//! ID into them, and the current SOA serial where the response carries one (the serial
//! ticks every second without changing anything else).
//!
//! Shuffled address answers: when the answer section is A or AAAA records of one size, each
//! owned by a pointer to the question, nothing else points into it, and the records are a
//! plain shuffle of a fixed set (`Deps::partial` unset: no limit, cap or merge depended on
//! the order), the entry keeps one rendering and a hit permutes its records in the copied
//! bytes (Fisher-Yates on fixed-size chunks): every order is as likely as from the full
//! path, with no rendering after the first. A plain shuffle of at most one record (an empty
//! answer, a one-instance service) has one order and is stored like an unshuffled answer.
//!
//! Shuffled SRV answers are permuted the same way when each target is written out in full
//! (SRV targets are never compressed), each answer's additional records (its target's A or
//! AAAA, then node-meta TXT) follow in answer order and are owned by a pointer to exactly
//! that target, and nothing else points into the moving part: a hit writes the answers in a
//! random order, their groups after them in the same order, and re-points each group's
//! owners at its target's new offset. Every pointer stays 2 bytes, so the length and every
//! byte outside the moving part are those of the full path's rendering of that order.
//!
//! Other shuffled answers: when rendering a response drew from the RNG, the entry keeps up to
//! `VARIANTS` independently shuffled renderings (two at first, more as the key is asked for)
//! and answers from one picked at random; each is re-rendered after `REFRESH_USES` uses
//! (more for answers that cost more to render: see `refresh_after`), so
//! over time every instance is served and the order stays uniformly random, at about one
//! full rendering per `USES_PER_VARIANT` hits. With `weighted_shuffle` on, shuffled answers
//! are not stored: each query draws its own weighted order.
//!
//! Invariants: no lock (the cache is owned by one loop), no allocation on a hit, bounded
//! memory (`MAX_BYTES`; the cache is emptied when full), and the bytes sent on a hit are
//! exactly what the full path rendered for the same request (for a permuted answer: with
//! its records in another order, drawn as the full path draws them).

use std::collections::HashMap;
use std::convert::Infallible;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use rand::{Rng, RngExt, SeedableRng, TryRng};

use std::cell::RefCell;

use super::answer::digest_service;
use super::context::{DnsContext, Transport};
use super::encode::{answer_count, u16_at};
use super::message::{Deps, Resolved, Response};
use super::pipeline::{respond, respond_traced};
use crate::catalog::CatalogState;
use crate::snapshot::CatalogSnapshot;

/// Renderings kept per shuffled answer.
const VARIANTS: usize = 8;
/// Uses of one rendering before it is shuffled again.
const REFRESH_USES: u32 = 64;
/// Uses of a rendering before it is shuffled again. Rendering costs about in proportion to
/// the instances shuffled (`draws` from the RNG, about one per instance) and to the bytes
/// written, so a costly answer is kept longer and re-shuffling stays a small,
/// size-independent share of the hits.
fn refresh_after(len: usize, draws: u32) -> u32 {
    let blocks = u32::try_from(len / 256).unwrap_or(u32::MAX);
    REFRESH_USES.saturating_mul(blocks.max(draws / 8).max(1))
}

/// Renderings a shuffled entry may have from the start (so even a rarely asked name gets
/// more than one order).
const MIN_VARIANTS: usize = 2;
/// Requests per further rendering, up to `VARIANTS`.
const USES_PER_VARIANT: u32 = 32;
/// Longest request the cache keys on; longer ones take the full path every time.
const MAX_KEY: usize = 512;
/// Bytes of keys and responses one cache may hold before it empties itself.
const MAX_BYTES: usize = 32 << 20;
/// RR type of SOA.
const SOA: u16 = 6;
/// RR types of A, AAAA and OPT.
const A: usize = 1;
const AAAA: usize = 28;
const OPT: usize = 41;

/// One rendering of a response.
struct Variant {
    /// The entry's key, then the response: a hit reads one allocation (the key compare
    /// brings in the first bytes of the reply).
    bytes: Vec<u8>,
    uses: u32,
    /// Uses before it is rendered again (`refresh_after`).
    refresh: u32,
    /// The SOA serial written in `bytes`, and where.
    serial: u32,
    serial_at: Vec<usize>,
}

struct Entry {
    /// Length of the key at the front of every variant's bytes.
    key_len: usize,
    /// The first rendering, inline, so a hit on an entry with one follows one pointer.
    first: Variant,
    /// Further renderings of a shuffled answer.
    more: Vec<Variant>,
    /// Whether rendering used the RNG and the variants carry the order (it is off when
    /// `permute` does the shuffling).
    shuffled: bool,
    /// Where a hit shuffles the one stored rendering itself.
    permute: Option<Permute>,
    /// The snapshot index the variants are known to be current for.
    checked_at: u64,
    /// Requests for this key since it was (re)rendered.
    uses: u32,
    /// What the answer read, with the versions it saw; `None`: anything may matter.
    deps: Option<Vec<Dep>>,
}

/// One catalog row an answer read, with the version it saw, and its slot in `Changes`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Dep {
    slot: usize,
    row: Row,
}

/// What a `Dep` read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Row {
    /// A service name: its instances, their nodes and checks. `version` is the per-service
    /// index (`None`: never registered); `digest` is `Digests::service` of what a lookup
    /// reads, compared when the index moved.
    Service { name: String, version: Option<u64>, digest: u128 },
    /// A node, by its modify index.
    Node { name: String, version: Option<u64> },
}

/// Two independently seeded hashers, for 128-bit digests.
struct Digests {
    seeds: [foldhash::quality::RandomState; 2],
    /// Services walked to make a digest (tests: once per version of a service).
    walks: std::cell::Cell<u64>,
}

/// A service digest as computed at one version of the service (per slot in
/// `Changes::digests`).
#[derive(Debug, Clone, Copy)]
struct Memo {
    version: Option<u64>,
    only_passing: bool,
    digest: u128,
}

/// Both seeded hashers fed in one walk of the service.
struct PairHasher(foldhash::quality::FoldHasher<'static>, foldhash::quality::FoldHasher<'static>);

impl Hasher for PairHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.write(bytes);
        self.1.write(bytes);
    }

    fn write_u64(&mut self, n: u64) {
        self.0.write_u64(n);
        self.1.write_u64(n);
    }

    fn finish(&self) -> u64 {
        self.0.finish() ^ self.1.finish()
    }
}

impl Digests {
    fn new() -> Self {
        Self {
            seeds: [foldhash::quality::RandomState::default(), foldhash::quality::RandomState::default()],
            walks: std::cell::Cell::new(0),
        }
    }

    /// The digest of what a lookup of service `name` (slot `slot`, per-service index
    /// `version` in `catalog`) reads: walked once per version of the service, however many
    /// entries ask (`memo`, indexed by slot). Whatever a lookup reads moves that index.
    fn service(
        &self,
        memo: &mut [Option<Memo>],
        slot: usize,
        catalog: &CatalogState,
        name: &str,
        version: Option<u64>,
        only_passing: bool,
    ) -> u128 {
        let cell = memo.get_mut(slot);
        if let Some(Some(m)) = &cell
            && version.is_some()
            && m.version == version
            && m.only_passing == only_passing
        {
            return m.digest;
        }
        self.walks.set(self.walks.get() + 1);
        let [a, b] = self.seeds.each_ref().map(BuildHasher::build_hasher);
        let mut h = PairHasher(a, b);
        digest_service(catalog, name, only_passing, &mut h);
        let digest = (u128::from(h.0.finish()) << 64) | u128::from(h.1.finish());
        if let Some(cell) = cell {
            *cell = Some(Memo { version, only_passing, digest });
        }
        digest
    }
}

/// Which rows answers depend on, and the snapshot at which each last changed, as this cache
/// saw it (see the module docs).
#[derive(Default)]
struct Changes {
    /// The snapshot the marks are up to date with.
    synced: Option<Arc<CatalogSnapshot>>,
    /// Service and node names (catalog keys) with their slots.
    services: HashMap<String, usize, foldhash::fast::RandomState>,
    nodes: HashMap<String, usize, foldhash::fast::RandomState>,
    /// For each slot, the snapshot index at which its row was last seen changing (0: not
    /// since the slot was made).
    changed_at: Vec<u64>,
    /// For each service slot, its digest as last computed (`Digests::service`).
    digests: Vec<Option<Memo>>,
}

impl Changes {
    /// The slot of a service name, made if new.
    fn service_slot(&mut self, name: &str) -> usize {
        Self::slot(&mut self.services, &mut self.changed_at, &mut self.digests, name)
    }

    /// The slot of a node name, made if new.
    fn node_slot(&mut self, name: &str) -> usize {
        Self::slot(&mut self.nodes, &mut self.changed_at, &mut self.digests, name)
    }

    fn slot(
        names: &mut HashMap<String, usize, foldhash::fast::RandomState>,
        changed_at: &mut Vec<u64>,
        digests: &mut Vec<Option<Memo>>,
        name: &str,
    ) -> usize {
        if let Some(&slot) = names.get(name) {
            return slot;
        }
        let slot = changed_at.len();
        changed_at.push(0);
        digests.push(None);
        names.insert(name.to_owned(), slot);
        slot
    }

    /// Marks the rows that differ between the last snapshot seen and `snap`. Returns false
    /// when the marks cannot be trusted (`snap` is older than the last one seen): the caller
    /// empties the cache.
    fn sync(&mut self, snap: &Arc<CatalogSnapshot>) -> bool {
        let Some(prev) = self.synced.replace(snap.clone()) else { return true };
        if snap.index < prev.index {
            return false;
        }
        for name in prev.catalog.changed_services(&snap.catalog) {
            if let Some(&slot) = self.services.get(name)
                && let Some(at) = self.changed_at.get_mut(slot)
            {
                *at = snap.index;
            }
        }
        for name in prev.catalog.changed_nodes(&snap.catalog) {
            if let Some(&slot) = self.nodes.get(name)
                && let Some(at) = self.changed_at.get_mut(slot)
            {
                *at = snap.index;
            }
        }
        true
    }

    /// Forgets every slot (the entries that used them are gone); keeps the snapshot seen.
    fn clear(&mut self) {
        self.services.clear();
        self.nodes.clear();
        self.changed_at.clear();
        self.digests.clear();
    }
}

impl Row {
    /// Whether what this row (in slot `slot`) gave the answer is unchanged in `catalog`; a
    /// service whose index moved but whose digest did not is brought up to the new index.
    fn current(
        &mut self,
        slot: usize,
        catalog: &CatalogState,
        only_passing: bool,
        digests: &Digests,
        memo: &mut [Option<Memo>],
    ) -> bool {
        match self {
            Self::Service { name, version, digest } => {
                let now = catalog.service_index_row(name);
                if now == *version {
                    return true;
                }
                if digests.service(memo, slot, catalog, name, now, only_passing) != *digest {
                    return false;
                }
                *version = now;
                true
            }
            Self::Node { name, version } => catalog.node_row(name).map(|n| n.modify_index) == *version,
        }
    }
}

/// The dependencies of an answer rendered from `catalog`, with the versions it saw; `None`
/// (check nothing, render again after any write) when a row it read carries no version,
/// which only a hand-built catalog can have.
fn versions(
    deps: Deps,
    catalog: &CatalogState,
    only_passing: bool,
    digests: &Digests,
    changes: &mut Changes,
) -> Option<Vec<Dep>> {
    if deps.everything {
        return None;
    }
    let mut out = Vec::with_capacity(deps.services.len() + deps.nodes.len());
    for name in deps.services {
        let version = catalog.service_index_row(&name);
        if version.is_none() && catalog.service_instances(&name).next().is_some() {
            return None;
        }
        let slot = changes.service_slot(&name);
        let digest = digests.service(&mut changes.digests, slot, catalog, &name, version, only_passing);
        out.push(Dep { slot, row: Row::Service { name, version, digest } });
    }
    for name in deps.nodes {
        let version = catalog.node_row(&name).map(|n| n.modify_index);
        if version == Some(0) {
            return None;
        }
        let slot = changes.node_slot(&name);
        out.push(Dep { slot, row: Row::Node { name, version } });
    }
    Some(out)
}

impl Entry {
    /// The request bytes this entry answers (transport, then the request after its ID).
    fn key(&self) -> &[u8] {
        self.first.bytes.get(..self.key_len).unwrap_or_default()
    }

    /// Rendering `i` (0: `first`).
    fn variant_mut(&mut self, i: usize) -> Option<&mut Variant> {
        match i {
            0 => Some(&mut self.first),
            _ => self.more.get_mut(i - 1),
        }
    }

    /// Bytes held, keys and an SRV layout included.
    fn size(&self) -> usize {
        self.first.bytes.len()
            + self.more.iter().map(|v| v.bytes.len()).sum::<usize>()
            + self.permute.as_ref().map_or(0, Permute::heap_bytes)
    }

    /// Whether the stored answer is still what `snap` would give. Only the rows marked as
    /// changed since it was last checked (`changed_at`, synced to `snap`) are looked at.
    fn current(
        &mut self,
        snap: &CatalogSnapshot,
        only_passing: bool,
        digests: &Digests,
        changes: &mut Changes,
        rows_checked: &mut u64,
    ) -> bool {
        if self.checked_at == snap.index {
            return true;
        }
        let Some(deps) = &mut self.deps else { return false };
        let checked_at = self.checked_at;
        let Changes { changed_at, digests: memo, .. } = changes;
        let moved = |d: &Dep| changed_at.get(d.slot).is_none_or(|&at| at > checked_at);
        let mut current = |d: &mut Dep| {
            *rows_checked += 1;
            d.row.current(d.slot, &snap.catalog, only_passing, digests, memo)
        };
        if deps.iter_mut().all(|d| !moved(d) || current(d)) {
            self.checked_at = snap.index;
            return true;
        }
        false
    }
}

/// How a hit may reorder the one stored rendering of a shuffled answer (see the module docs):
/// the reorderings give exactly the bytes the full path renders for the other orders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Permute {
    /// `count` A or AAAA answers of `size` bytes each from byte `start`, swapped in place.
    Fixed { start: usize, size: usize, count: usize },
    /// SRV answers from byte `start`, each with its group of additional records (its
    /// target's address, then node-meta TXT) in the same order, the groups ending at `end`.
    Srv { start: usize, end: usize, pieces: Box<[SrvPiece]> },
}

/// One SRV answer and its additional records, as offsets into the stored rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SrvPiece {
    record: (usize, usize),
    group: (usize, usize),
    /// Offsets, from the group's start, of its records' owners: each a pointer to the
    /// record's target, so a moved record's group is pointed at its new place.
    owners: Box<[usize]>,
}

/// Offset of an SRV record's target within the record: owner pointer (2), type, class,
/// TTL, RDLENGTH (10), priority, weight, port (6).
const SRV_TARGET_AT: usize = 18;
/// RR types of SRV and TXT.
const SRV: usize = 33;
const TXT: usize = 16;
/// Compression pointers reach the first 16 KiB of a message.
const POINTER_REACH: usize = 0x4000;

/// Reusable buffers for `Permute::shuffle`, so a hit allocates nothing.
#[derive(Default)]
struct Scratch {
    bytes: Vec<u8>,
    order: Vec<usize>,
    targets: Vec<usize>,
}

impl Permute {
    /// The layout of `msg` if a hit may reorder its records (`Fixed` or `Srv`), `None`
    /// otherwise.
    pub(crate) fn of(msg: &[u8]) -> Option<Self> {
        Self::fixed(msg).or_else(|| Self::srv(msg))
    }

    /// Heap bytes the layout holds (`Srv`: one piece per answer and its owner offsets).
    fn heap_bytes(&self) -> usize {
        match self {
            Self::Fixed { .. } => 0,
            Self::Srv { pieces, .. } => {
                pieces.iter().map(|p| size_of::<SrvPiece>() + p.owners.len() * size_of::<usize>()).sum()
            }
        }
    }

    /// The answer and additional counts of a reply with one question, two or more answers
    /// and no authority records, and where its answers start.
    fn sections(msg: &[u8]) -> Option<(usize, usize, usize)> {
        let count = |at: usize| u16_at(msg, at);
        let (questions, answers, authority, additional) = (count(4)?, count(6)?, count(8)?, count(10)?);
        if questions != 1 || answers < 2 || authority != 0 {
            return None;
        }
        Some((answers, additional, skip_name(msg, 12)? + 4))
    }

    /// One question, two or more A or AAAA answers of one size whose owners point before the
    /// answer section, no authority records, and only an OPT record (root owner) in the
    /// additional section, so no name anywhere points into the records that move.
    fn fixed(msg: &[u8]) -> Option<Self> {
        let count = |at: usize| u16_at(msg, at);
        let (answers, additional, start) = Self::sections(msg)?;
        let mut pos = start;
        let mut layout = None;
        for _ in 0..answers {
            if pointer_at(msg, pos)? >= start {
                return None;
            }
            let rtype = count(pos + 2)?;
            let size = 12 + count(pos + 10)?;
            if rtype != A && rtype != AAAA || *layout.get_or_insert((rtype, size)) != (rtype, size) {
                return None;
            }
            pos += size;
        }
        for _ in 0..additional {
            if msg.get(pos) != Some(&0) || count(pos + 1)? != OPT {
                return None;
            }
            pos += 11 + count(pos + 9)?;
        }
        let (_, size) = layout?;
        (pos == msg.len()).then_some(Self::Fixed { start, size, count: answers })
    }

    /// One question, two or more SRV answers owned by a pointer before the answer section,
    /// each target written out in full (no pointer); no authority records; then, for each
    /// answer in order, a group of one A or AAAA record and any TXT records, all owned by a
    /// pointer to exactly that answer's target; then only OPT. Every name outside the moving
    /// part points before it, every name inside points at a target the group moves with,
    /// and the whole part lies within a pointer's reach, so any order of the answers (their
    /// groups following) is what the full path writes for that order.
    fn srv(msg: &[u8]) -> Option<Self> {
        let count = |at: usize| u16_at(msg, at);
        let (answers, additional, start) = Self::sections(msg)?;
        let mut pos = start;
        let mut records = Vec::with_capacity(answers);
        for _ in 0..answers {
            if pointer_at(msg, pos)? >= start || count(pos + 2)? != SRV {
                return None;
            }
            let size = 12 + count(pos + 10)?;
            if uncompressed_name_end(msg, pos + SRV_TARGET_AT)? != pos + size {
                return None;
            }
            records.push((pos, size));
            pos += size;
        }
        let mut groups: Vec<((usize, usize), Vec<usize>)> = Vec::with_capacity(answers);
        let mut end = None;
        for _ in 0..additional {
            if msg.get(pos) == Some(&0) && count(pos + 1) == Some(OPT) {
                end.get_or_insert(pos);
                pos += 11 + count(pos + 9)?;
                continue;
            }
            let target = pointer_at(msg, pos)?;
            let (rtype, size) = (count(pos + 2)?, 12 + count(pos + 10)?);
            let next = groups.len();
            let opens = records.get(next).is_some_and(|&(at, _)| at + SRV_TARGET_AT == target);
            if end.is_some() {
                return None;
            } else if opens && (rtype == A || rtype == AAAA) {
                groups.push(((pos, size), vec![0]));
            } else if rtype == TXT
                && let Some(((group_at, group_len), owners)) = groups.last_mut()
                && records.get(next - 1).is_some_and(|&(at, _)| at + SRV_TARGET_AT == target)
            {
                owners.push(pos - *group_at);
                *group_len += size;
            } else {
                return None;
            }
            pos += size;
        }
        let end = end.unwrap_or(pos);
        if groups.len() != records.len() || pos != msg.len() || end >= POINTER_REACH {
            return None;
        }
        let pieces = records
            .into_iter()
            .zip(groups)
            .map(|(record, (group, owners))| SrvPiece { record, group, owners: owners.into() })
            .collect();
        Some(Self::Srv { start, end, pieces })
    }

    /// Puts the records of `msg` (a copy of the rendering the layout was made from) in a
    /// uniformly random order.
    fn shuffle(&self, msg: &mut [u8], rng: &mut impl Rng, scratch: &mut Scratch) {
        match self {
            Self::Fixed { start, size, count } => {
                let Some(section) = msg.get_mut(*start..*start + size * count) else { return };
                for i in (1..*count).rev() {
                    let j = rng.random_range(0..=i);
                    if j != i {
                        let (low, high) = section.split_at_mut(i * size);
                        if let (Some(a), Some(b)) =
                            (low.get_mut(j * size..(j + 1) * size), high.get_mut(..*size))
                        {
                            a.swap_with_slice(b);
                        }
                    }
                }
            }
            Self::Srv { start, end, pieces } => {
                let Some(moving) = msg.get_mut(*start..*end) else { return };
                let Scratch { bytes, order, targets } = scratch;
                bytes.clear();
                bytes.extend_from_slice(moving);
                order.clear();
                order.extend(0..pieces.len());
                for i in (1..order.len()).rev() {
                    order.swap(i, rng.random_range(0..=i));
                }
                targets.clear();
                targets.resize(pieces.len(), 0);
                if Self::write_srv(*start, pieces, bytes, order, targets, moving).is_none() {
                    // Unreachable for a layout made by `srv` from these bytes; never send a
                    // half-moved reply.
                    moving.copy_from_slice(bytes);
                }
            }
        }
    }

    /// Writes `pieces` of `original` (the moving part, from message offset `start`) into
    /// `moving` in `order`: the answers, then their groups with the owners re-pointed.
    fn write_srv(
        start: usize,
        pieces: &[SrvPiece],
        original: &[u8],
        order: &[usize],
        targets: &mut [usize],
        moving: &mut [u8],
    ) -> Option<()> {
        let mut pos = 0;
        let mut put = |(from, len): (usize, usize), moving: &mut [u8]| -> Option<usize> {
            let at = from.checked_sub(start)?;
            moving.get_mut(pos..pos + len)?.copy_from_slice(original.get(at..at + len)?);
            pos += len;
            Some(pos - len)
        };
        for &i in order {
            let at = put(pieces.get(i)?.record, moving)?;
            *targets.get_mut(i)? = start + at + SRV_TARGET_AT;
        }
        for &i in order {
            let piece = pieces.get(i)?;
            let at = put(piece.group, moving)?;
            let pointer = (0xC000 | u16::try_from(*targets.get(i)?).ok()?).to_be_bytes();
            for &owner in &piece.owners {
                moving.get_mut(at + owner..at + owner + 2)?.copy_from_slice(&pointer);
            }
        }
        Some(())
    }
}

/// The offset a name at `at` points to when it is a compression pointer; `None` otherwise.
fn pointer_at(msg: &[u8], at: usize) -> Option<usize> {
    let owner = msg.get(at..at + 2)?;
    (owner[0] & 0xC0 == 0xC0).then(|| usize::from(u16::from_be_bytes([owner[0], owner[1]]) & 0x3FFF))
}

/// The end of an uncompressed name (labels then the root) at `pos`; `None` if it is
/// malformed or uses a pointer.
fn uncompressed_name_end(msg: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        match *msg.get(pos)? {
            0 => return Some(pos + 1),
            l if l & 0xC0 == 0 => pos += 1 + usize::from(l),
            _ => return None,
        }
    }
}

/// An RNG that counts draws, so the cache knows whether a response was shuffled.
struct Counting<'a, R> {
    inner: &'a mut R,
    draws: u32,
}

impl<R: Rng> TryRng for Counting<'_, R> {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        self.draws = self.draws.saturating_add(1);
        Ok(self.inner.next_u32())
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        self.draws = self.draws.saturating_add(1);
        Ok(self.inner.next_u64())
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.draws = self.draws.saturating_add(1);
        self.inner.fill_bytes(dst);
        Ok(())
    }
}

/// Hit and miss counters, for benchmarks and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    /// Requests answered from stored bytes.
    pub hits: u64,
    /// Requests rendered by the full path (and stored when cacheable).
    pub misses: u64,
}

/// The per-loop answer cache; see the module docs.
pub struct AnswerCache {
    /// Entries by the hash of their key. foldhash: keyed per process like std's SipHash (no
    /// hash flooding from chosen request bytes), several times faster on short keys.
    table: hashbrown::HashTable<Entry>,
    hasher: foldhash::fast::RandomState,
    generation: u64,
    bytes: usize,
    key: Vec<u8>,
    rng: rand::rngs::SmallRng,
    digests: Digests,
    changes: Changes,
    /// Rows looked up again because they changed (tests: the rest are not).
    rows_checked: u64,
    stats: CacheStats,
    scratch: Scratch,
}

impl Default for AnswerCache {
    fn default() -> Self {
        Self::new()
    }
}

impl AnswerCache {
    /// An empty cache with its own RNG.
    pub fn new() -> Self {
        Self {
            table: hashbrown::HashTable::new(),
            hasher: foldhash::fast::RandomState::default(),
            generation: 0,
            bytes: 0,
            key: Vec::with_capacity(MAX_KEY + 1),
            rng: rand::rngs::SmallRng::from_rng(&mut rand::rng()),
            digests: Digests::new(),
            changes: Changes::default(),
            rows_checked: 0,
            stats: CacheStats::default(),
            scratch: Scratch::default(),
        }
    }

    /// Counters since the cache was made.
    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    /// Dependency rows looked up again after a new snapshot marked them changed.
    #[cfg(test)]
    pub(crate) fn rows_checked(&self) -> u64 {
        self.rows_checked
    }

    /// Bytes the cache counts against `MAX_BYTES` (tests).
    #[cfg(test)]
    pub(crate) fn bytes_held(&self) -> usize {
        self.bytes
    }

    /// How many times a service was walked to digest it (tests).
    #[cfg(test)]
    pub(crate) fn digests_walked(&self) -> u64 {
        self.digests.walks.get()
    }

    /// Answers `request` into `out` (cleared first) and returns `None`, or returns what the
    /// full path wants done instead (`Forward`, `Resolve`, `Drop`) with `out` empty.
    pub fn respond(
        &mut self,
        request: &[u8],
        transport: Transport,
        ctx: &DnsContext,
        snap: &Arc<CatalogSnapshot>,
        out: &mut Vec<u8>,
    ) -> Option<Response> {
        out.clear();
        let seen = self.changes.synced.as_ref().is_some_and(|s| Arc::ptr_eq(s, snap));
        let synced = seen || self.changes.sync(snap);
        if self.generation != ctx.generation || self.bytes > MAX_BYTES || !synced {
            self.table.clear();
            self.changes.clear();
            self.bytes = 0;
            self.generation = ctx.generation;
        }
        let (Some(id), Some(rest)) = (request.get(..2), request.get(2..)) else {
            return self.render_uncached(request, transport, ctx, snap, out);
        };
        if request.len() > MAX_KEY {
            return self.render_uncached(request, transport, ctx, snap, out);
        }
        self.key.clear();
        self.key.push(transport as u8);
        self.key.extend_from_slice(rest);
        let key = self.key.as_slice();
        let hash = self.hasher.hash_one(key);

        let mut pick = 0;
        let mut stale = false;
        if let Some(entry) = self.table.find_mut(hash, |e| e.key() == key) {
            stale = !entry.current(
                snap,
                ctx.dns_config.only_passing,
                &self.digests,
                &mut self.changes,
                &mut self.rows_checked,
            );
            if entry.shuffled {
                // Renderings grow with demand: a key asked for rarely between two writes to
                // its service is rendered twice, not `VARIANTS` times.
                let allowed = VARIANTS.min(MIN_VARIANTS + (entry.uses / USES_PER_VARIANT) as usize);
                pick = self.rng.random_range(0..allowed);
            }
            entry.uses = entry.uses.saturating_add(1);
            let (key_len, shuffled) = (entry.key_len, entry.shuffled);
            match entry.variant_mut(pick) {
                Some(v) if !stale && (v.uses < v.refresh || !shuffled) => {
                    v.uses += 1;
                    self.stats.hits += 1;
                    out.extend_from_slice(v.bytes.get(key_len..).unwrap_or_default());
                    finish(out, id, ctx.soa_serial, v);
                    if let Some(p) = &entry.permute {
                        p.shuffle(out, &mut self.rng, &mut self.scratch);
                    }
                    return None;
                }
                _ => {}
            }
        }
        // Miss, a missing variant, or a variant due for a new shuffle.
        self.stats.misses += 1;
        let mut counting = Counting { inner: &mut self.rng, draws: 0 };
        let deps = RefCell::default();
        let response =
            respond_traced(request, transport, ctx, snap, &Resolved::pending(), &deps, &mut counting);
        let counting_draws = counting.draws;
        let shuffled = counting_draws > 0;
        let Response::Reply(bytes) = response else {
            return Some(response);
        };
        out.extend_from_slice(&bytes);
        if shuffled && ctx.dns_config.weighted_shuffle {
            // A weighted order must be drawn per query: a stored rendering would repeat one
            // draw, so an instance with a small weight could come first for many queries.
            return None;
        }
        let deps = deps.into_inner();
        // A plain shuffle of fixed records is stored once and permuted on each hit; a plain
        // shuffle of at most one record (an empty or one-record answer) has one order.
        let permute = if shuffled && !deps.partial { Permute::of(&bytes) } else { None };
        let one_order = !deps.partial && answer_count(&bytes) < 2;
        let shuffled = shuffled && permute.is_none() && !one_order;
        let serial_at = soa_serial_offsets(&bytes);
        let refresh = refresh_after(bytes.len(), counting_draws);
        let key = self.key.as_slice();
        let mut stored = Vec::with_capacity(key.len() + bytes.len());
        stored.extend_from_slice(key);
        stored.extend_from_slice(&bytes);
        let variant = Variant { serial: ctx.soa_serial, serial_at, bytes: stored, uses: 1, refresh };
        if stale && let Ok(found) = self.table.find_entry(hash, |e| e.key() == key) {
            let (old, _) = found.remove();
            self.bytes = self.bytes.saturating_sub(old.size());
        }
        match self.table.find_mut(hash, |e| e.key() == key) {
            Some(entry) => {
                entry.shuffled |= shuffled;
                if let Some(slot) = entry.variant_mut(pick) {
                    self.bytes = self.bytes.saturating_sub(slot.bytes.len()) + variant.bytes.len();
                    *slot = variant;
                } else if entry.more.len() + 1 < VARIANTS {
                    self.bytes += variant.bytes.len();
                    entry.more.push(variant);
                }
            }
            None => {
                let deps = versions(
                    deps,
                    &snap.catalog,
                    ctx.dns_config.only_passing,
                    &self.digests,
                    &mut self.changes,
                );
                let entry = Entry {
                    key_len: key.len(),
                    first: variant,
                    more: Vec::new(),
                    shuffled,
                    permute,
                    checked_at: snap.index,
                    deps,
                    uses: 1,
                };
                self.bytes += entry.size();
                let hasher = &self.hasher;
                self.table.insert_unique(hash, entry, |e| hasher.hash_one(e.key()));
            }
        }
        None
    }

    fn render_uncached(
        &mut self,
        request: &[u8],
        transport: Transport,
        ctx: &DnsContext,
        snap: &CatalogSnapshot,
        out: &mut Vec<u8>,
    ) -> Option<Response> {
        self.stats.misses += 1;
        match respond(request, transport, ctx, snap, &Resolved::pending(), &mut self.rng) {
            Response::Reply(bytes) => {
                out.extend_from_slice(&bytes);
                None
            }
            other => Some(other),
        }
    }
}

/// Writes the request's ID and, if it moved on, the current SOA serial into a stored reply.
fn finish(out: &mut [u8], id: &[u8], serial: u32, v: &Variant) {
    if let Some(dst) = out.get_mut(..2) {
        dst.copy_from_slice(id);
    }
    if serial != v.serial {
        for &at in &v.serial_at {
            if let Some(dst) = out.get_mut(at..at + 4) {
                dst.copy_from_slice(&serial.to_be_bytes());
            }
        }
    }
}

/// Offsets of the SERIAL field of every SOA record in a response (empty if it is malformed).
pub(crate) fn soa_serial_offsets(msg: &[u8]) -> Vec<usize> {
    let mut found = Vec::new();
    let count = |at: usize| u16_at(msg, at).unwrap_or(0);
    let questions = count(4);
    let records = count(6) + count(8) + count(10);
    let mut pos = 12;
    for _ in 0..questions {
        let Some(after) = skip_name(msg, pos) else { return Vec::new() };
        pos = after + 4;
    }
    for _ in 0..records {
        let Some(after) = skip_name(msg, pos) else { return Vec::new() };
        let Some(fixed) = msg.get(after..after + 10) else { return Vec::new() };
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        let rdata = after + 10;
        if rtype == SOA {
            let serial = skip_name(msg, rdata).and_then(|p| skip_name(msg, p));
            match serial {
                Some(at) if at + 4 <= rdata + rdlen => found.push(at),
                _ => return Vec::new(),
            }
        }
        pos = rdata + rdlen;
    }
    found
}

/// The offset just past a (possibly compressed) name starting at `pos`.
fn skip_name(msg: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let len = *msg.get(pos)?;
        match len {
            0 => return Some(pos + 1),
            l if l & 0xC0 == 0xC0 => return Some(pos + 2),
            l if l & 0xC0 == 0 => pos += 1 + usize::from(l),
            _ => return None,
        }
    }
}
