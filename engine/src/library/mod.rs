//! The script library: where `vprobe run NAME`, `check`, the REPL's
//! `:load`, `vprobe scripts` and a script's `import` find scripts and
//! modules, and the one place script files are read ([`read`]).
//!
//! A script named `NAME` (no `/`) is `NAME.rhai` in, in order:
//!
//! 1. each folder of `$VPROBE_PATH` (`:`-separated),
//! 2. the user's folder, `$XDG_DATA_HOME/vprobe/scripts` (`~/.local/share/vprobe/scripts`),
//! 3. the system folders, `vprobe/scripts` in each of `$XDG_DATA_DIRS`
//!    (`/usr/local/share` and `/usr/share`),
//! 4. the scripts shipped in the binary ([`builtin`]).
//!
//! A path (anything with a `/`, or an existing `FILE.rhai`) is read as given.
//! A module (`import "net"`) is `lib/net.rhai` in the importing script's own
//! folder, then in each folder above; names are relative to those folders
//! and never leave them (`..` and absolute paths are refused), like
//! SystemTap's tapset directories and Inspektor Gadget's catalogs: what a
//! script can load is what `vprobe scripts` lists.

pub mod builtin;

use std::fmt;
use std::path::{Path, PathBuf};

use vprobe_probes::suggest;

use crate::meta::{parse_meta, Meta};

/// Where a script or module was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Place {
    /// A path given on the command line (or beside such a script, for a module).
    Path,
    /// A folder of `$VPROBE_PATH`.
    VprobePath,
    /// The user's folder (`$XDG_DATA_HOME/vprobe/scripts`).
    User,
    /// A system folder (`$XDG_DATA_DIRS/vprobe/scripts`).
    System,
    /// Shipped inside the binary.
    BuiltIn,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Place::Path => "path",
            Place::VprobePath => "VPROBE_PATH",
            Place::User => "user",
            Place::System => "system",
            Place::BuiltIn => "built-in",
        })
    }
}

/// A folder scripts are looked for in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dir {
    /// Which kind of folder.
    pub place: Place,
    /// The folder.
    pub path: PathBuf,
}

/// The folders scripts and modules are found in, in order; the built-in
/// scripts come after them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SearchPath {
    dirs: Vec<Dir>,
}

/// A script or module, read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptFile {
    /// Its name: the file name without `.rhai` (`macvtap_drops`, `lab`).
    pub name: String,
    /// Where it was found.
    pub place: Place,
    /// Its file; `None` for a built-in one.
    pub path: Option<PathBuf>,
    /// Its text.
    pub text: String,
    /// How errors locate it.
    source_name: String,
}

impl ScriptFile {
    fn file(place: Place, path: PathBuf, text: String) -> ScriptFile {
        ScriptFile {
            name: stem(&path),
            place,
            source_name: path.display().to_string(),
            path: Some(path),
            text,
        }
    }

    fn builtin(rel: &str, text: &str) -> ScriptFile {
        ScriptFile {
            name: stem(Path::new(rel)),
            place: Place::BuiltIn,
            path: None,
            text: text.to_string(),
            source_name: format!("built-in:{rel}"),
        }
    }

    /// How errors locate it: its path, or `built-in:NAME.rhai`.
    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    /// Where it came from, for listings: the file, or `built-in`.
    pub fn location(&self) -> String {
        match &self.path {
            Some(p) => p.display().to_string(),
            None => "built-in".into(),
        }
    }

    /// The folder whose `lib/` its imports look in first: a file's own folder.
    pub fn folder(&self) -> Option<&Path> {
        self.path.as_deref().and_then(Path::parent).map(|d| {
            if d.as_os_str().is_empty() {
                Path::new(".")
            } else {
                d
            }
        })
    }
}

/// One script or module of a listing, with what it shadows.
#[derive(Clone, Debug)]
pub struct Listed {
    /// The file found first for its name.
    pub file: ScriptFile,
    /// Its header.
    pub meta: Meta,
    /// Later files of the same name, hidden by this one, as (place, location).
    pub shadows: Vec<(Place, String)>,
}

