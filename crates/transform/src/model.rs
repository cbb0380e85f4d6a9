//! Model files: `models/<layer>/<name>.sql` with settings from a YAML header block
//! (`/*--- … ---*/` at the top of the file) or a sidecar `models/<layer>/<name>.yaml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tributary_core::config::{ConfigProblem, is_identifier, parse_yaml_str};
use tributary_core::yamlpos::Positions;
use tributary_lake::schema::SchemaChangePolicy;

use crate::expect::{Expectation, ExpectationSpec};

/// How a model's result becomes a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Materialized {
    /// Rebuilt fully on every run, as one new table version.
    #[default]
    Table,
    /// Only upstream rows that arrived since the last successful run are processed, then merged
    /// by `unique_key` (or appended when there is none).
    Incremental,
    /// Type-2 history by `unique_key` with `valid_from`, `valid_to` and `is_current`.
    Scd2,
}

impl Materialized {
    /// As written in the configuration.
    pub fn as_str(&self) -> &'static str {
        match self {
            Materialized::Table => "table",
            Materialized::Incremental => "incremental",
            Materialized::Scd2 => "scd2",
        }
    }
}

/// One column name or a list of them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Columns {
    /// `unique_key: id`
    One(String),
    /// `unique_key: [order_id, line]`
    Many(Vec<String>),
}

impl Columns {
    /// The column names.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Columns::One(c) => vec![c.clone()],
            Columns::Many(v) => v.clone(),
        }
    }
}

/// Documentation of one output column.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnDoc {
    /// What the column means.
    #[serde(default)]
    pub description: Option<String>,
}

/// What an SCD2 model does with keys that disappear from its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HardDeletes {
    /// Keep the current version open.
    #[default]
    Ignore,
    /// Close the current version (`valid_to` = run time, `is_current` = false).
    Invalidate,
}

/// A model's settings (header block or sidecar YAML).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// `table` (default), `incremental` or `scd2`.
    #[serde(default)]
    pub materialized: Materialized,
    /// Column(s) identifying a row: the output keeps one row per key (the latest by `order_by`).
    /// Required by `scd2`; makes `incremental` merge instead of append.
    #[serde(default)]
    pub unique_key: Option<Columns>,
    /// Column(s) deciding which row of a key is the latest (largest wins), e.g. `updated_at`.
    /// For `scd2` the first one is also the new version's `valid_from` (default: the run time).
    #[serde(default)]
    pub order_by: Option<Columns>,
    /// Partition columns of the Delta table.
    #[serde(default)]
    pub partition_by: Vec<String>,
    /// What the table holds.
    #[serde(default)]
    pub description: Option<String>,
    /// Column descriptions.
    #[serde(default)]
    pub columns: BTreeMap<String, ColumnDoc>,
    /// Data-quality rules, checked on every run before anything is written.
    #[serde(default)]
    pub expectations: Vec<ExpectationSpec>,
    /// What to do when the result's columns differ from the table's: `evolve` (default: add new
    /// columns, accept widening), `allow` (anything) or `fail` (any difference).
    #[serde(default)]
    pub on_schema_change: SchemaChangePolicy,
    /// `scd2`: the columns compared to detect a change (default: all but the key, the
    /// `order_by` columns and `_tributary_*` load metadata).
    #[serde(default)]
    pub check_columns: Option<Vec<String>>,
    /// `scd2`: `ignore` (default) or `invalidate` keys missing from the input.
    #[serde(default)]
    pub hard_deletes: HardDeletes,
    /// `incremental` and `scd2`: what a run does when the model's logic (its SQL, the settings
    /// that decide its rows, a macro it calls) changed since the table was last built: `fail`
    /// (default), `rebuild` (a full refresh) or `continue` (keep the old rows, with a warning).
    #[serde(default)]
    pub on_logic_change: LogicChange,
    /// Tasks that must succeed before this model runs, besides the tables it refs (e.g. a
    /// `command` task in pipelines/*.yaml).
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Retries after the first attempt, for retryable errors (e.g. a Delta commit conflict).
    /// Default `orchestration.retries`.
    #[serde(default)]
    pub retries: Option<u32>,
    /// Stop the model after this long (e.g. `30m`); nothing is committed. Default
    /// `orchestration.timeout`.
    #[serde(default)]
    pub timeout: Option<tributary_core::Duration>,
}

