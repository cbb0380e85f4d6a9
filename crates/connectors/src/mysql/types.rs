//! From MySQL/MariaDB result-set metadata and binary-protocol values to Arrow arrays.
//!
//! [`plan_column`] decides, from a column's metadata alone (before any row), which Arrow type
//! the column gets, or that it cannot be loaded losslessly. [`ColumnBuilder`] then appends the
//! values of one batch and checks each one (zero dates, invalid UTF-8, too many digits).

use std::sync::Arc;

use chrono::{NaiveDate, NaiveTime};
use mysql_async::Column;
use mysql_async::Value;
use mysql_async::consts::{ColumnFlags, ColumnType};
use tributary_core::SourceError;
use tributary_core::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int8Builder, Int16Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use tributary_core::arrow::datatypes::{DataType, TimeUnit};

/// MySQL's character-set number for `binary` (BINARY, VARBINARY, BLOB columns).
const BINARY_CHARSET: u16 = 63;

/// Days from 0001-01-01 (day 1 of the common era) to 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// How one result column is converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// TINYINT (signed).
    Int8,
    /// SMALLINT, YEAR, TINYINT UNSIGNED.
    Int16,
    /// MEDIUMINT, INT, SMALLINT UNSIGNED.
    Int32,
    /// BIGINT, INT/MEDIUMINT UNSIGNED.
    Int64,
    /// BIGINT UNSIGNED as DECIMAL(20,0).
    UInt64,
    /// FLOAT.
    Float32,
    /// DOUBLE.
    Float64,
    /// DECIMAL(p,s), p <= 38.
    Decimal(u8, i8),
    /// DATE.
    Date,
    /// DATETIME: wall clock.
    DateTime,
    /// TIMESTAMP: the instant (the session time zone is UTC).
    Timestamp,
    /// TIME as `[-]HH:MM:SS[.ffffff]`.
    Time,
    /// Text (checked UTF-8).
    Text,
    /// Bytes.
    Binary,
    /// BIT(1).
    Bit1,
}

impl Kind {
    /// The Arrow type of the column.
    pub(crate) fn data_type(self) -> DataType {
        match self {
            Kind::Int8 => DataType::Int8,
            Kind::Int16 => DataType::Int16,
            Kind::Int32 => DataType::Int32,
            Kind::Int64 => DataType::Int64,
            Kind::UInt64 => DataType::Decimal128(20, 0),
            Kind::Float32 => DataType::Float32,
            Kind::Float64 => DataType::Float64,
            Kind::Decimal(p, s) => DataType::Decimal128(p, s),
            Kind::Date => DataType::Date32,
            Kind::DateTime => DataType::Timestamp(TimeUnit::Microsecond, None),
            Kind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Kind::Time | Kind::Text => DataType::Utf8,
            Kind::Binary => DataType::Binary,
            Kind::Bit1 => DataType::Boolean,
        }
    }
}

/// One column of the result: its name, the source type's name (for messages) and conversion.
#[derive(Debug, Clone)]
pub(crate) struct ColumnPlan {
    /// Column name exactly as the server reports it.
    pub(crate) name: String,
    /// The source type, as MySQL would write it (`DECIMAL(38,10)`, `BIGINT UNSIGNED`).
    pub(crate) source_type: String,
    /// The conversion.
    pub(crate) kind: Kind,
}

/// Decimal precision of a DECIMAL column from its display length, which counts the digits
/// plus one for the sign (signed columns) and one for the decimal point (scale > 0).
pub(crate) fn decimal_precision(column_length: u32, scale: u8, unsigned: bool) -> u32 {
    let mut p = column_length;
    if scale > 0 {
        p = p.saturating_sub(1);
    }
    if !unsigned {
        p = p.saturating_sub(1);
    }
    p.max(u32::from(scale)).max(1)
}

