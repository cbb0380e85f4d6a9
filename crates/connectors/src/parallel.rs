//! A database table's own keys: `parallel` (PostgreSQL, MySQL/MariaDB) splits a read into key
//! ranges over several connections. Parsed from the table entry's connector keys in step two of
//! reading `ingest/*.yaml`, and checked there.

use serde::{Deserialize, Serialize};
use tributary_core::SourceError;
use tributary_core::config::TableConfig;

/// The keys a PostgreSQL or MySQL/MariaDB table takes besides the shared ones.
pub const KEYS: [&str; 1] = ["parallel"];

/// A PostgreSQL or MySQL/MariaDB table's own configuration.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SqlTable {
    /// Read the table over several connections at once, each reading one key range of
    /// `column`, all from one consistent snapshot. Without it, PostgreSQL tables of at least
    /// [`AUTO_PARALLEL_MIN_ROWS`] estimated rows with a one-column primary key are split
    /// automatically on machines with at least 4 cores; `parallel: { partitions: 1 }` turns
    /// that off.
    #[serde(default)]
    pub parallel: Option<ParallelRead>,
}

impl SqlTable {
    /// The database keys of `table`.
    pub fn of(table: &TableConfig) -> Result<SqlTable, SourceError> {
        crate::registry::table_options(table)
    }

    /// Problems of a PostgreSQL or MySQL/MariaDB table, as (key under the table entry,
    /// message).
    pub fn problems(t: &TableConfig) -> Vec<(String, String)> {
        let sql = match t.options_as::<SqlTable>() {
            Ok(s) => s,
            Err(problem) => return vec![problem],
        };
        let mut out = Vec::new();
        if let Some(p) = &sql.parallel {
            if !(1..=64).contains(&p.partitions) {
                out.push((
                    "parallel.partitions".into(),
                    format!("partitions must be between 1 and 64, not {}", p.partitions),
                ));
            }
            if p.connections == Some(0) {
                out.push((
                    "parallel.connections".into(),
                    "connections must be at least 1".into(),
                ));
            }
            if t.query.is_some() && p.column.is_none() && p.partitions > 1 {
                out.push((
                    "parallel.column".into(),
                    "a custom `query` has no primary key to split by: name the `column`".into(),
                ));
            }
        }
        out
    }
}

/// Tables with at least this many estimated rows (PostgreSQL's `reltuples`) and a one-column
/// primary key are read in [`auto_parallel_partitions`] partitions when `parallel` is not set.
pub const AUTO_PARALLEL_MIN_ROWS: u64 = 10_000_000;

/// Partitions of an automatic parallel read: half the machine's cores, at most 4. Below 4
/// cores this is 1 (no automatic split): there, one stream already keeps the client's cores
/// busy decoding and encoding, and more connections only add work (BENCHMARKS.md).
pub fn auto_parallel_partitions() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get() / 2)
        .unwrap_or(1)
        .clamp(1, 4)
}

/// `parallel:` of a database table: how a read is split into key ranges.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ParallelRead {
    /// The column whose ranges split the read. Default: the table's primary key, when it is
    /// one column. It should be indexed, so every range query can use the index. Rows whose
    /// value is NULL are read by the first partition.
    #[serde(default)]
    pub column: Option<String>,
    /// How many key ranges (1 to 64). Boundaries come from a sample of the column
    /// (PostgreSQL: `percentile_disc` over `TABLESAMPLE SYSTEM`, so skewed keys still give
    /// ranges of similar size) or from its minimum and maximum (MySQL/MariaDB, integer, decimal
    /// and date/time columns). `1` reads in one query (and turns the automatic split off).
    pub partitions: usize,
    /// Connections reading at once, at most (each one reads a range, then the next one
    /// left). Default: `partitions`, at most 4. This is per table; `orchestration.
    /// per_connection` still limits how many tables read from one connection at once.
    #[serde(default)]
    pub connections: Option<usize>,
}

impl ParallelRead {
    /// Connections to open: `connections`, else `partitions` up to 4, never more than
    /// `partitions`.
    pub fn workers(&self) -> usize {
        self.connections
            .unwrap_or(self.partitions.min(4))
            .clamp(1, self.partitions.max(1))
    }
}
