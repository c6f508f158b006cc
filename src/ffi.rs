//! A thin, fast layer over the raw module API (`emacs_env`).
//!
//! Every catching call is followed by one `non_local_exit_check`; when Emacs
//! reports a pending signal or throw we return `Err(Exit)` and leave the exit
//! pending, so it propagates to the Lisp caller when our function returns.
//! After an `Exit`, callers must not use the env again (Emacs would ignore the
//! calls anyway) and must return to Emacs promptly; RAII guards restore state.

use emacs::raw::{emacs_env, emacs_value};
use std::ffi::{c_void, CStr};
use std::marker::PhantomData;
use std::ptr;

/// A non-local exit (signal or throw) is pending in the env.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit;

pub type LResult<T> = Result<T, Exit>;

/// A value that outlives one module call: a global reference.  Not freed on
/// drop (that needs an env); see `release.rs`.
#[derive(Debug)]
pub struct Gref(emacs_value);

// SAFETY: a global reference is a pointer into Emacs's global-ref table, valid
// until freed, and only ever dereferenced by Emacs on the Lisp thread that
// calls us.  Moving the pointer between threads (into the release queue) does
// not touch it.
unsafe impl Send for Gref {}
// SAFETY: as `Send`: shared references to a `Gref` only copy the pointer.
unsafe impl Sync for Gref {}

impl Gref {
    #[inline]
    pub fn v(&self) -> emacs_value {
        self.0
    }
}

pub type Finalizer = unsafe extern "C" fn(*mut c_void);
/// A module function as Emacs calls it.
pub type RawFn = unsafe extern "C" fn(*mut emacs_env, isize, *mut emacs_value, *mut c_void) -> emacs_value;

/// The env of the module call in progress.  `'e` is that call: values and
/// handles found through an `Lx<'e>` cannot outlive it.
#[derive(Clone, Copy)]
pub struct Lx<'e> {
    env: *mut emacs_env,
    call: PhantomData<&'e ()>,
}

/// The env member `$name`, for use inside an `unsafe` block whose SAFETY
/// note refers here: `env` is the live env Emacs passed to the current module
/// function, and `emacs_module_init` (lib.rs) refuses an env smaller than
/// `MIN_ENV_SIZE`, Emacs 27's, so every member up to `make_big_integer` is
/// there and the Option is Some.  The struct type is Emacs 28's (the crate's
/// `emacs-28` bindings) but Emacs 27 allocates a shorter one: no member
/// added in 28 may be called without checking the env's `size` first.
macro_rules! f {
    ($s:expr, $name:ident) => {
        (*$s.env).$name.unwrap_unchecked()
    };
}

