//! ODBC connector tests, through the Debian ODBC drivers for PostgreSQL (`odbc-postgresql`,
//! "PostgreSQL Unicode") and MariaDB (`odbc-mariadb`, "MariaDB Unicode") against the machine's
//! servers. The fidelity tables of `postgres.rs` and `mysql.rs` are read through ODBC and through
//! the native connectors, and the results compared; the differences that ODBC cannot avoid are
//! asserted explicitly (and documented in the README).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_odbc::odbc_api;
use deltalake::arrow::array::{Array, ArrayRef, Int32Array, Int64Array, StringArray};
use deltalake::arrow::datatypes::{DataType, Schema, TimeUnit};
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::arrow::util::display::array_value_to_string;
use futures::StreamExt;
use mysql_async::prelude::Queryable;
use tokio_postgres::NoTls;
use tributary_connectors::mysql::MysqlSource;
use tributary_connectors::odbc::OdbcSource;
use tributary_connectors::postgres::PostgresSource;
use tributary_core::config::{ColumnCast, TableConfig};
use tributary_core::cursor::CursorValue;
use tributary_core::{ReadRequest, Source, SourceError};

use crate::support;

const PG_DRIVER: &str = "PostgreSQL Unicode";
const MARIADB_DRIVER: &str = "MariaDB Unicode";

/// Whether the driver manager knows `driver`; skips (or fails in CI) when it does not.
fn driver(driver: &str) -> Option<()> {
    let env = match odbc_api::environment() {
        Ok(env) => env,
        Err(e) => return support::unavailable("unixODBC", e),
    };
    let drivers = match env.drivers() {
        Ok(d) => d,
        Err(e) => return support::unavailable("unixODBC", e),
    };
    if drivers.iter().any(|d| d.description == driver) {
        Some(())
    } else {
        support::unavailable(
            &format!("ODBC driver {driver:?}"),
            "not registered in odbcinst.ini (Debian packages odbc-postgresql, odbc-mariadb)",
        )
    }
}

/// A connection string for the test PostgreSQL, plus driver options `extra`.
fn pg_connection_string(extra: &str) -> Option<String> {
    driver(PG_DRIVER)?;
    let url = url::Url::parse(&support::pg_url()).unwrap();
    let password = url
        .password()
        .map(|p| format!("Pwd={p};"))
        .unwrap_or_default();
    Some(format!(
        "Driver={{{PG_DRIVER}}};Server={};Port={};Database={};Uid={};{password}{extra}",
        url.host_str().unwrap_or("127.0.0.1"),
        url.port().unwrap_or(5432),
        url.path().trim_start_matches('/'),
        url.username(),
    ))
}

/// A connection string for the test MariaDB with `database` as the default one.
fn mariadb_connection_string(database: &str, extra: &str) -> Option<String> {
    driver(MARIADB_DRIVER)?;
    let url = url::Url::parse(&support::mysql_url()).unwrap();
    Some(format!(
        "Driver={{{MARIADB_DRIVER}}};Server={};Port={};Database={database};User={};Password={};{extra}",
        url.host_str().unwrap_or("127.0.0.1"),
        url.port().unwrap_or(3306),
        url.username(),
        url.password().unwrap_or(""),
    ))
}

fn odbc(connection_string: &str) -> OdbcSource {
    OdbcSource::new("crm", connection_string, None, None).unwrap()
}

