//! The table functions: `rhash-get`, `rhash-put` and the other
//! one-table operations, and the internal entries rhash.el uses.  Each
//! parses its arguments, asks `store.rs`, and returns; `defun.rs` declares
//! them to Emacs.

use crate::ffi::{LResult, Lx};
use crate::globals::g;
use crate::keys::Test;
use crate::release;
use crate::store::{self, int, Handle, KeyArg, Table};
use emacs::raw::emacs_value;

pub fn make(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    let gl = g();
    let test = match a.get(4) {
        Some(&s) if lx.eq(s, gl.native.v()) => Test::native(lx, a[0])?,
        _ => Test::new(lx, a[0], a[1], a[2])?,
    };
    let hint = usize::try_from(lx.extract_integer(a[3])?).unwrap_or(0);
    store::make(lx, test, hint)
}

pub fn p(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    Ok(g().bool(Handle::is_rhash(lx, a[0])))
}

#[inline(always)]
pub fn get(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    Handle::of(lx, a[1])?.get(lx, a[0], a.get(2).copied())
}

#[inline(always)]
pub fn contains_p(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    Ok(g().bool(Handle::of(lx, a[1])?.contains(lx, KeyArg::Value(a[0]))?))
}

#[inline(always)]
pub fn put(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    let h = Handle::of(lx, a[2])?;
    h.put(lx, a[2], a[0], a[1])?;
    Ok(a[1])
}

pub fn adopt(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    let h = Handle::of(lx, a[0])?;
    h.adopt(lx, a[0], a[1], a[2])?;
    Ok(a[0])
}

#[inline(always)]
pub fn remove(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    Handle::of(lx, a[1])?.remove(lx, a[1], a[0])?;
    Ok(g().nil())
}

pub fn clear(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    Handle::of(lx, a[0])?.clear(lx, a[0])?;
    Ok(a[0])
}

pub fn count(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    let n = Handle::of(lx, a[0])?.read(lx, Table::len)?;
    int(lx, n)
}

pub fn empty_p(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    Ok(g().bool(Handle::of(lx, a[0])?.read(lx, Table::is_empty)?))
}

pub fn copy(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    Handle::of(lx, a[0])?.copy(lx)
}

pub fn test(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    Ok(Handle::of(lx, a[0])?.test().name())
}

pub fn size(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    let n = Handle::of(lx, a[0])?.read(lx, Table::size)?;
    int(lx, n)
}

pub fn weakness(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    Handle::of(lx, a[0])?;
    Ok(g().nil())
}

pub fn keys(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    Handle::of(lx, a[0])?.column(lx, 0)
}

pub fn values(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    Handle::of(lx, a[0])?.column(lx, 1)
}

pub fn storage(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    Ok(Handle::of(lx, a[0])?.read(lx, Table::cell)?.unwrap_or_else(|| g().nil()))
}

pub fn walk(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    let h = Handle::of(lx, a[1])?;
    let boxes = [lx.make_integer(0)?, lx.make_integer(0)?];
    // A compaction asked for by FUNCTION waits for the walk's end.
    let w = h.walk_begin();
    match h.walk(lx, a[0], boxes) {
        Some(r) => {
            r?;
            h.end_walk(lx, w)?;
            Ok(g().bool(true))
        }
        None => Ok(g().nil()),
    }
}

pub fn walk_mark(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    Handle::of(lx, a[0])?.mark_walk(lx, lx.is_not_nil(a[1]))?;
    Ok(g().nil())
}

pub fn pairs(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    Handle::of(lx, a[0])?.pairs(lx)
}

pub fn signals_visible(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    crate::quiet::set_visible(lx.is_not_nil(a[0]));
    Ok(g().nil())
}

pub fn hole(_: Lx, _: &[emacs_value]) -> LResult<emacs_value> {
    Ok(g().hole.v())
}

pub fn stats(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    let s = Handle::of(lx, a[0])?.read(lx, Table::stats)?;
    let vals = [int(lx, s[0])?, int(lx, s[1])?, int(lx, s[2])?, int(lx, s[3])?, int(lx, s[4])?];
    lx.funcall(g().f_list.v(), &vals)
}

pub fn flush_cache(lx: Lx, _: &[emacs_value]) -> LResult<emacs_value> {
    crate::cache::flush(lx);
    Ok(g().nil())
}

pub fn release_stats(lx: Lx, _: &[emacs_value]) -> LResult<emacs_value> {
    let pending = int(lx, release::pending())?;
    let released = int(lx, release::released())?;
    lx.funcall(g().f_cons.v(), &[pending, released])
}

pub fn storage_kind(lx: Lx, a: &[emacs_value]) -> LResult<emacs_value> {
    let native = Handle::of(lx, a[0])?.is_native();
    Ok(if native { g().native.v() } else { g().lisp.v() })
}
