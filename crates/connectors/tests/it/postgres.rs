//! PostgreSQL connector tests, against the machine's PostgreSQL. Each test works in its own
//! schema, dropped at the end.

use std::sync::Arc;

use deltalake::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array,
    Float32Array, Float64Array, Int16Array, Int32Array, Int64Array, ListArray, StringArray,
    TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use deltalake::arrow::record_batch::RecordBatch;
use futures::StreamExt;
use tokio_postgres::{Client, NoTls};
use tributary_connectors::postgres::PostgresSource;
use tributary_core::config::TableConfig;
use tributary_core::cursor::CursorValue;
use tributary_core::{ReadRequest, Source, SourceError};

use crate::support;
use crate::support::days;

/// A schema of the test database for one test; `drop` it at the end.
struct TestSchema {
    client: Client,
    schema: String,
}

impl TestSchema {
    async fn create(prefix: &str) -> Option<TestSchema> {
        let (client, connection) = match tokio_postgres::connect(&support::pg_url(), NoTls).await {
            Ok(pair) => pair,
            Err(e) => return support::unavailable("PostgreSQL", e),
        };
        tokio::spawn(connection);
        let schema = support::unique_name(prefix);
        client
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .unwrap();
        Some(TestSchema { client, schema })
    }

    async fn exec(&self, sql: &str) {
        let sql = sql.replace("$S", &self.schema);
        if let Err(e) = self.client.batch_execute(&sql).await {
            panic!("{sql}: {e:?}");
        }
    }

    fn table(&self, name: &str) -> String {
        format!("{}.{name}", self.schema)
    }

    async fn drop(self) {
        self.client
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.schema))
            .await
            .unwrap();
    }
}

fn pg_source() -> PostgresSource {
    PostgresSource::new("erp", &support::pg_url()).unwrap()
}

fn table_config(value: serde_json::Value) -> TableConfig {
    serde_json::from_value(value).unwrap()
}

fn request(table: TableConfig) -> ReadRequest {
    ReadRequest {
        table,
        since: None,
        until: None,
        batch_size: 10_000,
        loaded_files: None,
        table_schema: None,
    }
}

/// Read everything; the schema and the batches.
async fn read_all(
    source: &PostgresSource,
    request: ReadRequest,
) -> Result<(Arc<Schema>, Vec<RecordBatch>), SourceError> {
    let stream = source.read(request).await?;
    let mut batches = Vec::new();
    let stream_schema = stream.schema.clone();
    let mut s = stream.into_batches();
    while let Some(item) = s.next().await {
        let item = item?;
        assert_eq!(
            item.batch.schema(),
            stream_schema,
            "batch schema differs from the announced one"
        );
        batches.push(item.batch);
    }
    Ok((stream_schema, batches))
}

/// Read a table into one batch.
async fn read_one(source: &PostgresSource, request: ReadRequest) -> RecordBatch {
    let (schema, batches) = read_all(source, request).await.unwrap();
    deltalake::arrow::compute::concat_batches(&schema, &batches).unwrap()
}

fn col<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> &'a T {
    batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .as_any()
        .downcast_ref::<T>()
        .unwrap_or_else(|| {
            panic!(
                "column {name} has type {}",
                batch.column_by_name(name).unwrap().data_type()
            )
        })
}

fn micros(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_micros()
}

fn naive_micros(text: &str) -> i64 {
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .unwrap()
        .and_utc()
        .timestamp_micros()
}

fn list_i32(a: &ListArray, row: usize) -> Option<Vec<Option<i32>>> {
    if a.is_null(row) {
        return None;
    }
    let v = a.value(row);
    Some(
        v.as_primitive::<deltalake::arrow::datatypes::Int32Type>()
            .iter()
            .collect(),
    )
}

fn list_str(a: &ListArray, row: usize) -> Option<Vec<Option<String>>> {
    if a.is_null(row) {
        return None;
    }
    let v = a.value(row);
    Some(
        v.as_string::<i32>()
            .iter()
            .map(|s| s.map(str::to_string))
            .collect(),
    )
}

const MAX38: i128 = 99_999_999_999_999_999_999_999_999_999_999_999_999;

