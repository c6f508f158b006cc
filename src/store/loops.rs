//! The bulk loops' Lisp-free stretches on the direct path: each runs
//! in one borrow and declines (returns where it stopped) at the first step
//! that needs Lisp.

use super::*;
use crate::lists::Seq;
use crate::storage::probe_quick;

impl Handle {
    /// Copy the value of entry `entry` into place `i` of `dst`.
    #[inline]
    pub fn value_into(&self, lx: Lx, entry: usize, dst: &impl Seq, i: usize) -> LResult<()> {
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
    /// every 4096 keys); returns where it stopped (`len` when done), where
    /// both sequences are parked.
    pub fn get_many_quick<K: Seq, O: Seq>(&self, lx: Lx, keys: &K, out: &O, from: usize) -> usize {
        let plan = self.plan;
        let Some(l) = direct::layout() else { return from };
        let (Some(mut ka), Some(mut oa)) = (keys.place(from), out.place(from)) else { return from };
        let Ok(t) = self.t.try_borrow() else { return from };
        let n = keys.len().min(out.len());
        let scratch = keys.scratch();
        let mut i = from;
        // Values are copied as objects: Lisp storage's view is chosen once
        // here for the whole stretch; other storage takes the storage's
        // own steps (`Store`'s).
        let q = t.storage.quick();
        while i < n {
            if i > from && quit_requested(lx, i) {
                break;
            }
            let (Some((ko, kn)), Some((_, on))) = (keys.read(ka), out.read(oa)) else { break };
            // SAFETY: `scratch` is a local value box of this call.
            unsafe { direct::set_box(scratch, ko) };
            let value = match q {
                Some(q) => {
                    let Some(k) = keys::classify_quick(l, plan, scratch) else { break };
                    match probe_quick(l, q, &t.raw, &k) {
                        Some(found) => found.map(|(entry, _)| q.value(entry)),
                        None => break,
                    }
                }
                None => {
                    let Some(k) = Store::classify_quick(plan, scratch) else { break };
                    match t.find_quick(&k) {
                        Some(Some(f)) => match t.storage.value_obj(f.entry) {
                            Some(o) => Some(o),
                            None => break,
                        },
                        Some(None) => None,
                        None => break,
                    }
                }
            };
            if let Some(v) = value {
                out.write(oa, v);
            }
            (ka, oa, i) = (kn, on, i + 1);
        }
        keys.park(i, ka);
        out.park(i, oa);
        i
    }

    /// `rhash-merge`'s loop for a source `src` with the same test, in one
    /// borrow of each table: put `src`'s entries from entry number `from`
    /// on into this table, reusing their cached hashes, while each step is
    /// Lisp-free (`boxes`, two local value boxes of this call, hold the
    /// entry being put).  Returns where it stopped (declined): the end of
    /// `src`'s entries, or an entry that needs Lisp or storage that must
    /// grow.
    pub fn merge_quick(&self, lx: Lx, src: &Handle, boxes: [emacs_value; 2], from: usize) -> usize {
        if std::ptr::eq(self, src) {
            // Merging a table into itself changes nothing; the general
            // path does it one entry at a time.
            return from;
        }
        let Some(l) = direct::layout() else { return from };
        let (Ok(s), Ok(mut t)) = (src.t.try_borrow(), self.t.try_borrow_mut()) else { return from };
        // (Keys go over with their Lisp storage's classification: both
        // tables must have Lisp storage.  An insertion with room never
        // reallocates the storage, so `tq` stays valid.)
        let (Some(sq), Some(tq)) = (s.storage.quick(), t.storage.quick()) else { return from };
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
            let done = match probe_quick(l, tq, &t.raw, &key) {
                Some(Some((entry, _))) => {
                    tq.set_value(entry, sq.value(i));
                    true
                }
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

    /// `rhash-equal`'s loop with the default predicate, for a table `b`
    /// with the same test, in one borrow of each: from entry number `from`
    /// of this table on, look each key up in `b` by its cached hash and
    /// compare the values by identity.  Returns where it stopped and
    /// `Some(false)` when a key is missing from `b`; it stops (declines,
    /// `None`) at values that are not `eq` (`equal` must decide: Lisp), at
    /// keys that need Lisp, and at a quit poll.  `boxes` are two local
    /// value boxes of this call (the entry being compared).
    pub fn equal_quick(&self, lx: Lx, b: &Handle, boxes: [emacs_value; 2], from: usize) -> (usize, Option<bool>) {
        let Some(l) = direct::layout() else { return (from, None) };
        let (Ok(s), Ok(t)) = (self.t.try_borrow(), b.t.try_borrow()) else { return (from, None) };
        let (Some(sq), Some(tq)) = (s.storage.quick(), t.storage.quick()) else { return (from, None) };
        let slots = s.raw.slots();
        for i in from..slots {
            if i > from && quit_requested(lx, i) {
                return (i, None);
            }
            let Some(e) = s.raw.entry(i) else { continue };
            let [kv, _] = sq.entry_to(i, boxes);
            let key = Key { v: kv, meta: e.meta, payload: e.payload };
            if !keys::is_quick(l, &key) {
                return (i, None);
            }
            match probe_quick(l, tq, &t.raw, &key) {
                Some(Some((entry, _))) if tq.value(entry) == sq.value(i) => {}
                Some(None) => return (i, Some(false)),
                _ => return (i, None),
            }
        }
        (slots, None)
    }

    /// `rhash-tally-into`'s loop, in one borrow (as `get_many_quick`):
    /// count `elems[i]` from `from` on while each step is Lisp-free
    /// (`Table::tally_quick`); returns where it stopped (declined).
    pub fn tally_many_quick(&self, lx: Lx, elems: &impl Seq, from: usize, one: emacs_value) -> LResult<usize> {
        let plan = self.plan;
        let Some(l) = direct::layout() else { return Ok(from) };
        let Some(mut at) = elems.place(from) else { return Ok(from) };
        let Ok(mut t) = self.t.try_borrow_mut() else { return Ok(from) };
        // Counts are fixnums stepped in place: Lisp storage on the direct
        // path only, chosen once here (an insertion with room never
        // reallocates the storage, so `q` stays valid).
        let Some(q) = t.storage.quick() else { return Ok(from) };
        self.touch();
        let scratch = elems.scratch();
        let mut i = from;
        let mut r = Ok(());
        while i < elems.len() {
            if i > from && quit_requested(lx, i) {
                break;
            }
            let Some((o, next)) = elems.read(at) else { break };
            // SAFETY: `scratch` is a local value box of this call.
            unsafe { direct::set_box(scratch, o) };
            let Some(k) = keys::classify_quick(l, plan, scratch) else { break };
            let done = match probe_quick(l, q, &t.raw, &k) {
                Some(Some((entry, _))) => q.count_up(entry),
                Some(None) if !q.is_hole_key(&k) => match t.insert_with_room(lx, &k, one) {
                    Ok(done) => done,
                    Err(e) => {
                        r = Err(e);
                        false
                    }
                },
                _ => false,
            };
            if !done {
                break;
            }
            (at, i) = (next, i + 1);
        }
        elems.park(i, at);
        r.map(|()| i)
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

