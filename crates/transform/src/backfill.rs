//! Backfills (`--from/--to`): which models a cursor range can be reprocessed in, and the
//! predicate that keeps the range's rows of a model's result.

use deltalake::arrow::datatypes::{DataType, Schema};
use deltalake::datafusion::prelude::SessionContext;

use crate::TransformError;
use crate::model::{Materialized, Model};
use crate::sql::{quote_ident, sql_type};

pub use tributary_core::cursor::Backfill;

/// The range `model` reprocesses in a run with `backfill`: `None` when there is no backfill or
/// the model is a `table` (rebuilt whole, as in any run); an error for models a range cannot
/// be reprocessed in.
pub(crate) fn backfill_of<'b>(
    backfill: Option<&'b Backfill>,
    model: &Model,
    exists: bool,
) -> Result<Option<&'b Backfill>, TransformError> {
    let Some(range) = backfill else {
        return Ok(None);
    };
    let settings = |message: String| TransformError::Settings {
        model: model.id(),
        file: model.config_file.clone(),
        message,
    };
    match model.config.materialized {
        Materialized::Table => Ok(None),
        Materialized::Scd2 => Err(settings(
            "an scd2 model keeps history in order and cannot be backfilled by range; leave it out of the selection, or rebuild it with --full-refresh".into(),
        )),
        Materialized::Incremental => {
            if !exists {
                return Err(settings(
                    "not built yet, so there is nothing to backfill; run it once without --from/--to".into(),
                ));
            }
            if model.unique_key().is_empty() {
                return Err(settings(
                    "a backfill needs `unique_key`, so that reprocessed rows replace their earlier versions instead of being appended twice".into(),
                ));
            }
            if model.order_by().is_empty() {
                return Err(settings(
                    "a backfill needs `order_by`: its first column is the cursor --from/--to apply to".into(),
                ));
            }
            Ok(Some(range))
        }
    }
}

/// `cursor >= from AND cursor < to` over the model's result, each bound read in the cursor
/// column's type (checked first, so a bad bound is an error naming the model and the cursor).
pub(crate) async fn range_predicate(
    ctx: &SessionContext,
    model: &Model,
    schema: &Schema,
    range: &Backfill,
) -> Result<String, TransformError> {
    let order = model.order_by();
    let cursor = order.first().map(String::as_str).unwrap_or_default();
    let field = schema
        .field_with_name(cursor)
        .map_err(|_| TransformError::Settings {
            model: model.id(),
            file: model.config_file.clone(),
            message: format!("order_by column `{cursor}` is not in the model's result"),
        })?;
    let literal = |text: &str| {
        let quoted = format!("'{}'", text.replace('\'', "''"));
        match field.data_type() {
            DataType::Timestamp(_, Some(_)) => {
                format!("(CAST({quoted} AS TIMESTAMP) AT TIME ZONE 'UTC')")
            }
            t => format!("CAST({quoted} AS {})", sql_type(t)),
        }
    };
    let column = quote_ident(cursor);
    let mut parts = Vec::new();
    for (flag, bound, op) in [("--from", &range.from, ">="), ("--to", &range.to, "<")] {
        let Some(text) = bound else { continue };
        let lit = literal(text);
        let checked = async { ctx.sql(&format!("SELECT {lit}")).await?.collect().await }.await;
        if let Err(e) = checked {
            return Err(TransformError::Settings {
                model: model.id(),
                file: model.config_file.clone(),
                message: format!(
                    "{flag} for {} (cursor `{cursor}`, {}): cannot read `{text}`: {e}",
                    model.id(),
                    field.data_type()
                ),
            });
        }
        parts.push(format!("{column} {op} {lit}"));
    }
    Ok(if parts.is_empty() {
        "TRUE".into()
    } else {
        parts.join(" AND ")
    })
}
