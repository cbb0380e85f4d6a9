//! table, incremental (merge and append) and scd2 against real Delta tables.

use tributary_lake::WriteMode;
use tributary_transform::ModelStatus;
use tributary_transform::model::Materialized;

use crate::support::Env;

const ORDERS_1: &str = "SELECT * FROM (VALUES
    (1, 'new', 10.0, TIMESTAMP '2024-01-01 10:00:00'),
    (2, 'new', 20.0, TIMESTAMP '2024-01-01 11:00:00'),
    (2, 'paid', 20.0, TIMESTAMP '2024-01-01 12:00:00'),
    (3, 'new', 30.0, TIMESTAMP '2024-01-01 13:00:00')
) AS t(id, status, total, updated_at)";

#[tokio::test]
async fn table_rebuild_is_idempotent_and_dedupes_by_unique_key() {
    let mut env = Env::new();
    env.bronze("erp_orders", ORDERS_1, WriteMode::Append).await;
    env.file(
        "models/silver/orders.sql",
        "/*---\nunique_key: id\norder_by: updated_at\n---*/\nSELECT id, status, total, updated_at FROM {{ ref('bronze.erp_orders') }}\n",
    );
    let o = env.run("silver.orders").await.unwrap();
    assert_eq!(o.materialized, Materialized::Table);
    assert_eq!(o.status, ModelStatus::Built);
    assert_eq!(o.rows_inserted, 3);
    let first = env.rows("SELECT id, status FROM silver.orders").await;
    assert_eq!(first, vec!["1|new", "2|paid", "3|new"]);
    let v1 = env.version("silver", "orders").await.unwrap();
    // A rerun rebuilds the same content as a new version.
    env.run("silver.orders").await.unwrap();
    assert_eq!(
        env.rows("SELECT id, status FROM silver.orders").await,
        first
    );
    assert_eq!(env.version("silver", "orders").await.unwrap(), v1 + 1);
}

#[tokio::test]
async fn incremental_merge_handles_late_updates_and_duplicates_in_one_batch() {
    let mut env = Env::new();
    env.bronze("erp_orders", ORDERS_1, WriteMode::Append).await;
    env.file(
        "models/silver/orders.yaml",
        "materialized: incremental\nunique_key: id\norder_by: updated_at\n",
    );
    env.file(
        "models/silver/orders.sql",
        "SELECT id, status, total, updated_at FROM {{ ref('bronze.erp_orders') }}",
    );
    let o = env.run("silver.orders").await.unwrap();
    assert_eq!(o.rows_inserted, 3);
    // Nothing new upstream: no work, no new version.
    let v = env.version("silver", "orders").await;
    let o = env.run("silver.orders").await.unwrap();
    assert_eq!(o.status, ModelStatus::UpToDate);
    assert_eq!(env.version("silver", "orders").await, v);

    // A new bronze load: order 1 updated twice in the same batch (latest wins), a late update
    // of order 2 that is OLDER than what silver has (ignored), and a new order 4.
    env.bronze(
        "erp_orders",
        "SELECT * FROM (VALUES
            (1, 'paid', 10.0, TIMESTAMP '2024-01-02 09:00:00'),
            (1, 'shipped', 10.0, TIMESTAMP '2024-01-02 10:00:00'),
            (2, 'new', 20.0, TIMESTAMP '2024-01-01 11:30:00'),
            (4, 'new', 40.0, TIMESTAMP '2024-01-02 08:00:00')
        ) AS t(id, status, total, updated_at)",
        WriteMode::Append,
    )
    .await;
    let o = env.run("silver.orders").await.unwrap();
    assert_eq!(o.status, ModelStatus::Built);
    assert_eq!(o.rows_in, 3, "three keys in the new batch");
    assert_eq!(o.rows_inserted, 1);
    assert_eq!(
        o.rows_updated, 1,
        "order 1 updated; the stale order 2 row ignored"
    );
    let merged = env.rows("SELECT id, status FROM silver.orders").await;
    assert_eq!(merged, vec!["1|shipped", "2|paid", "3|new", "4|new"]);

    // Reprocessing: a full refresh from all of bronze gives the same rows.
    env.run_with("silver.orders", true).await.unwrap();
    assert_eq!(
        env.rows("SELECT id, status FROM silver.orders").await,
        merged
    );
    // And a second incremental run after it has nothing to do.
    let o = env.run("silver.orders").await.unwrap();
    assert_eq!(o.status, ModelStatus::UpToDate);
}

