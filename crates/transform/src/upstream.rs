//! Upstream tracking: the upstream tables a model reads, the versions of them its table's last
//! commit consumed (Delta app transactions `tributary:<layer>.<name>` → version), and, for an
//! incremental run, only the rows each upstream table *changed* since that version:
//!
//! - Commits that change no row (OPTIMIZE, Z-order, a foreign compaction, metadata) are skipped;
//!   rows that a compaction moved into a new file are not read again.
//! - A merge or scd2 model reads an upstream's change data feed when it has one (its inserts and
//!   update post-images), else the files the commits since then added.
//! - When a commit since then changed or removed rows (MERGE, UPDATE, DELETE, an overwrite) and
//!   there is no change data feed to tell which, or the log no longer holds the commits since
//!   then (log cleanup), a merge or scd2 model reads the upstream whole, as a snapshot, and says
//!   so; an append-only model (incremental without `unique_key`) fails, naming the commit.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::datafusion::catalog::TableProvider;
use deltalake::datafusion::common::ScalarValue;
use deltalake::datafusion::dataframe::DataFrame;
use deltalake::datafusion::prelude::{Expr, SessionContext, col, ident, lit};
use deltalake::delta_datafusion::DeltaCdfTableProvider;
use tributary_core::ErrorClass;
use tributary_lake::changes::{added_scans, data_added_between, has_change_data_feed};
use tributary_lake::{Lake, LakeError};

use crate::TransformError;
use crate::model::Model;
use crate::session::{empty_like, provider, register, split_id};
use tributary_lake::table_schema;

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
                    let p = changed_rows(ctx, model, &up, (*v).max(0) as u64).await?;
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

/// The rows upstream `up` changed after version `since` (see the module documentation), as
/// one table with its current schema.
async fn changed_rows(
    ctx: &SessionContext,
    model: &Model,
    up: &Upstream,
    since: u64,
) -> Result<Arc<dyn TableProvider>, TransformError> {
    let id = up.id.as_str();
    if since > up.version {
        return rewritten(
            model,
            up,
            format!(
                "was replaced by a new table: its version {} is older than version {since}, which {} last read",
                up.version,
                model.id()
            ),
        )
        .await;
    }
    let appends = model.appends_only();
    if !appends && has_change_data_feed(&up.table) {
        match feed_rows(ctx, model, up, since).await {
            Ok(p) => return Ok(p),
            // A version in the range without the feed (it was turned on later): follow the
            // files the commits added instead.
            Err(e) => {
                tracing::info!(model = %model.id(), table = %id, error = %e, "Cannot read the change data feed of the versions since the last run; reading the files they added.")
            }
        }
    }
    let added = match data_added_between(id, &up.table, since, up.version).await {
        Ok(added) => added,
        Err(e) => return rewritten_or(e, model, up, since).await,
    };
    for (version, operation) in &added.skipped {
        tracing::debug!(model = %model.id(), table = %id, version, operation = %operation, "Skipped an upstream commit that changed no rows.");
    }
    if added.commits.is_empty() {
        return empty_like(&up.table, id);
    }
    let target = table_schema(id, &up.table)?;
    let scans = match added_scans(id, &up.table, added).await {
        Ok(scans) => scans,
        Err(e) => return rewritten_or(e, model, up, since).await,
    };
    let mut parts = Vec::new();
    for scan in scans {
        parts.push(aligned(ctx, model, id, scan.provider, &target)?);
    }
    union(model, id, parts)
}

/// The change data feed of `up` after version `since`: inserts and update post-images, without
/// the feed's own columns.
async fn feed_rows(
    ctx: &SessionContext,
    model: &Model,
    up: &Upstream,
    since: u64,
) -> Result<Arc<dyn TableProvider>, TransformError> {
    let id = up.id.as_str();
    let builder = up
        .table
        .clone()
        .scan_cdf()
        .with_starting_version(since + 1)
        .with_ending_version(up.version);
    let feed =
        DeltaCdfTableProvider::try_new(builder).map_err(delta(id, "read the change data feed"))?;
    let engine_error = |e: deltalake::datafusion::error::DataFusionError| TransformError::Engine {
        model: model.id(),
        action: format!("read the change data feed of {id}"),
        message: e.to_string(),
        class: tributary_lake::datafusion_class(&e),
    };
    let df = ctx
        .read_table(Arc::new(feed))
        .map_err(engine_error)?
        .filter(col("_change_type").in_list(vec![lit("insert"), lit("update_postimage")], false))
        .map_err(engine_error)?;
    let target = table_schema(id, &up.table)?;
    let columns: Vec<Expr> = target.fields().iter().map(|f| ident(f.name())).collect();
    let df = df.select(columns).map_err(engine_error)?;
    tracing::info!(model = %model.id(), table = %id, from_version = since + 1, to_version = up.version, "Reading the change data feed.");
    Ok(df.into_view())
}

