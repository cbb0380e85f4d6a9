//! The orchestrator against the machine's PostgreSQL: the run history kept in a PostgreSQL
//! state store, a load retried while its database refuses connections until it accepts them,
//! and runs killed with SIGKILL then resumed, with no row loaded twice in bronze, silver or gold.

use std::net::{TcpListener, TcpStream};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{PgSchema, TestProject, pg_url, stderr};

/// `host:port` of the test PostgreSQL.
fn pg_addr() -> String {
    let url = pg_url();
    let after_at = url.rsplit_once('@').map(|(_, r)| r).unwrap_or(&url);
    let host_port = after_at.split('/').next().unwrap_or("127.0.0.1:5432");
    if host_port.contains(':') {
        host_port.to_string()
    } else {
        format!("{host_port}:5432")
    }
}

/// A free loopback port nobody listens on (yet).
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// After `delay`, listen on `port` and forward every connection to PostgreSQL.
fn forward_later(port: u16, delay: Duration) {
    let upstream = pg_addr();
    std::thread::spawn(move || {
        std::thread::sleep(delay);
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect(&upstream) else {
                continue;
            };
            let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (mut c1, mut s1) = (client, server);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c1, &mut s1);
                let _ = s1.shutdown(std::net::Shutdown::Both);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s2, &mut c2);
                let _ = c2.shutdown(std::net::Shutdown::Both);
            });
        }
    });
}

