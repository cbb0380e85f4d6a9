//! The models part of a run's summary: one line per model, then each model's expectations.

use tributary_orchestrator::run::ModelRun;

use crate::output::{text_table, thousands};

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
