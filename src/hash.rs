//! Hash functions for keys hashed in Rust (no Emacs types here).
//!
//! FNV-1a is the base; two changes make it fit an open-addressing table:
//! - strings are consumed a 64-bit word at a time (byte-wise FNV costs ~1 ns per
//!   byte, which dominates on 40-byte keys), with a xor-shift fold after each
//!   multiply so that differences in a word's high bytes reach the low bits;
//! - every string hash ends with a full-avalanche finalizer (murmur3
//!   `fmix64`), so the low bits used to pick a slot depend on every input
//!   bit.  Plain FNV-1a puts "a" and "q" in the same slot of a 16-slot table.
//!
//! A 64-bit integer takes one folded multiply instead (`hash_u64`), and a
//! string of up to 16 bytes two (`hash_bytes`).

pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
pub const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Murmur3's 64-bit finalizer: a bijection with full avalanche.
#[inline]
pub fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

/// One FNV-1a step over a whole 64-bit word, folded so high bits feed low bits.
#[inline]
fn step(h: u64, w: u64) -> u64 {
    let h = (h ^ w).wrapping_mul(FNV_PRIME);
    h ^ (h >> 32)
}

/// Hash of a 64-bit integer key, salted by `seed` (so that e.g. the integer 5
/// and a float whose bits are 5 land apart).  One folded multiply (the
/// 128-bit product's halves xored, as foldhash and aHash do): every output
/// bit depends on every input bit, in four instructions where `fmix64`
/// takes ten.  `seed` is a constant at every call, so its spread is too.
#[inline(always)]
pub fn hash_u64(x: u64, seed: u64) -> u64 {
    let p = u128::from(x ^ seed.wrapping_mul(SEED_SPREAD)) * u128::from(FOLD_MUL);
    (p as u64) ^ ((p >> 64) as u64)
}

/// Odd constants from foldhash (digits of pi): the multiplier of
/// `hash_u64` and the spread of its seeds.
const FOLD_MUL: u64 = 0x243f_6a88_85a3_08d3;
const SEED_SPREAD: u64 = 0x1319_8a2e_0370_7345;

/// A second multiplier for the short-string hash's second fold (digits
/// of pi, as `FOLD_MUL`), and the two salts it xors in.
const FOLD_MUL2: u64 = 0x4528_21e6_38d0_1377;
const SHORT_SALT1: u64 = 0xbe54_66cf_34e9_0c6c;
const SHORT_SALT2: u64 = 0xc0ac_29b7_c97c_50dd;

/// The 128-bit product of `x` and `c`, its halves xored.
#[inline(always)]
fn fold(x: u64, c: u64) -> u64 {
    let p = u128::from(x) * u128::from(c);
    (p as u64) ^ ((p >> 64) as u64)
}

/// Hash of every byte of `bytes` (length included).  Up to 16 bytes (most
/// keys): the (at most two, overlapping) words and the length through two
/// folded multiplies, inline, as foldhash hashes short input; longer
/// strings a word at a time (`hash_long`).
#[inline(always)]
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let n = bytes.len();
    if n > 16 {
        return hash_long(bytes);
    }
    let (w0, w1) = match n {
        0 => (0, 0),
        1..=7 => (tail_word(bytes, n), 0),
        _ => (tail_word(&bytes[..8], 8), tail_word(bytes, 8)),
    };
    let h = fold(w0 ^ (n as u64).wrapping_mul(SEED_SPREAD) ^ SHORT_SALT1, FOLD_MUL) ^ w1;
    fold(h ^ SHORT_SALT2, FOLD_MUL2)
}

/// `hash_bytes` of more than 16 bytes: word-wise FNV-1a, then `fmix64`.
#[inline(never)]
fn hash_long(bytes: &[u8]) -> u64 {
    let mut h = step(FNV_OFFSET, bytes.len() as u64);
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        // `chunks_exact(8)` yields 8-byte slices, so the conversion cannot fail.
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        h = step(h, w);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        h = step(h, tail_word(bytes, rest.len()));
    }
    fmix64(h)
}

/// The last `n` (1..=8) bytes of `bytes` as one word, read without a byte
/// loop: the last 8 bytes when there are that many (overlapping the words
/// before), else two overlapping halves, else first, middle and last byte.
/// Every one of the `n` bytes lands in the word.
#[inline(always)]
fn tail_word(bytes: &[u8], n: usize) -> u64 {
    let len = bytes.len();
    // (The slices are 8 and 4 bytes long: the conversions cannot fail.)
    let word = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap_or([0; 8]));
    let half = |i: usize| u64::from(u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap_or([0; 4])));
    if len >= 8 {
        word(len - 8)
    } else if n >= 4 {
        half(0) | (half(len - 4) << 32)
    } else {
        u64::from(bytes[0]) | (u64::from(bytes[n / 2]) << 8) | (u64::from(bytes[n - 1]) << 16)
    }
}

