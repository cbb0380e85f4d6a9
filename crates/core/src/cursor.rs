//! Cursor values: the watermark of an incremental load.
//!
//! After each incremental load the lake stores the highest cursor value it committed, in the same
//! Delta commit as the rows (see `tributary-lake`). The next load reads rows whose cursor is
//! `>=` that value minus the table's `lookback`, and drops the rows it had already loaded.

use std::fmt;

use deltalake::arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Decimal128Array, Int8Array, Int16Array, Int32Array,
    Int64Array, StringArray, TimestampMicrosecondArray, UInt8Array, UInt16Array, UInt32Array,
};
use deltalake::arrow::compute;
use deltalake::arrow::datatypes::{DataType, TimeUnit};
use serde::{Deserialize, Serialize};

/// One cursor value, typed so that sources can render it as a literal of the right SQL type.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum CursorValue {
    /// Any integer column (signed or unsigned up to 32 bits, or BIGINT).
    Int(i64),
    /// A decimal column: the unscaled value as a string (i128 does not fit JSON numbers) and scale.
    Decimal {
        /// Unscaled integer value, as decimal digits.
        unscaled: String,
        /// Digits after the decimal point.
        scale: i8,
    },
    /// A timestamp with time zone: microseconds since the Unix epoch, UTC.
    TimestampUtc(i64),
    /// A timestamp without time zone (wall-clock): microseconds since 1970-01-01 00:00:00.
    Timestamp(i64),
    /// A date: days since 1970-01-01.
    Date(i32),
    /// A text cursor (compared as the source database compares text).
    Text(String),
}

/// A cursor range to reprocess (`from` inclusive, `to` exclusive), as written by the user; each
/// bound is read in the cursor column's type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backfill {
    /// Lower bound, inclusive.
    pub from: Option<String>,
    /// Upper bound, exclusive.
    pub to: Option<String>,
}

/// How far before the watermark the next incremental load starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookback {
    /// For integer and decimal cursors: this many units.
    Units(i64),
    /// For timestamp and date cursors: this many microseconds.
    Micros(i64),
}

impl CursorValue {
    /// The lower bound of the next read: this watermark minus `lookback`, saturating.
    /// Text cursors cannot look back; they return themselves.
    pub fn minus(&self, lookback: Option<Lookback>) -> CursorValue {
        let Some(lb) = lookback else {
            return self.clone();
        };
        match (self, lb) {
            (CursorValue::Int(v), Lookback::Units(n)) => CursorValue::Int(v.saturating_sub(n)),
            (CursorValue::Decimal { unscaled, scale }, Lookback::Units(n)) => {
                let v: i128 = unscaled.parse().unwrap_or(0);
                let step = (n as i128).saturating_mul(10i128.saturating_pow(*scale as u32));
                CursorValue::Decimal {
                    unscaled: v.saturating_sub(step).to_string(),
                    scale: *scale,
                }
            }
            (CursorValue::TimestampUtc(v), Lookback::Micros(n)) => {
                CursorValue::TimestampUtc(v.saturating_sub(n))
            }
            (CursorValue::Timestamp(v), Lookback::Micros(n)) => {
                CursorValue::Timestamp(v.saturating_sub(n))
            }
            (CursorValue::Date(d), Lookback::Micros(n)) => {
                let days = (n + 86_400_000_000 - 1) / 86_400_000_000;
                CursorValue::Date(d.saturating_sub(days as i32))
            }
            _ => self.clone(),
        }
    }

    /// Parse `text` (from the command line, e.g. `--from 2024-01-01`) as a value of the same
    /// kind as `self`: an integer, a decimal (`12.50`), a date (`2024-01-31`), a timestamp
    /// (`2024-01-31`, `2024-01-31 12:00:00[.ffffff]`, or RFC 3339 with `Z` or an offset; a
    /// timestamp with time zone reads zone-less text as UTC) or text as written.
    pub fn parse_like(&self, text: &str) -> Result<CursorValue, String> {
        let t = text.trim();
        let bad = |what: &str| format!("`{text}` is not {what}");
        match self {
            CursorValue::Int(_) => t
                .parse()
                .map(CursorValue::Int)
                .map_err(|_| bad("an integer")),
            CursorValue::Decimal { scale, .. } => {
                let (int, frac) = t.split_once('.').unwrap_or((t, ""));
                let scale_u = (*scale).max(0) as usize;
                if frac.len() > scale_u || !frac.chars().all(|c| c.is_ascii_digit()) {
                    return Err(bad(&format!(
                        "a decimal with at most {scale} digits after the point"
                    )));
                }
                let digits = format!("{int}{frac:0<scale_u$}");
                let v: i128 = digits.parse().map_err(|_| bad("a decimal number"))?;
                Ok(CursorValue::Decimal {
                    unscaled: v.to_string(),
                    scale: *scale,
                })
            }
            CursorValue::Date(_) => chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
                .map(|d| {
                    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
                    CursorValue::Date((d - epoch).num_days() as i32)
                })
                .map_err(|_| bad("a date (YYYY-MM-DD)")),
            CursorValue::TimestampUtc(_) | CursorValue::Timestamp(_) => {
                let micros = if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(t) {
                    dt.timestamp_micros()
                } else {
                    let naive = [
                        "%Y-%m-%d %H:%M:%S%.f",
                        "%Y-%m-%dT%H:%M:%S%.f",
                        "%Y-%m-%d %H:%M",
                        "%Y-%m-%dT%H:%M",
                    ]
                    .iter()
                    .find_map(|f| chrono::NaiveDateTime::parse_from_str(t, f).ok())
                    .or_else(|| {
                        chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
                            .ok()
                            .and_then(|d| d.and_hms_opt(0, 0, 0))
                    })
                    .ok_or_else(|| {
                        bad("a timestamp (YYYY-MM-DD, YYYY-MM-DD HH:MM:SS or RFC 3339)")
                    })?;
                    naive.and_utc().timestamp_micros()
                };
                Ok(match self {
                    CursorValue::TimestampUtc(_) => CursorValue::TimestampUtc(micros),
                    _ => CursorValue::Timestamp(micros),
                })
            }
            CursorValue::Text(_) => Ok(CursorValue::Text(text.to_string())),
        }
    }

