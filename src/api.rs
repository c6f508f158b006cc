//! The Lisp-visible functions of the module and their registration.
//!
//! Each function is a plain `fn(Lx, &[emacs_value]) -> LResult<emacs_value>`;
//! `run` is the single FFI entry: it frees deferred global references, catches
//! panics (none may unwind into Emacs) and lets pending Lisp exits propagate.

use crate::ffi::{Exit, LResult, Lx, RawFn};
use crate::globals::g;
use crate::keys::TestKind;
use crate::release;
use crate::store::{self, Handle, Table, Test};
use crate::table::RawTable;
use emacs::raw::{emacs_env, emacs_value};
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};

type Defun = fn(Lx, &[emacs_value]) -> LResult<emacs_value>;

/// Total global references freed from the release queue (for tests).
static RELEASED: AtomicUsize = AtomicUsize::new(0);

/// # Safety
/// `env`, `nargs` and `args` must be what Emacs passed to a module function.
unsafe fn run(env: *mut emacs_env, nargs: isize, args: *mut emacs_value, f: Defun) -> emacs_value {
    // SAFETY: `env` is the env of this call.
    let lx = unsafe { Lx::new(env) };
    let args: &[emacs_value] = if nargs <= 0 || args.is_null() {
        &[]
    } else {
        // SAFETY: Emacs passes `nargs` valid values that live for the call.
        unsafe { std::slice::from_raw_parts(args, nargs as usize) }
    };
    let result = catch_unwind(AssertUnwindSafe(|| {
        RELEASED.fetch_add(release::drain(lx), Ordering::Relaxed);
        f(lx, args)
    }));
    match result {
        Ok(Ok(v)) => v,
        Ok(Err(Exit)) => g().nil(),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            lx.clear_exit();
            let gl = g();
            let text = format!("rhash internal error: {msg}");
            if let Ok(s) = lx.make_string(text.as_bytes()) {
                if let Ok(data) = lx.funcall(gl.f_list.v(), &[s]) {
                    lx.signal(gl.error.v(), data);
                }
            }
            gl.nil()
        }
    }
}

macro_rules! defuns {
    ($( $lisp:literal ($min:literal, $max:literal) $f:ident $doc:literal; )*) => {
        mod tramp {
            use super::*;
            $(
                pub unsafe extern "C" fn $f(
                    env: *mut emacs_env, nargs: isize, args: *mut emacs_value, _: *mut c_void,
                ) -> emacs_value {
                    // SAFETY: called by Emacs with its own env and arguments.
                    unsafe { run(env, nargs, args, super::$f) }
                }
            )*
        }
        /// Define every function in Emacs.
        pub fn export(lx: Lx) -> LResult<()> {
            let defalias = lx.intern(c"defalias")?;
            $(
                // SAFETY: the trampoline has the signature Emacs expects.
                let func = unsafe { lx.make_function($min, $max, tramp::$f as RawFn, $doc)? };
                lx.funcall(defalias, &[lx.intern($lisp)?, func])?;
            )*
            Ok(())
        }
    };
}

