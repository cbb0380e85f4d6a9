//! Integration tests of the alerts: real state stores (SQLite files), rules evaluated on
//! recorded runs, and every channel against capture servers on loopback (HTTP for webhook,
//! Slack, Teams and Jira; a plain SMTP server for e-mail).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Duration as ChronoDuration, SubsecRound, Utc};
use serde_json::Value;
use tributary_alerts::{AlertEngine, EngineSetup, Outcome};
use tributary_core::alerts::AlertsConfig;
use tributary_orchestrator::state::{
    ExpectationRecord, RunRecord, RunStatus, StateStore, TaskRecord, TaskStatus,
};
use tributary_testkit::capture::{HttpCapture, HttpRequest, SmtpCapture};

const LINK: &str = "http://tributary.test";

struct Env {
    dir: tempfile::TempDir,
    store: StateStore,
    base: DateTime<Utc>,
    n: AtomicUsize,
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open("sqlite://.tributary/state.db", dir.path())
        .await
        .unwrap();
    Env {
        dir,
        store,
        base: (Utc::now() - ChronoDuration::days(1)).trunc_subsecs(6),
        n: AtomicUsize::new(0),
    }
}

fn config(yaml: &str) -> AlertsConfig {
    let c: AlertsConfig = serde_yaml_ng::from_str(yaml).unwrap();
    let problems = tributary_core::alerts::check_alerts(&c);
    assert!(problems.is_empty(), "{problems:?}");
    c
}

fn engine_with(
    env: &Env,
    cfg: &AlertsConfig,
    vars: &[(&str, &str)],
    selections: BTreeMap<String, BTreeSet<String>>,
) -> AlertEngine {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let lookup = move |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let lake = tributary_lake::Lake::new("lake", env.dir.path(), &BTreeMap::new()).unwrap();
    AlertEngine::new(
        EngineSetup {
            project: "acme",
            config: cfg,
            env: &lookup,
            store: env.store.clone(),
            lake: Some(lake),
            link_base: LINK.into(),
            selections,
        },
        false,
    )
    .unwrap()
}

fn engine(env: &Env, cfg: &AlertsConfig, vars: &[(&str, &str)]) -> AlertEngine {
    engine_with(env, cfg, vars, BTreeMap::new())
}

/// One task of a recorded run: (task, status, error class, error, rows, seconds it took).
type T<'a> = (
    &'a str,
    TaskStatus,
    Option<&'a str>,
    Option<&'a str>,
    Option<u64>,
    i64,
);

impl Env {
    /// Record a finished run with these tasks; returns its id.
    async fn run(&self, status: RunStatus, tasks: &[T<'_>]) -> String {
        self.run_with(status, tasks, &[]).await
    }

    async fn run_with(
        &self,
        status: RunStatus,
        tasks: &[T<'_>],
        expectations: &[(&str, &str, u64, u64)],
    ) -> String {
        let n = self.n.fetch_add(1, Ordering::SeqCst) as i64;
        let run_id = format!("r{n}");
        let start = self.base + ChronoDuration::minutes(10 * n);
        self.store
            .create_run(&RunRecord {
                run_id: run_id.clone(),
                trigger: "manual".into(),
                selectors: vec![],
                target: None,
                status: RunStatus::Running,
                started_at: start,
                finished_at: None,
                error: None,
                resumed_from: None,
                host: "h".into(),
                pid: 1,
            })
            .await
            .unwrap();
        for (task, st, class, error, rows, secs) in tasks {
            let running = *st == TaskStatus::Running;
            self.store
                .upsert_task(&TaskRecord {
                    run_id: run_id.clone(),
                    task_id: task.to_string(),
                    kind: "load".into(),
                    status: *st,
                    started_at: Some(if running {
                        Utc::now().trunc_subsecs(6) - ChronoDuration::seconds(*secs)
                    } else {
                        start
                    }),
                    finished_at: (!running).then(|| start + ChronoDuration::seconds(*secs)),
                    attempts: 1,
                    rows: *rows,
                    bytes: None,
                    version: None,
                    error: error.map(str::to_string),
                    error_class: class.map(str::to_string),
                    detail: Value::Null,
                })
                .await
                .unwrap();
        }
        for (model, name, failed, checked) in expectations {
            self.store
                .record_expectation(&ExpectationRecord {
                    run_id: run_id.clone(),
                    model: model.to_string(),
                    expectation: name.to_string(),
                    rule: "total > 0".into(),
                    on_fail: "warn".into(),
                    checked_rows: *checked,
                    failed_rows: *failed,
                    passed: *failed == 0,
                    recorded_at: start,
                })
                .await
                .unwrap();
        }
        if status == RunStatus::Running {
            self.store.heartbeat(&run_id, Utc::now()).await.unwrap();
        }
        if status != RunStatus::Running {
            self.store
                .finish_run(
                    &run_id,
                    status,
                    start + ChronoDuration::minutes(5),
                    (status == RunStatus::Failed).then_some("1 of 1 task did not succeed"),
                )
                .await
                .unwrap();
        }
        run_id
    }
}

fn json(r: &HttpRequest) -> Value {
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.body))
}

