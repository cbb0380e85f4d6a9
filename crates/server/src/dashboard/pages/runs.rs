//! The runs (`/runs`) and one run (`/runs/{id}`): `runs.html` and `run.html`.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use minijinja::Value;
use serde::Serialize;
use tributary_orchestrator::state::{RunDetail, RunStatus};

use super::{Button, Link, Page, TaskCells, link, opt_duration, render, secs_between, task_cells};
use crate::AppState;
use crate::dashboard::data::{self, RunsQuery, run_link, seg, table_link, task_link};
use crate::dashboard::format::{count, duration, time};
use crate::dashboard::json::dashboard;
use crate::dashboard::svg;
use crate::dashboard::templates::{Nav, markup};

/// `key=value&…`, form-encoded.
fn query_string(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", seg(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// What `runs.html` shows.
#[derive(Serialize)]
struct RunsView {
    /// The filter as chosen (empty: any).
    status: Option<String>,
    task: String,
    trigger: String,
    limit: usize,
    /// The DAG's tasks, offered in the task filter.
    task_ids: Vec<String>,
    trigger_button: Button,
    runs: Vec<RunRow>,
    /// The same list with twice the limit, when this one may be cut.
    more: Option<Link>,
}

#[derive(Serialize)]
struct RunRow {
    link: Link,
    status: &'static str,
    trigger: String,
    started: String,
    duration: String,
    tasks: String,
    rows: String,
    error: String,
}

pub(crate) async fn runs(State(s): State<AppState>, Query(q): Query<RunsQuery>) -> Response {
    let page = async {
        let d = dashboard(&s)?;
        let list = data::runs(&d, &q).await?;
        let task_ids: Vec<String> = d
            .dag()
            .await
            .map(|dag| dag.tasks().map(|t| t.id.clone()).collect())
            .unwrap_or_default();
        let rows = list
            .runs
            .iter()
            .map(|r| RunRow {
                link: link(run_link(&r.run.run_id), &r.run.run_id),
                status: r.run.status.as_str(),
                trigger: r.run.trigger.clone(),
                started: time(Some(r.run.started_at)),
                duration: opt_duration(r.duration.map(|d| d.as_secs_f64())),
                tasks: if r.failed + r.skipped > 0 {
                    format!("{} ({} failed, {} skipped)", r.tasks, r.failed, r.skipped)
                } else {
                    r.tasks.to_string()
                },
                rows: count(r.rows),
                error: r.run.error.clone().unwrap_or_default(),
            })
            .collect();
        let more = (list.runs.len() >= list.limit).then(|| {
            let more = query_string(&[
                ("status", list.status.clone().unwrap_or_default()),
                ("task", list.task.clone().unwrap_or_default()),
                ("trigger", list.trigger.clone().unwrap_or_default()),
                ("limit", (list.limit * 2).min(1000).to_string()),
            ]);
            link(format!("/runs?{more}"), "Show more runs")
        });
        let view = RunsView {
            status: list.status.clone(),
            task: list.task.clone().unwrap_or_default(),
            trigger: list.trigger.clone().unwrap_or_default(),
            limit: list.limit,
            task_ids,
            trigger_button: Button {
                id: "trigger-run",
                url: "/api/runs".into(),
                body: "{}".into(),
                label: "Trigger a run of the whole DAG",
            },
            runs: rows,
            more,
        };
        Ok(Page {
            refresh: list.runs.iter().any(|r| r.run.status == RunStatus::Running),
            ..Page::new("Runs", "runs.html", &view)
        })
    }
    .await;
    render(&s, Nav::Runs, page)
}

/// What `run.html` shows.
#[derive(Serialize)]
struct RunView {
    status: &'static str,
    trigger: String,
    started: String,
    finished: String,
    duration: String,
    tasks: u32,
    failed: u32,
    skipped: u32,
    rows: String,
    selection: String,
    host: String,
    pid: u32,
    resumes: Option<Link>,
    target: Option<String>,
    error: Option<String>,
    /// "Retry failed tasks", for runs that did not succeed.
    retry: Option<Button>,
    run_again: Button,
    /// The timeline (none without tasks).
    gantt: Option<Value>,
    task_rows: Vec<TaskRow>,
    attempts: Vec<AttemptRow>,
    expectations: Vec<ExpectationRow>,
}

#[derive(Serialize)]
struct TaskRow {
    link: Link,
    kind: String,
    version: String,
    cells: TaskCells,
}

#[derive(Serialize)]
struct AttemptRow {
    task: String,
    attempt: u32,
    status: &'static str,
    started: String,
    duration: String,
    error_class: String,
    error: String,
}

#[derive(Serialize)]
struct ExpectationRow {
    model: Link,
    expectation: String,
    rule: String,
    on_fail: String,
    checked: String,
    failed: String,
    result: &'static str,
}

/// The timeline rows of a run: a bar per attempt (the task's own span when it has none).
fn gantt_of(detail: &RunDetail, now: DateTime<Utc>) -> String {
    let run = &detail.run.run;
    let mut rows = Vec::new();
    let mut end = run.finished_at.unwrap_or(now);
    for t in &detail.tasks {
        let mut bars: Vec<svg::Bar> = detail
            .attempts
            .iter()
            .filter(|a| a.task_id == t.task_id)
            .map(|a| {
                let finish = a.finished_at.unwrap_or(now);
                svg::Bar {
                    start: a.started_at,
                    end: finish,
                    status: a.status.as_str().to_string(),
                    title: format!(
                        "{} attempt {}: {} in {}{}",
                        t.task_id,
                        a.attempt,
                        a.status,
                        duration(secs_between(Some(a.started_at), Some(finish)).unwrap_or(0.0)),
                        a.error_class
                            .as_deref()
                            .map(|c| format!(" ({c})"))
                            .unwrap_or_default()
                    ),
                }
            })
            .collect();
        if bars.is_empty()
            && let Some(start) = t.started_at
        {
            let finish = t.finished_at.unwrap_or(now);
            bars.push(svg::Bar {
                start,
                end: finish,
                status: t.status.as_str().to_string(),
                title: format!("{}: {}", t.task_id, t.status),
            });
        }
        for b in &bars {
            end = end.max(b.end);
        }
        rows.push(svg::GanttRow {
            label: t.task_id.clone(),
            link: task_link(&t.task_id),
            bars,
        });
    }
    svg::gantt(&rows, run.started_at, end)
}

pub(crate) async fn run(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let page = async {
        let d = dashboard(&s)?;
        let detail = data::run(&d, &id).await?;
        let r = &detail.run;
        let run = &r.run;
        let retry = matches!(
            run.status,
            RunStatus::Failed | RunStatus::Cancelled | RunStatus::Abandoned
        )
        .then(|| Button {
            id: "retry-failed",
            url: format!("/api/runs/{}/resume", seg(&run.run_id)),
            body: "{}".into(),
            label: "Retry failed tasks",
        });
        let view = RunView {
            status: run.status.as_str(),
            trigger: run.trigger.clone(),
            started: time(Some(run.started_at)),
            finished: time(run.finished_at),
            duration: opt_duration(r.duration.map(|d| d.as_secs_f64())),
            tasks: r.tasks,
            failed: r.failed,
            skipped: r.skipped,
            rows: count(r.rows),
            selection: if run.selectors.is_empty() {
                "the whole DAG".to_string()
            } else {
                run.selectors.join(" ")
            },
            host: run.host.clone(),
            pid: run.pid,
            resumes: run
                .resumed_from
                .as_ref()
                .map(|from| link(run_link(from), from)),
            target: run.target.clone(),
            error: run.error.clone(),
            retry,
            run_again: Button {
                id: "run-again",
                url: "/api/runs".into(),
                body: serde_json::json!({ "select": run.selectors }).to_string(),
                label: "Run again",
            },
            gantt: (!detail.tasks.is_empty()).then(|| markup(gantt_of(&detail, Utc::now()))),
            task_rows: detail
                .tasks
                .iter()
                .map(|t| TaskRow {
                    link: link(task_link(&t.task_id), &t.task_id),
                    kind: t.kind.clone(),
                    version: t
                        .version
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "–".into()),
                    cells: task_cells(t),
                })
                .collect(),
            attempts: detail
                .attempts
                .iter()
                .map(|a| AttemptRow {
                    task: a.task_id.clone(),
                    attempt: a.attempt,
                    status: a.status.as_str(),
                    started: time(Some(a.started_at)),
                    duration: opt_duration(secs_between(Some(a.started_at), a.finished_at)),
                    error_class: a.error_class.clone().unwrap_or_default(),
                    error: a.error.clone().unwrap_or_default(),
                })
                .collect(),
            expectations: detail
                .expectations
                .iter()
                .map(|e| ExpectationRow {
                    model: link(table_link(&e.model), &e.model),
                    expectation: e.expectation.clone(),
                    rule: e.rule.clone(),
                    on_fail: e.on_fail.clone(),
                    checked: count(e.checked_rows),
                    failed: count(e.failed_rows),
                    result: if e.passed { "passed" } else { "failed" },
                })
                .collect(),
        };
        Ok(Page {
            refresh: run.status == RunStatus::Running,
            ..Page::new(format!("Run {}", run.run_id), "run.html", &view)
        })
    }
    .await;
    render(&s, Nav::Runs, page)
}
