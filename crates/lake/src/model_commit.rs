//! Commits of query results: a DataFusion plan written into a table (overwrite or append), a
//! MERGE of one into a table, and added columns, each one Delta commit that also records the
//! commit-info metadata and the app transactions its [`ModelCommit`] carries.

use std::collections::HashMap;
use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::arrow::datatypes::{Field, Schema};
use deltalake::datafusion::common::Column;
use deltalake::datafusion::prelude::{DataFrame, SessionContext};
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::{StructField, StructType, Transaction};
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::SaveMode;

use crate::LakeError;

/// The table property that turns the change data feed on.
const CHANGE_DATA_FEED: &str = "delta.enableChangeDataFeed";

/// One commit into a table made by a model run: what it records besides the data (commit-info
/// metadata, app transactions), then the operation ([`overwrite`](Self::overwrite),
/// [`append`](Self::append), [`merge`](Self::merge), [`add_columns`](Self::add_columns)).
///
/// The plans are run in the caller's session (`ctx`), so its planner and registered tables
/// apply; its planner must plan delta-rs's own plan nodes (delta-rs's `DeltaPlanner`, or one
/// that includes its extension planner). Nothing is visible to readers until the operation's
/// single commit succeeds.
#[derive(Debug, Clone)]
pub struct ModelCommit {
    table_name: String,
    operation: Option<&'static str>,
    metadata: HashMap<String, serde_json::Value>,
    app_transactions: Vec<Transaction>,
    partition_columns: Vec<String>,
    description: Option<String>,
    change_data_feed: bool,
}

impl ModelCommit {
    /// A commit into `table_name` (`layer.name`, for errors) that records nothing extra yet.
    pub fn new(table_name: impl Into<String>) -> ModelCommit {
        ModelCommit {
            table_name: table_name.into(),
            operation: None,
            metadata: HashMap::new(),
            app_transactions: Vec::new(),
            partition_columns: Vec::new(),
            description: None,
            change_data_feed: false,
        }
    }

