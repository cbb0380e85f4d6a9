//! `on_schema_change`: a SQLite source whose schema changes between runs, loaded incrementally
//! (append) and in full (overwrite). Refused changes exit 1 with the diff and leave the table's
//! Delta version as it was.

use crate::support::*;

const PROJECT: &str =
    "name: t\nlake: ./lake\nconnections:\n  erp: { type: sqlite, path: erp.db }\n";

const COLUMNS: &str = "id INTEGER PRIMARY KEY, name TEXT, price REAL, legacy_code TEXT, amount DECIMAL(10,2), updated_at DATETIME";

#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Incremental,
    Full,
}

fn ingest(mode: Mode, extra: &str) -> String {
    let mode = match mode {
        Mode::Incremental => "    mode: incremental\n    cursor: updated_at\n",
        Mode::Full => "",
    };
    format!("connection: erp\ntables:\n  - name: items\n    primary_key: [id]\n{mode}{extra}")
}

/// Set `on_schema_change: allow` on the table.
fn allow(p: &TestProject, mode: Mode) {
    p.write(
        "ingest/erp.yaml",
        &ingest(mode, "    on_schema_change: allow\n"),
    );
}

/// `items` with three rows, loaded once.
fn loaded(mode: Mode, extra: &str) -> (TestProject, rusqlite::Connection) {
    let p = TestProject::new(PROJECT);
    let conn = rusqlite::Connection::open(p.path().join("erp.db")).unwrap();
    conn.execute_batch(&format!(
        "CREATE TABLE items ({COLUMNS});
         INSERT INTO items VALUES (1, 'a', 1.25, 'L1', '10.50', '2026-01-01 00:00:00'),
            (2, 'b', 2.5, 'L2', '20.00', '2026-01-01 00:00:01'),
            (3, 'c', NULL, NULL, NULL, '2026-01-01 00:00:02');"
    ))
    .unwrap();
    p.write("ingest/erp.yaml", &ingest(mode, extra));
    p.ok(&["run"]);
    assert_eq!(version(&p), 0);
    (p, conn)
}

/// Recreate `items` with new column definitions, copying the rows (`select` lists the values).
fn recreate(conn: &rusqlite::Connection, columns: &str, select: &str) {
    conn.execute_batch(&format!(
        "CREATE TABLE items_new ({columns});
         INSERT INTO items_new SELECT {select} FROM items;
         DROP TABLE items; ALTER TABLE items_new RENAME TO items;"
    ))
    .unwrap();
}

/// The table's Delta version: the highest commit in its log.
fn version(p: &TestProject) -> u64 {
    std::fs::read_dir(p.path().join("lake/bronze/erp_items/_delta_log"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".json")?.parse::<u64>().ok()
        })
        .max()
        .unwrap()
}

/// Run, expect exit code 1 and an unchanged table; return stderr.
fn refused(p: &TestProject, args: &[&str]) -> String {
    let (v, logs) = (version(p), delta_logs(&p.lake_listing()));
    let out = p.run(args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{}\n{err}", stdout(&out));
    assert!(err.contains("bronze.erp_items"), "{err}");
    assert_eq!(version(p), v, "a refused load must not commit");
    assert_eq!(delta_logs(&p.lake_listing()), logs);
    err
}

/// Whether the table has `column` (query output leaves NULL values out, so ask for it by name).
fn has_column(p: &TestProject, column: &str) -> bool {
    let out = p.run(&[
        "query",
        &format!("SELECT count({column}) AS n FROM bronze.erp_items"),
    ]);
    if !out.status.success() {
        let err = stderr(&out);
        assert!(err.contains(column), "{err}");
    }
    out.status.success()
}

fn is_null(v: &serde_json::Value, key: &str) -> bool {
    v.get(key).is_none_or(|x| x.is_null())
}

/// The Arrow type and the text of `column` in row `id`.
fn typed(p: &TestProject, column: &str, id: i64) -> (String, String) {
    let rows = p.query(&format!(
        "SELECT arrow_typeof({column}) AS t, CAST({column} AS VARCHAR) AS v FROM bronze.erp_items WHERE id = {id}"
    ));
    assert_eq!(rows.len(), 1, "{rows:?}");
    let text = |k: &str| rows[0][k].as_str().unwrap().to_string();
    (text("t"), text("v"))
}

#[test]
fn added_column_is_added_with_old_rows_null() {
    for mode in [Mode::Incremental, Mode::Full] {
        let (p, conn) = loaded(mode, "");
        conn.execute_batch(
            "ALTER TABLE items ADD COLUMN discount DECIMAL(10,2);
             INSERT INTO items VALUES (4, 'd', 4.0, 'L4', '4.00', '2026-01-02 00:00:00', '0.40');",
        )
        .unwrap();
        p.ok(&["run"]);
        assert_eq!(version(&p), 1, "{mode:?}");
        assert!(has_column(&p, "discount"), "{mode:?}");
        let rows = p.query(
            "SELECT id, CAST(discount AS VARCHAR) AS discount FROM bronze.erp_items ORDER BY id",
        );
        assert_eq!(rows.len(), 4, "{mode:?}: {rows:?}");
        for r in &rows[..3] {
            assert!(is_null(r, "discount"), "{mode:?}: {rows:?}");
        }
        assert_eq!(rows[3]["discount"], "0.40", "{mode:?}");
        // An independent reader sees the evolved schema and the rows.
        let path = p.path().join("lake/bronze/erp_items");
        let script = format!(
            r#"
import json
from deltalake import DeltaTable
import polars as pl
dt = DeltaTable({path:?})
fields = {{f.name: str(f.type) for f in dt.schema().fields}}
df = pl.read_delta({path:?}).sort("id")
print(json.dumps({{"version": dt.version(), "discount": fields.get("discount"),
  "values": [None if d is None else str(d) for d in df["discount"].to_list()]}}))
"#,
            path = path.to_string_lossy()
        );
        let Some(out) = python(&script) else { return };
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v["version"], 1, "{mode:?}: {v}");
        assert!(
            v["discount"].as_str().unwrap().contains("decimal(10,2)")
                || v["discount"].as_str().unwrap().contains("10, 2"),
            "{mode:?}: {v}"
        );
        assert_eq!(
            v["values"],
            serde_json::json!([null, null, null, "0.40"]),
            "{mode:?}: {v}"
        );
    }
}

