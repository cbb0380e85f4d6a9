//! The HTML pages: the same documents as the JSON API, rendered on the server with inline SVG.
//! The only script (`/assets/app.js`) sends the buttons' POSTs and reloads pages of runs in
//! progress.

use std::fmt::Write as _;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use tributary_lake::Sample;
use tributary_orchestrator::state::{RunDetail, RunStatus, TaskRecord, TaskStatus};

use super::data::{
    self, DataError, RunsQuery, TaskTrend, quarantine_link, run_link, seg, table_link, task_link,
    trend_points,
};
use super::html::{
    Nav, badge, bytes, count, duration, error_body, esc, layout, link, opt_count, post_button, time,
};
use super::json::{Limit, dashboard};
use super::svg;
use crate::AppState;

/// The result of one page: its title, body and whether it reloads itself.
struct Page {
    title: String,
    body: String,
    refresh: bool,
}

impl Page {
    fn new(title: impl Into<String>, body: String) -> Page {
        Page {
            title: title.into(),
            body,
            refresh: false,
        }
    }
}

fn render(s: &AppState, nav: Nav, page: Result<Page, DataError>) -> Response {
    let project = s
        .dashboard
        .as_ref()
        .map(|d| d.project().to_string())
        .unwrap_or_else(|| "Tributary".into());
    let csrf = s.security.csrf();
    match page {
        Ok(p) => Html(layout(&project, &p.title, nav, csrf, &p.body, p.refresh)).into_response(),
        Err(e) => (
            e.status,
            Html(layout(
                &project,
                e.status.canonical_reason().unwrap_or("Error"),
                nav,
                csrf,
                &error_body(e.status.as_u16(), &e.message),
                false,
            )),
        )
            .into_response(),
    }
}

/// `/`: the runs.
pub(crate) async fn index() -> Redirect {
    Redirect::to("/runs")
}

/// `key=value&…`, form-encoded.
fn query_string(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", seg(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn secs_between(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some((b - a).num_microseconds().unwrap_or(0).max(0) as f64 / 1e6),
        _ => None,
    }
}

fn opt_duration(secs: Option<f64>) -> String {
    secs.map(duration).unwrap_or_else(|| "–".into())
}

const MESSAGE: &str = "<p id=\"message\" class=\"message\" role=\"status\"></p>";

// ---- runs ----

