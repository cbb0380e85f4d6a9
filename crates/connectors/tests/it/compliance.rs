//! The connector compliance suite: the same cases run against every connector that can run
//! here, through `tributary_connectors::open` as the loader opens them.
//!
//! | case | sqlite | postgres | mysql (MariaDB) | files (CSV) | fixture |
//! |---|---|---|---|---|---|
//! | empty source: the schema is announced, no batch, a summary of 0 rows ends the stream | yes | yes | yes | yes (header only) | yes |
//! | NULL in every column comes back as NULL | yes | yes | yes | — (CSV has no NULL apart from empty text) | yes |
//! | the schema is the same in every batch (small batches) and the summary counts every row | yes | yes | yes | yes | yes |
//! | a stream dropped after its first batch releases its connection or file | yes (file handle) | yes (backend) | yes (session) | yes (file handle) | yes (its open-read count) |
//!
//! The fixture connector (`src/fixture/`, cargo feature `fixture`, on for these tests) is the
//! example of adding a connector: one folder, one registration line, one feature.
//!
//! `check()` against something wrong gives the class the connector decided where the error was
//! born (the orchestrator retries `connection` and `timeout`, not `auth` or `config`):
//!
//! | `check()` against | sqlite | postgres | mysql (MariaDB) | files (local) | delta (local) |
//! |---|---|---|---|---|---|
//! | a host nothing listens on | — | `connection` | `connection` | — | — |
//! | a refused credential | — | `auth` (a role without LOGIN; the test server trusts loopback, so no password is checked) | `auth` (a wrong password) | — | — |
//! | a missing object | `config` (no such file) | `config` (no such database) | `config` (no such database) | `config` (no such folder) | `config` (no such folder) |
//! | something that is not what it should be | `config` (a file that is not a database) | — | — | — | — |
//!
//! The fixture connector's `check()` fails as asked (`fail_check: connection | auth | config`)
//! with that class, through the same `open` and `check` as the others.
//!
//! Not covered here: the ODBC, REST and command connectors (their own tests check their streams
//! end with a summary and their errors' classes: `odbc.rs`, `rest.rs`).

use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tributary_core::config::{ConnectionConfig, TableConfig};
use tributary_core::{ErrorClass, ReadRequest, Source};

use crate::support;

/// A table entry named `name`.
fn named(name: &str) -> serde_json::Value {
    serde_json::json!({ "name": name })
}

fn request(table: &serde_json::Value, batch_size: usize) -> ReadRequest {
    let t: TableConfig = serde_json::from_value(table.clone()).unwrap();
    ReadRequest {
        table: t,
        since: None,
        until: None,
        batch_size,
        loaded_files: None,
        table_schema: None,
    }
}

fn open(config: ConnectionConfig, root: &Path) -> Box<dyn Source> {
    tributary_connectors::open("c", &config, root).unwrap()
}

/// A database source declares the table's primary key with the read, in key order (`keyed`
/// has `PRIMARY KEY (b, a)`); none for a table without one or for a query.
async fn declares_key(src: &dyn Source, keyed: serde_json::Value, unkeyed: serde_json::Value) {
    let query = serde_json::json!({ "name": "q", "query": "SELECT 1 AS x" });
    for (table, expected) in [
        (keyed, Some(vec!["b".to_string(), "a".to_string()])),
        (unkeyed, None),
        (query, None),
    ] {
        let stream = src.read(request(&table, 100)).await.unwrap();
        assert_eq!(stream.declared_key, expected, "{table}");
    }
}

