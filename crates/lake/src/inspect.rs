//! Looking into one table for the dashboard: its commits, its columns, a sample of its rows.

use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::arrow::util::display::{ArrayFormatter, FormatOptions};
use deltalake::datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use serde::Serialize;

use crate::schema::type_name;
use crate::{Lake, LakeError};

/// One commit of a table's Delta log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommitEntry {
    /// The table version it created.
    pub version: u64,
    /// When it was committed (its commit info), milliseconds since the epoch.
    pub timestamp_ms: Option<i64>,
    /// The Delta operation: `WRITE`, `MERGE`, `CREATE OR REPLACE TABLE`, `OPTIMIZE`, …
    pub operation: Option<String>,
    /// Rows the commit added: the operation's own metric when it reports one
    /// (`num_added_rows` / `numOutputRows` for writes, rows inserted for merges), else the rows
    /// of the data files it added (from their statistics); 0 for `OPTIMIZE` (it rewrites rows);
    /// `None` when nothing tells.
    pub rows_added: Option<u64>,
    /// Data files it added.
    pub files_added: u64,
    /// Bytes of the data files it added.
    pub bytes_added: u64,
    /// Data files it removed.
    pub files_removed: u64,
    /// The Tributary run that wrote it (`tributary.run_id` in the commit info), if any.
    pub run_id: Option<String>,
}

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColumnInfo {
    /// Its name.
    pub name: String,
    /// Its type, SQL-ish (`bigint`, `decimal(12,2)`, `timestamp(us, UTC)`).
    pub data_type: String,
    /// Whether it may hold NULL.
    pub nullable: bool,
}

/// The first rows of a table (or query), every value formatted as text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sample {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows; `None` is NULL.
    pub rows: Vec<Vec<Option<String>>>,
}

/// Metrics that name the rows an operation added, in order of preference.
const ROW_METRICS: [&str; 5] = [
    "num_added_rows",
    "numOutputRows",
    "num_output_rows",
    "num_target_rows_inserted",
    "numTargetRowsInserted",
];

/// Read one commit's log entry (newline-delimited actions) into a [`CommitEntry`].
fn parse_commit(version: u64, entry: &[u8]) -> CommitEntry {
    let mut c = CommitEntry {
        version,
        timestamp_ms: None,
        operation: None,
        rows_added: None,
        files_added: 0,
        bytes_added: 0,
        files_removed: 0,
        run_id: None,
    };
    let mut metric_rows: Option<u64> = None;
    let mut file_rows: Option<u64> = Some(0);
    for line in entry.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let Ok(action) = serde_json::from_slice::<serde_json::Value>(line) else {
            continue;
        };
        if let Some(info) = action.get("commitInfo") {
            c.timestamp_ms = info.get("timestamp").and_then(|t| t.as_i64());
            c.operation = info
                .get("operation")
                .and_then(|o| o.as_str())
                .map(str::to_string);
            c.run_id = info
                .get("tributary.run_id")
                .and_then(|o| o.as_str())
                .map(str::to_string);
            if let Some(metrics) = info.get("operationMetrics") {
                metric_rows = ROW_METRICS.iter().find_map(|k| {
                    let v = metrics.get(*k)?;
                    v.as_u64().or_else(|| v.as_str()?.parse().ok())
                });
            }
        } else if let Some(add) = action.get("add") {
            c.files_added += 1;
            c.bytes_added += add.get("size").and_then(|s| s.as_u64()).unwrap_or(0);
            let records = add
                .get("stats")
                .and_then(|s| s.as_str())
                .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
                .and_then(|s| s.get("numRecords")?.as_u64());
            file_rows = match (file_rows, records) {
                (Some(a), Some(b)) => Some(a + b),
                _ => None,
            };
        } else if action.get("remove").is_some() {
            c.files_removed += 1;
        }
    }
    c.rows_added = if c.operation.as_deref() == Some("OPTIMIZE") {
        // Compaction rewrites rows into new files; it adds none.
        Some(0)
    } else {
        metric_rows.or(file_rows)
    };
    c
}

/// The columns of an opened table.
pub fn columns(table_name: &str, t: &DeltaTable) -> Result<Vec<ColumnInfo>, LakeError> {
    let snapshot = t
        .snapshot()
        .map_err(|e| LakeError::delta(table_name, "read snapshot", e))?;
    Ok(snapshot
        .snapshot()
        .arrow_schema()
        .fields()
        .iter()
        .map(|f| ColumnInfo {
            name: f.name().clone(),
            data_type: type_name(f.data_type()),
            nullable: f.is_nullable(),
        })
        .collect())
}

