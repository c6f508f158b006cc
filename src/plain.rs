//! The plain-data encoding (pure Rust, no Emacs types): how a key or value
//! of a native table is held in memory and how it is written in a file.
//! docs/file-format.md is the reference; this module owns the encoder, the
//! validator (every canonical-form rule), the allocation-free walk of a
//! validated value, and `equal`/hashing on encodings.
//!
//! Invariant: every function here except `validate`, `valid_multibyte`,
//! `utf8_exact` and `char_count` takes bytes that `validate` accepted (or
//! that `Encoder` wrote), each slice exactly one value; on anything else
//! they may panic (slice bounds) but never read out of bounds.

use crate::hash::{hash_bytes, hash_u64};
use crate::table::AllocError;
use std::fmt;

/// Lists and vectors nest at most this deep (docs/file-format.md, "Depth").
pub const MAX_DEPTH: usize = 10_000;
/// The fixnum range of 64-bit Emacs, fixed on every platform.
pub const FIXNUM_MIN: i64 = -(1 << 61);
pub const FIXNUM_MAX: i64 = (1 << 61) - 1;

pub const TAG_NIL: u8 = 0x00;
pub const TAG_T: u8 = 0x01;
pub const TAG_SYMBOL: u8 = 0x02;
pub const TAG_SYMBOL_MB: u8 = 0x03;
pub const TAG_INT: u8 = 0x04;
pub const TAG_BIGNUM: u8 = 0x05;
pub const TAG_FLOAT: u8 = 0x06;
pub const TAG_STRING: u8 = 0x07;
pub const TAG_STRING_MB: u8 = 0x08;
pub const TAG_LIST: u8 = 0x09;
pub const TAG_VECTOR: u8 = 0x0A;

// ---------------------------------------------------------------------------
// Encoding

/// Writes canonical encodings at the end of a byte vector.  The caller
/// gives the structure (a `list` or `vector` header, then its parts) and is
/// trusted for it: a list's tail is not a list, nesting stays within
/// `MAX_DEPTH`.  Atoms are always written in canonical form.
///
/// Growing the vector is fallible: after a failed reservation nothing more
/// is written and `result` says `AllocError` (the bytes are then unusable).
pub struct Encoder<'a> {
    out: &'a mut Vec<u8>,
    failed: bool,
}

impl<'a> Encoder<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Encoder { out, failed: false }
    }

    /// `Err` when a reservation failed: the output is incomplete.
    pub fn result(&self) -> Result<(), AllocError> {
        if self.failed {
            Err(AllocError)
        } else {
            Ok(())
        }
    }

    #[inline]
    fn room(&mut self, n: usize) -> bool {
        if !self.failed && self.out.try_reserve(n).is_err() {
            self.failed = true;
        }
        !self.failed
    }

    #[inline]
    fn head(&mut self, tag: u8, v: u64) {
        if self.room(11) {
            self.out.push(tag);
            put_varint(self.out, v);
        }
    }

    fn payload(&mut self, tag: u8, bytes: &[u8]) {
        if self.room(11 + bytes.len()) {
            self.out.push(tag);
            put_varint(self.out, bytes.len() as u64);
            self.out.extend_from_slice(bytes);
        }
    }

    pub fn nil(&mut self) {
        if self.room(1) {
            self.out.push(TAG_NIL);
        }
    }

    pub fn t(&mut self) {
        if self.room(1) {
            self.out.push(TAG_T);
        }
    }

    /// A symbol by name: `nil` and `t` get their own tags; 0x03 only for a
    /// multibyte name with a non-ASCII char.
    pub fn symbol(&mut self, name: &[u8], multibyte: bool) {
        match name {
            b"nil" => self.nil(),
            b"t" => self.t(),
            _ => {
                let tag = if multibyte && !name.is_ascii() { TAG_SYMBOL_MB } else { TAG_SYMBOL };
                self.payload(tag, name)
            }
        }
    }

    /// An integer: 0x04 in the fixnum range, else the bignum form.
    pub fn int(&mut self, v: i64) {
        if (FIXNUM_MIN..=FIXNUM_MAX).contains(&v) {
            self.head(TAG_INT, zigzag(v));
        } else {
            self.bignum(v < 0, &v.unsigned_abs().to_le_bytes());
        }
    }

    /// An integer given as sign and magnitude (least significant byte
    /// first, high zero bytes allowed): written as 0x04 when it fits the
    /// fixnum range (zero of either sign is 0), else 0x05 with a minimal
    /// magnitude.
    pub fn bignum(&mut self, negative: bool, magnitude_le: &[u8]) {
        let n = magnitude_le.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        let mag = &magnitude_le[..n];
        if n <= 8 {
            let mut w = [0u8; 8];
            w[..n].copy_from_slice(mag);
            let m = u64::from_le_bytes(w);
            if m <= FIXNUM_MAX as u64 {
                return self.int(if negative { -(m as i64) } else { m as i64 });
            }
            if negative && m == FIXNUM_MIN.unsigned_abs() {
                return self.int(FIXNUM_MIN);
            }
        }
        if self.room(12 + n) {
            self.out.push(TAG_BIGNUM);
            self.out.push(negative as u8);
            put_varint(self.out, n as u64);
            self.out.extend_from_slice(mag);
        }
    }

    /// A float by its IEEE-754 bits.
    pub fn float(&mut self, bits: u64) {
        if self.room(9) {
            self.out.push(TAG_FLOAT);
            self.out.extend_from_slice(&bits.to_le_bytes());
        }
    }

    /// A string: Emacs's bytes and its multibyteness (kept even when all
    /// ASCII).
    pub fn string(&mut self, bytes: &[u8], multibyte: bool) {
        self.payload(if multibyte { TAG_STRING_MB } else { TAG_STRING }, bytes)
    }

    /// The header of a chain of `n >= 1` conses: the caller then encodes the
    /// `n` cars, then the tail (which must not be a list).
    pub fn list(&mut self, n: usize) {
        debug_assert!(n >= 1);
        self.head(TAG_LIST, n as u64);
    }

    /// The header of a vector: the caller then encodes the `n` elements.
    pub fn vector(&mut self, n: usize) {
        self.head(TAG_VECTOR, n as u64);
    }
}

