//! The two kinds of "VM side" file descriptor: a tun/tap queue and a macvtap
//! char device queue, both speaking frames with a 10-byte virtio-net header
//! in front, as vhost-net sees them.

use std::fs::OpenOptions;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{makedev, mknodat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};

use crate::error::{os, LabError};
use crate::netns::Namespace;

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
/// The char device's number is only visible in a sysfs made from inside
/// `ns` (`/sys/class/net/DEV/tapIFINDEX/dev`; the minor is allocated, not the
/// ifindex). So a helper thread enters `ns` and makes a sysfs that is never
/// attached anywhere (`fsopen`/`fsmount`: a mount fd only), reads the number
/// through it and lets go of it at once: a sysfs holds its network
/// namespace, and one that outlived this would keep the lab's namespace —
/// and its devices — alive after the lab. The node to open is made on a
/// detached tmpfs of its own (devtmpfs's `/dev/tapN` names can collide
/// across namespaces) and removed once opened: nothing is ever mounted in
/// any mount namespace.
pub(crate) fn open_macvtap(
    ns: &Namespace,
    dev: &str,
    ifindex: u32,
    queues: u32,
) -> Result<Vec<OwnedFd>, LabError> {
    let what = format!("macvtap {dev} in lab namespace `{}`", ns.name());
    let (major, minor) = ns.run(|| {
        let sysfs = detached_mount("sysfs", &what)?;
        let devt_path = format!("class/net/{dev}/tap{ifindex}/dev");
        let fd = openat(
            &sysfs,
            devt_path.as_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(os(&format!("{what}: open {devt_path} in its sysfs")))?;
        let mut devt = String::new();
        std::fs::File::from(fd)
            .read_to_string(&mut devt)
            .map_err(|e| LabError::Os {
                what: format!("{what}: read {devt_path}"),
                source: e,
            })?;
        devt.trim()
            .split_once(':')
            .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
            .ok_or_else(|| LabError::Os {
                what: format!("{what}: {devt_path} holds `{}`", devt.trim()),
                source: std::io::Error::from(std::io::ErrorKind::InvalidData),
            })
    })??;
    let tmpfs = detached_mount("tmpfs", &what)?;
    mknodat(
        &tmpfs,
        dev,
        SFlag::S_IFCHR,
        Mode::S_IRUSR | Mode::S_IWUSR,
        makedev(major, minor),
    )
    .map_err(os(&format!("{what}: mknod {major}:{minor}")))?;
    let fds: Result<Vec<OwnedFd>, LabError> = (0..queues)
        .map(|q| {
            let what = format!("{what} queue {q}");
            let fd = openat(
                &tmpfs,
                dev,
                OFlag::O_RDWR | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(os(&format!("{what}: open")))?;
            set_tap_flags(&fd, "", false, &what)?;
            Ok(fd)
        })
        .collect();
    let _ = unlinkat(&tmpfs, dev, UnlinkatFlags::NoRemoveDir);
    fds
}

/// A new filesystem of type `fstype` (made in the calling thread's network
/// namespace, for a sysfs), mounted nowhere: its mount fd, through which
/// `*at` calls reach it. It goes when the fd and the files opened through it
/// are closed.
fn detached_mount(fstype: &str, what: &str) -> Result<OwnedFd, LabError> {
    // <linux/mount.h>; not in libc's linux module
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    const MOUNT_ATTR_NOSUID: libc::c_uint = 0x02;
    const MOUNT_ATTR_NODEV: libc::c_uint = 0x04;
    const MOUNT_ATTR_NOEXEC: libc::c_uint = 0x08;
    let fail = |step: &str| LabError::Os {
        what: format!("{what}: {step} a detached {fstype}"),
        source: std::io::Error::last_os_error(),
    };
    let name = std::ffi::CString::new(fstype).expect("no NUL in a filesystem type");
    // SAFETY: fsopen reads a NUL-terminated string; the fd it returns is ours.
    let fs = unsafe { libc::syscall(libc::SYS_fsopen, name.as_ptr(), FSOPEN_CLOEXEC) };
    if fs < 0 {
        return Err(fail("fsopen"));
    }
    // SAFETY: a new fd that nothing else owns.
    let fs = unsafe { OwnedFd::from_raw_fd(fs as RawFd) };
    // SAFETY: FSCONFIG_CMD_CREATE takes no key or value.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    if rc < 0 {
        return Err(fail("create"));
    }
    // a node on the tmpfs must work as a device; nothing runs from either
    let attrs = MOUNT_ATTR_NOSUID
        | MOUNT_ATTR_NOEXEC
        | if fstype == "sysfs" {
            MOUNT_ATTR_NODEV
        } else {
            0
        };
    // SAFETY: the configured filesystem context fd; returns a new mount fd.
    let mnt = unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, attrs) };
    if mnt < 0 {
        return Err(fail("fsmount"));
    }
    // SAFETY: a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(mnt as RawFd) })
}
