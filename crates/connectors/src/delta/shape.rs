//! The columns a Delta source announces, and turning scanned batches into them.

use std::collections::HashSet;
use std::sync::Arc;

use deltalake::arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray, new_null_array,
};
use deltalake::arrow::compute::{CastOptions, cast_with_options};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use tributary_core::SourceError;

use super::{CHANGE_TYPE, COMMIT_TIMESTAMP, COMMIT_VERSION, UPSTREAM_PREFIX};
use crate::util::{normalize_batch_for_delta, normalize_type_for_delta};

/// What rows of a scan that is not a change data feed are: `insert`s of one commit (or of the
/// snapshot version, for a whole-table read).
#[derive(Debug, Clone, Copy)]
pub(super) struct Stamp {
    /// The commit (or snapshot) version.
    pub version: u64,
    /// The commit's time, microseconds since the Unix epoch.
    pub timestamp_micros: Option<i64>,
}

/// The announced schema and where each of its columns comes from.
#[derive(Debug, Clone)]
pub(super) struct Shaper {
    /// Table name, for errors.
    table: String,
    schema: SchemaRef,
    /// For each announced column, the name of the scanned column it comes from.
    sources: Vec<String>,
    /// Whether the last three columns are the change columns.
    changes: bool,
}

fn change_fields() -> [Field; 3] {
    [
        Field::new(CHANGE_TYPE, DataType::Utf8, true),
        Field::new(COMMIT_VERSION, DataType::Int64, true),
        Field::new(
            COMMIT_TIMESTAMP,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
    ]
}

fn is_change_column(name: &str) -> bool {
    [CHANGE_TYPE, COMMIT_VERSION, COMMIT_TIMESTAMP].contains(&name)
}

impl Shaper {
    /// The columns for a scan of schema `scanned`: its columns (change-data-feed columns
    /// excepted) with Delta-storable types, `_tributary_*` columns renamed
    /// `_upstream_tributary_*`, then, with `changes`, `_change_type`, `_commit_version` and
    /// `_commit_timestamp`. `from_feed`: the scan is a change data feed (it has the change
    /// columns); otherwise a source column with a change column's name is an error.
    pub fn new(
        table: &str,
        scanned: &Schema,
        changes: bool,
        from_feed: bool,
    ) -> Result<Shaper, SourceError> {
        let mut fields = Vec::new();
        let mut sources = Vec::new();
        for f in scanned.fields() {
            let name = f.name();
            if is_change_column(name) {
                if from_feed {
                    continue;
                }
                if changes {
                    return Err(SourceError::Config {
                        table: table.to_string(),
                        reason: format!(
                            "the table has a column `{name}`, which incremental reads add themselves (_change_type, _commit_version, _commit_timestamp); read it with `mode: full`"
                        ),
                    });
                }
            }
            let data_type = normalize_type_for_delta(f.data_type()).map_err(|reason| {
                SourceError::UnsupportedType {
                    table: table.to_string(),
                    column: name.clone(),
                    source_type: f.data_type().to_string(),
                    reason,
                }
            })?;
            let out = if name.starts_with("_tributary_") {
                format!("{UPSTREAM_PREFIX}{name}")
            } else {
                name.clone()
            };
            fields.push(Field::new(out, data_type, true));
            sources.push(name.clone());
        }
        if changes {
            for f in change_fields() {
                sources.push(f.name().clone());
                fields.push(f);
            }
        }
        // A renamed `_tributary_*` column must not take another column's name.
        let mut seen = HashSet::new();
        for f in &fields {
            if !seen.insert(f.name().as_str()) {
                return Err(SourceError::Config {
                    table: table.to_string(),
                    reason: format!(
                        "two columns would be named `{}` (columns named `_tributary_*` load as `{UPSTREAM_PREFIX}_tributary_*`)",
                        f.name()
                    ),
                });
            }
        }
        Ok(Shaper {
            table: table.to_string(),
            schema: Arc::new(Schema::new(fields)),
            sources,
            changes,
        })
    }

    /// The announced schema.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// `batch` in the announced schema: columns by name (a column the scan lacks, e.g. one
    /// added to the table after the scanned version, is NULL), Delta-storable types, and, with
    /// `stamp`, the change columns filled from it.
    pub fn shape(
        &self,
        batch: &RecordBatch,
        stamp: Option<&Stamp>,
    ) -> Result<RecordBatch, SourceError> {
        let normalized = normalize_batch_for_delta(batch).map_err(|e| SourceError::BadValue {
            table: self.table.clone(),
            column: e.column,
            source_type: e.source_type,
            value: e.value.unwrap_or_default(),
            reason: e.reason,
        })?;
        let rows = batch.num_rows();
        let first_change = self.schema.fields().len() - if self.changes { 3 } else { 0 };
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.sources.len());
        for (i, (field, source)) in self.schema.fields().iter().zip(&self.sources).enumerate() {
            if let (true, Some(stamp)) = (i >= first_change, stamp) {
                columns.push(stamp_column(field.name(), stamp, rows)?);
                continue;
            }
            let column = match normalized.schema().index_of(source) {
                Err(_) => new_null_array(field.data_type(), rows),
                Ok(j) => {
                    let c = normalized.column(j);
                    if c.data_type() == field.data_type() {
                        c.clone()
                    } else {
                        let options = CastOptions {
                            safe: false,
                            ..Default::default()
                        };
                        cast_with_options(c, field.data_type(), &options).map_err(|e| {
                            SourceError::BadValue {
                                table: self.table.clone(),
                                column: source.clone(),
                                source_type: c.data_type().to_string(),
                                value: String::new(),
                                reason: format!(
                                    "cannot convert to {} (the table's type now): {e}",
                                    field.data_type()
                                ),
                            }
                        })?
                    }
                }
            };
            columns.push(column);
        }
        RecordBatch::try_new(self.schema.clone(), columns).map_err(|e| {
            SourceError::Internal(format!(
                "assembling a batch of Delta table {}: {e}",
                self.table
            ))
        })
    }
}

