//! The command source: real programs (python3 scripts) writing NDJSON or Arrow IPC streams.

use std::path::Path;
use std::time::Duration;

use deltalake::arrow::array::{AsArray, RecordBatch};
use deltalake::arrow::datatypes::{
    DataType, Decimal128Type, Float64Type, Int64Type, TimeUnit, TimestampMicrosecondType,
};
use futures::StreamExt;
use tributary_connectors::command::CommandSource;
use tributary_core::config::TableConfig;
use tributary_core::pipeline::TaskConfig;
use tributary_core::{ReadRequest, Source, SourceError};

use crate::support::unavailable;

fn task(v: serde_json::Value) -> TaskConfig {
    serde_json::from_value(v).unwrap()
}

/// A `command` task running `script` (Python) from a file in `dir`.
fn python_source(dir: &Path, script: &str, format: &str) -> CommandSource {
    std::fs::write(dir.join("export.py"), script).unwrap();
    let t = task(serde_json::json!({
        "name": "export", "type": "command", "command": ["python3", "export.py"],
        "target": "bronze.legacy", "format": format,
    }));
    CommandSource::new(&t, dir, "run-7", &[]).unwrap()
}

fn request(batch_size: usize) -> ReadRequest {
    let table: TableConfig =
        serde_json::from_value(serde_json::json!({"name": "bronze.legacy"})).unwrap();
    ReadRequest {
        table,
        since: None,
        batch_size,
        table_schema: None,
        until: None,
        loaded_files: None,
    }
}

/// The batches until the end, or the first error with the batches before it.
async fn read_all(
    src: &CommandSource,
    batch_size: usize,
) -> Result<(Vec<RecordBatch>, Option<SourceError>), SourceError> {
    let stream = src.read(request(batch_size)).await?;
    let mut out = Vec::new();
    let stream_schema = stream.schema.clone();
    let mut batches = stream.into_batches();
    while let Some(b) = batches.next().await {
        match b {
            Ok(b) => {
                assert_eq!(b.batch.schema(), stream_schema);
                assert_eq!(&*b.origin, "command:export");
                out.push(b.batch);
            }
            Err(e) => return Ok((out, Some(e))),
        }
    }
    Ok((out, None))
}

/// [`python_source`] for a script that needs pyarrow; `None` (skipped) when it is missing.
fn pyarrow_source(dir: &Path, script: &str, format: &str) -> Option<CommandSource> {
    let has_pyarrow = std::process::Command::new("python3")
        .args(["-c", "import pyarrow"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !has_pyarrow {
        return unavailable("python3 with pyarrow", "`import pyarrow` failed");
    }
    Some(python_source(dir, script, format))
}

#[tokio::test]
async fn ndjson_from_a_python_script() {
    let dir = tempfile::tempdir().unwrap();
    let src = python_source(
        dir.path(),
        r#"
import json, os
for i in range(2500):
    print(json.dumps({"id": i, "name": f"n{i}", "price": i / 4, "ok": i % 2 == 0,
                      "who": {"task": os.environ["TRIBUTARY_TASK"], "run": os.environ["TRIBUTARY_RUN_ID"]}}))
"#,
        "ndjson",
    );
    let (batches, err) = read_all(&src, 1000).await.unwrap();
    assert!(err.is_none(), "{err:?}");
    assert_eq!(
        batches
            .iter()
            .map(RecordBatch::num_rows)
            .collect::<Vec<_>>(),
        [1000, 1000, 500]
    );
    let schema = batches[0].schema();
    let types: Vec<(&str, &DataType)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().as_str(), f.data_type()))
        .collect();
    assert_eq!(types[0], ("id", &DataType::Int64));
    assert_eq!(types[1], ("name", &DataType::Utf8));
    assert_eq!(types[2], ("price", &DataType::Float64));
    assert_eq!(types[3], ("ok", &DataType::Boolean));
    assert!(matches!(types[4].1, DataType::Struct(_)));
    let last = &batches[2];
    let ids = last.column(0).as_primitive::<Int64Type>();
    assert_eq!(ids.value(499), 2499);
    let price = last.column(2).as_primitive::<Float64Type>();
    assert_eq!(price.value(499), 2499.0 / 4.0);
    let ok = last.column(3).as_boolean();
    assert!(!ok.value(499));
    let who = last.column(4).as_struct();
    let task = who.column_by_name("task").unwrap().as_string::<i32>();
    let run = who.column_by_name("run").unwrap().as_string::<i32>();
    assert_eq!((task.value(0), run.value(0)), ("export", "run-7"));
}

