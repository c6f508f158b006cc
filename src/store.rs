//! The table behind a Lisp `rhash` object: the pure `RawTable` plus the Lisp
//! storage of its keys and values.
//!
//! Keys and values live in two Lisp vectors, `keys[i]`/`vals[i]` for entry i,
//! free slots holding a private marker (`hole`).  The table holds one global
//! reference per vector, so storing an entry costs two `vec_set`s instead of
//! two global references (measured in docs/design.md).
//!
//! Re-entrancy: no Rust borrow is ever held while Lisp code can run.  While an
//! operation calls a user test's hash or compare function the table is marked
//! busy, and any attempt to modify it then gets a Lisp error, as a built-in
//! table does while its user test runs; reads stay allowed.  Other Lisp that
//! runs mid-operation (post-gc-hook and finalizers at a GC inside one of our
//! calls) may modify the table, as with a built-in table: every modification
//! bumps the handle's generation, and an operation that called Lisp re-checks
//! the generation before it relies on what it read earlier (issue 13).  Each
//! multi-step change allocates first and then switches in one Lisp-free step,
//! so the table is consistent wherever Lisp can run.

use crate::cache;
use crate::ffi::{Exit, Gref, LResult, Lx};
use crate::globals::g;
use crate::keys::{self, Key, Quick, TestKind};
use crate::release;
use crate::table::{Probe, RawTable};
use emacs::raw::emacs_value;
use std::cell::{Cell, RefCell};
use std::ffi::c_void;

pub struct Test {
    pub kind: TestKind,
    /// For user tests: the test's name, compare and hash functions.
    pub user: Option<[Gref; 3]>,
}

pub struct Table {
    pub raw: RawTable,
    /// The key and value vectors (`None` until the first insertion).
    pub vecs: Option<[Gref; 2]>,
    /// `[KEYS VALS]`, the same vectors in a 2-slot vector that Lisp code can
    /// read (`rhash--storage`); updated in place (`vec_set`, which runs no
    /// Lisp) in the same step as `vecs`.  Entry slots never move, so
    /// `rhash-map` walks these vectors from byte-code.
    pub cell: Option<Gref>,
    /// Length of both vectors (>= raw.slots()).
    pub vlen: usize,
    /// Size hint for the first vector allocation.
    pub hint: usize,
    pub test: Test,
}

// Both drops run in the GC finalizer: no Emacs calls, only queue the refs.
impl Drop for Table {
    fn drop(&mut self) {
        release::defer(self.vecs.take().into_iter().flatten().chain(self.cell.take()));
    }
}

impl Drop for Test {
    fn drop(&mut self) {
        release::defer(self.user.take().into_iter().flatten());
    }
}

/// Global references to several values, all or none (on failure the ones
/// already made go to the release queue).
fn grefs<const N: usize>(lx: Lx, vals: [emacs_value; N]) -> LResult<[Gref; N]> {
    let mut made = Vec::with_capacity(N);
    for v in vals {
        match lx.make_global_ref(v) {
            Ok(r) => made.push(r),
            Err(e) => {
                release::defer(made);
                return Err(e);
            }
        }
    }
    made.try_into().map_err(|m: Vec<Gref>| {
        release::defer(m);
        memory_error(lx)
    })
}

pub fn gref_pair(lx: Lx, a: emacs_value, b: emacs_value) -> LResult<[Gref; 2]> {
    grefs(lx, [a, b])
}

pub fn gref_triple(lx: Lx, v: [emacs_value; 3]) -> LResult<[Gref; 3]> {
    grefs(lx, v)
}

