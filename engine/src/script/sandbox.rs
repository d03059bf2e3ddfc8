//! The limits every script runs under, and where `import` may read from.

use std::path::{Path, PathBuf};

use rhai::module_resolvers::{FileModuleResolver, ModuleResolversCollection};
use rhai::Engine;

/// Operations per evaluation: the top level, one REPL line, or one callback.
pub const MAX_OPERATIONS: u64 = 1_000_000;
/// Nested function calls.
pub const MAX_CALL_LEVELS: usize = 64;
/// Expression nesting at the top level and inside functions.
pub const MAX_EXPR_DEPTHS: (usize, usize) = (64, 32);
/// Bytes in one string.
pub const MAX_STRING_SIZE: usize = 1 << 20;
/// Elements in one array, entries in one map.
pub const MAX_COLLECTION_SIZE: usize = 100_000;
/// Modules imported by one evaluation.
pub const MAX_MODULES: usize = 64;

/// Sets every limit a script runs under. The engine registers no file or
/// process access: a script reaches the outside only through the vprobe API
/// (and `import`, which reads `.rhai` files from the [`module_dirs`]).
pub fn harden(engine: &mut Engine) {
    // Rhai counts operations per `eval`/call; the script module resets the
    // count before each evaluation so the budget is per callback.
    engine.set_max_operations(MAX_OPERATIONS);
    engine.set_max_call_levels(MAX_CALL_LEVELS);
    engine.set_max_expr_depths(MAX_EXPR_DEPTHS.0, MAX_EXPR_DEPTHS.1);
    engine.set_max_string_size(MAX_STRING_SIZE);
    engine.set_max_array_size(MAX_COLLECTION_SIZE);
    engine.set_max_map_size(MAX_COLLECTION_SIZE);
    engine.set_max_modules(MAX_MODULES);
}

/// Where `import "lib/net"` looks, in order: the script's folder, `scripts/lib`
/// under the current directory, then each folder of `VPROBE_PATH` (`:`-separated).
pub fn module_dirs(script_dir: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = script_dir {
        dirs.push(if d.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            d.to_path_buf()
        });
    }
    dirs.push(PathBuf::from("scripts/lib"));
    if let Some(path) = std::env::var_os("VPROBE_PATH") {
        dirs.extend(std::env::split_paths(&path).filter(|p| !p.as_os_str().is_empty()));
    }
    dirs
}

/// A resolver that tries each of `dirs` in turn.
pub fn module_resolver(dirs: &[PathBuf]) -> ModuleResolversCollection {
    let mut all = ModuleResolversCollection::new();
    for d in dirs {
        all.push(FileModuleResolver::new_with_path(d));
    }
    all
}

/// The folder of a script named by a path; `None` for `<expr>`-like names.
pub fn script_dir(source_name: &str) -> Option<&Path> {
    if source_name.starts_with('<') {
        return None;
    }
    Path::new(source_name).parent()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_folder_comes_first() {
        assert_eq!(script_dir("<expr>"), None);
        assert_eq!(script_dir("a/b.rhai"), Some(Path::new("a")));
        let dirs = module_dirs(script_dir("x.rhai"));
        assert_eq!(
            dirs[..2],
            [PathBuf::from("."), PathBuf::from("scripts/lib")]
        );
        assert_eq!(module_dirs(None)[0], PathBuf::from("scripts/lib"));
    }
}
