//! Project configuration: `tributary.yaml` and `ingest/*.yaml`.
//!
//! Loading collects every problem it can find (syntax, unknown keys, wrong types, missing
//! environment variables, undefined connections, duplicate targets, options that do not fit the
//! connection) and reports them all at once, each with file, line and key.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::cursor::Lookback;
use crate::values::{ByteSize, Duration};
use crate::yamlpos::Positions;

/// The name of the project file.
pub const PROJECT_FILE: &str = "tributary.yaml";

/// `tributary.yaml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectConfig {
    /// Project name, shown in the UI and logs.
    pub name: String,
    /// Where the lake lives: a local folder (relative to the project) or an object-store URL
    /// (`abfss://container@account.dfs.core.windows.net/path`, `az://container/path`,
    /// `s3://bucket/path`, `gs://bucket/path`).
    pub lake: String,
    /// Options for the lake's object store (e.g. `azure_storage_account_name`,
    /// `aws_region`, `azure_storage_use_emulator`). Credentials usually come from the standard
    /// environment variables of each cloud instead.
    #[serde(default)]
    pub lake_options: BTreeMap<String, String>,
    /// Where run history is kept: `sqlite://PATH` (relative to the project) or
    /// `postgres://…?schema=NAME`. Default `sqlite://.tributary/state.db`.
    #[serde(default = "default_state")]
    pub state: String,
    /// Named source connections.
    #[serde(default)]
    pub connections: BTreeMap<String, ConnectionConfig>,
    /// Project-wide template variables, read by SQL models through `var('name')`. After loading,
    /// the selected target's `vars` are merged in (a target's value wins).
    #[serde(default)]
    pub vars: BTreeMap<String, serde_json::Value>,
    /// Named environments (`dev`, `prod`, `ci`, …), each overriding `lake`, `lake_options`,
    /// `state`, connections and vars. Selected by `--target NAME`, else the environment variable
    /// `TRIBUTARY_TARGET`, else `default_target`; with none, the fields above apply as written.
    ///
    /// After loading, every target is kept here as written, except that only the selected one
    /// has its `${env:…}` substituted; the selected one is already applied to the fields above.
    #[serde(default)]
    pub targets: BTreeMap<String, TargetConfig>,
    /// The target used when neither `--target` nor `TRIBUTARY_TARGET` names one.
    #[serde(default)]
    pub default_target: Option<String>,
    /// How the DAG runs: parallelism, per-connection limits, retries, timeouts, leases.
    #[serde(default)]
    pub orchestration: crate::pipeline::OrchestrationConfig,
    /// Named schedules that `tributary serve` runs: cron expression, time zone, selection.
    #[serde(default)]
    pub schedules: BTreeMap<String, crate::pipeline::ScheduleConfig>,
    /// The HTTP server of `tributary serve`: address and API token.
    #[serde(default)]
    pub serve: crate::pipeline::ServeConfig,
    /// Alert channels and rules: what is sent where when a task fails, a table goes stale, …
    #[serde(default)]
    pub alerts: crate::alerts::AlertsConfig,
    /// How Parquet files are written: compression, target file size, row group size.
    #[serde(default)]
    pub writer: WriterSettings,
    /// The memory budget of one `tributary` process (`512MiB`, `4GiB`). It is the query
    /// engine's memory pool (models spill to disk beyond it), and an eighth of its share per
    /// task (`memory_limit / orchestration.max_parallel / 8`) bounds the row group a load
    /// buffers before writing it. Default `4GiB` (`TRIBUTARY_MEMORY_LIMIT_MB` overrides the
    /// engine's pool).
    #[serde(default)]
    pub memory_limit: Option<ByteSize>,
}

/// The default of `memory_limit`.
pub const DEFAULT_MEMORY_LIMIT: u64 = 4 * 1024 * 1024 * 1024;

impl ProjectConfig {
    /// `memory_limit` in bytes, or the default when unset.
    pub fn memory_limit_bytes(&self) -> u64 {
        self.memory_limit
            .map(ByteSize::bytes)
            .unwrap_or(DEFAULT_MEMORY_LIMIT)
    }
}

/// `writer:` in `tributary.yaml`: how the Parquet files of every load are written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WriterSettings {
    /// `snappy` (default), `zstd` (level 1), `zstd(N)` (N 1 to 22), `lz4`, `gzip` or `none`.
    /// In the throughput benchmark (BENCHMARKS.md) level-1 zstd wrote files half the size of
    /// snappy's for up to 7 % more load time.
    #[serde(default = "default_parquet_compression")]
    pub compression: String,
    /// Files are rolled over at about this size (`128MiB` default, at least `1MiB`).
    #[serde(default = "default_target_file_size")]
    pub target_file_size: ByteSize,
    /// Rows per Parquet row group, at most (default 131072). The memory budget may lower it
    /// for wide rows; see `memory_limit`.
    #[serde(default = "default_row_group_rows")]
    pub row_group_rows: usize,
}

impl Default for WriterSettings {
    fn default() -> Self {
        WriterSettings {
            compression: default_parquet_compression(),
            target_file_size: default_target_file_size(),
            row_group_rows: default_row_group_rows(),
        }
    }
}

fn default_parquet_compression() -> String {
    "snappy".into()
}

fn default_target_file_size() -> ByteSize {
    ByteSize::mib(128)
}

fn default_row_group_rows() -> usize {
    128 * 1024
}

/// A Parquet compression codec, as `writer.compression` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParquetCodec {
    /// Snappy.
    Snappy,
    /// Zstandard at this level (1 to 22).
    Zstd(i32),
    /// LZ4 (the raw codec Parquet calls `LZ4_RAW`).
    Lz4,
    /// Gzip at the default level.
    Gzip,
    /// No compression.
    None,
}

impl WriterSettings {
    /// The codec `compression` names.
    pub fn codec(&self) -> Result<ParquetCodec, String> {
        let c = self.compression.trim().to_ascii_lowercase();
        Ok(match c.as_str() {
            "snappy" => ParquetCodec::Snappy,
            "zstd" => ParquetCodec::Zstd(1),
            "lz4" | "lz4_raw" => ParquetCodec::Lz4,
            "gzip" => ParquetCodec::Gzip,
            "none" | "uncompressed" => ParquetCodec::None,
            _ => match c
                .strip_prefix("zstd(")
                .and_then(|r| r.strip_suffix(')'))
                .and_then(|n| n.trim().parse::<i32>().ok())
            {
                Some(level) if (1..=22).contains(&level) => ParquetCodec::Zstd(level),
                _ => {
                    return Err(format!(
                        "unknown compression `{}`; use snappy, zstd, zstd(N) with N from 1 to 22, \
                         lz4, gzip or none",
                        self.compression
                    ));
                }
            },
        })
    }

    /// `target_file_size` in bytes.
    pub fn target_file_bytes(&self) -> Result<u64, String> {
        let n = self.target_file_size.bytes();
        if n < 1024 * 1024 {
            return Err(format!(
                "target_file_size `{}` is below the minimum of 1MiB",
                self.target_file_size
            ));
        }
        Ok(n)
    }
}

/// One named environment in `targets:`: what it changes in the base configuration.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// Replaces `lake`. The lake's options go with it: a target that sets `lake` uses only its
    /// own `lake_options` (none when omitted), never the base ones.
    #[serde(default)]
    pub lake: Option<String>,
    /// Replaces `lake_options` as a whole.
    #[serde(default)]
    pub lake_options: Option<BTreeMap<String, String>>,
    /// Replaces `state`.
    #[serde(default)]
    pub state: Option<String>,
    /// Whole connection entries: each replaces the base connection of the same name, or adds a
    /// new one.
    #[serde(default)]
    pub connections: BTreeMap<String, ConnectionConfig>,
    /// Template variables; each replaces the project's variable of the same name, or adds one.
    #[serde(default)]
    pub vars: BTreeMap<String, serde_json::Value>,
}

/// The environment variable that selects a target when `--target` is not given.
pub const TARGET_ENV: &str = "TRIBUTARY_TARGET";

impl ProjectConfig {
    /// Apply target `t` over this (base) configuration.
    fn apply_target(&mut self, t: &TargetConfig) {
        if let Some(lake) = &t.lake {
            self.lake = lake.clone();
            self.lake_options = t.lake_options.clone().unwrap_or_default();
        } else if let Some(options) = &t.lake_options {
            self.lake_options = options.clone();
        }
        if let Some(state) = &t.state {
            self.state = state.clone();
        }
        for (name, conn) in &t.connections {
            self.connections.insert(name.clone(), conn.clone());
        }
        for (name, value) in &t.vars {
            self.vars.insert(name.clone(), value.clone());
        }
    }
}

/// The key paths of `tributary.yaml` whose values are not used when target `selected` is
/// applied: the other targets, and the base values the selected one replaces. Their
/// `${env:…}` are not substituted, so a variable only another environment needs may be unset.
fn unused_paths(raw: &ProjectConfig, selected: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = raw
        .targets
        .keys()
        .filter(|name| Some(name.as_str()) != selected)
        .map(|name| format!("targets.{name}"))
        .collect();
    let Some(t) = selected.and_then(|name| raw.targets.get(name)) else {
        return out;
    };
    if t.lake.is_some() {
        out.push("lake".into());
    }
    if t.lake.is_some() || t.lake_options.is_some() {
        out.push("lake_options".into());
    }
    if t.state.is_some() {
        out.push("state".into());
    }
    out.extend(t.connections.keys().map(|c| format!("connections.{c}")));
    out.extend(t.vars.keys().map(|v| format!("vars.{v}")));
    out
}

