use std::collections::HashMap;
use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, new_null_array};
use deltalake::arrow::compute::kernels::cmp::distinct;
use deltalake::arrow::compute::{CastOptions, cast_with_options};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake::arrow::util::display::array_value_to_string;
use deltalake::kernel::engine::arrow_conversion::{TryIntoArrow, TryIntoKernel};
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, MetadataExt, StructType};
use deltalake::operations::create::CreateBuilder;
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::parquet::schema::types::ColumnPath;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter, WriteMode as DeltaWriteMode};
use futures::StreamExt;
use url::Url;

use crate::schema::{
    SchemaChangePolicy, SchemaDiff, diff_schemas, is_numeric, same_type, type_name,
};
use crate::{Lake, LakeError, WATERMARK_PROPERTY, Watermark};

/// Rows per row group: `row_group_rows`, fewer when rows of `schema` are so wide that a row
/// group would take more than `row_group_bytes`; never fewer than 1024.
fn row_group_rows(options: &crate::lake::WriteOptions, schema: &Schema) -> usize {
    let width: u64 = schema
        .fields()
        .iter()
        .map(|f| estimated_width(f.data_type()))
        .sum::<u64>()
        .max(1);
    let by_bytes = usize::try_from(options.row_group_bytes / width).unwrap_or(usize::MAX);
    options.row_group_rows.min(by_bytes).max(1024)
}

/// Whether most non-null values of a (top-level, primitive or binary) column are distinct:
/// at least 100 values and more distinct ones than half of them.
fn mostly_distinct(array: &dyn Array) -> bool {
    let values = array.len() - array.null_count();
    if values < 100 {
        return false;
    }
    let data = array.to_data();
    let mut seen: std::collections::HashSet<&[u8]> = std::collections::HashSet::new();
    if let Some(width) = array.data_type().primitive_width() {
        let Some(buffer) = data.buffers().first() else {
            return false;
        };
        let start = data.offset() * width;
        let Some(bytes) = buffer.as_slice().get(start..start + data.len() * width) else {
            return false;
        };
        for (i, v) in bytes.chunks_exact(width).enumerate() {
            if array.is_valid(i) {
                seen.insert(v);
            }
        }
    } else if let Some(strings) = array.as_string_opt::<i32>() {
        seen.extend(strings.iter().flatten().map(str::as_bytes));
    } else if let Some(binary) = array.as_binary_opt::<i32>() {
        seen.extend(binary.iter().flatten());
    } else {
        return false;
    }
    seen.len() * 2 > values
}

/// Bytes one value of `data_type` takes in Arrow, about.
fn estimated_width(data_type: &DataType) -> u64 {
    match data_type {
        DataType::Utf8 | DataType::Binary | DataType::LargeUtf8 | DataType::LargeBinary => 32,
        DataType::Utf8View | DataType::BinaryView => 32,
        DataType::List(f) | DataType::LargeList(f) => 8 + 4 * estimated_width(f.data_type()),
        DataType::Struct(fields) => fields.iter().map(|f| estimated_width(f.data_type())).sum(),
        DataType::Map(f, _) => 8 + 4 * estimated_width(f.data_type()),
        other => other.primitive_width().map(|w| w as u64).unwrap_or(16),
    }
}

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
    changes: SchemaDiff,
    /// Opened on the first batch, whose values choose each column's encoding.
    writer: Option<RecordBatchWriter>,
    write_options: crate::lake::WriteOptions,
    row_group_rows: usize,
    rows: u64,
}

/// Prepares a [`TableWriter`]: [`TableWriter::builder`], optional settings, [`build`](Self::build).
pub struct TableWriterBuilder<'a> {
    lake: &'a Lake,
    layer: String,
    name: String,
    schema: SchemaRef,
    mode: WriteMode,
    policy: Option<(SchemaChangePolicy, String)>,
}

impl TableWriterBuilder<'_> {
    /// Compare the table's schema with the new one and refuse, before anything is written,
    /// what `policy` refuses ([`SchemaDiff::check`]); `config_hint` says where the policy is
    /// configured (`ingest/erp.yaml (table orders)`), for the error message.
    ///
    /// Without this (`--full-refresh`, or a caller that checked itself) every change is
    /// accepted, as under [`SchemaChangePolicy::Allow`].
    pub fn with_schema_policy(
        mut self,
        policy: SchemaChangePolicy,
        config_hint: impl Into<String>,
    ) -> Self {
        self.policy = Some((policy, config_hint.into()));
        self
    }

    /// Open the table, compare schemas, apply the policy and prepare the Parquet writer.
    pub async fn build(self) -> Result<TableWriter, LakeError> {
        let TableWriterBuilder {
            lake,
            layer,
            name,
            schema,
            mode,
            policy,
        } = self;
        let table_name = format!("{layer}.{name}");
        let url = lake.table_url(&layer, &name)?;
        let existing = lake.open(&layer, &name).await?;
        let (target_schema, schema_changed, changes) = match &existing {
            None => (normalize(&schema), true, SchemaDiff::default()),
            Some(t) => {
                let current = table_arrow_schema(&table_name, t)?;
                let changes = diff_schemas(&current, &schema);
                if let Some((policy, hint)) = &policy {
                    changes.check(&table_name, *policy, hint)?;
                }
                match mode {
                    WriteMode::Overwrite => {
                        let new = normalize(&schema);
                        let changed = !same_fields(&current, &new);
                        (new, changed, changes)
                    }
                    WriteMode::Append => {
                        let (merged, changed) = merge_for_append(&current, &schema);
                        (merged, changed, changes)
                    }
                }
            }
        };
        let write_options = lake.write_options();
        let row_group_rows = row_group_rows(&write_options, &target_schema);
        Ok(TableWriter {
            table_name,
            url,
            options: lake.options().clone(),
            existing,
            mode,
            target_schema,
            schema_changed,
            changes,
            writer: None,
            write_options,
            row_group_rows,
            rows: 0,
        })
    }
}