fn stamp_column(name: &str, stamp: &Stamp, rows: usize) -> Result<ArrayRef, SourceError> {
    Ok(match name {
        CHANGE_TYPE => Arc::new(StringArray::from(vec!["insert"; rows])),
        COMMIT_VERSION => {
            let v = i64::try_from(stamp.version).map_err(|_| {
                SourceError::Internal(format!("version {} does not fit a bigint", stamp.version))
            })?;
            Arc::new(Int64Array::from(vec![v; rows]))
        }
        COMMIT_TIMESTAMP => Arc::new(
            TimestampMicrosecondArray::from(vec![stamp.timestamp_micros; rows])
                .with_timezone("UTC"),
        ),
        other => {
            return Err(SourceError::Internal(format!(
                "no change value for column {other}"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use deltalake::arrow::array::{Array, AsArray, Int32Array, StringViewArray, UInt64Array};
    use deltalake::arrow::datatypes::Int64Type;

    #[test]
    fn tributary_columns_are_renamed_and_change_columns_added() {
        let scanned = Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("_tributary_run_id", DataType::Utf8View, true),
        ]);
        let s = Shaper::new("t", &scanned, true, false).unwrap();
        let names: Vec<&str> = s
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(
            names,
            [
                "id",
                "_upstream_tributary_run_id",
                "_change_type",
                "_commit_version",
                "_commit_timestamp"
            ]
        );
        let batch = RecordBatch::try_new(
            Arc::new(scanned),
            vec![
                Arc::new(Int32Array::from(vec![1, 2])),
                Arc::new(StringViewArray::from(vec!["r1", "r2"])),
            ],
        )
        .unwrap();
        let stamp = Stamp {
            version: 7,
            timestamp_micros: Some(1_000),
        };
        let out = s.shape(&batch, Some(&stamp)).unwrap();
        assert_eq!(out.column(1).as_string::<i32>().value(1), "r2");
        assert_eq!(out.column(2).as_string::<i32>().value(0), "insert");
        assert_eq!(out.column(3).as_primitive::<Int64Type>().value(1), 7);
    }

    #[test]
    fn feed_columns_are_converted_and_missing_columns_are_null() {
        let scanned = Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("later", DataType::Utf8, true),
            Field::new(CHANGE_TYPE, DataType::Utf8, true),
            Field::new(COMMIT_VERSION, DataType::UInt64, true),
            Field::new(
                COMMIT_TIMESTAMP,
                DataType::Timestamp(TimeUnit::Millisecond, None),
                true,
            ),
        ]);
        let s = Shaper::new("t", &scanned, true, true).unwrap();
        assert_eq!(s.schema.fields().len(), 5);
        // An older scan without `later`, with the feed's own types.
        let old = Schema::new(vec![
            Field::new("id", DataType::Int32, true),
            Field::new(CHANGE_TYPE, DataType::Utf8, true),
            Field::new(COMMIT_VERSION, DataType::UInt64, true),
            Field::new(
                COMMIT_TIMESTAMP,
                DataType::Timestamp(TimeUnit::Millisecond, None),
                true,
            ),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(old),
            vec![
                Arc::new(Int32Array::from(vec![5])),
                Arc::new(StringArray::from(vec!["delete"])),
                Arc::new(UInt64Array::from(vec![3u64])),
                Arc::new(deltalake::arrow::array::TimestampMillisecondArray::from(
                    vec![2_000],
                )),
            ],
        )
        .unwrap();
        let out = s.shape(&batch, None).unwrap();
        assert_eq!(out.column(0).as_primitive::<Int64Type>().value(0), 5);
        assert!(out.column(1).is_null(0));
        assert_eq!(out.column(2).as_string::<i32>().value(0), "delete");
        assert_eq!(out.column(3).as_primitive::<Int64Type>().value(0), 3);
        let ts = out
            .column(4)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(ts.value(0), 2_000_000);
    }

    #[test]
    fn a_source_column_named_like_a_change_column_is_refused_incrementally() {
        let scanned = Schema::new(vec![Field::new(CHANGE_TYPE, DataType::Utf8, true)]);
        let e = Shaper::new("sales/orders", &scanned, true, false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sales/orders") && e.contains("mode: full"),
            "{e}"
        );
        assert!(Shaper::new("t", &scanned, false, false).is_ok());
    }
}
