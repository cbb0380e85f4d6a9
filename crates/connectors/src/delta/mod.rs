//! Delta source: Delta tables under a local folder or an object-store URL (tables Databricks,
//! Spark, delta-rs, Python `deltalake` or another Tributary project wrote) read as a source.
//!
//! A table's `name` is its path under the connection's URL (`sales/orders`). Each batch's
//! origin is `<connection>:<name>`.
//!
//! # Full reads
//!
//! `mode: full` reads the table's current version, or the one `version: N` or `timestamp:`
//! names (time travel). The columns are the table's, with Delta-storable Arrow types.
//!
//! # Incremental reads
//!
//! `mode: incremental` reads by table version. The read's summary (`ReadSummary::position`) carries the version a
//! read reads up to; the loader commits it as the bronze table's watermark
//! (`_delta_version`) with the rows and passes it back as `since` on the next run, which reads
//! only the commits after it:
//!
//! - with the change data feed (`delta.enableChangeDataFeed = true`): the feed's rows, i.e.
//!   `insert`, `update_postimage` and `delete` rows (update pre-images are left out);
//! - without it: the rows of the data files that commits added (`insert`). Commits that only
//!   rearrange files (OPTIMIZE, compaction) are skipped; a commit that removed or rewrote rows
//!   (DELETE, UPDATE, MERGE, overwrite) fails the read with an error suggesting the change data
//!   feed or `--full-refresh`.
//!
//! The first incremental read (and `--full-refresh`) reads the whole table at its current
//! version `N`: every row is an `insert` of version `N`. Incremental reads add three columns:
//! `_change_type` (text), `_commit_version` (bigint) and `_commit_timestamp` (timestamp, UTC).
//!
//! Columns named `_tributary_*` (a table another Tributary project loaded) are renamed
//! `_upstream_tributary_*`, since bronze tables add their own `_tributary_*` columns.

pub mod config;
mod shape;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use deltalake::DeltaTable;
use deltalake::datafusion::catalog::TableProvider;
use deltalake::datafusion::error::DataFusionError;
use deltalake::datafusion::execution::SendableRecordBatchStream;
use deltalake::datafusion::prelude::{SessionConfig, SessionContext, ident, lit};
use deltalake::delta_datafusion::DeltaCdfTableProvider;
use futures::StreamExt;
use tracing::info;
use tributary_core::config::{LoadMode, TableConfig};
use tributary_core::redact::redact_url;
use tributary_core::{
    CursorValue, ErrorClass, Position, ReadRequest, ReadSummary, Source, SourceBatch, SourceError,
    SourceStream,
};
use tributary_lake::changes::{
    added_scans, commit_timestamp_ms, data_added_between, has_change_data_feed as change_data_feed,
};
use tributary_lake::{LakeError, TableVersion, datafusion_class, delta_class, open_table_at};
use url::Url;

use crate::util::batch_channel;
pub use config::DeltaOptions;
use shape::{Shaper, Stamp};

/// The watermark of incremental Delta loads: the last source version read.
pub const VERSION_WATERMARK: &str = "_delta_version";
/// Incremental reads: the kind of change (`insert`, `update_postimage`, `delete`).
pub const CHANGE_TYPE: &str = "_change_type";
/// Incremental reads: the version of the commit that made the change.
pub const COMMIT_VERSION: &str = "_commit_version";
/// Incremental reads: when that commit was made (UTC).
pub const COMMIT_TIMESTAMP: &str = "_commit_timestamp";
/// Source columns named `_tributary_*` load as `_upstream_tributary_*`.
pub const UPSTREAM_PREFIX: &str = "_upstream";

/// The change type of update pre-images, which incremental reads leave out.
const UPDATE_PREIMAGE: &str = "update_preimage";

/// Delta tables under a local folder or an object-store URL.
#[derive(Debug)]
pub struct DeltaSource {
    name: String,
    /// Root URL, ending in `/`.
    root: Url,
    options: HashMap<String, String>,
}