/// The user-ptr payload.
pub struct Handle {
    pub t: RefCell<Table>,
    busy: Cell<u32>,
    /// Bumped by every modification (entries, values, storage vectors).
    gen: Cell<u32>,
    /// The kind of key this table has been getting (see `keys::Spec`).
    spec: keys::Spec,
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

impl Handle {
    /// Wrap a table into a new Lisp object.
    pub fn wrap(lx: Lx, table: Table) -> LResult<emacs_value> {
        let h = Box::new(Handle { t: RefCell::new(table), busy: Cell::new(0), gen: Cell::new(0), spec: keys::Spec::default() });
        let p = Box::into_raw(h);
        match lx.make_user_ptr(finalize, p as *mut c_void) {
            Ok(v) => Ok(v),
            Err(e) => {
                // SAFETY: Emacs did not take ownership; reclaim the box.
                drop(unsafe { Box::from_raw(p) });
                Err(e)
            }
        }
    }

    /// The handle behind `v`, or `(wrong-type-argument rhash-p V)`.
    #[inline]
    pub fn of<'a>(lx: Lx, v: emacs_value) -> LResult<&'a Handle> {
        if let Some(h) = cache::hit(lx, v) {
            return Ok(h);
        }
        // `get_user_finalizer` signals on a non-user-ptr: not while signals
        // are visible.
        if crate::quiet::visible() && !Handle::is_rhash(lx, v) {
            return Err(wrong_type(lx, v));
        }
        match lx.user_ptr_with(v, finalize) {
            Some(p) => {
                cache::note(lx, v, p as *const Handle);
                // SAFETY: the finalizer check proves `v` is one of our
                // user-ptrs, whose payload is a live `Handle`.  `v` is an
                // argument of the module call in progress, so the object (and
                // the Handle) stays alive at least until the call returns,
                // which bounds 'a in practice: callers never keep the
                // reference beyond the call.
                Ok(unsafe { &*(p as *const Handle) })
            }
            None => Err(wrong_type(lx, v)),
        }
    }

    /// Whether `v` is an rhash table; never signals.  `type-of` first, so
    /// that other objects do not take the (slow) signal-and-clear path of
    /// `get_user_finalizer` on a non-user-ptr.
    #[inline]
    pub fn is_rhash(lx: Lx, v: emacs_value) -> bool {
        if cache::hit(lx, v).is_some() {
            return true;
        }
        match lx.type_of(v) {
            Ok(ty) if lx.eq(ty, g().user_ptr.v()) => lx.user_ptr_with(v, finalize).is_some(),
            Ok(_) => false,
            Err(_) => {
                lx.clear_exit();
                false
            }
        }
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

    #[inline]
    pub fn busy(&self) -> Busy<'_> {
        self.busy.set(self.busy.get() + 1);
        Busy(self)
    }

    /// Refuse to modify a table while one of its operations is calling Lisp.
    #[inline]
    pub fn check_mutable(&self, lx: Lx, table: emacs_value) -> LResult<()> {
        if self.busy.get() > 0 {
            let gl = g();
            return Err(signal(lx, gl.error.v(), &[gl.modifies_msg.v(), table]));
        }
        Ok(())
    }

    /// Borrow for a short, Lisp-free section.  A failure means Lisp code
    /// reached the table during one of our own Lisp-free sections, which
    /// cannot happen; report it as an error rather than panic all the same.
    #[inline]
    pub fn read<R>(&self, lx: Lx, f: impl FnOnce(&Table) -> R) -> LResult<R> {
        match self.t.try_borrow() {
            Ok(t) => Ok(f(&t)),
            Err(_) => Err(busy_error(lx)),
        }
    }

