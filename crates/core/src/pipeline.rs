//! Orchestration settings: the `orchestration:` block of `tributary.yaml` and the extra tasks in
//! `pipelines/*.yaml` (`command` and `http`), with the per-task options (`depends_on`,
//! `retries`, `timeout`) that loads and models accept too; and the `schedules:` and `serve:`
//! blocks of `tributary serve`.
//!
//! ```yaml
//! # pipelines/nightly.yaml
//! tasks:
//!   - name: export_legacy
//!     type: command
//!     command: ["python3", "scripts/export_legacy.py"]
//!     target: bronze.legacy_orders     # stdout (NDJSON or Arrow IPC) is loaded here
//!     timeout: 10m
//!     retries: 2
//!   - name: refresh_reports
//!     type: http
//!     method: POST
//!     url: https://example.com/api/2.1/jobs/run-now
//!     headers: { Authorization: "Bearer ${env:DATABRICKS_TOKEN}" }
//!     body: { job_id: 42 }
//!     poll:
//!       url: "https://example.com/api/2.1/jobs/runs/get?run_id={{response.run_id}}"
//!       done_when: { path: state.life_cycle_state, in: [TERMINATED] }
//!       failed_when: { path: state.result_state, in: [FAILED, CANCELED] }
//!     depends_on: [gold.daily_revenue]
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::values::Duration;

/// `orchestration:` in `tributary.yaml`: how the DAG runs.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OrchestrationConfig {
    /// Tasks running at once, at most. Default 4. `tributary run --parallel N` overrides it.
    #[serde(default = "default_max_parallel")]
    pub max_parallel: usize,
    /// Tasks using one source connection at once, at most (protects OLTP sources). Default 2.
    #[serde(default = "default_per_connection")]
    pub per_connection: usize,
    /// Per-connection overrides of `per_connection`, by connection name.
    #[serde(default)]
    pub connection_limits: BTreeMap<String, usize>,
    /// Default retries of every task after its first attempt (retryable errors only). Default 0.
    #[serde(default)]
    pub retries: u32,
    /// First retry delay; each next one doubles, with jitter, up to `retry_max_delay`.
    /// Default `5s`.
    #[serde(default = "default_retry_delay")]
    pub retry_delay: Duration,
    /// Longest wait between two attempts. Default `5m`.
    #[serde(default = "default_retry_max_delay")]
    pub retry_max_delay: Duration,
    /// Default timeout of every task (e.g. `2h`); none by default.
    #[serde(default)]
    pub timeout: Option<Duration>,
    /// When another run holds the lease on a table this run writes: `wait` for it (up to
    /// `lease_wait`) or `fail` at once, naming the holder. Default `wait`.
    #[serde(default)]
    pub on_lease_conflict: LeaseConflict,
    /// How long to wait for a table lease held by another run. Default `30m`.
    #[serde(default = "default_lease_wait")]
    pub lease_wait: Duration,
    /// How long to wait for running tasks to stop after Ctrl-C or SIGTERM before abandoning
    /// them. Default `30s`.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace: Duration,
}

impl Default for OrchestrationConfig {
    fn default() -> Self {
        OrchestrationConfig {
            max_parallel: default_max_parallel(),
            per_connection: default_per_connection(),
            connection_limits: BTreeMap::new(),
            retries: 0,
            retry_delay: default_retry_delay(),
            retry_max_delay: default_retry_max_delay(),
            timeout: None,
            on_lease_conflict: LeaseConflict::default(),
            lease_wait: default_lease_wait(),
            shutdown_grace: default_shutdown_grace(),
        }
    }
}

fn default_max_parallel() -> usize {
    4
}
fn default_per_connection() -> usize {
    2
}
fn default_retry_delay() -> Duration {
    Duration::from_secs(5)
}
fn default_retry_max_delay() -> Duration {
    Duration::from_secs(5 * 60)
}
fn default_lease_wait() -> Duration {
    Duration::from_secs(30 * 60)
}
fn default_shutdown_grace() -> Duration {
    Duration::from_secs(30)
}

