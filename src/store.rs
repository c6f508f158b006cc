//! A table's state: the pure `RawTable` plus the Lisp storage of its keys
//! and values.  The only module that changes a table.
//!
//! Keys and values live in two Lisp vectors, `keys[i]`/`vals[i]` for entry i,
//! free slots holding a private marker (`hole`).  The table holds one global
//! reference per vector, so storing an entry costs two slot stores instead of
//! two global references (measured in docs/design.md).  The vectors are also
//! shared with Lisp as a cons `(KEYS . VALS)`, updated in place when they
//! are reallocated, so `rhash-map` walks them from byte-code.
//!
//! Invariants (stated once, kept by the methods of this module alone):
//! - `storage` is `None` until the first insertion; then both vectors are
//!   `storage.len >= raw.slots()` long and slot i holds entry i's key and
//!   value, or `hole` in both for a free entry;
//! - the cell's car and cdr are the vectors `storage` references;
//! - no Rust borrow is held while Lisp can run.  While an operation calls
//!   into Lisp (hash functions, predicates, allocation, which may GC and run
//!   `post-gc-hook`), the table is *busy*: modifying it in that window gets
//!   `(error "hash table test modifies table" TABLE)`, as a built-in table
//!   does while its user test runs.  Reads stay allowed.

use crate::cache;
use crate::direct::{self, Obj};
use crate::error;
use crate::ffi::{Gref, LResult, Lx};
use crate::globals::g;
use crate::keys::{self, Key, Lookup, Spec, Stored, Test};
use crate::release;
use crate::table::RawTable;
use emacs::raw::emacs_value;
use std::cell::{Cell, RefCell};
use std::ffi::c_void;

/// The Lisp side of a table: its two vectors and the cell that shares them.
struct Storage {
    /// `[KEYS, VALS, CELL]`; `None` only while dropping.
    refs: Option<[Gref; 3]>,
    /// The vectors' objects, on the direct path.
    kobj: Option<Obj>,
    vobj: Option<Obj>,
    /// Length of both vectors.
    len: usize,
}

impl Drop for Storage {
    // Runs in the GC finalizer: only queue the references.
    fn drop(&mut self) {
        release::defer(self.refs.take().into_iter().flatten());
    }
}

impl Storage {
    #[inline]
    fn keys(&self) -> emacs_value {
        self.refs.as_ref().map_or(g().nil(), |r| r[0].v())
    }
    #[inline]
    fn vals(&self) -> emacs_value {
        self.refs.as_ref().map_or(g().nil(), |r| r[1].v())
    }
    #[inline]
    fn cell(&self) -> emacs_value {
        self.refs.as_ref().map_or(g().nil(), |r| r[2].v())
    }
}

/// A table's mutable state (its test, which never changes, is in `Handle`).
pub struct Table {
    raw: RawTable,
    storage: Option<Storage>,
    /// Size hint for the first vector allocation.
    hint: usize,
}

