//! One function per command.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use tributary_core::Project;
use tributary_orchestrator::exec::{TaskOutcome, TaskState};
use tributary_orchestrator::run::{
    LoadRun, ModelRun, Prepared, RunEnv, RunPlan, RunRequest, RunResult, build_dag, load_models,
};
use tributary_orchestrator::state::{RunFilter, RunStatus, StateStore};

use crate::args::{Command, DagFormat, QueryFormat};
use crate::models::print_summary;
use crate::output::{human_bytes, text_table, thousands};
use crate::progress::Bars;
use crate::project::{Failure, ProjectRef, open_lake};
use tributary_demo as demo;

/// Rows shown by `query --format table` before it asks for csv/json.
const MAX_TABLE_ROWS: usize = 1000;

/// ` (target NAME)` when a target is selected, for output headers.
fn target_note(project: &Project) -> String {
    match &project.target {
        Some(t) => format!(" (target {t})"),
        None => String::new(),
    }
}

pub async fn dispatch(
    command: Command,
    project: ProjectRef,
    progress: bool,
) -> Result<(), Failure> {
    match command {
        Command::Init { dir, demo } => init(&dir, demo),
        Command::Demo { dir, advance } => {
            let dir = dir.unwrap_or_else(|| demo_dir_default(&project.dir));
            run_demo(&project.at(&dir), advance, progress).await
        }
        Command::Validate { connections } => validate(&project, connections).await,
        Command::Run {
            select,
            full_refresh,
            parallel,
            fail_fast,
            resume,
            from,
            to,
        } => {
            let req = RunRequest {
                selectors: select,
                full_refresh,
                parallel,
                fail_fast,
                resume,
                trigger: String::new(),
                backfill: from.map(|from| tributary_core::Backfill {
                    from: Some(from),
                    to,
                }),
            };
            run(&project, &req, progress).await.map(|_| ())
        }
        Command::Dag { select, format } => dag(&project, &select, format),
        Command::Runs {
            show,
            status,
            task,
            limit,
        } => match show {
            Some(crate::args::RunsCommand::Show { run_id }) => runs_show(&project, &run_id).await,
            None => runs_list(&project, status.as_deref(), task, limit).await,
        },
        Command::Serve { bind } => crate::serve::serve(&project, bind.as_deref()).await,
        Command::Alerts {
            command: crate::args::AlertsCommand::Test { channel },
        } => crate::alerting::test(&project, channel.as_deref()).await,
        Command::Test { filter } => test(&project, filter.as_deref()).await,
        Command::Query { sql, format } => query(&project, &sql, format).await,
        Command::Tables => tables(&project).await,
        Command::Maintain {
            select,
            retention_hours,
            force,
            dry_run,
            target_file_mb,
            zorder_by,
        } => {
            let options = tributary_lake::MaintainOptions {
                target_file_bytes: target_file_mb.saturating_mul(1024 * 1024),
                retention_hours,
                force,
                dry_run,
                zorder_by: zorder_by
                    .into_iter()
                    .map(|c| c.trim().to_string())
                    .filter(|c| !c.is_empty())
                    .collect(),
            };
            maintain(&project, &select, &options).await
        }
    }
}

fn init(dir: &Path, with_demo: bool) -> Result<(), Failure> {
    if dir.join(tributary_core::config::PROJECT_FILE).exists() {
        return Err(Failure::config(anyhow::anyhow!(
            "{} already holds a project (tributary.yaml); choose another folder",
            dir.display()
        )));
    }
    let ci_workflow = if with_demo {
        let files = demo::write_demo_project(dir, false).map_err(Failure::task)?;
        println!("Created the ACME demo project in {}.", dir.display());
        files.ci_workflow
    } else {
        let name = dir
            .file_name()
            .map(|n| tributary_core::config::sanitize(&n.to_string_lossy()))
            .unwrap_or_else(|| "project".into());
        let ci_workflow = demo::write_empty_project(dir, &name).map_err(Failure::task)?;
        println!("Created project {name} in {}.", dir.display());
        ci_workflow
    };
    if ci_workflow {
        println!(
            "CI: {} runs `tributary validate` and `tributary test` with --target ci on every push; its header says how it installs tributary.",
            demo::CI_WORKFLOW_PATH
        );
    } else {
        println!(
            "CI: kept the existing {}; see the README (CI/CD) for a workflow that validates and tests the project.",
            demo::CI_WORKFLOW_PATH
        );
    }
    println!(
        "Next: cd {} && tributary validate && tributary run",
        dir.display()
    );
    Ok(())
}

