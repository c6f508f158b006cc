//! The pure open-addressing table.  It knows nothing of Emacs: keys are
//! described by a 64-bit `meta` word (a kind tag and a hash) and a 64-bit
//! `payload`, and key comparison beyond that is the caller's job (see
//! `RawTable::next_candidate`).
//!
//! Layout (as in Emacs itself, CPython's dict and indexmap):
//! - `entries`: a dense array in iteration order.  A removed entry becomes a
//!   free slot on a LIFO free list, which the next insertion reuses; with the
//!   free list empty, insertions append.  This reproduces the built-in
//!   iteration order exactly.
//! - `index`: a power-of-two array of `u32` slot words, probed linearly from
//!   the key's hash.  `Slot::EMPTY` ends a probe; `Slot::TOMB` marks a removed
//!   entry's slot and lets probes continue past it; a live word holds 8 bits
//!   of its key's hash above a 24-bit entry number, so a probe looks at an
//!   entry only when the tag matches (a miss rarely touches the entry array,
//!   a hit costs one index line and one entry line).  Tables that outgrow 24
//!   bits switch to whole-word entry numbers without tags (`wide`).
//!
//! Invariants:
//! - every live entry is referenced by exactly one index slot, reachable from
//!   `hash & mask` without crossing an `EMPTY` slot;
//! - `live + tombs < index.len()` (at least one `EMPTY` slot, so probes end);
//!   rebuilds keep `live + tombs <= 3/4` of the index and `tombs <= 1/8`;
//! - small indexes (`SHIFT_MAX`) have no tombstones: removals shift the rest
//!   of the probe run back instead;
//! - a rebuild sizes the index from `live` alone, so tombstones never make the
//!   index grow: under insert/remove churn its size stays bounded by the
//!   largest live count (with tombstones counted as load, it would grow
//!   without limit).

use std::collections::TryReserveError;
use std::fmt;

/// End of the free list.
const EMPTY: u32 = u32::MAX;
const IDX_BITS: u32 = 24;
const IDX_MASK: u32 = (1 << IDX_BITS) - 1;
/// Largest entry count whose entry numbers fit beside a tag.
const TAGGED_MAX: usize = (1 << IDX_BITS) - 2;
/// Largest number of entries the `u32` index can address.
pub const MAX_ENTRIES: usize = (u32::MAX - 2) as usize;
const MIN_INDEX: usize = 8;
/// Largest index whose removals shift the rest of the probe run back
/// instead of leaving a tombstone.  A shift reads the hash of each entry it
/// moves: cheap while the entries are in cache, a cache miss per entry in
/// big tables (churn at 10^3 entries: 1.7x faster with shifts; at 10^4
/// 1.2x slower, at 10^6 1.9x slower; BENCHMARKS.md).
const SHIFT_MAX: usize = 4096;

/// The slot tag of a key: 8 hash bits above those that choose the home slot
/// in any index below 2^53 slots.
#[inline]
fn tag_of(meta: u64) -> u32 {
    ((meta >> 53) & 0xff) as u32
}

/// An index slot word: `EMPTY`, `TOMB`, or a live entry's number, with the
/// key's tag above it in tagged mode (24-bit entry numbers) or alone in
/// wide mode.  Live words never equal `EMPTY` or `TOMB`: in tagged mode their
/// low 24 bits are an entry number <= `TAGGED_MAX`; in wide mode entry
/// numbers stay below `MAX_ENTRIES`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(transparent)]
struct Slot(u32);

impl Slot {
    const EMPTY: Slot = Slot(u32::MAX);
    const TOMB: Slot = Slot(u32::MAX - 1);

    /// The word of entry `i` whose key has `meta`.
    #[inline]
    fn live(meta: u64, i: u32, wide: bool) -> Slot {
        Slot(if wide { i } else { (tag_of(meta) << IDX_BITS) | i })
    }

    #[inline]
    fn is_live(self) -> bool {
        self.0 < Slot::TOMB.0
    }

    /// The entry number of a live word.
    #[inline]
    fn entry(self, wide: bool) -> usize {
        if wide {
            self.0 as usize
        } else {
            (self.0 & IDX_MASK) as usize
        }
    }

    /// The tag of a live word (tagged mode).
    #[inline]
    fn tag(self) -> u32 {
        self.0 >> IDX_BITS
    }
}

/// Kind tags live in the top 3 bits of `meta`; the low 61 bits are the hash.
pub const KIND_SHIFT: u32 = 61;
pub const HASH_MASK: u64 = (1 << KIND_SHIFT) - 1;
/// The kind of a free entry.  Live entries use kinds 1..=7, chosen by the caller.
pub const KIND_FREE: u64 = 0;

/// Build a `meta` word from a caller kind (1..=7) and a full hash.
#[inline]
pub fn meta(kind: u64, hash: u64) -> u64 {
    debug_assert!(kind != KIND_FREE && kind < 8);
    (kind << KIND_SHIFT) | (hash & HASH_MASK)
}

