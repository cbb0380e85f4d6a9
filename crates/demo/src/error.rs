//! Errors of writing the sample project: what could not be done, and the cause.

/// Writing the demo project or its data failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The folder or its contents refuse the operation (a project is already there, the demo
    /// database is missing); the message says what to do.
    #[error("{0}")]
    Refused(String),
    /// A file or database operation failed.
    #[error("{what}")]
    Failed {
        /// What was being done, naming the file.
        what: String,
        /// The I/O or SQLite error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

pub(crate) type Result<T> = std::result::Result<T, DemoError>;

/// Say what was being done when an operation failed.
pub(crate) trait Context<T> {
    /// With a fixed description.
    fn context(self, what: &str) -> Result<T>;
    /// With a description built only on failure.
    fn with_context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> Context<T> for std::result::Result<T, E> {
    fn context(self, what: &str) -> Result<T> {
        self.map_err(|e| DemoError::Failed {
            what: what.to_string(),
            source: Box::new(e),
        })
    }

    fn with_context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| DemoError::Failed {
            what: what(),
            source: Box::new(e),
        })
    }
}

/// Return a [`DemoError::Refused`] with a formatted message.
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::error::DemoError::Refused(format!($($arg)*)))
    };
}
pub(crate) use bail;