/// `acme-demo`, unless the project folder already is the demo project (so `tributary demo
/// --advance` works from inside it).
fn demo_dir_default(project_dir: &Path) -> PathBuf {
    let is_demo = std::fs::read_to_string(project_dir.join(tributary_core::config::PROJECT_FILE))
        .map(|t| t.lines().any(|l| l.trim() == "name: acme"))
        .unwrap_or(false);
    if is_demo {
        project_dir.to_path_buf()
    } else {
        PathBuf::from("acme-demo")
    }
}

async fn run_demo(project: &ProjectRef, advance: bool, progress: bool) -> Result<(), Failure> {
    let dir = project.dir.as_path();
    let started = Instant::now();
    if dir.join(tributary_core::config::PROJECT_FILE).exists() {
        println!("Using the existing demo project in {}.", dir.display());
    } else {
        let files = demo::write_demo_project(dir, false).map_err(Failure::task)?;
        let total: u64 = files.erp_rows.iter().map(|(_, n)| *n).sum();
        println!(
            "Wrote the ACME demo project to {}: an ERP database with {} rows in {} tables, and {} landing files ({:.1}s).",
            dir.display(),
            thousands(total),
            files.erp_rows.len(),
            files.landing_files.len(),
            started.elapsed().as_secs_f64()
        );
    }
    if advance {
        let summary = demo::simulate_source_changes(dir).map_err(Failure::task)?;
        println!("Simulated a day of source changes: {summary}.");
    }
    let result = run(project, &RunRequest::default(), progress).await?;
    let loads = result
        .as_ref()
        .map(|r| r.collected.loads.len())
        .unwrap_or(0);
    let total_rows: u64 = result
        .as_ref()
        .map(|r| r.collected.loads.values().map(|o| o.report.rows).sum())
        .unwrap_or(0);
    let shown = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    println!(
        "\nLoaded {} rows into {} tables in {:.1}s. Try next:\n  cd {}\n  tributary tables\n  tributary query \"SELECT * FROM gold.monthly_revenue ORDER BY month DESC, revenue DESC LIMIT 10\"\n  tributary query \"SELECT * FROM silver._quarantine_orders\"   # rows an expectation dropped\n  tributary test                # the model unit tests in tests/\n  tributary demo --advance      # a day of new and changed orders, then an incremental load and merge\n(`tributary` is the binary: `cargo install --path crates/cli`, or use `cargo run --release --` in the source folder.)",
        thousands(total_rows),
        loads,
        started.elapsed().as_secs_f64(),
        shown.display(),
    );
    Ok(())
}