defuns! {
    c"rhash--make" (4, 4) make
        c"Make an rhash table; the public entry is `rhash-make'.\n\nTEST is eq, eql, equal or a user test NAME with its\nCMP and HASH functions (nil for the built-in tests); SIZE is a hint.\n\n(fn TEST CMP HASH SIZE)";
    c"rhash-p" (1, 1) p
        c"Return t if OBJECT is an rhash table, nil otherwise.\nLike `hash-table-p'.\n\n(fn OBJECT)";
    c"rhash-get" (2, 3) get
        c"Look up KEY in TABLE and return its associated value.\nIf KEY is not found, return DEFAULT, which defaults to nil.\nA key stored with the value nil returns nil, not DEFAULT.\nLike `gethash'; usable with `setf'.\n\n(fn KEY TABLE &optional DEFAULT)";
    c"rhash-put" (3, 3) put
        c"Associate KEY with VALUE in TABLE and return VALUE.\nIf KEY is already present, replace its value, keeping the first key\nobject and the entry's position.  Like `puthash'.\n\n(fn KEY VALUE TABLE)";
    c"rhash-remove" (2, 2) remove
        c"Remove KEY from TABLE and return nil.\nThe freed place is reused by the next new key.  Like `remhash'.\n\n(fn KEY TABLE)";
    c"rhash-clear" (1, 1) clear
        c"Remove every entry from TABLE and return TABLE.\nKeys and values are released at once.  Like `clrhash'.\n\n(fn TABLE)";
    c"rhash-count" (1, 1) count
        c"Return the number of entries in TABLE.  Like `hash-table-count'.\n\n(fn TABLE)";
    c"rhash-copy" (1, 1) copy
        c"Return a copy of TABLE with the same test and iteration order.\nKeys and values are shared, not copied.  Like `copy-hash-table'.\n\n(fn TABLE)";
    c"rhash-test" (1, 1) test
        c"Return the test TABLE uses: eq, eql, equal or a user test name.\nLike `hash-table-test'.\n\n(fn TABLE)";
    c"rhash-size" (1, 1) size
        c"Return TABLE's current capacity, always at least its count.\nLike `hash-table-size'.\n\n(fn TABLE)";
    c"rhash-weakness" (1, 1) weakness
        c"Return TABLE's weakness: always nil, rhash tables are not weak.\nLike `hash-table-weakness'.\n\n(fn TABLE)";
    c"rhash-keys" (1, 1) keys
        c"Return a fresh list of TABLE's keys, in iteration order.\nUnlike `hash-table-keys' in Emacs 29+, the order is not reversed.\n\n(fn TABLE)";
    c"rhash-values" (1, 1) values
        c"Return a fresh list of TABLE's values, in iteration order.\n\n(fn TABLE)";
    c"rhash-contains-p" (2, 2) contains_p
        c"Return t if KEY is present in TABLE, even with a nil value.\nLike `hash-table-contains-p' (Emacs 31).\n\n(fn KEY TABLE)";
    c"rhash-empty-p" (1, 1) empty_p
        c"Return t if TABLE has no entries.  Like `hash-table-empty-p'.\n\n(fn TABLE)";
    c"rhash--adopt" (3, 3) adopt
        c"Internal bulk entry for the conversions: put KEYS[i] -> VALS[i]\ninto TABLE for each i in order, as repeated `rhash-put' would, and\nreturn TABLE.  KEYS and VALS are fresh vectors of one length that\nthe caller gives up: an empty new TABLE takes them as its storage.\n\n(fn TABLE KEYS VALS)";
    c"rhash--storage" (1, 1) storage
        c"Internal: TABLE's [KEYS VALS] vectors, nil before the first entry.\nSlot I holds entry I; free slots hold `rhash--hole' in both.  The\n2-slot vector is updated in place when the vectors are reallocated.\nRead only.\n\n(fn TABLE)";
    c"rhash--pairs" (1, 1) pairs
        c"Internal: (KEYS . VALUES) of TABLE, two fresh lists in iteration\norder read at one instant (a GC during the copy cannot pair a key\nwith another entry's value).\n\n(fn TABLE)";
    c"rhash--hole" (0, 0) hole
        c"Internal: the marker stored in free slots of `rhash--storage'.\nIt cannot be stored as a key or value (an error).\n\n(fn)";
    c"rhash--stats" (1, 1) stats
        c"Internal: (SLOTS COUNT TOMBSTONES INDEX-SIZE VECTOR-LENGTH) of TABLE.\n\n(fn TABLE)";
    c"rhash--flush-cache" (0, 0) flush_cache
        c"Internal: forget the table cached for fast type checks.\nRun from `post-gc-hook', so that the cache never keeps a dropped\ntable alive for more than one garbage collection.\n\n(fn)";
    c"rhash--signals-visible" (1, 1) signals_visible
        c"Internal: tell the module whether signals it catches could be seen\n(FLAG non-nil while `debug-on-signal' or `signal-hook-function' is\nnon-nil): then it asks Emacs only questions that cannot signal.\nRun by variable watchers set up in rhash.el.\n\n(fn FLAG)";
    c"rhash--release-stats" (0, 0) release_stats
        c"Internal: (PENDING . RELEASED), the global references waiting in\nthe release queue and the total released so far.\n\n(fn)";
}

