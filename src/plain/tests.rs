use super::*;
use proptest::prelude::*;

/// A model of plain data, as the glue would see it.
#[derive(Debug, Clone)]
pub(crate) enum V {
    Nil,
    T,
    Sym(Vec<u8>, bool),
    Int(i64),
    Big(bool, Vec<u8>),
    Float(u64),
    Str(Vec<u8>, bool),
    /// Cars and a tail that is not a list.
    List(Vec<V>, Box<V>),
    Vector(Vec<V>),
}

pub(crate) fn encode_into(e: &mut Encoder<'_>, v: &V) {
    match v {
        V::Nil => e.nil(),
        V::T => e.t(),
        V::Sym(n, m) => e.symbol(n, *m),
        V::Int(i) => e.int(*i),
        V::Big(neg, mag) => e.bignum(*neg, mag),
        V::Float(b) => e.float(*b),
        V::Str(s, m) => e.string(s, *m),
        V::List(cars, tail) => {
            e.list(cars.len());
            cars.iter().for_each(|c| encode_into(e, c));
            encode_into(e, tail);
        }
        V::Vector(xs) => {
            e.vector(xs.len());
            xs.iter().for_each(|x| encode_into(e, x));
        }
    }
}

pub(crate) fn enc(v: &V) -> Vec<u8> {
    let mut out = Vec::new();
    let mut e = Encoder::new(&mut out);
    encode_into(&mut e, v);
    e.result().unwrap();
    out
}

/// An owned item, the expected result of a walk.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Own {
    Nil,
    T,
    Sym(Vec<u8>, bool),
    Int(i64),
    Big(bool, Vec<u8>),
    Float(u64),
    Str(Vec<u8>, bool),
    List(usize),
    Vector(usize),
}

fn own(i: Item<'_>) -> Own {
    match i {
        Item::Nil => Own::Nil,
        Item::T => Own::T,
        Item::Symbol { name, multibyte } => Own::Sym(name.to_vec(), multibyte),
        Item::Int(v) => Own::Int(v),
        Item::Bignum { negative, magnitude_le } => Own::Big(negative, magnitude_le.to_vec()),
        Item::Float(b) => Own::Float(b),
        Item::Str { bytes, multibyte } => Own::Str(bytes.to_vec(), multibyte),
        Item::List(n) => Own::List(n),
        Item::Vector(n) => Own::Vector(n),
    }
}

/// The canonical items of a model value, computed without the encoder.
fn expected(v: &V, out: &mut Vec<Own>) {
    match v {
        V::Nil => out.push(Own::Nil),
        V::T => out.push(Own::T),
        V::Sym(n, _) if n == b"nil" => out.push(Own::Nil),
        V::Sym(n, _) if n == b"t" => out.push(Own::T),
        V::Sym(n, m) => out.push(Own::Sym(n.clone(), *m && !n.is_ascii())),
        V::Int(i) => out.push(int_item(*i < 0, &i.unsigned_abs().to_le_bytes())),
        V::Big(neg, mag) => out.push(int_item(*neg, mag)),
        V::Float(b) => out.push(Own::Float(*b)),
        V::Str(s, m) => out.push(Own::Str(s.clone(), *m)),
        V::List(cars, tail) => {
            out.push(Own::List(cars.len()));
            cars.iter().for_each(|c| expected(c, out));
            expected(tail, out);
        }
        V::Vector(xs) => {
            out.push(Own::Vector(xs.len()));
            xs.iter().for_each(|x| expected(x, out));
        }
    }
}

fn int_item(neg: bool, mag: &[u8]) -> Own {
    let mut mag = mag.to_vec();
    while mag.last() == Some(&0) {
        mag.pop();
    }
    if mag.len() <= 8 {
        let mut w = [0u8; 8];
        w[..mag.len()].copy_from_slice(&mag);
        let m = i128::from(u64::from_le_bytes(w));
        let v = if neg { -m } else { m };
        if (i128::from(FIXNUM_MIN)..=i128::from(FIXNUM_MAX)).contains(&v) {
            return Own::Int(v as i64);
        }
    }
    Own::Big(neg, mag)
}

fn items_of(bytes: &[u8]) -> Vec<Own> {
    let mut out = Vec::new();
    let n = walk(bytes, |i| out.push(own(i)));
    assert_eq!(n, bytes.len());
    out
}

