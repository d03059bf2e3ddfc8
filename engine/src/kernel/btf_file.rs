//! The kernel's BTF file, mapped instead of copied where the kernel allows it.
//!
//! `/sys/kernel/btf/vmlinux` is 5+ MB read 4 KiB per syscall; since 6.16 the
//! kernel lets it be mapped read-only (MAP_PRIVATE), which saves the copy, the
//! syscalls and a 5 MB buffer in the peak RSS. Older kernels get it read.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// The bytes of a BTF file: mapped, or read when mapping is refused.
pub enum BtfBytes {
    /// A read-only private mapping of the whole file.
    Mapped {
        /// Start of the mapping.
        ptr: std::ptr::NonNull<u8>,
        /// Its length.
        len: usize,
    },
    /// The file read into memory.
    Read(Vec<u8>),
}

impl BtfBytes {
    /// Maps `path`, or reads it when it cannot be mapped.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let len = usize::try_from(file.metadata()?.len()).unwrap_or(0);
        if len > 0 {
            // SAFETY: a fresh read-only private mapping of a file we hold open;
            // nothing else aliases it, and Drop unmaps exactly this range.
            let ptr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE,
                    file.as_raw_fd(),
                    0,
                )
            };
            if ptr != libc::MAP_FAILED {
                if let Some(ptr) = std::ptr::NonNull::new(ptr.cast::<u8>()) {
                    return Ok(Self::Mapped { ptr, len });
                }
            }
        }
        std::fs::read(path).map(Self::Read)
    }

    /// Whether the bytes are mapped rather than read (tests).
    pub fn is_mapped(&self) -> bool {
        matches!(self, Self::Mapped { .. })
    }
}

impl std::ops::Deref for BtfBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            // SAFETY: the mapping is `len` readable bytes until Drop.
            Self::Mapped { ptr, len } => unsafe { std::slice::from_raw_parts(ptr.as_ptr(), *len) },
            Self::Read(v) => v,
        }
    }
}

impl Drop for BtfBytes {
    fn drop(&mut self) {
        if let Self::Mapped { ptr, len } = self {
            // SAFETY: unmaps the mapping made in open(), once.
            unsafe { libc::munmap(ptr.as_ptr().cast(), *len) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_or_read_the_bytes_are_the_file() {
        let path = Path::new(super::super::VMLINUX_BTF);
        if !path.exists() {
            return;
        }
        let bytes = BtfBytes::open(path).unwrap();
        let read = std::fs::read(path).unwrap();
        assert_eq!(&bytes[..], &read[..]);
        // a regular file maps too
        let dir = std::env::temp_dir().join(format!("vprobe-btf-bytes-{}", std::process::id()));
        std::fs::write(&dir, b"\x9f\xeb\x01\x00abc").unwrap();
        let small = BtfBytes::open(&dir).unwrap();
        assert!(small.is_mapped());
        assert_eq!(&small[..], b"\x9f\xeb\x01\x00abc");
        std::fs::remove_file(&dir).unwrap();
        // an empty file is read (a zero-length mapping is an error)
        std::fs::write(&dir, b"").unwrap();
        let empty = BtfBytes::open(&dir).unwrap();
        assert!(!empty.is_mapped());
        assert!(empty.is_empty());
        std::fs::remove_file(&dir).unwrap();
    }
}