fn table(value: serde_json::Value) -> TableConfig {
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

/// Read everything: the schema and the batches (each checked against the schema).
async fn read_all(
    source: &dyn Source,
    request: ReadRequest,
) -> Result<(Arc<Schema>, Vec<RecordBatch>), SourceError> {
    let stream = source.read(request).await?;
    let mut batches = Vec::new();
    let stream_schema = stream.schema.clone();
    let mut s = stream.into_batches();
    while let Some(item) = s.next().await {
        let item = item?;
        assert_eq!(item.batch.schema(), stream_schema, "batch schema differs");
        batches.push(item.batch);
    }
    Ok((stream_schema, batches))
}

async fn read_one(source: &dyn Source, request: ReadRequest) -> RecordBatch {
    let (schema, batches) = read_all(source, request).await.unwrap();
    deltalake::arrow::compute::concat_batches(&schema, &batches).unwrap()
}

/// Every value of column `name` as text (`NULL` for nulls, `-0` as `0`), by row.
fn texts(batch: &RecordBatch, name: &str) -> Vec<String> {
    let column: &ArrayRef = batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"));
    (0..column.len())
        .map(|i| {
            if column.is_null(i) {
                "NULL".to_string()
            } else {
                let s = array_value_to_string(column, i).unwrap();
                if s == "-0" { "0".into() } else { s }
            }
        })
        .collect()
}

/// The row order of a batch by its integer `id` column.
fn order_by_id(batch: &RecordBatch) -> RecordBatch {
    let ids = texts(batch, "id");
    let mut idx: Vec<u32> = (0..batch.num_rows() as u32).collect();
    idx.sort_by_key(|i| ids[*i as usize].parse::<i64>().unwrap());
    let idx = deltalake::arrow::array::UInt32Array::from(idx);
    let columns = batch
        .columns()
        .iter()
        .map(|c| deltalake::arrow::compute::take(c, &idx, None).unwrap())
        .collect();
    RecordBatch::try_new(batch.schema(), columns).unwrap()
}

/// Compare the columns both batches have (except `skip`): same Arrow type, same values.
fn assert_same_columns(native: &RecordBatch, odbc: &RecordBatch, skip: &[&str]) {
    let native = order_by_id(native);
    let odbc = order_by_id(odbc);
    assert_eq!(native.num_rows(), odbc.num_rows());
    for field in native.schema().fields() {
        let name = field.name().as_str();
        if skip.contains(&name) {
            continue;
        }
        let other = odbc.schema();
        let other = other
            .field_with_name(name)
            .unwrap_or_else(|_| panic!("ODBC read has no column {name}"));
        assert_eq!(
            other.data_type(),
            field.data_type(),
            "column {name}: ODBC type differs from the native connector's"
        );
        assert!(other.is_nullable(), "column {name}");
        assert_eq!(
            texts(&odbc, name),
            texts(&native, name),
            "column {name}: ODBC values differ from the native connector's"
        );
    }
    let native_names: Vec<&String> = native
        .schema_ref()
        .fields()
        .iter()
        .map(|f| f.name())
        .collect();
    let odbc_names: Vec<String> = odbc
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        odbc_names.iter().collect::<Vec<_>>(),
        native_names,
        "column names and order"
    );
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------------------------

/// A schema of the test database for one test.
struct PgSchema {
    client: tokio_postgres::Client,
    schema: String,
}

impl PgSchema {
    async fn create(prefix: &str) -> Option<PgSchema> {
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
        Some(PgSchema { client, schema })
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

/// The fidelity table of `postgres.rs`, same DDL and values.
const PG_ALL_TYPES: &str = "CREATE TYPE $S.mood AS ENUM ('happy', 'sad ''quoted''');
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
        '[0:2]={7,8,9}', NULL, NULL);";

#[tokio::test]
async fn postgres_fidelity_table_matches_the_native_connector() {
    let Some(cs) = pg_connection_string("") else {
        return;
    };
    let Some(db) = PgSchema::create("trib_odbc_pg_fidelity").await else {
        return;
    };
    db.exec(PG_ALL_TYPES).await;
    let name = db.table("all_types");
    let native = PostgresSource::new("erp", &support::pg_url()).unwrap();
    let native = read_one(&native, request(table(serde_json::json!({ "name": name })))).await;
    let source = odbc(&cs);

    // psqlODBC describes an unconstrained `numeric` as numeric(28,6): a value with more digits
    // stops the read, naming the column, instead of being rounded.
    let err = read_all(&source, request(table(serde_json::json!({ "name": name }))))
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::BadValue { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("column nu"), "{msg}");
    assert!(msg.contains("cast: { nu: text }"), "{msg}");

    let mut req = request(table(serde_json::json!({
        "name": name, "cast": { "nu": "text" }
    })));
    req.batch_size = 3;
    let (schema, batches) = read_all(&source, req).await.unwrap();
    assert_eq!(
        batches.iter().map(RecordBatch::num_rows).sum::<usize>(),
        4,
        "all rows, in blocks of at most 3"
    );
    assert!(batches.iter().all(|b| b.num_rows() <= 3));
    let via_odbc = deltalake::arrow::compute::concat_batches(&schema, &batches).unwrap();

    // Every column but the documented exceptions: same type, same values.
    assert_same_columns(&native, &via_odbc, &["nu", "ai", "at", "an"]);

    // The exceptions. `nu` cast to text: PostgreSQL's own rendering.
    let via_odbc = order_by_id(&via_odbc);
    assert_eq!(
        schema.field_with_name("nu").unwrap().data_type(),
        &DataType::Utf8
    );
    assert_eq!(
        texts(&via_odbc, "nu"),
        [
            "NULL",
            "-12345678901234567890123456789.123456789",
            "0.000000001",
            "0"
        ]
    );
    // Arrays: the driver delivers PostgreSQL's text form (the native connector builds lists).
    for c in ["ai", "at", "an"] {
        assert_eq!(
            schema.field_with_name(c).unwrap().data_type(),
            &DataType::Utf8,
            "{c}"
        );
    }
    assert_eq!(
        texts(&via_odbc, "ai"),
        ["NULL", "{}", "{1,NULL,3}", "[0:2]={7,8,9}"]
    );
    assert_eq!(
        texts(&via_odbc, "at"),
        ["NULL", "{}", "{\"a,b\",\"c\\\"d\",NULL,\"\"}", "NULL"]
    );
    assert_eq!(
        texts(&via_odbc, "an"),
        ["NULL", "{}", "{1.50,NULL,-2.00}", "NULL"]
    );

    // A custom query: no catalog to ask, so `timestamptz` loads as a timestamp without zone
    // holding the UTC wall clock (the session time zone is UTC): the same numbers.
    let query = format!("SELECT id, tstz, d, n FROM {name}");
    let by_query = read_one(
        &source,
        request(table(
            serde_json::json!({ "name": "all_types", "query": query }),
        )),
    )
    .await;
    assert_eq!(
        by_query.schema().field(1).data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, None)
    );
    let by_query = order_by_id(&by_query);
    let native = order_by_id(&native);
    let micros = |b: &RecordBatch| -> Vec<Option<i64>> {
        let a = b.column_by_name("tstz").unwrap();
        let a = deltalake::arrow::compute::cast(a, &DataType::Int64).unwrap();
        a.as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .iter()
            .collect()
    };
    assert_eq!(micros(&by_query), micros(&native));
    assert_eq!(texts(&by_query, "d"), texts(&native, "d"));
    assert_eq!(texts(&by_query, "n"), texts(&native, "n"));
    db.drop().await;
}

#[tokio::test]
async fn postgres_incremental_reads_bind_since_and_until() {
    // `UseDeclareFetch=1`: psqlODBC reads through a server-side cursor, `Fetch` rows at a time
    // (without it the driver holds the whole result in memory).
    let Some(cs) = pg_connection_string("UseDeclareFetch=1;Fetch=500;") else {
        return;
    };
    let Some(db) = PgSchema::create("trib_odbc_pg_since").await else {
        return;
    };
    db.exec(
        "CREATE TABLE $S.events (id int4, at timestamptz, day date, who text, amount numeric(8,2));
         INSERT INTO $S.events VALUES
           (1, '2024-01-01 10:00:00+00', '2024-01-01', 'ann', 1.00),
           (2, '2024-01-01 12:00:00.000001+02', '2024-01-02', 'o''brien', 2.50),
           (3, '2024-01-01 11:00:00+00', '2024-01-03', 'zoe', 3.75),
           (4, NULL, NULL, NULL, NULL);
         CREATE TABLE $S.big (id int8, label text);
         INSERT INTO $S.big SELECT g, 'row ' || g FROM generate_series(1, 2501) g;",
    )
    .await;
    let source = odbc(&cs);
    check_incremental_reads(&source, &db.table("events")).await;

    // Blocks of `batch_size` rows, each batch carrying the origin.
    let name = db.table("big");
    let mut req = request(table(serde_json::json!({ "name": name })));
    req.batch_size = 1000;
    let stream = source.read(req).await.unwrap();
    let mut sizes = Vec::new();
    let mut sum = 0i64;
    let mut batches = stream.into_batches();
    while let Some(item) = batches.next().await {
        let item = item.unwrap();
        assert_eq!(&*item.origin, format!("crm:{name}"));
        sizes.push(item.batch.num_rows());
        let ids = item
            .batch
            .column_by_name("id")
            .unwrap()
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        sum += ids.iter().flatten().sum::<i64>();
    }
    assert_eq!(sizes, [1000, 1000, 501]);
    assert_eq!(sum, 2501 * 2502 / 2);
    db.drop().await;
}

/// The incremental checks shared by both drivers: `since` inclusive and `until` exclusive on
/// every cursor type, bound as parameters (a quote in a text cursor is data), also on a query.
async fn check_incremental_reads(source: &OdbcSource, events: &str) {
    let ids = |batch: &RecordBatch| -> Vec<i32> {
        let a = batch.column_by_name("id").unwrap();
        let mut v: Vec<i32> = a
            .as_any()
            .downcast_ref::<Int32Array>()
            .unwrap()
            .values()
            .to_vec();
        v.sort();
        v
    };
    let micros = |rfc3339: &str| {
        chrono::DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .timestamp_micros()
    };
    let read = |since: Option<(&str, CursorValue)>, until: Option<(&str, CursorValue)>| {
        let mut req = request(table(serde_json::json!({ "name": events })));
        req.since = since.map(|(c, v)| (c.to_string(), v));
        req.until = until.map(|(c, v)| (c.to_string(), v));
        async move { ids(&read_one(source, req).await) }
    };
    let at = |s: &str| CursorValue::TimestampUtc(micros(s));
    assert_eq!(
        read(Some(("at", at("2024-01-01T10:00:00Z"))), None).await,
        [1, 2, 3]
    );
    assert_eq!(
        read(Some(("at", at("2024-01-01T10:00:00.000001Z"))), None).await,
        [2, 3]
    );
    assert_eq!(
        read(
            Some(("at", at("2024-01-01T10:00:00Z"))),
            Some(("at", at("2024-01-01T11:00:00Z")))
        )
        .await,
        [1, 2]
    );
    assert_eq!(
        read(Some(("id", CursorValue::Int(2))), None).await,
        [2, 3, 4]
    );
    assert_eq!(
        read(
            Some(("id", CursorValue::Int(2))),
            Some(("id", CursorValue::Int(4)))
        )
        .await,
        [2, 3]
    );
    assert_eq!(
        read(
            Some(("day", CursorValue::Date(support::days("2024-01-02")))),
            None
        )
        .await,
        [2, 3]
    );
    assert_eq!(
        read(Some(("who", CursorValue::Text("o'brien".into()))), None).await,
        [2, 3]
    );
    let amount = |unscaled: &str| CursorValue::Decimal {
        unscaled: unscaled.into(),
        scale: 2,
    };
    assert_eq!(read(Some(("amount", amount("250"))), None).await, [2, 3]);
    assert_eq!(
        read(
            Some(("amount", amount("100"))),
            Some(("amount", amount("375")))
        )
        .await,
        [1, 2]
    );

    // A custom query is wrapped, so the bounds apply to it too.
    let mut req = request(table(serde_json::json!({
        "name": "events",
        "query": format!("SELECT id, at FROM {events} WHERE id <> 3;"),
    })));
    req.since = Some(("at".into(), at("2024-01-01T10:00:00Z")));
    assert_eq!(ids(&read_one(source, req).await), [1, 2]);
}

#[tokio::test]
async fn postgres_types_without_a_lossless_mapping_need_a_cast() {
    let Some(cs) = pg_connection_string("") else {
        return;
    };
    let Some(db) = PgSchema::create("trib_odbc_pg_cast").await else {
        return;
    };
    db.exec(
        "CREATE TABLE $S.plans (id int4, price money, every interval, x numeric);
         INSERT INTO $S.plans VALUES (1, 12.5, '1 day 2 hours', 'NaN'), (2, NULL, NULL, 1.5);
         CREATE TABLE $S.dates (id int4, d date);
         INSERT INTO $S.dates VALUES (1, '2024-01-01'), (2, 'infinity');",
    )
    .await;
    let source = odbc(&cs);
    let name = db.table("plans");
    let err = read_all(&source, request(table(serde_json::json!({ "name": name }))))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, SourceError::UnsupportedType { .. }), "{msg}");
    assert!(
        msg.contains(&format!("table {name}, column price: type money")),
        "{msg}"
    );
    assert!(msg.contains("cast: { price: text }"), "{msg}");

    // Cast: PostgreSQL renders the text. `x` holds NaN, which no decimal can: a bad value.
    let casts = serde_json::json!({ "name": name, "cast": { "price": "text" } });
    let err = read_all(&source, request(table(casts))).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, SourceError::BadValue { .. }), "{msg}");
    assert!(
        msg.contains("column x") && msg.contains("value NaN"),
        "{msg}"
    );

    let casts = serde_json::json!({ "name": name, "cast": { "price": "text", "x": "text" } });
    let batch = order_by_id(&read_one(&source, request(table(casts))).await);
    assert_eq!(texts(&batch, "price"), ["$12.50", "NULL"]);
    assert_eq!(texts(&batch, "every"), ["1 day 02:00:00", "NULL"]);
    assert_eq!(texts(&batch, "x"), ["NaN", "1.5"]);

    // A date the driver would turn into today is an error naming the value.
    let err = read_all(
        &source,
        request(table(serde_json::json!({ "name": db.table("dates") }))),
    )
    .await
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, SourceError::BadValue { .. }), "{msg}");
    assert!(
        msg.contains("column d (date)") && msg.contains("value infinity"),
        "{msg}"
    );

    // A cast naming a column the table does not have.
    let err = read_all(
        &source,
        request(table(
            serde_json::json!({ "name": name, "cast": { "nope": "text" } }),
        )),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
    db.drop().await;
}