impl Table {
    fn new(hint: usize) -> Result<Table, crate::table::AllocError> {
        // Reserve the Rust side up front so a huge :size fails here, cleanly.
        let raw = RawTable::with_capacity(hint)?;
        Ok(Table { raw, storage: None, hint })
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Capacity as `hash-table-size` reports it: entries storable before the
    /// next reallocation (always >= count).
    pub fn size(&self) -> usize {
        self.vlen().max(self.raw.len())
    }

    #[inline]
    fn vlen(&self) -> usize {
        self.storage.as_ref().map_or(0, |s| s.len)
    }

    /// `(SLOTS COUNT TOMBSTONES INDEX-SIZE VECTOR-LENGTH)`.
    pub fn stats(&self) -> [usize; 5] {
        [self.raw.slots(), self.raw.len(), self.raw.tombstones(), self.raw.index_len(), self.vlen()]
    }

    /// The `(KEYS . VALS)` cell, once the table has storage.
    pub fn cell(&self) -> Option<emacs_value> {
        self.storage.as_ref().map(Storage::cell)
    }

    /// `Handle::quick`'s probe: `None` when a comparison needs Lisp.
    #[inline(always)]
    fn find_quick(&self, l: &direct::Layout, key: &Key) -> Option<Option<Found>> {
        let Some(s) = &self.storage else { return Some(None) };
        let kobj = s.kobj?;
        let mut probe = self.raw.probe(key.meta);
        while let Some(i) = self.raw.next_candidate(&mut probe) {
            // SAFETY: the live keys vector is longer than any entry number.
            let stored = unsafe { direct::vref(kobj, i) };
            if keys::same_quick(l, key, self.raw.payload(i), stored)? {
                return Some(Some(Found { entry: i, slot: self.raw.last_slot(&probe) }));
            }
        }
        Some(None)
    }

    /// The value object of a live entry (direct path: `find_quick` found it,
    /// so the table has storage and its objects).
    #[inline(always)]
    fn value_obj(&self, entry: usize) -> Option<Obj> {
        let vo = self.storage.as_ref()?.vobj?;
        // SAFETY: the live values vector is longer than any entry number.
        Some(unsafe { direct::vref(vo, entry) })
    }

    #[inline(always)]
    fn set_value_direct(&mut self, entry: usize, value: Obj) {
        if let Some(vo) = self.storage.as_ref().and_then(|s| s.vobj) {
            // SAFETY: the live values vector is longer than any entry number;
            // `value` is live and the vector keeps it (check `vector`).
            unsafe { direct::vset(vo, entry, value) }
        }
    }

    /// Insert an absent key on the direct path if the vectors have room;
    /// false (nothing changed) if they must grow first.
    #[inline(always)]
    fn insert_direct(&mut self, k: &Key, key: Obj, value: Obj) -> bool {
        let Some((ko, vo, len)) = self.storage.as_ref().and_then(|s| Some((s.kobj?, s.vobj?, s.len))) else {
            return false;
        };
        if self.raw.reserve_one().is_err() || self.raw.next_insert_slot() >= len {
            return false;
        }
        let Ok(i) = self.raw.insert(k.meta, k.payload) else { return false };
        // SAFETY: `i` < `len`, the live vectors' length; the key and value
        // are live and the vectors keep them (check `vector`).
        unsafe {
            direct::vset(ko, i, key);
            direct::vset(vo, i, value);
        }
        true
    }

    /// One count of `key` (object `ko`) found as `f`: a fixnum count goes up
    /// by one, an absent key starts at 1 if the vectors have room; false
    /// (nothing changed) otherwise.
    #[inline(always)]
    fn tally_step(&mut self, k: &Key, ko: Obj, f: Option<Found>) -> bool {
        match f {
            Some(f) => match self.value_obj(f.entry).and_then(direct::fixnum) {
                Some(n) if n < (1 << 61) - 1 => {
                    self.set_value_direct(f.entry, direct::make_fixnum(n + 1));
                    true
                }
                _ => false,
            },
            None => self.insert_direct(k, ko, direct::make_fixnum(1)),
        }
    }

    /// Remove a found entry, on the direct path.
    #[inline(always)]
    fn remove_direct(&mut self, f: Found) {
        self.raw.remove_at(f.slot, f.entry);
        if let Some(s) = &self.storage {
            if let (Some(ko), Some(vo)) = (s.kobj, s.vobj) {
                // SAFETY: live vectors longer than the entry number; the hole
                // is kept alive by its global reference.
                unsafe {
                    let hole = direct::obj(g().hole.v());
                    direct::vset(ko, f.entry, hole);
                    direct::vset(vo, f.entry, hole);
                }
            }
        }
    }

    #[inline]
    fn stored(&self, i: usize) -> Option<Stored> {
        self.storage.as_ref().map(|s| Stored { vec: s.keys(), obj: s.kobj, i })
    }
}

/// The user-ptr payload.
pub struct Handle {
    test: Test,
    t: RefCell<Table>,
    busy: Cell<u32>,
    /// The kind of key this table has been getting (official path).
    spec: Spec,
}

/// Marks a handle busy for its lifetime (restored on every exit path).
pub struct Busy<'a>(&'a Handle);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.busy.set(self.0.busy.get() - 1);
    }
}

/// Finalizer of every rhash user-ptr; its address identifies our objects.
///
/// # Safety
/// Called by Emacs's GC with a pointer made by `Box::into_raw` in `wrap`.
pub unsafe extern "C" fn finalize(p: *mut c_void) {
    // Never unwind into the GC: a panic here would abort Emacs.
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: `p` came from `Box::into_raw(Box<Handle>)` and Emacs calls
        // the finalizer exactly once.
        drop(unsafe { Box::from_raw(p as *mut Handle) });
    });
}

/// Where a key was found: its entry number and index slot.
#[derive(Clone, Copy)]
pub struct Found {
    pub entry: usize,
    slot: usize,
}

impl Handle {
    /// The table's test.
    pub fn test(&self) -> &Test {
        &self.test
    }

