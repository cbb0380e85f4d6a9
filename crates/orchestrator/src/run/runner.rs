//! Runs each kind of task of a run: loads (through `tributary-ingest`), models (through
//! `tributary-transform`), and the `command` and `http` tasks of `pipelines/*.yaml`, each under
//! its table's lease.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;
use tracing::warn;
use tributary_core::config::LoadSpec;
use tributary_core::pipeline::{LeaseConflict, TaskConfig, TaskType};
use tributary_ingest::{LoadContext, LoadReport, SourceOverride, load_table, load_table_from};
use tributary_transform::{
    ExpectationResult, ModelOutcome, ModelRunner, Models, RunOptions, TransformError,
};

use super::record::{LEASE_TTL, hostname, process_is_gone};
use crate::dag::{TaskKind, TaskNode};
use crate::exec::{TaskReport, TaskRunner};
use crate::state::{ExpectationRecord, LeaseHolder, LeaseOutcome, StateStore};
use crate::{ErrorClass, TaskError};

/// What a load did, for the run summary.
pub struct LoadRun {
    /// The load's report (its `error` moved into the task's result).
    pub report: LoadReport,
    /// Why it failed, as the task's error message.
    pub error: Option<String>,
}

/// What a model run produced, or why it did not.
pub struct ModelRun {
    /// The model (`silver.orders`).
    pub id: String,
    /// Its materialization (`table`, `incremental`, …).
    pub materialized: &'static str,
    /// The outcome, or the error's message.
    pub result: Result<ModelOutcome, String>,
    /// Failed expectations are part of the outcome even when the model failed.
    pub expectations: Vec<ExpectationResult>,
    /// Wall time.
    pub seconds: f64,
}

/// What the runner collected for the run summary.
#[derive(Default)]
pub struct Collected {
    /// Each load's report, by table.
    pub loads: BTreeMap<String, LoadRun>,
    /// Each model's run, by model.
    pub models: BTreeMap<String, ModelRun>,
}

/// Runs each kind of task of one run.
pub(crate) struct ProjectRunner {
    pub(crate) ctx: Arc<LoadContext>,
    pub(crate) models: Arc<Models>,
    pub(crate) specs: HashMap<String, LoadSpec>,
    pub(crate) pipeline: HashMap<String, TaskConfig>,
    pub(crate) state: StateStore,
    pub(crate) collected: Mutex<Collected>,
    /// Told what the run waits for.
    pub(crate) notice: Option<super::Notice>,
    /// The client of `http` tasks (one connection pool for the run).
    pub(crate) http: reqwest::Client,
}

