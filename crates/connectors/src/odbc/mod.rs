//! ODBC source (feature `odbc`): any database with an ODBC driver — SQL Server, Oracle, and
//! others — through the system's driver manager (unixODBC), read into Arrow by `arrow-odbc`.
//!
//! Each read is one session on its own blocking thread: connect with the configured connection
//! string, set the session up for the DBMS the driver reports (UTC as the session time zone;
//! for PostgreSQL, MySQL/MariaDB and Oracle one read-only, consistent-snapshot transaction),
//! describe the result, then fetch it in blocks of at most `batch_size` rows (fewer when rows
//! are wide: the fetch buffer is capped by `max_batch_bytes`) and send each block down a
//! bounded channel as one Arrow batch.
//!
//! # Type mapping
//!
//! From the ODBC SQL type the driver reports (plus, for tables, the type name in the driver's
//! catalog, `SQLColumns`):
//!
//! | ODBC type | Arrow type | notes |
//! |---|---|---|
//! | `BIT` | Boolean | |
//! | `TINYINT` / unsigned | Int8 / Int16 | unsigned widens |
//! | `SMALLINT` / unsigned | Int16 / Int32 | unsigned widens (MySQL `YEAR`, from the catalog: Int16) |
//! | `INTEGER` / unsigned | Int32 / Int64 | unsigned widens |
//! | `BIGINT` / unsigned | Int64 / Decimal128(20,0) | |
//! | `REAL` | Float32 | |
//! | `FLOAT`, `DOUBLE` | Float64 | |
//! | `DECIMAL(p,s)`, `NUMERIC(p,s)`, p ≤ 38, 0 ≤ s ≤ p | Decimal128(p,s) | parsed from text exactly; a value that does not fit → BadValue |
//! | `DECIMAL`/`NUMERIC`, p > 38 or s outside 0..=p | — | UnsupportedType (cast to text) |
//! | `DATE` | Date32 | |
//! | `TIMESTAMP` | Timestamp(µs, None) | wall clock; digits below a microsecond must be zeros |
//! | `TIMESTAMP` whose catalog type holds instants (`timestamptz`, MySQL `TIMESTAMP`, `… WITH [LOCAL] TIME ZONE`), SQL Server `datetimeoffset` | Timestamp(µs, "UTC") | the instant (session time zone UTC) |
//! | `TIME`, SQL Server `time`, PostgreSQL `timetz` | Utf8 | `[-]HH:MM:SS[.ffffff][zone]` |
//! | `CHAR`, `VARCHAR`, `LONGVARCHAR` and wide forms, SQL Server `xml` | Utf8 | as the driver delivers it |
//! | `GUID` | Utf8 | lowercase |
//! | `BINARY`, `VARBINARY`, `LONGVARBINARY` | Binary | |
//! | intervals, SQL Server `sql_variant` / CLR types, unknown types, PostgreSQL `money`, MySQL spatial types | — | UnsupportedType (cast to text) |
//!
//! Decimals, dates, timestamps and times are read as text and parsed here, so that values a
//! driver would silently change (psqlODBC turns an `infinity` date into today, MariaDB's driver
//! a date with a zero month into NULL) are errors instead. For PostgreSQL and MySQL the server
//! renders that text (`CAST(col AS text)`, `CAST(col AS CHAR)`); other DBMSs go through the
//! driver's ODBC-standard text conversion. `cast: { col: text }` loads a column as text the same
//! way.
//!
//! Incremental reads add `WHERE col >= ?` (and `col < ?` for `until`) with the cursor value
//! bound as a parameter; table names are quoted with the driver's identifier quote character.
//!
//! The connection's keys ([`OdbcConnection`]) are read and checked in every build, so that
//! `validate` checks a project's ODBC connections anywhere; reading needs the `odbc` feature.

#[cfg(feature = "odbc")]
mod convert;
#[cfg(feature = "odbc")]
mod plan;
#[cfg(feature = "odbc")]
mod reader;

#[cfg(feature = "odbc")]
pub use reader::{DEFAULT_MAX_BATCH_BYTES, DEFAULT_MAX_VALUE_BYTES, OdbcSource};

use tributary_core::{Source, SourceError};