#[inline]
pub fn meta_kind(meta: u64) -> u64 {
    meta >> KIND_SHIFT
}

/// One entry: `meta` (kind + hash, cached so rebuilds never rehash keys) and a
/// caller payload (for free entries: the next free entry, or `EMPTY`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub meta: u64,
    pub payload: u64,
}

impl Entry {
    #[inline]
    pub fn is_live(&self) -> bool {
        meta_kind(self.meta) != KIND_FREE
    }
}

/// Allocation failure (or a size the index cannot address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocError;

impl From<TryReserveError> for AllocError {
    fn from(_: TryReserveError) -> Self {
        AllocError
    }
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("memory exhausted")
    }
}

#[derive(Debug)]
pub struct RawTable {
    entries: Vec<Entry>,
    index: Vec<Slot>,
    /// Slot words are plain entry numbers (no tag): the table has, or had,
    /// more entries than `tag_limit`.
    wide: bool,
    tag_limit: usize,
    /// Removals shift (no tombstones) while `index.len() <= shift_max`.
    shift_max: usize,
    free_head: u32,
    live: usize,
    tombs: usize,
}

/// Probe position for `RawTable::next_candidate`.
#[derive(Clone, Copy, Debug)]
pub struct Probe {
    pos: usize,
    meta: u64,
    tag: u32,
}

impl Default for RawTable {
    fn default() -> Self {
        Self::new()
    }
}

impl RawTable {
    pub fn new() -> Self {
        RawTable {
            entries: Vec::new(),
            index: Vec::new(),
            wide: false,
            tag_limit: TAGGED_MAX,
            shift_max: SHIFT_MAX,
            free_head: EMPTY,
            live: 0,
            tombs: 0,
        }
    }

    /// A table that leaves tagged mode after `limit` entries (tests exercise
    /// the switch without 16M entries).
    #[cfg(test)]
    fn with_tag_limit(limit: usize) -> Self {
        RawTable { tag_limit: limit, ..Self::new() }
    }

    /// A table whose removals shift up to this index size (tests run both
    /// removal strategies at every size).
    #[cfg(test)]
    fn with_shift_max(shift_max: usize) -> Self {
        RawTable { shift_max, ..Self::new() }
    }

    /// A table that can take `n` entries without reallocating.
    pub fn with_capacity(n: usize) -> Result<Self, AllocError> {
        let mut t = Self::new();
        if n > 0 {
            t.reserve_entries(n)?;
            t.rebuild_index(index_size_for(n)?)?;
        }
        Ok(t)
    }

