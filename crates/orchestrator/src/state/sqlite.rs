//! The SQLite backend: one connection behind a mutex, used from blocking threads. Several
//! processes may share the file (WAL journal, a busy timeout, `BEGIN IMMEDIATE` for migrations).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, Transaction, TransactionBehavior, params};

use super::backend::{Cell, DbError, Param, Row, format_time, parse_time, sqlite_placeholders};
use super::error::StateError;
use super::migrations::{self, LEGACY_MARKER, MIGRATIONS, MIGRATIONS_TABLE, SQLITE};

/// How long a statement waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// A SQLite state store.
pub(crate) struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Open (creating) the file and bring its schema up to date.
    pub(crate) async fn open(path: PathBuf, location: String) -> Result<SqliteStore, StateError> {
        let loc = location.clone();
        tokio::task::spawn_blocking(move || open_blocking(&path, &loc))
            .await
            .map_err(|e| StateError::Internal {
                location,
                message: format!("the task opening the state store failed: {e}"),
            })?
    }

    async fn with_conn<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|_| DbError {
                message: "the connection is unusable after an earlier call panicked".into(),
                connection_lost: false,
            })?;
            f(&mut guard).map_err(|e| DbError {
                message: e.to_string(),
                connection_lost: false,
            })
        })
        .await
        .map_err(|e| DbError {
            message: format!("the state store task failed: {e}"),
            connection_lost: false,
        })?
    }

    pub(crate) async fn execute(&self, sql: &str, params: Vec<Param>) -> Result<u64, DbError> {
        let sql = sqlite_placeholders(sql);
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let n = stmt.execute(rusqlite::params_from_iter(params.into_iter().map(to_value)))?;
            Ok(n as u64)
        })
        .await
    }

    pub(crate) async fn query(&self, sql: &str, params: Vec<Param>) -> Result<Vec<Row>, DbError> {
        let sql = sqlite_placeholders(sql);
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let names: Arc<[String]> = stmt.column_names().into_iter().map(String::from).collect();
            let width = names.len();
            let mut rows =
                stmt.query(rusqlite::params_from_iter(params.into_iter().map(to_value)))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let mut cells = Vec::with_capacity(width);
                for i in 0..width {
                    cells.push(to_cell(row.get_ref(i)?)?);
                }
                out.push(Row {
                    names: Arc::clone(&names),
                    cells,
                });
            }
            Ok(out)
        })
        .await
    }
}

fn to_value(p: Param) -> Value {
    match p {
        Param::Text(Some(s)) => Value::Text(s),
        Param::Int(Some(i)) => Value::Integer(i),
        Param::Bool(b) => Value::Integer(i64::from(b)),
        Param::Time(Some(t)) => Value::Text(format_time(t)),
        Param::Json(v) => Value::Text(v.to_string()),
        Param::Text(None) | Param::Int(None) | Param::Time(None) => Value::Null,
    }
}

fn to_cell(v: ValueRef<'_>) -> rusqlite::Result<Cell> {
    Ok(match v {
        ValueRef::Null => Cell::Null,
        ValueRef::Integer(i) => Cell::Int(i),
        ValueRef::Real(f) => Cell::Real(f),
        ValueRef::Text(t) => match std::str::from_utf8(t) {
            Ok(s) => Cell::Text(s.to_string()),
            Err(e) => return Err(rusqlite::Error::Utf8Error(e)),
        },
        ValueRef::Blob(_) => Cell::Text("<binary>".into()),
    })
}

fn open_blocking(path: &Path, location: &str) -> Result<SqliteStore, StateError> {
    let unavailable = |message: String| StateError::Unavailable {
        location: location.to_string(),
        message,
    };
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(|e| {
            unavailable(format!(
                "cannot create the folder {}: {e}",
                parent.display()
            ))
        })?;
    }
    let mut conn = Connection::open(path).map_err(|e| unavailable(e.to_string()))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| unavailable(e.to_string()))?;
    // Switching a new file to WAL takes an exclusive lock that SQLite does not wait for with
    // the busy handler: when another process is opening the same new store, retry until
    // the busy timeout.
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.execute_batch("PRAGMA journal_mode=WAL") {
            Ok(()) => break,
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => {
                return Err(unavailable(format!(
                    "cannot switch to the WAL journal: {e}"
                )));
            }
        }
    }
    migrate(&mut conn, location)?;
    Ok(SqliteStore {
        conn: Arc::new(Mutex::new(conn)),
    })
}

