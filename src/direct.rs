//! The direct path: reading the Lisp objects behind `emacs_value`s.
//!
//! In Emacs 27-30 an `emacs_value` points to a one-word box holding the
//! `Lisp_Object`, objects never move, and 64-bit builds tag objects in their
//! low 3 bits (Emacs's `lisp.h`, `alloc.c` and `emacs-module.c`).  Reading those
//! words directly skips a catching env call (~150 instructions) per access.
//!
//! Nothing here is assumed: `selftest` checks, with the official API only,
//! every fact the readers below rely on, before the first dereference, and
//! `layout()` is `Some` only when all checks passed.  Each reader's SAFETY
//! note names the check that makes it sound.  `RHASH_NO_DIRECT=1` turns the
//! direct path off; `RHASH_DIRECT_FAIL=CHECK` (tests) fails one check.
//!
//! Facts (64-bit, `USE_LSB_TAG`, Emacs 27-30):
//! - fixnum: low two bits `10`, value = word >> 2 (check `fixnum`);
//! - symbol: tag 0, `nil` is 0 (check `symbol`);
//! - string: tag 4, `struct Lisp_String { size; size_byte; intervals; data }`,
//!   `size_byte < 0` for unibyte (check `string`);
//! - vectorlike: tag 5, a header word then the slots (check `vector`);
//!   user-ptrs, bignums and symbols-with-position are pseudovectors whose
//!   header word (mark bit aside) is constant per type: learned here, never
//!   hard-coded (checks `user-ptr`, `bignum`, `symbol-with-pos`);
//! - float: tag 7, the double at the object's address (check `float`);
//! - the GC moves no object (check `mps`: the MPS collector moves them);
//! - storing into a vector slot is a plain store (check `vector`, both ways);
//! - cons: tag 3, `{ car; cdr }`, a list ends in `nil`; storing into a
//!   fresh cons's car or cdr is a plain store (check `cons`, both ways);
//! - a module function may return a rewritten argument box (check `return`).
//!
//! Threads: module functions run under Emacs's global lock and the GC runs
//! only inside allocating calls, so a read between env calls sees a stable
//! object.  Bits kept across a call that may GC stay valid because objects do
//! not move, as long as something keeps them reachable.

use crate::ffi::{LResult, Lx, RawFn};
use emacs::raw::{emacs_env, emacs_value};
use once_cell::sync::OnceCell;
use std::ffi::c_void;
use std::sync::atomic::{AtomicPtr, Ordering};

/// The bits of a Lisp object that is live for the current module call:
/// made only by the unsafe readers below (`obj`, `vref`), whose callers
/// vouch for liveness, so the safe functions that read through it are sound.
/// Objects never move, so an `Obj` stays valid across calls that may GC as
/// long as the object stays reachable; string *data* may move (see `string`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(transparent)]
pub struct Obj(u64);

impl Obj {
    /// `nil` (check `symbol`).
    pub const NIL: Obj = Obj(0);

    #[inline(always)]
    pub fn bits(self) -> u64 {
        self.0
    }
}

const TAG_MASK: u64 = 7;
const TAG_SYMBOL: u64 = 0;
const TAG_CONS: u64 = 3;
const TAG_STRING: u64 = 4;
const TAG_VECTORLIKE: u64 = 5;
const TAG_FLOAT: u64 = 7;
/// `ARRAY_MARK_FLAG`: the GC's mark bit in vector and string size words.
const MARK: u64 = 1 << 63;

/// What the self-test learned.
#[derive(Debug)]
pub struct Layout {
    /// Header word of a user-ptr (mark bit cleared).
    uptr_header: u64,
    /// Header word of a bignum.
    bignum_header: u64,
    /// Header word of a symbol with position (Emacs 29+; 0 before).
    sympos_header: u64,
}

static LAYOUT: OnceCell<Option<Layout>> = OnceCell::new();
static REASON: OnceCell<String> = OnceCell::new();
/// The layout in `LAYOUT` once the direct path is on, else null: what
/// `layout()` reads (one load and a test, where `OnceCell::get` takes five
/// instructions; it runs several times per call).
static ON: AtomicPtr<Layout> = AtomicPtr::new(std::ptr::null_mut());

