//! Native storage: a table's keys and values as plain-data encodings in
//! Rust memory (`native::NativeStore`), holding no Lisp object and no
//! global reference, so the garbage collector never sees them (decision 8).
//!
//! Keys are classified by encoding them (`convert::Encoding`) into a
//! scratch buffer and hashing the encoding (`plain::hash`); candidates are
//! compared by `plain::equal` on the bytes, with no Lisp call.  A key that
//! is not plain data cannot be in the table: its lookup key matches no
//! entry (kind `ABSENT`), and putting it is refused by `admit` before
//! anything changes.  Values come out as fresh Lisp objects (`decode`).
//!
//! Invariants: place i holds entry i's key and value encodings exactly
//! while `RawTable` entry i is live, and then that entry's `meta` is
//! `meta(KEY, plain::hash(key bytes))`; `pending` holds the encodings
//! `admit` made, for the `set` that follows it in the same step.

use crate::convert::{self, Decoding, Encoding, Refused};
use crate::direct;
use crate::error::refused;
use crate::error;
use crate::ffi::{LResult, Lx};
use crate::keys::{keeps_identity, keeps_identity_tag, Key, KeyRule, Lookup};
use crate::native::NativeStore;
use crate::plain;
use crate::table::{meta, RawTable};
use emacs::raw::emacs_value;
use std::cell::RefCell;

/// The kind of a native entry's `meta` (kinds 1-5 are Lisp storage's).
const KEY: u64 = 6;
/// The kind of a lookup key that is not plain data: no entry has it.
const ABSENT: u64 = 7;
/// The payload of a key `classify_quick` read in place (no encoding in
/// `CLASSIFIED`; classification numbers count up from 1 and never reach it).
const IN_PLACE: u64 = u64::MAX;

thread_local! {
    /// The encoding of the key classified last (`classify`), for the probe
    /// that follows it (`find_classified`) and the insertion after that
    /// (`admit`), with its classification's number: a `Key`'s payload, so
    /// `admit` reuses the bytes only for the key they encode.
    static CLASSIFIED: RefCell<(u64, Vec<u8>)> = const { RefCell::new((0, Vec::new())) };
    /// Reused encoder and decoder state.
    static CODEC: RefCell<(Encoding, Decoding)> = RefCell::new(Default::default());
}

/// A native table's storage.
pub struct NativeStorage {
    rule: KeyRule,
    store: RefCell<NativeStore>,
    /// `(key, value)` encodings made by `admit` for the next `set`.
    pending: RefCell<(Vec<u8>, Vec<u8>)>,
}

impl NativeStorage {
    pub fn new(rule: KeyRule) -> NativeStorage {
        NativeStorage { rule, store: RefCell::new(NativeStore::new()), pending: RefCell::default() }
    }

    /// Classify KEY without Lisp when the direct path reads it in place (a
    /// fixnum, float, string or nil); `None` (declined) otherwise.  Nothing
    /// is encoded: the key's payload is `IN_PLACE`, and `find_classified`
    /// reads the key again and compares it as an atom (`plain::starts_with_atom`).
    #[inline]
    pub fn classify_quick(rule: KeyRule, key: emacs_value) -> Option<Key> {
        let l = direct::layout()?;
        // SAFETY: `key` is a value of the current call (callers); the item
        // is dropped below, before any env call.
        let atom = unsafe { convert::atom_item_direct(l, key) }?;
        let meta = if keeps_identity_tag(rule, atom.tag()) { meta(KEY, plain::hash_atom(atom)) } else { meta(ABSENT, 0) };
        Some(Key { v: key, meta, payload: IN_PLACE })
    }

    /// Classify KEY: its encoding goes to the scratch buffer for the probe.
    pub fn classify(lx: Lx, rule: KeyRule, key: emacs_value) -> LResult<Lookup> {
        let (k, n) = CLASSIFIED.with(|c| {
            let mut c = c.borrow_mut();
            let (n, buf) = &mut *c;
            buf.clear();
            *n += 1;
            let atom = direct::layout().is_some_and(|l| convert::encode_atom_direct(l, key, buf) && !buf.is_empty());
            let r = if atom { Ok(()) } else { encode(lx, key, buf) };
            let m = match r {
                Ok(()) if keeps_identity(rule, buf) => meta(KEY, plain::hash(buf)),
                Ok(()) | Err(Refused::NotPlain(_) | Refused::Circular(_)) => meta(ABSENT, 0),
                Err(Refused::Memory) => return Err(error::memory(lx)),
                Err(Refused::Exit) => return Err(crate::ffi::Exit),
            };
            Ok((m, *n))
        })?;
        Ok(Lookup::of_key(Key { v: key, meta: k, payload: n }))
    }

