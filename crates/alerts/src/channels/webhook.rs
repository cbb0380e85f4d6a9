//! Any HTTP endpoint: the alert's fields as JSON, with the channel's extra headers.

use std::collections::BTreeMap;

use super::{Outbox, SendError, Sent};
use crate::alert::Alert;

/// POST the webhook body to `url`.
pub(super) async fn send(
    out: &Outbox<'_>,
    alert: &Alert,
    url: &str,
    headers: &BTreeMap<String, String>,
) -> Result<Sent, SendError> {
    let body = out.secrets.scrub_json(alert.webhook_body());
    out.post(url, headers, None, &body)
        .await
        .map(|(s, _)| Sent::Done(Some(s)))
}