/// `equal` on the model: the canonical items, an all-ASCII multibyte
/// string counting as unibyte.
fn model_equal(a: &V, b: &V) -> bool {
    let norm = |v: &V| {
        let mut out = Vec::new();
        expected(v, &mut out);
        out.into_iter()
            .map(|i| match i {
                Own::Str(s, m) => {
                    let m = m && !s.is_ascii();
                    Own::Str(s, m)
                }
                i => i,
            })
            .collect::<Vec<_>>()
    };
    norm(a) == norm(b)
}

fn check_round_trip(v: &V) {
    let e = enc(v);
    assert_eq!(validate(&e), Ok(e.len()), "{v:?} -> {e:02x?}");
    assert_eq!(value_len(&e), e.len());
    // As in a record, where the value's bytes follow the key's.
    let mut rec = e.clone();
    rec.extend_from_slice(&[TAG_INT, 0x81, 0x01]);
    assert_eq!(value_len(&rec), e.len());
    let mut want = Vec::new();
    expected(v, &mut want);
    assert_eq!(items_of(&e), want, "{v:?}");
    assert!(equal(&e, &e));
}

fn s(x: &str) -> V {
    V::Str(x.as_bytes().to_vec(), true)
}

fn u(x: &[u8]) -> V {
    V::Str(x.to_vec(), false)
}

#[test]
fn round_trip_every_kind() {
    let vals = vec![
        V::Nil,
        V::T,
        V::Sym(b"foo".to_vec(), false),
        V::Sym(b":key".to_vec(), true),
        V::Sym("é".as_bytes().to_vec(), true),
        V::Sym(b"\xff".to_vec(), false),
        V::Sym(b"nil".to_vec(), false),
        V::Sym(b"t".to_vec(), true),
        V::Sym(Vec::new(), false),
        V::Int(0),
        V::Int(-1),
        V::Int(FIXNUM_MAX),
        V::Int(FIXNUM_MIN),
        V::Int(FIXNUM_MAX + 1),
        V::Int(FIXNUM_MIN - 1),
        V::Int(i64::MAX),
        V::Int(i64::MIN),
        V::Big(true, vec![0, 0, 0, 0, 0, 0, 0, 0x20]), // -2^61: a fixnum
        V::Big(false, vec![0, 0, 0, 0, 0, 0, 0, 0x20]), // 2^61: a bignum
        V::Big(false, vec![1, 0, 0, 0]),
        V::Big(true, vec![0, 0]), // -0
        V::Big(true, vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 0]),
        V::Float(0f64.to_bits()),
        V::Float((-0f64).to_bits()),
        V::Float(f64::NAN.to_bits()),
        V::Float(0x7ff8_dead_beef_0001),
        V::Float(1.5f64.to_bits()),
        u(b""),
        u(b"abc"),
        u(b"\xff\x00"),
        s(""),
        s("abc"),
        s("é\u{10ffff}"),
        V::Str(b"\xc1\xbf\xf8\x8f\xbf\xbd\xbf\xed\xa0\x80\xf7\xbf\xbf\xbf".to_vec(), true),
        V::List(vec![V::Int(1)], Box::new(V::Nil)),
        V::List(vec![V::Int(1), s("x")], Box::new(V::Int(2))),
        V::List(vec![V::Nil], Box::new(V::Vector(vec![V::T]))),
        V::Vector(vec![]),
        V::Vector(vec![V::Vector(vec![]), V::List(vec![V::Nil], Box::new(V::Nil)), u(b"z")]),
        V::Str(vec![b'a'; 300], false),
    ];
    for v in &vals {
        check_round_trip(v);
    }
    // The encodings themselves, for the cases the spec spells out.
    assert_eq!(enc(&V::Sym(b"nil".to_vec(), false)), [0x00]);
    assert_eq!(enc(&V::Sym(b":key".to_vec(), true))[0], TAG_SYMBOL);
    assert_eq!(enc(&V::Int(-2)), [0x04, 0x03]);
    assert_eq!(enc(&V::Int(150)), [0x04, 0xac, 0x02]);
    assert_eq!(enc(&V::Int(FIXNUM_MAX + 1)), [0x05, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0x20]);
    assert_eq!(enc(&V::Big(true, vec![0, 0])), [0x04, 0x00]);
    assert_eq!(enc(&V::Float(1.5f64.to_bits())), [0x06, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f]);
    assert_eq!(enc(&s("")), [0x08, 0x00]);
    assert_eq!(enc(&V::List(vec![V::Int(1)], Box::new(V::Nil))), [0x09, 0x01, 0x04, 0x02, 0x00]);
}