/// Why a script or module could not be found or read.
#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    /// The file exists but could not be read (or does not exist, for a path).
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A FIFO, a device, a directory, a socket.
    #[error("cannot read {}: it is {kind}, not a regular file", path.display())]
    NotRegular {
        /// The file.
        path: PathBuf,
        /// What it is (`a FIFO`, `a character device`, ...).
        kind: &'static str,
    },
    /// Larger than [`MAX_SCRIPT_BYTES`].
    #[error("cannot read {}: larger than {} bytes (scripts and modules are at most {} KiB)", path.display(), MAX_SCRIPT_BYTES, MAX_SCRIPT_BYTES / 1024)]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// Not UTF-8.
    #[error("cannot read {}: not UTF-8 text", path.display())]
    NotText {
        /// The file.
        path: PathBuf,
    },
    /// No script of that name anywhere.
    #[error(
        "no script `{name}`: not a file here, and not in {looked}{}",
        hint(suggestion)
    )]
    NoScript {
        /// As asked.
        name: String,
        /// Where it was looked for.
        looked: String,
        /// The closest name the library has.
        suggestion: Option<String>,
    },
    /// No module of that name anywhere.
    #[error(
        "module `{name}` not found: looked for lib/{name}.rhai in {looked}{}",
        hint(suggestion)
    )]
    NoModule {
        /// As imported.
        name: String,
        /// Where it was looked for.
        looked: String,
        /// The closest module name.
        suggestion: Option<String>,
    },
    /// A module name that would leave the library.
    #[error("import `{name}`: {why}; a module is a name like `net` or `net/ring`, found as lib/NAME.rhai in the script library (`vprobe scripts` lists it)")]
    Refused {
        /// As imported.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
}

fn hint(s: &Option<String>) -> String {
    s.as_ref()
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default()
}

/// Bytes in one script or module file.
pub const MAX_SCRIPT_BYTES: u64 = 1 << 20;

/// Reads a script or module file. The one place vprobe reads scripts, so
/// that what it accepts is decided once: a regular file (opened
/// non-blocking, so a FIFO is refused rather than waited on; a device is
/// refused rather than read until memory runs out) of at most
/// [`MAX_SCRIPT_BYTES`] of UTF-8 text, read with one byte more to tell.
pub fn read(path: &Path) -> Result<String, LibraryError> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| LibraryError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.file_type().is_file() {
        return Err(LibraryError::NotRegular {
            path: path.to_path_buf(),
            kind: file_kind(meta.file_type()),
        });
    }
    let too_large = || LibraryError::TooLarge {
        path: path.to_path_buf(),
    };
    if meta.len() > MAX_SCRIPT_BYTES {
        return Err(too_large());
    }
    // the size can change, or lie (as in /proc)
    let mut bytes = Vec::new();
    file.take(MAX_SCRIPT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_SCRIPT_BYTES {
        return Err(too_large());
    }
    String::from_utf8(bytes).map_err(|_| LibraryError::NotText {
        path: path.to_path_buf(),
    })
}

