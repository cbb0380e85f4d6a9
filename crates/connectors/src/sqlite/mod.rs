//! SQLite source: reads a table (or a custom query) from a database file, opened read-only,
//! inside one read transaction (one consistent snapshot), on a blocking thread that streams
//! batches through a bounded channel.
//!
//! # Type mapping
//!
//! SQLite stores values by storage class (INTEGER, REAL, TEXT, BLOB, NULL) whatever a column
//! declares, so the Arrow type comes from the column's *declared* type, read with SQLite's
//! affinity rules (case-insensitive, first rule that matches wins), and every value is checked
//! against it:
//!
//! | declared type | Arrow type | Delta type | values accepted |
//! |---|---|---|---|
//! | contains `INT` | `Int64` | `long` | INTEGER |
//! | contains `CHAR`, `CLOB` or `TEXT`; contains `JSON`; exactly `TIME` | `Utf8` | `string` | TEXT (valid UTF-8); INTEGER/REAL rendered as text |
//! | contains `BLOB` | `Binary` | `binary` | BLOB; TEXT as its UTF-8 bytes |
//! | contains `REAL`, `FLOA` or `DOUB` | `Float64` | `double` | REAL; INTEGER up to ±2^53 |
//! | contains `BOOL` | `Boolean` | `boolean` | INTEGER 0/1, TEXT `true`/`false` |
//! | exactly `DATE` | `Date32` | `date` | TEXT `YYYY-MM-DD` (0001-01-01 to 9999-12-31) |
//! | contains `DATETIME` or `TIMESTAMP` | `Timestamp(µs)` | `timestamp_ntz` | TEXT `YYYY-MM-DD HH:MM[:SS[.ffffff]]` (or `T` instead of the space), or a date alone (midnight) |
//! | `TIMESTAMPTZ`, `TIMESTAMP WITH TIME ZONE` | `Timestamp(µs, UTC)` | `timestamp` | as above; text without a zone is taken as UTC |
//! | `DECIMAL(p,s)` / `NUMERIC(p,s)`, p ≤ 38 | `Decimal128(p,s)` | `decimal(p,s)` | INTEGER, TEXT `-123.45`, REAL via its shortest round-trip text |
//! | `DECIMAL` / `NUMERIC` without `(p,s)` | `Decimal128(38,9)` | `decimal(38,9)` | as above |
//! | no declared type (expressions, `CREATE TABLE t(a)`) | from the storage class of the column's first non-NULL value: INTEGER → `Int64`, REAL → `Float64`, TEXT → `Utf8`, BLOB → `Binary`; all NULL → `Utf8` | | |
//! | anything else (`DECIMAL(40,2)`, `MONEY`, `UUID`, …) | `UnsupportedType` error | | |
//!
//! Notes:
//! - A timestamp text with `Z` or an offset (`+02:00`, `-0500`) is converted to UTC; in a
//!   `DATETIME`/`TIMESTAMP` column (no zone) the UTC wall clock is stored.
//! - Fractions of a second beyond microseconds are accepted only when they are zeros.
//! - A decimal value with more fractional digits than the scale (other than trailing zeros), or
//!   more digits than the precision, is a `BadValue` error: nothing is rounded.
//! - A value whose storage class does not fit the declared type (SQLite allows text `'abc'` in
//!   an `INTEGER` column) is a `BadValue` error naming table, column, declared type and value.
//!   `cast: { column: text }` reads that column as `CAST("column" AS TEXT)` instead (`Utf8`).
//!
//! # Incremental reads
//!
//! `since` adds `WHERE "cursor" >= <literal>` (wrapping a custom query as
//! `SELECT * FROM (<query>) AS _t WHERE …`). SQLite compares date/time *text* as text, so a
//! timestamp cursor column must hold one consistent ISO-8601 format (`YYYY-MM-DD HH:MM:SS[.ffffff]`,
//! UTC or one fixed zone). The literal is written in its shortest form
//! (`'2024-01-01 10:00:00'`, `'2024-01-01 10:00:00.5'`), which sorts at or before every
//! spelling of the same instant, so the bound stays inclusive.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use deltalake::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder,
    Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};
