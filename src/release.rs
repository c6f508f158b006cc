//! Deferred release of global references.
//!
//! A user-ptr finalizer runs inside garbage collection with no env, so it
//! cannot call `free_global_ref`.  `Drop` of a table therefore only moves its
//! references here; the next call into the module (any rhash function) frees
//! them.  `Drop` never calls Emacs, never blocks on Lisp, and never panics
//! (a poisoned lock is recovered, since the queue is just a Vec).

use crate::ffi::{Gref, Lx};
use once_cell::sync::Lazy;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

static PENDING: Lazy<Mutex<Vec<Gref>>> = Lazy::new(|| Mutex::new(Vec::new()));
static HAS_PENDING: AtomicBool = AtomicBool::new(false);

/// Queue references for release (called from finalizers).
pub fn defer(refs: impl IntoIterator<Item = Gref>) {
    let mut q = PENDING.lock().unwrap_or_else(|p| p.into_inner());
    let before = q.len();
    // A failed allocation here would abort; the queue holds a few words per
    // dead table and is emptied at every module call, so it stays tiny.
    q.extend(refs);
    if q.len() != before {
        HAS_PENDING.store(true, Ordering::Release);
    }
}

/// Set by `note_gc`: a garbage collection has run since the last drain.
static GC_SEEN: AtomicBool = AtomicBool::new(false);

/// Record that a GC ran (called from a finalizer: the type-check cache's
/// canary, see `cache.rs`); the next drain tells the cache.
pub fn note_gc() {
    GC_SEEN.store(true, Ordering::Release);
    HAS_PENDING.store(true, Ordering::Release);
}

/// Free queued references, and tell the cache if a GC ran; cheap (one
/// atomic load) when there is nothing to do.
#[inline]
pub fn drain(lx: Lx) -> usize {
    if !HAS_PENDING.load(Ordering::Acquire) {
        return 0;
    }
    if GC_SEEN.swap(false, Ordering::AcqRel) {
        crate::cache::gc_seen(lx);
    }
    let refs = {
        let mut q = PENDING.lock().unwrap_or_else(|p| p.into_inner());
        HAS_PENDING.store(false, Ordering::Release);
        std::mem::take(&mut *q)
    };
    // The lock is released before calling Emacs.
    let n = refs.len();
    for r in refs {
        lx.free_global_ref(r);
    }
    n
}

/// Number of references waiting to be freed (for tests).
pub fn pending() -> usize {
    PENDING.lock().unwrap_or_else(|p| p.into_inner()).len()
}
