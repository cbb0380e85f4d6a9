//! Deduplication by `unique_key`: the aggregate + join plan keeps exactly one whole row per key,
//! the same rows (up to ties) as a `ROW_NUMBER()` window.

use deltalake::datafusion::physical_plan::displayable;
use deltalake::datafusion::prelude::DataFrame;
use tributary_lake::WriteMode;
use tributary_transform::dedupe::{dedupe, window_dedupe_sql};
use tributary_transform::runner::new_session;

use crate::support::{self, Env};

async fn lines(df: DataFrame) -> Vec<String> {
    support::lines(&df.collect().await.unwrap())
}

/// Ties on key, `order_by` and `_tributary_loaded_at` (even identical rows) still leave one row
/// per key; NULL orderings lose; `_tributary_loaded_at` breaks `order_by` ties; NULL keys are
/// one key.
#[tokio::test]
async fn one_row_per_key_when_key_order_and_loaded_at_all_tie() {
    let mut env = Env::new();
    env.bronze(
        "events",
        "SELECT id, v, CAST(u AS TIMESTAMP) AS updated_at, CAST(l AS TIMESTAMP) AS _tributary_loaded_at FROM (VALUES
            (1, 'a', '2026-01-01 00:00:00', '2026-02-01 00:00:00'),
            (1, 'b', '2026-01-02 00:00:00', '2026-02-01 00:00:00'),
            (1, 'c', '2026-01-02 00:00:00', '2026-02-01 00:00:00'),
            (2, 'x', '2026-01-01 00:00:00', '2026-02-01 00:00:00'),
            (2, 'x', '2026-01-01 00:00:00', '2026-02-01 00:00:00'),
            (2, 'x', '2026-01-01 00:00:00', '2026-02-01 00:00:00'),
            (3, 'p', NULL, '2026-02-01 00:00:00'),
            (3, 'q', '2026-01-01 00:00:00', '2026-02-01 00:00:00'),
            (4, 'n1', NULL, '2026-02-02 00:00:00'),
            (4, 'n2', NULL, '2026-02-03 00:00:00'),
            (5, 'y', '2026-01-01 00:00:00', '2026-02-01 00:00:00'),
            (5, 'z', '2026-01-01 00:00:00', '2026-02-02 00:00:00'),
            (NULL, 'k1', '2026-01-01 00:00:00', '2026-02-01 00:00:00'),
            (NULL, 'k2', '2026-01-03 00:00:00', '2026-02-01 00:00:00')
        ) AS t(id, v, u, l)",
        WriteMode::Append,
    )
    .await;
    env.file(
        "models/silver/events.sql",
        "/*---\nunique_key: id\norder_by: updated_at\n---*/\nSELECT * FROM {{ ref('bronze.events') }}\n",
    );
    env.run("silver.events").await.unwrap();
    let rows = env.rows("SELECT id, v FROM silver.events").await;
    assert_eq!(rows.len(), 6, "{rows:?}");
    assert!(
        rows[0] == "1|b" || rows[0] == "1|c",
        "the newest of id 1: {rows:?}"
    );
    assert_eq!(
        rows[1..],
        ["2|x", "3|q", "4|n2", "5|z", "NULL|k2"],
        "{rows:?}"
    );
    // The same through a composite key: (id, v) makes id 2's identical rows one row.
    env.file(
        "models/silver/events.sql",
        "/*---\nunique_key: [id, v]\norder_by: updated_at\n---*/\nSELECT * FROM {{ ref('bronze.events') }}\n",
    );
    env.run("silver.events").await.unwrap();
    let n = env.rows("SELECT count(*) FROM silver.events").await;
    assert_eq!(n, vec!["12"], "14 rows, id 2's three identical");
}

/// Many keys, many ties, several ordering columns, NULL keys and orderings, input spread over
/// partitions: the per-key ordering values equal the window's, one row per key, every row an
/// input row.
#[tokio::test]
async fn same_rows_as_the_row_number_window() {
    let ctx = new_session(256 * 1024 * 1024).unwrap();
    ctx.sql(
        "CREATE VIEW raw AS SELECT \
           CASE WHEN v % 97 = 0 THEN NULL ELSE v % 1501 END AS k1, \
           CAST(v % 3 AS VARCHAR) AS k2, \
           CASE WHEN v % 11 = 0 THEN NULL ELSE (v * 7) % 13 END AS o1, \
           CAST((v * 5) % 4 AS BIGINT) AS _tributary_loaded_at, \
           'row ' || CAST(v AS VARCHAR) AS payload \
         FROM (SELECT value AS v FROM generate_series(1, 40000)) \
         UNION ALL SELECT 7 AS k1, '1' AS k2, 5 AS o1, CAST(9 AS BIGINT), 'dup' UNION ALL SELECT 7, '1', 5, CAST(9 AS BIGINT), 'dup'",
    )
    .await
    .unwrap()
    .collect()
    .await
    .unwrap();
    let schema = ctx.table("raw").await.unwrap().schema().as_arrow().clone();
    let keys = vec!["k1".to_string(), "k2".to_string()];
    let order = vec!["o1".to_string()];
    let fast = dedupe(&ctx, "raw", &schema, &keys, &order).await.unwrap();
    // The plan never sorts: aggregate, hash join, one row per key.
    let plan = fast.clone().create_physical_plan().await.unwrap();
    let text = displayable(plan.as_ref()).indent(true).to_string();
    assert!(!text.contains("SortExec"), "{text}");
    assert!(!text.contains("WindowAggExec"), "{text}");
    assert!(text.contains("HashJoinExec"), "{text}");
    assert!(text.contains("KeepFirstPerKeyExec"), "{text}");
    ctx.register_table("fast", fast.into_view()).unwrap();
    let window = ctx
        .sql(&window_dedupe_sql("raw", &schema, &keys, &order))
        .await
        .unwrap();
    ctx.register_table("by_window", window.into_view()).unwrap();
    let per_key = |t: &str| format!("SELECT k1, k2, o1, _tributary_loaded_at FROM {t}");
    let f = lines(ctx.sql(&per_key("fast")).await.unwrap()).await;
    let w = lines(ctx.sql(&per_key("by_window")).await.unwrap()).await;
    assert!(f.len() > 4000, "{}", f.len());
    assert_eq!(f, w);
    let one_per_key = lines(
        ctx.sql(
            "SELECT count(*) FROM (SELECT k1, k2 FROM fast GROUP BY k1, k2 HAVING count(*) > 1)",
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(one_per_key, vec!["0"]);
    let not_input = lines(
        ctx.sql("SELECT count(*) FROM (SELECT * FROM fast EXCEPT SELECT * FROM raw)")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(not_input, vec!["0"]);
    // Without ordering columns: any one row per key.
    let schema2 = ctx
        .sql("SELECT k1, k2, payload FROM raw")
        .await
        .unwrap()
        .schema()
        .as_arrow()
        .clone();
    ctx.register_table(
        "raw2",
        ctx.sql("SELECT k1, k2, payload FROM raw")
            .await
            .unwrap()
            .into_view(),
    )
    .unwrap();
    let any = dedupe(&ctx, "raw2", &schema2, &keys, &[]).await.unwrap();
    let n = any.count().await.unwrap();
    assert_eq!(n, f.len());
}
