//! The run-state store: one suite, run against SQLite (a temporary file) and PostgreSQL (a fresh
//! schema of the test database).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use futures::FutureExt;
use serde_json::json;
use tributary_orchestrator::state::{
    AlertStateRecord, AttemptRecord, DeliveryRecord, ExpectationRecord, IncidentRecord,
    LeaseHolder, LeaseOutcome, RunFilter, RunRecord, RunStatus, ScheduleFire, StateError,
    StateStore, TaskRecord, TaskStatus,
};
use tributary_testkit::{pg_url, unavailable, unique_name};

/// Where one test's store lives.
struct Env {
    url: String,
    root: tempfile::TempDir,
    pg: Option<PgAdmin>,
}

/// A separate PostgreSQL connection, to inspect and clean up the test's schema.
struct PgAdmin {
    client: tokio_postgres::Client,
    schema: String,
}

fn with_query(url: &str, param: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{param}")
}

async fn pg_admin() -> Option<tokio_postgres::Client> {
    match tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls).await {
        Ok((client, conn)) => {
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Some(client)
        }
        Err(e) => unavailable("PostgreSQL", e),
    }
}

impl Env {
    fn sqlite() -> Env {
        let root = tempfile::tempdir().unwrap();
        Env {
            url: "sqlite://.tributary/state.db".into(),
            root,
            pg: None,
        }
    }

    async fn postgres() -> Option<Env> {
        let client = pg_admin().await?;
        let schema = unique_name("state");
        Some(Env {
            url: with_query(&pg_url(), &format!("schema={schema}")),
            root: tempfile::tempdir().unwrap(),
            pg: Some(PgAdmin { client, schema }),
        })
    }

    async fn open(&self) -> StateStore {
        match StateStore::open(&self.url, self.root.path()).await {
            Ok(s) => s,
            Err(e) => panic!("opening {}: {e}", self.url),
        }
    }

    fn sqlite_path(&self) -> PathBuf {
        self.root.path().join(".tributary/state.db")
    }

    /// Run SQL directly on the store's tables.
    async fn raw(&self, sql: &str) {
        match &self.pg {
            Some(pg) => pg
                .client
                .batch_execute(&format!("SET search_path TO {}; {sql}", pg.schema))
                .await
                .unwrap(),
            None => rusqlite::Connection::open(self.sqlite_path())
                .unwrap()
                .execute_batch(sql)
                .unwrap(),
        }
    }

    async fn cleanup(&self) {
        if let Some(pg) = &self.pg {
            let _ = pg
                .client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", pg.schema))
                .await;
        }
    }
}

/// Run `$body(&Env)` once on SQLite and once on PostgreSQL (skipped, with a printed reason,
/// when PostgreSQL is not reachable and services are not required).
macro_rules! on_both {
    ($body:ident) => {
        mod $body {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let env = super::Env::sqlite();
                super::$body(&env).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                let Some(env) = super::Env::postgres().await else {
                    return;
                };
                let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(
                    super::$body(&env),
                ))
                .await;
                env.cleanup().await;
                if let Err(panic) = outcome {
                    std::panic::resume_unwind(panic);
                }
            }
        }
    };
}

/// Now, at the precision the store keeps, minus some seconds.
fn ago(secs: i64) -> DateTime<Utc> {
    (Utc::now() - chrono::Duration::seconds(secs)).trunc_subsecs(6)
}

fn run(run_id: &str, trigger: &str, started_at: DateTime<Utc>) -> RunRecord {
    RunRecord {
        run_id: run_id.into(),
        trigger: trigger.into(),
        selectors: vec![],
        target: None,
        status: RunStatus::Running,
        started_at,
        finished_at: None,
        error: None,
        resumed_from: None,
        host: "host-a".into(),
        pid: 4242,
    }
}

fn task(run_id: &str, task_id: &str, status: TaskStatus, started_at: DateTime<Utc>) -> TaskRecord {
    TaskRecord {
        run_id: run_id.into(),
        task_id: task_id.into(),
        kind: if task_id.starts_with("bronze.") {
            "load".into()
        } else {
            "model".into()
        },
        status,
        started_at: Some(started_at),
        finished_at: Some(started_at + chrono::Duration::milliseconds(1500)),
        attempts: 1,
        rows: Some(10),
        bytes: None,
        version: Some(3),
        error: None,
        error_class: None,
        detail: json!({}),
    }
}

fn holder(run_id: &str) -> LeaseHolder {
    LeaseHolder {
        run_id: run_id.into(),
        host: format!("host-{run_id}"),
        pid: 7,
    }
}