async fn validate(project: &ProjectRef, connections: bool) -> Result<(), Failure> {
    let project = project.load()?;
    let specs = project.load_specs();
    println!(
        "{}{}: configuration is valid ({} connection{}, {} table{}).",
        project.config.name,
        target_note(&project),
        project.config.connections.len(),
        if project.config.connections.len() == 1 {
            ""
        } else {
            "s"
        },
        specs.len(),
        if specs.len() == 1 { "" } else { "s" }
    );
    for s in &specs {
        println!(
            "  {:<40} <- {} ({:?})",
            s.target(),
            s.source_label(),
            s.table.mode
        );
    }
    let models = load_models(&project).map_err(Failure::config)?;
    // The DAG's own checks (cycles, two writers of a table, models their upstream cannot feed).
    let dag = build_dag(&project, &models).map_err(Failure::config)?;
    if !project.config.alerts.rules.is_empty() {
        let (_, problems) = crate::alerting::selections(&project, &dag);
        if !problems.is_empty() {
            return Err(Failure::config(
                tributary_core::config::ConfigError::Problems(problems),
            ));
        }
    }
    if !models.models.is_empty() {
        println!("Models ({}), in run order:", models.models.len());
        for m in &models.models {
            let ups = models.upstream_list(&m.id());
            println!(
                "  {:<40} <- {} ({}{})",
                m.id(),
                if ups.is_empty() { "-".to_string() } else { ups },
                m.config.materialized.as_str(),
                if m.expectations.is_empty() {
                    String::new()
                } else {
                    format!(", {} expectations", m.expectations.len())
                }
            );
        }
    }
    if !connections {
        return Ok(());
    }
    println!("\nConnections:");
    let mut failed = 0;
    for (name, config) in &project.config.connections {
        let result = match tributary_connectors::open(name, config, &project.root) {
            Ok(source) => source.check_detail().await,
            Err(e) => Err(e),
        };
        match result {
            Ok(None) => println!("  {name:<20} {:<8} ok", config.kind()),
            Ok(Some(detail)) => println!("  {name:<20} {:<8} ok ({detail})", config.kind()),
            Err(e) => {
                failed += 1;
                println!("  {name:<20} {:<8} FAILED: {e}", config.kind());
            }
        }
        if config.is_delta() {
            failed += check_delta_tables(name, config, &project, &specs).await;
        }
    }
    match open_lake(&project) {
        Ok(lake) => match lake.check().await {
            Ok(()) => println!(
                "  {:<20} {:<8} ok ({})",
                "lake",
                "delta",
                lake.display_root()
            ),
            Err(e) => {
                failed += 1;
                println!("  {:<20} {:<8} FAILED: {e}", "lake", "delta");
            }
        },
        Err(f) => {
            failed += 1;
            println!("  {:<20} {:<8} FAILED: {}", "lake", "delta", f.error);
        }
    }
    if failed > 0 {
        return Err(Failure::task(anyhow::anyhow!(
            "{failed} connection{} failed",
            if failed == 1 { "" } else { "s" }
        )));
    }
    Ok(())
}

/// `validate --connections` for a Delta connection: open each of its tables, printing its
/// version (and whether it has the change data feed) or why it cannot be read. Returns the
/// number of failures.
async fn check_delta_tables(
    name: &str,
    config: &tributary_core::config::ConnectionConfig,
    project: &tributary_core::Project,
    specs: &[tributary_core::config::LoadSpec],
) -> usize {
    let source = match tributary_connectors::delta::DeltaSource::from_connection(
        name,
        config,
        &project.root,
    ) {
        Ok(s) => s,
        // Already reported by the connection's own check.
        Err(_) => return 0,
    };
    let mut failed = 0;
    for spec in specs.iter().filter(|s| s.connection == name) {
        match source.check_table(&spec.table.name).await {
            Ok(t) => println!(
                "    {:<38} ok (version {}{})",
                spec.table.name,
                t.version,
                if t.change_data_feed {
                    ", change data feed"
                } else {
                    ""
                }
            ),
            Err(e) => {
                failed += 1;
                println!("    {:<38} FAILED: {e}", spec.table.name);
            }
        }
    }
    failed
}