/// The source type's name, as close to the DDL spelling as the metadata allows.
pub(crate) fn source_type_name(col: &Column) -> String {
    let unsigned = col.flags().contains(ColumnFlags::UNSIGNED_FLAG);
    let binary = col.character_set() == BINARY_CHARSET;
    let u = if unsigned { " UNSIGNED" } else { "" };
    use ColumnType::*;
    match col.column_type() {
        MYSQL_TYPE_TINY => format!("TINYINT{u}"),
        MYSQL_TYPE_SHORT => format!("SMALLINT{u}"),
        MYSQL_TYPE_INT24 => format!("MEDIUMINT{u}"),
        MYSQL_TYPE_LONG => format!("INT{u}"),
        MYSQL_TYPE_LONGLONG => format!("BIGINT{u}"),
        MYSQL_TYPE_YEAR => "YEAR".into(),
        MYSQL_TYPE_FLOAT => "FLOAT".into(),
        MYSQL_TYPE_DOUBLE => "DOUBLE".into(),
        MYSQL_TYPE_DECIMAL | MYSQL_TYPE_NEWDECIMAL => {
            let s = col.decimals();
            let p = decimal_precision(col.column_length(), s, unsigned);
            format!("DECIMAL({p},{s}){u}")
        }
        MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => "DATE".into(),
        MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2 => with_fsp("DATETIME", col.decimals()),
        MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_TIMESTAMP2 => with_fsp("TIMESTAMP", col.decimals()),
        MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2 => with_fsp("TIME", col.decimals()),
        MYSQL_TYPE_BIT => format!("BIT({})", col.column_length()),
        MYSQL_TYPE_JSON => "JSON".into(),
        MYSQL_TYPE_GEOMETRY => "GEOMETRY".into(),
        MYSQL_TYPE_VECTOR => "VECTOR".into(),
        MYSQL_TYPE_NULL => "NULL".into(),
        MYSQL_TYPE_ENUM => "ENUM".into(),
        MYSQL_TYPE_SET => "SET".into(),
        MYSQL_TYPE_STRING if col.flags().contains(ColumnFlags::ENUM_FLAG) => "ENUM".into(),
        MYSQL_TYPE_STRING if col.flags().contains(ColumnFlags::SET_FLAG) => "SET".into(),
        MYSQL_TYPE_STRING if binary => "BINARY".into(),
        MYSQL_TYPE_STRING => "CHAR".into(),
        MYSQL_TYPE_VAR_STRING | MYSQL_TYPE_VARCHAR if binary => "VARBINARY".into(),
        MYSQL_TYPE_VAR_STRING | MYSQL_TYPE_VARCHAR => "VARCHAR".into(),
        MYSQL_TYPE_TINY_BLOB | MYSQL_TYPE_MEDIUM_BLOB | MYSQL_TYPE_LONG_BLOB | MYSQL_TYPE_BLOB
            if binary =>
        {
            "BLOB".into()
        }
        MYSQL_TYPE_TINY_BLOB | MYSQL_TYPE_MEDIUM_BLOB | MYSQL_TYPE_LONG_BLOB | MYSQL_TYPE_BLOB => {
            "TEXT".into()
        }
        other => format!("{other:?}"),
    }
}

fn with_fsp(name: &str, fsp: u8) -> String {
    if fsp > 0 && fsp <= 6 {
        format!("{name}({fsp})")
    } else {
        name.to_string()
    }
}