use tracing::debug;
use tributary_core::config::ColumnCast;
use tributary_core::cursor::format_decimal;
use tributary_core::{
    CursorValue, ErrorClass, ReadRequest, Source, SourceBatch, SourceError, SourceStream,
};

use crate::util::{
    DEFAULT_BATCH_SIZE, ParsedTimestamp, batch_channel, parse_date, parse_decimal, parse_timestamp,
    truncate_value,
};

/// A SQLite database file.
#[derive(Debug, Clone)]
pub struct SqliteSource {
    name: String,
    path: PathBuf,
}

impl SqliteSource {
    /// A source for the database at `path` (already resolved against the project folder),
    /// known as connection `name`. Nothing is opened until [`Source::check`] or
    /// [`Source::read`].
    pub fn new(name: &str, path: PathBuf) -> Self {
        SqliteSource {
            name: name.to_string(),
            path,
        }
    }

    fn connect_error(&self, reason: impl Into<String>, class: ErrorClass) -> SourceError {
        SourceError::Connect {
            connection: self.name.clone(),
            target: self.path.display().to_string(),
            reason: reason.into(),
            class,
        }
    }

    fn driver_connect_error(&self, e: &rusqlite::Error) -> SourceError {
        self.connect_error(e.to_string(), error_class(e))
    }

    fn open(&self) -> Result<Connection, SourceError> {
        if !self.path.is_file() {
            return Err(self.connect_error(
                "the database file does not exist (paths are relative to the project folder)",
                ErrorClass::Config,
            ));
        }
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| self.driver_connect_error(&e))?;
        // Opening is lazy: reading the schema proves the file is a database.
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(|e| self.driver_connect_error(&e))?;
        Ok(conn)
    }
}

#[async_trait]
impl Source for SqliteSource {
    async fn check(&self) -> Result<(), SourceError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = this.open()?;
            conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .map_err(|e| this.driver_connect_error(&e))?;
            Ok(())
        })
        .await
        .map_err(|e| SourceError::Internal(format!("SQLite check thread failed: {e}")))?
    }

    async fn read(&self, request: ReadRequest) -> Result<SourceStream, SourceError> {
        let (schema_tx, schema_rx) = oneshot::channel();
        let (tx, batches) = batch_channel();
        let job = ReadJob {
            source: self.clone(),
            request,
        };
        tokio::task::spawn_blocking(move || job.run(schema_tx, tx));
        match schema_rx.await {
            Ok(Ok((schema, key))) => {
                Ok(SourceStream::rows_only(schema, batches).with_declared_key(key))
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(SourceError::Internal(
                "the SQLite reader thread ended before announcing the schema".into(),
            )),
        }
    }
}

type BatchSender = mpsc::Sender<Result<SourceBatch, SourceError>>;

struct ReadJob {
    source: SqliteSource,
    request: ReadRequest,
}

/// How a column's values are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Float,
    Text,
    Blob,
    Bool,
    Date,
    Timestamp { utc: bool },
    Decimal(u8, i8),
}

impl Kind {
    fn data_type(self) -> DataType {
        match self {
            Kind::Int => DataType::Int64,
            Kind::Float => DataType::Float64,
            Kind::Text => DataType::Utf8,
            Kind::Blob => DataType::Binary,
            Kind::Bool => DataType::Boolean,
            Kind::Date => DataType::Date32,
            Kind::Timestamp { utc: false } => DataType::Timestamp(TimeUnit::Microsecond, None),
            Kind::Timestamp { utc: true } => {
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            }
            Kind::Decimal(p, s) => DataType::Decimal128(p, s),
        }
    }
}

