//! The dashboard, JSON API and metrics of `tributary serve`, on the demo project with real run
//! history made by the binary (two failed runs with a command that prints HTML to stderr and an
//! HTTP task retried on 500, an incremental day of new orders, a succeeded run):
//! - a headless Chromium (through chromedriver's WebDriver API) opens every page, finds what it
//!   should, clicks "Retry failed tasks", and the browser reports no console error (which
//!   includes Content-Security-Policy violations); screenshots go to
//!   `<target>/test-artifacts/dashboard/` (or `$TRIBUTARY_TEST_ARTIFACTS`);
//! - `/metrics` parses as the Prometheus text format and its numbers are the state store's;
//! - bound to 0.0.0.0 with a token, every documented route refuses a request without it, answers
//!   with it, and no response carries the token, a connection password or a header secret; the
//!   browser sign-in cookie and the CSRF token behave.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::serve::Server;
use crate::support::{HookServer, PgSchema, TestProject, bin, pg_url, unavailable};

const TOKEN: &str = "tok-dash-5e1f9a7b3c";
const DB_PASSWORD: &str = "pw-dash-8c2d4e6f";
const HEADER_SECRET: &str = "hdr-dash-1a2b3c4d";
const XSS: &str = "<img src=x onerror=alert(1)>";

/// `pg_url()` with `DB_PASSWORD` as its password (trust auth ignores it).
fn pg_url_with_password() -> String {
    let url = pg_url();
    let (scheme, rest) = url.split_once("://").unwrap();
    let (user, host) = rest.split_once('@').unwrap();
    let user = user.split(':').next().unwrap();
    format!("{scheme}://{user}:{DB_PASSWORD}@{host}")
}

