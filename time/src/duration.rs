//! Durations written like `500ms`, `12s`, `2m`, `1h`, `250us`.

use std::time::Duration;

/// A duration that does not parse; the message says what is expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DurationError(String);

/// Parses `500ms`, `12s`, `2m`, `1h`, `250us`, `1.5s`; a bare number is seconds.
pub fn parse(s: &str) -> Result<Duration, DurationError> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| {
        DurationError(format!(
            "invalid duration `{s}`: expected a number and a unit, like `500ms`, `12s`, `2m`"
        ))
    })?;
    let secs = match unit.trim() {
        "" | "s" | "sec" => n,
        "ms" => n / 1e3,
        "us" | "µs" => n / 1e6,
        "ns" => n / 1e9,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        u => {
            return Err(DurationError(format!(
                "invalid duration `{s}`: unknown unit `{u}` (use ns, us, ms, s, m, h)"
            )))
        }
    };
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(DurationError(format!("invalid duration `{s}`")));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Writes a duration the way [`parse`] reads it, in the largest exact unit.
pub fn format(d: Duration) -> String {
    let ns = d.as_nanos();
    let units: [(u128, &str); 6] = [
        (3_600_000_000_000, "h"),
        (60_000_000_000, "m"),
        (1_000_000_000, "s"),
        (1_000_000, "ms"),
        (1_000, "us"),
        (1, "ns"),
    ];
    if ns == 0 {
        return "0s".into();
    }
    for (n, u) in units {
        if ns.is_multiple_of(n) {
            return format!("{}{u}", ns / n);
        }
    }
    unreachable!("1 divides everything")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_round_trip() {
        for (s, d) in [
            ("500ms", Duration::from_millis(500)),
            ("12s", Duration::from_secs(12)),
            ("2m", Duration::from_secs(120)),
            ("250us", Duration::from_micros(250)),
            ("1h", Duration::from_secs(3600)),
        ] {
            assert_eq!(parse(s).unwrap(), d);
            assert_eq!(format(d), s);
        }
        assert_eq!(parse("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse("3").unwrap(), Duration::from_secs(3));
    }

    #[test]
    fn rejects_garbage_with_a_hint() {
        assert!(parse("fast").unwrap_err().to_string().contains("500ms"));
        assert!(parse("5 parsecs")
            .unwrap_err()
            .to_string()
            .contains("unknown unit"));
        assert!(parse("").is_err());
    }
}
