//! Running models: one DataFusion session per model, expectations, and the materializations.
//!
//! Every materialization ends in exactly one Delta commit of the model's table (readers see the
//! old or the new version), which also records, as Delta app transactions
//! (`tributary:<layer>.<name>` → version), the upstream table versions the model consumed. An
//! incremental model reads only the files added to an upstream table since that version.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deltalake::arrow::array::{Array, AsArray, RecordBatch};
use deltalake::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit};
use deltalake::datafusion::catalog::{MemorySchemaProvider, TableProvider};
use deltalake::datafusion::common::Column;
use deltalake::datafusion::datasource::MemTable;
use deltalake::datafusion::execution::memory_pool::FairSpillPool;
use deltalake::datafusion::execution::runtime_env::RuntimeEnvBuilder;
use deltalake::datafusion::execution::session_state::SessionStateBuilder;
use deltalake::datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use deltalake::kernel::Transaction;
use deltalake::kernel::engine::arrow_conversion::{TryIntoArrow, TryIntoKernel};
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::{StructField, StructType};
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableBuilder};
use tributary_lake::schema::diff_schemas;
use tributary_lake::{Lake, LakeError, table_info};

use crate::dedupe::{ModelPlanner, dedupe, window_dedupe_sql};
use crate::expect::{ExpectationResult, OnFail, Rule, checked_sql, pass_column, row_count_failed};
use crate::model::{HardDeletes, Materialized, Model};
use crate::project::Models;
use crate::sql::{error_position, quote_ident, quote_table};
use crate::template::render;
use crate::{ModelStatus, TransformError};

/// App-transaction id prefix recording consumed upstream versions.
pub const UPSTREAM_TXN_PREFIX: &str = "tributary:";
/// Columns an `scd2` model adds.
pub const SCD2_COLUMNS: [&str; 3] = ["valid_from", "valid_to", "is_current"];
/// Columns a quarantine table adds to the model's columns.
pub const QUARANTINE_COLUMNS: [&str; 3] = [
    "_tributary_expectation",
    "_tributary_run_id",
    "_tributary_quarantined_at",
];
const RESULT_VIEW: &str = "__tributary_result";
const CHECKED_VIEW: &str = "__tributary_checked";
const NEW_PREFIX: &str = "_new_";

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

pub use tributary_core::cursor::Backfill;

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

fn engine(
    model: &Model,
    action: &str,
) -> impl Fn(deltalake::datafusion::error::DataFusionError) -> TransformError {
    let id = model.id();
    let action = action.to_string();
    move |e| TransformError::Engine {
        model: id.clone(),
        action: action.clone(),
        message: e.to_string(),
    }
}

fn delta(
    table: &str,
    action: &'static str,
) -> impl Fn(deltalake::DeltaTableError) -> TransformError {
    let table = table.to_string();
    move |e| TransformError::Lake(LakeError::delta(&table, action, e))
}

/// A new session with a bounded, spilling memory pool and [`ModelPlanner`] (delta-rs's planner,
/// needed by its write and merge operations, plus the deduplication node).
pub fn new_session(memory_limit_bytes: usize) -> Result<SessionContext, TransformError> {
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(FairSpillPool::new(memory_limit_bytes)))
        .build_arc()
        .map_err(|e| TransformError::Engine {
            model: String::new(),
            action: "start the query engine".into(),
            message: e.to_string(),
        })?;
    let config = SessionConfig::new()
        .with_information_schema(false)
        .with_batch_size(8192);
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_query_planner(Arc::new(ModelPlanner))
        .build();
    Ok(SessionContext::new_with_state(state))
}

/// Register `provider` as `schema.name` in `ctx`.
pub fn register(
    ctx: &SessionContext,
    schema: &str,
    name: &str,
    provider: Arc<dyn TableProvider>,
) -> Result<(), TransformError> {
    let err = |e: deltalake::datafusion::error::DataFusionError| TransformError::Engine {
        model: String::new(),
        action: format!("register {schema}.{name}"),
        message: e.to_string(),
    };
    let catalog = ctx
        .catalog("datafusion")
        .ok_or_else(|| TransformError::Engine {
            model: String::new(),
            action: "register tables".into(),
            message: "the default catalog is missing".into(),
        })?;
    let s = match catalog.schema(schema) {
        Some(s) => s,
        None => {
            let s = Arc::new(MemorySchemaProvider::new());
            catalog.register_schema(schema, s.clone()).map_err(err)?;
            s
        }
    };
    s.register_table(name.to_string(), provider).map_err(err)?;
    Ok(())
}

fn split_id(id: &str) -> (&str, &str) {
    id.split_once('.').unwrap_or(("", id))
}

/// The table's Arrow schema.
fn arrow_schema(id: &str, t: &DeltaTable) -> Result<Schema, TransformError> {
    let snapshot = t.snapshot().map_err(delta(id, "read snapshot"))?;
    snapshot
        .schema()
        .as_ref()
        .try_into_arrow()
        .map_err(|e: deltalake::arrow::error::ArrowError| {
            TransformError::Lake(LakeError::delta(id, "read schema", e.into()))
        })
}

