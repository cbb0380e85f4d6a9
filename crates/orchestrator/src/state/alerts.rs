//! What the alerts keep: whether each alert is firing (so a stale table is announced once,
//! and a recovery is noticed), every delivery attempt, and the open incidents (Jira requests).
//! Nothing here holds a secret: errors are scrubbed by the alerts crate before they are stored.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::backend::{Row, RowReader};
use super::{StateError, StateStore, limit_param};

/// The state of one alert, by its dedup key (`rule|subject|error class`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertStateRecord {
    /// `rule|subject|error class`.
    pub dedup_key: String,
    /// The rule's name.
    pub rule: String,
    /// What it is about: a task id, a table, a model, or `run <trigger>`.
    pub subject: String,
    /// The error class (`connection`, `data`, …) or the condition (`stale`, `duration`, …).
    pub error_class: String,
    /// `info`, `warning`, `error`, `critical`.
    pub severity: String,
    /// `firing` or `resolved`.
    pub status: String,
    /// The last alert's title.
    pub summary: String,
    /// When it first fired (in this episode).
    pub first_fired_at: DateTime<Utc>,
    /// When it last fired.
    pub last_fired_at: DateTime<Utc>,
    /// When it recovered, if it did.
    pub resolved_at: Option<DateTime<Utc>>,
    /// How many times it fired in this episode.
    pub occurrences: u32,
    /// The run it last fired for, if any.
    pub last_run_id: Option<String>,
}

/// One delivery attempt of an alert to a channel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryRecord {
    /// The alert's id (one per alert event).
    pub alert_id: String,
    /// The channel's name.
    pub channel: String,
    /// Which attempt, from 1.
    pub attempt: u32,
    /// The rule's name (`test` for `tributary alerts test`).
    pub rule: String,
    /// The alert's dedup key.
    pub dedup_key: String,
    /// `firing`, `repeat`, `resolved` or `test`.
    pub event: String,
    /// The run it is about, if any.
    pub run_id: Option<String>,
    /// `delivered`, `retrying` (another attempt follows) or `failed` (the last one).
    pub status: String,
    /// The HTTP status (or SMTP reply code) of the attempt, when one came back.
    pub http_status: Option<u32>,
    /// What went wrong, without secrets.
    pub error: Option<String>,
    /// When the attempt ended.
    pub attempted_at: DateTime<Utc>,
}

/// An incident opened in an external system (a Jira Service Management request).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentRecord {
    /// Our id for it.
    pub incident_id: String,
    /// The channel that opened it.
    pub channel: String,
    /// The alert it tracks: at most one open incident per (channel, dedup key).
    pub dedup_key: String,
    /// The rule's name.
    pub rule: String,
    /// The external system's key (`SD-42`).
    pub external_key: String,
    /// `open` or `resolved`.
    pub status: String,
    /// When it was opened.
    pub opened_at: DateTime<Utc>,
    /// When it was last commented on or changed.
    pub updated_at: DateTime<Utc>,
    /// When it was resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Failures it covers (1 when opened, +1 per comment for a repeat).
    pub occurrences: u32,
    /// The run of the last failure.
    pub last_run_id: Option<String>,
}

const STATE_COLUMNS: &str = "dedup_key, rule, subject, error_class, severity, status, summary, \
    first_fired_at, last_fired_at, resolved_at, occurrences, last_run_id";
const DELIVERY_COLUMNS: &str = "alert_id, channel, attempt, rule, dedup_key, event, run_id, \
    status, http_status, error, attempted_at";
const INCIDENT_COLUMNS: &str = "incident_id, channel, dedup_key, rule, external_key, status, \
    opened_at, updated_at, resolved_at, occurrences, last_run_id";

impl StateStore {
    fn read_alert_state(&self, row: &Row) -> Result<AlertStateRecord, StateError> {
        let r = RowReader::new(row, "alert_states", &["dedup_key"], &self.location);
        Ok(AlertStateRecord {
            dedup_key: r.text("dedup_key")?,
            rule: r.text("rule")?,
            subject: r.text("subject")?,
            error_class: r.text("error_class")?,
            severity: r.text("severity")?,
            status: r.text("status")?,
            summary: r.text("summary")?,
            first_fired_at: r.time("first_fired_at")?,
            last_fired_at: r.time("last_fired_at")?,
            resolved_at: r.opt_time("resolved_at")?,
            occurrences: r.u32("occurrences")?,
            last_run_id: r.opt_text("last_run_id")?,
        })
    }

