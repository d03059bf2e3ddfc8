//! What loading learned from this kernel's BTF, kept on disk per kernel build:
//! each object's CO-RE-relocated instructions and the BTF ids programs attach
//! at. A later run on the same kernel loads its objects without parsing the
//! kernel's BTF (~10 ms and ~15 MB of memory).
//!
//! Safety of the cache:
//! - the kernel is named by its GNU build id (`/sys/kernel/notes`), which
//!   changes with any change to the image, its BTF included; a kernel without
//!   one gets no cache;
//! - an object's entry is named by the object's CRC-32 and length and lists
//!   every function with its place and length, all checked before anything is
//!   used: a stale or damaged entry is a miss, never a wrong program;
//! - the directory must belong to the user and be writable by no one else
//!   (relocated instructions become the programs loaded), files are written
//!   whole and renamed into place, so concurrent runs never see half a file.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use aya_obj::generated::bpf_insn;
use aya_obj::Object;

/// First bytes of an object's entry (bump the digit when the layout changes).
const MAGIC: &[u8; 8] = b"VPRELOC1";

/// The file of remembered BTF ids, beside the objects' entries.
const IDS_FILE: &str = "btf-ids";

/// This kernel's folder of the cache.
#[derive(Debug)]
pub(super) struct BtfCache {
    dir: PathBuf,
}

impl BtfCache {
    /// The cache for the running kernel, made if needed: `$VPROBE_CACHE_DIR`
    /// (empty: no cache), else `$XDG_CACHE_HOME/vprobe`, else
    /// `~/.cache/vprobe`; None without a build id, a home, or a safe folder.
    pub(super) fn for_this_kernel() -> Option<Self> {
        let base = base_dir()?;
        let id = build_id(&fs::read("/sys/kernel/notes").ok()?)?;
        Self::at(&base, &id)
    }

    /// The cache folder for kernel build `id` under `base`.
    pub(super) fn at(base: &Path, id: &str) -> Option<Self> {
        let make = |dir: &Path| {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .is_ok()
                && private(dir)
        };
        let dir = base.join(format!("kernel-{id}"));
        (make(base) && make(&dir)).then_some(Self { dir })
    }

