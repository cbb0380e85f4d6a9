//! [`CommandSource`]: a command's standard output (Arrow IPC or NDJSON) loaded into a table.

use std::io::{BufReader, Read};
use std::path::Path;
use std::pin::Pin;
use std::process::ExitStatus;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::ipc::reader::StreamReader;
use deltalake::arrow::record_batch::RecordBatch;
use futures::{Stream, StreamExt};
use nix::sys::signal::Signal;
use tokio::sync::{mpsc, oneshot};
use tracing::debug;
use tributary_core::pipeline::{OutputFormat, TaskConfig};
use tributary_core::{
    BatchStream, ErrorClass, ReadRequest, Source, SourceBatch, SourceError, SourceStream,
};

use crate::files::ndjson::{INFER_RECORDS, Line, Lines, NdjsonPlan, RecordSink};
use crate::util::normalize_schema_for_delta;
use crate::util::{DEFAULT_FILE_BATCH_SIZE, batch_channel, normalize_batch_for_delta};

use super::process::{CommandSpec, KillOnDrop, Running};

/// How long to wait for a program whose output did not decode to exit by itself, so that its
/// exit status (the likelier explanation) is reported.
const EXIT_GRACE: Duration = Duration::from_secs(1);
/// The first bytes of an Arrow IPC stream message (the continuation marker).
const IPC_MARKER: [u8; 4] = [0xFF, 0xFF, 0xFF, 0xFF];

/// The standard output of a `command` task with a `target`, as a source: each read runs the
/// program and decodes its output (see the [module documentation](self)). Batches' origin is
/// `command:<task name>`.
#[derive(Debug, Clone)]
pub struct CommandSource {
    spec: CommandSpec,
    format: OutputFormat,
    origin: Arc<str>,
}

impl CommandSource {
    /// The source for `task` (its `command`, `cwd`, `env` and `format`); see
    /// [`CommandSpec::from_task`] for the other arguments.
    pub fn new(
        task: &TaskConfig,
        project_root: &Path,
        run_id: &str,
        extra_env: &[(String, String)],
    ) -> Result<CommandSource, SourceError> {
        Ok(CommandSource {
            spec: CommandSpec::from_task(task, project_root, run_id, extra_env)?,
            format: task.format,
            origin: format!("command:{}", task.name).into(),
        })
    }
}

#[async_trait]
impl Source for CommandSource {
    async fn check(&self) -> Result<(), SourceError> {
        self.spec.check()
    }

    async fn read(&self, request: ReadRequest) -> Result<SourceStream, SourceError> {
        let mut running = self.spec.spawn()?;
        // Kills the program if this read is dropped before it ends (also while waiting for the
        // schema below).
        let guard = running.guard();
        let stdout = running
            .take_stdout()
            .ok_or_else(|| SourceError::Internal("the command's standard output is gone".into()))?
            .into_owned_fd()
            .map_err(|e| SourceError::Io {
                location: format!("standard output of task `{}`", self.spec.task),
                class: ErrorClass::of_file_io(&e),
                reason: e.to_string(),
            })?;
        let (schema_tx, schema_rx) = oneshot::channel();
        let (tx, batches) = batch_channel();
        let job = OutputJob {
            display: format!("standard output of task `{}`", self.spec.task),
            running,
            format: self.format,
            origin: self.origin.clone(),
            request,
        };
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            job.run(&handle, std::fs::File::from(stdout), schema_tx, tx)
        });
        match schema_rx.await {
            Ok(Ok(schema)) => Ok(SourceStream::rows_only(
                schema,
                GuardedStream {
                    inner: batches,
                    _guard: guard,
                }
                .boxed(),
            )),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(SourceError::Internal(
                "the command reader thread ended before announcing the schema".into(),
            )),
        }
    }
}

/// A batch stream that kills the command's process group when dropped early.
struct GuardedStream {
    inner: BatchStream,
    _guard: KillOnDrop,
}