    /// The state of the alert with `dedup_key`, if it ever fired.
    pub async fn alert_state(
        &self,
        dedup_key: &str,
    ) -> Result<Option<AlertStateRecord>, StateError> {
        let rows = self
            .query(
                &format!("alert_state {dedup_key}"),
                &format!("SELECT {STATE_COLUMNS} FROM alert_states WHERE dedup_key = $1"),
                vec![dedup_key.into()],
            )
            .await?;
        rows.first().map(|r| self.read_alert_state(r)).transpose()
    }

    /// Alerts currently firing, of one rule or of all, by dedup key.
    pub async fn firing_alerts(
        &self,
        rule: Option<&str>,
    ) -> Result<Vec<AlertStateRecord>, StateError> {
        let (sql, params) = match rule {
            Some(r) => (
                format!(
                    "SELECT {STATE_COLUMNS} FROM alert_states WHERE status = 'firing' AND rule = $1
                     ORDER BY dedup_key"
                ),
                vec![r.into()],
            ),
            None => (
                format!(
                    "SELECT {STATE_COLUMNS} FROM alert_states WHERE status = 'firing'
                     ORDER BY dedup_key"
                ),
                vec![],
            ),
        };
        self.query("firing_alerts", &sql, params)
            .await?
            .iter()
            .map(|r| self.read_alert_state(r))
            .collect()
    }

    /// Insert or replace an alert's state, by dedup key.
    pub async fn put_alert_state(&self, s: &AlertStateRecord) -> Result<(), StateError> {
        let op = format!("put_alert_state {}", s.dedup_key);
        self.execute(
            &op,
            "INSERT INTO alert_states (dedup_key, rule, subject, error_class, severity, status,
                summary, first_fired_at, last_fired_at, resolved_at, occurrences, last_run_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT (dedup_key) DO UPDATE SET
                rule = EXCLUDED.rule, subject = EXCLUDED.subject,
                error_class = EXCLUDED.error_class, severity = EXCLUDED.severity,
                status = EXCLUDED.status, summary = EXCLUDED.summary,
                first_fired_at = EXCLUDED.first_fired_at, last_fired_at = EXCLUDED.last_fired_at,
                resolved_at = EXCLUDED.resolved_at, occurrences = EXCLUDED.occurrences,
                last_run_id = EXCLUDED.last_run_id",
            vec![
                s.dedup_key.as_str().into(),
                s.rule.as_str().into(),
                s.subject.as_str().into(),
                s.error_class.as_str().into(),
                s.severity.as_str().into(),
                s.status.as_str().into(),
                s.summary.as_str().into(),
                s.first_fired_at.into(),
                s.last_fired_at.into(),
                s.resolved_at.into(),
                i64::from(s.occurrences).into(),
                s.last_run_id.as_deref().into(),
            ],
        )
        .await?;
        Ok(())
    }

    /// Record one delivery attempt (replacing one with the same alert, channel and attempt).
    pub async fn record_delivery(&self, d: &DeliveryRecord) -> Result<(), StateError> {
        let op = format!(
            "record_delivery {} to {} attempt {}",
            d.alert_id, d.channel, d.attempt
        );
        self.execute(
            &op,
            "INSERT INTO alert_deliveries (alert_id, channel, attempt, rule, dedup_key, event,
                run_id, status, http_status, error, attempted_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (alert_id, channel, attempt) DO UPDATE SET
                status = EXCLUDED.status, http_status = EXCLUDED.http_status,
                error = EXCLUDED.error, attempted_at = EXCLUDED.attempted_at",
            vec![
                d.alert_id.as_str().into(),
                d.channel.as_str().into(),
                i64::from(d.attempt).into(),
                d.rule.as_str().into(),
                d.dedup_key.as_str().into(),
                d.event.as_str().into(),
                d.run_id.as_deref().into(),
                d.status.as_str().into(),
                d.http_status.map(i64::from).into(),
                d.error.as_deref().into(),
                d.attempted_at.into(),
            ],
        )
        .await?;
        Ok(())
    }