/// The learned layout when the direct path is on.
#[inline(always)]
pub fn layout() -> Option<&'static Layout> {
    // SAFETY: `ON` is null or points into `LAYOUT`, a static set once and
    // never changed (`init`), so the reference is valid for 'static.
    unsafe { ON.load(Ordering::Acquire).as_ref() }
}

/// Whether the direct path is on, and if not, why.
pub fn status() -> Result<(), String> {
    match (layout(), REASON.get()) {
        (Some(_), _) => Ok(()),
        (None, Some(r)) => Err(r.clone()),
        (None, None) => Err("the self-test has not run".into()),
    }
}

/// Read the object in a box.
///
/// # Safety
/// The direct path is on (check `box`: an `emacs_value` is a pointer to its
/// object's word), and `v` is a live value of the current call or a global
/// reference.
#[inline(always)]
pub unsafe fn obj(v: emacs_value) -> Obj {
    // SAFETY: the caller's contract above.
    Obj(unsafe { *(v as *const u64) })
}

/// Write an object into a box.
///
/// # Safety
/// As `obj`, and `v` is an argument box of the current call (check
/// `return`): never a global reference's box, never a value of another call.
#[inline(always)]
pub unsafe fn set_box(v: emacs_value, o: Obj) {
    // SAFETY: the caller's contract above.
    unsafe { *(v as *mut u64) = o.0 }
}

/// The fixnum `i` (which must be in the fixnum range).
#[inline(always)]
pub fn make_fixnum(i: i64) -> Obj {
    debug_assert!((-(1 << 61)..(1 << 61)).contains(&i));
    mkfix(i)
}

#[inline(always)]
pub fn fixnum(o: Obj) -> Option<i64> {
    (o.0 & 3 == 2).then_some((o.0 as i64) >> 2)
}

#[inline(always)]
pub fn is_symbol(o: Obj) -> bool {
    o.0 & TAG_MASK == TAG_SYMBOL
}

#[inline(always)]
fn is_vectorlike(o: Obj) -> bool {
    o.0 & TAG_MASK == TAG_VECTORLIKE
}

/// The car and cdr of `o` if it is a cons.
#[inline(always)]
pub fn cons(o: Obj) -> Option<(Obj, Obj)> {
    if o.0 & TAG_MASK != TAG_CONS {
        return None;
    }
    let p = (o.0 - TAG_CONS) as *const u64;
    // SAFETY: `o` is a live object (`Obj`'s invariant) with the cons tag:
    // its untagged address holds the car, then the cdr (check `cons`).
    unsafe { Some((Obj(*p), Obj(*p.add(1)))) }
}

/// Store `car` into cons `c` (no write barrier: check `cons`).
///
/// # Safety
/// `c` is a live cons (tag checked) that this call made or got fresh from
/// `make-list` (never a pure or shared one), and `car` is live: the cons
/// keeps it from then on.
#[inline(always)]
pub unsafe fn set_car(c: Obj, car: Obj) {
    debug_assert_eq!(c.0 & TAG_MASK, TAG_CONS);
    // SAFETY: the caller's contract above; the car is the first word
    // (check `cons`).
    unsafe { *((c.0 - TAG_CONS) as *mut u64) = car.0 }
}

/// Store `cdr` into cons `c` (no write barrier: check `cons`).
///
/// # Safety
/// As `set_car`.
#[inline(always)]
pub unsafe fn set_cdr(c: Obj, cdr: Obj) {
    debug_assert_eq!(c.0 & TAG_MASK, TAG_CONS);
    // SAFETY: the caller's contract above; the cdr is the second word
    // (check `cons`).
    unsafe { *((c.0 - TAG_CONS) as *mut u64).add(1) = cdr.0 }
}

