//! Growing a table's storage: the new vectors are allocated first (Lisp
//! calls that may GC, quit or fail, leaving the table as it was), then
//! switched in with no Lisp call.  The sizes come from `table::grown_len`.

use super::*;

impl Handle {
    /// Make room for `additional` more keys at once (a bulk insertion's
    /// estimate): the index, the entries and the storage each grow at most
    /// once for them, instead of doubling step by step.  May run Lisp (the
    /// storage's allocation); the table is consistent throughout.
    pub fn reserve(&self, lx: Lx, additional: usize) -> LResult<()> {
        let need = self.write(lx, |t| {
            t.raw.reserve(additional).map(|()| t.raw.slots().max(t.raw.len() + additional))
        })?;
        let need = need.map_err(|_| error::memory(lx))?;
        if self.read(lx, |t| t.storage.native().is_none())? {
            // (Whether Lisp ran meanwhile does not matter: this is room.)
            self.grow_storage(lx, need)?;
        }
        Ok(())
    }

    /// Give the storage room for `need` places (`grown_len`).  The new
    /// vectors are allocated first, through Lisp calls that may GC, quit or
    /// fail, leaving the table as it was; then `install` switches to them
    /// with no Lisp call.  Returns true if Lisp run during the allocation
    /// changed the table (its current contents are then copied over,
    /// Lisp-free): the caller must look again.
    pub(super) fn grow_storage(&self, lx: Lx, need: usize) -> LResult<bool> {
        let (len, hint, old) = self.read(lx, |t| (t.storage.room(), t.hint, t.storage.columns()))?;
        if need <= len {
            return Ok(false);
        }
        let g0 = self.gen();
        let gl = g();
        let new_len = grown_len(len, need, hint);
        // On the direct path the old contents are copied below, Lisp-free,
        // a word per place (`vconcat` copies through a generic sequence
        // loop, ~35 instructions a place); on the official path that copy
        // would be two env calls a place, and `vconcat` does it.
        let direct = direct::layout().is_some();
        let mut made = [gl.nil(); 2];
        for (k, slot) in made.iter_mut().enumerate() {
            *slot = match old {
                Some(o) if !direct => {
                    let tail = holes(lx, new_len - len)?;
                    lx.funcall(gl.f_vconcat.v(), &[o[k], tail])?
                }
                _ => holes(lx, new_len)?,
            };
        }
        let cell = self.new_cell(lx)?;
        // No Lisp runs from here on.
        let changed = self.gen() != g0;
        let len2 = self.read(lx, |t| t.storage.room())?;
        if changed && need <= len2 {
            return Ok(true);
        }
        if changed || (direct && old.is_some()) {
            // len2 < need <= new_len: take the current contents.
            self.read(lx, |t| t.storage.copy_prefix(lx, [true, true], made, len2))??;
        }
        self.install_storage(lx, made, new_len, cell)?;
        Ok(changed)
    }

    /// A fresh `[KEYS VALS]` cell for `install_storage` when the table has
    /// none yet (`None` otherwise).  Calls Lisp.
    pub(super) fn new_cell(&self, lx: Lx) -> LResult<Option<emacs_value>> {
        if self.read(lx, |t| t.storage.exists())? {
            return Ok(None);
        }
        let gl = g();
        Ok(Some(lx.funcall(gl.f_make_vector.v(), &[int(lx, 2)?, gl.nil()])?))
    }

    /// Make `cols` (`[KEYS VALS]`, `len` long, complete) the table's
    /// storage, in a step that runs no Lisp.
    pub(super) fn install_storage(&self, lx: Lx, cols: [emacs_value; 2], len: usize, cell: Option<emacs_value>) -> LResult<()> {
        let old = self.write(lx, |t| t.storage.install(lx, cols[0], cols[1], len, cell))??;
        self.touch();
        // The old storage's references go through the release queue.
        drop(old);
        Ok(())
    }
}