/// The demo project with history. With `pg`, it also loads a PostgreSQL table through a
/// connection URL holding `DB_PASSWORD`, and fails to load a missing one.
fn history_project(hook: &HookServer, pg: Option<&PgSchema>) -> TestProject {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args(["init", "--demo"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = TestProject::in_dir(dir);
    let yaml = std::fs::read_to_string(p.path().join("tributary.yaml")).unwrap();
    let landing = "  landing: { type: files, url: ./landing }\n";
    assert!(yaml.contains(landing), "{yaml}");
    let yaml = yaml.replace(
        landing,
        &format!(
            "{landing}  vault: {{ type: postgres, url: \"{}\" }}\n",
            pg_url_with_password()
        ),
    );
    p.write(
        "tributary.yaml",
        &format!(
            "{yaml}\nserve:\n  token: ${{env:TT_DASH_TOKEN}}\norchestration:\n  retry_delay: 100ms\n"
        ),
    );
    p.write(
        "pipelines/ops.yaml",
        &format!(
            "tasks:
  - name: publish
    type: command
    description: \"Publishes <b>gold</b> to the portal\"
    depends_on: [gold.monthly_revenue]
    command: \"echo '{XSS}' >&2; exit 3\"
  - name: notify
    type: http
    method: POST
    url: \"http://{}/hook\"
    headers:
      Authorization: \"Bearer {HEADER_SECRET}\"
    retries: 2
    depends_on: [gold.top_products]
",
            hook.addr
        ),
    );
    if let Some(db) = pg {
        p.write(
            "ingest/vault.yaml",
            &format!(
                "connection: vault\ntables:\n  - name: {s}.accounts\n  - name: {s}.missing_table\n",
                s = db.schema
            ),
        );
    }
    // Two failed runs (the second after a day of new orders), then a succeeded one.
    let run = |args: &[&str], code: i32| {
        let out = p.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "tributary {args:?}:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["run"], 1);
    let dir = p.path().to_str().unwrap().to_string();
    run(&["demo", &dir, "--advance"], 1);
    run(&["run", "--select", "silver"], 0);
    p
}

/// `tributary serve` on `bind` with the token in its environment.
fn serve(p: &TestProject, bind: &str) -> Server {
    let child = p
        .command(&["serve", "--bind", bind])
        .env("TT_DASH_TOKEN", TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut s = Server::from_child(child);
    // Bound to 0.0.0.0: reach it on loopback.
    s.addr = s.addr.replace("0.0.0.0", "127.0.0.1");
    s
}

fn state(p: &TestProject) -> rusqlite::Connection {
    rusqlite::Connection::open(p.path().join(".tributary/state.db")).unwrap()
}

fn sql_i64(p: &TestProject, sql: &str) -> i64 {
    state(p).query_row(sql, [], |r| r.get(0)).unwrap()
}

fn failed_run(p: &TestProject) -> String {
    state(p)
        .query_row(
            "SELECT run_id FROM runs WHERE status = 'failed' ORDER BY started_at LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

/// Poll `sql` (a count) until it is at least `want` (up to 60 s).
fn wait_count(p: &TestProject, sql: &str, want: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = sql_i64(p, sql);
        if n >= want || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Where screenshots go: `$TRIBUTARY_TEST_ARTIFACTS`, else `<target>/test-artifacts/dashboard`.
fn artifacts_dir() -> PathBuf {
    let dir = match std::env::var_os("TRIBUTARY_TEST_ARTIFACTS") {
        Some(d) => PathBuf::from(d),
        None => bin()
            .parent()
            .and_then(Path::parent)
            .map(|target| target.join("test-artifacts/dashboard"))
            .unwrap(),
    };
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn base64_decode(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// chromedriver with a headless Chromium session, spoken to over WebDriver (HTTP + JSON).
struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Option<Browser> {
        let chromium = ["chromium", "chromium-browser", "google-chrome"]
            .into_iter()
            .find_map(which);
        let (Some(chromium), Some(driver_bin)) = (chromium, which("chromedriver")) else {
            return unavailable("chromium and chromedriver", "not on PATH");
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = http.get(format!("{base}/status")).send().await
                && let Ok(v) = r.json::<Value>().await
                && v["value"]["ready"] == true
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1400,1000", "--no-first-run", "--disable-extensions",
                         format!("--user-data-dir={}", profile.path().display())]
            },
            "goog:loggingPrefs": {"browser": "ALL"}
        }}});
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {r}"))
            .to_string();
        Some(Browser {
            driver,
            base,
            session,
            http,
            _profile: profile,
        })
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        if v["value"]["error"].is_string() {
            panic!("WebDriver {path}: {v}");
        }
        v["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    async fn script(&self, js: &str) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": js, "args": []})),
        )
        .await
    }

    async fn text(&self) -> String {
        self.script("return document.body.innerText;")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    async fn url(&self) -> String {
        self.cmd(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    async fn screenshot(&self, name: &str) {
        let png = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64_decode(png.as_str().unwrap());
        assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::write(artifacts_dir().join(format!("{name}.png")), bytes).unwrap();
    }

    /// The browser's console entries since the last call.
    async fn console(&self) -> Vec<Value> {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/se/log",
                Some(json!({"type": "browser"})),
            )
            .await;
        v.as_array().cloned().unwrap_or_default()
    }

    async fn click(&self, css: &str) {
        let el = self
            .cmd(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        let id = el
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(|v| v.as_str())
            .unwrap_or_else(|| panic!("no element {css}: {el}"))
            .to_string();
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    async fn quit(mut self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send()
            .await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn which(name: &str) -> Option<String> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
            .map(|p| p.display().to_string())
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn every_page_in_a_headless_browser() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let hook = HookServer::start(500, r#"{"error": "<script>alert('hook')</script>"}"#);
    let p = history_project(&hook, None);
    let failed = failed_run(&p);
    let mut server = serve(&p, "127.0.0.1:0");
    let origin = format!("http://{}", server.addr);

    // Without the cookie: the sign-in page; a wrong token too.
    browser.goto(&format!("{origin}/runs")).await;
    assert!(browser.text().await.contains("Sign in"));
    browser.goto(&format!("{origin}/runs?token=nope")).await;
    assert!(browser.text().await.contains("Sign in"));
    browser.screenshot("00-sign-in").await;
    browser.console().await; // the 401s are logged as failed loads: not the pages' doing
    // Signing in: the cookie is set and the token leaves the address bar.
    browser.goto(&format!("{origin}/runs?token={TOKEN}")).await;
    assert_eq!(browser.url().await, format!("{origin}/runs"));

    let pages: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "01-runs",
            "/runs".into(),
            vec![
                "Runs",
                failed.as_str(),
                "failed",
                "succeeded",
                "Trigger a run",
            ],
        ),
        (
            "02-run",
            format!("/runs/{failed}"),
            vec![
                "Timeline",
                "Retry failed tasks",
                "Run again",
                "notify",
                "server_error",
                XSS,
                "not_null(total)",
                "bronze.erp_orders",
            ],
        ),
        (
            "03-lineage",
            "/lineage".into(),
            vec![
                "source erp",
                "bronze.erp_orders",
                "silver.orders",
                "gold.monthly_revenue",
                "publish",
            ],
        ),
        (
            "04-tables",
            "/tables".into(),
            vec![
                "bronze.erp_orders",
                "silver._quarantine_orders",
                "Freshness",
            ],
        ),
        (
            "05-table",
            "/tables/silver/orders".into(),
            vec![
                "Delta history",
                "Schema",
                "decimal(12,2)",
                "MERGE",
                "Sample (first 20 rows)",
            ],
        ),
        (
            "06-quality",
            "/quality".into(),
            vec![
                "not_null(total)",
                "silver._quarantine_orders",
                "show the rows",
            ],
        ),
        (
            "07-quarantine",
            "/quality/quarantine/silver/orders".into(),
            vec!["_tributary_expectation", "not_null(total)"],
        ),
        (
            "08-task",
            "/tasks/notify".into(),
            vec!["Duration", "Rows written", "server_error", "History"],
        ),
        (
            "09-trends",
            "/trends".into(),
            vec![
                "Duration",
                "Rows written",
                "bronze.erp_orders",
                "gold.top_products",
            ],
        ),
    ];
    for (name, path, expected) in &pages {
        browser.goto(&format!("{origin}{path}")).await;
        let text = browser.text().await;
        for e in expected {
            assert!(text.contains(e), "{path}: `{e}` missing in:\n{text}");
        }
        // Nothing from the data became markup: no image, no script but ours.
        let injected = browser
            .script("return [document.images.length, document.scripts.length];")
            .await;
        assert_eq!(injected, json!([0, 1]), "{path}");
        browser.screenshot(name).await;
        let errors: Vec<Value> = browser
            .console()
            .await
            .into_iter()
            .filter(|e| e["level"] != "INFO" && e["level"] != "DEBUG")
            .collect();
        assert!(errors.is_empty(), "{path}: console: {errors:?}");
        assert!(
            !text.contains(TOKEN) && !text.contains(HEADER_SECRET) && !text.contains(DB_PASSWORD)
        );
    }

    // The drawings: a bar per attempt, the lineage coloured by last status.
    browser.goto(&format!("{origin}/runs/{failed}")).await;
    let bars = browser
        .script("return document.querySelectorAll('svg.gantt rect.bar').length;")
        .await;
    let attempts = sql_i64(
        &p,
        &format!("SELECT count(*) FROM attempts WHERE run_id = '{failed}'"),
    );
    assert_eq!(bars, json!(attempts));
    browser.goto(&format!("{origin}/lineage")).await;
    let status = browser
        .script(
            "return ['publish', 'silver.orders', 'source:erp'].map(id => document.querySelector(`g.node[data-id=\"${id}\"]`).getAttribute('data-status'));",
        )
        .await;
    assert_eq!(status, json!(["failed", "succeeded", "source"]));
    let href = browser
        .script("return document.querySelector('g.node[data-id=\"silver.orders\"]').parentNode.getAttribute('href');")
        .await;
    assert_eq!(href, json!("/tables/silver/orders"));

    // "Retry failed tasks": a POST with the cookie and the CSRF token, then the new run's page.
    browser.goto(&format!("{origin}/runs/{failed}")).await;
    browser.click("#retry-failed").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let new_url = loop {
        let url = browser.url().await;
        if url.starts_with(&format!("{origin}/runs/")) && !url.ends_with(&failed) {
            break url;
        }
        assert!(
            Instant::now() < deadline,
            "still on {url}: {}",
            browser.text().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let resumed = new_url.rsplit('/').next().unwrap().to_string();
    let recorded = wait_count(
        &p,
        &format!(
            "SELECT count(*) FROM runs WHERE run_id = '{resumed}' AND resumed_from = '{failed}' AND triggered_by = 'api' AND status <> 'running'"
        ),
        1,
    );
    assert_eq!(recorded, 1, "{}", server.seen.join("\n"));
    // It reran exactly what had not succeeded.
    let redone = sql_i64(
        &p,
        &format!("SELECT count(*) FROM tasks WHERE run_id = '{resumed}'"),
    );
    let not_succeeded = sql_i64(
        &p,
        &format!("SELECT count(*) FROM tasks WHERE run_id = '{failed}' AND status <> 'succeeded'"),
    );
    assert_eq!(redone, not_succeeded);
    browser.goto(&new_url).await;
    assert!(
        browser.text().await.contains(&failed),
        "the page names the run it resumes"
    );
    browser.screenshot("10-resumed-run").await;
    let errors: Vec<Value> = browser
        .console()
        .await
        .into_iter()
        .filter(|e| e["level"] != "INFO" && e["level"] != "DEBUG")
        .collect();
    assert!(errors.is_empty(), "console: {errors:?}");
    browser.quit().await;
    server.wait_for("Run ended");
    let (code, err) = server.terminate();
    assert_eq!(code, Some(0), "{err}");
    assert!(
        !err.contains(TOKEN) && !err.contains(HEADER_SECRET),
        "{err}"
    );
}

/// One sample of the exposition: metric name and labels.
type Series = (String, BTreeMap<String, String>);

/// A strict parser of the Prometheus text format 0.0.4: every sample belongs to a family
/// declared by `# TYPE` before it, names and labels are well-formed, values are numbers, no
/// series repeats; histograms have non-decreasing buckets ending in `+Inf` = `_count`.
fn parse_prometheus(text: &str) -> BTreeMap<Series, f64> {
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
            })
    };
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples: BTreeMap<Series, f64> = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let at = format!("line {}: {line}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect(&at);
            assert!(name_ok(name), "{at}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{at}"
            );
            assert!(
                types.insert(name.into(), kind.into()).is_none(),
                "TYPE twice: {at}"
            );
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect(&at);
            assert!(name_ok(name) && !help.is_empty(), "{at}");
            continue;
        }
        assert!(!line.starts_with('#') || line.starts_with("# "), "{at}");
        if line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ']).expect(&at);
        let name = &line[..name_end];
        assert!(name_ok(name), "{at}");
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(after) = rest.strip_prefix('{') {
            let mut chars = after.char_indices().peekable();
            let end = loop {
                let (i, c) = chars.next().expect(&at);
                if c == '}' {
                    break i;
                }
                let key_start = i;
                let mut key_end = i;
                for (j, c) in chars.by_ref() {
                    if c == '=' {
                        key_end = j;
                        break;
                    }
                }
                let key = &after[key_start..key_end];
                assert!(name_ok(key), "label name `{key}`: {at}");
                assert_eq!(chars.next().map(|x| x.1), Some('"'), "{at}");
                let mut value = String::new();
                loop {
                    let (_, c) = chars.next().expect(&at);
                    match c {
                        '"' => break,
                        '\\' => match chars.next().expect(&at).1 {
                            'n' => value.push('\n'),
                            '\\' => value.push('\\'),
                            '"' => value.push('"'),
                            other => panic!("escape \\{other}: {at}"),
                        },
                        '\n' => panic!("{at}"),
                        c => value.push(c),
                    }
                }
                assert!(labels.insert(key.to_string(), value).is_none(), "{at}");
                match chars.next().expect(&at) {
                    (_, ',') => {}
                    (i, '}') => break i,
                    other => panic!("{other:?}: {at}"),
                }
            };
            rest = &after[end + 1..];
        }
        let fields: Vec<&str> = rest.split_whitespace().collect();
        assert!(matches!(fields.len(), 1 | 2), "{at}");
        let v: f64 = match fields[0] {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            s => s.parse().expect(&at),
        };
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                let base = name.strip_suffix(s)?;
                (types.get(base).map(String::as_str) == Some("histogram")).then_some(base)
            })
            .unwrap_or(name);
        let kind = types
            .get(family)
            .unwrap_or_else(|| panic!("no TYPE before: {at}"));
        if kind == "counter" || kind == "histogram" {
            assert!(v >= 0.0, "negative: {at}");
        }
        assert!(
            samples.insert((name.to_string(), labels), v).is_none(),
            "repeated series: {at}"
        );
    }
    // Histograms: per series, buckets non-decreasing by `le`, the last `+Inf` = `_count`.
    for (family, kind) in &types {
        if kind != "histogram" {
            continue;
        }
        let mut buckets: BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>> = BTreeMap::new();
        for ((name, labels), v) in &samples {
            if *name == format!("{family}_bucket") {
                let mut rest = labels.clone();
                let le = rest.remove("le").expect("bucket without le");
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                };
                buckets.entry(rest).or_default().push((le, *v));
            }
        }
        for (labels, mut b) in buckets {
            b.sort_by(|x, y| x.0.total_cmp(&y.0));
            assert!(
                b.windows(2).all(|w| w[0].1 <= w[1].1),
                "{family} {labels:?}: {b:?}"
            );
            let last = b.last().unwrap();
            assert!(last.0.is_infinite(), "{family} {labels:?}: no +Inf");
            let count = samples[&(format!("{family}_count"), labels.clone())];
            assert_eq!(last.1, count, "{family} {labels:?}");
            assert!(samples.contains_key(&(format!("{family}_sum"), labels.clone())));
        }
    }
    samples
}

