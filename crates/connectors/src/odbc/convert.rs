//! Text fetched from the driver (or rendered by the server) into the loaded Arrow types,
//! exactly: a value that does not fit is an error, never a rounded or truncated value.

use std::sync::Arc;

use tributary_core::arrow::array::{
    Array, ArrayRef, BooleanArray, Date32Builder, Decimal128Builder, Int8Array, StringArray,
    StringBuilder, TimestampMicrosecondBuilder,
};

use super::plan::Kind;
use crate::util::{ParsedTimestamp, parse_date, parse_decimal, parse_timestamp, truncate_value};

/// A value that cannot be loaded: the value (shortened) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejected {
    pub(crate) value: String,
    pub(crate) reason: String,
}

fn reject(value: &str, reason: impl Into<String>) -> Rejected {
    Rejected {
        value: truncate_value(value),
        reason: reason.into(),
    }
}

/// Convert one fetched column to the loaded type of `kind`. Columns fetched in their loaded
/// type come back as they are.
pub(crate) fn convert(kind: Kind, fetched: &ArrayRef) -> Result<ArrayRef, Rejected> {
    if fetched.data_type() == &kind.data_type() && !matches!(kind, Kind::Time | Kind::Uuid) {
        return Ok(fetched.clone());
    }
    if kind == Kind::Bool
        && let Some(flags) = fetched.as_any().downcast_ref::<Int8Array>()
    {
        let bools: BooleanArray = flags.iter().map(|v| v.map(|v| v != 0)).collect();
        return Ok(Arc::new(bools));
    }
    let Some(text) = fetched.as_any().downcast_ref::<StringArray>() else {
        return Err(Rejected {
            value: String::new(),
            reason: format!(
                "internal error: fetched as {} instead of text; please report this bug",
                fetched.data_type()
            ),
        });
    };
    let n = text.len();
    Ok(match kind {
        Kind::Decimal(p, s) => {
            let mut b = Decimal128Builder::with_capacity(n);
            for v in text.iter() {
                match v {
                    None => b.append_null(),
                    Some(v) => b.append_value(decimal(v, p, s)?),
                }
            }
            Arc::new(
                b.finish()
                    .with_precision_and_scale(p, s)
                    .map_err(|e| Rejected {
                        value: String::new(),
                        reason: format!("internal error: decimal({p},{s}): {e}"),
                    })?,
            )
        }
        Kind::UInt64 => {
            let mut b = Decimal128Builder::with_capacity(n);
            for v in text.iter() {
                match v {
                    None => b.append_null(),
                    Some(v) => match v.trim().parse::<u64>() {
                        Ok(u) => b.append_value(i128::from(u)),
                        Err(_) => return Err(reject(v, "not an unsigned 64-bit integer")),
                    },
                }
            }
            Arc::new(
                b.finish()
                    .with_precision_and_scale(20, 0)
                    .map_err(|e| Rejected {
                        value: String::new(),
                        reason: format!("internal error: decimal(20,0): {e}"),
                    })?,
            )
        }
        Kind::Date => {
            let mut b = Date32Builder::with_capacity(n);
            for v in text.iter() {
                match v {
                    None => b.append_null(),
                    Some(v) => b.append_value(date(v)?),
                }
            }
            Arc::new(b.finish())
        }
        Kind::Timestamp { utc } => {
            let mut b = TimestampMicrosecondBuilder::with_capacity(n);
            for v in text.iter() {
                match v {
                    None => b.append_null(),
                    Some(v) => b.append_value(timestamp(v)?),
                }
            }
            let a = b.finish();
            Arc::new(if utc { a.with_timezone("UTC") } else { a })
        }
        Kind::Time => {
            let mut b = StringBuilder::with_capacity(n, n * 16);
            for v in text.iter() {
                match v {
                    None => b.append_null(),
                    Some(v) => b.append_value(time(v)?),
                }
            }
            Arc::new(b.finish())
        }
        Kind::Uuid => {
            let mut b = StringBuilder::with_capacity(n, n * 36);
            for v in text.iter() {
                b.append_option(v.map(str::to_ascii_lowercase));
            }
            Arc::new(b.finish())
        }
        other => {
            return Err(Rejected {
                value: String::new(),
                reason: format!(
                    "internal error: no conversion from text to {}; please report this bug",
                    other.data_type()
                ),
            });
        }
    })
}

