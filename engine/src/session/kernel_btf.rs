//! The kernel's BTF as loading needs it: to relocate each object (CO-RE) and to
//! find the type ids tp_btf and fentry programs attach at. What an earlier run
//! on this kernel learned comes from the cache (`btf_cache.rs`); only what it
//! did not is looked up in the parsed BTF, parsed once per process and only
//! then.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use aya::{Btf, BtfError, EbpfError, Relocator};
use aya_obj::btf::BtfKind;

use super::btf_cache::BtfCache;
use crate::kernel;

/// How many times this process parsed the kernel's BTF: at most once, however
/// many objects and sessions it loads (tests check it).
static BTF_PARSES: AtomicUsize = AtomicUsize::new(0);

/// The kernel's BTF, parsed once per process and indexed by name: every session
/// (a REPL's `:reset`, `list` then `run`) and every object load shares it.
static PARSED: OnceLock<Btf> = OnceLock::new();

/// The kernel's BTF, parsed now if no one has yet.
pub(super) fn parsed() -> Result<&'static Btf, BtfError> {
    if let Some(btf) = PARSED.get() {
        return Ok(btf);
    }
    // one parse even when threads ask at once (a failed parse is retried next time)
    static PARSING: Mutex<()> = Mutex::new(());
    let _parsing = PARSING.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(btf) = PARSED.get() {
        return Ok(btf);
    }
    BTF_PARSES.fetch_add(1, Ordering::Relaxed);
    let path = std::path::Path::new(kernel::VMLINUX_BTF);
    let bytes = kernel::BtfBytes::open(path).map_err(|error| BtfError::FileError {
        path: path.into(),
        error,
    })?;
    let mut btf = Btf::parse(&bytes, aya::Endianness::default())?;
    // unmapped before the index is built: the peak RSS holds one copy at a time
    drop(bytes);
    btf.index_names();
    Ok(PARSED.get_or_init(|| btf))
}

/// Starts parsing the kernel's BTF on another thread, for a command about to
/// open a session, when the cache suggests it will be needed (nothing was
/// relocated for this kernel yet): the parse then overlaps with compiling the
/// script. Whoever asks first waits for it; nothing is parsed twice.
pub fn preload_btf() {
    if PARSED.get().is_some() || BtfCache::for_this_kernel().is_some_and(|c| c.warm()) {
        return;
    }
    // A failed parse is reported by the session that needs it.
    let _ = std::thread::Builder::new()
        .name("vprobe-btf".into())
        .spawn(|| parsed().map(|_| ()));
}

/// How many times this process has parsed the kernel's BTF.
pub fn btf_parses() -> usize {
    BTF_PARSES.load(Ordering::Relaxed)
}

/// How this process used the kernel's BTF, for `-v`: parsed or not, and the
/// cache that spared it.
pub fn btf_use() -> String {
    let cache = match BtfCache::for_this_kernel() {
        Some(c) => format!(
            "relocations for this kernel are kept in {}",
            c.dir().display()
        ),
        None => {
            "no relocation cache (VPROBE_CACHE_DIR is empty, or no home folder or kernel build id)"
                .into()
        }
    };
    match btf_parses() {
        0 => format!("kernel BTF not parsed: {cache}"),
        _ => format!("kernel BTF parsed: {cache}"),
    }
}

/// A kind of BTF type an attach id is looked up as.
#[derive(Clone, Copy, Debug)]
pub(super) enum IdKind {
    /// `btf_trace_EVENT`: a tracepoint (tp_btf, raw_tp).
    Typedef,
    /// A kernel function (fentry/fexit).
    Func,
}

impl IdKind {
    fn name(self) -> &'static str {
        match self {
            Self::Typedef => "typedef",
            Self::Func => "func",
        }
    }

    fn btf(self) -> BtfKind {
        match self {
            Self::Typedef => BtfKind::Typedef,
            Self::Func => BtfKind::Func,
        }
    }
}

/// One session's view of the kernel's BTF: the cache, and the parse behind it.
#[derive(Debug)]
pub(super) struct KernelBtf {
    cache: Option<Arc<BtfCache>>,
    /// Ids known so far: from the cache, then from lookups.
    ids: Mutex<HashMap<(String, String), Option<u32>>>,
}

impl KernelBtf {
    /// The view for the running kernel; with `cache` false nothing is read
    /// from or written to disk.
    pub(super) fn new(cache: bool) -> Self {
        let cache = cache.then(BtfCache::for_this_kernel).flatten();
        let ids = cache.as_ref().map(|c| c.ids()).unwrap_or_default();
        Self {
            cache: cache.map(Arc::new),
            ids: Mutex::new(ids),
        }
    }