fn series(name: &str, labels: &[(&str, &str)]) -> Series {
    (
        name.to_string(),
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_parse_and_match_the_state_store() {
    let hook = HookServer::start(500, r#"{"error": "down"}"#);
    let p = history_project(&hook, None);
    let server = serve(&p, "127.0.0.1:0");
    let r = client()
        .get(format!("http://{}/metrics", server.addr))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = r.text().await.unwrap();
    std::fs::write(artifacts_dir().join("metrics.txt"), &text).unwrap();
    let m = parse_prometheus(&text);
    let get = |name: &str, labels: &[(&str, &str)]| {
        *m.get(&series(name, labels))
            .unwrap_or_else(|| panic!("no {name} {labels:?} in:\n{text}"))
    };

    // Runs by status, as counted in SQL.
    for status in ["succeeded", "failed", "cancelled"] {
        let n = sql_i64(
            &p,
            &format!("SELECT count(*) FROM runs WHERE status = '{status}'"),
        );
        assert_eq!(
            get("tributary_runs_total", &[("status", status)]),
            n as f64,
            "{status}"
        );
    }
    assert_eq!(get("tributary_runs_total", &[("status", "failed")]), 2.0);
    assert_eq!(get("tributary_runs_total", &[("status", "succeeded")]), 1.0);
    assert_eq!(get("tributary_runs_running", &[]), 0.0);

    // Tasks by status and kind.
    let conn = state(&p);
    let mut stmt = conn
        .prepare("SELECT status, kind, count(*) FROM tasks GROUP BY status, kind")
        .unwrap();
    let counts: Vec<(String, String, i64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(counts.len() >= 4, "{counts:?}");
    for (status, kind, n) in &counts {
        assert_eq!(
            get(
                "tributary_tasks_total",
                &[("status", status), ("kind", kind)]
            ),
            *n as f64,
            "{status} {kind}"
        );
    }
    assert_eq!(
        get(
            "tributary_tasks_total",
            &[("status", "failed"), ("kind", "http")]
        ),
        2.0
    );

    // Retries: attempts after the first (the HTTP task, retried twice per run on 500).
    let retries = sql_i64(
        &p,
        "SELECT count(*) FROM attempts WHERE task_id = 'notify' AND attempt > 1",
    );
    assert_eq!(retries, 4);
    assert_eq!(
        get("tributary_task_retries_total", &[("task", "notify")]),
        4.0
    );

    // Durations: one observation per finished record.
    for task in ["notify", "bronze.erp_orders", "silver.orders"] {
        let n = sql_i64(
            &p,
            &format!(
                "SELECT count(*) FROM tasks WHERE task_id = '{task}' AND status IN ('succeeded', 'failed') AND started_at IS NOT NULL AND finished_at IS NOT NULL"
            ),
        );
        assert!(n >= 2);
        assert_eq!(
            get("tributary_task_duration_seconds_count", &[("task", task)]),
            n as f64
        );
        assert!(get("tributary_task_duration_seconds_sum", &[("task", task)]) > 0.0);
    }

    // Rows and bytes written per table, summed over successful tasks.
    for table in ["bronze.erp_orders", "silver.orders", "gold.monthly_revenue"] {
        let (rows, bytes, loads): (i64, i64, i64) = state(&p)
            .query_row(
                &format!(
                    "SELECT sum(rows), sum(bytes), count(*) FROM tasks WHERE task_id = '{table}' AND status = 'succeeded'"
                ),
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert!(rows > 0 && bytes > 0);
        assert_eq!(
            get("tributary_table_rows_written_total", &[("table", table)]),
            rows as f64
        );
        assert_eq!(
            get("tributary_table_bytes_written_total", &[("table", table)]),
            bytes as f64
        );
        assert_eq!(
            get("tributary_table_loads_total", &[("table", table)]),
            loads as f64
        );
        let fresh = get("tributary_table_freshness_seconds", &[("table", table)]);
        assert!((0.0..3600.0).contains(&fresh), "{table}: {fresh}");
    }
    assert_eq!(
        get("tributary_table_rows", &[("table", "silver.orders")]),
        p.query_i64("SELECT count(*) FROM silver.orders") as f64
    );
    assert_eq!(
        get("tributary_quarantine_rows", &[("model", "silver.orders")]),
        p.query_i64("SELECT count(*) FROM silver._quarantine_orders") as f64
    );
    assert_eq!(get("tributary_lake_up", &[]), 1.0);

    // Expectation failures: runs in which each failed; the demo's orders without a total.
    let mut stmt = conn
        .prepare(
            "SELECT model, expectation, sum(CASE WHEN passed THEN 0 ELSE 1 END), sum(failed_rows) FROM expectations GROUP BY model, expectation",
        )
        .unwrap();
    let expectations: Vec<(String, String, i64, i64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(expectations.len() >= 8);
    for (model, exp, failures, rows) in &expectations {
        let l = [("model", model.as_str()), ("expectation", exp.as_str())];
        assert_eq!(
            get("tributary_expectation_failures_total", &l),
            *failures as f64
        );
        assert_eq!(
            get("tributary_expectation_failed_rows_total", &l),
            *rows as f64
        );
    }
    assert!(
        get(
            "tributary_expectation_failures_total",
            &[
                ("model", "silver.orders"),
                ("expectation", "not_null(total)")
            ]
        ) >= 1.0
    );
    assert!(!text.contains(TOKEN) && !text.contains(HEADER_SECRET) && !text.contains(DB_PASSWORD));
    let (code, err) = server.terminate();
    assert_eq!(code, Some(0), "{err}");
}

/// The parser refuses what Prometheus would.
#[test]
fn the_metrics_parser_is_strict() {
    let ok = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\\\"\"} 2\n";
    assert_eq!(parse_prometheus(ok).len(), 1);
    for bad in [
        "a_total 1\n",                                    // no TYPE
        "# TYPE a_total counter\na_total{x=1} 1\n",       // unquoted label
        "# TYPE a_total counter\na_total one\n",          // not a number
        "# TYPE a_total counter\na_total 1\na_total 2\n", // repeated
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\nh_sum 1\n", // decreasing
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 1\nh_sum 1\n", // +Inf != count
    ] {
        let r = std::panic::catch_unwind(|| parse_prometheus(bad));
        assert!(r.is_err(), "accepted: {bad}");
    }
}

/// A path of the OpenAPI document with its parameters filled.
fn fill(path: &str, run: &str) -> String {
    path.replace("/runs/{id}", &format!("/runs/{run}"))
        .replace("/tasks/{id}", "/tasks/silver.orders")
        .replace(
            "/quality/quarantine/{layer}/{name}",
            "/quality/quarantine/silver/orders",
        )
        .replace("{layer}/{name}", "silver/orders")
}

fn assert_clean(what: &str, body: &str) {
    for secret in [TOKEN, DB_PASSWORD, HEADER_SECRET] {
        assert!(!body.contains(secret), "{what} shows a secret:\n{body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn exposed_server_needs_the_token_everywhere_and_shows_no_secret() {
    let Some(db) = PgSchema::new().await else {
        return;
    };
    db.client
        .batch_execute(&format!(
            "CREATE TABLE {s}.accounts (id int PRIMARY KEY, owner text);
             INSERT INTO {s}.accounts VALUES (1, 'acme'), (2, 'globex');",
            s = db.schema
        ))
        .await
        .unwrap();
    let hook = HookServer::start(500, r#"{"error": "down"}"#);
    let p = history_project(&hook, Some(&db));
    // The PostgreSQL load through the URL with the password ran, and the missing table failed.
    assert_eq!(
        sql_i64(
            &p,
            "SELECT count(*) FROM tasks WHERE task_id = 'bronze.vault_accounts' AND status = 'succeeded'"
        ),
        2
    );
    let missing_errors = sql_i64(
        &p,
        "SELECT count(*) FROM tasks WHERE task_id = 'bronze.vault_missing_table' AND status = 'failed' AND error LIKE '%missing_table%'",
    );
    assert!(missing_errors >= 1);
    let failed = failed_run(&p);
    let server = serve(&p, "0.0.0.0:0");
    let base = format!("http://{}", server.addr);
    let c = client();

    let doc: Value = c
        .get(format!("{base}/api/openapi.json"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut routes: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            routes.push((method.to_ascii_uppercase(), path.clone()));
        }
    }
    assert!(routes.len() >= 27, "{routes:?}");
    // POSTs last: the runs they start change nothing the GETs check.
    routes.sort_by_key(|(m, p)| (m == "POST", p.clone()));
    let mut seen_paths = BTreeSet::new();
    for (method, path) in &routes {
        let url = format!("{base}{}", fill(path, &failed));
        let request = |auth: bool| {
            let mut r = c.request(method.parse().unwrap(), &url);
            if method == "POST" {
                r = r.header("content-type", "application/json").body("{}");
            }
            if auth {
                r = r.bearer_auth(TOKEN);
            }
            r
        };
        // Without the token: refused, except the health check.
        let r = request(false).send().await.unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        assert_clean(&format!("{method} {path} without token"), &body);
        if path == "/health" {
            assert_eq!(status, 200);
        } else {
            assert_eq!(status, 401, "{method} {path}: {body}");
        }
        // With it: answered (a documented route is always served: never the 404 fallback).
        let r = request(true).send().await.unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        assert_clean(&format!("{method} {path}"), &body);
        let want = match (method.as_str(), path.as_str()) {
            ("POST", _) => 202,
            (_, "/") => 303,
            _ => 200,
        };
        assert_eq!(status, want, "{method} {path}: {body}");
        seen_paths.insert(path.clone());
    }
    assert!(seen_paths.contains("/api/runs/{id}/resume") && seen_paths.contains("/metrics"));
    // A path no route serves: the documented fallback, still behind the token.
    let r = c.get(format!("{base}/api/nope")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .get(format!("{base}/api/nope"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("no route"));

    // The failed PostgreSQL load shows its error, without the password.
    let run: Value = c
        .get(format!("{base}/api/runs/{failed}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let missing = run["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task_id"] == "bronze.vault_missing_table")
        .unwrap();
    assert_eq!(missing["status"], "failed");
    assert!(missing["error"].as_str().unwrap().contains("missing_table"));

    // A browser: the sign-in page, then `?token=` → a session cookie and a redirect without it.
    let r = c
        .get(format!("{base}/runs"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("?token=TOKEN"));
    let r = c
        .get(format!("{base}/runs?token=wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("set-cookie").is_none());
    let r = c
        .get(format!("{base}/runs?status=failed&token={TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/runs?status=failed");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && !cookie.contains(TOKEN),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_string();
    let r = c
        .get(format!("{base}/runs?status=failed"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .split(';')
            .next(),
        Some("default-src 'none'")
    );
    let page = r.text().await.unwrap();
    assert_clean("the runs page", &page);
    assert!(page.contains(&failed));
    let csrf = page
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    assert_eq!(csrf.len(), 64);
    // State changes with the cookie need the CSRF token, and a same-origin Origin if any.
    let post = |headers: Vec<(&'static str, String)>| {
        let mut r = c
            .post(format!("{base}/api/runs"))
            .header("content-type", "application/json")
            .header("cookie", &session)
            .body(r#"{"select": ["silver.customers"]}"#);
        for (k, v) in headers {
            r = r.header(k, v);
        }
        r.send()
    };
    assert_eq!(post(vec![]).await.unwrap().status(), 403);
    assert_eq!(
        post(vec![("x-tributary-csrf", "0".repeat(64))])
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        post(vec![
            ("x-tributary-csrf", csrf.clone()),
            ("origin", "http://evil.example".into())
        ])
        .await
        .unwrap()
        .status(),
        403
    );
    let host = server.addr.clone();
    let r = post(vec![
        ("x-tributary-csrf", csrf.clone()),
        ("origin", format!("http://{host}")),
    ])
    .await
    .unwrap();
    assert_eq!(r.status(), 202);
    // A form post (not JSON) is refused whatever it carries.
    let r = c
        .post(format!("{base}/api/runs"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", &session)
        .header("x-tributary-csrf", &csrf)
        .body("select=x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);

    let mut server = server;
    server.wait_for("Run ended");
    let (code, err) = server.terminate();
    assert_eq!(code, Some(0), "{err}");
    assert_clean("the server's log", &err);
    db.drop_schema().await;
}
