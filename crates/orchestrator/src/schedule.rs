//! Schedules: `tributary serve` starts runs of part of the DAG at the times of cron expressions
//! read in a time zone.
//!
//! [`run_scheduler`] keeps one loop per enabled schedule. Each sleeps until the schedule's next
//! fire (waking at once on shutdown), then asks the [`Launcher`] for a run, unless the run it
//! started last has not finished: that fire is skipped and recorded as `skipped_overlap`. Every
//! fire is recorded in a [`FireLog`] (the state store), which also tells, at start-up, when each
//! schedule last fired: the fires missed since then are recorded as one `missed` entry
//! (`catch_up: skip`) or make one run start at once (`catch_up: once`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use tributary_core::pipeline::{CatchUp, ScheduleConfig, parse_cron, parse_timezone};

use crate::state::StateError;

/// Counting missed fires stops here (a `*/1 * * * * *` schedule misses 86 400 a day).
const MAX_COUNTED_FIRES: u64 = 100_000;

/// A fire found up to this late (after handling the previous one took long) still runs; older
/// ones are recorded as missed.
const LATE_GRACE: chrono::TimeDelta = chrono::TimeDelta::seconds(1);

/// One schedule, parsed and ready to compute fire times.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The schedule's name (its key under `schedules:`).
    pub name: String,
    /// The cron expression as written.
    pub expression: String,
    cron: croner::Cron,
    tz: chrono_tz::Tz,
    /// Selectors of the runs it starts (empty: the whole DAG).
    pub select: Vec<String>,
    /// Whether its runs are full refreshes.
    pub full_refresh: bool,
    /// What happens to fires missed while the server was down.
    pub catch_up: CatchUp,
    /// Disabled schedules are kept but never fire.
    pub enabled: bool,
}

impl Schedule {
    /// Parse one schedule; the error names the schedule and what is wrong with it.
    pub fn new(name: &str, config: &ScheduleConfig) -> Result<Schedule, String> {
        let cron = parse_cron(&config.cron).map_err(|e| format!("schedule `{name}`: {e}"))?;
        let tz = parse_timezone(&config.timezone).map_err(|e| format!("schedule `{name}`: {e}"))?;
        Ok(Schedule {
            name: name.to_string(),
            expression: config.cron.clone(),
            cron,
            tz,
            select: config.select.clone(),
            full_refresh: config.full_refresh,
            catch_up: config.catch_up,
            enabled: config.enabled,
        })
    }

    /// Every schedule of `schedules:`, in name order.
    pub fn all(configs: &BTreeMap<String, ScheduleConfig>) -> Result<Vec<Schedule>, String> {
        configs
            .iter()
            .map(|(name, config)| Schedule::new(name, config))
            .collect()
    }

    /// The time zone the expression is read in.
    pub fn timezone(&self) -> chrono_tz::Tz {
        self.tz
    }

    /// The first fire strictly after `t`, or `None` if the expression never fires again.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&t.with_timezone(&self.tz), false)
            .ok()
            .map(|local| local.with_timezone(&Utc))
    }

    /// The fires in `(after, up_to]`: how many (counting stops at a large limit), the first and
    /// the last.
    pub fn fires_between(&self, after: DateTime<Utc>, up_to: DateTime<Utc>) -> Missed {
        let mut missed = Missed::default();
        let mut t = after;
        while let Some(next) = self.next_after(t) {
            if next > up_to {
                break;
            }
            missed.count += 1;
            missed.first.get_or_insert(next);
            missed.last = Some(next);
            if missed.count >= MAX_COUNTED_FIRES {
                // Jump to the last fire without counting the rest.
                missed.more = true;
                let mut back = up_to;
                if let Ok(prev) = self
                    .cron
                    .find_previous_occurrence(&up_to.with_timezone(&self.tz), true)
                {
                    back = prev.with_timezone(&Utc);
                }
                missed.last = Some(back);
                break;
            }
            t = next;
        }
        missed
    }

    /// The launch request of a fire of this schedule.
    fn request(&self) -> LaunchRequest {
        LaunchRequest {
            selectors: self.select.clone(),
            full_refresh: self.full_refresh,
            trigger: format!("schedule:{}", self.name),
            resume: None,
        }
    }
}