#[tokio::test]
async fn every_type_family_round_trips_value_by_value() {
    let Some(db) = TestSchema::create("trib_pg_fidelity").await else {
        return;
    };
    db.exec(
        "CREATE TYPE $S.mood AS ENUM ('happy', 'sad ''quoted''');
         CREATE DOMAIN $S.price AS numeric(12,3);
         CREATE TABLE $S.all_types (
            id int4 NOT NULL,
            b bool, i2 int2, i4 int4, i8 int8, o oid, f4 float4, f8 float8,
            n numeric(38,10), nu numeric, p $S.price,
            t text, vc varchar(40), bp char(5), nm name, e $S.mood,
            ba bytea, d date, ts timestamp, tstz timestamptz, tm time, tmtz timetz,
            u uuid, j json, jb jsonb, ai int4[], at text[], an numeric(6,2)[]
         );
         INSERT INTO $S.all_types (id) VALUES (1);
         INSERT INTO $S.all_types VALUES (2,
            false, -32768, -2147483648, -9223372036854775808, 0, 'NaN', '-Infinity',
            '-9999999999999999999999999999.9999999999', '-12345678901234567890123456789.123456789', -1.5,
            '', '', 'ab', 'pg_name', 'happy',
            '\\x'::bytea, '0001-01-01', '0001-01-01 00:00:00', '2024-03-31 01:59:59.999999+01',
            '00:00:00', '00:00:00-08',
            'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '{\"b\": 1,  \"a\": [1, 2]}', '{\"b\": 1,  \"a\": [1, 2]}',
            '{}', '{}', '{}');
         INSERT INTO $S.all_types VALUES (3,
            true, 32767, 2147483647, 9223372036854775807, 4294967295, 'Infinity', 'NaN',
            '9999999999999999999999999999.9999999999', '0.000000001', 123456789.125,
            E'emoji \\U0001F600\nline 2 ''single'' \"double\" \\\\ ñandú 日本語', 'x', 'abcde', 'n', 'sad ''quoted''',
            '\\x00ff0000'::bytea, '9999-12-31', '9999-12-31 23:59:59.999999', '2024-03-31 03:00:00+02',
            '23:59:59.999999', '12:34:56.5+05:30',
            '00000000-0000-0000-0000-000000000000', '[]', 'null',
            '{1,NULL,3}', '{\"a,b\",\"c\\\"d\",NULL,\"\"}', '{1.5,NULL,-2}');
         INSERT INTO $S.all_types VALUES (4,
            NULL, 0, 0, 0, NULL, 3.4028235e38, 1.7976931348623157e308,
            '0.0000000001', 0, 0,
            NULL, NULL, NULL, NULL, NULL,
            NULL, '2000-01-01', '2024-02-29 12:34:56.123456', '1969-12-31 23:59:59.999999+00',
            '12:00:00', NULL,
            NULL, NULL, NULL,
            '[0:2]={7,8,9}', NULL, NULL);",
    )
    .await;
    let source = pg_source();
    let mut req = request(table_config(
        serde_json::json!({ "name": db.table("all_types") }),
    ));
    req.batch_size = 3;
    let (schema, batches) = read_all(&source, req).await.unwrap();
    assert_eq!(
        batches.iter().map(|b| b.num_rows()).collect::<Vec<_>>(),
        vec![3, 1]
    );
    let batch = deltalake::arrow::compute::concat_batches(&schema, &batches).unwrap();

    // Schema: names as in the table, types as documented, all nullable.
    let utc = Some("UTC".into());
    let item = |t: DataType| DataType::List(Arc::new(Field::new_list_field(t, true)));
    let expected: Vec<(&str, DataType)> = vec![
        ("id", DataType::Int32),
        ("b", DataType::Boolean),
        ("i2", DataType::Int16),
        ("i4", DataType::Int32),
        ("i8", DataType::Int64),
        ("o", DataType::Int64),
        ("f4", DataType::Float32),
        ("f8", DataType::Float64),
        ("n", DataType::Decimal128(38, 10)),
        ("nu", DataType::Decimal128(38, 9)),
        ("p", DataType::Decimal128(12, 3)),
        ("t", DataType::Utf8),
        ("vc", DataType::Utf8),
        ("bp", DataType::Utf8),
        ("nm", DataType::Utf8),
        ("e", DataType::Utf8),
        ("ba", DataType::Binary),
        ("d", DataType::Date32),
        ("ts", DataType::Timestamp(TimeUnit::Microsecond, None)),
        ("tstz", DataType::Timestamp(TimeUnit::Microsecond, utc)),
        ("tm", DataType::Utf8),
        ("tmtz", DataType::Utf8),
        ("u", DataType::Utf8),
        ("j", DataType::Utf8),
        ("jb", DataType::Utf8),
        ("ai", item(DataType::Int32)),
        ("at", item(DataType::Utf8)),
        ("an", item(DataType::Decimal128(6, 2))),
    ];
    let actual: Vec<(&str, DataType)> = schema
        .fields()
        .iter()
        .map(|f| {
            assert!(f.is_nullable(), "{} not nullable", f.name());
            (f.name().as_str(), f.data_type().clone())
        })
        .collect();
    assert_eq!(actual, expected);
    assert_eq!(batch.num_rows(), 4);

    // Row 1: NULL in every column but id.
    for (i, c) in batch.columns().iter().enumerate().skip(1) {
        assert!(
            c.is_null(0),
            "column {} row 1 should be NULL",
            schema.field(i).name()
        );
    }
    assert_eq!(
        col::<Int32Array>(&batch, "id").values().to_vec(),
        vec![1, 2, 3, 4]
    );

    let b = col::<BooleanArray>(&batch, "b");
    assert_eq!(
        b.iter().collect::<Vec<_>>(),
        vec![None, Some(false), Some(true), None]
    );
    let i2 = col::<Int16Array>(&batch, "i2");
    assert_eq!(
        i2.iter().collect::<Vec<_>>(),
        vec![None, Some(i16::MIN), Some(i16::MAX), Some(0)]
    );
    let i4 = col::<Int32Array>(&batch, "i4");
    assert_eq!(
        i4.iter().collect::<Vec<_>>(),
        vec![None, Some(i32::MIN), Some(i32::MAX), Some(0)]
    );
    let i8 = col::<Int64Array>(&batch, "i8");
    assert_eq!(
        i8.iter().collect::<Vec<_>>(),
        vec![None, Some(i64::MIN), Some(i64::MAX), Some(0)]
    );
    let o = col::<Int64Array>(&batch, "o");
    assert_eq!(
        o.iter().collect::<Vec<_>>(),
        vec![None, Some(0), Some(4_294_967_295), None]
    );

    let f4 = col::<Float32Array>(&batch, "f4");
    assert!(f4.value(1).is_nan());
    assert_eq!(f4.value(2), f32::INFINITY);
    assert_eq!(f4.value(3), 3.402_823_5e38_f32);
    let f8 = col::<Float64Array>(&batch, "f8");
    assert_eq!(f8.value(1), f64::NEG_INFINITY);
    assert!(f8.value(2).is_nan());
    assert_eq!(f8.value(3), f64::MAX);

    let n = col::<Decimal128Array>(&batch, "n");
    assert_eq!(
        n.iter().collect::<Vec<_>>(),
        vec![None, Some(-MAX38), Some(MAX38), Some(1)]
    );
    let nu = col::<Decimal128Array>(&batch, "nu");
    assert_eq!(
        nu.iter().collect::<Vec<_>>(),
        vec![
            None,
            Some(-12_345_678_901_234_567_890_123_456_789_123_456_789),
            Some(1),
            Some(0)
        ]
    );
    let p = col::<Decimal128Array>(&batch, "p");
    assert_eq!(
        p.iter().collect::<Vec<_>>(),
        vec![None, Some(-1_500), Some(123_456_789_125), Some(0)]
    );

    let text = |name: &str| -> Vec<Option<String>> {
        col::<StringArray>(&batch, name)
            .iter()
            .map(|s| s.map(str::to_string))
            .collect()
    };
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        text("t"),
        vec![
            None,
            s(""),
            s("emoji 😀\nline 2 'single' \"double\" \\ ñandú 日本語"),
            None
        ]
    );
    assert_eq!(text("vc"), vec![None, s(""), s("x"), None]);
    assert_eq!(text("bp"), vec![None, s("ab   "), s("abcde"), None]);
    assert_eq!(text("nm"), vec![None, s("pg_name"), s("n"), None]);
    assert_eq!(text("e"), vec![None, s("happy"), s("sad 'quoted'"), None]);
    let ba = col::<BinaryArray>(&batch, "ba");
    assert_eq!(
        ba.iter().collect::<Vec<_>>(),
        vec![None, Some(&b""[..]), Some(&[0u8, 255, 0, 0][..]), None]
    );

    let d = col::<Date32Array>(&batch, "d");
    assert_eq!(
        d.iter().collect::<Vec<_>>(),
        vec![
            None,
            Some(days("0001-01-01")),
            Some(days("9999-12-31")),
            Some(days("2000-01-01"))
        ]
    );
    let ts = col::<TimestampMicrosecondArray>(&batch, "ts");
    assert_eq!(
        ts.iter().collect::<Vec<_>>(),
        vec![
            None,
            Some(naive_micros("0001-01-01 00:00:00")),
            Some(naive_micros("9999-12-31 23:59:59.999999")),
            Some(naive_micros("2024-02-29 12:34:56.123456")),
        ]
    );
    let tstz = col::<TimestampMicrosecondArray>(&batch, "tstz");
    // Across the Paris DST change: one microsecond apart as instants.
    let before = micros("2024-03-31T01:59:59.999999+01:00");
    let after = micros("2024-03-31T03:00:00+02:00");
    assert_eq!(after - before, 1);
    assert_eq!(before, micros("2024-03-31T00:59:59.999999Z"));
    assert_eq!(
        tstz.iter().collect::<Vec<_>>(),
        vec![None, Some(before), Some(after), Some(-1)]
    );
    assert_eq!(
        text("tm"),
        vec![None, s("00:00:00"), s("23:59:59.999999"), s("12:00:00")]
    );
    assert_eq!(
        text("tmtz"),
        vec![None, s("00:00:00-08"), s("12:34:56.500000+05:30"), None]
    );
    assert_eq!(
        text("u"),
        vec![
            None,
            s("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            s("00000000-0000-0000-0000-000000000000"),
            None
        ]
    );
    assert_eq!(
        text("j"),
        vec![None, s("{\"b\": 1,  \"a\": [1, 2]}"), s("[]"), None]
    );
    assert_eq!(
        text("jb"),
        vec![None, s("{\"a\": [1, 2], \"b\": 1}"), s("null"), None]
    );

    let ai = col::<ListArray>(&batch, "ai");
    assert_eq!(list_i32(ai, 0), None);
    assert_eq!(list_i32(ai, 1), Some(vec![]));
    assert_eq!(list_i32(ai, 2), Some(vec![Some(1), None, Some(3)]));
    assert_eq!(list_i32(ai, 3), Some(vec![Some(7), Some(8), Some(9)]));
    let at = col::<ListArray>(&batch, "at");
    assert_eq!(list_str(at, 1), Some(vec![]));
    assert_eq!(
        list_str(at, 2),
        Some(vec![s("a,b"), s("c\"d"), None, s("")])
    );
    assert_eq!(list_str(at, 3), None);
    let an = col::<ListArray>(&batch, "an");
    let values = an.value(2);
    let values = values.as_any().downcast_ref::<Decimal128Array>().unwrap();
    assert_eq!(
        values.iter().collect::<Vec<_>>(),
        vec![Some(150), None, Some(-200)]
    );

    db.drop().await;
}

#[tokio::test]
async fn batches_follow_batch_size_and_carry_the_origin() {
    let Some(db) = TestSchema::create("trib_pg_batches").await else {
        return;
    };
    db.exec(
        "CREATE TABLE $S.big (id int8, label text);
         INSERT INTO $S.big SELECT g, 'row ' || g FROM generate_series(1, 25001) g;
         CREATE TABLE $S.empty (id int8, amount numeric(10,2));",
    )
    .await;
    let source = pg_source();
    let name = db.table("big");
    let stream = source
        .read(request(table_config(serde_json::json!({ "name": name }))))
        .await
        .unwrap();
    let mut sizes = Vec::new();
    let mut sum = 0i64;
    let mut batches = stream.into_batches();
    while let Some(item) = batches.next().await {
        let item = item.unwrap();
        assert_eq!(&*item.origin, format!("erp:{name}"));
        sizes.push(item.batch.num_rows());
        sum += col::<Int64Array>(&item.batch, "id")
            .iter()
            .flatten()
            .sum::<i64>();
        let labels = col::<StringArray>(&item.batch, "label");
        let ids = col::<Int64Array>(&item.batch, "id");
        for i in 0..ids.len() {
            assert_eq!(labels.value(i), format!("row {}", ids.value(i)));
        }
    }
    assert_eq!(sizes, vec![10_000, 10_000, 5_001]);
    assert_eq!(sum, 25_001 * 25_002 / 2);

    // An empty table still announces its schema, and yields no rows.
    let (schema, batches) = read_all(
        &source,
        request(table_config(
            serde_json::json!({ "name": db.table("empty") }),
        )),
    )
    .await
    .unwrap();
    assert_eq!(schema.field(1).data_type(), &DataType::Decimal128(10, 2));
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 0);
    db.drop().await;
}