/// The unscaled value of decimal text (`-123.4500`, `.5`), exactly.
fn decimal(v: &str, p: u8, s: i8) -> Result<i128, Rejected> {
    parse_decimal(v.trim(), p, s).map_err(|reason| reject(v, reason))
}

/// Days since 1970-01-01 of `YYYY-MM-DD` (or of a midnight timestamp, as some drivers render
/// dates).
fn date(v: &str) -> Result<i32, Rejected> {
    let t = v.trim();
    if let Some(d) = parse_date(t) {
        return Ok(d);
    }
    if let Some(ParsedTimestamp::Naive(micros)) = parse_timestamp(t)
        && micros.rem_euclid(86_400_000_000) == 0
    {
        return i32::try_from(micros.div_euclid(86_400_000_000))
            .map_err(|_| reject(v, "out of range"));
    }
    Err(reject(
        v,
        "not a date between 0001-01-01 and 9999-12-31 in YYYY-MM-DD form",
    ))
}

/// Microseconds of timestamp text: wall clock, or the UTC instant when the text has an offset
/// (`+00`, `+05:30`, SQL Server's ` +02:00`). Fractions beyond microseconds must be zeros.
fn timestamp(v: &str) -> Result<i64, Rejected> {
    let t = v.trim();
    // SQL Server renders `datetimeoffset` with a blank before the offset.
    let joined;
    let t = match t.rsplit_once(' ') {
        Some((head, zone)) if head.len() >= 16 && zone.starts_with(['+', '-']) => {
            joined = format!("{head}{zone}");
            joined.as_str()
        }
        _ => t,
    };
    match parse_timestamp(t) {
        Some(ParsedTimestamp::Naive(m) | ParsedTimestamp::Utc(m)) => Ok(m),
        None => Err(reject(
            v,
            "not a timestamp between 0001-01-01 and 9999-12-31 in YYYY-MM-DD HH:MM:SS[.ffffff] \
             form, or it has digits below a microsecond",
        )),
    }
}

