//! A Slack incoming webhook.

use std::collections::BTreeMap;

use super::{Outbox, SendError, Sent};
use crate::alert::Alert;

/// POST the Slack message to the webhook `url`.
pub(super) async fn send(out: &Outbox<'_>, alert: &Alert, url: &str) -> Result<Sent, SendError> {
    let body = out.secrets.scrub_json(alert.slack_body());
    out.post(url, &BTreeMap::new(), None, &body)
        .await
        .map(|(s, _)| Sent::Done(Some(s)))
}