#[tokio::test]
async fn postgres_values_longer_than_the_driver_declares_fail_naming_the_column() {
    let Some(cs) = pg_connection_string("") else {
        return;
    };
    let Some(db) = PgSchema::create("trib_odbc_pg_long").await else {
        return;
    };
    db.exec(
        "CREATE TABLE $S.docs (id int4, doc json);
         INSERT INTO $S.docs VALUES (1, json_build_object('k', repeat('x', 3000)));",
    )
    .await;
    let name = db.table("docs");
    // psqlODBC declares json as VARCHAR(255) (`MaxVarcharSize`): the value does not fit.
    let err = read_all(
        &odbc(&cs),
        request(table(serde_json::json!({ "name": name }))),
    )
    .await
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("column doc"), "{msg}");
    assert!(msg.contains("MaxVarcharSize"), "{msg}");
    // Raising the driver's limit loads it whole.
    let cs = pg_connection_string("MaxVarcharSize=65535;").unwrap();
    let batch = read_one(
        &odbc(&cs),
        request(table(serde_json::json!({ "name": name }))),
    )
    .await;
    let doc = batch.column_by_name("doc").unwrap();
    let doc = doc.as_any().downcast_ref::<StringArray>().unwrap();
    assert_eq!(doc.value(0).len(), 3000 + "{\"k\" : \"\"}".len());
    db.drop().await;
}

