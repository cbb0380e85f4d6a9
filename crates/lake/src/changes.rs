//! What the commits after a version did to a Delta table, read from its transaction log: the
//! data files they added. Incremental reads of tables without a change data feed read exactly
//! these files.
//!
//! - A commit whose files carry `dataChange: true` adds rows: its files are read.
//! - A commit that only rearranges files (`dataChange: false` adds and removes: OPTIMIZE,
//!   compaction, Z-order) changes no row: it is skipped. When it removed a file that a commit
//!   in the range added, that file is read at the version just before the compaction, where it
//!   is still part of the table (its rows are also in the compacted file, which is not read).
//! - A commit that removes files with `dataChange: true` (DELETE, UPDATE, MERGE, overwrite,
//!   RESTORE, deletion vectors) changed or removed rows the added files cannot tell about: the
//!   walk fails with [`LakeError::DataRemoved`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::datafusion::catalog::TableProvider;
use deltalake::delta_datafusion::DeltaScanNext;
use deltalake::kernel::{Action, Add, Snapshot};
use deltalake::logstore::get_actions;
use deltalake::logstore::object_store::ObjectStoreExt;

use crate::LakeError;

/// The data files one commit added.
#[derive(Debug, Clone)]
pub struct AddedFiles {
    /// The commit's version.
    pub version: u64,
    /// When it was committed, milliseconds since the Unix epoch (its `commitInfo`: the
    /// in-commit timestamp when the table has one, else the writer's clock).
    pub timestamp_ms: Option<i64>,
    /// The commit's operation (`WRITE`, `STREAMING UPDATE`, …), or `unknown operation`.
    pub operation: String,
    /// The files, grouped by the table version to read them at.
    pub groups: Vec<FileGroup>,
}

/// Added files to read at one table version.
#[derive(Debug, Clone)]
pub struct FileGroup {
    /// The version whose snapshot still holds every file of the group: the end of the range,
    /// or the version before a compaction removed them.
    pub read_at: u64,
    /// The files' add actions.
    pub adds: Vec<Add>,
}

/// What the commits of a version range did.
#[derive(Debug, Clone, Default)]
pub struct DataAdded {
    /// Commits that added rows, in version order.
    pub commits: Vec<AddedFiles>,
    /// Commits that changed no row (compaction, metadata, protocol), as (version, operation).
    pub skipped: Vec<(u64, String)>,
}

impl DataAdded {
    /// Number of data files to read.
    pub fn files(&self) -> usize {
        self.commits
            .iter()
            .flat_map(|c| &c.groups)
            .map(|g| g.adds.len())
            .sum()
    }
}

/// A scan of the files one commit added, at a version that still holds them all.
pub struct AddedScan {
    /// The commit's version.
    pub version: u64,
    /// When it was committed, milliseconds since the Unix epoch, when it says.
    pub timestamp_ms: Option<i64>,
    /// The rows of its files.
    pub provider: Arc<dyn TableProvider>,
}

/// Scans of the files `added` lists: one per commit and version to read them at, the
/// snapshots of those versions loaded once each. `table_name` names the table in errors.
pub async fn added_scans(
    table_name: &str,
    table: &DeltaTable,
    added: DataAdded,
) -> Result<Vec<AddedScan>, LakeError> {
    let log_store = table.log_store();
    let current = table.version().unwrap_or(0);
    let mut snapshots: HashMap<u64, Arc<Snapshot>> = HashMap::new();
    let mut out = Vec::new();
    for commit in added.commits {
        for group in commit.groups {
            // Files read at a version before a compaction are no longer in the table: they
            // are still readable only until a vacuum deletes them.
            if group.read_at < current {
                let store = log_store.object_store(None);
                for add in &group.adds {
                    let path = deltalake::logstore::object_store::path::Path::parse(&add.path)
                        .unwrap_or_else(|_| {
                            deltalake::logstore::object_store::path::Path::from(add.path.as_str())
                        });
                    match store.head(&path).await {
                        Ok(_) => {}
                        Err(deltalake::logstore::object_store::Error::NotFound { .. }) => {
                            return Err(LakeError::FilesVacuumed {
                                table: table_name.to_string(),
                                version: commit.version,
                                path: add.path.clone(),
                            });
                        }
                        Err(e) => {
                            return Err(LakeError::delta(
                                table_name,
                                "check a compacted file",
                                deltalake::DeltaTableError::ObjectStore { source: e },
                            ));
                        }
                    }
                }
            }
            let snapshot = match snapshots.get(&group.read_at) {
                Some(s) => s.clone(),
                None => {
                    let s = Snapshot::try_new(log_store.as_ref(), Some(group.read_at))
                        .await
                        .map_err(|e| LakeError::delta(table_name, "load a version", e))?;
                    let s = Arc::new(s);
                    snapshots.insert(group.read_at, s.clone());
                    s
                }
            };
            let scan = DeltaScanNext::builder()
                .with_log_store(log_store.clone())
                .with_snapshot(snapshot)
                .with_adds(group.adds)
                .build()
                .await
                .map_err(|e| LakeError::Scan {
                    table: table_name.to_string(),
                    doing: format!(
                        "planning the scan of the files version {} added",
                        commit.version
                    ),
                    message: e.to_string(),
                    class: crate::datafusion_class(&e),
                })?;
            out.push(AddedScan {
                version: commit.version,
                timestamp_ms: commit.timestamp_ms,
                provider: Arc::new(scan),
            });
        }
    }
    Ok(out)
}

