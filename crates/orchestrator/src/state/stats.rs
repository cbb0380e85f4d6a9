//! Aggregates over the whole history, for `/metrics` and the dashboard: counted by the database,
//! so that their cost does not grow with what is sent back.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::backend::{Backend, RowReader};
use super::{RunStatus, TaskRecord, TaskStatus};
use super::{StateError, StateStore, TASK_COLUMNS, now, stale_cutoff};

/// How many tasks of one kind ended (or are) in one status, over every run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskCount {
    /// `load`, `model`, `command` or `http`.
    pub kind: String,
    /// The task status.
    pub status: TaskStatus,
    /// How many task records.
    pub count: u64,
}

/// The durations of one task's finished records (succeeded or failed), as a cumulative histogram.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DurationHistogram {
    /// The task id.
    pub task_id: String,
    /// `(upper bound in seconds, records at most that long)`, one per bound asked for, in order.
    pub buckets: Vec<(f64, u64)>,
    /// How many records.
    pub count: u64,
    /// Their durations, summed, in seconds.
    pub sum_secs: f64,
}

/// Totals of one task's succeeded records.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskTotals {
    /// The task id.
    pub task_id: String,
    /// Succeeded records.
    pub succeeded: u64,
    /// Rows written, summed.
    pub rows: u64,
    /// Bytes written, summed.
    pub bytes: u64,
    /// When the latest succeeded record finished.
    pub last_success: Option<DateTime<Utc>>,
}

/// Outcomes of one expectation over every run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpectationCounts {
    /// The model.
    pub model: String,
    /// The expectation's name.
    pub expectation: String,
    /// Runs that checked it.
    pub checks: u64,
    /// Runs in which it failed.
    pub failures: u64,
    /// Rows that broke it, summed over the runs.
    pub failed_rows: u64,
}

