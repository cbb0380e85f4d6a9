//! `GET /metrics`: the run history and the lake in the Prometheus text exposition format
//! (version 0.0.4), computed from the state store and the lake at each scrape.
//!
//! Counters (`_total`) are sums over the whole run history, so they only grow while the history
//! is kept; gauges describe now (tables, freshness, unfinished work). Labels are bounded: task
//! ids, table names, model and expectation names, statuses and kinds, all from the project.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use tracing::warn;
use tributary_orchestrator::state::{RunStatus, TaskStatus};

use crate::AppState;
use crate::api::error;
use crate::dashboard::data::{DataError, age_secs, quarantine_of};
use crate::dashboard::json::dashboard;

/// Upper bounds (seconds) of the task duration histogram.
pub(crate) const DURATION_BUCKETS: [f64; 14] = [
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 14400.0,
];

/// Run statuses counted by `tributary_runs_total` (finished runs; `running` is a gauge).
const RUN_STATUSES: [RunStatus; 4] = [
    RunStatus::Succeeded,
    RunStatus::Failed,
    RunStatus::Cancelled,
    RunStatus::Abandoned,
];
/// Task statuses counted by `tributary_tasks_total`; the others are unfinished (a gauge).
const TASK_FINAL: [TaskStatus; 4] = [
    TaskStatus::Succeeded,
    TaskStatus::Failed,
    TaskStatus::Skipped,
    TaskStatus::Cancelled,
];
const TASK_KINDS: [&str; 4] = ["load", "model", "command", "http"];

/// A label value escaped for the exposition format (`\`, `"` and newlines).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A sample value: integers as such, other numbers in Rust's shortest round-trip form.
fn value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v:?}")
    }
}

/// The exposition being written: `# HELP` / `# TYPE` once per family, then its samples.
#[derive(Default)]
struct Exposition {
    out: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", label(val));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", value(v));
    }
}

pub(crate) async fn metrics(State(s): State<AppState>) -> Response {
    match render(&s).await {
        Ok(text) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => error(e.status, &e.message),
    }
}

