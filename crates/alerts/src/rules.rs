//! Evaluating each rule kind into findings: the run-based rules against one run's records, the
//! timed ones (freshness, tasks still running) against the lake and the running runs.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tributary_core::alerts::{RuleConfig, RuleKind};
use tributary_lake::Lake;
use tributary_orchestrator::state::{RunDetail, RunFilter, RunStatus, StateStore, TaskStatus};

/// A finding of one rule: fire, or the condition is fine (resolve if firing).
#[derive(Clone)]
pub(crate) struct Finding {
    pub(crate) rule: String,
    pub(crate) subject: String,
    pub(crate) class: String,
    pub(crate) task: Option<String>,
    pub(crate) run_id: Option<String>,
    pub(crate) error: Option<String>,
    pub(crate) title: String,
    pub(crate) facts: Vec<(String, String)>,
    pub(crate) breach: bool,
}

impl Finding {
    /// The dedup key, `rule|subject|class`.
    pub(crate) fn key(&self) -> String {
        format!("{}|{}|{}", self.rule, self.subject, self.class)
    }
}

/// What the rules are evaluated against, borrowed from the engine.
pub(crate) struct RuleInputs<'a> {
    /// Run history (row-count averages, running runs).
    pub(crate) store: &'a StateStore,
    /// The lake, for freshness rules (none: freshness rules are not checked).
    pub(crate) lake: Option<&'a Lake>,
    /// For `task_failed` / `run_failed` rules with `select`: the task ids it selects.
    pub(crate) selections: &'a BTreeMap<String, BTreeSet<String>>,
}