#[tokio::test]
async fn since_reads_from_the_cursor_inclusive() {
    let Some(db) = TestSchema::create("trib_pg_since").await else {
        return;
    };
    db.exec(
        "CREATE TABLE $S.events (id int4, at timestamptz, day date, who text, amount numeric(8,2));
         INSERT INTO $S.events VALUES
           (1, '2024-01-01 10:00:00+00', '2024-01-01', 'ann', 1.00),
           (2, '2024-01-01 12:00:00.000001+02', '2024-01-02', 'o''brien', 2.50),
           (3, '2024-01-01 11:00:00+00', '2024-01-03', 'zoe', 3.75),
           (4, NULL, NULL, NULL, NULL);",
    )
    .await;
    let source = pg_source();
    let table = table_config(serde_json::json!({ "name": db.table("events") }));
    let ids = |batch: &RecordBatch| -> Vec<i32> {
        let mut v: Vec<i32> = col::<Int32Array>(batch, "id").values().to_vec();
        v.sort();
        v
    };
    let read_since = |column: &str, value: CursorValue| {
        let mut req = request(table.clone());
        req.since = Some((column.to_string(), value));
        req
    };

    // Row 2 is 10:00:00.000001 UTC: just after row 1, inclusive bound on row 1.
    let batch = read_one(
        &source,
        read_since(
            "at",
            CursorValue::TimestampUtc(micros("2024-01-01T10:00:00Z")),
        ),
    )
    .await;
    assert_eq!(ids(&batch), vec![1, 2, 3]);
    let batch = read_one(
        &source,
        read_since(
            "at",
            CursorValue::TimestampUtc(micros("2024-01-01T10:00:00.000001Z")),
        ),
    )
    .await;
    assert_eq!(ids(&batch), vec![2, 3]);
    let batch = read_one(&source, read_since("id", CursorValue::Int(2))).await;
    assert_eq!(ids(&batch), vec![2, 3, 4]);
    let batch = read_one(
        &source,
        read_since("day", CursorValue::Date(days("2024-01-02"))),
    )
    .await;
    assert_eq!(ids(&batch), vec![2, 3]);
    let batch = read_one(
        &source,
        read_since("who", CursorValue::Text("o'brien".into())),
    )
    .await;
    assert_eq!(ids(&batch), vec![2, 3]);
    let batch = read_one(
        &source,
        read_since(
            "amount",
            CursorValue::Decimal {
                unscaled: "250".into(),
                scale: 2,
            },
        ),
    )
    .await;
    assert_eq!(ids(&batch), vec![2, 3]);

    // A custom query is wrapped, so `since` applies to it too.
    let mut req = request(table_config(serde_json::json!({
        "name": "events",
        "query": format!("SELECT id, at FROM {} WHERE id <> 3;", db.table("events")),
    })));
    req.since = Some((
        "at".into(),
        CursorValue::TimestampUtc(micros("2024-01-01T10:00:00Z")),
    ));
    let batch = read_one(&source, req).await;
    assert_eq!(ids(&batch), vec![1, 2]);
    db.drop().await;
}

