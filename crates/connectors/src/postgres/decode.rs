//! Decoding PostgreSQL's binary wire format into Arrow builders.
//!
//! Every value arrives as the raw bytes the server's `*send` function produced (a field of the
//! binary COPY stream, see [`super::copy`]); each column has a [`Kind`] chosen from its type when the query was prepared, and a [`Column`]
//! builder that decodes those bytes straight into Arrow buffers. Nothing goes through
//! intermediate Rust types such as `chrono` or `rust_decimal`, so there is no lossy step.

use std::sync::Arc;

use deltalake::arrow::array::{
    ArrayRef, BinaryArray, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    Float32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder, ListArray,
    NullBufferBuilder, StringArray, StringBuilder, TimestampMicrosecondBuilder,
};
use deltalake::arrow::buffer::{OffsetBuffer, ScalarBuffer};
use deltalake::arrow::datatypes::{DataType, Field, FieldRef, TimeUnit};

/// Days from 1970-01-01 (Arrow's epoch) to 2000-01-01 (PostgreSQL's epoch).
const PG_EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// The precision and scale that an unconstrained `numeric` column is loaded as.
pub(crate) const UNCONSTRAINED_NUMERIC: (u8, i8) = (38, 9);

/// How the values of one column are decoded, and into which Arrow type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `bool` → Boolean.
    Bool,
    /// `int2` → Int16.
    Int2,
    /// `int4` → Int32.
    Int4,
    /// `int8` → Int64.
    Int8,
    /// `oid` (unsigned 32 bits) → Int64.
    Oid,
    /// `float4` → Float32.
    Float4,
    /// `float8` → Float64.
    Float8,
    /// `numeric` → Decimal128(precision, scale).
    Numeric {
        /// Arrow precision.
        precision: u8,
        /// Arrow scale.
        scale: i8,
        /// Whether the column had no precision of its own (loaded as decimal(38,9)).
        unconstrained: bool,
    },
    /// Text-like types sent as UTF-8 bytes: text, varchar, bpchar, name, "char", citext, enums,
    /// json.
    Text,
    /// `jsonb`: a version byte, then the text.
    Jsonb,
    /// `uuid` → lowercase hyphenated text.
    Uuid,
    /// `time` → `HH:MM:SS[.ffffff]`.
    Time,
    /// `timetz` → `HH:MM:SS[.ffffff]+HH[:MM]`.
    TimeTz,
    /// `bytea` → Binary.
    Bytea,
    /// `date` → Date32.
    Date,
    /// `timestamp` → Timestamp(µs, None).
    Timestamp,
    /// `timestamptz` → Timestamp(µs, "UTC").
    TimestampTz,
    /// One-dimensional array → List of the element kind.
    List(Box<Kind>),
}

impl Kind {
    /// The Arrow type of the column.
    pub(crate) fn data_type(&self) -> DataType {
        match self {
            Kind::Bool => DataType::Boolean,
            Kind::Int2 => DataType::Int16,
            Kind::Int4 => DataType::Int32,
            Kind::Int8 | Kind::Oid => DataType::Int64,
            Kind::Float4 => DataType::Float32,
            Kind::Float8 => DataType::Float64,
            Kind::Numeric {
                precision, scale, ..
            } => DataType::Decimal128(*precision, *scale),
            Kind::Text | Kind::Jsonb | Kind::Uuid | Kind::Time | Kind::TimeTz => DataType::Utf8,
            Kind::Bytea => DataType::Binary,
            Kind::Date => DataType::Date32,
            Kind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            Kind::TimestampTz => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Kind::List(element) => DataType::List(list_item_field(element)),
        }
    }
}

fn list_item_field(element: &Kind) -> FieldRef {
    Arc::new(Field::new_list_field(element.data_type(), true))
}

/// Why one value could not be loaded: the value as text and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ValueError {
    /// The offending value, rendered as text.
    pub(crate) value: String,
    /// Why it cannot be represented.
    pub(crate) reason: String,
}

impl ValueError {
    fn new(value: impl Into<String>, reason: impl Into<String>) -> Self {
        ValueError {
            value: value.into(),
            reason: reason.into(),
        }
    }