impl ProjectRunner {
    /// Take the lease on `table` for this run, waiting or failing as configured.
    async fn lease(&self, table: &str) -> Result<(), TaskError> {
        let orch = &self.ctx.project.config.orchestration;
        let holder = LeaseHolder {
            run_id: self.ctx.run_id.clone(),
            host: hostname(),
            pid: std::process::id(),
        };
        let resource = format!("table:{table}");
        let wait = orch.lease_wait.std();
        let deadline = tokio::time::Instant::now() + wait;
        let mut announced = false;
        loop {
            match self
                .state
                .acquire_lease(&resource, &holder, LEASE_TTL)
                .await
                .map_err(TaskError::classified)?
            {
                LeaseOutcome::Acquired => return Ok(()),
                LeaseOutcome::Held {
                    holder: other,
                    expires_at,
                    ..
                } => {
                    let who = format!(
                        "run {} (pid {} on {}, lease valid until {})",
                        other.run_id,
                        other.pid,
                        other.host,
                        expires_at.format("%Y-%m-%d %H:%M:%S UTC")
                    );
                    // A holder on this machine whose process is gone (killed, crashed) gives
                    // its lease up now rather than when it expires.
                    if other.host == holder.host && process_is_gone(other.pid) {
                        warn!(table = %table, holder = %other.run_id, pid = other.pid, "The run holding this table's lease is gone; taking the lease over.");
                        self.state
                            .release_lease(&resource, &other.run_id)
                            .await
                            .map_err(TaskError::classified)?;
                        continue;
                    }
                    if orch.on_lease_conflict == LeaseConflict::Fail {
                        return Err(TaskError::new(
                            ErrorClass::Task,
                            format!(
                                "{table} is being written by {who}; on_lease_conflict is `fail`"
                            ),
                        ));
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Err(TaskError::new(
                            ErrorClass::Task,
                            format!(
                                "{table} is still being written by {who} after waiting {}",
                                orch.lease_wait
                            ),
                        ));
                    }
                    if !announced {
                        warn!(table = %table, holder = %other.run_id, "Waiting for another run that writes this table.");
                        if let Some(notice) = &self.notice {
                            notice(&format!("{table}: waiting for {who}"));
                        }
                        announced = true;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Bytes of the files the commit `version` of `table` (`layer.name`) added; `None` when
    /// nothing was committed or the log cannot be read (history only, never a failure).
    async fn bytes_written(&self, table: &str, version: Option<u64>) -> Option<u64> {
        let (layer, name) = table.split_once('.')?;
        match self.ctx.lake.bytes_added(layer, name, version?).await {
            Ok(b) => Some(b),
            Err(e) => {
                warn!(table = %table, error = %e, "Could not read the bytes a commit added.");
                None
            }
        }
    }

    async fn run_load(&self, spec: &LoadSpec) -> Result<TaskReport, TaskError> {
        self.collect_load(load_table(&self.ctx, spec)).await
    }

    /// Turn a load's outcome into a task result, keeping it for the summary.
    async fn collect_load(
        &self,
        load: impl std::future::Future<Output = LoadReport>,
    ) -> Result<TaskReport, TaskError> {
        let outcome = load.await;
        // A load without rows commits nothing (or an empty table).
        let bytes = match outcome.rows {
            0 => outcome.version.map(|_| 0),
            _ => self.bytes_written(&outcome.target, outcome.version).await,
        };
        let report = TaskReport {
            rows: Some(outcome.rows),
            bytes,
            version: outcome.version.map(|v| v as i64),
            detail: serde_json::json!({ "mode": outcome.mode, "skipped_records": outcome.skipped }),
        };
        let mut outcome = outcome;
        let result = match outcome.error.take() {
            Some(e) => Err(TaskError::new(e.class(), e)),
            None => Ok(report),
        };
        // The summary keeps the failure's message; the task keeps the error itself.
        let error = result.as_ref().err().map(|e| e.to_string());
        if let Ok(mut c) = self.collected.lock() {
            c.loads.insert(
                outcome.target.clone(),
                LoadRun {
                    report: outcome,
                    error,
                },
            );
        }
        result
    }

    async fn run_model(&self, id: &str) -> Result<TaskReport, TaskError> {
        let model = self.models.get(id).ok_or_else(|| {
            TaskError::new(
                ErrorClass::Internal,
                format!("internal error: model {id} is not in the project"),
            )
        })?;
        let mut opts = RunOptions::new(self.ctx.run_id.clone());
        if std::env::var_os("TRIBUTARY_MEMORY_LIMIT_MB").is_none() {
            opts.memory_limit_bytes =
                usize::try_from(self.ctx.project.config.memory_limit_bytes()).unwrap_or(usize::MAX);
        }
        opts.full_refresh = self.ctx.full_refresh;
        opts.backfill = self.ctx.backfill.clone();
        let runner = ModelRunner::new(&self.ctx.lake, &self.models, opts);
        let started = std::time::Instant::now();
        let result = runner.run_model(model).await;
        let seconds = started.elapsed().as_secs_f64();
        let expectations = match &result {
            Ok(o) => o.expectations.clone(),
            Err(TransformError::ExpectationsFailed { results, .. }) => results.clone(),
            Err(_) => Vec::new(),
        };
        for e in &expectations {
            let rec = ExpectationRecord {
                run_id: self.ctx.run_id.clone(),
                model: id.to_string(),
                expectation: e.name.clone(),
                rule: e.rule.clone(),
                on_fail: e.on_fail.clone(),
                checked_rows: e.checked_rows,
                failed_rows: e.failed_rows,
                passed: e.passed,
                recorded_at: chrono::Utc::now(),
            };
            if let Err(err) = self.state.record_expectation(&rec).await {
                warn!(model = %id, error = %err, "Could not record an expectation result.");
            }
        }
        let bytes = match &result {
            Ok(o) if o.status == tributary_transform::ModelStatus::UpToDate => Some(0),
            Ok(o) => self.bytes_written(id, o.version).await,
            Err(_) => None,
        };
        let report = result.as_ref().ok().map(|o| TaskReport {
            rows: Some(o.rows_inserted + o.rows_updated),
            bytes,
            version: o.version.map(|v| v as i64),
            detail: serde_json::json!({
                "materialized": o.materialized.as_str(),
                "status": o.status.to_string(),
                "rows_in": o.rows_in,
                "inserted": o.rows_inserted,
                "updated": o.rows_updated,
                "quarantined": o.rows_quarantined,
            }),
        });
        let run = ModelRun {
            id: id.to_string(),
            materialized: model.config.materialized.as_str(),
            result: result
                .as_ref()
                .map(|o| o.clone())
                .map_err(|e| e.to_string()),
            expectations,
            seconds,
        };
        if let Ok(mut c) = self.collected.lock() {
            c.models.insert(id.to_string(), run);
        }
        match (result, report) {
            (Ok(_), Some(r)) => Ok(r),
            (Err(e), _) => Err(TaskError::new(e.class(), e)),
            (Ok(_), None) => Err(TaskError::new(
                ErrorClass::Internal,
                "internal error: a model result went missing",
            )),
        }
    }
}

impl ProjectRunner {
    /// A `command` or `http` task from pipelines/*.yaml.
    async fn run_pipeline_task(
        &self,
        cfg: &TaskConfig,
        cancel: CancellationToken,
    ) -> Result<TaskReport, TaskError> {
        use crate::tasks::{command, http};
        match cfg.kind {
            TaskType::Http => {
                let ctx = http::HttpContext {
                    client: self.http.clone(),
                    run_id: self.ctx.run_id.clone(),
                };
                let out = http::run_http(cfg, &ctx, cancel).await?;
                Ok(TaskReport {
                    detail: serde_json::json!({
                        "status": out.status,
                        "polls": out.polls,
                        "final_state": out.final_state,
                    }),
                    ..Default::default()
                })
            }
            TaskType::Command => match &cfg.target {
                None => {
                    let ctx = command::CommandContext {
                        project_root: self.ctx.project.root.clone(),
                        run_id: self.ctx.run_id.clone(),
                        extra_env: Vec::new(),
                    };
                    let out = command::run_command(cfg, &ctx, cancel).await?;
                    Ok(TaskReport {
                        detail: serde_json::json!({
                            "exit_code": out.exit_code,
                            "stdout_lines": out.stdout_lines,
                            "stderr_lines": out.stderr_lines,
                        }),
                        ..Default::default()
                    })
                }
                Some(target) => {
                    let (layer, name) = target.split_once('.').ok_or_else(|| {
                        TaskError::new(
                            ErrorClass::Config,
                            format!("task {}: target `{target}` is not <layer>.<name>", cfg.name),
                        )
                    })?;
                    let source = tributary_connectors::command::CommandSource::new(
                        cfg,
                        &self.ctx.project.root,
                        &self.ctx.run_id,
                        &[],
                    )
                    .map_err(|e| TaskError::new(ErrorClass::Config, e))?;
                    let table: tributary_core::config::TableConfig =
                        serde_json::from_value(serde_json::json!({ "name": cfg.name }))
                            .map_err(|e| TaskError::new(ErrorClass::Internal, e))?;
                    let spec = LoadSpec {
                        connection: cfg.name.clone(),
                        table,
                        layer: layer.to_string(),
                        name: name.to_string(),
                        file: self
                            .ctx
                            .project
                            .pipelines
                            .iter()
                            .find(|f| f.config.tasks.iter().any(|t| t.name == cfg.name))
                            .map(|f| f.path.clone())
                            .unwrap_or_default(),
                    };
                    let over = SourceOverride {
                        source: Box::new(source),
                        append: cfg.mode == tributary_core::pipeline::OutputMode::Append,
                    };
                    let load = load_table_from(&self.ctx, &spec, Some(over));
                    tokio::select! {
                        r = self.collect_load(load) => r,
                        _ = cancel.cancelled() => Err(cancelled()),
                    }
                }
            },
        }
    }
}

#[async_trait]
impl TaskRunner for ProjectRunner {
    async fn run(
        &self,
        task: &TaskNode,
        _attempt: u32,
        cancel: CancellationToken,
    ) -> Result<TaskReport, TaskError> {
        if let Some(table) = &task.writes {
            tokio::select! {
                r = self.lease(table) => r?,
                _ = cancel.cancelled() => return Err(cancelled()),
            }
        }
        let result = match task.kind {
            TaskKind::Load => match self.specs.get(&task.id) {
                Some(spec) => tokio::select! {
                    r = self.run_load(spec) => r,
                    _ = cancel.cancelled() => Err(cancelled()),
                },
                None => Err(TaskError::new(
                    ErrorClass::Internal,
                    format!("internal error: no load configuration for {}", task.id),
                )),
            },
            TaskKind::Model => tokio::select! {
                r = self.run_model(&task.id) => r,
                _ = cancel.cancelled() => Err(cancelled()),
            },
            TaskKind::Command | TaskKind::Http => match self.pipeline.get(&task.id) {
                Some(cfg) => self.run_pipeline_task(cfg, cancel).await,
                None => Err(TaskError::new(
                    ErrorClass::Internal,
                    format!("internal error: no configuration for task {}", task.id),
                )),
            },
        };
        if let Some(table) = &task.writes
            && let Err(e) = self
                .state
                .release_lease(&format!("table:{table}"), &self.ctx.run_id)
                .await
        {
            warn!(table = %table, error = %e, "Could not release the table lease; it expires by itself.");
        }
        result
    }
}

fn cancelled() -> TaskError {
    TaskError::new(ErrorClass::Cancelled, "cancelled")
}
