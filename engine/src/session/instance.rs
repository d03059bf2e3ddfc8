//! One loaded and attached program instance: its own maps, its own settings.

use std::collections::HashMap;

use aya::maps::{Map, MapData, MapError, PerCpuArray, PerCpuHashMap, RingBuf};
use std::os::fd::AsFd;

use aya::{Ebpf, Pod};
use vprobe_probes::abi::{self, HistValue, Record};
use vprobe_probes::{FieldKind, Mechanism, ProbeDef};

use super::{MapAccess, Reason, SessionError};
use crate::agg::{AggKind, AggSnapshot, Bucket, Entry, EntryValue};
use crate::output::ProbeInfo;
use crate::plan::{Carried, Consumer, HistKind, ProbeRequest};
use crate::symbols::Symbols;
use crate::value::{decode, Value};

/// Identifies an instance within a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceId(pub u64);

// aya's Pod is foreign and so are the probes crate's types: wrap them here.
/// A packed aggregation key of `W` words (`abi::key_words`).
#[repr(transparent)]
#[derive(Clone, Copy)]
struct Words<const W: usize>([u64; W]);
unsafe impl<const W: usize> Pod for Words<W> {}
#[repr(transparent)]
#[derive(Clone, Copy)]
pub(super) struct HistValuePod(pub HistValue);
unsafe impl Pod for HistValuePod {}
#[repr(transparent)]
#[derive(Clone, Copy)]
pub(super) struct SettingsPod(pub abi::Settings);
unsafe impl Pod for SettingsPod {}

/// An instance's loss accounting (its `loss` map), summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InstanceLoss {
    /// Events its ring buffer had no room for.
    pub events: u64,
    /// Aggregation updates its full map refused (a new key found no room).
    pub map_full: u64,
    /// Records its rate limit held back.
    pub rate_limited: u64,
    /// Records offered to its ring buffer, whether there was room or not.
    pub offered: u64,
}

/// A loaded, attached program with its maps.
pub struct Instance {
    /// What was asked.
    pub request: ProbeRequest,
    /// The mechanism that worked.
    pub mechanism: Mechanism,
    /// Why preferred mechanisms were skipped.
    pub fallbacks: Vec<Reason>,
    /// The fields its aggregation keys hold (`abi::Settings::key_mask`).
    pub(super) key_mask: u32,
    /// Owns programs, maps and links; dropping it detaches.
    pub(super) ebpf: Ebpf,
    pub(super) ring: Option<RingBuf<MapData>>,
}

