//! The text inside `duration('1m30s')`: CEL (Go) duration strings, read as nanoseconds.

/// Units by suffix, in nanoseconds.
const UNITS: [(&str, i128); 7] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Reads a duration such as "1.5s", "100ms", "1m30s", "-2h" or "0", in nanoseconds; `None`
/// when malformed or out of range.
pub(crate) fn parse(text: &str) -> Option<i64> {
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let (whole, after) = split_digits(rest);
        let (fraction, after) = match after.strip_prefix('.') {
            Some(after) => split_digits(after),
            None => ("", after),
        };
        if whole.is_empty() && fraction.is_empty() {
            return None;
        }
        // The longest unit that fits, so that "ms" is not read as "m".
        let (unit, nanos) = UNITS
            .iter()
            .filter(|(unit, _)| after.starts_with(unit))
            .max_by_key(|(unit, _)| unit.len())?;
        total = total.checked_add(scaled(whole, fraction, *nanos)?)?;
        rest = &after[unit.len()..];
    }
    i64::try_from(if negative { -total } else { total }).ok()
}

/// Splits `text` after its leading ASCII digits.
fn split_digits(text: &str) -> (&str, &str) {
    let len = text.bytes().take_while(u8::is_ascii_digit).count();
    text.split_at(len)
}

/// `whole.fraction` units of `unit` nanoseconds each, dropping what is below a nanosecond.
fn scaled(whole: &str, fraction: &str, unit: i128) -> Option<i128> {
    let whole: i128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut value = whole.checked_mul(unit)?;
    let mut step = unit;
    for digit in fraction.bytes() {
        step /= 10;
        value += i128::from(digit - b'0') * step;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn reads_units_fractions_and_combinations() {
        assert_eq!(parse("1s"), Some(1_000_000_000));
        assert_eq!(parse("1.5s"), Some(1_500_000_000));
        assert_eq!(parse("100ms"), Some(100_000_000));
        assert_eq!(parse("1m30s"), Some(90_000_000_000));
        assert_eq!(parse("2h"), Some(7_200_000_000_000));
        assert_eq!(parse("250us"), Some(250_000));
        assert_eq!(parse("7ns"), Some(7));
        assert_eq!(parse(".5ms"), Some(500_000));
        assert_eq!(parse("-1s"), Some(-1_000_000_000));
        assert_eq!(parse("0"), Some(0));
    }

    #[test]
    fn rejects_malformed_and_overflowing_durations() {
        for bad in [
            "",
            "1",
            "s",
            "1x",
            "1.5",
            ".s",
            "1s2",
            "--1s",
            "1 s",
            "99999999999h",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