    /// The folder.
    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether an earlier run left relocations here (then a run is unlikely
    /// to need the kernel's BTF at all).
    pub(super) fn warm(&self) -> bool {
        fs::read_dir(&self.dir).is_ok_and(|mut d| {
            d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".reloc")))
        })
    }

    fn entry(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let crc = crc32fast::hash(bytes);
        self.dir
            .join(format!("{name}-{crc:08x}-{}.reloc", bytes.len()))
    }

    /// Puts the remembered relocated instructions of object `name` (whose ELF
    /// is `bytes`) into `obj`; false, with `obj` untouched, when the entry
    /// lacks one of `obj`'s functions or has it with another length. `obj`
    /// may hold only some of the object's functions (the programs a session
    /// loads); only those are copied out of the entry.
    pub(super) fn restore(&self, name: &str, bytes: &[u8], obj: &mut Object) -> bool {
        let Ok(data) = fs::read(self.entry(name, bytes)) else {
            return false;
        };
        let Some(functions) = parse_entry(&data) else {
            return false;
        };
        let fits = obj.functions.iter().all(|(key, f)| {
            functions
                .get(key)
                .is_some_and(|raw| raw.len() == f.instructions.len() * 8)
        });
        if !fits {
            return false;
        }
        for (key, f) in obj.functions.iter_mut() {
            f.instructions = functions[key]
                .chunks_exact(8)
                // SAFETY: any 8 bytes are a valid bpf_insn (plain integers).
                .map(|raw| unsafe {
                    std::mem::transmute::<[u8; 8], bpf_insn>(raw.try_into().unwrap())
                })
                .collect();
        }
        true
    }

    /// Remembers the relocated instructions of every function of `obj`, with
    /// those the entry already holds for functions `obj` lacks (sessions
    /// load different programs of one object; the entry becomes their union).
    /// Best effort: a cache that cannot be written only costs the next run time.
    pub(super) fn store(&self, name: &str, bytes: &[u8], obj: &Object) {
        let path = self.entry(name, bytes);
        let old = fs::read(&path).unwrap_or_default();
        let mut functions: BTreeMap<(usize, u64), Vec<u8>> = parse_entry(&old)
            .unwrap_or_default()
            .into_iter()
            .map(|(k, raw)| (k, raw.to_vec()))
            .collect();
        for (&key, f) in &obj.functions {
            functions.insert(key, f.instructions.iter().flat_map(insn_bytes).collect());
        }
        let mut out =
            Vec::with_capacity(64 + functions.values().map(|r| r.len() + 24).sum::<usize>());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(functions.len() as u64).to_le_bytes());
        for ((section, address), raw) in &functions {
            out.extend_from_slice(&(*section as u64).to_le_bytes());
            out.extend_from_slice(&address.to_le_bytes());
            out.extend_from_slice(&(raw.len() as u64 / 8).to_le_bytes());
            out.extend_from_slice(raw);
        }
        write_whole(&path, &out);
    }

    /// The remembered BTF ids: `(kind, name)` → the id, or None when this
    /// kernel has no such type.
    pub(super) fn ids(&self) -> HashMap<(String, String), Option<u32>> {
        let text = fs::read_to_string(self.dir.join(IDS_FILE)).unwrap_or_default();
        text.lines()
            .filter_map(|line| {
                let mut parts = line.split(' ');
                let (kind, name, id) = (parts.next()?, parts.next()?, parts.next()?);
                let id = if id == "-" {
                    None
                } else {
                    Some(id.parse().ok()?)
                };
                Some(((kind.to_string(), name.to_string()), id))
            })
            .collect()
    }

    /// Writes the ids back (all of them: the file is replaced whole).
    pub(super) fn store_ids(&self, ids: &HashMap<(String, String), Option<u32>>) {
        let mut lines: Vec<String> = ids
            .iter()
            .map(|((kind, name), id)| match id {
                Some(id) => format!("{kind} {name} {id}"),
                None => format!("{kind} {name} -"),
            })
            .collect();
        lines.sort();
        write_whole(
            &self.dir.join(IDS_FILE),
            (lines.join("\n") + "\n").as_bytes(),
        );
    }
}

/// Where the caches of every kernel live.
fn base_dir() -> Option<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(dir) = std::env::var_os("VPROBE_CACHE_DIR") {
        return (!dir.is_empty()).then(|| PathBuf::from(dir));
    }
    var("XDG_CACHE_HOME")
        .map(|d| PathBuf::from(d).join("vprobe"))
        .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache/vprobe")))
}

/// A folder only its owner, this user, can change.
fn private(dir: &Path) -> bool {
    fs::metadata(dir).is_ok_and(|m| {
        m.is_dir() && m.uid() == nix::unistd::geteuid().as_raw() && m.mode() & 0o022 == 0
    })
}

/// Writes `bytes` to a temporary file beside `path`, then renames it there
/// (the temporary name is this writer's alone: threads and processes may store
/// the same entry at once).
fn write_whole(path: &Path, bytes: &[u8]) {
    static WRITES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp{}-{n}", std::process::id()));
    let written = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes));
    if written.is_err() || fs::rename(&tmp, path).is_err() {
        let _ = fs::remove_file(&tmp);
    }
}

fn insn_bytes(insn: &bpf_insn) -> [u8; 8] {
    // SAFETY: bpf_insn is the kernel's 8-byte plain-old-data instruction.
    unsafe { std::mem::transmute_copy(insn) }
}

/// The functions of an entry: key in `Object::functions` (section index,
/// address) → its relocated instructions, raw (8 bytes each), borrowed from
/// `data`; None when the entry is damaged.
fn parse_entry(data: &[u8]) -> Option<HashMap<(usize, u64), &[u8]>> {
    fn take<'a>(at: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (at.get(..n)?, at.get(n..)?);
        *at = rest;
        Some(head)
    }
    let word = |at: &mut &[u8]| take(at, 8).map(|b| u64::from_le_bytes(b.try_into().unwrap()));
    let mut at = data.strip_prefix(MAGIC.as_slice())?;
    let n = word(&mut at)?;
    let mut out = HashMap::new();
    for _ in 0..n {
        let section = usize::try_from(word(&mut at)?).ok()?;
        let address = word(&mut at)?;
        let len = usize::try_from(word(&mut at)?).ok()?.checked_mul(8)?;
        out.insert((section, address), take(&mut at, len)?);
    }
    at.is_empty().then_some(out)
}

