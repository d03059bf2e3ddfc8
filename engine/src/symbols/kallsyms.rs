//! /proc/kallsyms: kernel text symbols, sorted by address.
//!
//! A busy host has ~200k symbols; each is 16 bytes here plus its name in one shared
//! string, instead of a `String` (24 bytes + its own allocation) per symbol.

use std::fmt;
use std::io::{self, BufRead, BufReader};

/// One symbol: its address, where its name lies in the arena, and its module
/// (an index into `modules`, 0 for the kernel image).
#[derive(Clone, Copy, Debug)]
struct Sym {
    addr: u64,
    name_off: u32,
    name_len: u16,
    module: u16,
}

/// Sorted kernel text symbols (types `t`, `T`, `w`, `W`) from /proc/kallsyms.
///
/// Without CAP_SYSLOG every address reads as zero: names are still known (so
/// [`Kallsyms::range`] can tell "exists but hidden" from "unknown") but nothing resolves.
#[derive(Default)]
pub struct Kallsyms {
    syms: Vec<Sym>,
    names: String,
    /// Module names; index 0 is the kernel image ("").
    modules: Vec<String>,
    hidden: bool,
}

impl fmt::Debug for Kallsyms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kallsyms")
            .field("symbols", &self.syms.len())
            .field("name_bytes", &self.names.len())
            .field("hidden", &self.hidden)
            .finish()
    }
}

/// Symbols reserved before reading /proc/kallsyms (a desktop kernel has ~120k text symbols).
const RESERVE_SYMS: usize = 1 << 18;

/// The last symbol has no next symbol to end it: assume it spans at most 4 KiB.
const LAST_SYMBOL_SPAN: u64 = 4096;

impl Kallsyms {
    /// Reads /proc/kallsyms, streaming it line by line (no copy of the whole file).
    pub fn load() -> io::Result<Self> {
        let f = std::fs::File::open("/proc/kallsyms")?;
        Self::read(BufReader::with_capacity(64 * 1024, f))
    }

    /// Parses kallsyms text from any reader.
    pub fn read<R: BufRead>(mut r: R) -> io::Result<Self> {
        // Room for a typical kernel up front: growing copies (old and new buffers
        // both resident), while reserved but untouched pages cost nothing.
        let mut k = Self {
            syms: Vec::with_capacity(RESERVE_SYMS),
            names: String::with_capacity(RESERVE_SYMS * 24),
            modules: vec![String::new()],
            hidden: false,
        };
        let mut line = Vec::with_capacity(256);
        loop {
            line.clear();
            if r.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            k.push_line(&line);
        }
        k.finish();
        Ok(k)
    }

    /// Parses kallsyms text (tests, saved copies).
    pub fn parse(text: &str) -> Self {
        let mut k = Self {
            modules: vec![String::new()],
            ..Self::default()
        };
        for line in text.lines() {
            k.push_line(line.as_bytes());
        }
        k.finish();
        k
    }

