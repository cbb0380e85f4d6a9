//! Source connectors (SQLite, PostgreSQL, MySQL/MariaDB, ODBC, files, commands and REST APIs). Each turns a configured table into a stream of Arrow record batches with a
//! schema known up front, holding at most a few batches in memory at a time.
//!
//! Every connector maps source types to Arrow types that Delta Lake can store (see the type
//! mapping table in the README): unsigned integers widen to the next signed type, time-of-day,
//! UUID and JSON become text, and anything that cannot be mapped losslessly is an error naming
//! table, column and type, unless the table's `cast:` option loads that column as text.
#![warn(missing_docs)]

pub mod command;
pub mod delta;
pub mod files;
#[cfg(feature = "fixture")]
pub mod fixture;
pub mod http;
pub mod mysql;
pub mod odbc;
pub mod parallel;
pub mod postgres;
pub mod registry;
pub mod rest;
pub mod sqlite;
mod util;

pub use registry::{Connector, check_project, connector, connectors, load_project, open};
pub use util::{DEFAULT_BATCH_SIZE, DEFAULT_FILE_BATCH_SIZE};
