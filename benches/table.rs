//! `make bench-rust` (`cargo bench --bench table`): the pure Rust table
//! (`rhash::table::RawTable` with a small map wrapper, hashed with
//! `rhash::hash`) against `hashbrown` with the FNV hasher
//! (`fnv::FnvBuildHasher`) and against `std::collections::HashMap` (SipHash),
//! on u64 and 16-byte string keys: insert / hit / miss / churn.  Plus
//! `hash_bytes` (word-wise) against `hash_bytes_fnv_bytewise` on 16/40/100
//! bytes.
//!
//! Criterion's own output comes first; a compact table of ns/op and the ratio
//! hashbrown/rhash ("throughput relative to hashbrown", target >= 0.8) is
//! printed at the end, read back from criterion's estimates (medians).
//!
//! Environment: RHASH_BENCH_RUST_SIZES (default "1000 100000 1000000": in L1,
//! in L2, memory-bound),
//! RHASH_BENCH_RUST_TIME (measurement seconds per bench, default 1).
//! Criterion arguments work as usual, e.g. `cargo bench --bench table -- u64`.

use criterion::{black_box, Criterion, SamplingMode};
use rhash::hash::{hash_bytes, hash_bytes_fnv_bytewise, hash_u64};
use rhash::table::{meta, RawTable};
use std::collections::HashMap as StdMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

type FnvMap<K> = hashbrown::HashMap<K, u64, fnv::FnvBuildHasher>;

/// Keys as the bench stores them: the map keeps them in a side vector indexed
/// by entry number (as the Emacs glue keeps Lisp keys), compares them itself.
trait BenchKey: Copy + Eq + std::hash::Hash {
    fn rhash(&self) -> u64;
    /// The entry payload, and whether equal payloads mean equal keys (as
    /// for the module's integer keys, compared without touching Lisp).
    fn payload(&self) -> (u64, bool);
}

impl BenchKey for u64 {
    #[inline]
    fn rhash(&self) -> u64 {
        hash_u64(*self, 0)
    }
    #[inline]
    fn payload(&self) -> (u64, bool) {
        (*self, true)
    }
}

impl BenchKey for &str {
    #[inline]
    fn rhash(&self) -> u64 {
        hash_bytes(self.as_bytes())
    }
    /// The length, as the module's string keys carry it; the bytes are
    /// compared in the side vector.
    #[inline]
    fn payload(&self) -> (u64, bool) {
        (self.len() as u64, false)
    }
}

/// A map on `RawTable` as the module uses it: keys and values in side vectors
/// indexed by entry number (the Lisp vectors); the entry payload carries a
/// u64 key itself, or a string key's length.
struct RMap<K> {
    t: RawTable,
    keys: Vec<K>,
    vals: Vec<u64>,
}

impl<K: BenchKey> RMap<K> {
    fn new() -> Self {
        RMap { t: RawTable::new(), keys: Vec::new(), vals: Vec::new() }
    }

    /// Is entry `i` key `k`?  On payload alone where that decides.
    #[inline]
    fn same(&self, i: usize, k: &K) -> bool {
        match k.payload() {
            (p, true) => self.t.payload(i) == p,
            (p, false) => self.t.payload(i) == p && self.keys[i] == *k,
        }
    }

    #[inline]
    fn find(&self, k: &K, m: u64) -> Option<usize> {
        self.t.find(m, |i| self.same(i, k)).map(|(i, _)| i)
    }

    #[inline]
    fn get(&self, k: &K) -> Option<u64> {
        self.find(k, meta(1, k.rhash())).map(|i| self.vals[i])
    }

    #[inline]
    fn insert(&mut self, k: K, v: u64) {
        let m = meta(1, k.rhash());
        match self.find(&k, m) {
            Some(i) => self.vals[i] = v,
            None => {
                let i = self.t.insert(m, k.payload().0).expect("alloc");
                if i == self.keys.len() {
                    self.keys.push(k);
                    self.vals.push(v);
                } else {
                    self.keys[i] = k;
                    self.vals[i] = v;
                }
            }
        }
    }

    /// Remove at the slot the lookup found (as the module does).
    #[inline]
    fn remove(&mut self, k: &K) {
        if let Some((i, slot)) = self.t.find(meta(1, k.rhash()), |i| self.same(i, k)) {
            self.t.remove_at(slot, i);
        }
    }
}

/// The operations every contender provides.
trait Contender<K> {
    fn make() -> Self;
    fn put(&mut self, k: K, v: u64);
    fn look(&self, k: &K) -> Option<u64>;
    fn del(&mut self, k: &K);
}

