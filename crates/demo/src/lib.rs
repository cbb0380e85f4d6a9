//! The ACME sample project: `tributary demo`, `tributary init DIR --demo` and `tributary init DIR`.
#![warn(missing_docs)]
//!
//! The demo stands in for ACME's sources on a laptop: a SQLite "ERP" database with customers,
//! products, 100 000 orders and their items, and a landing folder of CSV files. Everything is
//! generated from a fixed seed with a small PRNG, so every run writes byte-identical data and the
//! numbers in the README and in tests never drift.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, Transaction, params};
use tributary_core::config::PROJECT_FILE;

mod error;

pub use error::DemoError;
use error::{Context, Result, bail};

/// The demo's ERP database, relative to the project folder.
const ERP_DB: &str = "data/erp.sqlite";
/// Seed of every generated value.
const SEED: u64 = 0x00AC_0E20_2611_2300;

const N_CUSTOMERS: i64 = 5_000;
const N_PRODUCTS: i64 = 500;
const N_ORDERS: i64 = 100_000;
/// Item rows of one batch inserted twice, as an OLTP export with a double-inserted batch has.
const DUPLICATE_ITEMS: usize = 20;
/// The first order whose items may be part of the double-inserted batch.
const DUPLICATE_FROM_ORDER: i64 = 61_000;
/// Orders inserted and updated by one [`simulate_source_changes`].
const SIM_NEW_ORDERS: i64 = 1_000;
const SIM_UPDATED_ORDERS: usize = 250;

const DAY_US: i64 = 86_400_000_000;
const MINUTE_US: i64 = 60_000_000;

/// Currencies of the orders and of the exchange-rate files, with a base rate to USD.
const CURRENCIES: [(&str, f64); 8] = [
    ("USD", 1.0),
    ("EUR", 1.0842),
    ("GBP", 1.2671),
    ("CHF", 1.1318),
    ("SEK", 0.0943),
    ("DKK", 0.1454),
    ("PLN", 0.2498),
    ("JPY", 0.006_62),
];
/// How often each currency is used by orders (same order as `CURRENCIES`).
const CURRENCY_WEIGHTS: [u32; 8] = [20, 45, 10, 5, 6, 5, 6, 3];
/// The days with an exchange-rate file; the second one is gzip-compressed, the third starts
/// with a UTF-8 byte order mark.
const RATE_DAYS: [(i64, u32, u32); 4] = [
    (2026, 11, 20),
    (2026, 11, 21),
    (2026, 11, 22),
    (2026, 11, 23),
];

/// What `write_demo_project` created, for the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoFiles {
    /// Rows per table of `data/erp.sqlite`, in load order: customers, products, orders, order_items.
    pub erp_rows: Vec<(String, u64)>,
    /// The landing files, relative to the project folder (`landing/stores/stores.csv`).
    pub landing_files: Vec<PathBuf>,
    /// Whether [`CI_WORKFLOW_PATH`] was written (false: an existing file was kept).
    pub ci_workflow: bool,
}

/// The GitHub Actions workflow `tributary init` writes, relative to the project folder.
pub const CI_WORKFLOW_PATH: &str = ".github/workflows/tributary.yml";

