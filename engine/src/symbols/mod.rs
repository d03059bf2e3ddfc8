//! Names from the running kernel: kernel text symbols (/proc/kallsyms), drop
//! reasons (`enum skb_drop_reason` in the kernel's BTF) and KVM exit reasons
//! (the `kvm:kvm_exit` format). Never a table compiled in: all change between kernels.

mod btf_enum;
mod kallsyms;
mod kvm_exit;

pub use btf_enum::{enum_values, BtfEnumError};
pub use kallsyms::Kallsyms;
pub use kvm_exit::{KvmExitNames, ISA_SVM, ISA_VMX};

use std::path::PathBuf;
use std::sync::Arc;

/// Why names the kernel could give are not at hand.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SymbolsError {
    /// No kernel symbols at all.
    #[error("/proc/kallsyms is not readable")]
    KallsymsUnreadable,
    /// Kernel symbols without addresses.
    #[error("/proc/kallsyms shows no addresses (needs root or CAP_SYSLOG)")]
    AddressesHidden,
    /// No tracefs to read the `kvm:kvm_exit` format from.
    #[error("tracefs is not mounted (/sys/kernel/tracing)")]
    NoTracefs,
    /// The `kvm:kvm_exit` format could not be read.
    #[error("cannot read {}", path.display())]
    ReadKvmFormat {
        /// The format file.
        path: PathBuf,
        /// Why (shared: the error is cached for the session).
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The `kvm:kvm_exit` format has no exit reason table.
    #[error("no exit reason table in {}", path.display())]
    NoKvmTable {
        /// The format file.
        path: PathBuf,
    },
}

/// Symbol and drop-reason lookups for one session.
#[derive(Debug, Default)]
pub struct Symbols {
    /// Read on first use: 40+ ms and ~5 MB that a script which never shows or
    /// filters a kernel location should not pay before it attaches.
    kallsyms: std::cell::OnceCell<Option<Kallsyms>>,
    with_kallsyms: bool,
    /// Read on first use: a script that never filters or shows a drop reason
    /// should not read and scan 2+ MB of BTF before it attaches.
    reasons: std::cell::OnceCell<Vec<(u64, String)>>,
    /// Layer runs `(start, layer)` of kernel text, built on first use.
    layer_runs: std::cell::OnceCell<Result<Vec<(u64, u8)>, SymbolsError>>,
    /// Read on first use from tracefs (root only); Err says why there are none.
    kvm_exits: std::cell::OnceCell<Result<KvmExitNames, SymbolsError>>,
}

/// Prefix of the BTF enumerator names (`SKB_DROP_REASON_FULL_RING`).
const REASON_PREFIX: &str = "SKB_DROP_REASON_";

impl Symbols {
    /// Drop reasons from `/sys/kernel/btf/vmlinux` (readable without root)
    /// and, when `with_kallsyms`, kernel symbols from `/proc/kallsyms` (addresses
    /// read as zero without CAP_SYSLOG; then locations stay numeric): each read
    /// when first asked for.
    pub fn load(with_kallsyms: bool) -> Self {
        Self {
            kallsyms: std::cell::OnceCell::new(),
            with_kallsyms,
            reasons: std::cell::OnceCell::new(),
            layer_runs: std::cell::OnceCell::new(),
            kvm_exits: std::cell::OnceCell::new(),
        }
    }

    /// Whether the drop reasons have been read (tests: they are read lazily).
    pub fn reasons_read(&self) -> bool {
        self.reasons.get().is_some()
    }

    /// The drop reasons, read from the kernel's BTF on first use.
    fn reason_table(&self) -> &[(u64, String)] {
        self.reasons.get_or_init(Self::read_reasons)
    }

