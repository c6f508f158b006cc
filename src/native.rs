//! The memory of a native table's keys and values (pure Rust, no Emacs
//! types): their plain-data encodings, numbered by the pure table's entry
//! numbers.
//!
//! Layout: one arena of bytes and one offset per entry slot.  An entry's
//! record is its key's encoding immediately followed by its value's; the
//! encodings are self-delimiting, so the offset is all an entry needs (8
//! bytes per entry, no per-entry allocation).  A removed entry's record, a
//! replaced value that did not fit in place, and the slack a shorter value
//! leaves are garbage: the live bytes are counted, and when the garbage
//! exceeds a quarter of them plus a byte per slot (and at least
//! `MIN_GARBAGE`), the arena is rebuilt with
//! the live records only, in entry order.  Entry numbers never change
//! except through `compact`.  Every allocation is fallible.
//!
//! Invariant: for a live slot `i`, `arena[offs[i]..]` starts with one
//! validated key encoding followed by one validated value encoding, and
//! `live` is the sum of their lengths over the live slots.

use crate::plain;
use crate::table::AllocError;

/// A free (never set, or removed) slot's offset.
const FREE: u64 = u64::MAX;
/// Garbage below this many bytes is never worth a rebuild.
const MIN_GARBAGE: usize = 16 << 10;

#[derive(Debug, Default)]
pub struct NativeStore {
    arena: Vec<u8>,
    offs: Vec<u64>,
    live: usize,
}

impl NativeStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Room for `entries` slots and `bytes` bytes of encodings.
    pub fn with_capacity(entries: usize, bytes: usize) -> Result<Self, AllocError> {
        let mut s = Self::new();
        s.offs.try_reserve_exact(entries)?;
        s.arena.try_reserve_exact(bytes)?;
        Ok(s)
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
        self.arena.capacity() + self.offs.capacity() * std::mem::size_of::<u64>()
    }

    /// The bytes of live keys and values.
    pub fn live_bytes(&self) -> usize {
        self.live
    }

    /// (start, end of key, end of value) of live slot `entry`.
    #[inline]
    fn spans(&self, entry: usize) -> (usize, usize, usize) {
        let off = self.offs[entry];
        assert!(off != FREE, "NativeStore: slot {entry} is free");
        let start = off as usize;
        let k = start + plain::value_len(&self.arena[start..]);
        let v = k + plain::value_len(&self.arena[k..]);
        (start, k, v)
    }

    /// The key of live slot `entry` (panics on a free slot).
    #[inline]
    pub fn key(&self, entry: usize) -> &[u8] {
        let (s, k, _) = self.spans(entry);
        &self.arena[s..k]
    }

    /// The value of live slot `entry` (panics on a free slot).
    #[inline]
    pub fn value(&self, entry: usize) -> &[u8] {
        let (_, k, v) = self.spans(entry);
        &self.arena[k..v]
    }

    /// Set slot `entry` (at most `len()`: an existing slot, live or free, or
    /// a new one at the end) to `key` and `value`, each one encoding.  On
    /// error nothing changed.
    pub fn set(&mut self, entry: usize, key: &[u8], value: &[u8]) -> Result<(), AllocError> {
        assert!(entry <= self.offs.len(), "NativeStore: slot {entry} beyond the end");
        let old = if self.is_live(entry) {
            let (s, _, v) = self.spans(entry);
            v - s
        } else {
            0
        };
        if entry == self.offs.len() {
            self.offs.try_reserve(1)?;
        }
        let off = self.append(key, value)?;
        if entry == self.offs.len() {
            self.offs.push(off);
        } else {
            self.offs[entry] = off;
        }
        self.live = self.live - old + key.len() + value.len();
        self.maybe_collect();
        Ok(())
    }

    /// Replace the value of live slot `entry`: in place when it fits, else
    /// the record moves to the end.  On error nothing changed.
    pub fn set_value(&mut self, entry: usize, value: &[u8]) -> Result<(), AllocError> {
        let (s, k, v) = self.spans(entry);
        if value.len() <= v - k {
            self.arena[k..k + value.len()].copy_from_slice(value);
        } else {
            self.arena.try_reserve(k - s + value.len())?;
            let off = self.arena.len() as u64;
            self.arena.extend_from_within(s..k);
            self.arena.extend_from_slice(value);
            self.offs[entry] = off;
        }
        self.live = self.live - (v - k) + value.len();
        self.maybe_collect();
        Ok(())
    }

    /// Free slot `entry` (its bytes become garbage).
    pub fn remove(&mut self, entry: usize) {
        if self.is_live(entry) {
            let (s, _, v) = self.spans(entry);
            self.live -= v - s;
            self.offs[entry] = FREE;
            self.maybe_collect();
        }
    }

    /// Drop every entry and give the memory back.
    pub fn clear(&mut self) {
        *self = Self::new();
    }

    /// Renumber: new slot `i` holds what old slot `live_in_order[i]` held
    /// (each a live slot); the other slots and all garbage go.  On error
    /// nothing changed.
    pub fn compact(&mut self, live_in_order: &[usize]) -> Result<(), AllocError> {
        let mut offs = Vec::new();
        offs.try_reserve_exact(live_in_order.len())?;
        let mut arena = Vec::new();
        let need: usize = live_in_order
            .iter()
            .map(|&i| {
                let (s, _, v) = self.spans(i);
                v - s
            })
            .sum();
        arena.try_reserve_exact(need)?;
        for &i in live_in_order {
            let (s, _, v) = self.spans(i);
            offs.push(arena.len() as u64);
            arena.extend_from_slice(&self.arena[s..v]);
        }
        *self = NativeStore { arena, offs, live: need };
        Ok(())
    }

    /// Bytes of the arena that no live record uses.
    pub fn garbage(&self) -> usize {
        self.arena.len() - self.live
    }

    /// Append a record; its offset.
    fn append(&mut self, key: &[u8], value: &[u8]) -> Result<u64, AllocError> {
        self.arena.try_reserve(key.len() + value.len())?;
        let off = self.arena.len() as u64;
        self.arena.extend_from_slice(key);
        self.arena.extend_from_slice(value);
        Ok(off)
    }

    /// Rebuild the arena with the live records when garbage exceeds
    /// `live / 4 + slots` bytes: a rebuild costs O(live bytes + slots) and
    /// follows at least that many bytes of garbage, each operation making
    /// at most its own size of it, so the cost is amortized O(1) per byte
    /// written.  A rebuild that cannot allocate is skipped (tried again at
    /// the next change).
    fn maybe_collect(&mut self) {
        if self.garbage() <= MIN_GARBAGE.max(self.live / 4 + self.offs.len()) {
            return;
        }
        let mut arena = Vec::new();
        // Headroom for the appends until the next rebuild.
        if arena.try_reserve_exact(self.live + self.live / 4).is_err() {
            return;
        }
        for i in 0..self.offs.len() {
            if self.offs[i] != FREE {
                let (s, _, v) = self.spans(i);
                self.offs[i] = arena.len() as u64;
                arena.extend_from_slice(&self.arena[s..v]);
            }
        }
        self.arena = arena;
    }
}

#[cfg(test)]
mod tests;
