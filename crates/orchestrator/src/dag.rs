//! The project's DAG: one node per ingestion table, model and pipeline task, with edges from
//! model refs, command targets and `depends_on`; selection (`--select`) and rendering (text, DOT,
//! Mermaid).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

/// Kinds of task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Load a source table into bronze.
    Load,
    /// Build a SQL model.
    Model,
    /// Run a program (its output optionally loaded into a table).
    Command,
    /// Call an HTTP endpoint.
    Http,
}

impl TaskKind {
    /// `load`, `model`, `command` or `http`.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Load => "load",
            TaskKind::Model => "model",
            TaskKind::Command => "command",
            TaskKind::Http => "http",
        }
    }
}

/// One task of the DAG.
#[derive(Debug, Clone, Serialize)]
pub struct TaskNode {
    /// Unique id: a table (`bronze.erp_orders`, `silver.orders`) or a pipeline task's name.
    pub id: String,
    /// What it does.
    pub kind: TaskKind,
    /// Tasks that must succeed first (direct edges).
    pub deps: BTreeSet<String>,
    /// The source connection it uses, for per-connection limits and `--select erp`.
    pub connection: Option<String>,
    /// The table it writes (leased while it runs), if any.
    pub writes: Option<String>,
    /// Retries after the first attempt, for retryable errors.
    pub retries: u32,
    /// Stop after this long.
    #[serde(skip)]
    pub timeout: Option<Duration>,
    /// Shown in `tributary dag`.
    pub description: Option<String>,
    /// Where it is declared (file), for messages.
    pub origin: String,
}

impl TaskNode {
    /// The layer of a table task (`bronze`, `silver`, `gold`), if its id is a table.
    pub fn layer(&self) -> Option<&str> {
        self.writes
            .as_deref()
            .and_then(|t| t.split_once('.'))
            .map(|(l, _)| l)
    }
}

/// A problem in the graph: an unknown dependency or a cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DagProblem {
    /// The file declaring the offending task.
    pub origin: String,
    /// The task.
    pub task: String,
    /// What is wrong.
    pub message: String,
}

/// The DAG.
#[derive(Debug, Clone, Default)]
pub struct Dag {
    nodes: BTreeMap<String, TaskNode>,
    downstream: BTreeMap<String, BTreeSet<String>>,
    /// Topological order (dependencies first; ties by id).
    order: Vec<String>,
}

impl Dag {
    /// Build the graph, checking that every dependency exists and that there is no cycle.
    /// Duplicate ids: the first wins and the rest are problems.
    pub fn new(nodes: Vec<TaskNode>) -> Result<Dag, Vec<DagProblem>> {
        let mut problems = Vec::new();
        let mut map: BTreeMap<String, TaskNode> = BTreeMap::new();
        for n in nodes {
            if let Some(first) = map.get(&n.id) {
                problems.push(DagProblem {
                    origin: n.origin.clone(),
                    task: n.id.clone(),
                    message: format!(
                        "task `{}` is declared twice: in {} and in {}",
                        n.id, first.origin, n.origin
                    ),
                });
                continue;
            }
            map.insert(n.id.clone(), n);
        }
        for n in map.values() {
            for d in &n.deps {
                if !map.contains_key(d) {
                    let hint = did_you_mean(d, map.keys());
                    problems.push(DagProblem {
                        origin: n.origin.clone(),
                        task: n.id.clone(),
                        message: format!("`{}` depends on unknown task `{d}`{hint}", n.id),
                    });
                }
            }
        }
        let mut downstream: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for n in map.values() {
            for d in n.deps.iter().filter(|d| map.contains_key(*d)) {
                downstream
                    .entry(d.clone())
                    .or_default()
                    .insert(n.id.clone());
            }
        }
        // Kahn's algorithm; what is left over lies on or behind a cycle.
        let mut indegree: BTreeMap<&str, usize> = map
            .values()
            .map(|n| {
                (
                    n.id.as_str(),
                    n.deps.iter().filter(|d| map.contains_key(*d)).count(),
                )
            })
            .collect();
        let mut ready: BTreeSet<&str> = indegree
            .iter()
            .filter(|(_, d)| **d == 0)
            .map(|(k, _)| *k)
            .collect();
        let mut order = Vec::new();
        while let Some(id) = ready.pop_first() {
            order.push(id.to_string());
            if let Some(ds) = downstream.get(id) {
                for d in ds {
                    if let Some(c) = indegree.get_mut(d.as_str()) {
                        *c -= 1;
                        if *c == 0 {
                            ready.insert(d.as_str());
                        }
                    }
                }
            }
        }
        if order.len() < map.len() {
            let placed: BTreeSet<&String> = order.iter().collect();
            let left: BTreeSet<&str> = map
                .keys()
                .filter(|k| !placed.contains(k))
                .map(|k| k.as_str())
                .collect();
            let cycle = find_cycle(&map, &left);
            let files: BTreeSet<&str> = cycle
                .iter()
                .filter_map(|t| map.get(*t).map(|n| n.origin.as_str()))
                .collect();
            let first = cycle.first().copied().unwrap_or_default();
            problems.push(DagProblem {
                origin: map.get(first).map(|n| n.origin.clone()).unwrap_or_default(),
                task: first.to_string(),
                message: format!(
                    "dependency cycle: {} → {first} (declared in {})",
                    cycle.join(" → "),
                    files.into_iter().collect::<Vec<_>>().join(", ")
                ),
            });
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Dag {
            nodes: map,
            downstream,
            order,
        })
    }

