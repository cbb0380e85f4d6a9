//! The `http` task: call an endpoint, and optionally poll a status URL until the work the call
//! started is done.
//!
//! The request: `method` (default `GET`) to `url` with the `query` parameters added, the
//! `headers`, and `body` as JSON. `{{run_id}}` in the URL, query values or body strings becomes
//! the run's id. Each request times out after 60 s ([`REQUEST_TIMEOUT`]).
//!
//! The response status must be one of `expect_status` (default: any 2xx). Otherwise the task
//! fails with `METHOD scheme://host/path returned 503 Service Unavailable: <the first 300
//! characters of the body>`, classified by status: 429 (`rate_limited`, honouring
//! `Retry-After` in seconds or as an HTTP date) and 5xx (`server_error`) and 408 (`timeout`)
//! are retried by the executor; 401, 403, 404 and 405 are `config`; others are `task`. A
//! refused or reset connection is `connection`, a request that timed out is `timeout`.
//!
//! With `poll`, after the first call succeeds, `poll.url` is requested every `poll.interval`
//! (the first time one interval after the call). `{{response.a.b}}` in it is replaced with
//! the value at that path in the first response's JSON (a missing path is a `config` error
//! naming it). Each status response must be JSON; `failed_when` is checked first (the task
//! fails, class `task`, naming the path and value), then `done_when` (the task succeeds, with
//! that value as its final state). Up to 3 transient failures in a row (connection, timeout,
//! 429, 5xx) are tolerated; a 429's `Retry-After` stretches the next wait. Cancelling the
//! token stops at once (class `cancelled`).
//!
//! Secrets: header values and query values (which may come from `${env:…}`) are never logged
//! or put in errors: URLs are shown without their query string (and without user
//! information), and any configured header or query value that appears in a response body is
//! replaced with `***` before the body is quoted.

use std::str::FromStr;
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use tributary_connectors::http::{error_text, quoted_body, retry_after, sensitive_headers, shown};
use tributary_core::jsonpath::lookup;
use tributary_core::pipeline::{Condition, TaskConfig};
use tributary_core::redact::scrub;
use url::Url;

use crate::error::{ErrorClass, TaskError, classify_http_status};

type Result<T, E = TaskError> = std::result::Result<T, E>;

/// Timeout of each request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Transient failures of status requests tolerated in a row.
pub const TOLERATED_POLL_FAILURES: u32 = 3;
/// Largest JSON response read (first call with `poll`, status responses).
const MAX_JSON_BYTES: usize = 16 * 1024 * 1024;

/// What an HTTP task needs from the run.
#[derive(Debug, Clone)]
pub struct HttpContext {
    /// The client (shared by the run's HTTP tasks).
    pub client: reqwest::Client,
    /// The run's id, for `{{run_id}}`.
    pub run_id: String,
}

/// A successful HTTP task.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpOutcome {
    /// Status of the first call.
    pub status: u16,
    /// Status requests made.
    pub polls: u32,
    /// Wall-clock duration.
    pub seconds: f64,
    /// With `poll`: the value at `done_when.path` that ended the polling.
    pub final_state: Option<String>,
}

/// A failed request, before it becomes a [`TaskError`].
#[derive(Debug)]
struct Failure {
    class: ErrorClass,
    message: String,
    retry_after: Option<Duration>,
}

impl Failure {
    fn new(class: ErrorClass, message: String) -> Failure {
        Failure {
            class,
            message,
            retry_after: None,
        }
    }

    fn into_error(self) -> TaskError {
        TaskError::new(self.class, self.message).with_retry_after(self.retry_after)
    }
}

fn config(message: String) -> TaskError {
    Failure::new(ErrorClass::Config, message).into_error()
}

