//! Finding the test services: see `tributary-testkit`.
#![allow(unused_imports)]

pub use tributary_testkit::{mysql_url, pg_url, services_required, unavailable, unique_name};

/// Microseconds since the epoch of a wall-clock `YYYY-MM-DD HH:MM:SS[.f]` (read as UTC).
pub fn micros(s: &str) -> i64 {
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
        .unwrap()
        .and_utc()
        .timestamp_micros()
}

/// Days since 1970-01-01 of `YYYY-MM-DD`.
pub fn days(s: &str) -> i32 {
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    (d - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32
}

/// Run a Python snippet and return its stdout; `None` (skip) when python3 or the `deltalake`
/// package is missing outside CI.
pub fn python(script: &str) -> Option<String> {
    tributary_testkit::python::run("deltalake, pyarrow", script)
}
