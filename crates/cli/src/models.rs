//! Running SQL models after ingestion: selection, dependency order, summaries, run history.

use std::collections::{BTreeMap, BTreeSet};

use tracing::Instrument;
use tributary_core::Project;
use tributary_lake::Lake;
use tributary_transform::{ModelOutcome, ModelRunner, Models, RunOptions, TransformError};

use crate::Failure;
use crate::output::{text_table, thousands};

/// The project's models, checked.
pub fn load_models(project: &Project) -> Result<Models, Failure> {
    let sources: BTreeSet<String> = project.load_specs().iter().map(|s| s.target()).collect();
    Models::load(
        &project.root,
        sources,
        project_vars(project),
        project_target(project),
    )
    .map_err(|p| Failure::config(tributary_core::config::ConfigError::Problems(p)))
}

/// Template variables of the project (and its target).
pub fn project_vars(project: &Project) -> BTreeMap<String, serde_json::Value> {
    project.vars.clone()
}

/// The selected target's name.
pub fn project_target(project: &Project) -> Option<&str> {
    project.target.as_deref()
}

/// What a model run produced, or why it did not.
pub struct ModelRun {
    pub id: String,
    pub materialized: &'static str,
    pub result: Result<ModelOutcome, String>,
    /// Failed expectations are part of the outcome even when the model failed.
    pub expectations: Vec<tributary_transform::ExpectationResult>,
    pub seconds: f64,
}

/// Which models a selection picks: `layer.name`, globs, `name+` (with downstream models),
/// `+name` (with upstream models). Ingest selectors select the models downstream of nothing;
/// the caller reports selectors matching neither.
pub fn select_models(models: &Models, selectors: &[String]) -> (Vec<String>, BTreeSet<String>) {
    if selectors.is_empty() {
        return (
            models.models.iter().map(|m| m.id()).collect(),
            BTreeSet::new(),
        );
    }
    let mut picked: BTreeSet<String> = BTreeSet::new();
    let mut used = BTreeSet::new();
    for s in selectors {
        let (up, core, down) = {
            let up = s.starts_with('+');
            let down = s.ends_with('+');
            let core = s.trim_start_matches('+').trim_end_matches('+');
            (up, core.to_string(), down)
        };
        let Ok(glob) = globset::Glob::new(&core).map(|g| g.compile_matcher()) else {
            continue;
        };
        for m in &models.models {
            let id = m.id();
            if id == core || m.name == core || glob.is_match(&id) {
                used.insert(s.clone());
                picked.insert(id.clone());
                if down {
                    picked.extend(models.downstream(&id));
                }
                if up {
                    picked.extend(
                        models
                            .ancestors(&id)
                            .into_iter()
                            .filter(|a| models.get(a).is_some()),
                    );
                }
            }
        }
        // `bronze.erp_orders+`: the models downstream of an ingested table.
        if down {
            for src in models
                .sources
                .iter()
                .filter(|t| *t == &core || glob.is_match(t))
            {
                picked.extend(models.downstream(src));
            }
        }
    }
    let ordered = models
        .models
        .iter()
        .map(|m| m.id())
        .filter(|id| picked.contains(id))
        .collect();
    (ordered, used)
}

/// Run `ids` in dependency order; a model whose upstream failed is skipped.
pub async fn run_models(
    lake: &Lake,
    models: &Models,
    ids: &[String],
    run_id: &str,
    full_refresh: bool,
    failed_upstream: &BTreeSet<String>,
) -> Vec<ModelRun> {
    let mut opts = RunOptions::new(run_id);
    opts.full_refresh = full_refresh;
    let runner = ModelRunner::new(lake, models, opts);
    let mut failed: BTreeSet<String> = failed_upstream.clone();
    let mut out = Vec::new();
    for id in ids {
        let Some(model) = models.get(id) else {
            continue;
        };
        let started = std::time::Instant::now();
        let materialized = model.config.materialized.as_str();
        let broken: Vec<String> = models
            .upstream
            .get(id)
            .map(|u| u.iter().filter(|t| failed.contains(*t)).cloned().collect())
            .unwrap_or_default();
        if !broken.is_empty() {
            failed.insert(id.clone());
            out.push(ModelRun {
                id: id.clone(),
                materialized,
                result: Err(format!("skipped: upstream {} failed", broken.join(", "))),
                expectations: Vec::new(),
                seconds: 0.0,
            });
            continue;
        }
        let span = tracing::info_span!("model", model = %id, run_id = %run_id);
        let result = async {
            tracing::info!("Model started.");
            runner.run_model(model).await
        }
        .instrument(span)
        .await;
        let seconds = started.elapsed().as_secs_f64();
        match result {
            Ok(o) => {
                tracing::info!(model = %id, status = %o.status, rows = o.rows_inserted + o.rows_updated, seconds, "Model finished.");
                out.push(ModelRun {
                    id: id.clone(),
                    materialized,
                    expectations: o.expectations.clone(),
                    result: Ok(o),
                    seconds,
                });
            }
            Err(e) => {
                tracing::error!(target: "tributary::load", model = %id, error = %e, "Model failed; its table is unchanged.");
                failed.insert(id.clone());
                let expectations = match &e {
                    TransformError::ExpectationsFailed { results, .. } => results.clone(),
                    _ => Vec::new(),
                };
                out.push(ModelRun {
                    id: id.clone(),
                    materialized,
                    result: Err(e.to_string()),
                    expectations,
                    seconds,
                });
            }
        }
    }
    out
}

/// The models table and the expectations of each model, for the run summary.
pub fn print_summary(runs: &[ModelRun]) {
    if runs.is_empty() {
        return;
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| match &r.result {
            Ok(o) => vec![
                r.id.clone(),
                r.materialized.to_string(),
                thousands(o.rows_in),
                thousands(o.rows_inserted),
                thousands(o.rows_updated),
                thousands(o.rows_quarantined),
                o.version
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "-".into()),
                format!("{:.2}", r.seconds),
                o.status.to_string(),
            ],
            Err(e) => vec![
                r.id.clone(),
                r.materialized.to_string(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                format!("{:.2}", r.seconds),
                if e.starts_with("skipped") {
                    "SKIPPED".into()
                } else {
                    "FAILED".into()
                },
            ],
        })
        .collect();
    println!();
    print!(
        "{}",
        text_table(
            &[
                "model",
                "materialized",
                "rows in",
                "inserted",
                "updated",
                "quarantined",
                "version",
                "seconds",
                "status"
            ],
            &rows,
            &[false, false, true, true, true, true, true, true, false]
        )
    );
    let with_checks: Vec<&ModelRun> = runs.iter().filter(|r| !r.expectations.is_empty()).collect();
    if !with_checks.is_empty() {
        println!("\nExpectations:");
        for r in with_checks {
            println!("  {}", r.id);
            for line in tributary_transform::render_results(&r.expectations).lines() {
                println!("  {line}");
            }
        }
    }
}