    fn malformed(raw: &[u8], what: &str) -> Self {
        ValueError::new(
            format!("0x{}", hex(raw)),
            format!("malformed binary {what} value from the server; please report this"),
        )
    }
}

/// An Arrow builder for one column, decoding binary values of its [`Kind`].
pub(crate) enum Column {
    Bool(BooleanBuilder),
    Int2(Int16Builder),
    Int4(Int32Builder),
    Int8(Int64Builder),
    Oid(Int64Builder),
    Float4(Float32Builder),
    Float8(Float64Builder),
    Numeric {
        builder: Decimal128Builder,
        precision: u8,
        scale: i8,
        unconstrained: bool,
    },
    /// Text and jsonb bytes, validated as UTF-8 once per batch by [`Column::finish`] (one pass
    /// over the whole buffer is much cheaper than one call per value).
    Text(BinaryBuilder),
    Jsonb(BinaryBuilder),
    Uuid(StringBuilder),
    Time(StringBuilder),
    TimeTz(StringBuilder),
    Bytea(BinaryBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    TimestampTz(TimestampMicrosecondBuilder),
    List {
        field: FieldRef,
        offsets: Vec<i32>,
        nulls: NullBufferBuilder,
        child: Box<Column>,
    },
}

impl Column {
    /// A builder for `kind` with room for `capacity` values.
    pub(crate) fn new(kind: &Kind, capacity: usize) -> Column {
        match kind {
            Kind::Bool => Column::Bool(BooleanBuilder::with_capacity(capacity)),
            Kind::Int2 => Column::Int2(Int16Builder::with_capacity(capacity)),
            Kind::Int4 => Column::Int4(Int32Builder::with_capacity(capacity)),
            Kind::Int8 => Column::Int8(Int64Builder::with_capacity(capacity)),
            Kind::Oid => Column::Oid(Int64Builder::with_capacity(capacity)),
            Kind::Float4 => Column::Float4(Float32Builder::with_capacity(capacity)),
            Kind::Float8 => Column::Float8(Float64Builder::with_capacity(capacity)),
            Kind::Numeric {
                precision,
                scale,
                unconstrained,
            } => Column::Numeric {
                builder: Decimal128Builder::with_capacity(capacity)
                    .with_data_type(DataType::Decimal128(*precision, *scale)),
                precision: *precision,
                scale: *scale,
                unconstrained: *unconstrained,
            },
            Kind::Text => Column::Text(BinaryBuilder::with_capacity(capacity, capacity * 16)),
            Kind::Jsonb => Column::Jsonb(BinaryBuilder::with_capacity(capacity, capacity * 32)),
            Kind::Uuid => Column::Uuid(StringBuilder::with_capacity(capacity, capacity * 36)),
            Kind::Time => Column::Time(StringBuilder::with_capacity(capacity, capacity * 15)),
            Kind::TimeTz => Column::TimeTz(StringBuilder::with_capacity(capacity, capacity * 21)),
            Kind::Bytea => Column::Bytea(BinaryBuilder::with_capacity(capacity, capacity * 16)),
            Kind::Date => Column::Date(Date32Builder::with_capacity(capacity)),
            Kind::Timestamp => {
                Column::Timestamp(TimestampMicrosecondBuilder::with_capacity(capacity))
            }
            Kind::TimestampTz => Column::TimestampTz(
                TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("UTC"),
            ),
            Kind::List(element) => {
                let mut offsets = Vec::with_capacity(capacity + 1);
                offsets.push(0);
                Column::List {
                    field: list_item_field(element),
                    offsets,
                    nulls: NullBufferBuilder::new(capacity),
                    child: Box::new(Column::new(element, capacity)),
                }
            }
        }
    }

