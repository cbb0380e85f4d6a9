//! Jira Service Management: one customer request per open incident (per channel and dedup key);
//! a repeat comments on it, a recovery comments on it or transitions it.

use std::collections::BTreeMap;

use chrono::Utc;
use serde_json::json;
use tracing::info;
use tributary_core::alerts::{ChannelConfig, redact_endpoint};
use tributary_orchestrator::state::IncidentRecord;

use super::{Outbox, SendError, Sent};
use crate::alert::{self, Alert, Event};

/// Create a request, comment on the open one, or resolve it, on channel `name` configured as `c`.
pub(super) async fn send(
    out: &Outbox<'_>,
    alert: &Alert,
    name: &str,
    c: &ChannelConfig,
) -> Result<Sent, SendError> {
    let ChannelConfig::Jira {
        base_url,
        email,
        api_token,
        service_desk_id,
        request_type_id,
        resolve,
    } = c
    else {
        return Ok(Sent::Nothing);
    };
    let base = base_url.trim_end_matches('/');
    let auth = Some((email.as_str(), api_token.expose()));
    let none = BTreeMap::new();
    let store_err = |e: tributary_orchestrator::state::StateError| SendError {
        message: format!("the incident record: {e}"),
        retryable: true,
        status: None,
        retry_after: None,
    };
    let open = if alert.event == Event::Test {
        None
    } else {
        out.store
            .open_incident(name, &alert.dedup_key)
            .await
            .map_err(store_err)?
    };
    let now = Utc::now();
    let text = out.secrets.scrub(&alert.text());
    match (alert.event, open) {
        (Event::Resolved, None) => Ok(Sent::Nothing),
        (Event::Resolved, Some(inc)) => {
            let key = &inc.external_key;
            let (status, _) = match &resolve.transition_id {
                Some(id) => {
                    let mut body = json!({ "id": id });
                    if resolve.comment {
                        body["additionalComment"] = json!({ "body": text });
                    }
                    out.post(
                        &format!("{base}/rest/servicedeskapi/request/{key}/transition"),
                        &none,
                        auth,
                        &body,
                    )
                    .await?
                }
                None => {
                    out.post(
                        &format!("{base}/rest/servicedeskapi/request/{key}/comment"),
                        &none,
                        auth,
                        &json!({ "body": text, "public": true }),
                    )
                    .await?
                }
            };
            out.store
                .put_incident(&IncidentRecord {
                    status: "resolved".into(),
                    updated_at: now,
                    resolved_at: Some(now),
                    ..inc
                })
                .await
                .map_err(store_err)?;
            Ok(Sent::Done(Some(status)))
        }
        (_, Some(inc)) => {
            let (status, _) = out
                .post(
                    &format!(
                        "{base}/rest/servicedeskapi/request/{}/comment",
                        inc.external_key
                    ),
                    &none,
                    auth,
                    &json!({ "body": text, "public": true }),
                )
                .await?;
            out.store
                .put_incident(&IncidentRecord {
                    updated_at: now,
                    occurrences: inc.occurrences + 1,
                    last_run_id: alert.run_id.clone().or(inc.last_run_id.clone()),
                    ..inc
                })
                .await
                .map_err(store_err)?;
            Ok(Sent::Done(Some(status)))
        }
        (event, None) => {
            let body = json!({
                "serviceDeskId": service_desk_id,
                "requestTypeId": request_type_id,
                "requestFieldValues": {
                    "summary": alert::truncate(&out.secrets.scrub(&alert.headline()), 250),
                    "description": text,
                },
            });
            let (status, reply) = out
                .post(
                    &format!("{base}/rest/servicedeskapi/request"),
                    &none,
                    auth,
                    &body,
                )
                .await?;
            if event == Event::Test {
                return Ok(Sent::Done(Some(status)));
            }
            let key = serde_json::from_str::<serde_json::Value>(&reply)
                .ok()
                .and_then(|v| {
                    v.get("issueKey")
                        .or_else(|| v.get("key"))
                        .and_then(|k| k.as_str())
                        .map(str::to_string)
                })
                .ok_or_else(|| SendError {
                    message: format!(
                        "POST {}: the answer names no issueKey: {}",
                        redact_endpoint(base),
                        alert::truncate(reply.trim(), 200)
                    ),
                    retryable: false,
                    status: Some(status),
                    retry_after: None,
                })?;
            info!(channel = %name, issue = %key, dedup_key = %alert.dedup_key, "Jira request created.");
            out.store
                .put_incident(&IncidentRecord {
                    incident_id: uuid::Uuid::new_v4().simple().to_string(),
                    channel: name.to_string(),
                    dedup_key: alert.dedup_key.clone(),
                    rule: alert.rule.clone(),
                    external_key: key,
                    status: "open".into(),
                    opened_at: now,
                    updated_at: now,
                    resolved_at: None,
                    occurrences: 1,
                    last_run_id: alert.run_id.clone(),
                })
                .await
                .map_err(|e| SendError {
                    // The request exists: trying again would open a second one.
                    retryable: false,
                    ..store_err(e)
                })?;
            Ok(Sent::Done(Some(status)))
        }
    }
}
