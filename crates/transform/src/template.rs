//! Rendering model SQL with minijinja: `ref()`, `var()`, `env_var()`, `is_incremental()`,
//! `this`, `target`, and the macros of `macros/*.sql` (callable from every model).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use minijinja::value::Kwargs;
use minijinja::{Environment, Error as JinjaError, ErrorKind, UndefinedBehavior, Value};
use serde_json::Value as Json;
use tributary_core::config::ConfigProblem;

use crate::TransformError;
use crate::model::Model;
use crate::sql::quote_table;

/// Separates the macro files from the model in the text given to the engine.
const MODEL_MARKER: &str = "__TRIBUTARY_MODEL_STARTS_HERE__";

/// The project's macros.
#[derive(Debug, Clone, Default)]
pub struct Macros {
    /// All macro files, concatenated.
    text: String,
    /// Where each file starts in `text` (0-based line) and its path, to map error lines back.
    files: Vec<(usize, PathBuf)>,
    lines: usize,
}

impl Macros {
    /// Read `<root>/macros/*.sql`.
    pub fn load(root: &Path, problems: &mut Vec<ConfigProblem>) -> Macros {
        let dir = root.join("macros");
        let mut m = Macros::default();
        let Ok(rd) = std::fs::read_dir(&dir) else {
            return m;
        };
        let mut paths: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("sql"))
            .collect();
        paths.sort();
        for p in paths {
            let rel = p.strip_prefix(root).unwrap_or(&p).to_path_buf();
            match std::fs::read_to_string(&p) {
                Ok(t) => {
                    m.files.push((m.lines, rel));
                    m.text.push_str(&t);
                    if !t.ends_with('\n') {
                        m.text.push('\n');
                    }
                    m.lines = m.text.matches('\n').count();
                }
                Err(e) => problems.push(ConfigProblem {
                    file: rel,
                    line: None,
                    key: String::new(),
                    message: format!("cannot read: {e}"),
                }),
            }
        }
        m
    }

    /// Each macro's name and definition (`{% macro name(…) %}` up to its `endmacro`).
    pub fn definitions(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut rest = self.text.as_str();
        while let Some(open) = rest.find("{%") {
            let after = &rest[open + 2..];
            let tag = after.trim_start_matches('-').trim_start();
            match tag.strip_prefix("macro") {
                Some(def) if def.starts_with(char::is_whitespace) => {
                    let def = def.trim_start();
                    let name: String = def
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    let end = def.find("endmacro").unwrap_or(def.len());
                    if !name.is_empty() {
                        out.insert(name, def[..end].to_string());
                    }
                    rest = &def[end..];
                }
                _ => rest = after,
            }
        }
        out
    }

    /// Map a line of the combined text to (file, line in that file).
    fn locate(&self, line: usize, model_file: &Path) -> (PathBuf, usize) {
        if line > self.lines + 1 {
            return (model_file.to_path_buf(), line - self.lines - 1);
        }
        let mut best = (model_file.to_path_buf(), line);
        for (start, file) in &self.files {
            if line > *start {
                best = (file.clone(), line - start);
            }
        }
        best
    }
}

/// Renders a ref: (table id, `full=true` asked) → SQL.
pub type RefSql = Arc<dyn Fn(&str, bool) -> String + Send + Sync>;
/// Looks up an environment variable.
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// How one model is rendered.
#[derive(Clone)]
pub struct RenderContext {
    /// Project (and target) variables for `var()`.
    pub vars: BTreeMap<String, Json>,
    /// The target (environment) name, for `target`.
    pub target: String,
    /// What `is_incremental()` returns.
    pub is_incremental: bool,
    /// Every table a ref may name (`layer.name`).
    pub known: BTreeSet<String>,
    /// What a ref renders to, by table id and whether `full=true` was asked; default: the
    /// quoted table name.
    pub ref_sql: Option<RefSql>,
    /// Environment lookup for `env_var()`.
    pub env: EnvLookup,
}

