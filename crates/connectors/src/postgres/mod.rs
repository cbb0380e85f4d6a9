//! PostgreSQL source.
//!
//! Reads a table (or a custom `query`) in one `REPEATABLE READ READ ONLY` transaction, so the
//! whole read is one consistent snapshot, with the session in `TimeZone='UTC'` and
//! `extra_float_digits=3`. Rows stream through `COPY (SELECT …) TO STDOUT (FORMAT binary)`, and
//! every value is decoded from the stream's bytes straight into Arrow builders (no per-row
//! allocation, no text parsing), `batch_size` rows per batch.
//!
//! A parallel read (`parallel:`, or automatically for large tables with a one-column primary
//! key) splits the table into key ranges at the percentiles of a sample of the column, and
//! reads them over several connections. The first connection exports its snapshot
//! (`pg_export_snapshot()`) and every other one imports it (`SET TRANSACTION SNAPSHOT`) before
//! any row is read, so all ranges come from the same committed state. Connections use no TLS yet: `sslmode=disable` and `sslmode=prefer` work,
//! `sslmode=require` is refused with a clear error.
//!
//! # Type mapping
//!
//! | PostgreSQL type | Arrow type | Delta type | notes |
//! |---|---|---|---|
//! | `boolean` | Boolean | boolean | |
//! | `smallint` (`int2`) | Int16 | short | |
//! | `integer` (`int4`) | Int32 | integer | |
//! | `bigint` (`int8`) | Int64 | long | |
//! | `oid` | Int64 | long | unsigned 32 bits, widened |
//! | `real` (`float4`) | Float32 | float | NaN and ±Infinity kept |
//! | `double precision` (`float8`) | Float64 | double | NaN and ±Infinity kept |
//! | `numeric(p,s)`, p ≤ 38, 0 ≤ s ≤ p | Decimal128(p,s) | decimal(p,s) | exact; NaN/±Infinity → BadValue |
//! | `numeric(p,s)`, p > 38 or s < 0 or s > p | — | — | UnsupportedType (cast to text) |
//! | `numeric` (no precision) | Decimal128(38,9) | decimal(38,9) | values with more than 9 fractional or 29 integer digits → BadValue (cast to text) |
//! | `text`, `varchar(n)`, `char(n)` (`bpchar`), `name`, `"char"`, `citext` | Utf8 | string | every character kept (`char(n)` keeps its padding) |
//! | enum types | Utf8 | string | the label |
//! | `bytea` | Binary | binary | |
//! | `date` | Date32 | date | full range; ±infinity → BadValue |
//! | `timestamp` | Timestamp(µs, None) | timestamp_ntz | wall clock; ±infinity → BadValue |
//! | `timestamptz` | Timestamp(µs, "UTC") | timestamp | the instant in UTC; ±infinity → BadValue |
//! | `time` | Utf8 | string | `HH:MM:SS[.ffffff]` |
//! | `timetz` | Utf8 | string | `HH:MM:SS[.ffffff]+HH[:MM]` |
//! | `uuid` | Utf8 | string | lowercase, hyphenated |
//! | `json` | Utf8 | string | the text as stored |
//! | `jsonb` | Utf8 | string | PostgreSQL's normalized text |
//! | one-dimensional array of any type above | List(element) | array(element) | NULL elements kept; empty arrays are empty lists; more dimensions → BadValue |
//! | domain | as its base type | | the domain's own precision/scale is used |
//! | anything else (`interval`, `money`, `inet`, `point`, ranges, composites, `xml`, …) | — | — | UnsupportedType; `cast: { col: text }` loads PostgreSQL's text rendering |
//!
//! A column listed in the table's `cast:` is selected as `"col"::text` and loaded as Utf8.

mod copy;
mod decode;
pub(crate) mod sql;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deltalake::arrow::datatypes::{Field, Schema, SchemaRef};
use deltalake::arrow::record_batch::RecordBatch;
use futures::TryStreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{Kind as PgKind, Type};
use tokio_postgres::{Client, Config, NoTls, Statement};
use tracing::debug;
use tributary_core::config::ColumnCast;

use crate::parallel::{AUTO_PARALLEL_MIN_ROWS, SqlTable, auto_parallel_partitions};
use tributary_core::redact::{redact_url, scrub};
use tributary_core::{ErrorClass, ReadRequest, Source, SourceBatch, SourceError, SourceStream};

use self::copy::{CopyError, CopyParser};
use self::decode::{Column, Kind, UNCONSTRAINED_NUMERIC};
use crate::util::{DEFAULT_BATCH_SIZE, batch_channel, range_predicates};

/// How long to wait for the TCP connection (unless the URL sets `connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connecting and logging in may take in all.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(30);

/// A PostgreSQL connection, configured from a `postgres://` or `postgresql://` URL (or a
/// `host=… dbname=…` key-value string). Opening does not connect; every [`Source::check`] and
/// [`Source::read`] opens its own connection.
pub struct PostgresSource {
    name: String,
    config: Config,
    /// `host:port/database`, for messages.
    target: String,
    /// The password, to scrub from driver messages.
    password: Option<String>,
}

