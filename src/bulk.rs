//! Whole loops in one call: bulk and set operations, compaction
//! and statistics.  Each function does what the Lisp loop it replaces does,
//! in the same order, with the same errors; see the contract's "Bulk and set
//! operations".
//!
//! - Sequences (lists or vectors) are read through one `vconcat`, results
//!   built with `make-vector`/`vec_set` and, for lists, one `append`;
//!   except on the direct path, where `rhash-get-many` and
//!   `rhash-tally-into` read a key list in place and get-many fills a
//!   `make-list` result (`lists::ListSeq`), and result lists are filled
//!   in place (`lists::FreshList`).
//! - Where a table is only read, a built-in hash table is accepted: lookups
//!   in it call `gethash`, and its entries are read in its iteration order
//!   by `rhash--hash-table-vectors` (a `maphash` loop in rhash.el), or, for
//!   the first table of a set operation, it is converted with
//!   `rhash-from-hash-table` (both Lisp loops).  Where user Lisp runs
//!   between its entries (FUNCTION, PREDICATE, a user test) and may change
//!   it, the operation calls the Lisp loop it replaces (`rhash--*-loop` in
//!   rhash.el), which reads it as `maphash` does; so for a key list that a
//!   user test may change (`mapcar`, `mapc`, `cl-mapc`).
//! - rhash tables read are walked by entry number, re-read at each step
//!   (`Handle::walk_begin` defers a compaction to the walk's end); a table
//!   is busy only while its own test's Lisp runs.  Fast paths that copy
//!   entries by number at the end check the tables' generations and fall
//!   back to the walk.
//! - Where two rhash tables share a test, a key read from one is looked up
//!   in the other with the hash cached in its entry (`Lookup::cached`):
//!   nothing is hashed again, and a string is copied out only to confirm a
//!   candidate.
//! - Writes go through `Handle::put`/`put_key`, one entry at a time, so
//!   that an exit (error, throw, C-g) leaves the target holding exactly the
//!   entries put before it.  New tables are made by `store`
//!   (`store::build`, `build_from`, `uniq`) and only given to Lisp at the
//!   end.  Which access path runs is `store`'s business.
//! - Loops poll for C-g every 4096 steps (`store::quit_requested`).

use crate::error;
use crate::ffi::{LResult, Lx};
use crate::globals::g;
use crate::keys::{Key, Test};
use crate::lists::{ListSeq, Seq};
use crate::store::{self, int, quit_requested, Handle, KeyArg, Slots, Table, Walking};
use emacs::raw::emacs_value;
use std::ffi::CStr;

// ---- Arguments ----

/// SEQ (a list or a vector) as a vector, and whether it was a list.  A list
/// always gives a fresh vector; a vector is copied only when `fresh`.
fn seq_vector(lx: Lx, seq: emacs_value, fresh: bool) -> LResult<(emacs_value, bool)> {
    let gl = g();
        let is_list = if lx.eq(seq, gl.nil()) {
        true
    } else {
        let ty = lx.type_of(seq)?;
        if lx.eq(ty, g().cons.v()) {
            true
        } else if lx.eq(ty, g().vector.v()) {
            false
        } else {
            return Err(error::not_sequence(lx, seq));
        }
    };
    if is_list || fresh {
        Ok((lx.funcall(gl.f_vconcat.v(), &[seq])?, is_list))
    } else {
        Ok((seq, false))
    }
}

/// A table argument that is only read: an rhash table, or else a built-in
/// hash table.
#[derive(Clone, Copy)]
enum Readable<'a> {
    R(&'a Handle),
    Builtin(emacs_value),
}

fn readable<'a>(lx: Lx<'a>, v: emacs_value) -> LResult<Readable<'a>> {
    if Handle::is_rhash(lx, v) {
        return Ok(Readable::R(Handle::of(lx, v)?));
    }
    let r = lx.funcall(g().f_hash_table_p.v(), &[v])?;
    if lx.is_not_nil(r) {
        Ok(Readable::Builtin(v))
    } else {
        Err(error::wrong_type(lx, v))
    }
}