#[tokio::test]
async fn postgres_quoted_names_missing_tables_and_dropping_the_stream_early() {
    let Some(cs) = pg_connection_string("UseDeclareFetch=1;Fetch=100;") else {
        return;
    };
    let Some(db) = PgSchema::create("trib_odbc_pg_quoted").await else {
        return;
    };
    db.exec(
        "CREATE TABLE $S.\"Mixed Case\" (\"Id\" int4, \"select\" text);
         INSERT INTO $S.\"Mixed Case\" SELECT g, 'v' || g FROM generate_series(1, 50) g;",
    )
    .await;
    let source = odbc(&cs);
    let name = format!("{}.\"Mixed Case\"", db.schema);
    let mut req = request(table(serde_json::json!({ "name": name })));
    req.batch_size = 10;
    req.since = Some(("Id".into(), CursorValue::Int(41)));
    let batch = read_one(&source, req.clone()).await;
    let names: Vec<&String> = batch
        .schema_ref()
        .fields()
        .iter()
        .map(|f| f.name())
        .collect();
    assert_eq!(names, ["Id", "select"]);
    let mut ids: Vec<String> = texts(&batch, "Id");
    ids.sort_by_key(|v| v.parse::<i32>().unwrap());
    assert_eq!(ids, (41..=50).map(|i| i.to_string()).collect::<Vec<_>>());

    let err = read_all(
        &source,
        request(table(serde_json::json!({ "name": db.table("missing") }))),
    )
    .await
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, SourceError::Query { .. }), "{msg}");
    assert!(msg.contains("does not exist on connection crm"), "{msg}");
    assert!(msg.contains(&db.table("missing")), "{msg}");

    // One batch, then the stream is dropped: the reader ends its transaction, so the schema
    // can be dropped (which would wait while a snapshot held the table).
    req.since = None;
    let stream = source.read(req).await.unwrap();
    let mut batches = stream.into_batches();
    let first = batches.next().await.unwrap().unwrap();
    assert_eq!(first.batch.num_rows(), 10);
    drop(batches);
    tokio::time::timeout(std::time::Duration::from_secs(20), db.drop())
        .await
        .expect("the reader released the table");
}