/// Whether `path` is one of `prefixes` or inside one.
fn under_any(path: &str, prefixes: &[String]) -> bool {
    prefixes.iter().any(|p| {
        path.strip_prefix(p.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
    })
}

fn default_state() -> String {
    "sqlite://.tributary/state.db".to_string()
}

/// One source connection: its `type`, and its other keys as written. The connector that
/// registers that `type` (the connectors crate) parses the keys into its own configuration
/// and checks them; core knows no connection kind's keys.
///
/// `Debug` shows the kind and the key names only: the values may hold resolved passwords.
#[derive(Clone, PartialEq)]
pub struct ConnectionConfig {
    kind: String,
    options: BTreeMap<String, serde_yaml_ng::Value>,
}

impl fmt::Debug for ConnectionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionConfig")
            .field("kind", &self.kind)
            .field("keys", &self.options.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl<'de> Deserialize<'de> for ConnectionConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ConnectionConfig, D::Error> {
        use serde::de::Error as _;
        let value = serde_yaml_ng::Value::deserialize(d)?;
        let serde_yaml_ng::Value::Mapping(map) = value else {
            return Err(D::Error::custom("a connection is a mapping of keys"));
        };
        let mut kind = None;
        let mut options = BTreeMap::new();
        for (k, v) in map {
            let serde_yaml_ng::Value::String(k) = k else {
                return Err(D::Error::custom("connection keys must be text"));
            };
            if k == "type" {
                match v {
                    serde_yaml_ng::Value::String(t) => kind = Some(t),
                    _ => return Err(D::Error::custom("`type` must be text (e.g. `postgres`)")),
                }
            } else {
                options.insert(k, v);
            }
        }
        let kind = kind.ok_or_else(|| D::Error::missing_field("type"))?;
        Ok(ConnectionConfig { kind, options })
    }
}

impl Serialize for ConnectionConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.options.len() + 1))?;
        m.serialize_entry("type", &self.kind)?;
        for (k, v) in &self.options {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl ConnectionConfig {
    /// A connection of `kind` with `options` (its keys other than `type`).
    pub fn new(kind: impl Into<String>, options: BTreeMap<String, serde_yaml_ng::Value>) -> Self {
        ConnectionConfig {
            kind: kind.into(),
            options,
        }
    }

    /// The connection type, as written in the configuration.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The connection's keys other than `type`, as written.
    pub fn options(&self) -> &BTreeMap<String, serde_yaml_ng::Value> {
        &self.options
    }

    /// Step two of reading the connection: its keys as the connector's type `T` (which should
    /// deny unknown fields). A problem is (the key under `connections.<name>`, and what is
    /// wrong).
    pub fn options_as<T: DeserializeOwned>(&self) -> Result<T, (String, String)> {
        parse_options(&self.options)
    }

    /// Whether this is a Delta connection (tables are Delta table paths, read incrementally by
    /// table version rather than by a cursor column).
    pub fn is_delta(&self) -> bool {
        self.kind == "delta"
    }

    /// Whether this is a REST API (tables are resources).
    pub fn is_rest(&self) -> bool {
        self.kind == "rest"
    }

    /// Whether this is a file connection (tables are globs) rather than a database.
    pub fn is_files(&self) -> bool {
        self.kind == "files"
    }
}

/// One `ingest/*.yaml` file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Connection name from `tributary.yaml`.
    pub connection: String,
    /// Tables (or file sets) to load.
    pub tables: Vec<TableConfig>,
}

/// Load mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LoadMode {
    /// Replace the table's contents with everything the source has, in one new version.
    #[default]
    Full,
    /// Append rows whose cursor is at or past the last committed watermark (minus `lookback`),
    /// skipping rows already loaded.
    Incremental,
    /// Files connections only: append the rows of the files not loaded before. A file is known
    /// by its path, size and modification time, recorded in the table's own rows
    /// (`_tributary_source`, `_tributary_file_size`, `_tributary_file_modified`), so the record
    /// and the rows are committed together.
    NewFiles,
}

/// How to cast a column whose type or values cannot be loaded losslessly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnCast {
    /// Load the column as text, rendered by the source database.
    Text,
}

/// What to do when a table's schema differs from the incoming one (`on_schema_change`): for
/// bronze loads, the source's columns compared with the table's before anything is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemaChangePolicy {
    /// Default: new columns are added (nullable); widening type changes (int8 < int16 < int32 <
    /// int64, float32 < float64, small ints -> float64, decimal(p,s) -> decimal(p2,s2) holding
    /// every old value, utf8 -> large utf8, ...) pass; removed columns, narrowing or incompatible
    /// type changes fail.
    #[default]
    Evolve,
    /// Anything passes: removed columns stay in the table (NULL in new rows) or disappear on a
    /// full rebuild; type changes are applied by a full rebuild (appends cast, failing per value
    /// if it does not fit).
    Allow,
    /// Any difference fails.
    Fail,
}

impl SchemaChangePolicy {
    /// The name as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaChangePolicy::Evolve => "evolve",
            SchemaChangePolicy::Allow => "allow",
            SchemaChangePolicy::Fail => "fail",
        }
    }
}

impl fmt::Display for SchemaChangePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to do with a malformed record in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Stop the table with an error naming the file and line; nothing is committed.
    #[default]
    Fail,
    /// Skip the record, count it, and log the first few with file and line.
    Skip,
    /// Skip the record and keep it in the quarantine table `<layer>._quarantine_<name>` with
    /// its file, line number, raw text and reason.
    Quarantine,
}

/// One table (database) or file set (files) to load into bronze: the fields every kind of
/// connection shares, and the connector's own keys in [`TableConfig::options`].
///
/// Reading a table entry takes two steps: this type (the YAML value's shared fields, with
/// file, line and key for every problem), then the connector of the table's connection parses
/// `options` into its own type ([`TableConfig::options_as`]), again naming file, line and key.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct TableConfig {
    /// Database: the table, optionally schema-qualified (`public.orders`). Files: a name for
    /// the file set (`orders`). The default target is `bronze.<connection>_<last part of name>`.
    pub name: String,
    /// Database only: a custom `SELECT` to read instead of the whole table.
    #[serde(default)]
    pub query: Option<String>,
    /// `full` (default), `incremental`, or (files connections) `new_files`.
    #[serde(default)]
    pub mode: LoadMode,
    /// Incremental only: the column whose value grows with every insert and update.
    #[serde(default)]
    pub cursor: Option<String>,
    /// The columns that identify a row. Incremental loads use them (with the cursor) to skip
    /// rows already loaded when re-reading the lookback window.
    #[serde(default)]
    pub primary_key: Vec<String>,
    /// Accept a `primary_key` that leaves out columns of the key the source declares for the
    /// table. Off by default: such a key treats distinct source rows that share it (and the
    /// cursor) in the lookback window as one, and drops all but the first.
    #[serde(default)]
    pub allow_narrower_key: bool,
    /// Incremental only: how far before the last watermark to re-read, to catch rows committed
    /// late by long transactions: a duration (`30s`, `15m`, `1h`, `2d`) for timestamp and date
    /// cursors, a number for numeric cursors. Default `1h` for timestamp/date cursors, `0` for
    /// numeric ones.
    #[serde(default)]
    pub lookback: Option<LookbackSpec>,
    /// Target table `<layer>.<name>`; default `bronze.<connection>_<name>`.
    #[serde(default)]
    pub target: Option<String>,
    /// Per-column casts for values that cannot be loaded losslessly: `{ column: text }`.
    #[serde(default)]
    pub cast: BTreeMap<String, ColumnCast>,
    /// Rows per batch (default 10000 for databases, 8192 for files).
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// A malformed record (files): `fail` (default), `skip` it, or `quarantine` it.
    #[serde(default)]
    pub on_error: OnError,
    /// What to do when the source's schema differs from the table's: `evolve` (default: add
    /// new columns, accept widening type changes, refuse removed columns and narrowing or
    /// incompatible type changes), `allow` (accept everything) or `fail` (refuse any change).
    /// `--full-refresh` bypasses it and rebuilds the table with the source's schema.
    #[serde(default)]
    pub on_schema_change: SchemaChangePolicy,
    /// Tasks that must succeed before this load starts (e.g. a `command` that exports the
    /// source, or another table).
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Retries after the first attempt, for retryable errors (connection refused or reset,
    /// timeouts, serialization failures). Default `orchestration.retries`.
    #[serde(default)]
    pub retries: Option<u32>,
    /// Stop the load after this long (e.g. `30m`); nothing is committed. Default
    /// `orchestration.timeout`.
    #[serde(default)]
    pub timeout: Option<Duration>,
    /// The keys of the connection's connector, as written: `glob`, `format`, `csv`, `excel`,
    /// `compression` (files); `parallel` (PostgreSQL, MySQL/MariaDB); `version`, `timestamp`
    /// (Delta); `path`, `params`, `records`, `pagination`, `cursor_param`, `nested` (REST); and
    /// those of connectors that register themselves. The connector parses them into its own
    /// type and reports keys it does not take.
    #[serde(flatten)]
    pub options: BTreeMap<String, serde_yaml_ng::Value>,
}