#[tokio::test]
async fn arrow_ipc_from_a_python_script() {
    let dir = tempfile::tempdir().unwrap();
    let Some(src) = pyarrow_source(
        dir.path(),
        r#"
import sys, decimal, datetime
import pyarrow as pa
schema = pa.schema([("id", pa.int64()), ("n", pa.uint32()), ("s", pa.large_string()),
                    ("ts", pa.timestamp("ns", tz="UTC")), ("amount", pa.decimal128(10, 2))])
with pa.ipc.new_stream(sys.stdout.buffer, schema) as w:
    for start in (0, 3000):
        ids = list(range(start, start + 3000))
        w.write_batch(pa.record_batch([
            pa.array(ids, pa.int64()),
            pa.array([4_000_000_000] * 3000, pa.uint32()),
            pa.array([f"s{i}" for i in ids], pa.large_string()),
            pa.array([datetime.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=datetime.timezone.utc)] * 3000, pa.timestamp("ns", tz="UTC")),
            pa.array([decimal.Decimal("12345678.91")] * 3000, pa.decimal128(10, 2)),
        ], schema=schema))
"#,
        // `auto` recognises the IPC stream.
        "auto",
    ) else {
        return;
    };
    let (batches, err) = read_all(&src, 2048).await.unwrap();
    assert!(err.is_none(), "{err:?}");
    let rows: Vec<usize> = batches.iter().map(RecordBatch::num_rows).collect();
    assert_eq!(rows, [2048, 952, 2048, 952]);
    let schema = batches[0].schema();
    let types: Vec<&DataType> = schema.fields().iter().map(|f| f.data_type()).collect();
    assert_eq!(
        types,
        [
            &DataType::Int64,
            &DataType::Int64,
            &DataType::Utf8,
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            &DataType::Decimal128(10, 2),
        ]
    );
    let last = &batches[3];
    let ids = last.column(0).as_primitive::<Int64Type>();
    assert_eq!(ids.value(951), 5999);
    let n = last.column(1).as_primitive::<Int64Type>();
    assert_eq!(n.value(0), 4_000_000_000);
    assert_eq!(last.column(2).as_string::<i32>().value(951), "s5999");
    let ts = last.column(3).as_primitive::<TimestampMicrosecondType>();
    assert_eq!(ts.value(0), 1_704_164_645_123_456);
    let amount = last.column(4).as_primitive::<Decimal128Type>();
    assert_eq!(amount.value(0), 1_234_567_891);
}

#[tokio::test]
async fn arrow_ipc_with_a_schema_and_no_batch_is_an_empty_table() {
    let dir = tempfile::tempdir().unwrap();
    let Some(src) = pyarrow_source(
        dir.path(),
        r#"
import sys
import pyarrow as pa
with pa.ipc.new_stream(sys.stdout.buffer, pa.schema([("id", pa.int64())])):
    pass
"#,
        "arrow",
    ) else {
        return;
    };
    let stream = src.read(request(100)).await.unwrap();
    assert_eq!(stream.schema.fields().len(), 1);
    let rest: Vec<_> = stream.into_batches().collect().await;
    assert!(rest.is_empty(), "{rest:?}");
}