/// Map a declared column type. `Ok(None)`: no declared type. `Err`: unsupported, with reason.
fn kind_of_declared(decl: &str) -> Result<Option<Kind>, String> {
    let u = decl.trim().to_ascii_uppercase();
    if u.is_empty() {
        return Ok(None);
    }
    let has = |s: &str| u.contains(s);
    let kind = if has("INT") {
        Kind::Int
    } else if has("CHAR") || has("CLOB") || has("TEXT") || has("JSON") || u == "TIME" {
        Kind::Text
    } else if has("BLOB") {
        Kind::Blob
    } else if has("REAL") || has("FLOA") || has("DOUB") {
        Kind::Float
    } else if has("BOOL") {
        Kind::Bool
    } else if u == "DATE" {
        Kind::Date
    } else if has("DATETIME") || has("TIMESTAMP") {
        let utc = has("TIMESTAMPTZ") || (has("WITH TIME ZONE") && !has("WITHOUT"));
        Kind::Timestamp { utc }
    } else if has("DECIMAL") || has("NUMERIC") {
        let (p, s) = decimal_params(&u)?;
        Kind::Decimal(p, s)
    } else {
        return Err(
            "SQLite declared type with no lossless Arrow mapping (expected INTEGER, TEXT, BLOB, \
             REAL, BOOLEAN, DATE, DATETIME, TIMESTAMP or DECIMAL(p,s))"
                .into(),
        );
    };
    Ok(Some(kind))
}

