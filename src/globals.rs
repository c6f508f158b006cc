//! Symbols and functions looked up once at load time and kept for the life of
//! Emacs through global references (never freed: the module cannot unload).

use crate::ffi::{Gref, LResult, Lx};
use emacs::raw::emacs_value;
use once_cell::sync::OnceCell;
use std::ffi::CStr;

pub struct Globals {
    pub nil: Gref,
    pub t: Gref,
    // `type-of` results.
    pub integer: Gref,
    pub float: Gref,
    pub string: Gref,
    pub symbol: Gref,
    pub user_ptr: Gref,
    // Test names.
    pub eq: Gref,
    pub eql: Gref,
    pub equal: Gref,
    // Errors.
    pub error: Gref,
    pub wrong_type_argument: Gref,
    pub rhash_p: Gref,
    pub args_out_of_range: Gref,
    pub modifies_msg: Gref,
    pub busy_msg: Gref,
    pub memory_msg: Gref,
    pub hole_msg: Gref,
    // Functions, called through their symbols so that advice and
    // redefinitions are honoured, as in a Lisp caller.
    pub f_sxhash_eq: Gref,
    pub f_sxhash_eql: Gref,
    pub f_sxhash_equal: Gref,
    pub f_eql: Gref,
    pub f_equal: Gref,
    pub f_cons: Gref,
    pub f_list: Gref,
    pub f_make_vector: Gref,
    pub f_vconcat: Gref,
    pub f_substring: Gref,
    pub f_append: Gref,
    pub f_delq: Gref,
    pub f_copy_sequence: Gref,
    pub f_multibyte_string_p: Gref,
    pub f_string_match_p: Gref,
    /// A regexp matching any character beyond Unicode (raw bytes included).
    pub re_beyond_unicode: Gref,
    pub f_symbol_value: Gref,
    pub symbols_with_pos_enabled: Gref,
    /// The marker stored in free vector slots: an uninterned symbol that
    /// only rhash.el sees (through `rhash--hole`, to skip free slots).
    pub hole: Gref,
}

static GLOBALS: OnceCell<Globals> = OnceCell::new();

/// The globals; set at load time before any function is defined.
#[inline]
pub fn g() -> &'static Globals {
    GLOBALS.get().expect("rhash globals are set at load time")
}

/// A global reference to the symbol NAME.
pub fn sym(lx: Lx, name: &CStr) -> LResult<Gref> {
    let v = lx.intern(name)?;
    lx.make_global_ref(v)
}

/// A global reference to a new string.
pub fn string(lx: Lx, text: &CStr) -> LResult<Gref> {
    let s = lx.make_string(text.to_bytes())?;
    lx.make_global_ref(s)
}

pub fn init(lx: Lx) -> LResult<()> {
    // Loading the module again (after `unload-feature`) keeps the first
    // load's globals: they are still referenced, and `g()` hands them out.
    if GLOBALS.get().is_some() {
        return Ok(());
    }
    let make_symbol = lx.intern(c"make-symbol")?;
    let hole = lx.funcall(make_symbol, &[lx.make_string(b"rhash--free-slot")?])?;
    let globals = Globals {
        nil: sym(lx, c"nil")?,
        t: sym(lx, c"t")?,
        integer: sym(lx, c"integer")?,
        float: sym(lx, c"float")?,
        string: sym(lx, c"string")?,
        symbol: sym(lx, c"symbol")?,
        user_ptr: sym(lx, c"user-ptr")?,
        eq: sym(lx, c"eq")?,
        eql: sym(lx, c"eql")?,
        equal: sym(lx, c"equal")?,
        error: sym(lx, c"error")?,
        wrong_type_argument: sym(lx, c"wrong-type-argument")?,
        rhash_p: sym(lx, c"rhash-p")?,
        args_out_of_range: sym(lx, c"args-out-of-range")?,
        modifies_msg: string(lx, c"hash table test modifies table")?,
        busy_msg: string(lx, c"rhash table is in use by an unfinished operation")?,
        memory_msg: string(lx, c"Memory exhausted--use C-x s then exit and restart Emacs")?,
        hole_msg: string(lx, c"rhash's free-slot marker cannot be stored in a table")?,
        f_sxhash_eq: sym(lx, c"sxhash-eq")?,
        f_sxhash_eql: sym(lx, c"sxhash-eql")?,
        f_sxhash_equal: sym(lx, c"sxhash-equal")?,
        f_eql: sym(lx, c"eql")?,
        f_equal: sym(lx, c"equal")?,
        f_cons: sym(lx, c"cons")?,
        f_list: sym(lx, c"list")?,
        f_make_vector: sym(lx, c"make-vector")?,
        f_vconcat: sym(lx, c"vconcat")?,
        f_substring: sym(lx, c"substring")?,
        f_append: sym(lx, c"append")?,
        f_delq: sym(lx, c"delq")?,
        f_copy_sequence: sym(lx, c"copy-sequence")?,
        f_multibyte_string_p: sym(lx, c"multibyte-string-p")?,
        f_string_match_p: sym(lx, c"string-match-p")?,
        re_beyond_unicode: {
            let re = lx.make_string("[^\u{0}-\u{10FFFF}]".as_bytes())?;
            lx.make_global_ref(re)?
        },
        f_symbol_value: sym(lx, c"symbol-value")?,
        symbols_with_pos_enabled: sym(lx, c"symbols-with-pos-enabled")?,
        hole: lx.make_global_ref(hole)?,
    };
    let _ = GLOBALS.set(globals);
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