/// The length of `o` if it is a proper list (nil-terminated; `nil` is
/// 0); `None` for a dotted or circular list or a non-list, whose errors
/// the caller leaves to Emacs.  Brent's cycle check, as `FOR_EACH_TAIL`.
pub fn list_len(o: Obj) -> Option<usize> {
    let (mut tail, mut n) = (o, 0usize);
    let (mut tortoise, mut power) = (o, 1usize);
    loop {
        if tail == Obj::NIL {
            return Some(n);
        }
        let (_, cdr) = cons(tail)?;
        tail = cdr;
        n += 1;
        if tail == tortoise {
            return None;
        }
        if n == power {
            (tortoise, power) = (tail, power * 2);
        }
    }
}

/// Word `i` of a vectorlike object (0 = header).
///
/// # Safety
/// `o` is vectorlike (tag checked) with more than `i` words.
#[inline(always)]
unsafe fn word(o: Obj, i: usize) -> u64 {
    // SAFETY: the caller's contract above; the untagged address is the
    // object's first word (check `vector`).
    unsafe { *((o.0 - TAG_VECTORLIKE) as *const u64).add(i) }
}

/// The header of a vectorlike object, mark bit cleared.
///
/// # Safety
/// `o` is vectorlike (tag checked; every vectorlike has a header word).
#[inline(always)]
unsafe fn header(o: Obj) -> u64 {
    // SAFETY: the caller's contract above: word 0 exists.
    unsafe { word(o, 0) & !MARK }
}

impl Layout {
    /// The user-ptr's finalizer and pointer if `o` is a user-ptr.
    #[inline(always)]
    pub fn user_ptr(&self, o: Obj) -> Option<(usize, *mut c_void)> {
        if !is_vectorlike(o) {
            return None;
        }
        // SAFETY: `o` is a live object of the current call with the
        // vectorlike tag (check `vector`): it has a header.  A user-ptr's
        // header is `uptr_header` and its finalizer and pointer follow
        // (check `user-ptr`).
        unsafe {
            if header(o) != self.uptr_header {
                return None;
            }
            Some((word(o, 1) as usize, word(o, 2) as *mut c_void))
        }
    }

    /// The bare symbol of a symbol with position (Emacs 29+).
    #[inline(always)]
    pub fn sympos_bare(&self, o: Obj) -> Option<Obj> {
        if self.sympos_header == 0 || !is_vectorlike(o) {
            return None;
        }
        // SAFETY: as `is_bignum`; the symbol follows the header (check
        // `symbol-with-pos`).
        unsafe { (header(o) == self.sympos_header).then(|| Obj(word(o, 1))) }
    }
}

/// What an object is, read in one tag dispatch: what the Lisp-free
/// classifiers need (`keys::classify_quick`, `convert::encode_atom_direct`)
/// without a call back into this file per kind.
#[derive(Clone, Copy)]
pub enum Atom<'a> {
    Fixnum(i64),
    /// A float's bits.
    Float(u64),
    /// A string's bytes (valid until the next GC: see `string`), whether
    /// it has as many characters as bytes, and whether it is multibyte.
    Str(&'a [u8], bool, bool),
    Symbol,
    Bignum,
    /// A symbol with position (Emacs 29+).
    SymPos,
    /// Any other object (conses, vectors, markers...).
    Other,
}

impl Layout {
    /// The `Atom` of `o`.
    ///
    /// # Safety
    /// `o` is a live object of the current call; a string's slice must be
    /// dropped before the next env call that may GC (the lifetime `'a` is
    /// the caller's promise, as for `string`).
    #[inline(always)]
    pub unsafe fn atom<'a>(&self, o: Obj) -> Atom<'a> {
        if let Some(i) = fixnum(o) {
            return Atom::Fixnum(i);
        }
        match o.0 & TAG_MASK {
            TAG_SYMBOL => Atom::Symbol,
            TAG_FLOAT => float_bits(o).map_or(Atom::Other, Atom::Float),
            // SAFETY: the caller's contract (string data, liveness).
            TAG_STRING => match unsafe { string_mb(o) } {
                Some((bytes, single, multibyte)) => Atom::Str(bytes, single, multibyte),
                None => Atom::Other,
            },
            TAG_VECTORLIKE => {
                // SAFETY: a vectorlike object has a header (check `vector`).
                let h = unsafe { header(o) };
                if h == self.bignum_header {
                    Atom::Bignum
                } else if self.sympos_header != 0 && h == self.sympos_header {
                    Atom::SymPos
                } else {
                    Atom::Other
                }
            }
            _ => Atom::Other,
        }
    }
}

