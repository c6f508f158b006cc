//! The rhash file (pure Rust, no Emacs types): building one in memory,
//! writing it atomically, and reading one back with every check of
//! docs/file-format.md, in the order given there.
//!
//! Invariant: a `Loaded` exists only for a file that passed every check
//! and whose every entry validated, so iterating it cannot fail.  The
//! reader allocates nothing from a declared length or count: it holds the
//! file's bytes (allocated from the file's size) and walks them in place.

use crate::plain::{self, Corrupt, Encoder, Item};
use crate::table::AllocError;
use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub const MAGIC: [u8; 8] = [0x89, b'R', b'H', b'T', 0x0D, 0x0A, 0x1A, 0x0A];
pub const VERSION: u32 = 1;
/// Magic, version, flags, count, body length.
const HEADER: usize = 32;
/// The CRC-32 after the body.
const TRAILER: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    Lisp,
    Native,
}

// ---------------------------------------------------------------------------
// Writing

/// Builds a whole file in memory: `new` writes the header's place, the
/// storage and the test; the caller appends entries (key then value) with
/// `body` and `entry_done`, or `push_entry`; `finish` fills in the header
/// and appends the checksum.
pub struct FileWriter {
    buf: Vec<u8>,
    count: u64,
}

impl FileWriter {
    /// `test_name` is the test's symbol name (never "nil" or "t").
    pub fn new(storage: Storage, test_name: &[u8], test_multibyte: bool) -> Self {
        let mut buf = vec![0u8; HEADER];
        buf.push(match storage {
            Storage::Lisp => 0,
            Storage::Native => 1,
        });
        Encoder::new(&mut buf).symbol(test_name, test_multibyte);
        FileWriter { buf, count: 0 }
    }