impl TableConfig {
    /// The keys every table takes, whatever its connection.
    pub const SHARED_KEYS: [&str; 15] = [
        "name",
        "query",
        "mode",
        "cursor",
        "primary_key",
        "allow_narrower_key",
        "lookback",
        "target",
        "cast",
        "batch_size",
        "on_error",
        "on_schema_change",
        "depends_on",
        "retries",
        "timeout",
    ];

    /// Step two of reading the entry: the connector's own keys as its type `T` (which should
    /// deny unknown fields). A problem is (the key under the table entry, e.g.
    /// `csv.delimiter`, and what is wrong).
    pub fn options_as<T: DeserializeOwned>(&self) -> Result<T, (String, String)> {
        parse_options(&self.options)
    }

    /// The last dot-separated part of `name`, for the default target name.
    pub fn short_name(&self) -> &str {
        self.name.rsplit('.').next().unwrap_or(&self.name)
    }

    /// Delta connections: the last `/`-separated part of `name` (`sales/orders` -> `orders`),
    /// for the default target name.
    pub fn last_path_part(&self) -> &str {
        let trimmed = self.name.trim_end_matches('/');
        trimmed.rsplit('/').next().unwrap_or(trimmed)
    }

    /// The part of `name` the default target `bronze.<connection>_<part>` uses: the last path
    /// part for Delta connections, else the last dot-separated part.
    fn default_target_part(&self, delta: bool) -> &str {
        if delta {
            self.last_path_part()
        } else {
            self.short_name()
        }
    }
}

/// `lookback` as written: a number (for numeric cursors) or a duration (for time cursors),
/// read when the project loads.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum LookbackSpec {
    /// A number, for numeric cursors.
    Units(i64),
    /// A duration like `90s`, `15m`, `1h`, `2d`.
    Duration(Duration),
}

