//! The cursor window of an incremental load (rows since the watermark minus the lookback, up to
//! a backfill's end) and what the table already holds in it: keys loaded in the lookback window,
//! and the files a `new_files` table has loaded.

use std::collections::HashSet;

use deltalake::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, Scalar};
use deltalake::arrow::compute::kernels::cmp::{gt_eq, lt};
use deltalake::arrow::compute::{and, filter_record_batch, is_not_null};
use deltalake::arrow::datatypes::{DataType, Field, Int64Type, SchemaRef};
use deltalake::arrow::error::ArrowError;
use deltalake::arrow::row::{RowConverter, SortField};
use deltalake::datafusion::common::ScalarValue;
use deltalake::datafusion::prelude::{SessionContext, ident, lit};
use futures::StreamExt;
use tracing::info;
use tributary_core::config::LoadSpec;
use tributary_core::{CursorValue, FileStamp};
use tributary_lake::Lake;

use crate::IngestError;
use crate::columns::{FILE_MODIFIED, FILE_SIZE, SOURCE};

/// The columns identifying a loaded row: primary key + cursor, or, without a key, every column
/// the table already has (`table_columns`; a column new in the source is not in the rows loaded
/// before it, so it cannot tell them apart).
pub(crate) fn key_columns(
    spec: &LoadSpec,
    schema: &SchemaRef,
    table_columns: Option<&HashSet<String>>,
) -> Vec<usize> {
    if spec.table.primary_key.is_empty() {
        return schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| table_columns.is_none_or(|t| t.contains(f.name())))
            .map(|(i, _)| i)
            .collect();
    }
    let mut cols: Vec<usize> = spec
        .table
        .primary_key
        .iter()
        .filter_map(|k| schema.index_of(k).ok())
        .collect();
    if let Some(c) = &spec.table.cursor
        && let Ok(i) = schema.index_of(c)
        && !cols.contains(&i)
    {
        cols.push(i);
    }
    cols
}

/// Keys of rows already in the table with `cursor >= lower`, encoded with Arrow's row format.
pub(crate) async fn loaded_keys(
    lake: &Lake,
    spec: &LoadSpec,
    source_schema: &SchemaRef,
    key_idx: &[usize],
    cursor: &str,
    lower: &CursorValue,
) -> Result<KeySet, IngestError> {
    const WHAT: &str = "reading the rows already loaded in the lookback window";
    let target = spec.target();
    let df_err = |e| IngestError::loaded(&target, WHAT, e);
    let fields: Vec<Field> = key_idx
        .iter()
        .map(|i| source_schema.field(*i).clone())
        .collect();
    let session = SessionContext::new();
    let table = lake
        .open(&spec.layer, &spec.name)
        .await?
        .ok_or_else(|| IngestError::Internal {
            table: target.clone(),
            message: "the table disappeared during the load".into(),
        })?;
    let provider = table
        .table_provider()
        .await
        .map_err(|e| IngestError::ReadLoaded {
            table: target.clone(),
            what: WHAT,
            source: Box::new(e),
        })?;
    session.register_table("t", provider).map_err(df_err)?;
    // The filter is pushed down to the Delta scan, which skips files by their statistics.
    let data_type = source_schema
        .field_with_name(cursor)
        .map_err(|e| IngestError::arrow(&target, WHAT, e))?
        .data_type();
    let bound = lower
        .to_scalar_array(data_type)
        .map_err(|message| IngestError::Data {
            table: target.clone(),
            message: format!("cursor column `{cursor}`: {message}"),
        })?;
    let bound = ScalarValue::try_from_array(&bound, 0).map_err(df_err)?;
    let names: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
    let df = session
        .table("t")
        .await
        .map_err(df_err)?
        .filter(ident(cursor).gt_eq(lit(bound)))
        .map_err(df_err)?
        .select_columns(&names)
        .map_err(df_err)?;
    let mut stream = df.execute_stream().await.map_err(df_err)?;
    let arrow_err = |e| IngestError::arrow(&target, WHAT, e);
    let mut keys = KeySet::new(&fields).map_err(arrow_err)?;
    while let Some(b) = stream.next().await {
        let b = b.map_err(df_err)?;
        let columns: Vec<ArrayRef> = (0..fields.len())
            .map(|i| cast_to(b.column(i), fields[i].data_type()))
            .collect::<Result<_, _>>()
            .map_err(arrow_err)?;
        keys.insert_all(&columns).map_err(arrow_err)?;
    }
    info!(table = %target, keys = keys.len(), "Read keys already loaded in the lookback window.");
    Ok(keys)
}

