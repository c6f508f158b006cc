//! `rhash--module-info`: what rhash.el needs to know about the loaded module
//! (its version and the hash of its sources, to refuse a stale build;
//! whether the direct path is in use).  rhash.el's `rhash-module-info`
//! (also a command) shows it.

use crate::ffi::{LResult, Lx};
use emacs::raw::emacs_value;

/// The crate's version; rhash.el's `Version:` header must be equal.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The hash of the sources this module was built from (see build.rs).
const SOURCE_HASH: &str = env!("RHASH_SOURCE_HASH");

/// `rhash--module-info`.
pub fn info(lx: Lx, _: &[emacs_value]) -> LResult<emacs_value> {
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