impl<'de> Deserialize<'de> for LookbackSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<LookbackSpec, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = LookbackSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number (numeric cursors) or a duration such as `1h` (time cursors)")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<LookbackSpec, E> {
                Ok(LookbackSpec::Units(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<LookbackSpec, E> {
                i64::try_from(v)
                    .map(LookbackSpec::Units)
                    .map_err(|_| E::custom(format!("lookback {v} is too large")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<LookbackSpec, E> {
                Duration::parse(v)
                    .map(LookbackSpec::Duration)
                    .map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl LookbackSpec {
    /// Parse into a [`Lookback`]. Errors explain the accepted forms.
    pub fn parse(&self) -> Result<Lookback, String> {
        match self {
            LookbackSpec::Units(n) if *n >= 0 => Ok(Lookback::Units(*n)),
            LookbackSpec::Units(n) => Err(format!("lookback must not be negative, got {n}")),
            LookbackSpec::Duration(d) => Ok(Lookback::Micros(d.micros())),
        }
    }
}

/// A YAML value as written in a configuration file (connector-owned keys are kept as these
/// until their connector parses them).
pub use serde_yaml_ng::Value as YamlValue;

/// Parse connector-owned keys (a table's [`TableConfig::options`], a connection's
/// [`ConnectionConfig::options`]) into the connector's type `T`. A problem is (the key,
/// e.g. `csv.delimiter`, and what is wrong).
pub fn parse_options<T: DeserializeOwned>(
    options: &BTreeMap<String, serde_yaml_ng::Value>,
) -> Result<T, (String, String)> {
    let map: serde_yaml_ng::Mapping = options
        .iter()
        .map(|(k, v)| (serde_yaml_ng::Value::String(k.clone()), v.clone()))
        .collect();
    serde_path_to_error::deserialize(serde_yaml_ng::Value::Mapping(map)).map_err(|e| {
        let path = e.path().to_string();
        let message = explain_serde(&e.inner().to_string());
        // An unknown key is reported at the key itself, not at the mapping.
        let key = match (path.as_str(), message.strip_prefix("unknown field `")) {
            (".", Some(rest)) => rest.split('`').next().unwrap_or_default().to_string(),
            (".", None) => String::new(),
            _ => path,
        };
        (key, message)
    })
}

/// The connectors' part of checking a project: step two of reading `tributary.yaml`'s
/// connections and `ingest/*.yaml`'s tables, for the keys each connector owns. Core checks the
/// shared fields; the connectors crate implements this and [`Project::connector_problems`]
/// places what it reports at its file, line and key.
pub trait ConnectorChecks {
    /// Problems of a connection, as (key under `connections.<name>`, message).
    fn connection(&self, conn: &ConnectionConfig) -> Vec<(String, String)>;
    /// Problems of a table of a connection, as (key under the table entry, message).
    fn table(&self, conn: &ConnectionConfig, table: &TableConfig) -> Vec<(String, String)>;
}

impl Project {
    /// What `checks` (the connectors) find in the project's connections and tables, each
    /// with its file, line and key.
    pub fn connector_problems(&self, checks: &dyn ConnectorChecks) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        let project_text =
            std::fs::read_to_string(self.root.join(PROJECT_FILE)).unwrap_or_default();
        let project_pos = Positions::of(&project_text);
        let mut report = |prefix: &str, conn: &ConnectionConfig| {
            for (key, message) in checks.connection(conn) {
                let full = if key.is_empty() {
                    prefix.to_string()
                } else {
                    format!("{prefix}.{key}")
                };
                out.push(ConfigProblem {
                    file: PathBuf::from(PROJECT_FILE),
                    line: project_pos.line(&full),
                    key: full,
                    message,
                });
            }
        };
        // The effective connections (a target's replace the base one of the same name), then
        // those of the targets not selected, which the connectors check too (their values may
        // still hold `${env:…}`, left for the environment that uses them).
        for (name, conn) in &self.config.connections {
            let prefix = match &self.target {
                Some(t)
                    if self
                        .config
                        .targets
                        .get(t)
                        .is_some_and(|t| t.connections.contains_key(name)) =>
                {
                    format!("targets.{t}.connections.{name}")
                }
                _ => format!("connections.{name}"),
            };
            report(&prefix, conn);
        }
        for (t, target) in &self.config.targets {
            if self.target.as_deref() == Some(t.as_str()) {
                continue;
            }
            for (name, conn) in &target.connections {
                report(&format!("targets.{t}.connections.{name}"), conn);
            }
        }
        for file in &self.ingest {
            let Some(conn) = self.config.connections.get(&file.config.connection) else {
                continue; // reported by the project's own checks
            };
            let text = std::fs::read_to_string(self.root.join(&file.path)).unwrap_or_default();
            let pos = Positions::of(&text);
            for (i, t) in file.config.tables.iter().enumerate() {
                for (key, message) in checks.table(conn, t) {
                    let key = if key.is_empty() {
                        format!("tables[{i}]")
                    } else {
                        format!("tables[{i}].{key}")
                    };
                    out.push(ConfigProblem {
                        file: file.path.clone(),
                        line: pos.line(&key),
                        key,
                        message,
                    });
                }
            }
        }
        out
    }
}

/// One problem found in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The file, relative to the project when possible.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// Dotted key path (`tables[1].cursor`), empty for whole-file problems.
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": key `{}`", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The project folder has no `tributary.yaml`.
    #[error(
        "no {PROJECT_FILE} in {0}; run `tributary init DIR` to create a project, or pass --project DIR"
    )]
    NotAProject(PathBuf),
    /// One or more problems, each with file, line and key.
    #[error("{}", render_problems(.0))]
    Problems(Vec<ConfigProblem>),
}

fn render_problems(p: &[ConfigProblem]) -> String {
    let mut s = format!(
        "invalid configuration ({} problem{}):",
        p.len(),
        if p.len() == 1 { "" } else { "s" }
    );
    for problem in p {
        s.push_str("\n  ");
        s.push_str(&problem.to_string());
    }
    s
}

/// One loaded `ingest/*.yaml` file.
#[derive(Debug, Clone)]
pub struct IngestFile {
    /// Path relative to the project.
    pub path: PathBuf,
    /// Its contents, with environment variables substituted.
    pub config: IngestConfig,
}

/// A table to load, resolved: its connection and target.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Connection name.
    pub connection: String,
    /// The table's configuration.
    pub table: TableConfig,
    /// Target layer (`bronze` unless `target` says otherwise).
    pub layer: String,
    /// Target table name within the layer.
    pub name: String,
    /// Where it was configured (`ingest/erp.yaml`).
    pub file: PathBuf,
}

impl LoadSpec {
    /// `layer.name`.
    pub fn target(&self) -> String {
        format!("{}.{}", self.layer, self.name)
    }
    /// `connection:name`, the `_tributary_source` of database tables.
    pub fn source_label(&self) -> String {
        format!("{}:{}", self.connection, self.table.name)
    }
}

/// A loaded, validated project.
#[derive(Debug, Clone)]
pub struct Project {
    /// The project folder.
    pub root: PathBuf,
    /// `tributary.yaml`, environment substituted, with the selected target applied: `lake`,
    /// `lake_options`, `state`, `connections` and `vars` are the effective ones.
    pub config: ProjectConfig,
    /// `ingest/*.yaml`, sorted by file name, environment substituted.
    pub ingest: Vec<IngestFile>,
    /// `pipelines/*.yaml`: extra `command` and `http` tasks, in file-name order.
    pub pipelines: Vec<crate::pipeline::PipelineFile>,
    /// The selected target, if any (`--target`, `TRIBUTARY_TARGET` or `default_target`).
    pub target: Option<String>,
    /// The effective template variables: the project's `vars` with the target's over them.
    pub vars: BTreeMap<String, serde_json::Value>,
}

impl Project {
    /// Load and validate the project in `root`, with the target named by `TRIBUTARY_TARGET` or
    /// `default_target` (or none). Every problem found is returned together.
    pub fn load(root: &Path) -> Result<Project, ConfigError> {
        Project::load_with_target(root, None)
    }

    /// Load and validate the project in `root` with target `target` applied; `None` falls back
    /// to `TRIBUTARY_TARGET`, then `default_target`, then the base configuration. An unknown
    /// target is a problem naming the defined ones.
    pub fn load_with_target(root: &Path, target: Option<&str>) -> Result<Project, ConfigError> {
        Project::load_with_env(root, target, &|name| std::env::var(name).ok())
    }

    /// As [`Project::load_with_target`], with environment variables (`TRIBUTARY_TARGET` and every
    /// `${env:…}`) read through `env` instead of the process environment.
    pub fn load_with_env(
        root: &Path,
        target: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Project, ConfigError> {
        Project::load_checked(root, target, env, None)
    }

    /// As [`Project::load_with_target`], then step two: `connectors` check the keys they own,
    /// and their problems come back with those of the first step, all at once.
    pub fn load_with_connectors(
        root: &Path,
        target: Option<&str>,
        connectors: &dyn ConnectorChecks,
    ) -> Result<Project, ConfigError> {
        Project::load_checked(
            root,
            target,
            &|name| std::env::var(name).ok(),
            Some(connectors),
        )
    }

    fn load_checked(
        root: &Path,
        target: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
        connectors: Option<&dyn ConnectorChecks>,
    ) -> Result<Project, ConfigError> {
        let project_path = root.join(PROJECT_FILE);
        if !project_path.is_file() {
            return Err(ConfigError::NotAProject(root.to_path_buf()));
        }
        let mut problems = Vec::new();
        let loaded = load_project_file(&project_path, target, env, &mut problems);

        let mut ingest = Vec::new();
        for (path, rel) in yaml_files(root, "ingest", &mut problems) {
            if let Some(cfg) = load_file::<IngestConfig>(&path, &rel, env, &mut problems) {
                ingest.push(IngestFile {
                    path: rel,
                    config: cfg,
                });
            }
        }
        let mut pipelines = Vec::new();
        for (path, rel) in yaml_files(root, "pipelines", &mut problems) {
            if let Some(cfg) =
                load_file::<crate::pipeline::PipelineConfig>(&path, &rel, env, &mut problems)
            {
                pipelines.push(crate::pipeline::PipelineFile {
                    path: rel,
                    config: cfg,
                });
            }
        }

        let Some((config, target)) = loaded else {
            return Err(ConfigError::Problems(problems));
        };
        let project = Project {
            root: root.to_path_buf(),
            vars: config.vars.clone(),
            config,
            ingest,
            pipelines,
            target,
        };
        project.check(root, &mut problems);
        if let Some(c) = connectors {
            problems.extend(project.connector_problems(c));
        }
        if problems.is_empty() {
            Ok(project)
        } else {
            Err(ConfigError::Problems(problems))
        }
    }

    /// Every table to load, with its resolved target, in configuration order.
    pub fn load_specs(&self) -> Vec<LoadSpec> {
        let mut out = Vec::new();
        for file in &self.ingest {
            let delta = self
                .config
                .connections
                .get(&file.config.connection)
                .is_some_and(ConnectionConfig::is_delta);
            for t in &file.config.tables {
                let (layer, name) = match &t.target {
                    Some(target) => match target.split_once('.') {
                        Some((l, n)) => (l.to_string(), n.to_string()),
                        None => ("bronze".to_string(), target.clone()),
                    },
                    None => (
                        "bronze".to_string(),
                        sanitize(&format!(
                            "{}_{}",
                            file.config.connection,
                            t.default_target_part(delta)
                        )),
                    ),
                };
                out.push(LoadSpec {
                    connection: file.config.connection.clone(),
                    table: t.clone(),
                    layer,
                    name,
                    file: file.path.clone(),
                });
            }
        }
        out
    }

    /// Resolve a path from the configuration relative to the project folder.
    pub fn resolve_path(&self, p: &str) -> PathBuf {
        let path = Path::new(p);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.root.join(path)
        }
    }

    /// Semantic checks of the ingest files against the (effective) project configuration.
    fn check(&self, root: &Path, problems: &mut Vec<ConfigProblem>) {
        let mut targets: HashMap<String, (PathBuf, String)> = HashMap::new();
        for file in &self.ingest {
            let text = std::fs::read_to_string(root.join(&file.path)).unwrap_or_default();
            let pos = Positions::of(&text);
            let mut problem = |key: String, message: String| {
                problems.push(ConfigProblem {
                    file: file.path.clone(),
                    line: pos.line(&key),
                    key,
                    message,
                })
            };
            let conn = self.config.connections.get(&file.config.connection);
            if conn.is_none() {
                let known: Vec<&str> = self.config.connections.keys().map(|s| s.as_str()).collect();
                let elsewhere: Vec<&str> = self
                    .config
                    .targets
                    .iter()
                    .filter(|(_, t)| t.connections.contains_key(&file.config.connection))
                    .map(|(name, _)| name.as_str())
                    .collect();
                let hint = if elsewhere.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; it is defined only in target{} {}: select one with --target",
                        if elsewhere.len() == 1 { "" } else { "s" },
                        elsewhere.join(", ")
                    )
                };
                problem(
                    "connection".into(),
                    format!(
                        "connection `{}` is not defined in {PROJECT_FILE}{}; defined: {}{hint}",
                        file.config.connection,
                        match &self.target {
                            Some(t) => format!(" (target {t})"),
                            None => String::new(),
                        },
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
            }
            let is_files = conn.map(|c| c.is_files()).unwrap_or(false);
            let is_delta = conn.is_some_and(ConnectionConfig::is_delta);
            for (i, t) in file.config.tables.iter().enumerate() {
                let k = |field: &str| format!("tables[{i}].{field}");
                if t.name.trim().is_empty() {
                    problem(k("name"), "a table needs a name".into());
                }
                match t.mode {
                    LoadMode::Incremental => {
                        if t.cursor.is_none() && !is_delta {
                            problem(
                                k("mode"),
                                "mode `incremental` needs `cursor`: the column that grows with every insert and update (e.g. updated_at)".into(),
                            );
                        }
                    }
                    LoadMode::Full | LoadMode::NewFiles => {
                        if t.mode == LoadMode::NewFiles && conn.is_some() && !is_files {
                            problem(
                                k("mode"),
                                "mode `new_files` is for files connections (landing folders); database tables use `incremental` with a `cursor`".into(),
                            );
                        }
                        if t.cursor.is_some() {
                            problem(
                                k("cursor"),
                                "`cursor` only applies to `mode: incremental`".into(),
                            );
                        }
                        if t.lookback.is_some() {
                            problem(
                                k("lookback"),
                                "`lookback` only applies to `mode: incremental`".into(),
                            );
                        }
                    }
                }
                if let Some(lb) = &t.lookback
                    && let Err(e) = lb.parse()
                {
                    problem(k("lookback"), e);
                }
                if t.batch_size == Some(0) {
                    problem(k("batch_size"), "batch_size must be at least 1".into());
                }
                let target = match &t.target {
                    Some(target) => {
                        let ok = target
                            .split_once('.')
                            .map(|(l, n)| is_identifier(l) && is_identifier(n))
                            .unwrap_or(false);
                        if !ok {
                            problem(
                                k("target"),
                                format!(
                                    "target `{target}` must be `<layer>.<name>` of lowercase letters, digits and `_` (e.g. bronze.erp_orders)"
                                ),
                            );
                        }
                        target.clone()
                    }
                    None => format!(
                        "bronze.{}",
                        sanitize(&format!(
                            "{}_{}",
                            file.config.connection,
                            t.default_target_part(is_delta)
                        ))
                    ),
                };
                match targets.get(&target) {
                    Some((other_file, other_key)) => problem(
                        k("name"),
                        format!(
                            "two tables load into `{target}`: this one and {}: {other_key}; give one of them a different `target`",
                            other_file.display()
                        ),
                    ),
                    None => {
                        targets.insert(target, (file.path.clone(), format!("tables[{i}]")));
                    }
                }
            }
        }
        self.check_orchestration(root, problems);
        self.check_schedules(root, problems);
    }

    /// The `schedules:`, `serve:` and `alerts:` blocks.
    fn check_schedules(&self, root: &Path, problems: &mut Vec<ConfigProblem>) {
        let text = std::fs::read_to_string(root.join(PROJECT_FILE)).unwrap_or_default();
        let pos = Positions::of(&text);
        let mut found = Vec::new();
        for (name, schedule) in &self.config.schedules {
            for (key, message) in crate::pipeline::check_schedule(name, schedule) {
                let key = match key.as_str() {
                    "" => format!("schedules.{name}"),
                    k => format!("schedules.{name}.{k}"),
                };
                found.push((key, message));
            }
        }
        for (key, message) in crate::pipeline::check_serve(&self.config.serve) {
            found.push((format!("serve.{key}"), message));
        }
        for (key, message) in crate::alerts::check_alerts(&self.config.alerts) {
            found.push((format!("alerts.{key}"), message));
        }
        for (key, message) in found {
            problems.push(ConfigProblem {
                file: PathBuf::from(PROJECT_FILE),
                line: pos.line(&key),
                key,
                message,
            });
        }
    }

    /// The `orchestration:` block and the tasks of `pipelines/*.yaml`.
    fn check_orchestration(&self, root: &Path, problems: &mut Vec<ConfigProblem>) {
        let text = std::fs::read_to_string(root.join(PROJECT_FILE)).unwrap_or_default();
        let pos = Positions::of(&text);
        for (key, message) in crate::pipeline::check_orchestration(&self.config.orchestration) {
            let key = format!("orchestration.{key}");
            problems.push(ConfigProblem {
                file: PathBuf::from(PROJECT_FILE),
                line: pos.line(&key),
                key,
                message,
            });
        }
        let mut names: HashMap<String, (PathBuf, String)> = HashMap::new();
        for file in &self.pipelines {
            let text = std::fs::read_to_string(root.join(&file.path)).unwrap_or_default();
            let pos = Positions::of(&text);
            for (i, task) in file.config.tasks.iter().enumerate() {
                let mut problem = |key: String, message: String| {
                    problems.push(ConfigProblem {
                        file: file.path.clone(),
                        line: pos.line(&key),
                        key,
                        message,
                    })
                };
                for (key, message) in crate::pipeline::check_task(task) {
                    problem(format!("tasks[{i}].{key}"), message);
                }
                match names.get(&task.name) {
                    Some((other_file, other_key)) => problem(
                        format!("tasks[{i}].name"),
                        format!(
                            "two tasks are named `{}`: this one and {}: {other_key}",
                            task.name,
                            other_file.display()
                        ),
                    ),
                    None => {
                        names.insert(
                            task.name.clone(),
                            (file.path.clone(), format!("tasks[{i}]")),
                        );
                    }
                }
            }
        }
    }
}

/// The `*.yaml` / `*.yml` files of a project folder (`ingest`, `pipelines`), sorted, as
/// (full path, path relative to the project). A missing folder has none.
fn yaml_files(
    root: &Path,
    folder: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Vec<(PathBuf, PathBuf)> {
    let dir = root.join(folder);
    if !dir.is_dir() {
        return Vec::new();
    }
    let mut paths: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
            .collect(),
        Err(e) => {
            problems.push(ConfigProblem {
                file: PathBuf::from(folder),
                line: None,
                key: String::new(),
                message: format!("cannot list the {folder} folder: {e}"),
            });
            Vec::new()
        }
    };
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(root).unwrap_or(&p).to_path_buf();
            (p, rel)
        })
        .collect()
}