    /// Delivery attempts, newest first (then by alert, channel and attempt). `limit` 0 means all.
    pub async fn deliveries(&self, limit: usize) -> Result<Vec<DeliveryRecord>, StateError> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM alert_deliveries
             ORDER BY attempted_at DESC, alert_id, channel, attempt DESC LIMIT $1"
        );
        self.query("deliveries", &sql, vec![limit_param(limit)])
            .await?
            .iter()
            .map(|row| {
                let r = RowReader::new(
                    row,
                    "alert_deliveries",
                    &["alert_id", "channel", "attempt"],
                    &self.location,
                );
                Ok(DeliveryRecord {
                    alert_id: r.text("alert_id")?,
                    channel: r.text("channel")?,
                    attempt: r.u32("attempt")?,
                    rule: r.text("rule")?,
                    dedup_key: r.text("dedup_key")?,
                    event: r.text("event")?,
                    run_id: r.opt_text("run_id")?,
                    status: r.text("status")?,
                    http_status: r.opt_u64("http_status")?.map(|v| v as u32),
                    error: r.opt_text("error")?,
                    attempted_at: r.time("attempted_at")?,
                })
            })
            .collect()
    }

    fn read_incident(&self, row: &Row) -> Result<IncidentRecord, StateError> {
        let r = RowReader::new(row, "incidents", &["incident_id"], &self.location);
        Ok(IncidentRecord {
            incident_id: r.text("incident_id")?,
            channel: r.text("channel")?,
            dedup_key: r.text("dedup_key")?,
            rule: r.text("rule")?,
            external_key: r.text("external_key")?,
            status: r.text("status")?,
            opened_at: r.time("opened_at")?,
            updated_at: r.time("updated_at")?,
            resolved_at: r.opt_time("resolved_at")?,
            occurrences: r.u32("occurrences")?,
            last_run_id: r.opt_text("last_run_id")?,
        })
    }

    /// The open incident of `channel` for `dedup_key`, if any.
    pub async fn open_incident(
        &self,
        channel: &str,
        dedup_key: &str,
    ) -> Result<Option<IncidentRecord>, StateError> {
        let rows = self
            .query(
                &format!("open_incident {channel} {dedup_key}"),
                &format!(
                    "SELECT {INCIDENT_COLUMNS} FROM incidents
                     WHERE channel = $1 AND dedup_key = $2 AND status = 'open'"
                ),
                vec![channel.into(), dedup_key.into()],
            )
            .await?;
        rows.first().map(|r| self.read_incident(r)).transpose()
    }

    /// Insert or replace an incident, by id. At most one incident per (channel, dedup key) may
    /// be open: opening a second one fails.
    pub async fn put_incident(&self, i: &IncidentRecord) -> Result<(), StateError> {
        self.execute(
            &format!("put_incident {} ({})", i.incident_id, i.external_key),
            "INSERT INTO incidents (incident_id, channel, dedup_key, rule, external_key, status,
                opened_at, updated_at, resolved_at, occurrences, last_run_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (incident_id) DO UPDATE SET
                external_key = EXCLUDED.external_key, status = EXCLUDED.status,
                updated_at = EXCLUDED.updated_at, resolved_at = EXCLUDED.resolved_at,
                occurrences = EXCLUDED.occurrences, last_run_id = EXCLUDED.last_run_id",
            vec![
                i.incident_id.as_str().into(),
                i.channel.as_str().into(),
                i.dedup_key.as_str().into(),
                i.rule.as_str().into(),
                i.external_key.as_str().into(),
                i.status.as_str().into(),
                i.opened_at.into(),
                i.updated_at.into(),
                i.resolved_at.into(),
                i64::from(i.occurrences).into(),
                i.last_run_id.as_deref().into(),
            ],
        )
        .await?;
        Ok(())
    }

    /// Incidents, newest first. `limit` 0 means all.
    pub async fn incidents(&self, limit: usize) -> Result<Vec<IncidentRecord>, StateError> {
        let sql = format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents
             ORDER BY opened_at DESC, incident_id LIMIT $1"
        );
        self.query("incidents", &sql, vec![limit_param(limit)])
            .await?
            .iter()
            .map(|r| self.read_incident(r))
            .collect()
    }
}