pub(crate) async fn runs(State(s): State<AppState>, Query(q): Query<RunsQuery>) -> Response {
    let page = async {
        let d = dashboard(&s)?;
        let list = data::runs(&d, &q).await?;
        let task_ids: Vec<String> = d
            .dag()
            .await
            .map(|dag| dag.tasks().map(|t| t.id.clone()).collect())
            .unwrap_or_default();
        let mut b = String::new();
        b.push_str("<form class=\"filters\" method=\"get\" action=\"/runs\"><label>Status <select name=\"status\"><option value=\"\">any</option>");
        for st in ["running", "succeeded", "failed", "cancelled", "abandoned"] {
            let sel = if list.status.as_deref() == Some(st) {
                " selected"
            } else {
                ""
            };
            let _ = write!(b, "<option value=\"{st}\"{sel}>{st}</option>");
        }
        let _ = write!(
            b,
            "</select></label> <label>Task <input name=\"task\" list=\"task-ids\" value=\"{}\" placeholder=\"any\"></label>\
             <datalist id=\"task-ids\">",
            esc(list.task.as_deref().unwrap_or(""))
        );
        for id in &task_ids {
            let _ = write!(b, "<option value=\"{}\"></option>", esc(id));
        }
        let _ = write!(
            b,
            "</datalist> <label>Trigger <input name=\"trigger\" value=\"{}\" placeholder=\"any\" size=\"14\"></label> \
             <label>Limit <input name=\"limit\" type=\"number\" min=\"1\" max=\"1000\" value=\"{}\" size=\"5\"></label> \
             <button type=\"submit\">Filter</button></form>",
            esc(list.trigger.as_deref().unwrap_or("")),
            list.limit
        );
        let _ = write!(
            b,
            "<p class=\"actions\">{}</p>{MESSAGE}",
            post_button("trigger-run", "/api/runs", "{}", "Trigger a run of the whole DAG")
        );
        if list.runs.is_empty() {
            b.push_str("<p class=\"empty\">No runs match.</p>");
        } else {
            b.push_str("<table class=\"runs\"><thead><tr><th>Run</th><th>Status</th><th>Trigger</th><th>Started</th><th>Duration</th><th>Tasks</th><th>Rows</th><th>Error</th></tr></thead><tbody>");
            for r in &list.runs {
                let tasks = if r.failed + r.skipped > 0 {
                    format!("{} ({} failed, {} skipped)", r.tasks, r.failed, r.skipped)
                } else {
                    r.tasks.to_string()
                };
                let _ = write!(
                    b,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"err\">{}</td></tr>",
                    link(&run_link(&r.run.run_id), &r.run.run_id),
                    badge(r.run.status.as_str()),
                    esc(&r.run.trigger),
                    time(Some(r.run.started_at)),
                    opt_duration(r.duration.map(|d| d.as_secs_f64())),
                    esc(&tasks),
                    count(r.rows),
                    esc(r.run.error.as_deref().unwrap_or(""))
                );
            }
            b.push_str("</tbody></table>");
            if list.runs.len() >= list.limit {
                let more = query_string(&[
                    ("status", list.status.clone().unwrap_or_default()),
                    ("task", list.task.clone().unwrap_or_default()),
                    ("trigger", list.trigger.clone().unwrap_or_default()),
                    ("limit", (list.limit * 2).min(1000).to_string()),
                ]);
                let _ = write!(
                    b,
                    "<p>{}</p>",
                    link(&format!("/runs?{more}"), "Show more runs")
                );
            }
        }
        let refresh = list.runs.iter().any(|r| r.run.status == RunStatus::Running);
        Ok(Page {
            refresh,
            ..Page::new("Runs", b)
        })
    }
    .await;
    render(&s, Nav::Runs, page)
}

fn task_duration(t: &TaskRecord) -> Option<f64> {
    secs_between(t.started_at, t.finished_at)
}

/// The headers of [`task_cells`].
const TASK_HEADERS: &str = "<th>Status</th><th>Attempts</th><th>Started</th><th>Duration</th><th>Rows</th><th>Bytes</th><th>Error class</th><th>Error</th>";

/// The cells of a task record under [`TASK_HEADERS`].
fn task_cells(t: &TaskRecord) -> String {
    format!(
        "<td>{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>{}",
        badge(t.status.as_str()),
        t.attempts,
        time(t.started_at),
        opt_duration(task_duration(t)),
        opt_count(t.rows),
        t.bytes.map(bytes).unwrap_or_else(|| "–".into()),
        error_cells(t.error_class.as_deref(), t.error.as_deref())
    )
}