/// The bits of a float object.
#[inline(always)]
pub fn float_bits(o: Obj) -> Option<u64> {
    // SAFETY: a live float's double is at its untagged address (check `float`).
    (o.0 & TAG_MASK == TAG_FLOAT).then(|| unsafe { *((o.0 - TAG_FLOAT) as *const u64) })
}

/// A string's bytes (its internal representation, valid until the next GC)
/// and whether it has as many characters as bytes (unibyte, or ASCII).
/// `equal` strings are exactly those with equal bytes and equal counts
/// (`internal_equal` compares SCHARS, SBYTES and the bytes), and equal bytes
/// decode to equal counts except between a unibyte and a multibyte string, so
/// (bytes, chars == bytes) decides `equal` (check `string`).
///
/// # Safety
/// The slice must be dropped before the next env call that may GC (the GC
/// compacts string data): the lifetime `'a` is the caller's promise.
#[inline(always)]
pub unsafe fn string<'a>(o: Obj) -> Option<(&'a [u8], bool)> {
    if o.0 & TAG_MASK != TAG_STRING {
        return None;
    }
    // SAFETY: a live string (tag checked) is `{ size; size_byte; intervals;
    // data }` (check `string`); the caller bounds the slice's life.
    unsafe {
        let p = (o.0 - TAG_STRING) as *const i64;
        let size = (*p & !(MARK as i64)) as usize;
        let size_byte = *p.add(1);
        let data = *p.add(3) as *const u8;
        let bytes = if size_byte < 0 { size } else { size_byte as usize };
        let s = if bytes == 0 { &[][..] } else { std::slice::from_raw_parts(data, bytes) };
        Some((s, size == bytes))
    }
}

/// A string's bytes and character-count flag (as `string`) and whether it
/// is multibyte (`size_byte >= 0`; check `string` saw -1 for unibyte
/// strings).
///
/// # Safety
/// As `string`.
#[inline(always)]
pub unsafe fn string_mb<'a>(o: Obj) -> Option<(&'a [u8], bool, bool)> {
    // SAFETY: as `string`, which checks the tag; then `size_byte` is the
    // string's second word (check `string`).
    unsafe {
        let (bytes, single) = string(o)?;
        let multibyte = *((o.0 - TAG_STRING) as *const i64).add(1) >= 0;
        Some((bytes, single, multibyte))
    }
}

/// Slot `i` of a plain vector.
///
/// # Safety
/// `vec` is a live plain vector (made by `make-vector`) longer than `i`.
#[inline(always)]
pub unsafe fn vref(vec: Obj, i: usize) -> Obj {
    // SAFETY: the caller's contract above; slot i is word 1 + i (check
    // `vector`).
    Obj(unsafe { word(vec, 1 + i) })
}

/// The slots of a plain vector of `len` slots, as objects.
///
/// # Safety
/// `vec` is a live plain vector (made by `make-vector`) of `len` slots,
/// and no Lisp runs while the slice lives (Lisp could store into it).
#[inline(always)]
pub unsafe fn vslots<'a>(vec: Obj, len: usize) -> &'a [Obj] {
    // SAFETY: the caller's contract above; the slots are words 1..=len
    // (check `vector`), and `Obj` is one word (`repr(transparent)`).
    unsafe { std::slice::from_raw_parts(((vec.0 - TAG_VECTORLIKE) as *const u64).add(1) as *const Obj, len) }
}

