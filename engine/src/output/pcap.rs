//! `.capture(..)`: the packets of events, written to a pcapng file that
//! Wireshark and tshark read.
//!
//! One interface block per device, network namespace and link type (the
//! Ethernet frames of `macvtap0` in one namespace, the raw IP packets of a
//! tun, the TCP segments of `tcp.retransmit`), real-time timestamps in
//! nanoseconds (`if_tsresol` 9), and per packet a comment with what the
//! probe said about it: the attach point, the drop reason by name, the
//! location, the layer, the ring's state, a retransmission's kind. tshark
//! shows the comment as `frame.comment`.
//!
//! `tcp.retransmit` has no packet to copy (the kernel builds the headers on a
//! clone later): its packets are an IPv4/IPv6 and TCP header built here from
//! the socket and the segment's control block, as the record carries them;
//! the payload is not captured and the checksums and window are not known
//! (zero checksums, window 65535).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Read};
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::DataLink;
use vprobe_probes::abi::{self, Event, Packet};
use vprobe_probes::{Capture, ProbeDef};

use crate::symbols::Symbols;
use crate::value::{decode, Value};

/// The first bytes of every pcapng file: a Section Header Block's type.
const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

/// Fields the packet itself (or its interface block) shows: left out of the comment.
const IN_THE_PACKET: &[&str] = &[
    "dev",
    "ifindex",
    "netns",
    "saddr",
    "daddr",
    "sport",
    "dport",
    "seq",
    "ack",
    "tcp_flags",
    "tcp_len",
    "len",
    "protocol",
    "family",
    "ring_producer",
    "ring_consumer_head",
    "ring_consumer_tail",
];

/// Why a capture file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// Not a `.pcapng` name.
    #[error("capture file `{0}` must end in .pcapng")]
    NotPcapng(String),
    /// An existing file that is not a capture: scripts may not clobber it.
    #[error("refusing to overwrite `{0}`: it exists and is not a pcapng file")]
    WouldClobber(String),
    /// The file cannot be created or written.
    #[error("capture file `{path}`")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The pcapng writer failed.
    #[error("capture file `{path}`: {message}")]
    Pcap {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
}

/// Checks a capture path a script gave: scripts are shared, so a capture
/// may create a `.pcapng` file or replace an earlier capture, never
/// overwrite anything else.
pub fn check_path(path: &str) -> Result<PathBuf, CaptureError> {
    let p = PathBuf::from(path);
    if p.extension().and_then(|e| e.to_str()) != Some("pcapng") {
        return Err(CaptureError::NotPcapng(path.to_string()));
    }
    match std::fs::symlink_metadata(&p) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(p),
        Err(e) => Err(CaptureError::Io {
            path: path.to_string(),
            source: e,
        }),
        Ok(m) if !m.file_type().is_file() => Err(CaptureError::WouldClobber(path.to_string())),
        Ok(m) if m.len() == 0 => Ok(p),
        Ok(_) => {
            let mut magic = [0u8; 4];
            let read = File::open(&p).and_then(|mut f| f.read_exact(&mut magic));
            match read {
                Ok(()) if magic == PCAPNG_MAGIC => Ok(p),
                _ => Err(CaptureError::WouldClobber(path.to_string())),
            }
        }
    }
}

/// An interface block's identity: device (or attach point), namespace, link.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Interface {
    name: String,
    netns: u64,
    link: u32,
}

/// An open capture file.
pub struct PcapFile {
    path: PathBuf,
    writer: PcapNgWriter<BufWriter<File>>,
    interfaces: HashMap<Interface, u32>,
    snaplen: u32,
    /// CLOCK_REALTIME − CLOCK_MONOTONIC, ns: events are stamped with the latter.
    realtime_offset_ns: i128,
    packets: u64,
}

