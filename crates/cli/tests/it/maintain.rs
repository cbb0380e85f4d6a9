//! `tributary maintain`: compaction, checkpoint, vacuum with a guarded retention.

use crate::support::*;

fn parquet_files(p: &TestProject, table: &str) -> usize {
    std::fs::read_dir(p.path().join("lake/bronze").join(table))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .map(|e| e.path().extension().is_some_and(|x| x == "parquet"))
                .unwrap_or(false)
        })
        .count()
}

#[test]
fn compacts_checkpoints_and_vacuums_without_changing_rows() {
    let p = TestProject::new(
        "name: t\nlake: ./lake\nconnections:\n  erp: { type: sqlite, path: erp.db }\n",
    );
    let conn = rusqlite::Connection::open(p.path().join("erp.db")).unwrap();
    conn.execute_batch("CREATE TABLE ev (id INTEGER PRIMARY KEY, at DATETIME);")
        .unwrap();
    p.write(
        "ingest/erp.yaml",
        "connection: erp\ntables:\n  - name: ev\n    mode: incremental\n    cursor: id\n    primary_key: [id]\n",
    );
    for i in 0..4 {
        conn.execute(
            "INSERT INTO ev VALUES (?1, '2026-01-01 00:00:00')",
            rusqlite::params![i + 1],
        )
        .unwrap();
        p.ok(&["run"]);
    }
    assert_eq!(parquet_files(&p, "erp_ev"), 4);
    // An unsafe retention is refused before anything runs.
    let out = p.run(&["maintain", "--retention-hours", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("below Delta's safety default of 168 hours"),
        "{}",
        stderr(&out)
    );
    // Default retention: compaction rewrites the 4 files into 1; nothing old enough to vacuum.
    let text = p.ok(&["maintain"]);
    assert!(text.contains("bronze.erp_ev"), "{text}");
    let tables = p.ok(&["tables"]);
    let row = tables
        .lines()
        .find(|l| l.starts_with("bronze ") && l.contains(" erp_ev "))
        .unwrap();
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[3], "4", "rows: {row}");
    assert_eq!(cols[4], "1", "files: {row}");
    assert!(
        p.path()
            .join("lake/bronze/erp_ev/_delta_log/_last_checkpoint")
            .exists()
    );
    assert_eq!(parquet_files(&p, "erp_ev"), 5);
    // Forced zero retention removes the 4 replaced files; the data is intact.
    p.ok(&["maintain", "--retention-hours", "0", "--force"]);
    assert_eq!(parquet_files(&p, "erp_ev"), 1);
    assert_eq!(p.query_i64("SELECT count(*) AS n FROM bronze.erp_ev"), 4);
    // The watermark survived: a new row is appended once.
    conn.execute("INSERT INTO ev VALUES (5, '2026-01-02 00:00:00')", [])
        .unwrap();
    p.ok(&["run"]);
    assert_eq!(p.query_i64("SELECT count(*) AS n FROM bronze.erp_ev"), 5);
}

