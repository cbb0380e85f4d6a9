//! Small pieces shared by the connectors.

use futures::StreamExt;
use tokio::sync::mpsc;
use tributary_core::{BatchStream, SourceBatch, SourceError};

/// Where a database reader announces, before its rows, the schema and the table's declared
/// primary key (or why it cannot read).
pub(crate) type Announce = tokio::sync::oneshot::Sender<
    Result<(deltalake::arrow::datatypes::SchemaRef, Option<Vec<String>>), SourceError>,
>;

/// A connection to a folder or object-store prefix: `type: files` (its tables are globs) and
/// `type: delta` (its tables are Delta table paths).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConnection {
    /// A local folder (relative to the project) or an object-store URL (`abfss://`, `az://`,
    /// `s3://`, `gs://`).
    pub url: String,
    /// Options for the object store, as `lake_options` (account keys, endpoints, …).
    #[serde(default)]
    pub storage_options: std::collections::BTreeMap<String, String>,
}

impl StoreConnection {
    /// Problems of the location, as (key, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        if !crate::registry::known(&self.url) {
            return Vec::new();
        }
        match tributary_core::config::check_location(&self.url) {
            Ok(()) => Vec::new(),
            Err(e) => vec![("url".into(), e)],
        }
    }
}

/// Default rows per batch for database sources.
pub const DEFAULT_BATCH_SIZE: usize = 10_000;
/// Default rows per batch for file sources.
pub const DEFAULT_FILE_BATCH_SIZE: usize = 8_192;

/// How many batches a producer may run ahead of the consumer. Small and fixed, so memory is
/// bounded by `batch_size × CHANNEL_BATCHES`, whatever the table size.
pub const CHANNEL_BATCHES: usize = 2;

/// A bounded channel whose receiving end is a [`BatchStream`]. Producers (a blocking thread for
/// SQLite, a task for network drivers) send into the `Sender`; when the consumer stops pulling,
/// `send` waits, and when the consumer drops the stream, `send` fails and the producer stops.
pub fn batch_channel() -> (mpsc::Sender<Result<SourceBatch, SourceError>>, BatchStream) {
    let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
    let stream = tokio_stream_from(rx);
    (tx, stream)
}

fn tokio_stream_from(rx: mpsc::Receiver<Result<SourceBatch, SourceError>>) -> BatchStream {
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
    .boxed()
}

// ---------------------------------------------------------------------------------------------
// Shared by the SQLite and files connectors (and usable by others): skipped-record counting,
// text parsing of dates, timestamps and decimals, and normalizing Arrow data for Delta Lake.
// ---------------------------------------------------------------------------------------------

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use deltalake::arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Array, RecordBatch, RecordBatchOptions,
};
use deltalake::arrow::compute::{CastOptions, cast_with_options};
use deltalake::arrow::datatypes::{
    DataType, Date64Type, Field, Schema, TimeUnit, TimestampNanosecondType, UInt64Type,
};

/// A shared counter of malformed records skipped (`on_error: skip`). Clones share the count.
#[derive(Debug, Clone, Default)]
pub struct SkipCounter(Arc<AtomicU64>);

impl SkipCounter {
    /// Add `n` skipped records.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// The total so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value shortened to about 100 characters for error messages.
pub fn truncate_value(value: &str) -> String {
    const MAX: usize = 100;
    if value.chars().count() <= MAX {
        value.to_string()
    } else {
        let mut s: String = value.chars().take(MAX).collect();
        s.push('…');
        s
    }
}

/// A timestamp parsed from text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParsedTimestamp {
    /// No zone in the text: wall-clock microseconds since 1970-01-01 00:00:00.
    Naive(i64),
    /// The text had `Z` or an offset: the instant, microseconds since the Unix epoch (UTC).
    Utc(i64),
}

const DAYS_CE_TO_EPOCH: i32 = 719_163;

fn two_digits(b: &[u8]) -> Option<u32> {
    match b {
        [a, b] if a.is_ascii_digit() && b.is_ascii_digit() => {
            Some(u32::from(a - b'0') * 10 + u32::from(b - b'0'))
        }
        _ => None,
    }
}

fn parse_ymd(b: &[u8]) -> Option<chrono::NaiveDate> {
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' || !b[..4].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let year = b[..4]
        .iter()
        .fold(0i32, |acc, d| acc * 10 + i32::from(d - b'0'));
    chrono::NaiveDate::from_ymd_opt(year, two_digits(&b[5..7])?, two_digits(&b[8..10])?)
}

