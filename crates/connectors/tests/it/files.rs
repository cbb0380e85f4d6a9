//! Files connector tests (CSV, NDJSON, Parquet), on files in temporary folders.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use crate::support::micros;
use deltalake::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int16Array,
    Int64Array, ListArray, RecordBatch, StringArray, StructArray, TimestampMicrosecondArray,
    TimestampMillisecondArray, TimestampNanosecondArray, UInt8Array, UInt64Array,
};
use deltalake::arrow::compute::concat_batches;
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use deltalake::parquet::arrow::ArrowWriter;
use tributary_connectors::files::FilesSource;
use tributary_core::config::TableConfig;
use tributary_core::{ReadRequest, ReadSummary, Source, SourceError};

fn write(root: &Path, rel: &str, content: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

fn source(root: &Path) -> FilesSource {
    FilesSource::new(
        "landing",
        root.to_str().unwrap(),
        BTreeMap::new(),
        Path::new("/"),
    )
    .unwrap()
}

fn request(v: serde_json::Value) -> ReadRequest {
    let table: TableConfig = serde_json::from_value(v).unwrap();
    ReadRequest {
        table,
        since: None,
        until: None,
        batch_size: 8192,
        loaded_files: None,
        table_schema: None,
    }
}

/// Schema and (origin, batch) pairs, or the first error (at open or in the stream).
async fn read(
    src: &FilesSource,
    req: ReadRequest,
) -> Result<(SchemaRef, Vec<(String, RecordBatch)>), SourceError> {
    let (schema, batches, _, _) = crate::support::read_events(src.read(req).await?).await?;
    let out = batches
        .into_iter()
        .map(|b| (b.origin.to_string(), b.batch))
        .collect();
    Ok((schema, out))
}

/// The read's summary (skipped and quarantined records), with its rows as one batch.
async fn read_summary(src: &FilesSource, req: ReadRequest) -> (RecordBatch, ReadSummary) {
    let (schema, batches, _, summary) = crate::support::read_events(src.read(req).await.unwrap())
        .await
        .unwrap();
    let all: Vec<RecordBatch> = batches.into_iter().map(|b| b.batch).collect();
    (concat_batches(&schema, &all).unwrap(), summary)
}

async fn read_one(src: &FilesSource, req: ReadRequest) -> RecordBatch {
    let (schema, batches) = read(src, req).await.unwrap();
    let all: Vec<RecordBatch> = batches.into_iter().map(|(_, b)| b).collect();
    concat_batches(&schema, &all).unwrap()
}

fn strings(a: &ArrayRef) -> Vec<Option<String>> {
    a.as_string::<i32>()
        .iter()
        .map(|s| s.map(str::to_string))
        .collect()
}

fn ints(a: &ArrayRef) -> Vec<Option<i64>> {
    a.as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .iter()
        .collect()
}

fn owned(v: &[Option<&str>]) -> Vec<Option<String>> {
    v.iter().map(|s| s.map(str::to_string)).collect()
}

#[tokio::test]
async fn csv_dialect_semicolon_single_quote_no_header() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "in/a.csv",
        b"1;'x;y';2024-01-01\n2;'it''s';\n3;plain;2024-12-31\n",
    );
    let src = source(dir.path());
    let b = read_one(
        &src,
        request(serde_json::json!({
            "name": "a", "glob": "in/*.csv",
            "csv": {"delimiter": ";", "quote": "'", "header": false}
        })),
    )
    .await;
    let names: Vec<String> = b
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, vec!["column_1", "column_2", "column_3"]);
    assert_eq!(ints(b.column(0)), vec![Some(1), Some(2), Some(3)]);
    assert_eq!(
        strings(b.column(1)),
        owned(&[Some("x;y"), Some("it's"), Some("plain")])
    );
    let d = b.column(2).as_any().downcast_ref::<Date32Array>().unwrap();
    assert_eq!(
        d.iter().collect::<Vec<_>>(),
        vec![Some(19_723), None, Some(20_088)]
    );
}

