//! Every signal rhash raises, in one place (as emacs-module-rs's error.rs).

use crate::ffi::{Exit, Lx};
use crate::globals::g;
use emacs::raw::emacs_value;

/// Signal `(SYMBOL . DATA)`, DATA made from `items`.
fn signal(lx: Lx, symbol: emacs_value, items: &[emacs_value]) -> Exit {
    match lx.funcall(g().f_list.v(), items) {
        Ok(data) => lx.signal(symbol, data),
        Err(e) => e,
    }
}

/// `(wrong-type-argument rhash-p V)`.
pub fn wrong_type(lx: Lx, v: emacs_value) -> Exit {
    let gl = g();
    signal(lx, gl.wrong_type_argument.v(), &[gl.rhash_p.v(), v])
}

/// `(error "hash table test modifies table" TABLE)`.
pub fn modifies(lx: Lx, table: emacs_value) -> Exit {
    let gl = g();
    signal(lx, gl.error.v(), &[gl.modifies_msg.v(), table])
}

/// A `RefCell` borrow failed: Lisp reached a table inside one of rhash's own
/// Lisp-free sections, which cannot happen; an error all the same, not a panic.
pub fn busy(lx: Lx) -> Exit {
    let gl = g();
    signal(lx, gl.error.v(), &[gl.busy_msg.v()])
}

/// `(args-out-of-range A B)`: vectors that should have one length.
pub fn length_mismatch(lx: Lx, a: emacs_value, b: emacs_value) -> Exit {
    signal(lx, g().args_out_of_range.v(), &[a, b])
}

/// The hole marker offered as a key or value.
pub fn hole(lx: Lx) -> Exit {
    let gl = g();
    signal(lx, gl.error.v(), &[gl.hole_msg.v()])
}

/// A failed Rust allocation, reported as Emacs reports memory exhaustion.
pub fn memory(lx: Lx) -> Exit {
    let gl = g();
    signal(lx, gl.error.v(), &[gl.memory_msg.v()])
}

/// `(error "rhash internal error: MSG")`, for a caught panic.
pub fn internal(lx: Lx, msg: &str) -> Exit {
    let text = format!("rhash internal error: {msg}");
    match lx.make_string(text.as_bytes()) {
        Ok(s) => signal(lx, g().error.v(), &[s]),
        Err(e) => e,
    }
}
