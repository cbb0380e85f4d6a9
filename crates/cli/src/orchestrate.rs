//! `tributary run` on the orchestrator: the project's DAG (loads, models, pipeline tasks),
//! executed with the state store recording every task and attempt, table leases, signals and
//! resume.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::anyhow;
use async_trait::async_trait;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use tributary_core::Project;
use tributary_core::config::{ConfigError, ConfigProblem, LoadSpec, parse_duration_micros};
use tributary_core::pipeline::{LeaseConflict, TaskConfig, TaskType};
use tributary_orchestrator::dag::{Dag, TaskKind, TaskNode};
use tributary_orchestrator::exec::{
    Event, ExecOptions, Observer, TaskOutcome, TaskReport, TaskRunner, TaskState, execute,
};
use tributary_orchestrator::state::{
    AttemptRecord, ExpectationRecord, LeaseHolder, LeaseOutcome, RunRecord, RunStatus, StateStore,
    TaskRecord, TaskStatus,
};
use tributary_orchestrator::{ErrorClass, TaskError, classify};
use tributary_transform::{ModelRunner, Models, RunOptions, TransformError};

use crate::Failure;
use crate::models::ModelRun;
use crate::run::{RunContext, TableOutcome, load_table};

/// How long a table lease lasts without renewal; the heartbeat renews it every third of that.
const LEASE_TTL: Duration = Duration::from_secs(120);
const HEARTBEAT: Duration = Duration::from_secs(30);

fn duration(s: &str) -> Option<Duration> {
    parse_duration_micros(s)
        .ok()
        .map(|us| Duration::from_micros(us.max(0) as u64))
}

/// The project's DAG: one task per ingested table, model and pipeline task.
pub fn build_dag(project: &Project, models: &Models) -> Result<Dag, Failure> {
    let orch = &project.config.orchestration;
    let default_timeout = orch.timeout.as_deref().and_then(duration);
    let mut nodes = Vec::new();
    // Which task writes each table, so models depend on the task (a command with a target).
    let mut writer_of: BTreeMap<String, String> = BTreeMap::new();
    let mut problems = Vec::new();
    for spec in project.load_specs() {
        let id = spec.target();
        writer_of.insert(id.clone(), id.clone());
        nodes.push(TaskNode {
            id: id.clone(),
            kind: TaskKind::Load,
            deps: spec.table.depends_on.iter().cloned().collect(),
            connection: Some(spec.connection.clone()),
            writes: Some(id),
            retries: spec.table.retries.unwrap_or(orch.retries),
            timeout: spec
                .table
                .timeout
                .as_deref()
                .and_then(duration)
                .or(default_timeout),
            description: None,
            origin: spec.file.display().to_string(),
        });
    }
    for file in &project.pipelines {
        for t in &file.config.tasks {
            if let Some(target) = &t.target {
                if let Some(other) = writer_of.get(target) {
                    problems.push(ConfigProblem {
                        file: file.path.clone(),
                        line: None,
                        key: format!("tasks.{}.target", t.name),
                        message: format!(
                            "task `{}` writes `{target}`, which `{other}` already writes; give one of them another target",
                            t.name
                        ),
                    });
                }
                writer_of.insert(target.clone(), t.name.clone());
            }
            nodes.push(TaskNode {
                id: t.name.clone(),
                kind: match t.kind {
                    TaskType::Command => TaskKind::Command,
                    TaskType::Http => TaskKind::Http,
                },
                deps: t.depends_on.iter().cloned().collect(),
                connection: None,
                writes: t.target.clone(),
                retries: t.retries.unwrap_or(orch.retries),
                timeout: t.timeout.as_deref().and_then(duration).or(default_timeout),
                description: t.description.clone(),
                origin: file.path.display().to_string(),
            });
        }
    }
    for m in &models.models {
        let id = m.id();
        let mut deps: BTreeSet<String> = models
            .upstream
            .get(&id)
            .into_iter()
            .flatten()
            .filter_map(|t| {
                writer_of
                    .get(t)
                    .cloned()
                    .or_else(|| models.get(t).map(|_| t.clone()))
            })
            .collect();
        deps.extend(m.config.depends_on.iter().cloned());
        nodes.push(TaskNode {
            id: id.clone(),
            kind: TaskKind::Model,
            deps,
            connection: None,
            writes: Some(id),
            retries: m.config.retries.unwrap_or(orch.retries),
            timeout: m
                .config
                .timeout
                .as_deref()
                .and_then(duration)
                .or(default_timeout),
            description: m.config.description.clone(),
            origin: m.file.display().to_string(),
        });
    }
    if !problems.is_empty() {
        return Err(Failure::config(ConfigError::Problems(problems)));
    }
    Dag::new(nodes).map_err(|ps| {
        Failure::config(ConfigError::Problems(
            ps.into_iter()
                .map(|p| ConfigProblem {
                    file: p.origin.into(),
                    line: None,
                    key: p.task,
                    message: p.message,
                })
                .collect(),
        ))
    })
}