#[tokio::test]
async fn csv_bom_is_stripped_and_gzip_is_read() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "bom.csv", "\u{feff}id,name\n1,é\n".as_bytes());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all("\u{feff}id,name\n2,🌊\n3,\n".as_bytes())
        .unwrap();
    write(dir.path(), "zipped.csv.gz", &gz.finish().unwrap());
    let src = source(dir.path());
    let (schema, batches) = read(
        &src,
        request(serde_json::json!({"name": "t", "glob": "*.csv*"})),
    )
    .await
    .unwrap();
    assert_eq!(schema.field(0).name(), "id");
    assert!(!schema.field(0).name().starts_with('\u{feff}'));
    let origins: Vec<&str> = batches.iter().map(|(o, _)| o.as_str()).collect();
    assert_eq!(origins, vec!["landing:bom.csv", "landing:zipped.csv.gz"]);
    let all: Vec<RecordBatch> = batches.into_iter().map(|(_, b)| b).collect();
    let b = concat_batches(&schema, &all).unwrap();
    assert_eq!(ints(b.column(0)), vec![Some(1), Some(2), Some(3)]);
    // An empty field is NULL, in text columns too.
    assert_eq!(strings(b.column(1)), owned(&[Some("é"), Some("🌊"), None]));
}

#[tokio::test]
async fn csv_files_in_subfolders_are_read_in_path_order() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("landing");
    write(&root, "2024/02/a.csv", b"id,v\n3,c\n");
    write(&root, "2024/01/b.csv", b"id,v\n1,a\n2,b\n");
    write(&root, "top.csv", b"id,v\n4,d\n");
    write(&root, "notes.txt", b"not csv\n");
    // A relative URL resolves against the project folder.
    let src = FilesSource::new("landing", "landing", BTreeMap::new(), dir.path()).unwrap();
    src.check().await.unwrap();
    let (_, batches) = read(
        &src,
        request(serde_json::json!({"name": "t", "glob": "**/*.csv"})),
    )
    .await
    .unwrap();
    let origins: Vec<&str> = batches.iter().map(|(o, _)| o.as_str()).collect();
    assert_eq!(
        origins,
        vec![
            "landing:2024/01/b.csv",
            "landing:2024/02/a.csv",
            "landing:top.csv"
        ]
    );
    let ids: Vec<Option<i64>> = batches
        .iter()
        .flat_map(|(_, b)| ints(b.column(0)))
        .collect();
    assert_eq!(ids, vec![Some(1), Some(2), Some(3), Some(4)]);
    let vs: Vec<Option<String>> = batches
        .iter()
        .flat_map(|(_, b)| strings(b.column(1)))
        .collect();
    assert_eq!(vs, owned(&[Some("a"), Some("b"), Some("c"), Some("d")]));

    // `*` does not cross folders.
    let (_, batches) = read(
        &src,
        request(serde_json::json!({"name": "t", "glob": "*.csv"})),
    )
    .await
    .unwrap();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].0, "landing:top.csv");
}