/// What a run does when a table it writes is leased by another run.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LeaseConflict {
    /// Wait until the lease is released or expires (up to `lease_wait`).
    #[default]
    Wait,
    /// Fail the task at once with a message naming the holder.
    Fail,
}

/// `pipelines/*.yaml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// The extra tasks.
    #[serde(default)]
    pub tasks: Vec<TaskConfig>,
}

/// Kinds of pipeline task.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TaskType {
    /// Run a program.
    Command,
    /// Call an HTTP endpoint.
    Http,
}

/// One task in `pipelines/*.yaml`. Fields of the other type are rejected by validation.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TaskConfig {
    /// The task's id: lowercase letters, digits and `_`; unique among tasks, and different from
    /// every table name.
    pub name: String,
    /// `command` or `http`.
    #[serde(rename = "type")]
    pub kind: TaskType,
    /// Shown in `tributary dag` and the dashboard.
    #[serde(default)]
    pub description: Option<String>,
    /// Tasks that must succeed first.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Retries after the first attempt, for retryable errors.
    #[serde(default)]
    pub retries: Option<u32>,
    /// Stop the task after this long (e.g. `15m`).
    #[serde(default)]
    pub timeout: Option<Duration>,

    // --- command ---
    /// The program: a list (`[python3, export.py, --full]`, run directly) or a string (run by
    /// `sh -c`).
    #[serde(default)]
    pub command: Option<CommandLine>,
    /// Working folder, relative to the project. Default the project folder.
    #[serde(default)]
    pub cwd: Option<String>,
    /// Extra environment variables for the program (values may use `${env:…}`).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Load the program's standard output (NDJSON or an Arrow IPC stream) into this table
    /// (`bronze.<name>`). Without it, output goes to the log.
    #[serde(default)]
    pub target: Option<String>,
    /// Format of standard output when `target` is set: `auto` (Arrow IPC stream if it starts
    /// with the IPC marker, else NDJSON), `ndjson` or `arrow`.
    #[serde(default)]
    pub format: OutputFormat,
    /// With `target`: `append` the output to the table, or replace it (`full`, the default).
    #[serde(default)]
    pub mode: OutputMode,

    // --- http ---
    /// HTTP method. Default `GET`.
    #[serde(default)]
    pub method: Option<String>,
    /// The URL.
    #[serde(default)]
    pub url: Option<String>,
    /// Request headers (values may use `${env:…}`; they are never logged).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Query parameters added to the URL.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// A JSON request body.
    #[serde(default)]
    pub body: Option<serde_json::Value>,
    /// Accepted response statuses. Default any 2xx.
    #[serde(default)]
    pub expect_status: Vec<u16>,
    /// Poll a status URL until the work the call started is done.
    #[serde(default)]
    pub poll: Option<PollConfig>,
}

/// A command line.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum CommandLine {
    /// Run by `sh -c`.
    Shell(String),
    /// Program and arguments, run directly.
    Argv(Vec<String>),
}

/// Standard-output format of a command with a `target`.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OutputFormat {
    /// Arrow IPC stream when the output starts with its marker, else NDJSON.
    #[default]
    Auto,
    /// Newline-delimited JSON objects.
    Ndjson,
    /// An Arrow IPC stream.
    Arrow,
}

/// How a command's output is written to its target table.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OutputMode {
    /// Replace the table's contents.
    #[default]
    Full,
    /// Append to the table.
    Append,
}

/// Polling a status URL after an HTTP call.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PollConfig {
    /// The status URL. `{{response.FIELD.PATH}}` is replaced with a value from the first
    /// call's JSON response (e.g. a run id).
    pub url: String,
    /// HTTP method of the status request. Default `GET`.
    #[serde(default)]
    pub method: Option<String>,
    /// Time between two status requests. Default `10s`.
    #[serde(default = "default_poll_interval")]
    pub interval: Duration,
    /// Done when the value at `path` in the status response is one of `in`.
    pub done_when: Condition,
    /// Failed when the value at `path` is one of `in` (checked first).
    #[serde(default)]
    pub failed_when: Option<Condition>,
}

fn default_poll_interval() -> Duration {
    Duration::from_secs(10)
}

