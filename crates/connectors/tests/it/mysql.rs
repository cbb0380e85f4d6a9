//! mysql connector tests, against the machine's MariaDB (`support::mysql_url()`). Each test
//! creates its own database and drops it at the end.

use std::collections::BTreeMap;

use futures::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};
use tributary_connectors::mysql::MysqlSource;
use tributary_core::arrow::array::{
    Array, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array,
    Int8Array, Int16Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use tributary_core::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use tributary_core::config::{ColumnCast, TableConfig};
use tributary_core::{CursorValue, ReadRequest, Source, SourceError};

use crate::support;
use crate::support::{days, micros};

/// A database of its own for one test; dropped by `drop_db`.
struct TestDb {
    admin: Conn,
    name: String,
    /// URL of the test server with this database as the default one.
    url: String,
}

async fn test_db() -> Option<TestDb> {
    let base = support::mysql_url();
    let opts = match Opts::from_url(&base) {
        Ok(o) => o,
        Err(e) => return support::unavailable("MariaDB", e),
    };
    let mut admin = match Conn::new(opts).await {
        Ok(c) => c,
        Err(e) => return support::unavailable("MariaDB", e),
    };
    let name = support::unique_name("tt");
    admin
        .query_drop(format!(
            "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        ))
        .await
        .unwrap();
    admin.query_drop(format!("USE `{name}`")).await.unwrap();
    let mut url = url::Url::parse(&base).unwrap();
    url.set_path(&format!("/{name}"));
    Some(TestDb {
        admin,
        name,
        url: url.to_string(),
    })
}

impl TestDb {
    async fn exec(&mut self, sql: &str) {
        self.admin
            .query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    async fn drop_db(mut self) {
        let sql = format!("DROP DATABASE `{}`", self.name);
        self.admin.query_drop(sql).await.unwrap();
        self.admin.disconnect().await.unwrap();
    }

    fn source(&self) -> MysqlSource {
        MysqlSource::new("shop", &self.url).unwrap()
    }
}

fn table(name: &str) -> TableConfig {
    serde_json::from_value(serde_json::json!({ "name": name })).unwrap()
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

async fn read_all(
    src: &MysqlSource,
    req: ReadRequest,
) -> Result<(SchemaRef, Vec<RecordBatch>), SourceError> {
    let stream = src.read(req).await?;
    let mut batches = Vec::new();
    let stream_schema = stream.schema.clone();
    let mut s = stream.into_batches();
    while let Some(b) = s.next().await {
        let b = b?;
        assert!(b.origin.starts_with("shop:"), "origin {}", b.origin);
        assert_eq!(b.batch.schema(), stream_schema);
        batches.push(b.batch);
    }
    Ok((stream_schema, batches))
}

fn one_batch(batches: &[RecordBatch]) -> &RecordBatch {
    assert_eq!(batches.len(), 1, "expected one batch");
    &batches[0]
}

fn col<'a, T: 'static>(b: &'a RecordBatch, name: &str) -> &'a T {
    b.column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .as_any()
        .downcast_ref::<T>()
        .unwrap_or_else(|| {
            panic!(
                "column {name} has type {}",
                b.schema().field_with_name(name).unwrap().data_type()
            )
        })
}

fn row_with_id(ids: &Int32Array, id: i32) -> usize {
    (0..ids.len())
        .find(|r| ids.value(*r) == id)
        .unwrap_or_else(|| panic!("no row with id {id}"))
}

#[tokio::test]
async fn every_type_round_trips() {
    let Some(mut db) = test_db().await else {
        return;
    };
    db.exec(
        "CREATE TABLE everything (
            id INT NOT NULL PRIMARY KEY,
            ti TINYINT, tiu TINYINT UNSIGNED, flag TINYINT(1),
            si SMALLINT, siu SMALLINT UNSIGNED,
            mi MEDIUMINT, miu MEDIUMINT UNSIGNED,
            i INT, iu INT UNSIGNED,
            bi BIGINT, biu BIGINT UNSIGNED,
            yr YEAR, f FLOAT, d DOUBLE,
            d38 DECIMAL(38,10), d10 DECIMAL(10,0), du DECIMAL(12,2) UNSIGNED, d55 DECIMAL(5,5),
            dt DATE, dtm DATETIME(6), ts TIMESTAMP(6) NULL, tm TIME, tm1 TIME(1),
            c CHAR(3), vc VARCHAR(200), tx TEXT, lt LONGTEXT, en ENUM('small','large'),
            st SET('a','b','c'), js JSON,
            bn BINARY(4), vb VARBINARY(10), bl BLOB,
            b1 BIT(1), b12 BIT(12)
        ) CHARACTER SET utf8mb4",
    )
    .await;
    db.exec("SET SESSION time_zone = '+02:00'").await;
    db.exec(
        "INSERT INTO everything VALUES (
            1, -128, 255, 1, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295,
            -9223372036854775808, 18446744073709551615,
            1901, 1.5, -2.25e300,
            9999999999999999999999999999.9999999999, -9999999999, 9999999999.99, 0.00001,
            '1000-01-01', '2024-02-29 23:59:59.123456', '2024-06-01 12:00:00.000001',
            '-838:59:59', '12:00:00.5',
            'abc', 'Emoji 😀 \"quoted\" ''single'' back\\\\slash\nnew line', '', 'long',
            'large', 'a,c', '{\"k\": [1, 2.5, \"x\"]}',
            X'00010000', X'00FF00', X'0000FF0000',
            b'1', b'101010101010'
        ), (
            2, 127, 0, 0, 32767, 0, 8388607, 0, 2147483647, 0,
            9223372036854775807, 0,
            2155, -0.0, 1e-300,
            -9999999999999999999999999999.9999999999, 9999999999, 0.00, -0.99999,
            '9999-12-31', '1000-01-01 00:00:00', '1970-01-01 02:00:01',
            '838:59:59', '00:00:00',
            '', 'plain', 'text', '', 'small', '', 'null',
            X'', X'', X'',
            b'0', b'0'
        ), (
            3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
            NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
            NULL, NULL, NULL, NULL, NULL, NULL, NULL
        )",
    )
    .await;

    let src = db.source();
    let mut t = table("everything");
    t.query = Some(format!(
        "SELECT * FROM `{}`.everything ORDER BY id",
        db.name
    ));
    let (schema, batches) = read_all(&src, request(t)).await.unwrap();
    let b = one_batch(&batches);
    assert_eq!(b.num_rows(), 3);

    let expected_types = [
        ("id", DataType::Int32),
        ("ti", DataType::Int8),
        ("tiu", DataType::Int16),
        ("flag", DataType::Int8),
        ("si", DataType::Int16),
        ("siu", DataType::Int32),
        ("mi", DataType::Int32),
        ("miu", DataType::Int64),
        ("i", DataType::Int32),
        ("iu", DataType::Int64),
        ("bi", DataType::Int64),
        ("biu", DataType::Decimal128(20, 0)),
        ("yr", DataType::Int16),
        ("f", DataType::Float32),
        ("d", DataType::Float64),
        ("d38", DataType::Decimal128(38, 10)),
        ("d10", DataType::Decimal128(10, 0)),
        ("du", DataType::Decimal128(12, 2)),
        ("d55", DataType::Decimal128(5, 5)),
        ("dt", DataType::Date32),
        ("dtm", DataType::Timestamp(TimeUnit::Microsecond, None)),
        (
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ),
        ("tm", DataType::Utf8),
        ("tm1", DataType::Utf8),
        ("c", DataType::Utf8),
        ("vc", DataType::Utf8),
        ("tx", DataType::Utf8),
        ("lt", DataType::Utf8),
        ("en", DataType::Utf8),
        ("st", DataType::Utf8),
        ("js", DataType::Utf8),
        ("bn", DataType::Binary),
        ("vb", DataType::Binary),
        ("bl", DataType::Binary),
        ("b1", DataType::Boolean),
        ("b12", DataType::Binary),
    ];
    assert_eq!(schema.fields().len(), expected_types.len());
    for (field, (name, ty)) in schema.fields().iter().zip(expected_types.iter()) {
        assert_eq!(field.name(), name);
        assert_eq!(field.data_type(), ty, "column {name}");
        assert!(field.is_nullable(), "column {name}");
    }

    // Row 3: NULL in every column but the key.
    for (i, field) in schema.fields().iter().enumerate().skip(1) {
        assert!(
            b.column(i).is_null(2),
            "column {} row 3 should be NULL",
            field.name()
        );
    }

    let ints8 = col::<Int8Array>(b, "ti");
    assert_eq!((ints8.value(0), ints8.value(1)), (-128, 127));
    let tiu = col::<Int16Array>(b, "tiu");
    assert_eq!((tiu.value(0), tiu.value(1)), (255, 0));
    let flag = col::<Int8Array>(b, "flag");
    assert_eq!((flag.value(0), flag.value(1)), (1, 0));
    let si = col::<Int16Array>(b, "si");
    assert_eq!((si.value(0), si.value(1)), (-32768, 32767));
    assert_eq!(col::<Int32Array>(b, "siu").value(0), 65535);
    let mi = col::<Int32Array>(b, "mi");
    assert_eq!((mi.value(0), mi.value(1)), (-8_388_608, 8_388_607));
    assert_eq!(col::<Int64Array>(b, "miu").value(0), 16_777_215);
    let i = col::<Int32Array>(b, "i");
    assert_eq!((i.value(0), i.value(1)), (i32::MIN, i32::MAX));
    assert_eq!(col::<Int64Array>(b, "iu").value(0), 4_294_967_295);
    let bi = col::<Int64Array>(b, "bi");
    assert_eq!((bi.value(0), bi.value(1)), (i64::MIN, i64::MAX));
    let biu = col::<Decimal128Array>(b, "biu");
    assert_eq!(biu.value(0), 18_446_744_073_709_551_615);
    assert_eq!(biu.value_as_string(0), "18446744073709551615");
    assert_eq!(biu.value(1), 0);
    let yr = col::<Int16Array>(b, "yr");
    assert_eq!((yr.value(0), yr.value(1)), (1901, 2155));
    let f = col::<Float32Array>(b, "f");
    assert_eq!(f.value(0), 1.5);
    assert_eq!(f.value(1), 0.0);
    let d = col::<Float64Array>(b, "d");
    assert_eq!((d.value(0), d.value(1)), (-2.25e300, 1e-300));

    let d38 = col::<Decimal128Array>(b, "d38");
    assert_eq!(
        d38.value(0),
        99_999_999_999_999_999_999_999_999_999_999_999_999
    );
    assert_eq!(
        d38.value(1),
        -99_999_999_999_999_999_999_999_999_999_999_999_999
    );
    assert_eq!(
        d38.value_as_string(0),
        "9999999999999999999999999999.9999999999"
    );
    let d10 = col::<Decimal128Array>(b, "d10");
    assert_eq!(
        (d10.value(0), d10.value(1)),
        (-9_999_999_999, 9_999_999_999)
    );
    let du = col::<Decimal128Array>(b, "du");
    assert_eq!((du.value(0), du.value(1)), (999_999_999_999, 0));
    let d55 = col::<Decimal128Array>(b, "d55");
    assert_eq!((d55.value(0), d55.value(1)), (1, -99_999));

    let dt = col::<Date32Array>(b, "dt");
    assert_eq!(dt.value(0), days("1000-01-01"));
    assert_eq!(dt.value(1), days("9999-12-31"));
    let dtm = col::<TimestampMicrosecondArray>(b, "dtm");
    assert_eq!(dtm.value(0), micros("2024-02-29 23:59:59.123456"));
    assert_eq!(dtm.value(1), micros("1000-01-01 00:00:00"));
    let ts = col::<TimestampMicrosecondArray>(b, "ts");
    // Inserted by a session at +02:00: the connector returns the UTC instants.
    assert_eq!(ts.value(0), micros("2024-06-01 10:00:00.000001"));
    assert_eq!(ts.value(1), 1_000_000);

    let tm = col::<StringArray>(b, "tm");
    assert_eq!((tm.value(0), tm.value(1)), ("-838:59:59", "838:59:59"));
    let tm1 = col::<StringArray>(b, "tm1");
    assert_eq!(
        (tm1.value(0), tm1.value(1)),
        ("12:00:00.500000", "00:00:00")
    );

    let c = col::<StringArray>(b, "c");
    assert_eq!((c.value(0), c.value(1)), ("abc", ""));
    let vc = col::<StringArray>(b, "vc");
    assert_eq!(
        vc.value(0),
        "Emoji 😀 \"quoted\" 'single' back\\slash\nnew line"
    );
    assert_eq!(col::<StringArray>(b, "tx").value(1), "text");
    let lt = col::<StringArray>(b, "lt");
    assert_eq!((lt.value(0), lt.value(1)), ("long", ""));
    let en = col::<StringArray>(b, "en");
    assert_eq!((en.value(0), en.value(1)), ("large", "small"));
    let st = col::<StringArray>(b, "st");
    assert_eq!((st.value(0), st.value(1)), ("a,c", ""));
    let js = col::<StringArray>(b, "js");
    let parsed: serde_json::Value = serde_json::from_str(js.value(0)).unwrap();
    assert_eq!(parsed, serde_json::json!({"k": [1, 2.5, "x"]}));
    assert_eq!(js.value(1), "null");

    let bn = col::<BinaryArray>(b, "bn");
    assert_eq!(bn.value(0), [0u8, 1, 0, 0]);
    assert_eq!(
        bn.value(1),
        [0u8, 0, 0, 0],
        "BINARY(4) pads with zero bytes"
    );
    let vb = col::<BinaryArray>(b, "vb");
    assert_eq!((vb.value(0), vb.value(1)), (&[0u8, 255, 0][..], &[][..]));
    let bl = col::<BinaryArray>(b, "bl");
    assert_eq!(bl.value(0), [0u8, 0, 255, 0, 0]);
    assert_eq!(bl.value(1), [] as [u8; 0]);
    let b1 = col::<BooleanArray>(b, "b1");
    assert!(b1.value(0));
    assert!(!b1.value(1));
    let b12 = col::<BinaryArray>(b, "b12");
    assert_eq!(b12.value(0), [0b0000_1010u8, 0b1010_1010]);
    assert_eq!(b12.value(1), [0u8, 0]);

    // The same table read by name (unqualified: the URL's database) gives the same rows.
    let (_, by_name) = read_all(&src, request(table("everything"))).await.unwrap();
    assert_eq!(by_name.iter().map(RecordBatch::num_rows).sum::<usize>(), 3);
    assert_eq!(by_name[0].schema(), schema);

    db.drop_db().await;
}

#[tokio::test]
async fn wide_decimal_is_unsupported_unless_cast() {
    let Some(mut db) = test_db().await else {
        return;
    };
    db.exec("CREATE TABLE money (id INT, amount DECIMAL(65,2), g GEOMETRY)")
        .await;
    db.exec(
        "INSERT INTO money VALUES \
         (1, 12345678901234567890123456789012345678901234567890123456789012.34, POINT(1, 2)), \
         (2, NULL, NULL)",
    )
    .await;
    let src = db.source();
    let name = format!("{}.money", db.name);

    let err = read_all(&src, request(table(&name))).await.unwrap_err();
    match &err {
        SourceError::UnsupportedType {
            table,
            column,
            source_type,
            ..
        } => {
            assert_eq!(table, &name);
            assert_eq!(column, "amount");
            assert_eq!(source_type, "DECIMAL(65,2)");
        }
        other => panic!("expected UnsupportedType, got {other}"),
    }
    assert!(err.to_string().contains("cast"), "{err}");

    let mut t = table(&name);
    t.cast = BTreeMap::from([("amount".to_string(), ColumnCast::Text)]);
    let err = read_all(&src, request(t.clone())).await.unwrap_err();
    assert!(
        matches!(&err, SourceError::UnsupportedType { column, source_type, .. }
            if column == "g" && source_type == "GEOMETRY"),
        "{err}"
    );

    t.cast.insert("g".to_string(), ColumnCast::Text);
    let mut req = request(t);
    req.since = Some(("id".into(), CursorValue::Int(1)));
    let (schema, batches) = read_all(&src, req).await.unwrap();
    assert_eq!(schema.field(1).data_type(), &DataType::Utf8);
    let b = one_batch(&batches);
    let amount = col::<StringArray>(b, "amount");
    let ids = col::<Int32Array>(b, "id");
    let mut rows: Vec<(i32, Option<&str>)> = (0..b.num_rows())
        .map(|r| (ids.value(r), (!amount.is_null(r)).then(|| amount.value(r))))
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        vec![
            (
                1,
                Some("12345678901234567890123456789012345678901234567890123456789012.34")
            ),
            (2, None)
        ]
    );
    let g = col::<StringArray>(b, "g");
    let r1 = row_with_id(ids, 1);
    assert_eq!(g.value(r1), "POINT(1 2)");
    assert!(g.is_null(row_with_id(ids, 2)));
    db.drop_db().await;
}

#[tokio::test]
async fn zero_date_is_a_bad_value() {
    let Some(mut db) = test_db().await else {
        return;
    };
    db.exec("CREATE TABLE events (id INT, happened DATETIME, day DATE)")
        .await;
    db.exec("SET SESSION sql_mode = ''").await;
    db.exec("INSERT INTO events VALUES (1, '2024-01-01 00:00:00', '2024-01-01'), (2, '0000-00-00 00:00:00', '2024-00-05')").await;
    let src = db.source();
    let name = format!("{}.events", db.name);

    let stream = src.read(request(table(&name))).await.unwrap();
    let results: Vec<_> = stream.into_batches().collect().await;
    let err = results
        .into_iter()
        .find_map(Result::err)
        .expect("a zero date must fail the read");
    match &err {
        SourceError::BadValue {
            table,
            column,
            value,
            source_type,
            ..
        } => {
            assert_eq!(table, &name);
            assert_eq!(column, "happened");
            assert_eq!(source_type, "DATETIME");
            assert_eq!(value, "0000-00-00 00:00:00");
        }
        other => panic!("expected BadValue, got {other}"),
    }

    // Casting both columns to text loads the values as MySQL renders them.
    let mut t = table(&name);
    t.cast = BTreeMap::from([
        ("happened".to_string(), ColumnCast::Text),
        ("day".to_string(), ColumnCast::Text),
    ]);
    t.query = Some(format!("SELECT * FROM {name} ORDER BY id"));
    let (_, batches) = read_all(&src, request(t)).await.unwrap();
    let b = one_batch(&batches);
    let happened = col::<StringArray>(b, "happened");
    let day = col::<StringArray>(b, "day");
    // A derived table may reorder rows: find row 2 by its id.
    let r = row_with_id(col::<Int32Array>(b, "id"), 2);
    assert_eq!(happened.value(r), "0000-00-00 00:00:00");
    assert_eq!(day.value(r), "2024-00-05");
    db.drop_db().await;
}

#[tokio::test]
async fn batches_have_the_requested_size() {
    let Some(mut db) = test_db().await else {
        return;
    };
    db.exec("CREATE TABLE big (id INT PRIMARY KEY, label VARCHAR(20))")
        .await;
    db.exec("INSERT INTO big SELECT seq, CONCAT('row ', seq) FROM seq_1_to_25001")
        .await;
    let src = db.source();
    let mut req = request(table(&format!("{}.big", db.name)));
    req.batch_size = 10_000;
    let (_, batches) = read_all(&src, req).await.unwrap();
    let sizes: Vec<usize> = batches.iter().map(RecordBatch::num_rows).collect();
    assert_eq!(sizes, vec![10_000, 10_000, 5_001]);
    let mut ids: Vec<i32> = batches
        .iter()
        .flat_map(|b| col::<Int32Array>(b, "id").values().to_vec())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=25_001).collect::<Vec<i32>>());
    let last = batches.last().unwrap();
    let labels = col::<StringArray>(last, "label");
    let ids = col::<Int32Array>(last, "id");
    for r in 0..last.num_rows() {
        assert_eq!(labels.value(r), format!("row {}", ids.value(r)));
    }

    // A consumer that stops early: the read's sessions go away without reading the rest.
    let mut req = request(table("big"));
    req.batch_size = 1_000;
    let mut stream = src.read(req).await.unwrap().into_batches();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.batch.num_rows(), 1_000);
    drop(stream);
    let mut left = u64::MAX;
    for _ in 0..100 {
        let n: Option<u64> = db
            .admin
            .exec_first(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
                 WHERE DB = ? AND ID <> CONNECTION_ID()",
                (db.name.clone(),),
            )
            .await
            .unwrap();
        left = n.unwrap();
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "the abandoned read's connection is still open");

    // An empty result still has its schema.
    let mut t = table("big");
    t.query = Some("SELECT id, label FROM big WHERE id < 0".into());
    let (schema, batches) = read_all(&src, request(t)).await.unwrap();
    assert!(batches.is_empty());
    assert_eq!(schema.field(0).data_type(), &DataType::Int32);
    assert_eq!(schema.field(1).data_type(), &DataType::Utf8);
    db.drop_db().await;
}