/// Store into slot `i` of a plain vector (no write barrier: check `vector`).
///
/// # Safety
/// As `vref`; `o` is a live object that `vec` then keeps reachable.
#[inline(always)]
pub unsafe fn vset(vec: Obj, i: usize, o: Obj) {
    // SAFETY: the caller's contract above; a plain store is all a vector
    // slot needs (check `vector`).
    unsafe { *((vec.0 - TAG_VECTORLIKE) as *mut u64).add(1 + i) = o.0 }
}

/// The length of `vec` if it is a plain vector.
pub fn plain_vector_len(vec: Obj) -> Option<usize> {
    if !is_vectorlike(vec) {
        return None;
    }
    // A plain vector's header is its length; pseudovectors set bit 62
    // (check `vector`).
    // SAFETY: vectorlike (tag checked).
    let h = unsafe { header(vec) };
    (h >> 62 == 0).then_some(h as usize)
}

// ---------------------------------------------------------------------------
// The self-test.

/// Run the self-test (once, at module load) and record the verdict.
pub fn init(lx: Lx) -> LResult<()> {
    if LAYOUT.get().is_some() {
        // Loaded again (after `unload-feature`): the verdict stands.
        return Ok(());
    }
    let verdict = if std::env::var_os("RHASH_NO_DIRECT").is_some_and(|v| v == "1") {
        Err("RHASH_NO_DIRECT=1".to_string())
    } else {
        let fail = std::env::var("RHASH_DIRECT_FAIL").unwrap_or_default();
        let r = selftest(lx, &fail);
        // A check's failure may leave an exit pending: the module loads anyway.
        lx.clear_exit();
        r.map_err(|check| format!("self-test check `{check}' failed"))
    };
    match verdict {
        Ok(l) => {
            let _ = LAYOUT.set(Some(l));
            if let Some(Some(l)) = LAYOUT.get() {
                ON.store(l as *const Layout as *mut Layout, Ordering::Release);
            }
        }
        Err(reason) => {
            let _ = REASON.set(reason);
            let _ = LAYOUT.set(None);
        }
    }
    Ok(())
}

/// The argument-box return check's function: rewrites its argument's box.
unsafe extern "C" fn rewrite_arg(_: *mut emacs_env, n: isize, args: *mut emacs_value, _: *mut c_void) -> emacs_value {
    if n != 1 {
        return std::ptr::null_mut();
    }
    // SAFETY: only called by `selftest` after check `box` passed, with one
    // argument: `args[0]` is this call's argument box.
    unsafe {
        let a = *args;
        set_box(a, mkfix(777));
        a
    }
}

fn mkfix(i: i64) -> Obj {
    Obj(((i as u64) << 2) | 2)
}

