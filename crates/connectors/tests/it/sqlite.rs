//! SQLite connector tests, on database files in temporary folders.

use std::path::{Path, PathBuf};

use crate::support::{days, micros};
use deltalake::arrow::array::{
    Array, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float64Array,
    Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use deltalake::arrow::compute::concat_batches;
use deltalake::arrow::datatypes::{DataType, TimeUnit};
use futures::StreamExt;
use rusqlite::Connection;
use tributary_connectors::sqlite::SqliteSource;
use tributary_core::config::TableConfig;
use tributary_core::{CursorValue, ReadRequest, Source, SourceError};

fn db(dir: &Path, sql: &str) -> PathBuf {
    let path = dir.join("test.db");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(sql).unwrap();
    path
}

fn table(v: serde_json::Value) -> TableConfig {
    serde_json::from_value(v).unwrap()
}

fn request(t: TableConfig) -> ReadRequest {
    ReadRequest {
        table: t,
        since: None,
        until: None,
        batch_size: 10_000,
        loaded_files: None,
        table_schema: None,
    }
}

/// All batches of a read (sizes and origins checked by callers), or the first error.
async fn read(
    src: &SqliteSource,
    req: ReadRequest,
) -> Result<(Vec<RecordBatch>, Vec<String>), SourceError> {
    let stream = src.read(req).await?;
    let mut batches = Vec::new();
    let mut origins = Vec::new();
    let stream_schema = stream.schema.clone();
    let mut s = stream.into_batches();
    while let Some(b) = s.next().await {
        let b = b?;
        assert_eq!(b.batch.schema(), stream_schema);
        origins.push(b.origin.to_string());
        batches.push(b.batch);
    }
    Ok((batches, origins))
}

async fn read_one(src: &SqliteSource, req: ReadRequest) -> RecordBatch {
    let stream = src.read(req).await.unwrap();
    let schema = stream.schema.clone();
    let mut all = Vec::new();
    let mut s = stream.into_batches();
    while let Some(b) = s.next().await {
        all.push(b.unwrap().batch);
    }
    concat_batches(&schema, &all).unwrap()
}

#[tokio::test]
async fn every_declared_type_maps_value_by_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(
        dir.path(),
        r#"
        CREATE TABLE t (
            id INTEGER PRIMARY KEY, big BIGINT, name TEXT, code VARCHAR(10), data BLOB,
            ratio REAL, flag BOOLEAN, day DATE, at DATETIME, ts TIMESTAMP,
            price DECIMAL(10,2), amount NUMERIC, doc JSON
        );
        INSERT INTO t VALUES (1, 9223372036854775807, 'héllo 🌊
line2 "q" ''s''', 'ab', x'00010000ff', 1.5, 1, '0001-01-01', '0001-01-01 00:00:00',
            '2024-02-29T12:34:56.123456', 12.34, '1.5', '{"a": [1, 2]}');
        INSERT INTO t VALUES (2, -9223372036854775808, '', 'z', x'', -0.25, 0, '9999-12-31',
            '9999-12-31 23:59:59.999999', '2024-01-01 10:00:00+02:00', '-99999999.99', 3, '7');
        INSERT INTO t VALUES (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '2024-01-01T00:00:00Z',
            7, 0.1, NULL);
        INSERT INTO t VALUES (4, 0, 'x', 'y', 'text in blob', 3, 'TRUE', '1970-01-01', '2000-01-01',
            '2024-06-30 23:59', '0.5', -12345678901234567, NULL);
        "#,
    );
    let src = SqliteSource::new("erp", path);
    let (batches, origins) = read(&src, request(table(serde_json::json!({"name": "t"}))))
        .await
        .unwrap();
    assert_eq!(origins, vec!["erp:t"]);
    let b = &batches[0];
    let types: Vec<(String, DataType)> = b
        .schema()
        .fields()
        .iter()
        .map(|f| {
            assert!(f.is_nullable());
            (f.name().clone(), f.data_type().clone())
        })
        .collect();
    let ts = DataType::Timestamp(TimeUnit::Microsecond, None);
    assert_eq!(
        types,
        vec![
            ("id".into(), DataType::Int64),
            ("big".into(), DataType::Int64),
            ("name".into(), DataType::Utf8),
            ("code".into(), DataType::Utf8),
            ("data".into(), DataType::Binary),
            ("ratio".into(), DataType::Float64),
            ("flag".into(), DataType::Boolean),
            ("day".into(), DataType::Date32),
            ("at".into(), ts.clone()),
            ("ts".into(), ts),
            ("price".into(), DataType::Decimal128(10, 2)),
            ("amount".into(), DataType::Decimal128(38, 9)),
            ("doc".into(), DataType::Utf8),
        ]
    );
    let col = |n: &str| b.column_by_name(n).unwrap().clone();
    let id = col("id");
    let id = id.as_any().downcast_ref::<Int64Array>().unwrap();
    assert_eq!(id.values().to_vec(), vec![1, 2, 3, 4]);
    let big = col("big");
    let big = big.as_any().downcast_ref::<Int64Array>().unwrap();
    assert_eq!(
        big.iter().collect::<Vec<_>>(),
        vec![Some(i64::MAX), Some(i64::MIN), None, Some(0)]
    );
    let name = col("name");
    let name = name.as_any().downcast_ref::<StringArray>().unwrap();
    assert_eq!(
        name.iter().collect::<Vec<_>>(),
        vec![Some("héllo 🌊\nline2 \"q\" 's'"), Some(""), None, Some("x")]
    );
    let data = col("data");
    let data = data.as_any().downcast_ref::<BinaryArray>().unwrap();
    assert_eq!(
        data.iter().collect::<Vec<_>>(),
        vec![
            Some(&[0u8, 1, 0, 0, 255][..]),
            Some(&[][..]),
            None,
            Some(&b"text in blob"[..])
        ]
    );
    let ratio = col("ratio");
    let ratio = ratio.as_any().downcast_ref::<Float64Array>().unwrap();
    assert_eq!(
        ratio.iter().collect::<Vec<_>>(),
        vec![Some(1.5), Some(-0.25), None, Some(3.0)]
    );
    let flag = col("flag");
    let flag = flag.as_any().downcast_ref::<BooleanArray>().unwrap();
    assert_eq!(
        flag.iter().collect::<Vec<_>>(),
        vec![Some(true), Some(false), None, Some(true)]
    );
    let day = col("day");
    let day = day.as_any().downcast_ref::<Date32Array>().unwrap();
    assert_eq!(
        day.iter().collect::<Vec<_>>(),
        vec![Some(-719_162), Some(2_932_896), None, Some(0)]
    );
    assert_eq!(days("0001-01-01"), -719_162);
    let at = col("at");
    let at = at
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .unwrap();
    assert_eq!(
        at.iter().collect::<Vec<_>>(),
        vec![
            Some(micros("0001-01-01 00:00:00")),
            Some(micros("9999-12-31 23:59:59.999999")),
            None,
            Some(micros("2000-01-01 00:00:00")),
        ]
    );
    let tsc = col("ts");
    let tsc = tsc
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .unwrap();
    assert_eq!(
        tsc.iter().collect::<Vec<_>>(),
        vec![
            Some(micros("2024-02-29 12:34:56.123456")),
            // +02:00 converted to UTC
            Some(micros("2024-01-01 08:00:00")),
            Some(micros("2024-01-01 00:00:00")),
            Some(micros("2024-06-30 23:59:00")),
        ]
    );
    let price = col("price");
    let price = price.as_any().downcast_ref::<Decimal128Array>().unwrap();
    assert_eq!(
        price.iter().collect::<Vec<_>>(),
        vec![Some(1234), Some(-9_999_999_999), Some(700), Some(50)]
    );
    let amount = col("amount");
    let amount = amount.as_any().downcast_ref::<Decimal128Array>().unwrap();
    assert_eq!(
        amount.iter().collect::<Vec<_>>(),
        vec![
            Some(1_500_000_000),
            Some(3_000_000_000),
            Some(100_000_000),
            Some(-12_345_678_901_234_567_000_000_000)
        ]
    );
    let doc = col("doc");
    let doc = doc.as_any().downcast_ref::<StringArray>().unwrap();
    assert_eq!(
        doc.iter().collect::<Vec<_>>(),
        vec![Some(r#"{"a": [1, 2]}"#), Some("7"), None, None]
    );
}

#[tokio::test]
async fn text_in_an_integer_column_is_a_bad_value_unless_cast() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(
        dir.path(),
        "CREATE TABLE items (id INTEGER, qty INTEGER);
         INSERT INTO items VALUES (1, 5), (2, 'abc');",
    );
    let src = SqliteSource::new("erp", path);
    let err = read(&src, request(table(serde_json::json!({"name": "items"}))))
        .await
        .unwrap_err();
    match &err {
        SourceError::BadValue {
            table,
            column,
            source_type,
            value,
            ..
        } => {
            assert_eq!(table, "items");
            assert_eq!(column, "qty");
            assert_eq!(source_type, "INTEGER");
            assert_eq!(value, "'abc'");
        }
        other => panic!("expected BadValue, got {other:?}"),
    }
    assert!(err.to_string().contains("cast: { qty: text }"), "{err}");

    let b = read_one(
        &src,
        request(table(
            serde_json::json!({"name": "items", "cast": {"qty": "text"}}),
        )),
    )
    .await;
    assert_eq!(b.schema().field(1).data_type(), &DataType::Utf8);
    assert_eq!(b.schema().field(0).data_type(), &DataType::Int64);
    let qty = b.column(1).as_string::<i32>();
    assert_eq!(qty.iter().collect::<Vec<_>>(), vec![Some("5"), Some("abc")]);
}

#[tokio::test]
async fn decimal_with_too_many_fraction_digits_is_a_bad_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(
        dir.path(),
        "CREATE TABLE p (price DECIMAL(10,2));
         INSERT INTO p VALUES ('1.50'), (2.345);",
    );
    let src = SqliteSource::new("erp", path);
    let err = read(&src, request(table(serde_json::json!({"name": "p"}))))
        .await
        .unwrap_err();
    match err {
        SourceError::BadValue {
            column,
            value,
            source_type,
            ..
        } => {
            assert_eq!(column, "price");
            assert_eq!(value, "2.345");
            assert_eq!(source_type, "DECIMAL(10,2)");
        }
        other => panic!("expected BadValue, got {other:?}"),
    }
}

#[tokio::test]
async fn unsupported_declared_type_names_column_and_type() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(
        dir.path(),
        "CREATE TABLE w (id INTEGER, amount DECIMAL(40,2), cost MONEY);",
    );
    let src = SqliteSource::new("erp", path);
    match src
        .read(request(table(serde_json::json!({"name": "w"}))))
        .await
    {
        Err(SourceError::UnsupportedType {
            column,
            source_type,
            ..
        }) => {
            assert_eq!(column, "amount");
            assert_eq!(source_type, "DECIMAL(40,2)");
        }
        Err(other) => panic!("expected UnsupportedType, got {other:?}"),
        Ok(_) => panic!("expected UnsupportedType"),
    }
    // Cast both: read as text.
    let b = read_one(
        &src,
        request(table(
            serde_json::json!({"name": "w", "cast": {"amount": "text", "cost": "text"}}),
        )),
    )
    .await;
    assert_eq!(b.num_rows(), 0);
    assert_eq!(b.schema().field(1).data_type(), &DataType::Utf8);
    assert_eq!(b.schema().field(2).data_type(), &DataType::Utf8);
}

#[tokio::test]
async fn batches_of_the_requested_size_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(
        dir.path(),
        "CREATE TABLE n (v INTEGER, s TEXT);
         WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM c WHERE x < 25000)
         INSERT INTO n SELECT x, 'row ' || x FROM c;",
    );
    let src = SqliteSource::new("erp", path);
    let (batches, _) = read(&src, request(table(serde_json::json!({"name": "n"}))))
        .await
        .unwrap();
    assert_eq!(
        batches
            .iter()
            .map(RecordBatch::num_rows)
            .collect::<Vec<_>>(),
        vec![10_000, 10_000, 5_001]
    );
    let mut expected = 0i64;
    for b in &batches {
        let v = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        let s = b.column(1).as_string::<i32>();
        for i in 0..b.num_rows() {
            assert_eq!(v.value(i), expected);
            assert_eq!(s.value(i), format!("row {expected}"));
            expected += 1;
        }
    }
    assert_eq!(expected, 25_001);
}

#[tokio::test]
async fn since_is_inclusive_for_integer_and_timestamp_cursors() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(
        dir.path(),
        "CREATE TABLE o (id INTEGER, updated_at DATETIME);
         INSERT INTO o VALUES (1, '2024-01-01 09:59:59.999999'), (2, '2024-01-01 10:00:00'),
             (3, '2024-01-01 10:00:00.5'), (4, NULL), (5, '2024-01-02 00:00:00');",
    );
    let src = SqliteSource::new("erp", path);
    let t = table(serde_json::json!({"name": "o"}));
    let mut req = request(t.clone());
    req.since = Some(("id".into(), CursorValue::Int(3)));
    let b = read_one(&src, req).await;
    let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
    assert_eq!(ids.values().to_vec(), vec![3, 4, 5]);

    let mut req = request(t.clone());
    req.since = Some((
        "updated_at".into(),
        CursorValue::Timestamp(micros("2024-01-01 10:00:00")),
    ));
    let b = read_one(&src, req).await;
    let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
    assert_eq!(ids.values().to_vec(), vec![2, 3, 5]);

    let mut req = request(t);
    req.since = Some((
        "updated_at".into(),
        CursorValue::Timestamp(micros("2024-01-01 10:00:00.5")),
    ));
    let b = read_one(&src, req).await;
    let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
    assert_eq!(ids.values().to_vec(), vec![3, 5]);
}

#[tokio::test]
async fn custom_query_with_expression_columns() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(
        dir.path(),
        "CREATE TABLE c (id INTEGER, name TEXT, price REAL);
         INSERT INTO c VALUES (1, 'a', 1.5), (2, 'b', NULL), (3, 'c', 2.25);",
    );
    let src = SqliteSource::new("erp", path);
    let t = table(serde_json::json!({
        "name": "customers",
        "query": "SELECT id, id * 2 AS dbl, upper(name) || '!' AS shout, price * 2 AS p2, NULL AS nada FROM c ORDER BY id;"
    }));
    let mut req = request(t);
    req.since = Some(("id".into(), CursorValue::Int(2)));
    let (batches, origins) = read(&src, req).await.unwrap();
    assert_eq!(origins, vec!["erp:customers"]);
    let b = &batches[0];
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
            DataType::Int64,
            DataType::Utf8,
            DataType::Float64,
            DataType::Utf8
        ]
    );
    let dbl = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
    assert_eq!(dbl.values().to_vec(), vec![4, 6]);
    let shout = b.column(2).as_string::<i32>();
    assert_eq!(
        shout.iter().collect::<Vec<_>>(),
        vec![Some("B!"), Some("C!")]
    );
    let p2 = b.column(3).as_any().downcast_ref::<Float64Array>().unwrap();
    assert_eq!(p2.iter().collect::<Vec<_>>(), vec![None, Some(4.5)]);
    assert_eq!(b.column(4).null_count(), 2);
}

#[tokio::test]
async fn missing_file_is_a_connect_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.db");
    let src = SqliteSource::new("erp", path.clone());
    for err in [
        src.check().await.unwrap_err(),
        read(&src, request(table(serde_json::json!({"name": "t"}))))
            .await
            .unwrap_err(),
    ] {
        match &err {
            SourceError::Connect { target, .. } => {
                assert_eq!(target, &path.display().to_string())
            }
            other => panic!("expected Connect, got {other:?}"),
        }
        assert!(err.to_string().contains("nope.db"));
    }
    // And an existing database checks fine, without being modified.
    let ok = db(dir.path(), "CREATE TABLE t (a INTEGER);");
    SqliteSource::new("erp", ok).check().await.unwrap();
}

#[tokio::test]
async fn missing_table_is_a_query_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(dir.path(), "CREATE TABLE t (a INTEGER);");
    let src = SqliteSource::new("erp", path);
    match read(&src, request(table(serde_json::json!({"name": "missing"})))).await {
        Err(SourceError::Query { table, reason, .. }) => {
            assert_eq!(table, "missing");
            assert!(reason.contains("no such table"), "{reason}");
        }
        other => panic!("expected Query error, got {other:?}"),
    }
}
