//! Running the DAG: each task starts as soon as its inputs succeeded, up to `max_parallel` at
//! once and up to a per-connection limit; failed attempts with a retryable error are retried
//! with exponential backoff and jitter; a task that runs past its timeout is stopped; a failed
//! task skips everything downstream while independent branches go on; cancellation (Ctrl-C,
//! SIGTERM, `--fail-fast`) stops starting tasks and gives running ones a grace period.
//!
//! What a task does is the [`TaskRunner`]'s business; what is recorded is the [`Observer`]'s.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::dag::{Dag, TaskKind, TaskNode};
use crate::error::{ErrorClass, TaskError};

/// What a successful task reports.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TaskReport {
    /// Rows written (loaded, inserted + updated), if the task writes a table.
    pub rows: Option<u64>,
    /// Bytes written, where known.
    pub bytes: Option<u64>,
    /// The table version committed, if any.
    pub version: Option<i64>,
    /// Anything else worth keeping (mode, inserted, updated, quarantined, HTTP status, …).
    pub detail: serde_json::Value,
}

/// Runs one attempt of one task.
#[async_trait]
pub trait TaskRunner: Send + Sync + 'static {
    /// Run `task` (attempt `attempt`, 1-based). Stop promptly and cleanly when `cancel` fires;
    /// the executor drops the future if it does not stop within the grace period.
    async fn run(
        &self,
        task: &TaskNode,
        attempt: u32,
        cancel: CancellationToken,
    ) -> Result<TaskReport, TaskError>;
}

/// How a task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// It succeeded (possibly after retries).
    Succeeded,
    /// Its last attempt failed.
    Failed,
    /// An input failed (or was cancelled), so it did not run.
    Skipped,
    /// The run was cancelled before or while it ran.
    Cancelled,
}

impl TaskState {
    /// `succeeded`, `failed`, `skipped` or `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Succeeded => "succeeded",
            TaskState::Failed => "failed",
            TaskState::Skipped => "skipped",
            TaskState::Cancelled => "cancelled",
        }
    }
}

/// The end of one task.
#[derive(Debug, Clone, Serialize)]
pub struct TaskOutcome {
    /// Task id.
    pub task_id: String,
    /// Its kind.
    pub kind: TaskKind,
    /// How it ended.
    pub state: TaskState,
    /// Start of the first attempt.
    pub started_at: Option<DateTime<Utc>>,
    /// End of the last attempt.
    pub finished_at: Option<DateTime<Utc>>,
    /// Attempts made.
    pub attempts: u32,
    /// The report of the successful attempt.
    pub report: Option<TaskReport>,
    /// The error of the last attempt, or why it was skipped or cancelled.
    pub error: Option<String>,
    /// The error's class.
    pub error_class: Option<ErrorClass>,
}

/// Something that happened during a run, for the state store and the terminal.
#[derive(Debug, Clone)]
pub enum Event {
    /// An attempt started.
    AttemptStarted {
        /// Task id.
        task_id: String,
        /// Task kind.
        kind: TaskKind,
        /// 1-based attempt number.
        attempt: u32,
        /// When.
        at: DateTime<Utc>,
    },
    /// An attempt ended; `retry_in` is set when another attempt follows.
    AttemptFinished {
        /// Task id.
        task_id: String,
        /// 1-based attempt number.
        attempt: u32,
        /// When it started.
        started_at: DateTime<Utc>,
        /// When it ended.
        finished_at: DateTime<Utc>,
        /// The error and its class, if it failed.
        error: Option<(String, ErrorClass)>,
        /// The wait before the next attempt.
        retry_in: Option<Duration>,
    },
    /// A task reached its final state.
    TaskFinished(TaskOutcome),
}

/// Receives every [`Event`] of a run, in order per task.
#[async_trait]
pub trait Observer: Send + Sync + 'static {
    /// Handle one event. Must not fail the run: log problems instead.
    async fn on_event(&self, event: Event);
}

/// Execution settings.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// Tasks at once.
    pub max_parallel: usize,
    /// Tasks per source connection at once, unless `connection_limits` says otherwise.
    pub per_connection: usize,
    /// Per-connection limits.
    pub connection_limits: BTreeMap<String, usize>,
    /// First retry delay (doubled each retry, with jitter).
    pub retry_delay: Duration,
    /// Longest retry delay.
    pub retry_max_delay: Duration,
    /// Cancel everything at the first task failure.
    pub fail_fast: bool,
    /// How long running tasks get to stop after cancellation before they are abandoned.
    pub shutdown_grace: Duration,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            max_parallel: 4,
            per_connection: 2,
            connection_limits: BTreeMap::new(),
            retry_delay: Duration::from_secs(5),
            retry_max_delay: Duration::from_secs(300),
            fail_fast: false,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// How long a timed-out task gets to stop after its cancel token fires.
