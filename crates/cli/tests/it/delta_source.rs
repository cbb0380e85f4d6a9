//! `type: delta` connections end to end with the real binary: another project's bronze table and
//! tables the Python `deltalake` package writes (appends, compaction, the change data feed, a
//! delete without it), full and incremental, each run twice.

use std::path::Path;

use crate::support::*;

/// A project reading the Delta tables under `url`.
fn delta_project(url: &Path, tables: &str) -> TestProject {
    let p = TestProject::new(&format!(
        "name: t\nlake: ./lake\nconnections:\n  up: {{ type: delta, url: {:?} }}\n",
        url.to_str().unwrap()
    ));
    p.write(
        "ingest/up.yaml",
        &format!("connection: up\ntables:\n{tables}"),
    );
    p
}

fn count(p: &TestProject, sql_where: &str) -> i64 {
    p.query_i64(&format!(
        "SELECT count(*) AS n FROM bronze.up_t {sql_where}"
    ))
}

/// Run a Python snippet on the Delta table at `path` (bound as `path`).
fn py(path: &Path, script: &str) -> Option<String> {
    python(&format!(
        "import pyarrow as pa\nfrom deltalake import DeltaTable, write_deltalake\npath = {:?}\n{script}",
        path.to_str().unwrap()
    ))
}

#[test]
fn another_projects_bronze_table_loads_whole_and_incrementally() {
    // Project A loads a SQLite table incrementally into its bronze layer.
    let a = TestProject::new(
        "name: a\nlake: ./lake\nconnections:\n  erp: { type: sqlite, path: erp.db }\n",
    );
    let db = rusqlite::Connection::open(a.path().join("erp.db")).unwrap();
    db.execute_batch(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price DECIMAL(10,2));
         INSERT INTO items VALUES (1, 'a', '1.10'), (2, 'b', '2.20'), (3, 'c', NULL);",
    )
    .unwrap();
    a.write(
        "ingest/erp.yaml",
        "connection: erp\ntables:\n  - name: items\n    mode: incremental\n    cursor: id\n    primary_key: [id]\n",
    );
    a.ok(&["run"]);

    // Project B reads A's bronze tables as a Delta source.
    let b = delta_project(
        &a.path().join("lake/bronze"),
        "  - name: erp_items\n    mode: incremental\n    target: bronze.up_t\n  - name: erp_items\n    target: bronze.items_full\n",
    );
    b.ok(&["run"]);
    assert_eq!(count(&b, ""), 3);
    let cols = b.query(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'bronze' AND table_name = 'up_t' ORDER BY ordinal_position",
    );
    let cols: Vec<&str> = cols
        .iter()
        .map(|r| r["column_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        cols,
        [
            "id",
            "name",
            "price",
            "_upstream_tributary_loaded_at",
            "_upstream_tributary_run_id",
            "_upstream_tributary_source",
            "_change_type",
            "_commit_version",
            "_commit_timestamp",
            "_tributary_loaded_at",
            "_tributary_run_id",
            "_tributary_source"
        ]
    );
    let rows = b.query(
        "SELECT CAST(price AS VARCHAR) AS price, _change_type, _commit_version, _upstream_tributary_source, _tributary_source FROM bronze.up_t WHERE id = 1",
    );
    assert_eq!(rows[0]["price"], "1.10");
    assert_eq!(rows[0]["_change_type"], "insert");
    assert_eq!(rows[0]["_commit_version"], 0);
    assert_eq!(rows[0]["_upstream_tributary_source"], "erp:items");
    assert_eq!(rows[0]["_tributary_source"], "up:erp_items");
    assert_eq!(
        b.query_i64("SELECT count(*) AS n FROM bronze.items_full"),
        3
    );

    // Rerun with nothing new: no duplicates.
    b.ok(&["run"]);
    assert_eq!(count(&b, ""), 3);

    // A appends two rows (version 1 of its table); B's increment carries only them.
    db.execute_batch("INSERT INTO items VALUES (4, 'd', '4.40'), (5, 'e', '5.50');")
        .unwrap();
    a.ok(&["run"]);
    b.ok(&["run"]);
    assert_eq!(count(&b, ""), 5);
    assert_eq!(count(&b, "WHERE _commit_version = 1"), 2);
    assert_eq!(
        count(&b, "WHERE id IN (4, 5) AND _change_type = 'insert'"),
        2
    );
    b.ok(&["run"]);
    assert_eq!(count(&b, ""), 5);
    assert_eq!(
        b.query_i64(
            "SELECT count(*) AS n FROM (SELECT id FROM bronze.up_t GROUP BY id HAVING count(*) > 1)"
        ),
        0
    );
    assert_eq!(
        b.query_i64("SELECT count(*) AS n FROM bronze.items_full"),
        5
    );
    let tables = b.ok(&["tables"]);
    assert!(tables.contains("_delta_version"), "{tables}");
}