impl RuleInputs<'_> {
    fn selected(&self, rule: &str, task: &str) -> bool {
        self.selections
            .get(rule)
            .is_none_or(|ids| ids.contains(task))
    }

    /// The findings of rule `name` for the run `d` (failures, expectations, row counts,
    /// durations; nothing for freshness rules).
    pub(crate) async fn evaluate_run(
        &self,
        name: &str,
        rule: &RuleConfig,
        d: &RunDetail,
    ) -> Result<Vec<Finding>, String> {
        let run = &d.run.run;
        let run_id = run.run_id.clone();
        let mut out = Vec::new();
        let finding = |subject: &str, class: &str, breach: bool| Finding {
            rule: name.to_string(),
            subject: subject.to_string(),
            class: class.to_string(),
            task: None,
            run_id: Some(run_id.clone()),
            error: None,
            title: String::new(),
            facts: Vec::new(),
            breach,
        };
        match rule.when {
            RuleKind::TaskFailed => {
                for t in d.tasks.iter().filter(|t| self.selected(name, &t.task_id)) {
                    match t.status {
                        TaskStatus::Failed => {
                            let class = t.error_class.clone().unwrap_or_else(|| "task".into());
                            out.push(Finding {
                                task: Some(t.task_id.clone()),
                                error: t.error.clone(),
                                title: format!("task {} failed ({class})", t.task_id),
                                facts: vec![("Attempts".into(), t.attempts.to_string())],
                                ..finding(&t.task_id, &class, true)
                            });
                        }
                        // Recovery of every class this task was firing with.
                        TaskStatus::Succeeded => out.push(Finding {
                            task: Some(t.task_id.clone()),
                            title: format!("task {} succeeded again", t.task_id),
                            ..finding(&t.task_id, "*", false)
                        }),
                        _ => {}
                    }
                }
            }
            RuleKind::RunFailed => {
                let matches = !self.selections.contains_key(name)
                    || d.tasks.iter().any(|t| self.selected(name, &t.task_id));
                let subject = format!("run {}", run.trigger);
                if matches {
                    match run.status {
                        RunStatus::Failed => {
                            let failed: Vec<String> = d
                                .tasks
                                .iter()
                                .filter(|t| t.status == TaskStatus::Failed)
                                .map(|t| {
                                    format!(
                                        "{} ({}): {}",
                                        t.task_id,
                                        t.error_class.as_deref().unwrap_or("task"),
                                        t.error.as_deref().unwrap_or("")
                                    )
                                })
                                .collect();
                            out.push(Finding {
                                error: Some(
                                    [run.error.clone().unwrap_or_default()]
                                        .into_iter()
                                        .chain(failed)
                                        .collect::<Vec<_>>()
                                        .join("\n"),
                                ),
                                title: format!("run {} ({}) failed", run.run_id, run.trigger),
                                facts: vec![
                                    ("Trigger".into(), run.trigger.clone()),
                                    ("Tasks".into(), d.run.tasks.to_string()),
                                    ("Failed tasks".into(), d.run.failed.to_string()),
                                ],
                                ..finding(&subject, "failed", true)
                            });
                        }
                        RunStatus::Succeeded => out.push(Finding {
                            title: format!("{subject} succeeded again"),
                            ..finding(&subject, "failed", false)
                        }),
                        _ => {}
                    }
                }
            }
            RuleKind::ExpectationFailed => {
                let min = rule.min_failed_rows.unwrap_or(1);
                for e in d
                    .expectations
                    .iter()
                    .filter(|e| rule.model.as_ref().is_none_or(|m| *m == e.model))
                {
                    let class = format!("expectation:{}", e.expectation);
                    let breach = e.failed_rows >= min;
                    out.push(Finding {
                        task: Some(e.model.clone()),
                        error: breach.then(|| {
                            format!(
                                "{} of {} rows broke `{}` (on_fail: {})",
                                e.failed_rows, e.checked_rows, e.rule, e.on_fail
                            )
                        }),
                        title: if breach {
                            format!(
                                "expectation {} of {} failed on {} rows",
                                e.expectation, e.model, e.failed_rows
                            )
                        } else {
                            format!("expectation {} of {} passes again", e.expectation, e.model)
                        },
                        facts: vec![
                            ("Failed rows".into(), e.failed_rows.to_string()),
                            ("Checked rows".into(), e.checked_rows.to_string()),
                            ("Threshold".into(), min.to_string()),
                        ],
                        ..finding(&e.model, &class, breach)
                    });
                }
            }
            RuleKind::RowCountAnomaly => {
                let fraction = rule.below_fraction.unwrap_or(0.5);
                let over = rule.over_runs.unwrap_or(7).max(1) as usize;
                let needed = over.min(3);
                for t in d.tasks.iter().filter(|t| {
                    t.status == TaskStatus::Succeeded
                        && t.rows.is_some()
                        && rule.table.as_ref().is_none_or(|x| *x == t.task_id)
                }) {
                    let rows = t.rows.unwrap_or(0);
                    let history = self
                        .store
                        .task_history(&t.task_id, over + 8)
                        .await
                        .map_err(|e| e.to_string())?;
                    let earlier: Vec<u64> = history
                        .iter()
                        .filter(|h| h.run_id != run_id && h.status == TaskStatus::Succeeded)
                        .filter_map(|h| h.rows)
                        .take(over)
                        .collect();
                    if earlier.len() < needed {
                        continue;
                    }
                    let average = earlier.iter().sum::<u64>() as f64 / earlier.len() as f64;
                    let breach = (rows as f64) < fraction * average;
                    out.push(Finding {
                        task: Some(t.task_id.clone()),
                        error: breach.then(|| {
                            format!(
                                "{} wrote {rows} rows, below {:.0}% of its average of {average:.1} over the last {} successful runs",
                                t.task_id,
                                fraction * 100.0,
                                earlier.len()
                            )
                        }),
                        title: if breach {
                            format!("{} wrote only {rows} rows", t.task_id)
                        } else {
                            format!("{} row count is back to normal", t.task_id)
                        },
                        facts: vec![
                            ("Rows".into(), rows.to_string()),
                            ("Average".into(), format!("{average:.1}")),
                            ("Runs averaged".into(), earlier.len().to_string()),
                        ],
                        ..finding(&t.task_id, "row_count", breach)
                    });
                }
            }
            RuleKind::TaskDuration => {
                let max = rule.max.map(|m| m.std()).unwrap_or(Duration::MAX);
                let max_text = rule.max.map(|m| m.to_string()).unwrap_or_default();
                for t in d
                    .tasks
                    .iter()
                    .filter(|t| rule.task.as_ref().is_none_or(|x| *x == t.task_id))
                {
                    let (Some(start), Some(end)) = (t.started_at, t.finished_at) else {
                        continue;
                    };
                    let took = (end - start).to_std().unwrap_or_default();
                    let breach = took > max;
                    if !breach && t.status != TaskStatus::Succeeded {
                        continue;
                    }
                    out.push(duration_finding(
                        finding(&t.task_id, "duration", breach),
                        &t.task_id,
                        took,
                        max,
                        &max_text,
                        false,
                    ));
                }
            }
            RuleKind::Freshness => {}
        }
        Ok(out)
    }

    /// Rule `name` (freshness): whether its table is older than `max_age` at `now`.
    pub(crate) async fn check_freshness(
        &self,
        name: &str,
        rule: &RuleConfig,
        now: DateTime<Utc>,
    ) -> Result<Vec<Finding>, String> {
        let (Some(lake), Some(table), Some(max_age)) = (self.lake, &rule.table, &rule.max_age)
        else {
            return Ok(Vec::new());
        };
        let max = max_age.std();
        let Some((layer, tname)) = table.split_once('.') else {
            return Ok(Vec::new());
        };
        let committed = match lake.open(layer, tname).await.map_err(|e| e.to_string())? {
            None => None,
            Some(t) => tributary_lake::table_info(layer, tname, &t)
                .map_err(|e| e.to_string())?
                .committed_at_ms
                .and_then(DateTime::<Utc>::from_timestamp_millis),
        };
        let age = committed.map(|c| (now - c).to_std().unwrap_or_default());
        let breach = age.is_none_or(|a| a > max);
        let error = match (committed, age) {
            (None, _) => format!("{table} has never been loaded"),
            (Some(c), Some(a)) => format!(
                "{table} was last loaded {} ago ({}), more than {max_age}",
                human(a),
                c.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            _ => String::new(),
        };
        Ok(vec![Finding {
            rule: name.to_string(),
            subject: table.clone(),
            class: "stale".into(),
            task: None,
            run_id: None,
            error: breach.then_some(error),
            title: if breach {
                format!("{table} is stale (older than {max_age})")
            } else {
                format!("{table} is fresh again")
            },
            facts: vec![
                ("Table".into(), table.clone()),
                (
                    "Age".into(),
                    age.map(human).unwrap_or_else(|| "never loaded".into()),
                ),
                ("Max age".into(), max_age.to_string()),
            ],
            breach,
        }])
    }

    /// Rule `name` (task duration): the tasks of running runs that have run longer than `max` at
    /// `now`.
    pub(crate) async fn check_running(
        &self,
        name: &str,
        rule: &RuleConfig,
        now: DateTime<Utc>,
    ) -> Result<Vec<Finding>, String> {
        let Some(max_setting) = rule.max else {
            return Ok(Vec::new());
        };
        let max = max_setting.std();
        let max_text = max_setting.to_string();
        let running = self
            .store
            .list_runs(&RunFilter {
                limit: 0,
                status: Some(RunStatus::Running),
                task: rule.task.clone(),
                trigger: None,
            })
            .await
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for r in running {
            let Some(d) = self
                .store
                .get_run(&r.run.run_id)
                .await
                .map_err(|e| e.to_string())?
            else {
                continue;
            };
            for t in d.tasks.iter().filter(|t| {
                t.status == TaskStatus::Running
                    && rule.task.as_ref().is_none_or(|x| *x == t.task_id)
            }) {
                let Some(start) = t.started_at else { continue };
                let took = (now - start).to_std().unwrap_or_default();
                if took > max {
                    out.push(duration_finding(
                        Finding {
                            rule: name.to_string(),
                            subject: t.task_id.clone(),
                            class: "duration".into(),
                            task: None,
                            run_id: Some(r.run.run_id.clone()),
                            error: None,
                            title: String::new(),
                            facts: Vec::new(),
                            breach: true,
                        },
                        &t.task_id,
                        took,
                        max,
                        &max_text,
                        true,
                    ));
                }
            }
        }
        Ok(out)
    }
}

fn duration_finding(
    base: Finding,
    task: &str,
    took: Duration,
    max: Duration,
    max_text: &str,
    running: bool,
) -> Finding {
    let breach = took > max;
    let verb = if running { "has been running" } else { "ran" };
    Finding {
        task: Some(task.to_string()),
        error: breach.then(|| format!("{task} {verb} for {}, longer than {max_text}", human(took))),
        title: if breach {
            format!("{task} {verb} longer than {max_text}")
        } else {
            format!("{task} finished within {max_text} again")
        },
        facts: vec![
            ("Duration".into(), human(took)),
            ("Limit".into(), max_text.to_string()),
        ],
        ..base
    }
}

/// `3h 2m`, `45s`.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86400, (s % 86400) / 3600),
    }
}
