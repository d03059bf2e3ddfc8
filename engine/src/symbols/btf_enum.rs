//! Enum values from raw BTF (placeholder, being written).

/// Why an enum could not be read.
#[derive(Debug, thiserror::Error)]
#[error("btf: {0}")]
pub struct BtfEnumError(pub String);

/// Every (name, value) of `enum NAME` in a raw BTF blob.
pub fn enum_values(_btf: &[u8], _name: &str) -> Result<Vec<(String, i64)>, BtfEnumError> {
    Err(BtfEnumError("not yet".into()))
}
