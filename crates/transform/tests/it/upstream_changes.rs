//! Incremental models read what their upstream tables *changed* since the versions they last
//! read: a compaction (ours, a Z-order, a foreign writer's) feeds no row again, a rewritten
//! upstream is read whole by merge and scd2 models and refused by append-only models, a log
//! that lost the versions since then is said so, and a MERGE's changes arrive through the change
//! data feed of the tables Tributary merges into.

use tributary_core::ErrorClass;
use tributary_lake::{MaintainOptions, WriteMode, maintain_table};
use tributary_transform::{ModelStatus, TransformError};

use crate::support::Env;

/// Rows `from..=to`: `id`, and a `kind` derived from it.
fn rows(from: i64, to: i64) -> String {
    format!(
        "SELECT value AS id, concat('k', CAST(value % 7 AS VARCHAR)) AS kind FROM generate_series({from}, {to})"
    )
}

/// Three loads of 1,000 rows each into `bronze.ev`.
async fn three_loads(env: &mut Env) {
    for i in 0..3 {
        env.bronze("ev", &rows(i * 1000 + 1, (i + 1) * 1000), WriteMode::Append)
            .await;
    }
}

const APPEND: &str =
    "/*---\nmaterialized: incremental\n---*/\nSELECT id, kind FROM {{ ref('bronze.ev') }}";
const MERGE: &str = "/*---\nmaterialized: incremental\nunique_key: id\n---*/\nSELECT id, kind FROM {{ ref('bronze.ev') }}";
const SCD2: &str =
    "/*---\nmaterialized: scd2\nunique_key: id\n---*/\nSELECT id, kind FROM {{ ref('bronze.ev') }}";

#[derive(Debug, Clone, Copy)]
enum Compaction {
    /// `tributary maintain`'s bin-packing OPTIMIZE.
    Ours,
    /// `tributary maintain --zorder-by kind`.
    ZOrder,
    /// Python `deltalake`'s `optimize.compact()`: another writer.
    Foreign,
}

const ALL: [Compaction; 3] = [Compaction::Ours, Compaction::ZOrder, Compaction::Foreign];

/// Compact `bronze.ev` and check that the compaction happened (one new version whose files
/// replace several). `None`: Python `deltalake` is missing (outside CI).
async fn compact(env: &Env, how: Compaction) -> Option<()> {
    let files_before = data_files(env).await;
    let version_before = env.version("bronze", "ev").await.unwrap();
    match how {
        Compaction::Ours | Compaction::ZOrder => {
            let report = maintain_table(
                &env.lake,
                "bronze",
                "ev",
                &MaintainOptions {
                    target_file_bytes: 64 * 1024 * 1024,
                    retention_hours: tributary_lake::SAFE_RETENTION_HOURS,
                    force: false,
                    dry_run: false,
                    zorder_by: match how {
                        Compaction::ZOrder => vec!["kind".into()],
                        _ => Vec::new(),
                    },
                },
            )
            .await
            .unwrap();
            assert!(report.files_removed >= 2, "{how:?}: {report:?}");
        }
        Compaction::Foreign => {
            let path = env.root().join("lake/bronze/ev");
            let out = tributary_testkit::python::run(
                "deltalake",
                &format!(
                    "from deltalake import DeltaTable\nm = DeltaTable('{}').optimize.compact()\nprint(m['numFilesRemoved'])",
                    path.display()
                ),
            )?;
            let removed: u64 = out.trim().parse().unwrap();
            assert!(removed >= 2, "foreign compaction removed {removed} files");
        }
    }
    assert_eq!(
        env.version("bronze", "ev").await,
        Some(version_before + 1),
        "{how:?}"
    );
    assert!(data_files(env).await < files_before, "{how:?}");
    Some(())
}

async fn data_files(env: &Env) -> usize {
    let t = env.lake.open("bronze", "ev").await.unwrap().unwrap();
    t.snapshot().unwrap().log_data().iter().count()
}

async fn count(env: &Env, table: &str) -> String {
    env.rows(&format!("SELECT COUNT(*), COUNT(DISTINCT id) FROM {table}"))
        .await
        .join(",")
}