/// Execution settings from `orchestration:` and the command line.
pub fn exec_options(project: &Project, parallel: Option<usize>, fail_fast: bool) -> ExecOptions {
    let o = &project.config.orchestration;
    ExecOptions {
        max_parallel: parallel.unwrap_or(o.max_parallel).max(1),
        per_connection: o.per_connection.max(1),
        connection_limits: o.connection_limits.clone(),
        retry_delay: duration(&o.retry_delay).unwrap_or(Duration::from_secs(5)),
        retry_max_delay: duration(&o.retry_max_delay).unwrap_or(Duration::from_secs(300)),
        fail_fast,
        shutdown_grace: duration(&o.shutdown_grace).unwrap_or(Duration::from_secs(30)),
    }
}

/// What the runner collected for the run summary.
#[derive(Default)]
pub struct Collected {
    pub loads: BTreeMap<String, TableOutcome>,
    pub models: BTreeMap<String, ModelRun>,
}

/// Runs each kind of task.
pub struct CliRunner {
    pub ctx: Arc<RunContext>,
    pub models: Arc<Models>,
    pub specs: HashMap<String, LoadSpec>,
    pub pipeline: HashMap<String, TaskConfig>,
    pub state: StateStore,
    pub collected: Mutex<Collected>,
    /// The client of `http` tasks (one connection pool for the run).
    pub http: reqwest::Client,
}

