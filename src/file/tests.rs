use super::*;
use crate::plain::tests::{enc, V};
use crate::plain::MAX_DEPTH;
use crate::test_rng::Rng;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

// ---------------------------------------------------------------------------
// Allocation watch: the largest single allocation made by the current
// thread since `watch_reset` (other tests run on other threads).

struct Watch;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|m| m.set(m.get().max(size)));
}

// SAFETY: every call forwards to `System` with the caller's arguments,
// whose contracts are the same; `note` only touches a const-initialized
// thread-local `Cell<usize>`, which neither allocates nor has a destructor.
unsafe impl GlobalAlloc for Watch {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static WATCH: Watch = Watch;

fn watch_reset() {
    LARGEST.with(|m| m.set(0));
}

fn largest() -> usize {
    LARGEST.with(|m| m.get())
}

/// The most the reader may allocate at once for a file of `size` bytes:
/// the file itself, or its nesting stack (`MAX_DEPTH` u64 frames).
fn alloc_bound(size: usize) -> usize {
    size.max(MAX_DEPTH * 8).max(256)
}

/// `parse`, checking the allocation bound.
fn parse_watched(bytes: &[u8]) -> Result<Loaded, ReadError> {
    let copy = bytes.to_vec();
    watch_reset();
    let r = parse(copy);
    assert!(largest() <= alloc_bound(bytes.len()), "allocated {} for a {}-byte file", largest(), bytes.len());
    r
}

// ---------------------------------------------------------------------------
// Helpers

fn file_of(storage: Storage, test: &str, entries: &[(V, V)]) -> Vec<u8> {
    let mut w = FileWriter::new(storage, test.as_bytes(), true);
    for (k, v) in entries {
        let mut e = Encoder::new(w.body());
        crate::plain::tests::encode_into(&mut e, k);
        crate::plain::tests::encode_into(&mut e, v);
        e.result().unwrap();
        w.entry_done();
    }
    w.finish()
}

fn reason(bytes: &[u8]) -> String {
    match parse_watched(bytes) {
        Ok(_) => "ok".into(),
        Err(ReadError::Format(s)) => s,
        Err(e) => panic!("unexpected {e:?}"),
    }
}

/// Rewrite the header's length and count fields and the CRC of `f`.
fn reseal(f: &mut [u8], count: Option<u64>) {
    let end = f.len() - 4;
    if let Some(c) = count {
        f[16..24].copy_from_slice(&c.to_le_bytes());
    }
    f[24..32].copy_from_slice(&((end - 32) as u64).to_le_bytes());
    let crc = crc32fast::hash(&f[..end]);
    f[end..].copy_from_slice(&crc.to_le_bytes());
}

/// A file whose body (after storage and test) is `entries` raw, sealed.
fn raw_file(count: u64, entries: &[u8]) -> Vec<u8> {
    let mut f = file_of(Storage::Native, "equal", &[]);
    f.truncate(f.len() - 4);
    f.extend_from_slice(entries);
    f.extend_from_slice(&[0; 4]);
    reseal(&mut f, Some(count));
    f
}

fn s(x: &str) -> V {
    V::Str(x.as_bytes().to_vec(), true)
}

fn sample_entries() -> Vec<(V, V)> {
    vec![
        (V::Str(b"a".to_vec(), false), V::Int(1)),
        (V::Sym(b":k".to_vec(), false), V::List(vec![V::Int(1), s("é")], Box::new(V::Nil))),
        (V::Int(i64::MIN), V::Float((-0f64).to_bits())),
        (V::Str(b"\xff".to_vec(), false), V::Vector(vec![V::T, V::Str(vec![0xc1, 0xbf], true)])),
        (V::Float(0x7ff8_0000_0000_0001), V::List(vec![V::Nil], Box::new(V::Int(-3)))),
    ]
}

fn entries_of(l: &Loaded) -> Vec<(Vec<u8>, Vec<u8>)> {
    l.entries().map(|(k, v)| (k.to_vec(), v.to_vec())).collect()
}

// ---------------------------------------------------------------------------
// Round trips and the reasons

#[test]
fn the_worked_example_of_the_doc() {
    let f = file_of(
        Storage::Lisp,
        "equal",
        &[
            (V::Str(b"a".to_vec(), false), V::Int(1)),
            (V::Sym(b":k".to_vec(), false), V::List(vec![V::Int(1), s("é")], Box::new(V::Nil))),
        ],
    );
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/file-format.md")).unwrap();
    let dump = doc.split("```\n").nth(1).unwrap();
    let want: Vec<u8> = dump
        .lines()
        .flat_map(|l| l.split_whitespace().skip(1).map(|h| u8::from_str_radix(h, 16).unwrap()))
        .collect();
    assert_eq!(f, want);
}

#[test]
fn round_trip() {
    let entries = sample_entries();
    for storage in [Storage::Lisp, Storage::Native] {
        let f = file_of(storage, "my-tést", &entries);
        let l = parse_watched(&f).unwrap();
        assert_eq!(l.storage(), storage);
        assert_eq!(l.test(), ("my-tést".as_bytes(), true));
        assert_eq!(l.count(), entries.len());
        let want: Vec<_> = entries.iter().map(|(k, v)| (enc(k), enc(v))).collect();
        assert_eq!(entries_of(&l), want);
        assert_eq!(l.entries_len(), want.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>());
        // Writing the loaded entries back gives the same bytes.
        let mut w = FileWriter::new(storage, l.test().0, l.test().1);
        for (k, v) in l.entries() {
            w.try_push_entry(k, v).unwrap();
        }
        assert_eq!(w.finish(), f);
    }
    let empty = file_of(Storage::Lisp, "eq", &[]);
    assert_eq!(empty.len(), 36 + 1 + 4); // storage, `02 02 65 71`
    let l = parse_watched(&empty).unwrap();
    assert_eq!((l.count(), l.test()), (0, (&b"eq"[..], false)));
}

#[test]
fn every_reason_in_order() {
    let good = file_of(Storage::Lisp, "equal", &sample_entries());
    assert_eq!(reason(&good), "ok");
    assert_eq!(reason(b""), "not an rhash table file");
    assert_eq!(reason(&good[..7]), "not an rhash table file");
    assert_eq!(reason(b"\x89RHT\r\n\x1a\x0b and more"), "not an rhash table file");
    assert_eq!(reason(&good[..11]), "truncated");
    let mut v = good.clone();
    v[8] = 2;
    assert_eq!(reason(&v), "unknown format version 2");
    v[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(reason(&v[..12]), "unknown format version 4294967295");
    assert_eq!(reason(&good[..35]), "truncated");
    let mut v = good.clone();
    v[15] = 0x80;
    assert_eq!(reason(&v), "unsupported flags");
    assert_eq!(reason(&good[..good.len() - 1]), "truncated");
    let mut v = good.clone();
    v.push(0);
    assert_eq!(reason(&v), "trailing data");
    let mut v = good.clone();
    v[24..32].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(reason(&v), "truncated");
    let mut v = good.clone();
    let last = v.len() - 5;
    v[last] ^= 1;
    assert_eq!(reason(&v), "checksum mismatch");
    // Entry counts, with valid checksums.
    let mut v = good.clone();
    reseal(&mut v, Some(u64::MAX));
    assert_eq!(reason(&v), "corrupt: entry count");
    let mut v = good.clone();
    reseal(&mut v, Some(6));
    assert_eq!(reason(&v), "corrupt: past end at offset 102");
    let mut v = good.clone();
    reseal(&mut v, Some(4));
    assert_eq!(reason(&v), "corrupt: trailing bytes at offset 88");
    let mut tiny = MAGIC.to_vec();
    tiny.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    tiny.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0]);
    tiny.extend_from_slice(&[0; 4]);
    reseal(&mut tiny, None);
    assert_eq!(reason(&tiny), "corrupt: entry count"); // L = 1
    // The body.
    let mut v = good.clone();
    v[32] = 2;
    reseal(&mut v, None);
    assert_eq!(reason(&v), "corrupt: invalid storage at offset 32");
    assert_eq!(reason(&raw_file(0, &[0x00])), "corrupt: trailing bytes at offset 40");
    let mut v = raw_file(0, &[]);
    v[33] = 0x07; // "equal" as a unibyte string
    reseal(&mut v, None);
    assert_eq!(reason(&v), "corrupt: test not a symbol at offset 33");
    v[33] = 0x0b;
    reseal(&mut v, None);
    assert_eq!(reason(&v), "corrupt: invalid tag at offset 33");
    // Huge declared lengths and counts inside the body.
    let huge = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
    for tag in [0x07, 0x08, 0x02, 0x0a, 0x09] {
        let mut body = vec![tag];
        body.extend_from_slice(&huge);
        body.extend_from_slice(&[0x00; 8]);
        assert_eq!(reason(&raw_file(1, &body)), "corrupt: past end at offset 40");
    }
    let mut body = vec![0x05, 0x00];
    body.extend_from_slice(&huge);
    body.push(0x00);
    assert_eq!(reason(&raw_file(1, &body)), "corrupt: past end at offset 40");
    // Deep nesting: 10000 levels load, 10001 do not.
    for (depth, want) in [(MAX_DEPTH, "ok".to_string()), (MAX_DEPTH + 1, format!("corrupt: nesting too deep at offset {}", 40 + 2 * MAX_DEPTH))] {
        let mut body = Vec::new();
        for _ in 0..depth {
            body.extend_from_slice(&[0x0a, 0x01]);
        }
        body.extend_from_slice(&[0x00, 0x00]);
        assert_eq!(reason(&raw_file(1, &body)), want);
    }
}