/// Time of day as the native connectors render it: `[-]HH:MM:SS`, then `.ffffff` when there is
/// a fraction, then the zone as given (`+05:30`). Digits below a microsecond must be zeros.
/// Text of another shape is kept as it is.
fn time(v: &str) -> Result<String, Rejected> {
    let b = v.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let hours_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let hours = &v[hours_start..i];
    let well_formed = !hours.is_empty()
        && b.get(i) == Some(&b':')
        && b.get(i + 1..i + 3)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
        && b.get(i + 3) == Some(&b':')
        && b.get(i + 4..i + 6)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    if !well_formed {
        return Ok(v.to_string());
    }
    let mut out = String::with_capacity(v.len() + 6);
    out.push_str(&v[..hours_start]);
    if hours.len() < 2 {
        out.push('0');
    }
    out.push_str(&v[hours_start..i + 6]);
    let mut j = i + 6;
    if b.get(j) == Some(&b'.') {
        let start = j + 1;
        j = start;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        let digits = &v[start..j];
        if digits.bytes().skip(6).any(|d| d != b'0') {
            return Err(reject(v, "the time has digits below a microsecond"));
        }
        if digits.bytes().any(|d| d != b'0') {
            out.push('.');
            out.push_str(&format!("{:0<6}", &digits[..digits.len().min(6)]));
        }
    }
    out.push_str(&v[j..]);
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tributary_core::arrow::array::{Date32Array, Decimal128Array, TimestampMicrosecondArray};
    use tributary_core::arrow::datatypes::DataType;

    fn text(values: &[Option<&str>]) -> ArrayRef {
        Arc::new(StringArray::from(values.to_vec()))
    }

    #[test]
    fn decimals_are_exact() {
        let a = convert(
            Kind::Decimal(5, 5),
            &text(&[Some("-0.99999"), Some(".00001"), None]),
        )
        .unwrap();
        let a = a.as_any().downcast_ref::<Decimal128Array>().unwrap();
        assert_eq!(a.iter().collect::<Vec<_>>(), [Some(-99_999), Some(1), None]);
        assert_eq!(a.data_type(), &DataType::Decimal128(5, 5));
        let e = convert(Kind::Decimal(28, 6), &text(&[Some("0.123456789012")])).unwrap_err();
        assert_eq!(e.value, "0.123456789012");
        assert!(e.reason.contains("scale 6"), "{e:?}");
        let e = convert(Kind::Decimal(10, 2), &text(&[Some("NaN")])).unwrap_err();
        assert_eq!(e.value, "NaN");
        let a = convert(Kind::UInt64, &text(&[Some("18446744073709551615")])).unwrap();
        let a = a.as_any().downcast_ref::<Decimal128Array>().unwrap();
        assert_eq!(a.value(0), 18_446_744_073_709_551_615);
    }

    #[test]
    fn dates_and_timestamps_parse_strictly() {
        let a = convert(
            Kind::Date,
            &text(&[Some("1970-01-02"), Some("1970-01-03 00:00:00")]),
        )
        .unwrap();
        let a = a.as_any().downcast_ref::<Date32Array>().unwrap();
        assert_eq!(a.values().to_vec(), [1, 2]);
        for bad in ["0000-00-00", "infinity", "0044-03-15 BC", "2024-00-10"] {
            let e = convert(Kind::Date, &text(&[Some(bad)])).unwrap_err();
            assert_eq!(e.value, bad);
        }
        let a = convert(
            Kind::Timestamp { utc: true },
            &text(&[
                Some("1970-01-01 00:00:01.5+00"),
                Some("1970-01-01 02:00:00.0000000 +02:00"),
                Some("1970-01-01 00:00:00.000001"),
            ]),
        )
        .unwrap();
        assert_eq!(
            a.data_type(),
            &DataType::Timestamp(
                tributary_core::arrow::datatypes::TimeUnit::Microsecond,
                Some("UTC".into())
            )
        );
        let a = a
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(a.values().to_vec(), [1_500_000, 0, 1]);
        let e = convert(
            Kind::Timestamp { utc: false },
            &text(&[Some("2024-01-01 10:00:00.1234567")]),
        )
        .unwrap_err();
        assert!(e.reason.contains("microsecond"), "{e:?}");
        assert!(convert(Kind::Timestamp { utc: false }, &text(&[Some("-infinity")])).is_err());
    }

    #[test]
    fn times_render_like_the_native_connectors() {
        let t = |v: &str| time(v).unwrap();
        assert_eq!(t("12:00:00.5"), "12:00:00.500000");
        assert_eq!(t("00:00:00.0"), "00:00:00");
        assert_eq!(t("-838:59:59"), "-838:59:59");
        assert_eq!(t("23:59:59.999999"), "23:59:59.999999");
        assert_eq!(t("12:34:56.5+05:30"), "12:34:56.500000+05:30");
        assert_eq!(t("00:00:00-08"), "00:00:00-08");
        assert_eq!(t("1:02:03"), "01:02:03");
        assert_eq!(t("10:00:00.1000000"), "10:00:00.100000");
        assert_eq!(t("not a time"), "not a time");
        assert!(time("10:00:00.1234567").is_err());
    }

    #[test]
    fn flags_become_booleans() {
        let a = convert(
            Kind::Bool,
            &(Arc::new(Int8Array::from(vec![Some(1), Some(0), None])) as ArrayRef),
        )
        .unwrap();
        let a = a.as_any().downcast_ref::<BooleanArray>().unwrap();
        assert_eq!(
            a.iter().collect::<Vec<_>>(),
            [Some(true), Some(false), None]
        );
    }

    #[test]
    fn uuids_are_lowercased() {
        let a = convert(Kind::Uuid, &text(&[Some("A0EEBC99-9C0B"), None])).unwrap();
        let a = a.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(a.iter().collect::<Vec<_>>(), [Some("a0eebc99-9c0b"), None]);
    }
}
