//! What the dashboard shows, gathered from the state store, the DAG and the lake: one function
//! per page, each returning the document its JSON route sends and its page renders. The runs,
//! the DAG and the tasks are here; the lake's tables and data quality in [`lake`].

use std::collections::{BTreeMap, BTreeSet};

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tributary_orchestrator::dag::Dag;
use tributary_orchestrator::state::{
    RunDetail, RunFilter, RunStatus, RunSummary, StateError, TaskRecord, TaskStatus,
};

use super::Dashboard;

pub(crate) mod lake;

pub(crate) use lake::{
    DEFAULT_SAMPLE, ExpectationSeries, age_secs, quality, quarantine_link, quarantine_of,
    quarantine_rows, sample, table, tables,
};

/// Runs listed when no `limit` is given, and the most one request may ask for.
pub(crate) const DEFAULT_RUNS: usize = 50;
const MAX_RUNS: usize = 1000;
/// Records per task (history, trends) and results per expectation, by default and at most.
pub(crate) const DEFAULT_POINTS: usize = 30;
pub(crate) const MAX_POINTS: usize = 1000;

/// Why a request could not be answered: a status and a message for the user (no secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DataError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl DataError {
    pub(crate) fn not_found(message: impl Into<String>) -> DataError {
        DataError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> DataError {
        DataError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    pub(crate) fn unavailable(message: impl Into<String>) -> DataError {
        DataError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: message.into(),
        }
    }
}

pub(crate) type Result<T> = std::result::Result<T, DataError>;

impl Dashboard {
    fn state_err(&self, what: &str) -> impl FnOnce(StateError) -> DataError + '_ {
        let what = what.to_string();
        move |e| DataError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: self.scrub(&format!("cannot read {what} from the run history: {e}")),
        }
    }

    fn lake_err(&self, what: &str) -> impl FnOnce(tributary_lake::LakeError) -> DataError + '_ {
        let what = what.to_string();
        move |e| DataError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: self.scrub(&format!("cannot read {what} from the lake: {e}")),
        }
    }
}

/// `limit` within `1..=max`, `default` when not given.
fn clamp(limit: Option<usize>, default: usize, max: usize) -> usize {
    limit.unwrap_or(default).clamp(1, max)
}

/// An empty query parameter (a form's empty field) counts as none.
fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

// ---- runs ----

/// `GET /api/runs` and `/runs`: which runs.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct RunsQuery {
    /// `running`, `succeeded`, `failed`, `cancelled` or `abandoned`.
    pub(crate) status: Option<String>,
    /// Only runs that include this task.
    pub(crate) task: Option<String>,
    /// Only runs with this trigger.
    pub(crate) trigger: Option<String>,
    /// At most this many, newest first.
    pub(crate) limit: Option<usize>,
}

/// The runs, newest first, and the filter that chose them.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RunList {
    pub(crate) runs: Vec<RunSummary>,
    pub(crate) limit: usize,
    pub(crate) status: Option<String>,
    pub(crate) task: Option<String>,
    pub(crate) trigger: Option<String>,
}

pub(crate) async fn runs(d: &Dashboard, q: &RunsQuery) -> Result<RunList> {
    let status = match non_empty(&q.status) {
        None => None,
        Some(s) => Some(RunStatus::parse(&s).ok_or_else(|| {
            DataError::bad_request(format!(
                "unknown status `{}`; use running, succeeded, failed, cancelled or abandoned",
                d.scrub(&s)
            ))
        })?),
    };
    let limit = clamp(q.limit, DEFAULT_RUNS, MAX_RUNS);
    let filter = RunFilter {
        limit,
        status,
        task: non_empty(&q.task),
        trigger: non_empty(&q.trigger),
    };
    let mut runs = d
        .state()
        .list_runs(&filter)
        .await
        .map_err(d.state_err("runs"))?;
    for r in &mut runs {
        d.scrub_opt(&mut r.run.error);
    }
    Ok(RunList {
        runs,
        limit,
        status: status.map(|s| s.as_str().to_string()),
        task: filter.task,
        trigger: filter.trigger,
    })
}

pub(crate) async fn run(d: &Dashboard, id: &str) -> Result<RunDetail> {
    let detail = d
        .state()
        .get_run(id)
        .await
        .map_err(|e| match e {
            StateError::AmbiguousRunId { .. } => DataError::bad_request(d.scrub(&e.to_string())),
            e => d.state_err("the run")(e),
        })?
        .ok_or_else(|| DataError::not_found(format!("no run `{}`", d.scrub(id))))?;
    Ok(scrub_detail(d, detail))
}