impl std::fmt::Debug for PostgresSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSource")
            .field("name", &self.name)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl PostgresSource {
    /// Parse the connection URL. Fails (as [`SourceError::Config`]) on a malformed URL and on
    /// `sslmode=require`/`verify-ca`/`verify-full`, since TLS is not supported yet.
    pub fn new(name: &str, url: &str) -> Result<Self, SourceError> {
        let config_error = |reason: String| SourceError::Config {
            table: format!("(connection {name})"),
            reason,
        };
        if let Some(mode) = requested_sslmode(url)
            && matches!(mode.as_str(), "require" | "verify-ca" | "verify-full")
        {
            return Err(config_error(format!(
                "the URL {} asks for sslmode={mode}, but the PostgreSQL connector does not \
                 support TLS yet; use sslmode=disable or sslmode=prefer",
                redact_url(url)
            )));
        }
        let mut config: Config = url.parse().map_err(|e: tokio_postgres::Error| {
            let password = url::Url::parse(url)
                .ok()
                .and_then(|u| u.password().map(str::to_string));
            let reason = scrub(&e.to_string(), &[password.as_deref().unwrap_or("")]);
            config_error(format!(
                "invalid PostgreSQL URL {}: {reason}",
                redact_url(url)
            ))
        })?;
        if config.get_ssl_mode() == SslMode::Require {
            return Err(config_error(format!(
                "the URL {} requires TLS, which the PostgreSQL connector does not support yet; \
                 use sslmode=disable or sslmode=prefer",
                redact_url(url)
            )));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("tributary");
        }
        let password = config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        Ok(PostgresSource {
            name: name.to_string(),
            target: target_of(&config),
            config,
            password,
        })
    }

    fn scrub(&self, message: &str) -> String {
        match &self.password {
            Some(p) => scrub(message, &[p]),
            None => message.to_string(),
        }
    }

    fn connect_error(&self, reason: String, class: ErrorClass) -> SourceError {
        SourceError::Connect {
            connection: self.name.clone(),
            target: self.target.clone(),
            reason: self.scrub(&reason),
            class,
        }
    }

    /// A failed log-in or connection-level statement, classed by the driver's error.
    fn driver_connect_error(&self, e: &tokio_postgres::Error) -> SourceError {
        self.connect_error(error_reason(e), error_class(e))
    }

    /// A failed statement: database errors are about the query; anything else (a dropped
    /// connection) is a connection problem, which may be retried.
    fn statement_error(&self, table: &str, e: &tokio_postgres::Error) -> SourceError {
        if e.as_db_error().is_some() {
            SourceError::Query {
                connection: self.name.clone(),
                table: table.to_string(),
                reason: self.scrub(&error_reason(e)),
                class: error_class(e),
            }
        } else {
            self.driver_connect_error(e)
        }
    }

    /// Connect, log in, and spawn the connection task.
    async fn connect(&self) -> Result<Client, SourceError> {
        let attempt = tokio::time::timeout(LOGIN_TIMEOUT, self.config.connect(NoTls)).await;
        let (client, connection) = match attempt {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => return Err(self.driver_connect_error(&e)),
            Err(_) => {
                return Err(self.connect_error(
                    format!("no answer within {} seconds", LOGIN_TIMEOUT.as_secs()),
                    ErrorClass::Timeout,
                ));
            }
        };
        let name = self.name.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                debug!(connection = %name, error = %e, "PostgreSQL connection ended with an error.");
            }
        });
        Ok(client)
    }

    /// Everything before the first row: session settings, the snapshot (a `REPEATABLE READ
    /// READ ONLY` transaction, left open), the SELECT and the schema.
    async fn start(&self, client: &Client, request: &ReadRequest) -> Result<Prepared, SourceError> {
        let table = request.table.name.as_str();
        client
            .batch_execute(SESSION_SETTINGS)
            .await
            .map_err(|e| self.statement_error(table, &e))?;
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(|e| self.statement_error(table, &e))?;

        let from = match &request.table.query {
            Some(query) => format!("({}) AS _t", sql::trim_query(query)),
            None => sql::qualified_table(table).map_err(|reason| SourceError::Config {
                table: table.to_string(),
                reason,
            })?,
        };
        let casts: Vec<&String> = request
            .table
            .cast
            .iter()
            .filter(|(_, c)| matches!(c, ColumnCast::Text))
            .map(|(name, _)| name)
            .collect();
        let select_list = if casts.is_empty() {
            "*".to_string()
        } else {
            let probe = self
                .prepare(client, request, &format!("SELECT * FROM {from}"))
                .await?;
            let names: Vec<&str> = probe.columns().iter().map(|c| c.name()).collect();
            if let Some(missing) = casts.iter().find(|c| !names.contains(&c.as_str())) {
                return Err(SourceError::Config {
                    table: table.to_string(),
                    reason: format!(
                        "`cast` names column {missing}, which the table does not have (columns: {})",
                        names.join(", ")
                    ),
                });
            }
            names
                .iter()
                .map(|n| {
                    let q = sql::quote_ident(n);
                    if casts.iter().any(|c| c.as_str() == *n) {
                        format!("{q}::text AS {q}")
                    } else {
                        q
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let head = format!("SELECT {select_list} FROM {from}");
        let mut conditions = Vec::new();
        if let Some((column, value)) = &request.since {
            conditions.push(format!(
                "{} >= {}",
                sql::quote_ident(column),
                sql::cursor_literal(value)
            ));
        }
        if let Some((column, value)) = &request.until {
            conditions.push(format!(
                "{} < {}",
                sql::quote_ident(column),
                sql::cursor_literal(value)
            ));
        }
        let select = with_conditions(&head, &conditions, None);
        // Prepared only for its column types: the rows come through COPY.
        let statement = self.prepare(client, request, &select).await?;

        let mut fields = Vec::with_capacity(statement.columns().len());
        let mut kinds = Vec::with_capacity(statement.columns().len());
        let mut columns = Vec::with_capacity(statement.columns().len());
        for column in statement.columns() {
            let kind = if request.cast_for(column.name()).is_some() {
                Kind::Text
            } else {
                self.kind_of(
                    client,
                    table,
                    column.name(),
                    column.type_(),
                    column.type_modifier(),
                )
                .await?
            };
            fields.push(Field::new(column.name(), kind.data_type(), true));
            kinds.push(kind);
            columns.push((
                column.name().to_string(),
                type_name(column.type_(), column.type_modifier()),
            ));
        }
        let schema = Arc::new(Schema::new(fields));
        Ok(Prepared {
            head,
            from,
            conditions,
            kinds,
            columns,
            schema,
            batch_size: if request.batch_size == 0 {
                DEFAULT_BATCH_SIZE
            } else {
                request.batch_size
            },
            origin: Arc::from(format!("{}:{}", self.name, table)),
            table: table.to_string(),
        })
    }

    async fn prepare(
        &self,
        client: &Client,
        request: &ReadRequest,
        select: &str,
    ) -> Result<Statement, SourceError> {
        let table = request.table.name.as_str();
        client.prepare(select).await.map_err(|e| {
            if request.table.query.is_none() && e.code() == Some(&SqlState::UNDEFINED_TABLE) {
                SourceError::Query {
                    connection: self.name.clone(),
                    table: table.to_string(),
                    reason: format!(
                        "table {table} does not exist on connection {} ({}), or the user cannot \
                         see it (names are case-sensitive; write schema.table as in the catalog)",
                        self.name, self.target
                    ),
                    class: ErrorClass::Config,
                }
            } else {
                self.statement_error(table, &e)
            }
        })
    }

    /// How a column of type `ty` (with type modifier `typmod`) is decoded, or the
    /// `UnsupportedType` error naming it.
    async fn kind_of(
        &self,
        client: &Client,
        table: &str,
        column: &str,
        ty: &Type,
        typmod: i32,
    ) -> Result<Kind, SourceError> {
        let unsupported = |reason: String| SourceError::UnsupportedType {
            table: table.to_string(),
            column: column.to_string(),
            source_type: type_name(ty, typmod),
            reason,
        };
        let (base, typmod) = self.strip_domains(client, table, ty, typmod).await?;
        match base.kind() {
            PgKind::Array(element) => {
                let (element, typmod) = self.strip_domains(client, table, element, typmod).await?;
                if matches!(element.kind(), PgKind::Array(_)) {
                    return Err(unsupported("nested array types are not supported".into()));
                }
                let element = simple_kind(&element, typmod).map_err(unsupported)?;
                Ok(Kind::List(Box::new(element)))
            }
            _ => simple_kind(&base, typmod).map_err(unsupported),
        }
    }

    /// The base type of a domain (and the domain's type modifier when the column has none).
    async fn strip_domains(
        &self,
        client: &Client,
        table: &str,
        ty: &Type,
        typmod: i32,
    ) -> Result<(Type, i32), SourceError> {
        let mut ty = ty.clone();
        let mut typmod = typmod;
        while let PgKind::Domain(base) = ty.kind() {
            if typmod == -1 {
                let row = client
                    .query_one(
                        "SELECT typtypmod FROM pg_catalog.pg_type WHERE oid = $1",
                        &[&ty.oid()],
                    )
                    .await
                    .map_err(|e| self.statement_error(table, &e))?;
                typmod = row
                    .try_get(0)
                    .map_err(|e| self.statement_error(table, &e))?;
            }
            ty = base.clone();
        }
        Ok((ty, typmod))
    }
}

/// The session settings of every reading connection.
const SESSION_SETTINGS: &str = "SET TimeZone = 'UTC'; SET extra_float_digits = 3";
/// Tables with more estimated rows than this are sampled (`TABLESAMPLE SYSTEM`) to find the
/// boundaries of a parallel read; smaller ones are read whole for it.
const SAMPLE_ABOVE_ROWS: f64 = 200_000.0;
/// Rows a boundary sample aims for.
const SAMPLE_ROWS: f64 = 50_000.0;

/// What [`PostgresSource::start`] sets up: everything a reader of the table needs, shared by
/// the connections of a parallel read.
struct Prepared {
    /// `SELECT <columns> FROM <table or query>`.
    head: String,
    /// `<table>` or `(<query>) AS _t`.
    from: String,
    /// The since/until conditions.
    conditions: Vec<String>,
    kinds: Vec<Kind>,
    /// Name and PostgreSQL type of every column, for messages.
    columns: Vec<(String, String)>,
    schema: SchemaRef,
    batch_size: usize,
    origin: Arc<str>,
    table: String,
}

/// `head WHERE conditions AND extra`.
fn with_conditions(head: &str, conditions: &[String], extra: Option<&str>) -> String {
    let mut all: Vec<&str> = conditions.iter().map(String::as_str).collect();
    all.extend(extra);
    if all.is_empty() {
        head.to_string()
    } else {
        format!("{head} WHERE {}", all.join(" AND "))
    }
}

#[async_trait]
impl Source for PostgresSource {
    async fn check(&self) -> Result<(), SourceError> {
        let client = self.connect().await?;
        client
            .query_one("SELECT 1", &[])
            .await
            .map_err(|e| self.driver_connect_error(&e))?;
        Ok(())
    }

    async fn read(&self, request: ReadRequest) -> Result<SourceStream, SourceError> {
        let (schema_tx, schema_rx) = oneshot::channel();
        let (tx, batches) = batch_channel();
        let source = Arc::new(self.clone_config());
        tokio::spawn(async move { source.produce(request, schema_tx, tx).await });
        match schema_rx.await {
            Ok(Ok((schema, key))) => {
                Ok(SourceStream::rows_only(schema, batches).with_declared_key(key))
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(SourceError::Internal(
                "the PostgreSQL reader stopped before reporting the schema".into(),
            )),
        }
    }
}

type BatchSender = mpsc::Sender<Result<SourceBatch, SourceError>>;
/// The key ranges of a parallel read not yet taken by a connection; `None` is the whole read.
type RangeQueue = Arc<std::sync::Mutex<std::collections::VecDeque<Option<String>>>>;

impl PostgresSource {
    fn clone_config(&self) -> PostgresSource {
        PostgresSource {
            name: self.name.clone(),
            config: self.config.clone(),
            target: self.target.clone(),
            password: self.password.clone(),
        }
    }

    /// The reading task: set up, report the schema, then send batches until the table ends, an
    /// error occurs (sent down the stream), or the consumer drops the stream.
    ///
    /// A parallel read exports this connection's snapshot; every other connection imports it
    /// (`SET TRANSACTION SNAPSHOT`) before this one reads anything, so all of them see the same
    /// committed rows. Each connection then takes key ranges from a shared queue until it is
    /// empty.
    async fn produce(
        self: Arc<Self>,
        request: ReadRequest,
        schema_tx: crate::util::Announce,
        tx: BatchSender,
    ) {
        let client = match self.connect().await {
            Ok(c) => c,
            Err(e) => {
                let _ = schema_tx.send(Err(e));
                return;
            }
        };
        let setup = async {
            let prepared = self.start(&client, &request).await?;
            let key = match request.table.query {
                None => self.declared_key(&client, &prepared).await?,
                Some(_) => None,
            };
            let ranges = self.ranges(&client, &request, &prepared).await?;
            Ok::<_, SourceError>((prepared, key, ranges))
        };
        let (prepared, key, ranges) = match setup.await {
            Ok(p) => p,
            Err(e) => {
                let _ = schema_tx.send(Err(e));
                return;
            }
        };
        if schema_tx.send(Ok((prepared.schema.clone(), key))).is_err() {
            return;
        }
        let workers = SqlTable::of(&request.table)
            .ok()
            .and_then(|t| t.parallel)
            .as_ref()
            .map(|p| p.workers())
            .unwrap_or_else(auto_parallel_partitions)
            .min(ranges.len());
        let prepared = Arc::new(prepared);
        let queue: RangeQueue = Arc::new(std::sync::Mutex::new(ranges.into_iter().collect()));
        let helpers = match self
            .start_helpers(&client, workers, &prepared, &queue, &tx)
            .await
        {
            Ok(h) => h,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        if let Err(e) = self.read_ranges(&client, &prepared, &queue, &tx).await {
            let _ = tx.send(Err(e)).await;
            return;
        }
        // A helper that panicked would end the stream early without an error: report it.
        for helper in helpers {
            if let Err(e) = helper.await {
                let _ = tx
                    .send(Err(SourceError::Internal(format!(
                        "a parallel PostgreSQL reader of {} failed: {e}",
                        prepared.table
                    ))))
                    .await;
            }
        }
    }

    /// For a read over `workers > 1` connections: export this connection's snapshot and start
    /// `workers - 1` helpers, returning once every one has imported it (the exporting
    /// transaction must stay open until then). No helpers for one worker.
    async fn start_helpers(
        self: &Arc<Self>,
        client: &Client,
        workers: usize,
        prepared: &Arc<Prepared>,
        queue: &RangeQueue,
        tx: &BatchSender,
    ) -> Result<Vec<tokio::task::JoinHandle<()>>, SourceError> {
        if workers < 2 {
            return Ok(Vec::new());
        }
        let snapshot = self.export_snapshot(client, &prepared.table).await?;
        debug!(connection = %self.name, table = %prepared.table, workers, "Parallel read.");
        let (ready_tx, mut ready_rx) = mpsc::channel(workers);
        let mut helpers = Vec::with_capacity(workers - 1);
        for _ in 1..workers {
            let source = Arc::clone(self);
            let (prepared, queue) = (Arc::clone(prepared), Arc::clone(queue));
            let (tx, ready_tx, snapshot) = (tx.clone(), ready_tx.clone(), snapshot.clone());
            helpers.push(tokio::spawn(async move {
                source.helper(snapshot, prepared, queue, tx, ready_tx).await
            }));
        }
        drop(ready_tx);
        let mut imported = 0;
        while let Some(outcome) = ready_rx.recv().await {
            outcome?;
            imported += 1;
        }
        if imported + 1 < workers {
            return Err(SourceError::Internal(
                "a PostgreSQL reader stopped before importing the snapshot".into(),
            ));
        }
        Ok(helpers)
    }

    /// One more connection of a parallel read: import the snapshot, say so, read ranges.
    async fn helper(
        &self,
        snapshot: String,
        prepared: Arc<Prepared>,
        queue: RangeQueue,
        tx: BatchSender,
        ready: mpsc::Sender<Result<(), SourceError>>,
    ) {
        let table = prepared.table.as_str();
        let opened = async {
            let client = self.connect().await?;
            client
                .batch_execute(&format!(
                    "{SESSION_SETTINGS}; BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; \
                     SET TRANSACTION SNAPSHOT {}",
                    sql::quote_literal(&snapshot)
                ))
                .await
                .map_err(|e| self.statement_error(table, &e))?;
            Ok::<_, SourceError>(client)
        };
        let client = match opened.await {
            Ok(c) => {
                let _ = ready.send(Ok(())).await;
                c
            }
            Err(e) => {
                let _ = ready.send(Err(e)).await;
                return;
            }
        };
        drop(ready);
        if let Err(e) = self.read_ranges(&client, &prepared, &queue, &tx).await {
            let _ = tx.send(Err(e)).await;
        }
    }

    /// `pg_export_snapshot()` of the open transaction.
    async fn export_snapshot(&self, client: &Client, table: &str) -> Result<String, SourceError> {
        let row = client
            .query_one("SELECT pg_export_snapshot()", &[])
            .await
            .map_err(|e| self.statement_error(table, &e))?;
        row.try_get(0).map_err(|e| self.statement_error(table, &e))
    }

    /// Read key ranges from the queue until it is empty, then end the transaction. Batches
    /// continue across ranges; the last one may be short.
    async fn read_ranges(
        &self,
        client: &Client,
        prepared: &Prepared,
        queue: &RangeQueue,
        tx: &BatchSender,
    ) -> Result<(), SourceError> {
        let mut columns: Vec<Column> = prepared
            .kinds
            .iter()
            .map(|k| Column::new(k, prepared.batch_size))
            .collect();
        let mut rows = 0usize;
        loop {
            let range = match queue.lock() {
                Ok(mut q) => q.pop_front(),
                Err(_) => None,
            };
            let Some(range) = range else { break };
            let select = with_conditions(&prepared.head, &prepared.conditions, range.as_deref());
            if !self
                .copy(client, prepared, &select, &mut columns, &mut rows, tx)
                .await?
            {
                return Ok(());
            }
        }
        if rows > 0 && !self.send(prepared, &mut columns, rows, tx).await? {
            return Ok(());
        }
        // Read only: ending the transaction either way is the same; commit releases the snapshot.
        client
            .batch_execute("COMMIT")
            .await
            .map_err(|e| self.statement_error(&prepared.table, &e))?;
        Ok(())
    }

    /// Stream `COPY (select) TO STDOUT (FORMAT binary)` into the builders, sending a batch
    /// whenever `batch_size` rows are ready. `Ok(false)` when the consumer went away.
    async fn copy(
        &self,
        client: &Client,
        prepared: &Prepared,
        select: &str,
        columns: &mut [Column],
        rows: &mut usize,
        tx: &BatchSender,
    ) -> Result<bool, SourceError> {
        let table = prepared.table.as_str();
        debug!(connection = %self.name, table = %table, sql = %select, "Reading with COPY.");
        let stream = client
            .copy_out(&format!("COPY ({select}) TO STDOUT (FORMAT binary)"))
            .await
            .map_err(|e| self.statement_error(table, &e))?;
        futures::pin_mut!(stream);
        let mut parser = CopyParser::new(columns.len());
        while let Some(chunk) = stream
            .try_next()
            .await
            .map_err(|e| self.statement_error(table, &e))?
        {
            *rows += parser
                .feed(&chunk, columns)
                .map_err(|e| self.copy_error(prepared, e))?;
            if *rows >= prepared.batch_size {
                if !self.send(prepared, columns, *rows, tx).await? {
                    return Ok(false);
                }
                *rows = 0;
            }
        }
        parser.finish().map_err(|e| self.copy_error(prepared, e))?;
        Ok(true)
    }

    fn copy_error(&self, prepared: &Prepared, e: CopyError) -> SourceError {
        match e {
            CopyError::Malformed(reason) => SourceError::Query {
                connection: self.name.clone(),
                table: prepared.table.clone(),
                reason: format!("{reason}; please report this"),
                class: ErrorClass::Internal,
            },
            CopyError::Value { column, error } => {
                let (name, ty) = prepared
                    .columns
                    .get(column)
                    .cloned()
                    .unwrap_or_else(|| (format!("#{column}"), "?".into()));
                SourceError::BadValue {
                    table: prepared.table.clone(),
                    column: name,
                    source_type: ty,
                    value: error.value,
                    reason: error.reason,
                }
            }
        }
    }

    /// Finish the builders into a batch and send it. `Ok(false)` when the consumer went away.
    async fn send(
        &self,
        prepared: &Prepared,
        columns: &mut [Column],
        rows: usize,
        tx: &BatchSender,
    ) -> Result<bool, SourceError> {
        let mut arrays = Vec::with_capacity(columns.len());
        for (i, c) in columns.iter_mut().enumerate() {
            let array = c.finish().map_err(|error| {
                self.copy_error(prepared, CopyError::Value { column: i, error })
            })?;
            arrays.push(array);
        }
        let batch = RecordBatch::try_new(prepared.schema.clone(), arrays).map_err(|e| {
            SourceError::Internal(format!("building a batch of {}: {e}", prepared.table))
        })?;
        debug!(connection = %self.name, table = %prepared.table, rows, "Read batch.");
        let item = SourceBatch {
            batch,
            origin: prepared.origin.clone(),
        };
        if tx.send(Ok(item)).await.is_err() {
            debug!(table = %prepared.table, "Reader dropped; stopping the PostgreSQL read.");
            return Ok(false);
        }
        Ok(true)
    }

    /// The key ranges to read: `[None]` for one query, else one `WHERE` predicate per range.
    async fn ranges(
        &self,
        client: &Client,
        request: &ReadRequest,
        prepared: &Prepared,
    ) -> Result<Vec<Option<String>>, SourceError> {
        let table = prepared.table.as_str();
        let config_error = |reason: String| SourceError::Config {
            table: table.to_string(),
            reason,
        };
        let parallel = SqlTable::of(&request.table)?.parallel;
        // The row estimate (one catalog query) matters only when the read may be split.
        let may_split = match &parallel {
            Some(p) => p.partitions > 1,
            None => auto_parallel_partitions() > 1,
        };
        let estimate = if may_split && request.table.query.is_none() {
            self.estimated_rows(client, prepared).await?
        } else {
            None
        };
        let (column, partitions) = match &parallel {
            Some(p) if p.partitions <= 1 => return Ok(vec![None]),
            Some(p) => match &p.column {
                Some(c) => (c.clone(), p.partitions),
                None => match self.primary_key(client, prepared).await? {
                    Some(c) => (c, p.partitions),
                    None => {
                        return Err(config_error(
                            "`parallel` needs a `column`: the table has no one-column primary key"
                                .into(),
                        ));
                    }
                },
            },
            None => {
                let large = estimate.is_some_and(|n| n >= AUTO_PARALLEL_MIN_ROWS as f64);
                let partitions = auto_parallel_partitions();
                if !large || partitions < 2 {
                    return Ok(vec![None]);
                }
                match self.primary_key(client, prepared).await? {
                    Some(c) => (c, partitions),
                    None => return Ok(vec![None]),
                }
            }
        };
        if !prepared.columns.iter().any(|(n, _)| *n == column) {
            let names: Vec<&str> = prepared.columns.iter().map(|(n, _)| n.as_str()).collect();
            return Err(config_error(format!(
                "`parallel.column` {column} is not among the columns read ({})",
                names.join(", ")
            )));
        }
        let boundaries = self
            .boundaries(client, prepared, &column, partitions, estimate)
            .await?;
        let literals: Vec<String> = boundaries.iter().map(|b| sql::quote_literal(b)).collect();
        Ok(range_predicates(&sql::quote_ident(&column), &literals))
    }

    /// `reltuples` of the table (`None` when never analyzed).
    async fn estimated_rows(
        &self,
        client: &Client,
        prepared: &Prepared,
    ) -> Result<Option<f64>, SourceError> {
        let qualified =
            sql::qualified_table(&prepared.table).map_err(|reason| SourceError::Config {
                table: prepared.table.clone(),
                reason,
            })?;
        let row = client
            .query_one(
                "SELECT reltuples::float8 FROM pg_catalog.pg_class WHERE oid = $1::text::regclass",
                &[&qualified],
            )
            .await
            .map_err(|e| self.statement_error(&prepared.table, &e))?;
        let n: f64 = row
            .try_get(0)
            .map_err(|e| self.statement_error(&prepared.table, &e))?;
        Ok((n >= 0.0).then_some(n))
    }

    /// The table's primary key, when it is one column.
    async fn primary_key(
        &self,
        client: &Client,
        prepared: &Prepared,
    ) -> Result<Option<String>, SourceError> {
        Ok(self
            .declared_key(client, prepared)
            .await?
            .filter(|k| k.len() == 1)
            .and_then(|mut k| k.pop()))
    }

    /// The table's primary key columns, in key order; `None` without one.
    async fn declared_key(
        &self,
        client: &Client,
        prepared: &Prepared,
    ) -> Result<Option<Vec<String>>, SourceError> {
        let Ok(qualified) = sql::qualified_table(&prepared.table) else {
            return Ok(None);
        };
        let rows = client
            .query(
                "SELECT a.attname::text FROM pg_catalog.pg_index i \
                 CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n) \
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
                 WHERE i.indrelid = $1::text::regclass AND i.indisprimary ORDER BY k.n",
                &[&qualified],
            )
            .await
            .map_err(|e| self.statement_error(&prepared.table, &e))?;
        let key = rows
            .iter()
            .map(|r| r.try_get::<_, String>(0))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.statement_error(&prepared.table, &e))?;
        Ok((!key.is_empty()).then_some(key))
    }

    /// `partitions - 1` boundaries splitting the non-NULL values of `column` into ranges of
    /// about equal row counts: the percentiles of a sample of the table (of the whole column
    /// for small tables and custom queries), as PostgreSQL renders them. Duplicates are
    /// dropped, so a column with few distinct values gives fewer ranges.
    async fn boundaries(
        &self,
        client: &Client,
        prepared: &Prepared,
        column: &str,
        partitions: usize,
        estimate: Option<f64>,
    ) -> Result<Vec<String>, SourceError> {
        let table = prepared.table.as_str();
        let fractions: Vec<String> = (1..partitions)
            .map(|i| format!("{}", i as f64 / partitions as f64))
            .collect();
        let q = sql::quote_ident(column);
        let from = &prepared.from;
        let mut conditions = prepared.conditions.clone();
        conditions.push(format!("{q} IS NOT NULL"));
        let percentiles = |source: &str| {
            with_conditions(
                &format!(
                    "SELECT percentile_disc(ARRAY[{}]::float8[]) WITHIN GROUP (ORDER BY {q})::text[] FROM {source}",
                    fractions.join(", ")
                ),
                &conditions,
                None,
            )
        };
        let mut queries = Vec::new();
        if let Some(n) = estimate.filter(|n| *n > SAMPLE_ABOVE_ROWS) {
            let percent = (100.0 * SAMPLE_ROWS / n).clamp(0.0001, 100.0);
            queries.push(percentiles(&format!(
                "{from} TABLESAMPLE SYSTEM ({percent})"
            )));
        }
        queries.push(percentiles(from));
        for query in queries {
            debug!(connection = %self.name, table = %table, sql = %query, "Range boundaries.");
            let row = client
                .query_one(query.as_str(), &[])
                .await
                .map_err(|e| self.statement_error(table, &e))?;
            let values: Option<Vec<Option<String>>> = row
                .try_get(0)
                .map_err(|e| self.statement_error(table, &e))?;
            if let Some(values) = values {
                let mut out: Vec<String> = values.into_iter().flatten().collect();
                out.dedup();
                return Ok(out);
            }
            // An empty sample: compute from the whole column.
        }
        Ok(Vec::new())
    }
}

/// `sslmode` from a URL query or a key-value connection string, lowercased.
fn requested_sslmode(url: &str) -> Option<String> {
    if let Ok(parsed) = url::Url::parse(url)
        && matches!(parsed.scheme(), "postgres" | "postgresql")
    {
        return parsed
            .query_pairs()
            .find(|(k, _)| k == "sslmode")
            .map(|(_, v)| v.to_ascii_lowercase());
    }
    url.split_whitespace()
        .find_map(|kv| kv.strip_prefix("sslmode="))
        .map(|v| v.trim_matches('\'').to_ascii_lowercase())
}

/// `host:port/database` of a configuration, without user or password.
fn target_of(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(Host::Unix(p)) => p.display().to_string(),
        None => config
            .get_hostaddrs()
            .first()
            .map(|a| a.to_string())
            .unwrap_or_else(|| "localhost".into()),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    format!("{host}:{port}/{db}")
}

/// What the server or the network said: the server's message (with detail and hint) for
/// database errors, the whole error chain otherwise.
/// The class of a driver error, where it is born: the server's SQLSTATE when it sent one,
/// else the I/O error under it (refused, reset, timed out), else a connection problem (the
/// connection closed, a TLS or protocol failure).
fn error_class(e: &tokio_postgres::Error) -> ErrorClass {
    if let Some(code) = e.code() {
        return ErrorClass::of_sqlstate(code.code());
    }
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && let Some(class) = ErrorClass::of_io(io)
        {
            return class;
        }
        cause = c.source();
    }
    ErrorClass::Connection
}

fn error_reason(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = db.message().to_string();
        if let Some(detail) = db.detail() {
            s.push_str(&format!(" ({detail})"));
        }
        if let Some(hint) = db.hint() {
            s.push_str(&format!("; hint: {hint}"));
        }
        return s;
    }
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = cause.source();
    }
    s
}

/// The type as PostgreSQL users write it, for messages: `numeric(12,2)`, `int4[]`.
fn type_name(ty: &Type, typmod: i32) -> String {
    match ty.kind() {
        PgKind::Array(element) => format!("{}[]", type_name(element, typmod)),
        _ if ty.oid() == oid::NUMERIC && typmod >= 4 => {
            let (p, s) = numeric_typmod(typmod);
            format!("numeric({p},{s})")
        }
        _ => ty.name().to_string(),
    }
}

/// Precision and scale from a `numeric` type modifier (PostgreSQL 15 allows negative scales
/// and scales above the precision).
fn numeric_typmod(typmod: i32) -> (i32, i32) {
    let t = typmod - 4;
    let precision = (t >> 16) & 0xffff;
    let scale = ((t & 0x7ff) ^ 1024) - 1024;
    (precision, scale)
}

mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const CHAR: u32 = 18;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const JSON: u32 = 114;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const TIMETZ: u32 = 1266;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;
}

