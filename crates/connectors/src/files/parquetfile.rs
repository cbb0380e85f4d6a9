//! Parquet: the file's Arrow schema normalized for Delta Lake, read in batches.

use std::sync::Arc;

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::compute::{CastOptions, cast_with_options};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake::parquet::arrow::arrow_reader::{
    ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder,
};
use tributary_core::SourceError;
use tributary_core::config::TableConfig;

use super::{FileInput, ReadCtx};
use crate::util::{NormalizeError, normalize_batch_for_delta, normalize_schema_for_delta};

/// The normalized schema of the first file.
pub(crate) struct ParquetPlan {
    schema: SchemaRef,
    first_file: String,
}

/// The file's own Arrow schema with `cast` columns as text.
fn cast_schema(table: &TableConfig, schema: &Schema) -> Schema {
    Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| {
                if table.cast.contains_key(f.name()) {
                    Field::new(f.name(), DataType::Utf8, true)
                } else {
                    f.as_ref().clone()
                }
            })
            .collect::<Vec<_>>(),
    )
}

fn open(
    input: &FileInput,
    batch_size: usize,
) -> Result<(SchemaRef, ParquetRecordBatchReader), SourceError> {
    let file = std::fs::File::open(&input.path).map_err(|e| input.read_error(e))?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| SourceError::BadRecord {
            file: input.display.clone(),
            line: 0,
            reason: format!("not a readable Parquet file: {e}"),
        })?;
    let schema = builder.schema().clone();
    let reader = builder
        .with_batch_size(batch_size.max(1))
        .build()
        .map_err(|e| input.read_error(e))?;
    Ok((schema, reader))
}

fn unsupported(table: &TableConfig, e: NormalizeError) -> SourceError {
    SourceError::UnsupportedType {
        table: table.name.clone(),
        column: e.column,
        source_type: e.source_type,
        reason: e.reason,
    }
}

/// Field names and types, ignoring metadata and nullability.
fn same_columns(a: &Schema, b: &Schema) -> bool {
    a.fields().len() == b.fields().len()
        && a.fields()
            .iter()
            .zip(b.fields())
            .all(|(x, y)| x.name() == y.name() && x.data_type() == y.data_type())
}

fn describe(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("{} {}", f.name(), f.data_type()))
        .collect::<Vec<_>>()
        .join(", ")
}

impl ParquetPlan {
    pub(crate) fn infer(
        table: &TableConfig,
        input: &FileInput,
    ) -> Result<ParquetPlan, SourceError> {
        let (schema, _) = open(input, 1)?;
        let normalized = normalize_schema_for_delta(&cast_schema(table, &schema))
            .map_err(|e| unsupported(table, e))?;
        Ok(ParquetPlan {
            schema: Arc::new(normalized),
            first_file: input.display.clone(),
        })
    }

    pub(crate) fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Read one file into batches. `Ok(false)` when the consumer is gone.
    pub(crate) fn read_file(
        &self,
        input: &FileInput,
        ctx: &mut ReadCtx,
    ) -> Result<bool, SourceError> {
        let table = ctx.table.clone();
        let (schema, reader) = open(input, ctx.batch_size)?;
        let normalized = normalize_schema_for_delta(&cast_schema(&table, &schema))
            .map_err(|e| unsupported(&table, e))?;
        if !same_columns(&normalized, &self.schema) {
            return Err(SourceError::Config {
                table: table.name.clone(),
                reason: format!(
                    "{} has columns [{}] but the first file {} has [{}]; every file of a table must have the same schema",
                    input.display,
                    describe(&normalized),
                    self.first_file,
                    describe(&self.schema)
                ),
            });
        }
        let cast_options = CastOptions {
            safe: false,
            ..Default::default()
        };
        for batch in reader {
            let batch = batch.map_err(|e| input.read_error(e))?;
            let batch = if table.cast.is_empty() {
                batch
            } else {
                let columns = batch
                    .columns()
                    .iter()
                    .zip(batch.schema().fields())
                    .map(|(c, f)| {
                        if table.cast.contains_key(f.name()) {
                            cast_with_options(c, &DataType::Utf8, &cast_options).map_err(|e| {
                                SourceError::BadValue {
                                    table: table.name.clone(),
                                    column: f.name().clone(),
                                    source_type: f.data_type().to_string(),
                                    value: String::new(),
                                    reason: format!("cannot render as text: {e}"),
                                }
                            })
                        } else {
                            Ok(c.clone())
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                RecordBatch::try_new(Arc::new(cast_schema(&table, &batch.schema())), columns)
                    .map_err(|e| SourceError::Internal(format!("casting a Parquet batch: {e}")))?
            };
            let normalized =
                normalize_batch_for_delta(&batch).map_err(|e| SourceError::BadValue {
                    table: format!("{} (file {})", table.name, input.display),
                    column: e.column,
                    source_type: e.source_type,
                    value: e.value.unwrap_or_default(),
                    reason: e.reason,
                })?;
            let out = RecordBatch::try_new(self.schema.clone(), normalized.columns().to_vec())
                .map_err(|e| SourceError::Internal(format!("assembling a Parquet batch: {e}")))?;
            if !ctx.send(out, input) {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
