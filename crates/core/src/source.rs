//! The contract between connectors and the lake: a source turns a configured table into a stream
//! of Arrow record batches with a schema known before the first row.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::record_batch::RecordBatch;
use futures::stream::BoxStream;

use crate::ErrorClass;
use crate::config::{ColumnCast, TableConfig};
use crate::cursor::CursorValue;

/// One batch from a source, with the place it came from (`_tributary_source`): the table or
/// query for databases, the file for file sources.
#[derive(Debug, Clone)]
pub struct SourceBatch {
    /// The rows, in the schema announced by [`SourceStream::schema`].
    pub batch: RecordBatch,
    /// Where these rows came from, e.g. `erp:public.orders` or `landing:orders/2024-01-02.csv`.
    pub origin: Arc<str>,
}

/// The stream of batches a source produces. Streams are pulled: a source never reads ahead by
/// more than a bounded number of batches.
pub type BatchStream = BoxStream<'static, Result<SourceBatch, SourceError>>;

/// One item of a read, in order.
#[derive(Debug)]
pub enum ReadEvent {
    /// Rows, in the schema announced by [`SourceStream::schema`].
    Batch(SourceBatch),
    /// `new_files` reads: a file whose rows follow, with the size and modification time the
    /// loader stores in its rows' `_tributary_file_*` columns. Comes before the file's batches.
    File(FileStamp),
    /// A source transaction ends here: the rows before it are complete up to this position,
    /// so a loader may commit them with it. Batch sources never emit one: their whole read is
    /// one unit, ended by [`ReadEvent::End`]. Change capture emits one per source transaction.
    Boundary(Position),
    /// The read is complete; always the last event. A stream that ends without it was cut
    /// short and its rows must not be committed.
    End(ReadSummary),
}

/// How far a source has read, in the source's own terms: a Delta table's version, a
/// replication slot's LSN. Committed with the rows (as the table's watermark) and given back as
/// [`ReadRequest::since`] on the next read.
#[derive(Debug, Clone, PartialEq)]
pub struct Position {
    /// What the value is (`_delta_version`, …), stored with the watermark.
    pub name: String,
    /// The value.
    pub value: CursorValue,
}

/// What a read did, delivered with the stream as its last event.
#[derive(Debug, Default)]
pub struct ReadSummary {
    /// Rows in the read's batches.
    pub rows: u64,
    /// Malformed records skipped (`on_error: skip`).
    pub skipped: u64,
    /// Malformed records kept for the quarantine table (`on_error: quarantine`).
    pub quarantined: Vec<QuarantinedRecord>,
    /// For sources that track how far they read themselves (a Delta table's version): the
    /// position the read ends at. An incremental load commits it with the rows.
    pub position: Option<Position>,
}

/// The stream of a read's events.
pub type EventStream = BoxStream<'static, Result<ReadEvent, SourceError>>;

/// Told that the rows up to a position are durable in the lake (their Delta commit succeeded),
/// so the source may let go of them: a replication slot confirms its LSN only then.
#[async_trait]
pub trait Acknowledge: Send + Sync {
    /// The rows up to `position` are committed.
    async fn acknowledge(&self, position: &Position) -> Result<(), SourceError>;
}

/// What [`Source::read`] returns: the schema (known before the first row, so an empty read
/// still creates a typed table), the events, and, for sources that must be told, how to
/// acknowledge a committed position.
pub struct SourceStream {
    /// Arrow schema of every batch.
    pub schema: SchemaRef,
    /// Batches, file announcements and position boundaries, ending with [`ReadEvent::End`].
    pub events: EventStream,
    /// Called by the loader once a position's Delta commit is durable; `None` when the source
    /// needs no acknowledgement (every batch source).
    pub ack: Option<Arc<dyn Acknowledge>>,
    /// The primary key the source declares for the table read, in key order (database tables;
    /// `None` for queries, files, APIs and tables without one), for the loader to check the
    /// configured `primary_key` against.
    pub declared_key: Option<Vec<String>>,
}

impl SourceStream {
    /// The stream of a batch source: `batches`, then [`ReadEvent::End`] with the summary
    /// `finish` gives (called with the number of rows once the batches ran out). After an
    /// error no `End` follows.
    pub fn of_batches<F>(schema: SchemaRef, batches: BatchStream, finish: F) -> SourceStream
    where
        F: FnOnce(u64) -> ReadSummary + Send + 'static,
    {
        use futures::StreamExt;
        struct State<F> {
            batches: BatchStream,
            rows: u64,
            finish: Option<F>,
        }
        let state = State {
            batches,
            rows: 0,
            finish: Some(finish),
        };
        let events = futures::stream::unfold(state, |mut st| async move {
            let finish = st.finish.take()?;
            match st.batches.next().await {
                Some(Ok(b)) => {
                    st.rows += b.batch.num_rows() as u64;
                    st.finish = Some(finish);
                    Some((Ok(ReadEvent::Batch(b)), st))
                }
                // The error is the last item: `finish` stays taken.
                Some(Err(e)) => Some((Err(e), st)),
                None => {
                    let summary = finish(st.rows);
                    Some((Ok(ReadEvent::End(summary)), st))
                }
            }
        })
        .boxed();
        SourceStream {
            schema,
            events,
            ack: None,
            declared_key: None,
        }
    }