/// The decoder of a non-array, non-domain type, or why there is none.
fn simple_kind(ty: &Type, typmod: i32) -> Result<Kind, String> {
    Ok(match ty.oid() {
        oid::BOOL => Kind::Bool,
        oid::INT2 => Kind::Int2,
        oid::INT4 => Kind::Int4,
        oid::INT8 => Kind::Int8,
        oid::OID => Kind::Oid,
        oid::FLOAT4 => Kind::Float4,
        oid::FLOAT8 => Kind::Float8,
        oid::NUMERIC => numeric_kind(typmod)?,
        oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME | oid::CHAR | oid::JSON => Kind::Text,
        oid::JSONB => Kind::Jsonb,
        oid::UUID => Kind::Uuid,
        oid::TIME => Kind::Time,
        oid::TIMETZ => Kind::TimeTz,
        oid::BYTEA => Kind::Bytea,
        oid::DATE => Kind::Date,
        oid::TIMESTAMP => Kind::Timestamp,
        oid::TIMESTAMPTZ => Kind::TimestampTz,
        _ => match ty.kind() {
            PgKind::Enum(_) => Kind::Text,
            PgKind::Simple if ty.name() == "citext" => Kind::Text,
            PgKind::Range(_) | PgKind::Multirange(_) => {
                return Err("range types have no Delta Lake equivalent".into());
            }
            PgKind::Composite(_) => {
                return Err("composite (row) types are not supported".into());
            }
            _ => {
                return Err(format!(
                    "PostgreSQL type {} has no lossless Arrow/Delta mapping",
                    ty.name()
                ));
            }
        },
    })
}

