//! Answer cache: whole responses in wire format, one cache per UDP receive loop.
//!
//! Input: a request datagram, the context, the snapshot and the ACL view (`Access`) the loop
//! loaded for it.
//! Output: the response bytes in the caller's buffer, or the `Response` of the full path
//! when it is not a plain reply (forwarding, host-name resolution, drop).
//!
//! A response is a pure function of the request bytes after its 2-byte ID, the transport,
//! the context and the snapshot, plus the RNG (shuffles). So the key is the transport and
//! the request bytes after the ID. The cache empties itself when the context generation
//! changes (a reload) or the ACL view's does (a new default token, an ACL write: an answer
//! rendered under one authorizer is never served under another). A new snapshot does not empty it: each entry remembers what its
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
//!
//! Files, one idea each: this one holds the table and the hit and miss paths; `table` the
//! rows (`Entry`, `Variant`) and how a stored reply is finished for a hit; `invalidate` the
//! check of an entry against a new snapshot (`Changes`, `Digests`); `permute` the in-place
//! reordering of a stored rendering's records (`Permute`).
//!
//! Why our own code and not a cache crate (moka, quick_cache, or hickory's resolver cache):
//! those key values by name and expire them by TTL or size; this one stores finished wire
//! bytes per request, is invalidated row by row against a catalog snapshot rather than by
//! time, permutes records inside the stored bytes, and must take no lock and allocate
//! nothing on a hit, since one cache belongs to one UDP loop.

mod invalidate;
mod permute;
mod table;

use std::cell::RefCell;
use std::convert::Infallible;
use std::hash::BuildHasher;
use std::sync::Arc;

use rand::{Rng, RngExt, SeedableRng, TryRng};

use self::invalidate::{Changes, Digests, versions};
pub(crate) use self::permute::Permute;
use self::permute::Scratch;
pub(crate) use self::table::soa_serial_offsets;
use self::table::{
    Entry, MAX_BYTES, MAX_KEY, MIN_VARIANTS, USES_PER_VARIANT, VARIANTS, Variant, finish, refresh_after,
};
use super::access::Access;
use super::context::{DnsContext, Transport};
use super::encode::answer_count;
use super::message::{Deps, Resolved, Response};
use super::pipeline::{respond_traced, respond_under};
use crate::snapshot::CatalogSnapshot;

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

/// What the hit path found.
enum Probe {
    /// `out` holds the reply.
    Hit,
    /// Render the request: no entry, a stale one, or a variant to make or refresh.
    Miss(Miss),
}

/// Where a rendering goes: the key's hash, the variant picked, and whether the entry it
/// replaces is stale.
#[derive(Clone, Copy)]
struct Miss {
    hash: u64,
    pick: usize,
    stale: bool,
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
    /// The ACL view generation the entries were rendered under.
    acl_generation: u64,
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
            acl_generation: 0,
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
    /// full path wants done instead (`Forward`, `Resolve`, `Drop`) with `out` empty. ACLs off.
    pub fn respond(
        &mut self,
        request: &[u8],
        transport: Transport,
        ctx: &DnsContext,
        snap: &Arc<CatalogSnapshot>,
        out: &mut Vec<u8>,
    ) -> Option<Response> {
        self.respond_under(request, transport, ctx, snap, &Access::ALL, out)
    }

    /// [`AnswerCache::respond`] with the answers limited by `access`.
    pub(crate) fn respond_under(
        &mut self,
        request: &[u8],
        transport: Transport,
        ctx: &DnsContext,
        snap: &Arc<CatalogSnapshot>,
        access: &Access,
        out: &mut Vec<u8>,
    ) -> Option<Response> {
        out.clear();
        self.follow(ctx, snap, access);
        let (Some(id), Some(rest)) = (request.get(..2), request.get(2..)) else {
            return self.render_uncached(request, transport, ctx, snap, access, out);
        };
        if request.len() > MAX_KEY {
            return self.render_uncached(request, transport, ctx, snap, access, out);
        }
        self.key.clear();
        self.key.push(transport as u8);
        self.key.extend_from_slice(rest);
        let hash = self.hasher.hash_one(self.key.as_slice());
        match self.hit(hash, id, ctx, snap, out) {
            Probe::Hit => None,
            Probe::Miss(miss) => self.render(request, transport, ctx, snap, access, miss, out),
        }
    }

    /// Empties the cache when the context generation changed (a reload), when the ACL view
    /// changed, when it holds more than `MAX_BYTES`, or when `snap` is older than the last
    /// snapshot it saw; otherwise marks the rows `snap` changed.
    fn follow(&mut self, ctx: &DnsContext, snap: &Arc<CatalogSnapshot>, access: &Access) {
        let seen = self.changes.synced.as_ref().is_some_and(|s| Arc::ptr_eq(s, snap));
        let synced = seen || self.changes.sync(snap);
        let acl_generation = access.generation();
        if self.generation != ctx.generation
            || self.acl_generation != acl_generation
            || self.bytes > MAX_BYTES
            || !synced
        {
            self.table.clear();
            self.changes.clear();
            self.bytes = 0;
            self.generation = ctx.generation;
            self.acl_generation = acl_generation;
        }
    }