    /// The entry holding the key classified last, comparing encodings.
    pub fn find_classified(&self, raw: &RawTable, key: &Key) -> Option<(usize, usize)> {
        if crate::table::meta_kind(key.meta) != KEY {
            return None;
        }
        let store = self.store.borrow();
        if key.payload == IN_PLACE {
            // `classify_quick` read the key in place, so the direct path is on.
            let l = direct::layout()?;
            // SAFETY: `key.v` is the value `classify_quick` read, of the
            // current call, unchanged since (no env call between a
            // classification and its probe); the item lives only here.
            let atom = unsafe { convert::atom_item_direct(l, key.v) }?;
            if let plain::Item::Int(v) = atom {
                // The commonest key: its INT read straight off the record.
                return raw.find(key.meta, |i| plain::int_of(store.key_onward(i)) == Some(v));
            }
            return raw.find(key.meta, |i| plain::starts_with_atom(store.key_onward(i), atom));
        }
        CLASSIFIED.with(|c| {
            let c = c.borrow();
            // (`locate` probes right after classifying: no other key was
            // classified in between.)
            debug_assert_eq!(c.0, key.payload);
            raw.find(key.meta, |i| plain::equal(store.key(i), &c.1))
        })
    }

    /// Check and encode KEY and VALUE for the `set` that follows: errors
    /// here leave the table as it was.
    pub fn admit(&self, lx: Lx, key: &Key, value: emacs_value) -> LResult<()> {
        let mut p = self.pending.borrow_mut();
        let (k, v) = &mut *p;
        k.clear();
        v.clear();
        // The classification's bytes when they are still this key's.
        let reused = CLASSIFIED.with(|c| match c.try_borrow() {
            Ok(c) if c.0 == key.payload && crate::table::meta_kind(key.meta) == KEY => {
                k.extend_from_slice(&c.1);
                true
            }
            _ => false,
        });
        if !reused {
            encode(lx, key.v, k).map_err(|r| refused(lx, r))?;
        }
        let key = key.v;
        if !keeps_identity(self.rule, k) {
            let what = match self.rule {
                KeyRule::Eq => "A native `eq' table takes only fixnums and symbols as keys",
                _ => "A native `eql' table takes only numbers and symbols as keys",
            };
            return Err(error::unsupported_key(lx, what, key));
        }
        encode(lx, value, v).map_err(|r| refused(lx, r))
    }

    pub fn room(&self) -> usize {
        // The arena grows in Rust, without Lisp: never short of room.
        usize::MAX >> 8
    }

    pub fn capacity(&self, raw: &RawTable) -> usize {
        raw.capacity().max(raw.len())
    }

    pub fn heap_bytes(&self) -> usize {
        self.store.borrow().bytes()
    }

    pub fn key(&self, lx: Lx, i: usize) -> LResult<emacs_value> {
        self.decode_part(lx, |s| s.key(i))
    }

    /// A fresh object from the encoding `part` picks: an atom made at once,
    /// anything else from a copy of its bytes.
    fn decode_part(&self, lx: Lx, part: impl Fn(&NativeStore) -> &[u8]) -> LResult<emacs_value> {
        let store = self.store.borrow();
        if let Some(v) = convert::decode_atom(lx, part(&store)) {
            return v;
        }
        let bytes = part(&store).to_vec();
        drop(store);
        decode(lx, &bytes)
    }

    /// Entry `i`'s value, a fixnum written into `out` (a value box of this
    /// call) on the direct path, else a fresh object.
    #[inline]
    pub fn value_to(&self, lx: Lx, i: usize, out: emacs_value) -> LResult<emacs_value> {
        if let Some(o) = self.value_obj(i) {
            // SAFETY: `out` is a value box of this call (caller; check
            // `return`); a fixnum needs nothing to keep it.
            unsafe { direct::set_box(out, o) };
            return Ok(out);
        }
        self.value(lx, i)
    }

    /// Entry `i`'s value as a fixnum object on the direct path, when it is
    /// one; `None` otherwise.
    #[inline]
    pub fn value_obj(&self, i: usize) -> Option<direct::Obj> {
        direct::layout()?;
        let n = plain::int_of(self.store.borrow().value_onward(i))?;
        // An INT encoding is in the fixnum range (docs/file-format.md,
        // canonical form).
        Some(direct::make_fixnum(n))
    }

    pub fn value(&self, lx: Lx, i: usize) -> LResult<emacs_value> {
        self.decode_part(lx, |s| s.value(i))
    }

    /// Store the encodings `admit` made at place `i`.
    pub fn set(&self, lx: Lx, i: usize) -> LResult<()> {
        let p = self.pending.borrow();
        self.store.borrow_mut().set(i, &p.0, &p.1).map_err(|_| error::memory(lx))
    }