async fn render(s: &AppState) -> Result<String, DataError> {
    let d = dashboard(s)?;
    let state = d.state();
    let failed = |what: &'static str| {
        let d = d.clone();
        move |e: tributary_orchestrator::state::StateError| DataError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: d.scrub(&format!("cannot read {what} from the run history: {e}")),
        }
    };
    let runs = state.run_counts().await.map_err(failed("run counts"))?;
    let tasks = state.task_counts().await.map_err(failed("task counts"))?;
    let histograms = state
        .task_duration_histograms(&DURATION_BUCKETS)
        .await
        .map_err(failed("task durations"))?;
    let totals = state.task_totals().await.map_err(failed("task totals"))?;
    let expectations = state
        .expectation_counts()
        .await
        .map_err(failed("expectation counts"))?;
    let retries = state.retry_counts().await.map_err(failed("retries"))?;
    // Which table each task writes (the DAG; loads and models are named after their table).
    let writes: BTreeMap<String, String> = match d.dag().await {
        Ok(dag) => dag
            .tasks()
            .filter_map(|t| Some((t.id.clone(), t.writes.clone()?)))
            .collect(),
        Err(e) => {
            warn!(error = %e, "Metrics without the DAG: the project does not load.");
            BTreeMap::new()
        }
    };
    let table_of = |task: &str| -> Option<String> {
        writes
            .get(task)
            .cloned()
            .or_else(|| task.contains('.').then(|| task.to_string()))
    };
    let lake_tables = match d.lake().tables().await {
        Ok(t) => Some(t),
        Err(e) => {
            warn!(error = %d.scrub(&e.to_string()), "Metrics without the lake's tables.");
            None
        }
    };

    let mut x = Exposition::default();

    let by_status: BTreeMap<&str, u64> = runs.iter().map(|(s, n)| (s.as_str(), *n)).collect();
    x.family(
        "tributary_runs_total",
        "counter",
        "Finished runs in the run history, by status (abandoned: the process died).",
    );
    for st in RUN_STATUSES {
        let n = by_status.get(st.as_str()).copied().unwrap_or(0);
        x.sample("tributary_runs_total", &[("status", st.as_str())], n as f64);
    }
    x.family("tributary_runs_running", "gauge", "Runs in progress now.");
    x.sample(
        "tributary_runs_running",
        &[],
        by_status.get("running").copied().unwrap_or(0) as f64,
    );

    let mut task_n: BTreeMap<(String, &str), u64> = BTreeMap::new();
    let mut kinds: BTreeSet<String> = TASK_KINDS.iter().map(|k| k.to_string()).collect();
    for t in &tasks {
        kinds.insert(t.kind.clone());
        *task_n
            .entry((t.kind.clone(), t.status.as_str()))
            .or_default() += t.count;
    }
    x.family(
        "tributary_tasks_total",
        "counter",
        "Finished task records in the run history, by status and kind.",
    );
    for kind in &kinds {
        for st in TASK_FINAL {
            let n = task_n
                .get(&(kind.clone(), st.as_str()))
                .copied()
                .unwrap_or(0);
            x.sample(
                "tributary_tasks_total",
                &[("status", st.as_str()), ("kind", kind)],
                n as f64,
            );
        }
    }
    x.family(
        "tributary_tasks_unfinished",
        "gauge",
        "Task records pending or running (including those of abandoned runs), by status and kind.",
    );
    for kind in &kinds {
        for st in [TaskStatus::Pending, TaskStatus::Running] {
            let n = task_n
                .get(&(kind.clone(), st.as_str()))
                .copied()
                .unwrap_or(0);
            x.sample(
                "tributary_tasks_unfinished",
                &[("status", st.as_str()), ("kind", kind)],
                n as f64,
            );
        }
    }

    x.family(
        "tributary_task_duration_seconds",
        "histogram",
        "Duration of finished task records (succeeded or failed, all attempts), by task.",
    );
    for h in &histograms {
        for (le, n) in &h.buckets {
            x.sample(
                "tributary_task_duration_seconds_bucket",
                &[("task", &h.task_id), ("le", &value(*le))],
                *n as f64,
            );
        }
        x.sample(
            "tributary_task_duration_seconds_bucket",
            &[("task", &h.task_id), ("le", "+Inf")],
            h.count as f64,
        );
        x.sample(
            "tributary_task_duration_seconds_sum",
            &[("task", &h.task_id)],
            h.sum_secs,
        );
        x.sample(
            "tributary_task_duration_seconds_count",
            &[("task", &h.task_id)],
            h.count as f64,
        );
    }

    x.family(
        "tributary_task_retries_total",
        "counter",
        "Retries (attempts after the first) in the run history, by task.",
    );
    for (task, n) in &retries {
        x.sample("tributary_task_retries_total", &[("task", task)], *n as f64);
    }

    // Per table: the succeeded writes of the task that writes it.
    let mut per_table: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    let mut last_success = BTreeMap::new();
    for t in &totals {
        let Some(table) = table_of(&t.task_id) else {
            continue;
        };
        let e = per_table.entry(table.clone()).or_default();
        e.0 += t.succeeded;
        e.1 += t.rows;
        e.2 += t.bytes;
        if let Some(at) = t.last_success {
            last_success.insert(table, at);
        }
    }
    x.family(
        "tributary_table_loads_total",
        "counter",
        "Successful writes of each table (loads, models, command outputs) in the run history.",
    );
    for (table, (n, _, _)) in &per_table {
        x.sample(
            "tributary_table_loads_total",
            &[("table", table)],
            *n as f64,
        );
    }
    x.family(
        "tributary_table_rows_written_total",
        "counter",
        "Rows written into each table by successful tasks, summed over the run history.",
    );
    for (table, (_, rows, _)) in &per_table {
        x.sample(
            "tributary_table_rows_written_total",
            &[("table", table)],
            *rows as f64,
        );
    }
    x.family(
        "tributary_table_bytes_written_total",
        "counter",
        "Bytes of data files written into each table by successful tasks, summed over the run history.",
    );
    for (table, (_, _, bytes)) in &per_table {
        x.sample(
            "tributary_table_bytes_written_total",
            &[("table", table)],
            *bytes as f64,
        );
    }

    x.family(
        "tributary_lake_up",
        "gauge",
        "1 when the lake's tables could be listed for this scrape, else 0 (and no tributary_table_* gauges).",
    );
    x.sample(
        "tributary_lake_up",
        &[],
        if lake_tables.is_some() { 1.0 } else { 0.0 },
    );
    if let Some(infos) = &lake_tables {
        let now = Utc::now();
        let (quarantine, tables): (Vec<_>, Vec<_>) = infos
            .iter()
            .partition(|i| quarantine_of(&i.layer, &i.name).is_some());
        x.family(
            "tributary_table_freshness_seconds",
            "gauge",
            "Seconds since each table's last successful write in the run history (or, with none recorded, since its current Delta version was committed).",
        );
        for i in &tables {
            let name = format!("{}.{}", i.layer, i.name);
            let at = last_success.get(&name).copied().or_else(|| {
                i.committed_at_ms
                    .and_then(chrono::DateTime::<Utc>::from_timestamp_millis)
            });
            if let Some(at) = at {
                x.sample(
                    "tributary_table_freshness_seconds",
                    &[("table", &name)],
                    age_secs(at, now),
                );
            }
        }
        for (family, help) in [
            (
                "tributary_table_rows",
                "Rows in each table now (from file statistics).",
            ),
            (
                "tributary_table_files",
                "Data files of each table's current version.",
            ),
            (
                "tributary_table_size_bytes",
                "Bytes of each table's current data files.",
            ),
            (
                "tributary_table_version",
                "Each table's current Delta version.",
            ),
        ] {
            x.family(family, "gauge", help);
            for i in &tables {
                let name = format!("{}.{}", i.layer, i.name);
                let v = match family {
                    "tributary_table_rows" => match i.rows {
                        Some(r) => r as f64,
                        None => continue,
                    },
                    "tributary_table_files" => i.files as f64,
                    "tributary_table_size_bytes" => i.bytes as f64,
                    _ => i.version as f64,
                };
                x.sample(family, &[("table", &name)], v);
            }
        }
        x.family(
            "tributary_quarantine_rows",
            "gauge",
            "Rows in each model's quarantine table now (rows `drop` expectations kept out).",
        );
        for i in &quarantine {
            if let (Some(model), Some(rows)) = (quarantine_of(&i.layer, &i.name), i.rows) {
                x.sample(
                    "tributary_quarantine_rows",
                    &[("model", &model)],
                    rows as f64,
                );
            }
        }
    }

    x.family(
        "tributary_expectation_checks_total",
        "counter",
        "Runs that checked each expectation.",
    );
    for e in &expectations {
        x.sample(
            "tributary_expectation_checks_total",
            &[("model", &e.model), ("expectation", &e.expectation)],
            e.checks as f64,
        );
    }
    x.family(
        "tributary_expectation_failures_total",
        "counter",
        "Runs in which each expectation failed (any on_fail: warn, drop or fail).",
    );
    for e in &expectations {
        x.sample(
            "tributary_expectation_failures_total",
            &[("model", &e.model), ("expectation", &e.expectation)],
            e.failures as f64,
        );
    }
    x.family(
        "tributary_expectation_failed_rows_total",
        "counter",
        "Rows that broke each expectation, summed over the runs.",
    );
    for e in &expectations {
        x.sample(
            "tributary_expectation_failed_rows_total",
            &[("model", &e.model), ("expectation", &e.expectation)],
            e.failed_rows as f64,
        );
    }
    Ok(d.scrub(&x.out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_escapes_labels_and_formats_values() {
        let mut x = Exposition::default();
        x.family("m_total", "counter", "Help.");
        x.sample("m_total", &[("a", "x\"y\\z\nw"), ("le", "+Inf")], 3.0);
        x.sample("m_total", &[], 0.25);
        assert_eq!(
            x.out,
            "# HELP m_total Help.\n# TYPE m_total counter\nm_total{a=\"x\\\"y\\\\z\\nw\",le=\"+Inf\"} 3.0\nm_total 0.25\n"
        );
        assert_eq!(value(f64::INFINITY), "+Inf");
        assert_eq!(value(1e21), "1e21");
    }
}
