//! `tributary test`: model unit tests from `tests/*.yaml`.
//!
//! Each test gives input rows for the tables a model refs (inline YAML rows or a CSV fixture)
//! and the rows it expects back. The model's SQL runs in memory on those inputs (never on the
//! lake), deduplicated by its `unique_key` like a real run, and the result is compared with the
//! expected rows as a multiset (or in order with `ordered: true`) on the columns the expected
//! rows name.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use deltalake::arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::DataType;
use deltalake::arrow::util::display::{ArrayFormatter, FormatOptions};
use deltalake::datafusion::prelude::CsvReadOptions;
use serde::Deserialize;
use serde_json::Value as Json;
use tributary_core::config::{ConfigProblem, parse_yaml_str};
use tributary_core::yamlpos::Positions;

use crate::TransformError;
use crate::dedupe::dedupe;
use crate::project::Models;
use crate::session::{new_session, register};
use crate::sql::{quote_ident, sql_literal};
use crate::template::{render, resolve_ref};

/// A `tests/*.yaml` file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// The tests.
    pub tests: Vec<TestCase>,
}

/// One model unit test.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    /// What the test shows.
    pub name: String,
    /// The model under test, `layer.name`.
    pub model: String,
    /// Variables for `var()` (over the project's).
    #[serde(default)]
    pub vars: BTreeMap<String, Json>,
    /// What `is_incremental()` returns (default false: a full build).
    #[serde(default)]
    pub incremental: bool,
    /// Input rows for each table the model refs.
    pub given: BTreeMap<String, Fixture>,
    /// The rows the model must return.
    pub expect: Fixture,
}

/// Rows inline or from a CSV file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    /// Inline rows.
    #[serde(default)]
    pub rows: Option<Vec<BTreeMap<String, Json>>>,
    /// A CSV file with a header row, relative to the test file.
    #[serde(default)]
    pub csv: Option<String>,
    /// SQL types for columns whose type the values do not show (e.g. `updated_at: timestamp`).
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    /// `expect` only: compare in order.
    #[serde(default)]
    pub ordered: bool,
}

/// The outcome of one test.
#[derive(Debug, Clone)]
pub struct TestOutcome {
    /// Test file.
    pub file: PathBuf,
    /// Line of the test in the file.
    pub line: Option<usize>,
    /// Test name.
    pub name: String,
    /// Model id.
    pub model: String,
    /// `None` when it passed; otherwise what differed (or why it could not run).
    pub failure: Option<String>,
}

