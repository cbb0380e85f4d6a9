//! The `incremental` materialization with `unique_key`: a MERGE by the key, in which newer rows
//! (by the first `order_by` column) update and new keys insert.

use deltalake::DeltaTable;
use deltalake::datafusion::prelude::{DataFrame, SessionContext};
use tributary_lake::{MergeClause, MergeCounts, ModelCommit};

use crate::TransformError;
use crate::model::Model;
use crate::sql::quote_ident;

/// MERGE `output` into the table by `unique_key`: newer rows (by `order_by`) update, new
/// keys insert; columns the table lacks are added.
pub(crate) async fn merge(
    model: &Model,
    ctx: &SessionContext,
    table: DeltaTable,
    output: DataFrame,
    commit: ModelCommit,
) -> Result<(DeltaTable, MergeCounts), TransformError> {
    let keys = model.unique_key();
    let cols: Vec<String> = output
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let on = keys
        .iter()
        .map(|k| format!("t.{q} = s.{q}", q = quote_ident(k)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let newer = order_predicate(&model.order_by());
    let mut update = MergeClause::new().with_predicate(newer);
    let mut insert = MergeClause::new();
    for c in &cols {
        let value = format!("s.{}", quote_ident(c));
        update = update.set(c.clone(), value.clone());
        insert = insert.set(c.clone(), value);
    }
    Ok(commit
        .merge(table, ctx, output, on)
        .with_merge_schema(true)
        .when_matched_update(update)
        .when_not_matched_insert(insert)
        .execute()
        .await?)
}

/// `t.o IS NULL OR s.o >= t.o` for the first `order_by` column `o`: the source row is at least
/// as new as the table's. `None` without `order_by` (every match updates).
fn order_predicate(order: &[String]) -> Option<String> {
    if order.is_empty() {
        return None;
    }
    let o = quote_ident(&order[0]);
    Some(format!("t.{o} IS NULL OR s.{o} >= t.{o}"))
}