/// What [`DeltaSource::check_table`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableCheck {
    /// The table's current version.
    pub version: u64,
    /// Whether the change data feed is enabled.
    pub change_data_feed: bool,
}

/// One scan of a read, with what its rows are.
struct Part {
    provider: Arc<dyn TableProvider>,
    /// A change data feed scan (its update pre-images are filtered out).
    feed: bool,
    /// For other scans: the version and time their rows are `insert`s of.
    stamp: Option<Stamp>,
}

impl DeltaSource {
    /// A source for connection `name` (`type: delta`): its `url` and `storage_options`.
    pub fn from_connection(
        name: &str,
        conn: &tributary_core::config::ConnectionConfig,
        project_root: &Path,
    ) -> Result<Self, SourceError> {
        let c: crate::util::StoreConnection = crate::registry::connection_options(name, conn)?;
        DeltaSource::new(name, &c.url, c.storage_options, project_root)
    }

    /// A source for the Delta tables under `url`: a local folder (relative paths resolve
    /// against `project_root`), or `file://`, `az://`, `abfss://`, `s3://`, `gs://` URLs with
    /// `storage_options` for the object store. Nothing is opened until a read or check.
    pub fn new(
        name: &str,
        url: &str,
        storage_options: BTreeMap<String, String>,
        project_root: &Path,
    ) -> Result<Self, SourceError> {
        let connect_error = |reason: String| SourceError::Connect {
            connection: name.to_string(),
            target: redact_url(url),
            reason,
            class: ErrorClass::Config,
        };
        let mut root = if url.contains("://") {
            Url::parse(url).map_err(|e| connect_error(format!("invalid URL: {e}")))?
        } else {
            let p = Path::new(url);
            let full = if p.is_absolute() {
                p.to_path_buf()
            } else {
                project_root.join(p)
            };
            Url::from_directory_path(&full)
                .map_err(|_| connect_error(format!("{} is not an absolute path", full.display())))?
        };
        if !root.path().ends_with('/') {
            root.set_path(&format!("{}/", root.path()));
        }
        Ok(DeltaSource {
            name: name.to_string(),
            root,
            options: storage_options.into_iter().collect(),
        })
    }

    /// The root URL without secrets, for messages.
    fn display_root(&self) -> String {
        redact_url(self.root.as_str())
    }

    /// `<root>/<table>/`.
    fn table_url(&self, table: &str) -> Result<Url, SourceError> {
        let rel = table.trim().trim_matches('/');
        if rel.is_empty() || rel.split('/').any(|p| p == "..") {
            return Err(SourceError::Config {
                table: table.to_string(),
                reason: "a Delta table's name is its path under the connection url (e.g. `sales/orders`)".into(),
            });
        }
        self.root
            .join(&format!("{rel}/"))
            .map_err(|e| SourceError::Config {
                table: table.to_string(),
                reason: format!("cannot place it under {}: {e}", self.display_root()),
            })
    }

    fn label(&self, table: &str) -> String {
        format!("{}:{table}", self.name)
    }

    /// A lake error about `table`, as a source error.
    fn lake_error(&self, table: &str, e: LakeError) -> SourceError {
        SourceError::Query {
            connection: self.name.clone(),
            table: table.to_string(),
            reason: e.to_string(),
            class: e.class(),
        }
    }

    fn df_error(&self, table: &str, doing: &str, e: DataFusionError) -> SourceError {
        SourceError::Query {
            connection: self.name.clone(),
            table: table.to_string(),
            reason: format!("{doing}: {e}"),
            class: datafusion_class(&e),
        }
    }

    /// Open `table` at its latest version or the one `version` names; a missing table is an
    /// error naming it and where it was looked for.
    async fn open(
        &self,
        table: &str,
        version: Option<TableVersion>,
    ) -> Result<DeltaTable, SourceError> {
        let url = self.table_url(table)?;
        let shown = redact_url(url.as_str());
        match open_table_at(&self.label(table), url, &self.options, version).await {
            Ok(Some(t)) => Ok(t),
            Ok(None) => Err(SourceError::Config {
                table: table.to_string(),
                reason: format!(
                    "no Delta table at {shown} (no _delta_log there); a table's `name` is its path under the connection url {}",
                    self.display_root()
                ),
            }),
            Err(e) => Err(self.lake_error(table, e)),
        }
    }

