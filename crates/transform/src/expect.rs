//! Expectations: data-quality rules on a model's result, each with `on_fail: warn | drop | fail`.
//!
//! Row rules (`not_null`, `unique`, `accepted_values`, `range`, `regex`, `relationships`,
//! `expression`) become one boolean column per rule over the result; `row_count` checks the
//! number of rows. All rules are counted in one pass before anything is written.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use tributary_core::config::ConfigProblem;

use crate::model::{ModelConfig, Settings};
use crate::sql::{quote_ident, quote_table, sql_literal};

/// An expectation as written: `{ <rule>: <args>, name?: …, on_fail?: … }`.
pub type ExpectationSpec = BTreeMap<String, serde_yaml_ng::Value>;

/// What happens to rows (or the model) when a rule fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnFail {
    /// Record and print the failures; keep the rows.
    Warn,
    /// Keep failing rows out of the table and write them to `<layer>._quarantine_<name>`.
    Drop,
    /// Stop the model; the table keeps its previous version.
    #[default]
    Fail,
}

impl OnFail {
    /// As written in the configuration.
    pub fn as_str(&self) -> &'static str {
        match self {
            OnFail::Warn => "warn",
            OnFail::Drop => "drop",
            OnFail::Fail => "fail",
        }
    }
}

/// A rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// The columns are never NULL.
    NotNull(Vec<String>),
    /// No two rows share the (non-NULL) key; every row of a repeated key fails.
    Unique(Vec<String>),
    /// The column is NULL or one of the values.
    AcceptedValues {
        /// Column.
        column: String,
        /// Allowed values.
        values: Vec<Json>,
    },
    /// The column is NULL or within [min, max] (either bound optional).
    Range {
        /// Column.
        column: String,
        /// Inclusive lower bound.
        min: Option<Json>,
        /// Inclusive upper bound.
        max: Option<Json>,
    },
    /// The column is NULL or matches the regular expression.
    Regex {
        /// Column.
        column: String,
        /// Pattern (Rust `regex` syntax, as DataFusion's `regexp_like`).
        pattern: String,
    },
    /// The column is NULL or its value exists in `to`.`field`.
    Relationships {
        /// Column.
        column: String,
        /// The referenced table, `layer.name`.
        to: String,
        /// The referenced column.
        field: String,
    },
    /// The result has between min and max rows.
    RowCount {
        /// Minimum rows.
        min: Option<u64>,
        /// Maximum rows.
        max: Option<u64>,
    },
    /// A SQL boolean expression over the result's columns is true (NULL counts as true, as in a
    /// SQL CHECK constraint).
    Expression(String),
}

impl Rule {
    /// The rule kind, as written.
    pub fn kind(&self) -> &'static str {
        match self {
            Rule::NotNull(_) => "not_null",
            Rule::Unique(_) => "unique",
            Rule::AcceptedValues { .. } => "accepted_values",
            Rule::Range { .. } => "range",
            Rule::Regex { .. } => "regex",
            Rule::Relationships { .. } => "relationships",
            Rule::RowCount { .. } => "row_count",
            Rule::Expression(_) => "expression",
        }
    }

    fn default_name(&self) -> String {
        match self {
            Rule::NotNull(c) | Rule::Unique(c) => format!("{}({})", self.kind(), c.join(", ")),
            Rule::AcceptedValues { column, .. }
            | Rule::Range { column, .. }
            | Rule::Regex { column, .. } => format!("{}({column})", self.kind()),
            Rule::Relationships { column, to, field } => {
                format!("relationships({column} -> {to}.{field})")
            }
            Rule::RowCount { .. } => "row_count".into(),
            Rule::Expression(e) => {
                let short: String = e.chars().take(60).collect();
                format!("expression({short})")
            }
        }
    }

    /// Whether the rule judges single rows (everything but `row_count`).
    pub fn is_row_rule(&self) -> bool {
        !matches!(self, Rule::RowCount { .. })
    }
}

/// A validated expectation.
#[derive(Debug, Clone, PartialEq)]
pub struct Expectation {
    /// Name shown in summaries and stored with quarantined rows.
    pub name: String,
    /// The rule.
    pub rule: Rule,
    /// What a failure does.
    pub on_fail: OnFail,
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]", self.name, self.on_fail.as_str())
    }
}

const KINDS: &[&str] = &[
    "not_null",
    "unique",
    "accepted_values",
    "range",
    "regex",
    "relationships",
    "row_count",
    "expression",
];

