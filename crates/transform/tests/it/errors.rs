//! Bad models: SQL syntax errors with their position, unknown refs, cycles, bad expectations.

use tributary_lake::WriteMode;

use crate::support::Env;

fn problems(env: &Env) -> String {
    match env.models() {
        Ok(_) => panic!("expected problems"),
        Err(p) => p
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

#[tokio::test]
async fn syntax_error_points_at_file_and_line() {
    let mut env = Env::new();
    env.bronze("t", "SELECT 1 AS id", WriteMode::Append).await;
    env.file(
        "models/silver/broken.sql",
        "/*---\nmaterialized: table\n---*/\nSELECT id,\n  FROMM {{ ref('bronze.t') }} WHERE\n",
    );
    let p = problems(&env);
    assert!(p.contains("models/silver/broken.sql:5"), "{p}");
}

#[tokio::test]
async fn unknown_ref_and_cycle_name_both_files() {
    let env = Env::new();
    env.file("models/silver/a.sql", "SELECT * FROM {{ ref('silver.b') }}");
    env.file("models/silver/b.sql", "SELECT * FROM {{ ref('gold.a') }}");
    env.file("models/gold/a.sql", "SELECT * FROM {{ ref('silver.a') }}");
    env.file(
        "models/gold/c.sql",
        "SELECT * FROM\n{{ ref('bronze.missing') }}",
    );
    let p = problems(&env);
    assert!(p.contains("models/gold/c.sql:2"), "{p}");
    assert!(p.contains("bronze.missing"), "{p}");
    assert!(p.contains("cycle"), "{p}");
    assert!(
        p.contains("models/silver/a.sql") && p.contains("models/silver/b.sql"),
        "{p}"
    );
    assert!(p.contains("models/gold/a.sql"), "{p}");
}

#[tokio::test]
async fn invalid_expectations_name_file_line_and_key() {
    let env = Env::new();
    env.file("models/silver/x.sql", "SELECT 1 AS id");
    env.file(
        "models/silver/x.yaml",
        "materialized: table\nexpectations:\n  - not_null: id\n  - range: { column: id, min: 5, max: 1 }\n  - { row_count: { min: 1 }, on_fail: drop }\n  - { nope: id }\n",
    );
    let p = problems(&env);
    assert!(
        p.contains("models/silver/x.yaml:4: key `expectations[1].range`"),
        "{p}"
    );
    assert!(
        p.contains("models/silver/x.yaml:5: key `expectations[2].on_fail`"),
        "{p}"
    );
    assert!(p.contains("expectations[3].nope"), "{p}");
    // Unknown settings keys are refused too.
    env.file("models/silver/x.yaml", "materialised: table\n");
    let p = problems(&env);
    assert!(p.contains("models/silver/x.yaml:1"), "{p}");
    assert!(p.contains("materialised"), "{p}");
}

#[tokio::test]
async fn runtime_planning_error_names_the_model() {
    let mut env = Env::new();
    env.bronze("t", "SELECT 1 AS id", WriteMode::Append).await;
    env.file(
        "models/silver/y.sql",
        "SELECT no_such_column FROM {{ ref('bronze.t') }}",
    );
    let err = env.run("silver.y").await.unwrap_err().to_string();
    assert!(err.contains("models/silver/y.sql"), "{err}");
    assert!(err.contains("no_such_column"), "{err}");
}