    /// The maximum non-null value of an Arrow column, as a cursor value. `Ok(None)` when the
    /// column has no non-null value. Unsupported types return an error naming the type.
    pub fn max_of(array: &ArrayRef) -> Result<Option<CursorValue>, String> {
        if array.null_count() == array.len() {
            return Ok(None);
        }
        let v = match array.data_type() {
            DataType::Int8 => {
                compute::max(array.as_primitive::<deltalake::arrow::datatypes::Int8Type>())
                    .map(|v| CursorValue::Int(v as i64))
            }
            DataType::Int16 => {
                compute::max(array.as_primitive::<deltalake::arrow::datatypes::Int16Type>())
                    .map(|v| CursorValue::Int(v as i64))
            }
            DataType::Int32 => {
                compute::max(array.as_primitive::<deltalake::arrow::datatypes::Int32Type>())
                    .map(|v| CursorValue::Int(v as i64))
            }
            DataType::Int64 => {
                compute::max(array.as_primitive::<deltalake::arrow::datatypes::Int64Type>())
                    .map(CursorValue::Int)
            }
            DataType::UInt8 => {
                compute::max(array.as_primitive::<deltalake::arrow::datatypes::UInt8Type>())
                    .map(|v| CursorValue::Int(v as i64))
            }
            DataType::UInt16 => {
                compute::max(array.as_primitive::<deltalake::arrow::datatypes::UInt16Type>())
                    .map(|v| CursorValue::Int(v as i64))
            }
            DataType::UInt32 => {
                compute::max(array.as_primitive::<deltalake::arrow::datatypes::UInt32Type>())
                    .map(|v| CursorValue::Int(v as i64))
            }
            DataType::Decimal128(_, s) => {
                compute::max(array.as_primitive::<deltalake::arrow::datatypes::Decimal128Type>())
                    .map(|v| CursorValue::Decimal {
                        unscaled: v.to_string(),
                        scale: *s,
                    })
            }
            DataType::Timestamp(TimeUnit::Microsecond, tz) => {
                let m = compute::max(
                    array.as_primitive::<deltalake::arrow::datatypes::TimestampMicrosecondType>(),
                );
                m.map(|v| {
                    if tz.is_some() {
                        CursorValue::TimestampUtc(v)
                    } else {
                        CursorValue::Timestamp(v)
                    }
                })
            }
            DataType::Date32 => {
                compute::max(array.as_primitive::<deltalake::arrow::datatypes::Date32Type>())
                    .map(CursorValue::Date)
            }
            DataType::Utf8 => compute::max_string(array.as_string::<i32>())
                .map(|s| CursorValue::Text(s.to_string())),
            other => {
                return Err(format!(
                    "type {other} cannot be a cursor; use an integer, decimal, date, timestamp or text column"
                ));
            }
        };
        Ok(v)
    }