/// Whether looking keys up in (or putting keys into) the table runs user
/// Lisp: a user test's hash and compare functions.
fn user_test(lx: Lx, r: Readable<'_>) -> LResult<bool> {
    match r {
        Readable::R(h) => Ok(matches!(h.test(), Test::User(_))),
        Readable::Builtin(ht) => {
            let gl = g();
            let name = lx.funcall(gl.f_hash_table_test.v(), &[ht])?;
            Ok(![gl.eq.v(), gl.eql.v(), gl.equal.v()].into_iter().any(|t| lx.eq(name, t)))
        }
    }
}

/// Whether SEQ is a non-empty list (a cons).
fn is_cons(lx: Lx, seq: emacs_value) -> LResult<bool> {
    Ok(lx.is_not_nil(seq) && lx.eq(lx.type_of(seq)?, g().cons.v()))
}

/// An rhash table to read entries from and give its test to a result: a
/// built-in hash table is converted (`rhash-from-hash-table`, a Lisp loop).
fn rhash_of<'a>(lx: Lx<'a>, v: emacs_value) -> LResult<&'a Handle> {
    match readable(lx, v)? {
        Readable::R(h) => Ok(h),
        Readable::Builtin(ht) => {
            let r = lx.funcall(g().f_from_hash_table.v(), &[ht])?;
            // `r` is a local value of this call, so the table stays alive
            // while we use the handle (see `Handle::of`).
            Handle::of(lx, r)
        }
    }
}

/// The entries of a table being read, by entry number: an rhash table's
/// entries (with their cached hashes), re-read at each step so that Lisp
/// code run in between (user functions) may change the table, as in a
/// `maphash`; or a built-in table's snapshot, `[KEYS VALS]` vectors.
enum Entries<'a> {
    /// The table, two local value boxes for its entries (direct path), and
    /// the walk (a compaction asked for meanwhile waits for `finish`).
    R(&'a Handle, [emacs_value; 2], Walking<'a>),
    Vecs(Slots, Slots, usize),
}

impl Entries<'_> {
    fn of<'a>(lx: Lx, r: Readable<'a>) -> LResult<Entries<'a>> {
        match r {
            Readable::R(h) => Ok(Entries::R(h, [lx.make_integer(0)?, lx.make_integer(0)?], h.walk_begin())),
            Readable::Builtin(ht) => {
                let kv = lx.funcall(g().f_snapshot.v(), &[ht])?;
                let (k, v) = (Slots::new(lx, lx.vec_get(kv, 0)?)?, Slots::new(lx, lx.vec_get(kv, 1)?)?);
                let n = k.len().min(v.len());
                Ok(Entries::Vecs(k, v, n))
            }
        }
    }

    /// Upper bound of entry numbers (re-read after any Lisp call).
    fn bound(&self, lx: Lx) -> LResult<usize> {
        match self {
            Entries::R(h, ..) => Ok(h.read(lx, Table::extent)?.1),
            Entries::Vecs(_, _, n) => Ok(*n),
        }
    }

    /// Entry `i`: its key (with the cached hash, for an rhash table) and
    /// value, valid until the next `get`.
    fn get(&self, lx: Lx, i: usize) -> LResult<Option<(emacs_value, Option<Key>, emacs_value)>> {
        match self {
            Entries::R(h, boxes, _) => Ok(h.entry_to(lx, i, *boxes)?.map(|(k, v)| (k.v, Some(k), v))),
            Entries::Vecs(k, v, _) => Ok(Some((k.at(lx, i)?, None, v.at(lx, i)?))),
        }
    }

    /// As `get`, with values that stay valid for the whole call (fresh
    /// values from the official API), for callers that keep them.
    fn get_owned(&self, lx: Lx, i: usize) -> LResult<Option<(emacs_value, Option<Key>, emacs_value)>> {
        match self {
            Entries::R(h, ..) => Ok(h.entry_at(lx, i)?.map(|(k, v)| (k.v, Some(k), v))),
            Entries::Vecs(k, v, _) => Ok(Some((lx.vec_get(k.value(), i)?, None, lx.vec_get(v.value(), i)?))),
        }
    }

    fn test(&self) -> Option<&Test> {
        match self {
            Entries::R(h, ..) => Some(h.test()),
            Entries::Vecs(..) => None,
        }
    }

    /// End the walk of an rhash table (running a compaction it deferred).
    fn finish(self, lx: Lx) -> LResult<()> {
        match self {
            Entries::R(h, _, w) => h.end_walk(lx, w),
            Entries::Vecs(..) => Ok(()),
        }
    }
}

