//! The `_tributary_` columns a load adds to every bronze row, and the quarantine table of
//! malformed records.

use std::collections::HashMap;
use std::sync::Arc;

use deltalake::arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use tracing::warn;
use tributary_core::config::LoadSpec;
use tributary_core::{FileStamp, QuarantinedRecord};
use tributary_lake::{TableWriter, WriteMode};

use crate::{IngestError, LoadContext};

/// When the row was loaded (UTC, microseconds): one value per load.
pub const LOADED_AT: &str = "_tributary_loaded_at";
/// The run that loaded the row.
pub const RUN_ID: &str = "_tributary_run_id";
/// Where the row came from: `connection:table`, or `connection:path` for files.
pub const SOURCE: &str = "_tributary_source";
/// Added by `new_files` loads: the size of the row's file, in bytes.
pub const FILE_SIZE: &str = "_tributary_file_size";
/// Added by `new_files` loads: the modification time of the row's file.
pub const FILE_MODIFIED: &str = "_tributary_file_modified";

/// Quarantine table `<layer>._quarantine_<name>`: the file of a malformed record.
pub const QUARANTINE_FILE: &str = "_tributary_file";
/// Quarantine table: the record's 1-based line.
pub const QUARANTINE_LINE: &str = "_tributary_line";
/// Quarantine table: the record as read.
pub const QUARANTINE_RAW: &str = "_tributary_raw";
/// Quarantine table: why it could not be loaded.
pub const QUARANTINE_ERROR: &str = "_tributary_error";

/// `schema` with the metadata columns appended (and the file columns for `new_files` loads).
/// Source columns become nullable: a later source may send NULLs where an earlier did not.
pub(crate) fn with_metadata_columns(schema: &SchemaRef, file_columns: bool) -> SchemaRef {
    let mut fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    fields.push(Field::new(
        LOADED_AT,
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        false,
    ));
    fields.push(Field::new(RUN_ID, DataType::Utf8, false));
    fields.push(Field::new(SOURCE, DataType::Utf8, false));
    if file_columns {
        fields.push(Field::new(FILE_SIZE, DataType::Int64, false));
        fields.push(Field::new(
            FILE_MODIFIED,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ));
    }
    Arc::new(Schema::new(fields))
}

/// The constant `_tributary_` columns of one load, built once at the largest batch size seen
/// and sliced (without copying) for every batch.
pub(crate) struct MetadataColumns {
    loaded_at: i64,
    run_id: String,
    /// `(rows, loaded_at, run_id)` arrays of `rows` values.
    constant: Option<(usize, ArrayRef, ArrayRef)>,
    /// `(origin, rows, array)`.
    origin: Option<(String, usize, ArrayRef)>,
}

impl MetadataColumns {
    pub(crate) fn new(loaded_at: i64, run_id: &str) -> MetadataColumns {
        MetadataColumns {
            loaded_at,
            run_id: run_id.to_string(),
            constant: None,
            origin: None,
        }
    }

    /// `batch` with the metadata columns of `out_schema` appended.
    pub(crate) fn add(
        &mut self,
        batch: &RecordBatch,
        out_schema: &SchemaRef,
        origin: &str,
        file: Option<&FileStamp>,
    ) -> Result<RecordBatch, deltalake::arrow::error::ArrowError> {
        let n = batch.num_rows();
        if self.constant.as_ref().is_none_or(|(rows, ..)| *rows < n) {
            self.constant = Some((
                n,
                Arc::new(
                    TimestampMicrosecondArray::from(vec![self.loaded_at; n]).with_timezone("UTC"),
                ),
                Arc::new(StringArray::from(vec![self.run_id.as_str(); n])),
            ));
        }
        if self
            .origin
            .as_ref()
            .is_none_or(|(o, rows, _)| o != origin || *rows < n)
        {
            self.origin = Some((
                origin.to_string(),
                n,
                Arc::new(StringArray::from(vec![origin; n])),
            ));
        }
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        if let (Some((_, loaded_at, run_id)), Some((_, _, origin))) = (&self.constant, &self.origin)
        {
            columns.push(loaded_at.slice(0, n));
            columns.push(run_id.slice(0, n));
            columns.push(origin.slice(0, n));
        }
        if let Some(f) = file {
            let size = i64::try_from(f.size).unwrap_or(i64::MAX);
            columns.push(Arc::new(Int64Array::from(vec![size; n])));
            columns.push(Arc::new(
                TimestampMicrosecondArray::from(vec![f.modified_micros; n]).with_timezone("UTC"),
            ));
        }
        RecordBatch::try_new(out_schema.clone(), columns)
    }
}

/// Append `records` to `<layer>._quarantine_<name>` in one commit.
pub(crate) async fn write_quarantine(
    ctx: &LoadContext,
    spec: &LoadSpec,
    records: &[QuarantinedRecord],
) -> Result<(), IngestError> {
    let target = spec.target();
    let name = format!("_quarantine_{}", spec.name);
    let schema = Arc::new(Schema::new(vec![
        Field::new(QUARANTINE_FILE, DataType::Utf8, false),
        Field::new(QUARANTINE_LINE, DataType::Int64, false),
        Field::new(QUARANTINE_RAW, DataType::Utf8, false),
        Field::new(QUARANTINE_ERROR, DataType::Utf8, false),
        Field::new(RUN_ID, DataType::Utf8, false),
        Field::new(
            LOADED_AT,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]));
    let n = records.len();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            records.iter().map(|r| r.file.as_str()),
        )),
        Arc::new(Int64Array::from_iter_values(
            records
                .iter()
                .map(|r| i64::try_from(r.line).unwrap_or(i64::MAX)),
        )),
        Arc::new(StringArray::from_iter_values(
            records.iter().map(|r| r.raw.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            records.iter().map(|r| r.reason.as_str()),
        )),
        Arc::new(StringArray::from(vec![ctx.run_id.as_str(); n])),
        Arc::new(
            TimestampMicrosecondArray::from(vec![ctx.loaded_at_micros; n]).with_timezone("UTC"),
        ),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| IngestError::arrow(&target, "building the quarantine rows", e))?;
    let mut writer = TableWriter::builder(&ctx.lake, &spec.layer, &name, schema, WriteMode::Append)
        .build()
        .await?;
    writer.write(batch).await?;
    let mut meta = HashMap::new();
    meta.insert("tributary.runId".to_string(), serde_json::json!(ctx.run_id));
    meta.insert(
        "tributary.quarantineOf".to_string(),
        serde_json::json!(target),
    );
    writer.commit(None, meta).await?;
    warn!(table = %target, quarantined = n, quarantine = %format!("{}.{name}", spec.layer), "Malformed records quarantined.");
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn metadata_columns_are_appended() {
        let schema = Arc::new(Schema::new(vec![Field::new("c", DataType::Int64, false)]));
        let b = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1, 2]))])
            .unwrap();
        let out_schema = with_metadata_columns(&schema, false);
        let out = MetadataColumns::new(7, "r1")
            .add(&b, &out_schema, "erp:x", None)
            .unwrap();
        assert_eq!(out.num_columns(), 4);
        assert_eq!(out.schema().field(3).name(), SOURCE);
    }
}
