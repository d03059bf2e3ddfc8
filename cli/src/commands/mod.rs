//! One module per subcommand, and what several share: finding a script.

pub mod check;
pub mod docs;
pub mod doctor;
pub mod lab;
pub mod list;
pub mod rr;
pub mod run;
pub mod scripts;
pub mod serve;
pub mod test;

use vprobe_engine::library::{ScriptFile, SearchPath};
use vprobe_engine::script::Options;

/// The script `what` (a name or a file), through the search path of the
/// environment (`$VPROBE_PATH`, the XDG folders, the built-in scripts).
pub fn find_script(what: &str) -> anyhow::Result<ScriptFile> {
    Ok(SearchPath::from_env().find(what)?)
}

/// How to compile `file`: its parameters, and imports through the search path.
pub fn options(
    file: Option<&ScriptFile>,
    params: Vec<(String, String)>,
    allow_exec: bool,
) -> Options {
    Options {
        params: params.into_iter().collect(),
        allow_exec,
        search: SearchPath::from_env(),
        folder: file.and_then(|f| f.folder()).map(Into::into),
    }
}
