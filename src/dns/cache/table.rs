//! Answer cache, the table's rows: one `Entry` per request key, holding one or more
//! renderings (`Variant`) of its reply, and how a stored reply is finished for a hit.
//!
//! Input: the reply the full path rendered, with the key it answers. Output: bytes a hit
//! copies out, with the request's ID and the current SOA serial written in.
//!
//! Invariants: a variant's bytes are the key then the reply (one allocation per hit's
//! read); every byte a hit changes (ID, SOA serials) is at an offset found when the reply
//! was stored; an entry's `size` counts every heap byte it holds (against `MAX_BYTES`).

use super::super::encode::u16_at;
use super::invalidate::Dep;
use super::permute::{Permute, skip_name};

/// Renderings kept per shuffled answer.
pub(super) const VARIANTS: usize = 8;
/// Uses of one rendering before it is shuffled again.
const REFRESH_USES: u32 = 64;
/// Uses of a rendering before it is shuffled again. Rendering costs about in proportion to
/// the instances shuffled (`draws` from the RNG, about one per instance) and to the bytes
/// written, so a costly answer is kept longer and re-shuffling stays a small,
/// size-independent share of the hits.
pub(super) fn refresh_after(len: usize, draws: u32) -> u32 {
    let blocks = u32::try_from(len / 256).unwrap_or(u32::MAX);
    REFRESH_USES.saturating_mul(blocks.max(draws / 8).max(1))
}

/// Renderings a shuffled entry may have from the start (so even a rarely asked name gets
/// more than one order).
pub(super) const MIN_VARIANTS: usize = 2;
/// Requests per further rendering, up to `VARIANTS`.
pub(super) const USES_PER_VARIANT: u32 = 32;
/// Longest request the cache keys on; longer ones take the full path every time.
pub(super) const MAX_KEY: usize = 512;
/// Bytes of keys and responses one cache may hold before it empties itself.
pub(super) const MAX_BYTES: usize = 32 << 20;
/// RR type of SOA.
const SOA: u16 = 6;

/// One rendering of a response.
pub(super) struct Variant {
    /// The entry's key, then the response: a hit reads one allocation (the key compare
    /// brings in the first bytes of the reply).
    pub(super) bytes: Vec<u8>,
    pub(super) uses: u32,
    /// Uses before it is rendered again (`refresh_after`).
    pub(super) refresh: u32,
    /// The SOA serial written in `bytes`, and where.
    pub(super) serial: u32,
    pub(super) serial_at: Vec<usize>,
}

/// One request key and the renderings of its reply.
pub(super) struct Entry {
    /// Length of the key at the front of every variant's bytes.
    pub(super) key_len: usize,
    /// The first rendering, inline, so a hit on an entry with one follows one pointer.
    pub(super) first: Variant,
    /// Further renderings of a shuffled answer.
    pub(super) more: Vec<Variant>,
    /// Whether rendering used the RNG and the variants carry the order (it is off when
    /// `permute` does the shuffling).
    pub(super) shuffled: bool,
    /// Where a hit shuffles the one stored rendering itself.
    pub(super) permute: Option<Permute>,
    /// The snapshot index the variants are known to be current for.
    pub(super) checked_at: u64,
    /// Requests for this key since it was (re)rendered.
    pub(super) uses: u32,
    /// What the answer read, with the versions it saw; `None`: anything may matter.
    pub(super) deps: Option<Vec<Dep>>,
}

impl Entry {
    /// The request bytes this entry answers (transport, then the request after its ID).
    pub(super) fn key(&self) -> &[u8] {
        self.first.bytes.get(..self.key_len).unwrap_or_default()
    }

    /// Rendering `i` (0: `first`).
    pub(super) fn variant_mut(&mut self, i: usize) -> Option<&mut Variant> {
        match i {
            0 => Some(&mut self.first),
            _ => self.more.get_mut(i - 1),
        }
    }

    /// Bytes held, keys and an SRV layout included.
    pub(super) fn size(&self) -> usize {
        self.first.bytes.len()
            + self.more.iter().map(|v| v.bytes.len()).sum::<usize>()
            + self.permute.as_ref().map_or(0, Permute::heap_bytes)
    }
}

/// Writes the request's ID and, if it moved on, the current SOA serial into a stored reply.
pub(super) fn finish(out: &mut [u8], id: &[u8], serial: u32, v: &Variant) {
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
