//! The query engine's session for one model: a bounded memory pool and the planner, tables
//! registered as `<schema>.<name>`, and providers over Delta tables (whole, or empty).

use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::datafusion::catalog::{MemorySchemaProvider, TableProvider};
use deltalake::datafusion::datasource::MemTable;
use deltalake::datafusion::execution::memory_pool::FairSpillPool;
use deltalake::datafusion::execution::runtime_env::RuntimeEnvBuilder;
use deltalake::datafusion::execution::session_state::SessionStateBuilder;
use deltalake::datafusion::prelude::{SessionConfig, SessionContext};
use tributary_lake::{datafusion_class, table_schema};

use crate::dedupe::ModelPlanner;
use crate::model::Model;
use crate::{ErrorClass, TransformError};

/// A new session with a bounded, spilling memory pool and [`ModelPlanner`] (delta-rs's planner,
/// needed by its write and merge operations, plus the deduplication node).
pub fn new_session(memory_limit_bytes: usize) -> Result<SessionContext, TransformError> {
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(FairSpillPool::new(memory_limit_bytes)))
        .build_arc()
        .map_err(|e| TransformError::Engine {
            model: String::new(),
            action: "start the query engine".into(),
            message: e.to_string(),
            class: ErrorClass::Internal,
        })?;
    let config = SessionConfig::new()
        .with_information_schema(false)
        .with_batch_size(8192);
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_query_planner(Arc::new(ModelPlanner))
        .build();
    Ok(SessionContext::new_with_state(state))
}

/// Register `provider` as `schema.name` in `ctx`.
pub fn register(
    ctx: &SessionContext,
    schema: &str,
    name: &str,
    provider: Arc<dyn TableProvider>,
) -> Result<(), TransformError> {
    let err = |e: deltalake::datafusion::error::DataFusionError| TransformError::Engine {
        model: String::new(),
        action: format!("register {schema}.{name}"),
        message: e.to_string(),
        class: datafusion_class(&e),
    };
    let catalog = ctx
        .catalog("datafusion")
        .ok_or_else(|| TransformError::Engine {
            model: String::new(),
            action: "register tables".into(),
            message: "the default catalog is missing".into(),
            class: ErrorClass::Internal,
        })?;
    let s = match catalog.schema(schema) {
        Some(s) => s,
        None => {
            let s = Arc::new(MemorySchemaProvider::new());
            catalog.register_schema(schema, s.clone()).map_err(err)?;
            s
        }
    };
    s.register_table(name.to_string(), provider).map_err(err)?;
    Ok(())
}

/// `layer.name` as `(layer, name)`; an id without a dot has an empty layer.
pub(crate) fn split_id(id: &str) -> (&str, &str) {
    id.split_once('.').unwrap_or(("", id))
}

/// Turns an engine error into one naming the model and what was being done.
pub(crate) fn engine(
    model: &Model,
    action: &str,
) -> impl Fn(deltalake::datafusion::error::DataFusionError) -> TransformError {
    let id = model.id();
    let action = action.to_string();
    move |e| TransformError::Engine {
        model: id.clone(),
        action: action.clone(),
        message: e.to_string(),
        class: datafusion_class(&e),
    }
}

/// A provider over the whole current table.
pub(crate) async fn provider(
    t: &DeltaTable,
    id: &str,
) -> Result<Arc<dyn TableProvider>, TransformError> {
    let p = t
        .table_provider()
        .await
        .map_err(|e| TransformError::Engine {
            model: String::new(),
            action: format!("open {id} for reading"),
            message: e.to_string(),
            class: datafusion_class(&e),
        })?;
    Ok(p)
}

/// An empty table with `t`'s schema.
pub(crate) fn empty_like(
    t: &DeltaTable,
    id: &str,
) -> Result<Arc<dyn TableProvider>, TransformError> {
    let schema = table_schema(id, t)?;
    let mem = MemTable::try_new(schema, vec![vec![]]).map_err(|e| TransformError::Engine {
        model: String::new(),
        action: format!("read {id}"),
        message: e.to_string(),
        class: ErrorClass::Internal,
    })?;
    Ok(Arc::new(mem))
}
