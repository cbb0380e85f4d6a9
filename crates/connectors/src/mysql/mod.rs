//! MySQL and MariaDB source: reads a table or a custom query through `mysql_async`'s binary
//! protocol (a prepared statement), streaming rows into Arrow batches.
//!
//! The connection URL is `mysql://user:password@host:port/database` (`mariadb://` works too).
//! TLS is not supported yet: a URL with `require_ssl=true` or `ssl-mode=REQUIRED` (or
//! `VERIFY_CA`/`VERIFY_IDENTITY`) is refused with a configuration error rather than silently
//! connecting in clear text. `ssl-mode=DISABLED`/`PREFERRED` are accepted (plain TCP).
//!
//! Each read is one session: `SET time_zone = '+00:00'`, `SET NAMES utf8mb4`, a long
//! `net_write_timeout` (the server waits while the lake writes), then
//! `START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY` so every batch comes from one
//! consistent view of the data. Rows are pulled one at a time from the server; only the batch
//! being built (plus at most two finished batches in the channel) is in memory.
//!
//! # Type mapping
//!
//! | MySQL / MariaDB type | Arrow type | Delta type | notes |
//! |---|---|---|---|
//! | TINYINT | Int8 | byte | TINYINT(1)/BOOLEAN stays an integer (the metadata cannot tell a flag from a number) |
//! | TINYINT UNSIGNED | Int16 | short | widened |
//! | SMALLINT | Int16 | short | |
//! | SMALLINT UNSIGNED | Int32 | integer | widened |
//! | MEDIUMINT, INT | Int32 | integer | |
//! | MEDIUMINT UNSIGNED, INT UNSIGNED | Int64 | long | widened |
//! | BIGINT | Int64 | long | |
//! | BIGINT UNSIGNED | Decimal128(20,0) | decimal(20,0) | 18446744073709551615 survives |
//! | YEAR | Int16 | short | |
//! | FLOAT | Float32 | float | |
//! | DOUBLE | Float64 | double | |
//! | DECIMAL(p,s), p ≤ 38 | Decimal128(p,s) | decimal(p,s) | exact |
//! | DECIMAL(p,s), p > 38 | — | — | `UnsupportedType`; `cast: {col: text}` loads the exact text |
//! | DATE | Date32 | date | zero dates (`0000-00-00`, zero month/day) → `BadValue` |
//! | DATETIME(n) | Timestamp(µs, none) | timestamp_ntz | wall clock; zero dates → `BadValue` |
//! | TIMESTAMP(n) | Timestamp(µs, "UTC") | timestamp | the instant (the session time zone is UTC) |
//! | TIME(n) | Utf8 | string | `[-]HH:MM:SS[.ffffff]`, hours may exceed 24 |
//! | CHAR, VARCHAR, TEXT family, ENUM, SET | Utf8 | string | invalid UTF-8 → `BadValue` |
//! | JSON | Utf8 | string | text as the server sends it (MariaDB's JSON is LONGTEXT) |
//! | BINARY, VARBINARY, BLOB family | Binary | binary | character set `binary` (63) |
//! | BIT(1) | Boolean | boolean | |
//! | BIT(n), n > 1 | Binary | binary | big-endian bytes, as MySQL sends them |
//! | NULL (a bare `NULL` in a query) | Utf8 | string | all values null |
//! | GEOMETRY | — | — | `UnsupportedType`; `cast: {col: text}` loads well-known text (`POINT(1 2)`) |
//! | anything else | — | — | `UnsupportedType`; cast to text to load it |
//!
//! `cast: { col: text }` selects `CAST(col AS CHAR) AS col`, rendered by the server
//! (`ST_AsText(col)`, well-known text, for GEOMETRY columns, which `CAST` refuses).
//! Incremental reads add `WHERE col >= <cursor>` (inclusive; NULL cursors are not read).

