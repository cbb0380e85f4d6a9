//! Finding the test services: see `tributary-testkit`.
#![allow(unused_imports)]

pub use tributary_testkit::{mysql_url, pg_url, services_required, unavailable, unique_name};

/// Microseconds since the epoch of a wall-clock `YYYY-MM-DD HH:MM:SS[.f]` (read as UTC).
pub fn micros(s: &str) -> i64 {
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
        .unwrap()
        .and_utc()
        .timestamp_micros()
}

/// Days since 1970-01-01 of `YYYY-MM-DD`.
pub fn days(s: &str) -> i32 {
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    (d - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32
}

/// Run a Python snippet and return its stdout; `None` (skip) when python3 or the `deltalake`
/// package is missing outside CI.
pub fn python(script: &str) -> Option<String> {
    tributary_testkit::python::run("deltalake, pyarrow", script)
}

use deltalake::arrow::array::{Array, Int64Array, RecordBatch, StringArray};
use deltalake::arrow::datatypes::SchemaRef;

/// Rows sorted by the Int64 column `id`, as one batch: parallel reads deliver ranges in any
/// order.
pub fn sorted_by_id(schema: &SchemaRef, batches: &[RecordBatch]) -> RecordBatch {
    use deltalake::arrow::compute::{concat_batches, sort_to_indices, take_record_batch};
    let all = concat_batches(schema, batches).unwrap();
    let order = sort_to_indices(all.column_by_name("id").unwrap(), None, None).unwrap();
    take_record_batch(&all, &order).unwrap()
}

/// A parallel read (`label`) returned exactly the rows of the single read: same schema, same
/// rows, every column equal value by value once both are sorted by `id`.
pub fn assert_same_rows(
    label: &str,
    single: &RecordBatch,
    schema: &SchemaRef,
    got: &[RecordBatch],
) {
    assert_eq!(schema, &single.schema(), "{label}");
    let got = sorted_by_id(schema, got);
    assert_eq!(got.num_rows(), single.num_rows(), "{label}");
    for (i, field) in schema.fields().iter().enumerate() {
        assert_eq!(
            got.column(i).as_ref(),
            single.column(i).as_ref(),
            "{label}: column {} differs",
            field.name()
        );
    }
}

/// Every row of `batches` (columns `id` Int64, `v` text) is a row committed before the read
/// (`v` = "before", ids 1..=100000) and each appears once: what a read from one snapshot sees
/// while another session inserts, updates and deletes.
pub fn assert_one_snapshot(batches: &[RecordBatch]) {
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 100_000, "exactly the rows committed before the read");
    let mut ids = std::collections::HashSet::new();
    for b in batches {
        let id = b.column_by_name("id").unwrap();
        let id = id.as_any().downcast_ref::<Int64Array>().unwrap();
        let v = b.column_by_name("v").unwrap();
        let v = v.as_any().downcast_ref::<StringArray>().unwrap();
        for i in 0..b.num_rows() {
            assert_eq!(v.value(i), "before", "row {} changed mid-read", id.value(i));
            assert!(ids.insert(id.value(i)), "row {} read twice", id.value(i));
            assert!(
                (1..=100_000).contains(&id.value(i)),
                "row {} inserted mid-read",
                id.value(i)
            );
        }
    }
}

use tributary_core::{ReadEvent, ReadSummary, SourceBatch, SourceError, SourceStream};

/// Every event of a read: the announced schema, the batches (each checked to carry that
/// schema), the announced file stamps, and the summary that must end the stream.
pub async fn read_events(
    stream: SourceStream,
) -> Result<
    (
        SchemaRef,
        Vec<SourceBatch>,
        Vec<tributary_core::FileStamp>,
        ReadSummary,
    ),
    SourceError,
> {
    use futures::StreamExt;
    let schema = stream.schema.clone();
    let mut events = stream.events;
    let (mut batches, mut files, mut summary) = (Vec::new(), Vec::new(), None);
    while let Some(e) = events.next().await {
        assert!(summary.is_none(), "an event after the summary");
        match e? {
            ReadEvent::Batch(b) => {
                assert_eq!(b.batch.schema(), schema, "a batch in another schema");
                batches.push(b);
            }
            ReadEvent::File(f) => files.push(f),
            ReadEvent::Boundary(p) => panic!("a batch source emitted a boundary: {p:?}"),
            ReadEvent::End(s) => summary = Some(s),
        }
    }
    let summary = summary.expect("the stream ended without its summary");
    let rows: u64 = batches.iter().map(|b| b.batch.num_rows() as u64).sum();
    assert_eq!(summary.rows, rows, "the summary's rows");
    Ok((schema, batches, files, summary))
}
