//! How Lisp keys are hashed and compared, per test.  The only module that
//! knows what a key kind means.
//!
//! Each key gets a *kind*; keys of different kinds are never equal under the
//! table's test, so the kind is part of the table's `meta` word and probes
//! skip other kinds without comparing.
//!
//! | kind  | keys                                          | hash            | compare            |
//! |-------|-----------------------------------------------|-----------------|--------------------|
//! | INT   | integers in i64 (eq: fixnums only)            | value           | payload            |
//! | FLOAT | floats (eql, equal)                           | bits            | payload (bits)     |
//! | STR   | strings (equal)                               | all bytes       | bytes, see below   |
//! | IDENT | symbols (equal), non-numbers (eql), all (eq)  | identity        | identity           |
//! | PRED  | other (equal), big bignums (eql), user tests  | `sxhash-eql/-equal`, user hash | `eq`, then the predicate |
//!
//! The access path (chosen once per session, `direct.rs`) decides how a kind
//! is hashed; tables never see keys classified by the other path.
//! - Direct: IDENT hashes the object's bits and carries them in the payload
//!   (`IDENT_BITS`), so comparing is a payload compare; a symbol with
//!   position hashes as its bare symbol while `symbols-with-pos-enabled`,
//!   and a payload mismatch against one asks `eq`.  STR hashes the string's
//!   internal bytes; the payload is the byte count and whether the string
//!   has as many characters as bytes, which with the bytes decides `equal`
//!   exactly (`direct::string`).
//! - Official: IDENT hashes with `sxhash-eq` and compares with `eq`.  STR
//!   hashes the UTF-8 copy (equal strings copy out alike); the copy of a
//!   unibyte "\303\251" equals that of a multibyte "é", so a non-ASCII byte
//!   match is confirmed with `equal`.  Strings that do not copy out take PRED.

use crate::direct::{self, Atom, Layout, Obj};
use crate::ffi::{LResult, Lx};
use crate::globals::g;
use crate::hash::{fmix64, hash_bytes, hash_u64};
use crate::release;
use crate::table::{meta, meta_kind};
use emacs::raw::emacs_value;
use std::cell::Cell;

pub const INT: u64 = 1;
pub const FLOAT: u64 = 2;
pub const STR: u64 = 3;
pub const IDENT: u64 = 4;
pub const PRED: u64 = 5;

/// STR payload flag: official path, the UTF-8 copy is ASCII; direct path,
/// the string has as many characters as bytes.
const STR_SINGLE: u64 = 1 << 63;
/// IDENT payload flag (direct path): the low bits are the key's object bits.
const IDENT_BITS: u64 = 1 << 63;
const FIXNUM_MAX: i64 = (1 << 61) - 1;
const FIXNUM_MIN: i64 = -(1 << 61);

/// What a key must be under a test whose equality a copy has to keep.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum KeyRule {
    /// Any plain data (`equal`).
    Any,
    /// Fixnums and symbols (`eq`).
    Eq,
    /// Fixnums, symbols, floats and bignums (`eql`).
    Eql,
}

impl KeyRule {
    /// The Lisp-storage test that compares as this rule's test does.
    fn lisp_test(self) -> Test {
        match self {
            KeyRule::Eq => Test::Eq,
            KeyRule::Eql => Test::Eql,
            KeyRule::Any => Test::Equal,
        }
    }
}

/// The top-level kind of an encoded value, for `KeyRule`.
pub fn keeps_identity(rule: KeyRule, enc: &[u8]) -> bool {
    enc.first().is_some_and(|&tag| keeps_identity_tag(rule, tag))
}

