use deltalake::DeltaTableError;
use deltalake::datafusion::error::DataFusionError;
use tributary_core::ErrorClass;

/// Errors from the lake.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    /// The lake location is not usable.
    #[error("lake location {location}: {reason}")]
    Location {
        /// The configured location (secrets removed).
        location: String,
        /// What is wrong.
        reason: String,
    },
    /// A Delta operation on a table failed.
    #[error("table {table}: {operation} failed: {source}")]
    Delta {
        /// `layer.name`.
        table: String,
        /// What we were doing (open, write, commit, …).
        operation: &'static str,
        /// delta-rs's error (part of the message, not a separate cause, so chains print once).
        source: Box<DeltaTableError>,
    },
    /// New rows do not fit the table's schema.
    #[error("table {table}: {reason}")]
    Schema {
        /// `layer.name`.
        table: String,
        /// Which column and types clash, and what to do.
        reason: String,
    },
    /// The incoming schema differs from the table's in a way the `on_schema_change` policy
    /// refuses. Nothing was written.
    #[error("table {table}: the schema changed in a way on_schema_change refuses:\n{diff}\n{hint}")]
    SchemaChange {
        /// `layer.name`.
        table: String,
        /// The whole diff, one aligned line per column ([`crate::schema::SchemaDiff::render`]).
        diff: String,
        /// Which rule refused it and how to proceed.
        hint: String,
    },
    /// Reading the files added after a version met a commit that removed or rewrote rows
    /// (update, delete, merge, overwrite): the added files alone would not tell that change.
    #[error(
        "table {table}: version {version} ({operation}) removed or rewrote rows, which reading only the files added since the last load cannot follow"
    )]
    DataRemoved {
        /// The table (name or location).
        table: String,
        /// The commit's version.
        version: u64,
        /// The commit's operation (`DELETE`, `UPDATE`, `MERGE`, `WRITE`, …).
        operation: String,
    },
    /// A commit an incremental read needs is no longer in the table's transaction log.
    #[error(
        "table {table}: version {version} is no longer in the transaction log (log retention removed it)"
    )]
    CommitMissing {
        /// The table (name or location).
        table: String,
        /// The missing version.
        version: u64,
    },
    /// Files a commit added were compacted away and then vacuumed, so what it added can no
    /// longer be read.
    #[error(
        "table {table}: the files version {version} added were compacted and then vacuumed (e.g. `{path}`), so its rows can no longer be read on their own"
    )]
    FilesVacuumed {
        /// The table (name or location).
        table: String,
        /// The commit that added them.
        version: u64,
        /// One of the missing files.
        path: String,
    },
    /// A query failed.
    #[error("query failed: {0}")]
    Query(String),
    /// Planning a scan of a table failed.
    #[error("table {table}: {doing}: {message}")]
    Scan {
        /// The table (name or location).
        table: String,
        /// What was being planned.
        doing: String,
        /// The engine's message.
        message: String,
        /// What kind of failure, read from the engine's error.
        class: ErrorClass,
    },
    /// A table's stored watermark cannot be read.
    #[error(
        "table {table}: the stored watermark is unreadable ({reason}); run with --full-refresh to reload the table"
    )]
    Watermark {
        /// `layer.name`.
        table: String,
        /// Parse error.
        reason: String,
    },
}

impl LakeError {
    /// A delta-rs failure on `table` while doing `operation`.
    pub fn delta(table: &str, operation: &'static str, source: DeltaTableError) -> Self {
        LakeError::Delta {
            table: table.to_string(),
            operation,
            source: Box::new(source),
        }
    }

    /// Whether a commit lost a race that delta-rs could not resolve by itself: another writer
    /// committed a version that conflicts with this one (both replaced the same files, or
    /// changed the table's metadata), or the commit ran out of attempts. Running the whole
    /// operation again, on the new version, may succeed.
    pub fn is_conflict(&self) -> bool {
        use deltalake::kernel::transaction::TransactionError;
        match self {
            LakeError::Delta { source, .. } => matches!(
                source.as_ref(),
                DeltaTableError::VersionAlreadyExists(_)
                    | DeltaTableError::Transaction {
                        source: TransactionError::CommitConflict(_)
                            | TransactionError::MaxCommitAttempts(_)
                            | TransactionError::VersionAlreadyExists(_)
                    }
            ),
            _ => false,
        }
    }

    /// Whether the operation may succeed when retried (storage trouble, commit conflicts).
    pub fn is_retryable(&self) -> bool {
        self.class().is_retryable()
    }

