//! Error classes: what kind of failure a task had, and whether retrying it can help.
//!
//! Retries are only for failures of the environment (a refused or reset connection, a timeout,
//! HTTP 429 or 5xx, a serialization failure or deadlock in the source database). Configuration
//! and data errors fail at once: running the same thing again gives the same answer.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tributary_core::SourceError;
use tributary_ingest::IngestError;
use tributary_lake::LakeError;

/// The class of a task failure, stored with every attempt in the run history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Invalid configuration or usage: a missing table, a bad setting. Not retried.
    Config,
    /// Bad data: a value that cannot be loaded, a failed expectation, a malformed record. Not
    /// retried.
    Data,
    /// Could not reach the source or sink: refused, reset, DNS, TLS handshake. Retried.
    Connection,
    /// An operation or the task itself took too long. Retried.
    Timeout,
    /// HTTP 429 Too Many Requests, or the source's "too many connections". Retried.
    RateLimited,
    /// HTTP 5xx, or the database shutting down or starting up. Retried.
    ServerError,
    /// A serialization failure, deadlock or lock timeout in the source database. Retried.
    Serialization,
    /// Another writer committed a version of the table that conflicts with this task's commit,
    /// and delta-rs could not resolve it by itself. Retried: the next attempt works on the new
    /// version.
    Conflict,
    /// The run was cancelled (Ctrl-C, SIGTERM, `--fail-fast`). Not retried.
    Cancelled,
    /// A command exited with a failure status, an HTTP call got an unexpected status, or any
    /// error Tributary cannot classify. Not retried.
    Task,
    /// A bug in Tributary. Not retried.
    Internal,
}

