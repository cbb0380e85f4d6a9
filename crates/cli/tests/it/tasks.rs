//! Pipeline tasks in a real run: a `command` whose NDJSON output becomes a bronze table that a
//! model reads, an `http` call to a loopback server after the gold model, and a command stopped
//! by its timeout (its process killed, the run failed with the timeout class).

use crate::support::{HookServer, TestProject, stderr, stdout};

fn project(hook: &HookServer) -> TestProject {
    let p = TestProject::new(
        "name: t\nlake: ./lake\nconnections:\n  erp: { type: sqlite, path: erp.db }\n",
    );
    let conn = rusqlite::Connection::open(p.path().join("erp.db")).unwrap();
    conn.execute_batch(
        "CREATE TABLE orders (id INTEGER, amount INTEGER);
         INSERT INTO orders VALUES (1, 10), (2, 20), (3, 30);",
    )
    .unwrap();
    p.write(
        "ingest/erp.yaml",
        "connection: erp\ntables:\n  - name: orders\n",
    );
    // The command writes three NDJSON rows; the third has a field the first two lack.
    p.write(
        "export.sh",
        "#!/bin/sh\nprintf '{\"id\": 1, \"name\": \"a\"}\\n{\"id\": 2, \"name\": \"b\"}\\n{\"id\": 3, \"name\": \"c\", \"vip\": true}\\n'\necho \"exported for $TRIBUTARY_RUN_ID\" >&2\n",
    );
    p.write(
        "pipelines/legacy.yaml",
        &format!(
            r#"tasks:
  - name: export_legacy
    type: command
    command: [sh, export.sh]
    target: bronze.legacy_customers
  - name: notify
    type: http
    method: POST
    url: "http://{addr}/hook/{{{{run_id}}}}"
    headers: {{ X-Api-Key: "${{env:TT_HOOK_KEY:-k-123}}" }}
    body: {{ table: gold.summary }}
    depends_on: [gold.summary]
"#,
            addr = hook.addr
        ),
    );
    p.write(
        "models/silver/orders.sql",
        "SELECT o.id, o.amount, c.name FROM {{ ref('bronze.erp_orders') }} o JOIN {{ ref('bronze.legacy_customers') }} c ON o.id = c.id",
    );
    p.write(
        "models/gold/summary.sql",
        "SELECT count(*) AS n, sum(amount) AS total FROM {{ ref('silver.orders') }}",
    );
    p
}

