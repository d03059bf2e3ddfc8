//! Links and addresses over rtnetlink: typed messages from
//! `netlink-packet-route`, sent on a blocking socket that belongs to one lab
//! namespace (a netlink socket acts in the namespace it was opened in).

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Duration;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoMacVtap, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
    MacVtapMode,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::error::LabError;

/// A device's counters, from `IFLA_STATS64` (what `ip -s link` and
/// `/sys/class/net/DEV/statistics/` show).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LinkStats {
    /// Frames received.
    pub rx_packets: u64,
    /// Frames sent.
    pub tx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Frames dropped on receive (a macvtap counts its full-ring drops here).
    pub rx_dropped: u64,
    /// Frames dropped on send (a tap counts its full-ring drops here).
    pub tx_dropped: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Send errors.
    pub tx_errors: u64,
}

/// What to change on a link (`ip link set`).
#[derive(Default)]
pub(crate) struct LinkSet {
    pub up: bool,
    pub mac: Option<[u8; 6]>,
    pub qlen: Option<u32>,
    pub master: Option<u32>,
}

/// A route netlink socket in one namespace.
pub(crate) struct Netlink {
    sock: Socket,
    seq: u32,
    ns: String,
}

const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

impl Netlink {
    /// Opens a socket in the calling thread's network namespace; `ns` names it in errors.
    pub fn open_here(ns: &str) -> Result<Netlink, LabError> {
        let fail = |what: &str, source: io::Error| LabError::Netlink {
            ns: ns.to_string(),
            what: what.to_string(),
            source,
        };
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(|e| fail("open a socket", e))?;
        sock.bind_auto().map_err(|e| fail("bind", e))?;
        // A kernel that never answers must not hang the lab.
        nix::sys::socket::setsockopt(
            &sock.as_fd(),
            nix::sys::socket::sockopt::ReceiveTimeout,
            &nix::sys::time::TimeVal::new(REPLY_TIMEOUT.as_secs() as i64, 0),
        )
        .map_err(|e| fail("set SO_RCVTIMEO", e.into()))?;
        Ok(Netlink {
            sock,
            seq: 0,
            ns: ns.to_string(),
        })
    }