impl Lake {
    /// The newest `limit` commits of `layer.name` (an opened table), newest first. Commits
    /// whose log entry is gone (cleaned up after a checkpoint) are left out.
    pub async fn history(
        &self,
        layer: &str,
        name: &str,
        table: &DeltaTable,
        limit: usize,
    ) -> Result<Vec<CommitEntry>, LakeError> {
        let table_name = format!("{layer}.{name}");
        let current = table
            .snapshot()
            .map_err(|e| LakeError::delta(&table_name, "read snapshot", e))?
            .version();
        let mut out = Vec::new();
        let mut version = current;
        while out.len() < limit {
            let entry = table
                .log_store()
                .read_commit_entry(version as _)
                .await
                .map_err(|e| LakeError::delta(&table_name, "read a commit", e))?;
            if let Some(entry) = entry {
                out.push(parse_commit(version, &entry));
            }
            if version == 0 {
                break;
            }
            version -= 1;
        }
        Ok(out)
    }

    /// The first `limit` rows of `layer.name` (an opened table), values as text.
    pub async fn sample(
        &self,
        layer: &str,
        name: &str,
        table: &DeltaTable,
        limit: usize,
    ) -> Result<Sample, LakeError> {
        let table_name = format!("{layer}.{name}");
        let query_err = |e: deltalake::datafusion::error::DataFusionError| {
            LakeError::Query(format!("table {table_name}: {e}"))
        };
        let ctx = SessionContext::new();
        let provider = table.table_provider().await.map_err(query_err)?;
        ctx.register_table("t", provider).map_err(query_err)?;
        let df = ctx
            .table("t")
            .await
            .map_err(query_err)?
            .limit(0, Some(limit))
            .map_err(query_err)?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        let columns = schema.fields().iter().map(|f| f.name().clone()).collect();
        let mut stream = df.execute_stream().await.map_err(query_err)?;
        let opts = FormatOptions::default().with_display_error(true);
        let mut rows = Vec::new();
        while let Some(batch) = stream.try_next().await.map_err(query_err)? {
            let formatters = batch
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| LakeError::Query(format!("table {table_name}: {e}")))?;
            for row in 0..batch.num_rows() {
                if rows.len() >= limit {
                    break;
                }
                rows.push(
                    batch
                        .columns()
                        .iter()
                        .zip(&formatters)
                        .map(|(c, f)| (!c.is_null(row)).then(|| f.value(row).to_string()))
                        .collect(),
                );
            }
        }
        Ok(Sample { columns, rows })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_entries_are_read() {
        let entry = br#"{"commitInfo":{"timestamp":1700000000000,"operation":"WRITE","operationMetrics":{"num_added_rows":7},"tributary.run_id":"r1"}}
{"add":{"path":"a.parquet","size":100,"stats":"{\"numRecords\":5}"}}
{"add":{"path":"b.parquet","size":50,"stats":"{\"numRecords\":3}"}}
{"remove":{"path":"old.parquet"}}
"#;
        let c = parse_commit(3, entry);
        assert_eq!(c.version, 3);
        assert_eq!(c.timestamp_ms, Some(1_700_000_000_000));
        assert_eq!(c.operation.as_deref(), Some("WRITE"));
        assert_eq!(c.rows_added, Some(7), "the metric wins");
        assert_eq!((c.files_added, c.bytes_added, c.files_removed), (2, 150, 1));
        assert_eq!(c.run_id.as_deref(), Some("r1"));
        // Without a metric: the added files' statistics; one file without them: unknown.
        let c = parse_commit(0, &entry[..0]);
        assert_eq!(c.rows_added, Some(0));
        let no_metric = br#"{"commitInfo":{"operation":"CREATE TABLE"}}
{"add":{"path":"a.parquet","size":100,"stats":"{\"numRecords\":5}"}}"#;
        assert_eq!(parse_commit(0, no_metric).rows_added, Some(5));
        let no_stats = br#"{"add":{"path":"a.parquet","size":100}}"#;
        assert_eq!(parse_commit(0, no_stats).rows_added, None);
    }
}
