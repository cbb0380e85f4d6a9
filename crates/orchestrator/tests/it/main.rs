//! Integration tests of the orchestrator against real processes, HTTP servers on loopback,
//! SQLite files and the machine's PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]
mod schedule;
mod state;
mod tasks;