/// The GNU build id in ELF notes (`/sys/kernel/notes`), as hex.
pub(super) fn build_id(notes: &[u8]) -> Option<String> {
    const NT_GNU_BUILD_ID: u32 = 3;
    let word = |b: &[u8], at: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
    };
    let pad = |n: usize| n.div_ceil(4) * 4;
    let mut at = 0;
    while at + 12 <= notes.len() {
        let namesz = word(notes, at)? as usize;
        let descsz = word(notes, at + 4)? as usize;
        let kind = word(notes, at + 8)?;
        let name = notes.get(at + 12..at + 12 + namesz)?;
        let desc_at = at + 12 + pad(namesz);
        let desc = notes.get(desc_at..desc_at + descsz)?;
        if kind == NT_GNU_BUILD_ID && name == b"GNU\0" && !desc.is_empty() {
            return Some(desc.iter().map(|b| format!("{b:02x}")).collect());
        }
        at = desc_at + pad(descsz);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(kind: u32, name: &[u8], desc: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(name.len() as u32).to_ne_bytes());
        v.extend_from_slice(&(desc.len() as u32).to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(name);
        v.resize(v.len().div_ceil(4) * 4, 0);
        v.extend_from_slice(desc);
        v.resize(v.len().div_ceil(4) * 4, 0);
        v
    }

    #[test]
    fn the_build_id_is_found_among_other_notes() {
        let mut notes = note(6, b"Linux\0", &[1, 2, 3, 4]);
        notes.extend(note(3, b"GNU\0", &[0xab, 0x01, 0xff]));
        assert_eq!(build_id(&notes).as_deref(), Some("ab01ff"));
        assert_eq!(build_id(&note(6, b"Linux\0", &[1])), None);
        assert_eq!(build_id(&[1, 0, 0]), None);
        // a truncated note is no id, not a panic
        let whole = note(3, b"GNU\0", &[7; 20]);
        for cut in 0..whole.len() {
            let _ = build_id(&whole[..cut]);
        }
    }

    fn object() -> (&'static [u8], Object) {
        let bytes = vprobe_probes::find("skb.drop").unwrap().object.bytes();
        (bytes, Object::parse(bytes).unwrap())
    }

    fn temp_base(tag: &str) -> PathBuf {
        let base = std::env::temp_dir().join(format!("vprobe-cache-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        fs::DirBuilder::new().mode(0o700).create(&base).unwrap();
        base
    }

    #[test]
    fn an_entry_gives_back_what_was_stored_and_only_to_its_object() {
        let base = temp_base("roundtrip");
        let cache = BtfCache::at(&base, "00ff").unwrap();
        let (bytes, mut obj) = object();
        assert!(!cache.warm());
        assert!(
            !cache.restore("skb_drop", bytes, &mut obj),
            "nothing stored yet"
        );
        // pretend relocation changed an instruction
        let key = *obj.functions.keys().next().unwrap();
        obj.functions.get_mut(&key).unwrap().instructions[0].imm = 0x1234_5678;
        cache.store("skb_drop", bytes, &obj);
        assert!(cache.warm());
        let (_, mut fresh) = object();
        assert!(cache.restore("skb_drop", bytes, &mut fresh));
        for (k, f) in &obj.functions {
            let got: Vec<[u8; 8]> = fresh.functions[k]
                .instructions
                .iter()
                .map(insn_bytes)
                .collect();
            let want: Vec<[u8; 8]> = f.instructions.iter().map(insn_bytes).collect();
            assert_eq!(got, want, "{k:?}");
        }
        // other bytes (a rebuilt object) are another entry
        let mut other = bytes.to_vec();
        *other.last_mut().unwrap() ^= 1;
        let (_, mut fresh) = object();
        assert!(!cache.restore("skb_drop", &other, &mut fresh));
        fs::remove_dir_all(&base).unwrap();
    }

    /// An object parsed for one program (`Object::parse_keeping`).
    fn object_keeping(program: &str) -> Object {
        let bytes = vprobe_probes::find("skb.drop").unwrap().object.bytes();
        Object::parse_keeping(bytes, &|name| name == program).unwrap()
    }

    #[test]
    fn sessions_loading_different_programs_share_one_entry() {
        let base = temp_base("union");
        let cache = BtfCache::at(&base, "00ff").unwrap();
        let bytes = vprobe_probes::find("skb.drop").unwrap().object.bytes();
        let names: Vec<String> = object().1.programs.keys().cloned().collect();
        assert!(names.len() >= 2, "{names:?}");
        let (first, second) = (names[0].as_str(), names[1].as_str());
        let mut a = object_keeping(first);
        assert_eq!(a.programs.len(), 1, "only the program asked for is parsed");
        assert!(a.functions.len() < object().1.functions.len());
        for f in a.functions.values_mut() {
            f.instructions[0].imm = 0x0a0a;
        }
        cache.store("skb_drop", bytes, &a);
        assert!(cache.restore("skb_drop", bytes, &mut object_keeping(first)));
        // the other program is not in the entry yet: a miss, then stored beside
        let mut b = object_keeping(second);
        assert!(!cache.restore("skb_drop", bytes, &mut b));
        for f in b.functions.values_mut() {
            f.instructions[0].imm = 0x0b0b;
        }
        cache.store("skb_drop", bytes, &b);
        for (program, imm) in [(first, 0x0a0a), (second, 0x0b0b)] {
            let mut fresh = object_keeping(program);
            assert!(cache.restore("skb_drop", bytes, &mut fresh), "{program}");
            assert!(fresh
                .functions
                .values()
                .all(|f| f.instructions[0].imm == imm));
        }
        // the whole object fits only once every program's functions are in
        let mut whole = object().1;
        assert_eq!(
            cache.restore("skb_drop", bytes, &mut whole),
            names.len() == 2
        );
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn a_damaged_entry_is_a_miss_that_changes_nothing() {
        let base = temp_base("damaged");
        let cache = BtfCache::at(&base, "00ff").unwrap();
        let (bytes, obj) = object();
        cache.store("skb_drop", bytes, &obj);
        let path = cache.entry("skb_drop", bytes);
        let whole = fs::read(&path).unwrap();
        for cut in [0, 7, 8, 16, 40, whole.len() / 2, whole.len() - 1] {
            fs::write(&path, &whole[..cut]).unwrap();
            let (_, mut fresh) = object();
            let before: Vec<Vec<[u8; 8]>> = fresh
                .functions
                .values()
                .map(|f| f.instructions.iter().map(insn_bytes).collect())
                .collect();
            assert!(
                !cache.restore("skb_drop", bytes, &mut fresh),
                "cut at {cut}"
            );
            let after: Vec<Vec<[u8; 8]>> = fresh
                .functions
                .values()
                .map(|f| f.instructions.iter().map(insn_bytes).collect())
                .collect();
            assert_eq!(before, after);
        }
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn ids_are_remembered_present_or_absent() {
        let base = temp_base("ids");
        let cache = BtfCache::at(&base, "00ff").unwrap();
        let mut ids = HashMap::new();
        ids.insert(
            ("typedef".to_string(), "btf_trace_kfree_skb".to_string()),
            Some(42),
        );
        ids.insert(("func".to_string(), "no_such_fn".to_string()), None);
        cache.store_ids(&ids);
        assert_eq!(cache.ids(), ids);
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn a_folder_others_can_write_is_not_used() {
        let base = temp_base("unsafe");
        fs::set_permissions(&base, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        assert!(BtfCache::at(&base, "00ff").is_none());
        fs::remove_dir_all(&base).unwrap();
    }
}