#[tokio::test]
async fn csv_type_inference_per_column() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "t.csv",
        b"i,f,b,d,ts,tsz,t,empty,zip,mixed\n\
          1,1.5,true,2024-01-01,2024-01-01 10:00:00,2024-01-01T10:00:00Z,hello,,007,1\n\
          -2,2,FALSE,0001-01-01,2024-01-01T10:00:00.123456,2024-01-01 12:00:00+02:00,,,012,x\n\
          ,-3e2,,9999-12-31,,,\"q\"\"uoted\",,,2\n",
    );
    let src = source(dir.path());
    let b = read_one(
        &src,
        request(serde_json::json!({"name": "t", "glob": "t.csv"})),
    )
    .await;
    let types: Vec<DataType> = b
        .schema()
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    assert_eq!(
        types,
        vec![
            DataType::Int64,
            DataType::Float64,
            DataType::Boolean,
            DataType::Date32,
            DataType::Timestamp(TimeUnit::Microsecond, None),
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            DataType::Utf8,
            DataType::Utf8,
            DataType::Utf8,
            DataType::Utf8,
        ]
    );
    assert_eq!(ints(b.column(0)), vec![Some(1), Some(-2), None]);
    let f = b.column(1).as_any().downcast_ref::<Float64Array>().unwrap();
    assert_eq!(
        f.iter().collect::<Vec<_>>(),
        vec![Some(1.5), Some(2.0), Some(-300.0)]
    );
    let bo = b.column(2).as_any().downcast_ref::<BooleanArray>().unwrap();
    assert_eq!(
        bo.iter().collect::<Vec<_>>(),
        vec![Some(true), Some(false), None]
    );
    let d = b.column(3).as_any().downcast_ref::<Date32Array>().unwrap();
    assert_eq!(
        d.iter().collect::<Vec<_>>(),
        vec![Some(19_723), Some(-719_162), Some(2_932_896)]
    );
    let ts = b
        .column(4)
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .unwrap();
    assert_eq!(
        ts.iter().collect::<Vec<_>>(),
        vec![
            Some(micros("2024-01-01 10:00:00")),
            Some(micros("2024-01-01 10:00:00.123456")),
            None
        ]
    );
    let tsz = b
        .column(5)
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .unwrap();
    assert_eq!(
        tsz.iter().collect::<Vec<_>>(),
        vec![
            Some(micros("2024-01-01 10:00:00")),
            Some(micros("2024-01-01 10:00:00")),
            None
        ]
    );
    assert_eq!(
        strings(b.column(6)),
        owned(&[Some("hello"), None, Some("q\"uoted")])
    );
    assert_eq!(strings(b.column(7)), owned(&[None, None, None]));
    assert_eq!(
        strings(b.column(8)),
        owned(&[Some("007"), Some("012"), None])
    );
    assert_eq!(
        strings(b.column(9)),
        owned(&[Some("1"), Some("x"), Some("2")])
    );

    // cast keeps a column as text; infer_types: false keeps every column as text.
    let b = read_one(
        &src,
        request(serde_json::json!({"name": "t", "glob": "t.csv", "cast": {"f": "text"}})),
    )
    .await;
    assert_eq!(b.schema().field(1).data_type(), &DataType::Utf8);
    assert_eq!(
        strings(b.column(1)),
        owned(&[Some("1.5"), Some("2"), Some("-3e2")])
    );
    assert_eq!(b.schema().field(0).data_type(), &DataType::Int64);
    let b = read_one(
        &src,
        request(serde_json::json!({"name": "t", "glob": "t.csv", "csv": {"infer_types": false}})),
    )
    .await;
    assert!(
        b.schema()
            .fields()
            .iter()
            .all(|f| f.data_type() == &DataType::Utf8)
    );
    assert_eq!(strings(b.column(0)), owned(&[Some("1"), Some("-2"), None]));
}

#[tokio::test]
async fn csv_malformed_record_fails_or_is_skipped_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "x.csv",
        b"id,note\n1,\"a,b\nc\"\n2,plain\n3,x,extra\n4,last\n",
    );
    let src = source(dir.path());
    let err = read(
        &src,
        request(serde_json::json!({"name": "t", "glob": "x.csv"})),
    )
    .await
    .unwrap_err();
    match &err {
        SourceError::BadRecord { file, line, reason } => {
            assert!(file.ends_with("x.csv"), "{file}");
            // header line 1, the quoted record spans lines 2-3, then 4, then the bad one.
            assert_eq!(*line, 5);
            assert!(reason.contains("expected 2 fields, found 3"), "{reason}");
        }
        other => panic!("expected BadRecord, got {other:?}"),
    }

    let before = src.skipped_records();
    let (b, summary) = read_summary(
        &src,
        request(serde_json::json!({"name": "t", "glob": "x.csv", "on_error": "skip"})),
    )
    .await;
    assert_eq!(src.skipped_records() - before, 1);
    assert_eq!(
        summary.skipped, 1,
        "the read's own count comes with its stream"
    );
    assert_eq!(ints(b.column(0)), vec![Some(1), Some(2), Some(4)]);
    assert_eq!(
        strings(b.column(1)),
        owned(&[Some("a,b\nc"), Some("plain"), Some("last")])
    );
}

#[tokio::test]
async fn csv_value_of_the_wrong_type_names_column_value_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut content = String::from("n,label\n");
    for i in 0..1001 {
        content.push_str(&format!("{i},r{i}\n"));
    }
    content.push_str("oops,bad\n");
    write(dir.path(), "big.csv", content.as_bytes());
    let src = source(dir.path());
    let err = read(
        &src,
        request(serde_json::json!({"name": "t", "glob": "big.csv"})),
    )
    .await
    .unwrap_err();
    match &err {
        SourceError::BadRecord { file, line, reason } => {
            assert!(file.ends_with("big.csv"));
            assert_eq!(*line, 1003);
            assert!(reason.contains("column n"), "{reason}");
            assert!(reason.contains("'oops'"), "{reason}");
            assert!(reason.contains("Int64"), "{reason}");
            assert!(reason.contains("cast: { n: text }"), "{reason}");
        }
        other => panic!("expected BadRecord, got {other:?}"),
    }
}

