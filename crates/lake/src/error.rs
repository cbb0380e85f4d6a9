use deltalake::DeltaTableError;

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
    /// A query failed.
    #[error("query failed: {0}")]
    Query(String),
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
        if self.is_conflict() {
            return true;
        }
        match self {
            LakeError::Delta { source, .. } => matches!(
                source.as_ref(),
                DeltaTableError::ObjectStore { .. } | DeltaTableError::Io { .. }
            ),
            _ => false,
        }
    }
}
