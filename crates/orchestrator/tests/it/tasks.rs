//! `command` and `http` tasks against real processes and a real HTTP server on loopback.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;
use tributary_core::pipeline::TaskConfig;
use tributary_orchestrator::tasks::{CommandContext, HttpContext, run_command, run_http};
use tributary_orchestrator::{ErrorClass, TaskError};

fn task(v: serde_json::Value) -> TaskConfig {
    serde_json::from_value(v).unwrap()
}

fn ctx(root: &Path) -> CommandContext {
    CommandContext {
        project_root: root.to_path_buf(),
        run_id: "run-42".into(),
        extra_env: vec![],
    }
}

fn message(e: &TaskError) -> String {
    e.to_string()
}

/// Run a command task that must fail: the class and message of its error.
async fn command_error(t: &TaskConfig, root: &Path) -> (ErrorClass, String) {
    let err = run_command(t, &ctx(root), CancellationToken::new())
        .await
        .unwrap_err();
    (err.class, message(&err))
}

/// Run an HTTP task that must fail: the class, message and `Retry-After` of its error.
async fn http_error(t: &TaskConfig) -> (ErrorClass, String, Option<Duration>) {
    let err = run_http(t, &http_ctx(), CancellationToken::new())
        .await
        .unwrap_err();
    (err.class, message(&err), err.retry_after)
}

/// Logs written while `f` runs on this thread (the test runtime is single-threaded).
struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    fn start() -> (LogCapture, tracing::subscriber::DefaultGuard) {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || SharedWriter(writer.clone()))
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        (LogCapture(buf), guard)
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

struct SharedWriter(Arc<Mutex<Vec<u8>>>);