/// Apply every pending migration in one `BEGIN IMMEDIATE` transaction.
fn migrate(conn: &mut Connection, location: &str) -> Result<(), StateError> {
    let prepare_failed = |e: rusqlite::Error| StateError::Query {
        location: location.to_string(),
        operation: "reading the schema version".into(),
        message: e.to_string(),
        connection_lost: false,
    };
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(prepare_failed)?;
    tx.execute_batch(&migrations::render(MIGRATIONS_TABLE, &SQLITE))
        .map_err(prepare_failed)?;
    let current: i64 = tx
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )
        .map_err(prepare_failed)?;
    let known = migrations::latest_version();
    if current > i64::from(known) {
        return Err(StateError::TooNew {
            location: location.to_string(),
            found: u32::try_from(current).unwrap_or(u32::MAX),
            known,
        });
    }
    let mut applied = false;
    for m in MIGRATIONS.iter().filter(|m| i64::from(m.version) > current) {
        let failed = |message: String| StateError::Migration {
            location: location.to_string(),
            version: m.version,
            description: m.description.to_string(),
            message,
        };
        let now = Utc::now().trunc_subsecs(6);
        let legacy = m.version == 1
            && tx
                .query_row(LEGACY_MARKER, [], |r| r.get::<_, i64>(0))
                .map_err(|e| failed(e.to_string()))?
                > 0;
        if legacy {
            set_legacy_aside(&tx).map_err(|e| failed(e.to_string()))?;
        }
        tx.execute_batch(&migrations::render(m.ddl, &SQLITE))
            .map_err(|e| failed(e.to_string()))?;
        if legacy {
            upgrade_legacy(&tx, now).map_err(failed)?;
        }
        tx.execute(
            "INSERT INTO schema_migrations (version, description, applied_at) VALUES (?1, ?2, ?3)",
            params![i64::from(m.version), m.description, format_time(now)],
        )
        .map_err(|e| failed(e.to_string()))?;
        applied = true;
    }
    tx.commit().map_err(|e| StateError::Query {
        location: location.to_string(),
        operation: "committing the migrations".into(),
        message: e.to_string(),
        connection_lost: false,
    })?;
    if applied {
        tracing::info!(store = %location, version = known, "State store schema migrated.");
    }
    Ok(())
}

/// The tables of the pre-migration store, renamed out of the way of migration 1.
const LEGACY_TABLES: [&str; 3] = ["runs", "table_loads", "expectation_results"];

fn set_legacy_aside(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    for table in LEGACY_TABLES {
        let exists: i64 = tx.query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |r| r.get(0),
        )?;
        if exists > 0 {
            tx.execute_batch(&format!("ALTER TABLE {table} RENAME TO legacy_{table}"))?;
        }
    }
    Ok(())
}

