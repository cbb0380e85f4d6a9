//! The models of a project as a dependency graph: discovery, rendering for refs, SQL syntax
//! checks, unknown refs, name clashes and cycles — every problem collected for `validate`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use deltalake::datafusion::sql::parser::{DFParser, Statement as DFStatement};
use deltalake::datafusion::sql::sqlparser::ast::Statement;
use serde_json::Value as Json;
use tributary_core::config::ConfigProblem;

use crate::TransformError;
use crate::expect::Rule;
use crate::model::{Model, discover};
use crate::sql::error_position;
use crate::template::{Macros, RenderContext, render};

/// The project's models, in dependency order.
#[derive(Debug, Clone)]
pub struct Models {
    /// Models sorted so that every model comes after the models it reads.
    pub models: Vec<Model>,
    /// Macros available to every model.
    pub macros: Macros,
    /// For each model id, the tables it reads (models, ingest targets or other lake tables).
    pub upstream: BTreeMap<String, BTreeSet<String>>,
    /// Tables loaded by ingestion (`bronze.erp_orders`, …).
    pub sources: BTreeSet<String>,
    /// Project variables for `var()`.
    pub vars: BTreeMap<String, Json>,
    /// Target name for `target`.
    pub target: String,
}

impl Models {
    /// Discover and check the models under `root`. `sources` are the tables ingestion loads.
    pub fn load(
        root: &Path,
        sources: BTreeSet<String>,
        vars: BTreeMap<String, Json>,
        target: Option<&str>,
    ) -> Result<Models, Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let macros = Macros::load(root, &mut problems);
        let found = discover(root, &mut problems);
        let mut known = sources.clone();
        for m in &found {
            if sources.contains(&m.id()) {
                problems.push(ConfigProblem {
                    file: m.file.clone(),
                    line: None,
                    key: String::new(),
                    message: format!(
                        "{} is both loaded by ingestion and built by this model; rename one (ingest `target:` or the model file)",
                        m.id()
                    ),
                });
            }
            known.insert(m.id());
        }
        let mut ctx = RenderContext::new(known.clone());
        ctx.vars = vars.clone();
        ctx.target = target.unwrap_or("default").to_string();
        let mut upstream: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for m in &found {
            let mut refs = BTreeSet::new();
            for incremental in [false, true] {
                let mut c = ctx.clone();
                c.is_incremental = incremental;
                match render(m, &macros, &c) {
                    Ok(r) => {
                        if !incremental && let Err(p) = check_sql(m, &r.sql) {
                            problems.push(p);
                        }
                        refs.extend(r.refs.into_keys());
                    }
                    Err(e) => {
                        problems.push(e.into_problem());
                        break;
                    }
                }
            }
            for e in &m.expectations {
                if let Rule::Relationships { to, .. } = &e.rule {
                    if known.contains(to) {
                        refs.insert(to.clone());
                    } else {
                        problems.push(ConfigProblem {
                            file: m.config_file.clone(),
                            line: None,
                            key: "expectations".into(),
                            message: format!(
                                "expectation `{}` refers to {to}, which no ingest file or model produces",
                                e.name
                            ),
                        });
                    }
                }
            }
            refs.remove(&m.id());
            upstream.insert(m.id(), refs);
        }
        let order = match topo_order(&found, &upstream) {
            Ok(o) => o,
            Err(p) => {
                problems.push(p);
                Vec::new()
            }
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut by_id: BTreeMap<String, Model> = found.into_iter().map(|m| (m.id(), m)).collect();
        let models = order.iter().filter_map(|id| by_id.remove(id)).collect();
        Ok(Models {
            models,
            macros,
            upstream,
            sources,
            vars,
            target: target.unwrap_or("default").to_string(),
        })
    }

