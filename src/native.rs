//! The memory of a native table's keys and values (pure Rust, no Emacs
//! types): their plain-data encodings, numbered by the pure table's entry
//! numbers.
//!
//! Layout: an arena of byte chunks and one `u64` locator per entry slot.
//! An entry's record is its key's encoding immediately followed by its
//! value's, within one chunk; the encodings are self-delimiting, so the
//! locator (chunk index << 32 | position in the chunk) is all an entry
//! needs: 8 bytes per entry, no per-entry allocation.
//!
//! Chunks are allocated at their final size and never reallocated: they
//! grow geometrically from `MIN_CHUNK` up to `MAX_CHUNK`, then stay at
//! that size; a record larger than `MAX_CHUNK / 4` gets a chunk of its own.
//! So a growing store never copies its data nor leaves a freed
//! half-size block behind in the process (as a doubling `Vec` would), and
//! the memory it holds is what it wrote plus less than one chunk.
//!
//! A removed entry's record, a replaced value that did not fit in place,
//! and the slack a shorter value leaves are garbage.  The live bytes are
//! counted; when the garbage exceeds `live / 4` plus a byte per slot (and
//! `MIN_GARBAGE`), the live records are copied, in entry order, into a new
//! arena.  Entry numbers never change except through `compact`.  Every
//! allocation is fallible; a failed operation changes nothing.
//!
//! Invariant: for a live slot `i`, the arena at `offs[i]` starts with one
//! validated key encoding followed by one validated value encoding, and
//! `live` is the sum of their lengths over the live slots.

use crate::plain;
use crate::table::AllocError;

/// A free (never set, or removed) slot's locator.
const FREE: u64 = u64::MAX;
/// Garbage below this many bytes is never worth a rebuild.
const MIN_GARBAGE: usize = 16 << 10;
const MIN_CHUNK: usize = 256;
const MAX_CHUNK: usize = 1 << 20;
/// A record's position in its chunk is 32 bits.
const MAX_RECORD: usize = u32::MAX as usize;

/// Chunks of bytes, each filled up to its capacity and never reallocated.
#[derive(Debug, Default)]
struct Arena {
    chunks: Vec<Vec<u8>>,
    /// The chunk small records go to.
    cur: Option<usize>,
    /// Bytes written (live or garbage).
    used: usize,
    /// The chunks' capacities.
    capacity: usize,
}

impl Arena {
    /// An arena whose first chunk holds `bytes` bytes.
    fn with_first(bytes: usize) -> Result<Self, AllocError> {
        let mut a = Arena::default();
        if bytes > 0 {
            a.cur = Some(a.add_chunk(bytes.min(MAX_RECORD))?);
        }
        Ok(a)
    }

    fn add_chunk(&mut self, size: usize) -> Result<usize, AllocError> {
        self.chunks.try_reserve(1)?;
        let mut c = Vec::new();
        c.try_reserve_exact(size)?;
        self.chunks.push(c);
        self.capacity += size;
        Ok(self.chunks.len() - 1)
    }

    /// The chunk where a record of `n` bytes goes: once this succeeds,
    /// `n` bytes pushed to that chunk do not reallocate it.
    fn room(&mut self, n: usize) -> Result<usize, AllocError> {
        if let Some(c) = self.cur {
            let chunk = &self.chunks[c];
            if chunk.capacity() - chunk.len() >= n {
                return Ok(c);
            }
        }
        if n > MAX_RECORD {
            return Err(AllocError);
        }
        if n > MAX_CHUNK / 4 {
            return self.add_chunk(n);
        }
        let c = self.add_chunk(self.capacity.clamp(MIN_CHUNK, MAX_CHUNK).max(n))?;
        self.cur = Some(c);
        Ok(c)
    }

    /// The bytes from locator `loc` to the end of its chunk's data.
    #[inline]
    fn at(&self, loc: u64) -> &[u8] {
        &self.chunks[(loc >> 32) as usize][loc as u32 as usize..]
    }

