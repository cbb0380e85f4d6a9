//! A whole project on SQLite and files: load, query, list, incremental changes, full refresh.

use crate::support::*;

const PROJECT: &str =
    "name: t\nlake: ./lake\nconnections:\n  erp: { type: sqlite, path: erp.db }\n";

fn project() -> (TestProject, rusqlite::Connection) {
    let p = TestProject::new(PROJECT);
    let conn = rusqlite::Connection::open(p.path().join("erp.db")).unwrap();
    conn.execute_batch(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);
         INSERT INTO customers VALUES (1, 'José Müller'), (2, '北京贸易 🚀'), (3, NULL);
         CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, amount DECIMAL(12,2), updated_at DATETIME);",
    )
    .unwrap();
    {
        let mut stmt = conn
            .prepare("INSERT INTO orders VALUES (?1, ?2, ?3, ?4)")
            .unwrap();
        for i in 1..=1000i64 {
            let ts = format!("2026-01-01 00:{:02}:{:02}.{:06}", i / 60 % 60, i % 60, i);
            stmt.execute(rusqlite::params![
                i,
                i % 3 + 1,
                format!("{}.{:02}", i, i % 100),
                ts
            ])
            .unwrap();
        }
    }
    p.write(
        "ingest/erp.yaml",
        "connection: erp\ntables:\n  - name: customers\n    primary_key: [id]\n  - name: orders\n    mode: incremental\n    cursor: updated_at\n    primary_key: [id]\n    lookback: 10m\n",
    );
    (p, conn)
}

#[test]
fn load_query_and_list() {
    let (p, _conn) = project();
    let out = p.ok(&["run"]);
    assert!(
        out.contains("bronze.erp_orders") && out.contains("1,000"),
        "{out}"
    );
    assert_eq!(
        p.query_i64("SELECT count(*) AS n FROM bronze.erp_orders"),
        1000
    );
    // Decimal precision kept: the sum is exact.
    let rows = p.query("SELECT CAST(sum(amount) AS VARCHAR) AS s FROM bronze.erp_orders");
    let expected: i64 = (1..=1000i64).map(|i| i * 100 + i % 100).sum();
    assert_eq!(
        rows[0]["s"].as_str().unwrap(),
        format!("{}.{:02}", expected / 100, expected % 100)
    );
    // Text keeps every character; NULL stays NULL.
    let names = p.query("SELECT name FROM bronze.erp_customers ORDER BY id");
    assert_eq!(names[0]["name"], "José Müller");
    assert_eq!(names[1]["name"], "北京贸易 🚀");
    assert!(names[2].get("name").is_none_or(|v| v.is_null()));
    // Metadata columns.
    let meta = p.query(
        "SELECT count(DISTINCT _tributary_run_id) AS runs, min(_tributary_source) AS src, count(_tributary_loaded_at) AS n FROM bronze.erp_orders",
    );
    assert_eq!(meta[0]["runs"], 1);
    assert_eq!(meta[0]["src"], "erp:orders");
    assert_eq!(meta[0]["n"], 1000);
    let tables = p.ok(&["tables"]);
    assert!(tables.contains("bronze  erp_customers"), "{tables}");
    assert!(tables.contains("erp:customers"), "upstream: {tables}");
    assert!(
        tables.contains("updated_at = 2026-01-01 00:16:40.001000"),
        "{tables}"
    );
    let csv = p.ok(&[
        "query",
        "--format",
        "csv",
        "SELECT id, name FROM bronze.erp_customers ORDER BY id",
    ]);
    assert_eq!(csv.lines().next(), Some("id,name"));
    assert_eq!(csv.lines().nth(1), Some("1,José Müller"));
}