    fn read_reasons() -> Vec<(u64, String)> {
        crate::kernel::BtfBytes::open(std::path::Path::new(crate::kernel::VMLINUX_BTF))
            .ok()
            .and_then(|b| enum_values(&b, "skb_drop_reason").ok())
            .map(|v| {
                v.into_iter()
                    .map(|(name, n)| {
                        (
                            n as u64,
                            name.strip_prefix(REASON_PREFIX)
                                .unwrap_or(&name)
                                .to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Builds from parts (tests).
    pub fn from_parts(kallsyms: Option<Kallsyms>, reasons: Vec<(u64, String)>) -> Self {
        Self {
            kallsyms: std::cell::OnceCell::from(kallsyms),
            with_kallsyms: true,
            reasons: std::cell::OnceCell::from(reasons),
            layer_runs: std::cell::OnceCell::new(),
            kvm_exits: std::cell::OnceCell::new(),
        }
    }

    /// Sets the KVM exit reason names (tests).
    pub fn with_kvm_exits(self, names: KvmExitNames) -> Self {
        Self {
            kvm_exits: std::cell::OnceCell::from(Ok(names)),
            ..self
        }
    }

    /// KVM exit reason names of this kernel, or why there are none.
    pub fn kvm_exits(&self) -> Result<&KvmExitNames, SymbolsError> {
        self.kvm_exits
            .get_or_init(|| {
                let tracefs = crate::kernel::tracefs().ok_or(SymbolsError::NoTracefs)?;
                KvmExitNames::load(tracefs)
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// `HLT` for a stored KVM exit reason (`isa << 32 | exit_reason`); the
    /// hardware number when the kernel names none.
    pub fn kvm_exit_name(&self, stored: u64) -> String {
        self.kvm_exits()
            .ok()
            .and_then(|k| k.name(stored))
            .unwrap_or_else(|| (stored & 0xffff_ffff).to_string())
    }

    /// Whether drop reasons were found.
    pub fn has_reasons(&self) -> bool {
        !self.reason_table().is_empty()
    }

    /// All drop reasons: (value, name without `SKB_DROP_REASON_`).
    pub fn reasons(&self) -> impl Iterator<Item = (u64, &str)> {
        self.reason_table().iter().map(|(n, s)| (*n, s.as_str()))
    }

    /// All drop reason names, in numeric order.
    pub fn reason_names(&self) -> impl Iterator<Item = &str> {
        self.reason_table().iter().map(|(_, n)| n.as_str())
    }

    /// `FULL_RING` for 80 on this kernel; the number when unknown.
    pub fn reason_name(&self, v: u64) -> String {
        self.reason_table()
            .iter()
            .find(|(n, _)| *n == v)
            .map(|(_, s)| s.clone())
            .unwrap_or_else(|| v.to_string())
    }

    /// The number of a reason name (`FULL_RING`, `full_ring`, or `SKB_DROP_REASON_FULL_RING`).
    pub fn reason_value(&self, name: &str) -> Option<u64> {
        let up = name.to_ascii_uppercase();
        let up = up.strip_prefix(REASON_PREFIX).unwrap_or(&up);
        self.reason_table()
            .iter()
            .find(|(_, s)| s == up)
            .map(|(n, _)| *n)
    }

    /// `tap_handle_frame+0x336`, or the hex address when unknown.
    pub fn kernel_addr(&self, addr: u64) -> String {
        self.kallsyms()
            .and_then(|k| k.resolve(addr))
            .map(|(name, off)| format!("{name}+0x{off:x}"))
            .unwrap_or_else(|| format!("0x{addr:x}"))
    }

    /// The address range `[start, end)` of a kernel function, if known.
    pub fn symbol_range(&self, name: &str) -> Option<(u64, u64)> {
        self.kallsyms()?.range(name)
    }

    /// Address ranges of kernel function `name` with its split parts
    /// (`name.cold`); empty when unknown or when addresses are hidden.
    pub fn function_ranges(&self, name: &str) -> Vec<(u64, u64)> {
        self.kallsyms()
            .map(|k| k.function_ranges(name))
            .unwrap_or_default()
    }

    /// Kernel text as runs `(start, layer id)` sorted by address (see
    /// `vprobe_probes::layers`), computed once per session from kallsyms.
    pub fn layer_runs(&self) -> Result<&[(u64, u8)], SymbolsError> {
        self.layer_runs
            .get_or_init(|| {
                let k = self.kallsyms().ok_or(SymbolsError::KallsymsUnreadable)?;
                if k.addresses_hidden() {
                    return Err(SymbolsError::AddressesHidden);
                }
                let c = vprobe_probes::layers::Classifier::new();
                let syms: Vec<(u64, u8)> =
                    k.iter().map(|(a, n, m)| (a, c.classify(n, m))).collect();
                Ok(vprobe_probes::layers::runs(&syms))
            })
            .as_ref()
            .map(Vec::as_slice)
            .map_err(Clone::clone)
    }

    /// The layer of a kernel text address by location alone (for drops in
    /// `core`/`other` code the kernel-side lookup also consults the reason).
    pub fn layer_of(&self, addr: u64) -> Option<&'static str> {
        let runs = self.layer_runs().ok()?;
        Some(vprobe_probes::layers::name(u64::from(
            vprobe_probes::layers::lookup(runs, addr),
        )))
    }

    /// Whether kernel symbols are available.
    pub fn has_kallsyms(&self) -> bool {
        self.kallsyms().is_some()
    }

    fn kallsyms(&self) -> Option<&Kallsyms> {
        self.kallsyms
            .get_or_init(|| {
                if self.with_kallsyms {
                    Kallsyms::load().ok()
                } else {
                    None
                }
            })
            .as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // On the running kernel: the drop sites the tap/tun probes and the
    // `layer` field rely on land in their layers, and the table fits.
    #[test]
    fn real_kernel_drop_sites_have_their_layers() {
        let s = Symbols::load(true);
        let runs = match s.layer_runs() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("skipped: {e}");
                return;
            }
        };
        eprintln!("{} layer runs", runs.len());
        assert!(
            runs.len() <= vprobe_probes::abi::LAYER_RUNS,
            "{}",
            runs.len()
        );
        assert!(runs.windows(2).all(|w| w[0].0 < w[1].0), "runs not sorted");
        for (function, layer) in [
            ("tap_handle_frame", "tap"),
            ("tun_net_xmit", "tun"),
            ("__netif_receive_skb_core", "core"),
            ("ip_rcv_core", "ip"),
            ("tcp_v4_rcv", "tcp"),
            ("__udp4_lib_rcv", "udp"),
            ("__dev_xmit_skb", "qdisc"),
        ] {
            let ranges = s.function_ranges(function);
            if ranges.is_empty() {
                eprintln!("{function}: not in this kernel");
                continue;
            }
            for (lo, hi) in ranges {
                for addr in [lo, lo + (hi - lo) / 2, hi - 1] {
                    assert_eq!(s.layer_of(addr), Some(layer), "{function} at {addr:#x}");
                }
            }
        }
    }
}
