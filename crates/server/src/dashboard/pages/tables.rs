//! The lake's tables (`/tables`, `/tables/{layer}/{name}`) and data quality (`/quality`, the
//! quarantined rows of a model): `tables.html`, `table.html`, `quality.html`,
//! `quarantine.html`.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use minijinja::Value;
use serde::Serialize;
use tributary_lake::Sample;

use super::{Link, Page, link, render};
use crate::AppState;
use crate::dashboard::data::{self, quarantine_link, run_link, table_link, task_link};
use crate::dashboard::format::{bytes, count, duration, opt_count, time};
use crate::dashboard::json::{Limit, dashboard};
use crate::dashboard::svg;
use crate::dashboard::templates::{Nav, markup};

fn freshness(secs: Option<f64>) -> String {
    secs.map(|s| format!("{} ago", duration(s)))
        .unwrap_or_else(|| "–".into())
}

/// What `tables.html` shows.
#[derive(Serialize)]
struct TablesView {
    tables: Vec<TableRowView>,
}

#[derive(Serialize)]
struct TableRowView {
    link: Link,
    /// A quarantine table (tagged as such).
    quarantine: bool,
    layer: String,
    version: u64,
    rows: String,
    files: String,
    size: String,
    last_success: String,
    freshness: String,
    writer: Option<Link>,
}

pub(crate) async fn tables(State(s): State<AppState>) -> Response {
    let page = async {
        let d = dashboard(&s)?;
        let rows = data::tables(&d).await?;
        let view = TablesView {
            tables: rows
                .iter()
                .map(|t| TableRowView {
                    link: link(&t.link, &t.table),
                    quarantine: t.quarantine_of.is_some(),
                    layer: t.layer.clone(),
                    version: t.version,
                    rows: opt_count(t.rows),
                    files: count(t.files as u64),
                    size: bytes(t.bytes),
                    last_success: time(t.last_success),
                    freshness: freshness(t.freshness_secs),
                    writer: t.writer.as_ref().map(|w| link(task_link(w), w)),
                })
                .collect(),
        };
        Ok(Page::new("Tables", "tables.html", &view))
    }
    .await;
    render(&s, Nav::Tables, page)
}

/// What `table.html` shows.
#[derive(Serialize)]
struct TableView {
    layer: String,
    version: u64,
    rows: String,
    files: String,
    size: String,
    committed: String,
    last_success: String,
    freshness: String,
    writer: Option<Link>,
    watermark: Option<WatermarkView>,
    /// For a quarantine table: the model whose rows it holds.
    quarantine_of: Option<Link>,
    /// For a model with a quarantine table: the page of its rows.
    quarantined_rows: Option<Link>,
    columns: Vec<tributary_lake::ColumnInfo>,
    history: Vec<CommitRow>,
    sample: Sample,
}

#[derive(Serialize)]
struct WatermarkView {
    column: String,
    /// The value as JSON.
    value: String,
}

#[derive(Serialize)]
struct CommitRow {
    version: u64,
    committed: String,
    operation: String,
    rows_added: String,
    files_added: String,
    bytes_added: String,
    files_removed: String,
    run: Option<Link>,
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
        let view = TableView {
            layer: sm.layer.clone(),
            version: sm.version,
            rows: opt_count(sm.rows),
            files: count(sm.files as u64),
            size: bytes(sm.bytes),
            committed: time(sm.committed_at),
            last_success: time(sm.last_success),
            freshness: freshness(sm.freshness_secs),
            writer: sm.writer.as_ref().map(|w| link(task_link(w), w)),
            watermark: t.watermark.as_ref().map(|w| WatermarkView {
                column: w.column.clone(),
                value: serde_json::to_string(&w.value).unwrap_or_default(),
            }),
            quarantine_of: sm
                .quarantine_of
                .as_ref()
                .map(|model| link(table_link(model), model)),
            quarantined_rows: t.quarantine.as_ref().map(|_| {
                let model = format!("{}.{}", sm.layer, sm.name);
                link(quarantine_link(&model), "rows its expectations dropped")
            }),
            columns: t.columns.clone(),
            history: t
                .history
                .iter()
                .map(|c| CommitRow {
                    version: c.version,
                    committed: time(
                        c.timestamp_ms
                            .and_then(DateTime::<Utc>::from_timestamp_millis),
                    ),
                    operation: c.operation.clone().unwrap_or_else(|| "–".into()),
                    rows_added: opt_count(c.rows_added),
                    files_added: count(c.files_added),
                    bytes_added: bytes(c.bytes_added),
                    files_removed: count(c.files_removed),
                    run: c.run_id.as_ref().map(|r| link(run_link(r), r)),
                })
                .collect(),
            sample,
        };
        Ok(Page::new(
            format!("Table {layer}.{name}"),
            "table.html",
            &view,
        ))
    }
    .await;
    render(&s, Nav::Tables, page)
}

/// What `quality.html` shows.
#[derive(Serialize)]
struct QualityView {
    quarantine: Vec<QuarantineRow>,
    models: Vec<ModelView>,
}

#[derive(Serialize)]
struct QuarantineRow {
    model: Link,
    table: Link,
    rows: String,
    rows_link: Link,
}

#[derive(Serialize)]
struct ModelView {
    model: Link,
    /// The results over time, drawn.
    grid: Value,
    expectations: Vec<ExpectationView>,
}

#[derive(Serialize)]
struct ExpectationView {
    expectation: String,
    rule: String,
    on_fail: String,
    checks: String,
    failures: String,
    failed_rows: String,
    latest: Option<LatestResult>,
}

#[derive(Serialize)]
struct LatestResult {
    result: &'static str,
    failed: String,
    checked: String,
}

pub(crate) async fn quality(State(s): State<AppState>, Query(q): Query<Limit>) -> Response {
    let page = async {
        let d = dashboard(&s)?;
        let quality = data::quality(&d, q.limit).await?;
        let view = QualityView {
            quarantine: quality
                .quarantine
                .iter()
                .map(|t| QuarantineRow {
                    model: link(table_link(&t.model), &t.model),
                    table: link(table_link(&t.table), &t.table),
                    rows: opt_count(t.rows),
                    rows_link: link(&t.link, "show the rows"),
                })
                .collect(),
            models: quality
                .models
                .iter()
                .map(|m| ModelView {
                    model: link(table_link(&m.model), &m.model),
                    grid: markup(svg::expectation_grid(&m.expectations)),
                    expectations: m
                        .expectations
                        .iter()
                        .map(|e| ExpectationView {
                            expectation: e.expectation.clone(),
                            rule: e.rule.clone(),
                            on_fail: e.on_fail.clone(),
                            checks: count(e.checks),
                            failures: count(e.failures),
                            failed_rows: count(e.failed_rows),
                            latest: e.results.last().map(|r| LatestResult {
                                result: if r.passed { "passed" } else { "failed" },
                                failed: count(r.failed_rows),
                                checked: count(r.checked_rows),
                            }),
                        })
                        .collect(),
                })
                .collect(),
        };
        Ok(Page::new("Data quality", "quality.html", &view))
    }
    .await;
    render(&s, Nav::Quality, page)
}

/// What `quarantine.html` shows.
#[derive(Serialize)]
struct QuarantineView {
    model: Link,
    sample: Sample,
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
        let view = QuarantineView {
            model: link(table_link(&model), &model),
            sample: rows,
        };
        Ok(Page::new(
            format!("Quarantined rows of {model}"),
            "quarantine.html",
            &view,
        ))
    }
    .await;
    render(&s, Nav::Quality, page)
}
