//! One alert and how each channel shows it.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use tributary_core::alerts::Severity;

/// Why an alert is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The condition started.
    Firing,
    /// It happened again while still firing (another failed run of the same task and class).
    Repeat,
    /// It ended: the task succeeded, the table was loaded, …
    Resolved,
    /// `tributary alerts test`.
    Test,
}

impl Event {
    /// `firing`, `repeat`, `resolved`, `test`.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Firing => "firing",
            Event::Repeat => "repeat",
            Event::Resolved => "resolved",
            Event::Test => "test",
        }
    }
}

/// An alert event, ready to be sent. Holds no secret: task errors are stored without secrets,
/// and every text is scrubbed of the channels' secrets again before it leaves.
#[derive(Debug, Clone)]
pub struct Alert {
    /// Unique id of this event (deliveries are recorded under it).
    pub id: String,
    /// Why it is sent.
    pub event: Event,
    /// The rule's name.
    pub rule: String,
    /// The rule's kind (`task_failed`, …, or `test`).
    pub kind: &'static str,
    /// How bad.
    pub severity: Severity,
    /// `rule|subject|class`: stable across runs, one incident per key.
    pub dedup_key: String,
    /// What it is about: a task id, a table, a model, or `run <trigger>`.
    pub subject: String,
    /// The task, when it is about one.
    pub task: Option<String>,
    /// The run, when it is about one.
    pub run_id: Option<String>,
    /// The error or the condition, in words.
    pub error: Option<String>,
    /// The error class (`connection`, `data`, …) or condition (`stale`, `duration`, …).
    pub error_class: String,
    /// One line.
    pub title: String,
    /// Further facts, in order.
    pub facts: Vec<(String, String)>,
    /// The run page, when about a run.
    pub link: Option<String>,
    /// The project's name.
    pub project: String,
    /// How many times it fired in this episode.
    pub occurrences: u32,
    /// When it was raised.
    pub at: DateTime<Utc>,
}

impl Alert {
    /// `[ERROR] …`, `[RESOLVED] …`, `[TEST] …`.
    pub fn headline(&self) -> String {
        let tag = match self.event {
            Event::Resolved => "RESOLVED".to_string(),
            Event::Test => "TEST".to_string(),
            _ => self.severity.as_str().to_ascii_uppercase(),
        };
        let again = match self.event {
            Event::Repeat => format!(" (again, {} times)", self.occurrences),
            _ => String::new(),
        };
        format!("[{tag}] {}: {}{again}", self.project, self.title)
    }

    /// Every fact, labelled, in the order the messages show them.
    pub fn all_facts(&self) -> Vec<(String, String)> {
        let mut out = vec![
            (
                "Rule".to_string(),
                format!("{} ({}, {})", self.rule, self.kind, self.severity.as_str()),
            ),
            ("Event".to_string(), self.event.as_str().to_string()),
        ];
        if let Some(r) = &self.run_id {
            out.push(("Run".into(), r.clone()));
        }
        if let Some(t) = &self.task {
            out.push(("Task".into(), t.clone()));
        } else {
            out.push(("Subject".into(), self.subject.clone()));
        }
        out.push(("Error class".into(), self.error_class.clone()));
        out.extend(self.facts.iter().cloned());
        out.push((
            "Time".into(),
            self.at.to_rfc3339_opts(SecondsFormat::Secs, true),
        ));
        out
    }

    /// Plain text: e-mail bodies, Jira descriptions and comments.
    pub fn text(&self) -> String {
        let mut s = format!("{}\n\n", self.headline());
        for (k, v) in self.all_facts() {
            s.push_str(&format!("{k}: {v}\n"));
        }
        if let Some(e) = &self.error {
            s.push_str(&format!("\nError:\n{e}\n"));
        }
        if let Some(l) = &self.link {
            s.push_str(&format!("\nRun page: {l}\n"));
        }
        s
    }

    /// The generic webhook's JSON body.
    pub fn webhook_body(&self) -> Value {
        let facts: serde_json::Map<String, Value> = self
            .facts
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        json!({
            "id": self.id,
            "event": self.event.as_str(),
            "status": if self.event == Event::Resolved { "resolved" } else { "firing" },
            "project": self.project,
            "rule": self.rule,
            "kind": self.kind,
            "severity": self.severity.as_str(),
            "dedup_key": self.dedup_key,
            "subject": self.subject,
            "run_id": self.run_id,
            "task": self.task,
            "error": self.error,
            "error_class": self.error_class,
            "title": self.headline(),
            "link": self.link,
            "occurrences": self.occurrences,
            "details": facts,
            "at": self.at.to_rfc3339_opts(SecondsFormat::Secs, true),
        })
    }

    /// A Slack incoming-webhook message: `text` (notifications) and Block Kit blocks.
    pub fn slack_body(&self) -> Value {
        let fields: Vec<Value> = self
            .all_facts()
            .into_iter()
            .take(10) // Slack allows 10 fields per section.
            .map(|(k, v)| json!({ "type": "mrkdwn", "text": format!("*{k}*\n{}", slack_escape(&v)) }))
            .collect();
        let mut blocks = vec![
            json!({ "type": "header", "text": { "type": "plain_text", "text": truncate(&self.headline(), 150) } }),
            json!({ "type": "section", "fields": fields }),
        ];
        if let Some(e) = &self.error {
            blocks.push(json!({ "type": "section", "text": { "type": "mrkdwn", "text": format!("```{}```", truncate(&slack_escape(e), 2900)) } }));
        }
        if let Some(l) = &self.link {
            blocks.push(json!({ "type": "section", "text": { "type": "mrkdwn", "text": format!("<{l}|Open the run page>") } }));
        }
        json!({ "text": self.headline(), "blocks": blocks })
    }

    /// A Microsoft Teams incoming-webhook message (legacy MessageCard, accepted by Teams
    /// incoming webhooks and workflows).
    pub fn teams_body(&self) -> Value {
        let colour = match (self.event, self.severity) {
            (Event::Resolved, _) => "2EB886",
            (Event::Test, _) => "439FE0",
            (_, Severity::Critical | Severity::Error) => "D7000F",
            (_, Severity::Warning) => "FFA500",
            (_, Severity::Info) => "439FE0",
        };
        let facts: Vec<Value> = self
            .all_facts()
            .into_iter()
            .map(|(k, v)| json!({ "name": k, "value": v }))
            .collect();
        let mut card = json!({
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "summary": self.headline(),
            "themeColor": colour,
            "title": self.headline(),
            "sections": [{ "facts": facts, "text": self.error.clone().unwrap_or_default() }],
        });
        if let Some(l) = &self.link {
            card["potentialAction"] = json!([{
                "@type": "OpenUri",
                "name": "Open the run page",
                "targets": [{ "os": "default", "uri": l }],
            }]);
        }
        card
    }
}

fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// At most `max` characters, with `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}
