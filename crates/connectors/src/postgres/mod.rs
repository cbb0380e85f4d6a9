//! postgres connector (being written).