/// Whether a value whose encoding starts with TAG keeps its identity in a
/// copy under RULE.
#[inline]
pub fn keeps_identity_tag(rule: KeyRule, tag: u8) -> bool {
    use crate::plain::*;
    match rule {
        KeyRule::Any => true,
        KeyRule::Eq => matches!(tag, TAG_NIL | TAG_T | TAG_SYMBOL | TAG_SYMBOL_MB | TAG_INT),
        KeyRule::Eql => matches!(tag, TAG_NIL | TAG_T | TAG_SYMBOL | TAG_SYMBOL_MB | TAG_INT | TAG_BIGNUM | TAG_FLOAT),
    }
}

/// A table's test.  User tests are resolved when the table is made.
/// A native table's test says which keys keep their identity in a copy
/// (`KeyRule`): its storage follows from it (`store_kind::Store::for_test`).
pub enum Test {
    Eq,
    Eql,
    Equal,
    User(UserTest),
    Native(KeyRule),
}

/// A test from `define-hash-table-test`: its name, compare and hash functions.
pub struct UserTest {
    /// `[NAME, CMP, HASH]`.
    refs: release::Held<3>,
}

impl UserTest {
    #[inline]
    fn get(&self, i: usize) -> emacs_value {
        self.refs.get(i)
    }
}

impl Test {
    /// The test named `name` (`cmp` and `hash` are a user test's functions).
    pub fn new(lx: Lx, name: emacs_value, cmp: emacs_value, hash: emacs_value) -> LResult<Test> {
        Ok(match Test::builtin(lx, name) {
            Some(rule) => rule.lisp_test(),
            None => Test::User(UserTest { refs: release::Held::new(lx, [name, cmp, hash])? }),
        })
    }

    /// The test of a native table named `name` (`eq`, `eql` or `equal`);
    /// other tests signal `rhash-unsupported`.
    pub fn native(lx: Lx, name: emacs_value) -> LResult<Test> {
        match Test::builtin(lx, name) {
            Some(rule) => Ok(Test::Native(rule)),
            None => Err(crate::error::unsupported_key(lx, "Native tables take only the tests eq, eql and equal", name)),
        }
    }

    /// The built-in test named `name`, as the keys it keeps; `None` for
    /// any other name.
    fn builtin(lx: Lx, name: emacs_value) -> Option<KeyRule> {
        let gl = g();
        if lx.eq(name, gl.eq.v()) {
            Some(KeyRule::Eq)
        } else if lx.eq(name, gl.eql.v()) {
            Some(KeyRule::Eql)
        } else if lx.eq(name, gl.equal.v()) {
            Some(KeyRule::Any)
        } else {
            None
        }
    }

    /// The same test, for a copy of a table.
    pub fn try_clone(&self, lx: Lx) -> LResult<Test> {
        Ok(match self {
            Test::Eq => Test::Eq,
            Test::Eql => Test::Eql,
            Test::Equal => Test::Equal,
            Test::User(u) => Test::new(lx, u.get(0), u.get(1), u.get(2))?,
            Test::Native(r) => Test::Native(*r),
        })
    }

    /// The test's symbol, as `hash-table-test` returns it.
    pub fn name(&self) -> emacs_value {
        let gl = g();
        match self {
            Test::Eq => gl.eq.v(),
            Test::Eql => gl.eql.v(),
            Test::Equal | Test::Native(KeyRule::Any) => gl.equal.v(),
            Test::User(u) => u.get(0),
            Test::Native(KeyRule::Eq) => gl.eq.v(),
            Test::Native(KeyRule::Eql) => gl.eql.v(),
        }
    }

    /// The function PRED keys are compared with.
    fn predicate(&self) -> emacs_value {
        match self {
            Test::User(u) => u.get(1),
            Test::Eql => g().f_eql.v(),
            _ => g().f_equal.v(),
        }
    }

    /// Whether keys classified for `self` are classified alike for `other`,
    /// so cached hashes of one table probe the other (user tests: the same
    /// compare and hash functions; never a native table's, whose keys are
    /// looked up by their encoding).
    pub fn hashes_like(&self, lx: Lx, other: &Test) -> bool {
        match (self, other) {
            (Test::Eq, Test::Eq) | (Test::Eql, Test::Eql) | (Test::Equal, Test::Equal) => true,
            (Test::User(a), Test::User(b)) => lx.eq(a.get(1), b.get(1)) && lx.eq(a.get(2), b.get(2)),
            _ => false,
        }
    }

