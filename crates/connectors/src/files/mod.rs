//! Files source: CSV, NDJSON, Parquet and spreadsheet files under a local folder or an
//! object-store prefix.
//!
//! A table is a glob relative to the connection's URL (`orders/*.csv`, `**/*.parquet`; `*` does
//! not cross `/`). Matching files are read in path order. Local files are read in place; remote
//! objects are streamed to a temporary file first (bounded memory), read, and deleted.
//! The format comes from `format:` or the extension (`.csv`, `.tsv`, `.ndjson`/`.jsonl`/`.json`,
//! `.parquet`, `.xlsx`/`.xlsm`/`.xlsb`/`.xls`/`.ods`, each optionally followed by `.gz`);
//! `compression: auto` decompresses gzip when
//! the name ends in `.gz`. The schema comes from the first file; every later file must have the
//! same one. When no file matches, the read fails (`Io`): a table is never created with an
//! invented schema. `since` is ignored (the runner filters rows).
//!
//! With [`ReadRequest::loaded_files`] (`mode: new_files`), files whose stamp (origin, size,
//! modification time: ETag-independent `last_modified` for object stores, mtime locally) is in
//! the set are skipped, the stamps of the others open the stream (`ReadEvent::File`), and
//! when no file is new the stream has an empty schema and no batches.
//! Each batch's origin is `<connection>:<path relative to the URL>`.
//!
//! # CSV
//!
//! Options (`csv:`): `delimiter` (default `,`; `\t` for `.tsv` files unless another delimiter
//! than `,` is configured), `quote` (default `"`), `header` (default true; without a header
//! columns are `column_1`, `column_2`, …; an empty header name also becomes `column_<n>`),
//! `infer_types` (default true). A UTF-8 byte-order mark at the start of a file is removed.
//! Types are inferred from the first 1000 records of the first file, per column, the first rule
//! that every non-empty value satisfies:
//!
//! | values | Arrow type | Delta type |
//! |---|---|---|
//! | integers (`-12`, `0`; no `+`, no leading zeros so `007` stays text) | `Int64` | `long` |
//! | numbers (`1.5`, `-2e3`; no leading zeros) | `Float64` | `double` |
//! | `true`/`false` (any case) | `Boolean` | `boolean` |
//! | `YYYY-MM-DD` | `Date32` | `date` |
//! | `YYYY-MM-DD HH:MM[:SS[.ffffff]]` (or `T`) | `Timestamp(µs)` | `timestamp_ntz` |
//! | the same with `Z` or an offset (`+02:00`) | `Timestamp(µs, UTC)` (the instant) | `timestamp` |
//! | anything else, or no non-empty value | `Utf8` | `string` |
//!
//! CSV decimals are inferred as doubles: to keep their exact text, use
//! `cast: { column: text }` (that column is not inferred, it stays `Utf8`) or
//! `csv: { infer_types: false }` (every column `Utf8`). An empty field is NULL in every column,
//! text included. Every later file must have the same header (names and order).
//!
//! # NDJSON
//!
//! One JSON object per line; blank lines are ignored. The schema is inferred from the first
//! 1000 records of the first file (Arrow's JSON inference: integers `Int64`, other numbers
//! `Float64`, booleans `Boolean`, strings `Utf8`, objects `Struct`, arrays `List`, mixed
//! scalars `Utf8`, always-null fields `Utf8`). A field that first appears after the inferred
//! lines, or a value that does not fit the inferred type, is a malformed record naming file and
//! line. `cast: { field: text }` loads a scalar field as `Utf8`.
//!
//! # Parquet
//!
//! The file's Arrow schema, normalized for Delta Lake: `UInt8`→`Int16`, `UInt16`→`Int32`,
//! `UInt32`→`Int64`, `UInt64`→`Decimal128(20,0)`, timestamps in s/ms/ns → microseconds (a
//! nanosecond value that is not a whole microsecond is a `BadValue` error; zoned timestamps keep
//! their instant, labelled UTC), `LargeUtf8`/`Utf8View`→`Utf8`,
//! `LargeBinary`/`BinaryView`/`FixedSizeBinary`→`Binary`, `Time32/64`→`Utf8`,
//! `Float16`→`Float32`, `Decimal256` with precision ≤ 38 → `Decimal128`, dictionaries → their
//! values. `cast: { column: text }` renders that column as text with Arrow's formatting.
//!
//! # Spreadsheets
//!
//! One sheet per file (`excel: { sheet, header, skip_rows, infer_types }`); see the `excel`
//! module for the type inference.
//!
//! # Malformed records
//!
//! A record with the wrong number of fields, invalid UTF-8 or JSON, or a value that does not
//! parse as its column's type: with `on_error: fail` (default) the read fails with
//! `BadRecord { file, line, reason }`; with `on_error: skip` the record is skipped and counted
//! ([`FilesSource::skipped_records`]), the first 10 of a read are logged at WARN with file and
//! line, and each file's count is logged at WARN.