/// `tributary run`: the DAG (or the selected part of it) as one recorded run, with a summary.
pub async fn run(
    project: &ProjectRef,
    req: &RunRequest,
    progress: bool,
) -> Result<Option<RunResult>, Failure> {
    let project = project.load()?;
    let target = target_note(&project);
    let cancel = tokio_util::sync::CancellationToken::new();
    crate::signals::cancel_on_signals(
        cancel.clone(),
        "cancelling the run (running tasks get a grace period; press Ctrl-C again to stop at once)",
    );
    let plan = RunPlan::load(project).await?;
    let link = crate::alerting::link_base(&plan.project, None);
    let after_run = crate::alerting::run_hook(&plan.project, &plan.dag, &plan.state, link)?;
    let bars = Arc::new(Bars::new(progress));
    let env = RunEnv {
        progress: bars.clone(),
        after_run,
        notice: Some(Arc::new(|line: &str| eprintln!("{line}"))),
    };
    let run = match plan.prepare(req, env).await? {
        Prepared::Run(run) => run,
        Prepared::Nothing(message) => {
            println!("{message}");
            return Ok(None);
        }
    };
    let result = run.execute(cancel).await;
    bars.clear();
    print_run(&result, &target);
    let not_ok: Vec<&TaskOutcome> = result
        .outcomes
        .iter()
        .filter(|o| o.state != TaskState::Succeeded)
        .collect();
    if not_ok.is_empty() {
        return Ok(Some(result));
    }
    eprintln!();
    for o in &not_ok {
        let error = o.error.as_deref().unwrap_or("");
        match o.state {
            TaskState::Failed => {
                let class = o.error_class.map(|c| format!(" [{c}]")).unwrap_or_default();
                let attempts = if o.attempts > 1 {
                    format!(" after {} attempts", o.attempts)
                } else {
                    String::new()
                };
                eprintln!(
                    "{} failed{attempts}{class} (its table is unchanged): {error}",
                    o.task_id
                );
            }
            _ => eprintln!("{} {error}", o.task_id),
        }
    }
    let total = result.outcomes.len();
    let verb = if result.status == RunStatus::Cancelled {
        "run cancelled:"
    } else {
        ""
    };
    Err(Failure::task(anyhow::anyhow!(
        "{verb}{}{} of {} task{} did not succeed; `tributary run --resume {}` reruns them",
        if verb.is_empty() { "" } else { " " },
        not_ok.len(),
        total,
        if total == 1 { "" } else { "s" },
        result.run_id
    )))
}

/// The run summary: loads, models (with expectations) and other tasks.
fn print_run(result: &RunResult, target: &str) {
    println!("Run {}{target}", result.run_id);
    let loads: Vec<&LoadRun> = result.collected.loads.values().collect();
    if !loads.is_empty() {
        let rows: Vec<Vec<String>> = loads
            .iter()
            .map(|run| {
                let o = &run.report;
                vec![
                    o.target.clone(),
                    o.mode.to_string(),
                    thousands(o.rows),
                    o.version
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "-".into()),
                    format!("{:.2}", o.seconds),
                    match (&run.error, o.skipped) {
                        (Some(_), _) => "FAILED".into(),
                        (None, 0) => "ok".into(),
                        (None, n) => format!("ok, {n} malformed records skipped"),
                    },
                ]
            })
            .collect();
        print!(
            "{}",
            text_table(
                &["table", "mode", "rows", "version", "seconds", "status"],
                &rows,
                &[false, false, true, true, true, false]
            )
        );
    }
    let model_runs: Vec<&ModelRun> = result
        .outcomes
        .iter()
        .filter_map(|o| result.collected.models.get(&o.task_id))
        .collect();
    print_summary(&model_runs);
    let others: Vec<Vec<String>> = result
        .outcomes
        .iter()
        .filter(|o| {
            !result.collected.loads.contains_key(&o.task_id)
                && !result.collected.models.contains_key(&o.task_id)
        })
        .map(|o| {
            let seconds = match (o.started_at, o.finished_at) {
                (Some(a), Some(b)) => format!("{:.2}", (b - a).num_milliseconds() as f64 / 1000.0),
                _ => "-".into(),
            };
            vec![
                o.task_id.clone(),
                o.kind.as_str().to_string(),
                o.attempts.to_string(),
                o.report
                    .as_ref()
                    .and_then(|r| r.rows)
                    .map(thousands)
                    .unwrap_or_else(|| "-".into()),
                seconds,
                o.state.as_str().to_uppercase().replace("SUCCEEDED", "ok"),
            ]
        })
        .collect();
    if !others.is_empty() {
        println!();
        print!(
            "{}",
            text_table(
                &["task", "kind", "attempts", "rows", "seconds", "status"],
                &others,
                &[false, false, true, true, true, false]
            )
        );
    }
}