/// Replace `{{ name }}` placeholders for which `resolve` gives a value; others stay as written.
fn fill(
    text: &str,
    resolve: &mut dyn FnMut(&str) -> Result<Option<String>, TaskError>,
) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start + 2..].find("}}") else {
            break;
        };
        let name = rest[start + 2..start + 2 + len].trim();
        out.push_str(&rest[..start]);
        match resolve(name)? {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[start..start + 2 + len + 2]),
        }
        rest = &rest[start + 2 + len + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn fill_run_id(text: &str, run_id: &str) -> Result<String> {
    fill(text, &mut |name| {
        Ok((name == "run_id").then(|| run_id.to_string()))
    })
}

/// `{{run_id}}` in every string of a JSON value.
fn fill_json(value: &Value, run_id: &str) -> Result<Value> {
    Ok(match value {
        Value::String(s) => Value::String(fill_run_id(s, run_id)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| fill_json(v, run_id))
                .collect::<Result<_>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), fill_json(v, run_id)?)))
                .collect::<Result<_>>()?,
        ),
        other => other.clone(),
    })
}

/// A JSON value as text: strings as they are, other values as JSON.
fn as_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One request, ready to be sent (again).
struct Call {
    method: Method,
    url: Url,
    body: Option<Value>,
}

/// What every request of a task shares: client, headers, secrets.
struct Session<'a> {
    task: &'a str,
    client: &'a reqwest::Client,
    headers: HeaderMap,
    secrets: Vec<String>,
    cancel: &'a CancellationToken,
}

impl Session<'_> {
    fn secret_list(&self) -> Vec<&str> {
        self.secrets.iter().map(String::as_str).collect()
    }

    fn scrub(&self, text: &str) -> String {
        scrub(text, &self.secret_list())
    }

    fn cancelled(&self, call: &Call) -> TaskError {
        Failure::new(
            ErrorClass::Cancelled,
            format!("{} {} was cancelled", call.method, shown(&call.url)),
        )
        .into_error()
    }

    /// Send `call`; the response if its status is accepted.
    async fn send(
        &self,
        call: &Call,
        accept: &(dyn Fn(StatusCode) -> bool + Sync),
    ) -> Result<reqwest::Response, Failure> {
        let mut request = self
            .client
            .request(call.method.clone(), call.url.clone())
            .headers(self.headers.clone())
            .timeout(REQUEST_TIMEOUT);
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| self.request_failure(call, e))?;
        let status = response.status();
        if accept(status) {
            return Ok(response);
        }
        let wait = retry_after(response.headers());
        let body = quoted_body(response, &self.secret_list()).await;
        let mut message = format!("{} {} returned {status}", call.method, shown(&call.url));
        if !body.is_empty() {
            message.push_str(": ");
            message.push_str(&body);
        }
        Err(Failure {
            class: classify_http_status(status.as_u16()),
            message,
            retry_after: wait,
        })
    }

    fn request_failure(&self, call: &Call, e: reqwest::Error) -> Failure {
        let class = if e.is_timeout() {
            ErrorClass::Timeout
        } else if e.is_builder() {
            ErrorClass::Config
        } else {
            ErrorClass::Connection
        };
        // The error's own text would contain the URL with its query string.
        Failure::new(
            class,
            format!(
                "{} {} failed: {}",
                call.method,
                shown(&call.url),
                error_text(e, &self.secret_list())
            ),
        )
    }

    /// A response body as JSON (at most [`MAX_JSON_BYTES`]).
    async fn json(&self, call: &Call, mut response: reqwest::Response) -> Result<Value, Failure> {
        let mut bytes = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    bytes.extend_from_slice(&chunk);
                    if bytes.len() > MAX_JSON_BYTES {
                        return Err(Failure::new(
                            ErrorClass::Task,
                            format!(
                                "the response of {} {} is larger than {} MiB",
                                call.method,
                                shown(&call.url),
                                MAX_JSON_BYTES / 1024 / 1024
                            ),
                        ));
                    }
                }
                Ok(None) => break,
                Err(e) => return Err(self.request_failure(call, e)),
            }
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            Failure::new(
                ErrorClass::Task,
                format!(
                    "the response of {} {} is not JSON ({e})",
                    call.method,
                    shown(&call.url)
                ),
            )
        })
    }
}

fn parse_method(m: Option<&str>, key: &str) -> Result<Method> {
    let m = m.unwrap_or("GET").to_ascii_uppercase();
    Method::from_str(&m).map_err(|_| config(format!("`{key}`: unknown HTTP method `{m}`")))
}