/// Every check, in order; returns the name of the first that fails.
/// Dereferences a box only after check `box` passed, and an object only
/// after the check of its kind's tag.
fn selftest(lx: Lx, fail: &str) -> Result<Layout, &'static str> {
    fn ok(c: &'static str, b: bool, fail: &str) -> Result<(), &'static str> {
        if b && fail != c {
            Ok(())
        } else {
            Err(c)
        }
    }
    let e = |_| "env call";
    ok("64-bit", std::mem::size_of::<usize>() == 8 && cfg!(target_endian = "little"), fail)?;
    // No moving collector.
    let featurep = lx.intern(c"featurep").map_err(e)?;
    let mps = lx.intern(c"mps").map_err(e)?;
    let r = lx.funcall(featurep, &[mps]).map_err(e)?;
    ok("mps", !lx.is_not_nil(r), fail)?;
    // Boxes: two fresh values are adjacent, aligned frame slots (a
    // tagged-bits representation fails here before any dereference).
    let pair = || -> Result<(emacs_value, emacs_value), &'static str> {
        Ok((lx.make_integer(1).map_err(e)?, lx.make_integer(1000).map_err(e)?))
    };
    let (mut v1, mut v2) = pair()?;
    if (v2 as usize).wrapping_sub(v1 as usize) != 8 {
        // The two may straddle a frame boundary: try once more.
        (v1, v2) = pair()?;
    }
    ok("box", (v1 as usize) >= 65536 && (v1 as usize) & 7 == 0 && (v2 as usize).wrapping_sub(v1 as usize) == 8, fail)?;
    // SAFETY: check `box` passed (all reads below), so values are pointers
    // to their objects' words; each object is read only after its tag
    // checked.
    unsafe {
        ok("fixnum", obj(v1) == mkfix(1) && obj(v2) == mkfix(1000), fail)?;
        for i in [-5i64, (1 << 61) - 1, -(1 << 61)] {
            let v = lx.make_integer(i).map_err(e)?;
            ok("fixnum", obj(v) == mkfix(i) && fixnum(obj(v)) == Some(i), fail)?;
        }
        let nil = lx.intern(c"nil").map_err(e)?;
        let t = lx.intern(c"t").map_err(e)?;
        ok("symbol", obj(nil).0 == 0 && is_symbol(obj(t)) && obj(t).0 != 0, fail)?;

        // Vectors, both ways.
        let make_vector = lx.intern(c"make-vector").map_err(e)?;
        let vec = lx.funcall(make_vector, &[lx.make_integer(3).map_err(e)?, lx.make_integer(7).map_err(e)?]).map_err(e)?;
        let vo = obj(vec);
        ok("vector", is_vectorlike(vo), fail)?;
        ok("vector", plain_vector_len(vo) == Some(3) && vref(vo, 0) == mkfix(7) && vref(vo, 2) == mkfix(7), fail)?;
        lx.vec_set(vec, 1, t).map_err(e)?;
        ok("vector", vref(vo, 1) == obj(t), fail)?;
        vset(vo, 2, mkfix(42));
        ok("vector", lx.vec_get(vec, 2).and_then(|v| lx.extract_integer(v)).map_err(e)? == 42, fail)?;

        // Conses and lists, both ways.
        check_conses(lx, fail)?;

        // User-ptrs: header, finalizer, pointer.
        static SENTINEL: u8 = 0;
        let sp = &SENTINEL as *const u8 as *mut c_void;
        let up = lx.make_user_ptr(noop_finalizer, sp).map_err(e)?;
        let uo = obj(up);
        ok("user-ptr", is_vectorlike(uo), fail)?;
        let uh = header(uo);
        ok(
            "user-ptr",
            (uh >> 62) & 1 == 1 && word(uo, 1) as usize == noop_finalizer as *const () as usize && word(uo, 2) as *mut c_void == sp,
            fail,
        )?;
        let up2 = lx.make_user_ptr(noop_finalizer, sp).map_err(e)?;
        ok("user-ptr", header(obj(up2)) == uh, fail)?;

        // Floats.
        let fl = lx.make_float(1.5).map_err(e)?;
        ok("float", float_bits(obj(fl)) == Some(1.5f64.to_bits()), fail)?;
        let fl = lx.make_float(-0.0).map_err(e)?;
        ok("float", float_bits(obj(fl)) == Some((-0.0f64).to_bits()), fail)?;

        // Bignums: learn the header from two, check it differs from the
        // user-ptr's and from plain vectors'.
        let b1 = lx.make_integer(i64::MAX).map_err(e)?;
        let b2 = lx.make_integer(i64::MIN).map_err(e)?;
        let (bo1, bo2) = (obj(b1), obj(b2));
        ok("bignum", is_vectorlike(bo1) && is_vectorlike(bo2), fail)?;
        let bh = header(bo1);
        ok("bignum", bh == header(bo2) && bh != uh && (bh >> 62) & 1 == 1, fail)?;

        // Strings.
        check_strings(lx, fail)?;

        // Symbols with position (Emacs 29+): header, then the bare symbol.
        let sympos_header = check_sympos(lx, fail, &[uh, bh])?;

        // Returning a rewritten argument box.
        let f = lx.make_function(1, 1, rewrite_arg as RawFn, c"").map_err(e)?;
        let one = lx.make_integer(1).map_err(e)?;
        let r = lx.funcall(f, &[one]).map_err(e)?;
        ok("return", lx.extract_integer(r).map_err(e)? == 777, fail)?;

        Ok(Layout { uptr_header: uh, bignum_header: bh, sympos_header })
    }
}