impl Write for SharedWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Wait (up to 20 s) for a process to end; whether it did.
async fn ends(pid: i32) -> bool {
    for _ in 0..200 {
        if tributary_testkit::process_gone(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Wait (up to 20 s) for a file written by a test script; its trimmed content.
async fn file_appears(path: &Path) -> String {
    for _ in 0..200 {
        if let Ok(s) = std::fs::read_to_string(path)
            && s.ends_with('\n')
        {
            return s.trim().to_string();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{} was not written", path.display());
}

// ------------------------------------------------------------------------------------------
// command
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn command_success_counts_lines() {
    let dir = tempfile::tempdir().unwrap();
    let t = task(serde_json::json!({
        "name": "hello", "type": "command",
        "command": "echo one; echo two; echo warning >&2",
    }));
    let out = run_command(&t, &ctx(dir.path()), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(out.exit_code, 0);
    assert_eq!(out.stdout_lines, 2);
    assert_eq!(out.stderr_lines, 1);
}

#[tokio::test]
async fn command_failure_has_status_and_stderr_tail() {
    let dir = tempfile::tempdir().unwrap();
    let t = task(serde_json::json!({
        "name": "fails", "type": "command",
        "command": ["sh", "-c", "for i in $(seq 1 30); do echo \"problem $i\" >&2; done; exit 3"],
    }));
    let (class, m) = command_error(&t, dir.path()).await;
    assert_eq!(class, ErrorClass::Task);
    assert!(m.contains("exited with status 3"), "{m}");
    assert!(m.contains("problem 30") && m.contains("problem 11"), "{m}");
    assert!(
        !m.contains("problem 10\n") && !m.ends_with("problem 10"),
        "{m}"
    );

    let t = task(serde_json::json!({
        "name": "killed", "type": "command", "command": "kill -9 $$",
    }));
    let (class, m) = command_error(&t, dir.path()).await;
    assert_eq!(class, ErrorClass::Task);
    assert!(m.contains("killed by signal 9 (SIGKILL)"), "{}", m);
}

#[tokio::test]
async fn command_env_and_cwd() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("scripts")).unwrap();
    let script = dir.path().join("scripts/show.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\npwd > seen.txt\necho \"$TRIBUTARY_RUN_ID|$TRIBUTARY_TASK|$TRIBUTARY_PROJECT_DIR|$GREETING|$FROM_RUN\" >> seen.txt\nread line || echo stdin-empty >> seen.txt\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let t = task(serde_json::json!({
        "name": "show", "type": "command",
        "command": ["./show.sh"], "cwd": "scripts", "env": {"GREETING": "hello world"},
    }));
    let mut c = ctx(dir.path());
    c.extra_env = vec![("FROM_RUN".into(), "extra".into())];
    run_command(&t, &c, CancellationToken::new()).await.unwrap();
    let seen = std::fs::read_to_string(dir.path().join("scripts/seen.txt")).unwrap();
    let root = dir.path().canonicalize().unwrap();
    let lines: Vec<&str> = seen.lines().collect();
    assert_eq!(
        Path::new(lines[0]).canonicalize().unwrap(),
        root.join("scripts")
    );
    let fields: Vec<&str> = lines[1].split('|').collect();
    assert_eq!(fields[0], "run-42");
    assert_eq!(fields[1], "show");
    assert_eq!(Path::new(fields[2]).canonicalize().unwrap(), root);
    assert_eq!(&fields[3..], ["hello world", "extra"]);
    assert_eq!(lines[2], "stdin-empty");
}

#[tokio::test]
async fn command_env_secrets_stay_out_of_errors_and_logs() {
    let dir = tempfile::tempdir().unwrap();
    let (logs, _guard) = LogCapture::start();
    let t = task(serde_json::json!({
        "name": "leaky", "type": "command",
        "command": "echo \"token is $API_TOKEN\"; echo \"bad token $API_TOKEN\" >&2; exit 1",
        "env": {"API_TOKEN": "tok-3f9a7c1e"},
    }));
    let (class, m) = command_error(&t, dir.path()).await;
    assert_eq!(class, ErrorClass::Task);
    assert!(m.contains("bad token ***"), "{m}");
    assert!(!m.contains("tok-3f9a7c1e"), "{m}");
    let logged = logs.text();
    assert!(logged.contains("token is ***"), "{logged}");
    assert!(!logged.contains("tok-3f9a7c1e"), "{logged}");
}

#[tokio::test]
async fn command_not_found_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let t = task(serde_json::json!({
        "name": "nope", "type": "command", "command": ["no-such-program-xyz", "--flag"],
    }));
    let (class, m) = command_error(&t, dir.path()).await;
    assert_eq!(class, ErrorClass::Config);
    assert!(m.contains("no-such-program-xyz"), "{m}");
    assert!(m.contains(&dir.path().display().to_string()), "{m}");

    std::fs::write(dir.path().join("data.txt"), "not a program").unwrap();
    let t = task(serde_json::json!({
        "name": "noexec", "type": "command", "command": ["./data.txt"],
    }));
    let (class, m) = command_error(&t, dir.path()).await;
    assert_eq!(class, ErrorClass::Config, "{}", m);
    assert!(m.contains("data.txt"), "{}", m);

    let t = task(serde_json::json!({
        "name": "shellnope", "type": "command", "command": "no-such-program-xyz --flag",
    }));
    let (class, m) = command_error(&t, dir.path()).await;
    assert_eq!(class, ErrorClass::Config, "{}", m);
    assert!(m.contains("status 127"), "{}", m);

    let t = task(serde_json::json!({
        "name": "nocwd", "type": "command", "command": ["true"], "cwd": "missing",
    }));
    let (class, m) = command_error(&t, dir.path()).await;
    assert_eq!(class, ErrorClass::Config);
    assert!(m.contains("missing"), "{}", m);
}

#[tokio::test]
async fn cancel_sends_sigterm_then_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    // Ignores SIGTERM (it only notes it), so only SIGKILL stops it.
    let t = task(serde_json::json!({
        "name": "stubborn", "type": "command",
        "command": "trap 'echo term >> got_term' TERM; echo $$ > pid; while true; do sleep 0.2; done",
    }));
    let cancel = CancellationToken::new();
    let c = ctx(dir.path());
    let run = tokio::spawn({
        let cancel = cancel.clone();
        let t = t.clone();
        async move { run_command(&t, &c, cancel).await }
    });
    let pid: i32 = file_appears(&dir.path().join("pid")).await.parse().unwrap();
    cancel.cancel();
    let err = run.await.unwrap().unwrap_err();
    assert_eq!(err.class, ErrorClass::Cancelled);
    let m = message(&err);
    assert!(m.contains("SIGKILL"), "{m}");
    assert!(tributary_testkit::process_gone(pid));
    let got = std::fs::read_to_string(dir.path().join("got_term")).unwrap();
    assert!(got.contains("term"), "{got}");

    // A program that stops on SIGTERM.
    let t = task(serde_json::json!({
        "name": "polite", "type": "command", "command": "echo $$ > pid2; exec sleep 1000",
    }));
    let cancel = CancellationToken::new();
    let c = ctx(dir.path());
    let run = tokio::spawn({
        let cancel = cancel.clone();
        async move { run_command(&t, &c, cancel).await }
    });
    file_appears(&dir.path().join("pid2")).await;
    cancel.cancel();
    let err = run.await.unwrap().unwrap_err();
    assert_eq!(err.class, ErrorClass::Cancelled);
    assert!(message(&err).contains("SIGTERM"), "{}", message(&err));
}

