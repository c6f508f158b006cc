//! `rhash-save` and `rhash-load`: tables to files and back, in the format
//! of `file.rs` (docs/file-format.md), keys and values encoded by
//! `convert.rs`.
//!
//! Saving encodes every entry first, in memory: a key or value that is not
//! plain data signals before the file is touched.  The bytes then go to a
//! temporary file that is flushed and renamed over FILE (`file::atomic_write`).
//! Loading reads and verifies the whole file before any table is made; a
//! `Loaded` file is handed to Lisp as a user-ptr, which rhash.el turns into a
//! table of the saved test and the chosen storage.

use crate::convert::{self, Encoding};
use crate::error;
use crate::ffi::{LResult, Lx};
use crate::file::{self, FileWriter, Loaded, ReadError, Storage, WriteError};
use crate::globals::g;
use crate::storage::Slots;
use crate::store::{quit_requested, Handle};
use emacs::raw::emacs_value;
use std::ffi::c_void;
use std::path::PathBuf;

/// The file name in FILE (a Lisp string, already expanded by rhash.el).
fn path_of(lx: Lx, file: emacs_value) -> LResult<PathBuf> {
    let mut buf = Vec::new();
    if !lx.copy_string(file, &mut buf) {
        return Err(error::not_string(lx, file));
    }
    #[cfg(unix)]
    let path = {
        use std::os::unix::ffi::OsStrExt;
        PathBuf::from(std::ffi::OsStr::from_bytes(&buf))
    };
    #[cfg(not(unix))]
    let path = PathBuf::from(String::from_utf8_lossy(&buf).into_owned());
    Ok(path)
}

/// `(rhash--save-vectors TEST STORAGE KEYS VALS FILE)`: write the entries
/// KEYS[i] -> VALS[i] (slots holding the free-slot marker skipped) as a table
/// of TEST and STORAGE (`lisp' or `native') to FILE.
pub fn save_vectors(lx: Lx, args: &[emacs_value]) -> LResult<emacs_value> {
    let [test, storage, keys, vals, file] = args else { return Ok(g().nil()) };
    let mut w = writer(lx, *test, *storage)?;
    let n = lx.vec_size(*keys)?;
    if lx.vec_size(*vals)? != n {
        return Err(error::lengths(lx, n, lx.vec_size(*vals)?));
    }
    let hole = g().hole.v();
    let mut enc = Encoding::default();
    let (ks, vs) = (Slots::new(lx, *keys)?, Slots::new(lx, *vals)?);
    for i in 0..n {
        if quit_requested(lx, i) {
            return Ok(g().nil());
        }
        let k = ks.at(lx, i)?;
        if lx.eq(k, hole) {
            continue;
        }
        let v = vs.at(lx, i)?;
        push_pair(lx, &mut w, &mut enc, k, v)?;
    }
    write(lx, w, *file)
}

/// Encode entry K -> V into the file being written; on a refusal (K or V
/// not plain data) the body is as it was and the error is signalled.
fn push_pair(lx: Lx, w: &mut FileWriter, enc: &mut Encoding, k: emacs_value, v: emacs_value) -> LResult<()> {
    let body = w.body();
    let mark = body.len();
    if let Err(r) = enc.encode(lx, k, body).and_then(|_| enc.encode(lx, v, body)) {
        w.body().truncate(mark);
        return Err(error::refused(lx, r));
    }
    w.entry_done();
    Ok(())
}

/// A writer for a table of TEST (a symbol) and STORAGE.
pub fn writer(lx: Lx, test: emacs_value, storage: emacs_value) -> LResult<FileWriter> {
    let mut name = Vec::new();
    let mut enc = Encoding::default();
    enc.encode(lx, test, &mut name).map_err(|r| error::refused(lx, r))?;
    let (tag, mb) = match name.first() {
        Some(&crate::plain::TAG_SYMBOL) => (true, false),
        Some(&crate::plain::TAG_SYMBOL_MB) => (true, true),
        _ => (false, false),
    };
    if !tag {
        return Err(error::not_symbol(lx, test));
    }
    let mut bytes = Vec::new();
    crate::plain::walk(&name, |item| {
        if let crate::plain::Item::Symbol { name, .. } = item {
            bytes.extend_from_slice(name);
        }
    });
    let native = lx.eq(storage, g().native.v());
    Ok(FileWriter::new(if native { Storage::Native } else { Storage::Lisp }, &bytes, mb))
}

/// Write the finished file atomically; FILE's expanded name back.
pub fn write(lx: Lx, w: FileWriter, file: emacs_value) -> LResult<emacs_value> {
    let path = path_of(lx, file)?;
    // Through a symbolic link to the file it names; never over a device,
    // directory or pipe (the rename would replace it).
    let path = std::fs::canonicalize(&path).unwrap_or(path);
    if std::fs::metadata(&path).is_ok_and(|m| !m.is_file()) {
        return Err(error::not_regular(lx, file));
    }
    let bytes = w.finish();
    match file::atomic_write(&path, &bytes, &mut || lx.should_quit()) {
        Ok(()) => Ok(file),
        Err(WriteError::Quit) => Ok(g().nil()),
        Err(WriteError::Io(e)) => Err(error::io(lx, true, &e, file)),
    }
}

