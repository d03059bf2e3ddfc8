//! The two reproductions the fidelity tests (and bench/) measure against the
//! kernel's own counters: a macvtap whose ring overflows, and TCP connections
//! whose path goes dark.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::netns::{self, Netns};
use super::traffic;
use super::util::{self, TempDir};

/// The sending end of the wire, in namespace A.
pub const WIRE_A: &str = "vA";
/// The receiving end of the wire, in namespace B; the macvtap's lower device.
pub const WIRE_B: &str = "vB";
/// The macvtap in namespace B.
pub const MACVTAP: &str = "mvt0";

/// Namespaces A and B joined by a veth wire; in B, a bridge-mode macvtap on
/// the wire whose char device is open and never read, so its ring (sized by
/// `txqueuelen` when the device is opened) fills and every further frame is
/// dropped in `tap_handle_frame` with reason FULL_RING.
pub struct MacvtapLab {
    // Fields drop in order: close the tap, remove its node, then the namespaces.
    tap: File,
    _dir: TempDir,
    pub b: Netns,
    pub a: Netns,
    pub ring: usize,
    frame: Vec<u8>,
}

impl MacvtapLab {
    pub fn new(ring: usize) -> MacvtapLab {
        let a = Netns::new();
        let b = Netns::new();
        netns::veth(&a, WIRE_A, &b, WIRE_B);
        b.ip(&format!(
            "link add link {WIRE_B} name {MACVTAP} type macvtap mode bridge"
        ));
        // The ring is sized from txqueuelen when the char device is opened.
        b.ip(&format!("link set {MACVTAP} txqueuelen {ring} up"));
        let ifindex = b.read(&format!("/sys/class/net/{MACVTAP}/ifindex"));
        let devt = [
            format!("/sys/class/net/{MACVTAP}/macvtap/tap{ifindex}/dev"),
            format!("/sys/class/net/{MACVTAP}/tap{ifindex}/dev"),
        ]
        .iter()
        .find_map(|p| {
            b.exec(&["sh", "-c", &format!("cat {p} 2>/dev/null || true")])
                .trim()
                .split_once(':')
                .map(|(maj, min)| (maj.parse::<u64>().ok(), min.parse::<u64>().ok()))
        })
        .and_then(|(maj, min)| Some((maj?, min?)))
        .unwrap_or_else(|| panic!("no dev_t for {MACVTAP} (tap{ifindex}) in {}", b.name()));
        // Our own node: devtmpfs names it /dev/tap<ifindex>, which can collide
        // across namespaces.
        let dir = TempDir::new("macvtap");
        let node = dir.path().join(format!("tap{ifindex}"));
        nix::sys::stat::mknod(
            &node,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            nix::sys::stat::makedev(devt.0, devt.1),
        )
        .unwrap_or_else(|e| panic!("mknod {}: {e}", node.display()));
        let tap = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&node)
            .unwrap_or_else(|e| panic!("open {}: {e}", node.display()));
        let dst = netns::mac(&b, MACVTAP);
        let src = netns::mac(&a, WIRE_A);
        MacvtapLab {
            tap,
            _dir: dir,
            b,
            a,
            ring,
            frame: traffic::udp_frame(dst, src),
        }
    }

    /// The macvtap's `rx_dropped`, read inside B.
    pub fn rx_dropped(&self) -> u64 {
        let _ = &self.tap;
        self.b.dev_stat(MACVTAP, "rx_dropped")
    }

    /// Sends up to `count` unicast frames from A to the macvtap's MAC, for at
    /// most `limit`. Returns how many were sent.
    pub fn flood(&self, count: usize, limit: Duration) -> usize {
        traffic::flood(&self.a, WIRE_A, &self.frame, count, limit)
    }
}

/// The address of A's end of the wire.
pub const ADDR_A: &str = "192.0.2.1";
/// The address of B's end of the wire, where the server listens.
pub const ADDR_B: &str = "192.0.2.2";
/// The port B listens on for [`TcpLab::connect`]'s connections.
pub const PORT: u16 = 5001;

/// Namespaces A (clients) and B (server) joined by a veth wire with
/// 192.0.2.1/24 and 192.0.2.2/24 and static neighbour entries (no ARP that
/// could fail or add traffic once the path is cut).
pub struct TcpLab {
    pub b: Netns,
    pub a: Netns,
}