/// The error class and error cells of a task or attempt.
fn error_cells(class: Option<&str>, error: Option<&str>) -> String {
    format!(
        "<td>{}</td><td class=\"err\">{}</td>",
        esc(class.unwrap_or("")),
        esc(error.unwrap_or(""))
    )
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
        let mut b = String::new();
        let _ = write!(
            b,
            "<dl class=\"summary\"><dt>Status</dt><dd>{}</dd><dt>Trigger</dt><dd>{}</dd>\
             <dt>Started</dt><dd>{}</dd><dt>Finished</dt><dd>{}</dd><dt>Duration</dt><dd>{}</dd>\
             <dt>Tasks</dt><dd>{} ({} failed, {} skipped)</dd><dt>Rows</dt><dd>{}</dd>\
             <dt>Selection</dt><dd>{}</dd><dt>Host</dt><dd>{} (pid {})</dd>",
            badge(run.status.as_str()),
            esc(&run.trigger),
            time(Some(run.started_at)),
            time(run.finished_at),
            opt_duration(r.duration.map(|d| d.as_secs_f64())),
            r.tasks,
            r.failed,
            r.skipped,
            count(r.rows),
            esc(&if run.selectors.is_empty() {
                "the whole DAG".to_string()
            } else {
                run.selectors.join(" ")
            }),
            esc(&run.host),
            run.pid
        );
        if let Some(from) = &run.resumed_from {
            let _ = write!(b, "<dt>Resumes</dt><dd>{}</dd>", link(&run_link(from), from));
        }
        if let Some(target) = &run.target {
            let _ = write!(b, "<dt>Target</dt><dd>{}</dd>", esc(target));
        }
        if let Some(e) = &run.error {
            let _ = write!(b, "<dt>Error</dt><dd class=\"err\">{}</dd>", esc(e));
        }
        b.push_str("</dl><p class=\"actions\">");
        if matches!(
            run.status,
            RunStatus::Failed | RunStatus::Cancelled | RunStatus::Abandoned
        ) {
            b.push_str(&post_button(
                "retry-failed",
                &format!("/api/runs/{}/resume", seg(&run.run_id)),
                "{}",
                "Retry failed tasks",
            ));
            b.push(' ');
        }
        b.push_str(&post_button(
            "run-again",
            "/api/runs",
            &serde_json::json!({ "select": run.selectors }).to_string(),
            "Run again",
        ));
        b.push_str("</p>");
        b.push_str(MESSAGE);
        b.push_str("<h2>Timeline</h2>");
        if detail.tasks.is_empty() {
            b.push_str("<p class=\"empty\">No tasks recorded.</p>");
        } else {
            b.push_str("<div class=\"scroll\">");
            b.push_str(&gantt_of(&detail, Utc::now()));
            b.push_str("</div>");
        }
        let _ = write!(
            b,
            "<h2>Tasks</h2><table class=\"tasks\"><thead><tr><th>Task</th><th>Kind</th><th>Version</th>{TASK_HEADERS}</tr></thead><tbody>"
        );
        for t in &detail.tasks {
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td>{}</tr>",
                link(&task_link(&t.task_id), &t.task_id),
                esc(&t.kind),
                t.version.map(|v| v.to_string()).unwrap_or_else(|| "–".into()),
                task_cells(t)
            );
        }
        b.push_str("</tbody></table>");
        if !detail.attempts.is_empty() {
            b.push_str("<h2>Attempts</h2><table class=\"attempts\"><thead><tr><th>Task</th><th>Attempt</th><th>Status</th><th>Started</th><th>Duration</th><th>Error class</th><th>Error</th></tr></thead><tbody>");
            for a in &detail.attempts {
                let _ = write!(
                    b,
                    "<tr><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td>{}</tr>",
                    esc(&a.task_id),
                    a.attempt,
                    badge(a.status.as_str()),
                    time(Some(a.started_at)),
                    opt_duration(secs_between(Some(a.started_at), a.finished_at)),
                    error_cells(a.error_class.as_deref(), a.error.as_deref())
                );
            }
            b.push_str("</tbody></table>");
        }
        if !detail.expectations.is_empty() {
            b.push_str("<h2>Expectations</h2><table class=\"expectations\"><thead><tr><th>Model</th><th>Expectation</th><th>Rule</th><th>On fail</th><th>Checked</th><th>Failed</th><th>Result</th></tr></thead><tbody>");
            for e in &detail.expectations {
                let _ = write!(
                    b,
                    "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                    link(&table_link(&e.model), &e.model),
                    esc(&e.expectation),
                    esc(&e.rule),
                    esc(&e.on_fail),
                    count(e.checked_rows),
                    count(e.failed_rows),
                    badge(if e.passed { "passed" } else { "failed" })
                );
            }
            b.push_str("</tbody></table>");
        }
        Ok(Page {
            refresh: run.status == RunStatus::Running,
            ..Page::new(format!("Run {}", run.run_id), b)
        })
    }
    .await;
    render(&s, Nav::Runs, page)
}

// ---- lineage ----