    /// Store `key: value` in the commit info (run id, model, …).
    pub fn with_metadata(
        mut self,
        key: impl Into<String>,
        value: impl Into<serde_json::Value>,
    ) -> ModelCommit {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Record the app transaction `app_id` → `version` in the same commit (Delta's `txn`
    /// action; readers ask for it with `transaction_version`).
    pub fn with_app_transaction(mut self, app_id: impl Into<String>, version: i64) -> ModelCommit {
        self.app_transactions
            .push(Transaction::new(app_id.into(), version));
        self
    }

    /// What the commit is, as errors name it (`scd2 merge`, …); by default the operation's own
    /// name (`write`, `append`, `merge`, `add new columns`).
    pub fn with_operation(mut self, operation: &'static str) -> ModelCommit {
        self.operation = Some(operation);
        self
    }

    /// Partition the table by these columns ([`overwrite`](Self::overwrite) only: a table's
    /// partitioning is chosen when it is written whole). Empty: not partitioned.
    pub fn with_partition_columns(mut self, columns: Vec<String>) -> ModelCommit {
        self.partition_columns = columns;
        self
    }

    /// The table's description ([`overwrite`](Self::overwrite) only).
    pub fn with_description(mut self, description: Option<String>) -> ModelCommit {
        self.description = description;
        self
    }

    /// Create the table with the change data feed on (`delta.enableChangeDataFeed`), so that
    /// readers of the rows a MERGE changed get them from the feed rather than the whole table
    /// ([`overwrite`](Self::overwrite) and [`append`](Self::append), when they create the table).
    pub fn with_change_data_feed(mut self, on: bool) -> ModelCommit {
        self.change_data_feed = on;
        self
    }

    fn configuration(&self) -> Vec<(&'static str, Option<&'static str>)> {
        match self.change_data_feed {
            true => vec![(CHANGE_DATA_FEED, Some("true"))],
            false => Vec::new(),
        }
    }

    fn error(
        &self,
        default: &'static str,
    ) -> impl Fn(deltalake::DeltaTableError) -> LakeError + use<> {
        let table = self.table_name.clone();
        let operation = self.operation.unwrap_or(default);
        move |e| LakeError::delta(&table, operation, e)
    }

    fn properties(&mut self) -> CommitProperties {
        CommitProperties::default()
            .with_metadata(std::mem::take(&mut self.metadata))
            .with_application_transactions(std::mem::take(&mut self.app_transactions))
    }

    /// Replace the table's rows and schema with `data` (creating the table when `table` does
    /// not exist yet).
    pub async fn overwrite(
        mut self,
        table: DeltaTable,
        ctx: &SessionContext,
        data: DataFrame,
    ) -> Result<DeltaTable, LakeError> {
        let error = self.error("write");
        let mut write = table
            .write(Vec::new())
            .with_input_plan(data.logical_plan().clone())
            .with_save_mode(SaveMode::Overwrite)
            .with_schema_mode(SchemaMode::Overwrite)
            .with_configuration(self.configuration())
            .with_session_state(Arc::new(ctx.state()))
            .with_commit_properties(self.properties());
        if !self.partition_columns.is_empty() {
            write = write.with_partition_columns(std::mem::take(&mut self.partition_columns));
        }
        if let Some(d) = self.description.take() {
            write = write.with_description(d);
        }
        write.await.map_err(error)
    }

    /// Add `data`'s rows; columns the table lacks are added to it (creating the table when
    /// `table` does not exist yet).
    pub async fn append(
        mut self,
        table: DeltaTable,
        ctx: &SessionContext,
        data: DataFrame,
    ) -> Result<DeltaTable, LakeError> {
        let error = self.error("append");
        table
            .write(Vec::new())
            .with_input_plan(data.logical_plan().clone())
            .with_save_mode(SaveMode::Append)
            .with_schema_mode(SchemaMode::Merge)
            .with_configuration(self.configuration())
            .with_session_state(Arc::new(ctx.state()))
            .with_commit_properties(self.properties())
            .await
            .map_err(error)
    }

    /// Add `fields` (columns the table lacks) to the table's schema, no rows.
    pub async fn add_columns(
        mut self,
        table: DeltaTable,
        fields: Vec<Field>,
    ) -> Result<DeltaTable, LakeError> {
        let error = self.error("add new columns");
        let names = fields
            .iter()
            .map(|f| f.name().as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let schema = Schema::new(fields);
        let kernel: StructType =
            (&schema)
                .try_into_kernel()
                .map_err(|e: deltalake::arrow::error::ArrowError| LakeError::Schema {
                    table: self.table_name.clone(),
                    reason: format!("new columns {names} cannot be stored in Delta: {e}"),
                })?;
        table
            .add_columns()
            .with_fields(kernel.fields().cloned().collect::<Vec<StructField>>())
            .with_commit_properties(self.properties())
            .await
            .map_err(error)
    }

    /// Prepare a MERGE of `source` into `table` on `on`, a predicate naming the source's
    /// columns `s.<column>` and the table's `t.<column>`; add clauses, then
    /// [`execute`](MergeInto::execute).
    pub fn merge(
        self,
        table: DeltaTable,
        ctx: &SessionContext,
        source: DataFrame,
        on: impl Into<String>,
    ) -> MergeInto {
        MergeInto {
            commit: self,
            table,
            ctx: ctx.clone(),
            source,
            on: on.into(),
            merge_schema: false,
            matched_update: None,
            not_matched_insert: None,
        }
    }
}

/// One clause of a MERGE: an optional condition and the columns it sets, each to a SQL
/// expression over `s.<column>` (source) and `t.<column>` (table).
#[derive(Debug, Clone, Default)]
pub struct MergeClause {
    predicate: Option<String>,
    set: Vec<(String, String)>,
}

impl MergeClause {
    /// A clause that applies to every row it matches and sets nothing yet.
    pub fn new() -> MergeClause {
        MergeClause::default()
    }

    /// Apply only to rows for which `predicate` holds; `None`: to every row.
    pub fn with_predicate(mut self, predicate: Option<String>) -> MergeClause {
        self.predicate = predicate;
        self
    }

    /// Set the table's `column` (its name as is, not parsed) to `expression`.
    pub fn set(mut self, column: impl Into<String>, expression: impl Into<String>) -> MergeClause {
        self.set.push((column.into(), expression.into()));
        self
    }
}

/// Rows a MERGE read and changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergeCounts {
    /// Rows of the source.
    pub source_rows: u64,
    /// Rows inserted into the table.
    pub inserted: u64,
    /// Rows of the table updated.
    pub updated: u64,
}

/// A MERGE being prepared: [`ModelCommit::merge`], clauses, [`execute`](Self::execute).
pub struct MergeInto {
    commit: ModelCommit,
    table: DeltaTable,
    ctx: SessionContext,
    source: DataFrame,
    on: String,
    merge_schema: bool,
    matched_update: Option<MergeClause>,
    not_matched_insert: Option<MergeClause>,
}

impl MergeInto {
    /// Add the source's columns that the table lacks to the table (delta-rs's `merge_schema`);
    /// off by default.
    pub fn with_merge_schema(mut self, merge_schema: bool) -> MergeInto {
        self.merge_schema = merge_schema;
        self
    }

    /// Update the table's rows that match a source row.
    pub fn when_matched_update(mut self, clause: MergeClause) -> MergeInto {
        self.matched_update = Some(clause);
        self
    }

    /// Insert the source rows that match no row of the table.
    pub fn when_not_matched_insert(mut self, clause: MergeClause) -> MergeInto {
        self.not_matched_insert = Some(clause);
        self
    }

    /// Run the MERGE: one commit, or an error naming the table.
    pub async fn execute(self) -> Result<(DeltaTable, MergeCounts), LakeError> {
        let MergeInto {
            mut commit,
            table,
            ctx,
            source,
            on,
            merge_schema,
            matched_update,
            not_matched_insert,
        } = self;
        let table_name = commit.table_name.clone();
        let planning = |e| LakeError::delta(&table_name, "plan merge", e);
        let error = commit.error("merge");
        let mut merge = table
            .merge(source, on)
            .with_source_alias("s")
            .with_target_alias("t")
            .with_merge_schema(merge_schema)
            .with_session_state(Arc::new(ctx.state()))
            .with_commit_properties(commit.properties());
        if let Some(clause) = matched_update {
            merge = merge
                .when_matched_update(|mut u| {
                    if let Some(p) = clause.predicate {
                        u = u.predicate(p);
                    }
                    for (column, expression) in clause.set {
                        u = u.update(Column::new_unqualified(column), expression);
                    }
                    u
                })
                .map_err(planning)?;
        }
        if let Some(clause) = not_matched_insert {
            merge = merge
                .when_not_matched_insert(|mut i| {
                    if let Some(p) = clause.predicate {
                        i = i.predicate(p);
                    }
                    for (column, expression) in clause.set {
                        i = i.set(Column::new_unqualified(column), expression);
                    }
                    i
                })
                .map_err(planning)?;
        }
        let (table, metrics) = merge.await.map_err(error)?;
        Ok((
            table,
            MergeCounts {
                source_rows: metrics.num_source_rows as u64,
                inserted: metrics.num_target_rows_inserted as u64,
                updated: metrics.num_target_rows_updated as u64,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::Lake;

    async fn app_version(table: &DeltaTable, app_id: &str) -> Option<i64> {
        table
            .snapshot()
            .unwrap()
            .transaction_version(table.log_store().as_ref(), app_id)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn commits_record_metadata_app_transactions_and_merge_counts() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(dir.path().to_str().unwrap(), dir.path(), &BTreeMap::new()).unwrap();
        let ctx = deltalake::delta_datafusion::DeltaSessionContext::new().into_inner();
        let rows = ctx
            .sql("SELECT * FROM (VALUES (1, 'a'), (2, 'b')) AS v(id, name)")
            .await
            .unwrap();
        let table = ModelCommit::new("silver.t")
            .with_metadata("tributary.run_id", "r1")
            .with_app_transaction("tributary:bronze.x", 3)
            .overwrite(lake.prepare("silver", "t").unwrap(), &ctx, rows)
            .await
            .unwrap();
        assert_eq!(app_version(&table, "tributary:bronze.x").await, Some(3));
        let last = lake.history("silver", "t", &table, 1).await.unwrap();
        assert_eq!(last[0].run_id.as_deref(), Some("r1"));

        // Key 2 updates, key 3 inserts, and the new column `flag` is added.
        let source = ctx
            .sql("SELECT * FROM (VALUES (2, 'B', true), (3, 'c', false)) AS v(id, name, flag)")
            .await
            .unwrap();
        let all = |clause: MergeClause| {
            ["id", "name", "flag"]
                .into_iter()
                .fold(clause, |c, n| c.set(n, format!("s.{n}")))
        };
        let (table, counts) = ModelCommit::new("silver.t")
            .with_app_transaction("tributary:bronze.x", 4)
            .merge(table, &ctx, source, "t.id = s.id")
            .with_merge_schema(true)
            .when_matched_update(all(MergeClause::new()))
            .when_not_matched_insert(all(MergeClause::new()))
            .execute()
            .await
            .unwrap();
        assert_eq!(
            counts,
            MergeCounts {
                source_rows: 2,
                inserted: 1,
                updated: 1
            }
        );
        assert_eq!(app_version(&table, "tributary:bronze.x").await, Some(4));
        let schema = crate::table_schema("silver.t", &table).unwrap();
        assert!(schema.field_with_name("flag").is_ok());

        // A failing commit names the table and what was being done.
        let rows = ctx.sql("SELECT 5 AS id").await.unwrap();
        let err = ModelCommit::new("silver.t")
            .with_operation("scd2 merge")
            .merge(table, &ctx, rows, "t.missing = s.id")
            .when_not_matched_insert(MergeClause::new().set("id", "s.id"))
            .execute()
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("table silver.t: scd2 merge failed"),
            "{err}"
        );
    }
}
