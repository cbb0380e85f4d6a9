//! Spreadsheets (`.xlsx`, `.xlsm`, `.xlsb`, `.xls`, `.ods`) through calamine: one sheet per
//! file, a header row, column types inferred from the cells.
//!
//! The sheet is `excel.sheet` (by name) or the first one. Rows are those of the sheet's used
//! area; `excel.skip_rows` drops rows above the header (titles, notes). Entirely empty rows are
//! ignored. Row numbers in errors and in the quarantine table are the sheet's own (row 1 is the
//! first row of the sheet), so they can be found in the spreadsheet program.
//!
//! Types are inferred over every row of the first file's sheet (the sheet is in memory anyway),
//! per column, from the cells that are not empty:
//!
//! | cells | Arrow type |
//! |---|---|
//! | numbers that are all whole (and fit 64 bits) | `Int64` |
//! | numbers | `Float64` |
//! | booleans | `Boolean` |
//! | dates with no time of day | `Date32` |
//! | dates, some with a time of day | `Timestamp(µs)` (no time zone, as the sheet shows it) |
//! | anything else (text, durations, mixed kinds) | `Utf8`, each cell rendered as text |
//!
//! A cell holding an error (`#DIV/0!`, `#N/A`, …), or a cell of a later file that does not fit
//! its column's type, makes its row malformed (`on_error`); the raw record is the row's cells
//! rendered as text and joined by tabs.

use std::sync::Arc;

use calamine::{Data, Range, Reader, open_workbook_auto};
use chrono::{NaiveDate, NaiveDateTime};
use deltalake::arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, RecordBatch,
    StringBuilder, TimestampMicrosecondBuilder,
};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use tributary_core::SourceError;
use tributary_core::config::TableConfig;

use super::config::ExcelOptions;

use super::{FileInput, ReadCtx};

/// A column's type, decided from the first file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ColType {
    Int,
    Float,
    Bool,
    Date,
    Timestamp,
    Text,
}

impl ColType {
    fn data_type(self) -> DataType {
        match self {
            ColType::Int => DataType::Int64,
            ColType::Float => DataType::Float64,
            ColType::Bool => DataType::Boolean,
            ColType::Date => DataType::Date32,
            ColType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            ColType::Text => DataType::Utf8,
        }
    }

    /// The column type that loads into `ty`, if there is one.
    fn of(ty: &DataType) -> Option<ColType> {
        Some(match ty {
            DataType::Int64 => ColType::Int,
            DataType::Float64 => ColType::Float,
            DataType::Boolean => ColType::Bool,
            DataType::Date32 => ColType::Date,
            DataType::Timestamp(TimeUnit::Microsecond, None) => ColType::Timestamp,
            DataType::Utf8 => ColType::Text,
            _ => return None,
        })
    }

    fn describe(self) -> &'static str {
        match self {
            ColType::Int => "a whole number",
            ColType::Float => "a number",
            ColType::Bool => "a boolean",
            ColType::Date => "a date",
            ColType::Timestamp => "a date and time",
            ColType::Text => "text",
        }
    }
}

/// What a cell holds, once read.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Null,
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since 1970-01-01T00:00:00 (no time zone).
    Timestamp(i64),
    Text(String),
}

/// The largest whole number a double holds exactly.
const MAX_EXACT: f64 = 9_007_199_254_740_992.0;

fn epoch() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(1970, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or_default()
}

fn from_datetime(dt: NaiveDateTime) -> Value {
    if dt.time() == chrono::NaiveTime::MIN {
        let days = (dt.date() - epoch().date()).num_days();
        match i32::try_from(days) {
            Ok(d) => Value::Date(d),
            Err(_) => Value::Text(dt.date().to_string()),
        }
    } else {
        match (dt - epoch()).num_microseconds() {
            Some(us) => Value::Timestamp(us),
            None => Value::Text(dt.to_string()),
        }
    }
}

