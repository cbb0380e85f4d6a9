//! The command line: flags and subcommands (clap).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Lakehouse ingestion and medallion pipelines in one binary.
#[derive(Debug, Parser)]
#[command(name = "tributary", version, about, propagate_version = true)]
pub struct Cli {
    /// The project folder (holding tributary.yaml).
    #[arg(long, global = true, default_value = ".", value_name = "DIR")]
    pub project: PathBuf,
    /// The environment to use: a name under `targets:` in tributary.yaml (e.g. dev, prod, ci),
    /// overriding the lake, state, connections and vars. Default: `default_target`, if set.
    #[arg(long, global = true, env = "TRIBUTARY_TARGET", value_name = "NAME")]
    pub target: Option<String>,
    /// Log format on standard error: `text` for people, `json` for machines.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// More log output (-v info, -vv debug). `TRIBUTARY_LOG` (a tracing filter) overrides it.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Output format of `query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QueryFormat {
    /// An aligned text table.
    Table,
    /// CSV with a header line.
    Csv,
    /// A JSON array of objects.
    Json,
}

/// Output format of `dag`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DagFormat {
    /// One line per task with its inputs.
    Text,
    /// Graphviz DOT.
    Dot,
    /// A Mermaid flowchart.
    Mermaid,
}

/// `runs` subcommands.
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// One run: each task's status, attempts, duration, rows and error.
    Show {
        /// The run id, or a unique prefix of it.
        run_id: String,
    },
}

/// `alerts` subcommands.
#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Send a test message to one channel of `alerts.channels`, or to all of them.
    Test {
        /// The channel's name; default every channel.
        channel: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a project folder.
    Init {
        /// Folder to create.
        dir: PathBuf,
        /// Add the ACME sample sources (a SQLite ERP database and CSV landing files).
        #[arg(long)]
        demo: bool,
    },
    /// Write the ACME sample project, load it, and print a summary.
    Demo {
        /// Folder of the demo project, reused when it exists. Default: `acme-demo`, or the
        /// current folder (or --project) when it already holds the demo project.
        dir: Option<PathBuf>,
        /// Before loading, simulate a day of new and updated orders and a new landing file.
        #[arg(long)]
        advance: bool,
    },
    /// Check every configuration file; with --connections, also reach every source and the lake.
    Validate {
        /// Open every connection and the lake location and report each.
        #[arg(long)]
        connections: bool,
    },
    /// Run the DAG: loads, models and pipeline tasks, each as soon as its inputs are done.
    Run {
        /// Only these tasks: a table (`bronze.erp_orders`), a model (`silver.orders`), a task
        /// name, a layer (`silver`), a connection (`erp`) or a glob (`bronze.erp_*`); `+x` adds
        /// everything upstream of x, `x+` everything downstream. Repeatable, or comma-separated.
        #[arg(long, short, value_delimiter = ',')]
        select: Vec<String>,
        /// Reload incremental tables and rebuild incremental models from scratch.
        #[arg(long)]
        full_refresh: bool,
        /// Tasks at once (default `orchestration.max_parallel`, 4).
        #[arg(long)]
        parallel: Option<usize>,
        /// Cancel the whole run at the first task failure.
        #[arg(long)]
        fail_fast: bool,
        /// Rerun only the failed, cancelled, skipped and unfinished tasks of this run (an id or
        /// a unique prefix, from `tributary runs`).
        #[arg(long, value_name = "RUN_ID", conflicts_with = "select")]
        resume: Option<String>,
        /// Backfill: reload incremental tables from this cursor value (inclusive), e.g.
        /// `2024-01-01` or `1000`, appending rows not loaded yet; the watermark does not move.
        #[arg(long, value_name = "CURSOR", conflicts_with_all = ["full_refresh", "resume"])]
        from: Option<String>,
        /// Backfill up to this cursor value (exclusive). Needs --from.
        #[arg(long, value_name = "CURSOR", requires = "from")]
        to: Option<String>,
    },
    /// Print the DAG: every task with its kind and inputs.
    Dag {
        /// Only these tasks (same selectors as `run --select`).
        #[arg(long, short, value_delimiter = ',')]
        select: Vec<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = DagFormat::Text)]
        format: DagFormat,
    },
    /// Run history: recent runs, or one run's tasks with `runs show RUN_ID`.
    Runs {
        #[command(subcommand)]
        show: Option<RunsCommand>,
        /// Only runs with this status (running, succeeded, failed, cancelled, abandoned).
        #[arg(long)]
        status: Option<String>,
        /// Only runs that include this task.
        #[arg(long)]
        task: Option<String>,
        /// How many runs to list.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Serve the HTTP API and run the `schedules:` of tributary.yaml until Ctrl-C / SIGTERM.
    Serve {
        /// Address and port to listen on, replacing `serve.bind` (default 127.0.0.1:8080).
        /// Any non-loopback address requires `serve.token`.
        #[arg(long)]
        bind: Option<String>,
    },
    /// Alert channels: `alerts test [CHANNEL]` sends a test message.
    Alerts {
        #[command(subcommand)]
        command: AlertsCommand,
    },
    /// Run the model unit tests in tests/*.yaml on their fixtures, without touching the lake.
    Test {
        /// Only tests whose name or model contains this text.
        filter: Option<String>,
    },
    /// Run SQL over the lake's tables (`bronze.erp_orders`, …).
    Query {
        /// The SQL statement.
        sql: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = QueryFormat::Table)]
        format: QueryFormat,
    },
    /// List the lake's tables with version, rows, size, freshness and watermark.
    Tables,
    /// Compact small files (OPTIMIZE, or Z-order with --zorder-by), write a checkpoint, and VACUUM
    /// unreferenced files.
    Maintain {
        /// Only these tables (targets or globs such as `bronze.erp_*`); default all.
        #[arg(long, short, value_delimiter = ',')]
        select: Vec<String>,
        /// Delete unreferenced files older than this many hours. Below 168 (Delta's 7-day
        /// default) needs --force.
        #[arg(long, default_value_t = tributary_lake::SAFE_RETENTION_HOURS)]
        retention_hours: u64,
        /// Allow a retention below 168 hours.
        #[arg(long)]
        force: bool,
        /// List what vacuum would delete without deleting it.
        #[arg(long)]
        dry_run: bool,
        /// Target size of compacted files, in MiB.
        #[arg(long, default_value_t = 128)]
        target_file_mb: u64,
        /// Cluster the files by these columns (Z-order) instead of bin-packing them, so filters
        /// on any of the columns skip more files; e.g. `--zorder-by customer_id,updated_at`.
        /// Rewrites every file of each selected table: use with --select.
        #[arg(long, value_delimiter = ',')]
        zorder_by: Vec<String>,
    },
}