    #[inline]
    pub fn write<R>(&self, lx: Lx, f: impl FnOnce(&mut Table) -> R) -> LResult<R> {
        match self.t.try_borrow_mut() {
            Ok(mut t) => Ok(f(&mut t)),
            Err(_) => Err(busy_error(lx)),
        }
    }
}

/// Signal `(SYMBOL . DATA)`, DATA made from `items`.
fn signal(lx: Lx, symbol: emacs_value, items: &[emacs_value]) -> Exit {
    match lx.funcall(g().f_list.v(), items) {
        Ok(data) => lx.signal(symbol, data),
        Err(e) => e,
    }
}

pub fn wrong_type(lx: Lx, v: emacs_value) -> Exit {
    let gl = g();
    signal(lx, gl.wrong_type_argument.v(), &[gl.rhash_p.v(), v])
}

fn busy_error(lx: Lx) -> Exit {
    let gl = g();
    signal(lx, gl.error.v(), &[gl.busy_msg.v()])
}

/// `(args-out-of-range A B)`: vectors that should have one length.
pub fn length_mismatch(lx: Lx, a: emacs_value, b: emacs_value) -> Exit {
    signal(lx, g().args_out_of_range.v(), &[a, b])
}

/// A failed Rust allocation, reported as Emacs reports memory exhaustion.
pub fn memory_error(lx: Lx) -> Exit {
    let gl = g();
    signal(lx, gl.error.v(), &[gl.memory_msg.v()])
}

thread_local! {
    /// Scratch buffers for string keys (taken, not borrowed, so nested calls
    /// simply get fresh ones).  Only `equal` tables hash strings in Rust, so
    /// only their lookups touch this (a thread-local costs a `__tls_get_addr`
    /// call in a shared library).
    static BUFS: Cell<(Vec<u8>, Vec<u8>)> = const { Cell::new((Vec::new(), Vec::new())) };
}

/// A classified key together with the bytes of a string key.
pub struct Lookup {
    pub key: Key,
    kbuf: Vec<u8>,
    sbuf: Vec<u8>,
}

/// Scratch buffers bigger than this are freed after use rather than kept
/// for the next key: one huge key must not pin its size for good.
const KEEP_SCRATCH: usize = 64 * 1024;

impl Drop for Lookup {
    fn drop(&mut self) {
        if self.kbuf.capacity() > 0 || self.sbuf.capacity() > 0 {
            let mut k = std::mem::take(&mut self.kbuf);
            let mut s = std::mem::take(&mut self.sbuf);
            for b in [&mut k, &mut s] {
                if b.capacity() > KEEP_SCRATCH {
                    *b = Vec::new();
                }
            }
            BUFS.with(|b| b.set((k, s)));
        }
    }
}

impl Table {
    pub fn new(test: Test, hint: usize) -> Result<Table, crate::table::AllocError> {
        // Reserve the Rust side up front so a huge :size fails here, cleanly.
        let raw = RawTable::with_capacity(hint)?;
        Ok(Table { raw, vecs: None, cell: None, vlen: 0, hint, test })
    }

    /// Both storage vectors, `[KEYS, VALS]` (present or absent together).
    #[inline]
    pub fn vectors(&self) -> Option<[emacs_value; 2]> {
        self.vecs.as_ref().map(|v| [v[0].v(), v[1].v()])
    }

    #[inline]
    pub fn keys_vec(&self) -> Option<emacs_value> {
        self.vecs.as_ref().map(|v| v[0].v())
    }

    #[inline]
    pub fn vals_vec(&self) -> Option<emacs_value> {
        self.vecs.as_ref().map(|v| v[1].v())
    }

    pub fn test_name(&self) -> emacs_value {
        let gl = g();
        match (&self.test.kind, &self.test.user) {
            (TestKind::Eq, _) => gl.eq.v(),
            (TestKind::Eql, _) => gl.eql.v(),
            (TestKind::Equal, _) => gl.equal.v(),
            (TestKind::User, Some(u)) => u[0].v(),
            (TestKind::User, None) => gl.nil(),
        }
    }