/// Validate the `expectations` of a model's settings.
pub(crate) fn validate(
    cfg: &ModelConfig,
    at: &Settings,
    problems: &mut Vec<ConfigProblem>,
) -> Vec<Expectation> {
    let mut out = Vec::new();
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    for (i, spec) in cfg.expectations.iter().enumerate() {
        let key = format!("expectations[{i}]");
        match parse_one(spec) {
            Ok(e) => {
                if let Some(first) = names.insert(e.name.clone(), i) {
                    problems.push(at.problem(
                        &key,
                        format!(
                            "the name `{}` is already used by expectations[{first}]; give one a `name:`",
                            e.name
                        ),
                    ));
                }
                out.push(e);
            }
            Err((sub, message)) => {
                let key = if sub.is_empty() {
                    key
                } else {
                    format!("{key}.{sub}")
                };
                problems.push(at.problem(&key, message));
            }
        }
    }
    out
}

type ParseErr = (String, String);

fn parse_one(spec: &ExpectationSpec) -> Result<Expectation, ParseErr> {
    let mut name = None;
    let mut on_fail = OnFail::default();
    let mut rule = None;
    for (k, v) in spec {
        match k.as_str() {
            "name" => {
                name = Some(
                    v.as_str()
                        .filter(|s| !s.trim().is_empty())
                        .ok_or_else(|| (k.clone(), "must be a non-empty string".to_string()))?
                        .to_string(),
                )
            }
            "on_fail" => {
                on_fail = serde_yaml_ng::from_value(v.clone()).map_err(|_| {
                    (
                        k.clone(),
                        "must be one of `warn`, `drop`, `fail`".to_string(),
                    )
                })?
            }
            kind if KINDS.contains(&kind) => {
                if rule.is_some() {
                    return Err((
                        k.clone(),
                        "an expectation has exactly one rule; split it into two list items".into(),
                    ));
                }
                rule = Some(parse_rule(kind, v).map_err(|m| (k.clone(), m))?);
            }
            other => {
                return Err((
                    other.to_string(),
                    format!(
                        "unknown key `{other}`; a rule is one of {} (plus `name` and `on_fail`)",
                        KINDS.join(", ")
                    ),
                ));
            }
        }
    }
    let Some(rule) = rule else {
        return Err((
            String::new(),
            format!("no rule given; write one of {}", KINDS.join(", ")),
        ));
    };
    if on_fail == OnFail::Drop && !rule.is_row_rule() {
        return Err((
            "on_fail".into(),
            "row_count judges the whole result, so it can `warn` or `fail` but not `drop`".into(),
        ));
    }
    Ok(Expectation {
        name: name.unwrap_or_else(|| rule.default_name()),
        rule,
        on_fail,
    })
}

fn columns_of(v: &serde_yaml_ng::Value) -> Result<Vec<String>, String> {
    let cols: Vec<String> = match v {
        serde_yaml_ng::Value::String(s) => vec![s.clone()],
        serde_yaml_ng::Value::Sequence(items) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| "column names must be strings".to_string())
            })
            .collect::<Result<_, _>>()?,
        _ => return Err("expected a column name or a list of column names".into()),
    };
    if cols.is_empty() || cols.iter().any(|c| c.trim().is_empty()) {
        return Err("expected at least one non-empty column name".into());
    }
    Ok(cols)
}

fn yaml_to_json(v: &serde_yaml_ng::Value) -> Result<Json, String> {
    serde_json::to_value(v).map_err(|e| format!("unsupported value: {e}"))
}

