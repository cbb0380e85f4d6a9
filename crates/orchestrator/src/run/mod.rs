//! A run of the project: `tributary run` and every run `tributary serve` starts (schedules, the
//! API) go through here.
//!
//! [`RunPlan::load`] checks the project (models, DAG) and opens the state store;
//! [`RunPlan::prepare`] selects the tasks (or those a resumed run left undone) and records the
//! run with its tasks pending; [`PreparedRun::execute`] runs the DAG with retries, table leases
//! and a heartbeat, records every attempt, and calls the caller's [`RunHook`] (alerts) once the
//! run is recorded as ended.

mod project;
mod record;
mod runner;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use tributary_core::config::{ConfigError, LoadSpec};
use tributary_core::pipeline::TaskConfig;
use tributary_core::{Backfill, Project};
use tributary_ingest::{LoadContext, LoadProgress, NoProgress};
use tributary_lake::LakeError;
use tributary_transform::Models;

use crate::dag::Dag;
use crate::exec::{ExecOptions, TaskOutcome, TaskState, execute};
use crate::state::{RunStatus, StateError, StateStore};

pub use project::{build_dag, exec_options, load_models, open_lake};
pub use record::{
    StateObserver, hostname, new_run_record, peak_rss_mib, record_pending, resume_selection,
    spawn_heartbeat,
};
use runner::ProjectRunner;
pub use runner::{Collected, LoadRun, ModelRun};

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Invalid usage: an unknown run to resume, a selector that matches nothing.
    #[error("{0}")]
    Usage(String),
    /// The project's configuration or models are invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The lake location is not usable.
    #[error(transparent)]
    Lake(#[from] LakeError),
    /// The state store could not be opened or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// Something else the run needs could not be set up (the HTTP client).
    #[error("{0}")]
    Setup(String),
}

impl RunError {
    /// Whether the configuration or the command line is at fault (exit code 2), rather than
    /// the environment (exit code 1).
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            RunError::Usage(_) | RunError::Config(_) | RunError::Lake(_)
        )
    }
}

/// Called once a run has ended and its end is recorded: alerts are sent here. A hook never
/// fails the run; it logs its own problems.
#[async_trait]
pub trait RunHook: Send + Sync {
    /// The run `run_id` has ended.
    async fn after_run(&self, run_id: &str);
}

/// A line for the person running Tributary (a table waits for another run's lease), besides
/// the log.
pub type Notice = Arc<dyn Fn(&str) + Send + Sync>;

/// What the caller brings to a run besides the request.
pub struct RunEnv {
    /// Shown the progress of loads (the terminal's progress bars).
    pub progress: Arc<dyn LoadProgress>,
    /// Called after the run ends.
    pub after_run: Option<Arc<dyn RunHook>>,
    /// Told what the run waits for; `None`: the log only.
    pub notice: Option<Notice>,
}

impl Default for RunEnv {
    fn default() -> Self {
        RunEnv {
            progress: Arc::new(NoProgress),
            after_run: None,
            notice: None,
        }
    }
}

/// What a run was asked to do.
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
    /// `manual`, `api`, `schedule:<name>`; empty: `manual` (`resume` for a resumed run).
    pub trigger: String,
    /// `--from/--to`: backfill a cursor range of incremental loads and models.
    pub backfill: Option<Backfill>,
}

/// What a run did, for the caller's summary.
pub struct RunResult {
    /// The run's id.
    pub run_id: String,
    /// How it ended.
    pub status: RunStatus,
    /// Every selected task's outcome, in DAG order.
    pub outcomes: Vec<TaskOutcome>,
    /// Loads' and models' details.
    pub collected: Collected,
}