/// What a file that is not regular is, for the error.
fn file_kind(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

impl SearchPath {
    /// The search path from the environment: `$VPROBE_PATH`, the XDG user
    /// data folder, the XDG system data folders.
    pub fn from_env() -> SearchPath {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        let mut dirs = Vec::new();
        if let Some(p) = var("VPROBE_PATH") {
            for d in std::env::split_paths(&p).filter(|d| !d.as_os_str().is_empty()) {
                dirs.push(Dir {
                    place: Place::VprobePath,
                    path: d,
                });
            }
        }
        // XDG: relative values are invalid and ignored
        let user = var("XDG_DATA_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".local/share")));
        if let Some(u) = user {
            dirs.push(Dir {
                place: Place::User,
                path: u.join("vprobe/scripts"),
            });
        }
        let system: Vec<PathBuf> = match var("XDG_DATA_DIRS") {
            Some(v) => std::env::split_paths(&v)
                .filter(|p| p.is_absolute())
                .collect(),
            None => vec!["/usr/local/share".into(), "/usr/share".into()],
        };
        for s in system {
            dirs.push(Dir {
                place: Place::System,
                path: s.join("vprobe/scripts"),
            });
        }
        SearchPath::new(dirs)
    }

    /// A search path of these folders (then the built-in scripts); a
    /// folder given twice is searched once.
    pub fn new(dirs: Vec<Dir>) -> SearchPath {
        let mut out: Vec<Dir> = Vec::new();
        for d in dirs {
            if !out.iter().any(|o| o.path == d.path) {
                out.push(d);
            }
        }
        SearchPath { dirs: out }
    }

    /// The folders, in order (the built-in scripts come after them).
    pub fn dirs(&self) -> &[Dir] {
        &self.dirs
    }

    /// Where names are looked for, for messages.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .dirs
            .iter()
            .map(|d| format!("{} ({})", d.path.display(), d.place))
            .collect();
        parts.push("the built-in scripts".into());
        parts.join(", ")
    }

    /// The script `what`: a path (with a `/`, or an existing `FILE.rhai`),
    /// else a name looked up in the folders, then among the built-in scripts.
    pub fn find(&self, what: &str) -> Result<ScriptFile, LibraryError> {
        let as_path = Path::new(what);
        if what.contains('/') || (what.ends_with(".rhai") && as_path.is_file()) {
            return Ok(ScriptFile::file(
                Place::Path,
                as_path.to_path_buf(),
                read(as_path)?,
            ));
        }
        let name = what.strip_suffix(".rhai").unwrap_or(what);
        if let Some(found) = self.lookup(None, &format!("{name}.rhai"))? {
            return Ok(found);
        }
        let names: Vec<Listed> = self.scripts();
        Err(LibraryError::NoScript {
            name: name.to_string(),
            looked: self.describe(),
            suggestion: suggest(name, names.iter().map(|l| l.file.name.as_str())).map(String::from),
        })
    }

    /// The module `name` as `import` names it, for a script in `folder`.
    pub fn module(&self, folder: Option<&Path>, name: &str) -> Result<ScriptFile, LibraryError> {
        let name = module_name(name)?;
        if let Some(found) = self.lookup(folder, &format!("lib/{name}.rhai"))? {
            return Ok(ScriptFile { name, ..found });
        }
        let mut looked: Vec<String> = folder
            .map(|f| format!("{} (the script's folder)", f.display()))
            .into_iter()
            .collect();
        looked.push(self.describe());
        let modules = self.modules(folder);
        Err(LibraryError::NoModule {
            suggestion: suggest(&name, modules.iter().map(|l| l.file.name.as_str()))
                .map(String::from),
            name,
            looked: looked.join(", "),
        })
    }

    /// The first file at `rel` under `first` (if any), the folders, then built in.
    fn lookup(&self, first: Option<&Path>, rel: &str) -> Result<Option<ScriptFile>, LibraryError> {
        let first = first.map(|f| Dir {
            place: Place::Path,
            path: f.to_path_buf(),
        });
        for d in first.iter().chain(&self.dirs) {
            let p = d.path.join(rel);
            if p.is_file() {
                let text = read(&p)?;
                return Ok(Some(ScriptFile::file(d.place, p, text)));
            }
        }
        Ok(builtin::file(rel).map(|text| ScriptFile::builtin(rel, text)))
    }

    /// Every script the library has, by name; each name's first file, with
    /// the later ones it shadows. Files that cannot be read are left out.
    pub fn scripts(&self) -> Vec<Listed> {
        self.listing(None, "")
    }

    /// Every module (`lib/NAME.rhai`) reachable from a script in `folder`.
    pub fn modules(&self, folder: Option<&Path>) -> Vec<Listed> {
        self.listing(folder, "lib/")
    }

    fn listing(&self, first: Option<&Path>, under: &str) -> Vec<Listed> {
        let first = first.map(|f| Dir {
            place: Place::Path,
            path: f.to_path_buf(),
        });
        let mut all: Vec<(String, ScriptFile)> = Vec::new();
        for d in first.iter().chain(&self.dirs) {
            let base = d.path.join(under);
            let mut names = Vec::new();
            rhai_files(&base, "", under.is_empty(), &mut names);
            names.sort();
            for rel in names {
                let p = base.join(&rel);
                if let Ok(text) = read(&p) {
                    let name = rel.trim_end_matches(".rhai").to_string();
                    all.push((
                        name.clone(),
                        ScriptFile {
                            name,
                            ..ScriptFile::file(d.place, p, text)
                        },
                    ));
                }
            }
        }
        for (path, text) in builtin::files() {
            let Some(rel) = path.strip_prefix(under) else {
                continue;
            };
            let top_level = !rel.contains('/');
            if !rel.ends_with(".rhai") || (under.is_empty() && !top_level) {
                continue;
            }
            let name = rel.trim_end_matches(".rhai").to_string();
            all.push((
                name.clone(),
                ScriptFile {
                    name,
                    ..ScriptFile::builtin(path, text)
                },
            ));
        }
        let mut out: Vec<Listed> = Vec::new();
        for (name, file) in all {
            match out.iter_mut().find(|l| l.file.name == name) {
                Some(l) => l.shadows.push((file.place, file.location())),
                None => out.push(Listed {
                    meta: parse_meta(&file.text),
                    file,
                    shadows: Vec::new(),
                }),
            }
        }
        out.sort_by(|a, b| a.file.name.cmp(&b.file.name));
        out
    }

    /// The test file of a script found by name (`tests/NAME.test` in the
    /// folder it came from, or built in), as (location, text).
    pub fn test_of(&self, script: &ScriptFile) -> Option<(Option<PathBuf>, String)> {
        let rel = format!("tests/{}.test", script.name);
        match (&script.place, script.folder()) {
            (Place::BuiltIn, _) => builtin::file(&rel).map(|t| (None, t.to_string())),
            (_, Some(folder)) => {
                let p = folder.join(&rel);
                read(&p).ok().map(|t| (Some(p), t))
            }
            (_, None) => None,
        }
    }
}

/// The file name without `.rhai`.
fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `.rhai` files under `dir` (relative names with `/`), recursing into
/// subfolders unless `top_only`; `lib/` and `tests/` are not scripts.
fn rhai_files(dir: &Path, prefix: &str, top_only: bool, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        if path.is_dir() {
            // a bound on depth: a library is a few folders, not a tree to walk
            if !top_only && prefix.matches('/').count() < 4 {
                rhai_files(&path, &format!("{prefix}{name}/"), top_only, out);
            }
        } else if name.ends_with(".rhai") && path.is_file() {
            out.push(format!("{prefix}{name}"));
        }
    }
}