pub mod config;
mod csvfile;
mod excel;
pub(crate) mod ndjson;
mod parquetfile;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::logstore::object_store::path::Path as ObjectPath;
use deltalake::logstore::object_store::{ObjectStore, ObjectStoreExt, parse_url_opts};
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};
use tributary_core::config::{OnError, TableConfig};

pub use config::{Compression, CsvOptions, ExcelOptions, FileFormat, FilesTable};
use tributary_core::redact::redact_url;
use tributary_core::{
    ErrorClass, FileStamp, QuarantinedRecord, ReadRequest, ReadSummary, Source, SourceBatch,
    SourceError, SourceStream,
};

use crate::util::{DEFAULT_FILE_BATCH_SIZE, SkipCounter, batch_channel};

/// How many skipped records of one read are logged one by one.
const LOGGED_SKIPS: u64 = 10;

/// Files under a local folder or an object-store URL.
#[derive(Debug, Clone)]
pub struct FilesSource {
    name: String,
    location: Location,
    skipped: SkipCounter,
    /// Malformed records kept for the quarantine table (`on_error: quarantine`).
    quarantined: Quarantine,
}

/// Malformed records kept by reads, shared with their reader threads.
pub(crate) type Quarantine = Arc<std::sync::Mutex<Vec<QuarantinedRecord>>>;

#[derive(Debug, Clone)]
enum Location {
    Local(PathBuf),
    Remote {
        store: Arc<dyn ObjectStore>,
        prefix: ObjectPath,
        /// The URL with secrets removed, for messages.
        url: String,
    },
}

impl Location {
    fn display(&self) -> String {
        match self {
            Location::Local(p) => p.display().to_string(),
            Location::Remote { url, .. } => url.clone(),
        }
    }
    /// How a file is named in errors.
    fn file_display(&self, rel: &str) -> String {
        match self {
            Location::Local(p) => p.join(rel).display().to_string(),
            Location::Remote { url, .. } => format!("{}/{rel}", url.trim_end_matches('/')),
        }
    }
}

/// One matching file.
#[derive(Debug, Clone)]
struct Entry {
    /// Path relative to the URL, `/`-separated.
    rel: String,
    /// Local path, or object path.
    key: EntryKey,
    /// Bytes.
    size: u64,
    /// Last modification, microseconds since the Unix epoch.
    modified_micros: i64,
}

#[derive(Debug, Clone)]
enum EntryKey {
    Local(PathBuf),
    Object(ObjectPath),
}

impl FilesSource {
    /// A source for connection `name` (`type: files`): its `url` and `storage_options`.
    pub fn from_connection(
        name: &str,
        conn: &tributary_core::config::ConnectionConfig,
        project_root: &Path,
    ) -> Result<Self, SourceError> {
        let c: crate::util::StoreConnection = crate::registry::connection_options(name, conn)?;
        FilesSource::new(name, &c.url, c.storage_options, project_root)
    }

