//! SQL models end to end: the demo's silver and gold layers (incremental MERGE after a day of
//! changes, quarantine, SCD2), `tributary test`, model errors in `validate`, and the Python
//! `deltalake` reader on merged tables.

use crate::support::*;

fn demo(dir: &std::path::Path, advance: bool) -> String {
    let mut c = std::process::Command::new(bin());
    c.arg("demo").arg(dir);
    if advance {
        c.arg("--advance");
    }
    let out = c.output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    stdout(&out)
}

fn in_project(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(bin())
        .arg("--project")
        .arg(dir)
        .args(args)
        .output()
        .unwrap()
}

fn count(dir: &std::path::Path, sql: &str) -> i64 {
    let out = in_project(dir, &["query", "--format", "json", sql]);
    assert!(out.status.success(), "{sql}: {}", stderr(&out));
    let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let x = v[0].as_object().unwrap().values().next().unwrap().clone();
    x.as_i64()
        .unwrap_or_else(|| x.as_str().unwrap().parse().unwrap())
}

#[test]
fn demo_builds_silver_and_gold_then_merges_a_day_of_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("acme");
    let text = demo(&d, false);
    for t in [
        "silver.customers",
        "silver.orders",
        "silver.customer_history",
        "gold.monthly_revenue",
        "gold.top_products",
    ] {
        assert!(text.contains(t), "{t} missing from the summary:\n{text}");
    }
    assert!(text.contains("Expectations:"), "{text}");
    // The orders without a total are quarantined, every other order is in silver once.
    let null_totals = count(
        &d,
        "SELECT count(*) FROM bronze.erp_orders WHERE total IS NULL",
    );
    assert!(null_totals > 0, "the demo has orders without a total");
    assert_eq!(
        count(
            &d,
            "SELECT count(*) FROM silver._quarantine_orders WHERE _tributary_expectation = 'not_null(total)'"
        ),
        null_totals
    );
    assert_eq!(
        count(&d, "SELECT count(*) FROM silver.orders"),
        count(
            &d,
            "SELECT count(DISTINCT id) FROM bronze.erp_orders WHERE total IS NOT NULL"
        )
    );
    assert_eq!(
        count(&d, "SELECT count(*) FROM silver.customer_history"),
        5000
    );
    let revenue_gold = count(
        &d,
        "SELECT CAST(sum(revenue) AS BIGINT) FROM gold.monthly_revenue",
    );
    let revenue_silver = count(
        &d,
        "SELECT CAST(sum(total) AS BIGINT) FROM silver.orders WHERE status <> 'returned'",
    );
    assert_eq!(revenue_gold, revenue_silver);
    assert_eq!(count(&d, "SELECT count(*) FROM gold.top_products"), 20);

    // A day of changes: 1,000 new and 250 updated orders are merged, nothing else rewritten.
    let v_before = count(&d, "SELECT count(*) FROM silver.orders");
    let text = demo(&d, true);
    assert!(text.contains("silver.orders"), "{text}");
    assert_eq!(
        count(&d, "SELECT count(*) FROM silver.orders"),
        v_before + 1000
    );
    assert_eq!(
        count(
            &d,
            "SELECT count(*) FROM silver.orders s JOIN (SELECT id, max(updated_at) AS u FROM bronze.erp_orders GROUP BY id) b ON b.id = s.id AND b.u = s.updated_at"
        ),
        v_before + 1000,
        "every silver order is the latest bronze version"
    );
    // A rerun with nothing new: silver.orders is up to date (no new version).
    let out = in_project(&d, &["run", "--select", "silver.orders"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("up to date"), "{}", stdout(&out));

    // The demo's model unit tests pass.
    let out = in_project(&d, &["test"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("2 passed, 0 failed"),
        "{}",
        stdout(&out)
    );

    // `tables` lists silver and gold with their upstream tables.
    let out = in_project(&d, &["tables"]);
    let t = stdout(&out);
    assert!(t.contains("gold") && t.contains("monthly_revenue"), "{t}");
    assert!(t.contains("silver.customers, silver.orders"), "{t}");

    // The Python deltalake reader opens the merged silver table and the gold tables.
    let script = format!(
        r#"
import json
from deltalake import DeltaTable
import polars as pl
out = {{}}
for t in ["silver/orders", "silver/customer_history", "gold/monthly_revenue"]:
    path = {lake:?} + "/" + t
    out[t] = {{"version": DeltaTable(path).version(), "rows": pl.read_delta(path).height}}
print(json.dumps(out))
"#,
        lake = d.join("lake").to_string_lossy()
    );
    let Some(out) = python(&script) else { return };
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        v["silver/orders"]["rows"].as_i64().unwrap(),
        v_before + 1000
    );
    assert!(
        v["silver/orders"]["version"].as_i64().unwrap() >= 1,
        "merged: {v}"
    );
    assert_eq!(v["silver/customer_history"]["rows"], 5000);
    assert!(v["gold/monthly_revenue"]["rows"].as_i64().unwrap() > 0);
}

