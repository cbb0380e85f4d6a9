//! `tributary serve`: the HTTP server (dashboard, JSON API, `/metrics`, `/health`) and the
//! `schedules:` of tributary.yaml, in one long-running process.
//!
//! Each run, whether a schedule or the API asked for it, reloads the project (so edits to
//! models and ingest files apply to the next run without a restart), is recorded in the state
//! store like a `tributary run` with trigger `schedule:<name>` or `api`, and runs in the
//! background. Ctrl-C / SIGTERM stops the schedules and the server, cancels the runs in flight
//! (they are recorded as cancelled, no table is left half-written) and waits for them.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use tributary_core::Project;
use tributary_core::redact::{is_secret_key, secrets_in};
use tributary_orchestrator::dag::Dag;
use tributary_orchestrator::schedule::{
    FireLog, LaunchRequest, LaunchedRun, Launcher, Schedule, run_scheduler,
};
use tributary_orchestrator::state::StateStore;
use tributary_server::{DagSource, Dashboard, ServerConfig, bind, router};

use tributary_orchestrator::run::{Prepared, RunEnv, RunPlan, RunRequest, build_dag, load_models};

use crate::project::{Failure, ProjectRef, open_lake};

/// Starts runs for the scheduler and the API.
struct ServeLauncher {
    project: ProjectRef,
    /// Cancelled at shutdown: cancels every run in flight.
    shutdown: CancellationToken,
    runs: Runs,
    /// The start of run links in alerts.
    link: String,
}

/// The runs started by the server, so that shutdown can wait for them.
#[derive(Clone, Default)]
struct Runs(Arc<std::sync::Mutex<tokio::task::JoinSet<()>>>);

impl Runs {
    fn lock(&self) -> std::sync::MutexGuard<'_, tokio::task::JoinSet<()>> {
        // A panic while holding the lock leaves a usable JoinSet behind.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Start `run` in the background, forgetting the runs that have ended.
    fn spawn(&self, run: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut set = self.lock();
        while set.try_join_next().is_some() {}
        set.spawn(run);
    }

    /// Wait for every run to end.
    async fn wait(&self) {
        let mut set = std::mem::take(&mut *self.lock());
        if !set.is_empty() {
            eprintln!("Waiting for {} run(s) to stop…", set.len());
        }
        while set.join_next().await.is_some() {}
    }
}

#[async_trait]
impl Launcher for ServeLauncher {
    async fn launch(&self, req: LaunchRequest) -> Result<LaunchedRun, String> {
        if self.shutdown.is_cancelled() {
            return Err("the server is shutting down".into());
        }
        let project = self.project.load().map_err(|f| f.message())?;
        let request = RunRequest {
            selectors: req.selectors.clone(),
            full_refresh: req.full_refresh,
            trigger: req.trigger.clone(),
            resume: req.resume.clone(),
            ..RunRequest::default()
        };
        let plan = RunPlan::load(project)
            .await
            .map_err(|e| Failure::from(e).message())?;
        let after_run =
            crate::alerting::run_hook(&plan.project, &plan.dag, &plan.state, self.link.clone())
                .map_err(|f| f.message())?;
        let env = RunEnv {
            after_run,
            notice: Some(Arc::new(|line: &str| eprintln!("{line}"))),
            ..RunEnv::default()
        };
        let run = match plan
            .prepare(&request, env)
            .await
            .map_err(|e| Failure::from(e).message())?
        {
            Prepared::Run(run) => run,
            Prepared::Nothing(why) => return Err(why),
        };
        let run_id = run.run_id.clone();
        let (done, finished) = watch::channel(false);
        let cancel = self.shutdown.child_token();
        let trigger = req.trigger;
        self.runs.spawn(async move {
            let result = (*run).execute(cancel).await;
            info!(
                run_id = %result.run_id,
                trigger = %trigger,
                status = result.status.as_str(),
                tasks = result.outcomes.len(),
                "Run ended."
            );
            let _ = done.send(true);
        });
        Ok(LaunchedRun { run_id, finished })
    }
}

/// The dashboard's DAG: the project reloaded (with its models) on each call, so that the
/// lineage follows edits as runs do.
struct ProjectDag {
    project: ProjectRef,
}

impl DagSource for ProjectDag {
    fn dag(&self) -> Result<Dag, String> {
        let project = self.project.load().map_err(|f| f.message())?;
        let models = load_models(&project).map_err(|e| e.to_string())?;
        build_dag(&project, &models).map_err(|e| e.to_string())
    }
}

