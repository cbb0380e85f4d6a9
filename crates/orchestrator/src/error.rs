//! Task failures and their classes.
//!
//! Every failure carries its [`ErrorClass`], decided where the error was born: a connector
//! reads its driver's code into the [`SourceError`] it returns, the loader, the lake and the
//! model runner give theirs through `class()`, and the task runners here (command, HTTP) set
//! it when they fail. [`classify`] only reads those classes out of an error's chain; the one
//! place words are read is [`ErrorClass::from_library_text`], for the delta-rs and DataFusion
//! errors that reach us as text.

use std::time::Duration;

use tributary_core::SourceError;
use tributary_ingest::IngestError;
use tributary_lake::LakeError;
use tributary_transform::TransformError;

pub use tributary_core::ErrorClass;

use crate::state::StateError;

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

/// The class of an error: the class of the first cause in its chain that carries one (a
/// [`TaskError`], a connector's [`SourceError`], the loader's, the lake's, the model runner's
/// or the state store's error, an I/O error's kind, an elapsed timeout); else `task`.
pub fn classify(error: &(dyn std::error::Error + 'static)) -> ErrorClass {
    let mut cause = Some(error);
    while let Some(c) = cause {
        if let Some(class) = class_of(c) {
            return class;
        }
        cause = c.source();
    }
    ErrorClass::Task
}

fn class_of(cause: &(dyn std::error::Error + 'static)) -> Option<ErrorClass> {
    if let Some(t) = cause.downcast_ref::<TaskError>() {
        Some(t.class)
    } else if let Some(e) = cause.downcast_ref::<SourceError>() {
        Some(e.class())
    } else if let Some(e) = cause.downcast_ref::<IngestError>() {
        Some(e.class())
    } else if let Some(e) = cause.downcast_ref::<TransformError>() {
        Some(e.class())
    } else if let Some(e) = cause.downcast_ref::<LakeError>() {
        Some(e.class())
    } else if let Some(e) = cause.downcast_ref::<StateError>() {
        Some(e.class())
    } else if let Some(e) = cause.downcast_ref::<deltalake::DeltaTableError>() {
        Some(tributary_lake::delta_class(e))
    } else if let Some(e) = cause.downcast_ref::<deltalake::datafusion::error::DataFusionError>() {
        Some(tributary_lake::datafusion_class(e))
    } else if cause
        .downcast_ref::<tokio::time::error::Elapsed>()
        .is_some()
    {
        Some(ErrorClass::Timeout)
    } else if let Some(e) = cause.downcast_ref::<std::io::Error>() {
        ErrorClass::of_io(e)
    } else {
        None
    }
}

/// HTTP status codes of failed calls.
pub fn classify_http_status(status: u16) -> ErrorClass {
    ErrorClass::of_http_status(status)
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
    fn source_errors_keep_the_class_they_were_born_with() {
        let bad = SourceError::BadValue {
            table: "t".into(),
            column: "c".into(),
            source_type: "numeric".into(),
            value: "NaN".into(),
            reason: "not finite".into(),
        };
        assert_eq!(classify(&bad), ErrorClass::Data);
        assert!(!classify(&bad).is_retryable());
        // The words say "connection refused", but the connector decided `auth`: no message
        // is read.
        let auth = SourceError::Connect {
            connection: "erp".into(),
            target: "127.0.0.1:5432/db".into(),
            reason: "password authentication failed (connection refused)".into(),
            class: ErrorClass::Auth,
        };
        assert_eq!(classify(&auth), ErrorClass::Auth);
        assert!(!classify(&auth).is_retryable());
        #[derive(Debug, thiserror::Error)]
        #[error("reading erp:public.orders")]
        struct Reading(#[source] SourceError);
        let ser = Reading(SourceError::Query {
            connection: "erp".into(),
            table: "t".into(),
            reason: "could not serialize access due to concurrent update".into(),
            class: ErrorClass::Serialization,
        });
        assert_eq!(classify(&ser), ErrorClass::Serialization);
        assert!(classify(&ser).is_retryable());
    }

    #[test]
    fn errors_without_a_class_are_task_whatever_their_words() {
        #[derive(Debug, thiserror::Error)]
        #[error("connection refused, timed out, deadlock")]
        struct Opaque;
        assert_eq!(classify(&Opaque), ErrorClass::Task);
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
}
