//! Running a command task's program: its process group, environment, output lines and exit.

use std::collections::VecDeque;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use tributary_core::pipeline::{CommandLine, TaskConfig};
use tributary_core::redact::scrub;
use tributary_core::{ErrorClass, SourceError};

/// Lines of standard error kept for the error message of a failed command.
pub const STDERR_TAIL_LINES: usize = 20;
/// Bytes of one output line that are logged (and kept); the rest of a longer line is dropped.
const MAX_LINE_BYTES: usize = 16 * 1024;
/// How long to keep reading output after the program exited (a background process it started
/// may hold the pipe open).
const OUTPUT_GRACE: Duration = Duration::from_secs(2);

/// A command task's program, working folder and environment, ready to run.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    pub(crate) task: String,
    program: String,
    args: Vec<String>,
    shell: bool,
    cwd: PathBuf,
    env: Vec<(String, String)>,
    secrets: Vec<String>,
    shown: String,
}

impl CommandSpec {
    /// The program of `task`: `cwd` resolves against `project_root`, the environment gets
    /// `extra_env`, the task's `env`, and `TRIBUTARY_RUN_ID` (`run_id`), `TRIBUTARY_TASK` and
    /// `TRIBUTARY_PROJECT_DIR`. Values of `env` and `extra_env` are treated as secrets.
    pub fn from_task(
        task: &TaskConfig,
        project_root: &Path,
        run_id: &str,
        extra_env: &[(String, String)],
    ) -> Result<CommandSpec, SourceError> {
        let config = |reason: &str| SourceError::Config {
            table: task.name.clone(),
            reason: reason.to_string(),
        };
        let (program, args, shell) = match &task.command {
            None => return Err(config("a command task needs `command`")),
            Some(CommandLine::Shell(line)) if !line.trim().is_empty() => {
                ("sh".to_string(), vec!["-c".to_string(), line.clone()], true)
            }
            Some(CommandLine::Argv(argv)) if argv.first().is_some_and(|p| !p.trim().is_empty()) => {
                (argv[0].clone(), argv[1..].to_vec(), false)
            }
            Some(_) => return Err(config("`command` is empty")),
        };
        let root = std::path::absolute(project_root).unwrap_or_else(|_| project_root.into());
        let cwd = match &task.cwd {
            Some(c) => root.join(c),
            None => root.clone(),
        };
        let mut env: Vec<(String, String)> = extra_env.to_vec();
        env.extend(task.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        let mut secrets: Vec<String> = env.iter().map(|(_, v)| v.clone()).collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        env.push(("TRIBUTARY_RUN_ID".into(), run_id.to_string()));
        env.push(("TRIBUTARY_TASK".into(), task.name.clone()));
        env.push((
            "TRIBUTARY_PROJECT_DIR".into(),
            root.to_string_lossy().into_owned(),
        ));
        let mut spec = CommandSpec {
            task: task.name.clone(),
            program,
            args,
            shell,
            cwd,
            env,
            secrets,
            shown: String::new(),
        };
        spec.shown = spec.scrub(&if shell {
            spec.args[1].clone()
        } else {
            std::iter::once(&spec.program)
                .chain(&spec.args)
                .map(|a| quote(a))
                .collect::<Vec<_>>()
                .join(" ")
        });
        Ok(spec)
    }

    /// The task's name.
    pub fn task(&self) -> &str {
        &self.task
    }

    /// The command line as shown in logs and errors (secrets replaced with `***`).
    pub fn display(&self) -> &str {
        &self.shown
    }

    /// The working folder.
    pub fn cwd(&self) -> &Path {
        &self.cwd
    }

    /// `text` with every secret value of the environment replaced with `***`.
    pub fn scrub(&self, text: &str) -> String {
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        scrub(text, &secrets)
    }

    /// The program to start: a relative path with a `/` resolves against the working folder.
    fn program_path(&self) -> PathBuf {
        let p = Path::new(&self.program);
        if self.program.contains('/') && p.is_relative() {
            self.cwd.join(p)
        } else {
            p.to_path_buf()
        }
    }

    /// The `PATH` the program is looked up in: the task's own, else Tributary's.
    fn search_path(&self) -> Option<std::ffi::OsString> {
        self.env
            .iter()
            .rev()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.into())
            .or_else(|| std::env::var_os("PATH"))
    }

    fn config_error(&self, reason: String) -> SourceError {
        SourceError::Config {
            table: self.task.clone(),
            reason: self.scrub(&reason),
        }
    }

