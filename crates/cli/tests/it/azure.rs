//! The lake on Azure storage (ADLS Gen2 / Blob) through the Azurite emulator on loopback.

use std::process::Command;

use crate::support::*;

fn azurite_up() -> bool {
    std::net::TcpStream::connect("127.0.0.1:10000").is_ok()
}

/// Create a container with the Python Azure SDK (object stores do not create containers).
fn create_container(name: &str) -> Option<()> {
    let script = format!(
        "from azure.storage.blob import BlobServiceClient\nBlobServiceClient.from_connection_string('UseDevelopmentStorage=true').create_container('{name}')\n"
    );
    let out = Command::new("python3").args(["-c", &script]).output();
    match out {
        Ok(o) if o.status.success() => Some(()),
        Ok(o) => unavailable(
            "python azure-storage-blob",
            String::from_utf8_lossy(&o.stderr),
        ),
        Err(e) => unavailable("python3", e),
    }
}

/// A new container on Azurite named after `prefix`, or `None` (skip) when Azurite or the
/// Python SDK is unavailable.
fn azurite_container(prefix: &str) -> Option<String> {
    if !azurite_up() {
        return unavailable(
            "Azurite",
            "nothing listens on 127.0.0.1:10000 (.ci/run starts it)",
        );
    }
    let container = unique_name(prefix).replace('_', "-");
    create_container(&container)?;
    Some(container)
}

#[test]
fn load_into_azurite_and_read_back() {
    let Some(container) = azurite_container("lake") else {
        return;
    };
    let p = TestProject::new(&format!(
        "name: t\nlake: az://{container}/acme\nlake_options:\n  azure_storage_use_emulator: \"true\"\nconnections:\n  erp: {{ type: sqlite, path: erp.db }}\n"
    ));
    let conn = rusqlite::Connection::open(p.path().join("erp.db")).unwrap();
    conn.execute_batch(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, amount DECIMAL(10,2), updated_at DATETIME);
         WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 2500)
         INSERT INTO orders SELECT i, i || '.25', '2026-01-01 00:00:00' FROM g;",
    )
    .unwrap();
    p.write(
        "ingest/erp.yaml",
        "connection: erp\ntables:\n  - name: orders\n    mode: incremental\n    cursor: updated_at\n    primary_key: [id]\n",
    );
    let out = p.ok(&["validate", "--connections"]);
    assert!(out.contains("lake") && out.contains("ok"), "{out}");
    p.ok(&["run"]);
    assert_eq!(
        p.query_i64("SELECT count(*) AS n FROM bronze.erp_orders"),
        2500
    );
    conn.execute_batch("INSERT INTO orders VALUES (2501, '1.00', '2026-01-02 00:00:00');")
        .unwrap();
    p.ok(&["run"]);
    assert_eq!(
        p.query_i64("SELECT count(*) AS n FROM bronze.erp_orders"),
        2501
    );
    let tables = p.ok(&["tables"]);
    assert!(
        tables.contains("bronze  erp_orders") && tables.contains("2,501"),
        "{tables}"
    );
    // Nothing was written to a local lake folder.
    assert!(!p.path().join("acme").exists());
}

#[test]
fn files_from_an_azurite_container() {
    let Some(container) = azurite_container("landing") else {
        return;
    };
    let upload = format!(
        "from azure.storage.blob import BlobServiceClient\nimport gzip\nc = BlobServiceClient.from_connection_string('UseDevelopmentStorage=true').get_container_client('{container}')\nc.upload_blob('drop/rates/2026-01-01.csv', b'\\xef\\xbb\\xbfday,currency,rate\\n2026-01-01,EUR,1.1\\n2026-01-01,GBP,1.3\\n')\nc.upload_blob('drop/rates/2026-01-02.csv.gz', gzip.compress(b'day,currency,rate\\n2026-01-02,EUR,1.2\\n'))\nc.upload_blob('drop/other/ignore.csv', b'x\\n1\\n')\n"
    );
    let out = Command::new("python3")
        .args(["-c", &upload])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = TestProject::new(&format!(
        "name: t\nlake: ./lake\nconnections:\n  landing:\n    type: files\n    url: az://{container}/drop\n    storage_options:\n      azure_storage_use_emulator: \"true\"\n"
    ));
    p.write(
        "ingest/landing.yaml",
        "connection: landing\ntables:\n  - name: rates\n    glob: \"rates/*\"\n    format: csv\n",
    );
    p.ok(&["run"]);
    let rows = p.query(
        "SELECT day, currency, rate, _tributary_source AS src FROM bronze.landing_rates ORDER BY day, currency",
    );
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[0]["currency"], "EUR");
    assert_eq!(rows[0]["src"], "landing:rates/2026-01-01.csv");
    assert_eq!(rows[2]["src"], "landing:rates/2026-01-02.csv.gz");
}

#[test]
fn new_files_from_an_azurite_container() {
    let Some(container) = azurite_container("newfiles") else {
        return;
    };
    let upload = |name: &str, body: &str| {
        let script = format!(
            "from azure.storage.blob import BlobServiceClient\nc = BlobServiceClient.from_connection_string('UseDevelopmentStorage=true').get_container_client('{container}')\nc.upload_blob('{name}', b'{body}', overwrite=True)\n"
        );
        let out = Command::new("python3")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    upload("in/a.csv", "id,v\\n1,x\\n2,y\\n");
    let p = TestProject::new(&format!(
        "name: t\nlake: ./lake\nconnections:\n  landing:\n    type: files\n    url: az://{container}/in\n    storage_options:\n      azure_storage_use_emulator: \"true\"\n"
    ));
    p.write(
        "ingest/landing.yaml",
        "connection: landing\ntables:\n  - name: drops\n    glob: \"*.csv\"\n    mode: new_files\n",
    );
    p.ok(&["run"]);
    assert_eq!(p.query_i64("SELECT count(*) FROM bronze.landing_drops"), 2);
    upload("in/b.csv", "id,v\\n3,z\\n");
    p.ok(&["run"]);
    p.ok(&["run"]);
    let rows = p.query("SELECT id, _tributary_source AS src FROM bronze.landing_drops ORDER BY id");
    let got: Vec<(i64, &str)> = rows
        .iter()
        .map(|r| (r["id"].as_i64().unwrap(), r["src"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, "landing:a.csv"),
            (2, "landing:a.csv"),
            (3, "landing:b.csv")
        ]
    );
    // Overwritten with new content: loaded again.
    upload("in/a.csv", "id,v\\n4,w\\n");
    p.ok(&["run"]);
    assert_eq!(p.query_i64("SELECT count(*) FROM bronze.landing_drops"), 4);
}