#[tokio::test]
async fn unsupported_types_name_the_column_and_cast_to_text_works() {
    let Some(db) = TestSchema::create("trib_pg_cast").await else {
        return;
    };
    db.exec(
        "CREATE TABLE $S.plans (id int4, every interval, tags text[], price money, big numeric(40,2));
         INSERT INTO $S.plans VALUES (1, '1 day 2 hours', '{a}', 12.5, 1.25), (2, NULL, NULL, NULL, NULL);",
    )
    .await;
    let source = pg_source();
    let query = format!("SELECT id, every FROM {} ORDER BY id", db.table("plans"));

    let err = source
        .read(request(table_config(
            serde_json::json!({ "name": "plans", "query": query }),
        )))
        .await
        .err()
        .unwrap();
    let msg = err.to_string();
    assert!(matches!(err, SourceError::UnsupportedType { .. }), "{msg}");
    assert!(msg.contains("table plans"), "{msg}");
    assert!(msg.contains("column every"), "{msg}");
    assert!(msg.contains("interval"), "{msg}");
    assert!(msg.contains("cast"), "{msg}");

    let err = source
        .read(request(table_config(
            serde_json::json!({ "name": db.table("plans") }),
        )))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, SourceError::UnsupportedType { .. }), "{err}");

    // Custom query with a cast.
    let batch = read_one(
        &source,
        request(table_config(serde_json::json!({
            "name": "plans", "query": query, "cast": { "every": "text" }
        }))),
    )
    .await;
    assert_eq!(batch.schema().field(1).data_type(), &DataType::Utf8);
    let every = col::<StringArray>(&batch, "every");
    assert_eq!(
        every.iter().collect::<Vec<_>>(),
        vec![Some("1 day 02:00:00"), None]
    );

    // Whole table with casts: column order kept, casts applied, other columns typed.
    let batch = read_one(
        &source,
        request(table_config(serde_json::json!({
            "name": db.table("plans"),
            "cast": { "every": "text", "price": "text", "big": "text", "tags": "text" }
        }))),
    )
    .await;
    let names: Vec<String> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, vec!["id", "every", "tags", "price", "big"]);
    assert_eq!(batch.schema().field(0).data_type(), &DataType::Int32);
    assert_eq!(col::<StringArray>(&batch, "tags").value(0), "{a}");
    assert_eq!(col::<StringArray>(&batch, "price").value(0), "$12.50");
    assert_eq!(col::<StringArray>(&batch, "big").value(0), "1.25");
    assert!(col::<StringArray>(&batch, "big").is_null(1));

    // A cast naming a column the table does not have.
    let err = source
        .read(request(table_config(serde_json::json!({
            "name": db.table("plans"), "cast": { "nope": "text" }
        }))))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("nope"), "{err}");
    db.drop().await;
}