// ---------------------------------------------------------------------------------------------
// MariaDB
// ---------------------------------------------------------------------------------------------

/// A database of its own for one test.
struct MariaDb {
    admin: mysql_async::Conn,
    name: String,
    url: String,
}

impl MariaDb {
    async fn create() -> Option<MariaDb> {
        let base = support::mysql_url();
        let opts = match mysql_async::Opts::from_url(&base) {
            Ok(o) => o,
            Err(e) => return support::unavailable("MariaDB", e),
        };
        let mut admin = match mysql_async::Conn::new(opts).await {
            Ok(c) => c,
            Err(e) => return support::unavailable("MariaDB", e),
        };
        let name = support::unique_name("tt_odbc");
        admin
            .query_drop(format!(
                "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
            ))
            .await
            .unwrap();
        admin.query_drop(format!("USE `{name}`")).await.unwrap();
        let mut url = url::Url::parse(&base).unwrap();
        url.set_path(&format!("/{name}"));
        Some(MariaDb {
            admin,
            name,
            url: url.to_string(),
        })
    }

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
}

/// The fidelity table of `mysql.rs`, same DDL and values.
const MARIADB_EVERYTHING: [&str; 3] = [
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
    "SET SESSION time_zone = '+02:00'",
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
];

#[tokio::test]
async fn mariadb_fidelity_table_matches_the_native_connector() {
    let Some(mut db) = MariaDb::create().await else {
        return;
    };
    let Some(cs) = mariadb_connection_string(&db.name, "") else {
        return db.drop_db().await;
    };
    for sql in MARIADB_EVERYTHING {
        db.exec(sql).await;
    }
    let native = MysqlSource::new("shop", &db.url).unwrap();
    let native = read_one(
        &native,
        request(table(serde_json::json!({ "name": "everything" }))),
    )
    .await;
    let source = odbc(&cs);
    // By name (the connection's database) and qualified: the same.
    for name in ["everything".to_string(), format!("{}.everything", db.name)] {
        let via_odbc = read_one(&source, request(table(serde_json::json!({ "name": name })))).await;
        assert_eq!(via_odbc.num_rows(), 3);
        assert_same_columns(&native, &via_odbc, &[]);
    }

    // A custom query has no catalog type names: `YEAR` is what the driver says (an unsigned
    // SMALLINT, widened) and `TIMESTAMP` loads without zone, as the UTC wall clock.
    let query = format!("SELECT id, yr, ts FROM `{}`.everything", db.name);
    let by_query = order_by_id(
        &read_one(
            &source,
            request(table(
                serde_json::json!({ "name": "everything", "query": query }),
            )),
        )
        .await,
    );
    let schema = by_query.schema();
    assert_eq!(schema.field(1).data_type(), &DataType::Int32);
    assert_eq!(
        schema.field(2).data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, None)
    );
    assert_eq!(texts(&by_query, "yr"), ["1901", "2155", "NULL"]);
    assert_eq!(
        texts(&by_query, "ts"),
        ["2024-06-01T10:00:00.000001", "1970-01-01T00:00:01", "NULL"]
    );
    db.drop_db().await;
}