/// Lowercase letters, digits and `_`, starting with a letter or `_`.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Turn any name into an identifier: lowercase, other characters become `_`.
pub fn sanitize(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if out
        .chars()
        .next()
        .map(|c| c.is_ascii_digit())
        .unwrap_or(true)
    {
        out.insert(0, '_');
    }
    out
}

/// Lowercase letters, digits, `_` and `-`, starting with a letter: `dev`, `prod-eu`.
fn is_target_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// The target to apply: `requested` (from `--target`), else `TRIBUTARY_TARGET`, else
/// `default_target`, else none. An empty name counts as none. An unknown name is an error
/// `(key, message)` naming the defined targets.
fn select_target(
    raw: &ProjectConfig,
    requested: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, (String, String)> {
    let explicit = requested
        .map(str::to_string)
        .or_else(|| env(TARGET_ENV))
        .filter(|t| !t.is_empty());
    let (name, key, source) = match (explicit, &raw.default_target) {
        (Some(name), _) => (name, "targets", format!("--target or {TARGET_ENV}")),
        (None, Some(name)) if !name.is_empty() => {
            (name.clone(), "default_target", "default_target".to_string())
        }
        (None, _) => return Ok(None),
    };
    if raw.targets.contains_key(&name) {
        return Ok(Some(name));
    }
    let known = if raw.targets.is_empty() {
        format!("none; add a `targets:` section to {PROJECT_FILE} (see the README, Environments)")
    } else {
        raw.targets
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err((
        key.to_string(),
        format!("target `{name}` (from {source}) is not defined; defined targets: {known}"),
    ))
}

/// Checks of `tributary.yaml`'s own values: lake locations, state and connection names, in
/// the base configuration and in every target. Values still holding `${` (left unsubstituted
/// because the selected target does not use them) are skipped.
fn check_project_values(config: &ProjectConfig, report: &mut dyn FnMut(&str, String)) {
    if let Err(e) = config.writer.codec() {
        report("writer.compression", e);
    }
    if let Err(e) = config.writer.target_file_bytes() {
        report("writer.target_file_size", e);
    }
    if config.writer.row_group_rows < 1024 {
        report(
            "writer.row_group_rows",
            format!(
                "row_group_rows must be at least 1024, not {}",
                config.writer.row_group_rows
            ),
        );
    }
    if let Some(m) = &config.memory_limit
        && m.bytes() < 64 * 1024 * 1024
    {
        report(
            "memory_limit",
            format!("`{m}` is below the minimum of 64MiB"),
        );
    }
    check_values(
        "",
        Some(&config.lake),
        Some(&config.state),
        &config.connections,
        report,
    );
    for (name, t) in &config.targets {
        let prefix = format!("targets.{name}");
        if !is_target_name(name) {
            report(
                &prefix,
                "target names may hold only lowercase letters, digits, `_` and `-`, and start with a letter".into(),
            );
        }
        check_values(
            &prefix,
            t.lake.as_deref(),
            t.state.as_deref(),
            &t.connections,
            report,
        );
    }
}

fn check_values(
    prefix: &str,
    lake: Option<&str>,
    state: Option<&str>,
    connections: &BTreeMap<String, ConnectionConfig>,
    report: &mut dyn FnMut(&str, String),
) {
    let key = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    let known = |v: &&str| !v.contains("${");
    if let Some(lake) = lake.filter(known)
        && let Err(e) = check_location(lake)
    {
        report(&key("lake"), e);
    }
    if let Some(state) = state.filter(known)
        && !["sqlite://", "postgres://", "postgresql://"]
            .iter()
            .any(|scheme| state.trim().starts_with(scheme))
    {
        report(
            &key("state"),
            format!(
                "`{}` is not supported; use `sqlite://PATH` or `postgres://USER@HOST:PORT/DB?schema=NAME`",
                crate::redact::redact_url(state)
            ),
        );
    }
    for name in connections.keys() {
        let conn_key = key(&format!("connections.{name}"));
        if !is_identifier(name) {
            report(
                &conn_key,
                "connection names may hold only lowercase letters, digits and `_`, and start with a letter".into(),
            );
        }
    }
}

/// Whether `loc` is a location Tributary can read and write: a local path (relative to the
/// project) or a URL of a supported object store (`abfss://`, `az://`, `s3://`, `gs://`, …).
/// Used for the lake and by the connectors whose connections name a folder.
pub fn check_location(loc: &str) -> Result<(), String> {
    if loc.trim().is_empty() {
        return Err("must not be empty".into());
    }
    match loc.split_once("://") {
        None => Ok(()),
        Some((scheme, _)) => match scheme {
            "file" | "abfss" | "abfs" | "az" | "azure" | "adl" | "s3" | "s3a" | "gs" => {
                url::Url::parse(loc)
                    .map(|_| ())
                    .map_err(|e| format!("not a valid URL: {e}"))
            }
            other => Err(format!(
                "unsupported scheme `{other}://`; use a local folder, abfss://, az://, s3:// or gs://"
            )),
        },
    }
}

/// Parse one YAML file into `T`: syntax and type errors with line and key, then `${env:VAR}`
/// substitution with a problem per missing variable.
fn load_file<T: DeserializeOwned>(
    path: &Path,
    rel: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<ConfigProblem>,
) -> Option<T> {
    let text = read_text(path, rel, problems)?;
    parse_as_written::<T>(&text, rel, problems)?;
    let positions = Positions::of(&text);
    parse_substituted(&text, rel, &positions, env, &|_| false, problems)
}

/// Parse YAML `text` (from file `rel`, whose first `line_offset` lines come before it) into `T`,
/// substituting `${env:…}` in string values from the process environment. Problems carry file,
/// line (in `rel`) and key. Used for YAML embedded in other files, such as model headers.
pub fn parse_yaml_str<T: DeserializeOwned>(
    text: &str,
    rel: &Path,
    line_offset: usize,
    problems: &mut Vec<ConfigProblem>,
) -> Option<T> {
    let start = problems.len();
    let parsed = parse_as_written::<T>(text, rel, problems).and_then(|_| {
        let positions = Positions::of(text);
        let env = |k: &str| std::env::var(k).ok();
        parse_substituted(text, rel, &positions, &env, &|_| false, problems)
    });
    for p in &mut problems[start..] {
        if let Some(l) = p.line.as_mut() {
            *l += line_offset;
        }
    }
    parsed
}

/// `tributary.yaml`: parsed as written, the target selected, `${env:…}` substituted everywhere
/// except in the values the selected target does not use, values checked, and the target
/// applied. Returns the effective configuration and the selected target's name. Problems with
/// values are pushed but still return the configuration, so the ingest files get checked too.
fn load_project_file(
    path: &Path,
    requested: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<ConfigProblem>,
) -> Option<(ProjectConfig, Option<String>)> {
    let rel = Path::new(PROJECT_FILE);
    let text = read_text(path, rel, problems)?;
    let raw: ProjectConfig = parse_as_written(&text, rel, problems)?;
    let positions = Positions::of(&text);
    let problem = |key: &str, message: String| ConfigProblem {
        file: rel.to_path_buf(),
        line: positions.line(key),
        key: key.to_string(),
        message,
    };
    let selected = match select_target(&raw, requested, env) {
        Ok(selected) => selected,
        Err((key, message)) => {
            problems.push(problem(&key, message));
            None
        }
    };
    let mut unused = unused_paths(&raw, selected.as_deref());
    // Only `tributary serve` needs the API token: it substitutes it itself
    // (`ServeConfig::resolved_token`), so other commands run without the variable.
    unused.push("serve.token".into());
    // The same for alert channels (webhook URLs, API tokens, SMTP passwords): substituted by the
    // commands that send alerts (`ChannelConfig::resolved`).
    unused.push("alerts.channels".into());
    let mut config: ProjectConfig = parse_substituted(
        &text,
        rel,
        &positions,
        env,
        &|path| under_any(path, &unused),
        problems,
    )?;
    check_project_values(&config, &mut |key, message| {
        problems.push(problem(key, message))
    });
    if let Some(t) = selected.as_ref().and_then(|name| config.targets.get(name)) {
        let t = t.clone();
        config.apply_target(&t);
    }
    Some((config, selected))
}

fn read_text(path: &Path, rel: &Path, problems: &mut Vec<ConfigProblem>) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(t) => Some(t),
        Err(e) => {
            problems.push(ConfigProblem {
                file: rel.to_path_buf(),
                line: None,
                key: String::new(),
                message: format!("cannot read: {e}"),
            });
            None
        }
    }
}

