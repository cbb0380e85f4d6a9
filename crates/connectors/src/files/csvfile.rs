//! CSV: dialect, type inference over the first records of the first file, streaming reads.

use std::sync::Arc;

use csv::{ByteRecord, ReaderBuilder};
use deltalake::arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, RecordBatch,
    StringBuilder, TimestampMicrosecondBuilder,
};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use tributary_core::SourceError;
use tributary_core::config::TableConfig;

use super::config::CsvOptions;

use super::{FileInput, ReadCtx};
use crate::util::{ParsedTimestamp, parse_date, parse_timestamp, truncate_value};

/// Records of the first file used to infer column types.
const INFER_RECORDS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CsvType {
    Int,
    Float,
    Bool,
    Date,
    Timestamp,
    TimestampUtc,
    Text,
}

impl CsvType {
    fn data_type(self) -> DataType {
        match self {
            CsvType::Int => DataType::Int64,
            CsvType::Float => DataType::Float64,
            CsvType::Bool => DataType::Boolean,
            CsvType::Date => DataType::Date32,
            CsvType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            CsvType::TimestampUtc => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            CsvType::Text => DataType::Utf8,
        }
    }
    /// The CSV type that parses into `ty`, if there is one.
    fn of(ty: &DataType) -> Option<CsvType> {
        Some(match ty {
            DataType::Int64 => CsvType::Int,
            DataType::Float64 => CsvType::Float,
            DataType::Boolean => CsvType::Bool,
            DataType::Date32 => CsvType::Date,
            DataType::Timestamp(TimeUnit::Microsecond, None) => CsvType::Timestamp,
            DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => CsvType::TimestampUtc,
            DataType::Utf8 => CsvType::Text,
            _ => return None,
        })
    }

    fn describe(self) -> &'static str {
        match self {
            CsvType::Int => "integer (Int64)",
            CsvType::Float => "number (Float64)",
            CsvType::Bool => "boolean (true/false)",
            CsvType::Date => "date (YYYY-MM-DD)",
            CsvType::Timestamp => "timestamp without zone (YYYY-MM-DD HH:MM:SS[.ffffff])",
            CsvType::TimestampUtc => {
                "timestamp with zone (YYYY-MM-DD HH:MM:SS[.ffffff]Z or ±HH:MM)"
            }
            CsvType::Text => "text",
        }
    }
}

/// `-12`, `0`: no `+`, no leading zeros (so `007` keeps its text).
fn parse_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let b = digits.as_bytes();
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) || (b.len() > 1 && b[0] == b'0') {
        return None;
    }
    s.parse().ok()
}

/// Plain numbers (`1.5`, `-2e3`, `.5`), no `inf`/`NaN`, no leading zeros.
fn parse_float(s: &str) -> Option<f64> {
    let body = s.strip_prefix('-').unwrap_or(s);
    let b = body.as_bytes();
    if b.is_empty()
        || !b[0].is_ascii_digit() && b[0] != b'.'
        || !b
            .iter()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'-' | b'+'))
        || (b.len() > 1 && b[0] == b'0' && b[1].is_ascii_digit())
    {
        return None;
    }
    s.parse().ok()
}

fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// Which types every non-empty value of a column seen so far fits.
#[derive(Debug, Clone, Copy)]
struct Candidates {
    seen: bool,
    int: bool,
    float: bool,
    boolean: bool,
    date: bool,
    ts: bool,
    ts_utc: bool,
}

impl Candidates {
    fn new() -> Self {
        Candidates {
            seen: false,
            int: true,
            float: true,
            boolean: true,
            date: true,
            ts: true,
            ts_utc: true,
        }
    }
    fn observe(&mut self, v: Option<&str>) {
        let Some(v) = v else {
            // Not UTF-8: only text can hold it (the read reports it).
            *self = Candidates {
                seen: true,
                int: false,
                float: false,
                boolean: false,
                date: false,
                ts: false,
                ts_utc: false,
            };
            return;
        };
        self.seen = true;
        self.int &= parse_int(v).is_some();
        self.float &= parse_float(v).is_some();
        self.boolean &= parse_bool(v).is_some();
        self.date &= parse_date(v).is_some();
        let ts = parse_timestamp(v);
        self.ts &= matches!(ts, Some(ParsedTimestamp::Naive(_)));
        self.ts_utc &= matches!(ts, Some(ParsedTimestamp::Utc(_)));
    }
    fn decide(self) -> CsvType {
        if !self.seen {
            CsvType::Text
        } else if self.int {
            CsvType::Int
        } else if self.float {
            CsvType::Float
        } else if self.boolean {
            CsvType::Bool
        } else if self.date {
            CsvType::Date
        } else if self.ts {
            CsvType::Timestamp
        } else if self.ts_utc {
            CsvType::TimestampUtc
        } else {
            CsvType::Text
        }
    }
}

