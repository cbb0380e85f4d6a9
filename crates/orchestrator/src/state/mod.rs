//! The run-state store: what ran, when, how it ended, and who holds which table.
//!
//! SQLite by default (`state: sqlite://.tributary/state.db`, relative to the project folder, or
//! an absolute path), PostgreSQL for teams (`state: postgres://user:pass@host:port/db`, or
//! `postgresql://…`, with an optional `?schema=NAME`, default `tributary`, created if missing).
//! Both backends run the same SQL and the same versioned migrations, applied automatically on
//! open (see `schema_migrations`); several processes may open one store at once.
//!
//! Load progress (watermarks) is not kept here: it lives in the Delta tables, committed with the
//! data. Losing this store loses history, never data.
//!
//! Times are stored in UTC with microsecond precision. The password of a PostgreSQL URL never
//! appears in errors, logs or [`StateStore::location`].

mod alerts;
mod backend;
mod error;
mod migrations;
mod postgres;
mod sqlite;
mod stats;
mod types;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};

pub use alerts::{AlertStateRecord, DeliveryRecord, IncidentRecord};
use backend::{Backend, DbError, Param, Row, RowReader};
pub use error::StateError;
pub use stats::{DurationHistogram, ExpectationCounts, TaskCount, TaskTotals};
pub use types::{
    ABANDONED_AFTER, AttemptRecord, ExpectationRecord, LeaseHolder, LeaseOutcome, RunDetail,
    RunFilter, RunRecord, RunStatus, RunSummary, ScheduleFire, TaskRecord, TaskStatus,
};

/// One applied schema migration, as recorded in `schema_migrations`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AppliedMigration {
    /// Its version, from 1.
    pub version: u32,
    /// What it does.
    pub description: String,
    /// When it was applied.
    pub applied_at: DateTime<Utc>,
}

/// The run-state store, SQLite or PostgreSQL. Cheap to clone; clones share one connection.
#[derive(Clone)]
pub struct StateStore {
    backend: Backend,
    location: Arc<str>,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("location", &self.location)
            .finish()
    }
}

const RUN_COLUMNS: &str = "r.run_id, r.triggered_by, r.selectors, r.target, r.status, r.started_at,
    r.finished_at, r.heartbeat_at, r.error, r.resumed_from, r.host, r.pid,
    (SELECT COUNT(*) FROM tasks t WHERE t.run_id = r.run_id) AS task_count,
    (SELECT COUNT(*) FROM tasks t WHERE t.run_id = r.run_id AND t.status = 'failed') AS failed_count,
    (SELECT COUNT(*) FROM tasks t WHERE t.run_id = r.run_id AND t.status = 'skipped') AS skipped_count,
    (SELECT CAST(COALESCE(SUM(t.rows), 0) AS BIGINT) FROM tasks t WHERE t.run_id = r.run_id) AS row_count";

const TASK_COLUMNS: &str = "t.run_id, t.task_id, t.kind, t.status, t.started_at, t.finished_at,
    t.attempts, t.rows, t.bytes, t.version, t.error, t.error_class, t.detail";

const EXPECTATION_COLUMNS: &str = "run_id, model, expectation, rule, on_fail, checked_rows, \
    failed_rows, passed, recorded_at";

const FIRE_COLUMNS: &str = "schedule, fire_time, recorded_at, outcome, run_id, note";

/// How many runs an ambiguous prefix error lists.
const AMBIGUOUS_SHOWN: usize = 5;

/// The current time, at the precision the store keeps.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A SQL `LIMIT` for a caller's limit, where 0 means none.
fn limit_param(limit: usize) -> Param {
    Param::Int(Some(if limit == 0 {
        i64::MAX
    } else {
        i64::try_from(limit).unwrap_or(i64::MAX)
    }))
}