fn parse_url(text: &str, key: &str) -> Result<Url> {
    // The URL parser's errors do not repeat the URL, which may hold a secret.
    Url::parse(text).map_err(|e| config(format!("`{key}` is not a valid URL: {e}")))
}

/// Run the HTTP call of `task` (see the [module documentation](self)).
pub async fn run_http(
    task: &TaskConfig,
    ctx: &HttpContext,
    cancel: CancellationToken,
) -> Result<HttpOutcome> {
    let started = Instant::now();
    let run_id = ctx.run_id.as_str();
    let Some(url) = &task.url else {
        return Err(config("an http task needs `url`".into()));
    };
    let mut url = parse_url(&fill_run_id(url, run_id)?, "url")?;
    if !task.query.is_empty() {
        let mut pairs = url.query_pairs_mut();
        for (k, v) in &task.query {
            pairs.append_pair(k, &fill_run_id(v, run_id)?);
        }
    }
    let headers =
        sensitive_headers(&task.headers).map_err(|e| config(format!("`headers`: {e}")))?;
    let mut secrets: Vec<String> = task
        .headers
        .values()
        .chain(task.query.values())
        .cloned()
        .collect();
    // Longest first, so a secret containing another is replaced whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let session = Session {
        task: &task.name,
        client: &ctx.client,
        headers,
        secrets,
        cancel: &cancel,
    };
    let body = task
        .body
        .as_ref()
        .map(|b| fill_json(b, run_id))
        .transpose()?;
    let call = Call {
        method: parse_method(task.method.as_deref(), "method")?,
        url,
        body,
    };
    let poll = match &task.poll {
        Some(p) => Some(PollPlan::new(p)?),
        None => None,
    };

    info!(task = %task.name, method = %call.method, url = %shown(&call.url), "Calling HTTP endpoint.");
    let expect = &task.expect_status;
    let accept = |s: StatusCode| {
        if expect.is_empty() {
            s.is_success()
        } else {
            expect.contains(&s.as_u16())
        }
    };
    let response = tokio::select! {
        r = session.send(&call, &accept) => r.map_err(Failure::into_error)?,
        () = cancel.cancelled() => return Err(session.cancelled(&call)),
    };
    let status = response.status();
    info!(task = %task.name, method = %call.method, url = %shown(&call.url), status = status.as_u16(), "HTTP call succeeded.");

    let Some(poll) = poll else {
        return Ok(HttpOutcome {
            status: status.as_u16(),
            polls: 0,
            seconds: started.elapsed().as_secs_f64(),
            final_state: None,
        });
    };
    let mut needs_response = false;
    fill(&poll.url, &mut |name| {
        needs_response |= name.starts_with("response.");
        Ok(None)
    })?;
    let first: Option<Value> = if needs_response {
        let json = tokio::select! {
            r = session.json(&call, response) => r,
            () = cancel.cancelled() => return Err(session.cancelled(&call)),
        };
        Some(json.map_err(|f| match f.class {
            ErrorClass::Task => config(format!(
                "{}; `poll.url` takes values from it with {{{{response.…}}}}",
                f.message
            )),
            _ => f.into_error(),
        })?)
    } else {
        drop(response);
        None
    };
    let poll_url = fill(&poll.url, &mut |name| {
        if name == "run_id" {
            return Ok(Some(run_id.to_string()));
        }
        let Some(path) = name.strip_prefix("response.") else {
            return Ok(None);
        };
        let value = first
            .as_ref()
            .and_then(|json| lookup(json, path))
            .filter(|v| !v.is_null())
            .ok_or_else(|| {
                config(format!(
                    "`poll.url` uses {{{{response.{path}}}}} but the response of {} {} has no `{path}`",
                    call.method,
                    shown(&call.url)
                ))
            })?;
        let text = as_text(value);
        Ok(Some(
            percent_encoding::utf8_percent_encode(&text, URL_VALUE).to_string(),
        ))
    })?;
    let status_call = Call {
        method: poll.method.clone(),
        url: parse_url(&poll_url, "poll.url")?,
        body: None,
    };
    let (polls, final_state) = session.poll(&status_call, &poll).await?;
    let seconds = started.elapsed().as_secs_f64();
    info!(task = %task.name, polls, state = %session.scrub(&final_state), seconds, "HTTP task done.");
    Ok(HttpOutcome {
        status: status.as_u16(),
        polls,
        seconds,
        final_state: Some(final_state),
    })
}

