//! Tributary's shared vocabulary: the project configuration (`tributary.yaml`, `ingest/*.yaml`),
//! the [`Source`] trait every connector implements, and the cursor values that incremental loads
//! carry from one run to the next.
//!
//! Dependencies point down: every other Tributary crate depends on this one, and this one on no
//! other Tributary crate.
#![warn(missing_docs)]

pub mod alerts;
pub mod class;
pub mod config;
pub mod cursor;
pub mod jsonpath;
pub mod pipeline;
pub mod redact;
pub mod source;
pub mod values;
pub mod yamlpos;

pub use class::ErrorClass;
pub use config::{ConfigError, ConfigProblem, Project};
pub use cursor::{Backfill, CursorValue};
pub use source::{
    Acknowledge, BatchStream, EventStream, FileStamp, Position, QuarantinedRecord, ReadEvent,
    ReadRequest, ReadSummary, Source, SourceBatch, SourceError, SourceStream,
};
pub use values::{ByteSize, Duration, Secret};

/// Arrow, re-exported from delta-rs so every crate uses the exact version the lake writes with.
pub use deltalake::arrow;

/// An error and its causes on one line, `a: b: c` (what `main` and the run history show).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        // Errors that already print their cause (`{source}` in the message) are not repeated.
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}
