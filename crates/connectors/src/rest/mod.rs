//! REST API sources (`type: rest`): each table is a resource — a `path` under the connection's
//! `base_url`, with query `params`, a `records` selector and a `pagination` style.
//!
//! A read requests every page in order (within the connection's rate limit, retrying 429, 408,
//! 5xx and connection failures, honouring `Retry-After`), and writes each page's records as
//! NDJSON lines to an unnamed temporary file as they arrive. When the last page is in, the
//! schema is inferred from *all* records — so a field that first appears on page 3 is a column
//! (NULL before it), not an error and not dropped — merged with the target table's columns, and
//! the file is decoded into Arrow batches by the NDJSON code the files connector uses.
//!
//! Memory holds one page (its body and the records' field types), not the resource; disk holds
//! the resource's records once, as compact JSON, until the read ends. The first batch is
//! produced only after the last page, so a page that fails after its retries fails the read
//! before anything reaches the lake.
//!
//! Incremental tables send the watermark (minus `lookback`) as `cursor_param`, so the API
//! returns only newer records; the loader then drops rows it has already loaded, as for every
//! source.
//!
//! Secrets never appear in messages: URLs are shown without their query string and user
//! information, and configured header values, passwords, keys, client secrets and tokens are
//! replaced with `***` in quoted response bodies and error texts.

mod client;
pub mod config;
pub mod connection;
mod pages;

use std::io::{BufReader, BufWriter, Seek, SeekFrom, Write};
use std::sync::Arc;

use crate::rest::connection::{NestedMode, Pagination, RestConnection};
use async_trait::async_trait;
use deltalake::arrow::datatypes::SchemaRef;
use tokio::sync::oneshot;
use tracing::{debug, info};
use tributary_core::config::{LoadMode, TableConfig};
use tributary_core::jsonpath::JsonPath;
use tributary_core::{ErrorClass, ReadRequest, Source, SourceError, SourceStream};

pub use config::RestTable;

use crate::command::{BatchSender, ChannelSink};
use crate::files::ndjson::{Line, Lines, NdjsonPlan};
use crate::http::shown;
use crate::util::batch_channel;
use client::Client;
use pages::{Pager, RecordShape};

/// A REST API connection.
pub struct RestSource {
    client: Client,
    check_path: Option<String>,
}

impl RestSource {
    /// The source of connection `name`. Nothing is requested until [`Source::check`] or
    /// [`Source::read`].
    pub fn new(name: &str, config: &RestConnection) -> Result<RestSource, SourceError> {
        Ok(RestSource {
            client: Client::new(name, config)?,
            check_path: config.check_path.clone(),
        })
    }

    fn config_error(table: &TableConfig, reason: String) -> SourceError {
        SourceError::Config {
            table: table.name.clone(),
            reason,
        }
    }

    /// Request every page of the table's resource, writing the records to `spill`. Returns
    /// the number of pages and records.
    async fn fetch(
        &self,
        request: &ReadRequest,
        spill: &mut (dyn Write + Send),
    ) -> Result<(u64, u64), SourceError> {
        let table = &request.table;
        let rest = RestTable::of(table)?;
        let path = rest.path.as_deref().ok_or_else(|| {
            Self::config_error(
                table,
                "tables of a rest connection need `path` (the resource's path under base_url)"
                    .into(),
            )
        })?;
        let records = JsonPath::parse(rest.records.as_deref().unwrap_or("$"))
            .map_err(|e| Self::config_error(table, format!("records: {e}")))?;
        let pagination = rest.pagination.clone().unwrap_or(Pagination::None);
        let kind = pagination.kind();
        let mut pager = Pager::new(pagination)
            .map_err(|e| Self::config_error(table, format!("pagination: {e}")))?;
        let shape = RecordShape {
            records: &records,
            nested: rest.nested.unwrap_or(NestedMode::Structs),
            cast: &table.cast,
        };

        let mut url = self.client.resolve(path)?;
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in &rest.params {
                q.append_pair(k, v);
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        if let (LoadMode::Incremental, Some(param), Some((_, since))) =
            (table.mode, &rest.cursor_param, &request.since)
        {
            client::set_query(&mut url, param, &since.to_string());
        }
        let mut url = pager.first(url);
        let origin = self.client.base_url().origin();
        info!(connection = %self.client.connection(), table = %table.name, url = %shown(&url), pagination = kind, "Reading REST resource.");

        let (mut page, mut total) = (1u64, 0u64);
        loop {
            let during = format!("table {}, page {page}", table.name);
            let fetched = self.client.get(&url, &during).await?;
            let bad = |reason: String| SourceError::BadResponse {
                connection: self.client.connection().to_string(),
                during: during.clone(),
                request: format!("GET {}", shown(&url)),
                reason: self.client.scrub(&reason, None),
            };
            let n = pages::write_records(&fetched.body, &shape, &mut *spill).map_err(bad)?;
            total += n as u64;
            debug!(connection = %self.client.connection(), table = %table.name, page, records = n, status = fetched.status.as_u16(), "Page read.");
            let body = if pager.needs_body() && n > 0 {
                Some(
                    serde_json::from_slice::<serde_json::Value>(&fetched.body)
                        .map_err(|e| bad(format!("the response is not JSON ({e})")))?,
                )
            } else {
                None
            };
            let next = pager
                .next(&url, &fetched.headers, body.as_ref(), n)
                .map_err(bad)?;
            let Some(next) = next else { break };
            if next.origin() != origin {
                return Err(bad(format!(
                    "the next page is on another server ({}); only URLs on the base_url's server are followed, so that credentials are not sent elsewhere",
                    shown(&next)
                )));
            }
            url = next;
            page += 1;
        }
        Ok((page, total))
    }
}

#[async_trait]
impl Source for RestSource {
    async fn check(&self) -> Result<(), SourceError> {
        self.check_detail().await.map(|_| ())
    }

