//! Loading tables into bronze: source → filter/dedupe → metadata columns → one Delta commit.
//!
//! Exactly-once: an incremental table's watermark is a table property written in the same Delta
//! commit as its rows. A run killed before the commit leaves table and watermark as they were
//! (the next run re-reads the same rows); a run killed after it has nothing left to redo.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use deltalake::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use deltalake::arrow::compute::kernels::cmp::gt_eq;
use deltalake::arrow::compute::{and, filter_record_batch, is_not_null};
use deltalake::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit};
use deltalake::arrow::row::{RowConverter, SortField};
use deltalake::datafusion::common::ScalarValue;
use deltalake::datafusion::prelude::{SessionContext, ident, lit};
use futures::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use tracing::{Instrument, info, warn};
use tributary_core::config::{LoadMode, LoadSpec, Project};
use tributary_core::cursor::Lookback;
use tributary_core::{CursorValue, FileStamp, ReadRequest, Source};
use tributary_lake::{Lake, TableWriter, Watermark, WriteMode};

/// Metadata columns added to every bronze row.
pub const LOADED_AT: &str = "_tributary_loaded_at";
pub const RUN_ID: &str = "_tributary_run_id";
pub const SOURCE: &str = "_tributary_source";
/// Added by `new_files` loads: the size and modification time of the row's file.
pub const FILE_SIZE: &str = "_tributary_file_size";
pub const FILE_MODIFIED: &str = "_tributary_file_modified";

/// Default lookback for timestamp and date cursors.
const DEFAULT_TIME_LOOKBACK_MICROS: i64 = 3_600_000_000;

/// What happened to one table.
pub struct TableOutcome {
    pub target: String,
    pub mode: &'static str,
    pub rows: u64,
    pub version: Option<u64>,
    pub seconds: f64,
    /// Malformed file records skipped (`on_error: skip`).
    pub skipped: u64,
    pub error: Option<anyhow::Error>,
}

/// Shared by every table of a run.
pub struct RunContext {
    pub project: Project,
    pub lake: Lake,
    pub run_id: String,
    pub loaded_at_micros: i64,
    pub full_refresh: bool,
    /// `--from/--to`: reload this cursor range of incremental tables without moving their
    /// watermark.
    pub backfill: Option<Backfill>,
    pub progress: MultiProgress,
}

/// A cursor range to backfill (`--from` inclusive, `--to` exclusive), as given on the command
/// line; parsed per table by the type of its cursor.
pub use tributary_transform::Backfill;

impl RunContext {
    pub fn new(project: Project, lake: Lake, full_refresh: bool, show_progress: bool) -> Self {
        let now = chrono::Utc::now();
        let run_id = format!(
            "{}-{}",
            now.format("%Y%m%dT%H%M%SZ"),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let progress = if show_progress {
            MultiProgress::new()
        } else {
            MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
        };
        RunContext {
            project,
            lake,
            run_id,
            loaded_at_micros: now.timestamp_micros(),
            full_refresh,
            backfill: None,
            progress,
        }
    }
}

/// Where a load's rows come from when it is not the spec's connection: a `command` task's
/// output, with its write mode.
pub struct SourceOverride {
    /// The source to read.
    pub source: Box<dyn Source>,
    /// Append to the table instead of replacing it (no watermark).
    pub append: bool,
}

/// Load one table, never panicking; the outcome carries the error.
pub async fn load_table(ctx: &RunContext, spec: &LoadSpec) -> TableOutcome {
    load_table_from(ctx, spec, None).await
}

/// As [`load_table`], reading from `over` instead of the spec's connection when given.
pub async fn load_table_from(
    ctx: &RunContext,
    spec: &LoadSpec,
    over: Option<SourceOverride>,
) -> TableOutcome {
    let started = Instant::now();
    let target = spec.target();
    let append = over.as_ref().is_some_and(|o| o.append);
    let bar = ctx.progress.add(ProgressBar::new_spinner());
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:.bold} {spinner} {human_pos} rows  {rate}  {elapsed}  {msg}",
        )
        .map(|style| {
            style.with_key(
                "rate",
                |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(
                        w,
                        "{} rows/s",
                        crate::output::thousands(state.per_sec() as u64)
                    );
                },
            )
        })
        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_prefix(target.clone());
    bar.enable_steady_tick(Duration::from_millis(200));
    let span = tracing::info_span!("load", table = %target, run_id = %ctx.run_id);
    let result = async {
        info!("Load started.");
        load_inner(ctx, spec, &bar, over).await
    }
    .instrument(span)
    .await;
    let seconds = started.elapsed().as_secs_f64();
    let mode = match spec.table.mode {
        LoadMode::NewFiles if !ctx.full_refresh => "new_files",
        LoadMode::Incremental if ctx.backfill.is_some() => "backfill",
        LoadMode::Incremental if !ctx.full_refresh => "incremental",
        _ if append => "append",
        _ => "full",
    };
    match result {
        Ok(Loaded {
            rows,
            version,
            skipped,
        }) => {
            bar.finish_with_message(format!("done, version {version}"));
            info!(table = %target, rows, version, seconds, skipped, "Load finished.");
            TableOutcome {
                target,
                mode,
                rows,
                version: Some(version),
                seconds,
                skipped,
                error: None,
            }
        }
        Err(e) => {
            bar.abandon_with_message("FAILED");
            tracing::error!(target: "tributary::load", table = %target, error = %format!("{e:#}"), "Load failed; the table is unchanged.");
            TableOutcome {
                target,
                mode,
                rows: 0,
                version: None,
                seconds,
                skipped: 0,
                error: Some(e),
            }
        }
    }
}