/// What a run does when an incremental or scd2 model's logic changed since its table was last
/// built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogicChange {
    /// Fail, saying what changed and what to run (default).
    #[default]
    Fail,
    /// Rebuild the table from all upstream rows (as `--full-refresh`).
    Rebuild,
    /// Go on: the table keeps the rows the old logic made.
    Continue,
}

/// A model found in the project.
#[derive(Debug, Clone)]
pub struct Model {
    /// Layer (the folder under `models/`).
    pub layer: String,
    /// Name (the file stem).
    pub name: String,
    /// The `.sql` file, relative to the project.
    pub file: PathBuf,
    /// Where the settings came from (the `.sql` file or the sidecar), relative to the project.
    pub config_file: PathBuf,
    /// The SQL template, with the header block blanked out (line numbers kept).
    pub template: String,
    /// Settings.
    pub config: ModelConfig,
    /// Expectations, validated.
    pub expectations: Vec<Expectation>,
}

impl Model {
    /// `<layer>.<name>`.
    pub fn id(&self) -> String {
        format!("{}.{}", self.layer, self.name)
    }

    /// The unique key columns (empty when none).
    pub fn unique_key(&self) -> Vec<String> {
        self.config
            .unique_key
            .as_ref()
            .map(Columns::to_vec)
            .unwrap_or_default()
    }

    /// Whether incremental runs only append rows (`materialized: incremental` without
    /// `unique_key`): such a model cannot follow an upstream whose rows changed.
    pub fn appends_only(&self) -> bool {
        self.config.materialized == Materialized::Incremental && self.unique_key().is_empty()
    }

    /// Whether incremental runs MERGE into the table (`incremental` with `unique_key`, `scd2`).
    pub fn merges(&self) -> bool {
        match self.config.materialized {
            Materialized::Incremental => !self.unique_key().is_empty(),
            Materialized::Scd2 => true,
            Materialized::Table => false,
        }
    }

    /// The ordering columns (empty when none).
    pub fn order_by(&self) -> Vec<String> {
        self.config
            .order_by
            .as_ref()
            .map(Columns::to_vec)
            .unwrap_or_default()
    }

    /// `<layer>._quarantine_<name>`: where `drop` expectations put failing rows.
    pub fn quarantine_name(&self) -> String {
        format!("_quarantine_{}", self.name)
    }
}

const HEADER_OPEN: &str = "/*---";
const HEADER_CLOSE: &str = "---*/";

/// Split a model file into (header YAML, header's first line number, SQL with the header blanked).
/// The header must be the first non-blank text of the file.
/// A header block: its YAML and the line it starts on.
type Header = (String, usize);

fn split_header(text: &str) -> Result<(Option<Header>, String), (usize, String)> {
    let trimmed = text.trim_start();
    if !trimmed.starts_with(HEADER_OPEN) {
        return Ok((None, text.to_string()));
    }
    let start = text.len() - trimmed.len();
    let after_open = start + HEADER_OPEN.len();
    let Some(close_rel) = text[after_open..].find(HEADER_CLOSE) else {
        let line = text[..start].lines().count() + 1;
        return Err((
            line,
            format!(
                "the settings block opened with `{HEADER_OPEN}` is never closed with `{HEADER_CLOSE}`"
            ),
        ));
    };
    let close = after_open + close_rel;
    let yaml = text[after_open..close].to_string();
    // Line (1-based) where the YAML text starts: the line of the opening marker.
    let first_line = text[..after_open].matches('\n').count() + 1;
    let end = close + HEADER_CLOSE.len();
    let blank: String = text[..end]
        .chars()
        .map(|c| if c == '\n' { '\n' } else { ' ' })
        .collect();
    Ok((Some((yaml, first_line)), format!("{blank}{}", &text[end..])))
}