/// The CSV dialect and the columns, from the table options and the first file.
pub(crate) struct CsvPlan {
    delimiter: u8,
    quote: u8,
    header: bool,
    /// Column names (header names, or `column_<n>`).
    names: Vec<String>,
    types: Vec<CsvType>,
    /// Per column: whether its type is the target table's (not inferred).
    from_table: Vec<bool>,
    /// The first file, named in type errors.
    first_file: String,
}

fn one_byte(table: &TableConfig, key: &str, value: &str) -> Result<u8, SourceError> {
    let b = match value {
        "\\t" => b"\t".as_slice(),
        v => v.as_bytes(),
    };
    match b {
        [c] => Ok(*c),
        _ => Err(SourceError::Config {
            table: table.name.clone(),
            reason: format!("csv.{key} must be one ASCII character, got `{value}`"),
        }),
    }
}

impl CsvPlan {
    fn reader(
        &self,
        input: &FileInput,
    ) -> Result<csv::Reader<Box<dyn std::io::BufRead + Send>>, SourceError> {
        Ok(ReaderBuilder::new()
            .delimiter(self.delimiter)
            .quote(self.quote)
            .has_headers(false)
            .flexible(true)
            .from_reader(input.open_text()?))
    }

    /// Header names from a record: UTF-8, empty → `column_<n>`, unique.
    fn header_names(input: &FileInput, rec: &ByteRecord) -> Result<Vec<String>, SourceError> {
        let mut names = Vec::with_capacity(rec.len());
        for (i, field) in rec.iter().enumerate() {
            let name = std::str::from_utf8(field).map_err(|_| SourceError::BadRecord {
                file: input.display.clone(),
                line: 1,
                reason: format!("header field {} is not valid UTF-8", i + 1),
            })?;
            let name = if name.is_empty() {
                format!("column_{}", i + 1)
            } else {
                name.to_string()
            };
            if names.contains(&name) {
                return Err(SourceError::BadRecord {
                    file: input.display.clone(),
                    line: 1,
                    reason: format!(
                        "the header names column `{name}` twice; column names must be unique"
                    ),
                });
            }
            names.push(name);
        }
        Ok(names)
    }

    /// Read the header and infer the types from the first records of the first file. With
    /// `base` (the target table's columns), a column the table already has keeps the table's
    /// type when CSV can parse it (so an append of a file whose `code` values all look like
    /// numbers still loads them as the table's text, and a value that does not parse as the
    /// table's type is a malformed record, not a schema change).
    pub(crate) fn infer(
        table: &TableConfig,
        opts: CsvOptions,
        input: &FileInput,
        base: Option<&Schema>,
    ) -> Result<CsvPlan, SourceError> {
        let default_delimiter = CsvOptions::default().delimiter;
        let delimiter = if input.tsv && opts.delimiter == default_delimiter {
            b'\t'
        } else {
            one_byte(table, "delimiter", &opts.delimiter)?
        };
        let mut plan = CsvPlan {
            delimiter,
            quote: one_byte(table, "quote", &opts.quote)?,
            header: opts.header,
            names: Vec::new(),
            types: Vec::new(),
            from_table: Vec::new(),
            first_file: input.display.clone(),
        };
        let mut rdr = plan.reader(input)?;
        let mut rec = ByteRecord::new();
        let mut first_data: Option<ByteRecord> = None;
        if !rdr
            .read_byte_record(&mut rec)
            .map_err(|e| input.read_error(e))?
        {
            return Err(
                input.no_columns("the first file is empty, so the table's columns cannot be known")
            );
        }
        if plan.header {
            plan.names = Self::header_names(input, &rec)?;
        } else {
            plan.names = (1..=rec.len()).map(|i| format!("column_{i}")).collect();
            first_data = Some(rec.clone());
        }
        let n = plan.names.len();
        let mut cands = vec![Candidates::new(); n];
        let mut observe = |rec: &ByteRecord| {
            if rec.len() != n {
                return; // malformed: reported by the read
            }
            for (c, field) in cands.iter_mut().zip(rec.iter()) {
                if !field.is_empty() {
                    c.observe(std::str::from_utf8(field).ok());
                }
            }
        };
        let mut seen = 0;
        if let Some(r) = &first_data {
            observe(r);
            seen += 1;
        }
        while seen < INFER_RECORDS
            && rdr
                .read_byte_record(&mut rec)
                .map_err(|e| input.read_error(e))?
        {
            observe(&rec);
            seen += 1;
        }
        let typed: Vec<(CsvType, bool)> = plan
            .names
            .iter()
            .zip(cands)
            .map(|(name, c)| {
                if !opts.infer_types || table.cast.contains_key(name) {
                    (CsvType::Text, false)
                } else {
                    match base
                        .and_then(|b| b.field_with_name(name).ok())
                        .and_then(|f| CsvType::of(f.data_type()))
                    {
                        Some(t) => (t, true),
                        None => (c.decide(), false),
                    }
                }
            })
            .collect();
        (plan.types, plan.from_table) = typed.into_iter().unzip();
        Ok(plan)
    }

