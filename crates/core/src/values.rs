//! Typed configuration values, parsed once when the project loads: a [`Duration`] (`30s`,
//! `15m`), a [`ByteSize`] (`512MiB`) and a [`Secret`] (a password or token, never printed).
//!
//! Each reads the text users write today, so `tributary.yaml`, `ingest/*.yaml` and
//! `pipelines/*.yaml` keep working unchanged; a value that does not parse is a configuration
//! problem at load, with the file, line and key, instead of a silent default where it is used.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A length of time from configuration: a whole number and a unit, `us`, `ms`, `s`, `m`, `h`
/// or `d` (`500ms`, `30s`, `15m`, `1h`, `2d`). Never negative.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration {
    micros: i64,
}

const UNITS: [(&str, i64); 6] = [
    ("d", 86_400_000_000),
    ("h", 3_600_000_000),
    ("m", 60_000_000),
    ("s", 1_000_000),
    ("ms", 1_000),
    ("us", 1),
];

impl Duration {
    /// Parse `90s`, `15m`, `1h`, `2d`, `500ms`, `250us`. Errors say what is accepted.
    pub fn parse(s: &str) -> Result<Duration, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: i64 = num.parse().map_err(|_| {
            format!("`{s}` is not a duration; write e.g. `30s`, `15m`, `1h` or `2d`")
        })?;
        let unit = unit.trim();
        let Some((_, mult)) = UNITS.iter().find(|(u, _)| *u == unit) else {
            return Err(format!(
                "`{s}` has an unknown unit; use us, ms, s, m, h or d (e.g. `15m`)"
            ));
        };
        n.checked_mul(*mult)
            .map(|micros| Duration { micros })
            .ok_or_else(|| format!("`{s}` is too long a duration"))
    }

    /// A duration of `secs` seconds.
    pub const fn from_secs(secs: i64) -> Duration {
        Duration {
            micros: secs.saturating_mul(1_000_000),
        }
    }

    /// The duration in microseconds.
    pub fn micros(self) -> i64 {
        self.micros
    }

    /// As a standard library duration.
    pub fn std(self) -> std::time::Duration {
        std::time::Duration::from_micros(u64::try_from(self.micros).unwrap_or(0))
    }
}

impl fmt::Display for Duration {
    /// In the largest unit that divides it exactly: `90s`, `15m`, `2d`, `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.micros == 0 {
            return f.write_str("0s");
        }
        let (unit, mult) = UNITS
            .iter()
            .find(|(_, m)| self.micros % m == 0)
            .unwrap_or(&("us", 1));
        write!(f, "{}{unit}", self.micros / mult)
    }
}

impl fmt::Debug for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Duration({self})")
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as `30s`, `15m`, `1h` or `2d`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                Duration::parse(v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                Err(E::custom(format!(
                    "`{v}` has no unit; write e.g. `{v}s` or `{v}m`"
                )))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
            }
        }
        d.deserialize_any(V)
    }
}

/// A size from configuration: `512MiB`, `2GiB`, `64KiB` (powers of 1024), `100MB` (powers of
/// 1000), or a number of bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize {
    bytes: u64,
}

const BINARY: [(&str, u64); 4] = [
    ("TiB", 1 << 40),
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
];

impl ByteSize {
    /// Parse a size; errors say what is accepted.
    pub fn parse(s: &str) -> Result<ByteSize, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num.parse().map_err(|_| {
            format!("`{s}` is not a size; write e.g. `512MiB`, `2GiB` or a number of bytes")
        })?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kib" => 1 << 10,
            "m" | "mib" => 1 << 20,
            "g" | "gib" => 1 << 30,
            "t" | "tib" => 1 << 40,
            "kb" => 1_000,
            "mb" => 1_000_000,
            "gb" => 1_000_000_000,
            "tb" => 1_000_000_000_000,
            _ => {
                return Err(format!(
                    "`{s}` has an unknown unit; use KiB, MiB, GiB, TiB (or KB, MB, GB, TB)"
                ));
            }
        };
        n.checked_mul(mult)
            .map(|bytes| ByteSize { bytes })
            .ok_or_else(|| format!("`{s}` is too large"))
    }

    /// A size of `bytes` bytes.
    pub const fn from_bytes(bytes: u64) -> ByteSize {
        ByteSize { bytes }
    }

    /// A size of `n` MiB.
    pub const fn mib(n: u64) -> ByteSize {
        ByteSize {
            bytes: n.saturating_mul(1 << 20),
        }
    }

    /// The size in bytes.
    pub fn bytes(self) -> u64 {
        self.bytes
    }
}