impl Instance {
    /// The attach point.
    pub fn probe(&self) -> &'static ProbeDef {
        self.request.probe
    }

    /// What this instance's program lost and offered, summed over CPUs
    /// (zeros if its `loss` map cannot be read).
    pub fn losses(&self) -> InstanceLoss {
        let Some(arr) = self
            .ebpf
            .map("loss")
            .and_then(|m| PerCpuArray::<_, u64>::try_from(m).ok())
        else {
            return InstanceLoss::default();
        };
        let slot = |s: u32| -> u64 { arr.get(&s, 0).map(|v| v.iter().sum()).unwrap_or(0) };
        InstanceLoss {
            events: slot(abi::LOSS_EVENTS),
            map_full: slot(abi::LOSS_MAP_FULL),
            rate_limited: slot(abi::LOSS_RATE),
            offered: slot(abi::LOSS_OFFERED),
        }
    }

    /// Runs of its loaded programs the kernel skipped because the same
    /// program was already running on that CPU (an event nested in another:
    /// a softirq's retransmit interrupting one made in process context),
    /// `recursion_misses` of `bpf_prog_info` (Linux 5.12+; 0 before).
    pub fn recursion_misses(&self) -> u64 {
        self.ebpf
            .programs()
            .filter_map(|(_, p)| p.fd().ok())
            .map(|fd| prog_recursion_misses(fd.as_fd()))
            .sum()
    }

    /// How it is described in `start`, `summary` and metrics.
    pub fn info(&self) -> ProbeInfo {
        ProbeInfo {
            name: self.probe().name.to_string(),
            mechanism: self.mechanism.label(),
            feeds: match &self.request.consumer {
                Consumer::Capture(t) => format!("capture {}", t.path.display()),
                c => c.agg_name().unwrap_or("events").to_string(),
            },
            carries: match &self.request.consumer {
                Consumer::Events {
                    fields: Carried::Only(names),
                    ..
                } => Some(names.iter().map(ToString::to_string).collect()),
                _ => None,
            },
            fallbacks: self.fallbacks.iter().map(ToString::to_string).collect(),
        }
    }

    /// The ring buffer of an `on_event` instance (taken once by the reader).
    pub fn take_ring(&mut self) -> Option<RingBuf<MapData>> {
        self.ring.take()
    }

    fn map_err(&self, map: &'static str, e: impl Into<MapAccess>) -> SessionError {
        SessionError::Map {
            probe: self.request.probe.name.into(),
            map,
            error: e.into(),
        }
    }

    /// Reads this instance's aggregation, summed over CPUs, keys decoded.
    pub fn snapshot(&self, symbols: &Symbols) -> Result<Option<AggSnapshot>, SessionError> {
        let (name, keys, field, kind, step) = match &self.request.consumer {
            Consumer::Count { name, keys } => (name, keys, None, AggKind::Count, None),
            Consumer::Hist {
                name,
                field,
                keys,
                kind: HistKind::Log2,
            } => (name, keys, Some(*field), AggKind::Hist, None),
            Consumer::Hist {
                name,
                field,
                keys,
                kind: HistKind::Linear { step },
            } => (
                name,
                keys,
                Some(*field),
                AggKind::Lhist,
                Some((*step).max(1)),
            ),
            Consumer::Events { .. } | Consumer::Capture(_) => return Ok(None),
        };
        let decode_key = |rec: &Record| -> Vec<(String, Value)> {
            keys.iter()
                .map(|f| (f.name.to_string(), decode(f, rec, symbols)))
                .collect()
        };
        let mut merged: HashMap<Vec<(String, Value)>, EntryValue> = HashMap::new();
        match kind {
            AggKind::Count => {
                let map = self
                    .ebpf
                    .map("counts")
                    .ok_or_else(|| self.map_err("counts", MapAccess::Missing))?;
                let words = abi::key_words(self.key_mask, false);
                let counts = entries::<u64>(map, words).map_err(|e| self.map_err("counts", e))?;
                for (k, v) in counts {
                    let n: u64 = v.iter().sum();
                    let (rec, _) = abi::unpack_key(self.key_mask, &k, false);
                    match merged
                        .entry(decode_key(&rec))
                        .or_insert(EntryValue::Count { value: 0 })
                    {
                        EntryValue::Count { value } => *value += n,
                        EntryValue::Hist { .. } => unreachable!("count map holds counts"),
                    }
                }
            }
            AggKind::Hist | AggKind::Lhist => {
                let map = self
                    .ebpf
                    .map("hists")
                    .ok_or_else(|| self.map_err("hists", MapAccess::Missing))?;
                let words = abi::key_words(self.key_mask, true);
                let hists =
                    entries::<HistValuePod>(map, words).map_err(|e| self.map_err("hists", e))?;
                for (k, v) in hists {
                    let count: u64 = v.iter().map(|c| c.0.count).sum();
                    let added = v.iter().fold(0u64, |s, c| s.saturating_add(c.0.sum));
                    let (rec, slot) = abi::unpack_key(self.key_mask, &k, true);
                    let (low, high) = match step {
                        Some(s) => (slot * s, (slot + 1) * s),
                        None => abi::log2_bounds(slot),
                    };
                    let entry = merged.entry(decode_key(&rec)).or_insert(EntryValue::Hist {
                        buckets: vec![],
                        sum: 0,
                    });
                    if let EntryValue::Hist { buckets, sum } = entry {
                        *sum = sum.saturating_add(added);
                        match buckets.iter_mut().find(|b| b.low == low) {
                            Some(b) => b.count += count,
                            None => buckets.push(Bucket { low, high, count }),
                        }
                    }
                }
            }
        }
        let mut entries: Vec<Entry> = merged
            .into_iter()
            .map(|(key, mut value)| {
                if let EntryValue::Hist { buckets, .. } = &mut value {
                    buckets.sort_by_key(|b| b.low);
                }
                Entry { key, value }
            })
            .collect();
        entries.retain(|e| e.value.total() > 0);
        let mut snap = AggSnapshot {
            name: name.to_string(),
            kind,
            keys: keys.iter().map(|f| f.name.to_string()).collect(),
            field: field.map(|f| f.name.to_string()),
            step,
            time_ns: field.is_some_and(|f| f.kind == FieldKind::Duration),
            entries,
        };
        snap.sort();
        Ok(Some(snap))
    }

    /// Deletes every entry of this instance's aggregation.
    pub fn clear(&mut self) -> Result<(), SessionError> {
        let name = match &self.request.consumer {
            Consumer::Count { .. } => "counts",
            Consumer::Hist { .. } => "hists",
            Consumer::Events { .. } | Consumer::Capture(_) => return Ok(()),
        };
        let probe = self.request.probe.name;
        let err = |e: MapAccess| SessionError::Map {
            probe: probe.into(),
            map: name,
            error: e,
        };
        let map = self
            .ebpf
            .map_mut(name)
            .ok_or_else(|| err(MapAccess::Missing))?;
        let words = abi::key_words(self.key_mask, name == "hists");
        if name == "counts" {
            clear::<u64>(map, words).map_err(|e| err(e.into()))
        } else {
            clear::<HistValuePod>(map, words).map_err(|e| err(e.into()))
        }
    }
}

