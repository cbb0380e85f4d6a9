//! One load is one Delta commit carrying its rows and its watermark; nothing is visible before
//! it; a writer that loses a race to another writer gets a `conflict` and loses no data.

use tributary_core::ErrorClass;
use tributary_lake::{WriteMode, table_info};

use crate::support::*;

#[tokio::test]
async fn a_load_is_one_commit_with_its_rows_and_watermark() {
    let (dir, lake) = local_lake();
    let w = written(
        &lake,
        "orders",
        WriteMode::Append,
        vec![rows(1, 1001, "a"), rows(1001, 2501, "b")],
    )
    .await;
    // Written but not committed: no table yet.
    assert!(lake.open("bronze", "orders").await.unwrap().is_none());
    let summary = w
        .commit(Some(watermark(2500)), run_metadata("run-1"))
        .await
        .unwrap();
    assert!(summary.committed);
    assert_eq!((summary.version, summary.rows), (0, 2500));

    // A second load that is dropped before its commit changes nothing.
    let dropped = written(
        &lake,
        "orders",
        WriteMode::Append,
        vec![rows(2501, 2601, "c")],
    )
    .await;
    drop(dropped);
    let t = lake.open("bronze", "orders").await.unwrap().unwrap();
    let info = table_info("bronze", "orders", &t).unwrap();
    assert_eq!((info.version, info.rows), (0, Some(2500)));
    assert_eq!(info.watermark, Some(watermark(2500)));

    // The next load appends and moves the watermark in the same commit.
    let w = written(
        &lake,
        "orders",
        WriteMode::Append,
        vec![rows(2501, 2601, "c")],
    )
    .await;
    let summary = w
        .commit(Some(watermark(2600)), run_metadata("run-2"))
        .await
        .unwrap();
    assert_eq!((summary.version, summary.rows), (1, 100));

    // An independent reader sees the same: rows per version, the watermark in the table's
    // properties, the run id in the commit info.
    let path = dir.path().join("lake/bronze/orders");
    let Some(out) = python(&format!(
        r#"
import json
from deltalake import DeltaTable
dt = DeltaTable("{path}")
print(dt.version(), dt.to_pyarrow_table().num_rows)
print(json.loads(dt.metadata().configuration["tributary.watermark"])["value"])
print(DeltaTable("{path}", version=0).to_pyarrow_table().num_rows)
print(json.dumps([h.get("run_id") for h in dt.history()]))
"#,
        path = path.display()
    )) else {
        return;
    };
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1 2600", "{out}");
    assert!(lines[1].contains("2600"), "{out}");
    assert_eq!(lines[2], "2500", "{out}");
    assert_eq!(lines[3], r#"["run-2", "run-1"]"#, "{out}");
}

/// Two incremental loads of one table that both read version 0: the first commits; the second
/// would move the watermark the first already moved, so delta-rs refuses it. The refusal is
/// class `conflict` (retried by the task's policy), and the table holds exactly the first
/// load.
#[tokio::test]
async fn two_loads_racing_on_one_table_commit_once_and_the_loser_is_a_conflict() {
    let (_dir, lake) = local_lake();
    written(&lake, "orders", WriteMode::Append, vec![rows(1, 11, "a")])
        .await
        .commit(Some(watermark(10)), run_metadata("first"))
        .await
        .unwrap();

    // Both prepared against version 0.
    let a = written(&lake, "orders", WriteMode::Append, vec![rows(11, 21, "b")]).await;
    let b = written(&lake, "orders", WriteMode::Append, vec![rows(11, 21, "b")]).await;
    let won = a
        .commit(Some(watermark(20)), run_metadata("a"))
        .await
        .unwrap();
    assert_eq!(won.version, 1);
    let lost = b
        .commit(Some(watermark(20)), run_metadata("b"))
        .await
        .expect_err("the second commit of the same rows went through");
    assert!(lost.is_conflict(), "{lost}");
    assert_eq!(lost.class(), ErrorClass::Conflict, "{lost}");
    assert!(lost.is_retryable());

    let t = lake.open("bronze", "orders").await.unwrap().unwrap();
    let info = table_info("bronze", "orders", &t).unwrap();
    assert_eq!(
        (info.version, info.rows),
        (1, Some(20)),
        "rows doubled or lost"
    );
    assert_eq!(info.watermark, Some(watermark(20)));

    // The retry reads version 1, finds nothing new to add past the watermark, and commits
    // nothing.
    let retry = written(&lake, "orders", WriteMode::Append, vec![]).await;
    let summary = retry
        .commit(Some(watermark(20)), run_metadata("b"))
        .await
        .unwrap();
    assert!(!summary.committed);
}

/// A full load held before its commit while a foreign writer (Python `deltalake`) replaces
/// the table: both remove the same files, so the held commit is a `conflict`, and the foreign
/// writer's rows are kept.
#[tokio::test]
async fn a_foreign_overwrite_during_a_full_load_is_a_conflict_that_keeps_its_rows() {
    let (dir, lake) = local_lake();
    written(
        &lake,
        "customers",
        WriteMode::Overwrite,
        vec![rows(1, 4, "ours")],
    )
    .await
    .commit(None, run_metadata("first"))
    .await
    .unwrap();
    let held = written(
        &lake,
        "customers",
        WriteMode::Overwrite,
        vec![rows(1, 5, "ours")],
    )
    .await;

    let path = dir.path().join("lake/bronze/customers");
    let Some(out) = python(&format!(
        r#"
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
t = pa.table({{"id": pa.array([7, 8], pa.int64()), "v": pa.array(["theirs", "theirs"])}})
write_deltalake("{path}", t, mode="overwrite")
print(DeltaTable("{path}").version())
"#,
        path = path.display()
    )) else {
        return;
    };
    assert_eq!(out.trim(), "1", "{out}");

    let lost = held
        .commit(None, run_metadata("held"))
        .await
        .expect_err("a full load replaced rows it never saw");
    assert_eq!(lost.class(), ErrorClass::Conflict, "{lost}");
    let t = lake.open("bronze", "customers").await.unwrap().unwrap();
    let info = table_info("bronze", "customers", &t).unwrap();
    assert_eq!(
        (info.version, info.rows),
        (1, Some(2)),
        "the foreign writer's rows are gone"
    );

    // The next attempt works on the new version.
    let summary = written(
        &lake,
        "customers",
        WriteMode::Overwrite,
        vec![rows(1, 5, "ours")],
    )
    .await
    .commit(None, run_metadata("retry"))
    .await
    .unwrap();
    assert_eq!((summary.version, summary.rows), (2, 4));
}
