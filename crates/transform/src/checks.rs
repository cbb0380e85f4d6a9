//! Checking a model's result against its expectations before anything is written: counts of
//! failing rows per rule, an error when a `fail` rule failed, and the rows a failed `drop` rule
//! removes written to the model's quarantine table (its own commit).

use deltalake::arrow::array::{Array, AsArray, RecordBatch};
use deltalake::arrow::datatypes::{DataType, Int64Type};
use deltalake::datafusion::prelude::SessionContext;
use tributary_lake::{Lake, ModelCommit};

use crate::TransformError;
use crate::expect::{ExpectationResult, OnFail, Rule, checked_sql, pass_column, row_count_failed};
use crate::model::Model;
use crate::session::{engine, provider, register, split_id};
use crate::sql::{quote_ident, sql_literal};
use crate::upstream::{open_upstream, rows_added_since};

/// Columns a quarantine table adds to the model's columns.
pub const QUARANTINE_COLUMNS: [&str; 3] = [
    "_tributary_expectation",
    "_tributary_run_id",
    "_tributary_quarantined_at",
];
/// The view holding the model's result, before expectations.
pub(crate) const RESULT_VIEW: &str = "__tributary_result";
const CHECKED_VIEW: &str = "__tributary_checked";

/// What checking the expectations left to write.
pub(crate) struct Checked {
    /// The SQL of the rows to write (those no failed `drop` rule removed).
    pub(crate) output_sql: String,
    /// Every expectation's outcome.
    pub(crate) results: Vec<ExpectationResult>,
    /// Rows written to the quarantine table.
    pub(crate) quarantined: u64,
}