/// Pass 1: the text as written, so errors carry positions. `${env:…}` are plain strings here.
fn parse_as_written<T: DeserializeOwned>(
    text: &str,
    rel: &Path,
    problems: &mut Vec<ConfigProblem>,
) -> Option<T> {
    let de = serde_yaml_ng::Deserializer::from_str(text);
    match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(v) => Some(v),
        Err(e) => {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let line = inner.location().map(|l| l.line());
            let key = if key == "." { String::new() } else { key };
            // serde_yaml_ng puts the key in front of a value's own error (`a.b: …`); the
            // problem names the key already.
            let text = inner.to_string();
            let text = text
                .strip_prefix(&format!("{key}: "))
                .unwrap_or(&text)
                .to_string();
            problems.push(ConfigProblem {
                file: rel.to_path_buf(),
                line,
                key,
                message: explain_serde(&text),
            });
            None
        }
    }
}

/// Pass 2: substitute the environment in every string value whose key path `skip` does not
/// match, with a problem per missing variable, then convert.
fn parse_substituted<T: DeserializeOwned>(
    text: &str,
    rel: &Path,
    positions: &Positions,
    env: &dyn Fn(&str) -> Option<String>,
    skip: &dyn Fn(&str) -> bool,
    problems: &mut Vec<ConfigProblem>,
) -> Option<T> {
    let mut value: serde_yaml_ng::Value = match serde_yaml_ng::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            problems.push(ConfigProblem {
                file: rel.to_path_buf(),
                line: e.location().map(|l| l.line()),
                key: String::new(),
                message: e.to_string(),
            });
            return None;
        }
    };
    let before = problems.len();
    let mut substitution = Substitution {
        env,
        skip,
        report: &mut |key, message| {
            problems.push(ConfigProblem {
                file: rel.to_path_buf(),
                line: positions.line(&key),
                key,
                message,
            })
        },
    };
    substitution.apply(&mut value, String::new());
    if problems.len() > before {
        return None;
    }
    match serde_yaml_ng::from_value::<T>(value) {
        Ok(v) => Some(v),
        Err(e) => {
            problems.push(ConfigProblem {
                file: rel.to_path_buf(),
                line: None,
                key: String::new(),
                message: format!("after substituting environment variables: {e}"),
            });
            None
        }
    }
}

/// serde's messages, with a hint on what to do.
fn explain_serde(msg: &str) -> String {
    // serde_yaml_ng appends " at line X column Y"; the position is reported separately.
    let msg = match msg.find(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    };
    if msg.starts_with("unknown field") {
        format!("{msg}; remove it or check its spelling")
    } else if msg.starts_with("missing field") {
        format!("{msg}; add it")
    } else {
        msg.to_string()
    }
}

/// `${env:…}` substitution over a YAML tree.
struct Substitution<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    /// Key paths left as written.
    skip: &'a dyn Fn(&str) -> bool,
    report: &'a mut dyn FnMut(String, String),
}

impl Substitution<'_> {
    fn apply(&mut self, v: &mut serde_yaml_ng::Value, path: String) {
        if !path.is_empty() && (self.skip)(&path) {
            return;
        }
        match v {
            serde_yaml_ng::Value::String(s) if s.contains("${") => match expand_env(s, self.env) {
                Ok(expanded) => *s = expanded,
                Err(e) => (self.report)(path, e),
            },
            serde_yaml_ng::Value::Mapping(m) => {
                for (k, child) in m.iter_mut() {
                    let key = match k {
                        serde_yaml_ng::Value::String(s) => s.clone(),
                        other => serde_yaml_ng::to_string(other)
                            .unwrap_or_default()
                            .trim()
                            .to_string(),
                    };
                    let p = if path.is_empty() {
                        key
                    } else {
                        format!("{path}.{key}")
                    };
                    self.apply(child, p);
                }
            }
            serde_yaml_ng::Value::Sequence(items) => {
                for (i, child) in items.iter_mut().enumerate() {
                    self.apply(child, format!("{path}[{i}]"));
                }
            }
            serde_yaml_ng::Value::Tagged(t) => self.apply(&mut t.value, path),
            _ => {}
        }
    }
}