    /// Open `table` for `validate --connections`: its current version and whether it has the
    /// change data feed.
    pub async fn check_table(&self, table: &str) -> Result<TableCheck, SourceError> {
        let t = self.open(table, None).await?;
        Ok(TableCheck {
            version: current_version(&t, table)?,
            change_data_feed: change_data_feed(&t),
        })
    }

    /// A DataFusion session for reads, with the requested batch size.
    fn session(batch_size: usize) -> SessionContext {
        SessionContext::new_with_config(SessionConfig::new().with_batch_size(batch_size.max(1)))
    }

    /// The whole table at its loaded version; with `changes`, as `insert`s of that version.
    async fn snapshot_parts(
        &self,
        table: &str,
        t: &DeltaTable,
        version: u64,
        changes: bool,
    ) -> Result<(Shaper, Vec<Part>), SourceError> {
        let provider = t
            .table_provider()
            .await
            .map_err(|e| self.df_error(table, "planning the scan", e))?;
        let shaper = Shaper::new(table, &provider.schema(), changes, false)?;
        let stamp = if changes {
            Some(Stamp {
                version,
                timestamp_micros: self.commit_micros(table, t, version).await,
            })
        } else {
            None
        };
        Ok((
            shaper,
            vec![Part {
                provider,
                feed: false,
                stamp,
            }],
        ))
    }

    /// When commit `version` was made, in microseconds: its commitInfo, else the commit file's
    /// time, else unknown.
    async fn commit_micros(&self, table: &str, t: &DeltaTable, version: u64) -> Option<i64> {
        let ms = match commit_timestamp_ms(&self.label(table), t, version).await {
            Ok(Some(ms)) => Some(ms),
            _ => t.snapshot().ok().and_then(|s| s.version_timestamp(version)),
        };
        ms.and_then(|ms| ms.checked_mul(1000))
    }

    /// The change data feed of the commits after `after` up to `upto`.
    fn feed_parts(
        &self,
        table: &str,
        t: &DeltaTable,
        after: u64,
        upto: u64,
    ) -> Result<(Shaper, Vec<Part>), SourceError> {
        let builder = t
            .clone()
            .scan_cdf()
            .with_starting_version(after + 1)
            .with_ending_version(upto);
        let provider = DeltaCdfTableProvider::try_new(builder).map_err(|e| SourceError::Query {
            connection: self.name.clone(),
            table: table.to_string(),
            reason: format!("reading the change data feed: {e}"),
            class: delta_class(&e),
        })?;
        let shaper = Shaper::new(table, &provider.schema(), true, true)?;
        info!(connection = %self.name, table = %table, from_version = after + 1, to_version = upto, "Reading the change data feed.");
        Ok((
            shaper,
            vec![Part {
                provider: Arc::new(provider),
                feed: true,
                stamp: None,
            }],
        ))
    }

