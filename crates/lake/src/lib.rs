//! The lake: Delta tables at `<lake>/<layer>/<name>` on a local folder or an object store.
//!
//! - [`Lake`] resolves the location, opens tables, lists them and builds a DataFusion session
//!   with every table registered as `<layer>.<name>`.
//! - [`TableWriter`] streams record batches into Parquet files and commits them in **one** Delta
//!   commit, together with the load's [`Watermark`] (a table property), so data and watermark
//!   advance together or not at all.
//! - [`ModelCommit`] writes a query's result into a table (overwrite, append or MERGE) in one
//!   commit that also records the run's metadata and the app transactions it is given.
//! - [`changes`] reads what the commits after a version added to any Delta table (for
//!   incremental reads of Delta sources without a change data feed).
//! - [`schema`] compares a table's schema with an incoming one and applies the
//!   `on_schema_change` policy ([`schema::SchemaChangePolicy`]).
#![warn(missing_docs)]

pub mod changes;
mod error;
mod inspect;
mod lake;
mod maintain;
mod model_commit;
pub mod pause;
pub mod schema;
mod writer;

pub use deltalake::DeltaTable;
pub use error::{LakeError, datafusion_class, delta_class};
pub use inspect::{ColumnInfo, CommitEntry, Sample, columns};
pub use lake::{
    Lake, TableInfo, TableVersion, WriteOptions, open_table_at, table_info, watermark_of,
};
pub use maintain::{MaintainOptions, MaintainReport, SAFE_RETENTION_HOURS, maintain_table};
pub use model_commit::{MergeClause, MergeCounts, MergeInto, ModelCommit};
pub use writer::{CommitSummary, TableWriter, TableWriterBuilder, WriteMode, table_schema};

use serde::{Deserialize, Serialize};
use tributary_core::CursorValue;

/// Table property holding the JSON [`Watermark`] of the last incremental load.
pub const WATERMARK_PROPERTY: &str = "tributary.watermark";

/// The highest cursor value committed by incremental loads into a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    /// The cursor column.
    pub column: String,
    /// Its highest committed value.
    pub value: CursorValue,
}
