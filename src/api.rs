//! The Lisp-visible functions of the module and their registration.
//!
//! Each function is a plain `fn(Lx, &[emacs_value]) -> LResult<emacs_value>`;
//! `run` is the single FFI entry: it frees deferred global references, catches
//! panics (none may unwind into Emacs) and lets pending Lisp exits propagate.

use crate::error;
use crate::ffi::{Exit, LResult, Lx, RawFn};
use crate::globals::g;
use crate::keys::Test;
use crate::release;
use crate::store::{self, int, Handle, KeyArg, Table};
use emacs::raw::{emacs_env, emacs_value};
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};

type Defun = fn(Lx, &[emacs_value]) -> LResult<emacs_value>;

/// Total global references freed from the release queue (for tests).
static RELEASED: AtomicUsize = AtomicUsize::new(0);

/// # Safety
/// `env`, `nargs` and `args` must be what Emacs passed to a module function.
pub(crate) unsafe fn run(env: *mut emacs_env, nargs: isize, args: *mut emacs_value, f: Defun) -> emacs_value {
    // SAFETY: `env` is the env of this call.
    let lx = unsafe { Lx::new(env) };
    let args: &[emacs_value] = if nargs <= 0 || args.is_null() {
        &[]
    } else {
        // SAFETY: Emacs passes `nargs` valid values that live for the call.
        unsafe { std::slice::from_raw_parts(args, nargs as usize) }
    };
    let result = catch_unwind(AssertUnwindSafe(|| {
        let (released, gc) = release::drain(lx);
        RELEASED.fetch_add(released, Ordering::Relaxed);
        if gc {
            crate::cache::gc_seen(lx);
        }
        f(lx, args)
    }));
    match result {
        Ok(Ok(v)) => v,
        Ok(Err(Exit)) => g().nil(),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            lx.clear_exit();
            error::internal(lx, &msg);
            g().nil()
        }
    }
}

macro_rules! defuns {
    ($( $lisp:literal ($min:literal, $max:literal) $f:ident $doc:literal; )*) => {
        mod tramp {
            use super::*;
            $(
                pub unsafe extern "C" fn $f(
                    env: *mut emacs_env, nargs: isize, args: *mut emacs_value, _: *mut c_void,
                ) -> emacs_value {
                    // SAFETY: called by Emacs with its own env and arguments.
                    unsafe { run(env, nargs, args, super::$f) }
                }
            )*
        }
        /// Define every function in Emacs.
        pub fn export(lx: Lx) -> LResult<()> {
            let defalias = lx.intern(c"defalias")?;
            $(
                // SAFETY: the trampoline has the signature Emacs expects.
                let func = unsafe { lx.make_function($min, $max, tramp::$f as RawFn, $doc)? };
                lx.funcall(defalias, &[lx.intern($lisp)?, func])?;
            )*
            Ok(())
        }
    };
}
/// (Also used by `bulk.rs`.)
pub(crate) use defuns;