pub(crate) async fn lineage(State(s): State<AppState>) -> Response {
    let page = async {
        let d = dashboard(&s)?;
        let view = data::dag(&d).await?;
        let mut b = String::new();
        if let Some(e) = &view.error {
            let _ = write!(
                b,
                "<p class=\"error-box\">The project does not load: {}</p>",
                esc(e)
            );
        }
        b.push_str("<p class=\"legend\">Sources on the left, then each task after what it reads (bronze, silver, gold). Colour: last status; click a node for its table or task.");
        for st in ["succeeded", "failed", "running", "cancelled", "never"] {
            let _ = write!(b, " {}", badge(st));
        }
        b.push_str("</p><div class=\"scroll\">");
        b.push_str(&svg::lineage(&view));
        b.push_str("</div><h2>Tasks</h2><table class=\"nodes\"><thead><tr><th>Task</th><th>Kind</th><th>Layer</th><th>Depends on</th><th>Last status</th><th>Last run</th></tr></thead><tbody>");
        for n in &view.nodes {
            let deps: Vec<String> = n.deps.iter().map(|dep| link(&task_link(dep), dep)).collect();
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                link(&n.link, &n.id),
                esc(n.kind),
                esc(n.layer.as_deref().unwrap_or("–")),
                deps.join(", "),
                badge(n.last.as_ref().map(|l| l.status.as_str()).unwrap_or("never")),
                n.last
                    .as_ref()
                    .map(|l| link(&run_link(&l.run_id), &l.run_id))
                    .unwrap_or_else(|| "–".into())
            );
        }
        b.push_str("</tbody></table>");
        Ok(Page::new("Lineage", b))
    }
    .await;
    render(&s, Nav::Lineage, page)
}

// ---- tables ----

fn freshness(secs: Option<f64>) -> String {
    secs.map(|s| format!("{} ago", duration(s)))
        .unwrap_or_else(|| "–".into())
}

pub(crate) async fn tables(State(s): State<AppState>) -> Response {
    let page = async {
        let d = dashboard(&s)?;
        let rows = data::tables(&d).await?;
        let mut b = String::new();
        if rows.is_empty() {
            b.push_str("<p class=\"empty\">The lake has no tables yet: run the project.</p>");
        } else {
            b.push_str("<table class=\"tables\"><thead><tr><th>Table</th><th>Layer</th><th>Version</th><th>Rows</th><th>Files</th><th>Size</th><th>Last successful load</th><th>Freshness</th><th>Written by</th></tr></thead><tbody>");
            for t in &rows {
                let _ = write!(
                    b,
                    "<tr><td>{}{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    link(&t.link, &t.table),
                    if t.quarantine_of.is_some() {
                        " <span class=\"tag\">quarantine</span>"
                    } else {
                        ""
                    },
                    esc(&t.layer),
                    t.version,
                    opt_count(t.rows),
                    count(t.files as u64),
                    bytes(t.bytes),
                    time(t.last_success),
                    freshness(t.freshness_secs),
                    t.writer
                        .as_ref()
                        .map(|w| link(&task_link(w), w))
                        .unwrap_or_else(|| "–".into())
                );
            }
            b.push_str("</tbody></table>");
        }
        Ok(Page::new("Tables", b))
    }
    .await;
    render(&s, Nav::Tables, page)
}

fn sample_table(sample: &Sample, class: &str) -> String {
    let mut b = format!("<div class=\"scroll\"><table class=\"{class}\"><thead><tr>");
    for c in &sample.columns {
        let _ = write!(b, "<th>{}</th>", esc(c));
    }
    b.push_str("</tr></thead><tbody>");
    for row in &sample.rows {
        b.push_str("<tr>");
        for v in row {
            match v {
                Some(v) => {
                    let _ = write!(b, "<td>{}</td>", esc(v));
                }
                None => b.push_str("<td class=\"null\">NULL</td>"),
            }
        }
        b.push_str("</tr>");
    }
    b.push_str("</tbody></table></div>");
    if sample.rows.is_empty() {
        b.push_str("<p class=\"empty\">No rows.</p>");
    }
    b
}

