//! A table: the pure `RawTable` plus its storage (`storage.rs`), behind the
//! `Handle` that Lisp holds.  The only module that changes a table, and the
//! only one that makes tables.
//!
//! A key's way: `locate` is the one probe.  It answers "found at this
//! entry" or "absent" for a key given as a Lisp value or already
//! classified (an entry of a table with the same test), Lisp-free on the
//! direct path when the key allows (`locate_quick`, which may decline),
//! else classifying and comparing through Lisp (`find`).  Every lookup and
//! every insertion starts from it; an absent key goes in through `insert`.
//! The hottest callers (`get`, `put_key`, `remove` and the bulk loops)
//! first try its Lisp-free half for Lisp storage on the direct path in
//! their own borrow (`get_quick`, `put_quick`, `remove_quick`, `loops.rs`:
//! the layout and the storage's view taken once, the probe
//! `storage::probe_quick`), and fall back to `locate` when that declines.
//!
//! Invariants (stated once, kept by the methods of this module alone):
//! - the storage holds entry i's key and value at place i (`storage.rs`);
//! - the table is consistent wherever Lisp can run: each multi-step change
//!   allocates first, then switches in one Lisp-free step;
//! - no Rust borrow is held while Lisp can run.  While a user test's hash
//!   or compare function runs, the table is *busy*: modifying it then gets
//!   `(error "hash table test modifies table" TABLE)`, as a built-in table
//!   does; reads stay allowed.  Other Lisp that runs mid-operation
//!   (`post-gc-hook` and finalizers at a GC inside an allocation) may
//!   modify the table, as with a built-in table: every modification bumps
//!   the handle's generation (`touch`), and an operation that ran Lisp
//!   checks it before relying on what it read earlier.
//! - entry numbers do not move during a walk by entry number (`rhash-map`,
//!   the bulk operations' walks): `compact` waits for the last walk's end
//!   (`walk_begin`, `end_walk`).
//! - the hole marker is never a key or value of an entry (`storable`).

use crate::cache;
use crate::direct;
use crate::error;
use crate::ffi::{LResult, Lx};
use crate::globals::g;
use crate::keys::{self, Key, Lookup, Plan, Spec, Test};
use crate::storage::{holes, storable, storable_key, Storage};
use crate::store_kind::Store;
use crate::table::{grown_len, RawTable};
use emacs::raw::emacs_value;
use std::cell::{Cell, RefCell};
use std::ffi::c_void;

pub use crate::storage::{int, Slots};
pub use build::{build, build_from, make, uniq};

mod build;
mod grow;
mod loops;
mod read;


/// A table's mutable state (its test, which never changes, is in `Handle`).
pub struct Table {
    raw: RawTable,
    storage: Store,
    /// Size hint for the first storage allocation.
    hint: usize,
}

impl Table {
    fn new(raw: RawTable, hint: usize) -> Table {
        Table { raw, storage: Store::default(), hint }
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
        self.storage.capacity(&self.raw)
    }

    /// `(SLOTS COUNT TOMBSTONES INDEX-SIZE VECTOR-LENGTH)`.
    pub fn stats(&self) -> [usize; 5] {
        let r = &self.raw;
        [r.slots(), r.len(), r.tombstones(), r.index_len(), self.vector_length()]
    }

    /// The length of the storage vectors (0 without: native storage too).
    fn vector_length(&self) -> usize {
        self.storage.cell().map_or(0, |_| self.storage.room())
    }

    /// The `[KEYS VALS]` cell, once the table has storage.
    pub fn cell(&self) -> Option<emacs_value> {
        self.storage.cell()
    }

    /// The live entries' numbers, in iteration order.
    pub fn live_entries(&self) -> Vec<usize> {
        self.raw.iter().map(|(i, _)| i).collect()
    }

    /// (live entries, entry slots): entry numbers run over `0..slots`.
    pub fn extent(&self) -> (usize, usize) {
        (self.raw.len(), self.raw.slots())
    }