defuns! {
    c"rhash--make" (4, 4) make
        c"Make an rhash table; the public entry is `rhash-make'.\n\nTEST is eq, eql, equal or a user test NAME with its\nCMP and HASH functions (nil for the built-in tests); SIZE is a hint.\n\n(fn TEST CMP HASH SIZE)";
    c"rhash-p" (1, 1) p
        c"Return t if OBJECT is an rhash table, nil otherwise.\nLike `hash-table-p'.\n\n(fn OBJECT)";
    c"rhash-get" (2, 3) get
        c"Look up KEY in TABLE and return its associated value.\nIf KEY is not found, return DEFAULT, which defaults to nil.\nA key stored with the value nil returns nil, not DEFAULT.\nLike `gethash'; usable with `setf'.\n\n(fn KEY TABLE &optional DEFAULT)";
    c"rhash-put" (3, 3) put
        c"Associate KEY with VALUE in TABLE and return VALUE.\nIf KEY is already present, replace its value, keeping the first key\nobject and the entry's position.  Like `puthash'.\n\n(fn KEY VALUE TABLE)";
    c"rhash-remove" (2, 2) remove
        c"Remove KEY from TABLE and return nil.\nThe freed place is reused by the next new key.  Like `remhash'.\n\n(fn KEY TABLE)";
    c"rhash-clear" (1, 1) clear
        c"Remove every entry from TABLE and return TABLE.\nKeys and values are released at once.  Like `clrhash'.\n\n(fn TABLE)";
    c"rhash-count" (1, 1) count
        c"Return the number of entries in TABLE.  Like `hash-table-count'.\n\n(fn TABLE)";
    c"rhash-copy" (1, 1) copy
        c"Return a copy of TABLE with the same test and iteration order.\nKeys and values are shared, not copied.  Like `copy-hash-table'.\n\n(fn TABLE)";
    c"rhash-test" (1, 1) test
        c"Return the test TABLE uses: eq, eql, equal or a user test name.\nLike `hash-table-test'.\n\n(fn TABLE)";
    c"rhash-size" (1, 1) size
        c"Return TABLE's current capacity, always at least its count.\nLike `hash-table-size'.\n\n(fn TABLE)";
    c"rhash-weakness" (1, 1) weakness
        c"Return TABLE's weakness: always nil, rhash tables are not weak.\nLike `hash-table-weakness'.\n\n(fn TABLE)";
    c"rhash-keys" (1, 1) keys
        c"Return a fresh list of TABLE's keys, in iteration order.\nUnlike `hash-table-keys' in Emacs 29+, the order is not reversed.\n\n(fn TABLE)";
    c"rhash-values" (1, 1) values
        c"Return a fresh list of TABLE's values, in iteration order.\n\n(fn TABLE)";
    c"rhash-contains-p" (2, 2) contains_p
        c"Return t if KEY is present in TABLE, even with a nil value.\nLike `hash-table-contains-p' (Emacs 31).\n\n(fn KEY TABLE)";
    c"rhash-empty-p" (1, 1) empty_p
        c"Return t if TABLE has no entries.  Like `hash-table-empty-p'.\n\n(fn TABLE)";
    c"rhash--adopt" (3, 3) adopt
        c"Internal bulk entry for the conversions: put KEYS[i] -> VALS[i]\ninto TABLE for each i in order, as repeated `rhash-put' would, and\nreturn TABLE.  KEYS and VALS are fresh vectors of one length that\nthe caller gives up: an empty new TABLE takes them as its storage.\n\n(fn TABLE KEYS VALS)";
    c"rhash--storage" (1, 1) storage
        c"Internal: TABLE's [KEYS VALS] vectors, nil before the first entry.\nSlot I holds entry I; free slots hold `rhash--hole' in both.  The\n2-slot vector is updated in place when the vectors are reallocated.\nRead only.\n\n(fn TABLE)";
    c"rhash--pairs" (1, 1) pairs
        c"Internal: (KEYS . VALUES) of TABLE, two fresh lists in iteration\norder read at one instant (a GC during the copy cannot pair a key\nwith another entry's value).\n\n(fn TABLE)";
    c"rhash--signals-visible" (1, 1) signals_visible
        c"Internal: tell the module whether signals it catches could be seen\n(FLAG non-nil while `debug-on-signal' or `signal-hook-function' is\nnon-nil): then it asks Emacs only questions that cannot signal.\nRun by variable watchers set up in rhash.el.\n\n(fn FLAG)";
    c"rhash--walk" (2, 2) walk
        c"Internal: `rhash-map' in one module call on the direct path.\nCall FUNCTION with each key and value of TABLE and return t; return\nnil at once, calling nothing, when the direct path is off (then\n`rhash-map' walks the storage from Lisp).\n\n(fn FUNCTION TABLE)";
    c"rhash--hole" (0, 0) hole
        c"Internal: the marker stored in free slots of `rhash--storage'.\nIt cannot be stored as a key or value (an error).\n\n(fn)";
    c"rhash--stats" (1, 1) stats
        c"Internal: (SLOTS COUNT TOMBSTONES INDEX-SIZE VECTOR-LENGTH) of TABLE.\n\n(fn TABLE)";
    c"rhash--flush-cache" (0, 0) flush_cache
        c"Internal: forget the table cached for fast type checks.\nRun from `post-gc-hook', so that the cache never keeps a dropped\ntable alive for more than one garbage collection.\n\n(fn)";
    c"rhash--release-stats" (0, 0) release_stats
        c"Internal: (PENDING . RELEASED), the global references waiting in\nthe release queue and the total released so far.\n\n(fn)";

}