    /// Where the caller encodes an entry's key, then its value (with
    /// `plain::Encoder`, whose `result` reports a failed reservation).
    pub fn body(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Counts one entry written through `body`.
    pub fn entry_done(&mut self) {
        self.count += 1;
    }

    /// Appends an entry whose key and value are already encoded.
    pub fn push_entry(&mut self, key: &[u8], value: &[u8]) {
        self.buf.extend_from_slice(key);
        self.buf.extend_from_slice(value);
        self.count += 1;
    }

    /// `push_entry` whose reservation may fail (then nothing is appended).
    pub fn try_push_entry(&mut self, key: &[u8], value: &[u8]) -> Result<(), AllocError> {
        self.buf.try_reserve(key.len() + value.len())?;
        self.push_entry(key, value);
        Ok(())
    }

    /// Header + body + CRC.
    pub fn finish(self) -> Vec<u8> {
        self.try_finish().unwrap_or_else(|(buf, _)| buf)
    }

    /// `finish`, or `Err` with the unfinished bytes when the checksum's
    /// room cannot be reserved.
    pub fn try_finish(mut self) -> Result<Vec<u8>, (Vec<u8>, AllocError)> {
        if let Err(e) = self.buf.try_reserve_exact(TRAILER) {
            return Err((self.buf, e.into()));
        }
        let body_len = (self.buf.len() - HEADER) as u64;
        self.buf[..8].copy_from_slice(&MAGIC);
        self.buf[8..12].copy_from_slice(&VERSION.to_le_bytes());
        self.buf[12..16].copy_from_slice(&0u32.to_le_bytes());
        self.buf[16..24].copy_from_slice(&self.count.to_le_bytes());
        self.buf[24..32].copy_from_slice(&body_len.to_le_bytes());
        let crc = crc32fast::hash(&self.buf);
        self.buf.extend_from_slice(&crc.to_le_bytes());
        Ok(self.buf)
    }
}

/// Why `atomic_write` failed.  The target is untouched and the temporary
/// file removed in every case.
#[derive(Debug)]
pub enum WriteError {
    /// `should_quit` said so.
    Quit,
    /// The message names the operation and the file.
    Io(io::Error),
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::Quit => f.write_str("quit"),
            WriteError::Io(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for WriteError {}

/// The error `e` of `op` on `path`, its message naming both (the kind kept).
fn io_context(e: io::Error, op: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{op} {}: {e}", path.display()))
}

/// Bytes written between two calls of `should_quit`.
const CHUNK: usize = 1 << 20;

static TEMP_SERIAL: AtomicU64 = AtomicU64::new(0);

/// Replace `target` by a file holding `bytes`, atomically and durably: a
/// new file `.NAME.rhash-tmp-PID-N` in the target's directory (created
/// exclusively, readable by its owner only while written), written in
/// chunks of `CHUNK` bytes with `should_quit` asked after each, flushed to
/// disk, given the permissions of the existing target (else the default
/// mode under the umask), renamed over the target, and the directory
/// flushed (where the platform allows it).  A symbolic link as target is
/// followed: the file it points to is replaced, the link kept.  An
/// existing target that is not a regular file is refused.  On any
/// error or quit the temporary file is removed and the target untouched.
pub fn atomic_write(target: &Path, bytes: &[u8], should_quit: &mut dyn FnMut() -> bool) -> Result<(), WriteError> {
    let target = resolve_link(target);
    let name = target
        .file_name()
        .ok_or_else(|| WriteError::Io(io_context(io::ErrorKind::InvalidInput.into(), "saving to", &target)))?;
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // Only a regular file is replaced: renaming over a device, a FIFO or
    // a directory would destroy it (or fail) where writing to it would not.
    let existing = match fs::metadata(&target) {
        Ok(m) if m.is_file() => Some(m.permissions()),
        Ok(_) => {
            let e = io::Error::new(io::ErrorKind::InvalidInput, "not a regular file");
            return Err(WriteError::Io(io_context(e, "saving to", &target)));
        }
        Err(_) => None,
    };
    let (tmp, file) = create_temp(&dir, name, existing.is_some())?;
    let result = fill(file, &tmp, bytes, should_quit, existing).and_then(|()| {
        fs::rename(&tmp, &target).map_err(|e| WriteError::Io(io_context(e, "renaming over", &target)))
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    // The rename is durable once the directory is; some platforms refuse
    // to open or flush a directory, and the data is in place regardless.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// `target`, or the file it names when it is a symbolic link (a dangling
/// link or a loop is left as it is: the rename then replaces the link).
fn resolve_link(target: &Path) -> PathBuf {
    match fs::symlink_metadata(target) {
        Ok(m) if m.file_type().is_symlink() => fs::canonicalize(target).unwrap_or_else(|_| target.to_path_buf()),
        _ => target.to_path_buf(),
    }
}

fn create_temp(dir: &Path, name: &std::ffi::OsStr, private: bool) -> Result<(PathBuf, File), WriteError> {
    let pid = std::process::id();
    let mut tries = 0;
    loop {
        let n = TEMP_SERIAL.fetch_add(1, Ordering::Relaxed);
        let mut tmp_name = OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".rhash-tmp-{pid}-{n}"));
        let tmp = dir.join(tmp_name);
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(if private { 0o600 } else { 0o666 });
        }
        #[cfg(not(unix))]
        let _ = private;
        match opts.open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            // A leftover of a killed process with the same pid and serial.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 100 => tries += 1,
            Err(e) => return Err(WriteError::Io(io_context(e, "creating temporary file", &tmp))),
        }
    }
}

fn fill(
    mut file: File,
    tmp: &Path,
    bytes: &[u8],
    should_quit: &mut dyn FnMut() -> bool,
    perms: Option<fs::Permissions>,
) -> Result<(), WriteError> {
    let tmp_err = |e, op| WriteError::Io(io_context(e, op, tmp));
    for chunk in bytes.chunks(CHUNK) {
        file.write_all(chunk).map_err(|e| tmp_err(e, "writing"))?;
        if should_quit() {
            return Err(WriteError::Quit);
        }
    }
    if let Some(p) = perms {
        file.set_permissions(p).map_err(|e| tmp_err(e, "setting permissions of"))?;
    }
    file.sync_all().map_err(|e| tmp_err(e, "flushing"))
}

// ---------------------------------------------------------------------------
// Reading

/// Why `read` or `parse` failed.
#[derive(Debug)]
pub enum ReadError {
    /// No such file.
    Missing,
    Io(io::Error),
    /// The reason of docs/file-format.md, e.g. "truncated",
    /// "checksum mismatch", "corrupt: invalid tag at offset 57".
    Format(String),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Missing => f.write_str("no such file"),
            ReadError::Io(e) => e.fmt(f),
            ReadError::Format(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for ReadError {}

impl From<Corrupt> for ReadError {
    fn from(c: Corrupt) -> Self {
        ReadError::Format(c.to_string())
    }
}

fn format_err(reason: &str) -> ReadError {
    ReadError::Format(reason.to_string())
}

/// A file that passed every check, with its bytes.
#[derive(Debug)]
pub struct Loaded {
    bytes: Vec<u8>,
    storage: Storage,
    count: usize,
    /// Where the entries start and the body ends.
    entries_at: usize,
    end: usize,
}

/// Read and check the file at `path`.  The buffer is allocated from the
/// file's size, and no more is read than that.
pub fn read(path: &Path) -> Result<Loaded, ReadError> {
    let open_err = |e: io::Error| match e.kind() {
        io::ErrorKind::NotFound => ReadError::Missing,
        _ => ReadError::Io(io_context(e, "reading", path)),
    };
    let file = File::open(path).map_err(open_err)?;
    let size = file.metadata().map_err(open_err)?.len();
    let cap = usize::try_from(size).map_err(|_| format_err("file too large"))?;
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(cap)
        .map_err(|_| ReadError::Io(io_context(io::ErrorKind::OutOfMemory.into(), "reading", path)))?;
    file.take(size).read_to_end(&mut bytes).map_err(open_err)?;
    parse(bytes)
}

fn u32_at(b: &[u8], p: usize) -> u32 {
    u32::from_le_bytes([b[p], b[p + 1], b[p + 2], b[p + 3]])
}

fn u64_at(b: &[u8], p: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[p..p + 8]);
    u64::from_le_bytes(w)
}

/// Check a file's bytes, in the order of docs/file-format.md, and validate
/// every entry.
pub fn parse(bytes: Vec<u8>) -> Result<Loaded, ReadError> {
    let size = bytes.len();
    if size < 8 || bytes[..8] != MAGIC {
        return Err(format_err("not an rhash table file"));
    }
    if size < 12 {
        return Err(format_err("truncated"));
    }
    let version = u32_at(&bytes, 8);
    if version != VERSION {
        return Err(ReadError::Format(format!("unknown format version {version}")));
    }
    if size < HEADER + TRAILER {
        return Err(format_err("truncated"));
    }
    if u32_at(&bytes, 12) != 0 {
        return Err(format_err("unsupported flags"));
    }
    let count = u64_at(&bytes, 16);
    let body_len = u64_at(&bytes, 24);
    let room = (size - HEADER - TRAILER) as u64;
    if body_len > room {
        return Err(format_err("truncated"));
    }
    if body_len < room {
        return Err(format_err("trailing data"));
    }
    let end = size - TRAILER;
    if crc32fast::hash(&bytes[..end]) != u32_at(&bytes, end) {
        return Err(format_err("checksum mismatch"));
    }
    // Every entry takes at least 2 bytes; this bounds `count` by the size.
    if body_len < 2 || count > (body_len - 2) / 2 {
        return Err(format_err("corrupt: entry count"));
    }
    let count = count as usize;
    let body = &bytes[..end];
    let storage = match body[HEADER] {
        0 => Storage::Lisp,
        1 => Storage::Native,
        _ => return Err(Corrupt { what: "invalid storage", offset: HEADER }.into()),
    };
    let test_at = HEADER + 1;
    let mut pos = plain::validate_at(body, test_at)?;
    if !matches!(body[test_at], plain::TAG_SYMBOL | plain::TAG_SYMBOL_MB) {
        return Err(Corrupt { what: "test not a symbol", offset: test_at }.into());
    }
    let entries_at = pos;
    for _ in 0..count {
        pos = plain::validate_at(body, pos)?; // key
        pos = plain::validate_at(body, pos)?; // value
    }
    if pos != end {
        return Err(Corrupt { what: "trailing bytes", offset: pos }.into());
    }
    Ok(Loaded { bytes, storage, count, entries_at, end })
}

impl Loaded {
    pub fn storage(&self) -> Storage {
        self.storage
    }

    /// The test's symbol name and whether it is multibyte.
    pub fn test(&self) -> (&[u8], bool) {
        let mut test = (&[][..], false);
        plain::walk(&self.bytes[HEADER + 1..self.entries_at], |item| {
            if let Item::Symbol { name, multibyte } = item {
                test = (name, multibyte);
            }
        });
        test
    }

    /// The number of entries.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The bytes of all entries' encodings (a size hint for native storage).
    pub fn entries_len(&self) -> usize {
        self.end - self.entries_at
    }

    /// The entries in file order: (key, value), each exactly one validated
    /// encoding.
    pub fn entries(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let body = &self.bytes[..self.end];
        let mut pos = self.entries_at;
        (0..self.count).map(move |_| {
            let k = pos + plain::value_len(&body[pos..]);
            let v = k + plain::value_len(&body[k..]);
            let entry = (&body[pos..k], &body[k..v]);
            pos = v;
            entry
        })
    }
}

#[cfg(test)]
mod tests;