pub(crate) async fn table(
    State(s): State<AppState>,
    Path((layer, name)): Path<(String, String)>,
    Query(q): Query<Limit>,
) -> Response {
    let page = async {
        let d = dashboard(&s)?;
        let t = data::table(&d, &layer, &name, q.limit).await?;
        let sample = data::sample(&d, &layer, &name, None, data::DEFAULT_SAMPLE).await?;
        let sm = &t.summary;
        let mut b = String::new();
        let _ = write!(
            b,
            "<dl class=\"summary\"><dt>Layer</dt><dd>{}</dd><dt>Version</dt><dd>{}</dd><dt>Rows</dt><dd>{}</dd>\
             <dt>Files</dt><dd>{}</dd><dt>Size</dt><dd>{}</dd><dt>Last commit</dt><dd>{}</dd>\
             <dt>Last successful load</dt><dd>{}</dd><dt>Freshness</dt><dd>{}</dd><dt>Written by</dt><dd>{}</dd>",
            esc(&sm.layer),
            sm.version,
            opt_count(sm.rows),
            count(sm.files as u64),
            bytes(sm.bytes),
            time(sm.committed_at),
            time(sm.last_success),
            freshness(sm.freshness_secs),
            sm.writer
                .as_ref()
                .map(|w| link(&task_link(w), w))
                .unwrap_or_else(|| "–".into())
        );
        if let Some(w) = &t.watermark {
            let value = serde_json::to_string(&w.value).unwrap_or_default();
            let _ = write!(
                b,
                "<dt>Watermark</dt><dd><code>{}</code> = <code>{}</code></dd>",
                esc(&w.column),
                esc(&value)
            );
        }
        if let Some(model) = &sm.quarantine_of {
            let _ = write!(
                b,
                "<dt>Quarantine of</dt><dd>{}</dd>",
                link(&table_link(model), model)
            );
        }
        if t.quarantine.is_some() {
            let model = format!("{}.{}", sm.layer, sm.name);
            let _ = write!(
                b,
                "<dt>Quarantined rows</dt><dd>{}</dd>",
                link(&quarantine_link(&model), "rows its expectations dropped")
            );
        }
        b.push_str("</dl><h2>Schema</h2><table class=\"schema\"><thead><tr><th>Column</th><th>Type</th><th>Nullable</th></tr></thead><tbody>");
        for c in &t.columns {
            let _ = write!(
                b,
                "<tr><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
                esc(&c.name),
                esc(&c.data_type),
                if c.nullable { "yes" } else { "no" }
            );
        }
        b.push_str("</tbody></table><h2>Delta history</h2><table class=\"history\"><thead><tr><th>Version</th><th>Committed</th><th>Operation</th><th>Rows added</th><th>Files added</th><th>Bytes added</th><th>Files removed</th><th>Run</th></tr></thead><tbody>");
        for c in &t.history {
            let _ = write!(
                b,
                "<tr><td class=\"num\">{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                c.version,
                time(c.timestamp_ms.and_then(DateTime::<Utc>::from_timestamp_millis)),
                esc(c.operation.as_deref().unwrap_or("–")),
                opt_count(c.rows_added),
                count(c.files_added),
                bytes(c.bytes_added),
                count(c.files_removed),
                c.run_id
                    .as_ref()
                    .map(|r| link(&run_link(r), r))
                    .unwrap_or_else(|| "–".into())
            );
        }
        let _ = write!(
            b,
            "</tbody></table><h2>Sample (first {} rows)</h2>",
            sample.rows.len()
        );
        b.push_str(&sample_table(&sample, "sample"));
        Ok(Page::new(format!("Table {layer}.{name}"), b))
    }
    .await;
    render(&s, Nav::Tables, page)
}

// ---- data quality ----