impl fmt::Display for ByteSize {
    /// In the largest binary unit that divides it exactly: `128MiB`, `4GiB`, `1000`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match BINARY
            .iter()
            .find(|(_, m)| self.bytes != 0 && self.bytes.is_multiple_of(*m))
        {
            Some((unit, m)) => write!(f, "{}{unit}", self.bytes / m),
            None => write!(f, "{}", self.bytes),
        }
    }
}

impl fmt::Debug for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ByteSize({self})")
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ByteSize, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as `512MiB`, `2GiB` or a number of bytes")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                ByteSize::parse(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize::from_bytes(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize::from_bytes)
                    .map_err(|_| E::custom(format!("a size cannot be negative, got {v}")))
            }
        }
        d.deserialize_any(V)
    }
}

/// A password, token or key from configuration. `Debug` and `Display` print `***`, and so does
/// serializing it, so a secret cannot reach a log, an error, the state store or the dashboard
/// by formatting a configuration; [`Secret::expose`] is the one way to the value, for the
/// code that sends it.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Secret(String);

impl Secret {
    /// A secret holding `value`.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the code that must send it (a login, an `Authorization` header).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        Secret(s.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_display_and_refuse_what_they_cannot_read() {
        for (text, micros, shown) in [
            ("30s", 30_000_000, "30s"),
            ("90s", 90_000_000, "90s"),
            ("15m", 900_000_000, "15m"),
            ("120m", 7_200_000_000, "2h"),
            ("2d", 172_800_000_000, "2d"),
            ("500ms", 500_000, "500ms"),
            (" 1h ", 3_600_000_000, "1h"),
        ] {
            let d = Duration::parse(text).unwrap();
            assert_eq!(d.micros(), micros, "{text}");
            assert_eq!(d.to_string(), shown, "{text}");
            let yaml: Duration = serde_yaml_ng::from_str(text).unwrap();
            assert_eq!(yaml, d);
        }
        assert_eq!(Duration::parse("30s").unwrap().std().as_secs(), 30);
        assert!(Duration::parse("30").unwrap_err().contains("unknown unit"));
        assert!(
            Duration::parse("soon")
                .unwrap_err()
                .contains("not a duration")
        );
        assert!(Duration::parse("-5s").is_err());
        let e = serde_yaml_ng::from_str::<Duration>("30")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`30s`"), "{e}");
    }

    #[test]
    fn sizes_parse_and_display() {
        assert_eq!(ByteSize::parse("512MiB").unwrap().bytes(), 512 << 20);
        assert_eq!(ByteSize::parse("2GiB").unwrap().to_string(), "2GiB");
        assert_eq!(ByteSize::parse("100MB").unwrap().bytes(), 100_000_000);
        assert_eq!(ByteSize::parse("1000").unwrap().to_string(), "1000");
        assert!(ByteSize::parse("lots").is_err());
        assert!(ByteSize::parse("5XB").unwrap_err().contains("unknown unit"));
        let n: ByteSize = serde_yaml_ng::from_str("4096").unwrap();
        assert_eq!(n.to_string(), "4KiB");
    }

    #[test]
    fn secrets_never_print() {
        let s: Secret = serde_yaml_ng::from_str("hunter2").unwrap();
        assert_eq!(s.expose(), "hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        #[derive(Debug, Serialize)]
        struct Holder {
            password: Secret,
        }
        let h = Holder { password: s };
        assert!(!format!("{h:?} {h:#?}").contains("hunter2"));
        assert!(!serde_json::to_string(&h).unwrap().contains("hunter2"));
    }
}