    /// A source for the files under `url`: a local folder (relative paths resolve against
    /// `project_root`), or `file://`, `az://`, `abfss://`, `s3://`, `gs://` URLs with
    /// `storage_options` for the object store. Nothing is listed until a read or check.
    pub fn new(
        name: &str,
        url: &str,
        storage_options: BTreeMap<String, String>,
        project_root: &Path,
    ) -> Result<Self, SourceError> {
        let connect_error = |reason: String, class: ErrorClass| SourceError::Connect {
            connection: name.to_string(),
            target: redact_url(url),
            reason,
            class,
        };
        let location = if url.contains("://") {
            let parsed = url::Url::parse(url)
                .map_err(|e| connect_error(format!("invalid URL: {e}"), ErrorClass::Config))?;
            // `file://` URLs go through object_store too (LocalFileSystem), like remote ones.
            let (store, prefix) = parse_url_opts(&parsed, storage_options)
                .map_err(|e| connect_error(e.to_string(), ErrorClass::of_object_store(&e)))?;
            Location::Remote {
                store: Arc::from(store),
                prefix,
                url: redact_url(url),
            }
        } else {
            let p = Path::new(url);
            Location::Local(if p.is_absolute() {
                p.to_path_buf()
            } else {
                project_root.join(p)
            })
        };
        Ok(FilesSource {
            name: name.to_string(),
            location,
            skipped: SkipCounter::default(),
            quarantined: Arc::default(),
        })
    }

    /// Malformed records skipped (`on_error: skip`) by all reads of this source so far. The
    /// count grows while a read's stream is consumed; read it after the stream ends (or
    /// before and after, for one read).
    pub fn skipped_records(&self) -> u64 {
        self.skipped.get()
    }

    fn store_error(&self, location: String, e: &deltalake::ObjectStoreError) -> SourceError {
        SourceError::Io {
            location,
            reason: e.to_string(),
            class: ErrorClass::of_object_store(e),
        }
    }

    /// Every file under the location, relative path and key.
    async fn list_all(&self) -> Result<Vec<Entry>, SourceError> {
        match &self.location {
            Location::Local(root) => {
                let root = root.clone();
                let shown = self.location.display();
                tokio::task::spawn_blocking(move || {
                    if !root.is_dir() {
                        return Err(SourceError::Io {
                            location: shown,
                            reason:
                                "no such folder (relative paths resolve against the project folder)"
                                    .into(),
                            class: ErrorClass::Config,
                        });
                    }
                    let mut out = Vec::new();
                    walk(&root, "", &mut out).map_err(|e| SourceError::Io {
                        location: shown,
                        reason: e.to_string(),
                        class: ErrorClass::of_file_io(&e),
                    })?;
                    Ok(out)
                })
                .await
                .map_err(|e| SourceError::Internal(format!("listing thread failed: {e}")))?
            }
            Location::Remote { store, prefix, url } => {
                let base = prefix.as_ref().trim_end_matches('/').to_string();
                let mut listing = store.list(Some(prefix));
                let mut out = Vec::new();
                while let Some(meta) = listing.next().await {
                    let meta = meta.map_err(|e| self.store_error(url.clone(), &e))?;
                    let full = meta.location.as_ref();
                    let rel = if base.is_empty() {
                        full
                    } else {
                        full.strip_prefix(base.as_str())
                            .map(|r| r.trim_start_matches('/'))
                            .unwrap_or(full)
                    };
                    out.push(Entry {
                        rel: rel.to_string(),
                        key: EntryKey::Object(meta.location.clone()),
                        size: meta.size,
                        modified_micros: meta.last_modified.timestamp_micros(),
                    });
                }
                Ok(out)
            }
        }
    }