fn file_paths(t: &DeltaTable) -> Result<Vec<String>, deltalake::DeltaTableError> {
    Ok(t.snapshot()?
        .log_data()
        .iter()
        .map(|f| f.path().to_string())
        .collect())
}

/// How a model reads one upstream table.
struct Upstream {
    id: String,
    table: DeltaTable,
    version: u64,
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

    async fn open_upstream(&self, model: &Model, id: &str) -> Result<Upstream, TransformError> {
        let (layer, name) = split_id(id);
        let table =
            self.lake
                .open(layer, name)
                .await?
                .ok_or_else(|| TransformError::MissingUpstream {
                    model: model.id(),
                    table: id.to_string(),
                })?;
        let version = table.version().unwrap_or(0);
        Ok(Upstream {
            id: id.to_string(),
            table,
            version,
        })
    }

    /// Versions of upstream tables recorded in the model's table.
    async fn consumed_versions(
        &self,
        target: &DeltaTable,
        ids: &BTreeSet<String>,
    ) -> Result<BTreeMap<String, i64>, TransformError> {
        let mut out = BTreeMap::new();
        let state = target.snapshot().map_err(delta("", "read snapshot"))?;
        for id in ids {
            let v = state
                .transaction_version(
                    target.log_store().as_ref(),
                    format!("{UPSTREAM_TXN_PREFIX}{id}"),
                )
                .await
                .map_err(delta(id, "read consumed version"))?;
            if let Some(v) = v {
                out.insert(id.clone(), v);
            }
        }
        Ok(out)
    }

