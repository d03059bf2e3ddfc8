//! Loading, attaching and detaching program instances (placeholder, being written).

/// Session errors.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Placeholder.
    #[error("{0}")]
    Other(String),
}
