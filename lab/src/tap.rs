//! The two kinds of "VM side" file descriptor: a tun/tap queue and a macvtap
//! char device queue, both speaking frames with a 10-byte virtio-net header
//! in front, as vhost-net sees them.

use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

use nix::mount::{mount, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};

use crate::error::{os, LabError};
use crate::netns::{on_thread, Namespace};

/// `sizeof(struct virtio_net_hdr)`: the header both ends of a relay carry.
pub(crate) const VNET_HDR_LEN: i32 = 10;

/// `struct ifreq` as TUNSETIFF reads it: a name and the flags.
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

fn ioctl_int(
    fd: &OwnedFd,
    req: libc::Ioctl,
    arg: *const libc::c_void,
    what: &str,
) -> Result<(), LabError> {
    // SAFETY: `fd` is open and `arg` points to what the ioctl `req` reads.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), req, arg) };
    if rc < 0 {
        return Err(LabError::Os {
            what: what.to_string(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// TUNSETIFF with tap flags and a 10-byte vnet header, on a tun or macvtap fd.
fn set_tap_flags(fd: &OwnedFd, name: &str, multi_queue: bool, what: &str) -> Result<(), LabError> {
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as libc::c_short,
        _pad: [0; 22],
    };
    if multi_queue {
        req.flags |= libc::IFF_MULTI_QUEUE as libc::c_short;
    }
    let bytes = name.as_bytes();
    if bytes.len() >= libc::IFNAMSIZ {
        return Err(LabError::Os {
            what: format!("{what}: name `{name}`"),
            source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
        });
    }
    req.name[..bytes.len()].copy_from_slice(bytes);
    ioctl_int(
        fd,
        libc::TUNSETIFF,
        (&raw const req).cast(),
        &format!("{what}: TUNSETIFF"),
    )?;
    let len = VNET_HDR_LEN;
    ioctl_int(
        fd,
        libc::TUNSETVNETHDRSZ,
        (&raw const len).cast(),
        &format!("{what}: TUNSETVNETHDRSZ"),
    )
}

fn open_rw_nonblock(path: &std::path::Path, what: &str) -> Result<OwnedFd, LabError> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| LabError::Os {
            what: format!("{what}: open {}", path.display()),
            source: e,
        })?;
    Ok(f.into())
}

/// Makes tap `name` in the calling thread's network namespace and returns
/// one fd per queue (`IFF_TAP|IFF_NO_PI|IFF_VNET_HDR`, plus
/// `IFF_MULTI_QUEUE` when `queues > 1`), non-blocking. The device lives as
/// long as one of the fds.
pub(crate) fn open_tap(name: &str, queues: u32) -> Result<Vec<OwnedFd>, LabError> {
    (0..queues)
        .map(|q| {
            let what = format!("tap {name} queue {q}");
            let fd = open_rw_nonblock("/dev/net/tun".as_ref(), &what)?;
            set_tap_flags(&fd, name, queues > 1, &what)?;
            Ok(fd)
        })
        .collect()
}

/// Opens macvtap `dev` (ifindex `ifindex`) of namespace `ns` `queues`
/// times; each open is one queue whose ring is sized by the device's
/// `txqueuelen` at that moment.
///
/// The char device's number is only visible in a sysfs mounted from inside
/// `ns` (`/sys/class/net/DEV/tapIFINDEX/dev`; the minor is allocated, not the
/// ifindex). So a helper thread takes a private mount namespace, enters
/// `ns`, mounts a sysfs to read it, makes its own node on a private tmpfs
/// (devtmpfs's `/dev/tapN` names can collide across namespaces), opens it
/// and removes it. The mounts die with the thread's mount namespace; the
/// node never exists outside it.
pub(crate) fn open_macvtap(
    ns: &Namespace,
    dev: &str,
    ifindex: u32,
    queues: u32,
) -> Result<Vec<OwnedFd>, LabError> {
    let what = format!("macvtap {dev} in lab namespace `{}`", ns.name());
    on_thread("macvtap", || {
        unshare(CloneFlags::CLONE_NEWNS).map_err(os("unshare(CLONE_NEWNS)"))?;
        // Before any mount: nothing done here may propagate to the host.
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .map_err(os("make / private in the helper's mount namespace"))?;
        setns(ns.fd(), CloneFlags::CLONE_NEWNET)
            .map_err(os(&format!("setns into `{}`", ns.name())))?;
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
        mount(
            Some("sysfs"),
            "/sys",
            Some("sysfs"),
            flags | MsFlags::MS_NODEV,
            None::<&str>,
        )
        .map_err(os("mount a sysfs for the lab namespace"))?;
        let devt_path = format!("/sys/class/net/{dev}/tap{ifindex}/dev");
        let devt = std::fs::read_to_string(&devt_path).map_err(|e| LabError::Os {
            what: format!("{what}: read {devt_path}"),
            source: e,
        })?;
        let (major, minor) = devt
            .trim()
            .split_once(':')
            .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
            .ok_or_else(|| LabError::Os {
                what: format!("{what}: {devt_path} holds `{}`", devt.trim()),
                source: std::io::Error::from(std::io::ErrorKind::InvalidData),
            })?;
        // A tmpfs over that sysfs (we are done with it) holds the node.
        mount(
            Some("tmpfs"),
            "/sys",
            Some("tmpfs"),
            flags,
            Some("size=16k,mode=0700"),
        )
        .map_err(os("mount a private tmpfs"))?;
        let node = std::path::Path::new("/sys").join(dev);
        mknod(
            &node,
            SFlag::S_IFCHR,
            Mode::S_IRUSR | Mode::S_IWUSR,
            makedev(major, minor),
        )
        .map_err(os(&format!("{what}: mknod {major}:{minor}")))?;
        let fds: Result<Vec<OwnedFd>, LabError> = (0..queues)
            .map(|q| {
                let what = format!("{what} queue {q}");
                let fd = open_rw_nonblock(&node, &what)?;
                set_tap_flags(&fd, "", false, &what)?;
                Ok(fd)
            })
            .collect();
        let _ = std::fs::remove_file(&node);
        fds
    })?
}
