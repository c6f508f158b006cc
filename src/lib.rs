//! rhash: hash tables for Emacs Lisp, as a dynamic module.
//!
//! - `hash`, `table`: the pure open-addressing table (no Emacs types).
//! - `ffi`, `globals`, `keys`, `store`, `cache`, `release`, `api`: the Emacs glue.

pub mod hash;
pub mod table;

mod api;
mod cache;
mod ffi;
mod globals;
mod keys;
mod quiet;
mod release;
mod store;

use emacs::{Env, Result};

emacs::plugin_is_GPL_compatible!();

/// Module entry: look up globals and define the functions; the crate then
/// provides the feature `rhash-module`.
#[emacs::module(name = "rhash-module")]
fn init(env: &Env) -> Result<()> {
    // SAFETY: `env` is the env of the module's init call.
    let lx = unsafe { ffi::Lx::new(env.raw()) };
    match globals::init(lx).and_then(|_| api::init(lx)) {
        Ok(()) => Ok(()),
        // A Lisp signal is pending; the crate reports the failed init.
        Err(ffi::Exit) => Err(emacs::Error::msg("rhash: module initialization failed")),
    }
}
