//! Delta source tests: tables written by Tributary's own lake writer and by the Python
//! `deltalake` package, read whole, by time travel and incrementally by version (added files,
//! compaction, the change data feed), in temporary folders.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use deltalake::arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray};
use deltalake::arrow::compute::concat_batches;
use deltalake::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use tributary_connectors::delta::{DeltaSource, VERSION_WATERMARK};
use tributary_core::config::TableConfig;
use tributary_core::{CursorValue, ReadRequest, Source, SourceError};

use crate::support;
use tributary_lake::{Lake, TableWriter, WriteMode};

use crate::support::python;

fn source(root: &Path) -> DeltaSource {
    DeltaSource::new(
        "ext",
        root.to_str().unwrap(),
        BTreeMap::new(),
        Path::new("/"),
    )
    .unwrap()
}

fn request(v: serde_json::Value, since: Option<u64>) -> ReadRequest {
    let table: TableConfig = serde_json::from_value(v).unwrap();
    ReadRequest {
        table,
        since: since.map(|v| (VERSION_WATERMARK.to_string(), CursorValue::Int(v as i64))),
        until: None,
        batch_size: 1000,
        loaded_files: None,
        table_schema: None,
    }
}

/// Everything a read returns, as one batch, with the position its summary reports.
async fn read(src: &DeltaSource, req: ReadRequest) -> Result<(RecordBatch, u64), SourceError> {
    let (schema, got, _, summary) = support::read_events(src.read(req).await?).await?;
    let mut batches = Vec::new();
    for b in got {
        assert_eq!(b.origin.as_ref(), "ext:t");
        batches.push(b.batch);
    }
    let all = concat_batches(&schema, &batches).unwrap();
    let position = summary.position.unwrap();
    assert_eq!(position.name, VERSION_WATERMARK);
    let CursorValue::Int(v) = position.value else {
        panic!("{:?}", position.value)
    };
    Ok((all, v as u64))
}

fn full() -> serde_json::Value {
    serde_json::json!({ "name": "t" })
}

fn incremental() -> serde_json::Value {
    serde_json::json!({ "name": "t", "mode": "incremental" })
}

fn names(schema: &SchemaRef) -> Vec<String> {
    schema.fields().iter().map(|f| f.name().clone()).collect()
}

/// (id, _change_type, _commit_version) of every row, sorted.
fn changes(b: &RecordBatch) -> Vec<(i64, String, i64)> {
    let s = b.schema();
    let id = b
        .column(s.index_of("id").unwrap())
        .as_primitive::<Int64Type>();
    let kind = b
        .column(s.index_of("_change_type").unwrap())
        .as_string::<i32>();
    let version = b
        .column(s.index_of("_commit_version").unwrap())
        .as_primitive::<Int64Type>();
    let mut out: Vec<(i64, String, i64)> = (0..b.num_rows())
        .map(|i| (id.value(i), kind.value(i).to_string(), version.value(i)))
        .collect();
    out.sort();
    out
}

fn ids(b: &RecordBatch) -> Vec<i64> {
    let i = b.schema().index_of("id").unwrap();
    let mut v: Vec<i64> = b.column(i).as_primitive::<Int64Type>().values().to_vec();
    v.sort();
    v
}

/// Run a Python snippet against table folder `t` under `root` (as `path`).
fn py(root: &Path, script: &str) -> Option<String> {
    let path = root.join("t");
    python(&format!(
        "import pyarrow as pa\nfrom deltalake import DeltaTable, write_deltalake\npath = {:?}\n{script}",
        path.to_str().unwrap()
    ))
}

