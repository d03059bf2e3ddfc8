//! Where the binary's words go. Data (tables, JSON, a run's prints and
//! summary) goes to stdout or the `-o FILE`; everything else — notes on what
//! happens, warnings, errors — goes to stderr as `vprobe: …` lines, as many
//! as `-q`/`-v` ask for. Progress bars share stderr: writes go through
//! [`Suspending`], which clears the bars first and redraws them after.
//!
//! Nothing here panics when a stream is closed or full (`eprintln!` would):
//! a note that cannot be written is dropped, a data write returns its error.

use std::fmt::Display;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::OnceLock;

use indicatif::MultiProgress;
use vprobe_engine::output::Verbosity;

use crate::exit;

static VERBOSITY: OnceLock<Verbosity> = OnceLock::new();

/// Sets how much is said (once, from `-q`/`-v`).
pub fn set_verbosity(v: Verbosity) {
    let _ = VERBOSITY.set(v);
}

/// How much is said.
pub fn verbosity() -> Verbosity {
    VERBOSITY.get().copied().unwrap_or_default()
}

/// A note on stderr (`vprobe: {text}`), unless `-q`.
pub fn note(text: impl Display) {
    if verbosity() >= Verbosity::Normal {
        line(&text);
    }
}

/// A warning or error on stderr (`vprobe: {text}`), even with `-q`.
pub fn warn(text: impl Display) {
    line(&text);
}

fn line(text: &dyn Display) {
    let mut e = io::stderr().lock();
    let _ = writeln!(e, "vprobe: {text}").and_then(|()| e.flush());
}

/// Where data goes: `file` (created or truncated now, so a bad path is a
/// usage error before any work) or stdout. Its errors say which it was.
pub fn data(file: Option<&Path>) -> anyhow::Result<Box<dyn Write>> {
    Ok(match file {
        Some(path) => Box::new(Named {
            inner: BufWriter::new(create(path)?),
            name: path.display().to_string(),
        }),
        None => Box::new(Named {
            inner: BufWriter::new(io::stdout()),
            name: "stdout".into(),
        }),
    })
}

/// A writer whose errors name it (`cannot write to stdout: …`), keeping
/// their kind (a closed pipe stays `BrokenPipe`).
struct Named<W: Write> {
    inner: W,
    name: String,
}

impl<W: Write> Named<W> {
    fn named(&self, e: io::Error) -> io::Error {
        io::Error::new(e.kind(), format!("cannot write to {}: {e}", self.name))
    }
}

impl<W: Write> Write for Named<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.inner.write(b).map_err(|e| self.named(e))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().map_err(|e| self.named(e))
    }
}

/// Creates (or truncates) a file named on the command line.
pub fn create(path: &Path) -> anyhow::Result<File> {
    File::create(path).map_err(|e| exit::usage(format!("cannot write {}: {e}", path.display())))
}

/// A writer that hands each flushed record to `inner` with the progress bars
/// cleared (indicatif's `suspend`), so no stale copy of a bar stays in the
/// scrollback. Without bars it only buffers up to the flush.
pub struct Suspending<W: Write> {
    inner: W,
    bars: Option<MultiProgress>,
    buf: Vec<u8>,
}

impl<W: Write> Suspending<W> {
    /// Writes to `inner`, around `bars` when there are any.
    pub fn new(inner: W, bars: Option<MultiProgress>) -> Self {
        Self {
            inner,
            bars,
            buf: Vec::new(),
        }
    }
}

impl<W: Write> Write for Suspending<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let Self { inner, bars, buf } = self;
        let mut put = || {
            let r = inner.write_all(buf).and_then(|()| inner.flush());
            buf.clear();
            r
        };
        match bars {
            Some(bars) => bars.suspend(put),
            None => put(),
        }
    }
}

impl<W: Write> Drop for Suspending<W> {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            let _ = self.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_pass_whole_at_each_flush() {
        let mut w = Suspending::new(Vec::new(), None);
        write!(w, "a").unwrap();
        writeln!(w, "b").unwrap();
        assert!(w.inner.is_empty(), "nothing before the flush");
        w.flush().unwrap();
        assert_eq!(w.inner, b"ab\n");
    }

    #[test]
    fn an_output_file_in_a_missing_directory_is_a_usage_error() {
        let e = data(Some(Path::new("/nonexistent-dir/out.txt")))
            .err()
            .unwrap();
        assert_eq!(exit::status_of(&e), exit::Status::Usage);
        assert!(e.to_string().contains("/nonexistent-dir/out.txt"), "{e}");
    }
}
