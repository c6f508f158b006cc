//! A one-table cache for the table type check.
//!
//! Checking that an argument is an rhash table costs two catching module
//! calls (`get_user_finalizer`, `get_user_ptr`), about a quarter of a
//! `rhash-get`.  After `PROMOTE` consecutive calls on the same table, the
//! cache takes a global reference to that table and remembers its handle;
//! later calls recognise it with one non-catching `eq`.
//!
//! Invariants:
//! - `gref`, when set, is a global reference to the table whose handle is
//!   `handle`; the reference keeps the table (so the handle) alive.
//! - The reference is dropped by `flush`, which rhash.el runs from
//!   `post-gc-hook`: a table the program dropped is collected at most one GC
//!   later than without the cache.
//! - With `post-gc-hook` nil or let-bound, the hook does not run; so a
//!   promotion also makes a *canary*: a user-ptr that nothing references once
//!   the module call returns, whose finalizer (run by the next GC) records
//!   that a GC happened (`release::note_gc`).  The next call into the module
//!   then flushes the cache (`api::run`, after the release queue's drain), at
//!   no cost on the fast path (the drain's one atomic load).  So a dropped
//!   table is collected at the first GC after the first rhash call that
//!   follows a GC (the canary can survive a GC if a stale stack slot still
//!   points to it: then a later one).
//! - The direct path recognises tables from their objects and never uses
//!   the cache.
//!
//! Only module functions touch the cache, and Emacs runs module functions
//! only on the thread that holds its global lock, which orders all accesses.

use crate::ffi::{Gref, Lx};
use crate::release;
use emacs::raw::emacs_value;
use std::cell::UnsafeCell;
use std::ffi::c_void;
use std::ptr;

/// Consecutive uses of one table before it is cached (so that alternating
/// between tables never pays for global references).
const PROMOTE: u32 = 8;

struct Cache {
    gref: Option<Gref>,
    handle: *const c_void,
    /// The table of the latest uncached calls and how many in a row.
    candidate: *const c_void,
    streak: u32,
    /// A canary is alive (made, not yet finalized).
    canary: bool,
}

struct LispLocked(UnsafeCell<Cache>);

// SAFETY: see the module comment: every access happens inside a module
// function, and Emacs serializes those with its global lock (a mutex, so
// accesses from different Lisp threads are ordered).
unsafe impl Sync for LispLocked {}

static CACHE: LispLocked = LispLocked(UnsafeCell::new(Cache {
    gref: None,
    handle: ptr::null(),
    candidate: ptr::null(),
    streak: 0,
    canary: false,
}));

/// Finalizer of the canary (see the module comment).  Runs inside GC: only
/// atomics, no Emacs call, no panic.
///
/// # Safety
/// Called by Emacs's GC; the pointer is null and unused.
unsafe extern "C" fn canary_finalizer(_: *mut c_void) {
    release::note_gc();
}

#[inline]
fn cache() -> *mut Cache {
    CACHE.0.get()
}

/// The payload of `v` if `v` is the cached table.
#[inline]
pub fn hit(lx: Lx, v: emacs_value) -> Option<*const c_void> {
    // SAFETY: exclusive by the global lock (module comment); no reference
    // into the cache outlives this function.
    let c = unsafe { &*cache() };
    match &c.gref {
        // `gref` keeps the table alive, so `handle` is valid; `eq` proves
        // `v` is that very table.
        Some(g) if lx.eq(v, g.v()) => Some(c.handle),
        _ => None,
    }
}

/// Record a call on table `v` (handle `h`) that missed the cache.
#[inline]
pub fn note(lx: Lx, v: emacs_value, h: *const c_void) {
    // SAFETY: exclusive by the global lock (module comment).
    let c = unsafe { &mut *cache() };
    if c.candidate != h {
        c.candidate = h;
        c.streak = 1;
        return;
    }
    c.streak += 1;
    if c.streak < PROMOTE {
        return;
    }
    c.streak = 0;
    let Ok(g) = lx.make_global_ref(v) else {
        lx.clear_exit();
        return;
    };
    // Replace both fields together: no Emacs call in between.
    let old = c.gref.replace(g);
    c.handle = h;
    if let Some(old) = old {
        lx.free_global_ref(old);
    }
    if !c.canary {
        // Unreferenced once this call returns; the next GC finalizes it.
        match lx.make_user_ptr(canary_finalizer, ptr::null_mut()) {
            Ok(_) => c.canary = true,
            Err(_) => {
                // No canary, no cache.
                lx.clear_exit();
                c.handle = ptr::null();
                if let Some(g) = c.gref.take() {
                    lx.free_global_ref(g);
                }
            }
        }
    }
}

/// A GC ran (the canary was finalized): forget the cached table.
pub fn gc_seen(lx: Lx) {
    // SAFETY: exclusive by the global lock (module comment).
    unsafe { (*cache()).canary = false };
    flush(lx);
}

/// Forget the cached table (after each GC, and before Emacs would see a
/// stale entry).
pub fn flush(lx: Lx) {
    // SAFETY: exclusive by the global lock (module comment).
    let c = unsafe { &mut *cache() };
    c.handle = ptr::null();
    c.candidate = ptr::null();
    c.streak = 0;
    if let Some(g) = c.gref.take() {
        lx.free_global_ref(g);
    }
}
