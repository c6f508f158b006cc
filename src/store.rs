//! A table: the pure `RawTable` plus its storage (`storage.rs`), behind the
//! `Handle` that Lisp holds.  The only module that changes a table, and the
//! only one that makes tables.
//!
//! A key's way: `locate` is the one probe.  It answers "found at this
//! entry" or "absent" for a key given as a Lisp value or already
//! classified (an entry of a table with the same test), Lisp-free on the
//! direct path when the key allows (`locate_quick`, which may decline),
//! else classifying and comparing through Lisp (`find`).  Every lookup and
//! every insertion (`put`, `put_key`, the bulk loops) starts from it; an
//! absent key goes in through `insert`.
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
//! - the hole marker is never a key or value of an entry (`storable`).

use crate::cache;
use crate::direct::{self, Layout};
use crate::error;
use crate::ffi::{LResult, Lx};
use crate::globals::g;
use crate::keys::{self, Key, Lookup, Spec, Test};
use crate::storage::{grown_len, hole_obj, holes, LispStorage, Storage};
use crate::table::RawTable;
use emacs::raw::emacs_value;
use std::cell::{Cell, RefCell};
use std::ffi::c_void;

pub use crate::storage::{int, Slots};

/// A table's mutable state (its test, which never changes, is in `Handle`).
pub struct Table {
    raw: RawTable,
    storage: LispStorage,
    /// Size hint for the first storage allocation.
    hint: usize,
}

impl Table {
    fn new(raw: RawTable, hint: usize) -> Table {
        Table { raw, storage: LispStorage::default(), hint }
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
        self.storage.room().max(self.raw.len())
    }

