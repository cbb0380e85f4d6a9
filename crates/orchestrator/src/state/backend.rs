//! What the two backends share: typed parameters, read-back cells, and the SQL dialect both
//! speak. Queries are written once, with `$1`-style placeholders (SQLite gets `?1`) and only the
//! SQL both engines accept (`CAST(x AS BIGINT)`, not `x::bigint`).

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};

use super::error::StateError;
use super::postgres::PgStore;
use super::sqlite::SqliteStore;

/// A query parameter. Nulls are typed, because PostgreSQL checks parameter types.
#[derive(Debug, Clone)]
pub(crate) enum Param {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(bool),
    Time(Option<DateTime<Utc>>),
    Json(serde_json::Value),
}

impl From<&str> for Param {
    fn from(v: &str) -> Self {
        Param::Text(Some(v.to_string()))
    }
}
impl From<String> for Param {
    fn from(v: String) -> Self {
        Param::Text(Some(v))
    }
}
impl From<Option<&str>> for Param {
    fn from(v: Option<&str>) -> Self {
        Param::Text(v.map(str::to_string))
    }
}
impl From<i64> for Param {
    fn from(v: i64) -> Self {
        Param::Int(Some(v))
    }
}
impl From<Option<i64>> for Param {
    fn from(v: Option<i64>) -> Self {
        Param::Int(v)
    }
}
impl From<bool> for Param {
    fn from(v: bool) -> Self {
        Param::Bool(v)
    }
}
impl From<DateTime<Utc>> for Param {
    fn from(v: DateTime<Utc>) -> Self {
        Param::Time(Some(v))
    }
}
impl From<Option<DateTime<Utc>>> for Param {
    fn from(v: Option<DateTime<Utc>>) -> Self {
        Param::Time(v)
    }
}
impl From<serde_json::Value> for Param {
    fn from(v: serde_json::Value) -> Self {
        Param::Json(v)
    }
}

/// A value read back from either backend.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Bool(bool),
    Time(DateTime<Utc>),
    Json(serde_json::Value),
}

impl Cell {
    fn show(&self) -> String {
        match self {
            Cell::Null => "NULL".into(),
            Cell::Int(v) => v.to_string(),
            Cell::Real(v) => v.to_string(),
            Cell::Text(v) => v.clone(),
            Cell::Bool(v) => v.to_string(),
            Cell::Time(v) => format_time(*v),
            Cell::Json(v) => v.to_string(),
        }
    }
}

/// One result row, with its column names.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) names: Arc<[String]>,
    pub(crate) cells: Vec<Cell>,
}

/// A driver failure, already scrubbed of secrets.
#[derive(Debug)]
pub(crate) struct DbError {
    pub(crate) message: String,
    pub(crate) connection_lost: bool,
}

/// The stored text form of a time in SQLite: RFC 3339, UTC, microseconds, `Z`, so that text
/// order is time order.
pub(crate) fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Parse any RFC 3339 time (the stored form, or the old `+00:00` form with nanoseconds).
pub(crate) fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("not an RFC 3339 time: {e}"))
}

/// One of the two stores.
#[derive(Clone)]
pub(crate) enum Backend {
    Sqlite(Arc<SqliteStore>),
    Postgres(Arc<PgStore>),
}

impl Backend {
    /// Run a statement; the number of rows it changed.
    pub(crate) async fn execute(&self, sql: &str, params: Vec<Param>) -> Result<u64, DbError> {
        match self {
            Backend::Sqlite(s) => s.execute(sql, params).await,
            Backend::Postgres(p) => p.execute(sql, params).await,
        }
    }

    /// Run a query; its rows.
    pub(crate) async fn query(&self, sql: &str, params: Vec<Param>) -> Result<Vec<Row>, DbError> {
        match self {
            Backend::Sqlite(s) => s.query(sql, params).await,
            Backend::Postgres(p) => p.query(sql, params).await,
        }
    }
}

/// Reads typed values out of a [`Row`], with errors that name the table, column and row.
pub(crate) struct RowReader<'a> {
    row: &'a Row,
    table: &'static str,
    key: String,
    location: &'a str,
}