    /// What `classify` needs, read in a Lisp-free section.
    pub fn plan(&self) -> Plan {
        match self {
            Test::Eq => Plan::Eq,
            Test::Eql => Plan::Eql,
            Test::Equal => Plan::Equal,
            Test::User(u) => Plan::User(u.get(2)),
            Test::Native(r) => Plan::Native(*r),
        }
    }
}

/// A test as `classify` uses it (no borrow of the table).
#[derive(Clone, Copy)]
pub enum Plan {
    Eq,
    Eql,
    Equal,
    /// A user test's hash function.
    User(emacs_value),
    /// A native table's: keys encoded as plain data.
    Native(KeyRule),
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
        meta_kind(self.meta)
    }
}

#[inline]
fn hash_of_sxhash(lx: Lx, f: emacs_value, v: emacs_value) -> LResult<u64> {
    let h = lx.funcall(f, &[v])?;
    Ok(fmix64(lx.extract_integer(h)? as u64))
}

/// A table's guess at the kind of its next key (official path): after
/// `SPEC_MIN` keys of one kind in a row, `classify` asks Emacs for that
/// kind's value directly and skips `type_of` (~15 ns).  A wrong guess costs
/// a caught signal (~400 ns) and resets the run.
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

thread_local! {
    /// Scratch buffers for string keys on the official path (taken, not
    /// borrowed, so nested calls simply get fresh ones).  The direct path
    /// reads string bytes in place and never touches them (a thread-local
    /// costs a `__tls_get_addr` call in a shared library).
    static BUFS: Cell<(Vec<u8>, Vec<u8>)> = const { Cell::new((Vec::new(), Vec::new())) };
}

/// A classified key with, on the official path, the bytes of a string key.
pub struct Lookup {
    pub key: Key,
    kbuf: Vec<u8>,
    sbuf: Vec<u8>,
}

/// Scratch buffers bigger than this are freed after use rather than kept
/// for the next key: one huge key must not pin its size for good.
const KEEP_SCRATCH: usize = 64 * 1024;

impl Drop for Lookup {
    fn drop(&mut self) {
        if self.kbuf.capacity() > 0 || self.sbuf.capacity() > 0 {
            let mut k = std::mem::take(&mut self.kbuf);
            let mut s = std::mem::take(&mut self.sbuf);
            for b in [&mut k, &mut s] {
                if b.capacity() > KEEP_SCRATCH {
                    *b = Vec::new();
                }
            }
            BUFS.with(|b| b.set((k, s)));
        }
    }
}

impl Lookup {
    fn plain(key: Key) -> Lookup {
        Lookup { key, kbuf: Vec::new(), sbuf: Vec::new() }
    }

    /// A lookup for a key classified by a storage of its own (native).
    pub fn of_key(key: Key) -> Lookup {
        Lookup::plain(key)
    }

    /// A lookup for a key already classified for the same test (an entry of
    /// another table): nothing is hashed again; on the official path a
    /// string key's bytes are copied out only if a candidate needs them.
    pub fn cached(key: Key) -> Lookup {
        Lookup::plain(key)
    }
}

#[inline]
fn int_key(v: emacs_value, i: i64) -> Key {
    Key { v, meta: meta(INT, hash_u64(i as u64, INT)), payload: i as u64 }
}

#[inline]
fn str_key(v: emacs_value, bytes: &[u8], single: bool) -> Key {
    let flag = if single { STR_SINGLE } else { 0 };
    Key { v, meta: meta(STR, hash_bytes(bytes)), payload: bytes.len() as u64 | flag }
}

