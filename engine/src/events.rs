//! Ring-buffer events: decoding and readiness.
//!
//! The kernel side wakes the reader only once a fill threshold is reached
//! (`wake_bytes`); the run loop also drains on a timer, so a quiet probe's few
//! events still arrive promptly without a wakeup per event. The rings are read
//! through their own mappings (`Ring`), the consumer position published in
//! batches.

use std::future::poll_fn;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
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
///
/// A record carries only the fields its header names (`abi::Event`), packed;
/// the event comes back whole, the slots the record did not carry zero.
pub fn decode(bytes: &[u8]) -> Option<Record> {
    let head: [u8; abi::EVENT_HEAD] = read(bytes)?;
    let flags = u32::from_ne_bytes([head[12], head[13], head[14], head[15]]);
    let len = abi::event_bytes(flags);
    let mut fields = bytes.get(abi::EVENT_HEAD..len)?;
    let mut event = Event {
        ts_ns: u64::from_ne_bytes([
            head[0], head[1], head[2], head[3], head[4], head[5], head[6], head[7],
        ]),
        cpu: u32::from_ne_bytes([head[8], head[9], head[10], head[11]]),
        flags,
        rec: abi::Record::default(),
    };
    let present = flags & abi::EVENT_FIELDS;
    // num[i] in slot order, 8 bytes each
    let mut nums = present & ((1 << abi::NUM) - 1);
    while nums != 0 {
        let i = nums.trailing_zeros() as usize;
        let (word, rest) = fields.split_first_chunk::<8>()?;
        event.rec.num[i] = u64::from_ne_bytes(*word);
        fields = rest;
        nums &= nums - 1;
    }
    // then addr[i] and dev, 16 bytes each
    for (i, slot) in event.rec.addr.iter_mut().enumerate() {
        if present & (1 << (abi::KEY_ADDR0 + i as u32)) != 0 {
            let (bytes, rest) = fields.split_first_chunk::<16>()?;
            *slot = *bytes;
            fields = rest;
        }
    }
    if present & (1 << abi::KEY_DEV) != 0 {
        let (bytes, _) = fields.split_first_chunk::<{ abi::DEV_LEN }>()?;
        event.rec.dev = *bytes;
    }
    if flags & abi::EVENT_PACKET == 0 {
        return Some(Record {
            event,
            packet: None,
        });
    }
    let rest = &bytes[len..];
    let packet: Packet = read(rest)?;
    let data = &rest[std::mem::size_of::<Packet>()..];
    let n = (packet.cap_len as usize).min(data.len());
    Some(Record {
        event,
        packet: Some((packet, data[..n].to_vec())),
    })
}

/// A ring buffer's shared pages, mapped by this reader: the consumer
/// position (read-write), then the producer position and the data (read-only;
/// the kernel maps the data twice in a row, so a record that wraps around the
/// end is contiguous).
///
/// Read here rather than through aya's `RingBuf::next`, which publishes the
/// consumer position with a store after every record, to a cache line every
/// program's reserve reads. Here the position is published every
/// `publish_every` bytes (a sixteenth of the ring, at most 16 KiB) and
/// whenever the reader stops; records are decoded where they lie.
struct Ring {
    /// Keeps the map (its fd and aya's own mappings) alive.
    _map: RingBuf<MapData>,
    consumer: Mapping,
    producer: Mapping,
    /// Data bytes (a power of two).
    mask: usize,
    /// Where the next record starts.
    pos: usize,
    /// The position the kernel was last told.
    published: usize,
    /// The producer position last read.
    end: usize,
    publish_every: usize,
}

/// One `mmap` of a ring's fd, unmapped on drop.
struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
}