    /// The handle behind `v` if it is one of our tables; never signals.
    #[inline(always)]
    fn peek<'e>(lx: Lx<'e>, v: emacs_value) -> Option<&'e Handle> {
        let p = if let Some(l) = direct::layout() {
            // SAFETY: direct path on (check `box`); `v` is a live value of
            // the current call.
            match l.user_ptr(unsafe { direct::obj(v) }) {
                Some((fin, p)) if fin == finalize as *const () as usize => p as *const Handle,
                _ => return None,
            }
        } else {
            if let Some(h) = cache::hit(lx, v) {
                // SAFETY: the cache holds a global reference to the table
                // whose handle it returns.
                return Some(unsafe { &*(h as *const Handle) });
            }
            // `type_of` first: `get_user_finalizer` signals on other objects,
            // and `debug-on-signal` would see it.
            if !is_user_ptr(lx, v) {
                return None;
            }
            let p = lx.user_ptr_with(v, finalize)? as *const Handle;
            cache::note(lx, v, p as *const c_void);
            p
        };
        // SAFETY: the finalizer proves `v` is one of our user-ptrs, whose
        // payload is a live `Handle`; `v` is an argument of the call in
        // progress, so the object (and the Handle) lives at least as long as
        // the call ('e).
        Some(unsafe { &*p })
    }

    /// The handle behind `v`, or `(wrong-type-argument rhash-p V)`.
    #[inline(always)]
    pub fn of<'e>(lx: Lx<'e>, v: emacs_value) -> LResult<&'e Handle> {
        Handle::peek(lx, v).ok_or_else(|| error::wrong_type(lx, v))
    }

    /// Whether `v` is an rhash table; never signals.
    #[inline]
    pub fn is_rhash(lx: Lx, v: emacs_value) -> bool {
        Handle::peek(lx, v).is_some()
    }

    #[inline]
    pub fn busy(&self) -> Busy<'_> {
        self.busy.set(self.busy.get() + 1);
        Busy(self)
    }

    /// Refuse to modify a table while one of its operations is calling Lisp.
    #[inline]
    pub fn check_mutable(&self, lx: Lx, table: emacs_value) -> LResult<()> {
        if self.busy.get() > 0 {
            return Err(error::modifies(lx, table));
        }
        Ok(())
    }

    /// Read the table in a short section that never reaches Emacs (the
    /// closure gets no `Lx`).  A failed borrow would mean Lisp reached the
    /// table inside such a section, which cannot happen; it is an error, not
    /// a panic, all the same.
    #[inline]
    pub fn read<R>(&self, lx: Lx, f: impl FnOnce(&Table) -> R) -> LResult<R> {
        match self.t.try_borrow() {
            Ok(t) => Ok(f(&t)),
            Err(_) => Err(error::busy(lx)),
        }
    }

    #[inline]
    fn write<R>(&self, lx: Lx, f: impl FnOnce(&mut Table) -> R) -> LResult<R> {
        match self.t.try_borrow_mut() {
            Ok(mut t) => Ok(f(&mut t)),
            Err(_) => Err(error::busy(lx)),
        }
    }

    /// Classify KEY for this table's test.  May run Lisp (hash functions);
    /// the caller holds `busy`.
    #[inline]
    pub fn classify(&self, lx: Lx, key: emacs_value) -> LResult<Lookup> {
        keys::classify(lx, self.test.plan(), key, &self.spec)
    }

    /// The entry holding a key equal to `l.key`, if any.  May run Lisp
    /// (predicates); the caller holds `busy`, so the table cannot change
    /// between probe steps, nor before it uses the result.
    #[inline]
    pub fn find(&self, lx: Lx, l: &mut Lookup) -> LResult<Option<Found>> {
        let mut probe = self.read(lx, |t| t.raw.probe(l.key.meta))?;
        loop {
            // A fresh borrow per step: none is held while a predicate runs.
            let step = self.read(lx, |t| {
                t.raw.next_candidate(&mut probe).map(|i| (i, t.raw.last_slot(&probe), t.raw.payload(i), t.stored(i)))
            })?;
            let Some((entry, slot, payload, Some(stored))) = step else { return Ok(None) };
            if keys::same(lx, &self.test, l, payload, || stored)? {
                return Ok(Some(Found { entry, slot }));
            }
        }
    }

    /// Find KEY: its classification, and the entry if present.  Holds
    /// `busy` while Lisp may run.
    pub fn lookup(&self, lx: Lx, key: emacs_value) -> LResult<(Key, Option<Found>)> {
        let _busy = self.busy();
        let mut l = self.classify(lx, key)?;
        let f = self.find(lx, &mut l)?;
        Ok((l.key, f))
    }

    /// The direct path's Lisp-free lookup: classify KEY, find it and let `f`
    /// act on the table and the entry, all in one borrow.  `None` when the
    /// direct path is off or this key needs Lisp (then use `lookup`).
    #[inline(always)]
    fn quick<R>(&self, key: emacs_value, f: impl FnOnce(&mut Table, &Key, Option<Found>) -> R) -> Option<R> {
        let l = direct::layout()?;
        let k = keys::classify_quick(l, self.test.plan(), key)?;
        let mut t = self.t.try_borrow_mut().ok()?;
        let found = t.find_quick(l, &k)?;
        Some(f(&mut t, &k, found))
    }

    /// `gethash`: KEY's value, or DEFAULT (nil if absent).  On the direct
    /// path the value goes back in KEY's argument box (check `return`).
    #[inline(always)]
    pub fn get(&self, lx: Lx, key: emacs_value, default: Option<emacs_value>) -> LResult<emacs_value> {
        let absent = || default.unwrap_or_else(|| g().nil());
        if let Some(v) = self.quick(key, |t, _, f| f.map(|f| t.value_obj(f.entry))) {
            return Ok(match v {
                Some(Some(o)) => {
                    // SAFETY: `key` is an argument box of this call (caller).
                    unsafe { direct::set_box(key, o) };
                    key
                }
                _ => absent(),
            });
        }
        match self.lookup(lx, key)?.1 {
            Some(f) => self.value_out(lx, f, key),
            None => Ok(absent()),
        }
    }

    /// KEY's entry, if present (the quick step first, then `lookup`).
    #[inline]
    pub fn lookup_quick(&self, lx: Lx, key: emacs_value) -> LResult<Option<Found>> {
        if let Some(found) = self.quick(key, |_, _, f| f) {
            return Ok(found);
        }
        Ok(self.lookup(lx, key)?.1)
    }

    /// Whether KEY is present.
    #[inline(always)]
    pub fn contains(&self, lx: Lx, key: emacs_value) -> LResult<bool> {
        if let Some(found) = self.quick(key, |_, _, f| f.is_some()) {
            return Ok(found);
        }
        Ok(self.lookup(lx, key)?.1.is_some())
    }

    /// `remhash` (`table` is the Lisp object, for errors).
    #[inline(always)]
    pub fn remove(&self, lx: Lx, table: emacs_value, key: emacs_value) -> LResult<()> {
        self.check_mutable(lx, table)?;
        if let Some(()) = self.quick(key, |t, _, f| {
            if let Some(f) = f {
                t.remove_direct(f)
            }
        }) {
            return Ok(());
        }
        if let (_, Some(f)) = self.lookup(lx, key)? {
            self.remove_at(lx, f)?;
        }
        Ok(())
    }

    /// The value of a found entry.  On the direct path it is returned in
    /// `out`, an argument box of the current call (check `return`), which
    /// saves making a new value.
    #[inline]
    pub fn value_out(&self, lx: Lx, f: Found, out: emacs_value) -> LResult<emacs_value> {
        let (vals, vobj) = self.read(lx, |t| t.storage.as_ref().map(|s| (s.vals(), s.vobj)))?.unwrap_or((g().nil(), None));
        match vobj {
            Some(vo) => {
                // SAFETY: `vo` is the live values vector, longer than
                // `f.entry`; `out` is an argument box of this call (caller).
                unsafe { direct::set_box(out, direct::vref(vo, f.entry)) };
                Ok(out)
            }
            None => lx.vec_get(vals, f.entry),
        }
    }

    /// Put KEY -> VALUE (the handle of `table`).
    #[inline(always)]
    pub fn put(&self, lx: Lx, table: emacs_value, key: emacs_value, value: emacs_value) -> LResult<()> {
        self.check_mutable(lx, table)?;
        // SAFETY: `key` and `value` are live values of this call.
        let quick = self.quick(key, |t, k, f| match f {
            Some(f) => {
                t.set_value_direct(f.entry, unsafe { direct::obj(value) });
                None
            }
            None if t.insert_direct(k, unsafe { direct::obj(key) }, unsafe { direct::obj(value) }) => None,
            // The vectors must grow (Lisp allocation).
            None => Some(*k),
        });
        if let Some(absent) = quick {
            return match absent {
                Some(k) => {
                    let _busy = self.busy();
                    self.insert_new(lx, &k, value)
                }
                None => Ok(()),
            };
        }
        match self.lookup(lx, key)? {
            (_, Some(f)) => self.set_value(lx, f.entry, value),
            (k, None) => {
                let _busy = self.busy();
                self.insert_new(lx, &k, value)
            }
        }
    }

    /// Set the value of a found entry.
    pub fn set_value(&self, lx: Lx, entry: usize, value: emacs_value) -> LResult<()> {
        let s = self.read(lx, |t| t.storage.as_ref().map(|s| (s.vals(), s.vobj)))?;
        match s {
            // SAFETY: live values vector longer than `entry`; `value` is a
            // live value that the vector now keeps (check `vector`).
            Some((_, Some(vo))) => unsafe { direct::vset(vo, entry, direct::obj(value)) },
            Some((vals, None)) => lx.vec_set(vals, entry, value)?,
            None => {}
        }
        Ok(())
    }

    /// Insert a key known to be absent (found absent under the same `busy`).
    pub fn insert_new(&self, lx: Lx, key: &Key, value: emacs_value) -> LResult<()> {
        let slot = self.write(lx, |t| t.raw.reserve_one().map(|_| t.raw.next_insert_slot()))?;
        let slot = slot.map_err(|_| error::memory(lx))?;
        self.ensure_vectors(lx, slot + 1)?;
        let (i, s) = self.write(lx, |t| {
            let i = t.raw.insert(key.meta, key.payload);
            (i, t.storage.as_ref().map(|s| (s.keys(), s.vals(), s.kobj, s.vobj)))
        })?;
        let i = i.map_err(|_| error::memory(lx))?;
        debug_assert_eq!(i, slot);
        match s {
            // SAFETY: live vectors longer than `i` (`ensure_vectors`); the
            // key and value are live values the vectors now keep.
            Some((_, _, Some(ko), Some(vo))) => unsafe {
                direct::vset(ko, i, direct::obj(key.v));
                direct::vset(vo, i, direct::obj(value));
            },
            Some((kv, vv, _, _)) => {
                lx.vec_set(kv, i, key.v)?;
                lx.vec_set(vv, i, value)?;
            }
            None => {}
        }
        Ok(())
    }

    /// Make both vectors at least `need` long (growing geometrically).
    /// Calls Lisp allocation functions; holds no borrow while doing so.
    fn ensure_vectors(&self, lx: Lx, need: usize) -> LResult<()> {
        let (vlen, hint, old) = self.read(lx, |t| (t.vlen(), t.hint, t.storage.as_ref().map(|s| [s.keys(), s.vals()])))?;
        if need <= vlen {
            return Ok(());
        }
        let gl = g();
        // Doubling: `rhash-map` walks the whole vectors, so a small table
        // would pay for up to 3/4 empty slots on every walk with 4x growth.
        let new_len = need.max(vlen.saturating_mul(2)).max(hint.min(1 << 20)).max(8);
        let n = int(lx, new_len)?;
        let grow = int(lx, new_len - vlen)?;
        let mut made = [gl.nil(); 2];
        for (k, slot) in made.iter_mut().enumerate() {
            *slot = match old {
                None => lx.funcall(gl.f_make_vector.v(), &[n, gl.hole.v()])?,
                Some(o) => {
                    let tail = lx.funcall(gl.f_make_vector.v(), &[grow, gl.hole.v()])?;
                    lx.funcall(gl.f_vconcat.v(), &[o[k], tail])?
                }
            };
        }
        self.install_storage(lx, made[0], made[1], new_len)
    }

    /// Make KEYS and VALS (`len` long, complete) the table's storage: the
    /// one place where vectors, cell and length change, together.
    fn install_storage(&self, lx: Lx, keys: emacs_value, vals: emacs_value, len: usize) -> LResult<()> {
        let cell = self.read(lx, Table::cell)?;
        let cell = match cell {
            Some(c) => c,
            None => lx.funcall(g().f_cons.v(), &[keys, vals])?,
        };
        let refs = release::grefs(lx, [keys, vals, cell])?;
        let (kobj, vobj) = match direct::layout() {
            // SAFETY: direct path on; fresh live values of this call.
            Some(_) => unsafe { (Some(direct::obj(keys)), Some(direct::obj(vals))) },
            None => (None, None),
        };
        let old = self.write(lx, |t| t.storage.replace(Storage { refs: Some(refs), kobj, vobj, len }))?;
        set_pair(lx, cell, keys, vals)?;
        // The old storage's references go through the queue.
        drop(old);
        Ok(())
    }

    /// Remove the entry `find` returned, releasing its key and value.
    pub fn remove_at(&self, lx: Lx, f: Found) -> LResult<()> {
        let i = f.entry;
        let s = self.write(lx, |t| {
            t.raw.remove_at(f.slot, i);
            t.storage.as_ref().map(|s| (s.keys(), s.vals(), s.kobj, s.vobj))
        })?;
        let gl = g();
        match s {
            // SAFETY: live vectors longer than `i`; the hole is kept alive by
            // its global reference.
            Some((_, _, Some(ko), Some(vo))) => unsafe {
                let hole = direct::obj(gl.hole.v());
                direct::vset(ko, i, hole);
                direct::vset(vo, i, hole);
            },
            Some((kv, vv, _, _)) => {
                lx.vec_set(kv, i, gl.hole.v())?;
                lx.vec_set(vv, i, gl.hole.v())?;
            }
            None => {}
        }
        Ok(())
    }

    /// Remove every entry (`table` is the Lisp object, for errors).
    pub fn clear(&self, lx: Lx, table: emacs_value) -> LResult<()> {
        self.check_mutable(lx, table)?;
        let vecs = self.write(lx, |t| {
            if t.raw.is_empty() {
                return None;
            }
            t.raw.clear();
            t.storage.as_ref().map(|s| [s.keys(), s.vals()])
        })?;
        if let Some([kv, vv]) = vecs {
            let _busy = self.busy();
            let gl = g();
            lx.funcall(gl.f_fillarray.v(), &[kv, gl.hole.v()])?;
            lx.funcall(gl.f_fillarray.v(), &[vv, gl.hole.v()])?;
        }
        Ok(())
    }

    /// A new table with the same test, entries and order.
    pub fn copy(&self, lx: Lx) -> LResult<emacs_value> {
        let gl = g();
        let (raw, vecs, hint) = self.read(lx, |t| (t.raw.try_clone(), t.storage.as_ref().map(|s| [s.keys(), s.vals()]), t.hint))?;
        let raw = raw.map_err(|_| error::memory(lx))?;
        let _busy = self.busy();
        let test = self.test.try_clone(lx)?;
        let copy = Handle::new(test, Table { raw, storage: None, hint });
        if let Some([k, v]) = vecs {
            let len = self.read(lx, Table::vlen)?;
            let k = lx.funcall(gl.f_copy_sequence.v(), &[k])?;
            let v = lx.funcall(gl.f_copy_sequence.v(), &[v])?;
            copy.install_storage(lx, k, v, len)?;
        }
        copy.into_lisp(lx)
    }

    fn new(test: Test, t: Table) -> Box<Handle> {
        Box::new(Handle { test, t: RefCell::new(t), busy: Cell::new(0), spec: Spec::default() })
    }

    fn into_lisp(self: Box<Handle>, lx: Lx) -> LResult<emacs_value> {
        let p = Box::into_raw(self);
        match lx.make_user_ptr(finalize, p as *mut c_void) {
            Ok(v) => Ok(v),
            Err(e) => {
                // SAFETY: Emacs did not take ownership; reclaim the box.
                drop(unsafe { Box::from_raw(p) });
                Err(e)
            }
        }
    }

    /// Put KEYS[i] -> VALS[i] for each i, as repeated puts would.  A table
    /// that never held an entry takes both vectors as its storage: the pairs
    /// go into a scratch index whose keys are the KEYS vector itself, a
    /// duplicate key moving its value to the first occurrence's entry and
    /// later pairs down one place; on success the table takes that index and
    /// both vectors, so per entry only the key is read and classified.  Any
    /// exit leaves the table as it was.  Other tables get repeated puts.
    pub fn adopt(&self, lx: Lx, table: emacs_value, keys: emacs_value, vals: emacs_value) -> LResult<()> {
        self.check_mutable(lx, table)?;
        let n = lx.vec_size(keys)?;
        if lx.vec_size(vals)? != n {
            return Err(error::length_mismatch(lx, keys, vals));
        }
        let fresh = self.read(lx, |t| t.storage.is_none() && t.raw.slots() == 0)?;
        if !fresh || n == 0 {
            for i in 0..n {
                if quit_requested(lx, i) {
                    return Ok(());
                }
                let (k, v) = (lx.vec_get(keys, i)?, lx.vec_get(vals, i)?);
                self.put(lx, table, k, v)?;
            }
            return Ok(());
        }
        let mut raw = RawTable::with_capacity(n).map_err(|_| error::memory(lx))?;
        let _busy = self.busy();
        // Entries 0..w are built, keys and values compacted into slots 0..w.
        let mut w = 0;
        for i in 0..n {
            if quit_requested(lx, i) {
                return Ok(());
            }
            let k = lx.vec_get(keys, i)?;
            let mut l = self.classify(lx, k)?;
            match self.find_in(lx, &mut l, &raw, keys)? {
                Some(e) => {
                    let v = lx.vec_get(vals, i)?;
                    lx.vec_set(vals, e, v)?;
                }
                None => {
                    let e = raw.insert(l.key.meta, l.key.payload).map_err(|_| error::memory(lx))?;
                    debug_assert_eq!(e, w);
                    if e != i {
                        lx.vec_set(keys, e, k)?;
                        let v = lx.vec_get(vals, i)?;
                        lx.vec_set(vals, e, v)?;
                    }
                    w += 1;
                }
            }
        }
        let hole = g().hole.v();
        for j in w..n {
            lx.vec_set(keys, j, hole)?;
            lx.vec_set(vals, j, hole)?;
        }
        self.install_storage(lx, keys, vals, n)?;
        self.write(lx, |t| t.raw = raw)
    }

    /// The live keys (`which` = 0) or values (1) as a list, built by Emacs's
    /// own primitives: (delq HOLE (append (substring VEC 0 SLOTS) nil)).
    pub fn column(&self, lx: Lx, which: usize) -> LResult<emacs_value> {
        let gl = g();
        let (slots, live, vlen, vec) = self.read(lx, |t| {
            let vec = t.storage.as_ref().map(|s| if which == 0 { s.keys() } else { s.vals() });
            (t.raw.slots(), t.raw.len(), t.vlen(), vec)
        })?;
        let Some(vec) = vec else { return Ok(gl.nil()) };
        if live == 0 {
            return Ok(gl.nil());
        }
        let _busy = self.busy();
        let part = if slots == vlen {
            vec
        } else {
            let zero = int(lx, 0)?;
            let end = int(lx, slots)?;
            lx.funcall(gl.f_substring.v(), &[vec, zero, end])?
        };
        let list = lx.funcall(gl.f_append.v(), &[part, gl.nil()])?;
        if live == slots {
            Ok(list)
        } else {
            lx.funcall(gl.f_delq.v(), &[gl.hole.v(), list])
        }
    }
}