impl StateStore {
    /// Open the store named by the project's `state` setting, creating it (SQLite file and
    /// folder, PostgreSQL schema) if needed and applying pending migrations. Relative SQLite
    /// paths are resolved against `project_root`.
    pub async fn open(url: &str, project_root: &Path) -> Result<StateStore, StateError> {
        let url = url.trim();
        if let Some(rest) = url.strip_prefix("sqlite://") {
            let rest = rest.split('?').next().unwrap_or(rest);
            if rest.is_empty() {
                return Err(StateError::InvalidLocation {
                    location: url.to_string(),
                    reason: "no file path after sqlite://".into(),
                });
            }
            let path = if Path::new(rest).is_absolute() {
                PathBuf::from(rest)
            } else {
                project_root.join(rest)
            };
            let location = format!("sqlite://{}", path.display());
            let store = sqlite::SqliteStore::open(path, location.clone()).await?;
            Ok(StateStore {
                backend: Backend::Sqlite(Arc::new(store)),
                location: location.into(),
            })
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let loc = postgres::parse_location(url)?;
            let location = loc.location.clone();
            let store = postgres::PgStore::open(loc).await?;
            Ok(StateStore {
                backend: Backend::Postgres(Arc::new(store)),
                location: location.into(),
            })
        } else {
            Err(StateError::InvalidLocation {
                location: tributary_core::redact::redact_url(url),
                reason: "unknown scheme".into(),
            })
        }
    }

    /// Where the store is, password redacted, for messages.
    pub fn location(&self) -> String {
        self.location.to_string()
    }