impl CliRunner {
    /// Take the lease on `table` for this run, waiting or failing as configured.
    async fn lease(&self, table: &str) -> anyhow::Result<()> {
        let orch = &self.ctx.project.config.orchestration;
        let holder = LeaseHolder {
            run_id: self.ctx.run_id.clone(),
            host: hostname(),
            pid: std::process::id(),
        };
        let resource = format!("table:{table}");
        let wait = duration(&orch.lease_wait).unwrap_or(Duration::from_secs(1800));
        let deadline = tokio::time::Instant::now() + wait;
        let mut announced = false;
        loop {
            match self
                .state
                .acquire_lease(&resource, &holder, LEASE_TTL)
                .await?
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
                        self.state.release_lease(&resource, &other.run_id).await?;
                        continue;
                    }
                    if orch.on_lease_conflict == LeaseConflict::Fail {
                        return Err(TaskError::new(
                            ErrorClass::Task,
                            anyhow!(
                                "{table} is being written by {who}; on_lease_conflict is `fail`"
                            ),
                        )
                        .into());
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Err(TaskError::new(
                            ErrorClass::Task,
                            anyhow!(
                                "{table} is still being written by {who} after waiting {}",
                                orch.lease_wait
                            ),
                        )
                        .into());
                    }
                    if !announced {
                        warn!(table = %table, holder = %other.run_id, "Waiting for another run that writes this table.");
                        eprintln!("{table}: waiting for {who}");
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

    async fn run_load(&self, spec: &LoadSpec) -> anyhow::Result<TaskReport> {
        self.collect_load(load_table(&self.ctx, spec)).await
    }

    /// Turn a load's outcome into a task result, keeping it for the summary.
    async fn collect_load(
        &self,
        load: impl std::future::Future<Output = TableOutcome>,
    ) -> anyhow::Result<TaskReport> {
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
        let error = outcome.error.as_ref().map(|e| anyhow!("{e:#}"));
        let result = match outcome.error {
            Some(e) => Err(e),
            None => Ok(report),
        };
        if let Ok(mut c) = self.collected.lock() {
            c.loads
                .insert(outcome.target.clone(), TableOutcome { error, ..outcome });
        }
        result
    }

    async fn run_model(&self, id: &str) -> anyhow::Result<TaskReport> {
        let model = self
            .models
            .get(id)
            .ok_or_else(|| anyhow!("model {id} is not in the project"))?;
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
            (Err(e), _) => {
                let class = match &e {
                    TransformError::Template { .. }
                    | TransformError::Sql { .. }
                    | TransformError::Settings { .. }
                    | TransformError::MissingUpstream { .. }
                    | TransformError::Test { .. } => ErrorClass::Config,
                    TransformError::ExpectationsFailed { .. } => ErrorClass::Data,
                    other => classify(&anyhow!("{other}")),
                };
                Err(TaskError::new(class, anyhow::Error::new(e)).into())
            }
            (Ok(_), None) => Err(anyhow!("internal error: a model result went missing")),
        }
    }
}

impl CliRunner {
    /// A `command` or `http` task from pipelines/*.yaml.
    async fn run_pipeline_task(
        &self,
        cfg: &TaskConfig,
        cancel: CancellationToken,
    ) -> anyhow::Result<TaskReport> {
        use tributary_orchestrator::tasks::{command, http};
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
                            anyhow!("task {}: target `{target}` is not <layer>.<name>", cfg.name),
                        )
                    })?;
                    let source = tributary_connectors::command::CommandSource::new(
                        cfg,
                        &self.ctx.project.root,
                        &self.ctx.run_id,
                        &[],
                    )
                    .map_err(|e| TaskError::new(ErrorClass::Config, anyhow::Error::new(e)))?;
                    let table: tributary_core::config::TableConfig =
                        serde_json::from_value(serde_json::json!({ "name": cfg.name }))?;
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
                    let over = crate::run::SourceOverride {
                        source: Box::new(source),
                        append: cfg.mode == tributary_core::pipeline::OutputMode::Append,
                    };
                    let load = crate::run::load_table_from(&self.ctx, &spec, Some(over));
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
impl TaskRunner for CliRunner {
    async fn run(
        &self,
        task: &TaskNode,
        _attempt: u32,
        cancel: CancellationToken,
    ) -> anyhow::Result<TaskReport> {
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
                None => Err(anyhow!(
                    "internal error: no load configuration for {}",
                    task.id
                )),
            },
            TaskKind::Model => tokio::select! {
                r = self.run_model(&task.id) => r,
                _ = cancel.cancelled() => Err(cancelled()),
            },
            TaskKind::Command | TaskKind::Http => match self.pipeline.get(&task.id) {
                Some(cfg) => self.run_pipeline_task(cfg, cancel).await,
                None => Err(anyhow!(
                    "internal error: no configuration for task {}",
                    task.id
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

fn cancelled() -> anyhow::Error {
    TaskError::new(ErrorClass::Cancelled, anyhow!("cancelled")).into()
}

/// Whether no process `pid` runs on this machine (Linux: no /proc entry). Elsewhere, assume it
/// runs: the lease then expires by itself.
fn process_is_gone(pid: u32) -> bool {
    pid != std::process::id()
        && std::path::Path::new("/proc/self").exists()
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// The machine's name, for lease holders.
pub fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Records every event in the state store.
pub struct StateObserver {
    pub state: StateStore,
    pub run_id: String,
}

#[async_trait]
impl Observer for StateObserver {
    async fn on_event(&self, event: Event) {
        let result = match event {
            Event::AttemptStarted {
                task_id,
                kind,
                attempt,
                at,
            } => {
                let r = self
                    .state
                    .record_attempt(&AttemptRecord {
                        run_id: self.run_id.clone(),
                        task_id: task_id.clone(),
                        attempt,
                        started_at: at,
                        finished_at: None,
                        status: TaskStatus::Running,
                        error: None,
                        error_class: None,
                    })
                    .await;
                if attempt == 1 {
                    info!(task = %task_id, kind = kind.as_str(), "Task started.");
                }
                match r {
                    Ok(()) => {
                        self.state
                            .upsert_task(&TaskRecord {
                                run_id: self.run_id.clone(),
                                task_id,
                                kind: kind.as_str().to_string(),
                                status: TaskStatus::Running,
                                started_at: Some(at),
                                finished_at: None,
                                attempts: attempt,
                                rows: None,
                                bytes: None,
                                version: None,
                                error: None,
                                error_class: None,
                                detail: serde_json::Value::Null,
                            })
                            .await
                    }
                    Err(e) => Err(e),
                }
            }
            Event::AttemptFinished {
                task_id,
                attempt,
                started_at,
                finished_at,
                error,
                retry_in: _,
            } => {
                self.state
                    .record_attempt(&AttemptRecord {
                        run_id: self.run_id.clone(),
                        task_id,
                        attempt,
                        started_at,
                        finished_at: Some(finished_at),
                        status: match &error {
                            None => TaskStatus::Succeeded,
                            Some((_, ErrorClass::Cancelled)) => TaskStatus::Cancelled,
                            Some(_) => TaskStatus::Failed,
                        },
                        error_class: error.as_ref().map(|(_, c)| c.as_str().to_string()),
                        error: error.map(|(m, _)| m),
                    })
                    .await
            }
            Event::TaskFinished(o) => {
                info!(task = %o.task_id, status = o.state.as_str(), attempts = o.attempts, error = o.error.as_deref().unwrap_or(""), "Task finished.");
                self.state.upsert_task(&task_record(&self.run_id, &o)).await
            }
        };
        if let Err(e) = result {
            warn!(run_id = %self.run_id, error = %e, "Could not record the run's progress in the state store.");
        }
    }
}

fn task_record(run_id: &str, o: &TaskOutcome) -> TaskRecord {
    TaskRecord {
        run_id: run_id.to_string(),
        task_id: o.task_id.clone(),
        kind: o.kind.as_str().to_string(),
        status: match o.state {
            TaskState::Succeeded => TaskStatus::Succeeded,
            TaskState::Failed => TaskStatus::Failed,
            TaskState::Skipped => TaskStatus::Skipped,
            TaskState::Cancelled => TaskStatus::Cancelled,
        },
        started_at: o.started_at,
        finished_at: o.finished_at,
        attempts: o.attempts,
        rows: o.report.as_ref().and_then(|r| r.rows),
        bytes: o.report.as_ref().and_then(|r| r.bytes),
        version: o.report.as_ref().and_then(|r| r.version),
        error: o.error.clone(),
        error_class: o.error_class.map(|c| c.as_str().to_string()),
        detail: o
            .report
            .as_ref()
            .map(|r| r.detail.clone())
            .unwrap_or(serde_json::Value::Null),
    }
}

/// The task ids a resumed run reruns: what failed, was cancelled or skipped, never started or
/// was interrupted, and still exists in the DAG.
pub async fn resume_selection(
    state: &StateStore,
    dag: &Dag,
    run_id: &str,
) -> Result<(String, Vec<String>), Failure> {
    let detail = state
        .get_run(run_id)
        .await
        .map_err(Failure::task)?
        .ok_or_else(|| {
            Failure::config(anyhow!(
                "no run `{run_id}` in the state store {}; `tributary runs` lists them",
                state.location()
            ))
        })?;
    let run = &detail.run.run;
    let killed =
        run.status == RunStatus::Running && run.host == hostname() && process_is_gone(run.pid);
    if killed {
        // Its process died (SIGKILL, OOM, a reboot) without recording the end: record it as
        // abandoned, then resume it like any other unfinished run.
        let why = format!(
            "the process (pid {} on {}) ended without finishing the run",
            run.pid, run.host
        );
        state
            .finish_run(
                &run.run_id,
                RunStatus::Abandoned,
                chrono::Utc::now(),
                Some(&why),
            )
            .await
            .map_err(Failure::task)?;
    } else if detail.run.run.status == RunStatus::Running {
        return Err(Failure::config(anyhow!(
            "run {} is still running; wait for it to finish (or stop it) before resuming it",
            detail.run.run.run_id
        )));
    }
    let redo: BTreeSet<String> = detail
        .tasks
        .iter()
        .filter(|t| t.status != TaskStatus::Succeeded)
        .map(|t| t.task_id.clone())
        .filter(|id| dag.get(id).is_some())
        .collect();
    let ordered = dag
        .tasks()
        .map(|t| t.id.clone())
        .filter(|id| redo.contains(id))
        .collect();
    Ok((detail.run.run.run_id, ordered))
}

/// A new run's record.
pub fn new_run_record(
    run_id: &str,
    trigger: &str,
    selectors: &[String],
    target: Option<String>,
    resumed_from: Option<String>,
) -> RunRecord {
    RunRecord {
        run_id: run_id.to_string(),
        trigger: trigger.to_string(),
        selectors: selectors.to_vec(),
        target,
        status: RunStatus::Running,
        started_at: chrono::Utc::now(),
        finished_at: None,
        error: None,
        resumed_from,
        host: hostname(),
        pid: std::process::id(),
    }
}

/// Every selected task as pending, so a run killed before reaching some of them still lists
/// them (and `--resume` reruns them).
pub async fn record_pending(
    state: &StateStore,
    run_id: &str,
    dag: &Dag,
    ids: &[String],
) -> anyhow::Result<()> {
    for id in ids {
        if let Some(t) = dag.get(id) {
            state
                .upsert_task(&TaskRecord {
                    run_id: run_id.to_string(),
                    task_id: id.clone(),
                    kind: t.kind.as_str().to_string(),
                    status: TaskStatus::Pending,
                    started_at: None,
                    finished_at: None,
                    attempts: 0,
                    rows: None,
                    bytes: None,
                    version: None,
                    error: None,
                    error_class: None,
                    detail: serde_json::Value::Null,
                })
                .await?;
        }
    }
    Ok(())
}

/// Heartbeat and lease renewal until `stop` fires.
pub fn spawn_heartbeat(state: StateStore, run_id: String, stop: CancellationToken) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(HEARTBEAT) => {}
                _ = stop.cancelled() => return,
            }
            if let Err(e) = state.heartbeat(&run_id, chrono::Utc::now()).await {
                warn!(run_id = %run_id, error = %e, "Could not record the run's heartbeat.");
            }
            if let Err(e) = state.renew_leases(&run_id, LEASE_TTL).await {
                warn!(run_id = %run_id, error = %e, "Could not renew table leases.");
            }
        }
    });
}

