//! Durations as users write them: `30s`, `5m`, `1h30m`, `500ms`, `2d`.

use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Serialize, Serializer};

/// A non-negative span of time written with units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(std::time::Duration);

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration")]
    Empty,
    #[error("missing unit in `{0}`")]
    MissingUnit(String),
    #[error("unknown unit `{unit}` in `{text}`")]
    UnknownUnit { text: String, unit: String },
    #[error("invalid duration `{0}`")]
    Invalid(String),
    #[error("duration `{0}` is too large")]
    Overflow(String),
    #[error("fractional duration `{0}`")]
    Fraction(String),
}

impl DurationError {
    pub fn hint(&self) -> &'static str {
        if let Self::Fraction(_) = self {
            return "use a smaller unit, e.g. `90m` for 1.5h or `1500ms` for 1.5s";
        }
        "write a number followed by a unit (`ms`, `s`, `m`, `h`, `d`), e.g. `90s` or `1h30m`"
    }
}

/// Canonical units, largest last; `Display` uses these.
const UNITS: &[(&str, u64)] = &[
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
];

/// Spelled-out units people also write (`90 seconds`, `2 hours`).
const ALIASES: &[(&str, &str)] = &[
    ("sec", "s"),
    ("secs", "s"),
    ("second", "s"),
    ("seconds", "s"),
    ("min", "m"),
    ("mins", "m"),
    ("minute", "m"),
    ("minutes", "m"),
    ("hr", "h"),
    ("hrs", "h"),
    ("hour", "h"),
    ("hours", "h"),
    ("day", "d"),
    ("days", "d"),
];

/// The pattern of accepted durations, for the JSON Schema.
fn pattern() -> String {
    let mut units: Vec<&str> = UNITS.iter().map(|(u, _)| *u).collect();
    units.extend(ALIASES.iter().map(|(a, _)| *a));
    // Longest first so that the regex prefers `ms` over `m`.
    units.sort_by_key(|u| std::cmp::Reverse(u.len()));
    format!("^\\s*([0-9]+\\s*({})\\s*)+$", units.join("|"))
}

impl Duration {
    pub const ZERO: Self = Self(std::time::Duration::ZERO);

    pub fn from_millis(ms: u64) -> Self {
        Self(std::time::Duration::from_millis(ms))
    }

    pub const fn from_secs(s: u64) -> Self {
        Self(std::time::Duration::from_secs(s))
    }

    pub fn as_std(self) -> std::time::Duration {
        self.0
    }

    pub fn as_millis(self) -> u64 {
        u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX)
    }
}

impl From<std::time::Duration> for Duration {
    fn from(d: std::time::Duration) -> Self {
        Self(d)
    }
}

impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(text: &str) -> Result<Self, DurationError> {
        let s = text.trim();
        if s.is_empty() {
            return Err(DurationError::Empty);
        }
        if s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DurationError::MissingUnit(text.to_owned()));
        }
        let mut total: u64 = 0;
        let mut rest = s;
        while !rest.is_empty() {
            rest = rest.trim_start();
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(DurationError::Invalid(text.to_owned()));
            }
            let number: u64 = rest[..digits]
                .parse()
                .map_err(|_| DurationError::Overflow(text.to_owned()))?;
            rest = rest[digits..].trim_start();
            if rest.starts_with(['.', ',']) {
                return Err(DurationError::Fraction(text.to_owned()));
            }
            let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            if unit.is_empty() {
                return Err(DurationError::MissingUnit(text.to_owned()));
            }
            let canonical = ALIASES
                .iter()
                .find(|(alias, _)| *alias == unit)
                .map_or(unit, |(_, u)| *u);
            let Some((_, factor)) = UNITS.iter().find(|(u, _)| *u == canonical) else {
                return Err(DurationError::UnknownUnit {
                    text: text.to_owned(),
                    unit: unit.to_owned(),
                });
            };
            total = number
                .checked_mul(*factor)
                .and_then(|ms| total.checked_add(ms))
                .ok_or_else(|| DurationError::Overflow(text.to_owned()))?;
        }
        Ok(Self::from_millis(total))
    }
}

