//! The records the state store keeps: runs, tasks, attempts, expectation results, leases and
//! schedule fires.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};

/// How long a `running` run may go without a heartbeat (or, before its first heartbeat, since
/// it started) before it is reported as [`RunStatus::Abandoned`]: its process died.
pub const ABANDONED_AFTER: Duration = Duration::from_secs(120);

/// The state of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Started and still heartbeating.
    Running,
    /// Every task succeeded (or was skipped on purpose).
    Succeeded,
    /// At least one task failed.
    Failed,
    /// Stopped by Ctrl-C, SIGTERM or `--fail-fast`.
    Cancelled,
    /// Recorded as running, but with no heartbeat for [`ABANDONED_AFTER`]: the process died.
    /// Never stored; reported by `list_runs` and `get_run`.
    Abandoned,
}

impl RunStatus {
    /// The name stored and shown: `running`, `succeeded`, `failed`, `cancelled`, `abandoned`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Abandoned => "abandoned",
        }
    }

    /// Parse a name written by [`RunStatus::as_str`]; `None` for anything else.
    pub fn parse(s: &str) -> Option<RunStatus> {
        Some(match s {
            "running" => RunStatus::Running,
            "succeeded" => RunStatus::Succeeded,
            "failed" => RunStatus::Failed,
            "cancelled" => RunStatus::Cancelled,
            "abandoned" => RunStatus::Abandoned,
            _ => return None,
        })
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state of one task in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Waiting for its dependencies or a free slot.
    Pending,
    /// Running now (possibly a retry).
    Running,
    /// Finished without error.
    Succeeded,
    /// Failed after its last attempt.
    Failed,
    /// Not run: an upstream task failed, or a resumed run had already done it.
    Skipped,
    /// Stopped by cancellation.
    Cancelled,
}

impl TaskStatus {
    /// The name stored and shown: `pending`, `running`, `succeeded`, `failed`, `skipped`,
    /// `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Running => "running",
            TaskStatus::Succeeded => "succeeded",
            TaskStatus::Failed => "failed",
            TaskStatus::Skipped => "skipped",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    /// Parse a name written by [`TaskStatus::as_str`]; `None` for anything else.
    pub fn parse(s: &str) -> Option<TaskStatus> {
        Some(match s {
            "pending" => TaskStatus::Pending,
            "running" => TaskStatus::Running,
            "succeeded" => TaskStatus::Succeeded,
            "failed" => TaskStatus::Failed,
            "skipped" => TaskStatus::Skipped,
            "cancelled" => TaskStatus::Cancelled,
            _ => return None,
        })
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One run of the DAG (or of part of it). Times are stored with microsecond precision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    /// The run's id, e.g. `20250101T120000Z-1a2b3c4d`.
    pub run_id: String,
    /// What started it: `manual`, `api`, `schedule:<name>` or `resume`.
    pub trigger: String,
    /// The `--select` arguments, empty for the whole DAG.
    pub selectors: Vec<String>,
    /// The environment (`--target`), if one was chosen.
    pub target: Option<String>,
    /// Its state; [`RunStatus::Abandoned`] is reported, never stored.
    pub status: RunStatus,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it finished, if it did.
    pub finished_at: Option<DateTime<Utc>>,
    /// Why the run as a whole failed (not the tasks' errors), without secrets.
    pub error: Option<String>,
    /// The run this one resumes (`--resume RUN_ID`).
    pub resumed_from: Option<String>,
    /// The host name of the process that ran it.
    pub host: String,
    /// The process id that ran it.
    pub pid: u32,
}

/// A run with its task counts, as listed by `tributary runs`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    /// The run (status as reported: `abandoned` when its process died).
    pub run: RunRecord,
    /// How many tasks it recorded.
    pub tasks: u32,
    /// How many of them failed.
    pub failed: u32,
    /// How many of them were skipped.
    pub skipped: u32,
    /// Rows written, summed over its tasks.
    pub rows: u64,
    /// From start to finish, for finished runs. Serialized as `duration_secs`, in seconds.
    #[serde(rename = "duration_secs", serialize_with = "serialize_secs")]
    pub duration: Option<Duration>,
}

fn serialize_secs<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