    /// Number of live entries.
    #[inline]
    pub fn len(&self) -> usize {
        self.live
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Upper bound of entry numbers (live or free): iterate `0..slots()`.
    #[inline]
    pub fn slots(&self) -> usize {
        self.entries.len()
    }

    /// How many entries fit before the entry array reallocates (>= len).
    pub fn capacity(&self) -> usize {
        self.entries.capacity().max(self.live)
    }

    /// Size of the probe index (for tests of boundedness).
    pub fn index_len(&self) -> usize {
        self.index.len()
    }

    pub fn tombstones(&self) -> usize {
        self.tombs
    }

    /// The payload of entry `i` (a candidate from `next_candidate`).
    #[inline]
    pub fn payload(&self, i: usize) -> u64 {
        self.entries[i].payload
    }

    /// Start a probe for keys with this `meta`.
    #[inline]
    pub fn probe(&self, meta: u64) -> Probe {
        Probe { pos: (meta & HASH_MASK) as usize, meta, tag: tag_of(meta) }
    }

    /// The next entry whose `meta` equals the probe's, in probe order; `None`
    /// when an `EMPTY` slot ends the probe.  The caller compares keys for real:
    /// equal `meta` never means equal keys.  The table must not change between
    /// calls on one `Probe`.
    #[inline]
    pub fn next_candidate(&self, p: &mut Probe) -> Option<usize> {
        if self.index.is_empty() {
            return None;
        }
        let mask = self.index.len() - 1;
        loop {
            let pos = p.pos & mask;
            let w = self.index[pos];
            p.pos = pos + 1;
            if w == Slot::EMPTY {
                return None;
            }
            if w == Slot::TOMB {
                continue;
            }
            let i = if self.wide {
                w.entry(true)
            } else if w.tag() == p.tag {
                w.entry(false)
            } else {
                continue;
            };
            if self.entries[i].meta == p.meta {
                return Some(i);
            }
        }
    }

    /// The index slot of the candidate `next_candidate` just returned.
    #[inline]
    pub fn last_slot(&self, p: &Probe) -> usize {
        p.pos.wrapping_sub(1) & (self.index.len().max(1) - 1)
    }

    /// The entry number in a live slot word.
    #[inline]
    fn entry_of(&self, w: Slot) -> usize {
        w.entry(self.wide)
    }

    /// The home slot of a key with this `meta` (the index is not empty).
    #[inline]
    fn home(&self, meta: u64) -> usize {
        (meta & HASH_MASK) as usize & (self.index.len() - 1)
    }

    /// The entry number and index slot of the first candidate for which
    /// `same(entry number)` holds: a lookup for callers whose key comparison
    /// cannot fail (number keys in the module, the Rust tests and benchmark;
    /// keys compared through Lisp drive `next_candidate` themselves).
    #[inline]
    pub fn find(&self, meta: u64, mut same: impl FnMut(usize) -> bool) -> Option<(usize, usize)> {
        let mut p = self.probe(meta);
        while let Some(i) = self.next_candidate(&mut p) {
            if same(i) {
                return Some((i, self.last_slot(&p)));
            }
        }
        None
    }

    /// Make room for `additional` more live entries at once (entries and
    /// index), so that a run of insertions grows each at most once.
    pub fn reserve(&mut self, additional: usize) -> Result<(), AllocError> {
        let free = self.entries.len() - self.live;
        self.reserve_entries(additional.saturating_sub(free))?;
        let want = self.live.saturating_add(additional);
        if want.saturating_add(self.tombs) * 4 > self.index.len() * 3 {
            self.rebuild_index(index_size_for(want)?)?;
        }
        Ok(())
    }

    /// Make sure one more insertion cannot fail for lack of memory.
    #[inline]
    pub fn reserve_one(&mut self) -> Result<(), AllocError> {
        // The common case in a few compares: a free entry or spare capacity
        // for a new one, and an index below both limits of `reserve_one_slow`.
        let n = self.index.len();
        let fresh = self.free_head == EMPTY;
        if (!fresh || (self.entries.len() < self.entries.capacity().min(MAX_ENTRIES) && (self.wide || self.entries.len() < self.tag_limit)))
            && self.live + self.tombs < n - n / 4
            && self.tombs <= n / 8
        {
            return Ok(());
        }
        self.reserve_one_slow()
    }

    /// `reserve_one` when entries or index may need to grow or be rebuilt.
    #[inline(never)]
    fn reserve_one_slow(&mut self) -> Result<(), AllocError> {
        if self.free_head == EMPTY {
            if self.entries.len() >= MAX_ENTRIES {
                return Err(AllocError);
            }
            self.reserve_entries(1)?;
            if !self.wide && self.entries.len() >= self.tag_limit {
                // The next entry number would not fit beside a tag.
                let size = self.index.len();
                self.wide = true;
                if let Err(e) = self.rebuild_index(size) {
                    self.wide = false;
                    return Err(e);
                }
            }
        }
        // Tombstones lengthen every probe that crosses them: clear them out
        // once they fill 1/8 of the index (churn at 10^5-10^6 entries:
        // 1.4-1.5x faster than letting them reach the 3/4 load limit).
        if (self.live + self.tombs + 1) * 4 > self.index.len() * 3 || self.tombs * 8 > self.index.len() {
            self.rebuild_index(index_size_for(self.live + 1)?)?;
        }
        Ok(())
    }

    /// The entry number the next `insert` will use.
    #[inline]
    pub fn next_insert_slot(&self) -> usize {
        if self.free_head != EMPTY {
            self.free_head as usize
        } else {
            self.entries.len()
        }
    }

    /// Insert a key known to be absent; returns its entry number (a reused free
    /// slot, last freed first, or a new one at the end).
    pub fn insert(&mut self, meta: u64, payload: u64) -> Result<usize, AllocError> {
        debug_assert!(meta_kind(meta) != KIND_FREE);
        self.reserve_one()?;
        let i = if self.free_head != EMPTY {
            let i = self.free_head as usize;
            self.free_head = self.entries[i].payload as u32;
            self.entries[i] = Entry { meta, payload };
            i
        } else {
            // `reserve_one` reserved room, so this push does not reallocate.
            self.entries.push(Entry { meta, payload });
            self.entries.len() - 1
        };
        self.place(meta, i as u32);
        self.live += 1;
        Ok(i)
    }


    /// Remove live entry `i`; its slot goes on top of the free list.
    pub fn remove(&mut self, i: usize) {
        let e = self.entries[i];
        debug_assert!(e.is_live());
        let mask = self.index.len() - 1;
        let mut pos = self.home(e.meta);
        loop {
            let w = self.index[pos];
            // Invariant: live entries are reachable from their home slot.
            debug_assert!(w != Slot::EMPTY);
            if w != Slot::TOMB && self.entry_of(w) == i {
                break;
            }
            pos = (pos + 1) & mask;
        }
        self.remove_at(pos, i);
    }

    /// Remove live entry `i`, found by a probe at index slot `pos`
    /// (`last_slot`), without probing again.
    pub fn remove_at(&mut self, pos: usize, i: usize) {
        let mask = self.index.len() - 1;
        debug_assert!(self.index[pos].is_live() && self.entry_of(self.index[pos]) == i);
        if self.index.len() <= self.shift_max {
            self.shift_back(pos);
        } else if self.index[(pos + 1) & mask] == Slot::EMPTY {
            // No probe continues past this slot, so it (and the tombstones
            // just before it) can become EMPTY again.
            self.index[pos] = Slot::EMPTY;
            let mut back = pos.wrapping_sub(1) & mask;
            while self.index[back] == Slot::TOMB {
                self.index[back] = Slot::EMPTY;
                self.tombs -= 1;
                back = back.wrapping_sub(1) & mask;
            }
        } else {
            self.index[pos] = Slot::TOMB;
            self.tombs += 1;
        }
        self.entries[i] = Entry { meta: KIND_FREE, payload: self.free_head as u64 };
        self.free_head = i as u32;
        self.live -= 1;
    }

    /// Empty slot `pos` by moving back, into the hole, each later word of the
    /// probe run whose home is not cyclically in (hole, word's slot]
    /// (Knuth's algorithm R): afterwards every key is still reachable from
    /// its home without crossing an empty slot, and no tombstone is left.
    fn shift_back(&mut self, pos: usize) {
        let mask = self.index.len() - 1;
        let mut hole = pos;
        let mut j = pos;
        loop {
            j = (j + 1) & mask;
            let w = self.index[j];
            if w == Slot::EMPTY {
                break;
            }
            if w == Slot::TOMB {
                // (Unreachable today: tombstones come only from indexes above
                // `shift_max`, indexes never shrink, and rebuilds drop them.)
                continue;
            }
            let home = self.home(self.entries[self.entry_of(w)].meta);
            if j.wrapping_sub(home) & mask >= j.wrapping_sub(hole) & mask {
                self.index[hole] = w;
                hole = j;
            }
        }
        self.index[hole] = Slot::EMPTY;
    }

    /// Remove everything; iteration restarts in insertion order.  Memory is
    /// kept (as `clrhash` keeps the table's size).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.index.iter_mut().for_each(|w| *w = Slot::EMPTY);
        self.free_head = EMPTY;
        self.live = 0;
        self.tombs = 0;
    }