unsafe extern "C" fn noop_finalizer(_: *mut c_void) {}

/// Check `cons`: a cons's car and cdr, a list's walk to `nil` and its
/// length (dotted and circular lists refused), and a store into a fresh
/// `make-list` cons as `car`, `cdr`, `nth` and `length` see it.
///
/// # Safety
/// Check `box` and `symbol` passed.
unsafe fn check_conses(lx: Lx, fail: &str) -> Result<(), &'static str> {
    let c = "cons";
    let check = |b: bool| if b && fail != c { Ok(()) } else { Err(c) };
    let e = |_| "env call";
    let f = |name: &std::ffi::CStr, args: &[emacs_value]| -> Result<emacs_value, &'static str> {
        let fun = lx.intern(name).map_err(e)?;
        lx.funcall(fun, args).map_err(e)
    };
    let (one, two, three) = (lx.make_integer(1).map_err(e)?, lx.make_integer(2).map_err(e)?, lx.make_integer(3).map_err(e)?);
    // SAFETY: check `box` passed (caller): values are pointers to their
    // objects' words; `cons` checks the tag before reading.
    unsafe {
        let pair = f(c"cons", &[one, two])?;
        check(cons(obj(pair)) == Some((mkfix(1), mkfix(2))))?;
        let list = f(c"list", &[one, two, three])?;
        let mut cars = Vec::new();
        let mut tail = obj(list);
        while let Some((car, cdr)) = cons(tail) {
            cars.push(car);
            tail = cdr;
        }
        check(cars == [mkfix(1), mkfix(2), mkfix(3)] && tail.0 == 0 && cons(obj(one)).is_none() && cons(Obj::NIL).is_none())?;
        check(list_len(obj(list)) == Some(3) && list_len(Obj::NIL) == Some(0) && list_len(obj(pair)).is_none())?;
        let circular = f(c"list", &[one, two, three])?;
        f(c"nconc", &[circular, circular])?;
        check(list_len(obj(circular)).is_none())?;
        // Stores as `setcar'/`setcdr' would do them.
        let fresh = f(c"make-list", &[three, lx.intern(c"t").map_err(e)?])?;
        let (_, rest) = cons(obj(fresh)).ok_or(c)?;
        set_car(obj(fresh), mkfix(7));
        let (car, cdr) = (f(c"car", &[fresh])?, f(c"cdr", &[fresh])?);
        check(lx.extract_integer(car).map_err(e)? == 7 && obj(cdr) == rest)?;
        set_car(rest, mkfix(8));
        set_cdr(rest, Obj::NIL);
        let (second, len) = (f(c"nth", &[one, fresh])?, f(c"length", &[fresh])?);
        check(lx.extract_integer(second).map_err(e)? == 8 && lx.extract_integer(len).map_err(e)? == 2)?;
    }
    Ok(())
}