#[inline]
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[inline]
fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
fn unzigzag(z: u64) -> i64 {
    (z >> 1) as i64 ^ -((z & 1) as i64)
}

// ---------------------------------------------------------------------------
// Reading validated values

/// The integer of the validated value that starts `enc` (more may follow)
/// if it is an INT; `None` for any other value.  (A read of one varint,
/// without a walk.)
#[inline]
pub fn int_of(enc: &[u8]) -> Option<i64> {
    match enc.first() {
        Some(&TAG_INT) => Some(unzigzag(varint(enc, 1).0)),
        _ => None,
    }
}

/// One decoded atom or container header, for walking an encoding without
/// allocation.  `List(n)` is followed (in a walk) by its `n` cars and then
/// its tail; `Vector(n)` by its `n` elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item<'a> {
    Nil,
    T,
    Symbol { name: &'a [u8], multibyte: bool },
    Int(i64),
    Bignum { negative: bool, magnitude_le: &'a [u8] },
    Float(u64),
    Str { bytes: &'a [u8], multibyte: bool },
    List(usize),
    Vector(usize),
}

impl Item<'_> {
    /// The tag that starts this item's encoding.
    pub fn tag(&self) -> u8 {
        match *self {
            Item::Nil => TAG_NIL,
            Item::T => TAG_T,
            Item::Symbol { multibyte: false, .. } => TAG_SYMBOL,
            Item::Symbol { multibyte: true, .. } => TAG_SYMBOL_MB,
            Item::Int(_) => TAG_INT,
            Item::Bignum { .. } => TAG_BIGNUM,
            Item::Float(_) => TAG_FLOAT,
            Item::Str { multibyte: false, .. } => TAG_STRING,
            Item::Str { multibyte: true, .. } => TAG_STRING_MB,
            Item::List(_) => TAG_LIST,
            Item::Vector(_) => TAG_VECTOR,
        }
    }
}

/// A varint of valid data at `p`: its value and the position after it.
#[inline]
fn varint(b: &[u8], mut p: usize) -> (u64, usize) {
    let mut v = 0u64;
    let mut shift = 0u32;
    loop {
        let byte = b[p];
        p += 1;
        v |= u64::from(byte & 0x7f).wrapping_shl(shift);
        if byte < 0x80 {
            return (v, p);
        }
        shift += 7;
    }
}

#[inline]
fn sized(b: &[u8], p: usize) -> (&[u8], usize) {
    let (n, p) = varint(b, p);
    let end = p + n as usize;
    (&b[p..end], end)
}

/// The item at `p` of valid data, and the position after its own bytes (a
/// container's elements follow).
#[inline]
fn read(b: &[u8], p: usize) -> (Item<'_>, usize) {
    let tag = b[p];
    let p = p + 1;
    match tag {
        TAG_NIL => (Item::Nil, p),
        TAG_T => (Item::T, p),
        TAG_SYMBOL | TAG_SYMBOL_MB => {
            let (name, q) = sized(b, p);
            (Item::Symbol { name, multibyte: tag == TAG_SYMBOL_MB }, q)
        }
        TAG_INT => {
            let (z, q) = varint(b, p);
            (Item::Int(unzigzag(z)), q)
        }
        TAG_BIGNUM => {
            let (magnitude_le, q) = sized(b, p + 1);
            (Item::Bignum { negative: b[p] == 1, magnitude_le }, q)
        }
        TAG_FLOAT => {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[p..p + 8]);
            (Item::Float(u64::from_le_bytes(w)), p + 8)
        }
        TAG_STRING | TAG_STRING_MB => {
            let (bytes, q) = sized(b, p);
            (Item::Str { bytes, multibyte: tag == TAG_STRING_MB }, q)
        }
        TAG_LIST => {
            let (n, q) = varint(b, p);
            (Item::List(n as usize), q)
        }
        TAG_VECTOR => {
            let (n, q) = varint(b, p);
            (Item::Vector(n as usize), q)
        }
        _ => panic!("plain: invalid tag {tag:#x} in validated data"),
    }
}