/// Decide the Arrow mapping of one column from its metadata.
pub(crate) fn plan_column(table: &str, col: &Column) -> Result<ColumnPlan, SourceError> {
    let name = col.name_str().into_owned();
    let source_type = source_type_name(col);
    let unsupported = |reason: &str| SourceError::UnsupportedType {
        table: table.to_string(),
        column: name.clone(),
        source_type: source_type.clone(),
        reason: reason.to_string(),
    };
    let unsigned = col.flags().contains(ColumnFlags::UNSIGNED_FLAG);
    let binary = col.character_set() == BINARY_CHARSET;
    use ColumnType::*;
    let kind = match col.column_type() {
        MYSQL_TYPE_TINY if unsigned => Kind::Int16,
        MYSQL_TYPE_TINY => Kind::Int8,
        MYSQL_TYPE_SHORT if unsigned => Kind::Int32,
        MYSQL_TYPE_SHORT => Kind::Int16,
        MYSQL_TYPE_INT24 | MYSQL_TYPE_LONG if unsigned => Kind::Int64,
        MYSQL_TYPE_INT24 | MYSQL_TYPE_LONG => Kind::Int32,
        MYSQL_TYPE_LONGLONG if unsigned => Kind::UInt64,
        MYSQL_TYPE_LONGLONG => Kind::Int64,
        MYSQL_TYPE_YEAR => Kind::Int16,
        MYSQL_TYPE_FLOAT => Kind::Float32,
        MYSQL_TYPE_DOUBLE => Kind::Float64,
        MYSQL_TYPE_DECIMAL | MYSQL_TYPE_NEWDECIMAL => {
            let s = col.decimals();
            let p = decimal_precision(col.column_length(), s, unsigned);
            if p > 38 || s > 38 {
                return Err(unsupported(
                    "Delta Lake decimals hold at most 38 digits; this column has more",
                ));
            }
            // Both fit i8/u8: checked above.
            Kind::Decimal(p as u8, s as i8)
        }
        MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => Kind::Date,
        MYSQL_TYPE_DATETIME => Kind::DateTime,
        MYSQL_TYPE_TIMESTAMP => Kind::Timestamp,
        MYSQL_TYPE_TIME => Kind::Time,
        MYSQL_TYPE_BIT if col.column_length() == 1 => Kind::Bit1,
        MYSQL_TYPE_BIT => Kind::Binary,
        // MySQL reports JSON with the binary character set; MariaDB's JSON is LONGTEXT.
        MYSQL_TYPE_JSON | MYSQL_TYPE_ENUM | MYSQL_TYPE_SET | MYSQL_TYPE_NULL => Kind::Text,
        MYSQL_TYPE_STRING
            if col.flags().contains(ColumnFlags::ENUM_FLAG)
                || col.flags().contains(ColumnFlags::SET_FLAG) =>
        {
            Kind::Text
        }
        MYSQL_TYPE_STRING
        | MYSQL_TYPE_VAR_STRING
        | MYSQL_TYPE_VARCHAR
        | MYSQL_TYPE_TINY_BLOB
        | MYSQL_TYPE_MEDIUM_BLOB
        | MYSQL_TYPE_LONG_BLOB
        | MYSQL_TYPE_BLOB => {
            if binary {
                Kind::Binary
            } else {
                Kind::Text
            }
        }
        MYSQL_TYPE_GEOMETRY => {
            return Err(unsupported(
                "spatial values have no lossless Delta Lake type",
            ));
        }
        _ => return Err(unsupported("this type has no Delta Lake mapping")),
    };
    Ok(ColumnPlan {
        name,
        source_type,
        kind,
    })
}

/// Builds one Arrow array from the values of one column in a batch.
pub(crate) enum ColumnBuilder {
    Int8(Int8Builder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Decimal(Decimal128Builder, u8, i8),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    Text(StringBuilder),
    Binary(BinaryBuilder),
    Bool(BooleanBuilder),
}

/// A value that does not fit: what it is and why (the caller adds table and column).
pub(crate) struct Rejected {
    pub(crate) value: String,
    pub(crate) reason: String,
}

fn reject(value: impl Into<String>, reason: impl Into<String>) -> Rejected {
    Rejected {
        value: value.into(),
        reason: reason.into(),
    }
}

impl ColumnBuilder {
    /// An empty builder for `kind`, with room for `capacity` values.
    pub(crate) fn new(kind: Kind, capacity: usize) -> Result<Self, SourceError> {
        Ok(match kind {
            Kind::Int8 => ColumnBuilder::Int8(Int8Builder::with_capacity(capacity)),
            Kind::Int16 => ColumnBuilder::Int16(Int16Builder::with_capacity(capacity)),
            Kind::Int32 => ColumnBuilder::Int32(Int32Builder::with_capacity(capacity)),
            Kind::Int64 => ColumnBuilder::Int64(Int64Builder::with_capacity(capacity)),
            Kind::UInt64 | Kind::Decimal(..) => {
                let (p, s) = match kind {
                    Kind::Decimal(p, s) => (p, s),
                    _ => (20, 0),
                };
                let b = Decimal128Builder::with_capacity(capacity)
                    .with_precision_and_scale(p, s)
                    .map_err(|e| SourceError::Internal(format!("decimal({p},{s}) builder: {e}")))?;
                ColumnBuilder::Decimal(b, p, s)
            }
            Kind::Float32 => ColumnBuilder::Float32(Float32Builder::with_capacity(capacity)),
            Kind::Float64 => ColumnBuilder::Float64(Float64Builder::with_capacity(capacity)),
            Kind::Date => ColumnBuilder::Date(Date32Builder::with_capacity(capacity)),
            Kind::DateTime => {
                ColumnBuilder::Timestamp(TimestampMicrosecondBuilder::with_capacity(capacity))
            }
            Kind::Timestamp => ColumnBuilder::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("UTC"),
            ),
            Kind::Time | Kind::Text => {
                ColumnBuilder::Text(StringBuilder::with_capacity(capacity, capacity * 16))
            }
            Kind::Binary => {
                ColumnBuilder::Binary(BinaryBuilder::with_capacity(capacity, capacity * 16))
            }
            Kind::Bit1 => ColumnBuilder::Bool(BooleanBuilder::with_capacity(capacity)),
        })
    }