#[test]
fn python_table_appends_compaction_and_a_delete_without_the_feed() {
    let src = tempfile::tempdir().unwrap();
    let path = src.path().join("t");
    let Some(_) = py(
        &path,
        "write_deltalake(path, pa.table({'id': pa.array([1, 2, 3], pa.int64()), 'v': ['a', 'b', 'c']}))",
    ) else {
        return;
    };
    let p = delta_project(src.path(), "  - name: t\n    mode: incremental\n");
    p.ok(&["run"]);
    assert_eq!(count(&p, ""), 3);

    // A compaction between runs adds no rows.
    py(
        &path,
        "write_deltalake(path, pa.table({'id': pa.array([4], pa.int64()), 'v': ['d']}), mode='append')",
    )
    .unwrap();
    p.ok(&["run"]);
    assert_eq!(count(&p, ""), 4);
    py(&path, "DeltaTable(path).optimize.compact()").unwrap();
    p.ok(&["run"]);
    assert_eq!(count(&p, ""), 4);
    p.ok(&["run"]);
    assert_eq!(count(&p, ""), 4);

    // Appends load only the new rows, once.
    py(
        &path,
        "write_deltalake(path, pa.table({'id': pa.array([5, 6], pa.int64()), 'v': ['e', 'f']}), mode='append')",
    )
    .unwrap();
    p.ok(&["run"]);
    assert_eq!(count(&p, ""), 6);
    p.ok(&["run"]);
    assert_eq!(count(&p, ""), 6);
    assert_eq!(count(&p, "WHERE _change_type = 'insert'"), 6);

    // A delete without the change data feed: the run fails, naming the commit and the ways out,
    // and the bronze table is unchanged.
    py(&path, "DeltaTable(path).delete(\"id = 2\")").unwrap();
    let before = delta_logs(&p.lake_listing());
    let out = p.run(&["run"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(text.contains("(DELETE) removed or rewrote rows"), "{text}");
    assert!(text.contains("delta.enableChangeDataFeed = true"), "{text}");
    assert!(text.contains("--full-refresh"), "{text}");
    assert_eq!(delta_logs(&p.lake_listing()), before);
    assert_eq!(count(&p, ""), 6);

    // --full-refresh reloads the current table, and increments continue from there.
    p.ok(&["run", "--full-refresh"]);
    assert_eq!(count(&p, ""), 5);
    py(
        &path,
        "write_deltalake(path, pa.table({'id': pa.array([7], pa.int64()), 'v': ['g']}), mode='append')",
    )
    .unwrap();
    p.ok(&["run"]);
    assert_eq!(count(&p, ""), 6);
    assert_eq!(count(&p, "WHERE id = 2"), 0);
    assert_eq!(count(&p, "WHERE id = 7"), 1);
}

#[test]
fn python_table_with_the_change_data_feed_carries_updates_and_deletes() {
    let src = tempfile::tempdir().unwrap();
    let path = src.path().join("t");
    let Some(_) = py(
        &path,
        "write_deltalake(path, pa.table({'id': pa.array([1, 2, 3], pa.int64()), 'v': ['a', 'b', 'c']}), configuration={'delta.enableChangeDataFeed': 'true'})",
    ) else {
        return;
    };
    let p = delta_project(src.path(), "  - name: t\n    mode: incremental\n");
    p.ok(&["run"]);
    assert_eq!(count(&p, ""), 3);

    py(
        &path,
        "DeltaTable(path).update(predicate=\"id = 2\", updates={'v': \"'B'\"})\n\
         DeltaTable(path).delete(\"id = 3\")\n\
         write_deltalake(path, pa.table({'id': pa.array([4], pa.int64()), 'v': ['d']}), mode='append')\n\
         DeltaTable(path).optimize.compact()",
    )
    .unwrap();
    p.ok(&["run"]);
    let rows = p.query(
        "SELECT id, v, _change_type, _commit_version FROM bronze.up_t WHERE _commit_version > 0 ORDER BY _commit_version",
    );
    assert_eq!(
        serde_json::Value::Array(rows),
        serde_json::json!([
            {"id": 2, "v": "B", "_change_type": "update_postimage", "_commit_version": 1},
            {"id": 3, "v": "c", "_change_type": "delete", "_commit_version": 2},
            {"id": 4, "v": "d", "_change_type": "insert", "_commit_version": 3}
        ])
    );
    // Rerun: nothing new, nothing doubled.
    p.ok(&["run"]);
    assert_eq!(count(&p, ""), 6);
}

#[test]
fn validate_connections_opens_each_delta_table() {
    let src = tempfile::tempdir().unwrap();
    let Some(_) = py(
        &src.path().join("sales/orders"),
        "write_deltalake(path, pa.table({'id': pa.array([1], pa.int64())}), configuration={'delta.enableChangeDataFeed': 'true'})\n\
         write_deltalake(path, pa.table({'id': pa.array([2], pa.int64())}), mode='append')",
    ) else {
        return;
    };
    let p = delta_project(
        src.path(),
        "  - name: sales/orders\n    mode: incremental\n  - name: sales/missing\n",
    );
    let out = p.run(&["validate", "--connections"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    // Default targets take the last part of the path.
    assert!(text.contains("bronze.up_orders"), "{text}");
    assert!(text.contains("bronze.up_missing"), "{text}");
    assert!(text.contains("up                   delta    ok"), "{text}");
    assert!(
        text.contains("sales/orders") && text.contains("ok (version 1, change data feed)"),
        "{text}"
    );
    let missing = text
        .lines()
        .find(|l| l.contains("sales/missing") && l.contains("FAILED"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(missing.contains("no Delta table at"), "{missing}");

    // The missing table fails a run with the same message; the other loads.
    let out = p.run(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(text.contains("sales/missing"), "{text}");
    assert_eq!(p.query_i64("SELECT count(*) AS n FROM bronze.up_orders"), 2);

    // Options that do not apply to Delta tables are configuration errors.
    p.write(
        "ingest/up.yaml",
        "connection: up\ntables:\n  - name: sales/orders\n    mode: incremental\n    cursor: id\n    version: 3\n",
    );
    let out = p.run(&["validate"]);
    assert_eq!(out.status.code(), Some(2));
    let text = stderr(&out);
    assert!(
        text.contains("ingest/up.yaml:5: key `tables[0].cursor`"),
        "{text}"
    );
    assert!(
        text.contains("read incrementally by table version"),
        "{text}"
    );
    assert!(
        text.contains("ingest/up.yaml:6: key `tables[0].version`"),
        "{text}"
    );
}

#[test]
fn a_delta_table_in_an_azurite_container() {
    if std::net::TcpStream::connect("127.0.0.1:10000").is_err() {
        unavailable::<()>(
            "Azurite",
            "nothing listens on 127.0.0.1:10000 (.ci/run starts it)",
        );
        return;
    }
    let container = unique_name("deltasrc").replace('_', "-");
    let url = format!("az://{container}/src/t");
    let script = format!(
        "from azure.storage.blob import BlobServiceClient\n\
         BlobServiceClient.from_connection_string('UseDevelopmentStorage=true').create_container('{container}')\n\
         import pyarrow as pa\nfrom deltalake import DeltaTable, write_deltalake\n\
         opts = {{'azure_storage_use_emulator': 'true'}}\n\
         write_deltalake('{url}', pa.table({{'id': pa.array([1, 2, 3], pa.int64()), 'v': ['a', 'b', 'c']}}), storage_options=opts, configuration={{'delta.enableChangeDataFeed': 'true'}})\n"
    );
    if python(&script).is_none() {
        return;
    }
    let p = TestProject::new(&format!(
        "name: t\nlake: ./lake\nconnections:\n  up:\n    type: delta\n    url: az://{container}/src\n    storage_options: {{ azure_storage_use_emulator: \"true\" }}\n"
    ));
    p.write(
        "ingest/up.yaml",
        "connection: up\ntables:\n  - name: t\n    mode: incremental\n",
    );
    let out = p.ok(&["validate", "--connections"]);
    assert!(out.contains("ok (version 0, change data feed)"), "{out}");
    p.ok(&["run"]);
    assert_eq!(count(&p, ""), 3);
    python(&format!(
        "from deltalake import DeltaTable\n\
         DeltaTable('{url}', storage_options={{'azure_storage_use_emulator': 'true'}}).update(predicate=\"id = 1\", updates={{'v': \"'A'\"}})\n"
    ))
    .unwrap();
    p.ok(&["run"]);
    assert_eq!(count(&p, ""), 4);
    assert_eq!(
        count(&p, "WHERE _change_type = 'update_postimage' AND v = 'A'"),
        1
    );
    p.ok(&["run"]);
    assert_eq!(count(&p, ""), 4);
}