/// `(p,s)` of `DECIMAL(p,s)`; `(38,9)` without parameters; `(p,0)` for `DECIMAL(p)`.
fn decimal_params(u: &str) -> Result<(u8, i8), String> {
    let Some(open) = u.find('(') else {
        return Ok((38, 9));
    };
    let inner = u[open + 1..]
        .split(')')
        .next()
        .ok_or_else(|| "unbalanced parentheses".to_string())?;
    let mut parts = inner.split(',').map(str::trim);
    let bad = || format!("cannot read precision and scale from `{u}`");
    let p: u32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let s: u32 = match parts.next() {
        Some(s) => s.parse().map_err(|_| bad())?,
        None => 0,
    };
    if p == 0 || p > 38 {
        return Err(format!(
            "precision {p} is outside 1..=38, the range of Decimal128 that Delta Lake can store"
        ));
    }
    if s > p {
        return Err(format!("scale {s} is larger than precision {p}"));
    }
    Ok((p as u8, s as i8))
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn quote_text(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `main.orders` → `"main"."orders"`.
fn table_ref(name: &str) -> String {
    name.split('.')
        .map(quote_ident)
        .collect::<Vec<_>>()
        .join(".")
}

/// Micros since the epoch as `YYYY-MM-DD HH:MM:SS[.f]`, the fraction without trailing zeros.
fn shortest_timestamp(micros: i64) -> Option<String> {
    let t = chrono::DateTime::from_timestamp_micros(micros)?.naive_utc();
    let mut s = t.format("%Y-%m-%d %H:%M:%S").to_string();
    let frac = micros.rem_euclid(1_000_000);
    if frac != 0 {
        let f = format!("{frac:06}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    Some(s)
}

/// The SQL literal for a cursor value (see the module documentation for timestamps).
fn since_literal(v: &CursorValue) -> String {
    match v {
        CursorValue::Int(i) => i.to_string(),
        CursorValue::Decimal { unscaled, scale } => format_decimal(unscaled, *scale),
        CursorValue::TimestampUtc(m) | CursorValue::Timestamp(m) => {
            quote_text(&shortest_timestamp(*m).unwrap_or_else(|| v.to_string()))
        }
        CursorValue::Date(_) => quote_text(&v.to_string()),
        CursorValue::Text(s) => quote_text(s),
    }
}

fn render_value(v: ValueRef<'_>) -> String {
    let s = match v {
        ValueRef::Null => "NULL".to_string(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => format!("{f}"),
        ValueRef::Text(b) => format!("'{}'", String::from_utf8_lossy(b)),
        ValueRef::Blob(b) => {
            let hex: String = b.iter().take(50).map(|x| format!("{x:02x}")).collect();
            format!("x'{hex}'")
        }
    };
    truncate_value(&s)
}

fn storage_class(v: ValueRef<'_>) -> &'static str {
    match v {
        ValueRef::Null => "NULL",
        ValueRef::Integer(_) => "INTEGER",
        ValueRef::Real(_) => "REAL",
        ValueRef::Text(_) => "TEXT",
        ValueRef::Blob(_) => "BLOB",
    }
}

enum ColBuilder {
    Int(Int64Builder),
    Float(Float64Builder),
    Text(StringBuilder),
    Blob(BinaryBuilder),
    Bool(BooleanBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder, bool),
    Decimal(Decimal128Builder, u8, i8),
}

impl ColBuilder {
    fn new(kind: Kind, capacity: usize) -> Self {
        match kind {
            Kind::Int => ColBuilder::Int(Int64Builder::with_capacity(capacity)),
            Kind::Float => ColBuilder::Float(Float64Builder::with_capacity(capacity)),
            Kind::Text => ColBuilder::Text(StringBuilder::with_capacity(capacity, capacity * 16)),
            Kind::Blob => ColBuilder::Blob(BinaryBuilder::with_capacity(capacity, capacity * 16)),
            Kind::Bool => ColBuilder::Bool(BooleanBuilder::with_capacity(capacity)),
            Kind::Date => ColBuilder::Date(Date32Builder::with_capacity(capacity)),
            Kind::Timestamp { utc } => {
                ColBuilder::Timestamp(TimestampMicrosecondBuilder::with_capacity(capacity), utc)
            }
            Kind::Decimal(p, s) => {
                ColBuilder::Decimal(Decimal128Builder::with_capacity(capacity), p, s)
            }
        }
    }

    /// Append one value; `Err` is the reason it does not fit.
    fn append(&mut self, v: ValueRef<'_>) -> Result<(), String> {
        let mismatch =
            |expected: &str| format!("stored as {}, which is not {expected}", storage_class(v));
        match self {
            ColBuilder::Int(b) => match v {
                ValueRef::Null => b.append_null(),
                ValueRef::Integer(i) => b.append_value(i),
                _ => return Err(mismatch("an integer")),
            },
            ColBuilder::Float(b) => match v {
                ValueRef::Null => b.append_null(),
                ValueRef::Real(f) => b.append_value(f),
                ValueRef::Integer(i) if i.unsigned_abs() <= 1 << 53 => b.append_value(i as f64),
                ValueRef::Integer(_) => {
                    return Err("an integer too large to be exact as a double".into());
                }
                _ => return Err(mismatch("a number")),
            },
            ColBuilder::Text(b) => match v {
                ValueRef::Null => b.append_null(),
                ValueRef::Text(t) => b.append_value(
                    std::str::from_utf8(t).map_err(|e| format!("text is not valid UTF-8: {e}"))?,
                ),
                ValueRef::Integer(i) => b.append_value(i.to_string()),
                ValueRef::Real(f) => b.append_value(format!("{f}")),
                ValueRef::Blob(_) => return Err(mismatch("text")),
            },
            ColBuilder::Blob(b) => match v {
                ValueRef::Null => b.append_null(),
                ValueRef::Blob(x) | ValueRef::Text(x) => b.append_value(x),
                _ => return Err(mismatch("a blob")),
            },
            ColBuilder::Bool(b) => match v {
                ValueRef::Null => b.append_null(),
                ValueRef::Integer(0) => b.append_value(false),
                ValueRef::Integer(1) => b.append_value(true),
                ValueRef::Text(t) if t.eq_ignore_ascii_case(b"true") => b.append_value(true),
                ValueRef::Text(t) if t.eq_ignore_ascii_case(b"false") => b.append_value(false),
                _ => return Err("not a boolean (expected 0, 1, 'true' or 'false')".into()),
            },
            ColBuilder::Date(b) => match v {
                ValueRef::Null => b.append_null(),
                ValueRef::Text(t) => {
                    let d = std::str::from_utf8(t).ok().and_then(parse_date);
                    b.append_value(d.ok_or("not a date in YYYY-MM-DD form")?);
                }
                _ => return Err(mismatch("date text (YYYY-MM-DD)")),
            },
            ColBuilder::Timestamp(b, _) => match v {
                ValueRef::Null => b.append_null(),
                ValueRef::Text(t) => {
                    let s = std::str::from_utf8(t).map_err(|_| "text is not valid UTF-8")?;
                    let micros = match parse_timestamp(s) {
                        Some(ParsedTimestamp::Naive(m) | ParsedTimestamp::Utc(m)) => m,
                        None => match parse_date(s) {
                            Some(days) => i64::from(days) * 86_400_000_000,
                            None => {
                                return Err("not a timestamp in YYYY-MM-DD HH:MM:SS[.ffffff] \
                                            form (optionally with T, Z or an offset)"
                                    .into());
                            }
                        },
                    };
                    b.append_value(micros);
                }
                _ => return Err(mismatch("timestamp text (YYYY-MM-DD HH:MM:SS)")),
            },
            ColBuilder::Decimal(b, p, s) => {
                let unscaled = match v {
                    ValueRef::Null => {
                        b.append_null();
                        return Ok(());
                    }
                    ValueRef::Integer(i) => parse_decimal(&i.to_string(), *p, *s)?,
                    ValueRef::Real(f) if f.is_finite() => parse_decimal(&format!("{f}"), *p, *s)?,
                    ValueRef::Real(_) => return Err("not a finite number".into()),
                    ValueRef::Text(t) => {
                        let t = std::str::from_utf8(t).map_err(|_| "text is not valid UTF-8")?;
                        parse_decimal(t, *p, *s)?
                    }
                    ValueRef::Blob(_) => return Err(mismatch("a number")),
                };
                b.append_value(unscaled);
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<ArrayRef, SourceError> {
        Ok(match self {
            ColBuilder::Int(b) => Arc::new(b.finish()),
            ColBuilder::Float(b) => Arc::new(b.finish()),
            ColBuilder::Text(b) => Arc::new(b.finish()),
            ColBuilder::Blob(b) => Arc::new(b.finish()),
            ColBuilder::Bool(b) => Arc::new(b.finish()),
            ColBuilder::Date(b) => Arc::new(b.finish()),
            ColBuilder::Timestamp(b, utc) => {
                let a = b.finish();
                Arc::new(if *utc { a.with_timezone("UTC") } else { a })
            }
            ColBuilder::Decimal(b, p, s) => Arc::new(
                b.finish()
                    .with_precision_and_scale(*p, *s)
                    .map_err(|e| SourceError::Internal(format!("decimal builder: {e}")))?,
            ),
        })
    }
}

struct Column {
    name: String,
    kind: Kind,
    /// The type as shown in errors.
    source_type: String,
}

/// The class of a SQLite error, where it is born: its result code (busy or locked is a
/// concurrent writer, retried; a file that is not a database, a missing table or a syntax error
/// is configuration; a corrupt file or a value of the wrong type is data).
fn error_class(e: &rusqlite::Error) -> ErrorClass {
    use rusqlite::ErrorCode as C;
    match e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            C::DatabaseBusy | C::DatabaseLocked => ErrorClass::Serialization,
            C::PermissionDenied | C::AuthorizationForStatementDenied => ErrorClass::Auth,
            C::CannotOpen | C::NotADatabase | C::ReadOnly | C::Unknown | C::ApiMisuse => {
                ErrorClass::Config
            }
            C::DatabaseCorrupt | C::TypeMismatch | C::TooBig | C::ConstraintViolation => {
                ErrorClass::Data
            }
            C::SystemIoFailure | C::DiskFull => ErrorClass::ServerError,
            C::OutOfMemory | C::InternalMalfunction => ErrorClass::Internal,
            _ => ErrorClass::Task,
        },
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::Utf8Error(..) => ErrorClass::Data,
        rusqlite::Error::InvalidPath(_) => ErrorClass::Config,
        _ => ErrorClass::Task,
    }
}

impl ReadJob {
    fn table(&self) -> &str {
        &self.request.table.name
    }

    fn query_error(&self, e: rusqlite::Error) -> SourceError {
        SourceError::Query {
            connection: self.source.name.clone(),
            table: self.table().to_string(),
            reason: e.to_string(),
            class: error_class(&e),
        }
    }

    fn run(self, schema_tx: crate::util::Announce, tx: BatchSender) {
        let mut schema_tx = Some(schema_tx);
        if let Err(e) = self.produce(&mut schema_tx, &tx) {
            match schema_tx.take() {
                Some(stx) => {
                    let _ = stx.send(Err(e));
                }
                None => {
                    let _ = tx.blocking_send(Err(e));
                }
            }
        }
    }

    /// `FROM` part: the table, or the custom query as a subquery.
    /// The table's primary key columns, in key order; empty without one.
    fn declared_key(&self, conn: &rusqlite::Connection) -> Result<Vec<String>, SourceError> {
        let (schema, table) = match self.table().split_once('.') {
            Some((s, t)) => (s, t),
            None => ("main", self.table()),
        };
        let mut stmt = conn
            .prepare("SELECT name FROM pragma_table_info(?1, ?2) WHERE pk > 0 ORDER BY pk")
            .map_err(|e| self.query_error(e))?;
        let names = stmt
            .query_map(rusqlite::params![table, schema], |r| r.get::<_, String>(0))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.query_error(e))?;
        Ok(names)
    }

    fn source_sql(&self) -> String {
        match &self.request.table.query {
            Some(q) => format!("({}) AS _t", q.trim().trim_end_matches(';')),
            None => table_ref(self.table()),
        }
    }

    fn produce(
        &self,
        schema_tx: &mut Option<crate::util::Announce>,
        tx: &BatchSender,
    ) -> Result<(), SourceError> {
        let conn = self.source.open()?;
        // One read transaction: every statement below sees the same snapshot.
        conn.execute_batch("BEGIN DEFERRED")
            .map_err(|e| self.query_error(e))?;
        let from = self.source_sql();

        // The source's column names, to validate the options and build the select list.
        let names: Vec<String> = {
            let stmt = conn
                .prepare(&format!("SELECT * FROM {from}"))
                .map_err(|e| self.query_error(e))?;
            stmt.column_names()
                .into_iter()
                .map(str::to_string)
                .collect()
        };
        for col in self.request.table.cast.keys() {
            if !names.contains(col) {
                return Err(SourceError::Config {
                    table: self.table().to_string(),
                    reason: format!(
                        "`cast` names column {col}, which is not among the columns ({})",
                        names.join(", ")
                    ),
                });
            }
        }
        let select_list = if self.request.table.cast.is_empty() {
            "*".to_string()
        } else {
            names
                .iter()
                .map(|n| match self.request.cast_for(n) {
                    Some(ColumnCast::Text) => {
                        format!("CAST({q} AS TEXT) AS {q}", q = quote_ident(n))
                    }
                    None => quote_ident(n),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut sql = format!("SELECT {select_list} FROM {from}");
        if let Some((col, value)) = &self.request.since {
            if !names.iter().any(|n| n.eq_ignore_ascii_case(col)) {
                return Err(SourceError::Config {
                    table: self.table().to_string(),
                    reason: format!(
                        "cursor column {col} is not among the columns ({})",
                        names.join(", ")
                    ),
                });
            }
            sql.push_str(&format!(
                " WHERE {} >= {}",
                quote_ident(col),
                since_literal(value)
            ));
        }
        if let Some((col, value)) = &self.request.until {
            sql.push_str(&format!(
                " {} {} < {}",
                if self.request.since.is_some() {
                    "AND"
                } else {
                    "WHERE"
                },
                quote_ident(col),
                since_literal(value)
            ));
        }
        debug!(table = %self.table(), sql = %sql, "Reading SQLite table.");

        let mut stmt = conn.prepare(&sql).map_err(|e| self.query_error(e))?;
        let declared: Vec<(String, Option<String>)> = stmt
            .columns()
            .iter()
            .map(|c| (c.name().to_string(), c.decl_type().map(str::to_string)))
            .collect();
        let mut columns = Vec::with_capacity(declared.len());
        for (name, decl) in declared {
            let col = if self.request.cast_for(&name).is_some() {
                Column {
                    name,
                    kind: Kind::Text,
                    source_type: "TEXT (cast)".into(),
                }
            } else {
                let decl_text = decl.clone().unwrap_or_default();
                match kind_of_declared(&decl_text) {
                    Ok(Some(kind)) => Column {
                        name,
                        kind,
                        source_type: decl_text,
                    },
                    Ok(None) => {
                        let class = self.first_storage_class(&conn, &sql, &name)?;
                        let kind = match class.as_str() {
                            "integer" => Kind::Int,
                            "real" => Kind::Float,
                            "blob" => Kind::Blob,
                            _ => Kind::Text,
                        };
                        Column {
                            name,
                            kind,
                            source_type: format!(
                                "no declared type, first value {}",
                                class.to_ascii_uppercase()
                            ),
                        }
                    }
                    Err(reason) => {
                        return Err(SourceError::UnsupportedType {
                            table: self.table().to_string(),
                            column: name,
                            source_type: decl_text,
                            reason,
                        });
                    }
                }
            };
            columns.push(col);
        }
        let schema: SchemaRef = Arc::new(Schema::new(
            columns
                .iter()
                .map(|c| Field::new(&c.name, c.kind.data_type(), true))
                .collect::<Vec<_>>(),
        ));
        let key = match &self.request.table.query {
            None => Some(self.declared_key(&conn)?),
            Some(_) => None,
        };
        if let Some(stx) = schema_tx.take()
            && stx.send(Ok((schema.clone(), key))).is_err()
        {
            return Ok(());
        }

        let batch_size = if self.request.batch_size == 0 {
            DEFAULT_BATCH_SIZE
        } else {
            self.request.batch_size
        };
        let origin: Arc<str> = format!("{}:{}", self.source.name, self.table()).into();
        let new_builders = || {
            columns
                .iter()
                .map(|c| ColBuilder::new(c.kind, batch_size))
                .collect::<Vec<_>>()
        };
        let mut builders = new_builders();
        let mut in_batch = 0usize;
        let mut total = 0u64;
        let mut rows = stmt.query([]).map_err(|e| self.query_error(e))?;
        loop {
            let row = match rows.next() {
                Ok(Some(row)) => row,
                Ok(None) => break,
                Err(e) => return Err(self.query_error(e)),
            };
            for (i, (b, col)) in builders.iter_mut().zip(&columns).enumerate() {
                let v = row.get_ref(i).map_err(|e| self.query_error(e))?;
                if let Err(reason) = b.append(v) {
                    return Err(SourceError::BadValue {
                        table: self.table().to_string(),
                        column: col.name.clone(),
                        source_type: col.source_type.clone(),
                        value: render_value(v),
                        reason,
                    });
                }
            }
            in_batch += 1;
            if in_batch == batch_size {
                total += in_batch as u64;
                if !self.send(&schema, &mut builders, &origin, tx)? {
                    return Ok(());
                }
                builders = new_builders();
                in_batch = 0;
            }
        }
        if in_batch > 0 {
            total += in_batch as u64;
            self.send(&schema, &mut builders, &origin, tx)?;
        }
        debug!(table = %self.table(), rows = total, "Finished reading SQLite table.");
        Ok(())
    }

    /// `typeof()` of the first non-NULL value of an undeclared column, `null` when none.
    fn first_storage_class(
        &self,
        conn: &Connection,
        sql: &str,
        column: &str,
    ) -> Result<String, SourceError> {
        let q = quote_ident(column);
        let probe = format!("SELECT typeof({q}) FROM ({sql}) AS _p WHERE {q} IS NOT NULL LIMIT 1");
        let mut stmt = conn.prepare(&probe).map_err(|e| self.query_error(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.query_error(e))?;
        match rows.next().map_err(|e| self.query_error(e))? {
            Some(row) => row.get::<_, String>(0).map_err(|e| self.query_error(e)),
            None => Ok("null".into()),
        }
    }

    /// Send the built batch; `Ok(false)` when the consumer is gone.
    fn send(
        &self,
        schema: &SchemaRef,
        builders: &mut [ColBuilder],
        origin: &Arc<str>,
        tx: &BatchSender,
    ) -> Result<bool, SourceError> {
        let arrays = builders
            .iter_mut()
            .map(ColBuilder::finish)
            .collect::<Result<Vec<_>, _>>()?;
        let batch = RecordBatch::try_new(schema.clone(), arrays)
            .map_err(|e| SourceError::Internal(format!("assembling a SQLite batch: {e}")))?;
        debug!(table = %self.table(), rows = batch.num_rows(), "Read batch.");
        Ok(tx
            .blocking_send(Ok(SourceBatch {
                batch,
                origin: origin.clone(),
            }))
            .is_ok())
    }
}

/// A `type: sqlite` connection.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteConnection {
    /// Path to the database file, relative to the project folder.
    pub path: String,
}

impl SqliteConnection {
    fn problems(&self) -> Vec<(String, String)> {
        if self.path.trim().is_empty() {
            return vec![("path".into(), "must not be empty".into())];
        }
        Vec::new()
    }
}

/// The SQLite connector's registration (`type: sqlite`).
pub(crate) struct Registration;

/// The SQLite connector, as [`crate::registry::connectors`] lists it.
pub(crate) static CONNECTOR: Registration = Registration;

impl crate::registry::Connector for Registration {
    fn kind(&self) -> &'static str {
        "sqlite"
    }
    fn table_keys(&self) -> &'static [&'static str] {
        &[]
    }
    fn connection_problems(
        &self,
        conn: &tributary_core::config::ConnectionConfig,
    ) -> Vec<(String, String)> {
        crate::registry::connection_problems_of(conn, SqliteConnection::problems)
    }
    fn table_problems(&self, table: &tributary_core::config::TableConfig) -> Vec<(String, String)> {
        crate::registry::on_error_problem(table)
            .into_iter()
            .collect()
    }
    fn open(
        &self,
        name: &str,
        conn: &tributary_core::config::ConnectionConfig,
        project_root: &std::path::Path,
    ) -> Result<Box<dyn Source>, SourceError> {
        let c: SqliteConnection = crate::registry::connection_options(name, conn)?;
        let p = std::path::Path::new(&c.path);
        let full = if p.is_absolute() {
            p.to_path_buf()
        } else {
            project_root.join(p)
        };
        Ok(Box::new(SqliteSource::new(name, full)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_follow_affinity_rules() {
        assert_eq!(kind_of_declared("bigint"), Ok(Some(Kind::Int)));
        assert_eq!(kind_of_declared("VARCHAR(20)"), Ok(Some(Kind::Text)));
        assert_eq!(kind_of_declared("double precision"), Ok(Some(Kind::Float)));
        assert_eq!(kind_of_declared("date"), Ok(Some(Kind::Date)));
        assert_eq!(
            kind_of_declared("DATETIME"),
            Ok(Some(Kind::Timestamp { utc: false }))
        );
        assert_eq!(
            kind_of_declared("timestamp with time zone"),
            Ok(Some(Kind::Timestamp { utc: true }))
        );
        assert_eq!(
            kind_of_declared("timestamp without time zone"),
            Ok(Some(Kind::Timestamp { utc: false }))
        );
        assert_eq!(
            kind_of_declared("DECIMAL(10, 2)"),
            Ok(Some(Kind::Decimal(10, 2)))
        );
        assert_eq!(kind_of_declared("numeric"), Ok(Some(Kind::Decimal(38, 9))));
        assert_eq!(
            kind_of_declared("NUMERIC(12)"),
            Ok(Some(Kind::Decimal(12, 0)))
        );
        assert_eq!(kind_of_declared(""), Ok(None));
        assert!(kind_of_declared("DECIMAL(40,2)").is_err());
        assert!(kind_of_declared("MONEY").is_err());
    }

    #[test]
    fn since_literals_are_shortest() {
        assert_eq!(
            since_literal(&CursorValue::Timestamp(0)),
            "'1970-01-01 00:00:00'"
        );
        assert_eq!(
            since_literal(&CursorValue::Timestamp(500_000)),
            "'1970-01-01 00:00:00.5'"
        );
        assert_eq!(since_literal(&CursorValue::Text("it's".into())), "'it''s'");
        assert_eq!(since_literal(&CursorValue::Date(1)), "'1970-01-02'");
    }
}
