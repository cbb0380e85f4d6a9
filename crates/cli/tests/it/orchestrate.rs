//! The orchestrated run: the DAG, the run history (`runs`, `runs show`), `--resume` after a
//! failure, and a backfill that leaves the watermark alone.

use crate::support::{TestProject, stderr, stdout};

fn project() -> TestProject {
    let p = TestProject::new(
        "name: t\nlake: ./lake\nconnections:\n  erp: { type: sqlite, path: erp.db }\norchestration:\n  max_parallel: 2\n",
    );
    let conn = rusqlite::Connection::open(p.path().join("erp.db")).unwrap();
    conn.execute_batch(
        "CREATE TABLE orders (id INTEGER, day TEXT, amount INTEGER);
         INSERT INTO orders VALUES (1, '2024-01-01', 10), (2, '2024-01-02', 20), (3, '2024-01-03', 30);
         CREATE TABLE customers (id INTEGER, name TEXT);
         INSERT INTO customers VALUES (1, 'a');",
    )
    .unwrap();
    p.write(
        "ingest/erp.yaml",
        "connection: erp\ntables:\n  - name: orders\n    mode: incremental\n    cursor: id\n    primary_key: [id]\n  - name: customers\n",
    );
    p.write(
        "models/silver/orders.sql",
        "SELECT id, amount FROM {{ ref('bronze.erp_orders') }}",
    );
    p.write(
        "models/gold/total.sql",
        "SELECT sum(amount) AS total, count(*) AS n FROM {{ ref('silver.orders') }}",
    );
    p
}

#[test]
fn dag_runs_history_and_resume() {
    let p = project();
    // The DAG in text and Mermaid.
    let text = p.ok(&["dag"]);
    assert!(text.contains("gold.total"), "{text}");
    assert!(text.contains("← silver.orders"), "{text}");
    let mermaid = p.ok(&["dag", "--format", "mermaid", "--select", "+gold.total"]);
    assert!(
        mermaid.contains("bronze_erp_orders --> silver_orders"),
        "{mermaid}"
    );
    assert!(!mermaid.contains("customers"), "{mermaid}");

    // A broken gold model: the run fails, the rest succeeds.
    p.write(
        "models/gold/total.sql",
        "SELECT sum(amount) AS total, count(*) AS n, no_such_column FROM {{ ref('silver.orders') }}",
    );
    let out = p.run(&["run"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("gold.total failed [config]"), "{err}");
    let run_id = err
        .split("tributary run --resume ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .trim_matches('`')
        .to_string();

    let list = p.ok(&["runs"]);
    assert!(list.contains(&run_id) && list.contains("failed"), "{list}");
    let show = p.ok(&["runs", "show", &run_id[..12]]);
    for want in [
        "bronze.erp_orders",
        "silver.orders",
        "gold.total",
        "succeeded",
        "failed",
        "config",
    ] {
        assert!(show.contains(want), "{want} missing in\n{show}");
    }

    // Fixed, then resumed: only gold.total runs.
    p.write(
        "models/gold/total.sql",
        "SELECT sum(amount) AS total, count(*) AS n FROM {{ ref('silver.orders') }}",
    );
    let out = p.run(&["run", "--resume", &run_id]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let o = stdout(&out);
    assert!(o.contains("gold.total"), "{o}");
    assert!(
        !o.contains("bronze.erp_orders"),
        "only the failed task reruns: {o}"
    );
    assert_eq!(p.query_i64("SELECT total FROM gold.total"), 60);
    let list = p.ok(&["runs", "--status", "succeeded"]);
    assert!(list.contains("resume"), "{list}");
    // The resumed run has nothing left to resume.
    let resumed_id = list
        .lines()
        .find(|l| l.contains("resume"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();
    let again = p.ok(&["run", "--resume", &resumed_id]);
    assert!(again.contains("nothing to resume"), "{again}");

    // An unknown selector is a usage error naming it.
    let out = p.run(&["run", "--select", "silver.nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("silver.nope"), "{}", stderr(&out));
}

#[test]
fn backfill_appends_a_range_without_moving_the_watermark() {
    let p = project();
    let conn = rusqlite::Connection::open(p.path().join("erp.db")).unwrap();
    conn.execute_batch(
        "UPDATE orders SET id = 5 WHERE id = 3; UPDATE orders SET id = 3 WHERE id = 2;",
    )
    .unwrap();
    // ids 1, 3, 5: the watermark is 5.
    p.ok(&["run", "--select", "bronze.erp_orders"]);
    assert_eq!(p.query_i64("SELECT count(*) FROM bronze.erp_orders"), 3);
    // Rows that arrive late with ids below the watermark are missed by incremental loads; a
    // backfill of [1, 5) picks up 2 and 4 once, not 0 or 6.
    conn.execute_batch(
        "INSERT INTO orders VALUES (2, 'x', 2), (4, 'x', 4), (0, 'x', 100), (6, 'x', 6);",
    )
    .unwrap();
    let out = p.run(&[
        "run",
        "--select",
        "bronze.erp_orders",
        "--from",
        "1",
        "--to",
        "5",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("backfill"), "{}", stdout(&out));
    assert_eq!(p.query_i64("SELECT count(*) FROM bronze.erp_orders"), 5);
    assert_eq!(
        p.query_i64("SELECT count(*) FROM bronze.erp_orders WHERE id IN (2, 4)"),
        2
    );
    // Running it again adds nothing.
    p.ok(&[
        "run",
        "--select",
        "bronze.erp_orders",
        "--from",
        "1",
        "--to",
        "5",
    ]);
    assert_eq!(p.query_i64("SELECT count(*) FROM bronze.erp_orders"), 5);
    // The watermark did not move: the next incremental load reads from 5 and gets 6.
    p.ok(&["run", "--select", "bronze.erp_orders"]);
    assert_eq!(
        p.query_i64("SELECT count(*) FROM bronze.erp_orders WHERE id = 6"),
        1
    );
    assert_eq!(
        p.query_i64("SELECT count(*) FROM bronze.erp_orders WHERE id = 0"),
        0
    );
    assert_eq!(p.query_i64("SELECT count(*) FROM bronze.erp_orders"), 6);
    // A bad bound names the table and the cursor.
    let out = p.run(&[
        "run",
        "--select",
        "bronze.erp_orders",
        "--from",
        "yesterday",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--from for bronze.erp_orders (cursor `id`)"),
        "{}",
        stderr(&out)
    );
}