/// Read a cell. `Err` for error cells (`#DIV/0!`).
fn read_cell(cell: &Data) -> Result<Value, String> {
    Ok(match cell {
        Data::Empty => Value::Null,
        Data::Int(i) => Value::Int(*i),
        Data::Float(f) => Value::Float(*f),
        Data::Bool(b) => Value::Bool(*b),
        Data::String(s) if s.is_empty() => Value::Null,
        Data::String(s) => Value::Text(s.clone()),
        Data::DateTime(dt) if dt.is_duration() || (0.0..1.0).contains(&dt.as_f64()) => {
            // A duration, or a time of day with no date: text, as times of day are elsewhere.
            let secs = (dt.as_f64() * 86_400.0).round() as i64;
            let sign = if secs < 0 { "-" } else { "" };
            let secs = secs.abs();
            Value::Text(format!(
                "{sign}{:02}:{:02}:{:02}",
                secs / 3600,
                secs / 60 % 60,
                secs % 60
            ))
        }
        Data::DateTime(dt) => {
            let (y, mo, d, h, mi, s, ms) = dt.to_ymd_hms_milli();
            // The parts can be rounded up to 60 s or 1000 ms: add them as a duration.
            match NaiveDate::from_ymd_opt(i32::from(y), u32::from(mo), u32::from(d)) {
                Some(date) => from_datetime(
                    date.and_time(chrono::NaiveTime::MIN)
                        + chrono::Duration::hours(i64::from(h))
                        + chrono::Duration::minutes(i64::from(mi))
                        + chrono::Duration::seconds(i64::from(s))
                        + chrono::Duration::milliseconds(i64::from(ms)),
                ),
                None => return Err(format!("the date serial {} is out of range", dt.as_f64())),
            }
        }
        Data::DateTimeIso(s) => {
            if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                from_datetime(d.and_hms_opt(0, 0, 0).unwrap_or_default())
            } else if let Ok(dt) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
                from_datetime(dt)
            } else {
                Value::Text(s.clone())
            }
        }
        Data::DurationIso(s) => Value::Text(s.clone()),
        Data::Error(e) => return Err(format!("the cell holds the error {e}")),
    })
}

/// A value as text (for text columns and raw records).
fn render(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Int(i) => Some(i.to_string()),
        Value::Float(f) if f.fract() == 0.0 && f.abs() < MAX_EXACT => Some(format!("{f:.0}")),
        Value::Float(f) => Some(f.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Date(d) => Some(
            (epoch().date() + chrono::Duration::days(i64::from(*d)))
                .format("%Y-%m-%d")
                .to_string(),
        ),
        Value::Timestamp(us) => Some(
            (epoch() + chrono::Duration::microseconds(*us))
                .format("%Y-%m-%d %H:%M:%S%.f")
                .to_string(),
        ),
        Value::Text(s) => Some(s.clone()),
    }
}

fn whole(f: f64) -> Option<i64> {
    (f.fract() == 0.0 && f.abs() < MAX_EXACT).then_some(f as i64)
}

/// Fit a value to a column type; `Err` says why it does not fit.
fn fit(v: Value, ty: ColType) -> Result<Value, String> {
    let bad = |v: &Value| {
        Err(format!(
            "`{}` is not {}",
            render(v).unwrap_or_default(),
            ty.describe()
        ))
    };
    match (ty, v) {
        (_, Value::Null) => Ok(Value::Null),
        (ColType::Text, v) => Ok(render(&v).map_or(Value::Null, Value::Text)),
        (ColType::Int, Value::Int(i)) => Ok(Value::Int(i)),
        (ColType::Int, Value::Float(f)) => match whole(f) {
            Some(i) => Ok(Value::Int(i)),
            None => bad(&Value::Float(f)),
        },
        (ColType::Float, Value::Int(i)) => Ok(Value::Float(i as f64)),
        (ColType::Float, Value::Float(f)) => Ok(Value::Float(f)),
        (ColType::Bool, Value::Bool(b)) => Ok(Value::Bool(b)),
        (ColType::Date, Value::Date(d)) => Ok(Value::Date(d)),
        (ColType::Timestamp, Value::Date(d)) => Ok(Value::Timestamp(i64::from(d) * 86_400_000_000)),
        (ColType::Timestamp, Value::Timestamp(t)) => Ok(Value::Timestamp(t)),
        (_, v) => bad(&v),
    }
}

/// Per-column inference state.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    any: bool,
    int: bool,
    float: bool,
    bool_: bool,
    date: bool,
    timestamp: bool,
    other: bool,
}

