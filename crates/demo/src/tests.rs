//! Tests of the sample project: byte-identical data from the seed, valid project files.
#![allow(clippy::unwrap_used)]

use super::*;
use std::io::Read as _;

use rusqlite::Connection;

fn query_i64(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

fn erp(dir: &Path) -> Connection {
    Connection::open(dir.join(ERP_DB)).unwrap()
}

/// A checksum of every table: counts, id sums and text lengths.
fn checksums(conn: &Connection) -> Vec<String> {
    [
        "SELECT count(*), sum(id), sum(length(name)), sum(length(email)), group_concat(DISTINCT country), sum(is_active), max(created_at) FROM customers",
        "SELECT count(*), sum(id), sum(length(name)), sum(unit_price * 100), sum(weight_kg * 1000), max(created_at) FROM products",
        "SELECT count(*), sum(id), sum(customer_id), sum(length(status)), sum(total * 100), max(updated_at), min(created_at), sum(length(currency || created_at || updated_at)) FROM orders",
        "SELECT count(*), sum(order_id), sum(line_no * product_id), sum(quantity), sum(unit_price * 100) FROM order_items",
    ]
    .iter()
    .map(|sql| {
        conn.query_row(sql, [], |r| {
            let n = r.as_ref().column_count();
            let mut parts = Vec::new();
            for i in 0..n {
                parts.push(format!("{:?}", r.get_ref(i)?));
            }
            Ok(parts.join("|"))
        })
        .unwrap()
    })
    .collect()
}

fn read_all(dir: &Path, rel: &Path) -> Vec<u8> {
    std::fs::read(dir.join(rel)).unwrap()
}

#[test]
fn dates_match_chrono() {
    for days in [-1, 0, 59, 365, 10_957, 20_453, 20_780, 2_932_896] {
        let d = chrono::DateTime::from_timestamp(days * 86_400, 0).unwrap();
        assert_eq!(fmt_date(days), d.format("%Y-%m-%d").to_string());
        let (y, m, dd) = civil_from_days(days);
        assert_eq!(days_from_civil(y, m, dd), days);
    }
    let us = 1_795_000_123_456_789i64;
    let d = chrono::DateTime::from_timestamp_micros(us).unwrap();
    assert_eq!(fmt_ts(us), d.format("%Y-%m-%d %H:%M:%S%.6f").to_string());
    assert_eq!(
        parse_day("2026-11-23 23:59:59.000001").unwrap(),
        days_from_civil(2026, 11, 23)
    );
    assert!(parse_day("yesterday").is_err());
    assert_eq!(fmt_cents(1999), "19.99");
    assert_eq!(fmt_cents(1200), "12.00");
    assert_eq!(email_local("Łukasz Żółć-Weiß"), "lukasz.zolc.weiss");
    assert_eq!(yaml_string("acme"), "acme");
    assert_eq!(yaml_string("my project: x"), "\"my project: x\"");
    assert_eq!(yaml_string("yes"), "\"yes\"");
}

#[test]
fn demo_project_contents() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("acme-demo");
    let started = std::time::Instant::now();
    let files = write_demo_project(&dir, false).unwrap();
    eprintln!("demo project written in {:?}: {files:?}", started.elapsed());

    let names: Vec<&str> = files.erp_rows.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(names, ["customers", "products", "orders", "order_items"]);
    let conn = erp(&dir);
    for (table, n) in &files.erp_rows {
        assert_eq!(
            query_i64(&conn, &format!("SELECT count(*) FROM {table}")),
            *n as i64,
            "{table}"
        );
    }
    assert_eq!(files.erp_rows[0].1, 5_000);
    assert_eq!(files.erp_rows[1].1, 500);
    assert_eq!(files.erp_rows[2].1, 100_000);
    let items = files.erp_rows[3].1;
    assert!((240_000..=260_000).contains(&items), "{items}");

    // Declared types, as the SQLite connector sees them.
    let decl: Vec<(String, String)> = conn
        .prepare("SELECT name, type FROM pragma_table_info('orders')")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(decl[4], ("total".to_string(), "DECIMAL(12,2)".to_string()));
    assert_eq!(decl[7], ("updated_at".to_string(), "DATETIME".to_string()));

    // Orders: the period, the late updates, timestamps that never go backwards.
    let (min_c, max_u): (String, String) = conn
        .query_row(
            "SELECT min(created_at), max(updated_at) FROM orders",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(min_c.starts_with("2026-01-01 "), "{min_c}");
    assert!(max_u.starts_with("2026-11-23 "), "{max_u}");
    assert_eq!(min_c.len(), "2026-01-01 00:00:00.000000".len());
    assert_eq!(
        query_i64(
            &conn,
            "SELECT count(*) FROM orders WHERE updated_at < created_at"
        ),
        0
    );
    assert_eq!(
        query_i64(
            &conn,
            "SELECT count(*) FROM orders WHERE order_date <> substr(created_at, 1, 10)"
        ),
        0
    );
    let late = query_i64(
        &conn,
        "SELECT count(*) FROM orders WHERE julianday(updated_at) - julianday(created_at) >= 1",
    );
    assert!((4_000..=6_000).contains(&late), "{late} late updates");
    assert_eq!(
        query_i64(
            &conn,
            "SELECT count(*) FROM orders WHERE julianday(updated_at) - julianday(created_at) >= 1 AND status NOT IN ('shipped', 'returned')"
        ),
        0
    );
    let null_totals = query_i64(&conn, "SELECT count(*) FROM orders WHERE total IS NULL");
    assert!((5..=60).contains(&null_totals), "{null_totals}");
    assert_eq!(
        query_i64(&conn, "SELECT count(DISTINCT currency) FROM orders"),
        8
    );
    assert_eq!(
        query_i64(
            &conn,
            "SELECT count(*) FROM orders WHERE customer_id NOT IN (SELECT id FROM customers)"
        ),
        0
    );

    // order_items: exact duplicates, and totals equal to the sum of the distinct items.
    let dup_rows = query_i64(
        &conn,
        "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM order_items \
         GROUP BY order_id, line_no, product_id, quantity, unit_price HAVING n > 1)",
    );
    assert_eq!(dup_rows, DUPLICATE_ITEMS as i64);
    assert_eq!(
        query_i64(
            &conn,
            "SELECT count(*) FROM (SELECT DISTINCT order_id, line_no FROM order_items)"
        ),
        items as i64 - DUPLICATE_ITEMS as i64
    );
    let mismatched = query_i64(
        &conn,
        "SELECT count(*) FROM orders o JOIN (SELECT order_id, sum(quantity * unit_price) AS s \
         FROM (SELECT DISTINCT * FROM order_items) GROUP BY order_id) i ON i.order_id = o.id \
         WHERE o.total IS NOT NULL AND round(o.total * 100) <> round(i.s * 100)",
    );
    assert_eq!(mismatched, 0);
    assert_eq!(
        query_i64(&conn, "SELECT count(DISTINCT order_id) FROM order_items"),
        100_000
    );
    let per_order = query_i64(
        &conn,
        "SELECT max(n) FROM (SELECT count(DISTINCT line_no) AS n FROM order_items GROUP BY order_id)",
    );
    assert_eq!(per_order, 5);
    // Prices are written as text ('19.99'); the DECIMAL columns have NUMERIC affinity, so
    // SQLite stores them as REAL (or INTEGER for whole amounts like '12.00'), never with more
    // than 2 decimals.
    let classes: Vec<String> = conn
        .prepare("SELECT DISTINCT typeof(unit_price) FROM order_items ORDER BY 1")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(classes, ["integer", "real"]);
    let inexact = query_i64(
        &conn,
        "SELECT count(*) FROM products WHERE abs(unit_price * 100 - round(unit_price * 100)) > 1e-6",
    );
    assert_eq!(inexact, 0);

    // Text fidelity.
    for name in [
        "José Müller",
        "Zoë Ångström",
        "Łukasz Żółć",
        "北京贸易有限公司",
        "Ærø Fisk ApS",
        "Rocket Supplies 🚀",
    ] {
        assert_eq!(
            query_i64(
                &conn,
                &format!("SELECT count(*) FROM customers WHERE name = '{name}'")
            ),
            1,
            "{name}"
        );
    }
    let nulls: (i64, i64) = conn
        .query_row(
            "SELECT sum(email IS NULL), sum(city IS NULL) FROM customers",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(nulls.0 > 50 && nulls.1 > 20, "{nulls:?}");
    assert_eq!(
        query_i64(
            &conn,
            "SELECT count(*) FROM customers WHERE is_active NOT IN (0, 1)"
        ),
        0
    );

    // Landing files.
    let expected: Vec<PathBuf> = [
        "landing/exchange_rates/2026-11-20.csv",
        "landing/exchange_rates/2026-11-21.csv.gz",
        "landing/exchange_rates/2026-11-22.csv",
        "landing/exchange_rates/2026-11-23.csv",
        "landing/stores/stores.csv",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    assert_eq!(files.landing_files, expected);
    let plain = String::from_utf8(read_all(&dir, &expected[0])).unwrap();
    let lines: Vec<&str> = plain.lines().collect();
    assert_eq!(lines.len(), 9);
    assert_eq!(lines[0], "date,currency,rate_to_usd");
    assert_eq!(lines[1], "2026-11-20,USD,1.000000");
    assert!(lines[2].starts_with("2026-11-20,EUR,1.0"), "{}", lines[2]);
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(&read_all(&dir, &expected[1])[..])
        .read_to_string(&mut unzipped)
        .unwrap();
    assert!(
        unzipped.starts_with("date,currency,rate_to_usd\n2026-11-21,USD,1.000000\n"),
        "{unzipped}"
    );
    assert_eq!(unzipped.lines().count(), 9);
    let bom = read_all(&dir, &expected[2]);
    assert_eq!(&bom[..3], b"\xEF\xBB\xBF");
    assert!(bom[3..].starts_with(b"date,currency,rate_to_usd\n2026-11-22,"));
    let stores = String::from_utf8(read_all(&dir, &expected[4])).unwrap();
    assert_eq!(stores.lines().count(), 31);
    assert!(
        stores.starts_with("store_id;name;city;opened_on\n1;ACME Berlin;Berlin;20"),
        "{stores}"
    );
    assert!(
        stores.contains("\n7;\"Müller; Söhne Outlet\";Kraków;"),
        "{stores}"
    );
    assert!(stores.contains(";東京;"));

    // Project files.
    for rel in [
        "tributary.yaml",
        "ingest/erp.yaml",
        "ingest/landing.yaml",
        "README.md",
        ".gitignore",
    ] {
        assert!(dir.join(rel).is_file(), "{rel}");
    }
    assert!(!dir.join("data/erp.sqlite.partial").exists());
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(readme.contains("| `orders` | 100000 |"), "{readme}");
    assert!(readme.contains("Run `tributary demo --advance` to simulate a day of new and updated orders, then `tributary run` again: only the new and changed orders are appended."));
    assert!(readme.contains(
        r#"tributary query "SELECT status, count(*) FROM bronze.erp_orders GROUP BY status""#
    ));
    assert_eq!(
        std::fs::read_to_string(dir.join(".gitignore"))
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>(),
        ["lake/", ".tributary/"]
    );
}

#[test]
fn demo_config_is_valid() {
    let tmp = tempfile::tempdir().unwrap();
    // Only the configuration matters here; the database is written too, which is fine.
    write_demo_project(tmp.path(), false).unwrap();
    let project = tributary_connectors::load_project(tmp.path(), Some("ci")).unwrap();
    assert_eq!(project.config.lake, ".tributary/ci/lake");
    assert_eq!(project.config.state, "sqlite://.tributary/ci/state.db");
    assert!(tmp.path().join(CI_WORKFLOW_PATH).is_file());
    let project = tributary_connectors::load_project(tmp.path(), None).unwrap();
    assert_eq!(project.config.name, "acme");
    assert_eq!(project.config.lake, "./lake");
    let targets: Vec<String> = project.load_specs().iter().map(|s| s.target()).collect();
    assert_eq!(
        targets,
        [
            "bronze.erp_customers",
            "bronze.erp_products",
            "bronze.erp_orders",
            "bronze.erp_order_items",
            "bronze.landing_exchange_rates",
            "bronze.landing_stores",
        ]
    );
    let specs = project.load_specs();
    let orders = &specs[2].table;
    assert_eq!(orders.mode, tributary_core::config::LoadMode::Incremental);
    assert_eq!(orders.cursor.as_deref(), Some("updated_at"));
    assert_eq!(orders.primary_key, ["id"]);
    assert_eq!(
        orders.lookback,
        Some(tributary_core::config::LookbackSpec::Duration(
            tributary_core::Duration::parse("1h").unwrap()
        ))
    );
    let files = |i: usize| tributary_connectors::files::FilesTable::of(&specs[i].table).unwrap();
    assert_eq!(files(5).csv.unwrap().delimiter, ";");
    assert_eq!(files(4).glob.as_deref(), Some("exchange_rates/*.csv*"));
}

#[test]
fn deterministic() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let fa = write_demo_project(a.path(), false).unwrap();
    let fb = write_demo_project(b.path(), false).unwrap();
    assert_eq!(fa, fb);
    let (ca, cb) = (checksums(&erp(a.path())), checksums(&erp(b.path())));
    assert_eq!(ca, cb);
    assert!(
        ca[2].starts_with("Integer(100000)|Integer(5000050000)|"),
        "{ca:?}"
    );
    for rel in fa.landing_files.iter().map(PathBuf::as_path).chain(
        [
            "tributary.yaml",
            "ingest/erp.yaml",
            "ingest/landing.yaml",
            "README.md",
        ]
        .map(Path::new),
    ) {
        assert_eq!(
            read_all(a.path(), rel),
            read_all(b.path(), rel),
            "{}",
            rel.display()
        );
    }
    // The same sequence of changes gives the same result too.
    assert_eq!(
        simulate_source_changes(a.path()).unwrap(),
        simulate_source_changes(b.path()).unwrap()
    );
    assert_eq!(checksums(&erp(a.path())), checksums(&erp(b.path())));
}

#[test]
fn refuses_an_existing_project_unless_overwriting() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    write_empty_project(&dir, "mine").unwrap();
    let before = std::fs::read(dir.join(PROJECT_FILE)).unwrap();
    let e = write_demo_project(&dir, false).unwrap_err().to_string();
    assert!(e.contains("already contains a tributary.yaml"), "{e}");
    assert_eq!(std::fs::read(dir.join(PROJECT_FILE)).unwrap(), before);
    assert!(!dir.join("data").exists());
    let e = write_empty_project(&dir, "again").unwrap_err().to_string();
    assert!(e.contains("already contains a tributary.yaml"), "{e}");

    // Overwriting resets the demo's own paths, and nothing outside the folder.
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("keep.txt"), "keep").unwrap();
    std::fs::create_dir_all(dir.join("lake/bronze/x")).unwrap();
    std::fs::write(dir.join("lake/bronze/x/part.parquet"), "old").unwrap();
    std::fs::create_dir_all(dir.join(".tributary")).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join(".tributary/link")).unwrap();
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    write_demo_project(&dir, true).unwrap();
    assert!(!dir.join("lake").exists());
    assert!(!dir.join(".tributary").exists());
    assert_eq!(
        std::fs::read_to_string(outside.join("keep.txt")).unwrap(),
        "keep"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("notes.txt")).unwrap(),
        "mine"
    );
    assert!(
        std::fs::read_to_string(dir.join(PROJECT_FILE))
            .unwrap()
            .contains("name: acme")
    );

    // A second overwrite after simulated changes gives the original data back.
    let fresh = checksums(&erp(&dir));
    simulate_source_changes(&dir).unwrap();
    assert!(dir.join("landing/exchange_rates/2026-11-24.csv").exists());
    write_demo_project(&dir, true).unwrap();
    assert_eq!(checksums(&erp(&dir)), fresh);
    assert!(!dir.join("landing/exchange_rates/2026-11-24.csv").exists());

    // A symlinked landing folder is not followed when resetting.
    std::fs::remove_dir_all(dir.join("landing")).unwrap();
    std::fs::create_dir_all(outside.join("stores")).unwrap();
    std::fs::write(outside.join("stores/stores.csv"), "outside").unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("landing")).unwrap();
    remove_inside(&dir, "landing/stores").unwrap();
    assert_eq!(
        std::fs::read_to_string(outside.join("stores/stores.csv")).unwrap(),
        "outside"
    );
}

