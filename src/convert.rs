//! Plain data between Lisp and the encoding of `plain.rs`: Lisp objects to
//! bytes (`Encoder`) and bytes back to fresh Lisp objects (`decode`), on
//! either access path.
//!
//! Plain data (CONTRACT.md, "Plain data outside the Lisp heap"): nil, t,
//! symbols interned in the standard obarray, integers, floats, strings,
//! and conses and vectors of plain data, acyclic and nested at most
//! `plain::MAX_DEPTH` deep.  Everything else is refused with the object
//! that is not plain.
//!
//! Strings are kept as Emacs's own bytes with their multibyteness.  The
//! direct path reads them in place; the official path copies them as UTF-8,
//! which is Emacs's own form exactly for ASCII and for multibyte strings of
//! Unicode characters; other strings are read char by char
//! (`string-to-vector`).  Back in Lisp, a string that is not plain UTF-8 is
//! made from its chars (`string`), and Emacs 27, which lacks
//! `make_unibyte_string`, makes unibyte strings by encoding Latin-1.

use crate::direct::{self, Atom, Layout};
use crate::ffi::{Exit, LResult, Lx};
use crate::globals::g;
use crate::plain::{self, Encoder, Item};
use emacs::raw::emacs_value;
use once_cell::sync::OnceCell;

/// Whether the env's `make_string` makes a multibyte string of ASCII bytes
/// (28+: yes; 27: no), learned at load time.
static ASCII_MULTIBYTE: OnceCell<bool> = OnceCell::new();

/// Learn what `make_string` makes of ASCII (at load time).
pub fn init(lx: Lx) -> LResult<()> {
    if ASCII_MULTIBYTE.get().is_none() {
        let probe = lx.make_string(b"a")?;
        let mb = lx.funcall(g().f_multibyte_string_p.v(), &[probe])?;
        let _ = ASCII_MULTIBYTE.set(lx.is_not_nil(mb));
    }
    Ok(())
}

/// Why an object could not be encoded.
#[derive(Debug)]
pub enum Refused {
    /// An env call exited non-locally (a signal or throw is pending).
    Exit,
    /// OBJECT is not plain data (or nests too deep).
    NotPlain(emacs_value),
    /// OBJECT is a circular structure.
    Circular(emacs_value),
    /// A Rust allocation failed.
    Memory,
}

impl From<Exit> for Refused {
    fn from(_: Exit) -> Refused {
        Refused::Exit
    }
}

/// Turns Lisp objects into encodings, reusing its buffers between calls.
#[derive(Default)]
pub struct Encoding {
    /// Work stack: values still to encode, with the number of containers
    /// around them (a container at depth `MAX_DEPTH` would be one too many).
    work: Vec<(emacs_value, usize)>,
    /// The containers on the way down to the value being encoded, by depth.
    path: Vec<emacs_value>,
    /// One list's elements, gathered before its header is written.
    items: Vec<emacs_value>,
    text: Vec<u8>,
    limbs: Vec<u64>,
}

impl Encoding {
    /// Append the encoding of `v` to `out`.  On `Err`, `out` may hold a
    /// partial encoding: the caller truncates it.
    pub fn encode(&mut self, lx: Lx, v: emacs_value, out: &mut Vec<u8>) -> Result<(), Refused> {
        self.work.clear();
        self.path.clear();
        self.work.push((v, 0));
        while let Some((v, depth)) = self.work.pop() {
            let before = out.len();
            self.one(lx, v, depth, out)?;
            // Every item writes at least its tag; the encoder writes
            // nothing after a failed reservation.
            if out.len() == before {
                return Err(Refused::Memory);
            }
        }
        Ok(())
    }

    /// Whether `v` is plain data (no error for objects that are not).
    pub fn is_plain(&mut self, lx: Lx, v: emacs_value) -> LResult<bool> {
        match self.encode(lx, v, &mut Vec::new()) {
            Ok(()) => Ok(true),
            Err(Refused::Exit) => Err(Exit),
            Err(_) => Ok(false),
        }
    }