    /// Append one value (`None` or `Value::NULL` is SQL NULL).
    pub(crate) fn append(&mut self, kind: Kind, value: Option<&Value>) -> Result<(), Rejected> {
        let value = match value {
            None | Some(Value::NULL) => {
                self.append_null();
                return Ok(());
            }
            Some(v) => v,
        };
        match (self, kind) {
            (ColumnBuilder::Int8(b), _) => b.append_value(int_value(value)?),
            (ColumnBuilder::Int16(b), _) => b.append_value(int_value(value)?),
            (ColumnBuilder::Int32(b), _) => b.append_value(int_value(value)?),
            (ColumnBuilder::Int64(b), _) => b.append_value(int_value(value)?),
            (ColumnBuilder::Decimal(b, _, _), Kind::UInt64) => {
                let v: i128 = match value {
                    Value::UInt(u) => i128::from(*u),
                    Value::Int(i) => i128::from(*i),
                    other => return Err(unexpected(other)),
                };
                b.append_value(v)
            }
            (ColumnBuilder::Decimal(b, p, s), _) => {
                let v = match value {
                    Value::Bytes(bytes) => parse_decimal(bytes, *p, *s)?,
                    Value::Int(i) => scale_int(i128::from(*i), *p, *s, value)?,
                    Value::UInt(u) => scale_int(i128::from(*u), *p, *s, value)?,
                    other => return Err(unexpected(other)),
                };
                b.append_value(v)
            }
            (ColumnBuilder::Float32(b), _) => match value {
                Value::Float(f) => b.append_value(*f),
                Value::Double(d) => b.append_value(*d as f32),
                other => return Err(unexpected(other)),
            },
            (ColumnBuilder::Float64(b), _) => match value {
                Value::Double(d) => b.append_value(*d),
                Value::Float(f) => b.append_value(f64::from(*f)),
                other => return Err(unexpected(other)),
            },
            (ColumnBuilder::Date(b), _) => match value {
                Value::Date(y, m, d, ..) => b.append_value(date_days(*y, *m, *d)?),
                other => return Err(unexpected(other)),
            },
            (ColumnBuilder::Timestamp(b), _) => match value {
                Value::Date(y, mo, d, h, mi, s, us) => {
                    b.append_value(datetime_micros(*y, *mo, *d, *h, *mi, *s, *us)?)
                }
                other => return Err(unexpected(other)),
            },
            (ColumnBuilder::Text(b), Kind::Time) => match value {
                Value::Time(neg, days, h, m, s, us) => {
                    b.append_value(format_time(*neg, *days, *h, *m, *s, *us))
                }
                other => return Err(unexpected(other)),
            },
            (ColumnBuilder::Text(b), _) => match value {
                Value::Bytes(bytes) => match std::str::from_utf8(bytes) {
                    Ok(s) => b.append_value(s),
                    Err(e) => {
                        return Err(reject(
                            String::from_utf8_lossy(&bytes[..bytes.len().min(64)]),
                            format!("not valid UTF-8 ({e})"),
                        ));
                    }
                },
                other => return Err(unexpected(other)),
            },
            (ColumnBuilder::Binary(b), _) => match value {
                Value::Bytes(bytes) => b.append_value(bytes),
                other => return Err(unexpected(other)),
            },
            (ColumnBuilder::Bool(b), _) => match value {
                Value::Bytes(bytes) => b.append_value(bytes.iter().any(|x| *x != 0)),
                Value::Int(i) => b.append_value(*i != 0),
                Value::UInt(u) => b.append_value(*u != 0),
                other => return Err(unexpected(other)),
            },
        }
        Ok(())
    }

    fn append_null(&mut self) {
        match self {
            ColumnBuilder::Int8(b) => b.append_null(),
            ColumnBuilder::Int16(b) => b.append_null(),
            ColumnBuilder::Int32(b) => b.append_null(),
            ColumnBuilder::Int64(b) => b.append_null(),
            ColumnBuilder::Decimal(b, ..) => b.append_null(),
            ColumnBuilder::Float32(b) => b.append_null(),
            ColumnBuilder::Float64(b) => b.append_null(),
            ColumnBuilder::Date(b) => b.append_null(),
            ColumnBuilder::Timestamp(b) => b.append_null(),
            ColumnBuilder::Text(b) => b.append_null(),
            ColumnBuilder::Binary(b) => b.append_null(),
            ColumnBuilder::Bool(b) => b.append_null(),
        }
    }

