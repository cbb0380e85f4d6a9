//! What a run is made of, read from the project: its models, its DAG (one task per ingested
//! table, model and pipeline task), its execution settings and its lake.

use std::collections::{BTreeMap, BTreeSet};

use deltalake::parquet::basic::{Compression, GzipLevel, ZstdLevel};
use tributary_core::Project;
use tributary_core::config::{ConfigError, ConfigProblem, ParquetCodec};
use tributary_core::pipeline::TaskType;
use tributary_lake::{Lake, LakeError, WriteOptions};
use tributary_transform::Models;

use crate::dag::{Dag, TaskKind, TaskNode};
use crate::exec::ExecOptions;

/// The project's models, checked: their templates, `ref()`s (to other models, bronze loads and
/// command task targets) and settings.
pub fn load_models(project: &Project) -> Result<Models, ConfigError> {
    // Tables models may ref besides other models: bronze loads and command task targets.
    let sources: BTreeSet<String> = project
        .load_specs()
        .iter()
        .map(|s| s.target())
        .chain(
            project
                .pipelines
                .iter()
                .flat_map(|f| f.config.tasks.iter())
                .filter_map(|t| t.target.clone()),
        )
        .collect();
    Models::load(
        &project.root,
        sources,
        project.vars.clone(),
        project.target.as_deref(),
    )
    .map_err(ConfigError::Problems)
}

/// The project's lake, with the `writer:` settings (codec, file and row-group sizes) and a
/// row-group memory bound of `memory_limit / max_parallel / 8`.
pub fn open_lake(project: &Project) -> Result<Lake, LakeError> {
    let config = &project.config;
    let lake = Lake::new(&config.lake, &project.root, &config.lake_options)?;
    // Validation has checked these values; the defaults stand in for nothing.
    let defaults = WriteOptions::default();
    let compression = match config.writer.codec() {
        Ok(ParquetCodec::Snappy) => Compression::SNAPPY,
        Ok(ParquetCodec::Zstd(level)) => {
            Compression::ZSTD(ZstdLevel::try_new(level).unwrap_or_default())
        }
        Err(_) => defaults.compression,
        Ok(ParquetCodec::Lz4) => Compression::LZ4_RAW,
        Ok(ParquetCodec::Gzip) => Compression::GZIP(GzipLevel::default()),
        Ok(ParquetCodec::None) => Compression::UNCOMPRESSED,
    };
    let tasks = config.orchestration.max_parallel.max(1) as u64;
    Ok(lake.with_write_options(WriteOptions {
        compression,
        target_file_bytes: config
            .writer
            .target_file_bytes()
            .unwrap_or(defaults.target_file_bytes),
        row_group_rows: config.writer.row_group_rows.max(1024),
        row_group_bytes: config.memory_limit_bytes() / tasks / 8,
    }))
}

/// The project's DAG: one task per ingested table, model and pipeline task.
pub fn build_dag(project: &Project, models: &Models) -> Result<Dag, ConfigError> {
    let orch = &project.config.orchestration;
    let default_timeout = orch.timeout.map(|d| d.std());
    let mut nodes = Vec::new();
    // Which task writes each table, so models depend on the task (a command with a target).
    let mut writer_of: BTreeMap<String, String> = BTreeMap::new();
    let mut problems = Vec::new();
    // Tables loaded whole on every run (`mode: full`), by target.
    let mut full_loads: BTreeMap<String, String> = BTreeMap::new();
    for spec in project.load_specs() {
        let id = spec.target();
        writer_of.insert(id.clone(), id.clone());
        if spec.table.mode == tributary_core::config::LoadMode::Full {
            full_loads.insert(id.clone(), spec.file.display().to_string());
        }
        nodes.push(TaskNode {
            id: id.clone(),
            kind: TaskKind::Load,
            deps: spec.table.depends_on.iter().cloned().collect(),
            connection: Some(spec.connection.clone()),
            writes: Some(id),
            retries: spec.table.retries.unwrap_or(orch.retries),
            timeout: spec.table.timeout.map(|d| d.std()).or(default_timeout),
            description: None,
            origin: spec.file.display().to_string(),
        });
    }
    for file in &project.pipelines {
        for t in &file.config.tasks {
            if let Some(target) = &t.target {
                if let Some(other) = writer_of.get(target) {
                    problems.push(ConfigProblem {
                        file: file.path.clone(),
                        line: None,
                        key: format!("tasks.{}.target", t.name),
                        message: format!(
                            "task `{}` writes `{target}`, which `{other}` already writes; give one of them another target",
                            t.name
                        ),
                    });
                }
                writer_of.insert(target.clone(), t.name.clone());
            }
            nodes.push(TaskNode {
                id: t.name.clone(),
                kind: match t.kind {
                    TaskType::Command => TaskKind::Command,
                    TaskType::Http => TaskKind::Http,
                },
                deps: t.depends_on.iter().cloned().collect(),
                connection: None,
                writes: t.target.clone(),
                retries: t.retries.unwrap_or(orch.retries),
                timeout: t.timeout.map(|d| d.std()).or(default_timeout),
                description: t.description.clone(),
                origin: file.path.display().to_string(),
            });
        }
    }
    for m in &models.models {
        let id = m.id();
        if m.appends_only() {
            // A render problem is the model run's to report.
            for dep in models.incremental_reads(m).unwrap_or_default() {
                if let Some(file) = full_loads.get(&dep) {
                    problems.push(ConfigProblem {
                        file: m.config_file.clone(),
                        line: None,
                        key: "materialized".into(),
                        message: format!(
                            "{id} is incremental without `unique_key`, so it appends the rows {dep} adds; but {dep} is loaded with `mode: full` ({file}), which replaces the whole table on every load, so the model's next run would fail. \
                             Give {id} a `unique_key` (it then merges), make it `materialized: table`, or read {dep} with `ref('{dep}', full=true)`"
                        ),
                    });
                }
            }
        }
        let mut deps: BTreeSet<String> = models
            .upstream
            .get(&id)
            .into_iter()
            .flatten()
            .filter_map(|t| {
                writer_of
                    .get(t)
                    .cloned()
                    .or_else(|| models.get(t).map(|_| t.clone()))
            })
            .collect();
        deps.extend(m.config.depends_on.iter().cloned());
        nodes.push(TaskNode {
            id: id.clone(),
            kind: TaskKind::Model,
            deps,
            connection: None,
            writes: Some(id),
            retries: m.config.retries.unwrap_or(orch.retries),
            timeout: m.config.timeout.map(|d| d.std()).or(default_timeout),
            description: m.config.description.clone(),
            origin: m.file.display().to_string(),
        });
    }
    if !problems.is_empty() {
        return Err(ConfigError::Problems(problems));
    }
    Dag::new(nodes).map_err(|ps| {
        ConfigError::Problems(
            ps.into_iter()
                .map(|p| ConfigProblem {
                    file: p.origin.into(),
                    line: None,
                    key: p.task,
                    message: p.message,
                })
                .collect(),
        )
    })
}

/// Execution settings from `orchestration:` and the command line.
pub fn exec_options(project: &Project, parallel: Option<usize>, fail_fast: bool) -> ExecOptions {
    let o = &project.config.orchestration;
    ExecOptions {
        max_parallel: parallel.unwrap_or(o.max_parallel).max(1),
        per_connection: o.per_connection.max(1),
        connection_limits: o.connection_limits.clone(),
        retry_delay: o.retry_delay.std(),
        retry_max_delay: o.retry_max_delay.std(),
        fail_fast,
        shutdown_grace: o.shutdown_grace.std(),
    }
}
