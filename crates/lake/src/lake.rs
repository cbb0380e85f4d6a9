use deltalake::parquet::basic::Compression;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use deltalake::datafusion::catalog::MemorySchemaProvider;
use deltalake::datafusion::prelude::{SessionConfig, SessionContext};
use deltalake::logstore::object_store::ObjectStore;
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use tributary_core::redact::redact_url;
use url::Url;

use crate::{LakeError, WATERMARK_PROPERTY, Watermark};

/// The lake: a root location plus the options for its object store.
#[derive(Debug, Clone)]
pub struct Lake {
    root: Url,
    options: HashMap<String, String>,
    write: WriteOptions,
}

/// How [`crate::TableWriter`] writes Parquet files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions {
    /// The codec of every column chunk.
    pub compression: Compression,
    /// Files are rolled over at about this many bytes.
    pub target_file_bytes: u64,
    /// Rows per row group, at most: the writer buffers one row group, encoded, per file.
    pub row_group_rows: usize,
    /// The memory a row group may take, at most, estimated from the schema's column widths
    /// (fixed widths, 32 bytes per text or binary value): wide rows get smaller row groups.
    pub row_group_bytes: u64,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            compression: Compression::SNAPPY,
            target_file_bytes: 128 * 1024 * 1024,
            row_group_rows: 128 * 1024,
            row_group_bytes: 128 * 1024 * 1024,
        }
    }
}

/// What `tributary tables` shows for one table.
#[derive(Debug, Clone)]
pub struct TableInfo {
    /// Layer (`bronze`, `silver`, `gold`).
    pub layer: String,
    /// Table name within the layer.
    pub name: String,
    /// Current Delta version.
    pub version: u64,
    /// Rows, summed from the file statistics (`None` when a file has no statistics).
    pub rows: Option<u64>,
    /// Number of data files.
    pub files: usize,
    /// Bytes of data files.
    pub bytes: u64,
    /// When the current version was committed (milliseconds since the epoch).
    pub committed_at_ms: Option<i64>,
    /// The incremental watermark, if any.
    pub watermark: Option<Watermark>,
}

impl Lake {
    /// Resolve `location` (a local folder relative to `project_root`, or a URL). Local folders
    /// are created when missing.
    pub fn new(
        location: &str,
        project_root: &Path,
        options: &BTreeMap<String, String>,
    ) -> Result<Lake, LakeError> {
        let err = |reason: String| LakeError::Location {
            location: redact_url(location),
            reason,
        };
        let root = if location.contains("://") {
            let mut url = Url::parse(location).map_err(|e| err(format!("not a valid URL: {e}")))?;
            if !url.path().ends_with('/') {
                url.set_path(&format!("{}/", url.path()));
            }
            if url.scheme() == "file" {
                let path = url
                    .to_file_path()
                    .map_err(|_| err("not a local path".into()))?;
                std::fs::create_dir_all(&path)
                    .map_err(|e| err(format!("cannot create folder: {e}")))?;
            }
            url
        } else {
            let p = Path::new(location);
            let full = if p.is_absolute() {
                p.to_path_buf()
            } else {
                project_root.join(p)
            };
            std::fs::create_dir_all(&full)
                .map_err(|e| err(format!("cannot create folder {}: {e}", full.display())))?;
            let full = full
                .canonicalize()
                .map_err(|e| err(format!("cannot resolve {}: {e}", full.display())))?;
            Url::from_directory_path(&full)
                .map_err(|_| err(format!("{} is not an absolute path", full.display())))?
        };
        Ok(Lake {
            root,
            options: options.clone().into_iter().collect(),
            write: WriteOptions::default(),
        })
    }

    /// Write Parquet files with `options` instead of the defaults.
    pub fn with_write_options(mut self, options: WriteOptions) -> Lake {
        self.write = options;
        self
    }

    /// How tables are written.
    pub fn write_options(&self) -> WriteOptions {
        self.write
    }

    /// The lake's root URL (always ends in `/`).
    pub fn root(&self) -> &Url {
        &self.root
    }

    /// The root, printable (no secrets).
    pub fn display_root(&self) -> String {
        redact_url(self.root.as_str())
    }

    /// Object-store options.
    pub fn options(&self) -> &HashMap<String, String> {
        &self.options
    }

    /// `<root>/<layer>/<name>/`.
    pub fn table_url(&self, layer: &str, name: &str) -> Result<Url, LakeError> {
        self.root
            .join(&format!("{layer}/{name}/"))
            .map_err(|e| LakeError::Location {
                location: self.display_root(),
                reason: format!("cannot place table {layer}.{name}: {e}"),
            })
    }