#[track_caller]
fn rejects(bytes: &[u8], what: &str, offset: usize) {
    assert_eq!(validate(bytes), Err(Corrupt { what: leak(what), offset }), "{bytes:02x?}");
}

fn leak(s: &str) -> &'static str {
    [INVALID_TAG, INVALID_VARINT, PAST_END, BAD_INTEGER, BAD_SYMBOL, BAD_MULTIBYTE, EMPTY_LIST, TAIL_LIST, TOO_DEEP]
        .into_iter()
        .find(|w| *w == s)
        .unwrap()
}

#[test]
fn canonical_rules_each_have_a_failing_case() {
    rejects(b"", PAST_END, 0);
    rejects(&[0x0b], INVALID_TAG, 0);
    rejects(&[0xff], INVALID_TAG, 0);
    // Varints: overlong, too long, too big, cut.
    rejects(&[0x07, 0x80, 0x00], INVALID_VARINT, 0);
    rejects(&[0x04, 0x81, 0x00], INVALID_VARINT, 0);
    rejects(&[0x04, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02], INVALID_VARINT, 0);
    rejects(&[0x04, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01], INVALID_VARINT, 0);
    rejects(&[0x04, 0x80], PAST_END, 0);
    // Lengths past the end.
    rejects(&[0x07, 0x05, b'a'], PAST_END, 0);
    rejects(&[0x07, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], PAST_END, 0);
    rejects(&[0x06, 0, 0, 0], PAST_END, 0);
    rejects(&[0x09, 0x01, 0x00], PAST_END, 0);
    rejects(&[0x0a, 0x02, 0x00], PAST_END, 0);
    rejects(&[0x0a, 0x01, 0x0a, 0x01], PAST_END, 2);
    rejects(&[0x05, 0x00], PAST_END, 0);
    // Integers.
    let mut z = vec![0x04];
    put_varint(&mut z, 1 << 62);
    rejects(&z, BAD_INTEGER, 0);
    rejects(&[0x05, 0x02, 0x01, 0xff], BAD_INTEGER, 0);
    rejects(&[0x05, 0x00, 0x00], BAD_INTEGER, 0);
    rejects(&[0x05, 0x00, 0x02, 0xff, 0x00], BAD_INTEGER, 0);
    rejects(&[0x05, 0x00, 0x01, 0x01], BAD_INTEGER, 0);
    rejects(&[0x05, 0x01, 0x08, 0, 0, 0, 0, 0, 0, 0, 0x20], BAD_INTEGER, 0); // -2^61
    assert!(validate(&[0x05, 0x00, 0x08, 0, 0, 0, 0, 0, 0, 0, 0x20]).is_ok()); // 2^61
    assert!(validate(&[0x05, 0x01, 0x08, 1, 0, 0, 0, 0, 0, 0, 0x20]).is_ok()); // -2^61-1
    // Symbols.
    rejects(&[0x02, 0x03, b'n', b'i', b'l'], BAD_SYMBOL, 0);
    rejects(&[0x02, 0x01, b't'], BAD_SYMBOL, 0);
    rejects(&[0x03, 0x01, b'x'], BAD_SYMBOL, 0);
    rejects(&[0x03, 0x01, 0xff], BAD_MULTIBYTE, 0);
    assert!(validate(&[0x02, 0x01, 0xff]).is_ok());
    // Multibyte strings.
    for bad in [
        &[0x80][..],
        &[0xc3],
        &[0xc3, 0x41],
        &[0xe0, 0x80, 0x80],
        &[0xf0, 0x80, 0x80, 0x80],
        &[0xf8, 0x87, 0xbf, 0xbf, 0xbf],
        &[0xf8, 0x8f, 0xbf, 0xbe, 0x80],
        &[0xf9, 0x88, 0x80, 0x80, 0x80],
        &[0xfe],
        &[b'a', b'b', b'c', b'd', b'e', b'f', b'g', b'h', 0xc3],
    ] {
        let mut e = vec![0x08, bad.len() as u8];
        e.extend_from_slice(bad);
        rejects(&e, BAD_MULTIBYTE, 0);
        assert!(!valid_multibyte(bad));
    }
    // Lists.
    rejects(&[0x09, 0x00, 0x00], EMPTY_LIST, 0);
    rejects(&[0x09, 0x01, 0x00, 0x09, 0x01, 0x00, 0x00], TAIL_LIST, 3);
    // A list as a car, or as a vector's element, is fine.
    assert_eq!(validate(&[0x09, 0x01, 0x09, 0x01, 0x00, 0x00, 0x00]), Ok(7));
    // Only one value is read: trailing bytes are the caller's business.
    assert_eq!(validate(&[0x00, 0xff]), Ok(1));
}