    /// Check, without running anything, that the working folder exists and the program exists
    /// and is executable (looked up in `PATH` when it is a bare name). For a shell string, the
    /// program checked is `sh`.
    pub fn check(&self) -> Result<(), SourceError> {
        if !self.cwd.is_dir() {
            return Err(self.config_error(format!(
                "working folder {} does not exist (`cwd` is relative to the project folder)",
                self.cwd.display()
            )));
        }
        let name = &self.program;
        let found = if name.contains('/') {
            Some(self.program_path())
        } else {
            self.search_path().and_then(|path| {
                std::env::split_paths(&path)
                    .map(|dir| self.cwd.join(dir).join(name))
                    .find(|p| p.is_file())
            })
        };
        let Some(path) = found.filter(|p| p.exists()) else {
            return Err(self.config_error(self.not_found_reason()));
        };
        let executable = std::fs::metadata(&path)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false);
        if !executable {
            return Err(self.config_error(format!(
                "program {} of command `{}` is not an executable file (chmod +x it, or run it \
                 through its interpreter, e.g. [python3, script.py])",
                path.display(),
                self.display()
            )));
        }
        Ok(())
    }

    fn not_found_reason(&self) -> String {
        if self.program.contains('/') {
            format!(
                "program {} of command `{}` not found (a relative path is relative to the working folder {})",
                self.program_path().display(),
                self.display(),
                self.cwd.display()
            )
        } else {
            format!(
                "program `{}` of command `{}` not found in PATH (working folder {})",
                self.program,
                self.display(),
                self.cwd.display()
            )
        }
    }

    /// Start the program in its own process group, standard input `/dev/null`, standard output
    /// and standard error piped. Standard error is logged (and its tail kept) from now on.
    /// A missing working folder or program, or one that is not executable, is a
    /// [`SourceError::Config`]; other failures to start are [`SourceError::Io`].
    pub fn spawn(&self) -> Result<Running, SourceError> {
        if !self.cwd.is_dir() {
            return Err(self.config_error(format!(
                "working folder {} does not exist (`cwd` is relative to the project folder)",
                self.cwd.display()
            )));
        }
        let mut cmd = tokio::process::Command::new(self.program_path());
        cmd.args(&self.args)
            .current_dir(&self.cwd)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => self.config_error(self.not_found_reason()),
            std::io::ErrorKind::PermissionDenied => self.config_error(format!(
                "program {} of command `{}` cannot be run: {e} (is it executable? working folder {})",
                self.program,
                self.display(),
                self.cwd.display()
            )),
            _ => SourceError::Io {
                location: format!("command `{}` (task {})", self.display(), self.task),
                reason: self.scrub(&e.to_string()),
                class: ErrorClass::of_file_io(&e),
            },
        })?;
        let pid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .ok_or_else(|| SourceError::Internal("a just-started command has no pid".into()))?;
        let group = Arc::new(GroupState {
            pgid: Pid::from_raw(pid),
            reaped: AtomicBool::new(false),
        });
        let guard = KillOnDrop(group.clone());
        info!(task = %self.task, command = %self.display(), pid, cwd = %self.cwd.display(), "Command started.");
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let stderr_lines = Arc::new(AtomicU64::new(0));
        let stderr = child.stderr.take().map(|err| {
            let out = LineLog {
                task: self.task.clone(),
                stream: OutputStream::Stderr,
                secrets: self.secrets.clone(),
                lines: stderr_lines.clone(),
                tail: Some(tail.clone()),
            };
            tokio::spawn(out.run(tokio::io::BufReader::new(err)))
        });
        Ok(Running {
            spec: self.clone(),
            child,
            group,
            _guard: guard,
            readers: stderr.into_iter().collect(),
            tail,
            stderr_lines,
            stdout_lines: Arc::new(AtomicU64::new(0)),
        })
    }
}

/// Quote an argument for display when it has spaces or quotes.
fn quote(arg: &str) -> String {
    if !arg.is_empty() && !arg.contains(|c: char| c.is_whitespace() || "'\"\\$`".contains(c)) {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

/// A process group and whether its leader has been reaped (after which its id may be reused,
/// so it is no longer signalled).
#[derive(Debug)]
struct GroupState {
    pgid: Pid,
    reaped: AtomicBool,
}

impl GroupState {
    fn signal(&self, signal: Signal) {
        if self.reaped.load(Ordering::SeqCst) {
            return;
        }
        // ESRCH (no process left in the group) is the expected outcome once it has exited.
        if let Err(e) = killpg(self.pgid, signal)
            && e != nix::errno::Errno::ESRCH
        {
            warn!(pgid = self.pgid.as_raw(), signal = %signal, error = %e, "Cannot signal a command's process group.");
        }
    }
}

/// Kills a command's whole process group with `SIGKILL` when dropped, unless its leader has
/// exited and been waited for.
#[derive(Debug)]
pub struct KillOnDrop(Arc<GroupState>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if !self.0.reaped.load(Ordering::SeqCst) {
            debug!(
                pgid = self.0.pgid.as_raw(),
                "Killing a command's process group."
            );
            self.0.signal(Signal::SIGKILL);
        }
    }
}

/// A started command. Dropping it before the program has exited (and been waited for) kills
/// its whole process group.
#[derive(Debug)]
pub struct Running {
    spec: CommandSpec,
    child: tokio::process::Child,
    group: Arc<GroupState>,
    _guard: KillOnDrop,
    /// The tasks logging standard error (and standard output, with [`Running::log_stdout`]).
    readers: Vec<JoinHandle<()>>,
    tail: Arc<Mutex<VecDeque<String>>>,
    stderr_lines: Arc<AtomicU64>,
    stdout_lines: Arc<AtomicU64>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for h in self.readers.drain(..) {
            h.abort();
        }
    }
}