/// The key of `v`, object `o`, compared by identity.
#[inline]
fn ident_key(v: emacs_value, o: Obj) -> Key {
    Key { v, meta: meta(IDENT, hash_u64(o.bits(), IDENT)), payload: o.bits() | IDENT_BITS }
}

#[inline]
fn float_key(v: emacs_value, bits: u64) -> Key {
    Key { v, meta: meta(FLOAT, hash_u64(bits, FLOAT)), payload: bits }
}

/// Classify `v` (a live value of the current call) for a table with test
/// `plan`.  May run Lisp (hash functions, `sxhash-*`).
#[inline]
pub fn classify(lx: Lx, plan: Plan, v: emacs_value, spec: &Spec) -> LResult<Lookup> {
    if let Plan::User(hf) = plan {
        let r = lx.funcall(hf, &[v])?;
        return Ok(Lookup::plain(classify_user_hash(lx, v, r)?));
    }
    if let Some(l) = direct::layout() {
        if let Some(k) = classify_quick(l, plan, v) {
            return Ok(Lookup::plain(k));
        }
        // SAFETY: the direct path is on (check `box`) and `v` is a live
        // value of the current call.
        let o = unsafe { direct::obj(v) };
        if let Some(k) = classify_direct(lx, l, plan, v, o)? {
            return Ok(Lookup::plain(k));
        }
        // Bignums and (under `equal`) conses, vectors, markers...: the
        // typed path, which never yields IDENT or STR for these.
        return Ok(Lookup::plain(classify_typed(lx, plan, v, &mut Vec::new())?));
    }
    let (mut kbuf, sbuf) = if matches!(plan, Plan::Equal) { BUFS.with(|b| b.take()) } else { Default::default() };
    let key = classify_official(lx, plan, v, &mut kbuf, spec)?;
    Ok(Lookup { key, kbuf, sbuf })
}

/// The direct path's classification of keys whose hashing and comparison
/// need no Lisp at all (fixnums, floats, strings, symbols and other
/// identity keys that are not symbols with position); `None` otherwise.
#[inline(always)]
pub fn classify_quick(l: &Layout, plan: Plan, v: emacs_value) -> Option<Key> {
    if let Plan::User(_) | Plan::Native(_) = plan {
        return None;
    }
    // SAFETY: the direct path is on (`l` exists: check `box`) and `v` is a
    // live value of the current call; a string's bytes are hashed before
    // any call that may GC.
    let o = unsafe { direct::obj(v) };
    let equal = matches!(plan, Plan::Equal);
    // SAFETY: as above.
    match unsafe { l.atom(o) } {
        Atom::Fixnum(i) => Some(int_key(v, i)),
        // A symbol with position needs Lisp (`symbols-with-pos-enabled`).
        Atom::SymPos => None,
        _ if matches!(plan, Plan::Eq) => Some(ident_key(v, o)),
        Atom::Float(bits) => Some(float_key(v, bits)),
        Atom::Str(bytes, single, _) if equal => Some(str_key(v, bytes, single)),
        Atom::Symbol => Some(ident_key(v, o)),
        // `eql` compares bignums by value (Lisp hashes them); `equal`
        // compares conses, vectors, markers... by contents.
        Atom::Bignum => None,
        _ if equal => None,
        _ => Some(ident_key(v, o)),
    }
}

/// Whether `key` (classified on the direct path, perhaps by another table
/// with the same test) can be looked up by `same_quick` alone: numbers,
/// strings, and identity keys that are not symbols with position.
#[inline(always)]
pub fn is_quick(l: &Layout, key: &Key) -> bool {
    match key.kind() {
        INT | FLOAT | STR => true,
        // SAFETY: the direct path is on (`l`); `key.v` is a live value.
        IDENT => key.payload & IDENT_BITS != 0 && l.sympos_bare(unsafe { direct::obj(key.v) }).is_none(),
        _ => false,
    }
}

