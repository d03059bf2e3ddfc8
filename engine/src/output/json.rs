//! placeholder, being written
use std::io::{self, Write};

use super::{Output, StartInfo, Summary};
use crate::agg::AggSnapshot;
use crate::value::Value;

/// Output writer.
pub struct JsonOutput<W: Write> {
    w: W,
}

impl<W: Write> JsonOutput<W> {
    /// Writes to `w`.
    pub fn new(w: W) -> Self {
        Self { w }
    }
}

impl<W: Write> Output for JsonOutput<W> {
    fn start(&mut self, _info: &StartInfo) -> io::Result<()> {
        Ok(())
    }
    fn aggregation(&mut self, agg: &AggSnapshot, _delta: bool) -> io::Result<()> {
        writeln!(self.w, "{:?}", agg)
    }
    fn text(&mut self, text: &str) -> io::Result<()> {
        writeln!(self.w, "{text}")
    }
    fn event(&mut self, _probe: &str, _fields: &[(String, Value)]) -> io::Result<()> {
        Ok(())
    }
    fn error(&mut self, message: &str) -> io::Result<()> {
        writeln!(self.w, "{message}")
    }
    fn summary(&mut self, _summary: &Summary) -> io::Result<()> {
        Ok(())
    }
}
