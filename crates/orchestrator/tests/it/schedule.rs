//! The scheduler with real time: schedules firing every second, a launcher whose runs take a
//! while, a fire log with history.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Timelike, Utc};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tributary_core::pipeline::{CatchUp, ScheduleConfig};
use tributary_orchestrator::schedule::{
    FireLog, FireOutcome, LaunchRequest, LaunchedRun, Launcher, MemoryFireLog, Schedule,
    ScheduleFire, run_scheduler,
};

/// Starts fake runs that end after `run_time`, recording every request; fails on selector
/// `nope`.
struct TestLauncher {
    run_time: Duration,
    requests: Mutex<Vec<(LaunchRequest, String)>>,
}

impl TestLauncher {
    fn new(run_time: Duration) -> Arc<TestLauncher> {
        Arc::new(TestLauncher {
            run_time,
            requests: Mutex::new(Vec::new()),
        })
    }

    fn requests(&self) -> Vec<(LaunchRequest, String)> {
        self.requests.lock().unwrap().clone()
    }
}

#[async_trait]
impl Launcher for TestLauncher {
    async fn launch(&self, req: LaunchRequest) -> Result<LaunchedRun, String> {
        if req.selectors.iter().any(|s| s == "nope") {
            return Err("unknown selector `nope`".into());
        }
        let run_id = {
            let mut requests = self.requests.lock().unwrap();
            let id = format!("run-{}", requests.len() + 1);
            requests.push((req, id.clone()));
            id
        };
        let (tx, rx) = watch::channel(false);
        let run_time = self.run_time;
        tokio::spawn(async move {
            tokio::time::sleep(run_time).await;
            let _ = tx.send(true);
        });
        Ok(LaunchedRun {
            run_id,
            finished: rx,
        })
    }
}

fn config(cron: &str, catch_up: CatchUp) -> ScheduleConfig {
    ScheduleConfig {
        cron: cron.into(),
        timezone: "UTC".into(),
        select: vec!["+gold.daily_revenue".into()],
        full_refresh: false,
        catch_up,
        enabled: true,
    }
}

fn schedules(configs: &[(&str, ScheduleConfig)]) -> Vec<Schedule> {
    let map: BTreeMap<String, ScheduleConfig> = configs
        .iter()
        .map(|(n, c)| (n.to_string(), c.clone()))
        .collect();
    Schedule::all(&map).unwrap()
}

/// Wait (up to 20 s, then fail) until `check` holds.
async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting until {what}");
}

struct Running {
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
}

fn start(
    schedules: Vec<Schedule>,
    launcher: Arc<TestLauncher>,
    log: Arc<MemoryFireLog>,
) -> Running {
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(run_scheduler(schedules, launcher, log, shutdown.clone()));
    Running { shutdown, handle }
}

impl Running {
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.handle)
            .await
            .expect("the scheduler did not stop after shutdown")
            .unwrap();
    }
}

#[tokio::test]
async fn schedule_every_second_starts_runs() {
    let launcher = TestLauncher::new(Duration::from_millis(100));
    let log = Arc::new(MemoryFireLog::new());
    let mut disabled = config("*/1 * * * * *", CatchUp::Skip);
    disabled.enabled = false;
    let running = start(
        schedules(&[
            ("every_second", config("*/1 * * * * *", CatchUp::Skip)),
            ("disabled", disabled),
        ]),
        launcher.clone(),
        log.clone(),
    );
    wait_until("two runs started", || launcher.requests().len() >= 2).await;
    running.stop().await;

    let requests = launcher.requests();
    for (req, _) in &requests {
        assert_eq!(req.trigger, "schedule:every_second");
        assert_eq!(req.selectors, ["+gold.daily_revenue"]);
        assert!(!req.full_refresh);
    }
    let fires = log.fires();
    let started: Vec<&ScheduleFire> = fires
        .iter()
        .filter(|f| f.outcome == FireOutcome::Started)
        .collect();
    assert_eq!(started.len(), requests.len(), "{fires:#?}");
    for (fire, (_, run_id)) in started.iter().zip(&requests) {
        assert_eq!(fire.schedule, "every_second");
        assert_eq!(fire.run_id.as_ref(), Some(run_id));
        assert_eq!(fire.fire_time.nanosecond(), 0, "fires on whole seconds");
        assert!(fire.recorded_at >= fire.fire_time);
    }
    assert!(started.windows(2).all(|w| w[1].fire_time > w[0].fire_time));
    assert!(fires.iter().all(|f| f.schedule != "disabled"));
}

