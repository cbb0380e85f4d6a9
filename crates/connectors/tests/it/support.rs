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
    use std::process::Command;
    match Command::new("python3")
        .args(["-c", "import deltalake, pyarrow"])
        .output()
    {
        Ok(o) if o.status.success() => {}
        Ok(o) => return unavailable("python deltalake", String::from_utf8_lossy(&o.stderr)),
        Err(e) => return unavailable("python3", e),
    }
    // Ends with `os._exit` once the script has run: deltalake's native threads can abort the
    // interpreter's normal shutdown ("terminate called without an active exception") after
    // the script printed its results. An exception in the script still exits non-zero.
    let script = format!("{script}\nimport os, sys\nsys.stdout.flush()\nos._exit(0)\n");
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed:\n{script}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}
