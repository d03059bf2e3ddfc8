//! Reading script text: [`read`] is the one function that reads a script or
//! a module it imports from a file, with the limits both share, and
//! [`check_shape`] the limits of any script text, however it came (a file,
//! `-e`, a REPL line, an import).
//!
//! A script file is small text: `vprobe check /dev/zero` must not grow
//! until memory runs out, and a FIFO must not block the tool. Rhai locates
//! errors in 16 bits (line and column up to 65535, then it saturates), so a
//! longer script or line is refused rather than given wrong error positions.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Bytes in one script or imported module.
pub const MAX_SOURCE_BYTES: u64 = 1 << 20;
/// Lines in one script or module: Rhai's line numbers stop at 65535.
pub const MAX_LINES: usize = u16::MAX as usize;
/// Characters in one line: Rhai's column numbers stop at 65535.
pub const MAX_LINE_CHARS: usize = u16::MAX as usize;

/// Why a script's text cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Opening or reading failed.
    #[error("cannot read {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
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
    /// Larger than [`MAX_SOURCE_BYTES`].
    #[error("cannot read {}: larger than {} bytes (scripts and modules are at most {} KiB)", path.display(), MAX_SOURCE_BYTES, MAX_SOURCE_BYTES / 1024)]
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
}

/// Text whose errors Rhai could not locate.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    /// More lines than Rhai can number.
    #[error("more than {MAX_LINES} lines: errors past that line could not be located (Rhai numbers lines in 16 bits); split it into modules")]
    TooManyLines,
    /// A line longer than Rhai can number the columns of.
    #[error("a line of more than {MAX_LINE_CHARS} characters: errors past that column could not be located (Rhai numbers columns in 16 bits)")]
    LineTooLong {
        /// The line (1-based).
        line: usize,
    },
}

impl ShapeError {
    /// (line, column) where the text stops being locatable.
    pub fn position(&self) -> (usize, usize) {
        match self {
            ShapeError::TooManyLines => (MAX_LINES + 1, 0),
            ShapeError::LineTooLong { line } => (*line, MAX_LINE_CHARS + 1),
        }
    }
}

/// What a file that is not regular is, for the error.
fn kind(t: std::fs::FileType) -> &'static str {
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

/// Reads the script or module at `path`: a regular file of at most
/// [`MAX_SOURCE_BYTES`] of UTF-8 text (its shape is checked where it is
/// compiled, with its name).
/// Never blocks on a FIFO (it is opened non-blocking, then refused) and never
/// reads more than the limit and one byte.
pub fn read(path: &Path) -> Result<String, SourceError> {
    let io = |source| SourceError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.file_type().is_file() {
        return Err(SourceError::NotRegular {
            path: path.to_path_buf(),
            kind: kind(meta.file_type()),
        });
    }
    if meta.len() > MAX_SOURCE_BYTES {
        return Err(SourceError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    // the size can change (or lie, as in /proc): read at most one byte more
    let mut bytes = Vec::new();
    file.take(MAX_SOURCE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_SOURCE_BYTES {
        return Err(SourceError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    String::from_utf8(bytes).map_err(|_| SourceError::NotText {
        path: path.to_path_buf(),
    })
}

/// Refuses text whose errors Rhai could not locate: more than [`MAX_LINES`]
/// lines, or a line of more than [`MAX_LINE_CHARS`] characters.
pub fn check_shape(text: &str) -> Result<(), ShapeError> {
    for (i, line) in text.split('\n').enumerate() {
        // an empty last line is the end of the file, not a line of its own
        if i >= MAX_LINES && !(i == MAX_LINES && line.is_empty()) {
            return Err(ShapeError::TooManyLines);
        }
        // bytes bound characters from above: count only long lines
        if line.len() > MAX_LINE_CHARS && line.chars().count() > MAX_LINE_CHARS {
            return Err(ShapeError::LineTooLong { line: i + 1 });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("vprobe-source-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_regular_file_is_read() {
        let p = dir().join("ok.rhai");
        std::fs::write(&p, "print(1);\n").unwrap();
        assert_eq!(read(&p).unwrap(), "print(1);\n");
    }

    #[test]
    fn devices_fifos_and_directories_are_refused_at_once() {
        let e = read(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot read /dev/zero: it is a character device, not a regular file"
        );
        let fifo = dir().join("fifo");
        let _ = std::fs::remove_file(&fifo);
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // no writer: a blocking open would wait forever
        let e = read(&fifo).unwrap_err();
        assert!(
            e.to_string().ends_with("it is a FIFO, not a regular file"),
            "{e}"
        );
        let e = read(&dir()).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("it is a directory, not a regular file"),
            "{e}"
        );
    }

    #[test]
    fn large_and_binary_files_are_refused() {
        let p = dir().join("big.rhai");
        std::fs::write(&p, vec![b' '; MAX_SOURCE_BYTES as usize + 1]).unwrap();
        assert!(matches!(read(&p), Err(SourceError::TooLarge { .. })));
        std::fs::write(&p, [0xff, 0xfe, 0x00]).unwrap();
        assert!(matches!(read(&p), Err(SourceError::NotText { .. })));
        // a file under /proc says it is empty and is not: still bounded
        assert!(read(Path::new("/proc/self/status")).is_ok());
    }

    #[test]
    fn text_errors_could_not_be_located_in_is_refused() {
        let lines = "\n".repeat(MAX_LINES - 1);
        check_shape(&lines).unwrap();
        check_shape(&format!("{lines}x")).unwrap();
        check_shape(&format!("{lines}x\n")).unwrap();
        let e = check_shape(&format!("{lines}x\ny")).unwrap_err();
        assert_eq!(e, ShapeError::TooManyLines);
        assert_eq!(e.position(), (65536, 0));
        check_shape(&"é".repeat(MAX_LINE_CHARS)).unwrap();
        let e = check_shape(&format!("1;\n{}", "x".repeat(MAX_LINE_CHARS + 1))).unwrap_err();
        assert_eq!(e, ShapeError::LineTooLong { line: 2 });
        assert_eq!(e.position(), (2, 65536));
    }
}