impl Mapping {
    fn new(fd: BorrowedFd<'_>, len: usize, offset: usize, prot: libc::c_int) -> io::Result<Self> {
        let offset = libc::off_t::try_from(offset).map_err(io::Error::other)?;
        // SAFETY: a fresh shared mapping of the ring's fd, as the kernel
        // documents for BPF_MAP_TYPE_RINGBUF; nothing else aliases it mutably.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                offset,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping { ptr, len })
    }

    fn word(&self) -> &AtomicUsize {
        // SAFETY: the mapping is at least a page, page-aligned; the kernel
        // and this reader access the position atomically.
        unsafe { &*self.ptr.cast::<AtomicUsize>() }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: mapped in Mapping::new with this length; no reference into it outlives self.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

/// `max_entries` of a map: a ring's data bytes.
fn max_entries(fd: BorrowedFd<'_>) -> io::Result<usize> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))?;
    info.lines()
        .find_map(|l| l.strip_prefix("max_entries:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| io::Error::other("no max_entries in the ring's fdinfo"))
}

const RINGBUF_BUSY: u32 = 1 << 31;
const RINGBUF_DISCARD: u32 = 1 << 30;
const RINGBUF_HEADER: usize = 8;

impl Ring {
    fn new(map: RingBuf<MapData>) -> io::Result<Self> {
        let fd = map.as_fd();
        let size = max_entries(fd)?;
        if !size.is_power_of_two() {
            return Err(io::Error::other(format!("ring of {size} bytes")));
        }
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
            .map_err(io::Error::other)?;
        let consumer = Mapping::new(fd, page, 0, libc::PROT_READ | libc::PROT_WRITE)?;
        let producer = Mapping::new(fd, page + 2 * size, page, libc::PROT_READ)?;
        let pos = consumer.word().load(Ordering::Acquire);
        Ok(Ring {
            _map: map,
            consumer,
            producer,
            mask: size - 1,
            pos,
            published: pos,
            end: pos,
            publish_every: (size / 16).clamp(RINGBUF_HEADER, 16 << 10),
        })
    }

    /// Tells the kernel the records before `pos` are read: their space is free.
    fn publish(&mut self) {
        if self.published != self.pos {
            self.consumer.word().store(self.pos, Ordering::Release);
            self.published = self.pos;
        }
    }

    /// The next committed record, decoded; `None` when there is none yet
    /// (the position is then published). A record too short to decode is
    /// consumed and skipped: it counts as undelivered (offered, never
    /// handed to its consumer).
    fn next(&mut self) -> Option<Record> {
        loop {
            if self.pos == self.end {
                self.publish();
                self.end = self.producer.word().load(Ordering::Acquire);
                if self.pos == self.end {
                    return None;
                }
            }
            let page = self.producer.len - 2 * (self.mask + 1);
            let at = page + (self.pos & self.mask);
            // SAFETY: `at` is inside the first copy of the data pages and a
            // record (at most the ring's size) ends inside the second; the
            // header is 8-byte aligned and the kernel commits it atomically.
            let header = unsafe { &*self.producer.ptr.cast::<u8>().add(at).cast::<AtomicU32>() }
                .load(Ordering::Acquire);
            if header & RINGBUF_BUSY != 0 {
                // reserved, not yet committed: later
                self.publish();
                return None;
            }
            let len = (header & !(RINGBUF_BUSY | RINGBUF_DISCARD)) as usize;
            if len > self.mask + 1 - RINGBUF_HEADER {
                // never from the kernel: stop reading this ring rather than run off it
                return None;
            }
            // SAFETY: as above; the record's bytes were written before its
            // header was committed (the Acquire load pairs with the kernel's xchg).
            let bytes = unsafe {
                std::slice::from_raw_parts(
                    self.producer.ptr.cast::<u8>().add(at + RINGBUF_HEADER),
                    len,
                )
            };
            let rec = if header & RINGBUF_DISCARD != 0 {
                None
            } else {
                decode(bytes)
            };
            self.pos += (RINGBUF_HEADER + len).next_multiple_of(8);
            if self.pos - self.published >= self.publish_every {
                self.publish();
            }
            if rec.is_some() {
                return rec;
            }
        }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        self.publish();
    }
}

/// The ring buffers of a session's `on_event` instances, pollable together.
#[derive(Default)]
pub struct Rings {
    rings: Vec<(InstanceId, Ring, AsyncFd<OwnedFd>)>,
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
        self.rings.push((id, Ring::new(ring)?, fd));
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
            if let Some(rec) = ring.next() {
                self.turn = (i + 1) % n;
                return Some((*id, rec));
            }
        }
        None
    }

    /// Tells the kernel what was read of every ring: the caller stops taking
    /// records for now (its time budget, a stop request).
    pub fn publish(&mut self) {
        for (_, ring, _) in &mut self.rings {
            ring.publish();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use vprobe_probes::{FieldDef, ProbeDef, Slot, CATALOG};

    use super::*;
    use crate::filter;
    use crate::plan::{CallbackId, CaptureTarget, Consumer, Origin, ProbeRequest};
    use crate::symbols::Symbols;

    /// A record as a program writes it (`vp_event_fill` in vprobe.bpf.h): the
    /// header, then the fields `fields` names in slot order.
    fn pack(event: &Event, fields: u32) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&event.ts_ns.to_ne_bytes());
        out.extend_from_slice(&event.cpu.to_ne_bytes());
        out.extend_from_slice(&event.flags.to_ne_bytes());
        for (i, v) in event.rec.num.iter().enumerate() {
            if fields & (1 << i) != 0 {
                out.extend_from_slice(&v.to_ne_bytes());
            }
        }
        for (i, a) in event.rec.addr.iter().enumerate() {
            if fields & (1 << (abi::KEY_ADDR0 + i as u32)) != 0 {
                out.extend_from_slice(a);
            }
        }
        if fields & (1 << abi::KEY_DEV) != 0 {
            out.extend_from_slice(&event.rec.dev);
        }
        out
    }

    /// A record with a different value in every slot, used by the probe or not.
    fn every_slot_set() -> abi::Record {
        let mut rec = abi::Record::default();
        for (i, v) in rec.num.iter_mut().enumerate() {
            *v = 0x0101_0101_0101_0101 * (i as u64 + 1);
        }
        for (i, a) in rec.addr.iter_mut().enumerate() {
            for (j, b) in a.iter_mut().enumerate() {
                *b = (0x40 + 16 * i + j) as u8;
            }
        }
        rec.dev[..6].copy_from_slice(b"mvtap0");
        rec
    }

    fn request(probe: &'static ProbeDef, consumer: Consumer) -> ProbeRequest {
        ProbeRequest {
            probe,
            filters: Vec::new(),
            consumer,
            rate: None,
            origin: Origin::default(),
        }
    }

    /// The slot of `f` in `rec`, as bytes.
    fn slot(rec: &abi::Record, f: &FieldDef) -> Vec<u8> {
        match f.slot {
            Slot::Num(i) => rec.num[i as usize].to_ne_bytes().to_vec(),
            Slot::Addr(i) => rec.addr[i as usize].to_vec(),
            Slot::Dev => rec.dev.to_vec(),
        }
    }

    /// The decoded record holds the probe's fields as the full one does, and
    /// zeros in every other slot.
    fn same_fields(probe: &ProbeDef, decoded: &abi::Record, full: &abi::Record) {
        let mut only = abi::Record::default();
        for f in probe.fields {
            assert_eq!(slot(decoded, f), slot(full, f), "{}.{}", probe.name, f.name);
            match f.slot {
                Slot::Num(i) => only.num[i as usize] = full.num[i as usize],
                Slot::Addr(i) => only.addr[i as usize] = full.addr[i as usize],
                Slot::Dev => only.dev = full.dev,
            }
        }
        assert_eq!(decoded, &only, "{}: a slot it has no field in", probe.name);
    }

    #[test]
    fn compact_records_carry_every_field_of_their_attach_point() {
        let symbols = Symbols::from_parts(None, Vec::new());
        let full = every_slot_set();
        // skb.drop has addresses and a dev; tcp.retransmit leaves slots out
        for name in ["skb.drop", "tcp.retransmit", "dev.xmit"] {
            assert!(CATALOG.iter().any(|p| p.name == name));
        }
        for probe in CATALOG {
            let events = Consumer::Events {
                callback: CallbackId(0),
                fields: Default::default(),
            };
            let s = filter::settings(&request(probe, events), &symbols).unwrap();
            assert_eq!(s.event_bytes as usize, abi::event_bytes(s.event_fields));
            assert!(s.event_bytes as usize <= std::mem::size_of::<Event>());
            let event = Event {
                ts_ns: 123_456_789,
                cpu: 1,
                flags: s.event_fields,
                rec: full,
            };
            let bytes = pack(&event, s.event_fields);
            assert_eq!(bytes.len(), s.event_bytes as usize, "{}", probe.name);
            let rec = decode(&bytes).unwrap();
            assert!(rec.packet.is_none());
            assert_eq!((rec.event.ts_ns, rec.event.cpu), (123_456_789, 1));
            same_fields(probe, &rec.event.rec, &full);
            // one byte short of its fields: not a record
            assert!(
                decode(&bytes[..bytes.len() - 1]).is_none(),
                "{}",
                probe.name
            );
        }
        // the probes with addresses and a device name carry them compactly
        let drop = vprobe_probes::find("skb.drop").unwrap();
        let s = filter::settings(
            &request(
                drop,
                Consumer::Events {
                    callback: CallbackId(0),
                    fields: Default::default(),
                },
            ),
            &symbols,
        )
        .unwrap();
        assert_ne!(s.event_fields & (1 << abi::KEY_ADDR0), 0);
        assert_ne!(s.event_fields & (1 << abi::KEY_DEV), 0);
        assert!((s.event_bytes as usize) < std::mem::size_of::<Event>());
    }

    #[test]
    fn captures_decode_after_their_compact_fields() {
        let symbols = Symbols::from_parts(None, Vec::new());
        let full = every_slot_set();
        for probe in CATALOG.iter().filter(|p| p.capture.as_str() != "none") {
            let capture = Consumer::Capture(CaptureTarget {
                path: PathBuf::from("x.pcapng"),
                snaplen: 64,
            });
            let s = filter::settings(&request(probe, capture), &symbols).unwrap();
            let event = Event {
                ts_ns: 7,
                cpu: 0,
                flags: s.event_fields | abi::EVENT_PACKET,
                rec: full,
            };
            let packet = Packet {
                wire_len: 1514,
                cap_len: 5,
                link: abi::LINK_ETHERNET,
                pad: 0,
            };
            let mut bytes = pack(&event, s.event_fields);
            // the packet header at event_bytes, its bytes, the rest of the reserved snaplen
            bytes.extend_from_slice(&packet.wire_len.to_ne_bytes());
            bytes.extend_from_slice(&packet.cap_len.to_ne_bytes());
            bytes.extend_from_slice(&packet.link.to_ne_bytes());
            bytes.extend_from_slice(&packet.pad.to_ne_bytes());
            bytes.extend_from_slice(b"\x01\x02\x03\x04\x05");
            bytes.resize(s.event_bytes as usize + 16 + 64, 0xee);
            let rec = decode(&bytes).unwrap();
            same_fields(probe, &rec.event.rec, &full);
            let (p, data) = rec.packet.expect("a capture's packet");
            assert_eq!(p, packet, "{}", probe.name);
            assert_eq!(data, b"\x01\x02\x03\x04\x05", "{}", probe.name);
            // a capture record without its packet header is not one
            assert!(decode(&bytes[..s.event_bytes as usize + 15]).is_none());
        }
    }
}
