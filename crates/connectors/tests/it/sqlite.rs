//! sqlite connector tests.