    pub(crate) fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.names
                .iter()
                .zip(&self.types)
                .map(|(n, t)| Field::new(n, t.data_type(), true))
                .collect::<Vec<_>>(),
        ))
    }

    fn builders(&self, capacity: usize) -> Vec<ColBuilder> {
        self.types
            .iter()
            .map(|t| ColBuilder::new(*t, capacity))
            .collect()
    }

    /// A record as text for the quarantine table: its fields joined by the delimiter (the
    /// reader has removed quoting), invalid UTF-8 replaced.
    fn raw_text(&self, rec: &ByteRecord) -> String {
        let sep = [self.delimiter];
        let joined: Vec<u8> = rec.iter().collect::<Vec<&[u8]>>().join(&sep[..]);
        String::from_utf8_lossy(&joined).into_owned()
    }

    /// Parse one record into `cells`; `Err` is the reason it is malformed.
    fn parse_record(&self, rec: &ByteRecord, cells: &mut Vec<Cell>) -> Result<(), String> {
        cells.clear();
        if rec.len() != self.names.len() {
            return Err(format!(
                "expected {} fields, found {}",
                self.names.len(),
                rec.len()
            ));
        }
        for (((field, name), ty), from_table) in rec
            .iter()
            .zip(&self.names)
            .zip(&self.types)
            .zip(&self.from_table)
        {
            if field.is_empty() {
                cells.push(Cell::Null);
                continue;
            }
            let text = std::str::from_utf8(field)
                .map_err(|e| format!("column {name}: value is not valid UTF-8 ({e})"))?;
            let cell = match ty {
                CsvType::Text => Some(Cell::Text),
                CsvType::Int => parse_int(text).map(Cell::Int),
                CsvType::Float => parse_float(text).map(Cell::Float),
                CsvType::Bool => parse_bool(text).map(Cell::Bool),
                CsvType::Date => parse_date(text).map(Cell::Date),
                CsvType::Timestamp => match parse_timestamp(text) {
                    Some(ParsedTimestamp::Naive(v)) => Some(Cell::Micros(v)),
                    _ => None,
                },
                CsvType::TimestampUtc => match parse_timestamp(text) {
                    Some(ParsedTimestamp::Utc(v)) => Some(Cell::Micros(v)),
                    _ => None,
                },
            };
            let Some(cell) = cell else {
                if *from_table {
                    return Err(format!(
                        "column {name}: value '{}' is not a valid {}, the type of the table's column {name}",
                        truncate_value(text),
                        ty.describe(),
                    ));
                }
                return Err(format!(
                    "column {name}: value '{}' is not a valid {} (the type was inferred from the first \
                     {INFER_RECORDS} records of {}); add `cast: {{ {name}: text }}` to the table, or set \
                     `csv: {{ infer_types: false }}`, to load it as text",
                    truncate_value(text),
                    ty.describe(),
                    self.first_file
                ));
            };
            cells.push(cell);
        }
        Ok(())
    }

    /// Read one file into batches. `Ok(false)` when the consumer is gone.
    pub(crate) fn read_file(
        &self,
        input: &FileInput,
        ctx: &mut ReadCtx,
    ) -> Result<bool, SourceError> {
        let mut rdr = self.reader(input)?;
        let mut rec = ByteRecord::new();
        if self.header {
            if !rdr
                .read_byte_record(&mut rec)
                .map_err(|e| input.read_error(e))?
            {
                return Ok(true); // an empty file has no rows
            }
            let found = Self::header_names(input, &rec)?;
            if found != self.names {
                return Err(SourceError::BadRecord {
                    file: input.display.clone(),
                    line: 1,
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
        let mut builders = self.builders(ctx.batch_size);
        let mut rows = 0usize;
        let mut cells = Vec::with_capacity(self.names.len());
        while rdr
            .read_byte_record(&mut rec)
            .map_err(|e| input.read_error(e))?
        {
            let line = rec.position().map_or(0, |p| p.line());
            if let Err(reason) = self.parse_record(&rec, &mut cells) {
                let raw = self.raw_text(&rec);
                ctx.bad_record(input, line, reason, &raw)?;
                continue;
            }
            for ((b, cell), field) in builders.iter_mut().zip(&cells).zip(rec.iter()) {
                b.append(*cell, field);
            }
            rows += 1;
            if rows == ctx.batch_size {
                if !ctx.send(self.finish(&mut builders, ctx)?, input) {
                    return Ok(false);
                }
                rows = 0;
            }
        }
        if rows > 0 && !ctx.send(self.finish(&mut builders, ctx)?, input) {
            return Ok(false);
        }
        Ok(true)
    }

    fn finish(
        &self,
        builders: &mut [ColBuilder],
        ctx: &ReadCtx,
    ) -> Result<RecordBatch, SourceError> {
        let arrays: Vec<ArrayRef> = builders.iter_mut().map(ColBuilder::finish).collect();
        RecordBatch::try_new(ctx.schema.clone(), arrays)
            .map_err(|e| SourceError::Internal(format!("assembling a CSV batch: {e}")))
    }
}

/// One parsed field. Text is taken from the record when appending (already checked UTF-8).
#[derive(Debug, Clone, Copy)]
enum Cell {
    Null,
    Text,
    Int(i64),
    Float(f64),
    Bool(bool),
    Date(i32),
    Micros(i64),
}

enum ColBuilder {
    Int(Int64Builder),
    Float(Float64Builder),
    Bool(BooleanBuilder),
    Date(Date32Builder),
    Micros(TimestampMicrosecondBuilder, bool),
    Text(StringBuilder),
}

impl ColBuilder {
    fn new(ty: CsvType, capacity: usize) -> Self {
        match ty {
            CsvType::Int => ColBuilder::Int(Int64Builder::with_capacity(capacity)),
            CsvType::Float => ColBuilder::Float(Float64Builder::with_capacity(capacity)),
            CsvType::Bool => ColBuilder::Bool(BooleanBuilder::with_capacity(capacity)),
            CsvType::Date => ColBuilder::Date(Date32Builder::with_capacity(capacity)),
            CsvType::Timestamp => {
                ColBuilder::Micros(TimestampMicrosecondBuilder::with_capacity(capacity), false)
            }
            CsvType::TimestampUtc => {
                ColBuilder::Micros(TimestampMicrosecondBuilder::with_capacity(capacity), true)
            }
            CsvType::Text => {
                ColBuilder::Text(StringBuilder::with_capacity(capacity, capacity * 16))
            }
        }
    }

    /// Append a parsed cell (its type was checked by `parse_record`).
    fn append(&mut self, cell: Cell, field: &[u8]) {
        match (self, cell) {
            (ColBuilder::Int(b), Cell::Int(v)) => b.append_value(v),
            (ColBuilder::Float(b), Cell::Float(v)) => b.append_value(v),
            (ColBuilder::Bool(b), Cell::Bool(v)) => b.append_value(v),
            (ColBuilder::Date(b), Cell::Date(v)) => b.append_value(v),
            (ColBuilder::Micros(b, _), Cell::Micros(v)) => b.append_value(v),
            // UTF-8 was checked by parse_record; the lossy conversion never replaces anything.
            (ColBuilder::Text(b), Cell::Text) => b.append_value(String::from_utf8_lossy(field)),
            (ColBuilder::Int(b), _) => b.append_null(),
            (ColBuilder::Float(b), _) => b.append_null(),
            (ColBuilder::Bool(b), _) => b.append_null(),
            (ColBuilder::Date(b), _) => b.append_null(),
            (ColBuilder::Micros(b, _), _) => b.append_null(),
            (ColBuilder::Text(b), _) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            ColBuilder::Int(b) => Arc::new(b.finish()),
            ColBuilder::Float(b) => Arc::new(b.finish()),
            ColBuilder::Bool(b) => Arc::new(b.finish()),
            ColBuilder::Date(b) => Arc::new(b.finish()),
            ColBuilder::Micros(b, utc) => {
                let a = b.finish();
                Arc::new(if *utc { a.with_timezone("UTC") } else { a })
            }
            ColBuilder::Text(b) => Arc::new(b.finish()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_with_leading_zeros_stay_text() {
        assert_eq!(parse_int("007"), None);
        assert_eq!(parse_int("0"), Some(0));
        assert_eq!(parse_int("-12"), Some(-12));
        assert_eq!(parse_int("+1"), None);
        assert_eq!(parse_float("01.5"), None);
        assert_eq!(parse_float("0.5"), Some(0.5));
        assert_eq!(parse_float("-2e3"), Some(-2000.0));
        assert_eq!(parse_float("NaN"), None);
        assert_eq!(parse_float("inf"), None);
    }
}