/// Classic byte-at-a-time FNV-1a, finished with `fmix64`.
/// Kept for the benchmark that justified the word-wise variant.
pub fn hash_bytes_fnv_bytewise(bytes: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = fnv::FnvHasher::default();
    h.write(bytes);
    fmix64(h.finish())
}

#[cfg(test)]
mod tests {

    /// Every byte of a string reaches its hash, at every length (the tail
    /// word is read in overlapping pieces).
    #[test]
    fn every_byte_counts_at_every_length() {
        for n in 1..40usize {
            let a: Vec<u8> = (0..n).map(|i| (i * 13 + 1) as u8).collect();
            for d in 0..n {
                let mut b = a.clone();
                b[d] ^= 1;
                assert_ne!(super::hash_bytes(&a), super::hash_bytes(&b), "n={n} d={d}");
            }
        }
    }

    use super::*;
    use std::collections::HashSet;

    fn plain_fnv(bytes: &[u8]) -> u64 {
        use std::hash::Hasher;
        let mut h = fnv::FnvHasher::default();
        h.write(bytes);
        h.finish()
    }

    #[test]
    fn plain_fnv_low_bits_collide_but_ours_do_not() {
        // The seed-anchors finding: "a" and "q" share the low 4 bits under FNV-1a.
        assert_eq!(plain_fnv(b"a") & 15, plain_fnv(b"q") & 15);
        assert_ne!(hash_bytes(b"a") & 15, hash_bytes(b"q") & 15);
        assert_ne!(hash_bytes(b"a") & 31, hash_bytes(b"A") & 31);
    }

    /// Keys that differ only in the top byte of each 8-byte word must still
    /// spread over the low bits (a plain word-wise FNV keeps such differences in
    /// the high bits and would give at most 256 distinct slots).
    #[test]
    fn high_byte_differences_spread() {
        let mut slots = HashSet::new();
        for a in 0..=255u8 {
            for b in [0u8, 1, 2, 3] {
                let mut k = *b"xxxxxxx?yyyyyyy?zz";
                k[7] = a;
                k[15] = b;
                slots.insert(hash_bytes(&k) & 0xffff);
            }
        }
        // 1024 keys into 65536 slots: expect ~1016 distinct.
        assert!(slots.len() > 1000, "only {} distinct slots", slots.len());
    }

    #[test]
    fn low_bits_spread_for_sequential_ints_and_prefixed_strings() {
        for mask in [15u64, 255, 4095] {
            let n = (mask + 1) as usize;
            // 4n keys into n slots: a uniform hash leaves ~2% of slots empty.
            let ints: HashSet<u64> = (0..4 * n as u64).map(|i| hash_u64(i, 0) & mask).collect();
            let strs: HashSet<u64> = (0..4 * n)
                .map(|i| hash_bytes(format!("my-package--internal-function-{i}").as_bytes()) & mask)
                .collect();
            assert!(ints.len() * 100 >= n * 90, "ints {} of {}", ints.len(), n);
            assert!(strs.len() * 100 >= n * 90, "strs {} of {}", strs.len(), n);
        }
    }

    /// Short keys of everyday shapes spread over the low bits (the home
    /// slot) and over the top bits of the 61 a `meta` keeps (the index
    /// slot's tag) as a uniform hash would.
    #[test]
    fn short_keys_spread_over_low_and_tag_bits() {
        let shapes: [fn(usize) -> String; 4] = [|i| format!("k{i:08}"), |i| format!("key-{i}"), |i| format!("{i}"), |i| format!("w{:07x}", i * 2654435761 % (1 << 28))];
        for shape in shapes {
            let n = 1 << 14;
            let hashes: Vec<u64> = (0..n).map(|i| hash_bytes(shape(i).as_bytes())).collect();
            // n keys into n slots: a uniform hash fills 1 - 1/e (63.2%).
            let low: HashSet<u64> = hashes.iter().map(|h| h & (n as u64 - 1)).collect();
            let frac = low.len() as f64 / n as f64;
            assert!((0.61..0.65).contains(&frac), "{}: low bits fill {frac}", shape(0));
            // 256 tags, 64 keys each on average: none far off.
            let mut tags = [0usize; 256];
            hashes.iter().for_each(|h| tags[((h >> 53) & 255) as usize] += 1);
            let (lo, hi) = (tags.iter().min().copied().unwrap_or(0), tags.iter().max().copied().unwrap_or(0));
            assert!(lo >= 30 && hi <= 110, "{}: tags from {lo} to {hi}", shape(0));
        }
    }

    #[test]
    fn every_byte_counts() {
        let a = "p".repeat(100) + "1";
        let b = "p".repeat(100) + "2";
        assert_ne!(hash_bytes(a.as_bytes()), hash_bytes(b.as_bytes()));
        assert_ne!(hash_bytes(b""), hash_bytes(b"\0"));
        assert_ne!(hash_u64(5, 1), hash_u64(5, 2));
    }
}
