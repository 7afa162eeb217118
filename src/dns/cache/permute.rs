//! Answer cache, wire-byte permutation: reorders the records of one stored rendering in
//! place, so a hit on a shuffled answer costs a copy and a Fisher-Yates pass, not a render.
//!
//! Input: the rendered reply (once, to find its `Permute` layout); on a hit, a copy of it
//! and the loop's RNG. Output: the copy with its answers (and, for SRV, their groups of
//! additional records) in a uniformly random order.
//!
//! Invariants: a layout is only made for replies where every order gives exactly the bytes
//! the full path renders for that order (same length, every pointer 2 bytes, nothing outside
//! the moving part pointing into it); a hit allocates nothing (`Scratch` is reused); a
//! malformed layout leaves the reply as rendered, never half moved.

use rand::{Rng, RngExt};

use super::super::encode::u16_at;

/// RR types of A, AAAA and OPT.
const A: usize = 1;
const AAAA: usize = 28;
const OPT: usize = 41;

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
pub(super) struct Scratch {
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
    pub(super) fn heap_bytes(&self) -> usize {
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
    pub(super) fn shuffle(&self, msg: &mut [u8], rng: &mut impl Rng, scratch: &mut Scratch) {
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

/// The offset just past a (possibly compressed) name starting at `pos`.
pub(super) fn skip_name(msg: &[u8], mut pos: usize) -> Option<usize> {
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
