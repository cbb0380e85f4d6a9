//! What the dashboard shows of the lake: its tables, one table in detail, rows of a table, and
//! data quality (expectation results over time, quarantine tables and their rows).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tributary_lake::{ColumnInfo, CommitEntry, DeltaTable, Sample, Watermark};
use tributary_orchestrator::state::ExpectationRecord;

use super::{DEFAULT_POINTS, DataError, MAX_POINTS, Result, clamp, seg, split_table, table_link};
use crate::dashboard::Dashboard;

/// Rows of a table sample by default, and at most.
pub(crate) const DEFAULT_SAMPLE: usize = 20;
const MAX_SAMPLE: usize = 1000;
/// Rows of a quarantine table shown by default.
pub(crate) const DEFAULT_QUARANTINE: usize = 100;
/// Delta commits shown per table by default, and at most.
pub(crate) const DEFAULT_HISTORY: usize = 50;
const MAX_HISTORY: usize = 1000;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarantine_names_and_links() {
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