async fn write_with_lake(lake: &Lake, ids: &[i64], mode: WriteMode) -> u64 {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("_tributary_run_id", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(
                ids.iter().map(|i| format!("n{i}")).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(vec!["run-1"; ids.len()])),
        ],
    )
    .unwrap();
    let mut w = TableWriter::new(lake, "x", "t", schema, mode)
        .await
        .unwrap();
    w.write(batch).await.unwrap();
    w.commit(None, HashMap::new()).await.unwrap().version
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_tributary_wrote_reads_whole_then_only_appended_rows() {
    let d = tempfile::tempdir().unwrap();
    // A "lake" whose layer folder `x` is the connection's URL.
    let lake = Lake::new(d.path().to_str().unwrap(), Path::new("/"), &BTreeMap::new()).unwrap();
    let v0 = write_with_lake(&lake, &[1, 2, 3], WriteMode::Overwrite).await;
    let src = source(&d.path().join("x"));

    let (b, pos) = read(&src, request(full(), None)).await.unwrap();
    assert_eq!(
        names(&b.schema()),
        ["id", "name", "_upstream_tributary_run_id"]
    );
    assert_eq!(ids(&b), [1, 2, 3]);
    assert_eq!(pos, v0);

    // First incremental read: the whole table, as inserts of its version.
    let (b, pos) = read(&src, request(incremental(), None)).await.unwrap();
    assert_eq!(
        names(&b.schema()),
        [
            "id",
            "name",
            "_upstream_tributary_run_id",
            "_change_type",
            "_commit_version",
            "_commit_timestamp"
        ]
    );
    assert_eq!(
        changes(&b),
        [
            (1, "insert".into(), v0 as i64),
            (2, "insert".into(), v0 as i64),
            (3, "insert".into(), v0 as i64)
        ]
    );
    let ts = b.column(5);
    assert_eq!(ts.null_count(), 0, "the commit time is known");

    let v1 = write_with_lake(&lake, &[4, 5], WriteMode::Append).await;
    let (b, pos2) = read(&src, request(incremental(), Some(pos))).await.unwrap();
    assert_eq!(
        changes(&b),
        [
            (4, "insert".into(), v1 as i64),
            (5, "insert".into(), v1 as i64)
        ]
    );
    assert_eq!(pos2, v1);

    // Nothing new: no rows, same position.
    let (b, pos3) = read(&src, request(incremental(), Some(pos2)))
        .await
        .unwrap();
    assert_eq!(b.num_rows(), 0);
    assert_eq!(pos3, v1);

    // Time travel: version 0 holds the first three rows only.
    let (b, pos) = read(
        &src,
        request(serde_json::json!({"name": "t", "version": v0}), None),
    )
    .await
    .unwrap();
    assert_eq!((ids(&b), pos), (vec![1, 2, 3], v0));

    // The table is replaced (overwrite): an incremental read cannot follow without the feed.
    write_with_lake(&lake, &[9], WriteMode::Overwrite).await;
    let e = read(&src, request(incremental(), Some(v1)))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("table t:"), "{e}");
    assert!(e.contains("removed or rewrote rows"), "{e}");
    assert!(e.contains("delta.enableChangeDataFeed"), "{e}");
    assert!(e.contains("--full-refresh"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn python_table_appends_and_compaction_between_reads() {
    let d = tempfile::tempdir().unwrap();
    let Some(_) = py(
        d.path(),
        "write_deltalake(path, pa.table({'id': pa.array([1, 2, 3], pa.int64()), 'v': ['a', 'b', 'c']}))",
    ) else {
        return;
    };
    let src = source(d.path());
    let (b, v0) = read(&src, request(incremental(), None)).await.unwrap();
    assert_eq!(ids(&b), [1, 2, 3]);
    assert_eq!(v0, 0);

    // Two appends, then a compaction that folds them (and the first file) into one file.
    py(
        d.path(),
        "write_deltalake(path, pa.table({'id': pa.array([4], pa.int64()), 'v': ['d']}), mode='append')\n\
         write_deltalake(path, pa.table({'id': pa.array([5], pa.int64()), 'v': ['e']}), mode='append')\n\
         DeltaTable(path).optimize.compact()\n\
         print(DeltaTable(path).version())",
    )
    .unwrap();
    let (b, v3) = read(&src, request(incremental(), Some(v0))).await.unwrap();
    assert_eq!(v3, 3);
    assert_eq!(
        changes(&b),
        [(4, "insert".into(), 1), (5, "insert".into(), 2)],
        "the appended rows once each, not the compacted file"
    );

    // A compaction alone adds nothing but moves the position.
    py(
        d.path(),
        "write_deltalake(path, pa.table({'id': pa.array([6], pa.int64()), 'v': ['f']}), mode='append')",
    )
    .unwrap();
    let (b, v4) = read(&src, request(incremental(), Some(v3))).await.unwrap();
    assert_eq!(changes(&b), [(6, "insert".into(), 4)]);
    py(d.path(), "DeltaTable(path).optimize.compact()").unwrap();
    let (b, v5) = read(&src, request(incremental(), Some(v4))).await.unwrap();
    assert_eq!((b.num_rows(), v5), (0, 5));

    // A delete without the change data feed: the documented error.
    py(d.path(), "DeltaTable(path).delete(\"id = 2\")").unwrap();
    let e = read(&src, request(incremental(), Some(v5)))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("version 6 (DELETE)"), "{e}");
    assert!(e.contains("delta.enableChangeDataFeed = true"), "{e}");
    assert!(e.contains("--full-refresh"), "{e}");
    // A full read still works and sees the delete.
    let (b, _) = read(&src, request(full(), None)).await.unwrap();
    assert_eq!(ids(&b), [1, 3, 4, 5, 6]);
}

#[tokio::test(flavor = "multi_thread")]
async fn python_table_with_change_data_feed_carries_updates_and_deletes() {
    let d = tempfile::tempdir().unwrap();
    let Some(_) = py(
        d.path(),
        "write_deltalake(path, pa.table({'id': pa.array([1, 2, 3], pa.int64()), 'v': ['a', 'b', 'c']}), configuration={'delta.enableChangeDataFeed': 'true'})",
    ) else {
        return;
    };
    let src = source(d.path());
    let (b, v0) = read(&src, request(incremental(), None)).await.unwrap();
    assert_eq!(ids(&b), [1, 2, 3]);

    py(
        d.path(),
        "write_deltalake(path, pa.table({'id': pa.array([4], pa.int64()), 'v': ['d']}), mode='append')\n\
         DeltaTable(path).update(predicate=\"id = 2\", updates={'v': \"'B'\"})\n\
         DeltaTable(path).delete(\"id = 3\")\n\
         DeltaTable(path).optimize.compact()",
    )
    .unwrap();
    let (b, v4) = read(&src, request(incremental(), Some(v0))).await.unwrap();
    assert_eq!(v4, 4);
    assert_eq!(
        changes(&b),
        [
            (2, "update_postimage".into(), 2),
            (3, "delete".into(), 3),
            (4, "insert".into(), 1)
        ]
    );
    let v = b
        .column(b.schema().index_of("v").unwrap())
        .as_string::<i32>();
    let id = b.column(0).as_primitive::<Int64Type>();
    let updated = (0..b.num_rows()).find(|&i| id.value(i) == 2).unwrap();
    assert_eq!(v.value(updated), "B");
    let ts = b.column(b.schema().index_of("_commit_timestamp").unwrap());
    assert_eq!(ts.null_count(), 0);

    // Nothing since: empty, and rereading the same range gives the same rows.
    let (b, _) = read(&src, request(incremental(), Some(v4))).await.unwrap();
    assert_eq!(b.num_rows(), 0);
    let (b, _) = read(&src, request(incremental(), Some(v0))).await.unwrap();
    assert_eq!(b.num_rows(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_table_is_named_and_check_reports_versions() {
    let d = tempfile::tempdir().unwrap();
    let src = DeltaSource::new(
        "ext",
        d.path().to_str().unwrap(),
        BTreeMap::new(),
        Path::new("/"),
    )
    .unwrap();
    src.check().await.unwrap();
    let e = read(
        &src,
        request(serde_json::json!({"name": "sales/nope"}), None),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, SourceError::Config { .. }), "{e:?}");
    let e = e.to_string();
    assert!(
        e.starts_with("table sales/nope: no Delta table at file://"),
        "{e}"
    );
    assert!(e.contains("/sales/nope/"), "{e}");
    let e = src.check_table("sales/nope").await.unwrap_err().to_string();
    assert!(e.contains("sales/nope"), "{e}");

    let missing = DeltaSource::new(
        "ext",
        d.path().join("absent").to_str().unwrap(),
        BTreeMap::new(),
        Path::new("/"),
    )
    .unwrap();
    let e = missing.check().await.unwrap_err().to_string();
    assert!(e.contains("absent") && e.contains("no such folder"), "{e}");

    let Some(_) = py(
        d.path(),
        "write_deltalake(path, pa.table({'id': pa.array([1], pa.int64())}), configuration={'delta.enableChangeDataFeed': 'true'})",
    ) else {
        return;
    };
    let t = src.check_table("t").await.unwrap();
    assert_eq!((t.version, t.change_data_feed), (0, true));
}