/// Parse a strict `YYYY-MM-DD` date into days since 1970-01-01 (0001-01-01 to 9999-12-31).
pub fn parse_date(s: &str) -> Option<i32> {
    use chrono::Datelike;
    parse_ymd(s.as_bytes()).map(|d| d.num_days_from_ce() - DAYS_CE_TO_EPOCH)
}

/// Parse `YYYY-MM-DD[ T]HH:MM[:SS[.f…]][Z|±HH[:MM]]` into microseconds. Fractions beyond six
/// digits are accepted only when they are zeros (no silent truncation). With `Z` or an offset,
/// the result is the UTC instant.
pub fn parse_timestamp(s: &str) -> Option<ParsedTimestamp> {
    let b = s.as_bytes();
    if b.len() < 16 || !matches!(b[10], b' ' | b'T' | b't') {
        return None;
    }
    let date = parse_ymd(&b[..10])?;
    let hour = two_digits(&b[11..13])?;
    if b[13] != b':' {
        return None;
    }
    let minute = two_digits(&b[14..16])?;
    let mut i = 16;
    let mut second = 0;
    let mut micros = 0u32;
    if b.get(i) == Some(&b':') {
        second = two_digits(b.get(i + 1..i + 3)?)?;
        i += 3;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let digits = &b[start..i];
            if digits.is_empty() || digits.len() > 9 {
                return None;
            }
            if digits.iter().skip(6).any(|d| *d != b'0') {
                return None;
            }
            for k in 0..6 {
                micros = micros * 10 + digits.get(k).map_or(0, |d| u32::from(d - b'0'));
            }
        }
    }
    let time = chrono::NaiveTime::from_hms_micro_opt(hour, minute, second, micros)?;
    let wall = date.and_time(time).and_utc().timestamp_micros();
    let rest = &b[i..];
    let offset_secs: Option<i64> = match rest {
        [] => None,
        [b'Z' | b'z'] => Some(0),
        [sign @ (b'+' | b'-'), tail @ ..] => {
            let (h, m) = match tail {
                [h1, h2] => (two_digits(&[*h1, *h2])?, 0),
                [h1, h2, m1, m2] => (two_digits(&[*h1, *h2])?, two_digits(&[*m1, *m2])?),
                [h1, h2, b':', m1, m2] => (two_digits(&[*h1, *h2])?, two_digits(&[*m1, *m2])?),
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            let secs = i64::from(h * 3600 + m * 60);
            Some(if *sign == b'-' { -secs } else { secs })
        }
        _ => return None,
    };
    Some(match offset_secs {
        None => ParsedTimestamp::Naive(wall),
        Some(off) => ParsedTimestamp::Utc(wall - off * 1_000_000),
    })
}

/// Parse plain decimal text (`-123.4500`, `7`, `.5`) into the unscaled value of a
/// `Decimal128(precision, scale)`. Extra fractional zeros are dropped; any other digit beyond the
/// scale, more than `precision` digits, or exponent notation is an error (the reason).
pub fn parse_decimal(s: &str, precision: u8, scale: i8) -> Result<i128, String> {
    let scale = usize::try_from(scale).map_err(|_| format!("negative scale {scale}"))?;
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|c| c.is_ascii_digit())
        || !frac.bytes().all(|c| c.is_ascii_digit())
    {
        return Err("not a plain decimal number".into());
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > scale {
        return Err(format!(
            "{} digits after the decimal point, more than the scale {scale}",
            frac.len()
        ));
    }
    let int = int.trim_start_matches('0');
    if int.len() + scale > usize::from(precision) {
        return Err(format!(
            "{} digits before the decimal point do not fit precision {precision} with scale {scale}",
            int.len()
        ));
    }
    let mut v: i128 = 0;
    for d in int.bytes().chain(frac.bytes()) {
        v = v * 10 + i128::from(d - b'0');
    }
    for _ in frac.len()..scale {
        v *= 10;
    }
    Ok(if neg { -v } else { v })
}

