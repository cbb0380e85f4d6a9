//! Shared helpers: batches of `(id, v)` rows and the Python reader.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use deltalake::arrow::array::{Int64Array, RecordBatch, StringArray};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use tributary_core::CursorValue;
use tributary_lake::{Lake, TableWriter, Watermark, WriteMode};

pub use tributary_testkit::{unavailable, unique_name};

/// The schema of the test tables: `id` (Int64) and `v` (text).
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("v", DataType::Utf8, true),
    ]))
}

/// Rows `from..to` with `v` = `label`.
pub fn rows(from: i64, to: i64, label: &str) -> RecordBatch {
    let ids: Vec<i64> = (from..to).collect();
    let vs: Vec<String> = ids.iter().map(|_| label.to_string()).collect();
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(StringArray::from(vs)),
        ],
    )
    .unwrap()
}

/// The watermark `id = value`.
pub fn watermark(value: i64) -> Watermark {
    Watermark {
        column: "id".into(),
        value: CursorValue::Int(value),
    }
}

/// Commit metadata naming the run, as the loader writes it.
pub fn run_metadata(run_id: &str) -> HashMap<String, serde_json::Value> {
    HashMap::from([("run_id".to_string(), serde_json::json!(run_id))])
}

/// A writer into `bronze.<name>` with `batches` written, not committed.
pub async fn written(
    lake: &Lake,
    name: &str,
    mode: WriteMode,
    batches: Vec<RecordBatch>,
) -> TableWriter {
    let mut w = TableWriter::new(lake, "bronze", name, schema(), mode)
        .await
        .unwrap();
    for b in batches {
        w.write(b).await.unwrap();
    }
    w
}

/// A lake in a new folder.
pub fn local_lake() -> (tempfile::TempDir, Lake) {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new("lake", dir.path(), &BTreeMap::new()).unwrap();
    (dir, lake)
}

/// Run a Python snippet with `deltalake` and return its stdout; `None` (skip) outside CI when
/// the package is missing.
pub fn python(script: &str) -> Option<String> {
    tributary_testkit::python::run("deltalake, pyarrow", script)
}