#[test]
fn simulated_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_demo_project(dir, false).unwrap();
    let conn = erp(dir);
    let items_before = query_i64(&conn, "SELECT count(*) FROM order_items");
    let untouched_before: Vec<String> = checksums(&conn).into_iter().take(2).collect();

    let started = std::time::Instant::now();
    let summary = simulate_source_changes(dir).unwrap();
    eprintln!("simulated in {:?}: {summary}", started.elapsed());
    let items_after = query_i64(&conn, "SELECT count(*) FROM order_items");
    assert_eq!(
        summary,
        format!(
            "inserted 1000 orders ({} order items), updated 250 orders, added landing/exchange_rates/2026-11-24.csv",
            items_after - items_before
        )
    );
    assert_eq!(query_i64(&conn, "SELECT count(*) FROM orders"), 101_000);
    assert_eq!(query_i64(&conn, "SELECT max(id) FROM orders"), 101_000);
    let max_u: String = conn
        .query_row("SELECT max(updated_at) FROM orders", [], |r| r.get(0))
        .unwrap();
    assert!(max_u.starts_with("2026-11-24 "), "{max_u}");
    assert_eq!(
        query_i64(
            &conn,
            "SELECT count(*) FROM orders WHERE updated_at >= '2026-11-24'"
        ),
        1_250
    );
    assert_eq!(
        query_i64(
            &conn,
            "SELECT count(*) FROM orders WHERE created_at >= '2026-11-24'"
        ),
        1_000
    );
    assert_eq!(
        query_i64(
            &conn,
            "SELECT count(*) FROM orders WHERE id <= 100000 AND updated_at >= '2026-11-24' AND status IN ('paid', 'shipped', 'delivered', 'returned')"
        ),
        250
    );
    assert_eq!(
        query_i64(
            &conn,
            "SELECT count(*) FROM orders WHERE updated_at < created_at"
        ),
        0
    );
    assert_eq!(
        query_i64(
            &conn,
            "SELECT count(DISTINCT order_id) FROM order_items WHERE order_id > 100000"
        ),
        1_000
    );
    let mismatched = query_i64(
        &conn,
        "SELECT count(*) FROM orders o JOIN (SELECT order_id, sum(quantity * unit_price) AS s \
         FROM order_items WHERE order_id > 100000 GROUP BY order_id) i ON i.order_id = o.id \
         WHERE round(o.total * 100) <> round(i.s * 100)",
    );
    assert_eq!(mismatched, 0);
    assert_eq!(
        checksums(&conn).into_iter().take(2).collect::<Vec<_>>(),
        untouched_before
    );
    let rates = std::fs::read_to_string(dir.join("landing/exchange_rates/2026-11-24.csv")).unwrap();
    assert_eq!(rates.lines().count(), 9);
    assert!(rates.contains("\n2026-11-24,JPY,0.00"), "{rates}");

    // The next day follows.
    let summary = simulate_source_changes(dir).unwrap();
    assert!(
        summary.contains("updated 250 orders, added landing/exchange_rates/2026-11-25.csv"),
        "{summary}"
    );
    assert_eq!(query_i64(&conn, "SELECT count(*) FROM orders"), 102_000);
    assert_eq!(
        query_i64(
            &conn,
            "SELECT count(*) FROM orders WHERE updated_at >= '2026-11-25'"
        ),
        1_250
    );

    let e = simulate_source_changes(&dir.join("nope"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a demo project"), "{e}");
}

#[test]
fn empty_project_and_example_are_valid() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("new");
    assert!(write_empty_project(&dir, "my project").unwrap());
    let ci = tributary_connectors::load_project(&dir, Some("ci")).unwrap();
    assert_eq!(ci.config.lake, ".tributary/ci/lake");
    let project = tributary_connectors::load_project(&dir, None).unwrap();
    assert_eq!(project.config.name, "my project");
    assert_eq!(project.config.lake, "./lake");
    assert!(project.config.connections.is_empty());
    assert!(
        project.ingest.is_empty(),
        "the .disabled example must not be loaded"
    );
    let yaml = std::fs::read_to_string(dir.join(PROJECT_FILE)).unwrap();
    for needle in [
        "type: sqlite",
        "type: postgres",
        "${env:CRM_URL}",
        "type: mysql",
        "url: ./landing",
        "abfss://",
    ] {
        assert!(yaml.contains(needle), "{needle}");
    }

    // The example, enabled, against a project that defines its connections.
    let example = std::fs::read_to_string(dir.join("ingest/example.yaml.disabled")).unwrap();
    std::fs::write(
        dir.join(PROJECT_FILE),
        "name: t\nlake: ./lake\nconnections:\n  erp: { type: sqlite, path: erp.db }\n  landing: { type: files, url: ./landing }\n",
    )
    .unwrap();
    std::fs::write(dir.join("ingest/example.yaml"), &example).unwrap();
    // The commented files-connection part, uncommented.
    let marker = example.find("# ---- A files connection").unwrap();
    let files_part: String = example[marker..]
        .lines()
        .skip(1)
        .map(|l| {
            format!(
                "{}\n",
                l.strip_prefix("# ").unwrap_or(l.trim_start_matches('#'))
            )
        })
        .collect();
    std::fs::write(dir.join("ingest/files.yaml"), &files_part).unwrap();
    let project = match tributary_connectors::load_project(&dir, None) {
        Ok(p) => p,
        Err(e) => panic!("{e}\n{files_part}"),
    };
    let specs = project.load_specs();
    let targets: Vec<String> = specs.iter().map(|s| s.target()).collect();
    assert_eq!(
        targets,
        [
            "bronze.erp_customers",
            "bronze.orders",
            "bronze.erp_open_invoices",
            "bronze.landing_exchange_rates"
        ]
    );
    let orders = &specs[1].table;
    assert_eq!(orders.cast.len(), 1);
    assert_eq!(orders.batch_size, Some(10_000));
    let rates = &specs[3].table;
    assert_eq!(rates.on_error, tributary_core::config::OnError::Skip);
    let files = tributary_connectors::files::FilesTable::of(rates).unwrap();
    assert_eq!(files.csv.as_ref().unwrap().quote, "\"");
    assert_eq!(files.csv.as_ref().unwrap().delimiter, ";");
    assert_eq!(
        files.compression,
        tributary_connectors::files::Compression::Auto
    );
}