const TIMEOUT_GRACE: Duration = Duration::from_secs(5);

/// Run `selected` (task ids of `dag`) to completion or cancellation; returns one outcome per
/// selected task, in the order they finished. Dependencies outside `selected` are taken as
/// satisfied (their tables are read as they are).
pub async fn execute(
    dag: &Dag,
    selected: &[String],
    runner: Arc<dyn TaskRunner>,
    observer: Arc<dyn Observer>,
    opts: &ExecOptions,
    cancel: CancellationToken,
) -> Vec<TaskOutcome> {
    let chosen: BTreeSet<&str> = selected.iter().map(|s| s.as_str()).collect();
    // Topological order restricted to the selection.
    let order: Vec<&TaskNode> = dag
        .tasks()
        .filter(|t| chosen.contains(t.id.as_str()))
        .collect();
    let mut waiting_on: HashMap<&str, usize> = order
        .iter()
        .map(|t| {
            (
                t.id.as_str(),
                t.deps
                    .iter()
                    .filter(|d| chosen.contains(d.as_str()))
                    .count(),
            )
        })
        .collect();
    let mut pending: Vec<&TaskNode> = order.clone();
    let mut per_conn: HashMap<String, usize> = HashMap::new();
    let mut running = FuturesUnordered::new();
    let mut handles: HashMap<String, tokio::task::AbortHandle> = HashMap::new();
    let mut outcomes: Vec<TaskOutcome> = Vec::new();
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut grace_deadline: Option<tokio::time::Instant> = None;

    loop {
        // Start what can start.
        if !cancel.is_cancelled() {
            let mut i = 0;
            while i < pending.len() && running.len() < opts.max_parallel.max(1) {
                let t = pending[i];
                let ready = waiting_on.get(t.id.as_str()).copied().unwrap_or(0) == 0;
                let conn_ok = match &t.connection {
                    Some(c) => {
                        let limit = opts
                            .connection_limits
                            .get(c)
                            .copied()
                            .unwrap_or(opts.per_connection)
                            .max(1);
                        per_conn.get(c).copied().unwrap_or(0) < limit
                    }
                    None => true,
                };
                if ready && conn_ok {
                    pending.remove(i);
                    if let Some(c) = &t.connection {
                        *per_conn.entry(c.clone()).or_default() += 1;
                    }
                    let handle = tokio::spawn(run_task(
                        t.clone(),
                        runner.clone(),
                        observer.clone(),
                        opts.clone(),
                        cancel.child_token(),
                    ));
                    handles.insert(t.id.clone(), handle.abort_handle());
                    let id = t.id.clone();
                    let kind = t.kind;
                    running.push(async move { (id, kind, handle.await) });
                } else {
                    i += 1;
                }
            }
        } else if grace_deadline.is_none() {
            grace_deadline = Some(tokio::time::Instant::now() + opts.shutdown_grace);
            info!(
                running = running.len(),
                grace_seconds = opts.shutdown_grace.as_secs(),
                "Run cancelled; waiting for running tasks to stop."
            );
        }
        if running.is_empty() {
            break;
        }
        let next = tokio::select! {
            n = running.next() => n,
            _ = cancel.cancelled(), if grace_deadline.is_none() => continue,
            _ = sleep_until(grace_deadline), if grace_deadline.is_some() => {
                for (id, h) in &handles {
                    if !done.contains(id) {
                        warn!(task = %id, "Task did not stop within the grace period; abandoning it.");
                        h.abort();
                    }
                }
                grace_deadline = Some(tokio::time::Instant::now() + Duration::from_secs(3600));
                continue;
            }
        };
        let Some((id, kind, joined)) = next else {
            break;
        };
        done.insert(id.clone());
        if let Some(t) = dag.get(&id)
            && let Some(c) = &t.connection
            && let Some(n) = per_conn.get_mut(c)
        {
            *n = n.saturating_sub(1);
        }
        let outcome = match joined {
            Ok(o) => o,
            Err(e) => {
                let now = Utc::now();
                let (state, class, msg) = if e.is_cancelled() {
                    (
                        TaskState::Cancelled,
                        ErrorClass::Cancelled,
                        "cancelled: did not stop within the grace period".to_string(),
                    )
                } else {
                    (
                        TaskState::Failed,
                        ErrorClass::Internal,
                        format!(
                            "internal error: the task panicked ({e}). This is a bug in Tributary; please report it"
                        ),
                    )
                };
                let o = TaskOutcome {
                    task_id: id.clone(),
                    kind,
                    state,
                    started_at: None,
                    finished_at: Some(now),
                    attempts: 1,
                    report: None,
                    error: Some(msg),
                    error_class: Some(class),
                };
                observer.on_event(Event::TaskFinished(o.clone())).await;
                o
            }
        };
        if outcome.state == TaskState::Succeeded {
            for c in dag.children(&id) {
                if let Some(n) = waiting_on.get_mut(c.as_str()) {
                    *n = n.saturating_sub(1);
                }
            }
        } else {
            if outcome.state == TaskState::Failed && opts.fail_fast && !cancel.is_cancelled() {
                warn!(task = %id, "Task failed; --fail-fast cancels the run.");
                cancel.cancel();
            }
            // Everything downstream that has not started is skipped.
            let below = dag.descendants(&id);
            let (skip, keep): (Vec<&TaskNode>, Vec<&TaskNode>) =
                pending.into_iter().partition(|t| below.contains(&t.id));
            pending = keep;
            for t in skip {
                let why = if outcome.state == TaskState::Failed {
                    format!("skipped: upstream {id} failed")
                } else {
                    format!("skipped: upstream {id} was {}", outcome.state.as_str())
                };
                let o = TaskOutcome {
                    task_id: t.id.clone(),
                    kind: t.kind,
                    state: TaskState::Skipped,
                    started_at: None,
                    finished_at: None,
                    attempts: 0,
                    report: None,
                    error: Some(why),
                    error_class: None,
                };
                observer.on_event(Event::TaskFinished(o.clone())).await;
                done.insert(t.id.clone());
                outcomes.push(o);
            }
        }
        outcomes.push(outcome);
    }
    // Cancelled before starting.
    for t in pending {
        let o = TaskOutcome {
            task_id: t.id.clone(),
            kind: t.kind,
            state: TaskState::Cancelled,
            started_at: None,
            finished_at: None,
            attempts: 0,
            report: None,
            error: Some("cancelled before it started".into()),
            error_class: Some(ErrorClass::Cancelled),
        };
        observer.on_event(Event::TaskFinished(o.clone())).await;
        outcomes.push(o);
    }
    outcomes
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Every attempt of one task.
async fn run_task(
    task: TaskNode,
    runner: Arc<dyn TaskRunner>,
    observer: Arc<dyn Observer>,
    opts: ExecOptions,
    cancel: CancellationToken,
) -> TaskOutcome {
    let mut first_start = None;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let started_at = Utc::now();
        first_start.get_or_insert(started_at);
        observer
            .on_event(Event::AttemptStarted {
                task_id: task.id.clone(),
                kind: task.kind,
                attempt,
                at: started_at,
            })
            .await;
        let attempt_token = cancel.child_token();
        let result = run_attempt(&task, attempt, runner.as_ref(), attempt_token).await;
        let finished_at = Utc::now();
        let finish = |state: TaskState,
                      report: Option<TaskReport>,
                      error: Option<(String, ErrorClass)>| TaskOutcome {
            task_id: task.id.clone(),
            kind: task.kind,
            state,
            started_at: first_start,
            finished_at: Some(finished_at),
            attempts: attempt,
            report,
            error_class: error.as_ref().map(|(_, c)| *c),
            error: error.map(|(m, _)| m),
        };
        match result {
            Ok(report) => {
                observer
                    .on_event(Event::AttemptFinished {
                        task_id: task.id.clone(),
                        attempt,
                        started_at,
                        finished_at,
                        error: None,
                        retry_in: None,
                    })
                    .await;
                let o = finish(TaskState::Succeeded, Some(report), None);
                observer.on_event(Event::TaskFinished(o.clone())).await;
                return o;
            }
            Err(e) => {
                let class = if cancel.is_cancelled() {
                    ErrorClass::Cancelled
                } else {
                    e.class
                };
                let message = e.to_string();
                let retry_in = (class.is_retryable() && attempt <= task.retries)
                    .then(|| backoff(&opts, attempt).max(e.retry_after.unwrap_or_default()));
                observer
                    .on_event(Event::AttemptFinished {
                        task_id: task.id.clone(),
                        attempt,
                        started_at,
                        finished_at,
                        error: Some((message.clone(), class)),
                        retry_in,
                    })
                    .await;
                if let Some(wait) = retry_in {
                    warn!(task = %task.id, attempt, error_class = %class, retry_in_seconds = wait.as_secs_f64(), error = %message, "Attempt failed; retrying.");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => continue,
                        _ = cancel.cancelled() => {
                            let o = finish(
                                TaskState::Cancelled,
                                None,
                                Some((format!("cancelled while waiting to retry after: {message}"), ErrorClass::Cancelled)),
                            );
                            observer.on_event(Event::TaskFinished(o.clone())).await;
                            return o;
                        }
                    }
                }
                let state = if class == ErrorClass::Cancelled {
                    TaskState::Cancelled
                } else {
                    TaskState::Failed
                };
                let o = finish(state, None, Some((message, class)));
                observer.on_event(Event::TaskFinished(o.clone())).await;
                return o;
            }
        }
    }
}