#[tokio::test]
async fn mariadb_incremental_reads_and_unsupported_types() {
    let Some(mut db) = MariaDb::create().await else {
        return;
    };
    let Some(cs) = mariadb_connection_string(&db.name, "") else {
        return db.drop_db().await;
    };
    db.exec(
        "CREATE TABLE events (id INT, at TIMESTAMP(6) NULL, day DATE, who VARCHAR(20), amount DECIMAL(8,2))",
    )
    .await;
    db.exec("SET SESSION time_zone = '+00:00'").await;
    db.exec(
        "INSERT INTO events VALUES
           (1, '2024-01-01 10:00:00', '2024-01-01', 'ann', 1.00),
           (2, '2024-01-01 10:00:00.000001', '2024-01-02', 'o''brien', 2.50),
           (3, '2024-01-01 11:00:00', '2024-01-03', 'zoe', 3.75),
           (4, NULL, NULL, NULL, NULL)",
    )
    .await;
    let source = odbc(&cs);
    check_incremental_reads(&source, &format!("{}.events", db.name)).await;

    db.exec("CREATE TABLE money (id INT, amount DECIMAL(65,2), g GEOMETRY)")
        .await;
    db.exec(
        "INSERT INTO money VALUES \
         (1, 12345678901234567890123456789012345678901234567890123456789012.34, POINT(1, 2)), \
         (2, NULL, NULL)",
    )
    .await;
    let name = format!("{}.money", db.name);
    let err = read_all(&source, request(table(serde_json::json!({ "name": name }))))
        .await
        .unwrap_err();
    match &err {
        SourceError::UnsupportedType { column, .. } => assert_eq!(column, "amount"),
        other => panic!("expected UnsupportedType, got {other}"),
    }
    let mut t = table(serde_json::json!({ "name": name }));
    t.cast = BTreeMap::from([("amount".to_string(), ColumnCast::Text)]);
    let err = read_all(&source, request(t.clone())).await.unwrap_err();
    assert!(
        matches!(&err, SourceError::UnsupportedType { column, source_type, .. }
            if column == "g" && source_type == "GEOMETRY"),
        "{err}"
    );
    t.cast.insert("g".to_string(), ColumnCast::Text);
    let batch = order_by_id(&read_one(&source, request(t)).await);
    assert_eq!(
        texts(&batch, "amount"),
        [
            "12345678901234567890123456789012345678901234567890123456789012.34",
            "NULL"
        ]
    );
    assert_eq!(texts(&batch, "g"), ["POINT(1 2)", "NULL"]);
    db.drop_db().await;
}

