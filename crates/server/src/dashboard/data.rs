//! What the dashboard shows, gathered from the state store, the DAG and the lake: one function
//! per page, each returning the document its JSON route sends and its page renders.

use std::collections::{BTreeMap, BTreeSet};

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tributary_lake::{ColumnInfo, CommitEntry, DeltaTable, Sample, Watermark};
use tributary_orchestrator::dag::Dag;
use tributary_orchestrator::state::{
    ExpectationRecord, RunDetail, RunFilter, RunStatus, RunSummary, StateError, TaskRecord,
    TaskStatus,
};

use super::Dashboard;

/// Runs listed when no `limit` is given, and the most one request may ask for.
pub(crate) const DEFAULT_RUNS: usize = 50;
const MAX_RUNS: usize = 1000;
/// Rows of a table sample by default, and at most.
pub(crate) const DEFAULT_SAMPLE: usize = 20;
const MAX_SAMPLE: usize = 1000;
/// Rows of a quarantine table shown by default.
pub(crate) const DEFAULT_QUARANTINE: usize = 100;
/// Delta commits shown per table by default, and at most.
pub(crate) const DEFAULT_HISTORY: usize = 50;
const MAX_HISTORY: usize = 1000;
/// Records per task (history, trends) and results per expectation, by default and at most.
pub(crate) const DEFAULT_POINTS: usize = 30;
const MAX_POINTS: usize = 1000;

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

// ---- tables ----

/// One table of the lake.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TableRow {
    /// `layer.name`.
    pub(crate) table: String,
    pub(crate) layer: String,
    pub(crate) name: String,
    pub(crate) version: u64,
    pub(crate) rows: Option<u64>,
    pub(crate) files: usize,
    pub(crate) bytes: u64,
    /// When its current version was committed.
    pub(crate) committed_at: Option<DateTime<Utc>>,
    /// The task that writes it (per the DAG; the table's name for loads and models).
    pub(crate) writer: Option<String>,
    /// When that task last succeeded (run history).
    pub(crate) last_success: Option<DateTime<Utc>>,
    /// Seconds since the last successful load (or, without one in the history, since the
    /// current version was committed).
    pub(crate) freshness_secs: Option<f64>,
    /// For `<layer>._quarantine_<name>`: the model `<layer>.<name>` whose dropped rows it holds.
    pub(crate) quarantine_of: Option<String>,
    pub(crate) link: String,
}

/// The task writing each table: the DAG's `writes`, else the table's own name (loads and
/// models are named after their table).
async fn writers(d: &Dashboard) -> BTreeMap<String, String> {
    match d.dag().await {
        Ok(dag) => dag
            .tasks()
            .filter_map(|t| Some((t.writes.clone()?, t.id.clone())))
            .collect(),
        Err(_) => BTreeMap::new(),
    }
}

fn ms_to_time(ms: Option<i64>) -> Option<DateTime<Utc>> {
    ms.and_then(DateTime::<Utc>::from_timestamp_millis)
}

/// Seconds from `t` to now.
pub(crate) fn age_secs(t: DateTime<Utc>, now: DateTime<Utc>) -> f64 {
    (now - t).num_milliseconds().max(0) as f64 / 1000.0
}

pub(crate) fn quarantine_of(layer: &str, name: &str) -> Option<String> {
    name.strip_prefix("_quarantine_")
        .map(|model| format!("{layer}.{model}"))
}

fn table_row(
    info: &tributary_lake::TableInfo,
    writers: &BTreeMap<String, String>,
    last_success: &BTreeMap<String, DateTime<Utc>>,
    now: DateTime<Utc>,
) -> TableRow {
    let table = format!("{}.{}", info.layer, info.name);
    let writer = writers
        .get(&table)
        .cloned()
        .or_else(|| last_success.contains_key(&table).then(|| table.clone()));
    let last = writer.as_ref().and_then(|w| last_success.get(w)).copied();
    let committed_at = ms_to_time(info.committed_at_ms);
    TableRow {
        link: table_link(&table),
        quarantine_of: quarantine_of(&info.layer, &info.name),
        layer: info.layer.clone(),
        name: info.name.clone(),
        version: info.version,
        rows: info.rows,
        files: info.files,
        bytes: info.bytes,
        committed_at,
        writer,
        last_success: last,
        freshness_secs: last.or(committed_at).map(|t| age_secs(t, now)),
        table,
    }
}