    /// An exact copy: same entries, same free list, so the same order now and
    /// after future insertions.
    pub fn try_clone(&self) -> Result<Self, AllocError> {
        let mut entries = Vec::new();
        entries.try_reserve_exact(self.entries.len())?;
        entries.extend_from_slice(&self.entries);
        let mut index = Vec::new();
        index.try_reserve_exact(self.index.len())?;
        index.extend_from_slice(&self.index);
        Ok(RawTable {
            entries,
            index,
            wide: self.wide,
            tag_limit: self.tag_limit,
            shift_max: self.shift_max,
            free_head: self.free_head,
            live: self.live,
            tombs: self.tombs,
        })
    }

    /// Live entries in iteration order, with their entry numbers.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &Entry)> {
        self.entries.iter().enumerate().filter(|(_, e)| e.is_live())
    }

    #[cfg(test)]
    /// The free list, top first (for tests).
    pub fn free_list(&self) -> Vec<usize> {
        let mut out = Vec::new();
        let mut f = self.free_head;
        while f != EMPTY {
            out.push(f as usize);
            f = self.entries[f as usize].payload as u32;
        }
        out
    }

    fn reserve_entries(&mut self, extra: usize) -> Result<(), AllocError> {
        if self.entries.len().saturating_add(extra) > MAX_ENTRIES {
            return Err(AllocError);
        }
        if self.entries.capacity() - self.entries.len() < extra {
            // `grown_len`'s doubling, but the exact need if that fails.
            let want = grown_len(self.entries.len(), self.entries.len() + extra, 0) - self.entries.len();
            if self.entries.try_reserve_exact(want).is_err() {
                self.entries.try_reserve_exact(extra)?;
            }
        }
        Ok(())
    }

    /// Put entry `i` into the first non-live slot of its probe sequence.
    #[inline]
    fn place(&mut self, meta: u64, i: u32) {
        let mask = self.index.len() - 1;
        let mut pos = self.home(meta);
        loop {
            match self.index[pos] {
                Slot::EMPTY => break,
                Slot::TOMB => {
                    self.tombs -= 1;
                    break;
                }
                _ => pos = (pos + 1) & mask,
            }
        }
        self.index[pos] = Slot::live(meta, i, self.wide);
    }

    /// Re-create the index with `size` slots, dropping all tombstones.
    fn rebuild_index(&mut self, size: usize) -> Result<(), AllocError> {
        let mut index = Vec::new();
        index.try_reserve_exact(size)?;
        index.resize(size, Slot::EMPTY);
        self.index = index;
        self.tombs = 0;
        for i in 0..self.entries.len() {
            let m = self.entries[i].meta;
            if meta_kind(m) != KIND_FREE {
                self.place(m, i as u32);
            }
        }
        Ok(())
    }
}