/// Pre-order walk of one validated value: `f` gets each item in order (a
/// `List(n)` then its `n` cars, each a whole subtree, then its tail; a
/// `Vector(n)` then its `n` elements).  Iterative: a count of the items
/// still due replaces the stack, so any depth is safe.  Returns the
/// value's length in bytes.
pub fn walk<'a>(bytes: &'a [u8], mut f: impl FnMut(Item<'a>)) -> usize {
    let mut pos = 0;
    let mut due = 1usize;
    while due > 0 {
        let (item, next) = read(bytes, pos);
        due -= 1;
        match item {
            Item::List(n) => due += n + 1,
            Item::Vector(n) => due += n,
            _ => {}
        }
        f(item);
        pos = next;
    }
    pos
}

/// The length in bytes of the validated value at the start of `bytes`.
#[inline]
pub fn value_len(bytes: &[u8]) -> usize {
    // Atoms at once (a native lookup measures its entry's key); only
    // containers walk, out of line.
    match bytes[0] {
        TAG_NIL | TAG_T => 1,
        TAG_INT => varint(bytes, 1).1,
        TAG_FLOAT => 9,
        TAG_STRING | TAG_STRING_MB | TAG_SYMBOL | TAG_SYMBOL_MB => sized(bytes, 1).1,
        TAG_BIGNUM => sized(bytes, 2).1,
        _ => container_len(bytes),
    }
}

#[inline(never)]
fn container_len(bytes: &[u8]) -> usize {
    walk(bytes, |_| {})
}

// ---------------------------------------------------------------------------
// Equality and hashing

/// `equal` of two validated values, each slice exactly one value: byte
/// equality, except that an all-ASCII multibyte string equals the unibyte
/// string with the same bytes, at any depth.
pub fn equal(a: &[u8], b: &[u8]) -> bool {
    if a == b {
        return true;
    }
    let (mut pa, mut pb, mut due) = (0, 0, 1usize);
    while due > 0 {
        let (ia, na) = read(a, pa);
        let (ib, nb) = read(b, pb);
        let same = match (ia, ib) {
            (Item::Str { bytes: x, multibyte: mx }, Item::Str { bytes: y, multibyte: my }) => {
                x == y && (mx == my || x.is_ascii())
            }
            _ => ia == ib,
        };
        if !same {
            return false;
        }
        due -= 1;
        match ia {
            Item::List(n) => due += n + 1,
            Item::Vector(n) => due += n,
            _ => {}
        }
        (pa, pb) = (na, nb);
    }
    true
}

/// `equal` of the validated value that starts `bytes` (more may follow)
/// and a lone atom given as its item (as `read` gives it: a canonical
/// integer, a symbol's multibyteness only for a non-ASCII name), without
/// encoding the atom or measuring the value: what a native table's probe
/// compares a key read in place with.  A container's header is never an
/// atom's item, so only the first item is read.
#[inline]
pub fn starts_with_atom(bytes: &[u8], atom: Item<'_>) -> bool {
    debug_assert!(!matches!(atom, Item::List(_) | Item::Vector(_)));
    match (read(bytes, 0).0, atom) {
        (Item::Str { bytes: x, multibyte: mx }, Item::Str { bytes: y, multibyte: my }) => {
            x == y && (mx == my || x.is_ascii())
        }
        (item, _) => item == atom,
    }
}

