//! The `command` task without a `target`: run a program, log its output, succeed when it exits
//! with status 0.
//!
//! How the program is started (process group, working folder, environment, `/dev/null` as
//! standard input) is described in `tributary_connectors::command`. Standard output is logged
//! at INFO and standard error at WARN, line by line, with the field `task`.
//!
//! Failures: a non-zero exit status is class `task`, with the last 20 lines of standard error
//! in the message; a program that cannot be found or run (or a shell exiting with 127/126,
//! "command not found") is class `config`; cancelling the token sends `SIGTERM` to the whole
//! process group, waits up to 5 s, then sends `SIGKILL`, and the task fails with class
//! `cancelled`. Dropping the future before the program exits (the executor's timeout) kills
//! the whole process group with `SIGKILL`, so nothing the program started survives it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::info;
use tributary_connectors::command::{CommandSpec, describe_exit};
use tributary_core::SourceError;
use tributary_core::pipeline::TaskConfig;

use crate::error::{ErrorClass, TaskError};

/// How long a cancelled command has between `SIGTERM` and `SIGKILL`.
pub const TERMINATE_GRACE: Duration = Duration::from_secs(5);

/// What a command task needs from the run.
#[derive(Debug, Clone)]
pub struct CommandContext {
    /// The project folder: `cwd` is relative to it, and it is `TRIBUTARY_PROJECT_DIR`.
    pub project_root: PathBuf,
    /// The run's id (`TRIBUTARY_RUN_ID`).
    pub run_id: String,
    /// More environment variables for the program; their values are treated as secrets.
    pub extra_env: Vec<(String, String)>,
}

/// A command that exited with status 0.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandOutcome {
    /// The exit status (0).
    pub exit_code: i32,
    /// Wall-clock duration.
    pub seconds: f64,
    /// Lines written to standard output.
    pub stdout_lines: u64,
    /// Lines written to standard error.
    pub stderr_lines: u64,
}

fn fail(class: ErrorClass, message: String) -> TaskError {
    TaskError::new(class, message)
}

/// Run the `command` of `task` (see the [module documentation](self)).
pub async fn run_command(
    task: &TaskConfig,
    ctx: &CommandContext,
    cancel: CancellationToken,
) -> Result<CommandOutcome, TaskError> {
    let started = Instant::now();
    let spec = CommandSpec::from_task(task, &ctx.project_root, &ctx.run_id, &ctx.extra_env)
        .map_err(|e| fail(ErrorClass::Config, e.to_string()))?;
    if cancel.is_cancelled() {
        return Err(fail(
            ErrorClass::Cancelled,
            format!(
                "command `{}` was cancelled before it started",
                spec.display()
            ),
        ));
    }
    let mut running = spec.spawn().map_err(|e| match e {
        SourceError::Config { reason, .. } => fail(ErrorClass::Config, reason),
        other => fail(other.class(), other.to_string()),
    })?;
    running.log_stdout();
    let waited = tokio::select! {
        status = running.wait() => status,
        () = cancel.cancelled() => {
            let how = match running.terminate(TERMINATE_GRACE).await {
                Ok(status) => describe_exit(status),
                Err(e) => format!("could not be waited for ({e})"),
            };
            return Err(fail(
                ErrorClass::Cancelled,
                format!("command `{}` was cancelled: SIGTERM was sent to its process group, and it {how}", spec.display()),
            ));
        }
    };
    let status = waited.map_err(|e| {
        fail(
            ErrorClass::Internal,
            format!("waiting for command `{}`: {e}", spec.display()),
        )
    })?;
    let seconds = started.elapsed().as_secs_f64();
    if status.success() {
        info!(task = %task.name, exit_code = 0, seconds, "Command finished.");
        return Ok(CommandOutcome {
            exit_code: 0,
            seconds,
            stdout_lines: running.stdout_lines(),
            stderr_lines: running.stderr_lines(),
        });
    }
    let class = if running.is_shell_not_found(status) {
        ErrorClass::Config
    } else {
        ErrorClass::Task
    };
    Err(fail(class, running.failure_message(status)))
}