#[tokio::test]
async fn dropping_the_future_kills_grandchildren() {
    let dir = tempfile::tempdir().unwrap();
    let t = task(serde_json::json!({
        "name": "spawner", "type": "command",
        "command": "sleep 1000 & echo $! > child.pid; wait",
    }));
    let c = ctx(dir.path());
    // Boxed, so that dropping it drops the future itself (not a pinned reference).
    let mut fut = Box::pin(run_command(&t, &c, CancellationToken::new()));
    let pidfile = dir.path().join("child.pid");
    let pid: i32 = loop {
        tokio::select! {
            r = &mut fut => panic!("the command ended: {r:?}"),
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
        if let Ok(s) = std::fs::read_to_string(&pidfile)
            && s.ends_with('\n')
        {
            break s.trim().parse().unwrap();
        }
    };
    assert!(!tributary_testkit::process_gone(pid));
    // What the executor's timeout does.
    drop(fut);
    assert!(ends(pid).await, "the grandchild {pid} survived");
}

// ------------------------------------------------------------------------------------------
// http
// ------------------------------------------------------------------------------------------

#[derive(Default)]
struct Recorded {
    /// Requests per path (and run id for status requests).
    counts: HashMap<String, u32>,
    /// Bodies of POST /jobs/run.
    bodies: Vec<serde_json::Value>,
}

type Shared = Arc<Mutex<Recorded>>;

fn count(state: &Shared, key: &str) -> u32 {
    let mut r = state.lock().unwrap();
    let n = r.counts.entry(key.to_string()).or_default();
    *n += 1;
    *n
}

async fn status(
    UrlPath(code): UrlPath<u16>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    // Echoes what it was sent, as careless servers do.
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut resp = (
        StatusCode::from_u16(code).unwrap(),
        format!("you sent auth={auth} query={q:?}; try later"),
    )
        .into_response();
    if code == 429 {
        resp.headers_mut()
            .insert("retry-after", "7".parse().unwrap());
    }
    resp
}

async fn run_job(
    State(s): State<Shared>,
    Json(body): Json<serde_json::Value>,
) -> Json<serde_json::Value> {
    let kind = body["kind"].as_str().unwrap_or("ok").to_string();
    let n = count(&s, "run");
    s.lock().unwrap().bodies.push(body);
    Json(serde_json::json!({"run": {"id": format!("{kind}-{n}")}}))
}

async fn get_job(
    State(s): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> axum::response::Response {
    let id = q.get("run_id").cloned().unwrap_or_default();
    let n = count(&s, &format!("get:{id}"));
    if id.starts_with("flaky") && n <= 3 {
        return (StatusCode::SERVICE_UNAVAILABLE, "warming up").into_response();
    }
    if id.starts_with("down") {
        return (StatusCode::BAD_GATEWAY, "gateway down").into_response();
    }
    let (life, result) = match (id.starts_with("bad"), n) {
        (_, 1 | 2) => ("RUNNING", serde_json::Value::Null),
        (false, _) => ("TERMINATED", "SUCCESS".into()),
        (true, _) => ("TERMINATED", "FAILED".into()),
    };
    Json(serde_json::json!({"state": {"life_cycle_state": life, "result_state": result}, "id": id}))
        .into_response()
}

async fn server() -> (String, Shared) {
    let state: Shared = Arc::default();
    let app = Router::new()
        .route("/status/{code}", get(status).post(status))
        .route("/jobs/run", post(run_job))
        .route("/jobs/get", get(get_job))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), state)
}

