//! Throughput settings end to end: memory stays flat as the table grows, parallel reads load
//! the same rows as one read, and the writer's compression setting reaches the Parquet files.

use crate::support::{PgSchema, TestProject, pg_url, stderr};

/// `peak_rss_mib=N` from the "Run finished." log line.
fn peak_rss_mib(log: &str) -> u64 {
    log.lines()
        .filter(|l| l.contains("Run finished."))
        .find_map(|l| {
            let rest = l.split("peak_rss_mib=").nth(1)?;
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no peak_rss_mib in the run's log:\n{log}"))
}

async fn orders(db: &PgSchema, table: &str, rows: u64) {
    db.client
        .batch_execute(&format!(
            "CREATE TABLE {s}.{table} (id bigint PRIMARY KEY, customer_id int, order_date date,
               status varchar(16), total numeric(12,2), currency char(3), created_at timestamptz,
               note text, paid boolean);
             INSERT INTO {s}.{table} SELECT g, g % 50000, date '2024-01-01' + (g % 700)::int,
               (ARRAY['new','paid','shipped','returned'])[1 + g % 4], (g % 100000) / 100.0, 'EUR',
               timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second',
               CASE WHEN g % 10 = 0 THEN NULL ELSE 'a note about order number ' || g END, g % 3 = 0
             FROM generate_series(1, {rows}) g;
             ANALYZE {s}.{table};",
            s = db.schema
        ))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn peak_memory_stays_within_the_budget_when_the_table_grows_fivefold() {
    let Some(db) = PgSchema::new().await else {
        return;
    };
    let s = db.schema.clone();
    orders(&db, "small", 200_000).await;
    orders(&db, "large", 1_000_000).await;
    let budget_mib = 256;
    let peak = |table: &str| {
        let p = TestProject::new(&format!(
            "name: t\nlake: ./lake\nmemory_limit: {budget_mib}MiB\nconnections:\n  erp: {{ type: postgres, url: \"{}\" }}\n",
            pg_url()
        ));
        p.write(
            "ingest/erp.yaml",
            &format!("connection: erp\ntables:\n  - name: {s}.{table}\n"),
        );
        let out = p.run(&["-v", "run"]);
        let log = stderr(&out);
        assert_eq!(out.status.code(), Some(0), "{log}");
        let loaded = p.query_i64(&format!("SELECT count(*) FROM bronze.erp_{table}"));
        (peak_rss_mib(&log), loaded)
    };
    let (small, small_rows) = tokio::task::block_in_place(|| peak("small"));
    let (large, large_rows) = tokio::task::block_in_place(|| peak("large"));
    assert_eq!((small_rows, large_rows), (200_000, 1_000_000));
    eprintln!("peak RSS: {small} MiB for 200k rows, {large} MiB for 1M rows");
    assert!(
        large <= budget_mib,
        "{large} MiB is over the {budget_mib} MiB budget"
    );
    // Five times the rows may not cost five times the memory: at most a quarter more.
    assert!(
        large * 4 <= small * 5,
        "peak RSS grew from {small} MiB to {large} MiB for 5x the rows"
    );
    db.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_parallel_zstd_load_equals_a_single_snappy_load() {
    let Some(db) = PgSchema::new().await else {
        return;
    };
    let s = db.schema.clone();
    orders(&db, "orders", 50_000).await;
    let load = |extra_project: &str, extra_table: &str| {
        let p = TestProject::new(&format!(
            "name: t\nlake: ./lake\n{extra_project}connections:\n  erp: {{ type: postgres, url: \"{}\" }}\n",
            pg_url()
        ));
        p.write(
            "ingest/erp.yaml",
            &format!("connection: erp\ntables:\n  - name: {s}.orders\n{extra_table}"),
        );
        let out = p.run(&["run"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        p
    };
    let single = load(
        "writer: { compression: snappy }\n",
        "    parallel: { partitions: 1 }\n",
    );
    let parallel = load(
        "writer: { compression: zstd(3), row_group_rows: 8192 }\n",
        "    parallel: { column: id, partitions: 4, connections: 2 }\n",
    );
    let digest = "SELECT count(*) AS n, sum(id) AS ids, sum(total) AS totals, \
        count(note) AS notes, sum(length(note)) AS note_chars, count(DISTINCT status) AS statuses, \
        min(created_at) AS first, max(order_date) AS last, sum(CASE WHEN paid THEN 1 ELSE 0 END) AS paid \
        FROM bronze.erp_orders";
    let a = tokio::task::block_in_place(|| single.query(digest));
    let b = tokio::task::block_in_place(|| parallel.query(digest));
    assert_eq!(a, b);
    assert_eq!(a[0]["n"], serde_json::json!(50_000));
    // The codec and row group size reach the files (read back by Python's pyarrow, an
    // independent reader).
    let files: Vec<String> = parallel
        .lake_listing()
        .into_iter()
        .map(|(p, _)| p.display().to_string())
        .filter(|p| p.ends_with(".parquet"))
        .collect();
    assert!(!files.is_empty());
    let script = format!(
        "import pyarrow.parquet as pq\nfor f in {files:?}:\n    m = pq.ParquetFile(f).metadata\n    \
         print(m.row_group(0).column(0).compression, max(m.row_group(i).num_rows for i in range(m.num_row_groups)))\n"
    );
    if let Some(out) = crate::support::python(&script) {
        for line in out.lines() {
            let (codec, rows) = line.split_once(' ').unwrap();
            assert_eq!(codec, "ZSTD", "{out}");
            assert!(rows.parse::<u64>().unwrap() <= 8192, "{out}");
        }
    }
    // An unknown codec is a configuration error naming the key.
    let p = TestProject::new("name: t\nlake: ./lake\nwriter: { compression: brotli }\n");
    let out = p.run(&["validate"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("writer.compression"),
        "{}",
        stderr(&out)
    );
    db.drop_schema().await;
}
