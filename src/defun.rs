//! The module's functions: each declared once, in the list below (Lisp
//! name, arity, implementation, docstring), and `run`, the single FFI entry
//! they all go through.  It checks the number of arguments, frees deferred
//! global references, catches panics (none may unwind into Emacs) and lets
//! pending Lisp exits propagate.
//!
//! The export files (`api.rs`, `bulk.rs`, `info.rs`) hold the
//! implementations, plain `fn(Lx, &[emacs_value]) -> LResult<emacs_value>`;
//! none imports another.
//!
//! Arity: every function is registered with Emacs as taking any number of
//! arguments, and `run` checks the declared arity before anything else,
//! signalling `(wrong-number-of-arguments NAME N)` with the function's
//! name, as a built-in does (Emacs's own check would name
//! `#<module function at 0x...>`).  So `func-arity` says `(0 . many)`; the
//! declared arguments are in each docstring's `(fn ...)` line, which
//! `describe-function` and `help-function-arglist` show.

use crate::ffi::{Exit, LResult, Lx, RawFn};
use crate::globals::g;
use crate::{error, release};
use emacs::raw::{emacs_env, emacs_value};
use std::ffi::{c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The declared arity: at least `min` arguments, at most `max` (-2: any).
#[inline(always)]
fn arity_ok(nargs: isize, min: isize, max: isize) -> bool {
    nargs >= min && (max < 0 || nargs <= max)
}

/// Call the implementation `f` of the function NAME for Emacs.
///
/// # Safety
/// `env`, `nargs` and `args` must be what Emacs passed to a module function.
#[inline(always)]
unsafe fn run<F>(env: *mut emacs_env, nargs: isize, args: *mut emacs_value, name: &CStr, min: isize, max: isize, f: F) -> emacs_value
where
    F: FnOnce(Lx, &[emacs_value]) -> LResult<emacs_value>,
{
    // SAFETY: `env` is the env of this call.
    let lx = unsafe { Lx::new(env) };
    let args: &[emacs_value] = if nargs <= 0 {
        &[]
    } else {
        // SAFETY: Emacs passes `nargs` valid values that live for the call
        // (a non-null array whenever `nargs` > 0: `funcall_module`).
        unsafe { std::slice::from_raw_parts(args, nargs as usize) }
    };
    let result = catch_unwind(AssertUnwindSafe(|| {
        if !arity_ok(nargs, min, max) {
            return Err(error::arity(lx, name, args.len()));
        }
        if release::drain(lx) {
            crate::cache::gc_seen(lx);
        }
        f(lx, args)
    }));
    match result {
        Ok(Ok(v)) => v,
        Ok(Err(Exit)) => g().nil(),
        Err(panic) => caught(lx, panic),
    }
}

/// Signal a caught panic as an internal error.
#[cold]
#[inline(never)]
fn caught(lx: Lx, panic: Box<dyn std::any::Any + Send>) -> emacs_value {
    let msg = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    lx.clear_exit();
    error::internal(lx, &msg);
    g().nil()
}

/// Any number of arguments, for `make_function`.
const MANY: isize = -2;

macro_rules! defuns {
    ($( $m:ident { $( $lisp:literal ($min:literal, $max:literal) $f:ident $doc:literal; )* } )*) => {
        mod tramp {
            use super::*;
            $( pub mod $m {
                use super::*;
                $(
                    pub unsafe extern "C" fn $f(
                        env: *mut emacs_env, nargs: isize, args: *mut emacs_value, _: *mut c_void,
                    ) -> emacs_value {
                        // SAFETY: called by Emacs with its own env and arguments.
                        unsafe { run(env, nargs, args, $lisp, $min, $max, crate::$m::$f) }
                    }
                )*
            } )*
        }

        /// Define every function in Emacs.
        pub fn export(lx: Lx) -> LResult<()> {
            let defalias = lx.intern(c"defalias")?;
            $( $(
                // SAFETY: the trampoline has the signature Emacs expects.
                let func = unsafe { lx.make_function(0, MANY, tramp::$m::$f as RawFn, $doc)? };
                lx.funcall(defalias, &[lx.intern($lisp)?, func])?;
            )* )*
            Ok(())
        }

        /// Every function's name and declared arity (for the tests).
        #[cfg(test)]
        pub const DECLARED: &[(&CStr, isize, isize)] = &[$( $( ($lisp, $min, $max), )* )*];
    };
}

defuns! {
    api {
    c"rhash--make" (4, 5) make
        c"Make an rhash table; the public entry is `rhash-make'.\n\nTEST is eq, eql, equal or a user test NAME with its\nCMP and HASH functions (nil for the built-in tests); SIZE is a hint.\nSTORAGE `native' makes a native table (TEST eq, eql or equal).\n\n(fn TEST CMP HASH SIZE &optional STORAGE)";
    c"rhash-storage" (1, 1) storage_kind
        c"Return TABLE's storage: `lisp' or `native'.\nA native table keeps copies of its keys and values outside the Lisp\nheap, where the garbage collector never scans them; see `rhash-make'.\n\n(fn TABLE)";
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
    c"rhash--walk-mark" (2, 2) walk_mark
        c"Internal: begin (BEGIN non-nil) or end a walk of TABLE from Lisp.\n`rhash-map' brackets its walk on the official path with these: while\na walk is in progress `rhash-compact' waits for its end.\n\n(fn TABLE BEGIN)";
    c"rhash--hole" (0, 0) hole
        c"Internal: the marker stored in free slots of `rhash--storage'.\nIt cannot be stored as a key or value (an error).\n\n(fn)";
    c"rhash--stats" (1, 1) stats
        c"Internal: (SLOTS COUNT TOMBSTONES INDEX-SIZE VECTOR-LENGTH) of TABLE.\n\n(fn TABLE)";
    c"rhash--flush-cache" (0, 0) flush_cache
        c"Internal: forget the table cached for fast type checks.\nRun from `post-gc-hook', so that the cache never keeps a dropped\ntable alive for more than one garbage collection.\n\n(fn)";
    c"rhash--release-stats" (0, 0) release_stats
        c"Internal: (PENDING . RELEASED), the global references waiting in\nthe release queue and the total released so far.\n\n(fn)";
    }
    bulk {
    c"rhash-get-many" (2, 3) get_many
        c"Return the values of KEYS in TABLE, as a fresh sequence.\nKEYS is a list or a vector; the result has the same type and holds,\nin KEYS' order, each key's value, or DEFAULT (nil if omitted) where\nthe key is absent.  TABLE may also be a built-in hash table.\nLike mapping `rhash-get' over KEYS, in one call.\n\n(fn KEYS TABLE &optional DEFAULT)";
    c"rhash-put-many" (3, 3) put_many
        c"Put each key of KEYS into TABLE with the value at the same place in VALUES.\nKEYS and VALUES are lists or vectors of equal length (otherwise\nsignal `args-out-of-range' naming both lengths, leaving TABLE\nunchanged).  Same result as `rhash-put' of each pair in order.\nReturn TABLE.\n\n(fn KEYS VALUES TABLE)";
    c"rhash-merge" (1, -2) merge
        c"Put every entry of each of SOURCES into TABLE; return TABLE.\nEach source is read in its iteration order and its entries are put\nas by repeated `rhash-put': later sources win.  A source may be a\nbuilt-in hash table (read with `maphash').  Like `ht-update!'.\n\n(fn TABLE &rest SOURCES)";
    c"rhash-merge-with" (2, -2) merge_with
        c"Merge SOURCES into TABLE as `rhash-merge', combining clashing values.\nWhere TABLE already holds a key, its value becomes (FUNCTION OLD NEW),\nOLD being TABLE's value and NEW the source's.  Return TABLE.\nLike `map-merge-with'.\n\n(fn FUNCTION TABLE &rest SOURCES)";
    c"rhash-union" (2, 2) union
        c"Return a new rhash table with A's test holding the entries of A and B.\nA's entries come first, in A's order, then those of B whose keys A\nlacks, in B's order; where both hold a key, A's value is kept.  A and\nB may be built-in hash tables.\n\n(fn A B)";
    c"rhash-intersection" (2, 2) intersection
        c"Return a new rhash table with A's test holding A's entries whose keys B holds.\nThe entries keep A's order and values.  Keys are looked up with B's\ntest.  A and B may be built-in hash tables.\n\n(fn A B)";
    c"rhash-difference" (2, 2) difference
        c"Return a new rhash table with A's test holding A's entries whose keys B lacks.\nThe entries keep A's order and values.  Keys are looked up with B's\ntest.  A and B may be built-in hash tables.\n\n(fn A B)";
    c"rhash-equal" (2, 3) equal
        c"Return t if tables A and B hold the same keys with matching values.\nThat is: the same number of entries, every key of A present in B\n(under B's test), and (PREDICATE A-VALUE B-VALUE) non-nil for each\nkey, in A's order (PREDICATE defaults to `equal').  A and B may be\nbuilt-in hash tables.\n\n(fn A B &optional PREDICATE)";
    c"rhash-tally-into" (2, 2) tally_into
        c"Count the elements of SEQUENCE into TABLE; return TABLE.\nSEQUENCE is a list or a vector.  Each occurrence adds 1 to TABLE's\nvalue for the element, an absent key counting from 0, as\n(cl-incf (rhash-get ELT TABLE 0)) does; a value that is not a number\nsignals `wrong-type-argument'.\n\n(fn SEQUENCE TABLE)";
    c"rhash-uniq" (1, 2) uniq
        c"Return a fresh list of the distinct elements of SEQUENCE.\nSEQUENCE is a list or a vector.  The elements keep their first\noccurrences' order; two elements are the same under TEST: `eq',\n`eql', `equal' (the default) or a name given to\n`define-hash-table-test'.  Like `seq-uniq' and `delete-dups'.\n\n(fn SEQUENCE &optional TEST)";
    c"rhash-compact" (1, 1) compact
        c"Give back the memory of TABLE's removed entries; return TABLE.\nTABLE's capacity drops to what its entries need; the iteration order\nis kept, and the places of removed entries are forgotten (later new\nkeys are appended).  Tables never shrink otherwise (nor do built-in\nones).  During a walk of TABLE (`rhash-map', a bulk operation reading\nit) the compaction waits for the walk's end, so that the walk visits\nevery entry that stays.\n\n(fn TABLE)";
    c"rhash-stats" (1, 1) stats
        c"Return a plist describing TABLE's memory and probe lengths.\n:count entries, :capacity (as `rhash-size'), :slots entry places in\nuse or free, :vector-length of the storage vectors, :index-slots,\n:tombstones, :max-probe and :mean-probe (index slots a lookup of\na present key examines), and :bytes, the memory TABLE holds outside\nthe Lisp heap.\n\n(fn TABLE)";
    }
    persist {
    c"rhash-plain-data-p" (1, 1) plain_data_p
        c"Return t if OBJECT is plain data, nil otherwise.\nPlain data is what a native table (`:storage' `native') and an rhash\nfile hold: nil, t, symbols interned in the standard obarray (keywords\nincluded), integers, floats, strings (without text properties), and\nconses and vectors of plain data, acyclic and nested at most 10000\ndeep.\n\n(fn OBJECT)";
    c"rhash--save-vectors" (5, 5) save_vectors
        c"Internal: save KEYS[i] -> VALS[i] as a TEST table of STORAGE to FILE.\nSlots holding the free-slot marker are skipped.  Returns FILE, or nil\nafter a quit.  The public entry is `rhash-save'.\n\n(fn TEST STORAGE KEYS VALS FILE)";
    c"rhash--save-table" (2, 2) save_table
        c"Internal: save rhash TABLE (either storage) to FILE; return FILE,\nor nil after a quit.  The public entry is `rhash-save'.\n\n(fn TABLE FILE)";
    c"rhash--load-native" (2, 2) load_native
        c"Internal: put the entries of LOADED into native TABLE, copying\ntheir encodings; return TABLE.\n\n(fn TABLE LOADED)";
    c"rhash--load-file" (1, 1) load_file
        c"Internal: read and verify FILE; return (TEST STORAGE COUNT . LOADED).\nThe public entry is `rhash-load'.\n\n(fn FILE)";
    c"rhash--loaded-vectors" (1, 1) loaded_vectors
        c"Internal: the entries of LOADED as fresh objects, (KEYS . VALS).\n\n(fn LOADED)";
    }
    info {
    c"rhash--module-info" (0, 0) info
        c"Internal: a plist describing the loaded rhash module.\n\n:version is the module's version string, which must equal rhash.el's;\n:module is t; :source-hash is the SHA-256 of the sources it was\nbuilt from (see build.rs); :direct is t when the direct path is in use,\nelse nil, and then :direct-reason says why not.  The public entry is\n`rhash-module-info'.\n\n(fn)";
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arity_checks() {
        assert!(arity_ok(2, 2, 3) && arity_ok(3, 2, 3));
        assert!(!arity_ok(1, 2, 3) && !arity_ok(4, 2, 3));
        assert!(arity_ok(9, 1, MANY) && !arity_ok(0, 1, MANY));
        for (name, min, max) in DECLARED {
            assert!(*min >= 0 && (*max == MANY || *max >= *min), "{name:?}");
        }
    }
}
