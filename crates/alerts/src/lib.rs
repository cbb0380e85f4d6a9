//! Tributary's alerts: the rules of `alerts:` in `tributary.yaml`, evaluated against the run
//! history in the state store (after every run) and against the lake and the running runs (on a
//! timer in `tributary serve`), and delivered to webhook, Slack, Teams, e-mail and Jira Service
//! Management channels.
//!
//! - Every alert has a stable dedup key `rule|subject|class` (subject: the task, table, model or
//!   `run <trigger>`; class: the error class, or `stale`, `duration`, `row_count`,
//!   `expectation:<name>`). Its state (firing or resolved) is kept in the state store, so a stale
//!   table is announced once per breach, a long task once per run, and a recovery is noticed.
//! - Jira keeps one open request per (channel, dedup key): a repeat failure comments on it; the
//!   recovery comments (or transitions it, when `resolve.transition_id` is set).
//! - Each delivery is tried up to `alerts.delivery.attempts` times with a doubling delay on
//!   connection errors, timeouts, HTTP 429/5xx and SMTP 4xx; every attempt is recorded
//!   (`alert_deliveries`); a final failure is logged at ERROR. Nothing here panics or returns an
//!   error into a run: evaluation problems are logged and counted.
//! - Secrets (webhook URLs, header values, API tokens, SMTP passwords) never reach a log, an
//!   error, the state store or a message body: URLs are shown as `scheme://host/…` and every
//!   text is scrubbed of every channel's secret values.
#![warn(missing_docs)]

pub mod alert;
pub mod smtp;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use tracing::{error, info, warn};
use tributary_core::alerts::{
    AlertsConfig, ChannelConfig, RuleConfig, RuleKind, Severity, redact_endpoint,
};
use tributary_core::config::parse_duration_micros;
use tributary_core::redact::scrub;
use tributary_lake::Lake;
use tributary_orchestrator::state::{
    AlertStateRecord, DeliveryRecord, IncidentRecord, RunDetail, RunFilter, RunStatus, StateStore,
    TaskStatus,
};

pub use alert::{Alert, Event};

/// The alerts could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    /// A channel's `${env:…}` could not be substituted (the message names key and variable).
    #[error("{0}")]
    Secret(String),
    /// A setting could not be used.
    #[error("alerts.{key}: {message}")]
    Setting {
        /// The key under `alerts.`.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// `tributary alerts test NAME` named no channel.
    #[error("no channel `{name}` in alerts.channels; defined: {known}")]
    UnknownChannel {
        /// The name asked for.
        name: String,
        /// The defined ones.
        known: String,
    },
}

/// How deliveries are tried.
#[derive(Debug, Clone)]
pub struct DeliveryPolicy {
    /// Attempts, the first included.
    pub attempts: u32,
    /// The wait before the second attempt; doubled for each next one.
    pub retry_delay: Duration,
    /// The limit of one attempt.
    pub timeout: Duration,
}

fn duration_of(key: &str, v: &str) -> Result<Duration, AlertsError> {
    parse_duration_micros(v)
        .map(|us| Duration::from_micros(us.max(0) as u64))
        .map_err(|message| AlertsError::Setting {
            key: key.to_string(),
            message,
        })
}

/// What an engine is built from.
pub struct EngineSetup<'a> {
    /// The project's name, shown in every alert.
    pub project: &'a str,
    /// `alerts:` as loaded (channels not yet substituted).
    pub config: &'a AlertsConfig,
    /// Reads environment variables for the channels' `${env:…}`.
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// Where states, deliveries and incidents are kept (and run history is read).
    pub store: StateStore,
    /// The lake, for freshness rules (none: freshness rules are not checked).
    pub lake: Option<Lake>,
    /// The start of run links: `{link_base}/runs/{run_id}`.
    pub link_base: String,
    /// For `task_failed` / `run_failed` rules with `select`: the task ids it selects.
    pub selections: BTreeMap<String, BTreeSet<String>>,
}

/// What one evaluation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Alert events raised (firing, repeat, resolved, test).
    pub alerts: usize,
    /// Deliveries that got through.
    pub delivered: usize,
    /// Deliveries that failed after their last attempt.
    pub failed: usize,
}

impl Outcome {
    fn add(&mut self, o: Outcome) {
        self.alerts += o.alerts;
        self.delivered += o.delivered;
        self.failed += o.failed;
    }
}

/// A finding of one rule: fire, or the condition is fine (resolve if firing).
struct Finding {
    rule: String,
    subject: String,
    class: String,
    task: Option<String>,
    run_id: Option<String>,
    error: Option<String>,
    title: String,
    facts: Vec<(String, String)>,
    breach: bool,
}

impl Finding {
    fn key(&self) -> String {
        format!("{}|{}|{}", self.rule, self.subject, self.class)
    }
}