/// What a successful load did.
struct Loaded {
    rows: u64,
    version: u64,
    skipped: u64,
}

async fn load_inner(
    ctx: &RunContext,
    spec: &LoadSpec,
    bar: &ProgressBar,
    over: Option<SourceOverride>,
) -> anyhow::Result<Loaded> {
    let target = spec.target();
    // Delta sources are read incrementally by table version: the watermark is the last source
    // version read (`_delta_version`), reported by the source and committed with the rows.
    let version_cursor = (over.is_none()
        && ctx
            .project
            .config
            .connections
            .get(&spec.connection)
            .is_some_and(|c| c.is_delta()))
    .then_some(tributary_connectors::delta::VERSION_WATERMARK);
    let (source, append, default_batch_size) = match over {
        Some(o) => (
            o.source,
            o.append,
            tributary_connectors::DEFAULT_FILE_BATCH_SIZE,
        ),
        None => {
            let conn_config = ctx
                .project
                .config
                .connections
                .get(&spec.connection)
                .ok_or_else(|| anyhow!("connection {} is not defined", spec.connection))?;
            let source: Box<dyn Source> =
                tributary_connectors::open(&spec.connection, conn_config, &ctx.project.root)?;
            let batch = if conn_config.is_files() {
                tributary_connectors::DEFAULT_FILE_BATCH_SIZE
            } else {
                tributary_connectors::DEFAULT_BATCH_SIZE
            };
            (source, false, batch)
        }
    };

    let existing = ctx.lake.open(&spec.layer, &spec.name).await?;
    let incremental = spec.table.mode == LoadMode::Incremental && !ctx.full_refresh;
    let new_files = spec.table.mode == LoadMode::NewFiles;
    // `new_files`: the files in the table's rows. A table without the file columns (loaded in
    // another mode before) and --full-refresh start over: every file, replacing the table.
    if new_files && ctx.backfill.is_some() {
        bail!("--from/--to backfill incremental tables; {target} loads new files (mode new_files)");
    }
    let loaded_files: Option<HashSet<String>> = match &existing {
        Some(t) if new_files && !ctx.full_refresh => loaded_file_keys(&target, t).await?,
        _ => None,
    };
    let cursor_col = spec.table.cursor.clone();
    let previous: Option<Watermark> = match (&existing, incremental) {
        (Some(t), true) => tributary_lake::watermark_of(&target, t)?,
        _ => None,
    };
    if let (Some(w), Some(c)) = (&previous, &cursor_col)
        && &w.column != c
    {
        bail!(
            "the cursor changed from `{}` to `{c}` since the last load; run `tributary run --full-refresh --select {target}` to reload the table with the new cursor",
            w.column
        );
    }
    if let Some(vc) = version_cursor {
        if let Some(w) = previous.as_ref().filter(|w| w.column != vc) {
            bail!(
                "the table's watermark is on `{}`, not the Delta source version; run `tributary run --full-refresh --select {target}` to reload it",
                w.column
            );
        }
        if ctx.backfill.is_some() {
            bail!(
                "--from/--to backfill tables with a cursor column; {target} reads a Delta table by version: use `--full-refresh` to reload it"
            );
        }
    }
    // A backfill reads [from, to) of the cursor and appends what is not loaded yet, keeping
    // the watermark where it is.
    let backfill = match &ctx.backfill {
        None => None,
        Some(b) => {
            let (Some(w), Some(c)) = (&previous, &cursor_col) else {
                bail!(
                    "--from/--to backfill incremental tables that have been loaded before; {target} is {}",
                    if incremental {
                        "not loaded yet: run it once first"
                    } else {
                        "not incremental"
                    }
                );
            };
            let parse = |v: &Option<String>, flag: &str| -> anyhow::Result<Option<CursorValue>> {
                v.as_deref()
                    .map(|t| {
                        w.value
                            .parse_like(t)
                            .map_err(|e| anyhow!("{flag} for {target} (cursor `{c}`): {e}"))
                    })
                    .transpose()
            };
            Some((c.clone(), parse(&b.from, "--from")?, parse(&b.to, "--to")?))
        }
    };
    // Where to start reading: the watermark minus the lookback.
    let since: Option<(String, CursorValue)> = match (&previous, &cursor_col) {
        // Delta sources: the versions after the last one read.
        _ if version_cursor.is_some() => previous
            .as_ref()
            .map(|w| (w.column.clone(), w.value.clone())),
        _ if backfill.is_some() => backfill
            .as_ref()
            .and_then(|(c, from, _)| from.clone().map(|f| (c.clone(), f))),
        (Some(w), Some(c)) => {
            let lookback = match &spec.table.lookback {
                Some(spec) => Some(spec.parse().map_err(|e| anyhow!(e))?),
                None => match w.value {
                    CursorValue::TimestampUtc(_)
                    | CursorValue::Timestamp(_)
                    | CursorValue::Date(_) => Some(Lookback::Micros(DEFAULT_TIME_LOOKBACK_MICROS)),
                    _ => None,
                },
            };
            Some((c.clone(), w.value.minus(lookback)))
        }
        _ => None,
    };
    // Appending needs a watermark; without one (first load, or a table loaded in full mode
    // before) the load replaces the table.
    let write_mode = if (incremental && previous.is_some())
        || (append && existing.is_some() && !ctx.full_refresh)
        || loaded_files.is_some()
    {
        WriteMode::Append
    } else {
        WriteMode::Overwrite
    };

    let batch_size = spec.table.batch_size.unwrap_or(default_batch_size);
    let until: Option<(String, CursorValue)> = backfill
        .as_ref()
        .and_then(|(c, _, to)| to.clone().map(|t| (c.clone(), t)));
    // The table's columns, for sources that infer theirs from the data (REST): a column the
    // read does not see stays a column. `--full-refresh` rebuilds from the source alone.
    let table_schema = match &existing {
        Some(t) if !ctx.full_refresh => {
            let schema = tributary_lake::table_schema(&target, t)?;
            let fields: Vec<Field> = schema
                .fields()
                .iter()
                .filter(|f| !f.name().starts_with("_tributary_"))
                .map(|f| f.as_ref().clone())
                .collect();
            Some(Arc::new(Schema::new(fields)))
        }
        _ => None,
    };
    let request = ReadRequest {
        table: spec.table.clone(),
        since: since.clone(),
        until: until.clone(),
        batch_size,
        loaded_files: new_files.then(|| Arc::new(loaded_files.clone().unwrap_or_default())),
        table_schema,
    };
    let stream = source
        .read(request)
        .await
        .with_context(|| format!("reading {}", spec.source_label()))?;
    let source_schema = stream.schema.clone();
    let stamps = source.file_stamps();
    if new_files && source_schema.fields().is_empty() {
        let version = existing.as_ref().and_then(|t| t.version()).unwrap_or(0);
        info!(table = %target, "No new files; nothing committed.");
        return Ok(Loaded {
            rows: 0,
            version,
            skipped: 0,
        });
    }
    if new_files {
        info!(table = %target, files = stamps.len(), "Loading new files.");
    }
    check_columns(spec, &source_schema)?;
    let cursor_index = match &cursor_col {
        Some(c) => Some(source_schema.index_of(c).map_err(|_| {
            anyhow!(
                "{}: the cursor column `{c}` is not among the source's columns ({})",
                spec.file.display(),
                column_list(&source_schema)
            )
        })?),
        None => None,
    };
    if let (Some(i), true) = (cursor_index, incremental) {
        // Reject unsupported cursor types before reading anything.
        let dt = source_schema.field(i).data_type();
        CursorValue::max_of(&deltalake::arrow::array::new_null_array(dt, 1))
            .map_err(|e| anyhow!("cursor column `{}`: {e}", source_schema.field(i).name()))?;
    }

    // The schema check (on_schema_change) comes before anything else touches the table.
    let out_schema = with_metadata_columns(&source_schema, new_files);
    let mut builder = TableWriter::builder(
        &ctx.lake,
        &spec.layer,
        &spec.name,
        out_schema.clone(),
        write_mode,
    );
    if !ctx.full_refresh {
        builder = builder.with_schema_policy(
            spec.table.on_schema_change,
            format!("{} (table `{}`)", spec.file.display(), spec.table.name),
        );
    }
    let mut writer = builder.build().await?;
    let changes = writer.schema_changes();
    if !changes.is_empty() {
        info!(table = %target, changes = %changes.summary(), policy = %spec.table.on_schema_change, full_refresh = ctx.full_refresh, "Source schema changed.");
    }

    // Rows already loaded in the lookback window: (key, cursor) pairs to skip.
    let mut seen = match (&since, &existing, write_mode) {
        (Some((col, lower)), Some(_), WriteMode::Append) if cursor_index.is_some() => Some(
            loaded_keys(ctx, spec, &source_schema, col, lower)
                .await
                .context("reading the rows already loaded in the lookback window")?,
        ),
        _ => None,
    };
    let key_columns = key_columns(spec, &source_schema);

    let mut max_cursor: Option<CursorValue> = previous.as_ref().map(|w| w.value.clone());
    let mut rows = 0u64;
    let mut batches = stream.batches;
    let mut metadata = MetadataColumns::new(ctx.loaded_at_micros, &ctx.run_id);
    while let Some(item) = batches.next().await {
        let item = item.with_context(|| format!("reading {}", spec.source_label()))?;
        let mut batch = item.batch;
        if let (Some((_, lower)), Some(i)) = (&since, cursor_index) {
            batch = filter_since(&batch, i, lower)?;
        }
        if let (Some((_, upper)), Some(i)) = (&until, cursor_index) {
            batch = filter_until(&batch, i, upper)?;
        }
        if let Some(seen) = seen.as_mut() {
            batch = drop_seen(&batch, &key_columns, seen)?;
        }
        if batch.num_rows() == 0 {
            continue;
        }
        if let (Some(i), true) = (cursor_index, spec.table.mode == LoadMode::Incremental) {
            let m = CursorValue::max_of(batch.column(i)).map_err(|e| anyhow!(e))?;
            max_cursor = match (max_cursor, m) {
                (Some(a), Some(b)) => Some(if b > a { b } else { a }),
                (a, b) => a.or(b),
            };
        }
        let n = batch.num_rows();
        let stamp = match new_files {
            true => Some(stamps.get(item.origin.as_ref()).ok_or_else(|| {
                anyhow!(
                    "internal error: no size and time recorded for {}",
                    item.origin
                )
            })?),
            false => None,
        };
        let out = metadata.add(&batch, &out_schema, &item.origin, stamp)?;
        writer.write(out).await?;
        rows += n as u64;
        bar.inc(n as u64);
    }
    let watermark = match (&cursor_col, max_cursor, spec.table.mode) {
        _ if backfill.is_some() => None,
        _ if version_cursor.is_some() && spec.table.mode == LoadMode::Incremental => source
            .read_position()
            .map(|(column, value)| Watermark { column, value }),
        (Some(c), Some(v), LoadMode::Incremental) => Some(Watermark {
            column: c.clone(),
            value: v,
        }),
        _ => None,
    };
    let mut meta = HashMap::new();
    meta.insert("tributary.runId".to_string(), serde_json::json!(ctx.run_id));
    meta.insert(
        "tributary.source".to_string(),
        serde_json::json!(spec.source_label()),
    );
    meta.insert("tributary.rows".to_string(), serde_json::json!(rows));
    if let Some((c, v)) = &since {
        let from = match version_cursor {
            Some(_) => format!("versions after {v}"),
            None => format!("{c} >= {v}"),
        };
        meta.insert("tributary.readFrom".to_string(), serde_json::json!(from));
    }
    let skipped = source.skipped_records();
    if skipped > 0 {
        warn!(table = %target, skipped, on_error = ?spec.table.on_error, "Skipped malformed records.");
        meta.insert(
            "tributary.skippedRecords".to_string(),
            serde_json::json!(skipped),
        );
    }
    // Quarantined records are committed first: a stop between the two commits can only leave
    // them twice (under two run ids), never lose them.
    let quarantined = source.take_quarantined();
    if !quarantined.is_empty() {
        write_quarantine(ctx, spec, &quarantined).await?;
    }
    let summary = writer.commit(watermark, meta).await?;
    if !summary.committed {
        info!(table = %target, "No new rows; nothing committed.");
    }
    Ok(Loaded {
        rows,
        version: summary.version,
        skipped,
    })
}