/// Calls `$f::<W, ..>` for the key size class `$words` (1, 2, 4, 8, 16 or 32
/// words: what `abi::key_words` gives).
macro_rules! by_key_words {
    ($words:expr, $f:ident::<_, $v:ty>($($arg:expr),*)) => {
        match $words {
            1 => $f::<1, $v>($($arg),*),
            2 => $f::<2, $v>($($arg),*),
            4 => $f::<4, $v>($($arg),*),
            8 => $f::<8, $v>($($arg),*),
            16 => $f::<16, $v>($($arg),*),
            32 => $f::<32, $v>($($arg),*),
            w => unreachable!("abi::key_words gives no key of {w} words"),
        }
    };
}

/// An aggregation map's entry: the key's words and the value of every CPU.
type RawEntry<V> = (Vec<u64>, Vec<V>);

/// Every entry of a per-CPU aggregation map with `words`-word keys.
fn entries<V: Pod>(map: &Map, words: usize) -> Result<Vec<RawEntry<V>>, MapError> {
    fn read<const W: usize, V: Pod>(map: &Map) -> Result<Vec<RawEntry<V>>, MapError> {
        let m = PerCpuHashMap::<_, Words<W>, V>::try_from(map)?;
        m.iter()
            .map(|item| item.map(|(k, v)| (k.0.to_vec(), v.iter().copied().collect())))
            .collect()
    }
    by_key_words!(words, read::<_, V>(map))
}

/// Deletes every entry of a per-CPU aggregation map with `words`-word keys.
fn clear<V: Pod>(map: &mut Map, words: usize) -> Result<(), MapError> {
    fn remove<const W: usize, V: Pod>(map: &mut Map) -> Result<(), MapError> {
        let mut m = PerCpuHashMap::<_, Words<W>, V>::try_from(map)?;
        let keys: Vec<Words<W>> = m.keys().filter_map(Result::ok).collect();
        for k in keys {
            m.remove(&k)?;
        }
        Ok(())
    }
    by_key_words!(words, remove::<_, V>(map))
}

/// Merges snapshots of instances feeding the same aggregation name.
pub(super) fn merge(into: &mut AggSnapshot, other: AggSnapshot) {
    for e in other.entries {
        match into.entries.iter_mut().find(|x| x.key == e.key) {
            None => into.entries.push(e),
            Some(x) => match (&mut x.value, e.value) {
                (EntryValue::Count { value }, EntryValue::Count { value: v }) => *value += v,
                (
                    EntryValue::Hist { buckets, sum },
                    EntryValue::Hist {
                        buckets: bs,
                        sum: s,
                    },
                ) => {
                    *sum = sum.saturating_add(s);
                    for b in bs {
                        match buckets.iter_mut().find(|y| y.low == b.low) {
                            Some(y) => y.count += b.count,
                            None => buckets.push(b),
                        }
                    }
                    buckets.sort_by_key(|b| b.low);
                }
                _ => {}
            },
        }
    }
    into.sort();
}

/// `bpf(BPF_OBJ_GET_INFO_BY_FD)` on a program: its `recursion_misses`, 0
/// when the kernel cannot say (aya 0.14's `ProgramInfo` does not expose it).
fn prog_recursion_misses(fd: std::os::fd::BorrowedFd<'_>) -> u64 {
    use std::os::fd::AsRawFd;
    // the `info` member of union bpf_attr
    #[repr(C)]
    struct InfoAttr {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    // SAFETY: bpf_prog_info is plain old data (integers); all zeros is its empty value.
    let mut info: aya_obj::generated::bpf_prog_info = unsafe { std::mem::zeroed() };
    let mut attr = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of_val(&info) as u32,
        info: std::ptr::addr_of_mut!(info) as u64,
    };
    // SAFETY: the kernel writes at most info_len bytes into `info`, which
    // lives until the call returns; attr is the union's `info` layout.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            aya_obj::generated::bpf_cmd::BPF_OBJ_GET_INFO_BY_FD as libc::c_long,
            std::ptr::addr_of_mut!(attr),
            std::mem::size_of::<InfoAttr>() as libc::c_uint,
        )
    };
    if rc == 0 {
        info.recursion_misses
    } else {
        0
    }
}
