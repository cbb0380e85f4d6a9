//! Tributary's transformation layer: SQL models on DataFusion.
//!
//! A model is `models/<layer>/<name>.sql`, a SELECT rendered with minijinja (`ref()`, `var()`,
//! `env_var()`, `is_incremental()`, macros), that becomes the Delta table `<layer>.<name>`:
//! - [`project`]: discovery, dependency graph from the refs, and every configuration problem;
//! - [`runner`]: the materializations (`table`, `incremental` merge, `scd2`), each one atomic
//!   Delta commit made through the lake ([`tributary_lake::ModelCommit`]), with expectations
//!   checked before anything is written;
//! - [`dedupe`]: the latest row per `unique_key` without sorting (aggregate, hash join, one row
//!   per key);
//! - [`unittest`]: `tributary test`, model SQL on inline or CSV fixtures, in memory.
#![warn(missing_docs)]

mod backfill;
mod checks;
pub mod dedupe;
pub mod expect;
pub mod logic;
mod materialize;
pub mod model;
pub mod project;
pub mod runner;
mod session;
pub mod sql;
pub mod template;
pub mod unittest;
mod upstream;

use std::fmt;
use std::path::PathBuf;

pub use expect::{Expectation, ExpectationResult, OnFail};
pub use model::{Materialized, Model, ModelConfig};
pub use project::Models;
pub use runner::{Backfill, ModelOutcome, ModelRunner, RunOptions};
pub use tributary_core::ErrorClass;

/// What went wrong in a model.
#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    /// Rendering the template failed (unknown ref, unset variable, Jinja syntax).
    #[error("{}: {message}", at(file, *line))]
    Template {
        /// The model or macro file.
        file: PathBuf,
        /// 1-based line, when known.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// The SQL did not parse or plan.
    #[error("{}: {model}: {message}", at(file, *line))]
    Sql {
        /// Model id.
        model: String,
        /// The model file.
        file: PathBuf,
        /// 1-based line in the model file, when the engine said.
        line: Option<usize>,
        /// The engine's message.
        message: String,
    },
    /// The model's settings do not fit its result (e.g. a unique_key column it does not produce).
    #[error("{file}: {model}: {message}", file = file.display())]
    Settings {
        /// Model id.
        model: String,
        /// Where the settings are.
        file: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A `fail` expectation failed; nothing was written.
    #[error("{model}: {} expectation(s) failed, the table keeps its previous version:\n{}", failed_names(.results), render_results(.results))]
    ExpectationsFailed {
        /// Model id.
        model: String,
        /// Every expectation's outcome in this run.
        results: Vec<ExpectationResult>,
    },
    /// An upstream table does not exist yet.
    #[error(
        "{model}: reads {table}, which does not exist in the lake yet; run the step that builds it first (`tributary run --select {table}`)"
    )]
    MissingUpstream {
        /// Model id.
        model: String,
        /// The missing table.
        table: String,
    },
    /// An append-only incremental model (no `unique_key`) cannot follow how an upstream table
    /// changed since it last read it.
    #[error(
        "{model}: upstream {table} {what}. An incremental model without `unique_key` only appends new rows, so it cannot follow that: rebuild it with `tributary run --select {model} --full-refresh`, or give it a `unique_key` so that it merges"
    )]
    UpstreamRewritten {
        /// Model id.
        model: String,
        /// The upstream table.
        table: String,
        /// What the upstream did (which commit, which operation).
        what: String,
    },
    /// An incremental or scd2 model's logic changed since its table was last built
    /// (`on_logic_change: fail`, the default).
    #[error(
        "{file}: {model}: the logic changed since the table was last built: {}. The table holds rows the old logic made, and an incremental run would add rows of the new one. Rebuild it with `tributary run --select {model} --full-refresh`, or set `on_logic_change: rebuild` (rebuild when the logic changes) or `continue` (keep the old rows) in its settings",
        changes.join(", "),
        file = file.display()
    )]
    LogicChanged {
        /// Model id.
        model: String,
        /// The model's file.
        file: PathBuf,
        /// What changed, in words.
        changes: Vec<String>,
    },
    /// The query engine failed while running the model.
    #[error("{model}: {action}: {message}")]
    Engine {
        /// Model id.
        model: String,
        /// What was being done.
        action: String,
        /// The engine's message.
        message: String,
        /// What kind of failure, read from the engine's error where it was born.
        class: ErrorClass,
    },
    /// Writing or reading a Delta table failed.
    #[error(transparent)]
    Lake(#[from] tributary_lake::LakeError),
    /// A model unit test could not run (bad fixture or test file).
    #[error("{}: {message}", at(file, *line))]
    Test {
        /// The test or fixture file.
        file: PathBuf,
        /// 1-based line, when known.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
}

fn at(file: &std::path::Path, line: Option<usize>) -> String {
    match line {
        Some(l) => format!("{}:{l}", file.display()),
        None => file.display().to_string(),
    }
}

fn failed_names(results: &[ExpectationResult]) -> String {
    results
        .iter()
        .filter(|r| !r.passed && r.on_fail == "fail")
        .count()
        .to_string()
}

/// One line per expectation: name, action, failed/checked rows.
pub fn render_results(results: &[ExpectationResult]) -> String {
    let width = results.iter().map(|r| r.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for r in results {
        let verdict = if r.passed { "ok  " } else { "FAIL" };
        out.push_str(&format!(
            "  {verdict} {:width$}  [{}] {} of {} rows failed\n",
            r.name, r.on_fail, r.failed_rows, r.checked_rows
        ));
    }
    out.trim_end().to_string()
}

impl TransformError {
    /// What kind of failure this is: templates, SQL, settings, missing upstreams and unit test
    /// files are `config`; failed expectations are `data`; the engine's and the lake's errors
    /// carry the class read where they were born.
    pub fn class(&self) -> ErrorClass {
        match self {
            TransformError::Template { .. }
            | TransformError::Sql { .. }
            | TransformError::Settings { .. }
            | TransformError::MissingUpstream { .. }
            | TransformError::UpstreamRewritten { .. }
            | TransformError::LogicChanged { .. }
            | TransformError::Test { .. } => ErrorClass::Config,
            TransformError::ExpectationsFailed { .. } => ErrorClass::Data,
            TransformError::Engine { class, .. } => *class,
            TransformError::Lake(e) => e.class(),
        }
    }

    /// Whether running again may succeed without a change (storage hiccups, a commit
    /// conflict).
    pub fn is_retryable(&self) -> bool {
        self.class().is_retryable()
    }
}

/// A short label for results in summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelStatus {
    /// A new table version was committed.
    Built,
    /// Nothing new upstream (incremental) or nothing changed (scd2): no commit.
    UpToDate,
}

impl fmt::Display for ModelStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ModelStatus::Built => "built",
            ModelStatus::UpToDate => "up to date",
        })
    }
}
