//! The connectors this build has, by connection `type`: step two of reading the configuration
//! (each connector's own keys) and opening sources.
//!
//! Adding a connector is one folder under `src/`, one line in [`connectors`] (behind a cargo
//! feature when it is optional), and the feature in `Cargo.toml`; the fixture connector
//! (`src/fixture/`, feature `fixture`) is the example the compliance suite runs.

use std::path::Path;

use tributary_core::config::{
    ConfigError, ConfigProblem, ConnectionConfig, ConnectorChecks, OnError, TableConfig,
};
use tributary_core::{Project, Source, SourceError};

/// What a connector registers: the connection `type` it reads, the keys its tables take
/// besides the shared ones, its checks, and how to open a source.
pub trait Connector: Send + Sync {
    /// The `type:` of its connections.
    fn kind(&self) -> &'static str;
    /// The keys its tables take besides [`TableConfig::SHARED_KEYS`].
    fn table_keys(&self) -> &'static [&'static str];
    /// Problems of a connection of this kind (its keys, parsed into the connector's own
    /// type, then their values), as (key under `connections.<name>`, message). Values still
    /// holding `${` belong to a target not selected and are not judged.
    fn connection_problems(&self, conn: &ConnectionConfig) -> Vec<(String, String)>;
    /// The secret values of a connection of this kind, which the dashboard and the API must
    /// never show. By default: text under secret-looking keys and passwords inside URLs and
    /// connection strings ([`tributary_core::redact::secrets_in_yaml`]); a connector whose
    /// secrets hide elsewhere adds them.
    fn secrets(&self, conn: &ConnectionConfig) -> Vec<String> {
        default_secrets(conn)
    }
    /// Problems of a table of this kind (its own keys, parsed, and the shared keys that do
    /// not apply), as (key under the table entry, message). Keys it does not take are
    /// reported before this is called.
    fn table_problems(&self, table: &TableConfig) -> Vec<(String, String)>;
    /// A source for connection `name`.
    fn open(
        &self,
        name: &str,
        conn: &ConnectionConfig,
        project_root: &Path,
    ) -> Result<Box<dyn Source>, SourceError>;
}

/// Every connector of this build, one line each.
pub fn connectors() -> Vec<&'static dyn Connector> {
    let mut all: Vec<&'static dyn Connector> = vec![
        &crate::sqlite::CONNECTOR,
        &crate::postgres::CONNECTOR,
        &crate::mysql::CONNECTOR,
        &crate::files::CONNECTOR,
        &crate::delta::CONNECTOR,
        &crate::rest::CONNECTOR,
    ];
    // Always registered: its connections are checked in every build; reading them needs the
    // `odbc` feature.
    all.push(&crate::odbc::CONNECTOR);
    #[cfg(feature = "fixture")]
    all.push(&crate::fixture::CONNECTOR);
    all
}

/// The connector of connections of `kind`.
pub fn connector(kind: &str) -> Option<&'static dyn Connector> {
    connectors().into_iter().find(|c| c.kind() == kind)
}

/// Open a source for connection `name`.
pub fn open(
    name: &str,
    config: &ConnectionConfig,
    project_root: &Path,
) -> Result<Box<dyn Source>, SourceError> {
    match connector(config.kind()) {
        Some(c) => c.open(name, config, project_root),
        None => Err(SourceError::Config {
            table: format!("(connection {name})"),
            reason: unknown_kind(config.kind()),
        }),
    }
}

/// What to say about a connection `type` no connector of this build reads.
fn unknown_kind(kind: &str) -> String {
    let known: Vec<&str> = connectors().iter().map(|c| c.kind()).collect();
    format!(
        "unknown connection type `{kind}`; this build reads {}",
        known.join(", ")
    )
}

/// The secret values of a connection (see [`Connector::secrets`]); a connection of a kind
/// this build does not read gets the default scan.
pub fn secrets(conn: &ConnectionConfig) -> Vec<String> {
    match connector(conn.kind()) {
        Some(c) => c.secrets(conn),
        None => default_secrets(conn),
    }
}