    /// Sends `msg` and collects the replies up to the ack (or the end of a dump).
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        what: impl Fn() -> String,
    ) -> Result<Vec<RouteNetlinkMessage>, LabError> {
        let fail = |source: io::Error| LabError::Netlink {
            ns: self.ns.clone(),
            what: what(),
            source,
        };
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        header.sequence_number = seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.sock
            .send_to(&buf, &SocketAddr::new(0, 0), 0)
            .map_err(fail)?;

        let mut replies = Vec::new();
        loop {
            let (data, _) = self.sock.recv_from_full().map_err(|e| {
                if e.kind() == io::ErrorKind::WouldBlock {
                    fail(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no answer from the kernel within {REPLY_TIMEOUT:?}"),
                    ))
                } else {
                    fail(e)
                }
            })?;
            let mut off = 0;
            while off < data.len() {
                let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[off..])
                    .map_err(|e| fail(io::Error::new(io::ErrorKind::InvalidData, e.to_string())))?;
                let len = m.header.length as usize;
                if len == 0 {
                    break;
                }
                off += (len + 3) & !3;
                if m.header.sequence_number != seq {
                    continue;
                }
                match m.payload {
                    NetlinkPayload::Error(e) if e.code.is_some() => return Err(fail(e.to_io())),
                    NetlinkPayload::Error(_) | NetlinkPayload::Done(_) => return Ok(replies),
                    NetlinkPayload::InnerMessage(inner) => replies.push(inner),
                    _ => {}
                }
            }
        }
    }

    fn new_link(
        &mut self,
        attributes: Vec<LinkAttribute>,
        what: impl Fn() -> String,
    ) -> Result<(), LabError> {
        let mut msg = LinkMessage::default();
        msg.attributes = attributes;
        self.request(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            what,
        )?;
        Ok(())
    }

    /// `ip link add NAME type veth peer name PEER netns PEER_NS`.
    pub fn add_veth(
        &mut self,
        name: &str,
        peer: &str,
        peer_ns: BorrowedFd<'_>,
    ) -> Result<(), LabError> {
        let mut peer_msg = LinkMessage::default();
        peer_msg.attributes = vec![
            LinkAttribute::IfName(peer.to_string()),
            LinkAttribute::NetNsFd(peer_ns.as_raw_fd()),
        ];
        self.new_link(
            vec![
                LinkAttribute::IfName(name.to_string()),
                LinkAttribute::LinkInfo(vec![
                    LinkInfo::Kind(InfoKind::Veth),
                    LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
                ]),
            ],
            || format!("add veth pair {name}/{peer}"),
        )
    }

    /// `ip link add link LOWER name NAME address MAC txqueuelen QLEN type macvtap mode bridge`.
    pub fn add_macvtap(
        &mut self,
        name: &str,
        lower: u32,
        mac: [u8; 6],
        qlen: u32,
    ) -> Result<(), LabError> {
        self.new_link(
            vec![
                LinkAttribute::IfName(name.to_string()),
                LinkAttribute::Link(lower),
                LinkAttribute::Address(mac.to_vec()),
                LinkAttribute::TxQueueLen(qlen),
                LinkAttribute::LinkInfo(vec![
                    LinkInfo::Kind(InfoKind::MacVtap),
                    LinkInfo::Data(InfoData::MacVtap(vec![InfoMacVtap::Mode(
                        MacVtapMode::Bridge,
                    )])),
                ]),
            ],
            || format!("add macvtap {name} (bridge mode, txqueuelen {qlen})"),
        )
    }

    /// `ip link add NAME type bridge`.
    pub fn add_bridge(&mut self, name: &str) -> Result<(), LabError> {
        self.new_link(
            vec![
                LinkAttribute::IfName(name.to_string()),
                LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Bridge)]),
            ],
            || format!("add bridge {name}"),
        )
    }

    fn get_link(&mut self, name: &str) -> Result<LinkMessage, LabError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        let ns = self.ns.clone();
        let no_device = move || LabError::NoDevice {
            ns,
            dev: name.to_string(),
        };
        let replies = match self.request(RouteNetlinkMessage::GetLink(msg), 0, || {
            format!("get link {name}")
        }) {
            Err(LabError::Netlink { source, .. })
                if source.raw_os_error() == Some(libc::ENODEV) =>
            {
                return Err(no_device())
            }
            r => r?,
        };
        replies
            .into_iter()
            .find_map(|r| match r {
                RouteNetlinkMessage::NewLink(m) => Some(m),
                _ => None,
            })
            .ok_or_else(no_device)
    }

    /// Whether `name` is operationally up (`IFF_RUNNING`): the kernel's link
    /// watch has seen its carrier and activated its qdisc, so it passes traffic.
    pub fn running(&mut self, name: &str) -> Result<bool, LabError> {
        Ok(self
            .get_link(name)?
            .header
            .flags
            .contains(LinkFlags::Running))
    }

    /// The ifindex of `name`.
    pub fn index(&mut self, name: &str) -> Result<u32, LabError> {
        Ok(self.get_link(name)?.header.index)
    }

    /// The counters of `name`.
    pub fn stats(&mut self, name: &str) -> Result<LinkStats, LabError> {
        let m = self.get_link(name)?;
        let s = m
            .attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::Stats64(s) => Some(s),
                _ => None,
            })
            .ok_or_else(|| LabError::Netlink {
                ns: self.ns.clone(),
                what: format!("get link {name}"),
                source: io::Error::new(io::ErrorKind::InvalidData, "the reply has no IFLA_STATS64"),
            })?;
        Ok(LinkStats {
            rx_packets: s.rx_packets,
            tx_packets: s.tx_packets,
            rx_bytes: s.rx_bytes,
            tx_bytes: s.tx_bytes,
            rx_dropped: s.rx_dropped,
            tx_dropped: s.tx_dropped,
            rx_errors: s.rx_errors,
            tx_errors: s.tx_errors,
        })
    }

    /// `ip link set` on the link with ifindex `index`.
    pub fn set(&mut self, index: u32, set: LinkSet) -> Result<(), LabError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        if set.up {
            msg.header.flags = LinkFlags::Up;
            msg.header.change_mask = LinkFlags::Up;
        }
        if let Some(mac) = set.mac {
            msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
        }
        if let Some(q) = set.qlen {
            msg.attributes.push(LinkAttribute::TxQueueLen(q));
        }
        if let Some(m) = set.master {
            msg.attributes.push(LinkAttribute::Controller(m));
        }
        self.request(RouteNetlinkMessage::SetLink(msg), 0, || {
            let mut what = format!("set link {index}");
            if set.up {
                what.push_str(" up");
            }
            if let Some(m) = set.mac {
                what += &format!(" address {}", m.map(|b| format!("{b:02x}")).join(":"));
            }
            if let Some(q) = set.qlen {
                what += &format!(" txqueuelen {q}");
            }
            if let Some(m) = set.master {
                what += &format!(" master {m}");
            }
            what
        })?;
        Ok(())
    }

    /// `ip link set NAME up`.
    pub fn up(&mut self, name: &str) -> Result<u32, LabError> {
        let index = self.index(name)?;
        self.set(
            index,
            LinkSet {
                up: true,
                ..LinkSet::default()
            },
        )?;
        Ok(index)
    }

    /// `ip addr add ADDR/PREFIX dev INDEX`.
    pub fn add_address(&mut self, index: u32, addr: Ipv4Addr, prefix: u8) -> Result<(), LabError> {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.prefix_len = prefix;
        msg.header.index = index;
        msg.attributes = vec![
            AddressAttribute::Local(IpAddr::V4(addr)),
            AddressAttribute::Address(IpAddr::V4(addr)),
        ];
        self.request(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            || format!("add address {addr}/{prefix} on link {index}"),
        )?;
        Ok(())
    }
}
