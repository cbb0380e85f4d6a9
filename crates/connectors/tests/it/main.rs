//! Integration tests of the connectors against real services (the machine's PostgreSQL and
//! MariaDB) and real files. One test binary for the crate.

#![allow(clippy::unwrap_used, clippy::expect_used)]
mod command;
mod compliance;
mod config;
mod delta;
mod files;
mod mysql;
#[cfg(feature = "odbc")]
mod odbc;
mod postgres;
mod rest;
mod sqlite;
mod support;