#[tokio::test]
async fn since_is_inclusive_on_datetime_int_and_text_cursors() {
    let Some(mut db) = test_db().await else {
        return;
    };
    db.exec("CREATE TABLE orders (id BIGINT, updated_at DATETIME(6), code VARCHAR(10))")
        .await;
    db.exec(
        "INSERT INTO orders VALUES \
         (1, '2024-01-01 10:00:00.000000', 'a'), \
         (2, '2024-01-01 10:00:00.000001', 'b''x'), \
         (3, '2024-01-02 00:00:00', 'c'), \
         (4, NULL, NULL)",
    )
    .await;
    let src = db.source();
    let ids_of = |batches: &[RecordBatch]| {
        let mut ids: Vec<i64> = batches
            .iter()
            .flat_map(|b| col::<Int64Array>(b, "id").values().to_vec())
            .collect();
        ids.sort_unstable();
        ids
    };

    let mut req = request(table("orders"));
    req.since = Some((
        "updated_at".into(),
        CursorValue::Timestamp(micros("2024-01-01 10:00:00.000001")),
    ));
    let (_, batches) = read_all(&src, req).await.unwrap();
    assert_eq!(ids_of(&batches), vec![2, 3]);

    let mut req = request(table("orders"));
    req.since = Some(("id".into(), CursorValue::Int(3)));
    let (_, batches) = read_all(&src, req).await.unwrap();
    assert_eq!(ids_of(&batches), vec![3, 4]);

    let mut req = request(table("orders"));
    req.since = Some(("code".into(), CursorValue::Text("b'x".into())));
    let (_, batches) = read_all(&src, req).await.unwrap();
    assert_eq!(ids_of(&batches), vec![2, 3]);

    // A custom query with a cursor is wrapped.
    let mut t = table("orders");
    t.query = Some("SELECT id, updated_at FROM orders WHERE id <> 3;".into());
    let mut req = request(t);
    req.since = Some((
        "updated_at".into(),
        CursorValue::Timestamp(micros("2024-01-01 10:00:00")),
    ));
    let (_, batches) = read_all(&src, req).await.unwrap();
    assert_eq!(ids_of(&batches), vec![1, 2]);
    db.drop_db().await;
}