    /// Past the depth limit: a circular structure if `v` is one of the
    /// containers above it, else too deep to be plain data.
    fn too_deep(&self, lx: Lx, v: emacs_value) -> Refused {
        match self.path.iter().find(|&&p| lx.eq(p, v)) {
            Some(_) => Refused::Circular(self.path[0]),
            None => Refused::NotPlain(v),
        }
    }

    fn enter(&mut self, v: emacs_value, depth: usize) {
        self.path.truncate(depth);
        self.path.push(v);
    }

    /// Encode `v`'s atom or container header; push its elements.
    fn one(&mut self, lx: Lx, v: emacs_value, depth: usize, out: &mut Vec<u8>) -> Result<(), Refused> {
        let gl = g();
        if let Some(l) = direct::layout() {
            if let Some(done) = self.one_direct(l, v, out) {
                return done;
            }
        }
        let ty = lx.type_of(v)?;
        let mut e = Encoder::new(out);
        if lx.eq(ty, gl.integer.v()) {
            match lx.integer_i64(v) {
                Some(i) => e.int(i),
                None => {
                    let sign = lx.extract_big(v, &mut self.limbs)?;
                    let bytes: Vec<u8> = self.limbs.iter().flat_map(|l| l.to_le_bytes()).collect();
                    e.bignum(sign < 0, &bytes);
                }
            }
        } else if lx.eq(ty, gl.float.v()) {
            e.float(lx.extract_float(v)?.to_bits());
        } else if lx.eq(ty, gl.string.v()) {
            let mb = lx.is_not_nil(lx.funcall(gl.f_multibyte_string_p.v(), &[v])?);
            string_bytes(lx, v, mb, &mut self.text)?;
            e.string(&self.text, mb);
        } else if lx.eq(ty, gl.symbol.v()) {
            if !lx.is_not_nil(v) {
                e.nil();
            } else if lx.eq(v, gl.t.v()) {
                e.t();
            } else {
                self.symbol(lx, v, out)?;
            }
        } else if lx.eq(ty, g().cons.v()) {
            if depth >= plain::MAX_DEPTH {
                return Err(self.too_deep(lx, v));
            }
            self.enter(v, depth);
            self.list(lx, v, depth, out)?;
        } else if lx.eq(ty, g().vector.v()) {
            if depth >= plain::MAX_DEPTH {
                return Err(self.too_deep(lx, v));
            }
            let n = lx.vec_size(v)?;
            e.vector(n);
            self.enter(v, depth);
            for i in (0..n).rev() {
                let x = lx.vec_get(v, i)?;
                self.work.push((x, depth + 1));
            }
        } else {
            return Err(Refused::NotPlain(v));
        }
        Ok(())
    }

    /// The direct path's atoms: fixnums, floats, strings, nil and t read in
    /// place.  `None`: take the official way.
    #[inline]
    fn one_direct(&mut self, l: &Layout, v: emacs_value, out: &mut Vec<u8>) -> Option<Result<(), Refused>> {
        encode_atom_direct(l, v, out).then_some(Ok(()))
    }


    /// An interned symbol by name; uninterned ones are not plain data.
    fn symbol(&mut self, lx: Lx, v: emacs_value, out: &mut Vec<u8>) -> Result<(), Refused> {
        let found = lx.funcall(g().f_intern_soft.v(), &[v])?;
        if !lx.eq(found, v) {
            return Err(Refused::NotPlain(v));
        }
        let name = lx.funcall(g().f_symbol_name.v(), &[v])?;
        let mb = lx.is_not_nil(lx.funcall(g().f_multibyte_string_p.v(), &[name])?);
        string_bytes(lx, name, mb, &mut self.text)?;
        Encoder::new(out).symbol(&self.text, mb);
        Ok(())
    }