/// Values of the project that the dashboard must never show: passwords in connection, state
/// and lake URLs, secret-looking object-store options, secret-looking HTTP headers, query
/// parameters and command environment values of pipeline tasks, and the server token.
fn secret_values(project: &Project, token: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    let c = &project.config;
    secrets_in(&c.state, &mut out);
    secrets_in(&c.lake, &mut out);
    let options = |opts: &std::collections::BTreeMap<String, String>, out: &mut Vec<String>| {
        for (k, v) in opts {
            if is_secret_key(k) {
                out.push(v.clone());
            }
            secrets_in(v, out);
        }
    };
    options(&c.lake_options, &mut out);
    for conn in c.connections.values() {
        out.extend(tributary_connectors::registry::secrets(conn));
    }
    for file in &project.pipelines {
        for t in &file.config.tasks {
            for (k, v) in &t.headers {
                if is_secret_key(k) {
                    out.push(v.clone());
                    // `Bearer abc`: the credential alone too.
                    if let Some((_, cred)) = v.trim().split_once(' ') {
                        out.push(cred.trim().to_string());
                    }
                }
            }
            for (k, v) in t.query.iter().chain(&t.env) {
                if is_secret_key(k) {
                    out.push(v.clone());
                }
            }
            if let Some(url) = &t.url {
                secrets_in(url, &mut out);
            }
            if let Some(poll) = &t.poll {
                secrets_in(&poll.url, &mut out);
            }
        }
    }
    if let Some(t) = token {
        out.push(t.to_string());
    }
    out.retain(|s| s.trim().len() >= 3);
    out.sort();
    out.dedup();
    out
}

/// `tributary serve [--bind ADDR]`.
pub async fn serve(project_ref: &ProjectRef, bind_override: Option<&str>) -> Result<(), Failure> {
    let project = project_ref.load()?;
    let schedules = Schedule::all(&project.config.schedules)
        .map_err(|e| Failure::config(anyhow::anyhow!(e)))?;
    let config =
        ServerConfig::from_config(&project.config.serve, bind_override).map_err(Failure::config)?;
    // Checks the models and the DAG now, so a broken project fails at start, not at the first
    // fire.
    let models = load_models(&project).map_err(Failure::config)?;
    let dag = build_dag(&project, &models).map_err(Failure::config)?;
    let state = StateStore::open(&project.config.state, &project.root)
        .await
        .map_err(Failure::task)?;

    let shutdown = CancellationToken::new();
    crate::signals::cancel_on_signals(
        shutdown.clone(),
        "stopping the server and cancelling the runs in flight (they get a grace period; press Ctrl-C again to stop at once)",
    );
    let runs = Runs::default();
    let dashboard = Dashboard::new(
        project.config.name.clone(),
        state.clone(),
        open_lake(&project)?,
        Arc::new(ProjectDag {
            project: project_ref.clone(),
        }),
    )
    .with_secrets(secret_values(&project, config.token.as_deref()));
    let has_token = config.token.is_some();
    let server = bind(config).await.map_err(Failure::config)?;
    let addr = server.local_addr();
    let link = crate::alerting::link_base(&project, Some(&addr.to_string()));
    // Checked at start (an unset channel variable stops the server); runs build their own
    // engine from the project as it is when they start.
    if let Some(engine) = crate::alerting::engine(&project, &dag, &state, link.clone(), false)? {
        crate::alerting::spawn_timer(engine, shutdown.clone());
    }
    let launcher: Arc<dyn Launcher> = Arc::new(ServeLauncher {
        project: project_ref.clone(),
        shutdown: shutdown.clone(),
        runs: runs.clone(),
        link,
    });
    let enabled = schedules.iter().filter(|s| s.enabled).count();
    for s in &schedules {
        let next = s
            .next_after(chrono::Utc::now())
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_else(|| "never".into());
        info!(schedule = %s.name, cron = %s.expression, timezone = %s.timezone(), enabled = s.enabled, next = %next, "Schedule loaded.");
    }
    eprintln!(
        "Serving {} on http://{addr} with {enabled} schedule{} (Ctrl-C to stop).",
        project.config.name,
        if enabled == 1 { "" } else { "s" }
    );
    eprintln!(
        "Dashboard: http://{addr}/runs{}; metrics: /metrics; API: /api/openapi.json.",
        if has_token {
            " (open it once with ?token=TOKEN)"
        } else {
            ""
        }
    );
    let fire_log: Arc<dyn FireLog> = Arc::new(state.clone());
    let scheduler = tokio::spawn(run_scheduler(
        schedules,
        launcher.clone(),
        fire_log,
        shutdown.clone(),
    ));
    let app = router(
        server.state(launcher).with_dashboard(dashboard),
        tributary_server::axum::Router::new(),
    );
    let served = server.run(app, shutdown.clone()).await;
    // The server stops only at shutdown, or on an error: stop everything else either way.
    shutdown.cancel();
    if let Err(e) = scheduler.await {
        warn!(error = %e, "The scheduler ended abnormally.");
    }
    runs.wait().await;
    served.map_err(Failure::task)?;
    eprintln!("Server stopped.");
    Ok(())
}
