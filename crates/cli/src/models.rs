//! Running SQL models after ingestion: selection, dependency order, summaries, run history.

use std::collections::{BTreeMap, BTreeSet};

use tributary_core::Project;
use tributary_transform::{ModelOutcome, Models};

use crate::Failure;
use crate::output::{text_table, thousands};

/// The project's models, checked.
pub fn load_models(project: &Project) -> Result<Models, Failure> {
    // Tables models may ref besides other models: bronze loads and command task targets.
    let sources: BTreeSet<String> = project
        .load_specs()
        .iter()
        .map(|s| s.target())
        .chain(
            project
                .pipelines
                .iter()
                .flat_map(|f| f.config.tasks.iter())
                .filter_map(|t| t.target.clone()),
        )
        .collect();
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

/// The models table and the expectations of each model, for the run summary.
pub fn print_summary(runs: &[&ModelRun]) {
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
    let with_checks: Vec<&&ModelRun> = runs.iter().filter(|r| !r.expectations.is_empty()).collect();
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