#[inline]
fn int(lx: Lx, n: usize) -> LResult<emacs_value> {
    lx.make_integer(i64::try_from(n).unwrap_or(i64::MAX))
}

fn make(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    let gl = g();
    let name = a[0];
    let kind = if lx.eq(name, gl.eq.v()) {
        TestKind::Eq
    } else if lx.eq(name, gl.eql.v()) {
        TestKind::Eql
    } else if lx.eq(name, gl.equal.v()) {
        TestKind::Equal
    } else {
        TestKind::User
    };
    let user = if kind == TestKind::User { Some(store::gref_triple(lx, [name, a[1], a[2]])?) } else { None };
    let hint = usize::try_from(lx.extract_integer(a[3])?).unwrap_or(0);
    match Table::new(Test { kind, user }, hint) {
        Ok(t) => Handle::wrap(lx, t),
        // (The failed Test's refs went to the release queue on drop.)
        Err(_) => Err(store::memory_error(lx)),
    }
}

fn p(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    Ok(g().bool(Handle::is_rhash(lx, a[0])))
}

/// Find KEY in TABLE: (handle, entry number if present).
#[inline]
fn lookup<'a>(lx: Lx, key: emacs_value, table: emacs_value) -> LResult<(&'a Handle, Option<store::Found>)> {
    let h = Handle::of(lx, table)?;
    let mut l = store::classify(lx, h, key)?;
    let i = store::find(lx, h, &mut l)?;
    Ok((h, i))
}

fn get(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    match lookup(lx, a[0], a[1])? {
        (h, Some(f)) => match h.read(lx, |t| t.vals_vec())? {
            Some(vv) => lx.vec_get(vv, f.entry),
            None => Ok(g().nil()),
        },
        (_, None) => Ok(a.get(2).copied().unwrap_or_else(|| g().nil())),
    }
}

fn contains_p(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    Ok(g().bool(lookup(lx, a[0], a[1])?.1.is_some()))
}

/// Put KEY → VALUE into the table behind `h` (already type-checked).
/// `find`'s answer holds until Lisp runs again; an insertion whose vector
/// allocation let Lisp change the table looks the key up again.
fn put_into(lx: Lx, h: &Handle, table: emacs_value, key: emacs_value, value: emacs_value) -> LResult<()> {
    h.check_mutable(lx, table)?;
    store::storable(lx, &[value])?;
    let mut l = store::classify(lx, h, key)?;
    loop {
        match store::find(lx, h, &mut l)? {
            Some(f) => {
                if let Some(vv) = h.read(lx, |t| t.vals_vec())? {
                    lx.vec_set(vv, f.entry, value)?;
                }
                h.touch();
                return Ok(());
            }
            None => {
                if store::insert_new(lx, h, &l.key, value)? {
                    return Ok(());
                }
            }
        }
    }
}

fn put(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    let h = Handle::of(lx, a[2])?;
    put_into(lx, h, a[2], a[0], a[1])?;
    Ok(a[1])
}

/// Whether C-g is pending, polled every 4096 steps `i` of a long loop; the
/// caller returns at once and Emacs processes the quit.
#[inline]
fn quit_requested(lx: Lx, i: usize) -> bool {
    i.is_multiple_of(4096) && lx.should_quit()
}

