//! `import "net" as net;`: modules come from the script library
//! ([`crate::library`]), never from elsewhere. Each module is compiled and
//! run once per script, under the same sandbox limits as the script.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;

use rhai::{Engine, EvalAltResult, Module, ModuleResolver, Position, Scope, Shared};

type SharedModule = Shared<Module>;

use crate::library::SearchPath;
use crate::message::with_causes;

/// Resolves a script's imports through the search path, the script's own
/// folder first.
pub(super) struct Imports {
    search: SearchPath,
    folder: Option<PathBuf>,
    /// Modules already run, by source name.
    loaded: RefCell<BTreeMap<String, SharedModule>>,
}

impl Imports {
    pub fn new(search: SearchPath, folder: Option<PathBuf>) -> Self {
        Imports {
            search,
            folder,
            loaded: RefCell::new(BTreeMap::new()),
        }
    }
}

impl ModuleResolver for Imports {
    fn resolve(
        &self,
        engine: &Engine,
        _importer: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<SharedModule, Box<EvalAltResult>> {
        let file = self
            .search
            .module(self.folder.as_deref(), path)
            .map_err(|e| Box::new(EvalAltResult::ErrorRuntime(with_causes(&e).into(), pos)))?;
        let source = file.source_name().to_string();
        if let Some(m) = self.loaded.borrow().get(&source) {
            return Ok(m.clone());
        }
        let in_module =
            |e: Box<EvalAltResult>| Box::new(EvalAltResult::ErrorInModule(source.clone(), e, pos));
        // errors past what Rhai can number could not be located
        if let Err(e) = super::source::check_shape(&file.text) {
            let (line, col) = e.position();
            return Err(in_module(Box::new(EvalAltResult::ErrorRuntime(
                format!("{source}:{line}:{col}: {e}").into(),
                Position::NONE,
            ))));
        }
        let mut ast = engine
            .compile(&file.text)
            .map_err(|e| in_module(e.into()))?;
        ast.set_source(source.as_str());
        let module: SharedModule = Module::eval_ast_as_new(Scope::new(), &ast, engine)
            .map_err(in_module)?
            .into();
        self.loaded.borrow_mut().insert(source, module.clone());
        Ok(module)
    }
}