async fn ok<T>(f: impl std::future::Future<Output = Result<T, StateError>>) -> T {
    match f.await {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

// ---- migrations ----

on_both!(opening_twice_migrates_once);
async fn opening_twice_migrates_once(env: &Env) {
    // Two "processes" opening a new store at the same moment.
    let (a, b) = tokio::join!(env.open(), env.open());
    let c = env.open().await;
    for s in [&a, &b, &c] {
        assert_eq!(ok(s.schema_version()).await, 2);
    }
    let applied = ok(c.applied_migrations()).await;
    assert_eq!(applied.len(), 2, "{applied:?}");
    assert_eq!(applied[0].version, 1);
    assert!(applied[0].description.contains("runs"));
    assert_eq!(applied[1].version, 2);
    assert!(applied[1].description.contains("alert"));
    assert!(applied[0].applied_at <= Utc::now());
}

on_both!(a_newer_store_is_refused);
async fn a_newer_store_is_refused(env: &Env) {
    drop(env.open().await);
    env.raw(
        "INSERT INTO schema_migrations (version, description, applied_at)
         VALUES (99, 'from the future', '2030-01-01T00:00:00.000000Z')",
    )
    .await;
    let err = StateStore::open(&env.url, env.root.path())
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("schema version 99"), "{err}");
    assert!(err.contains("upgrade Tributary"), "{err}");
}

// ---- runs ----

on_both!(run_lifecycle_list_and_get);
async fn run_lifecycle_list_and_get(env: &Env) {
    let store = env.open().await;
    let t0 = ago(30);
    let mut r1 = run("20250101T000000Z-aaaa1111", "manual", t0);
    r1.selectors = vec!["silver.orders+".into(), "tag:nightly".into()];
    r1.target = Some("prod".into());
    let mut r2 = run("20250101T000000Z-aaaa2222", "schedule:nightly", ago(20));
    r2.resumed_from = Some(r1.run_id.clone());
    let r3 = run("20250102T000000Z-bbbb3333", "api", ago(10));
    for r in [&r1, &r2, &r3] {
        ok(store.create_run(r)).await;
    }
    let dup = store.create_run(&r1).await.err().map(|e| e.to_string());
    assert!(
        dup.as_deref()
            .is_some_and(|e| e.contains("create_run 20250101T000000Z-aaaa1111")),
        "{dup:?}"
    );

    let mut load = task(&r1.run_id, "bronze.erp_orders", TaskStatus::Succeeded, t0);
    load.detail = json!({"mode": "incremental", "inserted": 10});
    load.bytes = Some(2048);
    ok(store.upsert_task(&load)).await;
    let mut model = task(&r1.run_id, "silver.orders", TaskStatus::Running, ago(25));
    model.rows = None;
    ok(store.upsert_task(&model)).await;
    // The same task again replaces it.
    model.status = TaskStatus::Failed;
    model.error = Some("division by zero in column total".into());
    model.error_class = Some("data".into());
    model.attempts = 2;
    ok(store.upsert_task(&model)).await;
    let mut skipped = task(&r1.run_id, "gold.revenue", TaskStatus::Skipped, t0);
    skipped.started_at = None;
    skipped.finished_at = None;
    skipped.rows = None;
    skipped.version = None;
    skipped.attempts = 0;
    ok(store.upsert_task(&skipped)).await;
    ok(store.upsert_task(&task(
        &r2.run_id,
        "bronze.erp_orders",
        TaskStatus::Succeeded,
        ago(19),
    )))
    .await;

    let finished = ago(5);
    ok(store.finish_run(
        &r1.run_id,
        RunStatus::Failed,
        finished,
        Some("1 task failed"),
    ))
    .await;
    ok(store.heartbeat(&r2.run_id, ago(1))).await;
    let unknown = store.heartbeat("nope", ago(0)).await.err();
    assert!(
        matches!(unknown, Some(StateError::UnknownRun { .. })),
        "{unknown:?}"
    );
    let unknown = store
        .finish_run("nope", RunStatus::Succeeded, ago(0), None)
        .await
        .err();
    assert!(
        matches!(unknown, Some(StateError::UnknownRun { .. })),
        "{unknown:?}"
    );

    // Newest first, with counts.
    let all = ok(store.list_runs(&RunFilter::default())).await;
    let ids: Vec<&str> = all.iter().map(|s| s.run.run_id.as_str()).collect();
    assert_eq!(ids, [&r3.run_id, &r2.run_id, &r1.run_id]);
    let s1 = &all[2];
    assert_eq!(s1.run.status, RunStatus::Failed);
    assert_eq!(s1.run.error.as_deref(), Some("1 task failed"));
    assert_eq!(s1.run.selectors, r1.selectors);
    assert_eq!(s1.run.target.as_deref(), Some("prod"));
    assert_eq!(s1.run.finished_at, Some(finished));
    assert_eq!(s1.run.started_at, t0);
    assert_eq!((s1.tasks, s1.failed, s1.skipped, s1.rows), (3, 1, 1, 10));
    assert_eq!(s1.duration, (finished - t0).to_std().ok());
    assert_eq!(all[1].run.resumed_from.as_deref(), Some(r1.run_id.as_str()));
    assert_eq!(all[1].run.status, RunStatus::Running);
    assert_eq!((all[0].tasks, all[0].rows, all[0].duration), (0, 0, None));
    assert_eq!((all[0].run.host.as_str(), all[0].run.pid), ("host-a", 4242));

    // Filters.
    let ids = |runs: Vec<tributary_orchestrator::state::RunSummary>| -> Vec<String> {
        runs.into_iter().map(|s| s.run.run_id).collect()
    };
    let failed = RunFilter {
        status: Some(RunStatus::Failed),
        ..RunFilter::default()
    };
    assert_eq!(ids(ok(store.list_runs(&failed)).await), [r1.run_id.clone()]);
    let running = RunFilter {
        status: Some(RunStatus::Running),
        ..RunFilter::default()
    };
    assert_eq!(
        ids(ok(store.list_runs(&running)).await),
        [r3.run_id.clone(), r2.run_id.clone()]
    );
    let with_task = RunFilter {
        task: Some("bronze.erp_orders".into()),
        ..RunFilter::default()
    };
    assert_eq!(
        ids(ok(store.list_runs(&with_task)).await),
        [r2.run_id.clone(), r1.run_id.clone()]
    );
    let scheduled = RunFilter {
        trigger: Some("schedule:nightly".into()),
        ..RunFilter::default()
    };
    assert_eq!(
        ids(ok(store.list_runs(&scheduled)).await),
        [r2.run_id.clone()]
    );
    let two = RunFilter {
        limit: 2,
        ..RunFilter::default()
    };
    assert_eq!(
        ids(ok(store.list_runs(&two)).await),
        [r3.run_id.clone(), r2.run_id.clone()]
    );
    let combined = RunFilter {
        limit: 0,
        status: Some(RunStatus::Running),
        task: Some("bronze.erp_orders".into()),
        trigger: Some("schedule:nightly".into()),
    };
    assert_eq!(
        ids(ok(store.list_runs(&combined)).await),
        [r2.run_id.clone()]
    );

    // get_run: full id, unique prefix, ambiguous prefix, unknown.
    let detail = ok(store.get_run(&r1.run_id)).await.unwrap();
    assert_eq!(detail.run, all[2]);
    let tasks: Vec<&str> = detail.tasks.iter().map(|t| t.task_id.as_str()).collect();
    // By start time (the model started later than the load), not started last.
    assert_eq!(
        tasks,
        ["bronze.erp_orders", "silver.orders", "gold.revenue"]
    );
    assert_eq!(detail.tasks[0], load);
    assert_eq!(detail.tasks[1], model);
    assert_eq!(detail.tasks[2], skipped);
    let by_prefix = ok(store.get_run("20250101T000000Z-aaaa2")).await.unwrap();
    assert_eq!(by_prefix.run.run.run_id, r2.run_id);
    assert_eq!(by_prefix.tasks.len(), 1);
    let ambiguous = store.get_run("20250101").await.err().map(|e| e.to_string());
    let ambiguous = ambiguous.unwrap_or_default();
    assert!(ambiguous.contains("ambiguous"), "{ambiguous}");
    assert!(
        ambiguous.contains(&r1.run_id) && ambiguous.contains(&r2.run_id),
        "{ambiguous}"
    );
    assert!(ok(store.get_run("2099")).await.is_none());
    assert!(ok(store.get_run("")).await.is_none());
    // A prefix containing LIKE wildcards matches literally.
    assert!(ok(store.get_run("2025010_")).await.is_none());
    assert!(ok(store.get_run("%")).await.is_none());
}

on_both!(attempts_expectations_and_history);
async fn attempts_expectations_and_history(env: &Env) {
    let store = env.open().await;
    let runs = ["r-1", "r-2", "r-3"];
    for (i, id) in runs.iter().enumerate() {
        let started = ago(300 - 60 * i as i64);
        ok(store.create_run(&run(id, "manual", started))).await;
        let mut t = task(id, "silver.orders", TaskStatus::Succeeded, started);
        t.rows = Some(100 * (i as u64 + 1));
        ok(store.upsert_task(&t)).await;
        ok(store.finish_run(id, RunStatus::Succeeded, ago(250 - 60 * i as i64), None)).await;
    }

    let first = AttemptRecord {
        run_id: "r-3".into(),
        task_id: "silver.orders".into(),
        attempt: 1,
        started_at: ago(180),
        finished_at: Some(ago(179)),
        status: TaskStatus::Failed,
        error: Some("connection refused (127.0.0.1:5432)".into()),
        error_class: Some("connection".into()),
    };
    let mut second = AttemptRecord {
        attempt: 2,
        started_at: ago(178),
        finished_at: None,
        status: TaskStatus::Running,
        error: None,
        error_class: None,
        ..first.clone()
    };
    ok(store.record_attempt(&first)).await;
    ok(store.record_attempt(&second)).await;
    second.status = TaskStatus::Succeeded;
    second.finished_at = Some(ago(170));
    ok(store.record_attempt(&second)).await;

    let mut expectations = Vec::new();
    for (i, id) in runs.iter().enumerate() {
        let e = ExpectationRecord {
            run_id: (*id).into(),
            model: "silver.orders".into(),
            expectation: "positive_total".into(),
            rule: "total > 0".into(),
            on_fail: "drop".into(),
            checked_rows: 100 * (i as u64 + 1),
            failed_rows: i as u64,
            passed: i == 0,
            recorded_at: ago(240 - 60 * i as i64),
        };
        ok(store.record_expectation(&e)).await;
        expectations.push(e);
    }
    let other = ExpectationRecord {
        model: "silver.customers".into(),
        expectation: "unique_id".into(),
        rule: "unique(id)".into(),
        on_fail: "fail".into(),
        recorded_at: ago(50),
        passed: true,
        ..expectations[0].clone()
    };
    ok(store.record_expectation(&other)).await;
    // Recording the same expectation again replaces it.
    expectations[2].failed_rows = 7;
    ok(store.record_expectation(&expectations[2])).await;

    let detail = ok(store.get_run("r-3")).await.unwrap();
    assert_eq!(detail.attempts, vec![first, second]);
    assert_eq!(detail.expectations, vec![expectations[2].clone()]);
    let detail = ok(store.get_run("r-1")).await.unwrap();
    // By model, then expectation.
    assert_eq!(
        detail.expectations,
        vec![other.clone(), expectations[0].clone()]
    );

    let history = ok(store.expectation_history(Some("silver.orders"), 0)).await;
    let expected: Vec<ExpectationRecord> = expectations.iter().rev().cloned().collect();
    assert_eq!(history, expected);
    let latest = ok(store.expectation_history(None, 2)).await;
    assert_eq!(latest, vec![other, expectations[2].clone()]);

    let trend = ok(store.task_history("silver.orders", 2)).await;
    let rows: Vec<(String, Option<u64>)> =
        trend.iter().map(|t| (t.run_id.clone(), t.rows)).collect();
    assert_eq!(rows, [("r-3".into(), Some(300)), ("r-2".into(), Some(200))]);
    assert_eq!(ok(store.task_history("silver.orders", 0)).await.len(), 3);
    assert!(ok(store.task_history("gold.none", 10)).await.is_empty());
}

on_both!(dead_runs_are_reported_abandoned);
async fn dead_runs_are_reported_abandoned(env: &Env) {
    let store = env.open().await;
    // Started five minutes ago and never heard from since: its process died.
    ok(store.create_run(&run("dead", "manual", ago(300)))).await;
    // Started long ago, but heartbeating.
    ok(store.create_run(&run("alive", "manual", ago(600)))).await;
    ok(store.heartbeat("alive", ago(10))).await;
    // Finished long ago: not abandoned.
    ok(store.create_run(&run("done", "manual", ago(900)))).await;
    ok(store.finish_run("done", RunStatus::Succeeded, ago(800), None)).await;

    let status = |runs: &[tributary_orchestrator::state::RunSummary], id: &str| {
        runs.iter()
            .find(|s| s.run.run_id == id)
            .map(|s| s.run.status)
    };
    let all = ok(store.list_runs(&RunFilter::default())).await;
    assert_eq!(status(&all, "dead"), Some(RunStatus::Abandoned));
    assert_eq!(status(&all, "alive"), Some(RunStatus::Running));
    assert_eq!(status(&all, "done"), Some(RunStatus::Succeeded));
    let detail = ok(store.get_run("dead")).await.unwrap();
    assert_eq!(detail.run.run.status, RunStatus::Abandoned);

    let abandoned = RunFilter {
        status: Some(RunStatus::Abandoned),
        ..RunFilter::default()
    };
    let found: Vec<String> = ok(store.list_runs(&abandoned))
        .await
        .into_iter()
        .map(|s| s.run.run_id)
        .collect();
    assert_eq!(found, ["dead"]);

    // A late heartbeat brings it back: the status was never rewritten in storage.
    ok(store.heartbeat("dead", ago(0))).await;
    let detail = ok(store.get_run("dead")).await.unwrap();
    assert_eq!(detail.run.run.status, RunStatus::Running);
    assert!(ok(store.list_runs(&abandoned)).await.is_empty());
}

// ---- leases ----

on_both!(leases_name_their_holder_and_can_be_taken_over);
async fn leases_name_their_holder_and_can_be_taken_over(env: &Env) {
    let store = env.open().await;
    for id in ["r1", "r2", "r3", "r4"] {
        ok(store.create_run(&run(id, "manual", ago(1)))).await;
    }
    let hour = Duration::from_secs(3600);
    let t = "silver.orders";
    assert_eq!(
        ok(store.acquire_lease(t, &holder("r1"), hour)).await,
        LeaseOutcome::Acquired
    );
    let LeaseOutcome::Held {
        holder: h,
        acquired_at,
        expires_at,
    } = ok(store.acquire_lease(t, &holder("r2"), hour)).await
    else {
        panic!("r2 got a lease r1 holds");
    };
    assert_eq!(h, holder("r1"));
    assert!(h.to_string().contains("run r1"), "{h}");
    assert!(expires_at > acquired_at);

    // Re-entrant: the same run gets it again, with a later expiry and the same start.
    assert_eq!(
        ok(store.acquire_lease(t, &holder("r1"), hour * 2)).await,
        LeaseOutcome::Acquired
    );
    let LeaseOutcome::Held {
        acquired_at: acquired_again,
        expires_at: extended,
        ..
    } = ok(store.acquire_lease(t, &holder("r2"), hour)).await
    else {
        panic!("r2 got a lease r1 holds");
    };
    assert_eq!(acquired_again, acquired_at);
    assert!(extended > expires_at + chrono::Duration::minutes(50));

    // Renewal moves the expiry of every lease the run holds.
    assert_eq!(
        ok(store.acquire_lease("gold.revenue", &holder("r1"), hour)).await,
        LeaseOutcome::Acquired
    );
    ok(store.renew_leases("r1", hour * 10)).await;
    for resource in [t, "gold.revenue"] {
        match ok(store.acquire_lease(resource, &holder("r2"), hour)).await {
            LeaseOutcome::Held { expires_at, .. } => {
                assert!(
                    expires_at > Utc::now() + chrono::Duration::hours(9),
                    "{resource}"
                )
            }
            LeaseOutcome::Acquired => panic!("r2 got {resource}"),
        }
    }

    // Released: the next run gets it.
    ok(store.release_leases("r1")).await;
    assert_eq!(
        ok(store.acquire_lease(t, &holder("r2"), hour)).await,
        LeaseOutcome::Acquired
    );
    assert_eq!(
        ok(store.acquire_lease("gold.revenue", &holder("r3"), hour)).await,
        LeaseOutcome::Acquired
    );

    // Expired: taken over.
    assert_eq!(
        ok(store.acquire_lease("bronze.x", &holder("r3"), Duration::ZERO)).await,
        LeaseOutcome::Acquired
    );
    assert_eq!(
        ok(store.acquire_lease("bronze.x", &holder("r4"), hour)).await,
        LeaseOutcome::Acquired
    );

    // Held by a run whose process died (no heartbeat for minutes): taken over.
    ok(store.create_run(&run("dead", "manual", ago(600)))).await;
    assert_eq!(
        ok(store.acquire_lease("bronze.y", &holder("dead"), hour)).await,
        LeaseOutcome::Acquired
    );
    assert_eq!(
        ok(store.acquire_lease("bronze.y", &holder("r4"), hour)).await,
        LeaseOutcome::Acquired
    );

    // Held by a run that finished without releasing: taken over.
    ok(store.finish_run("r4", RunStatus::Succeeded, ago(0), None)).await;
    assert_eq!(
        ok(store.acquire_lease("bronze.y", &holder("r3"), hour)).await,
        LeaseOutcome::Acquired
    );
    // r3 still holds gold.revenue: a live run keeps its lease.
    assert!(matches!(
        ok(store.acquire_lease("gold.revenue", &holder("r2"), hour)).await,
        LeaseOutcome::Held { .. }
    ));
}

on_both!(racing_for_a_lease_exactly_one_wins);
async fn racing_for_a_lease_exactly_one_wins(env: &Env) {
    // Two stores on one file or schema stand for two processes.
    let a = env.open().await;
    let b = env.open().await;
    let contenders = 12;
    for i in 0..contenders {
        ok(a.create_run(&run(&format!("race-{i}"), "manual", ago(1)))).await;
    }
    for resource in ["silver.a", "silver.b", "silver.c"] {
        let mut handles = Vec::new();
        for i in 0..contenders {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            let resource = resource.to_string();
            handles.push(tokio::spawn(async move {
                store
                    .acquire_lease(
                        &resource,
                        &holder(&format!("race-{i}")),
                        Duration::from_secs(60),
                    )
                    .await
            }));
        }
        let mut winners = Vec::new();
        let mut holders = Vec::new();
        for (i, h) in handles.into_iter().enumerate() {
            match h.await.unwrap() {
                Ok(LeaseOutcome::Acquired) => winners.push(format!("race-{i}")),
                Ok(LeaseOutcome::Held { holder, .. }) => holders.push(holder.run_id),
                Err(e) => panic!("{resource}: {e}"),
            }
        }
        assert_eq!(winners.len(), 1, "{resource}: {winners:?}");
        assert!(
            holders.iter().all(|h| h == &winners[0]),
            "{resource}: {holders:?} vs {winners:?}"
        );
    }
}

// ---- schedules ----

on_both!(schedule_fires_round_trip);
async fn schedule_fires_round_trip(env: &Env) {
    let store = env.open().await;
    assert!(ok(store.last_schedule_fire("nightly")).await.is_none());
    let fire = |schedule: &str, mins_ago: i64, outcome: &str| ScheduleFire {
        schedule: schedule.into(),
        fire_time: ago(mins_ago * 60),
        recorded_at: ago(mins_ago * 60 - 1),
        outcome: outcome.into(),
        run_id: (outcome == "started").then(|| format!("{schedule}-{mins_ago}")),
        note: (outcome != "started").then(|| "the previous run was still going".to_string()),
    };
    let fires = [
        fire("nightly", 30, "started"),
        fire("nightly", 20, "skipped_overlap"),
        fire("hourly", 25, "started"),
        fire("nightly", 10, "missed"),
    ];
    for f in &fires {
        ok(store.record_schedule_fire(f)).await;
    }
    assert_eq!(
        ok(store.last_schedule_fire("nightly")).await,
        Some(fires[3].clone())
    );
    assert_eq!(
        ok(store.last_schedule_fire("hourly")).await,
        Some(fires[2].clone())
    );
    assert_eq!(
        ok(store.schedule_fires(Some("nightly"), 0)).await,
        vec![fires[3].clone(), fires[1].clone(), fires[0].clone()]
    );
    assert_eq!(
        ok(store.schedule_fires(None, 2)).await,
        vec![fires[3].clone(), fires[1].clone()]
    );
    // The same fire time again replaces the record (e.g. started, then error).
    let mut again = fires[3].clone();
    again.outcome = "error".into();
    again.note = Some("could not start: state store busy".into());
    ok(store.record_schedule_fire(&again)).await;
    assert_eq!(ok(store.last_schedule_fire("nightly")).await, Some(again));
    assert_eq!(ok(store.schedule_fires(None, 0)).await.len(), 4);
}

// ---- SQLite only: the store written before migrations ----

#[tokio::test]
async fn pre_migration_sqlite_store_keeps_its_history() {
    let env = Env::sqlite();
    let path = env.sqlite_path();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    {
        // The DDL and writes of the CLI before the orchestrator (crates/cli/src/state.rs).
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE IF NOT EXISTS runs (
                run_id TEXT PRIMARY KEY, command TEXT NOT NULL, started_at TEXT NOT NULL,
                finished_at TEXT, status TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS table_loads (
                run_id TEXT NOT NULL, target TEXT NOT NULL, status TEXT NOT NULL,
                rows INTEGER NOT NULL, version INTEGER, seconds REAL NOT NULL, error TEXT,
                PRIMARY KEY (run_id, target));
             CREATE TABLE IF NOT EXISTS expectation_results (
                run_id TEXT NOT NULL, model TEXT NOT NULL, expectation TEXT NOT NULL,
                rule TEXT NOT NULL, on_fail TEXT NOT NULL, checked_rows INTEGER NOT NULL,
                failed_rows INTEGER NOT NULL, passed INTEGER NOT NULL,
                PRIMARY KEY (run_id, model, expectation));
             INSERT INTO runs VALUES ('20240501T100000Z-11111111', 'run',
                '2024-05-01T10:00:00.123456789+00:00', '2024-05-01T10:00:05.5+00:00', 'ok');
             INSERT INTO runs VALUES ('20240502T100000Z-22222222', 'run',
                '2024-05-02T10:00:00+00:00', '2024-05-02T10:01:00+00:00', 'failed');
             INSERT INTO runs VALUES ('20240503T100000Z-33333333', 'run',
                '2024-05-03T10:00:00+00:00', NULL, 'running');
             INSERT INTO table_loads VALUES ('20240501T100000Z-11111111', 'bronze.erp_orders',
                'ok', 120, 4, 1.25, NULL);
             INSERT INTO table_loads VALUES ('20240501T100000Z-11111111', 'silver.orders',
                'ok', 118, 2, 0.5, NULL);
             INSERT INTO table_loads VALUES ('20240502T100000Z-22222222', 'bronze.erp_orders',
                'failed', 0, NULL, 0.1, 'connection refused');
             INSERT INTO table_loads VALUES ('20240502T100000Z-22222222', 'gold.revenue',
                'skipped', 0, NULL, 0.0, 'skipped: upstream bronze.erp_orders failed');
             INSERT INTO expectation_results VALUES ('20240501T100000Z-11111111',
                'silver.orders', 'positive_total', 'total > 0', 'drop', 120, 2, 1);",
        )
        .unwrap();
    }

    let store = env.open().await;
    assert_eq!(ok(store.schema_version()).await, 2);
    let runs = ok(store.list_runs(&RunFilter::default())).await;
    let summary: Vec<(String, RunStatus, u32, u32, u32, u64)> = runs
        .iter()
        .map(|s| {
            (
                s.run.run_id.clone(),
                s.run.status,
                s.tasks,
                s.failed,
                s.skipped,
                s.rows,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "20240503T100000Z-33333333".into(),
                RunStatus::Abandoned,
                0,
                0,
                0,
                0
            ),
            (
                "20240502T100000Z-22222222".into(),
                RunStatus::Failed,
                2,
                1,
                1,
                0
            ),
            (
                "20240501T100000Z-11111111".into(),
                RunStatus::Succeeded,
                2,
                0,
                0,
                238
            ),
        ]
    );
    assert!(runs.iter().all(|s| s.run.trigger == "manual"));
    assert_eq!(
        runs[2].run.started_at.to_rfc3339(),
        "2024-05-01T10:00:00.123456+00:00"
    );
    assert_eq!(runs[2].duration, Some(Duration::from_micros(5_376_544)));

    let first = ok(store.get_run("20240501")).await.unwrap();
    type TaskRow<'a> = (&'a str, &'a str, TaskStatus, Option<u64>, Option<i64>);
    let kinds: Vec<TaskRow> = first
        .tasks
        .iter()
        .map(|t| {
            (
                t.task_id.as_str(),
                t.kind.as_str(),
                t.status,
                t.rows,
                t.version,
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (
                "bronze.erp_orders",
                "load",
                TaskStatus::Succeeded,
                Some(120),
                Some(4)
            ),
            (
                "silver.orders",
                "model",
                TaskStatus::Succeeded,
                Some(118),
                Some(2)
            ),
        ]
    );
    assert_eq!(first.tasks[0].detail, json!({"seconds": 1.25}));
    assert!(first.tasks.iter().all(|t| t.attempts == 1));
    assert_eq!(first.attempts.len(), 2);
    assert_eq!(first.expectations.len(), 1);
    let e = &first.expectations[0];
    assert_eq!(
        (
            e.expectation.as_str(),
            e.checked_rows,
            e.failed_rows,
            e.passed
        ),
        ("positive_total", 120, 2, true)
    );
    assert_eq!(Some(e.recorded_at), first.run.run.finished_at);

    let second = ok(store.get_run("20240502")).await.unwrap();
    let failed = second
        .tasks
        .iter()
        .find(|t| t.task_id == "bronze.erp_orders")
        .unwrap();
    assert_eq!(failed.error.as_deref(), Some("connection refused"));
    assert_eq!(second.attempts[0].status, TaskStatus::Failed);
    let skipped = second
        .tasks
        .iter()
        .find(|t| t.task_id == "gold.revenue")
        .unwrap();
    assert_eq!(
        (skipped.kind.as_str(), skipped.status),
        ("model", TaskStatus::Skipped)
    );

    // The old tables are gone; opening again changes nothing.
    drop(store);
    let store = env.open().await;
    // Migration 1 (the history) and 2 (alerts), each once.
    assert_eq!(ok(store.applied_migrations()).await.len(), 2);
    assert_eq!(ok(store.list_runs(&RunFilter::default())).await.len(), 3);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let legacy: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name IN
                ('table_loads', 'expectation_results', 'legacy_runs', 'legacy_table_loads')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(legacy, 0);
}

#[tokio::test]
async fn sqlite_locations() {
    let env = Env::sqlite();
    let store = env.open().await;
    assert_eq!(
        store.location(),
        format!("sqlite://{}", env.sqlite_path().display())
    );
    assert!(env.sqlite_path().exists());
    // An absolute path is used as is.
    let other = tempfile::tempdir().unwrap();
    let abs = other.path().join("nested/state.db");
    let url = format!("sqlite://{}", abs.display());
    drop(ok(StateStore::open(&url, env.root.path())).await);
    assert!(abs.exists());

    for bad in ["mysql://root@localhost/x", "sqlite://", "state.db"] {
        let err = StateStore::open(bad, env.root.path()).await.err();
        assert!(
            matches!(err, Some(StateError::InvalidLocation { .. })),
            "{bad}: {err:?}"
        );
    }
}

// ---- PostgreSQL only ----

const PASSWORD: &str = "Sup3r-Secret_pw";

#[tokio::test]
async fn postgres_password_never_shows() {
    // A refused connection (nothing listens on port 1): no server needed.
    let url = format!("postgres://postgres:{PASSWORD}@127.0.0.1:1/test?schema=s");
    let root = tempfile::tempdir().unwrap();
    let err = StateStore::open(&url, root.path()).await.err().unwrap();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(PASSWORD), "{shown}");
    assert!(
        shown.contains("127.0.0.1:1") || shown.contains("127.0.0.1"),
        "{shown}"
    );
    assert!(err.is_retryable(), "{shown}");
    assert!(matches!(err, StateError::Unavailable { .. }), "{shown}");

    // TLS is refused up front, password hidden.
    let err = StateStore::open(
        &format!("postgresql://postgres:{PASSWORD}@127.0.0.1:1/test?sslmode=require"),
        root.path(),
    )
    .await
    .err()
    .unwrap();
    let shown = format!("{err} {err:?}");
    assert!(
        shown.contains("TLS to the state database is not supported"),
        "{shown}"
    );
    assert!(!shown.contains(PASSWORD), "{shown}");

    // A reachable server (trust auth accepts any password).
    let Some(admin) = pg_admin().await else {
        return;
    };
    let schema = unique_name("state_pw");
    let base = url::Url::parse(&pg_url()).unwrap();
    let mut with_password = base.clone();
    with_password.set_password(Some(PASSWORD)).unwrap();
    let url = with_query(with_password.as_str(), &format!("schema={schema}"));
    let outcome = AssertUnwindSafe(async {
        let store = ok(StateStore::open(&url, root.path())).await;
        assert!(!store.location().contains(PASSWORD), "{}", store.location());
        assert!(store.location().contains(&schema), "{}", store.location());
        let err = store.heartbeat("missing", ago(0)).await.err().unwrap();
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(PASSWORD), "{shown}");
        assert!(shown.contains("missing"), "{shown}");
        let err = store
            .create_run(&run("x", "manual", ago(0)))
            .await
            .and(store.create_run(&run("x", "manual", ago(0))).await);
        let shown = format!("{err:?}");
        assert!(shown.contains("create_run x"), "{shown}");
        assert!(!shown.contains(PASSWORD), "{shown}");
        assert!(!format!("{store:?}").contains(PASSWORD));
    })
    .catch_unwind()
    .await;
    let _ = admin
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test]
async fn postgres_reconnects_after_the_server_closed_the_connection() {
    let Some(env) = Env::postgres().await else {
        return;
    };
    let app = unique_name("tributary_state_test");
    let url = with_query(&env.url, &format!("application_name={app}"));
    let outcome = AssertUnwindSafe(async {
        let store = ok(StateStore::open(&url, env.root.path())).await;
        ok(store.create_run(&run("before", "manual", ago(0)))).await;
        // What a server restart does to the store's session.
        let admin = &env.pg.as_ref().unwrap().client;
        let killed = admin
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                &[&app],
            )
            .await
            .unwrap();
        assert_eq!(killed.len(), 1);
        ok(store.create_run(&run("after", "manual", ago(0)))).await;
        assert_eq!(ok(store.list_runs(&RunFilter::default())).await.len(), 2);
    })
    .catch_unwind()
    .await;
    env.cleanup().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test]