#[test]
fn command_output_feeds_a_model_and_http_runs_after_gold() {
    let hook = HookServer::start(200, r#"{"ok": true}"#);
    let p = project(&hook);

    // The DAG: the command's table feeds silver; the http task waits for gold.
    let dag = p.ok(&["dag"]);
    assert!(dag.contains("export_legacy"), "{dag}");
    assert!(dag.contains("notify"), "{dag}");
    let mermaid = p.ok(&["dag", "--format", "mermaid"]);
    assert!(mermaid.contains("gold_summary --> notify"), "{mermaid}");

    let out = p.run(&["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        p.query_i64("SELECT count(*) FROM bronze.legacy_customers"),
        3
    );
    // The field that appeared on the third line is a column, NULL before it.
    assert_eq!(
        p.query_i64("SELECT count(*) FROM bronze.legacy_customers WHERE vip IS NULL"),
        2
    );
    assert_eq!(p.query_i64("SELECT total FROM gold.summary"), 60);

    // The hook got one POST with the run id in its path, the header and the JSON body.
    let reqs = hook.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    let run_id = r.target.strip_prefix("/hook/").unwrap().to_string();
    assert!(run_id.len() >= 8, "{r:?}");
    assert!(
        r.headers
            .iter()
            .any(|(k, v)| k == "x-api-key" && v == "k-123")
    );
    let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(body["table"], "gold.summary");

    // The run history has every task, the http one after gold.
    let show = p.ok(&["runs", "show", &run_id]);
    for want in ["export_legacy", "notify", "gold.summary", "succeeded"] {
        assert!(show.contains(want), "{want} missing in\n{show}");
    }
    // Bytes written per task: the size of the files each commit added.
    let conn = rusqlite::Connection::open(p.path().join(".tributary/state.db")).unwrap();
    for (task, table) in [
        ("export_legacy", "bronze.legacy_customers"),
        ("silver.orders", "silver.orders"),
        ("gold.summary", "gold.summary"),
    ] {
        let bytes: i64 = conn
            .query_row(
                "SELECT bytes FROM tasks WHERE run_id = ?1 AND task_id = ?2",
                [run_id.as_str(), task],
                |r| r.get(0),
            )
            .unwrap();
        let on_disk: u64 = p
            .listing(&format!("lake/{}", table.replace('.', "/")))
            .iter()
            .filter(|(f, _)| f.extension().is_some_and(|e| e == "parquet"))
            .map(|(_, n)| n)
            .sum();
        assert_eq!(bytes as u64, on_disk, "{table}");
    }
    // The header's value never reaches the output or the state store.
    let o = stdout(&out) + &stderr(&out) + &show;
    assert!(!o.contains("k-123"), "{o}");
    let db = std::fs::read(p.path().join(".tributary/state.db")).unwrap();
    assert!(!String::from_utf8_lossy(&db).contains("k-123"));

    // A second run replaces the command's table (mode full), it does not append.
    p.ok(&["run", "--select", "export_legacy"]);
    assert_eq!(
        p.query_i64("SELECT count(*) FROM bronze.legacy_customers"),
        3
    );
}

#[test]
fn a_failing_hook_fails_its_task_only() {
    let hook = HookServer::start(500, r#"{"error": "boom"}"#);
    let p = project(&hook);
    let out = p.run(&["run", "--select", "+notify"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("notify failed"), "{err}");
    assert!(err.contains("500"), "{err}");
    // Everything upstream was still built.
    assert_eq!(p.query_i64("SELECT total FROM gold.summary"), 60);
}

#[test]
fn command_timeout_kills_the_process_and_fails_the_task() {
    let hook = HookServer::start(200, "{}");
    let p = project(&hook);
    p.write(
        "pipelines/slow.yaml",
        "tasks:\n  - name: slow\n    type: command\n    command: \"echo $$ > slow.pid; exec sleep 60\"\n    timeout: 1s\n",
    );
    let out = p.run(&["run", "--select", "slow"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("slow failed [timeout]"), "{err}");
    // Killed, not left to run its 60 s.
    let pid: i32 = std::fs::read_to_string(p.path().join("slow.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        tributary_testkit::process_gone(pid),
        "sleep {pid} still runs"
    );
}

#[test]
fn sigterm_cancels_the_run_and_leaves_tables_committed() {
    let hook = HookServer::start(200, "{}");
    let p = project(&hook);
    p.write(
        "pipelines/slow.yaml",
        "tasks:\n  - name: slow\n    type: command\n    command: \"echo $$ > slow.pid; exec sleep 60\"\n    depends_on: [bronze.erp_orders]\n",
    );
    let child = p
        .command(&["run", "--select", "bronze.erp_orders,slow"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the command to be running (its pid file), then SIGTERM the run.
    let pid_file = p.path().join("slow.pid");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !pid_file.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("SIGTERM"), "{err}");
    assert!(tributary_testkit::process_gone(pid), "sleep {pid} survived");
    // The run is recorded as cancelled, the load that finished before is committed and
    // readable.
    let list = p.ok(&["runs", "--status", "cancelled"]);
    assert!(list.contains("cancelled"), "{list}");
    assert_eq!(p.query_i64("SELECT count(*) FROM bronze.erp_orders"), 3);
    let running: i64 = rusqlite::Connection::open(p.path().join(".tributary/state.db"))
        .unwrap()
        .query_row(
            "SELECT count(*) FROM runs WHERE status = 'running'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(running, 0);
}

#[test]
fn two_runs_never_write_one_table_at_once() {
    let hook = HookServer::start(200, "{}");
    let p = project(&hook);
    // A slow writer of bronze.legacy_customers: it holds the table's lease while it runs.
    p.write(
        "pipelines/legacy.yaml",
        "tasks:\n  - name: export_legacy\n    type: command\n    command: \"touch started; echo start >> spans; sleep 3; echo end >> spans; echo '{\\\"id\\\": 1}'\"\n    target: bronze.legacy_customers\n",
    );
    p.write("models/silver/orders.sql", "SELECT 1 AS x");
    p.write("models/gold/summary.sql", "SELECT 1 AS x");
    let first = p
        .command(&["run", "--select", "export_legacy"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = p.path().join("started");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !started.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(started.exists());

    // `fail`: the second run stops at once, naming the holder.
    let yaml = std::fs::read_to_string(p.path().join("tributary.yaml")).unwrap();
    p.write(
        "tributary.yaml",
        &format!("{yaml}orchestration:\n  on_lease_conflict: fail\n"),
    );
    let out = p.run(&["run", "--select", "export_legacy"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("bronze.legacy_customers is being written by run ")
            && err.contains(&format!("(pid {} on ", first.id())),
        "{err}"
    );

    // `wait` (the default): the third run waits for the first, then writes.
    p.write("tributary.yaml", &yaml);
    let out = p.run(&["run", "--select", "export_legacy"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("bronze.legacy_customers: waiting for run "),
        "{}",
        stderr(&out)
    );
    let first_status = first.wait_with_output().unwrap().status;
    assert!(first_status.success());
    // The second program started only after the first had ended.
    let spans = std::fs::read_to_string(p.path().join("spans")).unwrap();
    assert_eq!(spans, "start\nend\nstart\nend\n");
    assert_eq!(
        p.query_i64("SELECT count(*) FROM bronze.legacy_customers"),
        1
    );
}
