//! The latest row per `unique_key`, planned so the engine does the least work.
//!
//! `ROW_NUMBER() OVER (PARTITION BY key ORDER BY …)` sorts every whole row by key. The plan here
//! never sorts:
//!
//! 1. an aggregate reads only the key and ordering columns and finds, per key, the largest value
//!    of the first ordering column; each further ordering column refines that: its largest value
//!    among the rows that tie on the earlier ones (a narrow join, then the same aggregate);
//! 2. a hash join, built on that aggregate (one row per key), keeps the input rows that carry
//!    those values;
//! 3. [`KeepFirstPerKey`] keeps the first of the rows that tie on the key and every ordering
//!    column, so the result holds exactly one whole input row per key.
//!
//! Keys and ordering values are compared with `IS NOT DISTINCT FROM`: rows with a NULL key form
//! one group (as in `GROUP BY`), and a NULL ordering value loses to any other (`DESC NULLS
//! LAST`); a key whose ordering values are all NULL keeps one of its rows.
//!
//! Step 3 is a plan node of its own, so a session that runs it needs [`ModelPlanner`]. delta-rs
//! plans a MERGE with its own planner, which does not know that node: a deduplicated result that
//! feeds a MERGE uses [`window_dedupe_sql`] instead (incremental batches are small).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use deltalake::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use deltalake::arrow::compute::{cast, filter_record_batch};
use deltalake::arrow::datatypes::{DataType, Int64Type, Schema, SchemaRef};
use deltalake::arrow::row::{RowConverter, SortField};
use deltalake::datafusion::catalog::Session;
use deltalake::datafusion::common::tree_node::TreeNodeRecursion;
use deltalake::datafusion::common::{DFSchemaRef, DataFusionError, HashSet, Result};
use deltalake::datafusion::execution::context::QueryPlanner;
use deltalake::datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use deltalake::datafusion::execution::{SendableRecordBatchStream, TaskContext};
use deltalake::datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use deltalake::datafusion::logical_expr::{
    Expr, Extension, LogicalPlan, UserDefinedLogicalNode, UserDefinedLogicalNodeCore,
};
use deltalake::datafusion::physical_plan::expressions::Column as ColumnExpr;
use deltalake::datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use deltalake::datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, Distribution, ExecutionPlan,
    PhysicalExpr, PlanProperties, ReplaceChildrenOptions,
};
use deltalake::datafusion::physical_planner::{
    DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner,
};
use deltalake::datafusion::prelude::{DataFrame, SessionContext};
use deltalake::delta_datafusion::planner::DeltaExtensionPlanner;
use futures::StreamExt;

use crate::sql::quote_ident;

/// The column that breaks ties between rows with equal ordering values, when the input has it.
pub const LOADED_AT: &str = "_tributary_loaded_at";

/// The ordering columns: `order_by`, then `_tributary_loaded_at` when the input has it.
fn ordering(schema: &Schema, order_by: &[String]) -> Vec<String> {
    let mut order: Vec<String> = order_by.to_vec();
    if schema.field_with_name(LOADED_AT).is_ok() && !order.iter().any(|o| o == LOADED_AT) {
        order.push(LOADED_AT.into());
    }
    order
}

fn m(i: usize) -> String {
    format!("__tributary_m{i}")
}

/// `(a.x IS NOT DISTINCT FROM b.y) AND …` for the keys and the first `n` ordering columns.
fn match_on(keys: &[String], order: &[String], n: usize, input: &str) -> String {
    let mut parts: Vec<String> = keys
        .iter()
        .map(|k| {
            format!(
                "({input}.{q} IS NOT DISTINCT FROM a.{q})",
                q = quote_ident(k)
            )
        })
        .collect();
    for (i, o) in order.iter().take(n).enumerate() {
        parts.push(format!(
            "({input}.{} IS NOT DISTINCT FROM a.{})",
            quote_ident(o),
            m(i)
        ));
    }
    parts.join(" AND ")
}

