//! Result lists made in place on the direct path: `make-list`, then the
//! cars stored with no env call (`FreshList`), where `(append VECTOR nil)`
//! conses a copy of a result vector one element at a time (about 68
//! instructions an element on 28.2 and 46 on 30.1, against `make-list`'s
//! 41 and 33 and a store's 4; BENCHMARKS.md).

use crate::direct::{self, Obj};
use crate::ffi::{LResult, Lx};
use crate::globals::g;
use crate::storage::int;
use emacs::raw::emacs_value;

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
                    unsafe { direct::set_cons(c, direct::cons(c).map_or(Obj::NIL, |(car, _)| car), Obj::NIL) };
                }
                self.list
            }
        }
    }
}
