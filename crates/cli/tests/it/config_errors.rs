//! Bad input gets a clear error (what and where), exit code 2 for configuration and 1 for a
//! failed task, and the lake is left as it was.

use crate::support::*;

const PROJECT: &str =
    "name: t\nlake: ./lake\nconnections:\n  erp: { type: sqlite, path: erp.db }\n";

fn sqlite_project() -> TestProject {
    let p = TestProject::new(PROJECT);
    let conn = rusqlite::Connection::open(p.path().join("erp.db")).unwrap();
    conn.execute_batch(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, amount DECIMAL(10,2), updated_at DATETIME);
         INSERT INTO orders VALUES (1, '10.50', '2026-01-01 10:00:00'), (2, '3.00', '2026-01-02 11:00:00');",
    )
    .unwrap();
    p.write(
        "ingest/erp.yaml",
        "connection: erp\ntables:\n  - name: orders\n    mode: incremental\n    cursor: updated_at\n    primary_key: [id]\n",
    );
    p
}

#[test]
fn malformed_yaml_exits_2_naming_file_and_line() {
    let p = sqlite_project();
    p.write(
        "ingest/bad.yaml",
        "connection: erp\ntables:\n  - name: x\n   mode: full\n",
    );
    let out = p.run(&["run"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("ingest/bad.yaml:4"), "{err}");
    assert!(
        p.lake_listing().is_empty(),
        "nothing may be written: {:?}",
        p.lake_listing()
    );
}

#[test]
fn unknown_key_exits_2_naming_key_and_line() {
    let p = sqlite_project();
    p.write(
        "ingest/erp.yaml",
        "connection: erp\ntables:\n  - name: orders\n    mode: full\n    primery_key: [id]\n",
    );
    let out = p.run(&["validate"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("ingest/erp.yaml:5: key `tables[0].primery_key`"),
        "{err}"
    );
    assert!(err.contains("unknown field `primery_key`"), "{err}");
}

#[test]
fn missing_env_var_exits_2_and_never_prints_other_values() {
    let p = TestProject::new(
        "name: t\nlake: ./lake\nconnections:\n  erp:\n    type: postgres\n    url: postgres://app:${env:TRIBUTARY_TEST_UNSET_PASSWORD}@127.0.0.1/x\n",
    );
    let out = p.run(&["validate"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("tributary.yaml:6: key `connections.erp.url`"),
        "{err}"
    );
    assert!(
        err.contains("TRIBUTARY_TEST_UNSET_PASSWORD is not set"),
        "{err}"
    );
}

#[test]
fn duplicate_target_and_missing_connection_are_reported_together() {
    let p = sqlite_project();
    p.write(
        "ingest/more.yaml",
        "connection: erp\ntables:\n  - name: main.orders\n",
    );
    p.write(
        "ingest/other.yaml",
        "connection: crm\ntables:\n  - name: accounts\n",
    );
    let out = p.run(&["validate"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("2 problems"), "{err}");
    assert!(
        err.contains("two tables load into `bronze.erp_orders`"),
        "{err}"
    );
    assert!(
        err.contains("ingest/other.yaml:1: key `connection`"),
        "{err}"
    );
}

#[test]
fn unreachable_database_fails_the_task_and_leaves_the_lake_unchanged() {
    let p = sqlite_project();
    p.ok(&["run"]);
    let before = p.lake_listing();
    assert!(!before.is_empty());
    // Point the connection at a PostgreSQL port where nothing listens.
    std::fs::write(
        p.path().join("tributary.yaml"),
        "name: t\nlake: ./lake\nconnections:\n  erp: { type: postgres, url: \"postgres://app:hunter2secret@127.0.0.1:1/erp\" }\n",
    )
    .unwrap();
    let out = p.run(&["run"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("bronze.erp_orders failed"), "{err}");
    assert!(err.contains("cannot connect to erp"), "{err}");
    assert!(!err.contains("hunter2secret"), "the password leaked: {err}");
    assert!(!stdout(&out).contains("hunter2secret"));
    assert_eq!(p.lake_listing(), before);
    let out = p.run(&["validate", "--connections"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("erp") && text.contains("FAILED"), "{text}");
    assert!(!text.contains("hunter2secret"), "{text}");
}

#[test]
fn wrong_password_is_reported_without_the_password() {
    // MariaDB's root has no password on the test machines: a wrong one is refused.
    let p = TestProject::new(
        "name: t\nlake: ./lake\nconnections:\n  shop: { type: mysql, url: \"mysql://root:wrongpass123@127.0.0.1:3306/test\" }\n",
    );
    p.write(
        "ingest/shop.yaml",
        "connection: shop\ntables:\n  - name: t\n",
    );
    let out = p.run(&["validate", "--connections"]);
    let text = stdout(&out);
    if text.contains("shop") && text.contains(" ok") {
        // The server accepted any password (unusual setup): nothing to assert about refusal.
        return;
    }
    if text.contains("Connection refused") || text.contains("connection refused") {
        unavailable::<()>("MariaDB", "connection refused");
        return;
    }
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAILED"), "{text}");
    assert!(text.contains("Access denied"), "{text}");
    assert!(!text.contains("wrongpass123"), "{text}");
}

#[test]
fn malformed_csv_row_fails_naming_file_and_line_and_skip_mode_counts_it() {
    let p = TestProject::new(
        "name: t\nlake: ./lake\nconnections:\n  landing: { type: files, url: ./landing }\n",
    );
    p.write(
        "landing/rates/a.csv",
        "day,rate\n2026-01-01,1.5\n2026-01-02,1.6,oops\n2026-01-03,1.7\n",
    );
    p.write(
        "ingest/landing.yaml",
        "connection: landing\ntables:\n  - name: rates\n    glob: \"rates/*.csv\"\n",
    );
    let out = p.run(&["run"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("a.csv") && err.contains("line 3"), "{err}");
    assert!(
        p.lake_listing()
            .iter()
            .all(|(path, _)| !path.to_string_lossy().contains("_delta_log"))
    );
    p.write(
        "ingest/landing.yaml",
        "connection: landing\ntables:\n  - name: rates\n    glob: \"rates/*.csv\"\n    on_error: skip\n",
    );
    p.ok(&["run"]);
    assert_eq!(
        p.query_i64("SELECT count(*) AS n FROM bronze.landing_rates"),
        2
    );
}

#[test]
fn unknown_select_is_a_usage_error() {
    let p = sqlite_project();
    let out = p.run(&["run", "--select", "bronze.nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--select bronze.nope matches no task"));
}
