//! files connector (being written).