mod parallel;
mod sql;
mod types;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mysql_async::consts::ColumnType;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Params, Row};
use tokio::sync::{mpsc, oneshot};
use tracing::debug;
use tributary_core::arrow::datatypes::{Field, Schema, SchemaRef};
use tributary_core::arrow::record_batch::RecordBatch;
use tributary_core::config::ColumnCast;

use crate::parallel::SqlTable;
use tributary_core::redact::{redact_url, scrub};
use tributary_core::{ErrorClass, ReadRequest, Source, SourceBatch, SourceError, SourceStream};

use crate::util::{DEFAULT_BATCH_SIZE, batch_channel};
use types::{ColumnBuilder, ColumnPlan, Kind};

/// How long connecting (TCP + handshake + login) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Seconds the server waits for us to take more rows before giving up on the read: long,
/// because the consumer may pause while it writes and commits to the lake.
const NET_WRITE_TIMEOUT_SECS: u32 = 3600;

/// MySQL/MariaDB error code for a missing table.
const ER_NO_SUCH_TABLE: u16 = 1146;

/// A MySQL or MariaDB connection. Opening it does not connect; `check` and `read` do, each with
/// its own session.
pub struct MysqlSource {
    inner: Arc<Inner>,
}

struct Inner {
    /// Connection name from `tributary.yaml`.
    name: String,
    /// Parsed options (with the password).
    opts: Opts,
    /// `host:port/database`, for messages.
    target: String,
    /// Values that must never appear in messages (the password, as given and decoded).
    secrets: Vec<String>,
}

impl MysqlSource {
    /// A source for the connection `name` at `url` (`mysql://` or `mariadb://`). Errors when the
    /// URL cannot be parsed or asks for TLS, which is not supported yet.
    pub fn new(name: &str, url: &str) -> Result<Self, SourceError> {
        let config_error = |reason: String| SourceError::Config {
            table: format!("(connection {name})"),
            reason,
        };
        let redacted = redact_url(url);
        let url = match url.strip_prefix("mariadb://") {
            Some(rest) => format!("mysql://{rest}"),
            None => url.to_string(),
        };
        if !url.starts_with("mysql://") {
            return Err(config_error(format!(
                "MySQL URL {redacted} must start with mysql:// or mariadb://"
            )));
        }
        let mut secrets = Vec::new();
        let url = strip_ssl_mode(&url, &redacted).map_err(config_error)?;
        let parsed = url::Url::parse(&url);
        if let Ok(Some(p)) = parsed.as_ref().map(|u| u.password()) {
            secrets.push(p.to_string());
        }
        let opts = Opts::from_url(&url).map_err(|e| {
            config_error(format!(
                "invalid MySQL URL {redacted}: {}",
                scrub(&e.to_string(), &secret_refs(&secrets))
            ))
        })?;
        if let Some(p) = opts.pass() {
            secrets.push(p.to_string());
        }
        if opts.ssl_opts().is_some() {
            return Err(config_error(format!(
                "MySQL URL {redacted} asks for TLS (require_ssl=true), which this connector \
                 does not support yet; use a connection without TLS (e.g. through an SSH \
                 tunnel or on a private network)"
            )));
        }
        let target = format!(
            "{}:{}/{}",
            opts.ip_or_hostname(),
            opts.tcp_port(),
            opts.db_name().unwrap_or("")
        );
        Ok(MysqlSource {
            inner: Arc::new(Inner {
                name: name.to_string(),
                opts,
                target,
                secrets,
            }),
        })
    }
}

fn secret_refs(secrets: &[String]) -> Vec<&str> {
    secrets.iter().map(String::as_str).collect()
}

