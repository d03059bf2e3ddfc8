//! The format file of a classic tracepoint (`tracefs/events/CAT/NAME/format`):
//! where each field of the raw record lies, and how vprobe reads it.

use vprobe_probes::abi;
use vprobe_probes::FieldKind;

/// Why a format file does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Not one `field:` line.
    #[error("no `field:` lines")]
    NoFields,
    /// A malformed `field:` line.
    #[error("line {line}: {why}: `{text}`")]
    Field {
        /// 1-based.
        line: usize,
        /// The line.
        text: String,
        /// What is wrong with it.
        why: FieldError,
    },
}

/// What is wrong with a `field:` line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// A `;`-separated part that is not `key:value`.
    #[error("a part without `:`")]
    NoColon,
    /// `offset`, `size` or `signed` that is not a number.
    #[error("`{0}` is not a number")]
    NotANumber(String),
    /// No `field:` part.
    #[error("no declaration")]
    NoDeclaration,
    /// No `offset:` part.
    #[error("no offset")]
    NoOffset,
    /// No `size:` part.
    #[error("no size")]
    NoSize,
    /// `char a[16` and the like.
    #[error("unbalanced `[`")]
    Unbalanced,
    /// A declaration without a name.
    #[error("no field name")]
    NoName,
}

/// One `field:` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatField {
    /// Field name (`len`, `prev_comm`).
    pub name: String,
    /// The C declaration without the name (`unsigned int`, `char[16]`, `__data_loc char[]`).
    pub ctype: String,
    /// Byte offset in the record.
    pub offset: u32,
    /// Size in bytes.
    pub size: u32,
    /// Whether the kernel calls it signed.
    pub signed: bool,
    /// Declared as an array (`char comm[16]`).
    pub array: bool,
}

/// How the generic program reads a field, or why it cannot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Read {
    /// An integer of 1, 2, 4 or 8 bytes.
    Number {
        /// Sign-extended.
        signed: bool,
    },
    /// A pointer: shown as `symbol+0xoff` when it points into kernel text.
    Pointer,
    /// A string: `char x[N]`, `__data_loc char[]`, `__rel_loc char[]` (an `abi::READ_*`).
    Str(u32),
    /// An IP address: `u8 addr[4]` (IPv4) or `u8 addr[16]` (an `abi::READ_*`).
    Addr(u32),
    /// Not readable by vprobe: why.
    Unsupported(String),
}

impl Read {
    /// The field kind scripts see.
    pub fn kind(&self) -> Option<FieldKind> {
        match self {
            Read::Number { signed: true } => Some(FieldKind::Int),
            Read::Number { signed: false } => Some(FieldKind::Uint),
            Read::Pointer => Some(FieldKind::KernelAddr),
            Read::Str(_) => Some(FieldKind::Str),
            Read::Addr(_) => Some(FieldKind::IpAddr),
            Read::Unsupported(_) => None,
        }
    }

    /// The `abi::READ_*` code.
    pub fn code(&self) -> u32 {
        match self {
            Read::Number { signed: true } => abi::READ_SIGNED,
            Read::Number { signed: false } | Read::Pointer => abi::READ_UNSIGNED,
            Read::Str(c) | Read::Addr(c) => *c,
            Read::Unsupported(_) => abi::READ_UNSIGNED,
        }
    }
}

const CHAR_TYPES: &[&str] = &["char", "const char", "signed char"];
const BYTE_TYPES: &[&str] = &["u8", "__u8", "unsigned char", "uint8_t"];

impl FormatField {
    /// `common_type`, `common_pid`, ...: the header every record starts with.
    /// A BPF program cannot read it: the kernel puts a pointer to the
    /// registers in those 8 bytes before the program runs.
    pub fn is_common(&self) -> bool {
        self.name.starts_with("common_") || self.offset < 8
    }

    /// How vprobe reads this field.
    pub fn read(&self) -> Read {
        let t = self.ctype.as_str();
        for (prefix, code) in [
            ("__data_loc ", abi::READ_DATA_LOC),
            ("__rel_loc ", abi::READ_REL_LOC),
        ] {
            if let Some(elem) = t.strip_prefix(prefix) {
                let elem = elem.trim_end_matches("[]").trim();
                return if CHAR_TYPES.contains(&elem) {
                    Read::Str(code)
                } else {
                    Read::Unsupported(format!("a dynamic array of {elem}"))
                };
            }
        }
        if self.array {
            let elem = t.split('[').next().unwrap_or(t).trim();
            if CHAR_TYPES.contains(&elem) {
                return Read::Str(abi::READ_CHARS);
            }
            let addr_like = self.name.contains("addr") || self.name.contains("v6");
            if BYTE_TYPES.contains(&elem) && addr_like {
                match self.size {
                    4 => return Read::Addr(abi::READ_IPV4),
                    16 => return Read::Addr(abi::READ_BYTES),
                    _ => {}
                }
            }
            return Read::Unsupported(format!("an array ({t}, {} bytes)", self.size));
        }
        match self.size {
            8 if t.ends_with('*') => Read::Pointer,
            1 | 2 | 4 | 8 => Read::Number {
                signed: self.signed,
            },
            n => Read::Unsupported(format!("{t} of {n} bytes")),
        }
    }
}

