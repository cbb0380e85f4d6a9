//! Loads from the machine's PostgreSQL, each test in its own schema.

use tokio_postgres::{Client, NoTls};
use tributary_ingest::{IngestError, load_table};

use crate::support;

async fn connect() -> Option<Client> {
    match tokio_postgres::connect(&support::pg_url(), NoTls).await {
        Ok((client, connection)) => {
            tokio::spawn(connection);
            Some(client)
        }
        Err(e) => support::unavailable("PostgreSQL", e),
    }
}

fn ingest(schema: &str, cursor: &str) -> String {
    format!(
        "connection: erp\ntables:\n  - name: {schema}.orders\n    mode: incremental\n    cursor: {cursor}\n    primary_key: [id]\n"
    )
}

fn erp(url: &str) -> String {
    format!("  erp: {{ type: postgres, url: \"{url}\" }}\n")
}

#[tokio::test]
async fn incremental_loads_commit_rows_and_watermark_together_and_never_double_the_lookback() {
    let Some(pg) = connect().await else { return };
    let schema = support::unique_name("ingest_inc");
    pg.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.orders (id int PRIMARY KEY, amount numeric(10,2) NOT NULL, updated_at timestamptz NOT NULL);
         INSERT INTO {schema}.orders SELECT i, i * 1.25, timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute' FROM generate_series(1, 100) i;"
    ))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let project = support::project(
        dir.path(),
        &erp(&support::pg_url()),
        &ingest(&schema, "updated_at"),
    );
    let spec = support::spec(&project);

    let first = load_table(&support::context(&project, "run-1"), &spec).await;
    assert!(first.error.is_none(), "{:?}", first.error);
    assert_eq!(
        (first.rows, first.version, first.mode),
        (100, Some(0), "incremental")
    );

    // Five rows change (inside the one-hour default lookback) and ten arrive: the second load
    // re-reads the lookback window but appends only what is new.
    pg.batch_execute(&format!(
        "UPDATE {schema}.orders SET amount = amount + 1, updated_at = updated_at + interval '1 second' WHERE id > 95;
         INSERT INTO {schema}.orders SELECT i, i, timestamptz '2024-01-01 03:00:00+00' + i * interval '1 second' FROM generate_series(101, 110) i;"
    ))
    .await
    .unwrap();
    let second = load_table(&support::context(&project, "run-2"), &spec).await;
    assert!(second.error.is_none(), "{:?}", second.error);
    assert_eq!((second.rows, second.version), (15, Some(1)));

    // Nothing new: nothing committed, the version stays.
    let third = load_table(&support::context(&project, "run-3"), &spec).await;
    assert!(third.error.is_none(), "{:?}", third.error);
    assert_eq!((third.rows, third.version), (0, Some(1)));

    let lake = support::context(&project, "check").lake;
    let table = lake.open("bronze", "erp_orders").await.unwrap().unwrap();
    let watermark = tributary_lake::watermark_of("bronze.erp_orders", &table)
        .unwrap()
        .unwrap();
    assert_eq!(watermark.column, "updated_at");
    assert_eq!(
        watermark.value.to_string(),
        "2024-01-01 03:01:50.000000+00:00"
    );

    // The independent reader sees 115 rows, each (id, updated_at) once, the watermark in the
    // table's properties, and the run ids of the commits that wrote them.
    let path = dir.path().join("lake/bronze/erp_orders");
    let Some(out) = support::python(&format!(
        r#"
from deltalake import DeltaTable
t = DeltaTable("{}")
a = t.to_pyarrow_table()
keys = set(zip(a.column("id").to_pylist(), a.column("updated_at").to_pylist()))
print(a.num_rows, len(keys), t.version(), sorted(set(a.column("_tributary_run_id").to_pylist())))
print("tributary.watermark" in t.metadata().configuration)
"#,
        path.display()
    )) else {
        return;
    };
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "115 115 1 ['run-1', 'run-2']", "{out}");
    assert_eq!(lines[1], "True", "{out}");
    pg.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_failed_load_leaves_table_and_watermark_as_they_were_and_says_why() {
    let Some(pg) = connect().await else { return };
    let schema = support::unique_name("ingest_fail");
    pg.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.orders (id int PRIMARY KEY, seq bigint NOT NULL, updated_at timestamptz NOT NULL);
         INSERT INTO {schema}.orders SELECT i, i, now() FROM generate_series(1, 10) i;"
    ))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let project = support::project(
        dir.path(),
        &erp(&support::pg_url()),
        &ingest(&schema, "updated_at"),
    );
    let spec = support::spec(&project);
    let first = load_table(&support::context(&project, "run-1"), &spec).await;
    assert_eq!(
        (first.rows, first.version),
        (10, Some(0)),
        "{:?}",
        first.error
    );

    // The cursor column changed in the configuration: refused before anything is read.
    let changed = support::project(
        dir.path(),
        &erp(&support::pg_url()),
        &ingest(&schema, "seq"),
    );
    let r = load_table(
        &support::context(&changed, "run-2"),
        &support::spec(&changed),
    )
    .await;
    match &r.error {
        Some(IngestError::Config { table, message }) => {
            assert_eq!(table, "bronze.erp_orders");
            assert!(
                message.contains("the cursor changed from `updated_at` to `seq`"),
                "{message}"
            );
            assert!(message.contains("--full-refresh"), "{message}");
        }
        other => panic!("expected a configuration error, got {other:?}"),
    }
    assert_eq!(r.version, None);

    // The source is unreachable: a read error naming the connection, without the password.
    let down = support::project(
        dir.path(),
        &erp("postgres://postgres:s3cret-pw@127.0.0.1:1/test"),
        &ingest(&schema, "updated_at"),
    );
    let r = load_table(&support::context(&down, "run-3"), &support::spec(&down)).await;
    let error = r.error.expect("the load must fail");
    let text = tributary_ingest::error_chain(&error);
    assert!(
        matches!(&error, IngestError::Read { source_label, .. } if source_label.starts_with("erp:")),
        "{text}"
    );
    assert!(!text.contains("s3cret-pw"), "{text}");

    // Neither failure touched the table: still version 0, same watermark, 10 rows.
    let lake = support::context(&project, "check").lake;
    let table = lake.open("bronze", "erp_orders").await.unwrap().unwrap();
    assert_eq!(table.version(), Some(0));
    let w = tributary_lake::watermark_of("bronze.erp_orders", &table)
        .unwrap()
        .unwrap();
    assert_eq!(w.column, "updated_at");
    pg.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