impl RenderContext {
    /// A context with no variables, not incremental, reading the process environment.
    pub fn new(known: BTreeSet<String>) -> RenderContext {
        RenderContext {
            vars: BTreeMap::new(),
            target: "default".into(),
            is_incremental: false,
            known,
            ref_sql: None,
            env: Arc::new(|k| std::env::var(k).ok()),
        }
    }
}

/// A rendered model.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The SQL, same line numbers as the model file.
    pub sql: String,
    /// Tables referenced with `ref()`, with whether each asked for `full=true`.
    pub refs: BTreeMap<String, bool>,
}

/// Resolve a ref argument to a table id: `layer.name`, or a bare `name` that is unique.
pub fn resolve_ref(arg: &str, known: &BTreeSet<String>) -> Result<String, String> {
    if arg.contains('.') {
        if known.contains(arg) {
            return Ok(arg.to_string());
        }
        return Err(format!(
            "ref('{arg}'): no such table; it is neither loaded by ingest/*.yaml nor built by a model{}",
            suggestion(arg, known)
        ));
    }
    let matches: Vec<&String> = known
        .iter()
        .filter(|k| k.split_once('.').map(|(_, n)| n) == Some(arg))
        .collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(format!(
            "ref('{arg}'): no such table{}",
            suggestion(arg, known)
        )),
        many => Err(format!(
            "ref('{arg}') is ambiguous: {}; write it as layer.name",
            many.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn suggestion(arg: &str, known: &BTreeSet<String>) -> String {
    let short = arg.rsplit('.').next().unwrap_or(arg);
    let close: Vec<&String> = known
        .iter()
        .filter(|k| {
            let n = k.rsplit('.').next().unwrap_or(k);
            n.contains(short) || short.contains(n)
        })
        .take(3)
        .collect();
    if close.is_empty() {
        String::new()
    } else {
        format!(
            " (did you mean {}?)",
            close
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// Render `model` with `ctx`.
pub fn render(
    model: &Model,
    macros: &Macros,
    ctx: &RenderContext,
) -> Result<Rendered, TransformError> {
    let refs: Arc<Mutex<BTreeMap<String, bool>>> = Arc::new(Mutex::new(BTreeMap::new()));
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);

    let known = ctx.known.clone();
    let ref_sql = ctx.ref_sql.clone();
    let seen = refs.clone();
    env.add_function(
        "ref",
        move |name: String, kwargs: Kwargs| -> Result<String, JinjaError> {
            let full: Option<bool> = kwargs.get("full")?;
            kwargs.assert_all_used()?;
            let id = resolve_ref(&name, &known)
                .map_err(|m| JinjaError::new(ErrorKind::InvalidOperation, m))?;
            let full = full.unwrap_or(false);
            if let Ok(mut s) = seen.lock() {
                let entry = s.entry(id.clone()).or_insert(full);
                *entry = *entry && full;
            }
            Ok(match &ref_sql {
                Some(f) => f(&id, full),
                None => quote_table(&id),
            })
        },
    );
    let vars = ctx.vars.clone();
    env.add_function("var", move |name: String, default: Option<Value>| -> Result<Value, JinjaError> {
        match vars.get(&name) {
            Some(v) => Ok(Value::from_serialize(v)),
            None => default.ok_or_else(|| {
                JinjaError::new(
                    ErrorKind::InvalidOperation,
                    format!("var('{name}') is not set; define it under `vars:` in tributary.yaml (or the target), or give a default: var('{name}', 'value')"),
                )
            }),
        }
    });
    let lookup = ctx.env.clone();
    env.add_function("env_var", move |name: String, default: Option<String>| -> Result<String, JinjaError> {
        match lookup(&name).or(default) {
            Some(v) => Ok(v),
            None => Err(JinjaError::new(
                ErrorKind::InvalidOperation,
                format!("env_var('{name}'): the environment variable is not set and no default was given"),
            )),
        }
    });
    let incremental = ctx.is_incremental;
    env.add_function("is_incremental", move || incremental);
    env.add_global("this", quote_table(&model.id()));
    env.add_global("target", ctx.target.clone());

    let source = format!("{}{MODEL_MARKER}\n{}", macros.text, model.template);
    let file = model.file.clone();
    let template_error = |e: &JinjaError| {
        let (file, line) = match e.line() {
            Some(l) => {
                let (f, l) = macros.locate(l, &file);
                (f, Some(l))
            }
            None => (file.clone(), None),
        };
        let mut message = e.kind().to_string();
        if let Some(d) = e.detail() {
            message = format!("{message}: {d}");
        }
        TransformError::Template {
            file,
            line,
            message,
        }
    };
    let name = model.file.to_string_lossy().into_owned();
    let tmpl = env
        .template_from_named_str(&name, &source)
        .map_err(|e| template_error(&e))?;
    let out = tmpl.render(()).map_err(|e| template_error(&e))?;
    let sql = match out.find(MODEL_MARKER) {
        Some(i) => out[i + MODEL_MARKER.len()..]
            .strip_prefix('\n')
            .unwrap_or(&out[i + MODEL_MARKER.len()..])
            .to_string(),
        None => out,
    };
    let refs = refs.lock().map(|r| r.clone()).unwrap_or_default();
    Ok(Rendered { sql, refs })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelConfig;

    fn model(sql: &str) -> Model {
        Model {
            layer: "silver".into(),
            name: "orders".into(),
            file: PathBuf::from("models/silver/orders.sql"),
            config_file: PathBuf::from("models/silver/orders.sql"),
            template: sql.into(),
            config: ModelConfig::default(),
            expectations: vec![],
        }
    }

    fn known() -> BTreeSet<String> {
        [
            "bronze.erp_orders",
            "bronze.erp_customers",
            "silver.customers",
        ]
        .into_iter()
        .map(String::from)
        .collect()
    }

    #[test]
    fn refs_vars_macros() {
        let mut ctx = RenderContext::new(known());
        ctx.vars.insert("min_total".into(), serde_json::json!(10));
        let macros = Macros {
            text: "{% macro cents(c) %}({{ c }} * 100){% endmacro %}\n".into(),
            files: vec![(0, PathBuf::from("macros/m.sql"))],
            lines: 1,
        };
        let r = render(
            &model("SELECT {{ cents('total') }} FROM {{ ref('erp_orders') }} o\nJOIN {{ ref('silver.customers', full=true) }} c ON true\nWHERE total > {{ var('min_total') }}"),
            &macros,
            &ctx,
        )
        .unwrap();
        assert_eq!(
            r.sql,
            "SELECT (total * 100) FROM \"bronze\".\"erp_orders\" o\nJOIN \"silver\".\"customers\" c ON true\nWHERE total > 10"
        );
        assert_eq!(r.refs.get("bronze.erp_orders"), Some(&false));
        assert_eq!(r.refs.get("silver.customers"), Some(&true));
    }

    #[test]
    fn unknown_ref_and_var_name_the_line() {
        let ctx = RenderContext::new(known());
        let err = render(
            &model("SELECT 1\nFROM {{ ref('bronze.nope') }}"),
            &Macros::default(),
            &ctx,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("models/silver/orders.sql:2"), "{err}");
        assert!(err.contains("bronze.nope"), "{err}");
        let err = render(&model("SELECT {{ var('x') }}"), &Macros::default(), &ctx)
            .unwrap_err()
            .to_string();
        assert!(err.contains("var('x') is not set"), "{err}");
    }

    #[test]
    fn ambiguous_short_ref() {
        let mut k = known();
        k.insert("gold.customers".into());
        let err = resolve_ref("customers", &k).unwrap_err();
        assert!(err.contains("ambiguous"), "{err}");
    }
}