/// A parsed format file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Format {
    /// `name:`.
    pub name: String,
    /// `ID:` (the perf tracepoint id).
    pub id: Option<u32>,
    /// Every field, the common header first, in record order.
    pub fields: Vec<FormatField>,
}

/// Parses a format file. Lines other than `name:`, `ID:` and `field:` are ignored.
pub fn parse(text: &str) -> Result<Format, FormatError> {
    let mut f = Format::default();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(v) = line.strip_prefix("name:") {
            f.name = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("ID:") {
            f.id = v.trim().parse().ok();
        } else if line.starts_with("field:") {
            f.fields.push(field(line).map_err(|why| FormatError::Field {
                line: i + 1,
                text: line.to_string(),
                why,
            })?);
        }
    }
    if f.fields.is_empty() {
        return Err(FormatError::NoFields);
    }
    Ok(f)
}

/// `field:unsigned int len; offset:16; size:4; signed:0;` (tab-separated)
fn field(line: &str) -> Result<FormatField, FieldError> {
    let mut decl = None;
    let (mut offset, mut size, mut signed) = (None, None, None);
    for part in line.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once(':').ok_or(FieldError::NoColon)?;
        let num = || {
            v.trim()
                .parse::<u32>()
                .map_err(|_| FieldError::NotANumber(k.to_string()))
        };
        match k.trim() {
            "field" => decl = Some(v.trim()),
            "offset" => offset = Some(num()?),
            "size" => size = Some(num()?),
            "signed" => signed = Some(num()? != 0),
            _ => {}
        }
    }
    let decl = decl.ok_or(FieldError::NoDeclaration)?;
    let (ctype, name, array) = split_decl(decl)?;
    Ok(FormatField {
        name,
        ctype,
        offset: offset.ok_or(FieldError::NoOffset)?,
        size: size.ok_or(FieldError::NoSize)?,
        signed: signed.unwrap_or(false),
        array,
    })
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// `char prev_comm[16]` → (`char[16]`, `prev_comm`, true);
/// `__data_loc char[] name` → (`__data_loc char[]`, `name`, false);
/// `__u8 saddr[sizeof(struct sockaddr_in6)]` → (`__u8[sizeof(struct sockaddr_in6)]`, `saddr`, true).
fn split_decl(decl: &str) -> Result<(String, String, bool), FieldError> {
    let decl = decl.trim();
    if decl.ends_with(']') && !decl.ends_with("[]") {
        // the name is the identifier just before the bracket that the final `]` closes
        let mut depth = 0usize;
        let mut open = None;
        for (i, c) in decl.char_indices().rev() {
            match c {
                ']' => depth += 1,
                '[' => {
                    depth -= 1;
                    if depth == 0 {
                        open = Some(i);
                    }
                }
                _ => {}
            }
        }
        let open = open.ok_or(FieldError::Unbalanced)?;
        let before = decl[..open].trim_end();
        let start = before.rfind(|c: char| !is_ident(c)).map_or(0, |i| i + 1);
        let name = &before[start..];
        if name.is_empty() {
            return Err(FieldError::NoName);
        }
        let ctype = format!("{}{}", before[..start].trim(), &decl[open..]);
        return Ok((ctype, name.to_string(), true));
    }
    let start = decl.rfind(|c: char| !is_ident(c)).map_or(0, |i| i + 1);
    let name = &decl[start..];
    let ctype = decl[..start].trim();
    if name.is_empty() || ctype.is_empty() {
        return Err(FieldError::NoName);
    }
    Ok((ctype.to_string(), name.to_string(), false))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET_DEV_QUEUE: &str = "name: net_dev_queue
ID: 2304
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;
\tfield:unsigned int len;\toffset:16;\tsize:4;\tsigned:0;
\tfield:__data_loc char[] name;\toffset:20;\tsize:4;\tsigned:0;

print fmt: \"dev=%s skbaddr=%p len=%u\", __get_str(name), REC->skbaddr, REC->len
";

    const SCHED_SWITCH: &str = "name: sched_switch
ID: 372
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:char prev_comm[16];\toffset:8;\tsize:16;\tsigned:0;
\tfield:pid_t prev_pid;\toffset:24;\tsize:4;\tsigned:1;
\tfield:long prev_state;\toffset:32;\tsize:8;\tsigned:1;
\tfield:char next_comm[16];\toffset:40;\tsize:16;\tsigned:0;
";

    const TCP_PROBE: &str = "name: tcp_probe
ID: 1500
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:__u8 saddr[sizeof(struct sockaddr_in6)];\toffset:8;\tsize:28;\tsigned:0;
\tfield:__u8 saddr_v6[16];\toffset:36;\tsize:16;\tsigned:0;
\tfield:__u8 daddr[4];\toffset:52;\tsize:4;\tsigned:0;
\tfield:__u16 sport;\toffset:56;\tsize:2;\tsigned:0;
\tfield:__data_loc u64[] stack;\toffset:60;\tsize:4;\tsigned:0;
\tfield:__rel_loc char[] msg;\toffset:64;\tsize:4;\tsigned:0;
\tfield:struct foo blob;\toffset:68;\tsize:12;\tsigned:0;
";

    #[test]
    fn parses_offsets_sizes_and_data_loc() {
        let f = parse(NET_DEV_QUEUE).unwrap();
        assert_eq!((f.name.as_str(), f.id), ("net_dev_queue", Some(2304)));
        assert_eq!(f.fields.len(), 7);
        let len = &f.fields[5];
        assert_eq!(
            (
                len.name.as_str(),
                len.ctype.as_str(),
                len.offset,
                len.size,
                len.signed
            ),
            ("len", "unsigned int", 16, 4, false)
        );
        assert_eq!(len.read(), Read::Number { signed: false });
        let name = &f.fields[6];
        assert_eq!(
            (name.name.as_str(), name.ctype.as_str(), name.array),
            ("name", "__data_loc char[]", false)
        );
        assert_eq!(name.read(), Read::Str(abi::READ_DATA_LOC));
        assert_eq!(f.fields[4].ctype, "void *");
        assert_eq!(f.fields[4].read(), Read::Pointer);
        assert_eq!(f.fields[4].read().kind(), Some(FieldKind::KernelAddr));
        assert_eq!(f.fields[3].read(), Read::Number { signed: true });
        assert!(f.fields[0].is_common() && !f.fields[4].is_common());
    }

    #[test]
    fn char_arrays_are_strings_and_typedefs_keep_their_sign() {
        let f = parse(SCHED_SWITCH).unwrap();
        let comm = f.fields.iter().find(|x| x.name == "prev_comm").unwrap();
        assert_eq!((comm.ctype.as_str(), comm.array), ("char[16]", true));
        assert_eq!(comm.read(), Read::Str(abi::READ_CHARS));
        assert_eq!(comm.read().kind(), Some(FieldKind::Str));
        let pid = f.fields.iter().find(|x| x.name == "prev_pid").unwrap();
        assert_eq!(pid.read().kind(), Some(FieldKind::Int));
        let state = f.fields.iter().find(|x| x.name == "prev_state").unwrap();
        assert_eq!((state.size, state.read().code()), (8, abi::READ_SIGNED));
    }

    #[test]
    fn addresses_and_what_cannot_be_read() {
        let f = parse(TCP_PROBE).unwrap();
        let by = |n: &str| f.fields.iter().find(|x| x.name == n).unwrap().read();
        // a sockaddr-sized array with an expression for its length
        let saddr = f.fields.iter().find(|x| x.name == "saddr").unwrap();
        assert_eq!(saddr.ctype, "__u8[sizeof(struct sockaddr_in6)]");
        assert!(matches!(by("saddr"), Read::Unsupported(_)));
        assert_eq!(by("saddr_v6"), Read::Addr(abi::READ_BYTES));
        assert_eq!(by("daddr"), Read::Addr(abi::READ_IPV4));
        assert_eq!(by("sport"), Read::Number { signed: false });
        assert!(matches!(by("stack"), Read::Unsupported(m) if m.contains("u64")));
        assert_eq!(by("msg"), Read::Str(abi::READ_REL_LOC));
        assert!(matches!(by("blob"), Read::Unsupported(_)));
    }

    #[test]
    fn malformed_lines_are_located() {
        let e = parse("name: x\n\tfield:int a;\toffset:zz;\tsize:4;\tsigned:1;\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("line 2: `offset` is not a number"), "{e}");
        assert!(parse("name: x\nformat:\n")
            .unwrap_err()
            .to_string()
            .contains("no `field:`"));
        let e = parse("\tfield:int ;\toffset:0;\tsize:4;\tsigned:1;\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no field name"), "{e}");
    }
}
