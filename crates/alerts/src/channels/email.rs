//! E-mail, through the SMTP client of [`crate::smtp`].

use tributary_core::alerts::SmtpConfig;

use super::{Outbox, SendError, Sent};
use crate::alert::Alert;
use crate::smtp;

/// Send the alert as a plain-text mail to `to` through the server of `config`.
pub(super) async fn send(
    out: &Outbox<'_>,
    alert: &Alert,
    config: &SmtpConfig,
    to: &[String],
) -> Result<Sent, SendError> {
    let subject = out.secrets.scrub(&alert.headline());
    let body = out.secrets.scrub(&alert.text());
    smtp::send(
        config,
        &smtp::Mail {
            from: &config.from,
            to,
            subject: &subject,
            body: &body,
        },
        out.timeout,
    )
    .await
    .map(|code| Sent::Done(Some(code)))
    .map_err(|e| SendError {
        message: format!("e-mail via {}: {}", config.host, e.message),
        retryable: e.retryable,
        status: e.code,
        retry_after: None,
    })
}