impl Stream for GuardedStream {
    type Item = Result<SourceBatch, SourceError>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

pub(crate) type BatchSender = mpsc::Sender<Result<SourceBatch, SourceError>>;
type SchemaSender = oneshot::Sender<Result<SchemaRef, SourceError>>;

/// Announce the schema; `false` when the reader is gone.
fn announce(schema_tx: &mut Option<SchemaSender>, schema: SchemaRef) -> bool {
    schema_tx
        .take()
        .map(|stx| stx.send(Ok(schema)).is_ok())
        .unwrap_or(false)
}

/// Decodes a command's standard output on a blocking thread.
struct OutputJob {
    display: String,
    running: Running,
    format: OutputFormat,
    origin: Arc<str>,
    request: ReadRequest,
}

/// Sends decoded NDJSON batches (with their origin) into a read's channel; every malformed
/// record fails the read, naming `display` and the line.
pub(crate) struct ChannelSink<'a> {
    pub(crate) tx: &'a BatchSender,
    pub(crate) origin: Arc<str>,
    pub(crate) display: &'a str,
}

impl RecordSink for ChannelSink<'_> {
    fn bad_record(&mut self, line: u64, reason: String, _raw: &str) -> Result<(), SourceError> {
        Err(SourceError::BadRecord {
            file: self.display.to_string(),
            line,
            reason,
        })
    }
    fn send(&mut self, batch: RecordBatch) -> bool {
        send(self.tx, batch, &self.origin)
    }
}

fn send(tx: &BatchSender, batch: RecordBatch, origin: &Arc<str>) -> bool {
    tx.blocking_send(Ok(SourceBatch {
        batch,
        origin: origin.clone(),
    }))
    .is_ok()
}

/// How decoding the output ended.
enum Decoded {
    /// The output was read to its end.
    End,
    /// The consumer dropped the stream.
    Gone,
    /// The output was empty.
    Empty,
}

impl OutputJob {
    fn run(
        mut self,
        handle: &tokio::runtime::Handle,
        stdout: std::fs::File,
        schema_tx: SchemaSender,
        tx: BatchSender,
    ) {
        let mut schema_tx = Some(schema_tx);
        let error = match self.decode(stdout, &mut schema_tx, &tx) {
            Ok(Decoded::Gone) => {
                self.running.signal_group(Signal::SIGKILL);
                let _ = handle.block_on(self.running.wait());
                return;
            }
            Ok(decoded) => match handle.block_on(self.running.wait()) {
                Ok(status) if status.success() => match decoded {
                    Decoded::Empty => Some(SourceError::BadRecord {
                        file: self.display.clone(),
                        line: 0,
                        reason: format!(
                            "command produced no output; nothing to load (`{}` exited with status 0)",
                            self.running.spec().display()
                        ),
                    }),
                    _ => None,
                },
                Ok(status) => Some(self.exit_error(status)),
                Err(e) => Some(self.io_error(e)),
            },
            Err(decode_error) => {
                // A program that failed usually explains a broken output better than the
                // decoder does: give it a moment to exit by itself.
                let exited = handle
                    .block_on(async { tokio::time::timeout(EXIT_GRACE, self.running.wait()).await })
                    .ok()
                    .and_then(Result::ok);
                match exited {
                    Some(status) if !status.success() => Some(self.exit_error(status)),
                    Some(_) => Some(decode_error),
                    None => {
                        self.running.signal_group(Signal::SIGKILL);
                        let _ = handle.block_on(self.running.wait());
                        Some(decode_error)
                    }
                }
            }
        };
        if let Some(e) = error {
            match schema_tx.take() {
                Some(stx) => {
                    let _ = stx.send(Err(e));
                }
                None => {
                    let _ = tx.blocking_send(Err(e));
                }
            }
        } else {
            debug!(task = %self.running.spec().task(), "Command output loaded.");
        }
    }

    fn exit_error(&self, status: ExitStatus) -> SourceError {
        SourceError::Io {
            location: format!("task `{}`", self.running.spec().task()),
            reason: self.running.failure_message(status),
            // A command that failed: as for a command task, its own retries decide.
            class: ErrorClass::Task,
        }
    }

    fn io_error(&self, e: std::io::Error) -> SourceError {
        SourceError::Io {
            location: self.display.clone(),
            class: ErrorClass::of_file_io(&e),
            reason: e.to_string(),
        }
    }