#[tokio::test]
async fn csv_different_header_in_a_later_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a/1.csv", b"id,name\n1,x\n");
    write(dir.path(), "b/2.csv", b"id,label\n2,y\n");
    let src = source(dir.path());
    let err = read(
        &src,
        request(serde_json::json!({"name": "t", "glob": "**/*.csv"})),
    )
    .await
    .unwrap_err();
    match &err {
        SourceError::BadRecord { file, line, reason } => {
            assert!(file.ends_with("2.csv"), "{file}");
            assert_eq!(*line, 1);
            assert!(
                reason.contains("expected [id, name], found [id, label]"),
                "{reason}"
            );
        }
        other => panic!("expected BadRecord, got {other:?}"),
    }
}

#[tokio::test]
async fn no_matching_file_is_an_error_not_an_invented_schema() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.txt", b"x");
    let src = source(dir.path());
    match src
        .read(request(serde_json::json!({"name": "t", "glob": "*.csv"})))
        .await
    {
        Err(SourceError::Io { reason, .. }) => {
            assert!(reason.contains("no file matches glob *.csv"), "{reason}")
        }
        Err(other) => panic!("expected Io, got {other:?}"),
        Ok(_) => panic!("expected an error"),
    }
    let missing = FilesSource::new("landing", "nope", BTreeMap::new(), dir.path()).unwrap();
    let err = missing.check().await.unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}

#[tokio::test]
async fn ndjson_nested_objects_and_arrays() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "events.ndjson",
        "{\"id\": 1, \"user\": {\"name\": \"ann\", \"tags\": [\"a\", \"b\"]}, \"score\": 1.5, \"note\": \"é\\n🌊\"}\n\
         \n\
         {\"id\": 2, \"user\": {\"name\": \"bob\", \"tags\": []}, \"score\": null}\r\n\
         {\"id\": 3, \"score\": 2}\n"
            .as_bytes(),
    );
    let src = source(dir.path());
    let b = read_one(
        &src,
        request(serde_json::json!({"name": "e", "glob": "*.ndjson"})),
    )
    .await;
    let names: Vec<String> = b
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, vec!["id", "user", "score", "note"]);
    assert_eq!(ints(b.column(0)), vec![Some(1), Some(2), Some(3)]);
    let user = b.column(1).as_any().downcast_ref::<StructArray>().unwrap();
    assert!(user.is_null(2));
    let uname = user.column_by_name("name").unwrap();
    assert_eq!(strings(uname)[..2], owned(&[Some("ann"), Some("bob")])[..]);
    let tags = user
        .column_by_name("tags")
        .unwrap()
        .as_any()
        .downcast_ref::<ListArray>()
        .unwrap();
    assert_eq!(strings(&tags.value(0)), owned(&[Some("a"), Some("b")]));
    assert_eq!(tags.value(1).len(), 0);
    let score = b.column(2).as_any().downcast_ref::<Float64Array>().unwrap();
    assert_eq!(
        score.iter().collect::<Vec<_>>(),
        vec![Some(1.5), None, Some(2.0)]
    );
    assert_eq!(strings(b.column(3)), owned(&[Some("é\n🌊"), None, None]));
}

