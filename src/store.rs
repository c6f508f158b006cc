//! A table's state: the pure `RawTable` plus the Lisp storage of its keys
//! and values.  The only module that changes a table.
//!
//! Keys and values live in two Lisp vectors, `keys[i]`/`vals[i]` for entry i,
//! free slots holding a private marker (`hole`).  The table holds one global
//! reference per vector, so storing an entry costs two slot stores instead of
//! two global references (measured in docs/design.md).  The vectors are also
//! shared with Lisp as a 2-slot vector `[KEYS VALS]`, updated in place when they
//! are reallocated, so `rhash-map` walks them from byte-code.
//!
//! Invariants (stated once, kept by the methods of this module alone):
//! - `storage` is `None` until the first insertion; then both vectors are
//!   `storage.len >= raw.slots()` long and slot i holds entry i's key and
//!   value, or `hole` in both for a free entry;
//! - the cell `[KEYS VALS]` holds the vectors `storage` references; it is
//!   updated with slot stores, which run no Lisp, in the step that switches
//!   `storage`;
//! - the table is consistent wherever Lisp can run: each multi-step change
//!   allocates first, then switches in one Lisp-free step;
//! - no Rust borrow is held while Lisp can run.  While a user test's hash
//!   or compare function runs, the table is *busy*: modifying it then gets
//!   `(error "hash table test modifies table" TABLE)`, as a built-in table
//!   does; reads stay allowed.  Other Lisp that runs mid-operation
//!   (`post-gc-hook` and finalizers at a GC inside an allocation) may
//!   modify the table, as with a built-in table: every modification bumps
//!   the handle's generation (`touch`), and an operation that ran Lisp
//!   checks it before relying on what it read earlier (issue 13).
//! - the hole marker is never a key or value of an entry (`storable`).

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

    /// The `[KEYS VALS]` cell, once the table has storage.
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
        // The hole marker (an uninterned symbol, so an IDENT key) is no key:
        // the general path signals.
        // SAFETY: the direct path is on (`ko` exists); a global reference.
        if k.kind() == keys::IDENT && key == unsafe { direct::obj(g().hole.v()) } {
            return false;
        }
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
    /// Bumped by every modification (entries, values, storage).
    gen: Cell<u32>,
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

    /// The modification generation (see the module comment).
    #[inline]
    pub fn gen(&self) -> u32 {
        self.gen.get()
    }

    /// Record a modification.
    #[inline]
    pub fn touch(&self) {
        self.gen.set(self.gen.get().wrapping_add(1));
    }

    /// Busy while a user test's function may run (`None` for built-in tests,
    /// whose hashing and comparing run no user code).
    #[inline]
    fn busy_for_user(&self) -> Option<Busy<'_>> {
        matches!(self.test, Test::User(_)).then(|| self.busy())
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

    /// Classify KEY for this table's test.  May run Lisp (hash functions;
    /// a user's runs with the table busy).
    #[inline]
    pub fn classify(&self, lx: Lx, key: emacs_value) -> LResult<Lookup> {
        let _busy = self.busy_for_user();
        keys::classify(lx, self.test.plan(), key, &self.spec)
    }

    /// The entry holding a key equal to `l.key`, if any.  May run Lisp
    /// (predicates, a GC inside them); if that Lisp changed the table the
    /// probe starts over, so the result describes the table as it is on
    /// return (the caller uses it before running Lisp again).
    #[inline]
    pub fn find(&self, lx: Lx, l: &mut Lookup) -> LResult<Option<Found>> {
        // Numbers compare on their payloads: one Lisp-free probe.
        if matches!(l.key.kind(), keys::INT | keys::FLOAT) {
            let (meta, payload) = (l.key.meta, l.key.payload);
            return self.read(lx, |t| {
                t.raw.find(meta, |i| t.raw.payload(i) == payload).map(|(entry, slot)| Found { entry, slot })
            });
        }
        let _busy = self.busy_for_user();
        'again: loop {
            let g0 = self.gen();
            let mut probe = self.read(lx, |t| t.raw.probe(l.key.meta))?;
            loop {
                // A fresh borrow per step: none is held while a predicate runs.
                let step = self.read(lx, |t| {
                    t.raw.next_candidate(&mut probe).map(|i| (i, t.raw.last_slot(&probe), t.raw.payload(i), t.stored(i)))
                })?;
                let Some((entry, slot, payload, Some(stored))) = step else { return Ok(None) };
                let same = keys::same(lx, &self.test, l, payload, || stored)?;
                if self.gen() != g0 {
                    continue 'again;
                }
                if same {
                    return Ok(Some(Found { entry, slot }));
                }
            }
        }
    }

    /// Find KEY: its classification, and the entry if present.
    pub fn lookup(&self, lx: Lx, key: emacs_value) -> LResult<(Key, Option<Found>)> {
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

    /// As `quick`, for a key already classified for this table's test (an
    /// entry of a table with the same test; `key.v` holds the key).
    #[inline(always)]
    fn quick_key<R>(&self, key: &Key, f: impl FnOnce(&mut Table, Option<Found>) -> R) -> Option<R> {
        let l = direct::layout()?;
        if !keys::is_quick(l, key) {
            return None;
        }
        let mut t = self.t.try_borrow_mut().ok()?;
        let found = t.find_quick(l, key)?;
        Some(f(&mut t, found))
    }

    /// The entry of a key already classified for this table's test.
    pub fn find_key(&self, lx: Lx, key: &Key) -> LResult<Option<Found>> {
        if let Some(found) = self.quick_key(key, |_, f| f) {
            return Ok(found);
        }
        self.find(lx, &mut Lookup::cached(*key))
    }

    /// Put KEY -> VALUE for a key already classified for this table's test
    /// (no key is hashed twice); `table` is the Lisp object, for errors.
    pub fn put_key(&self, lx: Lx, table: emacs_value, key: &Key, value: emacs_value) -> LResult<()> {
        self.check_mutable(lx, table)?;
        storable(lx, &[value])?;
        // SAFETY: `key.v` and `value` are live values of this call.
        let done = self.quick_key(key, |t, f| match f {
            Some(f) => {
                t.set_value_direct(f.entry, unsafe { direct::obj(value) });
                true
            }
            None => t.insert_direct(key, unsafe { direct::obj(key.v) }, unsafe { direct::obj(value) }),
        });
        if done == Some(true) {
            self.touch();
            return Ok(());
        }
        self.put_lookup(lx, &mut Lookup::cached(*key), value)
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
        if let Some(removed) = self.quick(key, |t, _, f| f.map(|f| t.remove_direct(f)).is_some()) {
            if removed {
                self.touch();
            }
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

    /// Put KEY -> VALUE (the handle of `table`).  A lookup's answer holds
    /// until Lisp runs again; an insertion whose vector allocation let Lisp
    /// change the table looks the key up again.
    #[inline(always)]
    pub fn put(&self, lx: Lx, table: emacs_value, key: emacs_value, value: emacs_value) -> LResult<()> {
        self.check_mutable(lx, table)?;
        storable(lx, &[value])?;
        // SAFETY: `key` and `value` are live values of this call.
        let quick = self.quick(key, |t, k, f| match f {
            Some(f) => {
                t.set_value_direct(f.entry, unsafe { direct::obj(value) });
                None
            }
            // (`insert_direct` refuses the hole marker as a key.)
            None if t.insert_direct(k, unsafe { direct::obj(key) }, unsafe { direct::obj(value) }) => None,
            // The vectors must grow (Lisp allocation), or the key is the
            // marker.
            None => Some(*k),
        });
        let mut pending = match quick {
            Some(None) => {
                self.touch();
                return Ok(());
            }
            Some(Some(k)) => Some(k),
            None => None,
        };
        loop {
            let found = match pending.take() {
                Some(k) => (k, None),
                None => self.lookup(lx, key)?,
            };
            match found {
                (_, Some(f)) => return self.store_value(lx, f.entry, value),
                (k, None) => {
                    storable_key(lx, &k)?;
                    if self.insert_new(lx, &k, value)? {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Set the value of a found entry.
    pub fn set_value(&self, lx: Lx, entry: usize, value: emacs_value) -> LResult<()> {
        storable(lx, &[value])?;
        self.store_value(lx, entry, value)
    }

    /// `set_value` of a value already checked by `storable`.
    fn store_value(&self, lx: Lx, entry: usize, value: emacs_value) -> LResult<()> {
        let s = self.read(lx, |t| t.storage.as_ref().map(|s| (s.vals(), s.vobj)))?;
        match s {
            // SAFETY: live values vector longer than `entry`; `value` is a
            // live value that the vector now keeps (check `vector`).
            Some((_, Some(vo))) => unsafe { direct::vset(vo, entry, direct::obj(value)) },
            Some((vals, None)) => lx.vec_set(vals, entry, value)?,
            None => {}
        }
        self.touch();
        Ok(())
    }

    /// Insert a key that a lookup has just found absent.  Returns false,
    /// having changed nothing, if Lisp run during the vector allocation
    /// changed the table: the caller must look the key up again.
    /// The caller checked the key and value with `storable`.
    fn insert_new(&self, lx: Lx, key: &Key, value: emacs_value) -> LResult<bool> {
        let slot = self.write(lx, |t| t.raw.reserve_one().map(|_| t.raw.next_insert_slot()))?;
        let slot = slot.map_err(|_| error::memory(lx))?;
        if self.ensure_vectors(lx, slot + 1)? {
            return Ok(false);
        }
        // Lisp-free from here: index and storage change together.
        let (i, s) = self.write(lx, |t| {
            let i = t.raw.insert(key.meta, key.payload);
            (i, t.storage.as_ref().map(|s| (s.keys(), s.vals(), s.kobj, s.vobj)))
        })?;
        let i = i.map_err(|_| error::memory(lx))?;
        debug_assert_eq!(i, slot);
        self.touch();
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
        Ok(true)
    }

    /// Make both vectors at least `need` long (growing geometrically).  The
    /// new vectors are allocated first, through Lisp calls that may GC,
    /// quit or fail, leaving the table as it was; then `install_storage`
    /// switches to them with no Lisp call.  Returns true if Lisp run during
    /// the allocation changed the table (its current contents are then
    /// copied over, Lisp-free): the caller must look again.
    fn ensure_vectors(&self, lx: Lx, need: usize) -> LResult<bool> {
        let (vlen, hint, old) = self.read(lx, |t| (t.vlen(), t.hint, t.storage.as_ref().map(|s| [s.keys(), s.vals()])))?;
        if need <= vlen {
            return Ok(false);
        }
        let g0 = self.gen();
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
        let cell = self.new_cell(lx)?;
        // No Lisp runs from here on.
        let changed = self.gen() != g0;
        if changed {
            let (vlen2, cur) = self.read(lx, |t| (t.vlen(), t.storage.as_ref().map(|s| [s.keys(), s.vals()])))?;
            if need <= vlen2 {
                return Ok(true);
            }
            // vlen2 < need <= new_len: take the current contents.
            if let Some(c) = cur {
                for k in 0..2 {
                    for i in 0..vlen2 {
                        let x = lx.vec_get(c[k], i)?;
                        lx.vec_set(made[k], i, x)?;
                    }
                }
            }
        }
        self.install_storage(lx, made[0], made[1], new_len, cell)?;
        Ok(changed)
    }

    /// A fresh `[KEYS VALS]` cell for `install_storage` when the table has
    /// none yet (`None` otherwise).  Calls Lisp.
    fn new_cell(&self, lx: Lx) -> LResult<Option<emacs_value>> {
        if self.read(lx, |t| t.storage.is_some())? {
            return Ok(None);
        }
        let gl = g();
        Ok(Some(lx.funcall(gl.f_make_vector.v(), &[int(lx, 2)?, gl.nil()])?))
    }

    /// Make KEYS and VALS (`len` long, complete) the table's storage: the
    /// one place where vectors, cell and length change, together, in a step
    /// that runs no Lisp (global references, a borrow, slot stores into the
    /// cell).  `cell` is a fresh cell from `new_cell`, used if the table has
    /// none.
    fn install_storage(&self, lx: Lx, keys: emacs_value, vals: emacs_value, len: usize, cell: Option<emacs_value>) -> LResult<()> {
        let cell = match self.read(lx, Table::cell)? {
            Some(c) => c,
            None => match cell {
                Some(c) => c,
                // (Callers make a cell whenever the table has none.)
                None => return Err(error::internal(lx, "storage without a cell")),
            },
        };
        let refs = release::grefs(lx, [keys, vals, cell])?;
        let (kobj, vobj) = match direct::layout() {
            // SAFETY: direct path on; live values of this call.
            Some(_) => unsafe { (Some(direct::obj(keys)), Some(direct::obj(vals))) },
            None => (None, None),
        };
        let old = self.write(lx, |t| t.storage.replace(Storage { refs: Some(refs), kobj, vobj, len }))?;
        self.touch();
        // `vec_set` cannot run Lisp (no allocation, no quit).
        lx.vec_set(cell, 0, keys)?;
        lx.vec_set(cell, 1, vals)?;
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
        self.touch();
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

    /// Remove every entry (`table` is the Lisp object, for errors): the
    /// index and the used slots of both vectors, with no Lisp call (a
    /// `fillarray` could quit, or fail near `max-lisp-eval-depth`, half-way;
    /// `clrhash` cannot).
    pub fn clear(&self, lx: Lx, table: emacs_value) -> LResult<()> {
        self.check_mutable(lx, table)?;
        let s = self.write(lx, |t| {
            if t.raw.is_empty() {
                return None;
            }
            let slots = t.raw.slots();
            t.raw.clear();
            t.storage.as_ref().map(|s| (s.keys(), s.vals(), s.kobj.zip(s.vobj), slots))
        })?;
        let Some((kv, vv, objs, slots)) = s else { return Ok(()) };
        self.touch();
        let hole = g().hole.v();
        match objs {
            // SAFETY: live vectors at least `slots` long; the hole is kept
            // alive by its global reference.
            Some((ko, vo)) => unsafe {
                let h = direct::obj(hole);
                for i in 0..slots {
                    direct::vset(ko, i, h);
                    direct::vset(vo, i, h);
                }
            },
            None => {
                for i in 0..slots {
                    lx.vec_set(kv, i, hole)?;
                    lx.vec_set(vv, i, hole)?;
                }
            }
        }
        Ok(())
    }

    /// A new table with the same test, entries and order.
    pub fn copy(&self, lx: Lx) -> LResult<emacs_value> {
        let hint = self.read(lx, |t| t.hint)?;
        let test = self.test.try_clone(lx)?;
        let copy = Handle::new(test, Table::new(0).map_err(|_| error::memory(lx))?);
        let cell = copy.new_cell(lx)?;
        // The storage as it is at one instant, and the index at that instant
        // (no Lisp runs between the snapshot's end and the clone).
        let snap = self.snapshot(lx, [true, true], true)?;
        let raw = self.read(lx, |t| t.raw.try_clone())?.map_err(|_| error::memory(lx))?;
        copy.write(lx, |t| {
            t.raw = raw;
            t.hint = hint;
        })?;
        if let Some(s) = snap {
            copy.install_storage(lx, s.cols[0], s.cols[1], s.len, cell)?;
        }
        copy.into_lisp(lx)
    }

    fn new(test: Test, t: Table) -> Box<Handle> {
        Box::new(Handle { test, t: RefCell::new(t), busy: Cell::new(0), gen: Cell::new(0), spec: Spec::default() })
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
    /// exit leaves the table as it was.  Other tables (and a table that Lisp
    /// run by a GC filled meanwhile) get repeated puts.
    pub fn adopt(&self, lx: Lx, table: emacs_value, keys: emacs_value, vals: emacs_value) -> LResult<()> {
        self.check_mutable(lx, table)?;
        let n = lx.vec_size(keys)?;
        if lx.vec_size(vals)? != n {
            return Err(error::length_mismatch(lx, keys, vals));
        }
        let g0 = self.gen();
        let fresh = self.read(lx, |t| t.storage.is_none() && t.raw.slots() == 0)?;
        if !fresh || n == 0 {
            return self.put_pairs(lx, table, keys, vals, n);
        }
        let mut raw = RawTable::with_capacity(n).map_err(|_| error::memory(lx))?;
        // Entries 0..w are built, keys and values compacted into slots 0..w.
        let mut w = 0;
        for i in 0..n {
            if quit_requested(lx, i) {
                return Ok(());
            }
            let k = lx.vec_get(keys, i)?;
            let v = lx.vec_get(vals, i)?;
            storable(lx, &[k, v])?;
            let mut l = self.classify(lx, k)?;
            match self.find_in(lx, &mut l, &raw, keys)? {
                Some(e) => lx.vec_set(vals, e, v)?,
                None => {
                    let e = raw.insert(l.key.meta, l.key.payload).map_err(|_| error::memory(lx))?;
                    debug_assert_eq!(e, w);
                    if e != i {
                        lx.vec_set(keys, e, k)?;
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
        let cell = self.new_cell(lx)?;
        // No Lisp runs from here on, unless Lisp run by a GC (in a hash or
        // compare call, or just above) put entries meanwhile: then the pairs
        // go in as puts.
        if self.gen() != g0 {
            return self.put_pairs(lx, table, keys, vals, w);
        }
        self.install_storage(lx, keys, vals, n, cell)?;
        self.write(lx, |t| t.raw = raw)
    }

    /// Put KEYS[i] -> VALS[i] for i below `n`, one put each.
    fn put_pairs(&self, lx: Lx, table: emacs_value, keys: emacs_value, vals: emacs_value, n: usize) -> LResult<()> {
        for i in 0..n {
            if quit_requested(lx, i) {
                return Ok(());
            }
            let (k, v) = (lx.vec_get(keys, i)?, lx.vec_get(vals, i)?);
            self.put(lx, table, k, v)?;
        }
        Ok(())
    }

    /// Copies of the storage vectors (`cols`: which ones) taken at one
    /// instant, whole (`whole`) or their first `slots` places, with the
    /// number of live entries then; `None` before the first entry.  On the
    /// direct path: allocate, then copy with no Lisp in between.  On the
    /// official path the copies are Lisp calls that may GC and let Lisp
    /// change the table; they are retried while that happens (three times),
    /// then made with Lisp-free `vec_get`/`vec_set` into vectors allocated
    /// beforehand, so the walk always ends.
    pub fn snapshot(&self, lx: Lx, cols: [bool; 2], whole: bool) -> LResult<Option<Snap>> {
        let gl = g();
        let mut tries = if direct::layout().is_some() { 3 } else { 0 };
        loop {
            let g0 = self.gen();
            let (vecs, slots, vlen) = self.read(lx, |t| (t.storage.as_ref().map(|s| [s.keys(), s.vals()]), t.raw.slots(), t.vlen()))?;
            let Some(v) = vecs else { return Ok(None) };
            let len = if whole { vlen } else { slots };
            let end = int(lx, len)?;
            let mut out = [gl.nil(); 2];
            if tries < 3 {
                tries += 1;
                for k in 0..2 {
                    if cols[k] {
                        out[k] = if len == vlen {
                            lx.funcall(gl.f_copy_sequence.v(), &[v[k]])?
                        } else {
                            let zero = int(lx, 0)?;
                            lx.funcall(gl.f_substring.v(), &[v[k], zero, end])?
                        };
                    }
                }
                if self.gen() == g0 {
                    let live = self.read(lx, |t| t.raw.len())?;
                    return Ok(Some(Snap { cols: out, len, live }));
                }
                continue;
            }
            for k in 0..2 {
                if cols[k] {
                    out[k] = lx.funcall(gl.f_make_vector.v(), &[end, gl.hole.v()])?;
                }
            }
            // No Lisp runs from here on: copy what the table holds now.
            let (s, slots, vlen, live) = self.read(lx, |t| {
                (t.storage.as_ref().map(|s| ([s.keys(), s.vals()], s.kobj.zip(s.vobj))), t.raw.slots(), t.vlen(), t.raw.len())
            })?;
            let Some((v, objs)) = s else { return Ok(None) };
            let now = if whole { vlen } else { slots };
            if now > len {
                continue;
            }
            for k in 0..2 {
                if !cols[k] {
                    continue;
                }
                match objs {
                    // SAFETY: live plain vectors: the source at least `now`
                    // long, the fresh copy `len` >= `now` long.
                    Some((ko, vo)) => unsafe {
                        let src = if k == 0 { ko } else { vo };
                        let dst = direct::obj(out[k]);
                        for i in 0..now {
                            direct::vset(dst, i, direct::vref(src, i));
                        }
                    },
                    None => {
                        for i in 0..now {
                            let x = lx.vec_get(v[k], i)?;
                            lx.vec_set(out[k], i, x)?;
                        }
                    }
                }
            }
            return Ok(Some(Snap { cols: out, len, live }));
        }
    }

    /// The live keys (`which` = 0) or values (1) as a list, from a snapshot.
    pub fn column(&self, lx: Lx, which: usize) -> LResult<emacs_value> {
        let mut cols = [false; 2];
        cols[which] = true;
        match self.snapshot(lx, cols, false)? {
            Some(s) => lisp_list(lx, s.cols[which], s.len, s.live),
            None => Ok(g().nil()),
        }
    }

    /// `(KEYS . VALUES)`: both lists read at one instant.
    pub fn pairs(&self, lx: Lx) -> LResult<emacs_value> {
        let gl = g();
        let Some(s) = self.snapshot(lx, [true, true], false)? else {
            return lx.funcall(gl.f_cons.v(), &[gl.nil(), gl.nil()]);
        };
        let k = lisp_list(lx, s.cols[0], s.len, s.live)?;
        let v = lisp_list(lx, s.cols[1], s.len, s.live)?;
        lx.funcall(gl.f_cons.v(), &[k, v])
    }
}

/// Copies of the storage vectors at one instant (`Handle::snapshot`).
pub struct Snap {
    pub cols: [emacs_value; 2],
    pub len: usize,
    pub live: usize,
}

/// The list of the non-hole elements of fresh vector VEC (LIVE of LEN).
fn lisp_list(lx: Lx, vec: emacs_value, len: usize, live: usize) -> LResult<emacs_value> {
    let gl = g();
    if live == 0 {
        return Ok(gl.nil());
    }
    let list = lx.funcall(gl.f_append.v(), &[vec, gl.nil()])?;
    if live == len {
        Ok(list)
    } else {
        lx.funcall(gl.f_delq.v(), &[gl.hole.v(), list])
    }
}

/// `storable` for a classified key: only identity and predicate keys can be
/// the marker (a symbol), so numbers and strings need no check.
#[inline]
fn storable_key(lx: Lx, key: &Key) -> LResult<()> {
    match key.kind() {
        keys::INT | keys::FLOAT | keys::STR => Ok(()),
        _ => storable(lx, &[key.v]),
    }
}

/// Refuse the hole marker as a key or value: free slots are told apart by
/// it, so it must never be an entry's (issue 13, item 4).  One `eq` each
/// (a compare of bits on the direct path).
#[inline(always)]
pub fn storable(lx: Lx, objs: &[emacs_value]) -> LResult<()> {
    let gl = g();
    let hole = gl.hole.v();
    let bad = match direct::layout() {
        Some(_) => {
            // SAFETY: direct path on; live values and a global reference.
            let h = unsafe { direct::obj(hole) };
            objs.iter().any(|&o| unsafe { direct::obj(o) } == h)
        }
        None => objs.iter().any(|&o| lx.eq(o, hole)),
    };
    if bad {
        return Err(error::hole(lx));
    }
    Ok(())
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
    /// The live entries' numbers, in iteration order.
    pub fn live_entries(&self) -> Vec<usize> {
        self.raw.iter().map(|(i, _)| i).collect()
    }

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

    /// Put `l`'s key -> VALUE: set the value where `find` finds the key,
    /// else insert it (looking again if an insertion's allocation let Lisp
    /// change the table).
    pub fn put_lookup(&self, lx: Lx, l: &mut Lookup, value: emacs_value) -> LResult<()> {
        storable(lx, &[value])?;
        storable_key(lx, &l.key)?;
        loop {
            match self.find(lx, l)? {
                Some(f) => return self.store_value(lx, f.entry, value),
                None => {
                    if self.insert_new(lx, &l.key, value)? {
                        return Ok(());
                    }
                }
            }
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
            self.install_storage(lx, kv, vv, n, None)?;
        }
        self.touch();
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
        let (Some(l), Some(_), Some(oo)) = (direct::layout(), keys.obj, out.obj) else { return from };
        let plan = self.test.plan();
        let Ok(t) = self.t.try_borrow() else { return from };
        let n = keys.len.min(out.len);
        for i in from..n {
            if i > from && quit_requested(lx, i) {
                return i;
            }
            // (On the direct path `at` rewrites a box and cannot fail.)
            let Ok(key) = keys.at(lx, i) else { return i };
            let Some(k) = keys::classify_quick(l, plan, key) else { return i };
            match t.find_quick(l, &k) {
                Some(Some(f)) => {
                    if let Some(v) = t.value_obj(f.entry) {
                        // SAFETY: `i` < `n` <= the live vector's length; the
                        // value is live (in the table).
                        unsafe { direct::vset(oo, i, v) };
                    }
                }
                Some(None) => {}
                None => return i,
            }
        }
        n
    }

    /// `rhash-merge`'s loop on the direct path, for a source `src` with the
    /// same test, in one borrow of each table: put `src`'s entries from
    /// entry number `from` on into this table, reusing their cached hashes,
    /// while each step is Lisp-free (`key_box`, a local value box of this
    /// call, holds the key being put).  Returns where it stopped: the end
    /// of `src`'s entries, or an entry that needs Lisp or vectors that must
    /// grow.
    pub fn merge_quick(&self, lx: Lx, src: &Handle, key_box: emacs_value, from: usize) -> usize {
        let Some(l) = direct::layout() else { return from };
        if std::ptr::eq(self, src) {
            // Merging a table into itself changes nothing; the general
            // path does it one entry at a time.
            return from;
        }
        let (Ok(s), Ok(mut t)) = (src.t.try_borrow(), self.t.try_borrow_mut()) else { return from };
        let Some((sko, svo)) = s.storage.as_ref().and_then(|st| st.kobj.zip(st.vobj)) else { return from };
        let hole = {
            // SAFETY: direct path on; a global reference.
            unsafe { direct::obj(g().hole.v()) }
        };
        let slots = s.raw.slots();
        let mut changed = false;
        let mut i = from;
        while i < slots {
            if i > from && quit_requested(lx, i) {
                break;
            }
            let Some(e) = s.raw.entry(i) else {
                i += 1;
                continue;
            };
            // SAFETY: `i` is a live entry of `src`, below its vectors'
            // length; `key_box` is a local value box of this call.
            let (ko, vo) = unsafe { (direct::vref(sko, i), direct::vref(svo, i)) };
            if vo == hole {
                break;
            }
            // SAFETY: as above.
            let key = Key { v: unsafe { direct::set_box(key_box, ko); key_box }, meta: e.meta, payload: e.payload };
            if !keys::is_quick(l, &key) {
                break;
            }
            match t.find_quick(l, &key) {
                Some(Some(f)) => t.set_value_direct(f.entry, vo),
                Some(None) if t.insert_direct(&key, ko, vo) => {}
                _ => break,
            }
            changed = true;
            i += 1;
        }
        drop(t);
        if changed {
            self.touch();
        }
        i
    }

    /// `maphash` on the direct path: call FUNCTION with each entry's key and
    /// value in iteration order, reading both in one Lisp-free step and
    /// re-reading the table after each call (FUNCTION may change it: keys
    /// added in later places are visited, a clear ends the walk).  `boxes`
    /// are two local value boxes of this call, rewritten for each entry.
    /// `None` on the official path (the caller walks from Lisp).
    pub fn walk_direct(&self, lx: Lx, function: emacs_value, boxes: [emacs_value; 2]) -> Option<LResult<()>> {
        direct::layout()?;
        let hole = {
            // SAFETY: direct path on; a global reference.
            unsafe { direct::obj(g().hole.v()) }
        };
        let mut i = 0;
        loop {
            let pair = self.t.try_borrow().ok().and_then(|t| {
                let s = t.storage.as_ref()?;
                let (ko, vo) = s.kobj.zip(s.vobj)?;
                // The walk's end is re-read at each step.
                (i < t.raw.slots()).then(|| {
                    // SAFETY: live vectors at least `slots` long.
                    unsafe { (direct::vref(ko, i), direct::vref(vo, i)) }
                })
            });
            let Some((k, v)) = pair else { return Some(Ok(())) };
            i += 1;
            if k == hole || v == hole {
                continue;
            }
            // SAFETY: local value boxes of this call (check `return`); the
            // objects are live (in the table's vectors).
            let args = unsafe {
                direct::set_box(boxes[0], k);
                direct::set_box(boxes[1], v);
                [boxes[0], boxes[1]]
            };
            if let Err(e) = lx.funcall(function, &args) {
                return Some(Err(e));
            }
        }
    }

    /// `rhash-tally-into`'s loop on the direct path, in one borrow (as
    /// `get_many_quick`): count `elems[i]` from `from` on while each step
    /// is Lisp-free (`tally_step`); returns where it stopped.
    pub fn tally_many_quick(&self, lx: Lx, elems: &Slots, from: usize) -> usize {
        let (Some(l), Some(_)) = (direct::layout(), elems.obj) else { return from };
        let plan = self.test.plan();
        let Ok(mut t) = self.t.try_borrow_mut() else { return from };
        self.touch();
        for i in from..elems.len {
            if i > from && quit_requested(lx, i) {
                return i;
            }
            let Ok(key) = elems.at(lx, i) else { return i };
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
        let done = self.quick(key, |t, k, f| t.tally_step(k, unsafe { direct::obj(key) }, f)).unwrap_or(false);
        if done {
            self.touch();
        }
        done
    }
}

/// A new Lisp table with `test` holding, in order, the entries `entries`
/// of each `(src, entries)` part, with their cached hashes (the parts'
/// tables hash alike and hold distinct keys); the sources must not change
/// meanwhile (the caller holds them busy).  The entries are copied in one
/// Lisp-free step once the new vectors exist.
pub fn build_from(lx: Lx, test: Test, parts: &[(&Handle, &[usize])]) -> LResult<emacs_value> {
    let n: usize = parts.iter().map(|p| p.1.len()).sum();
    let mut raw = RawTable::with_capacity(n).map_err(|_| error::memory(lx))?;
    for (src, entries) in parts {
        let ok = src.read(lx, |t| -> Result<(), crate::table::AllocError> {
            for &i in entries.iter() {
                if let Some(e) = t.raw.entry(i) {
                    raw.insert(e.meta, e.payload)?;
                }
            }
            Ok(())
        })?;
        ok.map_err(|_| error::memory(lx))?;
    }
    let h = Handle::new(test, Table { raw, storage: None, hint: 0 });
    if n > 0 {
        let gl = g();
        let cell = h.new_cell(lx)?;
        let len = int(lx, n)?;
        let kv = Slots::new(lx, lx.funcall(gl.f_make_vector.v(), &[len, gl.hole.v()])?)?;
        let vv = Slots::new(lx, lx.funcall(gl.f_make_vector.v(), &[len, gl.hole.v()])?)?;
        // No Lisp from here to the copy's end.
        let mut j = 0;
        for (src, entries) in parts {
            let s = src.read(lx, |t| t.storage.as_ref().map(|s| (s.keys(), s.vals(), s.kobj.zip(s.vobj))))?;
            let Some((sk, sv, objs)) = s else {
                if entries.is_empty() {
                    continue;
                }
                return Err(error::internal(lx, "entries without storage"));
            };
            for &i in entries.iter() {
                match (objs, kv.obj, vv.obj) {
                    // SAFETY: live plain vectors; `i` is a live entry of
                    // `src` (below its vectors' length) and `j` < `n`, the
                    // copies' length.
                    (Some((ko, vo)), Some(dk), Some(dv)) => unsafe {
                        direct::vset(dk, j, direct::vref(ko, i));
                        direct::vset(dv, j, direct::vref(vo, i));
                    },
                    _ => {
                        kv.set(lx, j, lx.vec_get(sk, i)?)?;
                        vv.set(lx, j, lx.vec_get(sv, i)?)?;
                    }
                }
                j += 1;
            }
        }
        h.install_storage(lx, kv.value(), vv.value(), n, cell)?;
    }
    h.into_lisp(lx)
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
        let cell = h.new_cell(lx)?;
        let n = int(lx, room)?;
        let kv = lx.funcall(gl.f_make_vector.v(), &[n, gl.hole.v()])?;
        let vv = lx.funcall(gl.f_make_vector.v(), &[n, gl.hole.v()])?;
        for (i, (&k, &v)) in keys.iter().zip(vals).enumerate() {
            lx.vec_set(kv, i, k)?;
            lx.vec_set(vv, i, v)?;
        }
        h.install_storage(lx, kv, vv, room, cell)?;
    }
    h.into_lisp(lx)
}