#[tokio::test]
async fn append_models_read_no_row_twice_across_compactions() {
    for how in ALL {
        let mut env = Env::new();
        three_loads(&mut env).await;
        env.file("models/silver/ev.sql", APPEND);
        env.run("silver.ev").await.unwrap();
        assert_eq!(count(&env, "silver.ev").await, "3000|3000");

        // Compaction, then 100 new rows: only those are appended.
        if compact(&env, how).await.is_none() {
            return;
        }
        env.bronze("ev", &rows(3001, 3100), WriteMode::Append).await;
        let o = env.run("silver.ev").await.unwrap();
        assert_eq!((o.rows_in, o.rows_inserted), (100, 100), "{how:?}");
        assert_eq!(count(&env, "silver.ev").await, "3100|3100", "{how:?}");

        // 100 new rows that a compaction folds into one file with the old ones before the
        // model runs: they are read from the version before the compaction, the old rows not.
        env.bronze("ev", &rows(3101, 3200), WriteMode::Append).await;
        compact(&env, how).await.unwrap();
        let o = env.run("silver.ev").await.unwrap();
        assert_eq!(o.rows_inserted, 100, "{how:?}");
        assert_eq!(count(&env, "silver.ev").await, "3200|3200", "{how:?}");

        // Only a compaction since the last run: nothing new.
        env.bronze("ev", &rows(3201, 3300), WriteMode::Append).await;
        env.run("silver.ev").await.unwrap();
        compact(&env, how).await.unwrap();
        let o = env.run("silver.ev").await.unwrap();
        assert_eq!(o.rows_inserted, 0, "{how:?}");
        assert_eq!(count(&env, "silver.ev").await, "3300|3300", "{how:?}");
    }
}

#[tokio::test]
async fn merge_models_read_only_the_new_rows_after_a_compaction() {
    for how in ALL {
        let mut env = Env::new();
        three_loads(&mut env).await;
        env.file("models/silver/ev.sql", MERGE);
        env.run("silver.ev").await.unwrap();
        if compact(&env, how).await.is_none() {
            return;
        }
        env.bronze("ev", &rows(3001, 3100), WriteMode::Append).await;
        let o = env.run("silver.ev").await.unwrap();
        assert_eq!(o.rows_in, 100, "{how:?}: rows in are only the new rows");
        assert_eq!((o.rows_inserted, o.rows_updated), (100, 0), "{how:?}");
        assert_eq!(count(&env, "silver.ev").await, "3100|3100", "{how:?}");
    }
}

#[tokio::test]
async fn scd2_models_see_no_change_in_a_compaction() {
    for how in ALL {
        let mut env = Env::new();
        three_loads(&mut env).await;
        env.file("models/silver/ev.sql", SCD2);
        env.run("silver.ev").await.unwrap();
        let v = env.version("silver", "ev").await;
        if compact(&env, how).await.is_none() {
            return;
        }
        let o = env.run("silver.ev").await.unwrap();
        assert_eq!(o.status, ModelStatus::UpToDate, "{how:?}");
        assert_eq!(env.version("silver", "ev").await, v, "{how:?}");
        env.bronze("ev", &rows(3001, 3100), WriteMode::Append).await;
        let o = env.run("silver.ev").await.unwrap();
        assert_eq!((o.rows_inserted, o.rows_updated), (100, 0), "{how:?}");
        assert_eq!(
            env.rows("SELECT COUNT(*) FROM silver.ev WHERE is_current")
                .await,
            vec!["3100"],
            "{how:?}"
        );
    }
}

#[tokio::test]
async fn a_rewritten_upstream_fails_append_models_and_is_read_whole_by_merge_models() {
    let mut env = Env::new();
    three_loads(&mut env).await;
    env.file("models/silver/appended.sql", APPEND);
    env.file("models/silver/merged.sql", MERGE);
    env.run("silver.appended").await.unwrap();
    env.run("silver.merged").await.unwrap();
    // A full refresh upstream: 500 rows, every kind changed.
    env.bronze(
        "ev",
        "SELECT value AS id, 'new' AS kind FROM generate_series(1, 500)",
        WriteMode::Overwrite,
    )
    .await;
    let rewrite = env.version("bronze", "ev").await.unwrap();

    let e = env.run("silver.appended").await.unwrap_err();
    assert!(matches!(e, TransformError::UpstreamRewritten { .. }), "{e}");
    assert_eq!(e.class(), ErrorClass::Config);
    let text = e.to_string();
    assert!(
        text.contains(&format!("version {rewrite}")) && text.contains("--full-refresh"),
        "{text}"
    );
    assert_eq!(count(&env, "silver.appended").await, "3000|3000");

    let o = env.run("silver.merged").await.unwrap();
    assert_eq!(o.rows_in, 500, "the upstream read whole");
    assert_eq!((o.rows_inserted, o.rows_updated), (0, 500));
    assert_eq!(
        env.rows("SELECT kind, COUNT(*) FROM silver.merged GROUP BY kind HAVING kind = 'new'")
            .await,
        vec!["new|500"]
    );
}