impl TcpLab {
    pub fn new() -> TcpLab {
        let a = Netns::new();
        let b = Netns::new();
        netns::veth(&a, WIRE_A, &b, WIRE_B);
        a.ip(&format!("addr add {ADDR_A}/24 dev {WIRE_A}"));
        b.ip(&format!("addr add {ADDR_B}/24 dev {WIRE_B}"));
        let mac_a = netns::mac(&a, WIRE_A);
        let mac_b = netns::mac(&b, WIRE_B);
        a.ip(&format!(
            "neigh replace {ADDR_B} lladdr {} dev {WIRE_A} nud permanent",
            fmt_mac(mac_b)
        ));
        b.ip(&format!(
            "neigh replace {ADDR_A} lladdr {} dev {WIRE_B} nud permanent",
            fmt_mac(mac_a)
        ));
        TcpLab { b, a }
    }

    /// Opens `n` connections from A to a server in B that reads everything,
    /// and waits until a first byte on each has gone through.
    pub fn connect(&self, n: usize) -> Conns {
        let addr: SocketAddr = format!("{ADDR_B}:{PORT}").parse().expect("addr");
        let listener = self
            .b
            .enter(|| TcpListener::bind(addr))
            .expect("listen in B");
        let stop = Arc::new(AtomicBool::new(false));
        let got = Arc::new(AtomicUsize::new(0));
        let server = {
            let (stop, got) = (stop.clone(), got.clone());
            std::thread::spawn(move || serve(listener, n, &stop, &got))
        };
        let clients: Vec<TcpStream> = self.a.enter(|| {
            (0..n)
                .map(|_| {
                    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                        .expect("connect A→B");
                    s.set_nodelay(true).expect("TCP_NODELAY");
                    s.set_write_timeout(Some(Duration::from_secs(1)))
                        .expect("timeout");
                    reset_on_close(&s);
                    s
                })
                .collect()
        });
        let mut conns = Conns {
            clients,
            stop,
            got,
            server: Some(server),
        };
        for c in &mut conns.clients {
            c.write_all(b"x").expect("first byte");
        }
        assert!(
            util::poll_until(Duration::from_secs(5), || conns.got.load(Ordering::Relaxed)
                >= n),
            "the server in B did not receive the first bytes"
        );
        // Let the delayed ACKs go out so that nothing is in flight.
        std::thread::sleep(Duration::from_millis(300));
        conns
    }

    /// Makes B silently drop everything A sends: without its address, B has
    /// no local route for 192.0.2.2 and, not forwarding, drops the segments
    /// without an ICMP answer. A's sends still succeed, so every retransmit
    /// is a successful one (counted by TcpRetransSegs).
    pub fn cut(&self) {
        self.b.ip(&format!("addr del {ADDR_B}/24 dev {WIRE_B}"));
    }
}

fn fmt_mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// `SO_LINGER {on, 0}`: close sends a RST and frees the socket at once, so an
/// orphan with unacknowledged data does not keep retransmitting (and keep the
/// namespace alive) after the test.
fn reset_on_close(s: &TcpStream) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    nix::sys::socket::setsockopt(s, nix::sys::socket::sockopt::Linger, &l).expect("SO_LINGER");
}

