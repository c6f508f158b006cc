//! Symbols, functions and strings looked up once at load time and kept for
//! the life of Emacs through global references (never freed: the module
//! cannot unload).  Each is declared once, in the list below.

use crate::ffi::{Gref, LResult, Lx};
use emacs::raw::emacs_value;
use once_cell::sync::OnceCell;
use std::ffi::CStr;

macro_rules! globals {
    (
        symbols { $( $(#[$sm:meta])* $s:ident = $sn:literal, )* }
        strings { $( $(#[$tm:meta])* $t:ident = $tv:literal, )* }
    ) => {
        pub struct Globals {
            $( $(#[$sm])* pub $s: Gref, )*
            $( $(#[$tm])* pub $t: Gref, )*
            /// A regexp matching any character beyond Unicode (raw bytes
            /// included).
            pub re_beyond_unicode: Gref,
            /// The marker stored in free storage places: an uninterned
            /// symbol that only rhash.el sees (through `rhash--hole`, to
            /// skip free places).
            pub hole: Gref,
        }

        fn lookup(lx: Lx) -> LResult<Globals> {
            let make_symbol = lx.intern(c"make-symbol")?;
            let hole = lx.funcall(make_symbol, &[lx.make_string(b"rhash--free-slot")?])?;
            let re = lx.make_string("[^\u{0}-\u{10FFFF}]".as_bytes())?;
            Ok(Globals {
                $( $s: sym(lx, $sn)?, )*
                $( $t: string(lx, $tv)?, )*
                re_beyond_unicode: lx.make_global_ref(re)?,
                hole: lx.make_global_ref(hole)?,
            })
        }
    };
}

globals! {
    // Symbols, and functions called through their symbols so that advice
    // and redefinitions are honoured, as in a Lisp caller (`f_` names).
    symbols {
        nil = c"nil",
        t = c"t",
        // `type-of` results.
        integer = c"integer",
        float = c"float",
        string = c"string",
        symbol = c"symbol",
        user_ptr = c"user-ptr",
        cons = c"cons",
        vector = c"vector",
        // Test names.
        eq = c"eq",
        eql = c"eql",
        equal = c"equal",
        // Error symbols and their data.
        error = c"error",
        wrong_type_argument = c"wrong-type-argument",
        wrong_number_of_arguments = c"wrong-number-of-arguments",
        args_out_of_range = c"args-out-of-range",
        rhash_p = c"rhash-p",
        listp = c"listp",
        // Functions.
        f_sxhash_eq = c"sxhash-eq",
        f_sxhash_eql = c"sxhash-eql",
        f_sxhash_equal = c"sxhash-equal",
        f_eql = c"eql",
        f_equal = c"equal",
        f_cons = c"cons",
        f_list = c"list",
        f_make_vector = c"make-vector",
        f_make_list = c"make-list",
        f_vconcat = c"vconcat",
        f_substring = c"substring",
        f_append = c"append",
        f_delq = c"delq",
        f_copy_sequence = c"copy-sequence",
        f_multibyte_string_p = c"multibyte-string-p",
        f_string_match_p = c"string-match-p",
        f_symbol_value = c"symbol-value",
        symbols_with_pos_enabled = c"symbols-with-pos-enabled",
        f_hash_table_p = c"hash-table-p",
        f_gethash = c"gethash",
        f_hash_table_count = c"hash-table-count",
        f_one_plus = c"1+",
        f_float = c"float",
        f_div = c"/",
        /// `(rhash--resolve-test NAME)`: a test name as `rhash-make`
        /// resolves it, `(NAME CMP HASH)`.
        f_resolve_test = c"rhash--resolve-test",
        f_snapshot = c"rhash--hash-table-vectors",
        f_from_hash_table = c"rhash-from-hash-table",
        f_hash_table_test = c"hash-table-test",
        // The Lisp loops the bulk operations call where user Lisp run
        // between elements may change a built-in table or a key list.
        f_merge_loop = c"rhash--merge-loop",
        f_filter_loop = c"rhash--filter-loop",
        f_union_loop = c"rhash--union-loop",
        f_equal_loop = c"rhash--equal-loop",
        f_get_many_loop = c"rhash--get-many-loop",
        f_put_many_loop = c"rhash--put-many-loop",
        f_tally_loop = c"rhash--tally-loop",
        f_uniq_loop = c"rhash--uniq-loop",
        // Plain data (convert.rs), saving and loading (persist.rs).
        native = c"native",
        lisp = c"lisp",
        rhash_plain_data_p = c"rhash-plain-data-p",
        circular_list = c"circular-list",
        rhash_unsupported = c"rhash-unsupported",
        rhash_file_error = c"rhash-file-error",
        rhash_loaded_p = c"rhash--loaded-p",
        file_error = c"file-error",
        file_missing = c"file-missing",
        file_already_exists = c"file-already-exists",
        permission_denied = c"permission-denied",
        stringp = c"stringp",
        symbolp = c"symbolp",
        iso_latin_1_unix = c"iso-latin-1-unix",
        f_symbol_name = c"symbol-name",
        f_intern = c"intern",
        f_intern_soft = c"intern-soft",
        f_car = c"car",
        f_cdr = c"cdr",
        f_vector = c"vector",
        f_nconc = c"nconc",
        f_string = c"string",
        f_string_to_vector = c"string-to-vector",
        f_string_to_multibyte = c"string-to-multibyte",
        f_encode_coding_string = c"encode-coding-string",
    }
    // Error messages.
    strings {
        modifies_msg = c"hash table test modifies table",
        busy_msg = c"rhash table is in use by an unfinished operation",
        memory_msg = c"Memory exhausted--use C-x s then exit and restart Emacs",
        hole_msg = c"rhash's free-slot marker cannot be stored in a table",
        length_msg = c"KEYS and VALUES differ in length",
        invalid_test_msg = c"Invalid hash table test",
        reading_msg = c"Reading rhash table",
        writing_msg = c"Writing rhash table",
        opening_msg = c"Opening input file",
        no_such_file_msg = c"No such file or directory",
        not_regular_msg = c"Not a regular file",
    }
}

static GLOBALS: OnceCell<Globals> = OnceCell::new();

/// The globals; set at load time before any function is defined.
#[inline(always)]
pub fn g() -> &'static Globals {
    debug_assert!(GLOBALS.get().is_some(), "rhash globals are set at load time");
    // SAFETY: `init` sets GLOBALS first thing in `emacs_module_init`, which
    // defines the module's functions only after it succeeded; every caller
    // of `g` runs inside one of those functions (or later in the init), and
    // the cell is never emptied.
    unsafe { GLOBALS.get_unchecked() }
}

/// A global reference to the symbol NAME.
fn sym(lx: Lx, name: &CStr) -> LResult<Gref> {
    let v = lx.intern(name)?;
    lx.make_global_ref(v)
}

/// A global reference to a new string.
fn string(lx: Lx, text: &CStr) -> LResult<Gref> {
    let s = lx.make_string(text.to_bytes())?;
    lx.make_global_ref(s)
}

pub fn init(lx: Lx) -> LResult<()> {
    // Loading the module again (after `unload-feature`) keeps the first
    // load's globals: they are still referenced, and `g()` hands them out.
    if GLOBALS.get().is_some() {
        return Ok(());
    }
    let _ = GLOBALS.set(lookup(lx)?);
    Ok(())
}

impl Globals {
    #[inline]
    pub fn nil(&self) -> emacs_value {
        self.nil.v()
    }
    #[inline]
    pub fn bool(&self, b: bool) -> emacs_value {
        if b {
            self.t.v()
        } else {
            self.nil.v()
        }
    }
}