impl PcapFile {
    /// Creates (or replaces) `path` and writes the section header.
    pub fn create(path: &Path, snaplen: u32) -> Result<PcapFile, CaptureError> {
        let shown = path.display().to_string();
        let file = File::create(path).map_err(|source| CaptureError::Io {
            path: shown.clone(),
            source,
        })?;
        let writer = PcapNgWriter::new(BufWriter::new(file)).map_err(|e| CaptureError::Pcap {
            path: shown,
            message: e.to_string(),
        })?;
        let mono = vprobe_time::monotonic_ns();
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        Ok(PcapFile {
            path: path.to_path_buf(),
            writer,
            interfaces: HashMap::new(),
            snaplen,
            realtime_offset_ns: real as i128 - i128::from(mono),
            packets: 0,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Packets written so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Writes the packet of one capture record of `probe`: `packet` and its
    /// captured `bytes` as the kernel copied them, or for `tcp.retransmit` a
    /// header built from the record.
    pub fn write(
        &mut self,
        probe: &ProbeDef,
        event: &Event,
        packet: &Packet,
        bytes: &[u8],
        symbols: &Symbols,
    ) -> Result<(), CaptureError> {
        let fields: Vec<(&str, Value)> = probe
            .fields
            .iter()
            .map(|f| (f.name, decode(f, &event.rec, symbols)))
            .collect();
        let get = |name: &str| fields.iter().find(|(n, _)| *n == name).map(|(_, v)| v);
        let (data, wire, link, note) = match (probe.capture, packet.link) {
            (Capture::Segment, _) => {
                let (data, wire) = segment(&fields);
                (
                    data,
                    wire,
                    abi::LINK_IP,
                    " (headers built from the socket and TCP_SKB_CB; payload not captured)",
                )
            }
            (_, abi::LINK_NONE) => (Vec::new(), 0, abi::LINK_IP, " (no packet headers)"),
            (_, link) => (
                bytes.to_vec(),
                packet.wire_len.max(bytes.len() as u32),
                link,
                "",
            ),
        };
        let mut name = match get("dev") {
            Some(Value::Str(d)) if !d.is_empty() => d.clone(),
            _ => probe.subsystem.to_string(),
        };
        if name.is_empty() {
            name = probe.name.to_string();
        }
        let netns = match get("netns") {
            Some(Value::Uint(n)) => *n,
            _ => 0,
        };
        let id = self.interface(Interface { name, netns, link }, probe)?;
        let mut comment = probe.name.to_string();
        for (n, v) in &fields {
            if !IN_THE_PACKET.contains(n) {
                comment.push_str(&format!(" {n}={v}"));
            }
        }
        if probe.field("layer").is_none() && probe.capture != Capture::Segment {
            comment.push_str(&format!(" layer={}", probe.subsystem));
        }
        comment.push_str(note);
        let ts = i128::from(event.ts_ns) + self.realtime_offset_ns;
        let block = EnhancedPacketBlock {
            interface_id: id,
            timestamp: Duration::from_nanos(u64::try_from(ts.max(0)).unwrap_or(u64::MAX)),
            original_len: wire,
            data: Cow::Owned(data),
            options: vec![EnhancedPacketOption::Comment(Cow::Owned(comment))],
        };
        self.writer
            .write_pcapng_block(block)
            .map_err(|e| self.error(e))?;
        self.packets += 1;
        Ok(())
    }

    /// The id of `iface`'s interface block, written on first use.
    fn interface(&mut self, iface: Interface, probe: &ProbeDef) -> Result<u32, CaptureError> {
        if let Some(&id) = self.interfaces.get(&iface) {
            return Ok(id);
        }
        let id = self.interfaces.len() as u32;
        let linktype = if iface.link == abi::LINK_ETHERNET {
            DataLink::ETHERNET
        } else {
            DataLink::RAW
        };
        let description = if iface.netns != 0 {
            format!(
                "{} in netns {} (vprobe {})",
                iface.name, iface.netns, probe.name
            )
        } else {
            format!("{} (vprobe {})", iface.name, probe.name)
        };
        let block = InterfaceDescriptionBlock {
            linktype,
            snaplen: self.snaplen,
            options: vec![
                InterfaceDescriptionOption::IfName(Cow::Owned(iface.name.clone())),
                InterfaceDescriptionOption::IfDescription(Cow::Owned(description)),
                // timestamps in ns (the EPB timestamps pcap-file writes)
                InterfaceDescriptionOption::IfTsResol(9),
            ],
        };
        self.writer
            .write_pcapng_block(block)
            .map_err(|e| self.error(e))?;
        self.interfaces.insert(iface, id);
        Ok(id)
    }

    /// Flushes the file.
    pub fn flush(&mut self) -> Result<(), CaptureError> {
        use std::io::Write;
        let path = self.path.display().to_string();
        self.writer
            .get_mut()
            .flush()
            .map_err(|source| CaptureError::Io { path, source })
    }

    fn error(&self, e: pcap_file::PcapError) -> CaptureError {
        CaptureError::Pcap {
            path: self.path.display().to_string(),
            message: e.to_string(),
        }
    }
}

fn uint(fields: &[(&str, Value)], name: &str) -> u64 {
    match fields.iter().find(|(n, _)| *n == name) {
        Some((_, Value::Uint(v))) => *v,
        _ => 0,
    }
}

fn ip(fields: &[(&str, Value)], name: &str) -> Option<IpAddr> {
    match fields.iter().find(|(n, _)| *n == name) {
        Some((_, Value::Str(s))) => s.parse().ok(),
        _ => None,
    }
}

/// The IPv4 or IPv6 and TCP header of a retransmitted segment, from the
/// record: (bytes, length on the wire with the payload).
fn segment(fields: &[(&str, Value)]) -> (Vec<u8>, u32) {
    let unspecified = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
    let saddr = ip(fields, "saddr").unwrap_or(unspecified);
    let daddr = ip(fields, "daddr").unwrap_or(unspecified);
    let payload = uint(fields, "len") as u32;
    let flags = match fields.iter().find(|(n, _)| *n == "tcp_flags") {
        Some((_, Value::Str(s))) => crate::value::parse_tcp_flags(s).unwrap_or(0) as u8,
        _ => 0,
    };
    let mut tcp = Vec::with_capacity(20);
    tcp.extend_from_slice(&(uint(fields, "sport") as u16).to_be_bytes());
    tcp.extend_from_slice(&(uint(fields, "dport") as u16).to_be_bytes());
    tcp.extend_from_slice(&(uint(fields, "seq") as u32).to_be_bytes());
    tcp.extend_from_slice(&(uint(fields, "ack") as u32).to_be_bytes());
    tcp.push(5 << 4); // 20 bytes, no options
    tcp.push(flags);
    tcp.extend_from_slice(&0xffffu16.to_be_bytes()); // window: not known
    tcp.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
    let mut out = Vec::with_capacity(60);
    match (saddr, daddr) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = (20 + 20 + payload).min(u32::from(u16::MAX)) as u16;
            let mut h = vec![0x45, 0];
            h.extend_from_slice(&total.to_be_bytes());
            h.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]); // id, DF, ttl, tcp, csum
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            let csum = ipv4_checksum(&h);
            h[10..12].copy_from_slice(&csum.to_be_bytes());
            out.extend_from_slice(&h);
        }
        (s, d) => {
            let v6 = |a: IpAddr| match a {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            out.extend_from_slice(&[0x60, 0, 0, 0]);
            out.extend_from_slice(&((20 + payload).min(u32::from(u16::MAX)) as u16).to_be_bytes());
            out.extend_from_slice(&[6, 64]);
            out.extend_from_slice(&v6(s).octets());
            out.extend_from_slice(&v6(d).octets());
        }
    }
    out.extend_from_slice(&tcp);
    let wire = out.len() as u32 + payload;
    (out, wire)
}

