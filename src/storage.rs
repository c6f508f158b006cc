//! Where a table keeps its keys and values: the storage layer between the
//! pure `RawTable` (entries, index, cached hashes) and `store.rs` (a table's
//! operations).  `RawTable` entry i describes the key stored at place i;
//! the storage owns reading and writing keys and values, and picks the
//! access path once per call: `quick()` is the direct path's Lisp-free
//! view (or `None`, and the caller takes the general methods, which work
//! on either path).
//!
//! Lisp storage: two Lisp vectors, `keys[i]`/`vals[i]` for entry i, free
//! places holding a private marker (`hole`).  The table holds one global
//! reference per vector, so storing an entry costs two slot stores instead
//! of two global references (measured in docs/design.md).  The vectors are
//! also shared with Lisp as a 2-slot vector `[KEYS VALS]`, updated in place
//! when they are reallocated, so `rhash-map` walks them from byte-code on
//! the official path.
//!
//! Invariants (kept by the methods of this module alone):
//! - no vectors until the first insertion; then both are `len()` long,
//!   `len() >= raw.slots()`, and place i holds entry i's key and value, or
//!   `hole` in both for a free entry;
//! - the cell `[KEYS VALS]` holds the vectors referenced here; `install`
//!   switches both in one Lisp-free step (global references and slot
//!   stores run no Lisp);
//! - the hole marker is never a key or value of an entry (`storable`).
//!
//! What another kind of storage provides (decision 6): the same
//! methods over its own representation.  `Storage` lists them.

use crate::direct::{self, Obj};
use crate::error;
use crate::ffi::{LResult, Lx};
use crate::globals::g;
use crate::keys::{self, Key, Lookup, Plan, Spec, Stored};
use crate::table::RawTable;
use crate::release;
use emacs::raw::emacs_value;

/// The operations `store.rs` asks of a table's storage, whatever it is made
/// of.  Entry numbers are `RawTable`'s; the storage never decides which
/// entries exist, only what they hold.  Methods that may decline say so
/// (`Option`); none calls Lisp code except where a `Lx` is given and the
/// note says so.
pub trait Storage {
    // ---- Keys: classification and comparison ----

    /// KEY (a live value of this call) classified for a table with test
    /// `plan`, without Lisp; `None` (declined) when that needs Lisp: then
    /// `classify`.
    fn classify_quick(plan: Plan, key: emacs_value) -> Option<Key>
    where
        Self: Sized;
    /// Whether a key classified for this kind of storage (by a table with
    /// the same test) can be looked up by `find_quick`.
    fn is_quick(key: &Key) -> bool
    where
        Self: Sized;
    /// KEY classified for a table with test `plan`.  May run Lisp (hash
    /// functions), so it gets no storage: no borrow is held meanwhile.
    fn classify(lx: Lx, plan: Plan, key: emacs_value, spec: &Spec) -> LResult<Lookup>
    where
        Self: Sized;
    /// The entry of `raw` holding `key` (entry number and index slot),
    /// compared without Lisp: `Some(found or not)`, or `None` (declined)
    /// when a comparison needs Lisp: then the caller compares candidates
    /// with `keys::same` on `stored`.
    fn find_quick(&self, raw: &RawTable, key: &Key) -> Option<Option<(usize, usize)>>;
    /// Entry `i`'s key as `keys::same` compares it through Lisp.
    fn stored(&self, i: usize) -> Option<Stored>;
    /// The entry of `raw` holding a key `classify` classified, when the
    /// storage compares keys itself (native: always); `None` otherwise.
    fn find_classified(&self, _raw: &RawTable, _key: &Key) -> Option<Option<(usize, usize)>> {
        None
    }

    // ---- Entries ----