/// Remove `ssl-mode`-style parameters (which `mysql_async` does not know): accept the modes
/// that allow plain TCP, refuse the ones that require TLS.
fn strip_ssl_mode(url: &str, redacted: &str) -> Result<String, String> {
    let Ok(mut parsed) = url::Url::parse(url) else {
        // Let Opts::from_url produce the parse error.
        return Ok(url.to_string());
    };
    let mut kept: Vec<(String, String)> = Vec::new();
    let mut changed = false;
    for (k, v) in parsed.query_pairs() {
        let key = k.to_ascii_lowercase().replace('_', "-");
        if key == "ssl-mode" || key == "sslmode" {
            changed = true;
            match v.to_ascii_uppercase().as_str() {
                "DISABLED" | "DISABLE" | "PREFERRED" | "PREFER" => {}
                other => {
                    return Err(format!(
                        "MySQL URL {redacted} asks for TLS ({k}={other}), which this connector \
                         does not support yet; use ssl-mode=DISABLED or a connection without TLS"
                    ));
                }
            }
        } else {
            kept.push((k.into_owned(), v.into_owned()));
        }
    }
    if !changed {
        return Ok(url.to_string());
    }
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    Ok(parsed.to_string())
}

/// The server's (or the network's) reason, without secrets.
fn describe(e: &mysql_async::Error, secrets: &[String]) -> String {
    let text = match e {
        mysql_async::Error::Server(s) => {
            format!("{} (error {}, SQLSTATE {})", s.message, s.code, s.state)
        }
        mysql_async::Error::Io(io) => io.to_string(),
        mysql_async::Error::Driver(d) => d.to_string(),
        other => other.to_string(),
    };
    scrub(&text, &secret_refs(secrets))
}

/// The class of a driver error, where it is born: the server's error number when it sent one,
/// else the I/O error under it, else a connection problem (the driver's own errors are about a
/// broken or refused connection), or configuration for a bad URL.
fn error_class(e: &mysql_async::Error) -> ErrorClass {
    match e {
        mysql_async::Error::Server(s) => ErrorClass::of_mysql_code(s.code),
        mysql_async::Error::Io(mysql_async::IoError::Io(io)) => {
            ErrorClass::of_io(io).unwrap_or(ErrorClass::Connection)
        }
        mysql_async::Error::Url(_) => ErrorClass::Config,
        _ => ErrorClass::Connection,
    }
}

impl Inner {
    fn connect_error(&self, reason: String, class: ErrorClass) -> SourceError {
        SourceError::Connect {
            connection: self.name.clone(),
            target: self.target.clone(),
            reason,
            class,
        }
    }

    async fn connect(&self) -> Result<Conn, SourceError> {
        match tokio::time::timeout(CONNECT_TIMEOUT, Conn::new(self.opts.clone())).await {
            Err(_) => Err(self.connect_error(
                format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
                ErrorClass::Timeout,
            )),
            Ok(Err(e)) => Err(self.connect_error(describe(&e, &self.secrets), error_class(&e))),
            Ok(Ok(conn)) => Ok(conn),
        }
    }

    fn query_error(&self, table: &str, e: &mysql_async::Error) -> SourceError {
        let mut reason = describe(e, &self.secrets);
        if let mysql_async::Error::Server(s) = e
            && s.code == ER_NO_SUCH_TABLE
        {
            reason = format!("the table does not exist: {reason}");
        }
        SourceError::Query {
            connection: self.name.clone(),
            table: table.to_string(),
            reason,
            class: error_class(e),
        }
    }
}

#[async_trait]
impl Source for MysqlSource {
    async fn check(&self) -> Result<(), SourceError> {
        let mut conn = self.inner.connect().await?;
        let result: Result<Option<i64>, _> = conn.query_first("SELECT 1").await;
        let _ = conn.disconnect().await;
        match result {
            Ok(Some(1)) => Ok(()),
            Ok(other) => Err(self.inner.connect_error(
                format!("SELECT 1 returned {other:?}"),
                ErrorClass::ServerError,
            )),
            Err(e) => Err(self
                .inner
                .connect_error(describe(&e, &self.inner.secrets), error_class(&e))),
        }
    }