/// Characters escaped in a value put into a URL: everything but unreserved characters.
const URL_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `poll:` with its interval and method parsed.
struct PollPlan {
    url: String,
    method: Method,
    interval: Duration,
    done_when: Condition,
    failed_when: Option<Condition>,
}

impl PollPlan {
    fn new(p: &tributary_core::pipeline::PollConfig) -> Result<PollPlan> {
        Ok(PollPlan {
            url: p.url.clone(),
            method: parse_method(p.method.as_deref(), "poll.method")?,
            interval: p.interval.std(),
            done_when: p.done_when.clone(),
            failed_when: p.failed_when.clone(),
        })
    }
}

impl Session<'_> {
    /// Request the status URL until `done_when` or `failed_when` matches: the number of
    /// requests and the final state.
    async fn poll(&self, call: &Call, plan: &PollPlan) -> Result<(u32, String)> {
        let mut polls = 0u32;
        let mut failures_in_a_row = 0u32;
        let mut wait = plan.interval;
        loop {
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.cancel.cancelled() => return Err(self.cancelled(call)),
            }
            wait = plan.interval;
            polls += 1;
            let attempt = async {
                let response = self.send(call, &|s| s.is_success()).await?;
                self.json(call, response).await
            };
            let result = tokio::select! {
                r = attempt => r,
                () = self.cancel.cancelled() => return Err(self.cancelled(call)),
            };
            let json = match result {
                Ok(json) => json,
                Err(f) if f.class.is_retryable() && failures_in_a_row < TOLERATED_POLL_FAILURES => {
                    failures_in_a_row += 1;
                    if let Some(ra) = f.retry_after {
                        wait = wait.max(ra);
                    }
                    warn!(task = %self.task, url = %shown(&call.url), error = %f.message, failures_in_a_row, "Status request failed; polling again.");
                    continue;
                }
                Err(f) => return Err(f.into_error()),
            };
            failures_in_a_row = 0;
            if let Some(failed) = &plan.failed_when
                && let Some(value) = lookup(&json, &failed.path).map(as_text)
                && failed.values.contains(&value)
            {
                return Err(Failure::new(
                    ErrorClass::Task,
                    format!(
                        "{} {} reports failure: `{}` is `{}` (poll.failed_when)",
                        call.method,
                        shown(&call.url),
                        failed.path,
                        self.scrub(&value)
                    ),
                )
                .into_error());
            }
            let state = lookup(&json, &plan.done_when.path).map(as_text);
            if let Some(state) = state
                && plan.done_when.values.contains(&state)
            {
                return Ok((polls, state));
            }
            debug!(task = %self.task, polls, "Not done yet.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders() {
        let got = fill_run_id("https://x/{{run_id}}/{{ run_id }}?a={{other}}", "r1")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got, "https://x/r1/r1?a={{other}}");
        let v = fill_json(&serde_json::json!({"a": ["{{run_id}}", 1]}), "r1")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v, serde_json::json!({"a": ["r1", 1]}));
    }

    #[test]
    fn paths() {
        let v = serde_json::json!({"state": {"life": "DONE"}, "items": [{"id": 7}]});
        assert_eq!(
            lookup(&v, "state.life").map(as_text).as_deref(),
            Some("DONE")
        );
        assert_eq!(lookup(&v, "items.0.id").map(as_text).as_deref(), Some("7"));
        assert!(lookup(&v, "items.1.id").is_none());
    }

    #[test]
    fn urls_are_shown_without_secrets() {
        let u = Url::parse("https://user:pw@example.com:8443/a/b?token=s3cret#f")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(shown(&u), "https://example.com:8443/a/b");
    }
}
