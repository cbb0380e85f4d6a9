//! The `alerts:` block of `tributary.yaml`: named channels (where alerts go) and named rules
//! (when they fire).
//!
//! ```yaml
//! alerts:
//!   channels:
//!     ops_slack: { type: slack, url: "${env:SLACK_WEBHOOK}" }
//!     hook: { type: webhook, url: "https://example.com/hook", headers: { X-Token: "${env:HOOK_TOKEN}" } }
//!     mail:
//!       type: email
//!       smtp: { host: smtp.example.com, port: 587, tls: starttls, username: alerts, password: "${env:SMTP_PASSWORD}", from: alerts@example.com }
//!       to: [data-team@example.com]
//!     jira:
//!       type: jira
//!       base_url: https://acme.atlassian.net
//!       email: bot@acme.com
//!       api_token: "${env:JIRA_TOKEN}"
//!       service_desk_id: "3"
//!       request_type_id: "25"
//!       resolve: { comment: true, transition_id: "761" }
//!   rules:
//!     failures: { when: task_failed, channels: [ops_slack, jira] }
//!     stale_orders: { when: freshness, table: bronze.erp_orders, max_age: 2h, channels: [ops_slack] }
//! ```
//!
//! Channels hold secrets (webhook URLs carry tokens, API tokens, SMTP passwords). Like
//! `serve.token`, their `${env:…}` are kept as written when the project loads, so commands that
//! send no alerts (`validate`, `query`, `tables`, …) do not need the variables; the commands that
//! do (`run`, `serve`, `alerts test`) substitute them with [`ChannelConfig::resolved`] and stop
//! with exit code 2, naming the key and the variable, when one is unset. Channels are never
//! serialized, and their `Debug` output hides every secret.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::config::{expand_env, is_identifier};
use crate::values::{Duration, Secret};

/// `alerts:` in `tributary.yaml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// Named channels: where alerts are sent. Never serialized (they hold secrets).
    #[serde(default, skip_serializing)]
    pub channels: BTreeMap<String, ChannelConfig>,
    /// Named rules: when an alert fires, and to which channels.
    #[serde(default)]
    pub rules: BTreeMap<String, RuleConfig>,
    /// How deliveries are retried.
    #[serde(default)]
    pub delivery: DeliveryConfig,
    /// How often `tributary serve` checks the freshness and long-running-task rules. Default `1m`.
    #[serde(default = "default_check_interval")]
    pub check_interval: Duration,
}

fn default_check_interval() -> Duration {
    Duration::from_secs(60)
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            channels: BTreeMap::new(),
            rules: BTreeMap::new(),
            delivery: DeliveryConfig::default(),
            check_interval: default_check_interval(),
        }
    }
}

/// `alerts.delivery`: retries of one alert to one channel.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Attempts per channel, the first included, for connection errors, timeouts, HTTP 429 and
    /// 5xx, and SMTP 4xx replies. Default 3.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// Wait before the second attempt; each next wait doubles (HTTP `Retry-After` is honoured up
    /// to 1 minute). Default `2s`.
    #[serde(default = "default_retry_delay")]
    pub retry_delay: Duration,
    /// Time limit of one attempt. Default `10s`.
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
}

fn default_attempts() -> u32 {
    3
}
fn default_retry_delay() -> Duration {
    Duration::from_secs(2)
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            attempts: default_attempts(),
            retry_delay: default_retry_delay(),
            timeout: default_timeout(),
        }
    }
}

/// One channel.
#[derive(Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ChannelConfig {
    /// Any HTTP endpoint: a JSON body with the alert's fields is POSTed.
    Webhook {
        /// The URL (may carry a token: give it through `${env:…}`).
        url: String,
        /// Extra request headers (e.g. an authorization header through `${env:…}`).
        #[serde(default)]
        headers: BTreeMap<String, String>,
    },
    /// A Slack incoming webhook (`https://hooks.slack.com/services/…`).
    Slack {
        /// The webhook URL; it is a secret: `${env:SLACK_WEBHOOK}`.
        url: String,
    },
    /// A Microsoft Teams incoming webhook (MessageCard).
    Teams {
        /// The webhook URL; it is a secret: `${env:TEAMS_WEBHOOK}`.
        url: String,
    },
    /// E-mail over SMTP.
    Email {
        /// The SMTP server.
        smtp: SmtpConfig,
        /// Recipients.
        to: Vec<String>,
    },
    /// Jira Service Management: one customer request per open incident.
    Jira {
        /// The site, e.g. `https://acme.atlassian.net`.
        base_url: String,
        /// The account the API token belongs to.
        email: String,
        /// The API token: `${env:JIRA_TOKEN}`.
        api_token: Secret,
        /// The service desk's id.
        #[serde(deserialize_with = "string_or_number")]
        service_desk_id: String,
        /// The request type's id.
        #[serde(deserialize_with = "string_or_number")]
        request_type_id: String,
        /// What recovery does to the open request.
        #[serde(default)]
        resolve: JiraResolve,
    },
}