    /// The numbers `rhash-stats` reports.
    pub fn full_stats(&self) -> Stats {
        let (max_probe, probe_sum) = self.raw.probe_lengths();
        Stats {
            count: self.raw.len(),
            capacity: self.size(),
            slots: self.raw.slots(),
            index_slots: self.raw.index_len(),
            tombstones: self.raw.tombstones(),
            max_probe,
            probe_sum,
            bytes: self.raw.heap_bytes() + std::mem::size_of::<Handle>() + self.storage.heap_bytes(),
            vector_length: self.vector_length(),
        }
    }

    /// The probe of `locate_quick`: Lisp-free.  `None` (declined) when a
    /// comparison needs Lisp.
    #[inline(always)]
    fn find_quick(&self, key: &Key) -> Option<Option<Found>> {
        let found = self.storage.find_quick(&self.raw, key)?;
        Some(found.map(|(entry, slot)| Found { entry, slot }))
    }

    /// Insert a key found absent if the storage has room: index and
    /// storage change together, with no Lisp.  `Ok(false)` (nothing
    /// changed) when the storage must grow first.  The caller checked the
    /// key and value (`storable`).
    #[inline]
    fn insert_with_room(&mut self, lx: Lx, k: &Key, value: emacs_value) -> LResult<bool> {
        self.storage.admit(lx, k, value)?;
        if self.raw.reserve_one().is_err() {
            return Err(error::memory(lx));
        }
        if self.raw.next_insert_slot() >= self.storage.room() {
            return Ok(false);
        }
        let i = self.raw.insert(k.meta, k.payload).map_err(|_| error::memory(lx))?;
        self.storage.set(lx, i, k.v, value)?;
        Ok(true)
    }

    /// Remove a found entry, releasing its key and value.
    #[inline]
    fn remove_found(&mut self, lx: Lx, f: Found) -> LResult<()> {
        self.raw.remove_at(f.slot, f.entry);
        self.storage.free(lx, f.entry)
    }

