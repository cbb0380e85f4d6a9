//! mysql connector tests.