#[tokio::test]
async fn ndjson_malformed_line_fails_or_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "e.jsonl",
        b"{\"id\": 1, \"v\": \"a\"}\n\n{\"id\": 2, \"v\": \n{\"id\": 3, \"v\": \"c\"}\n[1]\n{\"id\": 5, \"v\": \"e\"}\n",
    );
    let src = source(dir.path());
    let err = read(
        &src,
        request(serde_json::json!({"name": "e", "glob": "e.jsonl"})),
    )
    .await
    .unwrap_err();
    match &err {
        SourceError::BadRecord { file, line, reason } => {
            assert!(file.ends_with("e.jsonl"), "{file}");
            assert_eq!(*line, 3);
            assert!(reason.contains("invalid JSON"), "{reason}");
        }
        other => panic!("expected BadRecord, got {other:?}"),
    }
    let before = src.skipped_records();
    let b = read_one(
        &src,
        request(serde_json::json!({"name": "e", "glob": "e.jsonl", "on_error": "skip"})),
    )
    .await;
    // Line 3 (syntax) and line 5 (not an object) are skipped.
    assert_eq!(src.skipped_records() - before, 2);
    assert_eq!(ints(b.column(0)), vec![Some(1), Some(3), Some(5)]);
    assert_eq!(
        strings(b.column(1)),
        owned(&[Some("a"), Some("c"), Some("e")])
    );
}

#[tokio::test]
async fn ndjson_value_not_fitting_the_inferred_schema_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut content = String::new();
    for i in 0..1000 {
        content.push_str(&format!("{{\"id\": {i}, \"v\": \"r{i}\"}}\n"));
    }
    content.push_str("{\"id\": {\"x\": 1}, \"v\": \"object id\"}\n"); // line 1001
    content.push_str("{\"id\": 1001, \"v\": \"ok\"}\n"); // line 1002
    content.push_str("{\"id\": 1002, \"v\": \"new field\", \"extra\": true}\n"); // line 1003
    content.push_str("{\"id\": 1003, \"v\": 7}\n"); // a number into a text field: kept as text
    write(dir.path(), "big.ndjson", content.as_bytes());
    let src = source(dir.path());
    let mut req = request(serde_json::json!({"name": "e", "glob": "*.ndjson"}));
    req.batch_size = 600;
    let err = read(&src, req.clone()).await.unwrap_err();
    match &err {
        SourceError::BadRecord { file, line, reason } => {
            assert!(file.ends_with("big.ndjson"), "{file}");
            assert_eq!(*line, 1001);
            assert!(reason.contains("first 1000 records"), "{reason}");
        }
        other => panic!("expected BadRecord, got {other:?}"),
    }
    req.table.on_error = tributary_core::config::OnError::Skip;
    let before = src.skipped_records();
    let (_, batches) = read(&src, req).await.unwrap();
    assert_eq!(src.skipped_records() - before, 2);
    assert_eq!(
        batches
            .iter()
            .map(|(_, b)| b.num_rows())
            .collect::<Vec<_>>(),
        vec![600, 402]
    );
    let ids: Vec<Option<i64>> = batches
        .iter()
        .flat_map(|(_, b)| ints(b.column(0)))
        .collect();
    let expected: Vec<Option<i64>> = (0..1000).chain([1001, 1003]).map(Some).collect();
    assert_eq!(ids, expected);
    let v: Vec<Option<String>> = batches
        .iter()
        .flat_map(|(_, b)| strings(b.column(1)))
        .collect();
    assert_eq!(v[999].as_deref(), Some("r999"));
    assert_eq!(v[1000].as_deref(), Some("ok"));
    assert_eq!(v[1001].as_deref(), Some("7"));
}

