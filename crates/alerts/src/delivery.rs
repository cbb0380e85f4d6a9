//! Delivering one alert to one channel: attempts with a doubling delay on temporary failures,
//! every attempt recorded in the state store (`alert_deliveries`), a final failure logged at
//! ERROR.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use tracing::{error, info, warn};
use tributary_core::alerts::ChannelConfig;
use tributary_orchestrator::state::DeliveryRecord;

use crate::alert::Alert;
use crate::channels::{Outbox, Sent};

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

/// Deliver `alert` to channel `name` of `channels` with retries, recording every attempt. True
/// when it got through (or there was nothing to do on this channel).
pub(crate) async fn deliver(
    out: &Outbox<'_>,
    policy: &DeliveryPolicy,
    channels: &BTreeMap<String, ChannelConfig>,
    alert: &Alert,
    name: &str,
) -> bool {
    let Some(channel) = channels.get(name) else {
        error!(rule = %alert.rule, channel = %name, "Alert not sent: the channel is not configured.");
        return false;
    };
    let mut delay = policy.retry_delay;
    for attempt in 1..=policy.attempts {
        let result = out.send(alert, name, channel).await;
        let last = attempt == policy.attempts;
        let (status, http_status, err, retry_after) = match &result {
            Ok(Sent::Done(code)) => ("delivered", *code, None, None),
            Ok(Sent::Nothing) => return true,
            Err(e) if e.retryable && !last => (
                "retrying",
                e.status,
                Some(out.secrets.scrub(&e.message)),
                e.retry_after,
            ),
            Err(e) => (
                "failed",
                e.status,
                Some(out.secrets.scrub(&e.message)),
                None,
            ),
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
        if let Err(e) = out.store.record_delivery(&record).await {
            warn!(channel = %name, error = %out.secrets.scrub(&e.to_string()), "Cannot record an alert delivery attempt.");
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