/// The hash `hash` gives the encoding of a lone atom (`starts_with_atom`'s).
#[inline]
pub fn hash_atom(atom: Item<'_>) -> u64 {
    debug_assert!(!matches!(atom, Item::List(_) | Item::Vector(_)));
    item_hash(atom)
}

// Seeds that keep items of different kinds with the same bits apart.
const SEED_NIL: u64 = 0x6a09_e667_f3bc_c908;
const SEED_T: u64 = 0xbb67_ae85_84ca_a73b;
const SEED_SYMBOL: u64 = 0x3c6e_f372_fe94_f82b;
const SEED_INT: u64 = 0xa54f_f53a_5f1d_36f1;
const SEED_BIGNUM: u64 = 0x510e_527f_ade6_82d1;
const SEED_FLOAT: u64 = 0x9b05_688c_2b3e_6c1f;
const SEED_STRING: u64 = 0x1f83_d9ab_fb41_bd6b;
const SEED_LIST: u64 = 0x5be0_cd19_137e_2179;
const SEED_VECTOR: u64 = 0xcbbb_9d5d_c105_9ed8;

/// The hash `hash` gives a string encoding with these bytes, unibyte or
/// multibyte (so the glue can hash a string without encoding it).
#[inline]
pub fn hash_string(bytes: &[u8]) -> u64 {
    hash_bytes(bytes) ^ SEED_STRING
}

/// The hash `hash` gives the encoding of the integer `v` (fixnum range).
#[inline]
pub fn hash_int(v: i64) -> u64 {
    hash_u64(v as u64, SEED_INT)
}

fn item_hash(item: Item<'_>) -> u64 {
    match item {
        Item::Nil => SEED_NIL,
        Item::T => SEED_T,
        Item::Symbol { name, .. } => hash_bytes(name) ^ SEED_SYMBOL,
        Item::Int(v) => hash_int(v),
        Item::Bignum { negative, magnitude_le } => hash_bytes(magnitude_le) ^ SEED_BIGNUM ^ negative as u64,
        Item::Float(bits) => hash_u64(bits, SEED_FLOAT),
        // Unibyte and multibyte strings hash alike: an all-ASCII multibyte
        // string must hash as its unibyte twin, and the others are rare.
        Item::Str { bytes, .. } => hash_string(bytes),
        Item::List(n) => hash_u64(n as u64, SEED_LIST),
        Item::Vector(n) => hash_u64(n as u64, SEED_VECTOR),
    }
}

/// Hash of one validated value, consistent with `equal`.  A lone atom
/// hashes as its item (a string in one pass over its bytes); a container
/// folds its items in walk order.
pub fn hash(enc: &[u8]) -> u64 {
    // A top-level string, the commonest key: its bytes at once.
    if let Some(&(TAG_STRING | TAG_STRING_MB)) = enc.first() {
        let (bytes, end) = sized(enc, 1);
        if end == enc.len() {
            return hash_string(bytes);
        }
    }
    let mut h = None;
    walk(enc, |item| {
        let x = item_hash(item);
        h = Some(match h {
            None => x,
            Some(h) => hash_u64(x, h),
        });
    });
    h.unwrap_or(SEED_NIL)
}

// ---------------------------------------------------------------------------
// Strings

/// Whether `bytes` are a valid Emacs internal multibyte sequence
/// (docs/file-format.md lists the forms).
pub fn valid_multibyte(bytes: &[u8]) -> bool {
    let n = bytes.len();
    let mut i = 0;
    while i < n {
        // Runs of ASCII a word at a time.
        while i + 8 <= n {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[i..i + 8]);
            if u64::from_le_bytes(w) & 0x8080_8080_8080_8080 != 0 {
                break;
            }
            i += 8;
        }
        if i >= n {
            break;
        }
        let c = bytes[i];
        if c < 0x80 {
            i += 1;
            continue;
        }
        let len = match c {
            0xC0..=0xDF => 2, // C0/C1: raw bytes; C2..DF: U+0080..U+07FF
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            0xF8 => 5,
            _ => return false,
        };
        let Some(rest) = bytes.get(i + 1..i + len) else {
            return false;
        };
        if !rest.iter().all(|&b| (0x80..=0xBF).contains(&b)) {
            return false;
        }
        let ok = match c {
            0xE0 => rest[0] >= 0xA0,
            0xF0 => rest[0] >= 0x90,
            0xF8 => (0x88..=0x8F).contains(&rest[0]) && (rest[0], rest[1], rest[2]) <= (0x8F, 0xBF, 0xBD),
            _ => true,
        };
        if !ok {
            return false;
        }
        i += len;
    }
    true
}

