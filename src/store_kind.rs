//! `Store`, the storage a table holds: Lisp vectors (`storage::LispStorage`)
//! or native memory (`native_storage::NativeStorage`), chosen by the
//! table's test when it is made (decision 9).  It implements `Storage` by
//! dispatching each method once, so `store` is written once for both; the
//! few Lisp-storage operations without a native counterpart (the vectors'
//! installation and copies) answer for native storage here too.

use crate::direct::Obj;
use crate::error;
use crate::ffi::{LResult, Lx};
use crate::keys::{Key, Lookup, Plan, Spec, Stored, Test};
use crate::native_storage::NativeStorage;
use crate::storage::{LispStorage, Quick, Slots, Storage};
use crate::table::RawTable;
use emacs::raw::emacs_value;

/// A table's storage: Lisp vectors or native memory, chosen by the test
/// when the table is made (`for_test`).  Each `Storage` method dispatches
/// here, once per call, so `store` is written once for both (decision 8).
pub enum Store {
    Lisp(LispStorage),
    Native(NativeStorage),
}

impl Default for Store {
    fn default() -> Store {
        Store::Lisp(LispStorage::default())
    }
}

impl Store {
    /// Empty storage of the kind `test` asks for.
    pub fn for_test(test: &Test) -> Store {
        match test {
            Test::Native(rule) => Store::Native(NativeStorage::new(*rule)),
            _ => Store::default(),
        }
    }

    /// The native storage, if this is one.
    #[inline(always)]
    pub fn native(&self) -> Option<&NativeStorage> {
        match self {
            Store::Native(n) => Some(n),
            Store::Lisp(_) => None,
        }
    }

    /// The direct path's view of Lisp storage (native: `None`).
    #[inline(always)]
    pub fn quick(&self) -> Option<Quick> {
        match self {
            Store::Lisp(s) => s.quick(),
            Store::Native(_) => None,
        }
    }

    /// Whether Lisp storage has vectors yet (native storage always exists).
    #[inline]
    pub fn exists(&self) -> bool {
        match self {
            Store::Lisp(s) => s.exists(),
            Store::Native(_) => true,
        }
    }

    /// `[KEYS VALS]` of Lisp storage (native: none).
    #[inline]
    pub fn columns(&self) -> Option<[emacs_value; 2]> {
        match self {
            Store::Lisp(s) => s.columns(),
            Store::Native(_) => None,
        }
    }

    /// The `[KEYS VALS]` cell of Lisp storage (native: none).
    #[inline]
    pub fn cell(&self) -> Option<emacs_value> {
        match self {
            Store::Lisp(s) => s.cell(),
            Store::Native(_) => None,
        }
    }

    /// `LispStorage::install`; native storage never installs vectors.
    pub fn install(&mut self, lx: Lx, keys: emacs_value, vals: emacs_value, len: usize, cell: Option<emacs_value>) -> LResult<Store> {
        match self {
            Store::Lisp(s) => s.install(lx, keys, vals, len, cell).map(Store::Lisp),
            Store::Native(_) => Err(error::internal(lx, "vectors for native storage")),
        }
    }

    /// `LispStorage::copy_prefix` (native storage has no vectors to copy).
    pub fn copy_prefix(&self, lx: Lx, cols: [bool; 2], dst: [emacs_value; 2], n: usize) -> LResult<()> {
        match self {
            Store::Lisp(s) => s.copy_prefix(lx, cols, dst, n),
            Store::Native(_) => Ok(()),
        }
    }

    /// `LispStorage::copy_entries`: native storage's entries are copied
    /// by its own builders.
    pub fn copy_entries(&self, lx: Lx, pairs: impl Iterator<Item = (usize, usize)>, dst: &[Slots; 2]) -> LResult<()> {
        match self {
            Store::Lisp(s) => s.copy_entries(lx, pairs, dst),
            Store::Native(_) => Err(error::internal(lx, "native entries into vectors")),
        }
    }
}

impl Storage for Store {
    #[inline(always)]
    fn classify_quick(plan: Plan, key: emacs_value) -> Option<Key> {
        match plan {
            Plan::Native(rule) => NativeStorage::classify_quick(rule, key),
            _ => LispStorage::classify_quick(plan, key),
        }
    }

    #[inline(always)]
    fn is_quick(key: &Key) -> bool {
        LispStorage::is_quick(key)
    }