    /// Run one model.
    pub async fn run_model(&self, model: &Model) -> Result<ModelOutcome, TransformError> {
        let started = Instant::now();
        let id = model.id();
        let ctx = new_session(self.opts.memory_limit_bytes)?;
        let (layer, name) = (model.layer.as_str(), model.name.as_str());
        let existing = self.lake.open(layer, name).await?;
        let backfill = self.backfill_of(model, existing.is_some())?;
        let full = self.opts.full_refresh || existing.is_none();

        // Which upstream tables, and how (new files only, for incremental models).
        let deps = self.models.upstream.get(&id).cloned().unwrap_or_default();
        let mut ctx_render = self.models.render_context();
        // A backfill reads every upstream row (then keeps its cursor range).
        ctx_render.is_incremental =
            model.config.materialized == Materialized::Incremental && !full && backfill.is_none();
        let probe = render(model, &self.models.macros, &ctx_render)?;
        let consumed = match (&existing, model.config.materialized) {
            (Some(t), Materialized::Incremental) if !full && backfill.is_none() => {
                self.consumed_versions(t, &deps).await?
            }
            _ => BTreeMap::new(),
        };
        let mut upstreams = Vec::new();
        let mut new_only: BTreeSet<String> = BTreeSet::new();
        let mut anything_new =
            full || backfill.is_some() || model.config.materialized != Materialized::Incremental;
        for dep in &deps {
            let up = self.open_upstream(model, dep).await?;
            register(
                &ctx,
                split_id(dep).0,
                split_id(dep).1,
                provider(&up.table, dep).await?,
            )?;
            let wants_new = probe.refs.get(dep) == Some(&false);
            if model.config.materialized == Materialized::Incremental
                && !full
                && backfill.is_none()
                && wants_new
            {
                match consumed.get(dep) {
                    Some(v) if *v == up.version as i64 => {
                        register(
                            &ctx,
                            &format!("{NEW_PREFIX}{}", split_id(dep).0),
                            split_id(dep).1,
                            empty_like(&up.table, dep)?,
                        )?;
                    }
                    Some(v) => {
                        let p = new_files_provider(&up.table, dep, (*v).max(0) as u64).await?;
                        register(
                            &ctx,
                            &format!("{NEW_PREFIX}{}", split_id(dep).0),
                            split_id(dep).1,
                            p,
                        )?;
                        anything_new = true;
                    }
                    None => {
                        // Never consumed (new dependency): read it whole.
                        register(
                            &ctx,
                            &format!("{NEW_PREFIX}{}", split_id(dep).0),
                            split_id(dep).1,
                            provider(&up.table, dep).await?,
                        )?;
                        anything_new = true;
                    }
                }
                new_only.insert(dep.clone());
            }
            upstreams.push(up);
        }
        if !anything_new {
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
        let new_only_c = new_only.clone();
        rc.ref_sql = Some(Arc::new(move |dep: &str, full_ref: bool| {
            if !full_ref && new_only_c.contains(dep) {
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
            && !self.opts.full_refresh
        {
            let current = as_stored(&strip(&arrow_schema(&id, t)?, model));
            let diff = diff_schemas(&current, &as_stored(&result_schema));
            let policy = model.config.on_schema_change;
            diff.check(&id, policy, &model.config_file.display().to_string())?;
        }

        // Expectations.
        let (output_sql, expectations, quarantined) = self.check(model, &ctx).await?;
        let output = ctx
            .sql(&output_sql)
            .await
            .map_err(engine(model, "plan output"))?;
        let rows_in = expectations.first().map(|r| r.checked_rows).unwrap_or(0);

        // Commit metadata: consumed upstream versions as app transactions. A backfill records
        // none, so the next normal run still reads what arrived since the last one.
        let txns: Vec<Transaction> = match backfill {
            Some(_) => Vec::new(),
            None => upstreams
                .iter()
                .map(|u| {
                    Transaction::new(format!("{UPSTREAM_TXN_PREFIX}{}", u.id), u.version as i64)
                })
                .collect(),
        };
        let mut meta: HashMap<String, serde_json::Value> = HashMap::new();
        meta.insert("tributary.run_id".into(), self.opts.run_id.clone().into());
        meta.insert("tributary.model".into(), id.clone().into());
        if let Some(b) = backfill {
            meta.insert(
                "tributary.backfill".into(),
                serde_json::json!({ "from": b.from, "to": b.to }),
            );
        }
        meta.insert(
            "tributary.materialized".into(),
            model.config.materialized.as_str().into(),
        );
        let props = CommitProperties::default()
            .with_metadata(meta)
            .with_application_transactions(txns);

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
            None => self.unloaded(layer, name)?,
        };
        let table = match model.config.materialized {
            Materialized::Table => self.overwrite(model, &ctx, table, output, props).await?,
            Materialized::Incremental if full => {
                self.overwrite(model, &ctx, table, output, props).await?
            }
            Materialized::Incremental => {
                if model.unique_key().is_empty() {
                    let before = table.version();
                    let t = self.append(model, &ctx, table, output, props).await?;
                    outcome.rows_inserted = rows_added_since(&t, before).await;
                    if outcome.rows_in == 0 {
                        outcome.rows_in = outcome.rows_inserted;
                    }
                    t
                } else {
                    let (t, source, inserted, updated) =
                        self.merge(model, &ctx, table, output, props).await?;
                    if outcome.rows_in == 0 {
                        outcome.rows_in = source;
                    }
                    outcome.rows_inserted = inserted;
                    outcome.rows_updated = updated;
                    t
                }
            }
            Materialized::Scd2 => {
                let now = chrono::Utc::now();
                if full {
                    let sql = format!(
                        "SELECT o.*, {vf} AS valid_from, arrow_cast(NULL, 'Timestamp(Microsecond, Some(\"UTC\"))') AS valid_to, TRUE AS is_current FROM ({output_sql}) o",
                        vf = valid_from_expr(model, "o", now),
                    );
                    let out = ctx.sql(&sql).await.map_err(engine(model, "plan scd2"))?;
                    self.overwrite(model, &ctx, table, out, props).await?
                } else {
                    match self
                        .scd2(model, &ctx, table, &output_sql, props, now)
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

    /// The range this model reprocesses in a backfill run: `None` when there is no backfill or
    /// the model is a `table` (rebuilt whole, as in any run); an error for models a range
    /// cannot be reprocessed in.
    fn backfill_of(
        &self,
        model: &Model,
        exists: bool,
    ) -> Result<Option<&Backfill>, TransformError> {
        let Some(range) = &self.opts.backfill else {
            return Ok(None);
        };
        let settings = |message: String| TransformError::Settings {
            model: model.id(),
            file: model.config_file.clone(),
            message,
        };
        match model.config.materialized {
            Materialized::Table => Ok(None),
            Materialized::Scd2 => Err(settings(
                "an scd2 model keeps history in order and cannot be backfilled by range; leave it out of the selection, or rebuild it with --full-refresh".into(),
            )),
            Materialized::Incremental => {
                if !exists {
                    return Err(settings(
                        "not built yet, so there is nothing to backfill; run it once without --from/--to".into(),
                    ));
                }
                if model.unique_key().is_empty() {
                    return Err(settings(
                        "a backfill needs `unique_key`, so that reprocessed rows replace their earlier versions instead of being appended twice".into(),
                    ));
                }
                if model.order_by().is_empty() {
                    return Err(settings(
                        "a backfill needs `order_by`: its first column is the cursor --from/--to apply to".into(),
                    ));
                }
                Ok(Some(range))
            }
        }
    }

    fn unloaded(&self, layer: &str, name: &str) -> Result<DeltaTable, TransformError> {
        let url = self.lake.table_url(layer, name)?;
        let id = format!("{layer}.{name}");
        DeltaTableBuilder::from_url(url)
            .map_err(delta(&id, "prepare table"))?
            .with_storage_options(self.lake.options().clone())
            .build()
            .map_err(delta(&id, "prepare table"))
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

    /// Evaluate expectations; write quarantined rows. Returns the SQL of the rows to write,
    /// the results, and the number of rows quarantined.
    async fn check(
        &self,
        model: &Model,
        ctx: &SessionContext,
    ) -> Result<(String, Vec<ExpectationResult>, u64), TransformError> {
        let rules = &model.expectations;
        if rules.is_empty() {
            return Ok((format!("SELECT * FROM {RESULT_VIEW}"), Vec::new(), 0));
        }
        for e in rules {
            if let Rule::Relationships { to, .. } = &e.rule {
                let (l, n) = split_id(to);
                if ctx
                    .table_exist(format!("{}.{}", quote_ident(l), quote_ident(n)).as_str())
                    .unwrap_or(false)
                {
                    continue;
                }
                let up = self.open_upstream(model, to).await?;
                register(ctx, l, n, provider(&up.table, to).await?)?;
            }
        }
        let checked = ctx
            .sql(&checked_sql(RESULT_VIEW, rules))
            .await
            .map_err(|e| expectation_error(model, e))?;
        ctx.register_table(CHECKED_VIEW, checked.into_view())
            .map_err(engine(model, "check expectations"))?;
        let mut sums = vec!["COUNT(*) AS n".to_string()];
        for i in 0..rules.len() {
            sums.push(format!(
                "SUM(CASE WHEN {} THEN 0 ELSE 1 END) AS f{i}",
                pass_column(i)
            ));
        }
        let counts = ctx
            .sql(&format!("SELECT {} FROM {CHECKED_VIEW}", sums.join(", ")))
            .await
            .map_err(|e| expectation_error(model, e))?
            .collect()
            .await
            .map_err(|e| expectation_error(model, e))?;
        let row = counts.first().ok_or_else(|| TransformError::Engine {
            model: model.id(),
            action: "count expectation failures".into(),
            message: "no result row".into(),
        })?;
        let n = int_at(row, 0);
        let mut results = Vec::new();
        for (i, e) in rules.iter().enumerate() {
            let failed = if e.rule.is_row_rule() {
                int_at(row, i + 1)
            } else {
                u64::from(row_count_failed(&e.rule, n))
            };
            results.push(ExpectationResult {
                name: e.name.clone(),
                rule: e.rule.kind().to_string(),
                on_fail: e.on_fail.as_str().to_string(),
                checked_rows: n,
                failed_rows: failed,
                passed: failed == 0,
            });
        }
        for r in &results {
            if !r.passed {
                tracing::warn!(model = %model.id(), expectation = %r.name, failed_rows = r.failed_rows, checked_rows = r.checked_rows, on_fail = %r.on_fail, "Expectation failed.");
            }
        }
        if results.iter().any(|r| !r.passed && r.on_fail == "fail") {
            return Err(TransformError::ExpectationsFailed {
                model: model.id(),
                results,
            });
        }
        let columns = columns_of(ctx, RESULT_VIEW, model).await?;
        let drop: Vec<usize> = rules
            .iter()
            .enumerate()
            .filter(|(i, e)| e.on_fail == OnFail::Drop && !results[*i].passed)
            .map(|(i, _)| i)
            .collect();
        if drop.is_empty() {
            return Ok((format!("SELECT {columns} FROM {CHECKED_VIEW}"), results, 0));
        }
        // Quarantine: one row per failed drop rule, then keep the rows that pass them all.
        let branches: Vec<String> = drop
            .iter()
            .map(|i| {
                format!(
                    "SELECT {columns}, {} AS _tributary_expectation, {} AS _tributary_run_id, arrow_cast(now(), 'Timestamp(Microsecond, Some(\"UTC\"))') AS _tributary_quarantined_at FROM {CHECKED_VIEW} WHERE NOT {}",
                    crate::sql::sql_literal(&serde_json::Value::String(rules[*i].name.clone())),
                    crate::sql::sql_literal(&serde_json::Value::String(self.opts.run_id.clone())),
                    pass_column(*i)
                )
            })
            .collect();
        let q = ctx
            .sql(&branches.join(" UNION ALL "))
            .await
            .map_err(engine(model, "plan quarantine"))?;
        let quarantine = self
            .unloaded_or_open(&model.layer, &model.quarantine_name())
            .await?;
        let qid = format!("{}.{}", model.layer, model.quarantine_name());
        let before = quarantine.version();
        let qt = quarantine
            .write(Vec::new())
            .with_input_plan(q.logical_plan().clone())
            .with_save_mode(SaveMode::Append)
            .with_schema_mode(SchemaMode::Merge)
            .with_session_state(Arc::new(ctx.state()))
            .await
            .map_err(delta(&qid, "write quarantined rows"))?;
        let quarantined = rows_added_since(&qt, before).await;
        let keep = drop
            .iter()
            .map(|i| pass_column(*i))
            .collect::<Vec<_>>()
            .join(" AND ");
        Ok((
            format!("SELECT {columns} FROM {CHECKED_VIEW} WHERE {keep}"),
            results,
            quarantined,
        ))
    }

    async fn unloaded_or_open(
        &self,
        layer: &str,
        name: &str,
    ) -> Result<DeltaTable, TransformError> {
        match self.lake.open(layer, name).await? {
            Some(t) => Ok(t),
            None => self.unloaded(layer, name),
        }
    }

    /// Replace the table's contents (and schema) with `output`, in one commit.
    async fn overwrite(
        &self,
        model: &Model,
        ctx: &SessionContext,
        table: DeltaTable,
        output: DataFrame,
        props: CommitProperties,
    ) -> Result<DeltaTable, TransformError> {
        let id = model.id();
        let mut b = table
            .write(Vec::new())
            .with_input_plan(output.logical_plan().clone())
            .with_save_mode(SaveMode::Overwrite)
            .with_schema_mode(SchemaMode::Overwrite)
            .with_session_state(Arc::new(ctx.state()))
            .with_commit_properties(props);
        if !model.config.partition_by.is_empty() {
            b = b.with_partition_columns(model.config.partition_by.clone());
        }
        if let Some(d) = &model.config.description {
            b = b.with_description(d.clone());
        }
        b.await.map_err(delta(&id, "write"))
    }

    async fn append(
        &self,
        model: &Model,
        ctx: &SessionContext,
        table: DeltaTable,
        output: DataFrame,
        props: CommitProperties,
    ) -> Result<DeltaTable, TransformError> {
        let id = model.id();
        table
            .write(Vec::new())
            .with_input_plan(output.logical_plan().clone())
            .with_save_mode(SaveMode::Append)
            .with_schema_mode(SchemaMode::Merge)
            .with_session_state(Arc::new(ctx.state()))
            .with_commit_properties(props)
            .await
            .map_err(delta(&id, "append"))
    }

    /// MERGE `output` into the table by `unique_key`: newer rows (by `order_by`) update, new
    /// keys insert.
    async fn merge(
        &self,
        model: &Model,
        ctx: &SessionContext,
        table: DeltaTable,
        output: DataFrame,
        props: CommitProperties,
    ) -> Result<(DeltaTable, u64, u64, u64), TransformError> {
        let id = model.id();
        let keys = model.unique_key();
        let cols: Vec<String> = output
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let on = keys
            .iter()
            .map(|k| format!("t.{q} = s.{q}", q = quote_ident(k)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let newer = order_predicate(&model.order_by());
        let (table, metrics) = table
            .merge(output, on)
            .with_source_alias("s")
            .with_target_alias("t")
            .with_merge_schema(true)
            .with_session_state(Arc::new(ctx.state()))
            .with_commit_properties(props)
            .when_matched_update(|u| {
                let mut u = match &newer {
                    Some(p) => u.predicate(p.clone()),
                    None => u,
                };
                for c in &cols {
                    u = u.update(
                        Column::new_unqualified(c.clone()),
                        format!("s.{}", quote_ident(c)),
                    );
                }
                u
            })
            .map_err(delta(&id, "plan merge"))?
            .when_not_matched_insert(|mut i| {
                for c in &cols {
                    i = i.set(
                        Column::new_unqualified(c.clone()),
                        format!("s.{}", quote_ident(c)),
                    );
                }
                i
            })
            .map_err(delta(&id, "plan merge"))?
            .await
            .map_err(delta(&id, "merge"))?;
        Ok((
            table,
            metrics.num_source_rows as u64,
            metrics.num_target_rows_inserted as u64,
            metrics.num_target_rows_updated as u64,
        ))
    }

    /// Add the result's columns that the table lacks (nullable, empty) in a commit of their own,
    /// ahead of the scd2 MERGE: delta-rs's MERGE cannot evolve the schema while it sets columns
    /// only the target has (`valid_to`, `is_current`). If the MERGE then fails, the table is
    /// readable (the new columns are NULL) and the next run, finding no new column, merges as
    /// this one would have.
    async fn add_new_columns(
        &self,
        model: &Model,
        table: DeltaTable,
        result: &Schema,
    ) -> Result<DeltaTable, TransformError> {
        let id = model.id();
        let current = arrow_schema(&id, &table)?;
        let new: Vec<Field> = as_stored(result)
            .fields()
            .iter()
            .filter(|f| current.field_with_name(f.name()).is_err())
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        if new.is_empty() {
            return Ok(table);
        }
        let names = new
            .iter()
            .map(|f| f.name().as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let new_schema = Schema::new(new);
        let kernel: StructType =
            (&new_schema)
                .try_into_kernel()
                .map_err(|e: deltalake::arrow::error::ArrowError| {
                    TransformError::Lake(LakeError::Schema {
                        table: id.clone(),
                        reason: format!("new columns {names} cannot be stored in Delta: {e}"),
                    })
                })?;
        let mut meta: HashMap<String, serde_json::Value> = HashMap::new();
        meta.insert("tributary.run_id".into(), self.opts.run_id.clone().into());
        meta.insert("tributary.model".into(), id.clone().into());
        let table = table
            .add_columns()
            .with_fields(kernel.fields().cloned().collect::<Vec<StructField>>())
            .with_commit_properties(CommitProperties::default().with_metadata(meta))
            .await
            .map_err(delta(&id, "add new columns"))?;
        tracing::info!(model = %id, columns = %names, "Added new columns to the scd2 table.");
        Ok(table)
    }

    /// SCD2: close changed current rows and open new versions, in one MERGE. `None` when
    /// nothing changed (no commit).
    async fn scd2(
        &self,
        model: &Model,
        ctx: &SessionContext,
        table: DeltaTable,
        output_sql: &str,
        props: CommitProperties,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<(DeltaTable, u64, u64)>, TransformError> {
        let id = model.id();
        let keys = model.unique_key();
        let out_schema: Schema = ctx
            .sql(output_sql)
            .await
            .map_err(engine(model, "plan scd2"))?
            .schema()
            .as_arrow()
            .clone();
        let table = self.add_new_columns(model, table, &out_schema).await?;
        let cols: Vec<String> = out_schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let order = model.order_by();
        let compare: Vec<String> = match &model.config.check_columns {
            Some(c) => c.clone(),
            None => cols
                .iter()
                .filter(|c| {
                    !keys.contains(c) && !order.contains(c) && !c.starts_with("_tributary_")
                })
                .cloned()
                .collect(),
        };
        register(ctx, "__scd2", "target", provider(&table, &id).await?)?;
        ctx.register_table(
            "__scd2_source",
            ctx.sql(output_sql)
                .await
                .map_err(engine(model, "plan scd2"))?
                .into_view(),
        )
        .map_err(engine(model, "plan scd2"))?;
        let key_join = |a: &str, b: &str| {
            keys.iter()
                .map(|k| format!("{a}.{q} = {b}.{q}", q = quote_ident(k)))
                .collect::<Vec<_>>()
                .join(" AND ")
        };
        let same = if compare.is_empty() {
            "TRUE".to_string()
        } else {
            compare
                .iter()
                .map(|c| format!("(s.{q} IS NOT DISTINCT FROM c.{q})", q = quote_ident(c)))
                .collect::<Vec<_>>()
                .join(" AND ")
        };
        let first_key = quote_ident(keys.first().map(String::as_str).unwrap_or(""));
        let s_cols = cols
            .iter()
            .map(|c| format!("s.{}", quote_ident(c)))
            .collect::<Vec<_>>()
            .join(", ");
        let vf = valid_from_expr(model, "s", now);
        let changes = format!(
            "SELECT {s_cols}, {vf} AS valid_from, c.{first_key} IS NOT NULL AS __existing \
             FROM __scd2_source s LEFT JOIN (SELECT * FROM \"__scd2\".\"target\" WHERE is_current) c ON {on} \
             WHERE c.{first_key} IS NULL OR NOT ({same})",
            on = key_join("s", "c"),
        );
        ctx.register_table(
            "__scd2_changes",
            ctx.sql(&changes)
                .await
                .map_err(engine(model, "plan scd2"))?
                .into_view(),
        )
        .map_err(engine(model, "plan scd2"))?;
        let mk = |i: usize| format!("__mk_{i}");
        let mk_set = keys
            .iter()
            .enumerate()
            .map(|(i, k)| format!("{} AS {}", quote_ident(k), mk(i)))
            .collect::<Vec<_>>()
            .join(", ");
        let mk_null = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let t = out_schema
                    .field_with_name(k)
                    .map(|f| f.data_type().clone())
                    .unwrap_or(DataType::Utf8);
                format!("CAST(NULL AS {}) AS {}", sql_type(&t), mk(i))
            })
            .collect::<Vec<_>>()
            .join(", ");
        let plain = cols
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        let mut branches = vec![
            format!(
                "SELECT {mk_set}, {plain}, valid_from, FALSE AS __delete, TRUE AS __current FROM __scd2_changes"
            ),
            format!(
                "SELECT {mk_null}, {plain}, valid_from, FALSE AS __delete, TRUE AS __current FROM __scd2_changes WHERE __existing"
            ),
        ];
        if model.config.hard_deletes == HardDeletes::Invalidate {
            let now_lit = format!(
                "arrow_cast('{}', 'Timestamp(Microsecond, Some(\"UTC\"))')",
                now.format("%Y-%m-%dT%H:%M:%S%.6f")
            );
            branches.push(format!(
                "SELECT {mk_c}, {plain_c}, {now_lit} AS valid_from, TRUE AS __delete, TRUE AS __current FROM \"__scd2\".\"target\" c \
                 WHERE c.is_current AND NOT EXISTS (SELECT 1 FROM __scd2_source s WHERE {on})",
                mk_c = keys
                    .iter()
                    .enumerate()
                    .map(|(i, k)| format!("c.{} AS {}", quote_ident(k), mk(i)))
                    .collect::<Vec<_>>()
                    .join(", "),
                plain_c = cols
                    .iter()
                    .map(|c| format!("c.{q} AS {q}", q = quote_ident(c)))
                    .collect::<Vec<_>>()
                    .join(", "),
                on = key_join("s", "c"),
            ));
        }
        let source = ctx
            .sql(&branches.join(" UNION ALL "))
            .await
            .map_err(engine(model, "plan scd2"))?;
        let pending = source
            .clone()
            .count()
            .await
            .map_err(engine(model, "compare with the current versions"))?;
        if pending == 0 {
            return Ok(None);
        }
        let on = keys
            .iter()
            .enumerate()
            .map(|(i, k)| format!("t.{} = s.{}", quote_ident(k), mk(i)))
            .collect::<Vec<_>>()
            .join(" AND ")
            + " AND t.is_current = s.__current";
        let (table, metrics) = table
            .merge(source, on)
            .with_source_alias("s")
            .with_target_alias("t")
            .with_merge_schema(false)
            .with_session_state(Arc::new(ctx.state()))
            .with_commit_properties(props)
            .when_matched_update(|u| {
                u.update("valid_to", "s.valid_from")
                    .update("is_current", "FALSE")
            })
            .map_err(delta(&id, "plan scd2 merge"))?
            .when_not_matched_insert(|mut i| {
                i = i.predicate("NOT s.__delete");
                for c in &cols {
                    i = i.set(
                        Column::new_unqualified(c.clone()),
                        format!("s.{}", quote_ident(c)),
                    );
                }
                i.set("valid_from", "s.valid_from")
                    .set(
                        "valid_to",
                        "arrow_cast(NULL, 'Timestamp(Microsecond, Some(\"UTC\"))')",
                    )
                    .set("is_current", "TRUE")
            })
            .map_err(delta(&id, "plan scd2 merge"))?
            .await
            .map_err(delta(&id, "scd2 merge"))?;
        Ok(Some((
            table,
            metrics.num_target_rows_inserted as u64,
            metrics.num_target_rows_updated as u64,
        )))
    }
}

/// A provider over the whole current table.
async fn provider(t: &DeltaTable, id: &str) -> Result<Arc<dyn TableProvider>, TransformError> {
    let p = t
        .table_provider()
        .await
        .map_err(|e| TransformError::Engine {
            model: String::new(),
            action: format!("open {id} for reading"),
            message: e.to_string(),
        })?;
    Ok(p)
}

/// An empty table with `t`'s schema.
fn empty_like(t: &DeltaTable, id: &str) -> Result<Arc<dyn TableProvider>, TransformError> {
    let schema: SchemaRef = Arc::new(arrow_schema(id, t)?);
    let mem = MemTable::try_new(schema, vec![vec![]]).map_err(|e| TransformError::Engine {
        model: String::new(),
        action: format!("read {id}"),
        message: e.to_string(),
    })?;
    Ok(Arc::new(mem))
}

/// A provider over the files added to `t` after version `since`.
async fn new_files_provider(
    t: &DeltaTable,
    id: &str,
    since: u64,
) -> Result<Arc<dyn TableProvider>, TransformError> {
    let mut old = t.clone();
    let old_paths: HashSet<String> = match old.load_version(since).await {
        Ok(()) => file_paths(&old)
            .map_err(delta(id, "list files"))?
            .into_iter()
            .collect(),
        Err(e) => {
            tracing::warn!(table = %id, version = since, error = %e, "Cannot read the consumed version; reading the whole table.");
            HashSet::new()
        }
    };
    let new: Vec<String> = file_paths(t)
        .map_err(delta(id, "list files"))?
        .into_iter()
        .filter(|p| !old_paths.contains(p))
        .collect();
    if new.is_empty() {
        return empty_like(t, id);
    }
    let scan = t
        .table_provider()
        .with_file_paths(new)
        .build()
        .await
        .map_err(|e| TransformError::Engine {
            model: String::new(),
            action: format!("read new files of {id}"),
            message: e.to_string(),
        })?;
    Ok(Arc::new(scan))
}

async fn rows_added_since(t: &DeltaTable, before: Option<u64>) -> u64 {
    let old: HashSet<String> = match before {
        Some(v) => {
            let mut o = t.clone();
            if o.load_version(v).await.is_err() {
                return 0;
            }
            file_paths(&o).unwrap_or_default().into_iter().collect()
        }
        None => HashSet::new(),
    };
    let Ok(snapshot) = t.snapshot() else { return 0 };
    snapshot
        .log_data()
        .iter()
        .filter(|f| !old.contains(f.path().as_ref()))
        .filter_map(|f| f.num_records())
        .map(|n| n as u64)
        .sum()
}

/// The schema as a Delta table stores it: string and binary views and large variants as plain
/// string/binary, every timestamp in microseconds. The engine's result types differ from the
/// stored ones in these ways without any change in meaning.
fn as_stored(schema: &Schema) -> Schema {
    fn norm(t: &DataType) -> DataType {
        match t {
            DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
            DataType::BinaryView | DataType::LargeBinary => DataType::Binary,
            DataType::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
            DataType::Dictionary(_, v) => norm(v),
            other => other.clone(),
        }
    }
    Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_data_type(norm(f.data_type())))
            .collect::<Vec<_>>(),
    )
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

/// The comma-separated quoted columns of a registered relation.
async fn columns_of(
    ctx: &SessionContext,
    view: &str,
    model: &Model,
) -> Result<String, TransformError> {
    let df = ctx
        .table(view)
        .await
        .map_err(engine(model, "read result columns"))?;
    Ok(df
        .schema()
        .fields()
        .iter()
        .map(|f| quote_ident(f.name()))
        .collect::<Vec<_>>()
        .join(", "))
}

fn int_at(batch: &RecordBatch, col: usize) -> u64 {
    let c = batch.column(col);
    if c.is_null(0) {
        return 0;
    }
    match c.data_type() {
        DataType::Int64 => c.as_primitive::<Int64Type>().value(0).max(0) as u64,
        _ => deltalake::arrow::compute::cast(c, &DataType::Int64)
            .ok()
            .map(|a| a.as_primitive::<Int64Type>().value(0).max(0) as u64)
            .unwrap_or(0),
    }
}

/// `s.o1 > t.o1 OR (s.o1 = t.o1 AND …)` — the source row is at least as new as the target's.
/// `cursor >= from AND cursor < to` over the model's result, each bound read in the cursor
/// column's type (checked first, so a bad bound is an error naming the model and the cursor).
async fn range_predicate(
    ctx: &SessionContext,
    model: &Model,
    schema: &Schema,
    range: &Backfill,
) -> Result<String, TransformError> {
    let order = model.order_by();
    let cursor = order.first().map(String::as_str).unwrap_or_default();
    let field = schema
        .field_with_name(cursor)
        .map_err(|_| TransformError::Settings {
            model: model.id(),
            file: model.config_file.clone(),
            message: format!("order_by column `{cursor}` is not in the model's result"),
        })?;
    let literal = |text: &str| {
        let quoted = format!("'{}'", text.replace('\'', "''"));
        match field.data_type() {
            DataType::Timestamp(_, Some(_)) => {
                format!("(CAST({quoted} AS TIMESTAMP) AT TIME ZONE 'UTC')")
            }
            t => format!("CAST({quoted} AS {})", sql_type(t)),
        }
    };
    let column = quote_ident(cursor);
    let mut parts = Vec::new();
    for (flag, bound, op) in [("--from", &range.from, ">="), ("--to", &range.to, "<")] {
        let Some(text) = bound else { continue };
        let lit = literal(text);
        let checked = async { ctx.sql(&format!("SELECT {lit}")).await?.collect().await }.await;
        if let Err(e) = checked {
            return Err(TransformError::Settings {
                model: model.id(),
                file: model.config_file.clone(),
                message: format!(
                    "{flag} for {} (cursor `{cursor}`, {}): cannot read `{text}`: {e}",
                    model.id(),
                    field.data_type()
                ),
            });
        }
        parts.push(format!("{column} {op} {lit}"));
    }
    Ok(if parts.is_empty() {
        "TRUE".into()
    } else {
        parts.join(" AND ")
    })
}

fn order_predicate(order: &[String]) -> Option<String> {
    if order.is_empty() {
        return None;
    }
    let o = quote_ident(&order[0]);
    Some(format!("t.{o} IS NULL OR s.{o} >= t.{o}"))
}

fn valid_from_expr(model: &Model, alias: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    let now_lit = format!(
        "arrow_cast('{}', 'Timestamp(Microsecond, Some(\"UTC\"))')",
        now.format("%Y-%m-%dT%H:%M:%S%.6f")
    );
    match model.order_by().first() {
        Some(o) => format!(
            "COALESCE(arrow_cast({alias}.{}, 'Timestamp(Microsecond, Some(\"UTC\"))'), {now_lit})",
            quote_ident(o)
        ),
        None => now_lit,
    }
}

fn sql_type(t: &DataType) -> String {
    match t {
        DataType::Int8 | DataType::Int16 | DataType::Int32 => "INT".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::Float32 | DataType::Float64 => "DOUBLE".into(),
        DataType::Decimal128(p, s) => format!("DECIMAL({p},{s})"),
        DataType::Date32 => "DATE".into(),
        DataType::Timestamp(_, _) => "TIMESTAMP".into(),
        DataType::Boolean => "BOOLEAN".into(),
        _ => "VARCHAR".into(),
    }
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

fn expectation_error(
    model: &Model,
    e: deltalake::datafusion::error::DataFusionError,
) -> TransformError {
    TransformError::Settings {
        model: model.id(),
        file: model.config_file.clone(),
        message: format!("an expectation cannot be evaluated: {e}"),
    }
}
