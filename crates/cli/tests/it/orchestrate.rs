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

#[test]
fn model_backfill_reprocesses_a_range_without_moving_what_it_consumed() {
    let p = project();
    p.write(
        "models/silver/orders_inc.sql",
        "SELECT id, CAST(day AS DATE) AS day, amount FROM {{ ref('bronze.erp_orders') }}",
    );
    p.write(
        "models/silver/orders_inc.yaml",
        "materialized: incremental\nunique_key: id\norder_by: day\n",
    );
    p.ok(&["run", "--select", "+silver.orders_inc"]);
    assert_eq!(p.query_i64("SELECT sum(amount) FROM silver.orders_inc"), 60);

    // The model's logic changes; only 2024-01-02 is reprocessed.
    p.write(
        "models/silver/orders_inc.sql",
        "SELECT id, CAST(day AS DATE) AS day, amount * 2 AS amount FROM {{ ref('bronze.erp_orders') }}",
    );
    let out = p.run(&[
        "run",
        "--select",
        "silver.orders_inc",
        "--from",
        "2024-01-02",
        "--to",
        "2024-01-03",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = p.query("SELECT id, amount FROM silver.orders_inc ORDER BY id");
    let amounts: Vec<i64> = rows.iter().map(|r| r["amount"].as_i64().unwrap()).collect();
    assert_eq!(amounts, vec![10, 40, 30], "{rows:?}");
    // Twice changes nothing.
    p.ok(&[
        "run",
        "--select",
        "silver.orders_inc",
        "--from",
        "2024-01-02",
        "--to",
        "2024-01-03",
    ]);
    assert_eq!(p.query_i64("SELECT count(*) FROM silver.orders_inc"), 3);
    assert_eq!(p.query_i64("SELECT sum(amount) FROM silver.orders_inc"), 80);

    // What the model consumed did not move: a normal run finds nothing new; after a new
    // bronze row, it processes only that row.
    let out = p.ok(&["run", "--select", "silver.orders_inc"]);
    assert!(
        out.contains("up to date") || out.contains("up_to_date"),
        "{out}"
    );
    let conn = rusqlite::Connection::open(p.path().join("erp.db")).unwrap();
    conn.execute_batch("INSERT INTO orders VALUES (4, '2024-01-04', 5);")
        .unwrap();
    p.ok(&["run", "--select", "+silver.orders_inc"]);
    let rows = p.query("SELECT id, amount FROM silver.orders_inc ORDER BY id");
    let amounts: Vec<i64> = rows.iter().map(|r| r["amount"].as_i64().unwrap()).collect();
    assert_eq!(amounts, vec![10, 40, 30, 10], "{rows:?}");

    // A bound that is not a date names the model and its cursor; an scd2 model is refused.
    let out = p.run(&[
        "run",
        "--select",
        "silver.orders_inc",
        "--from",
        "yesterday",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("--from for silver.orders_inc (cursor `day`"),
        "{err}"
    );
    p.write(
        "models/silver/orders_hist.sql",
        "SELECT id, amount FROM {{ ref('bronze.erp_orders') }}",
    );
    p.write(
        "models/silver/orders_hist.yaml",
        "materialized: scd2\nunique_key: id\n",
    );
    p.ok(&["run", "--select", "silver.orders_hist"]);
    let out = p.run(&["run", "--select", "silver.orders_hist", "--from", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot be backfilled by range"),
        "{}",
        stderr(&out)
    );
}

/// The most tasks whose recorded [start, end) intervals overlap at one instant.
fn max_overlap(p: &TestProject, filter: &str) -> usize {
    let conn = rusqlite::Connection::open(p.path().join(".tributary/state.db")).unwrap();
    let mut stmt = conn
        .prepare(&format!(
            "SELECT started_at, finished_at FROM tasks WHERE {filter} AND started_at IS NOT NULL"
        ))
        .unwrap();
    let spans: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(!spans.is_empty(), "no tasks match {filter}");
    spans
        .iter()
        .map(|(start, _)| {
            spans
                .iter()
                .filter(|(s, e)| s <= start && start < e)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn parallelism_limits_hold_in_the_recorded_task_times() {
    let p = TestProject::new(
        "name: t\nlake: ./lake\nconnections:\n  erp: { type: sqlite, path: erp.db }\norchestration:\n  max_parallel: 3\n  connection_limits: { erp: 1 }\n",
    );
    let conn = rusqlite::Connection::open(p.path().join("erp.db")).unwrap();
    let mut tables = String::new();
    for t in ["a", "b", "c", "d"] {
        conn.execute_batch(&format!(
            "CREATE TABLE {t} (id INTEGER); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) INSERT INTO {t} SELECT i FROM n;"
        ))
        .unwrap();
        tables.push_str(&format!("  - name: {t}\n"));
    }
    p.write(
        "ingest/erp.yaml",
        &format!("connection: erp\ntables:\n{tables}"),
    );
    let mut tasks = String::from("tasks:\n");
    for i in 0..6 {
        tasks.push_str(&format!(
            "  - name: wait_{i}\n    type: command\n    command: \"sleep 0.5\"\n"
        ));
    }
    p.write("pipelines/waits.yaml", &tasks);
    p.write(
        "models/silver/ab.sql",
        "SELECT id FROM {{ ref('bronze.erp_a') }} UNION ALL SELECT id FROM {{ ref('bronze.erp_b') }}",
    );
    let out = p.run(&["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // One load on the `erp` connection at a time; at most 3 tasks of any kind at once, and
    // the limit was reached (6 half-second commands cannot run one by one in a 3-wide pool
    // without overlapping).
    assert_eq!(max_overlap(&p, "kind = 'load'"), 1);
    let all = max_overlap(&p, "1 = 1");
    assert!(all <= 3, "{all} tasks overlapped");
    assert!(all >= 2, "tasks never ran in parallel");
    // No task started before its inputs finished.
    let conn = rusqlite::Connection::open(p.path().join(".tributary/state.db")).unwrap();
    let time = |task: &str, col: &str| -> String {
        conn.query_row(
            &format!("SELECT {col} FROM tasks WHERE task_id = ?1"),
            [task],
            |r| r.get(0),
        )
        .unwrap()
    };
    let model_start = time("silver.ab", "started_at");
    for input in ["bronze.erp_a", "bronze.erp_b"] {
        let done = time(input, "finished_at");
        assert!(
            done <= model_start,
            "{input} ended {done}, silver.ab started {model_start}"
        );
    }
    assert_eq!(p.query_i64("SELECT count(*) FROM silver.ab"), 40000);
    drop(conn);

    // --parallel 1 overrides max_parallel.
    let out = p.run(&["run", "--parallel", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let last: String = rusqlite::Connection::open(p.path().join(".tributary/state.db"))
        .unwrap()
        .query_row(
            "SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(max_overlap(&p, &format!("run_id = '{last}'")), 1);
}