fn write_parquet(path: &Path, batch: &RecordBatch) {
    let file = std::fs::File::create(path).unwrap();
    let mut w = ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

#[tokio::test]
async fn parquet_types_are_normalized_for_delta() {
    let dir = tempfile::tempdir().unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("big", DataType::UInt64, true),
        Field::new("small", DataType::UInt8, false),
        Field::new("at", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
        Field::new(
            "zoned",
            DataType::Timestamp(TimeUnit::Millisecond, Some("+02:00".into())),
            true,
        ),
        Field::new("s", DataType::Utf8, true),
    ]));
    let ns = 1_700_000_000_123_456_000i64;
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(UInt64Array::from(vec![Some(u64::MAX), Some(0), None])),
            Arc::new(UInt8Array::from(vec![255, 0, 7])),
            Arc::new(TimestampNanosecondArray::from(vec![
                Some(ns),
                None,
                Some(-1_000),
            ])),
            Arc::new(
                TimestampMillisecondArray::from(vec![Some(1_000), Some(-5), None])
                    .with_timezone("+02:00"),
            ),
            Arc::new(StringArray::from(vec![Some("a"), None, Some("ü🌊")])),
        ],
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("p")).unwrap();
    write_parquet(&dir.path().join("p/part-0.parquet"), &batch);
    let src = source(dir.path());
    let (schema, batches) = read(
        &src,
        request(serde_json::json!({"name": "p", "glob": "p/*.parquet"})),
    )
    .await
    .unwrap();
    let types: Vec<DataType> = schema
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    assert_eq!(
        types,
        vec![
            DataType::Decimal128(20, 0),
            DataType::Int16,
            DataType::Timestamp(TimeUnit::Microsecond, None),
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            DataType::Utf8,
        ]
    );
    assert!(schema.fields().iter().all(|f| f.is_nullable()));
    assert_eq!(batches[0].0, "landing:p/part-0.parquet");
    let b = &batches[0].1;
    let big = b
        .column(0)
        .as_any()
        .downcast_ref::<Decimal128Array>()
        .unwrap();
    assert_eq!(
        big.iter().collect::<Vec<_>>(),
        vec![Some(u64::MAX as i128), Some(0), None]
    );
    let small = b.column(1).as_any().downcast_ref::<Int16Array>().unwrap();
    assert_eq!(small.values().to_vec(), vec![255, 0, 7]);
    let at = b
        .column(2)
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .unwrap();
    assert_eq!(
        at.iter().collect::<Vec<_>>(),
        vec![Some(ns / 1000), None, Some(-1)]
    );
    let zoned = b
        .column(3)
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .unwrap();
    assert_eq!(
        zoned.iter().collect::<Vec<_>>(),
        vec![Some(1_000_000), Some(-5_000), None]
    );
    assert_eq!(strings(b.column(4)), owned(&[Some("a"), None, Some("ü🌊")]));
}

#[tokio::test]
async fn parquet_nanoseconds_that_are_not_whole_microseconds_are_a_bad_value() {
    let dir = tempfile::tempdir().unwrap();
    let schema = Arc::new(Schema::new(vec![Field::new(
        "at",
        DataType::Timestamp(TimeUnit::Nanosecond, None),
        true,
    )]));
    let batch = RecordBatch::try_new(
        schema,
        vec![Arc::new(TimestampNanosecondArray::from(vec![
            1_000,
            1_700_000_000_123_456_789,
        ]))],
    )
    .unwrap();
    write_parquet(&dir.path().join("ns.parquet"), &batch);
    let src = source(dir.path());
    let err = read(
        &src,
        request(serde_json::json!({"name": "p", "glob": "*.parquet"})),
    )
    .await
    .unwrap_err();
    match &err {
        SourceError::BadValue { column, value, .. } => {
            assert_eq!(column, "at");
            assert!(value.contains("1700000000123456789"), "{value}");
        }
        other => panic!("expected BadValue, got {other:?}"),
    }
    // cast: text keeps every digit.
    let b = read_one(
        &src,
        request(serde_json::json!({"name": "p", "glob": "*.parquet", "cast": {"at": "text"}})),
    )
    .await;
    let at = strings(b.column(0));
    assert_eq!(at.len(), 2);
    assert!(
        at[1].as_deref().unwrap().contains("2023-11-14")
            && at[1].as_deref().unwrap().contains(".123456789"),
        "{at:?}"
    );
}

