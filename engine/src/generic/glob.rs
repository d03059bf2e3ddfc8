//! Globs over the generic attach points: every tracepoint or kernel function
//! whose name matches (`tracepoint:net:*`, `kprobe:tcp_*`), as `bpftrace -l`
//! lists them. Tracepoints come from tracefs' `events` folder; kernel
//! functions from tracefs' `available_filter_functions` (what kprobes and
//! fentry can attach to), or `/proc/kallsyms`' text symbols where that is
//! root's only.

use std::collections::BTreeSet;
use std::path::Path;

use super::GenericError;
use crate::kernel::{self, Tracefs, TracefsError};

/// Whether `s` has glob characters (`*`, `?`).
pub fn is_glob(s: &str) -> bool {
    s.contains(['*', '?'])
}

/// Whether `name` matches `pattern`: `*` any run of characters, `?` one.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // the classic two-pointer match, backtracking to the last `*`
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < n.len() {
        match p.get(i) {
            Some('*') => {
                star = Some((i, j));
                i += 1;
            }
            Some(&c) if c == '?' || c == n[j] => {
                i += 1;
                j += 1;
            }
            _ => match star {
                Some((si, sj)) => {
                    i = si + 1;
                    j = sj + 1;
                    star = Some((si, sj + 1));
                }
                None => return false,
            },
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

/// Every generic attach point `pattern` matches, sorted: `tracepoint:CAT:NAME`
/// with globs in CAT and NAME (`tracepoint:net` alone: the whole category),
/// `kprobe:GLOB`, `fentry:GLOB`.
pub fn matching(pattern: &str) -> Result<Vec<String>, GenericError> {
    let (kind, rest) = pattern.split_once(':').unwrap_or((pattern, ""));
    match kind {
        "tracepoint" => {
            let (cat, event) = rest.split_once(':').unwrap_or((rest, "*"));
            let events = tracefs()?.join("events");
            let mut out = Vec::new();
            for c in names_in(&events).filter(|c| glob_match(cat, c)) {
                for e in names_in(&events.join(&c)).filter(|e| glob_match(event, e)) {
                    out.push(format!("tracepoint:{c}:{e}"));
                }
            }
            out.sort();
            Ok(out)
        }
        "kprobe" | "fentry" => Ok(kernel_functions()?
            .into_iter()
            .filter(|f| glob_match(rest, f))
            .map(|f| format!("{kind}:{f}"))
            .collect()),
        _ => Err(GenericError::NoGlob {
            pattern: pattern.to_string(),
        }),
    }
}

fn tracefs() -> Result<&'static Path, GenericError> {
    match kernel::tracefs_state() {
        Tracefs::Ready(p) => Ok(p),
        Tracefs::Unreadable(p) => Err(GenericError::NoListing(TracefsError::Unreadable(p))),
        Tracefs::Missing => kernel::ensure_tracefs().map_err(GenericError::NoListing),
    }
}

/// The subfolders of `dir` (tracefs' categories and events).
fn names_in(dir: &Path) -> impl Iterator<Item = String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
}

/// Functions kprobes and fentry can attach to, by name.
fn kernel_functions() -> Result<BTreeSet<String>, GenericError> {
    if let Tracefs::Ready(p) = kernel::tracefs_state() {
        if let Ok(text) = std::fs::read_to_string(p.join("available_filter_functions")) {
            return Ok(first_words(&text, None));
        }
    }
    // without root: kallsyms' names are readable (their addresses are not)
    let text = std::fs::read_to_string("/proc/kallsyms").map_err(|source| GenericError::Read {
        path: "/proc/kallsyms".into(),
        source,
    })?;
    Ok(first_words(&text, Some(2)))
}

/// The name on each line: the first word (available_filter_functions:
/// `name [module]`), or the third of text symbols (kallsyms: `addr t name`).
fn first_words(text: &str, kallsyms_name: Option<usize>) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| match kallsyms_name {
            None => l.split_whitespace().next(),
            Some(i) => {
                let mut w = l.split_whitespace();
                let kind = w.nth(1)?;
                matches!(kind, "t" | "T").then(|| w.nth(i - 2)).flatten()
            }
        })
        // `name.cold` and other compiler clones are not attachable by name
        .filter(|n| !n.contains('.'))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_a_shell() {
        assert!(glob_match("*", "net_dev_queue"));
        assert!(glob_match("net_*", "net_dev_queue"));
        assert!(glob_match("*_queue", "net_dev_queue"));
        assert!(glob_match("n?t_*q*e", "net_dev_queue"));
        assert!(glob_match("tcp_*_skb", "tcp_retransmit_skb"));
        assert!(!glob_match("tcp_*_skb", "tcp_retransmit_skbx"));
        assert!(!glob_match("net_*", "netif_rx"));
        assert!(glob_match("", ""));
        assert!(!glob_match("", "x"));
        assert!(is_glob("kprobe:tcp_*") && !is_glob("kprobe:tcp_sendmsg"));
    }

    #[test]
    fn kernel_function_names_from_either_listing() {
        let filter = "tcp_sendmsg\nvhost_poll_wakeup [vhost]\nfoo.cold\n";
        assert_eq!(
            first_words(filter, None).into_iter().collect::<Vec<_>>(),
            ["tcp_sendmsg", "vhost_poll_wakeup"]
        );
        let kallsyms = "0000000000000000 T tcp_sendmsg\n0000000000000000 D some_data\n0000000000000000 t tun_net_xmit\t[tun]\n";
        assert_eq!(
            first_words(kallsyms, Some(2))
                .into_iter()
                .collect::<Vec<_>>(),
            ["tcp_sendmsg", "tun_net_xmit"]
        );
    }

    #[test]
    fn a_glob_over_uprobes_is_refused() {
        let e = matching("uprobe:/bin/sh:*").unwrap_err();
        assert!(e.to_string().contains("uprobe:/bin/sh:*"), "{e}");
    }
}
