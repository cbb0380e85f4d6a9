//! The bronze load as a library: one configured table (or a command task's output) read from
//! its source and written to its Delta table in one commit.
//!
//! A load takes the cursor window (the watermark minus the lookback, or a backfill's range),
//! drops rows already loaded in that window, adds the `_tributary_` metadata columns, writes
//! malformed records to the quarantine table, and commits the rows together with the new
//! watermark. Exactly once: the watermark is a table property written in the same Delta commit
//! as its rows, so a load killed before the commit leaves table and watermark as they were (the
//! next run re-reads the same rows) and one killed after it has nothing left to redo.
//!
//! ```no_run
//! # async fn example(project: tributary_core::Project, lake: tributary_lake::Lake) {
//! use tributary_ingest::{LoadContext, load_table};
//! let ctx = LoadContext::new(project.clone(), lake, "run-1".into(), 0);
//! for spec in project.load_specs() {
//!     let report = load_table(&ctx, &spec).await;
//!     println!("{}: {} rows, version {:?}", report.target, report.rows, report.version);
//! }
//! # }
//! ```
#![warn(missing_docs)]

mod columns;
mod error;
mod load;
mod window;

use std::sync::Arc;
use std::time::Instant;

use tracing::{Instrument, info};
use tributary_core::Source;
use tributary_core::config::{LoadMode, LoadSpec, Project};
use tributary_lake::Lake;

pub use columns::{
    FILE_MODIFIED, FILE_SIZE, LOADED_AT, QUARANTINE_ERROR, QUARANTINE_FILE, QUARANTINE_LINE,
    QUARANTINE_RAW, RUN_ID, SOURCE,
};
pub use error::IngestError;
pub use tributary_core::cursor::Backfill;
pub use tributary_core::error_chain;

/// Shared by every load of a run.
pub struct LoadContext {
    /// The project: its connections and folder (relative paths of file sources).
    pub project: Project,
    /// Where the tables are.
    pub lake: Lake,
    /// The run's id (`_tributary_run_id`, commit metadata).
    pub run_id: String,
    /// `_tributary_loaded_at` of every row of the run (µs since the epoch, UTC).
    pub loaded_at_micros: i64,
    /// `--full-refresh`: reload incremental tables and replace them.
    pub full_refresh: bool,
    /// `--from/--to`: reload this cursor range of incremental tables without moving their
    /// watermark.
    pub backfill: Option<Backfill>,
    /// Told about every load's rows as they are written (a terminal's progress bars).
    pub progress: Arc<dyn LoadProgress>,
}

impl LoadContext {
    /// A context for the run `run_id`, its rows stamped `loaded_at_micros`; no full refresh,
    /// no backfill, no progress display.
    pub fn new(project: Project, lake: Lake, run_id: String, loaded_at_micros: i64) -> Self {
        LoadContext {
            project,
            lake,
            run_id,
            loaded_at_micros,
            full_refresh: false,
            backfill: None,
            progress: Arc::new(NoProgress),
        }
    }
}

/// Receives the progress of loads (implemented by the command line's progress bars).
pub trait LoadProgress: Send + Sync {
    /// A load of `table` (`layer.name`) starts; the returned handle follows it.
    fn start(&self, table: &str) -> Box<dyn TableProgress>;
}

/// The progress of one load.
pub trait TableProgress: Send + Sync {
    /// `n` more rows were written.
    fn rows(&self, n: u64);
    /// The load ended: committed as `Ok(version)`, or failed.
    fn finish(&self, result: Result<u64, ()>);
}

/// No progress display.
pub struct NoProgress;

impl LoadProgress for NoProgress {
    fn start(&self, _table: &str) -> Box<dyn TableProgress> {
        Box::new(NoProgress)
    }
}

impl TableProgress for NoProgress {
    fn rows(&self, _n: u64) {}
    fn finish(&self, _result: Result<u64, ()>) {}
}

/// What one load did.
#[derive(Debug)]
pub struct LoadReport {
    /// `layer.name`.
    pub target: String,
    /// `full`, `incremental`, `new_files`, `backfill` or `append`.
    pub mode: &'static str,
    /// Rows committed.
    pub rows: u64,
    /// The table's version after the load (unchanged when nothing was new); `None` on failure.
    pub version: Option<u64>,
    /// Wall time of the load.
    pub seconds: f64,
    /// Malformed file records skipped (`on_error: skip`).
    pub skipped: u64,
    /// Why the load failed; the table is then as it was.
    pub error: Option<IngestError>,
}

/// Where a load's rows come from when it is not the spec's connection: a `command` task's
/// output, with its write mode.
pub struct SourceOverride {
    /// The source to read.
    pub source: Box<dyn Source>,
    /// Append to the table instead of replacing it (no watermark).
    pub append: bool,
}

/// Load one table, never panicking; the report carries the error.
pub async fn load_table(ctx: &LoadContext, spec: &LoadSpec) -> LoadReport {
    load_table_from(ctx, spec, None).await
}

/// As [`load_table`], reading from `over` instead of the spec's connection when given.
pub async fn load_table_from(
    ctx: &LoadContext,
    spec: &LoadSpec,
    over: Option<SourceOverride>,
) -> LoadReport {
    let started = Instant::now();
    let target = spec.target();
    let append = over.as_ref().is_some_and(|o| o.append);
    let progress = ctx.progress.start(&target);
    let span = tracing::info_span!("load", table = %target, run_id = %ctx.run_id);
    let result = async {
        info!("Load started.");
        load::load(ctx, spec, progress.as_ref(), over).await
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
        Ok(loaded) => {
            progress.finish(Ok(loaded.version));
            info!(table = %target, rows = loaded.rows, version = loaded.version, seconds, skipped = loaded.skipped, "Load finished.");
            LoadReport {
                target,
                mode,
                rows: loaded.rows,
                version: Some(loaded.version),
                seconds,
                skipped: loaded.skipped,
                error: None,
            }
        }
        Err(e) => {
            progress.finish(Err(()));
            tracing::error!(target: "tributary::load", table = %target, error = %error_chain(&e), "Load failed; the table is unchanged.");
            LoadReport {
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