    /// Append `parts` as one record; its locator.
    fn append(&mut self, parts: [&[u8]; 2]) -> Result<u64, AllocError> {
        let n = parts[0].len() + parts[1].len();
        let c = self.room(n)?;
        let chunk = &mut self.chunks[c];
        let loc = (c as u64) << 32 | chunk.len() as u64;
        let cap = chunk.capacity();
        chunk.extend_from_slice(parts[0]);
        chunk.extend_from_slice(parts[1]);
        debug_assert_eq!(chunk.capacity(), cap, "a chunk was reallocated");
        self.used += n;
        Ok(loc)
    }

    fn bytes(&self) -> usize {
        self.capacity + self.chunks.capacity() * std::mem::size_of::<Vec<u8>>()
    }
}

#[derive(Debug, Default)]
pub struct NativeStore {
    arena: Arena,
    offs: Vec<u64>,
    live: usize,
}

impl NativeStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Room for `entries` slots and `bytes` bytes of encodings (in one
    /// chunk: loading a file gives the exact size).
    pub fn with_capacity(entries: usize, bytes: usize) -> Result<Self, AllocError> {
        let mut offs = Vec::new();
        offs.try_reserve_exact(entries)?;
        Ok(NativeStore { arena: Arena::with_first(bytes)?, offs, live: 0 })
    }

    /// The number of entry slots (live or free).
    pub fn len(&self) -> usize {
        self.offs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.offs.is_empty()
    }

    /// Whether slot `entry` holds an entry.
    pub fn is_live(&self, entry: usize) -> bool {
        self.offs.get(entry).is_some_and(|&o| o != FREE)
    }

    /// All heap memory held, in bytes (capacities).
    pub fn bytes(&self) -> usize {
        self.arena.bytes() + self.offs.capacity() * std::mem::size_of::<u64>()
    }

    /// The bytes of live keys and values.
    pub fn live_bytes(&self) -> usize {
        self.live
    }

    /// Bytes written to the arena that no live record uses.
    pub fn garbage(&self) -> usize {
        self.arena.used - self.live
    }

    /// The record of live slot `entry` and the lengths of its key and value.
    #[inline]
    fn record(&self, entry: usize) -> (&[u8], usize, usize) {
        let loc = self.offs[entry];
        assert!(loc != FREE, "NativeStore: slot {entry} is free");
        let rec = self.arena.at(loc);
        let k = plain::value_len(rec);
        (rec, k, plain::value_len(&rec[k..]))
    }

    /// The key's encoding then the value's, of live slot `entry`, as one
    /// slice (panics on a free slot): what a file holds for the entry.
    #[inline]
    pub fn entry_bytes(&self, entry: usize) -> &[u8] {
        let (rec, k, v) = self.record(entry);
        &rec[..k + v]
    }

    /// The key of live slot `entry` (panics on a free slot).
    #[inline]
    pub fn key(&self, entry: usize) -> &[u8] {
        let loc = self.offs[entry];
        assert!(loc != FREE, "NativeStore: slot {entry} is free");
        let rec = self.arena.at(loc);
        &rec[..plain::value_len(rec)]
    }

    /// The value of live slot `entry` (panics on a free slot).
    #[inline]
    pub fn value(&self, entry: usize) -> &[u8] {
        let (rec, k, v) = self.record(entry);
        &rec[k..k + v]
    }

    /// The bytes of live slot `entry` from its key's first: the key's
    /// encoding, then the value's, then whatever follows in the arena
    /// (panics on a free slot).  For readers that stop at the end of one
    /// value by themselves (`plain::starts_with_atom`, `plain::int_of`),
    /// without measuring the record first.
    #[inline]
    pub fn key_onward(&self, entry: usize) -> &[u8] {
        let loc = self.offs[entry];
        assert!(loc != FREE, "NativeStore: slot {entry} is free");
        self.arena.at(loc)
    }

    /// As `key_onward`, from the value's first byte.
    #[inline]
    pub fn value_onward(&self, entry: usize) -> &[u8] {
        let rec = self.key_onward(entry);
        &rec[plain::value_len(rec)..]
    }

    /// Set slot `entry` (at most `len()`: an existing slot, live or free, or
    /// a new one at the end) to `key` and `value`, each one encoding.
    pub fn set(&mut self, entry: usize, key: &[u8], value: &[u8]) -> Result<(), AllocError> {
        assert!(entry <= self.offs.len(), "NativeStore: slot {entry} beyond the end");
        let old = if self.is_live(entry) {
            let (_, k, v) = self.record(entry);
            k + v
        } else {
            0
        };
        if entry == self.offs.len() {
            self.offs.try_reserve(1)?;
        }
        let loc = self.arena.append([key, value])?;
        if entry == self.offs.len() {
            self.offs.push(loc);
        } else {
            self.offs[entry] = loc;
        }
        self.live = self.live - old + key.len() + value.len();
        self.maybe_collect();
        Ok(())
    }

    /// Replace the value of live slot `entry`: in place when it fits, else
    /// the record moves to a new place.
    pub fn set_value(&mut self, entry: usize, value: &[u8]) -> Result<(), AllocError> {
        let loc = self.offs[entry];
        let (_, k, v) = self.record(entry);
        if value.len() <= v {
            let (c, p) = ((loc >> 32) as usize, loc as u32 as usize);
            // The slack after a shorter value stays written: garbage.
            self.arena.chunks[c][p + k..p + k + value.len()].copy_from_slice(value);
        } else {
            let n = k + value.len();
            let c = self.arena.room(n)?;
            let (src, p) = ((loc >> 32) as usize, loc as u32 as usize);
            let chunks = &mut self.arena.chunks;
            let at = chunks[c].len();
            // `room` made space for n bytes: no reallocation below.
            if src == c {
                chunks[c].extend_from_within(p..p + k);
            } else {
                let (lo, hi) = chunks.split_at_mut(src.max(c));
                let (from, to) = if src < c { (&lo[src], &mut hi[0]) } else { (&hi[0], &mut lo[c]) };
                to.extend_from_slice(&from[p..p + k]);
            }
            chunks[c].extend_from_slice(value);
            self.arena.used += n;
            self.offs[entry] = (c as u64) << 32 | at as u64;
        }
        self.live = self.live - v + value.len();
        self.maybe_collect();
        Ok(())
    }

    /// Free slot `entry` (its bytes become garbage).
    pub fn remove(&mut self, entry: usize) {
        if self.is_live(entry) {
            let (_, k, v) = self.record(entry);
            self.live -= k + v;
            self.offs[entry] = FREE;
            self.maybe_collect();
        }
    }

    /// Drop every entry and give the memory back.
    pub fn clear(&mut self) {
        *self = Self::new();
    }

    /// Renumber: new slot `i` holds what old slot `live_in_order[i]` held
    /// (each a live slot); the other slots and all garbage go.
    pub fn compact(&mut self, live_in_order: &[usize]) -> Result<(), AllocError> {
        let mut offs = Vec::new();
        offs.try_reserve_exact(live_in_order.len())?;
        let need = live_in_order
            .iter()
            .map(|&i| {
                let (_, k, v) = self.record(i);
                k + v
            })
            .sum();
        let mut arena = Arena::with_first(need)?;
        for &i in live_in_order {
            let (rec, k, v) = self.record(i);
            offs.push(arena.append([&rec[..k + v], &[]])?);
        }
        *self = NativeStore { arena, offs, live: need };
        Ok(())
    }

    /// Copy the live records into a new arena when the garbage exceeds
    /// `live / 4 + slots` bytes: a rebuild costs O(live bytes + slots) and
    /// follows at least that many bytes of garbage, each garbage byte
    /// written once, so the cost is amortized O(1) per byte written.  A
    /// rebuild that cannot allocate is skipped (tried at the next change).
    fn maybe_collect(&mut self) {
        if self.garbage() <= MIN_GARBAGE.max(self.live / 4 + self.offs.len()) {
            return;
        }
        // Headroom for the appends until the next rebuild.
        let Ok(mut arena) = Arena::with_first(self.live + self.live / 4) else {
            return;
        };
        let mut offs = Vec::new();
        if offs.try_reserve_exact(self.offs.len()).is_err() {
            return;
        }
        for (i, &loc) in self.offs.iter().enumerate() {
            offs.push(if loc == FREE {
                FREE
            } else {
                let (rec, k, v) = self.record(i);
                // The first chunk holds every live record.
                match arena.append([&rec[..k + v], &[]]) {
                    Ok(l) => l,
                    Err(_) => return,
                }
            });
        }
        self.arena = arena;
        self.offs = offs;
    }
}

#[cfg(test)]
mod tests;
