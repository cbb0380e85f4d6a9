//! postgres connector tests.
