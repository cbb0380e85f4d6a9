//! Errors of the state store. Every message names the store (its location, password redacted)
//! and what was being done; driver messages are scrubbed of the password before they are kept.

/// A failure of the run-state store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The `state:` setting is not a location Tributary can use.
    #[error(
        "invalid state store location `{location}`: {reason} (expected sqlite://PATH, postgres://USER@HOST:PORT/DB or postgresql://…, optionally with ?schema=NAME)"
    )]
    InvalidLocation {
        /// The setting, password redacted.
        location: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The store could not be reached or opened (refused connection, unwritable folder, …).
    #[error("cannot open the state store {location}: {message}")]
    Unavailable {
        /// The store, password redacted.
        location: String,
        /// The driver's message, scrubbed.
        message: String,
    },
    /// A schema migration failed; the store was left at its previous version.
    #[error(
        "state store {location}: migration {version} ({description}) failed: {message}; the store was left unchanged"
    )]
    Migration {
        /// The store, password redacted.
        location: String,
        /// The migration's version.
        version: u32,
        /// What the migration does.
        description: String,
        /// The driver's message, scrubbed.
        message: String,
    },
    /// The store was written by a newer Tributary.
    #[error(
        "state store {location} has schema version {found}, but this Tributary knows versions up to {known}: upgrade Tributary"
    )]
    TooNew {
        /// The store, password redacted.
        location: String,
        /// The version found in the store.
        found: u32,
        /// The newest version this build knows.
        known: u32,
    },
    /// A query or statement failed.
    #[error("state store {location}: {operation} failed: {message}")]
    Query {
        /// The store, password redacted.
        location: String,
        /// What was being done, e.g. `create_run run 2025…`.
        operation: String,
        /// The driver's message, scrubbed.
        message: String,
        /// Whether the connection was lost (retrying may succeed).
        connection_lost: bool,
    },
    /// A run id prefix matched more than one run.
    #[error(
        "state store {location}: run id `{prefix}` is ambiguous, it matches {}{}: give more characters",
        matches.join(", "),
        if *truncated { ", …" } else { "" }
    )]
    AmbiguousRunId {
        /// The store, password redacted.
        location: String,
        /// The prefix given.
        prefix: String,
        /// Some of the runs it matches.
        matches: Vec<String>,
        /// Whether there are more matches than listed.
        truncated: bool,
    },
    /// `heartbeat` or `finish_run` named a run that was never created.
    #[error("state store {location}: no run `{run_id}` to {operation}")]
    UnknownRun {
        /// The store, password redacted.
        location: String,
        /// The run id given.
        run_id: String,
        /// What was being done.
        operation: String,
    },
    /// A stored value could not be read back (edited by hand, or written by a buggy version).
    #[error("state store {location}: {place}: cannot read `{value}`: {reason}")]
    Corrupt {
        /// The store, password redacted.
        location: String,
        /// Where the value is: `table runs, column status, row run_id=…`.
        place: String,
        /// The stored value (never a secret: the store holds none).
        value: String,
        /// Why it cannot be read.
        reason: String,
    },
    /// A value given to the store does not fit its column (e.g. a row count above 2^63).
    #[error("state store {location}: {operation}: {field} = {value} is out of range")]
    OutOfRange {
        /// The store, password redacted.
        location: String,
        /// What was being done.
        operation: String,
        /// The field.
        field: String,
        /// The value.
        value: String,
    },
    /// A bug in Tributary.
    #[error("internal error in the state store {location}: {message}; please report this")]
    Internal {
        /// The store, password redacted.
        location: String,
        /// What went wrong.
        message: String,
    },
}

impl StateError {
    /// A [`StateError::Corrupt`] naming the table, column and row.
    pub(crate) fn corrupt(
        location: &str,
        table: &str,
        column: &str,
        key: &str,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> StateError {
        StateError::Corrupt {
            location: location.to_string(),
            place: format!("table {table}, column {column}, row {key}"),
            value: value.into(),
            reason: reason.into(),
        }
    }

    /// Whether trying the same operation again later may succeed (the store was unreachable or
    /// the connection was lost).
    pub fn is_retryable(&self) -> bool {
        self.class().is_retryable()
    }

    /// What kind of failure this is: an unreachable store or a lost connection is
    /// `connection` (retried); a bad location is `config`; a stored value that cannot be read
    /// is `data`; the rest (a migration, a store newer than this binary, a query) `task`.
    pub fn class(&self) -> crate::ErrorClass {
        use crate::ErrorClass;
        match self {
            StateError::Unavailable { .. } => ErrorClass::Connection,
            StateError::Query {
                connection_lost: true,
                ..
            } => ErrorClass::Connection,
            StateError::InvalidLocation { .. }
            | StateError::AmbiguousRunId { .. }
            | StateError::UnknownRun { .. } => ErrorClass::Config,
            StateError::Corrupt { .. } | StateError::OutOfRange { .. } => ErrorClass::Data,
            _ => ErrorClass::Task,
        }
    }
}
