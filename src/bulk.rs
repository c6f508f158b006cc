//! Whole loops in one call: bulk and set operations, compaction
//! and statistics.  Each function does what the Lisp loop it replaces does,
//! in the same order, with the same errors; see the contract's "Bulk and set
//! operations".
//!
//! - Sequences (lists or vectors) are read through one `vconcat`, results
//!   built with `make-vector`/`vec_set` and, for lists, one `append`.
//! - Where a table is only read, a built-in hash table is accepted: lookups
//!   in it call `gethash`, and its entries are read in its iteration order
//!   by `rhash--hash-table-vectors` (a `maphash` loop in rhash.el), or, for
//!   the first table of a set operation, it is converted with
//!   `rhash-from-hash-table` (both Lisp loops).
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
use crate::store::{self, int, quit_requested, Handle, KeyArg, Slots, Table};
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
    /// The table, and two local value boxes for its entries (direct path).
    R(&'a Handle, [emacs_value; 2]),
    Vecs(Slots, Slots, usize),
}

impl Entries<'_> {
    fn of<'a>(lx: Lx, r: Readable<'a>) -> LResult<Entries<'a>> {
        match r {
            Readable::R(h) => Ok(Entries::R(h, [lx.make_integer(0)?, lx.make_integer(0)?])),
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
            Entries::R(h, _) => Ok(h.read(lx, Table::extent)?.1),
            Entries::Vecs(_, _, n) => Ok(*n),
        }
    }

    /// Entry `i`: its key (with the cached hash, for an rhash table) and
    /// value, valid until the next `get`.
    fn get(&self, lx: Lx, i: usize) -> LResult<Option<(emacs_value, Option<Key>, emacs_value)>> {
        match self {
            Entries::R(h, boxes) => Ok(h.entry_to(lx, i, *boxes)?.map(|(k, v)| (k.v, Some(k), v))),
            Entries::Vecs(k, v, _) => Ok(Some((k.at(lx, i)?, None, v.at(lx, i)?))),
        }
    }

    /// As `get`, with values that stay valid for the whole call (fresh
    /// values from the official API), for callers that keep them.
    fn get_owned(&self, lx: Lx, i: usize) -> LResult<Option<(emacs_value, Option<Key>, emacs_value)>> {
        match self {
            Entries::R(h, _) => Ok(h.entry_at(lx, i)?.map(|(k, v)| (k.v, Some(k), v))),
            Entries::Vecs(k, v, _) => Ok(Some((lx.vec_get(k.value(), i)?, None, lx.vec_get(v.value(), i)?))),
        }
    }

    fn test(&self) -> Option<&Test> {
        match self {
            Entries::R(h, _) => Some(h.test()),
            Entries::Vecs(..) => None,
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
    let (vec, as_list) = seq_vector(lx, a[0], false)?;
    let keys = Slots::new(lx, vec)?;
    let n = keys.len();
    // The result is filled in place: a fresh vector of DEFAULTs.
    let out = lx.funcall(gl.f_make_vector.v(), &[int(lx, n)?, default])?;
    let out = Slots::new(lx, out)?;
    match table {
        Readable::R(h) => {
            let mut i = 0;
            while i < n {
                // Lisp-free stretches in one step (direct path); the key
                // that stops one (or every key, on the official path)
                // takes the general lookup.
                i = h.get_many_quick(lx, &keys, &out, i);
                if i >= n {
                    break;
                }
                if quit_requested(lx, i) {
                    return Ok(gl.nil());
                }
                let k = keys.at(lx, i)?;
                if let (_, Some(f)) = h.locate(lx, KeyArg::Value(k))? {
                    h.value_into(lx, f.entry, &out, i)?;
                }
                i += 1;
            }
        }
        Readable::Builtin(ht) => {
            let gethash = g().f_gethash.v();
            for i in 0..n {
                if quit_requested(lx, i) {
                    return Ok(gl.nil());
                }
                let k = keys.at(lx, i)?;
                let v = lx.funcall(gethash, &[k, ht, default])?;
                out.set(lx, i, v)?;
            }
        }
    }
    if as_list {
        lx.funcall(gl.f_append.v(), &[out.value(), gl.nil()])
    } else {
        Ok(out.value())
    }
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
fn merge_one(lx: Lx, h: &Handle, table: emacs_value, k: emacs_value, cached: Option<Key>, v: emacs_value, f: Option<emacs_value>) -> LResult<()> {
    let key = key_arg(k, cached, true);
    h.check_mutable(lx, table)?;
    let Some(f) = f else {
        // A plain merge: one put, with the cached hash where it serves.
        return h.put_key(lx, key, v);
    };
    let busy = h.busy();
    let (key, found) = h.locate(lx, key)?;
    let Some(found) = found else {
        return h.put_key(lx, KeyArg::Classified(key), v);
    };
    let old = h.value_at(lx, found.entry)?;
    drop(busy);
    let new = lx.funcall(f, &[old, v])?;
    h.check_mutable(lx, table)?;
    let _busy = h.busy();
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
        let src = Entries::of(lx, r)?;
        let same = same_test(lx, src.test(), id);
        let mut i = 0;
        while i < src.bound(lx)? {
            // A plain merge from a table with the same test: Lisp-free
            // stretches in one step on the direct path.
            if let (None, true, Entries::R(sh, boxes)) = (f, same, &src) {
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
            Readable::R(h) => {
                let _busy = h.busy();
                h.contains(lx, key_arg(k, cached, same))
            }
            Readable::Builtin(_) => Ok(self.value(lx, k, cached, same)?.is_some()),
        }
    }
}

/// `rhash-intersection` (keep = true) and `rhash-difference` (false).
fn filter(lx: Lx, a: &[emacs_value], keep: bool) -> LResult<emacs_value> {
    let ha = rhash_of(lx, a[0])?;
    let member = Member::new(lx, readable(lx, a[1])?)?;
    // A cannot change while its keys are looked up in B, so the gathered
    // entries stay valid (a user function that tries gets an error).
    let _busy = ha.busy();
    let same = member.same(lx, Some(ha.test()));
    let (live, slots) = ha.read(lx, Table::extent)?;
    // The entry numbers of A to keep; the result copies them from A.
    let mut kept = Vec::new();
    let boxes = [lx.make_integer(0)?, lx.make_integer(0)?];
    for i in 0..slots {
        if quit_requested(lx, i) {
            return Ok(g().nil());
        }
        let Some((key, _)) = ha.entry_to(lx, i, boxes)? else { continue };
        if member.contains(lx, key.v, Some(key), same)? == keep {
            kept.push(i);
        }
    }
    debug_assert!(kept.len() <= live);
    store::build_from(lx, ha.test().try_clone(lx)?, &[(ha, &kept)])
}

pub fn intersection(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    filter(lx, a, true)
}

pub fn difference(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    filter(lx, a, false)
}

pub fn union(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    let ha = rhash_of(lx, a[0])?;
    let rb = readable(lx, a[1])?;
    let _busy_a = ha.busy();
    let _busy_b = match rb {
        Readable::R(h) => Some(h.busy()),
        Readable::Builtin(_) => None,
    };
    let ida = ha.test();
    let (_, slots) = ha.read(lx, Table::extent)?;
    // Both rhash tables with one test: A's entries, then B's whose keys A
    // lacks, copied from both tables' vectors in one step.
    if let Readable::R(hb) = rb {
        if same_test(lx, Some(hb.test()), ida) {
            let a_entries: Vec<usize> = ha.read(lx, |t| t.live_entries())?;
            let (_, bslots) = hb.read(lx, Table::extent)?;
            let boxes = [lx.make_integer(0)?, lx.make_integer(0)?];
            let mut b_entries = Vec::new();
            for i in 0..bslots {
                if quit_requested(lx, i) {
                    return Ok(g().nil());
                }
                let Some((key, _)) = hb.entry_to(lx, i, boxes)? else { continue };
                if !ha.contains(lx, KeyArg::Classified(key))? {
                    b_entries.push(i);
                }
            }
            return store::build_from(lx, ida.try_clone(lx)?, &[(ha, &a_entries), (hb, &b_entries)]);
        }
    }
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
    for i in 0..src.bound(lx)? {
        if quit_requested(lx, i) {
            return Ok(g().nil());
        }
        // `extra` keeps the values: owned ones, not `get`'s reused boxes.
        let Some((k, cached, v)) = src.get_owned(lx, i)? else { continue };
        if let (key, None) = ha.locate(lx, key_arg(k, cached, same))? {
            extra.push((key, v));
        }
    }
    let test = ha.test().try_clone(lx)?;
    if same {
        // B's keys are distinct under A's test: append them as they are.
        out.append(&mut extra);
    }
    // Under another test two of B's keys may be one key of A's test: the
    // later one replaces the value, as repeated puts would.
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
    if count_of(lx, ra)? != count_of(lx, member.b)? {
        return Ok(gl.nil());
    }
    let src = Entries::of(lx, ra)?;
    let same = member.same(lx, src.test());
    let mut i = 0;
    while i < src.bound(lx)? {
        if quit_requested(lx, i) {
            return Ok(gl.nil());
        }
        if let Some((k, cached, va)) = src.get(lx, i)? {
            let Some(vb) = member.value(lx, k, cached, same)? else { return Ok(gl.nil()) };
            if !(default_pred && lx.eq(va, vb)) {
                let r = lx.funcall(pred, &[va, vb])?;
                if !lx.is_not_nil(r) {
                    return Ok(gl.nil());
                }
            }
        }
        i += 1;
    }
    Ok(gl.t.v())
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
    let (vec, _) = seq_vector(lx, a[0], false)?;
    let elems = Slots::new(lx, vec)?;
    let one = lx.make_integer(1)?;
    let mut i = 0;
    while i < elems.len() {
        // As in `get_many`: Lisp-free stretches first.
        i = h.tally_many_quick(lx, &elems, i, one)?;
        if i >= elems.len() {
            break;
        }
        if quit_requested(lx, i) {
            return Ok(g().nil());
        }
        let k = elems.at(lx, i)?;
        i += 1;
        h.tally(lx, k, one, |old| incremented(lx, old))?;
    }
    Ok(table)
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