/// Make a new table object.
pub fn make(lx: Lx, test: Test, hint: usize) -> LResult<emacs_value> {
    match Table::new(hint) {
        Ok(t) => Handle::new(test, t).into_lisp(lx),
        // (The failed Test's refs went to the release queue on drop.)
        Err(_) => Err(error::memory(lx)),
    }
}

/// Whether `v` is a user-ptr (`type_of`, which never signals).
fn is_user_ptr(lx: Lx, v: emacs_value) -> bool {
    match lx.type_of(v) {
        Ok(ty) => lx.eq(ty, g().user_ptr.v()),
        Err(_) => {
            lx.clear_exit();
            false
        }
    }
}

/// Point `cell` at KEYS and VALS.
fn set_pair(lx: Lx, cell: emacs_value, keys: emacs_value, vals: emacs_value) -> LResult<()> {
    let gl = g();
    lx.funcall(gl.f_setcar.v(), &[cell, keys])?;
    lx.funcall(gl.f_setcdr.v(), &[cell, vals])?;
    Ok(())
}

#[inline]
pub fn int(lx: Lx, n: usize) -> LResult<emacs_value> {
    lx.make_integer(i64::try_from(n).unwrap_or(i64::MAX))
}

/// Whether C-g is pending, polled every 4096 steps `i` of a long loop; the
/// caller returns at once and Emacs processes the quit.
#[inline]
pub fn quit_requested(lx: Lx, i: usize) -> bool {
    i.is_multiple_of(4096) && lx.should_quit()
}

