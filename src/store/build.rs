//! Making tables: every table is made here (`make`, `assemble` and its
//! callers), from scratch, from other tables' entries or from vectors.

use super::*;
use crate::lists::FreshList;

/// Make a new, empty table object (its storage follows from `test`).
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
    /// `fill` returns `None` when what it copies from changed during the
    /// allocation so that `len` no longer fits: then nothing changes and
    /// `assemble` returns false (the caller measures again and retries).
    fn assemble(&self, lx: Lx, len: usize, fill: impl FnOnce(Lx, &[Slots; 2]) -> LResult<Option<RawTable>>) -> LResult<bool> {
        let cell = self.new_cell(lx)?;
        let cols = [Slots::new(lx, holes(lx, len)?)?, Slots::new(lx, holes(lx, len)?)?];
        // No Lisp runs from here on.
        let Some(raw) = fill(lx, &cols)? else { return Ok(false) };
        self.install_storage(lx, [cols[0].value(), cols[1].value()], len, cell)?;
        self.write(lx, |t| t.raw = raw)?;
        Ok(true)
    }

    /// A new table with the same test, entries, order and capacity.
    pub fn copy(&self, lx: Lx) -> LResult<emacs_value> {
        let hint = self.read(lx, |t| t.hint)?;
        // Native storage: the index and the encodings copied in Rust.
        let native = self.read(lx, |t| t.storage.native().map(|n| (t.raw.try_clone().ok(), n.try_clone(&t.raw))))?;
        if let Some(parts) = native {
            let (Some(raw), Some(storage)) = parts else { return Err(error::memory(lx)) };
            let t = Table { raw, storage: Store::Native(storage), hint };
            return Handle::new(self.test.try_clone(lx)?, t).into_lisp(lx);
        }
        let copy = Handle::new(self.test.try_clone(lx)?, Table::new(RawTable::new(), hint));
        // The index and storage as they are at one instant (after the
        // allocation, which may run Lisp that changes this table).
        while let Some(len) = self.read(lx, |t| t.storage.exists().then(|| t.storage.room()))? {
            let done = copy.assemble(lx, len, |lx, cols| {
                self.read(lx, |t| {
                    if t.storage.room() > len {
                        return Ok(None);
                    }
                    let live = t.live_entries();
                    t.storage.copy_entries(lx, live.iter().map(|&i| (i, i)), cols)?;
                    t.raw.try_clone().map(Some).map_err(|_| error::memory(lx))
                })?
            })?;
            if done {
                break;
            }
        }
        copy.into_lisp(lx)
    }

    /// Give back the memory of removed entries: a compacted index
    /// (`RawTable::compacted`) and storage just long enough for the live
    /// entries, in the same order.  The caller checked that the table may
    /// change.  During a walk (`walk_begin`) the compaction waits for the
    /// last walk's end (`end_walk`), so that entry numbers do not move
    /// under the walk.
    pub fn compact(&self, lx: Lx) -> LResult<()> {
        if self.walks.get() > 0 {
            self.compact_pending.set(true);
            return Ok(());
        }
        self.compact_pending.set(false);
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
        if self.read(lx, |t| t.storage.native().is_some())? {
            // Native storage renumbers its encodings in Rust, no Lisp.
            self.touch();
            return self.write(lx, |t| {
                let (raw, from) = t.raw.compacted().map_err(|_| error::memory(lx))?;
                let native = t.storage.native().expect("checked above");
                native.compact(&from).map_err(|_| error::memory(lx))?;
                t.raw = raw;
                t.hint = 0;
                Ok(())
            })?;
        }
        if !exists {
            let raw = self.read(lx, |t| t.raw.compacted())?.map_err(|_| error::memory(lx))?.0;
            self.touch();
            return self.write(lx, |t| {
                t.raw = raw;
                t.hint = 0;
            });
        }
        loop {
            let n = self.read(lx, Table::len)?;
            let done = self.assemble(lx, n, |lx, cols| {
                self.read(lx, |t| {
                    // (Lisp run by a GC during the allocation may have put
                    // or removed entries: then measure and allocate again.)
                    if t.raw.len() != n {
                        return Ok(None);
                    }
                    let (raw, from) = t.raw.compacted().map_err(|_| error::memory(lx))?;
                    t.storage.copy_entries(lx, from.iter().copied().zip(0..), cols)?;
                    Ok(Some(raw))
                })?
            })?;
            if done {
                return self.write(lx, |t| t.hint = 0);
            }
        }
    }
}