/// One attempt, with the task's timeout: past it, the task's token fires and it gets a few
/// seconds to stop before its future is dropped.
async fn run_attempt(
    task: &TaskNode,
    attempt: u32,
    runner: &dyn TaskRunner,
    token: CancellationToken,
) -> Result<TaskReport, TaskError> {
    let fut = runner.run(task, attempt, token.clone());
    tokio::pin!(fut);
    let Some(limit) = task.timeout else {
        return fut.await;
    };
    tokio::select! {
        r = &mut fut => r,
        _ = tokio::time::sleep(limit) => {
            token.cancel();
            let _ = tokio::time::timeout(TIMEOUT_GRACE, &mut fut).await;
            Err(TaskError::new(
                ErrorClass::Timeout,
                format!("{} timed out after {}", task.id, human_duration(limit)),
            ))
        }
    }
}

/// Exponential backoff with jitter: delay × 2^(attempt−1), capped, times a factor in
/// [0.5, 1.5).
pub fn backoff(opts: &ExecOptions, attempt: u32) -> Duration {
    let base = opts
        .retry_delay
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
        .min(opts.retry_max_delay);
    let jitter = (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0 + 0.5;
    base.mul_f64(jitter).min(opts.retry_max_delay)
}

/// `90s`, `15m`, `2h` — for messages.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    if d.subsec_millis() != 0 && s < 10 {
        format!("{:.1}s", d.as_secs_f64())
    } else if s < 120 {
        format!("{s}s")
    } else if s < 7200 {
        format!("{}m", s / 60)
    } else {
        format!("{}h", s / 3600)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Mutex;

    use super::*;

    fn node(id: &str, deps: &[&str], conn: Option<&str>) -> TaskNode {
        TaskNode {
            id: id.into(),
            kind: TaskKind::Command,
            deps: deps.iter().map(|s| s.to_string()).collect(),
            connection: conn.map(String::from),
            writes: None,
            retries: 2,
            timeout: Some(Duration::from_millis(400)),
            description: None,
            origin: "test".into(),
        }
    }

    /// Sleeps 50 ms per task; `fail_*` fail with a data error, `flaky_*` refuse the connection on
    /// the first attempt, `hang_*` never finish.
    struct Sleeper {
        spans: Mutex<Vec<(String, tokio::time::Instant, tokio::time::Instant)>>,
    }

    #[async_trait]
    impl TaskRunner for Sleeper {
        async fn run(
            &self,
            task: &TaskNode,
            attempt: u32,
            _cancel: CancellationToken,
        ) -> Result<TaskReport, TaskError> {
            let start = tokio::time::Instant::now();
            if task.id.starts_with("hang") {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            self.spans
                .lock()
                .unwrap()
                .push((task.id.clone(), start, tokio::time::Instant::now()));
            if task.id.starts_with("fail") {
                return Err(TaskError::new(ErrorClass::Data, "bad row"));
            }
            if task.id.starts_with("flaky") && attempt == 1 {
                return Err(TaskError::classified(std::io::Error::from(
                    std::io::ErrorKind::ConnectionRefused,
                )));
            }
            Ok(TaskReport {
                rows: Some(1),
                ..Default::default()
            })
        }
    }

    struct Events(Mutex<Vec<Event>>);
    #[async_trait]
    impl Observer for Events {
        async fn on_event(&self, e: Event) {
            self.0.lock().unwrap().push(e);
        }
    }

    fn opts() -> ExecOptions {
        ExecOptions {
            max_parallel: 2,
            per_connection: 1,
            retry_delay: Duration::from_millis(10),
            retry_max_delay: Duration::from_millis(20),
            shutdown_grace: Duration::from_millis(100),
            ..Default::default()
        }
    }

    async fn go(
        nodes: Vec<TaskNode>,
        o: ExecOptions,
    ) -> (Vec<TaskOutcome>, Arc<Sleeper>, Arc<Events>) {
        let dag = Dag::new(nodes).unwrap();
        let sel = dag.select(&[]).unwrap();
        let runner = Arc::new(Sleeper {
            spans: Mutex::new(Vec::new()),
        });
        let events = Arc::new(Events(Mutex::new(Vec::new())));
        let out = execute(
            &dag,
            &sel,
            runner.clone(),
            events.clone(),
            &o,
            CancellationToken::new(),
        )
        .await;
        (out, runner, events)
    }

    fn state_of(out: &[TaskOutcome], id: &str) -> TaskState {
        out.iter().find(|o| o.task_id == id).unwrap().state
    }

    #[tokio::test]
    async fn respects_order_and_limits() {
        let nodes = vec![
            node("a", &[], Some("erp")),
            node("b", &[], Some("erp")),
            node("c", &[], None),
            node("d", &[], None),
            node("e", &["a", "b"], None),
        ];
        let (out, runner, _) = go(nodes, opts()).await;
        assert!(out.iter().all(|o| o.state == TaskState::Succeeded));
        let spans = runner.spans.lock().unwrap().clone();
        let span = |id: &str| spans.iter().find(|s| s.0 == id).unwrap().clone();
        // e starts after both inputs ended.
        assert!(span("e").1 >= span("a").2 && span("e").1 >= span("b").2);
        // a and b share a connection limited to 1: they never overlap.
        let (a, b) = (span("a"), span("b"));
        assert!(a.2 <= b.1 || b.2 <= a.1, "a and b overlapped");
        // never more than 2 at once
        for s in &spans {
            let overlapping = spans.iter().filter(|o| o.1 < s.2 && s.1 < o.2).count();
            assert!(overlapping <= 2, "{overlapping} tasks ran at once");
        }
    }

    #[tokio::test]
    async fn failure_skips_downstream_only_and_retries_only_retryable() {
        let nodes = vec![
            node("fail_x", &[], None),
            node("below", &["fail_x"], None),
            node("further", &["below"], None),
            node("flaky_y", &[], None),
            node("after_flaky", &["flaky_y"], None),
        ];
        let (out, _, events) = go(nodes, opts()).await;
        assert_eq!(state_of(&out, "fail_x"), TaskState::Failed);
        assert_eq!(state_of(&out, "below"), TaskState::Skipped);
        assert_eq!(state_of(&out, "further"), TaskState::Skipped);
        assert_eq!(state_of(&out, "flaky_y"), TaskState::Succeeded);
        assert_eq!(state_of(&out, "after_flaky"), TaskState::Succeeded);
        let f = out.iter().find(|o| o.task_id == "fail_x").unwrap();
        assert_eq!(f.attempts, 1, "a data error is not retried");
        assert_eq!(f.error_class, Some(ErrorClass::Data));
        let flaky = out.iter().find(|o| o.task_id == "flaky_y").unwrap();
        assert_eq!(flaky.attempts, 2);
        let retried = events.0.lock().unwrap().iter().any(|e| matches!(e,
            Event::AttemptFinished { task_id, attempt: 1, retry_in: Some(_), error: Some((_, ErrorClass::Connection)), .. } if task_id == "flaky_y"));
        assert!(retried);
    }

    #[tokio::test]
    async fn timeout_then_fail_fast_cancels_the_rest() {
        let mut hang = node("hang_z", &[], None);
        hang.retries = 0;
        let nodes = vec![
            hang,
            node("later", &["hang_z"], None),
            node("other", &[], Some("x")),
        ];
        let (out, _, _) = go(
            nodes,
            ExecOptions {
                fail_fast: true,
                max_parallel: 1,
                ..opts()
            },
        )
        .await;
        let h = out.iter().find(|o| o.task_id == "hang_z").unwrap();
        assert_eq!(h.state, TaskState::Failed);
        assert_eq!(h.error_class, Some(ErrorClass::Timeout));
        assert!(h.error.as_deref().unwrap().contains("timed out after"));
        assert_eq!(state_of(&out, "later"), TaskState::Skipped);
        // `other` sorts after hang_z and max_parallel is 1: fail-fast cancelled it before it started.
        assert_eq!(state_of(&out, "other"), TaskState::Cancelled);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let o = ExecOptions {
            retry_delay: Duration::from_secs(1),
            retry_max_delay: Duration::from_secs(10),
            ..Default::default()
        };
        let first = backoff(&o, 1);
        assert!(first >= Duration::from_millis(500) && first < Duration::from_millis(1500));
        let fourth = backoff(&o, 4);
        assert!(fourth >= Duration::from_secs(4) && fourth <= Duration::from_secs(10));
        assert!(backoff(&o, 30) <= Duration::from_secs(10));
    }
}
