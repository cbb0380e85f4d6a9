//! Upstream tracking: the upstream tables a model reads, the versions of them its table's last
//! commit consumed (Delta app transactions `tributary:<layer>.<name>` → version), and, for an
//! incremental run, only the files each upstream table added since that version.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::datafusion::catalog::TableProvider;
use deltalake::datafusion::prelude::SessionContext;
use tributary_lake::{Lake, LakeError};

use crate::TransformError;
use crate::model::Model;
use crate::session::{empty_like, provider, register, split_id};

/// App-transaction id prefix recording consumed upstream versions.
pub const UPSTREAM_TXN_PREFIX: &str = "tributary:";
/// Schema prefix of the tables holding only an upstream table's new files.
pub(crate) const NEW_PREFIX: &str = "_new_";

fn delta(
    table: &str,
    action: &'static str,
) -> impl Fn(deltalake::DeltaTableError) -> TransformError {
    let table = table.to_string();
    move |e| TransformError::Lake(LakeError::delta(&table, action, e))
}

/// One upstream table as a model reads it.
pub(crate) struct Upstream {
    /// `layer.name`.
    pub(crate) id: String,
    pub(crate) table: DeltaTable,
    /// The version read, which the model's commit records as consumed.
    pub(crate) version: u64,
}

/// Open upstream table `id` of `model`; an error when it does not exist yet.
pub(crate) async fn open_upstream(
    lake: &Lake,
    model: &Model,
    id: &str,
) -> Result<Upstream, TransformError> {
    let (layer, name) = split_id(id);
    let table = lake
        .open(layer, name)
        .await?
        .ok_or_else(|| TransformError::MissingUpstream {
            model: model.id(),
            table: id.to_string(),
        })?;
    let version = table.version().unwrap_or(0);
    Ok(Upstream {
        id: id.to_string(),
        table,
        version,
    })
}

/// What [`register_upstreams`] registered.
pub(crate) struct Upstreams {
    /// Every upstream table, at the version read.
    pub(crate) read: Vec<Upstream>,
    /// The upstream tables the model reads only the new files of (as `_new_<layer>.<name>`).
    pub(crate) new_only: BTreeSet<String>,
    /// Whether there is anything to run on: always, unless the run is incremental and no
    /// upstream table it reads the new files of has any.
    pub(crate) anything_new: bool,
}

/// Register every upstream table `deps` of `model` in `ctx` as `<layer>.<name>`. In an
/// `incremental` run, each one the model reads the new rows of (`wants_new`) is registered
/// again as `_new_<layer>.<name>`, holding only the files added since the version the model's
/// table (`existing`) recorded as consumed: nothing when that is still the current version,
/// the whole table when it recorded none.
pub(crate) async fn register_upstreams(
    lake: &Lake,
    ctx: &SessionContext,
    model: &Model,
    deps: &BTreeSet<String>,
    existing: Option<&DeltaTable>,
    incremental: bool,
    wants_new: impl Fn(&str) -> bool,
) -> Result<Upstreams, TransformError> {
    let consumed = match existing {
        Some(t) if incremental => consumed_versions(t, deps).await?,
        _ => BTreeMap::new(),
    };
    let mut read = Vec::new();
    let mut new_only: BTreeSet<String> = BTreeSet::new();
    let mut anything_new = !incremental;
    for dep in deps {
        let up = open_upstream(lake, model, dep).await?;
        let (layer, name) = split_id(dep);
        register(ctx, layer, name, provider(&up.table, dep).await?)?;
        if incremental && wants_new(dep) {
            let new_schema = format!("{NEW_PREFIX}{layer}");
            match consumed.get(dep) {
                Some(v) if *v == up.version as i64 => {
                    register(ctx, &new_schema, name, empty_like(&up.table, dep)?)?;
                }
                Some(v) => {
                    let p = new_files_provider(&up.table, dep, (*v).max(0) as u64).await?;
                    register(ctx, &new_schema, name, p)?;
                    anything_new = true;
                }
                None => {
                    // Never consumed (new dependency): read it whole.
                    register(ctx, &new_schema, name, provider(&up.table, dep).await?)?;
                    anything_new = true;
                }
            }
            new_only.insert(dep.clone());
        }
        read.push(up);
    }
    Ok(Upstreams {
        read,
        new_only,
        anything_new,
    })
}

/// Versions of upstream tables recorded in the model's table.
async fn consumed_versions(
    target: &DeltaTable,
    ids: &BTreeSet<String>,
) -> Result<BTreeMap<String, i64>, TransformError> {
    let mut out = BTreeMap::new();
    let state = target.snapshot().map_err(delta("", "read snapshot"))?;
    for id in ids {
        let v = state
            .transaction_version(
                target.log_store().as_ref(),
                format!("{UPSTREAM_TXN_PREFIX}{id}"),
            )
            .await
            .map_err(delta(id, "read consumed version"))?;
        if let Some(v) = v {
            out.insert(id.clone(), v);
        }
    }
    Ok(out)
}

fn file_paths(t: &DeltaTable) -> Result<Vec<String>, deltalake::DeltaTableError> {
    Ok(t.snapshot()?
        .log_data()
        .iter()
        .map(|f| f.path().to_string())
        .collect())
}

/// A provider over the files added to `t` after version `since`.
async fn new_files_provider(
    t: &DeltaTable,
    id: &str,
    since: u64,
) -> Result<Arc<dyn TableProvider>, TransformError> {
    let mut old = t.clone();
    let old_paths: HashSet<String> = match old.load_version(since).await {
        Ok(()) => file_paths(&old)
            .map_err(delta(id, "list files"))?
            .into_iter()
            .collect(),
        Err(e) => {
            tracing::warn!(table = %id, version = since, error = %e, "Cannot read the consumed version; reading the whole table.");
            HashSet::new()
        }
    };
    let new: Vec<String> = file_paths(t)
        .map_err(delta(id, "list files"))?
        .into_iter()
        .filter(|p| !old_paths.contains(p))
        .collect();
    if new.is_empty() {
        return empty_like(t, id);
    }
    let scan = t
        .table_provider()
        .with_file_paths(new)
        .build()
        .await
        .map_err(|e| TransformError::Engine {
            model: String::new(),
            action: format!("read new files of {id}"),
            message: e.to_string(),
            class: tributary_lake::datafusion_class(&e),
        })?;
    Ok(Arc::new(scan))
}

/// Rows in the files `t` added after version `before` (all of its rows when `None`); 0 when
/// that cannot be read.
pub(crate) async fn rows_added_since(t: &DeltaTable, before: Option<u64>) -> u64 {
    let old: HashSet<String> = match before {
        Some(v) => {
            let mut o = t.clone();
            if o.load_version(v).await.is_err() {
                return 0;
            }
            file_paths(&o).unwrap_or_default().into_iter().collect()
        }
        None => HashSet::new(),
    };
    let Ok(snapshot) = t.snapshot() else { return 0 };
    snapshot
        .log_data()
        .iter()
        .filter(|f| !old.contains(f.path().as_ref()))
        .filter_map(|f| f.num_records())
        .map(|n| n as u64)
        .sum()
}