    /// `(SLOTS COUNT TOMBSTONES INDEX-SIZE VECTOR-LENGTH)`.
    pub fn stats(&self) -> [usize; 5] {
        let r = &self.raw;
        [r.slots(), r.len(), r.tombstones(), r.index_len(), self.storage.room()]
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
            bytes: self.raw.heap_bytes() + std::mem::size_of::<Handle>(),
            vector_length: self.storage.room(),
        }
    }

    /// The probe of `locate_quick`: Lisp-free, on the direct path.  `None`
    /// (declined) when a comparison needs Lisp.
    #[inline(always)]
    fn find_quick(&self, l: &Layout, key: &Key) -> Option<Option<Found>> {
        if !self.storage.exists() {
            return Some(None);
        }
        let q = self.storage.quick()?;
        let mut probe = self.raw.probe(key.meta);
        while let Some(i) = self.raw.next_candidate(&mut probe) {
            if keys::same_quick(l, key, self.raw.payload(i), q.key(i))? {
                return Some(Some(Found { entry: i, slot: self.raw.last_slot(&probe) }));
            }
        }
        Some(None)
    }

    /// Insert a key found absent if the storage has room: index and
    /// storage change together, with no Lisp.  `Ok(false)` (nothing
    /// changed) when the storage must grow first.  The caller checked the
    /// key and value (`storable`).
    #[inline]
    fn insert_with_room(&mut self, lx: Lx, k: &Key, value: emacs_value) -> LResult<bool> {
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
            Some(f) => match direct::fixnum(q.value(f.entry)) {
                Some(n) if n < (1 << 61) - 1 => {
                    q.set_value(f.entry, direct::make_fixnum(n + 1));
                    Ok(true)
                }
                _ => Ok(false),
            },
            // SAFETY: the direct path is on (`q`); `k.v` is live.
            None if k.kind() == keys::IDENT && unsafe { direct::obj(k.v) } == hole_obj() => Ok(false),
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
        let l = direct::layout()?;
        let k = match key {
            KeyArg::Value(v) => keys::classify_quick(l, self.test.plan(), v)?,
            KeyArg::Classified(k) => keys::is_quick(l, &k).then_some(k)?,
        };
        let t = self.t.try_borrow().ok()?;
        Some((k, t.find_quick(l, &k)?))
    }

    /// The entry holding a key equal to `l.key`, if any, comparing through
    /// Lisp where needed.  May run Lisp (predicates, a GC inside them); if
    /// that Lisp changed the table the probe starts over, so the result
    /// describes the table as it is on return (the caller uses it before
    /// running Lisp again).
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
        match self.locate(lx, KeyArg::Value(key))?.1 {
            Some(f) => self.read(lx, |t| t.storage.value_to(lx, f.entry, key))?,
            None => Ok(default.unwrap_or_else(|| g().nil())),
        }
    }

    /// Whether KEY is present.
    #[inline(always)]
    pub fn contains(&self, lx: Lx, key: KeyArg) -> LResult<bool> {
        Ok(self.locate(lx, key)?.1.is_some())
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

    /// Give the storage room for `need` places (`grown_len`).  The new
    /// vectors are allocated first, through Lisp calls that may GC, quit or
    /// fail, leaving the table as it was; then `install` switches to them
    /// with no Lisp call.  Returns true if Lisp run during the allocation
    /// changed the table (its current contents are then copied over,
    /// Lisp-free): the caller must look again.
    fn grow_storage(&self, lx: Lx, need: usize) -> LResult<bool> {
        let (len, hint, old) = self.read(lx, |t| (t.storage.room(), t.hint, t.storage.columns()))?;
        if need <= len {
            return Ok(false);
        }
        let g0 = self.gen();
        let gl = g();
        let new_len = grown_len(len, need, hint);
        let mut made = [gl.nil(); 2];
        for (k, slot) in made.iter_mut().enumerate() {
            *slot = match old {
                None => holes(lx, new_len)?,
                Some(o) => {
                    let tail = holes(lx, new_len - len)?;
                    lx.funcall(gl.f_vconcat.v(), &[o[k], tail])?
                }
            };
        }
        let cell = self.new_cell(lx)?;
        // No Lisp runs from here on.
        let changed = self.gen() != g0;
        if changed {
            let len2 = self.read(lx, |t| t.storage.room())?;
            if need <= len2 {
                return Ok(true);
            }
            // len2 < need <= new_len: take the current contents.
            self.read(lx, |t| t.storage.copy_prefix(lx, [true, true], made, len2))??;
        }
        self.install_storage(lx, made, new_len, cell)?;
        Ok(changed)
    }

    /// A fresh `[KEYS VALS]` cell for `install_storage` when the table has
    /// none yet (`None` otherwise).  Calls Lisp.
    fn new_cell(&self, lx: Lx) -> LResult<Option<emacs_value>> {
        if self.read(lx, |t| t.storage.exists())? {
            return Ok(None);
        }
        let gl = g();
        Ok(Some(lx.funcall(gl.f_make_vector.v(), &[int(lx, 2)?, gl.nil()])?))
    }

    /// Make `cols` (`[KEYS VALS]`, `len` long, complete) the table's
    /// storage, in a step that runs no Lisp.
    fn install_storage(&self, lx: Lx, cols: [emacs_value; 2], len: usize, cell: Option<emacs_value>) -> LResult<()> {
        let old = self.write(lx, |t| t.storage.install(lx, cols[0], cols[1], len, cell))??;
        self.touch();
        // The old storage's references go through the release queue.
        drop(old);
        Ok(())
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

    /// Entry `i` as a key (with its cached `meta` and payload) and its
    /// value, both in `boxes` when the storage can rewrite them (valid
    /// until the next call with the same boxes), else fresh values; `None`
    /// for a free entry or one past the end.
    pub fn entry_to(&self, lx: Lx, i: usize, boxes: [emacs_value; 2]) -> LResult<Option<(Key, emacs_value)>> {
        self.read(lx, |t| {
            let Some(e) = t.raw.entry(i) else { return Ok(None) };
            let [k, v] = t.storage.entry_to(lx, i, boxes)?;
            Ok(Some((Key { v: k, meta: e.meta, payload: e.payload }, v)))
        })?
    }

    /// As `entry_to`, with values valid for the whole call.
    pub fn entry_at(&self, lx: Lx, i: usize) -> LResult<Option<(Key, emacs_value)>> {
        self.read(lx, |t| {
            let Some(e) = t.raw.entry(i) else { return Ok(None) };
            let (k, v) = (t.storage.key(lx, i)?, t.storage.value(lx, i)?);
            Ok(Some((Key { v: k, meta: e.meta, payload: e.payload }, v)))
        })?
    }

    /// `maphash`: call FUNCTION with each entry's key and value in
    /// iteration order, reading both in one Lisp-free step and re-reading
    /// the table after each call (FUNCTION may change it: keys added in
    /// later places are visited, a clear ends the walk).  `boxes` are two
    /// local value boxes of this call, rewritten for each entry.  `None`
    /// when the storage is walked faster from Lisp (`Storage::lisp_walk`).
    pub fn walk(&self, lx: Lx, function: emacs_value, boxes: [emacs_value; 2]) -> Option<LResult<()>> {
        if self.t.try_borrow().ok()?.storage.lisp_walk() {
            return None;
        }
        let mut i = 0;
        loop {
            // The walk's end is re-read at each step.
            let step = self.read(lx, |t| {
                (i < t.raw.slots()).then(|| t.raw.entry(i).map(|_| t.storage.entry_to(lx, i, boxes)))
            });
            let args = match step {
                Ok(Some(Some(Ok(args)))) => args,
                Ok(Some(None)) => {
                    i += 1;
                    continue;
                }
                Ok(None) => return Some(Ok(())),
                Ok(Some(Some(Err(e)))) | Err(e) => return Some(Err(e)),
            };
            i += 1;
            if let Err(e) = lx.funcall(function, &args) {
                return Some(Err(e));
            }
        }
    }
}

// ---- Building tables ----

/// Make a new, empty table object.
pub fn make(lx: Lx, test: Test, hint: usize) -> LResult<emacs_value> {
    // Reserve the Rust side up front so a huge :size fails here, cleanly.
    match RawTable::with_capacity(hint) {
        Ok(raw) => Handle::new(test, Table::new(raw, hint)).into_lisp(lx),
        // (The failed Test's refs went to the release queue on drop.)
        Err(_) => Err(error::memory(lx)),
    }
}

impl Handle {
    /// The one way a table gets an index and a storage together: storage
    /// of `len` places is allocated (Lisp calls), then, with no Lisp, `fill`
    /// writes each entry's key and value at its place in the new columns
    /// and returns the index describing them, and both are installed.
    /// `fill` gets `None` when it must not run (the table changed during
    /// the allocation and `retry` says to start over).
    fn assemble(
        &self,
        lx: Lx,
        len: usize,
        fill: impl Fn(Lx, &[Slots; 2]) -> LResult<Option<RawTable>>,
    ) -> LResult<()> {
        loop {
            let cell = self.new_cell(lx)?;
            let cols = [Slots::new(lx, holes(lx, len)?)?, Slots::new(lx, holes(lx, len)?)?];
            // No Lisp runs from here on.
            let Some(raw) = fill(lx, &cols)? else { continue };
            self.install_storage(lx, [cols[0].value(), cols[1].value()], len, cell)?;
            self.write(lx, |t| t.raw = raw)?;
            return Ok(());
        }
    }

    /// A new table with the same test, entries, order and capacity.
    pub fn copy(&self, lx: Lx) -> LResult<emacs_value> {
        let hint = self.read(lx, |t| t.hint)?;
        let copy = Handle::new(self.test.try_clone(lx)?, Table::new(RawTable::new(), hint));
        let len = self.read(lx, |t| t.storage.exists().then(|| t.storage.room()))?;
        if let Some(len) = len {
            // The index and storage as they are at one instant (after the
            // allocation, which may run Lisp that changes this table).
            copy.assemble(lx, len, |lx, cols| {
                self.read(lx, |t| {
                    if t.storage.room() > len {
                        return Ok(None);
                    }
                    let live = t.live_entries();
                    t.storage.copy_entries(lx, live.iter().map(|&i| (i, i)), cols)?;
                    t.raw.try_clone().map(Some).map_err(|_| error::memory(lx))
                })?
            })?;
        }
        copy.into_lisp(lx)
    }

    /// Give back the memory of removed entries: a compacted index
    /// (`RawTable::compacted`) and storage just long enough for the live
    /// entries, in the same order.  The caller checked that the table may
    /// change.
    pub fn compact(&self, lx: Lx) -> LResult<()> {
        let _busy = self.busy();
        let (same, exists) = self.read(lx, |t| {
            let same = t.raw.compacted().map(|(c, _)| {
                c.slots() == t.raw.slots() && t.storage.room() == c.slots() && c.heap_bytes() == t.raw.heap_bytes()
            });
            (same, t.storage.exists())
        })?;
        if same.map_err(|_| error::memory(lx))? {
            return Ok(());
        }
        if !exists {
            let raw = self.read(lx, |t| t.raw.compacted())?.map_err(|_| error::memory(lx))?.0;
            self.touch();
            return self.write(lx, |t| {
                t.raw = raw;
                t.hint = 0;
            });
        }
        let n = self.read(lx, Table::len)?;
        self.assemble(lx, n, |lx, cols| {
            self.read(lx, |t| {
                // (Lisp run by a GC during the allocation may have put
                // entries: then allocate again.)
                if t.raw.len() != n {
                    return Ok(None);
                }
                let (raw, from) = t.raw.compacted().map_err(|_| error::memory(lx))?;
                t.storage.copy_entries(lx, from.iter().copied().zip(0..), cols)?;
                Ok(Some(raw))
            })?
        })?;
        self.write(lx, |t| t.hint = 0)
    }
}

/// A new table with `test` holding, in order, the entries `entries` of
/// each `(src, entries)` part, with their cached hashes (the parts' tables
/// hash alike and hold distinct keys); the sources must not change
/// meanwhile (the caller holds them busy).
pub fn build_from(lx: Lx, test: Test, parts: &[(&Handle, &[usize])]) -> LResult<emacs_value> {
    let n: usize = parts.iter().map(|p| p.1.len()).sum();
    let h = Handle::new(test, Table::new(RawTable::new(), 0));
    if n > 0 {
        h.assemble(lx, n, |lx, cols| {
            let mut raw = RawTable::with_capacity(n).map_err(|_| error::memory(lx))?;
            let mut j = 0;
            for (src, entries) in parts {
                src.read(lx, |t| {
                    for &i in entries.iter() {
                        if let Some(e) = t.raw.entry(i) {
                            raw.insert(e.meta, e.payload).map_err(|_| error::memory(lx))?;
                        }
                    }
                    t.storage.copy_entries(lx, entries.iter().copied().zip(j..), cols)
                })??;
                j += entries.len();
            }
            Ok(Some(raw))
        })?;
    }
    h.into_lisp(lx)
}

/// A new table with `test` holding `pairs` (keys classified for `test`,
/// distinct under it) in order, with room for `room` entries; then each of
/// `more` put as `rhash-put` would (keys classified for `test`, perhaps
/// equal to earlier ones).
pub fn build(lx: Lx, test: Test, pairs: &[(Key, emacs_value)], more: &[(Key, emacs_value)]) -> LResult<emacs_value> {
    let n = pairs.len();
    let h = Handle::new(test, Table::new(RawTable::new(), 0));
    let room = n + more.len();
    if room > 0 {
        h.assemble(lx, room, |lx, cols| {
            let mut raw = RawTable::with_capacity(room).map_err(|_| error::memory(lx))?;
            for (j, (k, v)) in pairs.iter().enumerate() {
                raw.insert(k.meta, k.payload).map_err(|_| error::memory(lx))?;
                cols[0].set(lx, j, k.v)?;
                cols[1].set(lx, j, *v)?;
            }
            Ok(Some(raw))
        })?;
    }
    let result = h.into_lisp(lx)?;
    let h = Handle::of(lx, result)?;
    let _busy = h.busy();
    for (i, (k, v)) in more.iter().enumerate() {
        if quit_requested(lx, i) {
            return Err(crate::ffi::Exit);
        }
        h.put_key(lx, KeyArg::Classified(*k), *v)?;
    }
    Ok(result)
}

impl Handle {
    /// Put KEYS[i] -> VALS[i] for each i, as repeated puts would.  A table
    /// that never held an entry takes both vectors as its storage: the
    /// pairs go into a scratch index whose keys are the KEYS vector itself
    /// (`distinct`), and on success the table takes that index and both
    /// vectors, so per entry only the key is read and classified.  Any
    /// exit leaves the table as it was.  Other tables (and a table that
    /// Lisp run by a GC filled meanwhile) get repeated puts.
    pub fn adopt(&self, lx: Lx, table: emacs_value, keys: emacs_value, vals: emacs_value) -> LResult<()> {
        self.check_mutable(lx, table)?;
        let (ks, vs) = (Slots::new(lx, keys)?, Slots::new(lx, vals)?);
        let n = ks.len();
        if vs.len() != n {
            return Err(error::length_mismatch(lx, keys, vals));
        }
        let g0 = self.gen();
        let fresh = self.read(lx, |t| !t.storage.exists() && t.raw.slots() == 0)?;
        if !fresh || n == 0 {
            return self.put_pairs(lx, table, &ks, &vs, n);
        }
        let Some(raw) = self.distinct(lx, &ks, Some(&vs))? else { return Ok(()) };
        let w = raw.len();
        let cell = self.new_cell(lx)?;
        // No Lisp runs from here on, unless Lisp run by a GC (in a hash or
        // compare call, or just above) put entries meanwhile: then the pairs
        // go in as puts.
        if self.gen() != g0 {
            return self.put_pairs(lx, table, &ks, &vs, w);
        }
        self.install_storage(lx, [keys, vals], n, cell)?;
        self.write(lx, |t| t.raw = raw)
    }

    /// Put KEYS[i] -> VALS[i] for i below `n`, one put each.
    fn put_pairs(&self, lx: Lx, table: emacs_value, keys: &Slots, vals: &Slots, n: usize) -> LResult<()> {
        for i in 0..n {
            if quit_requested(lx, i) {
                return Ok(());
            }
            let (k, v) = (lx.vec_get(keys.value(), i)?, lx.vec_get(vals.value(), i)?);
            self.put(lx, table, k, v)?;
        }
        Ok(())
    }

    /// Move the distinct elements of `keys` (a fresh vector that no Lisp
    /// sees) to its front in first-occurrence order, as repeated puts would
    /// keep them, under this handle's test; with `vals`, each pair moves
    /// along and a repeated key's value replaces the first one's.  The rest
    /// of both vectors is filled with the hole marker.  Returns the index
    /// describing the front (entry e is `keys[e]`), or `None` when C-g is
    /// pending.
    fn distinct(&self, lx: Lx, keys: &Slots, vals: Option<&Slots>) -> LResult<Option<RawTable>> {
        let n = keys.len();
        let mut raw = RawTable::with_capacity(n.min(1 << 16)).map_err(|_| error::memory(lx))?;
        let mut w = 0;
        for i in 0..n {
            if quit_requested(lx, i) {
                return Ok(None);
            }
            let k = lx.vec_get(keys.value(), i)?;
            let v = match vals {
                Some(vs) => {
                    let v = lx.vec_get(vs.value(), i)?;
                    storable(lx, &[k, v])?;
                    Some(v)
                }
                None => None,
            };
            let mut l = self.classify(lx, k)?;
            match self.find_in(lx, &mut l, &raw, keys)? {
                Some(e) => {
                    if let (Some(vs), Some(v)) = (vals, v) {
                        vs.set(lx, e, v)?;
                    }
                }
                None => {
                    let e = raw.insert(l.key.meta, l.key.payload).map_err(|_| error::memory(lx))?;
                    debug_assert_eq!(e, w);
                    if e != i {
                        keys.set(lx, e, k)?;
                        if let (Some(vs), Some(v)) = (vals, v) {
                            vs.set(lx, e, v)?;
                        }
                    }
                    w += 1;
                }
            }
        }
        let hole = g().hole.v();
        for j in w..n {
            keys.set(lx, j, hole)?;
            if let Some(vs) = vals {
                vs.set(lx, j, hole)?;
            }
        }
        Ok(Some(raw))
    }

    /// `find` in an index being built outside the table (`distinct`):
    /// `raw`'s entry e has its key at place e of `keys`.
    fn find_in(&self, lx: Lx, l: &mut Lookup, raw: &RawTable, keys: &Slots) -> LResult<Option<usize>> {
        let mut probe = raw.probe(l.key.meta);
        while let Some(e) = raw.next_candidate(&mut probe) {
            let stored = keys::Stored { vec: keys.value(), obj: keys.quick(), i: e };
            if keys::same(lx, &self.test, l, raw.payload(e), || stored)? {
                return Ok(Some(e));
            }
        }
        Ok(None)
    }
}

/// The distinct elements of `elems` (a fresh vector that no Lisp sees)
/// under `test`, in first-occurrence order, as a fresh list; `None` when
/// C-g is pending.
pub fn uniq(lx: Lx, test: Test, elems: emacs_value) -> LResult<Option<emacs_value>> {
    let gl = g();
    let h = Handle::new(test, Table::new(RawTable::new(), 0));
    let keys = Slots::new(lx, elems)?;
    let Some(raw) = h.distinct(lx, &keys, None)? else { return Ok(None) };
    let w = raw.len();
    let part = if w == keys.len() { elems } else { lx.funcall(gl.f_substring.v(), &[elems, int(lx, 0)?, int(lx, w)?])? };
    Ok(Some(lx.funcall(gl.f_append.v(), &[part, gl.nil()])?))
}

// ---- Reading a whole table ----

/// Copies of the storage columns at one instant (`Handle::snapshot`).
pub struct Snap {
    pub cols: [emacs_value; 2],
    pub len: usize,
    pub live: usize,
}

impl Handle {
    /// Copies of the storage columns (`cols`: which ones) taken at one
    /// instant, their first `slots` places, with the number of live entries
    /// then; `None` before the first entry.  On the direct path: allocate,
    /// then copy with no Lisp in between.  On the official path the copies
    /// are Lisp calls that may GC and let Lisp change the table; they are
    /// retried while that happens (three times), then made with Lisp-free
    /// element copies into vectors allocated beforehand, so the walk always
    /// ends.
    fn snapshot(&self, lx: Lx, cols: [bool; 2]) -> LResult<Option<Snap>> {
        let gl = g();
        let mut tries = if direct::layout().is_some() { 3 } else { 0 };
        loop {
            let g0 = self.gen();
            let (vecs, len, room) = self.read(lx, |t| (t.storage.columns(), t.raw.slots(), t.storage.room()))?;
            let Some(v) = vecs else { return Ok(None) };
            let mut out = [gl.nil(); 2];
            if tries < 3 {
                tries += 1;
                for k in (0..2).filter(|&k| cols[k]) {
                    out[k] = if len == room {
                        lx.funcall(gl.f_copy_sequence.v(), &[v[k]])?
                    } else {
                        lx.funcall(gl.f_substring.v(), &[v[k], int(lx, 0)?, int(lx, len)?])?
                    };
                }
                if self.gen() == g0 {
                    let live = self.read(lx, |t| t.raw.len())?;
                    return Ok(Some(Snap { cols: out, len, live }));
                }
                continue;
            }
            for k in (0..2).filter(|&k| cols[k]) {
                out[k] = holes(lx, len)?;
            }
            // No Lisp runs from here on: copy what the table holds now.
            let done = self.read(lx, |t| {
                let now = t.raw.slots();
                if !t.storage.exists() || now > len {
                    return Ok(None);
                }
                t.storage.copy_prefix(lx, cols, out, now)?;
                Ok(Some(t.raw.len()))
            })??;
            match done {
                Some(live) => return Ok(Some(Snap { cols: out, len, live })),
                None if !self.read(lx, |t| t.storage.exists())? => return Ok(None),
                None => continue,
            }
        }
    }

    /// The live keys (`which` = 0) or values (1) as a list, from a snapshot.
    pub fn column(&self, lx: Lx, which: usize) -> LResult<emacs_value> {
        let mut cols = [false; 2];
        cols[which] = true;
        match self.snapshot(lx, cols)? {
            Some(s) => lisp_list(lx, s.cols[which], s.len, s.live),
            None => Ok(g().nil()),
        }
    }

    /// `(KEYS . VALUES)`: both lists read at one instant.
    pub fn pairs(&self, lx: Lx) -> LResult<emacs_value> {
        let gl = g();
        let Some(s) = self.snapshot(lx, [true, true])? else {
            return lx.funcall(gl.f_cons.v(), &[gl.nil(), gl.nil()]);
        };
        let k = lisp_list(lx, s.cols[0], s.len, s.live)?;
        let v = lisp_list(lx, s.cols[1], s.len, s.live)?;
        lx.funcall(gl.f_cons.v(), &[k, v])
    }
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

// ---- Checks ----

/// `storable` for a classified key: only identity and predicate keys can be
/// the marker (a symbol), so numbers and strings need no check.
#[inline]
fn storable_key(lx: Lx, key: &Key) -> LResult<()> {
    match key.kind() {
        keys::INT | keys::FLOAT | keys::STR => Ok(()),
        _ => storable(lx, &[key.v]),
    }
}

/// Refuse the hole marker as a key or value: free places are told apart
/// by it, so it must never be an entry's.  One `eq` each (a compare of
/// bits on the direct path).
#[inline(always)]
pub fn storable(lx: Lx, objs: &[emacs_value]) -> LResult<()> {
    let gl = g();
    let hole = gl.hole.v();
    let bad = match direct::layout() {
        // SAFETY: direct path on; live values.
        Some(_) => objs.iter().any(|&o| unsafe { direct::obj(o) } == hole_obj()),
        None => objs.iter().any(|&o| lx.eq(o, hole)),
    };
    if bad {
        return Err(error::hole(lx));
    }
    Ok(())
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

/// Whether C-g is pending, polled every 4096 steps `i` of a long loop; the
/// caller returns at once and Emacs processes the quit.
#[inline]
pub fn quit_requested(lx: Lx, i: usize) -> bool {
    i.is_multiple_of(4096) && lx.should_quit()
}

// ---- The bulk loops' Lisp-free stretches (direct path) ----

impl Handle {
    /// Copy the value of entry `entry` into place `i` of `dst`.
    #[inline]
    pub fn value_into(&self, lx: Lx, entry: usize, dst: &Slots, i: usize) -> LResult<()> {
        let v = self.read(lx, |t| match t.storage.quick() {
            Some(q) if dst.set_obj(i, q.value(entry)) => Ok(None),
            _ => t.storage.value(lx, entry).map(Some),
        })??;
        match v {
            Some(v) => dst.set(lx, i, v),
            None => Ok(()),
        }
    }

    /// `rhash-get-many`'s loop, in one borrow: for each i from `from`, copy
    /// the value of `keys[i]` (if present) into `out[i]`.  Declines (stops)
    /// at the first key that needs Lisp, or when C-g is pending (polled
    /// every 4096 keys); returns where it stopped (`len` when done).
    pub fn get_many_quick(&self, lx: Lx, keys: &Slots, out: &Slots, from: usize) -> usize {
        let (Some(l), Some(_)) = (direct::layout(), out.quick()) else { return from };
        let plan = self.test.plan();
        let Ok(t) = self.t.try_borrow() else { return from };
        let n = keys.len().min(out.len());
        for i in from..n {
            if i > from && quit_requested(lx, i) {
                return i;
            }
            let Ok(key) = keys.at(lx, i) else { return i };
            let Some(k) = keys::classify_quick(l, plan, key) else { return i };
            match t.find_quick(l, &k) {
                Some(Some(f)) => {
                    if let Some(q) = t.storage.quick() {
                        out.set_obj(i, q.value(f.entry));
                    }
                }
                Some(None) => {}
                None => return i,
            }
        }
        n
    }

    /// `rhash-merge`'s loop for a source `src` with the same test, in one
    /// borrow of each table: put `src`'s entries from entry number `from`
    /// on into this table, reusing their cached hashes, while each step is
    /// Lisp-free (`boxes`, two local value boxes of this call, hold the
    /// entry being put).  Returns where it stopped (declined): the end of
    /// `src`'s entries, or an entry that needs Lisp or storage that must
    /// grow.
    pub fn merge_quick(&self, lx: Lx, src: &Handle, boxes: [emacs_value; 2], from: usize) -> usize {
        let Some(l) = direct::layout() else { return from };
        if std::ptr::eq(self, src) {
            // Merging a table into itself changes nothing; the general
            // path does it one entry at a time.
            return from;
        }
        let (Ok(s), Ok(mut t)) = (src.t.try_borrow(), self.t.try_borrow_mut()) else { return from };
        let Some(sq) = s.storage.quick() else { return from };
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
            let [kv, vv] = sq.entry_to(i, boxes);
            let key = Key { v: kv, meta: e.meta, payload: e.payload };
            if !keys::is_quick(l, &key) {
                break;
            }
            let done = match t.find_quick(l, &key) {
                Some(Some(f)) => t.storage.set_value(lx, f.entry, vv).is_ok(),
                Some(None) => t.insert_with_room(lx, &key, vv).unwrap_or_else(|_| {
                    lx.clear_exit();
                    false
                }),
                None => false,
            };
            if !done {
                break;
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

    /// `rhash-tally-into`'s loop, in one borrow (as `get_many_quick`):
    /// count `elems[i]` from `from` on while each step is Lisp-free
    /// (`Table::tally_quick`); returns where it stopped (declined).
    pub fn tally_many_quick(&self, lx: Lx, elems: &Slots, from: usize, one: emacs_value) -> LResult<usize> {
        let (Some(l), Some(_)) = (direct::layout(), elems.quick()) else { return Ok(from) };
        let plan = self.test.plan();
        let Ok(mut t) = self.t.try_borrow_mut() else { return Ok(from) };
        self.touch();
        for i in from..elems.len() {
            if i > from && quit_requested(lx, i) {
                return Ok(i);
            }
            let Ok(key) = elems.at(lx, i) else { return Ok(i) };
            let Some(k) = keys::classify_quick(l, plan, key) else { return Ok(i) };
            let Some(f) = t.find_quick(l, &k) else { return Ok(i) };
            if !t.tally_quick(lx, &k, f, one)? {
                return Ok(i);
            }
        }
        Ok(elems.len())
    }

    /// `(cl-incf (rhash-get KEY TABLE 0))` (`one` is the fixnum 1; the
    /// caller checked that the table may change).  The Lisp-free step when
    /// the count is a fixnum and the storage has room, else the general
    /// steps (`incremented` makes the new count).
    pub fn tally(&self, lx: Lx, key: emacs_value, one: emacs_value, incremented: impl FnOnce(emacs_value) -> LResult<emacs_value>) -> LResult<()> {
        if let Some((k, f)) = self.locate_quick(KeyArg::Value(key)) {
            if self.write(lx, |t| t.tally_quick(lx, &k, f, one))?? {
                self.touch();
                return Ok(());
            }
        }
        let mut l = self.classify(lx, key)?;
        match self.find(lx, &mut l)? {
            Some(f) => {
                let old = self.value_at(lx, f.entry)?;
                let new = incremented(old)?;
                storable(lx, &[new])?;
                self.set_value(lx, f.entry, new)
            }
            None => self.put_key(lx, KeyArg::Classified(l.key), one),
        }
    }
}