/// An incremental table without `primary_key` whose source gains a column: the next load adds
/// the column (`on_schema_change: evolve`, the default) and loads the new rows once, rather than
/// failing until `--full-refresh` because the rows already in the lookback window lack it.
#[tokio::test]
async fn a_table_without_a_key_takes_a_new_source_column_and_loads() {
    let Some(pg) = connect().await else { return };
    let schema = support::unique_name("ingest_nokey");
    pg.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.events (kind text NOT NULL, at timestamptz NOT NULL);
         INSERT INTO {schema}.events SELECT 'k' || i, timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute' FROM generate_series(1, 50) i;"
    ))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let project = support::project(
        dir.path(),
        &erp(&support::pg_url()),
        &format!(
            "connection: erp\ntables:\n  - name: {schema}.events\n    mode: incremental\n    cursor: at\n"
        ),
    );
    let spec = support::spec(&project);
    let first = load_table(&support::context(&project, "run-1"), &spec).await;
    assert!(first.error.is_none(), "{:?}", first.error);
    assert_eq!(first.rows, 50);

    // A column arrives, and ten rows inside the lookback window of the last one.
    pg.batch_execute(&format!(
        "ALTER TABLE {schema}.events ADD COLUMN source text;
         INSERT INTO {schema}.events SELECT 'n' || i, timestamptz '2024-01-01 00:50:00+00' + i * interval '1 second', 'web' FROM generate_series(1, 10) i;"
    ))
    .await
    .unwrap();
    let second = load_table(&support::context(&project, "run-2"), &spec).await;
    assert!(second.error.is_none(), "{:?}", second.error);
    assert_eq!(
        second.rows, 10,
        "only the new rows; the 50 re-read are skipped"
    );
    let third = load_table(&support::context(&project, "run-3"), &spec).await;
    assert!(third.error.is_none(), "{:?}", third.error);
    assert_eq!(third.rows, 0);

    let path = dir.path().join("lake/bronze/erp_events");
    let Some(out) = support::python(&format!(
        r#"
from deltalake import DeltaTable
a = DeltaTable("{}").to_pyarrow_table()
print(a.num_rows, a.column("source").null_count)
"#,
        path.display()
    )) else {
        return;
    };
    assert_eq!(out.trim(), "60 50", "{out}");
    pg.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

/// A `primary_key` narrower than the table's own is refused before anything is read, naming
/// both keys; `allow_narrower_key: true` accepts it.
#[tokio::test]
async fn a_key_narrower_than_the_sources_is_refused_unless_allowed() {
    let Some(pg) = connect().await else { return };
    let schema = support::unique_name("ingest_key");
    pg.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.lines (order_id int, line_no int, qty int, at timestamptz NOT NULL, PRIMARY KEY (order_id, line_no));
         INSERT INTO {schema}.lines SELECT i / 3, i % 3, i, timestamptz '2024-01-01 00:00:00+00' FROM generate_series(1, 30) i;"
    ))
    .await
    .unwrap();
    let table = |extra: &str| {
        format!(
            "connection: erp\ntables:\n  - name: {schema}.lines\n    mode: incremental\n    cursor: at\n    primary_key: [order_id]\n{extra}"
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let project = support::project(dir.path(), &erp(&support::pg_url()), &table(""));
    let spec = support::spec(&project);
    let refused = load_table(&support::context(&project, "run-1"), &spec).await;
    let e = refused.error.expect("a narrower key must be refused");
    let text = e.to_string();
    assert!(
        text.contains("primary_key [order_id] leaves out line_no")
            && text.contains("[order_id, line_no]")
            && text.contains("allow_narrower_key"),
        "{text}"
    );
    assert_eq!(e.class(), tributary_core::ErrorClass::Config);
    assert!(
        support::context(&project, "check")
            .lake
            .open("bronze", "erp_lines")
            .await
            .unwrap()
            .is_none(),
        "nothing was written"
    );

    let project = support::project(
        dir.path(),
        &erp(&support::pg_url()),
        &table("    allow_narrower_key: true\n"),
    );
    let allowed = load_table(
        &support::context(&project, "run-2"),
        &support::spec(&project),
    )
    .await;
    assert!(allowed.error.is_none(), "{:?}", allowed.error);
    assert_eq!(allowed.rows, 30);
    pg.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}
