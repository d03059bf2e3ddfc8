//! Ring-buffer events: decoding and readiness.
//!
//! The kernel side wakes the reader only once a fill threshold is reached
//! (`wake_bytes`); the run loop also drains on a timer, so a quiet probe's few
//! events still arrive promptly without a wakeup per event.

use std::future::poll_fn;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::task::Poll;

use aya::maps::{MapData, RingBuf};
use tokio::io::unix::AsyncFd;
use vprobe_probes::abi::{self, Event, Packet};

use crate::session::InstanceId;

/// One ring-buffer record: an event, and with a capture its packet.
#[derive(Clone, Debug)]
pub struct Record {
    /// The event.
    pub event: Event,
    /// A capture's packet header and the bytes the kernel copied.
    pub packet: Option<(Packet, Vec<u8>)>,
}

/// Reads a plain-old-data `T` at the start of `bytes`, if they are long enough.
fn read<T: Copy>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < std::mem::size_of::<T>() {
        return None;
    }
    // SAFETY: only used with the abi's #[repr(C)] plain-old-data types, and the
    // length was checked; read_unaligned does not rely on the ring's alignment.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// Decodes one ring-buffer record; None if it is too short.
pub fn decode(bytes: &[u8]) -> Option<Record> {
    let event: Event = read(bytes)?;
    if event.flags & abi::EVENT_PACKET == 0 {
        return Some(Record {
            event,
            packet: None,
        });
    }
    let rest = &bytes[std::mem::size_of::<Event>()..];
    let packet: Packet = read(rest)?;
    let data = &rest[std::mem::size_of::<Packet>()..];
    let n = (packet.cap_len as usize).min(data.len());
    Some(Record {
        event,
        packet: Some((packet, data[..n].to_vec())),
    })
}

/// The ring buffers of a session's `on_event` instances, pollable together.
#[derive(Default)]
pub struct Rings {
    rings: Vec<(InstanceId, RingBuf<MapData>, AsyncFd<OwnedFd>)>,
    /// The ring [`Rings::take_one`] looks at first: rings take turns, so a
    /// flooded one does not starve the others.
    turn: usize,
}

impl Rings {
    /// Adds the ring of instance `id`.
    pub fn add(&mut self, id: InstanceId, ring: RingBuf<MapData>) -> io::Result<()> {
        let owned = ring.as_fd().try_clone_to_owned()?;
        // SAFETY: the AsyncFd owns its own duplicate of the ring's fd, so the fd
        // stays open (and registered with one epoll) for the AsyncFd's lifetime.
        let fd = unsafe { AsyncFd::register_with_interest(owned, tokio::io::Interest::READABLE) }
            .map_err(io::Error::from)?;
        self.rings.push((id, ring, fd));
        Ok(())
    }

    /// Removes the ring of a detached instance.
    pub fn remove(&mut self, id: InstanceId) {
        self.rings.retain(|(i, _, _)| *i != id);
    }

    /// Whether there is any ring.
    pub fn is_empty(&self) -> bool {
        self.rings.is_empty()
    }

    /// Waits until some ring is readable (never returns when there is none).
    pub async fn readable(&self) {
        poll_fn(|cx| {
            let mut ready = false;
            for (_, _, fd) in &self.rings {
                if let Poll::Ready(Ok(mut guard)) = fd.poll_read_ready(cx) {
                    // edge to level: the caller drains everything next
                    guard.clear_ready();
                    ready = true;
                }
            }
            if ready {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// Takes the next waiting record of some ring, with its instance; `None`
    /// when every ring is empty. One record at a time, so the caller decides
    /// between two records whether to go on (a time budget, a stop request)
    /// and what it did not take stays in the kernel's ring.
    pub fn take_one(&mut self) -> Option<(InstanceId, Record)> {
        let n = self.rings.len();
        for k in 0..n {
            let i = (self.turn + k) % n;
            let (id, ring, _) = &mut self.rings[i];
            // a record too short to decode is consumed and skipped: it counts
            // as undelivered (offered, never handed to its consumer)
            while let Some(item) = ring.next() {
                if let Some(rec) = decode(&item) {
                    self.turn = (i + 1) % n;
                    return Some((*id, rec));
                }
            }
        }
        None
    }
}
