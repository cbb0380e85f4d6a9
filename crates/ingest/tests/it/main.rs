//! Integration tests of the bronze load as a library, without the binary: real PostgreSQL, real
//! files, a local lake, and the Python `deltalake` reader as an independent check.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod files;
mod postgres;
mod support;
