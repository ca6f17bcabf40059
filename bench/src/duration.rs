//! Human durations on the command line: `10s`, `500ms`, `1.5m`, `250us`.

use anyhow::{Context, Result, bail};
use std::time::Duration;

/// Parses a number followed by a unit (`us`, `ms`, `s`, `m`, `h`); `0` alone is allowed.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .with_context(|| format!("duration {text:?} has no unit: write e.g. 10s or 500ms"))?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .with_context(|| format!("duration {text:?}: {number:?} is not a number"))?;
    let seconds_per_unit = match unit {
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => bail!("duration {text:?}: unknown unit {unit:?} (use us, ms, s, m or h)"),
    };
    Duration::try_from_secs_f64(value * seconds_per_unit)
        .with_context(|| format!("duration {text:?} is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration(" 3s ").unwrap(), Duration::from_secs(3));
    }

    #[test]
    fn parses_fractions() {
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("0.25m").unwrap(), Duration::from_secs(15));
    }

    #[test]
    fn rejects_bad_input() {
        for bad in ["", "10", "s", "10 s", "10sec", "1.2.3s", "-1s", "ms500"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