    /// Places with room for an entry, without growing.
    fn room(&self) -> usize;
    /// The capacity `hash-table-size` reports, given the table's index.
    fn capacity(&self, raw: &RawTable) -> usize {
        self.room().max(raw.len())
    }
    /// Memory the storage holds outside the Lisp heap.
    fn heap_bytes(&self) -> usize {
        0
    }
    /// Entry `i`'s key, as a value valid for the whole call.
    fn key(&self, lx: Lx, i: usize) -> LResult<emacs_value>;
    /// Entry `i`'s value, as a value valid for the whole call.
    fn value(&self, lx: Lx, i: usize) -> LResult<emacs_value>;
    /// Entry `i`'s value, written into `out` (a local value box of this
    /// call) when the storage can, else a fresh value.
    fn value_to(&self, lx: Lx, i: usize, out: emacs_value) -> LResult<emacs_value>;
    /// Entry `i`'s value as an object, without Lisp or an env call, on the
    /// direct path when the storage can (Lisp storage: always; native: a
    /// fixnum); `None` (declined) otherwise.  The object is live while the
    /// entry keeps its value or is a fixnum.
    fn value_obj(&self, i: usize) -> Option<Obj>;
    /// Entry `i`'s key and value in `boxes` (rewritten when possible),
    /// valid until the next call with the same boxes.
    fn entry_to(&self, lx: Lx, i: usize, boxes: [emacs_value; 2]) -> LResult<[emacs_value; 2]>;
    /// Check KEY and VALUE before an insertion changes anything (native:
    /// they must be plain data); an error leaves the table as it was.
    fn admit(&self, _lx: Lx, _key: &Key, _value: emacs_value) -> LResult<()> {
        Ok(())
    }
    /// Store KEY and VALUE at place `i` (< `room()`), right after `admit`.
    fn set(&self, lx: Lx, i: usize, key: emacs_value, value: emacs_value) -> LResult<()>;
    /// Replace entry `i`'s value.
    fn set_value(&self, lx: Lx, i: usize, value: emacs_value) -> LResult<()>;
    /// Forget entry `i`'s key and value (the entry was removed).
    fn free(&self, lx: Lx, i: usize) -> LResult<()>;
    /// Forget the first `n` places' keys and values (the table was cleared).
    fn clear(&self, lx: Lx, n: usize) -> LResult<()>;
    /// Whether `rhash-map` walks this storage from Lisp (`rhash--storage`)
    /// rather than through the module (`Handle::walk`).
    fn lisp_walk(&self) -> bool;
}

/// The two vectors and the cell that shares them, with their objects on the
/// direct path.
struct Vectors {
    /// `[KEYS, VALS, CELL]`.
    refs: release::Held<3>,
    /// The direct path's view, made when the vectors were installed.
    quick: Option<Quick>,
    len: usize,
}

impl Vectors {
    #[inline]
    fn get(&self, k: usize) -> emacs_value {
        self.refs.get(k)
    }
}

/// A table's Lisp storage: its vectors, once it has held an entry.
#[derive(Default)]
pub struct LispStorage {
    vecs: Option<Vectors>,
}

/// The direct path's view of the storage: both vectors' objects, read and
/// written with no env call and no Lisp.  Valid while the storage it came
/// from is installed (the table's borrow bounds it).
#[derive(Clone, Copy)]
pub struct Quick {
    ko: Obj,
    vo: Obj,
    len: usize,
}

impl Quick {
    /// Entry `i`'s key object (`i` < `len`).
    #[inline(always)]
    pub fn key(&self, i: usize) -> Obj {
        debug_assert!(i < self.len);
        // SAFETY: the live keys vector is `len` long (its installation
        // checked it is a plain vector, check `vector`).
        unsafe { direct::vref(self.ko, i) }
    }

    /// Entry `i`'s value object.
    #[inline(always)]
    pub fn value(&self, i: usize) -> Obj {
        debug_assert!(i < self.len);
        // SAFETY: as `key`.
        unsafe { direct::vref(self.vo, i) }
    }

    /// Store at place `i`; `key` and `value` are live objects that the
    /// vectors then keep (check `vector`: no write barrier).
    #[inline(always)]
    pub fn set(&self, i: usize, key: Obj, value: Obj) {
        debug_assert!(i < self.len);
        // SAFETY: as `key`.
        unsafe {
            direct::vset(self.ko, i, key);
            direct::vset(self.vo, i, value);
        }
    }

    #[inline(always)]
    pub fn set_value(&self, i: usize, value: Obj) {
        debug_assert!(i < self.len);
        // SAFETY: as `set`.
        unsafe { direct::vset(self.vo, i, value) }
    }

    /// The free-place marker in both columns at `i`.
    #[inline(always)]
    pub fn free(&self, i: usize) {
        let h = hole_obj();
        self.set(i, h, h);
    }

    /// Entry `i`'s key and value into two local value boxes of this call
    /// (check `return`: a local value box may be rewritten).
    #[inline(always)]
    pub fn entry_to(&self, i: usize, boxes: [emacs_value; 2]) -> [emacs_value; 2] {
        // SAFETY: the boxes are local values of this call (caller); the
        // objects are live (in the vectors).
        unsafe {
            direct::set_box(boxes[0], self.key(i));
            direct::set_box(boxes[1], self.value(i));
        }
        boxes
    }
}

