//! Type fidelity through the whole load: source → Arrow → Delta → an independent reader
//! (Python `polars` over `deltalake`), compared value by value.

use crate::support::*;

fn read_back(p: &TestProject, table: &str, order_by: &str) -> Option<serde_json::Value> {
    let path = p.path().join("lake/bronze").join(table);
    let script = format!(
        r#"
import json
from deltalake import DeltaTable
import polars as pl
dt = DeltaTable({path:?})
schema = json.loads(dt.schema().to_json())
df = pl.read_delta({path:?}).sort({order_by:?}).drop([c for c in ["_tributary_loaded_at", "_tributary_run_id", "_tributary_source"]])
rows = []
for r in df.iter_rows(named=True):
    rows.append({{k: (v.hex() if isinstance(v, bytes) else (str(v) if v is not None else None)) for k, v in r.items()}})
print(json.dumps({{"types": {{f["name"]: (f["type"] if isinstance(f["type"], str) else f["type"]["type"]) for f in schema["fields"]}}, "rows": rows}}))
"#,
        path = path.to_string_lossy()
    );
    let out = python(&script)?;
    Some(serde_json::from_str(out.trim()).unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_edge_values_survive_the_lake() {
    let Some(db) = PgSchema::new().await else {
        return;
    };
    let s = &db.schema;
    db.client
        .batch_execute(&format!(
            "CREATE TABLE {s}.t (id int PRIMARY KEY, d numeric(38,10), big bigint, day date, ts timestamp, tstz timestamptz,
                                 txt text, b bytea, u uuid, j jsonb, arr int4[], f float8);
             INSERT INTO {s}.t VALUES
              (1, 9999999999999999999999999999.9999999999, 9223372036854775807, '0001-01-01', '2026-03-29 01:59:59.999999',
               '2026-03-29 01:59:59.999999+01', E'emoji 🚀, newline\n, \"quotes\" and ''single''', '\\x00ff00', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11',
               '{{\"k\": [1, 2]}}', '{{1,NULL,3}}', 1.5),
              (2, -0.0000000001, -9223372036854775808, '9999-12-31', '1970-01-01 00:00:00', '2026-03-29 03:00:00+02',
               '', '\\x', NULL, NULL, '{{}}', 'NaN'),
              (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);"
        ))
        .await
        .unwrap();
    let p = TestProject::new(&format!(
        "name: t\nlake: ./lake\nconnections:\n  pg: {{ type: postgres, url: \"{}\" }}\n",
        pg_url()
    ));
    p.write(
        "ingest/pg.yaml",
        &format!("connection: pg\ntables:\n  - name: {s}.t\n"),
    );
    tokio::task::block_in_place(|| p.ok(&["run"]));
    let Some(v) = tokio::task::block_in_place(|| read_back(&p, "pg_t", "id")) else {
        return;
    };
    let types = &v["types"];
    assert_eq!(types["d"], "decimal(38,10)");
    assert_eq!(types["big"], "long");
    assert_eq!(types["day"], "date");
    assert_eq!(types["ts"], "timestamp_ntz");
    assert_eq!(types["tstz"], "timestamp");
    assert_eq!(types["arr"], "array");
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows[0]["d"], "9999999999999999999999999999.9999999999");
    assert_eq!(rows[1]["d"], "-1E-10");
    assert_eq!(rows[0]["big"], "9223372036854775807");
    assert_eq!(rows[1]["big"], "-9223372036854775808");
    assert_eq!(rows[0]["day"], "0001-01-01");
    assert_eq!(rows[1]["day"], "9999-12-31");
    assert_eq!(rows[0]["ts"], "2026-03-29 01:59:59.999999");
    // Both sides of the Paris DST jump, as UTC instants one microsecond apart.
    assert_eq!(rows[0]["tstz"], "2026-03-29 00:59:59.999999+00:00");
    assert_eq!(rows[1]["tstz"], "2026-03-29 01:00:00+00:00");
    assert_eq!(
        rows[0]["txt"],
        "emoji 🚀, newline\n, \"quotes\" and 'single'"
    );
    assert_eq!(rows[1]["txt"], "");
    assert_eq!(rows[0]["b"], "00ff00");
    assert_eq!(rows[1]["b"], "");
    assert_eq!(rows[0]["u"], "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    assert_eq!(rows[0]["j"], "{\"k\": [1, 2]}");
    assert_eq!(rows[0]["arr"], "[1, None, 3]");
    assert_eq!(rows[1]["arr"], "[]");
    assert_eq!(rows[1]["f"], "nan");
    for (k, val) in rows[2].as_object().unwrap() {
        if k != "id" {
            assert!(val.is_null(), "{k} should be NULL: {val}");
        }
    }
    db.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_edge_values_survive_the_lake() {
    let url = mysql_url();
    let pool = mysql_async::Pool::new(url.as_str());
    let mut conn = match pool.get_conn().await {
        Ok(c) => c,
        Err(e) => return unavailable("MariaDB", e).unwrap_or(()),
    };
    use mysql_async::prelude::Queryable;
    let db = unique_name("tf");
    conn.query_drop(format!(
        "CREATE DATABASE {db} CHARACTER SET utf8mb4;
         CREATE TABLE {db}.t (id int PRIMARY KEY, ub bigint unsigned, d decimal(38,10), dt datetime(6), ts timestamp(6) NULL,
                              day date, tm time(6), txt text, bl blob, flag bit(1));
         SET time_zone = '+02:00';
         INSERT INTO {db}.t VALUES
           (1, 18446744073709551615, -1234567890123456789012345678.0123456789, '2026-03-29 01:59:59.999999',
            '2026-03-29 03:00:00.000001', '1000-01-01', '-838:59:59', 'Zoë 🚀\\n\\'q\\' \\\\', x'0001', b'1'),
           (2, 0, 0.0000000001, '9999-12-31 23:59:59.999999', NULL, '9999-12-31', '12:00:00.5', '', x'', b'0'),
           (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);"
    ))
    .await
    .unwrap();
    let base = url.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap();
    let p = TestProject::new(&format!(
        "name: t\nlake: ./lake\nconnections:\n  my: {{ type: mysql, url: \"{base}/{db}\" }}\n"
    ));
    p.write("ingest/my.yaml", "connection: my\ntables:\n  - name: t\n");
    tokio::task::block_in_place(|| p.ok(&["run"]));
    let read = tokio::task::block_in_place(|| read_back(&p, "my_t", "id"));
    conn.query_drop(format!("DROP DATABASE {db}"))
        .await
        .unwrap();
    let Some(v) = read else { return };
    assert_eq!(v["types"]["ub"], "decimal(20,0)");
    assert_eq!(v["types"]["dt"], "timestamp_ntz");
    assert_eq!(v["types"]["ts"], "timestamp");
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows[0]["ub"], "18446744073709551615");
    assert_eq!(rows[0]["d"], "-1234567890123456789012345678.0123456789");
    assert_eq!(rows[1]["d"], "1E-10");
    assert_eq!(rows[0]["dt"], "2026-03-29 01:59:59.999999");
    assert_eq!(rows[1]["dt"], "9999-12-31 23:59:59.999999");
    // Inserted in a +02:00 session: the instant is 01:00:00.000001 UTC.
    assert_eq!(rows[0]["ts"], "2026-03-29 01:00:00.000001+00:00");
    assert_eq!(rows[0]["day"], "1000-01-01");
    assert_eq!(rows[0]["tm"], "-838:59:59");
    assert_eq!(rows[1]["tm"], "12:00:00.500000");
    assert_eq!(rows[0]["txt"], "Zoë 🚀\n'q' \\");
    assert_eq!(rows[0]["bl"], "0001");
    assert_eq!(rows[0]["flag"], "True");
    assert_eq!(rows[1]["flag"], "False");
    for (k, val) in rows[2].as_object().unwrap() {
        if k != "id" {
            assert!(val.is_null(), "{k} should be NULL: {val}");
        }
    }
}