async fn test(project: &ProjectRef, filter: Option<&str>) -> Result<(), Failure> {
    let project = project.load()?;
    let models = load_models(&project).map_err(Failure::config)?;
    let files = tributary_transform::unittest::load_tests(&project.root)
        .map_err(|p| Failure::config(tributary_core::config::ConfigError::Problems(p)))?;
    let outcomes =
        tributary_transform::unittest::run_tests(&project.root, &models, &files, filter).await;
    if outcomes.is_empty() {
        println!(
            "No model tests{} in {}; add tests/*.yaml (see the README, section `tributary test`).",
            filter
                .map(|f| format!(" matching `{f}`"))
                .unwrap_or_default(),
            project.root.join("tests").display()
        );
        return Ok(());
    }
    let mut failed = 0;
    for o in &outcomes {
        let at = match o.line {
            Some(l) => format!("{}:{l}", o.file.display()),
            None => o.file.display().to_string(),
        };
        match &o.failure {
            None => println!("PASS  {} — {} ({at})", o.model, o.name),
            Some(diff) => {
                failed += 1;
                println!("FAIL  {} — {} ({at})", o.model, o.name);
                for line in diff.lines() {
                    println!("      {line}");
                }
            }
        }
    }
    println!("\n{} passed, {} failed", outcomes.len() - failed, failed);
    if failed > 0 {
        return Err(Failure::task(anyhow::anyhow!(
            "{failed} model test{} failed",
            if failed == 1 { "" } else { "s" }
        )));
    }
    Ok(())
}

async fn query(project: &ProjectRef, sql: &str, format: QueryFormat) -> Result<(), Failure> {
    let project = project.load()?;
    let lake = open_lake(&project)?;
    let ctx = lake.session().await.map_err(Failure::task)?;
    let df = ctx
        .sql(sql)
        .await
        .map_err(|e| Failure::config(anyhow::anyhow!("{e}")))?;
    let stream = df
        .execute_stream()
        .await
        .map_err(|e| Failure::task(anyhow::anyhow!("{e}")))?;
    crate::output::print_query_results(stream, format, MAX_TABLE_ROWS)
        .await
        .context("while running the query")
        .map_err(Failure::task)?;
    Ok(())
}

async fn tables(project: &ProjectRef) -> Result<(), Failure> {
    let project = project.load()?;
    let lake = open_lake(&project)?;
    let infos = lake.tables().await.map_err(Failure::task)?;
    if infos.is_empty() {
        println!(
            "No tables in {} yet; run `tributary run`.",
            lake.display_root()
        );
        return Ok(());
    }
    let upstream = table_upstream(&project);
    let now = chrono::Utc::now().timestamp_millis();
    let rows: Vec<Vec<String>> = infos
        .iter()
        .map(|t| {
            let when = t
                .committed_at_ms
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map(|d| d.format("%Y-%m-%d %H:%M:%SZ").to_string())
                .unwrap_or_else(|| "-".into());
            let age = t
                .committed_at_ms
                .map(|ms| human_age((now - ms).max(0) / 1000))
                .unwrap_or_default();
            let id = format!("{}.{}", t.layer, t.name);
            vec![
                t.layer.clone(),
                t.name.clone(),
                t.version.to_string(),
                t.rows.map(thousands).unwrap_or_else(|| "?".into()),
                t.files.to_string(),
                human_bytes(t.bytes),
                format!("{when} ({age} ago)"),
                t.watermark
                    .as_ref()
                    .map(|w| format!("{} = {}", w.column, w.value))
                    .unwrap_or_default(),
                upstream.get(&id).cloned().unwrap_or_default(),
            ]
        })
        .collect();
    print!(
        "{}",
        text_table(
            &[
                "layer",
                "table",
                "version",
                "rows",
                "files",
                "size",
                "last commit",
                "watermark",
                "upstream"
            ],
            &rows,
            &[false, false, true, true, true, true, false, false, false]
        )
    );
    Ok(())
}

/// What each table is built from: the source of ingested tables, the refs of models, the
/// model of a quarantine table. Models that do not load (broken files) are left out.
fn table_upstream(project: &Project) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    for s in project.load_specs() {
        out.insert(s.target(), s.source_label());
    }
    if let Ok(models) = load_models(project) {
        for m in &models.models {
            out.insert(m.id(), models.upstream_list(&m.id()));
            out.insert(format!("{}.{}", m.layer, m.quarantine_name()), m.id());
        }
    }
    out
}