fn failed<'a>(task: &'a str, class: &'a str, error: &'a str) -> T<'a> {
    (task, TaskStatus::Failed, Some(class), Some(error), None, 3)
}

fn ok(task: &str, rows: u64) -> T<'_> {
    (task, TaskStatus::Succeeded, None, None, Some(rows), 3)
}

#[tokio::test]
async fn webhook_slack_and_teams_payloads_then_recovery() {
    let env = env().await;
    let cap = HttpCapture::ok();
    let u = cap.url();
    let cfg = config(&format!(
        r#"
channels:
  hook: {{ type: webhook, url: "{u}/hook/tok-AAAA1111", headers: {{ X-Api-Key: "${{env:TT_KEY}}" }} }}
  slack: {{ type: slack, url: "{u}/slack/T0/B0/slacksecret123" }}
  teams: {{ type: teams, url: "{u}/teams/teamsecret456" }}
rules:
  failures: {{ when: task_failed, channels: [hook, slack, teams] }}
"#
    ));
    let e = engine(&env, &cfg, &[("TT_KEY", "key-value-77")]);
    let r1 = env
        .run(
            RunStatus::Failed,
            &[failed(
                "bronze.erp_orders",
                "connection",
                "connection refused to erp:5432",
            )],
        )
        .await;
    let o = e.after_run(&r1).await;
    assert_eq!(
        o,
        Outcome {
            alerts: 1,
            delivered: 3,
            failed: 0
        }
    );
    let reqs = cap.requests();
    assert_eq!(reqs.len(), 3, "{reqs:?}");
    let link = format!("{LINK}/runs/{r1}");

    let hook = reqs.iter().find(|r| r.path.starts_with("/hook/")).unwrap();
    assert_eq!(hook.method, "POST");
    assert_eq!(hook.header("x-api-key"), Some("key-value-77"));
    assert!(
        hook.header("content-type")
            .unwrap()
            .contains("application/json")
    );
    let b = json(hook);
    assert_eq!(b["event"], "firing");
    assert_eq!(b["status"], "firing");
    assert_eq!(b["rule"], "failures");
    assert_eq!(b["kind"], "task_failed");
    assert_eq!(b["severity"], "error");
    assert_eq!(b["project"], "acme");
    assert_eq!(b["run_id"], r1.as_str());
    assert_eq!(b["task"], "bronze.erp_orders");
    assert_eq!(b["error_class"], "connection");
    assert_eq!(b["error"], "connection refused to erp:5432");
    assert_eq!(b["link"], link.as_str());
    assert_eq!(b["dedup_key"], "failures|bronze.erp_orders|connection");
    assert_eq!(b["occurrences"], 1);

    let slack = json(reqs.iter().find(|r| r.path.starts_with("/slack/")).unwrap());
    assert_eq!(
        slack["text"],
        "[ERROR] acme: task bronze.erp_orders failed (connection)"
    );
    assert_eq!(slack["blocks"][0]["type"], "header");
    assert_eq!(slack["blocks"][1]["type"], "section");
    let blocks = slack["blocks"].to_string();
    assert!(
        blocks.contains(&format!("<{link}|Open the run page>")),
        "{blocks}"
    );
    assert!(
        blocks.contains("connection refused to erp:5432"),
        "{blocks}"
    );

    let teams = json(reqs.iter().find(|r| r.path.starts_with("/teams/")).unwrap());
    assert_eq!(teams["@type"], "MessageCard");
    assert_eq!(teams["themeColor"], "D7000F");
    assert_eq!(
        teams["title"],
        "[ERROR] acme: task bronze.erp_orders failed (connection)"
    );
    assert_eq!(
        teams["potentialAction"][0]["targets"][0]["uri"],
        link.as_str()
    );
    let facts = teams["sections"][0]["facts"].as_array().unwrap();
    assert!(facts.contains(&serde_json::json!({"name": "Run", "value": r1})));
    assert!(facts.contains(&serde_json::json!({"name": "Task", "value": "bronze.erp_orders"})));

    let d = env.store.deliveries(0).await.unwrap();
    assert_eq!(d.len(), 3);
    assert!(
        d.iter()
            .all(|d| d.status == "delivered" && d.http_status == Some(200) && d.attempt == 1),
        "{d:?}"
    );

    // The task succeeds: one recovery message per channel; then nothing more.
    let r2 = env
        .run(RunStatus::Succeeded, &[ok("bronze.erp_orders", 5)])
        .await;
    let o = e.after_run(&r2).await;
    assert_eq!((o.alerts, o.delivered), (1, 3));
    let reqs = cap.requests();
    let resolved = json(
        reqs[3..]
            .iter()
            .find(|r| r.path.starts_with("/hook/"))
            .unwrap(),
    );
    assert_eq!(resolved["event"], "resolved");
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(
        resolved["dedup_key"],
        "failures|bronze.erp_orders|connection"
    );
    let r3 = env
        .run(RunStatus::Succeeded, &[ok("bronze.erp_orders", 5)])
        .await;
    assert_eq!(e.after_run(&r3).await, Outcome::default());
    assert_eq!(cap.requests().len(), 6);
}