/// Empty source; NULL row (when `nulls` names a table); many rows in small batches.
async fn common_cases(
    src: &dyn Source,
    empty: serde_json::Value,
    nulls: Option<serde_json::Value>,
    many: serde_json::Value,
    rows: u64,
) {
    let (schema, batches, _, summary) =
        support::read_events(src.read(request(&empty, 100)).await.unwrap())
            .await
            .unwrap();
    assert!(
        !schema.fields().is_empty(),
        "an empty source still announces its columns"
    );
    assert!(
        batches.iter().all(|b| b.batch.num_rows() == 0),
        "rows from an empty source"
    );
    assert_eq!(summary.rows, 0);

    if let Some(nulls) = nulls {
        let (schema, batches, _, summary) =
            support::read_events(src.read(request(&nulls, 100)).await.unwrap())
                .await
                .unwrap();
        assert_eq!(summary.rows, 1);
        let b = batches.iter().find(|b| b.batch.num_rows() == 1).unwrap();
        for (i, f) in schema.fields().iter().enumerate() {
            assert!(
                b.batch.column(i).is_null(0),
                "column {} is not NULL",
                f.name()
            );
        }
    }

    let (_, batches, _, summary) = support::read_events(src.read(request(&many, 7)).await.unwrap())
        .await
        .unwrap();
    assert_eq!(summary.rows, rows);
    assert!(batches.len() > 1, "expected several batches");
}

/// Wait until `open_handles` says 0 (earlier reads close their connections in the
/// background), or fail after 20 s naming `why`.
async fn until_released(open_handles: &impl Fn() -> usize, why: &str) {
    let start = Instant::now();
    while open_handles() > 0 {
        assert!(start.elapsed() < Duration::from_secs(20), "{why}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Read one batch of `table`, drop the stream, and wait until `open_handles` says the
/// connector let go of its connection or file.
async fn cancel_releases(
    src: &dyn Source,
    table: serde_json::Value,
    open_handles: impl Fn() -> usize,
    what: &str,
) {
    until_released(&open_handles, &format!("earlier reads still hold a {what}")).await;
    let stream = src.read(request(&table, 100)).await.unwrap();
    let mut events = stream.events;
    let first = events.next().await.unwrap().unwrap();
    assert!(
        matches!(first, tributary_core::ReadEvent::Batch(_)),
        "{first:?}"
    );
    assert!(open_handles() > 0, "the read holds no {what} while it runs");
    drop(events);
    until_released(
        &open_handles,
        &format!("the dropped read still holds its {what}"),
    )
    .await;
}

/// Run `fut` to its end on a runtime of its own, on another thread: the open-handle counters
/// are plain closures called from inside the test's runtime.
fn on_own_runtime<T: Send + 'static>(
    fut: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(fut)
    })
    .join()
    .unwrap()
}

/// File descriptors of this process open on `path`.
fn fds_on(path: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| std::fs::read_link(e.path()).is_ok_and(|t| t == path))
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn sqlite_complies() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.sqlite");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE empty (id INTEGER, t TEXT, r REAL, ts DATETIME);
         CREATE TABLE nulls (id INTEGER, t TEXT, r REAL, ts DATETIME);
         INSERT INTO nulls VALUES (NULL, NULL, NULL, NULL);
         CREATE TABLE keyed (a INTEGER, b INTEGER, t TEXT, PRIMARY KEY (b, a));
         CREATE TABLE many (id INTEGER PRIMARY KEY, t TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
         INSERT INTO many SELECT i, 'row ' || i FROM n;",
    )
    .unwrap();
    drop(conn);
    let src = open(
        conn_of(
            "sqlite",
            serde_json::json!({
                "path": db.display().to_string(),
            }),
        ),
        dir.path(),
    );
    common_cases(
        src.as_ref(),
        named("empty"),
        Some(named("nulls")),
        named("many"),
        20_000,
    )
    .await;
    declares_key(src.as_ref(), named("keyed"), named("nulls")).await;
    let db = db.canonicalize().unwrap();
    cancel_releases(src.as_ref(), named("many"), || fds_on(&db), "database file").await;
}

