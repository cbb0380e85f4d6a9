//! Wiring the alerts into the commands: the engine for a run or the server (rule selections
//! resolved against the DAG, channel secrets substituted), the timer of `serve`, and
//! `tributary alerts test`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::anyhow;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use tributary_alerts::{AlertEngine, EngineSetup};
use tributary_core::Project;
use tributary_core::alerts::RuleKind;
use tributary_core::config::{ConfigError, ConfigProblem, PROJECT_FILE};
use tributary_core::yamlpos::Positions;
use tributary_orchestrator::dag::Dag;
use tributary_orchestrator::run::{build_dag, load_models};
use tributary_orchestrator::state::StateStore;

use async_trait::async_trait;
use tributary_orchestrator::run::RunHook;

use crate::project::{Failure, ProjectRef, open_lake};

/// Where run links point: `serve.public_url`, else `http://` + `bind` (the address the server
/// listens on, or `serve.bind`).
pub fn link_base(project: &Project, bind: Option<&str>) -> String {
    match &project.config.serve.public_url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => format!("http://{}", bind.unwrap_or(&project.config.serve.bind)),
    }
}

/// The task ids of each rule's `select`, and the problems of rules that name tasks the DAG
/// does not have (`select`, `task`, `model`, `table` of row-count rules).
pub fn selections(
    project: &Project,
    dag: &Dag,
) -> (BTreeMap<String, BTreeSet<String>>, Vec<ConfigProblem>) {
    let text = std::fs::read_to_string(project.root.join(PROJECT_FILE)).unwrap_or_default();
    let pos = Positions::of(&text);
    let mut problems = Vec::new();
    let mut problem = |key: String, message: String| {
        problems.push(ConfigProblem {
            file: PathBuf::from(PROJECT_FILE),
            line: pos.line(&key),
            key,
            message,
        })
    };
    let mut out = BTreeMap::new();
    for (name, rule) in &project.config.alerts.rules {
        if !rule.select.is_empty() {
            match dag.select(&rule.select) {
                Ok(ids) => {
                    out.insert(name.clone(), ids.into_iter().collect());
                }
                Err(e) => problem(format!("alerts.rules.{name}.select"), e),
            }
        }
        let named = match rule.when {
            RuleKind::TaskDuration => rule.task.as_ref().map(|t| ("task", t)),
            RuleKind::ExpectationFailed => rule.model.as_ref().map(|t| ("model", t)),
            RuleKind::RowCountAnomaly => rule.table.as_ref().map(|t| ("table", t)),
            _ => None,
        };
        if let Some((field, id)) = named
            && dag.get(id).is_none()
        {
            problem(
                format!("alerts.rules.{name}.{field}"),
                format!("`{id}` is not a task of this project; `tributary dag` lists them"),
            );
        }
    }
    (out, problems)
}

/// The alert engine of a run or of the server; `None` when no rule is enabled. A channel
/// variable that is unset, or a rule naming an unknown task, is a configuration error (exit 2).
pub fn engine(
    project: &Project,
    dag: &Dag,
    store: &StateStore,
    link: String,
    all_channels: bool,
) -> Result<Option<Arc<AlertEngine>>, Failure> {
    let cfg = &project.config.alerts;
    if !all_channels && !cfg.rules.values().any(|r| r.enabled) {
        return Ok(None);
    }
    let (selections, problems) = selections(project, dag);
    if !problems.is_empty() {
        return Err(Failure::config(ConfigError::Problems(problems)));
    }
    let lake = open_lake(project).ok();
    let engine = AlertEngine::new(
        EngineSetup {
            project: &project.config.name,
            config: cfg,
            env: &|k| std::env::var(k).ok(),
            store: store.clone(),
            lake,
            link_base: link,
            selections,
        },
        all_channels,
    )
    .map_err(Failure::config)?;
    Ok(Some(Arc::new(engine)))
}

/// `tributary serve`'s timer: the freshness and long-running-task rules, every
/// `alerts.check_interval`, until `stop`.
pub fn spawn_timer(engine: Arc<AlertEngine>, stop: CancellationToken) {
    if !engine.has_timed_rules() {
        return;
    }
    let every = engine.check_interval();
    info!(
        interval_ms = every.as_millis() as u64,
        "Alert checks scheduled."
    );
    tokio::spawn(async move {
        loop {
            // A panic in one check must not end the timer: run each in its own task.
            let e = engine.clone();
            if let Err(err) = tokio::spawn(async move { e.check().await }).await {
                warn!(error = %err, "An alert check ended abnormally.");
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.cancelled() => return,
            }
        }
    });
}

/// `tributary alerts test [CHANNEL]`.
pub async fn test(project: &ProjectRef, channel: Option<&str>) -> Result<(), Failure> {
    let project = project.load()?;
    if project.config.alerts.channels.is_empty() {
        return Err(Failure::config(anyhow!(
            "no alerts.channels in {PROJECT_FILE}; see the README, Alerts and incidents"
        )));
    }
    let models = load_models(&project).map_err(Failure::config)?;
    let dag = build_dag(&project, &models).map_err(Failure::config)?;
    let store = StateStore::open(&project.config.state, &project.root)
        .await
        .map_err(Failure::task)?;
    let Some(engine) = engine(&project, &dag, &store, link_base(&project, None), true)? else {
        return Ok(());
    };
    let results = engine.send_test(channel).await.map_err(Failure::config)?;
    let mut failed = 0;
    for (name, ok) in &results {
        if *ok {
            println!("  {name:<20} sent");
        } else {
            failed += 1;
            println!(
                "  {name:<20} FAILED (see the log above; every attempt is in the state store)"
            );
        }
    }
    if failed > 0 {
        return Err(Failure::task(anyhow!(
            "{failed} of {} channel{} failed",
            results.len(),
            if results.len() == 1 { "" } else { "s" }
        )));
    }
    Ok(())
}

/// Alerts after a run: the engine evaluates the rules against the run's record. Never fails
/// the run; the engine logs and records its own problems.
pub struct AlertHook(pub Arc<AlertEngine>);

#[async_trait]
impl RunHook for AlertHook {
    async fn after_run(&self, run_id: &str) {
        let o = self.0.after_run(run_id).await;
        if o.alerts > 0 {
            info!(run_id = %run_id, alerts = o.alerts, delivered = o.delivered, failed = o.failed, "Alerts sent.");
        }
    }
}

/// The after-run hook of a run: the alert engine, when a rule is enabled.
pub fn run_hook(
    project: &Project,
    dag: &Dag,
    store: &StateStore,
    link: String,
) -> Result<Option<Arc<dyn RunHook>>, Failure> {
    Ok(engine(project, dag, store, link, false)?
        .map(|e| Arc::new(AlertHook(e)) as Arc<dyn RunHook>))
}