/// `resolve:` of a Jira channel.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct JiraResolve {
    /// Add a comment saying the task recovered. Default true.
    #[serde(default = "default_true")]
    pub comment: bool,
    /// Also perform this workflow transition (e.g. to Resolved), with the comment attached.
    #[serde(default, deserialize_with = "opt_string_or_number")]
    pub transition_id: Option<String>,
}

impl Default for JiraResolve {
    fn default() -> Self {
        JiraResolve {
            comment: true,
            transition_id: None,
        }
    }
}

fn default_true() -> bool {
    true
}

/// `smtp:` of an e-mail channel.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Server host name.
    pub host: String,
    /// Port. Default 587 for `starttls`, 465 for `tls`, 25 for `none`.
    #[serde(default)]
    pub port: Option<u16>,
    /// `starttls` (default: upgrade a plain connection, refusing servers that do not offer
    /// it), `tls` (TLS from the first byte) or `none` (plain text; loopback relays only).
    #[serde(default)]
    pub tls: SmtpTls,
    /// Login name, if the server needs one (AUTH PLAIN or LOGIN, only over TLS unless
    /// `tls: none`).
    #[serde(default)]
    pub username: Option<String>,
    /// Password: `${env:SMTP_PASSWORD}`.
    #[serde(default)]
    pub password: Option<Secret>,
    /// The sender address.
    pub from: String,
}

impl SmtpConfig {
    /// The port, or the default for the TLS mode.
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        })
    }
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (required).
    #[default]
    Starttls,
    /// TLS from the start (SMTPS).
    Tls,
    /// No encryption.
    None,
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        S(String),
        N(u64),
    }
    Ok(match Id::deserialize(d)? {
        Id::S(s) => s,
        Id::N(n) => n.to_string(),
    })
}

fn opt_string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    string_or_number(d).map(Some)
}

// By hand: URLs, headers, tokens and passwords are secrets.
impl fmt::Debug for ChannelConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChannelConfig::Webhook { url, headers } => f
                .debug_struct("Webhook")
                .field("url", &redact_endpoint(url))
                .field("headers", &headers.keys().collect::<Vec<_>>())
                .finish(),
            ChannelConfig::Slack { url } => f
                .debug_struct("Slack")
                .field("url", &redact_endpoint(url))
                .finish(),
            ChannelConfig::Teams { url } => f
                .debug_struct("Teams")
                .field("url", &redact_endpoint(url))
                .finish(),
            ChannelConfig::Email { smtp, to } => f
                .debug_struct("Email")
                .field("smtp", smtp)
                .field("to", to)
                .finish(),
            ChannelConfig::Jira {
                base_url,
                email,
                service_desk_id,
                request_type_id,
                resolve,
                ..
            } => f
                .debug_struct("Jira")
                .field("base_url", &redact_endpoint(base_url))
                .field("email", email)
                .field("api_token", &"***")
                .field("service_desk_id", service_desk_id)
                .field("request_type_id", request_type_id)
                .field("resolve", resolve)
                .finish(),
        }
    }
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("from", &self.from)
            .finish()
    }
}

/// A URL reduced to `scheme://host/…` (port kept), for messages: webhook URLs carry their
/// token in the path or query. Text that is not a URL becomes `…`.
pub fn redact_endpoint(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("");
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            let rest = if u.path().len() > 1 || u.query().is_some() {
                "/…"
            } else {
                ""
            };
            format!("{}://{host}{port}{rest}", u.scheme())
        }
        Err(_) => "…".into(),
    }
}