/// A new table with `test` holding, in order, the entries `entries` of
/// each `(src, entries)` part, with their cached hashes (the parts' tables
/// hash alike and hold distinct keys).  The entries are copied in one
/// Lisp-free step once the new storage exists; `None` (no table) if Lisp
/// run by a GC meanwhile changed a source (the caller reads again).
pub fn build_from(lx: Lx, test: Test, parts: &[(&Handle, &[usize])]) -> LResult<Option<emacs_value>> {
    let gens: Vec<u32> = parts.iter().map(|p| p.0.gen()).collect();
    let changed = || parts.iter().zip(&gens).any(|(p, &g0)| p.0.gen() != g0);
    if matches!(test, Test::Native(_)) {
        return build_native(lx, test, parts, &changed);
    }
    let n: usize = parts.iter().map(|p| p.1.len()).sum();
    let h = Handle::new(test, Table::new(RawTable::new(), 0));
    if n > 0 {
        let done = h.assemble(lx, n, |lx, cols| {
            if changed() {
                return Ok(None);
            }
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
        if !done {
            return Ok(None);
        }
    }
    h.into_lisp(lx).map(Some)
}

/// A new table with `test` holding `pairs` (keys classified for `test`,
/// distinct under it) in order, with room for `room` entries; then each of
/// `more` put as `rhash-put` would (keys classified for `test`, perhaps
/// equal to earlier ones).
pub fn build(lx: Lx, test: Test, pairs: &[(Key, emacs_value)], more: &[(Key, emacs_value)]) -> LResult<emacs_value> {
    if matches!(test, Test::Native(_)) {
        // Native storage: each pair encoded and put (errors name the first
        // object that is not plain data).
        let result = make(lx, test, pairs.len() + more.len())?;
        let h = Handle::of(lx, result)?;
        for (i, (k, v)) in pairs.iter().chain(more).enumerate() {
            if quit_requested(lx, i) {
                return Err(crate::ffi::Exit);
            }
            h.put_key(lx, KeyArg::Value(k.v), *v)?;
        }
        return Ok(result);
    }
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
            return Err(error::lengths(lx, n, vs.len()));
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
        let mut i = 0;
        while i < n {
            if quit_requested(lx, i) {
                return Ok(None);
            }
            // The Lisp-free stretch, while it lasts (`i` moves on).
            (i, w) = self.distinct_quick(lx, keys, vals, &mut raw, i, w)?;
            if i >= n {
                break;
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
            i += 1;
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

    /// `distinct`'s loop from element `from` on, with `w` distinct keys so
    /// far, on the direct path: each key classified, looked up and moved
    /// forward with no Lisp and no env call.  Returns where it stopped and
    /// the new `w`: the end, a key that needs Lisp, or a quit poll.
    fn distinct_quick(&self, lx: Lx, keys: &Slots, vals: Option<&Slots>, raw: &mut RawTable, from: usize, mut w: usize) -> LResult<(usize, usize)> {
        let n = keys.len();
        let (Some(l), Some(_)) = (direct::layout(), keys.quick()) else { return Ok((from, w)) };
        if vals.is_some_and(|vs| vs.quick().is_none()) {
            return Ok((from, w));
        }
        let hole = crate::storage::hole_obj();
        for i in from..n {
            if i > from && quit_requested(lx, i) {
                return Ok((i, w));
            }
            let (Some(o), Ok(kv)) = (keys.obj_at(i), keys.at(lx, i)) else { return Ok((i, w)) };
            let Some(k) = keys::classify_quick(l, self.plan, kv) else { return Ok((i, w)) };
            let mut probe = raw.probe(k.meta);
            let found = loop {
                let Some(e) = raw.next_candidate(&mut probe) else { break Some(None) };
                match keys.obj_at(e).and_then(|s| keys::same_quick(l, &k, raw.payload(e), s)) {
                    Some(true) => break Some(Some(e)),
                    Some(false) => {}
                    None => break None,
                }
            };
            let Some(found) = found else { return Ok((i, w)) };
            let v = vals.and_then(|vs| vs.obj_at(i));
            // (As the general step: keys and values are checked when both
            // go into a table.)
            if vals.is_some() && (o == hole || v == Some(hole)) {
                return Err(error::hole(lx));
            }
            match found {
                Some(e) => {
                    if let (Some(vs), Some(v)) = (vals, v) {
                        vs.set_obj(e, v);
                    }
                }
                None => {
                    let e = raw.insert(k.meta, k.payload).map_err(|_| error::memory(lx))?;
                    debug_assert_eq!(e, w);
                    if e != i {
                        keys.set_obj(e, o);
                        if let (Some(vs), Some(v)) = (vals, v) {
                            vs.set_obj(e, v);
                        }
                    }
                    w += 1;
                }
            }
        }
        Ok((n, w))
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
    // On the direct path: the first W elements stored into a fresh list.
    if let Some(fresh) = FreshList::new(lx, w)? {
        // SAFETY: ELEMS is a fresh vector no Lisp sees, which keeps its
        // elements; no Lisp runs while they are stored.
        if let Some(objs) = unsafe { keys.objs() } {
            // SAFETY: as above: the vector keeps what is stored.
            return Ok(Some(unsafe { fresh.fill(objs.iter().copied().take(w)) }));
        }
    }
    let part = if w == keys.len() { elems } else { lx.funcall(gl.f_substring.v(), &[elems, int(lx, 0)?, int(lx, w)?])? };
    Ok(Some(lx.funcall(gl.f_append.v(), &[part, gl.nil()])?))
}


/// A new native table holding, in order, the entries of `parts` (distinct
/// keys), each put as `rhash-put` would: keys and values are encoded, and
/// the first one that is not plain data signals with the table holding
/// the entries before it.  `None` if a source changed meanwhile
/// (`changed`, Lisp run by a GC).
fn build_native(lx: Lx, test: Test, parts: &[(&Handle, &[usize])], changed: &dyn Fn() -> bool) -> LResult<Option<emacs_value>> {
    let result = make(lx, test, 0)?;
    let h = Handle::of(lx, result)?;
    let entries = parts.iter().flat_map(|(src, entries)| entries.iter().map(move |&i| (*src, i)));
    for (n, (src, i)) in entries.enumerate() {
        if quit_requested(lx, n) {
            return Err(crate::ffi::Exit);
        }
        if changed() {
            return Ok(None);
        }
        if let Some((k, v)) = src.entry_at(lx, i)? {
            h.put_key(lx, KeyArg::Value(k.v), v)?;
        }
    }
    Ok(Some(result))
}
