//! An independent reader (Python `deltalake` and `polars`) opens the tables we write and sees the
//! same schema and rows.

use crate::support::*;

#[test]
fn python_deltalake_reads_our_bronze_table() {
    let p = TestProject::new(
        "name: t\nlake: ./lake\nconnections:\n  erp: { type: sqlite, path: erp.db }\n",
    );
    let conn = rusqlite::Connection::open(p.path().join("erp.db")).unwrap();
    conn.execute_batch(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price DECIMAL(12,2), day DATE, at DATETIME, data BLOB, ok BOOLEAN, w REAL);
         INSERT INTO items VALUES (1, 'Zoë', '12.34', '0001-01-01', '2026-03-29 01:59:59.999999', x'00ff', 1, 1.5),
                                  (2, NULL, '-0.01', '9999-12-31', '2026-03-29 03:00:00', NULL, 0, NULL),
                                  (3, 'line\nbreak \"q\"', NULL, NULL, NULL, x'', NULL, -2.25);",
    )
    .unwrap();
    p.write(
        "ingest/erp.yaml",
        "connection: erp\ntables:\n  - name: items\n",
    );
    p.ok(&["run"]);
    let path = p.path().join("lake/bronze/erp_items");
    let script = format!(
        r#"
import json
from deltalake import DeltaTable
import polars as pl
dt = DeltaTable({path:?})
schema = json.loads(dt.schema().to_json())
df = pl.read_delta({path:?})
print(json.dumps({{
  "version": dt.version(),
  "fields": [[f["name"], f["type"] if isinstance(f["type"], str) else f["type"]["type"]] for f in schema["fields"]],
  "rows": df.height,
  "names": df.sort("id")["name"].to_list(),
  "price_sum": str(df["price"].sum()),
  "days": [str(d) if d is not None else None for d in df.sort("id")["day"].to_list()],
  "at": [str(d) if d is not None else None for d in df.sort("id")["at"].to_list()],
  "data": [d.hex() if d is not None else None for d in df.sort("id")["data"].to_list()],
}}))
"#,
        path = path.to_string_lossy()
    );
    let Some(out) = python(&script) else { return };
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["version"], 0);
    assert_eq!(v["rows"], 3);
    let fields: Vec<(String, String)> = v["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f[0].as_str().unwrap().to_string(),
                f[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expect = [
        ("id", "long"),
        ("name", "string"),
        ("price", "decimal(12,2)"),
        ("day", "date"),
        ("at", "timestamp_ntz"),
        ("data", "binary"),
        ("ok", "boolean"),
        ("w", "double"),
        ("_tributary_loaded_at", "timestamp"),
        ("_tributary_run_id", "string"),
        ("_tributary_source", "string"),
    ];
    let expect: Vec<(String, String)> = expect
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(fields, expect);
    assert_eq!(
        v["names"],
        serde_json::json!(["Zoë", null, "line\nbreak \"q\""])
    );
    assert_eq!(v["price_sum"], "12.33");
    assert_eq!(
        v["days"],
        serde_json::json!(["0001-01-01", "9999-12-31", null])
    );
    assert_eq!(
        v["at"],
        serde_json::json!(["2026-03-29 01:59:59.999999", "2026-03-29 03:00:00", null])
    );
    assert_eq!(v["data"], serde_json::json!(["00ff", null, ""]));
}
