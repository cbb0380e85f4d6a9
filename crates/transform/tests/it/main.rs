//! Integration tests of SQL models against real Delta tables in a temporary lake.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod dedupe;
mod errors;
mod expectations;
mod materializations;
mod support;
