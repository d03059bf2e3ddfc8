//! The run loop (being written).