fn pg_url_with_port(port: u16) -> String {
    pg_url().replace(&pg_addr(), &format!("127.0.0.1:{port}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_state_store_and_retry_until_the_source_accepts() {
    let Some(db) = PgSchema::new().await else {
        return;
    };
    let s = db.schema.clone();
    let state_schema = format!("{s}_state");
    db.client
        .batch_execute(&format!(
            "CREATE TABLE {s}.orders (id int PRIMARY KEY, amount int);
             INSERT INTO {s}.orders SELECT g, g % 100 FROM generate_series(1, 1000) g;"
        ))
        .await
        .unwrap();
    let port = free_port();
    let p = TestProject::new(&format!(
        "name: t\nlake: ./lake\nstate: \"{}?schema={state_schema}\"\nconnections:\n  erp: {{ type: postgres, url: \"{}\" }}\norchestration:\n  retries: 5\n  retry_delay: 1s\n",
        pg_url(),
        pg_url_with_port(port)
    ));
    p.write(
        "ingest/erp.yaml",
        &format!("connection: erp\ntables:\n  - name: {s}.orders\n"),
    );
    // Nothing listens on the source's port for the first 2.5 s: connection refused.
    forward_later(port, Duration::from_millis(2500));
    let out = tokio::task::block_in_place(|| p.run(&["run"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        tokio::task::block_in_place(|| p.query_i64("SELECT count(*) FROM bronze.erp_orders")),
        1000
    );

    // The history is in PostgreSQL: the task took several attempts, the failed ones with the
    // class `connection`.
    let row = db
        .client
        .query_one(
            &format!(
                "SELECT t.attempts, r.status FROM {state_schema}.tasks t JOIN {state_schema}.runs r USING (run_id) WHERE t.task_id = 'bronze.erp_orders'"
            ),
            &[],
        )
        .await
        .unwrap();
    let attempts: i64 = row.get(0);
    let status: String = row.get(1);
    assert!(attempts >= 2, "{attempts}");
    assert_eq!(status, "succeeded");
    let refused: i64 = db
        .client
        .query_one(
            &format!(
                "SELECT count(*) FROM {state_schema}.attempts WHERE task_id = 'bronze.erp_orders' AND error_class = 'connection'"
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(refused, attempts - 1);
    let show = tokio::task::block_in_place(|| p.ok(&["runs"]));
    assert!(show.contains("succeeded"), "{show}");
    let run_id = show
        .lines()
        .find(|l| l.contains("succeeded"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();
    let detail = tokio::task::block_in_place(|| p.ok(&["runs", "show", &run_id]));
    assert!(detail.contains("Failed attempts"), "{detail}");
    assert!(detail.contains("[connection]"), "{detail}");

    // Configuration errors are not retried: a table that does not exist fails at once.
    p.write(
        "ingest/erp.yaml",
        &format!("connection: erp\ntables:\n  - name: {s}.no_such_table\n"),
    );
    let out = tokio::task::block_in_place(|| p.run(&["run"]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let once: i64 = db
        .client
        .query_one(
            &format!(
                "SELECT max(attempts) FROM {state_schema}.tasks WHERE task_id = 'bronze.erp_no_such_table'"
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(once, 1);

    db.drop_schema().await;
    let _ = db
        .client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {state_schema} CASCADE"))
        .await;
}

fn medallion(s: &str) -> TestProject {
    let p = TestProject::new(&format!(
        "name: t\nlake: ./lake\nconnections:\n  erp: {{ type: postgres, url: \"{}\" }}\n",
        pg_url()
    ));
    p.write(
        "ingest/erp.yaml",
        &format!(
            "connection: erp\ntables:\n  - name: {s}.orders\n    mode: incremental\n    cursor: updated_at\n    primary_key: [id]\n"
        ),
    );
    p.write(
        "models/silver/orders.sql",
        "SELECT id, amount, updated_at FROM {{ ref('bronze.erp_orders') }}",
    );
    p.write(
        "models/silver/orders.yaml",
        "materialized: incremental\nunique_key: id\norder_by: updated_at\n",
    );
    p.write(
        "models/gold/totals.sql",
        "SELECT count(*) AS n, sum(amount) AS total FROM {{ ref('silver.orders') }}",
    );
    p
}

/// Start `tributary run`, SIGKILL it once the state store shows `moment` (a SQL count > 0),
/// and return the killed run's id.
fn kill_when(p: &TestProject, moment: &str) -> String {
    let mut child = p
        .command(&["run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let db = p.path().join(".tributary/state.db");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let hit = rusqlite::Connection::open(&db)
            .and_then(|c| c.query_row(moment, [], |r| r.get::<_, i64>(0)))
            .unwrap_or(0);
        if hit > 0 || Instant::now() > deadline {
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_then_resume_loads_every_row_once() {
    let Some(db) = PgSchema::new().await else {
        return;
    };
    let s = db.schema.clone();
    db.client
        .batch_execute(&format!(
            "CREATE TABLE {s}.orders (id int PRIMARY KEY, amount int, updated_at timestamptz NOT NULL);
             INSERT INTO {s}.orders SELECT g, g % 1000, timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second' FROM generate_series(1, 300000) g;"
        ))
        .await
        .unwrap();
    let p = medallion(&s);
    // Killed at three moments: during the bronze load, while silver builds, while gold builds.
    let moments = [
        "SELECT count(*) FROM tasks WHERE task_id = 'bronze.erp_orders' AND status = 'running'",
        "SELECT count(*) FROM tasks WHERE task_id = 'silver.orders' AND status = 'running'",
        "SELECT count(*) FROM tasks WHERE task_id = 'gold.totals' AND status = 'running'",
    ];
    let mut expected_rows = 300_000i64;
    let mut expected_total: i64 = (1..=300_000i64).map(|g| g % 1000).sum();
    for (round, moment) in moments.iter().enumerate() {
        if round > 0 {
            // New rows and updates between rounds, each later than everything before (rows
            // committed with older cursor values are the lookback's business, tested elsewhere).
            let first = 300_000 + (round as i64 - 1) * 1000 + 1;
            db.client
                .batch_execute(&format!(
                    "INSERT INTO {s}.orders SELECT g, 7, timestamptz '2026-03-01 00:00:00+00' + {round} * interval '1 day' + g * interval '1 millisecond' FROM generate_series({first}, {}) g;
                     UPDATE {s}.orders SET amount = amount + 1, updated_at = timestamptz '2026-03-01 12:00:00+00' + {round} * interval '1 day' + id * interval '1 millisecond' WHERE id <= 100;",
                    first + 999
                ))
                .await
                .unwrap();
            expected_rows += 1000;
            expected_total += 1000 * 7 + 100;
        }
        let killed = tokio::task::block_in_place(|| kill_when(&p, moment));
        let out = tokio::task::block_in_place(|| p.run(&["run", "--resume", &killed]));
        assert!(
            out.status.code() == Some(0),
            "round {round}: resume failed: {}",
            stderr(&out)
        );
        let killed_status: String =
            rusqlite::Connection::open(p.path().join(".tributary/state.db"))
                .unwrap()
                .query_row(
                    "SELECT status FROM runs WHERE run_id = ?1",
                    [&killed],
                    |r| r.get(0),
                )
                .unwrap();
        eprintln!("round {round}: the killed run is {killed_status}");
        if round < 2 {
            // The bronze load and the silver model take long enough to be caught running; the
            // resume recorded the killed run as abandoned.
            assert_eq!(killed_status, "abandoned", "round {round}");
        }
        tokio::task::block_in_place(|| {
            // Bronze: every source version once (no duplicate (id, updated_at)).
            assert_eq!(
                p.query_i64(
                    "SELECT count(*) FROM (SELECT id, updated_at FROM bronze.erp_orders GROUP BY id, updated_at HAVING count(*) > 1)"
                ),
                0,
                "round {round}"
            );
            assert_eq!(
                p.query_i64("SELECT count(DISTINCT id) FROM bronze.erp_orders"),
                expected_rows,
                "round {round}"
            );
            // Silver: one row per id, the latest version.
            assert_eq!(
                p.query_i64("SELECT count(*) FROM silver.orders"),
                expected_rows,
                "round {round}"
            );
            assert_eq!(
                p.query_i64("SELECT sum(amount) FROM silver.orders"),
                expected_total,
                "round {round}"
            );
            // Gold agrees with silver.
            assert_eq!(
                p.query_i64("SELECT n FROM gold.totals"),
                expected_rows,
                "round {round}"
            );
            assert_eq!(
                p.query_i64("SELECT total FROM gold.totals"),
                expected_total,
                "round {round}"
            );
        });
    }
    db.drop_schema().await;
}
