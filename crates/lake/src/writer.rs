use std::collections::HashMap;
use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::arrow::array::{RecordBatch, new_null_array};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake::kernel::engine::arrow_conversion::{TryIntoArrow, TryIntoKernel};
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, MetadataExt, StructType};
use deltalake::operations::create::CreateBuilder;
use deltalake::parquet::basic::Compression;
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter, WriteMode as DeltaWriteMode};
use futures::StreamExt;
use url::Url;

use crate::{Lake, LakeError, WATERMARK_PROPERTY, Watermark};

/// Target size of the Parquet files a load writes; larger loads roll over to new files.
const TARGET_FILE_BYTES: u64 = 128 * 1024 * 1024;
/// Rows per Parquet row group: bounds the writer's buffered, encoded data.
const ROW_GROUP_ROWS: usize = 128 * 1024;

/// How a load changes the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Add rows.
    Append,
    /// Replace all rows (and the schema) in the same commit.
    Overwrite,
}

/// What a commit did.
#[derive(Debug, Clone)]
pub struct CommitSummary {
    /// The table version after the load (unchanged when nothing was committed).
    pub version: u64,
    /// Rows written.
    pub rows: u64,
    /// Files added.
    pub files: usize,
    /// Whether a new version was committed (an append of zero rows commits nothing).
    pub committed: bool,
}

/// Streams batches into Parquet files of one table and commits them in a single Delta commit.
///
/// Nothing is visible to readers until [`TableWriter::commit`] succeeds; dropping the writer
/// (or failing) leaves the table exactly as it was (written files stay unreferenced until
/// `vacuum`).
pub struct TableWriter {
    table_name: String,
    url: Url,
    options: HashMap<String, String>,
    existing: Option<DeltaTable>,
    mode: WriteMode,
    /// Schema of the table after the commit (existing columns first, then new ones).
    target_schema: SchemaRef,
    schema_changed: bool,
    writer: RecordBatchWriter,
    rows: u64,
}

impl TableWriter {
    /// Prepare a load of `schema`-shaped batches into `<layer>.<name>`.
    ///
    /// Appends to an existing table accept new columns (added to the table) and missing columns
    /// (written as NULL); a column whose type differs is an error naming it. Overwrites replace
    /// the schema.
    pub async fn new(
        lake: &Lake,
        layer: &str,
        name: &str,
        schema: SchemaRef,
        mode: WriteMode,
    ) -> Result<TableWriter, LakeError> {
        let table_name = format!("{layer}.{name}");
        let url = lake.table_url(layer, name)?;
        let existing = lake.open(layer, name).await?;
        let (target_schema, schema_changed) = match (&existing, mode) {
            (None, _) => (normalize(&schema), true),
            (Some(t), WriteMode::Overwrite) => {
                let current = table_arrow_schema(&table_name, t)?;
                let new = normalize(&schema);
                let changed = !same_fields(&current, &new);
                (new, changed)
            }
            (Some(t), WriteMode::Append) => {
                let current = table_arrow_schema(&table_name, t)?;
                merge_for_append(&table_name, &current, &schema)?
            }
        };
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .build();
        let writer = RecordBatchWriter::try_new(
            url.as_str(),
            target_schema.clone(),
            None,
            Some(lake.options().clone()),
        )
        .map_err(|e| LakeError::delta(&table_name, "prepare write", e))?
        .with_writer_properties(props)
        .with_target_file_size(TARGET_FILE_BYTES);
        Ok(TableWriter {
            table_name,
            url,
            options: lake.options().clone(),
            existing,
            mode,
            target_schema,
            schema_changed,
            writer,
            rows: 0,
        })
    }

    /// The schema batches are written in.
    pub fn schema(&self) -> SchemaRef {
        self.target_schema.clone()
    }