pub(crate) async fn quality(State(s): State<AppState>, Query(q): Query<Limit>) -> Response {
    let page = async {
        let d = dashboard(&s)?;
        let quality = data::quality(&d, q.limit).await?;
        let mut b = String::new();
        b.push_str("<h2>Quarantine</h2>");
        if quality.quarantine.is_empty() {
            b.push_str("<p class=\"empty\">No quarantine tables: no <code>drop</code> expectation has dropped rows.</p>");
        } else {
            b.push_str("<table class=\"quarantine\"><thead><tr><th>Model</th><th>Quarantine table</th><th>Rows</th><th></th></tr></thead><tbody>");
            for t in &quality.quarantine {
                let _ = write!(
                    b,
                    "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                    link(&table_link(&t.model), &t.model),
                    link(&table_link(&t.table), &t.table),
                    opt_count(t.rows),
                    link(&t.link, "show the rows")
                );
            }
            b.push_str("</tbody></table>");
        }
        b.push_str("<h2>Expectations over time</h2>");
        if quality.models.is_empty() {
            b.push_str("<p class=\"empty\">No expectation has been checked yet.</p>");
        }
        for m in &quality.models {
            let _ = write!(
                b,
                "<h3>{}</h3><p class=\"legend\">One cell per run, oldest left: {} {}</p><div class=\"scroll\">{}</div>",
                link(&table_link(&m.model), &m.model),
                badge("passed"),
                badge("failed"),
                svg::expectation_grid(&m.expectations)
            );
            b.push_str("<table class=\"expectations\"><thead><tr><th>Expectation</th><th>Rule</th><th>On fail</th><th>Checks</th><th>Failures</th><th>Failed rows</th><th>Latest</th></tr></thead><tbody>");
            for e in &m.expectations {
                let latest = e
                    .results
                    .last()
                    .map(|r| {
                        format!(
                            "{} {} of {} rows failed",
                            badge(if r.passed { "passed" } else { "failed" }),
                            count(r.failed_rows),
                            count(r.checked_rows)
                        )
                    })
                    .unwrap_or_default();
                let _ = write!(
                    b,
                    "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{latest}</td></tr>",
                    esc(&e.expectation),
                    esc(&e.rule),
                    esc(&e.on_fail),
                    count(e.checks),
                    count(e.failures),
                    count(e.failed_rows)
                );
            }
            b.push_str("</tbody></table>");
        }
        Ok(Page::new("Data quality", b))
    }
    .await;
    render(&s, Nav::Quality, page)
}

pub(crate) async fn quarantine(
    State(s): State<AppState>,
    Path((layer, name)): Path<(String, String)>,
    Query(q): Query<Limit>,
) -> Response {
    let page = async {
        let d = dashboard(&s)?;
        let rows = data::quarantine_rows(&d, &layer, &name, q.limit).await?;
        let model = format!("{layer}.{name}");
        let mut b = format!(
            "<p>Rows that <code>drop</code> expectations of {} kept out of the table, with the expectation that dropped them and the run that did (first {} rows; <code>?limit=</code> for more).</p>",
            link(&table_link(&model), &model),
            rows.rows.len()
        );
        b.push_str(&sample_table(&rows, "quarantine-rows"));
        Ok(Page::new(format!("Quarantined rows of {model}"), b))
    }
    .await;
    render(&s, Nav::Quality, page)
}

// ---- tasks and trends ----

fn charts(trend: &TaskTrend) -> String {
    let when = |p: &data::TrendPoint| {
        p.started_at
            .map(|t| t.format("%m-%d %H:%M").to_string())
            .unwrap_or_default()
    };
    let durations: Vec<svg::Point> = trend
        .points
        .iter()
        .map(|p| svg::Point {
            run_id: p.run_id.clone(),
            when: when(p),
            value: p.duration_secs,
            status: p.status.as_str().to_string(),
        })
        .collect();
    let rows: Vec<svg::Point> = trend
        .points
        .iter()
        .map(|p| svg::Point {
            run_id: p.run_id.clone(),
            when: when(p),
            value: p.rows.map(|r| r as f64),
            status: p.status.as_str().to_string(),
        })
        .collect();
    format!(
        "<div class=\"charts\">{}{}</div>",
        svg::line_chart("Duration", &durations, &duration),
        svg::line_chart("Rows written", &rows, &|v| count(v.round().max(0.0) as u64))
    )
}