#[test]
fn multibyte_forms() {
    for good in [
        &b""[..],
        b"plain ascii, long enough for a word or two",
        "é€😀".as_bytes(),
        &[0xc0, 0x80, 0xc1, 0xbf],
        &[0xed, 0xa0, 0x80],
        &[0xf4, 0x90, 0x80, 0x80],
        &[0xf7, 0xbf, 0xbf, 0xbf],
        &[0xf8, 0x88, 0x80, 0x80, 0x80],
        &[0xf8, 0x8f, 0xbf, 0xbd, 0xbf],
    ] {
        assert!(valid_multibyte(good), "{good:02x?}");
    }
    assert!(utf8_exact("é€😀".as_bytes()));
    for not_utf8 in [&[0xc1, 0xbf][..], &[0xed, 0xa0, 0x80], &[0xf4, 0x90, 0x80, 0x80], &[0xf8, 0x88, 0x80, 0x80, 0x80]] {
        assert!(valid_multibyte(not_utf8) && !utf8_exact(not_utf8));
    }
    assert_eq!(char_count("aé€😀".as_bytes(), true), 4);
    assert_eq!(char_count(&[0xc1, 0xbf, 0xf8, 0x88, 0x80, 0x80, 0x80], true), 2);
    assert_eq!(char_count("aé".as_bytes(), false), 3);
}

#[test]
fn equal_and_hash_follow_emacs() {
    let eq = |a: &V, b: &V| {
        let (x, y) = (enc(a), enc(b));
        let e = equal(&x, &y);
        assert_eq!(e, equal(&y, &x));
        if e {
            assert_eq!(hash(&x), hash(&y));
        }
        e
    };
    // ASCII multibyte = unibyte, also nested.
    assert!(eq(&s("abc"), &u(b"abc")));
    assert!(eq(&s(""), &u(b"")));
    assert!(eq(
        &V::Vector(vec![V::List(vec![s("k")], Box::new(s("v")))]),
        &V::Vector(vec![V::List(vec![u(b"k")], Box::new(u(b"v")))])
    ));
    // Unibyte "\377" vs the multibyte raw byte; "é" vs its UTF-8 bytes unibyte.
    assert!(!eq(&u(b"\xff"), &V::Str(vec![0xc1, 0xbf], true)));
    assert!(!eq(&s("é"), &u("é".as_bytes())));
    // Floats bit for bit.
    assert!(!eq(&V::Float(0f64.to_bits()), &V::Float((-0f64).to_bits())));
    assert!(eq(&V::Float(f64::NAN.to_bits()), &V::Float(f64::NAN.to_bits())));
    assert!(!eq(&V::Float(0x7ff8_0000_0000_0001), &V::Float(0x7ff8_0000_0000_0002)));
    // Integers by value, whatever the form given to the encoder.
    assert!(eq(&V::Int(5), &V::Big(false, vec![5, 0, 0])));
    assert!(eq(&V::Int(i64::MIN), &V::Big(true, vec![0, 0, 0, 0, 0, 0, 0, 0x80, 0])));
    assert!(!eq(&V::Int(1), &V::Float(1f64.to_bits())));
    // Symbols vs strings; dotted vs proper.
    assert!(!eq(&V::Sym(b"a".to_vec(), false), &u(b"a")));
    assert!(!eq(&V::List(vec![V::Int(1)], Box::new(V::Nil)), &V::List(vec![V::Int(1)], Box::new(V::Int(2)))));
    assert!(!eq(&V::Vector(vec![V::Int(1)]), &V::List(vec![V::Int(1)], Box::new(V::Nil))));
    // The fast string hash is the hash of a string encoding.
    assert_eq!(hash(&enc(&s("héllo"))), hash_string("héllo".as_bytes()));
    assert_eq!(hash(&enc(&V::Int(-7))), hash_int(-7));
}

