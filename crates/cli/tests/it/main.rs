//! End-to-end tests of the `tributary` binary: run in temporary project folders against the
//! machine's PostgreSQL and MariaDB, Azurite, and the Python `deltalake` reader.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod alerts;
mod azure;
mod config_errors;
mod conflict;
mod dashboard;
mod delta_source;
mod fidelity;
mod incremental;
mod interop;
mod landing;
mod maintain;
mod models;
#[cfg(feature = "odbc")]
mod odbc;
mod orchestrate;
mod pg_orchestrate;
mod rest;
mod schema_change;
mod serve;
mod sqlite_e2e;
mod support;
mod targets;
mod tasks;
mod throughput;
