//! The DAG's tasks: the lineage (`/lineage`), one task (`/tasks/{id}`) and every task's
//! trends (`/trends`): `lineage.html`, `task.html`, `trends.html`.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use minijinja::Value;
use serde::Serialize;
use tributary_orchestrator::state::TaskStatus;

use super::{Link, Page, TaskCells, link, render, task_cells};
use crate::AppState;
use crate::dashboard::data::{
    self, DagNode, TaskTrend, run_link, table_link, task_link, trend_points,
};
use crate::dashboard::format::{count, duration};
use crate::dashboard::json::{Limit, dashboard};
use crate::dashboard::svg;
use crate::dashboard::templates::{Nav, markup};

/// The last status of a node, `never` when it has not run.
fn last_status(n: &DagNode) -> &'static str {
    n.last
        .as_ref()
        .map(|l| l.status.as_str())
        .unwrap_or("never")
}

fn dep_links(n: &DagNode) -> Vec<Link> {
    n.deps.iter().map(|dep| link(task_link(dep), dep)).collect()
}

/// What `lineage.html` shows.
#[derive(Serialize)]
struct LineageView {
    /// Why the project does not load, if it does not.
    error: Option<String>,
    drawing: Value,
    nodes: Vec<NodeRow>,
}

#[derive(Serialize)]
struct NodeRow {
    link: Link,
    kind: &'static str,
    layer: String,
    deps: Vec<Link>,
    status: &'static str,
    last_run: Option<Link>,
}

pub(crate) async fn lineage(State(s): State<AppState>) -> Response {
    let page = async {
        let d = dashboard(&s)?;
        let view = data::dag(&d).await?;
        let page = LineageView {
            error: view.error.clone(),
            drawing: markup(svg::lineage(&view)),
            nodes: view
                .nodes
                .iter()
                .map(|n| NodeRow {
                    link: link(&n.link, &n.id),
                    kind: n.kind,
                    layer: n.layer.clone().unwrap_or_else(|| "–".into()),
                    deps: dep_links(n),
                    status: last_status(n),
                    last_run: n
                        .last
                        .as_ref()
                        .map(|l| link(run_link(&l.run_id), &l.run_id)),
                })
                .collect(),
        };
        Ok(Page::new("Lineage", "lineage.html", &page))
    }
    .await;
    render(&s, Nav::Lineage, page)
}

/// A task's charts (`charts` in `macros.html`).
#[derive(Serialize)]
struct Charts {
    duration: Value,
    rows: Value,
}

fn charts(trend: &TaskTrend) -> Charts {
    let when = |p: &data::TrendPoint| {
        p.started_at
            .map(|t| t.format("%m-%d %H:%M").to_string())
            .unwrap_or_default()
    };
    // One chart point per record, `value` of it charted.
    let points = |value: fn(&data::TrendPoint) -> Option<f64>| -> Vec<svg::Point> {
        trend
            .points
            .iter()
            .map(|p| svg::Point {
                run_id: p.run_id.clone(),
                when: when(p),
                value: value(p),
                status: p.status.as_str().to_string(),
            })
            .collect()
    };
    let durations = points(|p| p.duration_secs);
    let rows = points(|p| p.rows.map(|r| r as f64));
    Charts {
        duration: markup(svg::line_chart("Duration", &durations, &duration)),
        rows: markup(svg::line_chart("Rows written", &rows, &|v| {
            count(v.round().max(0.0) as u64)
        })),
    }
}

/// What `task.html` shows.
#[derive(Serialize)]
struct TaskView {
    /// The task as the DAG defines it (none when it left the DAG).
    node: Option<NodeView>,
    charts: Charts,
    records: Vec<RecordRow>,
}

#[derive(Serialize)]
struct NodeView {
    kind: &'static str,
    layer: String,
    deps: Vec<Link>,
    status: &'static str,
    writes: Option<Link>,
    connection: Option<String>,
    description: Option<String>,
}

#[derive(Serialize)]
struct RecordRow {
    run: Link,
    cells: TaskCells,
}

pub(crate) async fn task(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<Limit>,
) -> Response {
    let page = async {
        let d = dashboard(&s)?;
        let h = data::task_history(&d, &id, q.limit).await?;
        let trend = TaskTrend {
            task_id: h.task_id.clone(),
            kind: h
                .node
                .as_ref()
                .map(|n| n.kind.to_string())
                .unwrap_or_default(),
            points: trend_points(&h.records),
        };
        let view = TaskView {
            node: h.node.as_ref().map(|n| NodeView {
                kind: n.kind,
                layer: n.layer.clone().unwrap_or_else(|| "–".into()),
                deps: dep_links(n),
                status: last_status(n),
                writes: n.writes.as_ref().map(|w| link(table_link(w), w)),
                connection: n.connection.clone(),
                description: n.description.clone(),
            }),
            charts: charts(&trend),
            records: h
                .records
                .iter()
                .map(|t| RecordRow {
                    run: link(run_link(&t.run_id), &t.run_id),
                    cells: task_cells(t),
                })
                .collect(),
        };
        let refresh = h
            .records
            .first()
            .is_some_and(|t| t.status == TaskStatus::Running);
        Ok(Page {
            refresh,
            ..Page::new(format!("Task {id}"), "task.html", &view)
        })
    }
    .await;
    render(&s, Nav::Lineage, page)
}

/// What `trends.html` shows.
#[derive(Serialize)]
struct TrendsView {
    tasks: Vec<TrendView>,
}

#[derive(Serialize)]
struct TrendView {
    link: Link,
    kind: String,
    charts: Charts,
}

pub(crate) async fn trends(State(s): State<AppState>, Query(q): Query<Limit>) -> Response {
    let page = async {
        let d = dashboard(&s)?;
        let trends = data::trends(&d, q.limit).await?;
        let view = TrendsView {
            tasks: trends
                .iter()
                .map(|t| TrendView {
                    link: link(task_link(&t.task_id), &t.task_id),
                    kind: t.kind.clone(),
                    charts: charts(t),
                })
                .collect(),
        };
        Ok(Page::new("Trends", "trends.html", &view))
    }
    .await;
    render(&s, Nav::Trends, page)
}