/// A new run id: the UTC start time and 8 random hex digits (`20240102T030405Z-1a2b3c4d`).
pub fn new_run_id(now: chrono::DateTime<chrono::Utc>) -> String {
    format!(
        "{}-{}",
        now.format("%Y%m%dT%H%M%SZ"),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// A project checked for a run: its models, its DAG and its state store.
pub struct RunPlan {
    /// The project.
    pub project: Project,
    /// Its models.
    pub models: Models,
    /// Its DAG.
    pub dag: Dag,
    /// Its state store, open.
    pub state: StateStore,
}

impl RunPlan {
    /// Check the models and the DAG and open the state store.
    pub async fn load(project: Project) -> Result<RunPlan, RunError> {
        // Each connector's own keys (step two of reading the configuration), in case the
        // caller loaded the project without them.
        let problems = tributary_connectors::check_project(&project);
        if !problems.is_empty() {
            return Err(RunError::Config(ConfigError::Problems(problems)));
        }
        let models = load_models(&project)?;
        let dag = build_dag(&project, &models)?;
        let state = StateStore::open(&project.config.state, &project.root).await?;
        Ok(RunPlan {
            project,
            models,
            dag,
            state,
        })
    }

    /// Select the tasks and record the run (running, its tasks pending). Problems with the
    /// request come back as `Err`, before anything is recorded.
    pub async fn prepare(self, req: &RunRequest, env: RunEnv) -> Result<Prepared, RunError> {
        let RunPlan {
            project,
            models,
            dag,
            state,
        } = self;
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
            None => (None, dag.select(&req.selectors).map_err(RunError::Usage)?),
        };
        if selected.is_empty() {
            return Ok(Prepared::Nothing(format!(
                "No tables configured in {}: add an ingest/*.yaml file (see ingest/example.yaml.disabled), a model under models/<layer>/ or a task in pipelines/*.yaml.",
                project.root.display()
            )));
        }
        let lake = open_lake(&project)?;
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
        let now = chrono::Utc::now();
        let run_id = new_run_id(now);
        let mut ctx = LoadContext::new(project, lake, run_id.clone(), now.timestamp_micros());
        ctx.full_refresh = req.full_refresh;
        ctx.backfill = req.backfill.clone();
        ctx.progress = env.progress;
        let ctx = Arc::new(ctx);
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
            .await?;
        record_pending(&state, &run_id, &dag, &selected).await?;
        info!(run_id = %run_id, environment = environment.as_deref().unwrap_or(""), tasks = selected.len(), trigger = %trigger, resumed_from = resumed_from.as_deref().unwrap_or(""), "Run started.");
        let runner = Arc::new(ProjectRunner {
            ctx,
            models: Arc::new(models),
            specs,
            pipeline,
            state: state.clone(),
            collected: Mutex::new(Collected::default()),
            notice: env.notice,
            http: reqwest::Client::builder()
                .user_agent(concat!("tributary/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| RunError::Setup(format!("building the HTTP client: {e}")))?,
        });
        Ok(Prepared::Run(Box::new(PreparedRun {
            run_id,
            dag,
            selected,
            opts,
            runner,
            state,
            after_run: env.after_run,
        })))
    }
}

/// What [`RunPlan::prepare`] found to do.
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
    runner: Arc<ProjectRunner>,
    state: StateStore,
    after_run: Option<Arc<dyn RunHook>>,
}

impl PreparedRun {
    /// Execute the run to its end (or until `cancel`), record its outcome, release its leases
    /// and call the after-run hook. Task failures are in the result, never an `Err`.
    pub async fn execute(self, cancel: CancellationToken) -> RunResult {
        let PreparedRun {
            run_id,
            dag,
            selected,
            opts,
            runner,
            state,
            after_run,
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
        if let Some(hook) = &after_run {
            hook.after_run(&run_id).await;
        }
        let collected = match Arc::try_unwrap(runner) {
            Ok(r) => r.collected.into_inner().unwrap_or_default(),
            Err(r) => match r.collected.lock() {
                Ok(mut c) => std::mem::take(&mut *c),
                Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
            },
        };
        RunResult {
            run_id,
            status,
            outcomes,
            collected,
        }
    }
}