fn cast_to(a: &ArrayRef, dt: &DataType) -> Result<ArrayRef, ArrowError> {
    if a.data_type() == dt {
        Ok(a.clone())
    } else {
        deltalake::arrow::compute::cast(a, dt)
    }
}

/// A set of row keys in Arrow's row format.
pub(crate) struct KeySet {
    converter: RowConverter,
    types: Vec<DataType>,
    keys: HashSet<Box<[u8]>>,
}

impl KeySet {
    fn new(fields: &[Field]) -> Result<KeySet, ArrowError> {
        let types: Vec<DataType> = fields.iter().map(|f| f.data_type().clone()).collect();
        let converter =
            RowConverter::new(types.iter().map(|t| SortField::new(t.clone())).collect())?;
        Ok(KeySet {
            converter,
            types,
            keys: HashSet::new(),
        })
    }

    fn len(&self) -> usize {
        self.keys.len()
    }

    fn insert_all(&mut self, columns: &[ArrayRef]) -> Result<(), ArrowError> {
        let rows = self.converter.convert_columns(columns)?;
        for r in rows.iter() {
            self.keys.insert(r.as_ref().into());
        }
        Ok(())
    }

    /// A mask: true for rows not yet in the set.
    fn unseen(&self, columns: &[ArrayRef]) -> Result<BooleanArray, ArrowError> {
        let columns: Vec<ArrayRef> = columns
            .iter()
            .zip(&self.types)
            .map(|(c, t)| cast_to(c, t))
            .collect::<Result<_, _>>()?;
        let rows = self.converter.convert_columns(&columns)?;
        Ok(rows
            .iter()
            .map(|r| Some(!self.keys.contains(r.as_ref())))
            .collect())
    }
}

/// `batch` without the rows whose key is in `seen`.
pub(crate) fn drop_seen(
    batch: &RecordBatch,
    key_idx: &[usize],
    seen: &KeySet,
) -> Result<RecordBatch, ArrowError> {
    if seen.len() == 0 {
        return Ok(batch.clone());
    }
    let cols: Vec<ArrayRef> = key_idx.iter().map(|i| batch.column(*i).clone()).collect();
    let mask = seen.unseen(&cols)?;
    filter_record_batch(batch, &mask)
}

/// Why a cursor filter could not run: the bound does not fit the column, or Arrow failed.
pub(crate) enum FilterError {
    /// The bound does not fit the cursor column's type.
    Bound(String),
    /// Arrow's error.
    Arrow(ArrowError),
}

impl From<ArrowError> for FilterError {
    fn from(e: ArrowError) -> FilterError {
        FilterError::Arrow(e)
    }
}

/// Rows whose cursor is below `upper` (a backfill's `--to`, exclusive).
pub(crate) fn filter_until(
    batch: &RecordBatch,
    i: usize,
    upper: &CursorValue,
) -> Result<RecordBatch, FilterError> {
    let col = batch.column(i);
    let bound = upper
        .to_scalar_array(col.data_type())
        .map_err(FilterError::Bound)?;
    let keep = lt(col, &Scalar::new(bound))?;
    let keep = and(&keep, &is_not_null(col)?)?;
    Ok(filter_record_batch(batch, &keep)?)
}

/// Keep rows whose cursor is not NULL and `>= lower` (sources that cannot filter, like files,
/// rely on this; for databases it is a no-op safety net).
pub(crate) fn filter_since(
    batch: &RecordBatch,
    i: usize,
    lower: &CursorValue,
) -> Result<RecordBatch, FilterError> {
    let col = batch.column(i);
    let bound = lower.to_scalar_array(col.data_type()).map_err(|e| {
        FilterError::Bound(format!(
            "cursor column `{}`: {e}",
            batch.schema().field(i).name()
        ))
    })?;
    let ge = gt_eq(col, &Scalar::new(bound))?;
    let mask = and(&ge, &is_not_null(col)?)?;
    if mask.true_count() == batch.num_rows() {
        return Ok(batch.clone());
    }
    Ok(filter_record_batch(batch, &mask)?)
}