    async fn read(&self, request: ReadRequest) -> Result<SourceStream, SourceError> {
        let (schema_tx, schema_rx) = oneshot::channel();
        let (tx, batches) = batch_channel();
        let inner = Arc::clone(&self.inner);
        let parallel = SqlTable::of(&request.table)?.parallel;
        tokio::spawn(async move {
            let out = Output {
                schema_tx: Some(schema_tx),
                tx,
            };
            match parallel.filter(|p| p.partitions > 1) {
                Some(p) => parallel::produce(inner, Arc::new(request), out, p).await,
                None => produce(&inner, &request, out).await,
            }
        });
        let (schema, key) = schema_rx.await.map_err(|_| {
            SourceError::Internal("the MySQL reader stopped before announcing a schema".into())
        })??;
        Ok(SourceStream::rows_only(schema, batches).with_declared_key(key))
    }
}

/// Where the producer reports: the schema (once), then batches; an error goes to whichever
/// the caller is waiting for.
struct Output {
    schema_tx: Option<crate::util::Announce>,
    tx: mpsc::Sender<Result<SourceBatch, SourceError>>,
}

impl Output {
    /// Another sender of batches (and errors) to the same stream, without the schema.
    fn batches_only(&self) -> Output {
        Output {
            schema_tx: None,
            tx: self.tx.clone(),
        }
    }

    async fn fail(mut self, e: SourceError) {
        match self.schema_tx.take() {
            Some(stx) => {
                let _ = stx.send(Err(e));
            }
            None => {
                let _ = self.tx.send(Err(e)).await;
            }
        }
    }
}

/// Connect, set up the session and stream the rows, until done, an error, or the consumer
/// dropping the stream. Errors are reported before the connection is cleaned up, and the
/// connection is closed in every case.
async fn produce(inner: &Inner, request: &ReadRequest, out: Output) {
    let conn = match inner.connect().await {
        Ok(c) => c,
        Err(e) => return out.fail(e).await,
    };
    read_ranges(inner, request, conn, out, &[None], true).await;
}

/// Read `ranges` (extra `WHERE` predicates; `None` reads everything) one after another on
/// `conn`, starting the session and its snapshot first when `begin`, then close the
/// connection. Errors are reported before the connection is cleaned up.
async fn read_ranges(
    inner: &Inner,
    request: &ReadRequest,
    mut conn: Conn,
    mut out: Output,
    ranges: &[Option<String>],
    begin: bool,
) {
    let mut streaming = false;
    let mut outcome = Ok(true);
    if begin && let Err(e) = begin_snapshot(inner, request, &mut conn).await {
        outcome = Err(e);
    }
    for range in ranges {
        if !matches!(outcome, Ok(true)) {
            break;
        }
        outcome = stream_rows(
            inner,
            request,
            &mut conn,
            &mut out,
            &mut streaming,
            range.as_deref(),
        )
        .await;
    }
    let finished = matches!(outcome, Ok(true));
    match outcome {
        Ok(_) => drop(out),
        Err(e) => out.fail(e).await,
    }
    if finished {
        // End the read-only transaction before leaving.
        if let Err(e) = conn.query_drop("COMMIT").await {
            debug!(error = %describe(&e, &inner.secrets), "Commit of read-only transaction failed.");
        }
    } else if streaming {
        // Rows are still coming: stop the query on the server, or closing the connection
        // would first read (and discard) the rest of the result.
        let id = conn.id();
        if let Ok(mut killer) = inner.connect().await {
            if let Err(e) = killer.query_drop(format!("KILL QUERY {id}")).await {
                debug!(error = %describe(&e, &inner.secrets), "Stopping an abandoned query failed.");
            }
            let _ = killer.disconnect().await;
        }
    }
    if let Err(e) = conn.disconnect().await {
        debug!(error = %describe(&e, &inner.secrets), "Disconnect failed.");
    }
}

/// The primary key columns of table `name` (`db.table` or `table` in the connection's
/// database), in key order; empty without one.
async fn declared_key(conn: &mut Conn, name: &str) -> Result<Vec<String>, mysql_async::Error> {
    let unquote = |s: &str| s.trim_matches('`').to_string();
    let (db, table) = match name.split_once('.') {
        Some((d, t)) => (Some(unquote(d)), unquote(t)),
        None => (None, unquote(name)),
    };
    conn.exec(
        "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE \
         WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? \
         AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION",
        (db, table),
    )
    .await
}