fn http_ctx() -> HttpContext {
    HttpContext {
        client: reqwest::Client::new(),
        run_id: "run-42".into(),
    }
}

#[tokio::test]
async fn http_expected_status() {
    let (base, _) = server().await;
    let t = task(
        serde_json::json!({"name": "ping", "type": "http", "url": format!("{base}/status/204")}),
    );
    let out = run_http(&t, &http_ctx(), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(out.status, 204);
    assert_eq!(out.polls, 0);
    assert_eq!(out.final_state, None);

    let t = task(serde_json::json!({
        "name": "created", "type": "http", "method": "post",
        "url": format!("{base}/status/201"), "expect_status": [201],
    }));
    assert_eq!(
        run_http(&t, &http_ctx(), CancellationToken::new())
            .await
            .unwrap()
            .status,
        201
    );

    let t = task(serde_json::json!({
        "name": "picky", "type": "http",
        "url": format!("{base}/status/200"), "expect_status": [202],
    }));
    let (class, m, _) = http_error(&t).await;
    assert_eq!(class, ErrorClass::Task);
    assert!(m.contains("returned 200 OK"), "{}", m);
}

#[tokio::test]
async fn http_failures_are_classified() {
    let (base, _) = server().await;
    let t = task(
        serde_json::json!({"name": "busy", "type": "http", "url": format!("{base}/status/503")}),
    );
    let (class, m, _) = http_error(&t).await;
    assert_eq!(class, ErrorClass::ServerError);
    assert!(class.is_retryable());
    assert!(
        m.starts_with(&format!(
            "GET {base}/status/503 returned 503 Service Unavailable: you sent"
        )),
        "{m}"
    );

    let t = task(
        serde_json::json!({"name": "limited", "type": "http", "url": format!("{base}/status/429")}),
    );
    let (class, _, wait) = http_error(&t).await;
    assert_eq!(class, ErrorClass::RateLimited);
    assert_eq!(wait, Some(Duration::from_secs(7)));

    let t = task(
        serde_json::json!({"name": "missing", "type": "http", "url": format!("{base}/status/404")}),
    );
    let (class, _, _) = http_error(&t).await;
    assert_eq!(class, ErrorClass::Config);
    assert!(!class.is_retryable());

    // Nothing listens on a port just released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let t = task(
        serde_json::json!({"name": "refused", "type": "http", "url": format!("http://127.0.0.1:{port}/x")}),
    );
    let (class, m, _) = http_error(&t).await;
    assert_eq!(class, ErrorClass::Connection, "{}", m);
}

#[tokio::test]
async fn http_secrets_never_appear_in_errors_or_logs() {
    let (base, _) = server().await;
    let (logs, _guard) = LogCapture::start();
    let t = task(serde_json::json!({
        "name": "secretive", "type": "http",
        "url": format!("{base}/status/500"),
        "headers": {"Authorization": "Bearer hdr-5ecret-9d2f"},
        "query": {"api_key": "qry-5ecret-71ab", "page": "1"},
    }));
    let (class, m, _) = http_error(&t).await;
    assert_eq!(class, ErrorClass::ServerError);
    // The server echoed both; the error quotes its body with them replaced.
    assert!(m.contains("auth=***"), "{m}");
    assert!(m.contains("\"***\""), "{m}");
    assert!(!m.contains("5ecret"), "{m}");
    assert!(!m.contains("api_key="), "{m}");
    let logged = logs.text();
    assert!(logged.contains("/status/500"), "{logged}");
    assert!(!logged.contains("5ecret"), "{logged}");
}

