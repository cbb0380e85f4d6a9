//! Reading through ODBC (feature `odbc`): the session, the plan of each column and the fetch.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arrow_odbc::odbc_api::parameter::{InputParameter, VarCharBox, WithDataType};
use arrow_odbc::odbc_api::sys::{Date, Timestamp};
use arrow_odbc::odbc_api::{
    ColumnDescription, Connection, ConnectionOptions, Cursor, DataType as OdbcType,
    ResultSetMetadata,
};
use arrow_odbc::{OdbcReaderBuilder, odbc_api};
use async_trait::async_trait;
use chrono::{Datelike, Timelike};
use tokio::sync::{mpsc, oneshot};
use tracing::debug;
use tributary_core::arrow::datatypes::{Field, Schema, SchemaRef};
use tributary_core::arrow::error::ArrowError;
use tributary_core::arrow::record_batch::RecordBatch;
use tributary_core::config::ColumnCast;
use tributary_core::cursor::{CursorValue, format_decimal};
use tributary_core::redact::{odbc_secret_values, redact_odbc, scrub};
use tributary_core::{ErrorClass, ReadRequest, Source, SourceBatch, SourceError, SourceStream};

use super::convert;
use super::plan::{self, ColumnPlan, Dialect, SourceColumn};
use crate::postgres::sql::{split_table_name, trim_query};
use crate::util::{DEFAULT_BATCH_SIZE, batch_channel};

/// Default for a connection's `max_value_bytes`: the longest text or binary value of a column
/// whose driver reports no smaller bound.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 1 << 20;
/// Default for a connection's `max_batch_bytes`: the fetch buffer's upper bound.
pub const DEFAULT_MAX_BATCH_BYTES: usize = 256 << 20;
/// How long logging in may take.
const LOGIN_TIMEOUT_SECS: u32 = 30;

/// An ODBC connection. Opening it does not connect; [`Source::check`] and [`Source::read`] do,
/// each with its own session.
pub struct OdbcSource {
    inner: Arc<Inner>,
}

struct Inner {
    /// Connection name from `tributary.yaml`.
    name: String,
    /// The connection string, secrets included.
    connection_string: String,
    /// The connection string with secret values replaced by `***`, for messages.
    target: String,
    /// Secret values to scrub from driver messages.
    secrets: Vec<String>,
    max_value_bytes: usize,
    max_batch_bytes: usize,
}

impl std::fmt::Debug for OdbcSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OdbcSource")
            .field("name", &self.inner.name)
            .field("target", &self.inner.target)
            .finish_non_exhaustive()
    }
}

impl OdbcSource {
    /// A source for connection `name` with an ODBC connection string; `None` limits take the
    /// defaults ([`DEFAULT_MAX_VALUE_BYTES`], [`DEFAULT_MAX_BATCH_BYTES`]). Fails on an empty
    /// connection string; everything else is up to the driver manager when connecting.
    pub fn new(
        name: &str,
        connection_string: &str,
        max_value_bytes: Option<usize>,
        max_batch_bytes: Option<usize>,
    ) -> Result<Self, SourceError> {
        if connection_string.trim().is_empty() {
            return Err(SourceError::Config {
                table: format!("(connection {name})"),
                reason: "the ODBC connection string is empty; name a driver or a data source, \
                         e.g. `Driver={ODBC Driver 18 for SQL Server};Server=…` or `DSN=erp;`"
                    .into(),
            });
        }
        Ok(OdbcSource {
            inner: Arc::new(Inner {
                name: name.to_string(),
                connection_string: connection_string.to_string(),
                target: redact_odbc(connection_string),
                secrets: odbc_secret_values(connection_string),
                max_value_bytes: max_value_bytes.unwrap_or(DEFAULT_MAX_VALUE_BYTES).max(1),
                max_batch_bytes: max_batch_bytes.unwrap_or(DEFAULT_MAX_BATCH_BYTES).max(1),
            }),
        })
    }
}

impl Inner {
    fn scrub(&self, message: &str) -> String {
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        scrub(message, &secrets)
    }

    /// What the driver manager or driver said: the diagnostic message with its SQLSTATE,
    /// secrets removed.
    fn describe(&self, e: &odbc_api::Error) -> String {
        let text = match e {
            odbc_api::Error::Diagnostics { record, .. } => format!(
                "{} (SQLSTATE {})",
                String::from_utf8_lossy(&record.message).trim(),
                record.state.as_str()
            ),
            other => other.to_string(),
        };
        self.scrub(&text)
    }