impl Running {
    /// The program's standard output (once), to be read by the caller.
    pub fn take_stdout(&mut self) -> Option<tokio::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// Log standard output line by line at INFO (for a command without a `target`).
    pub fn log_stdout(&mut self) {
        if let Some(out) = self.child.stdout.take() {
            let log = LineLog {
                task: self.spec.task.clone(),
                stream: OutputStream::Stdout,
                secrets: self.spec.secrets.clone(),
                lines: self.stdout_lines.clone(),
                tail: None,
            };
            self.readers
                .push(tokio::spawn(log.run(tokio::io::BufReader::new(out))));
        }
    }

    /// The process id of the program (also its process group id).
    pub fn pid(&self) -> i32 {
        self.group.pgid.as_raw()
    }

    /// A guard that kills the process group when dropped (unless the program has exited and
    /// been waited for by then).
    pub fn guard(&self) -> KillOnDrop {
        KillOnDrop(self.group.clone())
    }

    /// Send `signal` to the whole process group (nothing once the program has been waited
    /// for).
    pub fn signal_group(&self, signal: Signal) {
        self.group.signal(signal);
    }

    /// Wait for the program to exit, then for its logged output to be read to the end (at
    /// most 2 s longer, in case a background process it started holds it open).
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        let status = self.child.wait().await?;
        self.group.reaped.store(true, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + OUTPUT_GRACE;
        for mut h in self.readers.drain(..) {
            if tokio::time::timeout_at(deadline, &mut h).await.is_err() {
                h.abort();
            }
        }
        Ok(status)
    }

    /// Stop the program: `SIGTERM` to its process group, up to `grace` for it to exit, then
    /// `SIGKILL` to the group (which also stops anything it left behind).
    pub async fn terminate(&mut self, grace: Duration) -> std::io::Result<ExitStatus> {
        info!(task = %self.spec.task, pid = self.pid(), "Stopping command (SIGTERM to its process group).");
        self.group.signal(Signal::SIGTERM);
        let status = match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => {
                // Whatever it started and left behind goes too. The group id cannot have been
                // reused yet: the leader was reaped a moment ago.
                if let Err(e) = killpg(self.group.pgid, Signal::SIGKILL)
                    && e != nix::errno::Errno::ESRCH
                {
                    debug!(error = %e, "Cannot signal the rest of a command's process group.");
                }
                status?
            }
            Err(_) => {
                warn!(task = %self.spec.task, pid = self.pid(), grace_secs = grace.as_secs(), "Command did not stop after SIGTERM; sending SIGKILL.");
                self.group.signal(Signal::SIGKILL);
                self.child.wait().await?
            }
        };
        self.group.reaped.store(true, Ordering::SeqCst);
        for h in self.readers.drain(..) {
            h.abort();
        }
        Ok(status)
    }

    /// Lines written to standard error so far.
    pub fn stderr_lines(&self) -> u64 {
        self.stderr_lines.load(Ordering::Relaxed)
    }

    /// Lines of standard output logged so far (see [`Running::log_stdout`]).
    pub fn stdout_lines(&self) -> u64 {
        self.stdout_lines.load(Ordering::Relaxed)
    }

    /// The last [`STDERR_TAIL_LINES`] lines of standard error, secrets replaced with `***`.
    pub fn stderr_tail(&self) -> Vec<String> {
        self.tail
            .lock()
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether a failure status means the shell could not find or run the program (`sh -c`
    /// exits with 127 or 126 then): a configuration problem rather than a failed run.
    pub fn is_shell_not_found(&self, status: ExitStatus) -> bool {
        self.spec.shell && matches!(status.code(), Some(126 | 127))
    }

    /// "command `…` exited with status N" (or "was killed by signal N (SIGKILL)"), followed by
    /// the tail of standard error.
    pub fn failure_message(&self, status: ExitStatus) -> String {
        let mut msg = format!(
            "command `{}` {}",
            self.spec.display(),
            describe_exit(status)
        );
        if self.is_shell_not_found(status) {
            msg.push_str(" (the shell could not find or run the program)");
        }
        let tail = self.stderr_tail();
        if !tail.is_empty() {
            msg.push_str("; last lines of its standard error:");
            for line in tail {
                msg.push_str("\n  ");
                msg.push_str(&line);
            }
        }
        msg
    }

    /// The command being run.
    pub fn spec(&self) -> &CommandSpec {
        &self.spec
    }
}

/// "exited with status N", or "was killed by signal N (NAME)".
pub fn describe_exit(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        format!("exited with status {code}")
    } else if let Some(sig) = status.signal() {
        match Signal::try_from(sig) {
            Ok(s) => format!("was killed by signal {sig} ({s})"),
            Err(_) => format!("was killed by signal {sig}"),
        }
    } else {
        format!("ended with {status}")
    }
}