#[tokio::test]
async fn files_comply() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("empty.csv"), "id,t\n").unwrap();
    let mut many = String::from("id,t\n");
    for i in 0..50_000 {
        many.push_str(&format!("{i},row {i}\n"));
    }
    std::fs::write(dir.path().join("many.csv"), many).unwrap();
    let src = open(
        conn_of(
            "files",
            serde_json::json!({
                "url": dir.path().display().to_string(),
            }),
        ),
        dir.path(),
    );
    let req = |glob: &str, batch_size: usize| {
        request(
            &serde_json::json!({ "name": "t", "glob": glob }),
            batch_size,
        )
    };
    let (schema, batches, _, summary) =
        support::read_events(src.read(req("empty.csv", 100)).await.unwrap())
            .await
            .unwrap();
    assert_eq!(schema.fields().len(), 2);
    assert!(batches.iter().all(|b| b.batch.num_rows() == 0));
    assert_eq!(summary.rows, 0);
    let (_, batches, _, summary) =
        support::read_events(src.read(req("many.csv", 7)).await.unwrap())
            .await
            .unwrap();
    assert_eq!(summary.rows, 50_000);
    assert!(batches.len() > 1);

    let path = dir.path().join("many.csv").canonicalize().unwrap();
    let open_handles = || fds_on(&path);
    until_released(&open_handles, "earlier reads still hold the file").await;
    let mut events = src.read(req("many.csv", 100)).await.unwrap().events;
    let _ = events.next().await.unwrap().unwrap();
    assert!(open_handles() > 0, "the read holds no file while it runs");
    drop(events);
    until_released(&open_handles, "the dropped read still holds its file").await;
}

#[tokio::test]
async fn postgres_complies() {
    let (client, connection) =
        match tokio_postgres::connect(&support::pg_url(), tokio_postgres::NoTls).await {
            Ok(pair) => pair,
            Err(e) => {
                support::unavailable::<()>("PostgreSQL", e);
                return;
            }
        };
    tokio::spawn(connection);
    let schema = support::unique_name("compliance");
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {schema};
             CREATE TABLE {schema}.empty (id int, t text, n numeric(10,2), ts timestamptz, b boolean, j jsonb);
             CREATE TABLE {schema}.nulls (id int, t text, n numeric(10,2), ts timestamptz, b boolean, j jsonb);
             INSERT INTO {schema}.nulls VALUES (NULL, NULL, NULL, NULL, NULL, NULL);
             CREATE TABLE {schema}.keyed (a int, b int, t text, PRIMARY KEY (b, a));
             CREATE TABLE {schema}.many AS SELECT i AS id, 'row ' || i AS t FROM generate_series(1, 50000) i;"
        ))
        .await
        .unwrap();
    let app = support::unique_name("cmp");
    let sep = if support::pg_url().contains('?') {
        '&'
    } else {
        '?'
    };
    let src = open(
        conn_of(
            "postgres",
            serde_json::json!({
                "url": format!("{}{sep}application_name={app}", support::pg_url()),
            }),
        ),
        Path::new("."),
    );
    common_cases(
        src.as_ref(),
        named(&format!("{schema}.empty")),
        Some(named(&format!("{schema}.nulls"))),
        named(&format!("{schema}.many")),
        50_000,
    )
    .await;
    declares_key(
        src.as_ref(),
        named(&format!("{schema}.keyed")),
        named(&format!("{schema}.nulls")),
    )
    .await;
    let count = format!("SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app}'");
    let backends = || {
        let (url, count) = (support::pg_url(), count.clone());
        on_own_runtime(async move {
            let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            let n: i64 = c.query_one(&count, &[]).await.unwrap().get(0);
            n as usize
        })
    };
    cancel_releases(
        src.as_ref(),
        named(&format!("{schema}.many")),
        backends,
        "backend",
    )
    .await;
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

