//! files connector tests.