    /// A batch source's stream whose summary is only its row count.
    pub fn rows_only(schema: SchemaRef, batches: BatchStream) -> SourceStream {
        SourceStream::of_batches(schema, batches, |rows| ReadSummary {
            rows,
            ..ReadSummary::default()
        })
    }

    /// The primary key the source declares for the table (see [`SourceStream::declared_key`]).
    pub fn with_declared_key(mut self, key: Option<Vec<String>>) -> SourceStream {
        self.declared_key = key.filter(|k| !k.is_empty());
        self
    }

    /// Announce `files` (as [`ReadEvent::File`]) before every other event.
    pub fn with_files(mut self, files: Vec<FileStamp>) -> SourceStream {
        use futures::StreamExt;
        let first = futures::stream::iter(files.into_iter().map(|f| Ok(ReadEvent::File(f))));
        self.events = first.chain(self.events).boxed();
        self
    }

    /// Only the batches (for readers that need nothing else, such as tests and previews); an
    /// error ends the stream after it is yielded.
    pub fn into_batches(self) -> BatchStream {
        use futures::StreamExt;
        self.events
            .filter_map(|e| async move {
                match e {
                    Ok(ReadEvent::Batch(b)) => Some(Ok(b)),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                }
            })
            .boxed()
    }
}

/// What to read.
#[derive(Debug, Clone)]
pub struct ReadRequest {
    /// The table's configuration from `ingest/*.yaml` (name or query, casts, file options).
    pub table: TableConfig,
    /// For incremental loads: read only rows whose `column` is `>=` `value` (inclusive; rows
    /// whose cursor is NULL are not read). `None` reads everything.
    pub since: Option<(String, CursorValue)>,
    /// For backfills: read only rows whose `column` is `<` `value` (exclusive). Database
    /// sources add it to their query; the loader filters every source's rows by it too.
    pub until: Option<(String, CursorValue)>,
    /// Rows per batch the source should aim for.
    pub batch_size: usize,
    /// The target table's current columns (without the `_tributary_` ones), when the table
    /// exists and is not being rebuilt (`--full-refresh`). Sources that infer their schema
    /// from the data (REST) keep these columns and their types, so a read in which an
    /// optional field never appears does not look like a removed column. Others ignore it.
    pub table_schema: Option<SchemaRef>,
    /// Files sources, `mode: new_files`: the files already loaded ([`FileStamp::key`]); only
    /// the others are read, each announced by a [`ReadEvent::File`] with its stamp. `None`:
    /// read every file.
    pub loaded_files: Option<Arc<HashSet<String>>>,
}

/// A file as a `new_files` load knows it: its origin (`<connection>:<path>`), size and
/// modification time. A file at the same path with another size or time is a new file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileStamp {
    /// `<connection>:<path relative to the connection URL>` (the rows' `_tributary_source`).
    pub origin: String,
    /// Bytes.
    pub size: u64,
    /// Last modification, microseconds since the Unix epoch (UTC).
    pub modified_micros: i64,
}

/// A malformed record kept for the quarantine table (`on_error: quarantine`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinedRecord {
    /// The file (path or URL).
    pub file: String,
    /// 1-based line (or record position in a JSON array).
    pub line: u64,
    /// The record as read.
    pub raw: String,
    /// Why it could not be loaded.
    pub reason: String,
}

impl FileStamp {
    /// `origin|size|modified`: how loaded files are compared.
    pub fn key(&self) -> String {
        format!("{}|{}|{}", self.origin, self.size, self.modified_micros)
    }
}

impl ReadRequest {
    /// The cast configured for a column, if any.
    pub fn cast_for(&self, column: &str) -> Option<ColumnCast> {
        self.table.cast.get(column).copied()
    }
}

/// A connector: `check` that it can be reached, and `read` a table as a stream of events.
#[async_trait]
pub trait Source: Send + Sync {
    /// Connectivity and permissions, for `validate --connections`.
    async fn check(&self) -> Result<(), SourceError>;
    /// As [`Source::check`], with a line on what was checked when there is more to say than
    /// "ok" (e.g. `GET https://api.example.com/v1/health: 200 OK`).
    async fn check_detail(&self) -> Result<Option<String>, SourceError> {
        self.check().await.map(|()| None)
    }
    /// Start reading a table. Errors about the table itself (missing, unsupported column type)
    /// come back here, before any row; errors about a value come back in the stream.
    ///
    /// The stream yields the batches (and, for `new_files` reads, each file's stamp before its
    /// rows; for change capture, a [`ReadEvent::Boundary`] after each source transaction) and
    /// ends with [`ReadEvent::End`] carrying the [`ReadSummary`]: everything the loader needs
    /// comes with the stream, nothing through calls afterwards. Dropping the stream midway
    /// cancels the read and releases its connection or file.
    async fn read(&self, request: ReadRequest) -> Result<SourceStream, SourceError>;
}

