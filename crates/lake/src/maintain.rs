//! Table maintenance: compaction (OPTIMIZE), a checkpoint, and VACUUM with a retention that
//! refuses values below Delta's safety default unless forced.

use std::num::NonZeroU64;

use deltalake::checkpoints::create_checkpoint;

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
    let (table, metrics) = table
        .optimize()
        .with_target_size(target)
        .await
        .map_err(|e| LakeError::delta(&table_name, "compact", e))?;
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