/// A test on a JSON response: the value at a dotted path (`state.result_state`, `items.0.id`)
/// is one of the listed values (compared as text).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// Dotted path into the JSON response; array elements by index.
    pub path: String,
    /// Accepted values.
    #[serde(rename = "in")]
    pub values: Vec<String>,
}

/// One `pipelines/*.yaml` file, as loaded.
#[derive(Debug, Clone)]
pub struct PipelineFile {
    /// Path relative to the project folder.
    pub path: PathBuf,
    /// Its contents.
    pub config: PipelineConfig,
}

/// Problems of one pipeline task, as (key, message); the key is relative to the task
/// (`command`, `poll.interval`, …). Cross-task checks (unique names, known `depends_on`) are
/// the project's.
pub fn check_task(task: &TaskConfig) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    if !crate::config::is_identifier(&task.name) {
        out.push((
            "name".into(),
            format!(
                "task name `{}` must be lowercase letters, digits and `_` (e.g. export_legacy)",
                task.name
            ),
        ));
    }
    let command_fields = [
        ("command", task.command.is_some()),
        ("cwd", task.cwd.is_some()),
        ("env", !task.env.is_empty()),
        ("target", task.target.is_some()),
        ("format", task.format != OutputFormat::Auto),
        ("mode", task.mode != OutputMode::Full),
    ];
    let http_fields = [
        ("method", task.method.is_some()),
        ("url", task.url.is_some()),
        ("headers", !task.headers.is_empty()),
        ("query", !task.query.is_empty()),
        ("body", task.body.is_some()),
        ("expect_status", !task.expect_status.is_empty()),
        ("poll", task.poll.is_some()),
    ];
    let (other, other_name) = match task.kind {
        TaskType::Command => (&http_fields[..], "http"),
        TaskType::Http => (&command_fields[..], "command"),
    };
    for (field, set) in other {
        if *set {
            out.push((
                (*field).into(),
                format!("`{field}` is for `type: {other_name}` tasks only"),
            ));
        }
    }
    match task.kind {
        TaskType::Command => {
            match &task.command {
                None => out.push((
                    "command".into(),
                    "a command task needs `command`: a list (`[python3, export.py]`) or a shell string".into(),
                )),
                Some(CommandLine::Argv(v)) if v.is_empty() || v[0].trim().is_empty() => out.push((
                    "command".into(),
                    "`command` is empty; give the program first, then its arguments".into(),
                )),
                Some(CommandLine::Shell(s)) if s.trim().is_empty() => {
                    out.push(("command".into(), "`command` is empty".into()))
                }
                _ => {}
            }
            if let Some(target) = &task.target {
                let ok = target
                    .split_once('.')
                    .map(|(l, n)| {
                        crate::config::is_identifier(l) && crate::config::is_identifier(n)
                    })
                    .unwrap_or(false);
                if !ok {
                    out.push((
                        "target".into(),
                        format!(
                            "target `{target}` must be `<layer>.<name>` (e.g. bronze.legacy_orders)"
                        ),
                    ));
                }
            } else {
                for (field, set) in [
                    ("format", task.format != OutputFormat::Auto),
                    ("mode", task.mode != OutputMode::Full),
                ] {
                    if set {
                        out.push((field.into(), format!("`{field}` needs `target`")));
                    }
                }
            }
        }
        TaskType::Http => {
            match &task.url {
                None => out.push(("url".into(), "an http task needs `url`".into())),
                Some(u) if !u.starts_with("http://") && !u.starts_with("https://") => out.push((
                    "url".into(),
                    "`url` must start with http:// or https://".into(),
                )),
                _ => {}
            }
            if let Some(m) = &task.method
                && !matches!(
                    m.to_ascii_uppercase().as_str(),
                    "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD"
                )
            {
                out.push((
                    "method".into(),
                    format!("unknown method `{m}`; use GET, POST, PUT, PATCH, DELETE or HEAD"),
                ));
            }
            for s in &task.expect_status {
                if !(100..=599).contains(s) {
                    out.push(("expect_status".into(), format!("{s} is not an HTTP status")));
                }
            }
            if let Some(p) = &task.poll {
                if !p.url.starts_with("http://") && !p.url.starts_with("https://") {
                    out.push((
                        "poll.url".into(),
                        "`poll.url` must start with http:// or https://".into(),
                    ));
                }
                if p.done_when.values.is_empty() {
                    out.push((
                        "poll.done_when.in".into(),
                        "list at least one value that means done".into(),
                    ));
                }
            }
        }
    }
    out
}