    /// What kind of failure this is, read from the error where it was born: a commit conflict,
    /// the object store's variant, the I/O error's kind, delta-rs's variant; the text of
    /// [`ErrorClass::from_library_text`] only for delta-rs's text-only variants.
    pub fn class(&self) -> ErrorClass {
        match self {
            LakeError::Location { .. } => ErrorClass::Config,
            LakeError::Delta { source, .. } => delta_class(source),
            LakeError::Schema { .. } | LakeError::SchemaChange { .. } => ErrorClass::Data,
            LakeError::DataRemoved { .. }
            | LakeError::CommitMissing { .. }
            | LakeError::FilesVacuumed { .. } => ErrorClass::Config,
            LakeError::Query(text) => {
                ErrorClass::from_library_text(text).unwrap_or(ErrorClass::Task)
            }
            LakeError::Watermark { .. } => ErrorClass::Data,
            LakeError::Scan { class, .. } => *class,
        }
    }
}

/// The class of a delta-rs error.
pub fn delta_class(e: &DeltaTableError) -> ErrorClass {
    use deltalake::kernel::transaction::TransactionError;
    match e {
        DeltaTableError::VersionAlreadyExists(_)
        | DeltaTableError::Transaction {
            source:
                TransactionError::CommitConflict(_)
                | TransactionError::MaxCommitAttempts(_)
                | TransactionError::VersionAlreadyExists(_),
        } => ErrorClass::Conflict,
        DeltaTableError::Transaction {
            source: TransactionError::ObjectStore { source },
        } => ErrorClass::of_object_store(source),
        DeltaTableError::ObjectStore { source } => ErrorClass::of_object_store(source),
        DeltaTableError::Io { source } => ErrorClass::of_io(source).unwrap_or(ErrorClass::Task),
        DeltaTableError::NotATable(_)
        | DeltaTableError::InvalidTableLocation(_)
        | DeltaTableError::MissingFeature { .. }
        | DeltaTableError::InvalidPartitionFilter { .. }
        | DeltaTableError::ChangeDataNotEnabled { .. }
        | DeltaTableError::ChangeDataNotRecorded { .. }
        | DeltaTableError::InvalidVersion(_) => ErrorClass::Config,
        DeltaTableError::InvalidData { .. }
        | DeltaTableError::SchemaMismatch { .. }
        | DeltaTableError::Arrow { .. }
        | DeltaTableError::Parquet { .. } => ErrorClass::Data,
        // Text-only variants: the documented fallback.
        other => ErrorClass::from_library_text(&tributary_core::error_chain(other))
            .unwrap_or(ErrorClass::Task),
    }
}

/// The class of a DataFusion error (a model's query, a scan of a lake table): the object
/// store's or I/O error's class when one is inside, `config` for planning and SQL errors,
/// `data` for Arrow and Parquet errors, the class of a Tributary or delta-rs error carried as
/// `External`; the text of [`ErrorClass::from_library_text`] only for the text-only variants
/// (`Execution`, an unknown `External`).
pub fn datafusion_class(e: &DataFusionError) -> ErrorClass {
    match e {
        DataFusionError::ObjectStore(e) => ErrorClass::of_object_store(e),
        DataFusionError::IoError(e) => ErrorClass::of_io(e).unwrap_or(ErrorClass::Task),
        DataFusionError::ArrowError(..) | DataFusionError::ParquetError(_) => ErrorClass::Data,
        DataFusionError::SQL(..)
        | DataFusionError::Plan(_)
        | DataFusionError::SchemaError(..)
        | DataFusionError::Configuration(_)
        | DataFusionError::NotImplemented(_) => ErrorClass::Config,
        DataFusionError::Internal(_) => ErrorClass::Internal,
        DataFusionError::Context(_, inner) => datafusion_class(inner),
        DataFusionError::Shared(inner) => datafusion_class(inner),
        DataFusionError::Diagnostic(_, inner) => datafusion_class(inner),
        DataFusionError::External(inner) => {
            if let Some(e) = inner.downcast_ref::<LakeError>() {
                e.class()
            } else if let Some(e) = inner.downcast_ref::<DeltaTableError>() {
                delta_class(e)
            } else if let Some(e) = inner.downcast_ref::<DataFusionError>() {
                datafusion_class(e)
            } else if let Some(e) = inner.downcast_ref::<std::io::Error>() {
                ErrorClass::of_io(e).unwrap_or(ErrorClass::Task)
            } else {
                ErrorClass::from_library_text(&tributary_core::error_chain(inner.as_ref()))
                    .unwrap_or(ErrorClass::Task)
            }
        }
        other => ErrorClass::from_library_text(&other.to_string()).unwrap_or(ErrorClass::Task),
    }
}