/// Load every `tests/*.yaml` under `root`.
pub fn load_tests(root: &Path) -> Result<Vec<(PathBuf, TestFile)>, Vec<ConfigProblem>> {
    let dir = root.join("tests");
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Ok(out);
    };
    let mut paths: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    paths.sort();
    for p in paths {
        let rel = p.strip_prefix(root).unwrap_or(&p).to_path_buf();
        match std::fs::read_to_string(&p) {
            Ok(text) => {
                if let Some(f) = parse_yaml_str::<TestFile>(&text, &rel, 0, &mut problems) {
                    out.push((rel, f));
                }
            }
            Err(e) => problems.push(ConfigProblem {
                file: rel,
                line: None,
                key: String::new(),
                message: format!("cannot read: {e}"),
            }),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Run every test; `filter` keeps tests whose name or model contains it.
pub async fn run_tests(
    root: &Path,
    models: &Models,
    files: &[(PathBuf, TestFile)],
    filter: Option<&str>,
) -> Vec<TestOutcome> {
    let mut out = Vec::new();
    for (file, tf) in files {
        let text = std::fs::read_to_string(root.join(file)).unwrap_or_default();
        let positions = Positions::of(&text);
        for (i, case) in tf.tests.iter().enumerate() {
            if let Some(f) = filter
                && !case.name.contains(f)
                && !case.model.contains(f)
            {
                continue;
            }
            let line = positions.line(&format!("tests[{i}]"));
            let failure = match run_case(root, models, file, case).await {
                Ok(diff) => diff,
                Err(e) => Some(e.to_string()),
            };
            out.push(TestOutcome {
                file: file.clone(),
                line,
                name: case.name.clone(),
                model: case.model.clone(),
                failure,
            });
        }
    }
    out
}

fn test_err(file: &Path, message: String) -> TransformError {
    TransformError::Test {
        file: file.to_path_buf(),
        line: None,
        message,
    }
}

async fn run_case(
    root: &Path,
    models: &Models,
    file: &Path,
    case: &TestCase,
) -> Result<Option<String>, TransformError> {
    let model_id = resolve_ref(&case.model, &models.known()).map_err(|m| test_err(file, m))?;
    let model = models.get(&model_id).ok_or_else(|| {
        test_err(
            file,
            format!("{model_id} is loaded by ingestion, not a model; test models only"),
        )
    })?;
    let ctx = new_session(512 * 1024 * 1024)?;
    let base = root
        .join(file)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut given_ids = BTreeSet::new();
    for (table, fixture) in &case.given {
        let id = resolve_ref(table, &models.known())
            .map_err(|m| test_err(file, format!("given: {m}")))?;
        let df = match (&fixture.rows, &fixture.csv) {
            (Some(rows), None) => {
                let sql = values_sql(rows, &fixture.columns)
                    .ok_or_else(|| test_err(file, format!("given {table}: `rows` is empty; give at least one row (or a CSV with a header)")))?;
                ctx.sql(&sql)
                    .await
                    .map_err(|e| test_err(file, format!("given {table}: {e}")))?
            }
            (None, Some(csv)) => {
                let path = base.join(csv);
                let df = ctx
                    .read_csv(
                        path.to_string_lossy().as_ref(),
                        CsvReadOptions::new().has_header(true),
                    )
                    .await
                    .map_err(|e| {
                        test_err(
                            file,
                            format!("given {table}: cannot read {}: {e}", path.display()),
                        )
                    })?;
                cast_columns(&ctx, df, &fixture.columns, file, table).await?
            }
            _ => {
                return Err(test_err(
                    file,
                    format!("given {table}: give exactly one of `rows` or `csv`"),
                ));
            }
        };
        let (layer, name) = id.split_once('.').unwrap_or(("", &id));
        register(&ctx, layer, name, df.into_view())?;
        given_ids.insert(id);
    }
    let mut rc = models.render_context();
    rc.is_incremental = case.incremental;
    rc.vars.extend(case.vars.clone());
    let rendered = render(model, &models.macros, &rc)?;
    for r in rendered.refs.keys() {
        if !given_ids.contains(r) {
            return Err(test_err(
                file,
                format!("{model_id} reads {r}; give its rows under `given: {r}:`"),
            ));
        }
    }
    let sql_err = |e: deltalake::datafusion::error::DataFusionError| TransformError::Sql {
        model: model_id.clone(),
        file: model.file.clone(),
        line: crate::sql::error_position(&e.to_string()).map(|(l, _)| l),
        message: e.to_string(),
    };
    let mut df = ctx.sql(&rendered.sql).await.map_err(sql_err)?;
    if !model.unique_key().is_empty() {
        let schema = df.schema().as_arrow().clone();
        ctx.register_table("__tributary_raw", df.into_view())
            .map_err(sql_err)?;
        df = dedupe(
            &ctx,
            "__tributary_raw",
            &schema,
            &model.unique_key(),
            &model.order_by(),
        )
        .await
        .map_err(sql_err)?;
    }
    let batches = df.collect().await.map_err(sql_err)?;
    let expected_rows = match (&case.expect.rows, &case.expect.csv) {
        (Some(rows), None) => rows.clone(),
        (None, Some(csv)) => read_expected_csv(&base.join(csv)).map_err(|m| test_err(file, m))?,
        _ => {
            return Err(test_err(
                file,
                "expect: give exactly one of `rows` or `csv`".into(),
            ));
        }
    };
    compare(&batches, &expected_rows, case.expect.ordered).map_err(|m| test_err(file, m))
}

/// `SELECT * FROM (VALUES …) AS t(cols)` for inline rows; typed columns are cast.
fn values_sql(rows: &[BTreeMap<String, Json>], types: &BTreeMap<String, String>) -> Option<String> {
    let mut cols: Vec<String> = Vec::new();
    for r in rows {
        for k in r.keys() {
            if !cols.contains(k) {
                cols.push(k.clone());
            }
        }
    }
    if rows.is_empty() || cols.is_empty() {
        return None;
    }
    let values = rows
        .iter()
        .map(|r| {
            let vals = cols
                .iter()
                .map(|c| r.get(c).map(sql_literal).unwrap_or_else(|| "NULL".into()))
                .collect::<Vec<_>>()
                .join(", ");
            format!("({vals})")
        })
        .collect::<Vec<_>>()
        .join(", ");
    let select = cols
        .iter()
        .map(|c| match types.get(c) {
            Some(t) => format!("CAST({q} AS {t}) AS {q}", q = quote_ident(c)),
            None => {
                let all_null = rows.iter().all(|r| r.get(c).is_none_or(Json::is_null));
                if all_null {
                    format!("CAST({q} AS VARCHAR) AS {q}", q = quote_ident(c))
                } else {
                    quote_ident(c)
                }
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    Some(format!(
        "SELECT {select} FROM (VALUES {values}) AS t({})",
        cols.iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

async fn cast_columns(
    ctx: &deltalake::datafusion::prelude::SessionContext,
    df: deltalake::datafusion::prelude::DataFrame,
    types: &BTreeMap<String, String>,
    file: &Path,
    table: &str,
) -> Result<deltalake::datafusion::prelude::DataFrame, TransformError> {
    if types.is_empty() {
        return Ok(df);
    }
    let view = format!("__fixture_{}", table.replace('.', "_"));
    let cols: Vec<String> = df
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    ctx.register_table(view.as_str(), df.into_view())
        .map_err(|e| test_err(file, e.to_string()))?;
    let select = cols
        .iter()
        .map(|c| match types.get(c) {
            Some(t) => format!("CAST({q} AS {t}) AS {q}", q = quote_ident(c)),
            None => quote_ident(c),
        })
        .collect::<Vec<_>>()
        .join(", ");
    ctx.sql(&format!("SELECT {select} FROM {view}"))
        .await
        .map_err(|e| test_err(file, format!("given {table}: {e}")))
}

fn read_expected_csv(path: &Path) -> Result<Vec<BTreeMap<String, Json>>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .ok_or_else(|| format!("{} is empty; it needs a header row", path.display()))?
        .split(',')
        .map(|h| h.trim().to_string())
        .collect();
    Ok(lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            header
                .iter()
                .cloned()
                .zip(l.split(',').map(|v| {
                    if v.is_empty() {
                        Json::Null
                    } else {
                        Json::String(v.to_string())
                    }
                }))
                .collect()
        })
        .collect())
}

type Row = Vec<Option<String>>;

/// Compare the result with the expected rows; `Ok(None)` when equal, `Ok(Some(diff))` otherwise.
fn compare(
    batches: &[RecordBatch],
    expected: &[BTreeMap<String, Json>],
    ordered: bool,
) -> Result<Option<String>, String> {
    let mut cols: Vec<String> = Vec::new();
    for r in expected {
        for k in r.keys() {
            if !cols.contains(k) {
                cols.push(k.clone());
            }
        }
    }
    let schema = batches.first().map(|b| b.schema());
    let mut types: Vec<DataType> = Vec::new();
    let mut actual: Vec<Row> = Vec::new();
    if let Some(schema) = &schema {
        for c in &cols {
            let f = schema.field_with_name(c).map_err(|_| {
                format!(
                    "the expected rows name column `{c}`, which the model does not return (it returns: {})",
                    schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
                )
            })?;
            types.push(f.data_type().clone());
        }
        let opts = FormatOptions::default();
        for b in batches {
            let mut formatters = Vec::new();
            for c in &cols {
                let idx = b.schema().index_of(c).map_err(|e| e.to_string())?;
                formatters.push((b.column(idx).clone(), idx));
            }
            for row in 0..b.num_rows() {
                let mut r = Vec::new();
                for (arr, _) in &formatters {
                    r.push(format_cell(arr, row, &opts));
                }
                actual.push(r);
            }
        }
    }
    let expected_rows: Vec<Row> = expected
        .iter()
        .map(|r| {
            cols.iter()
                .enumerate()
                .map(|(i, c)| normalize(r.get(c).unwrap_or(&Json::Null), types.get(i)))
                .collect()
        })
        .collect();
    let render_row = |r: &Row| {
        cols.iter()
            .zip(r)
            .map(|(c, v)| format!("{c}={}", v.as_deref().unwrap_or("NULL")))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    if ordered {
        if actual == expected_rows {
            return Ok(None);
        }
        let mut out = String::from("rows differ (ordered comparison):\n");
        for i in 0..actual.len().max(expected_rows.len()) {
            let (a, e) = (actual.get(i), expected_rows.get(i));
            if a != e {
                out.push_str(&format!(
                    "  row {}:\n    - expected: {}\n    + returned: {}\n",
                    i + 1,
                    e.map(render_row).unwrap_or_else(|| "(none)".into()),
                    a.map(render_row).unwrap_or_else(|| "(none)".into())
                ));
            }
        }
        return Ok(Some(out.trim_end().to_string()));
    }
    let mut remaining: BTreeMap<Row, usize> = BTreeMap::new();
    for r in &actual {
        *remaining.entry(r.clone()).or_default() += 1;
    }
    let mut missing = Vec::new();
    for e in &expected_rows {
        match remaining.get_mut(e) {
            Some(n) if *n > 0 => *n -= 1,
            _ => missing.push(e.clone()),
        }
    }
    let unexpected: Vec<Row> = remaining
        .into_iter()
        .flat_map(|(r, n)| std::iter::repeat_n(r, n))
        .collect();
    if missing.is_empty() && unexpected.is_empty() {
        return Ok(None);
    }
    let mut out = format!(
        "expected {} rows, the model returned {}:\n",
        expected_rows.len(),
        actual.len()
    );
    for r in &missing {
        out.push_str(&format!("  - {}\n", render_row(r)));
    }
    for r in &unexpected {
        out.push_str(&format!("  + {}\n", render_row(r)));
    }
    out.push_str("  (- expected but not returned, + returned but not expected)");
    Ok(Some(out))
}

fn format_cell(arr: &ArrayRef, row: usize, opts: &FormatOptions) -> Option<String> {
    if arr.is_null(row) {
        return None;
    }
    ArrayFormatter::try_new(arr.as_ref(), opts)
        .ok()
        .map(|f| f.value(row).to_string())
}

/// An expected value rendered the way the result column would show it (cast through its type).
fn normalize(v: &Json, ty: Option<&DataType>) -> Option<String> {
    let raw = match v {
        Json::Null => return None,
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    let Some(ty) = ty else { return Some(raw) };
    let arr: ArrayRef = Arc::new(StringArray::from(vec![raw.clone()]));
    match cast(&arr, ty) {
        Ok(c) if !c.is_null(0) => format_cell(&c, 0, &FormatOptions::default()).or(Some(raw)),
        _ => Some(raw),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::arrow::array::{Decimal128Array, Int64Array};
    use deltalake::arrow::datatypes::{Field, Schema};

    fn rows(yaml: &str) -> Vec<BTreeMap<String, Json>> {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn compare_normalizes_decimals_and_reports_diff() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("total", DataType::Decimal128(10, 2), true),
        ]));
        let b = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(
                    Decimal128Array::from(vec![1250, 300])
                        .with_precision_and_scale(10, 2)
                        .unwrap(),
                ),
            ],
        )
        .unwrap();
        let ok = rows("[{id: 1, total: 12.5}, {id: 2, total: 3}]");
        assert_eq!(compare(std::slice::from_ref(&b), &ok, false).unwrap(), None);
        let bad = rows("[{id: 1, total: 12.5}, {id: 2, total: 4}]");
        let diff = compare(std::slice::from_ref(&b), &bad, false)
            .unwrap()
            .unwrap();
        assert!(diff.contains("- id=2 | total=4.00"), "{diff}");
        assert!(diff.contains("+ id=2 | total=3.00"), "{diff}");
        let err = compare(&[b], &rows("[{nope: 1}]"), false).unwrap_err();
        assert!(err.contains("nope"), "{err}");
    }

    #[test]
    fn values_sql_casts_and_fills_nulls() {
        let mut types = BTreeMap::new();
        types.insert("ts".to_string(), "TIMESTAMP".to_string());
        let sql = values_sql(
            &rows("[{id: 1, ts: '2024-01-01 00:00:00'}, {id: 2}]"),
            &types,
        )
        .unwrap();
        assert!(sql.contains("CAST(\"ts\" AS TIMESTAMP)"), "{sql}");
        assert!(sql.contains("(2, NULL)"), "{sql}");
    }
}