impl TableWriter {
    /// Prepare a load of `schema`-shaped batches into `<layer>.<name>`, accepting every schema
    /// change (as [`SchemaChangePolicy::Allow`]); [`TableWriter::builder`] with
    /// [`TableWriterBuilder::with_schema_policy`] applies a policy instead.
    ///
    /// Appends to an existing table add new columns to it, write missing columns as NULL and
    /// keep the table's column types, casting each value (a value that does not fit is an
    /// error naming table, column and types). Overwrites replace the schema.
    pub async fn new(
        lake: &Lake,
        layer: &str,
        name: &str,
        schema: SchemaRef,
        mode: WriteMode,
    ) -> Result<TableWriter, LakeError> {
        TableWriter::builder(lake, layer, name, schema, mode)
            .build()
            .await
    }

    /// Start preparing a load of `schema`-shaped batches into `<layer>.<name>`.
    pub fn builder<'a>(
        lake: &'a Lake,
        layer: &str,
        name: &str,
        schema: SchemaRef,
        mode: WriteMode,
    ) -> TableWriterBuilder<'a> {
        TableWriterBuilder {
            lake,
            layer: layer.to_string(),
            name: name.to_string(),
            schema,
            mode,
            policy: None,
        }
    }

    /// How the new schema differs from the table's (empty for a new table).
    pub fn schema_changes(&self) -> &SchemaDiff {
        &self.changes
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
        let writer = match &mut self.writer {
            Some(w) => w,
            None => self.writer.insert(self.open_writer(&batch)?),
        };
        writer
            .write_with_mode(batch, DeltaWriteMode::Default)
            .await
            .map_err(|e| LakeError::delta(&self.table_name, "write", e))
    }

    /// The Parquet writer, its properties chosen from the load's first batch: dictionary
    /// encoding only for the columns whose values repeat (a dictionary of unique values costs
    /// a hash per value and saves nothing).
    fn open_writer(&self, first: &RecordBatch) -> Result<RecordBatchWriter, LakeError> {
        let o = &self.write_options;
        let mut props = WriterProperties::builder()
            .set_compression(o.compression)
            .set_max_row_group_row_count(Some(self.row_group_rows));
        for (field, column) in first.schema().fields().iter().zip(first.columns()) {
            if mostly_distinct(column.as_ref()) {
                props = props
                    .set_column_dictionary_enabled(ColumnPath::from(field.name().as_str()), false);
            }
        }
        Ok(RecordBatchWriter::try_new(
            self.url.as_str(),
            self.target_schema.clone(),
            None,
            Some(self.options.clone()),
        )
        .map_err(|e| LakeError::delta(&self.table_name, "prepare write", e))?
        .with_writer_properties(props.build())
        .with_target_file_size(o.target_file_bytes))
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
        let adds = match self.writer.as_mut() {
            Some(w) => w
                .flush()
                .await
                .map_err(|e| LakeError::delta(&name, "finish files", e))?,
            None => Vec::new(),
        };
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
        // An append of no rows commits nothing, unless it moves the watermark (a source that
        // tracks its own position, like a Delta table's version, may advance without rows).
        let old_watermark = snapshot.metadata().configuration().get(WATERMARK_PROPERTY);
        let moves_watermark = watermark_json
            .as_ref()
            .is_some_and(|json| old_watermark != Some(json));
        if self.mode == WriteMode::Append && self.rows == 0 && !moves_watermark {
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
        crate::pause::pause_point(&format!("before_commit.{name}")).await;
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
/// The Arrow schema of a Delta table (`table_name` is for errors).
pub fn table_schema(table_name: &str, t: &DeltaTable) -> Result<SchemaRef, LakeError> {
    table_arrow_schema(table_name, t)
}

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

/// The schema of an append: the table's columns (and types) in order, then columns new in the
/// source; whether it differs from the table's.
fn merge_for_append(current: &SchemaRef, incoming: &SchemaRef) -> (SchemaRef, bool) {
    let mut fields: Vec<Field> = current
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut changed = false;
    for f in incoming.fields() {
        if current.field_with_name(f.name()).is_err() {
            fields.push(f.as_ref().clone().with_nullable(true));
            changed = true;
        }
    }
    (Arc::new(Schema::new(fields)), changed)
}

/// Reorder a batch's columns into `target` (by name), filling missing ones with NULL and
/// casting to the table's exact types: cosmetic differences (list item names, time zone
/// spelling) and type changes, value by value.
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
                    cast_checked(table_name, f.name(), c, f.data_type())?
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

/// Cast a column to the table's type. A value that does not fit (overflow, digits lost,
/// unparsable text) is an error naming table, column, types and the value: never NULL, never
/// rounded.
fn cast_checked(
    table_name: &str,
    column: &str,
    c: &ArrayRef,
    to: &DataType,
) -> Result<ArrayRef, LakeError> {
    let from = c.data_type();
    let not_fit = |detail: String| LakeError::Schema {
        table: table_name.to_string(),
        reason: format!(
            "column {column}: {detail}; the table stores {} and the new rows bring {}. \
             Run `tributary run --full-refresh --select {table_name}` to rebuild the table with \
             the new type",
            type_name(to),
            type_name(from)
        ),
    };
    let options = CastOptions {
        safe: false,
        ..CastOptions::default()
    };
    let out = cast_with_options(c, to, &options)
        .map_err(|e| not_fit(format!("a value does not fit ({e})")))?;
    if !same_type(from, to) && is_numeric(from) && is_numeric(to) {
        // Numeric casts may round or truncate without an error (1.5 -> 1, f64 -> f32, a
        // decimal losing scale): every value must come back unchanged.
        let back = cast_with_options(&out, from, &options)
            .map_err(|e| not_fit(format!("a value does not fit ({e})")))?;
        let differs = distinct(&back, c).map_err(|e| not_fit(format!("cannot compare ({e})")))?;
        if let Some(i) = (0..differs.len()).find(|&i| differs.is_valid(i) && differs.value(i)) {
            let value = array_value_to_string(c, i).unwrap_or_else(|_| format!("in row {i}"));
            return Err(not_fit(format!("the value {value} does not fit")));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::arrow::array::{Decimal128Array, Float64Array, Int32Array, Int64Array};

    fn one_column(name: &str, a: ArrayRef) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new(
            name,
            a.data_type().clone(),
            true,
        )]));
        RecordBatch::try_new(schema, vec![a]).unwrap()
    }

    fn target(cols: &[(&str, DataType)]) -> SchemaRef {
        Arc::new(Schema::new(
            cols.iter()
                .map(|(n, t)| Field::new(*n, t.clone(), true))
                .collect::<Vec<_>>(),
        ))
    }

    #[test]
    fn values_that_fit_are_cast_to_the_table_type() {
        let b = one_column(
            "q",
            Arc::new(Int64Array::from(vec![Some(1), None, Some(-2_147_483_648)])),
        );
        let out = conform(
            "bronze.t",
            &b,
            &target(&[("q", DataType::Int32), ("gone", DataType::Utf8)]),
        )
        .unwrap();
        let q = out.column(0).as_any().downcast_ref::<Int32Array>().unwrap();
        assert_eq!(
            q,
            &Int32Array::from(vec![Some(1), None, Some(-2_147_483_648)])
        );
        assert_eq!(out.column(1).null_count(), 3);
    }

    #[test]
    fn a_value_that_does_not_fit_is_an_error_naming_table_column_and_types() {
        let b = one_column("q", Arc::new(Int64Array::from(vec![1, 3_000_000_000])));
        let e = conform("bronze.t", &b, &target(&[("q", DataType::Int32)]))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("table bronze.t: column q: "), "{e}");
        assert!(e.contains("3000000000"), "{e}");
        assert!(
            e.contains("stores int and the new rows bring bigint"),
            "{e}"
        );
        // Decimal precision: 1234567890.12 fits decimal(12,2), not decimal(10,2).
        let d = Decimal128Array::from(vec![123_456_789_012_i128, 1])
            .with_precision_and_scale(12, 2)
            .unwrap();
        let b = one_column("amount", Arc::new(d));
        let e = conform(
            "bronze.t",
            &b,
            &target(&[("amount", DataType::Decimal128(10, 2))]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("column amount"), "{e}");
        assert!(e.contains("decimal(10,2)"), "{e}");
        // Truncation and rounding are refused, not applied.
        let b = one_column("price", Arc::new(Float64Array::from(vec![2.0, 1.5])));
        let e = conform("bronze.t", &b, &target(&[("price", DataType::Int64)]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("the value 1.5 does not fit"), "{e}");
        let b = one_column("price", Arc::new(Float64Array::from(vec![0.1])));
        let e = conform("bronze.t", &b, &target(&[("price", DataType::Float32)]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("the value 0.1 does not fit"), "{e}");
        let b = one_column("price", Arc::new(Float64Array::from(vec![2.0, 0.5])));
        let out = conform("bronze.t", &b, &target(&[("price", DataType::Float32)])).unwrap();
        assert_eq!(out.column(0).data_type(), &DataType::Float32);
    }
}