    /// Write one batch (streamed to storage; not yet visible).
    pub async fn write(&mut self, batch: RecordBatch) -> Result<(), LakeError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let batch = conform(&self.table_name, &batch, &self.target_schema)?;
        self.rows += batch.num_rows() as u64;
        self.writer
            .write_with_mode(batch, DeltaWriteMode::Default)
            .await
            .map_err(|e| LakeError::delta(&self.table_name, "write", e))
    }

    /// The target schema as a Delta (kernel) schema.
    fn kernel_schema(&self) -> Result<StructType, LakeError> {
        self.target_schema
            .as_ref()
            .try_into_kernel()
            .map_err(|e| LakeError::Schema {
                table: self.table_name.clone(),
                reason: format!("the schema cannot be stored in Delta: {e}"),
            })
    }

    /// Commit everything written, with `watermark` stored in the same commit, and
    /// `app_metadata` in the commit info (run id, source, …).
    pub async fn commit(
        mut self,
        watermark: Option<Watermark>,
        app_metadata: HashMap<String, serde_json::Value>,
    ) -> Result<CommitSummary, LakeError> {
        let name = self.table_name.clone();
        let adds = self
            .writer
            .flush()
            .await
            .map_err(|e| LakeError::delta(&name, "finish files", e))?;
        let files = adds.len();
        let props = CommitProperties::default().with_metadata(app_metadata);
        let watermark_json = match &watermark {
            Some(w) => Some(serde_json::to_string(w).map_err(|e| LakeError::Watermark {
                table: name.clone(),
                reason: e.to_string(),
            })?),
            None => None,
        };

        let replace = self.mode == WriteMode::Overwrite && self.schema_changed;
        if self.existing.is_none() || replace {
            // First load, or a full load with a new schema: create (or replace) the table with
            // its data in one commit. Replacing computes the protocol the new schema needs
            // (e.g. timestampNtz) and removes the previous files in the same commit.
            let kernel_schema = self.kernel_schema()?;
            let mut configuration: HashMap<String, Option<String>> = HashMap::new();
            if let Some(json) = watermark_json {
                configuration.insert(WATERMARK_PROPERTY.to_string(), Some(json));
            }
            let table = CreateBuilder::new()
                .with_save_mode(if replace {
                    SaveMode::Overwrite
                } else {
                    SaveMode::ErrorIfExists
                })
                .with_location(self.url.as_str())
                .with_storage_options(self.options.clone())
                .with_columns(kernel_schema.fields().cloned())
                .with_configuration(configuration)
                .with_raise_if_key_not_exists(false)
                .with_actions(adds.into_iter().map(Action::Add))
                .with_commit_properties(props)
                .await
                .map_err(|e| LakeError::delta(&name, "create table", e))?;
            return Ok(CommitSummary {
                version: table.version().unwrap_or(0),
                rows: self.rows,
                files,
                committed: true,
            });
        }
        let Some(table) = self.existing.take() else {
            return Err(LakeError::delta(
                &name,
                "commit",
                deltalake::DeltaTableError::Generic("internal error: the table vanished".into()),
            ));
        };

        let snapshot = table
            .snapshot()
            .map_err(|e| LakeError::delta(&name, "read snapshot", e))?;
        if self.mode == WriteMode::Append && self.rows == 0 {
            return Ok(CommitSummary {
                version: snapshot.version(),
                rows: 0,
                files: 0,
                committed: false,
            });
        }
        let mut actions: Vec<Action> = Vec::new();
        let current_metadata = snapshot.metadata().clone();
        let mut metadata = current_metadata.clone();
        if self.schema_changed {
            let kernel_schema = self.kernel_schema()?;
            metadata = metadata
                .with_schema(&kernel_schema)
                .map_err(|e| LakeError::delta(&name, "change schema", e.into()))?;
        }
        let old_watermark = current_metadata.configuration().get(WATERMARK_PROPERTY);
        match (&watermark_json, self.mode) {
            (Some(json), _) if old_watermark != Some(json) => {
                metadata = metadata
                    .add_config_key(WATERMARK_PROPERTY.to_string(), json.clone())
                    .map_err(|e| LakeError::delta(&name, "store watermark", e.into()))?;
            }
            (None, WriteMode::Overwrite) if old_watermark.is_some() => {
                metadata = metadata
                    .remove_config_key(WATERMARK_PROPERTY)
                    .map_err(|e| LakeError::delta(&name, "clear watermark", e.into()))?;
            }
            _ => {}
        }
        if metadata != current_metadata {
            actions.push(Action::Metadata(metadata));
        }
        if self.mode == WriteMode::Overwrite {
            let log_store = table.log_store();
            let mut files_stream = snapshot.snapshot().file_views(log_store.as_ref(), None);
            while let Some(f) = files_stream.next().await {
                let f = f.map_err(|e| LakeError::delta(&name, "list files to replace", e))?;
                actions.push(Action::Remove(f.remove_action(true)));
            }
        }
        actions.extend(adds.into_iter().map(Action::Add));
        let operation = DeltaOperation::Write {
            mode: match self.mode {
                WriteMode::Append => SaveMode::Append,
                WriteMode::Overwrite => SaveMode::Overwrite,
            },
            partition_by: None,
            predicate: None,
        };
        let finalized = CommitBuilder::from(props)
            .with_actions(actions)
            .build(Some(snapshot), table.log_store(), operation)
            .await
            .map_err(|e| LakeError::delta(&name, "commit", e))?;
        Ok(CommitSummary {
            version: finalized.version(),
            rows: self.rows,
            files,
            committed: true,
        })
    }
}