/// Expand `${env:NAME}` and `${env:NAME:-default}` in `s`. `$${` escapes a literal `${`.
/// The error names the variable, never a value.
pub fn expand_env(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find("${") {
        if pos > 0 && rest.as_bytes()[pos - 1] == b'$' {
            out.push_str(&rest[..pos - 1]);
            out.push_str("${");
            rest = &rest[pos + 2..];
            continue;
        }
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 2..];
        let Some(end) = after.find('}') else {
            return Err("unterminated `${`; write `${env:NAME}`".into());
        };
        let inner = &after[..end];
        let Some(spec) = inner.strip_prefix("env:") else {
            return Err(format!(
                "`${{{inner}}}` is not a known substitution; write `${{env:NAME}}`"
            ));
        };
        let (name, default) = match spec.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (spec, None),
        };
        match (lookup(name), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => {
                return Err(format!(
                    "environment variable {name} is not set; export it, or write `${{env:{name}:-default}}`"
                ));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(p, text).unwrap();
    }

    const PROJECT: &str =
        "name: t\nlake: ./lake\nconnections:\n  erp: { type: sqlite, path: erp.db }\n";

    #[test]
    fn env_expansion() {
        let look = |n: &str| (n == "A").then(|| "x".to_string());
        assert_eq!(expand_env("p${env:A}q", &look).unwrap(), "pxq");
        assert_eq!(expand_env("${env:B:-d}", &look).unwrap(), "d");
        assert_eq!(expand_env("$${env:A}", &look).unwrap(), "${env:A}");
        let e = expand_env("${env:B}", &look).unwrap_err();
        assert!(e.contains("B is not set"), "{e}");
    }

    #[test]
    fn durations_and_sizes_are_read_at_load_with_file_line_and_key() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            PROJECT_FILE,
            &format!("{PROJECT}memory_limit: lots\n"),
        );
        write(
            d.path(),
            "ingest/erp.yaml",
            "connection: erp\ntables:\n  - name: orders\n    timeout: 5 parsecs\n",
        );
        let ConfigError::Problems(p) = Project::load(d.path()).unwrap_err() else {
            panic!("expected problems")
        };
        let found = |file: &str, key: &str, words: &str| {
            p.iter().any(|q| {
                q.file.as_path() == Path::new(file)
                    && q.key == key
                    && q.line.is_some()
                    && q.message.contains(words)
            })
        };
        assert!(
            found(PROJECT_FILE, "memory_limit", "is not a size"),
            "{p:?}"
        );
        assert!(
            found("ingest/erp.yaml", "tables[0].timeout", "unknown unit"),
            "{p:?}"
        );

        // Good values arrive typed: no re-parsing where they are used.
        write(
            d.path(),
            PROJECT_FILE,
            &format!("{PROJECT}memory_limit: 1GiB\n"),
        );
        write(
            d.path(),
            "ingest/erp.yaml",
            "connection: erp\ntables:\n  - name: orders\n    timeout: 90m\n    mode: incremental\n    cursor: id\n    lookback: 2h\n",
        );
        let project = Project::load(d.path()).unwrap();
        assert_eq!(project.config.memory_limit_bytes(), 1 << 30);
        let t = &project.ingest[0].config.tables[0];
        assert_eq!(t.timeout.map(|d| d.std().as_secs()), Some(5400));
        assert_eq!(t.timeout.map(|d| d.to_string()).as_deref(), Some("90m"));
        assert_eq!(
            t.lookback.as_ref().map(|l| l.parse()),
            Some(Ok(Lookback::Micros(7_200_000_000)))
        );
    }

    #[test]
    fn semantic_problems_are_all_reported() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), PROJECT_FILE, PROJECT);
        write(
            d.path(),
            "ingest/a.yaml",
            "connection: erp\ntables:\n  - name: orders\n    mode: incremental\n  - name: main.orders\n",
        );
        write(
            d.path(),
            "ingest/b.yaml",
            "connection: crm\ntables:\n  - name: x\n",
        );
        let ConfigError::Problems(p) = Project::load(d.path()).unwrap_err() else {
            panic!("expected problems")
        };
        let text: Vec<String> = p.iter().map(|p| p.to_string()).collect();
        assert_eq!(p.len(), 3, "{text:#?}");
        assert!(
            text[0].starts_with("ingest/a.yaml:4: key `tables[0].mode`"),
            "{text:#?}"
        );
        assert!(
            text[1].contains("two tables load into `bronze.erp_orders`"),
            "{text:#?}"
        );
        assert!(text[1].starts_with("ingest/a.yaml:5:"), "{text:#?}");
        assert!(
            text[2].starts_with("ingest/b.yaml:1: key `connection`"),
            "{text:#?}"
        );
        assert!(text[2].contains("`crm` is not defined"), "{text:#?}");
    }

    #[test]
    fn missing_env_var_is_reported_with_its_key() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            PROJECT_FILE,
            "name: t\nlake: ./lake\nconnections:\n  erp:\n    type: postgres\n    url: ${env:TRIBUTARY_TEST_SURELY_UNSET}\n",
        );
        let ConfigError::Problems(p) = Project::load(d.path()).unwrap_err() else {
            panic!("expected problems")
        };
        assert_eq!(p[0].line, Some(6));
        assert_eq!(p[0].key, "connections.erp.url");
        assert!(
            p[0].message
                .contains("TRIBUTARY_TEST_SURELY_UNSET is not set")
        );
    }

    #[test]
    fn serve_token_is_substituted_only_when_serving() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            PROJECT_FILE,
            "name: t\nlake: ./lake\nserve:\n  bind: 0.0.0.0:8080\n  token: ${env:TT_SERVE_TOKEN}\n",
        );
        let unset = |_: &str| None;
        // Every other command loads the project without the variable.
        let p = Project::load_with_env(d.path(), None, &unset).unwrap();
        assert_eq!(
            p.config.serve.token.as_deref(),
            Some("${env:TT_SERVE_TOKEN}")
        );
        let e = p.config.serve.resolved_token(&unset).unwrap_err();
        assert!(
            e.contains("serve.token") && e.contains("TT_SERVE_TOKEN is not set"),
            "{e}"
        );
        let set = |k: &str| (k == "TT_SERVE_TOKEN").then(|| "s3cret-value".to_string());
        assert_eq!(
            p.config.serve.resolved_token(&set).unwrap().as_deref(),
            Some("s3cret-value")
        );
        // Never serialized.
        let yaml = serde_yaml_ng::to_string(&p.config).unwrap();
        assert!(!yaml.contains("TT_SERVE_TOKEN"), "{yaml}");
    }

    #[test]
    fn wrong_type_and_bad_yaml() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), PROJECT_FILE, PROJECT);
        write(
            d.path(),
            "ingest/a.yaml",
            "connection: erp\ntables:\n  - name: o\n    primary_key: 3\n",
        );
        let ConfigError::Problems(p) = Project::load(d.path()).unwrap_err() else {
            panic!("expected problems")
        };
        assert_eq!(p[0].key, "tables[0].primary_key");
        assert_eq!(p[0].line, Some(4));
        write(d.path(), "ingest/a.yaml", "connection: erp\ntables: [\n");
        let ConfigError::Problems(p) = Project::load(d.path()).unwrap_err() else {
            panic!("expected problems")
        };
        assert!(p[0].line.is_some(), "{p:?}");
    }

    #[test]
    fn delta_tables_default_to_their_last_path_part() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            PROJECT_FILE,
            "name: t\nlake: ./lake\nconnections:\n  ext: { type: delta, url: ./tables }\n",
        );
        write(
            d.path(),
            "ingest/ext.yaml",
            "connection: ext\ntables:\n  - name: sales/orders\n    mode: incremental\n  - name: sales/prices\n    version: 3\n",
        );
        let p = Project::load(d.path()).unwrap();
        assert_eq!(p.config.connections["ext"].kind(), "delta");
        let t: Vec<String> = p.load_specs().iter().map(|s| s.target()).collect();
        assert_eq!(t, vec!["bronze.ext_orders", "bronze.ext_prices"]);
        // The connector's keys wait, as written, for the connector to read them.
        assert_eq!(
            p.load_specs()[1].table.options.get("version"),
            Some(&serde_yaml_ng::Value::from(3))
        );
    }

    #[test]
    fn connections_of_registered_kinds_keep_their_keys_for_their_connector() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            PROJECT_FILE,
            "name: t\nlake: ./lake\nconnections:\n  gen: { type: fixture, seed: 7 }\n  bad: { url: x }\n",
        );
        let p = problems(Project::load_with_env(d.path(), None, &env_of(&[])));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].message.contains("missing field `type`"), "{p:?}");
        write(
            d.path(),
            PROJECT_FILE,
            "name: t\nlake: ./lake\nconnections:\n  gen: { type: fixture, seed: 7 }\n",
        );
        let p = Project::load(d.path()).unwrap();
        let gen_ = &p.config.connections["gen"];
        assert_eq!(gen_.kind(), "fixture");
        assert_eq!(
            gen_.options().get("seed"),
            Some(&serde_yaml_ng::Value::from(7))
        );
        // Debug never shows values (they may be resolved passwords).
        assert!(!format!("{gen_:?}").contains('7'), "{gen_:?}");
        let yaml = serde_yaml_ng::to_string(&p.config.connections).unwrap();
        assert!(
            yaml.contains("type: fixture") && yaml.contains("seed: 7"),
            "{yaml}"
        );
    }

    #[test]
    fn default_targets() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), PROJECT_FILE, PROJECT);
        write(
            d.path(),
            "ingest/a.yaml",
            "connection: erp\ntables:\n  - name: main.Orders\n  - name: x\n    target: silver.y\n",
        );
        let p = Project::load(d.path()).unwrap();
        let t: Vec<String> = p.load_specs().iter().map(|s| s.target()).collect();
        assert_eq!(t, vec!["bronze.erp_orders", "silver.y"]);
    }

    /// A project with `dev` and `prod` targets.
    const TARGETS: &str = r#"name: t
lake: ./lake
lake_options: { azure_storage_use_emulator: "true" }
connections:
  erp: { type: sqlite, path: erp.db }
  landing: { type: files, url: ./landing }
vars:
  schema: raw
  days: 7
targets:
  dev:
    lake: ./dev-lake
  prod:
    lake: abfss://lake@acme.dfs.core.windows.net/prod
    lake_options: { azure_storage_account_name: acme }
    state: sqlite://.tributary/prod.db
    connections:
      erp: { type: postgres, url: "${env:TT_PROD_URL}" }
      crm: { type: files, url: ./crm }
    vars: { schema: prod }
