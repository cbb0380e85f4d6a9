//! Small pieces shared by the connectors.

use futures::StreamExt;
use tokio::sync::mpsc;
use tributary_core::{BatchStream, SourceBatch, SourceError};

/// Default rows per batch for database sources.
pub const DEFAULT_BATCH_SIZE: usize = 10_000;
/// Default rows per batch for file sources.
pub const DEFAULT_FILE_BATCH_SIZE: usize = 8_192;

/// How many batches a producer may run ahead of the consumer. Small and fixed, so memory is
/// bounded by `batch_size × CHANNEL_BATCHES`, whatever the table size.
pub const CHANNEL_BATCHES: usize = 2;

/// A bounded channel whose receiving end is a [`BatchStream`]. Producers (a blocking thread for
/// SQLite, a task for network drivers) send into the `Sender`; when the consumer stops pulling,
/// `send` waits, and when the consumer drops the stream, `send` fails and the producer stops.
pub fn batch_channel() -> (mpsc::Sender<Result<SourceBatch, SourceError>>, BatchStream) {
    let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
    let stream = tokio_stream_from(rx);
    (tx, stream)
}

fn tokio_stream_from(rx: mpsc::Receiver<Result<SourceBatch, SourceError>>) -> BatchStream {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
        .boxed()
}