fn human_age(secs: i64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

async fn maintain(
    project: &ProjectRef,
    selectors: &[String],
    options: &tributary_lake::MaintainOptions,
) -> Result<(), Failure> {
    options
        .check()
        .map_err(|e| Failure::config(anyhow::anyhow!(e)))?;
    let project = project.load()?;
    let lake = open_lake(&project)?;
    let mut names = lake.table_names().await.map_err(Failure::task)?;
    if !selectors.is_empty() {
        let mut matchers = Vec::new();
        for s in selectors {
            let g = globset::Glob::new(s)
                .map_err(|e| Failure::config(anyhow::anyhow!("--select {s}: {e}")))?
                .compile_matcher();
            matchers.push(g);
        }
        names.retain(|(l, n)| {
            let t = format!("{l}.{n}");
            matchers.iter().any(|m| m.is_match(&t))
        });
    }
    let mut rows = Vec::new();
    let mut failed = 0;
    for (layer, name) in &names {
        match tributary_lake::maintain_table(&lake, layer, name, options).await {
            Ok(r) => rows.push(vec![
                format!("{layer}.{name}"),
                r.files_removed.to_string(),
                r.files_added.to_string(),
                r.version.to_string(),
                format!(
                    "{}{}",
                    r.files_vacuumed,
                    if options.dry_run { " (dry run)" } else { "" }
                ),
                "ok".into(),
            ]),
            Err(e) => {
                failed += 1;
                eprintln!("{layer}.{name}: {e}");
                rows.push(vec![
                    format!("{layer}.{name}"),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "FAILED".into(),
                ]);
            }
        }
    }
    print!(
        "{}",
        text_table(
            &[
                "table",
                "compacted",
                "written",
                "version",
                "vacuumed",
                "status"
            ],
            &rows,
            &[false, true, true, true, true, false]
        )
    );
    if failed > 0 {
        return Err(Failure::task(anyhow::anyhow!("{failed} table(s) failed")));
    }
    Ok(())
}

fn dag(project: &ProjectRef, selectors: &[String], format: DagFormat) -> Result<(), Failure> {
    let project = project.load()?;
    let models = load_models(&project).map_err(Failure::config)?;
    let dag = build_dag(&project, &models).map_err(Failure::config)?;
    let ids = dag
        .select(selectors)
        .map_err(|e| Failure::config(anyhow::anyhow!(e)))?;
    let out = match format {
        DagFormat::Text => dag.render_text(&ids),
        DagFormat::Dot => dag.render_dot(&ids),
        DagFormat::Mermaid => dag.render_mermaid(&ids),
    };
    print!("{out}");
    Ok(())
}

async fn open_state(project: &Project) -> Result<StateStore, Failure> {
    StateStore::open(&project.config.state, &project.root)
        .await
        .map_err(Failure::task)
}

fn short_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn seconds_between(
    a: Option<chrono::DateTime<chrono::Utc>>,
    b: Option<chrono::DateTime<chrono::Utc>>,
) -> String {
    match (a, b) {
        (Some(a), Some(b)) => format!("{:.2}", (b - a).num_milliseconds() as f64 / 1000.0),
        _ => "-".into(),
    }
}

async fn runs_list(
    project: &ProjectRef,
    status: Option<&str>,
    task: Option<String>,
    limit: usize,
) -> Result<(), Failure> {
    let project = project.load()?;
    let status = match status {
        Some(s) => Some(RunStatus::parse(s).ok_or_else(|| {
            Failure::config(anyhow::anyhow!(
                "--status {s}: use running, succeeded, failed, cancelled or abandoned"
            ))
        })?),
        None => None,
    };
    let state = open_state(&project).await?;
    let runs = state
        .list_runs(&RunFilter {
            limit,
            status,
            task,
            trigger: None,
        })
        .await
        .map_err(Failure::task)?;
    if runs.is_empty() {
        println!("No runs recorded in {} yet.", state.location());
        return Ok(());
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.run.run_id.clone(),
                r.run.status.as_str().to_string(),
                r.run.trigger.clone(),
                short_time(r.run.started_at),
                r.duration
                    .map(|d| format!("{:.1}", d.as_secs_f64()))
                    .unwrap_or_else(|| "-".into()),
                r.tasks.to_string(),
                r.failed.to_string(),
                thousands(r.rows),
            ]
        })
        .collect();
    print!(
        "{}",
        text_table(
            &[
                "run",
                "status",
                "trigger",
                "started (UTC)",
                "seconds",
                "tasks",
                "failed",
                "rows"
            ],
            &rows,
            &[false, false, false, false, true, true, true, true]
        )
    );
    Ok(())
}