#[tokio::test]
async fn incremental_without_key_appends_only_new_rows() {
    let mut env = Env::new();
    env.bronze(
        "events",
        "SELECT * FROM (VALUES (1, 'a'), (2, 'b')) AS t(id, kind)",
        WriteMode::Append,
    )
    .await;
    env.file(
        "models/silver/events.sql",
        "/*---\nmaterialized: incremental\n---*/\nSELECT id, upper(kind) AS kind FROM {{ ref('bronze.events') }}\n{% if is_incremental() %}WHERE id > 0{% endif %}",
    );
    env.run("silver.events").await.unwrap();
    env.bronze(
        "events",
        "SELECT * FROM (VALUES (3, 'c')) AS t(id, kind)",
        WriteMode::Append,
    )
    .await;
    let o = env.run("silver.events").await.unwrap();
    assert_eq!(o.rows_inserted, 1);
    assert_eq!(
        env.rows("SELECT id, kind FROM silver.events").await,
        vec!["1|A", "2|B", "3|C"]
    );
}

#[tokio::test]
async fn scd2_over_three_snapshots() {
    let mut env = Env::new();
    let snapshot = |rows: &str| format!("SELECT * FROM (VALUES {rows}) AS t(id, name, country)");
    env.bronze(
        "crm_customers",
        &snapshot("(1, 'Ann', 'DE'), (2, 'Bob', 'FR')"),
        WriteMode::Overwrite,
    )
    .await;
    env.file(
        "models/silver/customer_history.sql",
        "/*---\nmaterialized: scd2\nunique_key: id\n---*/\nSELECT id, name, country FROM {{ ref('bronze.crm_customers') }}",
    );
    let o = env.run("silver.customer_history").await.unwrap();
    assert_eq!(o.rows_inserted, 2);
    // Unchanged input: no new version.
    let v = env.version("silver", "customer_history").await;
    let o = env.run("silver.customer_history").await.unwrap();
    assert_eq!(o.status, ModelStatus::UpToDate);
    assert_eq!(env.version("silver", "customer_history").await, v);

    // Snapshot 2: Ann moves, Bob unchanged, Cy new.
    env.bronze(
        "crm_customers",
        &snapshot("(1, 'Ann', 'AT'), (2, 'Bob', 'FR'), (3, 'Cy', 'IT')"),
        WriteMode::Overwrite,
    )
    .await;
    let o = env.run("silver.customer_history").await.unwrap();
    assert_eq!(o.rows_inserted, 2, "Ann's new version and Cy");
    assert_eq!(o.rows_updated, 1, "Ann's old version closed");
    // Snapshot 3: Bob renamed; Ann unchanged since snapshot 2.
    env.bronze(
        "crm_customers",
        &snapshot("(1, 'Ann', 'AT'), (2, 'Robert', 'FR'), (3, 'Cy', 'IT')"),
        WriteMode::Overwrite,
    )
    .await;
    env.run("silver.customer_history").await.unwrap();
    let rows = env
        .rows("SELECT id, name, country, is_current, valid_to IS NULL FROM silver.customer_history")
        .await;
    assert_eq!(
        rows,
        vec![
            "1|Ann|AT|true|true",
            "1|Ann|DE|false|false",
            "2|Bob|FR|false|false",
            "2|Robert|FR|true|true",
            "3|Cy|IT|true|true",
        ]
    );
    // A closed version ends exactly when its successor starts.
    let gaps = env
        .rows(
            "SELECT COUNT(*) FROM silver.customer_history o JOIN silver.customer_history n \
             ON o.id = n.id AND NOT o.is_current AND n.is_current WHERE o.valid_to <> n.valid_from",
        )
        .await;
    assert_eq!(gaps, vec!["0"]);
}