impl Quick {
    /// Add one to entry `i`'s value if it is a fixnum below the fixnum
    /// maximum (`rhash-tally-into`'s step); false, changing nothing,
    /// otherwise.
    #[inline(always)]
    pub fn count_up(&self, i: usize) -> bool {
        match direct::fixnum(self.value(i)) {
            Some(n) if n < (1 << 61) - 1 => {
                self.set_value(i, direct::make_fixnum(n + 1));
                true
            }
            _ => false,
        }
    }

    /// Whether key `k` is the hole marker (which only an identity key can be).
    #[inline(always)]
    pub fn is_hole_key(&self, k: &Key) -> bool {
        // SAFETY: the direct path is on (a `Quick` exists); `k.v` is live.
        k.kind() == keys::IDENT && unsafe { direct::obj(k.v) } == hole_obj()
    }
}

/// `find_quick`'s probe of Lisp storage with its direct view `q` (for
/// loops, which check the path and the storage once): `Some(found or
/// not)`, `None` when a comparison needs Lisp.
#[inline(always)]
pub fn probe_quick(l: &direct::Layout, q: Quick, raw: &RawTable, key: &Key) -> Option<Option<(usize, usize)>> {
    let mut probe = raw.probe(key.meta);
    while let Some(i) = raw.next_candidate(&mut probe) {
        if keys::same_quick(l, key, raw.payload(i), q.key(i))? {
            return Some(Some((i, raw.last_slot(&probe))));
        }
    }
    Some(None)
}