/// Columns of a load's quarantine table `<layer>._quarantine_<name>`.
pub const QUARANTINE_FILE: &str = "_tributary_file";
pub const QUARANTINE_LINE: &str = "_tributary_line";
pub const QUARANTINE_RAW: &str = "_tributary_raw";
pub const QUARANTINE_ERROR: &str = "_tributary_error";

/// Append `records` to `<layer>._quarantine_<name>` in one commit.
async fn write_quarantine(
    ctx: &RunContext,
    spec: &LoadSpec,
    records: &[tributary_core::QuarantinedRecord],
) -> anyhow::Result<()> {
    let name = format!("_quarantine_{}", spec.name);
    let schema = Arc::new(Schema::new(vec![
        Field::new(QUARANTINE_FILE, DataType::Utf8, false),
        Field::new(QUARANTINE_LINE, DataType::Int64, false),
        Field::new(QUARANTINE_RAW, DataType::Utf8, false),
        Field::new(QUARANTINE_ERROR, DataType::Utf8, false),
        Field::new(RUN_ID, DataType::Utf8, false),
        Field::new(
            LOADED_AT,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]));
    let n = records.len();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            records.iter().map(|r| r.file.as_str()),
        )),
        Arc::new(Int64Array::from_iter_values(
            records
                .iter()
                .map(|r| i64::try_from(r.line).unwrap_or(i64::MAX)),
        )),
        Arc::new(StringArray::from_iter_values(
            records.iter().map(|r| r.raw.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            records.iter().map(|r| r.reason.as_str()),
        )),
        Arc::new(StringArray::from(vec![ctx.run_id.as_str(); n])),
        Arc::new(
            TimestampMicrosecondArray::from(vec![ctx.loaded_at_micros; n]).with_timezone("UTC"),
        ),
    ];
    let batch =
        RecordBatch::try_new(schema.clone(), columns).context("building the quarantine rows")?;
    let mut writer = TableWriter::builder(&ctx.lake, &spec.layer, &name, schema, WriteMode::Append)
        .build()
        .await?;
    writer.write(batch).await?;
    let mut meta = HashMap::new();
    meta.insert("tributary.runId".to_string(), serde_json::json!(ctx.run_id));
    meta.insert(
        "tributary.quarantineOf".to_string(),
        serde_json::json!(spec.target()),
    );
    writer.commit(None, meta).await?;
    warn!(table = %spec.target(), quarantined = n, quarantine = %format!("{}.{name}", spec.layer), "Malformed records quarantined.");
    Ok(())
}