/// Why a column cannot be normalized for Delta Lake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizeError {
    /// Column name (top level).
    pub column: String,
    /// The Arrow type it had.
    pub source_type: String,
    /// The offending value, when one value is the problem (not the type).
    pub value: Option<String>,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for NormalizeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "column {} ({})", self.column, self.source_type)?;
        if let Some(v) = &self.value {
            write!(f, ", value {v}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl From<NormalizeError> for String {
    fn from(e: NormalizeError) -> String {
        e.to_string()
    }
}

/// The Delta-storable type for an Arrow type: unsigned integers widen (u64 to
/// `Decimal128(20,0)`), timestamps become microseconds (zoned ones `UTC`, same instant), large
/// and view strings/binaries become plain ones, fixed-size binary becomes binary, times of day
/// become text, `Float16` becomes `Float32`, `Decimal32/64` and `Decimal256` with precision
/// ≤ 38 become `Decimal128`, dictionaries become their values, `Null` becomes `Utf8`; lists and
/// structs are normalized inside. `Err` carries the reason for types Delta cannot store.
pub fn normalize_type_for_delta(data_type: &DataType) -> Result<DataType, String> {
    use DataType as D;
    let nested = |f: &Arc<Field>| -> Result<Arc<Field>, String> {
        Ok(Arc::new(Field::new(
            f.name(),
            normalize_type_for_delta(f.data_type())?,
            true,
        )))
    };
    Ok(match data_type {
        D::Null => D::Utf8,
        D::Boolean
        | D::Int8
        | D::Int16
        | D::Int32
        | D::Int64
        | D::Float32
        | D::Float64
        | D::Utf8
        | D::Binary
        | D::Date32
        | D::Decimal128(_, _) => data_type.clone(),
        D::UInt8 => D::Int16,
        D::UInt16 => D::Int32,
        D::UInt32 => D::Int64,
        D::UInt64 => D::Decimal128(20, 0),
        D::Float16 => D::Float32,
        D::Timestamp(_, tz) => {
            D::Timestamp(TimeUnit::Microsecond, tz.as_ref().map(|_| "UTC".into()))
        }
        D::Date64 => D::Date32,
        D::Time32(_) | D::Time64(_) => D::Utf8,
        D::LargeUtf8 | D::Utf8View => D::Utf8,
        D::LargeBinary | D::BinaryView | D::FixedSizeBinary(_) => D::Binary,
        D::Decimal32(p, s) | D::Decimal64(p, s) => D::Decimal128(*p, *s),
        D::Decimal256(p, s) if *p <= 38 => D::Decimal128(*p, *s),
        D::Decimal256(p, _) => {
            return Err(format!(
                "precision {p} is more than the 38 digits Delta Lake can store"
            ));
        }
        D::List(f) | D::LargeList(f) | D::ListView(f) | D::LargeListView(f) => D::List(nested(f)?),
        D::FixedSizeList(f, _) => D::List(nested(f)?),
        D::Struct(fields) => D::Struct(
            fields
                .iter()
                .map(nested)
                .collect::<Result<Vec<_>, _>>()?
                .into(),
        ),
        D::Map(entries, sorted) => D::Map(nested(entries)?, *sorted),
        D::Dictionary(_, value) => normalize_type_for_delta(value)?,
        other => return Err(format!("Delta Lake has no type for {other}")),
    })
}

/// [`normalize_type_for_delta`] for every field; all fields become nullable.
pub fn normalize_schema_for_delta(schema: &Schema) -> Result<Schema, NormalizeError> {
    let fields = schema
        .fields()
        .iter()
        .map(|f| {
            normalize_type_for_delta(f.data_type())
                .map(|t| Field::new(f.name(), t, true))
                .map_err(|reason| NormalizeError {
                    column: f.name().clone(),
                    source_type: f.data_type().to_string(),
                    value: None,
                    reason,
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Schema::new(fields))
}

/// Convert a batch to the types of [`normalize_schema_for_delta`]. Conversions never lose
/// information: a nanosecond timestamp that is not a whole number of microseconds, a `Date64`
/// that is not a whole day, or an out-of-range value is an error naming column and value.
/// (Nanosecond timestamps nested inside lists or structs are truncated to microseconds.)
pub fn normalize_batch_for_delta(batch: &RecordBatch) -> Result<RecordBatch, NormalizeError> {
    let schema = Arc::new(normalize_schema_for_delta(&batch.schema())?);
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(array, field)| normalize_array(array, field.name(), field.data_type()))
        .collect::<Result<Vec<_>, _>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(schema, columns, &options).map_err(|e| NormalizeError {
        column: String::new(),
        source_type: String::new(),
        value: None,
        reason: format!("internal error assembling the normalized batch: {e}"),
    })
}

fn normalize_array(
    array: &ArrayRef,
    column: &str,
    target: &DataType,
) -> Result<ArrayRef, NormalizeError> {
    let source = array.data_type();
    if source == target {
        return Ok(array.clone());
    }
    let err = |value: Option<String>, reason: String| NormalizeError {
        column: column.to_string(),
        source_type: source.to_string(),
        value,
        reason,
    };
    match source {
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            let a = array.as_primitive::<TimestampNanosecondType>();
            if let Some(v) = a.iter().flatten().find(|v| v % 1000 != 0) {
                let shown = chrono::DateTime::from_timestamp_nanos(v).naive_utc();
                return Err(err(
                    Some(format!("{shown} ({v} ns)")),
                    "not a whole number of microseconds; Delta Lake stores microseconds".into(),
                ));
            }
        }
        DataType::Date64 => {
            let a = array.as_primitive::<Date64Type>();
            if let Some(v) = a.iter().flatten().find(|v| v % 86_400_000 != 0) {
                return Err(err(
                    Some(format!("{v} ms")),
                    "a Date64 that is not a whole day".into(),
                ));
            }
        }
        DataType::UInt64 => {
            let a = array.as_primitive::<UInt64Type>();
            let d: Decimal128Array = a.unary(i128::from);
            let d = d
                .with_precision_and_scale(20, 0)
                .map_err(|e| err(None, e.to_string()))?;
            return Ok(Arc::new(d));
        }
        _ => {}
    }
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    cast_with_options(array, target, &options)
        .map_err(|e| err(None, format!("cannot convert to {target}: {e}")))
}

/// The `WHERE` predicates of a parallel read's key ranges between `boundaries` (SQL literals of
/// sorted, distinct values): below the first (with the NULL keys, so none is missed), between
/// each two, from the last on. No boundaries: one read of everything (`[None]`).
pub fn range_predicates(column: &str, boundaries: &[String]) -> Vec<Option<String>> {
    let (Some(first), Some(last)) = (boundaries.first(), boundaries.last()) else {
        return vec![None];
    };
    let mut out = Vec::with_capacity(boundaries.len() + 1);
    out.push(Some(format!("({column} < {first} OR {column} IS NULL)")));
    for pair in boundaries.windows(2) {
        out.push(Some(format!(
            "{column} >= {} AND {column} < {}",
            pair[0], pair[1]
        )));
    }
    out.push(Some(format!("{column} >= {last}")));
    out
}

#[cfg(test)]
mod parse_tests {
    use super::*;

    #[test]
    fn timestamps_parse_strictly_and_offsets_become_utc() {
        let naive = |s| match parse_timestamp(s) {
            Some(ParsedTimestamp::Naive(v)) => v,
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(naive("1970-01-01 00:00:01"), 1_000_000);
        assert_eq!(naive("1970-01-01T00:00:00.000001"), 1);
        assert_eq!(naive("1970-01-01 00:01"), 60_000_000);
        assert_eq!(naive("1970-01-01 00:00:00.123456000"), 123_456);
        assert_eq!(parse_timestamp("1970-01-01 00:00:00.1234567"), None);
        assert_eq!(
            parse_timestamp("1970-01-01 02:00:00+02:00"),
            Some(ParsedTimestamp::Utc(0))
        );
        assert_eq!(
            parse_timestamp("1969-12-31T19:00:00-0500"),
            Some(ParsedTimestamp::Utc(0))
        );
        assert_eq!(
            parse_timestamp("1970-01-01T00:00:00Z"),
            Some(ParsedTimestamp::Utc(0))
        );
        assert_eq!(parse_timestamp("1970-01-01 24:00:00"), None);
        assert_eq!(parse_timestamp("1970-1-01 00:00:00"), None);
        assert_eq!(parse_date("0001-01-01"), Some(-719_162));
        assert_eq!(parse_date("9999-12-31"), Some(2_932_896));
        assert_eq!(parse_date("2023-02-29"), None);
    }

    #[test]
    fn decimals_parse_exactly() {
        assert_eq!(parse_decimal("-123.45", 10, 2), Ok(-12_345));
        assert_eq!(parse_decimal("1.50", 10, 1), Ok(15));
        assert_eq!(parse_decimal(".5", 3, 2), Ok(50));
        assert_eq!(parse_decimal("7", 38, 9), Ok(7_000_000_000));
        assert!(parse_decimal("1.234", 10, 2).is_err());
        assert!(parse_decimal("123456789", 10, 2).is_err());
        assert!(parse_decimal("1e3", 10, 2).is_err());
        assert!(parse_decimal("", 10, 2).is_err());
    }

    #[test]
    fn skip_counter_is_shared_by_clones() {
        let a = SkipCounter::default();
        a.clone().add(2);
        a.add(1);
        assert_eq!(a.get(), 3);
    }
}
