//! Every expectation kind with warn, drop (quarantine) and fail (previous version kept).

use tributary_lake::WriteMode;
use tributary_transform::TransformError;

use crate::support::Env;

async fn env_with_orders() -> Env {
    let mut env = Env::new();
    env.bronze(
        "customers",
        "SELECT * FROM (VALUES (1, 'ann@example.com'), (2, 'bob@example')) AS t(id, email)",
        WriteMode::Append,
    )
    .await;
    env.bronze(
        "orders",
        "SELECT * FROM (VALUES
            (10, 1, 'paid', 50.0),
            (11, 2, 'paid', -5.0),
            (12, 9, 'lost', 20.0),
            (13, NULL, 'new', 15.0),
            (13, 1, 'new', 15.0)
        ) AS t(id, customer_id, status, total)",
        WriteMode::Append,
    )
    .await;
    env
}

const SQL: &str = "SELECT id, customer_id, status, total FROM {{ ref('bronze.orders') }}";

fn model(env: &Env, expectations: &str) {
    env.file("models/silver/orders.sql", SQL);
    env.file(
        "models/silver/orders.yaml",
        &format!("expectations:\n{expectations}"),
    );
}

#[tokio::test]
async fn every_kind_counts_failures_with_warn() {
    let env = env_with_orders().await;
    model(
        &env,
        "  - { not_null: customer_id, on_fail: warn }
  - { unique: id, on_fail: warn }
  - { accepted_values: { column: status, values: [new, paid] }, on_fail: warn }
  - { range: { column: total, min: 0 }, on_fail: warn }
  - { relationships: { column: customer_id, to: bronze.customers, field: id }, on_fail: warn }
  - { row_count: { min: 1, max: 4 }, on_fail: warn }
  - { expression: 'total < 50 OR status = ''paid''', on_fail: warn, name: big_orders_paid }
",
    );
    env.file(
        "models/silver/emails.sql",
        "/*---\nexpectations:\n  - regex: { column: email, pattern: '^[^@]+@[^@]+\\.[a-z]+$' }\n    on_fail: warn\n---*/\nSELECT * FROM {{ ref('bronze.customers') }}",
    );
    let o = env.run("silver.orders").await.unwrap();
    let failed: Vec<(String, u64)> = o
        .expectations
        .iter()
        .map(|r| (r.name.clone(), r.failed_rows))
        .collect();
    assert_eq!(
        failed,
        vec![
            ("not_null(customer_id)".to_string(), 1),
            ("unique(id)".to_string(), 2),
            ("accepted_values(status)".to_string(), 1),
            ("range(total)".to_string(), 1),
            (
                "relationships(customer_id -> bronze.customers.id)".to_string(),
                1
            ),
            ("row_count".to_string(), 1),
            ("big_orders_paid".to_string(), 0),
        ]
    );
    assert!(o.expectations.iter().all(|r| r.checked_rows == 5));
    // warn keeps every row.
    assert_eq!(
        env.rows("SELECT COUNT(*) FROM silver.orders").await,
        vec!["5"]
    );
    let o = env.run("silver.emails").await.unwrap();
    assert_eq!(
        o.expectations[0].failed_rows, 1,
        "bob@example has no dot after @"
    );
}

#[tokio::test]
async fn drop_quarantines_failing_rows_with_rule_and_run_id() {
    let env = env_with_orders().await;
    model(
        &env,
        "  - { range: { column: total, min: 0 }, on_fail: drop }
  - { accepted_values: { column: status, values: [new, paid] }, on_fail: drop }
",
    );
    let o = env.run("silver.orders").await.unwrap();
    assert_eq!(o.rows_quarantined, 2);
    assert_eq!(
        env.rows("SELECT id FROM silver.orders").await,
        vec!["10", "13", "13"]
    );
    assert_eq!(
        env.rows(
            "SELECT id, _tributary_expectation, _tributary_run_id FROM silver._quarantine_orders"
        )
        .await,
        vec![
            "11|range(total)|run-test",
            "12|accepted_values(status)|run-test"
        ]
    );
}

#[tokio::test]
async fn fail_stops_the_model_and_keeps_the_previous_version() {
    let env = env_with_orders().await;
    model(&env, "  - { range: { column: total, min: -100 } }\n");
    env.run("silver.orders").await.unwrap();
    let before = env.version("silver", "orders").await;
    model(
        &env,
        "  - { range: { column: total, min: 0 } }\n  - { not_null: status }\n",
    );
    let err = env.run("silver.orders").await.unwrap_err();
    match &err {
        TransformError::ExpectationsFailed { results, .. } => {
            assert_eq!(results.len(), 2);
            assert!(!results[0].passed);
            assert_eq!(results[0].failed_rows, 1);
            assert!(results[1].passed);
        }
        other => panic!("unexpected error {other}"),
    }
    let text = err.to_string();
    assert!(text.contains("range(total)"), "{text}");
    assert!(text.contains("previous version"), "{text}");
    assert_eq!(env.version("silver", "orders").await, before);
    assert_eq!(env.version("silver", "_quarantine_orders").await, None);
}