// ---- What the bulk operations (bulk.rs) need ----

impl Table {
    /// (live entries, entry slots): entry numbers run over `0..slots`.
    pub fn extent(&self) -> (usize, usize) {
        (self.raw.len(), self.raw.slots())
    }

    pub fn bulk_stats(&self) -> Stats {
        let (max_probe, probe_sum) = self.raw.probe_lengths();
        Stats {
            count: self.raw.len(),
            capacity: self.size(),
            slots: self.raw.slots(),
            index_slots: self.raw.index_len(),
            tombstones: self.raw.tombstones(),
            max_probe,
            probe_sum,
            bytes: self.raw.heap_bytes() + std::mem::size_of::<Handle>(),
            vector_length: self.vlen(),
        }
    }
}

/// The numbers `rhash-stats` reports.
pub struct Stats {
    pub count: usize,
    pub capacity: usize,
    pub slots: usize,
    pub index_slots: usize,
    pub tombstones: usize,
    pub max_probe: usize,
    pub probe_sum: usize,
    pub bytes: usize,
    pub vector_length: usize,
}

impl Handle {
    /// A handle that is never given to Lisp, for a scratch table used
    /// within one module call (`rhash-uniq`).
    pub fn scratch(test: Test) -> Result<Box<Handle>, crate::table::AllocError> {
        Ok(Handle::new(test, Table::new(0)?))
    }

