//! Running models: one DataFusion session per model, expectations, and the materializations.
//!
//! Every materialization ends in exactly one Delta commit of the model's table (readers see the
//! old or the new version), which also records, as Delta app transactions
//! (`tributary:<layer>.<name>` → version), the upstream table versions the model consumed. An
//! incremental model reads only the files added to an upstream table since that version.
//!
//! This module runs one model from start to end; the steps live beside it: the session and
//! table registration (`session`), upstream tracking (`upstream`), backfill ranges
//! (`backfill`), expectations and quarantine (`checks`) and the materializations
//! (`materialize`), whose commits go through [`tributary_lake::ModelCommit`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use deltalake::arrow::datatypes::Schema;
use tributary_lake::schema::diff_schemas;
use tributary_lake::{Lake, ModelCommit, table_info, table_schema};

use crate::backfill::{backfill_of, range_predicate};
use crate::checks::{Checked, RESULT_VIEW, check};
use crate::dedupe::{dedupe, window_dedupe_sql};
use crate::expect::ExpectationResult;
use crate::logic::{Fingerprint, LOGIC_KEY};
use crate::materialize::merge::merge;
use crate::materialize::{as_stored, overwrite, scd2};
use crate::model::{LogicChange, Materialized, Model};
use crate::project::Models;
use crate::session::{engine, split_id};
use crate::sql::{error_position, quote_ident, quote_table};
use crate::template::render;
use crate::upstream::{NEW_PREFIX, Upstream, register_upstreams, rows_added_since};
use crate::{ModelStatus, TransformError};

pub use crate::backfill::Backfill;
pub use crate::checks::QUARANTINE_COLUMNS;
pub use crate::materialize::scd2::SCD2_COLUMNS;
pub use crate::session::{new_session, register};
pub use crate::upstream::UPSTREAM_TXN_PREFIX;

/// Run-wide settings.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The run id, stored with quarantined rows and in commit metadata.
    pub run_id: String,
    /// Rebuild from all upstream data, replacing the table (and its schema).
    pub full_refresh: bool,
    /// Memory the query engine may use before spilling to disk.
    pub memory_limit_bytes: usize,
    /// `--from/--to`: reprocess the rows of this range of an incremental model's cursor (its
    /// first `order_by` column) from all upstream data, without moving what it consumed.
    pub backfill: Option<Backfill>,
}

impl RunOptions {
    /// Defaults: 4 GiB of engine memory (or `TRIBUTARY_MEMORY_LIMIT_MB`).
    pub fn new(run_id: impl Into<String>) -> RunOptions {
        let mb = std::env::var("TRIBUTARY_MEMORY_LIMIT_MB")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(4096);
        RunOptions {
            run_id: run_id.into(),
            full_refresh: false,
            memory_limit_bytes: mb * 1024 * 1024,
            backfill: None,
        }
    }
}

/// What running one model did.
#[derive(Debug, Clone)]
pub struct ModelOutcome {
    /// Model id.
    pub id: String,
    /// Materialization.
    pub materialized: Materialized,
    /// Built or up to date.
    pub status: ModelStatus,
    /// The table version after the run.
    pub version: Option<u64>,
    /// Rows the model's query produced (after deduplication by `unique_key`).
    pub rows_in: u64,
    /// Rows written to the table (inserted, or all rows of a rebuilt table).
    pub rows_inserted: u64,
    /// Rows updated in place (incremental merge) or closed (scd2).
    pub rows_updated: u64,
    /// Rows written to the quarantine table.
    pub rows_quarantined: u64,
    /// Every expectation's outcome.
    pub expectations: Vec<ExpectationResult>,
    /// Wall time.
    pub elapsed: Duration,
}

/// Runs the models of a project against a lake.
pub struct ModelRunner<'a> {
    lake: &'a Lake,
    models: &'a Models,
    opts: RunOptions,
}