/// The table's schema as Arrow.
fn table_arrow_schema(table_name: &str, t: &DeltaTable) -> Result<SchemaRef, LakeError> {
    let snapshot = t
        .snapshot()
        .map_err(|e| LakeError::delta(table_name, "read snapshot", e))?;
    let kernel = snapshot.schema();
    let arrow: Schema = kernel
        .as_ref()
        .try_into_arrow()
        .map_err(|e| LakeError::delta(table_name, "read schema", e.into()))?;
    Ok(Arc::new(arrow))
}

/// All fields nullable (Delta columns written by loads are nullable).
fn normalize(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    Arc::new(Schema::new(fields))
}

fn same_fields(a: &SchemaRef, b: &SchemaRef) -> bool {
    a.fields().len() == b.fields().len()
        && a.fields()
            .iter()
            .zip(b.fields().iter())
            .all(|(x, y)| x.name() == y.name() && same_type(x.data_type(), y.data_type()))
}

/// Types equal, ignoring nullability and the names of list item fields.
fn same_type(a: &DataType, b: &DataType) -> bool {
    match (a, b) {
        (DataType::List(x), DataType::List(y))
        | (DataType::LargeList(x), DataType::LargeList(y)) => {
            same_type(x.data_type(), y.data_type())
        }
        (DataType::Struct(x), DataType::Struct(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|(p, q)| p.name() == q.name() && same_type(p.data_type(), q.data_type()))
        }
        (DataType::Timestamp(u1, t1), DataType::Timestamp(u2, t2)) => {
            u1 == u2 && t1.is_some() == t2.is_some()
        }
        _ => a == b,
    }
}

/// The schema of an append: the table's columns in order, then columns new in the source.
fn merge_for_append(
    table_name: &str,
    current: &SchemaRef,
    incoming: &SchemaRef,
) -> Result<(SchemaRef, bool), LakeError> {
    let mut fields: Vec<Field> = current
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut changed = false;
    for f in incoming.fields() {
        match current.field_with_name(f.name()) {
            Ok(existing) => {
                if !same_type(existing.data_type(), f.data_type()) {
                    return Err(LakeError::Schema {
                        table: table_name.to_string(),
                        reason: format!(
                            "column {} is {} in the table but {} in the source; \
                             run `tributary run --full-refresh --select {table_name}` to reload it with the new type",
                            f.name(),
                            existing.data_type(),
                            f.data_type()
                        ),
                    });
                }
            }
            Err(_) => {
                fields.push(f.as_ref().clone().with_nullable(true));
                changed = true;
            }
        }
    }
    Ok((Arc::new(Schema::new(fields)), changed))
}

/// Reorder a batch's columns into `target` (by name), filling missing ones with NULL and
/// casting to the table's exact types (e.g. list item names, time zone spelling).
fn conform(
    table_name: &str,
    batch: &RecordBatch,
    target: &SchemaRef,
) -> Result<RecordBatch, LakeError> {
    if batch.schema() == *target {
        return Ok(batch.clone());
    }
    let mut columns = Vec::with_capacity(target.fields().len());
    for f in target.fields() {
        let col = match batch.schema().index_of(f.name()) {
            Ok(i) => {
                let c = batch.column(i);
                if c.data_type() == f.data_type() {
                    c.clone()
                } else {
                    deltalake::arrow::compute::cast(c, f.data_type()).map_err(|e| {
                        LakeError::Schema {
                            table: table_name.to_string(),
                            reason: format!(
                                "column {}: cannot store {} as {}: {e}",
                                f.name(),
                                c.data_type(),
                                f.data_type()
                            ),
                        }
                    })?
                }
            }
            Err(_) => new_null_array(f.data_type(), batch.num_rows()),
        };
        columns.push(col);
    }
    RecordBatch::try_new(target.clone(), columns).map_err(|e| LakeError::Schema {
        table: table_name.to_string(),
        reason: e.to_string(),
    })
}
