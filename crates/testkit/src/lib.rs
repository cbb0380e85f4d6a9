//! Helpers for Tributary's integration tests (a dev-dependency only).
//!
//! A test that needs a service it cannot reach skips with a printed reason, unless
//! `TRIBUTARY_REQUIRE_SERVICES=1` (set by `.ci/run`), where it fails.
#![warn(missing_docs)]

use std::sync::atomic::{AtomicU32, Ordering};

pub mod http;
pub mod python;

/// True when services are required (CI).
pub fn services_required() -> bool {
    std::env::var("TRIBUTARY_REQUIRE_SERVICES").as_deref() == Ok("1")
}

/// Skip (return `None`) or, when services are required, fail with the reason.
pub fn unavailable<T>(service: &str, reason: impl std::fmt::Display) -> Option<T> {
    if services_required() {
        panic!("{service} is required (TRIBUTARY_REQUIRE_SERVICES=1) but unavailable: {reason}");
    }
    eprintln!("SKIPPED: {service} unavailable: {reason}");
    None
}

/// A name unique to this process and call, for schemas and databases created by a test.
pub fn unique_name(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The test PostgreSQL (`TRIBUTARY_TEST_PG_URL`, default `postgres://postgres@127.0.0.1:5432/test`).
pub fn pg_url() -> String {
    std::env::var("TRIBUTARY_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// The test MariaDB/MySQL (`TRIBUTARY_TEST_MYSQL_URL`, default `mysql://root@127.0.0.1:3306/test`).
pub fn mysql_url() -> String {
    std::env::var("TRIBUTARY_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

/// Whether process `pid` is gone, or a zombie waiting to be reaped (Linux `/proc`).
pub fn process_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with(['Z', 'X']))
            .unwrap_or(true),
    }
}

pub mod capture;