    /// The hit path: copies the stored reply for the key in `self.key` into `out` with the
    /// request's ID (`id`) and the current serial written in, and permutes it where the entry
    /// says so. Allocates nothing. A miss says which rendering to make.
    fn hit(
        &mut self,
        hash: u64,
        id: &[u8],
        ctx: &DnsContext,
        snap: &CatalogSnapshot,
        out: &mut Vec<u8>,
    ) -> Probe {
        let mut miss = Miss { hash, pick: 0, stale: false };
        let key = self.key.as_slice();
        let Some(entry) = self.table.find_mut(hash, |e| e.key() == key) else { return Probe::Miss(miss) };
        miss.stale = !entry.current(
            snap,
            ctx.dns_config.only_passing,
            &self.digests,
            &mut self.changes,
            &mut self.rows_checked,
        );
        if entry.shuffled {
            // Renderings grow with demand: a key asked for rarely between two writes to its
            // service is rendered twice, not `VARIANTS` times.
            let allowed = VARIANTS.min(MIN_VARIANTS + (entry.uses / USES_PER_VARIANT) as usize);
            miss.pick = self.rng.random_range(0..allowed);
        }
        entry.uses = entry.uses.saturating_add(1);
        let (key_len, shuffled) = (entry.key_len, entry.shuffled);
        match entry.variant_mut(miss.pick) {
            Some(v) if !miss.stale && (v.uses < v.refresh || !shuffled) => {
                v.uses += 1;
                self.stats.hits += 1;
                out.extend_from_slice(v.bytes.get(key_len..).unwrap_or_default());
                finish(out, id, ctx.soa_serial, v);
                if let Some(p) = &entry.permute {
                    p.shuffle(out, &mut self.rng, &mut self.scratch);
                }
                Probe::Hit
            }
            _ => Probe::Miss(miss),
        }
    }

    /// The miss path (a miss, a missing variant, or a variant due for a new shuffle): renders
    /// the request through the full path into `out`, and stores the reply when it may be.
    #[allow(clippy::too_many_arguments)]
    fn render(
        &mut self,
        request: &[u8],
        transport: Transport,
        ctx: &DnsContext,
        snap: &CatalogSnapshot,
        access: &Access,
        miss: Miss,
        out: &mut Vec<u8>,
    ) -> Option<Response> {
        self.stats.misses += 1;
        let mut counting = Counting { inner: &mut self.rng, draws: 0 };
        let deps = RefCell::default();
        let response =
            respond_traced(request, transport, ctx, snap, access, &Resolved::pending(), &deps, &mut counting);
        let draws = counting.draws;
        let Response::Reply(bytes) = response else {
            return Some(response);
        };
        out.extend_from_slice(&bytes);
        if draws > 0 && ctx.dns_config.weighted_shuffle {
            // A weighted order must be drawn per query: a stored rendering would repeat one
            // draw, so an instance with a small weight could come first for many queries.
            return None;
        }
        self.store(ctx, snap, miss, &bytes, deps.into_inner(), draws);
        None
    }

    /// Stores `bytes`, rendered for the key in `self.key` with `draws` draws from the RNG and
    /// reading `deps`: as the variant `miss.pick` of its entry, or as a new entry (replacing
    /// a stale one).
    fn store(
        &mut self,
        ctx: &DnsContext,
        snap: &CatalogSnapshot,
        miss: Miss,
        bytes: &[u8],
        deps: Deps,
        draws: u32,
    ) {
        let shuffled = draws > 0;
        // A plain shuffle of fixed records is stored once and permuted on each hit; a plain
        // shuffle of at most one record (an empty or one-record answer) has one order.
        let permute = if shuffled && !deps.partial { Permute::of(bytes) } else { None };
        let one_order = !deps.partial && answer_count(bytes) < 2;
        let shuffled = shuffled && permute.is_none() && !one_order;
        let serial_at = soa_serial_offsets(bytes);
        let refresh = refresh_after(bytes.len(), draws);
        let key = self.key.as_slice();
        let mut stored = Vec::with_capacity(key.len() + bytes.len());
        stored.extend_from_slice(key);
        stored.extend_from_slice(bytes);
        let variant = Variant { serial: ctx.soa_serial, serial_at, bytes: stored, uses: 1, refresh };
        let hash = miss.hash;
        if miss.stale
            && let Ok(found) = self.table.find_entry(hash, |e| e.key() == key)
        {
            let (old, _) = found.remove();
            self.bytes = self.bytes.saturating_sub(old.size());
        }
        if let Some(entry) = self.table.find_mut(hash, |e| e.key() == key) {
            entry.shuffled |= shuffled;
            if let Some(slot) = entry.variant_mut(miss.pick) {
                self.bytes = self.bytes.saturating_sub(slot.bytes.len()) + variant.bytes.len();
                *slot = variant;
            } else if entry.more.len() + 1 < VARIANTS {
                self.bytes += variant.bytes.len();
                entry.more.push(variant);
            }
            return;
        }
        let only_passing = ctx.dns_config.only_passing;
        let deps = versions(deps, &snap.catalog, only_passing, &self.digests, &mut self.changes);
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

    fn render_uncached(
        &mut self,
        request: &[u8],
        transport: Transport,
        ctx: &DnsContext,
        snap: &CatalogSnapshot,
        access: &Access,
        out: &mut Vec<u8>,
    ) -> Option<Response> {
        self.stats.misses += 1;
        match respond_under(request, transport, ctx, snap, access, &Resolved::pending(), &mut self.rng) {
            Response::Reply(bytes) => {
                out.extend_from_slice(&bytes);
                None
            }
            other => Some(other),
        }
    }
}