// ---- Compaction and probe statistics (`rhash-compact`, `rhash-stats`) ----

impl RawTable {
    /// Live entry `i` (`None` for a free entry or one past the end).
    #[inline]
    pub fn entry(&self, i: usize) -> Option<Entry> {
        self.entries.get(i).copied().filter(Entry::is_live)
    }

    /// A copy holding only the live entries, in iteration order, with no
    /// free list, no tombstones and the smallest index and entry array that
    /// hold them; and, for each of its entries, the entry number it had here.
    pub fn compacted(&self) -> Result<(RawTable, Vec<usize>), AllocError> {
        let n = self.live;
        let mut t = RawTable { tag_limit: self.tag_limit, shift_max: self.shift_max, ..Self::new() };
        let mut from = Vec::new();
        from.try_reserve_exact(n)?;
        if n > 0 {
            t.entries.try_reserve_exact(n)?;
            t.rebuild_index(index_size_for(n)?)?;
        }
        for (i, e) in self.iter() {
            t.insert(e.meta, e.payload)?;
            from.push(i);
        }
        Ok((t, from))
    }

    /// Probe lengths of the live entries: the longest, and their sum (a
    /// probe that finds its entry in the home slot has length 1).
    pub fn probe_lengths(&self) -> (usize, usize) {
        let mask = self.index.len().wrapping_sub(1);
        let (mut max, mut sum) = (0, 0);
        for (pos, &w) in self.index.iter().enumerate() {
            if !w.is_live() {
                continue;
            }
            let home = self.home(self.entries[self.entry_of(w)].meta);
            let len = (pos.wrapping_sub(home) & mask) + 1;
            max = max.max(len);
            sum += len;
        }
        (max, sum)
    }

    /// Bytes of Rust heap memory the table holds (entry array and index,
    /// by capacity).
    pub fn heap_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<Entry>() + self.index.capacity() * std::mem::size_of::<Slot>()
    }
}

// ---- Growth policy: the entry array, the index and a table's storage ----

/// How many places an array that must hold `need` should have, given its
/// current `len` and a size hint: doubling, at least 8.  The entry array
/// grows by it, and so does a table's storage (`store`), whose places
/// match the entries one to one.  Doubling, not 4x: `rhash-map` walks the
/// whole storage, so a small table would cross up to 3/4 empty places on
/// every walk.
pub fn grown_len(len: usize, need: usize, hint: usize) -> usize {
    need.max(len.saturating_mul(2)).max(hint.min(1 << 20)).max(8)
}