impl ChannelConfig {
    /// The channel type as written (`webhook`, `slack`, `teams`, `email`, `jira`).
    pub fn kind(&self) -> &'static str {
        match self {
            ChannelConfig::Webhook { .. } => "webhook",
            ChannelConfig::Slack { .. } => "slack",
            ChannelConfig::Teams { .. } => "teams",
            ChannelConfig::Email { .. } => "email",
            ChannelConfig::Jira { .. } => "jira",
        }
    }

    /// A copy with every `${env:…}` substituted through `env`. The error names the key
    /// (`alerts.channels.NAME.FIELD`) and the variable, never a value.
    pub fn resolved(
        &self,
        name: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ChannelConfig, String> {
        let sub = |field: &str, v: &str| {
            expand_env(v, env).map_err(|e| format!("alerts.channels.{name}.{field}: {e}"))
        };
        Ok(match self {
            ChannelConfig::Webhook { url, headers } => ChannelConfig::Webhook {
                url: sub("url", url)?,
                headers: headers
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), sub(&format!("headers.{k}"), v)?)))
                    .collect::<Result<_, String>>()?,
            },
            ChannelConfig::Slack { url } => ChannelConfig::Slack {
                url: sub("url", url)?,
            },
            ChannelConfig::Teams { url } => ChannelConfig::Teams {
                url: sub("url", url)?,
            },
            ChannelConfig::Email { smtp, to } => ChannelConfig::Email {
                smtp: SmtpConfig {
                    host: sub("smtp.host", &smtp.host)?,
                    port: smtp.port,
                    tls: smtp.tls,
                    username: smtp
                        .username
                        .as_deref()
                        .map(|u| sub("smtp.username", u))
                        .transpose()?,
                    password: smtp
                        .password
                        .as_ref()
                        .map(|p| sub("smtp.password", p.expose()).map(Secret::new))
                        .transpose()?,
                    from: sub("smtp.from", &smtp.from)?,
                },
                to: to
                    .iter()
                    .enumerate()
                    .map(|(i, t)| sub(&format!("to[{i}]"), t))
                    .collect::<Result<_, String>>()?,
            },
            ChannelConfig::Jira {
                base_url,
                email,
                api_token,
                service_desk_id,
                request_type_id,
                resolve,
            } => ChannelConfig::Jira {
                base_url: sub("base_url", base_url)?,
                email: sub("email", email)?,
                api_token: Secret::new(sub("api_token", api_token.expose())?),
                service_desk_id: sub("service_desk_id", service_desk_id)?,
                request_type_id: sub("request_type_id", request_type_id)?,
                resolve: resolve.clone(),
            },
        })
    }

    /// The secret values of a resolved channel, to scrub from every message: URLs (and their
    /// paths and queries), header values, tokens, passwords.
    pub fn secrets(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut url_parts = |u: &str| {
            out.push(u.to_string());
            if let Ok(parsed) = url::Url::parse(u) {
                if parsed.path().len() > 1 {
                    out.push(parsed.path().to_string());
                    // Each path segment long enough to be a token.
                    for seg in parsed.path().split('/') {
                        if seg.len() >= 16 {
                            out.push(seg.to_string());
                        }
                    }
                }
                if let Some(q) = parsed.query() {
                    out.push(q.to_string());
                    for (_, v) in parsed.query_pairs() {
                        if v.len() >= 4 {
                            out.push(v.into_owned());
                        }
                    }
                }
            }
        };
        match self {
            ChannelConfig::Webhook { url, headers } => {
                url_parts(url);
                out.extend(headers.values().cloned());
            }
            ChannelConfig::Slack { url } | ChannelConfig::Teams { url } => url_parts(url),
            ChannelConfig::Email { smtp, .. } => {
                out.extend(smtp.password.as_ref().map(|p| p.expose().to_string()))
            }
            ChannelConfig::Jira { api_token, .. } => out.push(api_token.expose().to_string()),
        }
        out.retain(|s| s.len() >= 4);
        out
    }
}