#[tokio::test]
async fn custom_query_with_cast() {
    let Some(mut db) = test_db().await else {
        return;
    };
    db.exec("CREATE TABLE items (id INT, price DECIMAL(10,2), at TIME)")
        .await;
    db.exec("INSERT INTO items VALUES (1, 19.99, '01:02:03'), (2, -0.5, NULL)")
        .await;
    let src = db.source();
    let mut t = table("priced_items");
    t.query = Some("SELECT id, price * 2 AS doubled, price FROM items ORDER BY id".into());
    t.cast = BTreeMap::from([("price".to_string(), ColumnCast::Text)]);
    let (schema, batches) = read_all(&src, request(t)).await.unwrap();
    assert_eq!(schema.field(1).name(), "doubled");
    assert!(matches!(
        schema.field(1).data_type(),
        DataType::Decimal128(_, 2)
    ));
    assert_eq!(schema.field(2).data_type(), &DataType::Utf8);
    let b = one_batch(&batches);
    assert_eq!(b.num_rows(), 2);
    let doubled = col::<Decimal128Array>(b, "doubled");
    let (r1, r2) = (
        row_with_id(col::<Int32Array>(b, "id"), 1),
        row_with_id(col::<Int32Array>(b, "id"), 2),
    );
    assert_eq!((doubled.value(r1), doubled.value(r2)), (3998, -100));
    let price = col::<StringArray>(b, "price");
    assert_eq!((price.value(r1), price.value(r2)), ("19.99", "-0.50"));

    // A cast naming an unknown column is a configuration error.
    let mut t = table("items");
    t.cast = BTreeMap::from([("nope".to_string(), ColumnCast::Text)]);
    let err = read_all(&src, request(t)).await.unwrap_err();
    assert!(
        matches!(&err, SourceError::Config { reason, .. } if reason.contains("nope")),
        "{err}"
    );

    // A missing table says so.
    let err = read_all(&src, request(table("no_such_table")))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SourceError::Query { reason, .. } if reason.contains("does not exist")),
        "{err}"
    );
    db.drop_db().await;
}