fn make(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    let test = Test::new(lx, a[0], a[1], a[2])?;
    let hint = usize::try_from(lx.extract_integer(a[3])?).unwrap_or(0);
    store::make(lx, test, hint)
}

fn p(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    Ok(g().bool(Handle::is_rhash(lx, a[0])))
}

fn get(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    Handle::of(lx, a[1])?.get(lx, a[0], a.get(2).copied())
}

fn contains_p(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    Ok(g().bool(Handle::of(lx, a[1])?.contains(lx, KeyArg::Value(a[0]))?))
}

fn put(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    let h = Handle::of(lx, a[2])?;
    h.put(lx, a[2], a[0], a[1])?;
    Ok(a[1])
}

fn adopt(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    let h = Handle::of(lx, a[0])?;
    h.adopt(lx, a[0], a[1], a[2])?;
    Ok(a[0])
}

fn remove(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    Handle::of(lx, a[1])?.remove(lx, a[1], a[0])?;
    Ok(g().nil())
}

fn clear(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    Handle::of(lx, a[0])?.clear(lx, a[0])?;
    Ok(a[0])
}

fn count(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    let n = Handle::of(lx, a[0])?.read(lx, Table::len)?;
    int(lx, n)
}

fn empty_p(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    Ok(g().bool(Handle::of(lx, a[0])?.read(lx, Table::is_empty)?))
}

fn copy(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    Handle::of(lx, a[0])?.copy(lx)
}

fn test(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    Ok(Handle::of(lx, a[0])?.test().name())
}

fn size(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    let n = Handle::of(lx, a[0])?.read(lx, Table::size)?;
    int(lx, n)
}

fn weakness(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    Handle::of(lx, a[0])?;
    Ok(g().nil())
}

fn keys(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    Handle::of(lx, a[0])?.column(lx, 0)
}

fn values(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    Handle::of(lx, a[0])?.column(lx, 1)
}

fn storage(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    Ok(Handle::of(lx, a[0])?.read(lx, Table::cell)?.unwrap_or_else(|| g().nil()))
}

fn walk(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    let h = Handle::of(lx, a[1])?;
    let boxes = [lx.make_integer(0)?, lx.make_integer(0)?];
    match h.walk(lx, a[0], boxes) {
        Some(r) => r.map(|()| g().bool(true)),
        None => Ok(g().nil()),
    }
}

fn pairs(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    Handle::of(lx, a[0])?.pairs(lx)
}

fn signals_visible(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    crate::quiet::set_visible(lx.is_not_nil(a[0]));
    Ok(g().nil())
}

fn hole(_: Lx, _: &[emacs_value]) -> LResult<emacs_value> {
    Ok(g().hole.v())
}

fn stats(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    let s = Handle::of(lx, a[0])?.read(lx, Table::stats)?;
    let vals = [int(lx, s[0])?, int(lx, s[1])?, int(lx, s[2])?, int(lx, s[3])?, int(lx, s[4])?];
    lx.funcall(g().f_list.v(), &vals)
}

fn flush_cache(lx: Lx, _: &[emacs_value]) -> LResult<emacs_value> {
    crate::cache::flush(lx);
    Ok(g().nil())
}

fn release_stats(lx: Lx, _: &[emacs_value]) -> LResult<emacs_value> {
    let pending = int(lx, release::pending())?;
    let released = int(lx, RELEASED.load(Ordering::Relaxed))?;
    lx.funcall(g().f_cons.v(), &[pending, released])
}

/// Exported for `lib.rs`: define the functions.
pub fn init(lx: Lx) -> LResult<()> {
    export(lx)
}