"#;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    fn problems(r: Result<Project, ConfigError>) -> Vec<ConfigProblem> {
        match r {
            Err(ConfigError::Problems(p)) => p,
            Err(e) => panic!("expected problems, got {e}"),
            Ok(p) => panic!("expected problems, got a project: {:?}", p.config),
        }
    }

    #[test]
    fn a_target_overrides_lake_state_connections_and_vars() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), PROJECT_FILE, TARGETS);
        let env = env_of(&[("TT_PROD_URL", "postgres://app:pw@db:5432/erp")]);

        let p = Project::load_with_env(d.path(), Some("prod"), &env).unwrap();
        assert_eq!(p.target.as_deref(), Some("prod"));
        let c = &p.config;
        assert_eq!(c.lake, "abfss://lake@acme.dfs.core.windows.net/prod");
        let options: Vec<(&str, &str)> = c
            .lake_options
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(options, [("azure_storage_account_name", "acme")]);
        assert_eq!(c.state, "sqlite://.tributary/prod.db");
        let conns: Vec<(&str, &str)> = c
            .connections
            .iter()
            .map(|(k, v)| (k.as_str(), v.kind()))
            .collect();
        assert_eq!(
            conns,
            [("crm", "files"), ("erp", "postgres"), ("landing", "files")]
        );
        assert_eq!(
            c.connections["erp"].options().get("url"),
            Some(&serde_yaml_ng::Value::from("postgres://app:pw@db:5432/erp"))
        );
        assert_eq!(p.vars["schema"], serde_json::json!("prod"));
        assert_eq!(p.vars["days"], serde_json::json!(7));
        assert_eq!(c.vars, p.vars);

        // A target that sets only `lake` drops the base lake_options and keeps the rest.
        let p = Project::load_with_env(d.path(), Some("dev"), &env).unwrap();
        assert_eq!(p.config.lake, "./dev-lake");
        assert!(
            p.config.lake_options.is_empty(),
            "{:?}",
            p.config.lake_options
        );
        assert_eq!(p.config.state, "sqlite://.tributary/state.db");
        assert_eq!(p.config.connections["erp"].kind(), "sqlite");
        assert_eq!(p.vars["schema"], serde_json::json!("raw"));

        // No target: the base configuration as written.
        let p = Project::load_with_env(d.path(), None, &env).unwrap();
        assert_eq!(p.target, None);
        assert_eq!(p.config.lake, "./lake");
        assert_eq!(p.config.lake_options.len(), 1);
        assert_eq!(p.config.connections.len(), 2);
        assert_eq!(p.config.targets.len(), 2, "the targets stay listed");
    }

    #[test]
    fn target_precedence_flag_then_env_then_default() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            PROJECT_FILE,
            "name: t\nlake: ./lake\ndefault_target: dev\ntargets:\n  dev: { lake: ./dev }\n  prod: { lake: ./prod }\n  ci: { lake: ./ci }\n",
        );
        let lake = |target: Option<&str>, env: &dyn Fn(&str) -> Option<String>| {
            let p = Project::load_with_env(d.path(), target, env).unwrap();
            (p.target.unwrap_or_default(), p.config.lake)
        };
        let env_prod = env_of(&[(TARGET_ENV, "prod")]);
        let env_empty = env_of(&[(TARGET_ENV, "")]);
        let no_env = env_of(&[]);
        assert_eq!(lake(Some("ci"), &env_prod), ("ci".into(), "./ci".into()));
        assert_eq!(lake(None, &env_prod), ("prod".into(), "./prod".into()));
        assert_eq!(lake(None, &no_env), ("dev".into(), "./dev".into()));
        assert_eq!(lake(None, &env_empty), ("dev".into(), "./dev".into()));
    }

    #[test]
    fn unknown_target_names_the_defined_ones_with_line() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), PROJECT_FILE, TARGETS);
        let env = env_of(&[]);
        let p = problems(Project::load_with_env(d.path(), Some("nope"), &env));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].key, "targets");
        assert_eq!(p[0].line, Some(10));
        assert!(
            p[0].message
                .contains("target `nope` (from --target or TRIBUTARY_TARGET) is not defined; defined targets: dev, prod"),
            "{}",
            p[0].message
        );

        let env = env_of(&[(TARGET_ENV, "staging")]);
        let p = problems(Project::load_with_env(d.path(), None, &env));
        assert!(p[0].message.contains("`staging`"), "{p:?}");

        write(
            d.path(),
            PROJECT_FILE,
            &format!("{TARGETS}default_target: qa\n"),
        );
        let p = problems(Project::load_with_env(d.path(), None, &env_of(&[])));
        assert_eq!(p[0].key, "default_target");
        assert_eq!(p[0].line, Some(21));
        assert!(p[0].message.contains("from default_target"), "{p:?}");

        write(d.path(), PROJECT_FILE, PROJECT);
        let p = problems(Project::load_with_env(d.path(), Some("dev"), &env_of(&[])));
        assert!(
            p[0].message
                .contains("defined targets: none; add a `targets:` section"),
            "{p:?}"
        );
    }

    #[test]
    fn env_is_substituted_only_in_the_selected_target() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), PROJECT_FILE, TARGETS);
        let no_env = env_of(&[]);
        // TT_PROD_URL is unset: dev and the base configuration do not need it ...
        Project::load_with_env(d.path(), Some("dev"), &no_env).unwrap();
        Project::load_with_env(d.path(), None, &no_env).unwrap();
        // ... prod does, and says where.
        let p = problems(Project::load_with_env(d.path(), Some("prod"), &no_env));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].key, "targets.prod.connections.erp.url");
        assert_eq!(p[0].line, Some(18));
        assert!(p[0].message.contains("TT_PROD_URL is not set"), "{p:?}");

        // Base values a target replaces are not substituted either.
        write(
            d.path(),
            PROJECT_FILE,
            "name: t\nlake: \"${env:TT_LAKE}\"\nconnections:\n  erp: { type: postgres, url: \"${env:TT_ERP}\" }\ntargets:\n  dev:\n    lake: ./lake\n    connections:\n      erp: { type: sqlite, path: erp.db }\n",
        );
        let p = Project::load_with_env(d.path(), Some("dev"), &no_env).unwrap();
        assert_eq!(p.config.connections["erp"].kind(), "sqlite");
        let p = problems(Project::load_with_env(d.path(), None, &no_env));
        let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["lake", "connections.erp.url"], "{p:?}");
    }

    #[test]
    fn problems_inside_a_target_keep_key_and_line() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            PROJECT_FILE,
            "name: t\nlake: ./lake\ntargets:\n  prod:\n    laek: ./x\n",
        );
        let p = problems(Project::load_with_env(d.path(), None, &env_of(&[])));
        assert_eq!(p[0].key, "targets.prod.laek");
        assert_eq!(p[0].line, Some(5));
        assert!(p[0].message.contains("unknown field `laek`"), "{p:?}");

        // Values are checked in every target, selected or not (a connection's keys by its
        // connector: crates/connectors/tests/it/config.rs).
        write(
            d.path(),
            PROJECT_FILE,
            "name: t\nlake: ./lake\ntargets:\n  prod:\n    lake: ftp://host/lake\n    connections:\n      erp: { type: postgres, url: mysql://x }\n  Bad: {}\n",
        );
        let p = problems(Project::load_with_env(d.path(), None, &env_of(&[])));
        let text: Vec<String> = p.iter().map(|p| p.to_string()).collect();
        assert_eq!(p.len(), 2, "{text:#?}");
        assert!(
            text[0].starts_with("tributary.yaml:8: key `targets.Bad`"),
            "{text:#?}"
        );
        assert!(
            text[1].starts_with("tributary.yaml:5: key `targets.prod.lake`: unsupported scheme"),
            "{text:#?}"
        );
    }

    #[test]
    fn a_connection_of_another_target_is_named_in_the_error() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), PROJECT_FILE, TARGETS);
        write(
            d.path(),
            "ingest/crm.yaml",
            "connection: crm\ntables:\n  - name: accounts\n    glob: \"*.csv\"\n",
        );
        let env = env_of(&[("TT_PROD_URL", "postgres://db/erp")]);
        Project::load_with_env(d.path(), Some("prod"), &env).unwrap();
        let p = problems(Project::load_with_env(d.path(), Some("dev"), &env));
        assert_eq!(p[0].file, PathBuf::from("ingest/crm.yaml"));
        assert!(
            p[0].message.contains(
                "connection `crm` is not defined in tributary.yaml (target dev); defined: erp, landing; it is defined only in target prod"
            ),
            "{p:?}"
        );
    }

    #[test]
    fn on_schema_change_defaults_to_evolve_and_rejects_unknown_values() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), PROJECT_FILE, PROJECT);
        write(
            d.path(),
            "ingest/a.yaml",
            "connection: erp\ntables:\n  - name: a\n  - name: b\n    on_schema_change: allow\n  - name: c\n    on_schema_change: fail\n",
        );
        let p = Project::load(d.path()).unwrap();
        let policies: Vec<SchemaChangePolicy> = p
            .load_specs()
            .iter()
            .map(|s| s.table.on_schema_change)
            .collect();
        assert_eq!(
            policies,
            vec![
                SchemaChangePolicy::Evolve,
                SchemaChangePolicy::Allow,
                SchemaChangePolicy::Fail
            ]
        );
        write(
            d.path(),
            "ingest/a.yaml",
            "connection: erp\ntables:\n  - name: a\n    on_schema_change: ignore\n",
        );
        let ConfigError::Problems(p) = Project::load(d.path()).unwrap_err() else {
            panic!("expected problems")
        };
        assert_eq!(p[0].key, "tables[0].on_schema_change");
        assert_eq!(p[0].line, Some(4));
        assert!(
            p[0].message.contains("unknown variant `ignore`"),
            "{}",
            p[0].message
        );
        assert!(p[0].message.contains("evolve"), "{}", p[0].message);
    }
}
