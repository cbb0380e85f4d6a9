//! A model's logic fingerprint: digests of its SQL template, the settings that decide which rows
//! it writes, and each macro it calls. An incremental or scd2 model keeps the rows earlier runs
//! made, so a change of logic would mix old and new rows silently; each commit records the
//! fingerprint (commit info `tributary.logic`) and the next run compares.
//!
//! The template is digested as written, not rendered: a rotated `env_var()` secret or a new
//! `var()` value is not a change of logic. Whitespace is collapsed first, so re-indenting is not
//! either.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::Model;
use crate::template::Macros;

/// The commit-info key the fingerprint is recorded under.
pub const LOGIC_KEY: &str = "tributary.logic";

/// Digests (hex, 16 characters) of what decides a model's rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// The SQL template (header settings blanked, whitespace collapsed).
    pub template: String,
    /// `materialized`, `unique_key`, `order_by`, `partition_by`, `check_columns`,
    /// `hard_deletes`.
    pub settings: String,
    /// Each macro the template calls, directly or through another macro.
    #[serde(default)]
    pub macros: BTreeMap<String, String>,
}

fn digest(text: &str) -> String {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let hash = Sha256::digest(collapsed.as_bytes());
    hash.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

impl Fingerprint {
    /// The fingerprint of `model` with the project's `macros`.
    pub fn of(model: &Model, macros: &Macros) -> Fingerprint {
        let c = &model.config;
        let settings = serde_json::json!({
            "materialized": c.materialized,
            "unique_key": c.unique_key,
            "order_by": c.order_by,
            "partition_by": c.partition_by,
            "check_columns": c.check_columns,
            "hard_deletes": c.hard_deletes,
        });
        let definitions = macros.definitions();
        let mut used: BTreeSet<&str> = BTreeSet::new();
        let mut frontier: Vec<&str> = vec![model.template.as_str()];
        while let Some(text) = frontier.pop() {
            for (name, body) in &definitions {
                if !used.contains(name.as_str()) && calls(text, name) {
                    used.insert(name);
                    frontier.push(body);
                }
            }
        }
        Fingerprint {
            template: digest(&model.template),
            settings: digest(&settings.to_string()),
            macros: used
                .into_iter()
                .map(|name| (name.to_string(), digest(&definitions[name])))
                .collect(),
        }
    }

    /// As recorded in a commit.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Read back from a commit; `None` when the value is not a fingerprint.
    pub fn from_json(value: &serde_json::Value) -> Option<Fingerprint> {
        serde_json::from_value(value.clone()).ok()
    }

    /// What differs from `before`, in words (empty when nothing does).
    pub fn changes_since(&self, before: &Fingerprint) -> Vec<String> {
        let mut out = Vec::new();
        if self.template != before.template {
            out.push("its SQL".to_string());
        }
        if self.settings != before.settings {
            out.push(
                "its settings (materialized, unique_key, order_by, partition_by, check_columns or hard_deletes)"
                    .to_string(),
            );
        }
        for (name, d) in &self.macros {
            match before.macros.get(name) {
                Some(b) if b == d => {}
                Some(_) => out.push(format!("macro `{name}`")),
                None => out.push(format!("it now calls macro `{name}`")),
            }
        }
        for name in before.macros.keys() {
            if !self.macros.contains_key(name) {
                out.push(format!("it no longer calls macro `{name}`"));
            }
        }
        out
    }
}

/// Whether `text` calls `name(` (as a whole word).
fn calls(text: &str, name: &str) -> bool {
    let mut from = 0;
    while let Some(i) = text[from..].find(name) {
        let start = from + i;
        let end = start + name.len();
        let before_ok = text[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '.'));
        let after_ok = text[end..].trim_start().starts_with('(');
        if before_ok && after_ok {
            return true;
        }
        from = end;
    }
    false
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_whole_words_followed_by_a_parenthesis() {
        assert!(calls("SELECT {{ cents(amount) }}", "cents"));
        assert!(calls("{{ cents (amount) }}", "cents"));
        assert!(!calls("SELECT cents_total(x)", "cents"));
        assert!(!calls("SELECT amount_in_cents FROM t", "cents"));
        assert!(!calls("SELECT x.cents(1)", "cents"));
    }

    #[test]
    fn whitespace_is_not_a_change() {
        assert_eq!(
            digest("SELECT a,\n   b FROM t"),
            digest("SELECT a, b  FROM t ")
        );
        assert_ne!(digest("SELECT a FROM t"), digest("SELECT b FROM t"));
    }
}