    /// The files matching the table's glob, sorted by path.
    async fn matching(
        &self,
        table: &TableConfig,
        files: &FilesTable,
    ) -> Result<Vec<Entry>, SourceError> {
        let Some(glob) = &files.glob else {
            return Err(SourceError::Config {
                table: table.name.clone(),
                reason: "a files table needs `glob:` (e.g. `orders/*.csv`), relative to the connection URL".into(),
            });
        };
        let matcher = globset::GlobBuilder::new(glob)
            .literal_separator(true)
            .build()
            .map_err(|e| SourceError::Config {
                table: table.name.clone(),
                reason: format!("invalid glob `{glob}`: {e}"),
            })?
            .compile_matcher();
        let mut entries: Vec<Entry> = self
            .list_all()
            .await?
            .into_iter()
            .filter(|e| matcher.is_match(&e.rel))
            .collect();
        entries.sort_by(|a, b| a.rel.cmp(&b.rel));
        if entries.is_empty() {
            return Err(SourceError::Io {
                location: self.location.display(),
                reason: format!(
                    "no file matches glob {glob} under URL {}; the table's schema cannot be known without one",
                    self.location.display()
                ),
                class: ErrorClass::Config,
            });
        }
        Ok(entries)
    }
}

fn walk(dir: &Path, rel: &str, out: &mut Vec<Entry>) -> std::io::Result<()> {
    for item in std::fs::read_dir(dir)? {
        let item = item?;
        let name = item.file_name().to_string_lossy().into_owned();
        let child_rel = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let path = item.path();
        // metadata() follows symbolic links.
        let meta = std::fs::metadata(&path)?;
        if meta.is_dir() {
            walk(&path, &child_rel, out)?;
        } else if meta.is_file() {
            let modified_micros = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
                .unwrap_or(0);
            out.push(Entry {
                rel: child_rel,
                key: EntryKey::Local(path),
                size: meta.len(),
                modified_micros,
            });
        }
    }
    Ok(())
}

#[async_trait]
impl Source for FilesSource {
    async fn check(&self) -> Result<(), SourceError> {
        match &self.location {
            Location::Local(p) => {
                if p.is_dir() {
                    Ok(())
                } else {
                    Err(SourceError::Connect {
                        connection: self.name.clone(),
                        target: p.display().to_string(),
                        reason:
                            "no such folder (relative paths resolve against the project folder)"
                                .into(),
                        class: ErrorClass::Config,
                    })
                }
            }
            Location::Remote { store, prefix, url } => {
                let mut listing = store.list(Some(prefix));
                match listing.next().await {
                    None | Some(Ok(_)) => Ok(()),
                    Some(Err(e)) => Err(SourceError::Connect {
                        connection: self.name.clone(),
                        target: url.clone(),
                        reason: e.to_string(),
                        class: ErrorClass::of_object_store(&e),
                    }),
                }
            }
        }
    }

