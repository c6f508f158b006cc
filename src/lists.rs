//! Lists read and made in place on the direct path (self-test check
//! `cons`), where the official way copies them through vectors:
//!
//! - `Seq`: the sequences the bulk loops walk, a vector (`Slots`) or a
//!   list (`ListSeq`, read cons by cons as `mapcar` reads it, or a
//!   `make-list` result filled in the same walk), so that
//!   `rhash-get-many` and `rhash-tally-into` neither `vconcat` a key list
//!   nor `append` a result vector;
//! - `FreshList`: a `make-list` list whose cars are stored after it is
//!   made (`rhash-uniq`, `rhash-keys`, `rhash-values`).  `(append VECTOR
//!   nil)` costs about 68 instructions an element on 28.2 and 46 on 30.1,
//!   `make-list` 41 and 33, a store 4 (BENCHMARKS.md).

use crate::direct::{self, Obj};
use crate::ffi::{LResult, Lx};
use crate::globals::g;
use crate::storage::{int, Slots};
use emacs::raw::emacs_value;
use std::cell::Cell;

/// A list this call made with `make-list`, that no Lisp has seen: its
/// conses may be written directly.
pub struct FreshList {
    list: emacs_value,
}

impl FreshList {
    /// A fresh list of N nils, or `None` when the direct path is off.
    /// (`make-list` may GC and run Lisp: callers read what they fill it
    /// with after this.)
    pub fn new(lx: Lx, n: usize) -> LResult<Option<FreshList>> {
        if direct::layout().is_none() {
            return Ok(None);
        }
        let gl = g();
        let list = lx.funcall(gl.f_make_list.v(), &[int(lx, n)?, gl.nil()])?;
        Ok(Some(FreshList { list }))
    }

    /// Store ITEMS as the list's cars, in order, with no env call; the
    /// list, ended after the last item stored (nil when there is none).
    /// Items beyond the list's length are not stored.
    ///
    /// # Safety
    /// Each item is a live object that stays reachable until the stores
    /// are done (the list keeps it from then on): no Lisp runs while
    /// ITEMS is drawn.
    pub unsafe fn fill(self, items: impl Iterator<Item = Obj>) -> emacs_value {
        // SAFETY: the direct path is on (`new`); `list` is a value of
        // this call.
        let mut cell = unsafe { direct::obj(self.list) };
        let mut last = None;
        for item in items {
            let Some((_, cdr)) = direct::cons(cell) else { break };
            // SAFETY: a cons of a list this call made with `make-list`
            // that no Lisp has seen (`FreshList`); ITEM is live (caller).
            unsafe { direct::set_car(cell, item) };
            (last, cell) = (Some(cell), cdr);
        }
        match last {
            None => g().nil(),
            Some(c) => {
                if cell != Obj::NIL {
                    // SAFETY: as above; the conses after it are dropped
                    // (garbage).
                    unsafe { direct::set_cdr(c, Obj::NIL) };
                }
                self.list
            }
        }
    }
}

/// A sequence a bulk loop reads (keys) or fills (results) in order:
/// vectors (`Slots`) and, on the direct path, lists read and made in
/// place (`ListSeq`), so that a key list is not copied into a vector
/// (`vconcat`) nor a result vector into a list (`append`).
///
/// A Lisp-free stretch walks it by places (`place`, `read`, `write`:
/// an index, or a cons), held in the loop's own variables, and `park`s
/// where it stopped; the general step between stretches, which may run
/// Lisp, goes by position (`get`, `set`).  Positions only go forward,
/// except that the parked one may be read again.
pub trait Seq {
    /// Where one element is: what a stretch holds in its variables.
    type At: Copy;
    /// The number of elements: fixed for a vector; for a list, as
    /// measured, until the list turns out to end sooner (`get`).
    fn len(&self) -> usize;
    /// The place of element `i`, without an env call (direct path; `i` at
    /// or after the parked position); `None` when not possible.
    fn place(&self, i: usize) -> Option<Self::At>;
    /// The element at `at` and the place after it; `None` past the end.
    fn read(&self, at: Self::At) -> Option<(Obj, Self::At)>;
    /// Store live object `o` at `at` (a sequence this call made); the
    /// place after it, or `None` when not possible.
    fn write(&self, at: Self::At, o: Obj) -> Option<Self::At>;
    /// A stretch stopped at element `i`, place `at`: the general step
    /// starts from there.
    fn park(&self, i: usize, at: Self::At);
    /// Element `i`, valid until the next read; `None` past the end (for a
    /// list that Lisp shortened meanwhile, `len` then becomes `i`).
    fn get(&self, lx: Lx, i: usize) -> LResult<Option<emacs_value>>;
    /// Store live value `v` at `i` (< `len`).
    fn set(&self, lx: Lx, i: usize, v: emacs_value) -> LResult<()>;
    /// A box of this call that a stretch may rewrite to hand an element
    /// to a classifier.
    fn scratch(&self) -> emacs_value;