impl StateStore {
    /// The duration of a task record in seconds, as this backend computes it.
    fn duration_sql(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "((julianday(finished_at) - julianday(started_at)) * 86400.0)",
            Backend::Postgres(_) => {
                "CAST(EXTRACT(EPOCH FROM (finished_at - started_at)) AS DOUBLE PRECISION)"
            }
        }
    }

    /// How many runs have each (reported) status: a `running` run without a heartbeat for
    /// [`super::ABANDONED_AFTER`] counts as `abandoned`, as `list_runs` reports it.
    pub async fn run_counts(&self) -> Result<Vec<(RunStatus, u64)>, StateError> {
        let sql = "SELECT CASE WHEN status = 'running' AND COALESCE(heartbeat_at, started_at) < $1
                    THEN 'abandoned' ELSE status END AS reported,
                    CAST(COUNT(*) AS BIGINT) AS n
                 FROM runs GROUP BY 1 ORDER BY 1";
        let rows = self
            .query("run_counts", sql, vec![stale_cutoff(now()).into()])
            .await?;
        rows.iter()
            .map(|row| {
                let r = RowReader::new(row, "runs", &["reported"], &self.location);
                let s = r.text("reported")?;
                let status = RunStatus::parse(&s)
                    .ok_or_else(|| r.invalid("status", s.as_str(), "not a run status"))?;
                Ok((status, r.u64("n")?))
            })
            .collect()
    }

    /// How many task records have each kind and status, over every run.
    pub async fn task_counts(&self) -> Result<Vec<TaskCount>, StateError> {
        let sql = "SELECT kind, status, CAST(COUNT(*) AS BIGINT) AS n FROM tasks
                 GROUP BY kind, status ORDER BY kind, status";
        let rows = self.query("task_counts", sql, vec![]).await?;
        rows.iter()
            .map(|row| {
                let r = RowReader::new(row, "tasks", &["kind", "status"], &self.location);
                Ok(TaskCount {
                    kind: r.text("kind")?,
                    status: Self::task_status(&r)?,
                    count: r.u64("n")?,
                })
            })
            .collect()
    }

    /// Per task, a histogram of the durations of its finished records (succeeded or failed)
    /// over the upper `bounds` in seconds (ascending, finite; `+Inf` is the count).
    pub async fn task_duration_histograms(
        &self,
        bounds: &[f64],
    ) -> Result<Vec<DurationHistogram>, StateError> {
        let dur = self.duration_sql();
        let bucket_columns: String = bounds
            .iter()
            .enumerate()
            .filter(|(_, b)| b.is_finite())
            .map(|(i, b)| {
                format!(", CAST(SUM(CASE WHEN d <= {b:?} THEN 1 ELSE 0 END) AS BIGINT) AS b{i}")
            })
            .collect();
        let sql = format!(
            "SELECT task_id, CAST(COUNT(*) AS BIGINT) AS n,
                    CAST(COALESCE(SUM(d), 0) AS DOUBLE PRECISION) AS total{bucket_columns}
             FROM (SELECT task_id, {dur} AS d FROM tasks
                   WHERE started_at IS NOT NULL AND finished_at IS NOT NULL
                     AND status IN ('succeeded', 'failed')) x
             GROUP BY task_id ORDER BY task_id"
        );
        let rows = self.query("task_duration_histograms", &sql, vec![]).await?;
        rows.iter()
            .map(|row| {
                let r = RowReader::new(row, "tasks", &["task_id"], &self.location);
                let buckets = bounds
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| b.is_finite())
                    .map(|(i, b)| Ok((*b, r.u64(&format!("b{i}"))?)))
                    .collect::<Result<Vec<_>, StateError>>()?;
                Ok(DurationHistogram {
                    task_id: r.text("task_id")?,
                    buckets,
                    count: r.u64("n")?,
                    sum_secs: r.f64("total")?.max(0.0),
                })
            })
            .collect()
    }

    /// Per task, the totals of its succeeded records: how many, rows and bytes written, and
    /// when the latest one finished.
    pub async fn task_totals(&self) -> Result<Vec<TaskTotals>, StateError> {
        let sql = "SELECT task_id, CAST(COUNT(*) AS BIGINT) AS n,
                    CAST(COALESCE(SUM(rows), 0) AS BIGINT) AS row_total,
                    CAST(COALESCE(SUM(bytes), 0) AS BIGINT) AS byte_total,
                    MAX(finished_at) AS last_success
                 FROM tasks WHERE status = 'succeeded' GROUP BY task_id ORDER BY task_id";
        let rows = self.query("task_totals", sql, vec![]).await?;
        rows.iter()
            .map(|row| {
                let r = RowReader::new(row, "tasks", &["task_id"], &self.location);
                Ok(TaskTotals {
                    task_id: r.text("task_id")?,
                    succeeded: r.u64("n")?,
                    rows: r.u64("row_total")?,
                    bytes: r.u64("byte_total")?,
                    last_success: r.opt_time("last_success")?,
                })
            })
            .collect()
    }

    /// Per model and expectation: how many runs checked it, in how many it failed, and the
    /// failing rows summed.
    pub async fn expectation_counts(&self) -> Result<Vec<ExpectationCounts>, StateError> {
        let sql = "SELECT model, expectation, CAST(COUNT(*) AS BIGINT) AS checks,
                    CAST(SUM(CASE WHEN passed THEN 0 ELSE 1 END) AS BIGINT) AS failures,
                    CAST(COALESCE(SUM(failed_rows), 0) AS BIGINT) AS failed_row_total
                 FROM expectations GROUP BY model, expectation ORDER BY model, expectation";
        let rows = self.query("expectation_counts", sql, vec![]).await?;
        rows.iter()
            .map(|row| {
                let r = RowReader::new(
                    row,
                    "expectations",
                    &["model", "expectation"],
                    &self.location,
                );
                Ok(ExpectationCounts {
                    model: r.text("model")?,
                    expectation: r.text("expectation")?,
                    checks: r.u64("checks")?,
                    failures: r.u64("failures")?,
                    failed_rows: r.u64("failed_row_total")?,
                })
            })
            .collect()
    }

    /// Per task, how many retries it made: attempts after the first, over every run.
    pub async fn retry_counts(&self) -> Result<Vec<(String, u64)>, StateError> {
        let sql = "SELECT task_id, CAST(COUNT(*) AS BIGINT) AS n FROM attempts
                 WHERE attempt > 1 GROUP BY task_id ORDER BY task_id";
        let rows = self.query("retry_counts", sql, vec![]).await?;
        rows.iter()
            .map(|row| {
                let r = RowReader::new(row, "attempts", &["task_id"], &self.location);
                Ok((r.text("task_id")?, r.u64("n")?))
            })
            .collect()
    }

    /// Each task's latest record that did something (not `pending` or `skipped`), by the
    /// task's start (or its run's), by task id.
    pub async fn latest_tasks(&self) -> Result<Vec<TaskRecord>, StateError> {
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM (
                SELECT t.*, ROW_NUMBER() OVER (
                    PARTITION BY t.task_id
                    ORDER BY COALESCE(t.started_at, r.started_at) DESC, t.run_id DESC) AS rn
                FROM tasks t JOIN runs r ON r.run_id = t.run_id
                WHERE t.status NOT IN ('pending', 'skipped')) t
             WHERE t.rn = 1 ORDER BY t.task_id"
        );
        self.query("latest_tasks", &sql, vec![])
            .await?
            .iter()
            .map(|row| self.read_task(row))
            .collect()
    }
}