/// Cancel `token` on Ctrl-C or SIGTERM (once; a second signal exits at once).
pub fn cancel_on_signals(token: CancellationToken, what: &'static str) {
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    warn!(error = %e, "Cannot listen for SIGTERM.");
                    let _ = tokio::signal::ctrl_c().await;
                    token.cancel();
                    return;
                }
            };
        let which = tokio::select! {
            _ = tokio::signal::ctrl_c() => "Ctrl-C",
            _ = term.recv() => "SIGTERM",
        };
        eprintln!("\n{which}: {what}…");
        token.cancel();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        eprintln!("Stopping at once; tables keep their last committed version.");
        std::process::exit(1);
    });
}

/// What `tributary run` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    /// `--select` selectors (empty = everything).
    pub selectors: Vec<String>,
    /// `--full-refresh`.
    pub full_refresh: bool,
    /// `--parallel` (default `orchestration.max_parallel`).
    pub parallel: Option<usize>,
    /// `--fail-fast`.
    pub fail_fast: bool,
    /// `--resume RUN_ID`.
    pub resume: Option<String>,
    /// `manual`, `api`, `schedule:<name>`.
    pub trigger: String,
    /// `--from/--to`: backfill a cursor range of incremental loads and models.
    pub backfill: Option<crate::run::Backfill>,
    /// The start of run links in alerts (`serve` passes the address it listens on); default
    /// `serve.public_url`, else `http://` + `serve.bind`.
    pub link_base: Option<String>,
}

