//! sqlite connector (being written).