/// One task of a run: a load, a model, a command or an HTTP call. Stored by
/// `(run_id, task_id)`; writing it again replaces it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskRecord {
    /// The run it belongs to.
    pub run_id: String,
    /// The task's id in the DAG, e.g. `bronze.erp_orders` or `silver.orders`.
    pub task_id: String,
    /// `load`, `model`, `command` or `http`.
    pub kind: String,
    /// Its state.
    pub status: TaskStatus,
    /// When its first attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When its last attempt finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// How many attempts it made (0 before it starts).
    pub attempts: u32,
    /// Rows written (loads, models).
    pub rows: Option<u64>,
    /// Bytes read from the source, when known.
    pub bytes: Option<u64>,
    /// The Delta table version it committed.
    pub version: Option<i64>,
    /// The last attempt's error, without secrets.
    pub error: Option<String>,
    /// The last error's class (see [`crate::ErrorClass::as_str`]).
    pub error_class: Option<String>,
    /// Free-form details: mode, rows inserted / updated / quarantined, … (`{}` when none).
    pub detail: serde_json::Value,
}

/// One attempt of a task. Stored by `(run_id, task_id, attempt)`; writing it again replaces it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptRecord {
    /// The run it belongs to.
    pub run_id: String,
    /// The task it belongs to.
    pub task_id: String,
    /// Which attempt, from 1.
    pub attempt: u32,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it finished, if it did.
    pub finished_at: Option<DateTime<Utc>>,
    /// How it ended (or `running`).
    pub status: TaskStatus,
    /// Its error, without secrets.
    pub error: Option<String>,
    /// Its error's class (see [`crate::ErrorClass::as_str`]).
    pub error_class: Option<String>,
}

/// The outcome of one expectation (data-quality rule) of a model in a run. Stored by
/// `(run_id, model, expectation)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExpectationRecord {
    /// The run that checked it.
    pub run_id: String,
    /// The model, e.g. `silver.orders`.
    pub model: String,
    /// The expectation's name.
    pub expectation: String,
    /// The rule, as written.
    pub rule: String,
    /// What failing rows do: `warn`, `drop` or `fail`.
    pub on_fail: String,
    /// Rows checked.
    pub checked_rows: u64,
    /// Rows that broke the rule.
    pub failed_rows: u64,
    /// Whether the expectation passed.
    pub passed: bool,
    /// When it was recorded.
    pub recorded_at: DateTime<Utc>,
}

/// Which runs `list_runs` returns. `limit` 0 means no limit.
#[derive(Debug, Clone, PartialEq)]
pub struct RunFilter {
    /// At most this many runs, newest first (0: all).
    pub limit: usize,
    /// Only runs with this (reported) status; `Abandoned` and `Running` are told apart by the
    /// heartbeat.
    pub status: Option<RunStatus>,
    /// Only runs that include this task id.
    pub task: Option<String>,
    /// Only runs with exactly this trigger (`manual`, `schedule:nightly`, …).
    pub trigger: Option<String>,
}

impl Default for RunFilter {
    /// The 20 newest runs.
    fn default() -> Self {
        RunFilter {
            limit: 20,
            status: None,
            task: None,
            trigger: None,
        }
    }
}

/// One run with everything recorded about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunDetail {
    /// The run and its counts.
    pub run: RunSummary,
    /// Its tasks, by start time (not started last), then id.
    pub tasks: Vec<TaskRecord>,
    /// Every attempt of every task, by task id, then attempt.
    pub attempts: Vec<AttemptRecord>,
    /// Its expectation results, by model, then expectation.
    pub expectations: Vec<ExpectationRecord>,
}

/// Who holds (or wants) a lease: a run in a process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseHolder {
    /// The run.
    pub run_id: String,
    /// The host name of its process.
    pub host: String,
    /// Its process id.
    pub pid: u32,
}

impl fmt::Display for LeaseHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "run {} (pid {} on {})", self.run_id, self.pid, self.host)
    }
}

/// The answer to `acquire_lease`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum LeaseOutcome {
    /// The lease is ours (new, taken over, or extended when we already held it).
    Acquired,
    /// Another live run holds it.
    Held {
        /// Who holds it.
        holder: LeaseHolder,
        /// Since when.
        acquired_at: DateTime<Utc>,
        /// Until when, unless renewed.
        expires_at: DateTime<Utc>,
    },
}

/// One firing of a schedule in `tributary serve`. Stored by `(schedule, fire_time)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScheduleFire {
    /// The schedule's name.
    pub schedule: String,
    /// The time the cron expression named.
    pub fire_time: DateTime<Utc>,
    /// When it was handled.
    pub recorded_at: DateTime<Utc>,
    /// `started`, `skipped_overlap`, `missed` or `error`.
    pub outcome: String,
    /// The run it started, if any.
    pub run_id: Option<String>,
    /// Why it was skipped or failed, without secrets.
    pub note: Option<String>,
}