/// KEY as a lookup argument: its cached hash when `cached` was computed
/// for the same test (`same`), else the key itself.
#[inline]
fn key_arg(k: emacs_value, cached: Option<Key>, same: bool) -> KeyArg {
    match cached {
        Some(key) if same => KeyArg::Classified(key),
        _ => KeyArg::Value(k),
    }
}

fn same_test(lx: Lx, a: Option<&Test>, b: &Test) -> bool {
    a.is_some_and(|a| a.hashes_like(lx, b))
}

// ---- Lookups ----

pub fn get_many(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    let gl = g();
    let default = a.get(2).copied().unwrap_or_else(|| gl.nil());
    let table = readable(lx, a[1])?;
    // A user test's functions run for each key and may change a KEYS
    // list: it is then read cell by cell, as `mapcar' reads it.
    if is_cons(lx, a[0])? && user_test(lx, table)? {
        return lx.funcall(gl.f_get_many_loop.v(), &[a[0], a[1], default]);
    }
    // A key list read in place and the result list made in place (direct
    // path): no vector copy either way.
    if let Some(keys) = ListSeq::read_list(lx, a[0])? {
        if let Some(out) = ListSeq::make(lx, keys.len(), default)? {
            return Ok(match get_many_into(lx, table, &keys, &out, default)? {
                Some(done) => out.truncated(done),
                None => gl.nil(),
            });
        }
    }
    let (vec, as_list) = seq_vector(lx, a[0], false)?;
    let keys = Slots::new(lx, vec)?;
    let n = keys.len();
    // The result is filled in place: a fresh vector of DEFAULTs.
    let out = lx.funcall(gl.f_make_vector.v(), &[int(lx, n)?, default])?;
    let out = Slots::new(lx, out)?;
    if get_many_into(lx, table, &keys, &out, default)?.is_none() {
        return Ok(gl.nil());
    }
    if as_list {
        lx.funcall(gl.f_append.v(), &[out.value(), gl.nil()])
    } else {
        Ok(out.value())
    }
}

/// `get_many`'s loop: the value of each of KEYS (DEFAULT is already in
/// OUT) into OUT at the same position.  The number of keys read (fewer
/// than measured if Lisp shortened a key list meanwhile, as `mapcar`
/// stops), or `None` when C-g is pending.
fn get_many_into(lx: Lx, table: Readable<'_>, keys: &impl Seq, out: &impl Seq, default: emacs_value) -> LResult<Option<usize>> {
    let mut i = 0;
    match table {
        Readable::R(h) => loop {
            // Lisp-free stretches in one step (direct path); the key
            // that stops one (or every key, on the official path)
            // takes the general lookup.
            i = h.get_many_quick(lx, keys, out, i);
            if i >= keys.len().min(out.len()) {
                break;
            }
            if quit_requested(lx, i) {
                return Ok(None);
            }
            let Some(k) = keys.get(lx, i)? else { break };
            if let (_, Some(f)) = h.locate(lx, KeyArg::Value(k))? {
                h.value_into(lx, f.entry, out, i)?;
            }
            i += 1;
        },
        Readable::Builtin(ht) => {
            let gethash = g().f_gethash.v();
            while i < out.len() {
                if quit_requested(lx, i) {
                    return Ok(None);
                }
                let Some(k) = keys.get(lx, i)? else { break };
                let v = lx.funcall(gethash, &[k, ht, default])?;
                out.set(lx, i, v)?;
                i += 1;
            }
        }
    }
    Ok(Some(i.min(keys.len())))
}