/// The `SELECT` to run and its parameters.
async fn build_query(
    inner: &Inner,
    request: &ReadRequest,
    conn: &mut Conn,
    range: Option<&str>,
) -> Result<(String, Params), SourceError> {
    let table = &request.table;
    let label = table.name.as_str();
    let from = match &table.query {
        Some(q) => format!("({}) AS _t", sql::trim_query(q)),
        None => sql::quote_table(&table.name),
    };
    let select_list = if table.cast.is_empty() {
        "*".to_string()
    } else {
        // The column names, from the statement's metadata (nothing is executed).
        let stmt = conn
            .prep(format!("SELECT * FROM {from}"))
            .await
            .map_err(|e| inner.query_error(label, &e))?;
        let columns: Vec<(String, bool)> = stmt
            .columns()
            .iter()
            .map(|c| {
                let geometry = c.column_type() == ColumnType::MYSQL_TYPE_GEOMETRY;
                (c.name_str().into_owned(), geometry)
            })
            .collect();
        let _ = conn.close(stmt).await;
        for col in table.cast.keys() {
            if !columns.iter().any(|(n, _)| n == col) {
                let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
                return Err(SourceError::Config {
                    table: label.to_string(),
                    reason: format!(
                        "`cast` names column {col}, which is not among the columns read ({})",
                        names.join(", ")
                    ),
                });
            }
        }
        columns
            .iter()
            .map(|(n, geometry)| {
                let q = sql::quote_ident(n);
                match table.cast.get(n) {
                    // CAST(geometry AS CHAR) is not allowed: render well-known text instead.
                    Some(ColumnCast::Text) if *geometry => format!("ST_AsText({q}) AS {q}"),
                    Some(ColumnCast::Text) => format!("CAST({q} AS CHAR) AS {q}"),
                    None => q,
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let bounded = request.since.is_some() || request.until.is_some() || range.is_some();
    let mut sql_text = match (&table.query, select_list.as_str(), bounded) {
        (Some(q), "*", false) => sql::trim_query(q).to_string(),
        _ => format!("SELECT {select_list} FROM {from}"),
    };
    let mut conditions = Vec::new();
    let mut positional = Vec::new();
    for (bound, op) in [(&request.since, ">="), (&request.until, "<")] {
        if let Some((column, value)) = bound {
            let (operand, param) =
                sql::cursor_operand(value).map_err(|reason| SourceError::Config {
                    table: label.to_string(),
                    reason: format!("cursor {column}: {reason}"),
                })?;
            conditions.push(format!("{} {op} {operand}", sql::quote_ident(column)));
            positional.extend(param);
        }
    }
    conditions.extend(range.map(str::to_string));
    if !conditions.is_empty() {
        sql_text.push_str(" WHERE ");
        sql_text.push_str(&conditions.join(" AND "));
    }
    let params = if positional.is_empty() {
        Params::Empty
    } else {
        Params::Positional(positional)
    };
    Ok((sql_text, params))
}

/// The session settings of every reading connection.
async fn session_settings(
    inner: &Inner,
    request: &ReadRequest,
    conn: &mut Conn,
) -> Result<(), SourceError> {
    let label = request.table.name.as_str();
    for stmt in [
        "SET time_zone = '+00:00'",
        "SET NAMES utf8mb4",
        &*format!("SET SESSION net_write_timeout = {NET_WRITE_TIMEOUT_SECS}"),
    ] {
        conn.query_drop(stmt)
            .await
            .map_err(|e| inner.query_error(label, &e))?;
    }
    Ok(())
}

/// Session settings, then a read-only transaction with a consistent snapshot.
async fn begin_snapshot(
    inner: &Inner,
    request: &ReadRequest,
    conn: &mut Conn,
) -> Result<(), SourceError> {
    session_settings(inner, request, conn).await?;
    conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        .await
        .map_err(|e| inner.query_error(&request.table.name, &e))
}

/// Run the read of one range. `Ok(true)` when every row was sent, `Ok(false)` when the
/// consumer went away.
async fn stream_rows(
    inner: &Inner,
    request: &ReadRequest,
    conn: &mut Conn,
    out: &mut Output,
    streaming: &mut bool,
    range: Option<&str>,
) -> Result<bool, SourceError> {
    let label = request.table.name.as_str();
    let query_err = |e: mysql_async::Error| inner.query_error(label, &e);
    // The table's declared key, announced with the schema (before the rows stream).
    let key = match (&out.schema_tx, &request.table.query) {
        (Some(_), None) => Some(declared_key(conn, label).await.map_err(query_err)?),
        _ => None,
    };
    let (sql_text, params) = build_query(inner, request, conn, range).await?;
    debug!(connection = %inner.name, table = %label, sql = %sql_text, "Reading MySQL table.");

    let mut result = conn
        .exec_iter(sql_text.as_str(), params)
        .await
        .map_err(query_err)?;
    *streaming = true;
    let columns = result.columns().unwrap_or_else(|| Arc::from(Vec::new()));
    if columns.is_empty() {
        return Err(SourceError::Query {
            connection: inner.name.clone(),
            table: label.to_string(),
            reason: "the statement returned no result set; a custom query must be a SELECT".into(),
            class: ErrorClass::Config,
        });
    }
    let plans = columns
        .iter()
        .map(|c| types::plan_column(label, c))
        .collect::<Result<Vec<ColumnPlan>, _>>()?;
    let schema: SchemaRef = Arc::new(Schema::new(
        plans
            .iter()
            .map(|p| Field::new(&p.name, p.kind.data_type(), true))
            .collect::<Vec<_>>(),
    ));
    if let Some(stx) = out.schema_tx.take()
        && stx.send(Ok((Arc::clone(&schema), key))).is_err()
    {
        return Ok(false);
    }

    let batch_size = if request.batch_size == 0 {
        DEFAULT_BATCH_SIZE
    } else {
        request.batch_size
    };
    let origin: Arc<str> = Arc::from(format!("{}:{}", inner.name, label));
    let kinds: Vec<Kind> = plans.iter().map(|p| p.kind).collect();
    let new_builders = || {
        kinds
            .iter()
            .map(|k| ColumnBuilder::new(*k, batch_size))
            .collect::<Result<Vec<_>, _>>()
    };
    let mut builders = new_builders()?;
    let mut rows = 0usize;
    let mut total = 0u64;
    loop {
        let row: Option<Row> = result.next().await.map_err(query_err)?;
        let Some(row) = row else { break };
        for (i, (builder, plan)) in builders.iter_mut().zip(&plans).enumerate() {
            builder
                .append(plan.kind, row.as_ref(i))
                .map_err(|r| SourceError::BadValue {
                    table: label.to_string(),
                    column: plan.name.clone(),
                    source_type: plan.source_type.clone(),
                    value: r.value,
                    reason: r.reason,
                })?;
        }
        rows += 1;
        if rows == batch_size {
            total += rows as u64;
            let batch = finish_batch(&schema, &mut builders)?;
            debug!(connection = %inner.name, table = %label, rows, total, "Read batch.");
            rows = 0;
            let sent = out.tx.send(Ok(SourceBatch {
                batch,
                origin: Arc::clone(&origin),
            }));
            if sent.await.is_err() {
                return Ok(false);
            }
        }
    }
    drop(result);
    *streaming = false;
    if rows > 0 {
        total += rows as u64;
        let batch = finish_batch(&schema, &mut builders)?;
        debug!(connection = %inner.name, table = %label, rows, total, "Read batch.");
        if out
            .tx
            .send(Ok(SourceBatch {
                batch,
                origin: Arc::clone(&origin),
            }))
            .await
            .is_err()
        {
            return Ok(false);
        }
    }
    debug!(connection = %inner.name, table = %label, rows = total, "Read complete.");
    Ok(true)
}

fn finish_batch(
    schema: &SchemaRef,
    builders: &mut [ColumnBuilder],
) -> Result<RecordBatch, SourceError> {
    let arrays = builders.iter_mut().map(ColumnBuilder::finish).collect();
    RecordBatch::try_new(Arc::clone(schema), arrays)
        .map_err(|e| SourceError::Internal(format!("assembling a MySQL batch: {e}")))
}

/// A `type: mysql` connection (MySQL or MariaDB).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlConnection {
    /// `mysql://user:password@host:port/database`; put the password in the environment.
    pub url: String,
}

impl MysqlConnection {
    fn problems(&self) -> Vec<(String, String)> {
        let url = self.url.trim();
        if crate::registry::known(url)
            && !(url.starts_with("mysql://") || url.starts_with("mariadb://"))
        {
            return vec![(
                "url".into(),
                "a mysql url starts with mysql:// (mysql://user:password@host:3306/database)"
                    .into(),
            )];
        }
        Vec::new()
    }
}

/// The Mysql connector's registration (`type: mysql`).
pub(crate) struct Registration;

/// The Mysql connector, as [`crate::registry::connectors`] lists it.
pub(crate) static CONNECTOR: Registration = Registration;

impl crate::registry::Connector for Registration {
    fn kind(&self) -> &'static str {
        "mysql"
    }
    fn table_keys(&self) -> &'static [&'static str] {
        &crate::parallel::KEYS
    }
    fn connection_problems(
        &self,
        conn: &tributary_core::config::ConnectionConfig,
    ) -> Vec<(String, String)> {
        crate::registry::connection_problems_of(conn, MysqlConnection::problems)
    }
    fn table_problems(&self, table: &tributary_core::config::TableConfig) -> Vec<(String, String)> {
        let mut out = crate::parallel::SqlTable::problems(table);
        out.extend(crate::registry::on_error_problem(table));
        out
    }
    fn open(
        &self,
        name: &str,
        conn: &tributary_core::config::ConnectionConfig,
        _project_root: &std::path::Path,
    ) -> Result<Box<dyn Source>, SourceError> {
        let c: MysqlConnection = crate::registry::connection_options(name, conn)?;
        Ok(Box::new(MysqlSource::new(name, &c.url)?))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config_reason(r: Result<MysqlSource, SourceError>) -> String {
        match r {
            Err(SourceError::Config { reason, .. }) => reason,
            Err(other) => panic!("expected a Config error, got {other}"),
            Ok(_) => panic!("expected a Config error"),
        }
    }

    #[test]
    fn urls() {
        let s = MysqlSource::new("erp", "mariadb://app:s3cret@db.example:3307/shop").unwrap();
        assert_eq!(s.inner.target, "db.example:3307/shop");
        let s = MysqlSource::new("erp", "mysql://app@db/shop?ssl-mode=DISABLED").unwrap();
        assert_eq!(s.inner.target, "db:3306/shop");

        let r = config_reason(MysqlSource::new(
            "erp",
            "mysql://app:s3cret@db/x?require_ssl=true",
        ));
        assert!(r.contains("TLS") && !r.contains("s3cret"), "{r}");
        let r = config_reason(MysqlSource::new(
            "erp",
            "mysql://app:s3cret@db/x?ssl-mode=REQUIRED",
        ));
        assert!(r.contains("TLS") && !r.contains("s3cret"), "{r}");
        let r = config_reason(MysqlSource::new("erp", "mysql://app:s3cret@db/x?bogus=1"));
        assert!(r.contains("bogus") && !r.contains("s3cret"), "{r}");
        let r = config_reason(MysqlSource::new("erp", "postgres://app:s3cret@db/x"));
        assert!(r.contains("mysql://") && !r.contains("s3cret"), "{r}");
    }
}