/// Source columns must not use the reserved prefix; keys must exist.
fn check_columns(spec: &LoadSpec, schema: &SchemaRef) -> anyhow::Result<()> {
    for f in schema.fields() {
        if f.name().starts_with("_tributary_") {
            bail!(
                "{}: column `{}` uses the reserved prefix `_tributary_`; rename it in a `query`",
                spec.source_label(),
                f.name()
            );
        }
    }
    for k in &spec.table.primary_key {
        if schema.index_of(k).is_err() {
            bail!(
                "{}: primary_key column `{k}` is not among the source's columns ({})",
                spec.file.display(),
                column_list(schema)
            );
        }
    }
    Ok(())
}

fn column_list(schema: &SchemaRef) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The columns identifying a loaded row: primary key + cursor, or every column without a key.
fn key_columns(spec: &LoadSpec, schema: &SchemaRef) -> Vec<usize> {
    if spec.table.primary_key.is_empty() {
        return (0..schema.fields().len()).collect();
    }
    let mut cols: Vec<usize> = spec
        .table
        .primary_key
        .iter()
        .filter_map(|k| schema.index_of(k).ok())
        .collect();
    if let Some(c) = &spec.table.cursor
        && let Ok(i) = schema.index_of(c)
        && !cols.contains(&i)
    {
        cols.push(i);
    }
    cols
}