#[tokio::test]
async fn email_over_plain_smtp_and_starttls_refused_when_not_offered() {
    let env = env().await;
    let smtp = SmtpCapture::start();
    let port = smtp.addr.port();
    let cfg = config(&format!(
        r#"
delivery: {{ attempts: 3, retry_delay: 10ms }}
channels:
  mail:
    type: email
    smtp: {{ host: 127.0.0.1, port: {port}, tls: none, username: alerts, password: "${{env:TT_SMTP_PW}}", from: alerts@acme.test }}
    to: [ops@acme.test, dq@acme.test]
  mail_tls:
    type: email
    smtp: {{ host: 127.0.0.1, port: {port}, tls: starttls, from: alerts@acme.test }}
    to: [ops@acme.test]
rules:
  dq: {{ when: expectation_failed, min_failed_rows: 10, channels: [mail, mail_tls] }}
"#
    ));
    let e = engine(&env, &cfg, &[("TT_SMTP_PW", "pw-s3cret-smtp")]);
    let r1 = env
        .run_with(
            RunStatus::Succeeded,
            &[ok("silver.orders", 1000)],
            &[
                ("silver.orders", "positive_total", 120, 1000),
                ("silver.orders", "below_threshold", 5, 1000),
            ],
        )
        .await;
    let o = e.after_run(&r1).await;
    assert_eq!(
        o,
        Outcome {
            alerts: 1,
            delivered: 1,
            failed: 1
        }
    );
    let msgs = smtp.messages();
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    let m = &msgs[0];
    assert_eq!(m.mail_from, "alerts@acme.test");
    assert_eq!(m.rcpt_to, ["ops@acme.test", "dq@acme.test"]);
    assert_eq!(
        m.auth,
        [tributary_alerts::smtp::base64(b"\0alerts\0pw-s3cret-smtp")]
    );
    assert!(
        m.data.contains("From: <alerts@acme.test>\r\n"),
        "{}",
        m.data
    );
    assert!(
        m.data.contains("To: <ops@acme.test>, <dq@acme.test>\r\n"),
        "{}",
        m.data
    );
    assert!(
        m.data.contains(
            "Subject: [WARNING] acme: expectation positive_total of silver.orders failed on 120 rows\r\n"
        ),
        "{}",
        m.data
    );
    assert!(
        m.data
            .contains("Content-Type: text/plain; charset=utf-8\r\n")
    );
    assert!(
        m.data
            .contains("120 of 1000 rows broke `total > 0` (on_fail: warn)"),
        "{}",
        m.data
    );
    assert!(
        m.data.contains(&format!("Run page: {LINK}/runs/{r1}")),
        "{}",
        m.data
    );
    assert!(!m.data.contains("below_threshold"), "{}", m.data);

    let d = env.store.deliveries(0).await.unwrap();
    let mail: Vec<_> = d.iter().filter(|d| d.channel == "mail").collect();
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0].status, "delivered");
    assert_eq!(mail[0].http_status, Some(250));
    // STARTTLS is required and not offered: a permanent failure, one attempt, recorded.
    let tls: Vec<_> = d.iter().filter(|d| d.channel == "mail_tls").collect();
    assert_eq!(tls.len(), 1, "{tls:?}");
    assert_eq!(tls[0].status, "failed");
    let err = tls[0].error.as_deref().unwrap();
    assert!(err.contains("does not offer STARTTLS"), "{err}");
    assert!(!format!("{d:?}").contains("pw-s3cret-smtp"));
}