/// A `type: odbc` connection.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OdbcConnection {
    /// The ODBC connection string: `Key=value;` pairs naming a `Driver={…}` or a `DSN=…`,
    /// e.g. `Driver={ODBC Driver 18 for SQL Server};Server=tcp:db,1433;Database=erp;UID=app;PWD=${env:MSSQL_PASSWORD};`.
    /// Put the password in the environment.
    pub connection_string: String,
    /// The longest text or binary value, in bytes, of a column whose driver reports no
    /// smaller bound (`VARCHAR(MAX)`, `LONGTEXT`, `bytea`, …). A longer value stops the read
    /// with an error naming the column. Default 1048576 (1 MiB).
    #[serde(default)]
    pub max_value_bytes: Option<usize>,
    /// Upper bound, in bytes, of the buffer rows are fetched into; tables with wide rows get
    /// fewer rows per batch than `batch_size`. Default 268435456 (256 MiB).
    #[serde(default)]
    pub max_batch_bytes: Option<usize>,
}

impl OdbcConnection {
    /// Problems of the values, as (key, message).
    fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(message) = connection_string_problem(&self.connection_string) {
            out.push(("connection_string".into(), message));
        }
        for (key, value) in [
            ("max_value_bytes", self.max_value_bytes),
            ("max_batch_bytes", self.max_batch_bytes),
        ] {
            if value == Some(0) {
                out.push((key.into(), "must be a positive number of bytes".into()));
            }
        }
        out
    }
}

/// What is wrong with an ODBC connection string, if anything: it must be `Key=value;` pairs
/// naming a driver (`Driver={…}`) or a data source (`DSN=…`, `FILEDSN=…`). Strings still holding
/// an unset `${env:…}` are not judged.
fn connection_string_problem(connection_string: &str) -> Option<String> {
    if !crate::registry::known(connection_string) {
        return None;
    }
    let pairs = tributary_core::redact::odbc_pairs(connection_string);
    let names_source = pairs.iter().any(|(k, v)| {
        matches!(
            k.to_ascii_lowercase().as_str(),
            "driver" | "dsn" | "filedsn"
        ) && !v.trim().is_empty()
    });
    (!names_source).then(|| {
        "an ODBC connection string is `Key=value;` pairs naming a driver or a data source, e.g. \
         `Driver={ODBC Driver 18 for SQL Server};Server=tcp:db,1433;Database=erp;UID=app;PWD=${env:MSSQL_PASSWORD};` \
         or `DSN=erp;` (`odbcinst -q -d` lists the installed drivers)"
            .to_string()
    })
}

/// The ODBC connector's registration (`type: odbc`, cargo feature `odbc`).
pub(crate) struct Registration;

/// The ODBC connector, as [`crate::registry::connectors`] lists it.
pub(crate) static CONNECTOR: Registration = Registration;

impl crate::registry::Connector for Registration {
    fn kind(&self) -> &'static str {
        "odbc"
    }
    fn table_keys(&self) -> &'static [&'static str] {
        &[]
    }
    fn connection_problems(
        &self,
        conn: &tributary_core::config::ConnectionConfig,
    ) -> Vec<(String, String)> {
        crate::registry::connection_problems_of(conn, OdbcConnection::problems)
    }
    fn secrets(&self, conn: &tributary_core::config::ConnectionConfig) -> Vec<String> {
        let mut out = crate::registry::default_secrets(conn);
        if let Ok(c) = conn.options_as::<OdbcConnection>() {
            out.extend(tributary_core::redact::odbc_secret_values(
                &c.connection_string,
            ));
        }
        out
    }
    fn table_problems(&self, table: &tributary_core::config::TableConfig) -> Vec<(String, String)> {
        crate::registry::on_error_problem(table)
            .into_iter()
            .collect()
    }
    fn open(
        &self,
        name: &str,
        conn: &tributary_core::config::ConnectionConfig,
        _project_root: &std::path::Path,
    ) -> Result<Box<dyn Source>, SourceError> {
        let c: OdbcConnection = crate::registry::connection_options(name, conn)?;
        #[cfg(feature = "odbc")]
        {
            Ok(Box::new(reader::OdbcSource::new(
                name,
                &c.connection_string,
                c.max_value_bytes,
                c.max_batch_bytes,
            )?))
        }
        #[cfg(not(feature = "odbc"))]
        {
            let _ = c;
            Err(SourceError::Config {
                table: format!("(connection {name})"),
                reason:
                    "this build of tributary has no ODBC support; build with `--features odbc` \
                         (`cargo build --release --features odbc`)"
                        .into(),
            })
        }
    }
}