    async fn read(&self, request: ReadRequest) -> Result<SourceStream, SourceError> {
        let files = FilesTable::of(&request.table)?;
        let mut entries = self.matching(&request.table, &files).await?;
        let mut stamps = Vec::new();
        if let Some(loaded) = &request.loaded_files {
            // `new_files`: only the files not loaded yet (by path, size and modification time).
            let stamp = |e: &Entry| FileStamp {
                origin: format!("{}:{}", self.name, e.rel),
                size: e.size,
                modified_micros: e.modified_micros,
            };
            entries.retain(|e| !loaded.contains(&stamp(e).key()));
            stamps = entries.iter().map(stamp).collect();
            if entries.is_empty() {
                // Nothing new: no schema to announce, no rows.
                return Ok(SourceStream::rows_only(
                    Arc::new(deltalake::arrow::datatypes::Schema::empty()),
                    futures::stream::empty().boxed(),
                ));
            }
        }
        // This read's share of the skipped records: counted from before its reader starts.
        let skipped_before = self.skipped.get();
        let (schema_tx, schema_rx) = oneshot::channel();
        let (tx, batches) = batch_channel();
        let job = ReadJob {
            connection: self.name.clone(),
            location: self.location.clone(),
            entries,
            request,
            files,
            skipped: self.skipped.clone(),
            quarantined: self.quarantined.clone(),
        };
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || job.run(&handle, schema_tx, tx));
        match schema_rx.await {
            Ok(Ok(schema)) => {
                // This read's share of the skipped and quarantined records, with the stream.
                let skipped = self.skipped.clone();
                let quarantined = self.quarantined.clone();
                let finish = move |rows| ReadSummary {
                    rows,
                    skipped: skipped.get().saturating_sub(skipped_before),
                    quarantined: quarantined
                        .lock()
                        .map(|mut q| std::mem::take(&mut *q))
                        .unwrap_or_default(),
                    position: None,
                };
                Ok(SourceStream::of_batches(schema, batches, finish).with_files(stamps))
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(SourceError::Internal(
                "the file reader thread ended before announcing the schema".into(),
            )),
        }
    }
}

type BatchSender = mpsc::Sender<Result<SourceBatch, SourceError>>;

/// A file ready to be read locally.
pub(crate) struct FileInput {
    /// Name for errors and logs (full path or URL).
    pub display: String,
    /// `<connection>:<relative path>`.
    pub origin: Arc<str>,
    /// Local path (the file itself or its temporary copy).
    pub path: PathBuf,
    /// Whether to gunzip while reading.
    pub gzip: bool,
    /// Whether the name ends in `.tsv` (before `.gz`).
    pub tsv: bool,
    /// Keeps the temporary copy of a remote object alive until the file is read.
    _temp: Option<tempfile::NamedTempFile>,
}

impl FileInput {
    /// The decompressed content, buffered, with a UTF-8 byte-order mark removed.
    pub fn open_text(&self) -> Result<Box<dyn BufRead + Send>, SourceError> {
        let file = std::fs::File::open(&self.path).map_err(|e| self.read_error(e))?;
        let inner: Box<dyn Read + Send> = if self.gzip {
            Box::new(flate2::read::MultiGzDecoder::new(file))
        } else {
            Box::new(file)
        };
        let mut reader = BufReader::with_capacity(256 * 1024, inner);
        let starts_with_bom = reader
            .fill_buf()
            .map_err(|e| self.read_error(e))?
            .starts_with(b"\xEF\xBB\xBF");
        if starts_with_bom {
            reader.consume(3);
        }
        Ok(Box::new(reader))
    }

    /// An error while reading this file: an I/O error anywhere in its chain is classed by its
    /// kind; anything else (a decoder's complaint about the content) is `data`.
    pub fn read_error(&self, e: impl std::error::Error + 'static) -> SourceError {
        let mut class = ErrorClass::Data;
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(c) = cause {
            if let Some(io) = c.downcast_ref::<std::io::Error>() {
                class = ErrorClass::of_file_io(io);
                break;
            }
            cause = c.source();
        }
        SourceError::Io {
            location: self.display.clone(),
            class,
            reason: e.to_string(),
        }
    }

    /// Content this file's format cannot be read from (a syntax error that stops the read).
    pub fn bad_content(&self, reason: impl std::fmt::Display) -> SourceError {
        SourceError::Io {
            location: self.display.clone(),
            reason: reason.to_string(),
            class: ErrorClass::Data,
        }
    }

    /// A file whose content cannot give the table its columns (empty, no record).
    pub fn no_columns(&self, reason: &str) -> SourceError {
        SourceError::Io {
            location: self.display.clone(),
            reason: reason.to_string(),
            class: ErrorClass::Data,
        }
    }
}