/// Keys of rows already in the table with `cursor >= lower`, encoded with Arrow's row format.
async fn loaded_keys(
    ctx: &RunContext,
    spec: &LoadSpec,
    source_schema: &SchemaRef,
    cursor: &str,
    lower: &CursorValue,
) -> anyhow::Result<KeySet> {
    let key_idx = key_columns(spec, source_schema);
    let fields: Vec<Field> = key_idx
        .iter()
        .map(|i| source_schema.field(*i).clone())
        .collect();
    let session = SessionContext::new();
    let table = ctx
        .lake
        .open(&spec.layer, &spec.name)
        .await?
        .ok_or_else(|| anyhow!("table {} disappeared", spec.target()))?;
    let provider = table.table_provider().await?;
    session.register_table("t", provider)?;
    // The filter is pushed down to the Delta scan, which skips files by their statistics.
    let bound = lower
        .to_scalar_array(source_schema.field_with_name(cursor)?.data_type())
        .map_err(|e| anyhow!(e))?;
    let bound = ScalarValue::try_from_array(&bound, 0)?;
    let names: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
    let df = session
        .table("t")
        .await?
        .filter(ident(cursor).gt_eq(lit(bound)))?
        .select_columns(&names)?;
    let mut stream = df.execute_stream().await?;
    let mut keys = KeySet::new(&fields)?;
    while let Some(b) = stream.next().await {
        let b = b?;
        let columns: Vec<ArrayRef> = (0..fields.len())
            .map(|i| cast_to(b.column(i), fields[i].data_type()))
            .collect::<anyhow::Result<_>>()?;
        keys.insert_all(&columns)?;
    }
    info!(table = %spec.target(), keys = keys.len(), "Read keys already loaded in the lookback window.");
    Ok(keys)
}