#[tokio::test]
async fn schema_evolution_added_passes_removed_fails_with_diff() {
    let mut env = Env::new();
    env.bronze(
        "items",
        "SELECT * FROM (VALUES (1, 'a', 5)) AS t(id, sku, qty)",
        WriteMode::Append,
    )
    .await;
    env.file(
        "models/silver/items.sql",
        "SELECT id, sku FROM {{ ref('bronze.items') }}",
    );
    env.run("silver.items").await.unwrap();
    // Added column: passes.
    env.file(
        "models/silver/items.sql",
        "SELECT id, sku, qty FROM {{ ref('bronze.items') }}",
    );
    env.run("silver.items").await.unwrap();
    assert_eq!(
        env.rows("SELECT id, sku, qty FROM silver.items").await,
        vec!["1|a|5"]
    );
    let before = env.version("silver", "items").await;
    // Removed column: fails, naming the column; the table keeps its version.
    env.file(
        "models/silver/items.sql",
        "SELECT id, qty FROM {{ ref('bronze.items') }}",
    );
    let err = env.run("silver.items").await.unwrap_err().to_string();
    assert!(err.contains("sku"), "{err}");
    assert!(err.contains("removed"), "{err}");
    assert_eq!(env.version("silver", "items").await, before);
    // Narrowed type: fails with both types.
    env.file(
        "models/silver/items.sql",
        "SELECT id, sku, CAST(qty AS SMALLINT) AS qty FROM {{ ref('bronze.items') }}",
    );
    let err = env.run("silver.items").await.unwrap_err().to_string();
    assert!(err.contains("qty"), "{err}");
    assert_eq!(env.version("silver", "items").await, before);
    // Allowed by configuration.
    env.file(
        "models/silver/items.sql",
        "/*---\non_schema_change: allow\n---*/\nSELECT id, qty FROM {{ ref('bronze.items') }}",
    );
    env.run("silver.items").await.unwrap();
    assert_eq!(env.rows("SELECT * FROM silver.items").await, vec!["1|5"]);
}

/// An scd2 model whose SELECT gains a column evolves its table without --full-refresh: history
/// kept, the column present, current versions carry its values, closed versions NULL. A run
/// that stopped after adding the column (before its MERGE) leaves a readable table, and the
/// next run converges to the same rows.
#[tokio::test]
async fn scd2_new_column_evolves_the_table() {
    for stop_after_add in [false, true] {
        let mut env = Env::new();
        let snapshot =
            |rows: &str| format!("SELECT * FROM (VALUES {rows}) AS t(id, name, country)");
        env.bronze(
            "crm_customers",
            &snapshot("(1, 'Ann', 'DE'), (2, 'Bob', 'FR')"),
            WriteMode::Overwrite,
        )
        .await;
        let model = |cols: &str| {
            format!(
                "/*---\nmaterialized: scd2\nunique_key: id\n---*/\nSELECT {cols} FROM {{{{ ref('bronze.crm_customers') }}}}"
            )
        };
        env.file("models/silver/history.sql", &model("id, name"));
        env.run("silver.history").await.unwrap();
        env.bronze(
            "crm_customers",
            &snapshot("(1, 'Zoe', 'DE'), (2, 'Bob', 'FR')"),
            WriteMode::Overwrite,
        )
        .await;
        env.run("silver.history").await.unwrap();
        assert_eq!(
            env.rows("SELECT id, name, is_current FROM silver.history")
                .await,
            vec!["1|Ann|false", "1|Zoe|true", "2|Bob|true"]
        );

        if stop_after_add {
            // What a run leaves when it stops between adding the column and its MERGE.
            let t = env.lake.open("silver", "history").await.unwrap().unwrap();
            let field = deltalake::kernel::StructField::new(
                "country",
                deltalake::kernel::DataType::STRING,
                true,
            );
            t.add_columns().with_fields(vec![field]).await.unwrap();
            assert_eq!(
                env.rows("SELECT id, name, country FROM silver.history")
                    .await,
                vec!["1|Ann|NULL", "1|Zoe|NULL", "2|Bob|NULL"],
                "readable, the new column empty"
            );
        }

        // Adding a column is a change of logic (the old rows have none): by default the run
        // stops; `on_logic_change: continue` evolves the table and keeps the old rows.
        env.file("models/silver/history.sql", &model("id, name, country"));
        assert!(matches!(
            env.run("silver.history").await.unwrap_err(),
            tributary_transform::TransformError::LogicChanged { .. }
        ));
        env.file(
            "models/silver/history.sql",
            &model("id, name, country").replace(
                "unique_key: id\n",
                "unique_key: id\non_logic_change: continue\n",
            ),
        );
        let o = env.run("silver.history").await.unwrap();
        assert_eq!(o.rows_inserted, 2, "stop_after_add={stop_after_add}");
        assert_eq!(o.rows_updated, 2, "stop_after_add={stop_after_add}");
        assert_eq!(
            env.rows("SELECT id, name, country, is_current FROM silver.history")
                .await,
            vec![
                "1|Ann|NULL|false",
                "1|Zoe|DE|true",
                "1|Zoe|NULL|false",
                "2|Bob|FR|true",
                "2|Bob|NULL|false",
            ],
            "stop_after_add={stop_after_add}"
        );
        // Rerun: nothing changed, no new version.
        let v = env.version("silver", "history").await;
        let o = env.run("silver.history").await.unwrap();
        assert_eq!(o.status, ModelStatus::UpToDate);
        assert_eq!(env.version("silver", "history").await, v);
    }
}
