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