/// `depth` containers, each inside the previous one; `vector` picks the
/// kind, the innermost holds an integer.
fn nested(depth: usize, vector: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut e = Encoder::new(&mut out);
    for _ in 0..depth {
        if vector {
            e.vector(1);
        } else {
            e.list(1);
        }
    }
    e.int(7);
    if !vector {
        for _ in 0..depth {
            e.nil();
        }
    }
    out
}

#[test]
fn depth_limit_without_stack_overflow() {
    for vector in [true, false] {
        let ok = nested(MAX_DEPTH, vector);
        assert_eq!(validate(&ok), Ok(ok.len()));
        assert_eq!(items_of(&ok).len(), if vector { MAX_DEPTH + 1 } else { 2 * MAX_DEPTH + 1 });
        assert_eq!(hash(&ok), hash(&ok.clone()));
        let mut other = ok.clone();
        other[2 * MAX_DEPTH + 1] = 0x10; // the integer 8
        assert!(!equal(&ok, &other));
        let bad = nested(MAX_DEPTH + 1, vector);
        rejects(&bad, TOO_DEEP, 2 * MAX_DEPTH);
    }
    // An empty vector counts as a level.
    let mut out = Vec::new();
    let mut e = Encoder::new(&mut out);
    for _ in 0..MAX_DEPTH {
        e.vector(1);
    }
    e.vector(0);
    rejects(&out, TOO_DEEP, 2 * MAX_DEPTH);
    // A long cdr chain is not nesting, nor is a tail: (x . [(x . [...])])
    // alternates lists and vectors, and only the vectors' elements nest.
    let long = enc(&V::List(vec![V::Int(1); 100_000], Box::new(V::Nil)));
    assert_eq!(validate(&long), Ok(long.len()));
    let mut out = Vec::new();
    let mut e = Encoder::new(&mut out);
    for _ in 0..MAX_DEPTH - 1 {
        e.list(1);
        e.int(0);
        e.vector(1);
    }
    e.int(0);
    assert_eq!(validate(&out), Ok(out.len()), "lists at depth d, their tail vectors at d too");
}

fn leaf() -> impl Strategy<Value = V> {
    // Small alphabets, so that equal values come up.
    let ub = prop::collection::vec(prop::sample::select(vec![b'a', b'b', 0xff, 0xc3, 0xa9]), 0..4);
    let mb = prop::collection::vec(
        prop::sample::select(vec![&b"a"[..], b"b", "é".as_bytes(), b"\xc1\xbf", b"\xf8\x8f\xbf\xbd\xbf", b"\xed\xa0\x80"]),
        0..4,
    )
    .prop_map(|cs| cs.concat());
    prop_oneof![
        Just(V::Nil),
        Just(V::T),
        prop::sample::select(vec!["nil", "t", "a", ":k", "é"])
            .prop_flat_map(|n| any::<bool>().prop_map(move |m| V::Sym(n.as_bytes().to_vec(), m))),
        prop_oneof![
            -3i64..3,
            Just(FIXNUM_MAX),
            Just(FIXNUM_MIN),
            Just(FIXNUM_MIN - 1),
            Just(i64::MIN),
            Just(i64::MAX),
            any::<i64>()
        ]
        .prop_map(V::Int),
        (any::<bool>(), prop::collection::vec(prop::sample::select(vec![0u8, 1, 0x20, 0xff]), 0..10))
            .prop_map(|(n, m)| V::Big(n, m)),
        prop::sample::select(vec![0u64, 1 << 63, 0x7ff8_0000_0000_0000, 0x7ff8_0000_0000_0001, 1.5f64.to_bits()])
            .prop_map(V::Float),
        ub.prop_map(|b| V::Str(b, false)),
        mb.prop_map(|b| V::Str(b, true)),
    ]
}