#[tokio::test]
async fn unrepresentable_values_are_bad_values() {
    let Some(db) = TestSchema::create("trib_pg_bad").await else {
        return;
    };
    db.exec(
        "CREATE TABLE $S.dates (id int4, d date);
         INSERT INTO $S.dates VALUES (1, '2024-01-01'), (2, 'infinity');
         CREATE TABLE $S.nums (id int4, x numeric);
         INSERT INTO $S.nums VALUES (1, 1.5), (2, 0.123456789012);
         CREATE TABLE $S.stamps (id int4, t timestamptz);
         INSERT INTO $S.stamps VALUES (1, '-infinity');
         CREATE TABLE $S.grid (id int4, m int4[]);
         INSERT INTO $S.grid VALUES (1, '{{1,2},{3,4}}');",
    )
    .await;
    let source = pg_source();
    let bad = |table: &str| {
        let source = &source;
        let name = db.table(table);
        async move {
            let err = read_all(
                source,
                request(table_config(serde_json::json!({ "name": name }))),
            )
            .await
            .err()
            .unwrap_or_else(|| panic!("{name} should fail"));
            assert!(matches!(err, SourceError::BadValue { .. }), "{err}");
            err.to_string()
        }
    };
    let msg = bad("dates").await;
    assert!(msg.contains("column d (date)"), "{msg}");
    assert!(msg.contains("value infinity"), "{msg}");
    let msg = bad("nums").await;
    assert!(msg.contains("column x (numeric)"), "{msg}");
    assert!(msg.contains("value 0.123456789012"), "{msg}");
    assert!(
        msg.contains("more than 9 digits after the decimal point"),
        "{msg}"
    );
    assert!(msg.contains("cast: { x: text }"), "{msg}");
    let msg = bad("stamps").await;
    assert!(msg.contains("-infinity"), "{msg}");
    let msg = bad("grid").await;
    assert!(msg.contains("column m"), "{msg}");
    assert!(msg.contains("2-dimensional"), "{msg}");

    // The documented way out: cast to text.
    let batch = read_one(
        &source,
        request(table_config(
            serde_json::json!({ "name": db.table("nums"), "cast": { "x": "text" } }),
        )),
    )
    .await;
    assert_eq!(
        col::<StringArray>(&batch, "x").iter().collect::<Vec<_>>(),
        vec![Some("1.5"), Some("0.123456789012")]
    );
    db.drop().await;
}

