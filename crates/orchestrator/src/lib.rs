//! Tributary's orchestrator: one DAG of ingestion tasks, models, commands and HTTP calls, run
//! with bounded parallelism, per-connection limits, retries with backoff for retryable errors,
//! timeouts and clean cancellation, with the run history in a state store (SQLite or
//! PostgreSQL).
//!
//! [`run`] builds a project's DAG and runs it: loads through `tributary-ingest`, models through
//! `tributary-transform`, `command` and `http` tasks from [`tasks`]; `tributary run` and
//! `tributary serve` both call it.
#![warn(missing_docs)]

pub mod dag;
pub mod error;
pub mod exec;
pub mod run;
pub mod schedule;
pub mod state;
pub mod tasks;

pub use error::{BoxError, ErrorClass, TaskError, classify};
