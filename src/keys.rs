//! How Lisp keys are hashed and compared, per test.
//!
//! Each key gets a *kind*; keys of different kinds are never equal under the
//! table's test, so the kind is part of the table's `meta` word and probes
//! skip other kinds without comparing.
//!
//! | kind  | keys                                          | hash            | compare            |
//! |-------|-----------------------------------------------|-----------------|--------------------|
//! | INT   | integers in i64 (eq: fixnums only)            | Rust, value     | Rust, value        |
//! | FLOAT | floats (eql, equal)                           | Rust, bits      | Rust, bits         |
//! | STR   | strings that copy out as UTF-8 (equal)        | Rust, all bytes | bytes, see below   |
//! | IDENT | symbols (equal), non-numbers (eql), all (eq)  | `sxhash-eq`     | `eq`               |
//! | PRED  | other (equal), big bignums (eql), user tests  | `sxhash-eql/-equal`, user hash | `eq`, then the predicate |
//!
//! Strings: equal strings copy out to identical bytes, so hashing the copy is
//! sound.  The converse holds only for ASCII (a unibyte "\303\251" and a
//! multibyte "é" copy out alike but are not `equal`), so a non-ASCII match on
//! bytes is confirmed with `equal`.

use crate::ffi::{LResult, Lx};
use crate::globals::g;
use crate::hash::{fmix64, hash_bytes, hash_u64};
use crate::table::meta;
use emacs::raw::emacs_value;
use std::cell::Cell;

pub const INT: u64 = 1;
pub const FLOAT: u64 = 2;
pub const STR: u64 = 3;
pub const IDENT: u64 = 4;
pub const PRED: u64 = 5;

const STR_ASCII: u64 = 1 << 63;
const FIXNUM_MAX: i64 = (1 << 61) - 1;
const FIXNUM_MIN: i64 = -(1 << 61);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestKind {
    Eq,
    Eql,
    Equal,
    User,
}

/// A classified lookup key: its `meta` (kind + hash) and payload, as an entry
/// for it would carry.
#[derive(Clone, Copy)]
pub struct Key {
    pub v: emacs_value,
    pub meta: u64,
    pub payload: u64,
}

impl Key {
    #[inline]
    pub fn kind(&self) -> u64 {
        crate::table::meta_kind(self.meta)
    }
}

#[inline]
fn hash_of_sxhash(lx: Lx, f: emacs_value, v: emacs_value) -> LResult<u64> {
    let h = lx.funcall(f, &[v])?;
    Ok(fmix64(lx.extract_integer(h)? as u64))
}

/// A table's guess at the kind of its next key: after `SPEC_MIN` keys of
/// one kind in a row, `classify_builtin` asks Emacs for that kind's value
/// directly and skips `type_of` (~15 ns).  A wrong guess costs a caught
/// signal (~400 ns) and resets the run, so the guess is wrong at most once
/// per `SPEC_MIN + 1` keys.  (Signals caught inside module calls never reach
/// `debug-on-signal`.)
#[derive(Default)]
pub struct Spec(Cell<u16>);

const SPEC_MIN: u16 = 32;

impl Spec {
    #[inline]
    fn guess(&self) -> Option<u64> {
        // A wrong guess signals; not while signals are visible.
        if crate::quiet::visible() {
            return None;
        }
        let s = self.0.get();
        ((s & 0xff) >= SPEC_MIN).then_some(u64::from(s >> 8))
    }

    #[inline]
    fn record(&self, kind: u64) {
        let s = self.0.get();
        let next = if u64::from(s >> 8) == kind { (s & 0xff).saturating_add(1).min(0xff) } else { 1 };
        self.0.set(((kind as u16) << 8) | next);
    }

    #[inline]
    fn reset(&self) {
        self.0.set(0);
    }
}

#[inline]
fn int_key(v: emacs_value, i: i64) -> Key {
    Key { v, meta: meta(INT, hash_u64(i as u64, INT)), payload: i as u64 }
}

#[inline]
fn str_key(v: emacs_value, buf: &[u8]) -> Key {
    let ascii = if buf.is_ascii() { STR_ASCII } else { 0 };
    Key { v, meta: meta(STR, hash_bytes(buf)), payload: buf.len() as u64 | ascii }
}

/// Classify `v` for a built-in test, guessing its kind from `spec` when
/// the table's recent keys allow.  `buf` receives a string key's bytes.
#[inline]
pub fn classify_builtin(lx: Lx, test: TestKind, v: emacs_value, buf: &mut Vec<u8>, spec: &Spec) -> LResult<Key> {
    match spec.guess() {
        Some(INT) => match lx.integer_i64(v) {
            Some(i) if test != TestKind::Eq || (FIXNUM_MIN..=FIXNUM_MAX).contains(&i) => return Ok(int_key(v, i)),
            // A bignum under `eq`: the typed path knows what to do.
            Some(_) => {}
            None => spec.reset(),
        },
        Some(STR) if test == TestKind::Equal => {
            if lx.copy_string(v, buf) {
                return Ok(str_key(v, buf));
            }
            spec.reset();
        }
        _ => {}
    }
    let key = classify_typed(lx, test, v, buf)?;
    spec.record(key.kind());
    Ok(key)
}

