//! Deferred release of global references.
//!
//! A user-ptr finalizer runs inside garbage collection with no env, so it
//! cannot call `free_global_ref`.  `Drop` of a table therefore only moves its
//! references here; the next call into the module (any rhash function) frees
//! them.  `Drop` never calls Emacs, never blocks on Lisp, and never panics
//! (a poisoned lock is recovered, since the queue is just a Vec).

use crate::ffi::{Exit, Gref, LResult, Lx};
use emacs::raw::emacs_value;
use once_cell::sync::Lazy;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
/// canary, see `cache.rs`); the next `drain` reports it.
pub fn note_gc() {
    GC_SEEN.store(true, Ordering::Release);
    HAS_PENDING.store(true, Ordering::Release);
}

/// Total global references freed from the queue (for tests).
static RELEASED: AtomicUsize = AtomicUsize::new(0);

/// The total of references `drain` has freed.
pub fn released() -> usize {
    RELEASED.load(Ordering::Relaxed)
}

/// Free queued references; returns whether a GC was noted since the last
/// drain (the caller tells the cache).  Cheap (one atomic load) when there
/// is nothing to do.
#[inline(always)]
pub fn drain(lx: Lx) -> bool {
    if !HAS_PENDING.load(Ordering::Acquire) {
        return false;
    }
    drain_pending(lx)
}

#[cold]
#[inline(never)]
fn drain_pending(lx: Lx) -> bool {
    let gc = GC_SEEN.swap(false, Ordering::AcqRel);
    let refs = {
        let mut q = PENDING.lock().unwrap_or_else(|p| p.into_inner());
        HAS_PENDING.store(false, Ordering::Release);
        std::mem::take(&mut *q)
    };
    // The lock is released before calling Emacs.
    RELEASED.fetch_add(refs.len(), Ordering::Relaxed);
    for r in refs {
        lx.free_global_ref(r);
    }
    gc
}

/// Number of references waiting to be freed (for tests).
pub fn pending() -> usize {
    PENDING.lock().unwrap_or_else(|p| p.into_inner()).len()
}

/// `N` global references held by a table (its storage vectors, a user
/// test's functions): dropping them, in a GC finalizer, only queues them.
pub struct Held<const N: usize>(Option<[Gref; N]>);

impl<const N: usize> Held<N> {
    /// References to `vals`, all or none.
    pub fn new(lx: Lx, vals: [emacs_value; N]) -> LResult<Held<N>> {
        Ok(Held(Some(grefs(lx, vals)?)))
    }

    /// The value of reference `i` (nil once dropping began).
    #[inline]
    pub fn get(&self, i: usize) -> emacs_value {
        self.0.as_ref().map_or_else(|| crate::globals::g().nil(), |r| r[i].v())
    }
}

impl<const N: usize> Drop for Held<N> {
    // Runs in the GC finalizer: only queue the references.
    fn drop(&mut self) {
        defer(self.0.take().into_iter().flatten());
    }
}

/// Global references to several values, all or none (on failure the ones
/// already made go to the release queue).
fn grefs<const N: usize>(lx: Lx, vals: [emacs_value; N]) -> LResult<[Gref; N]> {
    let mut made: Vec<Gref> = Vec::with_capacity(N);
    for v in vals {
        match lx.make_global_ref(v) {
            Ok(r) => made.push(r),
            Err(e) => {
                defer(made);
                return Err(e);
            }
        }
    }
    // `made` has exactly N references here.
    made.try_into().map_err(|m: Vec<Gref>| {
        defer(m);
        Exit
    })
}