    /// A cons chain: its cars and tail gathered first (the header counts
    /// them), with Brent's cycle check on the cdrs.
    fn list(&mut self, lx: Lx, v: emacs_value, depth: usize, out: &mut Vec<u8>) -> Result<(), Refused> {
        let gl = g();
        let (f_car, f_cdr, cons) = (gl.f_car.v(), gl.f_cdr.v(), gl.cons.v());
        self.items.clear();
        let mut cell = v;
        let mut mark = v;
        let mut power = 1usize;
        let mut lam = 0usize;
        let tail = loop {
            self.items.push(lx.funcall(f_car, &[cell])?);
            cell = lx.funcall(f_cdr, &[cell])?;
            if !lx.is_not_nil(cell) || !lx.eq(lx.type_of(cell)?, cons) {
                break cell;
            }
            if lx.eq(cell, mark) {
                return Err(Refused::Circular(v));
            }
            lam += 1;
            if lam == power {
                mark = cell;
                power *= 2;
                lam = 0;
            }
            if self.items.len().is_multiple_of(4096) && lx.should_quit() {
                return Err(Refused::Exit);
            }
        };
        Encoder::new(out).list(self.items.len());
        // A tail is at its list's own depth (docs/file-format.md).
        self.work.push((tail, depth));
        for &x in self.items.iter().rev() {
            self.work.push((x, depth + 1));
        }
        Ok(())
    }
}

/// The plain-data item of `v` if it is an atom the direct path reads in
/// place (a fixnum, float, string or nil): what its encoding would read
/// as, without encoding it.
///
/// # Safety
/// `v` is a value of the current call; a string's bytes are borrowed from
/// Emacs: the caller drops the item before the next env call.
#[inline(always)]
pub unsafe fn atom_item_direct<'a>(l: &Layout, v: emacs_value) -> Option<Item<'a>> {
    // SAFETY: the direct path is on (a `Layout` exists: check `box`) and
    // `v` is a value of the current call (caller).
    let o = unsafe { direct::obj(v) };
    // SAFETY: as above; the caller bounds a string's life.
    Some(match unsafe { l.atom(o) } {
        Atom::Fixnum(i) => Item::Int(i),
        Atom::Float(bits) => Item::Float(bits),
        // `nil` is 0 (check `symbol`).
        Atom::Symbol if o.bits() == 0 => Item::Nil,
        Atom::Str(bytes, _, multibyte) => Item::Str { bytes, multibyte },
        _ => return None,
    })
}

/// Encode `v` into `out` if it is an atom the direct path reads in place
/// (`atom_item_direct`); false, writing nothing, otherwise.  A failed
/// reservation writes nothing either (the caller checks).
#[inline]
pub fn encode_atom_direct(l: &Layout, v: emacs_value, out: &mut Vec<u8>) -> bool {
    // SAFETY: `v` is a value of the current call (caller); the item is
    // used before any env call (none below).
    let Some(item) = (unsafe { atom_item_direct(l, v) }) else { return false };
    let mut e = Encoder::new(out);
    match item {
        Item::Int(i) => e.int(i),
        Item::Float(bits) => e.float(bits),
        Item::Str { bytes, multibyte } => e.string(bytes, multibyte),
        _ => e.nil(),
    }
    true
}

/// A fresh Lisp object for an atom's encoding without walking it (ints,
/// floats, nil, t, strings); `None` for symbols and containers.
#[inline]
pub fn decode_atom(lx: Lx, enc: &[u8]) -> Option<LResult<emacs_value>> {
    let gl = g();
    let r = match enc.first()? {
        &plain::TAG_NIL => Ok(gl.nil()),
        &plain::TAG_T => Ok(gl.t.v()),
        &plain::TAG_INT | &plain::TAG_FLOAT | &plain::TAG_STRING | &plain::TAG_STRING_MB => {
            let mut out = None;
            plain::walk(enc, |item| {
                out = Some(match item {
                    Item::Int(i) => lx.make_integer(i),
                    Item::Float(bits) => lx.make_float(f64::from_bits(bits)),
                    Item::Str { bytes, multibyte } => make_string(lx, bytes, multibyte, &mut Vec::new()),
                    _ => Ok(gl.nil()),
                })
            });
            out?
        }
        _ => return None,
    };
    Some(r)
}

