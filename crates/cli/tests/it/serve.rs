//! `tributary serve`: runs started through the API and by a schedule are recorded with their
//! trigger; a schedule never overlaps itself; SIGTERM stops the server and records the run in
//! flight as cancelled; an exposed address without a token, and a token whose variable is unset,
//! are refused at start-up while other commands still work.

use std::io::BufRead;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::{TestProject, http, stderr};

fn project(schedules: &str) -> TestProject {
    let p = TestProject::new(&format!(
        "name: t\nlake: ./lake\nconnections:\n  erp: {{ type: sqlite, path: erp.db }}\n{schedules}"
    ));
    let conn = rusqlite::Connection::open(p.path().join("erp.db")).unwrap();
    conn.execute_batch(
        "CREATE TABLE orders (id INTEGER, amount INTEGER);
         INSERT INTO orders VALUES (1, 10), (2, 20), (3, 30);",
    )
    .unwrap();
    p.write(
        "ingest/erp.yaml",
        "connection: erp\ntables:\n  - name: orders\n",
    );
    p.write(
        "pipelines/slow.yaml",
        "tasks:\n  - name: slow\n    type: command\n    command: \"echo $$ >> slow.pids; exec sleep 4\"\n",
    );
    p
}

/// A running `tributary serve`, its address, and its stderr lines as they come.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) addr: String,
    lines: mpsc::Receiver<String>,
    pub(crate) seen: Vec<String>,
}