    /// Decode and append one value (`None` = SQL NULL).
    pub(crate) fn append(&mut self, raw: Option<&[u8]>) -> Result<(), ValueError> {
        let Some(raw) = raw else {
            self.append_null();
            return Ok(());
        };
        match self {
            Column::Bool(b) => match raw {
                [v] => b.append_value(*v != 0),
                _ => return Err(ValueError::malformed(raw, "bool")),
            },
            Column::Int2(b) => b.append_value(i16::from_be_bytes(fixed(raw, "int2")?)),
            Column::Int4(b) => b.append_value(i32::from_be_bytes(fixed(raw, "int4")?)),
            Column::Int8(b) => b.append_value(i64::from_be_bytes(fixed(raw, "int8")?)),
            Column::Oid(b) => b.append_value(i64::from(u32::from_be_bytes(fixed(raw, "oid")?))),
            Column::Float4(b) => b.append_value(f32::from_be_bytes(fixed(raw, "float4")?)),
            Column::Float8(b) => b.append_value(f64::from_be_bytes(fixed(raw, "float8")?)),
            Column::Numeric {
                builder,
                precision,
                scale,
                unconstrained,
            } => builder.append_value(numeric_unscaled(raw, *precision, *scale, *unconstrained)?),
            Column::Text(b) => b.append_value(raw),
            Column::Jsonb(b) => match raw.split_first() {
                Some((1, text)) => b.append_value(text),
                _ => return Err(ValueError::malformed(raw, "jsonb")),
            },
            Column::Uuid(b) => b.append_value(uuid_text(fixed(raw, "uuid")?)),
            Column::Time(b) => b.append_value(time_text(i64::from_be_bytes(fixed(raw, "time")?))),
            Column::TimeTz(b) => {
                let bytes: [u8; 12] = fixed(raw, "timetz")?;
                let (micros, zone) = bytes.split_at(8);
                let micros = i64::from_be_bytes(fixed(micros, "timetz")?);
                let zone = i32::from_be_bytes(fixed(zone, "timetz")?);
                b.append_value(timetz_text(micros, zone))
            }
            Column::Bytea(b) => b.append_value(raw),
            Column::Date(b) => b.append_value(date_days(i32::from_be_bytes(fixed(raw, "date")?))?),
            Column::Timestamp(b) => b.append_value(timestamp_micros(i64::from_be_bytes(fixed(
                raw,
                "timestamp",
            )?))?),
            Column::TimestampTz(b) => b.append_value(timestamp_micros(i64::from_be_bytes(fixed(
                raw,
                "timestamptz",
            )?))?),
            Column::List {
                offsets,
                nulls,
                child,
                ..
            } => {
                let count = append_array(child, raw)?;
                let last = offsets.last().copied().unwrap_or(0);
                let next = i32::try_from(count)
                    .ok()
                    .and_then(|c| last.checked_add(c))
                    .ok_or_else(|| {
                        ValueError::new(
                            format!("an array of {count} elements"),
                            "a batch holds more than 2^31 array elements; lower batch_size",
                        )
                    })?;
                offsets.push(next);
                nulls.append_non_null();
            }
        }
        Ok(())
    }

    fn append_null(&mut self) {
        match self {
            Column::Bool(b) => b.append_null(),
            Column::Int2(b) => b.append_null(),
            Column::Int4(b) => b.append_null(),
            Column::Int8(b) | Column::Oid(b) => b.append_null(),
            Column::Float4(b) => b.append_null(),
            Column::Float8(b) => b.append_null(),
            Column::Numeric { builder, .. } => builder.append_null(),
            Column::Uuid(b) | Column::Time(b) | Column::TimeTz(b) => b.append_null(),
            Column::Text(b) | Column::Jsonb(b) | Column::Bytea(b) => b.append_null(),
            Column::Date(b) => b.append_null(),
            Column::Timestamp(b) | Column::TimestampTz(b) => b.append_null(),
            Column::List { offsets, nulls, .. } => {
                let last = offsets.last().copied().unwrap_or(0);
                offsets.push(last);
                nulls.append_null();
            }
        }
    }