fn numeric_kind(typmod: i32) -> Result<Kind, String> {
    if typmod < 4 {
        let (precision, scale) = UNCONSTRAINED_NUMERIC;
        return Ok(Kind::Numeric {
            precision,
            scale,
            unconstrained: true,
        });
    }
    let (p, s) = numeric_typmod(typmod);
    if p > 38 {
        return Err(format!("precision {p} is more than Decimal128's 38 digits"));
    }
    if s < 0 || s > p {
        return Err(format!(
            "scale {s} is outside 0..={p}, which Delta Lake cannot store"
        ));
    }
    // 1 ≤ p ≤ 38 and 0 ≤ s ≤ p, so both fit.
    Ok(Kind::Numeric {
        precision: p as u8,
        scale: s as i8,
        unconstrained: false,
    })
}

/// A `type: postgres` connection.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConnection {
    /// `postgres://user:password@host:port/database`; put the password in the environment:
    /// `${env:ERP_URL}`.
    pub url: String,
}

impl PostgresConnection {
    fn problems(&self) -> Vec<(String, String)> {
        let url = self.url.trim();
        if crate::registry::known(url)
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return vec![(
                "url".into(),
                "a postgres url starts with postgres:// (postgres://user:password@host:5432/database)"
                    .into(),
            )];
        }
        Vec::new()
    }
}

