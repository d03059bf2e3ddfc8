//! Traffic generators, each bounded in count and in time, that only ever send
//! inside the test's own namespaces.

use std::time::{Duration, Instant};

use super::netns::Netns;

/// The IPv4 addresses the test frames claim to be from and to (TEST-NET-1).
pub const SRC_IP: [u8; 4] = [192, 0, 2, 1];
pub const DST_IP: [u8; 4] = [192, 0, 2, 2];

/// A 60-byte Ethernet frame (no FCS) carrying an IPv4/UDP datagram from
/// 192.0.2.1:9 to 192.0.2.2:9, addressed to `dst`.
pub fn udp_frame(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let payload = 18usize; // pads the frame to the 60-byte minimum
    let total = (20 + 8 + payload) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[8] = 64; // ttl
    ip[9] = 17; // udp
    ip[12..16].copy_from_slice(&SRC_IP);
    ip[16..20].copy_from_slice(&DST_IP);
    let csum = ipv4_checksum(&ip);
    ip[10..12].copy_from_slice(&csum.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&9u16.to_be_bytes());
    f.extend_from_slice(&9u16.to_be_bytes());
    f.extend_from_slice(&(8 + payload as u16).to_be_bytes());
    f.extend_from_slice(&0u16.to_be_bytes()); // no UDP checksum
    f.resize(60, 0);
    f
}

fn ipv4_checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = h
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Sends up to `count` copies of `frame` out of `dev` in `ns` through an
/// AF_PACKET raw socket whose send buffer is forced large, stopping early
/// after `limit`. Returns how many were sent.
pub fn flood(ns: &Netns, dev: &str, frame: &[u8], count: usize, limit: Duration) -> usize {
    ns.enter(|| unsafe { flood_here(dev, frame, count, limit) })
}

/// # Safety
/// Plain libc socket calls on buffers owned by this frame.
unsafe fn flood_here(dev: &str, frame: &[u8], count: usize, limit: Duration) -> usize {
    let ifindex =
        nix::net::if_::if_nametoindex(dev).unwrap_or_else(|e| panic!("if_nametoindex({dev}): {e}"));
    // Protocol 0: this socket sends only, it never receives a copy of anything.
    let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0);
    assert!(
        fd >= 0,
        "socket(AF_PACKET): {}",
        std::io::Error::last_os_error()
    );
    let _close = CloseOnDrop(fd);
    // So a send never waits for the previous frames' memory to come back.
    let sndbuf: libc::c_int = 8 << 20;
    let rc = libc::setsockopt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_SNDBUFFORCE,
        &sndbuf as *const _ as *const libc::c_void,
        std::mem::size_of_val(&sndbuf) as libc::socklen_t,
    );
    assert_eq!(rc, 0, "SO_SNDBUFFORCE: {}", std::io::Error::last_os_error());
    let mut sll: libc::sockaddr_ll = std::mem::zeroed();
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = (u16::from_be_bytes([frame[12], frame[13]])).to_be();
    sll.sll_ifindex = ifindex as i32;
    sll.sll_halen = 6;
    sll.sll_addr[..6].copy_from_slice(&frame[..6]);
    let sll_len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    let rc = libc::bind(fd, &sll as *const _ as *const libc::sockaddr, sll_len);
    assert_eq!(rc, 0, "bind({dev}): {}", std::io::Error::last_os_error());
    let deadline = Instant::now() + limit;
    let mut sent = 0;
    while sent < count && Instant::now() < deadline {
        let n = libc::sendto(
            fd,
            frame.as_ptr() as *const libc::c_void,
            frame.len(),
            0,
            &sll as *const _ as *const libc::sockaddr,
            sll_len,
        );
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENOBUFS) || e.raw_os_error() == Some(libc::EAGAIN) {
                std::thread::sleep(Duration::from_micros(100));
                continue;
            }
            panic!("sendto({dev}): {e}");
        }
        assert_eq!(n as usize, frame.len(), "short send");
        sent += 1;
    }
    sent
}

/// Sends UDP datagrams to a closed port on the namespace's loopback, `rate`
/// a second for `limit`: each is dropped (`skb.drop`, reason NO_SOCKET) in
/// `ns` alone. Runs on its own thread; returns how many it sent when joined.
pub fn udp_drops(ns: &Netns, rate: u32, limit: Duration) -> std::thread::JoinHandle<u64> {
    let path = ns.path();
    std::thread::spawn(move || {
        let fd =
            std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET)
            .unwrap_or_else(|e| panic!("setns {}: {e}", path.display()));
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let start = Instant::now();
        let mut sent = 0u64;
        while start.elapsed() < limit {
            let due = (start.elapsed().as_secs_f64() * f64::from(rate)) as u64;
            while sent < due {
                // ECONNREFUSED from an earlier ICMP error is expected: send again
                let _ = sock.send_to(b"x", "127.0.0.1:9");
                sent += 1;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        sent
    })
}

struct CloseOnDrop(libc::c_int);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        unsafe {
            libc::close(self.0);
        }
    }
}

#[test]
fn udp_frame_has_a_valid_ipv4_header() {
    let f = udp_frame([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    assert_eq!(f.len(), 60);
    assert_eq!(&f[12..14], &[0x08, 0x00]);
    // A header with its checksum sums to 0xffff.
    assert_eq!(ipv4_checksum(&f[14..34]), 0);
}