/// Evaluates the rules and sends the alerts of one project.
pub struct AlertEngine {
    project: String,
    rules: BTreeMap<String, RuleConfig>,
    channels: BTreeMap<String, ChannelConfig>,
    selections: BTreeMap<String, BTreeSet<String>>,
    store: StateStore,
    lake: Option<Lake>,
    link_base: String,
    policy: DeliveryPolicy,
    check_interval: Duration,
    http: reqwest::Client,
    secrets: Vec<String>,
    /// One evaluation at a time per process (runs ending together, the timer), so that the
    /// read-then-write of alert states does not announce one alert twice.
    lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for AlertEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertEngine")
            .field("rules", &self.rules.keys().collect::<Vec<_>>())
            .field("channels", &self.channels)
            .finish()
    }
}

impl AlertEngine {
    /// Resolve the channels' secrets and build the engine. Only the channels some enabled rule
    /// uses need their variables, unless `all_channels` (for `alerts test`).
    pub fn new(setup: EngineSetup<'_>, all_channels: bool) -> Result<AlertEngine, AlertsError> {
        let cfg = setup.config;
        let used: BTreeSet<&str> = cfg
            .rules
            .values()
            .filter(|r| r.enabled)
            .flat_map(|r| r.channels.iter().map(String::as_str))
            .collect();
        let mut channels = BTreeMap::new();
        let mut secrets = Vec::new();
        for (name, c) in &cfg.channels {
            if !all_channels && !used.contains(name.as_str()) {
                continue;
            }
            let resolved = c.resolved(name, setup.env).map_err(AlertsError::Secret)?;
            secrets.extend(resolved.secrets());
            if let ChannelConfig::Jira {
                email, api_token, ..
            } = &resolved
            {
                // What the Authorization header carries, should a server echo it.
                secrets.push(smtp::base64(format!("{email}:{api_token}").as_bytes()));
            }
            channels.insert(name.clone(), resolved);
        }
        // Longest first, so a URL is replaced whole before its parts.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        let policy = DeliveryPolicy {
            attempts: cfg.delivery.attempts.max(1),
            retry_delay: duration_of("delivery.retry_delay", &cfg.delivery.retry_delay)?,
            timeout: duration_of("delivery.timeout", &cfg.delivery.timeout)?,
        };
        let http = reqwest::Client::builder()
            .user_agent(concat!("tributary/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| AlertsError::Setting {
                key: "channels".into(),
                message: format!("cannot build the HTTP client: {}", e.without_url()),
            })?;
        Ok(AlertEngine {
            project: setup.project.to_string(),
            rules: cfg
                .rules
                .iter()
                .filter(|(_, r)| r.enabled)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            channels,
            selections: setup.selections,
            store: setup.store,
            lake: setup.lake,
            link_base: setup.link_base.trim_end_matches('/').to_string(),
            policy,
            check_interval: duration_of("check_interval", &cfg.check_interval)?,
            http,
            secrets,
            lock: tokio::sync::Mutex::new(()),
        })
    }

    /// Whether there is any rule to evaluate.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// How often `serve` should call [`AlertEngine::check`].
    pub fn check_interval(&self) -> Duration {
        self.check_interval
    }

    /// Whether `serve` needs the timer (freshness or duration rules exist).
    pub fn has_timed_rules(&self) -> bool {
        self.rules
            .values()
            .any(|r| matches!(r.when, RuleKind::Freshness | RuleKind::TaskDuration))
    }

    /// Remove every channel secret from `text`.
    pub fn scrub(&self, text: &str) -> String {
        let refs: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        scrub(text, &refs)
    }

    fn link(&self, run_id: &str) -> String {
        format!("{}/runs/{run_id}", self.link_base)
    }

    fn selected(&self, rule: &str, task: &str) -> bool {
        self.selections
            .get(rule)
            .is_none_or(|ids| ids.contains(task))
    }

    /// Evaluate the run-based rules (failures, expectations, row counts, durations) against
    /// run `run_id`'s records and send what fires or recovers. Never fails: problems are logged.
    pub async fn after_run(&self, run_id: &str) -> Outcome {
        if self.rules.is_empty() {
            return Outcome::default();
        }
        let _guard = self.lock.lock().await;
        let detail = match self.store.get_run(run_id).await {
            Ok(Some(d)) => d,
            Ok(None) => {
                warn!(run_id = %run_id, "No such run in the state store; its alerts are not evaluated.");
                return Outcome::default();
            }
            Err(e) => {
                error!(run_id = %run_id, error = %self.scrub(&e.to_string()), "Cannot read the run to evaluate its alerts.");
                return Outcome::default();
            }
        };
        let mut findings = Vec::new();
        for (name, rule) in &self.rules {
            match self.evaluate_run(name, rule, &detail).await {
                Ok(mut f) => findings.append(&mut f),
                Err(e) => {
                    error!(rule = %name, run_id = %run_id, error = %self.scrub(&e), "Cannot evaluate an alert rule.")
                }
            }
        }
        self.apply(findings).await
    }

    async fn evaluate_run(
        &self,
        name: &str,
        rule: &RuleConfig,
        d: &RunDetail,
    ) -> Result<Vec<Finding>, String> {
        let run = &d.run.run;
        let run_id = run.run_id.clone();
        let mut out = Vec::new();
        let finding = |subject: &str, class: &str, breach: bool| Finding {
            rule: name.to_string(),
            subject: subject.to_string(),
            class: class.to_string(),
            task: None,
            run_id: Some(run_id.clone()),
            error: None,
            title: String::new(),
            facts: Vec::new(),
            breach,
        };
        match rule.when {
            RuleKind::TaskFailed => {
                for t in d.tasks.iter().filter(|t| self.selected(name, &t.task_id)) {
                    match t.status {
                        TaskStatus::Failed => {
                            let class = t.error_class.clone().unwrap_or_else(|| "task".into());
                            out.push(Finding {
                                task: Some(t.task_id.clone()),
                                error: t.error.clone(),
                                title: format!("task {} failed ({class})", t.task_id),
                                facts: vec![("Attempts".into(), t.attempts.to_string())],
                                ..finding(&t.task_id, &class, true)
                            });
                        }
                        // Recovery of every class this task was firing with.
                        TaskStatus::Succeeded => out.push(Finding {
                            task: Some(t.task_id.clone()),
                            title: format!("task {} succeeded again", t.task_id),
                            ..finding(&t.task_id, "*", false)
                        }),
                        _ => {}
                    }
                }
            }
            RuleKind::RunFailed => {
                let matches = !self.selections.contains_key(name)
                    || d.tasks.iter().any(|t| self.selected(name, &t.task_id));
                let subject = format!("run {}", run.trigger);
                if matches {
                    match run.status {
                        RunStatus::Failed => {
                            let failed: Vec<String> = d
                                .tasks
                                .iter()
                                .filter(|t| t.status == TaskStatus::Failed)
                                .map(|t| {
                                    format!(
                                        "{} ({}): {}",
                                        t.task_id,
                                        t.error_class.as_deref().unwrap_or("task"),
                                        t.error.as_deref().unwrap_or("")
                                    )
                                })
                                .collect();
                            out.push(Finding {
                                error: Some(
                                    [run.error.clone().unwrap_or_default()]
                                        .into_iter()
                                        .chain(failed)
                                        .collect::<Vec<_>>()
                                        .join("\n"),
                                ),
                                title: format!("run {} ({}) failed", run.run_id, run.trigger),
                                facts: vec![
                                    ("Trigger".into(), run.trigger.clone()),
                                    ("Tasks".into(), d.run.tasks.to_string()),
                                    ("Failed tasks".into(), d.run.failed.to_string()),
                                ],
                                ..finding(&subject, "failed", true)
                            });
                        }
                        RunStatus::Succeeded => out.push(Finding {
                            title: format!("{subject} succeeded again"),
                            ..finding(&subject, "failed", false)
                        }),
                        _ => {}
                    }
                }
            }
            RuleKind::ExpectationFailed => {
                let min = rule.min_failed_rows.unwrap_or(1);
                for e in d
                    .expectations
                    .iter()
                    .filter(|e| rule.model.as_ref().is_none_or(|m| *m == e.model))
                {
                    let class = format!("expectation:{}", e.expectation);
                    let breach = e.failed_rows >= min;
                    out.push(Finding {
                        task: Some(e.model.clone()),
                        error: breach.then(|| {
                            format!(
                                "{} of {} rows broke `{}` (on_fail: {})",
                                e.failed_rows, e.checked_rows, e.rule, e.on_fail
                            )
                        }),
                        title: if breach {
                            format!(
                                "expectation {} of {} failed on {} rows",
                                e.expectation, e.model, e.failed_rows
                            )
                        } else {
                            format!("expectation {} of {} passes again", e.expectation, e.model)
                        },
                        facts: vec![
                            ("Failed rows".into(), e.failed_rows.to_string()),
                            ("Checked rows".into(), e.checked_rows.to_string()),
                            ("Threshold".into(), min.to_string()),
                        ],
                        ..finding(&e.model, &class, breach)
                    });
                }
            }
            RuleKind::RowCountAnomaly => {
                let fraction = rule.below_fraction.unwrap_or(0.5);
                let over = rule.over_runs.unwrap_or(7).max(1) as usize;
                let needed = over.min(3);
                for t in d.tasks.iter().filter(|t| {
                    t.status == TaskStatus::Succeeded
                        && t.rows.is_some()
                        && rule.table.as_ref().is_none_or(|x| *x == t.task_id)
                }) {
                    let rows = t.rows.unwrap_or(0);
                    let history = self
                        .store
                        .task_history(&t.task_id, over + 8)
                        .await
                        .map_err(|e| e.to_string())?;
                    let earlier: Vec<u64> = history
                        .iter()
                        .filter(|h| h.run_id != run_id && h.status == TaskStatus::Succeeded)
                        .filter_map(|h| h.rows)
                        .take(over)
                        .collect();
                    if earlier.len() < needed {
                        continue;
                    }
                    let average = earlier.iter().sum::<u64>() as f64 / earlier.len() as f64;
                    let breach = (rows as f64) < fraction * average;
                    out.push(Finding {
                        task: Some(t.task_id.clone()),
                        error: breach.then(|| {
                            format!(
                                "{} wrote {rows} rows, below {:.0}% of its average of {average:.1} over the last {} successful runs",
                                t.task_id,
                                fraction * 100.0,
                                earlier.len()
                            )
                        }),
                        title: if breach {
                            format!("{} wrote only {rows} rows", t.task_id)
                        } else {
                            format!("{} row count is back to normal", t.task_id)
                        },
                        facts: vec![
                            ("Rows".into(), rows.to_string()),
                            ("Average".into(), format!("{average:.1}")),
                            ("Runs averaged".into(), earlier.len().to_string()),
                        ],
                        ..finding(&t.task_id, "row_count", breach)
                    });
                }
            }
            RuleKind::TaskDuration => {
                let max = rule
                    .max
                    .as_deref()
                    .map(|m| duration_of("max", m))
                    .transpose()
                    .map_err(|e| e.to_string())?
                    .unwrap_or(Duration::MAX);
                for t in d
                    .tasks
                    .iter()
                    .filter(|t| rule.task.as_ref().is_none_or(|x| *x == t.task_id))
                {
                    let (Some(start), Some(end)) = (t.started_at, t.finished_at) else {
                        continue;
                    };
                    let took = (end - start).to_std().unwrap_or_default();
                    let breach = took > max;
                    if !breach && t.status != TaskStatus::Succeeded {
                        continue;
                    }
                    out.push(duration_finding(
                        finding(&t.task_id, "duration", breach),
                        &t.task_id,
                        took,
                        max,
                        rule.max.as_deref().unwrap_or(""),
                        false,
                    ));
                }
            }
            RuleKind::Freshness => {}
        }
        Ok(out)
    }

    /// The timed rules: tables older than their `max_age`, and tasks of running runs past their
    /// `max`. `tributary serve` calls this every `check_interval`.
    pub async fn check(&self) -> Outcome {
        if !self.has_timed_rules() {
            return Outcome::default();
        }
        let _guard = self.lock.lock().await;
        let now = Utc::now();
        let mut findings = Vec::new();
        for (name, rule) in &self.rules {
            let found = match rule.when {
                RuleKind::Freshness => self.check_freshness(name, rule, now).await,
                RuleKind::TaskDuration => self.check_running(name, rule, now).await,
                _ => continue,
            };
            match found {
                Ok(mut f) => findings.append(&mut f),
                Err(e) => {
                    warn!(rule = %name, error = %self.scrub(&e), "Cannot check an alert rule; trying again at the next check.")
                }
            }
        }
        self.apply(findings).await
    }

    async fn check_freshness(
        &self,
        name: &str,
        rule: &RuleConfig,
        now: DateTime<Utc>,
    ) -> Result<Vec<Finding>, String> {
        let (Some(lake), Some(table), Some(max_age)) = (&self.lake, &rule.table, &rule.max_age)
        else {
            return Ok(Vec::new());
        };
        let max = duration_of("max_age", max_age).map_err(|e| e.to_string())?;
        let Some((layer, tname)) = table.split_once('.') else {
            return Ok(Vec::new());
        };
        let committed = match lake.open(layer, tname).await.map_err(|e| e.to_string())? {
            None => None,
            Some(t) => tributary_lake::table_info(layer, tname, &t)
                .map_err(|e| e.to_string())?
                .committed_at_ms
                .and_then(DateTime::<Utc>::from_timestamp_millis),
        };
        let age = committed.map(|c| (now - c).to_std().unwrap_or_default());
        let breach = age.is_none_or(|a| a > max);
        let error = match (committed, age) {
            (None, _) => format!("{table} has never been loaded"),
            (Some(c), Some(a)) => format!(
                "{table} was last loaded {} ago ({}), more than {max_age}",
                human(a),
                c.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            _ => String::new(),
        };
        Ok(vec![Finding {
            rule: name.to_string(),
            subject: table.clone(),
            class: "stale".into(),
            task: None,
            run_id: None,
            error: breach.then_some(error),
            title: if breach {
                format!("{table} is stale (older than {max_age})")
            } else {
                format!("{table} is fresh again")
            },
            facts: vec![
                ("Table".into(), table.clone()),
                (
                    "Age".into(),
                    age.map(human).unwrap_or_else(|| "never loaded".into()),
                ),
                ("Max age".into(), max_age.clone()),
            ],
            breach,
        }])
    }

    async fn check_running(
        &self,
        name: &str,
        rule: &RuleConfig,
        now: DateTime<Utc>,
    ) -> Result<Vec<Finding>, String> {
        let Some(max_text) = &rule.max else {
            return Ok(Vec::new());
        };
        let max = duration_of("max", max_text).map_err(|e| e.to_string())?;
        let running = self
            .store
            .list_runs(&RunFilter {
                limit: 0,
                status: Some(RunStatus::Running),
                task: rule.task.clone(),
                trigger: None,
            })
            .await
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for r in running {
            let Some(d) = self
                .store
                .get_run(&r.run.run_id)
                .await
                .map_err(|e| e.to_string())?
            else {
                continue;
            };
            for t in d.tasks.iter().filter(|t| {
                t.status == TaskStatus::Running
                    && rule.task.as_ref().is_none_or(|x| *x == t.task_id)
            }) {
                let Some(start) = t.started_at else { continue };
                let took = (now - start).to_std().unwrap_or_default();
                if took > max {
                    out.push(duration_finding(
                        Finding {
                            rule: name.to_string(),
                            subject: t.task_id.clone(),
                            class: "duration".into(),
                            task: None,
                            run_id: Some(r.run.run_id.clone()),
                            error: None,
                            title: String::new(),
                            facts: Vec::new(),
                            breach: true,
                        },
                        &t.task_id,
                        took,
                        max,
                        max_text,
                        true,
                    ));
                }
            }
        }
        Ok(out)
    }

    /// Turn findings into alert events: fire new ones (or repeats), resolve recovered ones,
    /// and deliver each.
    async fn apply(&self, findings: Vec<Finding>) -> Outcome {
        let mut outcome = Outcome::default();
        for f in findings {
            let result = if f.breach {
                self.fire(f).await
            } else {
                self.resolve(f).await
            };
            match result {
                Ok(o) => outcome.add(o),
                Err(e) => {
                    error!(error = %self.scrub(&e), "Cannot record an alert's state; it was not sent.")
                }
            }
        }
        outcome
    }

    async fn fire(&self, f: Finding) -> Result<Outcome, String> {
        let Some(rule) = self.rules.get(&f.rule) else {
            return Ok(Outcome::default());
        };
        let key = f.key();
        let now = Utc::now();
        let prev = self
            .store
            .alert_state(&key)
            .await
            .map_err(|e| e.to_string())?;
        let firing = prev.as_ref().filter(|p| p.status == "firing");
        if let Some(p) = firing {
            // Announced already: for this run (a long task seen by the timer, then at the end),
            // or, without a run, for this breach (a stale table).
            if f.run_id.is_none() || p.last_run_id == f.run_id {
                return Ok(Outcome::default());
            }
        }
        let (event, occurrences, first) = match firing {
            Some(p) => (Event::Repeat, p.occurrences + 1, p.first_fired_at),
            None => (Event::Firing, 1, now),
        };
        let alert = self.alert(&f, rule, event, occurrences, now);
        self.store
            .put_alert_state(&AlertStateRecord {
                dedup_key: key,
                rule: f.rule.clone(),
                subject: f.subject.clone(),
                error_class: f.class.clone(),
                severity: rule.severity().as_str().into(),
                status: "firing".into(),
                summary: alert.title.clone(),
                first_fired_at: first,
                last_fired_at: now,
                resolved_at: None,
                occurrences,
                last_run_id: f.run_id.clone(),
            })
            .await
            .map_err(|e| e.to_string())?;
        Ok(self.send(&alert, &rule.channels).await)
    }

    async fn resolve(&self, f: Finding) -> Result<Outcome, String> {
        let Some(rule) = self.rules.get(&f.rule) else {
            return Ok(Outcome::default());
        };
        let states: Vec<AlertStateRecord> = if f.class == "*" {
            self.store
                .firing_alerts(Some(&f.rule))
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .filter(|s| s.subject == f.subject)
                .collect()
        } else {
            self.store
                .alert_state(&f.key())
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .filter(|s| s.status == "firing")
                .collect()
        };
        let mut outcome = Outcome::default();
        for s in states {
            let now = Utc::now();
            let mut resolved = Finding {
                class: s.error_class.clone(),
                error: None,
                ..clone_finding(&f)
            };
            resolved
                .facts
                .push(("Fired".into(), s.occurrences.to_string()));
            let alert = self.alert(&resolved, rule, Event::Resolved, s.occurrences, now);
            self.store
                .put_alert_state(&AlertStateRecord {
                    status: "resolved".into(),
                    resolved_at: Some(now),
                    summary: alert.title.clone(),
                    ..s
                })
                .await
                .map_err(|e| e.to_string())?;
            outcome.add(self.send(&alert, &rule.channels).await);
        }
        Ok(outcome)
    }

    fn alert(
        &self,
        f: &Finding,
        rule: &RuleConfig,
        event: Event,
        occurrences: u32,
        at: DateTime<Utc>,
    ) -> Alert {
        let s = |t: &str| self.scrub(t);
        Alert {
            id: uuid::Uuid::new_v4().simple().to_string(),
            event,
            rule: f.rule.clone(),
            kind: rule.when.as_str(),
            severity: rule.severity(),
            dedup_key: format!("{}|{}|{}", f.rule, f.subject, f.class),
            subject: f.subject.clone(),
            task: f.task.clone(),
            run_id: f.run_id.clone(),
            error: f.error.as_deref().map(s),
            error_class: f.class.clone(),
            title: s(&f.title),
            facts: f.facts.iter().map(|(k, v)| (k.clone(), s(v))).collect(),
            link: f.run_id.as_deref().map(|r| self.link(r)),
            project: self.project.clone(),
            occurrences,
            at,
        }
    }

    /// `tributary alerts test [CHANNEL]`: a test message to one channel or to all of them.
    pub async fn send_test(
        &self,
        channel: Option<&str>,
    ) -> Result<Vec<(String, bool)>, AlertsError> {
        let names: Vec<String> = match channel {
            Some(n) if self.channels.contains_key(n) => vec![n.to_string()],
            Some(n) => {
                return Err(AlertsError::UnknownChannel {
                    name: n.to_string(),
                    known: self.channels.keys().cloned().collect::<Vec<_>>().join(", "),
                });
            }
            None => self.channels.keys().cloned().collect(),
        };
        let alert = Alert {
            id: uuid::Uuid::new_v4().simple().to_string(),
            event: Event::Test,
            rule: "test".into(),
            kind: "test",
            severity: Severity::Info,
            dedup_key: "test|tributary|test".into(),
            subject: "tributary".into(),
            task: None,
            run_id: None,
            error: None,
            error_class: "test".into(),
            title: "test alert from `tributary alerts test`".into(),
            facts: Vec::new(),
            link: None,
            project: self.project.clone(),
            occurrences: 1,
            at: Utc::now(),
        };
        let mut out = Vec::new();
        for n in names {
            let ok = self.deliver(&alert, &n).await;
            out.push((n, ok));
        }
        Ok(out)
    }

    async fn send(&self, alert: &Alert, channels: &[String]) -> Outcome {
        let mut o = Outcome {
            alerts: 1,
            ..Outcome::default()
        };
        info!(rule = %alert.rule, event = alert.event.as_str(), dedup_key = %alert.dedup_key, run_id = alert.run_id.as_deref().unwrap_or(""), "Alert raised.");
        for c in channels {
            if self.deliver(alert, c).await {
                o.delivered += 1;
            } else {
                o.failed += 1;
            }
        }
        o
    }

    /// Deliver `alert` to channel `name` with retries, recording every attempt. True when it
    /// got through (or there was nothing to do on this channel).
    async fn deliver(&self, alert: &Alert, name: &str) -> bool {
        let Some(channel) = self.channels.get(name) else {
            error!(rule = %alert.rule, channel = %name, "Alert not sent: the channel is not configured.");
            return false;
        };
        let mut delay = self.policy.retry_delay;
        for attempt in 1..=self.policy.attempts {
            let result = self.attempt(alert, name, channel).await;
            let last = attempt == self.policy.attempts;
            let (status, http_status, err, retry_after) = match &result {
                Ok(Sent::Done(code)) => ("delivered", *code, None, None),
                Ok(Sent::Nothing) => return true,
                Err(e) if e.retryable && !last => (
                    "retrying",
                    e.status,
                    Some(self.scrub(&e.message)),
                    e.retry_after,
                ),
                Err(e) => ("failed", e.status, Some(self.scrub(&e.message)), None),
            };
            let record = DeliveryRecord {
                alert_id: alert.id.clone(),
                channel: name.to_string(),
                attempt,
                rule: alert.rule.clone(),
                dedup_key: alert.dedup_key.clone(),
                event: alert.event.as_str().into(),
                run_id: alert.run_id.clone(),
                status: status.into(),
                http_status,
                error: err.clone(),
                attempted_at: Utc::now(),
            };
            if let Err(e) = self.store.record_delivery(&record).await {
                warn!(channel = %name, error = %self.scrub(&e.to_string()), "Cannot record an alert delivery attempt.");
            }
            match status {
                "delivered" => {
                    info!(rule = %alert.rule, channel = %name, kind = channel.kind(), event = alert.event.as_str(), attempt, "Alert delivered.");
                    return true;
                }
                "retrying" => {
                    let wait = retry_after.unwrap_or(delay).min(Duration::from_secs(60));
                    warn!(rule = %alert.rule, channel = %name, attempt, error = err.as_deref().unwrap_or(""), retry_in_ms = wait.as_millis() as u64, "Alert delivery failed; retrying.");
                    tokio::time::sleep(wait).await;
                    delay = delay.saturating_mul(2);
                }
                _ => {
                    error!(rule = %alert.rule, channel = %name, kind = channel.kind(), alert_id = %alert.id, dedup_key = %alert.dedup_key, attempts = attempt, error = err.as_deref().unwrap_or(""), "Alert delivery failed; recorded in the state store (alert_deliveries).");
                    return false;
                }
            }
        }
        false
    }

    async fn attempt(
        &self,
        alert: &Alert,
        name: &str,
        c: &ChannelConfig,
    ) -> Result<Sent, SendError> {
        match c {
            ChannelConfig::Webhook { url, headers } => {
                let body = self.scrub_json(alert.webhook_body());
                self.post(url, headers, None, &body)
                    .await
                    .map(|(s, _)| Sent::Done(Some(s)))
            }
            ChannelConfig::Slack { url } => {
                let body = self.scrub_json(alert.slack_body());
                self.post(url, &BTreeMap::new(), None, &body)
                    .await
                    .map(|(s, _)| Sent::Done(Some(s)))
            }
            ChannelConfig::Teams { url } => {
                let body = self.scrub_json(alert.teams_body());
                self.post(url, &BTreeMap::new(), None, &body)
                    .await
                    .map(|(s, _)| Sent::Done(Some(s)))
            }
            ChannelConfig::Email { smtp, to } => {
                let subject = self.scrub(&alert.headline());
                let body = self.scrub(&alert.text());
                smtp::send(
                    smtp,
                    &smtp::Mail {
                        from: &smtp.from,
                        to,
                        subject: &subject,
                        body: &body,
                    },
                    self.policy.timeout,
                )
                .await
                .map(|code| Sent::Done(Some(code)))
                .map_err(|e| SendError {
                    message: format!("e-mail via {}: {}", smtp.host, e.message),
                    retryable: e.retryable,
                    status: e.code,
                    retry_after: None,
                })
            }
            ChannelConfig::Jira { .. } => self.jira(alert, name, c).await,
        }
    }

    fn scrub_json(&self, v: serde_json::Value) -> serde_json::Value {
        let text = v.to_string();
        let clean = self.scrub(&text);
        if clean == text {
            v
        } else {
            serde_json::from_str(&clean).unwrap_or(v)
        }
    }

    /// POST JSON; `(status, body)` on 2xx.
    async fn post(
        &self,
        url: &str,
        headers: &BTreeMap<String, String>,
        basic: Option<(&str, &str)>,
        body: &serde_json::Value,
    ) -> Result<(u32, String), SendError> {
        let shown = redact_endpoint(url);
        let mut req = self
            .http
            .post(url)
            .timeout(self.policy.timeout)
            .header("Accept", "application/json")
            .json(body);
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        if let Some((user, token)) = basic {
            req = req.basic_auth(user, Some(token));
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                let what = if e.is_timeout() {
                    "timed out"
                } else if e.is_connect() {
                    "could not connect"
                } else {
                    "request failed"
                };
                return Err(SendError {
                    message: format!("POST {shown}: {what}: {}", describe(e)),
                    retryable: true,
                    status: None,
                    retry_after: None,
                });
            }
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = resp.text().await.unwrap_or_default();
        if (200..300).contains(&status) {
            return Ok((u32::from(status), text));
        }
        Err(SendError {
            message: format!(
                "POST {shown}: HTTP {status}: {}",
                alert::truncate(text.trim(), 300)
            ),
            retryable: status == 429 || status >= 500,
            status: Some(u32::from(status)),
            retry_after,
        })
    }

    /// Jira Service Management: create a request, comment on the open one, or resolve it.
    async fn jira(&self, alert: &Alert, name: &str, c: &ChannelConfig) -> Result<Sent, SendError> {
        let ChannelConfig::Jira {
            base_url,
            email,
            api_token,
            service_desk_id,
            request_type_id,
            resolve,
        } = c
        else {
            return Ok(Sent::Nothing);
        };
        let base = base_url.trim_end_matches('/');
        let auth = Some((email.as_str(), api_token.as_str()));
        let none = BTreeMap::new();
        let store_err = |e: tributary_orchestrator::state::StateError| SendError {
            message: format!("the incident record: {e}"),
            retryable: true,
            status: None,
            retry_after: None,
        };
        let open = if alert.event == Event::Test {
            None
        } else {
            self.store
                .open_incident(name, &alert.dedup_key)
                .await
                .map_err(store_err)?
        };
        let now = Utc::now();
        let text = self.scrub(&alert.text());
        match (alert.event, open) {
            (Event::Resolved, None) => Ok(Sent::Nothing),
            (Event::Resolved, Some(inc)) => {
                let key = &inc.external_key;
                let (status, _) = match &resolve.transition_id {
                    Some(id) => {
                        let mut body = json!({ "id": id });
                        if resolve.comment {
                            body["additionalComment"] = json!({ "body": text });
                        }
                        self.post(
                            &format!("{base}/rest/servicedeskapi/request/{key}/transition"),
                            &none,
                            auth,
                            &body,
                        )
                        .await?
                    }
                    None => {
                        self.post(
                            &format!("{base}/rest/servicedeskapi/request/{key}/comment"),
                            &none,
                            auth,
                            &json!({ "body": text, "public": true }),
                        )
                        .await?
                    }
                };
                self.store
                    .put_incident(&IncidentRecord {
                        status: "resolved".into(),
                        updated_at: now,
                        resolved_at: Some(now),
                        ..inc
                    })
                    .await
                    .map_err(store_err)?;
                Ok(Sent::Done(Some(status)))
            }
            (_, Some(inc)) => {
                let (status, _) = self
                    .post(
                        &format!(
                            "{base}/rest/servicedeskapi/request/{}/comment",
                            inc.external_key
                        ),
                        &none,
                        auth,
                        &json!({ "body": text, "public": true }),
                    )
                    .await?;
                self.store
                    .put_incident(&IncidentRecord {
                        updated_at: now,
                        occurrences: inc.occurrences + 1,
                        last_run_id: alert.run_id.clone().or(inc.last_run_id.clone()),
                        ..inc
                    })
                    .await
                    .map_err(store_err)?;
                Ok(Sent::Done(Some(status)))
            }
            (event, None) => {
                let body = json!({
                    "serviceDeskId": service_desk_id,
                    "requestTypeId": request_type_id,
                    "requestFieldValues": {
                        "summary": alert::truncate(&self.scrub(&alert.headline()), 250),
                        "description": text,
                    },
                });
                let (status, reply) = self
                    .post(
                        &format!("{base}/rest/servicedeskapi/request"),
                        &none,
                        auth,
                        &body,
                    )
                    .await?;
                if event == Event::Test {
                    return Ok(Sent::Done(Some(status)));
                }
                let key = serde_json::from_str::<serde_json::Value>(&reply)
                    .ok()
                    .and_then(|v| {
                        v.get("issueKey")
                            .or_else(|| v.get("key"))
                            .and_then(|k| k.as_str())
                            .map(str::to_string)
                    })
                    .ok_or_else(|| SendError {
                        message: format!(
                            "POST {}: the answer names no issueKey: {}",
                            redact_endpoint(base),
                            alert::truncate(reply.trim(), 200)
                        ),
                        retryable: false,
                        status: Some(status),
                        retry_after: None,
                    })?;
                info!(channel = %name, issue = %key, dedup_key = %alert.dedup_key, "Jira request created.");
                self.store
                    .put_incident(&IncidentRecord {
                        incident_id: uuid::Uuid::new_v4().simple().to_string(),
                        channel: name.to_string(),
                        dedup_key: alert.dedup_key.clone(),
                        rule: alert.rule.clone(),
                        external_key: key,
                        status: "open".into(),
                        opened_at: now,
                        updated_at: now,
                        resolved_at: None,
                        occurrences: 1,
                        last_run_id: alert.run_id.clone(),
                    })
                    .await
                    .map_err(|e| SendError {
                        // The request exists: trying again would open a second one.
                        retryable: false,
                        ..store_err(e)
                    })?;
                Ok(Sent::Done(Some(status)))
            }
        }
    }
}