#[test]
fn removed_column_is_refused_with_the_diff_then_allowed() {
    for mode in [Mode::Incremental, Mode::Full] {
        let (p, conn) = loaded(mode, "");
        conn.execute_batch(
            "ALTER TABLE items DROP COLUMN legacy_code;
             INSERT INTO items VALUES (4, 'd', 4.0, '4.00', '2026-01-02 00:00:00');",
        )
        .unwrap();
        let err = refused(&p, &["run"]);
        assert!(err.contains("- legacy_code  text"), "{mode:?}: {err}");
        assert!(err.contains("(removed)"), "{mode:?}: {err}");
        assert!(
            err.contains("set `on_schema_change: allow` in ingest/erp.yaml (table `items`)"),
            "{mode:?}: {err}"
        );
        assert!(
            err.contains("`tributary run --full-refresh --select bronze.erp_items`"),
            "{mode:?}: {err}"
        );

        allow(&p, mode);
        p.ok(&["run"]);
        assert_eq!(version(&p), 1, "{mode:?}");
        assert_eq!(p.query_i64("SELECT count(*) FROM bronze.erp_items"), 4);
        match mode {
            // An append keeps the column: old rows keep their values, new rows get NULL.
            Mode::Incremental => {
                let rows = p.query("SELECT id, legacy_code FROM bronze.erp_items ORDER BY id");
                assert_eq!(rows[0]["legacy_code"], "L1", "{rows:?}");
                assert!(is_null(&rows[3], "legacy_code"), "{rows:?}");
            }
            // A full load rebuilds the table: the column is gone.
            Mode::Full => {
                assert!(!has_column(&p, "legacy_code"));
                assert!(has_column(&p, "price"));
            }
        }
    }
}

#[test]
fn full_refresh_bypasses_the_policy() {
    let (p, conn) = loaded(Mode::Incremental, "    on_schema_change: fail\n");
    conn.execute_batch("ALTER TABLE items DROP COLUMN legacy_code;")
        .unwrap();
    refused(&p, &["run"]);
    p.ok(&["run", "--full-refresh", "--select", "bronze.erp_items"]);
    assert_eq!(version(&p), 1);
    assert!(!has_column(&p, "legacy_code"));
    // The next incremental load compares with the rebuilt table: nothing to refuse.
    conn.execute_batch("INSERT INTO items VALUES (4, 'd', 4.0, '4.00', '2026-01-02 00:00:00');")
        .unwrap();
    p.ok(&["run"]);
    assert_eq!(p.query_i64("SELECT count(*) FROM bronze.erp_items"), 4);
}

#[test]
fn narrowed_type_is_refused_naming_old_and_new_type() {
    for mode in [Mode::Incremental, Mode::Full] {
        let (p, conn) = loaded(mode, "");
        // price: REAL (double) becomes INTEGER (bigint).
        recreate(
            &conn,
            "id INTEGER PRIMARY KEY, name TEXT, price INTEGER, legacy_code TEXT, amount DECIMAL(10,2), updated_at DATETIME",
            "id, name, CAST(price AS INTEGER), legacy_code, amount, updated_at",
        );
        conn.execute_batch(
            "INSERT INTO items VALUES (4, 'd', 7, 'L4', '4.00', '2026-01-02 00:00:00');",
        )
        .unwrap();
        let err = refused(&p, &["run"]);
        assert!(
            err.contains("~ price  double -> bigint  (narrowing)"),
            "{mode:?}: {err}"
        );
        assert!(err.contains("on_schema_change: evolve"), "{mode:?}: {err}");

        allow(&p, mode);
        p.ok(&["run"]);
        let expected = match mode {
            // An append keeps the table's type; 7 fits a double exactly.
            Mode::Incremental => ("Float64", "7.0"),
            // A full load rebuilds the table with the new type.
            Mode::Full => ("Int64", "7"),
        };
        let (t, v) = typed(&p, "price", 4);
        assert_eq!((t.as_str(), v.as_str()), expected, "{mode:?}");
    }
}