/// A run of the pre-migration store, as needed to convert its loads and expectations.
struct LegacyRun {
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

/// Copy the pre-migration history into the new tables, then drop the old ones. Old runs become
/// `manual` runs; each `table_loads` row becomes a task (`load` for bronze tables, `model`
/// otherwise) with one attempt and its duration in `detail.seconds`; expectation results are
/// dated at their run's end.
fn upgrade_legacy(tx: &Transaction<'_>, now: DateTime<Utc>) -> Result<(), String> {
    let sql_err = |table: &str, e: rusqlite::Error| format!("reading the old {table} table: {e}");
    let time = |table: &str, column: &str, key: &str, v: &str| {
        parse_time(v).map_err(|reason| {
            format!("the old {table} table, column {column}, row {key}: `{v}` is {reason}")
        })
    };
    let has_column = |table: &str, column: &str| -> Result<bool, String> {
        tx.query_row(
            &format!("SELECT COUNT(*) FROM pragma_table_info('legacy_{table}') WHERE name = ?1"),
            [column],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
        .map_err(|e| sql_err(table, e))
    };

    let mut runs: HashMap<String, LegacyRun> = HashMap::new();
    if has_column("runs", "run_id")? {
        let mut stmt = tx
            .prepare("SELECT run_id, started_at, finished_at, status FROM legacy_runs")
            .map_err(|e| sql_err("runs", e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .map_err(|e| sql_err("runs", e))?;
        for row in rows {
            let (run_id, started, finished, status) = row.map_err(|e| sql_err("runs", e))?;
            let started_at = time("runs", "started_at", &run_id, &started)?;
            let finished_at = finished
                .as_deref()
                .map(|f| time("runs", "finished_at", &run_id, f))
                .transpose()?;
            let (new_status, error) = match status.as_str() {
                "ok" | "succeeded" => ("succeeded", None),
                "failed" => ("failed", None),
                "running" => ("running", None),
                other => (
                    "failed",
                    Some(format!("unknown status `{other}` before upgrade")),
                ),
            };
            tx.execute(
                "INSERT INTO runs (run_id, triggered_by, selectors, target, status, started_at,
                    finished_at, heartbeat_at, error, resumed_from, host, pid)
                 VALUES (?1, 'manual', '[]', NULL, ?2, ?3, ?4, NULL, ?5, NULL, '', 0)",
                params![
                    run_id,
                    new_status,
                    format_time(started_at),
                    finished_at.map(format_time),
                    error
                ],
            )
            .map_err(|e| format!("copying old run {run_id}: {e}"))?;
            runs.insert(
                run_id,
                LegacyRun {
                    started_at,
                    finished_at,
                },
            );
        }
    }

    if has_column("table_loads", "target")? {
        let mut stmt = tx
            .prepare(
                "SELECT run_id, target, status, rows, version, seconds, error FROM legacy_table_loads",
            )
            .map_err(|e| sql_err("table_loads", e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                    r.get::<_, Option<f64>>(5)?,
                    r.get::<_, Option<String>>(6)?,
                ))
            })
            .map_err(|e| sql_err("table_loads", e))?;
        for row in rows {
            let (run_id, target, status, count, version, seconds, error) =
                row.map_err(|e| sql_err("table_loads", e))?;
            let kind = if target.split('.').next() == Some("bronze") {
                "load"
            } else {
                "model"
            };
            let status = match status.as_str() {
                "ok" | "succeeded" => "succeeded",
                "skipped" => "skipped",
                _ => "failed",
            };
            let detail = match seconds {
                Some(s) => serde_json::json!({ "seconds": s }),
                None => serde_json::json!({}),
            };
            let run = runs.get(&run_id);
            let started = run.map(|r| format_time(r.started_at));
            let finished = run.and_then(|r| r.finished_at).map(format_time);
            tx.execute(
                "INSERT INTO tasks (run_id, task_id, kind, status, started_at, finished_at, attempts,
                    rows, bytes, version, error, error_class, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, NULL, ?8, ?9, NULL, ?10)",
                params![
                    run_id,
                    target,
                    kind,
                    status,
                    started,
                    finished,
                    count,
                    version,
                    error,
                    detail.to_string()
                ],
            )
            .map_err(|e| format!("copying old load {target} of run {run_id}: {e}"))?;
            if let Some(started) = started {
                tx.execute(
                    "INSERT INTO attempts (run_id, task_id, attempt, started_at, finished_at, status,
                        error, error_class)
                     VALUES (?1, ?2, 1, ?3, ?4, ?5, ?6, NULL)",
                    params![run_id, target, started, finished, status, error],
                )
                .map_err(|e| format!("copying old load {target} of run {run_id}: {e}"))?;
            }
        }
    }

    if has_column("expectation_results", "expectation")? {
        let mut stmt = tx
            .prepare(
                "SELECT run_id, model, expectation, rule, on_fail, checked_rows, failed_rows, passed
                 FROM legacy_expectation_results",
            )
            .map_err(|e| sql_err("expectation_results", e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, bool>(7)?,
                ))
            })
            .map_err(|e| sql_err("expectation_results", e))?;
        for row in rows {
            let (run_id, model, expectation, rule, on_fail, checked, failed, passed) =
                row.map_err(|e| sql_err("expectation_results", e))?;
            let recorded_at = runs
                .get(&run_id)
                .map(|r| r.finished_at.unwrap_or(r.started_at))
                .unwrap_or(now);
            tx.execute(
                "INSERT INTO expectations (run_id, model, expectation, rule, on_fail, checked_rows,
                    failed_rows, passed, recorded_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    run_id,
                    model,
                    expectation,
                    rule,
                    on_fail,
                    checked,
                    failed,
                    passed,
                    format_time(recorded_at)
                ],
            )
            .map_err(|e| format!("copying old expectation {expectation} of {model}: {e}"))?;
        }
    }

    for table in LEGACY_TABLES {
        tx.execute_batch(&format!("DROP TABLE IF EXISTS legacy_{table}"))
            .map_err(|e| format!("dropping the old {table} table: {e}"))?;
    }
    Ok(())
}
