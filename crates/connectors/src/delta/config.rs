//! A Delta table's own keys (`version`, `timestamp`: time travel): parsed from the table
//! entry's connector keys in step two of reading `ingest/*.yaml`, and checked there with the
//! shared keys that do not apply to Delta tables.

use serde::Deserialize;
use tributary_core::SourceError;
use tributary_core::config::{LoadMode, TableConfig};

/// The keys a Delta table takes besides the shared ones.
pub const KEYS: [&str; 2] = ["version", "timestamp"];

/// A Delta table's own configuration.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DeltaOptions {
    /// `mode: full`: read the table as of this version (time travel) instead of its latest.
    #[serde(default)]
    pub version: Option<u64>,
    /// `mode: full`: read the table as of this instant (RFC 3339, e.g.
    /// `2024-05-01T00:00:00Z`): the last version committed at or before it.
    #[serde(default)]
    pub timestamp: Option<String>,
}

impl DeltaOptions {
    /// The Delta keys of `table`.
    pub fn of(table: &TableConfig) -> Result<DeltaOptions, SourceError> {
        crate::registry::table_options(table)
    }

    /// Problems of a Delta table, as (key under the table entry, message): its own keys, and
    /// the shared keys that do not apply to Delta tables.
    pub fn problems(t: &TableConfig) -> Vec<(String, String)> {
        let o = match t.options_as::<DeltaOptions>() {
            Ok(o) => o,
            Err(problem) => return vec![problem],
        };
        let mut out: Vec<(String, String)> = Vec::new();
        let name = t.name.trim();
        if name.starts_with('/') || name.split('/').any(|part| part == "..") {
            out.push((
                "name".into(),
                "a Delta table's name is its path under the connection url (e.g. `sales/orders`), without a leading `/` or `..`".into(),
            ));
        }
        let incremental = t.mode == LoadMode::Incremental;
        for (field, set, why) in [
            (
                "query",
                t.query.is_some(),
                "a Delta table is read whole; its `name` is its path under the connection url",
            ),
            (
                "cursor",
                t.cursor.is_some() && incremental,
                "Delta tables are read incrementally by table version (the change data feed where the table has it); remove `cursor`",
            ),
            (
                "lookback",
                t.lookback.is_some() && incremental,
                "Delta tables are read incrementally by table version; nothing is re-read",
            ),
            (
                "cast",
                !t.cast.is_empty(),
                "Delta columns load with their own types",
            ),
            (
                "version",
                o.version.is_some() && incremental,
                "time travel (`version`) applies to `mode: full`",
            ),
            (
                "timestamp",
                o.timestamp.is_some() && incremental,
                "time travel (`timestamp`) applies to `mode: full`",
            ),
        ] {
            if set {
                out.push((field.into(), format!("`{field}` does not apply: {why}")));
            }
        }
        if o.version.is_some() && o.timestamp.is_some() {
            out.push((
                "timestamp".into(),
                "give `version` or `timestamp`, not both".into(),
            ));
        }
        if let Some(ts) = &o.timestamp
            && chrono::DateTime::parse_from_rfc3339(ts).is_err()
        {
            out.push((
                "timestamp".into(),
                format!("`{ts}` is not an RFC 3339 instant; write e.g. `2024-05-01T00:00:00Z`"),
            ));
        }
        out
    }
}