/// Fires in a time range, as counted by [`Schedule::fires_between`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Missed {
    /// How many (at least, when `more`).
    pub count: u64,
    /// Counting stopped at a limit: there were more.
    pub more: bool,
    /// The first fire.
    pub first: Option<DateTime<Utc>>,
    /// The last fire.
    pub last: Option<DateTime<Utc>>,
}

impl Missed {
    /// `12 fires, 2025-01-01T02:00:00Z to 2025-01-12T02:00:00Z`.
    fn describe(&self) -> String {
        let plus = if self.more { "+" } else { "" };
        let s = if self.count == 1 && !self.more {
            ""
        } else {
            "s"
        };
        match (self.first, self.last) {
            (Some(first), Some(last)) if self.count > 1 => format!(
                "{}{plus} fire{s}, {} to {}",
                self.count,
                first.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                last.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            (Some(first), _) => format!(
                "{}{plus} fire{s}, at {}",
                self.count,
                first.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            _ => format!("{}{plus} fire{s}", self.count),
        }
    }
}

/// A request to start a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchRequest {
    /// Selectors, as `tributary run --select` takes them; empty: the whole DAG.
    pub selectors: Vec<String>,
    /// Rebuild incremental tables from scratch.
    pub full_refresh: bool,
    /// Who asked: `schedule:<name>` or `api`.
    pub trigger: String,
    /// Resume this run (id or unique prefix) instead: rerun its tasks that did not succeed
    /// (`tributary run --resume`); `selectors` and `full_refresh` are then ignored.
    #[serde(default)]
    pub resume: Option<String>,
}

/// A run that was started.
#[derive(Debug, Clone)]
pub struct LaunchedRun {
    /// The run's id.
    pub run_id: String,
    /// Becomes `true` when the run has ended (whatever its outcome). Dropping the sender
    /// counts as ended too.
    pub finished: watch::Receiver<bool>,
}

impl LaunchedRun {
    /// The run has ended (or its sender is gone).
    pub fn has_finished(&self) -> bool {
        *self.finished.borrow() || self.finished.has_changed().is_err()
    }
}

/// Starts runs: implemented by the CLI on top of the executor.
#[async_trait]
pub trait Launcher: Send + Sync {
    /// Start a run in the background and return at once with its id. An error (an unknown
    /// selector, a configuration that no longer loads) is a message for the user.
    async fn launch(&self, req: LaunchRequest) -> Result<LaunchedRun, String>;
}

/// What became of one fire of a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FireOutcome {
    /// A run was started.
    Started,
    /// The schedule's previous run was still going: no run was started.
    SkippedOverlap,
    /// The server was not running at fire time (`catch_up: skip`), or woke too late.
    Missed,
    /// The launcher refused or failed to start the run.
    Error,
}