    /// Store live object `o` at `i` without an env call; false when not
    /// possible.
    #[inline(always)]
    fn set_obj(&self, i: usize, o: Obj) -> bool {
        self.place(i).and_then(|at| self.write(at, o)).is_some()
    }
}

impl Seq for Slots {
    type At = usize;

    #[inline(always)]
    fn len(&self) -> usize {
        Slots::len(self)
    }

    #[inline(always)]
    fn place(&self, i: usize) -> Option<usize> {
        (self.quick().is_some() && i <= Slots::len(self)).then_some(i)
    }

    #[inline(always)]
    fn read(&self, at: usize) -> Option<(Obj, usize)> {
        Some((self.obj_at(at)?, at + 1))
    }

    #[inline(always)]
    fn write(&self, at: usize, o: Obj) -> Option<usize> {
        Slots::set_obj(self, at, o).then_some(at + 1)
    }

    #[inline(always)]
    fn park(&self, _: usize, _: usize) {}

    #[inline]
    fn get(&self, lx: Lx, i: usize) -> LResult<Option<emacs_value>> {
        if i < Slots::len(self) {
            self.at(lx, i).map(Some)
        } else {
            Ok(None)
        }
    }

    #[inline]
    fn set(&self, lx: Lx, i: usize, v: emacs_value) -> LResult<()> {
        Slots::set(self, lx, i, v)
    }

    #[inline(always)]
    fn scratch(&self) -> emacs_value {
        Slots::scratch(self)
    }
}

/// A proper list read or filled in place on the direct path.
///
/// Lisp may run between stretches (a GC hook, a finalizer) and change a
/// list this call reads: the parked cons is kept in a value box of the
/// call (`cell`), so the GC keeps it and what follows it; within a
/// stretch no Lisp runs.  A list found shorter than measured ends there,
/// as `mapcar` and `mapc` stop.
pub struct ListSeq {
    list: emacs_value,
    /// A local value box holding the cons at position `pos` (or what the
    /// list ended with).
    cell: emacs_value,
    pos: Cell<usize>,
    len: Cell<usize>,
    scratch: emacs_value,
    /// Whether this call made the list (`make`): only then is it written.
    made: bool,
}

impl ListSeq {
    /// LIST read in place when the direct path is on and LIST is a proper
    /// list; `None` otherwise (the caller takes the vector path).
    pub fn read_list(lx: Lx, list: emacs_value) -> LResult<Option<ListSeq>> {
        if direct::layout().is_none() {
            return Ok(None);
        }
        // SAFETY: the direct path is on; `list` is a live value of this call.
        let Some(n) = direct::list_len(unsafe { direct::obj(list) }) else { return Ok(None) };
        ListSeq::on(lx, list, n, false).map(Some)
    }

    /// A fresh list of N elements INIT (`make-list`) to fill; `None` when
    /// the direct path is off.
    pub fn make(lx: Lx, n: usize, init: emacs_value) -> LResult<Option<ListSeq>> {
        if direct::layout().is_none() {
            return Ok(None);
        }
        let list = lx.funcall(g().f_make_list.v(), &[int(lx, n)?, init])?;
        ListSeq::on(lx, list, n, true).map(Some)
    }