    /// `ffffffff81000000 T _stext` or `ffffffffc0201000 t name\t[module]`.
    fn push_line(&mut self, line: &[u8]) {
        let mut parts = line
            .split(|c| c.is_ascii_whitespace())
            .filter(|p| !p.is_empty());
        let (Some(addr), Some(kind), Some(name)) = (parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        if !matches!(kind, b"t" | b"T" | b"w" | b"W") {
            return;
        }
        let Some(addr) = parse_hex(addr) else { return };
        let Ok(name) = std::str::from_utf8(name) else {
            return;
        };
        let (Ok(name_off), Ok(name_len)) =
            (u32::try_from(self.names.len()), u16::try_from(name.len()))
        else {
            return;
        };
        let module = match parts.next().and_then(|m| m.strip_prefix(b"[")) {
            Some(m) => self.module_index(m.strip_suffix(b"]").unwrap_or(m)),
            None => 0,
        };
        self.names.push_str(name);
        self.syms.push(Sym {
            addr,
            name_off,
            name_len,
            module,
        });
    }

    /// Index of module `m`, added on first sight (symbols of one module come
    /// together, so the last one is the likely hit).
    fn module_index(&mut self, m: &[u8]) -> u16 {
        let m = String::from_utf8_lossy(m);
        if let Some(i) = self.modules.iter().rposition(|x| *x == m) {
            return i as u16;
        }
        match u16::try_from(self.modules.len()) {
            Ok(i) => {
                self.modules.push(m.into_owned());
                i
            }
            Err(_) => 0,
        }
    }

    fn finish(&mut self) {
        // Stable: among aliases at one address, file order (the kernel's own
        // preference) is kept, and the first one names the address.
        self.syms.sort_by_key(|s| s.addr);
        self.hidden = !self.syms.is_empty() && self.syms.iter().all(|s| s.addr == 0);
        self.syms.shrink_to_fit();
        self.names.shrink_to_fit();
    }

    fn name(&self, s: &Sym) -> &str {
        let start = s.name_off as usize;
        &self.names[start..start + usize::from(s.name_len)]
    }

    /// End of the symbol starting at `start`: the next higher address.
    fn end_of(&self, start: u64) -> u64 {
        let next = self.syms.partition_point(|s| s.addr <= start);
        match self.syms.get(next) {
            Some(s) => s.addr,
            None => start.saturating_add(LAST_SYMBOL_SPAN),
        }
    }

    /// Every symbol in address order: (address, name, module).
    pub fn iter(&self) -> impl Iterator<Item = (u64, &str, Option<&str>)> {
        self.syms.iter().map(|s| {
            let module = self
                .modules
                .get(s.module as usize)
                .filter(|m| !m.is_empty())
                .map(String::as_str);
            (s.addr, self.name(s), module)
        })
    }

    /// Address ranges `[start, next symbol's start)` of function `name` and of
    /// its compiler-made parts and clones (`name.cold`, `name.isra.0`,
    /// `name.constprop.0`), sorted; empty when unknown or addresses are hidden.
    pub fn function_ranges(&self, name: &str) -> Vec<(u64, u64)> {
        if self.hidden {
            return Vec::new();
        }
        let mut v: Vec<(u64, u64)> = self
            .syms
            .iter()
            .filter(|s| {
                let n = self.name(s);
                n == name
                    || n.strip_prefix(name)
                        .is_some_and(|rest| rest.starts_with('.'))
            })
            .map(|s| (s.addr, self.end_of(s.addr)))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Number of symbols kept.
    pub fn len(&self) -> usize {
        self.syms.len()
    }

    /// Whether no symbol was kept.
    pub fn is_empty(&self) -> bool {
        self.syms.is_empty()
    }

    /// Whether every address read as zero (no CAP_SYSLOG).
    pub fn addresses_hidden(&self) -> bool {
        self.hidden
    }

    /// `addr` → (symbol containing it, offset into it); `None` below the first
    /// symbol, past the last one, or when addresses are hidden.
    pub fn resolve(&self, addr: u64) -> Option<(&str, u64)> {
        if self.hidden {
            return None;
        }
        let after = self.syms.partition_point(|s| s.addr <= addr);
        let start = self.syms.get(after.checked_sub(1)?)?.addr;
        if after == self.syms.len() && addr >= start.saturating_add(LAST_SYMBOL_SPAN) {
            return None;
        }
        // The first alias at that address.
        let first = self.syms.partition_point(|s| s.addr < start);
        Some((self.name(&self.syms[first]), addr - start))
    }

    /// Address range `[start, next symbol's start)` of `name` (module suffix
    /// stripped); the lowest one when several static functions share the name.
    /// `Some((0, 0))` when the name exists but addresses are hidden.
    pub fn range(&self, name: &str) -> Option<(u64, u64)> {
        let s = self.syms.iter().find(|s| self.name(s) == name)?;
        if self.hidden {
            return Some((0, 0));
        }
        Some((s.addr, self.end_of(s.addr)))
    }
}

fn parse_hex(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 16 {
        return None;
    }
    b.iter().try_fold(0u64, |acc, &c| {
        let d = (c as char).to_digit(16)?;
        Some(acc << 4 | u64::from(d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
ffffffff81000000 T _stext
ffffffff81000000 T _text
ffffffff81000100 t tap_handle_frame
ffffffff81000400 D some_data
ffffffff81000200 T kfree_skb_reason
ffffffff81000300 W weak_fn
ffffffffc0201000 t macvtap_open\t[macvtap]
ffffffffc0201080 t macvtap_close\t[macvtap]
";

    #[test]
    fn parses_text_symbols_sorted() {
        let k = Kallsyms::parse(TEXT);
        assert_eq!(k.len(), 7);
        assert!(!k.addresses_hidden());
        let addrs: Vec<u64> = k.syms.iter().map(|s| s.addr).collect();
        let mut sorted = addrs.clone();
        sorted.sort();
        assert_eq!(addrs, sorted);
    }

    #[test]
    fn resolves_addresses() {
        let k = Kallsyms::parse(TEXT);
        assert_eq!(k.resolve(0xffffffff81000100), Some(("tap_handle_frame", 0)));
        assert_eq!(
            k.resolve(0xffffffff81000236),
            Some(("kfree_skb_reason", 0x36))
        );
        // The data symbol is not a boundary: the weak function runs on.
        assert_eq!(k.resolve(0xffffffff81000410), Some(("weak_fn", 0x110)));
        // Aliases: the first in file order names the address.
        assert_eq!(k.resolve(0xffffffff81000010), Some(("_stext", 0x10)));
        assert_eq!(k.resolve(0xffffffffc0201090), Some(("macvtap_close", 0x10)));
        assert_eq!(k.resolve(0xffffffff80000000), None);
        assert_eq!(k.resolve(0), None);
        assert_eq!(k.resolve(0xffffffffc0301000), None);
    }

    #[test]
    fn ranges_strip_the_module() {
        let k = Kallsyms::parse(TEXT);
        assert_eq!(
            k.range("tap_handle_frame"),
            Some((0xffffffff81000100, 0xffffffff81000200))
        );
        assert_eq!(
            k.range("macvtap_open"),
            Some((0xffffffffc0201000, 0xffffffffc0201080))
        );
        assert_eq!(
            k.range("macvtap_close"),
            Some((0xffffffffc0201080, 0xffffffffc0202080))
        );
        assert_eq!(
            k.range("_stext"),
            Some((0xffffffff81000000, 0xffffffff81000100))
        );
        assert_eq!(k.range("some_data"), None);
        assert_eq!(k.range("nope"), None);
    }

    #[test]
    fn hidden_addresses_resolve_nothing_but_names_exist() {
        let text = "0000000000000000 T _stext\n0000000000000000 t tap_handle_frame\n0000000000000000 t macvtap_open\t[macvtap]\n";
        let k = Kallsyms::parse(text);
        assert!(k.addresses_hidden());
        assert_eq!(k.resolve(0), None);
        assert_eq!(k.resolve(0x1234), None);
        assert_eq!(k.range("tap_handle_frame"), Some((0, 0)));
        assert_eq!(k.range("macvtap_open"), Some((0, 0)));
        assert_eq!(k.range("nope"), None);
    }

    #[test]
    fn modules_and_split_functions() {
        let text = "\
ffffffff81000100 t tun_net_xmit
ffffffff81000180 t tun_other
ffffffff81000200 t tun_net_xmit.cold
ffffffff81000240 t tun_net_xmit_more
ffffffff81000300 T _etext
ffffffffc0201000 t macvtap_open\t[macvtap]
ffffffffc0201080 t sch_fq_enqueue\t[sch_fq]
";
        let k = Kallsyms::parse(text);
        assert_eq!(
            k.function_ranges("tun_net_xmit"),
            vec![
                (0xffffffff81000100, 0xffffffff81000180),
                (0xffffffff81000200, 0xffffffff81000240)
            ]
        );
        assert!(k.function_ranges("tun_net").is_empty());
        let mods: Vec<_> = k.iter().map(|(_, n, m)| (n, m)).collect();
        assert_eq!(mods[0], ("tun_net_xmit", None));
        assert_eq!(mods[5], ("macvtap_open", Some("macvtap")));
        assert_eq!(mods[6], ("sch_fq_enqueue", Some("sch_fq")));
    }

    #[test]
    fn empty_and_garbage_input() {
        let k = Kallsyms::parse("");
        assert!(k.is_empty());
        assert_eq!(k.resolve(1), None);
        assert_eq!(k.range("x"), None);
        let k = Kallsyms::parse("zzz T bad\nffff\n\nffffffff81000000 T\n");
        assert!(k.is_empty());
    }

    #[test]
    fn reader_matches_parse() {
        let a = Kallsyms::read(TEXT.as_bytes()).unwrap();
        let b = Kallsyms::parse(TEXT);
        assert_eq!(a.names, b.names);
        assert_eq!(a.len(), b.len());
    }

    #[test]
    fn real_kallsyms_loads() {
        let Ok(k) = Kallsyms::load() else {
            eprintln!("skipped: /proc/kallsyms not readable");
            return;
        };
        assert!(!k.is_empty());
        if k.addresses_hidden() {
            eprintln!("addresses hidden (no CAP_SYSLOG); range check only");
            assert_eq!(k.range("_stext"), Some((0, 0)));
            return;
        }
        let (lo, hi) = k.range("_stext").expect("_stext");
        assert!(lo < hi);
        let (name, off) = k.resolve(lo + 1).unwrap();
        assert_eq!((k.range(name).unwrap().0, off), (lo, 1));
    }
}