// ---------------------------------------------------------------------------
// The hostile corpus

/// The number of generated cases of each kind (`RHASH_CORPUS_CASES`,
/// `make soak` runs a long corpus).
fn cases() -> usize {
    std::env::var("RHASH_CORPUS_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(3000)
}

/// A hostile file must give a format error (or load, when it is a valid
/// file): never a panic, never an allocation past the bound.  A file that
/// loads is canonical: writing its entries back gives the same bytes.
fn hostile(bytes: &[u8]) -> Result<(), String> {
    match parse_watched(bytes) {
        Ok(l) => {
            let (name, mb) = l.test();
            let mut w = FileWriter::new(l.storage(), name, mb);
            for (k, v) in l.entries() {
                w.push_entry(k, v);
            }
            assert_eq!(w.finish(), bytes, "a loaded file is not canonical");
            Ok(())
        }
        Err(ReadError::Format(s)) => Err(s),
        Err(e) => panic!("unexpected {e:?}"),
    }
}

fn corpus_seed() -> u64 {
    std::env::var("RHASH_CORPUS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_f11e_5eed_f11e)
}

fn big_sample() -> Vec<u8> {
    let mut e = sample_entries();
    e.push((s("deep"), V::Vector(vec![V::Vector(vec![V::List(vec![V::T], Box::new(V::Vector(vec![])))])])));
    e.push((V::Int(1 << 40), V::Str(vec![b'x'; 200], false)));
    file_of(Storage::Native, "string-equal", &e)
}

#[test]
fn corpus_every_truncation_point() {
    let f = big_sample();
    for n in 0..f.len() {
        let r = hostile(&f[..n]);
        assert!(r.is_err(), "prefix {n} loaded");
    }
    assert_eq!(hostile(&f), Ok(()));
}

#[test]
fn corpus_bit_flips() {
    let f = big_sample();
    let mut rng = Rng(corpus_seed());
    let (mut crc_caught, mut loaded) = (0, 0);
    for _ in 0..cases() {
        let mut v = f.clone();
        let bit = rng.below(v.len() * 8);
        v[bit / 8] ^= 1 << (bit % 8);
        // CRC-32 detects every single-bit error.
        let r = hostile(&v);
        assert!(r.is_err(), "flip of bit {bit} loaded");
        crc_caught += usize::from(r == Err("checksum mismatch".into()));
        // The same flip with the checksum recomputed: the structure checks.
        if bit / 8 >= 32 && bit / 8 < v.len() - 4 {
            reseal(&mut v, None);
            loaded += usize::from(hostile(&v).is_ok());
        }
    }
    // Most flips land in the body or the CRC, where only the CRC sees them.
    assert!(crc_caught * 10 >= cases() * 7, "{crc_caught} of {}", cases());
    // Some resealed flips are valid files (a changed string byte).
    assert!(loaded > 0 || cases() < 100);
}

#[test]
fn corpus_random_damage_with_valid_checksums() {
    let f = big_sample();
    let mut rng = Rng(corpus_seed() ^ 1);
    let mut reasons = std::collections::BTreeMap::new();
    for _ in 0..cases() {
        let mut v = f.clone();
        match rng.below(4) {
            // A few random bytes overwritten.
            0 => {
                for _ in 0..1 + rng.below(4) {
                    let i = 32 + rng.below(v.len() - 36);
                    v[i] = rng.next() as u8;
                }
            }
            // Bytes inserted or removed (the length field follows).
            1 => {
                let i = 33 + rng.below(v.len() - 37);
                if rng.below(2) == 0 {
                    v.insert(i, rng.next() as u8);
                } else {
                    v.remove(i);
                }
            }
            // A huge varint spliced in.
            2 => {
                let i = 33 + rng.below(v.len() - 37);
                let n = 1 + rng.below(10);
                for _ in 0..n {
                    v.insert(i, 0x80 | rng.next() as u8);
                }
                v.insert(i + n, rng.below(3) as u8);
            }
            // A random count.
            _ => {
                let c = match rng.below(3) {
                    0 => rng.next(),
                    1 => rng.below(20) as u64,
                    _ => u64::MAX - rng.below(3) as u64,
                };
                v[16..24].copy_from_slice(&c.to_le_bytes());
            }
        }
        reseal(&mut v, None);
        let r = hostile(&v).err().unwrap_or_else(|| "ok".into());
        let key = r.split(" at offset").next().unwrap().to_string();
        *reasons.entry(key).or_insert(0) += 1;
    }
    eprintln!("reasons: {reasons:?}");
    if cases() >= 1000 {
        for want in ["corrupt: invalid tag", "corrupt: past end", "corrupt: entry count"] {
            assert!(reasons.contains_key(want), "no {want} in {reasons:?}");
        }
    }
}

#[test]
fn corpus_random_bytes() {
    let mut rng = Rng(corpus_seed() ^ 2);
    for i in 0..cases() {
        let len = rng.below(300);
        let mut v: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        assert!(hostile(&v).is_err());
        // Random bodies behind a valid header and checksum.
        let mut f = MAGIC.to_vec();
        f.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
        f.extend_from_slice(&(rng.below(8) as u64).to_le_bytes());
        f.extend_from_slice(&[0; 8]);
        if i % 2 == 0 && !v.is_empty() {
            v[0] = rng.below(2) as u8;
        }
        f.append(&mut v);
        f.extend_from_slice(&[0; 4]);
        reseal(&mut f, None);
        let _ = hostile(&f);
    }
}

// ---------------------------------------------------------------------------
// Files on disk

fn scratch_dir(name: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let d = std::env::temp_dir().join(format!(
        "rhash-test-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".rhash-tmp-"))
        .collect()
}

fn never() -> impl FnMut() -> bool {
    || false
}

#[test]
fn read_from_disk() {
    let dir = scratch_dir("read");
    let path = dir.join("t.rht");
    assert!(matches!(read(&path), Err(ReadError::Missing)));
    let f = big_sample();
    atomic_write(&path, &f, &mut never()).unwrap();
    watch_reset();
    let l = read(&path).unwrap();
    assert!(largest() <= alloc_bound(f.len()));
    assert_eq!(l.count(), big_sample_count());
    fs::write(&path, &f[..40]).unwrap();
    assert_eq!(read(&path).unwrap_err().to_string(), "truncated");
    assert!(matches!(read(&dir), Err(ReadError::Io(_))));
    fs::remove_dir_all(&dir).unwrap();
}

fn big_sample_count() -> usize {
    sample_entries().len() + 2
}

#[test]
fn atomic_write_replaces_and_keeps_permissions() {
    let dir = scratch_dir("write");
    let path = dir.join("t.rht");
    atomic_write(&path, b"first", &mut never()).unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"first");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // A new file gets the default mode under the umask, as File::create.
        let probe = dir.join("probe");
        File::create(&probe).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&path), mode(&probe));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        atomic_write(&path, b"second", &mut never()).unwrap();
        assert_eq!(mode(&path), 0o640);
        // A symbolic link is followed: the file it names is replaced.
        let link = dir.join("link.rht");
        std::os::unix::fs::symlink("t.rht", &link).unwrap();
        atomic_write(&link, b"third", &mut never()).unwrap();
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(fs::read(&path).unwrap(), b"third");
        assert_eq!(mode(&path), 0o640);
    }
    // Large contents, asked to quit between chunks only.
    let big: Vec<u8> = (0..3 * CHUNK + 5).map(|i| i as u8).collect();
    let mut calls = 0;
    atomic_write(&path, &big, &mut || {
        calls += 1;
        false
    })
    .unwrap();
    assert_eq!(calls, 4);
    assert_eq!(fs::read(&path).unwrap(), big);
    assert!(leftovers(&dir).is_empty());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn atomic_write_failures_leave_no_trace() {
    let dir = scratch_dir("fail");
    let path = dir.join("t.rht");
    atomic_write(&path, b"old", &mut never()).unwrap();
    // A quit after the first chunk: the old file is intact.
    let big = vec![7u8; 2 * CHUNK];
    let mut calls = 0;
    let r = atomic_write(&path, &big, &mut || {
        calls += 1;
        true
    });
    assert!(matches!(r, Err(WriteError::Quit)));
    assert_eq!(calls, 1);
    assert_eq!(fs::read(&path).unwrap(), b"old");
    assert!(leftovers(&dir).is_empty());
    // A missing directory: an error naming the file.
    let missing = dir.join("no-such-dir").join("t.rht");
    let e = atomic_write(&missing, b"x", &mut never()).unwrap_err();
    assert!(matches!(&e, WriteError::Io(io) if io.kind() == io::ErrorKind::NotFound), "{e}");
    assert!(e.to_string().contains("no-such-dir"), "{e}");
    // A directory as the target is refused.
    let sub = dir.join("sub");
    fs::create_dir(&sub).unwrap();
    let e = atomic_write(&sub, b"x", &mut never()).unwrap_err();
    assert!(e.to_string().contains("sub: not a regular file"), "{e}");
    assert!(sub.is_dir());
    assert!(leftovers(&dir).is_empty(), "{:?}", leftovers(&dir));
    // A directory that cannot be written: nothing is left in it (root may
    // write anyway, and then the save succeeds).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let ro = dir.join("ro");
        fs::create_dir(&ro).unwrap();
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o500)).unwrap();
        let _ = atomic_write(&ro.join("t.rht"), b"x", &mut never());
        assert!(leftovers(&ro).is_empty());
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o700)).unwrap();
    }
    // No file name at all.
    assert!(atomic_write(Path::new("/"), b"x", &mut never()).is_err());
    fs::remove_dir_all(&dir).unwrap();
}