#[tokio::test]
async fn mysql_complies() {
    use mysql_async::prelude::Queryable;
    let pool = mysql_async::Pool::new(support::mysql_url().as_str());
    let mut conn = match pool.get_conn().await {
        Ok(c) => c,
        Err(e) => {
            support::unavailable::<()>("MariaDB", e);
            return;
        }
    };
    let db = support::unique_name("compliance");
    let user = support::unique_name("cmp");
    conn.query_drop(format!(
        "CREATE DATABASE {db};
         CREATE TABLE {db}.empty (id int, t text, n decimal(10,2), ts datetime(6), b bool);
         CREATE TABLE {db}.nulls (id int, t text, n decimal(10,2), ts datetime(6), b bool);
         INSERT INTO {db}.nulls VALUES (NULL, NULL, NULL, NULL, NULL);
         CREATE TABLE {db}.keyed (a int, b int, t text, PRIMARY KEY (b, a));
         CREATE TABLE {db}.many (id int PRIMARY KEY, t text);
         INSERT INTO {db}.many SELECT seq, concat('row ', seq) FROM seq_1_to_50000;
         CREATE USER '{user}'@'%';
         GRANT ALL ON {db}.* TO '{user}'@'%';"
    ))
    .await
    .unwrap();
    let src = open(
        conn_of(
            "mysql",
            serde_json::json!({
                "url": format!("mysql://{user}@127.0.0.1:3306/{db}"),
            }),
        ),
        Path::new("."),
    );
    common_cases(
        src.as_ref(),
        named("empty"),
        Some(named("nulls")),
        named("many"),
        50_000,
    )
    .await;
    declares_key(src.as_ref(), named("keyed"), named("nulls")).await;
    let count = format!("SELECT count(*) FROM information_schema.processlist WHERE db = '{db}'");
    let sessions = || {
        let (url, count) = (support::mysql_url(), count.clone());
        on_own_runtime(async move {
            let pool = mysql_async::Pool::new(url.as_str());
            let mut c = pool.get_conn().await.unwrap();
            let n: Option<u64> = c.query_first(count).await.unwrap();
            drop(c);
            let _ = pool.disconnect().await;
            n.unwrap_or(0) as usize
        })
    };
    cancel_releases(src.as_ref(), named("many"), sessions, "session").await;
    conn.query_drop(format!("DROP DATABASE {db}; DROP USER '{user}'@'%';"))
        .await
        .unwrap();
    drop(conn);
    let _ = pool.disconnect().await;
}

/// `check()` fails with `class`, naming what it checked.
async fn check_fails(config: ConnectionConfig, root: &Path, class: ErrorClass, case: &str) {
    let src = tributary_connectors::open("c", &config, root).unwrap();
    let err = src
        .check()
        .await
        .expect_err(&format!("{case}: check() passed"));
    assert_eq!(err.class(), class, "{case}: {err}");
    assert_eq!(err.is_retryable(), class.is_retryable(), "{case}");
}