fn ipv4_checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = h
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_may_create_or_replace_captures_only() {
        let dir = std::env::temp_dir().join(format!("vprobe-pcap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let new = dir.join("new.pcapng");
        assert_eq!(check_path(new.to_str().unwrap()).unwrap(), new);
        let other = dir.join("notes.pcapng");
        std::fs::write(&other, "not a capture").unwrap();
        assert!(matches!(
            check_path(other.to_str().unwrap()),
            Err(CaptureError::WouldClobber(_))
        ));
        let old = dir.join("old.pcapng");
        PcapFile::create(&old, 128).unwrap().flush().unwrap();
        assert!(check_path(old.to_str().unwrap()).is_ok());
        assert!(matches!(
            check_path("/etc/passwd"),
            Err(CaptureError::NotPcapng(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_retransmitted_segment_gets_its_ipv4_and_tcp_header() {
        let f = vec![
            ("saddr", Value::Str("192.0.2.1".into())),
            ("daddr", Value::Str("192.0.2.2".into())),
            ("sport", Value::Uint(40000)),
            ("dport", Value::Uint(12866)),
            ("seq", Value::Uint(1000)),
            ("ack", Value::Uint(2000)),
            ("len", Value::Uint(1)),
            ("tcp_flags", Value::Str("PSH|ACK".into())),
        ];
        let (b, wire) = segment(&f);
        assert_eq!(b.len(), 40);
        assert_eq!(wire, 41);
        assert_eq!(&b[12..16], &[192, 0, 2, 1]);
        assert_eq!(ipv4_checksum(&b[..20]), 0, "the header checksum is valid");
        assert_eq!(u32::from_be_bytes(b[24..28].try_into().unwrap()), 1000);
        assert_eq!(b[33], 0x18, "PSH|ACK");
        let v6 = vec![
            ("saddr", Value::Str("2001:db8::1".into())),
            ("daddr", Value::Str("2001:db8::2".into())),
        ];
        let (b, wire) = segment(&v6);
        assert_eq!((b.len(), wire, b[0] >> 4), (60, 60, 6));
    }
}