/// Check `string`: layout of multibyte ASCII, multibyte non-ASCII and
/// unibyte strings, and the rule that (bytes, chars == bytes) decides
/// `equal`, against `equal` itself.
///
/// # Safety
/// Check `box` passed.
unsafe fn check_strings(lx: Lx, fail: &str) -> Result<(), &'static str> {
    let e = |_| "env call";
    let c = "string";
    let check = |b: bool| if b && fail != c { Ok(()) } else { Err(c) };
    let abc = lx.make_string(b"abc").map_err(e)?;
    let eacute = lx.make_string("é".as_bytes()).map_err(e)?;
    let to_uni = lx.intern(c"string-to-unibyte").map_err(e)?;
    let to_multi = lx.intern(c"string-to-multibyte").map_err(e)?;
    let unibyte_string = lx.intern(c"unibyte-string").map_err(e)?;
    let equal = lx.intern(c"equal").map_err(e)?;
    let uni_abc = lx.funcall(to_uni, &[abc]).map_err(e)?;
    let ff = lx.make_integer(255).map_err(e)?;
    let uni_ff = lx.funcall(unibyte_string, &[ff]).map_err(e)?;
    let multi_ff = lx.funcall(to_multi, &[uni_ff]).map_err(e)?;
    let empty = lx.make_string(b"").map_err(e)?;
    // SAFETY: check `box` passed (caller); `string` checks the tag first.
    let s = |v: emacs_value| unsafe { string(obj(v)) };
    check(s(abc) == Some((b"abc", true)))?;
    check(s(eacute) == Some(("é".as_bytes(), false)))?;
    check(s(uni_abc) == Some((b"abc", true)))?;
    check(s(uni_ff) == Some((b"\xff", true)))?;
    check(s(multi_ff) == Some((b"\xc1\xbf", false)))?;
    check(s(empty) == Some((b"", true)))?;
    // A unibyte string is negative in `size_byte`; a multibyte one is not.
    // SAFETY: strings (tags checked above).
    let size_byte = |v: emacs_value| unsafe { *((obj(v).0 - TAG_STRING) as *const i64).add(1) };
    check(size_byte(uni_abc) < 0 && size_byte(eacute) == 2)?;
    let eq = |a, b| lx.funcall(equal, &[a, b]).map(|r| lx.is_not_nil(r)).map_err(e);
    check(eq(abc, uni_abc)? && !eq(uni_ff, multi_ff)?)?;
    // `string_mb`'s multibyteness is `multibyte-string-p`'s, ASCII too.
    let multi_abc = lx.funcall(to_multi, &[uni_abc]).map_err(e)?;
    let multibyte_p = lx.intern(c"multibyte-string-p").map_err(e)?;
    for v in [abc, eacute, uni_abc, uni_ff, multi_ff, empty, multi_abc] {
        let mb = lx.funcall(multibyte_p, &[v]).map(|r| lx.is_not_nil(r)).map_err(e)?;
        // SAFETY: strings (tags checked above).
        check(unsafe { string_mb(obj(v)) }.map(|(_, _, m)| m) == Some(mb))?;
    }
    Ok(())
}

/// Check `symbol-with-pos`: on Emacs 29+, learn the header of a symbol with
/// position and check that the bare symbol follows it.  Returns 0 (no such
/// objects) when `position-symbol` is not defined.
///
/// # Safety
/// Check `box` passed.
unsafe fn check_sympos(lx: Lx, fail: &str, other_headers: &[u64]) -> Result<u64, &'static str> {
    let e = |_| "env call";
    let c = "symbol-with-pos";
    let check = |b: bool| if b && fail != c { Ok(()) } else { Err(c) };
    let fboundp = lx.intern(c"fboundp").map_err(e)?;
    let position_symbol = lx.intern(c"position-symbol").map_err(e)?;
    let r = lx.funcall(fboundp, &[position_symbol]).map_err(e)?;
    if !lx.is_not_nil(r) {
        check(true)?;
        return Ok(0);
    }
    let sym = lx.intern(c"rhash--selftest-symbol").map_err(e)?;
    let p1 = lx.funcall(position_symbol, &[sym, lx.make_integer(5).map_err(e)?]).map_err(e)?;
    let p2 = lx.funcall(position_symbol, &[sym, lx.make_integer(9).map_err(e)?]).map_err(e)?;
    // SAFETY: check `box` passed; headers are read after the tag check.
    unsafe {
        let (o1, o2) = (obj(p1), obj(p2));
        check(is_vectorlike(o1) && is_vectorlike(o2))?;
        let h = header(o1);
        check(h == header(o2) && (h >> 62) & 1 == 1 && !other_headers.contains(&h))?;
        check(Obj(word(o1, 1)) == obj(sym) && Obj(word(o1, 2)) == mkfix(5) && Obj(word(o2, 2)) == mkfix(9))?;
        Ok(h)
    }
}
