//! Integration tests of SQL models against real Delta tables in a temporary lake.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod dedupe;
mod errors;
mod expectations;
mod logic_change;
mod materializations;
mod support;
mod upstream_changes;