#[test]
fn incremental_appends_exactly_new_and_changed_rows() {
    let (p, conn) = project();
    p.ok(&["run"]);
    // Nothing changed: nothing appended, no new version.
    p.ok(&["run", "--select", "bronze.erp_orders"]);
    assert_eq!(
        p.query_i64("SELECT count(*) AS n FROM bronze.erp_orders"),
        1000
    );
    // 5 inserts and 3 updates; one update keeps an old timestamp inside the lookback window
    // (a late commit) and one row is re-written identically (must not be appended again).
    conn.execute_batch(
        "INSERT INTO orders VALUES (1001, 1, '1.00', '2026-01-02 00:00:00'), (1002, 1, '2.00', '2026-01-02 00:00:01'),
            (1003, 1, '3.00', '2026-01-02 00:00:02'), (1004, 2, '4.00', '2026-01-02 00:00:03'), (1005, 3, '5.00', '2026-01-02 00:00:04');
         UPDATE orders SET amount = '99.99', updated_at = '2026-01-02 00:00:05' WHERE id = 10;
         UPDATE orders SET amount = '88.88', updated_at = '2026-01-02 00:00:06' WHERE id = 20;
         INSERT INTO orders VALUES (1006, 1, '6.00', '2026-01-02 00:00:00.5');",
    )
    .unwrap();
    p.ok(&["run", "--select", "erp"]);
    assert_eq!(
        p.query_i64("SELECT count(*) AS n FROM bronze.erp_orders"),
        1008
    );
    assert_eq!(
        p.query_i64("SELECT count(*) AS n FROM (SELECT id, updated_at FROM bronze.erp_orders GROUP BY id, updated_at HAVING count(*) > 1)"),
        0
    );
    let changed = p.query("SELECT CAST(amount AS VARCHAR) AS a FROM bronze.erp_orders WHERE id = 10 ORDER BY updated_at");
    assert_eq!(changed.len(), 2);
    assert_eq!(changed[1]["a"], "99.99");
    // A row committed late with a cursor below the watermark but inside the lookback window.
    conn.execute_batch("INSERT INTO orders VALUES (1007, 1, '7.00', '2026-01-02 00:00:03.5');")
        .unwrap();
    p.ok(&["run"]);
    assert_eq!(
        p.query_i64("SELECT count(*) AS n FROM bronze.erp_orders WHERE id = 1007"),
        1
    );
    assert_eq!(
        p.query_i64("SELECT count(*) AS n FROM bronze.erp_orders"),
        1009
    );
    // Full refresh: exactly the source's rows again.
    p.ok(&["run", "--full-refresh"]);
    assert_eq!(
        p.query_i64("SELECT count(*) AS n FROM bronze.erp_orders"),
        1007
    );
}

#[test]
fn demo_runs_and_advances() {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("acme");
    let out = std::process::Command::new(bin())
        .arg("demo")
        .arg(&demo)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("bronze.erp_orders"), "{text}");
    let count = |sql: &str| {
        let out = std::process::Command::new(bin())
            .args(["--project"])
            .arg(&demo)
            .args(["query", "--format", "json", sql])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        v[0]["n"].as_i64().unwrap()
    };
    assert_eq!(
        count("SELECT count(*) AS n FROM bronze.erp_orders"),
        100_000
    );
    let out = std::process::Command::new(bin())
        .arg("demo")
        .arg(&demo)
        .arg("--advance")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let orders = count("SELECT count(DISTINCT id) AS n FROM bronze.erp_orders");
    assert!(orders > 100_000, "new orders appended: {orders}");
}

#[test]
fn new_source_columns_are_added_and_type_changes_are_refused() {
    let (p, conn) = project();
    p.ok(&["run"]);
    conn.execute_batch(
        "ALTER TABLE orders ADD COLUMN channel TEXT;
         INSERT INTO orders VALUES (2001, 1, '1.00', '2026-01-05 00:00:00', 'web');",
    )
    .unwrap();
    p.ok(&["run", "--select", "bronze.erp_orders"]);
    let rows =
        p.query("SELECT id, channel FROM bronze.erp_orders WHERE id IN (1, 2001) ORDER BY id");
    assert!(
        rows[0].get("channel").is_none_or(|v| v.is_null()),
        "{rows:?}"
    );
    assert_eq!(rows[1]["channel"], "web");
    let before = delta_logs(&p.lake_listing());
    // The amount column changes type in the source: refused, naming the column and both types.
    conn.execute_batch(
        "CREATE TABLE orders2 (id INTEGER PRIMARY KEY, customer_id INTEGER, amount TEXT, updated_at DATETIME, channel TEXT);
         INSERT INTO orders2 SELECT * FROM orders;
         INSERT INTO orders2 VALUES (2002, 1, 'n/a', '2026-01-06 00:00:00', 'shop');
         DROP TABLE orders; ALTER TABLE orders2 RENAME TO orders;",
    )
    .unwrap();
    let out = p.run(&["run", "--select", "bronze.erp_orders"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("~ amount  decimal(12,2) -> text  (incompatible)"),
        "{err}"
    );
    assert!(err.contains("--full-refresh"), "{err}");
    assert_eq!(delta_logs(&p.lake_listing()), before);
    // A full refresh reloads the table with the new type.
    p.ok(&["run", "--full-refresh", "--select", "bronze.erp_orders"]);
    assert_eq!(
        p.query_i64("SELECT count(*) AS n FROM bronze.erp_orders WHERE amount = 'n/a'"),
        1
    );
}