/// Every model under `<root>/models`, sorted by id. Problems are added to `problems`.
pub fn discover(root: &Path, problems: &mut Vec<ConfigProblem>) -> Vec<Model> {
    let dir = root.join("models");
    let mut out = Vec::new();
    if !dir.is_dir() {
        return out;
    }
    let mut layers: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect(),
        Err(e) => {
            problems.push(problem("models", None, "", format!("cannot list: {e}")));
            return out;
        }
    };
    layers.sort();
    for layer_dir in layers {
        let layer = file_name(&layer_dir);
        let rel_layer = PathBuf::from("models").join(&layer);
        if !is_identifier(&layer) {
            problems.push(problem(
                &rel_layer,
                None,
                "",
                format!(
                    "`{layer}` is not a valid layer name (letters, digits and `_`, not starting with a digit)"
                ),
            ));
            continue;
        }
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&layer_dir) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(e) => {
                problems.push(problem(&rel_layer, None, "", format!("cannot list: {e}")));
                continue;
            }
        };
        files.sort();
        for f in &files {
            let ext = f.extension().and_then(|e| e.to_str()).unwrap_or("");
            let stem = f.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            let rel = rel_layer.join(file_name(f));
            match ext {
                "sql" => {
                    if let Some(m) = load_model(root, &layer, stem, &rel, problems) {
                        out.push(m);
                    }
                }
                "yaml" | "yml"
                    if !files.iter().any(|o| {
                        o.extension().and_then(|e| e.to_str()) == Some("sql")
                            && o.file_stem().and_then(|s| s.to_str()) == Some(stem)
                    }) =>
                {
                    problems.push(problem(
                        &rel,
                        None,
                        "",
                        format!("settings for a model `{layer}.{stem}` that has no {stem}.sql"),
                    ));
                }
                _ => {}
            }
        }
    }
    out.sort_by_key(Model::id);
    out
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn problem(
    file: impl AsRef<Path>,
    line: Option<usize>,
    key: &str,
    message: String,
) -> ConfigProblem {
    ConfigProblem {
        file: file.as_ref().to_path_buf(),
        line,
        key: key.to_string(),
        message,
    }
}

fn load_model(
    root: &Path,
    layer: &str,
    name: &str,
    rel: &Path,
    problems: &mut Vec<ConfigProblem>,
) -> Option<Model> {
    if !is_identifier(name) || name.starts_with("_quarantine_") {
        problems.push(problem(
            rel,
            None,
            "",
            format!(
                "`{name}` is not a valid model name (letters, digits and `_`, not starting with a digit or `_quarantine_`)"
            ),
        ));
        return None;
    }
    let text = match std::fs::read_to_string(root.join(rel)) {
        Ok(t) => t,
        Err(e) => {
            problems.push(problem(rel, None, "", format!("cannot read: {e}")));
            return None;
        }
    };
    let (header, template) = match split_header(&text) {
        Ok(x) => x,
        Err((line, message)) => {
            problems.push(problem(rel, Some(line), "", message));
            return None;
        }
    };
    let sidecar_rel = rel.with_extension("yaml");
    let sidecar_rel = if root.join(&sidecar_rel).is_file() {
        Some(sidecar_rel)
    } else if root.join(rel.with_extension("yml")).is_file() {
        Some(rel.with_extension("yml"))
    } else {
        None
    };
    let before = problems.len();
    let settings = match (header, sidecar_rel) {
        (Some(_), Some(side)) => {
            problems.push(problem(
                &side,
                None,
                "",
                format!(
                    "settings for {layer}.{name} are both in the header of {} and in this file; keep one",
                    rel.display()
                ),
            ));
            return None;
        }
        (Some((yaml, first_line)), None) => Settings {
            file: rel.to_path_buf(),
            positions: Positions::of(&yaml),
            yaml,
            offset: first_line - 1,
        },
        (None, Some(side)) => match std::fs::read_to_string(root.join(&side)) {
            Ok(yaml) => Settings {
                file: side,
                positions: Positions::of(&yaml),
                yaml,
                offset: 0,
            },
            Err(e) => {
                problems.push(problem(&side, None, "", format!("cannot read: {e}")));
                return None;
            }
        },
        (None, None) => Settings {
            file: rel.to_path_buf(),
            positions: Positions::default(),
            yaml: String::new(),
            offset: 0,
        },
    };
    let config = if settings.yaml.trim().is_empty() {
        ModelConfig::default()
    } else {
        parse_yaml_str::<ModelConfig>(&settings.yaml, &settings.file, settings.offset, problems)?
    };
    let expectations = crate::expect::validate(&config, &settings, problems);
    check_config(&config, layer, name, &settings, problems);
    if problems.len() > before {
        return None;
    }
    Some(Model {
        layer: layer.to_string(),
        name: name.to_string(),
        file: rel.to_path_buf(),
        config_file: settings.file,
        template,
        config,
        expectations,
    })
}