fn parse_rule(kind: &str, v: &serde_yaml_ng::Value) -> Result<Rule, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Accepted {
        column: String,
        values: Vec<serde_yaml_ng::Value>,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RangeArgs {
        column: String,
        #[serde(default)]
        min: Option<serde_yaml_ng::Value>,
        #[serde(default)]
        max: Option<serde_yaml_ng::Value>,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RegexArgs {
        column: String,
        pattern: String,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Rel {
        column: String,
        to: String,
        field: String,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Count {
        #[serde(default)]
        min: Option<u64>,
        #[serde(default)]
        max: Option<u64>,
    }
    fn args<T: for<'de> Deserialize<'de>>(
        v: &serde_yaml_ng::Value,
        shape: &str,
    ) -> Result<T, String> {
        serde_yaml_ng::from_value(v.clone()).map_err(|e| format!("{e}; expected {shape}"))
    }
    let rule = match kind {
        "not_null" => Rule::NotNull(columns_of(v)?),
        "unique" => Rule::Unique(columns_of(v)?),
        "accepted_values" => {
            let a: Accepted = args(v, "{ column: NAME, values: [ … ] }")?;
            if a.values.is_empty() {
                return Err("`values` is empty: nothing would be accepted".into());
            }
            Rule::AcceptedValues {
                column: a.column,
                values: a
                    .values
                    .iter()
                    .map(yaml_to_json)
                    .collect::<Result<_, _>>()?,
            }
        }
        "range" => {
            let a: RangeArgs = args(v, "{ column: NAME, min: VALUE, max: VALUE }")?;
            if a.min.is_none() && a.max.is_none() {
                return Err("give `min`, `max` or both".into());
            }
            let min = a.min.as_ref().map(yaml_to_json).transpose()?;
            let max = a.max.as_ref().map(yaml_to_json).transpose()?;
            if let (Some(Json::Number(lo)), Some(Json::Number(hi))) = (&min, &max)
                && lo.as_f64() > hi.as_f64()
            {
                return Err(format!("min {lo} is larger than max {hi}"));
            }
            Rule::Range {
                column: a.column,
                min,
                max,
            }
        }
        "regex" => {
            let a: RegexArgs = args(v, "{ column: NAME, pattern: REGEX }")?;
            Rule::Regex {
                column: a.column,
                pattern: a.pattern,
            }
        }
        "relationships" => {
            let a: Rel = args(v, "{ column: NAME, to: LAYER.TABLE, field: NAME }")?;
            if a.to.split('.').count() != 2 {
                return Err(format!("`to: {}` must be a table as `layer.name`", a.to));
            }
            Rule::Relationships {
                column: a.column,
                to: a.to,
                field: a.field,
            }
        }
        "row_count" => {
            let a: Count = args(v, "{ min: N, max: N }")?;
            match (a.min, a.max) {
                (None, None) => return Err("give `min`, `max` or both".into()),
                (Some(lo), Some(hi)) if lo > hi => {
                    return Err(format!("min {lo} is larger than max {hi}"));
                }
                _ => {}
            }
            Rule::RowCount {
                min: a.min,
                max: a.max,
            }
        }
        "expression" => match v.as_str() {
            Some(s) if !s.trim().is_empty() => Rule::Expression(s.to_string()),
            _ => return Err("expected a SQL boolean expression as a string".into()),
        },
        _ => return Err(format!("unknown rule `{kind}`")),
    };
    Ok(rule)
}

/// The column holding rule `i`'s verdict in the checked relation.
pub(crate) fn pass_column(i: usize) -> String {
    format!("__tributary_pass_{i}")
}

/// SQL of the checked relation: every column of `input` plus one boolean per row rule
/// (`__tributary_pass_<i>`, true = the row passes; NULL verdicts count as passing).
pub(crate) fn checked_sql(input: &str, rules: &[Expectation]) -> String {
    let mut select = vec!["m.*".to_string()];
    let mut joins = Vec::new();
    for (i, e) in rules.iter().enumerate() {
        let pass = match &e.rule {
            Rule::NotNull(cols) => cols
                .iter()
                .map(|c| format!("m.{} IS NOT NULL", quote_ident(c)))
                .collect::<Vec<_>>()
                .join(" AND "),
            Rule::Unique(cols) => {
                let alias = format!("u{i}");
                let keys = cols.iter().map(|c| quote_ident(c)).collect::<Vec<_>>();
                let not_null = keys
                    .iter()
                    .map(|k| format!("{k} IS NOT NULL"))
                    .collect::<Vec<_>>()
                    .join(" AND ");
                let on = keys
                    .iter()
                    .map(|k| format!("m.{k} = {alias}.{k}"))
                    .collect::<Vec<_>>()
                    .join(" AND ");
                joins.push(format!(
                    "LEFT JOIN (SELECT {k}, TRUE AS __dup FROM {input} WHERE {not_null} GROUP BY {k} HAVING COUNT(*) > 1) {alias} ON {on}",
                    k = keys.join(", ")
                ));
                format!("{alias}.__dup IS NULL")
            }
            Rule::AcceptedValues { column, values } => format!(
                "m.{c} IS NULL OR m.{c} IN ({})",
                values
                    .iter()
                    .map(sql_literal)
                    .collect::<Vec<_>>()
                    .join(", "),
                c = quote_ident(column)
            ),
            Rule::Range { column, min, max } => {
                let c = format!("m.{}", quote_ident(column));
                let mut parts = vec![];
                if let Some(lo) = min {
                    parts.push(format!("{c} >= {}", sql_literal(lo)));
                }
                if let Some(hi) = max {
                    parts.push(format!("{c} <= {}", sql_literal(hi)));
                }
                format!("{c} IS NULL OR ({})", parts.join(" AND "))
            }
            Rule::Regex { column, pattern } => format!(
                "m.{c} IS NULL OR regexp_like(CAST(m.{c} AS VARCHAR), {})",
                sql_literal(&Json::String(pattern.clone())),
                c = quote_ident(column)
            ),
            Rule::Relationships { column, to, field } => {
                let alias = format!("r{i}");
                joins.push(format!(
                    "LEFT JOIN (SELECT DISTINCT {f} AS __key FROM {t}) {alias} ON m.{c} = {alias}.__key",
                    f = quote_ident(field),
                    t = quote_table(to),
                    c = quote_ident(column)
                ));
                format!(
                    "m.{} IS NULL OR {alias}.__key IS NOT NULL",
                    quote_ident(column)
                )
            }
            Rule::Expression(sql) => format!("({sql})"),
            Rule::RowCount { .. } => "TRUE".to_string(),
        };
        select.push(format!("COALESCE(({pass}), TRUE) AS {}", pass_column(i)));
    }
    format!(
        "SELECT {} FROM {input} m {}",
        select.join(", "),
        joins.join(" ")
    )
}

/// The outcome of one expectation in one run.
#[derive(Debug, Clone, Serialize)]
pub struct ExpectationResult {
    /// Expectation name.
    pub name: String,
    /// Rule kind.
    pub rule: String,
    /// `warn`, `drop` or `fail`.
    pub on_fail: String,
    /// Rows checked (the result's rows).
    pub checked_rows: u64,
    /// Rows that failed (for `row_count`: 1 when the count is out of bounds).
    pub failed_rows: u64,
    /// Whether the rule passed.
    pub passed: bool,
}

impl ExpectationResult {
    /// Rows that passed.
    pub fn passed_rows(&self) -> u64 {
        self.checked_rows.saturating_sub(self.failed_rows)
    }
}

/// Judge `row_count` rules against the number of rows.
pub(crate) fn row_count_failed(rule: &Rule, rows: u64) -> bool {
    match rule {
        Rule::RowCount { min, max } => {
            min.is_some_and(|lo| rows < lo) || max.is_some_and(|hi| rows > hi)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> ExpectationSpec {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn parses_every_kind() {
        let cases = [
            ("not_null: id", "not_null(id)"),
            ("unique: [a, b]", "unique(a, b)"),
            (
                "accepted_values: {column: s, values: [a, b]}",
                "accepted_values(s)",
            ),
            ("range: {column: x, min: 0}", "range(x)"),
            ("regex: {column: e, pattern: '^a'}", "regex(e)"),
            (
                "relationships: {column: c, to: silver.customers, field: id}",
                "relationships(c -> silver.customers.id)",
            ),
            ("row_count: {min: 1}", "row_count"),
            ("expression: 'a > 0'", "expression(a > 0)"),
        ];
        for (y, name) in cases {
            let e = parse_one(&spec(y)).unwrap();
            assert_eq!(e.name, name);
            assert_eq!(e.on_fail, OnFail::Fail);
        }
    }

    #[test]
    fn rejects_bad_specs_with_the_key() {
        let (k, m) = parse_one(&spec("not_nul: id")).unwrap_err();
        assert_eq!(k, "not_nul");
        assert!(m.contains("not_null"), "{m}");
        let (k, _) = parse_one(&spec("not_null: id\nunique: id")).unwrap_err();
        assert_eq!(k, "unique");
        let (k, m) = parse_one(&spec("row_count: {min: 1}\non_fail: drop")).unwrap_err();
        assert_eq!(k, "on_fail");
        assert!(m.contains("row_count"), "{m}");
        let (k, m) = parse_one(&spec("range: {column: x, min: 5, max: 1}")).unwrap_err();
        assert_eq!(k, "range");
        assert!(m.contains("larger"), "{m}");
        let (k, _) = parse_one(&spec("not_null: id\non_fail: explode")).unwrap_err();
        assert_eq!(k, "on_fail");
        let (k, m) = parse_one(&spec("name: x")).unwrap_err();
        assert_eq!(k, "");
        assert!(m.contains("no rule"), "{m}");
        let (k, m) = parse_one(&spec("accepted_values: {column: s, value: [a]}")).unwrap_err();
        assert_eq!(k, "accepted_values");
        assert!(m.contains("value"), "{m}");
    }

    #[test]
    fn row_count_bounds() {
        let r = Rule::RowCount {
            min: Some(2),
            max: Some(3),
        };
        assert!(row_count_failed(&r, 1));
        assert!(!row_count_failed(&r, 2));
        assert!(row_count_failed(&r, 4));
    }
}