/// The files a `new_files` table holds rows of ([`FileStamp::key`]); `None` when the table has
/// no file columns (it was loaded in another mode).
pub(crate) async fn loaded_file_keys(
    target: &str,
    table: &deltalake::DeltaTable,
) -> Result<Option<HashSet<String>>, IngestError> {
    const WHAT: &str = "listing the files loaded before";
    let boxed = |e: Box<dyn std::error::Error + Send + Sync>| IngestError::ReadLoaded {
        table: target.to_string(),
        what: WHAT,
        source: e,
    };
    let schema = table.snapshot().map_err(|e| boxed(Box::new(e)))?.schema();
    if schema.field(FILE_SIZE).is_none() || schema.field(FILE_MODIFIED).is_none() {
        info!(table = %target, "The table has no file columns (loaded in another mode before): loading every file and replacing it.");
        return Ok(None);
    }
    let session = SessionContext::new();
    let provider = table
        .table_provider()
        .await
        .map_err(|e| boxed(Box::new(e)))?;
    session
        .register_table("t", provider)
        .map_err(|e| boxed(Box::new(e)))?;
    let batches = session
        .sql(&format!(
            "SELECT DISTINCT CAST(\"{SOURCE}\" AS VARCHAR), \"{FILE_SIZE}\", CAST(\"{FILE_MODIFIED}\" AS BIGINT) FROM t"
        ))
        .await
        .map_err(|e| boxed(Box::new(e)))?
        .collect()
        .await
        .map_err(|e| boxed(Box::new(e)))?;
    let mut keys = HashSet::new();
    for b in &batches {
        // The engine may hand strings over as views: normalize before reading.
        let cast = |i: usize, t: &DataType| {
            deltalake::arrow::compute::cast(b.column(i), t).map_err(|e| boxed(Box::new(e)))
        };
        let (origin, size, modified) = (
            cast(0, &DataType::Utf8)?,
            cast(1, &DataType::Int64)?,
            cast(2, &DataType::Int64)?,
        );
        let (Some(origin), Some(size), Some(modified)) = (
            origin.as_string_opt::<i32>(),
            size.as_primitive_opt::<Int64Type>(),
            modified.as_primitive_opt::<Int64Type>(),
        ) else {
            return Err(IngestError::Internal {
                table: target.to_string(),
                message: "the file columns came back with unexpected types".into(),
            });
        };
        for i in 0..b.num_rows() {
            if origin.is_null(i) || size.is_null(i) || modified.is_null(i) {
                continue;
            }
            let stamp = FileStamp {
                origin: origin.value(i).to_string(),
                size: u64::try_from(size.value(i)).unwrap_or(0),
                modified_micros: modified.value(i),
            };
            keys.insert(stamp.key());
        }
    }
    Ok(Some(keys))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use deltalake::arrow::array::Int64Array;
    use deltalake::arrow::datatypes::Schema;
    use std::sync::Arc;

    #[test]
    fn since_filter_drops_nulls_and_older_rows() {
        let schema = Arc::new(Schema::new(vec![Field::new("c", DataType::Int64, true)]));
        let b = RecordBatch::try_new(
            schema,
            vec![Arc::new(Int64Array::from(vec![
                Some(1),
                None,
                Some(5),
                Some(3),
            ]))],
        )
        .unwrap();
        let Ok(out) = filter_since(&b, 0, &CursorValue::Int(3)) else {
            panic!("filter failed")
        };
        let c = out.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(c.values().to_vec(), vec![5, 3]);
    }

    #[test]
    fn keyset_drops_rows_already_loaded() {
        let f = vec![Field::new("id", DataType::Int64, true)];
        let mut k = KeySet::new(&f).unwrap();
        k.insert_all(&[Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef])
            .unwrap();
        let mask = k
            .unseen(&[Arc::new(Int64Array::from(vec![2, 3])) as ArrayRef])
            .unwrap();
        assert_eq!(mask, BooleanArray::from(vec![false, true]));
    }
}