/// The internal bytes of string `v` (multibyte or not) into `buf`.
fn string_bytes(lx: Lx, v: emacs_value, multibyte: bool, buf: &mut Vec<u8>) -> LResult<()> {
    buf.clear();
    // A copy succeeds for ASCII and for multibyte strings of Unicode chars,
    // and there its UTF-8 is the internal form.  Raw bytes (in either kind
    // of string) and chars beyond Unicode take the chars one by one.
    let copied = lx.copy_string(v, buf);
    if copied && (buf.is_ascii() || (multibyte && std::str::from_utf8(buf).is_ok() && !beyond_unicode(lx, v)?)) {
        return Ok(());
    }
    let chars = lx.funcall(g().f_string_to_vector.v(), &[v])?;
    let n = lx.vec_size(chars)?;
    buf.clear();
    for i in 0..n {
        let c = lx.extract_integer(lx.vec_get(chars, i)?)?;
        if multibyte {
            push_char(buf, c as u32);
        } else {
            buf.push(c as u8);
        }
    }
    Ok(())
}

/// Append char `c`'s internal multibyte form (Emacs's `CHAR_STRING`).
fn push_char(out: &mut Vec<u8>, c: u32) {
    let cont = |shift: u32| 0x80 | ((c >> shift) & 0x3F) as u8;
    match c {
        0..=0x7F => out.push(c as u8),
        0x80..=0x7FF => out.extend([0xC0 | (c >> 6) as u8, cont(0)]),
        0x800..=0xFFFF => out.extend([0xE0 | (c >> 12) as u8, cont(6), cont(0)]),
        0x1_0000..=0x1F_FFFF => out.extend([0xF0 | (c >> 18) as u8, cont(12), cont(6), cont(0)]),
        0x20_0000..=0x3F_FF7F => out.extend([0xF8, cont(18), cont(12), cont(6), cont(0)]),
        // A raw byte B (#x3FFF80..#x3FFFFF): two bytes, C0 or C1 then one.
        _ => {
            let b = (c - 0x3F_FF00) as u8;
            out.extend([0xC0 | ((b >> 6) & 1), 0x80 | (b & 0x3F)]);
        }
    }
}

/// The chars of a valid internal multibyte form (the inverse of `push_char`).
fn chars(bytes: &[u8]) -> impl Iterator<Item = u32> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        let lead = *bytes.get(i)?;
        let (len, init) = match lead {
            0..=0x7F => (1, lead as u32),
            0xC0 | 0xC1 => {
                let b = 0x80 | ((lead as u32 & 1) << 6) | (bytes.get(i + 1).copied().unwrap_or(0) as u32 & 0x3F);
                i += 2;
                return Some(0x3F_FF00 + b);
            }
            0xC2..=0xDF => (2, lead as u32 & 0x1F),
            0xE0..=0xEF => (3, lead as u32 & 0x0F),
            0xF0..=0xF7 => (4, lead as u32 & 0x07),
            _ => (5, 0),
        };
        let c = bytes.get(i + 1..i + len).unwrap_or(&[]).iter().fold(init, |c, &b| (c << 6) | (b as u32 & 0x3F));
        i += len;
        Some(c)
    })
}

/// Whether multibyte `v` holds a raw byte or a char beyond Unicode.
fn beyond_unicode(lx: Lx, v: emacs_value) -> LResult<bool> {
    let gl = g();
    let m = lx.funcall(gl.f_string_match_p.v(), &[gl.re_beyond_unicode.v(), v])?;
    Ok(lx.is_not_nil(m))
}

/// A fresh Lisp object from one validated encoding.
pub fn decode(lx: Lx, enc: &[u8]) -> LResult<emacs_value> {
    Decoding::default().decode(lx, enc)
}

/// Builds Lisp objects from encodings, reusing its buffers.
#[derive(Default)]
pub struct Decoding {
    /// Open containers: (is a list, elements still expected, start in `vals`).
    frames: Vec<(bool, usize, usize)>,
    vals: Vec<emacs_value>,
    text: Vec<u8>,
}