/// Index size for `n` live entries: a power of two with load <= 1/2 after a
/// rebuild (linear probing degrades quickly above ~3/4).
fn index_size_for(n: usize) -> Result<usize, AllocError> {
    if n > MAX_ENTRIES {
        return Err(AllocError);
    }
    n.checked_mul(2).and_then(|m| m.max(MIN_INDEX).checked_next_power_of_two()).ok_or(AllocError)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::hash_u64;
    use proptest::prelude::*;

    /// The model: a list of (key, value) in slot order plus a LIFO free list,
    /// which is how Emacs's own tables order their entries.
    #[derive(Default)]
    struct Model {
        slots: Vec<Option<(u64, u64)>>,
        free: Vec<usize>,
    }

    impl Model {
        fn get(&self, k: u64) -> Option<u64> {
            self.slots.iter().flatten().find(|(kk, _)| *kk == k).map(|(_, v)| *v)
        }
        fn put(&mut self, k: u64, v: u64) {
            if let Some(s) = self.slots.iter_mut().flatten().find(|(kk, _)| *kk == k) {
                s.1 = v;
            } else if let Some(i) = self.free.pop() {
                self.slots[i] = Some((k, v));
            } else {
                self.slots.push(Some((k, v)));
            }
        }
        fn remove(&mut self, k: u64) {
            if let Some(i) = self.slots.iter().position(|s| matches!(s, Some((kk, _)) if *kk == k)) {
                self.slots[i] = None;
                self.free.push(i);
            }
        }
        fn clear(&mut self) {
            if self.slots.iter().any(|s| s.is_some()) {
                self.slots.clear();
                self.free.clear();
            }
        }
        fn order(&self) -> Vec<(u64, u64)> {
            self.slots.iter().flatten().copied().collect()
        }
    }

    /// A tiny map over RawTable: key in the payload's high half is not needed;
    /// keys live in a side vector indexed by entry number, as Lisp keys do.
    struct Map {
        t: RawTable,
        keys: Vec<u64>,
        vals: Vec<u64>,
        hash: fn(u64) -> u64,
    }

    impl Map {
        fn new(hash: fn(u64) -> u64) -> Self {
            Map { t: RawTable::new(), keys: vec![], vals: vec![], hash }
        }
        fn with_tag_limit(hash: fn(u64) -> u64, limit: usize) -> Self {
            Map { t: RawTable::with_tag_limit(limit), keys: vec![], vals: vec![], hash }
        }
        fn with_shift_max(hash: fn(u64) -> u64, shift_max: usize) -> Self {
            Map { t: RawTable::with_shift_max(shift_max), keys: vec![], vals: vec![], hash }
        }
        fn meta(&self, k: u64) -> u64 {
            meta(1, (self.hash)(k))
        }
        fn find(&self, k: u64) -> Option<usize> {
            self.t.find(self.meta(k), |i| self.keys[i] == k).map(|(i, _)| i)
        }
        fn get(&self, k: u64) -> Option<u64> {
            self.find(k).map(|i| self.vals[i])
        }
        fn put(&mut self, k: u64, v: u64) {
            match self.find(k) {
                Some(i) => self.vals[i] = v,
                None => {
                    let i = self.t.insert(self.meta(k), 0).unwrap();
                    if i == self.keys.len() {
                        self.keys.push(k);
                        self.vals.push(v);
                    } else {
                        self.keys[i] = k;
                        self.vals[i] = v;
                    }
                }
            }
        }
        /// Even keys are removed at the slot their lookup found, odd keys by
        /// entry number, so both paths run in every test.
        fn remove(&mut self, k: u64) {
            let found = self.t.find(self.meta(k), |i| self.keys[i] == k);
            match found {
                Some((i, slot)) if k.is_multiple_of(2) => self.t.remove_at(slot, i),
                Some((i, _)) => self.t.remove(i),
                None => {}
            }
        }
        fn clear(&mut self) {
            if !self.t.is_empty() {
                self.t.clear();
                self.keys.clear();
                self.vals.clear();
            }
        }
        fn order(&self) -> Vec<(u64, u64)> {
            self.t.iter().map(|(i, _)| (self.keys[i], self.vals[i])).collect()
        }
        fn check_invariants(&self) {
            let t = &self.t;
            assert!(t.live + t.tombs < t.index.len().max(1));
            assert_eq!(t.iter().count(), t.len());
            let in_index = t.index.iter().filter(|w| w.is_live()).count();
            assert_eq!(in_index, t.len());
            assert_eq!(t.index.iter().filter(|&&w| w == Slot::TOMB).count(), t.tombs);
            assert_eq!(t.free_list().len() + t.len(), t.slots());
            for (i, _) in t.iter() {
                assert_eq!(self.find(self.keys[i]), Some(i));
            }
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Put(u64, u64),
        Get(u64),
        Remove(u64),
        Clear,
    }

    fn ops(keyspace: u64) -> impl Strategy<Value = Vec<Op>> {
        prop::collection::vec(
            prop_oneof![
                6 => (0..keyspace, any::<u64>()).prop_map(|(k, v)| Op::Put(k, v)),
                3 => (0..keyspace).prop_map(Op::Get),
                5 => (0..keyspace).prop_map(Op::Remove),
                1 => Just(Op::Clear),
            ],
            0..400,
        )
    }

    /// Each run twice: removals that shift, and removals that leave
    /// tombstones.
    fn run(ops: &[Op], hash: fn(u64) -> u64) {
        run_map(ops, Map::with_shift_max(hash, usize::MAX));
        run_map(ops, Map::with_shift_max(hash, 0));
    }

    fn run_map(ops: &[Op], mut m: Map) {
        let mut model = Model::default();
        for (n, op) in ops.iter().enumerate() {
            match *op {
                Op::Put(k, v) => {
                    m.put(k, v);
                    model.put(k, v)
                }
                Op::Get(k) => assert_eq!(m.get(k), model.get(k), "op {n}"),
                Op::Remove(k) => {
                    m.remove(k);
                    model.remove(k)
                }
                Op::Clear => {
                    m.clear();
                    model.clear()
                }
            }
            assert_eq!(m.order(), model.order(), "order after op {n}: {op:?}");
        }
        m.check_invariants();
        assert_eq!(m.t.free_list(), model.free.iter().rev().copied().collect::<Vec<_>>());
    }

    fn good_hash(k: u64) -> u64 {
        hash_u64(k, 0)
    }
    /// Forces collisions: every key shares one of four hashes.
    fn colliding_hash(k: u64) -> u64 {
        k % 4
    }
    fn constant_hash(_: u64) -> u64 {
        42
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("RHASH_PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(256)))]
        #[test]
        fn matches_model(ops in ops(64)) { run(&ops, good_hash) }
        #[test]
        fn matches_model_with_collisions(ops in ops(32)) { run(&ops, colliding_hash) }
        #[test]
        fn matches_model_with_one_hash(ops in ops(16)) { run(&ops, constant_hash) }
        /// Tables that stop shifting on removal as they grow.
        #[test]
        fn matches_model_across_shift_limit(ops in ops(64), shift_max in 8usize..64) {
            run_map(&ops, Map::with_shift_max(good_hash, shift_max))
        }
        /// Tables that switch from tagged to wide slot words mid-run.
        #[test]
        fn matches_model_across_wide_switch(ops in ops(64), limit in 1usize..40) {
            run_map(&ops, Map::with_tag_limit(good_hash, limit))
        }
    }

    #[test]
    fn equal_hash_is_not_equal_key() {
        let mut m = Map::new(constant_hash);
        m.put(1, 10);
        m.put(2, 20);
        assert_eq!(m.get(1), Some(10));
        assert_eq!(m.get(2), Some(20));
        assert_eq!(m.t.len(), 2);
    }

    #[test]
    fn order_is_insertion_with_lifo_reuse() {
        let mut m = Map::new(good_hash);
        for k in [5, 3, 9, 1, 7, 2, 8] {
            m.put(k, k);
        }
        m.remove(9);
        m.put(100, 100);
        let keys: Vec<u64> = m.order().iter().map(|p| p.0).collect();
        assert_eq!(keys, vec![5, 3, 100, 1, 7, 2, 8]);
        m.remove(3);
        m.remove(7);
        m.put(50, 0);
        m.put(60, 0);
        m.put(70, 0);
        let keys: Vec<u64> = m.order().iter().map(|p| p.0).collect();
        assert_eq!(keys, vec![5, 60, 100, 1, 50, 2, 8, 70]);
    }

    #[test]
    fn churn_keeps_capacity_bounded() {
        for shift_max in [usize::MAX, 0] {
            churn_bounded(Map::with_shift_max(good_hash, shift_max));
        }
    }

    fn churn_bounded(mut m: Map) {
        for k in 0..100 {
            m.put(k, k);
        }
        let mut max_index = 0;
        for k in 100..300_000u64 {
            m.put(k, k);
            m.remove(k - 100);
            max_index = max_index.max(m.t.index_len());
        }
        assert_eq!(m.t.len(), 100);
        assert!(m.t.slots() <= 101, "entries grew to {}", m.t.slots());
        assert!(max_index <= 256, "index grew to {max_index}");
        m.check_invariants();
    }

    #[test]
    fn random_churn_with_collisions_stays_bounded() {
        for shift_max in [usize::MAX, 0] {
            random_churn_bounded(Map::with_shift_max(colliding_hash, shift_max));
        }
    }

    fn random_churn_bounded(mut m: Map) {
        let mut x = 0x1234_5678u64;
        for _ in 0..50_000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let k = (x >> 33) % 200;
            if x & 1 == 0 { m.put(k, x) } else { m.remove(k) }
        }
        assert!(m.t.index_len() <= 512);
        m.check_invariants();
    }

    #[test]
    fn wide_switch_keeps_every_key() {
        let mut m = Map::with_tag_limit(good_hash, 5);
        for k in 0..100 {
            m.put(k, k * 10);
        }
        assert!(m.t.wide);
        for k in (0..100).step_by(3) {
            m.remove(k);
        }
        for k in 0..100 {
            assert_eq!(m.get(k), if k % 3 == 0 { None } else { Some(k * 10) });
        }
        m.check_invariants();
    }

    #[test]
    fn clone_keeps_order_and_free_list() {
        let mut m = Map::new(good_hash);
        for k in 0..20 {
            m.put(k, k);
        }
        for k in [3, 11, 7] {
            m.remove(k);
        }
        let c = m.t.try_clone().unwrap();
        assert_eq!(c.free_list(), vec![7, 11, 3]);
        assert_eq!(c.iter().map(|(i, _)| i).collect::<Vec<_>>(), m.t.iter().map(|(i, _)| i).collect::<Vec<_>>());
    }

    /// Shifting removals leave no tombstones, so churn never rebuilds.
    #[test]
    fn shifting_removals_leave_no_tombstones() {
        let mut m = Map::new(colliding_hash);
        for k in 0..500 {
            m.put(k, k);
        }
        let size = m.t.index_len();
        for k in 500..20_000u64 {
            m.put(k, k);
            m.remove(k - 500);
            assert_eq!(m.t.tombstones(), 0);
        }
        assert_eq!(m.t.index_len(), size);
        m.check_invariants();
    }

    #[test]
    fn huge_requests_fail_cleanly() {
        assert_eq!(RawTable::with_capacity(usize::MAX).err(), Some(AllocError));
        assert_eq!(RawTable::with_capacity(MAX_ENTRIES + 1).err(), Some(AllocError));
        assert_eq!(index_size_for(usize::MAX / 2 + 1), Err(AllocError));
        let t = RawTable::with_capacity(100).unwrap();
        assert!(t.capacity() >= 100 && t.index_len() >= 200);
    }

    // ---- Compaction and probe statistics ----

    fn compact_case(mut m: Map, n: u64, keep_every: u64) {
        for k in 0..n {
            m.put(k, k * 7);
        }
        for k in 0..n {
            if k % keep_every != 0 {
                m.remove(k);
            }
        }
        // A few re-inserted keys land in freed places: order is not sorted.
        for k in [n + 1, n + 2, n + 3] {
            m.put(k, k);
        }
        let before = m.order();
        let (c, from) = m.t.compacted().unwrap();
        assert_eq!(from, m.t.iter().map(|(i, _)| i).collect::<Vec<_>>());
        let keys: Vec<u64> = from.iter().map(|&i| m.keys[i]).collect();
        let vals: Vec<u64> = from.iter().map(|&i| m.vals[i]).collect();
        let cm = Map { t: c, keys, vals, hash: m.hash };
        assert_eq!(cm.order(), before);
        assert_eq!(cm.t.slots(), cm.t.len());
        assert!(cm.t.free_list().is_empty());
        assert_eq!(cm.t.tombstones(), 0);
        assert_eq!(cm.t.index_len(), index_size_for(cm.t.len()).unwrap());
        assert_eq!(cm.t.capacity(), cm.t.len());
        cm.check_invariants();
        assert!(cm.t.heap_bytes() <= m.t.heap_bytes());
    }

    #[test]
    fn compaction_keeps_order_and_drops_free_places() {
        for (n, every) in [(0, 1), (1, 1), (10, 3), (1000, 7), (20_000, 1000), (5000, 1)] {
            compact_case(Map::with_shift_max(good_hash, usize::MAX), n, every);
            compact_case(Map::with_shift_max(good_hash, 0), n, every);
            compact_case(Map::with_shift_max(colliding_hash, 0), n.min(500), every);
            compact_case(Map::with_tag_limit(good_hash, 5), n.min(500), every);
        }
    }

    #[test]
    fn compaction_of_a_compacted_table_changes_nothing() {
        let mut m = Map::new(good_hash);
        for k in 0..100 {
            m.put(k, k);
        }
        let (c, from) = m.t.compacted().unwrap();
        assert_eq!(from, (0..100).collect::<Vec<_>>());
        let (c2, _) = c.compacted().unwrap();
        assert_eq!(c2.index_len(), c.index_len());
        assert_eq!(c2.iter().map(|(_, e)| *e).collect::<Vec<_>>(), c.iter().map(|(_, e)| *e).collect::<Vec<_>>());
        let empty = RawTable::new().compacted().unwrap().0;
        assert_eq!((empty.len(), empty.index_len(), empty.heap_bytes()), (0, 0, 0));
    }

    #[test]
    fn probe_lengths_count_from_the_home_slot() {
        assert_eq!(RawTable::new().probe_lengths(), (0, 0));
        // One hash for all: the i-th key sits i slots past the home slot.
        let mut m = Map::new(constant_hash);
        for k in 0..10 {
            m.put(k, k);
        }
        assert_eq!(m.t.probe_lengths(), (10, 55));
        // Distinct home slots in a big index: every probe has length 1.
        let mut m = Map::new(|k| k);
        for k in 0..10 {
            m.put(k, k);
        }
        assert_eq!(m.t.probe_lengths(), (1, 10));
        // Wide slot words count the same way.
        let mut m = Map::with_tag_limit(constant_hash, 3);
        for k in 0..6 {
            m.put(k, k);
        }
        assert!(m.t.wide);
        assert_eq!(m.t.probe_lengths(), (6, 21));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Compaction after any history keeps the order and every lookup.
        #[test]
        fn compaction_matches_model(ops in ops(64), shift in prop::bool::ANY) {
            let mut m = Map::with_shift_max(colliding_hash, if shift { usize::MAX } else { 0 });
            for op in &ops {
                match *op {
                    Op::Put(k, v) => m.put(k, v),
                    Op::Remove(k) => m.remove(k),
                    Op::Clear => m.clear(),
                    Op::Get(_) => {}
                }
            }
            let before = m.order();
            let (c, from) = m.t.compacted().unwrap();
            let keys: Vec<u64> = from.iter().map(|&i| m.keys[i]).collect();
            let vals: Vec<u64> = from.iter().map(|&i| m.vals[i]).collect();
            let mut cm = Map { t: c, keys, vals, hash: m.hash };
            prop_assert_eq!(cm.order(), before.clone());
            cm.check_invariants();
            let (max, sum) = cm.t.probe_lengths();
            prop_assert!(max <= cm.t.len() && sum >= cm.t.len() && sum <= max * cm.t.len());
            // New keys append after compaction.
            cm.put(1000, 1);
            prop_assert_eq!(cm.order().last().copied(), Some((1000, 1)));
        }
    }
}