impl<'a> ModelRunner<'a> {
    /// A runner for `models` on `lake`.
    pub fn new(lake: &'a Lake, models: &'a Models, opts: RunOptions) -> ModelRunner<'a> {
        ModelRunner { lake, models, opts }
    }

    /// The run options.
    pub fn options(&self) -> &RunOptions {
        &self.opts
    }

    /// Run one model.
    pub async fn run_model(&self, model: &Model) -> Result<ModelOutcome, TransformError> {
        let started = Instant::now();
        let id = model.id();
        let ctx = new_session(self.opts.memory_limit_bytes)?;
        let (layer, name) = (model.layer.as_str(), model.name.as_str());
        let existing = self.lake.open(layer, name).await?;
        let backfill = backfill_of(self.opts.backfill.as_ref(), model, existing.is_some())?;
        let fingerprint = Fingerprint::of(model, &self.models.macros);
        let mut full = self.opts.full_refresh || existing.is_none();
        // A backfill (`--from/--to`) is the user reprocessing a range after a change: no check.
        if let Some(t) = &existing
            && !full
            && backfill.is_none()
            && model.config.materialized != Materialized::Table
            && let Some(before) = last_fingerprint(t).await
        {
            let changes = fingerprint.changes_since(&before);
            if !changes.is_empty() {
                match model.config.on_logic_change {
                    LogicChange::Fail => {
                        return Err(TransformError::LogicChanged {
                            model: id,
                            file: model.config_file.clone(),
                            changes,
                        });
                    }
                    LogicChange::Rebuild => {
                        tracing::info!(model = %id, changes = %changes.join(", "), "The model's logic changed; rebuilding its table (on_logic_change: rebuild).");
                        full = true;
                    }
                    LogicChange::Continue => {
                        tracing::warn!(model = %id, changes = %changes.join(", "), "The model's logic changed; the table keeps the rows the old logic made (on_logic_change: continue).");
                    }
                }
            }
        }

        // Which upstream tables, and how (new files only, for incremental models).
        let deps = self.models.upstream.get(&id).cloned().unwrap_or_default();
        let mut ctx_render = self.models.render_context();
        // A backfill reads every upstream row (then keeps its cursor range).
        ctx_render.is_incremental =
            model.config.materialized == Materialized::Incremental && !full && backfill.is_none();
        let probe = render(model, &self.models.macros, &ctx_render)?;
        let incremental = ctx_render.is_incremental;
        let upstreams = register_upstreams(
            self.lake,
            &ctx,
            model,
            &deps,
            existing.as_ref(),
            incremental,
            |dep| probe.refs.get(dep) == Some(&false),
        )
        .await?;
        if !upstreams.anything_new {
            return Ok(ModelOutcome {
                id,
                materialized: model.config.materialized,
                status: ModelStatus::UpToDate,
                version: existing.as_ref().and_then(|t| t.version()),
                rows_in: 0,
                rows_inserted: 0,
                rows_updated: 0,
                rows_quarantined: 0,
                expectations: Vec::new(),
                elapsed: started.elapsed(),
            });
        }

        // Render for real: incremental refs point at the new-files tables.
        let mut rc = ctx_render.clone();
        let new_only = upstreams.new_only.clone();
        rc.ref_sql = Some(Arc::new(move |dep: &str, full_ref: bool| {
            if !full_ref && new_only.contains(dep) {
                let (l, n) = split_id(dep);
                format!(
                    "{}.{}",
                    quote_ident(&format!("{NEW_PREFIX}{l}")),
                    quote_ident(n)
                )
            } else {
                quote_table(dep)
            }
        }));
        let rendered = render(model, &self.models.macros, &rc)?;
        let df = ctx
            .sql(&rendered.sql)
            .await
            .map_err(|e| sql_error(model, e))?;
        let result_schema: Schema = df.schema().as_arrow().clone();
        self.check_columns(model, &result_schema)?;
        let df = match backfill {
            None => df,
            Some(range) => {
                ctx.register_table("__tributary_unfiltered", df.into_view())
                    .map_err(engine(model, "backfill"))?;
                let predicate = range_predicate(&ctx, model, &result_schema, range).await?;
                ctx.sql(&format!(
                    "SELECT * FROM __tributary_unfiltered WHERE {predicate}"
                ))
                .await
                .map_err(engine(model, "backfill"))?
            }
        };
        let df = match model.unique_key().is_empty() {
            true => df,
            false => {
                ctx.register_table("__tributary_raw", df.into_view())
                    .map_err(engine(model, "deduplicate"))?;
                // delta-rs plans a MERGE with its own planner, which lacks the dedup node.
                let feeds_merge = !full
                    && matches!(
                        model.config.materialized,
                        Materialized::Scd2 | Materialized::Incremental
                    );
                let (keys, order) = (model.unique_key(), model.order_by());
                if feeds_merge {
                    let sql = window_dedupe_sql("__tributary_raw", &result_schema, &keys, &order);
                    ctx.sql(&sql).await.map_err(engine(model, "deduplicate"))?
                } else {
                    dedupe(&ctx, "__tributary_raw", &result_schema, &keys, &order)
                        .await
                        .map_err(engine(model, "deduplicate"))?
                }
            }
        };
        ctx.register_table(RESULT_VIEW, df.into_view())
            .map_err(engine(model, "plan"))?;

        // Schema policy against the current table.
        if let Some(t) = &existing
            && !full
        {
            let current = as_stored(&strip(table_schema(&id, t)?.as_ref(), model));
            let diff = diff_schemas(&current, &as_stored(&result_schema));
            let policy = model.config.on_schema_change;
            diff.check(&id, policy, &model.config_file.display().to_string())?;
        }

        // Expectations.
        let Checked {
            output_sql,
            results: expectations,
            quarantined,
        } = check(self.lake, &self.opts.run_id, model, &ctx).await?;
        let output = ctx
            .sql(&output_sql)
            .await
            .map_err(engine(model, "plan output"))?;
        let rows_in = expectations.first().map(|r| r.checked_rows).unwrap_or(0);

        let commit = self
            .model_commit(model, backfill, &upstreams.read)
            .with_metadata(LOGIC_KEY, fingerprint.to_json());

        let mut outcome = ModelOutcome {
            id: id.clone(),
            materialized: model.config.materialized,
            status: ModelStatus::Built,
            version: None,
            rows_in,
            rows_inserted: 0,
            rows_updated: 0,
            rows_quarantined: quarantined,
            expectations,
            elapsed: Duration::ZERO,
        };
        let table = match existing {
            Some(t) => t,
            None => self.lake.prepare(layer, name)?,
        };
        let table = match model.config.materialized {
            Materialized::Table => overwrite(model, &ctx, table, output, commit).await?,
            Materialized::Incremental if full => {
                overwrite(model, &ctx, table, output, commit).await?
            }
            Materialized::Incremental if model.unique_key().is_empty() => {
                let before = table.version();
                let t = commit.append(table, &ctx, output).await?;
                outcome.rows_inserted = rows_added_since(&t, before).await;
                if outcome.rows_in == 0 {
                    outcome.rows_in = outcome.rows_inserted;
                }
                t
            }
            Materialized::Incremental => {
                let (t, counts) = merge(model, &ctx, table, output, commit).await?;
                if outcome.rows_in == 0 {
                    outcome.rows_in = counts.source_rows;
                }
                outcome.rows_inserted = counts.inserted;
                outcome.rows_updated = counts.updated;
                t
            }
            Materialized::Scd2 if full => {
                scd2::rebuild(model, &ctx, table, &output_sql, commit, chrono::Utc::now()).await?
            }
            Materialized::Scd2 => {
                let now = chrono::Utc::now();
                match scd2::scd2(
                    &self.opts.run_id,
                    model,
                    &ctx,
                    table,
                    &output_sql,
                    commit,
                    now,
                )
                .await?
                {
                    Some((t, opened, closed)) => {
                        outcome.rows_inserted = opened;
                        outcome.rows_updated = closed;
                        t
                    }
                    None => {
                        outcome.status = ModelStatus::UpToDate;
                        outcome.version =
                            self.lake.open(layer, name).await?.and_then(|t| t.version());
                        outcome.elapsed = started.elapsed();
                        return Ok(outcome);
                    }
                }
            }
        };
        let info = table_info(layer, name, &table)?;
        outcome.version = Some(info.version);
        let rebuilt = match model.config.materialized {
            Materialized::Table => true,
            Materialized::Incremental | Materialized::Scd2 => full,
        };
        if rebuilt {
            outcome.rows_inserted = info.rows.unwrap_or(rows_in);
            if outcome.rows_in == 0 {
                outcome.rows_in = outcome.rows_inserted + outcome.rows_quarantined;
            }
        }
        outcome.elapsed = started.elapsed();
        Ok(outcome)
    }

    /// The commit of a run's result: run id, model, materialization (and a backfill's range) in
    /// the commit info, and the upstream versions read as app transactions. A backfill records
    /// none, so the next normal run still reads what arrived since the last one.
    fn model_commit(
        &self,
        model: &Model,
        backfill: Option<&Backfill>,
        upstreams: &[Upstream],
    ) -> ModelCommit {
        let mut commit = ModelCommit::new(model.id())
            .with_metadata("tributary.run_id", self.opts.run_id.clone())
            .with_metadata("tributary.model", model.id());
        if let Some(b) = backfill {
            commit = commit.with_metadata(
                "tributary.backfill",
                serde_json::json!({ "from": b.from, "to": b.to }),
            );
        }
        commit = commit
            .with_metadata("tributary.materialized", model.config.materialized.as_str())
            // The tables this model MERGEs into carry the change data feed, so that models
            // reading them incrementally read the rows a MERGE changed, not the whole table.
            .with_change_data_feed(model.merges());
        if backfill.is_none() {
            for u in upstreams {
                commit = commit.with_app_transaction(
                    format!("{UPSTREAM_TXN_PREFIX}{}", u.id),
                    u.version as i64,
                );
            }
        }
        commit
    }

    /// Settings that name columns must name columns the result has.
    fn check_columns(&self, model: &Model, schema: &Schema) -> Result<(), TransformError> {
        let mut named: Vec<(&str, String)> = Vec::new();
        for c in model.unique_key() {
            named.push(("unique_key", c));
        }
        for c in model.order_by() {
            named.push(("order_by", c));
        }
        for c in &model.config.partition_by {
            named.push(("partition_by", c.clone()));
        }
        for c in model.config.check_columns.iter().flatten() {
            named.push(("check_columns", c.clone()));
        }
        for (key, c) in named {
            if schema.field_with_name(&c).is_err() {
                return Err(TransformError::Settings {
                    model: model.id(),
                    file: model.config_file.clone(),
                    message: format!(
                        "`{key}` names column `{c}`, which the query does not return (it returns: {})",
                        schema
                            .fields()
                            .iter()
                            .map(|f| f.name().as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
        }
        if model.config.materialized == Materialized::Scd2 {
            for c in SCD2_COLUMNS {
                if schema.field_with_name(c).is_ok() {
                    return Err(TransformError::Settings {
                        model: model.id(),
                        file: model.file.clone(),
                        message: format!(
                            "the query returns a column `{c}`, which scd2 adds itself; rename it"
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}

/// The table's schema without the columns the materialization adds.
fn strip(schema: &Schema, model: &Model) -> Schema {
    if model.config.materialized != Materialized::Scd2 {
        return schema.clone();
    }
    Schema::new(
        schema
            .fields()
            .iter()
            .filter(|f| !SCD2_COLUMNS.contains(&f.name().as_str()))
            .cloned()
            .collect::<Vec<_>>(),
    )
}

fn sql_error(model: &Model, e: deltalake::datafusion::error::DataFusionError) -> TransformError {
    let message = e.to_string();
    let line = error_position(&message).map(|(l, _)| l);
    TransformError::Sql {
        model: model.id(),
        file: model.file.clone(),
        line,
        message,
    }
}

/// The logic fingerprint the table's last model commit recorded (among its latest 100 commits,
/// so maintenance commits in between do not hide it); `None` for tables built before
/// fingerprints, which are not failed.
async fn last_fingerprint(t: &deltalake::DeltaTable) -> Option<Fingerprint> {
    use futures::StreamExt;
    let mut history = t.history(Some(100));
    while let Some(commit) = history.next().await {
        let commit = commit.ok()?;
        if commit.info.contains_key("tributary.model") {
            return commit.info.get(LOGIC_KEY).and_then(Fingerprint::from_json);
        }
    }
    None
}