    /// `find` in an index being built outside this table (`adopt`,
    /// `rhash-uniq`): `raw`'s entry e has its key in slot e of `keys`; this
    /// handle gives the test.
    pub fn find_in(&self, lx: Lx, l: &mut Lookup, raw: &RawTable, keys: emacs_value) -> LResult<Option<usize>> {
        let kobj = direct::layout().map(|_| {
            // SAFETY: direct path on; `keys` is a live value of this call.
            unsafe { direct::obj(keys) }
        });
        let mut probe = raw.probe(l.key.meta);
        while let Some(e) = raw.next_candidate(&mut probe) {
            let stored = Stored { vec: keys, obj: kobj, i: e };
            if keys::same(lx, &self.test, l, raw.payload(e), || stored)? {
                return Ok(Some(e));
            }
        }
        Ok(None)
    }

    /// Live entry `i` as a key (with its cached `meta` and payload) and its
    /// value; `None` for a free entry or one past the end.
    pub fn entry_at(&self, lx: Lx, i: usize) -> LResult<Option<(Key, emacs_value)>> {
        let e = self.read(lx, |t| {
            let e = t.raw.entry(i)?;
            let s = t.storage.as_ref()?;
            Some((e, s.keys(), s.vals()))
        })?;
        match e {
            Some((e, kv, vv)) => {
                let k = lx.vec_get(kv, i)?;
                let v = lx.vec_get(vv, i)?;
                Ok(Some((Key { v: k, meta: e.meta, payload: e.payload }, v)))
            }
            None => Ok(None),
        }
    }

