//! Error classes: what kind of failure something had, and whether retrying it can help.
//!
//! A class is decided where an error is born: a connector reads its driver's code (a
//! PostgreSQL SQLSTATE, a MySQL error number, an HTTP status, an I/O error kind, an object
//! store's error variant) and puts the class into the [`SourceError`](crate::SourceError) it
//! returns; the lake, the model runner and the loader give theirs through a `class()` method.
//!
//! Retries are only for failures of the environment (a refused or reset connection, a timeout,
//! HTTP 429 or 5xx, a serialization failure or deadlock in the source database, a Delta commit
//! conflict). Configuration, credential and data errors fail at once: running the same thing
//! again gives the same answer.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The class of a failure, stored with every task attempt in the run history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Invalid configuration or usage: a missing table, a bad setting. Not retried.
    Config,
    /// The source refused the credentials or the user lacks a privilege: a wrong password,
    /// an expired token, HTTP 401/403, PostgreSQL SQLSTATE class 28 or 42501, MySQL 1044/1045.
    /// Not retried.
    Auth,
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
    /// Every class, in the order of the documentation.
    pub const ALL: [ErrorClass; 12] = [
        ErrorClass::Config,
        ErrorClass::Auth,
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
    ];

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
            ErrorClass::Auth => "auth",
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

    /// Parse a stored name; unknown names (none today) read as [`ErrorClass::Task`], so
    /// history written by any version keeps parsing.
    pub fn parse(s: &str) -> ErrorClass {
        ErrorClass::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .unwrap_or(ErrorClass::Task)
    }

    /// The class of a failed HTTP call's status.
    pub fn of_http_status(status: u16) -> ErrorClass {
        match status {
            408 => ErrorClass::Timeout,
            429 => ErrorClass::RateLimited,
            500..=599 => ErrorClass::ServerError,
            401 | 403 => ErrorClass::Auth,
            404 | 405 => ErrorClass::Config,
            _ => ErrorClass::Task,
        }
    }

    /// The class of an SQLSTATE: the standard's classes (ODBC drivers report them too), and
    /// PostgreSQL's own codes.
    pub fn of_sqlstate(code: &str) -> ErrorClass {
        match code {
            // serialization_failure, deadlock_detected, lock_not_available
            "40001" | "40P01" | "55P03" => ErrorClass::Serialization,
            // too_many_connections, cannot_connect_now
            "53300" | "57P03" => ErrorClass::RateLimited,
            // admin_shutdown, crash_shutdown
            "57P01" | "57P02" => ErrorClass::ServerError,
            // query_canceled (statement_timeout); ODBC's timeout expired
            "57014" | "HYT00" | "HYT01" => ErrorClass::Timeout,
            // insufficient_privilege
            "42501" => ErrorClass::Auth,
            c if c.starts_with("08") => ErrorClass::Connection,
            // invalid authorization specification, invalid password
            c if c.starts_with("28") => ErrorClass::Auth,
            c if c.starts_with("40") => ErrorClass::Serialization,
            // data exceptions, integrity constraints
            c if c.starts_with("22") || c.starts_with("23") => ErrorClass::Data,
            // syntax, undefined table or column, unknown database
            c if c.starts_with("42") || c.starts_with("3D") || c.starts_with("3F") => {
                ErrorClass::Config
            }
            _ => ErrorClass::Task,
        }
    }

    /// The class of a MySQL / MariaDB server error number.
    pub fn of_mysql_code(code: u16) -> ErrorClass {
        match code {
            1205 | 1213 => ErrorClass::Serialization, // lock wait timeout, deadlock
            1040 | 1203 => ErrorClass::RateLimited,   // too many connections
            1053 | 1077 | 1927 => ErrorClass::ServerError, // shutdown in progress, connection killed
            // access denied to a database, for a user, to a table or a command; password expired
            1044 | 1045 | 1142 | 1143 | 1227 | 1698 | 1820 | 1862 => ErrorClass::Auth,
            1046 | 1049 | 1054 | 1064 | 1146 => ErrorClass::Config,
            1264 | 1265 | 1292 | 1366 | 1406 => ErrorClass::Data,
            3024 | 1969 => ErrorClass::Timeout, // max_execution_time / max_statement_time
            _ => ErrorClass::Task,
        }
    }

    /// The class of an I/O error, by its kind; `None` when the kind says nothing definite.
    pub fn of_io(e: &std::io::Error) -> Option<ErrorClass> {
        use std::io::ErrorKind::*;
        match e.kind() {
            ConnectionRefused | ConnectionReset | ConnectionAborted | NotConnected | BrokenPipe
            | UnexpectedEof | AddrNotAvailable | HostUnreachable | NetworkUnreachable
            | NetworkDown => Some(ErrorClass::Connection),
            TimedOut => Some(ErrorClass::Timeout),
            PermissionDenied => Some(ErrorClass::Auth),
            NotFound | InvalidInput => Some(ErrorClass::Config),
            InvalidData => Some(ErrorClass::Data),
            _ => None,
        }
    }

    /// The class of an error reading or writing a local file (a source file, a spill file, a
    /// pipe): its kind when that says something definite (missing, permission denied,
    /// invalid data), else `task` (a full disk or a failing device is not what a retry fixes).
    pub fn of_file_io(e: &std::io::Error) -> ErrorClass {
        ErrorClass::of_io(e).unwrap_or(ErrorClass::Task)
    }

    /// The class of an object store's error (a remote lake or a files source): its variant
    /// when it says something definite, else the I/O or HTTP cause inside it, else the words
    /// of [`ErrorClass::from_library_text`].
    pub fn of_object_store(e: &deltalake::ObjectStoreError) -> ErrorClass {
        use deltalake::ObjectStoreError as E;
        match e {
            E::NotFound { .. } => ErrorClass::Config,
            E::PermissionDenied { .. } | E::Unauthenticated { .. } => ErrorClass::Auth,
            E::Precondition { .. } | E::AlreadyExists { .. } => ErrorClass::Conflict,
            E::NotSupported { .. }
            | E::NotImplemented { .. }
            | E::UnknownConfigurationKey { .. } => ErrorClass::Config,
            other => {
                let mut cause = std::error::Error::source(other);
                while let Some(c) = cause {
                    if let Some(io) = c.downcast_ref::<std::io::Error>()
                        && let Some(class) = ErrorClass::of_io(io)
                    {
                        return class;
                    }
                    cause = c.source();
                }
                ErrorClass::from_library_text(&crate::error_chain(other))
                    .unwrap_or(ErrorClass::Connection)
            }
        }
    }

    /// The one place Tributary reads a class from words. Only for errors that reach us as text
    /// from libraries that keep their cause to themselves: some delta-rs variants
    /// (`DeltaTableError::Generic`, the transaction errors), DataFusion's `External` and
    /// `Execution` errors, and object store errors whose HTTP client flattened the cause.
    /// Connectors never come here: they classify their driver's codes where the error is born.
    ///
    /// | words (case-insensitive) | class |
    /// |---|---|
    /// | `connection refused/reset/closed/aborted`, `broken pipe`, `dns error`, `error sending request`, `network is unreachable`, `no route to host` | `connection` |
    /// | `timed out`, `timeout`, `deadline has elapsed` | `timeout` |
    /// | `429`, `too many requests`, `slow down`, `slowdown`, `throttl` | `rate_limited` |
    /// | `500 internal server error`, `502 bad gateway`, `503 service unavailable`, `server busy` | `server_error` |
    /// | `403 forbidden`, `401 unauthorized`, `authorizationfailure`, `authenticationfailed`, `access denied` | `auth` |
    /// | `version` with `already exists`, `concurrent transaction`, `commit conflict` | `conflict` |
    pub fn from_library_text(text: &str) -> Option<ErrorClass> {
        let m = text.to_ascii_lowercase();
        let has = |needles: &[&str]| needles.iter().any(|n| m.contains(n));
        if has(&["concurrent transaction", "commit conflict"])
            || (m.contains("version") && m.contains("already exists"))
        {
            Some(ErrorClass::Conflict)
        } else if has(&[
            "403 forbidden",
            "401 unauthorized",
            "authorizationfailure",
            "authenticationfailed",
            "access denied",
        ]) {
            Some(ErrorClass::Auth)
        } else if has(&[
            "429",
            "too many requests",
            "slow down",
            "slowdown",
            "throttl",
        ]) {
            Some(ErrorClass::RateLimited)
        } else if has(&[
            "500 internal server error",
            "502 bad gateway",
            "503 service unavailable",
            "server busy",
        ]) {
            Some(ErrorClass::ServerError)
        } else if has(&[
            "connection refused",
            "connection reset",
            "connection closed",
            "connection aborted",
            "broken pipe",
            "dns error",
            "error sending request",
            "network is unreachable",
            "no route to host",
        ]) {
            Some(ErrorClass::Connection)
        } else if has(&["timed out", "timeout", "deadline has elapsed"]) {
            Some(ErrorClass::Timeout)
        } else {
            None
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_read_as_task() {
        for c in ErrorClass::ALL {
            assert_eq!(ErrorClass::parse(c.as_str()), c);
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
        }
        assert_eq!(ErrorClass::parse("something_new"), ErrorClass::Task);
        assert!(!ErrorClass::Auth.is_retryable());
        assert!(ErrorClass::Conflict.is_retryable());
    }

    #[test]
    fn http_statuses() {
        assert_eq!(ErrorClass::of_http_status(429), ErrorClass::RateLimited);
        assert_eq!(ErrorClass::of_http_status(503), ErrorClass::ServerError);
        assert_eq!(ErrorClass::of_http_status(401), ErrorClass::Auth);
        assert_eq!(ErrorClass::of_http_status(403), ErrorClass::Auth);
        assert_eq!(ErrorClass::of_http_status(404), ErrorClass::Config);
        assert!(!ErrorClass::of_http_status(400).is_retryable());
    }

    #[test]
    fn database_codes() {
        assert_eq!(ErrorClass::of_sqlstate("28P01"), ErrorClass::Auth);
        assert_eq!(ErrorClass::of_sqlstate("28000"), ErrorClass::Auth);
        assert_eq!(ErrorClass::of_sqlstate("42501"), ErrorClass::Auth);
        assert_eq!(ErrorClass::of_sqlstate("42P01"), ErrorClass::Config);
        assert_eq!(ErrorClass::of_sqlstate("3D000"), ErrorClass::Config);
        assert_eq!(ErrorClass::of_sqlstate("08006"), ErrorClass::Connection);
        assert_eq!(ErrorClass::of_sqlstate("40P01"), ErrorClass::Serialization);
        assert_eq!(ErrorClass::of_sqlstate("HYT00"), ErrorClass::Timeout);
        assert_eq!(ErrorClass::of_mysql_code(1045), ErrorClass::Auth);
        assert_eq!(ErrorClass::of_mysql_code(1049), ErrorClass::Config);
        assert_eq!(ErrorClass::of_mysql_code(1213), ErrorClass::Serialization);
    }

    #[test]
    fn object_store_variants() {
        use deltalake::ObjectStoreError as E;
        let boxed = |s: &str| -> Box<dyn std::error::Error + Send + Sync> { s.into() };
        let not_found = E::NotFound {
            path: "lake/x".into(),
            source: boxed("404"),
        };
        assert_eq!(ErrorClass::of_object_store(&not_found), ErrorClass::Config);
        let denied = E::PermissionDenied {
            path: "lake/x".into(),
            source: boxed("403"),
        };
        assert_eq!(ErrorClass::of_object_store(&denied), ErrorClass::Auth);
        let refused = E::Generic {
            store: "MicrosoftAzure",
            source: Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
        };
        assert_eq!(
            ErrorClass::of_object_store(&refused),
            ErrorClass::Connection
        );
        let throttled = E::Generic {
            store: "S3",
            source: boxed("response error \"SlowDown\", after 3 retries"),
        };
        assert_eq!(
            ErrorClass::of_object_store(&throttled),
            ErrorClass::RateLimited
        );
    }

    /// The documented table of [`ErrorClass::from_library_text`], with texts as delta-rs,
    /// DataFusion and object_store print them.
    #[test]
    fn library_text_fallback() {
        let cases = [
            (
                "Transaction failed: Version 3 already exists",
                Some(ErrorClass::Conflict),
            ),
            (
                "Generic error: Commit failed: a concurrent transaction deleted data this operation read",
                Some(ErrorClass::Conflict),
            ),
            (
                "Object at location lake/x not found: Client error with status 403 Forbidden",
                Some(ErrorClass::Auth),
            ),
            (
                "External error: Generic MicrosoftAzure error: error sending request for url",
                Some(ErrorClass::Connection),
            ),
            (
                "Generic S3 error: Error after 10 retries in 2.5s, max_retries:10, retry_timeout:180s, source:HTTP status server error (503 Service Unavailable)",
                Some(ErrorClass::ServerError),
            ),
            (
                "Execution error: operation timed out",
                Some(ErrorClass::Timeout),
            ),
            ("Schema error: No field named amount", None),
        ];
        for (text, class) in cases {
            assert_eq!(ErrorClass::from_library_text(text), class, "{text}");
        }
    }
}