fn serve(listener: TcpListener, n: usize, stop: &AtomicBool, got: &AtomicUsize) {
    listener.set_nonblocking(true).expect("nonblocking");
    let accept_until = Instant::now() + Duration::from_secs(10);
    // A bound even if the test forgets to stop it.
    let give_up = Instant::now() + Duration::from_secs(120);
    let mut conns = Vec::new();
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) && Instant::now() < give_up {
        if conns.len() < n && Instant::now() < accept_until {
            match listener.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(true).expect("nonblocking");
                    reset_on_close(&s);
                    conns.push(s);
                    continue;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("accept: {e}"),
            }
        }
        for s in &mut conns {
            match s.read(&mut buf) {
                Ok(k) => {
                    got.fetch_add(k, Ordering::Relaxed);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => {}
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Client connections in A and the server thread in B.
pub struct Conns {
    clients: Vec<TcpStream>,
    stop: Arc<AtomicBool>,
    got: Arc<AtomicUsize>,
    server: Option<JoinHandle<()>>,
}

impl Conns {
    /// Writes one byte on every connection. Right after a cut this leaves
    /// each connection exactly one 1-byte segment in flight, which TCP then
    /// probes (TLP) and retransmits at every RTO: one segment per
    /// retransmission, nothing to collapse or split, so every
    /// `tcp_retransmit_skb` event adds exactly one to `TcpRetransSegs`.
    pub fn poke(&mut self) {
        for c in &mut self.clients {
            c.write_all(b"y").expect("write");
        }
    }

    /// Resets every connection (no more retransmits after this) and stops
    /// the server.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.clients.clear();
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.server.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Conns {
    fn drop(&mut self) {
        self.shutdown();
    }
}

// ---- tun/tap (tests/e2e/tap.rs) ----

impl MacvtapLab {
    /// Another handle on the macvtap's open char device (the same queue: a
    /// second open would add a queue), non-blocking, for a reader thread.
    pub fn reader(&self) -> File {
        let f = self.tap.try_clone().expect("dup the macvtap fd");
        set_nonblocking(&f);
        f
    }
}

impl MacvtapLab {
    /// Opens the macvtap's char device once more: a new queue, whose index is
    /// the number of queues opened before it. Its ring is sized now.
    pub fn open_queue(&self) -> File {
        let node = std::fs::read_dir(self._dir.path())
            .expect("the lab's node directory")
            .next()
            .expect("the node")
            .expect("the node's entry")
            .path();
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&node)
            .unwrap_or_else(|e| panic!("open {}: {e}", node.display()))
    }

    /// Sends `per_flow` frames of each of `flows` UDP flows (source ports
    /// 10000..), so that a multi-queue macvtap spreads them by flow hash.
    pub fn flood_flows(&self, flows: u16, per_flow: usize, limit: Duration) -> usize {
        let mut sent = 0;
        for i in 0..flows {
            let mut f = self.frame.clone();
            // UDP source port, 14 (Ethernet) + 20 (IPv4) bytes in; no UDP checksum to fix
            f[34..36].copy_from_slice(&(10000 + i).to_be_bytes());
            sent += traffic::flood(&self.a, WIRE_A, &f, per_flow, limit);
        }
        sent
    }
}

/// Reads everything `f` (non-blocking) receives until `stop`, waiting in
/// poll(); at most `limit`. Returns how many frames it read.
pub fn drain(f: &mut File, stop: &AtomicBool, limit: Duration) -> usize {
    use std::os::fd::AsRawFd;
    let deadline = Instant::now() + limit;
    let mut buf = vec![0u8; 65536];
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let mut pfd = libc::pollfd {
            fd: f.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd on an fd `f` owns.
        unsafe { libc::poll(&mut pfd, 1, 10) };
        loop {
            match f.read(&mut buf) {
                Ok(_) => n += 1,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("read the tap: {e}"),
            }
        }
    }
    n
}

fn set_nonblocking(f: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: fcntl on an fd this frame owns.
    unsafe {
        let fl = libc::fcntl(f.as_raw_fd(), libc::F_GETFL);
        assert!(fl >= 0, "F_GETFL: {}", std::io::Error::last_os_error());
        let rc = libc::fcntl(f.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
        assert_eq!(rc, 0, "F_SETFL: {}", std::io::Error::last_os_error());
    }
}

/// Reads one frame from `f` every `every` until `stop`, or for at most
/// `limit`. Returns how many frames it read.
pub fn read_slowly(f: &mut File, every: Duration, stop: &AtomicBool, limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    let mut buf = vec![0u8; 65536];
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        match f.read(&mut buf) {
            Ok(_) => n += 1,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => panic!("read the tap: {e}"),
        }
        std::thread::sleep(every);
    }
    n
}

/// The tap device in [`TunLab`].
pub const TAP: &str = "vptap0";

/// A namespace with a tap device (IFF_TAP | IFF_NO_PI) whose one queue is
/// open and never read: frames sent out of it fill its ring (sized by
/// `txqueuelen`) and every further one is dropped in `tun_net_xmit` with
/// reason FULL_RING, counted in the device's tx_dropped.
pub struct TunLab {
    // Fields drop in order: close the queue, then the namespace.
    _queue: File,
    pub ns: Netns,
    frame: Vec<u8>,
}

impl TunLab {
    pub fn new(ring: usize) -> TunLab {
        let ns = Netns::new();
        let queue = ns.enter(|| open_tap(TAP));
        ns.ip(&format!("link set {TAP} txqueuelen {ring} up"));
        let src = netns::mac(&ns, TAP);
        TunLab {
            _queue: queue,
            ns,
            frame: traffic::udp_frame([0x02, 0, 0, 0, 0, 0x02], src),
        }
    }

    /// The tap's `tx_dropped`, read inside the namespace.
    pub fn tx_dropped(&self) -> u64 {
        self.ns.dev_stat(TAP, "tx_dropped")
    }

    /// Sends up to `count` frames out of the tap, for at most `limit`.
    pub fn flood(&self, count: usize, limit: Duration) -> usize {
        traffic::flood(&self.ns, TAP, &self.frame, count, limit)
    }
}

/// Opens /dev/net/tun and makes it the tap `name` in the caller's namespace.
fn open_tap(name: &str) -> File {
    use std::os::fd::AsRawFd;
    // _IOW('T', 202, int)
    const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
    #[repr(C)]
    struct IfReq {
        name: [u8; 16],
        flags: libc::c_short,
        pad: [u8; 22],
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .unwrap_or_else(|e| panic!("open /dev/net/tun: {e}"));
    let mut req = IfReq {
        name: [0; 16],
        flags: (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short,
        pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: TUNSETIFF reads and writes a struct ifreq, which IfReq lays out.
    let rc = unsafe { libc::ioctl(f.as_raw_fd(), TUNSETIFF as _, &mut req) };
    assert_eq!(
        rc,
        0,
        "TUNSETIFF {name}: {}",
        std::io::Error::last_os_error()
    );
    f
}

// ---- GSO towards the macvtap (tests/e2e/tap.rs) ----

impl MacvtapLab {
    /// Sends up to `datagrams` UDP datagrams of `segments` × `seg_len`
    /// payload bytes from A (192.0.2.1) to 192.0.2.2 at the macvtap's MAC (a
    /// static neighbour entry; B has no address, tap_handle_frame takes the
    /// frames first) with UDP_SEGMENT, for at most `limit`. Each crosses the
    /// veth as one GSO_UDP_L4 packet, which tap_handle_frame segments itself:
    /// a macvtap queue's default features lack GSO_UDP_L4. Returns how many
    /// were sent.
    pub fn send_gso(
        &self,
        datagrams: usize,
        segments: usize,
        seg_len: usize,
        limit: Duration,
    ) -> usize {
        use std::os::fd::AsRawFd;
        self.a.ip(&format!("addr replace {ADDR_A}/24 dev {WIRE_A}"));
        self.a.ip(&format!(
            "neigh replace {ADDR_B} lladdr {} dev {WIRE_A} nud permanent",
            fmt_mac(netns::mac(&self.b, MACVTAP))
        ));
        let payload = vec![0u8; segments * seg_len];
        self.a.enter(|| {
            let s = std::net::UdpSocket::bind(format!("{ADDR_A}:0")).expect("bind in A");
            let size = seg_len as libc::c_int;
            // SAFETY: setsockopt reads one int from `size`, which outlives the call.
            let rc = unsafe {
                libc::setsockopt(
                    s.as_raw_fd(),
                    libc::SOL_UDP,
                    libc::UDP_SEGMENT,
                    &size as *const _ as *const libc::c_void,
                    std::mem::size_of_val(&size) as libc::socklen_t,
                )
            };
            assert_eq!(rc, 0, "UDP_SEGMENT: {}", std::io::Error::last_os_error());
            let deadline = Instant::now() + limit;
            let mut sent = 0;
            for _ in 0..datagrams {
                if Instant::now() >= deadline {
                    break;
                }
                match s.send_to(&payload, (ADDR_B, 9)) {
                    Ok(_) => sent += 1,
                    // the veth's backlog was full: not sent, not counted
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {}
                    Err(e) => panic!("send a GSO datagram A→B: {e}"),
                }
            }
            sent
        })
    }
}