/// Whether the loaded version of `t` has the change data feed on
/// (`delta.enableChangeDataFeed = true`).
pub fn has_change_data_feed(t: &DeltaTable) -> bool {
    t.snapshot().is_ok_and(|s| {
        s.metadata()
            .configuration()
            .get("delta.enableChangeDataFeed")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    })
}

/// The operation and timestamp recorded in one commit's `commitInfo`.
struct CommitFacts {
    timestamp_ms: Option<i64>,
    operation: String,
}

/// Read commit `version`'s actions; a version missing from the log is
/// [`LakeError::CommitMissing`].
async fn commit_actions(
    table_name: &str,
    table: &DeltaTable,
    version: u64,
) -> Result<Vec<Action>, LakeError> {
    let bytes = table
        .log_store()
        .read_commit_entry(version)
        .await
        .map_err(|e| LakeError::delta(table_name, "read the transaction log", e))?
        .ok_or_else(|| LakeError::CommitMissing {
            table: table_name.to_string(),
            version,
        })?;
    get_actions(version, &bytes)
        .map_err(|e| LakeError::delta(table_name, "read the transaction log", e))
}

fn facts(actions: &[Action]) -> CommitFacts {
    let info = actions.iter().find_map(|a| match a {
        Action::CommitInfo(ci) => Some(ci),
        _ => None,
    });
    CommitFacts {
        timestamp_ms: info.and_then(|ci| ci.in_commit_timestamp.or(ci.timestamp)),
        operation: info
            .and_then(|ci| ci.operation.clone())
            .unwrap_or_else(|| "unknown operation".to_string()),
    }
}

/// When commit `version` was made, milliseconds since the Unix epoch, from its `commitInfo`;
/// `None` when the commit records no time.
pub async fn commit_timestamp_ms(
    table_name: &str,
    table: &DeltaTable,
    version: u64,
) -> Result<Option<i64>, LakeError> {
    Ok(facts(&commit_actions(table_name, table, version).await?).timestamp_ms)
}

/// The data files added by the commits after version `after` up to and including `upto`
/// (see the module documentation for which commits are read, skipped or refused).
/// `table_name` names the table in errors.
pub async fn data_added_between(
    table_name: &str,
    table: &DeltaTable,
    after: u64,
    upto: u64,
) -> Result<DataAdded, LakeError> {
    let mut out = DataAdded::default();
    // Files removed without a data change (compaction): path -> version of the removal.
    let mut compacted: HashMap<String, u64> = HashMap::new();
    let mut adding: Vec<(u64, CommitFacts, Vec<Add>)> = Vec::new();
    for version in after.saturating_add(1)..=upto {
        let actions = commit_actions(table_name, table, version).await?;
        let commit = facts(&actions);
        let mut adds = Vec::new();
        let mut removes_rows = false;
        for action in actions {
            match action {
                Action::Add(a) if a.data_change => adds.push(a),
                Action::Remove(r) if r.data_change => removes_rows = true,
                Action::Remove(r) => {
                    compacted.insert(r.path, version);
                }
                _ => {}
            }
        }
        if removes_rows {
            return Err(LakeError::DataRemoved {
                table: table_name.to_string(),
                version,
                operation: commit.operation,
            });
        }
        if adds.is_empty() {
            out.skipped.push((version, commit.operation));
        } else {
            adding.push((version, commit, adds));
        }
    }
    for (version, commit, adds) in adding {
        let mut groups: BTreeMap<u64, Vec<Add>> = BTreeMap::new();
        for add in adds {
            let read_at = match compacted.get(&add.path) {
                Some(removed) if *removed > version => removed - 1,
                _ => upto,
            };
            groups.entry(read_at).or_default().push(add);
        }
        out.commits.push(AddedFiles {
            version,
            timestamp_ms: commit.timestamp_ms,
            operation: commit.operation,
            groups: groups
                .into_iter()
                .map(|(read_at, adds)| FileGroup { read_at, adds })
                .collect(),
        });
    }
    Ok(out)
}
