//! /proc/kallsyms: kernel text symbols (placeholder, being written).

/// Sorted kernel text symbols.
#[derive(Debug, Default)]
pub struct Kallsyms {
    syms: Vec<(u64, String)>,
}

impl Kallsyms {
    /// Reads /proc/kallsyms.
    pub fn load() -> std::io::Result<Self> {
        Ok(Self { syms: Vec::new() })
    }
    /// `addr` → (symbol, offset).
    pub fn resolve(&self, _addr: u64) -> Option<(&str, u64)> {
        self.syms.first().map(|(_, s)| (s.as_str(), 0))
    }
    /// Address range of `name`.
    pub fn range(&self, _name: &str) -> Option<(u64, u64)> {
        None
    }
}