/// Evaluate `model`'s expectations over [`RESULT_VIEW`] in `ctx`; write quarantined rows,
/// stamped with `run_id`.
pub(crate) async fn check(
    lake: &Lake,
    run_id: &str,
    model: &Model,
    ctx: &SessionContext,
) -> Result<Checked, TransformError> {
    let rules = &model.expectations;
    if rules.is_empty() {
        return Ok(Checked {
            output_sql: format!("SELECT * FROM {RESULT_VIEW}"),
            results: Vec::new(),
            quarantined: 0,
        });
    }
    for e in rules {
        if let Rule::Relationships { to, .. } = &e.rule {
            let (l, n) = split_id(to);
            if ctx
                .table_exist(format!("{}.{}", quote_ident(l), quote_ident(n)).as_str())
                .unwrap_or(false)
            {
                continue;
            }
            let up = open_upstream(lake, model, to).await?;
            register(ctx, l, n, provider(&up.table, to).await?)?;
        }
    }
    let checked = ctx
        .sql(&checked_sql(RESULT_VIEW, rules))
        .await
        .map_err(|e| expectation_error(model, e))?;
    ctx.register_table(CHECKED_VIEW, checked.into_view())
        .map_err(engine(model, "check expectations"))?;
    let mut sums = vec!["COUNT(*) AS n".to_string()];
    for i in 0..rules.len() {
        sums.push(format!(
            "SUM(CASE WHEN {} THEN 0 ELSE 1 END) AS f{i}",
            pass_column(i)
        ));
    }
    let counts = ctx
        .sql(&format!("SELECT {} FROM {CHECKED_VIEW}", sums.join(", ")))
        .await
        .map_err(|e| expectation_error(model, e))?
        .collect()
        .await
        .map_err(|e| expectation_error(model, e))?;
    let row = counts.first().ok_or_else(|| TransformError::Engine {
        model: model.id(),
        action: "count expectation failures".into(),
        message: "no result row".into(),
        class: crate::ErrorClass::Internal,
    })?;
    let n = int_at(row, 0);
    let mut results = Vec::new();
    for (i, e) in rules.iter().enumerate() {
        let failed = if e.rule.is_row_rule() {
            int_at(row, i + 1)
        } else {
            u64::from(row_count_failed(&e.rule, n))
        };
        results.push(ExpectationResult {
            name: e.name.clone(),
            rule: e.rule.kind().to_string(),
            on_fail: e.on_fail.as_str().to_string(),
            checked_rows: n,
            failed_rows: failed,
            passed: failed == 0,
        });
    }
    for r in &results {
        if !r.passed {
            tracing::warn!(model = %model.id(), expectation = %r.name, failed_rows = r.failed_rows, checked_rows = r.checked_rows, on_fail = %r.on_fail, "Expectation failed.");
        }
    }
    if results.iter().any(|r| !r.passed && r.on_fail == "fail") {
        return Err(TransformError::ExpectationsFailed {
            model: model.id(),
            results,
        });
    }
    let columns = columns_of(ctx, RESULT_VIEW, model).await?;
    let drop: Vec<usize> = rules
        .iter()
        .enumerate()
        .filter(|(i, e)| e.on_fail == OnFail::Drop && !results[*i].passed)
        .map(|(i, _)| i)
        .collect();
    if drop.is_empty() {
        return Ok(Checked {
            output_sql: format!("SELECT {columns} FROM {CHECKED_VIEW}"),
            results,
            quarantined: 0,
        });
    }
    // Quarantine: one row per failed drop rule, then keep the rows that pass them all.
    let branches: Vec<String> = drop
        .iter()
        .map(|i| {
            format!(
                "SELECT {columns}, {} AS _tributary_expectation, {} AS _tributary_run_id, arrow_cast(now(), 'Timestamp(Microsecond, Some(\"UTC\"))') AS _tributary_quarantined_at FROM {CHECKED_VIEW} WHERE NOT {}",
                sql_literal(&serde_json::Value::String(rules[*i].name.clone())),
                sql_literal(&serde_json::Value::String(run_id.to_string())),
                pass_column(*i)
            )
        })
        .collect();
    let q = ctx
        .sql(&branches.join(" UNION ALL "))
        .await
        .map_err(engine(model, "plan quarantine"))?;
    let quarantine = match lake.open(&model.layer, &model.quarantine_name()).await? {
        Some(t) => t,
        None => lake.prepare(&model.layer, &model.quarantine_name())?,
    };
    let qid = format!("{}.{}", model.layer, model.quarantine_name());
    let before = quarantine.version();
    let qt = ModelCommit::new(qid)
        .with_operation("write quarantined rows")
        .append(quarantine, ctx, q)
        .await?;
    let quarantined = rows_added_since(&qt, before).await;
    let keep = drop
        .iter()
        .map(|i| pass_column(*i))
        .collect::<Vec<_>>()
        .join(" AND ");
    Ok(Checked {
        output_sql: format!("SELECT {columns} FROM {CHECKED_VIEW} WHERE {keep}"),
        results,
        quarantined,
    })
}

/// The comma-separated quoted columns of a registered relation.
async fn columns_of(
    ctx: &SessionContext,
    view: &str,
    model: &Model,
) -> Result<String, TransformError> {
    let df = ctx
        .table(view)
        .await
        .map_err(engine(model, "read result columns"))?;
    Ok(df
        .schema()
        .fields()
        .iter()
        .map(|f| quote_ident(f.name()))
        .collect::<Vec<_>>()
        .join(", "))
}

fn int_at(batch: &RecordBatch, col: usize) -> u64 {
    let c = batch.column(col);
    if c.is_null(0) {
        return 0;
    }
    match c.data_type() {
        DataType::Int64 => c.as_primitive::<Int64Type>().value(0).max(0) as u64,
        _ => deltalake::arrow::compute::cast(c, &DataType::Int64)
            .ok()
            .map(|a| a.as_primitive::<Int64Type>().value(0).max(0) as u64)
            .unwrap_or(0),
    }
}

fn expectation_error(
    model: &Model,
    e: deltalake::datafusion::error::DataFusionError,
) -> TransformError {
    TransformError::Settings {
        model: model.id(),
        file: model.config_file.clone(),
        message: format!("an expectation cannot be evaluated: {e}"),
    }
}