pub fn put_many(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    let table = a[2];
    let h = Handle::of(lx, table)?;
    h.check_mutable(lx, table)?;
    let (kv, _) = seq_vector(lx, a[0], false)?;
    let (vv, _) = seq_vector(lx, a[1], false)?;
    let (keys, vals) = (Slots::new(lx, kv)?, Slots::new(lx, vv)?);
    let (nk, nv) = (keys.len(), vals.len());
    if nk != nv {
        return Err(error::lengths(lx, nk, nv));
    }
    // As in `get_many': lists a user test may change are read by `cl-mapc'.
    if matches!(h.test(), Test::User(_)) && (is_cons(lx, a[0])? || is_cons(lx, a[1])?) {
        return lx.funcall(g().f_put_many_loop.v(), &[a[0], a[1], table]);
    }
    for i in 0..nk {
        if quit_requested(lx, i) {
            return Ok(g().nil());
        }
        let (k, v) = (keys.at(lx, i)?, vals.at(lx, i)?);
        h.put(lx, table, k, v)?;
    }
    Ok(table)
}

// ---- Merging ----

/// Put K -> V into `h`; with `f`, a present key's value becomes (F OLD V).
/// `cached`: K's hash, when computed for `h`'s test.
/// FUNCTION runs with the table free to change, and its result is put
/// afresh (the key may have gone meanwhile), as the Lisp loop's `puthash`.
/// The table is busy only while its own test's Lisp runs (inside
/// `locate`); `locate`'s answer holds until Lisp runs again.
fn merge_one(lx: Lx, h: &Handle, table: emacs_value, k: emacs_value, cached: Option<Key>, v: emacs_value, f: Option<emacs_value>) -> LResult<()> {
    let key = key_arg(k, cached, true);
    h.check_mutable(lx, table)?;
    let Some(f) = f else {
        // A plain merge: one put, with the cached hash where it serves.
        return h.put_key(lx, key, v);
    };
    let (key, found) = h.locate(lx, key)?;
    let Some(found) = found else {
        return h.put_key(lx, KeyArg::Classified(key), v);
    };
    let old = h.value_at(lx, found.entry)?;
    let new = lx.funcall(f, &[old, v])?;
    h.check_mutable(lx, table)?;
    h.put_key(lx, KeyArg::Classified(key), new)
}

fn merge_into(lx: Lx, table: emacs_value, sources: &[emacs_value], f: Option<emacs_value>) -> LResult<emacs_value> {
    let h = Handle::of(lx, table)?;
    h.check_mutable(lx, table)?;
    // Every source is checked before anything is put.
    let mut readables = Vec::with_capacity(sources.len());
    for &s in sources {
        readables.push(readable(lx, s)?);
    }
    let id = h.test();
    let mut step = 0usize;
    for r in readables {
        // Lisp run between the entries (FUNCTION, TABLE's user test) may
        // change a built-in source: it is then read by a `maphash' loop.
        if let Readable::Builtin(ht) = r {
            if f.is_some() || matches!(id, Test::User(_)) {
                lx.funcall(g().f_merge_loop.v(), &[f.unwrap_or_else(|| g().nil()), table, ht])?;
                continue;
            }
        }
        let src = Entries::of(lx, r)?;
        let same = same_test(lx, src.test(), id);
        if let Entries::R(sh, ..) = &src {
            // Room for the new keys at once (as hashbrown's `extend`: all
            // of them into an empty table, else half).
            let n = sh.read(lx, Table::len)?;
            let empty = h.read(lx, Table::is_empty)?;
            h.reserve(lx, if empty { n } else { n.div_ceil(2) })?;
        }
        let mut i = 0;
        while i < src.bound(lx)? {
            // A plain merge from a table with the same test: Lisp-free
            // stretches in one step on the direct path.
            if let (None, true, Entries::R(sh, boxes, _)) = (f, same, &src) {
                let j = h.merge_quick(lx, sh, *boxes, i);
                step += j - i;
                i = j;
                if i >= src.bound(lx)? {
                    break;
                }
            }
            step += 1;
            if quit_requested(lx, step) {
                return Ok(g().nil());
            }
            if let Some((k, cached, v)) = src.get(lx, i)? {
                merge_one(lx, h, table, k, cached.filter(|_| same), v, f)?;
            }
            i += 1;
        }
        src.finish(lx)?;
    }
    Ok(table)
}