    fn on(lx: Lx, list: emacs_value, n: usize, made: bool) -> LResult<ListSeq> {
        // (The boxes allocate no Lisp object: no GC, no Lisp.)
        let (cell, scratch) = (lx.make_integer(0)?, lx.make_integer(0)?);
        // SAFETY: the direct path is on (callers); `list` is live; `cell`
        // is a local value box of this call (check `return`).
        unsafe { direct::set_box(cell, direct::obj(list)) };
        Ok(ListSeq { list, cell, pos: Cell::new(0), len: Cell::new(n), scratch, made })
    }

    /// The list this call made, ended after its first `n` elements (`n`
    /// at most its length): nil for 0.
    pub fn truncated(&self, n: usize) -> emacs_value {
        if n == 0 {
            return g().nil();
        }
        if !self.made || n >= self.len.get() {
            // (A made list is `len` long: nothing to cut.)
            return self.list;
        }
        // From the head (the cursor may be past element n - 1).
        // SAFETY: the direct path is on (a `ListSeq` exists); `list` is a
        // value of this call.
        let mut c = unsafe { direct::obj(self.list) };
        for _ in 1..n {
            match direct::cons(c) {
                Some((_, cdr)) => c = cdr,
                None => return self.list,
            }
        }
        if direct::cons(c).is_some_and(|(_, cdr)| cdr != Obj::NIL) {
            // SAFETY: a cons of a list this call made; the conses after it
            // become garbage.
            unsafe { direct::set_cdr(c, Obj::NIL) };
        }
        self.list
    }
}

impl Seq for ListSeq {
    type At = Obj;

    #[inline(always)]
    fn len(&self) -> usize {
        self.len.get()
    }

    #[inline]
    fn place(&self, i: usize) -> Option<Obj> {
        let pos = self.pos.get();
        if i < pos || i > self.len.get() {
            return None;
        }
        // SAFETY: `cell` holds a live object (the parked cons, kept by
        // the box, or what the list ended with).
        let mut c = unsafe { direct::obj(self.cell) };
        for _ in pos..i {
            c = direct::cons(c)?.1;
        }
        Some(c)
    }

    #[inline(always)]
    fn read(&self, at: Obj) -> Option<(Obj, Obj)> {
        direct::cons(at)
    }

    #[inline(always)]
    fn write(&self, at: Obj, o: Obj) -> Option<Obj> {
        if !self.made {
            return None;
        }
        let (_, cdr) = direct::cons(at)?;
        // SAFETY: a cons of a list this call made with `make-list`, which
        // keeps `o` (live) from now on.
        unsafe { direct::set_car(at, o) };
        Some(cdr)
    }

    #[inline(always)]
    fn park(&self, i: usize, at: Obj) {
        if i >= self.pos.get() {
            self.pos.set(i);
            // SAFETY: `cell` is a local value box of this call; `at` is
            // a cons of the list (or its end), reachable from the box from
            // now on.
            unsafe { direct::set_box(self.cell, at) };
        }
    }

    fn get(&self, _lx: Lx, i: usize) -> LResult<Option<emacs_value>> {
        let found = self.place(i).and_then(|at| Some((at, direct::cons(at)?.0)));
        let Some((at, car)) = found else {
            if (self.pos.get()..self.len.get()).contains(&i) {
                // The list ends at or before `i`: Lisp shortened it.
                self.len.set(i);
            }
            return Ok(None);
        };
        // The general step may run Lisp: the box keeps the rest of the
        // list, the scratch box the element.
        self.park(i, at);
        // SAFETY: `scratch` is a local value box of this call.
        unsafe { direct::set_box(self.scratch, car) };
        Ok(Some(self.scratch))
    }

    /// (Parks at `i`: the general step's next store walks one cons.)
    fn set_obj(&self, i: usize, o: Obj) -> bool {
        let Some(at) = self.place(i) else { return false };
        if self.write(at, o).is_none() {
            return false;
        }
        self.park(i, at);
        true
    }

    fn set(&self, lx: Lx, i: usize, v: emacs_value) -> LResult<()> {
        // SAFETY: a live value of this call (a `ListSeq` exists only on
        // the direct path).
        if self.set_obj(i, unsafe { direct::obj(v) }) {
            Ok(())
        } else {
            Err(crate::error::internal(lx, "a list element past the end"))
        }
    }

    #[inline(always)]
    fn scratch(&self) -> emacs_value {
        self.scratch
    }
}