#[tokio::test]
async fn jira_one_incident_per_task_and_class_comment_on_repeat_resolve_on_recovery() {
    let env = env().await;
    let n = Arc::new(AtomicUsize::new(0));
    let counter = n.clone();
    let cap = HttpCapture::start(move |_, r| {
        if r.path.ends_with("/rest/servicedeskapi/request") {
            let k = counter.fetch_add(1, Ordering::SeqCst) + 1;
            (
                201,
                format!(r#"{{"issueId":"{}","issueKey":"SD-{k}"}}"#, 1000 + k),
            )
        } else {
            (201, "{}".into())
        }
    });
    let u = cap.url();
    let cfg = config(&format!(
        r#"
channels:
  jt: {{ type: jira, base_url: "{u}/jt", email: bot@acme.test, api_token: "${{env:TT_JIRA}}", service_desk_id: 3, request_type_id: "25", resolve: {{ transition_id: "761" }} }}
  jc: {{ type: jira, base_url: "{u}/jc/", email: bot@acme.test, api_token: "${{env:TT_JIRA}}", service_desk_id: "3", request_type_id: 25 }}
rules:
  failures: {{ when: task_failed, channels: [jt, jc] }}
"#
    ));
    let e = engine(&env, &cfg, &[("TT_JIRA", "jira-tok-secret")]);
    let paths = |from: usize| -> Vec<String> {
        cap.requests()[from..]
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    };

    let r1 = env
        .run(
            RunStatus::Failed,
            &[failed("bronze.a", "connection", "refused")],
        )
        .await;
    assert_eq!(e.after_run(&r1).await.delivered, 2);
    assert_eq!(
        paths(0),
        [
            "POST /jt/rest/servicedeskapi/request",
            "POST /jc/rest/servicedeskapi/request"
        ]
    );
    let create = &cap.requests()[0];
    let auth = format!(
        "Basic {}",
        tributary_alerts::smtp::base64(b"bot@acme.test:jira-tok-secret")
    );
    assert_eq!(create.header("authorization"), Some(auth.as_str()));
    let b = json(create);
    assert_eq!(b["serviceDeskId"], "3");
    assert_eq!(b["requestTypeId"], "25");
    assert_eq!(
        b["requestFieldValues"]["summary"],
        "[ERROR] acme: task bronze.a failed (connection)"
    );
    let description = b["requestFieldValues"]["description"].as_str().unwrap();
    for part in [
        format!("Run: {r1}"),
        "Task: bronze.a".to_string(),
        "Error class: connection".to_string(),
        "refused".to_string(),
        format!("Run page: {LINK}/runs/{r1}"),
    ] {
        assert!(description.contains(&part), "{part} not in {description}");
    }

    // The same task fails the same way: comments, no new request.
    let r2 = env
        .run(
            RunStatus::Failed,
            &[failed("bronze.a", "connection", "refused again")],
        )
        .await;
    assert_eq!(e.after_run(&r2).await.delivered, 2);
    assert_eq!(
        paths(2),
        [
            "POST /jt/rest/servicedeskapi/request/SD-1/comment",
            "POST /jc/rest/servicedeskapi/request/SD-2/comment"
        ]
    );
    let comment = json(&cap.requests()[2]);
    assert_eq!(comment["public"], true);
    let body = comment["body"].as_str().unwrap();
    assert!(
        body.contains("again, 2 times") && body.contains(&r2),
        "{body}"
    );

    // Another error class: another incident.
    let r3 = env
        .run(
            RunStatus::Failed,
            &[failed("bronze.a", "data", "bad value")],
        )
        .await;
    e.after_run(&r3).await;
    assert_eq!(
        paths(4),
        [
            "POST /jt/rest/servicedeskapi/request",
            "POST /jc/rest/servicedeskapi/request"
        ]
    );

    // Recovery: transitions where configured, resolving comments elsewhere, for both classes.
    let r4 = env.run(RunStatus::Succeeded, &[ok("bronze.a", 1)]).await;
    let o = e.after_run(&r4).await;
    assert_eq!((o.alerts, o.delivered, o.failed), (2, 4, 0));
    let mut recovery = paths(6);
    recovery.sort();
    assert_eq!(
        recovery,
        [
            "POST /jc/rest/servicedeskapi/request/SD-2/comment",
            "POST /jc/rest/servicedeskapi/request/SD-4/comment",
            "POST /jt/rest/servicedeskapi/request/SD-1/transition",
            "POST /jt/rest/servicedeskapi/request/SD-3/transition",
        ]
    );
    let transition = cap.requests()[6..]
        .iter()
        .find(|r| r.path.ends_with("/transition"))
        .map(json)
        .unwrap();
    assert_eq!(transition["id"], "761");
    assert!(
        transition["additionalComment"]["body"]
            .as_str()
            .unwrap()
            .starts_with("[RESOLVED] acme: task bronze.a succeeded again")
    );
    let incidents = env.store.incidents(0).await.unwrap();
    assert_eq!(incidents.len(), 4);
    assert!(incidents.iter().all(|i| i.status == "resolved"));
    let sd1 = incidents.iter().find(|i| i.external_key == "SD-1").unwrap();
    assert_eq!(sd1.occurrences, 2);
    assert_eq!(sd1.dedup_key, "failures|bronze.a|connection");

    // A failure after the recovery opens a new incident.
    let r5 = env
        .run(
            RunStatus::Failed,
            &[failed("bronze.a", "connection", "refused")],
        )
        .await;
    e.after_run(&r5).await;
    assert_eq!(
        paths(10),
        [
            "POST /jt/rest/servicedeskapi/request",
            "POST /jc/rest/servicedeskapi/request"
        ]
    );
    assert_eq!(
        env.store
            .open_incident("jt", "failures|bronze.a|connection")
            .await
            .unwrap()
            .unwrap()
            .external_key,
        "SD-5"
    );
}

#[tokio::test]
async fn a_500_is_retried_until_delivered_and_every_attempt_is_recorded() {
    let env = env().await;
    let cap = HttpCapture::start(|i, _| {
        if i < 2 {
            (500, r#"{"error":"busy"}"#.into())
        } else {
            (200, "{}".into())
        }
    });
    let cfg = config(&format!(
        "delivery: {{ attempts: 3, retry_delay: 10ms }}\nchannels:\n  hook: {{ type: webhook, url: \"{}/hook\" }}\nrules:\n  failures: {{ when: task_failed, channels: [hook] }}\n",
        cap.url()
    ));
    let e = engine(&env, &cfg, &[]);
    let r = env
        .run(RunStatus::Failed, &[failed("bronze.a", "task", "exit 3")])
        .await;
    assert_eq!(
        e.after_run(&r).await,
        Outcome {
            alerts: 1,
            delivered: 1,
            failed: 0
        }
    );
    assert_eq!(cap.requests().len(), 3);
    let mut d = env.store.deliveries(0).await.unwrap();
    d.sort_by_key(|d| d.attempt);
    let seen: Vec<(u32, &str, Option<u32>)> = d
        .iter()
        .map(|d| (d.attempt, d.status.as_str(), d.http_status))
        .collect();
    assert_eq!(
        seen,
        [
            (1, "retrying", Some(500)),
            (2, "retrying", Some(500)),
            (3, "delivered", Some(200))
        ]
    );
    assert!(d[0].error.as_deref().unwrap().contains("HTTP 500"), "{d:?}");
    assert!(
        d.iter()
            .all(|x| x.alert_id == d[0].alert_id && x.run_id.as_deref() == Some(r.as_str()))
    );
}

#[tokio::test]
async fn failing_channels_are_recorded_as_failed_and_the_others_still_get_the_alert() {
    let env = env().await;
    let down = HttpCapture::start(|_, _| (503, "{}".into()));
    let bad_request = HttpCapture::start(|_, _| (400, r#"{"error":"no"}"#.into()));
    let fine = HttpCapture::ok();
    // A port nothing listens on.
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let cfg = config(&format!(
        r#"
delivery: {{ attempts: 3, retry_delay: 10ms, timeout: 5s }}
channels:
  down: {{ type: webhook, url: "{}/x" }}
  refused: {{ type: slack, url: "http://{refused}/services/x" }}
  bad: {{ type: teams, url: "{}/y" }}
  fine: {{ type: webhook, url: "{}/z" }}
rules:
  failures: {{ when: task_failed, channels: [down, refused, bad, fine] }}
"#,
        down.url(),
        bad_request.url(),
        fine.url()
    ));
    let e = engine(&env, &cfg, &[]);
    let r = env
        .run(RunStatus::Failed, &[failed("bronze.a", "task", "exit 3")])
        .await;
    assert_eq!(
        e.after_run(&r).await,
        Outcome {
            alerts: 1,
            delivered: 1,
            failed: 3
        }
    );
    assert_eq!(down.requests().len(), 3);
    assert_eq!(bad_request.requests().len(), 1, "4xx is not retried");
    assert_eq!(fine.requests().len(), 1);
    let d = env.store.deliveries(0).await.unwrap();
    let last = |c: &str| {
        d.iter()
            .filter(|x| x.channel == c)
            .max_by_key(|x| x.attempt)
            .cloned()
            .unwrap()
    };
    let x = last("down");
    assert_eq!(
        (x.attempt, x.status.as_str(), x.http_status),
        (3, "failed", Some(503))
    );
    let x = last("refused");
    assert_eq!((x.attempt, x.status.as_str()), (3, "failed"));
    let err = x.error.unwrap();
    assert!(err.contains("could not connect"), "{err}");
    assert!(err.contains(&format!("http://{refused}/…")), "{err}");
    let x = last("bad");
    assert_eq!(
        (x.attempt, x.status.as_str(), x.http_status),
        (1, "failed", Some(400))
    );
    assert_eq!(last("fine").status, "delivered");
}

#[tokio::test]
async fn secrets_appear_in_no_body_error_or_stored_record() {
    let env = env().await;
    const HOOK: &str = "HOOKSECRET-9f8e7d";
    const HEADER: &str = "HEADERSECRET-1a2b";
    const JIRA: &str = "JIRASECRET-3c4d";
    // Servers that echo what they got into their error answers, as some do.
    let echo = HttpCapture::start(|_, r| (500, format!(r#"{{"bad_path":"{}"}}"#, r.path)));
    let jira = HttpCapture::start(|_, r| {
        (
            401,
            format!(
                r#"{{"message":"token JIRASECRET-3c4d rejected for {}"}}"#,
                r.header("authorization").unwrap_or("")
            ),
        )
    });
    let cfg = config(&format!(
        r#"
delivery: {{ attempts: 2, retry_delay: 10ms }}
channels:
  hook: {{ type: webhook, url: "{}/services/${{env:TT_HOOK}}?token=${{env:TT_HOOK}}", headers: {{ Authorization: "Bearer ${{env:TT_HEADER}}" }} }}
  jira: {{ type: jira, base_url: "{}", email: bot@acme.test, api_token: "${{env:TT_JIRA}}", service_desk_id: 1, request_type_id: 2 }}
rules:
  failures: {{ when: task_failed, channels: [hook, jira] }}
"#,
        echo.url(),
        jira.url()
    ));
    let e = engine(
        &env,
        &cfg,
        &[("TT_HOOK", HOOK), ("TT_HEADER", HEADER), ("TT_JIRA", JIRA)],
    );
    let r = env
        .run(RunStatus::Failed, &[failed("bronze.a", "task", "exit 3")])
        .await;
    let o = e.after_run(&r).await;
    assert_eq!((o.delivered, o.failed), (0, 2));
    assert_eq!(echo.requests().len(), 2);
    for req in echo.requests().iter().chain(jira.requests().iter()) {
        for s in [HOOK, HEADER, JIRA] {
            assert!(!req.body.contains(s), "{s} in body {}", req.body);
        }
    }
    let d = env.store.deliveries(0).await.unwrap();
    let states = env.store.firing_alerts(None).await.unwrap();
    let stored = format!("{d:?}{states:?}");
    let basic = tributary_alerts::smtp::base64(format!("bot@acme.test:{JIRA}").as_bytes());
    for s in [HOOK, HEADER, JIRA, basic.as_str()] {
        assert!(!stored.contains(s), "{s} in {stored}");
    }
    assert!(
        d.iter()
            .any(|x| x.error.as_deref().unwrap_or("").contains("/…: HTTP 500")),
        "{d:?}"
    );
    drop(e);
    // Nowhere in the store's files either.
    for f in std::fs::read_dir(env.dir.path().join(".tributary")).unwrap() {
        let bytes = std::fs::read(f.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for s in [HOOK, HEADER, JIRA] {
            assert!(!text.contains(s), "{s} in the state store files");
        }
    }
    // A task whose error happens to echo a secret (e.g. a command printing its environment):
    // the alert bodies carry `***` instead.
    let e = engine(
        &env,
        &cfg,
        &[("TT_HOOK", HOOK), ("TT_HEADER", HEADER), ("TT_JIRA", JIRA)],
    );
    let r = env
        .run(
            RunStatus::Failed,
            &[failed(
                "bronze.b",
                "task",
                "curl failed for token HOOKSECRET-9f8e7d",
            )],
        )
        .await;
    e.after_run(&r).await;
    let last = echo.requests().last().cloned().unwrap();
    assert!(
        last.body.contains("curl failed for token ***"),
        "{}",
        last.body
    );
    for req in echo.requests().iter().chain(jira.requests().iter()) {
        for s in [HOOK, HEADER, JIRA] {
            assert!(!req.body.contains(s), "{s} in body {}", req.body);
        }
    }
}

#[tokio::test]
async fn run_failed_row_count_and_duration_rules() {
    let env = env().await;
    let cap = HttpCapture::ok();
    let cfg = config(&format!(
        r#"
channels:
  hook: {{ type: webhook, url: "{}/hook" }}
rules:
  runs: {{ when: run_failed, select: [bronze.a], channels: [hook] }}
  volume: {{ when: row_count_anomaly, table: bronze.a, below_fraction: 0.5, over_runs: 3, channels: [hook] }}
  slow: {{ when: task_duration, task: bronze.a, max: 30m, channels: [hook] }}
"#,
        cap.url()
    ));
    let mut sel = BTreeMap::new();
    sel.insert("runs".to_string(), BTreeSet::from(["bronze.a".to_string()]));
    let e = engine_with(&env, &cfg, &[], sel);
    let rules_sent = |from: usize| -> Vec<(String, String)> {
        cap.requests()[from..]
            .iter()
            .map(json)
            .map(|b| {
                (
                    b["rule"].as_str().unwrap().to_string(),
                    b["event"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    // A failed run without the selected task: nothing.
    let r = env
        .run(RunStatus::Failed, &[failed("bronze.b", "task", "x")])
        .await;
    assert_eq!(e.after_run(&r).await, Outcome::default());
    // With it: the run alert.
    let r = env
        .run(
            RunStatus::Failed,
            &[failed("bronze.b", "task", "x"), ok("bronze.a", 100)],
        )
        .await;
    e.after_run(&r).await;
    assert_eq!(rules_sent(0), [("runs".to_string(), "firing".to_string())]);
    let b = json(&cap.requests()[0]);
    assert_eq!(b["subject"], "run manual");
    assert!(b["error"].as_str().unwrap().contains("bronze.b (task): x"));
    // Row counts: 100, 100 (fewer than 3 earlier runs: nothing), then 10: below half.
    env.run(RunStatus::Succeeded, &[ok("bronze.a", 100)]).await;
    let r = env.run(RunStatus::Succeeded, &[ok("bronze.a", 100)]).await;
    e.after_run(&r).await;
    assert_eq!(
        rules_sent(1),
        [("runs".to_string(), "resolved".to_string())]
    );
    let r = env.run(RunStatus::Succeeded, &[ok("bronze.a", 10)]).await;
    e.after_run(&r).await;
    assert_eq!(
        rules_sent(2),
        [("volume".to_string(), "firing".to_string())]
    );
    let b = json(&cap.requests()[2]);
    assert_eq!(b["error_class"], "row_count");
    assert!(
        b["error"]
            .as_str()
            .unwrap()
            .contains("bronze.a wrote 10 rows, below 50% of its average of 100.0 over the last 3 successful runs"),
        "{b}"
    );
    let r = env.run(RunStatus::Succeeded, &[ok("bronze.a", 90)]).await;
    e.after_run(&r).await;
    assert_eq!(
        rules_sent(3),
        [("volume".to_string(), "resolved".to_string())]
    );
    // An hour-long task.
    let r = env
        .run(
            RunStatus::Succeeded,
            &[(
                "bronze.a",
                TaskStatus::Succeeded,
                None,
                None,
                Some(100),
                3600,
            )],
        )
        .await;
    e.after_run(&r).await;
    assert_eq!(rules_sent(4), [("slow".to_string(), "firing".to_string())]);
    assert_eq!(
        json(&cap.requests()[4])["error"],
        "bronze.a ran for 1h 0m, longer than 30m"
    );
}

#[tokio::test]
async fn timed_rules_fire_once_per_breach_and_once_per_run() {
    let env = env().await;
    let cap = HttpCapture::ok();
    let cfg = config(&format!(
        r#"
channels:
  hook: {{ type: webhook, url: "{}/hook" }}
rules:
  stale: {{ when: freshness, table: bronze.never, max_age: 1h, channels: [hook] }}
  slow: {{ when: task_duration, max: 30m, channels: [hook] }}
"#,
        cap.url()
    ));
    let e = engine(&env, &cfg, &[]);
    assert!(e.has_timed_rules());
    let running = env
        .run(
            RunStatus::Running,
            &[("bronze.big", TaskStatus::Running, None, None, None, 7200)],
        )
        .await;
    let o = e.check().await;
    assert_eq!((o.alerts, o.delivered), (2, 2));
    let bodies: Vec<Value> = cap.requests().iter().map(json).collect();
    let stale = bodies.iter().find(|b| b["rule"] == "stale").unwrap();
    assert_eq!(stale["error"], "bronze.never has never been loaded");
    assert_eq!(stale["run_id"], Value::Null);
    assert_eq!(stale["link"], Value::Null);
    let slow = bodies.iter().find(|b| b["rule"] == "slow").unwrap();
    assert_eq!(slow["run_id"], running.as_str());
    assert_eq!(slow["task"], "bronze.big");
    assert!(
        slow["error"]
            .as_str()
            .unwrap()
            .starts_with("bronze.big has been running for 2h 0m"),
        "{slow}"
    );
    // Still breached a minute later: announced already.
    assert_eq!(e.check().await, Outcome::default());
    // The run ends with the task over its limit: the same run, so no second alert.
    env.store
        .upsert_task(&TaskRecord {
            run_id: running.clone(),
            task_id: "bronze.big".into(),
            kind: "load".into(),
            status: TaskStatus::Succeeded,
            started_at: Some(Utc::now().trunc_subsecs(6) - ChronoDuration::hours(2)),
            finished_at: Some(Utc::now().trunc_subsecs(6)),
            attempts: 1,
            rows: Some(1),
            bytes: None,
            version: None,
            error: None,
            error_class: None,
            detail: Value::Null,
        })
        .await
        .unwrap();
    env.store
        .finish_run(&running, RunStatus::Succeeded, Utc::now(), None)
        .await
        .unwrap();
    assert_eq!(e.after_run(&running).await, Outcome::default());
    assert_eq!(cap.requests().len(), 2);
}