impl<K: BenchKey> Contender<K> for RMap<K> {
    fn make() -> Self {
        RMap::new()
    }
    #[inline]
    fn put(&mut self, k: K, v: u64) {
        self.insert(k, v)
    }
    #[inline]
    fn look(&self, k: &K) -> Option<u64> {
        self.get(k)
    }
    #[inline]
    fn del(&mut self, k: &K) {
        self.remove(k)
    }
}

/// hashbrown's and std's maps share their method names.
macro_rules! contender {
    ($map:ty, $make:expr) => {
        impl<K: BenchKey> Contender<K> for $map {
            fn make() -> Self {
                $make
            }
            #[inline]
            fn put(&mut self, k: K, v: u64) {
                self.insert(k, v);
            }
            #[inline]
            fn look(&self, k: &K) -> Option<u64> {
                self.get(k).copied()
            }
            #[inline]
            fn del(&mut self, k: &K) {
                self.remove(k);
            }
        }
    };
}
contender!(FnvMap<K>, FnvMap::default());
contender!(StdMap<K, u64>, StdMap::new());

/// The data of one key type and size: `keys` (inserted), `hits` (equal keys,
/// for strings separate copies), `misses` (absent), `pool` (2n keys for churn).
struct Data<K> {
    keys: Vec<K>,
    hits: Vec<K>,
    misses: Vec<K>,
    pool: Vec<K>,
}

fn filled<K: BenchKey, C: Contender<K>>(keys: &[K]) -> C {
    let mut m = C::make();
    for (i, k) in keys.iter().enumerate() {
        m.put(*k, i as u64);
    }
    m
}

const OPS: [&str; 4] = ["insert", "hit", "miss", "churn"];
const IMPLS: [&str; 3] = ["rhash", "hashbrown-fnv", "std-sip"];

fn bench_impl<K: BenchKey, C: Contender<K>>(c: &mut Criterion, group: &str, name: &str, d: &Data<K>) {
    let mut g = c.benchmark_group(group);
    if d.keys.len() >= 100_000 {
        // One iteration takes milliseconds: equal iteration counts per
        // sample, and the fewest samples criterion allows.
        g.sampling_mode(SamplingMode::Flat).sample_size(10);
    }
    g.bench_function(format!("insert-{name}"), |b| {
        // A fresh map with no size hint each iteration; its drop is not timed.
        b.iter_with_large_drop(|| {
            let mut m = C::make();
            for (i, k) in d.keys.iter().enumerate() {
                m.put(*k, i as u64);
            }
            m
        })
    });
    let m: C = filled(&d.keys);
    g.bench_function(format!("hit-{name}"), |b| {
        b.iter(|| {
            let mut s = 0u64;
            for k in &d.hits {
                s = s.wrapping_add(m.look(k).unwrap_or(1));
            }
            s
        })
    });
    g.bench_function(format!("miss-{name}"), |b| {
        b.iter(|| {
            let mut s = 0u64;
            for k in &d.misses {
                s = s.wrapping_add(m.look(k).unwrap_or(1));
            }
            s
        })
    });
    drop(m);
    // Churn: a window of n live keys slides over a pool of 2n; one step
    // removes the oldest key and inserts the next one (steady state, the
    // state carries over between iterations).
    let n = d.keys.len();
    let pool = &d.pool;
    let mut m: C = filled(&pool[..n]);
    let mut lo = 0usize;
    g.bench_function(format!("churn-{name}"), |b| {
        b.iter(|| {
            for _ in 0..n {
                m.del(&pool[lo % (2 * n)]);
                m.put(pool[(lo + n) % (2 * n)], lo as u64);
                lo += 1;
            }
        })
    });
    g.finish();
}

fn bench_keys<K: BenchKey>(c: &mut Criterion, group: &str, d: &Data<K>) {
    bench_impl::<K, RMap<K>>(c, group, IMPLS[0], d);
    bench_impl::<K, FnvMap<K>>(c, group, IMPLS[1], d);
    bench_impl::<K, StdMap<K, u64>>(c, group, IMPLS[2], d);
}

/// Scrambled but distinct u64 keys (sequential keys would flatter FNV).
fn u64_key(i: usize) -> u64 {
    (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17) ^ 0x5555
}

fn str16(i: usize) -> String {
    let s = format!("key:{i:012}");
    debug_assert_eq!(s.len(), 16);
    s
}

fn hash_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("hash");
    for len in [16usize, 40, 100] {
        let strs: Vec<Vec<u8>> =
            (0..256).map(|i| format!("{i:->len$}").into_bytes()).collect();
        g.bench_function(format!("wordwise-{len}"), |b| {
            b.iter(|| {
                let mut s = 0u64;
                for x in &strs {
                    s ^= hash_bytes(black_box(x));
                }
                s
            })
        });
        g.bench_function(format!("bytewise-{len}"), |b| {
            b.iter(|| {
                let mut s = 0u64;
                for x in &strs {
                    s ^= hash_bytes_fnv_bytewise(black_box(x));
                }
                s
            })
        });
    }
    g.finish();
}