/// Which output a [`LineLog`] reads.
#[derive(Debug, Clone, Copy)]
enum OutputStream {
    /// Standard output, logged at INFO.
    Stdout,
    /// Standard error, logged at WARN.
    Stderr,
}

/// Logs a program's output line by line (never holding more than one line), counting lines
/// and optionally keeping the last [`STDERR_TAIL_LINES`].
#[derive(Debug)]
struct LineLog {
    task: String,
    stream: OutputStream,
    secrets: Vec<String>,
    lines: Arc<AtomicU64>,
    tail: Option<Arc<Mutex<VecDeque<String>>>>,
}

impl LineLog {
    /// Read `reader` to its end, logging each line.
    async fn run<R: AsyncRead + Unpin>(self, reader: tokio::io::BufReader<R>) {
        let mut reader = reader;
        let mut buf = Vec::new();
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        loop {
            match read_line_capped(&mut reader, &mut buf).await {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => {
                    debug!(task = %self.task, error = %e, "Stopped reading command output.");
                    break;
                }
            }
            let text = String::from_utf8_lossy(&buf);
            let line = scrub(text.trim_end_matches(['\n', '\r']), &secrets);
            self.lines.fetch_add(1, Ordering::Relaxed);
            match self.stream {
                OutputStream::Stdout => info!(task = %self.task, stream = "stdout", "{line}"),
                OutputStream::Stderr => warn!(task = %self.task, stream = "stderr", "{line}"),
            }
            if let Some(tail) = &self.tail
                && let Ok(mut t) = tail.lock()
            {
                if t.len() == STDERR_TAIL_LINES {
                    t.pop_front();
                }
                t.push_back(line);
            }
        }
    }
}

/// Read one line (up to and including `\n`) into `buf`, keeping at most [`MAX_LINE_BYTES`] of
/// it. `Ok(false)` at the end of the input.
async fn read_line_capped<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<bool> {
    buf.clear();
    let mut any = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(any);
        }
        any = true;
        let (len, done) = match available.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        let room = MAX_LINE_BYTES.saturating_sub(buf.len());
        buf.extend_from_slice(&available[..len.min(room)]);
        reader.consume(len);
        if done {
            return Ok(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(v: serde_json::Value) -> TaskConfig {
        match serde_json::from_value(v) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn spec_env_cwd_and_display() {
        let t = task(serde_json::json!({
            "name": "export", "type": "command",
            "command": ["python3", "my script.py", "--token", "s3cr3t"],
            "cwd": "scripts", "env": {"TOKEN": "s3cr3t"}
        }));
        let spec = CommandSpec::from_task(&t, Path::new("/p"), "r1", &[])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spec.cwd(), Path::new("/p/scripts"));
        assert_eq!(spec.display(), "python3 'my script.py' --token ***");
        let names: Vec<&str> = spec.env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "TOKEN",
                "TRIBUTARY_RUN_ID",
                "TRIBUTARY_TASK",
                "TRIBUTARY_PROJECT_DIR"
            ]
        );
        assert_eq!(spec.scrub("x s3cr3t y"), "x *** y");
    }

    #[test]
    fn relative_program_resolves_against_the_working_folder() {
        let t = task(serde_json::json!({
            "name": "export", "type": "command", "command": ["./run.sh"], "cwd": "bin"
        }));
        let spec = CommandSpec::from_task(&t, Path::new("/p"), "r1", &[])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spec.program_path(), Path::new("/p/bin/./run.sh"));
        let t =
            task(serde_json::json!({"name": "export", "type": "command", "command": "echo hi"}));
        let spec = CommandSpec::from_task(&t, Path::new("/p"), "r1", &[])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spec.program_path(), Path::new("sh"));
        assert_eq!(spec.display(), "echo hi");
    }

    #[test]
    fn exit_descriptions() {
        assert_eq!(
            describe_exit(ExitStatus::from_raw(3 << 8)),
            "exited with status 3"
        );
        assert_eq!(
            describe_exit(ExitStatus::from_raw(9)),
            "was killed by signal 9 (SIGKILL)"
        );
    }
}