// ---------------------------------------------------------------------------------------------
// Connecting
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn validate_reports_the_dbms_and_connection_errors_name_driver_or_dsn() {
    let Some(pg) = pg_connection_string("") else {
        return;
    };
    let detail = odbc(&pg).check_detail().await.unwrap().unwrap();
    assert!(detail.starts_with("PostgreSQL "), "{detail}");
    assert!(detail.chars().any(|c| c.is_ascii_digit()), "{detail}");

    if let Some(db) = MariaDb::create().await {
        if let Some(cs) = mariadb_connection_string(&db.name, "") {
            let detail = odbc(&cs).check_detail().await.unwrap().unwrap();
            assert!(detail.contains("MariaDB"), "{detail}");
            // A wrong password: the server's refusal, without the password.
            let url = url::Url::parse(&support::mysql_url()).unwrap();
            let bad = format!(
                "Driver={{{MARIADB_DRIVER}}};Server={};Port={};User=no_such_user_tributary;Password=Sup3rSecretPw;",
                url.host_str().unwrap_or("127.0.0.1"),
                url.port().unwrap_or(3306),
            );
            let err = odbc(&bad).check().await.unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, SourceError::Connect { .. }), "{msg}");
            assert!(msg.contains("no_such_user_tributary"), "{msg}");
            assert!(!msg.contains("Sup3rSecretPw"), "{msg}");
            assert!(msg.contains("Password=***"), "{msg}");
        }
        db.drop_db().await;
    }

    // A driver that is not installed: named, and the password never shown.
    let err = odbc("Driver={No Such Driver 42};Server=127.0.0.1;UID=app;PWD=Sup3rSecretPw;")
        .check()
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, SourceError::Connect { .. }), "{msg}");
    assert!(msg.contains("No Such Driver 42"), "{msg}");
    assert!(msg.contains("odbcinst -q -d"), "{msg}");
    assert!(!msg.contains("Sup3rSecretPw"), "{msg}");

    // A data source name that does not exist: named too; `read` fails the same way.
    let source = odbc("DSN=no_such_dsn_tributary;Pwd={Sup3r;SecretPw}");
    let err = source
        .read(request(table(serde_json::json!({ "name": "t" }))))
        .await
        .err()
        .unwrap();
    let msg = err.to_string();
    assert!(matches!(err, SourceError::Connect { .. }), "{msg}");
    assert!(msg.contains("no_such_dsn_tributary"), "{msg}");
    assert!(!msg.contains("Sup3r") && !msg.contains("SecretPw"), "{msg}");
    // A missing driver or data source is configuration: retrying cannot help.
    assert_eq!(err.class(), tributary_core::ErrorClass::Config, "{msg}");
    assert!(!err.is_retryable());
}