pub fn merge(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    merge_into(lx, a[0], &a[1..], None)
}

pub fn merge_with(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    merge_into(lx, a[1], &a[2..], Some(a[0]))
}

// ---- Set operations ----

/// Where B's keys are looked up: an rhash table or a built-in one.
struct Member<'a> {
    b: Readable<'a>,
    id: Option<&'a Test>,
}

impl<'a> Member<'a> {
    fn new(lx: Lx, b: Readable<'a>) -> LResult<Self> {
        let _ = lx;
        let id = match b {
            Readable::R(h) => Some(h.test()),
            Readable::Builtin(_) => None,
        };
        Ok(Member { b, id })
    }

    /// Whether the key's table shares B's test (so its cached hash serves).
    fn same(&self, lx: Lx, other: Option<&Test>) -> bool {
        self.id.is_some_and(|id| same_test(lx, other, id))
    }

    /// B's value for K, if B holds K.
    fn value(&self, lx: Lx, k: emacs_value, cached: Option<Key>, same: bool) -> LResult<Option<emacs_value>> {
        match self.b {
            Readable::R(h) => h.value_of(lx, key_arg(k, cached, same)),
            Readable::Builtin(ht) => {
                let hole = g().hole.v();
                let v = lx.funcall(g().f_gethash.v(), &[k, ht, hole])?;
                Ok(if lx.eq(v, hole) { None } else { Some(v) })
            }
        }
    }

    fn contains(&self, lx: Lx, k: emacs_value, cached: Option<Key>, same: bool) -> LResult<bool> {
        match self.b {
            // (`locate` marks B busy while B's user test runs.)
            Readable::R(h) => h.contains(lx, key_arg(k, cached, same)),
            Readable::Builtin(_) => Ok(self.value(lx, k, cached, same)?.is_some()),
        }
    }
}

/// `rhash-intersection` (keep = true) and `rhash-difference` (false).
fn filter(lx: Lx, a: &[emacs_value], keep: bool) -> LResult<emacs_value> {
    let (ra, rb) = (readable(lx, a[0])?, readable(lx, a[1])?);
    // B's user test (lookups) and A's (puts into the result) may change a
    // built-in A while it is read: the Lisp loop reads it then.
    if matches!(ra, Readable::Builtin(_)) && (user_test(lx, ra)? || user_test(lx, rb)?) {
        return lx.funcall(g().f_filter_loop.v(), &[a[0], a[1], g().bool(keep)]);
    }
    let ha = rhash_of(lx, a[0])?;
    let member = Member::new(lx, rb)?;
    let same = member.same(lx, Some(ha.test()));
    // Lisp run by B's user test may change A: then A is walked as
    // `rhash-map' walks it (`filter_walk`).  Otherwise only a GC hook could,
    // and the fast walk starts over as the walk when A changed.
    if !user_test(lx, rb)? {
        if let Some(r) = filter_quick(lx, ha, &member, same, keep)? {
            return Ok(r);
        }
    }
    filter_walk(lx, ha, &member, same, keep)
}

/// `filter`'s loop when no user Lisp runs: the entry numbers of A to keep,
/// copied from A at the end.  `None` when A changed meanwhile (Lisp run
/// by a GC): the caller walks again.
fn filter_quick(lx: Lx, ha: &Handle, member: &Member, same: bool, keep: bool) -> LResult<Option<emacs_value>> {
    let g0 = ha.gen();
    let (live, slots) = ha.read(lx, Table::extent)?;
    let mut kept = Vec::new();
    let boxes = [lx.make_integer(0)?, lx.make_integer(0)?];
    for i in 0..slots {
        if quit_requested(lx, i) {
            return Ok(Some(g().nil()));
        }
        let Some((key, _)) = ha.entry_to(lx, i, boxes)? else { continue };
        if member.contains(lx, key.v, Some(key), same)? == keep {
            kept.push(i);
        }
        if ha.gen() != g0 {
            return Ok(None);
        }
    }
    debug_assert!(kept.len() <= live);
    store::build_from(lx, ha.test().try_clone(lx)?, &[(ha, &kept)])
}

