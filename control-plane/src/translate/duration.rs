//! Durations as Istio and the Gateway API write them (`10s`, `1.5s`, `250ms`, `1h30m`), turned
//! into protobuf durations.

use pbjson_types::Duration;

/// Parses a Go-style duration: one or more decimal numbers, each with a unit (`h`, `m`, `s`,
/// `ms`, `us`, `µs`, `ns`). Returns a message saying what is wrong otherwise.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration such as \"10s\", \"1.5s\" or \"250ms\"");
    let mut rest = text.trim();
    if rest.is_empty() || rest.starts_with('-') {
        return Err(bad());
    }
    if rest == "0" {
        return Ok(Duration::default());
    }
    let mut nanos: u128 = 0;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (number, tail) = rest.split_at(number_end);
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        let scale: u128 = match unit {
            "h" => 3_600_000_000_000,
            "m" => 60_000_000_000,
            "s" => 1_000_000_000,
            "ms" => 1_000_000,
            "us" | "µs" => 1_000,
            "ns" => 1,
            _ => return Err(bad()),
        };
        nanos += scaled(number, scale).ok_or_else(bad)?;
        rest = tail;
    }
    let seconds = i64::try_from(nanos / 1_000_000_000).map_err(|_| bad())?;
    let nanos = i32::try_from(nanos % 1_000_000_000).map_err(|_| bad())?;
    Ok(Duration { seconds, nanos })
}

/// `number` (decimal, maybe fractional) times `scale` nanoseconds, exactly to the nanosecond.
fn scaled(number: &str, scale: u128) -> Option<u128> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut total = whole.checked_mul(scale)?;
    let mut place = scale;
    for digit in fraction.chars() {
        place /= 10;
        total += u128::from(digit.to_digit(10)?) * place;
    }
    Some(total)
}

/// Whether a duration is zero (Istio's way of saying "disabled").
pub(crate) fn is_zero(duration: &Duration) -> bool {
    duration.seconds == 0 && duration.nanos == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(seconds: i64, nanos: i32) -> Duration {
        Duration { seconds, nanos }
    }

    #[test]
    fn istio_and_gateway_api_spellings() {
        assert_eq!(parse_duration("10s"), Ok(d(10, 0)));
        assert_eq!(parse_duration("1.5s"), Ok(d(1, 500_000_000)));
        assert_eq!(parse_duration("250ms"), Ok(d(0, 250_000_000)));
        assert_eq!(parse_duration("5m"), Ok(d(300, 0)));
        assert_eq!(parse_duration("1h30m"), Ok(d(5400, 0)));
        assert_eq!(parse_duration("0.001s"), Ok(d(0, 1_000_000)));
        assert_eq!(parse_duration("100us"), Ok(d(0, 100_000)));
        assert_eq!(parse_duration("0s"), Ok(d(0, 0)));
        assert_eq!(parse_duration("0"), Ok(d(0, 0)));
    }

    #[test]
    fn nonsense_is_refused_with_the_text() {
        for bad in ["", "10", "ten seconds", "-1s", "5x", "s", "1..5s", "."] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }
}