#[tokio::test]
async fn latin1_text_is_converted_to_utf8() {
    let Some(mut db) = test_db().await else {
        return;
    };
    db.exec("CREATE TABLE notes (id INT, body VARCHAR(20) CHARACTER SET latin1, raw VARBINARY(4))")
        .await;
    db.exec("INSERT INTO notes VALUES (1, 'café', X'C328')")
        .await;
    let src = db.source();
    // latin1 text is converted by the server to utf8mb4: every character kept.
    let (_, batches) = read_all(&src, request(table("notes"))).await.unwrap();
    let b = one_batch(&batches);
    assert_eq!(col::<StringArray>(b, "body").value(0), "café");
    db.drop_db().await;
}

#[tokio::test]
async fn check_and_connection_errors_name_the_target_without_the_password() {
    let Some(db) = test_db().await else { return };
    db.source().check().await.unwrap();

    let mut url = url::Url::parse(&db.url).unwrap();
    url.set_username("no_such_user_tt").unwrap();
    url.set_password(Some("Sup3rSecretPw")).unwrap();
    let src = MysqlSource::new("shop", url.as_str()).unwrap();
    let err = src.check().await.unwrap_err();
    let text = err.to_string();
    match &err {
        SourceError::Connect { target, reason, .. } => {
            assert!(target.contains(&db.name), "{text}");
            assert!(reason.contains("Access denied"), "{text}");
        }
        other => panic!("expected Connect, got {other}"),
    }
    assert!(!text.contains("Sup3rSecretPw"), "{text}");
    let err = read_all(&src, request(table("x"))).await.unwrap_err();
    assert!(matches!(err, SourceError::Connect { .. }), "{err}");
    assert!(!err.to_string().contains("Sup3rSecretPw"));

    let src = MysqlSource::new("shop", "mysql://app:Sup3rSecretPw@127.0.0.1:1/erp").unwrap();
    let err = src.check().await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, SourceError::Connect { .. }), "{text}");
    assert!(text.contains("127.0.0.1:1/erp"), "{text}");
    assert!(!text.contains("Sup3rSecretPw"), "{text}");
    assert!(err.is_retryable());

    let err = MysqlSource::new(
        "shop",
        "mariadb://app:Sup3rSecretPw@db/erp?ssl-mode=REQUIRED",
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("TLS"), "{err}");
    assert!(!err.to_string().contains("Sup3rSecretPw"), "{err}");
    db.drop_db().await;
}

