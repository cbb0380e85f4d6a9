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
pub mod http;
pub mod mysql;
#[cfg(feature = "odbc")]
pub mod odbc;
pub mod postgres;
pub mod rest;
pub mod sqlite;
mod util;

use std::path::Path;

use tributary_core::config::ConnectionConfig;
use tributary_core::{Source, SourceError};

pub use util::{DEFAULT_BATCH_SIZE, DEFAULT_FILE_BATCH_SIZE};

/// Open the connector for a configured connection. `project_root` resolves relative paths.
/// Opening does not connect; [`Source::check`] and [`Source::read`] do.
pub fn open(
    name: &str,
    config: &ConnectionConfig,
    project_root: &Path,
) -> Result<Box<dyn Source>, SourceError> {
    Ok(match config {
        ConnectionConfig::Sqlite { path } => {
            let p = Path::new(path);
            let full = if p.is_absolute() {
                p.to_path_buf()
            } else {
                project_root.join(p)
            };
            Box::new(sqlite::SqliteSource::new(name, full))
        }
        ConnectionConfig::Postgres { url } => Box::new(postgres::PostgresSource::new(name, url)?),
        ConnectionConfig::Mysql { url } => Box::new(mysql::MysqlSource::new(name, url)?),
        ConnectionConfig::Files {
            url,
            storage_options,
        } => Box::new(files::FilesSource::new(
            name,
            url,
            storage_options.clone(),
            project_root,
        )?),
        ConnectionConfig::Delta {
            url,
            storage_options,
        } => Box::new(delta::DeltaSource::new(
            name,
            url,
            storage_options.clone(),
            project_root,
        )?),
        ConnectionConfig::Rest(rest) => Box::new(rest::RestSource::new(name, rest)?),
        #[cfg(feature = "odbc")]
        ConnectionConfig::Odbc {
            connection_string,
            max_value_bytes,
            max_batch_bytes,
        } => Box::new(odbc::OdbcSource::new(
            name,
            connection_string,
            *max_value_bytes,
            *max_batch_bytes,
        )?),
        #[cfg(not(feature = "odbc"))]
        ConnectionConfig::Odbc { .. } => {
            return Err(SourceError::Config {
                table: format!("(connection {name})"),
                reason: "this build of tributary has no ODBC support; build with \
                         `--features odbc` (`cargo build --release --features odbc`)"
                    .into(),
            });
        }
    })
}