async fn postgres_tables_live_in_the_chosen_schema() {
    let Some(env) = Env::postgres().await else {
        return;
    };
    let outcome = AssertUnwindSafe(async {
        let store = env.open().await;
        ok(store.create_run(&run("in-schema", "manual", ago(0)))).await;
        let pg = env.pg.as_ref().unwrap();
        let tables: Vec<String> = pg
            .client
            .query(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1
                 ORDER BY 1",
                &[&pg.schema],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(
            tables,
            [
                "alert_deliveries",
                "alert_states",
                "attempts",
                "expectations",
                "incidents",
                "leases",
                "runs",
                "schedule_fires",
                "schema_migrations",
                "tasks"
            ]
        );
        let n: i64 = pg
            .client
            .query_one(&format!("SELECT COUNT(*) FROM {}.runs", pg.schema), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 1);
    })
    .catch_unwind()
    .await;
    env.cleanup().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

// ---- alerts ----

on_both!(alert_states_deliveries_and_incidents_round_trip);
async fn alert_states_deliveries_and_incidents_round_trip(env: &Env) {
    let store = env.open().await;
    let t0 = ago(60);
    let state = AlertStateRecord {
        dedup_key: "failures|bronze.a|connection".into(),
        rule: "failures".into(),
        subject: "bronze.a".into(),
        error_class: "connection".into(),
        severity: "error".into(),
        status: "firing".into(),
        summary: "task bronze.a failed (connection)".into(),
        first_fired_at: t0,
        last_fired_at: t0,
        resolved_at: None,
        occurrences: 1,
        last_run_id: Some("r1".into()),
    };
    ok(store.put_alert_state(&state)).await;
    let again = AlertStateRecord {
        occurrences: 2,
        last_fired_at: ago(10),
        last_run_id: Some("r2".into()),
        ..state.clone()
    };
    ok(store.put_alert_state(&again)).await;
    assert_eq!(
        ok(store.alert_state(&state.dedup_key)).await,
        Some(again.clone())
    );
    assert_eq!(
        ok(store.firing_alerts(Some("failures"))).await,
        vec![again.clone()]
    );
    assert!(ok(store.firing_alerts(Some("other"))).await.is_empty());
    let resolved = AlertStateRecord {
        status: "resolved".into(),
        resolved_at: Some(ago(5)),
        ..again
    };
    ok(store.put_alert_state(&resolved)).await;
    assert!(ok(store.firing_alerts(None)).await.is_empty());
    assert_eq!(ok(store.alert_state("nope")).await, None);

    for (attempt, status, code) in [(1, "retrying", 500), (2, "delivered", 200)] {
        ok(store.record_delivery(&DeliveryRecord {
            alert_id: "a1".into(),
            channel: "hook".into(),
            attempt,
            rule: "failures".into(),
            dedup_key: state.dedup_key.clone(),
            event: "firing".into(),
            run_id: Some("r1".into()),
            status: status.into(),
            http_status: Some(code),
            error: (code == 500).then(|| "POST http://h/…: HTTP 500".to_string()),
            attempted_at: ago(50 - i64::from(attempt)),
        }))
        .await;
    }
    let d = ok(store.deliveries(0)).await;
    let seen: Vec<(u32, &str, Option<u32>)> = d
        .iter()
        .map(|d| (d.attempt, d.status.as_str(), d.http_status))
        .collect();
    assert_eq!(
        seen,
        [(2, "delivered", Some(200)), (1, "retrying", Some(500))]
    );
    assert_eq!(ok(store.deliveries(1)).await.len(), 1);

    let inc = IncidentRecord {
        incident_id: "i1".into(),
        channel: "jira".into(),
        dedup_key: state.dedup_key.clone(),
        rule: "failures".into(),
        external_key: "SD-1".into(),
        status: "open".into(),
        opened_at: t0,
        updated_at: t0,
        resolved_at: None,
        occurrences: 1,
        last_run_id: Some("r1".into()),
    };
    ok(store.put_incident(&inc)).await;
    assert_eq!(
        ok(store.open_incident("jira", &state.dedup_key)).await,
        Some(inc.clone())
    );
    assert_eq!(
        ok(store.open_incident("other", &state.dedup_key)).await,
        None
    );
    // A second open incident for the same channel and key is refused.
    let second = IncidentRecord {
        incident_id: "i2".into(),
        external_key: "SD-2".into(),
        ..inc.clone()
    };
    assert!(store.put_incident(&second).await.is_err());
    ok(store.put_incident(&IncidentRecord {
        status: "resolved".into(),
        resolved_at: Some(ago(1)),
        occurrences: 2,
        ..inc.clone()
    }))
    .await;
    assert_eq!(
        ok(store.open_incident("jira", &state.dedup_key)).await,
        None
    );
    // Once resolved, a new one may open.
    ok(store.put_incident(&second)).await;
    let all = ok(store.incidents(0)).await;
    let keys: Vec<(&str, &str, u32)> = all
        .iter()
        .map(|i| (i.external_key.as_str(), i.status.as_str(), i.occurrences))
        .collect();
    assert_eq!(keys, [("SD-1", "resolved", 2), ("SD-2", "open", 1)]);
}
