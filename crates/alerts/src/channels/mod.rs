//! Sending one alert on one channel, one attempt: what is common to the channels (the HTTP POST,
//! the outcome and error of an attempt), and one module per channel kind.

mod email;
mod jira;
mod slack;
mod teams;
mod webhook;

use std::collections::BTreeMap;
use std::time::Duration;

use tributary_core::alerts::{ChannelConfig, redact_endpoint};
use tributary_orchestrator::state::StateStore;

use crate::alert::{self, Alert};
use crate::secrets::Secrets;

/// What sending on any channel needs, borrowed from the engine.
pub(crate) struct Outbox<'a> {
    /// The HTTP client (no redirects).
    pub(crate) http: &'a reqwest::Client,
    /// The limit of one attempt.
    pub(crate) timeout: Duration,
    /// Removed from every body before it leaves.
    pub(crate) secrets: &'a Secrets,
    /// Where Jira incidents are kept.
    pub(crate) store: &'a StateStore,
}

/// What one attempt did.
pub(crate) enum Sent {
    /// Sent; the HTTP status or SMTP code.
    Done(Option<u32>),
    /// Nothing to send on this channel (a recovery with no open incident).
    Nothing,
}

/// Why one attempt failed.
#[derive(Debug)]
pub(crate) struct SendError {
    /// What failed; may still hold secrets (scrubbed before it is logged or recorded).
    pub(crate) message: String,
    /// Whether a later attempt may get through.
    pub(crate) retryable: bool,
    /// The HTTP status or SMTP code, when there was an answer.
    pub(crate) status: Option<u32>,
    /// The wait the server asked for (HTTP `Retry-After`).
    pub(crate) retry_after: Option<Duration>,
}

impl Outbox<'_> {
    /// One attempt to send `alert` on channel `name`, configured as `c`.
    pub(crate) async fn send(
        &self,
        alert: &Alert,
        name: &str,
        c: &ChannelConfig,
    ) -> Result<Sent, SendError> {
        match c {
            ChannelConfig::Webhook { url, headers } => {
                webhook::send(self, alert, url, headers).await
            }
            ChannelConfig::Slack { url } => slack::send(self, alert, url).await,
            ChannelConfig::Teams { url } => teams::send(self, alert, url).await,
            ChannelConfig::Email { smtp, to } => email::send(self, alert, smtp, to).await,
            ChannelConfig::Jira { .. } => jira::send(self, alert, name, c).await,
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
            .timeout(self.timeout)
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