/// `filter`'s loop as `rhash-map` walks A: each entry is read when the
/// walk reaches it (A may change under B's lookups), its key and value
/// kept for the result; if A changed, a key may come twice and the result
/// takes it as repeated puts would.
fn filter_walk(lx: Lx, ha: &Handle, member: &Member, same: bool, keep: bool) -> LResult<emacs_value> {
    let g0 = ha.gen();
    let walk = ha.walk_begin();
    let mut out = Vec::new();
    let mut i = 0;
    while i < ha.read(lx, Table::extent)?.1 {
        if quit_requested(lx, i) {
            return Ok(g().nil());
        }
        if let Some((key, v)) = ha.entry_at(lx, i)? {
            if member.contains(lx, key.v, Some(key), same)? == keep {
                out.push((key, v));
            }
        }
        i += 1;
    }
    ha.end_walk(lx, walk)?;
    let test = ha.test().try_clone(lx)?;
    if ha.gen() == g0 {
        store::build(lx, test, &out, &[])
    } else {
        store::build(lx, test, &[], &out)
    }
}

pub fn intersection(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    filter(lx, a, true)
}

pub fn difference(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    filter(lx, a, false)
}

pub fn union(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    // A's user test runs for each key of B (and each put of A's keys in
    // the Lisp loop): with a built-in table involved, that loop runs.
    let (ra0, rb) = (readable(lx, a[0])?, readable(lx, a[1])?);
    if (matches!(ra0, Readable::Builtin(_)) || matches!(rb, Readable::Builtin(_))) && user_test(lx, ra0)? {
        return lx.funcall(g().f_union_loop.v(), &[a[0], a[1]]);
    }
    let ha = rhash_of(lx, a[0])?;
    // Neither table is held busy: Lisp run by A's user test (or by a GC)
    // may change both, as in the Lisp loop.  Their generations say whether
    // it did.
    let gens = || -> (u32, Option<u32>) {
        let gb = match rb {
            Readable::R(h) => Some(h.gen()),
            Readable::Builtin(_) => None,
        };
        (ha.gen(), gb)
    };
    let g0 = gens();
    let ida = ha.test();
    // Both rhash tables with one built-in test: A's entries, then B's whose
    // keys A lacks, copied from both tables' vectors in one step (unless
    // Lisp run by a GC changed a table meanwhile).
    if let Readable::R(hb) = rb {
        if !matches!(ida, Test::User(_)) && same_test(lx, Some(hb.test()), ida) {
            let a_entries: Vec<usize> = ha.read(lx, |t| t.live_entries())?;
            let mut b_entries = Vec::new();
            let walked = hb.each_entry(lx, |i, key, _| {
                if !ha.contains(lx, KeyArg::Classified(key))? {
                    b_entries.push(i);
                }
                Ok(gens() == g0)
            })?;
            if !walked {
                return Ok(g().nil());
            }
            if gens() == g0 {
                if let Some(r) = store::build_from(lx, ida.try_clone(lx)?, &[(ha, &a_entries), (hb, &b_entries)])? {
                    return Ok(r);
                }
            }
        }
    }
    // A's entries now, then B's walked as `rhash-map' (or `maphash') walks
    // it, each looked up in A as it is when reached.
    let g0 = gens();
    let (_, slots) = ha.read(lx, Table::extent)?;
    let mut out = Vec::new();
    for i in 0..slots {
        if let Some(entry) = ha.entry_at(lx, i)? {
            out.push(entry);
        }
    }
    // B's entries whose keys A lacks, each keyed for A's test.
    let src = Entries::of(lx, rb)?;
    let same = same_test(lx, src.test(), ida);
    let mut extra = Vec::new();
    let mut i = 0;
    while i < src.bound(lx)? {
        if quit_requested(lx, i) {
            return Ok(g().nil());
        }
        // `extra` keeps the values: owned ones, not `get`'s reused boxes.
        if let Some((k, cached, v)) = src.get_owned(lx, i)? {
            if let (key, None) = ha.locate(lx, key_arg(k, cached, same))? {
                extra.push((key, v));
            }
        }
        i += 1;
    }
    src.finish(lx)?;
    let test = ha.test().try_clone(lx)?;
    if same && gens() == g0 {
        // B's keys are distinct under A's test and none is among A's
        // entries read above: append them as they are.
        out.append(&mut extra);
    }
    // Under another test two of B's keys may be one key of A's test (and
    // if Lisp changed A or B, a key may come twice or be one of A's entries
    // read above): the later one replaces the value, as repeated puts would.
    store::build(lx, test, &out, &extra)
}

