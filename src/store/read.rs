//! Reading a whole table: snapshots of its storage (`rhash-keys`,
//! `-values`, `rhash--pairs`), entries by number, and the module-side walk.

use super::*;
use crate::lists::FreshList;

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
        // (Copies made in place need no retries.)
        let mut tries = if self.read(lx, |t| t.storage.quick().is_some())? { 3 } else { 0 };
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
        if let Some(lists) = self.native_lists(lx, cols)? {
            return Ok(lists[which]);
        }
        if let Some(list) = self.column_in_place(lx, which)? {
            return Ok(list);
        }
        match self.snapshot(lx, cols)? {
            Some(s) => lisp_list(lx, s.cols[which], s.len, s.live),
            None => Ok(g().nil()),
        }
    }

    /// `(KEYS . VALUES)`: both lists read at one instant.
    pub fn pairs(&self, lx: Lx) -> LResult<emacs_value> {
        let gl = g();
        if let Some([k, v]) = self.native_lists(lx, [true, true])? {
            return lx.funcall(gl.f_cons.v(), &[k, v]);
        }
        let Some(s) = self.snapshot(lx, [true, true])? else {
            return lx.funcall(gl.f_cons.v(), &[gl.nil(), gl.nil()]);
        };
        let k = lisp_list(lx, s.cols[0], s.len, s.live)?;
        let v = lisp_list(lx, s.cols[1], s.len, s.live)?;
        lx.funcall(gl.f_cons.v(), &[k, v])
    }
}

impl Handle {
    /// `column` on the direct path for Lisp storage: a fresh list of the
    /// live count (`make-list`), then, in one borrow, the keys or values
    /// stored into it in entry order, with no copy of the storage.  If Lisp
    /// run by `make-list` (a GC hook) changed the count, it starts over
    /// (three times); `None` then, or for other storage.
    fn column_in_place(&self, lx: Lx, which: usize) -> LResult<Option<emacs_value>> {
        for _ in 0..3 {
            let Some(live) = self.read(lx, |t| t.storage.quick().map(|_| t.raw.len()))? else { return Ok(None) };
            if live == 0 {
                return Ok(Some(g().nil()));
            }
            let Some(fresh) = FreshList::new(lx, live)? else { return Ok(None) };
            let list = self.read(lx, |t| {
                let q = t.storage.quick()?;
                if t.raw.len() != live {
                    return None;
                }
                let items = t.raw.iter().map(|(i, _)| if which == 0 { q.key(i) } else { q.value(i) });
                // SAFETY: the storage keeps the live entries' objects, and
                // no Lisp runs in this borrow while they are stored.
                Some(unsafe { fresh.fill(items) })
            })?;
            if list.is_some() {
                return Ok(list);
            }
        }
        Ok(None)
    }

    /// Native storage: the live keys and/or values (`cols`) as fresh lists,
    /// in iteration order.  The encodings are copied out under one borrow
    /// and decoded after it: decoding allocates, and Lisp run by a GC then
    /// may change the table, which the copy no longer depends on.  `None`
    /// for Lisp storage.
    fn native_lists(&self, lx: Lx, cols: [bool; 2]) -> LResult<Option<[emacs_value; 2]>> {
        let copied = self.read(lx, |t| t.storage.native().map(|n| n.copy_out(t.raw.iter().map(|(i, _)| i), cols)))?;
        let Some(copied) = copied else { return Ok(None) };
        let gl = g();
        let mut out = [gl.nil(); 2];
        for k in (0..2).filter(|&k| cols[k]) {
            let mut items = Vec::with_capacity(copied.len());
            for (i, kv) in copied.iter().enumerate() {
                if quit_requested(lx, i + 1) {
                    return Err(crate::ffi::Exit);
                }
                items.push(crate::native_storage::decode(lx, if k == 0 { &kv.0 } else { &kv.1 })?);
            }
            out[k] = lx.funcall(gl.f_list.v(), &items)?;
        }
        Ok(Some(out))
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

impl Handle {
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

    /// Call `f` with each live entry's number, key and value (in two local
    /// value boxes of this call, rewritten for each entry), in entry order
    /// over the entry numbers there are when the walk starts.  `f` may run
    /// Lisp: each entry is read afresh.  `f` answering false stops the
    /// walk.  C-g is polled every 4096 entries: `Ok(false)` when a quit is
    /// pending (the caller returns at once), else `Ok(true)`.
    pub fn each_entry(&self, lx: Lx, mut f: impl FnMut(usize, Key, emacs_value) -> LResult<bool>) -> LResult<bool> {
        let (_, slots) = self.read(lx, Table::extent)?;
        let boxes = [lx.make_integer(0)?, lx.make_integer(0)?];
        for i in 0..slots {
            if quit_requested(lx, i) {
                return Ok(false);
            }
            let Some((key, value)) = self.entry_to(lx, i, boxes)? else { continue };
            if !f(i, key, value)? {
                break;
            }
        }
        Ok(true)
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