    /// The array of the values appended so far; the builder is empty afterwards.
    pub(crate) fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Int8(b) => Arc::new(b.finish()),
            ColumnBuilder::Int16(b) => Arc::new(b.finish()),
            ColumnBuilder::Int32(b) => Arc::new(b.finish()),
            ColumnBuilder::Int64(b) => Arc::new(b.finish()),
            ColumnBuilder::Decimal(b, ..) => Arc::new(b.finish()),
            ColumnBuilder::Float32(b) => Arc::new(b.finish()),
            ColumnBuilder::Float64(b) => Arc::new(b.finish()),
            ColumnBuilder::Date(b) => Arc::new(b.finish()),
            ColumnBuilder::Timestamp(b) => Arc::new(b.finish()),
            ColumnBuilder::Text(b) => Arc::new(b.finish()),
            ColumnBuilder::Binary(b) => Arc::new(b.finish()),
            ColumnBuilder::Bool(b) => Arc::new(b.finish()),
        }
    }
}

fn unexpected(v: &Value) -> Rejected {
    reject(
        format!("{v:?}"),
        "the server sent a value of an unexpected kind for this column type",
    )
}

fn int_value<T: TryFrom<i64> + TryFrom<u64>>(v: &Value) -> Result<T, Rejected> {
    let out_of_range = || reject(format!("{v:?}"), "out of range for the column's type");
    match v {
        Value::Int(i) => T::try_from(*i).map_err(|_| out_of_range()),
        Value::UInt(u) => T::try_from(*u).map_err(|_| out_of_range()),
        other => Err(unexpected(other)),
    }
}

fn scale_int(v: i128, p: u8, s: i8, orig: &Value) -> Result<i128, Rejected> {
    let scaled = 10i128
        .checked_pow(s.max(0) as u32)
        .and_then(|f| v.checked_mul(f))
        .filter(|x| x.unsigned_abs() < 10u128.pow(u32::from(p)))
        .ok_or_else(|| {
            reject(
                format!("{orig:?}"),
                format!("does not fit DECIMAL({p},{s})"),
            )
        })?;
    Ok(scaled)
}

/// Parse MySQL's decimal text (`-123.4500`) into the unscaled integer at scale `s`, checking
/// that it has at most `p` significant digits.
pub(crate) fn parse_decimal(bytes: &[u8], p: u8, s: i8) -> Result<i128, Rejected> {
    let text = String::from_utf8_lossy(bytes);
    let bad = |reason: &str| reject(text.to_string(), reason.to_string());
    let (neg, rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, &text[..]),
    };
    let (int, frac) = rest.split_once('.').unwrap_or((rest, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad("not a decimal number"));
    }
    let scale = s.max(0) as usize;
    let frac = frac.trim_end_matches('0');
    if frac.len() > scale {
        return Err(bad(&format!(
            "has more than {scale} digits after the decimal point"
        )));
    }
    let mut digits = String::with_capacity(int.len() + scale);
    digits.push_str(int.trim_start_matches('0'));
    digits.push_str(frac);
    for _ in frac.len()..scale {
        digits.push('0');
    }
    let significant = digits.trim_start_matches('0');
    if significant.len() > usize::from(p) {
        return Err(bad(&format!("has more than {p} digits")));
    }
    if significant.is_empty() {
        return Ok(0);
    }
    let v: i128 = significant
        .parse()
        .map_err(|_| bad("not a decimal number"))?;
    Ok(if neg { -v } else { v })
}

fn zero_date_check(y: u16, m: u8, d: u8, text: impl Fn() -> String) -> Result<NaiveDate, Rejected> {
    if m == 0 || d == 0 {
        return Err(reject(
            text(),
            "MySQL zero dates (zero month or day) are not real dates",
        ));
    }
    NaiveDate::from_ymd_opt(i32::from(y), u32::from(m), u32::from(d))
        .ok_or_else(|| reject(text(), "not a valid calendar date"))
}

/// Days since 1970-01-01 of a MySQL date; zero dates are rejected.
pub(crate) fn date_days(y: u16, m: u8, d: u8) -> Result<i32, Rejected> {
    let date = zero_date_check(y, m, d, || format!("{y:04}-{m:02}-{d:02}"))?;
    Ok(chrono::Datelike::num_days_from_ce(&date) - UNIX_EPOCH_DAYS_FROM_CE)
}

