//! Incremental loads from PostgreSQL: new and changed rows, rows committed late by a long
//! transaction, and runs killed with SIGKILL at any moment.

use std::time::Duration;

use crate::support::*;

fn pg_project(schema: &str, table: &str, extra: &str) -> TestProject {
    let p = TestProject::new(&format!(
        "name: t\nlake: ./lake\nconnections:\n  erp: {{ type: postgres, url: \"{}\" }}\n",
        pg_url()
    ));
    p.write(
        "ingest/erp.yaml",
        &format!(
            "connection: erp\ntables:\n  - name: {schema}.{table}\n    mode: incremental\n    cursor: updated_at\n    primary_key: [id]\n{extra}"
        ),
    );
    p
}

fn count(p: &TestProject, table: &str) -> i64 {
    p.query_i64(&format!("SELECT count(*) AS n FROM bronze.erp_{table}"))
}

fn duplicates(p: &TestProject, table: &str) -> i64 {
    p.query_i64(&format!(
        "SELECT count(*) AS n FROM (SELECT id, updated_at FROM bronze.erp_{table} GROUP BY id, updated_at HAVING count(*) > 1)"
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn new_and_changed_rows_are_appended_exactly_once() {
    let Some(db) = PgSchema::new().await else {
        return;
    };
    let s = &db.schema;
    db.client
        .batch_execute(&format!(
            "CREATE TABLE {s}.orders (id int PRIMARY KEY, status text, total numeric(12,2), updated_at timestamptz NOT NULL);
             INSERT INTO {s}.orders SELECT g, 'new', g * 1.25, timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second' FROM generate_series(1, 5000) g;"
        ))
        .await
        .unwrap();
    let p = pg_project(s, "orders", "");
    tokio::task::block_in_place(|| p.ok(&["run"]));
    assert_eq!(tokio::task::block_in_place(|| count(&p, "orders")), 5000);
    db.client
        .batch_execute(&format!(
            "INSERT INTO {s}.orders SELECT g, 'new', 1, timestamptz '2026-01-02 00:00:00+00' + g * interval '1 second' FROM generate_series(5001, 5100) g;
             UPDATE {s}.orders SET status = 'shipped', updated_at = timestamptz '2026-01-03 00:00:00+00' + id * interval '1 microsecond' WHERE id <= 50;"
        ))
        .await
        .unwrap();
    tokio::task::block_in_place(|| {
        p.ok(&["run"]);
        assert_eq!(count(&p, "orders"), 5150);
        assert_eq!(duplicates(&p, "orders"), 0);
        assert_eq!(
            p.query_i64("SELECT count(*) AS n FROM bronze.erp_orders WHERE status = 'shipped'"),
            50
        );
        // Unchanged source: nothing appended.
        p.ok(&["run"]);
        assert_eq!(count(&p, "orders"), 5150);
    });
    db.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_row_committed_late_below_the_watermark_is_not_lost() {
    let Some(db) = PgSchema::new().await else {
        return;
    };
    let s = &db.schema;
    db.client
        .batch_execute(&format!(
            "CREATE TABLE {s}.events (id int PRIMARY KEY, v text, updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
             INSERT INTO {s}.events (id, v) SELECT g, 'x' FROM generate_series(1, 100) g;"
        ))
        .await
        .unwrap();
    // A second session opens a transaction and writes a row whose cursor is "now" ...
    let Some(late) = PgSchema::new().await else {
        return;
    };
    late.client
        .batch_execute(&format!(
            "BEGIN; INSERT INTO {s}.events (id, v) VALUES (1000, 'late');"
        ))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // ... while other rows with later cursors commit.
    db.client
        .batch_execute(&format!(
            "INSERT INTO {s}.events (id, v) VALUES (1001, 'after');"
        ))
        .await
        .unwrap();
    let p = pg_project(s, "events", "");
    tokio::task::block_in_place(|| {
        p.ok(&["run"]);
        assert_eq!(count(&p, "events"), 101);
    });
    // The long transaction commits: its row's cursor is below the watermark.
    late.client.batch_execute("COMMIT").await.unwrap();
    tokio::task::block_in_place(|| {
        p.ok(&["run"]);
        assert_eq!(
            p.query_i64("SELECT count(*) AS n FROM bronze.erp_events WHERE id = 1000"),
            1
        );
        assert_eq!(count(&p, "events"), 102);
        assert_eq!(duplicates(&p, "events"), 0);
    });
    late.drop_schema().await;
    db.drop_schema().await;
}

/// Run `tributary run`, SIGKILL it after `delay`, and wait for it to die.
fn run_and_kill(p: &TestProject, delay: Duration) -> bool {
    let mut child = p
        .command(&["run"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    let finished = matches!(child.try_wait(), Ok(Some(_)));
    let _ = child.kill(); // SIGKILL on Unix
    let _ = child.wait();
    !finished
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_killed_at_any_moment_neither_lose_nor_double_rows() {
    let Some(db) = PgSchema::new().await else {
        return;
    };
    let s = &db.schema;
    db.client
        .batch_execute(&format!(
            "CREATE TABLE {s}.big (id bigint PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
             INSERT INTO {s}.big SELECT g, repeat('x', 50) || g, timestamptz '2026-01-01 00:00:00+00' + g * interval '1 millisecond' FROM generate_series(1, 300000) g;"
        ))
        .await
        .unwrap();
    let p = pg_project(s, "big", "    batch_size: 5000\n");
    let mut killed = 0;
    tokio::task::block_in_place(|| {
        for ms in [150u64, 400, 700, 1100, 1600] {
            if run_and_kill(&p, Duration::from_millis(ms)) {
                killed += 1;
            }
        }
        p.ok(&["run"]);
        assert_eq!(count(&p, "big"), 300_000);
        assert_eq!(duplicates(&p, "big"), 0);
    });
    db.client
        .batch_execute(&format!(
            "INSERT INTO {s}.big SELECT g, 'new', timestamptz '2026-02-01 00:00:00+00' + g * interval '1 millisecond' FROM generate_series(300001, 400000) g;
             UPDATE {s}.big SET payload = 'changed', updated_at = timestamptz '2026-03-01 00:00:00+00' + id * interval '1 microsecond' WHERE id % 100 = 0;"
        ))
        .await
        .unwrap();
    tokio::task::block_in_place(|| {
        for ms in [100u64, 300, 600, 900] {
            if run_and_kill(&p, Duration::from_millis(ms)) {
                killed += 1;
            }
        }
        p.ok(&["run"]);
        // 400k distinct rows, plus a second version of the 3000 updated rows that had been
        // loaded before (the 1000 updated new rows were only ever seen updated), each once.
        assert_eq!(count(&p, "big"), 403_000);
        assert_eq!(duplicates(&p, "big"), 0);
        assert_eq!(
            p.query_i64("SELECT count(*) AS n FROM bronze.erp_big WHERE payload = 'changed'"),
            4000
        );
    });
    assert!(killed > 0, "no run was killed while still running");
    db.drop_schema().await;
}