impl Decoding {
    pub fn decode(&mut self, lx: Lx, enc: &[u8]) -> LResult<emacs_value> {
        self.frames.clear();
        self.vals.clear();
        let mut failed = false;
        plain::walk(enc, |item| {
            if failed {
                return;
            }
            if self.item(lx, item).is_err() {
                failed = true;
            }
        });
        if failed {
            return Err(Exit);
        }
        debug_assert_eq!(self.vals.len(), 1);
        Ok(self.vals.pop().unwrap_or(g().nil()))
    }

    fn item(&mut self, lx: Lx, item: Item<'_>) -> LResult<()> {
        let gl = g();
        let v = match item {
            Item::Nil => gl.nil(),
            Item::T => gl.t.v(),
            Item::Int(i) => lx.make_integer(i)?,
            Item::Bignum { negative, magnitude_le } => {
                let limbs: Vec<u64> = magnitude_le
                    .chunks(8)
                    .map(|c| {
                        let mut w = [0u8; 8];
                        w[..c.len()].copy_from_slice(c);
                        u64::from_le_bytes(w)
                    })
                    .collect();
                lx.make_big(if negative { -1 } else { 1 }, &limbs)?
            }
            Item::Float(bits) => lx.make_float(f64::from_bits(bits))?,
            Item::Str { bytes, multibyte } => make_string(lx, bytes, multibyte, &mut self.text)?,
            Item::Symbol { name, multibyte } => {
                let n = make_string(lx, name, multibyte, &mut self.text)?;
                lx.funcall(g().f_intern.v(), &[n])?
            }
            Item::List(n) => {
                self.frames.push((true, n + 1, self.vals.len()));
                return Ok(());
            }
            Item::Vector(n) => {
                if n > 0 {
                    self.frames.push((false, n, self.vals.len()));
                    return Ok(());
                }
                lx.funcall(g().f_vector.v(), &[])?
            }
        };
        self.push(lx, v)
    }

    /// Add a finished value to the innermost open container, closing every
    /// container it completes.
    fn push(&mut self, lx: Lx, mut v: emacs_value) -> LResult<()> {
        loop {
            self.vals.push(v);
            let Some(top) = self.frames.last_mut() else { return Ok(()) };
            top.1 -= 1;
            if top.1 > 0 {
                return Ok(());
            }
            let (is_list, _, start) = self.frames.pop().expect("a frame is open");
            let parts: Vec<emacs_value> = self.vals.drain(start..).collect();
            v = if is_list {
                let (tail, cars) = parts.split_last().expect("a list has a tail");
                let list = lx.funcall(g().f_list.v(), cars)?;
                if lx.is_not_nil(*tail) {
                    lx.funcall(g().f_nconc.v(), &[list, *tail])?
                } else {
                    list
                }
            } else {
                lx.funcall(g().f_vector.v(), &parts)?
            };
        }
    }
}

/// A Lisp string with these internal `bytes` and multibyteness.
fn make_string(lx: Lx, bytes: &[u8], multibyte: bool, scratch: &mut Vec<u8>) -> LResult<emacs_value> {
    let sy = g();
    if !multibyte {
        if lx.has_make_unibyte() {
            return lx.make_unibyte_string(bytes);
        }
        // Emacs 27: UTF-8 of the bytes as Latin-1 chars, encoded back.
        scratch.clear();
        for &b in bytes {
            let mut buf = [0u8; 4];
            scratch.extend_from_slice((b as char).encode_utf8(&mut buf).as_bytes());
        }
        let m = lx.make_string(scratch)?;
        return lx.funcall(sy.f_encode_coding_string.v(), &[m, sy.iso_latin_1_unix.v()]);
    }
    if bytes.is_empty() || plain::utf8_exact(bytes) {
        let m = lx.make_string(bytes)?;
        if bytes.is_ascii() && ASCII_MULTIBYTE.get() == Some(&false) {
            return lx.funcall(sy.f_string_to_multibyte.v(), &[m]);
        }
        return Ok(m);
    }
    // Raw bytes or chars beyond Unicode: made from their chars.
    let mut args = Vec::new();
    for c in chars(bytes) {
        args.push(lx.make_integer(c as i64)?);
    }
    lx.funcall(sy.f_string.v(), &args)
}
