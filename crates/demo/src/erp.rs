//! The generated ERP database (customers, products, 100 000 orders and their items) and a
//! simulated day of source changes.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, Transaction, params};

use super::*;

/// The demo's ERP database, relative to the project folder.
pub(crate) const ERP_DB: &str = "data/erp.sqlite";
/// Seed of every generated value.
pub(crate) const SEED: u64 = 0x00AC_0E20_2611_2300;

pub(crate) const N_CUSTOMERS: i64 = 5_000;
pub(crate) const N_PRODUCTS: i64 = 500;
pub(crate) const N_ORDERS: i64 = 100_000;
/// Item rows of one batch inserted twice, as an OLTP export with a double-inserted batch has.
pub(crate) const DUPLICATE_ITEMS: usize = 20;
/// The first order whose items may be part of the double-inserted batch.
pub(crate) const DUPLICATE_FROM_ORDER: i64 = 61_000;
/// Orders inserted and updated by one [`simulate_source_changes`].
pub(crate) const SIM_NEW_ORDERS: i64 = 1_000;
pub(crate) const SIM_UPDATED_ORDERS: usize = 250;

pub(crate) const DAY_US: i64 = 86_400_000_000;
pub(crate) const MINUTE_US: i64 = 60_000_000;

/// Currencies of the orders and of the exchange-rate files, with a base rate to USD.
pub(crate) const CURRENCIES: [(&str, f64); 8] = [
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
pub(crate) const CURRENCY_WEIGHTS: [u32; 8] = [20, 45, 10, 5, 6, 5, 6, 3];
/// The days with an exchange-rate file; the second one is gzip-compressed, the third starts
/// with a UTF-8 byte order mark.
pub(crate) const RATE_DAYS: [(i64, u32, u32); 4] = [
    (2026, 11, 20),
    (2026, 11, 21),
    (2026, 11, 22),
    (2026, 11, 23),
];

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

pub(crate) const SCHEMA: &str = "
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

pub(crate) const INSERT_ORDER: &str = "INSERT INTO orders (id, customer_id, status, order_date, total, currency, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
pub(crate) const INSERT_ITEM: &str = "INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price) VALUES (?1, ?2, ?3, ?4, ?5)";

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
pub(crate) const SPECIAL_CUSTOMERS: [SpecialCustomer; 8] = [
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
pub(crate) const FIRST_NAMES: [&str; 30] = [
    "Anna", "Lukas", "Sofia", "Jonas", "Emma", "Mateo", "Léa", "Søren", "Ingrid", "François",
    "Chiara", "Björn", "Özlem", "Nikolai", "Aoife", "Zoë", "Maja", "Tomás", "Ewa", "Hannah",
    "Olga", "Pedro", "Yuki", "Amélie", "Lars", "Mia", "Noah", "Elif", "Jürgen", "Inês",
];
#[rustfmt::skip]
pub(crate) const LAST_NAMES: [&str; 30] = [
    "Müller", "Schmidt", "García", "Rossi", "Dubois", "Nowak", "Jensen", "Andersson", "Kowalski",
    "O'Brien", "Novák", "Fernández", "Lefèvre", "Bauer", "Hansen", "Yılmaz", "Silva", "Costa",
    "Weiß", "Nielsen", "Santos", "Ivanova", "Tanaka", "Öberg", "Brennan", "Virtanen", "Horvat",
    "Papadopoulos", "Kovač", "Lindqvist",
];
#[rustfmt::skip]
pub(crate) const COMPANY_WORDS: [&str; 10] = [
    "Nordwind", "Alpenblick", "Baltic", "Sunrise", "Meridian", "Polaris", "Aurora", "Vega",
    "Helios", "Kestrel",
];
#[rustfmt::skip]
pub(crate) const COMPANY_FORMS: [&str; 8] = ["GmbH", "AB", "Sp. z o.o.", "S.A.", "Ltd", "ApS", "S.r.l.", "Oy"];
#[rustfmt::skip]
pub(crate) const COUNTRIES: [(&str, &[&str]); 11] = [
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
pub(crate) const COUNTRY_WEIGHTS: [u32; 11] = [30, 12, 10, 8, 6, 6, 10, 8, 6, 2, 2];

#[rustfmt::skip]
pub(crate) const CATEGORIES: [(&str, &[&str]); 8] = [
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
pub(crate) const ADJECTIVES: [&str; 10] = [
    "Compact", "Deluxe", "Eco", "Classic", "Pro", "Mini", "Ultra", "Smart", "Rustic", "Nordic",
];

/// Create the ERP database at `path` (replacing any file there) and fill it. Returns the rows per
/// table.
pub(crate) fn generate_erp(path: &Path) -> Result<Vec<(String, u64)>> {
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

pub(crate) fn insert_customers(tx: &Transaction<'_>, rng: &mut Rng) -> Result<()> {
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
pub(crate) fn insert_products(tx: &Transaction<'_>, rng: &mut Rng) -> Result<Vec<i64>> {
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
pub(crate) fn insert_orders(tx: &Transaction<'_>, rng: &mut Rng, prices: &[i64]) -> Result<u64> {
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
pub(crate) fn before_end(rng: &mut Rng, created: i64, later: i64, end: i64) -> i64 {
    if later <= end {
        later
    } else {
        created + rng.below((end - created + 1).max(1) as u64) as i64
    }
}

/// 1 to 5 lines (2.5 on average) of (product id, quantity, unit price in cents).
pub(crate) fn order_lines(rng: &mut Rng, prices: &[i64]) -> Vec<(i64, i64, i64)> {
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
pub(crate) fn read_prices(tx: &Transaction<'_>) -> Result<Vec<i64>> {
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
pub(crate) fn skewed(rng: &mut Rng, n: u64) -> u64 {
    rng.below(n).min(rng.below(n))
}

/// The local part of an e-mail address for a name: lowercase ASCII, dots between words.
pub(crate) fn email_local(name: &str) -> String {
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