/// The direct path's comparison of a `classify_quick` key with a stored key
/// of the same `meta`: `Some(same)`, or `None` when Lisp must decide (the
/// stored key is a symbol with position).
#[inline(always)]
pub fn same_quick(l: &Layout, key: &Key, payload: u64, stored: Obj) -> Option<bool> {
    match key.kind() {
        INT | FLOAT => Some(key.payload == payload),
        STR if key.payload != payload => Some(false),
        STR => Some(same_string(key, stored)),
        _ if key.payload == payload => Some(true),
        _ => ident_differs(l, stored),
    }
}

/// `same_quick` for two strings of the same length and multibyteness
/// (inline: a call here spills the probe's state around it).
#[inline(always)]
fn same_string(key: &Key, stored: Obj) -> bool {
    // SAFETY: (both `string` calls) the slices live only for this
    // comparison, which calls no Lisp; `key.v` is a live value.
    match unsafe { (direct::string(direct::obj(key.v)), direct::string(stored)) } {
        (Some((a, _)), Some((b, _))) => same_bytes(a, b),
        _ => false,
    }
}

/// `a == b`, with strings of up to 32 bytes compared a word at a time
/// from both ends (the words may overlap) instead of through a `memcmp`
/// call: most keys are short, and the call costs more than the comparison.
#[inline(always)]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    // (The slices are 8 and 4 bytes long: the conversions cannot fail.)
    let word = |s: &[u8], i: usize| u64::from_le_bytes(s[i..i + 8].try_into().unwrap_or([0; 8]));
    let half = |s: &[u8], i: usize| u32::from_le_bytes(s[i..i + 4].try_into().unwrap_or([0; 4]));
    match n {
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        17..=32 => (0..2).all(|j| word(a, 8 * j) == word(b, 8 * j) && word(a, n - 8 - 8 * j) == word(b, n - 8 - 8 * j)),
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        _ => a == b,
    }
}

/// `same_quick` for identity keys of the same `meta` but other bits (a
/// hash collision): different, unless the stored key is a symbol with
/// position (then Lisp decides).
#[cold]
#[inline(never)]
fn ident_differs(l: &Layout, stored: Obj) -> Option<bool> {
    l.sympos_bare(stored).is_none().then_some(false)
}

/// The direct path's classification of the keys `classify_quick`
/// declines: a symbol with position is its bare symbol while
/// `symbols-with-pos-enabled` (then `eq`, `equal` and their hashes see
/// through it), otherwise an object of its own, which `eq` and `eql` hash
/// by identity and `equal` with `sxhash-equal`.  `None` sends `v` to the
/// typed path (that case, bignums, and under `equal` conses, vectors,
/// markers...: `type-of` says what they are).
#[inline]
fn classify_direct(lx: Lx, l: &Layout, plan: Plan, v: emacs_value, o: Obj) -> LResult<Option<Key>> {
    let Some(bare) = l.sympos_bare(o) else { return Ok(None) };
    let hashed = match sympos_enabled(lx)? {
        true => bare,
        false if matches!(plan, Plan::Equal) => return Ok(None),
        false => o,
    };
    Ok(Some(Key { v, meta: meta(IDENT, hash_u64(hashed.bits(), IDENT)), payload: o.bits() | IDENT_BITS }))
}

/// Whether `symbols-with-pos-enabled` is non-nil (only asked for symbols
/// with position, which only the byte-compiler makes).
#[cold]
fn sympos_enabled(lx: Lx) -> LResult<bool> {
    let gl = g();
    let r = lx.funcall(gl.f_symbol_value.v(), &[gl.symbols_with_pos_enabled.v()])?;
    Ok(lx.is_not_nil(r))
}