    /// Capacity as `hash-table-size` reports it: entries storable before the
    /// next reallocation (always >= count).
    pub fn size(&self) -> usize {
        self.vlen.max(self.raw.len())
    }
}

/// Classify KEY for HANDLE's test.  May run Lisp (hash functions); a user
/// hash function runs with the table busy.
pub fn classify(lx: Lx, h: &Handle, key: emacs_value) -> LResult<Lookup> {
    let (kind, hash_fn) = h.read(lx, |t| (t.test.kind, t.test.user.as_ref().map(|u| u[2].v())))?;
    let (mut kbuf, sbuf) = if kind == TestKind::Equal { BUFS.with(|b| b.take()) } else { Default::default() };
    let key = match (kind, hash_fn) {
        (TestKind::User, Some(hf)) => {
            let r = {
                let _busy = h.busy();
                lx.funcall(hf, &[key])?
            };
            keys::classify_user_hash(lx, key, r)?
        }
        _ => keys::classify_builtin(lx, kind, key, &mut kbuf, &h.spec)?,
    };
    Ok(Lookup { key, kbuf, sbuf })
}

/// Where a key was found: its entry number and index slot.
#[derive(Clone, Copy)]
pub struct Found {
    pub entry: usize,
    pub slot: usize,
}

/// One probe step: the next candidate's entry number, index slot and
/// payload, and the vector holding its key (`None`: the probe ended).
type Step = Option<(usize, usize, u64, Option<emacs_value>)>;

#[inline]
fn step(raw: &RawTable, probe: &mut Probe, kv: Option<emacs_value>) -> Step {
    raw.next_candidate(probe).map(|i| (i, raw.last_slot(probe), raw.payload(i), kv))
}

/// The entry holding a key equal to `l.key`, if any.  May run Lisp
/// (predicates; a GC inside them); if that Lisp changed the table, the probe
/// starts over, so the result describes the table as it is on return (the
/// caller uses it before running Lisp again).
pub fn find(lx: Lx, h: &Handle, l: &mut Lookup) -> LResult<Option<Found>> {
    let meta = l.key.meta;
    loop {
        let g0 = h.gen();
        let mut probe = h.read(lx, |t| t.raw.probe(meta))?;
        // A fresh borrow per step: no borrow is held while a predicate runs.
        let r = find_by(lx, h, l, |lx| {
            if h.gen() != g0 {
                return Ok(None);
            }
            h.read(lx, |t| step(&t.raw, &mut probe, t.keys_vec()))
        })?;
        if h.gen() == g0 {
            return Ok(r);
        }
    }
}

/// `find` in a table being built outside the handle (`adopt`): its index
/// `raw`, its keys in `kv`; `h` gives the test.
pub fn find_in(lx: Lx, h: &Handle, l: &mut Lookup, raw: &RawTable, kv: emacs_value) -> LResult<Option<Found>> {
    let mut probe = raw.probe(l.key.meta);
    find_by(lx, h, l, |_| Ok(step(raw, &mut probe, Some(kv))))
}

fn find_by(lx: Lx, h: &Handle, l: &mut Lookup, mut next: impl FnMut(Lx) -> LResult<Step>) -> LResult<Option<Found>> {
    loop {
        let Some((i, slot, payload, Some(kv))) = next(lx)? else { return Ok(None) };
        let same = match keys::quick_compare(&l.key, payload) {
            Quick::Same => true,
            Quick::Differ => false,
            Quick::Lisp => {
                let stored = lx.vec_get(kv, i)?;
                if l.key.kind() == keys::STR {
                    keys::compare_str(lx, &l.key, &l.kbuf, stored, &mut l.sbuf)?
                } else {
                    let (pred, user) = h.read(lx, |t| (predicate(t), t.test.kind == TestKind::User))?;
                    // A user compare function runs with the table busy.
                    let _busy = user.then(|| h.busy());
                    keys::compare_obj(lx, &l.key, stored, pred)?
                }
            }
        };
        if same {
            return Ok(Some(Found { entry: i, slot }));
        }
    }
}

fn predicate(t: &Table) -> emacs_value {
    let gl = g();
    match (&t.test.kind, &t.test.user) {
        (TestKind::User, Some(u)) => u[1].v(),
        (TestKind::Eql, _) => gl.f_eql.v(),
        _ => gl.f_equal.v(),
    }
}

/// Refuse the hole marker as a key or value: free slots are told apart by
/// it, so it must never be an entry's (issue 13, item 4).  One `eq` each.
#[inline]
pub fn storable(lx: Lx, objs: &[emacs_value]) -> LResult<()> {
    let gl = g();
    if objs.iter().any(|&o| lx.eq(o, gl.hole.v())) {
        return Err(signal(lx, gl.error.v(), &[gl.hole_msg.v()]));
    }
    Ok(())
}

/// Insert a key that `find` has just found absent.  Returns false, having
/// changed nothing, if Lisp run during the vector allocation changed the
/// table: the caller must look the key up again.
pub fn insert_new(lx: Lx, h: &Handle, key: &Key, value: emacs_value) -> LResult<bool> {
    storable(lx, &[key.v])?;
    let slot = h.write(lx, |t| t.raw.reserve_one().map(|_| t.raw.next_insert_slot()))?;
    let slot = slot.map_err(|_| memory_error(lx))?;
    if ensure_vectors(lx, h, slot + 1)? {
        return Ok(false);
    }
    // Lisp-free from here: index and storage change together.
    let i = h.write(lx, |t| t.raw.insert(key.meta, key.payload))?.map_err(|_| memory_error(lx))?;
    debug_assert_eq!(i, slot);
    h.touch();
    if let Some([kv, vv]) = h.read(lx, Table::vectors)? {
        lx.vec_set(kv, i, key.v)?;
        lx.vec_set(vv, i, value)?;
    }
    Ok(true)
}

/// Make both vectors at least `need` long (growing geometrically).  The new
/// vectors (and the `[KEYS VALS]` cell, the first time) are allocated first,
/// through Lisp calls that may GC, quit or fail, leaving the table as it was;
/// then `install` switches to them with no Lisp call.  Returns true if Lisp
/// run during the allocation changed the table (its current contents are
/// then copied over, Lisp-free): the caller must look again.
pub fn ensure_vectors(lx: Lx, h: &Handle, need: usize) -> LResult<bool> {
    let (vlen, hint, old, has_cell) = h.read(lx, |t| (t.vlen, t.hint, t.vectors(), t.cell.is_some()))?;
    if need <= vlen {
        return Ok(false);
    }
    let g0 = h.gen();
    let gl = g();
    // Doubling.  (Growing 4x while small saved ~2 ns per put when filling
    // 1000 keys, but `rhash-map` walks the whole vectors, so a small table
    // would pay for up to 3/4 empty slots on every walk.)
    let new_len = need.max(vlen.saturating_mul(2)).max(hint.min(1 << 20)).max(8);
    let n = lx.make_integer(i64::try_from(new_len).unwrap_or(i64::MAX))?;
    let grow = lx.make_integer(i64::try_from(new_len - vlen).unwrap_or(i64::MAX))?;
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
    let cell = if has_cell { None } else { Some(new_cell(lx)?) };
    // No Lisp runs from here on.
    let changed = h.gen() != g0;
    if changed {
        let (vlen2, cur) = h.read(lx, |t| (t.vlen, t.vectors()))?;
        if need <= vlen2 {
            return Ok(true);
        }
        // vlen <= vlen2 < need <= new_len: take the current contents.
        if let Some(c) = cur {
            for k in 0..2 {
                for i in 0..vlen2 {
                    let x = lx.vec_get(c[k], i)?;
                    lx.vec_set(made[k], i, x)?;
                }
            }
        }
    }
    install(lx, h, made, new_len, cell, None)?;
    Ok(changed)
}

/// A fresh `[KEYS VALS]` cell (filled by `install`).  Calls Lisp.
pub fn new_cell(lx: Lx) -> LResult<emacs_value> {
    let gl = g();
    let two = lx.make_integer(2)?;
    lx.funcall(gl.f_make_vector.v(), &[two, gl.nil()])
}

/// Switch the table to storage vectors `made` of length `len` (and to index
/// `raw`, when given), in one step that runs no Lisp: global references,
/// borrows and `vec_set`s on the cell only.  `cell` is a fresh cell from
/// `new_cell`, used if the table has none yet.
pub fn install(
    lx: Lx,
    h: &Handle,
    made: [emacs_value; 2],
    len: usize,
    cell: Option<emacs_value>,
    raw: Option<RawTable>,
) -> LResult<()> {
    let cell = match cell {
        Some(c) if h.read(lx, |t| t.cell.is_none())? => Some(c),
        _ => None,
    };
    let (vs, cref) = match cell {
        Some(c) => {
            let [a, b, c] = gref_triple(lx, [made[0], made[1], c])?;
            ([a, b], Some(c))
        }
        None => (gref_pair(lx, made[0], made[1])?, None),
    };
    let (old, cell) = h.write(lx, |t| {
        t.vlen = len;
        if let Some(r) = raw {
            t.raw = r;
        }
        if cref.is_some() {
            t.cell = cref;
        }
        (t.vecs.replace(vs), t.cell.as_ref().map(|c| c.v()))
    })?;
    h.touch();
    if let Some(c) = cell {
        lx.vec_set(c, 0, made[0])?;
        lx.vec_set(c, 1, made[1])?;
    }
    for r in old.into_iter().flatten() {
        lx.free_global_ref(r);
    }
    Ok(())
}

/// Copies of the storage vectors (`cols`: which ones) taken at one instant,
/// whole (`whole`) or their first `slots` places, with the number of live
/// entries then.  The copies are Lisp calls that may GC and let Lisp change
/// the table; they are retried while that happens (three times), then made
/// with Lisp-free `vec_get`/`vec_set` into vectors allocated beforehand, so
/// the walk always ends.  `None`: no vectors yet.
pub struct Snap {
    pub cols: [emacs_value; 2],
    pub len: usize,
    pub live: usize,
}

pub fn snapshot(lx: Lx, h: &Handle, cols: [bool; 2], whole: bool) -> LResult<Option<Snap>> {
    let gl = g();
    let mut tries = 0;
    loop {
        let g0 = h.gen();
        let (vecs, slots, vlen) = h.read(lx, |t| (t.vectors(), t.raw.slots(), t.vlen))?;
        let Some(v) = vecs else { return Ok(None) };
        let len = if whole { vlen } else { slots };
        let end = lx.make_integer(i64::try_from(len).unwrap_or(i64::MAX))?;
        let mut out = [gl.nil(); 2];
        if tries < 3 {
            tries += 1;
            for k in 0..2 {
                if cols[k] {
                    out[k] = if len == vlen {
                        lx.funcall(gl.f_copy_sequence.v(), &[v[k]])?
                    } else {
                        let zero = lx.make_integer(0)?;
                        lx.funcall(gl.f_substring.v(), &[v[k], zero, end])?
                    };
                }
            }
            if h.gen() == g0 {
                let live = h.read(lx, |t| t.raw.len())?;
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
        let (vecs, slots, vlen, live) = h.read(lx, |t| (t.vectors(), t.raw.slots(), t.vlen, t.raw.len()))?;
        let Some(v) = vecs else { return Ok(None) };
        let now = if whole { vlen } else { slots };
        if now > len {
            continue;
        }
        for k in 0..2 {
            if cols[k] {
                for i in 0..now {
                    let x = lx.vec_get(v[k], i)?;
                    lx.vec_set(out[k], i, x)?;
                }
            }
        }
        return Ok(Some(Snap { cols: out, len, live }));
    }
}

/// Remove the entry `find` returned, releasing its key and value.
pub fn remove_at(lx: Lx, h: &Handle, f: Found) -> LResult<()> {
    let i = f.entry;
    let vecs = h.write(lx, |t| {
        t.raw.remove_at(f.slot, i);
        t.vectors()
    })?;
    h.touch();
    let hole = g().hole.v();
    if let Some([kv, vv]) = vecs {
        lx.vec_set(kv, i, hole)?;
        lx.vec_set(vv, i, hole)?;
    }
    Ok(())
}