/// What a rule watches.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// A task of a run failed (after its retries). One alert per (task, error class).
    TaskFailed,
    /// A run ended failed.
    RunFailed,
    /// A table's last commit is older than `max_age` (checked by `tributary serve`).
    Freshness,
    /// An expectation of a model found at least `min_failed_rows` failing rows.
    ExpectationFailed,
    /// A task wrote fewer rows than `below_fraction` of its average over its last `over_runs`
    /// successful runs.
    RowCountAnomaly,
    /// A task ran (or is running) longer than `max`.
    TaskDuration,
}

impl RuleKind {
    /// The name as written.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::TaskFailed => "task_failed",
            RuleKind::RunFailed => "run_failed",
            RuleKind::Freshness => "freshness",
            RuleKind::ExpectationFailed => "expectation_failed",
            RuleKind::RowCountAnomaly => "row_count_anomaly",
            RuleKind::TaskDuration => "task_duration",
        }
    }

    /// The severity when the rule names none.
    pub fn default_severity(self) -> Severity {
        match self {
            RuleKind::TaskFailed | RuleKind::RunFailed => Severity::Error,
            _ => Severity::Warning,
        }
    }
}

/// How bad an alert is.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// For information.
    Info,
    /// Needs a look.
    Warning,
    /// Something failed.
    Error,
    /// Wake someone up.
    Critical,
}

impl Severity {
    /// The name as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }
}

/// One rule. Which fields apply depends on `when`; the others are rejected by validation.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// `task_failed`, `run_failed`, `freshness`, `expectation_failed`, `row_count_anomaly` or
    /// `task_duration`.
    pub when: RuleKind,
    /// Channel names from `alerts.channels`.
    pub channels: Vec<String>,
    /// `info`, `warning`, `error` or `critical`. Default `error` for failures, `warning` for
    /// the others.
    #[serde(default)]
    pub severity: Option<Severity>,
    /// `false` keeps the rule in the file without evaluating it. Default `true`.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// `task_failed`, `run_failed`: only these tasks (the selectors of `run --select`); a run
    /// matches when it includes one of them. Default: every task.
    #[serde(default)]
    pub select: Vec<String>,
    /// `freshness` (required), `row_count_anomaly` (default: every task that writes rows): the
    /// table `<layer>.<name>`.
    #[serde(default)]
    pub table: Option<String>,
    /// `freshness`: the oldest the table's last commit may be (`2h`, `30m`, `1d`).
    #[serde(default)]
    pub max_age: Option<Duration>,
    /// `expectation_failed`: only this model (default: every model).
    #[serde(default)]
    pub model: Option<String>,
    /// `expectation_failed`: fire when an expectation found at least this many failing rows.
    /// Default 1.
    #[serde(default)]
    pub min_failed_rows: Option<u64>,
    /// `row_count_anomaly`: fire when a run writes fewer rows than this fraction of the recent
    /// average (0 < fraction ≤ 1). Default 0.5.
    #[serde(default)]
    pub below_fraction: Option<f64>,
    /// `row_count_anomaly`: the average is over at most this many earlier successful runs of the
    /// task (at least `min(3, over_runs)` are needed). Default 7.
    #[serde(default)]
    pub over_runs: Option<u32>,
    /// `task_duration`: only this task (default: every task).
    #[serde(default)]
    pub task: Option<String>,
    /// `task_duration`: the longest a task may run (`30m`).
    #[serde(default)]
    pub max: Option<Duration>,
}

impl RuleConfig {
    /// The rule's severity (its own, or its kind's default).
    pub fn severity(&self) -> Severity {
        self.severity.unwrap_or(self.when.default_severity())
    }
}

fn is_table_name(s: &str) -> bool {
    s.split_once('.')
        .map(|(l, n)| is_identifier(l) && is_identifier(n))
        .unwrap_or(false)
}

/// Whether `v` is a `${env:…}` reference not substituted yet (checked when it is).
fn unresolved(v: &str) -> bool {
    v.contains("${")
}

fn check_http_url(key: &str, url: &str, out: &mut Vec<(String, String)>) {
    if unresolved(url) {
        return;
    }
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
        _ => out.push((
            key.into(),
            format!(
                "`{}` is not an http:// or https:// URL",
                redact_endpoint(url)
            ),
        )),
    }
}