    /// Open a table; `Ok(None)` when it does not exist yet.
    pub async fn open(&self, layer: &str, name: &str) -> Result<Option<DeltaTable>, LakeError> {
        let table_name = format!("{layer}.{name}");
        let url = self.table_url(layer, name)?;
        open_table_at(&table_name, url, &self.options, None).await
    }

    /// A handle on `<layer>.<name>` without reading its log: what a write that creates the
    /// table starts from when [`Lake::open`] found none.
    pub fn prepare(&self, layer: &str, name: &str) -> Result<DeltaTable, LakeError> {
        let table_name = format!("{layer}.{name}");
        DeltaTableBuilder::from_url(self.table_url(layer, name)?)
            .map_err(|e| LakeError::delta(&table_name, "prepare table", e))?
            .with_storage_options(self.options.clone())
            .build()
            .map_err(|e| LakeError::delta(&table_name, "prepare table", e))
    }

    /// Bytes of the data files that commit `version` of `layer.name` added (what a task wrote).
    /// Reads only that commit's log entry; 0 when it does not exist.
    pub async fn bytes_added(
        &self,
        layer: &str,
        name: &str,
        version: u64,
    ) -> Result<u64, LakeError> {
        let table_name = format!("{layer}.{name}");
        let table = DeltaTableBuilder::from_url(self.table_url(layer, name)?)
            .map_err(|e| LakeError::delta(&table_name, "open", e))?
            .with_storage_options(self.options.clone())
            .build()
            .map_err(|e| LakeError::delta(&table_name, "open", e))?;
        let entry = table
            .log_store()
            .read_commit_entry(version as _)
            .await
            .map_err(|e| LakeError::delta(&table_name, "read a commit", e))?;
        let Some(entry) = entry else { return Ok(0) };
        Ok(entry
            .split(|b| *b == b'\n')
            .filter(|line| !line.is_empty())
            .filter_map(|line| serde_json::from_slice::<serde_json::Value>(line).ok())
            .filter_map(|action| action.get("add")?.get("size")?.as_u64())
            .sum())
    }

    fn store(&self) -> Result<Arc<dyn ObjectStore>, LakeError> {
        deltalake::logstore::store_for(&self.root, self.options.iter()).map_err(|e| {
            LakeError::Location {
                location: self.display_root(),
                reason: e.to_string(),
            }
        })
    }

    /// Check that the lake location is reachable and listable (for `validate --connections`).
    pub async fn check(&self) -> Result<(), LakeError> {
        let store = self.store()?;
        store
            .list_with_delimiter(None)
            .await
            .map_err(|e| LakeError::Location {
                location: self.display_root(),
                reason: e.to_string(),
            })?;
        Ok(())
    }