fn cast_to(a: &ArrayRef, dt: &DataType) -> anyhow::Result<ArrayRef> {
    if a.data_type() == dt {
        Ok(a.clone())
    } else {
        Ok(deltalake::arrow::compute::cast(a, dt)?)
    }
}

/// A set of row keys in Arrow's row format.
pub struct KeySet {
    converter: RowConverter,
    types: Vec<DataType>,
    keys: HashSet<Box<[u8]>>,
}

impl KeySet {
    fn new(fields: &[Field]) -> anyhow::Result<KeySet> {
        let types: Vec<DataType> = fields.iter().map(|f| f.data_type().clone()).collect();
        let converter =
            RowConverter::new(types.iter().map(|t| SortField::new(t.clone())).collect())?;
        Ok(KeySet {
            converter,
            types,
            keys: HashSet::new(),
        })
    }

    fn len(&self) -> usize {
        self.keys.len()
    }

    fn insert_all(&mut self, columns: &[ArrayRef]) -> anyhow::Result<()> {
        let rows = self.converter.convert_columns(columns)?;
        for r in rows.iter() {
            self.keys.insert(r.as_ref().into());
        }
        Ok(())
    }

    /// A mask: true for rows not yet in the set.
    fn unseen(&self, columns: &[ArrayRef]) -> anyhow::Result<BooleanArray> {
        let columns: Vec<ArrayRef> = columns
            .iter()
            .zip(&self.types)
            .map(|(c, t)| cast_to(c, t))
            .collect::<anyhow::Result<_>>()?;
        let rows = self.converter.convert_columns(&columns)?;
        Ok(rows
            .iter()
            .map(|r| Some(!self.keys.contains(r.as_ref())))
            .collect())
    }
}