/// State of one read shared by the format readers.
pub(crate) struct ReadCtx {
    /// The table being read.
    pub table: TableConfig,
    /// The announced schema.
    pub schema: SchemaRef,
    /// Rows per batch.
    pub batch_size: usize,
    tx: BatchSender,
    skipped: SkipCounter,
    quarantined: Quarantine,
    skipped_this_read: u64,
    skipped_this_file: u64,
}

impl ReadCtx {
    /// Send a batch; `false` when the consumer is gone (stop reading).
    pub fn send(&self, batch: RecordBatch, file: &FileInput) -> bool {
        debug!(table = %self.table.name, file = %file.display, rows = batch.num_rows(), "Read batch.");
        self.tx
            .blocking_send(Ok(SourceBatch {
                batch,
                origin: file.origin.clone(),
            }))
            .is_ok()
    }

    /// A malformed record (`raw`: as read): an error with `on_error: fail`, else counted (and
    /// logged for the first few), kept for the quarantine table with `on_error: quarantine`,
    /// and `Ok`, meaning "skip it".
    pub fn bad_record(
        &mut self,
        file: &FileInput,
        line: u64,
        reason: String,
        raw: &str,
    ) -> Result<(), SourceError> {
        match self.table.on_error {
            OnError::Fail => Err(SourceError::BadRecord {
                file: file.display.clone(),
                line,
                reason,
            }),
            OnError::Quarantine => {
                self.skipped.add(1);
                self.skipped_this_file += 1;
                if let Ok(mut q) = self.quarantined.lock() {
                    q.push(QuarantinedRecord {
                        file: file.display.clone(),
                        line,
                        raw: raw.to_string(),
                        reason,
                    });
                }
                Ok(())
            }
            OnError::Skip => {
                self.skipped.add(1);
                self.skipped_this_read += 1;
                self.skipped_this_file += 1;
                if self.skipped_this_read <= LOGGED_SKIPS {
                    warn!(file = %file.display, line, reason = %reason, "Skipped malformed record.");
                }
                Ok(())
            }
        }
    }

    fn end_file(&mut self, file: &FileInput) {
        if self.skipped_this_file > 0 {
            warn!(
                table = %self.table.name,
                file = %file.display,
                skipped = self.skipped_this_file,
                "Skipped malformed records in file."
            );
        }
        self.skipped_this_file = 0;
    }
}

/// The format of a file and whether it is gzipped, from the configuration and its name.
fn detect(files: &FilesTable, rel: &str) -> Result<(FileFormat, bool, bool), String> {
    let lower = rel.to_ascii_lowercase();
    let gz = lower.ends_with(".gz");
    let base = lower.strip_suffix(".gz").unwrap_or(&lower);
    let tsv = base.ends_with(".tsv");
    let by_ext = if base.ends_with(".csv") || tsv {
        Some(FileFormat::Csv)
    } else if base.ends_with(".ndjson") || base.ends_with(".jsonl") || base.ends_with(".json") {
        Some(FileFormat::Ndjson)
    } else if base.ends_with(".parquet") {
        Some(FileFormat::Parquet)
    } else if [".xlsx", ".xlsm", ".xlsb", ".xls", ".ods"]
        .iter()
        .any(|ext| base.ends_with(ext))
    {
        Some(FileFormat::Xlsx)
    } else {
        None
    };
    let format = files.format.or(by_ext).ok_or_else(|| {
        "cannot tell the format from the file name; set `format:` (csv, ndjson, parquet or xlsx) on the table"
            .to_string()
    })?;
    let gzip = match files.compression {
        Compression::Auto => gz,
        Compression::Gzip => true,
        Compression::None => false,
    };
    Ok((format, gzip, tsv))
}

/// What a format reader knows after reading the first file.
enum Plan {
    Csv(csvfile::CsvPlan),
    Ndjson(ndjson::NdjsonPlan),
    Parquet(parquetfile::ParquetPlan),
    Excel(excel::ExcelPlan),
}