    /// Every `<layer>/<name>` under the root that holds a `_delta_log`, sorted.
    pub async fn table_names(&self) -> Result<Vec<(String, String)>, LakeError> {
        let store = self.store()?;
        let loc_err = |e: deltalake::ObjectStoreError| LakeError::Location {
            location: self.display_root(),
            reason: e.to_string(),
        };
        let mut out = Vec::new();
        let layers = store.list_with_delimiter(None).await.map_err(loc_err)?;
        for layer in layers.common_prefixes {
            let Some(layer_name) = layer.filename().map(str::to_string) else {
                continue;
            };
            if layer_name.starts_with('_') || layer_name.starts_with('.') {
                continue;
            }
            let tables = store
                .list_with_delimiter(Some(&layer))
                .await
                .map_err(loc_err)?;
            for t in tables.common_prefixes {
                let Some(name) = t.filename().map(str::to_string) else {
                    continue;
                };
                let log = t.clone().join("_delta_log");
                let has_log = store
                    .list_with_delimiter(Some(&log))
                    .await
                    .map(|l| !l.objects.is_empty())
                    .unwrap_or(false);
                if has_log {
                    out.push((layer_name.clone(), name));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Details of every table in the lake.
    pub async fn tables(&self) -> Result<Vec<TableInfo>, LakeError> {
        let mut out = Vec::new();
        for (layer, name) in self.table_names().await? {
            if let Some(t) = self.open(&layer, &name).await? {
                out.push(table_info(&layer, &name, &t)?);
            }
        }
        Ok(out)
    }

    /// A DataFusion session with every lake table registered as `<layer>.<name>`.
    pub async fn session(&self) -> Result<SessionContext, LakeError> {
        let config = SessionConfig::new().with_information_schema(true);
        let ctx = SessionContext::new_with_config(config);
        let catalog = ctx
            .catalog("datafusion")
            .ok_or_else(|| LakeError::Query("the default catalog is missing".into()))?;
        for (layer, name) in self.table_names().await? {
            let Some(table) = self.open(&layer, &name).await? else {
                continue;
            };
            let schema = match catalog.schema(&layer) {
                Some(s) => s,
                None => {
                    let s = Arc::new(MemorySchemaProvider::new());
                    catalog
                        .register_schema(&layer, s.clone())
                        .map_err(|e| LakeError::Query(e.to_string()))?;
                    s
                }
            };
            let provider = table
                .table_provider()
                .await
                .map_err(|e| LakeError::Query(format!("table {layer}.{name}: {e}")))?;
            schema
                .register_table(name.clone(), provider)
                .map_err(|e| LakeError::Query(e.to_string()))?;
        }
        Ok(ctx)
    }
}

/// Summary of an opened table.
pub fn table_info(layer: &str, name: &str, t: &DeltaTable) -> Result<TableInfo, LakeError> {
    let table_name = format!("{layer}.{name}");
    let snapshot = t
        .snapshot()
        .map_err(|e| LakeError::delta(&table_name, "read snapshot", e))?;
    let version = snapshot.version();
    let mut rows: Option<u64> = Some(0);
    let mut files = 0;
    let mut bytes = 0u64;
    for f in snapshot.log_data().iter() {
        files += 1;
        bytes += f.size().max(0) as u64;
        rows = match (rows, f.num_records()) {
            (Some(r), Some(n)) => Some(r + n as u64),
            _ => None,
        };
    }
    Ok(TableInfo {
        layer: layer.to_string(),
        name: name.to_string(),
        version,
        rows,
        files,
        bytes,
        committed_at_ms: snapshot.version_timestamp(version),
        watermark: watermark_of(&table_name, t)?,
    })
}

/// The watermark stored in a table's properties.
pub fn watermark_of(table_name: &str, t: &DeltaTable) -> Result<Option<Watermark>, LakeError> {
    let snapshot = t
        .snapshot()
        .map_err(|e| LakeError::delta(table_name, "read snapshot", e))?;
    match snapshot.metadata().configuration().get(WATERMARK_PROPERTY) {
        None => Ok(None),
        Some(json) => serde_json::from_str(json)
            .map(Some)
            .map_err(|e| LakeError::Watermark {
                table: table_name.to_string(),
                reason: e.to_string(),
            }),
    }
}

/// Which version of a table [`open_table_at`] loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableVersion {
    /// This version.
    Version(u64),
    /// The last version committed at or before this instant.
    AsOf(chrono::DateTime<chrono::Utc>),
}

/// Open the Delta table at `url` (a folder URL ending in `/`) with the object-store `options`,
/// at its latest version or the one `version` names; `Ok(None)` when no table is there (no
/// `_delta_log`). `table_name` names it in errors.
pub async fn open_table_at(
    table_name: &str,
    url: Url,
    options: &HashMap<String, String>,
    version: Option<TableVersion>,
) -> Result<Option<DeltaTable>, LakeError> {
    if url.scheme() == "file" {
        // delta-rs refuses to build a table on a missing local folder: check first.
        let exists = url
            .to_file_path()
            .map(|p| p.join("_delta_log").is_dir())
            .unwrap_or(false);
        if !exists {
            return Ok(None);
        }
    }
    let mut table = DeltaTableBuilder::from_url(url)
        .map_err(|e| LakeError::delta(table_name, "open", e))?
        .with_storage_options(options.clone())
        .build()
        .map_err(|e| LakeError::delta(table_name, "open", e))?;
    let is_table = table
        .log_store()
        .is_delta_table_location()
        .await
        .map_err(|e| LakeError::delta(table_name, "open", e))?;
    if !is_table {
        return Ok(None);
    }
    let loaded = match version {
        None => table.load().await,
        Some(TableVersion::Version(v)) => table.load_version(v).await,
        Some(TableVersion::AsOf(t)) => table.load_with_datetime(t).await,
    };
    match loaded {
        Ok(()) => Ok(Some(table)),
        Err(DeltaTableError::NotATable(_)) => Ok(None),
        Err(e) => Err(LakeError::delta(table_name, "open", e)),
    }
}