    /// The files added by the commits after `after` up to `upto`, one scan per commit (and
    /// per version to read them at).
    async fn added_parts(
        &self,
        table: &str,
        t: &DeltaTable,
        after: u64,
        upto: u64,
    ) -> Result<(Shaper, Vec<Part>), SourceError> {
        let latest = t
            .table_provider()
            .await
            .map_err(|e| self.df_error(table, "planning the scan", e))?;
        let shaper = Shaper::new(table, &latest.schema(), true, false)?;
        let added = data_added_between(&self.label(table), t, after, upto)
            .await
            .map_err(|e| match e {
                LakeError::DataRemoved {
                    version, operation, ..
                } => SourceError::Config {
                    table: table.to_string(),
                    reason: format!(
                        "version {version} ({operation}) removed or rewrote rows, which reading only the files added since the last load cannot follow. \
                         Without the change data feed an incremental read sees only added rows: enable it on the source table \
                         (delta.enableChangeDataFeed = true) so that updates and deletes arrive as change rows, \
                         or reload the whole table with `tributary run --full-refresh`"
                    ),
                },
                LakeError::CommitMissing { version, .. } => SourceError::Config {
                    table: table.to_string(),
                    reason: format!(
                        "version {version} is no longer in the transaction log (log retention removed it); \
                         reload the whole table with `tributary run --full-refresh`"
                    ),
                },
                other => self.lake_error(table, other),
            })?;
        for (version, operation) in &added.skipped {
            info!(connection = %self.name, table = %table, version, operation = %operation, "Skipped a commit that changed no rows.");
        }
        info!(connection = %self.name, table = %table, from_version = after + 1, to_version = upto, commits = added.commits.len(), files = added.files(), "Reading the files added since the last load.");
        let scans = added_scans(&self.label(table), t, added)
            .await
            .map_err(|e| self.lake_error(table, e))?;
        let parts = scans
            .into_iter()
            .map(|scan| Part {
                provider: scan.provider,
                feed: false,
                stamp: Some(Stamp {
                    version: scan.version,
                    timestamp_micros: scan.timestamp_ms.and_then(|ms| ms.checked_mul(1000)),
                }),
            })
            .collect();
        Ok((shaper, parts))
    }
}

/// The loaded version of `t`.
fn current_version(t: &DeltaTable, table: &str) -> Result<u64, SourceError> {
    t.version().ok_or_else(|| {
        SourceError::Internal(format!("Delta table {table} was opened without a version"))
    })
}

/// Time travel requested by a table's configuration.
fn time_travel(t: &TableConfig) -> Result<Option<TableVersion>, SourceError> {
    let o = DeltaOptions::of(t)?;
    match (o.version, &o.timestamp) {
        (Some(v), _) => Ok(Some(TableVersion::Version(v))),
        (None, Some(ts)) => chrono::DateTime::parse_from_rfc3339(ts)
            .map(|d| Some(TableVersion::AsOf(d.with_timezone(&chrono::Utc))))
            .map_err(|e| SourceError::Config {
                table: t.name.clone(),
                reason: format!(
                    "timestamp `{ts}` is not an RFC 3339 instant ({e}); write e.g. `2024-05-01T00:00:00Z`"
                ),
            }),
        (None, None) => Ok(None),
    }
}

impl Part {
    async fn execute(
        &self,
        ctx: &SessionContext,
    ) -> Result<SendableRecordBatchStream, DataFusionError> {
        let mut df = ctx.read_table(self.provider.clone())?;
        if self.feed {
            df = df.filter(ident(CHANGE_TYPE).not_eq(lit(UPDATE_PREIMAGE)))?;
        }
        df.execute_stream().await
    }
}

#[async_trait]
impl Source for DeltaSource {
    async fn check(&self) -> Result<(), SourceError> {
        let err = |reason: String, class: ErrorClass| SourceError::Connect {
            connection: self.name.clone(),
            target: self.display_root(),
            reason,
            class,
        };
        if self.root.scheme() == "file" {
            let path = self
                .root
                .to_file_path()
                .map_err(|_| err("not a local path".into(), ErrorClass::Config))?;
            if !path.is_dir() {
                return Err(err(
                    "no such folder (relative paths resolve against the project folder)".into(),
                    ErrorClass::Config,
                ));
            }
        }
        let store = deltalake::logstore::store_for(&self.root, self.options.iter())
            .map_err(|e| err(e.to_string(), delta_class(&e)))?;
        store
            .list_with_delimiter(None)
            .await
            .map_err(|e| err(e.to_string(), ErrorClass::of_object_store(&e)))?;
        Ok(())
    }