fn check_address(key: &str, addr: &str, out: &mut Vec<(String, String)>) {
    if unresolved(addr) {
        return;
    }
    let ok = addr.split_once('@').is_some_and(|(user, domain)| {
        !user.is_empty()
            && !domain.is_empty()
            && !addr
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ','))
    });
    if !ok {
        out.push((
            key.into(),
            format!("`{addr}` is not an e-mail address (name@example.com)"),
        ));
    }
}

/// Problems of the `alerts:` block, as (key, message) relative to it (`channels.x.url`,
/// `rules.y.max_age`, …). Task names in `select`, `task` and `model` are checked against the
/// DAG by the commands that build it.
pub fn check_alerts(a: &AlertsConfig) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (key, value) in [
        ("delivery.timeout", &a.delivery.timeout),
        ("check_interval", &a.check_interval),
    ] {
        if value.micros() <= 0 {
            out.push((key.into(), "must be longer than 0".into()))
        }
    }
    if a.delivery.attempts == 0 {
        out.push(("delivery.attempts".into(), "must be at least 1".into()));
    }
    for (name, c) in &a.channels {
        let k = |f: &str| format!("channels.{name}.{f}");
        if !is_identifier(name) {
            out.push((
                format!("channels.{name}"),
                format!("channel name `{name}` must be lowercase letters, digits and `_`"),
            ));
        }
        match c {
            ChannelConfig::Webhook { url, headers } => {
                check_http_url(&k("url"), url, &mut out);
                for h in headers.keys() {
                    if h.is_empty()
                        || !h
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
                    {
                        out.push((
                            k(&format!("headers.{h}")),
                            format!("`{h}` is not a header name"),
                        ));
                    }
                }
            }
            ChannelConfig::Slack { url } | ChannelConfig::Teams { url } => {
                check_http_url(&k("url"), url, &mut out)
            }
            ChannelConfig::Email { smtp, to } => {
                if smtp.host.trim().is_empty() {
                    out.push((k("smtp.host"), "`host` is empty".into()));
                }
                if smtp.port == Some(0) {
                    out.push((k("smtp.port"), "port 0 is not a port".into()));
                }
                check_address(&k("smtp.from"), &smtp.from, &mut out);
                if to.is_empty() {
                    out.push((k("to"), "list at least one recipient".into()));
                }
                for (i, t) in to.iter().enumerate() {
                    check_address(&k(&format!("to[{i}]")), t, &mut out);
                }
                if smtp.password.is_some() && smtp.username.is_none() {
                    out.push((k("smtp.password"), "`password` needs `username`".into()));
                }
            }
            ChannelConfig::Jira {
                base_url,
                email,
                service_desk_id,
                request_type_id,
                resolve,
                ..
            } => {
                check_http_url(&k("base_url"), base_url, &mut out);
                check_address(&k("email"), email, &mut out);
                for (f, v) in [
                    ("service_desk_id", service_desk_id),
                    ("request_type_id", request_type_id),
                ] {
                    if v.trim().is_empty() {
                        out.push((k(f), format!("`{f}` is empty")));
                    }
                }
                if !resolve.comment && resolve.transition_id.is_none() {
                    out.push((
                        k("resolve"),
                        "recovery would do nothing: set `comment: true` or a `transition_id`"
                            .into(),
                    ));
                }
            }
        }
    }
    for (name, r) in &a.rules {
        let k = |f: &str| format!("rules.{name}.{f}");
        if !is_identifier(name) {
            out.push((
                format!("rules.{name}"),
                format!("rule name `{name}` must be lowercase letters, digits and `_`"),
            ));
        }
        if r.channels.is_empty() {
            out.push((k("channels"), "list at least one channel".into()));
        }
        for (i, c) in r.channels.iter().enumerate() {
            if !a.channels.contains_key(c) {
                let known: Vec<&str> = a.channels.keys().map(String::as_str).collect();
                out.push((
                    k(&format!("channels[{i}]")),
                    format!(
                        "channel `{c}` is not defined in alerts.channels; defined: {}",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            }
        }
        let applies: &[&str] = match r.when {
            RuleKind::TaskFailed | RuleKind::RunFailed => &["select"],
            RuleKind::Freshness => &["table", "max_age"],
            RuleKind::ExpectationFailed => &["model", "min_failed_rows"],
            RuleKind::RowCountAnomaly => &["table", "below_fraction", "over_runs"],
            RuleKind::TaskDuration => &["task", "max"],
        };
        for (field, set) in [
            ("select", !r.select.is_empty()),
            ("table", r.table.is_some()),
            ("max_age", r.max_age.is_some()),
            ("model", r.model.is_some()),
            ("min_failed_rows", r.min_failed_rows.is_some()),
            ("below_fraction", r.below_fraction.is_some()),
            ("over_runs", r.over_runs.is_some()),
            ("task", r.task.is_some()),
            ("max", r.max.is_some()),
        ] {
            if set && !applies.contains(&field) {
                out.push((
                    k(field),
                    format!(
                        "`{field}` does not apply to `when: {}`; it takes {}",
                        r.when.as_str(),
                        applies
                            .iter()
                            .map(|f| format!("`{f}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        for (i, s) in r.select.iter().enumerate() {
            if s.trim().is_empty() {
                out.push((k(&format!("select[{i}]")), "empty selector".into()));
            }
        }
        if let Some(t) = &r.table
            && !is_table_name(t)
        {
            out.push((
                k("table"),
                format!("`{t}` must be `<layer>.<name>` (e.g. bronze.erp_orders)"),
            ));
        }
        if let Some(m) = &r.model
            && !is_table_name(m)
        {
            out.push((
                k("model"),
                format!("`{m}` must be `<layer>.<name>` (e.g. silver.orders)"),
            ));
        }
        let mut duration = |field: &str, v: &Option<Duration>, required: bool| match v {
            None if required => out.push((
                k(field),
                format!(
                    "`when: {}` needs `{field}` (a duration such as `30m` or `2h`)",
                    r.when.as_str()
                ),
            )),
            None => {}
            Some(v) if v.micros() <= 0 => out.push((k(field), "must be longer than 0".into())),
            Some(_) => {}
        };
        match r.when {
            RuleKind::Freshness => {
                duration("max_age", &r.max_age, true);
                if r.table.is_none() {
                    out.push((
                        k("table"),
                        "`when: freshness` needs `table` (e.g. bronze.erp_orders)".into(),
                    ));
                }
            }
            RuleKind::TaskDuration => duration("max", &r.max, true),
            _ => {}
        }
        if let Some(f) = r.below_fraction
            && !(f > 0.0 && f <= 1.0)
        {
            out.push((
                k("below_fraction"),
                format!("{f} is not a fraction above 0 and at most 1 (e.g. 0.5)"),
            ));
        }
        if r.over_runs == Some(0) {
            out.push((k("over_runs"), "must be at least 1".into()));
        }
        if r.min_failed_rows == Some(0) {
            out.push((k("min_failed_rows"), "must be at least 1".into()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alerts(yaml: &str) -> AlertsConfig {
        match serde_yaml_ng::from_str(yaml) {
            Ok(a) => a,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn a_full_configuration_is_valid() {
        let a = alerts(
            r#"
channels:
  ops_slack: { type: slack, url: "${env:SLACK_WEBHOOK}" }
  teams: { type: teams, url: "https://example.webhook.office.com/webhookb2/x" }
  hook: { type: webhook, url: "http://127.0.0.1:9/hook", headers: { X-Token: "${env:T}" } }
  mail:
    type: email
    smtp: { host: smtp.example.com, tls: starttls, username: u, password: "${env:P}", from: alerts@example.com }
    to: [a@example.com]
  jira:
    type: jira
    base_url: https://acme.atlassian.net
    email: bot@acme.com
    api_token: "${env:JIRA_TOKEN}"
    service_desk_id: 3
    request_type_id: "25"
    resolve: { transition_id: 761 }
rules:
  failures: { when: task_failed, select: [bronze], channels: [ops_slack, jira] }
  runs: { when: run_failed, channels: [hook] }
  stale: { when: freshness, table: bronze.erp_orders, max_age: 2h, channels: [mail] }
  dq: { when: expectation_failed, model: silver.orders, min_failed_rows: 100, channels: [teams] }
  volume: { when: row_count_anomaly, table: bronze.erp_orders, below_fraction: 0.5, over_runs: 7, channels: [hook] }
  long: { when: task_duration, task: silver.orders, max: 30m, severity: critical, channels: [hook] }
"#,
        );
        assert_eq!(check_alerts(&a), vec![]);
        match &a.channels["jira"] {
            ChannelConfig::Jira {
                service_desk_id,
                resolve,
                ..
            } => {
                assert_eq!(service_desk_id, "3");
                assert_eq!(resolve.transition_id.as_deref(), Some("761"));
                assert!(resolve.comment);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(a.rules["long"].severity(), Severity::Critical);
        assert_eq!(a.rules["stale"].severity(), Severity::Warning);
        assert_eq!(a.rules["failures"].severity(), Severity::Error);
    }

    #[test]
    fn problems_are_named_by_key() {
        let a = alerts(
            r#"
delivery: { attempts: 0, timeout: 0s }
channels:
  hook: { type: webhook, url: "ftp://x/y" }
  mail: { type: email, smtp: { host: "", from: nobody }, to: [] }
  jira: { type: jira, base_url: x, email: b@c, api_token: t, service_desk_id: "", request_type_id: 1, resolve: { comment: false } }
rules:
  a: { when: freshness, channels: [nope], max_age: 0s, select: [x] }
  b: { when: task_duration, channels: [] }
  c: { when: row_count_anomaly, below_fraction: 1.5, over_runs: 0, channels: [hook] }
"#,
        );
        let keys: Vec<String> = check_alerts(&a).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "delivery.timeout",
                "delivery.attempts",
                "channels.hook.url",
                "channels.jira.base_url",
                "channels.jira.service_desk_id",
                "channels.jira.resolve",
                "channels.mail.smtp.host",
                "channels.mail.smtp.from",
                "channels.mail.to",
                "rules.a.channels[0]",
                "rules.a.select",
                "rules.a.max_age",
                "rules.a.table",
                "rules.b.channels",
                "rules.b.max",
                "rules.c.below_fraction",
                "rules.c.over_runs",
            ]
        );
        let unknown: Result<AlertsConfig, _> =
            serde_yaml_ng::from_str("channels: { x: { type: pager, url: y } }");
        assert!(unknown.is_err());
        // A duration that does not parse is refused when the file is read.
        let e = serde_yaml_ng::from_str::<AlertsConfig>("delivery: { retry_delay: soon }")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`soon` is not a duration"), "{e}");
    }

    #[test]
    fn secrets_are_resolved_late_and_never_shown() {
        let a = alerts(
            "channels:\n  s: { type: slack, url: \"https://hooks.example/services/${env:HOOK}\" }\n  j: { type: jira, base_url: 'https://j.example', email: a@b.c, api_token: '${env:JT}', service_desk_id: 1, request_type_id: 2 }\n",
        );
        let env = |k: &str| match k {
            "HOOK" => Some("T000/B000/sekret-hook-token".to_string()),
            "JT" => Some("jira-sekret".to_string()),
            _ => None,
        };
        let s = a.channels["s"]
            .resolved("s", &env)
            .unwrap_or_else(|e| panic!("{e}"));
        let debug = format!("{s:?}");
        assert!(!debug.contains("sekret"), "{debug}");
        assert!(debug.contains("https://hooks.example/…"), "{debug}");
        assert!(s.secrets().iter().any(|x| x == "sekret-hook-token"));
        let j = a.channels["j"]
            .resolved("j", &env)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!format!("{j:?}").contains("jira-sekret"));
        let e = a.channels["j"]
            .resolved("j", &|_| None)
            .err()
            .unwrap_or_default();
        assert!(
            e.starts_with("alerts.channels.j.api_token: environment variable JT is not set"),
            "{e}"
        );
        let yaml = serde_yaml_ng::to_string(&a).unwrap_or_default();
        assert!(
            !yaml.contains("HOOK") && !yaml.contains("channels"),
            "{yaml}"
        );
    }

    #[test]
    fn endpoints_are_redacted_to_scheme_and_host() {
        assert_eq!(
            redact_endpoint("https://hooks.slack.com/services/T0/B0/XYZ"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            redact_endpoint("http://127.0.0.1:8080/hook?token=abc"),
            "http://127.0.0.1:8080/…"
        );
        assert_eq!(
            redact_endpoint("https://acme.atlassian.net"),
            "https://acme.atlassian.net"
        );
        assert_eq!(redact_endpoint("not a url"), "…");
    }
}
