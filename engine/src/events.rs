//! Ring-buffer readers (being written).