/// Rows of `part` in the columns of `target`: a column the part lacks (added to the table
/// later) is NULL, one of another type is cast.
fn aligned(
    ctx: &SessionContext,
    model: &Model,
    id: &str,
    part: Arc<dyn TableProvider>,
    target: &SchemaRef,
) -> Result<DataFrame, TransformError> {
    let have = part.schema();
    let columns: Vec<Expr> = target
        .fields()
        .iter()
        .map(|f| match have.field_with_name(f.name()) {
            Ok(h) if h.data_type() == f.data_type() => ident(f.name()),
            Ok(_) => deltalake::datafusion::prelude::cast(ident(f.name()), f.data_type().clone())
                .alias(f.name()),
            Err(_) => lit(ScalarValue::try_from(f.data_type()).unwrap_or(ScalarValue::Null))
                .alias(f.name()),
        })
        .collect();
    ctx.read_table(part)
        .and_then(|df| df.select(columns))
        .map_err(|e| TransformError::Engine {
            model: model.id(),
            action: format!("read the new rows of {id}"),
            message: e.to_string(),
            class: tributary_lake::datafusion_class(&e),
        })
}

/// One table of the rows of every part.
fn union(
    model: &Model,
    id: &str,
    parts: Vec<DataFrame>,
) -> Result<Arc<dyn TableProvider>, TransformError> {
    let mut parts = parts.into_iter();
    let Some(mut all) = parts.next() else {
        return Err(TransformError::Engine {
            model: model.id(),
            action: format!("read the new rows of {id}"),
            message: "no parts to read".into(),
            class: ErrorClass::Internal,
        });
    };
    for part in parts {
        all = all.union(part).map_err(|e| TransformError::Engine {
            model: model.id(),
            action: format!("read the new rows of {id}"),
            message: e.to_string(),
            class: tributary_lake::datafusion_class(&e),
        })?;
    }
    Ok(all.into_view())
}

/// A lake error of reading what `up` changed after `since`: when it says the changes cannot be
/// told ([`LakeError::DataRemoved`], [`LakeError::CommitMissing`], [`LakeError::FilesVacuumed`]),
/// the model follows [`rewritten`]; any other error is returned.
async fn rewritten_or(
    e: LakeError,
    model: &Model,
    up: &Upstream,
    since: u64,
) -> Result<Arc<dyn TableProvider>, TransformError> {
    let what = match e {
        LakeError::DataRemoved {
            version, operation, ..
        } => format!("changed or removed rows in version {version} ({operation})"),
        LakeError::CommitMissing { version, .. } => format!(
            "no longer has version {version} in its transaction log (log cleanup removed it), so what changed since version {since}, which {} last read, is unknown",
            model.id()
        ),
        LakeError::FilesVacuumed { version, path, .. } => format!(
            "compacted and then vacuumed the files version {version} added (e.g. `{path}`) before {} read them, so those rows cannot be told apart from the older ones",
            model.id()
        ),
        other => return Err(other.into()),
    };
    rewritten(model, up, what).await
}

/// Upstream `up` changed rows in a way the files it added cannot tell (`what` says how): an
/// append-only model fails; a merge or scd2 model reads the upstream whole this run.
async fn rewritten(
    model: &Model,
    up: &Upstream,
    what: String,
) -> Result<Arc<dyn TableProvider>, TransformError> {
    if model.appends_only() {
        return Err(TransformError::UpstreamRewritten {
            model: model.id(),
            table: up.id.clone(),
            what,
        });
    }
    tracing::warn!(model = %model.id(), table = %up.id, version = up.version, "{} {what}; reading it whole (version {}) this run: the model merges every row again.", up.id, up.version);
    provider(&up.table, &up.id).await
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
