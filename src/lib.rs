//! rhash: hash tables for Emacs Lisp, as a dynamic module.
//!
//! - `hash`, `table`: the pure open-addressing table (no Emacs types).
//! - `plain`, `native`, `file`: the plain-data encoding, a native table's
//!   key and value memory, and the rhash file (no Emacs types).
//! - `defun`: every module function's declaration and the FFI entry `run`;
//!   `api`, `bulk`, `info`, `persist`: their implementations (the export
//!   files, side by side, none importing another).
//! - `store` (a table's operations; the only module that makes or changes
//!   tables), `storage` (where keys and values live), `keys` (key kinds per
//!   test), `direct` (the direct path and its self-test), `ffi` (the
//!   official module API), `globals` (symbols), `error` (every signal),
//!   `release`, `cache`, `quiet`: the Emacs glue.

pub mod file;
pub mod hash;
pub mod native;
pub mod plain;
pub mod table;

mod api;
mod bulk;
mod cache;
mod convert;
mod defun;
mod direct;
mod error;
mod ffi;
mod globals;
mod info;
mod keys;
mod persist;
mod quiet;
mod lists;
mod release;
mod native_storage;
mod storage;
mod store_kind;
mod store;
#[cfg(test)]
mod test_rng;

use emacs::raw::{emacs_env, emacs_runtime};
use std::ffi::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};

emacs::plugin_is_GPL_compatible!();

/// The smallest `emacs_env` we can work with: Emacs 27's, whose last member
/// is `make_big_integer`.  `Lx` calls members up to there (`should_quit`
/// from 26, `extract_big_integer` from 27, in the signal-free mode), none
/// added in 28 (`open_channel`, `make_unibyte_string`...).  rhash.el needs
/// 27.1 too.
pub(crate) const MIN_ENV_SIZE: usize = std::mem::offset_of!(emacs_env, make_big_integer)
    // (Every member is an optional function pointer: one pointer wide.)
    + std::mem::size_of::<Option<unsafe extern "C" fn()>>();

/// Emacs's entry point for the module (our own, not the `emacs` crate's
/// `#[emacs::module]`: that one refuses Emacs 27 with the crate's `emacs-28`
/// bindings, and panics when the same file is loaded a second time, as
/// `(unload-feature 'rhash t)` then `(require 'rhash)` does).
///
/// Loading again is safe: the globals are kept from the first load, and the
/// functions are simply defined again.
///
/// # Safety
/// Called by Emacs with a valid runtime.
#[no_mangle]
pub unsafe extern "C" fn emacs_module_init(runtime: *mut emacs_runtime) -> c_int {
    // SAFETY: Emacs passes a valid runtime; `size` is its first member in
    // every Emacs version, and `get_environment` is there in all of them.
    let env = unsafe {
        if runtime.is_null() || ((*runtime).size as usize) < std::mem::size_of::<emacs_runtime>() {
            return 1;
        }
        match (*runtime).get_environment {
            Some(get) => get(runtime),
            None => return 1,
        }
    };
    // SAFETY: `size` is the first member of `emacs_env` in every version.
    if env.is_null() || (unsafe { (*env).size } as usize) < MIN_ENV_SIZE {
        // Emacs 25 or 26: too old (rhash.el itself needs 27.1).
        return 2;
    }
    // SAFETY: `env` is the env of this init call, checked to have every
    // member up to `make_big_integer`.
    let lx = unsafe { ffi::Lx::new(env) };
    let ok = catch_unwind(AssertUnwindSafe(|| {
        globals::init(lx)
            .and_then(|_| direct::init(lx))
            .and_then(|_| convert::init(lx))
            .and_then(|_| defun::export(lx))
            .and_then(|_| {
                let provide = lx.intern(c"provide")?;
                lx.funcall(provide, &[lx.intern(c"rhash-module")?])
            })
            .is_ok()
    }));
    match ok {
        Ok(true) => 0,
        // A Lisp signal is pending or a panic was caught: Emacs signals
        // `module-init-failed' with this code.
        Ok(false) => 3,
        Err(_) => 4,
    }
}