async fn last_successes(d: &Dashboard) -> Result<BTreeMap<String, DateTime<Utc>>> {
    Ok(d.state()
        .task_totals()
        .await
        .map_err(d.state_err("task totals"))?
        .into_iter()
        .filter_map(|t| Some((t.task_id, t.last_success?)))
        .collect())
}

pub(crate) async fn tables(d: &Dashboard) -> Result<Vec<TableRow>> {
    let infos = d.lake().tables().await.map_err(d.lake_err("the tables"))?;
    let writers = writers(d).await;
    let last = last_successes(d).await?;
    let now = Utc::now();
    Ok(infos
        .iter()
        .map(|i| table_row(i, &writers, &last, now))
        .collect())
}

/// One table in detail.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TableDetail {
    #[serde(flatten)]
    pub(crate) summary: TableRow,
    pub(crate) columns: Vec<ColumnInfo>,
    /// Newest first.
    pub(crate) history: Vec<CommitEntry>,
    pub(crate) watermark: Option<Watermark>,
    /// Its quarantine table (`<layer>._quarantine_<name>`), if it has one.
    pub(crate) quarantine: Option<String>,
}

fn check_name(what: &str, s: &str) -> Result<()> {
    let ok = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(DataError::bad_request(format!(
            "`{}` is not a valid {what} name (letters, digits, `_` and `-`)",
            s.chars().take(100).collect::<String>()
        )))
    }
}

async fn open_table(d: &Dashboard, layer: &str, name: &str) -> Result<DeltaTable> {
    check_name("layer", layer)?;
    check_name("table", name)?;
    d.lake()
        .open(layer, name)
        .await
        .map_err(d.lake_err(&format!("table {layer}.{name}")))?
        .ok_or_else(|| DataError::not_found(format!("no table {layer}.{name} in the lake")))
}

pub(crate) async fn table(
    d: &Dashboard,
    layer: &str,
    name: &str,
    history_limit: Option<usize>,
) -> Result<TableDetail> {
    let t = open_table(d, layer, name).await?;
    let table_name = format!("{layer}.{name}");
    let info = tributary_lake::table_info(layer, name, &t).map_err(d.lake_err(&table_name))?;
    let columns = tributary_lake::columns(&table_name, &t).map_err(d.lake_err(&table_name))?;
    let history = d
        .lake()
        .history(
            layer,
            name,
            &t,
            clamp(history_limit, DEFAULT_HISTORY, MAX_HISTORY),
        )
        .await
        .map_err(d.lake_err(&table_name))?;
    let writers = writers(d).await;
    let last = last_successes(d).await?;
    let quarantine = if quarantine_of(layer, name).is_none() {
        let q = format!("_quarantine_{name}");
        d.lake()
            .open(layer, &q)
            .await
            .ok()
            .flatten()
            .map(|_| format!("{layer}.{q}"))
    } else {
        None
    };
    Ok(TableDetail {
        summary: table_row(&info, &writers, &last, Utc::now()),
        columns,
        history,
        watermark: info.watermark.clone(),
        quarantine,
    })
}

pub(crate) async fn sample(
    d: &Dashboard,
    layer: &str,
    name: &str,
    limit: Option<usize>,
    default: usize,
) -> Result<Sample> {
    let t = open_table(d, layer, name).await?;
    let mut sample = d
        .lake()
        .sample(layer, name, &t, clamp(limit, default, MAX_SAMPLE))
        .await
        .map_err(d.lake_err(&format!("rows of {layer}.{name}")))?;
    for v in sample.rows.iter_mut().flatten().flatten() {
        *v = d.scrub(v);
    }
    Ok(sample)
}

// ---- data quality ----

/// One check of an expectation.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ExpectationPoint {
    pub(crate) run_id: String,
    pub(crate) recorded_at: DateTime<Utc>,
    pub(crate) passed: bool,
    pub(crate) checked_rows: u64,
    pub(crate) failed_rows: u64,
}