    fn connect_error(&self, reason: String, class: ErrorClass) -> SourceError {
        SourceError::Connect {
            connection: self.name.clone(),
            target: self.target.clone(),
            reason: self.scrub(&reason),
            class,
        }
    }

    fn query_error(&self, table: &str, reason: String, class: ErrorClass) -> SourceError {
        SourceError::Query {
            connection: self.name.clone(),
            table: table.to_string(),
            reason: self.scrub(&reason),
            class,
        }
    }

    /// Connect and log in.
    fn connect(&self) -> Result<Connection<'static>, SourceError> {
        let env = odbc_api::environment().map_err(|e| {
            self.connect_error(
                format!(
                    "cannot set up the ODBC driver manager (is unixODBC installed?): {}",
                    self.describe(&e)
                ),
                ErrorClass::Config,
            )
        })?;
        let options = ConnectionOptions {
            login_timeout_sec: Some(LOGIN_TIMEOUT_SECS),
            packet_size: None,
        };
        env.connect_with_connection_string(&self.connection_string, options)
            .map_err(|e| {
                let mut reason = self.describe(&e);
                let mut class = error_class(&e);
                if let odbc_api::Error::Diagnostics { record, .. } = &e
                    && matches!(record.state.as_str(), "IM002" | "IM003" | "01000")
                {
                    reason.push_str(
                        "; `odbcinst -q -d` lists the installed drivers and `odbcinst -q -s` \
                         the data sources",
                    );
                    class = ErrorClass::Config;
                }
                self.connect_error(reason, class)
            })
    }

    /// `validate --connections`: connect, then the DBMS name and version.
    fn check(&self) -> Result<String, SourceError> {
        let conn = self.connect()?;
        let dbms = conn
            .database_management_system_name()
            .map_err(|e| self.connect_error(self.describe(&e), error_class(&e)))?;
        let version = Dialect::of(&dbms)
            .version_query()
            .and_then(|q| query_text(&conn, q).ok().flatten());
        Ok(match version {
            Some(v) => {
                let v = crate::util::truncate_value(v.lines().next().unwrap_or_default().trim());
                if v.to_ascii_lowercase().contains(&dbms.to_ascii_lowercase()) {
                    v
                } else {
                    format!("{dbms} {v}")
                }
            }
            None => dbms,
        })
    }
}

/// The first column of the first row of a query, as text.
fn query_text(conn: &Connection<'_>, sql: &str) -> Result<Option<String>, odbc_api::Error> {
    let Some(mut cursor) = conn.execute(sql, (), None)? else {
        return Ok(None);
    };
    let Some(mut row) = cursor.next_row()? else {
        return Ok(None);
    };
    let mut buf = Vec::new();
    Ok(row
        .get_text(1, &mut buf)?
        .then(|| String::from_utf8_lossy(&buf).into_owned()))
}

#[async_trait]
impl Source for OdbcSource {
    async fn check(&self) -> Result<(), SourceError> {
        self.check_detail().await.map(|_| ())
    }

    async fn check_detail(&self) -> Result<Option<String>, SourceError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || inner.check())
            .await
            .map_err(|e| SourceError::Internal(format!("the ODBC check stopped: {e}")))?
            .map(Some)
    }

    async fn read(&self, request: ReadRequest) -> Result<SourceStream, SourceError> {
        let (schema_tx, schema_rx) = oneshot::channel();
        let (tx, batches) = batch_channel();
        let inner = Arc::clone(&self.inner);
        let watcher_tx = tx.clone();
        let reader = tokio::task::spawn_blocking(move || {
            let mut out = Output {
                schema_tx: Some(schema_tx),
                tx,
            };
            produce(&inner, &request, &mut out);
        });
        // A panic in the driver or in arrow-odbc must not look like the end of the table.
        tokio::spawn(async move {
            if let Err(e) = reader.await {
                let _ = watcher_tx
                    .send(Err(SourceError::Internal(format!(
                        "the ODBC reader stopped unexpectedly: {e}"
                    ))))
                    .await;
            }
        });
        match schema_rx.await {
            Ok(Ok(schema)) => Ok(SourceStream::rows_only(schema, batches)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(SourceError::Internal(
                "the ODBC reader stopped before reporting the schema".into(),
            )),
        }
    }
}

type BatchSender = mpsc::Sender<Result<SourceBatch, SourceError>>;

/// Where the reader reports: the schema (once), then batches; an error goes to whichever the
/// caller is waiting for.
struct Output {
    schema_tx: Option<oneshot::Sender<Result<SchemaRef, SourceError>>>,
    tx: BatchSender,
}

