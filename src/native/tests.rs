use super::*;
use crate::plain::Encoder;
use crate::test_rng::Rng;

/// A random encoding: mostly short strings, sometimes an integer, a list,
/// or a long string.
fn value(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    let mut e = Encoder::new(&mut out);
    match rng.below(10) {
        0 => e.int(rng.next() as i64),
        1 => {
            e.list(2);
            e.int(1);
            e.string(b"x", false);
            e.nil();
        }
        2 => e.string(&vec![b'L'; 500 + rng.below(3000)], false),
        _ => {
            let n = rng.below(40);
            let s: Vec<u8> = (0..n).map(|_| b'a' + rng.below(26) as u8).collect();
            e.string(&s, rng.below(2) == 0);
        }
    }
    out
}

type Model = Vec<Option<(Vec<u8>, Vec<u8>)>>;

fn check(s: &NativeStore, m: &Model) {
    assert_eq!(s.len(), m.len());
    let mut live = 0;
    for (i, e) in m.iter().enumerate() {
        assert_eq!(s.is_live(i), e.is_some(), "slot {i}");
        if let Some((k, v)) = e {
            assert_eq!(s.key(i), &k[..], "key {i}");
            assert_eq!(s.value(i), &v[..], "value {i}");
            live += k.len() + v.len();
        }
    }
    assert_eq!(s.live_bytes(), live);
    // Chunks are never reallocated: their capacities are what was counted.
    assert_eq!(s.arena.capacity, s.arena.chunks.iter().map(|c| c.capacity()).sum::<usize>());
    assert_eq!(s.arena.used, s.arena.chunks.iter().map(|c| c.len()).sum::<usize>());
    // Garbage stays under the rebuild threshold, give or take one
    // operation's record (at most a long string twice).
    assert!(s.garbage() <= MIN_GARBAGE.max(live / 4 + s.len()) + 8000, "garbage {} live {live}", s.garbage());
    assert!(s.bytes() >= live + s.len() * 8, "bytes {} live {live} len {} cap {} chunks {:?}", s.bytes(), s.len(), s.arena.capacity, s.arena.chunks.iter().map(|c| (c.len(), c.capacity())).collect::<Vec<_>>());
}

fn run(seed: u64, steps: usize) {
    let mut rng = Rng(seed);
    let mut s = NativeStore::new();
    let mut m: Model = Vec::new();
    for step in 0..steps {
        let live: Vec<usize> = (0..m.len()).filter(|&i| m[i].is_some()).collect();
        match rng.below(100) {
            // Set a free slot, a live one, or a new one at the end.
            0..=44 => {
                let i = if rng.below(3) == 0 { m.len() } else { rng.below(m.len() + 1) };
                let (k, v) = (value(&mut rng), value(&mut rng));
                s.set(i, &k, &v).unwrap();
                if i == m.len() {
                    m.push(Some((k, v)));
                } else {
                    m[i] = Some((k, v));
                }
            }
            45..=69 if !live.is_empty() => {
                let i = live[rng.below(live.len())];
                let v = value(&mut rng);
                s.set_value(i, &v).unwrap();
                m[i].as_mut().unwrap().1 = v;
            }
            70..=94 => {
                let i = rng.below(m.len() + 1);
                s.remove(i);
                if i < m.len() {
                    m[i] = None;
                }
            }
            95..=97 => {
                // Compact to the live slots in a random order.
                let mut order = live.clone();
                for j in (1..order.len()).rev() {
                    order.swap(j, rng.below(j + 1));
                }
                s.compact(&order).unwrap();
                m = order.iter().map(|&i| m[i].clone()).collect();
                assert_eq!(s.garbage(), 0);
            }
            98 if rng.below(10) == 0 => {
                s.clear();
                m.clear();
                assert_eq!(s.bytes(), 0);
            }
            _ => {}
        }
        // A full check costs O(slots): often while small, then amortized.
        if step % (7 + m.len() / 8) == 0 || m.len() < 50 {
            check(&s, &m);
        }
    }
    check(&s, &m);
}

#[test]
fn matches_the_model() {
    let steps = std::env::var("RHASH_NATIVE_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(20_000);
    for seed in 1..=4u64 {
        run(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15), steps);
    }
}