/// What a run did, for the caller's summary.
pub struct RunResult {
    pub run_id: String,
    pub status: RunStatus,
    pub outcomes: Vec<TaskOutcome>,
    pub collected: Collected,
}

/// Run (part of) the project's DAG as one recorded run. `cancel` stops it (signals, `serve`
/// shutdown). Configuration problems come back as `Err` before anything runs; task failures
/// come back inside the result.
pub async fn run_dag(
    project: Project,
    req: &RunRequest,
    progress: bool,
    cancel: CancellationToken,
) -> Result<Option<RunResult>, Failure> {
    match prepare_run(project, req, progress).await? {
        Prepared::Run(run) => (*run).execute(cancel).await.map(Some),
        Prepared::Nothing(message) => {
            println!("{message}");
            Ok(None)
        }
    }
}

/// What [`prepare_run`] found to do.
pub enum Prepared {
    /// A run, recorded in the state store with its tasks pending, ready to execute.
    Run(Box<PreparedRun>),
    /// Nothing to run, and why (for the user).
    Nothing(String),
}

/// A run recorded in the state store (status running, its tasks pending) that has not started
/// executing: [`PreparedRun::execute`] runs it.
pub struct PreparedRun {
    /// The run's id.
    pub run_id: String,
    dag: Dag,
    selected: Vec<String>,
    opts: ExecOptions,
    ctx: Arc<RunContext>,
    runner: Arc<CliRunner>,
    state: StateStore,
    /// Evaluated after the run ends (none when no alert rule is enabled).
    alerts: Option<Arc<tributary_alerts::AlertEngine>>,
}