#[tokio::test]
async fn connection_problems_are_connect_errors_without_the_password() {
    let Some(db) = TestSchema::create("trib_pg_connect").await else {
        return;
    };
    let base = url::Url::parse(&support::pg_url()).unwrap();
    let with = |user: &str, password: &str, port: Option<u16>, dbname: &str| {
        let mut u = base.clone();
        u.set_username(user).unwrap();
        u.set_password(Some(password)).unwrap();
        if let Some(p) = port {
            u.set_port(Some(p)).unwrap();
        }
        u.set_path(dbname);
        u.to_string()
    };
    let db_name = base.path().trim_start_matches('/').to_string();

    // Unknown database.
    let url = with("postgres", "Sup3rSecretPw", None, "no_such_db_tributary");
    let err = PostgresSource::new("erp", &url)
        .unwrap()
        .check()
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, SourceError::Connect { .. }), "{msg}");
    assert!(msg.contains("no_such_db_tributary"), "{msg}");
    assert!(!msg.contains("Sup3rSecretPw"), "{msg}");

    // Unknown user.
    let url = with("no_such_user_tributary", "Sup3rSecretPw", None, &db_name);
    let err = PostgresSource::new("erp", &url)
        .unwrap()
        .check()
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, SourceError::Connect { .. }), "{msg}");
    assert!(msg.contains("no_such_user_tributary"), "{msg}");
    assert!(!msg.contains("Sup3rSecretPw"), "{msg}");

    // Nothing listens on port 1; `read` fails the same way.
    let url = with("postgres", "Sup3rSecretPw", Some(1), &db_name);
    let source = PostgresSource::new("erp", &url).unwrap();
    let err = source
        .read(request(table_config(
            serde_json::json!({ "name": db.table("t") }),
        )))
        .await
        .err()
        .unwrap();
    let msg = err.to_string();
    assert!(matches!(err, SourceError::Connect { .. }), "{msg}");
    assert!(msg.contains("127.0.0.1:1/"), "{msg}");
    assert!(msg.to_lowercase().contains("refused"), "{msg}");
    assert!(!msg.contains("Sup3rSecretPw"), "{msg}");
    assert!(err.is_retryable());

    // TLS demanded: refused up front.
    let url = format!(
        "{}?sslmode=require",
        with("postgres", "Sup3rSecretPw", None, &db_name)
    );
    let err = PostgresSource::new("erp", &url).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, SourceError::Config { .. }), "{msg}");
    assert!(msg.contains("TLS"), "{msg}");
    assert!(!msg.contains("Sup3rSecretPw"), "{msg}");

    // The working connection passes `check`; a missing table is a clear error.
    pg_source().check().await.unwrap();
    let err = pg_source()
        .read(request(table_config(
            serde_json::json!({ "name": db.table("missing") }),
        )))
        .await
        .err()
        .unwrap();
    let msg = err.to_string();
    assert!(matches!(err, SourceError::Query { .. }), "{msg}");
    assert!(msg.contains("does not exist on connection erp"), "{msg}");
    assert!(msg.contains(&db.table("missing")), "{msg}");
    db.drop().await;
}

