//! Finding the test services: see `tributary-testkit`.
#![allow(unused_imports)]

pub use tributary_testkit::{mysql_url, pg_url, services_required, unavailable, unique_name};