    /// As `entry_at`; on the direct path the key and value come in `boxes`,
    /// two local value boxes of this call (rewritten: valid until the next
    /// call with the same boxes).
    pub fn entry_into(&self, lx: Lx, i: usize, boxes: [emacs_value; 2]) -> LResult<Option<(Key, emacs_value)>> {
        let e = self.read(lx, |t| {
            let e = t.raw.entry(i)?;
            let s = t.storage.as_ref()?;
            Some((e, s.kobj.zip(s.vobj)))
        })?;
        match e {
            Some((e, Some((ko, vo)))) => {
                // SAFETY: live vectors longer than the live entry number `i`;
                // the boxes are local values of this call (check `return`).
                unsafe {
                    direct::set_box(boxes[0], direct::vref(ko, i));
                    direct::set_box(boxes[1], direct::vref(vo, i));
                }
                Ok(Some((Key { v: boxes[0], meta: e.meta, payload: e.payload }, boxes[1])))
            }
            Some(_) => self.entry_at(lx, i),
            None => Ok(None),
        }
    }

    /// The value of entry `i` (found under the same `busy`).
    pub fn value_at(&self, lx: Lx, i: usize) -> LResult<emacs_value> {
        match self.read(lx, |t| t.storage.as_ref().map(Storage::vals))? {
            Some(vv) => lx.vec_get(vv, i),
            None => Ok(g().nil()),
        }
    }

    /// Give back the memory of removed entries: a compacted index
    /// (`RawTable::compacted`) and vectors just long enough for the live
    /// entries, in the same order.  The caller checked that the table may
    /// change.
    pub fn compact(&self, lx: Lx) -> LResult<()> {
        let _busy = self.busy();
        let (c, vecs, same) = self.read(lx, |t| {
            let c = t.raw.compacted();
            let same = c.as_ref().is_ok_and(|(c, _)| {
                c.slots() == t.raw.slots() && t.vlen() == c.slots() && c.heap_bytes() == t.raw.heap_bytes()
            });
            (c, t.storage.as_ref().map(|s| [s.keys(), s.vals()]), same)
        })?;
        let (raw, from) = c.map_err(|_| error::memory(lx))?;
        if same {
            return Ok(());
        }
        let gl = g();
        let n = from.len();
        if let Some([ok, ov]) = vecs {
            let len = int(lx, n)?;
            let kv = lx.funcall(gl.f_make_vector.v(), &[len, gl.hole.v()])?;
            let vv = lx.funcall(gl.f_make_vector.v(), &[len, gl.hole.v()])?;
            for (j, &i) in from.iter().enumerate() {
                lx.vec_set(kv, j, lx.vec_get(ok, i)?)?;
                lx.vec_set(vv, j, lx.vec_get(ov, i)?)?;
            }
            self.install_storage(lx, kv, vv, n)?;
        }
        self.write(lx, |t| {
            t.raw = raw;
            t.hint = 0;
        })
    }
}

/// A vector the bulk loops read or fill element by element: directly on the
/// direct path, through `vec_get`/`vec_set` otherwise.  `at` returns a value
/// of the current call that is valid only until the next `at` (on the
/// direct path it is one box, rewritten: check `return` covers local value
/// boxes of the call as it does argument boxes, both being frame slots).
pub struct Slots {
    vec: emacs_value,
    obj: Option<Obj>,
    scratch: emacs_value,
    len: usize,
}