    async fn read(&self, request: ReadRequest) -> Result<SourceStream, SourceError> {
        let config = &request.table;
        let table = config.name.trim().to_string();
        let incremental = config.mode == LoadMode::Incremental;
        let after: Option<u64> = match &request.since {
            None => None,
            Some((column, CursorValue::Int(v))) if column == VERSION_WATERMARK && *v >= 0 => {
                Some(*v as u64)
            }
            Some((column, value)) => {
                return Err(SourceError::Config {
                    table,
                    reason: format!(
                        "the bronze table's watermark `{column} = {value}` is not a Delta table version; reload it with `tributary run --full-refresh`"
                    ),
                });
            }
        };
        let travel = if incremental {
            None
        } else {
            time_travel(config)?
        };
        let t = self.open(&table, travel).await?;
        let version = current_version(&t, &table)?;
        let (shaper, parts) = match after {
            None => {
                self.snapshot_parts(&table, &t, version, incremental)
                    .await?
            }
            Some(after) if after > version => {
                return Err(SourceError::Config {
                    table,
                    reason: format!(
                        "the source table is at version {version}, before version {after} that was already loaded: it was recreated or restored; reload it with `tributary run --full-refresh`"
                    ),
                });
            }
            Some(after) if after == version => {
                let provider = t
                    .table_provider()
                    .await
                    .map_err(|e| self.df_error(&table, "planning the scan", e))?;
                info!(connection = %self.name, table = %table, version, "No new versions.");
                (
                    Shaper::new(&table, &provider.schema(), true, false)?,
                    Vec::new(),
                )
            }
            Some(after) if change_data_feed(&t) => self.feed_parts(&table, &t, after, version)?,
            Some(after) => self.added_parts(&table, &t, after, version).await?,
        };

        let schema = shaper.schema();
        let ctx = DeltaSource::session(request.batch_size);
        let origin: Arc<str> = Arc::from(self.label(&table).as_str());
        let connection = self.name.clone();
        let (tx, batches) = batch_channel();
        tokio::spawn(async move {
            let failed = |reason: String, e: &DataFusionError| SourceError::Query {
                connection: connection.clone(),
                table: table.clone(),
                reason,
                class: datafusion_class(e),
            };
            for part in parts {
                let mut stream = match part.execute(&ctx).await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx
                            .send(Err(failed(format!("starting the scan: {e}"), &e)))
                            .await;
                        return;
                    }
                };
                while let Some(item) = stream.next().await {
                    let item = item
                        .map_err(|e| failed(format!("reading: {e}"), &e))
                        .and_then(|b| shaper.shape(&b, part.stamp.as_ref()));
                    let stop = item.is_err();
                    let item = item.map(|batch| SourceBatch {
                        batch,
                        origin: origin.clone(),
                    });
                    if matches!(&item, Ok(b) if b.batch.num_rows() == 0) {
                        continue;
                    }
                    if tx.send(item).await.is_err() || stop {
                        return;
                    }
                }
            }
        });
        // The version this read ends at: an incremental load commits it as its watermark.
        let position = i64::try_from(version).ok().map(|v| Position {
            name: VERSION_WATERMARK.to_string(),
            value: CursorValue::Int(v),
        });
        Ok(SourceStream::of_batches(schema, batches, move |rows| {
            ReadSummary {
                rows,
                position,
                ..ReadSummary::default()
            }
        }))
    }
}

/// The Delta connector's registration (`type: delta`).
pub(crate) struct Registration;

/// The Delta connector, as [`crate::registry::connectors`] lists it.
pub(crate) static CONNECTOR: Registration = Registration;

impl crate::registry::Connector for Registration {
    fn kind(&self) -> &'static str {
        "delta"
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
        let mut out = DeltaOptions::problems(table);
        out.extend(crate::registry::on_error_problem(table));
        out
    }
    fn open(
        &self,
        name: &str,
        conn: &tributary_core::config::ConnectionConfig,
        project_root: &Path,
    ) -> Result<Box<dyn Source>, SourceError> {
        Ok(Box::new(DeltaSource::from_connection(
            name,
            conn,
            project_root,
        )?))
    }
}