struct ReadJob {
    connection: String,
    location: Location,
    entries: Vec<Entry>,
    request: ReadRequest,
    files: FilesTable,
    skipped: SkipCounter,
    quarantined: Quarantine,
}

impl ReadJob {
    fn run(
        self,
        handle: &tokio::runtime::Handle,
        schema_tx: oneshot::Sender<Result<SchemaRef, SourceError>>,
        tx: BatchSender,
    ) {
        let mut schema_tx = Some(schema_tx);
        if let Err(e) = self.produce(handle, &mut schema_tx, &tx) {
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

    /// Make an entry readable as a local file (download remote objects, gunzip Parquet).
    fn fetch(
        &self,
        handle: &tokio::runtime::Handle,
        entry: &Entry,
        format: FileFormat,
    ) -> Result<FileInput, SourceError> {
        let display = self.location.file_display(&entry.rel);
        let table = &self.request.table;
        let (_, gzip, tsv) =
            detect(&self.files, &entry.rel).map_err(|reason| SourceError::Config {
                table: table.name.clone(),
                reason: format!("{display}: {reason}"),
            })?;
        let io = |e: std::io::Error| SourceError::Io {
            location: display.clone(),
            class: ErrorClass::of_file_io(&e),
            reason: e.to_string(),
        };
        let store = |e: deltalake::ObjectStoreError| SourceError::Io {
            location: display.clone(),
            class: ErrorClass::of_object_store(&e),
            reason: e.to_string(),
        };
        let (path, mut temp) = match (&entry.key, &self.location) {
            (EntryKey::Local(p), _) => (p.clone(), None),
            (
                EntryKey::Object(obj),
                Location::Remote {
                    store: store_of, ..
                },
            ) => {
                let mut tmp = tempfile::NamedTempFile::new().map_err(io)?;
                handle.block_on(async {
                    let got = store_of.get(obj).await.map_err(store)?;
                    let mut stream = got.into_stream();
                    while let Some(chunk) = stream.next().await {
                        let chunk = chunk.map_err(store)?;
                        tmp.write_all(&chunk).map_err(io)?;
                    }
                    tmp.flush().map_err(io)
                })?;
                (tmp.path().to_path_buf(), Some(tmp))
            }
            (EntryKey::Object(_), Location::Local(_)) => {
                return Err(SourceError::Internal(
                    "object key under a local folder".into(),
                ));
            }
        };
        let mut gzip = gzip;
        let mut path = path;
        if matches!(format, FileFormat::Parquet | FileFormat::Xlsx) && gzip {
            // Parquet and spreadsheets need random access: decompress to a temporary file.
            let mut out = tempfile::NamedTempFile::new().map_err(io)?;
            let file = std::fs::File::open(&path).map_err(io)?;
            std::io::copy(&mut flate2::read::MultiGzDecoder::new(file), &mut out).map_err(io)?;
            path = out.path().to_path_buf();
            temp = Some(out);
            gzip = false;
        }
        Ok(FileInput {
            display,
            origin: format!("{}:{}", self.connection, entry.rel).into(),
            path,
            gzip,
            tsv,
            _temp: temp,
        })
    }

    fn produce(
        &self,
        handle: &tokio::runtime::Handle,
        schema_tx: &mut Option<oneshot::Sender<Result<SchemaRef, SourceError>>>,
        tx: &BatchSender,
    ) -> Result<(), SourceError> {
        let table = &self.request.table;
        let Some(first) = self.entries.first() else {
            return Err(SourceError::Internal("no file to read".into()));
        };
        let (format, _, _) =
            detect(&self.files, &first.rel).map_err(|reason| SourceError::Config {
                table: table.name.clone(),
                reason: format!("{}: {reason}", self.location.file_display(&first.rel)),
            })?;
        for e in &self.entries {
            let (f, _, _) = detect(&self.files, &e.rel).map_err(|reason| SourceError::Config {
                table: table.name.clone(),
                reason: format!("{}: {reason}", self.location.file_display(&e.rel)),
            })?;
            if f != format {
                return Err(SourceError::Config {
                    table: table.name.clone(),
                    reason: format!(
                        "{} is {f:?} but {} is {format:?}; one table reads one format (narrow the glob or set `format:`)",
                        self.location.file_display(&e.rel),
                        self.location.file_display(&first.rel)
                    ),
                });
            }
        }

        let mut first_input = Some(self.fetch(handle, first, format)?);
        let (plan, schema) = {
            let input = first_input
                .as_ref()
                .ok_or_else(|| SourceError::Internal("first file".into()))?;
            match format {
                FileFormat::Csv => {
                    let p = csvfile::CsvPlan::infer(
                        table,
                        self.files.csv.clone().unwrap_or_default(),
                        input,
                        self.request.table_schema.as_deref(),
                    )?;
                    let s = p.schema();
                    (Plan::Csv(p), s)
                }
                FileFormat::Ndjson => {
                    let p = ndjson::NdjsonPlan::infer(table, input)?;
                    let s = p.schema();
                    (Plan::Ndjson(p), s)
                }
                FileFormat::Parquet => {
                    let p = parquetfile::ParquetPlan::infer(table, input)?;
                    let s = p.schema();
                    (Plan::Parquet(p), s)
                }
                FileFormat::Xlsx => {
                    let p = excel::ExcelPlan::infer(
                        table,
                        self.files.excel.clone().unwrap_or_default(),
                        input,
                        self.request.table_schema.as_deref(),
                    )?;
                    let s = p.schema();
                    (Plan::Excel(p), s)
                }
            }
        };
        if let Some(stx) = schema_tx.take()
            && stx.send(Ok(schema.clone())).is_err()
        {
            return Ok(());
        }
        let batch_size = match self.request.batch_size {
            0 => DEFAULT_FILE_BATCH_SIZE,
            n => n,
        };
        let mut ctx = ReadCtx {
            table: table.clone(),
            schema,
            batch_size,
            tx: tx.clone(),
            skipped: self.skipped.clone(),
            quarantined: self.quarantined.clone(),
            skipped_this_read: 0,
            skipped_this_file: 0,
        };
        for entry in &self.entries {
            let input = match first_input.take() {
                Some(i) => i,
                None => self.fetch(handle, entry, format)?,
            };
            debug!(table = %table.name, file = %input.display, "Reading file.");
            let more = match &plan {
                Plan::Csv(p) => p.read_file(&input, &mut ctx)?,
                Plan::Ndjson(p) => p.read_file(&input, &mut ctx)?,
                Plan::Parquet(p) => p.read_file(&input, &mut ctx)?,
                Plan::Excel(p) => p.read_file(&input, &mut ctx)?,
            };
            ctx.end_file(&input);
            if !more {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// The files connector's registration (`type: files`).
pub(crate) struct Registration;

/// The files connector, as [`crate::registry::connectors`] lists it.
pub(crate) static CONNECTOR: Registration = Registration;

impl crate::registry::Connector for Registration {
    fn kind(&self) -> &'static str {
        "files"
    }
    fn table_keys(&self) -> &'static [&'static str] {
        &config::KEYS
    }
    fn connection_problems(
        &self,
        conn: &tributary_core::config::ConnectionConfig,
    ) -> Vec<(String, String)> {
        crate::registry::connection_problems_of(conn, crate::util::StoreConnection::problems)
    }
    fn table_problems(&self, table: &TableConfig) -> Vec<(String, String)> {
        FilesTable::problems(table)
    }
    fn open(
        &self,
        name: &str,
        conn: &tributary_core::config::ConnectionConfig,
        project_root: &Path,
    ) -> Result<Box<dyn Source>, SourceError> {
        Ok(Box::new(FilesSource::from_connection(
            name,
            conn,
            project_root,
        )?))
    }
}
