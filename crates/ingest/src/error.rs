//! What can go wrong in a load. Every variant names the table (or what was being read), keeps
//! the error it wraps as its `source()` so the orchestrator can classify it (a refused
//! connection is retried, a bad setting is not), and leaves the table as it was.

use deltalake::arrow::error::ArrowError;
use deltalake::datafusion::error::DataFusionError;
use tributary_core::{ErrorClass, SourceError};
use tributary_lake::{LakeError, datafusion_class, delta_class};

/// Errors of a bronze load.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The table's configuration or the command line asks for something this table cannot do
    /// (an undefined connection, a changed cursor, a backfill of a table that was never loaded).
    #[error("{message}")]
    Config {
        /// `layer.name`.
        table: String,
        /// What is wrong and what to do, naming the file or flag.
        message: String,
    },
    /// A value the load cannot use (a cursor value of an unsupported type, a bound that does
    /// not fit the cursor column).
    #[error("{message}")]
    Data {
        /// `layer.name`.
        table: String,
        /// Which column and value, and why.
        message: String,
    },
    /// The source failed while opening or reading. The message is `reading <source>`; the
    /// source's own error follows as the cause.
    #[error("reading {source_label}")]
    Read {
        /// `connection:table`, or a command task's name.
        source_label: String,
        /// The connector's error.
        #[source]
        source: Box<SourceError>,
    },
    /// Opening the connector failed (a malformed URL, a missing file).
    #[error(transparent)]
    Open(Box<SourceError>),
    /// A lake operation (open, schema check, write, commit) failed.
    #[error(transparent)]
    Lake(#[from] LakeError),
    /// Reading what the table already holds (keys in the lookback window, files loaded before)
    /// failed.
    #[error("{table}: {what}")]
    ReadLoaded {
        /// `layer.name`.
        table: String,
        /// What was being read.
        what: &'static str,
        /// DataFusion's or delta-rs's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An Arrow operation on the rows failed (filtering, building the metadata columns).
    #[error("{table}: {what}")]
    Arrow {
        /// `layer.name`.
        table: String,
        /// What was being done.
        what: &'static str,
        /// Arrow's error.
        #[source]
        source: ArrowError,
    },
    /// A bug in Tributary.
    #[error("internal error in the load of {table}: {message}; please report it")]
    Internal {
        /// `layer.name`.
        table: String,
        /// What went wrong.
        message: String,
    },
}

impl IngestError {
    /// What kind of failure this is: the connector's, the lake's or the engine's class where
    /// the error was born; `config`, `data` and `internal` for the loader's own errors.
    pub fn class(&self) -> ErrorClass {
        match self {
            IngestError::Config { .. } => ErrorClass::Config,
            IngestError::Data { .. } | IngestError::Arrow { .. } => ErrorClass::Data,
            IngestError::Read { source, .. } | IngestError::Open(source) => source.class(),
            IngestError::Lake(e) => e.class(),
            IngestError::ReadLoaded { source, .. } => {
                if let Some(e) = source.downcast_ref::<DataFusionError>() {
                    datafusion_class(e)
                } else if let Some(e) = source.downcast_ref::<LakeError>() {
                    e.class()
                } else if let Some(e) = source.downcast_ref::<deltalake::DeltaTableError>() {
                    delta_class(e)
                } else {
                    ErrorClass::Task
                }
            }
            IngestError::Internal { .. } => ErrorClass::Internal,
        }
    }

    /// A [`IngestError::ReadLoaded`] from DataFusion's error.
    pub(crate) fn loaded(table: &str, what: &'static str, e: DataFusionError) -> IngestError {
        IngestError::ReadLoaded {
            table: table.to_string(),
            what,
            source: Box::new(e),
        }
    }

    /// A [`IngestError::Arrow`].
    pub(crate) fn arrow(table: &str, what: &'static str, e: ArrowError) -> IngestError {
        IngestError::Arrow {
            table: table.to_string(),
            what,
            source: e,
        }
    }
}