#[tokio::test]
async fn empty_output_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let src = python_source(dir.path(), "pass\n", "auto");
    let err = src.read(request(100)).await.err().unwrap();
    assert!(matches!(err, SourceError::BadRecord { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("produced no output; nothing to load"),
        "{err}"
    );
}

#[tokio::test]
async fn failure_after_output_ends_the_stream_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let src = python_source(
        dir.path(),
        r#"
import json, sys
for i in range(1500):
    print(json.dumps({"id": i}))
sys.stdout.flush()
print("database went away", file=sys.stderr)
sys.exit(3)
"#,
        "ndjson",
    );
    let (batches, err) = read_all(&src, 1000).await.unwrap();
    assert_eq!(
        batches
            .iter()
            .map(RecordBatch::num_rows)
            .collect::<Vec<_>>(),
        [1000, 500]
    );
    let err = err.expect("the stream must end with an error");
    let m = err.to_string();
    assert!(m.contains("exited with status 3"), "{m}");
    assert!(m.contains("database went away"), "{m}");
}

#[tokio::test]
async fn field_first_seen_after_inference_names_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let src = python_source(
        dir.path(),
        r#"
import json
for i in range(1000):
    print(json.dumps({"id": i}))
print()
print(json.dumps({"id": 1000, "late": "surprise"}))
"#,
        "ndjson",
    );
    let (batches, err) = read_all(&src, 600).await.unwrap();
    // The first full batch made it; the one with the bad record did not.
    assert_eq!(
        batches
            .iter()
            .map(RecordBatch::num_rows)
            .collect::<Vec<_>>(),
        [600]
    );
    match err {
        Some(SourceError::BadRecord { file, line, reason }) => {
            assert!(file.contains("export"), "{file}");
            assert_eq!(line, 1002);
            assert!(reason.contains("`late`"), "{reason}");
        }
        other => panic!("expected BadRecord, got {other:?}"),
    }
}

#[tokio::test]
async fn dropping_the_stream_kills_the_program() {
    let dir = tempfile::tempdir().unwrap();
    let src = python_source(
        dir.path(),
        r#"
import json, os, sys, time
with open("pid", "w") as f:
    f.write(f"{os.getpid()}\n")
for i in range(1500):
    print(json.dumps({"id": i, "pad": "x" * 100}))
sys.stdout.flush()
# Silent from now on: only killing it ends it.
time.sleep(1000)
"#,
        "ndjson",
    );
    let stream = src.read(request(500)).await.unwrap();
    let mut batches = stream.into_batches();
    // All the output; the reader now waits for more, which never comes.
    for _ in 0..3 {
        let b = batches.next().await.unwrap().unwrap();
        assert_eq!(b.batch.num_rows(), 500);
    }
    let pid: i32 = std::fs::read_to_string(dir.path().join("pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(!tributary_testkit::process_gone(pid));
    drop(batches);
    let mut gone = false;
    for _ in 0..200 {
        if tributary_testkit::process_gone(pid) {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        gone,
        "the program {pid} still runs after the stream was dropped"
    );
}

#[tokio::test]
async fn check_finds_programs_without_running_them() {
    let dir = tempfile::tempdir().unwrap();
    let ok = task(serde_json::json!({
        "name": "export", "type": "command", "command": ["python3", "-c", "open('ran', 'w')"],
        "target": "bronze.legacy",
    }));
    CommandSource::new(&ok, dir.path(), "r", &[])
        .unwrap()
        .check()
        .await
        .unwrap();
    assert!(!dir.path().join("ran").exists());

    let missing = task(serde_json::json!({
        "name": "export", "type": "command", "command": ["no-such-exporter"],
        "target": "bronze.legacy",
    }));
    let err = CommandSource::new(&missing, dir.path(), "r", &[])
        .unwrap()
        .check()
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::Config { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-exporter"), "{err}");

    std::fs::write(dir.path().join("plain.txt"), "x").unwrap();
    let noexec = task(serde_json::json!({
        "name": "export", "type": "command", "command": ["./plain.txt"],
        "target": "bronze.legacy",
    }));
    let err = CommandSource::new(&noexec, dir.path(), "r", &[])
        .unwrap()
        .check()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not an executable"), "{err}");
}
