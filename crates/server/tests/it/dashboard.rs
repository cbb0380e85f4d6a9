//! The dashboard's pages on a real run history (SQLite) and lake (a local folder): values from
//! the data are shown escaped, whatever they hold.

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use tokio_util::sync::CancellationToken;
use tributary_lake::Lake;
use tributary_orchestrator::dag::Dag;
use tributary_orchestrator::state::{
    AttemptRecord, ExpectationRecord, RunRecord, RunStatus, StateStore, TaskRecord, TaskStatus,
};
use tributary_server::{Dashboard, ServerConfig, bind, router};

use crate::RecordingLauncher;

/// Markup, quotes and an ampersand.
const EVIL: &str = "<script>alert(\"x\") & 'y'</script>";
/// `EVIL` as the templates write it.
const EVIL_ESCAPED: &str =
    "&lt;script&gt;alert(&quot;x&quot;) &amp; &#x27;y&#x27;&lt;&#x2f;script&gt;";

/// A failed run whose task, error, trigger and expectation model (a table name) hold `EVIL`.
async fn history(dir: &std::path::Path) -> StateStore {
    let state = StateStore::open("sqlite://state.db", dir).await.unwrap();
    let t0 = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap();
    let t1 = t0 + chrono::Duration::seconds(3);
    state
        .create_run(&RunRecord {
            run_id: "run-1".into(),
            trigger: format!("manual {EVIL}"),
            selectors: vec![],
            target: None,
            status: RunStatus::Running,
            started_at: t0,
            finished_at: None,
            error: None,
            resumed_from: None,
            host: "host".into(),
            pid: 1,
        })
        .await
        .unwrap();
    let task_id = format!("silver.t{EVIL}");
    state
        .upsert_task(&TaskRecord {
            run_id: "run-1".into(),
            task_id: task_id.clone(),
            kind: "model".into(),
            status: TaskStatus::Failed,
            started_at: Some(t0),
            finished_at: Some(t1),
            attempts: 1,
            rows: None,
            bytes: None,
            version: None,
            error: Some(format!("the model failed: {EVIL}")),
            error_class: Some("query".into()),
            detail: serde_json::json!({}),
        })
        .await
        .unwrap();
    state
        .record_attempt(&AttemptRecord {
            run_id: "run-1".into(),
            task_id,
            attempt: 1,
            started_at: t0,
            finished_at: Some(t1),
            status: TaskStatus::Failed,
            error: Some(format!("attempt: {EVIL}")),
            error_class: Some("query".into()),
        })
        .await
        .unwrap();
    state
        .record_expectation(&ExpectationRecord {
            run_id: "run-1".into(),
            model: format!("silver.{EVIL}"),
            expectation: "not_null(id)".into(),
            rule: "id IS NOT NULL".into(),
            on_fail: "warn".into(),
            checked_rows: 10,
            failed_rows: 1,
            passed: false,
            recorded_at: t1,
        })
        .await
        .unwrap();
    state
        .finish_run(
            "run-1",
            RunStatus::Failed,
            t1,
            Some(&format!("run: {EVIL}")),
        )
        .await
        .unwrap();
    state
}

#[tokio::test]
async fn values_from_the_data_are_shown_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let state = history(dir.path()).await;
    let lake = Lake::new("lake", dir.path(), &Default::default()).unwrap();
    let dashboard = Dashboard::new(
        format!("acme {EVIL}"),
        state,
        lake,
        Arc::new(Dag::default()),
    );
    let server = bind(ServerConfig::new(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        None,
    ))
    .await
    .unwrap();
    let port = server.local_addr().port();
    let app = router(
        server
            .state(Arc::new(RecordingLauncher::default()))
            .with_dashboard(dashboard),
        tributary_server::axum::Router::new(),
    );
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(server.run(app, shutdown.clone()));
    let get = |path: String| async move {
        let r = reqwest::get(format!("http://127.0.0.1:{port}{path}"))
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        r.text().await.unwrap()
    };

    let task_page = format!("/tasks/silver.t{}", percent(EVIL));
    for path in ["/runs".to_string(), "/runs/run-1".into(), task_page] {
        let page = get(path.clone()).await;
        // The only script is the page's own; the value is there, escaped.
        assert_eq!(page.matches("<script").count(), 1, "{path}:\n{page}");
        assert!(!page.contains("alert(\"x\")"), "{path}:\n{page}");
        assert!(page.contains(EVIL_ESCAPED), "{path}:\n{page}");
    }
    let run = get("/runs/run-1".into()).await;
    for shown in [
        // The run's error, the task's error and the attempt's, the trigger and the project.
        format!("<dd class=\"err\">run: {EVIL_ESCAPED}</dd>"),
        format!("<td class=\"err\">the model failed: {EVIL_ESCAPED}</td>"),
        format!("<td class=\"err\">attempt: {EVIL_ESCAPED}</td>"),
        format!("<dd>manual {EVIL_ESCAPED}</dd>"),
        format!("<span class=\"project\">acme {EVIL_ESCAPED}</span>"),
        // The expectation's model: a table name, as a link's text (its address encoded).
        format!(">silver.{EVIL_ESCAPED}</a>"),
        // The timeline (SVG the code draws) escapes the task id too.
        "silver.t&lt;script&gt;alert(&quot;x&quot;) &amp; &#39;y&#39;&lt;/script&gt; attempt 1"
            .to_string(),
    ] {
        assert!(run.contains(&shown), "`{shown}` missing in:\n{run}");
    }
    assert!(run.contains("<svg class=\"gantt\""), "{run}");
    // The JSON API sends the values as they are.
    let json: serde_json::Value =
        serde_json::from_str(&get("/api/runs/run-1".into()).await).unwrap();
    assert_eq!(json["run"]["run"]["error"], format!("run: {EVIL}"));

    shutdown.cancel();
    handle.await.unwrap().unwrap();
}

/// `s` percent-encoded as a path segment.
fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
