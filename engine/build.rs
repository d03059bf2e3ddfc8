//! Embeds the shipped scripts (`scripts/*.rhai`), their library
//! (`scripts/lib/`) and their tests (`scripts/tests/*.test`) in the engine, so
//! a `cargo install`ed binary has them (engine/src/library/builtin.rs).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let scripts = manifest.join("../scripts");
    // a directory: cargo re-runs this when anything under it changes
    println!("cargo:rerun-if-changed={}", scripts.display());
    let mut files = Vec::new();
    collect(&scripts, &scripts, &mut files);
    files.sort();
    let mut out = String::from("&[\n");
    for (rel, abs) in &files {
        let _ = writeln!(out, "    ({rel:?}, include_str!({abs:?})),");
    }
    out.push(']');
    let dest =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it")).join("builtin.rs");
    std::fs::write(&dest, out).expect("write builtin.rs");
}

/// Every `.rhai` and `.test` file under `dir`, as (path relative to `root`
/// with `/` separators, absolute path).
fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            collect(root, &path, out);
            continue;
        }
        let ext = path.extension().and_then(|x| x.to_str());
        if !matches!(ext, Some("rhai" | "test")) {
            continue;
        }
        let rel = path.strip_prefix(root).expect("under root");
        let rel: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let abs = path.canonicalize().unwrap_or(path.clone());
        out.push((rel.join("/"), abs.to_string_lossy().into_owned()));
    }
}