/// The SQL of steps 1 and 2: the rows of `input` that carry their key's largest ordering values
/// (several per key only where every ordering value ties). `None` without ordering columns.
pub fn latest_rows_sql(
    input: &str,
    schema: &Schema,
    keys: &[String],
    order_by: &[String],
) -> Option<String> {
    let order = ordering(schema, order_by);
    if order.is_empty() {
        return None;
    }
    let key_list = keys
        .iter()
        .map(|k| quote_ident(k))
        .collect::<Vec<_>>()
        .join(", ");
    let r_keys = keys
        .iter()
        .map(|k| format!("r.{}", quote_ident(k)))
        .collect::<Vec<_>>()
        .join(", ");
    // Level 1: the largest first ordering value per key.
    let mut agg = format!(
        "SELECT {key_list}, max({o}) AS {m0} FROM {input} GROUP BY {key_list}",
        o = quote_ident(&order[0]),
        m0 = m(0)
    );
    // Each further level: among the rows at the earlier maxima, the largest next value.
    for level in 1..order.len() {
        let maxima = (0..=level)
            .map(|i| format!("max(r.{}) AS {}", quote_ident(&order[i]), m(i)))
            .collect::<Vec<_>>()
            .join(", ");
        agg = format!(
            "SELECT {r_keys}, {maxima} FROM ({agg}) a JOIN {input} r ON {on} GROUP BY {r_keys}",
            on = match_on(keys, &order, level, "r"),
        );
    }
    let cols = schema
        .fields()
        .iter()
        .map(|f| format!("r.{}", quote_ident(f.name())))
        .collect::<Vec<_>>()
        .join(", ");
    Some(format!(
        "SELECT {cols} FROM ({agg}) a JOIN {input} r ON {on}",
        on = match_on(keys, &order, order.len(), "r"),
    ))
}

/// The latest row per key of the registered relation `input` (one whole input row per key):
/// the largest `order_by` values first (NULLs last), `_tributary_loaded_at` breaking ties when
/// present, then any one of the rows that tie on all of them. Runs in sessions built with
/// [`ModelPlanner`].
pub async fn dedupe(
    ctx: &SessionContext,
    input: &str,
    schema: &Schema,
    keys: &[String],
    order_by: &[String],
) -> Result<DataFrame> {
    let candidates = match latest_rows_sql(input, schema, keys, order_by) {
        Some(sql) => ctx.sql(&sql).await?,
        None => ctx.table(input).await?,
    };
    let (state, plan) = candidates.into_parts();
    let column = |name: &String| {
        plan.schema()
            .qualified_field_with_unqualified_name(name)
            .map(|(q, f)| Expr::Column((q, f).into()))
    };
    let key_exprs = keys.iter().map(column).collect::<Result<Vec<_>>>()?;
    // After step 2 all rows of a key share its ordering values, so partitioning by key and
    // ordering columns keeps each key in one partition, and the join's output is already
    // partitioned that way (no repartition).
    let partition_by = keys
        .iter()
        .chain(ordering(schema, order_by).iter())
        .map(column)
        .collect::<Result<Vec<_>>>()?;
    let node = KeepFirstPerKey {
        input: plan,
        keys: key_exprs,
        partition_by,
    };
    Ok(DataFrame::new(
        state,
        LogicalPlan::Extension(Extension {
            node: Arc::new(node),
        }),
    ))
}