impl FireOutcome {
    /// `started`, `skipped_overlap`, `missed` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            FireOutcome::Started => "started",
            FireOutcome::SkippedOverlap => "skipped_overlap",
            FireOutcome::Missed => "missed",
            FireOutcome::Error => "error",
        }
    }

    /// The outcome named by [`FireOutcome::as_str`].
    pub fn parse(s: &str) -> Option<FireOutcome> {
        [
            FireOutcome::Started,
            FireOutcome::SkippedOverlap,
            FireOutcome::Missed,
            FireOutcome::Error,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

/// One fire of a schedule, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleFire {
    /// The schedule's name.
    pub schedule: String,
    /// When the schedule fired (for a `missed` entry covering several fires: the last one).
    pub fire_time: DateTime<Utc>,
    /// When this entry was written.
    pub recorded_at: DateTime<Utc>,
    /// What became of it.
    pub outcome: FireOutcome,
    /// The run started (for `started`).
    pub run_id: Option<String>,
    /// Details: the running run's id for `skipped_overlap`, how many fires were missed, the
    /// launcher's error.
    pub note: Option<String>,
}

/// Where fires are recorded: the state store.
#[async_trait]
pub trait FireLog: Send + Sync {
    /// Record one fire.
    async fn record_fire(&self, fire: &ScheduleFire) -> Result<(), StateError>;
    /// The latest `fire_time` recorded for `schedule`, if any.
    async fn last_fire(&self, schedule: &str) -> Result<Option<DateTime<Utc>>, StateError>;
}

/// A [`FireLog`] in memory, for tests and for a server without a state store.
#[derive(Debug, Default)]
pub struct MemoryFireLog {
    fires: std::sync::Mutex<Vec<ScheduleFire>>,
}

impl MemoryFireLog {
    /// An empty log.
    pub fn new() -> MemoryFireLog {
        MemoryFireLog::default()
    }

    /// Every fire recorded so far, in order.
    pub fn fires(&self) -> Vec<ScheduleFire> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ScheduleFire>> {
        // A panic while holding the lock leaves a plain Vec behind: still usable.
        self.fires
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl FireLog for MemoryFireLog {
    async fn record_fire(&self, fire: &ScheduleFire) -> Result<(), StateError> {
        self.lock().push(fire.clone());
        Ok(())
    }

    async fn last_fire(&self, schedule: &str) -> Result<Option<DateTime<Utc>>, StateError> {
        Ok(self
            .lock()
            .iter()
            .filter(|f| f.schedule == schedule)
            .map(|f| f.fire_time)
            .max())
    }
}

/// The state store keeps the fires of every schedule (table `schedule_fires`).
#[async_trait]
impl FireLog for crate::state::StateStore {
    async fn record_fire(&self, fire: &ScheduleFire) -> Result<(), StateError> {
        let record = crate::state::ScheduleFire {
            schedule: fire.schedule.clone(),
            fire_time: fire.fire_time,
            recorded_at: fire.recorded_at,
            outcome: fire.outcome.as_str().to_string(),
            run_id: fire.run_id.clone(),
            note: fire.note.clone(),
        };
        self.record_schedule_fire(&record).await
    }

    async fn last_fire(&self, schedule: &str) -> Result<Option<DateTime<Utc>>, StateError> {
        Ok(self
            .last_schedule_fire(schedule)
            .await?
            .map(|f| f.fire_time))
    }
}

/// Run every enabled schedule until `shutdown` is cancelled. Returns once no fire is being
/// started; runs already started go on (the caller cancels them).
pub async fn run_scheduler(
    schedules: Vec<Schedule>,
    launcher: Arc<dyn Launcher>,
    log: Arc<dyn FireLog>,
    shutdown: CancellationToken,
) {
    let mut loops = tokio::task::JoinSet::new();
    for schedule in schedules {
        if !schedule.enabled {
            info!(schedule = %schedule.name, "Schedule disabled.");
            continue;
        }
        let driver = Driver {
            schedule,
            launcher: launcher.clone(),
            log: log.clone(),
            running: None,
        };
        loops.spawn(driver.run(shutdown.clone()));
    }
    while let Some(joined) = loops.join_next().await {
        if let Err(e) = joined {
            warn!(error = %e, "Schedule loop ended abnormally.");
        }
    }
    info!("Scheduler stopped.");
}

/// The loop of one schedule.
struct Driver {
    schedule: Schedule,
    launcher: Arc<dyn Launcher>,
    log: Arc<dyn FireLog>,
    /// The run this schedule started last.
    running: Option<LaunchedRun>,
}

impl Driver {
    async fn run(mut self, shutdown: CancellationToken) {
        let name = self.schedule.name.clone();
        info!(
            schedule = %name,
            cron = %self.schedule.expression,
            timezone = %self.schedule.tz,
            "Schedule started."
        );
        let mut after = Utc::now();
        self.catch_up(after).await;
        loop {
            let Some(fire) = self.schedule.next_after(after) else {
                warn!(schedule = %name, cron = %self.schedule.expression, "Schedule never fires again.");
                return;
            };
            if !sleep_until(fire, &shutdown).await {
                info!(schedule = %name, "Schedule stopped.");
                return;
            }
            self.fire(fire).await;
            // Fires that passed while this one was handled (or while the machine slept) are
            // missed, not run one after the other.
            let now = Utc::now() - LATE_GRACE;
            let late = self.schedule.fires_between(fire, now);
            if let Some(last) = late.last {
                warn!(schedule = %name, missed = late.count, "Schedule fires missed while busy.");
                let note = format!("{} missed while the server was busy", late.describe());
                self.record(last, FireOutcome::Missed, None, Some(note))
                    .await;
                after = last;
            } else {
                after = fire;
            }
        }
    }

    /// At start-up: the fires missed since the last recorded one.
    async fn catch_up(&mut self, now: DateTime<Utc>) {
        let name = self.schedule.name.clone();
        let last = match self.log.last_fire(&name).await {
            Ok(Some(last)) => last,
            Ok(None) => return,
            Err(e) => {
                warn!(schedule = %name, error = %format!("{e:#}"), "Cannot read the schedule's last fire; missed fires are not caught up.");
                return;
            }
        };
        let missed = self.schedule.fires_between(last, now);
        let Some(last_missed) = missed.last else {
            return;
        };
        match self.schedule.catch_up {
            CatchUp::Skip => {
                info!(schedule = %name, missed = missed.count, "Missed fires skipped (catch_up: skip).");
                let note = format!(
                    "{} missed while the server was down (catch_up: skip)",
                    missed.describe()
                );
                self.record(last_missed, FireOutcome::Missed, None, Some(note))
                    .await;
            }
            CatchUp::Once => {
                info!(schedule = %name, missed = missed.count, "Catching up missed fires with one run (catch_up: once).");
                let note = format!(
                    "catch-up run for {} missed while the server was down (catch_up: once)",
                    missed.describe()
                );
                self.start(last_missed, Some(note)).await;
            }
        }
    }

    /// One fire: start a run unless the previous one still runs.
    async fn fire(&mut self, fire: DateTime<Utc>) {
        let busy = self
            .running
            .as_ref()
            .filter(|run| !run.has_finished())
            .map(|run| run.run_id.clone());
        if let Some(run_id) = busy {
            info!(schedule = %self.schedule.name, run_id = %run_id, "Fire skipped: the previous run is still running.");
            let note = format!("run {run_id} of this schedule is still running");
            self.record(fire, FireOutcome::SkippedOverlap, None, Some(note))
                .await;
            return;
        }
        self.start(fire, None).await;
    }

    async fn start(&mut self, fire: DateTime<Utc>, note: Option<String>) {
        match self.launcher.launch(self.schedule.request()).await {
            Ok(run) => {
                info!(schedule = %self.schedule.name, run_id = %run.run_id, "Scheduled run started.");
                let run_id = run.run_id.clone();
                self.running = Some(run);
                self.record(fire, FireOutcome::Started, Some(run_id), note)
                    .await;
            }
            Err(e) => {
                warn!(schedule = %self.schedule.name, error = %e, "Scheduled run could not start.");
                let note = match note {
                    Some(n) => format!("{n}: {e}"),
                    None => e,
                };
                self.record(fire, FireOutcome::Error, None, Some(note))
                    .await;
            }
        }
    }

    async fn record(
        &self,
        fire_time: DateTime<Utc>,
        outcome: FireOutcome,
        run_id: Option<String>,
        note: Option<String>,
    ) {
        let fire = ScheduleFire {
            schedule: self.schedule.name.clone(),
            fire_time,
            recorded_at: Utc::now(),
            outcome,
            run_id,
            note,
        };
        if let Err(e) = self.log.record_fire(&fire).await {
            warn!(schedule = %fire.schedule, outcome = fire.outcome.as_str(), error = %format!("{e:#}"), "Cannot record a schedule fire.");
        }
    }
}

/// Sleep until the wall clock reaches `t`; `false` if `shutdown` came first.
async fn sleep_until(t: DateTime<Utc>, shutdown: &CancellationToken) -> bool {
    loop {
        let left = t - Utc::now();
        let Ok(left) = left.to_std() else {
            // `t` has passed.
            return !shutdown.is_cancelled();
        };
        if left.is_zero() {
            return !shutdown.is_cancelled();
        }
        // Wake at least every minute to follow wall-clock changes.
        let nap = left.min(Duration::from_secs(60));
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep(nap) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn schedule(cron: &str, tz: &str) -> Schedule {
        let config = ScheduleConfig {
            cron: cron.into(),
            timezone: tz.into(),
            select: vec![],
            full_refresh: false,
            catch_up: CatchUp::Skip,
            enabled: true,
        };
        match Schedule::new("s", &config) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        match Utc.with_ymd_and_hms(y, mo, d, h, mi, s) {
            chrono::LocalResult::Single(t) => t,
            _ => panic!("bad time"),
        }
    }

    #[test]
    fn next_after_reads_the_expression_in_its_time_zone() {
        let s = schedule("0 2 * * *", "Europe/Amsterdam");
        // Winter: Amsterdam is UTC+1.
        assert_eq!(
            s.next_after(utc(2025, 1, 10, 12, 0, 0)),
            Some(utc(2025, 1, 11, 1, 0, 0))
        );
        // Summer: UTC+2.
        assert_eq!(
            s.next_after(utc(2025, 7, 10, 12, 0, 0)),
            Some(utc(2025, 7, 11, 0, 0, 0))
        );
        // Strictly after.
        assert_eq!(
            s.next_after(utc(2025, 7, 11, 0, 0, 0)),
            Some(utc(2025, 7, 12, 0, 0, 0))
        );
        let utc_s = schedule("*/15 * * * * *", "UTC");
        assert_eq!(
            utc_s.next_after(utc(2025, 1, 1, 0, 0, 1)),
            Some(utc(2025, 1, 1, 0, 0, 15))
        );
    }

    #[test]
    fn daylight_saving_gap_and_repeat() {
        // 2025-03-30 02:30 does not exist in Amsterdam (clocks go 02:00 -> 03:00).
        let s = schedule("30 2 * * *", "Europe/Amsterdam");
        // It fires at the first instant after the gap: 03:00 local, 01:00 UTC.
        assert_eq!(
            s.next_after(utc(2025, 3, 29, 12, 0, 0)),
            Some(utc(2025, 3, 30, 1, 0, 0))
        );
        // 2025-10-26 02:30 happens twice; the schedule fires once that day.
        let fires = s.fires_between(utc(2025, 10, 25, 12, 0, 0), utc(2025, 10, 26, 12, 0, 0));
        assert_eq!(fires.count, 1, "{fires:?}");
    }

    #[test]
    fn counting_missed_fires() {
        let s = schedule("0 * * * *", "UTC");
        let m = s.fires_between(utc(2025, 1, 1, 0, 0, 0), utc(2025, 1, 1, 5, 30, 0));
        assert_eq!(m.count, 5);
        assert_eq!(m.first, Some(utc(2025, 1, 1, 1, 0, 0)));
        assert_eq!(m.last, Some(utc(2025, 1, 1, 5, 0, 0)));
        assert_eq!(
            m.describe(),
            "5 fires, 2025-01-01T01:00:00Z to 2025-01-01T05:00:00Z"
        );
        let none = s.fires_between(utc(2025, 1, 1, 0, 0, 0), utc(2025, 1, 1, 0, 59, 0));
        assert_eq!(none, Missed::default());
        let every_second = schedule("* * * * * *", "UTC");
        let many = every_second.fires_between(utc(2025, 1, 1, 0, 0, 0), utc(2025, 1, 3, 0, 0, 0));
        assert!(many.more && many.count == MAX_COUNTED_FIRES);
        assert_eq!(many.last, Some(utc(2025, 1, 3, 0, 0, 0)));
    }

    #[test]
    fn outcome_names_round_trip() {
        for o in [
            FireOutcome::Started,
            FireOutcome::SkippedOverlap,
            FireOutcome::Missed,
            FireOutcome::Error,
        ] {
            assert_eq!(FireOutcome::parse(o.as_str()), Some(o));
        }
        assert_eq!(FireOutcome::parse("nope"), None);
    }
}
