//! A native table's entries, without Emacs: the pure `RawTable` (entries,
//! index, cached hashes, free list) over a `NativeStore` (the encodings).
//! Keys are found by their encoding's hash and `plain::equal`; nothing here
//! calls Lisp, so a lookup or an insertion is one step that cannot be
//! interrupted.
//!
//! Invariant: entry `i` of `raw` is live exactly when slot `i` of `store`
//! is, and then its `meta` is `meta_of(store.key(i))`.

use crate::native::NativeStore;
use crate::plain;
use crate::table::{self, AllocError, RawTable};

/// The kind tag of every native entry (the pure table reserves 0 for free).
const KIND: u64 = 1;

/// The pure table's `meta` word of an encoded key.
#[inline]
pub fn meta_of(key: &[u8]) -> u64 {
    table::meta(KIND, plain::hash(key))
}

#[derive(Debug, Default)]
pub struct NativeCore {
    raw: RawTable,
    store: NativeStore,
}

impl NativeCore {
    pub fn with_capacity(n: usize) -> Result<NativeCore, AllocError> {
        Ok(NativeCore { raw: RawTable::with_capacity(n)?, store: NativeStore::with_capacity(n, 0)? })
    }

    pub fn raw(&self) -> &RawTable {
        &self.raw
    }

    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// The entry holding `key` (an encoding), if any.
    #[inline]
    pub fn find(&self, key: &[u8]) -> Option<usize> {
        self.find_meta(meta_of(key), key).map(|(i, _)| i)
    }

    #[inline]
    fn find_meta(&self, meta: u64, key: &[u8]) -> Option<(usize, usize)> {
        self.raw.find(meta, |i| plain::equal(self.store.key(i), key))
    }

    pub fn key(&self, i: usize) -> &[u8] {
        self.store.key(i)
    }

    pub fn value(&self, i: usize) -> &[u8] {
        self.store.value(i)
    }

    /// Whether entry `i` is live.
    pub fn is_live(&self, i: usize) -> bool {
        self.raw.entry(i).is_some_and(|e| e.is_live())
    }

    /// Associate `key` with `value` (encodings); an existing key keeps its
    /// entry (and its own key bytes).  Returns the entry and whether it is
    /// new.  On `Err` the table is unchanged.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(usize, bool), AllocError> {
        let meta = meta_of(key);
        if let Some((i, _)) = self.find_meta(meta, key) {
            self.store.set_value(i, value)?;
            return Ok((i, false));
        }
        self.raw.reserve_one()?;
        let i = self.raw.next_insert_slot();
        self.store.set(i, key, value)?;
        match self.raw.insert(meta, 0) {
            Ok(j) => {
                debug_assert_eq!(i, j);
                Ok((i, true))
            }
            Err(e) => {
                self.store.remove(i);
                Err(e)
            }
        }
    }

    /// Replace live entry `i`'s value.
    pub fn set_value(&mut self, i: usize, value: &[u8]) -> Result<(), AllocError> {
        self.store.set_value(i, value)
    }

    /// Remove `key`; whether it was there.
    pub fn remove(&mut self, key: &[u8]) -> bool {
        match self.find_meta(meta_of(key), key) {
            Some((i, pos)) => {
                self.raw.remove_at(pos, i);
                self.store.remove(i);
                true
            }
            None => false,
        }
    }

    /// Remove live entry `i`.
    pub fn remove_entry(&mut self, i: usize) {
        self.raw.remove(i);
        self.store.remove(i);
    }

    pub fn clear(&mut self) {
        self.raw.clear();
        self.store.clear();
    }

    pub fn try_clone(&self) -> Result<NativeCore, AllocError> {
        let mut store = NativeStore::with_capacity(self.store.len(), self.store.live_bytes())?;
        for (i, _) in self.raw.iter() {
            store.set(i, self.store.key(i), self.store.value(i))?;
        }
        Ok(NativeCore { raw: self.raw.try_clone()?, store })
    }

    /// Drop removed entries' places: live entries renumbered in order.
    pub fn compact(&mut self) -> Result<(), AllocError> {
        let (raw, order) = self.raw.compacted()?;
        self.store.compact(&order)?;
        self.raw = raw;
        Ok(())
    }

    /// Live entries in iteration order.
    pub fn entries(&self) -> impl Iterator<Item = usize> + '_ {
        self.raw.iter().map(|(i, _)| i)
    }

    /// One past the last entry number in use.
    pub fn slots(&self) -> usize {
        self.raw.slots()
    }

    /// Memory held outside the Lisp heap, data included.
    pub fn bytes(&self) -> usize {
        self.raw.heap_bytes() + self.store.bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plain::Encoder;
    use std::collections::HashMap;

    fn s(text: &str) -> Vec<u8> {
        let mut v = Vec::new();
        Encoder::new(&mut v).string(text.as_bytes(), false);
        v
    }

    #[test]
    fn put_get_remove_against_a_model() {
        let mut t = NativeCore::default();
        let mut model: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        let mut x: u64 = 12345;
        for step in 0..20000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = s(&format!("key-{}", x % 500));
            let v = s(&format!("value-{step}"));
            match x % 5 {
                0 => {
                    assert_eq!(t.remove(&k), model.remove(&k).is_some());
                }
                1 if step % 997 == 0 => {
                    t.compact().unwrap();
                }
                _ => {
                    let (_, new) = t.put(&k, &v).unwrap();
                    assert_eq!(new, model.insert(k.clone(), v.clone()).is_none());
                }
            }
            assert_eq!(t.len(), model.len());
        }
        for (k, v) in &model {
            let i = t.find(k).expect("present");
            assert_eq!(t.value(i), &v[..]);
            assert_eq!(t.key(i), &k[..]);
        }
        let c = t.try_clone().unwrap();
        assert_eq!(c.entries().collect::<Vec<_>>(), t.entries().collect::<Vec<_>>());
    }

    #[test]
    fn ascii_multibyte_finds_unibyte() {
        let mut t = NativeCore::default();
        let mut uni = Vec::new();
        Encoder::new(&mut uni).string(b"abc", false);
        let mut multi = Vec::new();
        Encoder::new(&mut multi).string(b"abc", true);
        t.put(&uni, &uni).unwrap();
        let i = t.find(&multi).expect("equal strings");
        // The first key is kept.
        t.put(&multi, &multi).unwrap();
        assert_eq!(t.key(i), &uni[..]);
        assert_eq!(t.value(i), &multi[..]);
        assert_eq!(t.len(), 1);
    }
}