/// The number of entries of a readable table.
fn count_of(lx: Lx, r: Readable<'_>) -> LResult<usize> {
    match r {
        Readable::R(h) => Ok(h.read(lx, Table::extent)?.0),
        Readable::Builtin(ht) => {
            let n = lx.funcall(g().f_hash_table_count.v(), &[ht])?;
            Ok(usize::try_from(lx.extract_integer(n)?).unwrap_or(0))
        }
    }
}

pub fn equal(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    let gl = g();
    let ra = readable(lx, a[0])?;
    let member = Member::new(lx, readable(lx, a[1])?)?;
    let pred = a.get(2).copied().filter(|&p| lx.is_not_nil(p));
    // `equal' holds for `eq' values: only other pairs need the call.
    let default_pred = pred.is_none_or(|p| lx.eq(p, gl.f_equal.v()));
    let pred = pred.unwrap_or_else(|| gl.f_equal.v());
    // PREDICATE and B's user test run for each entry of A: a built-in A
    // is then read by a `maphash' loop.
    if matches!(ra, Readable::Builtin(_)) && (!default_pred || user_test(lx, member.b)?) {
        return lx.funcall(gl.f_equal_loop.v(), &[a[0], a[1], pred]);
    }
    if count_of(lx, ra)? != count_of(lx, member.b)? {
        return Ok(gl.nil());
    }
    let src = Entries::of(lx, ra)?;
    let same = member.same(lx, src.test());
    // Two rhash tables with the same test and the default predicate: the
    // Lisp-free stretches, between the entries that need Lisp.
    let quick = match (&src, member.b) {
        (Entries::R(a, boxes, _), Readable::R(b)) if same && default_pred => Some((*a, b, *boxes)),
        _ => None,
    };
    let mut i = 0;
    let mut equal = true;
    while equal && i < src.bound(lx)? {
        if quit_requested(lx, i) {
            return Ok(gl.nil());
        }
        if let Some((a, b, boxes)) = quick {
            let (stop, verdict) = a.equal_quick(lx, b, boxes, i);
            if let Some(v) = verdict {
                equal = v;
                break;
            }
            i = stop;
            if i >= src.bound(lx)? {
                break;
            }
        }
        if let Some((k, cached, va)) = src.get(lx, i)? {
            equal = match member.value(lx, k, cached, same)? {
                None => false,
                Some(vb) => (default_pred && lx.eq(va, vb)) || lx.is_not_nil(lx.funcall(pred, &[va, vb])?),
            };
        }
        i += 1;
    }
    src.finish(lx)?;
    Ok(gl.bool(equal))
}

// ---- Counting and duplicates ----

/// OLD + 1, as `1+` (which signals for a non-number).
#[inline]
fn incremented(lx: Lx, old: emacs_value) -> LResult<emacs_value> {
    match lx.integer_i64(old) {
        Some(i) if i < i64::MAX => lx.make_integer(i + 1),
        _ => lx.funcall(g().f_one_plus.v(), &[old]),
    }
}