impl Slots {
    /// `vec` must be a plain vector (`make-vector`, `vconcat`, `vector`).
    pub fn new(lx: Lx, vec: emacs_value) -> LResult<Slots> {
        let len = lx.vec_size(vec)?;
        let (obj, scratch) = match direct::layout() {
            // SAFETY: direct path on; `vec` is a live value of this call.
            Some(_) => (Some(unsafe { direct::obj(vec) }), lx.make_integer(0)?),
            None => (None, g().nil()),
        };
        // A plain vector's slots are its words (check `vector`).
        let obj = obj.filter(|&o| direct::plain_vector_len(o) == Some(len));
        Ok(Slots { vec, obj, scratch, len })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn value(&self) -> emacs_value {
        self.vec
    }

    /// Element `i` (< `len`), valid until the next `at`.
    #[inline]
    pub fn at(&self, lx: Lx, i: usize) -> LResult<emacs_value> {
        match self.obj {
            // SAFETY: a live plain vector of `len` slots; `scratch` is a
            // local value box of this call.
            Some(o) if i < self.len => unsafe {
                direct::set_box(self.scratch, direct::vref(o, i));
                Ok(self.scratch)
            },
            _ => lx.vec_get(self.vec, i),
        }
    }

    /// Store `v` (a live value) at `i` (< `len`).
    #[inline]
    pub fn set(&self, lx: Lx, i: usize, v: emacs_value) -> LResult<()> {
        match self.obj {
            // SAFETY: as `at`; the vector keeps `v` (check `vector`).
            Some(o) if i < self.len => unsafe {
                direct::vset(o, i, direct::obj(v));
                Ok(())
            },
            _ => lx.vec_set(self.vec, i, v),
        }
    }
}

impl Handle {
    /// Copy the value of entry `entry` into slot `i` of `dst`.
    #[inline]
    pub fn value_into(&self, lx: Lx, entry: usize, dst: &Slots, i: usize) -> LResult<()> {
        let s = self.read(lx, |t| t.storage.as_ref().map(|s| (s.vals(), s.vobj)))?;
        match (s, dst.obj) {
            // SAFETY: live vectors; `entry` is a live entry number and
            // `i` < `dst.len` (checked).
            (Some((_, Some(vo))), Some(d)) if i < dst.len => unsafe {
                direct::vset(d, i, direct::vref(vo, entry));
                Ok(())
            },
            (Some((vv, _)), _) => dst.set(lx, i, lx.vec_get(vv, entry)?),
            (None, _) => Ok(()),
        }
    }

    /// `rhash-get-many`'s loop on the direct path, in one borrow: for each
    /// i from `from`, copy the value of `keys[i]` (if present) into
    /// `out[i]`.  Stops at the first key that needs Lisp, or when C-g is
    /// pending (polled every 4096 keys); returns where it stopped (`len`
    /// when done).
    pub fn get_many_quick(&self, lx: Lx, keys: &Slots, out: &Slots, from: usize) -> usize {
        let (Some(l), Some(ko), Some(oo)) = (direct::layout(), keys.obj, out.obj) else { return from };
        let plan = self.test.plan();
        let Ok(t) = self.t.try_borrow() else { return from };
        let n = keys.len.min(out.len);
        for i in from..n {
            if i > from && quit_requested(lx, i) {
                return i;
            }
            // SAFETY: `i` < both lengths of live plain vectors; `scratch`
            // is a local value box of this call (check `return`).
            let key = unsafe {
                direct::set_box(keys.scratch, direct::vref(ko, i));
                keys.scratch
            };
            let Some(k) = keys::classify_quick(l, plan, key) else { return i };
            match t.find_quick(l, &k) {
                Some(Some(f)) => {
                    if let Some(v) = t.value_obj(f.entry) {
                        // SAFETY: as above; the value is live (in the table).
                        unsafe { direct::vset(oo, i, v) };
                    }
                }
                Some(None) => {}
                None => return i,
            }
        }
        n
    }

    /// `rhash-tally-into`'s loop on the direct path, in one borrow (as
    /// `get_many_quick`): count `elems[i]` from `from` on while each step
    /// is Lisp-free (`tally_step`); returns where it stopped.
    pub fn tally_many_quick(&self, lx: Lx, elems: &Slots, from: usize) -> usize {
        let (Some(l), Some(eo)) = (direct::layout(), elems.obj) else { return from };
        let plan = self.test.plan();
        let Ok(mut t) = self.t.try_borrow_mut() else { return from };
        for i in from..elems.len {
            if i > from && quit_requested(lx, i) {
                return i;
            }
            // SAFETY: as in `get_many_quick`.
            let key = unsafe {
                direct::set_box(elems.scratch, direct::vref(eo, i));
                elems.scratch
            };
            let Some(k) = keys::classify_quick(l, plan, key) else { return i };
            let Some(f) = t.find_quick(l, &k) else { return i };
            // SAFETY: `key` holds a live element.
            if !t.tally_step(&k, unsafe { direct::obj(key) }, f) {
                return i;
            }
        }
        elems.len
    }

    /// `(cl-incf (rhash-get KEY TABLE 0))`: the Lisp-free direct step when
    /// the count is a fixnum and the vectors have room; `false` when the
    /// caller must take the general steps.
    #[inline]
    pub fn tally_quick(&self, key: emacs_value) -> bool {
        // SAFETY: `key` is a live value of this call.
        self.quick(key, |t, k, f| t.tally_step(k, unsafe { direct::obj(key) }, f)).unwrap_or(false)
    }
}

/// A new Lisp table with `test` whose entry i is `keys[i]` -> `vals[i]`,
/// `raw` being its index (entry i of `raw` describes `keys[i]`, no free
/// entries).  Its vectors have room for `room` entries (>= the count).
pub fn build(lx: Lx, test: Test, raw: RawTable, keys: &[emacs_value], vals: &[emacs_value], room: usize) -> LResult<emacs_value> {
    debug_assert!(raw.slots() == keys.len() && keys.len() == vals.len() && raw.len() == keys.len());
    let gl = g();
    let h = Handle::new(test, Table { raw, storage: None, hint: 0 });
    let room = room.max(keys.len());
    if room > 0 {
        let n = int(lx, room)?;
        let kv = lx.funcall(gl.f_make_vector.v(), &[n, gl.hole.v()])?;
        let vv = lx.funcall(gl.f_make_vector.v(), &[n, gl.hole.v()])?;
        for (i, (&k, &v)) in keys.iter().zip(vals).enumerate() {
            lx.vec_set(kv, i, k)?;
            lx.vec_set(vv, i, v)?;
        }
        h.install_storage(lx, kv, vv, room)?;
    }
    h.into_lisp(lx)
}
