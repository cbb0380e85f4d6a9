//! Table maintenance: compaction (OPTIMIZE, bin-packing or Z-order), a checkpoint, and VACUUM
//! with a retention that refuses values below Delta's safety default unless forced.

use std::num::NonZeroU64;

use deltalake::checkpoints::create_checkpoint;
use deltalake::operations::optimize::OptimizeType;

use crate::{Lake, LakeError};

/// Delta's default `deletedFileRetentionDuration`: 7 days.
pub const SAFE_RETENTION_HOURS: u64 = 168;

/// What `maintain` does to each table.
#[derive(Debug, Clone)]
pub struct MaintainOptions {
    /// Compact small files into files of about this size.
    pub target_file_bytes: u64,
    /// Delete unreferenced files older than this.
    pub retention_hours: u64,
    /// Allow a retention below [`SAFE_RETENTION_HOURS`].
    pub force: bool,
    /// Report what vacuum would delete without deleting (compaction and checkpoint still run).
    pub dry_run: bool,
    /// Cluster by these columns (Z-order: rows close in all of them land in the same files, so
    /// filters on any of them skip more files) instead of bin-packing compaction. Empty: compact.
    pub zorder_by: Vec<String>,
}

/// What maintenance did to one table.
#[derive(Debug, Clone)]
pub struct MaintainReport {
    /// Files removed by compaction.
    pub files_removed: u64,
    /// Files written by compaction.
    pub files_added: u64,
    /// Table version after compaction (the checkpoint is written at this version).
    pub version: u64,
    /// Files vacuum deleted (or would delete, with `dry_run`).
    pub files_vacuumed: usize,
}

impl MaintainOptions {
    /// Refuse unsafe retentions unless forced; the message says why and how.
    pub fn check(&self) -> Result<(), String> {
        if self.retention_hours < SAFE_RETENTION_HOURS && !self.force {
            return Err(format!(
                "a vacuum retention of {} hours is below Delta's safety default of {SAFE_RETENTION_HOURS} hours (7 days): \
                 readers of older versions and writers still running could lose files they need; pass --force to allow it",
                self.retention_hours
            ));
        }
        Ok(())
    }
}

/// Compact, checkpoint and vacuum `<layer>.<name>`.
pub async fn maintain_table(
    lake: &Lake,
    layer: &str,
    name: &str,
    options: &MaintainOptions,
) -> Result<MaintainReport, LakeError> {
    let table_name = format!("{layer}.{name}");
    options.check().map_err(|reason| LakeError::Schema {
        table: table_name.clone(),
        reason,
    })?;
    let table = lake
        .open(layer, name)
        .await?
        .ok_or_else(|| LakeError::Location {
            location: lake.display_root(),
            reason: format!("there is no table {table_name}"),
        })?;
    let target =
        NonZeroU64::new(options.target_file_bytes.max(1024 * 1024)).unwrap_or(NonZeroU64::MIN);
    let zorder = match options.zorder_by.is_empty() {
        true => None,
        false => Some(zorder_columns(&table_name, &table, &options.zorder_by)?),
    };
    let mut optimize = table.optimize().with_target_size(target);
    let action = match zorder {
        None => "compact",
        Some(columns) => {
            optimize = optimize.with_type(OptimizeType::ZOrder(columns));
            "z-order"
        }
    };
    let (table, metrics) = optimize
        .await
        .map_err(|e| LakeError::delta(&table_name, action, e))?;
    create_checkpoint(&table, None)
        .await
        .map_err(|e| LakeError::delta(&table_name, "checkpoint", e))?;
    let version = table.version().unwrap_or(0);
    let (_, vacuum) = table
        .vacuum()
        .with_retention_period(chrono::Duration::hours(options.retention_hours as i64))
        .with_enforce_retention_duration(!options.force)
        .with_dry_run(options.dry_run)
        .await
        .map_err(|e| LakeError::delta(&table_name, "vacuum", e))?;
    Ok(MaintainReport {
        files_removed: metrics.num_files_removed,
        files_added: metrics.num_files_added,
        version,
        files_vacuumed: vacuum.files_deleted.len(),
    })
}

/// The table's own spelling of each Z-order column; an error naming the missing column and the
/// table's columns.
fn zorder_columns(
    table_name: &str,
    table: &deltalake::DeltaTable,
    wanted: &[String],
) -> Result<Vec<String>, LakeError> {
    let snapshot = table
        .snapshot()
        .map_err(|e| LakeError::delta(table_name, "read snapshot", e))?;
    let schema = snapshot.schema();
    let names: Vec<String> = schema.fields().map(|f| f.name().to_string()).collect();
    let mut out = Vec::new();
    for w in wanted {
        let Some(name) = names
            .iter()
            .find(|n| *n == w)
            .or_else(|| names.iter().find(|n| n.eq_ignore_ascii_case(w)))
        else {
            return Err(LakeError::Schema {
                table: table_name.to_string(),
                reason: format!(
                    "--zorder-by names column `{w}`, which the table does not have (it has: {})",
                    names.join(", ")
                ),
            });
        };
        out.push(name.clone());
    }
    Ok(out)
}