fn scrub_detail(d: &Dashboard, mut detail: RunDetail) -> RunDetail {
    d.scrub_opt(&mut detail.run.run.error);
    for t in &mut detail.tasks {
        scrub_task(d, t);
    }
    for a in &mut detail.attempts {
        d.scrub_opt(&mut a.error);
    }
    for e in &mut detail.expectations {
        e.rule = d.scrub(&e.rule);
    }
    detail
}

fn scrub_task(d: &Dashboard, t: &mut TaskRecord) {
    d.scrub_opt(&mut t.error);
    d.scrub_json(&mut t.detail);
}

// ---- DAG ----

/// The latest record of a task that did something.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LastRun {
    pub(crate) status: TaskStatus,
    pub(crate) run_id: String,
    pub(crate) started_at: Option<DateTime<Utc>>,
    pub(crate) finished_at: Option<DateTime<Utc>>,
    pub(crate) error_class: Option<String>,
}

/// One task of the lineage.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DagNode {
    pub(crate) id: String,
    pub(crate) kind: &'static str,
    pub(crate) layer: Option<String>,
    pub(crate) writes: Option<String>,
    pub(crate) connection: Option<String>,
    pub(crate) deps: Vec<String>,
    pub(crate) description: Option<String>,
    /// Column of the lineage drawing: 1 + the deepest dependency (sources are 0).
    pub(crate) depth: usize,
    pub(crate) last: Option<LastRun>,
    /// The node's page: its table's when the table exists, else the task's.
    pub(crate) link: String,
}

/// A source connection feeding load tasks.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SourceNode {
    pub(crate) id: String,
    pub(crate) connection: String,
}

/// An edge of the lineage, `from` upstream.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Edge {
    pub(crate) from: String,
    pub(crate) to: String,
}

/// The lineage: sources, tasks and the edges between them; `error` when the project does not
/// load.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DagView {
    pub(crate) sources: Vec<SourceNode>,
    pub(crate) nodes: Vec<DagNode>,
    pub(crate) edges: Vec<Edge>,
    pub(crate) error: Option<String>,
}

/// A path segment, percent-encoded (task ids and table names are plain, but be safe).
pub(crate) fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `layer.name` → (`layer`, `name`).
pub(crate) fn split_table(table: &str) -> Option<(&str, &str)> {
    table.split_once('.')
}

/// The page of a table.
pub(crate) fn table_link(table: &str) -> String {
    match split_table(table) {
        Some((l, n)) => format!("/tables/{}/{}", seg(l), seg(n)),
        None => format!("/tables/{}", seg(table)),
    }
}

/// The page of a task.
pub(crate) fn task_link(id: &str) -> String {
    format!("/tasks/{}", seg(id))
}

/// The page of a run.
pub(crate) fn run_link(id: &str) -> String {
    format!("/runs/{}", seg(id))
}

fn last_run(t: &TaskRecord) -> LastRun {
    LastRun {
        status: t.status,
        run_id: t.run_id.clone(),
        started_at: t.started_at,
        finished_at: t.finished_at,
        error_class: t.error_class.clone(),
    }
}

pub(crate) async fn dag(d: &Dashboard) -> Result<DagView> {
    let dag = match d.dag().await {
        Ok(dag) => dag,
        Err(e) => {
            return Ok(DagView {
                sources: vec![],
                nodes: vec![],
                edges: vec![],
                error: Some(e),
            });
        }
    };
    let latest: BTreeMap<String, TaskRecord> = d
        .state()
        .latest_tasks()
        .await
        .map_err(d.state_err("the latest task runs"))?
        .into_iter()
        .map(|t| (t.task_id.clone(), t))
        .collect();
    let existing: BTreeSet<String> = d
        .lake()
        .table_names()
        .await
        .map_err(d.lake_err("the table list"))?
        .into_iter()
        .map(|(l, n)| format!("{l}.{n}"))
        .collect();
    Ok(dag_view(d, &dag, &latest, &existing))
}

fn dag_view(
    d: &Dashboard,
    dag: &Dag,
    latest: &BTreeMap<String, TaskRecord>,
    existing: &BTreeSet<String>,
) -> DagView {
    let mut depth: BTreeMap<String, usize> = BTreeMap::new();
    let mut sources: BTreeSet<String> = BTreeSet::new();
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    // Topological order: every dependency's depth is known before its dependents'.
    for t in dag.tasks() {
        let level = 1 + t
            .deps
            .iter()
            .filter_map(|dep| depth.get(dep))
            .max()
            .copied()
            .unwrap_or(0);
        depth.insert(t.id.clone(), level);
        if let Some(c) = &t.connection {
            sources.insert(c.clone());
            edges.push(Edge {
                from: format!("source:{c}"),
                to: t.id.clone(),
            });
        }
        for dep in &t.deps {
            edges.push(Edge {
                from: dep.clone(),
                to: t.id.clone(),
            });
        }
        let link = match &t.writes {
            Some(w) if existing.contains(w) => table_link(w),
            _ => task_link(&t.id),
        };
        nodes.push(DagNode {
            id: t.id.clone(),
            kind: t.kind.as_str(),
            layer: t.layer().map(str::to_string),
            writes: t.writes.clone(),
            connection: t.connection.clone(),
            deps: t.deps.iter().cloned().collect(),
            description: t.description.as_deref().map(|s| d.scrub(s)),
            depth: level,
            last: latest.get(&t.id).map(last_run),
            link,
        });
    }
    DagView {
        sources: sources
            .into_iter()
            .map(|c| SourceNode {
                id: format!("source:{c}"),
                connection: c,
            })
            .collect(),
        nodes,
        edges,
        error: None,
    }
}

