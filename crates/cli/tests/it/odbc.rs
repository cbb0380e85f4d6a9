//! `type: odbc` end to end: `tributary validate --connections` and `tributary run` into bronze
//! through the PostgreSQL ODBC driver, a full table and an incremental one, with the password in
//! the environment and never in the output, the lake or the state.

use std::path::Path;

use crate::support::*;

/// The ODBC connection string of the test PostgreSQL, with `Pwd=${env:TT_ODBC_PW:-}` (trust
/// authentication ignores it; it is there to prove it is never shown; `tributary query`, which
/// needs no connection, runs without the variable).
fn pg_odbc_connection_string() -> Option<String> {
    let out = std::process::Command::new("odbcinst")
        .args(["-q", "-d"])
        .output();
    match out {
        Ok(o) if String::from_utf8_lossy(&o.stdout).contains("[PostgreSQL Unicode]") => {}
        Ok(o) => {
            return unavailable(
                "ODBC driver \"PostgreSQL Unicode\"",
                format!(
                    "not in `odbcinst -q -d`: {}",
                    String::from_utf8_lossy(&o.stdout)
                ),
            );
        }
        Err(e) => return unavailable("unixODBC (odbcinst)", e),
    }
    // postgres://user[:password]@host[:port]/database
    let url = pg_url();
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(&url);
    let (userinfo, hostpath) = rest.rsplit_once('@').unwrap_or(("postgres", rest));
    let user = userinfo.split(':').next().unwrap_or("postgres");
    let (hostport, database) = hostpath.split_once('/').unwrap_or((hostpath, "test"));
    let database = database.split('?').next().unwrap_or("test");
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, "5432"));
    Some(format!(
        "Driver={{PostgreSQL Unicode}};Server={host};Port={port};Database={database};Uid={user};Pwd=${{env:TT_ODBC_PW:-}};UseDeclareFetch=1;Fetch=1000;"
    ))
}

const SECRET: &str = "Sup3rSecretOdbcPw";

/// Whether any file under `dir` contains `needle`.
fn any_file_contains(dir: &Path, needle: &str) -> Option<std::path::PathBuf> {
    let rd = std::fs::read_dir(dir).ok()?;
    for e in rd.flatten() {
        let path = e.path();
        if path.is_dir() {
            if let Some(p) = any_file_contains(&path, needle) {
                return Some(p);
            }
        } else if let Ok(bytes) = std::fs::read(&path)
            && bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
        {
            return Some(path);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread")]
async fn odbc_tables_load_into_bronze() {
    let Some(cs) = pg_odbc_connection_string() else {
        return;
    };
    let Some(db) = PgSchema::new().await else {
        return;
    };
    let s = &db.schema;
    db.client
        .batch_execute(&format!(
            "CREATE TABLE {s}.orders (id int PRIMARY KEY, status text, total numeric(12,2), updated_at timestamptz NOT NULL);
             INSERT INTO {s}.orders SELECT g, 'new', g * 1.25, timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second' FROM generate_series(1, 2500) g;
             CREATE TABLE {s}.customers (id int, name text, since date);
             INSERT INTO {s}.customers VALUES (1, 'Zoë', '2020-02-29'), (2, 'O''Brien', NULL);"
        ))
        .await
        .unwrap();
    let p = TestProject::new(&format!(
        "name: t\nlake: ./lake\nconnections:\n  crm: {{ type: odbc, connection_string: \"{cs}\" }}\n"
    ));
    p.write(
        "ingest/crm.yaml",
        &format!(
            "connection: crm\ntables:\n  - name: {s}.orders\n    mode: incremental\n    cursor: updated_at\n    primary_key: [id]\n  - name: {s}.customers\n    mode: full\n"
        ),
    );
    let run = |args: &[&str]| {
        let mut c = p.command(args);
        c.env("TT_ODBC_PW", SECRET);
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "tributary {args:?} failed:\n{}\n{}",
            stdout(&out),
            stderr(&out)
        );
        assert!(!stdout(&out).contains(SECRET) && !stderr(&out).contains(SECRET));
        stdout(&out)
    };

    tokio::task::block_in_place(|| {
        let out = run(&["validate", "--connections"]);
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with("crm"))
            .unwrap_or_else(|| panic!("no crm line in:\n{out}"));
        assert!(line.contains("odbc") && line.contains("ok"), "{line}");
        assert!(line.contains("PostgreSQL"), "{line}");

        run(&["run"]);
        assert_eq!(
            p.query_i64("SELECT count(*) AS n FROM bronze.crm_orders"),
            2500
        );
        // Decimals stay exact: sum of g * 1.25 for g in 1..=2500.
        let rows = p.query("SELECT CAST(sum(total) AS VARCHAR) AS s FROM bronze.crm_orders");
        assert_eq!(rows[0]["s"], "3907812.50", "{rows:?}");
        let rows = p.query(
            "SELECT name, CAST(since AS VARCHAR) AS since, _tributary_source AS src FROM bronze.crm_customers ORDER BY id",
        );
        assert_eq!(rows[0]["name"], "Zoë");
        assert_eq!(rows[0]["since"], "2020-02-29");
        assert_eq!(rows[1]["name"], "O'Brien");
        assert!(rows[1]["since"].is_null());
        assert_eq!(rows[0]["src"], format!("crm:{s}.customers"));
        // The cursor column is an instant, as through the native connector.
        let rows = p.query("SELECT CAST(max(updated_at) AS VARCHAR) AS m FROM bronze.crm_orders");
        assert!(
            rows[0]["m"]
                .as_str()
                .unwrap()
                .starts_with("2026-01-01T00:41:40"),
            "{rows:?}"
        );
    });

    // New rows: only they are appended on the next run.
    db.client
        .batch_execute(&format!(
            "INSERT INTO {s}.orders SELECT g, 'new', 1, timestamptz '2026-01-02 00:00:00+00' + g * interval '1 second' FROM generate_series(2501, 2600) g;"
        ))
        .await
        .unwrap();
    tokio::task::block_in_place(|| {
        run(&["run"]);
        assert_eq!(
            p.query_i64("SELECT count(*) AS n FROM bronze.crm_orders"),
            2600
        );
        assert_eq!(
            p.query_i64(
                "SELECT count(*) AS n FROM (SELECT id FROM bronze.crm_orders GROUP BY id HAVING count(*) > 1)"
            ),
            0
        );
        run(&["run"]);
        assert_eq!(
            p.query_i64("SELECT count(*) AS n FROM bronze.crm_orders"),
            2600
        );
    });
    if let Some(file) = any_file_contains(p.path(), SECRET) {
        panic!("the password is in {}", file.display());
    }
    db.drop_schema().await;
}
