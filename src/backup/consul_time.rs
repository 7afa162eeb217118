//! Go's `time.Time` as go-msgpack 0.5 carries it in Consul's records: the bytes of
//! `Time.MarshalBinary` in a raw string (version 1: seconds since 0001-01-01 UTC as a
//! big-endian i64, nanoseconds as i32, the zone offset in minutes as i16, -1 for UTC;
//! version 2 adds a byte of offset seconds). The zero time (Go's unset value) reads as `None`.

use crate::codec::msgpack::Value;

/// Seconds from 0001-01-01 to 1970-01-01.
const UNIX_EPOCH_FROM_YEAR_ONE: i64 = 62_135_596_800;

/// Unix milliseconds of a Go time value; `None` for nil, the zero time, times before 1970 and
/// anything that is not `MarshalBinary` output.
pub(crate) fn ms_from_go_time(v: &Value) -> Option<u64> {
    let Value::Bytes(b) = v else { return None };
    if !matches!((b.first(), b.len()), (Some(1), 15) | (Some(2), 16)) {
        return None;
    }
    let sec = i64::from_be_bytes(b[1..9].try_into().ok()?);
    let nsec = i64::from(i32::from_be_bytes(b[9..13].try_into().ok()?));
    let unix = sec.checked_sub(UNIX_EPOCH_FROM_YEAR_ONE)?;
    let ms = unix.checked_mul(1000)?.checked_add(nsec / 1_000_000)?;
    u64::try_from(ms).ok().filter(|_| sec != 0)
}

/// A Go time value (UTC) for Unix milliseconds.
pub(crate) fn go_time_from_ms(ms: u64) -> Value {
    let ms = i64::try_from(ms).unwrap_or(i64::MAX / 1000);
    let sec = ms.div_euclid(1000).saturating_add(UNIX_EPOCH_FROM_YEAR_ONE);
    let nsec = i32::try_from(ms.rem_euclid(1000) * 1_000_000).unwrap_or_default();
    let mut b = vec![1u8];
    b.extend_from_slice(&sec.to_be_bytes());
    b.extend_from_slice(&nsec.to_be_bytes());
    b.extend_from_slice(&(-1i16).to_be_bytes());
    Value::Bytes(b)
}

/// Go's zero `time.Time` (what an unset time field holds).
pub(crate) fn go_zero_time() -> Value {
    let mut b = vec![1u8; 1];
    b.extend_from_slice(&[0; 12]);
    b.extend_from_slice(&(-1i16).to_be_bytes());
    Value::Bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consul_bytes_round_trip() {
        // A token's CreateTime as Consul 1.8.7 wrote it: 2026-12-07T23:16:40.851236742Z.
        let consul = Value::Bytes(b"\x01\x00\x00\x00\x0e\xe6\x35\x58\x32\x32\xbc\x0a\x86\xff\xff".to_vec());
        let ms = ms_from_go_time(&consul).unwrap();
        assert_eq!(go_time_from_ms(ms), go_time_from_ms(ms_from_go_time(&go_time_from_ms(ms)).unwrap()));
        assert_eq!(ms_from_go_time(&go_zero_time()), None);
        assert_eq!(ms_from_go_time(&Value::Nil), None);
        assert_eq!(ms_from_go_time(&go_time_from_ms(1_700_000_000_123)), Some(1_700_000_000_123));
    }
}
