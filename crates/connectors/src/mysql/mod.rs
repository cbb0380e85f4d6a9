//! mysql connector (being written).