/// The default scan of a connection's secrets (see [`Connector::secrets`]).
pub fn default_secrets(conn: &ConnectionConfig) -> Vec<String> {
    let mut out = Vec::new();
    for (key, value) in conn.options() {
        tributary_core::redact::secrets_in_yaml(key, value, &mut out);
    }
    out
}

/// Step two of checking a project: every connection's and table's connector-owned keys, with
/// file, line and key.
pub fn check_project(project: &Project) -> Vec<ConfigProblem> {
    project.connector_problems(&Checks)
}

/// Load the project at `root` (with `target`) and check it whole: the shared fields, then each
/// connector's own keys. The problems of both steps come back together.
pub fn load_project(root: &Path, target: Option<&str>) -> Result<Project, ConfigError> {
    Project::load_with_connectors(root, target, &Checks)
}

struct Checks;

impl ConnectorChecks for Checks {
    fn connection(&self, conn: &ConnectionConfig) -> Vec<(String, String)> {
        match connector(conn.kind()) {
            Some(c) => c.connection_problems(conn),
            None => vec![("type".into(), unknown_kind(conn.kind()))],
        }
    }

    fn table(&self, conn: &ConnectionConfig, table: &TableConfig) -> Vec<(String, String)> {
        let Some(c) = connector(conn.kind()) else {
            return Vec::new(); // reported on the connection
        };
        let mut out = Vec::new();
        for key in table.options.keys() {
            if c.table_keys().contains(&key.as_str()) {
                continue;
            }
            let owners: Vec<&str> = connectors()
                .iter()
                .filter(|o| o.table_keys().contains(&key.as_str()))
                .map(|o| o.kind())
                .collect();
            let message = if owners.is_empty() {
                let mut keys: Vec<&str> = TableConfig::SHARED_KEYS.to_vec();
                keys.extend(c.table_keys());
                format!(
                    "unknown field `{key}`; remove it or check its spelling (a table of a {} connection takes {})",
                    c.kind(),
                    keys.join(", ")
                )
            } else {
                format!("`{key}` is for {} connections only", owners.join(" and "))
            };
            out.push((key.clone(), message));
        }
        if out.is_empty() {
            out = c.table_problems(table);
        }
        out
    }
}

/// A table's connector keys as the connector's type `T`, when a read starts (they were
/// checked when the project loaded; a problem here still names the key).
pub(crate) fn table_options<T: serde::de::DeserializeOwned>(
    table: &TableConfig,
) -> Result<T, SourceError> {
    table
        .options_as::<T>()
        .map_err(|(key, reason)| SourceError::Config {
            table: table.name.clone(),
            reason: format!("{key}: {reason}"),
        })
}

/// A connection's keys as the connector's type `T`, when a source opens (they were checked
/// when the project loaded; a problem here still names the connection and the key).
pub(crate) fn connection_options<T: serde::de::DeserializeOwned>(
    name: &str,
    conn: &ConnectionConfig,
) -> Result<T, SourceError> {
    conn.options_as::<T>()
        .map_err(|(key, reason)| SourceError::Config {
            table: format!("(connection {name})"),
            reason: if key.is_empty() {
                reason
            } else {
                format!("{key}: {reason}")
            },
        })
}

/// The problems of a connection's keys parsed as `T`: the parse problem, or what `check` finds
/// in the parsed value.
pub(crate) fn connection_problems_of<T: serde::de::DeserializeOwned>(
    conn: &ConnectionConfig,
    check: impl FnOnce(&T) -> Vec<(String, String)>,
) -> Vec<(String, String)> {
    match conn.options_as::<T>() {
        Ok(parsed) => check(&parsed),
        Err(problem) => vec![problem],
    }
}

/// Whether a configured value is known (not a `${…}` left for a target not selected).
pub(crate) fn known(value: &str) -> bool {
    !value.contains("${")
}

/// `on_error` other than `fail` on a table whose connector reads no malformed records (today
/// every kind but files): the shared check of those connectors.
pub(crate) fn on_error_problem(table: &TableConfig) -> Option<(String, String)> {
    (table.on_error != OnError::Fail).then(|| {
        (
            "on_error".into(),
            "`on_error` is for files connections only".into(),
        )
    })
}
