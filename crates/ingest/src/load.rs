//! One load: plan the read (watermark, lookback, backfill, loaded files), stream the source's
//! batches through the window filters and the metadata columns into the table writer, and
//! commit rows and watermark together.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use deltalake::arrow::datatypes::{Field, Schema, SchemaRef};
use futures::StreamExt;
use tracing::{info, warn};
use tributary_core::config::{LoadMode, LoadSpec};
use tributary_core::cursor::Lookback;
use tributary_core::{
    CursorValue, FileStamp, Position, ReadEvent, ReadRequest, ReadSummary, Source, SourceStream,
};
use tributary_lake::{TableWriter, Watermark, WriteMode};

use crate::columns::{MetadataColumns, with_metadata_columns, write_quarantine};
use crate::window::{
    FilterError, drop_seen, filter_since, filter_until, key_columns, loaded_file_keys, loaded_keys,
};
use crate::{IngestError, LoadContext, SourceOverride, TableProgress};

/// Default lookback for timestamp and date cursors.
const DEFAULT_TIME_LOOKBACK_MICROS: i64 = 3_600_000_000;

/// What a successful load did.
pub(crate) struct Loaded {
    pub(crate) rows: u64,
    pub(crate) version: u64,
    pub(crate) skipped: u64,
}

pub(crate) async fn load(
    ctx: &LoadContext,
    spec: &LoadSpec,
    progress: &dyn TableProgress,
    over: Option<SourceOverride>,
) -> Result<Loaded, IngestError> {
    let target = spec.target();
    let config = |message: String| IngestError::Config {
        table: target.clone(),
        message,
    };
    let data = |message: String| IngestError::Data {
        table: target.clone(),
        message,
    };
    let connection = ctx.project.config.connections.get(&spec.connection);
    // Delta sources are read incrementally by table version: the watermark is the last source
    // version read (`_delta_version`), reported by the source and committed with the rows.
    let version_cursor = (over.is_none() && connection.is_some_and(|c| c.is_delta()))
        .then_some(tributary_connectors::delta::VERSION_WATERMARK);
    let (source, append, default_batch_size) = match over {
        Some(o) => (
            o.source,
            o.append,
            tributary_connectors::DEFAULT_FILE_BATCH_SIZE,
        ),
        None => {
            let conn_config = connection
                .ok_or_else(|| config(format!("connection {} is not defined", spec.connection)))?;
            let source: Box<dyn Source> =
                tributary_connectors::open(&spec.connection, conn_config, &ctx.project.root)
                    .map_err(|e| IngestError::Open(Box::new(e)))?;
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
        return Err(config(format!(
            "--from/--to backfill incremental tables; {target} loads new files (mode new_files)"
        )));
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
        return Err(config(format!(
            "the cursor changed from `{}` to `{c}` since the last load; run `tributary run --full-refresh --select {target}` to reload the table with the new cursor",
            w.column
        )));
    }
    if let Some(vc) = version_cursor {
        if let Some(w) = previous.as_ref().filter(|w| w.column != vc) {
            return Err(config(format!(
                "the table's watermark is on `{}`, not the Delta source version; run `tributary run --full-refresh --select {target}` to reload it",
                w.column
            )));
        }
        if ctx.backfill.is_some() {
            return Err(config(format!(
                "--from/--to backfill tables with a cursor column; {target} reads a Delta table by version: use `--full-refresh` to reload it"
            )));
        }
    }
    // A backfill reads [from, to) of the cursor and appends what is not loaded yet, keeping
    // the watermark where it is.
    let backfill = match &ctx.backfill {
        None => None,
        Some(b) => {
            let (Some(w), Some(c)) = (&previous, &cursor_col) else {
                return Err(config(format!(
                    "--from/--to backfill incremental tables that have been loaded before; {target} is {}",
                    if incremental {
                        "not loaded yet: run it once first"
                    } else {
                        "not incremental"
                    }
                )));
            };
            let parse =
                |v: &Option<String>, flag: &str| -> Result<Option<CursorValue>, IngestError> {
                    v.as_deref()
                        .map(|t| {
                            w.value.parse_like(t).map_err(|e| {
                                config(format!("{flag} for {target} (cursor `{c}`): {e}"))
                            })
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
                Some(spec) => Some(spec.parse().map_err(config)?),
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
    let table_columns: Option<HashSet<String>> = table_schema
        .as_ref()
        .map(|s| s.fields().iter().map(|f| f.name().clone()).collect());
    let request = ReadRequest {
        table: spec.table.clone(),
        since: since.clone(),
        until: until.clone(),
        batch_size,
        loaded_files: new_files.then(|| Arc::new(loaded_files.clone().unwrap_or_default())),
        table_schema,
    };
    let read_error = |source| IngestError::Read {
        source_label: spec.source_label(),
        source: Box::new(source),
    };
    let SourceStream {
        schema: source_schema,
        events,
        ack,
        declared_key,
    } = source.read(request).await.map_err(read_error)?;
    if new_files && source_schema.fields().is_empty() {
        let version = existing.as_ref().and_then(|t| t.version()).unwrap_or(0);
        info!(table = %target, "No new files; nothing committed.");
        return Ok(Loaded {
            rows: 0,
            version,
            skipped: 0,
        });
    }
    check_columns(spec, &source_schema).map_err(config)?;
    check_key(spec, declared_key.as_deref()).map_err(config)?;
    let cursor_index = match &cursor_col {
        Some(c) => Some(source_schema.index_of(c).map_err(|_| {
            config(format!(
                "{}: the cursor column `{c}` is not among the source's columns ({})",
                spec.file.display(),
                column_list(&source_schema)
            ))
        })?),
        None => None,
    };
    if let (Some(i), true) = (cursor_index, incremental) {
        // Reject unsupported cursor types before reading anything.
        let dt = source_schema.field(i).data_type();
        CursorValue::max_of(&deltalake::arrow::array::new_null_array(dt, 1)).map_err(|e| {
            config(format!(
                "cursor column `{}`: {e}",
                source_schema.field(i).name()
            ))
        })?;
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
    let key_columns = key_columns(spec, &source_schema, table_columns.as_ref());
    let seen = match (&since, &existing, write_mode) {
        (Some((col, lower)), Some(_), WriteMode::Append) if cursor_index.is_some() => {
            Some(loaded_keys(&ctx.lake, spec, &source_schema, &key_columns, col, lower).await?)
        }
        _ => None,
    };
    let filtered = |r: Result<_, FilterError>| {
        r.map_err(|e| match e {
            FilterError::Bound(message) => data(message),
            FilterError::Arrow(e) => IngestError::arrow(&target, "filtering the cursor window", e),
        })
    };

    let mut max_cursor: Option<CursorValue> = previous.as_ref().map(|w| w.value.clone());
    let mut rows = 0u64;
    let mut events = events;
    let mut metadata = MetadataColumns::new(ctx.loaded_at_micros, &ctx.run_id);
    // `new_files`: each file's stamp, announced before its rows.
    let mut stamps: HashMap<String, FileStamp> = HashMap::new();
    // The last source transaction the rows reach (change capture), and the read's summary.
    let mut boundary: Option<Position> = None;
    let mut summary: Option<ReadSummary> = None;
    while let Some(event) = events.next().await {
        let item = match event.map_err(read_error)? {
            ReadEvent::Batch(item) => item,
            ReadEvent::File(stamp) => {
                stamps.insert(stamp.origin.clone(), stamp);
                continue;
            }
            ReadEvent::Boundary(position) => {
                boundary = Some(position);
                continue;
            }
            ReadEvent::End(s) => {
                summary = Some(s);
                break;
            }
        };
        let mut batch = item.batch;
        if let (Some((_, lower)), Some(i)) = (&since, cursor_index) {
            batch = filtered(filter_since(&batch, i, lower))?;
        }
        if let (Some((_, upper)), Some(i)) = (&until, cursor_index) {
            batch = filtered(filter_until(&batch, i, upper))?;
        }
        if let Some(seen) = seen.as_ref() {
            batch = drop_seen(&batch, &key_columns, seen)
                .map_err(|e| IngestError::arrow(&target, "dropping rows already loaded", e))?;
        }
        if batch.num_rows() == 0 {
            continue;
        }
        if let (Some(i), true) = (cursor_index, spec.table.mode == LoadMode::Incremental) {
            let m = CursorValue::max_of(batch.column(i)).map_err(data)?;
            max_cursor = match (max_cursor, m) {
                (Some(a), Some(b)) => Some(if b > a { b } else { a }),
                (a, b) => a.or(b),
            };
        }
        let n = batch.num_rows();
        let stamp = match new_files {
            true => {
                Some(
                    stamps
                        .get(item.origin.as_ref())
                        .ok_or_else(|| IngestError::Internal {
                            table: target.clone(),
                            message: format!("no size and time recorded for {}", item.origin),
                        })?,
                )
            }
            false => None,
        };
        let out = metadata
            .add(&batch, &out_schema, &item.origin, stamp)
            .map_err(|e| IngestError::arrow(&target, "adding the _tributary_ columns", e))?;
        writer.write(out).await?;
        rows += n as u64;
        progress.rows(n as u64);
    }
    // A read that ended without its summary was cut short: its rows must not be committed.
    let summary = summary.ok_or_else(|| IngestError::Internal {
        table: target.clone(),
        message: format!(
            "the read of {} ended without its summary",
            spec.source_label()
        ),
    })?;
    if new_files {
        info!(table = %target, files = stamps.len(), rows, "Read new files.");
    }
    let position = summary.position.clone().or(boundary);
    let watermark = match (&cursor_col, max_cursor, spec.table.mode) {
        _ if backfill.is_some() => None,
        _ if version_cursor.is_some() && spec.table.mode == LoadMode::Incremental => {
            position.clone().map(|p| Watermark {
                column: p.name,
                value: p.value,
            })
        }
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
    let skipped = summary.skipped;
    if skipped > 0 {
        warn!(table = %target, skipped, on_error = ?spec.table.on_error, "Skipped malformed records.");
        meta.insert(
            "tributary.skippedRecords".to_string(),
            serde_json::json!(skipped),
        );
    }
    // Quarantined records are committed first: a stop between the two commits can only leave
    // them twice (under two run ids), never lose them.
    let quarantined = summary.quarantined;
    if !quarantined.is_empty() {
        write_quarantine(ctx, spec, &quarantined).await?;
    }
    let committed = writer.commit(watermark, meta).await?;
    if !committed.committed {
        info!(table = %target, "No new rows; nothing committed.");
    }
    // Only now, with the commit durable, may the source let go of what it read.
    if let (Some(ack), Some(position)) = (&ack, &position)
        && let Err(e) = ack.acknowledge(position).await
    {
        warn!(table = %target, error = %e, "The source was not told that the rows are committed; it may send them again.");
    }
    Ok(Loaded {
        rows,
        version: committed.version,
        skipped,
    })
}

/// Source columns must not use the reserved prefix; keys must exist.
fn check_columns(spec: &LoadSpec, schema: &SchemaRef) -> Result<(), String> {
    for f in schema.fields() {
        if f.name().starts_with("_tributary_") {
            return Err(format!(
                "{}: column `{}` uses the reserved prefix `_tributary_`; rename it in a `query`",
                spec.source_label(),
                f.name()
            ));
        }
    }
    for k in &spec.table.primary_key {
        if schema.index_of(k).is_err() {
            return Err(format!(
                "{}: primary_key column `{k}` is not among the source's columns ({})",
                spec.file.display(),
                column_list(schema)
            ));
        }
    }
    Ok(())
}

/// A configured `primary_key` must hold every column of the key the source declares (unless
/// `allow_narrower_key`): a narrower one makes distinct rows that share it look loaded already.
fn check_key(spec: &LoadSpec, declared: Option<&[String]>) -> Result<(), String> {
    let configured = &spec.table.primary_key;
    let Some(declared) = declared else {
        return Ok(());
    };
    if configured.is_empty() || spec.table.allow_narrower_key {
        return Ok(());
    }
    let missing: Vec<&str> = declared
        .iter()
        .filter(|d| !configured.iter().any(|c| c.eq_ignore_ascii_case(d)))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{} (table `{}`): primary_key [{}] leaves out {} of the source's primary key [{}]: rows that share [{}] in the lookback window would count as loaded already, and all but one would be dropped. \
         Set `primary_key: [{}]`, or `allow_narrower_key: true` if the narrower key is unique in the source",
        spec.file.display(),
        spec.table.name,
        configured.join(", "),
        missing.join(", "),
        declared.join(", "),
        configured.join(", "),
        declared.join(", "),
    ))
}

fn column_list(schema: &SchemaRef) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
