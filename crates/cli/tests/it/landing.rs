//! Landing folders (`mode: new_files`): only files not loaded yet are read, each file's rows
//! once even when a run is killed, changed files load again, and --full-refresh starts over.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{TestProject, stderr, stdout};

fn project() -> TestProject {
    let p = TestProject::new(
        "name: t\nlake: ./lake\nconnections:\n  landing: { type: files, url: ./landing }\n",
    );
    p.write(
        "ingest/landing.yaml",
        "connection: landing\ntables:\n  - name: orders\n    glob: \"orders/*.csv\"\n    mode: new_files\n",
    );
    p
}

fn csv(first_id: u64, rows: u64) -> String {
    let mut s = String::from("id,amount\n");
    for i in first_id..first_id + rows {
        s.push_str(&format!("{i},{}\n", i % 97));
    }
    s
}

fn count(p: &TestProject) -> i64 {
    p.query_i64("SELECT count(*) FROM bronze.landing_orders")
}

#[test]
fn only_new_files_are_loaded() {
    let p = project();
    p.write("landing/orders/2026-01-01.csv", &csv(1, 3));
    p.write("landing/orders/2026-01-02.csv", &csv(4, 2));
    let out = p.ok(&["run"]);
    assert!(out.contains("new_files"), "{out}");
    assert_eq!(count(&p), 5);

    // A new file: only its rows are appended.
    p.write("landing/orders/2026-01-03.csv", &csv(6, 4));
    p.ok(&["run"]);
    assert_eq!(count(&p), 9);
    let per_file = p.query(
        "SELECT _tributary_source AS f, count(*) AS n, min(_tributary_file_size) AS size FROM bronze.landing_orders GROUP BY 1 ORDER BY 1",
    );
    let files: Vec<(&str, i64)> = per_file
        .iter()
        .map(|r| (r["f"].as_str().unwrap(), r["n"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        files,
        vec![
            ("landing:orders/2026-01-01.csv", 3),
            ("landing:orders/2026-01-02.csv", 2),
            ("landing:orders/2026-01-03.csv", 4),
        ]
    );
    let size = std::fs::metadata(p.path().join("landing/orders/2026-01-03.csv"))
        .unwrap()
        .len() as i64;
    assert_eq!(per_file[2]["size"].as_i64().unwrap(), size);

    // Nothing new: nothing committed, the version stays.
    let before = p.ok(&["tables"]);
    let out = p.run(&["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(count(&p), 9);
    assert_eq!(p.ok(&["tables"]), before);

    // A file rewritten in place (other size): loaded again, whole.
    p.write("landing/orders/2026-01-02.csv", &csv(4, 3));
    p.ok(&["run"]);
    assert_eq!(count(&p), 12);
    assert_eq!(
        p.query_i64(
            "SELECT count(*) FROM bronze.landing_orders WHERE _tributary_source = 'landing:orders/2026-01-02.csv'"
        ),
        5
    );

    // --full-refresh: every file once, replacing the table.
    let out = p.ok(&["run", "--full-refresh"]);
    assert!(out.contains("full"), "{out}");
    assert_eq!(count(&p), 10);
    p.write("landing/orders/2026-01-04.csv", &csv(100, 1));
    p.ok(&["run"]);
    assert_eq!(count(&p), 11);

    // The table is valid Delta for an independent reader.
    if let Some(n) = crate::support::python(&format!(
        "import deltalake\nprint(deltalake.DeltaTable('{}').to_pyarrow_table().num_rows)",
        p.path().join("lake/bronze/landing_orders").display()
    )) {
        assert_eq!(n.trim(), "11");
    }
}

#[test]
fn new_files_only_for_files_connections() {
    let p = TestProject::new(
        "name: t\nlake: ./lake\nconnections:\n  erp: { type: sqlite, path: erp.db }\n",
    );
    p.write(
        "ingest/erp.yaml",
        "connection: erp\ntables:\n  - name: orders\n    mode: new_files\n",
    );
    let out = p.run(&["validate"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("ingest/erp.yaml")
            && err.contains("mode `new_files` is for files connections"),
        "{err}"
    );
}

#[test]
fn sigkill_mid_run_then_rerun_loads_each_file_once() {
    let p = project();
    let files = 120u64;
    let rows = 5_000u64;
    for f in 0..files {
        p.write(
            &format!("landing/orders/part-{f:04}.csv"),
            &csv(f * rows, rows),
        );
    }
    // Kill the load at several moments, each followed by more files; then a clean run.
    let mut total = files * rows;
    for (round, delay_ms) in [50u64, 150, 400].into_iter().enumerate() {
        let mut child = p
            .command(&["run"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_millis(delay_ms);
        while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = child.kill();
        let _ = child.wait();
        let extra = 1_000_000 + round as u64 * rows;
        p.write(
            &format!("landing/orders/late-{round}.csv"),
            &csv(extra, rows),
        );
        total += rows;
    }
    let out = p.run(&["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("bronze.landing_orders"));
    assert_eq!(count(&p) as u64, total);
    // Every id once: no file loaded twice, none skipped.
    assert_eq!(
        p.query_i64("SELECT count(DISTINCT id) FROM bronze.landing_orders") as u64,
        total
    );
    assert_eq!(
        p.query_i64("SELECT count(DISTINCT _tributary_source) FROM bronze.landing_orders") as u64,
        files + 3
    );
}

#[test]
fn quarantine_keeps_malformed_records_with_file_line_and_text() {
    let p = TestProject::new(
        "name: t\nlake: ./lake\nconnections:\n  landing: { type: files, url: ./landing }\n",
    );
    p.write(
        "ingest/landing.yaml",
        "connection: landing\ntables:\n  - name: orders\n    glob: \"orders/*.csv\"\n    mode: new_files\n    on_error: quarantine\n  - name: events\n    glob: \"events/*.json\"\n    on_error: quarantine\n",
    );
    p.write(
        "landing/orders/a.csv",
        "id,amount\n1,10\n2,20,extra\n3\n4,40\n",
    );
    // A JSON array (not NDJSON): elements are the records, numbered by position.
    p.write(
        "landing/events/e.json",
        "[\n  {\"id\": 1, \"kind\": \"a\"},\n  {\"id\": 2, \"kind\": \"b\"},\n  42,\n  {\"id\": 4, \"kind\": \"d\"}\n]\n",
    );
    let out = p.run(&["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(p.query_i64("SELECT count(*) FROM bronze.landing_orders"), 2);
    assert_eq!(p.query_i64("SELECT count(*) FROM bronze.landing_events"), 3);
    let q = p.query(
        "SELECT _tributary_file AS f, _tributary_line AS line, _tributary_raw AS raw, _tributary_error AS err FROM bronze._quarantine_landing_orders ORDER BY line",
    );
    assert_eq!(q.len(), 2, "{q:?}");
    assert!(
        q[0]["f"].as_str().unwrap().ends_with("orders/a.csv"),
        "{q:?}"
    );
    assert_eq!(q[0]["line"].as_i64(), Some(3));
    assert_eq!(q[0]["raw"], "2,20,extra");
    assert!(
        q[0]["err"].as_str().unwrap().contains("expected 2 fields"),
        "{q:?}"
    );
    assert_eq!(q[1]["line"].as_i64(), Some(4));
    assert_eq!(q[1]["raw"], "3");
    let e = p.query(
        "SELECT _tributary_line AS line, _tributary_raw AS raw FROM bronze._quarantine_landing_events",
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0]["line"].as_i64(), Some(3));
    assert_eq!(e[0]["raw"], "42");
    // The quarantine grows with new files only.
    p.write("landing/orders/b.csv", "id,amount\n5,50,extra\n6,60\n");
    p.ok(&["run"]);
    assert_eq!(
        p.query_i64("SELECT count(*) FROM bronze._quarantine_landing_orders"),
        3
    );
    assert_eq!(p.query_i64("SELECT count(*) FROM bronze.landing_orders"), 3);
}

#[test]
fn new_files_are_parsed_with_the_table_types() {
    let p = TestProject::new(
        "name: t\nlake: ./lake\nconnections:\n  landing: { type: files, url: ./landing }\n",
    );
    p.write(
        "ingest/landing.yaml",
        "connection: landing\ntables:\n  - name: items\n    glob: \"items/*.csv\"\n    mode: new_files\n    on_error: quarantine\n",
    );
    // The first file makes `code` text and `price` a double.
    p.write(
        "landing/items/1.csv",
        "id,code,price\n1,A7,1.5\n2,B8,2.25\n",
    );
    p.ok(&["run"]);
    // Alone, this file would infer `code` as an integer and `price` as an integer, and its
    // last row's price as text: with the table's types, codes stay text (leading zero kept),
    // prices are doubles, and the row whose price is not a number goes to quarantine.
    p.write(
        "landing/items/2.csv",
        "id,code,price\n3,007,3\n4,123,4\n5,124,n/a\n",
    );
    let out = p.run(&["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = p.query("SELECT id, code, price FROM bronze.landing_items ORDER BY id");
    let got: Vec<(i64, String, f64)> = rows
        .iter()
        .map(|r| {
            (
                r["id"].as_i64().unwrap(),
                r["code"].as_str().unwrap().to_string(),
                r["price"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (1, "A7".into(), 1.5),
            (2, "B8".into(), 2.25),
            (3, "007".into(), 3.0),
            (4, "123".into(), 4.0),
        ]
    );
    let q = p.query(
        "SELECT _tributary_line AS line, _tributary_raw AS raw, _tributary_error AS err FROM bronze._quarantine_landing_items",
    );
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(q[0]["line"].as_i64(), Some(4));
    assert_eq!(q[0]["raw"], "5,124,n/a");
    assert!(q[0]["err"].as_str().unwrap().contains("price"), "{q:?}");
}

#[test]
fn excel_landing_files_load_once_each() {
    let p = TestProject::new(
        "name: t\nlake: ./lake\nconnections:\n  landing: { type: files, url: ./landing }\n",
    );
    p.write(
        "ingest/landing.yaml",
        "connection: landing\ntables:\n  - name: budget\n    glob: \"*.xlsx\"\n    mode: new_files\n    excel: { sheet: Budget, skip_rows: 1 }\n",
    );
    let write = |name: &str, first: i64| {
        let script = format!(
            "import datetime, openpyxl\nwb = openpyxl.Workbook()\nws = wb.active\nws.title = 'Budget'\nws.append(['Budget export'])\nws.append(['id', 'month', 'amount'])\nfor i in range({first}, {first} + 3):\n    ws.append([i, datetime.date(2026, 1 + i % 12, 1), i * 1.5])\nwb.save({:?})\n",
            p.path().join("landing").join(name).display().to_string()
        );
        std::fs::create_dir_all(p.path().join("landing")).unwrap();
        tributary_testkit::python::run("openpyxl", &script).is_some()
    };
    if !write("a.xlsx", 1) {
        return;
    }
    p.ok(&["run"]);
    assert!(write("b.xlsx", 10));
    p.ok(&["run"]);
    p.ok(&["run"]);
    assert_eq!(p.query_i64("SELECT count(*) FROM bronze.landing_budget"), 6);
    assert_eq!(
        p.query_i64("SELECT sum(id) FROM bronze.landing_budget WHERE month = DATE '2026-02-01'"),
        1
    );
    assert_eq!(
        p.query_i64("SELECT count(DISTINCT _tributary_source) FROM bronze.landing_budget"),
        2
    );
}