fn drop_seen(
    batch: &RecordBatch,
    key_idx: &[usize],
    seen: &mut KeySet,
) -> anyhow::Result<RecordBatch> {
    if seen.len() == 0 {
        return Ok(batch.clone());
    }
    let cols: Vec<ArrayRef> = key_idx.iter().map(|i| batch.column(*i).clone()).collect();
    let mask = seen.unseen(&cols)?;
    Ok(filter_record_batch(batch, &mask)?)
}

/// Keep rows whose cursor is not NULL and `>= lower` (sources that cannot filter, like files,
/// rely on this; for databases it is a no-op safety net).
/// Rows whose cursor is below `upper` (a backfill's `--to`, exclusive).
fn filter_until(batch: &RecordBatch, i: usize, upper: &CursorValue) -> anyhow::Result<RecordBatch> {
    let col = batch.column(i);
    let bound = upper
        .to_scalar_array(col.data_type())
        .map_err(|e| anyhow!(e))?;
    let keep = deltalake::arrow::compute::kernels::cmp::lt(
        col,
        &deltalake::arrow::array::Scalar::new(bound),
    )?;
    let keep = and(&keep, &is_not_null(col)?)?;
    Ok(filter_record_batch(batch, &keep)?)
}

fn filter_since(batch: &RecordBatch, i: usize, lower: &CursorValue) -> anyhow::Result<RecordBatch> {
    let col = batch.column(i);
    let bound = lower
        .to_scalar_array(col.data_type())
        .map_err(|e| anyhow!("cursor column `{}`: {e}", batch.schema().field(i).name()))?;
    let ge = gt_eq(col, &deltalake::arrow::array::Scalar::new(bound))?;
    let mask = and(&ge, &is_not_null(col)?)?;
    if mask.true_count() == batch.num_rows() {
        return Ok(batch.clone());
    }
    Ok(filter_record_batch(batch, &mask)?)
}

/// The files a `new_files` table holds rows of ([`FileStamp::key`]); `None` when the table has
/// no file columns (it was loaded in another mode).
async fn loaded_file_keys(
    target: &str,
    table: &deltalake::DeltaTable,
) -> anyhow::Result<Option<HashSet<String>>> {
    let schema = table
        .snapshot()
        .map_err(|e| anyhow!("{target}: reading the schema: {e}"))?
        .schema();
    if schema.field(FILE_SIZE).is_none() || schema.field(FILE_MODIFIED).is_none() {
        info!(table = %target, "The table has no file columns (loaded in another mode before): loading every file and replacing it.");
        return Ok(None);
    }
    let listing =
        |e: &dyn std::fmt::Display| anyhow!("{target}: listing the files loaded before: {e}");
    let session = SessionContext::new();
    let provider = table.table_provider().await.map_err(|e| listing(&e))?;
    session
        .register_table("t", provider)
        .map_err(|e| listing(&e))?;
    let batches = session
        .sql(&format!(
            "SELECT DISTINCT CAST(\"{SOURCE}\" AS VARCHAR), \"{FILE_SIZE}\", CAST(\"{FILE_MODIFIED}\" AS BIGINT) FROM t"
        ))
        .await
        .map_err(|e| listing(&e))?
        .collect()
        .await
        .map_err(|e| listing(&e))?;
    let mut keys = HashSet::new();
    for b in &batches {
        // The engine may hand strings over as views: normalize before reading.
        let cast = |i: usize, t: &DataType| {
            deltalake::arrow::compute::cast(b.column(i), t).map_err(|e| listing(&e))
        };
        let (origin, size, modified) = (
            cast(0, &DataType::Utf8)?,
            cast(1, &DataType::Int64)?,
            cast(2, &DataType::Int64)?,
        );
        let (Some(origin), Some(size), Some(modified)) = (
            origin.as_string_opt::<i32>(),
            size.as_primitive_opt::<Int64Type>(),
            modified.as_primitive_opt::<Int64Type>(),
        ) else {
            return Err(listing(&"unexpected column types"));
        };
        for i in 0..b.num_rows() {
            if origin.is_null(i) || size.is_null(i) || modified.is_null(i) {
                continue;
            }
            let stamp = FileStamp {
                origin: origin.value(i).to_string(),
                size: u64::try_from(size.value(i)).unwrap_or(0),
                modified_micros: modified.value(i),
            };
            keys.insert(stamp.key());
        }
    }
    Ok(Some(keys))
}