    /// An Arrow array holding this one value, of the given type, for comparisons with
    /// `arrow::compute::kernels::cmp`. Errors when the type does not fit the value's kind.
    pub fn to_scalar_array(&self, data_type: &DataType) -> Result<ArrayRef, String> {
        use std::sync::Arc;
        let mismatch = || format!("cursor value {self} does not fit a column of type {data_type}");
        let arr: ArrayRef = match (self, data_type) {
            (CursorValue::Int(v), DataType::Int8) => Arc::new(Int8Array::from(vec![
                i8::try_from(*v).map_err(|_| mismatch())?,
            ])),
            (CursorValue::Int(v), DataType::Int16) => Arc::new(Int16Array::from(vec![
                i16::try_from(*v).map_err(|_| mismatch())?,
            ])),
            (CursorValue::Int(v), DataType::Int32) => Arc::new(Int32Array::from(vec![
                i32::try_from(*v).map_err(|_| mismatch())?,
            ])),
            (CursorValue::Int(v), DataType::Int64) => Arc::new(Int64Array::from(vec![*v])),
            (CursorValue::Int(v), DataType::UInt8) => {
                Arc::new(UInt8Array::from(vec![u8::try_from(*v).unwrap_or(0)]))
            }
            (CursorValue::Int(v), DataType::UInt16) => {
                Arc::new(UInt16Array::from(vec![u16::try_from(*v).unwrap_or(0)]))
            }
            (CursorValue::Int(v), DataType::UInt32) => {
                Arc::new(UInt32Array::from(vec![u32::try_from(*v).unwrap_or(0)]))
            }
            (CursorValue::Decimal { unscaled, scale }, DataType::Decimal128(p, s))
                if s == scale =>
            {
                let v: i128 = unscaled.parse().map_err(|_| mismatch())?;
                Arc::new(
                    Decimal128Array::from(vec![v])
                        .with_precision_and_scale(*p, *s)
                        .map_err(|_| mismatch())?,
                )
            }
            (
                CursorValue::TimestampUtc(v),
                DataType::Timestamp(TimeUnit::Microsecond, tz @ Some(_)),
            ) => Arc::new(TimestampMicrosecondArray::from(vec![*v]).with_timezone_opt(tz.clone())),
            (CursorValue::Timestamp(v), DataType::Timestamp(TimeUnit::Microsecond, None)) => {
                Arc::new(TimestampMicrosecondArray::from(vec![*v]))
            }
            (CursorValue::Date(v), DataType::Date32) => Arc::new(Date32Array::from(vec![*v])),
            (CursorValue::Text(v), DataType::Utf8) => Arc::new(StringArray::from(vec![v.clone()])),
            _ => return Err(mismatch()),
        };
        Ok(arr)
    }
}

impl fmt::Display for CursorValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CursorValue::Int(v) => write!(f, "{v}"),
            CursorValue::Decimal { unscaled, scale } => {
                f.write_str(&format_decimal(unscaled, *scale))
            }
            CursorValue::TimestampUtc(v) => match chrono::DateTime::from_timestamp_micros(*v) {
                Some(t) => write!(f, "{}", t.format("%Y-%m-%d %H:%M:%S%.6f+00:00")),
                None => write!(f, "{v}us"),
            },
            CursorValue::Timestamp(v) => match chrono::DateTime::from_timestamp_micros(*v) {
                Some(t) => write!(f, "{}", t.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f")),
                None => write!(f, "{v}us"),
            },
            CursorValue::Date(d) => {
                match chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
                    .and_then(|e| e.checked_add_signed(chrono::TimeDelta::days(*d as i64)))
                {
                    Some(date) => write!(f, "{}", date.format("%Y-%m-%d")),
                    None => write!(f, "{d}d"),
                }
            }
            CursorValue::Text(s) => f.write_str(s),
        }
    }
}

/// Render an unscaled decimal with its scale: ("-12345", 2) → "-123.45".
pub fn format_decimal(unscaled: &str, scale: i8) -> String {
    let (neg, digits) = match unscaled.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, unscaled),
    };
    let scale = scale.max(0) as usize;
    let mut s = if scale == 0 {
        digits.to_string()
    } else {
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (int, frac) = padded.split_at(padded.len() - scale);
        format!("{int}.{frac}")
    };
    if neg {
        s.insert(0, '-');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn decimal_formatting() {
        assert_eq!(format_decimal("-12345", 2), "-123.45");
        assert_eq!(format_decimal("5", 3), "0.005");
        assert_eq!(format_decimal("42", 0), "42");
    }

    #[test]
    fn lookback_subtracts_in_the_cursor_unit() {
        assert_eq!(
            CursorValue::Int(100).minus(Some(Lookback::Units(30))),
            CursorValue::Int(70)
        );
        assert_eq!(
            CursorValue::TimestampUtc(10_000_000).minus(Some(Lookback::Micros(4_000_000))),
            CursorValue::TimestampUtc(6_000_000)
        );
        assert_eq!(
            CursorValue::Date(10).minus(Some(Lookback::Micros(86_400_000_001))),
            CursorValue::Date(8)
        );
        assert_eq!(
            CursorValue::Decimal {
                unscaled: "1050".into(),
                scale: 2
            }
            .minus(Some(Lookback::Units(1))),
            CursorValue::Decimal {
                unscaled: "950".into(),
                scale: 2
            }
        );
    }

    #[test]
    fn max_of_ignores_nulls_and_keeps_time_zone_kind() {
        let a: ArrayRef = Arc::new(
            TimestampMicrosecondArray::from(vec![Some(5), None, Some(9)]).with_timezone("UTC"),
        );
        assert_eq!(
            CursorValue::max_of(&a),
            Ok(Some(CursorValue::TimestampUtc(9)))
        );
        let n: ArrayRef = Arc::new(Int64Array::from(vec![None, None]));
        assert_eq!(CursorValue::max_of(&n), Ok(None));
    }

    #[test]
    fn serde_round_trip() {
        let v = CursorValue::Decimal {
            unscaled: "123".into(),
            scale: 1,
        };
        let s = serde_json::to_string(&v).unwrap();
        assert_eq!(serde_json::from_str::<CursorValue>(&s).unwrap(), v);
    }
}