impl Server {
    pub(crate) fn start(p: &TestProject) -> Server {
        let child = p
            .command(&["serve", "--bind", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Server::from_child(child)
    }

    pub(crate) fn from_child(mut child: Child) -> Server {
        let (tx, lines) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut s = Server {
            child,
            addr: String::new(),
            lines,
            seen: Vec::new(),
        };
        let line = s.wait_for(" on http://");
        s.addr = line
            .split("http://")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap()
            .to_string();
        s
    }

    /// The first stderr line containing `text` (waiting up to 60 s).
    pub(crate) fn wait_for(&mut self, text: &str) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(text)) {
            return l.clone();
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => break,
            }
        }
        panic!(
            "`{text}` never appeared; stderr so far:\n{}",
            self.seen.join("\n")
        );
    }

    fn post_run(&self, body: &str) -> (u16, String) {
        http(
            &self.addr,
            "POST",
            "/api/runs",
            &[("Content-Type", "application/json")],
            body,
        )
    }

    /// SIGTERM, then wait for the exit; returns the exit code and the rest of stderr.
    pub(crate) fn terminate(mut self) -> (Option<i32>, String) {
        let pid = self.child.id().to_string();
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = self.child.wait().unwrap();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        (status.code(), self.seen.join("\n"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn state(p: &TestProject) -> rusqlite::Connection {
    rusqlite::Connection::open(p.path().join(".tributary/state.db")).unwrap()
}

/// Poll the state store until `sql` (a count) is at least `want` (up to 60 s).
fn wait_count(p: &TestProject, sql: &str, want: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n: i64 = state(p)
            .query_row(sql, [], |r| r.get(0))
            .unwrap_or_default();
        if n >= want || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn api_runs_schedules_no_overlap_and_sigterm() {
    // Every second, the 4-second `slow` command: the fires while it runs must not start runs.
    let p = project(
        "schedules:\n  tick:\n    cron: \"* * * * * *\"\n    select: [slow]\n  never:\n    cron: \"0 0 1 1 *\"\n    enabled: false\n",
    );
    let mut server = Server::start(&p);

    // The API: a run of the orders load, recorded with trigger `api`.
    let (status, body) = server.post_run(r#"{"select": ["bronze.erp_orders"]}"#);
    assert_eq!(status, 202, "{body}");
    let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
    let run_id = reply["run_id"].as_str().unwrap().to_string();
    let done = wait_count(
        &p,
        &format!(
            "SELECT count(*) FROM runs WHERE run_id = '{run_id}' AND status = 'succeeded' AND triggered_by = 'api'"
        ),
        1,
    );
    assert_eq!(done, 1, "{}", server.seen.join("\n"));
    assert_eq!(p.query_i64("SELECT count(*) FROM bronze.erp_orders"), 3);

    // Bad requests: an unknown selector, a body that is not the documented one, no JSON type.
    let (status, body) = server.post_run(r#"{"select": ["silver.nope"]}"#);
    assert_eq!(status, 400);
    assert!(body.contains("silver.nope"), "{body}");
    let (status, body) = server.post_run(r#"{"selekt": []}"#);
    assert_eq!(status, 400, "{body}");
    let (status, _) = http(&server.addr, "POST", "/api/runs", &[], "{}");
    assert_eq!(status, 415);
    let (status, body) = http(&server.addr, "GET", "/health", &[], "");
    assert_eq!((status, body.contains("ok")), (200, true));

    // The schedule: one run started, later fires skipped while it runs.
    let started = wait_count(
        &p,
        "SELECT count(*) FROM schedule_fires WHERE schedule = 'tick' AND outcome = 'started'",
        1,
    );
    assert!(started >= 1);
    let skipped = wait_count(
        &p,
        "SELECT count(*) FROM schedule_fires WHERE schedule = 'tick' AND outcome = 'skipped_overlap'",
        2,
    );
    assert!(skipped >= 2, "fires while `slow` ran must be skipped");
    server.wait_for("Schedule disabled");
    let never: i64 = state(&p)
        .query_row(
            "SELECT count(*) FROM schedule_fires WHERE schedule = 'never'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(never, 0);
    // At most one `slow` run at any time: every started fire's run is distinct, and runs of
    // the schedule never overlapped (each started after the previous one ended).
    let conn = state(&p);
    let mut stmt = conn
        .prepare("SELECT started_at, finished_at FROM runs WHERE triggered_by = 'schedule:tick' ORDER BY started_at")
        .unwrap();
    let spans: Vec<(String, Option<String>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(!spans.is_empty());
    for w in spans.windows(2) {
        let ended = w[0].0.clone();
        let prev_end = w[0]
            .1
            .clone()
            .unwrap_or_else(|| panic!("run starting {ended} never ended before the next"));
        assert!(prev_end <= w[1].0, "overlap: {spans:?}");
    }

    // SIGTERM while a `slow` run is in flight: the server exits 0, the run is cancelled and
    // its process is gone.
    wait_count(
        &p,
        "SELECT count(*) FROM runs WHERE triggered_by = 'schedule:tick' AND status = 'running'",
        1,
    );
    let (code, err) = server.terminate();
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("Server stopped"), "{err}");
    let cancelled: i64 = state(&p)
        .query_row(
            "SELECT count(*) FROM runs WHERE triggered_by = 'schedule:tick' AND status = 'cancelled'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(cancelled >= 1, "{err}");
    let running: i64 = state(&p)
        .query_row(
            "SELECT count(*) FROM runs WHERE status = 'running'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(running, 0);
    for pid in std::fs::read_to_string(p.path().join("slow.pids"))
        .unwrap()
        .lines()
    {
        let pid: i32 = pid.trim().parse().unwrap();
        assert!(tributary_testkit::process_gone(pid), "sleep {pid} survived");
    }

    // `runs` shows the triggers.
    let list = p.ok(&["runs"]);
    assert!(
        list.contains("schedule:tick") && list.contains("api"),
        "{list}"
    );
}

#[test]
fn exposed_address_needs_a_token_resolved_only_when_serving() {
    let p = project("serve:\n  bind: 0.0.0.0:0\n  token: ${env:TT_SERVE_TOKEN_SURELY_UNSET}\n");
    // Other commands load the project without the variable.
    p.ok(&["dag"]);
    let out = p.run(&["serve", "--bind", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("serve.token") && err.contains("TT_SERVE_TOKEN_SURELY_UNSET is not set"),
        "{err}"
    );

    let p = project("");
    let out = p.run(&["serve", "--bind", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("set serve.token"), "{}", stderr(&out));

    // With a token: requests without it get 401, with it 202; the token is never printed.
    let p = project("serve:\n  token: ${env:TT_SERVE_TOKEN}\n");
    let mut cmd = p.command(&["serve", "--bind", "127.0.0.1:0"]);
    cmd.env("TT_SERVE_TOKEN", "tok-9f8e7d6c");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut server = Server::from_child(child);
    let (status, _) = server.post_run("{}");
    assert_eq!(status, 401);
    let (status, body) = http(
        &server.addr,
        "POST",
        "/api/runs",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", "Bearer tok-9f8e7d6c"),
        ],
        r#"{"select": ["bronze.erp_orders"]}"#,
    );
    assert_eq!(status, 202, "{body}");
    server.wait_for("Run ended");
    let (code, err) = server.terminate();
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("tok-9f8e7d6c"), "{err}");
}