impl Seen {
    fn observe(&mut self, v: &Value) {
        match v {
            Value::Null => return,
            Value::Int(_) => self.int = true,
            Value::Float(f) if whole(*f).is_some() => self.int = true,
            Value::Float(_) => self.float = true,
            Value::Bool(_) => self.bool_ = true,
            Value::Date(_) => self.date = true,
            Value::Timestamp(_) => self.timestamp = true,
            Value::Text(_) => self.other = true,
        }
        self.any = true;
    }

    fn decide(self) -> ColType {
        let numeric = self.int || self.float;
        let dates = self.date || self.timestamp;
        if !self.any || self.other {
            ColType::Text
        } else if numeric && !self.bool_ && !dates {
            if self.float {
                ColType::Float
            } else {
                ColType::Int
            }
        } else if self.bool_ && !numeric && !dates {
            ColType::Bool
        } else if dates && !numeric && !self.bool_ {
            if self.timestamp {
                ColType::Timestamp
            } else {
                ColType::Date
            }
        } else {
            ColType::Text
        }
    }
}

/// The columns of the first file.
pub(crate) struct ExcelPlan {
    opts: ExcelOptions,
    names: Vec<String>,
    types: Vec<ColType>,
    schema: SchemaRef,
    first_file: String,
}

/// A sheet's rows after `skip_rows`: `(sheet row number, cells)`.
struct Sheet {
    range: Range<Data>,
    first_row: u64,
    skip: usize,
}

impl Sheet {
    fn open(input: &FileInput, opts: &ExcelOptions) -> Result<Sheet, SourceError> {
        let mut book = open_workbook_auto(&input.path).map_err(|e| SourceError::BadRecord {
            file: input.display.clone(),
            line: 0,
            reason: format!("not a readable spreadsheet: {e}"),
        })?;
        let names = book.sheet_names();
        let name = match &opts.sheet {
            Some(wanted) => names
                .iter()
                .find(|n| *n == wanted)
                .cloned()
                .ok_or_else(|| SourceError::BadRecord {
                    file: input.display.clone(),
                    line: 0,
                    reason: format!("has no sheet `{wanted}` (its sheets: {})", names.join(", ")),
                })?,
            None => names
                .first()
                .cloned()
                .ok_or_else(|| SourceError::BadRecord {
                    file: input.display.clone(),
                    line: 0,
                    reason: "the workbook has no sheet".into(),
                })?,
        };
        let range = book
            .worksheet_range(&name)
            .map_err(|e| SourceError::BadRecord {
                file: input.display.clone(),
                line: 0,
                reason: format!("cannot read sheet `{name}`: {e}"),
            })?;
        let first_row = range.start().map_or(1, |(r, _)| u64::from(r) + 1);
        Ok(Sheet {
            range,
            first_row,
            skip: opts.skip_rows,
        })
    }

    fn rows(&self) -> impl Iterator<Item = (u64, &[Data])> {
        let first = self.first_row;
        self.range
            .rows()
            .enumerate()
            .skip(self.skip)
            .map(move |(i, r)| (first + i as u64, r))
            .filter(|(_, r)| r.iter().any(|c| !matches!(c, Data::Empty)))
    }
}

fn header_names(
    input: &FileInput,
    row: Option<(u64, &[Data])>,
    width: usize,
    header: bool,
) -> Result<Vec<String>, SourceError> {
    let mut names: Vec<String> = Vec::with_capacity(width);
    for i in 0..width {
        let name = match (header, row) {
            (true, Some((_, cells))) => cells.get(i).map(|c| c.to_string()).unwrap_or_default(),
            _ => String::new(),
        };
        let name = name.trim().to_string();
        let name = if name.is_empty() {
            format!("column_{}", i + 1)
        } else {
            name
        };
        if names.contains(&name) {
            return Err(SourceError::BadRecord {
                file: input.display.clone(),
                line: row.map_or(0, |(n, _)| n),
                reason: format!(
                    "the header names column `{name}` twice; column names must be unique"
                ),
            });
        }
        names.push(name);
    }
    Ok(names)
}