    /// Every task, in topological order.
    pub fn tasks(&self) -> impl Iterator<Item = &TaskNode> {
        self.order.iter().filter_map(|id| self.nodes.get(id))
    }

    /// A task by id.
    pub fn get(&self, id: &str) -> Option<&TaskNode> {
        self.nodes.get(id)
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the DAG has no task.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Direct downstream tasks.
    pub fn children(&self, id: &str) -> impl Iterator<Item = &String> {
        self.downstream.get(id).into_iter().flatten()
    }

    /// Every task downstream of `id` (not including it).
    pub fn descendants(&self, id: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut queue: VecDeque<&str> = VecDeque::from([id]);
        while let Some(t) = queue.pop_front() {
            for c in self.children(t) {
                if out.insert(c.clone()) {
                    queue.push_back(c);
                }
            }
        }
        out
    }

    /// Every task upstream of `id` (not including it).
    pub fn ancestors(&self, id: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut queue: VecDeque<&str> = VecDeque::from([id]);
        while let Some(t) = queue.pop_front() {
            if let Some(n) = self.nodes.get(t) {
                for d in &n.deps {
                    if out.insert(d.clone()) {
                        queue.push_back(d);
                    }
                }
            }
        }
        out
    }

    /// The tasks picked by `--select` selectors, in topological order. Empty = all. Each
    /// selector is a task id (`bronze.erp_orders`, `export_legacy`), a table's short name
    /// (`erp_orders`), a layer (`silver`), a connection name (its loads), a glob
    /// (`bronze.erp_*`), optionally with `+` before (and everything upstream) and/or after (and
    /// everything downstream). A selector matching nothing is an error naming it.
    pub fn select(&self, selectors: &[String]) -> Result<Vec<String>, String> {
        if selectors.is_empty() {
            return Ok(self.order.clone());
        }
        let mut picked: BTreeSet<String> = BTreeSet::new();
        let mut unmatched = Vec::new();
        for s in selectors {
            let s = s.trim();
            if s.is_empty() {
                continue;
            }
            let up = s.starts_with('+');
            let down = s.ends_with('+') && s.len() > 1;
            let core = s.trim_start_matches('+').trim_end_matches('+');
            let glob = globset::Glob::new(core)
                .map_err(|e| format!("--select {s}: not a valid pattern: {e}"))?
                .compile_matcher();
            let hits: Vec<&TaskNode> = self
                .nodes
                .values()
                .filter(|n| {
                    n.id == core
                        || n.id.split_once('.').map(|(_, name)| name) == Some(core)
                        || n.layer() == Some(core)
                        || n.connection.as_deref() == Some(core)
                        || glob.is_match(&n.id)
                })
                .collect();
            if hits.is_empty() {
                unmatched.push(s.to_string());
                continue;
            }
            for n in hits {
                picked.insert(n.id.clone());
                if up {
                    picked.extend(self.ancestors(&n.id));
                }
                if down {
                    picked.extend(self.descendants(&n.id));
                }
            }
        }
        if !unmatched.is_empty() {
            return Err(format!(
                "--select {} matches no task; `tributary dag` lists them (tables look like bronze.<connection>_<table>, models like silver.<name>)",
                unmatched.join(", ")
            ));
        }
        Ok(self
            .order
            .iter()
            .filter(|id| picked.contains(*id))
            .cloned()
            .collect())
    }

    /// A text rendering: one line per task in topological order, with its kind and inputs.
    pub fn render_text(&self, ids: &[String]) -> String {
        let mut out = String::new();
        let width = ids.iter().map(|i| i.len()).max().unwrap_or(0);
        for id in ids {
            let Some(n) = self.nodes.get(id) else {
                continue;
            };
            let deps: Vec<&str> = n.deps.iter().map(|d| d.as_str()).collect();
            let _ = write!(out, "{id:width$}  {:<7}", n.kind.as_str());
            if !deps.is_empty() {
                let _ = write!(out, "  ← {}", deps.join(", "));
            }
            if let Some(c) = &n.connection {
                let _ = write!(out, "  [{c}]");
            }
            out.push('\n');
        }
        out
    }

    /// Graphviz DOT of the given tasks and the edges between them.
    pub fn render_dot(&self, ids: &[String]) -> String {
        let set: BTreeSet<&String> = ids.iter().collect();
        let mut out =
            String::from("digraph tributary {\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n");
        for id in ids {
            let Some(n) = self.nodes.get(id) else {
                continue;
            };
            let shape = match n.kind {
                TaskKind::Load => "cylinder",
                TaskKind::Model => "box",
                TaskKind::Command => "component",
                TaskKind::Http => "cds",
            };
            let _ = writeln!(out, "  \"{id}\" [shape={shape}];");
        }
        for id in ids {
            if let Some(n) = self.nodes.get(id) {
                for d in n.deps.iter().filter(|d| set.contains(d)) {
                    let _ = writeln!(out, "  \"{d}\" -> \"{id}\";");
                }
            }
        }
        out.push_str("}\n");
        out
    }

    /// A Mermaid flowchart of the given tasks.
    pub fn render_mermaid(&self, ids: &[String]) -> String {
        let set: BTreeSet<&String> = ids.iter().collect();
        let key = |id: &str| id.replace(['.', '-'], "_");
        let mut out = String::from("flowchart LR\n");
        for id in ids {
            let Some(n) = self.nodes.get(id) else {
                continue;
            };
            let k = key(id);
            let _ = match n.kind {
                TaskKind::Load => writeln!(out, "  {k}[(\"{id}\")]"),
                TaskKind::Model => writeln!(out, "  {k}[\"{id}\"]"),
                TaskKind::Command => writeln!(out, "  {k}[[\"{id}\"]]"),
                TaskKind::Http => writeln!(out, "  {k}>\"{id}\"]"),
            };
        }
        for id in ids {
            if let Some(n) = self.nodes.get(id) {
                for d in n.deps.iter().filter(|d| set.contains(d)) {
                    let _ = writeln!(out, "  {} --> {}", key(d), key(id));
                }
            }
        }
        out
    }
}

/// One cycle among `left` (tasks Kahn's algorithm could not place), as a path of ids.
fn find_cycle<'a>(map: &'a BTreeMap<String, TaskNode>, left: &BTreeSet<&'a str>) -> Vec<&'a str> {
    let Some(&start) = left.iter().next() else {
        return Vec::new();
    };
    // Walk dependencies inside `left` until a node repeats: every node left has one.
    let mut path: Vec<&str> = vec![start];
    let mut seen: BTreeMap<&str, usize> = BTreeMap::from([(start, 0)]);
    let mut cur = start;
    loop {
        let next = map
            .get(cur)
            .and_then(|n| n.deps.iter().find(|d| left.contains(d.as_str())))
            .map(|d| d.as_str());
        let Some(next) = next else {
            return path;
        };
        if let Some(&i) = seen.get(next) {
            let mut cycle: Vec<&str> = path[i..].to_vec();
            cycle.reverse();
            return cycle;
        }
        seen.insert(next, path.len());
        path.push(next);
        cur = next;
    }
}

fn did_you_mean<'a>(name: &str, known: impl Iterator<Item = &'a String>) -> String {
    let best = known
        .map(|k| (strsim(name, k), k))
        .filter(|(d, _)| *d <= 3)
        .min_by_key(|(d, _)| *d);
    match best {
        Some((_, k)) => format!("; did you mean `{k}`?"),
        None => String::new(),
    }
}