    /// The values appended since the last call, as an Arrow array; the builder starts over.
    /// Fails on the first text value that is not valid UTF-8.
    pub(crate) fn finish(&mut self) -> Result<ArrayRef, ValueError> {
        Ok(match self {
            Column::Bool(b) => Arc::new(b.finish()),
            Column::Int2(b) => Arc::new(b.finish()),
            Column::Int4(b) => Arc::new(b.finish()),
            Column::Int8(b) | Column::Oid(b) => Arc::new(b.finish()),
            Column::Float4(b) => Arc::new(b.finish()),
            Column::Float8(b) => Arc::new(b.finish()),
            Column::Numeric { builder, .. } => Arc::new(builder.finish()),
            Column::Text(b) => Arc::new(text_array(b.finish(), "text")?),
            Column::Jsonb(b) => Arc::new(text_array(b.finish(), "jsonb")?),
            Column::Uuid(b) | Column::Time(b) | Column::TimeTz(b) => Arc::new(b.finish()),
            Column::Bytea(b) => Arc::new(b.finish()),
            Column::Date(b) => Arc::new(b.finish()),
            Column::Timestamp(b) | Column::TimestampTz(b) => Arc::new(b.finish()),
            Column::List {
                field,
                offsets,
                nulls,
                child,
            } => {
                let values = child.finish()?;
                let taken = std::mem::replace(offsets, vec![0]);
                // Offsets start at 0 and never decrease (each push adds a non-negative count).
                let offsets = OffsetBuffer::new(ScalarBuffer::from(taken));
                Arc::new(ListArray::new(
                    field.clone(),
                    offsets,
                    values,
                    nulls.finish(),
                ))
            }
        })
    }
}

/// Binary values known to be text, as a string array: the whole buffer is validated at once;
/// on failure, the first invalid value is named.
fn text_array(binary: BinaryArray, what: &str) -> Result<StringArray, ValueError> {
    match StringArray::try_from_binary(binary.clone()) {
        Ok(strings) => Ok(strings),
        Err(_) => {
            let bad = binary
                .iter()
                .flatten()
                .find(|v| std::str::from_utf8(v).is_err())
                .unwrap_or_default();
            Err(utf8(bad, what).err().unwrap_or_else(|| {
                ValueError::new(
                    String::from_utf8_lossy(bad).into_owned(),
                    format!("the {what} values are not valid UTF-8"),
                )
            }))
        }
    }
}

/// Decode a binary array value into `child`; returns the number of elements appended.
fn append_array(child: &mut Column, raw: &[u8]) -> Result<usize, ValueError> {
    let mut r = Reader { buf: raw, raw };
    let ndim = r.i32("array")?;
    let _has_nulls = r.i32("array")?;
    let _element_oid = r.i32("array")?;
    if ndim == 0 {
        return Ok(0);
    }
    if ndim != 1 {
        return Err(ValueError::new(
            format!("a {ndim}-dimensional array"),
            "only one-dimensional arrays can be loaded as a list",
        ));
    }
    let len = r.i32("array")?;
    let _lower_bound = r.i32("array")?;
    let len = usize::try_from(len).map_err(|_| ValueError::malformed(raw, "array"))?;
    for _ in 0..len {
        let elen = r.i32("array")?;
        if elen < 0 {
            child.append(None)?;
        } else {
            let bytes = r.take(elen as usize, "array")?;
            child.append(Some(bytes))?;
        }
    }
    Ok(len)
}

struct Reader<'a> {
    buf: &'a [u8],
    raw: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], ValueError> {
        if self.buf.len() < n {
            return Err(ValueError::malformed(self.raw, what));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn i32(&mut self, what: &str) -> Result<i32, ValueError> {
        Ok(i32::from_be_bytes(fixed(self.take(4, what)?, what)?))
    }

    fn i16(&mut self, what: &str) -> Result<i16, ValueError> {
        Ok(i16::from_be_bytes(fixed(self.take(2, what)?, what)?))
    }
}

fn fixed<const N: usize>(raw: &[u8], what: &str) -> Result<[u8; N], ValueError> {
    raw.try_into().map_err(|_| ValueError::malformed(raw, what))
}

fn utf8<'a>(raw: &'a [u8], what: &str) -> Result<&'a str, ValueError> {
    std::str::from_utf8(raw).map_err(|_| {
        ValueError::new(
            String::from_utf8_lossy(raw).into_owned(),
            format!("the {what} value is not valid UTF-8"),
        )
    })
}

fn hex(raw: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(raw.len().min(64) * 2 + 3);
    for b in raw.iter().take(64) {
        let _ = write!(s, "{b:02x}");
    }
    if raw.len() > 64 {
        s.push_str("...");
    }
    s
}