fn out_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target")));
    target.join("criterion")
}

/// Median time per iteration in ns from criterion's saved estimates.
fn median_ns(group: &str, id: &str) -> Option<f64> {
    let p = out_dir().join(group).join(id).join("new").join("estimates.json");
    // Only results of this run (a filter or an interrupted run leaves older ones).
    let fresh = std::fs::metadata(&p).and_then(|m| m.modified()).ok()? >= *START.get()?;
    if !fresh {
        return None;
    }
    let s = std::fs::read_to_string(p).ok()?;
    let at = s.find("\"median\"")?;
    let rest = &s[at..];
    let at = rest.find("\"point_estimate\":")? + "\"point_estimate\":".len();
    let num: String = rest[at..].chars().take_while(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+')).collect();
    num.parse().ok()
}

fn fmt(x: Option<f64>, prec: usize) -> String {
    x.map_or_else(|| "n/a".to_string(), |v| format!("{v:.prec$}"))
}

static START: OnceLock<SystemTime> = OnceLock::new();

fn main() {
    START.get_or_init(SystemTime::now);
    let sizes: Vec<usize> = std::env::var("RHASH_BENCH_RUST_SIZES")
        .ok()
        .map(|s| s.split_whitespace().filter_map(|w| w.parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 100_000, 1_000_000]);
    let secs: f64 = std::env::var("RHASH_BENCH_RUST_TIME").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let mut c = Criterion::default()
        .measurement_time(Duration::from_secs_f64(secs))
        .warm_up_time(Duration::from_millis(300))
        .sample_size(20)
        .output_directory(&out_dir())
        .configure_from_args();

    let mut groups: Vec<(String, usize)> = Vec::new();
    for &n in &sizes {
        let d = Data {
            keys: (0..n).map(u64_key).collect(),
            hits: (0..n).map(u64_key).collect(),
            misses: (n..2 * n).map(u64_key).collect(),
            pool: (0..2 * n).map(u64_key).collect(),
        };
        let g = format!("u64-{n}");
        bench_keys(&mut c, &g, &d);
        groups.push((g, n));

        let owned: Vec<String> = (0..2 * n).map(str16).collect();
        let copies: Vec<String> = owned.iter().take(n).cloned().collect();
        let d = Data {
            keys: owned[..n].iter().map(|s| s.as_str()).collect(),
            hits: copies.iter().map(|s| s.as_str()).collect(),
            misses: owned[n..].iter().map(|s| s.as_str()).collect(),
            pool: owned.iter().map(|s| s.as_str()).collect(),
        };
        let g = format!("str16-{n}");
        bench_keys(&mut c, &g, &d);
        groups.push((g, n));
    }
    hash_benches(&mut c);
    c.final_summary();

    // Compact summary.  ns/op = median per iteration / n.
    println!();
    println!("## Pure table: ns/op (criterion medians), rel = hashbrown-fnv time / rhash time (target >= 0.8)");
    println!();
    println!("| keys | n | op | rhash | hashbrown-fnv | std-sip | rel |");
    println!("|---|---:|---|---:|---:|---:|---:|");
    for (g, n) in &groups {
        let keys = g.split('-').next().unwrap_or("");
        for op in OPS {
            let t: Vec<Option<f64>> = IMPLS.iter().map(|i| median_ns(g, &format!("{op}-{i}")).map(|v| v / *n as f64)).collect();
            let rel = match (t[0], t[1]) {
                (Some(r), Some(h)) if r > 0.0 => Some(h / r),
                _ => None,
            };
            println!(
                "| {keys} | {n} | {op} | {} | {} | {} | {} |",
                fmt(t[0], 2),
                fmt(t[1], 2),
                fmt(t[2], 2),
                fmt(rel, 2)
            );
        }
    }
    println!();
    println!("## hash_bytes (word-wise) vs hash_bytes_fnv_bytewise: ns per string");
    println!();
    println!("| bytes | word-wise | byte-wise | byte-wise / word-wise |");
    println!("|---:|---:|---:|---:|");
    for len in [16, 40, 100] {
        let w = median_ns("hash", &format!("wordwise-{len}")).map(|v| v / 256.0);
        let b = median_ns("hash", &format!("bytewise-{len}")).map(|v| v / 256.0);
        let r = match (w, b) {
            (Some(w), Some(b)) if w > 0.0 => Some(b / w),
            _ => None,
        };
        println!("| {len} | {} | {} | {} |", fmt(w, 2), fmt(b, 2), fmt(r, 2));
    }
}