#[test]
fn incompatible_type_is_refused_and_allow_casts_value_by_value() {
    let (p, conn) = loaded(Mode::Incremental, "");
    // amount: DECIMAL(10,2) becomes TEXT.
    recreate(
        &conn,
        "id INTEGER PRIMARY KEY, name TEXT, price REAL, legacy_code TEXT, amount TEXT, updated_at DATETIME",
        "*",
    );
    conn.execute_batch(
        "INSERT INTO items VALUES (4, 'd', 4.0, 'L4', '12.34', '2026-01-02 00:00:00');",
    )
    .unwrap();
    let err = refused(&p, &["run"]);
    assert!(
        err.contains("~ amount  decimal(10,2) -> text  (incompatible)"),
        "{err}"
    );
    // Allowed, the text is stored in the table's decimal column as long as every value fits.
    allow(&p, Mode::Incremental);
    p.ok(&["run"]);
    assert_eq!(
        typed(&p, "amount", 4),
        ("Decimal128(10, 2)".into(), "12.34".into())
    );
    conn.execute_batch(
        "INSERT INTO items VALUES (5, 'e', 5.0, 'L5', 'n/a', '2026-01-03 00:00:00');",
    )
    .unwrap();
    let err = refused(&p, &["run"]);
    assert!(err.contains("column amount"), "{err}");
    assert!(err.contains("n/a"), "{err}");
}

#[test]
fn widened_type_appends_in_the_table_type_with_overflow_checks() {
    let (p, conn) = loaded(Mode::Incremental, "");
    // amount: DECIMAL(10,2) becomes DECIMAL(14,2): a widening, accepted by default.
    recreate(
        &conn,
        "id INTEGER PRIMARY KEY, name TEXT, price REAL, legacy_code TEXT, amount DECIMAL(14,2), updated_at DATETIME",
        "*",
    );
    conn.execute_batch(
        "INSERT INTO items VALUES (4, 'd', 4.0, 'L4', '99999999.99', '2026-01-02 00:00:00');",
    )
    .unwrap();
    p.ok(&["run"]);
    assert_eq!(version(&p), 1);
    assert_eq!(
        typed(&p, "amount", 4),
        ("Decimal128(10, 2)".into(), "99999999.99".into())
    );
    // A value that fits decimal(14,2) but not the table's decimal(10,2): nothing is committed.
    conn.execute_batch(
        "INSERT INTO items VALUES (5, 'e', 5.0, 'L5', '123456789012.34', '2026-01-03 00:00:00');",
    )
    .unwrap();
    let err = refused(&p, &["run"]);
    assert!(err.contains("column amount"), "{err}");
    assert!(
        err.contains("the table stores decimal(10,2) and the new rows bring decimal(14,2)"),
        "{err}"
    );
    assert!(
        err.contains("--full-refresh --select bronze.erp_items"),
        "{err}"
    );
    // Rebuilt, the table takes the source's type and the value.
    p.ok(&["run", "--full-refresh", "--select", "bronze.erp_items"]);
    assert_eq!(
        typed(&p, "amount", 5),
        ("Decimal128(14, 2)".into(), "123456789012.34".into())
    );
}

#[test]
fn fail_policy_refuses_an_added_column() {
    for mode in [Mode::Incremental, Mode::Full] {
        let (p, conn) = loaded(mode, "    on_schema_change: fail\n");
        // No change: loads as usual.
        conn.execute_batch(
            "INSERT INTO items VALUES (4, 'd', 4.0, 'L4', '4.00', '2026-01-02 00:00:00');",
        )
        .unwrap();
        p.ok(&["run"]);
        assert_eq!(version(&p), 1, "{mode:?}");
        conn.execute_batch(
            "ALTER TABLE items ADD COLUMN discount DECIMAL(10,2);
             INSERT INTO items VALUES (5, 'e', 5.0, 'L5', '5.00', '2026-01-03 00:00:00', '0.50');",
        )
        .unwrap();
        let err = refused(&p, &["run"]);
        assert!(err.contains("+ discount  (new)"), "{mode:?}: {err}");
        assert!(err.contains("decimal(10,2)"), "{mode:?}: {err}");
        assert!(
            err.contains("on_schema_change: fail refuses any schema change"),
            "{mode:?}: {err}"
        );
        assert!(!has_column(&p, "discount"), "{mode:?}");
    }
}
