//! Whether a signal raised and caught inside rhash could be seen by Lisp.
//!
//! Some env calls answer a question by signalling (`extract_integer` on a
//! non-integer or a big bignum, `copy_string_contents` with a short buffer or
//! a string with raw bytes, `get_user_finalizer` on a non-user-ptr).  rhash
//! catches and clears those, and with `debug-on-signal` and
//! `signal-hook-function` nil nothing else sees them (not even
//! `debug-on-error`: the module's catch-all handler catches them first).
//! While either variable is non-nil, rhash asks only questions that cannot
//! signal (`type_of` first, sizes first, `extract_big_integer` without a
//! buffer), which costs a few env calls per key.  rhash.el keeps the flag
//! current with variable watchers on both variables (`rhash--signals-visible`).
//!
//! With Lisp threads the flag follows the latest binding made in any thread:
//! a thread whose own binding differs from it can see the signals.

use std::sync::atomic::{AtomicBool, Ordering};

/// Until rhash.el says otherwise, assume signals are visible (safe, slower).
static VISIBLE: AtomicBool = AtomicBool::new(true);

#[inline]
pub fn visible() -> bool {
    VISIBLE.load(Ordering::Relaxed)
}

pub fn set_visible(v: bool) {
    VISIBLE.store(v, Ordering::Relaxed);
}