    /// One count of key `k` found as `f`, on the direct path: a fixnum
    /// count goes up by one, an absent key starts at `one` (the fixnum 1)
    /// if the storage has room.  `Ok(false)` (nothing changed, declined)
    /// otherwise.
    #[inline(always)]
    fn tally_quick(&mut self, lx: Lx, k: &Key, f: Option<Found>, one: emacs_value) -> LResult<bool> {
        let Some(q) = self.storage.quick() else { return Ok(false) };
        match f {
            Some(f) => Ok(q.count_up(f.entry)),
            None if q.is_hole_key(k) => Ok(false),
            None => self.insert_with_room(lx, k, one),
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

/// A key to look up: a Lisp value, or a key already classified for the
/// table's test (an entry of a table with the same test; `v` holds it).
#[derive(Clone, Copy)]
pub enum KeyArg {
    Value(emacs_value),
    Classified(Key),
}

/// The user-ptr payload.
pub struct Handle {
    test: Test,
    /// `test.plan()`, read on every lookup (the user test's hash function
    /// is a global reference that `test` holds).
    plan: Plan,
    t: RefCell<Table>,
    busy: Cell<u32>,
    /// Bumped by every modification (entries, values, storage).
    gen: Cell<u32>,
    /// Walks by entry number in progress (`walk_begin`), and whether a
    /// compaction waits for the last of them to end.
    walks: Cell<u32>,
    compact_pending: Cell<bool>,
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

/// A walk of a table by entry number in progress (`Handle::walk_begin`): while
/// one is, compaction (which renumbers entries) waits for the last walk to
/// end, so that a walk visits every entry that stays in the table.
pub struct Walking<'a>(&'a Handle);

impl Drop for Walking<'_> {
    fn drop(&mut self) {
        self.0.walks.set(self.0.walks.get().saturating_sub(1));
    }
}

/// Finalizer of every rhash user-ptr; its address identifies our objects.
///
/// # Safety
/// Called by Emacs's GC with a pointer made by `Box::into_raw` in `into_lisp`.
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

    /// Native storage: call `f` with each live entry's key and value
    /// encodings (one after the other in one slice), in iteration order,
    /// under one borrow (no Lisp).  False, calling nothing, for Lisp
    /// storage.
    pub fn each_native(&self, lx: Lx, mut f: impl FnMut(&[u8])) -> LResult<bool> {
        self.read(lx, |t| match t.storage.native() {
            Some(n) => {
                t.raw.iter().for_each(|(i, _)| n.with_entry(i, &mut f));
                true
            }
            None => false,
        })
    }

    /// Native storage: put each KEY -> VALUE of `entries`, given as valid,
    /// canonical encodings (a loaded file's), as repeated `rhash-put`
    /// would, in one borrow with no Lisp (C-g is polled: the entries put
    /// before it stay).  `rhash-unsupported` for a key whose identity the
    /// table's test does not keep, with the entries before it put.
    pub fn put_encoded<'a>(&self, lx: Lx, table: emacs_value, entries: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> LResult<()> {
        self.check_mutable(lx, table)?;
        let rule = match self.test {
            Test::Native(rule) => rule,
            _ => return Err(error::internal(lx, "encoded entries for Lisp storage")),
        };
        let refused = self.write(lx, |t| {
            let n = t.storage.native().expect("a native test has native storage");
            for (count, (key, value)) in entries.enumerate() {
                if quit_requested(lx, count + 1) {
                    return Ok(None);
                }
                if !keys::keeps_identity(rule, key) {
                    return Ok(Some(key.to_vec()));
                }
                let meta = crate::native_storage::meta_of(key);
                match n.find_encoded(&t.raw, meta, key) {
                    Some(i) => n.set_value_encoded(lx, i, value)?,
                    None => {
                        t.raw.reserve_one().map_err(|_| error::memory(lx))?;
                        let i = t.raw.next_insert_slot();
                        n.set_encoded(lx, i, key, value)?;
                        if t.raw.insert(meta, 0).is_err() {
                            n.free(i);
                            return Err(error::memory(lx));
                        }
                    }
                }
            }
            Ok(None)
        })?;
        self.touch();
        if let Some(key) = refused? {
            let k = crate::native_storage::decode(lx, &key)?;
            return Err(error::unsupported_key(lx, "This native table's test does not keep this key's identity", k));
        }
        Ok(())
    }

    /// Whether the table keeps native copies of its keys and values.
    pub fn is_native(&self) -> bool {
        matches!(self.test, Test::Native(_))
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

    /// Begin a walk by entry number (see `Walking`); end it with `end_walk`
    /// (or, on an exit, by dropping the guard: a deferred compaction then
    /// waits for the next walk's end or the next `compact`).
    pub fn walk_begin(&self) -> Walking<'_> {
        self.walks.set(self.walks.get() + 1);
        Walking(self)
    }

    /// End a walk; the last one to end runs a compaction asked for during
    /// the walks, if the table may change now.
    pub fn end_walk(&self, lx: Lx, w: Walking) -> LResult<()> {
        drop(w);
        self.after_walk(lx)
    }

    /// The official path's `rhash-map` walks from Lisp, bracketed by two
    /// calls (`rhash--walk-mark`): BEGIN true begins a walk, false ends one.
    pub fn mark_walk(&self, lx: Lx, begin: bool) -> LResult<()> {
        if begin {
            std::mem::forget(self.walk_begin());
            return Ok(());
        }
        self.walks.set(self.walks.get().saturating_sub(1));
        self.after_walk(lx)
    }

    fn after_walk(&self, lx: Lx) -> LResult<()> {
        if self.walks.get() == 0 && self.compact_pending.get() && self.busy.get() == 0 {
            self.compact(lx)?;
        }
        Ok(())
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
    #[inline(always)]
    pub fn read<R>(&self, lx: Lx, f: impl FnOnce(&Table) -> R) -> LResult<R> {
        match self.t.try_borrow() {
            Ok(t) => Ok(f(&t)),
            Err(_) => Err(error::busy(lx)),
        }
    }

    #[inline(always)]
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
        Store::classify(lx, self.plan, key, &self.spec)
    }