/// Problems of the `orchestration:` block, as (key, message) relative to it.
pub fn check_orchestration(o: &OrchestrationConfig) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if o.max_parallel == 0 {
        out.push(("max_parallel".into(), "must be at least 1".into()));
    }
    if o.per_connection == 0 {
        out.push(("per_connection".into(), "must be at least 1".into()));
    }
    for (k, v) in &o.connection_limits {
        if *v == 0 {
            out.push((
                format!("connection_limits.{k}"),
                "must be at least 1".into(),
            ));
        }
    }
    out
}

/// One entry of `schedules:` in `tributary.yaml`: when `tributary serve` runs which part of
/// the DAG.
///
/// ```yaml
/// schedules:
///   nightly:
///     cron: "0 2 * * *"
///     timezone: Europe/Amsterdam
///     select: ["+gold.daily_revenue"]
///     catch_up: skip
/// ```
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// When to run: a cron expression with 5 fields (`minute hour day-of-month month
    /// day-of-week`, e.g. `0 2 * * *` for 02:00 every day) or 6 fields with seconds first
    /// (`*/30 * * * * *`). Names (`MON`, `JAN`), ranges, steps, lists, `L` and `#` are accepted.
    pub cron: String,
    /// The IANA time zone the expression is read in (`Europe/Amsterdam`, `America/New_York`).
    /// Default `UTC`. Across a daylight-saving change, a fixed time that does not exist that
    /// day fires at the first instant after the gap, and one that occurs twice fires once;
    /// interval expressions (`*/15`) skip the gap and fire in both passes of a repeated hour.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// What to run: the same selectors as `tributary run --select` (names, layers, globs,
    /// `+name`, `name+`). Default: the whole DAG.
    #[serde(default)]
    pub select: Vec<String>,
    /// Run as `tributary run --full-refresh`: rebuild incremental tables from scratch.
    #[serde(default)]
    pub full_refresh: bool,
    /// What happens to fires missed while `tributary serve` was not running: `skip` them (they
    /// are recorded as missed) or run `once` at start-up for all of them. Default `skip`.
    #[serde(default)]
    pub catch_up: CatchUp,
    /// `false` keeps the schedule in the file without running it. Default `true`.
    #[serde(default = "default_true")]
    pub enabled: bool,
}

fn default_timezone() -> String {
    "UTC".into()
}
fn default_true() -> bool {
    true
}

/// What a schedule does with the fires it missed while the server was down.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// Do not run them; record them as one `missed` entry.
    #[default]
    Skip,
    /// Start one run at start-up, whatever the number of missed fires.
    Once,
}

/// `serve:` in `tributary.yaml`: the HTTP server of `tributary serve`.
#[derive(Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// Address and port to listen on. Default `127.0.0.1:8080` (this machine only).
    /// `tributary serve --bind` overrides it. Any address other than a loopback one requires
    /// `token`.
    #[serde(default = "default_bind")]
    pub bind: String,
    /// The API token, required on every request but `/health` as `Authorization: Bearer
    /// TOKEN`. Give it through the environment: `token: ${env:TRIBUTARY_TOKEN}`. Required when
    /// `bind` is not a loopback address.
    ///
    /// Kept as written when the project loads (`${env:…}` unexpanded, so commands other than
    /// `serve` do not need the variable) and never serialized.
    #[serde(default, skip_serializing)]
    pub token: Option<String>,
    /// The address people reach the dashboard at (e.g. `https://tributary.acme.internal`), for
    /// the run links in alerts: `{public_url}/runs/{run_id}`. Default `http://` + the bound
    /// address.
    #[serde(default)]
    pub public_url: Option<String>,
}