#[tokio::test]
async fn quoted_names_and_dropping_the_stream_early() {
    let Some(db) = TestSchema::create("trib_pg_quoted").await else {
        return;
    };
    db.exec(
        "CREATE TABLE $S.\"Mixed Case\" (\"Id\" int4, \"select\" text);
         INSERT INTO $S.\"Mixed Case\" SELECT g, 'v' || g FROM generate_series(1, 50) g;",
    )
    .await;
    let source = pg_source();
    let name = format!("{}.\"Mixed Case\"", db.schema);
    let mut req = request(table_config(serde_json::json!({ "name": name })));
    req.batch_size = 10;
    req.since = Some(("Id".into(), CursorValue::Int(41)));
    let batch = read_one(&source, req.clone()).await;
    let names: Vec<String> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, vec!["Id", "select"]);
    assert_eq!(
        col::<Int32Array>(&batch, "Id").values().to_vec(),
        (41..=50).collect::<Vec<_>>()
    );

    // Taking one batch and dropping the stream ends the read (the schema can then be dropped,
    // which would block if the reader still held its snapshot open on the table).
    req.since = None;
    let stream = source.read(req).await.unwrap();
    let mut batches = stream.into_batches();
    let first = batches.next().await.unwrap().unwrap();
    assert_eq!(first.batch.num_rows(), 10);
    drop(batches);
    let as_array: ArrayRef = first.batch.column(0).clone();
    assert_eq!(as_array.len(), 10);
    tokio::time::timeout(std::time::Duration::from_secs(20), db.drop())
        .await
        .expect("the reader released the table");
}

fn parallel_request(name: &str, parallel: serde_json::Value, batch_size: usize) -> ReadRequest {
    let mut r = request(table_config(
        serde_json::json!({ "name": name, "parallel": parallel }),
    ));
    r.batch_size = batch_size;
    r
}

