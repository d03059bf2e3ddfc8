//! KVM exit reason names, read from the running kernel's `kvm:kvm_exit`
//! format: its print fmt spells the VMX and SVM tables out as
//! `__print_symbolic(REC->exit_reason…, { 0, "EXCEPTION_NMI" }, …)`, so the
//! names always match the kernel (new exit codes appear with new CPUs).

use std::path::Path;
use std::sync::Arc;

use super::SymbolsError;

/// `isa` of the kvm_exit record: Intel VMX.
pub const ISA_VMX: u64 = 1;
/// `isa` of the kvm_exit record: AMD SVM.
pub const ISA_SVM: u64 = 2;

/// VMX basic exit reasons live in the low 16 bits; bit 31 flags a failed VM entry.
const VMX_BASIC: u64 = 0xffff;
const VMX_FAILED_VMENTRY: u64 = 0x8000_0000;

/// Exit reason names per ISA.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvmExitNames {
    vmx: Vec<(u64, String)>,
    svm: Vec<(u64, String)>,
}

impl KvmExitNames {
    /// Reads `events/kvm/kvm_exit/format` under a tracefs mount.
    pub fn load(tracefs: &Path) -> Result<Self, SymbolsError> {
        let path = tracefs.join("events/kvm/kvm_exit/format");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                return Err(SymbolsError::ReadKvmFormat {
                    path,
                    source: Arc::new(e),
                })
            }
        };
        Self::parse(&text).ok_or(SymbolsError::NoKvmTable { path })
    }

    /// Parses a format file: the first `__print_symbolic` table is VMX's and
    /// the second SVM's when the print fmt chooses by `REC->isa == 1`;
    /// otherwise a single table applies to both.
    pub fn parse(format: &str) -> Option<Self> {
        let fmt = format.lines().find_map(|l| l.strip_prefix("print fmt:"))?;
        let tables: Vec<Vec<(u64, String)>> = fmt
            .split("__print_symbolic(")
            .skip(1)
            .filter(|t| t.trim_start().starts_with("REC->exit_reason"))
            .map(symbols)
            .filter(|t| !t.is_empty())
            .collect();
        match tables.as_slice() {
            [] => None,
            [one] => Some(Self {
                vmx: one.clone(),
                svm: one.clone(),
            }),
            [first, second, ..] if fmt.contains("REC->isa == 1") => Some(Self {
                vmx: first.clone(),
                svm: second.clone(),
            }),
            [first, second, ..] => Some(Self {
                vmx: second.clone(),
                svm: first.clone(),
            }),
        }
    }

    fn table(&self, isa: u64) -> Option<&[(u64, String)]> {
        match isa {
            ISA_VMX => Some(&self.vmx),
            ISA_SVM => Some(&self.svm),
            _ => None,
        }
    }

    /// The name of a stored reason (`isa << 32 | exit_reason`), if the kernel has one.
    pub fn name(&self, stored: u64) -> Option<String> {
        let (isa, reason) = (stored >> 32, stored & 0xffff_ffff);
        let code = if isa == ISA_VMX {
            reason & VMX_BASIC
        } else {
            reason
        };
        let name = self.table(isa)?.iter().find(|(n, _)| *n == code)?.1.clone();
        if isa == ISA_VMX && reason & VMX_FAILED_VMENTRY != 0 {
            Some(format!("{name}|FAILED_VMENTRY"))
        } else {
            Some(name)
        }
    }

    /// Stored values (`isa << 32 | exit_reason`) whose name is `name`, in
    /// either ISA's table (case-insensitive: VMX names are upper case, SVM's lower).
    pub fn values(&self, name: &str) -> Vec<u64> {
        [(ISA_VMX, &self.vmx), (ISA_SVM, &self.svm)]
            .into_iter()
            .flat_map(|(isa, t)| {
                t.iter()
                    .filter(|(_, s)| s.eq_ignore_ascii_case(name))
                    .map(move |(n, _)| (isa << 32) | n)
            })
            .collect()
    }

    /// Every name, VMX's then SVM's.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.vmx.iter().chain(&self.svm).map(|(_, s)| s.as_str())
    }
}

