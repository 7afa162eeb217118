//! Go `time.Duration` text: parsing (`time.ParseDuration`) and formatting (`Duration.String`).
//!
//! Input: strings such as `10s`, `1m30s`, `1.5h`, `100ms`, `0` → `std::time::Duration`.
//! Invariants: error texts are Go's (`time: invalid duration "x"`, `time: missing unit in
//! duration "x"`, `time: unknown unit "u" in duration "x"`); negative durations are rejected
//! because `std::time::Duration` cannot hold them; formatting round-trips through parsing.
//!
//! Why not a crate: humantime (2.4) has its own syntax (`1h 30m`, `2days`; Go's `.5s` and `+5s`
//! are errors) and formats `1h 30m` where Go writes `1h30m0s`; go-parse-duration (0.1) follows
//! Go's grammar but not its error texts (`invalid duration: x`), which Consul's API returns and
//! the tests pin, and it has no formatter. Both directions here are about 110 lines.

use std::time::Duration;

const NS: u128 = 1;
const US: u128 = 1_000;
const MS: u128 = 1_000_000;
const SEC: u128 = 1_000_000_000;
const MIN: u128 = 60 * SEC;
const HOUR: u128 = 60 * MIN;

fn unit_ns(unit: &str) -> Option<u128> {
    match unit {
        "ns" => Some(NS),
        "us" | "µs" | "μs" => Some(US),
        "ms" => Some(MS),
        "s" => Some(SEC),
        "m" => Some(MIN),
        "h" => Some(HOUR),
        _ => None,
    }
}

/// Parses a Go duration string (`time.ParseDuration`), e.g. `10s`, `1m30s`, `1.5h`, `100ms`.
pub(crate) fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration {s:?}");
    let mut rest = s;
    if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    } else if let Some(r) = rest.strip_prefix('-') {
        if r == "0" {
            return Ok(Duration::ZERO);
        }
        return Err(format!("time: negative duration {s:?} is not allowed"));
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let int_part = &rest[..int_len];
        rest = &rest[int_len..];
        let mut frac_part = "";
        if let Some(r) = rest.strip_prefix('.') {
            let frac_len = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
            frac_part = &r[..frac_len];
            rest = &r[frac_len..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = rest.find(|c: char| c == '.' || c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        if unit.is_empty() {
            return Err(format!("time: missing unit in duration {s:?}"));
        }
        let Some(scale) = unit_ns(unit) else {
            return Err(format!("time: unknown unit {unit:?} in duration {s:?}"));
        };
        let whole: u128 = if int_part.is_empty() { 0 } else { int_part.parse().map_err(|_| invalid())? };
        let mut value = whole.checked_mul(scale).ok_or_else(invalid)?;
        // Fractional digits beyond nanosecond precision are dropped, as Go does.
        let mut place = scale;
        for d in frac_part.bytes() {
            place /= 10;
            if place == 0 {
                break;
            }
            value += u128::from(d - b'0') * place;
        }
        total = total.checked_add(value).ok_or_else(invalid)?;
    }
    // Go durations are int64 nanoseconds.
    if total > i64::MAX as u128 {
        return Err(invalid());
    }
    let secs = u64::try_from(total / SEC).map_err(|_| invalid())?;
    let nanos = u32::try_from(total % SEC).map_err(|_| invalid())?;
    Ok(Duration::new(secs, nanos))
}

/// Formats like Go's `Duration.String`: `0s`, `100ms`, `1.5µs`, `10s`, `1m30s`, `1h0m0s`.
pub(crate) fn format_go_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".to_owned();
    }
    if ns < SEC {
        let (scale, unit) = if ns < US {
            (NS, "ns")
        } else if ns < MS {
            (US, "µs")
        } else {
            (MS, "ms")
        };
        return format!("{}{unit}", fraction(ns, scale));
    }
    let hours = ns / HOUR;
    let mins = (ns % HOUR) / MIN;
    let secs = fraction(ns % MIN, SEC);
    if hours > 0 {
        format!("{hours}h{mins}m{secs}s")
    } else if mins > 0 {
        format!("{mins}m{secs}s")
    } else {
        format!("{secs}s")
    }
}

/// `value / scale` as a decimal without trailing zeros.
fn fraction(value: u128, scale: u128) -> String {
    let whole = value / scale;
    let frac = value % scale;
    if frac == 0 {
        return whole.to_string();
    }
    let width = scale.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}