/// Microseconds since 1970-01-01 00:00:00 of a MySQL datetime; zero dates are rejected.
pub(crate) fn datetime_micros(
    y: u16,
    mo: u8,
    d: u8,
    h: u8,
    mi: u8,
    s: u8,
    us: u32,
) -> Result<i64, Rejected> {
    let text = || {
        let mut t = format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}");
        if us > 0 {
            t.push_str(&format!(".{us:06}"));
        }
        t
    };
    let date = zero_date_check(y, mo, d, text)?;
    let time = NaiveTime::from_hms_micro_opt(u32::from(h), u32::from(mi), u32::from(s), us)
        .ok_or_else(|| reject(text(), "not a valid time of day"))?;
    Ok(date.and_time(time).and_utc().timestamp_micros())
}

/// `[-]HH:MM:SS[.ffffff]`; hours may exceed 24 (MySQL TIME spans ±838 hours).
pub(crate) fn format_time(neg: bool, days: u32, h: u8, m: u8, s: u8, us: u32) -> String {
    let hours = u64::from(days) * 24 + u64::from(h);
    let sign = if neg { "-" } else { "" };
    if us > 0 {
        format!("{sign}{hours:02}:{m:02}:{s:02}.{us:06}")
    } else {
        format!("{sign}{hours:02}:{m:02}:{s:02}")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tributary_core::arrow::array::Array;

    #[test]
    fn invalid_utf8_text_is_rejected_and_nulls_kept() {
        let mut b = ColumnBuilder::new(Kind::Text, 4).unwrap();
        assert!(
            b.append(Kind::Text, Some(&Value::Bytes("é\n😀".into())))
                .is_ok()
        );
        assert!(b.append(Kind::Text, Some(&Value::NULL)).is_ok());
        let r = b
            .append(Kind::Text, Some(&Value::Bytes(vec![b'a', 0xC3, 0x28])))
            .err()
            .unwrap();
        assert!(r.reason.contains("UTF-8"), "{}", r.reason);
        let a = b.finish();
        assert_eq!(a.len(), 2);
        assert_eq!(a.null_count(), 1);
    }

    #[test]
    fn decimal_precision_from_length() {
        // Measured on MariaDB 10.11: DECIMAL(38,10) has length 40, DECIMAL(10,0) 11,
        // DECIMAL(10,2) UNSIGNED 11, DECIMAL(38,0) UNSIGNED 38, DECIMAL(5,5) 7, DECIMAL(65,2) 67.
        assert_eq!(decimal_precision(40, 10, false), 38);
        assert_eq!(decimal_precision(11, 0, false), 10);
        assert_eq!(decimal_precision(11, 2, true), 10);
        assert_eq!(decimal_precision(38, 0, true), 38);
        assert_eq!(decimal_precision(7, 5, false), 5);
        assert_eq!(decimal_precision(67, 2, false), 65);
    }

    #[test]
    fn decimals_parse_exactly() {
        assert_eq!(parse_decimal(b"-123.45", 10, 2).ok(), Some(-12345));
        assert_eq!(parse_decimal(b"0.00001", 5, 5).ok(), Some(1));
        assert_eq!(parse_decimal(b"7", 3, 2).ok(), Some(700));
        assert_eq!(parse_decimal(b"0.000", 3, 2).ok(), Some(0));
        assert_eq!(
            parse_decimal(b"9999999999999999999999999999.9999999999", 38, 10).ok(),
            Some(99_999_999_999_999_999_999_999_999_999_999_999_999)
        );
        assert!(parse_decimal(b"1000", 3, 0).is_err());
        assert!(parse_decimal(b"1.234", 10, 2).is_err());
        assert!(parse_decimal(b"1e5", 10, 2).is_err());
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(date_days(1970, 1, 1).ok(), Some(0));
        assert_eq!(date_days(1969, 12, 31).ok(), Some(-1));
        assert!(date_days(0, 0, 0).is_err());
        assert!(date_days(2024, 0, 5).is_err());
        assert_eq!(
            datetime_micros(1970, 1, 1, 0, 0, 1, 5).ok(),
            Some(1_000_005)
        );
        assert_eq!(format_time(true, 34, 22, 59, 59, 0), "-838:59:59");
        assert_eq!(format_time(false, 0, 12, 0, 0, 500_000), "12:00:00.500000");
        assert_eq!(format_time(false, 0, 1, 2, 3, 0), "01:02:03");
    }
}
