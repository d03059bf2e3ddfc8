//! The wire format of `vprobe rr` and `vprobe serve`, and its limits.
//!
//! Each connection begins with the client's 16-byte hello: `VPRR`, the
//! protocol version, the request size and the response size (each a u32,
//! big-endian). The server answers `VPOK` and from then on reads requests of
//! the request size and writes a response of the response size for each; it
//! closes a connection whose hello is foreign or out of range. The limits
//! here are the only ones: [`RrOptions::validate`] (the CLI, scripts) and the
//! server reading a hello both check them.

use std::io::{self, Read};
use std::net::TcpStream;

use super::OptionsError;
#[cfg(doc)]
use super::RrOptions;

/// `vprobe serve`'s default port: netperf's 12865 plus one, so a netserver
/// and a vprobe server can run side by side (the protocols differ).
pub const DEFAULT_PORT: u16 = 12866;

/// Largest request or response, bytes.
pub const MAX_MESSAGE: usize = 16 << 20;

/// Most streams in one run.
pub const MAX_STREAMS: usize = 4096;

/// Length of the client's hello.
pub(crate) const HELLO_LEN: usize = 16;
const HELLO_MAGIC: &[u8; 4] = b"VPRR";
/// The server's answer.
pub(crate) const HELLO_OK: &[u8; 4] = b"VPOK";
const PROTOCOL_VERSION: u32 = 1;

/// Checks a number of streams against [`MAX_STREAMS`].
pub fn check_streams(streams: usize) -> Result<(), OptionsError> {
    if (1..=MAX_STREAMS).contains(&streams) {
        Ok(())
    } else {
        Err(OptionsError::Streams(streams))
    }
}

/// What a client asks the server for: the sizes of its messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    /// Bytes per request.
    pub request_size: usize,
    /// Bytes per response.
    pub response_size: usize,
}

/// Why a server refuses a hello.
#[derive(Debug, thiserror::Error)]
pub enum HelloError {
    /// Not `VPRR`, or another version.
    #[error("not a vprobe rr client (or another version)")]
    Foreign,
    /// A size beyond the limits.
    #[error(transparent)]
    Size(#[from] OptionsError),
}

impl Hello {
    /// Checks both sizes against [`MAX_MESSAGE`].
    pub fn check(&self) -> Result<(), OptionsError> {
        for (what, size) in [
            ("request size", self.request_size),
            ("response size", self.response_size),
        ] {
            if !(1..=MAX_MESSAGE).contains(&size) {
                return Err(OptionsError::MessageSize { what, size });
            }
        }
        Ok(())
    }

    /// The hello as sent (the sizes are checked first, so they fit a u32).
    pub(crate) fn encode(&self) -> [u8; HELLO_LEN] {
        let mut b = [0u8; HELLO_LEN];
        b[..4].copy_from_slice(HELLO_MAGIC);
        b[4..8].copy_from_slice(&PROTOCOL_VERSION.to_be_bytes());
        b[8..12].copy_from_slice(&(self.request_size as u32).to_be_bytes());
        b[12..16].copy_from_slice(&(self.response_size as u32).to_be_bytes());
        b
    }

    /// A client's hello, checked.
    pub(crate) fn decode(b: &[u8; HELLO_LEN]) -> Result<Hello, HelloError> {
        let word = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        if &b[..4] != HELLO_MAGIC || word(4) != PROTOCOL_VERSION {
            return Err(HelloError::Foreign);
        }
        let hello = Hello {
            request_size: word(8) as usize,
            response_size: word(12) as usize,
        };
        hello.check()?;
        Ok(hello)
    }
}

/// Reads exactly `buf.len()` bytes; `Ok(false)` on a clean end of stream
/// before the first byte.
pub(crate) fn read_full(mut s: &TcpStream, buf: &mut [u8]) -> io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match s.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed in the middle of a message",
                ))
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hello_reads_back() {
        let h = Hello {
            request_size: 64,
            response_size: MAX_MESSAGE,
        };
        let b = h.encode();
        assert_eq!(&b[..4], b"VPRR");
        assert_eq!(Hello::decode(&b).unwrap(), h);
    }

    #[test]
    fn the_server_refuses_what_the_client_would() {
        let mut b = Hello {
            request_size: 1,
            response_size: 1,
        }
        .encode();
        b[12..16].copy_from_slice(&(MAX_MESSAGE as u32 + 1).to_be_bytes());
        let e = Hello::decode(&b).unwrap_err();
        assert!(
            matches!(
                e,
                HelloError::Size(OptionsError::MessageSize {
                    what: "response size",
                    ..
                })
            ),
            "{e}"
        );
        b[8..12].copy_from_slice(&0u32.to_be_bytes());
        assert!(matches!(Hello::decode(&b), Err(HelloError::Size(_))));
        b[4..8].copy_from_slice(&2u32.to_be_bytes());
        assert!(matches!(Hello::decode(&b), Err(HelloError::Foreign)));
    }

    #[test]
    fn streams_are_limited() {
        assert!(check_streams(1).is_ok() && check_streams(MAX_STREAMS).is_ok());
        for n in [0, MAX_STREAMS + 1] {
            assert_eq!(
                check_streams(n).unwrap_err().to_string(),
                format!("streams must be 1 to {MAX_STREAMS}, not {n}")
            );
        }
    }
}