impl Output {
    fn fail(&mut self, e: SourceError) {
        match self.schema_tx.take() {
            Some(stx) => {
                let _ = stx.send(Err(e));
            }
            None => {
                let _ = self.tx.blocking_send(Err(e));
            }
        }
    }
}

/// The reading thread: connect, read, end the transaction in every case, report.
fn produce(inner: &Inner, request: &ReadRequest, out: &mut Output) {
    let conn = match inner.connect() {
        Ok(c) => c,
        Err(e) => return out.fail(e),
    };
    let mut manual_commit = false;
    let outcome = read_rows(inner, request, &conn, out, &mut manual_commit);
    if manual_commit {
        // Read only: committing and rolling back end the snapshot alike.
        let end = if matches!(outcome, Ok(true)) {
            conn.commit()
        } else {
            conn.rollback()
        };
        if let Err(e) = end {
            debug!(connection = %inner.name, error = %inner.describe(&e), "Ending the ODBC read transaction failed.");
        }
    }
    if let Err(e) = outcome {
        out.fail(e);
    }
}

/// The quoted form of an identifier with the driver's quote character.
fn quote(name: &str, q: char) -> String {
    let doubled = name.replace(q, &format!("{q}{q}"));
    format!("{q}{doubled}{q}")
}

/// Set up, describe, plan, query and stream. `Ok(true)`: every row was sent; `Ok(false)`: the
/// consumer went away.
fn read_rows(
    inner: &Inner,
    request: &ReadRequest,
    conn: &Connection<'_>,
    out: &mut Output,
    manual_commit: &mut bool,
) -> Result<bool, SourceError> {
    let table = &request.table;
    let label = table.name.as_str();
    let query_err =
        |e: odbc_api::Error| inner.query_error(label, inner.describe(&e), error_class(&e));

    let dbms = conn.database_management_system_name().map_err(query_err)?;
    let dialect = Dialect::of(&dbms);
    let q = conn
        .identifier_quote_char()
        .ok()
        .flatten()
        .filter(|c| !c.is_whitespace())
        .unwrap_or('"');
    for statement in dialect.session_setup() {
        conn.execute(statement, (), None).map_err(query_err)?;
    }

    let (from, parts) = match &table.query {
        Some(query) => (format!("({}) _t", trim_query(query)), None),
        None => {
            let parts = split_table_name(label).map_err(|reason| SourceError::Config {
                table: label.to_string(),
                reason,
            })?;
            let from = parts
                .iter()
                .map(|p| quote(p, q))
                .collect::<Vec<_>>()
                .join(".");
            (from, Some(parts))
        }
    };
    let type_names = match &parts {
        Some(parts) => catalog_type_names(inner, conn, parts),
        None => HashMap::new(),
    };

    // Describe the result before reading it.
    let probe = match &table.query {
        Some(query) => trim_query(query).to_string(),
        None => format!("SELECT * FROM {from}"),
    };
    let columns = describe(conn, &probe).map_err(|e| {
        let reason = inner.describe(&e);
        let missing = matches!(&e, odbc_api::Error::Diagnostics { record, .. }
            if matches!(record.state.as_str(), "42S02" | "42P01"));
        if missing && table.query.is_none() {
            inner.query_error(
                label,
                format!(
                    "table {label} does not exist on connection {} or the user cannot see it \
                     (write schema.table as the database spells it; quote mixed-case names \
                     with \"…\"): {reason}",
                    inner.name
                ),
                ErrorClass::Config,
            )
        } else {
            inner.query_error(label, reason, error_class(&e))
        }
    })?;
    let mut columns = columns;
    for c in &mut columns {
        c.type_name = type_names.get(&c.name).cloned();
    }
    if columns.is_empty() {
        return Err(inner.query_error(
            label,
            "the statement returns no result set; a custom query must be a SELECT".into(),
            ErrorClass::Config,
        ));
    }
    let casts: BTreeSet<&str> = table
        .cast
        .iter()
        .filter(|(_, c)| matches!(c, ColumnCast::Text))
        .map(|(n, _)| n.as_str())
        .collect();
    if let Some(missing) = casts
        .iter()
        .find(|c| !columns.iter().any(|col| col.name == **c))
    {
        return Err(SourceError::Config {
            table: label.to_string(),
            reason: format!(
                "`cast` names column {missing}, which is not among the columns read ({})",
                columns
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    let plans = columns
        .iter()
        .map(|c| plan::plan_column(dialect, label, c, casts.contains(c.name.as_str())))
        .collect::<Result<Vec<ColumnPlan>, _>>()?;

    // The SELECT.
    let rendered = plans.iter().any(|p| p.rendered);
    let bounded = request.since.is_some() || request.until.is_some();
    let select_list = if rendered {
        plans
            .iter()
            .zip(&columns)
            .map(|(p, c)| {
                let qc = quote(&p.name, q);
                let rendered = p.rendered.then(|| dialect.render_text(&qc, c)).flatten();
                match rendered {
                    Some(r) => format!("{r} AS {qc}"),
                    None => qc,
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        "*".to_string()
    };
    let mut sql = match (&table.query, rendered || bounded) {
        (Some(query), false) => trim_query(query).to_string(),
        _ => format!("SELECT {select_list} FROM {from}"),
    };
    let mut conditions = Vec::new();
    let mut params: Vec<Box<dyn InputParameter>> = Vec::new();
    for (bound, op) in [(&request.since, ">="), (&request.until, "<")] {
        if let Some((column, value)) = bound {
            conditions.push(format!("{} {op} ?", quote(column, q)));
            params.push(
                cursor_parameter(value).map_err(|reason| SourceError::Config {
                    table: label.to_string(),
                    reason: format!("cursor {column}: {reason}"),
                })?,
            );
        }
    }
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    debug!(connection = %inner.name, table = %label, dbms = %dbms, sql = %sql, "Reading ODBC table.");

    if let Some(statement) = dialect.snapshot_statement() {
        conn.set_autocommit(false).map_err(query_err)?;
        *manual_commit = true;
        conn.execute(statement, (), None).map_err(query_err)?;
    }
    let cursor = conn
        .execute(&sql, &params[..], None)
        .map_err(query_err)?
        .ok_or_else(|| {
            inner.query_error(
                label,
                "the statement returns no result set; a custom query must be a SELECT".into(),
                ErrorClass::Config,
            )
        })?;

    let schema: SchemaRef = Arc::new(Schema::new(
        plans
            .iter()
            .map(|p| Field::new(&p.name, p.kind.data_type(), true))
            .collect::<Vec<_>>(),
    ));
    let fetch_schema = Arc::new(Schema::new(
        plans
            .iter()
            .map(|p| Field::new(&p.name, p.kind.fetch_type(), true))
            .collect::<Vec<_>>(),
    ));
    let batch_size = if request.batch_size == 0 {
        DEFAULT_BATCH_SIZE
    } else {
        request.batch_size
    };
    let reader = OdbcReaderBuilder::new()
        .with_schema(fetch_schema)
        .with_max_num_rows_per_batch(batch_size)
        .with_max_bytes_per_batch(inner.max_batch_bytes)
        .with_max_text_size(inner.max_value_bytes)
        .with_max_binary_size(inner.max_value_bytes)
        .with_fallibale_allocations(true)
        .build(cursor)
        .map_err(|e| {
            inner.query_error(
                label,
                format!(
                    "{e} (the connection's `max_batch_bytes` is {}, `max_value_bytes` {})",
                    inner.max_batch_bytes, inner.max_value_bytes
                ),
                ErrorClass::Config,
            )
        })?;
    if let Some(stx) = out.schema_tx.take()
        && stx.send(Ok(Arc::clone(&schema))).is_err()
    {
        return Ok(false);
    }

    let origin: Arc<str> = Arc::from(format!("{}:{}", inner.name, label));
    let mut total = 0u64;
    for fetched in reader {
        let fetched = fetched.map_err(|e| fetch_error(inner, label, &plans, e))?;
        let arrays = plans
            .iter()
            .zip(fetched.columns())
            .map(|(p, a)| {
                convert::convert(p.kind, a).map_err(|r| SourceError::BadValue {
                    table: label.to_string(),
                    column: p.name.clone(),
                    source_type: p.source_type.clone(),
                    value: r.value,
                    reason: r.reason,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let batch = RecordBatch::try_new(Arc::clone(&schema), arrays)
            .map_err(|e| SourceError::Internal(format!("assembling an ODBC batch: {e}")))?;
        total += batch.num_rows() as u64;
        debug!(connection = %inner.name, table = %label, rows = batch.num_rows(), total, "Read batch.");
        let item = SourceBatch {
            batch,
            origin: Arc::clone(&origin),
        };
        if out.tx.blocking_send(Ok(item)).is_err() {
            debug!(table = %label, "Reader dropped; stopping the ODBC read.");
            return Ok(false);
        }
    }
    debug!(connection = %inner.name, table = %label, rows = total, "Read complete.");
    Ok(true)
}

/// An error while fetching: a value longer than its buffer names the column; anything else
/// is the driver's message.
fn fetch_error(inner: &Inner, label: &str, plans: &[ColumnPlan], e: ArrowError) -> SourceError {
    if let ArrowError::ExternalError(source) = &e
        && let Some(odbc) = source.downcast_ref::<odbc_api::Error>()
    {
        if let odbc_api::Error::TooLargeValueForBuffer {
            indicator,
            buffer_index,
        } = odbc
        {
            let column = plans
                .get(*buffer_index)
                .map(|p| p.name.as_str())
                .unwrap_or("?");
            let size = indicator
                .map(|n| format!("{n} bytes"))
                .unwrap_or_else(|| "of unknown length".into());
            return inner.query_error(
                label,
                format!(
                    "column {column}: a value {size} is longer than the driver declares for the \
                     column (or than the connection's `max_value_bytes`, {}); raise \
                     `max_value_bytes`, or the driver's own limit (psqlODBC: `MaxVarcharSize`, \
                     `MaxLongVarcharSize`)",
                    inner.max_value_bytes
                ),
                ErrorClass::Data,
            );
        }
        return inner.query_error(label, inner.describe(odbc), error_class(odbc));
    }
    inner.query_error(label, e.to_string(), ErrorClass::Data)
}

/// The class of a driver error, where it is born: the diagnostic record's SQLSTATE (ODBC
/// drivers report the standard's codes: 08xxx connection, 28000 credentials, 42S02 a missing
/// table, HYT00 a timeout), else a connection problem.
fn error_class(e: &odbc_api::Error) -> ErrorClass {
    match e {
        odbc_api::Error::Diagnostics { record, .. } => {
            ErrorClass::of_sqlstate(record.state.as_str())
        }
        _ => ErrorClass::Connection,
    }
}

/// Describe the result of `sql` (prepared, not executed).
fn describe(conn: &Connection<'_>, sql: &str) -> Result<Vec<SourceColumn>, odbc_api::Error> {
    let mut prepared = conn.prepare(sql)?;
    let n = u16::try_from(prepared.num_result_cols()?.max(0)).unwrap_or(0);
    let mut columns = Vec::with_capacity(usize::from(n));
    for i in 1..=n {
        let mut desc = ColumnDescription::default();
        prepared.describe_col(i, &mut desc)?;
        let name = String::from_utf8_lossy(&desc.name).into_owned();
        let unsigned = prepared.column_is_unsigned(i).unwrap_or(false);
        columns.push(SourceColumn {
            name,
            odbc_type: desc.data_type,
            unsigned,
            type_name: None,
        });
    }
    Ok(columns)
}

/// The catalog's type name of each column of a table (`SQLColumns`), best effort: an empty
/// map when the catalog does not answer or the name matches more than one table.
fn catalog_type_names(
    inner: &Inner,
    conn: &Connection<'_>,
    parts: &[String],
) -> HashMap<String, String> {
    let current = conn.current_catalog().unwrap_or_default();
    // (catalog, schema pattern, table, required schema)
    let candidates: Vec<(String, String, String, Option<String>)> = match parts {
        [c, s, t] => vec![(c.clone(), s.clone(), t.clone(), Some(s.clone()))],
        [s, t] => vec![
            (String::new(), s.clone(), t.clone(), Some(s.clone())),
            // MySQL calls databases catalogs.
            (s.clone(), "%".into(), t.clone(), None),
        ],
        [t] => {
            let mut v = Vec::new();
            if !current.is_empty() {
                v.push((current.clone(), "%".into(), t.clone(), None));
            }
            v.push((String::new(), "%".into(), t.clone(), None));
            v
        }
        _ => Vec::new(),
    };
    for (catalog, schema, table, required_schema) in candidates {
        let rows = match conn.columns(&catalog, &schema, &table, "%") {
            Ok(rows) => rows,
            Err(e) => {
                debug!(connection = %inner.name, table = %table, error = %inner.describe(&e), "Catalog lookup failed.");
                continue;
            }
        };
        let mut found: HashMap<(String, String), HashMap<String, String>> = HashMap::new();
        for row in rows {
            let Ok(row) = row else { break };
            let text = |v: Result<Option<&str>, std::str::Utf8Error>| {
                v.ok().flatten().unwrap_or_default().to_string()
            };
            if text(row.table.as_str()) != table {
                continue;
            }
            let row_schema = text(row.schema.as_str());
            if required_schema.as_ref().is_some_and(|s| *s != row_schema) {
                continue;
            }
            found
                .entry((text(row.catalog.as_str()), row_schema))
                .or_default()
                .insert(text(row.column_name.as_str()), text(row.type_name.as_str()));
        }
        match found.len() {
            0 => continue,
            1 => return found.into_values().next().unwrap_or_default(),
            _ => {
                debug!(connection = %inner.name, table = %table, "Table name matches several tables in the catalog; type names not used.");
                return HashMap::new();
            }
        }
    }
    HashMap::new()
}

/// A cursor value as a bound parameter of the matching SQL type.
fn cursor_parameter(value: &CursorValue) -> Result<Box<dyn InputParameter>, String> {
    let parameter: Box<dyn InputParameter> = match value {
        CursorValue::Int(v) => Box::new(*v),
        CursorValue::Decimal { unscaled, scale } => Box::new(WithDataType::new(
            VarCharBox::from_string(format_decimal(unscaled, *scale)),
            OdbcType::Decimal {
                precision: 38,
                scale: i16::from(*scale),
            },
        )),
        CursorValue::TimestampUtc(micros) | CursorValue::Timestamp(micros) => {
            let t = chrono::DateTime::from_timestamp_micros(*micros)
                .ok_or_else(|| format!("timestamp {micros} µs is out of range"))?
                .naive_utc();
            let year = i16::try_from(t.year())
                .map_err(|_| format!("year {} is out of range", t.year()))?;
            Box::new(WithDataType::new(
                Timestamp {
                    year,
                    month: t.month() as u16,
                    day: t.day() as u16,
                    hour: t.hour() as u16,
                    minute: t.minute() as u16,
                    second: t.second() as u16,
                    fraction: t.nanosecond(),
                },
                OdbcType::Timestamp { precision: 6 },
            ))
        }
        CursorValue::Date(days) => {
            let d = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
                .and_then(|e| e.checked_add_signed(chrono::Duration::days(i64::from(*days))))
                .ok_or_else(|| format!("date {days} days from 1970-01-01 is out of range"))?;
            let year = i16::try_from(d.year())
                .map_err(|_| format!("year {} is out of range", d.year()))?;
            Box::new(Date {
                year,
                month: d.month() as u16,
                day: d.day() as u16,
            })
        }
        CursorValue::Text(s) => Box::new(VarCharBox::from_string(s.clone())),
    };
    Ok(parameter)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn messages_show_the_connection_string_without_secrets() {
        let s = OdbcSource::new(
            "crm",
            "Driver={ODBC Driver 18 for SQL Server};Server=tcp:db,1433;UID=app;PWD=s3cr;et;",
            None,
            None,
        )
        .unwrap();
        assert!(!s.inner.target.contains("s3cr"), "{}", s.inner.target);
        assert!(s.inner.target.contains("ODBC Driver 18 for SQL Server"));
        let e = s
            .inner
            .connect_error("login failed for PWD=s3cr".into(), ErrorClass::Auth)
            .to_string();
        assert!(!e.contains("s3cr"), "{e}");
        assert!(format!("{s:?}").contains("PWD=***"));
        assert!(OdbcSource::new("crm", "  ", None, None).is_err());
    }

    #[test]
    fn identifiers_are_quoted_with_the_drivers_character() {
        assert_eq!(quote("a\"b", '"'), "\"a\"\"b\"");
        assert_eq!(quote("we`ird", '`'), "`we``ird`");
    }

    #[test]
    fn cursor_values_become_typed_parameters() {
        use arrow_odbc::odbc_api::handles::HasDataType;
        let p = cursor_parameter(&CursorValue::Int(5)).unwrap();
        assert_eq!(p.data_type(), OdbcType::BigInt);
        let p = cursor_parameter(&CursorValue::TimestampUtc(1_000_001)).unwrap();
        assert_eq!(p.data_type(), OdbcType::Timestamp { precision: 6 });
        let p = cursor_parameter(&CursorValue::Date(-719_162)).unwrap();
        assert_eq!(p.data_type(), OdbcType::Date);
        let p = cursor_parameter(&CursorValue::Decimal {
            unscaled: "-12345".into(),
            scale: 2,
        })
        .unwrap();
        assert_eq!(
            p.data_type(),
            OdbcType::Decimal {
                precision: 38,
                scale: 2
            }
        );
    }
}