#[tokio::test]
async fn partitioned_reads_return_exactly_the_rows_of_one_read() {
    let Some(db) = TestSchema::create("par").await else {
        return;
    };
    // `k` is skewed (most rows share a few small values, a few are huge), nullable and not
    // unique; `id` is the primary key. Every type of the orders benchmark is here.
    db.exec(
        "CREATE TABLE $S.t (id bigint PRIMARY KEY, k bigint, d date, status varchar(16),
           total numeric(12,2), cur char(3), at timestamptz, note text, paid boolean);
         INSERT INTO $S.t SELECT g,
           CASE WHEN g % 17 = 0 THEN NULL WHEN g % 10 < 9 THEN g % 5 ELSE g::bigint * 1000003 END,
           date '2020-01-01' + (g % 1000), (ARRAY['new','paid','shipped'])[1 + g % 3],
           (g % 100000) / 100.0, CASE WHEN g % 7 = 0 THEN NULL ELSE 'EUR' END,
           timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second',
           CASE WHEN g % 10 = 0 THEN NULL ELSE 'note ' || g END, g % 2 = 0
         FROM generate_series(1, 30000) g;
         ANALYZE $S.t;",
    )
    .await;
    let src = pg_source();
    let name = db.table("t");
    let (schema, single) = read_all(
        &src,
        parallel_request(&name, serde_json::json!({"partitions": 1}), 4096),
    )
    .await
    .unwrap();
    let single = support::sorted_by_id(&schema, &single);
    assert_eq!(single.num_rows(), 30_000);
    for parallel in [
        serde_json::json!({ "column": "k", "partitions": 4, "connections": 3 }),
        serde_json::json!({ "partitions": 3 }),
        serde_json::json!({ "column": "status", "partitions": 8 }),
        serde_json::json!({ "column": "at", "partitions": 5, "connections": 1 }),
    ] {
        let (s, batches) = read_all(&src, parallel_request(&name, parallel.clone(), 4096))
            .await
            .unwrap_or_else(|e| panic!("{parallel}: {e}"));
        support::assert_same_rows(&parallel.to_string(), &single, &s, &batches);
    }
    // Naming a column that is not read is a configuration error.
    let e = read_all(
        &src,
        parallel_request(
            &name,
            serde_json::json!({"column": "nope", "partitions": 2}),
            100,
        ),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, SourceError::Config { .. }), "{e}");
    assert!(e.to_string().contains("nope"), "{e}");
    db.drop().await;
}

#[tokio::test]
async fn partitioned_read_of_an_empty_table_and_of_a_table_without_a_key() {
    let Some(db) = TestSchema::create("pare").await else {
        return;
    };
    db.exec("CREATE TABLE $S.e (id bigint PRIMARY KEY, v text); CREATE TABLE $S.nokey (id int, v text); INSERT INTO $S.nokey VALUES (1, 'a'), (2, NULL), (NULL, 'c');")
        .await;
    let src = pg_source();
    let (schema, batches) = read_all(
        &src,
        parallel_request(&db.table("e"), serde_json::json!({"partitions": 4}), 100),
    )
    .await
    .unwrap();
    assert_eq!(schema.fields().len(), 2);
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 0);
    // No primary key: `column` is needed, and then NULL keys are read too.
    let e = read_all(
        &src,
        parallel_request(
            &db.table("nokey"),
            serde_json::json!({"partitions": 2}),
            100,
        ),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("primary key"), "{e}");
    let (_, batches) = read_all(
        &src,
        parallel_request(
            &db.table("nokey"),
            serde_json::json!({"column": "id", "partitions": 2}),
            100,
        ),
    )
    .await
    .unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 3);
    db.drop().await;
}

#[tokio::test]
async fn a_partitioned_read_sees_one_snapshot_while_another_session_writes() {
    let Some(db) = TestSchema::create("parc").await else {
        return;
    };
    db.exec(
        "CREATE TABLE $S.t (id bigint PRIMARY KEY, v text);
         INSERT INTO $S.t SELECT g, 'before' FROM generate_series(1, 100000) g; ANALYZE $S.t;",
    )
    .await;
    let src = pg_source();
    let stream = src
        .read(parallel_request(
            &db.table("t"),
            serde_json::json!({"partitions": 4, "connections": 4}),
            500,
        ))
        .await
        .unwrap();
    let mut batches = stream.into_batches();
    let first = batches.next().await.unwrap().unwrap().batch;
    // While the readers are mid-table: new rows in every range, changed and deleted rows.
    db.exec(
        "BEGIN; INSERT INTO $S.t SELECT g, 'after' FROM generate_series(100001, 110000) g;
         UPDATE $S.t SET v = 'after' WHERE id % 1000 = 0; DELETE FROM $S.t WHERE id % 1000 = 1;
         INSERT INTO $S.t SELECT -g, 'after' FROM generate_series(1, 100) g; COMMIT;",
    )
    .await;
    let mut all = vec![first];
    while let Some(b) = batches.next().await {
        all.push(b.unwrap().batch);
    }
    support::assert_one_snapshot(&all);
    db.drop().await;
}