fn with_metadata_columns(schema: &SchemaRef, file_columns: bool) -> SchemaRef {
    let mut fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    fields.push(Field::new(
        LOADED_AT,
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        false,
    ));
    fields.push(Field::new(RUN_ID, DataType::Utf8, false));
    fields.push(Field::new(SOURCE, DataType::Utf8, false));
    if file_columns {
        fields.push(Field::new(FILE_SIZE, DataType::Int64, false));
        fields.push(Field::new(
            FILE_MODIFIED,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ));
    }
    Arc::new(Schema::new(fields))
}

/// The constant `_tributary_` columns of one load, built once at the largest batch size seen
/// and sliced (without copying) for every batch.
struct MetadataColumns {
    loaded_at: i64,
    run_id: String,
    /// `(rows, loaded_at, run_id)` arrays of `rows` values.
    constant: Option<(usize, ArrayRef, ArrayRef)>,
    /// `(origin, rows, array)`.
    origin: Option<(String, usize, ArrayRef)>,
}

impl MetadataColumns {
    fn new(loaded_at: i64, run_id: &str) -> MetadataColumns {
        MetadataColumns {
            loaded_at,
            run_id: run_id.to_string(),
            constant: None,
            origin: None,
        }
    }

    fn add(
        &mut self,
        batch: &RecordBatch,
        out_schema: &SchemaRef,
        origin: &str,
        file: Option<&FileStamp>,
    ) -> anyhow::Result<RecordBatch> {
        let n = batch.num_rows();
        if self.constant.as_ref().is_none_or(|(rows, ..)| *rows < n) {
            self.constant = Some((
                n,
                Arc::new(
                    TimestampMicrosecondArray::from(vec![self.loaded_at; n]).with_timezone("UTC"),
                ),
                Arc::new(StringArray::from(vec![self.run_id.as_str(); n])),
            ));
        }
        if self
            .origin
            .as_ref()
            .is_none_or(|(o, rows, _)| o != origin || *rows < n)
        {
            self.origin = Some((
                origin.to_string(),
                n,
                Arc::new(StringArray::from(vec![origin; n])),
            ));
        }
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        if let (Some((_, loaded_at, run_id)), Some((_, _, origin))) = (&self.constant, &self.origin)
        {
            columns.push(loaded_at.slice(0, n));
            columns.push(run_id.slice(0, n));
            columns.push(origin.slice(0, n));
        }
        if let Some(f) = file {
            let size = i64::try_from(f.size).unwrap_or(i64::MAX);
            columns.push(Arc::new(Int64Array::from(vec![size; n])));
            columns.push(Arc::new(
                TimestampMicrosecondArray::from(vec![f.modified_micros; n]).with_timezone("UTC"),
            ));
        }
        RecordBatch::try_new(out_schema.clone(), columns).context("adding the _tributary_ columns")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use deltalake::arrow::array::Int64Array;

    #[test]
    fn since_filter_drops_nulls_and_older_rows() {
        let schema = Arc::new(Schema::new(vec![Field::new("c", DataType::Int64, true)]));
        let b = RecordBatch::try_new(
            schema,
            vec![Arc::new(Int64Array::from(vec![
                Some(1),
                None,
                Some(5),
                Some(3),
            ]))],
        )
        .unwrap();
        let out = filter_since(&b, 0, &CursorValue::Int(3)).unwrap();
        let c = out.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(c.values().to_vec(), vec![5, 3]);
    }

    #[test]
    fn keyset_drops_rows_already_loaded() {
        let f = vec![Field::new("id", DataType::Int64, true)];
        let mut k = KeySet::new(&f).unwrap();
        k.insert_all(&[Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef])
            .unwrap();
        let mask = k
            .unseen(&[Arc::new(Int64Array::from(vec![2, 3])) as ArrayRef])
            .unwrap();
        assert_eq!(mask, BooleanArray::from(vec![false, true]));
    }

    #[test]
    fn metadata_columns_are_appended() {
        let schema = Arc::new(Schema::new(vec![Field::new("c", DataType::Int64, false)]));
        let b = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1, 2]))])
            .unwrap();
        let out_schema = with_metadata_columns(&schema, false);
        let out = MetadataColumns::new(7, "r1")
            .add(&b, &out_schema, "erp:x", None)
            .unwrap();
        assert_eq!(out.num_columns(), 4);
        assert_eq!(out.schema().field(3).name(), SOURCE);
    }
}