/// Whether multibyte `bytes` are plain UTF-8: no raw bytes, surrogates or
/// chars beyond U+10FFFF, so that the module API's `make_string` makes a
/// string with exactly these bytes.
pub fn utf8_exact(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok()
}

/// Emacs's `SCHARS` of a string with these bytes: the byte count when
/// unibyte, else the number of char-starting bytes (valid multibyte input).
pub fn char_count(bytes: &[u8], multibyte: bool) -> usize {
    if multibyte {
        bytes.iter().filter(|&&b| (b as i8) >= -0x40).count()
    } else {
        bytes.len()
    }
}

// ---------------------------------------------------------------------------
// Validation

/// A rejected encoding: what is wrong and where (a byte offset, of the
/// offending value's tag unless docs/file-format.md says otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrupt {
    pub what: &'static str,
    pub offset: usize,
}

impl fmt::Display for Corrupt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "corrupt: {} at offset {}", self.what, self.offset)
    }
}

impl std::error::Error for Corrupt {}

pub(crate) const INVALID_TAG: &str = "invalid tag";
pub(crate) const INVALID_VARINT: &str = "invalid varint";
pub(crate) const PAST_END: &str = "past end";
pub(crate) const BAD_INTEGER: &str = "non-canonical integer";
pub(crate) const BAD_SYMBOL: &str = "non-canonical symbol";
pub(crate) const BAD_MULTIBYTE: &str = "invalid multibyte";
pub(crate) const EMPTY_LIST: &str = "empty list";
pub(crate) const TAIL_LIST: &str = "list tail is a list";
pub(crate) const TOO_DEEP: &str = "nesting too deep";

/// A varint at `p`, checked: canonical, below 2^64, within `b`.
fn checked_varint(b: &[u8], mut p: usize) -> Result<(u64, usize), &'static str> {
    let mut v = 0u64;
    for i in 0..10 {
        let &byte = b.get(p).ok_or(PAST_END)?;
        p += 1;
        if i == 9 && byte > 1 {
            return Err(INVALID_VARINT);
        }
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            if byte == 0 && i > 0 {
                return Err(INVALID_VARINT);
            }
            return Ok((v, p));
        }
    }
    Err(INVALID_VARINT)
}

/// A varint length followed by that many bytes, all within `b`.
fn checked_sized(b: &[u8], p: usize) -> Result<(&[u8], usize), &'static str> {
    let (n, p) = checked_varint(b, p)?;
    if n > (b.len() - p) as u64 {
        return Err(PAST_END);
    }
    let end = p + n as usize;
    Ok((&b[p..end], end))
}

