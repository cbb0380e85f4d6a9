//! PostgreSQL source.
//!
//! Reads a table (or a custom `query`) in one `REPEATABLE READ READ ONLY` transaction, so the
//! whole read is one consistent snapshot, with the session in `TimeZone='UTC'` and
//! `extra_float_digits=3`. Rows come in PostgreSQL's binary format through a portal, one batch
//! (`batch_size` rows) at a time, and every value is decoded from its raw bytes straight into
//! Arrow builders. Connections use no TLS yet: `sslmode=disable` and `sslmode=prefer` work,
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
use tokio_postgres::{Client, Config, IsolationLevel, NoTls, Statement, Transaction};
use tracing::debug;
use tributary_core::config::ColumnCast;
use tributary_core::redact::{redact_url, scrub};
use tributary_core::{ReadRequest, Source, SourceBatch, SourceError, SourceStream};

use self::decode::{Column, Kind, Raw, UNCONSTRAINED_NUMERIC};
use crate::util::{DEFAULT_BATCH_SIZE, batch_channel};

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

    fn connect_error(&self, reason: String) -> SourceError {
        SourceError::Connect {
            connection: self.name.clone(),
            target: self.target.clone(),
            reason: self.scrub(&reason),
        }
    }

    /// A failed statement: database errors are about the query; anything else (a dropped
    /// connection) is a connection problem, which may be retried.
    fn statement_error(&self, table: &str, e: &tokio_postgres::Error) -> SourceError {
        if e.as_db_error().is_some() {
            SourceError::Query {
                connection: self.name.clone(),
                table: table.to_string(),
                reason: self.scrub(&error_reason(e)),
            }
        } else {
            self.connect_error(error_reason(e))
        }
    }

    /// Connect, log in, and spawn the connection task.
    async fn connect(&self) -> Result<Client, SourceError> {
        let attempt = tokio::time::timeout(LOGIN_TIMEOUT, self.config.connect(NoTls)).await;
        let (client, connection) = match attempt {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => return Err(self.connect_error(error_reason(&e))),
            Err(_) => {
                return Err(self.connect_error(format!(
                    "no answer within {} seconds",
                    LOGIN_TIMEOUT.as_secs()
                )));
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

    /// Everything before the first row: session settings, the snapshot, the SELECT, the schema
    /// and the portal.
    async fn start<'c>(
        &self,
        client: &'c mut Client,
        request: &ReadRequest,
    ) -> Result<Prepared<'c>, SourceError> {
        let table = request.table.name.as_str();
        client
            .batch_execute("SET TimeZone = 'UTC'; SET extra_float_digits = 3")
            .await
            .map_err(|e| self.statement_error(table, &e))?;
        let transaction = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
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
                .prepare(&transaction, request, &format!("SELECT * FROM {from}"))
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
        let mut select = format!("SELECT {select_list} FROM {from}");
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
        if !conditions.is_empty() {
            select.push_str(" WHERE ");
            select.push_str(&conditions.join(" AND "));
        }
        debug!(connection = %self.name, table = %table, sql = %select, "Prepared PostgreSQL read.");
        let statement = self.prepare(&transaction, request, &select).await?;

        let mut fields = Vec::with_capacity(statement.columns().len());
        let mut kinds = Vec::with_capacity(statement.columns().len());
        for column in statement.columns() {
            let kind = if request.cast_for(column.name()).is_some() {
                Kind::Text
            } else {
                self.kind_of(
                    &transaction,
                    table,
                    column.name(),
                    column.type_(),
                    column.type_modifier(),
                )
                .await?
            };
            fields.push(Field::new(column.name(), kind.data_type(), true));
            kinds.push(kind);
        }
        let schema = Arc::new(Schema::new(fields));
        Ok(Prepared {
            transaction,
            statement,
            kinds,
            schema,
        })
    }

    async fn prepare(
        &self,
        transaction: &Transaction<'_>,
        request: &ReadRequest,
        select: &str,
    ) -> Result<Statement, SourceError> {
        let table = request.table.name.as_str();
        transaction.prepare(select).await.map_err(|e| {
            if request.table.query.is_none() && e.code() == Some(&SqlState::UNDEFINED_TABLE) {
                SourceError::Query {
                    connection: self.name.clone(),
                    table: table.to_string(),
                    reason: format!(
                        "table {table} does not exist on connection {} ({}), or the user cannot \
                         see it (names are case-sensitive; write schema.table as in the catalog)",
                        self.name, self.target
                    ),
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
        transaction: &Transaction<'_>,
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
        let (base, typmod) = self.strip_domains(transaction, table, ty, typmod).await?;
        match base.kind() {
            PgKind::Array(element) => {
                let (element, typmod) = self
                    .strip_domains(transaction, table, element, typmod)
                    .await?;
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
        transaction: &Transaction<'_>,
        table: &str,
        ty: &Type,
        typmod: i32,
    ) -> Result<(Type, i32), SourceError> {
        let mut ty = ty.clone();
        let mut typmod = typmod;
        while let PgKind::Domain(base) = ty.kind() {
            if typmod == -1 {
                let row = transaction
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

/// What [`PostgresSource::start`] sets up.
struct Prepared<'c> {
    transaction: Transaction<'c>,
    statement: Statement,
    kinds: Vec<Kind>,
    schema: SchemaRef,
}

#[async_trait]
impl Source for PostgresSource {
    async fn check(&self) -> Result<(), SourceError> {
        let client = self.connect().await?;
        client
            .query_one("SELECT 1", &[])
            .await
            .map_err(|e| self.connect_error(error_reason(&e)))?;
        Ok(())
    }

    async fn read(&self, request: ReadRequest) -> Result<SourceStream, SourceError> {
        let (schema_tx, schema_rx) = oneshot::channel();
        let (tx, batches) = batch_channel();
        let source = PostgresSource {
            name: self.name.clone(),
            config: self.config.clone(),
            target: self.target.clone(),
            password: self.password.clone(),
        };
        tokio::spawn(async move { source.produce(request, schema_tx, tx).await });
        match schema_rx.await {
            Ok(Ok(schema)) => Ok(SourceStream { schema, batches }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(SourceError::Internal(
                "the PostgreSQL reader stopped before reporting the schema".into(),
            )),
        }
    }
}

type BatchSender = mpsc::Sender<Result<SourceBatch, SourceError>>;

impl PostgresSource {
    /// The reading task: set up, report the schema, then send batches until the table ends, an
    /// error occurs (sent down the stream), or the consumer drops the stream.
    async fn produce(
        self,
        request: ReadRequest,
        schema_tx: oneshot::Sender<Result<SchemaRef, SourceError>>,
        tx: BatchSender,
    ) {
        let mut client = match self.connect().await {
            Ok(c) => c,
            Err(e) => {
                let _ = schema_tx.send(Err(e));
                return;
            }
        };
        let prepared = match self.start(&mut client, &request).await {
            Ok(p) => p,
            Err(e) => {
                let _ = schema_tx.send(Err(e));
                return;
            }
        };
        if schema_tx.send(Ok(prepared.schema.clone())).is_err() {
            return;
        }
        if let Err(e) = self.stream_rows(&request, prepared, &tx).await {
            let _ = tx.send(Err(e)).await;
        }
    }

    async fn stream_rows(
        &self,
        request: &ReadRequest,
        prepared: Prepared<'_>,
        tx: &BatchSender,
    ) -> Result<(), SourceError> {
        let table = request.table.name.as_str();
        let origin: Arc<str> = Arc::from(format!("{}:{}", self.name, table));
        let batch_size = if request.batch_size == 0 {
            DEFAULT_BATCH_SIZE
        } else {
            request.batch_size
        };
        let max_rows = i32::try_from(batch_size).unwrap_or(i32::MAX);
        let Prepared {
            transaction,
            statement,
            kinds,
            schema,
        } = prepared;
        let portal = transaction
            .bind(&statement, &[])
            .await
            .map_err(|e| self.statement_error(table, &e))?;
        let mut columns: Vec<Column> = kinds.iter().map(|k| Column::new(k, batch_size)).collect();
        let mut total: u64 = 0;
        loop {
            let rows = transaction
                .query_portal_raw(&portal, max_rows)
                .await
                .map_err(|e| self.statement_error(table, &e))?;
            futures::pin_mut!(rows);
            let mut n = 0usize;
            while let Some(row) = rows
                .try_next()
                .await
                .map_err(|e| self.statement_error(table, &e))?
            {
                for (i, column) in columns.iter_mut().enumerate() {
                    let raw: Option<Raw<'_>> = row
                        .try_get(i)
                        .map_err(|e| SourceError::Internal(format!("reading column {i}: {e}")))?;
                    column.append(raw.map(|r| r.0)).map_err(|e| {
                        let col = &statement.columns()[i];
                        SourceError::BadValue {
                            table: table.to_string(),
                            column: col.name().to_string(),
                            source_type: type_name(col.type_(), col.type_modifier()),
                            value: e.value,
                            reason: e.reason,
                        }
                    })?;
                }
                n += 1;
            }
            if n == 0 {
                break;
            }
            let arrays = columns.iter_mut().map(Column::finish).collect();
            let batch = RecordBatch::try_new(schema.clone(), arrays)
                .map_err(|e| SourceError::Internal(format!("building a batch of {table}: {e}")))?;
            total += n as u64;
            debug!(connection = %self.name, table = %table, rows = n, total, "Read batch.");
            let item = SourceBatch {
                batch,
                origin: origin.clone(),
            };
            if tx.send(Ok(item)).await.is_err() {
                debug!(table = %table, "Reader dropped; stopping the PostgreSQL read.");
                return Ok(());
            }
            if n < batch_size {
                break;
            }
        }
        // Read only: ending the transaction either way is the same; commit releases the snapshot.
        transaction
            .commit()
            .await
            .map_err(|e| self.statement_error(table, &e))?;
        Ok(())
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