/// The cells of a row as text, joined by tabs (the raw record of a malformed row).
fn raw_row(cells: &[Data]) -> String {
    cells
        .iter()
        .map(|c| match read_cell(c) {
            Ok(v) => render(&v).unwrap_or_default(),
            Err(_) => c.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\t")
}

impl ExcelPlan {
    /// Read the header and infer the column types from the first file's sheet. With `base` (the
    /// target table's columns), a column the table has keeps its type when a sheet can hold it.
    pub(crate) fn infer(
        table: &TableConfig,
        opts: ExcelOptions,
        input: &FileInput,
        base: Option<&Schema>,
    ) -> Result<ExcelPlan, SourceError> {
        let sheet = Sheet::open(input, &opts)?;
        let width = sheet.range.width();
        let mut rows = sheet.rows();
        let header_row = if opts.header { rows.next() } else { None };
        if width == 0 || (opts.header && header_row.is_none()) {
            return Err(
                input.no_columns("the sheet is empty, so the table's columns cannot be known")
            );
        }
        let names = header_names(input, header_row, width, opts.header)?;
        let mut seen = vec![Seen::default(); width];
        if opts.infer_types {
            for (_, cells) in rows {
                for (s, cell) in seen.iter_mut().zip(cells) {
                    if let Ok(v) = read_cell(cell) {
                        s.observe(&v);
                    }
                }
            }
        }
        let types: Vec<ColType> = names
            .iter()
            .zip(&seen)
            .map(|(name, s)| {
                if !opts.infer_types || table.cast.contains_key(name) {
                    ColType::Text
                } else {
                    base.and_then(|b| b.field_with_name(name).ok())
                        .and_then(|f| ColType::of(f.data_type()))
                        .unwrap_or_else(|| s.decide())
                }
            })
            .collect();
        let schema = Schema::new(
            names
                .iter()
                .zip(&types)
                .map(|(n, t)| Field::new(n, t.data_type(), true))
                .collect::<Vec<_>>(),
        );
        Ok(ExcelPlan {
            opts,
            names,
            types,
            schema: Arc::new(schema),
            first_file: input.display.clone(),
        })
    }

    pub(crate) fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Read one file's sheet into batches. `Ok(false)` when the consumer is gone.
    pub(crate) fn read_file(
        &self,
        input: &FileInput,
        ctx: &mut ReadCtx,
    ) -> Result<bool, SourceError> {
        let opts = &self.opts;
        let sheet = Sheet::open(input, opts)?;
        let mut rows = sheet.rows();
        if opts.header {
            let Some(header) = rows.next() else {
                return Ok(true); // an empty sheet has no rows
            };
            let found = header_names(input, Some(header), sheet.range.width(), true)?;
            if found != self.names {
                return Err(SourceError::BadRecord {
                    file: input.display.clone(),
                    line: header.0,
                    reason: format!(
                        "the header differs from the first file's ({}): expected [{}], found [{}]; \
                         every file of a table must have the same columns in the same order",
                        self.first_file,
                        self.names.join(", "),
                        found.join(", ")
                    ),
                });
            }
        }
        let mut builders: Vec<Builder> = self
            .types
            .iter()
            .map(|t| Builder::new(*t, ctx.batch_size))
            .collect();
        let mut values = Vec::with_capacity(self.types.len());
        let mut n = 0usize;
        for (line, cells) in rows {
            values.clear();
            let mut problem = None;
            if cells.len() > self.types.len()
                && cells[self.types.len()..]
                    .iter()
                    .any(|c| !matches!(c, Data::Empty))
            {
                problem = Some(format!(
                    "the row has values beyond the {} columns of the header",
                    self.types.len()
                ));
            }
            for (i, ty) in self.types.iter().enumerate() {
                if problem.is_some() {
                    break;
                }
                let cell = cells.get(i).unwrap_or(&Data::Empty);
                match read_cell(cell).and_then(|v| fit(v, *ty)) {
                    Ok(v) => values.push(v),
                    Err(reason) => {
                        problem = Some(format!("column `{}`: {reason}", self.names[i]));
                    }
                }
            }
            if let Some(reason) = problem {
                ctx.bad_record(input, line, reason, &raw_row(cells))?;
                continue;
            }
            for (b, v) in builders.iter_mut().zip(values.drain(..)) {
                b.append(v);
            }
            n += 1;
            if n == ctx.batch_size {
                if !ctx.send(self.finish(&mut builders)?, input) {
                    return Ok(false);
                }
                n = 0;
            }
        }
        if n > 0 && !ctx.send(self.finish(&mut builders)?, input) {
            return Ok(false);
        }
        Ok(true)
    }

    fn finish(&self, builders: &mut [Builder]) -> Result<RecordBatch, SourceError> {
        let arrays: Vec<ArrayRef> = builders.iter_mut().map(Builder::finish).collect();
        RecordBatch::try_new(self.schema.clone(), arrays)
            .map_err(|e| SourceError::Internal(format!("assembling a spreadsheet batch: {e}")))
    }
}

enum Builder {
    Int(Int64Builder),
    Float(Float64Builder),
    Bool(BooleanBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    Text(StringBuilder),
}

impl Builder {
    fn new(ty: ColType, capacity: usize) -> Builder {
        match ty {
            ColType::Int => Builder::Int(Int64Builder::with_capacity(capacity)),
            ColType::Float => Builder::Float(Float64Builder::with_capacity(capacity)),
            ColType::Bool => Builder::Bool(BooleanBuilder::with_capacity(capacity)),
            ColType::Date => Builder::Date(Date32Builder::with_capacity(capacity)),
            ColType::Timestamp => {
                Builder::Timestamp(TimestampMicrosecondBuilder::with_capacity(capacity))
            }
            ColType::Text => Builder::Text(StringBuilder::with_capacity(capacity, capacity * 16)),
        }
    }

    /// Append a value already fitted to this column's type ([`fit`]).
    fn append(&mut self, v: Value) {
        match (self, v) {
            (Builder::Int(b), Value::Int(i)) => b.append_value(i),
            (Builder::Float(b), Value::Float(f)) => b.append_value(f),
            (Builder::Bool(b), Value::Bool(x)) => b.append_value(x),
            (Builder::Date(b), Value::Date(d)) => b.append_value(d),
            (Builder::Timestamp(b), Value::Timestamp(t)) => b.append_value(t),
            (Builder::Text(b), Value::Text(s)) => b.append_value(s),
            (Builder::Int(b), _) => b.append_null(),
            (Builder::Float(b), _) => b.append_null(),
            (Builder::Bool(b), _) => b.append_null(),
            (Builder::Date(b), _) => b.append_null(),
            (Builder::Timestamp(b), _) => b.append_null(),
            (Builder::Text(b), _) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Int(b) => Arc::new(b.finish()),
            Builder::Float(b) => Arc::new(b.finish()),
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::Date(b) => Arc::new(b.finish()),
            Builder::Timestamp(b) => Arc::new(b.finish()),
            Builder::Text(b) => Arc::new(b.finish()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inference_picks_the_narrowest_type_every_cell_fits() {
        let decide = |vals: &[Value]| {
            let mut s = Seen::default();
            for v in vals {
                s.observe(v);
            }
            s.decide()
        };
        assert_eq!(decide(&[Value::Float(1.0), Value::Int(2)]), ColType::Int);
        assert_eq!(decide(&[Value::Float(1.5), Value::Int(2)]), ColType::Float);
        assert_eq!(decide(&[Value::Date(1), Value::Null]), ColType::Date);
        assert_eq!(
            decide(&[Value::Date(1), Value::Timestamp(5)]),
            ColType::Timestamp
        );
        assert_eq!(decide(&[Value::Int(1), Value::Bool(true)]), ColType::Text);
        assert_eq!(decide(&[Value::Null]), ColType::Text);
    }

    #[test]
    fn values_fit_or_say_why_not() {
        assert_eq!(fit(Value::Float(3.0), ColType::Int), Ok(Value::Int(3)));
        assert!(
            fit(Value::Float(3.5), ColType::Int)
                .unwrap_err()
                .contains("not a whole number")
        );
        assert_eq!(
            fit(Value::Float(3.0), ColType::Text),
            Ok(Value::Text("3".into()))
        );
        assert_eq!(
            fit(Value::Date(0), ColType::Text),
            Ok(Value::Text("1970-01-01".into()))
        );
        assert!(fit(Value::Text("x".into()), ColType::Date).is_err());
    }
}