/// The same result with a `ROW_NUMBER()` window, for a result that feeds a delta-rs MERGE
/// (whose planner does not know [`KeepFirstPerKey`]). Every output row is one whole input row.
pub fn window_dedupe_sql(
    input: &str,
    schema: &Schema,
    keys: &[String],
    order_by: &[String],
) -> String {
    let order = ordering(schema, order_by);
    let key_list = keys
        .iter()
        .map(|k| quote_ident(k))
        .collect::<Vec<_>>()
        .join(", ");
    let order_clause = if order.is_empty() {
        String::new()
    } else {
        format!(
            " ORDER BY {}",
            order
                .iter()
                .map(|o| format!("{} DESC NULLS LAST", quote_ident(o)))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let cols = schema
        .fields()
        .iter()
        .map(|f| quote_ident(f.name()))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT {cols} FROM (SELECT {cols}, ROW_NUMBER() OVER (PARTITION BY {key_list}{order_clause}) AS __tributary_rn FROM {input}) WHERE __tributary_rn = 1"
    )
}

/// Logical plan node: the first row of each key, in input order; rows are otherwise unchanged.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Hash)]
pub struct KeepFirstPerKey {
    input: LogicalPlan,
    /// The key columns.
    keys: Vec<Expr>,
    /// The columns to hash-partition the input by: the keys, plus columns whose values are
    /// the same in every row of a key (so each key stays in one partition).
    partition_by: Vec<Expr>,
}

impl UserDefinedLogicalNodeCore for KeepFirstPerKey {
    fn name(&self) -> &str {
        "KeepFirstPerKey"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        self.input.schema()
    }

    fn expressions(&self) -> Vec<Expr> {
        self.keys
            .iter()
            .chain(self.partition_by.iter())
            .cloned()
            .collect()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "KeepFirstPerKey: keys=[{}]",
            self.keys
                .iter()
                .map(|k| k.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }

    fn with_exprs_and_inputs(&self, exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> Result<Self> {
        let input = inputs.into_iter().next().ok_or_else(|| {
            DataFusionError::Internal("KeepFirstPerKey needs exactly one input".into())
        })?;
        if exprs.len() < self.keys.len() {
            return Err(DataFusionError::Internal(
                "KeepFirstPerKey lost its key expressions".into(),
            ));
        }
        let mut keys = exprs;
        let partition_by = keys.split_off(self.keys.len());
        Ok(KeepFirstPerKey {
            input,
            keys,
            partition_by,
        })
    }
}

/// The session's query planner: delta-rs's (for its write and merge nodes) plus
/// [`KeepFirstPerKey`].
#[derive(Debug)]
pub struct ModelPlanner;

#[async_trait]
impl QueryPlanner for ModelPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let planners: Vec<Arc<dyn ExtensionPlanner + Send + Sync>> =
            vec![DeltaExtensionPlanner::new(), Arc::new(KeepFirstPlanner)];
        DefaultPhysicalPlanner::with_extension_planners(planners)
            .create_physical_plan(logical_plan, session)
            .await
    }
}

struct KeepFirstPlanner;

#[async_trait]
impl ExtensionPlanner for KeepFirstPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(node) = node.as_any().downcast_ref::<KeepFirstPerKey>() else {
            return Ok(None);
        };
        let (Some(logical), Some(input)) = (logical_inputs.first(), physical_inputs.first()) else {
            return Err(DataFusionError::Internal(
                "KeepFirstPerKey needs exactly one input".into(),
            ));
        };
        let schema = input.schema();
        let index = |e: &Expr| match e {
            Expr::Column(c) => logical.schema().index_of_column(c),
            other => Err(DataFusionError::Internal(format!(
                "KeepFirstPerKey takes columns, not {other}"
            ))),
        };
        let key_indices = node.keys.iter().map(index).collect::<Result<Vec<_>>>()?;
        let partition_by = node
            .partition_by
            .iter()
            .map(|e| {
                let i = index(e)?;
                Ok(Arc::new(ColumnExpr::new(schema.field(i).name(), i)) as Arc<dyn PhysicalExpr>)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(Arc::new(KeepFirstPerKeyExec {
            input: Arc::clone(input),
            partition_by,
            key_indices,
        })))
    }
}

/// Physical [`KeepFirstPerKey`]: input hash-partitioned by the key, one set of seen keys per
/// partition (accounted in the memory pool).
#[derive(Debug)]
pub struct KeepFirstPerKeyExec {
    input: Arc<dyn ExecutionPlan>,
    partition_by: Vec<Arc<dyn PhysicalExpr>>,
    key_indices: Vec<usize>,
}