/// Where a model's settings were written, to point problems at file and line.
pub(crate) struct Settings {
    pub(crate) file: PathBuf,
    yaml: String,
    positions: Positions,
    offset: usize,
}

impl Settings {
    /// A problem at `key` (dotted path, e.g. `expectations[2].range`).
    pub(crate) fn problem(&self, key: &str, message: String) -> ConfigProblem {
        ConfigProblem {
            file: self.file.clone(),
            line: self.positions.line(key).map(|l| l + self.offset),
            key: key.to_string(),
            message,
        }
    }
}

/// Cross-field checks of a model's settings.
fn check_config(
    cfg: &ModelConfig,
    layer: &str,
    name: &str,
    at: &Settings,
    problems: &mut Vec<ConfigProblem>,
) {
    if cfg.materialized == Materialized::Scd2 && cfg.unique_key.is_none() {
        problems.push(at.problem(
            "materialized",
            format!("{layer}.{name} is materialized as scd2, which needs `unique_key` (the column(s) identifying an entity)"),
        ));
    }
    for (key, cols) in [
        ("unique_key", cfg.unique_key.as_ref().map(Columns::to_vec)),
        ("order_by", cfg.order_by.as_ref().map(Columns::to_vec)),
        (
            "partition_by",
            Some(cfg.partition_by.clone()).filter(|v| !v.is_empty()),
        ),
        ("check_columns", cfg.check_columns.clone()),
    ] {
        let Some(cols) = cols else { continue };
        if cols.is_empty() {
            problems.push(at.problem(key, "must name at least one column".into()));
        }
        if cols.iter().any(|c| c.trim().is_empty()) {
            problems.push(at.problem(key, "a column name is empty".into()));
        }
    }
    if cfg.check_columns.is_some() && cfg.materialized != Materialized::Scd2 {
        problems.push(at.problem(
            "check_columns",
            "only scd2 models use `check_columns`".into(),
        ));
    }
    if cfg.hard_deletes != HardDeletes::Ignore && cfg.materialized != Materialized::Scd2 {
        problems.push(at.problem("hard_deletes", "only scd2 models use `hard_deletes`".into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_blanked_keeping_lines() {
        let text = "/*---\nmaterialized: table\n---*/\nSELECT 1\n";
        let (h, sql) = split_header(text).unwrap();
        let (yaml, line) = h.unwrap();
        assert_eq!(yaml.trim(), "materialized: table");
        assert_eq!(line, 1);
        assert_eq!(sql.lines().count(), text.lines().count());
        assert_eq!(sql.lines().nth(3), Some("SELECT 1"));
    }

    #[test]
    fn unclosed_header_is_an_error_with_line() {
        let err = split_header("\n/*---\nmaterialized: table\nSELECT 1").unwrap_err();
        assert_eq!(err.0, 2);
        assert!(err.1.contains("never closed"), "{}", err.1);
    }

    #[test]
    fn no_header() {
        let (h, sql) = split_header("SELECT 1 /*--- not a header ---*/").unwrap();
        assert!(h.is_none());
        assert!(sql.starts_with("SELECT 1"));
    }
}