/// The Postgres connector's registration (`type: postgres`).
pub(crate) struct Registration;

/// The Postgres connector, as [`crate::registry::connectors`] lists it.
pub(crate) static CONNECTOR: Registration = Registration;

impl crate::registry::Connector for Registration {
    fn kind(&self) -> &'static str {
        "postgres"
    }
    fn table_keys(&self) -> &'static [&'static str] {
        &crate::parallel::KEYS
    }
    fn connection_problems(
        &self,
        conn: &tributary_core::config::ConnectionConfig,
    ) -> Vec<(String, String)> {
        crate::registry::connection_problems_of(conn, PostgresConnection::problems)
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
        let c: PostgresConnection = crate::registry::connection_options(name, conn)?;
        Ok(Box::new(PostgresSource::new(name, &c.url)?))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn numeric_typmods_decode() {
        // numeric(38,10): ((38 << 16) | 10) + 4
        assert_eq!(numeric_typmod((38 << 16 | 10) + 4), (38, 10));
        assert_eq!(
            numeric_kind((12 << 16 | 2) + 4),
            Ok(Kind::Numeric {
                precision: 12,
                scale: 2,
                unconstrained: false
            })
        );
        assert!(
            numeric_kind((40 << 16) + 4)
                .unwrap_err()
                .contains("precision 40")
        );
        assert!(matches!(
            numeric_kind(-1),
            Ok(Kind::Numeric {
                precision: 38,
                scale: 9,
                ..
            })
        ));
    }

    #[test]
    fn tls_requirement_is_refused_clearly() {
        let e = PostgresSource::new("erp", "postgres://u:secret@db:5432/erp?sslmode=require")
            .unwrap_err()
            .to_string();
        assert!(e.contains("TLS"), "{e}");
        assert!(!e.contains("secret"), "{e}");
        let e = PostgresSource::new("erp", "host=db user=u sslmode=verify-full").unwrap_err();
        assert!(e.to_string().contains("TLS"), "{e}");
        PostgresSource::new("erp", "postgresql://u@db/erp?sslmode=prefer").unwrap();
        PostgresSource::new("erp", "postgres://u@db/erp?sslmode=disable").unwrap();
    }

    #[test]
    fn target_names_host_port_and_database() {
        let s = PostgresSource::new("erp", "postgres://u:pw@db.example:6543/sales").unwrap();
        assert_eq!(s.target, "db.example:6543/sales");
        let s = PostgresSource::new("erp", "postgresql://u@db").unwrap();
        assert_eq!(s.target, "db:5432/u");
    }
}