    fn decode(
        &mut self,
        stdout: std::fs::File,
        schema_tx: &mut Option<SchemaSender>,
        tx: &BatchSender,
    ) -> Result<Decoded, SourceError> {
        let mut raw = stdout;
        let mut head = [0u8; 4];
        let mut got = 0;
        while got < head.len() {
            match raw.read(&mut head[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_error(e)),
            }
        }
        if got == 0 {
            return Ok(Decoded::Empty);
        }
        let reader = BufReader::with_capacity(
            256 * 1024,
            std::io::Cursor::new(head[..got].to_vec()).chain(raw),
        );
        let arrow = match self.format {
            OutputFormat::Arrow => true,
            OutputFormat::Ndjson => false,
            OutputFormat::Auto => head[..got] == IPC_MARKER,
        };
        let batch_size = match self.request.batch_size {
            0 => DEFAULT_FILE_BATCH_SIZE,
            n => n,
        };
        if arrow {
            let reader =
                StreamReader::try_new(reader, None).map_err(|e| SourceError::BadRecord {
                    file: self.display.clone(),
                    line: 0,
                    reason: format!("not an Arrow IPC stream: {e}"),
                })?;
            let schema = Arc::new(normalize_schema_for_delta(&reader.schema()).map_err(|e| {
                SourceError::UnsupportedType {
                    table: self.request.table.name.clone(),
                    column: e.column,
                    source_type: e.source_type,
                    reason: e.reason,
                }
            })?);
            if !announce(schema_tx, schema.clone()) {
                return Ok(Decoded::Gone);
            }
            for batch in reader {
                let batch = batch.map_err(|e| SourceError::BadRecord {
                    file: self.display.clone(),
                    line: 0,
                    reason: format!("reading the Arrow IPC stream: {e}"),
                })?;
                let normalized =
                    normalize_batch_for_delta(&batch).map_err(|e| SourceError::BadValue {
                        table: self.request.table.name.clone(),
                        column: e.column,
                        source_type: e.source_type,
                        value: e.value.unwrap_or_default(),
                        reason: e.reason,
                    })?;
                let batch = RecordBatch::try_new(schema.clone(), normalized.columns().to_vec())
                    .map_err(|e| {
                        SourceError::Internal(format!("assembling an Arrow IPC batch: {e}"))
                    })?;
                let mut offset = 0;
                while offset < batch.num_rows() {
                    let len = batch_size.min(batch.num_rows() - offset);
                    if !send(tx, batch.slice(offset, len), &self.origin) {
                        return Ok(Decoded::Gone);
                    }
                    offset += len;
                }
            }
            return Ok(Decoded::End);
        }

        let mut lines = Lines::new(Box::new(reader));
        let display = self.display.clone();
        let mut next = std::iter::from_fn(move || {
            lines
                .next_line()
                .map_err(|e| SourceError::Io {
                    location: display.clone(),
                    class: ErrorClass::of_file_io(&e),
                    reason: e.to_string(),
                })
                .transpose()
        });
        // The records the schema is inferred from are read again to be loaded.
        let mut sample: Vec<Line> = Vec::new();
        let plan = {
            let mut recording = (&mut next).inspect(|l| {
                if let Ok(l) = l {
                    sample.push(l.clone());
                }
            });
            NdjsonPlan::infer_from(&self.request.table, &mut recording, &self.display)?
        };
        let Some(plan) = plan else {
            // Only blank lines.
            return Ok(Decoded::Empty);
        };
        debug!(task = %self.running.spec().task(), records = sample.len().min(INFER_RECORDS), "Inferred the command output's schema.");
        if !announce(schema_tx, plan.schema()) {
            return Ok(Decoded::Gone);
        }
        let mut all = sample.into_iter().map(Ok).chain(next);
        let more = plan.read_lines(
            &mut all,
            &self.display,
            batch_size,
            &mut ChannelSink {
                tx,
                origin: self.origin.clone(),
                display: &self.display,
            },
        )?;
        Ok(if more { Decoded::End } else { Decoded::Gone })
    }
}
