//! A Delta commit conflict is class `conflict` and is retried: the race is forced with the
//! lake's test-only pause point (the load is held just before its commit while another writer
//! replaces the table, then released).

use std::time::{Duration, Instant};

use crate::support::*;

fn wait_for(path: &std::path::Path, what: &str) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_commit_conflict_is_class_conflict_and_the_next_attempt_commits() {
    let p = TestProject::new(
        "name: t\nlake: ./lake\nconnections:\n  erp: { type: sqlite, path: erp.db }\norchestration:\n  retries: 2\n  retry_delay: 100ms\n",
    );
    let conn = rusqlite::Connection::open(p.path().join("erp.db")).unwrap();
    conn.execute_batch(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);
         INSERT INTO customers VALUES (1, 'a'), (2, 'b'), (3, 'c');",
    )
    .unwrap();
    p.write(
        "ingest/erp.yaml",
        "connection: erp\ntables:\n  - name: customers\n    primary_key: [id]\n",
    );
    p.ok(&["run"]);
    assert_eq!(p.query_i64("SELECT count(*) FROM bronze.erp_customers"), 3);

    // Hold the next full load just before its commit.
    let pauses = tempfile::tempdir().unwrap();
    let point = "before_commit.bronze.erp_customers";
    std::fs::write(pauses.path().join(format!("{point}.armed")), b"").unwrap();
    conn.execute_batch("INSERT INTO customers VALUES (4, 'd');")
        .unwrap();
    let child = p
        .command(&["run"])
        .env("TRIBUTARY_TEST_PAUSE_DIR", pauses.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(
        &pauses.path().join(format!("{point}.paused")),
        "the load to pause",
    );

    // Another writer replaces the table meanwhile: both commits remove the same files.
    let table = p.path().join("lake/bronze/erp_customers");
    let Some(out) = python(&format!(
        r#"
from deltalake import DeltaTable, write_deltalake
t = DeltaTable("{0}")
write_deltalake("{0}", t.to_pyarrow_table(), mode="overwrite")
print(DeltaTable("{0}").version())
"#,
        table.display()
    )) else {
        std::fs::write(pauses.path().join(format!("{point}.release")), b"").unwrap();
        let _ = child.wait_with_output();
        return;
    };
    assert_eq!(out.trim(), "1", "{out}");
    std::fs::write(pauses.path().join(format!("{point}.release")), b"").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // The first attempt lost the race (class conflict); the second committed on top of the
    // other writer's version.
    let state = rusqlite::Connection::open(p.path().join(".tributary/state.db")).unwrap();
    let mut stmt = state
        .prepare(
            "SELECT a.attempt, a.status, coalesce(a.error_class, ''), coalesce(a.error, '') FROM attempts a
             JOIN runs r ON r.run_id = a.run_id
             WHERE a.task_id = 'bronze.erp_customers' ORDER BY r.started_at DESC, a.attempt LIMIT 2",
        )
        .unwrap();
    let attempts: Vec<(i64, String, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(
        (
            attempts[0].0,
            attempts[0].1.as_str(),
            attempts[0].2.as_str()
        ),
        (1, "failed", "conflict"),
        "{attempts:?}"
    );
    assert!(
        attempts[0].3.contains("bronze.erp_customers"),
        "{attempts:?}"
    );
    assert_eq!(
        (attempts[1].0, attempts[1].1.as_str()),
        (2, "succeeded"),
        "{attempts:?}"
    );
    assert_eq!(p.query_i64("SELECT count(*) FROM bronze.erp_customers"), 4);
    let Some(v) = python(&format!(
        "from deltalake import DeltaTable\nprint(DeltaTable(\"{}\").version())",
        table.display()
    )) else {
        return;
    };
    assert_eq!(
        v.trim(),
        "2",
        "the retry commits on top of the other writer's version"
    );
}