impl<'a> RowReader<'a> {
    /// A reader whose errors name the row by the values of `key_columns`.
    pub(crate) fn new(
        row: &'a Row,
        table: &'static str,
        key_columns: &[&str],
        location: &'a str,
    ) -> RowReader<'a> {
        let key = key_columns
            .iter()
            .map(|c| {
                let v = row
                    .names
                    .iter()
                    .position(|n| n == c)
                    .and_then(|i| row.cells.get(i))
                    .map(Cell::show)
                    .unwrap_or_default();
                format!("{c}={v}")
            })
            .collect::<Vec<_>>()
            .join(", ");
        RowReader {
            row,
            table,
            key,
            location,
        }
    }

    fn cell(&self, column: &str) -> Result<&Cell, StateError> {
        self.row
            .names
            .iter()
            .position(|n| n == column)
            .and_then(|i| self.row.cells.get(i))
            .ok_or_else(|| StateError::Internal {
                location: self.location.to_string(),
                message: format!("query on {} returned no column {column}", self.table),
            })
    }

    /// A stored `value` of `column` in this row that cannot be used, and why.
    pub(crate) fn invalid(
        &self,
        column: &str,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> StateError {
        StateError::corrupt(self.location, self.table, column, &self.key, value, reason)
    }

    fn corrupt(&self, column: &str, cell: &Cell, reason: impl Into<String>) -> StateError {
        self.invalid(column, cell.show(), reason)
    }

    fn required<T>(&self, column: &str, v: Option<T>) -> Result<T, StateError> {
        match v {
            Some(v) => Ok(v),
            None => Err(self.corrupt(column, &Cell::Null, "the column may not be empty")),
        }
    }

    pub(crate) fn opt_text(&self, column: &str) -> Result<Option<String>, StateError> {
        match self.cell(column)? {
            Cell::Null => Ok(None),
            Cell::Text(s) => Ok(Some(s.clone())),
            other => Err(self.corrupt(column, other, "expected text")),
        }
    }

    pub(crate) fn text(&self, column: &str) -> Result<String, StateError> {
        let v = self.opt_text(column)?;
        self.required(column, v)
    }

    pub(crate) fn opt_i64(&self, column: &str) -> Result<Option<i64>, StateError> {
        match self.cell(column)? {
            Cell::Null => Ok(None),
            Cell::Int(v) => Ok(Some(*v)),
            other => Err(self.corrupt(column, other, "expected an integer")),
        }
    }

    pub(crate) fn i64(&self, column: &str) -> Result<i64, StateError> {
        let v = self.opt_i64(column)?;
        self.required(column, v)
    }

    pub(crate) fn f64(&self, column: &str) -> Result<f64, StateError> {
        match self.cell(column)? {
            Cell::Real(v) => Ok(*v),
            Cell::Int(v) => Ok(*v as f64),
            other => Err(self.corrupt(column, other, "expected a number")),
        }
    }

    pub(crate) fn opt_u64(&self, column: &str) -> Result<Option<u64>, StateError> {
        match self.opt_i64(column)? {
            None => Ok(None),
            Some(v) => u64::try_from(v)
                .map(Some)
                .map_err(|_| self.corrupt(column, &Cell::Int(v), "expected a count (0 or more)")),
        }
    }

    pub(crate) fn u64(&self, column: &str) -> Result<u64, StateError> {
        let v = self.opt_u64(column)?;
        self.required(column, v)
    }

    pub(crate) fn u32(&self, column: &str) -> Result<u32, StateError> {
        let v = self.i64(column)?;
        u32::try_from(v)
            .map_err(|_| self.corrupt(column, &Cell::Int(v), "expected a number from 0 to 2^32-1"))
    }

    pub(crate) fn bool(&self, column: &str) -> Result<bool, StateError> {
        match self.cell(column)? {
            Cell::Bool(b) => Ok(*b),
            Cell::Int(0) => Ok(false),
            Cell::Int(1) => Ok(true),
            other => Err(self.corrupt(column, other, "expected a boolean")),
        }
    }

    pub(crate) fn opt_time(&self, column: &str) -> Result<Option<DateTime<Utc>>, StateError> {
        match self.cell(column)? {
            Cell::Null => Ok(None),
            Cell::Time(t) => Ok(Some(*t)),
            cell @ Cell::Text(s) => parse_time(s)
                .map(Some)
                .map_err(|reason| self.corrupt(column, cell, reason)),
            other => Err(self.corrupt(column, other, "expected a time")),
        }
    }

    pub(crate) fn time(&self, column: &str) -> Result<DateTime<Utc>, StateError> {
        let v = self.opt_time(column)?;
        self.required(column, v)
    }

    pub(crate) fn json(&self, column: &str) -> Result<serde_json::Value, StateError> {
        match self.cell(column)? {
            Cell::Json(v) => Ok(v.clone()),
            cell @ Cell::Text(s) => serde_json::from_str(s)
                .map_err(|e| self.corrupt(column, cell, format!("not JSON: {e}"))),
            other => Err(self.corrupt(column, other, "expected JSON")),
        }
    }
}

/// Rewrite `$1`-style placeholders as SQLite's `?1`.
pub(crate) fn sqlite_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(|n| n.is_ascii_digit()) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_rewritten() {
        assert_eq!(
            sqlite_placeholders("SELECT $1, '$x', $12 FROM t WHERE a = $2"),
            "SELECT ?1, '$x', ?12 FROM t WHERE a = ?2"
        );
    }

    #[test]
    fn stored_times_sort_as_text() {
        let a = parse_time("2025-01-02T03:04:05.000001Z").unwrap_or_default();
        let b = parse_time("2025-01-02T03:04:05.1+00:00").unwrap_or_default();
        assert!(format_time(a) < format_time(b));
        assert_eq!(format_time(b), "2025-01-02T03:04:05.100000Z");
        assert!(parse_time("yesterday").is_err());
    }
}