/// Check the configuration and the selection, and record the run (running, its tasks pending).
/// Configuration problems come back as `Err`, before anything is recorded.
pub async fn prepare_run(
    project: Project,
    req: &RunRequest,
    progress: bool,
) -> Result<Prepared, Failure> {
    let models = crate::models::load_models(&project)?;
    let dag = build_dag(&project, &models)?;
    let state = StateStore::open(&project.config.state, &project.root)
        .await
        .map_err(Failure::task)?;
    let link = req
        .link_base
        .clone()
        .unwrap_or_else(|| crate::alerting::link_base(&project, None));
    let alerts = crate::alerting::engine(&project, &dag, &state, link, false)?;
    let (resumed_from, selected) = match &req.resume {
        Some(id) => {
            let (full_id, ids) = resume_selection(&state, &dag, id).await?;
            if ids.is_empty() {
                return Ok(Prepared::Nothing(format!(
                    "Run {full_id} has nothing to resume: every task succeeded."
                )));
            }
            (Some(full_id), ids)
        }
        None => (
            None,
            dag.select(&req.selectors)
                .map_err(|e| Failure::config(anyhow!(e)))?,
        ),
    };
    if selected.is_empty() {
        return Ok(Prepared::Nothing(format!(
            "No tables configured in {}: add an ingest/*.yaml file (see ingest/example.yaml.disabled), a model under models/<layer>/ or a task in pipelines/*.yaml.",
            project.root.display()
        )));
    }
    let lake = crate::commands::open_lake(&project)?;
    let opts = exec_options(&project, req.parallel, req.fail_fast);
    let specs: HashMap<String, LoadSpec> = project
        .load_specs()
        .into_iter()
        .map(|s| (s.target(), s))
        .collect();
    let pipeline: HashMap<String, TaskConfig> = project
        .pipelines
        .iter()
        .flat_map(|f| f.config.tasks.iter().cloned())
        .map(|t| (t.name.clone(), t))
        .collect();
    let environment = project.target.clone();
    let mut ctx = RunContext::new(
        project,
        lake,
        req.full_refresh,
        progress && std::io::IsTerminal::is_terminal(&std::io::stderr()),
    );
    ctx.backfill = req.backfill.clone();
    let ctx = Arc::new(ctx);
    let run_id = ctx.run_id.clone();
    let trigger = if req.trigger.is_empty() {
        if resumed_from.is_some() {
            "resume"
        } else {
            "manual"
        }
        .to_string()
    } else {
        req.trigger.clone()
    };
    state
        .create_run(&new_run_record(
            &run_id,
            &trigger,
            &req.selectors,
            environment.clone(),
            resumed_from.clone(),
        ))
        .await
        .map_err(Failure::task)?;
    record_pending(&state, &run_id, &dag, &selected)
        .await
        .map_err(Failure::task)?;
    info!(run_id = %run_id, environment = environment.as_deref().unwrap_or(""), tasks = selected.len(), trigger = %trigger, resumed_from = resumed_from.as_deref().unwrap_or(""), "Run started.");
    let runner = Arc::new(CliRunner {
        ctx: ctx.clone(),
        models: Arc::new(models),
        specs,
        pipeline,
        state: state.clone(),
        collected: Mutex::new(Collected::default()),
        http: reqwest::Client::builder()
            .user_agent(concat!("tributary/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Failure::task(anyhow!("building the HTTP client: {e}")))?,
    });
    Ok(Prepared::Run(Box::new(PreparedRun {
        run_id,
        dag,
        selected,
        opts,
        ctx,
        runner,
        state,
        alerts,
    })))
}

impl PreparedRun {
    /// Execute the run to its end (or until `cancel`), record its outcome and release its
    /// leases.
    pub async fn execute(self, cancel: CancellationToken) -> Result<RunResult, Failure> {
        let PreparedRun {
            run_id,
            dag,
            selected,
            opts,
            ctx,
            runner,
            state,
            alerts,
        } = self;
        let heartbeat_stop = CancellationToken::new();
        spawn_heartbeat(state.clone(), run_id.clone(), heartbeat_stop.clone());
        let observer = Arc::new(StateObserver {
            state: state.clone(),
            run_id: run_id.clone(),
        });
        let outcomes = execute(
            &dag,
            &selected,
            runner.clone(),
            observer,
            &opts,
            cancel.clone(),
        )
        .await;
        heartbeat_stop.cancel();
        let _ = ctx.progress.clear();

        let failed = outcomes
            .iter()
            .filter(|o| o.state != TaskState::Succeeded)
            .count();
        let status = if cancel.is_cancelled()
            && !outcomes
                .iter()
                .any(|o| o.state == TaskState::Failed && opts.fail_fast)
        {
            RunStatus::Cancelled
        } else if failed == 0 {
            RunStatus::Succeeded
        } else {
            RunStatus::Failed
        };
        let error = (failed > 0).then(|| {
            format!(
                "{failed} of {} task{} did not succeed",
                outcomes.len(),
                if outcomes.len() == 1 { "" } else { "s" }
            )
        });
        if let Err(e) = state
            .finish_run(&run_id, status, chrono::Utc::now(), error.as_deref())
            .await
        {
            warn!(run_id = %run_id, error = %e, "Could not record the end of the run.");
        }
        if let Err(e) = state.release_leases(&run_id).await {
            warn!(run_id = %run_id, error = %e, "Could not release table leases; they expire by themselves.");
        }
        info!(run_id = %run_id, status = status.as_str(), tasks = outcomes.len(), failed, peak_rss_mib = peak_rss_mib(), "Run finished.");
        // Alerts never fail the run: the engine logs and records its own problems.
        if let Some(engine) = &alerts {
            let o = engine.after_run(&run_id).await;
            if o.alerts > 0 {
                info!(run_id = %run_id, alerts = o.alerts, delivered = o.delivered, failed = o.failed, "Alerts sent.");
            }
        }
        let collected = match Arc::try_unwrap(runner) {
            Ok(r) => r.collected.into_inner().unwrap_or_default(),
            Err(r) => std::mem::take(
                &mut *r
                    .collected
                    .lock()
                    .map_err(|_| Failure::task(anyhow!("internal error: poisoned lock")))?,
            ),
        };
        Ok(RunResult {
            run_id,
            status,
            outcomes,
            collected,
        })
    }
}

/// The process's peak resident memory so far, in MiB (`VmHWM` of `/proc/self/status`; Linux
/// only).
pub fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib.div_ceil(1024))
}
