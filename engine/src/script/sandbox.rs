//! The limits every script runs under, and where `import` may read from.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use std::rc::Rc;

use rhai::{Engine, EvalAltResult, GlobalRuntimeState, Module, ModuleResolver, Position, Scope};

use super::source::{self, SourceError};
use crate::message::with_causes;

/// A module as Rhai shares it (`rhai::Shared<Module>` without the `sync` feature).
type SharedModule = Rc<Module>;

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

/// Resolves `import "lib/net"` to `lib/net.rhai` in the first of its
/// folders that has it (as Rhai's file resolver would), read with
/// [`source::read`]: imports have the scripts' size limits and refusal of
/// what is not a regular file. Each file is compiled and run once.
pub struct ImportResolver {
    dirs: Vec<PathBuf>,
    cache: RefCell<HashMap<PathBuf, SharedModule>>,
}

impl ImportResolver {
    /// Looks in `dirs`, in order.
    pub fn new(dirs: Vec<PathBuf>) -> Self {
        Self {
            dirs,
            cache: RefCell::new(HashMap::new()),
        }
    }
}

impl ModuleResolver for ImportResolver {
    fn resolve(
        &self,
        engine: &Engine,
        _source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<SharedModule, Box<EvalAltResult>> {
        let global = &mut engine.new_global_runtime_state();
        let scope = &mut Scope::new();
        self.resolve_raw(engine, global, scope, path, pos)
    }

    fn resolve_raw(
        &self,
        engine: &Engine,
        global: &mut GlobalRuntimeState,
        scope: &mut Scope,
        path: &str,
        pos: Position,
    ) -> Result<SharedModule, Box<EvalAltResult>> {
        let in_module = |e: Box<EvalAltResult>| {
            Box::new(EvalAltResult::ErrorInModule(path.to_string(), e, pos))
        };
        let fail = |message: String| {
            in_module(EvalAltResult::ErrorRuntime(message.into(), Position::NONE).into())
        };
        for dir in &self.dirs {
            let mut file = dir.join(path);
            file.set_extension("rhai");
            if let Some(m) = self.cache.borrow().get(&file) {
                return Ok(m.clone());
            }
            let text = match source::read(&file) {
                Ok(t) => t,
                Err(SourceError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    continue
                }
                Err(e) => return Err(fail(with_causes(&e))),
            };
            if let Err(e) = source::check_shape(&text) {
                let (line, col) = e.position();
                return Err(fail(format!("{}:{line}:{col}: {e}", file.display())));
            }
            let mut ast = engine.compile(text).map_err(|e| in_module(e.into()))?;
            ast.set_source(path);
            let module: SharedModule = Module::eval_ast_as_new_raw(engine, scope, global, &ast)
                .map_err(in_module)?
                .into();
            self.cache.borrow_mut().insert(file, module.clone());
            return Ok(module);
        }
        Err(Box::new(EvalAltResult::ErrorModuleNotFound(
            path.to_string(),
            pos,
        )))
    }
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