impl fmt::Display for Duration {
    /// Prints the shortest exact form (`1h30m`), so printed values can be pasted back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, factor) in UNITS.iter().rev() {
            if ms >= *factor {
                write!(f, "{}{unit}", ms / factor)?;
                ms %= factor;
            }
        }
        Ok(())
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": pattern(),
            "description": "A duration: numbers with units ms, s, m, h, d, e.g. `90s`, `1h30m`.",
            "examples": ["30s", "5m", "1h30m"]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_round_trip() {
        for (text, ms, printed) in [
            ("500ms", 500, "500ms"),
            ("2s", 2_000, "2s"),
            ("30m", 1_800_000, "30m"),
            ("1h30m", 5_400_000, "1h30m"),
            ("90m", 5_400_000, "1h30m"),
            ("2d", 172_800_000, "2d"),
            ("213503982334d", 18_446_744_073_657_600_000, "213503982334d"),
            ("0s", 0, "0s"),
            ("1h 30m", 5_400_000, "1h30m"),
            ("90 seconds", 90_000, "1m30s"),
            ("2 hours", 7_200_000, "2h"),
        ] {
            let d: Duration = text.parse().expect(text);
            assert_eq!(d.as_millis(), ms, "{text}");
            assert_eq!(d.to_string(), printed, "{text}");
        }
    }

    #[test]
    fn prints_exactly_one_of_each_unit_in_that_unit() {
        for (text, printed) in [
            ("1ms", "1ms"),
            ("1s", "1s"),
            ("1m", "1m"),
            ("1h", "1h"),
            ("1d", "1d"),
            ("1d1h1m1s1ms", "1d1h1m1s1ms"),
            ("1000ms", "1s"),
            ("25h", "1d1h"),
            ("2 days 3 mins", "2d3m"),
            ("1 sec", "1s"),
            ("1 hr 1 min", "1h1m"),
        ] {
            assert_eq!(
                text.parse::<Duration>().expect(text).to_string(),
                printed,
                "{text}"
            );
        }
        assert_eq!(Duration::ZERO.to_string(), "0s");
        assert_eq!(Duration::default(), Duration::ZERO);
    }

    #[test]
    fn converts_to_and_from_std_without_loss() {
        let std = std::time::Duration::from_millis(90_500);
        assert_eq!(Duration::from(std).as_std(), std);
        assert_eq!(
            Duration::from_secs(3).as_std(),
            std::time::Duration::from_secs(3)
        );
        assert_eq!(
            Duration::from_millis(7).as_std(),
            std::time::Duration::from_millis(7)
        );
        assert_eq!(Duration::ZERO.as_std(), std::time::Duration::ZERO);
        // Past `u64::MAX` milliseconds `as_millis` saturates rather than wrapping.
        let huge = Duration::from(std::time::Duration::from_secs(u64::MAX));
        assert_eq!(huge.as_millis(), u64::MAX);
        assert_eq!(huge.as_std(), std::time::Duration::from_secs(u64::MAX));
    }

    #[test]
    fn serializes_and_describes_itself_as_written() {
        assert_eq!(
            serde_json::to_value(Duration::from_millis(5_400_000)).expect("serializes"),
            serde_json::json!("1h30m")
        );
        let schema = serde_json::to_value(schemars::schema_for!(Duration)).expect("schema");
        let validator = jsonschema::validator_for(&schema).expect("schema compiles");
        for ok in ["30s", "1h30m", "500ms", " 2 days ", "90 seconds", "1h 30m"] {
            assert!(validator.is_valid(&serde_json::json!(ok)), "{ok}");
        }
        for bad in ["", "300", "5x", "1.5h", "-5s", "h"] {
            assert!(!validator.is_valid(&serde_json::json!(bad)), "{bad}");
        }
    }

    #[test]
    fn hints_fit_the_error() {
        assert!(
            DurationError::Fraction("1.5h".into())
                .hint()
                .contains("`90m` for 1.5h")
        );
        for e in [
            DurationError::Empty,
            DurationError::MissingUnit("5".into()),
            DurationError::Invalid("x".into()),
        ] {
            assert!(
                e.hint().starts_with("write a number followed by a unit"),
                "{e}"
            );
        }
    }

    #[test]
    fn rejects_with_exact_messages() {
        for (text, message) in [
            ("", "empty duration"),
            ("300", "missing unit in `300`"),
            ("5x", "unknown unit `x` in `5x`"),
            ("1h30", "missing unit in `1h30`"),
            ("h", "invalid duration `h`"),
            ("-5s", "invalid duration `-5s`"),
            ("1.5h", "fractional duration `1.5h`"),
            ("1,5h", "fractional duration `1,5h`"),
            ("1h .5m", "invalid duration `1h .5m`"),
            (
                "5 fortnights",
                "unknown unit `fortnights` in `5 fortnights`",
            ),
            ("   ", "empty duration"),
            ("213503982335d", "duration `213503982335d` is too large"),
            (
                "18446744073709551615ms 1ms",
                "duration `18446744073709551615ms 1ms` is too large",
            ),
            (
                "99999999999999999999s",
                "duration `99999999999999999999s` is too large",
            ),
        ] {
            let err = text.parse::<Duration>().expect_err(text);
            assert_eq!(err.to_string(), message);
        }
    }
}