    #[inline]
    fn classify(lx: Lx, plan: Plan, key: emacs_value, spec: &Spec) -> LResult<Lookup> {
        match plan {
            Plan::Native(rule) => NativeStorage::classify(lx, rule, key),
            _ => LispStorage::classify(lx, plan, key, spec),
        }
    }

    #[inline(always)]
    fn find_quick(&self, raw: &RawTable, key: &Key) -> Option<Option<(usize, usize)>> {
        match self {
            Store::Lisp(s) => s.find_quick(raw, key),
            Store::Native(n) => Some(n.find_classified(raw, key)),
        }
    }

    #[inline]
    fn find_classified(&self, raw: &RawTable, key: &Key) -> Option<Option<(usize, usize)>> {
        match self {
            Store::Lisp(_) => None,
            Store::Native(n) => Some(n.find_classified(raw, key)),
        }
    }

    fn stored(&self, i: usize) -> Option<Stored> {
        match self {
            Store::Lisp(s) => s.stored(i),
            Store::Native(_) => None,
        }
    }

    #[inline(always)]
    fn room(&self) -> usize {
        match self {
            Store::Lisp(s) => s.room(),
            Store::Native(n) => n.room(),
        }
    }

    fn capacity(&self, raw: &RawTable) -> usize {
        match self {
            Store::Lisp(s) => s.capacity(raw),
            Store::Native(n) => n.capacity(raw),
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Store::Lisp(s) => s.heap_bytes(),
            Store::Native(n) => n.heap_bytes(),
        }
    }

    #[inline(always)]
    fn key(&self, lx: Lx, i: usize) -> LResult<emacs_value> {
        match self {
            Store::Lisp(s) => s.key(lx, i),
            Store::Native(n) => n.key(lx, i),
        }
    }

    #[inline(always)]
    fn value(&self, lx: Lx, i: usize) -> LResult<emacs_value> {
        match self {
            Store::Lisp(s) => s.value(lx, i),
            Store::Native(n) => n.value(lx, i),
        }
    }

    #[inline(always)]
    fn value_to(&self, lx: Lx, i: usize, out: emacs_value) -> LResult<emacs_value> {
        match self {
            Store::Lisp(s) => s.value_to(lx, i, out),
            Store::Native(n) => n.value_to(lx, i, out),
        }
    }

    #[inline(always)]
    fn value_obj(&self, i: usize) -> Option<Obj> {
        match self {
            Store::Lisp(s) => s.value_obj(i),
            Store::Native(n) => n.value_obj(i),
        }
    }

    #[inline(always)]
    fn entry_to(&self, lx: Lx, i: usize, boxes: [emacs_value; 2]) -> LResult<[emacs_value; 2]> {
        match self {
            Store::Lisp(s) => s.entry_to(lx, i, boxes),
            Store::Native(n) => Ok([n.key(lx, i)?, n.value(lx, i)?]),
        }
    }

    #[inline(always)]
    fn admit(&self, lx: Lx, key: &Key, value: emacs_value) -> LResult<()> {
        match self {
            Store::Lisp(_) => Ok(()),
            Store::Native(n) => n.admit(lx, key, value),
        }
    }

    #[inline(always)]
    fn set(&self, lx: Lx, i: usize, key: emacs_value, value: emacs_value) -> LResult<()> {
        match self {
            Store::Lisp(s) => s.set(lx, i, key, value),
            Store::Native(n) => n.set(lx, i),
        }
    }

    #[inline(always)]
    fn set_value(&self, lx: Lx, i: usize, value: emacs_value) -> LResult<()> {
        match self {
            Store::Lisp(s) => s.set_value(lx, i, value),
            Store::Native(n) => n.set_value(lx, i, value),
        }
    }

    fn free(&self, lx: Lx, i: usize) -> LResult<()> {
        match self {
            Store::Lisp(s) => s.free(lx, i),
            Store::Native(n) => {
                n.free(i);
                Ok(())
            }
        }
    }

    fn clear(&self, lx: Lx, n: usize) -> LResult<()> {
        match self {
            Store::Lisp(s) => s.clear(lx, n),
            Store::Native(ns) => {
                ns.clear();
                Ok(())
            }
        }
    }

    fn lisp_walk(&self) -> bool {
        match self {
            Store::Lisp(s) => s.lisp_walk(),
            Store::Native(_) => false,
        }
    }
}