#[tokio::test]
async fn overlapping_fire_is_skipped_and_recorded() {
    // Runs take 2.5 s; the schedule fires every second.
    let launcher = TestLauncher::new(Duration::from_millis(2500));
    let log = Arc::new(MemoryFireLog::new());
    let running = start(
        schedules(&[("busy", config("*/1 * * * * *", CatchUp::Skip))]),
        launcher.clone(),
        log.clone(),
    );
    wait_until("a second run started after skipped fires", || {
        log.fires()
            .iter()
            .filter(|f| f.outcome == FireOutcome::Started)
            .count()
            >= 2
    })
    .await;
    running.stop().await;

    let fires = log.fires();
    let first_start = fires
        .iter()
        .position(|f| f.outcome == FireOutcome::Started)
        .unwrap();
    let second_start = fires
        .iter()
        .skip(first_start + 1)
        .position(|f| f.outcome == FireOutcome::Started)
        .unwrap()
        + first_start
        + 1;
    let skipped = &fires[first_start + 1..second_start];
    assert!(!skipped.is_empty(), "{fires:#?}");
    for f in skipped {
        assert_eq!(f.outcome, FireOutcome::SkippedOverlap, "{fires:#?}");
        assert_eq!(
            f.note.as_deref(),
            Some("run run-1 of this schedule is still running")
        );
        assert_eq!(f.run_id, None);
    }
    // The second run started only after the first one's 2.5 s: at least 2 fires later.
    assert!(
        fires[second_start].fire_time - fires[first_start].fire_time
            >= chrono::TimeDelta::seconds(3),
        "{fires:#?}"
    );
    assert_eq!(launcher.requests().len(), 2);
}

/// A cron firing once an hour, at the minute 30 minutes ago: exactly one fire in the past hour,
/// none in the next 29 minutes.
fn hourly_half_an_hour_ago(now: DateTime<Utc>) -> String {
    let t = now - chrono::TimeDelta::minutes(30);
    format!("0 {} * * * *", t.minute())
}

async fn log_with_last_fire(schedule: &str, at: DateTime<Utc>) -> Arc<MemoryFireLog> {
    let log = Arc::new(MemoryFireLog::new());
    log.record_fire(&ScheduleFire {
        schedule: schedule.into(),
        fire_time: at,
        recorded_at: at,
        outcome: FireOutcome::Started,
        run_id: Some("run-old".into()),
        note: None,
    })
    .await
    .unwrap();
    log
}

#[tokio::test]
async fn catch_up_skip_records_missed_fires() {
    let now = Utc::now();
    let log = log_with_last_fire("hourly", now - chrono::TimeDelta::hours(1)).await;
    let launcher = TestLauncher::new(Duration::from_millis(10));
    let running = start(
        schedules(&[(
            "hourly",
            config(&hourly_half_an_hour_ago(now), CatchUp::Skip),
        )]),
        launcher.clone(),
        log.clone(),
    );
    wait_until("the missed fire is recorded", || log.fires().len() >= 2).await;
    running.stop().await;

    let fires = log.fires();
    assert_eq!(fires.len(), 2, "{fires:#?}");
    let missed = &fires[1];
    assert_eq!(missed.outcome, FireOutcome::Missed);
    assert!(missed.fire_time < now && missed.fire_time > now - chrono::TimeDelta::hours(1));
    let note = missed.note.as_deref().unwrap();
    assert!(
        note.starts_with("1 fire, at ")
            && note.ends_with("missed while the server was down (catch_up: skip)"),
        "{note}"
    );
    assert!(launcher.requests().is_empty());
    // The next start finds nothing more to catch up.
    assert_eq!(
        log.last_fire("hourly").await.unwrap(),
        Some(missed.fire_time)
    );
}

#[tokio::test]
async fn catch_up_once_starts_one_run() {
    let now = Utc::now();
    let log = log_with_last_fire("hourly", now - chrono::TimeDelta::hours(3)).await;
    let launcher = TestLauncher::new(Duration::from_millis(10));
    let running = start(
        schedules(&[(
            "hourly",
            config(&hourly_half_an_hour_ago(now), CatchUp::Once),
        )]),
        launcher.clone(),
        log.clone(),
    );
    wait_until("the catch-up run started", || {
        !launcher.requests().is_empty()
    })
    .await;
    running.stop().await;

    let requests = launcher.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].0.trigger, "schedule:hourly");
    let fires = log.fires();
    assert_eq!(fires.len(), 2, "{fires:#?}");
    let caught = &fires[1];
    assert_eq!(caught.outcome, FireOutcome::Started);
    assert_eq!(caught.run_id.as_deref(), Some("run-1"));
    assert!(caught.fire_time < now);
    let note = caught.note.as_deref().unwrap();
    assert!(
        note.starts_with("catch-up run for 3 fires, ")
            && note.ends_with("missed while the server was down (catch_up: once)"),
        "{note}"
    );
}

#[tokio::test]
async fn launcher_errors_are_recorded() {
    let launcher = TestLauncher::new(Duration::from_millis(10));
    let log = Arc::new(MemoryFireLog::new());
    let mut bad = config("*/1 * * * * *", CatchUp::Skip);
    bad.select = vec!["nope".into()];
    let running = start(schedules(&[("bad", bad)]), launcher.clone(), log.clone());
    wait_until("an error is recorded", || !log.fires().is_empty()).await;
    running.stop().await;
    let fires = log.fires();
    assert_eq!(fires[0].outcome, FireOutcome::Error);
    assert_eq!(fires[0].note.as_deref(), Some("unknown selector `nope`"));
    assert!(launcher.requests().is_empty());
}

#[tokio::test]
async fn shutdown_returns_promptly_while_waiting_for_a_fire() {
    let launcher = TestLauncher::new(Duration::from_millis(10));
    let log = Arc::new(MemoryFireLog::new());
    // Once a year: the loop is asleep when shutdown comes.
    let running = start(
        schedules(&[("yearly", config("0 0 1 1 *", CatchUp::Skip))]),
        launcher.clone(),
        log.clone(),
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    running.stop().await;
    assert!(launcher.requests().is_empty());
    assert!(log.fires().is_empty());
}