/// Write the ACME sample project into `dir` (created if missing). Refuse (error) if `dir` already
/// contains a tributary.yaml unless `overwrite` is true; never delete anything outside `dir`.
///
/// With `overwrite`, the demo's own generated paths inside `dir` are reset first so that the new
/// project starts clean: `lake/`, `.tributary/`, `data/erp.sqlite`, `landing/exchange_rates/` and
/// `landing/stores/`. Symbolic links among them are removed as links, never followed.
pub fn write_demo_project(dir: &Path, overwrite: bool) -> Result<DemoFiles> {
    let project_file = dir.join(PROJECT_FILE);
    if project_file.exists() && !overwrite {
        bail!(
            "{} already contains a {PROJECT_FILE}; choose an empty or new folder, or overwrite the demo there explicitly",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    if overwrite {
        for rel in [
            "lake",
            ".tributary",
            ERP_DB,
            "data/erp.sqlite-journal",
            "data/erp.sqlite-wal",
            "data/erp.sqlite-shm",
            "landing/exchange_rates",
            "landing/stores",
        ] {
            remove_inside(dir, rel)?;
        }
    }
    for sub in ["data", "ingest", "landing/exchange_rates", "landing/stores"] {
        let p = dir.join(sub);
        std::fs::create_dir_all(&p).with_context(|| format!("cannot create {}", p.display()))?;
    }

    // The database goes to a temporary name first, so a failure never leaves half an ERP.
    let db = dir.join(ERP_DB);
    let partial = dir.join("data/erp.sqlite.partial");
    remove_inside(dir, "data/erp.sqlite.partial")?;
    let erp_rows = match generate_erp(&partial) {
        Ok(rows) => rows,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(DemoError::Failed {
                what: format!("cannot generate the demo database {}", db.display()),
                source: Box::new(e),
            });
        }
    };
    std::fs::rename(&partial, &db)
        .with_context(|| format!("cannot move {} to {}", partial.display(), db.display()))?;

    let landing_files = write_landing(dir)?;
    write_file(dir, "ingest/erp.yaml", ERP_INGEST.as_bytes())?;
    write_file(dir, "ingest/landing.yaml", LANDING_INGEST.as_bytes())?;
    for (rel, text) in DEMO_MODELS {
        write_file(dir, rel, text.as_bytes())?;
    }
    write_file(dir, ".gitignore", GITIGNORE.as_bytes())?;
    write_file(dir, "README.md", demo_readme(&erp_rows).as_bytes())?;
    let ci_workflow = write_ci_workflow(dir)?;
    // Last, so that a failure above does not leave something that looks like a finished project.
    write_file(dir, PROJECT_FILE, DEMO_PROJECT.as_bytes())?;
    Ok(DemoFiles {
        erp_rows,
        landing_files,
        ci_workflow,
    })
}

/// Write only the project skeleton for `tributary init DIR` without --demo: tributary.yaml with
/// `lake: ./lake`, no connections but commented examples for every connection type
/// (sqlite, postgres with ${env:…}, mysql, files local and abfss://), and an ingest/ folder with a
/// commented example file `ingest/example.yaml.disabled` showing every table option, a `ci`
/// target, and the CI workflow. Returns whether the workflow was written (false: an existing one
/// was kept).
pub fn write_empty_project(dir: &Path, name: &str) -> Result<bool> {
    if dir.join(PROJECT_FILE).exists() {
        bail!(
            "{} already contains a {PROJECT_FILE}; choose an empty or new folder",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir.join("ingest"))
        .with_context(|| format!("cannot create {}", dir.join("ingest").display()))?;
    write_file(
        dir,
        "ingest/example.yaml.disabled",
        EXAMPLE_INGEST.as_bytes(),
    )?;
    write_file(dir, ".gitignore", GITIGNORE.as_bytes())?;
    let ci_workflow = write_ci_workflow(dir)?;
    let project = EMPTY_PROJECT.replace("{name}", &yaml_string(name));
    write_file(dir, PROJECT_FILE, project.as_bytes())?;
    Ok(ci_workflow)
}

/// Write [`CI_WORKFLOW_PATH`] unless it exists (an existing file is never overwritten). Returns
/// whether it was written.
pub fn write_ci_workflow(dir: &Path) -> Result<bool> {
    let path = dir.join(CI_WORKFLOW_PATH);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", path.display())),
    };
    file.write_all(CI_WORKFLOW.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(true)
}

/// Simulate a day of activity in the demo's ERP database (for "rerun after the source changes"):
/// insert N new orders (+ items), update M existing orders (status and updated_at moved forward),
/// and add one new landing file. Deterministic given the current database contents. Returns a
/// human-readable summary line, e.g. "inserted 1000 orders, updated 250 orders, added landing/exchange_rates/2026-11-25.csv".
///
/// The simulated day is the day after the latest `updated_at` in `orders`, so every inserted or
/// updated order has an `updated_at` later than anything an earlier run has loaded.
pub fn simulate_source_changes(dir: &Path) -> Result<String> {
    let db = dir.join(ERP_DB);
    if !db.is_file() {
        bail!(
            "{} does not exist; this is not a demo project (create one with `tributary demo` or `tributary init DIR --demo`)",
            db.display()
        );
    }
    let mut conn = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .with_context(|| format!("cannot open {}", db.display()))?;
    let tx = conn.transaction().context("cannot start a transaction")?;
    let (max_id, max_updated, count): (Option<i64>, Option<String>, i64) = tx
        .query_row(
            "SELECT max(id), max(updated_at), count(*) FROM orders",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .with_context(|| format!("cannot read the orders of {}", db.display()))?;
    let (Some(max_id), Some(max_updated)) = (max_id, max_updated) else {
        bail!("{} has no orders; recreate the demo project", db.display());
    };
    let day = parse_day(&max_updated)
        .with_context(|| format!("unexpected updated_at `{max_updated}` in {}", db.display()))?
        + 1;
    let mut rng = Rng::new(
        SEED ^ (max_id as u64).rotate_left(17) ^ (count as u64).rotate_left(41) ^ day as u64,
    );

    let prices = read_prices(&tx)?;
    let n_customers: i64 = tx
        .query_row("SELECT count(*) FROM customers", [], |r| r.get(0))
        .context("cannot count customers")?;
    if prices.is_empty() || n_customers == 0 {
        bail!(
            "{} has no products or customers; recreate the demo project",
            db.display()
        );
    }

    // Orders placed during the day.
    let day_start = day * DAY_US;
    let day_end = day_start + DAY_US - 1;
    let mut items = 0u64;
    {
        let mut ins_order = tx
            .prepare(INSERT_ORDER)
            .context("cannot prepare the order insert")?;
        let mut ins_item = tx
            .prepare(INSERT_ITEM)
            .context("cannot prepare the item insert")?;
        let slot = DAY_US / SIM_NEW_ORDERS;
        for i in 0..SIM_NEW_ORDERS {
            let id = max_id + 1 + i;
            let created = day_start + i * slot + rng.below(slot as u64) as i64;
            let later = created + rng.below(30 * MINUTE_US as u64) as i64;
            let updated = before_end(&mut rng, created, later, day_end);
            let status = if rng.chance(60) { "pending" } else { "paid" };
            let customer = 1 + skewed(&mut rng, n_customers as u64) as i64;
            let currency = CURRENCIES[rng.weighted(&CURRENCY_WEIGHTS)].0;
            let lines = order_lines(&mut rng, &prices);
            let total: i64 = lines.iter().map(|l| l.1 * l.2).sum();
            ins_order
                .execute(params![
                    id,
                    customer,
                    status,
                    fmt_date(created.div_euclid(DAY_US)),
                    fmt_cents(total),
                    currency,
                    fmt_ts(created),
                    fmt_ts(updated)
                ])
                .with_context(|| format!("cannot insert order {id}"))?;
            for (n, (product, quantity, price)) in lines.iter().enumerate() {
                ins_item
                    .execute(params![
                        id,
                        n as i64 + 1,
                        product,
                        quantity,
                        fmt_cents(*price)
                    ])
                    .with_context(|| format!("cannot insert an item of order {id}"))?;
                items += 1;
            }
        }
    }

    // Existing orders that move forward: the most recently active ones that can still change.
    let mut candidates: Vec<(i64, String)> = {
        let mut stmt = tx
            .prepare(
                "SELECT id, status FROM orders \
                 WHERE id <= ?1 AND status IN ('pending', 'paid', 'shipped', 'delivered') \
                 ORDER BY updated_at DESC, id DESC LIMIT 5000",
            )
            .context("cannot prepare the candidate query")?;
        let rows = stmt
            .query_map([max_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .context("cannot read candidate orders")?;
        rows.collect::<rusqlite::Result<_>>()
            .context("cannot read candidate orders")?
    };
    let updated = SIM_UPDATED_ORDERS.min(candidates.len());
    {
        let mut upd = tx
            .prepare("UPDATE orders SET status = ?2, updated_at = ?3 WHERE id = ?1")
            .context("cannot prepare the order update")?;
        for i in 0..updated {
            // A partial Fisher-Yates shuffle: `updated` distinct orders.
            let j = i + rng.below((candidates.len() - i) as u64) as usize;
            candidates.swap(i, j);
            let (id, status) = &candidates[i];
            let next = match status.as_str() {
                "pending" => "paid",
                "paid" => "shipped",
                "shipped" => "delivered",
                _ => "returned",
            };
            let at = day_start + rng.below(DAY_US as u64) as i64;
            upd.execute(params![id, next, fmt_ts(at)])
                .with_context(|| format!("cannot update order {id}"))?;
        }
    }
    tx.commit()
        .with_context(|| format!("cannot commit the changes to {}", db.display()))?;

    let rel = format!("landing/exchange_rates/{}.csv", fmt_date(day));
    std::fs::create_dir_all(dir.join("landing/exchange_rates"))
        .context("cannot create landing/exchange_rates")?;
    write_file(dir, &rel, rates_csv(day).as_bytes())?;
    Ok(format!(
        "inserted {SIM_NEW_ORDERS} orders ({items} order items), updated {updated} orders, added {rel}"
    ))
}

// ---------------------------------------------------------------------------------------------
// The ERP database.

const SCHEMA: &str = "
CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT,
    country TEXT,
    city TEXT,
    created_at DATETIME,
    is_active BOOLEAN
);
CREATE TABLE products (
    id INTEGER PRIMARY KEY,
    sku TEXT,
    name TEXT,
    category TEXT,
    unit_price DECIMAL(10,2),
    weight_kg REAL,
    created_at DATETIME
);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER,
    status TEXT,
    order_date DATE,
    total DECIMAL(12,2),
    currency TEXT,
    created_at DATETIME,
    updated_at DATETIME
);
CREATE TABLE order_items (
    order_id INTEGER,
    line_no INTEGER,
    product_id INTEGER,
    quantity INTEGER,
    unit_price DECIMAL(10,2)
);
";

const INSERT_ORDER: &str = "INSERT INTO orders (id, customer_id, status, order_date, total, currency, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
const INSERT_ITEM: &str = "INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price) VALUES (?1, ?2, ?3, ?4, ?5)";

/// A customer whose name exercises text fidelity: (id, name, email, country, city).
type SpecialCustomer = (
    i64,
    &'static str,
    Option<&'static str>,
    &'static str,
    Option<&'static str>,
);

/// Customers with names that exercise text fidelity.
#[rustfmt::skip]
const SPECIAL_CUSTOMERS: [SpecialCustomer; 8] = [
    (7, "José Müller", Some("jose.mueller@example.es"), "ES", Some("A Coruña")),
    (42, "Zoë Ångström", Some("zoe.angstrom@example.se"), "SE", Some("Malmö")),
    (128, "Łukasz Żółć", Some("lukasz.zolc@example.pl"), "PL", Some("Łódź")),
    (512, "北京贸易有限公司", Some("info@beijing-trade.example.cn"), "CN", Some("北京")),
    (1001, "Ærø Fisk ApS", None, "DK", Some("Ærøskøbing")),
    (2026, "Rocket Supplies 🚀", Some("launch@rocket.example.com"), "US", None),
    (3141, "🚀 Café Ñandú S.L.", Some("hola@nandu.example.es"), "ES", Some("Madrid")),
    (4096, "Ørsted & Søn \"Nordlys\"", Some("kontakt@nordlys.example.dk"), "DK", Some("København")),
];

#[rustfmt::skip]
const FIRST_NAMES: [&str; 30] = [
    "Anna", "Lukas", "Sofia", "Jonas", "Emma", "Mateo", "Léa", "Søren", "Ingrid", "François",
    "Chiara", "Björn", "Özlem", "Nikolai", "Aoife", "Zoë", "Maja", "Tomás", "Ewa", "Hannah",
    "Olga", "Pedro", "Yuki", "Amélie", "Lars", "Mia", "Noah", "Elif", "Jürgen", "Inês",
];
#[rustfmt::skip]
const LAST_NAMES: [&str; 30] = [
    "Müller", "Schmidt", "García", "Rossi", "Dubois", "Nowak", "Jensen", "Andersson", "Kowalski",
    "O'Brien", "Novák", "Fernández", "Lefèvre", "Bauer", "Hansen", "Yılmaz", "Silva", "Costa",
    "Weiß", "Nielsen", "Santos", "Ivanova", "Tanaka", "Öberg", "Brennan", "Virtanen", "Horvat",
    "Papadopoulos", "Kovač", "Lindqvist",
];
#[rustfmt::skip]
const COMPANY_WORDS: [&str; 10] = [
    "Nordwind", "Alpenblick", "Baltic", "Sunrise", "Meridian", "Polaris", "Aurora", "Vega",
    "Helios", "Kestrel",
];
#[rustfmt::skip]
const COMPANY_FORMS: [&str; 8] = ["GmbH", "AB", "Sp. z o.o.", "S.A.", "Ltd", "ApS", "S.r.l.", "Oy"];
#[rustfmt::skip]
const COUNTRIES: [(&str, &[&str]); 11] = [
    ("DE", &["Berlin", "München", "Köln", "Düsseldorf"]),
    ("FR", &["Paris", "Lyon", "Besançon"]),
    ("PL", &["Warszawa", "Kraków", "Łódź", "Gdańsk"]),
    ("SE", &["Stockholm", "Göteborg", "Malmö"]),
    ("DK", &["København", "Aarhus", "Ærøskøbing"]),
    ("CH", &["Zürich", "Genève", "Bern"]),
    ("GB", &["London", "Manchester", "Edinburgh"]),
    ("US", &["New York", "Chicago", "San José"]),
    ("ES", &["Madrid", "A Coruña", "Sevilla"]),
    ("CN", &["北京", "上海"]),
    ("JP", &["東京", "大阪"]),
];
const COUNTRY_WEIGHTS: [u32; 11] = [30, 12, 10, 8, 6, 6, 10, 8, 6, 2, 2];

#[rustfmt::skip]
const CATEGORIES: [(&str, &[&str]); 8] = [
    ("Office", &["Desk Lamp", "Stapler", "Notebook", "Office Chair", "Whiteboard"]),
    ("Kitchen", &["Kaffeemühle", "Crème Brûlée Torch", "Smørrebrød Board", "Kettle", "Chef's Knife"]),
    ("Garden", &["Hose Reel", "Pruning Shears", "Planter", "Wheelbarrow"]),
    ("Tools", &["Cordless Drill", "Socket Set", "Tape Measure", "Spirit Level"]),
    ("Electronics", &["USB-C Hub", "Headphones", "Power Bank", "Webcam", "Smart Plug"]),
    ("Outdoor", &["Tent", "Sleeping Bag", "Headlamp", "Trekking Poles"]),
    ("Toys", &["Puzzle", "Building Blocks", "Kite", "Board Game"]),
    ("Books", &["Atlas", "Cookbook", "Field Guide", "Novel"]),
];
#[rustfmt::skip]
const ADJECTIVES: [&str; 10] = [
    "Compact", "Deluxe", "Eco", "Classic", "Pro", "Mini", "Ultra", "Smart", "Rustic", "Nordic",
];

/// Create the ERP database at `path` (replacing any file there) and fill it. Returns the rows per
/// table.
fn generate_erp(path: &Path) -> Result<Vec<(String, u64)>> {
    let mut conn =
        Connection::open(path).with_context(|| format!("cannot create {}", path.display()))?;
    // A fresh file that is renamed into place only when complete: no need for a durable journal.
    conn.execute_batch("PRAGMA journal_mode = MEMORY; PRAGMA synchronous = OFF;")
        .context("cannot configure the database")?;
    let tx = conn.transaction().context("cannot start a transaction")?;
    tx.execute_batch(SCHEMA)
        .context("cannot create the schema")?;
    let mut rng = Rng::new(SEED);
    insert_customers(&tx, &mut rng)?;
    let prices = insert_products(&tx, &mut rng)?;
    let items = insert_orders(&tx, &mut rng, &prices)?;
    tx.execute_batch("CREATE INDEX orders_updated_at ON orders (updated_at);")
        .context("cannot create the index on orders.updated_at")?;
    tx.commit().context("cannot commit the demo data")?;
    conn.close()
        .map_err(|(_, e)| e)
        .context("cannot close the database")?;
    Ok(vec![
        ("customers".to_string(), N_CUSTOMERS as u64),
        ("products".to_string(), N_PRODUCTS as u64),
        ("orders".to_string(), N_ORDERS as u64),
        ("order_items".to_string(), items),
    ])
}

fn insert_customers(tx: &Transaction<'_>, rng: &mut Rng) -> Result<()> {
    let mut stmt = tx
        .prepare(
            "INSERT INTO customers (id, name, email, country, city, created_at, is_active) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .context("cannot prepare the customer insert")?;
    let since = days_from_civil(2024, 1, 1) * DAY_US;
    let span = 2 * 365 * DAY_US;
    for id in 1..=N_CUSTOMERS {
        // Draw the same values for every customer, so special ones do not shift the others.
        let (country, cities) = COUNTRIES[rng.weighted(&COUNTRY_WEIGHTS)];
        let city = *rng.pick(cities);
        let is_company = rng.chance(15);
        let person = format!("{} {}", rng.pick(&FIRST_NAMES), rng.pick(&LAST_NAMES));
        let company = format!("{} {}", rng.pick(&COMPANY_WORDS), rng.pick(&COMPANY_FORMS));
        let email_null = rng.chance(3);
        let city_null = rng.chance(2);
        let created = since + rng.below(span as u64) as i64;
        let active = !rng.chance(8);
        let (name, email, country, city) = match SPECIAL_CUSTOMERS.iter().find(|c| c.0 == id) {
            Some(&(_, name, email, country, city)) => {
                (name.to_string(), email.map(str::to_string), country, city)
            }
            None => {
                let name = if is_company { company } else { person };
                let email = (!email_null).then(|| {
                    let domain = if is_company {
                        "example.com"
                    } else {
                        "example.org"
                    };
                    format!("{}{id}@{domain}", email_local(&name))
                });
                (name, email, country, (!city_null).then_some(city))
            }
        };
        stmt.execute(params![
            id,
            name,
            email,
            country,
            city,
            fmt_ts(created),
            active
        ])
        .with_context(|| format!("cannot insert customer {id}"))?;
    }
    Ok(())
}

/// Returns the unit price in cents of every product, indexed by `id - 1`.
fn insert_products(tx: &Transaction<'_>, rng: &mut Rng) -> Result<Vec<i64>> {
    let mut stmt = tx
        .prepare(
            "INSERT INTO products (id, sku, name, category, unit_price, weight_kg, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .context("cannot prepare the product insert")?;
    let since = days_from_civil(2025, 1, 1) * DAY_US;
    let mut prices = Vec::with_capacity(N_PRODUCTS as usize);
    for id in 1..=N_PRODUCTS {
        let (category, nouns) = *rng.pick(&CATEGORIES);
        let name = format!(
            "{} {} {}",
            rng.pick(&ADJECTIVES),
            rng.pick(nouns),
            100 + rng.below(900)
        );
        let euros = 1 + rng.below(299) as i64;
        let cents = *rng.pick(&[99i64, 99, 49, 95, 0, 50]);
        let price = euros * 100 + cents;
        let grams = 50 + rng.below(24_950) as i64;
        let created = since + rng.below((300 * DAY_US) as u64) as i64;
        stmt.execute(params![
            id,
            format!("SKU-{id:05}"),
            name,
            category,
            fmt_cents(price),
            grams as f64 / 1000.0,
            fmt_ts(created)
        ])
        .with_context(|| format!("cannot insert product {id}"))?;
        prices.push(price);
    }
    Ok(prices)
}

/// Inserts the orders and their items; returns the number of item rows.
fn insert_orders(tx: &Transaction<'_>, rng: &mut Rng, prices: &[i64]) -> Result<u64> {
    let mut ins_order = tx
        .prepare(INSERT_ORDER)
        .context("cannot prepare the order insert")?;
    let mut ins_item = tx
        .prepare(INSERT_ITEM)
        .context("cannot prepare the item insert")?;
    let first_day = days_from_civil(2026, 1, 1);
    let last_day = days_from_civil(2026, 11, 23);
    let start = first_day * DAY_US;
    let end = (last_day + 1) * DAY_US - 1;
    let slot = (end + 1 - start) / N_ORDERS;
    let mut items = 0u64;
    let mut duplicates: Vec<(i64, i64, i64, i64, i64)> = Vec::with_capacity(DUPLICATE_ITEMS);
    for i in 0..N_ORDERS {
        let id = i + 1;
        // Ids grow with creation time: each order gets its own slice of the period.
        let created = start + i * slot + rng.below(slot as u64) as i64;
        let age_days = last_day - created.div_euclid(DAY_US);
        let (status, updated) = if rng.chance(5) {
            // A late update: shipped or returned days after the order was placed.
            let later =
                created + (1 + rng.below(20) as i64) * DAY_US + rng.below(DAY_US as u64) as i64;
            let status = if rng.chance(80) {
                "shipped"
            } else {
                "returned"
            };
            (status, before_end(rng, created, later, end))
        } else {
            let status = match age_days {
                0 => {
                    if rng.chance(60) {
                        "pending"
                    } else {
                        "paid"
                    }
                }
                1..=3 => {
                    if rng.chance(50) {
                        "paid"
                    } else {
                        "shipped"
                    }
                }
                _ => {
                    if rng.chance(92) {
                        "delivered"
                    } else {
                        "cancelled"
                    }
                }
            };
            let later = created + rng.below((90 * MINUTE_US) as u64) as i64;
            (status, before_end(rng, created, later, end))
        };
        let customer = 1 + skewed(rng, N_CUSTOMERS as u64) as i64;
        let currency = CURRENCIES[rng.weighted(&CURRENCY_WEIGHTS)].0;
        let lines = order_lines(rng, prices);
        let null_total = rng.below(5_000) == 0;
        let total: i64 = lines.iter().map(|l| l.1 * l.2).sum();
        ins_order
            .execute(params![
                id,
                customer,
                status,
                fmt_date(created.div_euclid(DAY_US)),
                (!null_total).then(|| fmt_cents(total)),
                currency,
                fmt_ts(created),
                fmt_ts(updated)
            ])
            .with_context(|| format!("cannot insert order {id}"))?;
        for (n, &(product, quantity, price)) in lines.iter().enumerate() {
            let line_no = n as i64 + 1;
            ins_item
                .execute(params![id, line_no, product, quantity, fmt_cents(price)])
                .with_context(|| format!("cannot insert an item of order {id}"))?;
            items += 1;
            if id >= DUPLICATE_FROM_ORDER && duplicates.len() < DUPLICATE_ITEMS {
                duplicates.push((id, line_no, product, quantity, price));
                if duplicates.len() == DUPLICATE_ITEMS {
                    // The batch is inserted a second time.
                    for &(o, l, p, q, c) in &duplicates {
                        ins_item
                            .execute(params![o, l, p, q, fmt_cents(c)])
                            .with_context(|| format!("cannot insert an item of order {o}"))?;
                        items += 1;
                    }
                }
            }
        }
    }
    Ok(items)
}

/// `later`, or when that is past `end` (the data set's "now"), a time between `created` and `end`.
fn before_end(rng: &mut Rng, created: i64, later: i64, end: i64) -> i64 {
    if later <= end {
        later
    } else {
        created + rng.below((end - created + 1).max(1) as u64) as i64
    }
}

/// 1 to 5 lines (2.5 on average) of (product id, quantity, unit price in cents).
fn order_lines(rng: &mut Rng, prices: &[i64]) -> Vec<(i64, i64, i64)> {
    let n = 1 + rng.weighted(&[30, 25, 20, 15, 10]);
    (0..n)
        .map(|_| {
            let p = rng.below(prices.len() as u64) as usize;
            let quantity = 1 + rng.weighted(&[40, 25, 12, 8, 5, 3, 2, 2, 2, 1]) as i64;
            (p as i64 + 1, quantity, prices.get(p).copied().unwrap_or(0))
        })
        .collect()
}

/// Unit prices in cents, indexed by `product id - 1`.
fn read_prices(tx: &Transaction<'_>) -> Result<Vec<i64>> {
    let mut stmt = tx
        .prepare("SELECT CAST(round(unit_price * 100) AS INTEGER) FROM products ORDER BY id")
        .context("cannot prepare the product query")?;
    let rows = stmt
        .query_map([], |r| Ok(r.get::<_, Option<i64>>(0)?.unwrap_or(0)))
        .context("cannot read products")?;
    rows.collect::<rusqlite::Result<_>>()
        .context("cannot read products")
}

/// A value below `n`, skewed towards small values (regular customers order more often).
fn skewed(rng: &mut Rng, n: u64) -> u64 {
    rng.below(n).min(rng.below(n))
}

/// The local part of an e-mail address for a name: lowercase ASCII, dots between words.
fn email_local(name: &str) -> String {
    let mut out = String::new();
    for c in name.to_lowercase().chars() {
        let folded = match c {
            'á' | 'à' | 'â' | 'ä' | 'ã' | 'å' | 'ą' => "a",
            'é' | 'è' | 'ê' | 'ë' | 'ę' => "e",
            'í' | 'ì' | 'î' | 'ï' | 'ı' => "i",
            'ó' | 'ò' | 'ô' | 'ö' | 'õ' | 'ø' => "o",
            'ú' | 'ù' | 'û' | 'ü' => "u",
            'ñ' | 'ń' => "n",
            'ç' | 'ć' | 'č' => "c",
            'ß' => "ss",
            'æ' => "ae",
            'ł' => "l",
            'ż' | 'ź' => "z",
            'ś' | 'š' => "s",
            ' ' | '-' => ".",
            c if c.is_ascii_alphanumeric() => {
                out.push(c);
                continue;
            }
            _ => continue,
        };
        if !(folded == "." && (out.is_empty() || out.ends_with('.'))) {
            out.push_str(folded);
        }
    }
    let trimmed = out.trim_end_matches('.');
    if trimmed.is_empty() {
        "customer".to_string()
    } else {
        trimmed.to_string()
    }
}

// ---------------------------------------------------------------------------------------------
// Landing files.

/// Writes the landing files; returns their paths relative to `dir`.
fn write_landing(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for (i, &(y, m, d)) in RATE_DAYS.iter().enumerate() {
        let day = days_from_civil(y, m as i64, d as i64);
        let csv = rates_csv(day);
        let date = fmt_date(day);
        let (rel, bytes) = match i {
            1 => {
                let mut gz =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                gz.write_all(csv.as_bytes())
                    .context("cannot compress exchange rates")?;
                let bytes = gz.finish().context("cannot compress exchange rates")?;
                (format!("landing/exchange_rates/{date}.csv.gz"), bytes)
            }
            2 => (
                format!("landing/exchange_rates/{date}.csv"),
                format!("\u{feff}{csv}").into_bytes(),
            ),
            _ => (
                format!("landing/exchange_rates/{date}.csv"),
                csv.into_bytes(),
            ),
        };
        write_file(dir, &rel, &bytes)?;
        files.push(PathBuf::from(rel));
    }
    let rel = "landing/stores/stores.csv";
    write_file(dir, rel, stores_csv().as_bytes())?;
    files.push(PathBuf::from(rel));
    Ok(files)
}

/// `date,currency,rate_to_usd` for the 8 currencies on one day. The rates wander a little from
/// day to day, deterministically.
fn rates_csv(day: i64) -> String {
    let mut out = String::from("date,currency,rate_to_usd\n");
    let date = fmt_date(day);
    for (i, (code, base)) in CURRENCIES.iter().enumerate() {
        let rate = if *code == "USD" {
            1.0
        } else {
            let mut r = Rng::new(SEED ^ ((day as u64) << 8) ^ i as u64);
            // Within ±1.5 % of the base rate.
            base * (1.0 + (r.below(30_001) as f64 - 15_000.0) / 1_000_000.0)
        };
        out.push_str(&format!("{date},{code},{rate:.6}\n"));
    }
    out
}

/// `;`-delimited stores, one name quoted because it contains the delimiter.
fn stores_csv() -> String {
    #[rustfmt::skip]
    const CITIES: [&str; 30] = [
        "Berlin", "München", "Köln", "Zürich", "Genève", "Wien", "Kraków", "Łódź", "Gdańsk",
        "Malmö", "Göteborg", "København", "Århus", "Reykjavík", "Besançon", "Paris", "Lyon",
        "A Coruña", "Sevilla", "São Paulo", "Lisboa", "Bruxelles", "İstanbul", "Praha", "Brno",
        "Tromsø", "Helsinki", "Oulu", "東京", "Düsseldorf",
    ];
    let mut rng = Rng::new(SEED ^ 0x5707E5);
    let mut out = String::from("store_id;name;city;opened_on\n");
    for (i, city) in CITIES.iter().enumerate() {
        let id = i + 1;
        let name = if id == 7 {
            "\"Müller; Söhne Outlet\"".to_string()
        } else {
            format!("ACME {city}")
        };
        let opened = days_from_civil(2010, 1, 1) + rng.below(15 * 365) as i64;
        out.push_str(&format!("{id};{name};{city};{}\n", fmt_date(opened)));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Project files.

const DEMO_PROJECT: &str = r#"# ACME demo project, written by `tributary demo`. See README.md for what to try next.
#
# Here the ERP is a SQLite file and the lake a local folder. In production the same project would
# read the ERP's PostgreSQL database and write the lake to Azure Data Lake Storage Gen2, with
# secrets taken from the environment, never from this file:
#
#   lake: abfss://lake@acme.dfs.core.windows.net/
#   connections:
#     erp: { type: postgres, url: "${env:ERP_URL}" }
#     landing: { type: files, url: "abfss://landing@acme.dfs.core.windows.net/" }
name: acme
lake: ./lake                            # Delta tables: lake/<layer>/<table>
state: sqlite://.tributary/state.db     # run history
connections:
  erp: { type: sqlite, path: data/erp.sqlite }
  landing: { type: files, url: ./landing }

# Environments, chosen with `--target NAME` (or TRIBUTARY_TARGET); each may replace the lake,
# lake_options, state, whole connections and vars. `ci` is used by .github/workflows/tributary.yml.
targets:
  ci:
    lake: .tributary/ci/lake
    state: sqlite://.tributary/ci/state.db
"#;

const ERP_INGEST: &str = r#"# Tables read from the ERP (connection `erp` in tributary.yaml).
# Each one lands in the Delta table bronze.erp_<name>, e.g. bronze.erp_orders.
connection: erp
tables:
  # Small reference tables: read whole on every run.
  - name: customers
    mode: full            # replace the bronze table with what the source has now (a new Delta version)
    primary_key: [id]     # the columns that identify a row
  - name: products
    mode: full
    primary_key: [id]
  # The big, growing table: after the first run, read only what changed.
  - name: orders
    mode: incremental     # append the rows whose cursor reached the last watermark
    cursor: updated_at    # the column that moves forward on every insert and update
    primary_key: [id]     # with the cursor, skips rows already loaded when re-reading the lookback
    lookback: 1h          # re-read the last hour, for rows committed late by long transactions
  # No primary key in the source, and a batch of exact duplicate rows: loaded as they are.
  - name: order_items
    mode: full
"#;

/// The demo's SQL models, macros and model tests (files under `crates/demo/project/`).
pub const DEMO_MODELS: &[(&str, &str)] = &[
    (
        "models/silver/customers.sql",
        include_str!("../project/models/silver/customers.sql"),
    ),
    (
        "models/silver/orders.sql",
        include_str!("../project/models/silver/orders.sql"),
    ),
    (
        "models/silver/customer_history.sql",
        include_str!("../project/models/silver/customer_history.sql"),
    ),
    (
        "models/gold/monthly_revenue.sql",
        include_str!("../project/models/gold/monthly_revenue.sql"),
    ),
    (
        "models/gold/top_products.sql",
        include_str!("../project/models/gold/top_products.sql"),
    ),
    (
        "macros/currency.sql",
        include_str!("../project/macros/currency.sql"),
    ),
    (
        "tests/silver_orders.yaml",
        include_str!("../project/tests/silver_orders.yaml"),
    ),
];

const LANDING_INGEST: &str = r#"# Files dropped into the landing folder (connection `landing` in tributary.yaml).
# Each file set lands in bronze.landing_<name>; every row records the file it came from.
connection: landing
tables:
  # One file a day; .csv.gz files are decompressed, a UTF-8 byte order mark is skipped.
  - name: exchange_rates
    glob: "exchange_rates/*.csv*"   # relative to the connection's url
    format: csv
    mode: full                      # reread all matching files on every run
  # A semicolon-separated export from the store system.
  - name: stores
    glob: stores/stores.csv
    format: csv
    csv:
      delimiter: ";"
    mode: full
"#;

const GITIGNORE: &str =
    "# Written by `tributary run`; rebuilt from the sources at any time.\nlake/\n.tributary/\n";

fn demo_readme(rows: &[(String, u64)]) -> String {
    let mut tables = String::new();
    for (table, n) in rows {
        tables.push_str(&format!("| `{table}` | {n} |\n"));
    }
    format!(
        r#"# ACME demo

A Tributary project with ACME's sources in miniature, written by `tributary demo` (or
`tributary init DIR --demo`). The data comes from a fixed seed: every machine gets the same
rows, so the numbers below are the same everywhere.

## What is here

- `tributary.yaml`: the project: where the lake is (`./lake`) and the two source connections.
- `ingest/erp.yaml`: which ERP tables to load and how (full reloads, one incremental table).
- `ingest/landing.yaml`: which landing files to load.
- `data/erp.sqlite`: the "ERP", a SQLite database (see below).
- `landing/exchange_rates/`: one CSV file per day (one gzip-compressed, one with a UTF-8 byte
  order mark); `landing/stores/stores.csv`: separated by `;`, with a quoted name.
- `lake/` (after a run): the Delta tables, readable by Spark, Databricks, DuckDB or Polars.
  `.tributary/`: run history.

The ERP database:

| table | rows |
|---|---|
{tables}
Orders cover 2026-01-01 to 2026-11-23; about 5 % were updated days after they were placed.
Some customers have non-ASCII names (`José Müller`, `北京贸易有限公司`, an emoji or two), a few
orders have no total, and `order_items` has no primary key and a batch of 20 rows that were
inserted twice.

## What to try next

`tributary demo` has already loaded everything once; after `tributary init DIR --demo`, start
with `tributary run`. Then, inside this folder (or with `--project <folder>` from elsewhere):

```sh
tributary tables
tributary query "SELECT status, count(*) FROM bronze.erp_orders GROUP BY status"
tributary query "SELECT status, count(*) FROM bronze.erp_orders GROUP BY status" --format csv
tributary query "SELECT currency, avg(rate_to_usd) FROM bronze.landing_exchange_rates GROUP BY currency"
tributary run
```

Running `tributary run` again finds nothing new in `orders`: no order rows are appended (the
small `full` tables are simply reloaded).

Run `tributary demo --advance` to simulate a day of new and updated orders, then `tributary run` again: only the new and changed orders are appended.

Every bronze row records when and from where it was loaded (`_tributary_loaded_at`,
`_tributary_run_id`, `_tributary_source`), so the versions of an updated order can be told apart:

```sh
tributary query "SELECT id, status, updated_at, _tributary_loaded_at FROM bronze.erp_orders WHERE id IN (SELECT id FROM bronze.erp_orders GROUP BY id HAVING count(*) > 1) ORDER BY id, updated_at LIMIT 10"
```

To point the same project at production sources, see the comment at the top of `tributary.yaml`.
"#
    )
}

const EMPTY_PROJECT: &str = r#"# Tributary project. After editing: `tributary validate`, then `tributary run`.
name: {name}

# Where the Delta tables go: a local folder (relative to this file) or an object store, e.g.
#   lake: abfss://lake@<account>.dfs.core.windows.net/     # Azure Data Lake Storage Gen2
#   lake: s3://<bucket>/lake
#   lake: gs://<bucket>/lake
# Credentials come from each cloud's usual environment variables; other options go in
#   lake_options: { azure_storage_account_name: <account> }
lake: ./lake

# Run history and load state.
state: sqlite://.tributary/state.db

# Source connections, by name. The tables to load from them go in ingest/*.yaml (see
# ingest/example.yaml.disabled). Secrets only through ${env:NAME}, never in this file.
# To add connections, replace `{}` with entries like the examples below.
connections: {}
#   erp:                                     # a SQLite database file
#     type: sqlite
#     path: data/erp.sqlite                  # relative to this folder
#   crm:                                     # PostgreSQL
#     type: postgres
#     url: "${env:CRM_URL}"                  # postgres://user:password@host:5432/database
#   shop:                                    # MySQL or MariaDB
#     type: mysql
#     url: "${env:SHOP_URL}"                 # mysql://user:password@host:3306/database
#   landing:                                 # files in a local folder
#     type: files
#     url: ./landing
#   adls_landing:                            # files in Azure Data Lake Storage Gen2
#     type: files
#     url: abfss://landing@<account>.dfs.core.windows.net/
#     storage_options:
#       azure_storage_account_name: <account>

# Template variables for SQL models (`var('name')`); a target's vars override these.
vars: {}
#   lookback_days: 3

# Environments ("targets"), chosen with `tributary --target NAME …`, else the environment
# variable TRIBUTARY_TARGET, else `default_target: NAME`; with none, the settings above apply.
# A target may replace `lake` (with its own `lake_options`), `lake_options`, `state`, whole
# connections by name (or add new ones) and vars; everything else comes from above.
# `${env:…}` inside a target is read only when that target is used.
targets:
  # Used by .github/workflows/tributary.yml: `tributary validate --target ci` and
  # `tributary test --target ci`, which read no source and write no lake. If a connection above
  # takes a secret through ${env:…}, replace it here (same name) with one that needs none, so
  # CI needs no secrets.
  ci:
    lake: .tributary/ci/lake
    state: sqlite://.tributary/ci/state.db
#   prod:
#     lake: abfss://lake@<account>.dfs.core.windows.net/
#     lake_options: { azure_storage_account_name: <account> }
#     state: sqlite://.tributary/prod.db
#     connections:
#       crm: { type: postgres, url: "${env:PROD_CRM_URL}" }
#     vars: { lookback_days: 30 }
# default_target: dev
"#;

const CI_WORKFLOW: &str = r#"# Written by `tributary init`: checks this Tributary project on every push and pull request.
#   tributary validate --target ci   every configuration file (and model) is valid
#   tributary test --target ci       model unit tests on fixtures; they never touch the lake
# The `ci` target is defined in tributary.yaml. Neither command reads a source or writes the lake,
# so CI needs no database and no secrets unless the `ci` target asks for some through ${env:…}
# (then add them under Settings > Secrets and variables > Actions, and to an `env:` below).
#
# Installing tributary: Tributary publishes no release binaries or crates.io package yet, so this
# workflow downloads a binary you provide. Build it once from the Tributary source on Linux x86_64
# (`cargo build --release`; the binary is target/release/tributary), put it where this workflow
# can download it (a release asset of your own repository, an artifact store, ...), then set the
# repository variables (Settings > Secrets and variables > Actions > Variables):
#   TRIBUTARY_DOWNLOAD_URL   the binary's URL (required: the install step fails without it)
#   TRIBUTARY_SHA256         its SHA-256 (`sha256sum tributary`); checked when set
#
# GitHub reads workflows only from .github/workflows at the root of the repository. If this
# project is a subfolder of a larger repository, move this file there and set
# `working-directory` below to the project's folder.
name: tributary

on: [push, pull_request]

permissions:
  contents: read

jobs:
  check:
    runs-on: ubuntu-latest
    defaults:
      run:
        working-directory: .
    steps:
      - uses: actions/checkout@v4
      - name: Install tributary
        env:
          TRIBUTARY_DOWNLOAD_URL: ${{ vars.TRIBUTARY_DOWNLOAD_URL }}
          TRIBUTARY_SHA256: ${{ vars.TRIBUTARY_SHA256 }}
        run: |
          if [ -z "$TRIBUTARY_DOWNLOAD_URL" ]; then
            echo "::error::Set the repository variable TRIBUTARY_DOWNLOAD_URL to the URL of a Linux x86_64 tributary binary (see the top of .github/workflows/tributary.yml)."
            exit 1
          fi
          mkdir -p "$HOME/.local/bin"
          curl --fail --silent --show-error --location --output "$HOME/.local/bin/tributary" "$TRIBUTARY_DOWNLOAD_URL"
          if [ -n "$TRIBUTARY_SHA256" ]; then
            echo "$TRIBUTARY_SHA256  $HOME/.local/bin/tributary" | sha256sum --check --strict
          fi
          chmod +x "$HOME/.local/bin/tributary"
          echo "$HOME/.local/bin" >> "$GITHUB_PATH"
          "$HOME/.local/bin/tributary" --version
      - name: Validate
        run: tributary validate --target ci
      - name: Test
        run: tributary test --target ci
"#;

const EXAMPLE_INGEST: &str = r#"# An example ingest file. Rename it to a name ending in .yaml to enable it (files ending in
# .disabled are ignored), and define its connection in tributary.yaml.
#
# An ingest file names one connection and lists the tables (for a files connection: the file
# sets) to load. Each lands in the Delta table bronze.<connection>_<name> unless `target` says
# otherwise.
connection: erp                  # a connection defined in tributary.yaml

tables:
  # The smallest entry: the whole table, read again on every run.
  - name: customers

  # Every option of a database table:
  - name: public.orders          # the table, optionally schema-qualified
    mode: incremental            # full (default): replace the bronze table with the whole source table;
                                 # incremental: append only the rows whose cursor reached the last watermark
    cursor: updated_at           # incremental: the column that moves forward on every insert and update
    primary_key: [id]            # the columns that identify a row; incremental loads use them to skip
                                 # rows already loaded when re-reading the lookback window
    lookback: 1h                 # incremental: re-read this far before the watermark, for rows committed
                                 # late (30s, 15m, 1h, 2d; a number for numeric cursors). Default 1h / 0
    target: bronze.orders        # the Delta table <layer>.<name>; default bronze.erp_orders
    cast:                        # load columns that cannot be mapped losslessly as text
      legacy_amount: text        #   (e.g. a decimal with more than 38 digits)
    batch_size: 10000            # rows per batch; default 10000 (databases) / 8192 (files)

  # A query instead of a whole table; `name` names the target (bronze.erp_open_invoices).
  - name: open_invoices
    query: SELECT id, customer_id, amount, updated_at FROM invoices WHERE status = 'open'
    mode: incremental
    cursor: updated_at

# ---- A files connection (type: files) takes these options instead ----
# connection: landing
# tables:
#   - name: exchange_rates             # names the target: bronze.landing_exchange_rates
#     glob: "exchange_rates/*.csv*"    # the files, relative to the connection's url
#     format: csv                      # csv, ndjson or parquet; default from the file extension
#     compression: auto                # auto (gzip when the name ends in .gz), gzip or none
#     csv:                             # csv only
#       delimiter: ";"                 # one ASCII character; default ","
#       quote: '"'                     # default '"'
#       header: true                   # the first line holds the column names (default true)
#       infer_types: true              # false loads every column as text (default true)
#     on_error: skip                   # fail (default) or skip malformed records, counted and logged
#     mode: full
#     batch_size: 8192
"#;

/// A YAML scalar for `s`: as is when plain and safe, else double-quoted (JSON strings are YAML).
fn yaml_string(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && s.chars().next().is_some_and(|c| c.is_alphabetic())
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n"
        )
        && s.parse::<f64>().is_err();
    if plain {
        s.to_string()
    } else {
        serde_json::Value::String(s.to_string()).to_string()
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

fn write_file(dir: &Path, rel: &str, bytes: &[u8]) -> Result<()> {
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// Remove `dir/rel` (file, folder or symbolic link) if present. Symbolic links are removed as
/// links; nothing is removed when a folder on the way to it is a symbolic link, so nothing outside
/// `dir` is ever touched.
fn remove_inside(dir: &Path, rel: &str) -> Result<()> {
    let mut path = dir.to_path_buf();
    let parts: Vec<&str> = rel.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        path.push(part);
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", path.display())),
        };
        let last = i + 1 == parts.len();
        if !last {
            if meta.file_type().is_symlink() || !meta.is_dir() {
                return Ok(());
            }
            continue;
        }
        let result = if meta.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        result.with_context(|| format!("cannot remove {}", path.display()))?;
    }
    Ok(())
}

/// splitmix64: tiny, fast and good enough for sample data; the same sequence everywhere.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `percent` / 100.
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One element of a non-empty slice.
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// An index into `weights`, drawn in proportion to them.
    fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut x = self.below(total);
        for (i, &w) in weights.iter().enumerate() {
            if x < u64::from(w) {
                return i;
            }
            x -= u64::from(w);
        }
        weights.len().saturating_sub(1)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of days since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// `YYYY-MM-DD`.
fn fmt_date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DD HH:MM:SS.ffffff` of microseconds since 1970-01-01 00:00:00.
fn fmt_ts(micros: i64) -> String {
    let (y, m, d) = civil_from_days(micros.div_euclid(DAY_US));
    let us = micros.rem_euclid(DAY_US);
    let secs = us / 1_000_000;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:06}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        us % 1_000_000
    )
}

/// Days since 1970-01-01 of a text starting with `YYYY-MM-DD`.
fn parse_day(s: &str) -> Result<i64> {
    let date = s
        .get(..10)
        .ok_or_else(|| DemoError::Refused(format!("`{s}` is too short for a date")))?;
    let mut parts = date.split('-');
    let mut next = |what: &str| -> Result<i64> {
        parts
            .next()
            .and_then(|p| p.parse::<i64>().ok())
            .ok_or_else(|| DemoError::Refused(format!("no {what} in `{date}`")))
    };
    let (y, m, d) = (next("year")?, next("month")?, next("day")?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        bail!("`{date}` is not a date");
    }
    Ok(days_from_civil(y, m, d))
}

/// `19.99` of 1999 cents.
fn fmt_cents(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Read as _;

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
        let project = tributary_core::Project::load_with_target(tmp.path(), Some("ci")).unwrap();
        assert_eq!(project.config.lake, ".tributary/ci/lake");
        assert_eq!(project.config.state, "sqlite://.tributary/ci/state.db");
        assert!(tmp.path().join(CI_WORKFLOW_PATH).is_file());
        let project = tributary_core::Project::load_with_target(tmp.path(), None).unwrap();
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
            Some(tributary_core::config::LookbackSpec::Duration("1h".into()))
        );
        assert_eq!(specs[5].table.csv.as_ref().unwrap().delimiter, ";");
        assert_eq!(
            specs[4].table.glob.as_deref(),
            Some("exchange_rates/*.csv*")
        );
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
        let rates =
            std::fs::read_to_string(dir.join("landing/exchange_rates/2026-11-24.csv")).unwrap();
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
        let ci = tributary_core::Project::load_with_target(&dir, Some("ci")).unwrap();
        assert_eq!(ci.config.lake, ".tributary/ci/lake");
        let project = tributary_core::Project::load_with_target(&dir, None).unwrap();
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
        let project = match tributary_core::Project::load(&dir) {
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
        assert_eq!(rates.csv.as_ref().unwrap().quote, "\"");
        assert_eq!(rates.csv.as_ref().unwrap().delimiter, ";");
        assert_eq!(rates.compression, tributary_core::config::Compression::Auto);
    }
}