pub(crate) async fn task(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<Limit>,
) -> Response {
    let page = async {
        let d = dashboard(&s)?;
        let h = data::task_history(&d, &id, q.limit).await?;
        let mut b = String::new();
        match &h.node {
            Some(n) => {
                let deps: Vec<String> =
                    n.deps.iter().map(|dep| link(&task_link(dep), dep)).collect();
                let _ = write!(
                    b,
                    "<dl class=\"summary\"><dt>Kind</dt><dd>{}</dd><dt>Layer</dt><dd>{}</dd><dt>Depends on</dt><dd>{}</dd><dt>Last status</dt><dd>{}</dd>",
                    esc(n.kind),
                    esc(n.layer.as_deref().unwrap_or("–")),
                    if deps.is_empty() { "–".to_string() } else { deps.join(", ") },
                    badge(n.last.as_ref().map(|l| l.status.as_str()).unwrap_or("never"))
                );
                if let Some(w) = &n.writes {
                    let _ = write!(b, "<dt>Writes</dt><dd>{}</dd>", link(&table_link(w), w));
                }
                if let Some(c) = &n.connection {
                    let _ = write!(b, "<dt>Connection</dt><dd>{}</dd>", esc(c));
                }
                if let Some(desc) = &n.description {
                    let _ = write!(b, "<dt>Description</dt><dd>{}</dd>", esc(desc));
                }
                b.push_str("</dl>");
            }
            None => b.push_str("<p class=\"empty\">This task is no longer in the DAG; its history remains.</p>"),
        }
        let trend = TaskTrend {
            task_id: h.task_id.clone(),
            kind: h.node.as_ref().map(|n| n.kind.to_string()).unwrap_or_default(),
            points: trend_points(&h.records),
        };
        b.push_str(&charts(&trend));
        let _ = write!(
            b,
            "<h2>History</h2><table class=\"task-history\"><thead><tr><th>Run</th>{TASK_HEADERS}</tr></thead><tbody>"
        );
        for t in &h.records {
            let _ = write!(
                b,
                "<tr><td>{}</td>{}</tr>",
                link(&run_link(&t.run_id), &t.run_id),
                task_cells(t)
            );
        }
        b.push_str("</tbody></table>");
        let refresh = h
            .records
            .first()
            .is_some_and(|t| t.status == TaskStatus::Running);
        Ok(Page {
            refresh,
            ..Page::new(format!("Task {id}"), b)
        })
    }
    .await;
    render(&s, Nav::Lineage, page)
}

pub(crate) async fn trends(State(s): State<AppState>, Query(q): Query<Limit>) -> Response {
    let page = async {
        let d = dashboard(&s)?;
        let trends = data::trends(&d, q.limit).await?;
        let mut b = String::from(
            "<p class=\"legend\">Duration and rows written of each task across its latest runs (oldest left); a point's colour is the task's status, click it for the run.</p>",
        );
        if trends.is_empty() {
            b.push_str("<p class=\"empty\">No tasks.</p>");
        }
        for t in &trends {
            let _ = write!(
                b,
                "<section class=\"trend\"><h2>{} <span class=\"tag\">{}</span></h2>{}</section>",
                link(&task_link(&t.task_id), &t.task_id),
                esc(&t.kind),
                charts(t)
            );
        }
        Ok(Page::new("Trends", b))
    }
    .await;
    render(&s, Nav::Trends, page)
}

// ---- assets ----

pub(crate) async fn css() -> Response {
    (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../assets/app.css"),
    )
        .into_response()
}

pub(crate) async fn js() -> Response {
    (
        StatusCode::OK,
        [(
            axum::http::header::CONTENT_TYPE,
            "text/javascript; charset=utf-8",
        )],
        include_str!("../../assets/app.js"),
    )
        .into_response()
}
