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
mod channels;
mod delivery;
mod engine;
mod rules;
mod secrets;
pub mod smtp;

pub use alert::{Alert, Event};
pub use delivery::DeliveryPolicy;
pub use engine::{AlertEngine, EngineSetup, Outcome};

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
