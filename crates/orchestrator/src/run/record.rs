//! A run's record in the state store: its row, its tasks (pending until they run), every
//! attempt as it starts and ends, the heartbeat and lease renewal while it runs, and which
//! tasks a resumed run reruns.

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::RunError;
use crate::ErrorClass;
use crate::dag::Dag;
use crate::exec::{Event, Observer, TaskOutcome, TaskState};
use crate::state::{
    AttemptRecord, RunRecord, RunStatus, StateError, StateStore, TaskRecord, TaskStatus,
};

/// How long a table lease lasts without renewal; the heartbeat renews it every third of that.
pub(crate) const LEASE_TTL: Duration = Duration::from_secs(120);
const HEARTBEAT: Duration = Duration::from_secs(30);

/// Whether no process `pid` runs on this machine (Linux: no /proc entry). Elsewhere, assume it
/// runs: the lease then expires by itself.
pub(crate) fn process_is_gone(pid: u32) -> bool {
    pid != std::process::id()
        && std::path::Path::new("/proc/self").exists()
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// The machine's name, for lease holders.
pub fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Records every event in the state store.
pub struct StateObserver {
    /// Where the run is recorded.
    pub state: StateStore,
    /// The run.
    pub run_id: String,
}

#[async_trait]
impl Observer for StateObserver {
    async fn on_event(&self, event: Event) {
        let result = match event {
            Event::AttemptStarted {
                task_id,
                kind,
                attempt,
                at,
            } => {
                let r = self
                    .state
                    .record_attempt(&AttemptRecord {
                        run_id: self.run_id.clone(),
                        task_id: task_id.clone(),
                        attempt,
                        started_at: at,
                        finished_at: None,
                        status: TaskStatus::Running,
                        error: None,
                        error_class: None,
                    })
                    .await;
                if attempt == 1 {
                    info!(task = %task_id, kind = kind.as_str(), "Task started.");
                }
                match r {
                    Ok(()) => {
                        self.state
                            .upsert_task(&TaskRecord {
                                run_id: self.run_id.clone(),
                                task_id,
                                kind: kind.as_str().to_string(),
                                status: TaskStatus::Running,
                                started_at: Some(at),
                                finished_at: None,
                                attempts: attempt,
                                rows: None,
                                bytes: None,
                                version: None,
                                error: None,
                                error_class: None,
                                detail: serde_json::Value::Null,
                            })
                            .await
                    }
                    Err(e) => Err(e),
                }
            }
            Event::AttemptFinished {
                task_id,
                attempt,
                started_at,
                finished_at,
                error,
                retry_in: _,
            } => {
                self.state
                    .record_attempt(&AttemptRecord {
                        run_id: self.run_id.clone(),
                        task_id,
                        attempt,
                        started_at,
                        finished_at: Some(finished_at),
                        status: match &error {
                            None => TaskStatus::Succeeded,
                            Some((_, ErrorClass::Cancelled)) => TaskStatus::Cancelled,
                            Some(_) => TaskStatus::Failed,
                        },
                        error_class: error.as_ref().map(|(_, c)| c.as_str().to_string()),
                        error: error.map(|(m, _)| m),
                    })
                    .await
            }
            Event::TaskFinished(o) => {
                info!(task = %o.task_id, status = o.state.as_str(), attempts = o.attempts, error = o.error.as_deref().unwrap_or(""), "Task finished.");
                self.state.upsert_task(&task_record(&self.run_id, &o)).await
            }
        };
        if let Err(e) = result {
            warn!(run_id = %self.run_id, error = %e, "Could not record the run's progress in the state store.");
        }
    }
}

fn task_record(run_id: &str, o: &TaskOutcome) -> TaskRecord {
    TaskRecord {
        run_id: run_id.to_string(),
        task_id: o.task_id.clone(),
        kind: o.kind.as_str().to_string(),
        status: match o.state {
            TaskState::Succeeded => TaskStatus::Succeeded,
            TaskState::Failed => TaskStatus::Failed,
            TaskState::Skipped => TaskStatus::Skipped,
            TaskState::Cancelled => TaskStatus::Cancelled,
        },
        started_at: o.started_at,
        finished_at: o.finished_at,
        attempts: o.attempts,
        rows: o.report.as_ref().and_then(|r| r.rows),
        bytes: o.report.as_ref().and_then(|r| r.bytes),
        version: o.report.as_ref().and_then(|r| r.version),
        error: o.error.clone(),
        error_class: o.error_class.map(|c| c.as_str().to_string()),
        detail: o
            .report
            .as_ref()
            .map(|r| r.detail.clone())
            .unwrap_or(serde_json::Value::Null),
    }
}

/// The task ids a resumed run reruns: what failed, was cancelled or skipped, never started or
/// was interrupted, and still exists in the DAG.
pub async fn resume_selection(
    state: &StateStore,
    dag: &Dag,
    run_id: &str,
) -> Result<(String, Vec<String>), RunError> {
    let detail = state.get_run(run_id).await?.ok_or_else(|| {
        RunError::Usage(format!(
            "no run `{run_id}` in the state store {}; `tributary runs` lists them",
            state.location()
        ))
    })?;
    let run = &detail.run.run;
    let killed =
        run.status == RunStatus::Running && run.host == hostname() && process_is_gone(run.pid);
    if killed {
        // Its process died (SIGKILL, OOM, a reboot) without recording the end: record it as
        // abandoned, then resume it like any other unfinished run.
        let why = format!(
            "the process (pid {} on {}) ended without finishing the run",
            run.pid, run.host
        );
        state
            .finish_run(
                &run.run_id,
                RunStatus::Abandoned,
                chrono::Utc::now(),
                Some(&why),
            )
            .await?;
    } else if detail.run.run.status == RunStatus::Running {
        return Err(RunError::Usage(format!(
            "run {} is still running; wait for it to finish (or stop it) before resuming it",
            detail.run.run.run_id
        )));
    }
    let redo: BTreeSet<String> = detail
        .tasks
        .iter()
        .filter(|t| t.status != TaskStatus::Succeeded)
        .map(|t| t.task_id.clone())
        .filter(|id| dag.get(id).is_some())
        .collect();
    let ordered = dag
        .tasks()
        .map(|t| t.id.clone())
        .filter(|id| redo.contains(id))
        .collect();
    Ok((detail.run.run.run_id, ordered))
}

/// A new run's record.
pub fn new_run_record(
    run_id: &str,
    trigger: &str,
    selectors: &[String],
    target: Option<String>,
    resumed_from: Option<String>,
) -> RunRecord {
    RunRecord {
        run_id: run_id.to_string(),
        trigger: trigger.to_string(),
        selectors: selectors.to_vec(),
        target,
        status: RunStatus::Running,
        started_at: chrono::Utc::now(),
        finished_at: None,
        error: None,
        resumed_from,
        host: hostname(),
        pid: std::process::id(),
    }
}

/// Every selected task as pending, so a run killed before reaching some of them still lists
/// them (and `--resume` reruns them).
pub async fn record_pending(
    state: &StateStore,
    run_id: &str,
    dag: &Dag,
    ids: &[String],
) -> Result<(), StateError> {
    for id in ids {
        if let Some(t) = dag.get(id) {
            state
                .upsert_task(&TaskRecord {
                    run_id: run_id.to_string(),
                    task_id: id.clone(),
                    kind: t.kind.as_str().to_string(),
                    status: TaskStatus::Pending,
                    started_at: None,
                    finished_at: None,
                    attempts: 0,
                    rows: None,
                    bytes: None,
                    version: None,
                    error: None,
                    error_class: None,
                    detail: serde_json::Value::Null,
                })
                .await?;
        }
    }
    Ok(())
}

/// Heartbeat and lease renewal until `stop` fires.
pub fn spawn_heartbeat(state: StateStore, run_id: String, stop: CancellationToken) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(HEARTBEAT) => {}
                _ = stop.cancelled() => return,
            }
            if let Err(e) = state.heartbeat(&run_id, chrono::Utc::now()).await {
                warn!(run_id = %run_id, error = %e, "Could not record the run's heartbeat.");
            }
            if let Err(e) = state.renew_leases(&run_id, LEASE_TTL).await {
                warn!(run_id = %run_id, error = %e, "Could not renew table leases.");
            }
        }
    });
}

/// The process's peak resident memory so far, in MiB (`VmHWM` of `/proc/self/status`; Linux
/// only).
pub fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib.div_ceil(1024))
}