// ---- tasks and trends ----

/// A task's records across runs.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TaskHistory {
    pub(crate) task_id: String,
    /// The task as the DAG defines it now (none when it left the DAG).
    pub(crate) node: Option<DagNode>,
    /// Newest first.
    pub(crate) records: Vec<TaskRecord>,
}

pub(crate) async fn task_history(
    d: &Dashboard,
    id: &str,
    limit: Option<usize>,
) -> Result<TaskHistory> {
    let mut records = d
        .state()
        .task_history(id, clamp(limit, DEFAULT_POINTS, MAX_POINTS))
        .await
        .map_err(d.state_err("the task's history"))?;
    for r in &mut records {
        scrub_task(d, r);
    }
    let node = match d.dag().await {
        Ok(dag) if dag.get(id).is_some() => {
            let view = dag_view(d, &dag, &BTreeMap::new(), &BTreeSet::new());
            view.nodes.into_iter().find(|n| n.id == id)
        }
        _ => None,
    };
    if node.is_none() && records.is_empty() {
        return Err(DataError::not_found(format!(
            "no task `{}` in the DAG or the run history",
            d.scrub(id)
        )));
    }
    let mut node = node;
    if let (Some(n), Some(latest)) = (
        node.as_mut(),
        records
            .iter()
            .find(|r| !matches!(r.status, TaskStatus::Pending | TaskStatus::Skipped)),
    ) {
        n.last = Some(last_run(latest));
    }
    Ok(TaskHistory {
        task_id: id.to_string(),
        node,
        records,
    })
}

/// One record of a task, for its charts.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TrendPoint {
    pub(crate) run_id: String,
    pub(crate) started_at: Option<DateTime<Utc>>,
    pub(crate) status: TaskStatus,
    pub(crate) duration_secs: Option<f64>,
    pub(crate) rows: Option<u64>,
    pub(crate) bytes: Option<u64>,
}

/// A task's durations and row counts across runs.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TaskTrend {
    pub(crate) task_id: String,
    pub(crate) kind: String,
    /// Oldest first; records that never started are left out.
    pub(crate) points: Vec<TrendPoint>,
}

pub(crate) fn trend_points(records: &[TaskRecord]) -> Vec<TrendPoint> {
    records
        .iter()
        .rev()
        .filter(|r| r.started_at.is_some())
        .map(|r| TrendPoint {
            run_id: r.run_id.clone(),
            started_at: r.started_at,
            status: r.status,
            duration_secs: match (r.started_at, r.finished_at) {
                (Some(s), Some(f)) => {
                    Some((f - s).num_microseconds().unwrap_or(0).max(0) as f64 / 1e6)
                }
                _ => None,
            },
            rows: r.rows,
            bytes: r.bytes,
        })
        .collect()
}

/// The tasks to chart: the DAG's, else (the project does not load) those in the history.
async fn task_ids(d: &Dashboard) -> Result<Vec<(String, String)>> {
    match d.dag().await {
        Ok(dag) => Ok(dag
            .tasks()
            .map(|t| (t.id.clone(), t.kind.as_str().to_string()))
            .collect()),
        Err(_) => Ok(d
            .state()
            .latest_tasks()
            .await
            .map_err(d.state_err("tasks"))?
            .into_iter()
            .map(|t| (t.task_id, t.kind))
            .collect()),
    }
}

pub(crate) async fn trends(d: &Dashboard, limit: Option<usize>) -> Result<Vec<TaskTrend>> {
    let limit = clamp(limit, DEFAULT_POINTS, MAX_POINTS);
    let mut out = Vec::new();
    for (id, kind) in task_ids(d).await? {
        let records = d
            .state()
            .task_history(&id, limit)
            .await
            .map_err(d.state_err("task history"))?;
        out.push(TaskTrend {
            points: trend_points(&records),
            task_id: id,
            kind,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_and_links() {
        assert_eq!(seg("silver.orders"), "silver.orders");
        assert_eq!(seg("a b/<c>"), "a%20b%2F%3Cc%3E");
        assert_eq!(table_link("silver.orders"), "/tables/silver/orders");
    }
}
