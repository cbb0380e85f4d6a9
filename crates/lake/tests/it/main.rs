//! Integration tests of the lake as a library: Delta commits on a local folder and on Azure
//! storage (Azurite), read back by the Python `deltalake` reader as an independent check, and
//! the commit races another writer can cause.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod azure;
mod commits;
mod support;
