//! `rhash--module-info`: what rhash.el needs to know about the loaded module
//! (its version and the hash of its sources, to refuse a stale build;
//! whether the direct path is in use).  rhash.el's `rhash-module-info`
//! (also a command) shows it.

use crate::ffi::{LResult, Lx, RawFn};
use emacs::raw::{emacs_env, emacs_value};
use std::ffi::c_void;

/// The crate's version; rhash.el's `Version:` header must be equal.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The hash of the sources this module was built from (see build.rs).
const SOURCE_HASH: &str = env!("RHASH_SOURCE_HASH");

fn info(lx: Lx) -> LResult<emacs_value> {
    let (direct, reason) = match crate::direct::status() {
        Ok(()) => (lx.intern(c"t")?, lx.intern(c"nil")?),
        Err(why) => (lx.intern(c"nil")?, lx.make_string(why.as_bytes())?),
    };
    let args = [
        lx.intern(c":version")?,
        lx.make_string(VERSION.as_bytes())?,
        lx.intern(c":module")?,
        lx.intern(c"t")?,
        lx.intern(c":source-hash")?,
        lx.make_string(SOURCE_HASH.as_bytes())?,
        lx.intern(c":direct")?,
        direct,
        lx.intern(c":direct-reason")?,
        reason,
    ];
    lx.funcall(lx.intern(c"list")?, &args)
}

unsafe extern "C" fn tramp(env: *mut emacs_env, nargs: isize, args: *mut emacs_value, _: *mut c_void) -> emacs_value {
    // SAFETY: called by Emacs with its own env and arguments; `run` catches
    // panics and turns pending exits into Emacs's own.
    unsafe { crate::api::run(env, nargs, args, |lx, _| info(lx)) }
}

/// Define `rhash--module-info`.
pub fn init(lx: Lx) -> LResult<()> {
    let doc = c"Internal: a plist describing the loaded rhash module.\n\n:version is the module's version string, which must equal rhash.el's;\n:module is t; :source-hash is the SHA-256 of the sources it was\nbuilt from (see build.rs); :direct is t when the direct path is in use, else nil, and then\n:direct-reason says why not.\n\n(fn)";
    // SAFETY: `tramp` has the signature Emacs expects of a module function.
    let func = unsafe { lx.make_function(0, 0, tramp as RawFn, doc)? };
    lx.funcall(lx.intern(c"defalias")?, &[lx.intern(c"rhash--module-info")?, func])?;
    Ok(())
}
