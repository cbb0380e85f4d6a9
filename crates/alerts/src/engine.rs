//! The engine of one project: set-up (channels' secrets, delivery policy), the entry points
//! (after a run, on the timer, `alerts test`), and turning findings into alert events whose
//! state is kept in the state store.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{error, info, warn};
use tributary_core::alerts::{AlertsConfig, ChannelConfig, RuleConfig, RuleKind, Severity};
use tributary_lake::Lake;
use tributary_orchestrator::state::{AlertStateRecord, StateStore};

use crate::AlertsError;
use crate::alert::{Alert, Event};
use crate::channels::Outbox;
use crate::delivery::{DeliveryPolicy, deliver};
use crate::rules::{Finding, RuleInputs};
use crate::secrets::Secrets;

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
    secrets: Secrets,
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
        for (name, c) in &cfg.channels {
            if !all_channels && !used.contains(name.as_str()) {
                continue;
            }
            let resolved = c.resolved(name, setup.env).map_err(AlertsError::Secret)?;
            channels.insert(name.clone(), resolved);
        }
        let secrets = Secrets::of(channels.values());
        let policy = DeliveryPolicy {
            attempts: cfg.delivery.attempts.max(1),
            retry_delay: cfg.delivery.retry_delay.std(),
            timeout: cfg.delivery.timeout.std(),
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
            check_interval: cfg.check_interval.std(),
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
        self.secrets.scrub(text)
    }

    /// What sending needs, borrowed.
    fn outbox(&self) -> Outbox<'_> {
        Outbox {
            http: &self.http,
            timeout: self.policy.timeout,
            secrets: &self.secrets,
            store: &self.store,
        }
    }

    /// What the rules are evaluated against, borrowed.
    fn rule_inputs(&self) -> RuleInputs<'_> {
        RuleInputs {
            store: &self.store,
            lake: self.lake.as_ref(),
            selections: &self.selections,
        }
    }

    /// Deliver `alert` to channel `name` (see [`deliver`]).
    async fn deliver(&self, alert: &Alert, name: &str) -> bool {
        deliver(&self.outbox(), &self.policy, &self.channels, alert, name).await
    }

    fn link(&self, run_id: &str) -> String {
        format!("{}/runs/{run_id}", self.link_base)
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
        let inputs = self.rule_inputs();
        let mut findings = Vec::new();
        for (name, rule) in &self.rules {
            match inputs.evaluate_run(name, rule, &detail).await {
                Ok(mut f) => findings.append(&mut f),
                Err(e) => {
                    error!(rule = %name, run_id = %run_id, error = %self.scrub(&e), "Cannot evaluate an alert rule.")
                }
            }
        }
        self.apply(findings).await
    }

    /// The timed rules: tables older than their `max_age`, and tasks of running runs past their
    /// `max`. `tributary serve` calls this every `check_interval`.
    pub async fn check(&self) -> Outcome {
        if !self.has_timed_rules() {
            return Outcome::default();
        }
        let _guard = self.lock.lock().await;
        let now = Utc::now();
        let inputs = self.rule_inputs();
        let mut findings = Vec::new();
        for (name, rule) in &self.rules {
            let found = match rule.when {
                RuleKind::Freshness => inputs.check_freshness(name, rule, now).await,
                RuleKind::TaskDuration => inputs.check_running(name, rule, now).await,
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
                ..f.clone()
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
            dedup_key: f.key(),
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
}