impl ServeConfig {
    /// The token with `${env:…}` substituted through `env`; an empty result counts as none.
    /// The error names the variable, never a value.
    pub fn resolved_token(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<String>, String> {
        match &self.token {
            None => Ok(None),
            Some(t) => crate::config::expand_env(t, env)
                .map(|t| Some(t).filter(|t| !t.trim().is_empty()))
                .map_err(|e| format!("serve.token: {e}")),
        }
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            bind: default_bind(),
            token: None,
            public_url: None,
        }
    }
}

// By hand, so that the token never reaches a log or an error message.
impl std::fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeConfig")
            .field("bind", &self.bind)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("public_url", &self.public_url)
            .finish()
    }
}

/// The default address of `tributary serve`.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";

fn default_bind() -> String {
    DEFAULT_BIND.into()
}

/// Parse a cron expression of 5 fields (minute precision) or 6 (seconds first). The error
/// names the expression and the parser's reason.
pub fn parse_cron(expr: &str) -> Result<croner::Cron, String> {
    use croner::parser::{CronParser, Seconds, Year};
    let fields = expr.split_whitespace().count();
    let starts_with_alias = expr.trim_start().starts_with('@');
    if !starts_with_alias && !matches!(fields, 5 | 6) {
        return Err(format!(
            "cron expression `{expr}` has {fields} field{}; write 5 (`minute hour day month weekday`, e.g. `0 2 * * *`) or 6 with seconds first (`*/30 * * * * *`)",
            if fields == 1 { "" } else { "s" }
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(expr)
        .map_err(|e| format!("cron expression `{expr}` is invalid: {e}"))
}

/// Parse an IANA time zone name (`Europe/Amsterdam`, `UTC`).
pub fn parse_timezone(name: &str) -> Result<chrono_tz::Tz, String> {
    name.parse::<chrono_tz::Tz>().map_err(|_| {
        format!("unknown time zone `{name}`; use an IANA name such as `UTC`, `Europe/Amsterdam` or `America/New_York`")
    })
}

/// Parse `serve.bind` / `--bind`: `IP:PORT` (`127.0.0.1:8080`, `[::1]:8080`, `0.0.0.0:8080`) or
/// `localhost:PORT`.
pub fn parse_bind(bind: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(addr) = bind.parse::<std::net::SocketAddr>() {
        return Ok(addr);
    }
    if let Some(port) = bind.strip_prefix("localhost:")
        && let Ok(port) = port.parse::<u16>()
    {
        return Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    Err(format!(
        "`{bind}` is not an address to listen on; write IP:PORT, e.g. `127.0.0.1:8080` or `0.0.0.0:8080`"
    ))
}

/// Problems of one schedule, as (key, message) relative to it (`cron`, `timezone`, …).
pub fn check_schedule(name: &str, s: &ScheduleConfig) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    if !crate::config::is_identifier(name) {
        out.push((
            String::new(),
            format!(
                "schedule name `{name}` must be lowercase letters, digits and `_` (e.g. nightly)"
            ),
        ));
    }
    let tz = match parse_timezone(&s.timezone) {
        Ok(tz) => Some(tz),
        Err(e) => {
            out.push(("timezone".into(), e));
            None
        }
    };
    match parse_cron(&s.cron) {
        Err(e) => out.push(("cron".into(), e)),
        Ok(cron) => {
            if let Some(tz) = tz {
                let now = chrono::Utc::now().with_timezone(&tz);
                if cron.find_next_occurrence(&now, false).is_err() {
                    out.push((
                        "cron".into(),
                        format!("cron expression `{}` never fires", s.cron),
                    ));
                }
            }
        }
    }
    for (i, sel) in s.select.iter().enumerate() {
        if sel.trim().is_empty() {
            out.push((format!("select[{i}]"), "empty selector".into()));
        }
    }
    out
}

/// Problems of the `serve:` block, as (key, message) relative to it.
pub fn check_serve(s: &ServeConfig) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(t) = &s.token
        && t.trim().is_empty()
    {
        out.push((
            "token".into(),
            "`token` is empty; set it (e.g. `${env:TRIBUTARY_TOKEN}`) or remove it".into(),
        ));
    }
    if let Some(u) = &s.public_url
        && !(u.starts_with("http://") || u.starts_with("https://"))
    {
        out.push((
            "public_url".into(),
            "`public_url` must start with http:// or https://".into(),
        ));
    }
    match parse_bind(&s.bind) {
        Err(e) => out.push(("bind".into(), e)),
        Ok(addr) => {
            if let Err(e) = check_exposure(addr, s.token.as_deref()) {
                out.push(("bind".into(), e));
            }
        }
    }
    out
}

/// A server bound to `addr` must have a (non-empty) token unless `addr` is a loopback address.
pub fn check_exposure(addr: std::net::SocketAddr, token: Option<&str>) -> Result<(), String> {
    let has_token = token.map(|t| !t.trim().is_empty()).unwrap_or(false);
    if addr.ip().is_loopback() || has_token {
        Ok(())
    } else {
        Err(format!(
            "binding {addr} exposes the server; set serve.token (e.g. `token: ${{env:TRIBUTARY_TOKEN}}`) or bind to 127.0.0.1"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(yaml: &str) -> TaskConfig {
        match serde_yaml_ng::from_str(yaml) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn command_task_checks() {
        let ok = task(
            "name: export\ntype: command\ncommand: [python3, x.py]\ntarget: bronze.legacy\nmode: append\n",
        );
        assert!(check_task(&ok).is_empty(), "{:?}", check_task(&ok));
        let bad = task("name: Export\ntype: command\nurl: http://x\nformat: arrow\n");
        let keys: Vec<String> = check_task(&bad).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["name", "url", "command", "format"]);
        // A duration is read when the file loads: a bad one is an error there, not a default.
        let e = serde_yaml_ng::from_str::<TaskConfig>(
            "name: export\ntype: command\ncommand: [x]\ntimeout: 5 parsecs\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown unit"), "{e}");
    }

    #[test]
    fn http_task_checks() {
        let ok = task(
            "name: refresh\ntype: http\nmethod: post\nurl: https://x/run\nbody: {job_id: 1}\npoll: {url: 'https://x/get?id={{response.run_id}}', done_when: {path: state, in: [DONE]}}\n",
        );
        assert!(check_task(&ok).is_empty(), "{:?}", check_task(&ok));
        let bad =
            task("name: refresh\ntype: http\nmethod: FETCH\nexpect_status: [700]\ncommand: ls\n");
        let keys: Vec<String> = check_task(&bad).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["command", "url", "method", "expect_status"]);
    }

    #[test]
    fn orchestration_defaults_are_valid() {
        assert!(check_orchestration(&OrchestrationConfig::default()).is_empty());
    }

    fn schedule(yaml: &str) -> ScheduleConfig {
        match serde_yaml_ng::from_str(yaml) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn schedule_defaults_and_checks() {
        let ok = schedule("cron: '0 2 * * *'\n");
        assert_eq!(ok.timezone, "UTC");
        assert_eq!(ok.catch_up, CatchUp::Skip);
        assert!(ok.enabled && ok.select.is_empty() && !ok.full_refresh);
        assert!(check_schedule("nightly", &ok).is_empty());
        let six = schedule("cron: '*/2 * * * * *'\ntimezone: Europe/Amsterdam\ncatch_up: once\n");
        assert!(check_schedule("fast", &six).is_empty());

        let bad = schedule("cron: '61 * * * *'\ntimezone: Mars/Olympus\nselect: ['']\n");
        let p = check_schedule("Nightly", &bad);
        let keys: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["", "timezone", "cron", "select[0]"]);
        assert!(p[1].1.contains("Mars/Olympus"), "{}", p[1].1);
        assert!(p[2].1.contains("`61 * * * *`"), "{}", p[2].1);

        let fields = check_schedule("x", &schedule("cron: '* * *'\n"));
        assert!(fields[0].1.contains("3 fields"), "{:?}", fields);
        let never = check_schedule("x", &schedule("cron: '0 0 30 2 *'\n"));
        assert!(never[0].1.contains("never fires"), "{:?}", never);
        let unknown: Result<ScheduleConfig, _> =
            serde_yaml_ng::from_str("cron: '* * * * *'\nevery: 5m\n");
        assert!(unknown.is_err());
    }

    #[test]
    fn serve_checks() {
        assert!(check_serve(&ServeConfig::default()).is_empty());
        let exposed = ServeConfig {
            bind: "0.0.0.0:8080".into(),
            token: None,
            public_url: None,
        };
        let p = check_serve(&exposed);
        assert_eq!(p.len(), 1);
        assert!(
            p[0].1
                .starts_with("binding 0.0.0.0:8080 exposes the server; set serve.token"),
            "{}",
            p[0].1
        );
        let with_token = ServeConfig {
            bind: "0.0.0.0:8080".into(),
            token: Some("s3cret-token".into()),
            public_url: None,
        };
        assert!(check_serve(&with_token).is_empty());
        assert!(!format!("{with_token:?}").contains("s3cret-token"));
        let bad = ServeConfig {
            bind: "everywhere".into(),
            token: Some(" ".into()),
            public_url: None,
        };
        let keys: Vec<String> = check_serve(&bad).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["token", "bind"]);
        assert_eq!(
            parse_bind("localhost:9000"),
            Ok(std::net::SocketAddr::from(([127, 0, 0, 1], 9000)))
        );
        assert!(parse_bind("[::1]:80").is_ok_and(|a| a.ip().is_loopback()));
    }

    #[test]
    fn project_reports_schedule_and_serve_problems_with_lines() {
        use crate::config::{ConfigError, PROJECT_FILE, Project};
        let d = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        let yaml = "name: t\nlake: ./lake\nschedules:\n  nightly:\n    cron: '0 2 * * *'\n    timezone: Europe/Amsterdam\n  broken:\n    cron: '0 25 * * *'\n    timezone: Nowhere/Land\nserve:\n  bind: 0.0.0.0:8080\n";
        if let Err(e) = std::fs::write(d.path().join(PROJECT_FILE), yaml) {
            panic!("{e}");
        }
        let p = match Project::load_with_env(d.path(), None, &|_| None) {
            Err(ConfigError::Problems(p)) => p,
            other => panic!("expected problems, got {other:?}"),
        };
        let text: Vec<String> = p.iter().map(|p| p.to_string()).collect();
        assert_eq!(text.len(), 3, "{text:#?}");
        assert!(
            text[0].starts_with("tributary.yaml:9: key `schedules.broken.timezone`: unknown time zone `Nowhere/Land`"),
            "{text:#?}"
        );
        assert!(
            text[1].starts_with("tributary.yaml:8: key `schedules.broken.cron`: cron expression `0 25 * * *` is invalid"),
            "{text:#?}"
        );
        assert!(
            text[2].starts_with("tributary.yaml:11: key `serve.bind`: binding 0.0.0.0:8080 exposes the server; set serve.token"),
            "{text:#?}"
        );

        let ok = "name: t\nlake: ./lake\nschedules:\n  nightly:\n    cron: '0 2 * * *'\nserve:\n  bind: 0.0.0.0:8080\n  token: ${env:TRIBUTARY_TOKEN}\n";
        if let Err(e) = std::fs::write(d.path().join(PROJECT_FILE), ok) {
            panic!("{e}");
        }
        let env = |k: &str| (k == "TRIBUTARY_TOKEN").then(|| "tok-123".to_string());
        match Project::load_with_env(d.path(), None, &env) {
            Ok(p) => {
                // Kept as written; `tributary serve` substitutes it.
                assert_eq!(
                    p.config.serve.token.as_deref(),
                    Some("${env:TRIBUTARY_TOKEN}")
                );
                assert_eq!(
                    p.config
                        .serve
                        .resolved_token(&env)
                        .ok()
                        .flatten()
                        .as_deref(),
                    Some("tok-123")
                );
                assert_eq!(p.config.schedules["nightly"].cron, "0 2 * * *");
            }
            Err(e) => panic!("{e}"),
        }
    }
}
