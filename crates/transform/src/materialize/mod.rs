//! The materializations of a model's result, each one commit through the lake
//! ([`tributary_lake::ModelCommit`]): `table` (and every full refresh) overwrites, an
//! `incremental` model without `unique_key` appends, one with it merges ([`merge`]), and `scd2`
//! keeps history ([`scd2`]).

pub(crate) mod merge;
pub(crate) mod scd2;

use deltalake::DeltaTable;
use deltalake::arrow::datatypes::{DataType, Schema, TimeUnit};
use deltalake::datafusion::prelude::{DataFrame, SessionContext};
use tributary_lake::ModelCommit;

use crate::TransformError;
use crate::model::Model;

/// Replace the table's contents (and schema) with `output`, in one commit, partitioned and
/// described as the model says.
pub(crate) async fn overwrite(
    model: &Model,
    ctx: &SessionContext,
    table: DeltaTable,
    output: DataFrame,
    commit: ModelCommit,
) -> Result<DeltaTable, TransformError> {
    Ok(commit
        .with_partition_columns(model.config.partition_by.clone())
        .with_description(model.config.description.clone())
        .overwrite(table, ctx, output)
        .await?)
}

/// The schema as a Delta table stores it: string and binary views and large variants as plain
/// string/binary, every timestamp in microseconds. The engine's result types differ from the
/// stored ones in these ways without any change in meaning.
pub(crate) fn as_stored(schema: &Schema) -> Schema {
    fn norm(t: &DataType) -> DataType {
        match t {
            DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
            DataType::BinaryView | DataType::LargeBinary => DataType::Binary,
            DataType::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
            DataType::Dictionary(_, v) => norm(v),
            other => other.clone(),
        }
    }
    Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_data_type(norm(f.data_type())))
            .collect::<Vec<_>>(),
    )
}
