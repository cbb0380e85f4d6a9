//! The ACME sample project: `tributary demo`, `tributary init DIR --demo` and `tributary init DIR`.
//!
//! The demo stands in for ACME's sources on a laptop: a SQLite "ERP" database with customers,
//! products, 100 000 orders and their items, and a landing folder of CSV files. Everything is
//! generated from a fixed seed with a small PRNG, so every run writes byte-identical data and the
//! numbers in the README and in tests never drift.
#![warn(missing_docs)]

use std::io::Write as _;
use std::path::{Path, PathBuf};

use tributary_core::config::PROJECT_FILE;

mod error;

pub use error::DemoError;
use error::{Context, Result, bail};

mod erp;
mod landing;
#[cfg(test)]
mod tests;
mod util;

pub use erp::simulate_source_changes;
use erp::*;
use landing::*;
use util::*;

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

// ---------------------------------------------------------------------------------------------
// Project files.

const DEMO_PROJECT: &str = include_str!("../project/tributary.yaml");

const ERP_INGEST: &str = include_str!("../project/ingest/erp.yaml");

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

const LANDING_INGEST: &str = include_str!("../project/ingest/landing.yaml");

const GITIGNORE: &str = include_str!("../project/gitignore");

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

const EMPTY_PROJECT: &str = include_str!("../project/templates/empty-project.yaml");

const CI_WORKFLOW: &str = include_str!("../project/templates/ci-workflow.yml");

const EXAMPLE_INGEST: &str = include_str!("../project/templates/example.yaml.disabled");

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