#[tokio::test]
async fn check_gives_the_class_of_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    check_fails(
        conn_of(
            "sqlite",
            serde_json::json!({
                "path": missing.join("db.sqlite").display().to_string(),
            }),
        ),
        dir.path(),
        ErrorClass::Config,
        "sqlite, no such file",
    )
    .await;
    let not_a_db = dir.path().join("notes.sqlite");
    std::fs::write(
        &not_a_db,
        "these are not the pages of a SQLite database, just text\n".repeat(100),
    )
    .unwrap();
    check_fails(
        conn_of(
            "sqlite",
            serde_json::json!({
                "path": not_a_db.display().to_string(),
            }),
        ),
        dir.path(),
        ErrorClass::Config,
        "sqlite, not a database",
    )
    .await;
    check_fails(
        conn_of(
            "files",
            serde_json::json!({
                "url": missing.display().to_string(),
            }),
        ),
        dir.path(),
        ErrorClass::Config,
        "files, no such folder",
    )
    .await;
    check_fails(
        conn_of(
            "delta",
            serde_json::json!({
                "url": missing.display().to_string(),
            }),
        ),
        dir.path(),
        ErrorClass::Config,
        "delta, no such folder",
    )
    .await;

    let pg = support::pg_url();
    let pg_base = pg.split('?').next().unwrap_or(&pg).to_string();
    let (pg_server, _db) = pg_base.rsplit_once('/').unwrap();
    check_fails(
        conn_of(
            "postgres",
            serde_json::json!({
                "url": "postgres://postgres@127.0.0.1:1/test",
            }),
        ),
        dir.path(),
        ErrorClass::Connection,
        "postgres, nothing listening",
    )
    .await;
    let (client, connection) = match tokio_postgres::connect(&pg, tokio_postgres::NoTls).await {
        Ok(pair) => pair,
        Err(e) => {
            support::unavailable::<()>("PostgreSQL", e);
            return;
        }
    };
    tokio::spawn(connection);
    let role = support::unique_name("nologin");
    client
        .batch_execute(&format!("CREATE ROLE {role} NOLOGIN"))
        .await
        .unwrap();
    let after_scheme = pg_server.split_once("://").map_or(pg_server, |(_, r)| r);
    let host = after_scheme
        .rsplit_once('@')
        .map_or(after_scheme, |(_, h)| h);
    check_fails(
        conn_of(
            "postgres",
            serde_json::json!({
                "url": format!("postgres://{role}@{host}/test"),
            }),
        ),
        dir.path(),
        ErrorClass::Auth,
        "postgres, a role that may not log in",
    )
    .await;
    check_fails(
        conn_of(
            "postgres",
            serde_json::json!({
                "url": format!("{pg_server}/{}", support::unique_name("nodb")),
            }),
        ),
        dir.path(),
        ErrorClass::Config,
        "postgres, no such database",
    )
    .await;
    client
        .batch_execute(&format!("DROP ROLE {role}"))
        .await
        .unwrap();

    check_fails(
        conn_of(
            "mysql",
            serde_json::json!({
                "url": "mysql://root@127.0.0.1:1/test",
            }),
        ),
        dir.path(),
        ErrorClass::Connection,
        "mysql, nothing listening",
    )
    .await;
    use mysql_async::prelude::Queryable;
    let pool = mysql_async::Pool::new(support::mysql_url().as_str());
    let mut conn = match pool.get_conn().await {
        Ok(c) => c,
        Err(e) => {
            support::unavailable::<()>("MariaDB", e);
            return;
        }
    };
    let user = support::unique_name("pw");
    conn.query_drop(format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY 'right-password'; GRANT SELECT ON test.* TO '{user}'@'%';"
    ))
    .await
    .unwrap();
    check_fails(
        conn_of(
            "mysql",
            serde_json::json!({
                "url": format!("mysql://{user}:wrong-password@127.0.0.1:3306/test"),
            }),
        ),
        dir.path(),
        ErrorClass::Auth,
        "mysql, a wrong password",
    )
    .await;
    check_fails(
        conn_of(
            "mysql",
            serde_json::json!({
                "url": format!(
                    "mysql://root@127.0.0.1:3306/{}",
                    support::unique_name("nodb")
                ),
            }),
        ),
        dir.path(),
        ErrorClass::Config,
        "mysql, no such database",
    )
    .await;
    conn.query_drop(format!("DROP USER '{user}'@'%'"))
        .await
        .unwrap();
    drop(conn);
    let _ = pool.disconnect().await;
}

/// A connection of `kind` with `options` (its keys besides `type`).
fn conn_of(kind: &str, options: serde_json::Value) -> ConnectionConfig {
    let mut conn = options;
    conn["type"] = kind.into();
    serde_json::from_value(conn).unwrap()
}

/// A fixture connection with `options`.
fn fixture(options: serde_json::Value) -> ConnectionConfig {
    conn_of("fixture", options)
}

#[tokio::test]
async fn fixture_complies() {
    let src = open(fixture(serde_json::json!({})), Path::new("."));
    let table =
        |rows: u64, nulls: bool| serde_json::json!({ "name": "t", "rows": rows, "nulls": nulls });
    common_cases(
        src.as_ref(),
        table(0, false),
        Some(table(0, true)),
        table(20_000, false),
        20_000,
    )
    .await;
    cancel_releases(
        src.as_ref(),
        table(1_000_000, false),
        tributary_connectors::fixture::open_reads,
        "read",
    )
    .await;
    src.check().await.unwrap();
    for (fail, class) in [
        ("connection", ErrorClass::Connection),
        ("auth", ErrorClass::Auth),
        ("config", ErrorClass::Config),
    ] {
        check_fails(
            fixture(serde_json::json!({ "fail_check": fail })),
            Path::new("."),
            class,
            &format!("fixture, fail_check: {fail}"),
        )
        .await;
    }
}