pub(crate) fn value() -> impl Strategy<Value = V> {
    leaf().prop_recursive(4, 40, 4, |inner| {
        let tail = prop_oneof![
            3 => Just(V::Nil),
            1 => leaf(),
            1 => prop::collection::vec(inner.clone(), 0..3).prop_map(V::Vector),
        ];
        prop_oneof![
            (prop::collection::vec(inner.clone(), 1..4), tail).prop_map(|(c, t)| V::List(c, Box::new(t))),
            prop::collection::vec(inner, 0..4).prop_map(V::Vector),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_values_round_trip(v in value()) {
        check_round_trip(&v);
    }

    #[test]
    fn equal_and_hash_match_the_model(a in value(), b in value()) {
        let (x, y) = (enc(&a), enc(&b));
        let e = equal(&x, &y);
        prop_assert_eq!(e, model_equal(&a, &b));
        prop_assert_eq!(e, equal(&y, &x));
        if e {
            prop_assert_eq!(hash(&x), hash(&y));
        }
    }

    /// An atom compared and hashed as an item, without encoding it, as
    /// its encoding is.
    #[test]
    fn atoms_compare_and_hash_as_their_encodings(a in leaf(), b in value()) {
        let (x, y) = (enc(&a), enc(&b));
        let (atom, _) = read(&x, 0);
        prop_assert_eq!(hash_atom(atom), hash(&x));
        prop_assert_eq!(starts_with_atom(&y, atom), equal(&y, &x));
        prop_assert!(starts_with_atom(&x, atom));
        // More bytes after the value, as in a record.
        let mut rec = y.clone();
        rec.extend_from_slice(&x);
        prop_assert_eq!(starts_with_atom(&rec, atom), equal(&y, &x));
        prop_assert_eq!(atom.tag(), x[0]);
        if let Item::Str { bytes, multibyte } = atom {
            // The twin of other multibyteness: equal when all ASCII.
            let twin = Item::Str { bytes, multibyte: !multibyte };
            prop_assert_eq!(starts_with_atom(&x, twin), bytes.is_ascii());
        }
    }

    /// A value whose ASCII strings change multibyteness is `equal` to it,
    /// with the same hash; changing a non-ASCII string's multibyteness makes
    /// a value that is not.
    #[test]
    fn twins_are_equal(v in value(), flips in prop::collection::vec(any::<bool>(), 64)) {
        let mut k = 0;
        let w = twin(&v, &mut |bytes: &[u8], m: bool| {
            k += 1;
            if bytes.is_ascii() && flips[k % 64] { !m } else { m }
        });
        let (x, y) = (enc(&v), enc(&w));
        prop_assert!(equal(&x, &y));
        prop_assert!(model_equal(&v, &w));
        prop_assert_eq!(hash(&x), hash(&y));
        let mut k = 0;
        let w = twin(&v, &mut |bytes: &[u8], m: bool| {
            k += 1;
            if flips[k % 64] && valid_multibyte(bytes) { !m } else { m }
        });
        let y = enc(&w);
        prop_assert_eq!(equal(&x, &y), model_equal(&v, &w));
    }

    /// Damaged encodings are rejected or read consistently, never a panic.
    #[test]
    fn damaged_encodings_never_panic(v in value(), at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let mut e = enc(&v);
        let i = at.index(e.len());
        e[i] = byte;
        e.truncate(cut.index(e.len() + 1).max(i + 1));
        if let Ok(n) = validate(&e) {
            let items = items_of(&e[..n]);
            prop_assert!(!items.is_empty());
            prop_assert_eq!(enc_items(&items), e[..n].to_vec());
        }
    }
}

/// `v` with each string's multibyteness given by `flip(bytes, multibyte)`.
fn twin(v: &V, flip: &mut dyn FnMut(&[u8], bool) -> bool) -> V {
    match v {
        V::Str(b, m) => V::Str(b.clone(), flip(b, *m)),
        V::List(cars, tail) => V::List(cars.iter().map(|c| twin(c, flip)).collect(), Box::new(twin(tail, flip))),
        V::Vector(xs) => V::Vector(xs.iter().map(|x| twin(x, flip)).collect()),
        v => v.clone(),
    }
}

/// Re-encode a walk's items (to check that whatever validates is canonical:
/// the encoder writes the same bytes back).
fn enc_items(items: &[Own]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut e = Encoder::new(&mut out);
    for i in items {
        match i {
            Own::Nil => e.nil(),
            Own::T => e.t(),
            Own::Sym(n, m) => e.symbol(n, *m),
            Own::Int(v) => e.int(*v),
            Own::Big(neg, m) => e.bignum(*neg, m),
            Own::Float(b) => e.float(*b),
            Own::Str(b, m) => e.string(b, *m),
            Own::List(n) => e.list(*n),
            Own::Vector(n) => e.vector(*n),
        }
    }
    out
}

#[test]
fn validated_bytes_are_what_the_encoder_writes() {
    // Each tag with a payload, re-encoded from its walk.
    for v in [s("é"), V::Int(FIXNUM_MIN - 5), V::Sym("é".as_bytes().to_vec(), true), V::Float(7)] {
        let e = enc(&v);
        assert_eq!(enc_items(&items_of(&e)), e);
    }
}