/// The finalizer of a loaded file's user-ptr.
///
/// # Safety
/// Called by Emacs's GC with a pointer made by `load_file`.
unsafe extern "C" fn drop_loaded(p: *mut c_void) {
    if !p.is_null() {
        // SAFETY: `p` came from `Box::into_raw` in `load_file`, and Emacs
        // finalizes each user-ptr once.  Dropping a `Loaded` cannot panic
        // (it frees a byte vector).
        drop(unsafe { Box::from_raw(p as *mut Loaded) });
    }
}

/// The `Loaded` behind a user-ptr made by `load_file`.
fn loaded<'e>(lx: Lx<'e>, v: emacs_value) -> LResult<&'e Loaded> {
    match lx.user_ptr_with(v, drop_loaded) {
        // SAFETY: a user-ptr finalized by `drop_loaded` holds a live
        // `Box<Loaded>` until the GC finalizes it, which cannot happen
        // while `v` is an argument of the current call.
        Some(p) => Ok(unsafe { &*(p as *const Loaded) }),
        None => Err(error::not_loaded(lx, v)),
    }
}

/// `(rhash--load-file FILE)`: read and verify FILE; return
/// `(TEST STORAGE COUNT . LOADED)`.
pub fn load_file(lx: Lx, args: &[emacs_value]) -> LResult<emacs_value> {
    let [file] = args else { return Ok(g().nil()) };
    let path = path_of(lx, *file)?;
    let l = match file::read(&path) {
        Ok(l) => l,
        Err(ReadError::Missing) => return Err(error::file_missing(lx, *file)),
        Err(ReadError::Io(e)) => return Err(error::io(lx, false, &e, *file)),
        Err(ReadError::Format(why)) => return Err(error::file_format(lx, &why, *file)),
    };
    let (name, mb) = l.test();
    let mut enc = Vec::new();
    crate::plain::Encoder::new(&mut enc).symbol(name, mb);
    let test = convert::decode(lx, &enc)?;
    let storage = match l.storage() {
        Storage::Native => g().native.v(),
        Storage::Lisp => g().lisp.v(),
    };
    let count = lx.make_integer(l.count() as i64)?;
    let ptr = lx.make_user_ptr(drop_loaded, Box::into_raw(Box::new(l)) as *mut c_void)?;
    let tail = lx.funcall(g().f_cons.v(), &[count, ptr])?;
    lx.funcall(g().f_cons.v(), &[test, lx.funcall(g().f_cons.v(), &[storage, tail])?])
}

/// `(rhash--loaded-vectors LOADED)`: the entries of a loaded file as fresh
/// Lisp objects, `(KEYS . VALS)`, two vectors in the saved order.
pub fn loaded_vectors(lx: Lx, args: &[emacs_value]) -> LResult<emacs_value> {
    let [ptr] = args else { return Ok(g().nil()) };
    let l = loaded(lx, *ptr)?;
    let n = lx.make_integer(l.count() as i64)?;
    let gl = g();
    let keys = lx.funcall(gl.f_make_vector.v(), &[n, gl.nil()])?;
    let vals = lx.funcall(gl.f_make_vector.v(), &[n, gl.nil()])?;
    let (ks, vs) = (Slots::new(lx, keys)?, Slots::new(lx, vals)?);
    let mut dec = convert::Decoding::default();
    for (i, (k, v)) in l.entries().enumerate() {
        if quit_requested(lx, i) {
            return Ok(gl.nil());
        }
        ks.set(lx, i, dec.decode(lx, k)?)?;
        vs.set(lx, i, dec.decode(lx, v)?)?;
    }
    lx.funcall(gl.f_cons.v(), &[keys, vals])
}

/// `(rhash-plain-data-p OBJECT)`.
pub fn plain_data_p(lx: Lx, args: &[emacs_value]) -> LResult<emacs_value> {
    let [v] = args else { return Ok(g().nil()) };
    Ok(g().bool(Encoding::default().is_plain(lx, *v)?))
}


/// `(rhash--save-table TABLE FILE)`: write rhash TABLE (either storage) to
/// FILE.  A native table's encodings are copied as they are.
pub fn save_table(lx: Lx, args: &[emacs_value]) -> LResult<emacs_value> {
    let [table, file] = args else { return Ok(g().nil()) };
    let h = Handle::of(lx, *table)?;
    let storage = if h.is_native() { g().native.v() } else { g().lisp.v() };
    let mut w = writer(lx, h.test().name(), storage)?;
    let mut failed = false;
    if h.each_native(lx, |kv| {
        let body = w.body();
        failed |= body.try_reserve(kv.len()).is_err();
        if !failed {
            body.extend_from_slice(kv);
            w.entry_done();
        }
    })? {
        if failed {
            return Err(error::memory(lx));
        }
        return write(lx, w, *file);
    }
    let mut enc = Encoding::default();
    if !h.each_entry(lx, |_, k, v| push_pair(lx, &mut w, &mut enc, k.v, v).map(|()| true))? {
        return Ok(g().nil());
    }
    write(lx, w, *file)
}

/// `(rhash--load-native TABLE LOADED)`: put the entries of a loaded file
/// into native TABLE, copying their encodings (no Lisp object per entry).
pub fn load_native(lx: Lx, args: &[emacs_value]) -> LResult<emacs_value> {
    let [table, ptr] = args else { return Ok(g().nil()) };
    let h = Handle::of(lx, *table)?;
    let l = loaded(lx, *ptr)?;
    h.put_encoded(lx, *table, l.entries())?;
    Ok(*table)
}