/// Classify `v` for a built-in test by its `type-of`.
#[inline]
fn classify_typed(lx: Lx, test: TestKind, v: emacs_value, buf: &mut Vec<u8>) -> LResult<Key> {
    let gl = g();
    let ty = lx.type_of(v)?;
    if lx.eq(ty, gl.integer.v()) {
        if let Some(i) = lx.integer_i64(v) {
            // Under `eq` a bignum is compared by identity, not value.
            if test != TestKind::Eq || (FIXNUM_MIN..=FIXNUM_MAX).contains(&i) {
                return Ok(int_key(v, i));
            }
        }
        return match test {
            TestKind::Eq => Ok(Key { v, meta: meta(IDENT, hash_of_sxhash(lx, gl.f_sxhash_eq.v(), v)?), payload: 0 }),
            _ => Ok(Key { v, meta: meta(PRED, hash_of_sxhash(lx, gl.f_sxhash_eql.v(), v)?), payload: 0 }),
        };
    }
    if test != TestKind::Eq && lx.eq(ty, gl.float.v()) {
        let bits = lx.extract_float(v)?.to_bits();
        return Ok(Key { v, meta: meta(FLOAT, hash_u64(bits, FLOAT)), payload: bits });
    }
    if test == TestKind::Equal {
        if lx.eq(ty, gl.string.v()) {
            if (!crate::quiet::visible() || encodes(lx, v)?) && lx.copy_string(v, buf) {
                return Ok(str_key(v, buf));
            }
            return Ok(Key { v, meta: meta(PRED, hash_of_sxhash(lx, gl.f_sxhash_equal.v(), v)?), payload: 0 });
        }
        if !lx.eq(ty, gl.symbol.v()) {
            return Ok(Key { v, meta: meta(PRED, hash_of_sxhash(lx, gl.f_sxhash_equal.v(), v)?), payload: 0 });
        }
    }
    Ok(Key { v, meta: meta(IDENT, hash_of_sxhash(lx, gl.f_sxhash_eq.v(), v)?), payload: 0 })
}

/// Whether string `v` copies out as UTF-8 (no raw bytes, no character
/// beyond Unicode; unibyte strings always do), asked without a signal:
/// `(or (not (multibyte-string-p V)) (not (string-match-p RE V)))`.
fn encodes(lx: Lx, v: emacs_value) -> LResult<bool> {
    let gl = g();
    let mb = lx.funcall(gl.f_multibyte_string_p.v(), &[v])?;
    if !lx.is_not_nil(mb) {
        return Ok(true);
    }
    let m = lx.funcall(gl.f_string_match_p.v(), &[gl.re_beyond_unicode.v(), v])?;
    Ok(!lx.is_not_nil(m))
}

/// Classify `v` for a user test whose hash function returned `h`: a fixnum
/// result is the hash, anything else is hashed with `sxhash-equal` (as
/// Emacs does).
pub fn classify_user_hash(lx: Lx, v: emacs_value, h: emacs_value) -> LResult<Key> {
    let gl = g();
    let ty = lx.type_of(h)?;
    let hv = if lx.eq(ty, gl.integer.v()) {
        match lx.integer_i64(h) {
            Some(i) => hash_u64(i as u64, PRED),
            None => hash_of_sxhash(lx, gl.f_sxhash_equal.v(), h)?,
        }
    } else {
        hash_of_sxhash(lx, gl.f_sxhash_equal.v(), h)?
    };
    Ok(Key { v, meta: meta(PRED, hv), payload: 0 })
}

/// Outcome of comparing a lookup key with one stored key in Rust alone.
pub enum Quick {
    Same,
    Differ,
    /// Needs the stored key object (and maybe a Lisp predicate).
    Lisp,
}

/// Compare on what the entry carries.  Entries and keys here have the same
/// `meta` already.
#[inline]
pub fn quick_compare(key: &Key, payload: u64) -> Quick {
    match key.kind() {
        INT | FLOAT => {
            if key.payload == payload {
                Quick::Same
            } else {
                Quick::Differ
            }
        }
        STR if key.payload != payload => Quick::Differ,
        _ => Quick::Lisp,
    }
}

/// Compare a string key (bytes in `kbuf`) with a stored string of the same
/// length and ASCII-ness.  `sbuf` is scratch space.
pub fn compare_str(lx: Lx, key: &Key, kbuf: &[u8], stored: emacs_value, sbuf: &mut Vec<u8>) -> LResult<bool> {
    if lx.eq(key.v, stored) {
        return Ok(true);
    }
    if !lx.copy_string(stored, sbuf) || sbuf.as_slice() != kbuf {
        return Ok(false);
    }
    if key.payload & STR_ASCII != 0 {
        return Ok(true);
    }
    let r = lx.funcall(g().f_equal.v(), &[key.v, stored])?;
    Ok(lx.is_not_nil(r))
}

/// `eq`, then (for PRED keys) the test's predicate, called as Emacs does:
/// `(PRED LOOKUP-KEY STORED-KEY)`.
#[inline]
pub fn compare_obj(lx: Lx, key: &Key, stored: emacs_value, pred: emacs_value) -> LResult<bool> {
    if lx.eq(key.v, stored) {
        return Ok(true);
    }
    if key.kind() != PRED {
        return Ok(false);
    }
    let r = lx.funcall(pred, &[key.v, stored])?;
    Ok(lx.is_not_nil(r))
}
