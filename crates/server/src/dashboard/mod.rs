//! The dashboard: what it shows (run history, the DAG, the lake's tables, data quality, trends),
//! gathered once per request by [`data`] and shown twice, as JSON ([`json`]) and as HTML pages
//! ([`pages`], rendered through the auto-escaping [`templates`]) with inline SVG charts
//! ([`svg`]).
//!
//! Everything shown passes through [`Dashboard::scrub`] on the way out: errors, descriptions,
//! table values; secrets of the project (passwords in connection URLs, tokens, header values) are
//! never part of the data in the first place, and this removes any a driver echoed.

pub(crate) mod data;
pub(crate) mod format;
pub(crate) mod json;
pub(crate) mod pages;
pub(crate) mod svg;
pub(crate) mod templates;

use std::sync::Arc;

use tributary_lake::Lake;
use tributary_orchestrator::dag::Dag;
use tributary_orchestrator::state::StateStore;

/// Gives the dashboard the project's current DAG. Implemented by the CLI, which reloads the
/// project (models, ingest and pipeline files) on each call, so that the lineage follows edits.
pub trait DagSource: Send + Sync {
    /// The DAG as the project now defines it; an error is a message for the user (a broken
    /// model file, a cycle), shown on the lineage page.
    fn dag(&self) -> Result<Dag, String>;
}

/// A fixed DAG, for tests and embedders that build it once.
impl DagSource for Dag {
    fn dag(&self) -> Result<Dag, String> {
        Ok(self.clone())
    }
}

/// What the pages, the read API and `/metrics` read: the run history, the DAG and the lake.
pub struct Dashboard {
    project: String,
    state: StateStore,
    lake: Lake,
    dag: Arc<dyn DagSource>,
    secrets: Vec<String>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard")
            .field("project", &self.project)
            .field("state", &self.state)
            .field("lake", &self.lake.display_root())
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

impl Dashboard {
    /// The dashboard of project `project` (its name, shown in every page's header).
    pub fn new(
        project: impl Into<String>,
        state: StateStore,
        lake: Lake,
        dag: Arc<dyn DagSource>,
    ) -> Dashboard {
        Dashboard {
            project: project.into(),
            state,
            lake,
            dag,
            secrets: Vec::new(),
        }
    }

    /// Values that must never be shown (passwords, tokens, header values): removed from
    /// everything the dashboard sends (values shorter than 3 characters are ignored).
    pub fn with_secrets(mut self, secrets: impl IntoIterator<Item = String>) -> Dashboard {
        self.secrets.extend(
            secrets
                .into_iter()
                .filter(|s| s.trim().len() >= 3)
                .map(|s| s.to_string()),
        );
        // Longest first, so a secret containing another is removed whole.
        self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        self.secrets.dedup();
        self
    }

    /// The project's name.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// The run-history store.
    pub fn state(&self) -> &StateStore {
        &self.state
    }

    /// The lake.
    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// The project's DAG, read on a blocking thread (loading the project reads files).
    pub async fn dag(&self) -> Result<Dag, String> {
        let source = self.dag.clone();
        match tokio::task::spawn_blocking(move || source.dag()).await {
            Ok(r) => r.map_err(|e| self.scrub(&e)),
            Err(e) => Err(format!(
                "internal error: loading the DAG stopped ({e}); please report it"
            )),
        }
    }

    /// `text` without any of the secrets.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "***");
            }
        }
        out
    }

    /// Scrub every string (and key) inside a JSON value.
    pub(crate) fn scrub_json(&self, v: &mut serde_json::Value) {
        use serde_json::Value;
        match v {
            Value::String(s) => *s = self.scrub(s),
            Value::Array(items) => items.iter_mut().for_each(|i| self.scrub_json(i)),
            Value::Object(map) => {
                let entries = std::mem::take(map);
                for (k, mut v) in entries {
                    self.scrub_json(&mut v);
                    map.insert(self.scrub(&k), v);
                }
            }
            _ => {}
        }
    }

    fn scrub_opt(&self, text: &mut Option<String>) {
        if let Some(t) = text {
            *t = self.scrub(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn secrets_are_scrubbed_everywhere() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let state = StateStore::open("sqlite://state.db", dir.path())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let lake =
            Lake::new("lake", dir.path(), &Default::default()).unwrap_or_else(|e| panic!("{e}"));
        let d = Dashboard::new("p", state, lake, Arc::new(Dag::default())).with_secrets([
            "pw-1234".to_string(),
            "x".to_string(),
            "pw-1234-long".into(),
        ]);
        assert_eq!(d.scrub("a pw-1234-long b pw-1234 c x"), "a *** b *** c x");
        let mut v = serde_json::json!({"k pw-1234": ["pw-1234", {"e": "at pw-1234-long"}], "n": 1});
        d.scrub_json(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"k ***": ["***", {"e": "at ***"}], "n": 1})
        );
    }
}