/// Classify `v` for a built-in test on the official path, guessing its kind
/// from `spec` when the table's recent keys allow.
#[inline]
fn classify_official(lx: Lx, plan: Plan, v: emacs_value, buf: &mut Vec<u8>, spec: &Spec) -> LResult<Key> {
    let eq = matches!(plan, Plan::Eq);
    match spec.guess() {
        Some(INT) => match lx.integer_i64(v) {
            Some(i) if !eq || (FIXNUM_MIN..=FIXNUM_MAX).contains(&i) => return Ok(int_key(v, i)),
            // A bignum under `eq`: the typed path knows what to do.
            Some(_) => {}
            None => spec.reset(),
        },
        Some(STR) if matches!(plan, Plan::Equal) => {
            if lx.copy_string(v, buf) {
                return Ok(str_key(v, buf, buf.is_ascii()));
            }
            spec.reset();
        }
        _ => {}
    }
    let key = classify_typed(lx, plan, v, buf)?;
    spec.record(key.kind());
    Ok(key)
}

/// Classify `v` for a built-in test by its `type-of`.
#[inline]
fn classify_typed(lx: Lx, plan: Plan, v: emacs_value, buf: &mut Vec<u8>) -> LResult<Key> {
    let gl = g();
    let ty = lx.type_of(v)?;
    let eq = matches!(plan, Plan::Eq);
    let equal = matches!(plan, Plan::Equal);
    if lx.eq(ty, gl.integer.v()) {
        if let Some(i) = lx.integer_i64(v) {
            // Under `eq` a bignum is compared by identity, not value.
            if !eq || (FIXNUM_MIN..=FIXNUM_MAX).contains(&i) {
                return Ok(int_key(v, i));
            }
        }
        return if eq {
            Ok(Key { v, meta: meta(IDENT, hash_of_sxhash(lx, gl.f_sxhash_eq.v(), v)?), payload: 0 })
        } else {
            Ok(Key { v, meta: meta(PRED, hash_of_sxhash(lx, gl.f_sxhash_eql.v(), v)?), payload: 0 })
        };
    }
    if !eq && lx.eq(ty, gl.float.v()) {
        return Ok(float_key(v, lx.extract_float(v)?.to_bits()));
    }
    if equal {
        if lx.eq(ty, gl.string.v()) {
            if (!crate::quiet::visible() || encodes(lx, v)?) && lx.copy_string(v, buf) {
                return Ok(str_key(v, buf, buf.is_ascii()));
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
fn classify_user_hash(lx: Lx, v: emacs_value, h: emacs_value) -> LResult<Key> {
    let gl = g();
    let fix = match direct::layout() {
        // SAFETY: direct path on (check `box`); `h` is a live value.
        Some(_) => direct::fixnum(unsafe { direct::obj(h) }),
        None => {
            let ty = lx.type_of(h)?;
            if lx.eq(ty, gl.integer.v()) {
                lx.integer_i64(h)
            } else {
                None
            }
        }
    };
    let hv = match fix {
        Some(i) => hash_u64(i as u64, PRED),
        None => hash_of_sxhash(lx, gl.f_sxhash_equal.v(), h)?,
    };
    Ok(Key { v, meta: meta(PRED, hv), payload: 0 })
}

/// A stored key: slot `i` of the keys vector `vec` (and its object, on the
/// direct path).
#[derive(Clone, Copy)]
pub struct Stored {
    pub vec: emacs_value,
    pub obj: Option<Obj>,
    pub i: usize,
}

impl Stored {
    fn value(&self, lx: Lx) -> LResult<emacs_value> {
        lx.vec_get(self.vec, self.i)
    }

    /// The stored key's object (direct path only).
    #[inline(always)]
    fn obj(&self) -> Option<Obj> {
        // SAFETY: `obj` is the live keys vector, longer than `i` (the table
        // keeps its vectors at least `slots` long).
        self.obj.map(|v| unsafe { direct::vref(v, self.i) })
    }
}

/// Whether the key of a lookup equals a stored key whose entry has the same
/// `meta` and carries `payload`.  May run Lisp (predicates): the caller holds
/// the table busy.
#[inline]
pub fn same(lx: Lx, test: &Test, l: &mut Lookup, payload: u64, stored: impl FnOnce() -> Stored) -> LResult<bool> {
    let key = &l.key;
    match key.kind() {
        INT | FLOAT => Ok(key.payload == payload),
        STR if key.payload != payload => Ok(false),
        STR => {
            let s = stored();
            match s.obj() {
                // SAFETY: (both `string` calls) direct path on; the slices
                // live only for this comparison, which calls no Lisp.
                Some(so) => Ok(unsafe {
                    direct::string(direct::obj(key.v)).map(|k| k.0) == direct::string(so).map(|k| k.0)
                }),
                None => {
                    let stored = s.value(lx)?;
                    if lx.eq(key.v, stored) {
                        return Ok(true);
                    }
                    // A cached key (`Lookup::cached`) copies out on demand.
                    if l.kbuf.len() as u64 != key.payload & !STR_SINGLE && !lx.copy_string(key.v, &mut l.kbuf) {
                        return Ok(false);
                    }
                    compare_copied(lx, key, &l.kbuf, stored, &mut l.sbuf)
                }
            }
        }
        IDENT if key.payload & IDENT_BITS != 0 => {
            if key.payload == payload {
                return Ok(true);
            }
            // Different objects: `eq` only if one is a symbol with position
            // (same bare-symbol hash) while `symbols-with-pos-enabled`.
            let l = direct::layout();
            let sympos = |o: Obj| l.is_some_and(|l| l.sympos_bare(o).is_some());
            // SAFETY: direct path on (the payload flag says so); `key.v` is live.
            let ko = unsafe { direct::obj(key.v) };
            let s = stored();
            if sympos(ko) || s.obj().is_some_and(sympos) {
                return Ok(lx.eq(key.v, s.value(lx)?));
            }
            Ok(false)
        }
        IDENT => Ok(lx.eq(key.v, stored().value(lx)?)),
        _ => {
            let s = stored();
            if let Some(so) = s.obj() {
                // SAFETY: direct path on; `key.v` is live.
                if unsafe { direct::obj(key.v) } == so {
                    return Ok(true);
                }
            }
            let sv = s.value(lx)?;
            if lx.eq(key.v, sv) {
                return Ok(true);
            }
            let r = lx.funcall(test.predicate(), &[key.v, sv])?;
            Ok(lx.is_not_nil(r))
        }
    }
}

/// Official path: compare a string key (UTF-8 bytes in `kbuf`) with a stored
/// string of the same length and ASCII-ness.  `sbuf` is scratch space.
fn compare_copied(lx: Lx, key: &Key, kbuf: &[u8], stored: emacs_value, sbuf: &mut Vec<u8>) -> LResult<bool> {
    if lx.eq(key.v, stored) {
        return Ok(true);
    }
    if !lx.copy_string(stored, sbuf) || sbuf.as_slice() != kbuf {
        return Ok(false);
    }
    if key.payload & STR_SINGLE != 0 {
        return Ok(true);
    }
    let r = lx.funcall(g().f_equal.v(), &[key.v, stored])?;
    Ok(lx.is_not_nil(r))
}

#[cfg(test)]
mod tests {
    use super::same_bytes;

    /// `same_bytes` agrees with `==` at every length it special-cases and
    /// beyond, for a difference at every position.
    #[test]
    fn same_bytes_is_equality() {
        for n in 0..48usize {
            let a: Vec<u8> = (0..n).map(|i| (i * 7 + 3) as u8).collect();
            assert!(same_bytes(&a, &a.clone()), "n={n}");
            for d in 0..n {
                let mut b = a.clone();
                b[d] ^= 0x20;
                assert!(!same_bytes(&a, &b), "n={n} d={d}");
            }
            let mut longer = a.clone();
            longer.push(0);
            assert!(!same_bytes(&a, &longer));
        }
    }
}