impl ErrorClass {
    /// Whether running the task again may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorClass::Connection
                | ErrorClass::Timeout
                | ErrorClass::RateLimited
                | ErrorClass::ServerError
                | ErrorClass::Serialization
                | ErrorClass::Conflict
        )
    }

    /// The name stored in the state store and shown to users (`connection`, `data`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Config => "config",
            ErrorClass::Data => "data",
            ErrorClass::Connection => "connection",
            ErrorClass::Timeout => "timeout",
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::ServerError => "server_error",
            ErrorClass::Serialization => "serialization",
            ErrorClass::Conflict => "conflict",
            ErrorClass::Cancelled => "cancelled",
            ErrorClass::Task => "task",
            ErrorClass::Internal => "internal",
        }
    }

    /// Parse a stored name; unknown names read as [`ErrorClass::Task`].
    pub fn parse(s: &str) -> ErrorClass {
        match s {
            "config" => ErrorClass::Config,
            "data" => ErrorClass::Data,
            "connection" => ErrorClass::Connection,
            "timeout" => ErrorClass::Timeout,
            "rate_limited" => ErrorClass::RateLimited,
            "server_error" => ErrorClass::ServerError,
            "serialization" => ErrorClass::Serialization,
            "conflict" => ErrorClass::Conflict,
            "cancelled" => ErrorClass::Cancelled,
            "internal" => ErrorClass::Internal,
            _ => ErrorClass::Task,
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A boxed error and its causes.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A task failure with its class, and optionally how long to wait before retrying (an HTTP
/// `Retry-After`). Every task runner returns it: the class is decided where the error is born
/// (or, for errors that reach us from libraries, by [`classify`]).
#[derive(Debug, thiserror::Error)]
#[error("{}", tributary_core::error_chain(error.as_ref()))]
pub struct TaskError {
    /// What kind of failure.
    pub class: ErrorClass,
    /// The failure, with its causes.
    pub error: BoxError,
    /// The server asked to wait this long before the next attempt.
    pub retry_after: Option<Duration>,
}

impl TaskError {
    /// A failure of the given class (an error, or a message: `String` and `&str` convert).
    pub fn new(class: ErrorClass, error: impl Into<BoxError>) -> TaskError {
        TaskError {
            class,
            error: error.into(),
            retry_after: None,
        }
    }

    /// A failure whose class [`classify`] reads from the error and its causes.
    pub fn classified(error: impl Into<BoxError>) -> TaskError {
        let error = error.into();
        TaskError {
            class: classify(error.as_ref()),
            error,
            retry_after: None,
        }
    }

    /// Ask the executor to wait at least this long before the next attempt.
    pub fn with_retry_after(mut self, wait: Option<Duration>) -> TaskError {
        self.retry_after = wait;
        self
    }
}

/// The class of an error, from the first cause in its chain that says something definite;
/// then, for errors that reach us only as text (several drivers, some delta-rs and DataFusion
/// variants), the documented words of [`classify_message`]; else [`ErrorClass::Task`].
pub fn classify(error: &(dyn std::error::Error + 'static)) -> ErrorClass {
    let mut cause = Some(error);
    while let Some(c) = cause {
        if let Some(class) = classify_one(c) {
            return class;
        }
        cause = c.source();
    }
    classify_message(&tributary_core::error_chain(error)).unwrap_or(ErrorClass::Task)
}

fn classify_one(cause: &(dyn std::error::Error + 'static)) -> Option<ErrorClass> {
    if let Some(t) = cause.downcast_ref::<TaskError>() {
        return Some(t.class);
    }
    if let Some(e) = cause.downcast_ref::<SourceError>() {
        return classify_source(e);
    }
    if let Some(e) = cause.downcast_ref::<IngestError>() {
        return match e {
            IngestError::Open(e) | IngestError::Read { source: e, .. } => classify_source(e),
            IngestError::Config { .. } => Some(ErrorClass::Config),
            IngestError::Data { .. } => Some(ErrorClass::Data),
            IngestError::Internal { .. } => Some(ErrorClass::Internal),
            // Their causes (delta-rs, DataFusion, Arrow) follow in the chain or the message.
            IngestError::Lake(e) if e.is_conflict() => Some(ErrorClass::Conflict),
            IngestError::Lake(_) | IngestError::ReadLoaded { .. } | IngestError::Arrow { .. } => {
                None
            }
        };
    }
    if let Some(e) = cause.downcast_ref::<LakeError>()
        && e.is_conflict()
    {
        return Some(ErrorClass::Conflict);
    }
    if cause
        .downcast_ref::<tokio::time::error::Elapsed>()
        .is_some()
    {
        return Some(ErrorClass::Timeout);
    }
    if let Some(e) = cause.downcast_ref::<std::io::Error>() {
        return classify_io(e);
    }
    if let Some(e) = cause.downcast_ref::<tokio_postgres::Error>() {
        if let Some(code) = e.code() {
            return Some(classify_sqlstate(code.code()));
        }
        if e.is_closed() {
            return Some(ErrorClass::Connection);
        }
        return None;
    }
    if let Some(e) = cause.downcast_ref::<mysql_async::Error>() {
        return match e {
            mysql_async::Error::Io(_) => Some(ErrorClass::Connection),
            mysql_async::Error::Server(s) => Some(classify_mysql_code(s.code)),
            _ => None,
        };
    }
    if let Some(e) = cause.downcast_ref::<reqwest::Error>() {
        if let Some(status) = e.status() {
            return Some(classify_http_status(status.as_u16()));
        }
        if e.is_timeout() {
            return Some(ErrorClass::Timeout);
        }
        if e.is_connect() || e.is_request() {
            return Some(ErrorClass::Connection);
        }
        return None;
    }
    if let Some(e) = cause.downcast_ref::<rusqlite::Error>() {
        return match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                Some(ErrorClass::Serialization)
            }
            _ => None,
        };
    }
    None
}

/// The class of a connector's error.
fn classify_source(e: &SourceError) -> Option<ErrorClass> {
    Some(match e {
        SourceError::Connect { reason, .. } => {
            classify_message(reason).unwrap_or(ErrorClass::Connection)
        }
        SourceError::Query { reason, .. } | SourceError::Io { reason, .. } => {
            return classify_message(reason);
        }
        SourceError::UnsupportedType { .. }
        | SourceError::BadValue { .. }
        | SourceError::BadRecord { .. } => ErrorClass::Data,
        SourceError::Config { .. } => ErrorClass::Config,
        SourceError::Http {
            status: Some(status),
            ..
        } => classify_http_status(*status),
        SourceError::Http { reason, .. } => {
            classify_message(reason).unwrap_or(ErrorClass::Connection)
        }
        SourceError::BadResponse { .. } => ErrorClass::Data,
        SourceError::Internal(_) => ErrorClass::Internal,
    })
}

fn classify_io(e: &std::io::Error) -> Option<ErrorClass> {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused | ConnectionReset | ConnectionAborted | NotConnected | BrokenPipe
        | UnexpectedEof | AddrNotAvailable | HostUnreachable | NetworkUnreachable | NetworkDown => {
            Some(ErrorClass::Connection)
        }
        TimedOut => Some(ErrorClass::Timeout),
        NotFound | PermissionDenied | InvalidInput => Some(ErrorClass::Config),
        InvalidData => Some(ErrorClass::Data),
        _ => None,
    }
}

/// PostgreSQL SQLSTATE codes.
fn classify_sqlstate(code: &str) -> ErrorClass {
    match code {
        // serialization_failure, deadlock_detected, lock_not_available
        "40001" | "40P01" | "55P03" => ErrorClass::Serialization,
        // too_many_connections, cannot_connect_now
        "53300" | "57P03" => ErrorClass::RateLimited,
        // admin_shutdown, crash_shutdown
        "57P01" | "57P02" => ErrorClass::ServerError,
        // query_canceled (statement_timeout)
        "57014" => ErrorClass::Timeout,
        c if c.starts_with("08") => ErrorClass::Connection,
        // data exceptions, integrity constraints
        c if c.starts_with("22") || c.starts_with("23") => ErrorClass::Data,
        // syntax, undefined table/column, insufficient privilege, invalid authorization
        c if c.starts_with("42") || c.starts_with("28") || c.starts_with("3D") => {
            ErrorClass::Config
        }
        _ => ErrorClass::Task,
    }
}

/// MySQL / MariaDB server error codes.
fn classify_mysql_code(code: u16) -> ErrorClass {
    match code {
        1205 | 1213 => ErrorClass::Serialization, // lock wait timeout, deadlock
        1040 | 1203 => ErrorClass::RateLimited,   // too many connections
        1053 | 1077 | 1927 => ErrorClass::ServerError, // shutdown in progress, connection killed
        1044 | 1045 | 1046 | 1049 | 1054 | 1064 | 1142 | 1146 => ErrorClass::Config,
        1264 | 1265 | 1292 | 1366 | 1406 => ErrorClass::Data,
        _ => ErrorClass::Task,
    }
}

/// HTTP status codes of failed calls.
pub fn classify_http_status(status: u16) -> ErrorClass {
    match status {
        408 => ErrorClass::Timeout,
        429 => ErrorClass::RateLimited,
        500..=599 => ErrorClass::ServerError,
        401 | 403 | 404 | 405 => ErrorClass::Config,
        _ => ErrorClass::Task,
    }
}

/// Drivers that report errors only as text (several connectors flatten the driver's error into
/// a message) still say what happened in words; read them.
fn classify_message(message: &str) -> Option<ErrorClass> {
    let m = message.to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| m.contains(n));
    if has(&[
        "could not serialize access",
        "deadlock",
        "lock wait timeout",
        "sqlstate 40001",
    ]) {
        Some(ErrorClass::Serialization)
    } else if has(&[
        "too many connections",
        "too many requests",
        "remaining connection slots",
    ]) {
        Some(ErrorClass::RateLimited)
    } else if has(&[
        "connection refused",
        "connection reset",
        "connection closed",
        "connection aborted",
        "broken pipe",
        "unexpected eof",
        "error connecting",
        "error communicating with the server",
        "server closed the connection",
        "network is unreachable",
        "no route to host",
        "dns error",
        "failed to lookup address",
    ]) {
        Some(ErrorClass::Connection)
    } else if has(&["timed out", "timeout"]) {
        Some(ErrorClass::Timeout)
    } else if has(&[
        "the database system is starting up",
        "the database system is shutting down",
        "terminating connection due to administrator command",
        "server shutdown in progress",
    ]) {
        Some(ErrorClass::ServerError)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_classified_through_context() {
        #[derive(Debug, thiserror::Error)]
        #[error("reading erp:public.orders")]
        struct Reading(#[source] std::io::Error);
        let e = Reading(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(classify(&e), ErrorClass::Connection);
        assert!(classify(&e).is_retryable());
    }

    #[test]
    fn source_errors_keep_their_meaning() {
        let bad = SourceError::BadValue {
            table: "t".into(),
            column: "c".into(),
            source_type: "numeric".into(),
            value: "NaN".into(),
            reason: "not finite".into(),
        };
        assert_eq!(classify(&bad), ErrorClass::Data);
        assert!(!classify(&bad).is_retryable());
        let conn = SourceError::Connect {
            connection: "erp".into(),
            target: "127.0.0.1:1/db".into(),
            reason: "error connecting to server: Connection refused (os error 111)".into(),
        };
        assert_eq!(classify(&conn), ErrorClass::Connection);
        let ser = SourceError::Query {
            connection: "erp".into(),
            table: "t".into(),
            reason: "ERROR: could not serialize access due to concurrent update".into(),
        };
        assert_eq!(classify(&ser), ErrorClass::Serialization);
        let cfg = SourceError::Query {
            connection: "erp".into(),
            table: "t".into(),
            reason: "relation \"nope\" does not exist".into(),
        };
        assert_eq!(classify(&cfg), ErrorClass::Task);
    }

    #[test]
    fn explicit_class_wins() {
        #[derive(Debug, thiserror::Error)]
        #[error("calling the billing API")]
        struct Calling(#[source] TaskError);
        let e = Calling(
            TaskError::new(ErrorClass::RateLimited, "HTTP 429")
                .with_retry_after(Some(Duration::from_secs(3))),
        );
        assert_eq!(classify(&e), ErrorClass::RateLimited);
        assert_eq!(e.0.retry_after, Some(Duration::from_secs(3)));
    }

    #[test]
    fn http_statuses() {
        assert_eq!(classify_http_status(429), ErrorClass::RateLimited);
        assert_eq!(classify_http_status(503), ErrorClass::ServerError);
        assert_eq!(classify_http_status(404), ErrorClass::Config);
        assert!(!classify_http_status(400).is_retryable());
    }

    #[test]
    fn names_round_trip() {
        for c in [
            ErrorClass::Config,
            ErrorClass::Data,
            ErrorClass::Connection,
            ErrorClass::Timeout,
            ErrorClass::RateLimited,
            ErrorClass::ServerError,
            ErrorClass::Serialization,
            ErrorClass::Conflict,
            ErrorClass::Cancelled,
            ErrorClass::Task,
            ErrorClass::Internal,
        ] {
            assert_eq!(ErrorClass::parse(c.as_str()), c);
        }
    }
}