#[tokio::test]
async fn versions_removed_by_log_cleanup_are_said_and_followed() {
    let mut env = Env::new();
    three_loads(&mut env).await;
    env.file("models/silver/appended.sql", APPEND);
    env.file("models/silver/merged.sql", MERGE);
    env.run("silver.appended").await.unwrap();
    env.run("silver.merged").await.unwrap();
    env.bronze("ev", &rows(3001, 3100), WriteMode::Append).await;
    env.bronze("ev", &rows(3101, 3200), WriteMode::Append).await;
    // Log cleanup: a checkpoint at the last version, the commits before it removed.
    let t = env.lake.open("bronze", "ev").await.unwrap().unwrap();
    deltalake::checkpoints::create_checkpoint(&t, None)
        .await
        .unwrap();
    let log = env.root().join("lake/bronze/ev/_delta_log");
    for v in 0..4 {
        std::fs::remove_file(log.join(format!("{v:020}.json"))).unwrap();
    }

    let e = env.run("silver.appended").await.unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("version 3") && text.contains("log cleanup"),
        "{text}"
    );
    let o = env.run("silver.merged").await.unwrap();
    assert_eq!(o.rows_in, 3200, "read whole");
    assert_eq!((o.rows_inserted, o.rows_updated), (200, 3000));
    assert_eq!(count(&env, "silver.merged").await, "3200|3200");
}

#[tokio::test]
async fn merged_tables_carry_the_change_data_feed_that_the_next_model_reads() {
    let mut env = Env::new();
    three_loads(&mut env).await;
    env.file("models/silver/ev.sql", MERGE);
    env.file(
        "models/gold/ev.sql",
        "/*---\nmaterialized: incremental\nunique_key: id\n---*/\nSELECT id, upper(kind) AS kind FROM {{ ref('silver.ev') }}",
    );
    env.run("silver.ev").await.unwrap();
    env.run("gold.ev").await.unwrap();
    let silver = env.lake.open("silver", "ev").await.unwrap().unwrap();
    assert!(tributary_lake::changes::has_change_data_feed(&silver));

    // Ten rows change upstream; silver's MERGE rewrites the files that hold them.
    env.bronze(
        "ev",
        "SELECT value * 100 AS id, 'changed' AS kind FROM generate_series(1, 10)",
        WriteMode::Append,
    )
    .await;
    let o = env.run("silver.ev").await.unwrap();
    assert_eq!((o.rows_in, o.rows_updated), (10, 10));
    // Gold reads silver's feed: the ten updated rows, not the 3,000-row table.
    let o = env.run("gold.ev").await.unwrap();
    assert_eq!(o.rows_in, 10);
    assert_eq!(o.rows_updated, 10);
    assert_eq!(
        env.rows("SELECT COUNT(*) FROM gold.ev WHERE kind = 'CHANGED'")
            .await,
        vec!["10"]
    );
    assert_eq!(count(&env, "gold.ev").await, "3000|3000");
}

#[tokio::test]
async fn new_rows_compacted_and_vacuumed_before_the_model_ran_are_said() {
    let mut env = Env::new();
    three_loads(&mut env).await;
    env.file("models/silver/appended.sql", APPEND);
    env.file("models/silver/merged.sql", MERGE);
    env.run("silver.appended").await.unwrap();
    env.run("silver.merged").await.unwrap();
    env.bronze("ev", &rows(3001, 3100), WriteMode::Append).await;
    // Compaction, then a vacuum with no retention: the new rows' own file is gone.
    let report = maintain_table(
        &env.lake,
        "bronze",
        "ev",
        &MaintainOptions {
            target_file_bytes: 64 * 1024 * 1024,
            retention_hours: 0,
            force: true,
            dry_run: false,
            zorder_by: Vec::new(),
        },
    )
    .await
    .unwrap();
    assert!(report.files_vacuumed >= 4, "{report:?}");

    let text = env.run("silver.appended").await.unwrap_err().to_string();
    assert!(
        text.contains("vacuumed the files version 3 added") && text.contains("--full-refresh"),
        "{text}"
    );
    let o = env.run("silver.merged").await.unwrap();
    assert_eq!(o.rows_in, 3100, "read whole");
    assert_eq!(count(&env, "silver.merged").await, "3100|3100");
}