/// Errors from sources. Every variant names where the problem is.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Could not reach or log in to the source.
    #[error("cannot connect to {connection} ({target}): {reason}")]
    Connect {
        /// Connection name from `tributary.yaml`.
        connection: String,
        /// Host/port/database or path, with secrets removed.
        target: String,
        /// What the driver said, with secrets removed.
        reason: String,
        /// What kind of failure, read from the driver's error where it was born.
        class: ErrorClass,
    },
    /// A query failed in the source database.
    #[error("query on {connection} for table {table} failed: {reason}")]
    Query {
        /// Connection name.
        connection: String,
        /// Table or query being read.
        table: String,
        /// What the database said.
        reason: String,
        /// What kind of failure, read from the database's error code where it was born.
        class: ErrorClass,
    },
    /// A column whose type cannot be mapped losslessly.
    #[error(
        "table {table}, column {column}: type {source_type} cannot be loaded losslessly ({reason}); \
         add `cast: {{ {column}: text }}` to the table in ingest/*.yaml to load it as text"
    )]
    UnsupportedType {
        /// Table or query being read.
        table: String,
        /// Column name.
        column: String,
        /// The source's name for the type.
        source_type: String,
        /// Why it cannot be mapped.
        reason: String,
    },
    /// A value that cannot be represented in the column's Arrow type.
    #[error(
        "table {table}, column {column} ({source_type}): value {value} cannot be loaded losslessly ({reason}); \
         add `cast: {{ {column}: text }}` to the table in ingest/*.yaml to load it as text"
    )]
    BadValue {
        /// Table or query being read.
        table: String,
        /// Column name.
        column: String,
        /// The source's name for the type.
        source_type: String,
        /// The offending value, rendered as text.
        value: String,
        /// Why it cannot be represented.
        reason: String,
    },
    /// A malformed record in a file.
    #[error("{file}, line {line}: {reason}")]
    BadRecord {
        /// The file (path or URL).
        file: String,
        /// 1-based line number of the record.
        line: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A file or object could not be listed or read.
    #[error("cannot read {location}: {reason}")]
    Io {
        /// File, folder or object URL.
        location: String,
        /// What went wrong.
        reason: String,
        /// What kind of failure, read from the I/O or object store error where it was born.
        class: ErrorClass,
    },
    /// The table configuration does not fit this source.
    #[error("table {table}: {reason}")]
    Config {
        /// Table name.
        table: String,
        /// What is wrong.
        reason: String,
    },
    /// An HTTP request to an API failed: no response, or a status that is not a success, after
    /// the connector's own retries.
    #[error("{connection}: {request} ({during}) failed: {reason}")]
    Http {
        /// Connection name.
        connection: String,
        /// What the request was for: `table invoices, page 3`, `check`, `token request`.
        during: String,
        /// Method and URL, without user information or query string (which may hold a key).
        request: String,
        /// The last response's status; `None` when there was no response (connection or
        /// timeout).
        status: Option<u16>,
        /// What happened, with secrets removed.
        reason: String,
        /// What kind of failure: from the status when there is one, else from the HTTP
        /// client's error (connection or timeout).
        class: ErrorClass,
    },
    /// An API response that cannot be loaded: not JSON, no records at the configured place,
    /// a record that is not an object, a pagination value that is not usable.
    #[error("{connection}: {request} ({during}): {reason}")]
    BadResponse {
        /// Connection name.
        connection: String,
        /// What the request was for: `table invoices, page 3`.
        during: String,
        /// Method and URL, without user information or query string.
        request: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// A bug in Tributary.
    #[error("internal error: {0}. This is a bug in Tributary; please report it")]
    Internal(String),
}

impl SourceError {
    /// What kind of failure this is: for connection, query, I/O and HTTP errors the class the
    /// connector read from its driver where the error was born; the other variants say it by
    /// what they are.
    pub fn class(&self) -> ErrorClass {
        match self {
            SourceError::Connect { class, .. }
            | SourceError::Query { class, .. }
            | SourceError::Io { class, .. }
            | SourceError::Http { class, .. } => *class,
            SourceError::UnsupportedType { .. }
            | SourceError::BadValue { .. }
            | SourceError::BadRecord { .. }
            | SourceError::BadResponse { .. } => ErrorClass::Data,
            SourceError::Config { .. } => ErrorClass::Config,
            SourceError::Internal(_) => ErrorClass::Internal,
        }
    }

    /// Whether retrying the same read may succeed (network trouble, a busy server), as opposed
    /// to bad data, configuration or credentials.
    pub fn is_retryable(&self) -> bool {
        self.class().is_retryable()
    }
}