/// A module name as `import` gives it, checked to stay inside the library.
fn module_name(name: &str) -> Result<String, LibraryError> {
    let refuse = |why| LibraryError::Refused {
        name: name.to_string(),
        why,
    };
    if name.starts_with('/') {
        return Err(refuse("absolute paths are refused"));
    }
    let n = name.strip_suffix(".rhai").unwrap_or(name);
    if n.is_empty() {
        return Err(refuse("the name is empty"));
    }
    for part in n.split('/') {
        match part {
            ".." => {
                return Err(refuse(
                    "`..` is refused: modules never come from outside the library",
                ))
            }
            "" | "." => return Err(refuse("empty and `.` path components are refused")),
            _ if part.contains('\\') => return Err(refuse("`\\` is refused")),
            _ => {}
        }
    }
    Ok(n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> PathBuf {
        let d = std::env::temp_dir().join(format!("vprobe-read-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    // Regression: `vprobe check /dev/zero` grew to 4 GB, and a FIFO blocked.
    #[test]
    fn devices_fifos_and_directories_are_refused_at_once() {
        let e = read(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot read /dev/zero: it is a character device, not a regular file"
        );
        let fifo = tmp().join("fifo");
        let _ = std::fs::remove_file(&fifo);
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // no writer: a blocking open would wait forever
        let e = read(&fifo).unwrap_err();
        assert!(
            e.to_string().ends_with("it is a FIFO, not a regular file"),
            "{e}"
        );
        let e = read(&tmp()).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("it is a directory, not a regular file"),
            "{e}"
        );
    }

    #[test]
    fn large_and_binary_files_are_refused() {
        let p = tmp().join("big.rhai");
        std::fs::write(&p, vec![b' '; MAX_SCRIPT_BYTES as usize + 1]).unwrap();
        assert!(matches!(read(&p), Err(LibraryError::TooLarge { .. })));
        std::fs::write(&p, [0xff, 0xfe, 0x00]).unwrap();
        assert!(matches!(read(&p), Err(LibraryError::NotText { .. })));
        std::fs::write(&p, "print(1);\n").unwrap();
        assert_eq!(read(&p).unwrap(), "print(1);\n");
        // a file under /proc says it is empty and is not: still bounded
        assert!(read(Path::new("/proc/self/status")).is_ok());
    }

    fn temp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vprobe-lib-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("lib")).unwrap();
        d
    }

    #[test]
    fn names_are_found_in_order_and_shadow_later_ones() {
        let a = temp("order-a");
        let b = temp("order-b");
        std::fs::write(
            a.join("drops_by_reason.rhai"),
            "//! name: drops_by_reason\n//! version: 9\n",
        )
        .unwrap();
        std::fs::write(b.join("mine.rhai"), "//! name: mine\n").unwrap();
        std::fs::write(b.join("lib/util.rhai"), "fn f() { 1 }").unwrap();
        let sp = SearchPath::new(vec![
            Dir {
                place: Place::VprobePath,
                path: a.clone(),
            },
            Dir {
                place: Place::User,
                path: b.clone(),
            },
        ]);
        let f = sp.find("drops_by_reason").unwrap();
        assert_eq!(
            (f.place, f.path.as_deref()),
            (
                Place::VprobePath,
                Some(a.join("drops_by_reason.rhai").as_path())
            )
        );
        assert_eq!(sp.find("mine.rhai").unwrap().place, Place::User);
        assert_eq!(sp.find("macvtap_drops").unwrap().place, Place::BuiltIn);
        let listed = sp.scripts();
        let d = listed
            .iter()
            .find(|l| l.file.name == "drops_by_reason")
            .unwrap();
        assert_eq!(d.meta.version.as_deref(), Some("9"));
        assert_eq!(d.shadows, [(Place::BuiltIn, "built-in".to_string())]);
        assert!(
            listed.iter().all(|l| l.file.name != "util"),
            "modules are not scripts"
        );
        assert!(sp.modules(None).iter().any(|l| l.file.name == "util"));
        let e = sp.find("macvtap_drop").unwrap_err().to_string();
        assert!(e.contains("did you mean `macvtap_drops`?"), "{e}");
        let _ = std::fs::remove_dir_all(a);
        let _ = std::fs::remove_dir_all(b);
    }

    #[test]
    fn modules_stay_inside_the_library() {
        let sp = SearchPath::default();
        for bad in ["/etc/passwd", "../x", "a/../../b", "./x", ""] {
            let e = sp.module(None, bad).unwrap_err();
            assert!(matches!(e, LibraryError::Refused { .. }), "{bad}: {e}");
        }
        let e = sp.module(None, "../x").unwrap_err().to_string();
        assert!(e.contains("`..` is refused"), "{e}");
        let m = sp.module(None, "lab").unwrap();
        assert_eq!(
            (m.place, m.source_name()),
            (Place::BuiltIn, "built-in:lib/lab.rhai")
        );
        let e = sp.module(None, "labb").unwrap_err().to_string();
        assert!(e.contains("did you mean `lab`?"), "{e}");
    }

    #[test]
    fn a_path_is_read_as_given() {
        let d = temp("path");
        let p = d.join("x.rhai");
        std::fs::write(&p, "let a = 1;").unwrap();
        let f = SearchPath::default().find(p.to_str().unwrap()).unwrap();
        assert_eq!(
            (f.place, f.name.as_str(), f.folder()),
            (Place::Path, "x", Some(d.as_path()))
        );
        let e = SearchPath::default()
            .find(d.join("nope.rhai").to_str().unwrap())
            .unwrap_err();
        assert!(e.to_string().starts_with("cannot read "), "{e}");
        let _ = std::fs::remove_dir_all(d);
    }
}
