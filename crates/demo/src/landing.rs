//! The landing folder's files: gzipped exchange-rate CSVs and a stores CSV.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::*;

// ---------------------------------------------------------------------------------------------
// Landing files.

/// Writes the landing files; returns their paths relative to `dir`.
pub(crate) fn write_landing(dir: &Path) -> Result<Vec<PathBuf>> {
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
pub(crate) fn rates_csv(day: i64) -> String {
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
pub(crate) fn stores_csv() -> String {
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
