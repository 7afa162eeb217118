//! The msgpack reader and writer: round trips, go-msgpack's forms, hostile input.

use proptest::prelude::*;

use super::*;

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Bool),
        any::<u64>().prop_map(Value::Uint),
        (i64::MIN..0).prop_map(Value::Int),
        any::<f64>().prop_filter("NaN != NaN", |f| !f.is_nan()).prop_map(Value::Float),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Value::Bytes),
        (any::<i8>(), proptest::collection::vec(any::<u8>(), 0..20)).prop_map(|(t, d)| Value::Ext(t, d)),
    ];
    leaf.prop_recursive(4, 64, 20, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..20).prop_map(Value::Array),
            proptest::collection::vec((inner.clone(), inner), 0..20).prop_map(Value::Map),
        ]
    })
}

fn decode_all(bytes: &[u8]) -> Result<Value, MsgpackError> {
    let mut pos = 0;
    let v = read(bytes, &mut pos)?;
    assert_eq!(pos, bytes.len(), "read stops at the end of the value");
    Ok(v)
}

proptest! {
    #[test]
    fn write_then_read_is_identity(v in value()) {
        let mut out = Vec::new();
        write(&mut out, &v);
        prop_assert_eq!(decode_all(&out).unwrap(), v);
    }

    #[test]
    fn any_bytes_read_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut pos = 0;
        if read(&bytes, &mut pos).is_ok() {
            prop_assert!(pos <= bytes.len());
        }
    }

    #[test]
    fn every_truncation_of_a_value_is_an_eof(v in value()) {
        let mut out = Vec::new();
        write(&mut out, &v);
        for cut in 0..out.len() {
            let mut pos = 0;
            prop_assert!(matches!(read(&out[..cut], &mut pos), Err(MsgpackError::Eof(_))));
        }
    }
}

#[test]
fn go_msgpack_forms() {
    // As Consul 1.8.7's state.bin starts: {"LastIndex": 27}.
    let header = b"\x81\xa9LastIndex\x1b";
    let v = decode_all(header).unwrap();
    assert_eq!(v.get("LastIndex").and_then(Value::as_u64), Some(27));
    let mut out = Vec::new();
    write(&mut out, &v);
    assert_eq!(out, header);
    // Strings over 31 bytes use the old spec's raw16 (0xda), never str8 (0xd9).
    let mut out = Vec::new();
    write(&mut out, &Value::str("caab8baf-beae-3f5e-7489-cb5e85bf8afd"));
    assert_eq!(&out[..3], b"\xda\x00\x24");
    // Negative and wide integers.
    for (n, bytes) in [(-1i64, &b"\xff"[..]), (-33, b"\xd0\xdf"), (-200, b"\xd1\xff\x38")] {
        let mut out = Vec::new();
        write(&mut out, &Value::Int(n));
        assert_eq!(out, bytes);
        assert_eq!(decode_all(bytes).unwrap().as_i64(), Some(n));
    }
}

#[test]
fn hostile_lengths_are_refused_before_allocating() {
    for bytes in [
        &b"\xdd\xff\xff\xff\xff"[..],
        b"\xdf\xff\xff\xff\xff\x00",
        b"\xdb\xff\xff\xff\xff",
        b"\xc9\xff\xff\xff\xff\x01",
    ] {
        assert!(matches!(decode_all(bytes), Err(MsgpackError::Eof(_))), "{bytes:?}");
    }
    assert_eq!(decode_all(b"\xc1"), Err(MsgpackError::Descriptor(0xc1, 0)));
    let deep = vec![0x91u8; 10_000];
    assert!(matches!(decode_all(&deep), Err(MsgpackError::Depth(_))));
}

#[test]
fn json_round_trip() {
    let json =
        serde_json::json!({"Protocol": "http", "N": 3, "Neg": -2, "F": 1.5, "L": [true, null], "M": {}});
    assert_eq!(Value::from_json(&json).to_json(), json);
}