/// `{ 0x040 + 13, "GP excp" }, { -1, "invalid_guest_state" }` → pairs, up to the
/// table's closing parenthesis.
fn symbols(table: &str) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut rest = table;
    while let Some(open) = rest.find(['{', ')']) {
        if rest.as_bytes()[open] == b')' {
            break;
        }
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        let entry = &rest[open + 1..open + close];
        rest = &rest[open + close + 1..];
        let Some((expr, name)) = entry.split_once(',') else {
            continue;
        };
        let name = name.trim().trim_matches('"');
        if let Some(v) = eval(expr) {
            out.push((v, name.to_string()));
        }
    }
    out
}

/// A sum of decimal or hex integers (`0x040 + 13`, `-1` as u32).
fn eval(expr: &str) -> Option<u64> {
    let mut sum: i64 = 0;
    for term in expr.split('+') {
        let t = term.trim();
        let (neg, t) = match t.strip_prefix('-') {
            Some(t) => (true, t.trim()),
            None => (false, t),
        };
        let v = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
            Some(h) => i64::from_str_radix(h, 16).ok()?,
            None => t.parse::<i64>().ok()?,
        };
        sum += if neg { -v } else { v };
    }
    // exit_reason is an `unsigned int`: -1 is 0xffffffff
    Some(u64::from(sum as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Abridged from 6.18's /sys/kernel/tracing/events/kvm/kvm_exit/format.
    const FORMAT: &str = r#"name: kvm_exit
ID: 103
format:
	field:unsigned int exit_reason;	offset:8;	size:4;	signed:0;

print fmt: "vcpu %u reason %s%s%s rip 0x%lx", REC->vcpu_id, (REC->isa == 1) ? __print_symbolic(REC->exit_reason & 0xffff, { 0, "EXCEPTION_NMI" }, { 1, "EXTERNAL_INTERRUPT" }, { 12, "HLT" }, { 48, "EPT_VIOLATION" }) : __print_symbolic(REC->exit_reason, { 0x000, "read_cr0" }, { 0x040 + 13, "GP excp" }, { 0x078, "hlt" }, { 0x400, "npf" }, { 0x80000001, "vmgexit_mmio_read" }, { -1, "invalid_guest_state" }), (REC->isa == 1 && REC->exit_reason & ~0xffff) ? " " : "", (REC->isa == 1) ? __print_flags(REC->exit_reason & ~0xffff, " ", { 0x80000000, "FAILED_VMENTRY" }) : "", REC->guest_rip
"#;

    #[test]
    fn names_come_from_the_format_per_isa() {
        let k = KvmExitNames::parse(FORMAT).expect("tables");
        assert_eq!(k.name(ISA_VMX << 32 | 12).as_deref(), Some("HLT"));
        assert_eq!(k.name(ISA_SVM << 32 | 0x78).as_deref(), Some("hlt"));
        assert_eq!(k.name(ISA_SVM << 32 | 0x4d).as_deref(), Some("GP excp"));
        assert_eq!(
            k.name(ISA_SVM << 32 | 0xffff_ffff).as_deref(),
            Some("invalid_guest_state")
        );
        assert_eq!(
            k.name(ISA_VMX << 32 | 0x8000_0030).as_deref(),
            Some("EPT_VIOLATION|FAILED_VMENTRY")
        );
        assert_eq!(k.name(ISA_VMX << 32 | 99), None);
        assert_eq!(k.name(7 << 32 | 12), None, "unknown ISA");
        // the flags table is not a reason table
        assert!(!k.names().any(|n| n == "FAILED_VMENTRY"));
    }

    #[test]
    fn names_resolve_in_both_tables() {
        let k = KvmExitNames::parse(FORMAT).unwrap();
        assert_eq!(
            k.values("hlt"),
            vec![ISA_VMX << 32 | 12, ISA_SVM << 32 | 0x78]
        );
        assert_eq!(k.values("npf"), vec![ISA_SVM << 32 | 0x400]);
        assert!(k.values("nope").is_empty());
    }

    #[test]
    fn a_format_without_tables_gives_none() {
        assert_eq!(KvmExitNames::parse("print fmt: \"x %d\", REC->x"), None);
        assert_eq!(KvmExitNames::parse("no print fmt"), None);
    }

    #[test]
    fn the_running_kernels_format_parses_when_readable() {
        // Root-only and KVM-only: nothing to check elsewhere.
        let p = Path::new("/sys/kernel/tracing");
        if let Ok(k) = KvmExitNames::load(p) {
            assert!(k.values("HLT").len() == 2, "{k:?}");
        }
    }
}