    async fn check_detail(&self) -> Result<Option<String>, SourceError> {
        let url = match &self.check_path {
            Some(p) => self.client.resolve(p)?,
            None => self.client.base_url().clone(),
        };
        match self.client.get(&url, "check").await {
            Ok(fetched) => Ok(Some(format!("GET {}: {}", shown(&url), fetched.status))),
            Err(SourceError::Http {
                connection,
                during,
                request,
                status: Some(status),
                mut reason,
                class,
            }) if self.check_path.is_none() && (status == 404 || status == 405) => {
                reason.push_str(
                    "; set `check_path` on the connection to an endpoint that answers GET with 2xx (e.g. `/health` or a small resource)",
                );
                Err(SourceError::Http {
                    connection,
                    during,
                    request,
                    status: Some(status),
                    reason,
                    class,
                })
            }
            Err(e) => Err(e),
        }
    }

    async fn read(&self, request: ReadRequest) -> Result<SourceStream, SourceError> {
        let table = request.table.clone();
        let io = |e: std::io::Error| SourceError::Io {
            location: "a temporary file for the API's records".into(),
            class: ErrorClass::of_file_io(&e),
            reason: format!(
                "{e} (it is in {}; set TMPDIR to a folder with more space)",
                std::env::temp_dir().display()
            ),
        };
        let file = tempfile::tempfile().map_err(io)?;
        let mut spill = BufWriter::with_capacity(256 * 1024, file.try_clone().map_err(io)?);
        let (pages, records) = self.fetch(&request, &mut spill).await?;
        spill.flush().map_err(io)?;
        drop(spill);
        info!(connection = %self.client.connection(), table = %table.name, pages, records, "REST resource read.");

        let path = RestTable::of(&table)?.path;
        let display = match &path {
            Some(p) => format!("GET {}", shown(&self.client.resolve(p)?)),
            None => table.name.clone(),
        };
        // `<connection>:/<path>` whether the path was written with its leading `/` or not.
        let origin: Arc<str> = format!(
            "{}:/{}",
            self.client.connection(),
            path.as_deref()
                .unwrap_or(&table.name)
                .trim_start_matches('/')
        )
        .into();
        let (schema_tx, schema_rx) = oneshot::channel();
        let (tx, batches) = batch_channel();
        let job = DecodeJob {
            connection: self.client.connection().to_string(),
            file,
            display,
            origin,
            request,
            records,
        };
        tokio::task::spawn_blocking(move || job.run(schema_tx, tx));
        match schema_rx.await {
            Ok(Ok(schema)) => Ok(SourceStream::rows_only(schema, batches)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(SourceError::Internal(
                "the REST decoder thread ended before announcing the schema".into(),
            )),
        }
    }
}

/// Infers the schema of the spilled records and decodes them, on a blocking thread.
struct DecodeJob {
    connection: String,
    file: std::fs::File,
    display: String,
    origin: Arc<str>,
    request: ReadRequest,
    records: u64,
}

impl DecodeJob {
    fn run(self, schema_tx: oneshot::Sender<Result<SchemaRef, SourceError>>, tx: BatchSender) {
        let mut schema_tx = Some(schema_tx);
        if let Err(e) = self.decode(&mut schema_tx, &tx) {
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

    fn lines(&self) -> Result<impl Iterator<Item = Result<Line, SourceError>> + Send, SourceError> {
        let mut file = self.file.try_clone().map_err(|e| self.io(e))?;
        file.seek(SeekFrom::Start(0)).map_err(|e| self.io(e))?;
        let mut lines = Lines::new(Box::new(BufReader::with_capacity(256 * 1024, file)));
        let display = self.display.clone();
        Ok(std::iter::from_fn(move || {
            lines
                .next_line()
                .map_err(|e| SourceError::Io {
                    location: format!("the records of {display}, in a temporary file"),
                    class: ErrorClass::of_file_io(&e),
                    reason: e.to_string(),
                })
                .transpose()
        }))
    }

    fn io(&self, e: std::io::Error) -> SourceError {
        SourceError::Io {
            location: format!("the records of {}, in a temporary file", self.display),
            class: ErrorClass::of_file_io(&e),
            reason: e.to_string(),
        }
    }

    fn decode(
        &self,
        schema_tx: &mut Option<oneshot::Sender<Result<SchemaRef, SourceError>>>,
        tx: &BatchSender,
    ) -> Result<(), SourceError> {
        let table = &self.request.table;
        let base = self.request.table_schema.as_deref();
        let plan =
            NdjsonPlan::infer_with(table, &mut self.lines()?, &self.display, usize::MAX, base)?;
        let plan = match plan {
            Some(p) => p,
            None if self.records == 0 => {
                return Err(SourceError::BadResponse {
                    connection: self.connection.clone(),
                    during: format!("table {}", table.name),
                    request: self.display.clone(),
                    reason: "the API returned no records, so the table's columns cannot be known yet; nothing was loaded (the first run that gets records creates the table)".into(),
                });
            }
            None => {
                return Err(SourceError::Internal(format!(
                    "{} records were read but none was found again for the schema",
                    self.records
                )));
            }
        };
        debug!(table = %table.name, columns = plan.schema().fields().len(), "Inferred the REST resource's schema.");
        let Some(stx) = schema_tx.take() else {
            return Err(SourceError::Internal(
                "the schema was announced twice".into(),
            ));
        };
        if stx.send(Ok(plan.schema())).is_err() {
            return Ok(());
        }
        let batch_size = self.request.batch_size.max(1);
        let records_of = format!("the records of {}", self.display);
        plan.read_lines(
            &mut self.lines()?,
            &self.display,
            batch_size,
            &mut ChannelSink {
                tx,
                origin: self.origin.clone(),
                display: &records_of,
            },
        )?;
        Ok(())
    }
}

/// The REST connector's registration (`type: rest`).
pub(crate) struct Registration;

/// The REST connector, as [`crate::registry::connectors`] lists it.
pub(crate) static CONNECTOR: Registration = Registration;

impl crate::registry::Connector for Registration {
    fn kind(&self) -> &'static str {
        "rest"
    }
    fn table_keys(&self) -> &'static [&'static str] {
        &config::KEYS
    }
    fn connection_problems(
        &self,
        conn: &tributary_core::config::ConnectionConfig,
    ) -> Vec<(String, String)> {
        crate::registry::connection_problems_of(conn, RestConnection::problems)
    }
    fn secrets(&self, conn: &tributary_core::config::ConnectionConfig) -> Vec<String> {
        let mut out = crate::registry::default_secrets(conn);
        if let Ok(rest) = conn.options_as::<RestConnection>()
            && let Some(auth) = &rest.auth
        {
            out.extend(auth.secrets().into_iter().map(str::to_string));
        }
        out
    }
    fn table_problems(&self, table: &TableConfig) -> Vec<(String, String)> {
        let mut out = RestTable::problems(table);
        out.extend(crate::registry::on_error_problem(table));
        out
    }
    fn open(
        &self,
        name: &str,
        conn: &tributary_core::config::ConnectionConfig,
        _project_root: &std::path::Path,
    ) -> Result<Box<dyn Source>, SourceError> {
        let rest: RestConnection = crate::registry::connection_options(name, conn)?;
        Ok(Box::new(RestSource::new(name, &rest)?))
    }
}