/// The object-store path (listing, streaming each object to a temporary file) through a
/// `file://` URL, which object_store serves with its LocalFileSystem.
#[tokio::test]
async fn object_store_urls_list_and_stream_objects() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("bucket").join("landing");
    write(&root, "orders/2024-01-02.csv", b"id,amount\n2,20.5\n");
    write(
        &root,
        "orders/2024-01-01.csv",
        b"\xEF\xBB\xBFid,amount\n1,10.0\n",
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"id,amount\n3,\n").unwrap();
    write(&root, "orders/old/2023.csv.gz", &gz.finish().unwrap());
    write(&root, "other/x.csv", b"nope\n");
    let url = url::Url::from_directory_path(&root).unwrap().to_string();
    let src = FilesSource::new("lake", &url, BTreeMap::new(), Path::new("/")).unwrap();
    src.check().await.unwrap();
    let (schema, batches) = read(
        &src,
        request(serde_json::json!({"name": "orders", "glob": "orders/**/*.csv*"})),
    )
    .await
    .unwrap();
    let origins: Vec<&str> = batches.iter().map(|(o, _)| o.as_str()).collect();
    assert_eq!(
        origins,
        vec![
            "lake:orders/2024-01-01.csv",
            "lake:orders/2024-01-02.csv",
            "lake:orders/old/2023.csv.gz"
        ]
    );
    assert_eq!(schema.field(0).name(), "id");
    assert_eq!(schema.field(1).data_type(), &DataType::Float64);
    let all: Vec<RecordBatch> = batches.into_iter().map(|(_, b)| b).collect();
    let b = concat_batches(&schema, &all).unwrap();
    assert_eq!(ints(b.column(0)), vec![Some(1), Some(2), Some(3)]);
    let amount = b.column(1).as_any().downcast_ref::<Float64Array>().unwrap();
    assert_eq!(
        amount.iter().collect::<Vec<_>>(),
        vec![Some(10.0), Some(20.5), None]
    );

    // Errors name the object's URL.
    write(&root, "bad/a.csv", b"id\n1\n2,3\n");
    let err = read(
        &src,
        request(serde_json::json!({"name": "bad", "glob": "bad/*.csv"})),
    )
    .await
    .unwrap_err();
    match &err {
        SourceError::BadRecord { file, line, .. } => {
            assert!(
                file.starts_with("file://") && file.ends_with("landing/bad/a.csv"),
                "{file}"
            );
            assert_eq!(*line, 3);
        }
        other => panic!("expected BadRecord, got {other:?}"),
    }
    match src
        .read(request(
            serde_json::json!({"name": "none", "glob": "nothing/*.csv"}),
        ))
        .await
    {
        Err(SourceError::Io { reason, .. }) => {
            assert!(reason.contains("no file matches"), "{reason}")
        }
        Err(other) => panic!("expected Io, got {other:?}"),
        Ok(_) => panic!("expected an error"),
    }
}

/// Write spreadsheets with openpyxl (a reader-independent writer): `script` gets `dir`.
fn openpyxl(dir: &Path, script: &str) -> Option<()> {
    let full = format!(
        "import datetime, openpyxl\ndir = {:?}\n{script}",
        dir.to_str().unwrap()
    );
    tributary_testkit::python::run("openpyxl", &full).map(|_| ())
}