    /// The id of type `name` of `kind` in the kernel's BTF; None when it has
    /// no such type.
    pub(super) fn type_id(&self, name: &str, kind: IdKind) -> Result<Option<u32>, BtfError> {
        let key = (kind.name().to_string(), name.to_string());
        if let Some(id) = self.lock().get(&key) {
            return Ok(*id);
        }
        let id = parsed()?.id_by_type_name_kind(name, kind.btf()).ok();
        let mut ids = self.lock();
        ids.insert(key, id);
        if let Some(cache) = &self.cache {
            cache.store_ids(&ids);
        }
        Ok(id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Option<u32>>> {
        self.ids.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Relocates object `name` (ELF `bytes`) for a loader: from the cache when
    /// it has this object, else against the parsed BTF, remembered for next time.
    pub(super) fn relocator(&self, name: &'static str, bytes: &'static [u8]) -> Relocator {
        let cache = self.cache.clone();
        Relocator(Box::new(move |obj| {
            if let Some(cache) = &cache {
                if cache.restore(name, bytes, obj) {
                    return Ok(());
                }
            }
            obj.relocate_btf(parsed().map_err(EbpfError::BtfError)?)?;
            if let Some(cache) = &cache {
                cache.store(name, bytes, obj);
            }
            Ok(())
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{Session, SessionOptions};
    use aya_obj::Object;

    /// Whether this host publishes BTF; where it must (CI), its absence fails.
    fn has_btf() -> bool {
        if kernel::has_btf() {
            return true;
        }
        assert!(
            std::env::var_os("VPROBE_REQUIRE_ROOT").is_none(),
            "CI needs /sys/kernel/btf/vmlinux"
        );
        false
    }

    #[test]
    fn name_index_finds_what_the_scan_finds() {
        if !has_btf() {
            return;
        }
        let scanned = Btf::from_sys_fs().unwrap();
        let indexed = parsed().unwrap();
        assert!(indexed.is_name_indexed());
        assert!(!scanned.is_name_indexed());
        use aya_obj::btf::BtfKind;
        for (name, kind) in [
            ("sk_buff", BtfKind::Struct),
            ("net_device", BtfKind::Struct),
            ("btf_trace_kfree_skb", BtfKind::Typedef),
            ("kfree_skb_reason", BtfKind::Func),
            ("skb_drop_reason", BtfKind::Enum),
            ("sk_buff", BtfKind::Typedef),
            ("no_such_type_in_any_kernel", BtfKind::Struct),
            ("", BtfKind::Struct),
        ] {
            assert_eq!(
                indexed.id_by_type_name_kind(name, kind).ok(),
                scanned.id_by_type_name_kind(name, kind).ok(),
                "{name} ({kind:?})"
            );
        }
    }

    #[test]
    fn kernel_btf_is_parsed_once_per_process() {
        if !has_btf() || !kernel::privileges().sufficient() {
            assert!(
                std::env::var_os("VPROBE_REQUIRE_ROOT").is_none(),
                "needs root, and VPROBE_REQUIRE_ROOT=1 forbids skipping it"
            );
            return;
        }
        // two sessions, three objects loaded (each relocated against the BTF:
        // no cache)
        for _ in 0..2 {
            let mut session = Session::new(SessionOptions {
                btf_cache: false,
                ..SessionOptions::default()
            })
            .unwrap();
            let probes: Vec<_> = ["skb.drop", "dev.xmit", "tcp.retransmit"]
                .iter()
                .map(|n| vprobe_probes::find(n).unwrap())
                .collect();
            for s in session.support(&probes) {
                assert!(s.chosen().is_some(), "{}: {:?}", s.probe.name, s.reason());
            }
        }
        assert_eq!(btf_parses(), 1);
    }

    /// Every object of the catalog, relocated against the kernel's BTF and
    /// through the cache, gives the same instructions; ids likewise.
    #[test]
    fn what_the_cache_gives_back_is_what_relocation_makes() {
        if !has_btf() {
            return;
        }
        let base = std::env::temp_dir().join(format!("vprobe-kbtf-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
            .create(&base)
            .unwrap();
        let cache = Arc::new(BtfCache::at(&base, "test").unwrap());
        let view = KernelBtf {
            cache: Some(cache.clone()),
            ids: Mutex::new(HashMap::new()),
        };
        let insns = |obj: &Object| -> Vec<((usize, u64), Vec<u64>)> {
            obj.functions
                .iter()
                .map(|(k, f)| {
                    // SAFETY: bpf_insn is 8 bytes of plain integers
                    let words = f
                        .instructions
                        .iter()
                        .map(|i| unsafe { std::mem::transmute_copy::<_, u64>(i) })
                        .collect();
                    (*k, words)
                })
                .collect()
        };
        let mut objects: Vec<_> = vprobe_probes::CATALOG.iter().map(|p| p.object).collect();
        objects.dedup_by_key(|o| o.name);
        for object in objects {
            let mut fresh = Object::parse(object.bytes()).unwrap();
            fresh.relocate_btf(parsed().unwrap()).unwrap();
            // the first load relocates and stores, the second restores
            for round in ["relocated", "restored"] {
                let mut obj = Object::parse(object.bytes()).unwrap();
                let Relocator(mut relocate) = view.relocator(object.name, object.bytes());
                relocate(&mut obj).unwrap();
                assert!(insns(&obj) == insns(&fresh), "{} {round}", object.name);
            }
        }
        assert!(cache.warm());
        for (name, kind) in [
            ("btf_trace_kfree_skb", IdKind::Typedef),
            ("no_such_tracepoint_anywhere", IdKind::Typedef),
            ("kfree_skb_reason", IdKind::Func),
        ] {
            let want = parsed()
                .unwrap()
                .id_by_type_name_kind(name, kind.btf())
                .ok();
            assert_eq!(view.type_id(name, kind).unwrap(), want, "{name}");
            // a second view reads it from the file
            let again = KernelBtf {
                cache: Some(cache.clone()),
                ids: Mutex::new(cache.ids()),
            };
            assert_eq!(
                again
                    .lock()
                    .get(&(kind.name().to_string(), name.to_string())),
                Some(&want)
            );
        }
        std::fs::remove_dir_all(&base).unwrap();
    }
}