/// `rhash--adopt`.  For a table that never held an entry, the pairs go
/// into a scratch index whose keys are the KEYS vector itself, and on
/// success the table takes that index and both vectors: per entry only the
/// key is read and classified (no `vec_set`s).  A duplicate key moves its
/// value to the first occurrence's entry and later pairs down one place, so
/// the result is what repeated puts give.  Any exit leaves the table as it
/// was.  Other tables get repeated puts.
fn adopt(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    let (table, keys, vals) = (a[0], a[1], a[2]);
    let h = Handle::of(lx, table)?;
    h.check_mutable(lx, table)?;
    let n = lx.vec_size(keys)?;
    if lx.vec_size(vals)? != n {
        return Err(store::length_mismatch(lx, keys, vals));
    }
    let g0 = h.gen();
    let fresh = h.read(lx, |t| t.vecs.is_none() && t.raw.slots() == 0)?;
    if !fresh || n == 0 {
        for i in 0..n {
            if quit_requested(lx, i) {
                return Ok(g().nil());
            }
            let (k, v) = (lx.vec_get(keys, i)?, lx.vec_get(vals, i)?);
            put_into(lx, h, table, k, v)?;
        }
        return Ok(table);
    }
    let mut raw = RawTable::with_capacity(n).map_err(|_| store::memory_error(lx))?;
    // Entries 0..w are built, keys and values compacted into slots 0..w.
    let mut w = 0;
    for i in 0..n {
        if quit_requested(lx, i) {
            return Ok(g().nil());
        }
        let k = lx.vec_get(keys, i)?;
        let v = lx.vec_get(vals, i)?;
        store::storable(lx, &[k, v])?;
        let mut l = store::classify(lx, h, k)?;
        match store::find_in(lx, h, &mut l, &raw, keys)? {
            Some(f) => lx.vec_set(vals, f.entry, v)?,
            None => {
                let e = raw.insert(l.key.meta, l.key.payload).map_err(|_| store::memory_error(lx))?;
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
    let cell = store::new_cell(lx)?;
    // No Lisp runs from here on, unless Lisp run by a GC (in a hash or
    // compare call, or just above) has put entries meanwhile: then the
    // table is no longer empty, and the pairs go in as puts.
    if h.gen() != g0 {
        for j in 0..w {
            let (k, v) = (lx.vec_get(keys, j)?, lx.vec_get(vals, j)?);
            put_into(lx, h, table, k, v)?;
        }
        return Ok(table);
    }
    store::install(lx, h, [keys, vals], n, Some(cell), Some(raw))?;
    Ok(table)
}

fn remove(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    let h = Handle::of(lx, a[1])?;
    h.check_mutable(lx, a[1])?;
    let mut l = store::classify(lx, h, a[0])?;
    if let Some(f) = store::find(lx, h, &mut l)? {
        store::remove_at(lx, h, f)?;
    }
    Ok(g().nil())
}

/// `rhash-clear`: index and storage in one Lisp-free step (a `fillarray`
/// call could quit, or fail near `max-lisp-eval-depth`, half-way; `clrhash`
/// cannot).  Fresh vectors from `make-vector` would be faster per slot but
/// their allocation triggers GCs (measured: 145 ns/entry at 10^5 with the
/// GC, against 33 ns/entry for the `vec_set`s).
fn clear(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    let h = Handle::of(lx, a[0])?;
    h.check_mutable(lx, a[0])?;
    clear_in_place(lx, h)?;
    Ok(a[0])
}

/// Clear the index and the used slots of both vectors, with no Lisp call.
fn clear_in_place(lx: Lx, h: &Handle) -> LResult<()> {
    let vecs = h.write(lx, |t| {
        if t.raw.is_empty() {
            return None;
        }
        let slots = t.raw.slots();
        t.raw.clear();
        t.vectors().map(|v| (v, slots))
    })?;
    if let Some(([kv, vv], slots)) = vecs {
        h.touch();
        let hole = g().hole.v();
        for i in 0..slots {
            lx.vec_set(kv, i, hole)?;
            lx.vec_set(vv, i, hole)?;
        }
    }
    Ok(())
}

fn count(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    let h = Handle::of(lx, a[0])?;
    let n = h.read(lx, |t| t.raw.len())?;
    int(lx, n)
}

fn empty_p(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    let h = Handle::of(lx, a[0])?;
    Ok(g().bool(h.read(lx, |t| t.raw.is_empty())?))
}

fn copy(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    let h = Handle::of(lx, a[0])?;
    let (hint, kind, user) =
        h.read(lx, |t| (t.hint, t.test.kind, t.test.user.as_ref().map(|u| [u[0].v(), u[1].v(), u[2].v()])))?;
    let user = match user {
        Some(u) => Some(store::gref_triple(lx, u)?),
        None => None,
    };
    let cell = store::new_cell(lx)?;
    // The storage as it is at one instant, and the index at that instant
    // (no Lisp runs between the snapshot's end and the clone).
    let snap = store::snapshot(lx, h, [true, true], true)?;
    let raw = h.read(lx, |t| t.raw.try_clone())?.map_err(|_| store::memory_error(lx))?;
    let mut t = Table { raw, vecs: None, cell: None, vlen: 0, hint, test: Test { kind, user } };
    if let Some(s) = snap {
        let [k, v, c] = store::gref_triple(lx, [s.cols[0], s.cols[1], cell])?;
        t.vecs = Some([k, v]);
        t.cell = Some(c);
        t.vlen = s.len;
        lx.vec_set(cell, 0, s.cols[0])?;
        lx.vec_set(cell, 1, s.cols[1])?;
    }
    Handle::wrap(lx, t)
}

fn test(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    let h = Handle::of(lx, a[0])?;
    h.read(lx, |t| t.test_name())
}

fn size(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    let h = Handle::of(lx, a[0])?;
    let n = h.read(lx, |t| t.size())?;
    int(lx, n)
}

fn weakness(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    Handle::of(lx, a[0])?;
    Ok(g().nil())
}

/// The live keys (`which` = 0) or values (1) as a list, built by Emacs's own
/// primitives from a snapshot: (delq HOLE (append (substring VEC 0 SLOTS) nil)).
fn column(lx: Lx, table: emacs_value, which: usize) -> LResult<emacs_value> {
    let h = Handle::of(lx, table)?;
    let gl = g();
    let mut cols = [false; 2];
    cols[which] = true;
    let Some(s) = store::snapshot(lx, h, cols, false)? else { return Ok(gl.nil()) };
    lisp_list(lx, s.cols[which], s.len, s.live)
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

/// `rhash--pairs`: (KEYS . VALUES), both lists read at one instant.
fn pairs(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    let h = Handle::of(lx, a[0])?;
    let gl = g();
    let Some(s) = store::snapshot(lx, h, [true, true], false)? else {
        return lx.funcall(gl.f_cons.v(), &[gl.nil(), gl.nil()]);
    };
    let k = lisp_list(lx, s.cols[0], s.len, s.live)?;
    let v = lisp_list(lx, s.cols[1], s.len, s.live)?;
    lx.funcall(gl.f_cons.v(), &[k, v])
}

fn keys(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    column(lx, a[0], 0)
}

fn values(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    column(lx, a[0], 1)
}

fn storage(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    let h = Handle::of(lx, a[0])?;
    Ok(h.read(lx, |t| t.cell.as_ref().map(|c| c.v()))?.unwrap_or_else(|| g().nil()))
}

fn hole(_: Lx, _: &[emacs_value]) -> LResult<emacs_value> {
    Ok(g().hole.v())
}

fn stats(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    let h = Handle::of(lx, a[0])?;
    let (s, c, tb, il, vl) = h.read(lx, |t| (t.raw.slots(), t.raw.len(), t.raw.tombstones(), t.raw.index_len(), t.vlen))?;
    let vals = [int(lx, s)?, int(lx, c)?, int(lx, tb)?, int(lx, il)?, int(lx, vl)?];
    lx.funcall(g().f_list.v(), &vals)
}

fn flush_cache(lx: Lx, _: &[emacs_value]) -> LResult<emacs_value> {
    crate::cache::flush(lx);
    Ok(g().nil())
}

fn signals_visible(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    crate::quiet::set_visible(lx.is_not_nil(a[0]));
    Ok(g().nil())
}

fn release_stats(lx: Lx, _: &[emacs_value]) -> LResult<emacs_value> {
    let pending = int(lx, release::pending())?;
    let released = int(lx, RELEASED.load(Ordering::Relaxed))?;
    lx.funcall(g().f_cons.v(), &[pending, released])
}

/// Exported for `lib.rs`: define the functions.
pub fn init(lx: Lx) -> LResult<()> {
    export(lx)
}