impl Lx<'_> {
    /// # Safety
    /// `env` must be the env of the module call in progress, and the `Lx`
    /// must not outlive that call.
    #[inline]
    pub unsafe fn new(env: *mut emacs_env) -> Self {
        Lx { env, call: PhantomData }
    }

    #[inline]
    fn check(&self) -> LResult<()> {
        // SAFETY: see `f!`.
        if unsafe { f!(self, non_local_exit_check)(self.env) } != 0 {
            Err(Exit)
        } else {
            Ok(())
        }
    }

    #[inline]
    fn val(&self, v: emacs_value) -> LResult<emacs_value> {
        self.check().map(|_| v)
    }

    /// Forget a pending exit we chose to handle ourselves.
    #[inline]
    pub fn clear_exit(&self) {
        // SAFETY: see `f!`.
        unsafe { f!(self, non_local_exit_clear)(self.env) }
    }

    #[inline]
    pub fn eq(&self, a: emacs_value, b: emacs_value) -> bool {
        // SAFETY: see `f!`; `eq` never exits non-locally.
        unsafe { f!(self, eq)(self.env, a, b) }
    }

    #[inline]
    pub fn is_not_nil(&self, v: emacs_value) -> bool {
        // SAFETY: see `f!`; `is_not_nil` never exits non-locally.
        unsafe { f!(self, is_not_nil)(self.env, v) }
    }

    #[inline]
    pub fn type_of(&self, v: emacs_value) -> LResult<emacs_value> {
        // SAFETY: see `f!`.
        let r = unsafe { f!(self, type_of)(self.env, v) };
        self.val(r)
    }

    #[inline]
    pub fn extract_integer(&self, v: emacs_value) -> LResult<i64> {
        // SAFETY: see `f!`.
        let r = unsafe { f!(self, extract_integer)(self.env, v) };
        self.check().map(|_| r)
    }

    /// The integer's value if it fits in i64; `None` (exit cleared) for a
    /// bignum outside that range.  `v` must be an integer.  While signals are
    /// visible (`quiet.rs`), first asks for the magnitude, which cannot
    /// signal, instead of letting `extract_integer` signal `overflow-error`.
    #[inline]
    pub fn integer_i64(&self, v: emacs_value) -> Option<i64> {
        if crate::quiet::visible() {
            return self.integer_i64_no_signal(v);
        }
        match self.extract_integer(v) {
            Ok(i) => Some(i),
            Err(Exit) => {
                self.clear_exit();
                None
            }
        }
    }

    /// `integer_i64` without any signal: the limb count, then (for one limb)
    /// the magnitude, through `extract_big_integer`.
    fn integer_i64_no_signal(&self, v: emacs_value) -> Option<i64> {
        let mut sign: i32 = 0;
        let mut count: isize = 0;
        // SAFETY: see `f!`; with a null magnitude Emacs only stores the sign
        // and the limb count.
        let ok = unsafe { f!(self, extract_big_integer)(self.env, v, &mut sign, &mut count, ptr::null_mut()) };
        if !ok || self.check().is_err() {
            self.clear_exit();
            return None;
        }
        if sign == 0 {
            return Some(0);
        }
        if count != 1 {
            return None;
        }
        // (`emacs_limb_t` is `usize` in the crate's bindings.)
        let mut limb: usize = 0;
        // SAFETY: see `f!`; `count` (1) limbs of room at `&mut limb`.
        let ok = unsafe { f!(self, extract_big_integer)(self.env, v, &mut sign, &mut count, &mut limb) };
        if !ok || self.check().is_err() {
            self.clear_exit();
            return None;
        }
        let mag = limb as u64;
        if sign > 0 {
            i64::try_from(mag).ok()
        } else if mag <= 1 << 63 {
            Some((mag as i64).wrapping_neg())
        } else {
            None
        }
    }

    pub fn make_float(&self, f: f64) -> LResult<emacs_value> {
        // SAFETY: see `f!`.
        let r = unsafe { f!(self, make_float)(self.env, f) };
        self.val(r)
    }

    #[inline]
    pub fn extract_float(&self, v: emacs_value) -> LResult<f64> {
        // SAFETY: see `f!`.
        let r = unsafe { f!(self, extract_float)(self.env, v) };
        self.check().map(|_| r)
    }

    #[inline]
    pub fn make_integer(&self, i: i64) -> LResult<emacs_value> {
        // SAFETY: see `f!`.
        let r = unsafe { f!(self, make_integer)(self.env, i) };
        self.val(r)
    }

    /// Copy the UTF-8 contents of string `v` into `buf` (replacing its
    /// contents, without the trailing NUL).  Returns false, with the exit
    /// cleared, when Emacs refuses the copy.
    pub fn copy_string(&self, v: emacs_value, buf: &mut Vec<u8>) -> bool {
        if crate::quiet::visible() && !self.reserve_for_string(v, buf) {
            return false;
        }
        let mut len: isize = buf.capacity() as isize;
        if len == 0 {
            buf.reserve(64);
            len = buf.capacity() as isize;
        }
        // SAFETY: `buf` has `len` bytes of capacity; Emacs writes at most
        // `len` bytes and reports the needed size in `len`.
        let ok = unsafe { f!(self, copy_string_contents)(self.env, v, buf.as_mut_ptr().cast(), &mut len) };
        if ok && self.check().is_ok() {
            // SAFETY: Emacs wrote `len` bytes including the final NUL.
            unsafe { buf.set_len(len as usize - 1) };
            return true;
        }
        self.clear_exit();
        // Buffer too small: Emacs put the needed size in `len`; ask again.
        let need = len as usize;
        if need <= buf.capacity() || buf.try_reserve(need).is_err() {
            return false;
        }
        let mut len = buf.capacity() as isize;
        // SAFETY: as above, with the larger buffer.
        let ok = unsafe { f!(self, copy_string_contents)(self.env, v, buf.as_mut_ptr().cast(), &mut len) };
        if ok && self.check().is_ok() {
            // SAFETY: as above.
            unsafe { buf.set_len(len as usize - 1) };
            true
        } else {
            self.clear_exit();
            false
        }
    }

    /// Make `buf` big enough for the UTF-8 contents of `v` by asking their
    /// size first (a null buffer: no `args-out-of-range` for a short one).
    /// False, exit cleared, if Emacs refuses (the caller checked that `v` is
    /// a string that encodes).
    fn reserve_for_string(&self, v: emacs_value, buf: &mut Vec<u8>) -> bool {
        let mut len: isize = 0;
        // SAFETY: see `f!`; with a null buffer Emacs only stores the size.
        let ok = unsafe { f!(self, copy_string_contents)(self.env, v, ptr::null_mut(), &mut len) };
        if !ok || self.check().is_err() {
            self.clear_exit();
            return false;
        }
        let need = len.max(1) as usize;
        need <= buf.capacity() || buf.try_reserve(need - buf.len()).is_ok()
    }

    #[inline]
    pub fn vec_get(&self, vec: emacs_value, i: usize) -> LResult<emacs_value> {
        // SAFETY: see `f!`; Emacs checks the index.
        let r = unsafe { f!(self, vec_get)(self.env, vec, i as isize) };
        self.val(r)
    }

    /// Length of vector `vec` (signals if it is not a vector).
    #[inline]
    pub fn vec_size(&self, vec: emacs_value) -> LResult<usize> {
        // SAFETY: see `f!`.
        let n = unsafe { f!(self, vec_size)(self.env, vec) };
        self.check().map(|_| usize::try_from(n).unwrap_or(0))
    }

    #[inline]
    pub fn vec_set(&self, vec: emacs_value, i: usize, v: emacs_value) -> LResult<()> {
        // SAFETY: see `f!`; Emacs checks the index.
        unsafe { f!(self, vec_set)(self.env, vec, i as isize, v) };
        self.check()
    }

    #[inline]
    pub fn funcall(&self, func: emacs_value, args: &[emacs_value]) -> LResult<emacs_value> {
        // SAFETY: see `f!`; `args` is a valid array of `args.len()` values
        // (Emacs only reads it).
        let r = unsafe { f!(self, funcall)(self.env, func, args.len() as isize, args.as_ptr() as *mut emacs_value) };
        self.val(r)
    }

    /// A bignum's (or any integer's) sign (-1, 0, 1) and magnitude as
    /// little-endian 64-bit limbs.  `v` must be an integer.
    pub fn extract_big(&self, v: emacs_value, limbs: &mut Vec<u64>) -> LResult<i32> {
        let mut sign: i32 = 0;
        let mut count: isize = 0;
        // SAFETY: see `f!`; with a null magnitude Emacs only stores the sign
        // and the limb count.
        let ok = unsafe { f!(self, extract_big_integer)(self.env, v, &mut sign, &mut count, ptr::null_mut()) };
        self.check()?;
        limbs.clear();
        if !ok || sign == 0 {
            return Ok(sign);
        }
        limbs.resize(count.max(0) as usize, 0);
        // SAFETY: see `f!`; `limbs` has room for `count` limbs (`emacs_limb_t`
        // is `usize`, 64 bits on the platforms the crate's bindings support).
        unsafe { f!(self, extract_big_integer)(self.env, v, &mut sign, &mut count, limbs.as_mut_ptr().cast()) };
        self.check().map(|_| sign)
    }

    /// The integer with `sign` (-1, 0, 1) and little-endian 64-bit `limbs`.
    pub fn make_big(&self, sign: i32, limbs: &[u64]) -> LResult<emacs_value> {
        // SAFETY: see `f!`; Emacs reads `limbs.len()` limbs.
        let r = unsafe { f!(self, make_big_integer)(self.env, sign, limbs.len() as isize, limbs.as_ptr().cast()) };
        self.val(r)
    }

    /// Whether the env has Emacs 28's `make_unibyte_string`.
    pub fn has_make_unibyte(&self) -> bool {
        // SAFETY: `size` is the env's first member in every version.
        let size = unsafe { (*self.env).size } as usize;
        size >= std::mem::offset_of!(emacs_env, make_unibyte_string) + std::mem::size_of::<usize>()
    }

    /// A unibyte Lisp string of `bytes`; Emacs 28+ only (`has_make_unibyte`).
    pub fn make_unibyte_string(&self, bytes: &[u8]) -> LResult<emacs_value> {
        debug_assert!(self.has_make_unibyte());
        // SAFETY: the env is Emacs 28's or later (`has_make_unibyte`, checked
        // by every caller), so the member is there; Emacs reads `bytes.len()`
        // bytes.
        let r = unsafe { (*self.env).make_unibyte_string.unwrap_unchecked()(self.env, bytes.as_ptr().cast(), bytes.len() as isize) };
        self.val(r)
    }

    /// A Lisp string from UTF-8 `bytes`.
    pub fn make_string(&self, bytes: &[u8]) -> LResult<emacs_value> {
        // SAFETY: see `f!`; Emacs reads `bytes.len()` bytes.
        let r = unsafe { f!(self, make_string)(self.env, bytes.as_ptr().cast(), bytes.len() as isize) };
        self.val(r)
    }

    pub fn intern(&self, name: &CStr) -> LResult<emacs_value> {
        // SAFETY: see `f!`; `name` is NUL-terminated.
        let r = unsafe { f!(self, intern)(self.env, name.as_ptr()) };
        self.val(r)
    }

    /// Signal `(SYMBOL . DATA)`; returns the `Exit` to propagate.
    pub fn signal(&self, symbol: emacs_value, data: emacs_value) -> Exit {
        // SAFETY: see `f!`.
        unsafe { f!(self, non_local_exit_signal)(self.env, symbol, data) };
        Exit
    }

    #[inline]
    pub fn should_quit(&self) -> bool {
        // SAFETY: see `f!`.
        unsafe { f!(self, should_quit)(self.env) }
    }

    pub fn make_global_ref(&self, v: emacs_value) -> LResult<Gref> {
        // SAFETY: see `f!`.
        let r = unsafe { f!(self, make_global_ref)(self.env, v) };
        self.check().map(|_| Gref(r))
    }

    /// Release a global reference (exactly once: `Gref` is not `Clone`).
    pub fn free_global_ref(&self, g: Gref) {
        // SAFETY: see `f!`; `g` is a live global ref that nobody else frees.
        unsafe { f!(self, free_global_ref)(self.env, g.0) };
        // Freeing cannot fail for a live ref; forget any exit all the same so
        // a drain never turns into a spurious error.
        self.clear_exit();
    }

    pub fn make_user_ptr(&self, fin: Finalizer, p: *mut c_void) -> LResult<emacs_value> {
        // SAFETY: see `f!`.
        let r = unsafe { f!(self, make_user_ptr)(self.env, Some(fin), p) };
        self.val(r)
    }

    /// The user-ptr payload of `v` if `v` is a user-ptr finalized by `fin`
    /// (that is, one of ours); `None`, with no exit pending, otherwise.
    #[inline]
    pub fn user_ptr_with(&self, v: emacs_value, fin: Finalizer) -> Option<*mut c_void> {
        // SAFETY: see `f!`.
        let got = unsafe { f!(self, get_user_finalizer)(self.env, v) };
        if self.check().is_err() {
            self.clear_exit();
            return None;
        }
        if got.map(|g| ptr::fn_addr_eq(g, fin)) != Some(true) {
            return None;
        }
        // SAFETY: see `f!`; `v` is a user-ptr (checked above), so this call
        // cannot fail and needs no exit check.
        Some(unsafe { f!(self, get_user_ptr)(self.env, v) })
    }

    /// # Safety
    /// `func` must be a valid module function for Emacs to call.
    pub unsafe fn make_function(
        &self,
        min: isize,
        max: isize,
        func: RawFn,
        doc: &CStr,
    ) -> LResult<emacs_value> {
        let r = f!(self, make_function)(self.env, min, max, Some(func), doc.as_ptr(), ptr::null_mut());
        self.val(r)
    }
}