async fn runs_show(project: &ProjectRef, run_id: &str) -> Result<(), Failure> {
    let project = project.load()?;
    let state = open_state(&project).await?;
    let detail = state
        .get_run(run_id)
        .await
        .map_err(Failure::task)?
        .ok_or_else(|| {
            Failure::config(anyhow::anyhow!(
                "no run `{run_id}` in {} (or the prefix matches several); `tributary runs` lists them",
                state.location()
            ))
        })?;
    let run = &detail.run.run;
    println!("Run {}", run.run_id);
    println!("  status     {}", run.status.as_str());
    println!("  trigger    {}", run.trigger);
    if let Some(t) = &run.target {
        println!("  target     {t}");
    }
    if !run.selectors.is_empty() {
        println!("  selection  {}", run.selectors.join(", "));
    }
    if let Some(r) = &run.resumed_from {
        println!("  resumes    {r}");
    }
    println!(
        "  started    {} UTC on {} (pid {})",
        short_time(run.started_at),
        run.host,
        run.pid
    );
    if let Some(f) = run.finished_at {
        println!(
            "  finished   {} UTC ({}s)",
            short_time(f),
            seconds_between(Some(run.started_at), Some(f))
        );
    }
    if let Some(e) = &run.error {
        println!("  error      {e}");
    }
    let rows: Vec<Vec<String>> = detail
        .tasks
        .iter()
        .map(|t| {
            vec![
                t.task_id.clone(),
                t.kind.clone(),
                t.status.as_str().to_string(),
                t.attempts.to_string(),
                t.started_at
                    .map(|s| s.format("%H:%M:%S").to_string())
                    .unwrap_or_else(|| "-".into()),
                seconds_between(t.started_at, t.finished_at),
                t.rows.map(thousands).unwrap_or_else(|| "-".into()),
                t.bytes.map(human_bytes).unwrap_or_else(|| "-".into()),
                t.error_class.clone().unwrap_or_default(),
            ]
        })
        .collect();
    println!();
    print!(
        "{}",
        text_table(
            &[
                "task",
                "kind",
                "status",
                "attempts",
                "started",
                "seconds",
                "rows",
                "bytes",
                "error class"
            ],
            &rows,
            &[false, false, false, true, false, true, true, true, false]
        )
    );
    let retried: Vec<_> = detail
        .attempts
        .iter()
        .filter(|a| {
            a.error.is_some() && a.status != tributary_orchestrator::state::TaskStatus::Running
        })
        .collect();
    if !retried.is_empty() {
        println!("\nFailed attempts:");
        for a in retried {
            println!(
                "  {} attempt {} [{}]: {}",
                a.task_id,
                a.attempt,
                a.error_class.as_deref().unwrap_or("-"),
                a.error.as_deref().unwrap_or("")
            );
        }
    }
    let errors: Vec<_> = detail.tasks.iter().filter(|t| t.error.is_some()).collect();
    if !errors.is_empty() {
        println!("\nErrors:");
        for t in errors {
            println!("  {}: {}", t.task_id, t.error.as_deref().unwrap_or(""));
        }
    }
    if !detail.expectations.is_empty() {
        println!("\nExpectations:");
        for e in &detail.expectations {
            println!(
                "  {} {}.{} [{}] {} of {} rows failed",
                if e.passed { "ok  " } else { "FAIL" },
                e.model,
                e.expectation,
                e.on_fail,
                thousands(e.failed_rows),
                thousands(e.checked_rows)
            );
        }
    }
    Ok(())
}
