//! Where everything the session prints goes: one ordered channel, drained by
//! a printer thread that hands it to reedline's external printer while the
//! editor runs (printed above the line being edited, which stays intact) and
//! writes it to stdout once the editor is gone.
//!
//! The hand-off channel to reedline has no buffer (a rendezvous): a batch is
//! either taken by reedline or still in the printer thread's hands. When the
//! editor ends, its end of the channel closes, the hand-off fails and gives
//! the batch back, and the printer thread writes it to stdout itself: nothing
//! is lost or reordered at the end of a session. Senders never block, so the
//! engine never waits for the terminal.

use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;
use std::time::Duration;

/// A message to the printer thread.
enum Msg {
    /// Text to print; a final newline is implied.
    Text(String),
    /// Answer once every earlier text has been handed on.
    Mark(Sender<()>),
}

/// A cloneable handle that prints through the printer thread.
#[derive(Clone)]
pub struct Sink {
    tx: Sender<Msg>,
}

impl Sink {
    /// Starts the printer thread. `to_editor` is the sending end of the
    /// editor's external printer.
    pub fn start(to_editor: SyncSender<String>) -> io::Result<(Sink, JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("vprobe-printer".into())
            .spawn(move || forward(rx, to_editor))?;
        Ok((Sink { tx }, thread))
    }

    /// Prints `text` (a final newline is implied; several lines are fine).
    pub fn line(&self, text: impl Into<String>) {
        // the printer thread outlives every sink; if it died, there is no
        // terminal left to tell
        let _ = self.tx.send(Msg::Text(text.into()));
    }

    /// Waits (at most `limit`) until everything printed so far has been
    /// handed to the editor or written: the next prompt then comes after it.
    pub fn settle(&self, limit: Duration) {
        let (tx, rx) = mpsc::channel();
        if self.tx.send(Msg::Mark(tx)).is_ok() {
            let _ = rx.recv_timeout(limit);
        }
    }

    /// A writer for the engine's text output: each flush is one message.
    pub fn writer(&self) -> SinkWriter {
        SinkWriter {
            sink: self.clone(),
            buf: Vec::new(),
        }
    }
}

fn forward(rx: Receiver<Msg>, to_editor: SyncSender<String>) {
    let mut editor = Some(to_editor);
    while let Ok(first) = rx.recv() {
        // batch whatever else is waiting: one hand-off per batch
        let mut texts = Vec::new();
        let mut marks = Vec::new();
        for m in std::iter::once(first).chain(rx.try_iter()) {
            match m {
                Msg::Text(t) => texts.push(t),
                Msg::Mark(ack) => marks.push(ack),
            }
        }
        // everything before the marks is in this batch, about to be handed on
        for ack in marks {
            let _ = ack.send(());
        }
        if texts.is_empty() {
            continue;
        }
        let batch = texts.join("\n");
        let batch = match &editor {
            Some(e) => match e.send(batch) {
                Ok(()) => continue,
                Err(mpsc::SendError(back)) => {
                    editor = None;
                    back
                }
            },
            None => batch,
        };
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "{batch}").and_then(|()| out.flush());
    }
}

/// An `io::Write` that sends what was written at each flush (the engine's
/// [`vprobe_engine::output::TextOutput`] flushes after each record).
pub struct SinkWriter {
    sink: Sink,
    buf: Vec<u8>,
}

impl Write for SinkWriter {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&self.buf);
        // the printer implies the final newline
        let text = text.strip_suffix('\n').unwrap_or(&text).to_string();
        self.buf.clear();
        self.sink.line(text);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_go_to_the_editor_in_order_then_to_stdout_when_it_is_gone() {
        let (to_editor, from_sink) = mpsc::sync_channel::<String>(0);
        let (sink, thread) = Sink::start(to_editor).unwrap();
        let mut w = sink.writer();
        write!(w, "a\nb\n").unwrap();
        w.flush().unwrap();
        sink.line("c");
        sink.settle(Duration::from_secs(5));
        let mut got = String::new();
        while got.lines().count() < 3 {
            got.push_str(&from_sink.recv_timeout(Duration::from_secs(5)).unwrap());
            got.push('\n');
        }
        assert_eq!(got, "a\nb\nc\n");
        // the editor is gone: the printer writes on its own and ends with the sinks
        drop(from_sink);
        sink.line("to stdout");
        drop(w);
        drop(sink);
        thread.join().unwrap();
    }
}
