//! Tributary's orchestrator: one DAG of ingestion tasks, models, commands and HTTP calls, run
//! with bounded parallelism, per-connection limits, retries with backoff for retryable errors,
//! timeouts and clean cancellation, with the run history in a state store (SQLite or
//! PostgreSQL).
#![warn(missing_docs)]

pub mod dag;
pub mod error;
pub mod exec;
pub mod schedule;
pub mod state;
pub mod tasks;

pub use error::{ErrorClass, TaskError, classify};