/// The item at `p` with every rule of its own bytes checked (not the
/// structure around it), and the position after its own bytes.
fn checked_read(b: &[u8], p: usize) -> Result<(Item<'_>, usize), &'static str> {
    let tag = *b.get(p).ok_or(PAST_END)?;
    let p = p + 1;
    Ok(match tag {
        TAG_NIL => (Item::Nil, p),
        TAG_T => (Item::T, p),
        TAG_SYMBOL => {
            let (name, q) = checked_sized(b, p)?;
            if name == b"nil" || name == b"t" {
                return Err(BAD_SYMBOL);
            }
            (Item::Symbol { name, multibyte: false }, q)
        }
        TAG_SYMBOL_MB => {
            let (name, q) = checked_sized(b, p)?;
            if name.is_ascii() {
                return Err(BAD_SYMBOL);
            }
            if !valid_multibyte(name) {
                return Err(BAD_MULTIBYTE);
            }
            (Item::Symbol { name, multibyte: true }, q)
        }
        TAG_INT => {
            let (z, q) = checked_varint(b, p)?;
            if z >= 1 << 62 {
                return Err(BAD_INTEGER);
            }
            (Item::Int(unzigzag(z)), q)
        }
        TAG_BIGNUM => {
            let &sign = b.get(p).ok_or(PAST_END)?;
            let (mag, q) = checked_sized(b, p + 1)?;
            if sign > 1 || mag.last().is_none_or(|&x| x == 0) {
                return Err(BAD_INTEGER);
            }
            if mag.len() <= 8 {
                let mut w = [0u8; 8];
                w[..mag.len()].copy_from_slice(mag);
                let m = u64::from_le_bytes(w);
                let limit = if sign == 1 { FIXNUM_MIN.unsigned_abs() } else { FIXNUM_MAX as u64 };
                if m <= limit {
                    return Err(BAD_INTEGER);
                }
            }
            (Item::Bignum { negative: sign == 1, magnitude_le: mag }, q)
        }
        TAG_FLOAT => {
            let w = b.get(p..p + 8).ok_or(PAST_END)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(w);
            (Item::Float(u64::from_le_bytes(a)), p + 8)
        }
        TAG_STRING => {
            let (bytes, q) = checked_sized(b, p)?;
            (Item::Str { bytes, multibyte: false }, q)
        }
        TAG_STRING_MB => {
            let (bytes, q) = checked_sized(b, p)?;
            if !valid_multibyte(bytes) {
                return Err(BAD_MULTIBYTE);
            }
            (Item::Str { bytes, multibyte: true }, q)
        }
        TAG_LIST => {
            let (n, q) = checked_varint(b, p)?;
            if n == 0 {
                return Err(EMPTY_LIST);
            }
            // n cars and a tail, each at least one byte.
            if n >= (b.len() - q) as u64 {
                return Err(PAST_END);
            }
            (Item::List(n as usize), q)
        }
        TAG_VECTOR => {
            let (n, q) = checked_varint(b, p)?;
            if n > (b.len() - q) as u64 {
                return Err(PAST_END);
            }
            (Item::Vector(n as usize), q)
        }
        _ => return Err(INVALID_TAG),
    })
}

/// Validate the value starting at `start` in `b` (which ends where the
/// value may end at the latest); offsets in errors are offsets in `b`.
/// Returns the position after the value.
///
/// Besides `b` itself, the only allocation is the stack of open lists and
/// vectors: one `u64` per container actually present (the cars or elements
/// still due, shifted left once, the low bit set for a list, whose tail
/// follows), grown exactly and never beyond `MAX_DEPTH` frames.
pub(crate) fn validate_at(b: &[u8], start: usize) -> Result<usize, Corrupt> {
    let mut stack: Vec<u64> = Vec::new();
    let mut pos = start;
    // The next item is a list's tail: it stays at the list's depth and is
    // not counted in the enclosing frame (the list took that place).
    let mut tail = false;
    loop {
        let at = pos;
        let fail = |what| Corrupt { what, offset: at };
        let (item, next) = checked_read(b, pos).map_err(fail)?;
        if tail && matches!(item, Item::List(_)) {
            return Err(fail(TAIL_LIST));
        }
        if !tail {
            if let Some(f) = stack.last_mut() {
                *f -= 2;
            }
        }
        tail = false;
        pos = next;
        if let Item::List(n) | Item::Vector(n) = item {
            if stack.len() >= MAX_DEPTH {
                return Err(fail(TOO_DEEP));
            }
            let list = matches!(item, Item::List(_));
            if n > 0 || list {
                if stack.len() == stack.capacity() {
                    let more = stack.len().clamp(4, MAX_DEPTH - stack.len());
                    stack.try_reserve_exact(more).map_err(|_| fail("out of memory"))?;
                }
                // n < b.len() (checked_read), so the shift cannot overflow.
                stack.push((n as u64) << 1 | u64::from(list));
            }
        }
        // Close the frames this item completed.
        loop {
            match stack.last() {
                None => {
                    if tail {
                        break;
                    }
                    return Ok(pos);
                }
                Some(&f) if f >> 1 > 0 => break,
                Some(&f) => {
                    stack.pop();
                    if f & 1 == 1 {
                        tail = true;
                        break;
                    }
                }
            }
        }
    }
}

/// Validate that `bytes` starts with exactly one canonical value (every
/// rule of docs/file-format.md, depth at most `MAX_DEPTH`, valid multibyte
/// strings); return its length.
pub fn validate(bytes: &[u8]) -> Result<usize, Corrupt> {
    validate_at(bytes, 0)
}

#[cfg(test)]
pub(crate) mod tests;