    /// The tables model `id` reads, comma-separated (empty when none).
    pub fn upstream_list(&self, id: &str) -> String {
        self.upstream
            .get(id)
            .map(|u| u.iter().cloned().collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    }

    /// The model with this id.
    pub fn get(&self, id: &str) -> Option<&Model> {
        self.models.iter().find(|m| m.id() == id)
    }

    /// Every table id a ref may name.
    pub fn known(&self) -> BTreeSet<String> {
        let mut k = self.sources.clone();
        k.extend(self.models.iter().map(Model::id));
        k
    }

    /// A render context for this project.
    pub fn render_context(&self) -> RenderContext {
        let mut ctx = RenderContext::new(self.known());
        ctx.vars = self.vars.clone();
        ctx.target = self.target.clone();
        ctx
    }

    /// The tables an incremental run of `model` reads only the new rows of: its `ref()`s
    /// without `full=true`, as an incremental run renders it.
    pub fn incremental_reads(&self, model: &Model) -> Result<BTreeSet<String>, TransformError> {
        let mut ctx = self.render_context();
        ctx.is_incremental = true;
        let rendered = crate::template::render(model, &self.macros, &ctx)?;
        Ok(rendered
            .refs
            .into_iter()
            .filter(|(_, full)| !full)
            .map(|(id, _)| id)
            .collect())
    }

    /// Models downstream of `id` (transitively), in dependency order.
    pub fn downstream(&self, id: &str) -> Vec<String> {
        let mut out: BTreeSet<String> = BTreeSet::new();
        let mut frontier = vec![id.to_string()];
        while let Some(cur) = frontier.pop() {
            for (m, ups) in &self.upstream {
                if ups.contains(&cur) && out.insert(m.clone()) {
                    frontier.push(m.clone());
                }
            }
        }
        self.models
            .iter()
            .map(Model::id)
            .filter(|m| out.contains(m))
            .collect()
    }

    /// Tables upstream of `id` (transitively), including sources.
    pub fn ancestors(&self, id: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut frontier = vec![id.to_string()];
        while let Some(cur) = frontier.pop() {
            if let Some(ups) = self.upstream.get(&cur) {
                for u in ups {
                    if out.insert(u.clone()) {
                        frontier.push(u.clone());
                    }
                }
            }
        }
        out
    }
}

/// Parse the rendered SQL: exactly one query.
fn check_sql(m: &Model, sql: &str) -> Result<(), ConfigProblem> {
    let problem = |line: Option<usize>, message: String| ConfigProblem {
        file: m.file.clone(),
        line,
        key: String::new(),
        message,
    };
    let statements = DFParser::parse_sql(sql).map_err(|e| {
        let msg = e.to_string();
        match error_position(&msg) {
            Some((line, col)) => problem(Some(line), format!("column {col}: {msg}")),
            None => problem(None, msg),
        }
    })?;
    if statements.len() != 1 {
        return Err(problem(
            None,
            format!(
                "a model is one SELECT statement; found {} statements",
                statements.len()
            ),
        ));
    }
    match statements.front() {
        Some(DFStatement::Statement(s)) if matches!(s.as_ref(), Statement::Query(_)) => Ok(()),
        _ => Err(problem(
            None,
            "a model is a SELECT (or WITH … SELECT) query; other statements are not allowed".into(),
        )),
    }
}

/// Order models so that dependencies come first; a cycle is a problem naming every file in it.
fn topo_order(
    models: &[Model],
    upstream: &BTreeMap<String, BTreeSet<String>>,
) -> Result<Vec<String>, ConfigProblem> {
    let files: BTreeMap<String, &Model> = models.iter().map(|m| (m.id(), m)).collect();
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    let mut marks: BTreeMap<String, Mark> = BTreeMap::new();
    let mut order = Vec::new();
    fn visit(
        id: &str,
        files: &BTreeMap<String, &Model>,
        upstream: &BTreeMap<String, BTreeSet<String>>,
        marks: &mut BTreeMap<String, Mark>,
        stack: &mut Vec<String>,
        order: &mut Vec<String>,
    ) -> Result<(), Vec<String>> {
        match marks.get(id) {
            Some(Mark::Done) => return Ok(()),
            Some(Mark::Visiting) => {
                let start = stack.iter().position(|s| s == id).unwrap_or(0);
                let mut cycle: Vec<String> = stack[start..].to_vec();
                cycle.push(id.to_string());
                return Err(cycle);
            }
            None => {}
        }
        marks.insert(id.to_string(), Mark::Visiting);
        stack.push(id.to_string());
        if let Some(ups) = upstream.get(id) {
            for u in ups {
                if files.contains_key(u) {
                    visit(u, files, upstream, marks, stack, order)?;
                }
            }
        }
        stack.pop();
        marks.insert(id.to_string(), Mark::Done);
        order.push(id.to_string());
        Ok(())
    }
    for id in files.keys() {
        let mut stack = Vec::new();
        if let Err(cycle) = visit(id, &files, upstream, &mut marks, &mut stack, &mut order) {
            let described: Vec<String> = cycle
                .iter()
                .map(|c| match files.get(c) {
                    Some(m) => format!("{c} ({})", m.file.display()),
                    None => c.clone(),
                })
                .collect();
            let first = cycle
                .first()
                .and_then(|c| files.get(c))
                .map(|m| m.file.clone())
                .unwrap_or_default();
            return Err(ConfigProblem {
                file: first,
                line: None,
                key: String::new(),
                message: format!(
                    "models depend on each other in a cycle: {}; break it by removing one ref",
                    described.join(" -> ")
                ),
            });
        }
    }
    Ok(order)
}

impl TransformError {
    /// As a configuration problem (for `validate`).
    pub fn into_problem(self) -> ConfigProblem {
        match self {
            TransformError::Template {
                file,
                line,
                message,
            } => ConfigProblem {
                file,
                line,
                key: String::new(),
                message,
            },
            other => ConfigProblem {
                file: Default::default(),
                line: None,
                key: String::new(),
                message: other.to_string(),
            },
        }
    }
}
