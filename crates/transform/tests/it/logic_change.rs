//! An incremental or scd2 model whose logic changed since its table was built: `fail` (the
//! default) says what changed and what to run, `rebuild` rebuilds, `continue` goes on; a change
//! of whitespace or of a macro the model does not call is no change, and a table built before
//! fingerprints is not failed.

use tributary_core::ErrorClass;
use tributary_lake::{TableWriter, WriteMode};
use tributary_transform::TransformError;

use crate::support::Env;

fn model(settings: &str, select: &str) -> String {
    format!(
        "/*---\nmaterialized: incremental\nunique_key: id\n{settings}---*/\nSELECT id, {select} AS v FROM {{{{ ref('bronze.ev') }}}}"
    )
}

async fn env_with_rows() -> Env {
    let mut env = Env::new();
    env.bronze(
        "ev",
        "SELECT * FROM (VALUES (1, 10), (2, 20)) AS t(id, amount)",
        WriteMode::Append,
    )
    .await;
    env
}

async fn more_rows(env: &mut Env) {
    env.bronze(
        "ev",
        "SELECT * FROM (VALUES (3, 30)) AS t(id, amount)",
        WriteMode::Append,
    )
    .await;
}

#[tokio::test]
async fn a_changed_sql_fails_by_default_naming_what_changed() {
    let mut env = env_with_rows().await;
    env.file("models/silver/ev.sql", &model("", "amount"));
    env.run("silver.ev").await.unwrap();
    more_rows(&mut env).await;
    // Re-indenting is not a change of logic.
    env.file(
        "models/silver/ev.sql",
        &model("", "amount").replace("SELECT id,", "SELECT\n    id,\n   "),
    );
    env.run("silver.ev").await.unwrap();
    more_rows(&mut env).await;
    env.file("models/silver/ev.sql", &model("", "amount * 100"));
    let e = env.run("silver.ev").await.unwrap_err();
    assert!(matches!(e, TransformError::LogicChanged { .. }), "{e}");
    assert_eq!(e.class(), ErrorClass::Config);
    let text = e.to_string();
    assert!(
        text.contains("its SQL")
            && text.contains("--full-refresh")
            && text.contains("on_logic_change"),
        "{text}"
    );
    // Nothing was written.
    assert_eq!(
        env.rows("SELECT id, v FROM silver.ev").await,
        vec!["1|10", "2|20", "3|30"]
    );
}

#[tokio::test]
async fn rebuild_rebuilds_and_continue_keeps_the_old_rows() {
    let mut env = env_with_rows().await;
    env.file("models/silver/ev.sql", &model("", "amount"));
    env.run("silver.ev").await.unwrap();
    more_rows(&mut env).await;
    env.file(
        "models/silver/ev.sql",
        &model("on_logic_change: rebuild\n", "amount * 100"),
    );
    // `on_logic_change` itself is not logic: only the SQL changed, and the table is rebuilt.
    env.run("silver.ev").await.unwrap();
    assert_eq!(
        env.rows("SELECT id, v FROM silver.ev").await,
        vec!["1|1000", "2|2000", "3|3000"]
    );

    env.file(
        "models/silver/ev.sql",
        &model("on_logic_change: continue\n", "amount * 2"),
    );
    env.bronze(
        "ev",
        "SELECT * FROM (VALUES (4, 40)) AS t(id, amount)",
        WriteMode::Append,
    )
    .await;
    let o = env.run("silver.ev").await.unwrap();
    assert_eq!(o.rows_in, 1);
    assert_eq!(
        env.rows("SELECT id, v FROM silver.ev").await,
        vec!["1|1000", "2|2000", "3|3000", "4|80"]
    );
}

#[tokio::test]
async fn macros_count_when_the_model_calls_them() {
    let mut env = env_with_rows().await;
    env.file(
        "macros/money.sql",
        "{% macro cents(c) %}{{ c }} * 100{% endmacro %}\n{% macro unused(c) %}{{ c }}{% endmacro %}\n",
    );
    env.file("models/silver/ev.sql", &model("", "{{ cents('amount') }}"));
    env.run("silver.ev").await.unwrap();
    more_rows(&mut env).await;
    env.file(
        "macros/money.sql",
        "{% macro cents(c) %}{{ c }} * 100{% endmacro %}\n{% macro unused(c) %}{{ c }} + 1{% endmacro %}\n",
    );
    env.run("silver.ev").await.unwrap();
    more_rows(&mut env).await;
    env.file(
        "macros/money.sql",
        "{% macro cents(c) %}{{ c }} * 1000{% endmacro %}\n{% macro unused(c) %}{{ c }} + 1{% endmacro %}\n",
    );
    let text = env.run("silver.ev").await.unwrap_err().to_string();
    assert!(text.contains("macro `cents`"), "{text}");
    assert!(!text.contains("unused"), "{text}");
}

#[tokio::test]
async fn a_table_built_before_fingerprints_is_not_failed() {
    let mut env = env_with_rows().await;
    // The model's table as an older Tributary wrote it: no fingerprint in its commits.
    let ctx = deltalake::datafusion::prelude::SessionContext::new();
    let df = ctx
        .sql("SELECT * FROM (VALUES (1, 10), (2, 20)) AS t(id, v)")
        .await
        .unwrap();
    let schema = std::sync::Arc::new(df.schema().as_arrow().clone());
    let mut w = TableWriter::new(&env.lake, "silver", "ev", schema, WriteMode::Append)
        .await
        .unwrap();
    for b in df.collect().await.unwrap() {
        w.write(b).await.unwrap();
    }
    w.commit(None, Default::default()).await.unwrap();
    env.file("models/silver/ev.sql", &model("", "amount * 100"));
    more_rows(&mut env).await;
    env.run("silver.ev").await.unwrap();
    // From now on the fingerprint is recorded, and a change is seen.
    env.file("models/silver/ev.sql", &model("", "amount * 7"));
    more_rows(&mut env).await;
    assert!(matches!(
        env.run("silver.ev").await.unwrap_err(),
        TransformError::LogicChanged { .. }
    ));
}