/// `storable` for a classified key: only identity and predicate keys can be
/// the marker (a symbol), so numbers and strings need no check.
#[inline]
pub fn storable_key(lx: Lx, key: &Key) -> LResult<()> {
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
    let hole = g().hole.v();
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

/// The hole marker's object (direct path only).
#[inline(always)]
pub fn hole_obj() -> Obj {
    // SAFETY: only reached on the direct path (a `Quick` or `Slots` object
    // exists); a global reference's box.
    unsafe { direct::obj(g().hole.v()) }
}

/// A fresh vector of `len` hole markers (`make-vector`: calls Lisp).
pub fn holes(lx: Lx, len: usize) -> LResult<emacs_value> {
    let gl = g();
    lx.funcall(gl.f_make_vector.v(), &[int(lx, len)?, gl.hole.v()])
}

/// `n` as a Lisp integer.
#[inline]
pub fn int(lx: Lx, n: usize) -> LResult<emacs_value> {
    lx.make_integer(i64::try_from(n).unwrap_or(i64::MAX))
}

impl LispStorage {
    /// The direct path's view, when it is on and the table has vectors.
    #[inline(always)]
    pub fn quick(&self) -> Option<Quick> {
        self.vecs.as_ref()?.quick
    }

    /// Whether the table has vectors yet.
    #[inline]
    pub fn exists(&self) -> bool {
        self.vecs.is_some()
    }

    /// `[KEYS, VALS]`, once the table has vectors.
    #[inline]
    pub fn columns(&self) -> Option<[emacs_value; 2]> {
        self.vecs.as_ref().map(|v| [v.get(0), v.get(1)])
    }

    /// The `[KEYS VALS]` cell, once the table has vectors.
    #[inline]
    pub fn cell(&self) -> Option<emacs_value> {
        self.vecs.as_ref().map(|v| v.get(2))
    }

    /// Make KEYS and VALS (`len` long, complete) the storage, and `cell`
    /// (a fresh `[_ _]` vector, used when the table has none) their cell,
    /// in one step that runs no Lisp.  Returns the storage replaced, whose
    /// references go through the release queue when dropped.
    pub fn install(&mut self, lx: Lx, keys: emacs_value, vals: emacs_value, len: usize, cell: Option<emacs_value>) -> LResult<LispStorage> {
        let cell = match (self.cell(), cell) {
            (Some(c), _) | (None, Some(c)) => c,
            // (Callers make a cell whenever the table has none.)
            (None, None) => return Err(error::internal(lx, "storage without a cell")),
        };
        let refs = release::Held::new(lx, [keys, vals, cell])?;
        let quick = direct::layout().and_then(|_| {
            // SAFETY: direct path on; live values of this call.
            let (ko, vo) = unsafe { (direct::obj(keys), direct::obj(vals)) };
            let plain = |o| direct::plain_vector_len(o).is_some_and(|n| n >= len);
            (plain(ko) && plain(vo)).then_some(Quick { ko, vo, len })
        });
        let old = self.vecs.replace(Vectors { refs, quick, len });
        // `vec_set` cannot run Lisp (no allocation, no quit).
        lx.vec_set(cell, 0, keys)?;
        lx.vec_set(cell, 1, vals)?;
        Ok(LispStorage { vecs: old })
    }

    /// Copy the first `n` places of both columns into `dst` (two fresh
    /// vectors at least `n` long), with no Lisp call.
    pub fn copy_prefix(&self, lx: Lx, cols: [bool; 2], dst: [emacs_value; 2], n: usize) -> LResult<()> {
        let Some(src) = self.columns() else { return Ok(()) };
        for k in (0..2).filter(|&k| cols[k]) {
            let (from, to) = (Slots::new(lx, src[k])?, Slots::new(lx, dst[k])?);
            for i in 0..n.min(from.len()).min(to.len()) {
                to.copy_from(lx, i, &from, i)?;
            }
        }
        Ok(())
    }

    /// Copy entry `i` to place `j` of `dst` for each `(i, j)` of `pairs`,
    /// with no Lisp call.
    pub fn copy_entries(&self, lx: Lx, pairs: impl Iterator<Item = (usize, usize)>, dst: &[Slots; 2]) -> LResult<()> {
        let mut pairs = pairs.peekable();
        let Some(src) = self.columns() else {
            return match pairs.peek() {
                None => Ok(()),
                Some(_) => Err(error::internal(lx, "entries without storage")),
            };
        };
        let src = [Slots::new(lx, src[0])?, Slots::new(lx, src[1])?];
        for (i, j) in pairs {
            dst[0].copy_from(lx, j, &src[0], i)?;
            dst[1].copy_from(lx, j, &src[1], i)?;
        }
        Ok(())
    }
}

impl Storage for LispStorage {
    #[inline(always)]
    fn classify_quick(plan: Plan, key: emacs_value) -> Option<Key> {
        keys::classify_quick(direct::layout()?, plan, key)
    }

    #[inline(always)]
    fn is_quick(key: &Key) -> bool {
        direct::layout().is_some_and(|l| keys::is_quick(l, key))
    }

    #[inline]
    fn classify(lx: Lx, plan: Plan, key: emacs_value, spec: &Spec) -> LResult<Lookup> {
        keys::classify(lx, plan, key, spec)
    }

    /// (Direct path only: a table without vectors yet answers "absent".)
    #[inline(always)]
    fn find_quick(&self, raw: &RawTable, key: &Key) -> Option<Option<(usize, usize)>> {
        let l = direct::layout()?;
        let Some(v) = self.vecs.as_ref() else { return Some(None) };
        probe_quick(l, v.quick?, raw, key)
    }

    #[inline]
    fn stored(&self, i: usize) -> Option<Stored> {
        self.vecs.as_ref().map(|v| Stored { vec: v.get(0), obj: v.quick.map(|q| q.ko), i })
    }

    #[inline]
    fn room(&self) -> usize {
        self.vecs.as_ref().map_or(0, |v| v.len)
    }

    fn key(&self, lx: Lx, i: usize) -> LResult<emacs_value> {
        match self.vecs.as_ref() {
            Some(v) => lx.vec_get(v.get(0), i),
            None => Ok(g().nil()),
        }
    }

    fn value(&self, lx: Lx, i: usize) -> LResult<emacs_value> {
        match self.vecs.as_ref() {
            Some(v) => lx.vec_get(v.get(1), i),
            None => Ok(g().nil()),
        }
    }

    #[inline(always)]
    fn value_obj(&self, i: usize) -> Option<Obj> {
        Some(self.quick()?.value(i))
    }

    #[inline]
    fn value_to(&self, lx: Lx, i: usize, out: emacs_value) -> LResult<emacs_value> {
        match self.quick() {
            Some(q) => {
                // SAFETY: `out` is a value box of this call (caller; check
                // `return`); the value is live (in the vector).
                unsafe { direct::set_box(out, q.value(i)) };
                Ok(out)
            }
            None => self.value(lx, i),
        }
    }

    #[inline]
    fn entry_to(&self, lx: Lx, i: usize, boxes: [emacs_value; 2]) -> LResult<[emacs_value; 2]> {
        match self.quick() {
            Some(q) => Ok(q.entry_to(i, boxes)),
            None => Ok([self.key(lx, i)?, self.value(lx, i)?]),
        }
    }

    fn set(&self, lx: Lx, i: usize, key: emacs_value, value: emacs_value) -> LResult<()> {
        match (self.quick(), self.vecs.as_ref()) {
            // SAFETY: live values of this call.
            (Some(q), _) => q.set(i, unsafe { direct::obj(key) }, unsafe { direct::obj(value) }),
            (None, Some(v)) => {
                lx.vec_set(v.get(0), i, key)?;
                lx.vec_set(v.get(1), i, value)?;
            }
            (None, None) => {}
        }
        Ok(())
    }

    fn set_value(&self, lx: Lx, i: usize, value: emacs_value) -> LResult<()> {
        match (self.quick(), self.vecs.as_ref()) {
            // SAFETY: a live value of this call.
            (Some(q), _) => q.set_value(i, unsafe { direct::obj(value) }),
            (None, Some(v)) => lx.vec_set(v.get(1), i, value)?,
            (None, None) => {}
        }
        Ok(())
    }

    fn free(&self, lx: Lx, i: usize) -> LResult<()> {
        let hole = g().hole.v();
        self.set(lx, i, hole, hole)
    }

    /// On the official path byte-code walks the vectors, without a module
    /// call per entry.
    #[inline]
    fn lisp_walk(&self) -> bool {
        direct::layout().is_none()
    }

    /// (No Lisp: a `fillarray` could quit, or fail near
    /// `max-lisp-eval-depth`, half-way; `clrhash` cannot.)
    fn clear(&self, lx: Lx, n: usize) -> LResult<()> {
        match (self.quick(), self.vecs.as_ref()) {
            (Some(q), _) => (0..n.min(q.len)).for_each(|i| q.free(i)),
            (None, Some(_)) => {
                for i in 0..n {
                    self.free(lx, i)?;
                }
            }
            (None, None) => {}
        }
        Ok(())
    }
}

/// A vector read or filled element by element: directly on the direct
/// path, through `vec_get`/`vec_set` otherwise.  `at` returns a value of
/// the current call that is valid only until the next `at` (on the direct
/// path it is one box, rewritten: check `return` covers local value boxes
/// of the call as it does argument boxes, both being frame slots).
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

    /// The local value box `at` rewrites (direct path).
    #[inline(always)]
    pub fn scratch(&self) -> emacs_value {
        self.scratch
    }

    /// The vector's object when it is read directly.
    #[inline(always)]
    pub fn quick(&self) -> Option<Obj> {
        self.obj
    }

    /// The elements as objects, directly (`None` on the official path).
    ///
    /// # Safety
    /// No Lisp runs while the slice lives.
    #[inline(always)]
    pub unsafe fn objs(&self) -> Option<&[Obj]> {
        // SAFETY: a live plain vector of `len` slots (`new`); no Lisp runs
        // meanwhile (caller).
        self.obj.map(|o| unsafe { direct::vslots(o, self.len) })
    }

    /// Element `i` (< `len`) as an object, directly (`None` on the
    /// official path).
    #[inline(always)]
    pub fn obj_at(&self, i: usize) -> Option<Obj> {
        // SAFETY: a live plain vector of `len` slots.
        self.obj.filter(|_| i < self.len).map(|o| unsafe { direct::vref(o, i) })
    }

    /// Store object `o` (live, kept by the vector) at `i`, directly;
    /// false on the official path.
    #[inline(always)]
    pub fn set_obj(&self, i: usize, o: Obj) -> bool {
        match self.obj {
            // SAFETY: as `obj_at`; the vector keeps `o` (check `vector`).
            Some(v) if i < self.len => unsafe {
                direct::vset(v, i, o);
                true
            },
            _ => false,
        }
    }

    /// Element `i` (< `len`), valid until the next `at`.
    #[inline]
    pub fn at(&self, lx: Lx, i: usize) -> LResult<emacs_value> {
        match self.obj_at(i) {
            Some(o) => {
                // SAFETY: `scratch` is a local value box of this call.
                unsafe { direct::set_box(self.scratch, o) };
                Ok(self.scratch)
            }
            None => lx.vec_get(self.vec, i),
        }
    }

    /// Store `v` (a live value) at `i` (< `len`).
    #[inline]
    pub fn set(&self, lx: Lx, i: usize, v: emacs_value) -> LResult<()> {
        // SAFETY: a live value of this call.
        if self.obj.is_some() && self.set_obj(i, unsafe { direct::obj(v) }) {
            return Ok(());
        }
        lx.vec_set(self.vec, i, v)
    }

    /// Element `j` of `src` into place `i`, with no Lisp call.
    #[inline]
    pub fn copy_from(&self, lx: Lx, i: usize, src: &Slots, j: usize) -> LResult<()> {
        if let Some(o) = src.obj_at(j) {
            if self.set_obj(i, o) {
                return Ok(());
            }
        }
        self.set(lx, i, lx.vec_get(src.vec, j)?)
    }
}