pub fn tally_into(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    let table = a[1];
    let h = Handle::of(lx, table)?;
    h.check_mutable(lx, table)?;
    // As in `get_many': a list a user test may change is read by `mapc'.
    if matches!(h.test(), Test::User(_)) && is_cons(lx, a[0])? {
        return lx.funcall(g().f_tally_loop.v(), &[a[0], table]);
    }
    let done = match ListSeq::read_list(lx, a[0])? {
        // A list is read in place on the direct path.
        Some(elems) => tally_all(lx, h, &elems)?,
        None => {
            let (vec, _) = seq_vector(lx, a[0], false)?;
            tally_all(lx, h, &Slots::new(lx, vec)?)?
        }
    };
    Ok(if done { table } else { g().nil() })
}

/// `tally_into`'s loop (as `mapc` reads a list); false when C-g is
/// pending.
fn tally_all(lx: Lx, h: &Handle, elems: &impl Seq) -> LResult<bool> {
    let one = lx.make_integer(1)?;
    let mut i = 0;
    while i < elems.len() {
        // As in `get_many`: Lisp-free stretches first.
        i = h.tally_many_quick(lx, elems, i, one)?;
        if i >= elems.len() {
            break;
        }
        if quit_requested(lx, i) {
            return Ok(false);
        }
        let Some(k) = elems.get(lx, i)? else { break };
        i += 1;
        h.tally(lx, k, one, |old| incremented(lx, old))?;
    }
    Ok(true)
}

/// The test named NAME (default `equal'), resolved by rhash.el's
/// `rhash--resolve-test` as `rhash-make' resolves it.
fn test_named(lx: Lx, name: Option<emacs_value>) -> LResult<Test> {
    let gl = g();
    let Some(name) = name.filter(|&n| lx.is_not_nil(n)) else {
        return Ok(Test::Equal);
    };
    // `get' signals for a non-symbol: `rhash-uniq' calls it invalid.
    if !lx.eq(lx.type_of(name)?, gl.symbol.v()) {
        return Err(error::invalid_test(lx, name));
    }
    let r = lx.funcall(gl.f_resolve_test.v(), &[name])?;
    let v = lx.funcall(gl.f_vconcat.v(), &[r])?;
    Test::new(lx, lx.vec_get(v, 0)?, lx.vec_get(v, 1)?, lx.vec_get(v, 2)?)
}

pub fn uniq(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    let gl = g();
    let test = test_named(lx, a.get(1).copied())?;
    let (vec, _) = seq_vector(lx, a[0], true)?;
    // A user test's functions may change SEQUENCE, which is read here from
    // a copy: the `mapc' loop reads it then.
    if matches!(test, Test::User(_)) {
        return lx.funcall(gl.f_uniq_loop.v(), &[a[0], a.get(1).copied().unwrap_or_else(|| gl.nil())]);
    }
    if lx.vec_size(vec)? == 0 {
        return Ok(gl.nil());
    }
    Ok(store::uniq(lx, test, vec)?.unwrap_or_else(|| gl.nil()))
}

// ---- Memory ----

pub fn compact(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    let h = Handle::of(lx, a[0])?;
    h.check_mutable(lx, a[0])?;
    h.compact(lx)?;
    Ok(a[0])
}

pub fn stats(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    let h = Handle::of(lx, a[0])?;
    let s = h.read(lx, Table::full_stats)?;
        // (/ (float SUM) (max COUNT 1)), without a float constructor in `Lx`.
    let sum = lx.funcall(g().f_float.v(), &[int(lx, s.probe_sum)?])?;
    let mean = lx.funcall(g().f_div.v(), &[sum, int(lx, s.count.max(1))?])?;
    let items: [(&CStr, emacs_value); 9] = [
        (c":count", int(lx, s.count)?),
        (c":capacity", int(lx, s.capacity)?),
        (c":slots", int(lx, s.slots)?),
        (c":vector-length", int(lx, s.vector_length)?),
        (c":index-slots", int(lx, s.index_slots)?),
        (c":tombstones", int(lx, s.tombstones)?),
        (c":max-probe", int(lx, s.max_probe)?),
        (c":mean-probe", mean),
        (c":bytes", int(lx, s.bytes)?),
    ];
    let mut plist = Vec::with_capacity(2 * items.len());
    for (k, v) in items {
        plist.push(lx.intern(k)?);
        plist.push(v);
    }
    lx.funcall(g().f_list.v(), &plist)
}