#[test]
fn zorder_clusters_files_keeps_rows_and_names_missing_columns() {
    let p = TestProject::new(
        "name: t\nlake: ./lake\nconnections:\n  erp: { type: sqlite, path: erp.db }\n",
    );
    let conn = rusqlite::Connection::open(p.path().join("erp.db")).unwrap();
    conn.execute_batch("CREATE TABLE ev (id INTEGER PRIMARY KEY, x INTEGER, y TEXT);")
        .unwrap();
    p.write(
        "ingest/erp.yaml",
        "connection: erp\ntables:\n  - name: ev\n    mode: incremental\n    cursor: id\n    primary_key: [id]\n",
    );
    for batch in 0..3 {
        for i in 0..50 {
            let id = batch * 50 + i + 1;
            conn.execute(
                "INSERT INTO ev VALUES (?1, ?2, ?3)",
                rusqlite::params![id, (id * 37) % 101, format!("v{}", id % 7)],
            )
            .unwrap();
        }
        p.ok(&["run"]);
    }
    assert_eq!(parquet_files(&p, "erp_ev"), 3);
    let before = p.query("SELECT id, x, y FROM bronze.erp_ev ORDER BY id");

    // A column the table does not have: a clear error naming it and the table's columns.
    let out = p.run(&[
        "maintain",
        "--select",
        "bronze.erp_ev",
        "--zorder-by",
        "x,nope",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("`nope`") && err.contains("bronze.erp_ev") && err.contains("id, x, y"),
        "{err}"
    );
    assert_eq!(parquet_files(&p, "erp_ev"), 3, "nothing rewritten");

    // Z-order by two columns: the three files are rewritten into one, same rows.
    let counts = |text: &str| -> (String, String) {
        let row = text
            .lines()
            .find(|l| l.starts_with("bronze.erp_ev "))
            .unwrap_or_else(|| panic!("{text}"));
        let cols: Vec<&str> = row.split_whitespace().collect();
        (cols[1].to_string(), cols[2].to_string())
    };
    let text = p.ok(&[
        "maintain",
        "--select",
        "bronze.erp_ev",
        "--zorder-by",
        "x,y",
    ]);
    assert_eq!(counts(&text), ("3".into(), "1".into()), "{text}");
    // Z-order rewrites even a single file (compaction would leave it alone).
    let text = p.ok(&["maintain", "--select", "bronze.erp_ev", "--zorder-by", "Y"]);
    assert_eq!(counts(&text), ("1".into(), "1".into()), "{text}");
    let text = p.ok(&["maintain", "--select", "bronze.erp_ev"]);
    assert_eq!(counts(&text), ("0".into(), "0".into()), "{text}");
    assert_eq!(
        p.query("SELECT id, x, y FROM bronze.erp_ev ORDER BY id"),
        before
    );

    // An independent reader sees the same rows.
    let path = p.path().join("lake/bronze/erp_ev");
    let script = format!(
        r#"
import polars as pl
df = pl.read_delta({path:?}).sort("id")
print(df.height, df["x"].sum(), df["id"].sum(), df["y"].n_unique())
"#,
        path = path.to_string_lossy()
    );
    let Some(out) = python(&script) else { return };
    let sum_x: i64 = (1..=150).map(|id: i64| (id * 37) % 101).sum();
    assert_eq!(out.trim(), format!("150 {sum_x} {} 7", 150 * 151 / 2));
}

/// The reported case: an append-only incremental model over a bronze table, three loads,
/// `maintain --select` of the bronze table, then 100 new rows: the model holds each row once.
#[test]
fn an_append_model_reads_no_row_twice_after_maintain() {
    let p = TestProject::new(
        "name: t\nlake: ./lake\nconnections:\n  erp: { type: sqlite, path: erp.db }\n",
    );
    let conn = rusqlite::Connection::open(p.path().join("erp.db")).unwrap();
    conn.execute_batch("CREATE TABLE ev (id INTEGER PRIMARY KEY, v TEXT);")
        .unwrap();
    p.write(
        "ingest/erp.yaml",
        "connection: erp\ntables:\n  - name: ev\n    mode: incremental\n    cursor: id\n",
    );
    p.write(
        "models/silver/ev.sql",
        "/*---\nmaterialized: incremental\n---*/\nSELECT id, v FROM {{ ref('bronze.erp_ev') }}",
    );
    let insert = |from: i64, to: i64| {
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2) \
             INSERT INTO ev SELECT i, 'v' || i FROM n",
            rusqlite::params![from, to],
        )
        .unwrap();
    };
    for i in 0..3 {
        insert(i * 1000 + 1, (i + 1) * 1000);
        p.ok(&["run"]);
    }
    assert_eq!(p.query_i64("SELECT count(*) AS n FROM silver.ev"), 3000);
    let text = p.ok(&["maintain", "--select", "bronze.erp_ev"]);
    assert!(text.contains("bronze.erp_ev"), "{text}");
    insert(3001, 3100);
    p.ok(&["run"]);
    assert_eq!(p.query_i64("SELECT count(*) AS n FROM silver.ev"), 3100);
    assert_eq!(
        p.query_i64("SELECT count(DISTINCT id) AS n FROM silver.ev"),
        3100
    );
}

#[test]
fn validate_refuses_an_append_model_on_a_full_load() {
    let p = TestProject::new(
        "name: t\nlake: ./lake\nconnections:\n  erp: { type: sqlite, path: erp.db }\n",
    );
    p.write(
        "ingest/erp.yaml",
        "connection: erp\ntables:\n  - name: ev\n    mode: full\n",
    );
    p.write(
        "models/silver/ev.sql",
        "/*---\nmaterialized: incremental\n---*/\nSELECT id FROM {{ ref('bronze.erp_ev') }}",
    );
    let out = p.run(&["validate"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("silver.ev is incremental without `unique_key`")
            && err.contains("`mode: full`"),
        "{err}"
    );
    // With `unique_key` it merges, and is accepted.
    p.write(
        "models/silver/ev.sql",
        "/*---\nmaterialized: incremental\nunique_key: id\n---*/\nSELECT id FROM {{ ref('bronze.erp_ev') }}",
    );
    let out = p.run(&["validate"]);
    assert!(
        !stderr(&out).contains("without `unique_key`"),
        "{}",
        stderr(&out)
    );
}