fn uuid_text(b: [u8; 16]) -> String {
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// `HH:MM:SS[.ffffff]` from microseconds since midnight (24:00:00 is a valid `time`).
pub(crate) fn time_text(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    if frac == 0 {
        format!("{h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}.{frac:06}")
    }
}

/// `timetz`: time of day plus the UTC offset, rendered like PostgreSQL (`+05:30`, `-08`).
/// The wire format stores the zone as seconds *west* of UTC.
pub(crate) fn timetz_text(micros: i64, zone_west_secs: i32) -> String {
    let offset = -i64::from(zone_west_secs);
    let sign = if offset < 0 { '-' } else { '+' };
    let a = offset.abs();
    let (h, m, s) = (a / 3600, (a / 60) % 60, a % 60);
    let mut out = time_text(micros);
    out.push(sign);
    out.push_str(&format!("{h:02}"));
    if m != 0 || s != 0 {
        out.push_str(&format!(":{m:02}"));
    }
    if s != 0 {
        out.push_str(&format!(":{s:02}"));
    }
    out
}

fn date_days(pg_days: i32) -> Result<i32, ValueError> {
    match pg_days {
        i32::MAX => Err(ValueError::new(
            "infinity",
            "infinite dates have no Arrow/Delta representation",
        )),
        i32::MIN => Err(ValueError::new(
            "-infinity",
            "infinite dates have no Arrow/Delta representation",
        )),
        d => d.checked_add(PG_EPOCH_DAYS).ok_or_else(|| {
            ValueError::new(
                format!("{d} days after 2000-01-01"),
                "the date is outside the Date32 range",
            )
        }),
    }
}

fn timestamp_micros(pg_micros: i64) -> Result<i64, ValueError> {
    match pg_micros {
        i64::MAX => Err(ValueError::new(
            "infinity",
            "infinite timestamps have no Arrow/Delta representation",
        )),
        i64::MIN => Err(ValueError::new(
            "-infinity",
            "infinite timestamps have no Arrow/Delta representation",
        )),
        t => t.checked_add(PG_EPOCH_MICROS).ok_or_else(|| {
            ValueError::new(
                format!("{t} microseconds after 2000-01-01"),
                "the timestamp is outside the 64-bit microsecond range",
            )
        }),
    }
}

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;

/// A binary `numeric`: base-10000 digits, the power of 10000 of the first digit, the sign and
/// the display scale.
struct Numeric {
    weight: i16,
    sign: u16,
    dscale: u16,
    digits: Vec<i16>,
}

fn parse_numeric(raw: &[u8]) -> Result<Numeric, ValueError> {
    let mut r = Reader { buf: raw, raw };
    let ndigits = r.i16("numeric")?;
    let weight = r.i16("numeric")?;
    let sign = r.i16("numeric")? as u16;
    let dscale = r.i16("numeric")? as u16;
    let ndigits = usize::try_from(ndigits).map_err(|_| ValueError::malformed(raw, "numeric"))?;
    let mut digits = Vec::with_capacity(ndigits);
    for _ in 0..ndigits {
        let d = r.i16("numeric")?;
        if !(0..10_000).contains(&d) {
            return Err(ValueError::malformed(raw, "numeric"));
        }
        digits.push(d);
    }
    Ok(Numeric {
        weight,
        sign,
        dscale,
        digits,
    })
}

/// The text of a binary `numeric`, as PostgreSQL prints it.
#[cfg(test)]
fn numeric_text(raw: &[u8]) -> String {
    match parse_numeric(raw) {
        Ok(n) => render_numeric(&n),
        Err(e) => e.value,
    }
}

fn render_numeric(n: &Numeric) -> String {
    match n.sign {
        NUMERIC_NAN => return "NaN".into(),
        NUMERIC_PINF => return "Infinity".into(),
        NUMERIC_NINF => return "-Infinity".into(),
        _ => {}
    }
    let digit = |i: i64| -> i16 {
        usize::try_from(i)
            .ok()
            .and_then(|i| n.digits.get(i).copied())
            .unwrap_or(0)
    };
    let weight = i64::from(n.weight);
    let mut s = String::new();
    if n.sign == NUMERIC_NEG {
        s.push('-');
    }
    if weight < 0 {
        s.push('0');
    } else {
        for e in (0..=weight).rev() {
            let d = digit(weight - e);
            if e == weight {
                s.push_str(&d.to_string());
            } else {
                s.push_str(&format!("{d:04}"));
            }
        }
    }
    if n.dscale > 0 {
        let groups = (i64::from(n.dscale) + 3) / 4;
        let mut frac = String::with_capacity(groups as usize * 4);
        for e in 1..=groups {
            frac.push_str(&format!("{:04}", digit(weight + e)));
        }
        frac.truncate(usize::from(n.dscale));
        s.push('.');
        s.push_str(&frac);
    }
    s
}

/// The unscaled Decimal128 value of a binary `numeric` at `scale`, or why it does not fit
/// decimal(`precision`, `scale`).
pub(crate) fn numeric_unscaled(
    raw: &[u8],
    precision: u8,
    scale: i8,
    unconstrained: bool,
) -> Result<i128, ValueError> {
    let n = parse_numeric(raw)?;
    let hint = if unconstrained {
        "; a numeric column without precision loads as decimal(38,9)"
    } else {
        ""
    };
    match n.sign {
        NUMERIC_POS | NUMERIC_NEG => {}
        NUMERIC_NAN | NUMERIC_PINF | NUMERIC_NINF => {
            return Err(ValueError::new(
                render_numeric(&n),
                "NaN and infinite numerics have no Decimal128 representation",
            ));
        }
        _ => return Err(ValueError::malformed(raw, "numeric")),
    }
    let too_many_fraction = || {
        ValueError::new(
            render_numeric(&n),
            format!("it has more than {scale} digits after the decimal point{hint}"),
        )
    };
    let too_many_integer = || {
        ValueError::new(
            render_numeric(&n),
            format!(
                "it has more than {} digits before the decimal point{hint}",
                i32::from(precision) - i32::from(scale)
            ),
        )
    };
    let mut acc: i128 = 0;
    for (i, &d) in n.digits.iter().enumerate() {
        if d == 0 {
            continue;
        }
        let d = i128::from(d);
        // This digit is worth d × 10000^(weight - i); in units of 10^-scale:
        let exp10 = 4 * (i64::from(n.weight) - i as i64) + i64::from(scale);
        if exp10 >= 0 {
            let term = u32::try_from(exp10)
                .ok()
                .and_then(|e| 10i128.checked_pow(e))
                .and_then(|m| d.checked_mul(m))
                .ok_or_else(too_many_integer)?;
            acc = acc.checked_add(term).ok_or_else(too_many_integer)?;
        } else if exp10 <= -4 {
            return Err(too_many_fraction());
        } else {
            let div = 10i128.pow((-exp10) as u32);
            if d % div != 0 {
                return Err(too_many_fraction());
            }
            acc = acc.checked_add(d / div).ok_or_else(too_many_integer)?;
        }
    }
    let limit = 10i128
        .checked_pow(u32::from(precision))
        .unwrap_or(i128::MAX);
    if acc >= limit {
        return Err(too_many_integer());
    }
    Ok(if n.sign == NUMERIC_NEG { -acc } else { acc })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// Binary numeric from its parts.
    fn num(weight: i16, sign: u16, dscale: u16, digits: &[i16]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(digits.len() as i16).to_be_bytes());
        v.extend_from_slice(&weight.to_be_bytes());
        v.extend_from_slice(&sign.to_be_bytes());
        v.extend_from_slice(&dscale.to_be_bytes());
        for d in digits {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    #[test]
    fn numeric_decodes_at_the_column_scale() {
        // 12345.678 = 1|2345|6780 with weight 1
        let raw = num(1, NUMERIC_POS, 3, &[1, 2345, 6780]);
        assert_eq!(numeric_unscaled(&raw, 10, 3, false), Ok(12_345_678));
        assert_eq!(numeric_unscaled(&raw, 10, 5, false), Ok(1_234_567_800));
        assert_eq!(numeric_text(&raw), "12345.678");
        // -0.0001
        let raw = num(-1, NUMERIC_NEG, 4, &[1]);
        assert_eq!(numeric_unscaled(&raw, 5, 4, false), Ok(-1));
        assert_eq!(numeric_text(&raw), "-0.0001");
        // 0
        let raw = num(0, NUMERIC_POS, 2, &[]);
        assert_eq!(numeric_unscaled(&raw, 5, 2, false), Ok(0));
        assert_eq!(numeric_text(&raw), "0.00");
        // 10000000 (trailing zero groups are not sent)
        let raw = num(1, NUMERIC_POS, 0, &[1000]);
        assert_eq!(numeric_unscaled(&raw, 9, 0, false), Ok(10_000_000));
        assert_eq!(numeric_text(&raw), "10000000");
    }

    #[test]
    fn numeric_rejects_what_does_not_fit() {
        let raw = num(-1, NUMERIC_POS, 12, &[1234, 5678, 9012]);
        let e = numeric_unscaled(&raw, 38, 9, true).unwrap_err();
        assert_eq!(e.value, "0.123456789012");
        assert!(
            e.reason.contains("more than 9 digits after"),
            "{}",
            e.reason
        );
        assert!(e.reason.contains("decimal(38,9)"), "{}", e.reason);
        // 1e30 has 31 integer digits: more than 29.
        let raw = num(7, NUMERIC_POS, 0, &[100]);
        let e = numeric_unscaled(&raw, 38, 9, true).unwrap_err();
        assert!(
            e.reason.contains("more than 29 digits before"),
            "{}",
            e.reason
        );
        // 99999 does not fit decimal(4,0).
        let raw = num(1, NUMERIC_POS, 0, &[9, 9999]);
        assert!(numeric_unscaled(&raw, 4, 0, false).is_err());
        let e = numeric_unscaled(&num(0, NUMERIC_NAN, 0, &[]), 10, 2, false).unwrap_err();
        assert_eq!(e.value, "NaN");
        let e = numeric_unscaled(&num(0, NUMERIC_NINF, 0, &[]), 10, 2, false).unwrap_err();
        assert_eq!(e.value, "-Infinity");
    }

    #[test]
    fn times_render_like_postgres() {
        assert_eq!(time_text(0), "00:00:00");
        assert_eq!(time_text(86_399_999_999), "23:59:59.999999");
        assert_eq!(time_text(86_400_000_000), "24:00:00");
        assert_eq!(
            timetz_text(45_296_500_000, -19_800),
            "12:34:56.500000+05:30"
        );
        assert_eq!(timetz_text(0, 28_800), "00:00:00-08");
    }

    #[test]
    fn arrays_decode_and_reject_more_dimensions() {
        let mut raw = Vec::new();
        for v in [1i32, 1, 23, 3, 1] {
            raw.extend_from_slice(&v.to_be_bytes());
        }
        raw.extend_from_slice(&4i32.to_be_bytes());
        raw.extend_from_slice(&7i32.to_be_bytes());
        raw.extend_from_slice(&(-1i32).to_be_bytes());
        raw.extend_from_slice(&4i32.to_be_bytes());
        raw.extend_from_slice(&(-9i32).to_be_bytes());
        let mut col = Column::new(&Kind::List(Box::new(Kind::Int4)), 4);
        col.append(Some(&raw)).unwrap();
        col.append(None).unwrap();
        let mut empty = Vec::new();
        for v in [0i32, 0, 23] {
            empty.extend_from_slice(&v.to_be_bytes());
        }
        col.append(Some(&empty)).unwrap();
        let arr = col.finish().unwrap();
        let list = arr.as_any().downcast_ref::<ListArray>().unwrap();
        assert_eq!(list.len(), 3);
        assert!(list.is_null(1));
        assert_eq!(list.value(2).len(), 0);
        let first = list.value(0);
        let ints = first
            .as_any()
            .downcast_ref::<deltalake::arrow::array::Int32Array>()
            .unwrap();
        assert_eq!(
            ints.iter().collect::<Vec<_>>(),
            vec![Some(7), None, Some(-9)]
        );

        let mut two_dim = Vec::new();
        for v in [2i32, 0, 23, 1, 1, 1, 1, 4, 5] {
            two_dim.extend_from_slice(&v.to_be_bytes());
        }
        let e = col.append(Some(&two_dim)).unwrap_err();
        assert!(e.value.contains("2-dimensional"), "{}", e.value);
    }

    use deltalake::arrow::array::Array;
}