impl DisplayAs for KeepFirstPerKeyExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let schema = self.input.schema();
        write!(
            f,
            "KeepFirstPerKeyExec: keys=[{}]",
            self.key_indices
                .iter()
                .map(|i| schema.field(*i).name().as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

impl ExecutionPlan for KeepFirstPerKeyExec {
    fn name(&self) -> &str {
        "KeepFirstPerKeyExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        // A filter: same schema, partitioning and ordering as the input.
        self.input.properties()
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![Distribution::KeyPartitioned(self.partition_by.clone())]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        let mut next = TreeNodeRecursion::Continue;
        for k in &self.partition_by {
            next = f(k)?;
            if next == TreeNodeRecursion::Stop {
                break;
            }
        }
        Ok(next)
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = children.into_iter().next().ok_or_else(|| {
            DataFusionError::Internal("KeepFirstPerKeyExec needs exactly one input".into())
        })?;
        Ok(Arc::new(KeepFirstPerKeyExec {
            input,
            partition_by: self.partition_by.clone(),
            key_indices: self.key_indices.clone(),
        }))
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions {
                children_properties: ChildrenPropertiesMode::Recompute,
            },
        )
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, Arc::clone(&context))?;
        let schema: SchemaRef = self.input.schema();
        let reservation = MemoryConsumer::new(format!("KeepFirstPerKeyExec[{partition}]"))
            .register(context.memory_pool());
        let mut seen = Seen::new(&schema, &self.key_indices, reservation)?;
        let stream = input.map(move |batch| batch.and_then(|b| seen.keep_new(&b)));
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// The keys seen so far in one partition.
enum SeenKeys {
    /// One integer key column (the common case): the values, and whether NULL was seen.
    Int(HashSet<i64>, bool),
    /// Any other key: the keys in arrow's row format.
    Rows(RowConverter, HashSet<Box<[u8]>>, usize),
}

struct Seen {
    keys: SeenKeys,
    indices: Vec<usize>,
    reservation: MemoryReservation,
}

impl Seen {
    fn new(schema: &Schema, indices: &[usize], reservation: MemoryReservation) -> Result<Seen> {
        let int_key = match indices {
            [i] => matches!(
                schema.field(*i).data_type(),
                DataType::Int8
                    | DataType::Int16
                    | DataType::Int32
                    | DataType::Int64
                    | DataType::UInt8
                    | DataType::UInt16
                    | DataType::UInt32
            ),
            _ => false,
        };
        let keys = if int_key {
            SeenKeys::Int(HashSet::default(), false)
        } else {
            let fields = indices
                .iter()
                .map(|i| SortField::new(schema.field(*i).data_type().clone()))
                .collect();
            SeenKeys::Rows(RowConverter::new(fields)?, HashSet::default(), 0)
        };
        Ok(Seen {
            keys,
            indices: indices.to_vec(),
            reservation,
        })
    }

    /// The rows of `batch` whose key was not seen before.
    fn keep_new(&mut self, batch: &RecordBatch) -> Result<RecordBatch> {
        let n = batch.num_rows();
        let mut keep = Vec::with_capacity(n);
        let bytes = match &mut self.keys {
            SeenKeys::Int(set, null_seen) => {
                let column = cast(batch.column(self.indices[0]), &DataType::Int64)?;
                let values = column.as_primitive::<Int64Type>();
                for i in 0..n {
                    keep.push(if values.is_null(i) {
                        !std::mem::replace(null_seen, true)
                    } else {
                        set.insert(values.value(i))
                    });
                }
                set.capacity() * (std::mem::size_of::<i64>() + 1)
            }
            SeenKeys::Rows(converter, set, key_bytes) => {
                let columns: Vec<ArrayRef> = self
                    .indices
                    .iter()
                    .map(|i| Arc::clone(batch.column(*i)))
                    .collect();
                let rows = converter.convert_columns(&columns)?;
                for i in 0..n {
                    let key = rows.row(i);
                    let new = !set.contains(key.as_ref());
                    if new {
                        *key_bytes += key.as_ref().len();
                        set.insert(key.as_ref().into());
                    }
                    keep.push(new);
                }
                *key_bytes + set.capacity() * (std::mem::size_of::<Box<[u8]>>() + 1)
            }
        };
        self.reservation.try_resize(bytes)?;
        if keep.iter().all(|k| *k) {
            return Ok(batch.clone());
        }
        Ok(filter_record_batch(batch, &BooleanArray::from(keep))?)
    }
}
