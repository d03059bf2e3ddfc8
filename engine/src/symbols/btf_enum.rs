//! Enum values from raw BTF (`/sys/kernel/btf/vmlinux`, readable without root).
//!
//! Reads just enough of the format (include/uapi/linux/btf.h) to find one
//! `enum NAME`: one pass over the type section, no allocation until the enum is found.

/// Why an enum could not be read.
#[derive(Debug, thiserror::Error)]
#[error("btf: {0}")]
pub struct BtfEnumError(pub String);

fn err(msg: impl Into<String>) -> BtfEnumError {
    BtfEnumError(msg.into())
}

const BTF_MAGIC: u16 = 0xeb9f;
/// `struct btf_header` up to `str_len`; later kernels may append fields (`hdr_len` says).
const HEADER_MIN: usize = 24;
/// `struct btf_type`: name_off, info, size/type.
const TYPE_LEN: usize = 12;

const KIND_ENUM: u32 = 6;
const KIND_ENUM64: u32 = 19;

/// Bytes after `struct btf_type` for `kind` with `vlen` members; `None` for a kind
/// this reader does not know (so it cannot skip it).
fn trailing_len(kind: u32, vlen: usize) -> Option<usize> {
    Some(match kind {
        1 => 4,             // INT: encoding/offset/bits
        2 => 0,             // PTR
        3 => 12,            // ARRAY: struct btf_array
        4 | 5 => 12 * vlen, // STRUCT, UNION: struct btf_member
        6 => 8 * vlen,      // ENUM: struct btf_enum
        7..=12 => 0,        // FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC
        13 => 8 * vlen,     // FUNC_PROTO: struct btf_param
        14 => 4,            // VAR: struct btf_var
        15 => 12 * vlen,    // DATASEC: struct btf_var_secinfo
        16 => 0,            // FLOAT
        17 => 4,            // DECL_TAG: struct btf_decl_tag
        18 => 0,            // TYPE_TAG
        19 => 12 * vlen,    // ENUM64: struct btf_enum64
        _ => return None,
    })
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let bytes = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

/// The NUL-terminated string at `off` in the string section.
fn str_at(strs: &[u8], off: u32) -> Option<&[u8]> {
    let rest = strs.get(off as usize..)?;
    let end = rest.iter().position(|&c| c == 0)?;
    Some(&rest[..end])
}

/// Whether the string at `off` is exactly `name`, without scanning past it.
fn str_is(strs: &[u8], off: u32, name: &[u8]) -> bool {
    let start = off as usize;
    match strs.get(start..start + name.len() + 1) {
        Some(s) => s[..name.len()] == *name && s[name.len()] == 0,
        None => false,
    }
}

/// Every (name, value) of `enum NAME` in a raw BTF blob (little-endian only).
///
/// Values follow the kernel's encoding: signed when the enum's kind flag says so,
/// unsigned otherwise (an unsigned `ENUM64` value above `i64::MAX` wraps). When
/// the name is only forward-declared (no enumerators), the result is empty.
///
/// ```no_run
/// let btf = std::fs::read("/sys/kernel/btf/vmlinux").unwrap();
/// let reasons = vprobe_engine::symbols::enum_values(&btf, "skb_drop_reason").unwrap();
/// ```
pub fn enum_values(btf: &[u8], name: &str) -> Result<Vec<(String, i64)>, BtfEnumError> {
    let magic = btf
        .get(..2)
        .map(|m| u16::from_le_bytes([m[0], m[1]]))
        .ok_or_else(|| err("blob too short for a header"))?;
    if magic != BTF_MAGIC {
        return Err(if magic.swap_bytes() == BTF_MAGIC {
            err("big-endian BTF is not supported")
        } else {
            err(format!("bad magic 0x{magic:04x}"))
        });
    }
    let field = |off: usize| u32_at(btf, off).ok_or_else(|| err("blob too short for a header"));
    let hdr_len = field(4)? as usize;
    if hdr_len < HEADER_MIN {
        return Err(err(format!("header length {hdr_len} is too small")));
    }
    let section = |off_at: usize, what: &str| -> Result<&[u8], BtfEnumError> {
        let off = field(off_at)? as usize;
        let len = field(off_at + 4)? as usize;
        hdr_len
            .checked_add(off)
            .and_then(|start| btf.get(start..start.checked_add(len)?))
            .ok_or_else(|| err(format!("{what} section past the end of the blob")))
    };
    let types = section(8, "type")?;
    let strs = section(16, "string")?;

    let want = name.as_bytes();
    let mut declared_only = false;
    let mut pos = 0;
    while pos < types.len() {
        let truncated = || err(format!("type section truncated at offset {pos}"));
        let name_off = u32_at(types, pos).ok_or_else(truncated)?;
        let info = u32_at(types, pos + 4).ok_or_else(truncated)?;
        let kind = (info >> 24) & 0x1f;
        let vlen = (info & 0xffff) as usize;
        let extra = trailing_len(kind, vlen)
            .ok_or_else(|| err(format!("unknown type kind {kind} at offset {pos}")))?;
        let body = pos + TYPE_LEN;
        let next = body + extra;
        if next > types.len() {
            return Err(truncated());
        }
        if (kind == KIND_ENUM || kind == KIND_ENUM64) && str_is(strs, name_off, want) {
            if vlen == 0 {
                declared_only = true;
            } else {
                let signed = info >> 31 == 1;
                return read_enumerators(&types[body..next], strs, kind, vlen, signed);
            }
        }
        pos = next;
    }
    if declared_only {
        return Ok(Vec::new());
    }
    Err(err(format!("no `enum {name}`")))
}

fn read_enumerators(
    data: &[u8],
    strs: &[u8],
    kind: u32,
    vlen: usize,
    signed: bool,
) -> Result<Vec<(String, i64)>, BtfEnumError> {
    let stride = if kind == KIND_ENUM64 { 12 } else { 8 };
    let mut out = Vec::with_capacity(vlen);
    for m in data.chunks_exact(stride) {
        // chunks_exact of a slice sized from vlen: every read is in bounds.
        let word = |i: usize| u32_at(m, i * 4).unwrap_or(0);
        let value = match (kind == KIND_ENUM64, signed) {
            (false, true) => i64::from(word(1) as i32),
            (false, false) => i64::from(word(1)),
            (true, _) => ((u64::from(word(2)) << 32) | u64::from(word(1))) as i64,
        };
        let name = str_at(strs, word(0))
            .ok_or_else(|| err(format!("enumerator name offset {} out of range", word(0))))?;
        out.push((String::from_utf8_lossy(name).into_owned(), value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A blob with `int`, `struct s { int a; }`, `enum e { A = -1, B = 7 }`,
    /// a forward-declared `enum fwd`, `enum64 big { C = 1<<40 }` and a func proto.
    fn tiny() -> Vec<u8> {
        let strs = b"\0int\0s\0a\0e\0A\0B\0big\0C\0fwd\0".to_vec();
        let off = |n: &str| {
            let pat = format!("\0{n}\0");
            (strs
                .windows(pat.len())
                .position(|w| w == pat.as_bytes())
                .unwrap()
                + 1) as u32
        };
        let info = |kind: u32, kflag: u32, vlen: u32| kflag << 31 | kind << 24 | vlen;
        let mut t: Vec<u32> = Vec::new();
        // [1] int: size 4, then encoding word.
        t.extend([off("int"), info(1, 0, 0), 4, 0x0100_0020]);
        // [2] struct s { int a; }
        t.extend([off("s"), info(4, 0, 1), 4, off("a"), 1, 0]);
        // [3] func proto (int) -> int, two params.
        t.extend([0, info(13, 0, 2), 1, 0, 1, 0, 1]);
        // [4] enum fwd; (declaration only)
        t.extend([off("fwd"), info(6, 0, 0), 4]);
        // [5] enum e (signed) { A = -1, B = 7 }
        t.extend([
            off("e"),
            info(6, 1, 2),
            4,
            off("A"),
            (-1i32) as u32,
            off("B"),
            7,
        ]);
        // [6] enum64 big { C = 1 << 40 }
        t.extend([off("big"), info(19, 0, 1), 8, off("C"), 0, 1 << 8]);
        // [7] decl tag, [8] array
        t.extend([off("a"), info(17, 0, 0), 2, 0xffff_ffff]);
        t.extend([0, info(3, 0, 0), 0, 1, 1, 4]);
        let types: Vec<u8> = t.iter().flat_map(|w| w.to_le_bytes()).collect();

        let mut b = Vec::new();
        b.extend(BTF_MAGIC.to_le_bytes());
        b.extend([1u8, 0]);
        for w in [
            24u32,
            0,
            types.len() as u32,
            types.len() as u32,
            strs.len() as u32,
        ] {
            b.extend(w.to_le_bytes());
        }
        b.extend(types);
        b.extend(strs);
        b
    }

    #[test]
    fn reads_enum_and_enum64_from_a_tiny_blob() {
        let b = tiny();
        assert_eq!(
            enum_values(&b, "e").unwrap(),
            vec![("A".to_string(), -1), ("B".to_string(), 7)]
        );
        assert_eq!(
            enum_values(&b, "big").unwrap(),
            vec![("C".to_string(), 1 << 40)]
        );
        assert_eq!(enum_values(&b, "fwd").unwrap(), vec![]);
        // A struct of that name is not an enum; nor is a prefix.
        assert!(enum_values(&b, "s").is_err());
        assert!(enum_values(&b, "bi").is_err());
    }

    #[test]
    fn bad_blobs_are_errors_not_panics() {
        let b = tiny();
        assert!(enum_values(&[], "e").is_err());
        assert!(enum_values(&b[..10], "e").is_err());
        let mut be = b.clone();
        be.swap(0, 1);
        assert!(enum_values(&be, "e")
            .unwrap_err()
            .to_string()
            .contains("big-endian"));
        // Cut inside the type section; the header still claims it all.
        for cut in 24..b.len() {
            let _ = enum_values(&b[..cut], "big");
        }
        // Unknown kind 31.
        let mut unk = b.clone();
        unk[24 + 7] = 31;
        assert!(enum_values(&unk, "e")
            .unwrap_err()
            .to_string()
            .contains("unknown type kind"));
    }

    #[test]
    fn real_vmlinux_has_skb_drop_reason() {
        let btf = match std::fs::read("/sys/kernel/btf/vmlinux") {
            Ok(b) => b,
            Err(e) => {
                eprintln!("skipped: /sys/kernel/btf/vmlinux: {e}");
                return;
            }
        };
        let v = enum_values(&btf, "skb_drop_reason").unwrap();
        assert!(v.iter().any(|(n, _)| n == "SKB_DROP_REASON_NOT_SPECIFIED"));
        let full = v
            .iter()
            .find(|(n, _)| n == "SKB_DROP_REASON_FULL_RING")
            .map(|e| e.1);
        eprintln!("SKB_DROP_REASON_FULL_RING = {full:?} ({} reasons)", v.len());
        // The number moves between kernels; pin it on the kernel this was written on.
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        if release.starts_with("6.18.") {
            assert_eq!(full, Some(80));
        }
        // A miss walks the whole type section: every kind on this kernel is known.
        let miss = enum_values(&btf, "no_such_enum_here")
            .unwrap_err()
            .to_string();
        assert_eq!(miss, "btf: no `enum no_such_enum_here`");
    }
}
