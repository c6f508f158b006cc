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
    wrong_type_of(lx, g().rhash_p.v(), v)
}

/// `(wrong-type-argument PREDICATE V)`.
fn wrong_type_of(lx: Lx, predicate: emacs_value, v: emacs_value) -> Exit {
    signal(lx, g().wrong_type_argument.v(), &[predicate, v])
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

/// `(wrong-type-argument listp V)`: a sequence argument that is neither a
/// list nor a vector.
pub fn not_sequence(lx: Lx, v: emacs_value) -> Exit {
    wrong_type_of(lx, g().listp.v(), v)
}

/// `(error "Invalid hash table test" NAME)`.
pub fn invalid_test(lx: Lx, name: emacs_value) -> Exit {
    let gl = g();
    signal(lx, gl.error.v(), &[gl.invalid_test_msg.v(), name])
}

/// `(wrong-number-of-arguments NAME N)`: the function NAME called with N
/// arguments, as a built-in reports it.
#[cold]
pub fn arity(lx: Lx, name: &CStr, n: usize) -> Exit {
    let data = lx.intern(name).and_then(|name| Ok([name, lx.make_integer(n as i64)?]));
    match data {
        Ok(items) => signal(lx, g().wrong_number_of_arguments.v(), &items),
        Err(e) => e,
    }
}

/// `(args-out-of-range "KEYS and VALUES differ in length" NK NV)`.
pub fn lengths(lx: Lx, nk: usize, nv: usize) -> Exit {
    let gl = g();
    let data = lx.make_integer(nk as i64).and_then(|k| Ok([gl.length_msg.v(), k, lx.make_integer(nv as i64)?]));
    match data {
        Ok(items) => signal(lx, gl.args_out_of_range.v(), &items),
        Err(e) => e,
    }
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

/// `(wrong-type-argument stringp V)`.
pub fn not_string(lx: Lx, v: emacs_value) -> Exit {
    wrong_type_of(lx, g().stringp.v(), v)
}

/// `(wrong-type-argument symbolp V)`.
pub fn not_symbol(lx: Lx, v: emacs_value) -> Exit {
    wrong_type_of(lx, g().symbolp.v(), v)
}

/// `(wrong-type-argument rhash--loaded-p V)`: not a file `rhash--load-file`
/// read.
pub fn not_loaded(lx: Lx, v: emacs_value) -> Exit {
    wrong_type_of(lx, g().rhash_loaded_p.v(), v)
}

/// `(wrong-type-argument rhash-plain-data-p X)`.
pub fn not_plain(lx: Lx, x: emacs_value) -> Exit {
    wrong_type_of(lx, g().rhash_plain_data_p.v(), x)
}

/// `(circular-list X)`.
pub fn circular(lx: Lx, x: emacs_value) -> Exit {
    signal(lx, g().circular_list.v(), &[x])
}

/// `(rhash-unsupported WHAT KEY)`: a key a native table cannot keep.
pub fn unsupported_key(lx: Lx, what: &str, key: emacs_value) -> Exit {
    match lx.make_string(what.as_bytes()) {
        Ok(msg) => signal(lx, g().rhash_unsupported.v(), &[msg, key]),
        Err(e) => e,
    }
}

/// An encoding refusal as the contract reports it.
pub fn refused(lx: Lx, r: crate::convert::Refused) -> Exit {
    use crate::convert::Refused;
    match r {
        Refused::Exit => Exit,
        Refused::NotPlain(x) => not_plain(lx, x),
        Refused::Circular(x) => circular(lx, x),
        Refused::Memory => memory(lx),
    }
}

/// `(file-missing "Opening input file" "No such file or directory" FILE)`,
/// as `insert-file-contents` signals.
pub fn file_missing(lx: Lx, file: emacs_value) -> Exit {
    let gl = g();
    signal(lx, gl.file_missing.v(), &[gl.opening_msg.v(), gl.no_such_file_msg.v(), file])
}

/// `(rhash-file-error "Reading rhash table" REASON FILE)`.
pub fn file_format(lx: Lx, reason: &str, file: emacs_value) -> Exit {
    let gl = g();
    match lx.make_string(reason.as_bytes()) {
        Ok(r) => signal(lx, gl.rhash_file_error.v(), &[gl.reading_msg.v(), r, file]),
        Err(e) => e,
    }
}

/// `(file-error "Writing rhash table" "Not a regular file" FILE)`.
pub fn not_regular(lx: Lx, file: emacs_value) -> Exit {
    let gl = g();
    signal(lx, gl.file_error.v(), &[gl.writing_msg.v(), gl.not_regular_msg.v(), file])
}

/// An I/O error on FILE while reading (`writing` false) or writing it, as
/// Emacs reports one: `permission-denied`, `file-missing`,
/// `file-already-exists` or `file-error`, with data `(WHAT STRERROR FILE)`.
pub fn io(lx: Lx, writing: bool, e: &std::io::Error, file: emacs_value) -> Exit {
    use std::io::ErrorKind as K;
    let gl = g();
    let symbol = match e.kind() {
        K::PermissionDenied => &gl.permission_denied,
        K::NotFound => &gl.file_missing,
        K::AlreadyExists => &gl.file_already_exists,
        _ => &gl.file_error,
    };
    let what = if writing { &gl.writing_msg } else { &gl.reading_msg };
    // The OS's message without Rust's " (os error N)".
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    match lx.make_string(text.as_bytes()) {
        Ok(t) => signal(lx, symbol.v(), &[what.v(), t, file]),
        Err(e) => e,
    }
}