    pub fn set_value(&self, lx: Lx, i: usize, value: emacs_value) -> LResult<()> {
        let mut p = self.pending.borrow_mut();
        let v = &mut p.1;
        v.clear();
        encode(lx, value, v).map_err(|r| refused(lx, r))?;
        self.store.borrow_mut().set_value(i, v).map_err(|_| error::memory(lx))
    }

    pub fn free(&self, i: usize) {
        self.store.borrow_mut().remove(i);
    }

    pub fn clear(&self) {
        self.store.borrow_mut().clear();
    }

    /// A copy holding the live entries of `raw` at their places.
    pub fn try_clone(&self, raw: &RawTable) -> Option<NativeStorage> {
        let src = self.store.borrow();
        let mut dst = NativeStore::with_capacity(src.len(), src.live_bytes()).ok()?;
        // Places are numbered as in `raw`: free ones are made free again.
        for i in 0..raw.slots() {
            if src.is_live(i) && raw.entry(i).is_some_and(|e| e.is_live()) {
                dst.set(i, src.key(i), src.value(i)).ok()?;
            } else {
                dst.set(i, &[plain::TAG_NIL], &[plain::TAG_NIL]).ok()?;
                dst.remove(i);
            }
        }
        Some(NativeStorage { rule: self.rule, store: RefCell::new(dst), pending: RefCell::default() })
    }

    /// Renumber as `RawTable::compacted` did: new place j holds old entry
    /// `from[j]`.
    pub fn compact(&self, from: &[usize]) -> Result<(), crate::table::AllocError> {
        self.store.borrow_mut().compact(from)
    }

    /// The encodings of entries `entries` (key and value each), copied
    /// out, for decoding after the table's borrow ends.
    pub fn copy_out(&self, entries: impl Iterator<Item = usize>, cols: [bool; 2]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let s = self.store.borrow();
        entries
            .map(|i| {
                let k = if cols[0] { s.key(i).to_vec() } else { Vec::new() };
                let v = if cols[1] { s.value(i).to_vec() } else { Vec::new() };
                (k, v)
            })
            .collect()
    }

    /// Entry `i`'s key and value encodings, one after the other, as they
    /// are saved.
    pub fn with_entry<R>(&self, i: usize, f: impl FnOnce(&[u8]) -> R) -> R {
        f(self.store.borrow().entry_bytes(i))
    }

    /// Put encodings that are already valid and canonical (a loaded file's)
    /// at place `i`.
    pub fn set_encoded(&self, lx: Lx, i: usize, key: &[u8], value: &[u8]) -> LResult<()> {
        self.store.borrow_mut().set(i, key, value).map_err(|_| error::memory(lx))
    }

    /// The entry of `raw` whose key encoding is `key` (with `meta`).
    pub fn find_encoded(&self, raw: &RawTable, meta: u64, key: &[u8]) -> Option<usize> {
        let store = self.store.borrow();
        raw.find(meta, |i| plain::equal(store.key(i), key)).map(|(i, _)| i)
    }

    /// Replace entry `i`'s value by a valid encoding.
    pub fn set_value_encoded(&self, lx: Lx, i: usize, value: &[u8]) -> LResult<()> {
        self.store.borrow_mut().set_value(i, value).map_err(|_| error::memory(lx))
    }
}

/// The `meta` of an encoded key, as a native entry carries it.
pub fn meta_of(key: &[u8]) -> u64 {
    meta(KEY, plain::hash(key))
}

/// Encode `v` with the shared encoder (a nested call gets a fresh one).
fn encode(lx: Lx, v: emacs_value, out: &mut Vec<u8>) -> Result<(), Refused> {
    // An atom the direct path reads in place needs no encoder state.
    let start = out.len();
    if direct::layout().is_some_and(|l| convert::encode_atom_direct(l, v, out)) {
        // (A failed reservation wrote nothing: the encoder reports it.)
        if out.len() > start {
            return Ok(());
        }
    }
    let taken = CODEC.with(|c| c.try_borrow_mut().map(|mut c| std::mem::take(&mut c.0)).ok());
    let mut enc = taken.unwrap_or_default();
    let r = enc.encode(lx, v, out);
    CODEC.with(|c| {
        if let Ok(mut c) = c.try_borrow_mut() {
            c.0 = enc;
        }
    });
    r
}

/// A fresh Lisp object from an encoding.
pub fn decode(lx: Lx, bytes: &[u8]) -> LResult<emacs_value> {
    let taken = CODEC.with(|c| c.try_borrow_mut().map(|mut c| std::mem::take(&mut c.1)).ok());
    let mut dec = taken.unwrap_or_default();
    let r = dec.decode(lx, bytes);
    CODEC.with(|c| {
        if let Ok(mut c) = c.try_borrow_mut() {
            c.1 = dec;
        }
    });
    r
}

