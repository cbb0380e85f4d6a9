//! Commands: running the program of a `command` pipeline task ([`CommandSpec`], [`Running`]),
//! and [`CommandSource`], which loads what a command with a `target` writes to its standard
//! output.
//!
//! # How a command runs
//!
//! A list (`[python3, export.py]`) runs the program directly: a bare name is looked up in
//! `PATH`, a relative path with a `/` (`./scripts/x.sh`) is relative to the working folder. A
//! string runs through `sh -c`. The working folder is `cwd` relative to the project folder
//! (default: the project folder). The environment is Tributary's own, plus the task's `env`,
//! plus `TRIBUTARY_RUN_ID`, `TRIBUTARY_TASK` and `TRIBUTARY_PROJECT_DIR`. Standard input is
//! `/dev/null`. The program runs in its own process group, so that stopping it stops everything
//! it started: dropping a [`Running`] (or the stream of a [`CommandSource`] read) before the
//! program has exited kills the whole group with `SIGKILL`.
//!
//! Standard error goes to the log line by line (WARN, field `task`); the last
//! [`STDERR_TAIL_LINES`] lines are kept for the error message when the program fails. Values
//! of the task's `env` (which may be secrets from `${env:…}`) are replaced with `***` in
//! logged lines and in errors.
//!
//! # Output loaded into a table
//!
//! With `format: arrow`, standard output is an Arrow IPC *stream* (what
//! `pyarrow.ipc.new_stream(sys.stdout.buffer, schema)` writes); its schema is normalized for
//! Delta Lake like a Parquet file's (unsigned integers widen, nanosecond timestamps become
//! microseconds, large and view strings become plain ones, …). With `format: ndjson`, one JSON
//! object per line, typed exactly like an NDJSON file: the schema is inferred from the first
//! 1000 records, and a later record with a field not among them is an error naming the line and
//! the field (never silently dropped), and so is a malformed line (`on_error` does not apply
//! to commands). `format: auto` (the default) reads an Arrow IPC stream
//! when the output starts with the IPC continuation marker (`0xFFFFFFFF`), else NDJSON. Output
//! is read in batches (bounded memory, whatever its size). Empty output is an error ("command
//! produced no output; nothing to load"), except for an Arrow IPC stream with a schema and no
//! batch, which loads an empty table. A program that exits with a failure status after writing
//! output makes the stream end with an error, so nothing of it is committed.

mod process;
mod source;

pub use process::{CommandSpec, KillOnDrop, Running, STDERR_TAIL_LINES, describe_exit};
pub use source::CommandSource;
pub(crate) use source::{BatchSender, ChannelSink};