/// Levenshtein distance.
fn strsim(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j + 1] + 1).min(cur[j] + 1).min(prev[j] + cost));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn node(id: &str, kind: TaskKind, deps: &[&str]) -> TaskNode {
        TaskNode {
            id: id.into(),
            kind,
            deps: deps.iter().map(|s| s.to_string()).collect(),
            connection: (kind == TaskKind::Load).then(|| "erp".to_string()),
            writes: id.contains('.').then(|| id.to_string()),
            retries: 0,
            timeout: None,
            description: None,
            origin: format!("{id}.yaml"),
        }
    }

    fn sample() -> Dag {
        Dag::new(vec![
            node("export", TaskKind::Command, &[]),
            node("bronze.erp_orders", TaskKind::Load, &["export"]),
            node("bronze.erp_customers", TaskKind::Load, &[]),
            node("silver.orders", TaskKind::Model, &["bronze.erp_orders"]),
            node(
                "gold.revenue",
                TaskKind::Model,
                &["silver.orders", "bronze.erp_customers"],
            ),
            node("notify", TaskKind::Http, &["gold.revenue"]),
        ])
        .unwrap()
    }

    #[test]
    fn topological_order_puts_inputs_first() {
        let dag = sample();
        let order: Vec<String> = dag.tasks().map(|t| t.id.clone()).collect();
        let pos = |id: &str| order.iter().position(|o| o == id).unwrap();
        for t in dag.tasks() {
            for d in &t.deps {
                assert!(pos(d) < pos(&t.id), "{d} before {}", t.id);
            }
        }
        assert_eq!(order.len(), 6);
    }

    #[test]
    fn selection_operators() {
        let dag = sample();
        assert_eq!(
            dag.select(&["silver.orders".into()]).unwrap(),
            ["silver.orders"]
        );
        assert_eq!(
            dag.select(&["+silver.orders".into()]).unwrap(),
            ["export", "bronze.erp_orders", "silver.orders"]
        );
        assert_eq!(
            dag.select(&["bronze.erp_orders+".into()]).unwrap(),
            [
                "bronze.erp_orders",
                "silver.orders",
                "gold.revenue",
                "notify"
            ]
        );
        let mut erp = dag.select(&["erp".into()]).unwrap();
        erp.sort();
        assert_eq!(erp, ["bronze.erp_customers", "bronze.erp_orders"]);
        assert_eq!(dag.select(&["gold".into()]).unwrap(), ["gold.revenue"]);
        assert_eq!(dag.select(&["silver.*".into()]).unwrap(), ["silver.orders"]);
        assert_eq!(dag.select(&["orders".into()]).unwrap(), ["silver.orders"]);
        let err = dag.select(&["silver.nope".into()]).unwrap_err();
        assert!(err.contains("silver.nope"), "{err}");
    }

    #[test]
    fn unknown_dependency_and_cycle_are_reported_with_files() {
        let problems = Dag::new(vec![
            node("a", TaskKind::Command, &["silver.orderz"]),
            node("silver.orders", TaskKind::Model, &[]),
        ])
        .unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(problems[0].message.contains("did you mean `silver.orders`"));
        assert_eq!(problems[0].origin, "a.yaml");

        let problems = Dag::new(vec![
            node("a", TaskKind::Command, &["c"]),
            node("b", TaskKind::Command, &["a"]),
            node("c", TaskKind::Command, &["b"]),
            node("d", TaskKind::Command, &["c"]),
        ])
        .unwrap_err();
        assert_eq!(problems.len(), 1);
        let m = &problems[0].message;
        assert!(m.starts_with("dependency cycle:"), "{m}");
        for f in ["a.yaml", "b.yaml", "c.yaml"] {
            assert!(m.contains(f), "{m}");
        }
        assert!(!m.contains("d.yaml"), "{m}");
    }

    #[test]
    fn renderings_name_every_edge() {
        let dag = sample();
        let all = dag.select(&[]).unwrap();
        let dot = dag.render_dot(&all);
        assert!(
            dot.contains("\"silver.orders\" -> \"gold.revenue\";"),
            "{dot}"
        );
        let mermaid = dag.render_mermaid(&all);
        assert!(
            mermaid.contains("silver_orders --> gold_revenue"),
            "{mermaid}"
        );
        let text = dag.render_text(&all);
        assert!(
            text.contains("← silver.orders, bronze.erp_customers")
                || text.contains("← bronze.erp_customers, silver.orders"),
            "{text}"
        );
    }
}