#[tokio::test]
async fn xlsx_sheet_types_are_inferred_and_rows_numbered_as_in_the_sheet() {
    let dir = tempfile::tempdir().unwrap();
    let Some(()) = openpyxl(
        dir.path(),
        r#"
wb = openpyxl.Workbook()
ws = wb.active
ws.title = "Summary"
ws.append(["not the data"])
ws2 = wb.create_sheet("Orders")
ws2.append(["Orders export, November"])
ws2.append(["id", "amount", "active", "day", "at", "note", "code", None])
ws2.append([1, 10.5, True, datetime.date(2024, 1, 31), datetime.datetime(2024, 1, 31, 8, 30, 15), "first", "007", None])
ws2.append([2, 3, False, datetime.date(2024, 2, 29), datetime.date(2024, 3, 1), None, 7, "x"])
ws2.append([None, None, None, None, None, None, None, None])
ws2.append([3, -1.25, None, None, datetime.datetime(1999, 12, 31, 23, 59, 59), 42, None, None])
wb.save(dir + "/orders.xlsx")
"#,
    ) else {
        return;
    };
    let src = source(dir.path());
    let b = read_one(
        &src,
        request(serde_json::json!({"name": "t", "glob": "*.xlsx",
            "excel": {"sheet": "Orders", "skip_rows": 1}})),
    )
    .await;
    let schema = b.schema();
    let types: Vec<(&str, &DataType)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().as_str(), f.data_type()))
        .collect();
    assert_eq!(
        types,
        vec![
            ("id", &DataType::Int64),
            ("amount", &DataType::Float64),
            ("active", &DataType::Boolean),
            ("day", &DataType::Date32),
            ("at", &DataType::Timestamp(TimeUnit::Microsecond, None)),
            ("note", &DataType::Utf8),
            ("code", &DataType::Utf8),
            ("column_8", &DataType::Utf8),
        ]
    );
    // The empty row is ignored.
    assert_eq!(b.num_rows(), 3);
    assert_eq!(ints(b.column(0)), vec![Some(1), Some(2), Some(3)]);
    let amount = b.column(1).as_any().downcast_ref::<Float64Array>().unwrap();
    assert_eq!(amount.values().to_vec(), vec![10.5, 3.0, -1.25]);
    let active = b.column(2).as_any().downcast_ref::<BooleanArray>().unwrap();
    assert_eq!(
        active.iter().collect::<Vec<_>>(),
        vec![Some(true), Some(false), None]
    );
    let day = b.column(3).as_any().downcast_ref::<Date32Array>().unwrap();
    assert_eq!(
        day.iter().collect::<Vec<_>>(),
        vec![
            Some(crate::support::days("2024-01-31")),
            Some(crate::support::days("2024-02-29")),
            None
        ]
    );
    let at = b
        .column(4)
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .unwrap();
    assert_eq!(
        at.iter().collect::<Vec<_>>(),
        vec![
            Some(micros("2024-01-31 08:30:15")),
            Some(micros("2024-03-01 00:00:00")),
            Some(micros("1999-12-31 23:59:59"))
        ]
    );
    // Mixed kinds become text; whole numbers render without a fraction.
    assert_eq!(
        strings(b.column(5)),
        owned(&[Some("first"), None, Some("42")])
    );
    assert_eq!(strings(b.column(6)), owned(&[Some("007"), Some("7"), None]));

    // Without `sheet`, the first sheet is read; a missing sheet names the file and the sheets.
    let first = read_one(
        &src,
        request(serde_json::json!({"name": "t", "glob": "*.xlsx"})),
    )
    .await;
    assert_eq!(first.schema().field(0).name(), "not the data");
    assert_eq!(first.num_rows(), 0);
    let err = read(
        &src,
        request(serde_json::json!({"name": "t", "glob": "*.xlsx", "excel": {"sheet": "Nope"}})),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("orders.xlsx"), "{err}");
    assert!(
        err.contains("no sheet `Nope`") && err.contains("Summary, Orders"),
        "{err}"
    );
}

#[tokio::test]
async fn xlsx_error_cells_and_misfits_follow_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let Some(()) = openpyxl(
        dir.path(),
        r##"
for name, rows in [("a.xlsx", [[1, 2.5], [2, "#DIV/0!"], [3, 4]]), ("b.xlsx", [[4, 1], ["five", 2], [6, 3]])]:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["id", "ratio"])
    for r in rows:
        ws.append(r)
    wb.save(dir + "/" + name)
"##,
    ) else {
        return;
    };
    let src = source(dir.path());
    let err = read(
        &src,
        request(serde_json::json!({"name": "t", "glob": "*.xlsx"})),
    )
    .await
    .unwrap_err();
    match &err {
        SourceError::BadRecord { file, line, reason } => {
            assert!(file.ends_with("a.xlsx"), "{file}");
            assert_eq!(*line, 3, "sheet row of the error cell");
            assert!(
                reason.contains("ratio") && reason.contains("#DIV/0!"),
                "{reason}"
            );
        }
        other => panic!("expected BadRecord, got {other:?}"),
    }

    let before = src.skipped_records();
    let b = read_one(
        &src,
        request(serde_json::json!({"name": "t", "glob": "*.xlsx", "on_error": "skip"})),
    )
    .await;
    assert_eq!(src.skipped_records() - before, 2);
    assert_eq!(ints(b.column(0)), vec![Some(1), Some(3), Some(4), Some(6)]);

    let (b, summary) = read_summary(
        &src,
        request(serde_json::json!({"name": "t", "glob": "*.xlsx", "on_error": "quarantine"})),
    )
    .await;
    assert_eq!(b.num_rows(), 4);
    let q = summary.quarantined;
    let got: Vec<(String, u64, String)> = q
        .iter()
        .map(|r| {
            (
                r.file.rsplit('/').next().unwrap().to_string(),
                r.line,
                r.raw.clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("a.xlsx".to_string(), 3, "2\t#DIV/0!".to_string()),
            ("b.xlsx".to_string(), 3, "five\t2".to_string()),
        ]
    );
    assert!(
        q[1].reason.contains("`five` is not a whole number"),
        "{}",
        q[1].reason
    );
}