    fn failed(&self, operation: impl Into<String>) -> impl FnOnce(DbError) -> StateError + '_ {
        let operation = operation.into();
        move |e| StateError::Query {
            location: self.location.to_string(),
            operation,
            message: e.message,
            connection_lost: e.connection_lost,
        }
    }

    fn out_of_range(&self, operation: &str, field: &str, value: impl ToString) -> StateError {
        StateError::OutOfRange {
            location: self.location.to_string(),
            operation: operation.to_string(),
            field: field.to_string(),
            value: value.to_string(),
        }
    }

    fn count(&self, operation: &str, field: &str, v: u64) -> Result<i64, StateError> {
        i64::try_from(v).map_err(|_| self.out_of_range(operation, field, v))
    }

    fn opt_count(&self, operation: &str, field: &str, v: Option<u64>) -> Result<Param, StateError> {
        Ok(Param::Int(
            v.map(|v| self.count(operation, field, v)).transpose()?,
        ))
    }

    async fn execute(
        &self,
        operation: &str,
        sql: &str,
        params: Vec<Param>,
    ) -> Result<u64, StateError> {
        self.backend
            .execute(sql, params)
            .await
            .map_err(self.failed(operation))
    }

    async fn query(
        &self,
        operation: &str,
        sql: &str,
        params: Vec<Param>,
    ) -> Result<Vec<Row>, StateError> {
        self.backend
            .query(sql, params)
            .await
            .map_err(self.failed(operation))
    }

    /// The store's schema version (the newest applied migration).
    pub async fn schema_version(&self) -> Result<u32, StateError> {
        let rows = self
            .query(
                "schema_version",
                "SELECT CAST(COALESCE(MAX(version), 0) AS BIGINT) AS version FROM schema_migrations",
                vec![],
            )
            .await?;
        match rows.first() {
            Some(row) => {
                RowReader::new(row, "schema_migrations", &[], &self.location).u32("version")
            }
            None => Ok(0),
        }
    }

    /// Every applied migration, oldest first.
    pub async fn applied_migrations(&self) -> Result<Vec<AppliedMigration>, StateError> {
        let rows = self
            .query(
                "applied_migrations",
                "SELECT version, description, applied_at FROM schema_migrations ORDER BY version",
                vec![],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let r = RowReader::new(row, "schema_migrations", &["version"], &self.location);
                Ok(AppliedMigration {
                    version: r.u32("version")?,
                    description: r.text("description")?,
                    applied_at: r.time("applied_at")?,
                })
            })
            .collect()
    }

    // ---- runs ----

    /// Record a new run. Fails if the run id exists.
    pub async fn create_run(&self, run: &RunRecord) -> Result<(), StateError> {
        let op = format!("create_run {}", run.run_id);
        self.execute(
            &op,
            "INSERT INTO runs (run_id, triggered_by, selectors, target, status, started_at,
                finished_at, heartbeat_at, error, resumed_from, host, pid)
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8, $9, $10, $11)",
            vec![
                run.run_id.as_str().into(),
                run.trigger.as_str().into(),
                serde_json::json!(run.selectors).into(),
                run.target.as_deref().into(),
                run.status.as_str().into(),
                run.started_at.into(),
                run.finished_at.into(),
                run.error.as_deref().into(),
                run.resumed_from.as_deref().into(),
                run.host.as_str().into(),
                i64::from(run.pid).into(),
            ],
        )
        .await?;
        Ok(())
    }

    /// Record that a run's process is alive. A `running` run without a heartbeat for
    /// [`ABANDONED_AFTER`] is reported as abandoned.
    pub async fn heartbeat(&self, run_id: &str, at: DateTime<Utc>) -> Result<(), StateError> {
        let n = self
            .execute(
                &format!("heartbeat {run_id}"),
                "UPDATE runs SET heartbeat_at = $2 WHERE run_id = $1",
                vec![run_id.into(), at.into()],
            )
            .await?;
        self.require_run(n, run_id, "heartbeat")
    }

    fn require_run(&self, changed: u64, run_id: &str, operation: &str) -> Result<(), StateError> {
        if changed == 0 {
            return Err(StateError::UnknownRun {
                location: self.location.to_string(),
                run_id: run_id.to_string(),
                operation: operation.to_string(),
            });
        }
        Ok(())
    }

    /// Record how a run ended (`error`: why the run as a whole failed, if it did).
    pub async fn finish_run(
        &self,
        run_id: &str,
        status: RunStatus,
        finished_at: DateTime<Utc>,
        error: Option<&str>,
    ) -> Result<(), StateError> {
        let n = self
            .execute(
                &format!("finish_run {run_id}"),
                "UPDATE runs SET status = $2, finished_at = $3, error = $4 WHERE run_id = $1",
                vec![
                    run_id.into(),
                    status.as_str().into(),
                    finished_at.into(),
                    error.into(),
                ],
            )
            .await?;
        self.require_run(n, run_id, "finish")
    }

    /// Insert or replace a task, by `(run_id, task_id)`.
    pub async fn upsert_task(&self, task: &TaskRecord) -> Result<(), StateError> {
        let op = format!("upsert_task {} of run {}", task.task_id, task.run_id);
        let params = vec![
            task.run_id.as_str().into(),
            task.task_id.as_str().into(),
            task.kind.as_str().into(),
            task.status.as_str().into(),
            task.started_at.into(),
            task.finished_at.into(),
            i64::from(task.attempts).into(),
            self.opt_count(&op, "rows", task.rows)?,
            self.opt_count(&op, "bytes", task.bytes)?,
            task.version.into(),
            task.error.as_deref().into(),
            task.error_class.as_deref().into(),
            task.detail.clone().into(),
        ];
        self.execute(
            &op,
            "INSERT INTO tasks (run_id, task_id, kind, status, started_at, finished_at, attempts,
                rows, bytes, version, error, error_class, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT (run_id, task_id) DO UPDATE SET
                kind = EXCLUDED.kind, status = EXCLUDED.status, started_at = EXCLUDED.started_at,
                finished_at = EXCLUDED.finished_at, attempts = EXCLUDED.attempts,
                rows = EXCLUDED.rows, bytes = EXCLUDED.bytes, version = EXCLUDED.version,
                error = EXCLUDED.error, error_class = EXCLUDED.error_class, detail = EXCLUDED.detail",
            params,
        )
        .await?;
        Ok(())
    }

    /// Insert or replace an attempt, by `(run_id, task_id, attempt)`.
    pub async fn record_attempt(&self, a: &AttemptRecord) -> Result<(), StateError> {
        let op = format!(
            "record_attempt {} of {} in run {}",
            a.attempt, a.task_id, a.run_id
        );
        self.execute(
            &op,
            "INSERT INTO attempts (run_id, task_id, attempt, started_at, finished_at, status, error,
                error_class)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (run_id, task_id, attempt) DO UPDATE SET
                started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at,
                status = EXCLUDED.status, error = EXCLUDED.error, error_class = EXCLUDED.error_class",
            vec![
                a.run_id.as_str().into(),
                a.task_id.as_str().into(),
                i64::from(a.attempt).into(),
                a.started_at.into(),
                a.finished_at.into(),
                a.status.as_str().into(),
                a.error.as_deref().into(),
                a.error_class.as_deref().into(),
            ],
        )
        .await?;
        Ok(())
    }

    /// Insert or replace an expectation result, by `(run_id, model, expectation)`.
    pub async fn record_expectation(&self, e: &ExpectationRecord) -> Result<(), StateError> {
        let op = format!(
            "record_expectation {} of {} in run {}",
            e.expectation, e.model, e.run_id
        );
        let params = vec![
            e.run_id.as_str().into(),
            e.model.as_str().into(),
            e.expectation.as_str().into(),
            e.rule.as_str().into(),
            e.on_fail.as_str().into(),
            self.count(&op, "checked_rows", e.checked_rows)?.into(),
            self.count(&op, "failed_rows", e.failed_rows)?.into(),
            e.passed.into(),
            e.recorded_at.into(),
        ];
        self.execute(
            &op,
            "INSERT INTO expectations (run_id, model, expectation, rule, on_fail, checked_rows,
                failed_rows, passed, recorded_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (run_id, model, expectation) DO UPDATE SET
                rule = EXCLUDED.rule, on_fail = EXCLUDED.on_fail,
                checked_rows = EXCLUDED.checked_rows, failed_rows = EXCLUDED.failed_rows,
                passed = EXCLUDED.passed, recorded_at = EXCLUDED.recorded_at",
            params,
        )
        .await?;
        Ok(())
    }

    fn read_summary(&self, row: &Row, now: DateTime<Utc>) -> Result<RunSummary, StateError> {
        let r = RowReader::new(row, "runs", &["run_id"], &self.location);
        let run_id = r.text("run_id")?;
        let status_text = r.text("status")?;
        let mut status = RunStatus::parse(&status_text)
            .ok_or_else(|| r.invalid("status", status_text.as_str(), "not a run status"))?;
        let started_at = r.time("started_at")?;
        let last_seen = r.opt_time("heartbeat_at")?.unwrap_or(started_at);
        if status == RunStatus::Running && is_stale(last_seen, now) {
            status = RunStatus::Abandoned;
        }
        let selectors = r.json("selectors")?;
        let selectors = serde_json::from_value::<Vec<String>>(selectors.clone()).map_err(|e| {
            r.invalid(
                "selectors",
                selectors.to_string(),
                format!("not a list of strings: {e}"),
            )
        })?;
        let finished_at = r.opt_time("finished_at")?;
        let duration = finished_at.and_then(|f| (f - started_at).to_std().ok());
        Ok(RunSummary {
            run: RunRecord {
                run_id,
                trigger: r.text("triggered_by")?,
                selectors,
                target: r.opt_text("target")?,
                status,
                started_at,
                finished_at,
                error: r.opt_text("error")?,
                resumed_from: r.opt_text("resumed_from")?,
                host: r.text("host")?,
                pid: r.u32("pid")?,
            },
            tasks: r.u32("task_count")?,
            failed: r.u32("failed_count")?,
            skipped: r.u32("skipped_count")?,
            rows: r.u64("row_count")?,
            duration,
        })
    }

    /// Runs, newest first, filtered.
    pub async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunSummary>, StateError> {
        let now = now();
        let mut params: Vec<Param> = Vec::new();
        let mut conditions: Vec<String> = Vec::new();
        let mut push = |p: Param| {
            params.push(p);
            format!("${}", params.len())
        };
        match filter.status {
            Some(RunStatus::Running) => {
                let cutoff = push(stale_cutoff(now).into());
                conditions.push(format!(
                    "r.status = 'running' AND COALESCE(r.heartbeat_at, r.started_at) >= {cutoff}"
                ));
            }
            Some(RunStatus::Abandoned) => {
                let cutoff = push(stale_cutoff(now).into());
                conditions.push(format!(
                    "(r.status = 'abandoned' OR (r.status = 'running' AND COALESCE(r.heartbeat_at, r.started_at) < {cutoff}))"
                ));
            }
            Some(other) => {
                let s = push(other.as_str().into());
                conditions.push(format!("r.status = {s}"));
            }
            None => {}
        }
        if let Some(task) = &filter.task {
            let t = push(task.as_str().into());
            conditions.push(format!(
                "EXISTS (SELECT 1 FROM tasks t WHERE t.run_id = r.run_id AND t.task_id = {t})"
            ));
        }
        if let Some(trigger) = &filter.trigger {
            let t = push(trigger.as_str().into());
            conditions.push(format!("r.triggered_by = {t}"));
        }
        let limit = push(limit_param(filter.limit));
        let where_clause = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs r {where_clause}
             ORDER BY r.started_at DESC, r.run_id DESC LIMIT {limit}"
        );
        let rows = self.query("list_runs", &sql, params).await?;
        rows.iter().map(|row| self.read_summary(row, now)).collect()
    }

    /// Resolve a run id or a unique prefix of one. `Ok(None)` when nothing matches.
    async fn resolve_run_id(&self, id_or_prefix: &str) -> Result<Option<String>, StateError> {
        if id_or_prefix.is_empty() {
            return Ok(None);
        }
        let op = format!("get_run {id_or_prefix}");
        let exact = self
            .query(
                &op,
                "SELECT run_id FROM runs WHERE run_id = $1",
                vec![id_or_prefix.into()],
            )
            .await?;
        if !exact.is_empty() {
            return Ok(Some(id_or_prefix.to_string()));
        }
        let rows = self
            .query(
                &op,
                "SELECT run_id FROM runs
                 WHERE substr(run_id, 1, length(CAST($1 AS TEXT))) = CAST($1 AS TEXT)
                 ORDER BY run_id LIMIT $2",
                vec![id_or_prefix.into(), limit_param(AMBIGUOUS_SHOWN + 1)],
            )
            .await?;
        let mut ids = rows
            .iter()
            .map(|row| RowReader::new(row, "runs", &[], &self.location).text("run_id"))
            .collect::<Result<Vec<_>, _>>()?;
        match ids.len() {
            0 => Ok(None),
            1 => Ok(ids.pop()),
            n => {
                ids.truncate(AMBIGUOUS_SHOWN);
                Err(StateError::AmbiguousRunId {
                    location: self.location.to_string(),
                    prefix: id_or_prefix.to_string(),
                    matches: ids,
                    truncated: n > AMBIGUOUS_SHOWN,
                })
            }
        }
    }

    /// One run with its tasks, attempts and expectation results, by id or unique id prefix.
    /// `Ok(None)` when no run matches; an error when the prefix matches several.
    pub async fn get_run(
        &self,
        run_id_or_unique_prefix: &str,
    ) -> Result<Option<RunDetail>, StateError> {
        let Some(run_id) = self.resolve_run_id(run_id_or_unique_prefix).await? else {
            return Ok(None);
        };
        let now = now();
        let op = format!("get_run {run_id}");
        let rows = self
            .query(
                &op,
                &format!("SELECT {RUN_COLUMNS} FROM runs r WHERE r.run_id = $1"),
                vec![run_id.as_str().into()],
            )
            .await?;
        let Some(row) = rows.first() else {
            // Deleted between the two queries.
            return Ok(None);
        };
        let run = self.read_summary(row, now)?;
        let tasks = self
            .query(
                &op,
                &format!(
                    "SELECT {TASK_COLUMNS} FROM tasks t WHERE t.run_id = $1
                     ORDER BY (t.started_at IS NULL), t.started_at, t.task_id"
                ),
                vec![run_id.as_str().into()],
            )
            .await?
            .iter()
            .map(|row| self.read_task(row))
            .collect::<Result<Vec<_>, _>>()?;
        let attempts = self
            .query(
                &op,
                "SELECT run_id, task_id, attempt, started_at, finished_at, status, error, error_class
                 FROM attempts WHERE run_id = $1 ORDER BY task_id, attempt",
                vec![run_id.as_str().into()],
            )
            .await?
            .iter()
            .map(|row| self.read_attempt(row))
            .collect::<Result<Vec<_>, _>>()?;
        let expectations = self
            .query(
                &op,
                &format!(
                    "SELECT {EXPECTATION_COLUMNS} FROM expectations WHERE run_id = $1
                     ORDER BY model, expectation"
                ),
                vec![run_id.as_str().into()],
            )
            .await?
            .iter()
            .map(|row| self.read_expectation(row))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(RunDetail {
            run,
            tasks,
            attempts,
            expectations,
        }))
    }

    fn task_status(r: &RowReader<'_>) -> Result<TaskStatus, StateError> {
        let s = r.text("status")?;
        TaskStatus::parse(&s).ok_or_else(|| r.invalid("status", s.as_str(), "not a task status"))
    }

    fn read_task(&self, row: &Row) -> Result<TaskRecord, StateError> {
        let r = RowReader::new(row, "tasks", &["run_id", "task_id"], &self.location);
        let run_id = r.text("run_id")?;
        let task_id = r.text("task_id")?;
        let status = Self::task_status(&r)?;
        Ok(TaskRecord {
            kind: r.text("kind")?,
            status,
            started_at: r.opt_time("started_at")?,
            finished_at: r.opt_time("finished_at")?,
            attempts: r.u32("attempts")?,
            rows: r.opt_u64("rows")?,
            bytes: r.opt_u64("bytes")?,
            version: r.opt_i64("version")?,
            error: r.opt_text("error")?,
            error_class: r.opt_text("error_class")?,
            detail: r.json("detail")?,
            run_id,
            task_id,
        })
    }

    fn read_attempt(&self, row: &Row) -> Result<AttemptRecord, StateError> {
        let r = RowReader::new(
            row,
            "attempts",
            &["run_id", "task_id", "attempt"],
            &self.location,
        );
        let run_id = r.text("run_id")?;
        let task_id = r.text("task_id")?;
        let attempt = r.u32("attempt")?;
        let status = Self::task_status(&r)?;
        Ok(AttemptRecord {
            started_at: r.time("started_at")?,
            finished_at: r.opt_time("finished_at")?,
            status,
            error: r.opt_text("error")?,
            error_class: r.opt_text("error_class")?,
            run_id,
            task_id,
            attempt,
        })
    }

    fn read_expectation(&self, row: &Row) -> Result<ExpectationRecord, StateError> {
        let r = RowReader::new(
            row,
            "expectations",
            &["run_id", "model", "expectation"],
            &self.location,
        );
        Ok(ExpectationRecord {
            run_id: r.text("run_id")?,
            model: r.text("model")?,
            expectation: r.text("expectation")?,
            rule: r.text("rule")?,
            on_fail: r.text("on_fail")?,
            checked_rows: r.u64("checked_rows")?,
            failed_rows: r.u64("failed_rows")?,
            passed: r.bool("passed")?,
            recorded_at: r.time("recorded_at")?,
        })
    }

    /// One task's records across runs, newest first (by the task's start, or its run's start
    /// when it never started). `limit` 0 means all.
    pub async fn task_history(
        &self,
        task_id: &str,
        limit: usize,
    ) -> Result<Vec<TaskRecord>, StateError> {
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM tasks t LEFT JOIN runs r ON r.run_id = t.run_id
             WHERE t.task_id = $1
             ORDER BY COALESCE(t.started_at, r.started_at) DESC, t.run_id DESC LIMIT $2"
        );
        self.query(
            &format!("task_history {task_id}"),
            &sql,
            vec![task_id.into(), limit_param(limit)],
        )
        .await?
        .iter()
        .map(|row| self.read_task(row))
        .collect()
    }

    /// Expectation results, newest first, of one model or of all. `limit` 0 means all.
    pub async fn expectation_history(
        &self,
        model: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ExpectationRecord>, StateError> {
        let (sql, params) = match model {
            Some(m) => (
                format!(
                    "SELECT {EXPECTATION_COLUMNS} FROM expectations WHERE model = $1
                     ORDER BY recorded_at DESC, run_id DESC, expectation LIMIT $2"
                ),
                vec![m.into(), limit_param(limit)],
            ),
            None => (
                format!(
                    "SELECT {EXPECTATION_COLUMNS} FROM expectations
                     ORDER BY recorded_at DESC, run_id DESC, model, expectation LIMIT $1"
                ),
                vec![limit_param(limit)],
            ),
        };
        self.query("expectation_history", &sql, params)
            .await?
            .iter()
            .map(|row| self.read_expectation(row))
            .collect()
    }

    // ---- leases ----

    fn expiry(
        &self,
        operation: &str,
        from: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<DateTime<Utc>, StateError> {
        chrono::Duration::from_std(ttl)
            .ok()
            .and_then(|d| from.checked_add_signed(d))
            .ok_or_else(|| self.out_of_range(operation, "ttl", format!("{ttl:?}")))
    }

    /// Take the lease on `resource` (one writer per table across processes) for `ttl`. Granted
    /// when it is free, already ours (then extended), expired, or held by a run that finished
    /// or was abandoned; otherwise the answer names the holder. Atomic: of several processes
    /// racing for one lease, exactly one gets it.
    pub async fn acquire_lease(
        &self,
        resource: &str,
        holder: &LeaseHolder,
        ttl: Duration,
    ) -> Result<LeaseOutcome, StateError> {
        let op = format!("acquire_lease {resource} for run {}", holder.run_id);
        // A lease released between our failed take-over and our look at its holder is free
        // again: try again a few times.
        for _ in 0..5 {
            let now = now();
            let expires_at = self.expiry(&op, now, ttl)?;
            let taken = self
                .query(
                    &op,
                    "INSERT INTO leases (resource, run_id, host, pid, acquired_at, expires_at)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (resource) DO UPDATE SET
                        acquired_at = CASE WHEN leases.run_id = EXCLUDED.run_id
                            THEN leases.acquired_at ELSE EXCLUDED.acquired_at END,
                        run_id = EXCLUDED.run_id, host = EXCLUDED.host, pid = EXCLUDED.pid,
                        expires_at = EXCLUDED.expires_at
                     WHERE leases.run_id = EXCLUDED.run_id
                        OR leases.expires_at <= EXCLUDED.acquired_at
                        OR EXISTS (SELECT 1 FROM runs r WHERE r.run_id = leases.run_id
                            AND (r.status <> 'running'
                                 OR COALESCE(r.heartbeat_at, r.started_at) < $7))
                     RETURNING run_id",
                    vec![
                        resource.into(),
                        holder.run_id.as_str().into(),
                        holder.host.as_str().into(),
                        i64::from(holder.pid).into(),
                        now.into(),
                        expires_at.into(),
                        stale_cutoff(now).into(),
                    ],
                )
                .await?;
            if !taken.is_empty() {
                return Ok(LeaseOutcome::Acquired);
            }
            let rows = self
                .query(
                    &op,
                    "SELECT resource, run_id, host, pid, acquired_at, expires_at FROM leases
                     WHERE resource = $1",
                    vec![resource.into()],
                )
                .await?;
            if let Some(row) = rows.first() {
                let r = RowReader::new(row, "leases", &["resource"], &self.location);
                return Ok(LeaseOutcome::Held {
                    holder: LeaseHolder {
                        run_id: r.text("run_id")?,
                        host: r.text("host")?,
                        pid: r.u32("pid")?,
                    },
                    acquired_at: r.time("acquired_at")?,
                    expires_at: r.time("expires_at")?,
                });
            }
        }
        Err(StateError::Internal {
            location: self.location.to_string(),
            message: format!("{op}: the lease was neither granted nor held after 5 tries"),
        })
    }

    /// Extend every lease held by `run_id` to `ttl` from now.
    pub async fn renew_leases(&self, run_id: &str, ttl: Duration) -> Result<(), StateError> {
        let op = format!("renew_leases of run {run_id}");
        let expires_at = self.expiry(&op, now(), ttl)?;
        self.execute(
            &op,
            "UPDATE leases SET expires_at = $2 WHERE run_id = $1",
            vec![run_id.into(), expires_at.into()],
        )
        .await?;
        Ok(())
    }

    /// Give up the lease on `resource` if `run_id` holds it (a finished task's table).
    pub async fn release_lease(&self, resource: &str, run_id: &str) -> Result<(), StateError> {
        self.execute(
            &format!("release_lease {resource} of run {run_id}"),
            "DELETE FROM leases WHERE resource = $1 AND run_id = $2",
            vec![resource.into(), run_id.into()],
        )
        .await?;
        Ok(())
    }

    /// Give up every lease held by `run_id`.
    pub async fn release_leases(&self, run_id: &str) -> Result<(), StateError> {
        self.execute(
            &format!("release_leases of run {run_id}"),
            "DELETE FROM leases WHERE run_id = $1",
            vec![run_id.into()],
        )
        .await?;
        Ok(())
    }

    // ---- schedules ----

    /// Insert or replace a schedule firing, by `(schedule, fire_time)`.
    pub async fn record_schedule_fire(&self, f: &ScheduleFire) -> Result<(), StateError> {
        self.execute(
            &format!("record_schedule_fire {} at {}", f.schedule, f.fire_time),
            "INSERT INTO schedule_fires (schedule, fire_time, recorded_at, outcome, run_id, note)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (schedule, fire_time) DO UPDATE SET
                recorded_at = EXCLUDED.recorded_at, outcome = EXCLUDED.outcome,
                run_id = EXCLUDED.run_id, note = EXCLUDED.note",
            vec![
                f.schedule.as_str().into(),
                f.fire_time.into(),
                f.recorded_at.into(),
                f.outcome.as_str().into(),
                f.run_id.as_deref().into(),
                f.note.as_deref().into(),
            ],
        )
        .await?;
        Ok(())
    }

    fn read_fire(&self, row: &Row) -> Result<ScheduleFire, StateError> {
        let r = RowReader::new(
            row,
            "schedule_fires",
            &["schedule", "fire_time"],
            &self.location,
        );
        Ok(ScheduleFire {
            schedule: r.text("schedule")?,
            fire_time: r.time("fire_time")?,
            recorded_at: r.time("recorded_at")?,
            outcome: r.text("outcome")?,
            run_id: r.opt_text("run_id")?,
            note: r.opt_text("note")?,
        })
    }

    /// The latest firing (by fire time) of a schedule.
    pub async fn last_schedule_fire(
        &self,
        schedule: &str,
    ) -> Result<Option<ScheduleFire>, StateError> {
        let mut fires = self.schedule_fires(Some(schedule), 1).await?;
        Ok(fires.pop())
    }

    /// Firings, newest fire time first, of one schedule or of all. `limit` 0 means all.
    pub async fn schedule_fires(
        &self,
        schedule: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ScheduleFire>, StateError> {
        let (sql, params) = match schedule {
            Some(s) => (
                format!(
                    "SELECT {FIRE_COLUMNS} FROM schedule_fires WHERE schedule = $1
                     ORDER BY fire_time DESC LIMIT $2"
                ),
                vec![s.into(), limit_param(limit)],
            ),
            None => (
                format!(
                    "SELECT {FIRE_COLUMNS} FROM schedule_fires
                     ORDER BY fire_time DESC, schedule LIMIT $1"
                ),
                vec![limit_param(limit)],
            ),
        };
        self.query("schedule_fires", &sql, params)
            .await?
            .iter()
            .map(|row| self.read_fire(row))
            .collect()
    }
}

/// Before this instant, a running run's last sign of life means its process died.
fn stale_cutoff(now: DateTime<Utc>) -> DateTime<Utc> {
    chrono::Duration::from_std(ABANDONED_AFTER)
        .ok()
        .and_then(|d| now.checked_sub_signed(d))
        .unwrap_or(now)
}

fn is_stale(last_seen: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    last_seen < stale_cutoff(now)
}
