//! Every signal rhash raises, in one place (as emacs-module-rs's error.rs).

use crate::ffi::{Exit, Lx};
use crate::globals::g;
use emacs::raw::emacs_value;
use std::ffi::CStr;

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

/// `(wrong-type-argument PREDICATE V)`.
pub fn wrong_type_of(lx: Lx, predicate: &CStr, v: emacs_value) -> Exit {
    match lx.intern(predicate) {
        Ok(p) => signal(lx, g().wrong_type_argument.v(), &[p, v]),
        Err(e) => e,
    }
}

/// `(wrong-type-argument rhash-plain-data-p X)`.
pub fn not_plain(lx: Lx, x: emacs_value) -> Exit {
    wrong_type_of(lx, c"rhash-plain-data-p", x)
}

/// `(circular-list X)`.
pub fn circular(lx: Lx, x: emacs_value) -> Exit {
    match lx.intern(c"circular-list") {
        Ok(sym) => signal(lx, sym, &[x]),
        Err(e) => e,
    }
}

/// `(rhash-unsupported WHAT)`.
pub fn unsupported(lx: Lx, what: &str) -> Exit {
    match (lx.intern(c"rhash-unsupported"), lx.make_string(what.as_bytes())) {
        (Ok(sym), Ok(msg)) => signal(lx, sym, &[msg]),
        (Err(e), _) | (_, Err(e)) => e,
    }
}

/// `(file-missing "Opening input file" "No such file or directory" FILE)`,
/// as `insert-file-contents` signals.
pub fn file_missing(lx: Lx, file: emacs_value) -> Exit {
    let parts = (
        lx.intern(c"file-missing"),
        lx.make_string(b"Opening input file"),
        lx.make_string(b"No such file or directory"),
    );
    match parts {
        (Ok(sym), Ok(a), Ok(b)) => signal(lx, sym, &[a, b, file]),
        (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => e,
    }
}

/// `(rhash-file-error "Reading rhash table" REASON FILE)`.
pub fn file_format(lx: Lx, reason: &str, file: emacs_value) -> Exit {
    let parts = (
        lx.intern(c"rhash-file-error"),
        lx.make_string(b"Reading rhash table"),
        lx.make_string(reason.as_bytes()),
    );
    match parts {
        (Ok(sym), Ok(a), Ok(b)) => signal(lx, sym, &[a, b, file]),
        (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => e,
    }
}

/// An I/O error on FILE, as Emacs reports one: `permission-denied`,
/// `file-missing`, `file-already-exists` or `file-error`, with data
/// `(WHAT STRERROR FILE)`.
pub fn io(lx: Lx, what: &CStr, e: &std::io::Error, file: emacs_value) -> Exit {
    use std::io::ErrorKind as K;
    let symbol = match e.kind() {
        K::PermissionDenied => c"permission-denied",
        K::NotFound => c"file-missing",
        K::AlreadyExists => c"file-already-exists",
        _ => c"file-error",
    };
    // The OS's message without Rust's " (os error N)" suffix.
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text).to_string();
    let parts = (lx.intern(symbol), lx.make_string(what.to_bytes()), lx.make_string(text.as_bytes()));
    match parts {
        (Ok(sym), Ok(a), Ok(b)) => signal(lx, sym, &[a, b, file]),
        (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => e,
    }
}