fn model_project() -> TestProject {
    let p = TestProject::new(
        "name: t\nlake: ./lake\nconnections:\n  erp: { type: sqlite, path: erp.db }\n",
    );
    p.write(
        "ingest/erp.yaml",
        "connection: erp\ntables:\n  - name: orders\n",
    );
    p.write(
        "models/silver/orders.sql",
        "/*---\nunique_key: id\norder_by: v\n---*/\nSELECT id, v, upper(s) AS s FROM {{ ref('bronze.erp_orders') }}\n",
    );
    p
}

#[test]
fn model_tests_pass_and_fail_with_a_row_diff() {
    let p = model_project();
    p.write(
        "tests/orders.yaml",
        "tests:
  - name: latest version wins
    model: silver.orders
    given:
      bronze.erp_orders:
        rows: [{id: 1, v: 1, s: a}, {id: 1, v: 2, s: b}, {id: 2, v: 1, s: c}]
    expect:
      rows: [{id: 1, s: B}, {id: 2, s: C}]
  - name: a wrong expectation
    model: silver.orders
    given:
      bronze.erp_orders:
        csv: fixtures/orders.csv
    expect:
      rows: [{id: 1, s: A}]
",
    );
    p.write("tests/fixtures/orders.csv", "id,v,s\n1,1,a\n1,5,z\n");
    let out = p.run(&["test"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("PASS  silver.orders — latest version wins"),
        "{text}"
    );
    assert!(
        text.contains("FAIL  silver.orders — a wrong expectation (tests/orders.yaml:9)"),
        "{text}"
    );
    assert!(text.contains("- id=1 | s=A"), "{text}");
    assert!(text.contains("+ id=1 | s=Z"), "{text}");
    assert!(text.contains("1 passed, 1 failed"), "{text}");
    // The lake was never touched.
    assert!(!p.path().join("lake/silver").exists());
    // A filter runs only matching tests.
    let text = p.ok(&["test", "latest"]);
    assert!(text.contains("1 passed, 0 failed"), "{text}");
}

#[test]
fn validate_reports_model_errors_with_file_and_line() {
    let p = model_project();
    p.write(
        "models/gold/bad.sql",
        "SELECT id,\n  count(*) FROMM {{ ref('silver.orders') }}\nGROUP BY id",
    );
    p.write(
        "models/gold/lost.sql",
        "SELECT * FROM {{ ref('silver.nothing') }}",
    );
    let out = p.run(&["validate"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("models/gold/bad.sql:2"), "{err}");
    assert!(err.contains("models/gold/lost.sql:1"), "{err}");
    assert!(err.contains("silver.nothing"), "{err}");
    // `run` refuses the same way before touching anything.
    let out = p.run(&["run"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!p.path().join("lake/bronze").exists());
}

#[test]
fn a_failing_expectation_fails_the_run_and_skips_downstream_models() {
    let p = model_project();
    let conn = rusqlite::Connection::open(p.path().join("erp.db")).unwrap();
    conn.execute_batch("CREATE TABLE orders (id INTEGER, v INTEGER, s TEXT); INSERT INTO orders VALUES (1, 1, 'a'), (2, 1, NULL);")
        .unwrap();
    p.write(
        "models/silver/orders.yaml",
        "unique_key: id\norder_by: v\nexpectations:\n  - not_null: s\n",
    );
    p.write(
        "models/silver/orders.sql",
        "SELECT id, v, upper(s) AS s FROM {{ ref('bronze.erp_orders') }}",
    );
    p.write(
        "models/gold/counts.sql",
        "SELECT count(*) AS n FROM {{ ref('silver.orders') }}",
    );
    let out = p.run(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    let (o, e) = (stdout(&out), stderr(&out));
    assert!(o.contains("FAIL not_null(s)"), "{o}");
    assert!(o.contains("1 of 2 rows failed"), "{o}");
    assert!(
        e.contains("gold.counts skipped: upstream silver.orders failed"),
        "{e}"
    );
    assert!(!p.path().join("lake/silver/orders").exists());
    // The evaluation is in the run history.
    let state = rusqlite::Connection::open(p.path().join(".tributary/state.db")).unwrap();
    let failed: i64 = state
        .query_row(
            "SELECT failed_rows FROM expectations WHERE model = 'silver.orders' AND expectation = 'not_null(s)'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(failed, 1);
}