fn parallel_request(name: &str, parallel: serde_json::Value, batch_size: usize) -> ReadRequest {
    let mut r = request(
        serde_json::from_value(serde_json::json!({ "name": name, "parallel": parallel })).unwrap(),
    );
    r.batch_size = batch_size;
    r
}

#[tokio::test]
async fn partitioned_reads_return_exactly_the_rows_of_one_read() {
    let Some(mut db) = test_db().await else {
        return;
    };
    db.exec(
        "CREATE TABLE t (id bigint PRIMARY KEY, k bigint, d date, status varchar(16),
           total decimal(12,2), cur char(3), at timestamp(6) NULL, note text, paid boolean, KEY (k))",
    )
    .await;
    db.exec(
        "INSERT INTO t SELECT seq,
           CASE WHEN seq % 17 = 0 THEN NULL WHEN seq % 10 < 9 THEN seq % 5 ELSE seq * 1000003 END,
           DATE_ADD('2020-01-01', INTERVAL seq % 1000 DAY), ELT(1 + seq % 3, 'new','paid','shipped'),
           (seq % 100000) / 100.0, IF(seq % 7 = 0, NULL, 'EUR'),
           TIMESTAMPADD(SECOND, seq, '2024-01-01'), IF(seq % 10 = 0, NULL, CONCAT('note ', seq)),
           seq % 2 = 0
         FROM seq_1_to_30000",
    )
    .await;
    let src = db.source();
    let (schema, single) = read_all(
        &src,
        parallel_request("t", serde_json::json!({"partitions": 1}), 4096),
    )
    .await
    .unwrap();
    let single = support::sorted_by_id(&schema, &single);
    assert_eq!(single.num_rows(), 30_000);
    for parallel in [
        serde_json::json!({ "column": "k", "partitions": 4, "connections": 3 }),
        serde_json::json!({ "partitions": 3 }),
        serde_json::json!({ "partitions": 7, "connections": 1 }),
    ] {
        let (s, batches) = read_all(&src, parallel_request("t", parallel.clone(), 4096))
            .await
            .unwrap_or_else(|e| panic!("{parallel}: {e}"));
        support::assert_same_rows(&parallel.to_string(), &single, &s, &batches);
    }
    // Only integer columns split on MySQL/MariaDB; a custom query cannot be split.
    let e = read_all(
        &src,
        parallel_request(
            "t",
            serde_json::json!({"column": "status", "partitions": 2}),
            100,
        ),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("integer"), "{e}");
    let mut q = parallel_request(
        "t",
        serde_json::json!({"column": "id", "partitions": 2}),
        100,
    );
    q.table.query = Some("SELECT * FROM t".into());
    let e = read_all(&src, q).await.unwrap_err();
    assert!(e.to_string().contains("custom `query`"), "{e}");
    // An empty table: no rows, the schema all the same.
    db.exec("CREATE TABLE e (id bigint PRIMARY KEY, v text)")
        .await;
    let (schema, batches) = read_all(
        &src,
        parallel_request("e", serde_json::json!({"partitions": 4}), 100),
    )
    .await
    .unwrap();
    assert_eq!(schema.fields().len(), 2);
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 0);
    db.drop_db().await;
}

#[tokio::test]
async fn a_partitioned_read_sees_one_state_while_another_session_writes() {
    let Some(mut db) = test_db().await else {
        return;
    };
    db.exec("CREATE TABLE t (id bigint PRIMARY KEY, v varchar(10)) ENGINE=InnoDB")
        .await;
    db.exec("INSERT INTO t SELECT seq, 'before' FROM seq_1_to_100000")
        .await;
    let src = db.source();
    let stream = src
        .read(parallel_request(
            "t",
            serde_json::json!({"partitions": 4, "connections": 4}),
            500,
        ))
        .await
        .unwrap();
    let mut batches = stream.into_batches();
    let first = batches.next().await.unwrap().unwrap().batch;
    db.exec("START TRANSACTION").await;
    db.exec("INSERT INTO t SELECT seq, 'after' FROM seq_100001_to_110000")
        .await;
    db.exec("UPDATE t SET v = 'after' WHERE id % 1000 = 0")
        .await;
    db.exec("DELETE FROM t WHERE id % 1000 = 1").await;
    db.exec("COMMIT").await;
    let mut all = vec![first];
    while let Some(b) = batches.next().await {
        all.push(b.unwrap().batch);
    }
    support::assert_one_snapshot(&all);
    db.drop_db().await;
}