#[test]
fn churn_reclaims_garbage() {
    // Replacing values over and over keeps the arena near the live size.
    let mut s = NativeStore::new();
    let key = |i: usize| {
        let mut out = Vec::new();
        Encoder::new(&mut out).string(format!("id-{i:08x}-4a6b-9c2d-{i}").as_bytes(), false);
        out
    };
    let val = |i: usize, round: usize| {
        let mut out = Vec::new();
        Encoder::new(&mut out).string(format!("~/org/notes/file-{}.org{}", i % 5000, "x".repeat(round % 7)).as_bytes(), false);
        out
    };
    let n = 20_000;
    for i in 0..n {
        s.set(i, &key(i), &val(i, 0)).unwrap();
    }
    let full = s.live_bytes();
    for round in 1..20 {
        for i in 0..n {
            s.set_value(i, &val(i, round)).unwrap();
        }
        for i in (0..n).step_by(3) {
            s.remove(i);
            s.set(i, &key(i), &val(i, round)).unwrap();
        }
        assert!(s.arena.used <= s.live_bytes() + s.live_bytes() / 4 + n + MIN_GARBAGE + 100);
        assert!(s.bytes() <= 2 * s.live_bytes() + 16 * n + MAX_CHUNK, "{} for {}", s.bytes(), s.live_bytes());
    }
    assert!(s.live_bytes() >= full);
    for i in 0..n {
        assert_eq!(s.key(i), &key(i)[..]);
        assert_eq!(s.value(i), &val(i, 19)[..]);
    }
}

fn bench_entry(i: usize) -> (Vec<u8>, Vec<u8>) {
    let (mut k, mut v) = (Vec::new(), Vec::new());
    Encoder::new(&mut k).string(format!("id-{:08x}-4a6b-9c2d-{i}", i * 7919).as_bytes(), false);
    Encoder::new(&mut v).string(format!("~/org/notes/file-{}.org", i % 5000).as_bytes(), false);
    (k, v)
}

#[test]
fn memory_per_entry() {
    // The benchmark's shape: ~30-byte keys, ~25-byte values, inserted once.
    let n = 100_000;
    let mut sized = NativeStore::with_capacity(n, n * 60).unwrap();
    let mut grown = NativeStore::new();
    let mut data = 0;
    for i in 0..n {
        let (k, v) = bench_entry(i);
        data += k.len() + v.len();
        sized.set(i, &k, &v).unwrap();
        grown.set(i, &k, &v).unwrap();
    }
    for s in [&sized, &grown] {
        assert_eq!(s.garbage(), 0);
        assert_eq!(s.live_bytes(), data);
    }
    // Sized: the encodings plus an 8-byte locator each, and nothing else.
    assert!(sized.bytes() <= n * 60 + n * 8 + 1024, "{} bytes for {data} bytes of data", sized.bytes());
    // Grown: less than one chunk of slack beyond the data, and the locators'
    // vector (which doubles).
    assert!(grown.bytes() <= data + MAX_CHUNK + 2 * n * 8 + 4096, "{} bytes for {data}", grown.bytes());
    assert!(grown.arena.chunks.len() < 30);
    let mut s = sized;
    s.clear();
    assert_eq!((s.bytes(), s.len()), (0, 0));
}

#[test]
fn large_records_get_their_own_chunk() {
    let mut s = NativeStore::new();
    let (k, v) = bench_entry(1);
    s.set(0, &k, &v).unwrap();
    let mut big = Vec::new();
    Encoder::new(&mut big).string(&vec![b'b'; MAX_CHUNK], false);
    s.set(1, &k, &big).unwrap();
    s.set(2, &k, &v).unwrap();
    assert_eq!(s.arena.chunks.len(), 2);
    assert_eq!(s.arena.chunks[1].capacity(), k.len() + big.len());
    assert_eq!((s.value(0), s.value(1), s.value(2)), (&v[..], &big[..], &v[..]));
    // A value that outgrows its place moves; the key comes along.
    s.set_value(0, &big).unwrap();
    assert_eq!((s.key(0), s.value(0)), (&k[..], &big[..]));
    // ...also within the chunk that holds the key.
    let mut long = Vec::new();
    Encoder::new(&mut long).string(&[b'l'; 100], true);
    s.set_value(2, &long).unwrap();
    assert_eq!((s.key(2), s.value(2)), (&k[..], &long[..]));
    assert_eq!(s.arena.chunks.len(), 3);
}

#[test]
fn in_place_values_and_idempotent_removal() {
    let mut s = NativeStore::new();
    let mut k = Vec::new();
    Encoder::new(&mut k).string(b"k", false);
    s.set(0, &k, &[0x04, 0x02]).unwrap();
    let before = s.arena.used;
    // A value that fits takes the old one's place.
    s.set_value(0, &[0x00]).unwrap();
    assert_eq!((s.value(0), s.arena.used, s.garbage()), (&[0x00][..], before, 1));
    s.remove(0);
    assert!(!s.is_live(0));
    s.remove(0);
    s.remove(5);
    assert_eq!((s.len(), s.live_bytes()), (1, 0));
    // A free slot is set again.
    s.set(0, &k, &[0x01]).unwrap();
    assert_eq!((s.key(0), s.value(0)), (&k[..], &[0x01][..]));
}