fn job_task(base: &str, kind: &str) -> TaskConfig {
    task(serde_json::json!({
        "name": "refresh", "type": "http", "method": "POST",
        "url": format!("{base}/jobs/run"),
        "body": {"kind": kind, "job_id": 42, "tag": "from {{run_id}}"},
        "poll": {
            "url": format!("{base}/jobs/get?run_id={{{{response.run.id}}}}"),
            "interval": "20ms",
            "done_when": {"path": "state.life_cycle_state", "in": ["TERMINATED"]},
            "failed_when": {"path": "state.result_state", "in": ["FAILED", "CANCELED"]},
        },
    }))
}

#[tokio::test]
async fn http_poll_until_done() {
    let (base, state) = server().await;
    let out = run_http(
        &job_task(&base, "ok"),
        &http_ctx(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(out.status, 200);
    assert_eq!(out.polls, 3);
    assert_eq!(out.final_state.as_deref(), Some("TERMINATED"));
    let r = state.lock().unwrap();
    assert_eq!(r.bodies[0]["tag"], "from run-42");
    assert_eq!(r.bodies[0]["job_id"], 42);
    assert_eq!(r.counts.get("get:ok-1"), Some(&3));
}

#[tokio::test]
async fn http_poll_failed_when() {
    let (base, _) = server().await;
    let (class, m, _) = http_error(&job_task(&base, "bad")).await;
    assert_eq!(class, ErrorClass::Task);
    assert!(m.contains("`state.result_state` is `FAILED`"), "{m}");
}

#[tokio::test]
async fn http_poll_tolerates_three_transient_failures_in_a_row() {
    let (base, state) = server().await;
    let out = run_http(
        &job_task(&base, "flaky"),
        &http_ctx(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    // 3 × 503, then RUNNING is skipped (n > 3 is done): done at the 4th request.
    assert_eq!(out.polls, 4);
    assert_eq!(out.final_state.as_deref(), Some("TERMINATED"));

    let (class, m, _) = http_error(&job_task(&base, "down")).await;
    assert_eq!(class, ErrorClass::ServerError);
    assert!(m.contains("502 Bad Gateway"), "{}", m);
    let id = "down-2";
    assert_eq!(
        state.lock().unwrap().counts.get(&format!("get:{id}")),
        Some(&4)
    );
}

#[tokio::test]
async fn http_poll_template_path_must_exist() {
    let (base, _) = server().await;
    let t = task(serde_json::json!({
        "name": "refresh", "type": "http", "method": "POST",
        "url": format!("{base}/jobs/run"), "body": {},
        "poll": {
            "url": format!("{base}/jobs/get?run_id={{{{response.run.run_id}}}}"),
            "interval": "20ms",
            "done_when": {"path": "state.life_cycle_state", "in": ["TERMINATED"]},
        },
    }));
    let (class, m, _) = http_error(&t).await;
    assert_eq!(class, ErrorClass::Config);
    assert!(m.contains("run.run_id"), "{}", m);
}

#[tokio::test]
async fn http_cancel_stops_polling() {
    let (base, _) = server().await;
    let mut t = job_task(&base, "ok");
    if let Some(p) = t.poll.as_mut() {
        p.interval = tributary_core::Duration::from_secs(3600);
    }
    let cancel = CancellationToken::new();
    let run = tokio::spawn({
        let cancel = cancel.clone();
        async move { run_http(&t, &http_ctx(), cancel).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    cancel.cancel();
    let err = run.await.unwrap().unwrap_err();
    assert_eq!(err.class, ErrorClass::Cancelled);
}