    /// The one probe: KEY's classification and its entry, if present.  The
    /// answer holds until Lisp runs again.
    #[inline(always)]
    pub fn locate(&self, lx: Lx, key: KeyArg) -> LResult<(Key, Option<Found>)> {
        if let Some(found) = self.locate_quick(key) {
            return Ok(found);
        }
        let mut l = match key {
            KeyArg::Value(v) => self.classify(lx, v)?,
            KeyArg::Classified(k) => Lookup::cached(k),
        };
        let found = self.find(lx, &mut l)?;
        Ok((l.key, found))
    }

    /// `locate` without Lisp, on the direct path; declines (`None`) when
    /// the direct path is off or the key needs Lisp.
    #[inline(always)]
    fn locate_quick(&self, key: KeyArg) -> Option<(Key, Option<Found>)> {
        let k = match key {
            KeyArg::Value(v) => Store::classify_quick(self.plan, v)?,
            KeyArg::Classified(k) => Store::is_quick(&k).then_some(k)?,
        };
        // SAFETY: as in `get_quick`: a Lisp-free probe that makes no other
        // borrow of the table.
        let t = unsafe { self.t.try_borrow_unguarded() }.ok()?;
        Some((k, t.find_quick(&k)?))
    }

    /// The entry holding a key equal to `l.key`, if any, comparing through
    /// Lisp where needed.  May run Lisp (predicates, a GC inside them); if
    /// that Lisp changed the table the probe starts over, so the result
    /// describes the table as it is on return (the caller uses it before
    /// running Lisp again).
    #[inline]
    pub fn find(&self, lx: Lx, l: &mut Lookup) -> LResult<Option<Found>> {
        // Storage that compares keys itself (native): one Lisp-free probe.
        if let Some(found) = self.read(lx, |t| t.storage.find_classified(&t.raw, &l.key))? {
            return Ok(found.map(|(entry, slot)| Found { entry, slot }));
        }
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
                    t.raw.next_candidate(&mut probe).map(|i| (i, t.raw.last_slot(&probe), t.raw.payload(i), t.storage.stored(i)))
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

    /// `gethash`: KEY's value, or DEFAULT (nil if absent).  On the direct
    /// path the value goes back in KEY's argument box (check `return`).
    #[inline(always)]
    pub fn get(&self, lx: Lx, key: emacs_value, default: Option<emacs_value>) -> LResult<emacs_value> {
        // The Lisp-free probe and the value's read in one borrow.
        if let Some(l) = direct::layout() {
            if let Some(found) = self.get_quick(l, key) {
                return Ok(match found {
                    Some(value) => {
                        // SAFETY: `key` is an argument box of this call
                        // (check `return`); the value is live (stored).
                        unsafe { direct::set_box(key, value) };
                        key
                    }
                    None => default.unwrap_or_else(|| g().nil()),
                });
            }
        }
        // Native storage, or a table without storage yet: the storage's
        // own Lisp-free probe and read, in one borrow.
        if let (Some(k), Ok(t)) = (Store::classify_quick(self.plan, key), self.t.try_borrow()) {
            match t.find_quick(&k) {
                Some(Some(f)) => return t.storage.value_to(lx, f.entry, key),
                Some(None) => return Ok(default.unwrap_or_else(|| g().nil())),
                None => {}
            }
        }
        match self.locate(lx, KeyArg::Value(key))?.1 {
            Some(f) => self.read(lx, |t| t.storage.value_to(lx, f.entry, key))?,
            None => Ok(default.unwrap_or_else(|| g().nil())),
        }
    }

    /// `get`'s Lisp-free step on the direct path for Lisp storage: KEY's
    /// value object, or `Some(None)` when absent; `None` (declined) when
    /// the key or the storage needs the general step.
    #[inline(always)]
    fn get_quick(&self, l: &direct::Layout, key: emacs_value) -> Option<Option<direct::Obj>> {
        let k = keys::classify_quick(l, self.plan, key)?;
        // SAFETY: the shared reference lives only in this Lisp-free step,
        // which makes no other borrow of the table (no Lisp runs, nothing
        // here writes); a mutable borrow held by a caller still refuses it.
        let t = unsafe { self.t.try_borrow_unguarded() }.ok()?;
        let q = t.storage.quick()?;
        let found = crate::storage::probe_quick(l, q, &t.raw, &k)?;
        Some(found.map(|(entry, _)| q.value(entry)))
    }

    /// `put_key`'s Lisp-free step on the direct path for Lisp storage
    /// (VALUE checked by `storable`): `Some(Ok(true))` when done,
    /// `Some(Ok(false))` when the storage must grow first; `None`
    /// (declined) when the key or the storage needs the general step.
    #[inline(always)]
    fn put_quick(&self, lx: Lx, l: &direct::Layout, key: emacs_value, value: emacs_value) -> Option<LResult<bool>> {
        let k = keys::classify_quick(l, self.plan, key)?;
        let mut t = self.t.try_borrow_mut().ok()?;
        let q = t.storage.quick()?;
        Some(match crate::storage::probe_quick(l, q, &t.raw, &k)? {
            Some((entry, _)) => {
                // SAFETY: a live value of this call.
                q.set_value(entry, unsafe { direct::obj(value) });
                Ok(true)
            }
            None => storable_key(lx, &k).and_then(|()| t.insert_with_room(lx, &k, value)),
        })
    }

    /// `remove`'s Lisp-free step on the direct path for Lisp storage:
    /// whether KEY was there (and is now gone); `None` (declined) when the
    /// key or the storage needs the general step.
    #[inline(always)]
    fn remove_quick(&self, lx: Lx, l: &direct::Layout, key: emacs_value) -> Option<LResult<bool>> {
        let k = keys::classify_quick(l, self.plan, key)?;
        let mut t = self.t.try_borrow_mut().ok()?;
        let q = t.storage.quick()?;
        Some(match crate::storage::probe_quick(l, q, &t.raw, &k)? {
            Some((entry, slot)) => t.remove_found(lx, Found { entry, slot }).map(|()| true),
            None => Ok(false),
        })
    }

    /// Whether KEY is present.
    #[inline(always)]
    pub fn contains(&self, lx: Lx, key: KeyArg) -> LResult<bool> {
        Ok(self.locate(lx, key)?.1.is_some())
    }

    /// KEY's value in a table that is only read, valid for the whole call,
    /// if present.  The table is busy only while its own test's Lisp runs
    /// (inside `locate`).
    pub fn value_of(&self, lx: Lx, key: KeyArg) -> LResult<Option<emacs_value>> {
        match self.locate(lx, key)?.1 {
            Some(f) => Ok(Some(self.value_at(lx, f.entry)?)),
            None => Ok(None),
        }
    }

    /// The value of entry `entry` (found under the same `busy`), valid for
    /// the whole call.
    pub fn value_at(&self, lx: Lx, entry: usize) -> LResult<emacs_value> {
        self.read(lx, |t| t.storage.value(lx, entry))?
    }

    /// `remhash` (`table` is the Lisp object, for errors).
    #[inline(always)]
    pub fn remove(&self, lx: Lx, table: emacs_value, key: emacs_value) -> LResult<()> {
        self.check_mutable(lx, table)?;
        if let Some(l) = direct::layout() {
            if let Some(removed) = self.remove_quick(lx, l, key) {
                if removed? {
                    self.touch();
                }
                return Ok(());
            }
        }
        if let (_, Some(f)) = self.locate(lx, KeyArg::Value(key))? {
            self.write(lx, |t| t.remove_found(lx, f))??;
            self.touch();
        }
        Ok(())
    }

    /// `puthash` (the handle of `table`).
    #[inline(always)]
    pub fn put(&self, lx: Lx, table: emacs_value, key: emacs_value, value: emacs_value) -> LResult<()> {
        self.check_mutable(lx, table)?;
        self.put_key(lx, KeyArg::Value(key), value)
    }

    /// Put KEY -> VALUE (the caller checked that the table may change):
    /// set the value where
    /// the probe finds the key, else insert it.  An insertion whose
    /// storage allocation let Lisp change the table looks the key up again.
    pub fn put_key(&self, lx: Lx, key: KeyArg, value: emacs_value) -> LResult<()> {
        storable(lx, &[value])?;
        // The Lisp-free probe and the change in one borrow, when the key
        // allows and the storage has room: Lisp storage on the direct
        // path, then any storage.
        if let (KeyArg::Value(v), Some(l)) = (key, direct::layout()) {
            if let Some(done) = self.put_quick(lx, l, v, value) {
                if done? {
                    self.touch();
                    return Ok(());
                }
            }
        }
        if let KeyArg::Value(v) = key {
            if let (Some(k), Ok(mut t)) = (Store::classify_quick(self.plan, v), self.t.try_borrow_mut()) {
                let done = match t.find_quick(&k) {
                    Some(Some(f)) => t.storage.set_value(lx, f.entry, value).map(|()| true),
                    Some(None) => storable_key(lx, &k).and_then(|()| t.insert_with_room(lx, &k, value)),
                    None => Ok(false),
                };
                drop(t);
                if done? {
                    self.touch();
                    return Ok(());
                }
            }
        }
        let (k, mut found) = self.locate(lx, key)?;
        loop {
            match found {
                Some(f) => return self.set_value(lx, f.entry, value),
                None => {
                    storable_key(lx, &k)?;
                    if self.insert(lx, &k, value)? {
                        return Ok(());
                    }
                }
            }
            found = self.find(lx, &mut Lookup::cached(k))?;
        }
    }

    /// Set the value of a found entry (VALUE checked by `storable`).
    fn set_value(&self, lx: Lx, entry: usize, value: emacs_value) -> LResult<()> {
        self.write(lx, |t| t.storage.set_value(lx, entry, value))??;
        self.touch();
        Ok(())
    }

    /// Insert a key the probe has just found absent.  Returns false, having
    /// changed nothing, if Lisp run during the storage allocation changed
    /// the table: the caller must look the key up again.  The caller
    /// checked the key and value with `storable`.
    fn insert(&self, lx: Lx, key: &Key, value: emacs_value) -> LResult<bool> {
        loop {
            if self.write(lx, |t| t.insert_with_room(lx, key, value))?? {
                self.touch();
                return Ok(true);
            }
            let need = self.read(lx, |t| t.raw.next_insert_slot() + 1)?;
            if self.grow_storage(lx, need)? {
                return Ok(false);
            }
        }
    }

    /// Remove every entry (`table` is the Lisp object, for errors): the
    /// index and the used places of the storage, with no Lisp call.
    pub fn clear(&self, lx: Lx, table: emacs_value) -> LResult<()> {
        self.check_mutable(lx, table)?;
        let cleared = self.write(lx, |t| {
            if t.raw.is_empty() {
                return Ok(false);
            }
            let slots = t.raw.slots();
            t.raw.clear();
            t.storage.clear(lx, slots).map(|()| true)
        })??;
        if cleared {
            self.touch();
        }
        Ok(())
    }

    fn new(test: Test, mut t: Table) -> Box<Handle> {
        if matches!(test, Test::Native(_)) && t.storage.native().is_none() {
            t.storage = Store::for_test(&test);
        }
        Box::new(Handle {
            plan: test.plan(),
            test,
            t: RefCell::new(t),
            busy: Cell::new(0),
            gen: Cell::new(0),
            walks: Cell::new(0),
            compact_pending: Cell::new(false),
            spec: Spec::default(),
        })
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

}

// ---- Checks ----

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

/// Whether C-g is pending, polled every 4096 steps `i` of a long loop; the
/// caller returns at once and Emacs processes the quit.
#[inline]
pub fn quit_requested(lx: Lx, i: usize) -> bool {
    i.is_multiple_of(4096) && lx.should_quit()
}