/// An expectation's results over time.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ExpectationSeries {
    pub(crate) expectation: String,
    pub(crate) rule: String,
    pub(crate) on_fail: String,
    /// Runs that checked it (all history).
    pub(crate) checks: u64,
    /// Runs in which it failed (all history).
    pub(crate) failures: u64,
    /// Failing rows, summed (all history).
    pub(crate) failed_rows: u64,
    /// The latest results, oldest first.
    pub(crate) results: Vec<ExpectationPoint>,
}

/// A model's expectations.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ModelQuality {
    pub(crate) model: String,
    pub(crate) expectations: Vec<ExpectationSeries>,
}

/// A quarantine table: rows `drop` expectations kept out of a model.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct QuarantineTable {
    pub(crate) model: String,
    pub(crate) table: String,
    pub(crate) rows: Option<u64>,
    /// The page listing its rows.
    pub(crate) link: String,
}

/// Expectation results per model, and the quarantine tables.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Quality {
    pub(crate) models: Vec<ModelQuality>,
    pub(crate) quarantine: Vec<QuarantineTable>,
}

pub(crate) fn quarantine_link(model: &str) -> String {
    match split_table(model) {
        Some((l, n)) => format!("/quality/quarantine/{}/{}", seg(l), seg(n)),
        None => format!("/quality/quarantine/{}", seg(model)),
    }
}

pub(crate) async fn quality(d: &Dashboard, points: Option<usize>) -> Result<Quality> {
    let points = clamp(points, DEFAULT_POINTS, MAX_POINTS);
    let counts = d
        .state()
        .expectation_counts()
        .await
        .map_err(d.state_err("expectation counts"))?;
    let mut per_model: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for c in counts {
        per_model.entry(c.model.clone()).or_default().push(c);
    }
    let mut models = Vec::new();
    for (model, counts) in per_model {
        let history = d
            .state()
            .expectation_history(Some(&model), points * counts.len())
            .await
            .map_err(d.state_err("expectation results"))?;
        let mut by_name: BTreeMap<String, Vec<ExpectationRecord>> = BTreeMap::new();
        for r in history {
            by_name.entry(r.expectation.clone()).or_default().push(r);
        }
        let expectations = counts
            .into_iter()
            .map(|c| {
                let mut records = by_name.remove(&c.expectation).unwrap_or_default();
                records.truncate(points);
                records.reverse();
                let latest = records.last();
                ExpectationSeries {
                    rule: latest.map(|r| d.scrub(&r.rule)).unwrap_or_default(),
                    on_fail: latest.map(|r| r.on_fail.clone()).unwrap_or_default(),
                    checks: c.checks,
                    failures: c.failures,
                    failed_rows: c.failed_rows,
                    results: records
                        .iter()
                        .map(|r| ExpectationPoint {
                            run_id: r.run_id.clone(),
                            recorded_at: r.recorded_at,
                            passed: r.passed,
                            checked_rows: r.checked_rows,
                            failed_rows: r.failed_rows,
                        })
                        .collect(),
                    expectation: c.expectation,
                }
            })
            .collect();
        models.push(ModelQuality {
            model,
            expectations,
        });
    }
    let quarantine = d
        .lake()
        .tables()
        .await
        .map_err(d.lake_err("the tables"))?
        .into_iter()
        .filter_map(|i| {
            let model = quarantine_of(&i.layer, &i.name)?;
            Some(QuarantineTable {
                link: quarantine_link(&model),
                table: format!("{}.{}", i.layer, i.name),
                rows: i.rows,
                model,
            })
        })
        .collect();
    Ok(Quality { models, quarantine })
}

pub(crate) async fn quarantine_rows(
    d: &Dashboard,
    layer: &str,
    model: &str,
    limit: Option<usize>,
) -> Result<Sample> {
    check_name("model", model)?;
    sample(
        d,
        layer,
        &format!("_quarantine_{model}"),
        limit,
        DEFAULT_QUARANTINE,
    )
    .await
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
        assert_eq!(
            quarantine_link("silver.orders"),
            "/quality/quarantine/silver/orders"
        );
        assert_eq!(
            quarantine_of("silver", "_quarantine_orders").as_deref(),
            Some("silver.orders")
        );
        assert_eq!(quarantine_of("silver", "orders"), None);
        assert!(check_name("table", "../etc").is_err());
        assert!(check_name("table", "erp_orders").is_ok());
    }
}
