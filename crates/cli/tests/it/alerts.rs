//! Alerts end to end: the real binary runs a project whose task fails, and a capture server on
//! loopback receives the alert; secrets stay out of the output, the logs and the state store.

use tributary_testkit::capture::HttpCapture;

use crate::support::{TestProject, stderr, stdout};

const SECRET: &str = "T0AB1CD2/B3EF4GH5/hooksecret0123456789";

fn project(cap: &HttpCapture) -> TestProject {
    let p = TestProject::new(&format!(
        r#"name: acme
lake: ./lake
alerts:
  channels:
    hook: {{ type: webhook, url: "{}/hook/${{env:TT_HOOK_SECRET}}" }}
  rules:
    failures: {{ when: task_failed, channels: [hook] }}
"#,
        cap.url()
    ));
    p.write(
        "pipelines/jobs.yaml",
        "tasks:\n  - name: nightly_export\n    type: command\n    command: \"echo failing >&2; exit 3\"\n",
    );
    p
}

#[test]
fn a_failed_task_of_tributary_run_sends_the_alert_without_leaking_the_webhook_secret() {
    let cap = HttpCapture::ok();
    let p = project(&cap);
    let out = p
        .command(&["--log-format", "json", "run"])
        .env("TT_HOOK_SECRET", SECRET)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let reqs = cap.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}\n{}", stderr(&out));
    assert_eq!(reqs[0].path, format!("/hook/{SECRET}"));
    let body: serde_json::Value = serde_json::from_str(&reqs[0].body).unwrap();
    assert_eq!(body["rule"], "failures");
    assert_eq!(body["event"], "firing");
    assert_eq!(body["task"], "nightly_export");
    assert_eq!(body["error_class"], "task");
    assert_eq!(body["project"], "acme");
    let run_id = body["run_id"].as_str().unwrap().to_string();
    assert!(stdout(&out).contains(&run_id) || stderr(&out).contains(&run_id));
    assert_eq!(
        body["link"],
        format!("http://127.0.0.1:8080/runs/{run_id}").as_str()
    );
    assert!(body["error"].as_str().unwrap().contains('3'), "{body}");
    // The JSON log says what happened, without the URL's token.
    let log = stderr(&out);
    assert!(log.contains("Alert delivered."), "{log}");
    for (name, text) in [
        ("stdout", stdout(&out)),
        ("stderr", log),
        ("body", reqs[0].body.clone()),
    ] {
        assert!(
            !text.contains("hooksecret0123456789"),
            "secret in {name}: {text}"
        );
    }
    for f in std::fs::read_dir(p.path().join(".tributary")).unwrap() {
        let bytes = std::fs::read(f.unwrap().path()).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("hooksecret0123456789"));
    }

    // `alerts test` reaches the channel too.
    let out = p
        .command(&["alerts", "test", "hook"])
        .env("TT_HOOK_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("hook"), "{}", stdout(&out));
    let reqs = cap.requests();
    assert_eq!(reqs.len(), 2);
    let body: serde_json::Value = serde_json::from_str(&reqs[1].body).unwrap();
    assert_eq!(body["event"], "test");
}

#[test]
fn channel_variables_are_needed_only_by_commands_that_send_alerts() {
    let cap = HttpCapture::ok();
    let p = project(&cap);
    let validate = p
        .command(&["validate"])
        .env_remove("TT_HOOK_SECRET")
        .output()
        .unwrap();
    assert!(validate.status.success(), "{}", stderr(&validate));
    let run = p
        .command(&["run"])
        .env_remove("TT_HOOK_SECRET")
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
    let e = stderr(&run);
    assert!(
        e.contains("alerts.channels.hook.url: environment variable TT_HOOK_SECRET is not set"),
        "{e}"
    );
    assert!(cap.requests().is_empty());
}

#[test]
fn rules_naming_unknown_tasks_or_channels_are_configuration_errors() {
    let p = TestProject::new(
        "name: acme\nlake: ./lake\nalerts:\n  channels:\n    hook: { type: webhook, url: \"http://127.0.0.1:9/x\" }\n  rules:\n    failures: { when: task_failed, select: [nothing_here], channels: [hook] }\n    slow: { when: task_duration, max: 0s, channels: [pager] }\n",
    );
    p.write(
        "pipelines/jobs.yaml",
        "tasks:\n  - name: job\n    type: command\n    command: \"true\"\n",
    );
    let out = p.run(&["validate"]);
    assert_eq!(out.status.code(), Some(2));
    let e = stderr(&out);
    assert!(
        e.contains("tributary.yaml:8: key `alerts.rules.slow.channels[0]`: channel `pager` is not defined in alerts.channels; defined: hook"),
        "{e}"
    );
    assert!(
        e.contains("tributary.yaml:8: key `alerts.rules.slow.max`"),
        "{e}"
    );
    p.write(
        "tributary.yaml",
        "name: acme\nlake: ./lake\nalerts:\n  channels:\n    hook: { type: webhook, url: \"http://127.0.0.1:9/x\" }\n  rules:\n    failures: { when: task_failed, select: [nothing_here], channels: [hook] }\n",
    );
    let out = p.run(&["validate"]);
    assert_eq!(out.status.code(), Some(2));
    let e = stderr(&out);
    assert!(
        e.contains("tributary.yaml:7: key `alerts.rules.failures.select`"),
        "{e}"
    );
}
