//! The `scd2` materialization: a history table in which a changed row closes its current
//! version (`valid_to`, `is_current = FALSE`) and opens a new one, in one MERGE; a full refresh
//! rebuilds the table with every row current.

use deltalake::DeltaTable;
use deltalake::arrow::datatypes::{DataType, Field, Schema};
use deltalake::datafusion::prelude::SessionContext;
use tributary_lake::{MergeClause, ModelCommit, table_schema};

use crate::TransformError;
use crate::materialize::{as_stored, overwrite};
use crate::model::{HardDeletes, Model};
use crate::session::{engine, provider, register};
use crate::sql::{quote_ident, sql_type};

/// Columns an `scd2` model adds.
pub const SCD2_COLUMNS: [&str; 3] = ["valid_from", "valid_to", "is_current"];

/// Rebuild the table from `output_sql`, every row current since its first `order_by` value (or
/// `now`), in one commit.
pub(crate) async fn rebuild(
    model: &Model,
    ctx: &SessionContext,
    table: DeltaTable,
    output_sql: &str,
    commit: ModelCommit,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<DeltaTable, TransformError> {
    let sql = format!(
        "SELECT o.*, {vf} AS valid_from, arrow_cast(NULL, 'Timestamp(Microsecond, Some(\"UTC\"))') AS valid_to, TRUE AS is_current FROM ({output_sql}) o",
        vf = valid_from_expr(model, "o", now),
    );
    let out = ctx.sql(&sql).await.map_err(engine(model, "plan scd2"))?;
    overwrite(model, ctx, table, out, commit).await
}

/// Add the result's columns that the table lacks (nullable, empty) in a commit of their own,
/// ahead of the scd2 MERGE: delta-rs's MERGE cannot evolve the schema while it sets columns
/// only the target has (`valid_to`, `is_current`). If the MERGE then fails, the table is
/// readable (the new columns are NULL) and the next run, finding no new column, merges as
/// this one would have.
async fn add_new_columns(
    run_id: &str,
    model: &Model,
    table: DeltaTable,
    result: &Schema,
) -> Result<DeltaTable, TransformError> {
    let id = model.id();
    let current = table_schema(&id, &table)?;
    let new: Vec<Field> = as_stored(result)
        .fields()
        .iter()
        .filter(|f| current.field_with_name(f.name()).is_err())
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    if new.is_empty() {
        return Ok(table);
    }
    let names = new
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let table = ModelCommit::new(id.clone())
        .with_metadata("tributary.run_id", run_id)
        .with_metadata("tributary.model", id.clone())
        .add_columns(table, new)
        .await?;
    tracing::info!(model = %id, columns = %names, "Added new columns to the scd2 table.");
    Ok(table)
}

/// SCD2: close changed current rows and open new versions, in one MERGE (after a commit adding
/// new columns, if any). `None` when nothing changed (no commit); otherwise the table and the
/// rows opened and closed.
pub(crate) async fn scd2(
    run_id: &str,
    model: &Model,
    ctx: &SessionContext,
    table: DeltaTable,
    output_sql: &str,
    commit: ModelCommit,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<(DeltaTable, u64, u64)>, TransformError> {
    let id = model.id();
    let keys = model.unique_key();
    let out_schema: Schema = ctx
        .sql(output_sql)
        .await
        .map_err(engine(model, "plan scd2"))?
        .schema()
        .as_arrow()
        .clone();
    let table = add_new_columns(run_id, model, table, &out_schema).await?;
    let cols: Vec<String> = out_schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let order = model.order_by();
    let compare: Vec<String> = match &model.config.check_columns {
        Some(c) => c.clone(),
        None => cols
            .iter()
            .filter(|c| !keys.contains(c) && !order.contains(c) && !c.starts_with("_tributary_"))
            .cloned()
            .collect(),
    };
    register(ctx, "__scd2", "target", provider(&table, &id).await?)?;
    ctx.register_table(
        "__scd2_source",
        ctx.sql(output_sql)
            .await
            .map_err(engine(model, "plan scd2"))?
            .into_view(),
    )
    .map_err(engine(model, "plan scd2"))?;
    let key_join = |a: &str, b: &str| {
        keys.iter()
            .map(|k| format!("{a}.{q} = {b}.{q}", q = quote_ident(k)))
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    let same = if compare.is_empty() {
        "TRUE".to_string()
    } else {
        compare
            .iter()
            .map(|c| format!("(s.{q} IS NOT DISTINCT FROM c.{q})", q = quote_ident(c)))
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    let first_key = quote_ident(keys.first().map(String::as_str).unwrap_or(""));
    let s_cols = cols
        .iter()
        .map(|c| format!("s.{}", quote_ident(c)))
        .collect::<Vec<_>>()
        .join(", ");
    let vf = valid_from_expr(model, "s", now);
    let changes = format!(
        "SELECT {s_cols}, {vf} AS valid_from, c.{first_key} IS NOT NULL AS __existing \
         FROM __scd2_source s LEFT JOIN (SELECT * FROM \"__scd2\".\"target\" WHERE is_current) c ON {on} \
         WHERE c.{first_key} IS NULL OR NOT ({same})",
        on = key_join("s", "c"),
    );
    ctx.register_table(
        "__scd2_changes",
        ctx.sql(&changes)
            .await
            .map_err(engine(model, "plan scd2"))?
            .into_view(),
    )
    .map_err(engine(model, "plan scd2"))?;
    let mk = |i: usize| format!("__mk_{i}");
    let mk_set = keys
        .iter()
        .enumerate()
        .map(|(i, k)| format!("{} AS {}", quote_ident(k), mk(i)))
        .collect::<Vec<_>>()
        .join(", ");
    let mk_null = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let t = out_schema
                .field_with_name(k)
                .map(|f| f.data_type().clone())
                .unwrap_or(DataType::Utf8);
            format!("CAST(NULL AS {}) AS {}", sql_type(&t), mk(i))
        })
        .collect::<Vec<_>>()
        .join(", ");
    let plain = cols
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    let mut branches = vec![
        format!(
            "SELECT {mk_set}, {plain}, valid_from, FALSE AS __delete, TRUE AS __current FROM __scd2_changes"
        ),
        format!(
            "SELECT {mk_null}, {plain}, valid_from, FALSE AS __delete, TRUE AS __current FROM __scd2_changes WHERE __existing"
        ),
    ];
    if model.config.hard_deletes == HardDeletes::Invalidate {
        let now_lit = format!(
            "arrow_cast('{}', 'Timestamp(Microsecond, Some(\"UTC\"))')",
            now.format("%Y-%m-%dT%H:%M:%S%.6f")
        );
        branches.push(format!(
            "SELECT {mk_c}, {plain_c}, {now_lit} AS valid_from, TRUE AS __delete, TRUE AS __current FROM \"__scd2\".\"target\" c \
             WHERE c.is_current AND NOT EXISTS (SELECT 1 FROM __scd2_source s WHERE {on})",
            mk_c = keys
                .iter()
                .enumerate()
                .map(|(i, k)| format!("c.{} AS {}", quote_ident(k), mk(i)))
                .collect::<Vec<_>>()
                .join(", "),
            plain_c = cols
                .iter()
                .map(|c| format!("c.{q} AS {q}", q = quote_ident(c)))
                .collect::<Vec<_>>()
                .join(", "),
            on = key_join("s", "c"),
        ));
    }
    let source = ctx
        .sql(&branches.join(" UNION ALL "))
        .await
        .map_err(engine(model, "plan scd2"))?;
    let pending = source
        .clone()
        .count()
        .await
        .map_err(engine(model, "compare with the current versions"))?;
    if pending == 0 {
        return Ok(None);
    }
    let on = keys
        .iter()
        .enumerate()
        .map(|(i, k)| format!("t.{} = s.{}", quote_ident(k), mk(i)))
        .collect::<Vec<_>>()
        .join(" AND ")
        + " AND t.is_current = s.__current";
    let mut insert = MergeClause::new().with_predicate(Some("NOT s.__delete".into()));
    for c in &cols {
        insert = insert.set(c.clone(), format!("s.{}", quote_ident(c)));
    }
    let insert = insert
        .set("valid_from", "s.valid_from")
        .set(
            "valid_to",
            "arrow_cast(NULL, 'Timestamp(Microsecond, Some(\"UTC\"))')",
        )
        .set("is_current", "TRUE");
    let (table, counts) = commit
        .with_operation("scd2 merge")
        .merge(table, ctx, source, on)
        .with_merge_schema(false)
        .when_matched_update(
            MergeClause::new()
                .set("valid_to", "s.valid_from")
                .set("is_current", "FALSE"),
        )
        .when_not_matched_insert(insert)
        .execute()
        .await?;
    Ok(Some((table, counts.inserted, counts.updated)))
}

/// When a new version starts: the row's first `order_by` value as a UTC timestamp (`now` when
/// it is NULL), or `now` without `order_by`.
fn valid_from_expr(model: &Model, alias: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    let now_lit = format!(
        "arrow_cast('{}', 'Timestamp(Microsecond, Some(\"UTC\"))')",
        now.format("%Y-%m-%dT%H:%M:%S%.6f")
    );
    match model.order_by().first() {
        Some(o) => format!(
            "COALESCE(arrow_cast({alias}.{}, 'Timestamp(Microsecond, Some(\"UTC\"))'), {now_lit})",
            quote_ident(o)
        ),
        None => now_lit,
    }
}