enum Sent {
    /// Sent; the HTTP status or SMTP code.
    Done(Option<u32>),
    /// Nothing to send on this channel (a recovery with no open incident).
    Nothing,
}

#[derive(Debug)]
struct SendError {
    message: String,
    retryable: bool,
    status: Option<u32>,
    retry_after: Option<Duration>,
}

/// A reqwest error and its causes, without the URL (it may hold a token).
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut parts = vec![e.to_string()];
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        source = s.source();
    }
    parts.join(": ")
}

fn clone_finding(f: &Finding) -> Finding {
    Finding {
        rule: f.rule.clone(),
        subject: f.subject.clone(),
        class: f.class.clone(),
        task: f.task.clone(),
        run_id: f.run_id.clone(),
        error: f.error.clone(),
        title: f.title.clone(),
        facts: f.facts.clone(),
        breach: f.breach,
    }
}

fn duration_finding(
    base: Finding,
    task: &str,
    took: Duration,
    max: Duration,
    max_text: &str,
    running: bool,
) -> Finding {
    let breach = took > max;
    let verb = if running { "has been running" } else { "ran" };
    Finding {
        task: Some(task.to_string()),
        error: breach.then(|| format!("{task} {verb} for {}, longer than {max_text}", human(took))),
        title: if breach {
            format!("{task} {verb} longer than {max_text}")
        } else {
            format!("{task} finished within {max_text} again")
        },
        facts: vec![
            ("Duration".into(), human(took)),
            ("Limit".into(), max_text.to_string()),
        ],
        ..base
    }
}

/// `3h 2m`, `45s`.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86400, (s % 86400) / 3600),
    }
}
