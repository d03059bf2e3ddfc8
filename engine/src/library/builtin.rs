//! The scripts shipped inside the binary: `scripts/*.rhai`, their modules
//! (`scripts/lib/`) and their tests (`scripts/tests/`), embedded by
//! engine/build.rs, so that a `cargo install`ed vprobe has them.

/// (path under `scripts/`, text), sorted by path.
const FILES: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/builtin.rs"));

/// The shipped file at `path` (`macvtap_drops.rhai`, `lib/lab.rhai`).
pub fn file(path: &str) -> Option<&'static str> {
    FILES.iter().find(|(p, _)| *p == path).map(|(_, t)| *t)
}

/// Every shipped file, as (path under `scripts/`, text).
pub fn files() -> impl Iterator<Item = (&'static str, &'static str)> {
    FILES.iter().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_scripts_are_embedded() {
        assert!(file("macvtap_drops.rhai").is_some_and(|t| t.contains("//! name: macvtap_drops")));
        assert!(files().any(|(p, _)| p.starts_with("lib/")));
        assert!(files().any(|(p, _)| p.starts_with("tests/") && p.ends_with(".test")));
    }
}
